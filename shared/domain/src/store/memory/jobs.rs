//! Jobs, as the DynamoDB jobs table behaves: guarded moves, idempotency keys with a 24-hour
//! life, creation checked against the episode and the file.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{InMemoryFileStore, poisoned};
use crate::actor::UserId;
use crate::event::DomainEvent;
use crate::file::FileStatus;
use crate::ids::{EpisodeId, JobId};
use crate::job::{IDEMPOTENCY_HOURS, Job, JobMove, JobState};
use crate::store::job::{
    Idempotency, JobCreateError, JobMoveError, JobPage, JobQuery, JobReader, JobWriter, StoredJob,
};
use crate::store::{EpisodeExistence, Page, StoreError};
use crate::time::Timestamp;
use crate::upload_rules::EpisodeRules;

/// Jobs, over the files (and episodes) of an [`InMemoryFileStore`]. Clones share the state.
#[derive(Debug, Clone)]
pub struct InMemoryJobStore(Arc<State>);

/// An idempotency key is the user's own: (user, key).
type KeySlot = (UserId, String);
/// What it named: (job, request fingerprint, until when).
type KeyUse = (JobId, String, Timestamp);

#[derive(Debug)]
struct State {
    files: InMemoryFileStore,
    jobs: Mutex<BTreeMap<JobId, StoredJob>>,
    keys: Mutex<BTreeMap<KeySlot, KeyUse>>,
    rules: Mutex<BTreeMap<EpisodeId, EpisodeRules>>,
    events: Mutex<Vec<DomainEvent>>,
    calls: AtomicUsize,
}

impl InMemoryJobStore {
    pub fn new(files: &InMemoryFileStore) -> Self {
        Self(Arc::new(State {
            files: files.clone(),
            jobs: Mutex::default(),
            keys: Mutex::default(),
            rules: Mutex::default(),
            events: Mutex::default(),
            calls: AtomicUsize::default(),
        }))
    }

    /// A job as it is stored now, set up by a test.
    pub fn put_job(&self, job: Job, lease_until: Option<Timestamp>) {
        if let Ok(mut j) = self.0.jobs.lock() {
            j.insert(job.id, StoredJob { job, lease_until });
        }
    }

    pub fn job(&self, id: JobId) -> Option<StoredJob> {
        self.0.jobs.lock().ok().and_then(|j| j.get(&id).cloned())
    }

