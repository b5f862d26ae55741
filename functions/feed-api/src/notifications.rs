//! The caller's own notifications (`/me/notifications`): listed by state, counted (unread,
//! unseen), seen, read, archived and unarchived. Every route acts on the caller's own items
//! only: the caller's id is the partition key, so another user's notification id is simply
//! not found.

use axum::extract::State;
use domain::notification::{Moved, NoteFilter, Transition};
use domain::store::PageSize;
use domain::store::notification::{Inbox, MAX_MOVED_AT_ONCE};
use domain::{EventId, FieldError, Timestamp, ValidationErrors};
use lambda_http::http::StatusCode;
use lambda_kit::http::{Handled, empty, json};
use lambda_kit::router::{BodyRules, Caller, Id, JsonObject, NoQuery, Query, QueryRules};
use lambda_kit::{Problem, cursor};
use serde_json::{Value, json};

use crate::routes::{Shared, unavailable};

/// The query of `GET /me/notifications`.
#[derive(Debug)]
pub struct Listing;

impl QueryRules for Listing {
    const ALLOWED: &'static [&'static str] = &["state", "unread", "limit", "cursor"];
}

/// The body of `POST /me/notifications/seen`: the ids the bell showed.
#[derive(Debug)]
pub struct SeenBody;

impl BodyRules for SeenBody {
    const MAX_BYTES: usize = 16 * 1024;
    const FIELDS: &'static [&'static str] = &["ids"];
}

pub async fn list<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
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
    let state = match params.get("state").map(String::as_str) {
        None => NoteFilter::Inbox,
        Some(name) => NoteFilter::parse(name).unwrap_or_else(|| {
            errors.push(FieldError::new(
                "state",
                format!("must be one of {}", NoteFilter::NAMES.join(", ")),
            ));
            NoteFilter::Inbox
        }),
    };
    // `unread=true` keeps the unread ones of the state (alone, it is `state=unread`); of read
    // or archived ones that leaves none.
    let filter = if unread {
        state.unread_only()
    } else {
        Some(state)
    };
    let limit = match params.get("limit").map(|l| PageSize::parse(l)).transpose() {
        Ok(l) => l.unwrap_or(PageSize::DEFAULT),
        Err(e) => {
            errors.push(e);
            PageSize::DEFAULT
        }
    };
    let scope = format!("state={}", filter.map_or("none", NoteFilter::as_str));
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
    let Some(filter) = filter else {
        return json(StatusCode::OK, &json!({ "items": [], "next_cursor": null }));
    };
    let page = api
        .notifications
        .list(&actor.id, filter, limit.get(), after)
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

/// The bell's two counts: `{"unread": n, "unseen": m}`.
pub async fn unread_count<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    _: Query<NoQuery>,
) -> Handled {
    let counts = api
        .notifications
        .counts(&actor.id)
        .await
        .map_err(unavailable)?;
    json(
        StatusCode::OK,
        &json!({ "unread": counts.unread, "unseen": counts.unseen }),
    )
}

/// One move of one of the caller's notifications: 204, or 404 when it is not theirs.
async fn move_one<A, N: Inbox, P, X>(
    api: &Shared<A, N, P, X>,
    user: &domain::UserId,
    id: EventId,
    transition: Transition,
) -> Handled {
    let moved = api
        .notifications
        .transition(user, &[id], transition, Timestamp::now())
        .await
        .map_err(unavailable)?;
    match moved.first() {
        Some(Moved::Changed | Moved::Unchanged) => Ok(empty(StatusCode::NO_CONTENT)),
        Some(Moved::NotFound) | None => Err(Problem::not_found("no such notification")),
    }
}

pub async fn mark_read<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    Id(id): Id<EventId>,
    _: Query<NoQuery>,
) -> Handled {
    move_one(&api, &actor.id, id, Transition::Read).await
}

/// Archived: read, and out of the inbox (listed with `state=archived`).
pub async fn archive<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    Id(id): Id<EventId>,
    _: Query<NoQuery>,
) -> Handled {
    move_one(&api, &actor.id, id, Transition::Archive).await
}

/// Back to the inbox, read.
pub async fn unarchive<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    Id(id): Id<EventId>,
    _: Query<NoQuery>,
) -> Handled {
    move_one(&api, &actor.id, id, Transition::Unarchive).await
}

/// `POST /me/notifications/seen` `{"ids": [...]}` (at most 100, what the bell showed): each
/// unseen one of them is seen. Ids that are not the caller's are skipped, not refused (the
/// bell may show one that expired meanwhile). `{"marked": n}`.
pub async fn mark_seen<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    _: Query<NoQuery>,
    body: JsonObject<SeenBody>,
) -> Handled {
    let ids = parse_ids(body).map_err(Problem::unprocessable)?;
    let moved = api
        .notifications
        .transition(&actor.id, &ids, Transition::See, Timestamp::now())
        .await
        .map_err(unavailable)?;
    let marked = moved.iter().filter(|m| **m == Moved::Changed).count();
    json(StatusCode::OK, &json!({ "marked": marked }))
}

fn parse_ids(body: JsonObject<SeenBody>) -> Result<Vec<EventId>, ValidationErrors> {
    let JsonObject {
        fields, mut errors, ..
    } = body;
    let mut ids = Vec::new();
    match fields.get("ids") {
        None => errors.push(FieldError::new("ids", "is required")),
        Some(Value::Array(items)) if items.len() > MAX_MOVED_AT_ONCE => errors.push(
            FieldError::new("ids", format!("must name at most {MAX_MOVED_AT_ONCE}")),
        ),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().map(EventId::parse) {
                    Some(Ok(id)) if !ids.contains(&id) => ids.push(id),
                    Some(Ok(_)) => {
                        errors.push(FieldError::new(format!("ids/{i}"), "is listed twice"));
                    }
                    _ => errors.push(FieldError::new(
                        format!("ids/{i}"),
                        "is not a notification id",
                    )),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(
            "ids",
            "must be an array of notification ids",
        )),
    }
    errors.finish(ids)
}

pub async fn mark_all_read<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
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
