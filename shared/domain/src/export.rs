//! Audit exports: an admin asks for every activity entry matching the filters of
//! `GET /activity`; the export worker writes them to the bucket as JSON Lines and CSV, part by
//! part, and the export ends with its download links, a notification to the requester and an
//! entry of its own in the log (`activity.exported`). No I/O here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::activity::ActivityEntry;
use crate::actor::{Actor, UserId};
use crate::episode::Person;
use crate::event::{DomainEvent, EventType, ResourceKind, ResourceRef};
use crate::ids::{CorrelationId, EpisodeId, EventId, ExportId, uuid_v7_bounds};
use crate::store::activity::ActivityQuery;
use crate::time::Timestamp;

/// How long an export (its record and its files) is kept unless the template says otherwise
/// (`ExportRetentionDays`): longer than the entries it holds (`ActivityRetentionDays`, 365).
pub const DEFAULT_RETENTION_DAYS: u32 = 730;
/// How long a download link handed out is valid.
pub const LINK_SECONDS: u64 = 3600;
/// The bytes of a file buffered before they are uploaded as one part: S3's parts are at least
/// 5 MiB (but the last), and the memory an export takes is about two of these.
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// Entries read from the log per query (with a filter, a page may hold fewer).
pub const PAGE_ENTRIES: u16 = 1000;
/// S3's smallest part but the last, and its most parts: a file holds at most
/// `PART_BYTES` × 10,000 bytes (80 GB).
pub const S3_MIN_PART_BYTES: usize = 5 * 1024 * 1024;
const _: () = assert!(PART_BYTES >= S3_MIN_PART_BYTES);

/// Which entries an export holds: the filters of `GET /activity`, and an episode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportFilters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode_id: Option<EpisodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<EventType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<ResourceKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Entries at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Timestamp>,
    /// Entries at or before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
}

impl ExportFilters {
    /// The log query of one page of it, from `after` on, newest first.
    pub fn query(&self, after: Option<(String, String)>) -> ActivityQuery {
        ActivityQuery {
            episode: self.episode_id,
            actor: self.actor.clone(),
            action: self.action,
            resource_type: self.resource_type.map(|k| k.as_str().to_owned()),
            resource_id: self.resource_id.clone(),
            from_id: self.from.map(|t| uuid_v7_bounds(t).0),
            to_id: self.to.map(|t| uuid_v7_bounds(t).1),
            limit: PAGE_ENTRIES,
            after,
        }
    }
}

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    /// Asked for; the worker has not started.
    Queued,
    Running,
    /// Its files are written: downloads are offered.
    Succeeded,
    /// It could not be written; `error` says why.
    Failed,
}

impl ExportState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|t| t.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// The two files of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ExportFormat {
    /// One entry per line, as `GET /activity` serves it: the exact record.
    #[serde(rename = "jsonl")]
    JsonLines,
    /// One entry per row; metadata as a JSON cell. Cells that a spreadsheet would run as a
    /// formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) are prefixed with `'`.
    #[serde(rename = "csv")]
    Csv,
}

impl ExportFormat {
    pub const ALL: [Self; 2] = [Self::JsonLines, Self::Csv];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::JsonLines => "jsonl",
            Self::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::JsonLines => "application/x-ndjson",
            Self::Csv => "text/csv",
        }
    }

    /// The object key of this file of the export.
    pub fn key(self, id: ExportId) -> String {
        format!("exports/{id}/{}", self.file_name(id))
    }

    /// The name a download saves it under.
    pub fn file_name(self, id: ExportId) -> String {
        format!("activity-{id}.{}", self.as_str())
    }

    /// What opens the file: the CSV's header row, nothing for JSON Lines.
    pub fn head(self) -> &'static str {
        match self {
            Self::JsonLines => "",
            Self::Csv => CSV_HEADER,
        }
    }

    /// One entry as this format writes it, line end included.
    pub fn line(self, entry: &ActivityEntry) -> String {
        match self {
            Self::JsonLines => format!("{}\n", entry.to_json()),
            Self::Csv => csv_row(entry),
        }
    }
}

/// The CSV's columns.
pub const CSV_HEADER: &str = "id,occurred_at,action,actor_id,actor_name,resource_type,resource_id,episode_id,summary,request_id,correlation_id,metadata\r\n";

