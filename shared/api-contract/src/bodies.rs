//! The request bodies, each a JSON object of the domain's validated values. The functions parse
//! them field by field (to report every problem at once); their tests check that the fields
//! here are the fields they accept.

use domain::{
    AirDate, ContentType, Description, EpisodeStatus, EventType, FileId, FileName, FileSize,
    JobType, PositiveNumber, SeriesName, Sha256, Title, Version,
};
use serde_json::{Value, json};

use crate::Body;
use crate::schemas::{Registry, object};

fn body(
    registry: &mut Registry,
    name: &str,
    media_types: &'static [&'static str],
    max_bytes: usize,
    schema: Value,
    example: Value,
) -> Body {
    let fields = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    Body {
        media_types,
        max_bytes,
        schema: registry.define(name, schema),
        fields,
        required: true,
        example: Some(example),
    }
}

const JSON: &[&str] = &["application/json"];

/// The body of a recorded request in `events/` (the handler tests' inputs), as the example.
fn recorded(event: &str) -> Value {
    serde_json::from_str::<Value>(event)
        .ok()
        .and_then(|e| {
            e["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
        })
        .unwrap_or(Value::Null)
}

pub fn new_episode(r: &mut Registry) -> Body {
    let schema = object(
        vec![
            ("title", r.of::<Title>()),
            ("description", r.nullable::<Description>()),
            ("series", r.nullable::<SeriesName>()),
            ("season", r.nullable::<PositiveNumber>()),
            ("number", r.nullable::<PositiveNumber>()),
            ("air_date", r.nullable::<AirDate>()),
        ],
        &["title"],
    );
    body(
        r,
        "NewEpisode",
        JSON,
        64 * 1024,
        schema,
        recorded(include_str!(
            "../../../events/episodes-api/create-episode.json"
        )),
    )
}

/// The fields a PATCH may change (at least one of them).
const CHANGES: [&str; 7] = [
    "title",
    "description",
    "series",
    "season",
    "number",
    "air_date",
    "status",
];

pub fn episode_patch(r: &mut Registry) -> Body {
    let mut schema = object(
        vec![
            ("title", r.of::<Title>()),
            ("description", r.of::<Description>()),
            ("series", r.nullable::<SeriesName>()),
            ("season", r.nullable::<PositiveNumber>()),
            ("number", r.nullable::<PositiveNumber>()),
            ("air_date", r.nullable::<AirDate>()),
            ("status", r.of::<EpisodeStatus>()),
            ("version", r.of::<Version>()),
        ],
        &[],
    );
    schema["description"] = json!(
        "A JSON merge patch: absent fields are unchanged, null clears the optional ones. Name the version you edited in `If-Match` (412 when stale) or, without it, in `version` (409 when stale). A status moves only along draft → in_production → in_review → published → archived, or back from in_review to in_production; another move is 409."
    );
    schema["anyOf"] = Value::Array(CHANGES.iter().map(|f| json!({ "required": [f] })).collect());
    body(
        r,
        "EpisodePatch",
        &["application/json", "application/merge-patch+json"],
        64 * 1024,
        schema,
        recorded(include_str!(
            "../../../events/episodes-api/update-episode.json"
        )),
    )
}

pub fn new_file(r: &mut Registry) -> Body {
    let mut schema = object(
        vec![
            ("name", r.of::<FileName>()),
            ("content_type", r.of::<ContentType>()),
            ("size", r.of::<FileSize>()),
            ("sha256", r.nullable::<Sha256>()),
        ],
        &["name", "content_type", "size"],
    );
    schema["description"] = json!(
        "A checksum is verified by S3 on single uploads (up to 100 MiB); above that, run a checksum job after the upload."
    );
    // A declared checksum only on single uploads.
    schema["if"] = json!({
        "properties": { "size": { "type": "integer", "exclusiveMinimum": domain::file::MULTIPART_THRESHOLD } },
        "required": ["size"],
    });
    schema["then"] = json!({ "properties": { "sha256": { "type": "null" } } });
    body(
        r,
        "NewFile",
        JSON,
        16 * 1024,
        schema,
        recorded(include_str!("../../../events/files-api/create-file.json")),
    )
}

pub fn new_job(r: &mut Registry) -> Body {
    let params = json!({
        "type": ["object", "null"],
        "description": "Per type: `max_size` (16–2048 pixels, default 256) for a thumbnail; nothing for the others.",
        "properties": {
            "max_size": {
                "type": "integer",
                "minimum": domain::job::THUMBNAIL_MIN,
                "maximum": domain::job::THUMBNAIL_MAX,
            }
        },
        "additionalProperties": false,
    });
    let mut schema = object(
        vec![
            ("type", r.of::<JobType>()),
            ("file_id", r.of::<FileId>()),
            ("params", params),
        ],
        &["type", "file_id"],
    );
    // Only a thumbnail takes parameters.
    schema["if"] = json!({ "properties": { "type": { "const": "thumbnail" } } });
    schema["else"] = json!({
        "properties": { "params": { "anyOf": [{ "type": "null" }, { "maxProperties": 0 }] } }
    });
    body(
        r,
        "NewJob",
        JSON,
        16 * 1024,
        schema,
        recorded(include_str!("../../../events/jobs-api/create-job.json")),
    )
}

pub fn preferences(r: &mut Registry) -> Body {
    let event_type = r.of::<EventType>();
    let schema = object(
        vec![(
            "muted_event_types",
            json!({
                "type": "array",
                "items": event_type,
                "description": "The event types to hear nothing about (the whole list: it replaces the last one).",
            }),
        )],
        &["muted_event_types"],
    );
    body(
        r,
        "PreferencesUpdate",
        JSON,
        64 * 1024,
        schema,
        recorded(include_str!(
            "../../../events/feed-api/set-preferences.json"
        )),
    )
}
