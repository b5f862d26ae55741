//! Routes of the files API, and what each does.
//!
//! Completion is an explicit `POST /files/{id}/complete` that checks the object with
//! `HeadObject` (for multipart uploads, after completing the upload from the parts S3 holds),
//! rather than S3's `ObjectCreated` notification: the client learns at once whether its file
//! is available (and why not), the declared size and checksum are compared right there, and a
//! multipart upload needs a completing call anyway. The files worker covers clients that never
//! call it: once the upload URLs have expired, it confirms an upload that is really there, or
//! removes the pending record and whatever was uploaded.

use std::time::Duration;

use domain::store::file::{FileReader, FileWriteError, FileWriter};
use domain::store::object::{ObjectReader, ObjectTransfers, ObjectWriter, Presigned};
use domain::store::{EpisodeExistence, MessageSender, StoreError};
use domain::{
    Actor, DomainEvent, EpisodeFile, EpisodeId, FieldError, FileId, FileStatus, FileTask, Role,
    Stamp, Timestamp, UploadPlan,
};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use lambda_kit::AwsCallCounter;
use lambda_kit::http::{check_body, empty, json, paging, query_params, set_header};
use lambda_kit::{Problem, RequestMeta, cursor};
use serde_json::{Value, json};

use crate::input;

const MAX_BODY_BYTES: usize = 16 * 1024;
/// How long a download URL works.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(300);

/// What the routes need: file records (`F`), their objects (`O`) and the files queue (`Q`).
#[derive(Debug)]
pub struct Api<F, O, Q> {
    pub files: F,
    pub objects: O,
    /// The files queue: the check after a pending file's upload URLs expire.
    pub tasks: Q,
    pub upload_ttl: Duration,
    pub calls: AwsCallCounter,
}

/// The file records the routes read and write.
pub trait Files: FileReader + FileWriter + EpisodeExistence + Sync {}
impl<T: FileReader + FileWriter + EpisodeExistence + Sync> Files for T {}

/// The objects behind them.
pub trait Objects: ObjectReader + ObjectWriter + ObjectTransfers + Sync {}
impl<T: ObjectReader + ObjectWriter + ObjectTransfers + Sync> Objects for T {}

pub async fn handle<F: Files, O: Objects, Q: MessageSender + Sync>(
    api: &Api<F, O, Q>,
    req: Request,
) -> Response<Body> {
    let meta = RequestMeta::from_request(&req);
    lambda_kit::access::serve(&req, &meta, &api.calls, route(api, &meta, &req)).await
}

async fn route<F: Files, O: Objects, Q: MessageSender + Sync>(
    api: &Api<F, O, Q>,
    meta: &RequestMeta,
    req: &Request,
) -> Result<Response<Body>, Problem> {
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let method = req.method();
    match segments.as_slice() {
        ["episodes", id, "files"] if method == Method::POST => {
            let actor = meta.writer(WRITERS_ONLY)?;
            let episode = parse_episode(id)?;
            let body = check_body(req, &["application/json"], MAX_BODY_BYTES)?;
            create(api, &actor, episode, body).await
        }
        ["episodes", id, "files"] if method == Method::GET => {
            meta.actor()?;
            let episode = parse_episode(id)?;
            let params = query_params(req, &["limit", "cursor"])?;
            list(api, episode, &params).await
        }
        ["files", id] if method == Method::GET => {
            meta.actor()?;
            let file = find(api, parse_file(id)?).await?;
            json(StatusCode::OK, &file.to_json())
        }
        ["files", id] if method == Method::DELETE => {
            let actor = meta.writer(WRITERS_ONLY)?;
            delete(api, meta, &actor, parse_file(id)?).await
        }
        ["files", id, "complete"] if method == Method::POST => {
            let actor = meta.writer(WRITERS_ONLY)?;
            complete(api, meta, &actor, parse_file(id)?).await
        }
        ["files", id, "download"] if method == Method::GET => {
            let actor = meta.actor()?;
            download(api, meta, &actor, parse_file(id)?).await
        }
        ["episodes", _, "files"] | ["files", _] | ["files", _, "complete" | "download"] => {
            Err(Problem::method_not_allowed())
        }
        _ => Err(Problem::not_found("no such route")),
    }
}

