//! Processing jobs on an episode's files: their types, their states and the moves between
//! them (one table), retry timing, and the events every move produces. No I/O here.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::episode::{Person, Stamp};
use crate::event::{DomainEvent, EventContext, EventType};
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
pub use crate::store::IDEMPOTENCY_HOURS;

/// What a job does. Each has one implementation in the job worker's registry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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
    /// Measures loudness (ITU-R BS.1770-4 / EBU R128) against a delivery target.
    #[serde(rename = "loudness")]
    Loudness,
    /// Writes min/max peaks for a player (audiowaveform JSON) as a new file of the episode.
    #[serde(rename = "waveform")]
    Waveform,
}

impl JobType {
    pub const ALL: [Self; 5] = [
        Self::Checksum,
        Self::MediaProbe,
        Self::Thumbnail,
        Self::Loudness,
        Self::Waveform,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checksum => "checksum",
            Self::MediaProbe => "media-probe",
            Self::Thumbnail => "thumbnail",
            Self::Loudness => "loudness",
            Self::Waveform => "waveform",
        }
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "type",
                    "is not a job type; expected checksum, media-probe, thumbnail, loudness or waveform",
                )
            })
    }

    /// A number of its own (1–15), fixed forever: it tells apart the ids of the jobs rules
    /// start on one file ([`crate::upload_rules::job_id`]). A new type takes the next one.
    pub fn id_salt(self) -> u8 {
        match self {
            Self::Checksum => 1,
            Self::MediaProbe => 2,
            Self::Thumbnail => 3,
            Self::Loudness => 4,
            Self::Waveform => 5,
        }
    }

    /// Whether a file of this content type can be processed by this job.
    pub fn accepts(self, content_type: ContentType) -> bool {
        self.reads(content_type.kind())
    }

    /// Whether this job can read files of this kind.
    pub fn reads(self, kind: MediaKind) -> bool {
        match self {
            Self::Checksum => true,
            Self::MediaProbe => matches!(kind, MediaKind::Audio | MediaKind::Video),
            Self::Thumbnail => kind == MediaKind::Image,
            // The audio types only: a video's soundtrack would mean spooling the whole video.
            Self::Loudness | Self::Waveform => kind == MediaKind::Audio,
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
#[derive(Debug, Clone, PartialEq)]
pub enum JobParams {
    None,
    /// The longest side of the thumbnail, in pixels.
    Thumbnail {
        max_size: u32,
    },
    /// The delivery target loudness is judged against.
    Loudness(LoudnessTarget),
    /// The waveform's resolution and sample size.
    Waveform(WaveformSpec),
}

/// A named loudness target: the defaults a loudness job's parameters start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LoudnessPreset {
    /// The common podcast delivery spec (Apple, Spotify, Amazon): −16 LUFS ± 1 LU, true peak
    /// at most −1 dBTP.
    #[serde(rename = "podcast")]
    Podcast,
    /// EBU R128 broadcast: −23 LUFS ± 0.5 LU, true peak at most −1 dBTP.
    #[serde(rename = "ebu-r128")]
    EbuR128,
}

impl LoudnessPreset {
    pub const ALL: [Self; 2] = [Self::Podcast, Self::EbuR128];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Podcast => "podcast",
            Self::EbuR128 => "ebu-r128",
        }
    }

    /// (integrated LUFS, tolerance LU, maximum true peak dBTP).
    pub fn values(self) -> (f64, f64, f64) {
        match self {
            Self::Podcast => (-16.0, 1.0, -1.0),
            Self::EbuR128 => (-23.0, 0.5, -1.0),
        }
    }
}

/// What a loudness job judges the file against: a preset, with any value overridden.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoudnessTarget {
    pub preset: LoudnessPreset,
    pub integrated_lufs: f64,
    pub tolerance_lu: f64,
    pub max_true_peak_dbtp: f64,
}

