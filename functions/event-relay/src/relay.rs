//! Stream records to queue messages.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use domain::store::relay::{BATCH_BYTES, BATCH_MAX, EventPublisher, OutgoingMessage};
use domain::store::{DeadLetters, StoreError};
use domain::{DomainEvent, Queue, queues_for};
use lambda_runtime::LambdaEvent;
use serde_json::Value;

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

/// How the stream's event source takes a batch that failed in part. It mirrors the event
/// source mapping's `FunctionResponseTypes` (the template sets both from one condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartialFailure {
    /// `ReportBatchItemFailures`: name the first record not relayed; the stream resends from
    /// there, so the records before it are not sent again.
    Report,
    /// Fail the invocation: the stream resends the whole batch. For an event source that
    /// does not read a partial response (the local emulator ignores it and would drop the
    /// failed records).
    FailInvocation,
}

impl PartialFailure {
    /// From `REPORT_BATCH_ITEM_FAILURES` (`true` or `false`); reporting when not set.
    pub fn from_env_value(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some("false") => Self::FailInvocation,
            _ => Self::Report,
        }
    }
}

/// A message on its way, and the stream record it came from.
#[derive(Debug, Clone)]
struct Routed {
    record: usize,
    message: OutgoingMessage,
}

pub async fn handle(
    publisher: &(impl EventPublisher + DeadLetters + Sync),
    policy: &RetryPolicy,
    mode: PartialFailure,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, RelayError> {
    let records = &event.payload.records;
    let mut by_queue: BTreeMap<Queue, Vec<Routed>> = BTreeMap::new();
    let mut failed: BTreeSet<usize> = BTreeSet::new();
    for (index, record) in records.iter().enumerate() {
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
                    by_queue.entry(*queue).or_default().push(Routed {
                        record: index,
                        message: OutgoingMessage {
                            event_id: e.id.to_string(),
                            event_type: e.event_type.as_str().to_owned(),
                            schema_version: e.schema_version,
                            body: body.to_owned(),
                        },
                    });
                }
            }
            Err(reason) => {
                tracing::error!(record = %record.event_id, %reason, "unrelayable record parked in the dead-letter queue");
                let body = payload(&image)
                    .map(str::to_owned)
                    .unwrap_or_else(|_| image.to_string());
                if let Err(e) = publisher.park(&body, &reason).await {
                    tracing::error!(record = %record.event_id, error = %e, "could not park the record");
                    failed.insert(index);
                }
            }
        }
    }
    // Every queue's batches at once: live updates do not wait behind the audit trail.
    let deliveries = by_queue.iter().flat_map(|(queue, routed)| {
        batches(routed)
            .into_iter()
            .map(|batch| deliver(publisher, policy, *queue, batch))
    });
    for undelivered in futures_util::future::join_all(deliveries).await {
        failed.extend(undelivered);
    }
    let relayed: usize = by_queue.values().map(Vec::len).sum();
    let Some(&first) = failed.first() else {
        tracing::info!(records = records.len(), relayed, "relayed");
        return Ok(DynamoDbEventResponse::default());
    };
    let sequence_number = records
        .get(first)
        .and_then(|r| r.change.sequence_number.clone());
    match (mode, sequence_number) {
        (PartialFailure::Report, Some(sequence_number)) => {
            tracing::error!(
                failed_records = failed.len(),
                first_failed = first,
                relayed,
                "delivery failed; the stream resends from the first record not relayed"
            );
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            let mut response = DynamoDbEventResponse::default();
            response.batch_item_failures = vec![failure];
            Ok(response)
        }
        _ => {
            tracing::error!(
                failed_records = failed.len(),
                relayed,
                "delivery failed; failing the batch so it comes again"
            );
            Err(RelayError::Undelivered(failed.len()))
        }
    }
}

