//! `jobs-api`: processing jobs on an episode's files. Every move is a conditional write with
//! its event; the job worker does the work (the relay routes `job.created` and `job.retried`).

mod jobs;
mod routes;
mod rules;

use std::sync::Arc;

use aws_adapters::{DynamoFileStore, DynamoJobStore, FileTables, JobTables};
use lambda_http::Error;
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let jobs = JobTables {
        jobs: required_env("JOBS_TABLE")?,
        episodes: required_env("EPISODES_TABLE")?,
        files: required_env("FILES_TABLE")?,
        events: required_env("EVENTS_TABLE")?,
    };
    let files = FileTables {
        files: jobs.files.clone(),
        episodes: jobs.episodes.clone(),
        events: jobs.events.clone(),
    };
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let api = routes::Api {
        jobs: DynamoJobStore::new(dynamodb.clone(), jobs),
        files: DynamoFileStore::new(dynamodb, files),
        // A test hook (`params.inject_failures`), enabled by configuration on local stacks only.
        fault_injection: std::env::var("JOB_FAULT_INJECTION").is_ok_and(|v| v == "enabled"),
        upload_rules: lambda_kit::upload_rules_from_env()?,
        calls,
    };
    lambda_http::run(routes::app(Arc::new(api))).await
}
