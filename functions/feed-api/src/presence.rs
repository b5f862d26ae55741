//! `GET /episodes/{id}/presence`: who is looking at the episode now, and when the others who
//! were there were last seen.

use axum::extract::State;
use domain::store::EpisodeExistence;
use domain::store::realtime::PresenceReader;
use domain::{EpisodeId, Timestamp};
use lambda_http::http::StatusCode;
use lambda_kit::Problem;
use lambda_kit::http::{Handled, json};
use lambda_kit::router::{Caller, Id, NoQuery, Query};
use serde_json::{Value, json};

use crate::routes::Shared;

pub async fn get<A, N, P: PresenceReader + EpisodeExistence>(
    State(api): State<Shared<A, N, P>>,
    _: Caller,
    Id(episode): Id<EpisodeId>,
    _: Query<NoQuery>,
) -> Handled {
    let all = api
        .presence
        .presence(episode)
        .await
        .map_err(|e| Problem::unavailable("presence", &e))?;
    if all.is_empty()
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
    json(
        StatusCode::OK,
        &json!({"episode_id": episode, "viewers": viewers, "last_seen": recent}),
    )
}
