//! The activity log and the episode labels, in memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::poisoned;
use crate::activity::ActivityEntry;
use crate::ids::{EpisodeId, EventId};
use crate::store::StoreError;
use crate::store::activity::{
    ActivityPage, ActivityQuery, ActivityReader, ActivityWriter, EpisodeLabels,
};

/// Entries by (episode, event), as the table keys them. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryActivityLog(Arc<Mutex<Log>>);

#[derive(Debug, Default)]
struct Log {
    entries: BTreeMap<(Option<EpisodeId>, EventId), ActivityEntry>,
    writes: usize,
    /// Entries the store leaves unprocessed (as DynamoDB may under load).
    unprocessed: HashSet<EventId>,
}

impl InMemoryActivityLog {
    /// Every entry, oldest first.
    pub fn entries(&self) -> Vec<ActivityEntry> {
        let mut all: Vec<_> = self
            .0
            .lock()
            .map(|m| m.entries.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by_key(|e| e.event_id);
        all
    }

    /// Write calls made so far.
    pub fn writes(&self) -> usize {
        self.0.lock().map(|m| m.writes).unwrap_or(0)
    }

    /// The entry of this event is left unprocessed by every following write.
    pub fn leave_unprocessed(&self, event: EventId) {
        if let Ok(mut m) = self.0.lock() {
            m.unprocessed.insert(event);
        }
    }
}

impl ActivityWriter for InMemoryActivityLog {
    async fn put_batch(&self, entries: &[ActivityEntry]) -> Result<Vec<EventId>, StoreError> {
        let mut log = self.0.lock().map_err(|_| poisoned())?;
        log.writes += 1;
        let mut left = Vec::new();
        for e in entries {
            if log.unprocessed.contains(&e.event_id) {
                left.push(e.event_id);
            } else {
                log.entries.insert((e.episode_id, e.event_id), e.clone());
            }
        }
        Ok(left)
    }
}

impl ActivityReader for InMemoryActivityLog {
    /// Newest first. Unlike DynamoDB, filters apply before the limit (a page is never short).
    async fn query(&self, q: &ActivityQuery) -> Result<ActivityPage, StoreError> {
        let log = self.0.lock().map_err(|_| poisoned())?;
        let mut found: Vec<&ActivityEntry> = log
            .entries
            .values()
            .filter(|e| q.episode.is_none_or(|ep| e.episode_id == Some(ep)))
            .filter(|e| q.actor.as_ref().is_none_or(|a| e.actor.id == *a))
            .filter(|e| q.action.is_none_or(|a| e.action == a))
            .filter(|e| {
                q.resource_type
                    .as_deref()
                    .is_none_or(|t| e.resource.kind.as_str() == t)
            })
            .filter(|e| q.resource_id.as_ref().is_none_or(|id| e.resource.id == *id))
            .filter(|e| {
                let id = e.event_id.to_string();
                q.from_id.as_ref().is_none_or(|f| id >= *f)
                    && q.to_id.as_ref().is_none_or(|t| id <= *t)
            })
            .filter(|e| {
                q.after
                    .as_ref()
                    .is_none_or(|(_, event)| e.event_id.to_string() < *event)
            })
            .collect();
        found.sort_by_key(|e| std::cmp::Reverse(e.event_id));
        let limit = usize::from(q.limit);
        let full = found.len() > limit;
        found.truncate(limit);
        let next = full.then(|| found.last()).flatten().map(|e| {
            let partition = e
                .episode_id
                .map_or_else(|| "log".to_owned(), |ep| ep.to_string());
            (partition, e.event_id.to_string())
        });
        Ok(ActivityPage {
            items: found.into_iter().cloned().collect(),
            next,
        })
    }
}

/// Episode labels a test set. Clones share the state; while down, every lookup fails.
#[derive(Debug, Clone, Default)]
pub struct InMemoryEpisodeLabels(Arc<Mutex<(HashMap<EpisodeId, String>, bool)>>);

impl InMemoryEpisodeLabels {
    pub fn set(&self, id: EpisodeId, label: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.0.insert(id, label.to_owned());
        }
    }

    pub fn set_down(&self, down: bool) {
        if let Ok(mut l) = self.0.lock() {
            l.1 = down;
        }
    }
}

impl EpisodeLabels for InMemoryEpisodeLabels {
    async fn labels(&self, ids: &[EpisodeId]) -> Result<HashMap<EpisodeId, String>, StoreError> {
        let labels = self.0.lock().map_err(|_| poisoned())?;
        if labels.1 {
            return Err(StoreError::unavailable(std::io::Error::other(
                "episodes table unavailable",
            )));
        }
        Ok(ids
            .iter()
            .filter_map(|id| labels.0.get(id).map(|l| (*id, l.clone())))
            .collect())
    }
}