/// What a viewer is told on a write.
const WRITERS_ONLY: &str = "viewers cannot upload, change or delete files";

/// Completing an upload (which, for a multipart upload whose parts do not add up, deletes
/// it) and deleting a file are the uploader's acts, or an admin's; other editors may not.
fn require_uploader_or_admin(
    actor: &Actor,
    file: &EpisodeFile,
    refusal: &'static str,
) -> Result<(), Problem> {
    if actor.role == Role::Admin || actor.id == file.created.by {
        Ok(())
    } else {
        Err(Problem::forbidden(refusal))
    }
}

use lambda_kit::http::episode_id as parse_episode;

fn parse_file(raw: &str) -> Result<FileId, Problem> {
    FileId::parse(raw)
        .map_err(|_| Problem::bad_request(vec![FieldError::new("id", "is not a file id")]))
}

fn unavailable(e: impl std::fmt::Display) -> Problem {
    Problem::unavailable("file store", &e)
}

fn write_problem(e: FileWriteError) -> Problem {
    match e {
        FileWriteError::NoEpisode => Problem::not_found("no such episode"),
        FileWriteError::NoFile => Problem::not_found("no such file"),
        FileWriteError::State(s) => Problem::conflict(format!("the file is {}", s.as_str())),
        FileWriteError::Store(e) => unavailable(e),
    }
}

async fn find<F: Files, O: Objects, Q: MessageSender + Sync>(
    api: &Api<F, O, Q>,
    id: FileId,
) -> Result<EpisodeFile, Problem> {
    api.files
        .get(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| Problem::not_found("no such file"))
}

fn presigned_json(p: &Presigned) -> Value {
    let headers: serde_json::Map<String, Value> = p
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({ "method": p.method, "url": p.url, "headers": headers })
}

async fn create<F: Files, O: Objects, Q: MessageSender + Sync>(
    api: &Api<F, O, Q>,
    actor: &Actor,
    episode: EpisodeId,
    body: &[u8],
) -> Result<Response<Body>, Problem> {
    let new = input::new_file(body)?;
    let now = Timestamp::now();
    let mut file = new.into_file(FileId::new(), episode, Stamp::new(actor, now));
    let plan = UploadPlan::for_size(file.size);
    if let UploadPlan::Multipart { .. } = plan {
        if file.sha256.is_some() {
            return Err(Problem::unprocessable(
                FieldError::new(
                    "sha256",
                    "is checked on single uploads (up to 100 MiB) only; run a checksum job after a multipart upload",
                )
                .into(),
            ));
        }
        file.upload_id = Some(
            api.objects
                .start_multipart(&file.key, file.content_type)
                .await
                .map_err(unavailable)?,
        );
    }
    if let Err(e) = api.files.create(&file).await {
        if let Some(upload_id) = &file.upload_id
            && let Err(abort) = api.objects.abort_multipart(&file.key, upload_id).await
        {
            tracing::warn!(error = %abort, "multipart upload left for the bucket's lifecycle rule");
        }
        return Err(write_problem(e));
    }
    let expires_at = now.plus_seconds(i64::try_from(api.upload_ttl.as_secs()).unwrap_or(0));
    let upload = match (plan, &file.upload_id) {
        (UploadPlan::Multipart { part_size, parts }, Some(upload_id)) => {
            let mut urls = Vec::new();
            for number in 1..=parts {
                let p = api
                    .objects
                    .presign_part(&file.key, upload_id, number, api.upload_ttl)
                    .await
                    .map_err(unavailable)?;
                urls.push(json!({"number": number, "method": p.method, "url": p.url}));
            }
            json!({
                "kind": "multipart",
                "part_size": part_size,
                "parts": urls,
                "complete": format!("/files/{}/complete", file.id),
                "expires_at": expires_at,
            })
        }
        _ => {
            let p = api
                .objects
                .presign_put(
                    &file.key,
                    file.content_type,
                    file.size.get(),
                    file.sha256.as_ref(),
                    api.upload_ttl,
                )
                .await
                .map_err(unavailable)?;
            let mut upload = presigned_json(&p);
            upload["kind"] = json!("single");
            upload["complete"] = json!(format!("/files/{}/complete", file.id));
            upload["expires_at"] = json!(expires_at);
            upload
        }
    };
    // Once the URLs have expired, the files worker confirms or cleans up what is left pending.
    let check = FileTask::PendingCheck {
        file_id: file.id,
        not_before: expires_at.plus_seconds(5),
    };
    let delay = u32::try_from(api.upload_ttl.as_secs() + 5).unwrap_or(900);
    if let Err(e) = api.tasks.send(check.to_body(), delay).await {
        tracing::warn!(file_id = %file.id, error = %e, "pending check not scheduled; the record's TTL will expire it");
    }
    tracing::info!(file_id = %file.id, episode_id = %episode, size = file.size.get(), "upload started");
    let mut response = json(
        StatusCode::CREATED,
        &json!({ "file": file.to_json(), "upload": upload }),
    )?;
    set_header(
        &mut response,
        header::LOCATION,
        &format!("/files/{}", file.id),
    );
    Ok(response)
}

