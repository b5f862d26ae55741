//! A job's life in the worker: claim (a conditional write, so a duplicate delivery or a second
//! worker cannot run it twice), run with checkpoints (progress events; a cancel stops it
//! there), then record success, a retry (backoff with jitter, as a delayed message) or the
//! failure. The queue message fails — and so comes again, then goes to the DLQ — only when the
//! worker could not record what happened.

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::time::Duration;

use aws_adapters::job_store::Guard;
use aws_adapters::{
    DeadLetterQueue, DynamoFileStore, DynamoJobStore, FileWriteError, MessageQueue, MoveError,
    ObjectStore,
};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lc_rs::digest;
use domain::job::{AfterFailure, Claim, JobFailure, after_failure, claim};
use domain::store::StoreError;
use domain::{
    Actor, CorrelationId, DisplayName, DomainEvent, EpisodeFile, EventContext, EventType, FileId,
    FileName, FileSize, FileStatus, Job, JobMessage, JobState, Role, Sha256, Stamp, Timestamp,
    UserId,
};
use lambda_kit::sqs::{batch_response, read_messages};
use lambda_runtime::LambdaEvent;
use serde_json::json;

use crate::processors::{self, Checkpoint};

#[derive(Debug)]
pub struct App {
    pub jobs: DynamoJobStore,
    pub files: DynamoFileStore,
    pub objects: ObjectStore,
    pub queue: MessageQueue,
    pub dead_letters: DeadLetterQueue,
    /// How long a claim holds a job: longer than the function's timeout.
    pub lease: Duration,
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

pub async fn handle(
    app: &App,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let (messages, mut failed) =
        read_messages(&event.payload.records, JobMessage::parse, &app.dead_letters).await;
    for (message_id, message) in messages {
        if let Err(e) = run(app, &message).await {
            tracing::warn!(%message_id, job_id = %message.job_id, error = %e, "not recorded; the message comes again");
            failed.push(message_id);
        }
    }
    Ok(batch_response(failed))
}

fn store(e: MoveError) -> StoreError {
    match e {
        MoveError::Store(e) => e,
        MoveError::Changed => {
            StoreError::unavailable(std::io::Error::other("the job changed meanwhile"))
        }
    }
}

/// Writes `next` with its event if the job is still as read; false when it changed.
async fn save(
    app: &App,
    read: &Job,
    next: &Job,
    lease: Option<Timestamp>,
    event: EventType,
    extra: serde_json::Value,
) -> Result<bool, StoreError> {
    let e = DomainEvent::about_job(&context(next), event, next, next.updated_at, extra);
    match app
        .jobs
        .save(next, &Guard::as_read(read), lease, None, &e)
        .await
    {
        Ok(()) => Ok(true),
        Err(MoveError::Changed) => Ok(false),
        Err(e) => Err(store(e)),
    }
}

async fn run(app: &App, message: &JobMessage) -> Result<(), StoreError> {
    let Some((job, lease)) = app.jobs.get(message.job_id).await? else {
        tracing::warn!(job_id = %message.job_id, "no such job");
        return Ok(());
    };
    let now = Timestamp::now();
    match claim(&job, lease, now) {
        Claim::Skip => {
            tracing::info!(job_id = %job.id, state = %job.state, "nothing to do (duplicate delivery)");
            return Ok(());
        }
        Claim::CancelDead => {
            let mut next = job.clone();
            next.state = JobState::Cancelled;
            next.updated_at = now;
            save(app, &job, &next, None, EventType::JobCancelled, json!({})).await?;
            return Ok(());
        }
        Claim::FailDead => {
            let mut next = job.clone();
            next.state = JobState::Failed;
            next.error = Some("the worker stopped (timed out) on the last attempt".into());
            next.updated_at = now;
            save(app, &job, &next, None, EventType::JobFailed, json!({})).await?;
            return Ok(());
        }
        Claim::Run => {}
    }
    // Claim: the stored job must still be as read (and a dead worker's lease over).
    let mut running = job.clone();
    running.state = JobState::Running;
    running.attempts = job.attempts + 1;
    running.progress = 0;
    running.error = None;
    running.updated_at = now;
    let lease_until = now.plus_seconds(i64::try_from(app.lease.as_secs()).unwrap_or(900));
    let started = DomainEvent::about_job(
        &context(&running),
        EventType::JobStarted,
        &running,
        now,
        json!({}),
    );
    let expired_before = (job.state == JobState::Running).then_some(now);
    match app
        .jobs
        .save(
            &running,
            &Guard::as_read(&job),
            Some(lease_until),
            expired_before,
            &started,
        )
        .await
    {
        Ok(()) => {}
        Err(MoveError::Changed) => {
            tracing::info!(job_id = %job.id, "claimed by another delivery");
            return Ok(());
        }
        Err(e) => return Err(store(e)),
    }
    tracing::info!(job_id = %job.id, attempt = running.attempts, job_type = %job.job_type, "job started");

    let mut checkpoint = Progress {
        app,
        job: running.clone(),
        lease_until,
        cancelled: false,
    };
    let outcome = execute(app, &running, &mut checkpoint).await;
    let current = checkpoint.job.clone();
    if checkpoint.cancelled {
        return stop_cancelled(app, current.id).await;
    }
    let now = Timestamp::now();
    let mut next = current.clone();
    next.updated_at = now;
    match outcome {
        Ok(result) => {
            next.state = JobState::Succeeded;
            next.progress = 100;
            next.result = Some(result);
            if !save(
                app,
                &current,
                &next,
                None,
                EventType::JobSucceeded,
                json!({}),
            )
            .await?
            {
                // A cancel arrived after the last checkpoint: it wins, the job never completes.
                return stop_cancelled(app, current.id).await;
            }
            tracing::info!(job_id = %next.id, "job succeeded");
        }
        Err(failure) => {
            let random = RandomState::new().hash_one(next.id);
            next.error = Some(failure.to_string());
            match after_failure(&failure, next.attempts, random) {
                AfterFailure::RetryIn { seconds } => {
                    next.state = JobState::Retrying;
                    let extra = json!({ "retry_in_seconds": seconds });
                    if !save(
                        app,
                        &current,
                        &next,
                        None,
                        EventType::JobRetryScheduled,
                        extra,
                    )
                    .await?
                    {
                        return stop_cancelled(app, current.id).await;
                    }
                    let body = serde_json::to_string(&JobMessage { job_id: next.id })
                        .map_err(StoreError::unavailable)?;
                    // If this send fails, the message comes again and finds the job retrying.
                    app.queue
                        .send(body, i32::try_from(seconds).unwrap_or(900))
                        .await?;
                    tracing::info!(job_id = %next.id, attempt = next.attempts, seconds, error = %failure, "retry scheduled");
                }
                AfterFailure::Fail => {
                    next.state = JobState::Failed;
                    if !save(app, &current, &next, None, EventType::JobFailed, json!({})).await? {
                        return stop_cancelled(app, current.id).await;
                    }
                    tracing::warn!(job_id = %next.id, error = %failure, "job failed");
                }
            }
        }
    }
    Ok(())
}

/// The job was asked to stop: record `cancelled` (if it still is running with a cancel asked).
async fn stop_cancelled(app: &App, id: domain::JobId) -> Result<(), StoreError> {
    let Some((job, _)) = app.jobs.get(id).await? else {
        return Ok(());
    };
    if job.state != JobState::Running || !job.cancel_requested {
        return Ok(()); // taken over by another worker, or already recorded
    }
    let mut next = job.clone();
    next.state = JobState::Cancelled;
    next.updated_at = Timestamp::now();
    let e = DomainEvent::about_job(
        &context(&next),
        EventType::JobCancelled,
        &next,
        next.updated_at,
        json!({}),
    );
    let guard = Guard {
        states: vec![JobState::Running],
        attempts: job.attempts,
        no_cancel_request: false,
    };
    match app.jobs.save(&next, &guard, None, None, &e).await {
        Ok(()) | Err(MoveError::Changed) => {
            tracing::info!(job_id = %id, "job cancelled at a checkpoint");
            Ok(())
        }
        Err(e) => Err(store(e)),
    }
}

/// Progress checkpoints: each writes `job.progress` on the condition that nobody asked to
/// cancel and no other worker took the job over; otherwise the run stops.
struct Progress<'a> {
    app: &'a App,
    job: Job,
    lease_until: Timestamp,
    cancelled: bool,
}