fn csv_cell(out: &mut String, text: &str) {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = risky || text.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if risky {
        out.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// One entry as a CSV row (RFC 4180: quoted where needed, CRLF).
pub fn csv_row(e: &ActivityEntry) -> String {
    let cells = [
        e.event_id.to_string(),
        e.occurred_at.to_string(),
        e.action.as_str().to_owned(),
        e.actor.id.as_str().to_owned(),
        e.actor.name.as_str().to_owned(),
        e.resource.kind.as_str().to_owned(),
        e.resource.id.clone(),
        e.episode_id.map(|ep| ep.to_string()).unwrap_or_default(),
        e.summary.clone(),
        e.request_id.clone().unwrap_or_default(),
        e.correlation_id.as_str().to_owned(),
        e.metadata.to_string(),
    ];
    let mut row = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            row.push(',');
        }
        csv_cell(&mut row, cell);
    }
    row.push_str("\r\n");
    row
}

/// One written file of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    pub format: ExportFormat,
    pub bytes: u64,
}

/// How an export ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written {
        entries: u64,
        files: Vec<ExportFile>,
    },
    Failed {
        error: String,
    },
}

/// An export of the activity log, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityExport {
    pub id: ExportId,
    pub requested_by: Actor,
    pub filters: ExportFilters,
    pub state: ExportState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The entries written (once it succeeded).
    pub entries: u64,
    pub files: Vec<ExportFile>,
    pub error: Option<String>,
    /// The id of its own entry in the log and of the requester's notification: chosen when it
    /// finishes, so that telling them again writes the same ones.
    pub audit_id: Option<EventId>,
    pub correlation_id: CorrelationId,
    pub request_id: Option<String>,
    /// When the record and its files may be deleted.
    pub expires_at: Timestamp,
}

/// A download link of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(rename = "ExportDownload")]
pub struct Download {
    pub format: ExportFormat,
    pub url: String,
    pub bytes: u64,
    pub expires_at: Timestamp,
}

/// An export as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "ActivityExport")]
pub struct ExportBody {
    pub id: ExportId,
    pub state: ExportState,
    pub filters: ExportFilters,
    pub requested_by: Person,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The entries it holds, once it succeeded.
    pub entries: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Fresh links to its files (valid for an hour), once it succeeded.
    pub downloads: Vec<Download>,
    /// When the export and its files are deleted.
    pub expires_at: Timestamp,
}

/// A TTL is whole seconds: the expiry is kept as the store keeps it.
fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_unix_seconds(t.unix_seconds()).unwrap_or(t)
}

impl ActivityExport {
    /// A new export, queued.
    pub fn requested(
        requested_by: Actor,
        filters: ExportFilters,
        context: (CorrelationId, Option<String>),
        now: Timestamp,
        retention_days: u32,
    ) -> Self {
        Self {
            id: ExportId::new(),
            requested_by,
            filters,
            state: ExportState::Queued,
            created_at: now,
            updated_at: now,
            entries: 0,
            files: Vec::new(),
            error: None,
            audit_id: None,
            correlation_id: context.0,
            request_id: context.1,
            expires_at: whole_seconds(now.plus_days(i64::from(retention_days))),
        }
    }

    /// The export as it is once the worker has it.
    pub fn running(&self, now: Timestamp) -> Self {
        Self {
            state: ExportState::Running,
            updated_at: now,
            ..self.clone()
        }
    }

    /// The export as it ends.
    pub fn finished(&self, outcome: Outcome, now: Timestamp) -> Self {
        let mut done = Self {
            updated_at: now,
            audit_id: Some(EventId::new()),
            ..self.clone()
        };
        match outcome {
            Outcome::Written { entries, files } => {
                done.state = ExportState::Succeeded;
                done.entries = entries;
                done.files = files;
            }
            Outcome::Failed { error } => {
                done.state = ExportState::Failed;
                done.error = Some(error);
            }
        }
        done
    }

    /// Its own event (`activity.exported`), once finished: what the log records and the
    /// requester is told. Never in the outbox: the worker writes its entry and notification.
    pub fn event(&self) -> Option<DomainEvent> {
        let id = self.audit_id?;
        Some(DomainEvent {
            id,
            event_type: EventType::ActivityExported,
            schema_version: EventType::ActivityExported.schema_version(),
            occurred_at: self.updated_at,
            actor: self.requested_by.clone(),
            resource: ResourceRef {
                kind: ResourceKind::Export,
                id: self.id.to_string(),
            },
            episode_id: None,
            correlation_id: self.correlation_id.clone(),
            request_id: self.request_id.clone(),
            data: json!({ "export": self.summary_json() }),
        })
    }

