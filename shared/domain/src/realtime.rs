//! Live updates over WebSocket: what clients may say, what the server sends them, the presence
//! rules, and the messages of the realtime queue. No I/O here.
//!
//! Order: every frame about an episode's events carries the event's id, a UUIDv7 that grows
//! with each change of the episode (writes to one episode are serialised by its version, and
//! each id is made after the write it follows was seen). A client keeps the last id it has
//! seen per episode, drops frames at or below it, and after a reconnect (or whenever it
//! doubts) sends `resume {episode_id, after}` to be sent what it missed, in order.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::actor::{DisplayName, UserId};
use crate::event::DomainEvent;
use crate::ids::{EpisodeId, EventId};
use crate::time::Timestamp;

/// How often clients are asked to `ping`.
pub const HEARTBEAT_SECONDS: i64 = 30;
/// A viewer not seen (no ping, no subscribe) for this long is no longer listed.
pub const STALE_AFTER_SECONDS: i64 = 4 * HEARTBEAT_SECONDS;
/// API Gateway closes every WebSocket connection after 2 hours; its items live a little longer.
pub const CONNECTION_TTL_SECONDS: i64 = 2 * 3600 + 600;
/// Episodes one connection may follow at once (bounds the work of a ping or a disconnect).
pub const MAX_SUBSCRIPTIONS: usize = 20;
/// How long a user's last-seen time on an episode is kept after they were last there, unless
/// the template says otherwise (`PresenceRetentionDays`, applied by a TTL on the items).
pub const DEFAULT_PRESENCE_RETENTION_DAYS: u32 = 30;
/// API Gateway's WebSocket frame limit: larger messages are sent as a reference.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;
/// Most events one `resume` answer carries; `more` tells the client to ask again.
pub const RESUME_MAX_EVENTS: usize = 100;
/// Joins and leaves of one episode within this many seconds reach each of its connections as
/// one frame (the template's `PresenceWindowSeconds` sets it).
pub const PRESENCE_WINDOW_SECONDS: u32 = 1;
/// Above this many viewers, presence frames carry the count only and the list is read on
/// demand (the template's `PresenceListMax` sets it). Pusher caps presence channels at 100.
pub const PRESENCE_LIST_MAX: usize = 100;

/// An API Gateway WebSocket connection id (`L0SM9cOFvHcCIhw=` on AWS).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a connection id")]
pub struct InvalidConnectionId(String);

impl ConnectionId {
    pub fn parse(s: &str) -> Result<Self, InvalidConnectionId> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'-' | b'_'));
        ok.then(|| Self(s.to_owned()))
            .ok_or_else(|| InvalidConnectionId(s.chars().take(32).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ConnectionId {
    type Error = InvalidConnectionId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ConnectionId> for String {
    fn from(id: ConnectionId) -> String {
        id.0
    }
}

// ------------------------------------------------------------------ client → server

/// A message a client sends; API Gateway routes on its `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Subscribe {
        episode_id: EpisodeId,
    },
    Unsubscribe {
        episode_id: EpisodeId,
    },
    Ping,
    Resume {
        episode_id: EpisodeId,
        after: EventId,
    },
    /// The person is editing this field of the episode (sent again within
    /// [`EDITING_SECONDS`] while they still are).
    Editing {
        episode_id: EpisodeId,
        field: EditedField,
    },
    /// The person stopped editing the episode.
    Idle {
        episode_id: EpisodeId,
    },
}

/// How long an `editing` holds without being sent again: then the others see it gone.
pub const EDITING_SECONDS: i64 = 30;

/// The fields of an episode a person may be editing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EditedField {
    Title,
    Description,
    Series,
    Season,
    Number,
    AirDate,
    Status,
}

