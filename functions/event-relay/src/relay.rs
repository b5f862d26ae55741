//! Stream records to queue messages.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_adapters::publisher::SQS_BATCH_MAX;
use aws_adapters::{OutgoingMessage, SqsPublisher};
use aws_lambda_events::event::dynamodb::Event;
use domain::store::StoreError;
use domain::{DomainEvent, Queue, queues_for};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

/// Where relayed messages go. The SQS publisher in production, a fake in tests.
pub trait Publish {
    /// Sends up to ten messages; returns the indexes of those not accepted.
    fn send_batch(
        &self,
        queue: Queue,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Vec<usize>> + Send;
    fn dead_letter(
        &self,
        body: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl Publish for SqsPublisher {
    async fn send_batch(&self, queue: Queue, messages: &[OutgoingMessage]) -> Vec<usize> {
        SqsPublisher::send_batch(self, queue, messages).await
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        SqsPublisher::dead_letter(self, body, reason).await
    }
}

/// How hard the relay tries before failing the invocation (and so having the stream retry).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0} message(s) could not be delivered; the stream will deliver the batch again")]
    Undelivered(usize),
    #[error("a record that cannot be relayed could not be parked in the dead-letter queue")]
    DeadLetter(#[source] StoreError),
}

impl From<RelayError> for lambda_runtime::Diagnostic {
    fn from(e: RelayError) -> Self {
        let error_type = match e {
            RelayError::Undelivered(_) => "Undelivered",
            RelayError::DeadLetter(_) => "DeadLetterUnavailable",
        };
        Self {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The event JSON stored in a stream record's new image, or why there is none.
fn payload(new_image: &Value) -> Result<&str, &'static str> {
    new_image
        .pointer("/payload/S")
        .and_then(Value::as_str)
        .ok_or("the record has no payload")
}

pub async fn handle(
    publisher: &impl Publish,
    policy: &RetryPolicy,
    event: LambdaEvent<Event>,
) -> Result<(), RelayError> {
    let mut by_queue: BTreeMap<Queue, Vec<OutgoingMessage>> = BTreeMap::new();
    for record in &event.payload.records {
        if record.event_name != "INSERT" {
            continue; // TTL expiries and the like: nothing happened in the domain.
        }
        let image = serde_json::to_value(&record.change.new_image).unwrap_or(Value::Null);
        let parsed = payload(&image).map_err(str::to_owned).and_then(|p| {
            serde_json::from_str::<DomainEvent>(p)
                .map(|e| (p, e))
                .map_err(|e| e.to_string())
        });
        match parsed {
            Ok((body, e)) => {
                for queue in queues_for(e.event_type) {
                    by_queue.entry(*queue).or_default().push(OutgoingMessage {
                        event_id: e.id.to_string(),
                        event_type: e.event_type.as_str().to_owned(),
                        schema_version: e.schema_version,
                        body: body.to_owned(),
                    });
                }
            }
            Err(reason) => {
                tracing::error!(record = %record.event_id, %reason, "unrelayable record parked in the dead-letter queue");
                let body = payload(&image)
                    .map(str::to_owned)
                    .unwrap_or_else(|_| image.to_string());
                publisher
                    .dead_letter(&body, &reason)
                    .await
                    .map_err(RelayError::DeadLetter)?;
            }
        }
    }
    // Every queue's batches at once: live updates do not wait behind the audit trail.
    let deliveries = by_queue.iter().flat_map(|(queue, messages)| {
        messages
            .chunks(SQS_BATCH_MAX)
            .map(|chunk| deliver(publisher, policy, *queue, chunk.to_vec()))
    });
    let undelivered: usize = futures_util::future::join_all(deliveries)
        .await
        .into_iter()
        .sum();
    let relayed: usize = by_queue.values().map(Vec::len).sum();
    if undelivered > 0 {
        tracing::error!(
            undelivered,
            relayed,
            "delivery failed; failing the batch so it comes again"
        );
        return Err(RelayError::Undelivered(undelivered));
    }
    tracing::info!(records = event.payload.records.len(), relayed, "relayed");
    Ok(())
}

/// Sends one batch, resending what SQS refused with exponential backoff. Returns how many
/// messages were still undelivered after the last attempt.
async fn deliver(
    publisher: &impl Publish,
    policy: &RetryPolicy,
    queue: Queue,
    mut pending: Vec<OutgoingMessage>,
) -> usize {
    let mut delay = policy.first_delay;
    for attempt in 1..=policy.attempts {
        let failed = publisher.send_batch(queue, &pending).await;
        if failed.is_empty() {
            return 0;
        }
        pending = failed
            .iter()
            .filter_map(|i| pending.get(*i).cloned())
            .collect();
        tracing::warn!(%queue, attempt, failed = pending.len(), "retrying refused entries");
        if attempt < policy.attempts {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    pending.len()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    /// Refuses the first `fail_first` attempts of every entry, records what got through.
    #[derive(Default)]
    struct FlakyQueue {
        fail_first: usize,
        attempts: Mutex<usize>,
        delivered: Mutex<Vec<(Queue, String)>>,
        parked: Mutex<Vec<String>>,
    }

    impl Publish for FlakyQueue {
        async fn send_batch(&self, queue: Queue, messages: &[OutgoingMessage]) -> Vec<usize> {
            let mut attempts = self.attempts.lock().unwrap();
            *attempts += 1;
            if *attempts <= self.fail_first {
                // Refuse every other entry, as SendMessageBatch's per-entry failures do.
                let refused: Vec<usize> = (0..messages.len()).filter(|i| i % 2 == 0).collect();
                let mut delivered = self.delivered.lock().unwrap();
                for m in messages.iter().skip(1).step_by(2) {
                    delivered.push((queue, m.event_id.clone()));
                }
                return refused;
            }
            let mut delivered = self.delivered.lock().unwrap();
            delivered.extend(messages.iter().map(|m| (queue, m.event_id.clone())));
            Vec::new()
        }

        async fn dead_letter(&self, body: &str, _reason: &str) -> Result<(), StoreError> {
            self.parked.lock().unwrap().push(body.to_owned());
            Ok(())
        }
    }

    fn record(payload: &str) -> Value {
        json!({
            "eventID": format!("rec-{}", payload.len()),
            "eventName": "INSERT",
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1795629600.0,
                "Keys": {"episode_id": {"S": "e"}, "event_id": {"S": "x"}},
                "NewImage": {"payload": {"S": payload}},
                "SequenceNumber": "1",
                "SizeBytes": 100,
                "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    fn stream_event(records: Vec<Value>) -> LambdaEvent<Event> {
        let event: Event = serde_json::from_value(json!({ "Records": records })).unwrap();
        LambdaEvent::new(event, lambda_runtime::Context::default())
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(1),
        }
    }

    const GOLDEN: [&str; 3] = [
        include_str!("../../../events/domain/episode.created.json"),
        include_str!("../../../events/domain/episode.updated.json"),
        include_str!("../../../events/domain/episode.deleted.json"),
    ];

    #[tokio::test]
    async fn relays_every_event_to_its_queues_retrying_refused_entries() {
        let queue = FlakyQueue {
            fail_first: 2,
            ..Default::default()
        };
        let records = GOLDEN.iter().map(|g| record(g)).collect();
        handle(&queue, &fast(), stream_event(records))
            .await
            .unwrap();
        let mut delivered: Vec<String> = queue
            .delivered
            .lock()
            .unwrap()
            .iter()
            .map(|(_, id)| id.clone())
            .collect();
        delivered.sort();
        delivered.dedup();
        assert_eq!(delivered.len(), 3, "each event delivered");
    }

    #[tokio::test]
    async fn fails_the_batch_when_sqs_stays_down() {
        let queue = FlakyQueue {
            fail_first: 100,
            ..Default::default()
        };
        let records = GOLDEN.iter().map(|g| record(g)).collect();
        let err = handle(&queue, &fast(), stream_event(records))
            .await
            .unwrap_err();
        assert!(matches!(err, RelayError::Undelivered(n) if n > 0));
    }

    #[tokio::test]
    async fn parks_records_that_are_not_events_and_goes_on() {
        let queue = FlakyQueue::default();
        let records = vec![record("{\"not\":\"an event\"}"), record(GOLDEN[0])];
        handle(&queue, &fast(), stream_event(records))
            .await
            .unwrap();
        assert_eq!(
            queue.parked.lock().unwrap().as_slice(),
            ["{\"not\":\"an event\"}"]
        );
        let routed = queues_for(domain::EventType::EpisodeCreated).len();
        assert_eq!(queue.delivered.lock().unwrap().len(), routed);
    }

    #[tokio::test]
    async fn ignores_removals() {
        let queue = FlakyQueue::default();
        let mut removal = record(GOLDEN[0]);
        removal["eventName"] = json!("REMOVE");
        handle(&queue, &fast(), stream_event(vec![removal]))
            .await
            .unwrap();
        assert!(queue.delivered.lock().unwrap().is_empty());
    }
}
