//! Who is told about what: the one table of notification rules, recipients' opt-outs, and the
//! notification itself.

use std::collections::{BTreeSet, HashMap, HashSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::actor::{Actor, UserId};
use crate::episode::Person;
use crate::event::{DomainEvent, EventType};
use crate::ids::{EpisodeId, EventId};
use crate::time::Timestamp;

/// Who hears about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Nobody: the change is visible in the activity log only.
    Nobody,
    /// The episode's watchers: its creator, and anyone who asked to watch it.
    Watchers,
    /// Whoever asked for the job the event is about.
    Requester,
}

/// The rules, in one readable place. Nobody is ever notified of their own action, and each
/// recipient may mute event types (see [`Preferences`]).
///
/// | event                                | audience  |
/// |--------------------------------------|-----------|
/// | `episode.created`                    | nobody    |
/// | `episode.updated` changing `status`  | watchers  |
/// | `episode.updated`, other fields only | nobody    |
/// | `episode.deleted`                    | watchers  |
/// | `file.*`                             | nobody    |
/// | `job.failed` (for good)              | requester (watchers when a rule started it) |
/// | other `job.*`                        | nobody    |
pub fn audience(event: &DomainEvent) -> Audience {
    match event.event_type {
        EventType::EpisodeCreated => Audience::Nobody,
        EventType::EpisodeUpdated if event.data.pointer("/changes/status").is_some() => {
            Audience::Watchers
        }
        EventType::EpisodeUpdated => Audience::Nobody,
        EventType::EpisodeDeleted => Audience::Watchers,
        // The audit trail and live updates carry file activity; nobody is notified of it.
        EventType::FileUploaded | EventType::FileDownloaded | EventType::FileDeleted => {
            Audience::Nobody
        }
        // A job started by a rule (jobs on upload) was asked for by nobody: the episode's
        // watchers hear of it instead.
        EventType::JobFailed if requester(event).is_some_and(|u| u.is_system()) => {
            Audience::Watchers
        }
        EventType::JobFailed => Audience::Requester,
        EventType::JobCreated
        | EventType::JobStarted
        | EventType::JobProgress
        | EventType::JobSucceeded
        | EventType::JobRetryScheduled
        | EventType::JobCancelled
        | EventType::JobRetried => Audience::Nobody,
    }
}

/// The user who asked for the job an event is about.
pub fn requester(event: &DomainEvent) -> Option<UserId> {
    event
        .data
        .pointer("/job/created_by/id")
        .and_then(Value::as_str)
        .and_then(|u| UserId::parse(u).ok())
}

/// A user's notification settings: the event types they do not want to hear about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    pub muted_event_types: BTreeSet<EventType>,
}

impl Preferences {
    pub fn wants(&self, t: EventType) -> bool {
        !self.muted_event_types.contains(&t)
    }
}

/// The recipients of `event` among `candidates` (for watchers: the watch list), minus the
/// actor and anyone who muted the event's type; each once, in a stable order.
pub fn recipients(
    event: &DomainEvent,
    candidates: &[UserId],
    preferences: &HashMap<UserId, Preferences>,
) -> Vec<UserId> {
    let set: BTreeSet<&UserId> = candidates
        .iter()
        .filter(|u| **u != event.actor.id)
        .filter(|u| {
            preferences
                .get(*u)
                .is_none_or(|p| p.wants(event.event_type))
        })
        .collect();
    set.into_iter().cloned().collect()
}

/// A notification as the API serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "Notification")]
pub struct NotificationBody {
    /// The id of the event it is about: one notification per (event, recipient).
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub episode_id: EpisodeId,
    /// Who caused it.
    pub actor: Person,
    pub summary: String,
    pub created_at: Timestamp,
    pub read: bool,
    pub read_at: Option<Timestamp>,
}

/// One notification for one user about one event: idempotent per (event, recipient).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: EventId,
    pub recipient: UserId,
    pub event_type: EventType,
    pub episode_id: EpisodeId,
    pub actor: Actor,
    pub summary: String,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
}

/// DynamoDB's limit on the items of one transaction.
pub const TRANSACTION_MAX_ITEMS: usize = 100;

