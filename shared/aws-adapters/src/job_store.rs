//! Processing jobs in DynamoDB, every move written with its event in one transaction.
//!
//! Jobs table: key `id`; index `by-episode` (`episode_id`, `id`). A move is read → decide in
//! the domain → write the whole job back on the condition that it is still as read (its state,
//! its attempt count, and no cancel asked for meanwhile): optimistic, so two workers, a
//! duplicate delivery or a cancel racing a completion cannot both win. Idempotency keys are
//! items of the same table (`id = "idem#<user>#<key>"`, TTL 24 h) written with the job, and so
//! are an episode's rules for jobs on upload (`id = "rules#<episode>"`; no `episode_id`
//! attribute, so the by-episode index holds jobs only).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use domain::job::JobMove;
use domain::store::job::{
    Idempotency, JobCreateError, JobMoveError, JobPage, JobQuery, JobReader, JobWriter, StoredJob,
};
use domain::store::{EpisodeExistence, Page, StoreError};
use domain::upload_rules::{EpisodeRules, UploadRules};
use domain::{
    DisplayName, DomainEvent, EpisodeId, FileId, FileStatus, Job, JobId, JobParams, JobState,
    JobType, Stamp, Timestamp, UserId,
};

use crate::episode_store::event_put;
use crate::item::{self, Item, n, s};
use crate::transact::{cancellation_reasons, episode_exists, idempotency_put, replay_of};

const INDEX_BY_EPISODE: &str = "by-episode";

#[derive(Debug, Clone)]
pub struct JobTables {
    pub jobs: String,
    pub episodes: String,
    pub files: String,
    pub events: String,
}

#[derive(Debug, Clone)]
pub struct DynamoJobStore {
    client: Client,
    tables: JobTables,
}

fn to_item(job: &Job, lease_until: Option<Timestamp>) -> Result<Item, StoreError> {
    let json = |v: &serde_json::Value| serde_json::to_string(v).map_err(StoreError::unavailable);
    let mut it = Item::from([
        ("id".to_owned(), s(job.id.to_string())),
        ("episode_id".to_owned(), s(job.episode_id.to_string())),
        ("type".to_owned(), s(job.job_type.as_str())),
        ("params".to_owned(), s(json(&job.params.to_json())?)),
        ("state".to_owned(), s(job.state.as_str())),
        ("attempts".to_owned(), n(job.attempts)),
        ("progress".to_owned(), n(job.progress)),
        ("created_at".to_owned(), s(job.created.at.to_string())),
        ("created_by".to_owned(), s(job.created.by.as_str())),
        (
            "created_by_name".to_owned(),
            s(job.created.by_name.as_str()),
        ),
        ("updated_at".to_owned(), s(job.updated_at.to_string())),
        ("inject_failures".to_owned(), n(job.inject.failures)),
        (
            "inject_pause_seconds".to_owned(),
            n(job.inject.pause_seconds),
        ),
    ]);
    if let Some(f) = job.file_id {
        it.insert("file_id".into(), s(f.to_string()));
    }
    if let Some(e) = &job.error {
        it.insert("error".into(), s(e));
    }
    if let Some(r) = &job.result {
        it.insert("result".into(), s(json(r)?));
    }
    if job.cancel_requested {
        it.insert("cancel_requested".into(), AttributeValue::Bool(true));
    }
    if let Some(l) = lease_until {
        it.insert("lease_until".into(), s(l.to_string()));
    }
    Ok(it)
}

/// Queries one filtered list may make, and jobs each of them examines (see `list`).
const LIST_READS: usize = 10;
const LIST_READ_BATCH: i32 = 200;

