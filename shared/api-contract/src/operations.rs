//! The route table: every route of the HTTP API, as the template routes it, with what it takes
//! and what it answers. The schemas are built in a [`Registry`], so the operations and the
//! components they reference come from one pass.

use domain::{EpisodeId, EpisodeStatus, EventId, EventType, FileId, JobId, JobState, UserId};
use serde_json::{Value, json};

use crate::schemas::Registry;
use crate::{Access, Function, In, Link, Operation, Param, Reply, bodies};

/// The operations, without their schemas' definitions (see [`table`]).
pub fn operations() -> Vec<Operation> {
    table(&mut Registry::draft_2020_12())
}

fn param(
    name: &'static str,
    at: In,
    required: bool,
    description: &'static str,
    schema: Value,
) -> Param {
    Param {
        name,
        at,
        required,
        description,
        schema,
    }
}

fn path_id<T: schemars::JsonSchema>(r: &mut Registry, description: &'static str) -> Param {
    param("id", In::Path, true, description, r.of::<T>())
}

fn limit() -> Param {
    param(
        "limit",
        In::Query,
        false,
        "How many items a page holds (20 when not given).",
        json!({ "type": "integer", "minimum": 1, "maximum": domain::store::PageSize::MAX, "default": 20 }),
    )
}

fn cursor() -> Param {
    param(
        "cursor",
        In::Query,
        false,
        "The `next_cursor` of the page before: opaque, and bound to the list and filters it was made for (400 otherwise).",
        json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]+$" }),
    )
}

fn if_match(description: &'static str) -> Param {
    param(
        "If-Match",
        In::Header,
        false,
        description,
        json!({
            "type": "string",
            "pattern": "^\\s*(\"[1-9][0-9]{0,15}\"\\s*)?$",
            "description": "One strong entity tag as `ETag` gave it; an empty value is the same as none.",
            "examples": ["\"3\""],
        }),
    )
}

fn reply(status: u16, description: &'static str, schema: Option<Value>) -> Reply {
    Reply {
        status,
        description,
        schema,
        headers: Vec::new(),
        links: Vec::new(),
        example: None,
    }
}

