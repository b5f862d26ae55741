//! `activity-worker`: consumes the activity queue and writes one activity entry per event.

mod worker;

use aws_adapters::{DeadLetterQueue, DynamoActivityStore};
use lambda_kit::required_env;
use lambda_runtime::{Error, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let activity_table = required_env("ACTIVITY_TABLE")?;
    let episodes_table = required_env("EPISODES_TABLE")?;
    let dead_letter_url = required_env("ACTIVITY_DLQ_URL")?;
    let sdk = aws_adapters::load_sdk_config().await;
    let store = DynamoActivityStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        activity_table,
        episodes_table,
    );
    let dead_letters = DeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), dead_letter_url);
    lambda_runtime::run(service_fn(|event| {
        worker::handle(&store, &dead_letters, event)
    }))
    .await
}