impl EditedField {
    pub const ALL: [Self; 7] = [
        Self::Title,
        Self::Description,
        Self::Series,
        Self::Season,
        Self::Number,
        Self::AirDate,
        Self::Status,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Description => "description",
            Self::Series => "series",
            Self::Season => "season",
            Self::Number => "number",
            Self::AirDate => "air_date",
            Self::Status => "status",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// What a person is editing, as stored with their presence: the field, the connection that
/// said so (it holds only while that connection is subscribed), and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editing {
    pub field: EditedField,
    pub connection: ConnectionId,
    pub until: Timestamp,
}

/// Why a client message was not understood. Each is answered with an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message is not valid JSON: {0}")]
    NotJson(String),
    #[error("the message must be a JSON object with an `action`")]
    NoAction,
    #[error("unknown action `{0}`; expected subscribe, unsubscribe, ping, resume, editing or idle")]
    UnknownAction(String),
    #[error("{action}: {detail}")]
    Invalid { action: String, detail: String },
}

impl ClientMessage {
    pub fn parse(body: &str) -> Result<Self, MessageError> {
        let value: Value =
            serde_json::from_str(body).map_err(|e| MessageError::NotJson(e.to_string()))?;
        let fields = value.as_object().ok_or(MessageError::NoAction)?;
        let action = fields
            .get("action")
            .and_then(Value::as_str)
            .ok_or(MessageError::NoAction)?;
        let allowed: &[&str] = match action {
            "subscribe" | "unsubscribe" | "idle" => &["action", "episode_id"],
            "editing" => &["action", "episode_id", "field"],
            "ping" => &["action"],
            "resume" => &["action", "episode_id", "after"],
            _ => {
                return Err(MessageError::UnknownAction(
                    action.chars().take(64).collect(),
                ));
            }
        };
        let invalid = |detail: String| MessageError::Invalid {
            action: action.to_owned(),
            detail,
        };
        if let Some(extra) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown field `{}`; expected {}",
                extra.chars().take(64).collect::<String>(),
                allowed.join(", ")
            )));
        }
        let id = |name: &str| -> Result<&str, MessageError> {
            fields
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("`{name}` is required (a string)")))
        };
        let episode_id = || {
            EpisodeId::parse(id("episode_id")?)
                .map_err(|_| invalid("`episode_id` must be an episode id (a UUIDv7)".into()))
        };
        Ok(match action {
            "subscribe" => Self::Subscribe {
                episode_id: episode_id()?,
            },
            "unsubscribe" => Self::Unsubscribe {
                episode_id: episode_id()?,
            },
            "resume" => Self::Resume {
                episode_id: episode_id()?,
                after: EventId::parse(id("after")?)
                    .map_err(|_| invalid("`after` must be an event id (a UUIDv7)".into()))?,
            },
            "editing" => Self::Editing {
                episode_id: episode_id()?,
                field: EditedField::parse(id("field")?).ok_or_else(|| {
                    invalid(
                        "`field` must be title, description, series, season, number, air_date or status"
                            .into(),
                    )
                })?,
            },
            "idle" => Self::Idle {
                episode_id: episode_id()?,
            },
            _ => Self::Ping,
        })
    }
}

// ------------------------------------------------------------------ server → client

/// Someone looking at an episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Viewer {
    pub id: UserId,
    pub name: DisplayName,
    pub since: Timestamp,
    pub last_seen: Timestamp,
    /// The field they are editing now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub editing: Option<EditedField>,
}

/// A user as presence frames name them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserRef {
    pub id: UserId,
    pub name: DisplayName,
}

