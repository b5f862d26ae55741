//! Routes of the feed API. Entries are immutable: only GETs exist.

use std::collections::BTreeMap;

use domain::store::EpisodeExistence;
use domain::store::PageSize;
use domain::store::activity::{ActivityQuery, ActivityReader};
use domain::store::notification::Inbox;
use domain::store::realtime::PresenceReader;
use domain::{EpisodeId, EventType, FieldError, Role, Timestamp, UserId, uuid_v7_bounds};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use lambda_kit::AwsCallCounter;
use lambda_kit::http::{check_body, json, query_params};
use lambda_kit::{Problem, RequestMeta, cursor};
use serde_json::{Value, json};

use crate::notifications;

#[derive(Debug)]
/// What the routes need: the activity log (`A`), the users' notifications (`N`) and who is
/// looking at an episode (`P`).
pub struct Api<A, N, P> {
    pub activity: A,
    pub notifications: N,
    pub presence: P,
    pub calls: AwsCallCounter,
}

/// Bodies over this size are refused with 413 before they are parsed.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub async fn handle<
    A: ActivityReader + Sync,
    N: Inbox + Sync,
    P: PresenceReader + EpisodeExistence + Sync,
>(
    api: &Api<A, N, P>,
    req: Request,
) -> Response<Body> {
    let meta = RequestMeta::from_request(&req);
    lambda_kit::access::serve(&req, &meta, &api.calls, route(api, &meta, &req)).await
}

async fn route<
    A: ActivityReader + Sync,
    N: Inbox + Sync,
    P: PresenceReader + EpisodeExistence + Sync,
>(
    api: &Api<A, N, P>,
    meta: &RequestMeta,
    req: &Request,
) -> Result<Response<Body>, Problem> {
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let method = req.method();
    let get = method == Method::GET;
    match segments.as_slice() {
        ["episodes", id, "activity"] if get => {
            meta.actor()?;
            let episode = parse_episode_id(id)?;
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
        ["episodes", id, "presence"] if get => {
            meta.actor()?;
            presence(api, parse_episode_id(id)?).await
        }
        ["me", "notifications"] if get => {
            let actor = meta.actor()?;
            let params = query_params(req, &["unread", "limit", "cursor"])?;
            notifications::list(&api.notifications, &actor, &params).await
        }
        ["me", "notifications", "unread-count"] if get => {
            notifications::unread_count(&api.notifications, &meta.actor()?).await
        }
        ["me", "notifications", "read-all"] if method == Method::POST => {
            notifications::mark_all_read(&api.notifications, &meta.actor()?).await
        }
        ["me", "notifications", id, "read"] if method == Method::POST => {
            notifications::mark_read(&api.notifications, &meta.actor()?, id).await
        }
        ["episodes", id, "watch"] if method == Method::PUT || method == Method::DELETE => {
            let actor = meta.actor()?;
            let episode = parse_episode_id(id)?;
            if method == Method::PUT {
                notifications::watch(&api.notifications, &actor, episode).await
            } else {
                notifications::unwatch(&api.notifications, &actor, episode).await
            }
        }
        ["me", "notification-preferences"] if get => {
            notifications::preferences(&api.notifications, &meta.actor()?).await
        }
        ["me", "notification-preferences"] if method == Method::PUT => {
            let actor = meta.actor()?;
            let body = check_body(req, &["application/json"], MAX_BODY_BYTES)?;
            notifications::set_preferences(&api.notifications, &actor, body).await
        }
        ["activity"]
        | ["episodes", _, "activity"]
        | ["episodes", _, "watch"]
        | ["episodes", _, "presence"]
        | ["me", "notifications", ..]
        | ["me", "notification-preferences"] => Err(Problem::method_not_allowed()),
        _ => Err(Problem::not_found("no such route")),
    }
}

/// Who is looking at the episode now, and when the others who were there were last seen.
async fn presence<
    A: ActivityReader + Sync,
    N: Inbox + Sync,
    P: PresenceReader + EpisodeExistence + Sync,
>(
    api: &Api<A, N, P>,
    episode: EpisodeId,
) -> Result<Response<Body>, Problem> {
    let all = api.presence.presence(episode).await.map_err(|e| {
        tracing::error!(error = %e, "presence unavailable");
        Problem::internal()
    })?;
    if all.is_empty()
        && !api.presence.episode_exists(episode).await.map_err(|e| {
            tracing::error!(error = %e, "episodes unavailable");
            Problem::internal()
        })?
    {
        return Err(Problem::not_found("episode not found"));
    }
    let now = Timestamp::now();
    let viewers = domain::realtime::viewers(&all, now);
    let mut recent: Vec<Value> = all
        .iter()
        .filter(|p| !p.is_viewing(now))
        .map(|p| json!({"id": p.user.id, "name": p.user.name, "last_seen": p.last_seen}))
        .collect();
    recent.sort_by(|a, b| b["last_seen"].as_str().cmp(&a["last_seen"].as_str()));
    json(
        StatusCode::OK,
        &json!({"episode_id": episode, "viewers": viewers, "last_seen": recent}),
    )
}

use lambda_kit::http::episode_id as parse_episode_id;

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

async fn page<
    A: ActivityReader + Sync,
    N: Inbox + Sync,
    P: PresenceReader + EpisodeExistence + Sync,
>(
    api: &Api<A, N, P>,
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
