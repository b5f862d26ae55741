//! `activity-worker`: consumes the activity queue and writes one activity entry per event.

mod worker;

use aws_adapters::{DeadLetterQueue, DynamoActivityStore, DynamoEpisodeLabels};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_kit::AwsCallCounter;
use lambda_kit::sqs::logged_batch;
use lambda_kit::{required_env, whole_env};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let activity_table = required_env("ACTIVITY_TABLE")?;
    let episodes_table = required_env("EPISODES_TABLE")?;
    let dead_letter_url = required_env("ACTIVITY_DLQ_URL")?;
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    // The template's ActivityRetentionDays.
    let retention = whole_env(
        "ACTIVITY_RETENTION_DAYS",
        domain::activity::DEFAULT_RETENTION_DAYS,
    )?;
    let store =
        DynamoActivityStore::new(dynamodb.clone(), activity_table).with_retention_days(retention);
    let labels = DynamoEpisodeLabels::new(dynamodb, episodes_table);
    let dead_letters = DeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), dead_letter_url);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let messages = event.payload.records.len();
        logged_batch(
            messages,
            &calls,
            worker::handle(&store, &labels, &dead_letters, event),
        )
    }))
    .await
}
