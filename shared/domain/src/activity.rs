//! The activity log: one immutable entry per domain event, with a summary fit for a feed.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::actor::Actor;
use crate::episode::Person;
use crate::event::{DomainEvent, EventType, ResourceRef};
use crate::ids::{CorrelationId, EpisodeId, EventId};
use crate::time::Timestamp;

/// How long activity entries are kept unless the template says otherwise
/// (`ActivityRetentionDays`, applied by a TTL on the items).
pub const DEFAULT_RETENTION_DAYS: u32 = 365;

/// An activity entry as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "ActivityEntry")]
pub struct ActivityBody {
    /// The id of the event the entry records.
    pub id: EventId,
    pub action: EventType,
    pub actor: Person,
    pub resource: ResourceRef,
    /// The episode it is about; absent for the log's own entries (an export), so that no
    /// client reads a null as an episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode_id: Option<EpisodeId>,
    pub occurred_at: Timestamp,
    /// One line fit for a feed: "Alice moved S2E4 to review".
    pub summary: String,
    /// The event's data.
    pub metadata: Value,
    pub request_id: Option<String>,
    pub correlation_id: CorrelationId,
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityEntry {
    pub event_id: EventId,
    pub action: EventType,
    pub actor: Actor,
    pub resource: ResourceRef,
    pub episode_id: Option<EpisodeId>,
    pub occurred_at: Timestamp,
    pub summary: String,
    pub metadata: Value,
    pub request_id: Option<String>,
    pub correlation_id: CorrelationId,
}

impl ActivityEntry {
    /// The entry for an event. `label` names the episode ("S2E4" or its quoted title) when
    /// known; the created event carries its own.
    pub fn from_event(event: &DomainEvent, label: Option<&str>) -> Self {
        let label = label_of(event, label);
        Self {
            event_id: event.id,
            action: event.event_type,
            actor: event.actor.clone(),
            resource: event.resource.clone(),
            episode_id: event.episode_id,
            occurred_at: event.occurred_at,
            summary: summary(event, &label),
            metadata: event.data.clone(),
            request_id: event.request_id.clone(),
            correlation_id: event.correlation_id.clone(),
        }
    }

    /// The entry as the feed API serves it.
    pub fn body(&self) -> ActivityBody {
        ActivityBody {
            id: self.event_id,
            action: self.action,
            actor: Person {
                id: self.actor.id.clone(),
                name: self.actor.name.clone(),
            },
            resource: self.resource.clone(),
            episode_id: self.episode_id,
            occurred_at: self.occurred_at,
            summary: self.summary.clone(),
            metadata: self.metadata.clone(),
            request_id: self.request_id.clone(),
            correlation_id: self.correlation_id.clone(),
        }
    }

