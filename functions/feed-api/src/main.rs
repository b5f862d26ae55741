//! `feed-api`: the activity log (an episode's feed; the whole log for admins), the caller's
//! notifications, episode watches and notification preferences.

mod activity;
mod exports;
mod notifications;
mod preferences;
mod presence;
mod routes;
mod watches;

use std::sync::Arc;

use aws_adapters::{
    DynamoActivityStore, DynamoExportStore, DynamoNotificationStore, DynamoPresenceReader,
    NotificationTables, ObjectStore,
};
use lambda_http::Error;
use lambda_kit::AwsCallCounter;
use lambda_kit::{required_env, whole_env};

use crate::routes::{Api, ExportDesk};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let activity_table = required_env("ACTIVITY_TABLE")?;
    let tables = NotificationTables {
        notifications: required_env("NOTIFICATIONS_TABLE")?,
        watches: required_env("WATCHES_TABLE")?,
        settings: required_env("SETTINGS_TABLE")?,
        episodes: required_env("EPISODES_TABLE")?,
    };
    let presence_table = required_env("PRESENCE_TABLE")?;
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let activity = DynamoActivityStore::new(dynamodb.clone(), activity_table);
    let presence =
        DynamoPresenceReader::new(dynamodb.clone(), presence_table, tables.episodes.clone());
    let exports = ExportDesk {
        store: DynamoExportStore::new(dynamodb.clone(), required_env("EXPORTS_TABLE")?),
        // Presigns the exports' downloads (no call to S3).
        objects: ObjectStore::new(&sdk, required_env("FILES_BUCKET")?, &calls),
        // The template's ExportRetentionDays.
        retention_days: whole_env(
            "EXPORT_RETENTION_DAYS",
            domain::export::DEFAULT_RETENTION_DAYS,
        )?,
    };
    let notifications = DynamoNotificationStore::new(dynamodb, tables)
        .with_retention(lambda_kit::notification_retention_from_env()?);
    let api = Api {
        activity,
        notifications,
        presence,
        exports,
        calls,
    };
    lambda_http::run(routes::app(Arc::new(api))).await
}
