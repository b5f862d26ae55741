//! The caller's own notifications (`/me/notifications`): listed, counted, read. Every route
//! acts on the caller's own items only: the caller's id is the partition key, so another
//! user's notification id is simply not found.

use axum::extract::State;
use domain::store::PageSize;
use domain::store::notification::{Inbox, MarkRead};
use domain::{EventId, FieldError, Timestamp};
use lambda_http::http::StatusCode;
use lambda_kit::http::{Handled, empty, json};
use lambda_kit::router::{Caller, Id, NoQuery, Query, QueryRules};
use lambda_kit::{Problem, cursor};
use serde_json::{Value, json};

use crate::routes::{Shared, unavailable};

/// The query of `GET /me/notifications`.
#[derive(Debug)]
pub struct Listing;

impl QueryRules for Listing {
    const ALLOWED: &'static [&'static str] = &["unread", "limit", "cursor"];
}

pub async fn list<A, N: Inbox, P>(
    State(api): State<Shared<A, N, P>>,
    Caller(actor): Caller,
    query: Query<Listing>,
) -> Handled {
    let params = &query.params;
    let mut errors = Vec::new();
    let unread = match params.get("unread").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            errors.push(FieldError::new("unread", "must be true or false"));
            false
        }
    };
    let limit = match params.get("limit").map(|l| PageSize::parse(l)).transpose() {
        Ok(l) => l.unwrap_or(PageSize::DEFAULT),
        Err(e) => {
            errors.push(e);
            PageSize::DEFAULT
        }
    };
    let scope = format!("unread={unread}");
    let after = match params
        .get("cursor")
        .map(|c| cursor::decode(c, &scope))
        .transpose()
    {
        Ok(pos) => pos.and_then(|p| p.into_iter().next()),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(Problem::bad_request(errors));
    }
    let page = api
        .notifications
        .list(&actor.id, unread, limit.get(), after)
        .await
        .map_err(unavailable)?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(domain::Notification::to_json)
        .collect();
    let next_cursor = page.next.map(|sk| cursor::encode(&[sk], &scope));
    json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next_cursor }),
    )
}

pub async fn unread_count<A, N: Inbox, P>(
    State(api): State<Shared<A, N, P>>,
    Caller(actor): Caller,
    _: Query<NoQuery>,
) -> Handled {
    let unread = api
        .notifications
        .unread_count(&actor.id)
        .await
        .map_err(unavailable)?;
    json(StatusCode::OK, &json!({ "unread": unread }))
}

pub async fn mark_read<A, N: Inbox, P>(
    State(api): State<Shared<A, N, P>>,
    Caller(actor): Caller,
    Id(id): Id<EventId>,
    _: Query<NoQuery>,
) -> Handled {
    match api
        .notifications
        .mark_read(&actor.id, id, Timestamp::now())
        .await
        .map_err(unavailable)?
    {
        MarkRead::Marked | MarkRead::AlreadyRead => Ok(empty(StatusCode::NO_CONTENT)),
        MarkRead::NotFound => Err(Problem::not_found("no such notification")),
    }
}

pub async fn mark_all_read<A, N: Inbox, P>(
    State(api): State<Shared<A, N, P>>,
    Caller(actor): Caller,
    _: Query<NoQuery>,
) -> Handled {
    let done = api
        .notifications
        .mark_all_read(&actor.id, Timestamp::now())
        .await
        .map_err(unavailable)?;
    // `more`: it stopped at its bound (1,000 a call); calling again marks the rest.
    json(
        StatusCode::OK,
        &json!({ "marked": done.marked, "more": done.more }),
    )
}
