//! A plain SDK function, for comparison: `aws_config::load_defaults` and two clients built at
//! init the way the SDK's guides show, an echo handler. Not deployed.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let s3 = aws_sdk_s3::Client::new(&config);
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let _clients = (&dynamodb, &s3);
        async move { Ok::<_, Error>(event.payload) }
    }))
    .await
}
