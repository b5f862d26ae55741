//! The notifications aggregate's ports: watches, preferences, each user's notifications and
//! their bell counts (unread, unseen).

use std::collections::HashMap;
use std::future::Future;

use super::StoreError;
use crate::actor::UserId;
use crate::ids::{EpisodeId, EventId};
use crate::notification::{
    Delivery, GroupKey, Moved, NoteFilter, NoteState, Notification, Observed, Preferences,
    Transition,
};
use crate::time::Timestamp;

/// What one read-all call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAll {
    pub marked: u64,
    /// It stopped at its bound with unread notifications possibly left: call again.
    pub more: bool,
}

/// A page of a user's notifications, newest first.
#[derive(Debug, Clone)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    /// Where the next page starts, when more may follow.
    pub next: Option<String>,
}

/// The bell's two counts of a user: exact, moved in the same write as what they count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BellCounts {
    pub unread: u64,
    pub unseen: u64,
}

/// What the store holds for the batches and events of a worker's batch.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Per (recipient, batch): its open notification.
    pub groups: HashMap<(UserId, GroupKey), Observed>,
    /// The (recipient, event) pairs already counted, and the notification each is in.
    pub counted: HashMap<(UserId, EventId), EventId>,
}

/// A notification the store deleted (its TTL applied the retention), as the table's stream
/// tells it: who it was for and the state it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub recipient: UserId,
    pub id: EventId,
    pub state: NoteState,
}

/// Who hears of an episode's events, and how they want to.
pub trait Audiences {
    /// Everyone watching the episode (its creator, and whoever asked to).
    fn watchers(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<Vec<UserId>, StoreError>> + Send;

    /// The preferences of each of `users` who has set any.
    fn preferences_of(
        &self,
        users: &[UserId],
    ) -> impl Future<Output = Result<HashMap<UserId, Preferences>, StoreError>> + Send;
}

/// Notifications written by the worker, batch by batch (see `notification::batch`).
pub trait NotificationWriter {
    /// What the store holds now (strongly consistent) for these (recipient, batch) pairs —
    /// read only when `batching` is on — and which of these (recipient, event) pairs were
    /// counted.
    fn observe(
        &self,
        groups: &[(UserId, GroupKey)],
        events: &[(UserId, EventId)],
        batching: bool,
    ) -> impl Future<Output = Result<Observations, StoreError>> + Send;

    /// Writes each delivery whole or not at all, as few transactions as fit. Per delivery, in
    /// order: `true` when written, `false` when a condition no longer held (the store changed
    /// since it was observed: observe and plan again). Two deliveries may not name the same
    /// (recipient, batch).
    fn apply(
        &self,
        deliveries: &[Delivery],
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;

    /// Takes each removed notification off its recipient's counts (an unread one counted one
    /// unread, an unseen one one unseen too), once however often it is told: a stream record
    /// comes at least once.
    fn uncount(&self, removed: &[Removed]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The notifications named (recipient, id), those that exist (strongly consistent).
    fn notes(
        &self,
        keys: &[(UserId, EventId)],
    ) -> impl Future<Output = Result<Vec<Notification>, StoreError>> + Send;
}

/// At most this many notifications named in one [`Inbox::transition`].
pub const MAX_MOVED_AT_ONCE: usize = 100;

/// A user's own notifications, watches and preferences (the feed API).
pub trait Inbox {
    fn list(
        &self,
        user: &UserId,
        filter: NoteFilter,
        limit: u16,
        after: Option<String>,
    ) -> impl Future<Output = Result<NotificationPage, StoreError>> + Send;

    fn counts(&self, user: &UserId) -> impl Future<Output = Result<BellCounts, StoreError>> + Send;

    /// Applies a move to each of the user's notifications named (at most 100; another
    /// user's is not found), the counts moved in the same write: one outcome per id, in order.
    fn transition(
        &self,
        user: &UserId,
        ids: &[EventId],
        transition: Transition,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Moved>, StoreError>> + Send;

    /// Marks the user's unread notifications read, up to a bound per call.
    fn mark_all_read(
        &self,
        user: &UserId,
        now: Timestamp,
    ) -> impl Future<Output = Result<ReadAll, StoreError>> + Send;

    /// Adds the user to the episode's watchers; `false` when the episode does not exist.
    fn watch(
        &self,
        episode: EpisodeId,
        user: &UserId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn unwatch(
        &self,
        episode: EpisodeId,
        user: &UserId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn preferences(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Preferences, StoreError>> + Send;

    fn set_preferences(
        &self,
        user: &UserId,
        prefs: &Preferences,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