    /// Events written so far, oldest first.
    pub fn events(&self) -> Vec<DomainEvent> {
        self.0.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Store calls made so far.
    pub fn calls(&self) -> usize {
        self.0.calls.load(Ordering::Relaxed)
    }

    fn call(&self) {
        self.0.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn push(&self, event: &DomainEvent) -> Result<(), StoreError> {
        self.0
            .events
            .lock()
            .map_err(|_| poisoned())?
            .push(event.clone());
        Ok(())
    }
}

/// DynamoDB's limit on one item (names and values); a job's JSON is a close measure of it.
const MAX_ITEM_BYTES: usize = 400 * 1024;

fn check_size(job: &Job) -> Result<(), StoreError> {
    if job.to_json().to_string().len() > MAX_ITEM_BYTES {
        return Err(StoreError::unavailable(std::io::Error::other(
            "item size has exceeded the maximum allowed size (400 KB)",
        )));
    }
    Ok(())
}

impl EpisodeExistence for InMemoryJobStore {
    async fn episode_exists(&self, episode: EpisodeId) -> Result<bool, StoreError> {
        self.call();
        self.0.files.live_episode(episode)
    }
}

impl JobReader for InMemoryJobStore {
    async fn get(&self, id: JobId) -> Result<Option<StoredJob>, StoreError> {
        self.call();
        Ok(self.job(id))
    }

    async fn list(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        self.call();
        let jobs = self.0.jobs.lock().map_err(|_| poisoned())?;
        let wanted = usize::from(query.limit.get());
        let items: Vec<Job> = jobs
            .values()
            .map(|s| &s.job)
            .filter(|j| j.episode_id == query.episode)
            .filter(|j| query.after.is_none_or(|a| j.id > a))
            .filter(|j| query.state.is_none_or(|s| j.state == s))
            .take(wanted + 1)
            .cloned()
            .collect();
        Ok(Page::from_query(items, wanted, false, |j| j.id))
    }

    async fn upload_rules(&self, episode: EpisodeId) -> Result<Option<EpisodeRules>, StoreError> {
        self.call();
        Ok(self
            .0
            .rules
            .lock()
            .map_err(|_| poisoned())?
            .get(&episode)
            .cloned())
    }
}

impl JobWriter for InMemoryJobStore {
    async fn create(
        &self,
        job: &Job,
        event: &DomainEvent,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<(), JobCreateError> {
        self.call();
        check_size(job)?;
        if !self.0.files.live_episode(job.episode_id)? {
            return Err(JobCreateError::NoEpisode);
        }
        if let Some(file) = job.file_id {
            let ok = self.0.files.file(file).is_some_and(|f| {
                f.episode_id == job.episode_id && f.status == FileStatus::Available
            });
            if !ok {
                return Err(JobCreateError::BadFile);
            }
        }
        let mut keys = self.0.keys.lock().map_err(|_| poisoned())?;
        let mut jobs = self.0.jobs.lock().map_err(|_| poisoned())?;
        if jobs.contains_key(&job.id) {
            return Err(JobCreateError::Exists);
        }
        let now = job.created.at;
        if let Some(idem) = idempotency {
            let slot = (job.created.by.clone(), idem.key.to_owned());
            if let Some((previous, fingerprint, expires)) = keys.get(&slot)
                && *expires >= now
            {
                return Err(JobCreateError::Replay {
                    job: *previous,
                    same_request: fingerprint == idem.fingerprint,
                });
            }
            keys.insert(
                slot,
                (
                    job.id,
                    idem.fingerprint.to_owned(),
                    now.plus_seconds(IDEMPOTENCY_HOURS * 3600),
                ),
            );
        }
        jobs.insert(
            job.id,
            StoredJob {
                job: job.clone(),
                lease_until: None,
            },
        );
        self.push(event)?;
        Ok(())
    }

    async fn set_upload_rules(
        &self,
        episode: EpisodeId,
        rules: Option<&EpisodeRules>,
    ) -> Result<(), JobCreateError> {
        self.call();
        if !self.0.files.live_episode(episode)? {
            return Err(JobCreateError::NoEpisode);
        }
        let mut stored = self.0.rules.lock().map_err(|_| poisoned())?;
        match rules {
            Some(r) => stored.insert(episode, r.clone()),
            None => stored.remove(&episode),
        };
        Ok(())
    }

    async fn save(&self, change: &JobMove, event: &DomainEvent) -> Result<(), JobMoveError> {
        self.call();
        check_size(&change.next)?;
        let mut jobs = self.0.jobs.lock().map_err(|_| poisoned())?;
        let admitted = jobs.get(&change.next.id).is_some_and(|stored| {
            change.guard.admits(&stored.job)
                && change
                    .expired_before
                    .is_none_or(|before| stored.lease_until.is_none_or(|l| l < before))
        });
        if !admitted {
            return Err(JobMoveError::Changed);
        }
        jobs.insert(
            change.next.id,
            StoredJob {
                job: change.next.clone(),
                lease_until: change.lease_until,
            },
        );
        self.push(event)?;
        Ok(())
    }

    async fn request_cancel(&self, id: JobId, now: Timestamp) -> Result<bool, StoreError> {
        self.call();
        let mut jobs = self.0.jobs.lock().map_err(|_| poisoned())?;
        match jobs.get_mut(&id) {
            Some(stored) if stored.job.state == JobState::Running => {
                stored.job.cancel_requested = true;
                stored.job.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
