//! `event-relay`: the outbox's other half. Triggered by the events table's stream, it sends
//! each new event to the queues the routing table names, with `SendMessageBatch`, retrying
//! the entries SQS refused. Nothing is dropped: a record that can never be relayed is parked
//! in the relay's dead-letter queue, and when SQS stays down the relay names the first record
//! it could not relay (`ReportBatchItemFailures`), so the stream resends from there and not the
//! records already relayed (consumers are idempotent on the event id either way).

mod relay;

use std::collections::HashMap;

use aws_adapters::{DeadLetterQueue, SqsPublisher};
use domain::Queue;
use lambda_kit::required_env;
use lambda_runtime::{Error, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let urls = HashMap::from([
        (Queue::Activity, required_env("ACTIVITY_QUEUE_URL")?),
        (
            Queue::Notifications,
            required_env("NOTIFICATIONS_QUEUE_URL")?,
        ),
        (Queue::Realtime, required_env("REALTIME_QUEUE_URL")?),
        (Queue::Files, required_env("FILES_QUEUE_URL")?),
        (Queue::Jobs, required_env("JOBS_QUEUE_URL")?),
        (Queue::Search, required_env("SEARCH_QUEUE_URL")?),
        (Queue::Analytics, required_env("ANALYTICS_QUEUE_URL")?),
    ]);
    let dead_letter_url = required_env("RELAY_DLQ_URL")?;
    let sdk = aws_adapters::load_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let publisher = SqsPublisher::new(
        sqs.clone(),
        urls,
        DeadLetterQueue::new(sqs, dead_letter_url),
    );
    let policy = relay::RetryPolicy::default();
    let mode = relay::PartialFailure::from_env_value(
        std::env::var("REPORT_BATCH_ITEM_FAILURES").ok().as_deref(),
    );
    lambda_runtime::run(service_fn(|event| {
        relay::handle(&publisher, &policy, mode, event)
    }))
    .await
}
