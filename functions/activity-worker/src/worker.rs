//! A batch of queue messages to activity entries: one BatchGetItem for the episodes' labels,
//! one BatchWriteItem for the entries, partial batch failures for what did not make it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;

use aws_adapters::DynamoActivityStore;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::store::{DeadLetters, StoreError};
use domain::{ActivityEntry, EpisodeId, EventId, EventType};
use lambda_kit::sqs::{batch_response, read_events};
use lambda_runtime::LambdaEvent;

/// What the worker needs from the activity store.
pub trait ActivityLog {
    fn labels(
        &self,
        ids: &[EpisodeId],
    ) -> impl Future<Output = Result<HashMap<EpisodeId, String>, StoreError>> + Send;
    /// Returns the event ids left unwritten.
    fn put_batch(
        &self,
        entries: &[ActivityEntry],
    ) -> impl Future<Output = Result<Vec<EventId>, StoreError>> + Send;
}

impl ActivityLog for DynamoActivityStore {
    async fn labels(&self, ids: &[EpisodeId]) -> Result<HashMap<EpisodeId, String>, StoreError> {
        DynamoActivityStore::labels(self, ids).await
    }

    async fn put_batch(&self, entries: &[ActivityEntry]) -> Result<Vec<EventId>, StoreError> {
        DynamoActivityStore::put_batch(self, entries).await
    }
}

pub async fn handle(
    log: &impl ActivityLog,
    dead_letters: &impl DeadLetters,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let (mut events, mut failed) = read_events(&event.payload.records, dead_letters).await;

    // Created events carry their episode; the others are labelled from the episodes table.
    let wanted: Vec<EpisodeId> = events
        .iter()
        .filter(|(_, e)| e.event_type != EventType::EpisodeCreated)
        .map(|(_, e)| e.episode_id)
        .collect();
    let labels = match log.labels(&wanted).await {
        Ok(labels) => labels,
        Err(e) => {
            tracing::warn!(error = %e, "episode labels unavailable; those events will come again");
            let (retry, keep): (Vec<_>, Vec<_>) = events
                .into_iter()
                .partition(|(_, e)| e.event_type != EventType::EpisodeCreated);
            failed.extend(retry.into_iter().map(|(id, _)| id));
            events = keep;
            HashMap::new()
        }
    };

    let entries: Vec<ActivityEntry> = events
        .iter()
        .map(|(_, e)| ActivityEntry::from_event(e, labels.get(&e.episode_id).map(String::as_str)))
        .collect();
    match log.put_batch(&entries).await {
        Ok(left) => {
            failed.extend(
                events
                    .iter()
                    .filter(|(_, e)| left.contains(&e.id))
                    .map(|(id, _)| id.clone()),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "activity write failed; the batch will come again");
            failed.extend(events.iter().map(|(id, _)| id.clone()));
        }
    }
    for (id, e) in &events {
        if !failed.contains(id) {
            tracing::info!(event_id = %e.id, correlation_id = %e.correlation_id, "activity recorded");
        }
    }
    Ok(batch_response(failed))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use aws_lambda_events::event::sqs::SqsMessage;
    use domain::DomainEvent;
    use serde_json::json;

    use super::*;

    #[derive(Default)]
    struct FakeLog {
        entries: Mutex<HashMap<EventId, ActivityEntry>>,
        writes: Mutex<usize>,
        refuse: Option<EventId>,
    }

    impl ActivityLog for FakeLog {
        async fn labels(
            &self,
            ids: &[EpisodeId],
        ) -> Result<HashMap<EpisodeId, String>, StoreError> {
            Ok(ids.iter().map(|id| (*id, "S2E4".to_owned())).collect())
        }

        async fn put_batch(&self, entries: &[ActivityEntry]) -> Result<Vec<EventId>, StoreError> {
            *self.writes.lock().unwrap() += 1;
            let mut map = self.entries.lock().unwrap();
            let mut left = Vec::new();
            for e in entries {
                if Some(e.event_id) == self.refuse {
                    left.push(e.event_id);
                } else {
                    map.insert(e.event_id, e.clone());
                }
            }
            Ok(left)
        }
    }

    #[derive(Default)]
    struct FakeDlq(Mutex<Vec<String>>);

    impl DeadLetters for FakeDlq {
        async fn park(&self, body: &str, _reason: &str) -> Result<(), StoreError> {
            self.0.lock().unwrap().push(body.to_owned());
            Ok(())
        }
    }

    const GOLDEN: [&str; 3] = [
        include_str!("../../../events/domain/episode.created.json"),
        include_str!("../../../events/domain/episode.updated.json"),
        include_str!("../../../events/domain/episode.deleted.json"),
    ];

    fn batch(bodies: &[&str]) -> LambdaEvent<SqsEvent> {
        let mut event = SqsEvent::default();
        event.records = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("m{i}"));
                m.body = Some((*b).to_owned());
                m
            })
            .collect();
        LambdaEvent::new(event, lambda_runtime::Context::default())
    }

    fn failures(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn one_entry_per_event_in_one_write() {
        let log = FakeLog::default();
        let r = handle(&log, &FakeDlq::default(), batch(&GOLDEN))
            .await
            .unwrap();
        assert!(failures(&r).is_empty());
        assert_eq!(log.entries.lock().unwrap().len(), 3);
        assert_eq!(*log.writes.lock().unwrap(), 1);
        let summaries: Vec<String> = log
            .entries
            .lock()
            .unwrap()
            .values()
            .map(|e| e.summary.clone())
            .collect();
        assert!(
            summaries.contains(
                &"Alice moved S2E4 to in_production and edited its description".to_owned()
            )
        );
    }

    #[tokio::test]
    async fn a_redelivered_event_changes_nothing() {
        let log = FakeLog::default();
        handle(&log, &FakeDlq::default(), batch(&GOLDEN[..1]))
            .await
            .unwrap();
        let first = log.entries.lock().unwrap().clone();
        handle(&log, &FakeDlq::default(), batch(&GOLDEN[..1]))
            .await
            .unwrap();
        assert_eq!(*log.entries.lock().unwrap(), first);
    }

    #[tokio::test]
    async fn poison_goes_to_the_dead_letter_queue_and_the_rest_is_written() {
        let log = FakeLog::default();
        let dlq = FakeDlq::default();
        let mut unknown_version: serde_json::Value = serde_json::from_str(GOLDEN[1]).unwrap();
        unknown_version["schema_version"] = json!(99);
        let unknown_version = unknown_version.to_string();
        let bodies = [GOLDEN[0], "{not json", unknown_version.as_str(), GOLDEN[2]];
        let r = handle(&log, &dlq, batch(&bodies)).await.unwrap();
        assert!(failures(&r).is_empty(), "parked, so not retried");
        assert_eq!(dlq.0.lock().unwrap().len(), 2);
        assert_eq!(log.entries.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn unprocessed_entries_are_reported_alone() {
        let refused: DomainEvent = serde_json::from_str(GOLDEN[1]).unwrap();
        let log = FakeLog {
            refuse: Some(refused.id),
            ..Default::default()
        };
        let r = handle(&log, &FakeDlq::default(), batch(&GOLDEN))
            .await
            .unwrap();
        assert_eq!(failures(&r), ["m1"]);
    }
}
