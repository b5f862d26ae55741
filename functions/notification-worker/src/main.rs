//! `notification-worker`: consumes the notification queue and tells the people concerned.

mod worker;

use aws_adapters::{
    DeadLetterQueue, DynamoEpisodeLabels, DynamoNotificationStore, MessageQueue, NotificationTables,
};
use aws_lambda_events::event::sqs::SqsEvent;
use domain::notification::Batching;
use lambda_kit::AwsCallCounter;
use lambda_kit::sqs::logged_batch;
use lambda_kit::{required_env, whole_env};
use lambda_runtime::{Error, LambdaEvent, service_fn};

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
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let messages = event.payload.records.len();
        logged_batch(
            messages,
            &calls,
            worker::handle(&store, &dead_letters, event),
        )
    }))
    .await
}
