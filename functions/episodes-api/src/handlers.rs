//! One function per route. Each takes what it needs as extractors, in the order a request is
//! checked (the caller, the id, the query, the body), and only the store capability it uses;
//! it calls the domain and maps the result. The store call is the request's only DynamoDB call.

use axum::extract::State;
use domain::search::{Ranked, SearchText};
use domain::store::search::{LookupError, SearchIndexReader};
use domain::store::{
    EpisodeLister, EpisodeReader, EpisodeWriter, Idempotency, ListQuery, StoreError,
};
use domain::{
    DomainEvent, EpisodeDeletion, EpisodeId, EpisodeStatus, EpisodeUpdate, FieldError, Rejection,
    Role, Stamp, Timestamp, ValidationErrors, Version,
};
use lambda_http::http::{HeaderMap, StatusCode, header};
use lambda_http::{Body, Response};
use lambda_kit::http::{Handled, empty, json, set_header};
use lambda_kit::router::{
    BodyRules, Caller, Id, IdempotencyKey, JsonObject, NoQuery, Query, QueryRules, Refusal, Writer,
};
use lambda_kit::{Problem, RequestMeta, SavedFirst};
use serde_json::json;

use lambda_kit::cursor;

use crate::input;
use crate::routes::Shared;
use crate::search::{self, SearchError, SearchQuery};

/// How a stale version is reported: 409 for a version in the body, 412 for `If-Match`.
type StaleProblem = fn(String) -> Problem;

/// Who may write episodes: editors and admins.
#[derive(Debug)]
pub struct Editors;

impl Refusal for Editors {
    const VIEWERS: &'static str = "viewers cannot change episodes";
}

/// Maps a store failure; `stale` decides between 409 (version in the body) and 412 (If-Match).
fn store_problem(e: StoreError, stale: StaleProblem) -> Problem {
    match e {
        StoreError::Rejected(r) => match r {
            Rejection::NotFound => Problem::not_found("no such episode"),
            Rejection::Stale {
                current, ref saved, ..
            } => stale(r.to_string()).with_current(SavedFirst {
                version: current,
                saved_at: saved.at,
                saved_by: saved.person(),
            }),
            Rejection::IllegalTransition { .. } => {
                Problem::illegal_transition("status", r.to_string())
            }
            Rejection::NotOwner => Problem::forbidden(r.to_string()),
            Rejection::Concurrent => Problem::conflict(r.to_string()),
            Rejection::Replayed { .. } => Problem::conflict(format!("{r} for a different request")),
        },
        StoreError::Unavailable(source) => Problem::unavailable("episode store", &source),
    }
}

fn with_etag(mut response: Response<Body>, version: Version) -> Response<Body> {
    set_header(&mut response, header::ETAG, &version.etag());
    response
}

