//! The notifications aggregate's ports: watches, preferences, each user's notifications and
//! their unread count.

use std::collections::HashMap;
use std::future::Future;

use super::StoreError;
use crate::actor::UserId;
use crate::ids::{EpisodeId, EventId};
use crate::notification::{Notification, Preferences};
use crate::time::Timestamp;

/// What marking one notification read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkRead {
    Marked,
    AlreadyRead,
    NotFound,
}

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

/// Notifications written by the worker. Delivering the same (event, recipient) again changes
/// nothing, the unread count included.
pub trait NotificationWriter {
    fn deliver(&self, note: &Notification) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// All of them in one write (identical ones count once); `Ok(false)` when any of them was
    /// delivered before: nothing was written, deliver them one by one.
    fn deliver_all(
        &self,
        notes: &[Notification],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A user's own notifications, watches and preferences (the feed API).
pub trait Inbox {
    fn list(
        &self,
        user: &UserId,
        unread_only: bool,
        limit: u16,
        after: Option<String>,
    ) -> impl Future<Output = Result<NotificationPage, StoreError>> + Send;

    fn unread_count(&self, user: &UserId) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Marks one of the user's notifications read; another user's is not found.
    fn mark_read(
        &self,
        user: &UserId,
        id: EventId,
        now: Timestamp,
    ) -> impl Future<Output = Result<MarkRead, StoreError>> + Send;

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