/// Bounds of the loudness parameters.
pub const TARGET_LUFS: (f64, f64) = (-70.0, 0.0);
pub const TOLERANCE_LU: (f64, f64) = (0.1, 10.0);
pub const TRUE_PEAK_DBTP: (f64, f64) = (-30.0, 0.0);

/// How many samples one waveform point covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveformResolution {
    SamplesPerPixel(u32),
    PixelsPerSecond(u32),
}

/// A waveform job's output: resolution, 8 or 16 bit values, one mixed channel or each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaveformSpec {
    pub resolution: WaveformResolution,
    pub bits: u8,
    pub split_channels: bool,
}

/// Bounds and defaults of the waveform parameters. The default, 20 points a second, is a
/// whole-episode overview: an hour is 72,000 points (about 0.6 MB of JSON at 8 bits).
pub const SAMPLES_PER_PIXEL: (u32, u32) = (16, 65_536);
pub const PIXELS_PER_SECOND: (u32, u32) = (1, 1_000);
pub const DEFAULT_PIXELS_PER_SECOND: u32 = 20;

impl JobParams {
    /// The parameter names a job type takes.
    fn names(job_type: JobType) -> &'static [&'static str] {
        match job_type {
            JobType::Thumbnail => &["max_size"],
            JobType::Loudness => &[
                "preset",
                "integrated_lufs",
                "tolerance_lu",
                "max_true_peak_dbtp",
            ],
            JobType::Waveform => &[
                "samples_per_pixel",
                "pixels_per_second",
                "bits",
                "split_channels",
            ],
            JobType::Checksum | JobType::MediaProbe => &[],
        }
    }

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
        let mut allowed: Vec<&str> = Self::names(job_type).to_vec();
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
                Some(v) => crate::validation::whole_number(v)
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        FieldError::new(
                            format!("params.{key}"),
                            format!("must be an integer from {min} to {max}"),
                        )
                    }),
            }
        };
        let decimal = |key: &str, (min, max): (f64, f64), default: f64| match map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    FieldError::new(
                        format!("params.{key}"),
                        format!("must be a number from {min} to {max}"),
                    )
                }),
        };
        let small = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let injection = Injection {
            failures: small(number("inject_failures", 0, 10, 0)?),
            pause_seconds: small(number("inject_pause_seconds", 0, 60, 0)?),
        };
        let parsed = match job_type {
            JobType::Thumbnail => Self::Thumbnail {
                max_size: small(number(
                    "max_size",
                    u64::from(THUMBNAIL_MIN),
                    u64::from(THUMBNAIL_MAX),
                    256,
                )?),
            },
            JobType::Loudness => {
                let preset = match map.get("preset") {
                    None => LoudnessPreset::Podcast,
                    Some(v) => LoudnessPreset::ALL
                        .into_iter()
                        .find(|p| v.as_str() == Some(p.as_str()))
                        .ok_or_else(|| {
                            FieldError::new("params.preset", "must be podcast or ebu-r128")
                        })?,
                };
                let (lufs, tolerance, peak) = preset.values();
                Self::Loudness(LoudnessTarget {
                    preset,
                    integrated_lufs: decimal("integrated_lufs", TARGET_LUFS, lufs)?,
                    tolerance_lu: decimal("tolerance_lu", TOLERANCE_LU, tolerance)?,
                    max_true_peak_dbtp: decimal("max_true_peak_dbtp", TRUE_PEAK_DBTP, peak)?,
                })
            }
            JobType::Waveform => {
                let resolution = match (map.get("samples_per_pixel"), map.get("pixels_per_second"))
                {
                    (Some(_), Some(_)) => {
                        return Err(FieldError::new(
                            "params.samples_per_pixel",
                            "cannot be given with pixels_per_second; choose one",
                        ));
                    }
                    (Some(_), None) => {
                        let (min, max) = SAMPLES_PER_PIXEL;
                        WaveformResolution::SamplesPerPixel(small(number(
                            "samples_per_pixel",
                            u64::from(min),
                            u64::from(max),
                            0,
                        )?))
                    }
                    (None, _) => {
                        let (min, max) = PIXELS_PER_SECOND;
                        WaveformResolution::PixelsPerSecond(small(number(
                            "pixels_per_second",
                            u64::from(min),
                            u64::from(max),
                            u64::from(DEFAULT_PIXELS_PER_SECOND),
                        )?))
                    }
                };
                let bits = match map.get("bits") {
                    None => 8,
                    Some(v) => match crate::validation::whole_number(v) {
                        Some(8) => 8,
                        Some(16) => 16,
                        _ => return Err(FieldError::new("params.bits", "must be 8 or 16")),
                    },
                };
                let split_channels = match map.get("split_channels") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return Err(FieldError::new(
                            "params.split_channels",
                            "must be true or false",
                        ));
                    }
                };
                Self::Waveform(WaveformSpec {
                    resolution,
                    bits,
                    split_channels,
                })
            }
            JobType::Checksum | JobType::MediaProbe => Self::None,
        };
        Ok((parsed, injection))
    }

    /// As served ([`JobParamsBody`]): `{}`, or every parameter of the type with its value.
    pub fn to_json(&self) -> Value {
        let mut body = JobParamsBody::default();
        match self {
            Self::None => {}
            Self::Thumbnail { max_size } => body.max_size = Some(*max_size),
            Self::Loudness(t) => {
                body.preset = Some(t.preset);
                body.integrated_lufs = Some(t.integrated_lufs);
                body.tolerance_lu = Some(t.tolerance_lu);
                body.max_true_peak_dbtp = Some(t.max_true_peak_dbtp);
            }
            Self::Waveform(w) => {
                match w.resolution {
                    WaveformResolution::SamplesPerPixel(n) => body.samples_per_pixel = Some(n),
                    WaveformResolution::PixelsPerSecond(n) => body.pixels_per_second = Some(n),
                }
                body.bits = Some(w.bits);
                body.split_channels = Some(w.split_channels);
            }
        }
        serde_json::to_value(body).unwrap_or_default()
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
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

/// A job's parameters as served: those of its type, each with its value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct JobParamsBody {
    /// The longest side of the thumbnail, in pixels (thumbnail only; default 256).
    #[schemars(range(min = THUMBNAIL_MIN, max = THUMBNAIL_MAX))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    /// The target the loudness values start from (loudness only; default `podcast`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<LoudnessPreset>,
    /// Target integrated loudness, LUFS (loudness only; the preset's by default).
    #[schemars(range(min = -70.0, max = 0.0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrated_lufs: Option<f64>,
    /// How far from the target still passes, LU (loudness only).
    #[schemars(range(min = 0.1, max = 10.0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerance_lu: Option<f64>,
    /// Highest true peak that passes, dBTP (loudness only).
    #[schemars(range(min = -30.0, max = 0.0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_true_peak_dbtp: Option<f64>,
    /// Samples per waveform point (waveform only; not with `pixels_per_second`).
    #[schemars(range(min = 16, max = 65536))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples_per_pixel: Option<u32>,
    /// Waveform points per second of audio (waveform only; default 20).
    #[schemars(range(min = 1, max = 1000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixels_per_second: Option<u32>,
    /// 8 or 16 bit values (waveform only; default 8).
    #[schemars(extend("enum" = [8, 16]))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u8>,
    /// One min/max pair per channel instead of the mono mix (waveform only; default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_channels: Option<bool>,
}

