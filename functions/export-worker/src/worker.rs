//! One export: claim it, write its files page by page (each file a multipart upload whose
//! parts are sent as they fill, so memory holds about one part per file), record how it
//! ended, then tell the log and the requester. Telling is idempotent (the export's audit id
//! names the entry and the notification), so a run that stops after the record is written
//! tells them on the next.

use std::time::{Duration, Instant};

use domain::activity::ActivityEntry;
use domain::export::{ActivityExport, ExportFile, ExportFormat, ExportState, Outcome};
use domain::notification::Delivery;
use domain::realtime::Addressed;
use domain::store::activity::{ActivityReader, ActivityWriter};
use domain::store::export::{Exports, download_links};
use domain::store::notification::{Audiences, NotificationWriter};
use domain::store::object::{ObjectParts, ObjectTransfers};
use domain::store::{MessageSender, StoreError};
use domain::{EventType, ExportId, Notice, Timestamp};

/// What the worker needs: the export records (`X`), the log (`A`), the requester's
/// notifications and preferences (`N`), the bucket (`O`) and the realtime queue (`Q`).
#[derive(Debug)]
pub struct App<X, A, N, O, Q> {
    pub exports: X,
    pub activity: A,
    pub notifications: N,
    pub objects: O,
    pub live: Q,
    /// Bytes of a file buffered before they are sent as one part ([`domain::export::PART_BYTES`]).
    pub part_bytes: usize,
}

/// Tries of writing the files before the export fails (the log or the bucket unavailable).
const WRITE_TRIES: u32 = 3;
/// Time kept back before the invocation's deadline to give the uploads up and record the
/// outcome: an export that would run past it fails, saying so, instead of timing out.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);

/// Why the files were not written.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the export did not fit in one run")]
    OutOfTime,
}

/// Runs the export `id`. An error (the export store unavailable) fails the invocation, and
/// the stream sends the record again.
pub async fn run<X, A, N, O, Q>(
    app: &App<X, A, N, O, Q>,
    id: ExportId,
    deadline: Instant,
) -> Result<(), StoreError>
where
    X: Exports + Sync,
    A: ActivityReader + ActivityWriter + Sync,
    N: NotificationWriter + Audiences + Sync,
    O: ObjectParts + ObjectTransfers + Sync,
    Q: MessageSender + Sync,
{
    let Some(stored) = app.exports.get(id).await? else {
        tracing::warn!(export_id = %id, "no such export");
        return Ok(());
    };
    let export = match stored.state {
        ExportState::Queued => {
            let running = stored.running(Timestamp::now());
            if !app.exports.save(&running, ExportState::Queued).await? {
                return Ok(()); // another run has it
            }
            running
        }
        // A run before this one stopped half way: start the files again.
        ExportState::Running => stored,
        // Ended before, perhaps without telling: tell (again; it is idempotent).
        ExportState::Succeeded | ExportState::Failed => return tell(app, &stored).await,
    };
    let outcome = write_with_tries(app, &export, deadline).await;
    let done = export.finished(outcome, Timestamp::now());
    if !app.exports.save(&done, ExportState::Running).await? {
        return Ok(());
    }
    tracing::info!(
        export_id = %id,
        state = done.state.as_str(),
        entries = done.entries,
        "export ended"
    );
    tell(app, &done).await
}

async fn write_with_tries<X, A, N, O, Q>(
    app: &App<X, A, N, O, Q>,
    export: &ActivityExport,
    deadline: Instant,
) -> Outcome
where
    A: ActivityReader + Sync,
    O: ObjectParts + Sync,
{
    for attempt in 1..=WRITE_TRIES {
        match write(app, export, deadline).await {
            Ok((entries, files)) => return Outcome::Written { entries, files },
            Err(WriteError::OutOfTime) => {
                tracing::warn!(export_id = %export.id, "export out of time");
                return Outcome::Failed {
                    error: "the range holds more entries than one export writes in 15 minutes; \
                            export shorter ranges"
                        .into(),
                };
            }
            Err(e) => {
                tracing::warn!(export_id = %export.id, attempt, error = %e, "export not written");
                if attempt < WRITE_TRIES {
                    tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                }
            }
        }
    }
    // The reason the requester reads: what failed, not the internals (logged above).
    Outcome::Failed {
        error: "the activity log or the bucket was unavailable; ask for the export again".into(),
    }
}

/// One file being written: its upload and the bytes not sent yet.
struct FileUpload {
    format: ExportFormat,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: Vec<(u32, String)>,
    bytes: u64,
}