/// `POST /episodes`: a draft (201). With an `Idempotency-Key` its user used in the last 24
/// hours for the same fields, the episode that request created (200, as it is now); for other
/// fields, 409.
pub async fn create<S: EpisodeWriter + EpisodeReader, I>(
    State(api): State<Shared<S, I>>,
    meta: RequestMeta,
    Writer(actor, _): Writer<Editors>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonObject<input::Create>,
) -> Handled {
    let new = input::new_episode(body)?;
    let episode = new.into_episode(EpisodeId::new(), &actor, Timestamp::now());
    let event = DomainEvent::episode_created(&meta.event_context(&actor), &episode);
    let mut fields = episode.to_json();
    if let Some(all) = fields.as_object_mut() {
        all.retain(|k, _| input::Create::FIELDS.contains(&k.as_str()));
    }
    let fingerprint = fields.to_string();
    let idempotency = key.as_deref().map(|key| Idempotency {
        key,
        fingerprint: &fingerprint,
    });
    match api.store.create(&episode, &event, idempotency).await {
        Ok(()) => {}
        Err(StoreError::Rejected(Rejection::Replayed {
            episode: previous,
            same_request: true,
        })) => return replayed(&api.store, previous).await,
        Err(e) => return Err(store_problem(e, Problem::conflict)),
    }
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

/// The answer to a create repeated with its key: the episode the first one created, now.
async fn replayed<S: EpisodeReader>(store: &S, id: EpisodeId) -> Handled {
    let episode = store
        .get(id)
        .await
        .map_err(|e| store_problem(e, Problem::conflict))?
        .filter(|e| e.deleted.is_none())
        .ok_or_else(|| {
            Problem::not_found("the episode this Idempotency-Key created was deleted")
        })?;
    tracing::info!(episode_id = %id, "create repeated with its Idempotency-Key");
    let mut response = with_etag(json(StatusCode::OK, &episode.to_json())?, episode.version);
    set_header(&mut response, header::LOCATION, &format!("/episodes/{id}"));
    Ok(response)
}

pub async fn get<S: EpisodeReader, I>(
    State(api): State<Shared<S, I>>,
    _: Caller,
    Id(id): Id<EpisodeId>,
    _: Query<NoQuery>,
) -> Handled {
    let episode = api
        .store
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

/// The query parameters of `GET /episodes`; anything else is refused rather than ignored.
#[derive(Debug)]
pub struct Listing;

impl QueryRules for Listing {
    const ALLOWED: &'static [&'static str] = &["q", "status", "limit", "cursor"];
}

/// `GET /episodes`'s query as the store's: every bad value at once (unknown or repeated
/// parameters were refused before, by [`Query`]).
fn list_query(query: &Query<Listing>) -> Result<ListQuery, Problem> {
    let mut errors = Vec::new();
    let status = status_param(query, &mut errors);
    let paging = query.paging(&cursor_scope(status)).and_then(|paging| {
        let after = paging.after_id(|id| EpisodeId::parse(id).ok())?;
        Ok((paging.limit, after))
    });
    let (limit, after) = with_errors(paging, errors)?;
    Ok(ListQuery {
        status,
        limit,
        after,
    })
}

/// The paging, unless it or the other parameters were bad: then every problem at once.
fn with_errors<T>(paging: Result<T, Problem>, mut errors: Vec<FieldError>) -> Result<T, Problem> {
    match paging {
        Ok(paging) if errors.is_empty() => Ok(paging),
        Ok(_) => Err(Problem::bad_request(errors)),
        Err(problem) => {
            errors.extend(problem.errors);
            Err(Problem::bad_request(errors))
        }
    }
}

/// `status`, when given; a bad one joins `errors`.
fn status_param(query: &Query<Listing>, errors: &mut Vec<FieldError>) -> Option<EpisodeStatus> {
    match query.params.get("status").map(|s| EpisodeStatus::parse(s)) {
        Some(Ok(status)) => Some(status),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
        None => None,
    }
}

/// A list cursor is bound to its status filter.
fn cursor_scope(status: Option<EpisodeStatus>) -> String {
    status.map(|s| format!("status={s}")).unwrap_or_default()
}

pub async fn list<S: EpisodeLister + EpisodeReader + Sync, I: SearchIndexReader>(
    State(api): State<Shared<S, I>>,
    _: Caller,
    params: Query<Listing>,
) -> Handled {
    if params.params.contains_key("q") {
        return search(&api, &params).await;
    }
    let query = &list_query(&params)?;
    let page = api
        .store
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

/// `GET /episodes?q=`: the same page shape, ranked by fields matched then newest.
async fn search<S: EpisodeReader + Sync, I: SearchIndexReader>(
    api: &Shared<S, I>,
    params: &Query<Listing>,
) -> Handled {
    let query = &search_query(params)?;
    let found = search::search(&api.store, &api.index, query)
        .await
        .map_err(|e| match e {
            SearchError::Lookup(LookupError::TooBroad(word)) => {
                let mut errors = ValidationErrors::default();
                errors.push(FieldError::new(
                    "q",
                    format!("“{word}” matches too many episodes; type more of it"),
                ));
                Problem::unprocessable(errors)
            }
            SearchError::Lookup(LookupError::Store(e)) => Problem::unavailable("search index", &e),
            SearchError::Episodes(e) => store_problem(e, Problem::conflict),
        })?;
    let items: Vec<_> = found.items.iter().map(domain::Episode::to_json).collect();
    let scope = SearchQuery::scope(&query.text, query.status);
    let next_cursor = found.next_after.map(|after| {
        cursor::encode(
            &[after.score.to_string(), after.episode.to_string()],
            &scope,
        )
    });
    json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next_cursor }),
    )
}

