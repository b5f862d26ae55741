//! `episodes-api`: the episode routes of the HTTP API.

mod contract;
mod handlers;
mod input;
mod routes;
mod search;

use aws_adapters::{DynamoEpisodeStore, DynamoSearchIndex, Tables};
use std::sync::Arc;

use lambda_http::Error;
use lambda_kit::AwsCallCounter;
use lambda_kit::required_env;

use crate::routes::Api;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let tables = Tables {
        episodes: required_env("EPISODES_TABLE")?,
        events: required_env("EVENTS_TABLE")?,
        watches: required_env("WATCHES_TABLE")?,
    };
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_adapters::counted_dynamodb(&sdk, &calls);
    let api = Api {
        index: DynamoSearchIndex::new(dynamodb.clone(), required_env("SEARCH_TABLE")?),
        store: DynamoEpisodeStore::new(dynamodb, tables),
        calls,
    };
    lambda_http::run(routes::app(Arc::new(api))).await
}
