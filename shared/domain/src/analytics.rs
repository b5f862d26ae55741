//! Production analytics, kept from the domain events: episodes per status now, how long
//! episodes stay in each status, episodes published per week, and jobs' outcomes.
//!
//! Each episode has a [`Timeline`]: its status moves by version, and whether it was deleted.
//! An event adds to it (the same event twice adds nothing; a late one lands in its place), and
//! the facts the reports read — the episode's count under its status, its finished stays, its
//! publication week — are derived from the whole timeline. The analytics worker writes only the
//! difference between the facts of the timeline before and after ([`Changes`]), in the same
//! transaction as the timeline, so redelivered and out-of-order events leave every figure exact.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::episode::EpisodeStatus;
use crate::event::{DomainEvent, EventType};
use crate::ids::{EpisodeId, JobId};
use crate::job::JobType;
use crate::time::Timestamp;

/// The longest period a report takes.
pub const MAX_PERIOD_DAYS: i64 = 366;
/// The period when none is asked for: the last 30 days.
pub const DEFAULT_PERIOD_DAYS: i64 = 30;

/// One status move: the status the episode entered at its version, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub status: EpisodeStatus,
    pub at: Timestamp,
}

/// What the analytics know of one episode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// Status moves by the version they made (the creation is version 1, in draft).
    pub moves: BTreeMap<u64, Move>,
    /// When it was deleted: it counts nowhere from then on.
    pub deleted: Option<Timestamp>,
}

/// A time spent in one status, ended by the move to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stay {
    pub status: EpisodeStatus,
    pub episode: EpisodeId,
    /// The version of the move that ended it.
    pub ended_by: u64,
    pub entered: Timestamp,
    pub left: Timestamp,
}

impl Stay {
    pub fn seconds(&self) -> f64 {
        (self.left.unix_millis() - self.entered.unix_millis()) as f64 / 1000.0
    }
}

impl Timeline {
    /// The timeline with `event` in it; `None` when the event changes nothing about it (an
    /// edit that is not a status move, or one already known).
    pub fn with(&self, event: &DomainEvent) -> Option<Self> {
        let mut next = self.clone();
        match event.event_type {
            EventType::EpisodeCreated => {
                let status = event
                    .data
                    .pointer("/episode/status")
                    .and_then(Value::as_str)
                    .and_then(|s| EpisodeStatus::parse(s).ok())
                    .unwrap_or(EpisodeStatus::Draft);
                next.moves.entry(1).or_insert(Move {
                    status,
                    at: event.occurred_at,
                });
            }
            EventType::EpisodeUpdated => {
                let status = event
                    .data
                    .pointer("/changes/status")
                    .and_then(Value::as_str)
                    .and_then(|s| EpisodeStatus::parse(s).ok())?;
                let version = event.data.get("version").and_then(Value::as_u64)?;
                next.moves.entry(version).or_insert(Move {
                    status,
                    at: event.occurred_at,
                });
            }
            EventType::EpisodeDeleted => {
                next.deleted.get_or_insert(event.occurred_at);
            }
            _ => return None,
        }
        (next != *self).then_some(next)
    }

    /// The status it counts under now: its latest move's, none once deleted.
    pub fn status(&self) -> Option<EpisodeStatus> {
        if self.deleted.is_some() {
            return None;
        }
        self.moves.values().next_back().map(|m| m.status)
    }

    /// Its finished stays: each move to the next known one. A stay before a move not yet
    /// known is not counted until that move arrives.
    pub fn stays(&self, episode: EpisodeId) -> BTreeSet<Stay> {
        self.moves
            .iter()
            .zip(self.moves.iter().skip(1))
            .map(|((_, from), (version, to))| Stay {
                status: from.status,
                episode,
                ended_by: *version,
                entered: from.at,
                left: to.at,
            })
            .collect()
    }

    /// The Monday (UTC) of the week it was first published in, unless deleted.
    pub fn published_week(&self) -> Option<String> {
        if self.deleted.is_some() {
            return None;
        }
        self.moves
            .values()
            .find(|m| m.status == EpisodeStatus::Published)
            .map(|m| week_of(m.at))
    }
}

/// The Monday (UTC) of the week of `at`, `YYYY-MM-DD`.
pub fn week_of(at: Timestamp) -> String {
    let days = at.unix_seconds().div_euclid(86_400);
    // 1970-01-01 was a Thursday: three days after a Monday.
    let monday = days - (days + 3).rem_euclid(7);
    let date = Timestamp::from_unix_seconds(monday * 86_400)
        .map(|t| t.to_string())
        .unwrap_or_default();
    date.get(..10).unwrap_or_default().to_owned()
}

