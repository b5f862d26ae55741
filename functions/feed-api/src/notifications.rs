//! A user's own notifications, watches and notification preferences. Every route acts on the
//! caller's own items only: the caller's id is the partition key, so another user's
//! notification id is simply not found.

use std::collections::BTreeMap;

use domain::store::notification::{Inbox, MarkRead};
use domain::store::{PageSize, StoreError};
use domain::{Actor, EpisodeId, EventId, FieldError, Preferences, Timestamp, ValidationErrors};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use lambda_kit::http::{empty, json};
use lambda_kit::{Problem, cursor};
use serde_json::{Value, json};

type Handled = Result<Response<Body>, Problem>;

fn unavailable(e: StoreError) -> Problem {
    Problem::unavailable("notification store", &e)
}

pub async fn list(
    store: &(impl Inbox + Sync),
    actor: &Actor,
    params: &BTreeMap<String, String>,
) -> Handled {
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
    let page = store
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

pub async fn unread_count(store: &(impl Inbox + Sync), actor: &Actor) -> Handled {
    let unread = store.unread_count(&actor.id).await.map_err(unavailable)?;
    json(StatusCode::OK, &json!({ "unread": unread }))
}

pub async fn mark_read(store: &(impl Inbox + Sync), actor: &Actor, id: &str) -> Handled {
    let id = EventId::parse(id).map_err(|_| {
        Problem::bad_request(vec![FieldError::new("id", "is not a notification id")])
    })?;
    match store
        .mark_read(&actor.id, id, Timestamp::now())
        .await
        .map_err(unavailable)?
    {
        MarkRead::Marked | MarkRead::AlreadyRead => Ok(empty(StatusCode::NO_CONTENT)),
        MarkRead::NotFound => Err(Problem::not_found("no such notification")),
    }
}

pub async fn mark_all_read(store: &(impl Inbox + Sync), actor: &Actor) -> Handled {
    let done = store
        .mark_all_read(&actor.id, Timestamp::now())
        .await
        .map_err(unavailable)?;
    // `more`: it stopped at its bound (1,000 a call); calling again marks the rest.
    json(
        StatusCode::OK,
        &json!({ "marked": done.marked, "more": done.more }),
    )
}

pub async fn watch(store: &(impl Inbox + Sync), actor: &Actor, episode: EpisodeId) -> Handled {
    if store
        .watch(episode, &actor.id, Timestamp::now())
        .await
        .map_err(unavailable)?
    {
        Ok(empty(StatusCode::NO_CONTENT))
    } else {
        Err(Problem::not_found("no such episode"))
    }
}

pub async fn unwatch(store: &(impl Inbox + Sync), actor: &Actor, episode: EpisodeId) -> Handled {
    store
        .unwatch(episode, &actor.id)
        .await
        .map_err(unavailable)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn preferences(store: &(impl Inbox + Sync), actor: &Actor) -> Handled {
    let prefs = store.preferences(&actor.id).await.map_err(unavailable)?;
    json(StatusCode::OK, &prefs)
}

pub async fn set_preferences(store: &(impl Inbox + Sync), actor: &Actor, body: &[u8]) -> Handled {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request(vec![FieldError::new(
            "body",
            format!("is not valid JSON: {e}"),
        )])
    })?;
    let prefs = parse_preferences(&value).map_err(Problem::unprocessable)?;
    store
        .set_preferences(&actor.id, &prefs)
        .await
        .map_err(unavailable)?;
    json(StatusCode::OK, &prefs)
}

/// `{"muted_event_types": [..]}`, every entry a known event type; each problem named.
fn parse_preferences(value: &Value) -> Result<Preferences, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let Some(obj) = value.as_object() else {
        return Err(FieldError::new("body", "must be a JSON object").into());
    };
    for key in obj.keys().filter(|k| *k != "muted_event_types") {
        errors.push(FieldError::new(key.as_str(), "is not a known field"));
    }
    let mut prefs = Preferences::default();
    match obj.get("muted_event_types") {
        None => errors.push(FieldError::new("muted_event_types", "is required")),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match serde_json::from_value(item.clone()) {
                    Ok(t) => {
                        prefs.muted_event_types.insert(t);
                    }
                    Err(_) => errors.push(FieldError::new(
                        format!("muted_event_types/{i}"),
                        "is not an event type",
                    )),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(
            "muted_event_types",
            "must be an array of event types",
        )),
    }
    errors.finish(prefs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_name_each_bad_field() {
        let ok = parse_preferences(&json!({"muted_event_types": ["episode.deleted"]})).unwrap();
        assert_eq!(ok.muted_event_types.len(), 1);
        let err =
            parse_preferences(&json!({"muted_event_types": ["episode.deleted", "nope"], "x": 1}))
                .unwrap_err();
        let fields: Vec<_> = err.fields().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["x", "muted_event_types/1"]);
        assert!(parse_preferences(&json!([])).is_err());
    }
}