/// Confirms an upload: the object must be there with the declared size (and checksum).
async fn complete<F: Files, O: Objects, Q: MessageSender + Sync>(
    api: &Api<F, O, Q>,
    meta: &RequestMeta,
    actor: &Actor,
    id: FileId,
) -> Result<Response<Body>, Problem> {
    let file = find(api, id).await?;
    require_uploader_or_admin(
        actor,
        &file,
        "only the file's uploader or an admin may complete its upload",
    )?;
    if file.status == FileStatus::Available {
        return json(StatusCode::OK, &file.to_json()); // completing twice changes nothing
    }
    if let Some(upload_id) = &file.upload_id {
        let done = api
            .objects
            .complete_multipart(&file.key, upload_id)
            .await
            .map_err(unavailable)?;
        if !done
            && api
                .objects
                .head(&file.key)
                .await
                .map_err(unavailable)?
                .is_none()
        {
            return Err(Problem::conflict("no part has been uploaded yet"));
        }
    }
    let Some(object) = api.objects.head(&file.key).await.map_err(unavailable)? else {
        return Err(Problem::conflict(
            "nothing was uploaded for this file yet: PUT the bytes to the upload URL first",
        ));
    };
    if let Err(reason) = file.matches_object(object.size, object.sha256.as_ref()) {
        // The wrong bytes are removed; the file stays pending for a correct upload.
        api.objects.delete(&file.key).await.map_err(unavailable)?;
        return Err(Problem::unprocessable(
            FieldError::new("upload", reason).into(),
        ));
    }
    // Untagged first: the lifecycle rule for abandoned uploads must not take it later.
    api.objects
        .mark_confirmed(&file.key)
        .await
        .map_err(unavailable)?;
    let now = Timestamp::now();
    let done = file.made_available(object.sha256.as_ref(), now);
    let event = DomainEvent::file_uploaded(&meta.event_context(actor), &done, now);
    match api
        .files
        .make_available(&file, object.sha256.as_ref(), &event)
        .await
    {
        Ok(()) => {}
        // A concurrent complete won: the file is available either way.
        Err(FileWriteError::State(FileStatus::Available)) => {
            return json(StatusCode::OK, &find(api, id).await?.to_json());
        }
        Err(e) => return Err(write_problem(e)),
    }
    tracing::info!(file_id = %id, event_id = %event.id, "file available");
    json(StatusCode::OK, &done.to_json())
}

