//! `ws-api`: the WebSocket API's one function. `$connect` verifies the caller's JWT (API
//! Gateway has no JWT authorizer for WebSocket APIs) and records the connection; `$disconnect`
//! forgets it; messages subscribe, unsubscribe, ping and resume, each answered on the same
//! socket (the route's response).

mod handler;
mod handshake;

use std::time::Duration;

use aws_adapters::{
    DynamoEventHistory, DynamoRealtimeStore, DynamoSubscriber, MessageQueue, RealtimeTables,
};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use jwt_auth::{Expectations, Verifier};
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let tables = RealtimeTables {
        connections: required_env("CONNECTIONS_TABLE")?,
        subscriptions: required_env("SUBSCRIPTIONS_TABLE")?,
        presence: required_env("PRESENCE_TABLE")?,
    };
    let verifier = Verifier::new(Expectations {
        issuer: required_env("JWT_ISSUER")?,
        audience: required_env("JWT_AUDIENCE")?,
        leeway_seconds: 0,
    })
    .map_err(|e| format!("JWT_ISSUER: {e}"))?;
    let grace = required_env("PRESENCE_GRACE_SECONDS")?
        .parse::<u64>()
        .map_err(|e| format!("PRESENCE_GRACE_SECONDS: {e}"))?;
    let window = match std::env::var("PRESENCE_WINDOW_SECONDS") {
        Ok(v) => v
            .parse::<u32>()
            .map_err(|e| format!("PRESENCE_WINDOW_SECONDS: {e}"))?,
        Err(_) => domain::realtime::PRESENCE_WINDOW_SECONDS,
    };
    let presence_queue = required_env("PRESENCE_QUEUE_URL")?;
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let store = DynamoRealtimeStore::new(dynamodb.clone(), tables)
        .with_presence_retention_days(lambda_kit::presence_retention_from_env()?);
    let app = handler::App {
        subscriber: DynamoSubscriber::new(store.clone(), required_env("EPISODES_TABLE")?),
        history: DynamoEventHistory::new(dynamodb, required_env("EVENTS_TABLE")?),
        store,
        notices: MessageQueue::new(aws_sdk_sqs::Client::new(&sdk), presence_queue),
        verifier,
        grace: Duration::from_secs(grace),
        window,
        // How long an `editing` holds without being sent again (tests shorten it).
        editing_seconds: lambda_kit::whole_env(
            "EDITING_SECONDS",
            u32::try_from(domain::realtime::EDITING_SECONDS).unwrap_or(30),
        )?,
        calls,
    };
    lambda_runtime::run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| handler::handle(&app, event.payload),
    ))
    .await
}