impl FileUpload {
    async fn push(
        &mut self,
        objects: &impl ObjectParts,
        text: &str,
        part_bytes: usize,
    ) -> Result<(), StoreError> {
        self.buffer.extend_from_slice(text.as_bytes());
        self.bytes += text.len() as u64;
        if self.buffer.len() >= part_bytes {
            self.send(objects).await?;
        }
        Ok(())
    }

    async fn send(&mut self, objects: &impl ObjectParts) -> Result<(), StoreError> {
        let number = u32::try_from(self.parts.len() + 1).unwrap_or(u32::MAX);
        let body = std::mem::take(&mut self.buffer);
        let tag = objects
            .send_part(&self.key, &self.upload_id, number, body)
            .await?;
        self.parts.push((number, tag));
        Ok(())
    }
}

/// Writes both files; the entries written and the files.
async fn write<X, A, N, O, Q>(
    app: &App<X, A, N, O, Q>,
    export: &ActivityExport,
    deadline: Instant,
) -> Result<(u64, Vec<ExportFile>), WriteError>
where
    A: ActivityReader + Sync,
    O: ObjectParts + Sync,
{
    let mut files = Vec::new();
    for format in ExportFormat::ALL {
        let key = format.key(export.id);
        let upload_id = match app.objects.begin(&key, format.content_type()).await {
            Ok(id) => id,
            Err(e) => {
                give_up(app, &files).await;
                return Err(e.into());
            }
        };
        files.push(FileUpload {
            format,
            key,
            upload_id,
            buffer: Vec::new(),
            parts: Vec::new(),
            bytes: 0,
        });
    }
    match fill(app, export, &mut files, deadline).await {
        Ok(entries) => Ok((
            entries,
            files
                .iter()
                .map(|f| ExportFile {
                    format: f.format,
                    bytes: f.bytes,
                })
                .collect(),
        )),
        Err(e) => {
            give_up(app, &files).await;
            Err(e)
        }
    }
}

