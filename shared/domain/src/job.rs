//! Processing jobs on an episode's files: their types, their states and the moves between
//! them (one table), retry timing, and the events every move produces. No I/O here.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::episode::Stamp;
use crate::file::{ContentType, MediaKind};
use crate::ids::{EpisodeId, FileId, JobId};
use crate::time::Timestamp;
use crate::validation::FieldError;

/// Attempts a job gets before it fails for good: the one place this is set.
pub const MAX_ATTEMPTS: u32 = 3;
/// First retry delay; doubled per attempt, with full jitter, capped at [`RETRY_DELAY_CAP_SECONDS`].
pub const RETRY_BASE_SECONDS: u32 = 2;
pub const RETRY_DELAY_CAP_SECONDS: u32 = 300;
/// How long an `Idempotency-Key` names the same job.
pub const IDEMPOTENCY_HOURS: i64 = 24;

/// What a job does. Each has one implementation in the job worker's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobType {
    /// Streams the file and records its SHA-256 and size.
    #[serde(rename = "checksum")]
    Checksum,
    /// Reads container and codec metadata (duration, codec, sample rate, channels, ...).
    #[serde(rename = "media-probe")]
    MediaProbe,
    /// Writes a resized copy of an image as a new file of the episode.
    #[serde(rename = "thumbnail")]
    Thumbnail,
}

impl JobType {
    pub const ALL: [Self; 3] = [Self::Checksum, Self::MediaProbe, Self::Thumbnail];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checksum => "checksum",
            Self::MediaProbe => "media-probe",
            Self::Thumbnail => "thumbnail",
        }
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "type",
                    "is not a job type; expected checksum, media-probe or thumbnail",
                )
            })
    }

    /// Whether a file of this content type can be processed by this job.
    pub fn accepts(self, content_type: ContentType) -> bool {
        match self {
            Self::Checksum => true,
            Self::MediaProbe => matches!(content_type.kind(), MediaKind::Audio | MediaKind::Video),
            Self::Thumbnail => content_type.kind() == MediaKind::Image,
        }
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thumbnail size bounds.
pub const THUMBNAIL_MIN: u32 = 16;
pub const THUMBNAIL_MAX: u32 = 2048;

/// Validated job parameters, per type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobParams {
    None,
    /// The longest side of the thumbnail, in pixels.
    Thumbnail {
        max_size: u32,
    },
}

impl JobParams {
    /// Parses `params` for `job_type`; unknown keys and out-of-range values are refused.
    /// The test hooks (`inject_failures`, `inject_pause_seconds`) are accepted only when
    /// `allow_fault_injection`.
    pub fn parse(
        job_type: JobType,
        params: &Value,
        allow_fault_injection: bool,
    ) -> Result<(Self, Injection), FieldError> {
        let empty = serde_json::Map::new();
        let map = match params {
            Value::Null => &empty,
            Value::Object(m) => m,
            _ => return Err(FieldError::new("params", "must be an object")),
        };
        let mut allowed: Vec<&str> = match job_type {
            JobType::Thumbnail => vec!["max_size"],
            _ => vec![],
        };
        if allow_fault_injection {
            allowed.extend(["inject_failures", "inject_pause_seconds"]);
        }
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(FieldError::new(
                format!("params.{k}"),
                "is not a parameter of this job type",
            ));
        }
        let number = |key: &str, min: u64, max: u64, default: u64| -> Result<u64, FieldError> {
            match map.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_u64()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        FieldError::new(
                            format!("params.{key}"),
                            format!("must be an integer from {min} to {max}"),
                        )
                    }),
            }
        };
        let injection = Injection {
            failures: u32::try_from(number("inject_failures", 0, 10, 0)?).unwrap_or(0),
            pause_seconds: u32::try_from(number("inject_pause_seconds", 0, 60, 0)?).unwrap_or(0),
        };
        let parsed = match job_type {
            JobType::Thumbnail => Self::Thumbnail {
                max_size: u32::try_from(number(
                    "max_size",
                    u64::from(THUMBNAIL_MIN),
                    u64::from(THUMBNAIL_MAX),
                    256,
                )?)
                .unwrap_or(256),
            },
            _ => Self::None,
        };
        Ok((parsed, injection))
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::None => json!({}),
            Self::Thumbnail { max_size } => json!({ "max_size": max_size }),
        }
    }
}

/// Test hooks, enabled by configuration on test stacks only: the first `failures` attempts
/// fail with a retryable error; every attempt pauses `pause_seconds` before its work (then
/// passes a checkpoint), so a test can cancel a running job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Injection {
    pub failures: u32,
    pub pause_seconds: u32,
}

