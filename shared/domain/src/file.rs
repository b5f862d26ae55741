//! An episode's files (audio, video, artwork, scripts): what may be uploaded, how, and where it
//! is kept. The bytes never pass through a function: clients upload to and download from S3
//! with presigned URLs; this module decides everything those URLs are made from.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::episode::{Person, Stamp};
use crate::event::DomainEvent;
use crate::ids::{EpisodeId, FileId};
use crate::time::Timestamp;
use crate::validation::FieldError;

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
/// Largest file accepted.
pub const MAX_FILE_SIZE: u64 = 10 * GIB;
/// Files larger than this are uploaded in parts (S3 multipart upload).
pub const MULTIPART_THRESHOLD: u64 = 100 * MIB;
/// Smallest part of a multipart upload (S3's minimum is 5 MiB).
pub const MIN_PART_SIZE: u64 = 16 * MIB;
/// S3's limit on the parts of one upload.
pub const MAX_PARTS: u64 = 10_000;

/// What kind of media a content type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MediaKind {
    Audio,
    Video,
    Image,
    Script,
    /// Data made of other files (a waveform's peaks).
    Data,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Image => "image",
            Self::Script => "script",
            Self::Data => "data",
        }
    }
}

/// The content types files may have: the one place they are listed.
const ALLOWED: &[(&str, MediaKind)] = &[
    ("audio/mpeg", MediaKind::Audio),
    ("audio/wav", MediaKind::Audio),
    ("audio/x-wav", MediaKind::Audio),
    ("audio/flac", MediaKind::Audio),
    ("audio/aac", MediaKind::Audio),
    ("audio/mp4", MediaKind::Audio),
    ("audio/ogg", MediaKind::Audio),
    ("video/mp4", MediaKind::Video),
    ("video/quicktime", MediaKind::Video),
    ("video/webm", MediaKind::Video),
    ("image/png", MediaKind::Image),
    ("image/jpeg", MediaKind::Image),
    ("image/webp", MediaKind::Image),
    ("text/plain", MediaKind::Script),
    ("text/markdown", MediaKind::Script),
    ("application/pdf", MediaKind::Script),
    ("application/json", MediaKind::Data),
];

/// The content types files may have, as the contract lists them.
pub fn allowed_content_types() -> Vec<&'static str> {
    ALLOWED.iter().map(|(t, _)| *t).collect()
}

/// An allowed content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType(&'static str, MediaKind);

