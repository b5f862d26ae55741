//! Routes of the feed API. Entries are immutable: only GETs exist.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_adapters::{ActivityQuery, AwsCallCounter, DynamoActivityStore};
use domain::store::PageSize;
use domain::{EpisodeId, EventType, FieldError, Role, Timestamp, UserId, uuid_v7_bounds};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use lambda_kit::http::{json, query_params};
use lambda_kit::{Problem, RequestMeta, cursor};
use serde_json::{Value, json};
use tracing::Instrument;

#[derive(Debug)]
pub struct Api {
    pub activity: DynamoActivityStore,
    pub calls: AwsCallCounter,
}

pub async fn handle(api: &Api, req: Request) -> Response<Body> {
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
            Ok(r) => r,
            Err(p) => p.into_response(req.uri().path(), meta.request_id.as_deref()),
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

async fn route(api: &Api, meta: &RequestMeta, req: &Request) -> Result<Response<Body>, Problem> {
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let get = req.method() == Method::GET;
    match segments.as_slice() {
        ["episodes", id, "activity"] if get => {
            meta.actor()?;
            let episode = EpisodeId::parse(id).map_err(|_| {
                Problem::bad_request(vec![FieldError::new("id", "is not an episode id")])
            })?;
            let params = query_params(req, &["limit", "cursor"])?;
            let query = activity_query(&params, Some(episode))?;
            page(api, query, &params).await
        }
        ["activity"] if get => {
            let actor = meta.actor()?;
            if actor.role != Role::Admin {
                return Err(Problem::forbidden(
                    "only admins read the whole activity log",
                ));
            }
            let params = query_params(
                req,
                &[
                    "limit",
                    "cursor",
                    "actor",
                    "action",
                    "resource_type",
                    "resource_id",
                    "from",
                    "to",
                ],
            )?;
            let query = activity_query(&params, None)?;
            page(api, query, &params).await
        }
        ["activity"] | ["episodes", _, "activity"] => Err(Problem::method_not_allowed()),
        _ => Err(Problem::not_found("no such route")),
    }
}

/// The filter as one canonical string: what a cursor is bound to.
fn scope(params: &BTreeMap<String, String>, episode: Option<EpisodeId>) -> String {
    let mut parts: Vec<String> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "limit"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(e) = episode {
        parts.push(format!("episode={e}"));
    }
    parts.join("&")
}

fn activity_query(
    params: &BTreeMap<String, String>,
    episode: Option<EpisodeId>,
) -> Result<ActivityQuery, Problem> {
    let mut errors = Vec::new();
    let mut q = ActivityQuery {
        episode,
        limit: PageSize::DEFAULT.get(),
        ..Default::default()
    };
    let mut check = |r: Result<(), FieldError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    for (key, value) in params {
        match key.as_str() {
            "limit" => check(PageSize::parse(value).map(|l| q.limit = l.get())),
            "actor" => check(
                UserId::parse(value)
                    .map(|u| q.actor = Some(u))
                    .map_err(|e| e.at("actor")),
            ),
            "action" => check(
                serde_json::from_value::<EventType>(Value::String(value.clone()))
                    .map(|a| q.action = Some(a))
                    .map_err(|_| FieldError::new("action", "is not an event type")),
            ),
            "resource_type" => {
                q.resource_type = Some(value.clone());
            }
            "resource_id" => {
                q.resource_id = Some(value.clone());
            }
            "from" => check(
                Timestamp::parse(value)
                    .map(|t| q.from_id = Some(uuid_v7_bounds(t).0))
                    .map_err(|_| FieldError::new("from", "must be an RFC 3339 timestamp")),
            ),
            "to" => check(
                Timestamp::parse(value)
                    .map(|t| q.to_id = Some(uuid_v7_bounds(t).1))
                    .map_err(|_| FieldError::new("to", "must be an RFC 3339 timestamp")),
            ),
            _ => {}
        }
    }
    if let Some(c) = params.get("cursor") {
        match cursor::decode(c, &scope(params, episode)) {
            Ok(pos) => match pos.as_slice() {
                [ep, ev] => q.after = Some((ep.clone(), ev.clone())),
                _ => errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this list returned",
                )),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(Problem::bad_request(errors))
    }
}

async fn page(
    api: &Api,
    query: ActivityQuery,
    params: &BTreeMap<String, String>,
) -> Result<Response<Body>, Problem> {
    let page = api.activity.query(&query).await.map_err(|e| {
        tracing::error!(error = %e, "activity query failed");
        Problem::service_unavailable()
    })?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(domain::ActivityEntry::to_json)
        .collect();
    let next_cursor = page
        .next
        .map(|(ep, ev)| cursor::encode(&[ep, ev], &scope(params, query.episode)));
    json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next_cursor }),
    )
}
