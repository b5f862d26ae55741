//! `GET /episodes/{id}/presence`: who is looking at the episode now, and when the others who
//! were there were last seen, in pages (an episode with more viewers than a presence frame
//! lists is read here).

use axum::extract::State;
use domain::store::realtime::PresenceReader;
use domain::store::{EpisodeExistence, PageSize};
use domain::{EpisodeId, Timestamp, UserId};
use lambda_http::http::StatusCode;
use lambda_kit::http::{Handled, json};
use lambda_kit::router::{Caller, Id, Query, QueryRules};
use lambda_kit::{Problem, cursor};
use serde_json::{Value, json};

use crate::routes::Shared;

/// The query of `GET /episodes/{id}/presence`.
#[derive(Debug)]
pub struct Listing;

impl QueryRules for Listing {
    const ALLOWED: &'static [&'static str] = &["limit", "cursor"];
}

pub async fn get<A, N, P: PresenceReader + EpisodeExistence, X>(
    State(api): State<Shared<A, N, P, X>>,
    _: Caller,
    Id(episode): Id<EpisodeId>,
    query: Query<Listing>,
) -> Handled {
    let params = &query.params;
    let mut errors = Vec::new();
    // One page holds as many people as a presence frame lists.
    let limit = match params.get("limit").map(|l| PageSize::parse(l)).transpose() {
        Ok(l) => l.unwrap_or(PageSize::LARGEST),
        Err(e) => {
            errors.push(e);
            PageSize::LARGEST
        }
    };
    let scope = format!("presence={episode}");
    let after = match params.get("cursor").map(|c| {
        cursor::decode(c, &scope).and_then(|pos| {
            pos.first()
                .and_then(|id| UserId::parse(id).ok())
                .ok_or_else(|| {
                    domain::FieldError::new("cursor", "is not a cursor this list returned")
                })
        })
    }) {
        Some(Ok(user)) => Some(user),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(Problem::bad_request(errors));
    }
    let first_page = after.is_none();
    let (all, next) = api
        .presence
        .presence_page(episode, usize::from(limit.get()), after)
        .await
        .map_err(|e| Problem::unavailable("presence", &e))?;
    if all.is_empty()
        && first_page
        && !api
            .presence
            .episode_exists(episode)
            .await
            .map_err(|e| Problem::unavailable("episodes", &e))?
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
    let next_cursor = next.map(|user| cursor::encode(&[user.as_str().to_owned()], &scope));
    json(
        StatusCode::OK,
        &json!({"episode_id": episode, "viewers": viewers, "last_seen": recent, "next_cursor": next_cursor}),
    )
}