impl ContentType {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let wanted = s.trim().to_ascii_lowercase();
        ALLOWED
            .iter()
            .find(|(t, _)| *t == wanted)
            .map(|(t, k)| Self(t, *k))
            .ok_or_else(|| {
                FieldError::new(
                    "content_type",
                    format!(
                        "is not allowed; allowed: {}",
                        ALLOWED
                            .iter()
                            .map(|(t, _)| *t)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    pub fn kind(self) -> MediaKind {
        self.1
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A file's name as the uploader gave it: shown, and offered back on download. Never part of
/// the object key, so it cannot steer where the bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(String);

impl FileName {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let err = |m: &str| Err(FieldError::new("name", m));
        if s.is_empty() || s.chars().count() > Self::MAX_CHARS {
            return err("must be 1–255 characters");
        }
        if s.contains(['/', '\\']) {
            return err("must not contain path separators");
        }
        if s.chars().any(char::is_control) {
            return err("must not contain control characters");
        }
        if s.trim() != s || s == "." || s == ".." {
            return err("must not be . or .., nor start or end with spaces");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `Content-Disposition` for a download under this name (RFC 6266: an ASCII fallback and
    /// the UTF-8 name).
    pub fn content_disposition(&self) -> String {
        let fallback: String = self
            .0
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut encoded = String::new();
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                encoded.push(char::from(b));
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

/// A declared size: 1 byte to [`MAX_FILE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileSize(u64);

impl FileSize {
    pub fn new(bytes: u64) -> Result<Self, FieldError> {
        if bytes == 0 || bytes > MAX_FILE_SIZE {
            return Err(FieldError::new(
                "size",
                format!("must be 1 to {MAX_FILE_SIZE} bytes (10 GiB)"),
            ));
        }
        Ok(Self(bytes))
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// A SHA-256 digest, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256(String);

impl Sha256 {
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FieldError::new("sha256", "must be 64 hex digits"));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    pub fn from_bytes(digest: &[u8]) -> Option<Self> {
        (digest.len() == 32).then(|| Self(digest.iter().map(|b| format!("{b:02x}")).collect()))
    }

    pub fn as_hex(&self) -> &str {
        &self.0
    }

    pub fn bytes(&self) -> Vec<u8> {
        (0..32)
            .filter_map(|i| u8::from_str_radix(self.0.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    }
}

macro_rules! serialize_as {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let $v = self;
                $e.serialize(serializer)
            }
        }
    )*};
}

serialize_as! {
    FileName => |v| v.as_str();
    ContentType => |v| v.as_str();
    FileSize => |v| v.get();
    Sha256 => |v| v.as_hex();
    FileStatus => |v| v.as_str();
}

/// How a file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadPlan {
    /// One presigned PUT.
    Single,
    /// A multipart upload: `parts` presigned part PUTs of `part_size` bytes (the last smaller).
    Multipart { part_size: u64, parts: u32 },
}

impl UploadPlan {
    pub fn for_size(size: FileSize) -> Self {
        let size = size.get();
        if size <= MULTIPART_THRESHOLD {
            return Self::Single;
        }
        let at_least = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
        let part_size = at_least.max(MIN_PART_SIZE);
        let parts = u32::try_from(size.div_ceil(part_size)).unwrap_or(u32::MAX);
        Self::Multipart { part_size, parts }
    }
}

/// Where a file's bytes live in the bucket: decided by us from ids only.
pub fn object_key(episode: EpisodeId, file: FileId) -> String {
    format!("episodes/{episode}/files/{file}")
}

/// A file's life: created pending (upload URL handed out), available once the object is there
/// with the declared size (and checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    Pending,
    Available,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Available => "available",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "available" => Some(Self::Available),
            _ => None,
        }
    }
}

/// What a client asks to upload, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub name: FileName,
    pub content_type: ContentType,
    pub size: FileSize,
    pub sha256: Option<Sha256>,
}

/// A file as the API serves it (and as events carry it).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "File")]
pub struct FileBody {
    pub id: FileId,
    pub episode_id: EpisodeId,
    pub name: FileName,
    pub content_type: ContentType,
    pub size: FileSize,
    pub sha256: Option<Sha256>,
    pub status: FileStatus,
    pub uploaded_by: Person,
    pub created_at: Timestamp,
    pub available_at: Option<Timestamp>,
    /// What jobs found out about the file (checksum, media probe), by job type.
    pub metadata: Option<Value>,
}

/// A file of an episode, as stored and served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeFile {
    pub id: FileId,
    pub episode_id: EpisodeId,
    pub name: FileName,
    pub content_type: ContentType,
    pub size: FileSize,
    pub sha256: Option<Sha256>,
    pub status: FileStatus,
    pub key: String,
    pub created: Stamp,
    pub available_at: Option<Timestamp>,
    /// The S3 multipart upload id while a multipart upload is pending.
    pub upload_id: Option<String>,
    /// Derived metadata recorded by jobs (checksum, media probe); free-form JSON.
    pub metadata: Option<Value>,
}

impl NewFile {
    pub fn into_file(self, id: FileId, episode_id: EpisodeId, created: Stamp) -> EpisodeFile {
        EpisodeFile {
            id,
            episode_id,
            key: object_key(episode_id, id),
            name: self.name,
            content_type: self.content_type,
            size: self.size,
            sha256: self.sha256,
            status: FileStatus::Pending,
            created,
            available_at: None,
            upload_id: None,
            metadata: None,
        }
    }
}

impl EpisodeFile {
    /// Pending → available at `at`, once its object was checked; `sha256` is the object's
    /// checksum when the upload carried one.
    pub fn made_available(&self, sha256: Option<&Sha256>, at: Timestamp) -> Self {
        Self {
            status: FileStatus::Available,
            available_at: Some(at),
            upload_id: None,
            sha256: sha256.cloned().or_else(|| self.sha256.clone()),
            ..self.clone()
        }
    }

    /// The file as the API serves it.
    pub fn body(&self) -> FileBody {
        FileBody {
            id: self.id,
            episode_id: self.episode_id,
            name: self.name.clone(),
            content_type: self.content_type,
            size: self.size,
            sha256: self.sha256.clone(),
            status: self.status,
            uploaded_by: self.created.person(),
            created_at: self.created.at,
            available_at: self.available_at,
            metadata: self.metadata.clone(),
        }
    }

    /// [`Self::body`] as JSON (a struct of strings, numbers and JSON values: serializing it
    /// cannot fail).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    /// Whether the object S3 holds is this file: the declared size, and the declared checksum
    /// when one was given (S3 already refused a body that did not match it).
    pub fn matches_object(&self, size: u64, sha256: Option<&Sha256>) -> Result<(), String> {
        if size != self.size.get() {
            return Err(format!(
                "the uploaded object has {size} bytes, {} were declared",
                self.size.get()
            ));
        }
        match (&self.sha256, sha256) {
            (Some(want), Some(got)) if want != got => {
                Err("the uploaded object's SHA-256 differs from the declared one".to_owned())
            }
            (Some(_), None) => Err("the uploaded object carries no SHA-256 checksum".to_owned()),
            _ => Ok(()),
        }
    }
}

/// Work the files worker is asked to do besides reacting to events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FileTask {
    /// After the upload URLs of a file expired: confirm the upload if the object is there with
    /// the declared size, else remove the pending record and whatever was uploaded.
    PendingCheck {
        file_id: FileId,
        not_before: Timestamp,
    },
}

impl FileTask {
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One message of the files queue: a domain event from the relay, or a task.
#[derive(Debug, Clone, PartialEq)]
pub enum FilesMessage {
    Event(DomainEvent),
    Task(FileTask),
}

impl FilesMessage {
    pub fn parse(body: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        if value.get("kind").is_some() {
            serde_json::from_value(value)
                .map(Self::Task)
                .map_err(|e| format!("not a known task: {e}"))
        } else {
            DomainEvent::from_message(body).map(Self::Event)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_offered_back_intact() {
        for bad in [
            "",
            "a/b",
            "..",
            ".",
            "a\\b",
            "x\ny",
            " lead",
            "trail ",
            &"n".repeat(256),
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
        let name = FileName::parse("Épisode 1 \"final\".wav").unwrap();
        assert_eq!(
            name.content_disposition(),
            "attachment; filename=\"_pisode 1 _final_.wav\"; filename*=UTF-8''%C3%89pisode%201%20%22final%22.wav"
        );
    }

    #[test]
    fn content_types_come_from_one_list() {
        assert_eq!(
            ContentType::parse("Audio/MPEG").unwrap().as_str(),
            "audio/mpeg"
        );
        assert_eq!(
            ContentType::parse("image/png").unwrap().kind(),
            MediaKind::Image
        );
        assert!(ContentType::parse("application/x-sh").is_err());
        assert!(ContentType::parse("text/html").is_err());
    }

    #[test]
    fn sizes_and_plans() {
        assert!(FileSize::new(0).is_err());
        assert!(FileSize::new(MAX_FILE_SIZE + 1).is_err());
        assert_eq!(
            UploadPlan::for_size(FileSize::new(MULTIPART_THRESHOLD).unwrap()),
            UploadPlan::Single
        );
        assert_eq!(
            UploadPlan::for_size(FileSize::new(MULTIPART_THRESHOLD + 1).unwrap()),
            UploadPlan::Multipart {
                part_size: MIN_PART_SIZE,
                parts: 7
            }
        );
        let UploadPlan::Multipart { part_size, parts } =
            UploadPlan::for_size(FileSize::new(MAX_FILE_SIZE).unwrap())
        else {
            panic!("multipart expected");
        };
        assert!(u64::from(parts) <= MAX_PARTS && part_size * u64::from(parts) >= MAX_FILE_SIZE);
    }

    #[test]
    fn queue_messages_are_events_or_tasks() {
        let task = FileTask::PendingCheck {
            file_id: FileId::new(),
            not_before: Timestamp::now(),
        };
        assert_eq!(
            FilesMessage::parse(&task.to_body()),
            Ok(FilesMessage::Task(task))
        );
        let deleted = include_str!("../../../events/domain/episode.deleted.json");
        assert!(matches!(
            FilesMessage::parse(deleted),
            Ok(FilesMessage::Event(_))
        ));
        assert!(FilesMessage::parse(r#"{"kind":"explode"}"#).is_err());
    }

    #[test]
    fn checksums_round_trip() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let sha = Sha256::parse(&hex.to_uppercase()).unwrap();
        assert_eq!(sha.as_hex(), hex);
        assert_eq!(Sha256::from_bytes(&sha.bytes()), Some(sha));
        assert!(Sha256::parse("abc").is_err());
        assert!(Sha256::parse(&"g".repeat(64)).is_err());
    }
}
