//! What the contracts write: files, jobs and their events, built the way the functions do.

use domain::job::Injection;
use domain::{
    Actor, ContentType, CorrelationId, Description, DisplayName, DomainEvent, Episode, EpisodeFile,
    EpisodeId, EventContext, EventType, FileId, FileName, FileSize, FileStatus, Job, JobId,
    JobParams, JobType, NewEpisode, NewFile, Role, Stamp, Timestamp, Title, UserId,
};
use serde_json::json;

/// Who creates the contracts' episodes.
pub const CREATOR: &str = "contracts";

/// A draft episode by [`CREATOR`], labelled `“Contract”`.
pub fn episode() -> Episode {
    NewEpisode {
        title: Title::parse("Contract").unwrap_or_else(|e| panic!("{e}")),
        description: Description::parse("").unwrap_or_else(|e| panic!("{e}")),
        series: None,
        season: None,
        number: None,
        air_date: None,
    }
    .into_episode(EpisodeId::new(), &actor(CREATOR), Timestamp::now())
}

/// The label of [`episode`]'s episodes.
pub const LABEL: &str = "“Contract”";

pub fn actor(user: &str) -> Actor {
    Actor {
        id: UserId::parse(user).unwrap_or_else(|_| UserId::system("contracts")),
        name: DisplayName::new("Contract"),
        role: Role::Admin,
    }
}

pub fn context(user: &str) -> EventContext {
    EventContext {
        actor: actor(user),
        correlation_id: CorrelationId::generate(),
        request_id: None,
    }
}

/// A pending PNG of `episode`.
pub fn file(episode: EpisodeId) -> EpisodeFile {
    NewFile {
        name: FileName::parse("cover.png").unwrap_or_else(|e| panic!("{e}")),
        content_type: ContentType::parse("image/png").unwrap_or_else(|e| panic!("{e}")),
        size: FileSize::new(1234).unwrap_or_else(|e| panic!("{e}")),
        sha256: None,
    }
    .into_file(
        FileId::new(),
        episode,
        Stamp::new(&actor("alice"), Timestamp::now()),
    )
}

/// The same file, available (as a job makes one).
pub fn available(episode: EpisodeId) -> EpisodeFile {
    let now = Timestamp::now();
    let mut f = file(episode);
    f.status = FileStatus::Available;
    f.available_at = Some(now);
    f
}

pub fn uploaded(file: &EpisodeFile) -> DomainEvent {
    DomainEvent::file_uploaded(&context("alice"), file, Timestamp::now())
}

/// A queued checksum job of `user` on `file`.
pub fn job(episode: EpisodeId, file: Option<FileId>, user: &str) -> Job {
    Job::queued(
        JobId::new(),
        episode,
        file,
        JobType::Checksum,
        JobParams::None,
        Stamp::new(&actor(user), Timestamp::now()),
        Injection::default(),
    )
}

pub fn created(job: &Job) -> DomainEvent {
    DomainEvent::about_job(
        &context(job.created.by.as_str()),
        EventType::JobCreated,
        job,
        job.created.at,
        json!({}),
    )
}
