//! Watches, preferences and notifications, in memory, with the adapter's rules: one
//! notification per (event, recipient), the unread count moved exactly once per change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::poisoned;
use crate::actor::UserId;
use crate::ids::{EpisodeId, EventId};
use crate::notification::TRANSACTION_MAX_ITEMS;
use crate::notification::{Notification, Preferences};
use crate::store::StoreError;
use crate::store::notification::{
    Audiences, Inbox, MarkRead, NotificationPage, NotificationWriter, ReadAll,
};
use crate::time::Timestamp;

/// Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryNotifications(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    episodes: BTreeSet<EpisodeId>,
    watches: BTreeMap<EpisodeId, BTreeSet<UserId>>,
    preferences: HashMap<UserId, Preferences>,
    /// (recipient, notification id) → notification.
    notes: BTreeMap<(UserId, EventId), Notification>,
    unread: HashMap<UserId, u64>,
    /// Calls that wrote, for tests of "one write per batch".
    writes: usize,
    down: bool,
}

impl InMemoryNotifications {
    /// The episode is deleted.
    pub fn delete_episode(&self, id: EpisodeId) {
        if let Ok(mut s) = self.0.lock() {
            s.episodes.remove(&id);
        }
    }

    /// An episode that exists (watching needs one).
    pub fn add_episode(&self, id: EpisodeId) {
        if let Ok(mut s) = self.0.lock() {
            s.episodes.insert(id);
        }
    }

    /// A user's notifications, oldest first.
    pub fn of(&self, user: &UserId) -> Vec<Notification> {
        self.0
            .lock()
            .map(|s| {
                s.notes
                    .iter()
                    .filter(|((u, _), _)| u == user)
                    .map(|(_, n)| n.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Write calls made so far.
    pub fn writes(&self) -> usize {
        self.0.lock().map(|s| s.writes).unwrap_or(0)
    }

    /// Makes every following call fail (`true`) or work again (`false`).
    pub fn set_down(&self, down: bool) {
        if let Ok(mut s) = self.0.lock() {
            s.down = down;
        }
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        let s = self.0.lock().map_err(|_| poisoned())?;
        if s.down {
            return Err(StoreError::unavailable(std::io::Error::other(
                "notifications table unavailable",
            )));
        }
        Ok(s)
    }
}

impl State {
    fn insert(&mut self, note: &Notification) -> bool {
        let key = (note.recipient.clone(), note.id);
        if self.notes.contains_key(&key) {
            return false;
        }
        if note.read_at.is_none() {
            *self.unread.entry(note.recipient.clone()).or_default() += 1;
        }
        self.notes.insert(key, note.clone());
        true
    }
}

impl Audiences for InMemoryNotifications {
    async fn watchers(&self, episode: EpisodeId) -> Result<Vec<UserId>, StoreError> {
        let s = self.state()?;
        Ok(s.watches
            .get(&episode)
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn preferences_of(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Preferences>, StoreError> {
        let s = self.state()?;
        Ok(users
            .iter()
            .filter_map(|u| s.preferences.get(u).map(|p| (u.clone(), p.clone())))
            .collect())
    }
}

impl NotificationWriter for InMemoryNotifications {
    async fn deliver(&self, note: &Notification) -> Result<(), StoreError> {
        let mut s = self.state()?;
        s.writes += 1;
        s.insert(note);
        Ok(())
    }

    async fn deliver_all(&self, notes: &[Notification]) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        // One transaction: a notification and a counter per recipient, at most 100 items.
        let distinct: BTreeSet<(&UserId, EventId)> =
            notes.iter().map(|n| (&n.recipient, n.id)).collect();
        let users: BTreeSet<&UserId> = notes.iter().map(|n| &n.recipient).collect();
        if distinct.is_empty() {
            return Ok(true);
        }
        if distinct.len() + users.len() > TRANSACTION_MAX_ITEMS {
            return Ok(false);
        }
        s.writes += 1;
        if notes
            .iter()
            .any(|n| s.notes.contains_key(&(n.recipient.clone(), n.id)))
        {
            return Ok(false);
        }
        for n in notes {
            s.insert(n);
        }
        Ok(true)
    }
}

/// How many notifications one read-all call marks at most (the adapter's 20 pages of 50).
const READ_ALL_MAX: usize = 1000;

impl Inbox for InMemoryNotifications {
    async fn list(
        &self,
        user: &UserId,
        unread_only: bool,
        limit: u16,
        after: Option<String>,
    ) -> Result<NotificationPage, StoreError> {
        let s = self.state()?;
        let items: Vec<Notification> = s
            .notes
            .iter()
            .rev()
            .filter(|((u, _), n)| u == user && (!unread_only || n.read_at.is_none()))
            .filter(|((_, id), _)| after.as_ref().is_none_or(|a| id.to_string() < *a))
            .take(usize::from(limit))
            .map(|(_, n)| n.clone())
            .collect();
        // As DynamoDB: a full page says more may follow.
        let next = (items.len() == usize::from(limit))
            .then(|| items.last().map(|n| n.id.to_string()))
            .flatten();
        Ok(NotificationPage { items, next })
    }

    async fn unread_count(&self, user: &UserId) -> Result<u64, StoreError> {
        Ok(self.state()?.unread.get(user).copied().unwrap_or(0))
    }

    async fn mark_read(
        &self,
        user: &UserId,
        id: EventId,
        now: Timestamp,
    ) -> Result<MarkRead, StoreError> {
        let mut s = self.state()?;
        let Some(note) = s.notes.get_mut(&(user.clone(), id)) else {
            return Ok(MarkRead::NotFound);
        };
        if note.read_at.is_some() {
            return Ok(MarkRead::AlreadyRead);
        }
        note.read_at = Some(now);
        if let Some(n) = s.unread.get_mut(user) {
            *n = n.saturating_sub(1);
        }
        Ok(MarkRead::Marked)
    }

    async fn mark_all_read(&self, user: &UserId, now: Timestamp) -> Result<ReadAll, StoreError> {
        let mut s = self.state()?;
        let mut marked = 0;
        for ((_, _), note) in s
            .notes
            .iter_mut()
            .filter(|((u, _), n)| u == user && n.read_at.is_none())
            .take(READ_ALL_MAX)
        {
            note.read_at = Some(now);
            marked += 1;
        }
        if let Some(n) = s.unread.get_mut(user) {
            *n = n.saturating_sub(marked);
        }
        let more = s
            .notes
            .iter()
            .any(|((u, _), n)| u == user && n.read_at.is_none());
        Ok(ReadAll { marked, more })
    }

    async fn watch(
        &self,
        episode: EpisodeId,
        user: &UserId,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        if !s.episodes.contains(&episode) {
            return Ok(false);
        }
        s.watches.entry(episode).or_default().insert(user.clone());
        Ok(true)
    }

    async fn unwatch(&self, episode: EpisodeId, user: &UserId) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if let Some(w) = s.watches.get_mut(&episode) {
            w.remove(user);
        }
        Ok(())
    }

    async fn preferences(&self, user: &UserId) -> Result<Preferences, StoreError> {
        Ok(self
            .state()?
            .preferences
            .get(user)
            .cloned()
            .unwrap_or_default())
    }

    async fn set_preferences(&self, user: &UserId, prefs: &Preferences) -> Result<(), StoreError> {
        self.state()?
            .preferences
            .insert(user.clone(), prefs.clone());
        Ok(())
    }
}