/// Cuts one queue's messages into `SendMessageBatch` requests within SQS's limits: at most
/// ten entries and 256 KiB of bodies and attributes each.
fn batches(routed: &[Routed]) -> Vec<Vec<Routed>> {
    let mut out: Vec<Vec<Routed>> = Vec::new();
    let mut bytes = 0;
    for r in routed {
        let size = r.message.size();
        match out.last_mut() {
            Some(batch) if batch.len() < BATCH_MAX && bytes + size <= BATCH_BYTES => {
                bytes += size;
                batch.push(r.clone());
            }
            _ => {
                bytes = size;
                out.push(vec![r.clone()]);
            }
        }
    }
    out
}

/// Sends one batch, resending only what SQS refused, with exponential backoff. Returns the
/// records whose messages were still undelivered after the last attempt.
async fn deliver(
    publisher: &(impl EventPublisher + DeadLetters + Sync),
    policy: &RetryPolicy,
    queue: Queue,
    mut pending: Vec<Routed>,
) -> Vec<usize> {
    let mut delay = policy.first_delay;
    for attempt in 1..=policy.attempts {
        let messages: Vec<OutgoingMessage> = pending.iter().map(|r| r.message.clone()).collect();
        let refused = publisher.send_batch(queue, &messages).await;
        if refused.is_empty() {
            return Vec::new();
        }
        pending = refused
            .iter()
            .filter_map(|i| pending.get(*i).cloned())
            .collect();
        tracing::warn!(%queue, attempt, failed = pending.len(), "retrying refused entries");
        if attempt < policy.attempts {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    pending.iter().map(|r| r.record).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use domain::store::memory::InMemoryPublisher;
    use serde_json::json;

    use super::*;

    /// Refuses every other entry of the first `fail_first` attempts, as SendMessageBatch's
    /// per-entry failures do; records what got through.
    #[derive(Default)]
    struct FlakyQueue {
        fail_first: usize,
        /// Sizes (entries, bytes) of each batch sent.
        batches: Mutex<Vec<(usize, usize)>>,
        attempts: Mutex<usize>,
        delivered: Mutex<Vec<(Queue, String)>>,
    }

    impl EventPublisher for FlakyQueue {
        async fn send_batch(&self, queue: Queue, messages: &[OutgoingMessage]) -> Vec<usize> {
            self.batches.lock().unwrap().push((
                messages.len(),
                messages.iter().map(OutgoingMessage::size).sum(),
            ));
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
    }

    impl DeadLetters for FlakyQueue {
        async fn park(&self, _body: &str, _reason: &str) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn record(payload: &str) -> Value {
        sequenced(payload, 1)
    }

    fn sequenced(payload: &str, sequence: u32) -> Value {
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
                "SequenceNumber": sequence.to_string(),
                "SizeBytes": 100,
                "StreamViewType": "NEW_IMAGE"
            }
        })
    }

    fn stream_event(records: Vec<Value>) -> LambdaEvent<Event> {
        let event: Event = serde_json::from_value(json!({ "Records": records })).unwrap();
        LambdaEvent::new(event, lambda_runtime::Context::default())
    }

    /// Relays the records in reporting mode; the answer.
    async fn relay(
        publisher: &(impl EventPublisher + DeadLetters + Sync),
        records: Vec<Value>,
    ) -> DynamoDbEventResponse {
        handle(
            publisher,
            &fast(),
            PartialFailure::Report,
            stream_event(records),
        )
        .await
        .unwrap()
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
        relay(&queue, records).await;
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
        let err = handle(
            &queue,
            &fast(),
            PartialFailure::FailInvocation,
            stream_event(records),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RelayError::Undelivered(n) if n > 0));
    }

    fn event_id(golden: &str) -> String {
        serde_json::from_str::<Value>(golden).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn failures(r: &DynamoDbEventResponse) -> Vec<String> {
        r.batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn reports_the_first_record_not_relayed_in_stream_order() {
        // The second and third records' events are refused for good; the first got through.
        let queue = InMemoryPublisher::default();
        queue.refuse_event(&event_id(GOLDEN[2]));
        queue.refuse_event(&event_id(GOLDEN[1]));
        let records = GOLDEN
            .iter()
            .zip(10..)
            .map(|(g, seq)| sequenced(g, seq))
            .collect();
        let response = relay(&queue, records).await;
        assert_eq!(failures(&response), ["11"], "from the second record on");
        // Each entry refused was tried again, alone, and nothing delivered twice.
        let delivered = queue.accepted();
        assert!(
            delivered
                .iter()
                .all(|(_, m)| m.event_id == event_id(GOLDEN[0]))
        );
        let routed = queues_for(domain::EventType::EpisodeCreated).len();
        assert_eq!(delivered.len(), routed);
    }

    #[tokio::test]
    async fn reports_nothing_when_all_got_through() {
        let queue = FlakyQueue::default();
        let records = GOLDEN.iter().map(|g| record(g)).collect();
        let response = relay(&queue, records).await;
        assert!(failures(&response).is_empty());
        assert_eq!(
            serde_json::to_value(&response).unwrap()["batchItemFailures"],
            json!([])
        );
    }

    #[tokio::test]
    async fn a_record_that_could_not_be_parked_is_reported_not_skipped() {
        let queue = InMemoryPublisher::default();
        queue.set_dead_letters_down(true);
        let records = vec![
            sequenced(GOLDEN[0], 7),
            sequenced("{\"not\":\"an event\"}", 8),
            sequenced(GOLDEN[1], 9),
        ];
        let response = relay(&queue, records).await;
        assert_eq!(failures(&response), ["8"]);
    }

    #[tokio::test]
    async fn batches_stay_within_ten_entries_and_256_kib() {
        // Twelve events of about 60 KB each: four fit in 256 KiB, ten would not.
        let base: Value = serde_json::from_str(GOLDEN[1]).unwrap();
        let records: Vec<Value> = (0..12)
            .map(|i| {
                let mut e = base.clone();
                e["id"] = json!(domain::EventId::new().to_string());
                e["data"]["padding"] = json!("x".repeat(60_000 + i));
                sequenced(&e.to_string(), i as u32)
            })
            .collect();
        let queue = InMemoryPublisher::default();
        relay(&queue, records).await;
        let batches = queue.batches();
        assert!(!batches.is_empty());
        for (entries, bytes) in &batches {
            assert!(*entries <= BATCH_MAX, "{entries} entries");
            assert!(*bytes <= BATCH_BYTES, "{bytes} bytes");
        }
        let routed = queues_for(domain::EventType::EpisodeUpdated).len();
        let sent: usize = batches.iter().map(|(n, _)| n).sum();
        assert_eq!(sent, 12 * routed, "every message sent once");
    }

    #[test]
    fn reporting_is_the_default_and_false_turns_it_off() {
        assert_eq!(PartialFailure::from_env_value(None), PartialFailure::Report);
        assert_eq!(
            PartialFailure::from_env_value(Some("true")),
            PartialFailure::Report
        );
        assert_eq!(
            PartialFailure::from_env_value(Some("false")),
            PartialFailure::FailInvocation
        );
    }

    #[tokio::test]
    async fn parks_records_that_are_not_events_and_goes_on() {
        let queue = InMemoryPublisher::default();
        let records = vec![record("{\"not\":\"an event\"}"), record(GOLDEN[0])];
        relay(&queue, records).await;
        let parked: Vec<String> = queue.parked().into_iter().map(|(body, _)| body).collect();
        assert_eq!(parked, ["{\"not\":\"an event\"}"]);
        let routed = queues_for(domain::EventType::EpisodeCreated).len();
        assert_eq!(queue.accepted().len(), routed);
    }

    #[tokio::test]
    async fn ignores_removals() {
        let queue = InMemoryPublisher::default();
        let mut removal = record(GOLDEN[0]);
        removal["eventName"] = json!("REMOVE");
        relay(&queue, vec![removal]).await;
        assert!(queue.accepted().is_empty() && queue.batches().is_empty());
    }
}
