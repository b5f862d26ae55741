//! Episodes in DynamoDB, with their events written beside them in one transaction (the outbox).
//!
//! Episodes table: key `id`. Two sparse indexes serve the newest-first lists: `by-recency`
//! (`list_pk` = `episodes#k`, sort `id`) and `by-status` (`status_pk` = `{status}#k`, sort
//! `id`), each written across [`crate::shards::LIST_SHARDS`] partition keys (`k` from the id) and merged on
//! read ([`crate::shards`]). Ids are UUIDv7, so sorting by id is sorting by creation time.
//! Deleting an episode keeps a tombstone (so a GET answers 404 rather than guessing) that leaves
//! both indexes and expires.
//!
//! Items written before the sharding carry the bare keys (`episodes`, `draft`): the lists read
//! those partitions too, an update moves the episode's `list_pk` to its shard (and its
//! `status_pk` when the status changes), and `infra/migrate_list_keys.py` moves the rest.
//!
//! A create also writes the creator's watch of the episode (same transaction).
//!
//! Events table: key (`episode_id`, `event_id`), the whole event as JSON in `payload`, a TTL;
//! its stream feeds the relay.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use domain::store::{
    EpisodeLister, EpisodeReader, EpisodeWriter, Idempotency, ListQuery, Page, StoreError,
};
use domain::{
    AirDate, Description, DisplayName, DomainEvent, Episode, EpisodeDeletion, EpisodeId,
    EpisodeStatus, EpisodeUpdate, PositiveNumber, SeriesName, Stamp, Timestamp, Title, UserId,
    Version,
};

use crate::item::{self, Item, n, s};
use crate::notification_store::watch_item;
use crate::shards::{self, Chunk, shard_key};
use crate::transact::{cancellation_reasons, idempotency_put, replay_of};

/// How long events stay in the outbox table (the relay has long delivered them by then).
pub const EVENT_RETENTION_DAYS: i64 = 30;
/// How long a deleted episode's tombstone is kept before DynamoDB's TTL removes it.
pub const TOMBSTONE_RETENTION_DAYS: i64 = 30;

const LIST_PK_VALUE: &str = "episodes";
const INDEX_BY_RECENCY: &str = "by-recency";
const INDEX_BY_STATUS: &str = "by-status";

/// Table names, from the function's environment.
#[derive(Debug, Clone)]
pub struct Tables {
    pub episodes: String,
    pub events: String,
    /// The creator of an episode watches it from the start (written with the episode).
    pub watches: String,
}

#[derive(Debug, Clone)]
pub struct DynamoEpisodeStore {
    client: Client,
    tables: Tables,
}

/// The outbox write of one event: a Put on the events table, never overwriting.
pub(crate) fn event_put(table: &str, event: &DomainEvent) -> Result<TransactWriteItem, StoreError> {
    let payload = serde_json::to_string(event).map_err(StoreError::unavailable)?;
    // The outbox holds the episodes' events; the log's own (an export) never pass through it.
    let episode = event.episode_id.ok_or_else(|| {
        StoreError::unavailable(std::io::Error::other(format!(
            "{} is about no episode and has no place in the outbox",
            event.event_type
        )))
    })?;
    let item = Item::from([
        ("episode_id".to_owned(), s(episode.to_string())),
        ("event_id".to_owned(), s(event.id.to_string())),
        ("type".to_owned(), s(event.event_type.as_str())),
        ("occurred_at".to_owned(), s(event.occurred_at.to_string())),
        ("payload".to_owned(), s(payload)),
        (
            "expires_at".to_owned(),
            n(event
                .occurred_at
                .plus_days(EVENT_RETENTION_DAYS)
                .unix_seconds()),
        ),
    ]);
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(event_id)")
        .build()
        .map_err(StoreError::unavailable)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

impl DynamoEpisodeStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    fn key(id: EpisodeId) -> Item {
        Item::from([("id".to_owned(), s(id.to_string()))])
    }

    fn event_put(&self, event: &DomainEvent) -> Result<TransactWriteItem, StoreError> {
        event_put(&self.tables.events, event)
    }

    /// Runs the transaction; when the episode's condition fails, explains why from the item as
    /// it was (returned with the cancellation, or read once more if the emulator omits it).
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        id: EpisodeId,
        explain: impl FnOnce(Option<&Episode>) -> domain::Rejection,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let old_item = match &err {
            SdkError::ServiceError(se) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(tc) => {
                    let first = tc.cancellation_reasons().first();
                    if first.and_then(|r| r.code()) != Some("ConditionalCheckFailed") {
                        return Err(StoreError::unavailable(err));
                    }
                    first.and_then(|r| r.item()).cloned()
                }
                _ => return Err(StoreError::unavailable(err)),
            },
            _ => return Err(StoreError::unavailable(err)),
        };
        let current = match old_item {
            Some(item) if !item.is_empty() => Some(episode_from_item(&item)?),
            _ => self.get(id).await?,
        };
        Err(StoreError::Rejected(explain(current.as_ref())))
    }
}

