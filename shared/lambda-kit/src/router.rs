//! The router every HTTP function serves with: axum, which `lambda_http` runs as a tower
//! service. Extractors for what the routes take (the caller, a path id, the query, a JSON
//! object body), each refusing with the problem+json the API has always sent; the router's own
//! 404 and 405 as problems too; and one access-log line per request.
//!
//! Extractors run in the order of a handler's arguments, so a handler lists them as a request
//! is checked: the caller (401, 403), then the id (400), the query (400), the body last
//! (413, 415, 400, 422).

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use domain::{Actor, EpisodeId, EventId, ExportId, FieldError, FileId, JobId, ValidationErrors};
use lambda_http::RequestExt;
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::call_counter::AwsCallCounter;
use crate::http::{Paging, paging};
use crate::identity::RequestMeta;
use crate::problem::Problem;

/// The function's routes, ready to serve: the router's own refusals as problems (404 for a path
/// no route has, 405 with `Allow` for a method a path does not take) and the access log
/// around every request, those included.
pub fn app<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    state: S,
    calls: AwsCallCounter,
) -> Router {
    routes
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(calls, access_log))
        .with_state(state)
}

async fn no_such_route() -> Problem {
    Problem::not_found("no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}

/// One span per request with its ids (and the user's, once known), and one access-log line
/// with the status, latency and the AWS calls that `calls` counted meanwhile. A problem's
/// body gets the request's path as `instance` and the request id here, the one place that
/// knows both.
async fn access_log(State(calls): State<AwsCallCounter>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let meta = RequestMeta::from_parts(req.extensions(), req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = meta.request_id.as_deref().unwrap_or_default(),
        correlation_id = %meta.correlation_id,
        user_id = tracing::field::Empty,
    );
    if let Ok(actor) = meta.actor() {
        span.record("user_id", actor.id.as_str());
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let request_id = meta.request_id.clone();
    req.extensions_mut().insert(meta);
    calls.take();
    let unroutable = unroutable(req.raw_http_path());
    async move {
        let mut response = match unroutable {
            Some(problem) => axum::response::IntoResponse::into_response(problem),
            None => next.run(req).await,
        };
        if let Some(problem) = response.extensions_mut().remove::<Problem>() {
            *response.body_mut() = Body::from(problem.body(Some(&path), request_id.as_deref()));
        }
        let spent = calls.take();
        tracing::info!(
            method = %method,
            path = path,
            route = route.as_deref().unwrap_or("-"),
            status = response.status().as_u16(),
            latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            aws_calls = spent.total,
            dynamodb_calls = spent.dynamodb,
            dynamodb_read_units = spent.read_units,
            dynamodb_write_units = spent.write_units,
            aws_wait_us = u64::try_from(spent.waiting.as_micros()).unwrap_or(u64::MAX),
            "request handled"
        );
        response
    }
    .instrument(span)
    .await
}

/// A path as API Gateway passed it that the request's URI cannot hold: a `#` or `?` in it (sent
/// percent-encoded, and decoded by the emulator) would cut the URI's path short, and the
/// router would match another route (schemathesis found `POST /jobs/{id}/retry` answered 405
/// for an id with `%23` in it). No id has those characters: 400.
fn unroutable(raw_path: &str) -> Option<Problem> {
    raw_path.contains(['#', '?']).then(|| {
        Problem::bad_request(vec![FieldError::new(
            "path",
            "must not contain # or ? (no id does)",
        )])
    })
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self::from_parts(&parts.extensions, &parts.headers)))
    }
}

/// The authenticated caller; 401 without one.
#[derive(Debug)]
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Ok(meta) = RequestMeta::from_request_parts(parts, state).await;
        meta.actor().map(Self)
    }
}

/// What a function tells a viewer who tries to write: one per function.
pub trait Refusal {
    const VIEWERS: &'static str;
}

/// A caller who may write (an editor or an admin): 401 without a caller, 403 with the
/// function's refusal `R` for a viewer.
#[derive(Debug)]
pub struct Writer<R>(pub Actor, pub PhantomData<R>);

impl<S: Send + Sync, R: Refusal> FromRequestParts<S> for Writer<R> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Ok(meta) = RequestMeta::from_request_parts(parts, state).await;
        meta.writer(R::VIEWERS)
            .map(|actor| Self(actor, PhantomData))
    }
}

/// An id the routes take in their path as `{id}`.
pub trait PathId: Sized {
    /// How the 400 names what the id should have been: "an episode id".
    const WHAT: &'static str;
    fn from_path(raw: &str) -> Option<Self>;
}

/// `PathId` for a domain id type, named as the 400 names it.
macro_rules! path_id {
    ($($id:ty => $what:literal),+ $(,)?) => {$(
        impl PathId for $id {
            const WHAT: &'static str = $what;
            fn from_path(raw: &str) -> Option<Self> {
                Self::parse(raw).ok()
            }
        }
    )+};
}

path_id! {
    EpisodeId => "an episode id",
    FileId => "a file id",
    JobId => "a job id",
    EventId => "a notification id",
    ExportId => "an export id",
}

