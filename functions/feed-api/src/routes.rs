//! Path and method to handler: the feed routes, as API Gateway routes them to this function.
//! Each handler lives in the module named after its resource.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use domain::store::activity::ActivityReader;
use domain::store::export::Exports;
use domain::store::notification::Inbox;
use domain::store::object::ObjectTransfers;
use domain::store::realtime::PresenceReader;
use domain::store::{EpisodeExistence, StoreError};
use lambda_kit::{AwsCallCounter, Problem};

use crate::{activity, exports, notifications, preferences, presence, watches};

/// What the routes need: the activity log (`A`), the users' notifications (`N`), who is
/// looking at an episode (`P`) and the log's exports (`X`, an [`ExportDesk`]). Built once at
/// init.
#[derive(Debug)]
pub struct Api<A, N, P, X> {
    pub activity: A,
    pub notifications: N,
    pub presence: P,
    pub exports: X,
    /// Counts the AWS calls each request makes, for the access log.
    pub calls: AwsCallCounter,
}

/// The exports' records (`S`), the bucket that presigns their downloads (`O`), and how long a
/// new export is kept (the template's `ExportRetentionDays`).
#[derive(Debug)]
pub struct ExportDesk<S, O> {
    pub store: S,
    pub objects: O,
    pub retention_days: u32,
}

/// The state every handler takes (`State<Shared<..>>`), built once at init.
pub type Shared<A, N, P, X> = Arc<Api<A, N, P, X>>;

/// The notification store failed: 503, logged.
pub fn unavailable(e: StoreError) -> Problem {
    Problem::unavailable("notification store", &e)
}

pub fn app<A, N, P, S, O>(api: Arc<Api<A, N, P, ExportDesk<S, O>>>) -> Router
where
    A: ActivityReader + Send + Sync + 'static,
    N: Inbox + Send + Sync + 'static,
    P: PresenceReader + EpisodeExistence + Send + Sync + 'static,
    S: Exports + Send + Sync + 'static,
    O: ObjectTransfers + Send + Sync + 'static,
{
    type X<S, O> = ExportDesk<S, O>;
    let calls = api.calls.clone();
    let routes = Router::new()
        .route("/activity", get(activity::whole_log::<A, N, P, X<S, O>>))
        .route("/activity/exports", post(exports::start::<A, N, P, S, O>))
        .route("/activity/exports/{id}", get(exports::get::<A, N, P, S, O>))
        .route(
            "/episodes/{id}/activity",
            get(activity::of_episode::<A, N, P, X<S, O>>),
        )
        .route(
            "/episodes/{id}/presence",
            get(presence::get::<A, N, P, X<S, O>>),
        )
        .route(
            "/episodes/{id}/watch",
            put(watches::watch::<A, N, P, X<S, O>>).delete(watches::unwatch::<A, N, P, X<S, O>>),
        )
        .route(
            "/me/notifications",
            get(notifications::list::<A, N, P, X<S, O>>),
        )
        .route(
            "/me/notifications/unread-count",
            get(notifications::unread_count::<A, N, P, X<S, O>>),
        )
        .route(
            "/me/notifications/read-all",
            post(notifications::mark_all_read::<A, N, P, X<S, O>>),
        )
        .route(
            "/me/notifications/seen",
            post(notifications::mark_seen::<A, N, P, X<S, O>>),
        )
        .route(
            "/me/notifications/{id}/read",
            post(notifications::mark_read::<A, N, P, X<S, O>>),
        )
        .route(
            "/me/notifications/{id}/archive",
            post(notifications::archive::<A, N, P, X<S, O>>),
        )
        .route(
            "/me/notifications/{id}/unarchive",
            post(notifications::unarchive::<A, N, P, X<S, O>>),
        )
        .route(
            "/me/notification-preferences",
            get(preferences::get::<A, N, P, X<S, O>>).put(preferences::set::<A, N, P, X<S, O>>),
        );
    lambda_kit::router::app(routes, api, calls)
}

#[cfg(test)]
mod tests {
    //! Every route through the router, with the fixtures from `events/feed-api` and the
    //! in-memory ports: each route's success and each of its refusals.

