//! Jobs on upload: which jobs start by themselves when a file of each kind becomes available.
//! The stack has defaults (a template parameter); an episode may set its own list for any kind,
//! which then replaces the default for that kind (`[]`: none). The jobs are started by the
//! system, once per file: their ids are made from the file's id and the job type.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use crate::episode::{Person, Stamp};
use crate::file::{EpisodeFile, MediaKind};
use crate::ids::{EpisodeId, JobId};
use crate::job::{JobParams, JobType};
use crate::validation::FieldError;

/// The most jobs one kind of file starts.
pub const MAX_JOBS_PER_KIND: usize = JobType::ALL.len();

/// The kinds of uploaded files a rule can name (files made by jobs start nothing).
pub const KINDS: [MediaKind; 4] = [
    MediaKind::Audio,
    MediaKind::Video,
    MediaKind::Image,
    MediaKind::Script,
];

/// One job a rule starts.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleJob {
    pub job_type: JobType,
    pub params: JobParams,
}

impl RuleJob {
    fn to_json(&self) -> Value {
        json!({ "type": self.job_type, "params": self.params.to_json() })
    }
}

/// For some kinds of file (of [`KINDS`]), the jobs that start when one becomes available.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadRules(BTreeMap<MediaKind, Vec<RuleJob>>);

impl UploadRules {
    /// Parses `{"audio": ["checksum", {"type": "loudness", "params": {...}}], "video": []}`:
    /// each kind named gets exactly its list; a kind left out is not set.
    pub fn parse(value: &Value) -> Result<Self, FieldError> {
        let Value::Object(map) = value else {
            return Err(FieldError::new(
                "rules",
                "must be an object of lists by kind of file",
            ));
        };
        let mut rules = BTreeMap::new();
        for (name, jobs) in map {
            let kind = KINDS
                .into_iter()
                .find(|k| k.as_str() == name)
                .ok_or_else(|| {
                    FieldError::new(
                        name.clone(),
                        "is not a kind of file; expected audio, video, image or script",
                    )
                })?;
            let Value::Array(jobs) = jobs else {
                return Err(FieldError::new(name.clone(), "must be a list of jobs"));
            };
            if jobs.len() > MAX_JOBS_PER_KIND {
                return Err(FieldError::new(
                    name.clone(),
                    format!("may list at most {MAX_JOBS_PER_KIND} jobs"),
                ));
            }
            let mut list: Vec<RuleJob> = Vec::with_capacity(jobs.len());
            for (i, job) in jobs.iter().enumerate() {
                let at = format!("{name}.{i}");
                let (type_value, params) = match job {
                    Value::String(_) => (job, &Value::Null),
                    Value::Object(o) => {
                        if let Some(k) = o.keys().find(|k| *k != "type" && *k != "params") {
                            return Err(FieldError::new(
                                format!("{at}.{k}"),
                                "is not a field of a job rule",
                            ));
                        }
                        (
                            o.get("type").unwrap_or(&Value::Null),
                            o.get("params").unwrap_or(&Value::Null),
                        )
                    }
                    _ => {
                        return Err(FieldError::new(
                            at,
                            "must be a job type or an object with type and params",
                        ));
                    }
                };
                let job_type = type_value
                    .as_str()
                    .ok_or_else(|| FieldError::new(format!("{at}.type"), "must be a string"))
                    .and_then(|t| {
                        JobType::parse(t)
                            .map_err(|e| FieldError::new(format!("{at}.type"), e.message))
                    })?;
                if !job_type.reads(kind) {
                    return Err(FieldError::new(
                        format!("{at}.type"),
                        format!("is {job_type}, which cannot read {name} files"),
                    ));
                }
                if list.iter().any(|j| j.job_type == job_type) {
                    return Err(FieldError::new(
                        format!("{at}.type"),
                        format!("lists {job_type} twice"),
                    ));
                }
                let (params, _) = JobParams::parse(job_type, params, false)
                    .map_err(|e| FieldError::new(format!("{at}.{}", e.field), e.message))?;
                list.push(RuleJob { job_type, params });
            }
            rules.insert(kind, list);
        }
        Ok(Self(rules))
    }

