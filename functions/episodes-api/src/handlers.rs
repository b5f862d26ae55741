//! One function per route. Each takes only the store capability it uses, parses, calls the
//! domain, and maps the result; the store call is the request's only DynamoDB call.

use domain::store::{EpisodeLister, EpisodeReader, EpisodeWriter, ListQuery, PageSize, StoreError};
use domain::{
    Actor, DomainEvent, EpisodeDeletion, EpisodeId, EpisodeStatus, EpisodeUpdate, FieldError,
    Rejection, Role, Stamp, Timestamp, Version,
};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};
use lambda_kit::http::{empty, json, set_header};
use lambda_kit::{Problem, RequestMeta};
use serde_json::json;

use lambda_kit::cursor;

use crate::input;

/// Bodies over this size are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const JSON: &str = "application/json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";

type Handled = Result<Response<Body>, Problem>;
/// How a stale version is reported: 409 for a version in the body, 412 for `If-Match`.
type StaleProblem = fn(String) -> Problem;

/// What a viewer is told on a write.
pub const WRITERS_ONLY: &str = "viewers cannot change episodes";

pub use lambda_kit::http::episode_id as parse_id;

/// Maps a store failure; `stale` decides between 409 (version in the body) and 412 (If-Match).
fn store_problem(e: StoreError, stale: StaleProblem) -> Problem {
    match e {
        StoreError::Rejected(r) => match r {
            Rejection::NotFound => Problem::not_found("no such episode"),
            Rejection::Stale { .. } => stale(r.to_string()),
            Rejection::IllegalTransition { .. } => Problem::illegal_transition(r.to_string()),
            Rejection::NotOwner => Problem::forbidden(r.to_string()),
            Rejection::Concurrent => Problem::conflict(r.to_string()),
        },
        StoreError::Unavailable(source) => Problem::unavailable("episode store", &source),
    }
}

fn with_etag(mut response: Response<Body>, version: Version) -> Response<Body> {
    set_header(&mut response, header::ETAG, &version.etag());
    response
}

pub async fn create(
    store: &impl EpisodeWriter,
    meta: &RequestMeta,
    actor: &Actor,
    body: &[u8],
) -> Handled {
    let new = input::new_episode(body)?;
    let episode = new.into_episode(EpisodeId::new(), actor, Timestamp::now());
    let event = DomainEvent::episode_created(&meta.event_context(actor), &episode);
    store
        .create(&episode, &event)
        .await
        .map_err(|e| store_problem(e, Problem::conflict))?;
    tracing::info!(episode_id = %episode.id, event_id = %event.id, "episode created");
    let mut response = with_etag(
        json(StatusCode::CREATED, &episode.to_json())?,
        episode.version,
    );
    set_header(
        &mut response,
        header::LOCATION,
        &format!("/episodes/{}", episode.id),
    );
    Ok(response)
}

pub async fn get(store: &impl EpisodeReader, id: EpisodeId) -> Handled {
    let episode = store
        .get(id)
        .await
        .map_err(|e| store_problem(e, Problem::conflict))?
        .filter(|e| e.deleted.is_none())
        .ok_or_else(|| Problem::not_found("no such episode"))?;
    Ok(with_etag(
        json(StatusCode::OK, &episode.to_json())?,
        episode.version,
    ))
}

/// Query parameters of `GET /episodes`; anything else is refused rather than ignored.
pub fn list_query(params: &[(&str, &str)]) -> Result<ListQuery, Problem> {
    let mut errors = Vec::new();
    let mut status = None;
    let mut limit = PageSize::DEFAULT;
    let mut raw_cursor = None;
    let mut seen: Vec<&str> = Vec::new();
    for &(key, value) in params {
        if seen.contains(&key) {
            errors.push(FieldError::new(key, "is given more than once"));
            continue;
        }
        seen.push(key);
        match key {
            "status" => match EpisodeStatus::parse(value) {
                Ok(s) => status = Some(s),
                Err(e) => errors.push(e),
            },
            "limit" => match PageSize::parse(value) {
                Ok(l) => limit = l,
                Err(e) => errors.push(e),
            },
            "cursor" => raw_cursor = Some(value),
            other => errors.push(FieldError::new(other, "is not a known query parameter")),
        }
    }
    let after = match raw_cursor.map(|c| decode_cursor(c, status)).transpose() {
        Ok(after) => after,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if errors.is_empty() {
        Ok(ListQuery {
            status,
            limit,
            after,
        })
    } else {
        Err(Problem::bad_request(errors))
    }
}

/// A list cursor is bound to its status filter.
fn cursor_scope(status: Option<EpisodeStatus>) -> String {
    status.map(|s| format!("status={s}")).unwrap_or_default()
}

fn decode_cursor(raw: &str, status: Option<EpisodeStatus>) -> Result<EpisodeId, FieldError> {
    let position = cursor::decode(raw, &cursor_scope(status))?;
    match position.as_slice() {
        [id] => EpisodeId::parse(id)
            .map_err(|_| FieldError::new("cursor", "is not a cursor this list returned")),
        _ => Err(FieldError::new(
            "cursor",
            "is not a cursor this list returned",
        )),
    }
}

pub async fn list(store: &impl EpisodeLister, query: &ListQuery) -> Handled {
    let page = store
        .list(query)
        .await
        .map_err(|e| store_problem(e, Problem::conflict))?;
    let items: Vec<_> = page.items.iter().map(domain::Episode::to_json).collect();
    let next_cursor = page
        .next_after
        .map(|after| cursor::encode(&[after.to_string()], &cursor_scope(query.status)));
    json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next_cursor }),
    )
}

