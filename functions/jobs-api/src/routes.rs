//! Path and method to handler: the job routes, as API Gateway routes them to this function.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use domain::store::EpisodeExistence;
use domain::store::file::FileReader;
use domain::store::job::{JobReader, JobWriter};
use lambda_kit::AwsCallCounter;

use crate::{jobs, rules};

/// What the routes need: the jobs (`J`) and, to check a new job's file, the files (`F`).
/// Built once at init.
#[derive(Debug)]
pub struct Api<J, F> {
    pub jobs: J,
    pub files: F,
    pub fault_injection: bool,
    /// The stack's rules for jobs on upload (`UPLOAD_JOBS`), served beside an episode's own.
    pub upload_rules: domain::upload_rules::UploadRules,
    /// Counts the AWS calls each request makes, for the access log.
    pub calls: AwsCallCounter,
}

/// The jobs the routes read and move.
pub trait Jobs: JobReader + JobWriter + EpisodeExistence + Send + Sync + 'static {}
impl<T: JobReader + JobWriter + EpisodeExistence + Send + Sync + 'static> Jobs for T {}

/// The state every handler takes (`State<Shared<..>>`), built once at init.
pub type Shared<J, F> = Arc<Api<J, F>>;

pub fn app<J: Jobs, F: FileReader + Send + Sync + 'static>(api: Arc<Api<J, F>>) -> Router {
    let calls = api.calls.clone();
    let routes = Router::new()
        .route(
            "/episodes/{id}/jobs",
            post(jobs::create::<J, F>).get(jobs::list::<J, F>),
        )
        .route(
            "/episodes/{id}/upload-rules",
            get(rules::get::<J, F>)
                .put(rules::put::<J, F>)
                .delete(rules::delete::<J, F>),
        )
        .route("/jobs/{id}", get(jobs::get::<J, F>))
        .route("/jobs/{id}/cancel", post(jobs::cancel::<J, F>))
        .route("/jobs/{id}/retry", post(jobs::retry::<J, F>));
    lambda_kit::router::app(routes, api, calls)
}

#[cfg(test)]
mod tests {
    //! Every route through the router, with the fixtures from `events/jobs-api` and the
    //! in-memory stores: each route's success and each of its refusals.

    use domain::store::memory::{InMemoryFileStore, InMemoryJobStore};
    use domain::{
        Actor, ContentType, EpisodeFile, EpisodeId, EventType, FileId, FileName, FileSize,
        FileStatus, JobId, JobState, NewFile, Stamp, Timestamp, UserId,
    };
    use lambda_http::http::StatusCode;
    use lambda_http::{Body, Response};
    use lambda_kit::fixture::HttpFixture;
    use serde_json::{Value, json};

    use super::*;

    const EPISODE: &str = "01a23152-6cb8-7273-b29c-040ecfd73448";
    const JOB: &str = "01a23152-6d9f-7420-8125-2a37ecfdb1bb";
    const FILE: &str = "01a23152-6d0c-7385-a877-e9f664c0acfe";

    type TestApi = Arc<Api<InMemoryJobStore, InMemoryFileStore>>;

    /// An API whose store holds the fixtures' episode with an available PNG (`FILE`).
    fn api() -> TestApi {
        let files = InMemoryFileStore::default();
        let episode = EpisodeId::parse(EPISODE).unwrap();
        files.add_episode(episode);
        files.put_file(file(FILE, episode, "image/png", FileStatus::Available));
        Arc::new(Api {
            jobs: InMemoryJobStore::new(&files),
            files,
            fault_injection: false,
            upload_rules: lambda_kit::parse_upload_rules(
                r#"{"audio": ["checksum", "media-probe"], "image": ["thumbnail"]}"#,
            )
            .unwrap(),
            calls: AwsCallCounter::default(),
        })
    }

    fn file(id: &str, episode: EpisodeId, content_type: &str, status: FileStatus) -> EpisodeFile {
        let alice = Actor {
            id: UserId::parse("alice").unwrap(),
            name: domain::DisplayName::new("Alice"),
            role: domain::Role::Editor,
        };
        let mut f = NewFile {
            name: FileName::parse("cover.png").unwrap(),
            content_type: ContentType::parse(content_type).unwrap(),
            size: FileSize::new(1000).unwrap(),
            sha256: None,
        }
        .into_file(
            FileId::parse(id).unwrap(),
            episode,
            Stamp::new(&alice, Timestamp::now()),
        );
        f.status = status;
        f
    }

