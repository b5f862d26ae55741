//! Routes of the jobs API.

use std::collections::BTreeMap;

use domain::job::{Cancel, Injection, JobMove};
use domain::store::file::FileReader;
use domain::store::job::{
    Idempotency, JobCreateError, JobMoveError, JobQuery, JobReader, JobWriter,
};
use domain::store::{EpisodeExistence, PageSize};
use domain::{
    Actor, DomainEvent, EpisodeId, EventContext, EventType, FieldError, FileId, FileStatus, Job,
    JobId, JobParams, JobState, JobType, Stamp, Timestamp, ValidationErrors,
};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use lambda_kit::AwsCallCounter;
use lambda_kit::http::{check_body, json, query_params, set_header};
use lambda_kit::{Problem, RequestMeta, cursor};
use serde_json::{Value, json};

const MAX_BODY_BYTES: usize = 16 * 1024;
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What the routes need: the jobs (`J`) and, to check a new job's file, the files (`F`).
#[derive(Debug)]
pub struct Api<J, F> {
    pub jobs: J,
    pub files: F,
    pub fault_injection: bool,
    pub calls: AwsCallCounter,
}

/// The jobs the routes read and move.
pub trait Jobs: JobReader + JobWriter + EpisodeExistence + Sync {}
impl<T: JobReader + JobWriter + EpisodeExistence + Sync> Jobs for T {}

pub async fn handle<J: Jobs, F: FileReader + Sync>(
    api: &Api<J, F>,
    req: Request,
) -> Response<Body> {
    let meta = RequestMeta::from_request(&req);
    lambda_kit::access::serve(&req, &meta, &api.calls, route(api, &meta, &req)).await
}

async fn route<J: Jobs, F: FileReader + Sync>(
    api: &Api<J, F>,
    meta: &RequestMeta,
    req: &Request,
) -> Result<Response<Body>, Problem> {
    let segments: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    let method = req.method();
    match segments.as_slice() {
        ["episodes", id, "jobs"] if method == Method::POST => {
            let actor = meta.actor()?;
            require_editor(&actor)?;
            let episode = parse_episode(id)?;
            let key = idempotency_key(req)?;
            let body = check_body(req, &["application/json"], MAX_BODY_BYTES)?;
            create(api, meta, &actor, episode, key.as_deref(), body).await
        }
        ["episodes", id, "jobs"] if method == Method::GET => {
            meta.actor()?;
            let episode = parse_episode(id)?;
            let params = query_params(req, &["state", "limit", "cursor"])?;
            list(api, episode, &params).await
        }
        ["jobs", id] if method == Method::GET => {
            meta.actor()?;
            json(StatusCode::OK, &find(api, parse_job(id)?).await?.to_json())
        }
        ["jobs", id, "cancel"] if method == Method::POST => {
            let actor = meta.actor()?;
            require_editor(&actor)?;
            cancel(api, meta, &actor, parse_job(id)?).await
        }
        ["jobs", id, "retry"] if method == Method::POST => {
            let actor = meta.actor()?;
            require_editor(&actor)?;
            retry(api, meta, &actor, parse_job(id)?).await
        }
        ["episodes", _, "jobs"] | ["jobs", _] | ["jobs", _, "cancel" | "retry"] => {
            Err(Problem::method_not_allowed())
        }
        _ => Err(Problem::not_found("no such route")),
    }
}

fn require_editor(actor: &Actor) -> Result<(), Problem> {
    if actor.role.can_write() {
        Ok(())
    } else {
        Err(Problem::forbidden("viewers cannot start or change jobs"))
    }
}

use lambda_kit::http::episode_id as parse_episode;

fn parse_job(raw: &str) -> Result<JobId, Problem> {
    JobId::parse(raw)
        .map_err(|_| Problem::bad_request(vec![FieldError::new("id", "is not a job id")]))
}

fn idempotency_key(req: &Request) -> Result<Option<String>, Problem> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or_default();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(Problem::bad_request(vec![FieldError::new(
            "Idempotency-Key",
            "must be 1–255 visible ASCII characters",
        )]));
    }
    Ok(Some(key.to_owned()))
}

fn unavailable(e: impl std::fmt::Display) -> Problem {
    tracing::error!(error = %e, "job store failed");
    Problem::service_unavailable()
}

fn context(meta: &RequestMeta, actor: &Actor) -> EventContext {
    EventContext {
        actor: actor.clone(),
        correlation_id: meta.correlation_id.clone(),
        request_id: meta.request_id.clone(),
    }
}

async fn find<J: Jobs, F: FileReader + Sync>(api: &Api<J, F>, id: JobId) -> Result<Job, Problem> {
    api.jobs
        .get(id)
        .await
        .map_err(unavailable)?
        .map(|stored| stored.job)
        .ok_or_else(|| Problem::not_found("no such job"))
}

