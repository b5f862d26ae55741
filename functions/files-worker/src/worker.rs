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
    let files = app.files.all_of(deleted.episode_id).await?;
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
    tracing::info!(episode_id = %deleted.episode_id, files = files.len(), "episode's files deleted");
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
        let mut done = file.clone();
        done.status = FileStatus::Available;
        done.available_at = Some(now);
        done.upload_id = None;
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