    /// The jobs a file of `kind` starts under these rules, if the rules set that kind.
    pub fn jobs_for(&self, kind: MediaKind) -> Option<&[RuleJob]> {
        self.0.get(&kind).map(Vec::as_slice)
    }

    /// The jobs a file of `kind` starts: the episode's list for that kind, else the stack's.
    pub fn effective<'a>(
        episode: Option<&'a Self>,
        stack: &'a Self,
        kind: MediaKind,
    ) -> &'a [RuleJob] {
        episode
            .and_then(|e| e.jobs_for(kind))
            .or_else(|| stack.jobs_for(kind))
            .unwrap_or(&[])
    }

    /// As served and stored: `{"audio": [{"type": ..., "params": {...}}], ...}`.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, jobs)| {
                    (
                        k.as_str().to_owned(),
                        Value::Array(jobs.iter().map(RuleJob::to_json).collect()),
                    )
                })
                .collect(),
        )
    }

    /// Every kind, with the list that applies to it and where it comes from.
    pub fn effective_json(episode: Option<&Self>, stack: &Self) -> Value {
        Value::Object(
            KINDS
                .into_iter()
                .map(|kind| {
                    let from = if episode.and_then(|e| e.jobs_for(kind)).is_some() {
                        "episode"
                    } else {
                        "stack"
                    };
                    let jobs = Self::effective(episode, stack, kind);
                    (
                        kind.as_str().to_owned(),
                        json!({
                            "from": from,
                            "jobs": jobs.iter().map(RuleJob::to_json).collect::<Vec<_>>(),
                        }),
                    )
                })
                .collect(),
        )
    }
}

/// An episode's own rules, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRules {
    pub episode_id: EpisodeId,
    pub rules: UploadRules,
    pub updated: Stamp,
}

/// An episode's rules as the API serves them.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "UploadRules")]
pub struct UploadRulesBody {
    pub episode_id: EpisodeId,
    /// The lists this episode sets, by kind of file (the others follow the stack).
    #[schemars(with = "std::collections::BTreeMap<String, Vec<RuleJobBody>>")]
    pub episode: Value,
    /// The stack's defaults, by kind of file.
    #[schemars(with = "std::collections::BTreeMap<String, Vec<RuleJobBody>>")]
    pub stack: Value,
    /// What a new file of each kind starts, and whether the episode or the stack says so.
    #[schemars(with = "std::collections::BTreeMap<String, EffectiveRuleBody>")]
    pub effective: Value,
    /// Who last set the episode's rules, and when (none: never set).
    pub updated_by: Option<Person>,
    pub updated_at: Option<crate::time::Timestamp>,
}

/// One job of a rule, as served.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RuleJobBody {
    #[serde(rename = "type")]
    pub job_type: JobType,
    #[schemars(with = "crate::job::JobParamsBody")]
    pub params: Value,
}

/// The jobs a kind of file starts, and where that comes from.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct EffectiveRuleBody {
    /// `episode` or `stack`.
    pub from: String,
    pub jobs: Vec<RuleJobBody>,
}

impl UploadRulesBody {
    pub fn new(episode_id: EpisodeId, own: Option<&EpisodeRules>, stack: &UploadRules) -> Self {
        let rules = own.map(|o| &o.rules);
        Self {
            episode_id,
            episode: rules.map_or_else(|| json!({}), UploadRules::to_json),
            stack: stack.to_json(),
            effective: UploadRules::effective_json(rules, stack),
            updated_by: own.map(|o| o.updated.person()),
            updated_at: own.map(|o| o.updated.at),
        }
    }
}