/// The path's `{id}`, parsed; 400 naming `id` when it is not one.
#[derive(Debug)]
pub struct Id<T>(pub T);

impl<S: Send + Sync, T: PathId> FromRequestParts<S> for Id<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let refused =
            || Problem::bad_request(vec![FieldError::new("id", format!("is not {}", T::WHAT))]);
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| refused())?;
        params
            .iter()
            .find(|(name, _)| *name == "id")
            .and_then(|(_, raw)| T::from_path(raw))
            .map(Self)
            .ok_or_else(refused)
    }
}

/// The query parameters a route takes.
pub trait QueryRules {
    const ALLOWED: &'static [&'static str];
}

/// `limit` and `cursor`, for a list with no filter.
#[derive(Debug)]
pub struct Paged;

impl QueryRules for Paged {
    const ALLOWED: &'static [&'static str] = &["limit", "cursor"];
}

/// No query parameters, for a route that reads none: any one sent is 400, named (as on the
/// routes that take some), rather than silently ignored.
#[derive(Debug)]
pub struct NoQuery;

impl QueryRules for NoQuery {
    const ALLOWED: &'static [&'static str] = &[];
}

/// The query string as a map: an unknown or repeated parameter is 400, each named.
#[derive(Debug)]
pub struct Query<R> {
    pub params: BTreeMap<String, String>,
    rules: PhantomData<R>,
}

impl<R> Query<R> {
    /// `limit` and `cursor`, the cursor made for `scope`.
    pub fn paging(&self, scope: &str) -> Result<Paging, Problem> {
        paging(&self.params, scope)
    }
}

impl<S: Send + Sync, R: QueryRules> FromRequestParts<S> for Query<R> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let mut params = BTreeMap::new();
        let mut errors = Vec::new();
        if let Some(q) = parts.extensions.query_string_parameters_ref() {
            for (key, value) in q.iter() {
                if !R::ALLOWED.contains(&key) {
                    errors.push(FieldError::new(key, "is not a known query parameter"));
                } else if params.insert(key.to_owned(), value.to_owned()).is_some() {
                    errors.push(FieldError::new(key, "is given more than once"));
                }
            }
        }
        if errors.is_empty() {
            Ok(Self {
                params,
                rules: PhantomData,
            })
        } else {
            Err(Problem::bad_request(errors))
        }
    }
}

/// The body a route takes: its media types, its size limit and its fields.
pub trait BodyRules {
    const MEDIA_TYPES: &'static [&'static str] = &["application/json"];
    const MAX_BYTES: usize;
    const FIELDS: &'static [&'static str];
}

/// A body that is a JSON object: 413 over the limit, 415 for another media type (parameters
/// such as `charset=utf-8` are fine), 400 for malformed JSON, 422 for anything but an object.
/// Unknown fields are in `errors`, for the route's parser to report with its own at once.
#[derive(Debug)]
pub struct JsonObject<B> {
    pub fields: Map<String, Value>,
    pub errors: ValidationErrors,
    rules: PhantomData<B>,
}

impl<S: Send + Sync, B: BodyRules> FromRequest<S> for JsonObject<B> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, B::MAX_BYTES)
            .await
            .map_err(|_| Problem::payload_too_large(B::MAX_BYTES))?;
        if !media_type_is(&parts.headers, B::MEDIA_TYPES) {
            return Err(Problem::unsupported_media_type(
                B::MEDIA_TYPES
                    .first()
                    .copied()
                    .unwrap_or("application/json"),
            ));
        }
        Self::parse(&bytes)
    }
}

impl<B: BodyRules> JsonObject<B> {
    /// The body's bytes as a JSON object (400 when malformed, 422 when not an object), its
    /// unknown fields in `errors`.
    pub fn parse(bytes: &[u8]) -> Result<Self, Problem> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Problem::bad_request(vec![FieldError::new(
                "body",
                format!("is not valid JSON: {e}"),
            )])
        })?;
        let Value::Object(fields) = value else {
            return Err(Problem::unprocessable(
                FieldError::new("body", "must be a JSON object").into(),
            ));
        };
        let mut errors = ValidationErrors::default();
        for key in fields.keys().filter(|k| !B::FIELDS.contains(&k.as_str())) {
            errors.push(FieldError::new(key.as_str(), "is not a known field"));
        }
        Ok(Self {
            fields,
            errors,
            rules: PhantomData,
        })
    }
}

fn media_type_is(headers: &HeaderMap, accepted: &[&str]) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    accepted.iter().any(|a| *a == essence)
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The `Idempotency-Key` header, when sent; 400 when it is not 1–255 visible ASCII
/// characters. An extractor, so that it is checked before the body, as the header comes first.
#[derive(Debug)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        idempotency_key(&parts.headers).map(Self)
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or_default();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Problem::bad_request(vec![FieldError::new(
            "Idempotency-Key",
            "must be 1–255 visible ASCII characters",
        )]));
    }
    Ok(Some(key.to_owned()))
}

#[cfg(test)]
mod tests {
    //! The extractors and the router's own refusals, through a router of two routes.

    use axum::routing::get;
    use lambda_http::http::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::fixture::{HttpFixture, json_body, respond};
    use crate::http::json;

