//! Method and path to handler, identity first, and one access-log line per request.

use std::time::Instant;

use aws_adapters::AwsCallCounter;
use domain::store::{EpisodeLister, EpisodeReader, EpisodeWriter};
use lambda_http::http::{Method, header};
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_kit::http::check_body;
use lambda_kit::{Problem, RequestMeta};
use tracing::Instrument;

use crate::handlers::{self, JSON, MAX_BODY_BYTES, MERGE_PATCH, require_writer};

/// What the function holds across invocations: built once at init.
#[derive(Debug)]
pub struct Api<S> {
    pub store: S,
    /// Counts the AWS calls each request makes, for the access log.
    pub calls: AwsCallCounter,
}

pub async fn handle<S>(api: &Api<S>, req: Request) -> Response<Body>
where
    S: EpisodeReader + EpisodeLister + EpisodeWriter + Sync,
{
    let started = Instant::now();
    let meta = RequestMeta::from_request(&req);
    let span = tracing::info_span!(
        "request",
        request_id = meta.request_id.as_deref().unwrap_or_default(),
        correlation_id = %meta.correlation_id,
    );
    async {
        api.calls.take();
        let response = match route(api, &meta, &req).await {
            Ok(response) => response,
            Err(problem) => problem.into_response(req.uri().path(), meta.request_id.as_deref()),
        };
        tracing::info!(
            method = %req.method(),
            path = req.uri().path(),
            status = response.status().as_u16(),
            latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            aws_calls = api.calls.take(),
            "request handled"
        );
        response
    }
    .instrument(span)
    .await
}

async fn route<S>(api: &Api<S>, meta: &RequestMeta, req: &Request) -> Result<Response<Body>, Problem>
where
    S: EpisodeReader + EpisodeLister + EpisodeWriter + Sync,
{
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method();
    match segments.as_slice() {
        ["health"] if method == Method::GET => handlers::health(),
        ["episodes"] if method == Method::GET => {
            meta.actor()?;
            let params: Vec<(&str, &str)> = req
                .query_string_parameters_ref()
                .map(|q| q.iter().collect())
                .unwrap_or_default();
            let query = handlers::list_query(&params)?;
            handlers::list(&api.store, &query).await
        }
        ["episodes"] if method == Method::POST => {
            let actor = meta.actor()?;
            require_writer(&actor)?;
            let body = check_body(req, &[JSON], MAX_BODY_BYTES)?;
            handlers::create(&api.store, meta, &actor, body).await
        }
        ["episodes", id] if method == Method::GET => {
            meta.actor()?;
            handlers::get(&api.store, handlers::parse_id(id)?).await
        }
        ["episodes", id] if method == Method::PATCH => {
            let actor = meta.actor()?;
            require_writer(&actor)?;
            let id = handlers::parse_id(id)?;
            let body = check_body(req, &[JSON, MERGE_PATCH], MAX_BODY_BYTES)?;
            handlers::update(&api.store, meta, &actor, id, if_match(req), body).await
        }
        ["episodes", id] if method == Method::DELETE => {
            let actor = meta.actor()?;
            require_writer(&actor)?;
            let id = handlers::parse_id(id)?;
            handlers::delete(&api.store, meta, &actor, id, if_match(req)).await
        }
        ["health"] | ["episodes"] | ["episodes", _] => Err(Problem::method_not_allowed()),
        _ => Err(Problem::not_found("no such route")),
    }
}

fn if_match(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}invalid"))
}
