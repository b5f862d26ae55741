//! The activity log: an episode's feed (`GET /episodes/{id}/activity`) and, for admins, the
//! whole log with its filters (`GET /activity`). Entries are immutable: only GETs exist.

use std::collections::BTreeMap;

use axum::extract::State;
use domain::export::ExportFilters;
use domain::store::PageSize;
use domain::store::activity::{ActivityQuery, ActivityReader};
use domain::{EpisodeId, EventType, FieldError, ResourceKind, Role, Timestamp, UserId};
use lambda_http::http::StatusCode;
use lambda_kit::http::{Handled, json};
use lambda_kit::router::{Caller, Id, Paged, Query, QueryRules};
use lambda_kit::{Problem, cursor};
use serde_json::{Value, json};

use crate::routes::Shared;

/// The filters of the whole log.
#[derive(Debug)]
pub struct Filters;

impl QueryRules for Filters {
    const ALLOWED: &'static [&'static str] = &[
        "limit",
        "cursor",
        "actor",
        "action",
        "resource_type",
        "resource_id",
        "from",
        "to",
        "episode_id",
    ];
}

/// The filters alone (the whole log's query without `limit` and `cursor`): the fields of
/// `POST /activity/exports`.
pub const FILTER_FIELDS: &[&str] = Filters::ALLOWED.split_at(2).1;

/// `GET /episodes/{id}/activity`: newest first, in pages.
pub async fn of_episode<A: ActivityReader, N, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    _: Caller,
    Id(episode): Id<EpisodeId>,
    query: Query<Paged>,
) -> Handled {
    let filter = activity_query(&query.params, Some(episode))?;
    page(&api.activity, filter, &query.params).await
}

/// `GET /activity`: the whole log, for admins only (refused before the query is looked at).
pub async fn whole_log<A: ActivityReader, N, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    query: Result<Query<Filters>, Problem>,
) -> Handled {
    if actor.role != Role::Admin {
        return Err(Problem::forbidden(
            "only admins read the whole activity log",
        ));
    }
    let query = query?;
    let filter = activity_query(&query.params, None)?;
    page(&api.activity, filter, &query.params).await
}

/// Longest `resource_id` filter (ids are UUIDs; the bound keeps the filter expression small).
const RESOURCE_ID_MAX_CHARS: usize = 128;

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

/// The filters of the whole log, as `GET /activity` takes them in its query and
/// `POST /activity/exports` in its body: each field's value as a string.
pub fn parse_filters<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
    errors: &mut Vec<FieldError>,
) -> ExportFilters {
    let mut f = ExportFilters::default();
    let mut check = |r: Result<(), FieldError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    for (key, value) in fields {
        match key {
            "episode_id" => check(
                EpisodeId::parse(value)
                    .map(|e| f.episode_id = Some(e))
                    .map_err(|_| FieldError::new("episode_id", "is not an episode id")),
            ),
            "actor" => check(
                UserId::parse(value)
                    .map(|u| f.actor = Some(u))
                    .map_err(|e| e.at("actor")),
            ),
            "action" => check(
                serde_json::from_value::<EventType>(Value::String(value.to_owned()))
                    .map(|a| f.action = Some(a))
                    .map_err(|_| FieldError::new("action", "is not an event type")),
            ),
            "resource_type" => check(
                serde_json::from_value::<ResourceKind>(Value::String(value.to_owned()))
                    .map(|k| f.resource_type = Some(k))
                    .map_err(|_| {
                        FieldError::new("resource_type", "must be episode, file, job or export")
                    }),
            ),
            "resource_id" => check(
                if (1..=RESOURCE_ID_MAX_CHARS).contains(&value.chars().count()) {
                    f.resource_id = Some(value.to_owned());
                    Ok(())
                } else {
                    Err(FieldError::new(
                        "resource_id",
                        "must be 1 to 128 characters",
                    ))
                },
            ),
            "from" => check(
                Timestamp::parse(value)
                    .map(|t| f.from = Some(t))
                    .map_err(|_| FieldError::new("from", "must be an RFC 3339 timestamp")),
            ),
            "to" => check(
                Timestamp::parse(value)
                    .map(|t| f.to = Some(t))
                    .map_err(|_| FieldError::new("to", "must be an RFC 3339 timestamp")),
            ),
            _ => {}
        }
    }
    f
}

fn activity_query(
    params: &BTreeMap<String, String>,
    episode: Option<EpisodeId>,
) -> Result<ActivityQuery, Problem> {
    let mut errors = Vec::new();
    let mut filters = parse_filters(
        params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut errors,
    );
    if episode.is_some() {
        filters.episode_id = episode;
    }
    let mut q = filters.query(None);
    q.limit = PageSize::DEFAULT.get();
    if let Some(l) = params.get("limit") {
        match PageSize::parse(l) {
            Ok(l) => q.limit = l.get(),
            Err(e) => errors.push(e),
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
    activity: &impl ActivityReader,
    query: ActivityQuery,
    params: &BTreeMap<String, String>,
) -> Handled {
    let page = activity.query(&query).await.map_err(|e| {
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
