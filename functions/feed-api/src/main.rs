//! `feed-api`: the activity log over HTTP — an episode's feed, and the whole log for admins.

mod routes;

use aws_adapters::{AwsCallCounter, DynamoActivityStore};
use lambda_http::{Error, service_fn};
use lambda_kit::required_env;

use crate::routes::Api;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_kit::telemetry::init();
    let activity_table = required_env("ACTIVITY_TABLE")?;
    let sdk = aws_adapters::load_sdk_config().await;
    let calls = AwsCallCounter::default();
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(calls.clone())
            .build(),
    );
    // The activity store reads only its own table here; labels are the worker's business.
    let activity = DynamoActivityStore::new(dynamodb, activity_table, String::new());
    let api = Api { activity, calls };
    lambda_http::run(service_fn(|req| async {
        Ok::<_, std::convert::Infallible>(routes::handle(&api, req).await)
    }))
    .await
}
