//! What each route of the files API does: `POST` and `GET /episodes/{id}/files` (start an
//! upload, list), `GET` and `DELETE /files/{id}`, `POST /files/{id}/complete`,
//! `GET /files/{id}/download`.
//!
//! Completion is an explicit `POST /files/{id}/complete` that checks the object with
//! `HeadObject` (for multipart uploads, after completing the upload from the parts S3 holds),
//! rather than S3's `ObjectCreated` notification: the client learns at once whether its file
//! is available (and why not), the declared size and checksum are compared right there, and a
//! multipart upload needs a completing call anyway. The files worker covers clients that never
//! call it: once the upload URLs have expired, it confirms an upload that is really there, or
//! removes the pending record and whatever was uploaded.

use std::time::Duration;

use axum::extract::State;
use domain::store::StoreError;
use domain::store::file::FileWriteError;
use domain::store::object::Presigned;
use domain::{
    Actor, DomainEvent, EpisodeFile, EpisodeId, FieldError, FileId, FileStatus, FileTask, Role,
    Stamp, Timestamp, UploadPlan,
};
use lambda_http::http::{StatusCode, header};
use lambda_kit::http::{Handled, empty, json, set_header};
use lambda_kit::router::{Caller, Id, JsonObject, NoQuery, Paged, Query, Refusal, Writer};
use lambda_kit::{Problem, RequestMeta, cursor};
use serde_json::{Value, json};

use crate::input;
use crate::routes::{Api, Files, Objects, Shared, Tasks};

/// How long a download URL works.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(300);

/// Who may upload, change or delete files: editors and admins.
#[derive(Debug)]
pub struct Editors;

impl Refusal for Editors {
    const VIEWERS: &'static str = "viewers cannot upload, change or delete files";
}

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

async fn find<F: Files, O, Q>(api: &Api<F, O, Q>, id: FileId) -> Result<EpisodeFile, Problem> {
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

/// `POST /episodes/{id}/files`: a pending file and where to upload its bytes.
pub async fn create<F: Files, O: Objects, Q: Tasks>(
    State(api): State<Shared<F, O, Q>>,
    Writer(actor, _): Writer<Editors>,
    Id(episode): Id<EpisodeId>,
    _: Query<NoQuery>,
    body: JsonObject<input::NewFileBody>,
) -> Handled {
    let new = input::new_file(body)?;
    let now = Timestamp::now();
    let mut file = new.into_file(FileId::new(), episode, Stamp::new(&actor, now));
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

/// `POST /files/{id}/complete`: confirms an upload; the object must be there with the
/// declared size (and checksum).
pub async fn complete<F: Files, O: Objects, Q>(
    State(api): State<Shared<F, O, Q>>,
    meta: RequestMeta,
    Writer(actor, _): Writer<Editors>,
    Id(id): Id<FileId>,
    _: Query<NoQuery>,
) -> Handled {
    let file = find(&api, id).await?;
    require_uploader_or_admin(
        &actor,
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
    let event = DomainEvent::file_uploaded(&meta.event_context(&actor), &done, now);
    match api
        .files
        .make_available(&file, object.sha256.as_ref(), &event)
        .await
    {
        Ok(()) => {}
        // A concurrent complete won: the file is available either way.
        Err(FileWriteError::State(FileStatus::Available)) => {
            return json(StatusCode::OK, &find(&api, id).await?.to_json());
        }
        Err(e) => return Err(write_problem(e)),
    }
    tracing::info!(file_id = %id, event_id = %event.id, "file available");
    json(StatusCode::OK, &done.to_json())
}

/// `GET /episodes/{id}/files`: the episode's files, oldest first, in pages.
pub async fn list<F: Files, O, Q>(
    State(api): State<Shared<F, O, Q>>,
    _: Caller,
    Id(episode): Id<EpisodeId>,
    query: Query<Paged>,
) -> Handled {
    let scope = format!("files:{episode}");
    let paging = query.paging(&scope)?;
    let (limit, after) = (paging.limit, paging.after_id(|a| FileId::parse(a).ok())?);
    // The episode is read beside its files (in parallel): a deleted episode's files are gone
    // from the API at once, though the files worker removes them a moment later (schemathesis
    // found them still listed after the delete).
    let (page, exists) = tokio::join!(
        api.files.list(episode, limit, after),
        api.files.episode_exists(episode)
    );
    let page = page.map_err(|e: StoreError| unavailable(e))?;
    if !exists.map_err(unavailable)? {
        return Err(Problem::not_found("no such episode"));
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

/// `GET /files/{id}`.
pub async fn get<F: Files, O, Q>(
    State(api): State<Shared<F, O, Q>>,
    _: Caller,
    Id(id): Id<FileId>,
    _: Query<NoQuery>,
) -> Handled {
    json(StatusCode::OK, &find(&api, id).await?.to_json())
}

/// `GET /files/{id}/download`: a short-lived URL to the bytes; the download is recorded.
pub async fn download<F: Files, O: Objects, Q>(
    State(api): State<Shared<F, O, Q>>,
    meta: RequestMeta,
    Caller(actor): Caller,
    Id(id): Id<FileId>,
    _: Query<NoQuery>,
) -> Handled {
    let file = find(&api, id).await?;
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
    let event = DomainEvent::file_downloaded(&meta.event_context(&actor), &file, now);
    api.files
        .record(&file, &event)
        .await
        .map_err(write_problem)?;
    let ttl = i64::try_from(DOWNLOAD_URL_TTL.as_secs()).unwrap_or(0);
    let mut body = presigned_json(&url);
    body["expires_at"] = json!(now.plus_seconds(ttl));
    json(StatusCode::OK, &body)
}

/// `DELETE /files/{id}`: the bytes, then the record (with `file.deleted` once it was available).
pub async fn delete<F: Files, O: Objects, Q>(
    State(api): State<Shared<F, O, Q>>,
    meta: RequestMeta,
    Writer(actor, _): Writer<Editors>,
    Id(id): Id<FileId>,
    _: Query<NoQuery>,
) -> Handled {
    let file = find(&api, id).await?;
    require_uploader_or_admin(
        &actor,
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
        let event = DomainEvent::file_deleted(&meta.event_context(&actor), &file, Timestamp::now());
        api.files
            .delete(&file, &event)
            .await
            .map_err(write_problem)?;
    }
    tracing::info!(file_id = %id, "file deleted");
    Ok(empty(StatusCode::NO_CONTENT))
}
