//! Method and path to handler, identity first, and one access-log line per request.

use domain::store::{EpisodeLister, EpisodeReader, EpisodeWriter};
use lambda_http::http::{Method, header};
use lambda_http::{Body, Request, RequestExt, Response};
use lambda_kit::AwsCallCounter;
use lambda_kit::http::check_body;
use lambda_kit::{Problem, RequestMeta};

use crate::handlers::{self, JSON, MAX_BODY_BYTES, MERGE_PATCH, WRITERS_ONLY};

/// What the function holds across invocations: built once at init.
#[derive(Debug)]
pub struct Api<S> {
    pub store: S,
    /// Counts the AWS calls each request makes, for the access log.
    pub calls: AwsCallCounter,
}

pub async fn handle<S>(api: &Api<S>, req: Request) -> Response<Body>
where
    S: EpisodeReader + EpisodeLister + EpisodeWriter + Sync,
{
    let meta = RequestMeta::from_request(&req);
    lambda_kit::access::serve(&req, &meta, &api.calls, route(api, &meta, &req)).await
}

async fn route<S>(
    api: &Api<S>,
    meta: &RequestMeta,
    req: &Request,
) -> Result<Response<Body>, Problem>
where
    S: EpisodeReader + EpisodeLister + EpisodeWriter + Sync,
{
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method();
    match segments.as_slice() {
        ["health"] if method == Method::GET => handlers::health(),
        ["episodes"] if method == Method::GET => {
            meta.actor()?;
            let params: Vec<(&str, &str)> = req
                .query_string_parameters_ref()
                .map(|q| q.iter().collect())
                .unwrap_or_default();
            let query = handlers::list_query(&params)?;
            handlers::list(&api.store, &query).await
        }
        ["episodes"] if method == Method::POST => {
            let actor = meta.writer(WRITERS_ONLY)?;
            let body = check_body(req, &[JSON], MAX_BODY_BYTES)?;
            handlers::create(&api.store, meta, &actor, body).await
        }
        ["episodes", id] if method == Method::GET => {
            meta.actor()?;
            handlers::get(&api.store, handlers::parse_id(id)?).await
        }
        ["episodes", id] if method == Method::PATCH => {
            let actor = meta.writer(WRITERS_ONLY)?;
            let id = handlers::parse_id(id)?;
            let body = check_body(req, &[JSON, MERGE_PATCH], MAX_BODY_BYTES)?;
            handlers::update(&api.store, meta, &actor, id, if_match(req), body).await
        }
        ["episodes", id] if method == Method::DELETE => {
            let actor = meta.writer(WRITERS_ONLY)?;
            let id = handlers::parse_id(id)?;
            handlers::delete(&api.store, meta, &actor, id, if_match(req)).await
        }
        ["health"] | ["episodes"] | ["episodes", _] => Err(Problem::method_not_allowed()),
        _ => Err(Problem::not_found("no such route")),
    }
}

fn if_match(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("\u{0}invalid"))
}

#[cfg(test)]
mod tests {
    //! The handlers driven with the fixtures from `events/`, against the in-memory store.

    use domain::store::memory::InMemoryEpisodeStore;
    use domain::{EpisodeId, EpisodeStatus, EventType};
    use lambda_http::http::StatusCode;
    use serde_json::{Value, json};

    use super::*;

    const EPISODE_ID: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

    fn api() -> Api<InMemoryEpisodeStore> {
        Api {
            store: InMemoryEpisodeStore::default(),
            calls: AwsCallCounter::default(),
        }
    }

