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
use domain::job::{AfterFailure, Claim, Injection, JobFailure, JobMove, JobWork, claim};
use domain::store::file::{FileReader, FileWriteError, FileWriter};
use domain::store::job::JobCreateError;
use domain::store::job::{JobMoveError, JobReader, JobWriter};
use domain::store::object::{ObjectReader, ObjectWriter};
use domain::store::{DeadLetters, MessageSender, StoreError};
use domain::upload_rules::{self, UploadRules};
use domain::{
    Actor, CorrelationId, DisplayName, DomainEvent, EpisodeFile, EventContext, EventType, FileId,
    FileName, FileSize, FileStatus, Job, JobId, JobMessage, Role, Sha256, Stamp, Timestamp, UserId,
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
    /// The stack's rules for jobs on upload (`UPLOAD_JOBS`).
    pub upload_rules: UploadRules,
}

/// The ports the worker uses, in one bound.
pub trait Ports {
    fn jobs(&self) -> &(impl JobReader + JobWriter + Sync);
    fn files(&self) -> &(impl FileReader + FileWriter + Sync);
    fn objects(&self) -> &(impl ObjectReader + ObjectWriter + Sync);
    fn queue(&self) -> &(impl MessageSender + Sync);
    fn dead_letters(&self) -> &(impl DeadLetters + Sync);
    fn lease(&self) -> Duration;
    fn upload_rules(&self) -> &UploadRules;
}

