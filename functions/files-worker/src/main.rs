//! `files-worker`: the files queue. An episode's deletion takes its files with it (objects,
//! records, one `file.deleted` each); a file still pending once its upload URLs expired is
//! confirmed if the upload is really there, else removed with whatever was uploaded.

mod worker;

use aws_adapters::{DeadLetterQueue, DynamoFileStore, FileTables, MessageQueue, ObjectStore};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;
use lambda_kit::sqs::logged_batch;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let tables = FileTables {
        files: required_env("FILES_TABLE")?,
        episodes: required_env("EPISODES_TABLE")?,
        events: required_env("EVENTS_TABLE")?,
    };
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let app = worker::App {
        files: DynamoFileStore::new(aws_adapters::counted_dynamodb(&sdk, &calls), tables),
        objects: ObjectStore::new(&sdk, required_env("FILES_BUCKET")?, &calls),
        tasks: MessageQueue::new(sqs.clone(), required_env("FILES_QUEUE_URL")?),
        dead_letters: DeadLetterQueue::new(sqs, required_env("FILES_DLQ_URL")?),
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let messages = event.payload.records.len();
        logged_batch(messages, &calls, worker::handle(&app, event))
    }))
    .await
}
