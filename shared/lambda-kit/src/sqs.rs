//! SQS event sources: the partial batch response every worker returns, so one bad message
//! fails alone and its batch goes on (`ReportBatchItemFailures`).

use std::convert::Infallible;
use std::future::Future;

use crate::call_counter::AwsCallCounter;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use domain::DomainEvent;
use domain::store::DeadLetters;

/// The batch's messages as domain events, each with its message id. A message that is not an
/// event this code reads goes straight to the dead-letter queue (retrying cannot make it
/// parse); the second list names those that could not even be parked, to report as failures.
pub async fn read_events(
    records: &[SqsMessage],
    dead_letters: &impl DeadLetters,
) -> (Vec<(String, DomainEvent)>, Vec<String>) {
    read_messages(records, DomainEvent::from_message, dead_letters).await
}

/// [`read_events`] for any message type: `parse` says what a body is, or why it is poison.
///
/// A body that stands twice in one batch (the relay resends a stream batch that failed in
/// part, so two copies of one event can meet in one receive) is handled once: the later copy
/// is acknowledged as it is, since the kept one carries the same content and comes again if it
/// fails. Without that, one batch write would name the same key twice, which DynamoDB refuses
/// whole.
pub async fn read_messages<T>(
    records: &[SqsMessage],
    parse: impl Fn(&str) -> Result<T, String>,
    dead_letters: &impl DeadLetters,
) -> (Vec<(String, T)>, Vec<String>) {
    let mut events = Vec::new();
    let mut failed = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for message in records {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or_default();
        if !seen.insert(body) {
            tracing::info!(message_id = %id, "a copy of a message earlier in the batch; handled once");
            continue;
        }
        match parse(body) {
            Ok(e) => events.push((id, e)),
            Err(reason) => {
                tracing::error!(message_id = %id, %reason, "poison message");
                if dead_letters.park(body, &reason).await.is_err() {
                    failed.push(id);
                }
            }
        }
    }
    (events, failed)
}

/// Runs a worker's handling of one batch and logs one line for it: messages, failures, and
/// the AWS calls it cost, DynamoDB's apart, as `calls` counted them.
pub async fn logged_batch<F>(
    messages: usize,
    calls: &AwsCallCounter,
    work: F,
) -> Result<SqsBatchResponse, Infallible>
where
    F: Future<Output = Result<SqsBatchResponse, Infallible>>,
{
    calls.take();
    let started = std::time::Instant::now();
    let response = work.await;
    if let Ok(r) = &response {
        let failed = r.batch_item_failures.len();
        let spent = calls.take();
        tracing::info!(
            messages,
            failed,
            dynamodb_calls = spent.dynamodb,
            dynamodb_read_units = spent.read_units,
            dynamodb_write_units = spent.write_units,
            aws_calls = spent.total,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "batch handled"
        );
    }
    response
}

/// The response naming the messages that failed; the others are deleted from the queue.
pub fn batch_response<I, S>(failed_message_ids: I) -> SqsBatchResponse
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed_message_ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.into();
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_failed_message() {
        let r = batch_response(["a", "b"]);
        let ids: Vec<_> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(
            serde_json::to_value(batch_response(Vec::<String>::new())).unwrap()["batchItemFailures"],
            serde_json::json!([])
        );
    }
}
