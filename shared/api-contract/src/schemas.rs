//! The schema registry both documents share: the domain's types by `$ref`, and the few shapes
//! that exist only on the wire (pages, upload instructions, counters), composed of them.

use domain::{
    ActivityBody, DisplayName, DomainEvent, EpisodeBody, EpisodeId, EventType, FileBody, JobBody,
    NotificationBody, Preferences, Timestamp, UserId, Viewer,
};
use lambda_kit::Problem;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// Where both documents keep their schemas.
pub const PATH: &str = "/components/schemas";

/// The schemas referenced so far, to be written under `components/schemas`.
pub struct Registry {
    generator: SchemaGenerator,
    extra: Map<String, Value>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    /// JSON Schema 2020-12 (OpenAPI 3.1's dialect).
    pub fn draft_2020_12() -> Self {
        Self::with(SchemaSettings::draft2020_12())
    }

    /// JSON Schema draft-07 (AsyncAPI 3's default schema format is a superset of it).
    pub fn draft_07() -> Self {
        Self::with(SchemaSettings::draft07())
    }

    fn with(settings: SchemaSettings) -> Self {
        // The wire types as they are serialized: an `Option` is there as null, a field skipped
        // when empty may be absent.
        let generator = settings
            .for_serialize()
            .with(|s| {
                s.definitions_path = PATH.into();
            })
            .into_generator();
        Self {
            generator,
            extra: Map::new(),
        }
    }

    /// `T`'s schema by reference (or inline, for the types schemars inlines).
    pub fn of<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// `T` or null.
    pub fn nullable<T: JsonSchema>(&mut self) -> Value {
        json!({ "anyOf": [self.of::<T>(), { "type": "null" }] })
    }

    /// A schema defined here rather than by a Rust type, registered under `name`.
    pub fn define(&mut self, name: &str, schema: Value) -> Value {
        self.extra.insert(name.to_owned(), schema);
        reference(name)
    }

    /// A schema referenced so far, by name.
    pub fn definition(&self, name: &str) -> Option<Value> {
        self.generator
            .definitions()
            .get(name)
            .cloned()
            .or_else(|| self.extra.get(name).cloned())
    }

    /// Every schema referenced, by name.
    pub fn into_components(mut self) -> Map<String, Value> {
        let mut all: Map<String, Value> =
            self.generator.take_definitions(true).into_iter().collect();
        all.append(&mut self.extra);
        all
    }
}

pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#{PATH}/{name}") })
}

