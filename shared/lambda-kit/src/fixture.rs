//! Handler tests' inputs, from the recorded fixtures in `events/`: an API Gateway HTTP API
//! request with its path, caller, query and body set as a test needs, and SQS batches. Tests
//! go through the handler's entry point with what API Gateway and SQS really send.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::{Body, Context, LambdaEvent, Request, Response};
use serde_json::{Value, json};

/// An HTTP API (payload 2.0) request event, changed step by step.
#[derive(Debug, Clone)]
pub struct HttpFixture(Value);

impl HttpFixture {
    /// A fixture's text (`include_str!("../../../events/<api>/<name>.json")`).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text).map(Self)
    }

    /// Replaces `from` with `to` in the path (raw, in the request context and its parameters).
    #[must_use]
    pub fn path_segment(mut self, from: &str, to: &str) -> Self {
        for ptr in ["/rawPath", "/requestContext/http/path"] {
            if let Some(Value::String(path)) = self.0.pointer_mut(ptr) {
                *path = path.replace(from, to);
            }
        }
        if let Some(Value::Object(params)) = self.0.get_mut("pathParameters") {
            for v in params.values_mut() {
                if v.as_str() == Some(from) {
                    *v = json!(to);
                }
            }
        }
        self
    }

    /// Another route of the same API: method and path (raw and in the request context).
    #[must_use]
    pub fn route(mut self, method: &str, path: &str) -> Self {
        self.0["rawPath"] = json!(path);
        if let Some(p) = self.0.pointer_mut("/requestContext/http/path") {
            *p = json!(path);
        }
        self.method(method)
    }

    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        if let Some(m) = self.0.pointer_mut("/requestContext/http/method") {
            *m = json!(method);
        }
        self
    }

    /// The caller the authorizer verified: `sub` and the group claim, as API Gateway passes
    /// a list claim (`[editor]`).
    #[must_use]
    pub fn caller(mut self, user: &str, role: &str) -> Self {
        if let Some(claims) = self.0.pointer_mut("/requestContext/authorizer/jwt/claims") {
            claims["sub"] = json!(user);
            claims["cognito:groups"] = json!(format!("[{role}]"));
        }
        self
    }

    /// No verified caller (a route the authorizer did not guard).
    #[must_use]
    pub fn anonymous(mut self) -> Self {
        if let Some(Value::Object(ctx)) = self.0.get_mut("requestContext") {
            ctx.remove("authorizer");
        }
        self
    }

    /// The raw query string and its parsed parameters.
    #[must_use]
    pub fn query(mut self, query: &str) -> Self {
        self.0["rawQueryString"] = json!(query);
        let params: serde_json::Map<String, Value> = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), json!(v))
            })
            .collect();
        self.0["queryStringParameters"] = Value::Object(params);
        self
    }

    /// A JSON body (with its content type and length).
    #[must_use]
    pub fn body(mut self, body: &str) -> Self {
        self.0["body"] = json!(body);
        self.header("content-type", "application/json")
            .header("content-length", &body.len().to_string())
    }

    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0["headers"][name] = json!(value);
        self
    }

    #[must_use]
    pub fn without_header(mut self, name: &str) -> Self {
        if let Some(Value::Object(h)) = self.0.get_mut("headers") {
            h.remove(name);
        }
        self
    }

    /// The request as `lambda_http` hands it to the handler.
    pub fn request(&self) -> Result<Request, serde_json::Error> {
        lambda_http::request::from_str(&self.0.to_string())
    }
}

/// An SQS batch event from a fixture.
pub fn sqs_event(text: &str) -> Result<SqsEvent, serde_json::Error> {
    serde_json::from_str(text)
}

/// A batch of `bodies`, each a message like the fixture's first one (ids `m0`, `m1`, ...).
pub fn sqs_batch(fixture: &str, bodies: &[&str]) -> Result<SqsEvent, serde_json::Error> {
    let template: SqsMessage = sqs_event(fixture)?
        .records
        .into_iter()
        .next()
        .unwrap_or_default();
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut m = template.clone();
            m.message_id = Some(format!("m{i}"));
            m.body = Some((*body).to_owned());
            m
        })
        .collect();
    Ok(event)
}

/// [`sqs_batch`] as the runtime hands it to a worker's handler.
pub fn sqs_invocation(
    fixture: &str,
    bodies: &[&str],
) -> Result<LambdaEvent<SqsEvent>, serde_json::Error> {
    sqs_batch(fixture, bodies).map(|event| LambdaEvent::new(event, Context::default()))
}

/// The ids of the messages a batch response reports failed, in order.
pub fn failed(response: SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

/// A response's JSON body; `Null` when it has none.
pub fn json_body(response: &Response<Body>) -> Result<Value, serde_json::Error> {
    match response.body() {
        Body::Text(t) => serde_json::from_str(t),
        _ => Ok(Value::Null),
    }
}

/// `request` through a function's router as `lambda_http` serves it: the response, its body
/// collected (text when it is UTF-8, as API Gateway is sent it).
pub async fn respond(app: axum::Router, request: Request) -> Response<Body> {
    use lambda_http::tower::ServiceExt;
    let Ok(response) = app.oneshot(request).await;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    Response::from_parts(parts, body)
}