/// The version the caller edited: from `If-Match` (412 when stale) or the body (409 when stale).
/// Neither is 428; both and disagreeing is 400.
fn edited_version(
    if_match: Option<&str>,
    in_body: Option<Version>,
) -> Result<(Version, StaleProblem), Problem> {
    let header = if_match
        .map(|h| Version::from_if_match(h).map_err(|e| Problem::bad_request(vec![e])))
        .transpose()?;
    match (header, in_body) {
        (Some(h), Some(b)) if h != b => Err(Problem::bad_request(vec![FieldError::new(
            "version",
            "disagrees with If-Match",
        )])),
        (Some(h), _) => Ok((h, Problem::precondition_failed)),
        (None, Some(b)) => Ok((b, Problem::conflict)),
        (None, None) => Err(Problem::precondition_required(
            "send the version you edited: If-Match with the ETag, or `version` in the body",
        )),
    }
}

pub async fn update<S: EpisodeReader + EpisodeWriter>(
    store: &S,
    meta: &RequestMeta,
    actor: &Actor,
    id: EpisodeId,
    if_match: Option<&str>,
    body: &[u8],
) -> Handled {
    let (changes, body_version) = input::episode_changes(body)?;
    let (expected, stale) = edited_version(if_match, body_version)?;
    let update = EpisodeUpdate {
        id,
        expected,
        changes,
        updated: Stamp::new(actor, Timestamp::now()),
    };
    // Nothing moves back to draft: no write can succeed, so read once to say why (404, 412/409
    // or 422) instead of sending a transaction that is bound to fail.
    if update
        .changes
        .status
        .is_some_and(|to| to.reachable_from().is_empty())
    {
        let current = store.get(id).await.map_err(|e| store_problem(e, stale))?;
        return Err(store_problem(
            StoreError::Rejected(update.explain(current.as_ref())),
            stale,
        ));
    }
    let event = DomainEvent::episode_updated(&meta.event_context(actor), &update);
    store
        .update(&update, &event)
        .await
        .map_err(|e| store_problem(e, stale))?;
    tracing::info!(episode_id = %id, event_id = %event.id, "episode updated");
    Ok(with_etag(
        empty(StatusCode::NO_CONTENT),
        update.new_version(),
    ))
}

pub async fn delete(
    store: &impl EpisodeWriter,
    meta: &RequestMeta,
    actor: &Actor,
    id: EpisodeId,
    if_match: Option<&str>,
) -> Handled {
    let expected = if_match
        .map(|h| Version::from_if_match(h).map_err(|e| Problem::bad_request(vec![e])))
        .transpose()?;
    let deletion = EpisodeDeletion {
        id,
        expected,
        only_if_created_by: (actor.role != Role::Admin).then(|| actor.id.clone()),
        deleted: Stamp::new(actor, Timestamp::now()),
    };
    let event = DomainEvent::episode_deleted(&meta.event_context(actor), &deletion);
    store
        .delete(&deletion, &event)
        .await
        .map_err(|e| store_problem(e, Problem::precondition_failed))?;
    tracing::info!(episode_id = %id, event_id = %event.id, "episode deleted");
    Ok(empty(StatusCode::NO_CONTENT))
}

pub fn health() -> Handled {
    json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "function": env!("CARGO_PKG_NAME"),
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )
}
