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
use crate::ids::{CorrelationId, EpisodeId, EventId, ExportId, FileId, JobId};
use crate::realtime::ConnectionId;
use crate::time::Timestamp;

/// No C0 or C1 control character (what `char::is_control` refuses).
pub const NO_CONTROLS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// One line with something in it: no control characters, not only white space.
pub const ONE_LINE: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// The largest integer a JSON number holds exactly everywhere (JavaScript's
/// `Number.MAX_SAFE_INTEGER`): versions stay below it.
pub const MAX_SAFE_INTEGER: u64 = 9_007_199_254_740_991;
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
    ExportId: "ExportId", "an export of the activity log";
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
    "maximum": MAX_SAFE_INTEGER,
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
    "description": "Ties together the events and log lines of one request: the caller's `X-Correlation-Id` when it is a short token, else the request's id.",
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
            "description": "The media types files may have (matched ignoring case and surrounding spaces; served as listed here).",
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

#[cfg(test)]
mod tests {
    //! Each schema against its parser, string by string: what the schema's pattern, lengths
    //! and exclusions accept is what the parser accepts. (Rust's `regex` reads the patterns as
    //! ECMA-262 and Python do here: `\s` is Unicode white space, `\uXXXX` a code point.)

    use regex::Regex;
    use serde_json::Value;

    use super::*;

    fn schema_accepts<T: JsonSchema>(s: &str) -> bool {
        let schema = schemars::schema_for!(T).to_value();
        let chars = s.chars().count();
        let within = |key: &str, ok: fn(usize, usize) -> bool| {
            schema[key]
                .as_u64()
                .is_none_or(|n| ok(chars, usize::try_from(n).unwrap()))
        };
        let pattern = schema["pattern"]
            .as_str()
            .is_none_or(|p| Regex::new(p).unwrap().is_match(s));
        let excluded = schema["not"]["enum"]
            .as_array()
            .is_some_and(|e| e.contains(&Value::from(s)));
        pattern
            && !excluded
            && within("minLength", |c, n| c >= n)
            && within("maxLength", |c, n| c <= n)
    }

    fn agree<T: JsonSchema, E>(parse: impl Fn(&str) -> Result<T, E>, samples: &[String]) {
        for s in samples {
            assert_eq!(
                schema_accepts::<T>(s),
                parse(s).is_ok(),
                "{}: schema and parser disagree on {s:?}",
                T::schema_name()
            );
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn lines() -> Vec<String> {
        let mut s = strings(&[
            "Pilot",
            "  Pilot  ",
            "",
            "   ",
            "Pi\nlot",
            "Pilot\n",
            "\tPilot",
            "Ünïcødé",
            "x\u{85}y",
            "\u{200B}",
            "\u{3000}Pilot",
            "a\u{7f}",
        ]);
        s.extend([
            "a".repeat(200),
            "a".repeat(201),
            format!(" {}", "a".repeat(199)),
        ]);
        s
    }

    #[test]
    fn titles_and_series() {
        agree(Title::parse, &lines());
        agree(SeriesName::parse, &lines());
    }

    #[test]
    fn descriptions() {
        let mut s = strings(&["", "a\nb\tc\r", "a\u{0}b", "\u{7f}", "\u{9f}", "\u{a0}"]);
        s.extend(["é".repeat(5000), "é".repeat(5001)]);
        agree(Description::parse, &s);
    }

    #[test]
    fn file_names() {
        let mut s = strings(&[
            "take-1.wav",
            " a",
            "a ",
            ".",
            "..",
            "...",
            ".a",
            "a/b",
            "a\\b",
            "a\u{1}",
            "a\u{85}",
            "Intro – take 2.wav",
            "\u{200B}",
            "a\u{3000}",
            "",
            "é",
        ]);
        s.extend(["a".repeat(255), "a".repeat(256)]);
        agree(FileName::parse, &s);
    }

    #[test]
    fn ids_users_digests_and_correlation_ids() {
        let v7 = EpisodeId::new().to_string();
        agree(
            EpisodeId::parse,
            &[
                v7.clone(),
                v7.to_uppercase(),
                "6f1c1b2e-8d3a-4c5b-9e7f-0a1b2c3d4e5f".into(),
                format!("{{{v7}}}"),
                v7.replace('-', ""),
                String::new(),
            ],
        );
        let mut users = strings(&["alice", "", "a\u{0}b", "system:job-worker"]);
        users.extend(["a".repeat(128), "a".repeat(129), "é".repeat(128)]);
        agree(UserId::parse, &users);
        let mut digests = vec![
            "a".repeat(64),
            "A".repeat(64),
            "a".repeat(63),
            "g".repeat(64),
        ];
        digests.push(String::new());
        agree(Sha256::parse, &digests);
        let mut ids = strings(&["req-1", "a:b=c+d/e", "", "a b", "é"]);
        ids.extend(["a".repeat(128), "a".repeat(129)]);
        agree(CorrelationId::parse, &ids);
    }
}