    /// [`Self::body`] as JSON (a struct of strings, numbers and JSON values: serializing it
    /// cannot fail).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    /// When the entry may be deleted, kept `retention_days` after it happened.
    pub fn expires_at(&self, retention_days: u32) -> Timestamp {
        self.occurred_at.plus_days(i64::from(retention_days))
    }
}

/// How an event names its episode: the label looked up (`known`), else the one the event
/// carries (a created episode), else "an episode". The activity entry and the notification
/// both name it so.
pub fn label_of(event: &DomainEvent, known: Option<&str>) -> String {
    known
        .map(str::to_owned)
        .or_else(|| episode_label_from_data(&event.data))
        .unwrap_or_else(|| "an episode".to_owned())
}

/// "S2E4" when season and number are known, else the title in quotes.
pub fn episode_label(title: &str, season: Option<u64>, number: Option<u64>) -> String {
    match (season, number) {
        (Some(s), Some(n)) => format!("S{s}E{n}"),
        _ => format!("“{title}”"),
    }
}

fn episode_label_from_data(data: &Value) -> Option<String> {
    let ep = data.get("episode")?;
    let title = ep.get("title")?.as_str()?;
    Some(episode_label(
        title,
        ep.get("season").and_then(Value::as_u64),
        ep.get("number").and_then(Value::as_u64),
    ))
}

fn file_name(event: &DomainEvent) -> String {
    let name = event
        .data
        .pointer("/file/name")
        .and_then(Value::as_str)
        .unwrap_or("a file");
    format!("“{name}”")
}

fn job_name(event: &DomainEvent) -> String {
    let kind = event
        .data
        .pointer("/job/type")
        .and_then(Value::as_str)
        .unwrap_or("processing");
    format!("{kind} job")
}

fn summary(event: &DomainEvent, label: &str) -> String {
    let who = event.actor.name.as_str();
    match event.event_type {
        EventType::EpisodeCreated => format!("{who} created {label}"),
        EventType::EpisodeDeleted => format!("{who} deleted {label}"),
        EventType::FileUploaded => format!("{who} uploaded {} to {label}", file_name(event)),
        EventType::FileDownloaded => format!("{who} downloaded {} of {label}", file_name(event)),
        EventType::FileDeleted => format!("{who} deleted {} from {label}", file_name(event)),
        EventType::JobCreated => format!("{who} started a {} on {label}", job_name(event)),
        EventType::JobStarted => format!("{} on {label} is running", job_name(event)),
        EventType::JobProgress => format!(
            "{} on {label} is at {}%",
            job_name(event),
            event
                .data
                .pointer("/job/progress")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        ),
        EventType::JobSucceeded => format!("{} on {label} succeeded", job_name(event)),
        EventType::JobRetryScheduled => {
            format!("{} on {label} failed and will be retried", job_name(event))
        }
        EventType::JobFailed => format!(
            "{} on {label} failed: {}",
            job_name(event),
            event
                .data
                .pointer("/job/error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
        ),
        EventType::JobCancelled => format!("{who} cancelled a {} on {label}", job_name(event)),
        EventType::JobRetried => format!("{who} retried a {} on {label}", job_name(event)),
        EventType::ActivityExported => {
            let export = event.data.get("export");
            match export.and_then(|x| x.get("error")).and_then(Value::as_str) {
                Some(error) => format!("{who}'s export of the activity log failed: {error}"),
                None => format!(
                    "{who} exported {} activity entries",
                    export
                        .and_then(|x| x.get("entries"))
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                ),
            }
        }
        EventType::EpisodeUpdated => {
            let changes = event.data.get("changes").and_then(Value::as_object);
            let status = changes
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str);
            let others: Vec<&str> = changes
                .map(|c| {
                    c.keys()
                        .map(String::as_str)
                        .filter(|k| *k != "status")
                        .collect()
                })
                .unwrap_or_default();
            match (status, others.as_slice()) {
                (Some(s), []) => format!("{who} moved {label} to {s}"),
                (Some(s), fields) => {
                    format!("{who} moved {label} to {s} and edited its {}", list(fields))
                }
                (None, []) => format!("{who} edited {label}"),
                (None, fields) => format!("{who} edited the {} of {label}", list(fields)),
            }
        }
    }
}

fn list(fields: &[&str]) -> String {
    let words: Vec<String> = fields.iter().map(|f| f.replace('_', " ")).collect();
    match words.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(text: &str) -> DomainEvent {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn summaries_read_like_a_feed() {
        let created = golden(include_str!("../../../events/domain/episode.created.json"));
        assert_eq!(
            ActivityEntry::from_event(&created, None).summary,
            "Alice created S2E4"
        );
        let updated = golden(include_str!("../../../events/domain/episode.updated.json"));
        assert_eq!(
            ActivityEntry::from_event(&updated, Some("S2E4")).summary,
            "Alice moved S2E4 to in_production and edited its description"
        );
        let deleted = golden(include_str!("../../../events/domain/episode.deleted.json"));
        assert_eq!(
            ActivityEntry::from_event(&deleted, None).summary,
            "Alice deleted an episode"
        );
    }

    #[test]
    fn an_entry_about_no_episode_has_no_episode_id_field() {
        let mut event = golden(include_str!(
            "../../../events/domain/activity.exported.json"
        ));
        let entry = ActivityEntry::from_event(&event, None);
        let body = serde_json::to_value(entry.body()).unwrap();
        assert!(body.get("episode_id").is_none(), "{body}");
        event.episode_id = Some(EpisodeId::new());
        let body = serde_json::to_value(ActivityEntry::from_event(&event, None).body()).unwrap();
        assert!(body["episode_id"].is_string(), "{body}");
    }

    #[test]
    fn labels_and_lists() {
        assert_eq!(episode_label("Pilot", None, Some(3)), "“Pilot”");
        assert_eq!(
            list(&["title", "air_date", "series"]),
            "title, air date and series"
        );
    }
}