/// What a timeline's change does to the facts the reports read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// +1 or -1 per status count.
    pub counts: BTreeMap<EpisodeStatus, i64>,
    pub stays_added: Vec<Stay>,
    pub stays_removed: Vec<Stay>,
    /// +1 or -1 per week's publications.
    pub weeks: BTreeMap<String, i64>,
}

impl Changes {
    pub fn between(episode: EpisodeId, before: &Timeline, after: &Timeline) -> Self {
        let mut c = Self::default();
        if before.status() != after.status() {
            if let Some(s) = before.status() {
                *c.counts.entry(s).or_default() -= 1;
            }
            if let Some(s) = after.status() {
                *c.counts.entry(s).or_default() += 1;
            }
        }
        let (old, new) = (before.stays(episode), after.stays(episode));
        c.stays_added = new.difference(&old).copied().collect();
        c.stays_removed = old.difference(&new).copied().collect();
        if before.published_week() != after.published_week() {
            if let Some(w) = before.published_week() {
                *c.weeks.entry(w).or_default() -= 1;
            }
            if let Some(w) = after.published_week() {
                *c.weeks.entry(w).or_default() += 1;
            }
        }
        c.counts.retain(|_, n| *n != 0);
        c.weeks.retain(|_, n| *n != 0);
        c
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
            && self.stays_added.is_empty()
            && self.stays_removed.is_empty()
            && self.weeks.is_empty()
    }
}

/// How one attempt of a job ended, from `job.succeeded` or `job.failed`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    pub job: JobId,
    pub job_type: JobType,
    /// Which attempt ended (a retried job ends more than once).
    pub attempt: u64,
    pub succeeded: bool,
    pub finished: Timestamp,
    /// From the job's creation (or its retry) to this outcome.
    pub seconds: f64,
}

impl JobOutcome {
    pub fn from_event(event: &DomainEvent) -> Option<Self> {
        let succeeded = match event.event_type {
            EventType::JobSucceeded => true,
            EventType::JobFailed => false,
            _ => return None,
        };
        let job = event.data.get("job")?;
        let text = |k: &str| job.get(k).and_then(Value::as_str);
        let started = text("created_at").and_then(|s| Timestamp::parse(s).ok())?;
        Some(Self {
            job: text("id").and_then(|s| JobId::parse(s).ok())?,
            job_type: text("type").and_then(|s| JobType::parse(s).ok())?,
            attempt: job.get("attempts").and_then(Value::as_u64).unwrap_or(1),
            succeeded,
            finished: event.occurred_at,
            seconds: ((event.occurred_at.unix_millis() - started.unix_millis()) as f64 / 1000.0)
                .max(0.0),
        })
    }
}

/// A report's period: `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Period {
    /// The Mondays of the first and the last week the period overlaps.
    pub fn weeks(&self) -> (String, String) {
        (week_of(self.from), week_of(self.to.plus_seconds(-1)))
    }
}

/// The nearest-rank percentile of sorted values; `None` when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Percentiles of a set of durations, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Durations {
    /// How many durations.
    pub count: usize,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

impl Durations {
    pub fn of(mut seconds: Vec<f64>) -> Self {
        seconds.sort_by(f64::total_cmp);
        Self {
            count: seconds.len(),
            median_seconds: percentile(&seconds, 50.0),
            p90_seconds: percentile(&seconds, 90.0),
            p99_seconds: percentile(&seconds, 99.0),
        }
    }
}

/// `GET /analytics/episodes`: one status's figures.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct StatusFigures {
    pub status: EpisodeStatus,
    /// Episodes in this status now.
    pub episodes: u64,
    /// The stays in this status that ended within the period.
    pub time_in_status: Durations,
}

/// One week of publications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct WeekFigures {
    /// Its Monday (UTC), `YYYY-MM-DD`.
    pub week: String,
    /// Episodes first published that week (and not deleted).
    pub published: u64,
}

/// `GET /analytics/episodes`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(rename = "EpisodeAnalytics")]
pub struct EpisodeReport {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Every status, in workflow order.
    pub statuses: Vec<StatusFigures>,
    /// Every week the period overlaps, oldest first.
    pub weeks: Vec<WeekFigures>,
}

/// `GET /analytics/jobs`: one job type's figures.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct JobFigures {
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// Attempts that succeeded within the period.
    pub succeeded: u64,
    /// Attempts that failed within the period.
    pub failed: u64,
    /// `succeeded / (succeeded + failed)`; none without attempts.
    pub success_rate: Option<f64>,
    /// From the job's creation to each attempt's outcome.
    pub duration: Durations,
}

