//! `analytics-api`: the production analytics routes of the HTTP API, for editors and admins.

mod reports;
mod routes;

use std::sync::Arc;

use aws_adapters::DynamoAnalyticsStore;
use lambda_http::Error;
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;

use crate::routes::Api;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let table = required_env("ANALYTICS_TABLE")?;
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let api = Api {
        analytics: DynamoAnalyticsStore::new(dynamodb, table),
        calls,
    };
    lambda_http::run(routes::app(Arc::new(api))).await
}