/// The id of the job a rule starts on `file`, of the instant it became available: the same
/// for every delivery of the upload, so creating it twice is refused by the store, and
/// different for each job type.
pub fn job_id(file: &EpisodeFile, job_type: JobType) -> JobId {
    let at = file.available_at.unwrap_or(file.created.at);
    JobId::for_file(file.id, at, job_type.id_salt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::FileId;

    #[test]
    fn rules_parse_by_kind_with_params_and_refuse_what_cannot_run() {
        let rules = UploadRules::parse(&json!({
            "audio": ["checksum", {"type": "loudness", "params": {"preset": "ebu-r128"}}],
            "image": [],
        }))
        .unwrap();
        let audio = rules.jobs_for(MediaKind::Audio).unwrap();
        assert_eq!(audio.len(), 2);
        assert_eq!(audio[1].params.to_json()["integrated_lufs"], -23.0);
        assert_eq!(rules.jobs_for(MediaKind::Image), Some(&[][..]));
        assert_eq!(rules.jobs_for(MediaKind::Video), None);
        for (bad, field) in [
            (json!([]), "rules"),
            (json!({"sound": []}), "sound"),
            (json!({"audio": "checksum"}), "audio"),
            (json!({"audio": [1]}), "audio.0"),
            (json!({"audio": ["transcode"]}), "audio.0.type"),
            (json!({"audio": ["thumbnail"]}), "audio.0.type"),
            (json!({"audio": ["checksum", "checksum"]}), "audio.1.type"),
            (
                json!({"audio": [{"type": "waveform", "params": {"bits": 12}}]}),
                "audio.0.params.bits",
            ),
            (
                json!({"audio": [{"type": "waveform", "extra": 1}]}),
                "audio.0.extra",
            ),
        ] {
            assert_eq!(UploadRules::parse(&bad).unwrap_err().field, field, "{bad}");
        }
    }

    #[test]
    fn an_episode_list_replaces_the_stack_list_of_its_kind_only() {
        let stack =
            UploadRules::parse(&json!({"audio": ["checksum"], "image": ["thumbnail"]})).unwrap();
        let episode = UploadRules::parse(&json!({"audio": [], "video": ["media-probe"]})).unwrap();
        let e = Some(&episode);
        assert!(UploadRules::effective(e, &stack, MediaKind::Audio).is_empty());
        assert_eq!(
            UploadRules::effective(e, &stack, MediaKind::Image)[0].job_type,
            JobType::Thumbnail
        );
        assert_eq!(
            UploadRules::effective(e, &stack, MediaKind::Video)[0].job_type,
            JobType::MediaProbe
        );
        assert!(UploadRules::effective(None, &stack, MediaKind::Script).is_empty());
        let served = UploadRules::effective_json(e, &stack);
        assert_eq!(served["audio"]["from"], "episode");
        assert_eq!(served["image"]["from"], "stack");
        // Stored and read back: the same rules.
        assert_eq!(UploadRules::parse(&episode.to_json()).unwrap(), episode);
    }

    #[test]
    fn each_file_and_type_names_one_job_of_the_files_availability() {
        let (a, b) = (FileId::new(), FileId::new());
        let at = crate::time::Timestamp::now().plus_seconds(5);
        let job_id = |f, t: JobType| JobId::for_file(f, at, t.id_salt());
        assert_eq!(job_id(a, JobType::Loudness), job_id(a, JobType::Loudness));
        let ids: std::collections::HashSet<_> = JobType::ALL
            .into_iter()
            .flat_map(|t| [job_id(a, t), job_id(b, t)])
            .collect();
        assert_eq!(ids.len(), 2 * JobType::ALL.len());
        let salts: std::collections::HashSet<_> = JobType::ALL.map(JobType::id_salt).into();
        assert_eq!(salts.len(), JobType::ALL.len());
        assert!(salts.iter().all(|s| (1..=15).contains(s)));
        // A valid job id (a UUIDv7) of the instant the file became available.
        let id = job_id(a, JobType::Waveform);
        assert_eq!(JobId::parse(&id.to_string()), Ok(id));
        assert_eq!(crate::ids::uuid_v7_bounds(at).0[..13], id.to_string()[..13]);
        assert!(
            id.to_string() > JobId::new().to_string(),
            "sorts after a job made now"
        );
    }
}