    const EPISODE: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

    struct Edits;
    impl Refusal for Edits {
        const VIEWERS: &'static str = "viewers cannot change things";
    }

    struct Thing;
    impl BodyRules for Thing {
        const MEDIA_TYPES: &'static [&'static str] =
            &["application/json", "application/merge-patch+json"];
        const MAX_BYTES: usize = 32;
        const FIELDS: &'static [&'static str] = &["title"];
    }

    async fn read(
        Caller(actor): Caller,
        Id(id): Id<EpisodeId>,
        query: Query<Paged>,
    ) -> Result<Response<lambda_http::Body>, Problem> {
        query.paging("")?;
        json(
            StatusCode::OK,
            &serde_json::json!({"by": actor.id, "id": id, "params": query.params}),
        )
    }

    async fn write(
        Writer(actor, _): Writer<Edits>,
        Id(id): Id<EpisodeId>,
        body: JsonObject<Thing>,
    ) -> Result<Response<lambda_http::Body>, Problem> {
        if !body.errors.is_empty() {
            return Err(Problem::unprocessable(body.errors));
        }
        json(
            StatusCode::OK,
            &serde_json::json!({"by": actor.id, "id": id, "fields": body.fields}),
        )
    }

    fn app() -> Router {
        let routes = Router::new().route("/things/{id}", get(read).patch(write));
        super::app(routes, (), AwsCallCounter::default())
    }

    fn fixture() -> HttpFixture {
        HttpFixture::parse(include_str!(
            "../../../events/episodes-api/get-episode.json"
        ))
        .unwrap()
        .route("GET", &format!("/things/{EPISODE}"))
        .caller("ada", "editor")
    }

    async fn send(fixture: HttpFixture) -> (StatusCode, Value, Response<lambda_http::Body>) {
        let response = respond(app(), fixture.request().unwrap()).await;
        let body = json_body(&response).unwrap();
        (response.status(), body, response)
    }

    #[tokio::test]
    async fn extractors_hand_the_route_its_caller_id_and_query() {
        let (status, body, _) = send(fixture().query("limit=5")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"by": "ada", "id": EPISODE, "params": {"limit": "5"}})
        );
    }

    /// schemathesis found it: an id with `%23` in it, decoded into the raw path, cut the URI
    /// short and `PATCH /things/{id}/more` became a 405 on `/things/{id}`.
    #[tokio::test]
    async fn a_path_the_uri_cannot_hold_is_400_not_another_route() {
        for raw in [
            format!("/things/{EPISODE}#x/more"),
            format!("/things/{EPISODE}?x/more"),
        ] {
            let (status, body, _) = send(fixture().route("PATCH", &raw)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}: {body}");
            assert_eq!(body["errors"][0]["field"], "path", "{body}");
            assert!(body["request_id"].is_string(), "{body}");
        }
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_other_methods_405_as_problems() {
        let (status, body, resp) = send(fixture().route("GET", "/nowhere")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        assert_eq!(body["type"], "/problems/not-found");
        assert_eq!(body["instance"], "/nowhere");
        let (status, body, resp) = send(fixture().method("DELETE")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        assert_eq!(resp.headers()["allow"], "GET,HEAD,PATCH");
        assert_eq!(body["status"], 405);
        assert_eq!(body["instance"], format!("/things/{EPISODE}"));
        assert!(body["request_id"].is_string());
    }

    #[tokio::test]
    async fn the_caller_comes_first_then_the_id_then_the_query() {
        let (status, _, _) = send(fixture().anonymous().route("GET", "/things/nope")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body, _) = send(fixture().route("GET", "/things/nope").query("x=1")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["errors"],
            json!([{"field": "id", "message": "is not an episode id"}])
        );
        let (status, body, _) = send(fixture().query("x=1&limit=0")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], "x");
        let (status, body, _) = send(fixture().query("limit=0")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], "limit");
    }

    #[tokio::test]
    async fn viewers_are_refused_before_anything_is_read() {
        let (status, body, _) = send(
            fixture()
                .method("PATCH")
                .caller("vic", "viewer")
                .route("PATCH", "/things/nope")
                .body("not json"),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["detail"], "viewers cannot change things");
    }

    #[tokio::test]
    async fn bodies_are_checked_for_size_type_syntax_shape_and_fields() {
        let patch = |body: &str| fixture().method("PATCH").body(body);
        let (status, body, _) = send(patch(r#"{"title":"x"}"#)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["fields"], json!({"title": "x"}));
        let (status, _, _) = send(patch(r#"{"title":"x"}"#).header(
            "content-type",
            "application/merge-patch+json; charset=utf-8",
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = send(patch(&format!(r#"{{"title":"{}"}}"#, "x".repeat(40)))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, _, _) = send(patch("{}").header("content-type", "text/plain")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, _, _) = send(patch("{}").without_header("content-type")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, body, _) = send(patch("{nope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], "body");
        let (status, _, _) = send(patch("[1]")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, body, _) = send(patch(r#"{"title":"x","extra":1}"#)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["field"], "extra");
    }
}
