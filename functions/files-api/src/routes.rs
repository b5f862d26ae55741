//! Path and method to handler: the file routes, as API Gateway routes them to this function.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use domain::store::file::{FileReader, FileWriter};
use domain::store::object::{ObjectReader, ObjectTransfers, ObjectWriter};
use domain::store::{EpisodeExistence, MessageSender};
use lambda_kit::AwsCallCounter;

use crate::files;

/// What the routes need: file records (`F`), their objects (`O`) and the files queue (`Q`).
/// Built once at init.
#[derive(Debug)]
pub struct Api<F, O, Q> {
    pub files: F,
    pub objects: O,
    /// The files queue: the check after a pending file's upload URLs expire.
    pub tasks: Q,
    pub upload_ttl: Duration,
    /// Counts the AWS calls each request makes, for the access log.
    pub calls: AwsCallCounter,
}

/// The file records the routes read and write.
pub trait Files: FileReader + FileWriter + EpisodeExistence + Send + Sync + 'static {}
impl<T: FileReader + FileWriter + EpisodeExistence + Send + Sync + 'static> Files for T {}

/// The objects behind them.
pub trait Objects: ObjectReader + ObjectWriter + ObjectTransfers + Send + Sync + 'static {}
impl<T: ObjectReader + ObjectWriter + ObjectTransfers + Send + Sync + 'static> Objects for T {}

/// The files queue.
pub trait Tasks: MessageSender + Send + Sync + 'static {}
impl<T: MessageSender + Send + Sync + 'static> Tasks for T {}

/// The state every handler takes (`State<Shared<..>>`), built once at init.
pub type Shared<F, O, Q> = Arc<Api<F, O, Q>>;

pub fn app<F: Files, O: Objects, Q: Tasks>(api: Arc<Api<F, O, Q>>) -> Router {
    let calls = api.calls.clone();
    let routes = Router::new()
        .route(
            "/episodes/{id}/files",
            post(files::create::<F, O, Q>).get(files::list::<F, O, Q>),
        )
        .route(
            "/files/{id}",
            get(files::get::<F, O, Q>).delete(files::delete::<F, O, Q>),
        )
        .route("/files/{id}/complete", post(files::complete::<F, O, Q>))
        .route("/files/{id}/download", get(files::download::<F, O, Q>));
    lambda_kit::router::app(routes, api, calls)
}

#[cfg(test)]
mod tests {
    //! Every route through the router, with the fixtures from `events/files-api` and the
    //! in-memory ports: each route's success and each of its refusals.

    use domain::store::memory::{InMemoryFileStore, InMemoryObjects, InMemoryQueue};
    use domain::{EpisodeId, EventType, FileId, Sha256};
    use lambda_http::http::StatusCode;
    use lambda_http::{Body, Response};
    use lambda_kit::fixture::HttpFixture;
    use serde_json::Value;

    use super::*;

    const EPISODE: &str = "01a23152-6cb8-7273-b29c-040ecfd73448";
    const FILE: &str = "01a23152-6d0c-7385-a877-e9f664c0acfe";
    /// The fixture's upload: 11 bytes.
    const BYTES: &[u8] = b"hello world";

    type TestApi = Arc<Api<InMemoryFileStore, InMemoryObjects, InMemoryQueue>>;

    fn api() -> TestApi {
        let files = InMemoryFileStore::default();
        files.add_episode(EpisodeId::parse(EPISODE).unwrap());
        Arc::new(Api {
            files,
            objects: InMemoryObjects::default(),
            tasks: InMemoryQueue::default(),
            upload_ttl: Duration::from_secs(900),
            calls: AwsCallCounter::default(),
        })
    }

    fn fixture(name: &str) -> HttpFixture {
        let text = match name {
            "create" => include_str!("../../../events/files-api/create-file.json"),
            "list" => include_str!("../../../events/files-api/list-files.json"),
            "get" => include_str!("../../../events/files-api/get-file.json"),
            "complete" => include_str!("../../../events/files-api/complete-file.json"),
            "download" => include_str!("../../../events/files-api/download-file.json"),
            "delete" => include_str!("../../../events/files-api/delete-file.json"),
            other => panic!("no fixture {other}"),
        };
        HttpFixture::parse(text).unwrap()
    }

    /// The fixture of a route on file `id`.
    fn on(name: &str, id: &str) -> HttpFixture {
        fixture(name).path_segment(FILE, id)
    }

    async fn send(api: &TestApi, req: HttpFixture) -> (StatusCode, Value, Response<Body>) {
        let resp = lambda_kit::fixture::respond(app(api.clone()), req.request().unwrap()).await;
        let body = lambda_kit::fixture::json_body(&resp).unwrap();
        (resp.status(), body, resp)
    }

