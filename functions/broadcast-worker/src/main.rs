//! `broadcast-worker`: consumes the realtime queue and the presence queue, and posts frames to
//! WebSocket connections — each episode event to the connections subscribed to its episode,
//! each notification to its recipient's connections, and each presence round (the joins and
//! leaves of a window) to the episode's subscribers. Presence has its own queue, so content
//! never waits behind it.

mod worker;

use aws_adapters::{
    ConnectionPoster, DeadLetterQueue, DynamoRealtimeStore, MessageQueue, RealtimeTables,
};
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;
use lambda_kit::sqs::logged_batch;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    // Only the tables this worker touches: subscriptions and connections (who to post to, and
    // clean-up of gone connections), presence (leaving, and the rounds).
    let tables = RealtimeTables {
        connections: required_env("CONNECTIONS_TABLE")?,
        subscriptions: required_env("SUBSCRIPTIONS_TABLE")?,
        presence: required_env("PRESENCE_TABLE")?,
    };
    let endpoint = required_env("CONNECTIONS_ENDPOINT")?;
    let concurrency = match std::env::var("FAN_OUT_CONCURRENCY") {
        Ok(v) => v
            .parse::<usize>()
            .map_err(|e| format!("FAN_OUT_CONCURRENCY: {e}"))?,
        Err(_) => aws_adapters::connections::FAN_OUT_CONCURRENCY,
    };
    let grace = required_env("PRESENCE_GRACE_SECONDS")?
        .parse::<u32>()
        .map_err(|e| format!("PRESENCE_GRACE_SECONDS: {e}"))?;
    let window = match std::env::var("PRESENCE_WINDOW_SECONDS") {
        Ok(v) => v
            .parse::<u32>()
            .map_err(|e| format!("PRESENCE_WINDOW_SECONDS: {e}"))?,
        Err(_) => domain::realtime::PRESENCE_WINDOW_SECONDS,
    };
    let list_max = match std::env::var("PRESENCE_LIST_MAX") {
        Ok(v) => v
            .parse::<usize>()
            .map_err(|e| format!("PRESENCE_LIST_MAX: {e}"))?,
        Err(_) => domain::realtime::PRESENCE_LIST_MAX,
    };
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let app = worker::App {
        store: DynamoRealtimeStore::new(aws_adapters::counted_dynamodb(&sdk, &calls), tables)
            .with_presence_retention_days(lambda_kit::presence_retention_from_env()?),
        poster: ConnectionPoster::new(&sdk, &endpoint, concurrency),
        notices: MessageQueue::new(sqs.clone(), required_env("PRESENCE_QUEUE_URL")?),
        dead_letters: DeadLetterQueue::new(sqs, required_env("REALTIME_DLQ_URL")?),
        grace,
        window,
        list_max,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let messages = event.payload.records.len();
        logged_batch(messages, &calls, worker::handle(&app, event))
    }))
    .await
}
