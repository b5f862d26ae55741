//! A batch of events to analytics: each episode event joins its episode's timeline, and the
//! figures change by the difference, in one conditional transaction (tried again from a fresh
//! read when another worker wrote the timeline first); each job outcome is one fact.

use std::convert::Infallible;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::analytics::{Changes, JobAttempt};
use domain::store::analytics::AnalyticsWriter;
use domain::store::{DeadLetters, StoreError};
use domain::{DomainEvent, EpisodeId};
use lambda_kit::sqs::{batch_response, read_events};
use lambda_runtime::LambdaEvent;

/// Reads and writes of one timeline before the message comes again later.
const TRIES: u32 = 8;

/// What one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Already known, or nothing the analytics count.
    Unchanged,
    Counted,
}

#[derive(Debug, thiserror::Error)]
pub enum CountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("episode {0}'s timeline kept changing under this worker")]
    Contended(EpisodeId),
}

pub async fn handle(
    store: &impl AnalyticsWriter,
    dead_letters: &impl DeadLetters,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let (events, mut failed) = read_events(&event.payload.records, dead_letters).await;
    for (message_id, e) in events {
        match count(store, &e).await {
            Ok(outcome) => {
                tracing::info!(event_id = %e.id, event_type = %e.event_type, ?outcome, "event counted");
            }
            Err(err) => {
                tracing::warn!(event_id = %e.id, error = %err, "not counted; it will come again");
                failed.push(message_id);
            }
        }
    }
    Ok(batch_response(failed))
}

pub async fn count(
    store: &impl AnalyticsWriter,
    event: &DomainEvent,
) -> Result<Outcome, CountError> {
    if let Some(attempt) = JobAttempt::from_event(event) {
        store.record_attempt(&attempt).await?;
        return Ok(Outcome::Counted);
    }
    let Some(episode) = event.episode_id else {
        return Ok(Outcome::Unchanged);
    };
    for tries in 0..TRIES {
        if tries > 0 {
            // Another worker wrote the timeline or a counter first: a short, uneven pause.
            let jitter = u64::from(event.id.to_string().as_bytes()[35] % 16);
            tokio::time::sleep(std::time::Duration::from_millis(
                20 * u64::from(tries) + jitter,
            ))
            .await;
        }
        let (before, revision) = store.timeline(episode).await?;
        let Some(after) = before.with(event) else {
            return Ok(Outcome::Unchanged);
        };
        let changes = Changes::between(episode, &before, &after);
        if store.save(episode, &after, revision, &changes).await? {
            return Ok(Outcome::Counted);
        }
    }
    Err(CountError::Contended(episode))
}

#[cfg(test)]
mod tests {
    use domain::analytics::Period;
    use domain::store::analytics::AnalyticsReader;
    use domain::store::memory::{InMemoryAnalytics, InMemoryDeadLetters};
    use domain::{EpisodeStatus, EventType, JobType, Timestamp};
    use lambda_kit::fixture::sqs_invocation;
    use serde_json::{Value, json};

    use super::*;

    const CREATED: &str = include_str!("../../../events/domain/episode.created.json");
    const UPDATED: &str = include_str!("../../../events/domain/episode.updated.json");
    const DELETED: &str = include_str!("../../../events/domain/episode.deleted.json");
    const SUCCEEDED: &str = include_str!("../../../events/domain/job.succeeded.json");
    const FAILED: &str = include_str!("../../../events/domain/job.failed.json");

    const FIXTURE: &str = include_str!("../../../events/analytics-worker/episode-deleted.json");

    fn batch(bodies: &[String]) -> LambdaEvent<SqsEvent> {
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        sqs_invocation(FIXTURE, &bodies).unwrap()
    }

    /// The golden update as a move to `status` at `version`, at `at`.
    fn moved(status: &str, version: u64, at: &str) -> String {
        let mut e: Value = serde_json::from_str(UPDATED).unwrap();
        e["id"] = json!(domain::EventId::new().to_string());
        e["data"] = json!({"changes": {"status": status}, "version": version});
        e["occurred_at"] = json!(at);
        e.to_string()
    }