/// Reads episodes, and only that: for a function that reads the episodes table and nothing
/// beside it (the search worker). [`DynamoEpisodeStore`] reads through one.
#[derive(Debug, Clone)]
pub struct DynamoEpisodeReader {
    client: Client,
    table: String,
}

impl DynamoEpisodeReader {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

impl EpisodeReader for DynamoEpisodeReader {
    async fn get(&self, id: EpisodeId) -> Result<Option<Episode>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(DynamoEpisodeStore::key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.item().map(episode_from_item).transpose()
    }

    /// One BatchGetItem, strongly consistent: a search's page is checked against the
    /// episodes as they are, so one deleted a moment ago is not answered.
    async fn get_many(&self, ids: &[EpisodeId]) -> Result<Vec<Episode>, StoreError> {
        let read = crate::batch::BatchGet {
            table: &self.table,
            key: "id",
            projection: None,
            names: &[],
            consistent: true,
        };
        read.run(&self.client, ids.iter().map(ToString::to_string))
            .await?
            .iter()
            .map(episode_from_item)
            .collect()
    }
}

impl DynamoEpisodeStore {
    fn reader(&self) -> DynamoEpisodeReader {
        DynamoEpisodeReader::new(self.client.clone(), self.tables.episodes.clone())
    }
}

impl EpisodeReader for DynamoEpisodeStore {
    async fn get(&self, id: EpisodeId) -> Result<Option<Episode>, StoreError> {
        self.reader().get(id).await
    }

    async fn get_many(&self, ids: &[EpisodeId]) -> Result<Vec<Episode>, StoreError> {
        self.reader().get_many(ids).await
    }
}

impl EpisodeLister for DynamoEpisodeStore {
    async fn list(&self, query: &ListQuery) -> Result<Page<Episode>, StoreError> {
        let limit = usize::from(query.limit.get());
        let (index, pk_name, list) = match query.status {
            None => (INDEX_BY_RECENCY, "list_pk", LIST_PK_VALUE),
            Some(st) => (INDEX_BY_STATUS, "status_pk", st.as_str()),
        };
        let keys = shards::read_keys(list);
        // One more than asked for: tells whether a next page exists.
        let (items, _queries) = shards::merge_newest_first(
            keys.len(),
            query.after,
            limit + 1,
            |e: &Episode| e.id,
            |i, before, limit| self.list_partition(index, pk_name, &keys[i], before, limit),
        )
        .await?;
        Ok(Page::from_query(items, limit, false, |x| x.id))
    }
}

impl DynamoEpisodeStore {
    /// Up to `limit` episodes of one partition of a list index, newest first, older than
    /// `before`. No filter expression, ever: with none, DynamoDB never answers an empty page
    /// that says there is more, which the merge relies on (it takes an empty answer as the end).
    async fn list_partition(
        &self,
        index: &str,
        pk_name: &str,
        pk: &str,
        before: Option<EpisodeId>,
        limit: usize,
    ) -> Result<Chunk<Episode>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.tables.episodes)
            .index_name(index)
            .expression_attribute_names("#pk", pk_name)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        query = match before {
            None => query.key_condition_expression("#pk = :pk"),
            Some(before) => query
                .key_condition_expression("#pk = :pk AND #id < :before")
                .expression_attribute_names("#id", "id")
                .expression_attribute_values(":before", s(before.to_string())),
        };
        let out = query.send().await.map_err(StoreError::unavailable)?;
        let items = out
            .items()
            .iter()
            .map(episode_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Chunk {
            items,
            more: out.last_evaluated_key().is_some(),
        })
    }
}

