//! Posting frames to WebSocket connections through API Gateway's @connections API.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use domain::ConnectionId;
use domain::store::realtime::{ConnectionPosts, FanOut, PostOutcome};
use futures_util::StreamExt;

/// Posts in flight at once during a fan-out, unless configured otherwise.
pub const FAN_OUT_CONCURRENCY: usize = 64;
/// Attempts for a throttled post (the first included): 0.15 s of waiting at most. One still
/// throttled then is `PostOutcome::Throttled`, and the broadcaster posts its frame again later
/// (a `repost` notice). Patience here is bounded by the worker's 30 s timeout: in a storm, a
/// batch of 10 messages to 640 connections each (10 waves of 64 per message) waits 15 s at most.
/// (With 4 tries it was 35 s, and 10 were planned once: the timeout would have sent every
/// message of the batch again.)
const THROTTLE_ATTEMPTS: u32 = 3;
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_CAP: Duration = Duration::from_millis(400);

#[derive(Debug, Clone)]
pub struct ConnectionPoster {
    client: Client,
    concurrency: usize,
}

/// How a failed post is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Gone,
    Throttled,
    Other,
}

fn classify(status: Option<u16>, code: Option<&str>) -> Failure {
    match (status, code) {
        (Some(410), _) | (_, Some("GoneException")) => Failure::Gone,
        (Some(429), _)
        | (
            _,
            Some("LimitExceededException" | "TooManyRequestsException" | "ThrottlingException"),
        ) => Failure::Throttled,
        _ => Failure::Other,
    }
}

impl ConnectionPoster {
    /// A client for the @connections endpoint of one WebSocket API stage
    /// (`https://{api}.execute-api.{region}.amazonaws.com/{stage}` on AWS; configuration).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: &str, concurrency: usize) -> Self {
        let conf = aws_sdk_apigatewaymanagement::config::Builder::from(sdk)
            .endpoint_url(endpoint)
            // Throttling is retried below, with jitter; nothing else is worth retrying here.
            .retry_config(RetryConfig::disabled())
            .build();
        Self {
            client: Client::from_conf(conf),
            concurrency: concurrency.max(1),
        }
    }
}

impl ConnectionPosts for ConnectionPoster {
    /// Posts one frame, retrying while throttled with exponential backoff and full jitter.
    async fn post(&self, connection: &ConnectionId, data: &[u8]) -> PostOutcome {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .post_to_connection()
                .connection_id(connection.as_str())
                .data(Blob::new(data))
                .send()
                .await;
            let err = match result {
                Ok(_) => return PostOutcome::Sent,
                Err(e) => e,
            };
            let status = err.raw_response().map(|r| r.status().as_u16());
            match classify(status, err.code()) {
                Failure::Gone => return PostOutcome::Gone,
                Failure::Throttled if attempt < THROTTLE_ATTEMPTS => {}
                Failure::Throttled => return PostOutcome::Throttled,
                Failure::Other => return PostOutcome::Failed(describe(&err)),
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    /// Closes a connection (its token expired). One already closed is fine (410).
    async fn close(&self, connection: &ConnectionId) -> Result<(), String> {
        match self
            .client
            .delete_connection()
            .connection_id(connection.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                match classify(status, e.code()) {
                    Failure::Gone => Ok(()),
                    _ => Err(describe(&e)),
                }
            }
        }
    }

    /// Posts the same frame to many connections, a bounded number at a time.
    /// One connection's failure never stops the others.
    async fn fan_out(&self, connections: &[ConnectionId], data: &[u8]) -> FanOut {
        let outcomes: Vec<(ConnectionId, PostOutcome)> =
            futures_util::stream::iter(connections.iter().cloned())
                .map(|c| async move {
                    let outcome = self.post(&c, data).await;
                    (c, outcome)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        let mut report = FanOut::default();
        for (connection, outcome) in outcomes {
            match outcome {
                PostOutcome::Sent => report.sent += 1,
                PostOutcome::Gone => report.gone.push(connection),
                PostOutcome::Throttled => report.throttled.push(connection),
                PostOutcome::Failed(reason) => {
                    tracing::warn!(%connection, %reason, "post to connection failed");
                    report.failed += 1;
                }
            }
        }
        report
    }
}

fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: &SdkError<E, R>,
) -> String {
    match err {
        SdkError::ServiceError(se) => se.err().code().unwrap_or("service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch failure".to_owned(),
        other => format!("{other:?}").chars().take(200).collect(),
    }
}

/// `BACKOFF_BASE * 2^attempt`, at most `BACKOFF_CAP`, with full jitter.
fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(BACKOFF_CAP);
    let random = RandomState::new().hash_one(attempt);
    let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(random % millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_connections_are_told_from_throttles_and_other_failures() {
        assert_eq!(classify(Some(410), Some("GoneException")), Failure::Gone);
        assert_eq!(classify(None, Some("GoneException")), Failure::Gone);
        assert_eq!(classify(Some(429), None), Failure::Throttled);
        assert_eq!(
            classify(Some(400), Some("LimitExceededException")),
            Failure::Throttled
        );
        assert_eq!(
            classify(Some(403), Some("ForbiddenException")),
            Failure::Other
        );
        assert_eq!(classify(Some(500), None), Failure::Other);
        assert_eq!(classify(None, None), Failure::Other);
    }

    #[test]
    fn backoff_grows_and_stays_under_its_cap() {
        let mut patience = Duration::ZERO;
        for attempt in 1..THROTTLE_ATTEMPTS {
            let cap = (BACKOFF_BASE * 2u32.pow(attempt)).min(BACKOFF_CAP);
            for _ in 0..50 {
                assert!(backoff(attempt) < cap);
            }
            patience += cap;
        }
        // A throttled post waits at most this long in all: a storm over a batch of 10 messages
        // to 640 connections each (10 waves of 64 per message) stays well inside the 30 s timeout.
        assert!(patience <= Duration::from_millis(150), "{patience:?}");
        assert!(patience * 10 * 10 <= Duration::from_secs(15));
    }
}