/// A job's state. Moves are in [`JobState::can_move_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The one table of legal moves:
    /// `queued → running → succeeded | retrying → running … | failed`; `queued`, `running`
    /// and `retrying` may be cancelled; `failed` and `cancelled` may be retried (→ `queued`).
    /// A running job whose worker died is claimed again (`running → running`).
    pub fn can_move_to(self, next: Self) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Queued, Running)
                | (Running, Running)
                | (Running, Succeeded)
                | (Running, Retrying)
                | (Running, Failed)
                | (Retrying, Running)
                | (Queued | Running | Retrying, Cancelled)
                | (Failed | Cancelled, Queued)
        )
    }

    /// The states a job can be moved to `next` from (for conditional writes).
    pub fn reachable_from(next: Self) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|s| s.can_move_to(next))
            .collect()
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A processing job, as stored and served.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub episode_id: EpisodeId,
    pub file_id: Option<FileId>,
    pub job_type: JobType,
    pub params: JobParams,
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    pub progress: u8,
    pub error: Option<String>,
    pub result: Option<Value>,
    pub created: Stamp,
    pub updated_at: Timestamp,
    /// A cancel was asked for while running: the worker stops at its next checkpoint.
    pub cancel_requested: bool,
    /// Test hooks (see [`Injection`]).
    pub inject: Injection,
}

impl Job {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "episode_id": self.episode_id,
            "file_id": self.file_id,
            "type": self.job_type,
            "params": self.params.to_json(),
            "state": self.state,
            "attempts": self.attempts,
            "max_attempts": MAX_ATTEMPTS,
            "progress": self.progress,
            "error": self.error,
            "result": self.result,
            "created_by": { "id": self.created.by, "name": self.created.by_name },
            "created_at": self.created.at,
            "updated_at": self.updated_at,
            "cancel_requested": self.cancel_requested,
        })
    }
}

/// Why a job's run ended without success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// Worth another attempt (storage unavailable, throttling, ...).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help (a corrupt file, a file that is gone).
    #[error("{0}")]
    Permanent(String),
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryIn { seconds: u32 },
    Fail,
}

/// Exponential backoff with full jitter; `random` is any number (the caller's randomness).
pub fn after_failure(failure: &JobFailure, attempts: u32, random: u64) -> AfterFailure {
    match failure {
        JobFailure::Permanent(_) => AfterFailure::Fail,
        JobFailure::Retryable(_) if attempts >= MAX_ATTEMPTS => AfterFailure::Fail,
        JobFailure::Retryable(_) => {
            let cap = RETRY_BASE_SECONDS
                .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1)))
                .min(RETRY_DELAY_CAP_SECONDS);
            // Full jitter over [cap/2, cap]: never immediate, never over the cap.
            let half = cap / 2;
            let spread = u64::from(cap - half + 1);
            let seconds = half + u32::try_from(random % spread).unwrap_or(0);
            AfterFailure::RetryIn {
                seconds: seconds.max(1),
            }
        }
    }
}

/// What a worker does with a job it was handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Run it (another attempt).
    Run,
    /// A worker holds it, or it is over: a duplicate delivery, nothing to do.
    Skip,
    /// Its last worker died holding it, and that was its last attempt: it failed.
    FailDead,
    /// A cancel was asked for while its worker died: it is cancelled.
    CancelDead,
}

/// Decides from the stored job (and the lease of the worker running it, if any) at `now`.
pub fn claim(job: &Job, lease_until: Option<Timestamp>, now: Timestamp) -> Claim {
    match job.state {
        JobState::Queued | JobState::Retrying => Claim::Run,
        JobState::Running if lease_until.is_some_and(|l| l > now) => Claim::Skip,
        JobState::Running if job.cancel_requested => Claim::CancelDead,
        JobState::Running if job.attempts >= MAX_ATTEMPTS => Claim::FailDead,
        JobState::Running => Claim::Run,
        JobState::Succeeded | JobState::Failed | JobState::Cancelled => Claim::Skip,
    }
}

/// A delayed retry on the jobs queue: run this job (or check on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobMessage {
    pub job_id: JobId,
}

