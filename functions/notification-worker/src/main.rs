//! `notification-worker`: consumes the notification queue and tells the people concerned;
//! and reads the notifications table's stream, so that a notification its TTL removed comes
//! off the bell's counts.

mod expiry;
mod worker;

use aws_adapters::{
    DeadLetterQueue, DynamoEpisodeLabels, DynamoNotificationStore, MessageQueue, NotificationTables,
};
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use domain::notification::Batching;
use lambda_kit::AwsCallCounter;
use lambda_kit::sqs::logged_batch;
use lambda_kit::{required_env, whole_env};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let tables = NotificationTables {
        notifications: required_env("NOTIFICATIONS_TABLE")?,
        watches: required_env("WATCHES_TABLE")?,
        settings: required_env("SETTINGS_TABLE")?,
        episodes: required_env("EPISODES_TABLE")?,
    };
    let dead_letter_url = required_env("NOTIFICATIONS_DLQ_URL")?;
    let realtime_url = required_env("REALTIME_QUEUE_URL")?;
    // The template's NotificationBatchSeconds; 0 turns batching off.
    let batching = Batching {
        window_seconds: i64::from(whole_env("NOTIFICATION_BATCH_SECONDS", 60)?),
    };
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let episodes = tables.episodes.clone();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let store = worker::Stores {
        notifications: DynamoNotificationStore::new(dynamodb.clone(), tables)
            .with_retention(lambda_kit::notification_retention_from_env()?),
        labels: DynamoEpisodeLabels::new(dynamodb, episodes),
        live: MessageQueue::new(sqs.clone(), realtime_url),
        batching,
    };
    let dead_letters = DeadLetterQueue::new(sqs, dead_letter_url);
    // One function, two event sources: the queue's batches and the table's stream.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async {
        let (payload, context) = event.into_parts();
        if from_stream(&payload) {
            let stream: StreamEvent = serde_json::from_value(payload)?;
            expiry::handle(&store.notifications, &removals(&stream)).await?;
            return Ok::<Value, Error>(Value::Null);
        }
        let batch: SqsEvent = serde_json::from_value(payload)?;
        let messages = batch.records.len();
        let response = logged_batch(
            messages,
            &calls,
            worker::handle(&store, &dead_letters, LambdaEvent::new(batch, context)),
        )
        .await?;
        Ok(serde_json::to_value(response)?)
    }))
    .await
}

/// Whether the invocation is a DynamoDB stream batch (else an SQS one).
fn from_stream(payload: &Value) -> bool {
    payload
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
        == Some("aws:dynamodb")
}

/// The notifications the stream's records removed (its other items and other changes are
/// skipped; an image that cannot be read is logged).
fn removals(stream: &StreamEvent) -> expiry::Removals {
    let mut found = expiry::Removals::default();
    for record in stream.records.iter().filter(|r| r.event_name == "REMOVE") {
        let image = serde_json::to_value(&record.change.old_image).unwrap_or(Value::Null);
        match aws_adapters::removed_from_image(&image) {
            Ok(Some(removed)) => found.removed.push(removed),
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(%reason, "a removed notification could not be read; not uncounted");
                found.unreadable += 1;
            }
        }
    }
    found
}