/// Every frame the server sends, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type")]
pub enum Frame {
    #[serde(rename = "pong")]
    Pong { at: Timestamp },
    /// The answer to `subscribe`: who was there at the last presence round, and the
    /// subscriber. `viewers` is empty when `count` is above the list limit.
    #[serde(rename = "subscribed")]
    Subscribed {
        episode_id: EpisodeId,
        viewers: Vec<Viewer>,
        count: usize,
        /// The presence round these viewers are from: later `presence*` frames supersede it.
        round: u64,
        heartbeat_seconds: i64,
    },
    #[serde(rename = "unsubscribed")]
    Unsubscribed { episode_id: EpisodeId },
    /// The answer to `editing` (the field, held until `until`: send it again before then while
    /// still editing) and to `idle` (no field). The others hear it in the next presence frame.
    #[serde(rename = "editing")]
    Editing {
        episode_id: EpisodeId,
        field: Option<EditedField>,
        until: Option<Timestamp>,
    },
    #[serde(rename = "resumed")]
    Resumed {
        episode_id: EpisodeId,
        after: EventId,
        events: Vec<DomainEvent>,
        more: bool,
    },
    #[serde(rename = "event")]
    Event {
        episode_id: EpisodeId,
        event: DomainEvent,
    },
    /// An event too large for one frame: fetch it with `resume` (after the id before it) or
    /// from the episode's activity.
    #[serde(rename = "event.ref")]
    EventRef {
        episode_id: EpisodeId,
        event_id: EventId,
        event_type: crate::event::EventType,
        href: String,
    },
    #[serde(rename = "notification")]
    Notification {
        #[schemars(with = "crate::notification::NotificationBody")]
        notification: Value,
    },
    /// Who is looking at the episode after one window of joins and leaves: the whole list,
    /// and who joined and left since the last round. At most one presence frame per
    /// connection per window; `round` grows with each, so a client drops a frame whose round
    /// is at or below the last it applied.
    #[serde(rename = "presence")]
    Presence {
        episode_id: EpisodeId,
        round: u64,
        count: usize,
        viewers: Vec<Viewer>,
        joined: Vec<UserRef>,
        left: Vec<UserRef>,
        at: Timestamp,
    },
    /// Too many viewers to list in every frame: how many there are; `href` pages through them.
    #[serde(rename = "presence.occupancy")]
    PresenceOccupancy {
        episode_id: EpisodeId,
        round: u64,
        count: usize,
        href: String,
        at: Timestamp,
    },
    #[serde(rename = "error")]
    Error {
        status: u16,
        title: String,
        detail: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<String>,
    },
}

impl Frame {
    pub fn error(status: u16, detail: impl Into<String>, action: Option<&str>) -> Self {
        let title = match status {
            400 => "Bad message",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not found",
            409 => "Conflict",
            422 => "Unprocessable message",
            _ => "Internal error",
        };
        Self::Error {
            status,
            title: title.to_owned(),
            detail: detail.into(),
            action: action.map(str::to_owned),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from(r#"{"type":"error"}"#))
    }

    /// An event of an episode as a frame, or as a reference when it would not fit in one;
    /// `None` for an event of no episode (nobody is subscribed to it).
    pub fn for_event(event: &DomainEvent) -> Option<String> {
        let episode_id = event.episode_id?;
        let whole = Self::Event {
            episode_id,
            event: event.clone(),
        }
        .to_json();
        if whole.len() <= MAX_FRAME_BYTES {
            return Some(whole);
        }
        Some(
            Self::EventRef {
                episode_id,
                event_id: event.id,
                event_type: event.event_type,
                href: format!("/episodes/{episode_id}/activity"),
            }
            .to_json(),
        )
    }
}

// ------------------------------------------------------------------ presence

/// One user's presence on one episode, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub user: UserRef,
    /// Open connections of the user subscribed to the episode.
    pub connections: usize,
    pub since: Option<Timestamp>,
    pub last_seen: Timestamp,
    /// Set when the last connection went: the user is still listed until the grace period
    /// ends, and a reconnect within it is not announced.
    pub left_at: Option<Timestamp>,
    /// What they said they are editing, if that connection is still subscribed.
    pub editing: Option<Editing>,
}

impl Presence {
    /// Listed as a viewer: connected (or within the grace period) and seen recently.
    pub fn is_viewing(&self, now: Timestamp) -> bool {
        (self.connections > 0 || self.left_at.is_some())
            && self.last_seen.plus_seconds(STALE_AFTER_SECONDS) >= now
    }

