//! The live side's ports: WebSocket connections, their subscriptions and the presence they
//! make, an episode's recent events (for resuming), and posts to connections (`@connections`).

use std::future::Future;

use super::StoreError;
use crate::actor::{Actor, UserId};
use crate::event::DomainEvent;
use crate::ids::{EpisodeId, EventId};
use crate::realtime::{
    ConnectionId, Listener, MAX_SUBSCRIPTIONS, Presence, UserRef, token_expired,
};
use crate::time::Timestamp;

/// Why a subscribe was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    #[error("episode not found")]
    NoEpisode,
    #[error("the connection is not known (closed or expired); reconnect")]
    NoConnection,
    #[error("a connection may follow at most {MAX_SUBSCRIPTIONS} episodes")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A subscribe that took effect.
#[derive(Debug)]
pub struct Subscribed {
    /// The user was not viewing before: tell the others.
    pub announce: bool,
    /// Everyone's presence on the episode, the subscriber's included.
    pub presence: Vec<Presence>,
}

/// An open connection: whose it is, and until when its token is good (None for a connection
/// recorded before expiries were kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenConnection {
    pub user: UserRef,
    pub token_expires_at: Option<Timestamp>,
}

impl OpenConnection {
    pub fn expired(&self, now: Timestamp) -> bool {
        token_expired(self.token_expires_at, now)
    }
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    Seen,
    /// Closed, or gone with its TTL.
    Unknown,
    /// Its token has expired: it must be closed.
    Expired,
}

/// A connection that was closed, and the episodes its user left by it.
#[derive(Debug)]
pub struct Closed {
    pub user: UserRef,
    /// Episodes where this was the user's last connection, with the time they left.
    pub left: Vec<(EpisodeId, Timestamp)>,
}

/// Connections, one per open WebSocket.
pub trait Connections {
    /// Records a new connection of `actor`, opened with a token good until `token_expires_at`.
    fn open(
        &self,
        connection: &ConnectionId,
        actor: &Actor,
        token_expires_at: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An open connection (None when closed, or gone with its TTL).
    fn connection(
        &self,
        connection: &ConnectionId,
    ) -> impl Future<Output = Result<Option<OpenConnection>, StoreError>> + Send;

    /// The connection and the user's presence on its episodes are seen now, unless the
    /// connection is not known or its token has expired.
    fn heartbeat(
        &self,
        connection: &ConnectionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Heartbeat, StoreError>> + Send;

    /// Forgets a connection: it, its subscriptions, its share of presence. None when it was
    /// already forgotten.
    fn close(
        &self,
        connection: &ConnectionId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Closed>, StoreError>> + Send;

    /// A user's open connections, with their tokens' expiry.
    fn connections_of(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<Listener>, StoreError>> + Send;
}

/// Following an episode: checked against the episodes, so apart from [`Subscriptions`].
pub trait Subscribe {
    /// Subscribes a connection to an episode (which must exist) and counts the user present.
    fn subscribe(
        &self,
        connection: &ConnectionId,
        open: &OpenConnection,
        episode: EpisodeId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Subscribed, SubscribeError>> + Send;
}

/// Who follows an episode, and who is looking at it.
pub trait Subscriptions {
    /// Unsubscribes a connection; `Some(left_at)` when it was the user's last one there.
    fn unsubscribe(
        &self,
        connection: &ConnectionId,
        user: &UserId,
        episode: EpisodeId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;

    /// Ends the grace period that began at `left_at`: true when the user did not come back.
    fn finish_leaving(
        &self,
        episode: EpisodeId,
        user: &UserId,
        left_at: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The connections subscribed to an episode.
    fn subscribers(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<Vec<Listener>, StoreError>> + Send;
}

/// Everyone's presence on an episode (viewing now, leaving, or seen lately).
pub trait PresenceReader {
    fn presence(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<Vec<Presence>, StoreError>> + Send;
}

/// An episode's events, for a client resuming after a gap.
pub trait EventHistory {
    /// The events after `after`, in order, at most `limit`; true when there are more.
    fn events_after(
        &self,
        episode: EpisodeId,
        after: EventId,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<DomainEvent>, bool), StoreError>> + Send;
}

/// What became of one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Sent,
    /// The connection is closed (410): forget it.
    Gone,
    /// Failed for another reason, or still throttled after the retries.
    Failed(String),
}

/// Totals of one fan-out, and the connections found gone.
#[derive(Debug, Default)]
pub struct FanOut {
    pub sent: usize,
    pub failed: usize,
    pub gone: Vec<ConnectionId>,
}

/// Frames to open connections.
pub trait ConnectionPosts {
    fn post(
        &self,
        connection: &ConnectionId,
        data: &[u8],
    ) -> impl Future<Output = PostOutcome> + Send;

    /// Closes the connection from the server's side.
    fn close(&self, connection: &ConnectionId) -> impl Future<Output = Result<(), String>> + Send;

    /// The same frame to many connections; one's failure never stops the others.
    fn fan_out(
        &self,
        connections: &[ConnectionId],
        data: &[u8],
    ) -> impl Future<Output = FanOut> + Send;
}
