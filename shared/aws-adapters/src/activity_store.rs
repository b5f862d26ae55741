//! The activity log in DynamoDB.
//!
//! Key (`episode_id`, `event_id`): an episode's feed is one Query, newest first (event ids are
//! UUIDv7). Index `by-time` (`feed_pk` = "activity", `event_id`) serves the admin feed and
//! `by-actor` (`actor_id`, `event_id`) the filter by actor; a time range is a key condition on
//! the UUIDv7 ids. Entries are immutable; `expires_at` is their TTL.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use domain::activity::episode_label;
use domain::store::StoreError;
use domain::store::activity::{
    ActivityPage, ActivityQuery, ActivityReader, ActivityWriter, EpisodeLabels,
};
use domain::{
    ActivityEntry, Actor, CorrelationId, DisplayName, EpisodeId, EventId, ResourceRef, Role,
    Timestamp, UserId,
};

use crate::batch::BatchGet;
use crate::item::{self, Item, n, s};

const FEED_PK: &str = "activity";
/// The key (`episode_id`) of the log's own entries, about no episode (exports): no episode
/// id looks like it.
const LOG_PARTITION: &str = "log";
const BATCH_WRITE_MAX: usize = 25;
const UNPROCESSED_RETRIES: u32 = 3;

#[derive(Debug, Clone)]
pub struct DynamoActivityStore {
    client: Client,
    table: String,
    retention_days: u32,
}

impl DynamoActivityStore {
    pub fn new(client: Client, table: String) -> Self {
        Self {
            client,
            table,
            retention_days: domain::activity::DEFAULT_RETENTION_DAYS,
        }
    }

    /// How long the entries it writes are kept (the template's `ActivityRetentionDays`).
    #[must_use]
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }
}

/// Episode labels, read from the episodes table.
#[derive(Debug, Clone)]
pub struct DynamoEpisodeLabels {
    client: Client,
    episodes_table: String,
}

impl DynamoEpisodeLabels {
    pub fn new(client: Client, episodes_table: String) -> Self {
        Self {
            client,
            episodes_table,
        }
    }
}

impl EpisodeLabels for DynamoEpisodeLabels {
    /// "S2E4" (or the quoted title) of each episode, in one BatchGetItem.
    async fn labels(&self, ids: &[EpisodeId]) -> Result<HashMap<EpisodeId, String>, StoreError> {
        let items = BatchGet {
            table: &self.episodes_table,
            key: "id",
            projection: Some("id, title, season, #number"),
            names: &[("#number", "number")],
            consistent: false,
        }
        .run(&self.client, ids.iter().map(ToString::to_string))
        .await?;
        let mut labels = HashMap::new();
        for it in &items {
            let (Ok(Some(id)), Ok(Some(title))) =
                (item::opt_str(it, "id"), item::opt_str(it, "title"))
            else {
                continue;
            };
            if let Ok(id) = EpisodeId::parse(id) {
                let label = episode_label(
                    title,
                    item::opt_u64(it, "season").ok().flatten(),
                    item::opt_u64(it, "number").ok().flatten(),
                );
                labels.insert(id, label);
            }
        }
        Ok(labels)
    }
}

impl ActivityWriter for DynamoActivityStore {
    /// Writes the entries with as few BatchWriteItem calls as the API allows (25 a call).
    /// Writing an entry again writes the same item: idempotent on the event id. Returns the
    /// ids DynamoDB left unprocessed after retries.
    /// An entry named twice (two copies of one event) is written once: DynamoDB refuses a
    /// whole BatchWriteItem that names one key twice.
    async fn put_batch(&self, entries: &[ActivityEntry]) -> Result<Vec<EventId>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<&ActivityEntry> = entries
            .iter()
            .filter(|e| seen.insert((e.episode_id, e.event_id)))
            .collect();
        let mut left = Vec::new();
        for chunk in entries.chunks(BATCH_WRITE_MAX) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|e| {
                    PutRequest::builder()
                        .set_item(Some(entry_to_item(e, self.retention_days)))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(StoreError::unavailable)
                })
                .collect::<Result<_, _>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests.clone())
                    .send()
                    .await
                    .map_err(StoreError::unavailable)?;
                requests = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                attempt += 1;
                if requests.is_empty() || attempt > UNPROCESSED_RETRIES {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt))).await;
            }
            left.extend(requests.iter().filter_map(|r| {
                r.put_request()
                    .and_then(|p| p.item().get("event_id"))
                    .and_then(|v| v.as_s().ok())
                    .and_then(|id| EventId::parse(id).ok())
            }));
        }
        Ok(left)
    }
}