    /// As listed at `now`: what they are editing, while it has not lapsed.
    pub fn viewer(&self, now: Timestamp) -> Viewer {
        Viewer {
            id: self.user.id.clone(),
            name: self.user.name.clone(),
            since: self.since.unwrap_or(self.last_seen),
            last_seen: self.last_seen,
            editing: self
                .editing
                .as_ref()
                .filter(|e| e.until >= now && self.connections > 0)
                .map(|e| e.field),
        }
    }
}

/// Whether a subscribe is news to the others: the user was not already viewing (first tab, or
/// back after leaving, or after going stale), as the presence item was before the subscribe.
pub fn announces_join(before: Option<&Presence>, now: Timestamp) -> bool {
    before.is_none_or(|p| !p.is_viewing(now))
}

/// What the last presence round of an episode told its connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announced {
    /// The round that announced it (0: none yet).
    pub round: u64,
    pub count: usize,
    /// The viewers, when there were few enough to list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<Vec<Viewer>>,
}

impl Announced {
    /// The `subscribed` answer: this announcement, with the subscriber in it (`me`) when it
    /// does not list them yet (`joining`: they were not viewing before; the next round tells
    /// the others).
    pub fn subscribed(&self, episode_id: EpisodeId, me: Viewer, joining: bool) -> Frame {
        let listed = match (&self.viewers, self.round) {
            (Some(list), _) => Some(list.clone()),
            (None, 0) => Some(Vec::new()),
            (None, _) => None,
        };
        let (viewers, count) = match listed {
            Some(list) if list.iter().any(|v| v.id == me.id) => (list, self.count),
            Some(mut list) => {
                list.push(me);
                let count = list.len();
                (list, count)
            }
            None => (Vec::new(), self.count + usize::from(joining)),
        };
        let frame = Frame::Subscribed {
            episode_id,
            viewers,
            count,
            round: self.round,
            heartbeat_seconds: HEARTBEAT_SECONDS,
        };
        if frame.to_json().len() <= MAX_FRAME_BYTES {
            return frame;
        }
        // Long ids and names: the count alone fits.
        Frame::Subscribed {
            episode_id,
            viewers: Vec::new(),
            count,
            round: self.round,
            heartbeat_seconds: HEARTBEAT_SECONDS,
        }
    }
}

/// What a presence round tells every connection: the frame, and its JSON (serialized once,
/// to measure it against the frame limit and to post it).
#[derive(Debug, Clone, PartialEq)]
pub struct News {
    pub frame: Frame,
    pub json: String,
}

impl News {
    fn of(frame: Frame) -> Self {
        Self {
            json: frame.to_json(),
            frame,
        }
    }
}

/// One presence round: from what was last announced and who is viewing now, the frame for the
/// episode's connections and what it announces. None when there is no news (the same people,
/// or the same count above the list limit).
pub fn presence_round(
    before: &Announced,
    now: Vec<Viewer>,
    list_max: usize,
    episode_id: EpisodeId,
    round: u64,
    at: Timestamp,
) -> Option<(News, Announced)> {
    let count = now.len();
    if count <= list_max {
        match presence_list(before, now, episode_id, round, at)
            .map(|(frame, announced)| (News::of(frame), announced))
        {
            // A list that does not fit one frame (long ids and names) is told as a count.
            Some((news, _)) if news.json.len() > MAX_FRAME_BYTES => {}
            listed => return listed,
        }
    }
    occupancy(before, count, episode_id, round, at)
        .map(|(frame, announced)| (News::of(frame), announced))
}