/// A job as the API serves it (and as events carry it).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "Job")]
pub struct JobBody {
    pub id: JobId,
    pub episode_id: EpisodeId,
    /// The file the job works on.
    pub file_id: Option<FileId>,
    #[serde(rename = "type")]
    pub job_type: JobType,
    #[schemars(with = "JobParamsBody")]
    pub params: Value,
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    /// 0 to 100.
    #[schemars(range(max = 100))]
    pub progress: u8,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// What the job found or made (per type).
    pub result: Option<Value>,
    pub created_by: Person,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// A cancel was asked for while running: the worker stops at its next checkpoint.
    pub cancel_requested: bool,
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
    /// A new job, queued, nothing tried yet.
    pub fn queued(
        id: JobId,
        episode_id: EpisodeId,
        file_id: Option<FileId>,
        job_type: JobType,
        params: JobParams,
        created: Stamp,
        inject: Injection,
    ) -> Self {
        Self {
            id,
            episode_id,
            file_id,
            job_type,
            params,
            state: JobState::Queued,
            attempts: 0,
            progress: 0,
            error: None,
            result: None,
            updated_at: created.at,
            created,
            cancel_requested: false,
            inject,
        }
    }

    /// The job as the API serves it.
    pub fn body(&self) -> JobBody {
        JobBody {
            id: self.id,
            episode_id: self.episode_id,
            file_id: self.file_id,
            job_type: self.job_type,
            params: self.params.to_json(),
            state: self.state,
            attempts: self.attempts,
            max_attempts: MAX_ATTEMPTS,
            progress: self.progress,
            error: self.error.clone(),
            result: self.result.clone(),
            created_by: self.created.person(),
            created_at: self.created.at,
            updated_at: self.updated_at,
            cancel_requested: self.cancel_requested,
        }
    }

