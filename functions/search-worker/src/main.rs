//! `search-worker`: consumes the search queue (the episode events) and keeps the search index.

mod worker;

use aws_adapters::{DeadLetterQueue, DynamoEpisodeReader, DynamoSearchIndex};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;
use lambda_kit::sqs::logged_batch;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let search_table = required_env("SEARCH_TABLE")?;
    let episodes_table = required_env("EPISODES_TABLE")?;
    let dead_letter_url = required_env("SEARCH_DLQ_URL")?;
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let index = DynamoSearchIndex::new(dynamodb.clone(), search_table);
    let episodes = DynamoEpisodeReader::new(dynamodb, episodes_table);
    let dead_letters = DeadLetterQueue::new(aws_sdk_sqs::Client::new(&sdk), dead_letter_url);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let messages = event.payload.records.len();
        logged_batch(
            messages,
            &calls,
            worker::handle(&index, &episodes, &dead_letters, event),
        )
    }))
    .await
}
