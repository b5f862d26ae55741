//! Routes of the feed API. Entries are immutable: only GETs exist.

use std::collections::BTreeMap;

use domain::store::EpisodeExistence;
use domain::store::PageSize;
use domain::store::activity::{ActivityQuery, ActivityReader};
use domain::store::notification::Inbox;
use domain::store::realtime::PresenceReader;
use domain::{EpisodeId, EventType, FieldError, Role, Timestamp, UserId, uuid_v7_bounds};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use lambda_kit::AwsCallCounter;
use lambda_kit::http::{check_body, json, query_params};
use lambda_kit::{Problem, RequestMeta, cursor};
use serde_json::{Value, json};

use crate::notifications;

#[derive(Debug)]
/// What the routes need: the activity log (`A`), the users' notifications (`N`) and who is
/// looking at an episode (`P`).
pub struct Api<A, N, P> {
    pub activity: A,
    pub notifications: N,
    pub presence: P,
    pub calls: AwsCallCounter,
}

/// Bodies over this size are refused with 413 before they are parsed.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub async fn handle<
    A: ActivityReader + Sync,
    N: Inbox + Sync,
    P: PresenceReader + EpisodeExistence + Sync,
>(
    api: &Api<A, N, P>,
    req: Request,
) -> Response<Body> {
    let meta = RequestMeta::from_request(&req);
    lambda_kit::access::serve(&req, &meta, &api.calls, route(api, &meta, &req)).await
}

async fn route<
    A: ActivityReader + Sync,
    N: Inbox + Sync,
    P: PresenceReader + EpisodeExistence + Sync,
>(
    api: &Api<A, N, P>,
    meta: &RequestMeta,
    req: &Request,
) -> Result<Response<Body>, Problem> {
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let method = req.method();
    let get = method == Method::GET;
    match segments.as_slice() {
        ["episodes", id, "activity"] if get => {
            meta.actor()?;
            let episode = parse_episode_id(id)?;
            let params = query_params(req, &["limit", "cursor"])?;
            let query = activity_query(&params, Some(episode))?;
            page(api, query, &params).await
        }
        ["activity"] if get => {
            let actor = meta.actor()?;
            if actor.role != Role::Admin {
                return Err(Problem::forbidden(
                    "only admins read the whole activity log",
                ));
            }
            let params = query_params(
                req,
                &[
                    "limit",
                    "cursor",
                    "actor",
                    "action",
                    "resource_type",
                    "resource_id",
                    "from",
                    "to",
                ],
            )?;
            let query = activity_query(&params, None)?;
            page(api, query, &params).await
        }
        ["episodes", id, "presence"] if get => {
            meta.actor()?;
            presence(api, parse_episode_id(id)?).await
        }
        ["me", "notifications"] if get => {
            let actor = meta.actor()?;
            let params = query_params(req, &["unread", "limit", "cursor"])?;
            notifications::list(&api.notifications, &actor, &params).await
        }
        ["me", "notifications", "unread-count"] if get => {
            notifications::unread_count(&api.notifications, &meta.actor()?).await
        }
        ["me", "notifications", "read-all"] if method == Method::POST => {
            notifications::mark_all_read(&api.notifications, &meta.actor()?).await
        }
        ["me", "notifications", id, "read"] if method == Method::POST => {
            notifications::mark_read(&api.notifications, &meta.actor()?, id).await
        }
        ["episodes", id, "watch"] if method == Method::PUT || method == Method::DELETE => {
            let actor = meta.actor()?;
            let episode = parse_episode_id(id)?;
            if method == Method::PUT {
                notifications::watch(&api.notifications, &actor, episode).await
            } else {
                notifications::unwatch(&api.notifications, &actor, episode).await
            }
        }
        ["me", "notification-preferences"] if get => {
            notifications::preferences(&api.notifications, &meta.actor()?).await
        }
        ["me", "notification-preferences"] if method == Method::PUT => {
            let actor = meta.actor()?;
            let body = check_body(req, &["application/json"], MAX_BODY_BYTES)?;
            notifications::set_preferences(&api.notifications, &actor, body).await
        }
        ["activity"]
        | ["episodes", _, "activity"]
        | ["episodes", _, "watch"]
        | ["episodes", _, "presence"]
        | ["me", "notifications", ..]
        | ["me", "notification-preferences"] => Err(Problem::method_not_allowed()),
        _ => Err(Problem::not_found("no such route")),
    }
}

/// Who is looking at the episode now, and when the others who were there were last seen.
async fn presence<
    A: ActivityReader + Sync,
    N: Inbox + Sync,
    P: PresenceReader + EpisodeExistence + Sync,
>(
    api: &Api<A, N, P>,
    episode: EpisodeId,
) -> Result<Response<Body>, Problem> {
    let all = api.presence.presence(episode).await.map_err(|e| {
        tracing::error!(error = %e, "presence unavailable");
        Problem::service_unavailable()
    })?;
    if all.is_empty()
        && !api.presence.episode_exists(episode).await.map_err(|e| {
            tracing::error!(error = %e, "episodes unavailable");
            Problem::service_unavailable()
        })?
    {
        return Err(Problem::not_found("episode not found"));
    }
    let now = Timestamp::now();
    let viewers = domain::realtime::viewers(&all, now);
    let mut recent: Vec<Value> = all
        .iter()
        .filter(|p| !p.is_viewing(now))
        .map(|p| json!({"id": p.user.id, "name": p.user.name, "last_seen": p.last_seen}))
        .collect();
    recent.sort_by(|a, b| b["last_seen"].as_str().cmp(&a["last_seen"].as_str()));
    json(
        StatusCode::OK,
        &json!({"episode_id": episode, "viewers": viewers, "last_seen": recent}),
    )
}