    /// [`Self::body`] as JSON (a struct of strings, numbers and JSON values: serializing it
    /// cannot fail).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }
}

/// What the stored job must still be for a move to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobGuard {
    pub states: Vec<JobState>,
    pub attempts: u32,
    /// The move is refused if a cancel was asked for since the job was read.
    pub no_cancel_request: bool,
}

impl JobGuard {
    /// The job exactly as read.
    pub fn as_read(job: &Job) -> Self {
        Self {
            states: vec![job.state],
            attempts: job.attempts,
            no_cancel_request: !job.cancel_requested,
        }
    }

    /// In `state` with `attempts`, whether or not a cancel was asked for.
    fn in_state(state: JobState, attempts: u32) -> Self {
        Self {
            states: vec![state],
            attempts,
            no_cancel_request: false,
        }
    }

    /// Whether `stored` meets the guard (the write's condition, decided in the domain so the
    /// in-memory store and the DynamoDB condition say the same).
    pub fn admits(&self, stored: &Job) -> bool {
        self.states.contains(&stored.state)
            && stored.attempts == self.attempts
            && !(self.no_cancel_request && stored.cancel_requested)
    }
}

/// One move of a job: the job as it will be, the condition the stored job must meet, the lease
/// it holds afterwards, and the event that records it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobMove {
    pub next: Job,
    pub guard: JobGuard,
    /// Kept while a worker runs the job.
    pub lease_until: Option<Timestamp>,
    /// For taking over a job whose worker died: its lease must have ended before this.
    pub expired_before: Option<Timestamp>,
    pub event: EventType,
    /// The event's `data`.
    pub data: Value,
}

impl JobMove {
    fn from_read(read: &Job, next: Job, event: EventType) -> Self {
        Self {
            guard: JobGuard::as_read(read),
            next,
            lease_until: None,
            expired_before: None,
            event,
            data: json!({}),
        }
    }

    /// The move's event, caused by `context`'s actor.
    pub fn event(&self, context: &EventContext) -> DomainEvent {
        DomainEvent::about_job(
            context,
            self.event,
            &self.next,
            self.next.updated_at,
            self.data.clone(),
        )
    }
}

/// Why a person's request to move a job is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobRefusal {
    #[error("a {0} job cannot be cancelled")]
    CannotCancel(JobState),
    #[error("a {0} job cannot be retried (only failed or cancelled ones)")]
    CannotRetry(JobState),
}

/// How a cancel goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// Not running: cancelled now.
    Now(Box<JobMove>),
    /// Running: its worker is asked to stop at the next checkpoint.
    AtCheckpoint,
}