    use domain::notification::Delivery;
    use domain::realtime::{ConnectionId, UserRef};
    use domain::store::activity::ActivityWriter;
    use domain::store::memory::{
        InMemoryActivityLog, InMemoryExports, InMemoryNotifications, InMemoryObjects,
        InMemoryRealtime,
    };
    use domain::store::notification::NotificationWriter;
    use domain::store::realtime::{Connections, OpenConnection, Subscribe};
    use domain::{ActivityEntry, Actor, DisplayName, DomainEvent, EventId};
    use domain::{EpisodeId, Role, Timestamp, UserId};
    use lambda_http::http::StatusCode;
    use lambda_kit::fixture::HttpFixture;
    use serde_json::{Value, json};

    use super::*;

    const GOLDEN: [&str; 3] = [
        include_str!("../../../events/domain/episode.created.json"),
        include_str!("../../../events/domain/episode.updated.json"),
        include_str!("../../../events/domain/episode.deleted.json"),
    ];
    /// The golden examples' episode.
    const EPISODE: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

    type TestApi = Arc<
        Api<
            InMemoryActivityLog,
            InMemoryNotifications,
            InMemoryRealtime,
            ExportDesk<InMemoryExports, InMemoryObjects>,
        >,
    >;

    async fn api() -> TestApi {
        let activity = InMemoryActivityLog::default();
        let entries: Vec<ActivityEntry> = GOLDEN
            .iter()
            .map(|g| ActivityEntry::from_event(&serde_json::from_str(g).unwrap(), Some("S2E4")))
            .collect();
        activity.put_batch(&entries).await.unwrap();
        let presence = InMemoryRealtime::default();
        presence.add_episode(episode());
        let notifications = InMemoryNotifications::default();
        notifications.add_episode(episode());
        Arc::new(Api {
            activity,
            notifications,
            presence,
            exports: ExportDesk {
                store: InMemoryExports::default(),
                objects: InMemoryObjects::default(),
                retention_days: domain::export::DEFAULT_RETENTION_DAYS,
            },
            calls: AwsCallCounter::default(),
        })
    }

    fn episode() -> EpisodeId {
        EpisodeId::parse(EPISODE).unwrap()
    }

    fn get(path: &str) -> HttpFixture {
        HttpFixture::parse(include_str!(
            "../../../events/feed-api/list-notifications.json"
        ))
        .unwrap()
        .route("GET", path)
    }

    fn set_preferences() -> HttpFixture {
        HttpFixture::parse(include_str!(
            "../../../events/feed-api/set-preferences.json"
        ))
        .unwrap()
    }

    async fn send(api: &TestApi, req: HttpFixture) -> (StatusCode, Value) {
        let resp = lambda_kit::fixture::respond(app(api.clone()), req.request().unwrap()).await;
        let body = lambda_kit::fixture::json_body(&resp).unwrap();
        (resp.status(), body)
    }

