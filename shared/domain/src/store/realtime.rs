//! The live side's ports: WebSocket connections, their subscriptions and the presence they
//! make, an episode's recent events (for resuming), and posts to connections (`@connections`).

use std::future::Future;

use super::{MessageSender, StoreError};
use crate::actor::{Actor, UserId};
use crate::event::DomainEvent;
use crate::ids::{EpisodeId, EventId};
use crate::realtime::{
    Announced, ConnectionId, Editing, Listener, MAX_SUBSCRIPTIONS, Notice, Presence, UserRef,
    token_expired,
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
    /// What the episode's last presence round announced (the subscriber is in the next).
    pub announced: Announced,
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

    /// Records what the user is editing on the episode (`None`: nothing), said on
    /// `connection`: false when that connection is not subscribed to the episode.
    fn set_editing(
        &self,
        episode: EpisodeId,
        user: &UserId,
        connection: &ConnectionId,
        editing: Option<&Editing>,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The connections subscribed to an episode.
    fn subscribers(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<Vec<Listener>, StoreError>> + Send;
}

/// A presence round that has begun: its number, and what the one before announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundStarted {
    pub round: u64,
    pub before: Announced,
}

/// Presence rounds: an episode's joins and leaves are gathered for a window and told to its
/// connections in one frame each. A change asks for a round unless one is due already; a
/// round, once begun, lets the next change ask for the next one.
pub trait PresenceRounds {
    /// Notes that the episode's presence changed. True when no round was due, so the caller
    /// must schedule one; the request counts as due until `due_until`, after which a change
    /// asks again (a round whose message was lost is not waited for forever).
    fn presence_changed(
        &self,
        episode: EpisodeId,
        now: Timestamp,
        due_until: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Withdraws the request made with `due_until` (its message could not be sent), unless
    /// another has replaced it: the next change asks again at once.
    fn withdraw_request(
        &self,
        episode: EpisodeId,
        due_until: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Begins a round: the next change asks for another. Numbers grow by one each time.
    fn start_round(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<RoundStarted, StoreError>> + Send;

    /// Records what round `round` announced; false (and nothing recorded) when a later round
    /// has begun meanwhile, which will announce instead.
    fn finish_round(
        &self,
        episode: EpisodeId,
        round: u64,
        announced: &Announced,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// How long past its window a round asked for counts as due: a change after that asks again,
/// so a round whose message was lost delays the news by this much at most (given a change).
pub const ROUND_OVERDUE_SECONDS: i64 = 10;

/// Notes a change of the episode's presence and, unless a round is due already, schedules one
/// on `queue`, `window` seconds from now. True when this call scheduled it.
pub async fn ask_for_round<S: PresenceRounds + Sync, Q: MessageSender + Sync>(
    store: &S,
    queue: &Q,
    episode_id: EpisodeId,
    window: u32,
) -> Result<bool, StoreError> {
    let now = Timestamp::now();
    let due_until = now.plus_seconds(i64::from(window) + ROUND_OVERDUE_SECONDS);
    if !store.presence_changed(episode_id, now, due_until).await? {
        return Ok(false);
    }
    let notice = Notice::PresenceRound { episode_id };
    if let Err(e) = queue.send(notice.to_body(), window).await {
        // Not left marked as due: a retry, or the next change, asks again.
        let _ = store.withdraw_request(episode_id, due_until).await;
        return Err(e);
    }
    Ok(true)
}

/// Everyone's presence on an episode (viewing now, leaving, or seen lately).
pub trait PresenceReader {
    fn presence(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<Vec<Presence>, StoreError>> + Send;

    /// At most `limit` of them in user id order, after `after`; the last user id when there
    /// may be more.
    fn presence_page(
        &self,
        episode: EpisodeId,
        limit: usize,
        after: Option<UserId>,
    ) -> impl Future<Output = Result<(Vec<Presence>, Option<UserId>), StoreError>> + Send;
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
    /// Still throttled after the retries: worth posting again a little later.
    Throttled,
    /// Failed for another reason.
    Failed(String),
}

/// Totals of one fan-out, the connections found gone and those still throttled.
#[derive(Debug, Default)]
pub struct FanOut {
    pub sent: usize,
    pub failed: usize,
    pub gone: Vec<ConnectionId>,
    pub throttled: Vec<ConnectionId>,
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
