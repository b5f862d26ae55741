//! Jobs on upload, per episode: `GET`, `PUT` and `DELETE /episodes/{id}/upload-rules`. The job
//! worker reads the rules when a file of the episode becomes available; the stack's defaults
//! (`UPLOAD_JOBS`) apply to every kind the episode does not set.

use axum::extract::State;
use domain::store::job::JobCreateError;
use domain::upload_rules::{EpisodeRules, UploadRules, UploadRulesBody};
use domain::{EpisodeId, Stamp, Timestamp};
use lambda_http::http::StatusCode;
use lambda_kit::Problem;
use lambda_kit::http::{Handled, json};
use lambda_kit::router::{BodyRules, Caller, Id, JsonObject, NoQuery, Query, Writer};
use serde_json::Value;

use crate::jobs::{Editors, unavailable};
use crate::routes::{Jobs, Shared};

/// The body of `PUT /episodes/{id}/upload-rules`: a list of jobs for each kind it sets.
#[derive(Debug)]
pub struct RulesBody;

impl BodyRules for RulesBody {
    const MAX_BYTES: usize = 16 * 1024;
    const FIELDS: &'static [&'static str] = &["audio", "video", "image", "script"];
}

/// The rules as served: the episode's own (if any) beside the stack's.
fn served<J, F>(api: &Shared<J, F>, episode: EpisodeId, own: Option<&EpisodeRules>) -> Handled {
    json(
        StatusCode::OK,
        &UploadRulesBody::new(episode, own, &api.upload_rules),
    )
}

/// `GET /episodes/{id}/upload-rules`: the episode's own lists, the stack's, and what a new
/// file of each kind starts.
pub async fn get<J: Jobs, F>(
    State(api): State<Shared<J, F>>,
    _: Caller,
    Id(episode): Id<EpisodeId>,
    _: Query<NoQuery>,
) -> Handled {
    let (own, exists) = tokio::join!(
        api.jobs.upload_rules(episode),
        api.jobs.episode_exists(episode)
    );
    if !exists.map_err(unavailable)? {
        return Err(Problem::not_found("no such episode"));
    }
    served(&api, episode, own.map_err(unavailable)?.as_ref())
}

/// `PUT /episodes/{id}/upload-rules`: replaces the episode's lists (a kind left out follows
/// the stack; `[]` starts nothing). Editors and admins.
pub async fn put<J: Jobs, F>(
    State(api): State<Shared<J, F>>,
    Writer(actor, _): Writer<Editors>,
    Id(episode): Id<EpisodeId>,
    _: Query<NoQuery>,
    body: JsonObject<RulesBody>,
) -> Handled {
    let JsonObject {
        fields, mut errors, ..
    } = body;
    let known: serde_json::Map<String, Value> = fields
        .into_iter()
        .filter(|(k, _)| RulesBody::FIELDS.contains(&k.as_str()))
        .collect();
    let rules = UploadRules::parse(&Value::Object(known)).map_err(|e| errors.push(e));
    let rules = match rules {
        Ok(r) if errors.is_empty() => r,
        _ => return Err(Problem::unprocessable(errors)),
    };
    let own = EpisodeRules {
        episode_id: episode,
        rules,
        updated: Stamp::new(&actor, Timestamp::now()),
    };
    write(&api, episode, Some(&own)).await?;
    tracing::info!(%episode, "upload rules set");
    // What was written is what a read would find: no read back.
    served(&api, episode, Some(&own))
}

/// `DELETE /episodes/{id}/upload-rules`: the episode follows the stack's rules again.
pub async fn delete<J: Jobs, F>(
    State(api): State<Shared<J, F>>,
    Writer(_, _): Writer<Editors>,
    Id(episode): Id<EpisodeId>,
    _: Query<NoQuery>,
) -> Handled {
    write(&api, episode, None).await?;
    tracing::info!(%episode, "upload rules cleared");
    served(&api, episode, None)
}

async fn write<J: Jobs, F>(
    api: &Shared<J, F>,
    episode: EpisodeId,
    rules: Option<&EpisodeRules>,
) -> Result<(), Problem> {
    match api.jobs.set_upload_rules(episode, rules).await {
        Ok(()) => Ok(()),
        Err(JobCreateError::NoEpisode) => Err(Problem::not_found("no such episode")),
        Err(e) => Err(unavailable(e)),
    }
}