    fn types(body: &Value) -> Vec<&str> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["action"].as_str().unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn an_episodes_activity_comes_newest_first_in_pages() {
        let api = api().await;
        let path = format!("/episodes/{EPISODE}/activity");
        let (status, body) = send(&api, get(&path).query("limit=2")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(types(&body), ["episode.deleted", "episode.updated"]);
        let cursor = body["next_cursor"].as_str().unwrap().to_owned();
        let (_, body) = send(&api, get(&path).query(&format!("cursor={cursor}"))).await;
        assert_eq!(types(&body), ["episode.created"]);
        // A cursor is bound to its list.
        let (status, _) = send(
            &api,
            get("/activity")
                .caller("root", "admin")
                .query(&format!("cursor={cursor}")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = send(&api, get(&path).query("limit=500")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = send(&api, get(&path).anonymous()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    fn start_export() -> HttpFixture {
        HttpFixture::parse(include_str!("../../../events/feed-api/start-export.json")).unwrap()
    }

    #[tokio::test]
    async fn an_admin_starts_an_export_and_reads_it_back_with_fresh_links_once_written() {
        use domain::export::{ExportFile, ExportFormat, ExportState, Outcome};
        use domain::store::export::Exports;

        let api = api().await;
        let (status, body) = send(&api, start_export()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["state"], "queued");
        assert_eq!(body["filters"]["action"], "episode.updated");
        assert_eq!(body["requested_by"]["id"], "root");
        assert_eq!(body["downloads"], json!([]));
        let id = body["id"].as_str().unwrap().to_owned();
        let path = format!("/activity/exports/{id}");
        let (status, read) = send(&api, get(&path).caller("root", "admin")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(read["state"], "queued");

        // As the worker leaves it: links to both files.
        let stored = api
            .exports
            .store
            .get(domain::ExportId::parse(&id).unwrap())
            .await
            .unwrap()
            .unwrap();
        let files = ExportFormat::ALL
            .iter()
            .map(|f| ExportFile {
                format: *f,
                bytes: 7,
            })
            .collect();
        let done = stored
            .running(Timestamp::now())
            .finished(Outcome::Written { entries: 2, files }, Timestamp::now());
        assert!(
            api.exports
                .store
                .save(&done, ExportState::Queued)
                .await
                .unwrap()
        );
        let (_, read) = send(&api, get(&path).caller("root", "admin")).await;
        assert_eq!(read["state"], "succeeded");
        assert_eq!(read["entries"], 2);
        let formats: Vec<&str> = read["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["format"].as_str().unwrap())
            .collect();
        assert_eq!(formats, ["jsonl", "csv"]);
        assert!(
            read["downloads"][0]["url"]
                .as_str()
                .unwrap()
                .contains(&format!("exports/{id}/activity-{id}.jsonl"))
        );
    }

    #[tokio::test]
    async fn exports_are_for_admins_and_bad_filters_change_nothing() {
        let api = api().await;
        let (status, _) = send(&api, start_export().caller("alice", "editor")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        for (body, field) in [
            (r#"{"action": "episode.exploded"}"#, "action"),
            (r#"{"from": "yesterday"}"#, "from"),
            (r#"{"actor": 7}"#, "actor"),
            (r#"{"colour": "red"}"#, "colour"),
            (r#"{"resource_type": "planet"}"#, "resource_type"),
            (r#"{"episode_id": "not-an-id"}"#, "episode_id"),
            (r#"{"to": null}"#, "to"),
        ] {
            let (status, problem) = send(&api, start_export().body(body)).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {problem}"
            );
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        let (status, _) = send(&api, start_export().body("{nope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = send(&api, start_export().header("content-type", "text/plain")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let missing = format!("/activity/exports/{}", domain::ExportId::new());
        let (status, _) = send(&api, get(&missing).caller("root", "admin")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = send(&api, get(&missing)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "an editor");
        let (status, _) = send(&api, get("/activity/exports/nope").caller("root", "admin")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn the_whole_log_is_for_admins_and_filters() {
        let api = api().await;
        let (status, _) = send(&api, get("/activity")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "an editor");
        let (status, _) = send(&api, get("/activity").query("colour=red&limit=0")).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "refused before the filters are judged"
        );
        let admin = || get("/activity").caller("root", "admin");
        let (status, body) = send(&api, admin().query("action=episode.updated")).await;
        assert_eq!(
            (status, types(&body)),
            (StatusCode::OK, vec!["episode.updated"])
        );
        let (_, body) = send(&api, admin().query("actor=nobody")).await;
        assert!(types(&body).is_empty());
        for (query, field) in [
            ("action=nope", "action"),
            ("from=yesterday", "from"),
            ("to=1", "to"),
        ] {
            let (status, body) = send(&api, admin().query(query)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(body["errors"][0]["field"], field, "{query}");
        }
    }

    #[tokio::test]
    async fn presence_lists_who_is_looking_now() {
        let api = api().await;
        let now = Timestamp::now();
        for (c, user) in [("c-1", "bob"), ("c-2", "carol")] {
            let connection = ConnectionId::parse(c).unwrap();
            let actor = Actor {
                id: UserId::parse(user).unwrap(),
                name: DisplayName::new(user),
                role: Role::Viewer,
            };
            api.presence
                .open(&connection, &actor, now.plus_seconds(3600), now)
                .await
                .unwrap();
            let open = OpenConnection {
                user: UserRef {
                    id: actor.id,
                    name: actor.name,
                },
                token_expires_at: Some(now.plus_seconds(3600)),
            };
            api.presence
                .subscribe(&connection, &open, episode(), now)
                .await
                .unwrap();
        }
        let (status, body) = send(&api, get(&format!("/episodes/{EPISODE}/presence"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let viewers: Vec<&str> = body["viewers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap())
            .collect();
        assert_eq!(viewers.len(), 2, "{body}");
        assert!(viewers.contains(&"bob") && viewers.contains(&"carol"));
        assert_eq!(body["next_cursor"], serde_json::Value::Null);
        // In pages, by user id: bob, then carol, then an empty last page.
        let path = format!("/episodes/{EPISODE}/presence");
        let (status, body) = send(&api, get(&path).query("limit=1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["viewers"][0]["id"], "bob");
        let cursor = body["next_cursor"].as_str().unwrap().to_owned();
        let page = |c: &str| format!("limit=1&cursor={c}");
        let (_, body) = send(&api, get(&path).query(&page(&cursor))).await;
        assert_eq!(body["viewers"][0]["id"], "carol", "{body}");
        let cursor = body["next_cursor"].as_str().unwrap().to_owned();
        let (status, body) = send(&api, get(&path).query(&page(&cursor))).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "a page after the last is empty, not 404"
        );
        assert_eq!(body["viewers"], serde_json::json!([]));
        assert_eq!(body["next_cursor"], serde_json::Value::Null);
        for bad in ["limit=0", "limit=101", "cursor=nope", "since=1"] {
            let (status, body) = send(&api, get(&path).query(bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        let other = format!("/episodes/{}/presence", EpisodeId::new());
        let (status, _) = send(&api, get(&other).query(&format!("cursor={cursor}"))).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a cursor of another episode"
        );
        let missing = format!("/episodes/{}/presence", EpisodeId::new());
        let (status, _) = send(&api, get(&missing)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        api.presence.set_down(true);
        let (status, _) = send(&api, get(&format!("/episodes/{EPISODE}/presence"))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn notifications_are_listed_counted_and_read_by_their_recipient_only() {
        let api = api().await;
        let updated: DomainEvent = serde_json::from_str(GOLDEN[1]).unwrap();
        let deleted: DomainEvent = serde_json::from_str(GOLDEN[2]).unwrap();
        let bob = UserId::parse("bob").unwrap();
        let both = [&updated, &deleted].map(|e| Delivery::single(e, &bob, "S2E4", "S2E4 changed"));
        assert_eq!(api.notifications.apply(&both).await.unwrap(), [true, true]);
        let as_bob = |f: HttpFixture| f.caller("bob", "editor");
        let (status, body) = send(&api, as_bob(get("/me/notifications"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["items"][0]["state"], "unseen");
        assert_eq!(body["items"][0]["count"], 1);
        let (_, body) = send(&api, get("/me/notifications")).await;
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(0),
            "alice has none"
        );
        let (_, body) = send(&api, as_bob(get("/me/notifications/unread-count"))).await;
        assert_eq!((&body["unread"], &body["unseen"]), (&json!(2), &json!(2)));
        // The bell showed both (and one that is not Bob's): two seen, still unread.
        let seen = "/me/notifications/seen";
        let shown = json!({"ids": [updated.id, deleted.id, EventId::new()]}).to_string();
        let (status, body) = send(&api, as_bob(get(seen).route("POST", seen).body(&shown))).await;
        assert_eq!(
            (status, &body["marked"]),
            (StatusCode::OK, &json!(2)),
            "{body}"
        );
        let (_, body) = send(&api, as_bob(get("/me/notifications/unread-count"))).await;
        assert_eq!((&body["unread"], &body["unseen"]), (&json!(2), &json!(0)));
        for bad in [
            r#"{"ids": "x"}"#,
            r#"{"ids": ["x"]}"#,
            r#"{}"#,
            r#"{"ids": [], "all": true}"#,
        ] {
            let (status, body) = send(&api, as_bob(get(seen).route("POST", seen).body(bad))).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        }
        let twice = json!({"ids": [updated.id, updated.id]}).to_string();
        let (status, _) = send(&api, as_bob(get(seen).route("POST", seen).body(&twice))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let read = format!("/me/notifications/{}/read", updated.id);
        let (status, _) = send(&api, get(&read).route("POST", &read)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "not alice's");
        let (status, _) = send(&api, as_bob(get(&read).route("POST", &read))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, body) = send(&api, as_bob(get("/me/notifications").query("unread=true"))).await;
        assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
        let all = "/me/notifications/read-all";
        let (status, body) = send(&api, as_bob(get(all).route("POST", all))).await;
        assert_eq!((status, &body["marked"]), (StatusCode::OK, &json!(1)));
        let (_, body) = send(&api, as_bob(get("/me/notifications/unread-count"))).await;
        assert_eq!(body["unread"], 0);

        // Archived: out of the inbox, in `state=archived`; unarchived: back, read.
        let archive = format!("/me/notifications/{}/archive", deleted.id);
        let (status, _) = send(&api, get(&archive).route("POST", &archive)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "not alice's");
        let (status, _) = send(&api, as_bob(get(&archive).route("POST", &archive))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let ids = |body: &Value| -> Vec<String> {
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let (_, body) = send(&api, as_bob(get("/me/notifications"))).await;
        assert_eq!(ids(&body), [updated.id.to_string()]);
        let (_, body) = send(
            &api,
            as_bob(get("/me/notifications").query("state=archived")),
        )
        .await;
        assert_eq!(ids(&body), [deleted.id.to_string()]);
        assert_eq!(body["items"][0]["archived"], true);
        let (_, body) = send(&api, as_bob(get("/me/notifications").query("state=all"))).await;
        assert_eq!(ids(&body).len(), 2);
        let unarchive = format!("/me/notifications/{}/unarchive", deleted.id);
        let (status, _) = send(&api, as_bob(get(&unarchive).route("POST", &unarchive))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, body) = send(&api, as_bob(get("/me/notifications").query("state=read"))).await;
        assert_eq!(ids(&body).len(), 2);
        let narrowed = get("/me/notifications").query("state=read&unread=true");
        let (_, body) = send(&api, as_bob(narrowed)).await;
        assert_eq!(body["items"], json!([]), "no read one is unread");
        for bad in ["unread=maybe", "limit=0", "cursor=x", "state=new"] {
            let (status, _) = send(&api, as_bob(get("/me/notifications").query(bad))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let not_an_id = "/me/notifications/x/read";
        let (status, _) = send(&api, get(not_an_id).route("POST", not_an_id)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn watching_and_preferences_are_the_callers_own() {
        let api = api().await;
        let watch = format!("/episodes/{EPISODE}/watch");
        let (status, _) = send(&api, get(&watch).route("PUT", &watch)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let missing = format!("/episodes/{}/watch", EpisodeId::new());
        let (status, _) = send(&api, get(&missing).route("PUT", &missing)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = send(&api, get(&watch).route("DELETE", &watch)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        let prefs = "/me/notification-preferences";
        let (_, body) = send(&api, get(prefs)).await;
        assert_eq!(body["muted_event_types"], json!([]));
        let (status, body) = send(&api, set_preferences()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, body) = send(&api, get(prefs)).await;
        assert_eq!(body["muted_event_types"], json!(["episode.deleted"]));
        let (_, body) = send(&api, get(prefs).caller("bob", "editor")).await;
        assert_eq!(body["muted_event_types"], json!([]), "bob's are his own");
        for (body, expected) in [
            (r#"{"muted_event_types": ["nope"]}"#, 422),
            (r#"{"muted_event_types": [], "x": 1}"#, 422),
            ("{", 400),
        ] {
            let (status, resp) = send(&api, set_preferences().body(body)).await;
            assert_eq!(status.as_u16(), expected, "{body}: {resp}");
        }
        let (status, _) = send(&api, set_preferences().header("content-type", "text/plain")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problems() {
        let api = api().await;
        let (status, _) = send(&api, get("/me/notifications").method("DELETE")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = send(&api, get("/me/nothing")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    /// The published contract and this router agree: every operation is routed, and each
    /// takes the query parameters and body fields the handler does.
    #[tokio::test]
    async fn the_contract_describes_these_routes() {
        use api_contract::testing::{assert_body, assert_query, assert_routed};
        let fixture = include_str!("../../../events/feed-api/list-notifications.json");
        assert_routed(app(api().await), api_contract::Function::Feed, fixture).await;
        assert_query::<lambda_kit::router::Paged>("listEpisodeActivity");
        assert_query::<crate::activity::Filters>("listActivity");
        assert_query::<crate::notifications::Listing>("listNotifications");
        assert_query::<crate::presence::Listing>("getPresence");
        assert_body::<crate::preferences::Body>("setNotificationPreferences");
    }
}
