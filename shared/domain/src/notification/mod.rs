//! Who is told about what: the one table of notification rules, recipients' opt-outs, and the
//! notification itself.

use std::collections::{BTreeSet, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::actor::{Actor, UserId};
use crate::episode::Person;
use crate::event::{DomainEvent, EventType};
use crate::ids::{EpisodeId, EventId};
use crate::time::Timestamp;

pub mod batch;
pub mod state;

pub use batch::{Batching, Delivery, GroupKey, Incoming, Observed};
pub use state::{Counts, Moved, NoteFilter, NoteState, Transition};

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
/// | `activity.exported`                  | requester (the admin who asked, themself) |
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
        // The admin who asked for it hears that it is ready (or failed).
        EventType::ActivityExported => Audience::Requester,
    }
}

/// The user who asked for the job (or the export) an event is about.
pub fn requester(event: &DomainEvent) -> Option<UserId> {
    if event.event_type == EventType::ActivityExported {
        return Some(event.actor.id.clone());
    }
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
        // Nobody is told of their own action, but an export is told to the one who asked.
        .filter(|u| **u != event.actor.id || event.event_type == EventType::ActivityExported)
        .filter(|u| {
            preferences
                .get(*u)
                .is_none_or(|p| p.wants(event.event_type))
        })
        .collect();
    set.into_iter().cloned().collect()
}

/// One change a notification counts: the event and its line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub event_id: EventId,
    pub at: Timestamp,
    pub summary: String,
}

/// A notification as the API (and its WebSocket frame) serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "Notification")]
pub struct NotificationBody {
    /// The id of the event that opened it: one notification per (event, recipient) when
    /// batching is off, one per batch when it is on.
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The episode it is about; absent for one about the log itself (an export), so that no
    /// client reads a null as an episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode_id: Option<EpisodeId>,
    /// Who caused it.
    pub actor: Person,
    /// The whole of it: "Alice moved S2E4 4 times", or the one change's line.
    pub summary: String,
    /// Where it leads beyond the episode: an export's download (valid for an hour; the
    /// export, `GET /activity/exports/{id}`, hands out fresh ones).
    pub link: Option<String>,
    /// How many changes it counts (at most [`batch::MAX_CHANGES`]).
    pub count: usize,
    /// The changes, oldest first.
    pub changes: Vec<Change>,
    pub created_at: Timestamp,
    /// When its latest change happened.
    pub updated_at: Timestamp,
    pub state: NoteState,
    pub seen: bool,
    pub read: bool,
    pub archived: bool,
    pub seen_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    pub archived_at: Option<Timestamp>,
    /// Grows with every change of the notification (a new change, seen, read, archived): of
    /// two copies, the one with the higher revision is the newer.
    pub revision: u64,
}

/// One notification for one user: the changes of one episode of one kind by one actor
/// within the batching window (one change when batching is off).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The id of the event that opened it.
    pub id: EventId,
    pub recipient: UserId,
    pub event_type: EventType,
    pub episode_id: Option<EpisodeId>,
    pub actor: Actor,
    /// How the episode was named when it opened ("S2E4 “Pilot”").
    pub label: String,
    /// Where it leads beyond the episode (an export's download).
    pub link: Option<String>,
    /// Oldest first; never empty.
    pub changes: Vec<Change>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub state: NoteState,
    pub seen_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    pub archived_at: Option<Timestamp>,
    /// 1 when first written, one more with each change.
    pub revision: u64,
}

/// DynamoDB's limit on the items of one transaction.
pub const TRANSACTION_MAX_ITEMS: usize = 100;

/// How long notifications are kept (the template's `ReadNotificationRetentionDays` and
/// `UnreadNotificationRetentionDays`), applied by the table's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Read (and archived) ones: days after they were read.
    pub read_days: u32,
    /// Unread ones: days after their latest change.
    pub unread_days: u32,
}

impl Retention {
    pub const DEFAULT: Self = Self {
        read_days: 90,
        unread_days: 365,
    };