fn with_headers(mut reply: Reply, headers: &[&'static str]) -> Reply {
    reply.headers.extend_from_slice(headers);
    reply
}

fn with_links(mut reply: Reply, links: Vec<Link>) -> Reply {
    reply.links = links;
    reply
}

fn with_example(mut reply: Reply, example: Value) -> Reply {
    reply.example = Some(example);
    reply
}

fn link(
    name: &'static str,
    operation_id: &'static str,
    parameters: &[(&'static str, &'static str)],
) -> Link {
    Link {
        name,
        operation_id,
        parameters: parameters.to_vec(),
        request_body: None,
    }
}

/// The problems an operation may answer with, besides 401 and 5xx (added to every one).
fn problems(r: &mut Registry, cases: &[(u16, &'static str)]) -> Vec<Reply> {
    cases
        .iter()
        .map(|(status, description)| reply(*status, description, Some(r.problem())))
        .collect()
}

const BAD_ID: (u16, &str) = (
    400,
    "The id is not one (ids are UUIDv7, lower case), or a query parameter is unknown, repeated or invalid; `errors` names each.",
);
const BAD_QUERY: (u16, &str) = (
    400,
    "A query parameter is unknown, repeated or invalid; `errors` names each.",
);
const TOO_LARGE: (u16, &str) = (413, "The body is larger than the operation accepts.");
const MEDIA_TYPE: (u16, &str) = (415, "The body is not `application/json`.");
const INVALID: (u16, &str) = (
    422,
    "The body is not a JSON object of the fields described, or a field is invalid; `errors` names each (unknown fields too). Malformed JSON is 400.",
);
const VIEWER: (u16, &str) = (
    403,
    "Viewers cannot do this: it takes an editor or an admin.",
);

/// Every operation, its schemas registered in `r`.
pub fn table(r: &mut Registry) -> Vec<Operation> {
    let mut ops = Vec::new();
    ops.extend(episodes(r));
    ops.extend(feed(r));
    ops.extend(files(r));
    ops.extend(jobs(r));
    ops.extend(analytics(r));
    ops
}

fn analytics(r: &mut Registry) -> Vec<Operation> {
    let episodes = r.of::<domain::analytics::EpisodeReport>();
    let jobs = r.of::<domain::analytics::JobReport>();
    let period = || {
        vec![
            param(
                "from",
                In::Query,
                false,
                "The period's start (RFC 3339): 30 days before `to` when not given; at most 366 days before it.",
                json!({ "type": "string", "format": "date-time" }),
            ),
            param(
                "to",
                In::Query,
                false,
                "The period's end, not included (RFC 3339): now when not given.",
                json!({ "type": "string", "format": "date-time" }),
            ),
        ]
    };
    let refused = (
        400,
        "`from` or `to` is not an RFC 3339 date-time, the period is longer than 366 days, or a query parameter is unknown or repeated; `errors` names each. A period that ends before it starts is not refused: it holds nothing.",
    );
    let viewers = (403, "The analytics are for editors and admins.");
    vec![
        Operation {
            id: "getEpisodeAnalytics",
            method: "GET",
            path: "/analytics/episodes",
            function: Function::Analytics,
            access: Access::Editors,
            tag: "analytics",
            summary: "Episodes per status, time in status, publications per week",
            description: "Kept by the analytics worker from the episodes' events as they come (no scan of the episodes): for every status, the episodes in it now and the median, p90 and p99 of the stays in it that ended within the period (a stay is from the move into the status to the move out of it); for every week the period overlaps (by its Monday, UTC), the episodes first published that week. A deleted episode counts nowhere. Redelivered and out-of-order events change nothing.",
            params: period(),
            body: None,
            replies: [
                vec![reply(200, "The figures.", Some(episodes))],
                problems(r, &[refused, viewers]),
            ]
            .concat(),
        },
        Operation {
            id: "getJobAnalytics",
            method: "GET",
            path: "/analytics/jobs",
            function: Function::Analytics,
            access: Access::Editors,
            tag: "analytics",
            summary: "Jobs per type: success rate and durations",
            description: "For every job type, the attempts that ended within the period: how many succeeded and failed (a failed attempt to be tried again counts as failed), the success rate, and the median, p90 and p99 of each attempt's time from its start to its end (the attempts whose start is known). A retried job counts each attempt that ended.",
            params: period(),
            body: None,
            replies: [
                vec![reply(200, "The figures.", Some(jobs))],
                problems(r, &[refused, viewers]),
            ]
            .concat(),
        },
    ]
}

fn episodes(r: &mut Registry) -> Vec<Operation> {
    let episode = r.episode();
    let page = r.page::<domain::EpisodeBody>("EpisodePage");
    let health = r.health();
    let episode_example: Value =
        serde_json::from_str(include_str!("../../../events/domain/episode.created.json"))
            .ok()
            .and_then(|e: Value| e.pointer("/data/episode").cloned())
            .unwrap_or(Value::Null);
    let by_id = |r: &mut Registry| path_id::<EpisodeId>(r, "The episode.");
    let to_episode = vec![
        link("GetEpisode", "getEpisode", &[("id", "$response.body#/id")]),
        link(
            "UpdateEpisode",
            "updateEpisode",
            &[
                ("id", "$response.body#/id"),
                ("header.If-Match", "$response.header.ETag"),
            ],
        ),
        link(
            "DeleteEpisode",
            "deleteEpisode",
            &[
                ("id", "$response.body#/id"),
                ("header.If-Match", "$response.header.ETag"),
            ],
        ),
        link("UploadFile", "createFile", &[("id", "$response.body#/id")]),
        link("ListFiles", "listFiles", &[("id", "$response.body#/id")]),
        link("ListJobs", "listJobs", &[("id", "$response.body#/id")]),
        link(
            "WatchEpisode",
            "watchEpisode",
            &[("id", "$response.body#/id")],
        ),
        link(
            "EpisodeActivity",
            "listEpisodeActivity",
            &[("id", "$response.body#/id")],
        ),
        link(
            "EpisodePresence",
            "getPresence",
            &[("id", "$response.body#/id")],
        ),
    ];
    let mut list_problems = problems(
        r,
        &[
            BAD_QUERY,
            (
                422,
                "A word of `q` matches too many episodes to rank (more than 25,000 index entries): type more of it.",
            ),
        ],
    );
    list_problems.insert(
        0,
        reply(
            200,
            "A page of episodes: newest first; with `q`, by fields matched, then newest.",
            Some(page),
        ),
    );
    vec![
        Operation {
            id: "getHealth",
            method: "GET",
            path: "/health",
            function: Function::Episodes,
            access: Access::Public,
            tag: "meta",
            summary: "Whether the episodes function answers",
            description: "No token needed; touches no store.",
            params: vec![],
            body: None,
            replies: vec![reply(200, "The function answers.", Some(health))],
        },
        Operation {
            id: "getOpenApi",
            method: "GET",
            path: "/openapi.json",
            function: Function::Episodes,
            access: Access::Public,
            tag: "meta",
            summary: "This document",
            description: "The OpenAPI 3.1 description of the HTTP API, generated from the code. No token needed.",
            params: vec![],
            body: None,
            replies: vec![reply(200, "The OpenAPI document.", Some(json!({ "type": "object" })))],
        },
        Operation {
            id: "getAsyncApi",
            method: "GET",
            path: "/asyncapi.json",
            function: Function::Episodes,
            access: Access::Public,
            tag: "meta",
            summary: "The WebSocket protocol",
            description: "The AsyncAPI 3.0 description of the WebSocket API (messages, frames, the domain events they carry), generated from the code. No token needed.",
            params: vec![],
            body: None,
            replies: vec![reply(200, "The AsyncAPI document.", Some(json!({ "type": "object" })))],
        },
        Operation {
            id: "listEpisodes",
            method: "GET",
            path: "/episodes",
            function: Function::Episodes,
            access: Access::Anyone,
            tag: "episodes",
            summary: "List episodes",
            description: "Newest first; deleted episodes are not listed. With `q`, a search: the episodes whose title, series and description hold every word of `q` (case and accents ignored; a word of two or more characters matches the words it starts, so `pil` finds Pilot; a one-character word matches only itself), ranked by how many of the three fields matched, then newest first. The index follows changes through the event pipeline (a change is found within its latency, usually a second or two); each page is checked against the episodes as they are, so a deleted episode, or one that lost the words, is never answered. A page may hold fewer than `limit` episodes and still have a `next_cursor` when most matches were of another `status`.",
            params: vec![
                param(
                    "q",
                    In::Query,
                    false,
                    "Words to search for, all required: at most 200 characters and 8 distinct words (more is 400). Words are runs of letters and digits of any script; a `q` with none finds nothing.",
                    json!({ "type": "string", "maxLength": 200 }),
                ),
                param("status", In::Query, false, "Only episodes with this status.", r.of::<EpisodeStatus>()),
                limit(),
                cursor(),
            ],
            body: None,
            replies: list_problems,
        },
        Operation {
            id: "createEpisode",
            method: "POST",
            path: "/episodes",
            function: Function::Episodes,
            access: Access::Editors,
            tag: "episodes",
            summary: "Create an episode",
            description: "A new episode is a draft at version 1. With an `Idempotency-Key`, the same request within 24 hours answers the episode it created (200) instead of creating another: a client may repeat a create whose answer it did not get (a timeout, a 503).",
            params: vec![idempotency_key("Makes the request safe to repeat: the same key with the same request within 24 hours answers the same episode; with another request, 409.")],
            body: Some(bodies::new_episode(r)),
            replies: [
                vec![
                    with_example(
                        with_links(
                            with_headers(
                                reply(201, "Created.", Some(episode.clone())),
                                &["ETag", "Location"],
                            ),
                            to_episode.clone(),
                        ),
                        episode_example.clone(),
                    ),
                    with_links(
                        with_headers(
                            reply(200, "This `Idempotency-Key` created this episode already: here it is, as it is now.", Some(episode.clone())),
                            &["ETag", "Location"],
                        ),
                        to_episode,
                    ),
                ],
                problems(
                    r,
                    &[
                        (400, "The body is not JSON, or the `Idempotency-Key` is not 1–255 visible ASCII characters."),
                        VIEWER,
                        (404, "The episode this `Idempotency-Key` created has been deleted since."),
                        (409, "Another write to the same episode happened at the same moment (retry), or this `Idempotency-Key` was used in the last 24 hours for a different request."),
                        TOO_LARGE,
                        MEDIA_TYPE,
                        INVALID,
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "getEpisode",
            method: "GET",
            path: "/episodes/{id}",
            function: Function::Episodes,
            access: Access::Anyone,
            tag: "episodes",
            summary: "Read an episode",
            description: "`ETag` is its version, for `If-Match` on the next write.",
            params: vec![by_id(r)],
            body: None,
            replies: [
                vec![with_example(
                    with_links(
                        with_headers(reply(200, "The episode.", Some(episode)), &["ETag"]),
                        vec![link(
                            "UpdateEpisode",
                            "updateEpisode",
                            &[("id", "$request.path.id"), ("header.If-Match", "$response.header.ETag")],
                        )],
                    ),
                    episode_example,
                )],
                problems(r, &[BAD_ID, (404, "No such episode (or it was deleted).")]),
            ]
            .concat(),
        },
        Operation {
            id: "updateEpisode",
            method: "PATCH",
            path: "/episodes/{id}",
            function: Function::Episodes,
            access: Access::Editors,
            tag: "episodes",
            summary: "Change an episode",
            description: "A merge patch. Name the version you edited: `If-Match` with its `ETag` (412 when stale), or `version` in the body (409 when stale); neither is 428.",
            params: vec![
                by_id(r),
                if_match("The `ETag` of the version you edited."),
            ],
            body: Some(bodies::episode_patch(r)),
            replies: [
                vec![with_links(
                    with_headers(reply(204, "Changed; `ETag` is the new version.", None), &["ETag"]),
                    vec![link("GetEpisode", "getEpisode", &[("id", "$request.path.id")])],
                )],
                problems(
                    r,
                    &[
                        (400, "The id is not an episode id, the body is not JSON, `If-Match` is not one entity tag, or it disagrees with `version`."),
                        VIEWER,
                        (404, "No such episode (or it was deleted)."),
                        (409, "The `version` in the body is stale, the status cannot move to the one asked for from where it is, or another write happened at the same moment."),
                        (412, "`If-Match` names a version that is not the current one: read the episode again."),
                        TOO_LARGE,
                        (415, "The body is not `application/json` or `application/merge-patch+json`."),
                        INVALID,
                        (428, "Neither `If-Match` nor `version` says which version you edited."),
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "deleteEpisode",
            method: "DELETE",
            path: "/episodes/{id}",
            function: Function::Episodes,
            access: Access::Editors,
            tag: "episodes",
            summary: "Delete an episode",
            description: "Its creator or an admin; its files go with it.",
            params: vec![
                by_id(r),
                if_match("Delete only if the episode is still at this version."),
            ],
            body: None,
            replies: [
                vec![reply(204, "Deleted.", None)],
                problems(
                    r,
                    &[
                        (400, "The id is not an episode id, or `If-Match` is not one entity tag."),
                        (403, "Only an admin or the episode's creator may delete it."),
                        (404, "No such episode (or it was deleted already)."),
                        (409, "Another write happened at the same moment: retry."),
                        (412, "`If-Match` names a version that is not the current one."),
                    ],
                ),
            ]
            .concat(),
        },
    ]
}

fn feed(r: &mut Registry) -> Vec<Operation> {
    let activity = r.activity_page();
    let notifications = r.notification_page();
    let presence = r.presence();
    let unread = r.unread_count();
    let read_all = r.read_all();
    let marked = r.marked();
    let preferences = r.preferences();
    let export = r.of::<domain::export::ExportBody>();
    let episode = |r: &mut Registry| path_id::<EpisodeId>(r, "The episode.");
    let anyone = |id, method, path, tag, summary, description, params, replies| Operation {
        id,
        method,
        path,
        function: Function::Feed,
        access: Access::Anyone,
        tag,
        summary,
        description,
        params,
        body: None,
        replies,
    };
    let not_found = (404, "No such episode (or it was deleted).");
    let action_schema = r.of::<EventType>();
    vec![
        anyone(
            "listEpisodeActivity",
            "GET",
            "/episodes/{id}/activity",
            "activity",
            "An episode's activity",
            "Who did what to the episode, its files and its jobs, newest first.",
            vec![episode(r), limit(), cursor()],
            [
                vec![reply(
                    200,
                    "A page of entries, newest first.",
                    Some(activity.clone()),
                )],
                problems(r, &[BAD_ID]),
            ]
            .concat(),
        ),
        Operation {
            id: "listActivity",
            method: "GET",
            path: "/activity",
            function: Function::Feed,
            access: Access::Admins,
            tag: "activity",
            summary: "The audit log",
            description: "Every entry, newest first, filtered. A filtered page may hold fewer than `limit` entries and still have a `next_cursor`.",
            params: vec![
                param(
                    "episode_id",
                    In::Query,
                    false,
                    "Only entries about this episode.",
                    r.of::<EpisodeId>(),
                ),
                param(
                    "actor",
                    In::Query,
                    false,
                    "Only what this user did.",
                    r.of::<UserId>(),
                ),
                param(
                    "action",
                    In::Query,
                    false,
                    "Only this event type.",
                    action_schema,
                ),
                param(
                    "resource_type",
                    In::Query,
                    false,
                    "Only entries about this kind of resource.",
                    r.of::<domain::ResourceKind>(),
                ),
                param(
                    "resource_id",
                    In::Query,
                    false,
                    "Only entries about this resource (with `resource_type`, or alone).",
                    json!({ "type": "string", "minLength": 1, "maxLength": 128 }),
                ),
                param(
                    "from",
                    In::Query,
                    false,
                    "Only entries at or after this instant (RFC 3339).",
                    json!({ "type": "string", "format": "date-time" }),
                ),
                param(
                    "to",
                    In::Query,
                    false,
                    "Only entries at or before this instant (RFC 3339).",
                    json!({ "type": "string", "format": "date-time" }),
                ),
                limit(),
                cursor(),
            ],
            body: None,
            replies: [
                vec![reply(
                    200,
                    "A page of entries, newest first.",
                    Some(activity),
                )],
                problems(
                    r,
                    &[BAD_QUERY, (403, "Only admins read the whole activity log.")],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "startActivityExport",
            method: "POST",
            path: "/activity/exports",
            function: Function::Feed,
            access: Access::Admins,
            tag: "activity",
            summary: "Export the audit log",
            description: "Starts an export of every entry matching the filters of `GET /activity` (all optional) as JSON Lines and CSV, newest first. It is queued (202); `GET /activity/exports/{id}` follows it. When it ends, the requester gets a notification with a download link and the log gets an `activity.exported` entry. Exports are kept `ExportRetentionDays` (730), longer than the entries.",
            params: vec![],
            body: Some(bodies::export_filters(r)),
            replies: [
                vec![with_headers(
                    reply(202, "Queued.", Some(export.clone())),
                    &["Location"],
                )],
                problems(
                    r,
                    &[
                        (400, "The body is not JSON, or a query parameter was given."),
                        (403, "Only admins export the activity log."),
                        TOO_LARGE,
                        MEDIA_TYPE,
                        INVALID,
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "getActivityExport",
            method: "GET",
            path: "/activity/exports/{id}",
            function: Function::Feed,
            access: Access::Admins,
            tag: "activity",
            summary: "An export of the audit log",
            description: "Where it is; once it succeeded, a link to each file, signed now and valid for an hour.",
            params: vec![path_id::<domain::ExportId>(r, "The export.")],
            body: None,
            replies: [
                vec![reply(200, "The export.", Some(export))],
                problems(
                    r,
                    &[
                        BAD_ID,
                        (403, "Only admins read exports."),
                        (404, "No such export (or it expired)."),
                    ],
                ),
            ]
            .concat(),
        },
        anyone(
            "getPresence",
            "GET",
            "/episodes/{id}/presence",
            "presence",
            "Who is looking at an episode",
            "Who has it open now (one entry per person, however many tabs) and who looked at it before, up to 100 people a page (`limit`). Live changes come over the WebSocket as `presence` frames, or as `presence.occupancy` counts when too many people look at it to list in a frame.",
            vec![
                episode(r),
                param(
                    "limit",
                    In::Query,
                    false,
                    "How many people a page holds (100 when not given).",
                    json!({ "type": "integer", "minimum": 1, "maximum": domain::store::PageSize::MAX, "default": domain::store::PageSize::MAX }),
                ),
                cursor(),
            ],
            [
                vec![reply(200, "Who is here.", Some(presence))],
                problems(r, &[BAD_ID, not_found]),
            ]
            .concat(),
        ),
        anyone(
            "watchEpisode",
            "PUT",
            "/episodes/{id}/watch",
            "notifications",
            "Watch an episode",
            "Notifications for every change to it. Idempotent.",
            vec![episode(r)],
            [
                vec![reply(204, "Watching.", None)],
                problems(r, &[BAD_ID, not_found]),
            ]
            .concat(),
        ),
        anyone(
            "unwatchEpisode",
            "DELETE",
            "/episodes/{id}/watch",
            "notifications",
            "Stop watching an episode",
            "Idempotent: not watching (or no such episode) is fine.",
            vec![episode(r)],
            [
                vec![reply(204, "Not watching.", None)],
                problems(r, &[BAD_ID]),
            ]
            .concat(),
        ),
        anyone(
            "listNotifications",
            "GET",
            "/me/notifications",
            "notifications",
            "My notifications",
            "The caller's own, newest opened first. Changes of one episode of one kind by one actor within the batching window are one notification (`count`, `changes`), grown in place while it is unread.",
            vec![
                param(
                    "state",
                    In::Query,
                    false,
                    "Which: `inbox` (the default: all but archived), `unread`, `unseen`, `read` (read, not archived), `archived` or `all`.",
                    json!({ "type": "string", "enum": domain::notification::NoteFilter::NAMES }),
                ),
                param(
                    "unread",
                    In::Query,
                    false,
                    "`true` keeps only the unread ones of the `state` asked for (`unread=true` alone is `state=unread`, its older spelling); `false`, the default, changes nothing.",
                    json!({ "type": "boolean" }),
                ),
                limit(),
                cursor(),
            ],
            [
                vec![with_links(
                    reply(
                        200,
                        "A page of notifications, newest first.",
                        Some(notifications),
                    ),
                    vec![link(
                        "MarkRead",
                        "markNotificationRead",
                        &[("id", "$response.body#/items/0/id")],
                    )],
                )],
                problems(r, &[BAD_QUERY]),
            ]
            .concat(),
        ),
        anyone(
            "getUnreadCount",
            "GET",
            "/me/notifications/unread-count",
            "notifications",
            "My unread and unseen counts",
            "Exact: the bell's numbers. They count notifications, not events.",
            vec![],
            vec![reply(200, "The count.", Some(unread))],
        ),
        move_of_one(
            r,
            "markNotificationRead",
            "/me/notifications/{id}/read",
            "Mark one notification read",
            "Idempotent.",
            "Read.",
        ),
        Operation {
            id: "markNotificationsSeen",
            method: "POST",
            path: "/me/notifications/seen",
            function: Function::Feed,
            access: Access::Anyone,
            tag: "notifications",
            summary: "Mark what the bell showed seen",
            description: "Each unseen one of the ids becomes seen (still unread); ids that are not yours are skipped. A notification that grows afterwards is unseen again.",
            params: vec![],
            body: Some(bodies::seen(r)),
            replies: [
                vec![reply(200, "How many were marked.", Some(marked))],
                problems(
                    r,
                    &[
                        (400, "The body is not JSON."),
                        TOO_LARGE,
                        MEDIA_TYPE,
                        INVALID,
                    ],
                ),
            ]
            .concat(),
        },
        move_of_one(
            r,
            "archiveNotification",
            "/me/notifications/{id}/archive",
            "Archive one notification",
            "Read, and out of the inbox (`state=archived` lists it). Idempotent.",
            "Archived.",
        ),
        move_of_one(
            r,
            "unarchiveNotification",
            "/me/notifications/{id}/unarchive",
            "Unarchive one notification",
            "Back in the inbox, read. Idempotent.",
            "In the inbox.",
        ),
        anyone(
            "markAllNotificationsRead",
            "POST",
            "/me/notifications/read-all",
            "notifications",
            "Mark all my notifications read",
            "At most 1,000 per call: call again while `more` is true.",
            vec![],
            vec![reply(200, "How many were marked.", Some(read_all))],
        ),
        anyone(
            "getNotificationPreferences",
            "GET",
            "/me/notification-preferences",
            "notifications",
            "My notification preferences",
            "The event types I hear nothing about.",
            vec![],
            vec![reply(200, "The preferences.", Some(preferences.clone()))],
        ),
        Operation {
            id: "setNotificationPreferences",
            method: "PUT",
            path: "/me/notification-preferences",
            function: Function::Feed,
            access: Access::Anyone,
            tag: "notifications",
            summary: "Set my notification preferences",
            description: "Replaces the list.",
            params: vec![],
            body: Some(bodies::preferences(r)),
            replies: [
                vec![reply(200, "The preferences as stored.", Some(preferences))],
                problems(
                    r,
                    &[
                        (400, "The body is not JSON."),
                        TOO_LARGE,
                        MEDIA_TYPE,
                        INVALID,
                    ],
                ),
            ]
            .concat(),
        },
    ]
}

/// `POST /me/notifications/{id}/<move>`: one of the caller's notifications read, archived or
/// unarchived; 204, and the same refusals for each.
fn move_of_one(
    r: &mut Registry,
    id: &'static str,
    path: &'static str,
    summary: &'static str,
    description: &'static str,
    done: &'static str,
) -> Operation {
    Operation {
        id,
        method: "POST",
        path,
        function: Function::Feed,
        access: Access::Anyone,
        tag: "notifications",
        summary,
        description,
        params: vec![path_id::<EventId>(
            r,
            "The notification (the id of the event that opened it).",
        )],
        body: None,
        replies: [
            vec![reply(204, done, None)],
            problems(
                r,
                &[
                    (400, "The id is not a notification id."),
                    (404, "No such notification of yours."),
                ],
            ),
        ]
        .concat(),
    }
}

fn files(r: &mut Registry) -> Vec<Operation> {
    let file = r.file();
    let created = r.file_created();
    let page = r.page::<domain::FileBody>("FilePage");
    let download = r.download();
    let file_example: Value =
        serde_json::from_str(include_str!("../../../events/domain/file.uploaded.json"))
            .ok()
            .and_then(|e: Value| e.pointer("/data/file").cloned())
            .unwrap_or(Value::Null);
    let by_id = |r: &mut Registry| path_id::<FileId>(r, "The file.");
    let no_file = (404, "No such file.");
    let writers = (
        403,
        "Viewers cannot upload, change or delete files; only the file's uploader or an admin may complete or delete it.",
    );
    vec![
        Operation {
            id: "createFile",
            method: "POST",
            path: "/episodes/{id}/files",
            function: Function::Files,
            access: Access::Editors,
            tag: "files",
            summary: "Start an upload",
            description: "Records the file (pending) and answers with presigned URLs: one PUT up to 100 MiB, parts above. Upload the bytes to S3, then `POST /files/{id}/complete`.",
            params: vec![path_id::<EpisodeId>(r, "The episode.")],
            body: Some(bodies::new_file(r)),
            replies: [
                vec![with_links(
                    with_headers(reply(201, "Recorded; upload the bytes.", Some(created)), &["Location"]),
                    vec![
                        link("GetFile", "getFile", &[("id", "$response.body#/file/id")]),
                        link("CompleteUpload", "completeFile", &[("id", "$response.body#/file/id")]),
                        link("DownloadFile", "downloadFile", &[("id", "$response.body#/file/id")]),
                        link("DeleteFile", "deleteFile", &[("id", "$response.body#/file/id")]),
                    ],
                )],
                problems(
                    r,
                    &[
                        (400, "The id is not an episode id, or the body is not JSON."),
                        VIEWER,
                        (404, "No such episode."),
                        TOO_LARGE,
                        MEDIA_TYPE,
                        INVALID,
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "listFiles",
            method: "GET",
            path: "/episodes/{id}/files",
            function: Function::Files,
            access: Access::Anyone,
            tag: "files",
            summary: "An episode's files",
            description: "Oldest first, pending ones too.",
            params: vec![path_id::<EpisodeId>(r, "The episode."), limit(), cursor()],
            body: None,
            replies: [
                vec![reply(200, "A page of files, oldest first.", Some(page))],
                problems(r, &[BAD_ID, (404, "No such episode.")]),
            ]
            .concat(),
        },
        Operation {
            id: "getFile",
            method: "GET",
            path: "/files/{id}",
            function: Function::Files,
            access: Access::Anyone,
            tag: "files",
            summary: "Read a file's record",
            description: "What was declared, its status, and what jobs found out (`metadata`).",
            params: vec![by_id(r)],
            body: None,
            replies: [
                vec![with_example(reply(200, "The file.", Some(file.clone())), file_example)],
                problems(r, &[(400, "The id is not a file id."), no_file]),
            ]
            .concat(),
        },
        Operation {
            id: "deleteFile",
            method: "DELETE",
            path: "/files/{id}",
            function: Function::Files,
            access: Access::Editors,
            tag: "files",
            summary: "Delete a file",
            description: "Its uploader or an admin; the object goes too.",
            params: vec![by_id(r)],
            body: None,
            replies: [
                vec![reply(204, "Deleted.", None)],
                problems(
                    r,
                    &[
                        (400, "The id is not a file id."),
                        writers,
                        no_file,
                        (409, "The file changed meanwhile: read it and try again."),
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "completeFile",
            method: "POST",
            path: "/files/{id}/complete",
            function: Function::Files,
            access: Access::Editors,
            tag: "files",
            summary: "Confirm an upload",
            description: "Checks the object S3 holds against what was declared (size, checksum) and makes the file available. Idempotent: an available file is answered as it is.",
            params: vec![by_id(r)],
            body: None,
            replies: [
                vec![with_links(
                    reply(200, "The file, available.", Some(file)),
                    vec![link("DownloadFile", "downloadFile", &[("id", "$request.path.id")])],
                )],
                problems(
                    r,
                    &[
                        (400, "The id is not a file id."),
                        writers,
                        no_file,
                        (409, "Nothing was uploaded yet (or no part of a multipart upload), or the file changed meanwhile."),
                        (422, "The uploaded object is not what was declared (its size or checksum): it was deleted, upload it again."),
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "downloadFile",
            method: "GET",
            path: "/files/{id}/download",
            function: Function::Files,
            access: Access::Anyone,
            tag: "files",
            summary: "A download URL",
            description: "A presigned GET, good for 5 minutes, offering the file under its name. Each call is recorded in the activity log.",
            params: vec![by_id(r)],
            body: None,
            replies: [
                vec![reply(200, "Where to GET the bytes.", Some(download))],
                problems(
                    r,
                    &[
                        (400, "The id is not a file id."),
                        no_file,
                        (409, "The file is still pending: its upload is not complete."),
                    ],
                ),
            ]
            .concat(),
        },
    ]
}

fn jobs(r: &mut Registry) -> Vec<Operation> {
    let job = r.job();
    let rules = r.of::<domain::upload_rules::UploadRulesBody>();
    let page = r.page::<domain::JobBody>("JobPage");
    let job_example: Value =
        serde_json::from_str(include_str!("../../../events/domain/job.created.json"))
            .ok()
            .and_then(|e: Value| e.pointer("/data/job").cloned())
            .unwrap_or(Value::Null);
    let by_id = |r: &mut Registry| path_id::<JobId>(r, "The job.");
    let to_job = vec![
        link("GetJob", "getJob", &[("id", "$response.body#/id")]),
        link("CancelJob", "cancelJob", &[("id", "$response.body#/id")]),
    ];
    let no_job = (404, "No such job.");
    let changed = |what: &'static str| (409, what);
    vec![
        Operation {
            id: "createJob",
            method: "POST",
            path: "/episodes/{id}/jobs",
            function: Function::Jobs,
            access: Access::Editors,
            tag: "jobs",
            summary: "Start a job on a file",
            description: "Queued, then run by the job worker with retries. With an `Idempotency-Key`, the same request within 24 hours answers the job it started (200) instead of starting another.",
            params: vec![
                path_id::<EpisodeId>(r, "The episode."),
                idempotency_key("Makes the request safe to repeat: the same key with the same request within 24 hours answers the same job; with another request, 409."),
            ],
            body: Some(bodies::new_job(r)),
            replies: [
                vec![
                    with_example(
                        with_links(
                            with_headers(reply(202, "Queued.", Some(job.clone())), &["Location"]),
                            to_job.clone(),
                        ),
                        job_example.clone(),
                    ),
                    with_links(
                        with_headers(
                            reply(200, "This `Idempotency-Key` started this job already: here it is, as it is now.", Some(job.clone())),
                            &["Location"],
                        ),
                        to_job,
                    ),
                ],
                problems(
                    r,
                    &[
                        (400, "The id is not an episode id, the body is not JSON, or the `Idempotency-Key` is not 1–255 visible ASCII characters."),
                        (403, "Viewers cannot start or change jobs."),
                        (404, "No such episode."),
                        (409, "This `Idempotency-Key` was used in the last 24 hours for a different request."),
                        TOO_LARGE,
                        MEDIA_TYPE,
                        (422, "The body is invalid, or `file_id` is not an available file of this episode of a type the job reads; `errors` names each."),
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "listJobs",
            method: "GET",
            path: "/episodes/{id}/jobs",
            function: Function::Jobs,
            access: Access::Anyone,
            tag: "jobs",
            summary: "An episode's jobs",
            description: "Oldest first. With `state`, a page may hold fewer than `limit` jobs and still have a `next_cursor`.",
            params: vec![
                path_id::<EpisodeId>(r, "The episode."),
                param("state", In::Query, false, "Only jobs in this state.", r.of::<JobState>()),
                limit(),
                cursor(),
            ],
            body: None,
            replies: [
                vec![reply(200, "A page of jobs, oldest first.", Some(page))],
                problems(r, &[BAD_ID, (404, "No such episode.")]),
            ]
            .concat(),
        },
        Operation {
            id: "getUploadRules",
            method: "GET",
            path: "/episodes/{id}/upload-rules",
            function: Function::Jobs,
            access: Access::Anyone,
            tag: "jobs",
            summary: "An episode's jobs on upload",
            description: "The jobs that start by themselves when a file of each kind becomes available: the episode's own lists, the stack's defaults, and which applies to each kind.",
            params: vec![path_id::<EpisodeId>(r, "The episode.")],
            body: None,
            replies: [
                vec![reply(200, "The rules.", Some(rules.clone()))],
                problems(r, &[BAD_ID, (404, "No such episode.")]),
            ]
            .concat(),
        },
        Operation {
            id: "setUploadRules",
            method: "PUT",
            path: "/episodes/{id}/upload-rules",
            function: Function::Jobs,
            access: Access::Editors,
            tag: "jobs",
            summary: "Set an episode's jobs on upload",
            description: "Replaces the episode's lists: each kind named gets exactly its list (`[]`: nothing starts); a kind left out follows the stack's default. The jobs are started by the system (`system:upload-rules`), once per file, and are in the activity log and live like any job.",
            params: vec![path_id::<EpisodeId>(r, "The episode.")],
            body: Some(bodies::upload_rules(r)),
            replies: [
                vec![reply(200, "The rules, as they are now.", Some(rules.clone()))],
                problems(
                    r,
                    &[
                        (400, "The id is not an episode id, or the body is not JSON."),
                        (403, "Viewers cannot start or change jobs."),
                        (404, "No such episode."),
                        TOO_LARGE,
                        MEDIA_TYPE,
                        (422, "A list is invalid: an unknown kind or job type, a job that cannot read that kind, a type listed twice, or invalid params; `errors` names each."),
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "clearUploadRules",
            method: "DELETE",
            path: "/episodes/{id}/upload-rules",
            function: Function::Jobs,
            access: Access::Editors,
            tag: "jobs",
            summary: "Clear an episode's jobs on upload",
            description: "The episode follows the stack's defaults again.",
            params: vec![path_id::<EpisodeId>(r, "The episode.")],
            body: None,
            replies: [
                vec![reply(200, "The rules, as they are now.", Some(rules))],
                problems(
                    r,
                    &[
                        (400, "The id is not an episode id."),
                        (403, "Viewers cannot start or change jobs."),
                        (404, "No such episode."),
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "getJob",
            method: "GET",
            path: "/jobs/{id}",
            function: Function::Jobs,
            access: Access::Anyone,
            tag: "jobs",
            summary: "Read a job",
            description: "Its state, progress, attempts and result. Live changes come over the WebSocket as `job.*` events.",
            params: vec![by_id(r)],
            body: None,
            replies: [
                vec![with_example(reply(200, "The job.", Some(job.clone())), job_example)],
                problems(r, &[(400, "The id is not a job id."), no_job]),
            ]
            .concat(),
        },
        Operation {
            id: "cancelJob",
            method: "POST",
            path: "/jobs/{id}/cancel",
            function: Function::Jobs,
            access: Access::Editors,
            tag: "jobs",
            summary: "Cancel a job",
            description: "A queued or retrying job is cancelled at once (200); a running one stops at its next checkpoint (202, `cancel_requested`).",
            params: vec![by_id(r)],
            body: None,
            replies: [
                vec![
                    with_links(
                        reply(200, "Cancelled.", Some(job.clone())),
                        vec![link("RetryJob", "retryJob", &[("id", "$request.path.id")])],
                    ),
                    reply(202, "Running: it stops at its next checkpoint.", Some(job.clone())),
                ],
                problems(
                    r,
                    &[
                        (400, "The id is not a job id."),
                        (403, "Viewers cannot start or change jobs."),
                        no_job,
                        changed("The job is finished (succeeded, failed or cancelled) and cannot be cancelled, or it changed meanwhile: read it and try again."),
                    ],
                ),
            ]
            .concat(),
        },
        Operation {
            id: "retryJob",
            method: "POST",
            path: "/jobs/{id}/retry",
            function: Function::Jobs,
            access: Access::Editors,
            tag: "jobs",
            summary: "Retry a failed or cancelled job",
            description: "Queued again from the start, attempts reset.",
            params: vec![by_id(r)],
            body: None,
            replies: [
                vec![with_links(
                    reply(202, "Queued again.", Some(job)),
                    vec![link("GetJob", "getJob", &[("id", "$request.path.id")])],
                )],
                problems(
                    r,
                    &[
                        (400, "The id is not a job id."),
                        (403, "Viewers cannot start or change jobs."),
                        no_job,
                        changed("Only a failed or cancelled job can be retried, or it changed meanwhile: read it and try again."),
                    ],
                ),
            ]
            .concat(),
        },
    ]
}

/// The optional `Idempotency-Key` header of a create, described for what it creates.
fn idempotency_key(description: &'static str) -> Param {
    param(
        "Idempotency-Key",
        In::Header,
        false,
        description,
        json!({ "type": "string", "pattern": "^[!-~]{1,255}$" }),
    )
}