/// A JSON object with exactly these properties; `required` names the ones that must be there.
pub fn object(properties: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let props: Map<String, Value> = properties
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// The headers a presigned request must carry as they are.
fn signed_headers(what: &str) -> Value {
    json!({
        "type": "object",
        "additionalProperties": { "type": "string" },
        "description": format!("Send exactly these headers with the {what}: they are part of its signature."),
    })
}

/// The shapes that exist only on the wire. Each returns its `$ref`.
impl Registry {
    pub fn problem(&mut self) -> Value {
        self.of::<Problem>()
    }

    /// What API Gateway itself answers (401 without a valid token, 404 for no route, 429 when
    /// throttled, 5xx when a function fails): `{"message": ...}`, not a problem.
    pub fn gateway_error(&mut self) -> Value {
        self.define(
            "GatewayError",
            json!({
                "type": "object",
                "description": "API Gateway's own answer, before any function ran: a missing or invalid token (401), no such route (404), throttling (429), a function that failed or timed out (5xx).",
                "properties": { "message": { "type": "string" } },
                "required": ["message"],
            }),
        )
    }

    pub fn page<T: JsonSchema>(&mut self, name: &str) -> Value {
        let item = self.of::<T>();
        self.define(
            name,
            object(
                vec![
                    ("items", json!({ "type": "array", "items": item })),
                    (
                        "next_cursor",
                        json!({
                            "type": ["string", "null"],
                            "description": "Pass as `cursor` for the next page; null on the last page.",
                        }),
                    ),
                ],
                &["items", "next_cursor"],
            ),
        )
    }

    pub fn episode(&mut self) -> Value {
        self.of::<EpisodeBody>()
    }

    pub fn file(&mut self) -> Value {
        self.of::<FileBody>()
    }

    pub fn job(&mut self) -> Value {
        self.of::<JobBody>()
    }

    pub fn activity_page(&mut self) -> Value {
        self.page::<ActivityBody>("ActivityPage")
    }

    pub fn notification_page(&mut self) -> Value {
        self.page::<NotificationBody>("NotificationPage")
    }

    pub fn preferences(&mut self) -> Value {
        self.of::<Preferences>()
    }

    pub fn health(&mut self) -> Value {
        self.define(
            "Health",
            object(
                vec![
                    ("status", json!({ "const": "ok" })),
                    ("function", json!({ "type": "string" })),
                    ("version", json!({ "type": "string" })),
                ],
                &["status", "function", "version"],
            ),
        )
    }

    fn signed_request(&mut self, name: &str, method: &str, with_headers: bool) -> Value {
        let expires = self.of::<Timestamp>();
        let mut props = vec![
            ("method", json!({ "const": method })),
            ("url", json!({ "type": "string", "format": "uri" })),
            ("expires_at", expires),
        ];
        let mut required = vec!["method", "url", "expires_at"];
        if with_headers {
            props.push(("headers", signed_headers("request")));
            required.push("headers");
        }
        self.define(name, object(props, &required))
    }

    pub fn download(&mut self) -> Value {
        self.signed_request("Download", "GET", true)
    }

    pub fn file_created(&mut self) -> Value {
        let file = self.file();
        let expires = self.of::<Timestamp>();
        let complete = json!({
            "type": "string",
            "description": "The path to POST once the bytes are uploaded.",
        });
        let single = self.define(
            "SingleUpload",
            object(
                vec![
                    ("kind", json!({ "const": "single" })),
                    ("method", json!({ "const": "PUT" })),
                    ("url", json!({ "type": "string", "format": "uri" })),
                    ("headers", signed_headers("PUT")),
                    ("complete", complete.clone()),
                    ("expires_at", expires.clone()),
                ],
                &["kind", "method", "url", "headers", "complete", "expires_at"],
            ),
        );
        let part = self.define(
            "UploadPart",
            object(
                vec![
                    ("number", json!({ "type": "integer", "minimum": 1, "maximum": domain::file::MAX_PARTS })),
                    ("method", json!({ "const": "PUT" })),
                    ("url", json!({ "type": "string", "format": "uri" })),
                ],
                &["number", "method", "url"],
            ),
        );
        let multipart = self.define(
            "MultipartUpload",
            object(
                vec![
                    ("kind", json!({ "const": "multipart" })),
                    (
                        "part_size",
                        json!({
                            "type": "integer",
                            "minimum": domain::file::MIN_PART_SIZE,
                            "description": "Every part but the last has exactly this many bytes.",
                        }),
                    ),
                    ("parts", json!({ "type": "array", "items": part })),
                    ("complete", complete),
                    ("expires_at", expires),
                ],
                &["kind", "part_size", "parts", "complete", "expires_at"],
            ),
        );
        self.define(
            "FileCreated",
            object(
                vec![
                    ("file", file),
                    (
                        "upload",
                        json!({
                            "description": "How to upload the bytes: one PUT up to 100 MiB, parts above.",
                            "oneOf": [single, multipart],
                        }),
                    ),
                ],
                &["file", "upload"],
            ),
        )
    }

    pub fn presence(&mut self) -> Value {
        let episode = self.of::<EpisodeId>();
        let viewer = self.of::<Viewer>();
        let user = self.of::<UserId>();
        let name = self.of::<DisplayName>();
        let at = self.of::<Timestamp>();
        let seen = self.define(
            "LastSeen",
            object(
                vec![("id", user), ("name", name), ("last_seen", at)],
                &["id", "name", "last_seen"],
            ),
        );
        self.define(
            "Presence",
            object(
                vec![
                    ("episode_id", episode),
                    (
                        "viewers",
                        json!({
                            "type": "array",
                            "items": viewer,
                            "description": "Who is looking at the episode now: one per person, however many tabs.",
                        }),
                    ),
                    (
                        "last_seen",
                        json!({
                            "type": "array",
                            "items": seen,
                            "description": "Who looked at it before (30 days), most recent first.",
                        }),
                    ),
                    (
                        "next_cursor",
                        json!({
                            "type": ["string", "null"],
                            "description": "Pass as `cursor` for the next page; null on the last page. Pages go by user id; within one, viewers come longest-present first.",
                        }),
                    ),
                ],
                &["episode_id", "viewers", "last_seen", "next_cursor"],
            ),
        )
    }

    pub fn unread_count(&mut self) -> Value {
        self.define(
            "UnreadCount",
            object(
                vec![
                    ("unread", json!({ "type": "integer", "minimum": 0 })),
                    (
                        "unseen",
                        json!({
                            "type": "integer",
                            "minimum": 0,
                            "description": "Unread ones the bell has not shown yet (never more than `unread`).",
                        }),
                    ),
                ],
                &["unread", "unseen"],
            ),
        )
    }

    pub fn marked(&mut self) -> Value {
        self.define(
            "Marked",
            object(
                vec![("marked", json!({ "type": "integer", "minimum": 0 }))],
                &["marked"],
            ),
        )
    }

    pub fn read_all(&mut self) -> Value {
        self.define(
            "ReadAll",
            object(
                vec![
                    ("marked", json!({ "type": "integer", "minimum": 0 })),
                    (
                        "more",
                        json!({
                            "type": "boolean",
                            "description": "At most 1,000 are marked per call: call again while true.",
                        }),
                    ),
                ],
                &["marked", "more"],
            ),
        )
    }

    /// The domain event envelope, with `data` per event type.
    pub fn event(&mut self) -> Value {
        self.of::<DomainEvent>()
    }

    /// The `data` of each event type.
    pub fn event_data(&mut self) -> Vec<(EventType, Value)> {
        let episode = self.episode();
        let file = self.file();
        let job = self.job();
        let with_episode = self.define(
            "EpisodeEventData",
            object(vec![("episode", episode)], &["episode"]),
        );
        let changes = self.episode_changes();
        let version = self.of::<domain::Version>();
        let updated = self.define(
            "EpisodeUpdatedData",
            object(
                vec![("changes", changes), ("version", version)],
                &["changes", "version"],
            ),
        );
        let deleted = self.define("EpisodeDeletedData", object(vec![], &[]));
        let with_file = self.define("FileEventData", object(vec![("file", file)], &["file"]));
        let with_job = self.define("JobEventData", object(vec![("job", job.clone())], &["job"]));
        let retry = self.define(
            "JobRetryScheduledData",
            object(
                vec![
                    ("job", job),
                    (
                        "retry_in_seconds",
                        json!({ "type": "integer", "minimum": 0 }),
                    ),
                ],
                &["job", "retry_in_seconds"],
            ),
        );
        let export_id = self.of::<domain::ExportId>();
        let export_state = self.of::<domain::export::ExportState>();
        let filters = self.of::<domain::export::ExportFilters>();
        let summary = object(
            vec![
                ("id", export_id),
                ("state", export_state),
                ("filters", filters),
                ("entries", json!({ "type": "integer", "minimum": 0 })),
                ("error", json!({ "type": ["string", "null"] })),
                (
                    "href",
                    json!({ "type": "string", "description": "The export: `GET` it for fresh download links." }),
                ),
            ],
            &["id", "state", "filters", "entries", "error", "href"],
        );
        let exported = self.define(
            "ActivityExportedData",
            object(vec![("export", summary)], &["export"]),
        );
        EventType::ALL
            .into_iter()
            .map(|t| {
                let data = match t {
                    EventType::ActivityExported => exported.clone(),
                    EventType::EpisodeCreated => with_episode.clone(),
                    EventType::EpisodeUpdated => updated.clone(),
                    EventType::EpisodeDeleted => deleted.clone(),
                    EventType::FileUploaded
                    | EventType::FileDownloaded
                    | EventType::FileDeleted => with_file.clone(),
                    EventType::JobRetryScheduled => retry.clone(),
                    _ => with_job.clone(),
                };
                (t, data)
            })
            .collect()
    }

    /// The fields an `episode.updated` event says changed, with their new values (null: cleared).
    fn episode_changes(&mut self) -> Value {
        let props = vec![
            ("title", self.of::<domain::Title>()),
            ("description", self.of::<domain::Description>()),
            ("series", self.nullable::<domain::SeriesName>()),
            ("season", self.nullable::<domain::PositiveNumber>()),
            ("number", self.nullable::<domain::PositiveNumber>()),
            ("air_date", self.nullable::<domain::AirDate>()),
            ("status", self.of::<domain::EpisodeStatus>()),
        ];
        self.define("EpisodeChanges", object(props, &[]))
    }
}
