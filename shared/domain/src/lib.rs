//! The episodes domain: entities, validated values, the status state machine and the domain
//! events that every change produces. Nothing in here does I/O or knows about AWS; adapters
//! implement the store traits in [`store`].

pub mod activity;
pub mod actor;
pub mod analytics;
pub mod episode;
pub mod event;
pub mod export;
pub mod file;
pub mod ids;
pub mod job;
pub mod notification;
pub mod realtime;
pub mod routing;
pub mod schema;
pub mod search;
pub mod store;
pub mod time;
pub mod upload_rules;
pub mod validation;

pub use activity::{ActivityBody, ActivityEntry};
pub use actor::{Actor, DisplayName, Role, UserId};
pub use episode::{
    AirDate, Description, Episode, EpisodeBody, EpisodeChanges, EpisodeDeletion, EpisodeStatus,
    EpisodeUpdate, NewEpisode, Person, PositiveNumber, Rejection, SeriesName, Stamp, Title,
    Version,
};
pub use event::{DomainEvent, EventContext, EventType, ResourceKind, ResourceRef};
pub use file::{
    ContentType, EpisodeFile, FileBody, FileName, FileSize, FileStatus, FileTask, FilesMessage,
    NewFile, Sha256, UploadPlan,
};
pub use ids::{
    CorrelationId, EpisodeId, EventId, ExportId, FileId, InvalidId, JobId, uuid_v7_bounds,
};
pub use job::{Job, JobBody, JobMessage, JobParams, JobState, JobType, JobWork};
pub use notification::{Audience, Notification, NotificationBody, Preferences};
pub use realtime::{ConnectionId, Frame, Notice, Presence, RealtimeMessage, UserRef, Viewer};
pub use routing::{Queue, queues_for};
pub use time::Timestamp;
pub use validation::{FieldError, ValidationErrors, whole_number};
