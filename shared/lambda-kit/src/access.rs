//! One way every HTTP function handles a request: a span with the request and correlation ids
//! (and the user id once known), problems rendered as problem+json, and one access-log line
//! with status, latency and the AWS calls the request cost.

use std::future::Future;
use std::time::Instant;

use crate::call_counter::AwsCallCounter;
use lambda_http::{Body, Request, Response};
use tracing::Instrument;

use crate::identity::RequestMeta;
use crate::problem::Problem;

/// Runs `route` for `req` inside the request's span and logs its outcome, with the AWS calls
/// (and the DynamoDB calls among them) that `calls` counted meanwhile.
pub async fn serve<F>(
    req: &Request,
    meta: &RequestMeta,
    calls: &AwsCallCounter,
    route: F,
) -> Response<Body>
where
    F: Future<Output = Result<Response<Body>, Problem>>,
{
    let started = Instant::now();
    let span = tracing::info_span!(
        "request",
        request_id = meta.request_id.as_deref().unwrap_or_default(),
        correlation_id = %meta.correlation_id,
        user_id = tracing::field::Empty,
    );
    if let Ok(actor) = meta.actor() {
        span.record("user_id", actor.id.as_str());
    }
    calls.take();
    async {
        let response = match route.await {
            Ok(response) => response,
            Err(problem) => problem.into_response(req.uri().path(), meta.request_id.as_deref()),
        };
        let spent = calls.take();
        tracing::info!(
            method = %req.method(),
            path = req.uri().path(),
            status = response.status().as_u16(),
            latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            aws_calls = spent.total,
            dynamodb_calls = spent.dynamodb,
            aws_wait_us = u64::try_from(spent.waiting.as_micros()).unwrap_or(u64::MAX),
            "request handled"
        );
        response
    }
    .instrument(span)
    .await
}
