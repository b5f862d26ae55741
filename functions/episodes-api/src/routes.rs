//! Path and method to handler: the episode routes, as API Gateway routes them to this function.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use domain::store::search::SearchIndexReader;
use domain::store::{EpisodeLister, EpisodeReader, EpisodeWriter};
use lambda_kit::AwsCallCounter;

use crate::{contract, handlers};

/// What the function holds across invocations: built once at init.
#[derive(Debug)]
pub struct Api<S, I> {
    pub store: S,
    /// The search index `GET /episodes?q=` reads.
    pub index: I,
    /// Counts the AWS calls each request makes, for the access log.
    pub calls: AwsCallCounter,
}

/// The episodes the routes read and write.
pub trait Store: EpisodeReader + EpisodeLister + EpisodeWriter + Send + Sync + 'static {}
impl<T: EpisodeReader + EpisodeLister + EpisodeWriter + Send + Sync + 'static> Store for T {}

/// The state every handler takes (`State<Shared<..>>`), built once at init.
pub type Shared<S, I> = Arc<Api<S, I>>;

pub fn app<S: Store, I: SearchIndexReader + Send + Sync + 'static>(api: Arc<Api<S, I>>) -> Router {
    let calls = api.calls.clone();
    let routes = Router::new()
        .route("/health", get(handlers::health))
        .route("/openapi.json", get(contract::openapi))
        .route("/asyncapi.json", get(contract::asyncapi))
        .route(
            "/episodes",
            get(handlers::list::<S, I>).post(handlers::create::<S, I>),
        )
        .route(
            "/episodes/{id}",
            get(handlers::get::<S, I>)
                .patch(handlers::update::<S, I>)
                .delete(handlers::delete::<S, I>),
        );
    lambda_kit::router::app(routes, api, calls)
}

#[cfg(test)]
mod tests {
    //! The handlers driven with the fixtures from `events/`, against the in-memory store.

    use domain::store::memory::{InMemoryEpisodeStore, InMemorySearchIndex};
    use domain::{EpisodeId, EpisodeStatus, EventType};
    use lambda_http::http::StatusCode;
    use lambda_http::{Body, Request, Response};
    use serde_json::{Value, json};

    use super::*;

    const EPISODE_ID: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

    type TestApi = Arc<Api<InMemoryEpisodeStore, InMemorySearchIndex>>;