/// The notifications in groups that each fit one transaction with their recipients' unread
/// counters (an item per notification, one per distinct recipient of the group): 50 to a
/// transaction when every recipient is different, so W watchers cost ⌈W / 50⌉ writes, not W.
/// The same (event, recipient) named twice is written once.
pub fn transaction_chunks(notes: &[Notification]) -> Vec<Vec<Notification>> {
    let mut seen = HashSet::new();
    let mut chunks = Vec::new();
    let mut chunk: Vec<Notification> = Vec::new();
    let mut users: HashSet<&UserId> = HashSet::new();
    for note in notes {
        if !seen.insert((&note.recipient, note.id)) {
            continue;
        }
        let items = 1 + usize::from(!users.contains(&note.recipient));
        if chunk.len() + users.len() + items > TRANSACTION_MAX_ITEMS {
            chunks.push(std::mem::take(&mut chunk));
            users.clear();
        }
        users.insert(&note.recipient);
        chunk.push(note.clone());
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// How long notifications are kept.
pub const NOTIFICATION_RETENTION_DAYS: i64 = 90;

impl Notification {
    pub fn for_recipient(event: &DomainEvent, recipient: UserId, summary: String) -> Self {
        Self {
            id: event.id,
            recipient,
            event_type: event.event_type,
            episode_id: event.episode_id,
            actor: event.actor.clone(),
            summary,
            created_at: event.occurred_at,
            read_at: None,
        }
    }

    /// The notification as the API (and its WebSocket frame) serves it.
    pub fn body(&self) -> NotificationBody {
        NotificationBody {
            id: self.id,
            event_type: self.event_type,
            episode_id: self.episode_id,
            actor: Person {
                id: self.actor.id.clone(),
                name: self.actor.name.clone(),
            },
            summary: self.summary.clone(),
            created_at: self.created_at,
            read: self.read_at.is_some(),
            read_at: self.read_at,
        }
    }

    /// [`Self::body`] as JSON (a struct of strings, numbers and JSON values: serializing it
    /// cannot fail).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn notifications_go_in_transactions_of_fifty_with_their_counters() {
        let event = golden(include_str!("../../../events/domain/episode.updated.json"));
        let notes: Vec<Notification> = (0..120)
            .map(|i| {
                Notification::for_recipient(
                    &event,
                    UserId::parse(&format!("u{i}")).unwrap(),
                    "s".into(),
                )
            })
            .collect();
        let chunks = transaction_chunks(&notes);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [50, 50, 20]
        );
        // Ann's two and u0's one, each named again: three notifications, two counters.
        let other = golden(include_str!("../../../events/domain/episode.created.json"));
        let same: Vec<Notification> = [&event, &other]
            .iter()
            .cycle()
            .take(2)
            .map(|e| Notification::for_recipient(e, UserId::parse("ann").unwrap(), "s".into()))
            .chain(std::iter::repeat_n(notes[0].clone(), 3))
            .collect();
        let chunks = transaction_chunks(&same);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            chunks[0].len(),
            3,
            "the same (event, recipient) counts once"
        );
        assert!(transaction_chunks(&[]).is_empty());
    }

    fn golden(text: &str) -> DomainEvent {
        serde_json::from_str(text).unwrap()
    }

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn the_rules_table() {
        let created = golden(include_str!("../../../events/domain/episode.created.json"));
        let updated = golden(include_str!("../../../events/domain/episode.updated.json"));
        let deleted = golden(include_str!("../../../events/domain/episode.deleted.json"));
        assert_eq!(audience(&created), Audience::Nobody);
        assert_eq!(audience(&updated), Audience::Watchers, "a status change");
        assert_eq!(audience(&deleted), Audience::Watchers);
        let mut retitled = updated.clone();
        retitled.data = json!({"changes": {"title": "x"}, "version": 3});
        assert_eq!(audience(&retitled), Audience::Nobody);
    }

    #[test]
    fn nobody_hears_of_their_own_action_and_muted_types_are_skipped() {
        let event = golden(include_str!("../../../events/domain/episode.deleted.json"));
        let muted = Preferences {
            muted_event_types: BTreeSet::from([EventType::EpisodeDeleted]),
        };
        let prefs = HashMap::from([(user("carol"), muted)]);
        let got = recipients(
            &event,
            &[user("alice"), user("bob"), user("carol"), user("bob")],
            &prefs,
        );
        assert_eq!(got, [user("bob")]);
    }

    #[test]
    fn preferences_parse_strictly() {
        let p: Preferences =
            serde_json::from_value(json!({"muted_event_types": ["episode.deleted"]})).unwrap();
        assert!(!p.wants(EventType::EpisodeDeleted) && p.wants(EventType::EpisodeUpdated));
        assert!(
            serde_json::from_value::<Preferences>(json!({"muted_event_types": ["nope"]})).is_err()
        );
        assert!(serde_json::from_value::<Preferences>(json!({"muted": []})).is_err());
    }
}