/// `GET /episodes?q=`'s query: every bad value at once.
fn search_query(query: &Query<Listing>) -> Result<SearchQuery, Problem> {
    let mut errors = Vec::new();
    let status = status_param(query, &mut errors);
    let text = match SearchText::parse(query.params.get("q").map_or("", String::as_str)) {
        Ok(text) => Some(text),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let Some(text) = text else {
        return Err(Problem::bad_request(errors));
    };
    let paging = query
        .paging(&SearchQuery::scope(&text, status))
        .and_then(|paging| {
            let after = paging.after_position(|position| match position {
                [score, id] => score
                    .parse()
                    .ok()
                    .zip(EpisodeId::parse(id).ok())
                    .map(|(score, episode)| Ranked { score, episode }),
                _ => None,
            })?;
            Ok((paging.limit, after))
        });
    let (limit, after) = with_errors(paging, errors)?;
    Ok(SearchQuery {
        text,
        status,
        limit,
        after,
    })
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

pub async fn update<S: EpisodeReader + EpisodeWriter, I>(
    State(api): State<Shared<S, I>>,
    meta: RequestMeta,
    Writer(actor, _): Writer<Editors>,
    Id(id): Id<EpisodeId>,
    _: Query<NoQuery>,
    headers: HeaderMap,
    body: JsonObject<input::Patch>,
) -> Handled {
    let (changes, body_version) = input::episode_changes(body)?;
    let (expected, stale) = edited_version(if_match(&headers), body_version)?;
    let update = EpisodeUpdate {
        id,
        expected,
        changes,
        updated: Stamp::new(&actor, Timestamp::now()),
    };
    // Nothing moves back to draft: no write can succeed, so read once to say why (404, 412/409
    // or 409 for the illegal move) instead of sending a transaction that is bound to fail.
    if update
        .changes
        .status
        .is_some_and(|to| to.reachable_from().is_empty())
    {
        let current = api
            .store
            .get(id)
            .await
            .map_err(|e| store_problem(e, stale))?;
        return Err(store_problem(
            StoreError::Rejected(update.explain(current.as_ref())),
            stale,
        ));
    }
    let event = DomainEvent::episode_updated(&meta.event_context(&actor), &update);
    api.store
        .update(&update, &event)
        .await
        .map_err(|e| store_problem(e, stale))?;
    tracing::info!(episode_id = %id, event_id = %event.id, "episode updated");
    Ok(with_etag(
        empty(StatusCode::NO_CONTENT),
        update.new_version(),
    ))
}

pub async fn delete<S: EpisodeWriter, I>(
    State(api): State<Shared<S, I>>,
    meta: RequestMeta,
    Writer(actor, _): Writer<Editors>,
    Id(id): Id<EpisodeId>,
    _: Query<NoQuery>,
    headers: HeaderMap,
) -> Handled {
    let expected = if_match(&headers)
        .map(|h| Version::from_if_match(h).map_err(|e| Problem::bad_request(vec![e])))
        .transpose()?;
    let deletion = EpisodeDeletion {
        id,
        expected,
        only_if_created_by: (actor.role != Role::Admin).then(|| actor.id.clone()),
        deleted: Stamp::new(&actor, Timestamp::now()),
    };
    let event = DomainEvent::episode_deleted(&meta.event_context(&actor), &deletion);
    api.store
        .delete(&deletion, &event)
        .await
        .map_err(|e| store_problem(e, Problem::precondition_failed))?;
    tracing::info!(episode_id = %id, event_id = %event.id, "episode deleted");
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `If-Match`, when sent (a value that is not text cannot match any version). An empty one
/// is an empty list of tags (RFC 9110's `#entity-tag` allows it): the same as none.
fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}invalid"))
        .filter(|v| !v.trim().is_empty())
}

pub async fn health(_: Query<NoQuery>) -> Handled {
    json(
        StatusCode::OK,
        &json!({
            "status": "ok",
            "function": env!("CARGO_PKG_NAME"),
            "version": env!("CARGO_PKG_VERSION"),
        }),
    )
}