    fn api() -> TestApi {
        Arc::new(Api {
            store: InMemoryEpisodeStore::default(),
            index: InMemorySearchIndex::default(),
            calls: AwsCallCounter::default(),
        })
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

    async fn send(api: &TestApi, req: Request) -> (StatusCode, Value, Response<Body>) {
        let resp = lambda_kit::fixture::respond(app(api.clone()), req).await;
        let body = lambda_kit::fixture::json_body(&resp).unwrap();
        (resp.status(), body, resp)
    }

    async fn create(api: &TestApi, user: &str) -> String {
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

    /// The create fixture with an `Idempotency-Key` and, when given, another body.
    fn keyed(key: &str, body: Option<&str>) -> Value {
        let mut event = fixture("create");
        event["headers"]["idempotency-key"] = json!(key);
        if let Some(b) = body {
            event["body"] = json!(b);
        }
        event
    }

    #[tokio::test]
    async fn a_create_repeated_with_its_idempotency_key_names_the_same_episode() {
        let api = api();
        let (status, first, _) =
            send(&api, request(keyed("k-1", None), None, "alice", "editor")).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        let (status, again, resp) =
            send(&api, request(keyed("k-1", None), None, "alice", "editor")).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again, first, "the episode the first request created");
        assert_eq!(
            resp.headers()["location"],
            format!("/episodes/{}", first["id"].as_str().unwrap())
        );
        assert_eq!(resp.headers()["etag"], "\"1\"");
        let other = keyed("k-1", Some(r#"{"title":"Another"}"#));
        let (status, body, _) = send(&api, request(other, None, "alice", "editor")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(api.store.events().len(), 1, "one episode, one event");
        // The key is the user's own; without a key each create is new.
        let (status, _, _) = send(&api, request(keyed("k-1", None), None, "bob", "editor")).await;
        assert_eq!(status, StatusCode::CREATED);
        create(&api, "alice").await;
        assert_eq!(api.store.events().len(), 3);
        let (status, body, _) = send(
            &api,
            request(keyed("a key with spaces", None), None, "alice", "editor"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
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

    /// `"season": 2.0` was refused: JSON Schema's `integer` (the contract's) includes it.
    #[tokio::test]
    async fn whole_numbers_with_a_zero_fraction_are_numbers() {
        let api = api();
        let mut event = fixture("create");
        event["body"] = json!(r#"{"title": "Pilot", "season": 2.0, "number": 4.0}"#);
        let (status, body, _) = send(&api, request(event, None, "alice", "editor")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!((&body["season"], &body["number"]), (&json!(2), &json!(4)));
        let mut event = fixture("create");
        event["body"] = json!(r#"{"title": "Pilot", "season": 2.5}"#);
        let (status, body, _) = send(&api, request(event, None, "alice", "editor")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }

    /// schemathesis found an empty `If-Match` refused with 400: an empty list of tags is the
    /// same as no header (so a delete goes ahead, an edit names its version in the body).
    #[tokio::test]
    async fn an_empty_if_match_is_no_if_match() {
        let api = api();
        let id = create(&api, "alice").await;
        let mut event = fixture("delete");
        event["headers"]["if-match"] = json!(" ");
        let (status, body, _) = send(&api, request(event, Some(&id), "alice", "editor")).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    #[tokio::test]
    async fn stale_if_match_is_412_and_writes_nothing() {
        let api = api();
        let id = create(&api, "alice").await;
        let mut event = fixture("update");
        event["headers"]["if-match"] = json!("\"5\"");
        let (status, body, _) = send(&api, request(event, Some(&id), "alice", "editor")).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
        // Who saved first: the version the episode is at, and its save.
        assert_eq!(body["current"]["version"], 1);
        assert_eq!(body["current"]["saved_by"]["id"], "alice");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("version 5 was edited: Alice saved version 1 first, at "),
            "{body}"
        );
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
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["type"], "/problems/illegal-transition");
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

    #[tokio::test]
    async fn a_search_reads_the_index_and_its_cursor_is_bound_to_the_words() {
        use domain::search::{Plan, Terms};
        use domain::store::search::SearchIndexWriter;

        let api = api();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let id = create(&api, "alice").await;
            // Indexed as the search worker would.
            let episode = api.store.episode(EpisodeId::parse(&id).unwrap()).unwrap();
            let plan = Plan {
                puts: Terms::of(&episode)
                    .iter()
                    .map(|(t, f)| (t.clone(), f))
                    .collect(),
                deletes: vec![],
            };
            api.index.apply(episode.id, &plan).await.unwrap();
            ids.push(id);
        }
        let encode = |v: &str| -> String {
            v.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let search = |query: &[(&str, &str)]| {
            let mut event = fixture("list");
            let raw: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            event["rawQueryString"] = json!(raw.join("&"));
            event["queryStringParameters"] = query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            request(event, None, "vic", "viewer")
        };
        let title = api
            .store
            .episode(EpisodeId::parse(&ids[0]).unwrap())
            .unwrap()
            .title;
        let word = title
            .as_str()
            .split_whitespace()
            .next()
            .unwrap()
            .to_lowercase();
        let prefix = &word[..3];
        let (status, body, _) = send(&api, search(&[("q", prefix), ("limit", "2")])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let found: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(found, [ids[2].as_str(), ids[1].as_str()], "newest first");
        let cursor = body["next_cursor"].as_str().unwrap().to_owned();
        let (_, body, _) = send(
            &api,
            search(&[("q", prefix), ("limit", "2"), ("cursor", &cursor)]),
        )
        .await;
        assert_eq!(body["items"][0]["id"], ids[0].as_str());
        assert!(body["next_cursor"].is_null());
        // The cursor is the search's: not another's, not the list's.
        for other in [
            vec![("q", "zzz"), ("cursor", cursor.as_str())],
            vec![("cursor", cursor.as_str())],
        ] {
            let (status, body, _) = send(&api, search(&other)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        }
        for nothing in ["", "?!"] {
            let (status, body, _) = send(&api, search(&[("q", nothing)])).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["items"], json!([]));
        }
        for (q, why) in [("a b c d e f g h i", "8"), (&"x".repeat(201), "200")] {
            let (status, body, _) = send(&api, search(&[("q", q)])).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
            assert_eq!(body["errors"][0]["field"], "q");
            assert!(
                body["errors"][0]["message"].as_str().unwrap().contains(why),
                "{body}"
            );
        }
    }

    /// The published contract and this router agree: every operation is routed, and each
    /// takes the query parameters and body fields the handler does.
    #[tokio::test]
    async fn the_contract_describes_these_routes() {
        use api_contract::testing::{assert_body, assert_query, assert_routed};
        let fixture = include_str!("../../../events/episodes-api/get-episode.json");
        assert_routed(app(api()), api_contract::Function::Episodes, fixture).await;
        assert_query::<handlers::Listing>("listEpisodes");
        assert_body::<crate::input::Create>("createEpisode");
        assert_body::<crate::input::Patch>("updateEpisode");
    }

    #[tokio::test]
    async fn the_contracts_are_served_without_a_token() {
        for (path, key, version) in [
            ("/openapi.json", "openapi", "3.1.1"),
            ("/asyncapi.json", "asyncapi", "3.0.0"),
        ] {
            let req = lambda_kit::fixture::HttpFixture::parse(include_str!(
                "../../../events/episodes-api/health.json"
            ))
            .unwrap()
            .route("GET", path)
            .anonymous()
            .request()
            .unwrap();
            let response = lambda_kit::fixture::respond(app(api()), req).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let doc = lambda_kit::fixture::json_body(&response).unwrap();
            assert_eq!(doc[key], version, "{path}");
        }
    }
}
