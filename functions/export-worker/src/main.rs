//! `export-worker`: triggered by the exports table's stream, it writes each new export of the
//! activity log to the bucket (JSON Lines and CSV, in parts, in constant memory), then records
//! how it ended, notifies the admin who asked and adds the export's own entry to the log.

mod worker;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_adapters::{
    DynamoActivityStore, DynamoExportStore, DynamoNotificationStore, MessageQueue,
    NotificationTables, ObjectStore,
};
use aws_lambda_events::event::dynamodb::Event;
use domain::ExportId;
use lambda_kit::{AwsCallCounter, required_env, whole_env};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let tables = NotificationTables {
        notifications: required_env("NOTIFICATIONS_TABLE")?,
        settings: required_env("SETTINGS_TABLE")?,
        // Named for the store; the export worker reads neither (it names its one recipient).
        watches: required_env("WATCHES_TABLE")?,
        episodes: required_env("EPISODES_TABLE")?,
    };
    let app = worker::App {
        exports: DynamoExportStore::new(dynamodb.clone(), required_env("EXPORTS_TABLE")?),
        activity: DynamoActivityStore::new(dynamodb.clone(), required_env("ACTIVITY_TABLE")?)
            .with_retention_days(whole_env(
                "ACTIVITY_RETENTION_DAYS",
                domain::activity::DEFAULT_RETENTION_DAYS,
            )?),
        notifications: DynamoNotificationStore::new(dynamodb, tables)
            .with_retention(lambda_kit::notification_retention_from_env()?),
        objects: ObjectStore::new(&sdk, required_env("FILES_BUCKET")?, &calls),
        live: MessageQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            required_env("REALTIME_QUEUE_URL")?,
        ),
        part_bytes: domain::export::PART_BYTES,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Event>| {
        let app = &app;
        let calls = &calls;
        async move {
            let deadline = deadline(event.context.deadline);
            for id in new_exports(&event.payload) {
                calls.take();
                worker::run(app, id, deadline).await?;
                let spent = calls.take();
                tracing::info!(export_id = %id, aws_calls = spent.total, "export handled");
            }
            Ok::<(), Error>(())
        }
    }))
    .await
}

/// The invocation's deadline (ms since the epoch) as an instant.
fn deadline(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// The exports the stream's records inserted (the event source passes only insertions; a
/// record that names no export id is logged and skipped: nothing could be done with it).
fn new_exports(event: &Event) -> Vec<ExportId> {
    event
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .filter_map(|r| {
            let keys = serde_json::to_value(&r.change.keys).unwrap_or(Value::Null);
            let id = keys.pointer("/id/S").and_then(Value::as_str);
            match id.map(ExportId::parse) {
                Some(Ok(id)) => Some(id),
                _ => {
                    tracing::warn!(?keys, "a stream record names no export");
                    None
                }
            }
        })
        .collect()
}
