//! Watches, preferences and notifications, in memory, with the adapter's rules: each
//! (recipient, event) counted once, deliveries written whole or not at all under their
//! conditions, the bell's counts moved with what they count.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::poisoned;
use crate::actor::UserId;
use crate::ids::{EpisodeId, EventId};
use crate::notification::batch::packs;
use crate::notification::{
    Counts, Delivery, GroupKey, Moved, NoteFilter, Notification, Observed, Preferences, Transition,
};
use crate::store::StoreError;
use crate::store::notification::{
    Audiences, BellCounts, Inbox, NotificationPage, NotificationWriter, Observations, ReadAll,
    Removed,
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
    /// Each batch's open notification.
    pointers: HashMap<(UserId, GroupKey), EventId>,
    /// The (recipient, event) pairs counted → the notification each is in.
    receipts: HashMap<(UserId, EventId), EventId>,
    /// The removed notifications already taken off the counts.
    uncounted: HashSet<(UserId, EventId)>,
    counts: HashMap<UserId, Counts>,
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
    /// Whether every condition of the delivery holds.
    fn holds(&self, d: &Delivery) -> bool {
        let user = &d.recipient;
        d.receipts
            .iter()
            .all(|e| !self.receipts.contains_key(&(user.clone(), *e)))
            && d.writes.iter().all(|(n, expected)| {
                let stored = self.notes.get(&(user.clone(), n.id)).map(|n| n.revision);
                stored.unwrap_or(0) == *expected
            })
            && d.pointer.is_none_or(|(_, expected)| {
                self.pointers.get(&(user.clone(), d.group.clone())).copied() == expected
            })
    }

    fn write(&mut self, d: &Delivery) {
        let user = &d.recipient;
        for (n, _) in &d.writes {
            for c in &n.changes {
                if d.receipts.contains(&c.event_id) {
                    self.receipts.insert((user.clone(), c.event_id), n.id);
                }
            }
            self.notes.insert((user.clone(), n.id), n.clone());
        }
        if let Some((id, _)) = d.pointer {
            self.pointers.insert((user.clone(), d.group.clone()), id);
        }
        *self.counts.entry(user.clone()).or_default() += d.counts;
    }

    /// One of the user's notifications moved, its counts with it.
    fn transition(&mut self, user: &UserId, id: EventId, t: Transition, now: Timestamp) -> Moved {
        let Some(note) = self.notes.get_mut(&(user.clone(), id)) else {
            return Moved::NotFound;
        };
        let before = note.state;
        if !note.apply(t, now) {
            return Moved::Unchanged;
        }
        let moved = Counts::of_move(Some(before), Some(note.state));
        *self.counts.entry(user.clone()).or_default() += moved;
        Moved::Changed
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
    async fn observe(
        &self,
        groups: &[(UserId, GroupKey)],
        events: &[(UserId, EventId)],
        batching: bool,
    ) -> Result<Observations, StoreError> {
        let s = self.state()?;
        let mut found = Observations::default();
        if batching {
            for (user, group) in groups {
                let pointer = s.pointers.get(&(user.clone(), group.clone())).copied();
                let open = pointer.and_then(|id| s.notes.get(&(user.clone(), id)).cloned());
                found
                    .groups
                    .insert((user.clone(), group.clone()), Observed { pointer, open });
            }
        }
        found.counted = events
            .iter()
            .filter_map(|k| s.receipts.get(k).map(|note| (k.clone(), *note)))
            .collect();
        Ok(found)
    }

    async fn uncount(&self, removed: &[Removed]) -> Result<(), StoreError> {
        let mut s = self.state()?;
        for r in removed {
            let delta = Counts::of_move(Some(r.state), None);
            if !delta.is_zero() && s.uncounted.insert((r.recipient.clone(), r.id)) {
                *s.counts.entry(r.recipient.clone()).or_default() += delta;
            }
        }
        Ok(())
    }

    async fn notes(&self, keys: &[(UserId, EventId)]) -> Result<Vec<Notification>, StoreError> {
        let s = self.state()?;
        Ok(keys
            .iter()
            .filter_map(|k| s.notes.get(k).cloned())
            .collect())
    }

    /// As the adapter: each pack in one transaction, whole or not at all; a pack that fails is
    /// tried delivery by delivery.
    async fn apply(&self, deliveries: &[Delivery]) -> Result<Vec<bool>, StoreError> {
        let mut s = self.state()?;
        let mut done = vec![false; deliveries.len()];
        for pack in packs(deliveries) {
            s.writes += 1;
            if pack.iter().all(|i| s.holds(&deliveries[*i])) {
                for i in pack {
                    s.write(&deliveries[i]);
                    done[i] = true;
                }
                continue;
            }
            if pack.len() == 1 {
                continue;
            }
            for i in pack {
                s.writes += 1;
                if s.holds(&deliveries[i]) {
                    s.write(&deliveries[i]);
                    done[i] = true;
                }
            }
        }
        Ok(done)
    }
}

/// How many notifications one read-all call marks at most (the adapter's 20 pages of 50).
const READ_ALL_MAX: usize = 1000;

impl Inbox for InMemoryNotifications {
    async fn list(
        &self,
        user: &UserId,
        filter: NoteFilter,
        limit: u16,
        after: Option<String>,
    ) -> Result<NotificationPage, StoreError> {
        let s = self.state()?;
        let items: Vec<Notification> = s
            .notes
            .iter()
            .rev()
            .filter(|((u, _), n)| u == user && filter.admits(n.state))
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

    async fn counts(&self, user: &UserId) -> Result<BellCounts, StoreError> {
        let c = self.state()?.counts.get(user).copied().unwrap_or_default();
        Ok(BellCounts {
            unread: u64::try_from(c.unread).unwrap_or(0),
            unseen: u64::try_from(c.unseen).unwrap_or(0),
        })
    }

    async fn transition(
        &self,
        user: &UserId,
        ids: &[EventId],
        transition: Transition,
        now: Timestamp,
    ) -> Result<Vec<Moved>, StoreError> {
        let mut s = self.state()?;
        s.writes += 1;
        Ok(ids
            .iter()
            .map(|id| s.transition(user, *id, transition, now))
            .collect())
    }

    async fn mark_all_read(&self, user: &UserId, now: Timestamp) -> Result<ReadAll, StoreError> {
        let mut s = self.state()?;
        let unread: Vec<EventId> = s
            .notes
            .iter()
            .filter(|((u, _), n)| u == user && n.state.is_unread())
            .map(|((_, id), _)| *id)
            .collect();
        let mut marked = 0;
        for id in unread.iter().take(READ_ALL_MAX) {
            if s.transition(user, *id, Transition::Read, now) == Moved::Changed {
                marked += 1;
            }
        }
        Ok(ReadAll {
            marked,
            more: unread.len() > READ_ALL_MAX,
        })
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
