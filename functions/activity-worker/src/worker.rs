//! A batch of queue messages to activity entries: one BatchGetItem for the episodes' labels,
//! one BatchWriteItem for the entries, partial batch failures for what did not make it.

use std::collections::HashMap;
use std::convert::Infallible;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::store::DeadLetters;
use domain::store::activity::{ActivityWriter, EpisodeLabels};
use domain::{ActivityEntry, EpisodeId, EventType};
use lambda_kit::sqs::{batch_response, read_events};
use lambda_runtime::LambdaEvent;

pub async fn handle(
    log: &impl ActivityWriter,
    labels: &impl EpisodeLabels,
    dead_letters: &impl DeadLetters,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let (mut events, mut failed) = read_events(&event.payload.records, dead_letters).await;

    // Created events carry their episode; the others are labelled from the episodes table.
    let wanted: Vec<EpisodeId> = events
        .iter()
        .filter(|(_, e)| e.event_type != EventType::EpisodeCreated)
        .filter_map(|(_, e)| e.episode_id)
        .collect();
    let labels = match labels.labels(&wanted).await {
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
        .map(|(_, e)| {
            let label = e.episode_id.and_then(|ep| labels.get(&ep));
            ActivityEntry::from_event(e, label.map(String::as_str))
        })
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
    use aws_lambda_events::event::sqs::SqsMessage;
    use domain::DomainEvent;
    use domain::store::memory::{InMemoryActivityLog, InMemoryDeadLetters, InMemoryEpisodeLabels};
    use serde_json::json;

    use super::*;

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

    /// Labels for the golden examples' episode.
    fn labels() -> InMemoryEpisodeLabels {
        let labels = InMemoryEpisodeLabels::default();
        let event: DomainEvent = serde_json::from_str(GOLDEN[1]).unwrap();
        labels.set(event.episode_id.unwrap(), "S2E4");
        labels
    }

    #[tokio::test]
    async fn one_entry_per_event_in_one_write() {
        let log = InMemoryActivityLog::default();
        let r = handle(
            &log,
            &labels(),
            &InMemoryDeadLetters::default(),
            batch(&GOLDEN),
        )
        .await
        .unwrap();
        assert!(failures(&r).is_empty());
        assert_eq!(log.entries().len(), 3);
        assert_eq!(log.writes(), 1);
        let summaries: Vec<String> = log.entries().iter().map(|e| e.summary.clone()).collect();
        assert!(
            summaries.contains(
                &"Alice moved S2E4 to in_production and edited its description".to_owned()
            )
        );
    }

    #[tokio::test]
    async fn a_redelivered_event_changes_nothing() {
        let log = InMemoryActivityLog::default();
        let dlq = InMemoryDeadLetters::default();
        handle(&log, &labels(), &dlq, batch(&GOLDEN[..1]))
            .await
            .unwrap();
        let first = log.entries();
        handle(&log, &labels(), &dlq, batch(&GOLDEN[..1]))
            .await
            .unwrap();
        handle(&log, &labels(), &dlq, batch(&[GOLDEN[0], GOLDEN[0]]))
            .await
            .unwrap();
        assert_eq!(log.entries(), first);
    }

    #[tokio::test]
    async fn poison_goes_to_the_dead_letter_queue_and_the_rest_is_written() {
        let log = InMemoryActivityLog::default();
        let dlq = InMemoryDeadLetters::default();
        let mut unknown_version: serde_json::Value = serde_json::from_str(GOLDEN[1]).unwrap();
        unknown_version["schema_version"] = json!(99);
        let unknown_version = unknown_version.to_string();
        let bodies = [GOLDEN[0], "{not json", unknown_version.as_str(), GOLDEN[2]];
        let r = handle(&log, &labels(), &dlq, batch(&bodies)).await.unwrap();
        assert!(failures(&r).is_empty(), "parked, so not retried");
        assert_eq!(dlq.parked().len(), 2);
        assert_eq!(log.entries().len(), 2);
    }

    #[tokio::test]
    async fn unprocessed_entries_are_reported_alone() {
        let refused: DomainEvent = serde_json::from_str(GOLDEN[1]).unwrap();
        let log = InMemoryActivityLog::default();
        log.leave_unprocessed(refused.id);
        let r = handle(
            &log,
            &labels(),
            &InMemoryDeadLetters::default(),
            batch(&GOLDEN),
        )
        .await
        .unwrap();
        assert_eq!(failures(&r), ["m1"]);
        assert_eq!(log.entries().len(), 2);
    }

    #[tokio::test]
    async fn without_labels_only_the_events_that_carry_their_own_are_written() {
        let log = InMemoryActivityLog::default();
        let labels = labels();
        labels.set_down(true);
        let r = handle(
            &log,
            &labels,
            &InMemoryDeadLetters::default(),
            batch(&GOLDEN),
        )
        .await
        .unwrap();
        assert_eq!(
            failures(&r),
            ["m1", "m2"],
            "they come again, to be labelled"
        );
        assert_eq!(log.entries().len(), 1);
        assert_eq!(log.entries()[0].action, EventType::EpisodeCreated);
    }
}
