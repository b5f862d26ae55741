//! A job's life in the worker: claim (a conditional write, so a duplicate delivery or a second
//! worker cannot run it twice), run with checkpoints (progress events; a cancel stops it
//! there), then record success, a retry (backoff with jitter, as a delayed message) or the
//! failure. The queue message fails — and so comes again, then goes to the DLQ — only when the
//! worker could not record what happened. Every move is a method of `Job` (`domain::job`);
//! this module decides when, and writes them.

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lc_rs::digest;
use domain::job::{AfterFailure, Claim, JobFailure, JobMove, claim};
use domain::store::file::{FileReader, FileWriteError, FileWriter};
use domain::store::job::{JobMoveError, JobReader, JobWriter};
use domain::store::object::{ObjectReader, ObjectWriter};
use domain::store::{DeadLetters, MessageSender, StoreError};
use domain::{
    Actor, CorrelationId, DisplayName, DomainEvent, EpisodeFile, EventContext, FileId, FileName,
    FileSize, FileStatus, Job, JobId, JobMessage, Role, Sha256, Stamp, Timestamp, UserId,
};
use lambda_kit::sqs::{batch_response, read_messages};
use lambda_runtime::LambdaEvent;
use serde_json::json;

use crate::processors::{self, Checkpoint};

/// What the worker needs: jobs (`J`), files (`F`), objects (`O`), the jobs queue for delayed
/// retries (`Q`) and its dead-letter queue (`D`).
#[derive(Debug)]
pub struct App<J, F, O, Q, D> {
    pub jobs: J,
    pub files: F,
    pub objects: O,
    pub queue: Q,
    pub dead_letters: D,
    /// How long a claim holds a job: longer than the function's timeout.
    pub lease: Duration,
}

/// The ports the worker uses, in one bound.
pub trait Ports {
    type Jobs: JobReader + JobWriter + Sync;
    type Files: FileReader + FileWriter + Sync;
    type Objects: ObjectReader + ObjectWriter + Sync;
    type Queue: MessageSender + Sync;
    type DeadLetters: DeadLetters + Sync;
    fn app(&self) -> &App<Self::Jobs, Self::Files, Self::Objects, Self::Queue, Self::DeadLetters>;
}

impl<J, F, O, Q, D> Ports for App<J, F, O, Q, D>
where
    J: JobReader + JobWriter + Sync,
    F: FileReader + FileWriter + Sync,
    O: ObjectReader + ObjectWriter + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
{
    type Jobs = J;
    type Files = F;
    type Objects = O;
    type Queue = Q;
    type DeadLetters = D;
    fn app(&self) -> &Self {
        self
    }
}

/// The actor of the events the worker causes.
fn worker_actor() -> Actor {
    Actor {
        id: UserId::system("job-worker"),
        name: DisplayName::new("Job worker"),
        role: Role::Editor,
    }
}

fn context(job: &Job) -> EventContext {
    EventContext {
        actor: worker_actor(),
        correlation_id: CorrelationId::parse(&job.id.to_string())
            .unwrap_or_else(|_| CorrelationId::generate()),
        request_id: None,
    }
}

pub async fn handle<P: Ports + Sync>(
    ports: &P,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let app = ports.app();
    let (messages, mut failed) =
        read_messages(&event.payload.records, JobMessage::parse, &app.dead_letters).await;
    for (message_id, message) in messages {
        if let Err(e) = run(ports, &message).await {
            tracing::warn!(%message_id, job_id = %message.job_id, error = %e, "not recorded; the message comes again");
            failed.push(message_id);
        }
    }
    Ok(batch_response(failed))
}

/// Writes the move with its event; false when the job changed meanwhile.
async fn save<P: Ports + Sync>(ports: &P, change: &JobMove) -> Result<bool, StoreError> {
    let event = change.event(&context(&change.next));
    match ports.app().jobs.save(change, &event).await {
        Ok(()) => Ok(true),
        Err(JobMoveError::Changed) => Ok(false),
        Err(JobMoveError::Store(e)) => Err(e),
    }
}

