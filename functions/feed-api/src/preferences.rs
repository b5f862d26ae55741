//! `GET` and `PUT /me/notification-preferences`: the event types the caller is not notified of.

use axum::extract::State;
use domain::store::notification::Inbox;
use domain::{FieldError, Preferences, ValidationErrors};
use lambda_http::http::StatusCode;
use lambda_kit::Problem;
use lambda_kit::http::{Handled, json};
use lambda_kit::router::{BodyRules, Caller, JsonObject, NoQuery, Query};
use serde_json::Value;

use crate::routes::{Shared, unavailable};

/// The body of `PUT /me/notification-preferences`.
#[derive(Debug)]
pub struct Body;

impl BodyRules for Body {
    const MAX_BYTES: usize = 64 * 1024;
    const FIELDS: &'static [&'static str] = &["muted_event_types"];
}

pub async fn get<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    _: Query<NoQuery>,
) -> Handled {
    let prefs = api
        .notifications
        .preferences(&actor.id)
        .await
        .map_err(unavailable)?;
    json(StatusCode::OK, &prefs)
}

pub async fn set<A, N: Inbox, P, X>(
    State(api): State<Shared<A, N, P, X>>,
    Caller(actor): Caller,
    _: Query<NoQuery>,
    body: JsonObject<Body>,
) -> Handled {
    let prefs = parse(body).map_err(Problem::unprocessable)?;
    api.notifications
        .set_preferences(&actor.id, &prefs)
        .await
        .map_err(unavailable)?;
    json(StatusCode::OK, &prefs)
}

/// `{"muted_event_types": [..]}`, every entry a known event type; each problem named.
fn parse(body: JsonObject<Body>) -> Result<Preferences, ValidationErrors> {
    let JsonObject {
        fields, mut errors, ..
    } = body;
    let mut prefs = Preferences::default();
    match fields.get("muted_event_types") {
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

    fn parse_text(text: &str) -> Result<Preferences, ValidationErrors> {
        parse(JsonObject::parse(text.as_bytes()).unwrap())
    }

    #[test]
    fn preferences_name_each_bad_field() {
        let ok = parse_text(r#"{"muted_event_types": ["episode.deleted"]}"#).unwrap();
        assert_eq!(ok.muted_event_types.len(), 1);
        let err = parse_text(r#"{"muted_event_types": ["episode.deleted", "nope"], "x": 1}"#)
            .unwrap_err();
        let fields: Vec<_> = err.fields().iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["x", "muted_event_types/1"]);
        assert!(parse_text(r#"{"muted_event_types": 3}"#).is_err());
    }
}