/// The request body, validated: type, file and params, every problem at once.
fn parse_body(
    body: &[u8],
    fault_injection: bool,
) -> Result<(JobType, Option<FileId>, JobParams, Injection), Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request(vec![FieldError::new(
            "body",
            format!("is not valid JSON: {e}"),
        )])
    })?;
    let Value::Object(map) = value else {
        return Err(Problem::unprocessable(
            FieldError::new("body", "must be a JSON object").into(),
        ));
    };
    let mut errors = ValidationErrors::default();
    for key in map
        .keys()
        .filter(|k| !["type", "file_id", "params"].contains(&k.as_str()))
    {
        errors.push(FieldError::new(key.as_str(), "is not a known field"));
    }
    let job_type = match map.get("type") {
        Some(Value::String(s)) => JobType::parse(s).map_err(|e| errors.push(e)).ok(),
        _ => {
            errors.push(FieldError::new(
                "type",
                "is required: checksum, media-probe or thumbnail",
            ));
            None
        }
    };
    let file_id = match map.get("file_id") {
        Some(Value::String(s)) => FileId::parse(s)
            .map_err(|_| errors.push(FieldError::new("file_id", "is not a file id")))
            .ok(),
        None | Some(Value::Null) => {
            errors.push(FieldError::new(
                "file_id",
                "is required: every job type works on a file",
            ));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("file_id", "must be a string"));
            None
        }
    };
    let params = job_type.and_then(|t| {
        JobParams::parse(
            t,
            map.get("params").unwrap_or(&Value::Null),
            fault_injection,
        )
        .map_err(|e| errors.push(e))
        .ok()
    });
    match (job_type, params) {
        (Some(t), Some((p, inject))) if errors.is_empty() => Ok((t, file_id, p, inject)),
        _ => Err(Problem::unprocessable(errors)),
    }
}

async fn create<J: Jobs, F: FileReader + Sync>(
    api: &Api<J, F>,
    meta: &RequestMeta,
    actor: &Actor,
    episode: EpisodeId,
    key: Option<&str>,
    body: &[u8],
) -> Result<Response<Body>, Problem> {
    let (job_type, file_id, params, inject) = parse_body(body, api.fault_injection)?;
    // The file must be an available file of this episode that the job type can read. (The
    // create transaction checks existence and episode again, against races.)
    if let Some(fid) = file_id {
        let bad = |why: &str| Problem::unprocessable(FieldError::new("file_id", why).into());
        let file = api.files.get(fid).await.map_err(unavailable)?;
        match file {
            None => return Err(bad("no such file")),
            Some(f) if f.episode_id != episode => {
                // Is it the episode that does not exist? (Checked on this error path only.)
                if !api
                    .jobs
                    .episode_exists(episode)
                    .await
                    .map_err(unavailable)?
                {
                    return Err(Problem::not_found("no such episode"));
                }
                return Err(bad("is a file of another episode"));
            }
            Some(f) if f.status != FileStatus::Available => {
                return Err(bad("is not available yet (its upload is not complete)"));
            }
            Some(f) if !job_type.accepts(f.content_type) => {
                return Err(bad(&format!(
                    "is {}, which a {job_type} job cannot read",
                    f.content_type
                )));
            }
            Some(_) => {}
        }
    }
    let now = Timestamp::now();
    let job = Job {
        id: JobId::new(),
        episode_id: episode,
        file_id,
        job_type,
        params,
        state: JobState::Queued,
        attempts: 0,
        progress: 0,
        error: None,
        result: None,
        created: Stamp::new(actor, now),
        updated_at: now,
        cancel_requested: false,
        inject,
    };
    let fingerprint = json!({
        "episode": episode, "type": job_type, "file_id": file_id,
        "params": job.params.to_json(),
        "inject": [inject.failures, inject.pause_seconds],
    })
    .to_string();
    let event = DomainEvent::about_job(
        &context(meta, actor),
        EventType::JobCreated,
        &job,
        now,
        json!({}),
    );
    match api
        .jobs
        .create(
            &job,
            &event,
            key.map(|key| Idempotency {
                key,
                fingerprint: &fingerprint,
            }),
        )
        .await
    {
        Ok(()) => {}
        Err(JobCreateError::NoEpisode) => return Err(Problem::not_found("no such episode")),
        Err(JobCreateError::BadFile) => {
            return Err(Problem::unprocessable(
                FieldError::new("file_id", "is not an available file of this episode").into(),
            ));
        }
        Err(JobCreateError::Replay {
            job: previous,
            same_request: true,
        }) => {
            let existing = find(api, previous).await?;
            let mut response = json(StatusCode::OK, &existing.to_json())?;
            set_header(
                &mut response,
                header::LOCATION,
                &format!("/jobs/{previous}"),
            );
            return Ok(response);
        }
        Err(JobCreateError::Replay {
            same_request: false,
            ..
        }) => {
            return Err(Problem::conflict(
                "this Idempotency-Key was used in the last 24 hours for a different request",
            ));
        }
        Err(JobCreateError::Store(e)) => return Err(unavailable(e)),
    }
    tracing::info!(job_id = %job.id, job_type = %job_type, "job created");
    let mut response = json(StatusCode::ACCEPTED, &job.to_json())?;
    set_header(
        &mut response,
        header::LOCATION,
        &format!("/jobs/{}", job.id),
    );
    Ok(response)
}

