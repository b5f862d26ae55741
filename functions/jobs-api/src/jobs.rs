//! What each route of the jobs API does: `POST` and `GET /episodes/{id}/jobs` (start a job,
//! list), `GET /jobs/{id}`, `POST /jobs/{id}/cancel`, `POST /jobs/{id}/retry`.

use axum::extract::State;
use domain::job::{Cancel, Injection, JobMove};
use domain::store::file::FileReader;
use domain::store::job::{Idempotency, JobCreateError, JobMoveError, JobQuery};
use domain::{
    Actor, DomainEvent, EpisodeId, EventType, FieldError, FileId, FileStatus, Job, JobId,
    JobParams, JobState, JobType, Stamp, Timestamp,
};
use lambda_http::http::{StatusCode, header};
use lambda_kit::http::{Handled, json, set_header};
use lambda_kit::router::{
    BodyRules, Caller, Id, IdempotencyKey, JsonObject, NoQuery, Query, QueryRules, Refusal, Writer,
};
use lambda_kit::{Problem, RequestMeta, cursor};
use serde_json::{Value, json};

use crate::routes::{Api, Jobs, Shared};

/// The body of `POST /episodes/{id}/jobs`.
#[derive(Debug)]
pub struct NewJobBody;

impl BodyRules for NewJobBody {
    const MAX_BYTES: usize = 16 * 1024;
    const FIELDS: &'static [&'static str] = &["type", "file_id", "params"];
}

/// The query of `GET /episodes/{id}/jobs`.
#[derive(Debug)]
pub struct Listing;

impl QueryRules for Listing {
    const ALLOWED: &'static [&'static str] = &["state", "limit", "cursor"];
}

/// Who may start or change jobs: editors and admins.
#[derive(Debug)]
pub struct Editors;

impl Refusal for Editors {
    const VIEWERS: &'static str = "viewers cannot start or change jobs";
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> Problem {
    Problem::unavailable("job store", &e)
}

async fn find<J: Jobs, F>(api: &Api<J, F>, id: JobId) -> Result<Job, Problem> {
    api.jobs
        .get(id)
        .await
        .map_err(unavailable)?
        .map(|stored| stored.job)
        .ok_or_else(|| Problem::not_found("no such job"))
}

/// The request body, validated: type, file and params, every problem at once.
fn parse_body(
    body: JsonObject<NewJobBody>,
    fault_injection: bool,
) -> Result<(JobType, Option<FileId>, JobParams, Injection), Problem> {
    let JsonObject {
        fields: map,
        mut errors,
        ..
    } = body;
    let job_type = match map.get("type") {
        Some(Value::String(s)) => JobType::parse(s).map_err(|e| errors.push(e)).ok(),
        _ => {
            errors.push(FieldError::new(
                "type",
                "is required: checksum, media-probe, thumbnail, loudness or waveform",
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

/// `POST /episodes/{id}/jobs`: a queued job (202), or the one an `Idempotency-Key` already
/// started.
pub async fn create<J: Jobs, F: FileReader>(
    State(api): State<Shared<J, F>>,
    meta: RequestMeta,
    Writer(actor, _): Writer<Editors>,
    Id(episode): Id<EpisodeId>,
    _: Query<NoQuery>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonObject<NewJobBody>,
) -> Handled {
    let key = key.as_deref();
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
    let job = Job::queued(
        JobId::new(),
        episode,
        file_id,
        job_type,
        params,
        Stamp::new(&actor, now),
        inject,
    );
    let fingerprint = json!({
        "episode": episode, "type": job_type, "file_id": file_id,
        "params": job.params.to_json(),
        "inject": [inject.failures, inject.pause_seconds],
    })
    .to_string();
    let event = DomainEvent::about_job(
        &meta.event_context(&actor),
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
            let existing = find(&api, previous).await?;
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
        // A new id each time: only a rule's job can exist already.
        Err(e @ (JobCreateError::Store(_) | JobCreateError::Exists)) => {
            return Err(unavailable(e));
        }
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

/// `GET /episodes/{id}/jobs`: the episode's jobs, newest first, in pages; `state=` filters.
pub async fn list<J: Jobs, F>(
    State(api): State<Shared<J, F>>,
    _: Caller,
    Id(episode): Id<EpisodeId>,
    query: Query<Listing>,
) -> Handled {
    let state = query
        .params
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
    let scope = format!("jobs:{episode}:{}", state.map_or("", JobState::as_str));
    let paging = query.paging(&scope)?;
    let (limit, after) = (paging.limit, paging.after_id(|a| JobId::parse(a).ok())?);
    // The episode is read beside its jobs (in parallel): a deleted episode's jobs are gone
    // from the API at once (as its files are; schemathesis found those still listed).
    let query = JobQuery {
        episode,
        state,
        limit,
        after,
    };
    let (page, exists) = tokio::join!(api.jobs.list(&query), api.jobs.episode_exists(episode));
    let page = page.map_err(unavailable)?;
    if !exists.map_err(unavailable)? {
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

/// `GET /jobs/{id}`.
pub async fn get<J: Jobs, F>(
    State(api): State<Shared<J, F>>,
    _: Caller,
    Id(id): Id<JobId>,
    _: Query<NoQuery>,
) -> Handled {
    json(StatusCode::OK, &find(&api, id).await?.to_json())
}

/// `POST /jobs/{id}/cancel`: at once (200) for a job that is not running, at the worker's next
/// checkpoint (202) for one that is.
pub async fn cancel<J: Jobs, F>(
    State(api): State<Shared<J, F>>,
    meta: RequestMeta,
    Writer(actor, _): Writer<Editors>,
    Id(id): Id<JobId>,
    _: Query<NoQuery>,
) -> Handled {
    let job = find(&api, id).await?;
    let now = Timestamp::now();
    match job
        .cancel(now)
        .map_err(|r| Problem::illegal_transition("state", r.to_string()))?
    {
        Cancel::Now(change) => save(&api, &meta, &actor, &change).await,
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

/// `POST /jobs/{id}/retry`: a failed or cancelled job queued again (202).
pub async fn retry<J: Jobs, F>(
    State(api): State<Shared<J, F>>,
    meta: RequestMeta,
    Writer(actor, _): Writer<Editors>,
    Id(id): Id<JobId>,
    _: Query<NoQuery>,
) -> Handled {
    let job = find(&api, id).await?;
    let change = job
        .retry(Timestamp::now())
        .map_err(|r| Problem::illegal_transition("state", r.to_string()))?;
    save(&api, &meta, &actor, &change).await
}

/// Writes a person's move with its event: 200 for a cancel, 202 for a retry (work follows).
async fn save<J: Jobs, F>(
    api: &Api<J, F>,
    meta: &RequestMeta,
    actor: &Actor,
    change: &JobMove,
) -> Handled {
    let event = change.event(&meta.event_context(actor));
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