fn occupancy(
    before: &Announced,
    count: usize,
    episode_id: EpisodeId,
    round: u64,
    at: Timestamp,
) -> Option<(Frame, Announced)> {
    if before.viewers.is_none() && before.count == count {
        return None;
    }
    let frame = Frame::PresenceOccupancy {
        episode_id,
        round,
        count,
        href: format!("/episodes/{episode_id}/presence"),
        at,
    };
    let announced = Announced {
        round,
        count,
        viewers: None,
    };
    Some((frame, announced))
}

fn presence_list(
    before: &Announced,
    now: Vec<Viewer>,
    episode_id: EpisodeId,
    round: u64,
    at: Timestamp,
) -> Option<(Frame, Announced)> {
    let count = now.len();
    let user = |v: &Viewer| UserRef {
        id: v.id.clone(),
        name: v.name.clone(),
    };
    // Before the first round nobody was announced; after a count, only the list says it.
    let was: Option<&[Viewer]> = match (&before.viewers, before.round) {
        (Some(was), _) => Some(was),
        (None, 0) => Some(&[]),
        (None, _) => None,
    };
    let (joined, left) = match was {
        Some(was) => (
            now.iter()
                .filter(|v| !was.iter().any(|w| w.id == v.id))
                .map(user)
                .collect::<Vec<_>>(),
            was.iter()
                .filter(|w| !now.iter().any(|v| v.id == w.id))
                .map(user)
                .collect::<Vec<_>>(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    // What someone is editing changed (began, moved to another field, stopped, lapsed).
    let editing_changed = was.is_some_and(|was| {
        now.iter().any(|v| {
            was.iter()
                .find(|w| w.id == v.id)
                .is_some_and(|w| w.editing != v.editing)
        })
    });
    if was.is_some() && joined.is_empty() && left.is_empty() && !editing_changed {
        return None;
    }
    let frame = Frame::Presence {
        episode_id,
        round,
        count,
        viewers: now.clone(),
        joined,
        left,
        at,
    };
    let announced = Announced {
        round,
        count,
        viewers: Some(now),
    };
    Some((frame, announced))
}

/// The viewers of an episode, longest-present first.
pub fn viewers(all: &[Presence], now: Timestamp) -> Vec<Viewer> {
    let mut list: Vec<Viewer> = all
        .iter()
        .filter(|p| p.is_viewing(now))
        .map(|p| p.viewer(now))
        .collect();
    list.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.id.cmp(&b.id)));
    list
}

// ------------------------------------------------------------------ the realtime queue

/// What the broadcaster is asked to do besides relaying domain events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Notice {
    /// Notifications just written, for their recipients' connections.
    Notifications { items: Vec<Addressed> },
    /// A user's first connection subscribed to an episode. Sent before presence rounds;
    /// one still queued counts as a change of the episode's presence.
    PresenceJoined {
        episode_id: EpisodeId,
        user: UserRef,
        at: Timestamp,
    },
    /// The episode's presence changed a window ago: tell its connections, once for all the
    /// changes since.
    PresenceRound { episode_id: EpisodeId },
    /// A user's last connection left at `left_at`: once the grace period is over, announce it
    /// unless they came back.
    PresenceCheck {
        episode_id: EpisodeId,
        user: UserRef,
        left_at: Timestamp,
    },
    /// The connection's token has expired and it has been forgotten: close the socket (the
    /// client reconnects with a fresh token and resumes).
    Close { connection_id: ConnectionId },
    /// A frame that these connections did not get (still throttled after the retries): post
    /// it again, to them only (and not to one whose token has expired meanwhile). `attempt`
    /// counts the reposts, at most [`REPOST_ATTEMPTS`].
    Repost {
        listeners: Vec<Listener>,
        frame: String,
        attempt: u32,
    },
}

/// How often a frame is posted again to connections that stayed throttled.
pub const REPOST_ATTEMPTS: u32 = 3;
/// Seconds before a repost (SQS `DelaySeconds`), times the attempt.
pub const REPOST_DELAY_SECONDS: u32 = 2;

