//! One batch of the files queue; a message fails (and comes again) only when a store fails.

use std::convert::Infallible;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::store::file::{FileReader, FileWriteError, FileWriter};
use domain::store::object::{ObjectReader, ObjectTransfers, ObjectWriter};
use domain::store::{DeadLetters, MessageSender, StoreError};
use domain::{
    Actor, CorrelationId, DomainEvent, EpisodeFile, EventContext, EventType, FileId, FileStatus,
    FileTask, FilesMessage, Role, Timestamp,
};
use lambda_kit::sqs::{batch_response, read_messages};
use lambda_runtime::LambdaEvent;

/// What the worker needs: file records (`F`), their objects (`O`), the files queue for checks
/// that come back later (`Q`) and its dead-letter queue (`D`).
#[derive(Debug)]
pub struct App<F, O, Q, D> {
    pub files: F,
    pub objects: O,
    pub tasks: Q,
    pub dead_letters: D,
}

/// The file records the worker reads and writes.
pub trait Files: FileReader + FileWriter + Sync {}
impl<T: FileReader + FileWriter + Sync> Files for T {}

/// The objects behind them.
pub trait Objects: ObjectReader + ObjectWriter + ObjectTransfers + Sync {}
impl<T: ObjectReader + ObjectWriter + ObjectTransfers + Sync> Objects for T {}

pub async fn handle<F: Files, O: Objects, Q: MessageSender + Sync, D: DeadLetters + Sync>(
    app: &App<F, O, Q, D>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let (messages, mut failed) = read_messages(
        &event.payload.records,
        FilesMessage::parse,
        &app.dead_letters,
    )
    .await;
    for (message_id, message) in messages {
        let result = match message {
            FilesMessage::Event(e) if e.event_type == EventType::EpisodeDeleted => {
                delete_episode_files(app, &e).await
            }
            FilesMessage::Event(e) => {
                tracing::warn!(event_type = %e.event_type, "not an event for this worker; ignored");
                Ok(())
            }
            FilesMessage::Task(FileTask::PendingCheck {
                file_id,
                not_before,
            }) => pending_check(app, file_id, not_before).await,
        };
        if let Err(e) = result {
            tracing::warn!(%message_id, error = %e, "will retry");
            failed.push(message_id);
        }
    }
    Ok(batch_response(failed))
}

fn store(e: FileWriteError) -> StoreError {
    match e {
        FileWriteError::Store(e) => e,
        other => StoreError::unavailable(std::io::Error::other(other.to_string())),
    }
}

/// An episode was deleted: its files go too, each with a `file.deleted` by the same actor.
async fn delete_episode_files<
    F: Files,
    O: Objects,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<F, O, Q, D>,
    deleted: &DomainEvent,
) -> Result<(), StoreError> {
    let ctx = EventContext {
        actor: deleted.actor.clone(),
        correlation_id: deleted.correlation_id.clone(),
        request_id: deleted.request_id.clone(),
    };
    // episode.deleted is always of an episode.
    let Some(episode_id) = deleted.episode_id else {
        return Ok(());
    };
    let files = app.files.all_of(episode_id).await?;
    for file in &files {
        remove_bytes(app, file).await?;
        if file.status == FileStatus::Pending {
            app.files.delete_pending(file.id).await?;
            continue;
        }
        let event = DomainEvent::file_deleted(&ctx, file, Timestamp::now());
        match app.files.delete(file, &event).await {
            Ok(()) | Err(FileWriteError::NoFile) => {}
            Err(e) => return Err(store(e)),
        }
    }
    tracing::info!(%episode_id, files = files.len(), "episode's files deleted");
    Ok(())
}

async fn remove_bytes<F: Files, O: Objects, Q: MessageSender + Sync, D: DeadLetters + Sync>(
    app: &App<F, O, Q, D>,
    file: &EpisodeFile,
) -> Result<(), StoreError> {
    if let Some(upload_id) = &file.upload_id {
        app.objects.abort_multipart(&file.key, upload_id).await?;
    }
    app.objects.delete(&file.key).await
}

