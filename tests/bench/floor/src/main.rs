//! The floor for the cold-start benchmark: cargo-lambda's hello-world shape (a multi-threaded
//! runtime, lambda_runtime's default tracing subscriber, an echo handler), built with the same
//! profile as the functions. Not deployed.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}