impl EpisodeWriter for DynamoEpisodeStore {
    /// One transaction: the episode, its creator's watch, its event, and (with an idempotency
    /// key) the key's item in the episodes table (`idem#<user>#<key>`, no list keys, so in no
    /// index; the table's TTL removes it a day later), new or expired.
    async fn create(
        &self,
        episode: &Episode,
        event: &DomainEvent,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.episodes)
            .set_item(Some(episode_to_item(episode)))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(StoreError::unavailable)?;
        let watch = Put::builder()
            .table_name(&self.tables.watches)
            .set_item(Some(watch_item(
                episode.id,
                &episode.created.by,
                episode.created.at,
                "creator",
            )))
            .build()
            .map_err(StoreError::unavailable)?;
        let mut items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().put(watch).build(),
            self.event_put(event)?,
        ];
        let Some(Idempotency { key, fingerprint }) = idempotency else {
            return self
                .transact(items, episode.id, |_| domain::Rejection::Concurrent)
                .await;
        };
        items.push(idempotency_put(
            &self.tables.episodes,
            &episode.created.by,
            Idempotency { key, fingerprint },
            ("episode_id", episode.id.to_string()),
            episode.created.at,
        )?);
        let Err(e) = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        else {
            return Ok(());
        };
        match cancellation_reasons(&e).as_deref() {
            Some([_, _, _, (true, Some(old))]) => {
                let (previous, same) = replay_of(old, "episode_id", EpisodeId::parse, fingerprint)?;
                Err(StoreError::Rejected(domain::Rejection::Replayed {
                    episode: previous,
                    same_request: same,
                }))
            }
            Some([(true, _), ..]) => Err(StoreError::Rejected(domain::Rejection::Concurrent)),
            _ => Err(StoreError::unavailable(e)),
        }
    }

    async fn update(&self, update: &EpisodeUpdate, event: &DomainEvent) -> Result<(), StoreError> {
        let mut expr = UpdateExpression::default();
        let c = &update.changes;
        if let Some(t) = &c.title {
            expr.set("title", s(t.as_str()));
        }
        if let Some(d) = &c.description {
            expr.set("description", s(d.as_str()));
        }
        if let Some(v) = &c.series {
            expr.set_or_remove("series", v.as_ref().map(|v| s(v.as_str())));
        }
        if let Some(v) = &c.season {
            expr.set_or_remove("season", v.map(|v| n(v.get())));
        }
        if let Some(v) = &c.number {
            expr.set_or_remove("number", v.map(|v| n(v.get())));
        }
        if let Some(v) = &c.air_date {
            expr.set_or_remove("air_date", v.map(|v| s(v.to_string())));
        }
        if let Some(st) = c.status {
            expr.set("status", s(st.as_str()));
            expr.set("status_pk", s(shard_key(st.as_str(), update.id)));
        }
        // Moves an episode written before the sharding to its shard; the same value otherwise
        // (no key change, and no extra index write: the index is rewritten with the item).
        expr.set("list_pk", s(shard_key(LIST_PK_VALUE, update.id)));
        expr.set_stamp("updated", &update.updated);
        expr.set("version", n(update.new_version().get()));

        let mut condition = String::from(
            "attribute_exists(id) AND attribute_not_exists(deleted_at) AND #version = :expected",
        );
        expr.value(":expected", n(update.expected.get()));
        if let Some(to) = c.status {
            let froms = to.reachable_from();
            let placeholders: Vec<String> = (0..froms.len()).map(|i| format!(":from{i}")).collect();
            for (p, from) in placeholders.iter().zip(&froms) {
                expr.value(p, s(from.as_str()));
            }
            // An empty list can never hold; `#status IN ()` is not valid syntax.
            if placeholders.is_empty() {
                condition.push_str(" AND attribute_not_exists(id)");
            } else {
                condition.push_str(&format!(" AND #status IN ({})", placeholders.join(", ")));
                expr.name("#status", "status");
            }
        }
        let items = vec![
            self.episode_update(update.id, expr, condition)?,
            self.event_put(event)?,
        ];
        self.transact(items, update.id, |cur| update.explain(cur))
            .await
    }

    async fn delete(
        &self,
        deletion: &EpisodeDeletion,
        event: &DomainEvent,
    ) -> Result<(), StoreError> {
        let mut expr = UpdateExpression::default();
        expr.set_stamp("deleted", &deletion.deleted);
        expr.set(
            "expires_at",
            n(deletion
                .deleted
                .at
                .plus_days(TOMBSTONE_RETENTION_DAYS)
                .unix_seconds()),
        );
        expr.remove("list_pk");
        expr.remove("status_pk");
        expr.add_one("version");
        let mut condition =
            String::from("attribute_exists(id) AND attribute_not_exists(deleted_at)");
        if let Some(owner) = &deletion.only_if_created_by {
            condition.push_str(" AND created_by = :owner");
            expr.value(":owner", s(owner.as_str()));
        }
        if let Some(v) = deletion.expected {
            condition.push_str(" AND #version = :expected");
            expr.value(":expected", n(v.get()));
        }
        let items = vec![
            self.episode_update(deletion.id, expr, condition)?,
            self.event_put(event)?,
        ];
        self.transact(items, deletion.id, |cur| deletion.explain(cur))
            .await
    }
}

