//! The analytics' ports: what the analytics worker writes ([`AnalyticsWriter`]) and what the
//! analytics routes read ([`AnalyticsReader`]). The reads are of figures kept as the events
//! came: counters, and one fact per finished stay or job outcome, read by period.

use std::collections::BTreeMap;
use std::future::Future;

use super::StoreError;
use crate::analytics::{Changes, JobAttempt, Period, Timeline};
use crate::episode::EpisodeStatus;
use crate::ids::EpisodeId;
use crate::job::JobType;

pub trait AnalyticsWriter {
    /// The episode's timeline and its revision (0 and an empty timeline when none yet).
    fn timeline(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<(Timeline, u64), StoreError>> + Send;

    /// Writes `after` and the `changes` together, if the timeline is still at `revision`;
    /// `false` (and nothing written) when another write came first.
    fn save(
        &self,
        episode: EpisodeId,
        after: &Timeline,
        revision: u64,
        changes: &Changes,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records the start or the end of a job's attempt (the same one again changes nothing);
    /// once both are known, or its end alone, the attempt's outcome is one fact.
    fn record_attempt(
        &self,
        attempt: &JobAttempt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub trait AnalyticsReader {
    /// Episodes per status now (deleted ones count nowhere).
    fn status_counts(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<EpisodeStatus, u64>, StoreError>> + Send;

    /// The lengths, in seconds, of the stays in `status` that ended within the period.
    fn stays(
        &self,
        status: EpisodeStatus,
        period: Period,
    ) -> impl Future<Output = Result<Vec<f64>, StoreError>> + Send;

    /// Episodes first published per week (by its Monday, `YYYY-MM-DD`), for the weeks that
    /// overlap the period.
    fn published_weeks(
        &self,
        period: Period,
    ) -> impl Future<Output = Result<BTreeMap<String, u64>, StoreError>> + Send;

    /// The outcomes of the type's job attempts that ended within the period: (succeeded,
    /// seconds from start to end when its start is known).
    fn job_outcomes(
        &self,
        job_type: JobType,
        period: Period,
    ) -> impl Future<Output = Result<Vec<(bool, Option<f64>)>, StoreError>> + Send;
}