/// A file's upload URLs have expired: confirm what was uploaded, or clean up.
async fn pending_check<F: Files, O: Objects, Q: MessageSender + Sync, D: DeadLetters + Sync>(
    app: &App<F, O, Q, D>,
    id: FileId,
    not_before: Timestamp,
) -> Result<(), StoreError> {
    let now = Timestamp::now();
    if now < not_before {
        // Longer than SQS can delay one message: come back later.
        let wait = (not_before.unix_seconds() - now.unix_seconds()).clamp(1, 900);
        let again = FileTask::PendingCheck {
            file_id: id,
            not_before,
        };
        return app
            .tasks
            .send(again.to_body(), u32::try_from(wait).unwrap_or(900))
            .await;
    }
    let Some(file) = app.files.get(id).await? else {
        return Ok(()); // deleted meanwhile
    };
    if file.status != FileStatus::Pending {
        return Ok(());
    }
    if let Some(upload_id) = &file.upload_id {
        app.objects.complete_multipart(&file.key, upload_id).await?;
    }
    let object = app.objects.head(&file.key).await?;
    let confirmed = object
        .as_ref()
        .is_some_and(|o| file.matches_object(o.size, o.sha256.as_ref()).is_ok());
    if let (true, Some(object)) = (confirmed, object) {
        // Uploaded but never completed: it is there, so it is available, by its uploader.
        let uploader = Actor {
            id: file.created.by.clone(),
            name: file.created.by_name.clone(),
            role: Role::Editor,
        };
        let ctx = EventContext {
            actor: uploader,
            correlation_id: CorrelationId::generate(),
            request_id: None,
        };
        let done = file.made_available(object.sha256.as_ref(), now);
        // Untagged first: the lifecycle rule for abandoned uploads must not take it later.
        app.objects.mark_confirmed(&file.key).await?;
        let event = DomainEvent::file_uploaded(&ctx, &done, now);
        return match app
            .files
            .make_available(&file, object.sha256.as_ref(), &event)
            .await
        {
            Ok(()) => {
                tracing::info!(file_id = %id, "abandoned upload confirmed");
                Ok(())
            }
            Err(FileWriteError::State(_) | FileWriteError::NoFile) => Ok(()),
            Err(e) => Err(store(e)),
        };
    }
    remove_bytes(app, &file).await?;
    if app.files.delete_pending(id).await? {
        tracing::info!(file_id = %id, "abandoned upload removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The worker through `handle`, with the SQS fixture from `events/files-worker` and the
    //! in-memory ports: success, duplicate delivery, poison messages, partial failure.

    use domain::store::memory::{
        InMemoryDeadLetters, InMemoryFileStore, InMemoryObjects, InMemoryQueue,
    };
    use domain::store::object::ObjectTransfers;
    use domain::{ContentType, DisplayName, EpisodeId, FileName, FileSize, NewFile, Stamp, UserId};
    use lambda_kit::fixture::{failed, sqs_event, sqs_invocation};

    use super::*;

    const FIXTURE: &str = include_str!("../../../events/files-worker/episode-deleted.json");
    const EPISODE: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

    type TestApp = App<InMemoryFileStore, InMemoryObjects, InMemoryQueue, InMemoryDeadLetters>;

    fn app() -> TestApp {
        let files = InMemoryFileStore::default();
        files.add_episode(episode());
        App {
            files,
            objects: InMemoryObjects::default(),
            tasks: InMemoryQueue::default(),
            dead_letters: InMemoryDeadLetters::default(),
        }
    }

    fn episode() -> EpisodeId {
        EpisodeId::parse(EPISODE).unwrap()
    }

    /// A file of the episode of `size` bytes, stored with `status`.
    fn file(app: &TestApp, status: FileStatus, size: u64) -> EpisodeFile {
        let alice = Actor {
            id: UserId::parse("alice").unwrap(),
            name: DisplayName::new("Alice"),
            role: Role::Editor,
        };
        let mut f = NewFile {
            name: FileName::parse("take-1.wav").unwrap(),
            content_type: ContentType::parse("audio/wav").unwrap(),
            size: FileSize::new(size).unwrap(),
            sha256: None,
        }
        .into_file(
            FileId::new(),
            episode(),
            Stamp::new(&alice, Timestamp::now()),
        );
        f.status = status;
        app.files.put_file(f.clone());
        f
    }

    async fn deliver(app: &TestApp, bodies: &[&str]) -> Vec<String> {
        let event = sqs_invocation(FIXTURE, bodies).unwrap();
        failed(handle(app, event).await.unwrap())
    }

    fn deleted_event() -> String {
        sqs_event(FIXTURE).unwrap().records[0].body.clone().unwrap()
    }

    fn check(id: FileId, not_before: Timestamp) -> String {
        FileTask::PendingCheck {
            file_id: id,
            not_before,
        }
        .to_body()
    }

    #[tokio::test]
    async fn an_episodes_deletion_takes_its_files_and_their_bytes() {
        let app = app();
        let ready = file(&app, FileStatus::Available, 3);
        app.objects.upload(&ready.key, b"abc".to_vec(), None);
        let pending = file(&app, FileStatus::Pending, 3);
        let multipart = {
            let mut f = file(&app, FileStatus::Pending, 3);
            f.upload_id = Some(
                app.objects
                    .start_multipart(&f.key, f.content_type)
                    .await
                    .unwrap(),
            );
            app.files.put_file(f.clone());
            f
        };
        assert_eq!(app.objects.open_uploads(), 1);
        assert!(deliver(&app, &[&deleted_event()]).await.is_empty());
        assert_eq!(app.files.file(ready.id), None);
        assert_eq!(app.files.file(pending.id), None);
        assert_eq!(app.objects.bytes(&ready.key), None);
        // One `file.deleted` per available file, by the episode's deleter; none for a pending one.
        let events = app.files.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, EventType::FileDeleted);
        assert_eq!(events[0].resource.id, ready.id.to_string());
        assert_eq!(events[0].actor.id.as_str(), "alice");
        assert_eq!(app.files.file(multipart.id), None);
        assert_eq!(app.objects.open_uploads(), 0, "the open upload is aborted");
        // The same event again (a duplicate delivery): nothing left to do, nothing written.
        assert!(deliver(&app, &[&deleted_event()]).await.is_empty());
        assert_eq!(app.files.events().len(), 1);
    }

    #[tokio::test]
    async fn an_upload_never_completed_is_confirmed_when_its_bytes_are_right() {
        let app = app();
        let f = file(&app, FileStatus::Pending, 3);
        app.objects.upload(&f.key, b"abc".to_vec(), None);
        let body = check(f.id, Timestamp::now());
        assert!(deliver(&app, &[&body]).await.is_empty());
        let stored = app.files.file(f.id).unwrap();
        assert_eq!(stored.status, FileStatus::Available);
        assert_eq!(app.objects.is_pending(&f.key), Some(false), "untagged");
        let events = app.files.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, EventType::FileUploaded);
        assert_eq!(events[0].actor.id, f.created.by, "by its uploader");
        // A duplicate of the check finds it available and leaves it.
        assert!(deliver(&app, &[&body]).await.is_empty());
        assert_eq!(app.files.events().len(), 1);
    }

    #[tokio::test]
    async fn an_abandoned_or_wrong_upload_is_removed_without_an_event() {
        let app = app();
        let nothing = file(&app, FileStatus::Pending, 3);
        let wrong = file(&app, FileStatus::Pending, 3);
        app.objects.upload(&wrong.key, b"abcdef".to_vec(), None);
        let failed = deliver(
            &app,
            &[
                &check(nothing.id, Timestamp::now()),
                &check(wrong.id, Timestamp::now()),
            ],
        )
        .await;
        assert!(failed.is_empty());
        assert_eq!(
            (app.files.file(nothing.id), app.files.file(wrong.id)),
            (None, None)
        );
        assert_eq!(app.objects.bytes(&wrong.key), None);
        assert!(app.files.events().is_empty());
        // A check for a file deleted meanwhile is acknowledged.
        assert!(
            deliver(&app, &[&check(FileId::new(), Timestamp::now())])
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_check_too_early_comes_back_later() {
        let app = app();
        let f = file(&app, FileStatus::Pending, 3);
        let later = Timestamp::now().plus_seconds(3600);
        assert!(deliver(&app, &[&check(f.id, later)]).await.is_empty());
        let sent = app.tasks.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, check(f.id, later));
        assert_eq!(sent[0].1, 900, "the longest SQS delay");
        assert_eq!(
            app.files.file(f.id).map(|f| f.status),
            Some(FileStatus::Pending)
        );
    }

    #[tokio::test]
    async fn poison_is_parked_and_an_outage_fails_only_its_message() {
        let app = app();
        let f = file(&app, FileStatus::Pending, 3);
        app.objects.upload(&f.key, b"abc".to_vec(), None);
        let job_event = include_str!("../../../events/domain/job.created.json");
        let failed = deliver(&app, &["{", job_event]).await;
        assert!(failed.is_empty(), "{failed:?}");
        // A job event is not poison for this queue's parser, just not this worker's.
        assert_eq!(app.dead_letters.parked().len(), 1);
        app.objects.set_down(true);
        let early = check(f.id, Timestamp::now().plus_seconds(60));
        let failed = deliver(&app, &[&check(f.id, Timestamp::now()), &early]).await;
        assert_eq!(failed, ["m0"], "the check that needed the bucket");
        assert_eq!(
            app.files.file(f.id).map(|f| f.status),
            Some(FileStatus::Pending)
        );
        app.objects.set_down(false);
        assert!(
            deliver(&app, &[&check(f.id, Timestamp::now())])
                .await
                .is_empty()
        );
        assert_eq!(
            app.files.file(f.id).map(|f| f.status),
            Some(FileStatus::Available)
        );
    }
}