    fn fixture(name: &str) -> Value {
        let text = match name {
            "health" => include_str!("../../../events/episodes-api/health.json"),
            "create" => include_str!("../../../events/episodes-api/create-episode.json"),
            "list" => include_str!("../../../events/episodes-api/list-episodes.json"),
            "get" => include_str!("../../../events/episodes-api/get-episode.json"),
            "update" => include_str!("../../../events/episodes-api/update-episode.json"),
            "delete" => include_str!("../../../events/episodes-api/delete-episode.json"),
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    /// The fixture with the path's episode id and the caller's claims replaced.
    fn request(mut event: Value, id: Option<&str>, user: &str, role: &str) -> Request {
        if let Some(id) = id {
            for ptr in ["/rawPath", "/requestContext/http/path"] {
                let path = event.pointer_mut(ptr).unwrap();
                *path = json!(path.as_str().unwrap().replace(EPISODE_ID, id));
            }
            event["pathParameters"] = json!({ "id": id });
        }
        if let Some(claims) = event.pointer_mut("/requestContext/authorizer/jwt/claims") {
            claims["sub"] = json!(user);
            // As API Gateway passes a list claim to the function.
            claims["cognito:groups"] = json!(format!("[{role}]"));
        }
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }

    async fn send(
        api: &Api<InMemoryEpisodeStore>,
        req: Request,
    ) -> (StatusCode, Value, Response<Body>) {
        let resp = handle(api, req).await;
        let body = lambda_kit::fixture::json_body(&resp).unwrap();
        (resp.status(), body, resp)
    }

    async fn create(api: &Api<InMemoryEpisodeStore>, user: &str) -> String {
        let (status, body, _) = send(api, request(fixture("create"), None, user, "editor")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn create_writes_the_episode_and_its_event_in_one_call() {
        let api = api();
        let (status, body, resp) =
            send(&api, request(fixture("create"), None, "alice", "editor")).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(resp.headers()["etag"], "\"1\"");
        assert_eq!(
            resp.headers()["location"],
            format!("/episodes/{}", body["id"].as_str().unwrap())
        );
        assert_eq!(body["title"], "The Pilot");
        assert_eq!(body["status"], "draft");
        assert_eq!(api.store.calls(), 1);
        let events = api.store.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, EventType::EpisodeCreated);
        assert_eq!(events[0].actor.id.as_str(), "alice");
        assert_eq!(events[0].correlation_id.as_str(), "Pio4rdBDy6w08WE=");
    }

    #[tokio::test]
    async fn get_list_update_delete_cost_one_store_call_each() {
        let api = api();
        let id = create(&api, "alice").await;
        for (name, expected) in [
            ("get", StatusCode::OK),
            ("list", StatusCode::OK),
            ("update", StatusCode::NO_CONTENT),
            ("delete", StatusCode::NO_CONTENT),
        ] {
            let before = api.store.calls();
            let (status, body, _) =
                send(&api, request(fixture(name), Some(&id), "alice", "editor")).await;
            assert_eq!(status, expected, "{name}: {body}");
            assert_eq!(api.store.calls() - before, 1, "{name}");
        }
        let kinds: Vec<_> = api.store.events().iter().map(|e| e.event_type).collect();
        assert_eq!(
            kinds,
            [
                EventType::EpisodeCreated,
                EventType::EpisodeUpdated,
                EventType::EpisodeDeleted
            ]
        );
        let (status, _, _) =
            send(&api, request(fixture("get"), Some(&id), "alice", "editor")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn stale_if_match_is_412_and_writes_nothing() {
        let api = api();
        let id = create(&api, "alice").await;
        let mut event = fixture("update");
        event["headers"]["if-match"] = json!("\"5\"");
        let (status, body, _) = send(&api, request(event, Some(&id), "alice", "editor")).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
        assert_eq!(api.store.events().len(), 1);
        let stored = api.store.episode(EpisodeId::parse(&id).unwrap()).unwrap();
        assert_eq!(stored.status, EpisodeStatus::Draft);
    }

    #[tokio::test]
    async fn nothing_moves_back_to_draft_and_one_read_explains_it() {
        let api = api();
        let id = create(&api, "alice").await;
        let mut event = fixture("update");
        event["body"] = json!(r#"{"status":"draft"}"#);
        let before = api.store.calls();
        let (status, body, _) = send(&api, request(event, Some(&id), "alice", "editor")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "status");
        assert_eq!(api.store.calls() - before, 1);
    }

    #[tokio::test]
    async fn viewers_cannot_write_and_nothing_is_called() {
        let api = api();
        for name in ["create", "update", "delete"] {
            let (status, body, resp) = send(
                &api,
                request(fixture(name), Some(EPISODE_ID), "vic", "viewer"),
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
            assert_eq!(resp.headers()["content-type"], "application/problem+json");
            assert_eq!(body["status"], 403);
        }
        assert_eq!(api.store.calls(), 0);
    }

    #[tokio::test]
    async fn only_the_creator_or_an_admin_deletes() {
        let api = api();
        let id = create(&api, "alice").await;
        let (status, _, _) =
            send(&api, request(fixture("delete"), Some(&id), "bob", "editor")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) =
            send(&api, request(fixture("delete"), Some(&id), "root", "admin")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn a_request_without_claims_is_401() {
        let api = api();
        let mut event = fixture("list");
        event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("authorizer");
        let (status, body, _) = send(&api, request(event, None, "", "")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["type"], "/problems/unauthorized");
    }

    #[tokio::test]
    async fn health_answers_without_identity_or_store() {
        let api = api();
        let (status, body, _) = send(&api, request(fixture("health"), None, "", "")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["function"], "episodes-api");
        assert_eq!(api.store.calls(), 0);
    }

    #[tokio::test]
    async fn list_pages_carry_an_opaque_cursor_bound_to_the_filter() {
        let api = api();
        for _ in 0..3 {
            create(&api, "alice").await;
        }
        let list = |query: &[(&str, &str)]| {
            let mut event = fixture("list");
            let raw: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            event["rawQueryString"] = json!(raw.join("&"));
            event["queryStringParameters"] = query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            request(event, None, "alice", "viewer")
        };
        let (status, body, _) = send(&api, list(&[("limit", "2")])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["items"].as_array().unwrap().len(), 2);
        let cursor = body["next_cursor"].as_str().unwrap().to_owned();
        let (_, body, _) = send(&api, list(&[("limit", "2"), ("cursor", &cursor)])).await;
        assert_eq!(body["items"].as_array().unwrap().len(), 1);
        assert!(body["next_cursor"].is_null());
        let (status, _, _) = send(&api, list(&[("status", "draft"), ("cursor", &cursor)])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
