//! RFC 9457 problem details. Every error a client sees is one of these; 5xx bodies say nothing
//! about the inside.

use domain::{FieldError, ValidationErrors};
use lambda_http::http::{StatusCode, header};
use schemars::JsonSchema;
use serde::Serialize;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// `Retry-After` on a 503: the SDK has already retried with backoff inside the request.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// An RFC 9457 problem: the body of every 4xx and 5xx the functions send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem, relative to the API's base URL.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The offending fields, when the problem is about input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// On a stale version (409, 412): the version the resource is at, and who saved it first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<Box<SavedFirst>>,
}

/// The save that won a conflict: the version it made, when and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SavedFirst {
    pub version: domain::Version,
    pub saved_at: domain::Timestamp,
    pub saved_by: domain::Person,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: None,
            instance: None,
            errors: Vec::new(),
            request_id: None,
            current: None,
        }
    }

    /// Names the save that won the conflict.
    #[must_use]
    pub fn with_current(mut self, current: SavedFirst) -> Self {
        self.current = Some(Box::new(current));
        self
    }

    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    #[must_use]
    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Malformed syntax: bad JSON, a bad query parameter, an invalid id.
    pub fn bad_request(errors: Vec<FieldError>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "/problems/bad-request",
            "Bad request",
        )
        .with_errors(errors)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "/problems/unauthorized",
            "Unauthorized",
        )
        .with_detail("a valid bearer token is required")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "/problems/forbidden", "Forbidden").with_detail(detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "/problems/not-found", "Not found").with_detail(detail)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "/problems/method-not-allowed",
            "Method not allowed",
        )
    }

    /// The version in the body is not the current one.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "/problems/version-conflict",
            "Version conflict",
        )
        .with_detail(detail)
    }

    /// The `If-Match` tag is not the current one.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "/problems/precondition-failed",
            "Precondition failed",
        )
        .with_detail(detail)
    }

    pub fn precondition_required(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_REQUIRED,
            "/problems/precondition-required",
            "Precondition required",
        )
        .with_detail(detail)
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "/problems/payload-too-large",
            "Payload too large",
        )
        .with_detail(format!("the body must be at most {limit_bytes} bytes"))
    }

    pub fn unsupported_media_type(expected: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "/problems/unsupported-media-type",
            "Unsupported media type",
        )
        .with_detail(format!("send Content-Type: {expected}"))
    }

    /// Well-formed input that breaks a rule: field validation, an illegal status move.
    pub fn unprocessable(errors: ValidationErrors) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/problems/validation",
            "Invalid input",
        )
        .with_errors(errors.fields().to_vec())
    }

    /// A move the resource's state does not allow (an episode's status, a job's state): the
    /// input is valid, the resource is not where it would have to be, so 409 as for any other
    /// conflict with its current state. `field` names what was asked to move.
    pub fn illegal_transition(field: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "/problems/illegal-transition",
            "Illegal transition",
        )
        .with_detail(detail)
        .with_errors(vec![FieldError::new(
            field,
            "cannot be reached from the current one",
        )])
    }

    /// Something failed inside; the body says nothing more (the log has the cause).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/problems/internal",
            "Internal error",
        )
        .with_detail("the request could not be completed; retry later")
    }

    /// A store or queue failed: logged with what it was (never in the body), answered 503.
    pub fn unavailable(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, what, "dependency unavailable");
        Self::service_unavailable()
    }

    pub fn service_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "/problems/unavailable",
            "Service unavailable",
        )
        .with_detail("a dependency is unavailable; retry later")
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The problem+json body, with the request's path as `instance` and its request id.
    pub fn body(&self, instance: Option<&str>, request_id: Option<&str>) -> String {
        let body = Self {
            instance: instance.map(str::to_owned),
            request_id: request_id.map(str::to_owned),
            ..self.clone()
        };
        serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"type":"/problems/internal","title":"Internal error","status":500}"#.to_owned()
        })
    }
}

impl axum::response::IntoResponse for Problem {
    /// The status and the problem+json body. The router's access log, the one place that knows
    /// both, then adds the request's path as `instance` and the request id
    /// ([`crate::router::app`]).
    fn into_response(self) -> axum::response::Response {
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            self.body(None, None),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE.as_u16() {
            // A dependency failed (throttled, unreachable): worth retrying shortly.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response.extensions_mut().insert(self);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9457_with_fields_and_instance() {
        let problem = Problem::bad_request(vec![FieldError::new("limit", "must be 1 to 100")]);
        assert_eq!(problem.status(), StatusCode::BAD_REQUEST);
        let text = problem.body(Some("/episodes"), Some("req-1"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], 400);
        assert_eq!(v["instance"], "/episodes");
        assert_eq!(v["errors"][0]["field"], "limit");
        assert_eq!(v["request_id"], "req-1");
    }

    #[test]
    fn internal_errors_reveal_nothing() {
        let text = Problem::internal().body(Some("/x"), None);
        assert!(!text.contains("Dynamo") && !text.contains("error:"));
    }
}