fn from_item(it: &Item) -> Result<Job, StoreError> {
    let parse = || -> Result<Job, item::CorruptItem> {
        let job_type = item::parse(it, "type", |v| JobType::parse(v).map_err(|e| e.message))?;
        let params_json: serde_json::Value = item::parse(it, "params", |v| {
            serde_json::from_str::<serde_json::Value>(v)
        })?;
        let (params, _) = JobParams::parse(job_type, &params_json, false)
            .map_err(|e| item::corrupt("params", e.message))?;
        Ok(Job {
            id: item::parse(it, "id", JobId::parse)?,
            episode_id: item::parse(it, "episode_id", EpisodeId::parse)?,
            file_id: item::parse_opt(it, "file_id", FileId::parse)?,
            job_type,
            params,
            state: item::parse(it, "state", |v| {
                JobState::parse(v).ok_or_else(|| format!("unknown state {v}"))
            })?,
            attempts: u32::try_from(item::req_u64(it, "attempts")?).unwrap_or(u32::MAX),
            progress: u8::try_from(item::req_u64(it, "progress")?).unwrap_or(100),
            error: item::opt_str(it, "error")?.map(str::to_owned),
            result: item::parse_opt(it, "result", |v| {
                serde_json::from_str::<serde_json::Value>(v)
            })?,
            created: Stamp {
                at: item::parse(it, "created_at", Timestamp::parse)?,
                by: item::parse(it, "created_by", UserId::parse)?,
                by_name: DisplayName::new(item::req_str(it, "created_by_name")?),
            },
            updated_at: item::parse(it, "updated_at", Timestamp::parse)?,
            cancel_requested: matches!(
                it.get("cancel_requested"),
                Some(AttributeValue::Bool(true))
            ),
            inject: domain::job::Injection {
                failures: u32::try_from(item::opt_u64(it, "inject_failures")?.unwrap_or(0))
                    .unwrap_or(0),
                pause_seconds: u32::try_from(
                    item::opt_u64(it, "inject_pause_seconds")?.unwrap_or(0),
                )
                .unwrap_or(0),
            },
        })
    };
    parse().map_err(StoreError::unavailable)
}

/// When the job's current lease (a worker running it) ends.
pub fn lease_of(it: &Item) -> Option<Timestamp> {
    item::parse_opt(it, "lease_until", Timestamp::parse)
        .ok()
        .flatten()
}

/// The key of an episode's rules for jobs on upload.
fn rules_key(episode: EpisodeId) -> Item {
    Item::from([("id".to_owned(), s(format!("rules#{episode}")))])
}

fn rules_from_item(episode: EpisodeId, it: &Item) -> Result<EpisodeRules, StoreError> {
    let parse = || -> Result<EpisodeRules, item::CorruptItem> {
        Ok(EpisodeRules {
            episode_id: episode,
            rules: item::parse(it, "rules", |v| {
                serde_json::from_str::<serde_json::Value>(v)
                    .map_err(|e| e.to_string())
                    .and_then(|v| UploadRules::parse(&v).map_err(|e| e.to_string()))
            })?,
            updated: Stamp {
                at: item::parse(it, "updated_at", Timestamp::parse)?,
                by: item::parse(it, "updated_by", UserId::parse)?,
                by_name: DisplayName::new(item::req_str(it, "updated_by_name")?),
            },
        })
    };
    parse().map_err(StoreError::unavailable)
}

/// A transaction's check that the episode exists and is not deleted.
fn live_episode_check(table: &str, episode: EpisodeId) -> Result<TransactWriteItem, StoreError> {
    Ok(TransactWriteItem::builder()
        .condition_check(
            ConditionCheck::builder()
                .table_name(table)
                .key("id", s(episode.to_string()))
                .condition_expression("attribute_exists(id) AND attribute_not_exists(deleted_at)")
                .build()
                .map_err(StoreError::unavailable)?,
        )
        .build())
}

impl DynamoJobStore {
    pub fn new(client: Client, tables: JobTables) -> Self {
        Self { client, tables }
    }

    fn key(id: &str) -> Item {
        Item::from([("id".to_owned(), s(id))])
    }
}