async fn run<P: Ports + Sync>(ports: &P, message: &JobMessage) -> Result<(), StoreError> {
    let app = ports.app();
    let Some(stored) = app.jobs.get(message.job_id).await? else {
        tracing::warn!(job_id = %message.job_id, "no such job");
        return Ok(());
    };
    let job = stored.job;
    let now = Timestamp::now();
    match claim(&job, stored.lease_until, now) {
        Claim::Skip => {
            tracing::info!(job_id = %job.id, state = %job.state, "nothing to do (duplicate delivery)");
            return Ok(());
        }
        Claim::CancelDead => {
            save(ports, &job.cancelled(now)).await?;
            return Ok(());
        }
        Claim::FailDead => {
            save(ports, &job.failed_dead(now)).await?;
            return Ok(());
        }
        Claim::Run => {}
    }
    // Claim: the stored job must still be as read (and a dead worker's lease over).
    let lease_until = now.plus_seconds(i64::try_from(app.lease.as_secs()).unwrap_or(900));
    let start = job.start_attempt(now, lease_until);
    if !save(ports, &start).await? {
        tracing::info!(job_id = %job.id, "claimed by another delivery");
        return Ok(());
    }
    let running = start.next;
    tracing::info!(job_id = %job.id, attempt = running.attempts, job_type = %job.job_type, "job started");

    let mut checkpoint = Progress {
        ports,
        job: running.clone(),
        lease_until,
        cancelled: false,
    };
    let outcome = execute(ports, &running, &mut checkpoint).await;
    let current = checkpoint.job.clone();
    if checkpoint.cancelled {
        return stop_cancelled(ports, current.id).await;
    }
    let now = Timestamp::now();
    match outcome {
        Ok(result) => {
            if !save(ports, &current.succeeded(result, now)).await? {
                // A cancel arrived after the last checkpoint: it wins, the job never completes.
                return stop_cancelled(ports, current.id).await;
            }
            tracing::info!(job_id = %current.id, "job succeeded");
        }
        Err(failure) => {
            let random = RandomState::new().hash_one(current.id);
            let (change, after) = current.attempt_failed(&failure, random, now);
            if !save(ports, &change).await? {
                return stop_cancelled(ports, current.id).await;
            }
            match after {
                AfterFailure::RetryIn { seconds } => {
                    let body = serde_json::to_string(&JobMessage { job_id: current.id })
                        .map_err(StoreError::unavailable)?;
                    // If this send fails, the message comes again and finds the job retrying.
                    app.queue.send(body, seconds).await?;
                    tracing::info!(job_id = %current.id, attempt = current.attempts, seconds, error = %failure, "retry scheduled");
                }
                AfterFailure::Fail => {
                    tracing::warn!(job_id = %current.id, error = %failure, "job failed");
                }
            }
        }
    }
    Ok(())
}

/// The job was asked to stop: record `cancelled` (if it still is running with a cancel asked).
async fn stop_cancelled<P: Ports + Sync>(ports: &P, id: JobId) -> Result<(), StoreError> {
    let Some(stored) = ports.app().jobs.get(id).await? else {
        return Ok(());
    };
    // Otherwise taken over by another worker, or already recorded.
    if let Some(change) = stored.job.stopped_at_checkpoint(Timestamp::now()) {
        save(ports, &change).await?;
        tracing::info!(job_id = %id, "job cancelled at a checkpoint");
    }
    Ok(())
}

/// Progress checkpoints: each writes `job.progress` on the condition that nobody asked to
/// cancel and no other worker took the job over; otherwise the run stops.
struct Progress<'a, P> {
    ports: &'a P,
    job: Job,
    lease_until: Timestamp,
    cancelled: bool,
}

impl<P: Ports + Sync> Checkpoint for Progress<'_, P> {
    async fn reached(&mut self, percent: u8) -> Result<(), JobFailure> {
        let change = self
            .job
            .progressed(percent, Timestamp::now(), self.lease_until);
        match save(self.ports, &change).await {
            Ok(true) => {
                self.job = change.next;
                Ok(())
            }
            Ok(false) => {
                self.cancelled = true;
                Err(JobFailure::Permanent(
                    "stopped: cancelled or taken over".into(),
                ))
            }
            // Progress is informative: a failure to write it does not stop the work.
            Err(e) => {
                tracing::warn!(job_id = %self.job.id, error = %e, "progress not recorded");
                Ok(())
            }
        }
    }
}

