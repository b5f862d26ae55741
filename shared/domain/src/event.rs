//! Domain events: what happened, written in the same transaction as the change itself (the
//! outbox), relayed to the workers from the events table's stream.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::actor::Actor;
use crate::episode::{Episode, EpisodeDeletion, EpisodeUpdate};
use crate::file::EpisodeFile;
use crate::ids::{CorrelationId, EpisodeId, EventId};
use crate::job::Job;
use crate::time::Timestamp;

/// Every event type the system emits. A consumer that meets a type it does not know fails
/// that message (it ends in a dead-letter queue) instead of guessing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum EventType {
    #[serde(rename = "episode.created")]
    EpisodeCreated,
    #[serde(rename = "episode.updated")]
    EpisodeUpdated,
    #[serde(rename = "episode.deleted")]
    EpisodeDeleted,
    #[serde(rename = "file.uploaded")]
    FileUploaded,
    #[serde(rename = "file.downloaded")]
    FileDownloaded,
    #[serde(rename = "file.deleted")]
    FileDeleted,
    #[serde(rename = "job.created")]
    JobCreated,
    #[serde(rename = "job.started")]
    JobStarted,
    #[serde(rename = "job.progress")]
    JobProgress,
    #[serde(rename = "job.succeeded")]
    JobSucceeded,
    #[serde(rename = "job.retry_scheduled")]
    JobRetryScheduled,
    #[serde(rename = "job.failed")]
    JobFailed,
    #[serde(rename = "job.cancelled")]
    JobCancelled,
    #[serde(rename = "job.retried")]
    JobRetried,
    /// An export of the activity log ended (succeeded or failed): the log's own event, about
    /// no episode, written by the export worker (never through the outbox).
    #[serde(rename = "activity.exported")]
    ActivityExported,
}

impl EventType {
    /// Every event type, in the order they are declared.
    pub const ALL: [Self; 15] = [
        Self::EpisodeCreated,
        Self::EpisodeUpdated,
        Self::EpisodeDeleted,
        Self::FileUploaded,
        Self::FileDownloaded,
        Self::FileDeleted,
        Self::JobCreated,
        Self::JobStarted,
        Self::JobProgress,
        Self::JobSucceeded,
        Self::JobRetryScheduled,
        Self::JobFailed,
        Self::JobCancelled,
        Self::JobRetried,
        Self::ActivityExported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::EpisodeCreated => "episode.created",
            Self::EpisodeUpdated => "episode.updated",
            Self::EpisodeDeleted => "episode.deleted",
            Self::FileUploaded => "file.uploaded",
            Self::FileDownloaded => "file.downloaded",
            Self::FileDeleted => "file.deleted",
            Self::JobCreated => "job.created",
            Self::JobStarted => "job.started",
            Self::JobProgress => "job.progress",
            Self::JobSucceeded => "job.succeeded",
            Self::JobRetryScheduled => "job.retry_scheduled",
            Self::JobFailed => "job.failed",
            Self::JobCancelled => "job.cancelled",
            Self::JobRetried => "job.retried",
            Self::ActivityExported => "activity.exported",
        }
    }

    /// The schema version of this type's `data` that producers write today.
    pub fn schema_version(self) -> u16 {
        1
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Episode,
    File,
    Job,
    /// An export of the activity log.
    Export,
}

impl ResourceKind {
    /// Its name on the wire and in the activity log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Episode => "episode",
            Self::File => "file",
            Self::Job => "job",
            Self::Export => "export",
        }
    }
}

/// The thing an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceRef {
    #[serde(rename = "type")]
    pub kind: ResourceKind,
    pub id: String,
}

/// Who caused the events of one request, and how to tie them together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventContext {
    pub actor: Actor,
    pub correlation_id: CorrelationId,
    pub request_id: Option<String>,
}

/// One domain event, as stored in the events table and as sent to the queues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainEvent {
    pub id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub schema_version: u16,
    pub occurred_at: Timestamp,
    pub actor: Actor,
    pub resource: ResourceRef,
    /// The episode it is about; none for the log's own events (`activity.exported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode_id: Option<EpisodeId>,
    pub correlation_id: CorrelationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub data: Value,
}