/// The job's moves. Each returns the move to write; none writes anything.
impl Job {
    /// A person cancels the job.
    pub fn cancel(&self, now: Timestamp) -> Result<Cancel, JobRefusal> {
        match self.state {
            JobState::Queued | JobState::Retrying => Ok(Cancel::Now(Box::new(self.cancelled(now)))),
            JobState::Running => Ok(Cancel::AtCheckpoint),
            done => Err(JobRefusal::CannotCancel(done)),
        }
    }

    /// A person retries a failed or cancelled job: queued again, from scratch.
    pub fn retry(&self, now: Timestamp) -> Result<JobMove, JobRefusal> {
        if !self.state.can_move_to(JobState::Queued) {
            return Err(JobRefusal::CannotRetry(self.state));
        }
        let next = Self {
            state: JobState::Queued,
            attempts: 0,
            progress: 0,
            error: None,
            result: None,
            cancel_requested: false,
            inject: Injection::default(),
            updated_at: now,
            ..self.clone()
        };
        Ok(JobMove {
            guard: JobGuard::in_state(self.state, self.attempts),
            ..JobMove::from_read(self, next, EventType::JobRetried)
        })
    }

    /// A worker claims the job for another attempt, holding it until `lease_until`. A running
    /// job (its worker died) is taken over only once that worker's lease has ended.
    pub fn start_attempt(&self, now: Timestamp, lease_until: Timestamp) -> JobMove {
        let next = Self {
            state: JobState::Running,
            attempts: self.attempts + 1,
            progress: 0,
            error: None,
            updated_at: now,
            ..self.clone()
        };
        JobMove {
            lease_until: Some(lease_until),
            expired_before: (self.state == JobState::Running).then_some(now),
            ..JobMove::from_read(self, next, EventType::JobStarted)
        }
    }

    /// A checkpoint of the running attempt.
    pub fn progressed(&self, percent: u8, now: Timestamp, lease_until: Timestamp) -> JobMove {
        let next = Self {
            progress: percent,
            updated_at: now,
            ..self.clone()
        };
        JobMove {
            lease_until: Some(lease_until),
            ..JobMove::from_read(self, next, EventType::JobProgress)
        }
    }

    /// The attempt succeeded with `result`.
    pub fn succeeded(&self, result: Value, now: Timestamp) -> JobMove {
        let next = Self {
            state: JobState::Succeeded,
            progress: 100,
            result: Some(result),
            updated_at: now,
            ..self.clone()
        };
        JobMove::from_read(self, next, EventType::JobSucceeded)
    }

    /// The attempt failed: retried after a backoff (`random` is the caller's randomness for
    /// the jitter) or failed for good.
    pub fn attempt_failed(
        &self,
        failure: &JobFailure,
        random: u64,
        now: Timestamp,
    ) -> (JobMove, AfterFailure) {
        let after = after_failure(failure, self.attempts, random);
        let mut next = Self {
            error: Some(failure.to_string()),
            updated_at: now,
            ..self.clone()
        };
        let change = match after {
            AfterFailure::RetryIn { seconds } => {
                next.state = JobState::Retrying;
                JobMove {
                    data: json!({ "retry_in_seconds": seconds }),
                    ..JobMove::from_read(self, next, EventType::JobRetryScheduled)
                }
            }
            AfterFailure::Fail => {
                next.state = JobState::Failed;
                JobMove::from_read(self, next, EventType::JobFailed)
            }
        };
        (change, after)
    }

    /// Its worker died on the last attempt.
    pub fn failed_dead(&self, now: Timestamp) -> JobMove {
        let next = Self {
            state: JobState::Failed,
            error: Some("the worker stopped (timed out) on the last attempt".into()),
            updated_at: now,
            ..self.clone()
        };
        JobMove::from_read(self, next, EventType::JobFailed)
    }

    /// Cancelled now, from the state it was read in.
    pub fn cancelled(&self, now: Timestamp) -> JobMove {
        let next = Self {
            state: JobState::Cancelled,
            updated_at: now,
            ..self.clone()
        };
        JobMove::from_read(self, next, EventType::JobCancelled)
    }