use lambda_kit::http::episode_id as parse_episode_id;

/// The filter as one canonical string: what a cursor is bound to.
fn scope(params: &BTreeMap<String, String>, episode: Option<EpisodeId>) -> String {
    let mut parts: Vec<String> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "cursor" | "limit"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(e) = episode {
        parts.push(format!("episode={e}"));
    }
    parts.join("&")
}

fn activity_query(
    params: &BTreeMap<String, String>,
    episode: Option<EpisodeId>,
) -> Result<ActivityQuery, Problem> {
    let mut errors = Vec::new();
    let mut q = ActivityQuery {
        episode,
        limit: PageSize::DEFAULT.get(),
        ..Default::default()
    };
    let mut check = |r: Result<(), FieldError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    for (key, value) in params {
        match key.as_str() {
            "limit" => check(PageSize::parse(value).map(|l| q.limit = l.get())),
            "actor" => check(
                UserId::parse(value)
                    .map(|u| q.actor = Some(u))
                    .map_err(|e| e.at("actor")),
            ),
            "action" => check(
                serde_json::from_value::<EventType>(Value::String(value.clone()))
                    .map(|a| q.action = Some(a))
                    .map_err(|_| FieldError::new("action", "is not an event type")),
            ),
            "resource_type" => {
                q.resource_type = Some(value.clone());
            }
            "resource_id" => {
                q.resource_id = Some(value.clone());
            }
            "from" => check(
                Timestamp::parse(value)
                    .map(|t| q.from_id = Some(uuid_v7_bounds(t).0))
                    .map_err(|_| FieldError::new("from", "must be an RFC 3339 timestamp")),
            ),
            "to" => check(
                Timestamp::parse(value)
                    .map(|t| q.to_id = Some(uuid_v7_bounds(t).1))
                    .map_err(|_| FieldError::new("to", "must be an RFC 3339 timestamp")),
            ),
            _ => {}
        }
    }
    if let Some(c) = params.get("cursor") {
        match cursor::decode(c, &scope(params, episode)) {
            Ok(pos) => match pos.as_slice() {
                [ep, ev] => q.after = Some((ep.clone(), ev.clone())),
                _ => errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this list returned",
                )),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        Err(Problem::bad_request(errors))
    }
}

async fn page<
    A: ActivityReader + Sync,
    N: Inbox + Sync,
    P: PresenceReader + EpisodeExistence + Sync,
>(
    api: &Api<A, N, P>,
    query: ActivityQuery,
    params: &BTreeMap<String, String>,
) -> Result<Response<Body>, Problem> {
    let page = api.activity.query(&query).await.map_err(|e| {
        tracing::error!(error = %e, "activity query failed");
        Problem::service_unavailable()
    })?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(domain::ActivityEntry::to_json)
        .collect();
    let next_cursor = page
        .next
        .map(|(ep, ev)| cursor::encode(&[ep, ev], &scope(params, query.episode)));
    json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": next_cursor }),
    )
}

#[cfg(test)]
mod tests {
    //! Every route through `handle`, with the fixtures from `events/feed-api` and the
    //! in-memory ports: each route's success and each of its refusals.

    use domain::realtime::{ConnectionId, UserRef};
    use domain::store::activity::ActivityWriter;
    use domain::store::memory::{InMemoryActivityLog, InMemoryNotifications, InMemoryRealtime};
    use domain::store::notification::NotificationWriter;
    use domain::store::realtime::{Connections, OpenConnection, Subscribe};
    use domain::{ActivityEntry, Actor, DisplayName, DomainEvent, Notification};
    use lambda_kit::fixture::HttpFixture;

    use super::*;

    const GOLDEN: [&str; 3] = [
        include_str!("../../../events/domain/episode.created.json"),
        include_str!("../../../events/domain/episode.updated.json"),
        include_str!("../../../events/domain/episode.deleted.json"),
    ];
    /// The golden examples' episode.
    const EPISODE: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

    type TestApi = Api<InMemoryActivityLog, InMemoryNotifications, InMemoryRealtime>;

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
        Api {
            activity,
            notifications,
            presence,
            calls: AwsCallCounter::default(),
        }
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
        let resp = handle(api, req.request().unwrap()).await;
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

    #[tokio::test]
    async fn the_whole_log_is_for_admins_and_filters() {
        let api = api().await;
        let (status, _) = send(&api, get("/activity")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "an editor");
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
        for e in [&updated, &deleted] {
            let note = Notification::for_recipient(e, bob.clone(), "S2E4 changed".into());
            api.notifications.deliver(&note).await.unwrap();
        }
        let as_bob = |f: HttpFixture| f.caller("bob", "editor");
        let (status, body) = send(&api, as_bob(get("/me/notifications"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(2));
        let (_, body) = send(&api, get("/me/notifications")).await;
        assert_eq!(
            body["items"].as_array().map(Vec::len),
            Some(0),
            "alice has none"
        );
        let (_, body) = send(&api, as_bob(get("/me/notifications/unread-count"))).await;
        assert_eq!(body["unread"], 2);
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
        for bad in ["unread=maybe", "limit=0", "cursor=x"] {
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
}