/// Runs the job's processor on its file and records what it found.
async fn execute<P: Ports + Sync>(
    ports: &P,
    job: &Job,
    checkpoint: &mut Progress<'_, P>,
) -> Result<serde_json::Value, JobFailure> {
    let app = ports.app();
    if job.inject.pause_seconds > 0 {
        tokio::time::sleep(Duration::from_secs(u64::from(job.inject.pause_seconds))).await;
        checkpoint.reached(10).await?;
    }
    if job.attempts <= job.inject.failures {
        checkpoint.reached(50).await?;
        return Err(JobFailure::Retryable(format!(
            "injected failure {} of {}",
            job.attempts, job.inject.failures
        )));
    }
    let retryable = |e: StoreError| JobFailure::Retryable(e.to_string());
    let file_id = job
        .file_id
        .ok_or_else(|| JobFailure::Permanent("the job names no file".into()))?;
    let file = app
        .files
        .get(file_id)
        .await
        .map_err(retryable)?
        .filter(|f| f.status == FileStatus::Available)
        .ok_or_else(|| JobFailure::Permanent("the file is gone or not available".into()))?;
    let outcome =
        processors::run(job.job_type, &app.objects, &file, &job.params, checkpoint).await?;
    if checkpoint.cancelled {
        return Err(JobFailure::Permanent("cancelled".into()));
    }
    if let Some((attribute, value, sha)) = &outcome.file_metadata {
        app.files
            .record_metadata(file.id, *attribute, value, sha.as_ref())
            .await
            .map_err(retryable)?;
    }
    let mut result = outcome.result;
    if let Some((bytes, content_type)) = outcome.derived {
        let derived = derive(ports, job, &file, bytes, content_type).await?;
        result["file_id"] = json!(derived);
    }
    Ok(result)
}

/// Stores a file made by a job (a thumbnail) as a new available file of the episode.
async fn derive<P: Ports + Sync>(
    ports: &P,
    job: &Job,
    source: &EpisodeFile,
    bytes: Vec<u8>,
    content_type: domain::ContentType,
) -> Result<FileId, JobFailure> {
    let app = ports.app();
    let permanent = |e: domain::FieldError| JobFailure::Permanent(e.to_string());
    let retryable = |e: StoreError| JobFailure::Retryable(e.to_string());
    let sha = Sha256::from_bytes(digest::digest(&digest::SHA256, &bytes).as_ref())
        .ok_or_else(|| JobFailure::Permanent("digest".into()))?;
    let stem = source
        .name
        .as_str()
        .rsplit_once('.')
        .map_or(source.name.as_str(), |(s, _)| s);
    let name: String = format!("{stem} (thumbnail).png")
        .chars()
        .rev()
        .take(FileName::MAX_CHARS)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let now = Timestamp::now();
    // The same job always makes the same file (same id, same key): a retry after a failure
    // further on writes the same object again instead of leaving an orphan beside it.
    let id = FileId::made_by(job.id);
    let new = domain::NewFile {
        name: FileName::parse(&name).map_err(permanent)?,
        content_type,
        size: FileSize::new(bytes.len() as u64).map_err(permanent)?,
        sha256: Some(sha.clone()),
    };
    let mut file = new.into_file(id, job.episode_id, Stamp::new(&worker_actor(), now));
    file.status = FileStatus::Available;
    file.available_at = Some(now);
    app.objects
        .put(&file.key, bytes, content_type, &sha)
        .await
        .map_err(retryable)?;
    let event = DomainEvent::file_uploaded(&context(job), &file, now);
    match app.files.create_available(&file, &event).await {
        // Already there: an earlier attempt of this job recorded it.
        Ok(()) | Err(FileWriteError::State(_)) => Ok(id),
        Err(e) => Err(JobFailure::Retryable(e.to_string())),
    }
}
