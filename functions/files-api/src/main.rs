//! `files-api`: an episode's files. Bytes never pass through here: uploads and downloads use
//! presigned S3 URLs; this function decides what may be uploaded, checks that it was, and
//! writes each change with its event (`file.uploaded`, `file.downloaded`, `file.deleted`).

mod files;
mod input;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use aws_adapters::{DynamoFileStore, FileTables, MessageQueue, ObjectStore};
use lambda_http::Error;
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;

use crate::routes::Api;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let tables = FileTables {
        files: required_env("FILES_TABLE")?,
        episodes: required_env("EPISODES_TABLE")?,
        events: required_env("EVENTS_TABLE")?,
    };
    let upload_ttl = required_env("UPLOAD_URL_SECONDS")?
        .parse::<u64>()
        .map_err(|e| format!("UPLOAD_URL_SECONDS: {e}"))?;
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let api = Api {
        files: DynamoFileStore::new(aws_adapters::counted_dynamodb(&sdk, &calls), tables),
        objects: ObjectStore::new(&sdk, required_env("FILES_BUCKET")?, &calls),
        tasks: MessageQueue::new(
            aws_adapters::counted_sqs(&sdk, &calls),
            required_env("FILES_QUEUE_URL")?,
        ),
        upload_ttl: Duration::from_secs(upload_ttl),
        calls,
    };
    lambda_http::run(routes::app(Arc::new(api))).await
}