    /// When the notification may be deleted.
    pub fn expires_at(self, note: &Notification) -> Timestamp {
        match (note.state.is_unread(), note.read_at) {
            (false, Some(read)) => read.plus_days(i64::from(self.read_days)),
            _ => note.updated_at.plus_days(i64::from(self.unread_days)),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Notification {
    /// A new notification for `recipient`, opened by `event` (unseen, revision 1).
    pub fn opened(event: &DomainEvent, recipient: UserId, label: String, summary: String) -> Self {
        Self {
            id: event.id,
            recipient,
            event_type: event.event_type,
            episode_id: event.episode_id,
            actor: event.actor.clone(),
            label,
            link: None,
            changes: vec![Change {
                event_id: event.id,
                at: event.occurred_at,
                summary,
            }],
            created_at: event.occurred_at,
            updated_at: event.occurred_at,
            state: NoteState::Unseen,
            seen_at: None,
            read_at: None,
            archived_at: None,
            revision: 1,
        }
    }

    /// The batch it belongs to.
    pub fn group(&self) -> GroupKey {
        GroupKey {
            episode_id: self.episode_id,
            event_type: self.event_type,
            actor: self.actor.id.clone(),
        }
    }

    /// The line for the whole notification: the change's own when there is one, else one
    /// that counts them ("Alice moved S2E4 “Pilot” 4 times").
    pub fn summary(&self) -> String {
        let n = self.changes.len();
        if let [only] = self.changes.as_slice() {
            return only.summary.clone();
        }
        let (who, label) = (self.actor.name.as_str(), self.label.as_str());
        match self.event_type {
            EventType::EpisodeUpdated => format!("{who} moved {label} {n} times"),
            EventType::JobFailed => format!("{n} jobs on {label} failed"),
            _ => format!("{who} made {n} changes to {label}"),
        }
    }

    /// Applies a recipient's move at `now`: the state, its timestamp and the revision.
    /// `false` when the move changes nothing.
    pub fn apply(&mut self, transition: Transition, now: Timestamp) -> bool {
        let Some(next) = transition.apply(self.state) else {
            return false;
        };
        match next {
            NoteState::Unseen => {}
            NoteState::Seen => self.seen_at = Some(now),
            NoteState::Read => {
                self.seen_at.get_or_insert(now);
                self.read_at.get_or_insert(now);
                if self.state == NoteState::Archived {
                    self.archived_at = None;
                }
            }
            NoteState::Archived => {
                self.seen_at.get_or_insert(now);
                self.read_at.get_or_insert(now);
                self.archived_at = Some(now);
            }
        }
        self.state = next;
        self.revision += 1;
        true
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
            summary: self.summary(),
            link: self.link.clone(),
            count: self.changes.len(),
            changes: self.changes.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            state: self.state,
            seen: !self.state.is_unseen(),
            read: !self.state.is_unread(),
            archived: self.state == NoteState::Archived,
            seen_at: self.seen_at,
            read_at: self.read_at,
            archived_at: self.archived_at,
            revision: self.revision,
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

    fn golden(text: &str) -> DomainEvent {
        serde_json::from_str(text).unwrap()
    }

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn the_rules_table() {
        let created = golden(include_str!(
            "../../../../events/domain/episode.created.json"
        ));
        let updated = golden(include_str!(
            "../../../../events/domain/episode.updated.json"
        ));
        let deleted = golden(include_str!(
            "../../../../events/domain/episode.deleted.json"
        ));
        assert_eq!(audience(&created), Audience::Nobody);
        assert_eq!(audience(&updated), Audience::Watchers, "a status change");
        assert_eq!(audience(&deleted), Audience::Watchers);
        let mut retitled = updated.clone();
        retitled.data = json!({"changes": {"title": "x"}, "version": 3});
        assert_eq!(audience(&retitled), Audience::Nobody);
    }

    #[test]
    fn nobody_hears_of_their_own_action_and_muted_types_are_skipped() {
        let event = golden(include_str!(
            "../../../../events/domain/episode.deleted.json"
        ));
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
