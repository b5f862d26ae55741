//! Files, as the DynamoDB files table behaves: conditional writes, pages by id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::poisoned;
use crate::event::DomainEvent;
use crate::file::{EpisodeFile, FileStatus, Sha256};
use crate::ids::{EpisodeId, FileId};
use crate::store::file::{FileMetadata, FilePage, FileReader, FileWriteError, FileWriter};
use crate::store::{EpisodeExistence, Page, PageSize, StoreError};

/// Files and the episodes they belong to (live or deleted). Clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryFileStore(Arc<State>);

#[derive(Debug, Default)]
struct State {
    /// Episode → deleted.
    episodes: Mutex<BTreeMap<EpisodeId, bool>>,
    files: Mutex<BTreeMap<FileId, EpisodeFile>>,
    events: Mutex<Vec<DomainEvent>>,
    calls: AtomicUsize,
}

impl InMemoryFileStore {
    /// An episode that exists.
    pub fn add_episode(&self, id: EpisodeId) {
        if let Ok(mut e) = self.0.episodes.lock() {
            e.insert(id, false);
        }
    }

    /// The episode is deleted (a tombstone).
    pub fn delete_episode(&self, id: EpisodeId) {
        if let Ok(mut e) = self.0.episodes.lock() {
            e.insert(id, true);
        }
    }

    /// A file as it is stored now, set up by a test.
    pub fn put_file(&self, file: EpisodeFile) {
        if let Ok(mut f) = self.0.files.lock() {
            f.insert(file.id, file);
        }
    }

    pub fn file(&self, id: FileId) -> Option<EpisodeFile> {
        self.0.files.lock().ok().and_then(|f| f.get(&id).cloned())
    }

    /// Events written so far, oldest first.
    pub fn events(&self) -> Vec<DomainEvent> {
        self.0.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Store calls made so far.
    pub fn calls(&self) -> usize {
        self.0.calls.load(Ordering::Relaxed)
    }

    pub(crate) fn live_episode(&self, id: EpisodeId) -> Result<bool, StoreError> {
        let episodes = self.0.episodes.lock().map_err(|_| poisoned())?;
        Ok(episodes.get(&id) == Some(&false))
    }

    fn call(&self) {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// One conditional write on one file (and its event, if any), like a transaction:
    /// `decide` sees the stored file and returns what to store (`None` removes it).
    fn write(
        &self,
        id: FileId,
        event: Option<&DomainEvent>,
        decide: impl FnOnce(Option<&EpisodeFile>) -> Result<Option<EpisodeFile>, FileWriteError>,
    ) -> Result<(), FileWriteError> {
        self.call();
        let mut files = self.0.files.lock().map_err(|_| poisoned())?;
        match decide(files.get(&id))? {
            Some(next) => files.insert(id, next),
            None => files.remove(&id),
        };
        if let Some(e) = event {
            self.0
                .events
                .lock()
                .map_err(|_| poisoned())?
                .push(e.clone());
        }
        Ok(())
    }
}

/// What a refused write on a file reports: its status, or that there is none.
fn refused(current: Option<&EpisodeFile>) -> FileWriteError {
    current.map_or(FileWriteError::NoFile, |f| FileWriteError::State(f.status))
}

impl EpisodeExistence for InMemoryFileStore {
    async fn episode_exists(&self, episode: EpisodeId) -> Result<bool, StoreError> {
        self.call();
        self.live_episode(episode)
    }
}

impl FileReader for InMemoryFileStore {
    async fn get(&self, id: FileId) -> Result<Option<EpisodeFile>, StoreError> {
        self.call();
        Ok(self.file(id))
    }

    async fn list(
        &self,
        episode: EpisodeId,
        limit: PageSize,
        after: Option<FileId>,
    ) -> Result<FilePage, StoreError> {
        self.call();
        let files = self.0.files.lock().map_err(|_| poisoned())?;
        let wanted = usize::from(limit.get());
        let items: Vec<EpisodeFile> = files
            .values()
            .filter(|f| f.episode_id == episode)
            .filter(|f| after.is_none_or(|a| f.id > a))
            .take(wanted + 1)
            .cloned()
            .collect();
        Ok(Page::from_query(items, wanted, false, |f| f.id))
    }
}

impl FileWriter for InMemoryFileStore {
    async fn create(&self, file: &EpisodeFile) -> Result<(), FileWriteError> {
        if !self.live_episode(file.episode_id)? {
            self.call();
            return Err(FileWriteError::NoEpisode);
        }
        self.write(file.id, None, |cur| match cur {
            Some(_) => Err(FileWriteError::Store(StoreError::unavailable(
                std::io::Error::other("a file with this id exists"),
            ))),
            None => Ok(Some(file.clone())),
        })
    }

    async fn make_available(
        &self,
        file: &EpisodeFile,
        sha256: Option<&Sha256>,
        event: &DomainEvent,
    ) -> Result<(), FileWriteError> {
        self.write(file.id, Some(event), |cur| match cur {
            Some(f) if f.status == FileStatus::Pending => {
                Ok(Some(f.made_available(sha256, event.occurred_at)))
            }
            other => Err(refused(other)),
        })
    }

    async fn record(&self, file: &EpisodeFile, event: &DomainEvent) -> Result<(), FileWriteError> {
        self.write(file.id, Some(event), |cur| match cur {
            Some(f) if f.status == FileStatus::Available => Ok(Some(f.clone())),
            other => Err(refused(other)),
        })
    }

    async fn delete(&self, file: &EpisodeFile, event: &DomainEvent) -> Result<(), FileWriteError> {
        self.write(file.id, Some(event), |cur| match cur {
            Some(_) => Ok(None),
            None => Err(FileWriteError::NoFile),
        })
    }

    async fn create_available(
        &self,
        file: &EpisodeFile,
        event: &DomainEvent,
    ) -> Result<(), FileWriteError> {
        self.write(file.id, Some(event), |cur| match cur {
            None => Ok(Some(file.clone())),
            other => Err(refused(other)),
        })
    }

    async fn delete_pending(&self, id: FileId) -> Result<bool, StoreError> {
        let result = self.write(id, None, |cur| match cur {
            Some(f) if f.status == FileStatus::Pending => Ok(None),
            other => Err(refused(other)),
        });
        match result {
            Ok(()) => Ok(true),
            Err(FileWriteError::Store(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    async fn record_metadata(
        &self,
        id: FileId,
        what: FileMetadata,
        value: &Value,
        sha256: Option<&Sha256>,
    ) -> Result<bool, StoreError> {
        let result = self.write(id, None, |cur| match cur {
            Some(f) => {
                let mut next = f.clone();
                let mut metadata = match next.metadata.take() {
                    Some(Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                metadata.insert(what.key().to_owned(), value.clone());
                next.metadata = Some(Value::Object(metadata));
                if let Some(sha) = sha256 {
                    next.sha256 = Some(sha.clone());
                }
                Ok(Some(next))
            }
            None => Err(FileWriteError::NoFile),
        });
        match result {
            Ok(()) => Ok(true),
            Err(FileWriteError::Store(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }
}