async fn list<F: Files, O: Objects, Q: MessageSender + Sync>(
    api: &Api<F, O, Q>,
    episode: EpisodeId,
    params: &std::collections::BTreeMap<String, String>,
) -> Result<Response<Body>, Problem> {
    let scope = format!("files:{episode}");
    let paging = paging(params, &scope)?;
    let (limit, after) = (paging.limit, paging.after_id(|a| FileId::parse(a).ok())?);
    let page = api
        .files
        .list(episode, limit, after)
        .await
        .map_err(|e: StoreError| unavailable(e))?;
    if page.items.is_empty() && after.is_none() {
        // An episode without files, or no episode at all?
        let exists = api
            .files
            .episode_exists(episode)
            .await
            .map_err(unavailable)?;
        if !exists {
            return Err(Problem::not_found("no such episode"));
        }
    }
    let next = page
        .next_after
        .map(|a| cursor::encode(&[a.to_string()], &scope));
    json(
        StatusCode::OK,
        &json!({
            "items": page.items.iter().map(EpisodeFile::to_json).collect::<Vec<_>>(),
            "next_cursor": next,
        }),
    )
}

async fn download<F: Files, O: Objects, Q: MessageSender + Sync>(
    api: &Api<F, O, Q>,
    meta: &RequestMeta,
    actor: &Actor,
    id: FileId,
) -> Result<Response<Body>, Problem> {
    let file = find(api, id).await?;
    if file.status != FileStatus::Available {
        return Err(Problem::conflict(
            "the file is still pending: it can be downloaded once its upload is complete",
        ));
    }
    let url = api
        .objects
        .presign_get(
            &file.key,
            &file.name.content_disposition(),
            DOWNLOAD_URL_TTL,
        )
        .await
        .map_err(unavailable)?;
    let now = Timestamp::now();
    let event = DomainEvent::file_downloaded(&meta.event_context(actor), &file, now);
    api.files
        .record(&file, &event)
        .await
        .map_err(write_problem)?;
    let ttl = i64::try_from(DOWNLOAD_URL_TTL.as_secs()).unwrap_or(0);
    let mut body = presigned_json(&url);
    body["expires_at"] = json!(now.plus_seconds(ttl));
    json(StatusCode::OK, &body)
}

async fn delete<F: Files, O: Objects, Q: MessageSender + Sync>(
    api: &Api<F, O, Q>,
    meta: &RequestMeta,
    actor: &Actor,
    id: FileId,
) -> Result<Response<Body>, Problem> {
    let file = find(api, id).await?;
    require_uploader_or_admin(
        actor,
        &file,
        "only the file's uploader or an admin may delete it",
    )?;
    // The bytes first: if the record's deletion then fails, a retry finds it and finishes.
    if let Some(upload_id) = &file.upload_id {
        api.objects
            .abort_multipart(&file.key, upload_id)
            .await
            .map_err(unavailable)?;
    }
    api.objects.delete(&file.key).await.map_err(unavailable)?;
    if file.status == FileStatus::Pending {
        // Nothing was ever available: no event, the record just goes.
        api.files.delete_pending(id).await.map_err(unavailable)?;
    } else {
        let event = DomainEvent::file_deleted(&meta.event_context(actor), &file, Timestamp::now());
        api.files
            .delete(&file, &event)
            .await
            .map_err(write_problem)?;
    }
    tracing::info!(file_id = %id, "file deleted");
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    //! Every route through `handle`, with the fixtures from `events/files-api` and the
    //! in-memory ports: each route's success and each of its refusals.

    use domain::store::memory::{InMemoryFileStore, InMemoryObjects, InMemoryQueue};
    use domain::{EventType, Sha256};
    use lambda_kit::fixture::HttpFixture;

    use super::*;

    const EPISODE: &str = "01a23152-6cb8-7273-b29c-040ecfd73448";
    const FILE: &str = "01a23152-6d0c-7385-a877-e9f664c0acfe";
    /// The fixture's upload: 11 bytes.
    const BYTES: &[u8] = b"hello world";

    type TestApi = Api<InMemoryFileStore, InMemoryObjects, InMemoryQueue>;

    fn api() -> TestApi {
        let files = InMemoryFileStore::default();
        files.add_episode(EpisodeId::parse(EPISODE).unwrap());
        Api {
            files,
            objects: InMemoryObjects::default(),
            tasks: InMemoryQueue::default(),
            upload_ttl: Duration::from_secs(900),
            calls: AwsCallCounter::default(),
        }
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
        let resp = handle(api, req.request().unwrap()).await;
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
}
