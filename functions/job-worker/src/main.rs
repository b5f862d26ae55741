//! `job-worker`: runs processing jobs from the jobs queue (the relay routes `job.created` and
//! `job.retried` there; retries come back as delayed messages).

mod processors;
mod worker;

use std::time::Duration;

use aws_adapters::{
    DeadLetterQueue, DynamoFileStore, DynamoJobStore, FileTables, JobTables, MessageQueue,
    ObjectStore,
};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;
use lambda_kit::sqs::logged_batch;
use lambda_runtime::{Error, LambdaEvent, service_fn};

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
    let lease = required_env("JOB_LEASE_SECONDS")?
        .parse::<u64>()
        .map_err(|e| format!("JOB_LEASE_SECONDS: {e}"))?;
    let upload_rules = lambda_kit::upload_rules_from_env()?;
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let app = worker::App {
        jobs: DynamoJobStore::new(dynamodb.clone(), jobs),
        files: DynamoFileStore::new(dynamodb, files),
        objects: ObjectStore::new(&sdk, required_env("FILES_BUCKET")?, &calls),
        queue: MessageQueue::new(sqs.clone(), required_env("JOBS_QUEUE_URL")?),
        dead_letters: DeadLetterQueue::new(sqs, required_env("JOBS_DLQ_URL")?),
        lease: Duration::from_secs(lease),
        upload_rules,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let messages = event.payload.records.len();
        logged_batch(messages, &calls, worker::handle(&app, event))
    }))
    .await
}