    fn fixture(name: &str) -> HttpFixture {
        let text = match name {
            "create" => include_str!("../../../events/jobs-api/create-job.json"),
            "list" => include_str!("../../../events/jobs-api/list-jobs.json"),
            "get" => include_str!("../../../events/jobs-api/get-job.json"),
            "cancel" => include_str!("../../../events/jobs-api/cancel-job.json"),
            "retry" => include_str!("../../../events/jobs-api/retry-job.json"),
            "rules" => include_str!("../../../events/jobs-api/put-upload-rules.json"),
            other => panic!("no fixture {other}"),
        };
        HttpFixture::parse(text).unwrap()
    }

    async fn send(api: &TestApi, req: HttpFixture) -> (StatusCode, Value, Response<Body>) {
        let resp = lambda_kit::fixture::respond(app(api.clone()), req.request().unwrap()).await;
        let body = lambda_kit::fixture::json_body(&resp).unwrap();
        (resp.status(), body, resp)
    }

    /// Creates the fixture's job; its id.
    async fn create(api: &TestApi) -> String {
        let (status, body, _) = send(api, fixture("create")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    fn event_types(api: &TestApi) -> Vec<EventType> {
        api.jobs.events().iter().map(|e| e.event_type).collect()
    }

    /// Sets the stored job's state (as the worker would have moved it).
    fn set_state(api: &TestApi, id: &str, state: JobState) {
        let mut stored = api.jobs.job(JobId::parse(id).unwrap()).unwrap();
        stored.job.state = state;
        stored.job.attempts = 1;
        api.jobs.put_job(stored.job, None);
    }

    #[tokio::test]
    async fn upload_rules_are_set_read_and_cleared_per_episode_over_the_stack_defaults() {
        let api = api();
        let (status, body, _) = send(&api, fixture("rules").method("GET").body("")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["episode"], json!({}));
        assert_eq!(body["effective"]["audio"]["from"], "stack");
        assert_eq!(body["effective"]["audio"]["jobs"][1]["type"], "media-probe");
        assert_eq!(body["updated_by"], Value::Null);

        let before = api.jobs.calls();
        let (status, body, _) = send(&api, fixture("rules")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // One write, checking the episode in it; nothing read back.
        assert_eq!(api.jobs.calls() - before, 1);
        let audio = &body["effective"]["audio"];
        assert_eq!(audio["from"], "episode");
        let types: Vec<&str> = audio["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["checksum", "loudness", "waveform"]);
        assert_eq!(audio["jobs"][1]["params"]["integrated_lufs"], -23.0);
        assert_eq!(audio["jobs"][2]["params"]["pixels_per_second"], 20);
        // `[]`: images start nothing here; video follows the stack (which sets nothing).
        assert_eq!(
            body["effective"]["image"],
            json!({"from": "episode", "jobs": []})
        );
        assert_eq!(
            body["effective"]["video"],
            json!({"from": "stack", "jobs": []})
        );
        assert_eq!(body["updated_by"]["id"], "alice");
        let (_, again, _) = send(&api, fixture("rules").method("GET").body("")).await;
        assert_eq!(again, body);

        let (status, body, _) = send(&api, fixture("rules").method("DELETE").body("")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["effective"]["image"]["jobs"][0]["type"], "thumbnail");
        assert_eq!(body["episode"], json!({}));
    }

    #[tokio::test]
    async fn upload_rules_refuse_bad_rules_viewers_and_unknown_episodes_and_change_nothing() {
        let api = api();
        for (body, status, field) in [
            (r#"{"audio": ["thumbnail"]}"#, 422, "audio.0.type"),
            (
                r#"{"audio": ["loudness", "loudness"]}"#,
                422,
                "audio.1.type",
            ),
            (
                r#"{"audio": [{"type": "loudness", "params": {"integrated_lufs": 3}}]}"#,
                422,
                "audio.0.params.integrated_lufs",
            ),
            (r#"{"sound": []}"#, 422, "sound"),
            (r#"{"audio": "checksum"}"#, 422, "audio"),
            (r#"[]"#, 422, "body"),
            (r#"{"audio": ["#, 400, "body"),
        ] {
            let (got, problem, _) = send(&api, fixture("rules").body(body)).await;
            assert_eq!(got.as_u16(), status, "{body}: {problem}");
            assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        }
        let (status, _, _) = send(&api, fixture("rules").caller("vic", "viewer")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = send(&api, fixture("rules").anonymous()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let nowhere = EpisodeId::new().to_string();
        for method in ["GET", "PUT", "DELETE"] {
            let req = fixture("rules")
                .path_segment(EPISODE, &nowhere)
                .method(method);
            let (status, _, _) = send(&api, req).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
        }
        let (_, body, _) = send(&api, fixture("rules").method("GET").body("")).await;
        assert_eq!(body["episode"], json!({}));
    }

    #[tokio::test]
    async fn create_queues_the_job_with_its_event_in_one_write() {
        let api = api();
        let (status, body, resp) = send(&api, fixture("create")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            resp.headers()["location"],
            format!("/jobs/{}", body["id"].as_str().unwrap())
        );
        assert_eq!(body["state"], "queued");
        assert_eq!(body["type"], "thumbnail");
        assert_eq!(body["params"]["max_size"], 100);
        assert_eq!(body["created_by"]["id"], "alice");
        assert_eq!(event_types(&api), [EventType::JobCreated]);
        // One read of the file, one write.
        assert_eq!((api.files.calls(), api.jobs.calls()), (1, 1));
    }

    #[tokio::test]
    async fn the_same_idempotency_key_names_the_same_job_and_refuses_another_body() {
        let api = api();
        let first = create(&api).await;
        let (status, body, resp) = send(&api, fixture("create")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], first.as_str());
        assert_eq!(resp.headers()["location"], format!("/jobs/{first}"));
        let other =
            fixture("create").body(&format!(r#"{{"type": "checksum", "file_id": "{FILE}"}}"#));
        let (status, body, _) = send(&api, other).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(event_types(&api), [EventType::JobCreated]);
        // Without a key, every request is a new job.
        let (status, _, _) = send(&api, fixture("create").without_header("idempotency-key")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(api.jobs.events().len(), 2);
    }

    #[tokio::test]
    async fn create_refuses_bad_requests_and_writes_nothing() {
        let api = api();
        let other_episode = EpisodeId::new();
        api.files.add_episode(other_episode);
        let pending = FileId::new().to_string();
        let elsewhere = FileId::new().to_string();
        let audio = FileId::new().to_string();
        let episode = EpisodeId::parse(EPISODE).unwrap();
        api.files
            .put_file(file(&pending, episode, "image/png", FileStatus::Pending));
        api.files.put_file(file(
            &elsewhere,
            other_episode,
            "image/png",
            FileStatus::Available,
        ));
        api.files
            .put_file(file(&audio, episode, "audio/wav", FileStatus::Available));
        let body = |file: &str| format!(r#"{{"type": "thumbnail", "file_id": "{file}"}}"#);
        let huge = format!(r#"{{"type": "checksum", "pad": "{}"}}"#, "x".repeat(20_000));
        for (case, req, expected, field) in [
            ("viewer", fixture("create").caller("vic", "viewer"), 403, None),
            ("no caller", fixture("create").anonymous(), 401, None),
            (
                "episode id",
                fixture("create").path_segment(EPISODE, "nope"),
                400,
                Some("id"),
            ),
            ("not JSON", fixture("create").body("{"), 400, Some("body")),
            ("not an object", fixture("create").body("[1]"), 422, Some("body")),
            (
                "unknown field",
                fixture("create").body(&format!(
                    r#"{{"type": "checksum", "file_id": "{FILE}", "colour": 1}}"#
                )),
                422,
                Some("colour"),
            ),
            (
                "type",
                fixture("create").body(&format!(r#"{{"type": "transcode", "file_id": "{FILE}"}}"#)),
                422,
                Some("type"),
            ),
            (
                "no file",
                fixture("create").body(r#"{"type": "checksum"}"#),
                422,
                Some("file_id"),
            ),
            (
                "params",
                fixture("create").body(&format!(
                    r#"{{"type": "thumbnail", "file_id": "{FILE}", "params": {{"max_size": 1}}}}"#
                )),
                422,
                Some("params.max_size"),
            ),
            (
                "test hooks are off",
                fixture("create").body(&format!(
                    r#"{{"type": "checksum", "file_id": "{FILE}", "params": {{"inject_failures": 1}}}}"#
                )),
                422,
                Some("params.inject_failures"),
            ),
            (
                "missing file",
                fixture("create").body(&body(&FileId::new().to_string())),
                422,
                Some("file_id"),
            ),
            ("pending file", fixture("create").body(&body(&pending)), 422, Some("file_id")),
            (
                "another episode's file",
                fixture("create").body(&body(&elsewhere)),
                422,
                Some("file_id"),
            ),
            ("wrong kind", fixture("create").body(&body(&audio)), 422, Some("file_id")),
            (
                "content type",
                fixture("create").header("content-type", "text/plain"),
                415,
                None,
            ),
            ("too large", fixture("create").body(&huge), 413, None),
            (
                "key",
                fixture("create").header("idempotency-key", "a key with spaces"),
                400,
                Some("Idempotency-Key"),
            ),
            (
                // The header is checked before the body, whatever the body is.
                "key before body",
                fixture("create")
                    .header("idempotency-key", "a key with spaces")
                    .header("content-type", "text/plain"),
                400,
                Some("Idempotency-Key"),
            ),
        ] {
            let (status, body, resp) = send(&api, req).await;
            assert_eq!(status.as_u16(), expected, "{case}: {body}");
            assert_eq!(
                resp.headers()["content-type"],
                "application/problem+json",
                "{case}"
            );
            if let Some(field) = field {
                let fields: Vec<&str> = body["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["field"].as_str().unwrap())
                    .collect();
                assert!(fields.contains(&field), "{case}: {body}");
            }
        }
        assert!(api.jobs.events().is_empty());
    }

    #[tokio::test]
    async fn a_job_of_an_episode_that_does_not_exist_is_a_404() {
        let api = api();
        let missing = EpisodeId::new().to_string();
        for req in [
            fixture("create").path_segment(EPISODE, &missing),
            fixture("list").path_segment(EPISODE, &missing),
        ] {
            let (status, body, _) = send(&api, req).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        }
        // Deleted after its file was read: the write's own check says so.
        api.files.delete_episode(EpisodeId::parse(EPISODE).unwrap());
        let (status, body, _) = send(&api, fixture("create")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(api.jobs.events().is_empty());
    }

    #[tokio::test]
    async fn list_pages_through_an_episodes_jobs_and_filters_by_state() {
        let api = api();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(create_keyless(&api).await);
        }
        set_state(&api, &ids[1], JobState::Failed);
        let (status, body, _) = send(&api, fixture("list").query("limit=2")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect();
        assert_eq!(page, [ids[0].as_str(), ids[1].as_str()]);
        let cursor = body["next_cursor"].as_str().unwrap();
        let (_, body, _) = send(
            &api,
            fixture("list").query(&format!("limit=2&cursor={cursor}")),
        )
        .await;
        assert_eq!(body["items"][0]["id"], ids[2].as_str());
        assert_eq!(body["next_cursor"], Value::Null);
        let (_, body, _) = send(&api, fixture("list")).await;
        let queued: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect();
        assert_eq!(queued, [ids[0].as_str(), ids[2].as_str()]);
        // A deleted episode's jobs are gone at once (the episode is read beside them).
        api.files.delete_episode(EpisodeId::parse(EPISODE).unwrap());
        let (status, body, _) = send(&api, fixture("list")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        api.files.add_episode(EpisodeId::parse(EPISODE).unwrap());
        // A cursor is bound to its query: not valid with another state.
        for (query, field) in [
            ("state=paused", "state"),
            ("limit=0", "limit"),
            ("cursor=nonsense", "cursor"),
            (&format!("state=failed&cursor={cursor}") as &str, "cursor"),
            ("colour=red", "colour"),
        ] {
            let (status, body, _) = send(&api, fixture("list").query(query)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
            assert_eq!(body["errors"][0]["field"], field, "{query}");
        }
        // An episode with no jobs is an empty page, not a 404.
        let (status, body, _) = send(
            &api,
            fixture("list").path_segment(EPISODE, &{
                let empty = EpisodeId::new();
                api.files.add_episode(empty);
                empty.to_string()
            }),
        )
        .await;
        assert_eq!(
            (status, body["items"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(0))
        );
    }

    #[tokio::test]
    async fn get_finds_a_job_and_refuses_bad_ids() {
        let api = api();
        let id = create(&api).await;
        let (status, body, _) = send(&api, fixture("get").path_segment(JOB, &id)).await;
        assert_eq!(
            (status, body["id"].as_str()),
            (StatusCode::OK, Some(id.as_str()))
        );
        let (status, _, _) = send(&api, fixture("get")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body, _) = send(&api, fixture("get").path_segment(JOB, "x")).await;
        assert_eq!(
            (status, body["errors"][0]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("id"))
        );
        let (status, _, _) = send(&api, fixture("get").anonymous()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn cancel_stops_a_queued_job_now_and_asks_a_running_one() {
        let api = api();
        let queued = create(&api).await;
        let (status, body, _) = send(&api, fixture("cancel").path_segment(JOB, &queued)).await;
        assert_eq!(
            (status, body["state"].as_str()),
            (StatusCode::OK, Some("cancelled"))
        );
        assert_eq!(
            event_types(&api),
            [EventType::JobCreated, EventType::JobCancelled]
        );
        // Cancelled already: a refusal that names the state.
        let (status, body, _) = send(&api, fixture("cancel").path_segment(JOB, &queued)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["errors"][0]["field"], "state");
        assert!(body["detail"].as_str().unwrap().contains("cancelled"));

        let running = create_keyless(&api).await;
        set_state(&api, &running, JobState::Running);
        let (status, body, _) = send(&api, fixture("cancel").path_segment(JOB, &running)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            (body["state"].as_str(), body["cancel_requested"].as_bool()),
            (Some("running"), Some(true))
        );
        let stored = api.jobs.job(JobId::parse(&running).unwrap()).unwrap();
        assert!(stored.job.cancel_requested);
        // The worker records the cancel; the request wrote no event.
        assert_eq!(api.jobs.events().len(), 3);

        for (req, expected) in [
            (
                fixture("cancel").caller("vic", "viewer"),
                StatusCode::FORBIDDEN,
            ),
            (fixture("cancel"), StatusCode::NOT_FOUND),
            (
                fixture("cancel").method("GET"),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ] {
            let (status, body, _) = send(&api, req).await;
            assert_eq!(status, expected, "{body}");
        }
    }

    #[tokio::test]
    async fn retry_queues_a_failed_job_from_scratch_and_refuses_others() {
        let api = api();
        let id = create(&api).await;
        let (status, body, _) = send(&api, fixture("retry").path_segment(JOB, &id)).await;
        assert_eq!(status, StatusCode::CONFLICT, "a queued job: {body}");
        let mut stored = api.jobs.job(JobId::parse(&id).unwrap()).unwrap().job;
        stored.state = JobState::Failed;
        stored.attempts = 3;
        stored.error = Some("corrupt".into());
        stored.progress = 50;
        api.jobs.put_job(stored, None);
        let (status, body, _) = send(&api, fixture("retry").path_segment(JOB, &id)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            (
                &body["state"],
                &body["attempts"],
                &body["progress"],
                &body["error"]
            ),
            (&json!("queued"), &json!(0), &json!(0), &Value::Null)
        );
        assert_eq!(
            event_types(&api),
            [EventType::JobCreated, EventType::JobRetried]
        );
        let (status, _, _) = send(&api, fixture("retry").caller("vic", "viewer")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_problems() {
        let api = api();
        let (status, body, resp) = send(&api, fixture("get").method("DELETE")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let (status, _, _) = send(&api, fixture("get").path_segment("/jobs/", "/jabs/")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn create_keyless(api: &TestApi) -> String {
        let (status, body, _) =
            send(api, fixture("create").without_header("idempotency-key")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// The published contract and this router agree: every operation is routed, and each
    /// takes the query parameters and body fields the handler does.
    #[tokio::test]
    async fn the_contract_describes_these_routes() {
        use api_contract::testing::{assert_body, assert_query, assert_routed};
        let fixture = include_str!("../../../events/jobs-api/get-job.json");
        assert_routed(app(api()), api_contract::Function::Jobs, fixture).await;
        assert_query::<crate::jobs::Listing>("listJobs");
        assert_body::<crate::jobs::NewJobBody>("createJob");
        assert_body::<crate::rules::RulesBody>("setUploadRules");
    }
}