async fn fill<X, A, N, O, Q>(
    app: &App<X, A, N, O, Q>,
    export: &ActivityExport,
    files: &mut [FileUpload],
    deadline: Instant,
) -> Result<u64, WriteError>
where
    A: ActivityReader + Sync,
    O: ObjectParts + Sync,
{
    for f in files.iter_mut() {
        let head = f.format.head();
        f.push(&app.objects, head, app.part_bytes).await?;
    }
    let mut entries = 0u64;
    let mut after = None;
    loop {
        if Instant::now() + DEADLINE_MARGIN >= deadline {
            return Err(WriteError::OutOfTime);
        }
        let page = app.activity.query(&export.filters.query(after)).await?;
        for entry in &page.items {
            entries += 1;
            for f in files.iter_mut() {
                let line = f.format.line(entry);
                f.push(&app.objects, &line, app.part_bytes).await?;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    for f in files.iter_mut() {
        // The last part (S3 takes a last part of any size, an empty one too).
        if !f.buffer.is_empty() || f.parts.is_empty() {
            f.send(&app.objects).await?;
        }
        app.objects.finish(&f.key, &f.upload_id, &f.parts).await?;
    }
    Ok(entries)
}

async fn give_up<X, A, N, O: ObjectParts, Q>(app: &App<X, A, N, O, Q>, files: &[FileUpload]) {
    for f in files {
        if let Err(e) = app.objects.give_up(&f.key, &f.upload_id).await {
            // The bucket's lifecycle rule aborts it after 2 days.
            tracing::warn!(key = %f.key, error = %e, "an export's upload was not aborted");
        }
    }
}

/// The export's entry in the log, and the requester's notification (unless they muted
/// `activity.exported`), pushed to their open connections.
async fn tell<X, A, N, O, Q>(
    app: &App<X, A, N, O, Q>,
    export: &ActivityExport,
) -> Result<(), StoreError>
where
    A: ActivityWriter + Sync,
    N: NotificationWriter + Audiences + Sync,
    O: ObjectTransfers + Sync,
    Q: MessageSender + Sync,
{
    let Some(event) = export.event() else {
        return Ok(());
    };
    let entry = ActivityEntry::from_event(&event, None);
    let left = app.activity.put_batch(std::slice::from_ref(&entry)).await?;
    if !left.is_empty() {
        return Err(StoreError::unavailable(std::io::Error::other(
            "the export's entry was left unwritten",
        )));
    }
    let requester = export.requested_by.id.clone();
    let preferences = app
        .notifications
        .preferences_of(std::slice::from_ref(&requester))
        .await?;
    if preferences
        .get(&requester)
        .is_some_and(|p| !p.wants(EventType::ActivityExported))
    {
        return Ok(());
    }
    let mut delivery = Delivery::single(&event, &requester, "the activity log", &entry.summary);
    if export.state == ExportState::Succeeded {
        // The JSON Lines download (valid for an hour; the export gives fresh ones).
        let link = download_links(&app.objects, export)
            .await?
            .into_iter()
            .find(|d| d.format == ExportFormat::JsonLines)
            .map(|d| d.url);
        for (note, _) in &mut delivery.writes {
            note.link = link.clone();
        }
    }
    let written = app
        .notifications
        .apply(std::slice::from_ref(&delivery))
        .await?;
    if written != [true] {
        return Ok(()); // told before (its receipt is there)
    }
    let items = delivery
        .writes
        .iter()
        .map(|(note, _)| Addressed {
            recipient: requester.clone(),
            notification: note.to_json(),
        })
        .collect();
    if let Err(e) = app
        .live
        .send_all(&[Notice::Notifications { items }.to_body()])
        .await
    {
        // The notification is written; the bell shows it on its next read.
        tracing::warn!(error = %e, "an export's notification was not passed on live");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use domain::export::{ExportFilters, PAGE_ENTRIES};
    use domain::store::memory::{
        InMemoryActivityLog, InMemoryExports, InMemoryNotifications, InMemoryObjects, InMemoryQueue,
    };
    use domain::store::notification::{BellCounts, Inbox};
    use domain::{
        Actor, CorrelationId, DisplayName, DomainEvent, EpisodeId, EventId, ResourceKind,
        ResourceRef, Role, UserId,
    };
    use serde_json::{Value, json};

    use super::*;

    type TestApp = App<
        InMemoryExports,
        InMemoryActivityLog,
        InMemoryNotifications,
        InMemoryObjects,
        InMemoryQueue,
    >;

    fn app(part_bytes: usize) -> TestApp {
        App {
            exports: InMemoryExports::default(),
            activity: InMemoryActivityLog::default(),
            notifications: InMemoryNotifications::default(),
            objects: InMemoryObjects::default(),
            live: InMemoryQueue::default(),
            part_bytes,
        }
    }

    fn person(id: &str, role: Role) -> Actor {
        Actor {
            id: UserId::parse(id).unwrap(),
            name: DisplayName::new(id),
            role,
        }
    }

    /// `count` entries by alice and bob in turn on one episode; the ids, oldest first.
    async fn seed(app: &TestApp, count: usize) -> Vec<EventId> {
        let episode = EpisodeId::new();
        let mut ids = Vec::new();
        let entries: Vec<ActivityEntry> = (0..count)
            .map(|i| {
                let actor = person(if i % 2 == 0 { "alice" } else { "bob" }, Role::Editor);
                let event = DomainEvent {
                    id: EventId::new(),
                    event_type: EventType::EpisodeUpdated,
                    schema_version: 1,
                    occurred_at: Timestamp::now(),
                    actor,
                    resource: ResourceRef {
                        kind: ResourceKind::Episode,
                        id: episode.to_string(),
                    },
                    episode_id: Some(episode),
                    correlation_id: CorrelationId::generate(),
                    request_id: None,
                    data: json!({ "changes": { "status": "in_review" }, "version": i + 2 }),
                };
                ids.push(event.id);
                ActivityEntry::from_event(&event, Some("S1E1"))
            })
            .collect();
        for chunk in entries.chunks(25) {
            app.activity.put_batch(chunk).await.unwrap();
        }
        ids
    }

    async fn requested(app: &TestApp, filters: ExportFilters) -> ExportId {
        let export = ActivityExport::requested(
            person("root", Role::Admin),
            filters,
            (CorrelationId::generate(), None),
            Timestamp::now(),
            730,
        );
        assert!(app.exports.create(&export).await.unwrap());
        export.id
    }

    fn lines(app: &TestApp, id: ExportId, format: ExportFormat) -> Vec<String> {
        let bytes = app.objects.bytes(&format.key(id)).unwrap();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn an_export_writes_every_matching_entry_in_both_formats_and_tells_once() {
        let app = app(domain::export::PART_BYTES);
        let ids = seed(&app, 2 * usize::from(PAGE_ENTRIES) + 7).await;
        let filters = ExportFilters {
            actor: Some(UserId::parse("alice").unwrap()),
            ..Default::default()
        };
        let id = requested(&app, filters).await;
        run(&app, id, far()).await.unwrap();

        let done = app.exports.get(id).await.unwrap().unwrap();
        assert_eq!(done.state, ExportState::Succeeded);
        let alice: Vec<String> = ids.iter().step_by(2).rev().map(|e| e.to_string()).collect();
        assert_eq!(done.entries, alice.len() as u64);
        let jsonl = lines(&app, id, ExportFormat::JsonLines);
        let written: Vec<String> = jsonl
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(written, alice, "every entry of alice's, newest first, once");
        let csv = lines(&app, id, ExportFormat::Csv);
        assert_eq!(csv.len(), alice.len() + 1, "a header and a row each");
        assert!(csv[0].starts_with("id,occurred_at,action"));
        assert!(csv[1].starts_with(&alice[0]));
        let sizes: Vec<u64> = done.files.iter().map(|f| f.bytes).collect();
        assert_eq!(
            sizes,
            [
                app.objects
                    .bytes(&ExportFormat::JsonLines.key(id))
                    .unwrap()
                    .len() as u64,
                app.objects.bytes(&ExportFormat::Csv.key(id)).unwrap().len() as u64,
            ]
        );

        // Its own entry in the log, about no episode, and the requester's notification.
        let root = UserId::parse("root").unwrap();
        let (own, counts) = told(&app, &root).await;
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].episode_id, None);
        assert_eq!(own[0].action, EventType::ActivityExported);
        assert_eq!(
            own[0].summary,
            format!("root exported {} activity entries", alice.len())
        );
        assert_eq!((counts.unread, counts.unseen), (1, 1));
        let page = app
            .notifications
            .list(&root, domain::notification::NoteFilter::Inbox, 10, None)
            .await
            .unwrap();
        let note = &page.items[0];
        assert!(
            note.link
                .as_deref()
                .unwrap()
                .contains(&ExportFormat::JsonLines.key(id))
        );
        assert_eq!(note.episode_id, None);
        assert_eq!(app.live.sent().len(), 1, "pushed live");

        // The stream sends the record again: nothing is written or told twice.
        run(&app, id, far()).await.unwrap();
        let (own, counts) = told(&app, &root).await;
        assert_eq!((own.len(), counts.unread), (1, 1));
        assert_eq!(app.live.sent().len(), 1);
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(900)
    }

    /// The log's own entries, and the requester's counts.
    async fn told(app: &TestApp, root: &UserId) -> (Vec<ActivityEntry>, BellCounts) {
        let own = app
            .activity
            .query(
                &ExportFilters {
                    resource_type: Some(ResourceKind::Export),
                    ..Default::default()
                }
                .query(None),
            )
            .await
            .unwrap();
        (own.items, app.notifications.counts(root).await.unwrap())
    }

    #[tokio::test]
    async fn memory_holds_one_part_per_file_however_long_the_export() {
        let part = 4 * 1024;
        let app = app(part);
        app.objects.set_min_part_bytes(part);
        seed(&app, 600).await;
        let id = requested(&app, ExportFilters::default()).await;
        run(&app, id, far()).await.unwrap();
        let done = app.exports.get(id).await.unwrap().unwrap();
        assert_eq!(done.entries, 600);
        let total: u64 = done.files.iter().map(|f| f.bytes).sum();
        assert!(total > 40 * part as u64, "many parts: {total} bytes");
        // A part is sent once it fills: at most one part plus one line.
        let longest_line = lines(&app, id, ExportFormat::JsonLines)
            .iter()
            .map(String::len)
            .max()
            .unwrap();
        assert!(
            app.objects.largest_part() < part + longest_line + 2,
            "largest part {} of {part}",
            app.objects.largest_part()
        );
        assert_eq!(app.objects.open_uploads(), 0);
    }

    #[tokio::test]
    async fn an_export_that_would_outrun_its_invocation_fails_saying_so() {
        let app = app(domain::export::PART_BYTES);
        seed(&app, 3).await;
        let id = requested(&app, ExportFilters::default()).await;
        run(&app, id, Instant::now() + Duration::from_secs(30))
            .await
            .unwrap();
        let done = app.exports.get(id).await.unwrap().unwrap();
        assert_eq!(done.state, ExportState::Failed);
        assert!(done.error.as_deref().unwrap().contains("shorter ranges"));
        assert_eq!(app.objects.open_uploads(), 0, "its uploads given up");
    }

    #[tokio::test]
    async fn an_export_the_bucket_refuses_fails_and_says_so_once() {
        let app = app(domain::export::PART_BYTES);
        seed(&app, 3).await;
        let id = requested(&app, ExportFilters::default()).await;
        app.objects.set_down(true);
        run(&app, id, far()).await.unwrap();
        app.objects.set_down(false);
        let done = app.exports.get(id).await.unwrap().unwrap();
        assert_eq!(done.state, ExportState::Failed);
        assert!(
            done.error
                .as_deref()
                .unwrap()
                .contains("ask for the export again")
        );
        let root = UserId::parse("root").unwrap();
        let page = app
            .notifications
            .list(&root, domain::notification::NoteFilter::Inbox, 10, None)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].link, None, "nothing to download");
        assert!(page.items[0].summary().contains("failed"));
        assert_eq!(app.objects.open_uploads(), 0, "its uploads given up");
    }
}