impl JobMessage {
    /// The job a jobs-queue message is about: a retry message, or the `job.created` /
    /// `job.retried` event the relay sent.
    pub fn parse(body: &str) -> Result<Self, String> {
        if let Ok(m) = serde_json::from_str::<Self>(body) {
            return Ok(m);
        }
        let event = crate::event::DomainEvent::from_message(body)?;
        match (event.event_type, event.resource.kind) {
            (
                crate::event::EventType::JobCreated | crate::event::EventType::JobRetried,
                crate::event::ResourceKind::Job,
            ) => JobId::parse(&event.resource.id)
                .map(|job_id| Self { job_id })
                .map_err(|e| e.to_string()),
            (t, _) => Err(format!("{t} is not an event for the job worker")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn the_state_table() {
        for (from, to) in [
            (Queued, Running),
            (Running, Succeeded),
            (Running, Retrying),
            (Retrying, Running),
            (Running, Failed),
            (Queued, Cancelled),
            (Running, Cancelled),
            (Retrying, Cancelled),
            (Failed, Queued),
            (Cancelled, Queued),
            (Running, Running),
        ] {
            assert!(from.can_move_to(to), "{from} → {to}");
        }
        for (from, to) in [
            (Succeeded, Queued),
            (Succeeded, Cancelled),
            (Failed, Cancelled),
            (Cancelled, Running),
            (Queued, Succeeded),
            (Queued, Failed),
            (Retrying, Succeeded),
            (Cancelled, Cancelled),
        ] {
            assert!(!from.can_move_to(to), "{from} → {to}");
        }
        assert_eq!(
            JobState::reachable_from(Cancelled),
            [Queued, Running, Retrying]
        );
        assert_eq!(JobState::reachable_from(Queued), [Failed, Cancelled]);
    }

    #[test]
    fn retries_back_off_with_jitter_until_the_maximum() {
        let retry = JobFailure::Retryable("throttled".into());
        for random in [0, 1, 7, u64::MAX] {
            let AfterFailure::RetryIn { seconds: first } = after_failure(&retry, 1, random) else {
                panic!("first failure retries");
            };
            assert!((1..=2).contains(&first), "{first}");
            let AfterFailure::RetryIn { seconds: second } = after_failure(&retry, 2, random) else {
                panic!("second failure retries");
            };
            assert!((2..=4).contains(&second), "{second}");
        }
        assert_eq!(after_failure(&retry, MAX_ATTEMPTS, 3), AfterFailure::Fail);
        assert_eq!(
            after_failure(&JobFailure::Permanent("corrupt".into()), 1, 3),
            AfterFailure::Fail
        );
    }

    #[test]
    fn duplicates_are_skipped_and_dead_workers_detected() {
        let now = Timestamp::now();
        let mut job = Job {
            id: JobId::new(),
            episode_id: EpisodeId::new(),
            file_id: None,
            job_type: JobType::Checksum,
            params: JobParams::None,
            state: Queued,
            attempts: 0,
            progress: 0,
            error: None,
            result: None,
            created: Stamp {
                at: now,
                by: crate::UserId::parse("alice").unwrap(),
                by_name: crate::DisplayName::new("Alice"),
            },
            updated_at: now,
            cancel_requested: false,
            inject: Injection::default(),
        };
        assert_eq!(claim(&job, None, now), Claim::Run);
        job.state = Running;
        job.attempts = 1;
        assert_eq!(
            claim(&job, Some(now.plus_seconds(60)), now),
            Claim::Skip,
            "held by a live worker"
        );
        assert_eq!(
            claim(&job, Some(now.plus_seconds(-1)), now),
            Claim::Run,
            "its worker died"
        );
        job.attempts = MAX_ATTEMPTS;
        assert_eq!(
            claim(&job, Some(now.plus_seconds(-1)), now),
            Claim::FailDead
        );
        job.cancel_requested = true;
        assert_eq!(
            claim(&job, Some(now.plus_seconds(-1)), now),
            Claim::CancelDead
        );
        for done in [Succeeded, Failed, Cancelled] {
            job.state = done;
            assert_eq!(claim(&job, None, now), Claim::Skip);
        }
    }

    #[test]
    fn params_are_checked_per_type() {
        use serde_json::json;
        assert_eq!(
            JobParams::parse(JobType::Checksum, &Value::Null, false),
            Ok((JobParams::None, Injection::default()))
        );
        assert_eq!(
            JobParams::parse(JobType::Thumbnail, &json!({"max_size": 128}), false),
            Ok((JobParams::Thumbnail { max_size: 128 }, Injection::default()))
        );
        assert!(JobParams::parse(JobType::Thumbnail, &json!({"max_size": 5}), false).is_err());
        assert!(JobParams::parse(JobType::Checksum, &json!({"max_size": 5}), false).is_err());
        assert!(JobParams::parse(JobType::Checksum, &json!([1]), false).is_err());
        assert!(
            JobParams::parse(JobType::Checksum, &json!({"inject_failures": 2}), false).is_err()
        );
        assert_eq!(
            JobParams::parse(JobType::Checksum, &json!({"inject_failures": 2}), true),
            Ok((
                JobParams::None,
                Injection {
                    failures: 2,
                    pause_seconds: 0
                }
            ))
        );
    }

    #[test]
    fn types_accept_their_kind_of_file() {
        let png = ContentType::parse("image/png").unwrap();
        let wav = ContentType::parse("audio/wav").unwrap();
        assert!(JobType::Thumbnail.accepts(png) && !JobType::Thumbnail.accepts(wav));
        assert!(JobType::MediaProbe.accepts(wav) && !JobType::MediaProbe.accepts(png));
        assert!(JobType::Checksum.accepts(png) && JobType::Checksum.accepts(wav));
        assert!(JobType::parse("transcode").is_err());
    }
}