    /// A running job whose cancel was asked for stops at a checkpoint: cancelled, whatever
    /// else changed meanwhile (a progress write), unless another worker took it over. `None`
    /// when it is not running with a cancel asked (taken over, or already recorded).
    pub fn stopped_at_checkpoint(&self, now: Timestamp) -> Option<JobMove> {
        (self.state == JobState::Running && self.cancel_requested).then(|| JobMove {
            guard: JobGuard::in_state(JobState::Running, self.attempts),
            ..self.cancelled(now)
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

/// What a jobs-queue message asks of the job worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobWork {
    /// Run (or retry) a job.
    Run(JobMessage),
    /// A file became available: start the jobs its episode's rules name (tied to the upload
    /// by its correlation id).
    FileUploaded {
        file_id: FileId,
        correlation_id: crate::ids::CorrelationId,
    },
}

impl JobWork {
    pub fn parse(body: &str) -> Result<Self, String> {
        if let Ok(m) = JobMessage::parse(body) {
            return Ok(Self::Run(m));
        }
        let event = crate::event::DomainEvent::from_message(body)?;
        match (event.event_type, event.resource.kind) {
            (crate::event::EventType::FileUploaded, crate::event::ResourceKind::File) => {
                FileId::parse(&event.resource.id)
                    .map(|file_id| Self::FileUploaded {
                        file_id,
                        correlation_id: event.correlation_id,
                    })
                    .map_err(|e| e.to_string())
            }
            (t, _) => Err(format!("{t} is not an event for the job worker")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    /// A queued checksum job of Alice's, created at `now`.
    fn queued_job(now: Timestamp) -> Job {
        Job {
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
        }
    }

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
        let mut job = queued_job(now);
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
    fn moves_are_guarded_by_the_job_as_read() {
        let now = Timestamp::now();
        let job = queued_job(now);
        let start = job.start_attempt(now, now.plus_seconds(60));
        assert_eq!((start.next.state, start.next.attempts), (Running, 1));
        assert!(start.guard.admits(&job));
        assert!(
            !start.guard.admits(&start.next),
            "a second claim finds it moved"
        );
        assert_eq!(
            start.expired_before, None,
            "a queued job has no lease to wait for"
        );
        let takeover = start.next.start_attempt(now, now.plus_seconds(60));
        assert_eq!(takeover.expired_before, Some(now));
        // A cancel asked meanwhile refuses the worker's moves but not the stop.
        let mut asked = start.next.clone();
        asked.cancel_requested = true;
        assert!(!start.next.progressed(50, now, now).guard.admits(&asked));
        let stop = asked.stopped_at_checkpoint(now).unwrap();
        assert!(stop.guard.admits(&asked));
        assert_eq!(stop.next.state, Cancelled);
        let (failed, after) =
            start
                .next
                .attempt_failed(&JobFailure::Permanent("corrupt".into()), 0, now);
        assert_eq!((failed.next.state, after), (Failed, AfterFailure::Fail));
        // Retry starts over: every field an attempt set is reset.
        let mut done = failed.next;
        done.progress = 40;
        done.inject.failures = 2;
        let retry = done.retry(now).unwrap();
        assert_eq!(
            (retry.next.state, retry.next.attempts, retry.next.progress),
            (Queued, 0, 0)
        );
        assert_eq!(
            (&retry.next.error, retry.next.inject),
            (&None, Injection::default())
        );
        assert_eq!(retry.event, EventType::JobRetried);
        assert_eq!(job.retry(now), Err(JobRefusal::CannotRetry(Queued)));
        assert!(matches!(job.cancel(now), Ok(Cancel::Now(_))));
        assert_eq!(start.next.cancel(now), Ok(Cancel::AtCheckpoint));
        assert_eq!(retry.next.succeeded(json!({}), now).next.progress, 100);
        let mut over = job.clone();
        over.state = Succeeded;
        assert_eq!(over.cancel(now), Err(JobRefusal::CannotCancel(Succeeded)));
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