impl Checkpoint for Progress<'_> {
    async fn reached(&mut self, percent: u8) -> Result<(), JobFailure> {
        let mut next = self.job.clone();
        next.progress = percent;
        next.updated_at = Timestamp::now();
        let e = DomainEvent::about_job(
            &context(&next),
            EventType::JobProgress,
            &next,
            next.updated_at,
            json!({}),
        );
        match self
            .app
            .jobs
            .save(
                &next,
                &Guard::as_read(&self.job),
                Some(self.lease_until),
                None,
                &e,
            )
            .await
        {
            Ok(()) => {
                self.job = next;
                Ok(())
            }
            Err(MoveError::Changed) => {
                self.cancelled = true;
                Err(JobFailure::Permanent(
                    "stopped: cancelled or taken over".into(),
                ))
            }
            // Progress is informative: a failure to write it does not stop the work.
            Err(MoveError::Store(e)) => {
                tracing::warn!(job_id = %self.job.id, error = %e, "progress not recorded");
                Ok(())
            }
        }
    }
}

/// Runs the job's processor on its file and records what it found.
async fn execute(
    app: &App,
    job: &Job,
    checkpoint: &mut Progress<'_>,
) -> Result<serde_json::Value, JobFailure> {
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
            .record_metadata(file.id, attribute, value, sha.as_ref())
            .await
            .map_err(retryable)?;
    }
    let mut result = outcome.result;
    if let Some((bytes, content_type)) = outcome.derived {
        let derived = derive(app, job, &file, bytes, content_type).await?;
        result["file_id"] = json!(derived);
    }
    Ok(result)
}

/// Stores a file made by a job (a thumbnail) as a new available file of the episode.
async fn derive(
    app: &App,
    job: &Job,
    source: &EpisodeFile,
    bytes: Vec<u8>,
    content_type: domain::ContentType,
) -> Result<FileId, JobFailure> {
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