impl JobWriter for DynamoJobStore {
    /// Creates a queued job with its `job.created` event, checking in the same transaction that
    /// the episode exists, that the file (if any) is an available file of that episode, and that
    /// the idempotency key (if any) is new. `fingerprint` identifies the request body.
    async fn create(
        &self,
        job: &Job,
        event: &DomainEvent,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<(), JobCreateError> {
        let mut items = vec![live_episode_check(&self.tables.episodes, job.episode_id)?];
        if let Some(file) = job.file_id {
            items.push(
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&self.tables.files)
                            .key("id", s(file.to_string()))
                            .condition_expression("episode_id = :e AND #status = :available")
                            .expression_attribute_names("#status", "status")
                            .expression_attribute_values(":e", s(job.episode_id.to_string()))
                            .expression_attribute_values(
                                ":available",
                                s(FileStatus::Available.as_str()),
                            )
                            .build()
                            .map_err(StoreError::unavailable)?,
                    )
                    .build(),
            );
        }
        let idem_at = items.len();
        let job_at = idem_at + usize::from(idempotency.is_some());
        if let Some(idem) = idempotency {
            items.push(idempotency_put(
                &self.tables.jobs,
                &job.created.by,
                idem,
                ("job_id", job.id.to_string()),
                job.created.at,
            )?);
        }
        items.push(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.tables.jobs)
                        .set_item(Some(to_item(job, None)?))
                        .condition_expression("attribute_not_exists(id)")
                        .build()
                        .map_err(StoreError::unavailable)?,
                )
                .build(),
        );
        items.push(event_put(&self.tables.events, event)?);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(e) = result else {
            return Ok(());
        };
        let Some(reasons) = cancellation_reasons(&e) else {
            return Err(JobCreateError::Store(StoreError::unavailable(e)));
        };
        if reasons.first().is_some_and(|r| r.0) {
            return Err(JobCreateError::NoEpisode);
        }
        if job.file_id.is_some() && reasons.get(1).is_some_and(|r| r.0) {
            return Err(JobCreateError::BadFile);
        }
        if let (Some(Idempotency { fingerprint, .. }), Some((true, Some(old)))) =
            (idempotency, reasons.get(idem_at))
        {
            let (previous, same) = replay_of(old, "job_id", JobId::parse, fingerprint)?;
            return Err(JobCreateError::Replay {
                job: previous,
                same_request: same,
            });
        }
        if reasons.get(job_at).is_some_and(|r| r.0) {
            return Err(JobCreateError::Exists);
        }
        Err(JobCreateError::Store(StoreError::unavailable(e)))
    }

    async fn set_upload_rules(
        &self,
        episode: EpisodeId,
        rules: Option<&EpisodeRules>,
    ) -> Result<(), JobCreateError> {
        let key = rules_key(episode);
        let write = match rules {
            Some(r) => {
                let rules =
                    serde_json::to_string(&r.rules.to_json()).map_err(StoreError::unavailable)?;
                let mut it = key;
                it.insert("rules".into(), s(rules));
                it.insert("updated_at".into(), s(r.updated.at.to_string()));
                it.insert("updated_by".into(), s(r.updated.by.as_str()));
                it.insert("updated_by_name".into(), s(r.updated.by_name.as_str()));
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.tables.jobs)
                            .set_item(Some(it))
                            .build()
                            .map_err(StoreError::unavailable)?,
                    )
                    .build()
            }
            None => TransactWriteItem::builder()
                .delete(
                    aws_sdk_dynamodb::types::Delete::builder()
                        .table_name(&self.tables.jobs)
                        .set_key(Some(key))
                        .build()
                        .map_err(StoreError::unavailable)?,
                )
                .build(),
        };
        let items = vec![live_episode_check(&self.tables.episodes, episode)?, write];
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let Err(e) = result else {
            return Ok(());
        };
        match cancellation_reasons(&e) {
            Some(reasons) if reasons.first().is_some_and(|r| r.0) => Err(JobCreateError::NoEpisode),
            _ => Err(JobCreateError::Store(StoreError::unavailable(e))),
        }
    }

    /// Puts the whole job on the condition of the move's guard (and, for taking over a job
    /// whose worker died, that its lease has ended).
    async fn save(&self, change: &JobMove, event: &DomainEvent) -> Result<(), JobMoveError> {
        let JobMove {
            next,
            guard,
            lease_until,
            expired_before,
            ..
        } = change;
        let (lease_until, expired_before) = (*lease_until, *expired_before);
        let mut put = Put::builder()
            .table_name(&self.tables.jobs)
            .set_item(Some(to_item(next, lease_until)?))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":attempts", n(guard.attempts));
        let mut states = Vec::new();
        for (i, st) in guard.states.iter().enumerate() {
            let name = format!(":s{i}");
            put = put.expression_attribute_values(&name, s(st.as_str()));
            states.push(name);
        }
        let mut condition = format!("#state IN ({}) AND attempts = :attempts", states.join(", "));
        if guard.no_cancel_request {
            condition.push_str(" AND attribute_not_exists(cancel_requested)");
        }
        if let Some(before) = expired_before {
            condition.push_str(" AND (attribute_not_exists(lease_until) OR lease_until < :before)");
            put = put.expression_attribute_values(":before", s(before.to_string()));
        }
        let put = put
            .condition_expression(condition)
            .build()
            .map_err(StoreError::unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(event_put(&self.tables.events, event)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if cancellation_reasons(&e).is_some_and(|r| r.first().is_some_and(|f| f.0)) => {
                Err(JobMoveError::Changed)
            }
            Err(e) => Err(JobMoveError::Store(StoreError::unavailable(e))),
        }
    }

    /// Asks a running job to stop at its next checkpoint. False when it is not running.
    async fn request_cancel(&self, id: JobId, now: Timestamp) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.jobs)
            .set_key(Some(Self::key(&id.to_string())))
            .update_expression("SET cancel_requested = :yes, updated_at = :now")
            .condition_expression("#state = :running")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":running", s(JobState::Running.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}

