//! The jobs aggregate's ports. A move is read → decide in the domain ([`crate::job::JobMove`])
//! → write the whole job back on the condition that the stored job is still as read: two
//! workers, a duplicate delivery or a cancel racing a completion cannot both win.

use std::future::Future;

use super::{Page, PageSize, StoreError};
use crate::event::DomainEvent;
use crate::ids::{EpisodeId, JobId};
use crate::job::{Job, JobMove, JobState};
use crate::time::Timestamp;
use crate::upload_rules::EpisodeRules;

/// A page of an episode's jobs.
pub type JobPage = Page<Job, JobId>;

pub use super::Idempotency;

/// Why a job was not created.
#[derive(Debug, thiserror::Error)]
pub enum JobCreateError {
    #[error("episode not found")]
    NoEpisode,
    #[error("the file does not exist, is not available, or belongs to another episode")]
    BadFile,
    /// A job with this id exists already (a rule's job for a file it started before).
    #[error("the job exists already")]
    Exists,
    /// The idempotency key was used before: the job it named, and whether the request matched.
    #[error("idempotency key already used")]
    Replay { job: JobId, same_request: bool },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a move was not written.
#[derive(Debug, thiserror::Error)]
pub enum JobMoveError {
    /// The stored job is not (any more) as the move requires.
    #[error("the job changed meanwhile")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored job, and when the lease of the worker running it ends (if one runs it).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    pub job: Job,
    pub lease_until: Option<Timestamp>,
}

/// The filter and page of [`JobReader::list`]: an episode's jobs, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobQuery {
    pub episode: EpisodeId,
    pub state: Option<JobState>,
    pub limit: PageSize,
    pub after: Option<JobId>,
}

pub trait JobReader {
    fn get(&self, id: JobId) -> impl Future<Output = Result<Option<StoredJob>, StoreError>> + Send;

    /// A page of the episode's jobs. With a state filter a page may hold fewer jobs than
    /// asked for and still have a cursor (the store examined its budget of jobs first).
    fn list(&self, query: &JobQuery) -> impl Future<Output = Result<JobPage, StoreError>> + Send;

    /// The episode's own rules for jobs on upload, if it set any.
    fn upload_rules(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<Option<EpisodeRules>, StoreError>> + Send;
}

/// Writes a job change and its event atomically, in one call.
pub trait JobWriter {
    /// Creates a queued job with its `job.created` event, checking in the same write that the
    /// episode exists, that the job's file (if any) is an available file of that episode, and
    /// that the idempotency key (if any) was not used in the last 24 hours.
    fn create(
        &self,
        job: &Job,
        event: &DomainEvent,
        idempotency: Option<Idempotency<'_>>,
    ) -> impl Future<Output = Result<(), JobCreateError>> + Send;

    /// Writes `change.next` if the stored job still meets `change.guard`.
    fn save(
        &self,
        change: &JobMove,
        event: &DomainEvent,
    ) -> impl Future<Output = Result<(), JobMoveError>> + Send;

    /// Sets the episode's rules for jobs on upload (all of them; `None` clears them), checking
    /// in the same write that the episode exists. Err(NoEpisode) otherwise.
    fn set_upload_rules(
        &self,
        episode: EpisodeId,
        rules: Option<&EpisodeRules>,
    ) -> impl Future<Output = Result<(), JobCreateError>> + Send;

    /// Asks a running job to stop at its next checkpoint. False when it is not running.
    fn request_cancel(
        &self,
        id: JobId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