impl DomainEvent {
    /// Parses a queue message: a known event type at the schema version this code reads.
    /// Anything else is refused with the reason (consumers park it in a dead-letter queue).
    pub fn from_message(body: &str) -> Result<Self, String> {
        let event: Self =
            serde_json::from_str(body).map_err(|e| format!("not a known event: {e}"))?;
        let supported = event.event_type.schema_version();
        if event.schema_version != supported {
            return Err(format!(
                "{} schema version {} is not supported (this consumer reads {supported})",
                event.event_type, event.schema_version
            ));
        }
        Ok(event)
    }

    fn about_episode(
        ctx: &EventContext,
        event_type: EventType,
        episode_id: EpisodeId,
        occurred_at: Timestamp,
        data: Value,
    ) -> Self {
        let resource = ResourceRef {
            kind: ResourceKind::Episode,
            id: episode_id.to_string(),
        };
        Self::about(ctx, event_type, resource, episode_id, occurred_at, data)
    }

    fn about(
        ctx: &EventContext,
        event_type: EventType,
        resource: ResourceRef,
        episode_id: EpisodeId,
        occurred_at: Timestamp,
        data: Value,
    ) -> Self {
        Self {
            id: EventId::new(),
            event_type,
            schema_version: event_type.schema_version(),
            occurred_at,
            actor: ctx.actor.clone(),
            resource,
            episode_id: Some(episode_id),
            correlation_id: ctx.correlation_id.clone(),
            request_id: ctx.request_id.clone(),
            data,
        }
    }

    /// `episode.created`: the whole new episode.
    pub fn episode_created(ctx: &EventContext, episode: &Episode) -> Self {
        Self::about_episode(
            ctx,
            EventType::EpisodeCreated,
            episode.id,
            episode.created.at,
            json!({ "episode": episode.to_json() }),
        )
    }

    /// `episode.updated`: the changed fields with their new values, and the new version.
    pub fn episode_updated(ctx: &EventContext, update: &EpisodeUpdate) -> Self {
        Self::about_episode(
            ctx,
            EventType::EpisodeUpdated,
            update.id,
            update.updated.at,
            json!({
                "changes": update.changes.to_json(),
                "version": update.new_version().get(),
            }),
        )
    }

    fn about_file(
        ctx: &EventContext,
        event_type: EventType,
        file: &EpisodeFile,
        at: Timestamp,
    ) -> Self {
        let resource = ResourceRef {
            kind: ResourceKind::File,
            id: file.id.to_string(),
        };
        let data = json!({ "file": file.to_json() });
        Self::about(ctx, event_type, resource, file.episode_id, at, data)
    }

    /// `file.uploaded`: the file, now available.
    pub fn file_uploaded(ctx: &EventContext, file: &EpisodeFile, at: Timestamp) -> Self {
        Self::about_file(ctx, EventType::FileUploaded, file, at)
    }

    /// `file.downloaded`: who fetched which file (a download URL was handed out).
    pub fn file_downloaded(ctx: &EventContext, file: &EpisodeFile, at: Timestamp) -> Self {
        Self::about_file(ctx, EventType::FileDownloaded, file, at)
    }

    /// `file.deleted`: the file as it was.
    pub fn file_deleted(ctx: &EventContext, file: &EpisodeFile, at: Timestamp) -> Self {
        Self::about_file(ctx, EventType::FileDeleted, file, at)
    }

    /// An event about a job: the job as it is after the move, and `extra` details.
    pub fn about_job(
        ctx: &EventContext,
        event_type: EventType,
        job: &Job,
        at: Timestamp,
        extra: Value,
    ) -> Self {
        let resource = ResourceRef {
            kind: ResourceKind::Job,
            id: job.id.to_string(),
        };
        let mut data = json!({ "job": job.to_json() });
        if let (Value::Object(d), Value::Object(e)) = (&mut data, extra) {
            d.extend(e);
        }
        Self::about(ctx, event_type, resource, job.episode_id, at, data)
    }