async fn list<J: Jobs, F: FileReader + Sync>(
    api: &Api<J, F>,
    episode: EpisodeId,
    params: &BTreeMap<String, String>,
) -> Result<Response<Body>, Problem> {
    let state = params
        .get("state")
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                Problem::bad_request(vec![FieldError::new(
                    "state",
                    "must be queued, running, retrying, succeeded, failed or cancelled",
                )])
            })
        })
        .transpose()?;
    let limit = params
        .get("limit")
        .map(|l| PageSize::parse(l).map_err(|e| Problem::bad_request(vec![e])))
        .transpose()?
        .unwrap_or(PageSize::DEFAULT);
    let scope = format!("jobs:{episode}:{}", state.map_or("", JobState::as_str));
    let after = params
        .get("cursor")
        .map(|c| {
            cursor::decode(c, &scope)
                .ok()
                .and_then(|v| v.first().and_then(|a| JobId::parse(a).ok()))
                .ok_or_else(|| {
                    Problem::bad_request(vec![FieldError::new("cursor", "is not a valid cursor")])
                })
        })
        .transpose()?;
    let page = api
        .jobs
        .list(&JobQuery {
            episode,
            state,
            limit,
            after,
        })
        .await
        .map_err(unavailable)?;
    if page.items.is_empty()
        && after.is_none()
        && !api
            .jobs
            .episode_exists(episode)
            .await
            .map_err(unavailable)?
    {
        return Err(Problem::not_found("no such episode"));
    }
    json(
        StatusCode::OK,
        &json!({
            "items": page.items.iter().map(Job::to_json).collect::<Vec<_>>(),
            "next_cursor": page.next_after.map(|a| cursor::encode(&[a.to_string()], &scope)),
        }),
    )
}

async fn cancel<J: Jobs, F: FileReader + Sync>(
    api: &Api<J, F>,
    meta: &RequestMeta,
    actor: &Actor,
    id: JobId,
) -> Result<Response<Body>, Problem> {
    let job = find(api, id).await?;
    let now = Timestamp::now();
    match job
        .cancel(now)
        .map_err(|r| Problem::illegal_transition(r.to_string()))?
    {
        Cancel::Now(change) => save(api, meta, actor, &change).await,
        Cancel::AtCheckpoint => {
            // The worker stops at its next checkpoint and records `job.cancelled`.
            if !api
                .jobs
                .request_cancel(id, now)
                .await
                .map_err(unavailable)?
            {
                return Err(Problem::conflict(
                    "the job is not running any more; read it and try again",
                ));
            }
            let mut next = job;
            next.cancel_requested = true;
            json(StatusCode::ACCEPTED, &next.to_json())
        }
    }
}

async fn retry<J: Jobs, F: FileReader + Sync>(
    api: &Api<J, F>,
    meta: &RequestMeta,
    actor: &Actor,
    id: JobId,
) -> Result<Response<Body>, Problem> {
    let job = find(api, id).await?;
    let change = job
        .retry(Timestamp::now())
        .map_err(|r| Problem::illegal_transition(r.to_string()))?;
    save(api, meta, actor, &change).await
}

/// Writes a person's move with its event: 200 for a cancel, 202 for a retry (work follows).
async fn save<J: Jobs, F: FileReader + Sync>(
    api: &Api<J, F>,
    meta: &RequestMeta,
    actor: &Actor,
    change: &JobMove,
) -> Result<Response<Body>, Problem> {
    let event = change.event(&context(meta, actor));
    match api.jobs.save(change, &event).await {
        Ok(()) if change.event == EventType::JobRetried => {
            json(StatusCode::ACCEPTED, &change.next.to_json())
        }
        Ok(()) => json(StatusCode::OK, &change.next.to_json()),
        Err(JobMoveError::Changed) => Err(Problem::conflict(
            "the job changed meanwhile; read it and try again",
        )),
        Err(JobMoveError::Store(e)) => Err(unavailable(e)),
    }
}
