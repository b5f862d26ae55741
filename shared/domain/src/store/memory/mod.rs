//! In-memory implementations of every port, with the same conditional semantics as the AWS
//! adapters (the contract suites in `shared/port-contracts` run against both), for handler
//! tests. They count calls, so tests can check what a request costs, and keep the events
//! written, so tests can check what others will hear.

mod activity;
mod analytics;
mod exports;
mod files;
mod jobs;
mod notifications;
mod objects;
mod queues;
mod realtime;
mod search;

pub use activity::{InMemoryActivityLog, InMemoryEpisodeLabels};
pub use analytics::InMemoryAnalytics;
pub use exports::InMemoryExports;
pub use files::InMemoryFileStore;
pub use jobs::InMemoryJobStore;
pub use notifications::InMemoryNotifications;
pub use objects::{InMemoryObjects, MemoryBody};
pub use queues::{InMemoryDeadLetters, InMemoryPublisher, InMemoryQueue};
pub use realtime::{InMemoryPoster, InMemoryRealtime};
pub use search::InMemorySearchIndex;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{
    EpisodeLister, EpisodeReader, EpisodeWriter, IDEMPOTENCY_HOURS, Idempotency, ListQuery, Page,
    StoreError,
};
use crate::actor::UserId;
use crate::episode::{Episode, EpisodeDeletion, EpisodeUpdate, Rejection};
use crate::event::DomainEvent;
use crate::ids::EpisodeId;
use crate::time::Timestamp;

/// An idempotency key is its user's: (user, key) → (episode, request fingerprint, until when).
type KeyUses = BTreeMap<(UserId, String), (EpisodeId, String, Timestamp)>;

#[derive(Debug, Default)]
pub struct InMemoryEpisodeStore {
    episodes: Mutex<BTreeMap<EpisodeId, Episode>>,
    events: Mutex<Vec<DomainEvent>>,
    keys: Mutex<KeyUses>,
    calls: AtomicUsize,
}

impl InMemoryEpisodeStore {
    /// Store calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Events written so far, oldest first.
    pub fn events(&self) -> Vec<DomainEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Stores the episode as it is given, without an event (for tests of the readers).
    pub fn put(&self, episode: Episode) {
        if let Ok(mut m) = self.episodes.lock() {
            m.insert(episode.id, episode);
        }
    }

    pub fn episode(&self, id: EpisodeId) -> Option<Episode> {
        self.episodes.lock().ok().and_then(|m| m.get(&id).cloned())
    }

    fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn write(
        &self,
        id: EpisodeId,
        event: &DomainEvent,
        decide: impl FnOnce(Option<&Episode>) -> Result<Episode, Rejection>,
    ) -> Result<(), StoreError> {
        self.call();
        let mut episodes = self.episodes.lock().map_err(|_| poisoned())?;
        let next = decide(episodes.get(&id))?;
        episodes.insert(id, next);
        self.events
            .lock()
            .map_err(|_| poisoned())?
            .push(event.clone());
        Ok(())
    }
}

pub(crate) fn poisoned() -> StoreError {
    StoreError::unavailable(std::io::Error::other("store lock poisoned"))
}

impl EpisodeReader for InMemoryEpisodeStore {
    async fn get(&self, id: EpisodeId) -> Result<Option<Episode>, StoreError> {
        self.call();
        Ok(self.episode(id))
    }
}

impl EpisodeLister for InMemoryEpisodeStore {
    async fn list(&self, query: &ListQuery) -> Result<Page<Episode>, StoreError> {
        self.call();
        let episodes = self.episodes.lock().map_err(|_| poisoned())?;
        let limit = usize::from(query.limit.get());
        let mut items: Vec<Episode> = episodes
            .values()
            .rev()
            .filter(|e| e.deleted.is_none())
            .filter(|e| query.status.is_none_or(|s| e.status == s))
            .filter(|e| query.after.is_none_or(|after| e.id < after))
            .take(limit + 1)
            .cloned()
            .collect();
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|e| e.id)
        } else {
            None
        };
        Ok(Page { items, next_after })
    }
}

impl EpisodeWriter for InMemoryEpisodeStore {
    async fn create(
        &self,
        episode: &Episode,
        event: &DomainEvent,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<(), StoreError> {
        let mut keys = self.keys.lock().map_err(|_| poisoned())?;
        let now = episode.created.at;
        let slot = idempotency.map(|i| (episode.created.by.clone(), i.key.to_owned()));
        if let (Some(slot), Some(idem)) = (&slot, idempotency)
            && let Some((previous, fingerprint, until)) = keys.get(slot)
            && *until >= now
        {
            self.call();
            return Err(StoreError::Rejected(Rejection::Replayed {
                episode: *previous,
                same_request: fingerprint == idem.fingerprint,
            }));
        }
        self.write(episode.id, event, |cur| match cur {
            Some(_) => Err(Rejection::Concurrent),
            None => Ok(episode.clone()),
        })?;
        if let (Some(slot), Some(idem)) = (slot, idempotency) {
            let until = now.plus_seconds(IDEMPOTENCY_HOURS * 3600);
            keys.insert(slot, (episode.id, idem.fingerprint.to_owned(), until));
        }
        Ok(())
    }

    async fn update(&self, update: &EpisodeUpdate, event: &DomainEvent) -> Result<(), StoreError> {
        self.write(update.id, event, |cur| match (update.explain(cur), cur) {
            // `explain` finds nothing wrong exactly when the write's condition holds.
            (Rejection::Concurrent, Some(cur)) => {
                let c = &update.changes;
                let mut next = cur.clone();
                if let Some(v) = &c.title {
                    next.title = v.clone();
                }
                if let Some(v) = &c.description {
                    next.description = v.clone();
                }
                if let Some(v) = &c.series {
                    next.series = v.clone();
                }
                if let Some(v) = c.season {
                    next.season = v;
                }
                if let Some(v) = c.number {
                    next.number = v;
                }
                if let Some(v) = c.air_date {
                    next.air_date = v;
                }
                if let Some(v) = c.status {
                    next.status = v;
                }
                next.updated = update.updated.clone();
                next.version = update.new_version();
                Ok(next)
            }
            (rejection, _) => Err(rejection),
        })
    }

    async fn delete(
        &self,
        deletion: &EpisodeDeletion,
        event: &DomainEvent,
    ) -> Result<(), StoreError> {
        self.write(deletion.id, event, |cur| {
            match (deletion.explain(cur), cur) {
                (Rejection::Concurrent, Some(cur)) => {
                    let mut next = cur.clone();
                    next.deleted = Some(deletion.deleted.clone());
                    next.version = cur.version.next();
                    Ok(next)
                }
                (rejection, _) => Err(rejection),
            }
        })
    }
}