    fn all_time() -> Period {
        Period {
            from: Timestamp::parse("2000-01-01T00:00:00.000Z").unwrap(),
            to: Timestamp::parse("2100-01-01T00:00:00.000Z").unwrap(),
        }
    }

    async fn run(store: &InMemoryAnalytics, bodies: &[String]) -> SqsBatchResponse {
        handle(store, &InMemoryDeadLetters::default(), batch(bodies))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn any_order_and_redelivery_give_the_same_figures() {
        let events = [
            CREATED.to_owned(),
            moved("in_production", 2, "2026-11-26T18:00:00.000Z"),
            moved("in_review", 3, "2026-11-28T18:00:00.000Z"),
            moved("published", 4, "2026-11-30T18:00:00.000Z"),
        ];
        let in_order = InMemoryAnalytics::default();
        run(&in_order, &events).await;
        let shuffled = InMemoryAnalytics::default();
        let again = [
            events[3].clone(),
            events[1].clone(),
            events[3].clone(),
            events[0].clone(),
            events[2].clone(),
            events[1].clone(),
        ];
        let r = run(&shuffled, &again).await;
        assert!(r.batch_item_failures.is_empty());
        for store in [&in_order, &shuffled] {
            let counts = store.status_counts().await.unwrap();
            assert_eq!(counts.get(&EpisodeStatus::Published), Some(&1));
            assert_eq!(counts.values().sum::<u64>(), 1, "{counts:?}");
            assert_eq!(
                store.stays(EpisodeStatus::Draft, all_time()).await.unwrap(),
                [86_400.0]
            );
            assert_eq!(
                store
                    .stays(EpisodeStatus::InProduction, all_time())
                    .await
                    .unwrap(),
                [2.0 * 86_400.0]
            );
            let weeks = store.published_weeks(all_time()).await.unwrap();
            assert_eq!(weeks.get("2026-11-30"), Some(&1), "{weeks:?}");
        }
    }

    #[tokio::test]
    async fn a_deleted_episode_counts_nowhere_and_jobs_count_per_attempt() {
        let store = InMemoryAnalytics::default();
        run(&store, &[CREATED.to_owned(), DELETED.to_owned()]).await;
        assert_eq!(
            store.status_counts().await.unwrap().values().sum::<u64>(),
            0
        );
        // The success's start comes after it; the failure's never comes.
        let mut started: Value = serde_json::from_str(SUCCEEDED).unwrap();
        started["type"] = json!("job.started");
        started["id"] = json!(domain::EventId::new().to_string());
        started["occurred_at"] = json!("2026-12-01T11:16:50.707Z");
        let bodies = [
            SUCCEEDED.to_owned(),
            SUCCEEDED.to_owned(),
            FAILED.to_owned(),
            started.to_string(),
            started.to_string(),
        ];
        let r = run(&store, &bodies).await;
        assert!(r.batch_item_failures.is_empty());
        let mut outcomes = store
            .job_outcomes(JobType::MediaProbe, all_time())
            .await
            .unwrap();
        outcomes.sort_by_key(|(ok, _)| *ok);
        assert_eq!(outcomes, [(false, None), (true, Some(4.0))]);
    }

    #[tokio::test]
    async fn what_the_analytics_do_not_count_changes_nothing() {
        let store = InMemoryAnalytics::default();
        let mut edit: Value = serde_json::from_str(UPDATED).unwrap();
        edit["data"] = json!({"changes": {"title": "Another"}, "version": 2});
        let mut progress: Value = serde_json::from_str(SUCCEEDED).unwrap();
        progress["type"] = json!(EventType::JobProgress.as_str());
        let r = run(&store, &[edit.to_string(), progress.to_string()]).await;
        assert!(r.batch_item_failures.is_empty());
        assert!(store.status_counts().await.unwrap().is_empty());
    }
}
