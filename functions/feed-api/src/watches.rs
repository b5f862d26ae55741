//! `PUT` and `DELETE /episodes/{id}/watch`: the caller watches an episode (hears of its
//! changes) or stops. Both are idempotent.

use axum::extract::State;
use domain::store::notification::Inbox;
use domain::{EpisodeId, Timestamp};
use lambda_http::http::StatusCode;
use lambda_kit::Problem;
use lambda_kit::http::{Handled, empty};
use lambda_kit::router::{Caller, Id, NoQuery, Query};

use crate::routes::{Shared, unavailable};

pub async fn watch<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    Id(episode): Id<EpisodeId>,
    _: Query<NoQuery>,
) -> Handled {
    if api
        .notifications
        .watch(episode, &actor.id, Timestamp::now())
        .await
        .map_err(unavailable)?
    {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Err(Problem::not_found("no such episode"))
    }
}

pub async fn unwatch<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    Id(episode): Id<EpisodeId>,
    _: Query<NoQuery>,
) -> Handled {
    api.notifications
        .unwatch(episode, &actor.id)
        .await
        .map_err(unavailable)?;
    Ok(empty(StatusCode::NO_CONTENT))
}