    /// `episode.deleted`.
    pub fn episode_deleted(ctx: &EventContext, deletion: &EpisodeDeletion) -> Self {
        Self::about_episode(
            ctx,
            EventType::EpisodeDeleted,
            deletion.id,
            deletion.deleted.at,
            json!({}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EpisodeStatus;
    use crate::actor::{DisplayName, Role, UserId};
    use crate::episode::{Description, EpisodeChanges, NewEpisode, Stamp, Title, Version};

    fn ctx() -> EventContext {
        EventContext {
            actor: Actor {
                id: UserId::parse("alice").unwrap(),
                name: DisplayName::new("Alice"),
                role: Role::Editor,
            },
            correlation_id: CorrelationId::parse("corr-1").unwrap(),
            request_id: Some("req-1".into()),
        }
    }

    #[test]
    fn updated_event_carries_changes_actor_and_version() {
        let ctx = ctx();
        let update = EpisodeUpdate {
            id: EpisodeId::new(),
            expected: Version::new(3).unwrap(),
            changes: EpisodeChanges {
                status: Some(EpisodeStatus::InReview),
                ..Default::default()
            },
            updated: Stamp::new(&ctx.actor, Timestamp::now()),
        };
        let event = DomainEvent::episode_updated(&ctx, &update);
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["type"], "episode.updated");
        assert_eq!(v["schema_version"], 1);
        assert_eq!(
            v["actor"],
            json!({"id": "alice", "name": "Alice", "role": "editor"})
        );
        assert_eq!(
            v["resource"],
            json!({"type": "episode", "id": update.id.to_string()})
        );
        assert_eq!(
            v["data"],
            json!({"changes": {"status": "in_review"}, "version": 4})
        );
        assert_eq!(v["correlation_id"], "corr-1");
        let back: DomainEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, event);
    }

    /// The golden example of each event type in `events/domain/` (taken from a real run of the
    /// local stack). The match is exhaustive: a new event type does not compile without one.
    fn golden(t: EventType) -> &'static str {
        match t {
            EventType::EpisodeCreated => {
                include_str!("../../../events/domain/episode.created.json")
            }
            EventType::EpisodeUpdated => {
                include_str!("../../../events/domain/episode.updated.json")
            }
            EventType::EpisodeDeleted => {
                include_str!("../../../events/domain/episode.deleted.json")
            }
            EventType::FileUploaded => include_str!("../../../events/domain/file.uploaded.json"),
            EventType::FileDownloaded => {
                include_str!("../../../events/domain/file.downloaded.json")
            }
            EventType::FileDeleted => include_str!("../../../events/domain/file.deleted.json"),
            EventType::JobCreated => include_str!("../../../events/domain/job.created.json"),
            EventType::JobStarted => include_str!("../../../events/domain/job.started.json"),
            EventType::JobProgress => include_str!("../../../events/domain/job.progress.json"),
            EventType::JobSucceeded => include_str!("../../../events/domain/job.succeeded.json"),
            EventType::JobRetryScheduled => {
                include_str!("../../../events/domain/job.retry_scheduled.json")
            }
            EventType::JobFailed => include_str!("../../../events/domain/job.failed.json"),
            EventType::JobCancelled => include_str!("../../../events/domain/job.cancelled.json"),
            EventType::JobRetried => include_str!("../../../events/domain/job.retried.json"),
            EventType::ActivityExported => {
                include_str!("../../../events/domain/activity.exported.json")
            }
        }
    }

    #[test]
    fn every_event_type_has_a_golden_example_that_parses_and_round_trips() {
        for t in EventType::ALL {
            let text = golden(t);
            let event = DomainEvent::from_message(text).unwrap_or_else(|e| panic!("{t}: {e}"));
            assert_eq!(
                event.event_type, t,
                "events/domain/{t}.json holds another type"
            );
            assert_eq!(event.schema_version, t.schema_version());
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), v, "{t}");
        }
        // ALL lists each type once.
        let mut names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
    }

    #[test]
    fn unknown_event_types_do_not_parse() {
        let ctx = ctx();
        let ep = NewEpisode {
            title: Title::parse("Pilot").unwrap(),
            description: Description::default(),
            series: None,
            season: None,
            number: None,
            air_date: None,
        }
        .into_episode(EpisodeId::new(), &ctx.actor, Timestamp::now());
        let mut v = serde_json::to_value(DomainEvent::episode_created(&ctx, &ep)).unwrap();
        v["type"] = json!("episode.exploded");
        assert!(serde_json::from_value::<DomainEvent>(v).is_err());
    }
}