/// A connection to post to, and when the token it was opened with expires (None for one
/// recorded before expiries were kept: it lives until its TTL or a 410).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub connection: ConnectionId,
    pub token_expires_at: Option<Timestamp>,
}

impl Listener {
    /// A connection does not outlive its token.
    pub fn expired(&self, now: Timestamp) -> bool {
        token_expired(self.token_expires_at, now)
    }
}

/// Whether a token that expires at `expires_at` is no longer good at `now` (`exp` is the first
/// second it is not, as JWT's rule and the verifier have it).
pub fn token_expired(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

/// Splits listeners into those to post to and those whose token expired.
pub fn split_expired(
    listeners: Vec<Listener>,
    now: Timestamp,
) -> (Vec<ConnectionId>, Vec<ConnectionId>) {
    let (expired, live): (Vec<_>, Vec<_>) = listeners.into_iter().partition(|l| l.expired(now));
    (
        live.into_iter().map(|l| l.connection).collect(),
        expired.into_iter().map(|l| l.connection).collect(),
    )
}

/// A notification and who it is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Addressed {
    pub recipient: UserId,
    pub notification: Value,
}

/// One message of the realtime queue: a domain event from the relay, or a notice.
#[derive(Debug, Clone, PartialEq)]
pub enum RealtimeMessage {
    Event(DomainEvent),
    Notice(Notice),
}

impl RealtimeMessage {
    pub fn parse(body: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("kind").is_some() {
            serde_json::from_value(value)
                .map(Self::Notice)
                .map_err(|e| format!("not a known notice: {e}"))
        } else {
            DomainEvent::from_message(body).map(Self::Event)
        }
    }
}

impl Notice {
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| json!({"kind": "invalid"}).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> EpisodeId {
        EpisodeId::parse("01a213ea-bcea-7231-95fb-08c52221b2de").unwrap()
    }