    /// Starts the fixture's upload; the file's id and object key.
    async fn create(api: &TestApi) -> (String, String) {
        let (status, body, _) = send(api, fixture("create")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["file"]["id"].as_str().unwrap().to_owned();
        let key = api.files.file(FileId::parse(&id).unwrap()).unwrap().key;
        (id, key)
    }

    /// Starts and completes an upload of the fixture's bytes.
    async fn available(api: &TestApi) -> (String, String) {
        let (id, key) = create(api).await;
        api.objects.upload(&key, BYTES.to_vec(), None);
        let (status, body, _) = send(api, on("complete", &id)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (id, key)
    }

    fn event_types(api: &TestApi) -> Vec<EventType> {
        api.files.events().iter().map(|e| e.event_type).collect()
    }

    #[tokio::test]
    async fn create_records_a_pending_file_and_hands_out_its_upload() {
        let api = api();
        let (status, body, resp) = send(&api, fixture("create")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["file"]["id"].as_str().unwrap();
        assert_eq!(resp.headers()["location"], format!("/files/{id}"));
        assert_eq!(body["file"]["status"], "pending");
        assert_eq!(body["upload"]["kind"], "single");
        assert_eq!(body["upload"]["method"], "PUT");
        assert_eq!(body["upload"]["complete"], format!("/files/{id}/complete"));
        assert!(
            event_types(&api).is_empty(),
            "nobody hears of a pending file"
        );
        // The check after the URLs expire.
        let sent = api.tasks.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1, 900, "upload TTL + 5 s, at most SQS's 900");
        assert!(sent[0].0.contains(id));
    }

    #[tokio::test]
    async fn a_large_file_gets_a_multipart_upload() {
        let api = api();
        let size = 300 * 1024 * 1024;
        let body =
            format!(r#"{{"name": "take-1.wav", "content_type": "audio/wav", "size": {size}}}"#);
        let (status, resp, _) = send(&api, fixture("create").body(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{resp}");
        assert_eq!(resp["upload"]["kind"], "multipart");
        assert_eq!(resp["upload"]["parts"].as_array().map(Vec::len), Some(19));
        assert_eq!(api.objects.open_uploads(), 1);
        // A checksum cannot be checked on a multipart upload: refused, nothing started.
        let with_sha = format!(
            r#"{{"name": "a.wav", "content_type": "audio/wav", "size": {size}, "sha256": "{}"}}"#,
            "ab".repeat(32)
        );
        let (status, body, _) = send(&api, fixture("create").body(&with_sha)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["errors"][0]["field"], "sha256");
        assert_eq!(api.objects.open_uploads(), 1);
        // For an episode that does not exist, the multipart upload started is aborted.
        let missing = fixture("create")
            .path_segment(EPISODE, &EpisodeId::new().to_string())
            .body(&body_of_size(size));
        let (status, _, _) = send(&api, missing).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            api.objects.open_uploads(),
            1,
            "the refused one's upload aborted"
        );
    }

    fn body_of_size(size: u64) -> String {
        format!(r#"{{"name": "b.wav", "content_type": "audio/wav", "size": {size}}}"#)
    }

    #[tokio::test]
    async fn create_refuses_bad_requests_and_records_nothing() {
        let api = api();
        for (case, req, expected) in [
            ("viewer", fixture("create").caller("vic", "viewer"), 403),
            ("no caller", fixture("create").anonymous(), 401),
            (
                "episode id",
                fixture("create").path_segment(EPISODE, "x"),
                400,
            ),
            ("not JSON", fixture("create").body("{"), 400),
            (
                "unknown field",
                fixture("create").body(
                    r#"{"name": "a.wav", "content_type": "audio/wav", "size": 1, "colour": 1}"#,
                ),
                422,
            ),
            (
                "type",
                fixture("create").body(
                    r#"{"name": "a.exe", "content_type": "application/x-msdownload", "size": 1}"#,
                ),
                422,
            ),
            (
                "size",
                fixture("create")
                    .body(r#"{"name": "a.wav", "content_type": "audio/wav", "size": -1}"#),
                422,
            ),
            (
                "media type",
                fixture("create").header("content-type", "text/plain"),
                415,
            ),
            (
                "missing episode",
                fixture("create").path_segment(EPISODE, &EpisodeId::new().to_string()),
                404,
            ),
        ] {
            let (status, body, resp) = send(&api, req).await;
            assert_eq!(status.as_u16(), expected, "{case}: {body}");
            assert_eq!(
                resp.headers()["content-type"],
                "application/problem+json",
                "{case}"
            );
        }
        let (_, body, _) = send(&api, fixture("list")).await;
        assert_eq!(body["items"].as_array().map(Vec::len), Some(0));
        assert!(api.tasks.sent().is_empty());
    }

    #[tokio::test]
    async fn complete_makes_the_file_available_once_when_its_bytes_are_right() {
        let api = api();
        let (id, key) = create(&api).await;
        let (status, body, _) = send(&api, on("complete", &id)).await;
        assert_eq!(status, StatusCode::CONFLICT, "nothing uploaded: {body}");
        api.objects.upload(&key, b"too short".to_vec(), None);
        let (status, body, _) = send(&api, on("complete", &id)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(api.objects.bytes(&key), None, "the wrong bytes are removed");
        api.objects.upload(&key, BYTES.to_vec(), None);
        let (status, _, _) = send(&api, on("complete", &id).caller("bob", "editor")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "not bob's upload");
        let (status, body, _) = send(&api, on("complete", &id)).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("available"))
        );
        assert_eq!(api.objects.is_pending(&key), Some(false), "untagged");
        let (status, _, _) = send(&api, on("complete", &id)).await;
        assert_eq!(status, StatusCode::OK, "completing twice changes nothing");
        assert_eq!(event_types(&api), [EventType::FileUploaded]);
        assert_eq!(api.files.events()[0].actor.id.as_str(), "alice");
    }

    #[tokio::test]
    async fn a_declared_checksum_is_held_to() {
        let api = api();
        let sha = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        let body = format!(
            r#"{{"name": "take-1.wav", "content_type": "audio/wav", "size": 11, "sha256": "{sha}"}}"#
        );
        let (status, created, _) = send(&api, fixture("create").body(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["file"]["id"].as_str().unwrap();
        let key = api.files.file(FileId::parse(id).unwrap()).unwrap().key;
        api.objects
            .upload(&key, BYTES.to_vec(), Some(Sha256::parse(sha).unwrap()));
        let (status, body, _) = send(&api, on("complete", id)).await;
        assert_eq!(
            (status, body["sha256"].as_str()),
            (StatusCode::OK, Some(sha))
        );
    }

    #[tokio::test]
    async fn download_needs_an_available_file_and_is_recorded() {
        let api = api();
        let (pending, _) = create(&api).await;
        let (status, _, _) = send(&api, on("download", &pending)).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (id, key) = available(&api).await;
        let (status, body, _) = send(&api, on("download", &id).caller("vic", "viewer")).await;
        assert_eq!(status, StatusCode::OK, "viewers may download: {body}");
        assert_eq!(body["url"], format!("memory://GET/{key}"));
        assert_eq!(
            event_types(&api),
            [EventType::FileUploaded, EventType::FileDownloaded]
        );
        let (status, _, _) = send(&api, on("download", &FileId::new().to_string())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn delete_is_the_uploaders_or_an_admins_and_takes_the_bytes() {
        let api = api();
        let (id, key) = available(&api).await;
        let (status, _, _) = send(&api, on("delete", &id).caller("bob", "editor")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = send(&api, on("delete", &id).caller("vic", "viewer")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = send(&api, on("delete", &id).caller("root", "admin")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(api.objects.bytes(&key), None);
        assert_eq!(api.files.file(FileId::parse(&id).unwrap()), None);
        assert_eq!(
            event_types(&api),
            [EventType::FileUploaded, EventType::FileDeleted]
        );
        let (status, _, _) = send(&api, on("get", &id)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A pending file goes without an event.
        let (pending, _) = create(&api).await;
        let (status, _, _) = send(&api, on("delete", &pending)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(api.files.events().len(), 2);
    }

    #[tokio::test]
    async fn list_pages_an_episodes_files_and_tells_a_missing_episode() {
        let api = api();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(create(&api).await.0);
        }
        let (status, body, _) = send(&api, fixture("list").query("limit=2")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["items"][1]["id"], ids[1].as_str());
        let cursor = body["next_cursor"].as_str().unwrap();
        let (_, body, _) = send(&api, fixture("list").query(&format!("cursor={cursor}"))).await;
        assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(body["next_cursor"], Value::Null);
        for query in ["limit=0", "cursor=x", "colour=red"] {
            let (status, _, _) = send(&api, fixture("list").query(query)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        }
        let missing = fixture("list").path_segment(EPISODE, &EpisodeId::new().to_string());
        let (status, _, _) = send(&api, missing).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body, _) = send(&api, on("get", &ids[0])).await;
        assert_eq!(
            (status, body["id"].as_str()),
            (StatusCode::OK, Some(ids[0].as_str()))
        );
        let (status, _, _) = send(&api, on("get", "nope")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // schemathesis found it: a deleted episode's files were still listed until the files
        // worker removed them. The list is 404 as soon as the episode is gone.
        api.files.delete_episode(EpisodeId::parse(EPISODE).unwrap());
        let (status, body, _) = send(&api, fixture("list")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _, _) = send(&api, fixture("list").query(&format!("cursor={cursor}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problems() {
        let api = api();
        let (status, _, resp) = send(&api, fixture("get").method("PUT")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let (status, _, _) = send(&api, fixture("get").path_segment("/files/", "/flies/")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    /// The published contract and this router agree: every operation is routed, and each
    /// takes the query parameters and body fields the handler does.
    #[tokio::test]
    async fn the_contract_describes_these_routes() {
        use api_contract::testing::{assert_body, assert_query, assert_routed};
        let fixture = include_str!("../../../events/files-api/get-file.json");
        assert_routed(app(api()), api_contract::Function::Files, fixture).await;
        assert_query::<lambda_kit::router::Paged>("listFiles");
        assert_body::<crate::input::NewFileBody>("createFile");
    }
}
