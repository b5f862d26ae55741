//! The analytics' ports: a timeline is written only from the revision read, with its changes
//! (counts, stays, weeks) all or nothing; facts are read back by period; a job attempt's
//! outcome is one fact however often it is recorded.
//!
//! The figures are shared by every run on one table: counts are compared before and after,
//! and stays and jobs are placed in a period of their own, a random hour of 2001.

use domain::analytics::{Changes, JobAttempt, Mark, Move, Period, Timeline};
use domain::store::analytics::{AnalyticsReader, AnalyticsWriter};
use domain::{EpisodeId, EpisodeStatus, JobId, JobType, Timestamp};

use crate::World;

fn ok<T>(r: Result<T, domain::store::StoreError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A random hour of 2001, and a time `minutes` into it.
fn hour() -> Timestamp {
    let n = u64::from_str_radix(&EpisodeId::new().to_string()[30..], 16).unwrap_or(0);
    Timestamp::parse("2001-01-01T00:00:00.000Z")
        .unwrap_or_else(|e| panic!("{e}"))
        .plus_seconds(i64::try_from(n % (360 * 24)).unwrap_or(0) * 3600)
}

fn at(start: Timestamp, minutes: i64) -> Timestamp {
    start.plus_seconds(minutes * 60)
}

pub async fn a_timeline_is_saved_only_from_the_revision_read_with_all_its_figures(w: &impl World) {
    let store = w.analytics();
    let episode = EpisodeId::new();
    let start = hour();
    let period = Period {
        from: start,
        to: at(start, 60),
    };
    assert_eq!(ok(store.timeline(episode).await), (Timeline::default(), 0));
    let counts_before = ok(store.status_counts().await);

    let mut t1 = Timeline::default();
    t1.moves.insert(
        1,
        Move {
            status: EpisodeStatus::Draft,
            at: at(start, 1),
        },
    );
    t1.moves.insert(
        3,
        Move {
            status: EpisodeStatus::InReview,
            at: at(start, 10),
        },
    );
    let c1 = Changes::between(episode, &Timeline::default(), &t1);
    assert!(ok(store.save(episode, &t1, 0, &c1).await));
    assert!(
        !ok(store.save(episode, &t1, 0, &c1).await),
        "revision 0 is gone"
    );
    assert_eq!(ok(store.timeline(episode).await), (t1.clone(), 1));
    let counts = ok(store.status_counts().await);
    let grew = |s: EpisodeStatus| {
        counts.get(&s).copied().unwrap_or(0) as i64
            - counts_before.get(&s).copied().unwrap_or(0) as i64
    };
    assert_eq!(grew(EpisodeStatus::InReview), 1);
    assert_eq!(ok(store.stays(EpisodeStatus::Draft, period).await), [540.0]);

    // The late move splits the draft stay; publication counts in its week.
    let mut t2 = t1.clone();
    t2.moves.insert(
        2,
        Move {
            status: EpisodeStatus::InProduction,
            at: at(start, 4),
        },
    );
    t2.moves.insert(
        4,
        Move {
            status: EpisodeStatus::Published,
            at: at(start, 30),
        },
    );
    let c2 = Changes::between(episode, &t1, &t2);
    assert!(
        !ok(store.save(episode, &t2, 0, &c2).await),
        "a stale revision writes nothing"
    );
    assert_eq!(ok(store.stays(EpisodeStatus::Draft, period).await), [540.0]);
    assert!(ok(store.save(episode, &t2, 1, &c2).await));
    assert_eq!(ok(store.stays(EpisodeStatus::Draft, period).await), [180.0]);
    assert_eq!(
        ok(store.stays(EpisodeStatus::InProduction, period).await),
        [360.0]
    );
    assert_eq!(
        ok(store.stays(EpisodeStatus::InReview, period).await),
        [1200.0]
    );
    let week = t2.published_week().unwrap_or_else(|| panic!("published"));
    let weeks = ok(store.published_weeks(period).await);
    assert!(weeks.get(&week).copied().unwrap_or(0) >= 1, "{weeks:?}");
    // Stays are read by when they ended: [from, to).
    let before = Period {
        from: start,
        to: at(start, 10),
    };
    assert_eq!(
        ok(store.stays(EpisodeStatus::InProduction, before).await),
        Vec::<f64>::new()
    );
    let counts = ok(store.status_counts().await);
    let grew = |s: EpisodeStatus| {
        counts.get(&s).copied().unwrap_or(0) as i64
            - counts_before.get(&s).copied().unwrap_or(0) as i64
    };
    assert_eq!(
        (
            grew(EpisodeStatus::InReview),
            grew(EpisodeStatus::Published)
        ),
        (0, 1)
    );
}

pub async fn a_job_attempt_is_one_fact_read_by_type_and_period(w: &impl World) {
    let store = w.analytics();
    let start = hour();
    let job = JobId::new();
    let mark = |attempt, mark| JobAttempt {
        job,
        job_type: JobType::Loudness,
        attempt,
        mark,
    };
    let ended = |succeeded, minutes| Mark::Ended {
        succeeded,
        at: at(start, minutes),
    };
    // Attempt 1: its end, twice, then its start. Attempt 2: start and end. Attempt 3: its end
    // only, so far.
    ok(store.record_attempt(&mark(1, ended(false, 5))).await);
    ok(store.record_attempt(&mark(1, ended(false, 5))).await);
    ok(store
        .record_attempt(&mark(1, Mark::Started(at(start, 4))))
        .await);
    ok(store
        .record_attempt(&mark(2, Mark::Started(at(start, 6))))
        .await);
    ok(store.record_attempt(&mark(2, ended(true, 9))).await);
    ok(store.record_attempt(&mark(3, ended(true, 20))).await);
    let period = Period {
        from: start,
        to: at(start, 60),
    };
    let mut got = ok(store.job_outcomes(JobType::Loudness, period).await);
    got.sort_by(|a, b| a.1.unwrap_or(f64::MAX).total_cmp(&b.1.unwrap_or(f64::MAX)));
    assert_eq!(
        got,
        [(false, Some(60.0)), (true, Some(180.0)), (true, None)]
    );
    assert_eq!(
        ok(store.job_outcomes(JobType::Checksum, period).await),
        Vec::<(bool, Option<f64>)>::new()
    );
    let early = Period {
        from: start,
        to: at(start, 9),
    };
    assert_eq!(
        ok(store.job_outcomes(JobType::Loudness, early).await),
        [(false, Some(60.0))]
    );
}
