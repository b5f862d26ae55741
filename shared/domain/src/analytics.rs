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
        // A stay is stored under (status, end, episode, ending version): one that gives way to
        // another under the same key is overwritten by it, not removed as well (a store takes
        // one write per item in a transaction).
        let key = |s: &Stay| (s.status, s.left, s.ended_by);
        c.stays_removed = old
            .difference(&new)
            .filter(|r| !c.stays_added.iter().any(|a| key(a) == key(r)))
            .copied()
            .collect();
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

/// What an event says about one attempt of a job: it started (`job.started`), or it ended
/// (`job.succeeded`; `job.failed` and `job.retry_scheduled` for a failed attempt, the job
/// failing for good or to be tried again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Started(Timestamp),
    Ended { succeeded: bool, at: Timestamp },
}

/// One event about one attempt of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobAttempt {
    pub job: JobId,
    pub job_type: JobType,
    /// Which attempt (a job retried, by itself or by a person, has several).
    pub attempt: u64,
    pub mark: Mark,
}

impl JobAttempt {
    pub fn from_event(event: &DomainEvent) -> Option<Self> {
        let at = event.occurred_at;
        let mark = match event.event_type {
            EventType::JobStarted => Mark::Started(at),
            EventType::JobSucceeded => Mark::Ended {
                succeeded: true,
                at,
            },
            EventType::JobFailed | EventType::JobRetryScheduled => Mark::Ended {
                succeeded: false,
                at,
            },
            _ => return None,
        };
        let job = event.data.get("job")?;
        let text = |k: &str| job.get(k).and_then(Value::as_str);
        Some(Self {
            job: text("id").and_then(|s| JobId::parse(s).ok())?,
            job_type: text("type").and_then(|s| JobType::parse(s).ok())?,
            attempt: job.get("attempts").and_then(Value::as_u64).unwrap_or(1),
            mark,
        })
    }
}

/// What is known of one attempt: its start and its end, in whichever order they came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptState {
    pub started: Option<Timestamp>,
    /// Whether it succeeded, and when it ended.
    pub ended: Option<(bool, Timestamp)>,
}

impl AttemptState {
    /// The state with the mark in it (the same mark again changes nothing).
    pub fn with(mut self, mark: Mark) -> Self {
        match mark {
            Mark::Started(at) => {
                self.started.get_or_insert(at);
            }
            Mark::Ended { succeeded, at } => {
                self.ended.get_or_insert((succeeded, at));
            }
        }
        self
    }

    /// The attempt's outcome once it ended; its length once its start is known too.
    pub fn outcome(&self, attempt: &JobAttempt) -> Option<JobOutcome> {
        let (succeeded, finished) = self.ended?;
        Some(JobOutcome {
            job: attempt.job,
            job_type: attempt.job_type,
            attempt: attempt.attempt,
            succeeded,
            finished,
            seconds: self.started.map(|started| {
                ((finished.unix_millis() - started.unix_millis()) as f64 / 1000.0).max(0.0)
            }),
        })
    }
}

/// How one attempt of a job ended: the fact the job figures read.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    pub job: JobId,
    pub job_type: JobType,
    pub attempt: u64,
    pub succeeded: bool,
    pub finished: Timestamp,
    /// From the attempt's start to its end; none while its start is not known.
    pub seconds: Option<f64>,
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
    /// From each attempt's start to its end (the attempts whose start is known).
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
    pub fn of(job_type: JobType, outcomes: &[(bool, Option<f64>)]) -> Self {
        let succeeded = outcomes.iter().filter(|(ok, _)| *ok).count() as u64;
        let failed = outcomes.len() as u64 - succeeded;
        Self {
            job_type,
            succeeded,
            failed,
            success_rate: (!outcomes.is_empty()).then(|| succeeded as f64 / outcomes.len() as f64),
            duration: Durations::of(outcomes.iter().filter_map(|(_, s)| *s).collect()),
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
    fn a_stay_replaced_under_its_own_key_is_not_also_removed() {
        // Known: draft (1), in production (2), in review (5); in production again (4, after a
        // review sent it back) comes before the review (3) that came between.
        let id = EpisodeId::new();
        let before = replay(&[
            &created("2026-11-02T09:00:00.000Z"),
            &moved("in_production", 2, "2026-11-03T09:00:00.000Z"),
            &moved("in_review", 5, "2026-11-07T09:00:00.000Z"),
        ]);
        let after = before
            .with(&moved("in_production", 4, "2026-11-05T09:00:00.000Z"))
            .unwrap();
        let c = Changes::between(id, &before, &after);
        assert!(c.stays_removed.is_empty(), "{:?}", c.stays_removed);
        assert_eq!(c.stays_added.len(), 2);
        let keys: BTreeSet<_> = c
            .stays_added
            .iter()
            .chain(&c.stays_removed)
            .map(|s| (s.status, s.left, s.ended_by))
            .collect();
        assert_eq!(keys.len(), c.stays_added.len() + c.stays_removed.len());
        // The in-production stay that ended at version 5 now started at version 4.
        let last = c.stays_added.iter().find(|s| s.ended_by == 5).unwrap();
        assert_eq!(last.seconds(), 2.0 * 86_400.0);
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
    fn an_attempt_is_measured_from_its_start_in_whichever_order_they_come() {
        let text = include_str!("../../../events/domain/job.succeeded.json");
        let ended: DomainEvent = serde_json::from_str(text).unwrap();
        let mut started = ended.clone();
        started.event_type = EventType::JobStarted;
        started.occurred_at = ended.occurred_at.plus_seconds(-3);
        let (s, e) = (
            JobAttempt::from_event(&started).unwrap(),
            JobAttempt::from_event(&ended).unwrap(),
        );
        assert_eq!((e.job_type, e.attempt), (JobType::MediaProbe, 1));
        let forward = AttemptState::default().with(s.mark).with(e.mark);
        let backward = AttemptState::default()
            .with(e.mark)
            .with(s.mark)
            .with(e.mark);
        assert_eq!(forward, backward);
        let outcome = forward.outcome(&e).unwrap();
        assert!(outcome.succeeded);
        assert_eq!(outcome.seconds, Some(3.0));
        // Ended, start not yet known: counted, not measured.
        let early = AttemptState::default().with(e.mark).outcome(&e).unwrap();
        assert_eq!(early.seconds, None);
        assert!(AttemptState::default().with(s.mark).outcome(&s).is_none());
        for text in [
            include_str!("../../../events/domain/job.failed.json"),
            include_str!("../../../events/domain/job.retry_scheduled.json"),
        ] {
            let e: DomainEvent = serde_json::from_str(text).unwrap();
            let mark = JobAttempt::from_event(&e).unwrap().mark;
            assert!(
                matches!(
                    mark,
                    Mark::Ended {
                        succeeded: false,
                        ..
                    }
                ),
                "{mark:?}"
            );
        }
        assert!(JobAttempt::from_event(&created("2026-11-02T09:00:00.000Z")).is_none());
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
            &[
                (true, Some(1.0)),
                (false, Some(3.0)),
                (true, Some(2.0)),
                (true, None),
            ],
        );
        assert_eq!((f.succeeded, f.failed, f.success_rate), (3, 1, Some(0.75)));
        assert_eq!(
            (f.duration.count, f.duration.median_seconds),
            (3, Some(2.0))
        );
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