    fn summary_json(&self) -> Value {
        json!({
            "id": self.id,
            "state": self.state,
            "filters": self.filters,
            "entries": self.entries,
            "error": self.error,
            "href": format!("/activity/exports/{}", self.id),
        })
    }

    /// The export as the API serves it, with the links handed out for its files.
    pub fn body(&self, downloads: Vec<Download>) -> ExportBody {
        ExportBody {
            id: self.id,
            state: self.state,
            filters: self.filters.clone(),
            requested_by: Person {
                id: self.requested_by.id.clone(),
                name: self.requested_by.name.clone(),
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
            entries: (self.state == ExportState::Succeeded).then_some(self.entries),
            error: self.error.clone(),
            downloads,
            expires_at: self.expires_at,
        }
    }

    pub fn to_json(&self, downloads: Vec<Download>) -> Value {
        serde_json::to_value(self.body(downloads)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{DisplayName, Role};

    fn root() -> Actor {
        Actor {
            id: UserId::parse("root").unwrap(),
            name: DisplayName::new("Root"),
            role: Role::Admin,
        }
    }

    fn golden() -> ActivityEntry {
        let event: DomainEvent =
            serde_json::from_str(include_str!("../../../events/domain/episode.updated.json"))
                .unwrap();
        ActivityEntry::from_event(&event, Some("S2E4"))
    }

    #[test]
    fn csv_rows_quote_what_needs_it_and_defuse_formulas() {
        let mut e = golden();
        e.summary = "=HYPERLINK(\"x\"), said \"Bob\"".into();
        let row = csv_row(&e);
        assert!(row.ends_with("\r\n"));
        assert!(
            row.contains(r#","'=HYPERLINK(""x""), said ""Bob""","#),
            "{row}"
        );
        assert_eq!(
            CSV_HEADER.split(',').count(),
            12,
            "one column per cell written"
        );
        let mut plain = String::new();
        csv_cell(&mut plain, "S2E4");
        assert_eq!(plain, "S2E4");
    }

    #[test]
    fn json_lines_are_the_entries_as_the_api_serves_them() {
        let e = golden();
        let line = ExportFormat::JsonLines.line(&e);
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e.to_json());
    }

    #[test]
    fn an_export_ends_once_with_its_own_event_about_no_episode() {
        let filters = ExportFilters {
            action: Some(EventType::EpisodeUpdated),
            ..Default::default()
        };
        let now = Timestamp::now();
        let asked = ActivityExport::requested(
            root(),
            filters,
            (CorrelationId::generate(), None),
            now,
            DEFAULT_RETENTION_DAYS,
        );
        assert_eq!(asked.state, ExportState::Queued);
        assert!(asked.event().is_none(), "nothing to tell before it ends");
        assert_eq!(
            asked.expires_at.unix_seconds(),
            now.plus_days(730).unix_seconds()
        );
        let done = asked.running(now).finished(
            Outcome::Written {
                entries: 3,
                files: vec![ExportFile {
                    format: ExportFormat::Csv,
                    bytes: 10,
                }],
            },
            now,
        );
        assert_eq!(done.state, ExportState::Succeeded);
        let event = done.event().unwrap();
        assert_eq!(event.event_type, EventType::ActivityExported);
        assert_eq!(event.episode_id, None);
        assert_eq!(event.actor.id, root().id);
        assert_eq!(event.data["export"]["entries"], 3);
        let entry = ActivityEntry::from_event(&event, None);
        assert_eq!(entry.summary, "Root exported 3 activity entries");
        let failed = asked.finished(
            Outcome::Failed {
                error: "the log is unavailable".into(),
            },
            now,
        );
        let entry = ActivityEntry::from_event(&failed.event().unwrap(), None);
        assert_eq!(
            entry.summary,
            "Root's export of the activity log failed: the log is unavailable"
        );
    }

    #[test]
    fn the_query_is_the_filters_page_by_page() {
        let t = Timestamp::parse("2026-01-02T03:04:05Z").unwrap();
        let f = ExportFilters {
            from: Some(t),
            to: Some(t),
            resource_type: Some(ResourceKind::Job),
            ..Default::default()
        };
        let q = f.query(Some(("e".into(), "x".into())));
        assert_eq!(q.from_id, Some(uuid_v7_bounds(t).0));
        assert_eq!(q.to_id, Some(uuid_v7_bounds(t).1));
        assert_eq!(q.resource_type.as_deref(), Some("job"));
        assert_eq!(q.limit, PAGE_ENTRIES);
        assert_eq!(q.after, Some(("e".into(), "x".into())));
    }
}