impl JobReader for DynamoJobStore {
    /// The job, and when its current lease ends (if running).
    async fn get(&self, id: JobId) -> Result<Option<StoredJob>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.jobs)
            .set_key(Some(Self::key(&id.to_string())))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.item()
            .map(|it| {
                Ok(StoredJob {
                    job: from_item(it)?,
                    lease_until: lease_of(it),
                })
            })
            .transpose()
    }

    async fn upload_rules(&self, episode: EpisodeId) -> Result<Option<EpisodeRules>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.jobs)
            .set_key(Some(rules_key(episode)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.item()
            .map(|it| rules_from_item(episode, it))
            .transpose()
    }

    /// An episode's jobs, oldest first, optionally in one state.
    ///
    /// The state is a filter on the by-episode index, and DynamoDB applies a filter after it
    /// has read `Limit` items: one Query with `Limit = limit + 1` could find none of the wanted
    /// state among the first jobs although later ones match. So it reads on, page after page,
    /// until the page is full or the episode's jobs end, at most [`LIST_READS`] Queries of
    /// [`LIST_READ_BATCH`] jobs each; when that budget runs out first, the page holds what was
    /// found and its cursor resumes after the last job examined.
    async fn list(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let JobQuery {
            episode,
            state,
            limit,
            after,
        } = *query;
        let wanted = usize::from(limit.get());
        let key = |id: JobId| {
            Item::from([
                ("id".to_owned(), s(id.to_string())),
                ("episode_id".to_owned(), s(episode.to_string())),
            ])
        };
        let mut start = after.map(key);
        let mut found = Vec::new();
        for _ in 0..LIST_READS {
            let mut q = self
                .client
                .query()
                .table_name(&self.tables.jobs)
                .index_name(INDEX_BY_EPISODE)
                .key_condition_expression("episode_id = :e")
                .expression_attribute_values(":e", s(episode.to_string()))
                .set_exclusive_start_key(start.take());
            q = match state {
                None => q.limit(i32::from(limit.get()) + 1),
                Some(st) => q
                    .limit(LIST_READ_BATCH)
                    .filter_expression("#state = :state")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":state", s(st.as_str())),
            };
            let out = q.send().await.map_err(StoreError::unavailable)?;
            for it in out.items() {
                found.push(from_item(it)?);
            }
            let examined_up_to = out
                .last_evaluated_key()
                .and_then(|k| k.get("id"))
                .and_then(|v| v.as_s().ok())
                .and_then(|id| JobId::parse(id).ok());
            match examined_up_to {
                Some(id) if found.len() <= wanted => start = Some(key(id)),
                // Full (one more than wanted tells a next page exists), or the jobs ended.
                other => return Ok(Page::from_query(found, wanted, other.is_some(), |x| x.id)),
            }
        }
        // The read budget ran out before the page filled: resume after the last job examined.
        let resume = start
            .as_ref()
            .and_then(|k| k.get("id"))
            .and_then(|v| v.as_s().ok())
            .and_then(|id| JobId::parse(id).ok());
        Ok(Page {
            items: found,
            next_after: resume,
        })
    }
}

impl EpisodeExistence for DynamoJobStore {
    /// Whether an episode exists and is not deleted.
    async fn episode_exists(&self, episode: EpisodeId) -> Result<bool, StoreError> {
        episode_exists(&self.client, &self.tables.episodes, episode).await
    }
}