impl<J, F, O, Q, D> Ports for App<J, F, O, Q, D>
where
    J: JobReader + JobWriter + Sync,
    F: FileReader + FileWriter + Sync,
    O: ObjectReader + ObjectWriter + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
{
    fn jobs(&self) -> &(impl JobReader + JobWriter + Sync) {
        &self.jobs
    }
    fn files(&self) -> &(impl FileReader + FileWriter + Sync) {
        &self.files
    }
    fn objects(&self) -> &(impl ObjectReader + ObjectWriter + Sync) {
        &self.objects
    }
    fn queue(&self) -> &(impl MessageSender + Sync) {
        &self.queue
    }
    fn dead_letters(&self) -> &(impl DeadLetters + Sync) {
        &self.dead_letters
    }
    fn lease(&self) -> Duration {
        self.lease
    }
    fn upload_rules(&self) -> &UploadRules {
        &self.upload_rules
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
    let (messages, mut failed) =
        read_messages(&event.payload.records, JobWork::parse, ports.dead_letters()).await;
    for (message_id, work) in messages {
        let done = match &work {
            JobWork::Run(message) => run(ports, message).await,
            JobWork::FileUploaded {
                file_id,
                correlation_id,
            } => start_upload_jobs(ports, *file_id, correlation_id).await,
        };
        if let Err(e) = done {
            tracing::warn!(%message_id, ?work, error = %e, "not recorded; the message comes again");
            failed.push(message_id);
        }
    }
    Ok(batch_response(failed))
}

/// The actor of the jobs rules start.
fn rules_actor() -> Actor {
    Actor {
        id: UserId::system("upload-rules"),
        name: DisplayName::new("Jobs on upload"),
        role: Role::Editor,
    }
}

/// A file became available: creates the jobs the episode's rules (or the stack's) name for
/// its kind, as the system. Each job's id is made from the file and the type, so a second
/// delivery of the upload finds them created and starts nothing. Files made by jobs (a
/// thumbnail, a waveform) start nothing, or a thumbnail rule would thumbnail its thumbnails.
async fn start_upload_jobs<P: Ports + Sync>(
    ports: &P,
    file_id: FileId,
    correlation_id: &CorrelationId,
) -> Result<(), StoreError> {
    let Some(file) = ports.files().get(file_id).await? else {
        tracing::info!(%file_id, "the file is gone; no jobs on upload");
        return Ok(());
    };
    if file.status != FileStatus::Available || file.created.by.is_system() {
        return Ok(());
    }
    let own = ports.jobs().upload_rules(file.episode_id).await?;
    let rules = UploadRules::effective(
        own.as_ref().map(|o| &o.rules),
        ports.upload_rules(),
        file.content_type.kind(),
    );
    let actor = rules_actor();
    let ctx = EventContext {
        actor: actor.clone(),
        correlation_id: correlation_id.clone(),
        request_id: None,
    };
    for rule in rules {
        let now = Timestamp::now();
        let job = Job::queued(
            upload_rules::job_id(&file, rule.job_type),
            file.episode_id,
            Some(file.id),
            rule.job_type,
            rule.params.clone(),
            Stamp::new(&actor, now),
            Injection::default(),
        );
        let event = DomainEvent::about_job(&ctx, EventType::JobCreated, &job, now, json!({}));
        match ports.jobs().create(&job, &event, None).await {
            Ok(()) => {
                tracing::info!(%file_id, job_id = %job.id, job_type = %job.job_type, "job on upload created");
            }
            Err(JobCreateError::Exists) => {
                tracing::info!(%file_id, job_id = %job.id, "job on upload exists (a second delivery)");
            }
            // The episode or the file went meanwhile.
            Err(JobCreateError::NoEpisode | JobCreateError::BadFile) => return Ok(()),
            Err(JobCreateError::Store(e)) => return Err(e),
            // No idempotency key is given: a replay cannot be.
            Err(JobCreateError::Replay { .. }) => {}
        }
    }
    Ok(())
}

/// Writes the move with its event; false when the job changed meanwhile.
async fn save<P: Ports + Sync>(ports: &P, change: &JobMove) -> Result<bool, StoreError> {
    let event = change.event(&context(&change.next));
    match ports.jobs().save(change, &event).await {
        Ok(()) => Ok(true),
        Err(JobMoveError::Changed) => Ok(false),
        Err(JobMoveError::Store(e)) => Err(e),
    }
}

async fn run<P: Ports + Sync>(ports: &P, message: &JobMessage) -> Result<(), StoreError> {
    let Some(stored) = ports.jobs().get(message.job_id).await? else {
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
    let lease_until = now.plus_seconds(i64::try_from(ports.lease().as_secs()).unwrap_or(900));
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
                    ports.queue().send(body, seconds).await?;
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
    let Some(stored) = ports.jobs().get(id).await? else {
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
    let file = ports
        .files()
        .get(file_id)
        .await
        .map_err(retryable)?
        .filter(|f| f.status == FileStatus::Available)
        .ok_or_else(|| JobFailure::Permanent("the file is gone or not available".into()))?;
    let outcome = processors::run(
        job.job_type,
        ports.objects(),
        &file,
        &job.params,
        checkpoint,
    )
    .await?;
    if checkpoint.cancelled {
        return Err(JobFailure::Permanent("cancelled".into()));
    }
    let mut result = outcome.result;
    let mut metadata = outcome.file_metadata;
    if let Some(made) = outcome.derived {
        let derived = derive(ports, job, &file, made).await?;
        result["file_id"] = json!(derived);
        if let Some((_, value, _)) = &mut metadata {
            value["file_id"] = json!(derived);
        }
    }
    if let Some((attribute, value, sha)) = &metadata {
        ports
            .files()
            .record_metadata(file.id, *attribute, value, sha.as_ref())
            .await
            .map_err(retryable)?;
    }
    Ok(result)
}

/// Stores a file made by a job (a thumbnail, a waveform) as a new available file of the
/// episode.
async fn derive<P: Ports + Sync>(
    ports: &P,
    job: &Job,
    source: &EpisodeFile,
    made: processors::Derived,
) -> Result<FileId, JobFailure> {
    let processors::Derived {
        bytes,
        content_type,
        what,
        extension,
    } = made;
    let permanent = |e: domain::FieldError| JobFailure::Permanent(e.to_string());
    let retryable = |e: StoreError| JobFailure::Retryable(e.to_string());
    let sha = Sha256::from_bytes(digest::digest(&digest::SHA256, &bytes).as_ref())
        .ok_or_else(|| JobFailure::Permanent("digest".into()))?;
    let stem = source
        .name
        .as_str()
        .rsplit_once('.')
        .map_or(source.name.as_str(), |(s, _)| s);
    let name: String = format!("{stem} ({what}).{extension}")
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
    ports
        .objects()
        .put(&file.key, bytes, content_type, &sha)
        .await
        .map_err(retryable)?;
    let event = DomainEvent::file_uploaded(&context(job), &file, now);
    match ports.files().create_available(&file, &event).await {
        // Already there: an earlier attempt of this job recorded it.
        Ok(()) | Err(FileWriteError::State(_)) => Ok(id),
        Err(e) => Err(JobFailure::Retryable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    //! The worker through `handle`, with the SQS fixture from `events/job-worker` and the
    //! in-memory ports: success, duplicate delivery, poison messages, partial failure.

    use std::io::Cursor;

    use domain::job::{Injection, MAX_ATTEMPTS};
    use domain::store::memory::{
        InMemoryDeadLetters, InMemoryFileStore, InMemoryJobStore, InMemoryObjects, InMemoryQueue,
    };
    use domain::{ContentType, EpisodeId, EventType, JobParams, JobState, JobType, NewFile};
    use lambda_kit::fixture::{failed, sqs_event, sqs_invocation};

    use super::*;
    use crate::processors::testing::sine_wav;

    const FIXTURE: &str = include_str!("../../../events/job-worker/job-created.json");
    const EPISODE: &str = "01a23152-6cb8-7273-b29c-040ecfd73448";
    const JOB: &str = "01a23152-6d9f-7420-8125-2a37ecfdb1bb";
    const FILE: &str = "01a23152-6d0c-7385-a877-e9f664c0acfe";

    type TestApp = App<
        InMemoryJobStore,
        InMemoryFileStore,
        InMemoryObjects,
        InMemoryQueue,
        InMemoryDeadLetters,
    >;

    fn alice() -> Actor {
        Actor {
            id: UserId::parse("alice").unwrap(),
            name: DisplayName::new("Alice"),
            role: Role::Editor,
        }
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(image::RgbImage::new(width, height))
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    /// The fixture's episode with an available PNG (`FILE`) whose bytes are in the bucket.
    fn app() -> TestApp {
        let files = InMemoryFileStore::default();
        let episode = EpisodeId::parse(EPISODE).unwrap();
        files.add_episode(episode);
        let objects = InMemoryObjects::default();
        add_file(&files, &objects, FILE, png(300, 150));
        App {
            jobs: InMemoryJobStore::new(&files),
            files,
            objects,
            queue: InMemoryQueue::default(),
            dead_letters: InMemoryDeadLetters::default(),
            lease: Duration::from_secs(960),
            upload_rules: lambda_kit::parse_upload_rules(
                r#"{"audio": ["checksum", "media-probe", {"type": "loudness", "params": {"preset": "ebu-r128"}}, "waveform"], "image": ["thumbnail"]}"#,
            )
            .unwrap(),
        }
    }

    /// An available file of the fixture's episode, uploaded by `by`, with its bytes.
    fn add_media(
        app: &TestApp,
        name: &str,
        content_type: &str,
        bytes: Vec<u8>,
        by: &Actor,
    ) -> FileId {
        let mut f = NewFile {
            name: FileName::parse(name).unwrap(),
            content_type: ContentType::parse(content_type).unwrap(),
            size: FileSize::new(bytes.len() as u64).unwrap(),
            sha256: None,
        }
        .into_file(
            FileId::new(),
            EpisodeId::parse(EPISODE).unwrap(),
            Stamp::new(by, Timestamp::now()),
        );
        f.status = FileStatus::Available;
        app.objects.upload(&f.key, bytes, None);
        let id = f.id;
        app.files.put_file(f);
        id
    }

    /// The `file.uploaded` event of `file`, as the relay sends it.
    fn uploaded(app: &TestApp, file: FileId) -> String {
        let f = app.files.file(file).unwrap();
        let ctx = EventContext {
            actor: alice(),
            correlation_id: CorrelationId::parse("upload-1").unwrap(),
            request_id: None,
        };
        serde_json::to_string(&DomainEvent::file_uploaded(&ctx, &f, Timestamp::now())).unwrap()
    }

    fn created_jobs(app: &TestApp) -> Vec<Job> {
        app.jobs
            .events()
            .iter()
            .filter(|e| e.event_type == EventType::JobCreated)
            .map(|e| {
                app.jobs
                    .job(JobId::parse(&e.resource.id).unwrap())
                    .unwrap()
                    .job
            })
            .collect()
    }

    fn add_file(files: &InMemoryFileStore, objects: &InMemoryObjects, id: &str, bytes: Vec<u8>) {
        let mut f = NewFile {
            name: FileName::parse("cover.png").unwrap(),
            content_type: ContentType::parse("image/png").unwrap(),
            size: FileSize::new(bytes.len() as u64).unwrap(),
            sha256: None,
        }
        .into_file(
            FileId::parse(id).unwrap(),
            EpisodeId::parse(EPISODE).unwrap(),
            Stamp::new(&alice(), Timestamp::now()),
        );
        f.status = FileStatus::Available;
        objects.upload(&f.key, bytes, None);
        files.put_file(f);
    }

    /// A queued job on `file`, stored.
    fn job(app: &TestApp, id: &str, job_type: JobType, file: &str) -> JobId {
        let now = Timestamp::now();
        let params = match job_type {
            JobType::Thumbnail => JobParams::Thumbnail { max_size: 100 },
            _ => JobParams::None,
        };
        let job = Job::queued(
            JobId::parse(id).unwrap(),
            EpisodeId::parse(EPISODE).unwrap(),
            Some(FileId::parse(file).unwrap()),
            job_type,
            params,
            Stamp::new(&alice(), now),
            Injection::default(),
        );
        let id = job.id;
        app.jobs.put_job(job, None);
        id
    }

    fn fixture_body() -> String {
        sqs_event(FIXTURE).unwrap().records[0].body.clone().unwrap()
    }

    fn retry_body(id: JobId) -> String {
        serde_json::to_string(&JobMessage { job_id: id }).unwrap()
    }

    /// Handles one batch of `bodies`; the ids of the messages that failed.
    async fn deliver(app: &TestApp, bodies: &[&str]) -> Vec<String> {
        let event = sqs_invocation(FIXTURE, bodies).unwrap();
        failed(handle(app, event).await.unwrap())
    }

    fn types(app: &TestApp) -> Vec<EventType> {
        app.jobs.events().iter().map(|e| e.event_type).collect()
    }

    fn stored(app: &TestApp, id: JobId) -> Job {
        app.jobs.job(id).unwrap().job
    }

    #[tokio::test]
    async fn a_created_job_runs_to_success_and_its_thumbnail_becomes_a_file() {
        let app = app();
        let id = job(&app, JOB, JobType::Thumbnail, FILE);
        assert!(deliver(&app, &[&fixture_body()]).await.is_empty());
        let done = stored(&app, id);
        assert_eq!(
            (done.state, done.attempts, done.progress),
            (JobState::Succeeded, 1, 100)
        );
        assert_eq!(
            types(&app),
            [EventType::JobStarted, EventType::JobSucceeded]
        );
        let result = done.result.unwrap();
        assert_eq!(
            (&result["width"], &result["height"]),
            (&json!(100), &json!(50))
        );
        // The thumbnail: an available file of the episode, with the id the job determines.
        let made = FileId::made_by(id);
        assert_eq!(result["file_id"], made.to_string());
        let file = app.files.file(made).unwrap();
        assert_eq!(file.status, FileStatus::Available);
        assert_eq!(file.name.as_str(), "cover (thumbnail).png");
        assert_eq!(&app.objects.bytes(&file.key).unwrap()[..4], b"\x89PNG");
        assert_eq!(app.files.events()[0].event_type, EventType::FileUploaded);
        assert!(app.queue.sent().is_empty() && app.dead_letters.parked().is_empty());
    }

    #[tokio::test]
    async fn a_checksum_is_recorded_on_its_file() {
        let app = app();
        let id = job(&app, JOB, JobType::Checksum, FILE);
        assert!(deliver(&app, &[&retry_body(id)]).await.is_empty());
        let file = app.files.file(FileId::parse(FILE).unwrap()).unwrap();
        let sha = file.sha256.unwrap();
        assert_eq!(file.metadata.unwrap()["checksum"]["sha256"], sha.as_hex());
        assert_eq!(stored(&app, id).result.unwrap()["sha256"], sha.as_hex());
    }

    #[tokio::test]
    async fn a_duplicate_delivery_changes_nothing() {
        let app = app();
        let id = job(&app, JOB, JobType::Checksum, FILE);
        let body = fixture_body();
        // Two copies in one batch are handled once; a later copy finds the job done.
        assert!(deliver(&app, &[&body, &body]).await.is_empty());
        assert!(deliver(&app, &[&body]).await.is_empty());
        assert_eq!(
            types(&app),
            [EventType::JobStarted, EventType::JobSucceeded]
        );
        assert_eq!(stored(&app, id).attempts, 1);
        // A copy that arrives while a live worker holds the job leaves it alone.
        let mut running = stored(&app, id);
        running.state = JobState::Running;
        app.jobs
            .put_job(running, Some(Timestamp::now().plus_seconds(600)));
        assert!(deliver(&app, &[&body]).await.is_empty());
        assert_eq!(app.jobs.events().len(), 2);
    }

    #[tokio::test]
    async fn a_poison_message_is_parked_not_retried() {
        let app = app();
        let episode_event = include_str!("../../../events/domain/episode.created.json");
        let failed = deliver(&app, &["not json", episode_event]).await;
        assert!(failed.is_empty(), "{failed:?}");
        let parked = app.dead_letters.parked();
        assert_eq!(parked.len(), 2);
        assert_eq!(parked[0].0, "not json");
        assert!(app.jobs.events().is_empty());
        // A message for a job that does not exist is acknowledged: nothing will ever run it.
        assert!(deliver(&app, &[&retry_body(JobId::new())]).await.is_empty());
    }

    #[tokio::test]
    async fn a_retryable_failure_is_retried_after_a_delay_then_succeeds() {
        let app = app();
        let id = job(&app, JOB, JobType::Checksum, FILE);
        app.objects.set_down(true);
        assert!(deliver(&app, &[&fixture_body()]).await.is_empty());
        let retrying = stored(&app, id);
        assert_eq!((retrying.state, retrying.attempts), (JobState::Retrying, 1));
        assert!(retrying.error.unwrap().contains("unavailable"));
        let sent = app.queue.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, retry_body(id));
        assert!((1..=2).contains(&sent[0].1), "delay {}", sent[0].1);
        let scheduled = &app.jobs.events()[1];
        assert_eq!(scheduled.event_type, EventType::JobRetryScheduled);
        assert_eq!(scheduled.data["retry_in_seconds"], sent[0].1);
        app.objects.set_down(false);
        assert!(deliver(&app, &[&sent[0].0]).await.is_empty());
        let done = stored(&app, id);
        assert_eq!(
            (done.state, done.attempts, done.error),
            (JobState::Succeeded, 2, None)
        );
    }

    #[tokio::test]
    async fn only_the_message_whose_outcome_could_not_be_recorded_fails() {
        let app = app();
        let unlucky = job(&app, JOB, JobType::Checksum, FILE);
        // A job whose file is gone fails for good, and that is recorded.
        let gone = job(
            &app,
            &JobId::new().to_string(),
            JobType::Checksum,
            &FileId::new().to_string(),
        );
        app.objects.set_down(true);
        app.queue.set_down(true);
        let failed = deliver(&app, &[&retry_body(unlucky), &retry_body(gone)]).await;
        assert_eq!(failed, ["m0"]);
        assert_eq!(stored(&app, gone).state, JobState::Failed);
        assert!(stored(&app, gone).error.unwrap().contains("gone"));
        // The retry was recorded but its message not sent: the failed message comes again,
        // finds the job retrying and runs it.
        assert_eq!(stored(&app, unlucky).state, JobState::Retrying);
        app.objects.set_down(false);
        app.queue.set_down(false);
        assert!(deliver(&app, &[&retry_body(unlucky)]).await.is_empty());
        assert_eq!(stored(&app, unlucky).state, JobState::Succeeded);
    }

    #[tokio::test]
    async fn a_dead_workers_job_is_taken_over_failed_or_cancelled() {
        let expired = Some(Timestamp::now().plus_seconds(-1));
        for (attempts, cancel, expected, event) in [
            (1, false, JobState::Succeeded, EventType::JobSucceeded),
            (MAX_ATTEMPTS, false, JobState::Failed, EventType::JobFailed),
            (1, true, JobState::Cancelled, EventType::JobCancelled),
        ] {
            let app = app();
            let id = job(&app, JOB, JobType::Checksum, FILE);
            let mut dead = stored(&app, id);
            dead.state = JobState::Running;
            dead.attempts = attempts;
            dead.cancel_requested = cancel;
            app.jobs.put_job(dead, expired);
            assert!(deliver(&app, &[&retry_body(id)]).await.is_empty());
            let job = stored(&app, id);
            assert_eq!(job.state, expected, "attempts {attempts}, cancel {cancel}");
            assert_eq!(types(&app).last(), Some(&event));
            assert_eq!(
                app.jobs.job(id).unwrap().lease_until,
                None,
                "no lease once over"
            );
        }
    }

    #[tokio::test]
    async fn an_upload_starts_the_rules_jobs_once_as_the_system() {
        let app = app();
        let wav = add_media(
            &app,
            "take 1.wav",
            "audio/wav",
            sine_wav(1.0, 8000, 2, 440.0, 0.5),
            &alice(),
        );
        let body = uploaded(&app, wav);
        // The upload's event comes twice (a redelivery), and again later: one set of jobs.
        assert!(deliver(&app, &[&body, &body]).await.is_empty());
        assert!(deliver(&app, &[&body]).await.is_empty());
        let jobs = created_jobs(&app);
        let types: Vec<JobType> = jobs.iter().map(|j| j.job_type).collect();
        assert_eq!(
            types,
            [
                JobType::Checksum,
                JobType::MediaProbe,
                JobType::Loudness,
                JobType::Waveform
            ]
        );
        for job in &jobs {
            let file = app.files.file(wav).unwrap();
            assert_eq!(job.id, upload_rules::job_id(&file, job.job_type));
            assert_eq!(job.file_id, Some(wav));
            assert_eq!(job.state, JobState::Queued);
            assert_eq!(job.created.by.as_str(), "system:upload-rules");
        }
        assert_eq!(jobs[2].params.to_json()["preset"], "ebu-r128");
        let event = &app.jobs.events()[0];
        assert_eq!(event.actor.id.as_str(), "system:upload-rules");
        assert_eq!(event.correlation_id.as_str(), "upload-1");
        // The relay sends each job.created back to this worker, which runs it.
        for job in &jobs {
            let created = app
                .jobs
                .events()
                .into_iter()
                .find(|e| {
                    e.event_type == EventType::JobCreated && e.resource.id == job.id.to_string()
                })
                .unwrap();
            let text = serde_json::to_string(&created).unwrap();
            assert!(deliver(&app, &[&text]).await.is_empty());
            let done = stored(&app, job.id);
            assert_eq!(
                done.state,
                JobState::Succeeded,
                "{}: {:?}",
                job.job_type,
                done.error
            );
        }
        let file = app.files.file(wav).unwrap();
        let meta = file.metadata.unwrap();
        assert_eq!(meta["media"]["sample_rate"], 8000);
        assert!(meta["loudness"]["integrated_lufs"].is_number(), "{meta}");
        assert_eq!(meta["loudness"]["verdict"]["passed"], false);
        // The waveform is a file of the episode, named for its source, made by the job.
        let made = FileId::made_by(upload_rules::job_id(
            &app.files.file(wav).unwrap(),
            JobType::Waveform,
        ));
        assert_eq!(meta["waveform"]["file_id"], made.to_string());
        let waveform = app.files.file(made).unwrap();
        assert_eq!(waveform.name.as_str(), "take 1 (waveform).json");
        assert_eq!(waveform.content_type.as_str(), "application/json");
        let json: serde_json::Value =
            serde_json::from_slice(&app.objects.bytes(&waveform.key).unwrap()).unwrap();
        assert_eq!(json["version"], 2);
        assert_eq!(json["sample_rate"], 8000);
        assert_eq!(json["samples_per_pixel"], 400);
        assert_eq!(json["length"], 20);
        // The waveform's own upload event starts nothing: files made by jobs have no rules.
        let before = created_jobs(&app).len();
        assert!(deliver(&app, &[&uploaded(&app, made)]).await.is_empty());
        assert_eq!(created_jobs(&app).len(), before);
    }

    #[tokio::test]
    async fn an_episodes_own_rules_replace_the_stacks_for_their_kinds() {
        let app = app();
        let episode = EpisodeId::parse(EPISODE).unwrap();
        let own = upload_rules::EpisodeRules {
            episode_id: episode,
            rules: UploadRules::parse(&json!({"audio": [], "video": ["media-probe"]})).unwrap(),
            updated: Stamp::new(&alice(), Timestamp::now()),
        };
        app.jobs
            .set_upload_rules(episode, Some(&own))
            .await
            .unwrap();
        let wav = add_media(
            &app,
            "a.wav",
            "audio/wav",
            sine_wav(0.1, 8000, 1, 440.0, 0.5),
            &alice(),
        );
        let png = add_media(&app, "b.png", "image/png", png(10, 10), &alice());
        let mp4 = add_media(&app, "c.mp4", "video/mp4", vec![0; 64], &alice());
        for f in [wav, png, mp4] {
            assert!(deliver(&app, &[&uploaded(&app, f)]).await.is_empty());
        }
        let started: Vec<(Option<FileId>, JobType)> = created_jobs(&app)
            .iter()
            .map(|j| (j.file_id, j.job_type))
            .collect();
        assert_eq!(
            started,
            [
                (Some(png), JobType::Thumbnail),
                (Some(mp4), JobType::MediaProbe)
            ]
        );
        // A file deleted before its event arrives starts nothing, and the message is done.
        assert!(
            deliver(
                &app,
                &[&uploaded(&app, wav).replace(&wav.to_string(), &FileId::new().to_string())]
            )
            .await
            .is_empty()
        );
        assert_eq!(created_jobs(&app).len(), 2);
    }
}