    #[test]
    fn client_messages_parse_strictly_with_clear_errors() {
        let id = ep();
        assert_eq!(
            ClientMessage::parse(&format!(r#"{{"action":"subscribe","episode_id":"{id}"}}"#)),
            Ok(ClientMessage::Subscribe { episode_id: id })
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
        let after = EventId::new();
        assert_eq!(
            ClientMessage::parse(&format!(
                r#"{{"action":"resume","episode_id":"{id}","after":"{after}"}}"#
            )),
            Ok(ClientMessage::Resume {
                episode_id: id,
                after
            })
        );
        assert!(matches!(
            ClientMessage::parse("{not json"),
            Err(MessageError::NotJson(_))
        ));
        assert_eq!(ClientMessage::parse("[1]"), Err(MessageError::NoAction));
        assert_eq!(
            ClientMessage::parse(r#"{"action":7}"#),
            Err(MessageError::NoAction)
        );
        assert_eq!(
            ClientMessage::parse(r#"{"action":"dance"}"#),
            Err(MessageError::UnknownAction("dance".into()))
        );
        let err =
            ClientMessage::parse(r#"{"action":"subscribe","episode_id":"../x"}"#).unwrap_err();
        assert!(err.to_string().contains("episode_id"), "{err}");
        for bad in [
            r#"{"action":"subscribe"}"#,
            r#"{"action":"subscribe","episode_id":"nope"}"#,
            r#"{"action":"ping","extra":1}"#,
            r#"{"action":"resume","episode_id":"01a213ea-bcea-7231-95fb-08c52221b2de"}"#,
        ] {
            let err = ClientMessage::parse(bad).unwrap_err();
            assert!(matches!(err, MessageError::Invalid { .. }), "{bad}: {err}");
        }
    }

    fn presence(connections: usize, last_seen: Timestamp, left: bool) -> Presence {
        Presence {
            user: UserRef {
                id: UserId::parse("bob").unwrap(),
                name: DisplayName::new("Bob"),
            },
            connections,
            since: Some(last_seen),
            last_seen,
            left_at: left.then_some(last_seen),
            editing: None,
        }
    }

    #[test]
    fn joins_are_announced_once_and_not_after_a_refresh() {
        let now = Timestamp::now();
        assert!(announces_join(None, now), "first tab");
        assert!(
            !announces_join(Some(&presence(2, now, false)), now),
            "third tab"
        );
        assert!(
            !announces_join(Some(&presence(0, now, true)), now),
            "a refresh within the grace period"
        );
        assert!(
            announces_join(Some(&presence(0, now, false)), now),
            "back after leaving"
        );
        let long_ago = now.plus_seconds(-STALE_AFTER_SECONDS - 1);
        assert!(
            announces_join(Some(&presence(1, long_ago, false)), now),
            "back after going stale"
        );
    }

    #[test]
    fn stale_and_departed_viewers_are_not_listed() {
        let now = Timestamp::now();
        let mut fresh = presence(1, now, false);
        fresh.user.id = UserId::parse("ann").unwrap();
        let stale = presence(1, now.plus_seconds(-STALE_AFTER_SECONDS - 1), false);
        let gone = presence(0, now, false);
        let list = viewers(&[stale, gone, fresh], now);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id.as_str(), "ann");
    }

    #[test]
    fn what_someone_edits_is_news_and_holding_it_is_not() {
        let ep = EpisodeId::new();
        let now = Timestamp::now();
        let mut ann = viewer("ann");
        let before = Announced {
            round: 1,
            count: 1,
            viewers: Some(vec![ann.clone()]),
        };
        assert!(presence_round(&before, vec![ann.clone()], 10, ep, 2, now).is_none());
        ann.editing = Some(EditedField::Title);
        let (news, announced) =
            presence_round(&before, vec![ann.clone()], 10, ep, 2, now).expect("news");
        let frame: Value = serde_json::from_str(&news.json).unwrap();
        assert_eq!(frame["viewers"][0]["editing"], "title");
        assert_eq!(frame["joined"], json!([]), "nobody joined");
        assert!(
            presence_round(&announced, vec![ann.clone()], 10, ep, 3, now).is_none(),
            "still editing the title: no news"
        );
        ann.editing = None;
        assert!(presence_round(&announced, vec![ann], 10, ep, 3, now).is_some());
    }

    #[test]
    fn an_edit_lapses_and_holds_only_while_connected() {
        let now = Timestamp::now();
        let mut p = presence(1, now, false);
        p.editing = Some(Editing {
            field: EditedField::Status,
            connection: ConnectionId::parse("AbCdEfGhIjKlMnO=").unwrap(),
            until: now.plus_seconds(EDITING_SECONDS),
        });
        assert_eq!(p.viewer(now).editing, Some(EditedField::Status));
        assert_eq!(
            p.viewer(now.plus_seconds(EDITING_SECONDS + 1)).editing,
            None
        );
        p.connections = 0;
        assert_eq!(
            p.viewer(now).editing,
            None,
            "in the grace period, editing nothing"
        );
    }

    fn viewer(id: &str) -> Viewer {
        let now = Timestamp::now();
        Viewer {
            id: UserId::parse(id).unwrap(),
            name: DisplayName::new(id),
            since: now,
            last_seen: now,
            editing: None,
        }
    }

    #[test]
    fn a_round_tells_the_diff_and_nothing_when_nothing_changed() {
        let at = Timestamp::now();
        let ids = |v: &Value, k: &str| -> Vec<String> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let (news, first) =
            presence_round(&Announced::default(), vec![viewer("ann")], 2, ep(), 1, at).unwrap();
        assert_eq!(news.json, news.frame.to_json());
        let json: Value = serde_json::from_str(&news.json).unwrap();
        assert_eq!(json["type"], "presence");
        assert_eq!(ids(&json, "joined"), ["ann"], "the first round: all news");
        assert!(presence_round(&first, vec![viewer("ann")], 2, ep(), 2, at).is_none());
        assert!(
            presence_round(&Announced::default(), Vec::new(), 2, ep(), 1, at).is_none(),
            "nobody, and nobody announced"
        );
        let (news, second) =
            presence_round(&first, vec![viewer("ben"), viewer("cat")], 2, ep(), 2, at).unwrap();
        let json: Value = serde_json::from_str(&news.json).unwrap();
        assert_eq!(ids(&json, "joined"), ["ben", "cat"]);
        assert_eq!(ids(&json, "left"), ["ann"]);
        assert_eq!(
            (json["count"].as_u64(), json["round"].as_u64()),
            (Some(2), Some(2))
        );
        // Above the limit: a count, then no news while it holds, then a list again.
        let three = vec![viewer("ann"), viewer("ben"), viewer("cat")];
        let (news, counted) = presence_round(&second, three.clone(), 2, ep(), 3, at).unwrap();
        let json: Value = serde_json::from_str(&news.json).unwrap();
        assert_eq!(json["type"], "presence.occupancy");
        assert_eq!(json["count"], 3);
        assert_eq!(counted.viewers, None);
        assert!(presence_round(&counted, three, 2, ep(), 4, at).is_none());
        let (news, _) = presence_round(&counted, vec![viewer("ann")], 2, ep(), 5, at).unwrap();
        let json: Value = serde_json::from_str(&news.json).unwrap();
        assert_eq!(json["type"], "presence");
        assert_eq!(
            json["joined"],
            json!([]),
            "after a count, the list says it all"
        );
        // A list too long for one frame is a count.
        let long: Vec<Viewer> = (0..60)
            .map(|i| viewer(&format!("{i}-{}", "x".repeat(120))))
            .collect();
        let (news, _) = presence_round(&first, long, 100, ep(), 6, at).unwrap();
        assert!(matches!(
            news.frame,
            Frame::PresenceOccupancy { count: 60, .. }
        ));
        // The subscriber's answer: the last list and them, or the count and them.
        let Frame::Subscribed { viewers, count, .. } = second.subscribed(ep(), viewer("dan"), true)
        else {
            panic!("not subscribed")
        };
        assert_eq!((viewers.len(), count), (3, 3));
        let Frame::Subscribed { viewers, count, .. } =
            counted.subscribed(ep(), viewer("dan"), true)
        else {
            panic!("not subscribed")
        };
        assert_eq!((viewers.len(), count), (0, 4));
    }

    #[test]
    fn large_events_become_references() {
        let text = include_str!("../../../events/domain/episode.updated.json");
        let mut event: DomainEvent = serde_json::from_str(text).unwrap();
        let small: Value = serde_json::from_str(&Frame::for_event(&event).unwrap()).unwrap();
        assert_eq!(small["type"], "event");
        assert_eq!(small["event"]["id"], event.id.to_string());
        event.data = json!({"changes": {"description": "x".repeat(MAX_FRAME_BYTES)}});
        let big: Value = serde_json::from_str(&Frame::for_event(&event).unwrap()).unwrap();
        assert_eq!(big["type"], "event.ref");
        assert_eq!(big["event_id"], event.id.to_string());
    }

    #[test]
    fn queue_messages_are_events_or_notices() {
        let text = include_str!("../../../events/domain/episode.deleted.json");
        assert!(matches!(
            RealtimeMessage::parse(text),
            Ok(RealtimeMessage::Event(_))
        ));
        let notice = Notice::PresenceCheck {
            episode_id: ep(),
            user: UserRef {
                id: UserId::parse("bob").unwrap(),
                name: DisplayName::new("Bob"),
            },
            left_at: Timestamp::now(),
        };
        assert_eq!(
            RealtimeMessage::parse(&notice.to_body()),
            Ok(RealtimeMessage::Notice(notice))
        );
        assert!(RealtimeMessage::parse(r#"{"kind":"party"}"#).is_err());
        assert!(RealtimeMessage::parse("nope").is_err());
    }
}