/// `GET /analytics/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[schemars(rename = "JobAnalytics")]
pub struct JobReport {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Every job type.
    pub types: Vec<JobFigures>,
}

impl JobFigures {
    pub fn of(job_type: JobType, outcomes: &[(bool, f64)]) -> Self {
        let succeeded = outcomes.iter().filter(|(ok, _)| *ok).count() as u64;
        let failed = outcomes.len() as u64 - succeeded;
        Self {
            job_type,
            succeeded,
            failed,
            success_rate: (!outcomes.is_empty()).then(|| succeeded as f64 / outcomes.len() as f64),
            duration: Durations::of(outcomes.iter().map(|(_, s)| *s).collect()),
        }
    }
}

/// Every Monday from the period's first week to its last, with its publications (0 when none).
pub fn every_week(period: Period, published: &BTreeMap<String, u64>) -> Vec<WeekFigures> {
    let (first, last) = period.weeks();
    let mut weeks = Vec::new();
    let Ok(mut monday) = Timestamp::parse(&format!("{first}T00:00:00.000Z")) else {
        return weeks;
    };
    // At most 53 weeks in a period of 366 days, and a guard against a bad period.
    while weeks.len() < 60 {
        let week = week_of(monday);
        if week > last {
            break;
        }
        weeks.push(WeekFigures {
            published: published.get(&week).copied().unwrap_or(0),
            week,
        });
        monday = monday.plus_days(7);
    }
    weeks
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: EventType, data: Value, at: &str) -> DomainEvent {
        let mut e: DomainEvent =
            serde_json::from_str(include_str!("../../../events/domain/episode.updated.json"))
                .unwrap();
        e.event_type = kind;
        e.data = data;
        e.occurred_at = Timestamp::parse(at).unwrap();
        e
    }

    fn created(at: &str) -> DomainEvent {
        event(
            EventType::EpisodeCreated,
            json!({"episode": {"status": "draft", "version": 1}}),
            at,
        )
    }

    fn moved(status: &str, version: u64, at: &str) -> DomainEvent {
        event(
            EventType::EpisodeUpdated,
            json!({"changes": {"status": status}, "version": version}),
            at,
        )
    }

    fn replay(events: &[&DomainEvent]) -> Timeline {
        events
            .iter()
            .fold(Timeline::default(), |t, e| t.with(e).unwrap_or(t))
    }

    #[test]
    fn any_order_and_repeats_make_the_same_timeline() {
        let c = created("2026-11-02T09:00:00.000Z");
        let p = moved("in_production", 2, "2026-11-03T09:00:00.000Z");
        let r = moved("in_review", 4, "2026-11-05T09:00:00.000Z");
        let edit = event(
            EventType::EpisodeUpdated,
            json!({"changes": {"title": "x"}, "version": 3}),
            "2026-11-04T09:00:00.000Z",
        );
        let a = replay(&[&c, &p, &edit, &r]);
        let b = replay(&[&r, &edit, &p, &c, &p, &r]);
        assert_eq!(a, b);
        assert_eq!(a.status(), Some(EpisodeStatus::InReview));
        assert_eq!(a.with(&p), None, "known already");
        assert_eq!(a.with(&edit), None, "not a status move");
        let stays: Vec<(EpisodeStatus, f64)> = a
            .stays(EpisodeId::new())
            .iter()
            .map(|s| (s.status, s.seconds()))
            .collect();
        assert_eq!(
            stays,
            [
                (EpisodeStatus::Draft, 86_400.0),
                (EpisodeStatus::InProduction, 2.0 * 86_400.0)
            ]
        );
    }

    #[test]
    fn a_late_move_splits_a_stay_and_the_changes_say_so() {
        let id = EpisodeId::new();
        let c = created("2026-11-02T09:00:00.000Z");
        let p = moved("in_production", 2, "2026-11-03T09:00:00.000Z");
        let r = moved("in_review", 3, "2026-11-05T09:00:00.000Z");
        let before = replay(&[&c, &r]);
        let after = before.with(&p).unwrap();
        let changes = Changes::between(id, &before, &after);
        assert!(changes.counts.is_empty(), "in review before and after");
        assert_eq!(changes.stays_removed.len(), 1);
        assert_eq!(changes.stays_removed[0].status, EpisodeStatus::Draft);
        assert_eq!(
            changes
                .stays_added
                .iter()
                .map(|s| s.status)
                .collect::<Vec<_>>(),
            [EpisodeStatus::Draft, EpisodeStatus::InProduction]
        );
        let first = Changes::between(id, &Timeline::default(), &replay(&[&c]));
        assert_eq!(first.counts, BTreeMap::from([(EpisodeStatus::Draft, 1)]));
    }

    #[test]
    fn publication_counts_in_its_week_and_deletion_takes_everything_it_counted() {
        let id = EpisodeId::new();
        let c = created("2026-11-02T09:00:00.000Z");
        let p = moved("in_production", 2, "2026-11-03T09:00:00.000Z");
        let r = moved("in_review", 3, "2026-11-04T09:00:00.000Z");
        // Sunday 8 November: the week of Monday 2 November.
        let pub_ = moved("published", 4, "2026-11-08T23:59:00.000Z");
        let live = replay(&[&c, &p, &r, &pub_]);
        assert_eq!(live.published_week().as_deref(), Some("2026-11-02"));
        let deleted = event(
            EventType::EpisodeDeleted,
            json!({}),
            "2026-11-10T00:00:00.000Z",
        );
        let gone = live.with(&deleted).unwrap();
        let changes = Changes::between(id, &live, &gone);
        assert_eq!(
            changes.counts,
            BTreeMap::from([(EpisodeStatus::Published, -1)])
        );
        assert_eq!(changes.weeks, BTreeMap::from([("2026-11-02".into(), -1)]));
        assert!(changes.stays_removed.is_empty(), "its stays happened");
        // A move arriving after the deletion counts nowhere.
        let late = moved("archived", 5, "2026-11-09T00:00:00.000Z");
        let after = gone.with(&late).unwrap();
        assert_eq!(after.status(), None);
        assert!(Changes::between(id, &gone, &after).counts.is_empty());
        assert_eq!(
            week_of(Timestamp::parse("2026-11-09T00:00:00.000Z").unwrap()),
            "2026-11-09"
        );
        assert_eq!(
            week_of(Timestamp::parse("1970-01-01T00:00:00.000Z").unwrap()),
            "1969-12-29"
        );
    }

    #[test]
    fn jobs_end_with_their_attempt_type_and_time_to_result() {
        let text = include_str!("../../../events/domain/job.succeeded.json");
        let e: DomainEvent = serde_json::from_str(text).unwrap();
        let o = JobOutcome::from_event(&e).unwrap();
        assert!(o.succeeded);
        assert_eq!(o.job_type, JobType::MediaProbe);
        assert_eq!(o.attempt, 1);
        assert!((o.seconds - 0.155).abs() < 1e-9, "{}", o.seconds);
        let failed: DomainEvent =
            serde_json::from_str(include_str!("../../../events/domain/job.failed.json")).unwrap();
        assert!(!JobOutcome::from_event(&failed).unwrap().succeeded);
        assert!(JobOutcome::from_event(&created("2026-11-02T09:00:00.000Z")).is_none());
    }

    #[test]
    fn every_week_of_the_period_is_listed_and_job_rates_are_of_attempts() {
        let period = Period {
            from: Timestamp::parse("2026-11-04T10:00:00.000Z").unwrap(),
            to: Timestamp::parse("2026-11-23T00:00:00.000Z").unwrap(),
        };
        let published = BTreeMap::from([("2026-11-09".to_owned(), 2)]);
        let weeks: Vec<(String, u64)> = every_week(period, &published)
            .into_iter()
            .map(|w| (w.week, w.published))
            .collect();
        assert_eq!(
            weeks,
            [
                ("2026-11-02".to_owned(), 0),
                ("2026-11-09".to_owned(), 2),
                ("2026-11-16".to_owned(), 0)
            ],
            "the 23rd is a Monday the period ends at, not in"
        );
        let f = JobFigures::of(
            JobType::Checksum,
            &[(true, 1.0), (false, 3.0), (true, 2.0), (true, 4.0)],
        );
        assert_eq!((f.succeeded, f.failed, f.success_rate), (3, 1, Some(0.75)));
        assert_eq!(f.duration.median_seconds, Some(2.0));
        assert_eq!(JobFigures::of(JobType::Checksum, &[]).success_rate, None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let d = Durations::of(vec![5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(d.count, 10);
        assert_eq!(d.median_seconds, Some(5.0));
        assert_eq!(d.p90_seconds, Some(9.0));
        assert_eq!(d.p99_seconds, Some(10.0));
        assert_eq!(Durations::of(vec![]).median_seconds, None);
        assert_eq!(percentile(&[3.0], 90.0), Some(3.0));
    }
}
