//! JSON Schemas (draft 2020-12, via schemars) of the validated values the API and the WebSocket
//! protocol carry. The published contracts (OpenAPI 3.1, AsyncAPI 3) are generated from these
//! and from the derived schemas of the wire types, so a rule changed here changes them. Each
//! schema says what the value's parser accepts, no more and no less: a fuzzer checks both ways.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::actor::{DisplayName, UserId};
use crate::episode::{AirDate, Description, PositiveNumber, SeriesName, Title, Version};
use crate::file::{
    ContentType, FileName, FileSize, FileStatus, MAX_FILE_SIZE, Sha256, allowed_content_types,
};
use crate::ids::{CorrelationId, EpisodeId, EventId, FileId, JobId};
use crate::realtime::ConnectionId;
use crate::time::Timestamp;

/// No C0 or C1 control character (what `char::is_control` refuses).
pub const NO_CONTROLS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// One line with something in it: no control characters, not only white space.
pub const ONE_LINE: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// A UUIDv7 in its canonical lower-case hyphenated form.
pub const UUID_V7: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$";

macro_rules! schema {
    ($t:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $t {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

macro_rules! id_schema {
    ($($t:ty: $name:literal, $what:literal;)*) => {$(
        schema!($t, $name, {
            "type": "string",
            "format": "uuid",
            "pattern": UUID_V7,
            "description": concat!("The id of ", $what, ": a UUIDv7, lower case."),
            "examples": ["01a213ea-bcea-7231-95fb-08c52221b2de"],
        });
    )*};
}

id_schema! {
    EpisodeId: "EpisodeId", "an episode";
    FileId: "FileId", "a file";
    JobId: "JobId", "a job";
    EventId: "EventId", "a domain event (and of the activity entry and notifications it made)";
}

schema!(Timestamp, "Timestamp", {
    "type": "string",
    "format": "date-time",
    "description": "UTC, RFC 3339, milliseconds: `2026-11-25T18:00:00.000Z`.",
    "examples": ["2026-11-25T18:00:00.000Z"],
});

schema!(Title, "Title", {
    "type": "string",
    "minLength": 1,
    "maxLength": Title::MAX_CHARS,
    "pattern": ONE_LINE,
    "description": "One line, at most 200 characters; leading and trailing white space is trimmed.",
    "examples": ["The Pilot"],
});

schema!(SeriesName, "SeriesName", {
    "type": "string",
    "minLength": 1,
    "maxLength": Title::MAX_CHARS,
    "pattern": ONE_LINE,
    "description": "The series: one line, at most 200 characters, trimmed.",
    "examples": ["Night Shift"],
});

schema!(Description, "Description", {
    "type": "string",
    "maxLength": Description::MAX_CHARS,
    "pattern": "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$",
    "description": "Free text; line breaks and tabs allowed, other control characters not.",
});

schema!(PositiveNumber, "PositiveNumber", {
    "type": "integer",
    "minimum": 1,
    "maximum": PositiveNumber::MAX,
});

schema!(AirDate, "AirDate", {
    "type": "string",
    "format": "date",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    "description": "A calendar date, `YYYY-MM-DD`.",
    "examples": ["2027-03-01"],
});

schema!(Version, "Version", {
    "type": "integer",
    "minimum": 1,
    "description": "Bumped by every write; `ETag` is this number in quotes.",
});

schema!(UserId, "UserId", {
    "type": "string",
    "minLength": 1,
    "maxLength": UserId::MAX_LEN,
    "pattern": NO_CONTROLS,
    "description": "The subject (`sub`) of the user's token; `system:<worker>` for the stack's own workers.",
});

schema!(DisplayName, "DisplayName", {
    "type": "string",
    "maxLength": DisplayName::MAX_CHARS,
});

schema!(CorrelationId, "CorrelationId", {
    "type": "string",
    "pattern": "^[A-Za-z0-9._:=+/-]{1,128}$",
    "description": "Ties together the events and log lines of one request (`X-Correlation-Id`).",
});

schema!(ConnectionId, "ConnectionId", {
    "type": "string",
    "pattern": "^[A-Za-z0-9=_-]{1,128}$",
});

schema!(FileName, "FileName", {
    "type": "string",
    "minLength": 1,
    "maxLength": FileName::MAX_CHARS,
    "pattern": "^[^\\s/\\\\\\u0000-\\u001F\\u007F-\\u009F]([^/\\\\\\u0000-\\u001F\\u007F-\\u009F]*[^\\s/\\\\\\u0000-\\u001F\\u007F-\\u009F])?$",
    "not": { "enum": [".", ".."] },
    "description": "Shown and offered back on download: no path separators or control characters, no white space at either end, not `.` or `..`.",
    "examples": ["Intro – take 2.wav"],
});

impl JsonSchema for ContentType {
    fn schema_name() -> Cow<'static, str> {
        "ContentType".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "enum": allowed_content_types(),
            "description": "The media types files may have.",
        })
    }
}

schema!(FileSize, "FileSize", {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_FILE_SIZE,
    "description": "Bytes, 1 to 10 GiB.",
});

schema!(Sha256, "Sha256", {
    "type": "string",
    "pattern": "^[0-9a-fA-F]{64}$",
    "description": "A SHA-256 digest as 64 hex digits (served lower case).",
});

schema!(FileStatus, "FileStatus", {
    "type": "string",
    "enum": ["pending", "available"],
    "description": "`pending` from creation until the upload is confirmed, then `available`.",
});