impl DynamoEpisodeStore {
    fn episode_update(
        &self,
        id: EpisodeId,
        mut expr: UpdateExpression,
        condition: String,
    ) -> Result<TransactWriteItem, StoreError> {
        expr.name("#version", "version");
        let (update_expression, names, values) = expr.build();
        let update = Update::builder()
            .table_name(&self.tables.episodes)
            .set_key(Some(Self::key(id)))
            .update_expression(update_expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::unavailable)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

/// Builds `SET a = :a, … REMOVE b, … ADD c :one` with every attribute name escaped (several of
/// ours — `status`, `number`, `version` — are DynamoDB reserved words).
#[derive(Debug, Default)]
struct UpdateExpression {
    sets: Vec<String>,
    removes: Vec<String>,
    adds: Vec<String>,
    names: std::collections::HashMap<String, String>,
    values: Item,
}

impl UpdateExpression {
    fn name(&mut self, placeholder: &str, attribute: &str) {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
    }

    fn value(&mut self, placeholder: &str, v: aws_sdk_dynamodb::types::AttributeValue) {
        self.values.insert(placeholder.to_owned(), v);
    }

    fn set(&mut self, attribute: &str, v: aws_sdk_dynamodb::types::AttributeValue) {
        self.name(&format!("#{attribute}"), attribute);
        self.value(&format!(":{attribute}"), v);
        self.sets.push(format!("#{attribute} = :{attribute}"));
    }

    fn remove(&mut self, attribute: &str) {
        self.name(&format!("#{attribute}"), attribute);
        self.removes.push(format!("#{attribute}"));
    }

    fn set_or_remove(
        &mut self,
        attribute: &str,
        v: Option<aws_sdk_dynamodb::types::AttributeValue>,
    ) {
        match v {
            Some(v) => self.set(attribute, v),
            None => self.remove(attribute),
        }
    }

    fn add_one(&mut self, attribute: &str) {
        self.name(&format!("#{attribute}"), attribute);
        self.value(":one", n(1));
        self.adds.push(format!("#{attribute} :one"));
    }

    fn set_stamp(&mut self, prefix: &str, stamp: &Stamp) {
        self.set(&format!("{prefix}_at"), s(stamp.at.to_string()));
        self.set(&format!("{prefix}_by"), s(stamp.by.as_str()));
        self.set(&format!("{prefix}_by_name"), s(stamp.by_name.as_str()));
    }

    fn build(self) -> (String, std::collections::HashMap<String, String>, Item) {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        (parts.join(" "), self.names, self.values)
    }
}

fn stamp_attrs(item: &mut Item, prefix: &str, stamp: &Stamp) {
    item.insert(format!("{prefix}_at"), s(stamp.at.to_string()));
    item.insert(format!("{prefix}_by"), s(stamp.by.as_str()));
    item.insert(format!("{prefix}_by_name"), s(stamp.by_name.as_str()));
}

fn episode_to_item(e: &Episode) -> Item {
    let mut item = Item::from([
        ("id".to_owned(), s(e.id.to_string())),
        ("title".to_owned(), s(e.title.as_str())),
        ("description".to_owned(), s(e.description.as_str())),
        ("status".to_owned(), s(e.status.as_str())),
        ("version".to_owned(), n(e.version.get())),
    ]);
    if let Some(v) = &e.series {
        item.insert("series".into(), s(v.as_str()));
    }
    if let Some(v) = e.season {
        item.insert("season".into(), n(v.get()));
    }
    if let Some(v) = e.number {
        item.insert("number".into(), n(v.get()));
    }
    if let Some(v) = e.air_date {
        item.insert("air_date".into(), s(v.to_string()));
    }
    stamp_attrs(&mut item, "created", &e.created);
    stamp_attrs(&mut item, "updated", &e.updated);
    match &e.deleted {
        Some(d) => stamp_attrs(&mut item, "deleted", d),
        None => {
            item.insert("list_pk".into(), s(shard_key(LIST_PK_VALUE, e.id)));
            item.insert("status_pk".into(), s(shard_key(e.status.as_str(), e.id)));
        }
    }
    item
}

fn stamp_from_item(
    it: &Item,
    at: &'static str,
    by: &'static str,
    by_name: &'static str,
) -> Result<Option<Stamp>, item::CorruptItem> {
    let Some(when) = item::parse_opt(it, at, Timestamp::parse)? else {
        return Ok(None);
    };
    Ok(Some(Stamp {
        at: when,
        by: item::parse(it, by, UserId::parse)?,
        by_name: DisplayName::new(item::opt_str(it, by_name)?.unwrap_or_default()),
    }))
}

fn number(it: &Item, name: &'static str) -> Result<Option<PositiveNumber>, item::CorruptItem> {
    item::opt_u64(it, name)?
        .map(PositiveNumber::new)
        .transpose()
        .map_err(|e| item::corrupt(name, e.message))
}

fn episode_from_item(it: &Item) -> Result<Episode, StoreError> {
    let parse = || -> Result<Episode, item::CorruptItem> {
        let created = stamp_from_item(it, "created_at", "created_by", "created_by_name")?
            .ok_or_else(|| item::corrupt("created_at", "is missing"))?;
        let updated = stamp_from_item(it, "updated_at", "updated_by", "updated_by_name")?
            .ok_or_else(|| item::corrupt("updated_at", "is missing"))?;
        Ok(Episode {
            id: item::parse(it, "id", EpisodeId::parse)?,
            title: item::parse(it, "title", Title::parse)?,
            description: item::parse(it, "description", Description::parse)?,
            series: item::parse_opt(it, "series", SeriesName::parse)?,
            season: number(it, "season")?,
            number: number(it, "number")?,
            status: item::parse(it, "status", EpisodeStatus::parse)?,
            air_date: item::parse_opt(it, "air_date", AirDate::parse)?,
            created,
            updated,
            version: Version::new(item::req_u64(it, "version")?)
                .map_err(|e| item::corrupt("version", e.message))?,
            deleted: stamp_from_item(it, "deleted_at", "deleted_by", "deleted_by_name")?,
        })
    };
    parse().map_err(StoreError::unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{Actor, NewEpisode, Role};

    #[test]
    fn items_round_trip() {
        let actor = Actor {
            id: UserId::parse("alice").unwrap(),
            name: DisplayName::new("Alice"),
            role: Role::Editor,
        };
        let ep = NewEpisode {
            title: Title::parse("Pilot").unwrap(),
            description: Description::parse("d").unwrap(),
            series: Some(SeriesName::parse("Show").unwrap()),
            season: Some(PositiveNumber::new(2).unwrap()),
            number: Some(PositiveNumber::new(4).unwrap()),
            air_date: Some(AirDate::parse("2027-01-02").unwrap()),
        }
        .into_episode(EpisodeId::new(), &actor, Timestamp::now());
        let item = episode_to_item(&ep);
        let k = ep.id.bucket(crate::shards::LIST_SHARDS);
        assert_eq!(item.get("list_pk"), Some(&s(format!("episodes#{k}"))));
        assert_eq!(item.get("status_pk"), Some(&s(format!("draft#{k}"))));
        assert_eq!(episode_from_item(&item).unwrap(), ep);
    }

    #[test]
    fn corrupt_items_are_errors_not_panics() {
        let mut item = Item::new();
        item.insert("id".into(), n(5));
        assert!(episode_from_item(&item).is_err());
    }

    #[test]
    fn update_expressions_escape_every_name() {
        let mut e = UpdateExpression::default();
        e.set("status", s("draft"));
        e.remove("season");
        e.add_one("version");
        let (expr, names, values) = e.build();
        assert_eq!(
            expr,
            "SET #status = :status REMOVE #season ADD #version :one"
        );
        assert_eq!(names.len(), 3);
        assert_eq!(values.len(), 2);
    }
}