impl ActivityReader for DynamoActivityStore {
    async fn query(&self, q: &ActivityQuery) -> Result<ActivityPage, StoreError> {
        if let (Some(from), Some(to)) = (&q.from_id, &q.to_id)
            && from > to
        {
            // An empty range: DynamoDB refuses a BETWEEN whose bounds are reversed
            // (ValidationException), and the answer is known without asking.
            return Ok(ActivityPage {
                items: Vec::new(),
                next: None,
            });
        }
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .limit(i32::from(q.limit));
        let mut key = String::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut start = Item::new();
        if let Some(ep) = q.episode {
            key.push_str("episode_id = :pk");
            values.insert(":pk".to_owned(), s(ep.to_string()));
        } else if let Some(actor) = &q.actor {
            req = req.index_name("by-actor");
            key.push_str("actor_id = :pk");
            values.insert(":pk".to_owned(), s(actor.as_str()));
            start.insert("actor_id".to_owned(), s(actor.as_str()));
        } else {
            req = req.index_name("by-time");
            key.push_str("feed_pk = :pk");
            values.insert(":pk".to_owned(), s(FEED_PK));
            start.insert("feed_pk".to_owned(), s(FEED_PK));
        }
        match (&q.from_id, &q.to_id) {
            (Some(from), Some(to)) => {
                key.push_str(" AND event_id BETWEEN :from AND :to");
                values.insert(":from".to_owned(), s(from.as_str()));
                values.insert(":to".to_owned(), s(to.as_str()));
            }
            (Some(from), None) => {
                key.push_str(" AND event_id >= :from");
                values.insert(":from".to_owned(), s(from.as_str()));
            }
            (None, Some(to)) => {
                key.push_str(" AND event_id <= :to");
                values.insert(":to".to_owned(), s(to.as_str()));
            }
            (None, None) => {}
        }
        let mut filters = Vec::new();
        // The episode's key came first: the actor is a filter on it.
        if q.episode.is_some()
            && let Some(actor) = &q.actor
        {
            filters.push("actor_id = :actor");
            values.insert(":actor".to_owned(), s(actor.as_str()));
        }
        if let Some(action) = q.action {
            filters.push("#action = :action");
            names.insert("#action".to_owned(), "action".to_owned());
            values.insert(":action".to_owned(), s(action.as_str()));
        }
        if let Some(t) = &q.resource_type {
            filters.push("resource_type = :rtype");
            values.insert(":rtype".to_owned(), s(t.as_str()));
        }
        if let Some(id) = &q.resource_id {
            filters.push("resource_id = :rid");
            values.insert(":rid".to_owned(), s(id.as_str()));
        }
        if !filters.is_empty() {
            req = req.filter_expression(filters.join(" AND "));
        }
        if !names.is_empty() {
            req = req.set_expression_attribute_names(Some(names));
        }
        if let Some((episode_id, event_id)) = &q.after {
            start.insert("episode_id".to_owned(), s(episode_id.as_str()));
            start.insert("event_id".to_owned(), s(event_id.as_str()));
            req = req.set_exclusive_start_key(Some(start));
        }
        let out = req
            .key_condition_expression(key)
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let items = out
            .items()
            .iter()
            .map(entry_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key().and_then(|k| {
            let ep = k.get("episode_id")?.as_s().ok()?.clone();
            let ev = k.get("event_id")?.as_s().ok()?.clone();
            Some((ep, ev))
        });
        Ok(ActivityPage { items, next })
    }
}

fn entry_to_item(e: &ActivityEntry, retention_days: u32) -> Item {
    let mut item = Item::from([
        (
            "episode_id".to_owned(),
            s(e.episode_id
                .map_or_else(|| LOG_PARTITION.to_owned(), |ep| ep.to_string())),
        ),
        ("event_id".to_owned(), s(e.event_id.to_string())),
        ("feed_pk".to_owned(), s(FEED_PK)),
        ("action".to_owned(), s(e.action.as_str())),
        ("actor_id".to_owned(), s(e.actor.id.as_str())),
        ("actor_name".to_owned(), s(e.actor.name.as_str())),
        ("actor_role".to_owned(), s(role_str(e.actor.role))),
        ("resource_type".to_owned(), s(resource_kind(&e.resource))),
        ("resource_id".to_owned(), s(e.resource.id.as_str())),
        ("occurred_at".to_owned(), s(e.occurred_at.to_string())),
        ("summary".to_owned(), s(e.summary.as_str())),
        ("metadata".to_owned(), s(e.metadata.to_string())),
        ("correlation_id".to_owned(), s(e.correlation_id.as_str())),
        (
            "expires_at".to_owned(),
            n(e.expires_at(retention_days).unix_seconds()),
        ),
    ]);
    if let Some(r) = &e.request_id {
        item.insert("request_id".to_owned(), s(r.as_str()));
    }
    item
}

pub(crate) fn role_str(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Editor => "editor",
        Role::Admin => "admin",
    }
}

fn resource_kind(r: &ResourceRef) -> String {
    serde_json::to_value(r.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Parses a string attribute holding one of our serde enums (`"episode.created"`, `"episode"`).
fn enum_attr<T: serde::de::DeserializeOwned>(
    it: &Item,
    name: &'static str,
) -> Result<T, item::CorruptItem> {
    let raw = item::req_str(it, name)?;
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|e| item::corrupt(name, e.to_string()))
}

fn entry_from_item(it: &Item) -> Result<ActivityEntry, StoreError> {
    let parse = || -> Result<ActivityEntry, item::CorruptItem> {
        Ok(ActivityEntry {
            event_id: item::parse(it, "event_id", EventId::parse)?,
            action: enum_attr(it, "action")?,
            actor: Actor {
                id: item::parse(it, "actor_id", UserId::parse)?,
                name: DisplayName::new(item::opt_str(it, "actor_name")?.unwrap_or_default()),
                role: Role::from_claim(item::opt_str(it, "actor_role")?),
            },
            resource: ResourceRef {
                kind: enum_attr(it, "resource_type")?,
                id: item::req_str(it, "resource_id")?.to_owned(),
            },
            episode_id: match item::req_str(it, "episode_id")? {
                LOG_PARTITION => None,
                _ => Some(item::parse(it, "episode_id", EpisodeId::parse)?),
            },
            occurred_at: item::parse(it, "occurred_at", Timestamp::parse)?,
            summary: item::req_str(it, "summary")?.to_owned(),
            metadata: item::parse(it, "metadata", |v| {
                serde_json::from_str::<serde_json::Value>(v)
            })?,
            request_id: item::opt_str(it, "request_id")?.map(str::to_owned),
            correlation_id: item::parse(it, "correlation_id", CorrelationId::parse)?,
        })
    };
    parse().map_err(StoreError::unavailable)
}
