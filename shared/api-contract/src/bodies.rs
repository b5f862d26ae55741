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

/// The parameters one job type takes (null or `{}` for none: every parameter has a default).
pub fn job_params(job_type: JobType) -> Value {
    use domain::job as j;
    let properties = match job_type {
        JobType::Thumbnail => json!({
            "max_size": { "type": "integer", "minimum": j::THUMBNAIL_MIN, "maximum": j::THUMBNAIL_MAX },
        }),
        JobType::Loudness => json!({
            "preset": { "enum": j::LoudnessPreset::ALL.map(j::LoudnessPreset::as_str) },
            "integrated_lufs": { "type": "number", "minimum": j::TARGET_LUFS.0, "maximum": j::TARGET_LUFS.1 },
            "tolerance_lu": { "type": "number", "minimum": j::TOLERANCE_LU.0, "maximum": j::TOLERANCE_LU.1 },
            "max_true_peak_dbtp": { "type": "number", "minimum": j::TRUE_PEAK_DBTP.0, "maximum": j::TRUE_PEAK_DBTP.1 },
        }),
        JobType::Waveform => json!({
            "samples_per_pixel": { "type": "integer", "minimum": j::SAMPLES_PER_PIXEL.0, "maximum": j::SAMPLES_PER_PIXEL.1 },
            "pixels_per_second": { "type": "integer", "minimum": j::PIXELS_PER_SECOND.0, "maximum": j::PIXELS_PER_SECOND.1 },
            "bits": { "enum": [8, 16] },
            "split_channels": { "type": "boolean" },
        }),
        JobType::Checksum | JobType::MediaProbe => json!({}),
    };
    let mut object = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if job_type == JobType::Waveform {
        // One resolution or the other.
        object["not"] = json!({ "required": ["samples_per_pixel", "pixels_per_second"] });
    }
    json!({ "anyOf": [{ "type": "null" }, object] })
}

/// `params` by `type`: one `if`/`then` per job type.
fn params_by_type() -> Value {
    Value::Array(
        JobType::ALL
            .into_iter()
            .map(|t| {
                json!({
                    "if": { "properties": { "type": { "const": t.as_str() } }, "required": ["type"] },
                    "then": { "properties": { "params": job_params(t) } },
                })
            })
            .collect(),
    )
}

pub fn new_job(r: &mut Registry) -> Body {
    let params = json!({
        "type": ["object", "null"],
        "description": "Per type: `max_size` (16–2048 pixels, default 256) for a thumbnail; `preset` (`podcast`: −16 LUFS ± 1 LU, true peak ≤ −1 dBTP, the default; `ebu-r128`: −23 LUFS ± 0.5 LU) and any of `integrated_lufs`, `tolerance_lu`, `max_true_peak_dbtp` for loudness; `pixels_per_second` (default 20) or `samples_per_pixel`, `bits` (8, the default, or 16) and `split_channels` for a waveform; nothing for the others.",
    });
    let mut schema = object(
        vec![
            ("type", r.of::<JobType>()),
            ("file_id", r.of::<FileId>()),
            ("params", params),
        ],
        &["type", "file_id"],
    );
    schema["allOf"] = params_by_type();
    body(
        r,
        "NewJob",
        JSON,
        16 * 1024,
        schema,
        recorded(include_str!("../../../events/jobs-api/create-job.json")),
    )
}

/// The body of `PUT /episodes/{id}/upload-rules`: for each kind of file it names, the jobs (a
/// type, or a type with parameters) a new file of that kind starts.
pub fn upload_rules(r: &mut Registry) -> Body {
    let properties = domain::upload_rules::KINDS
        .into_iter()
        .map(|kind| {
            let types: Vec<&str> = JobType::ALL
                .into_iter()
                .filter(|t| t.reads(kind))
                .map(JobType::as_str)
                .collect();
            let with_params: Vec<Value> = JobType::ALL
                .into_iter()
                .filter(|t| t.reads(kind))
                .map(|t| {
                    json!({
                        "type": "object",
                        "properties": { "type": { "const": t.as_str() }, "params": job_params(t) },
                        "required": ["type"],
                        "additionalProperties": false,
                    })
                })
                .collect();
            let list = json!({
                "type": "array",
                "description": format!("The jobs a new {} file starts (each type at most once; `[]`: none).", kind.as_str()),
                "maxItems": types.len(),
                "uniqueItems": true,
                "items": { "anyOf": [{ "enum": types }, { "oneOf": with_params }] },
            });
            (kind.as_str(), list)
        })
        .collect::<Vec<_>>();
    let schema = object(properties, &[]);
    body(
        r,
        "UploadRulesChange",
        JSON,
        16 * 1024,
        schema,
        recorded(include_str!(
            "../../../events/jobs-api/put-upload-rules.json"
        )),
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

pub fn seen(r: &mut Registry) -> Body {
    let id = r.of::<domain::EventId>();
    let schema = object(
        vec![(
            "ids",
            json!({
                "type": "array",
                "items": id,
                "maxItems": domain::store::notification::MAX_MOVED_AT_ONCE,
                "uniqueItems": true,
                "description": "The notifications the bell showed (each at most once).",
            }),
        )],
        &["ids"],
    );
    body(
        r,
        "SeenUpdate",
        JSON,
        16 * 1024,
        schema,
        recorded(include_str!("../../../events/feed-api/mark-seen.json")),
    )
}

pub fn export_filters(r: &mut Registry) -> Body {
    let user = r.of::<domain::UserId>();
    let action = r.of::<EventType>();
    let kind = r.of::<domain::ResourceKind>();
    let episode = r.of::<domain::EpisodeId>();
    let instant = |what: &str| json!({ "type": "string", "format": "date-time", "description": format!("Only entries {what} this instant (RFC 3339).") });
    let schema = object(
        vec![
            (
                "episode_id",
                json!({ "allOf": [episode], "description": "Only entries about this episode." }),
            ),
            (
                "actor",
                json!({ "allOf": [user], "description": "Only what this user did." }),
            ),
            (
                "action",
                json!({ "allOf": [action], "description": "Only this event type." }),
            ),
            (
                "resource_type",
                json!({ "allOf": [kind], "description": "Only entries about this kind of resource." }),
            ),
            (
                "resource_id",
                json!({ "type": "string", "minLength": 1, "maxLength": 128, "description": "Only entries about this resource." }),
            ),
            ("from", instant("at or after")),
            (
                "to",
                instant("at or before (before `from`: an empty export)"),
            ),
        ],
        &[],
    );
    body(
        r,
        "ActivityExportRequest",
        JSON,
        4 * 1024,
        schema,
        recorded(include_str!("../../../events/feed-api/start-export.json")),
    )
}
