//! The analytics in memory, with the adapter's conditions: a timeline is written only from the
//! revision read, with its changes, all at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::poisoned;
use crate::analytics::{AttemptState, Changes, JobAttempt, Period, Stay, Timeline};
use crate::episode::EpisodeStatus;
use crate::ids::{EpisodeId, JobId};
use crate::job::JobType;
use crate::store::StoreError;
use crate::store::analytics::{AnalyticsReader, AnalyticsWriter};
use crate::time::Timestamp;

/// A job attempt's outcome by (type, end, job, attempt): (succeeded, seconds).
type Outcomes = BTreeMap<(JobType, Timestamp, JobId, u64), (bool, Option<f64>)>;

#[derive(Debug, Default)]
struct Figures {
    timelines: BTreeMap<EpisodeId, (Timeline, u64)>,
    counts: BTreeMap<EpisodeStatus, i64>,
    stays: BTreeMap<(EpisodeStatus, Timestamp, EpisodeId, u64), f64>,
    weeks: BTreeMap<String, i64>,
    attempts: BTreeMap<(JobId, u64), AttemptState>,
    jobs: Outcomes,
}

/// Clones share the figures.
#[derive(Debug, Clone, Default)]
pub struct InMemoryAnalytics(Arc<Mutex<Figures>>);

fn stay_key(s: &Stay) -> (EpisodeStatus, Timestamp, EpisodeId, u64) {
    (s.status, s.left, s.episode, s.ended_by)
}

fn within(at: Timestamp, period: Period) -> bool {
    period.from <= at && at < period.to
}

impl AnalyticsWriter for InMemoryAnalytics {
    async fn timeline(&self, episode: EpisodeId) -> Result<(Timeline, u64), StoreError> {
        let f = self.0.lock().map_err(|_| poisoned())?;
        Ok(f.timelines.get(&episode).cloned().unwrap_or_default())
    }

    async fn save(
        &self,
        episode: EpisodeId,
        after: &Timeline,
        revision: u64,
        changes: &Changes,
    ) -> Result<bool, StoreError> {
        let mut f = self.0.lock().map_err(|_| poisoned())?;
        let current = f.timelines.get(&episode).map_or(0, |(_, r)| *r);
        if current != revision {
            return Ok(false);
        }
        // As DynamoDB refuses a transaction that writes one item twice.
        let keys: std::collections::BTreeSet<_> = changes
            .stays_added
            .iter()
            .chain(&changes.stays_removed)
            .map(stay_key)
            .collect();
        if keys.len() != changes.stays_added.len() + changes.stays_removed.len() {
            return Err(StoreError::unavailable(std::io::Error::other(
                "a transaction writes one stay twice",
            )));
        }
        f.timelines.insert(episode, (after.clone(), revision + 1));
        for (status, n) in &changes.counts {
            *f.counts.entry(*status).or_default() += n;
        }
        for s in &changes.stays_removed {
            f.stays.remove(&stay_key(s));
        }
        for s in &changes.stays_added {
            f.stays.insert(stay_key(s), s.seconds());
        }
        for (week, n) in &changes.weeks {
            *f.weeks.entry(week.clone()).or_default() += n;
        }
        Ok(true)
    }

    async fn record_attempt(&self, a: &JobAttempt) -> Result<(), StoreError> {
        let mut f = self.0.lock().map_err(|_| poisoned())?;
        let state = f.attempts.entry((a.job, a.attempt)).or_default();
        *state = state.with(a.mark);
        if let Some(o) = state.outcome(a) {
            f.jobs.insert(
                (o.job_type, o.finished, o.job, o.attempt),
                (o.succeeded, o.seconds),
            );
        }
        Ok(())
    }
}

impl AnalyticsReader for InMemoryAnalytics {
    async fn status_counts(&self) -> Result<BTreeMap<EpisodeStatus, u64>, StoreError> {
        let f = self.0.lock().map_err(|_| poisoned())?;
        Ok(f.counts
            .iter()
            .map(|(s, n)| (*s, u64::try_from(*n).unwrap_or(0)))
            .collect())
    }

    async fn stays(&self, status: EpisodeStatus, period: Period) -> Result<Vec<f64>, StoreError> {
        let f = self.0.lock().map_err(|_| poisoned())?;
        Ok(f.stays
            .iter()
            .filter(|((s, left, _, _), _)| *s == status && within(*left, period))
            .map(|(_, seconds)| *seconds)
            .collect())
    }

    async fn published_weeks(&self, period: Period) -> Result<BTreeMap<String, u64>, StoreError> {
        let f = self.0.lock().map_err(|_| poisoned())?;
        let (first, last) = period.weeks();
        Ok(f.weeks
            .iter()
            .filter(|(w, n)| **n > 0 && first <= **w && **w <= last)
            .map(|(w, n)| (w.clone(), u64::try_from(*n).unwrap_or(0)))
            .collect())
    }

    async fn job_outcomes(
        &self,
        job_type: JobType,
        period: Period,
    ) -> Result<Vec<(bool, Option<f64>)>, StoreError> {
        let f = self.0.lock().map_err(|_| poisoned())?;
        Ok(f.jobs
            .iter()
            .filter(|((t, at, _, _), _)| *t == job_type && within(*at, period))
            .map(|(_, o)| *o)
            .collect())
    }
}
