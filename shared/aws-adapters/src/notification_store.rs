//! Notifications, watches and notification preferences in DynamoDB.
//!
//! Notifications table: key (`user_id`, `sk`). A notification is `sk = "n#<event id>"`, so a
//! user's are one Query, newest first, and (event, recipient) is unique by construction. Each
//! user has a counter item (`sk = "count"`) changed in the same transaction as the
//! notification it counts, so the unread count is exact. The sparse index `unread`
//! (`unread_user`, `sk`) holds only unread notifications. Unread notifications never expire;
//! read ones expire after a retention period (TTL), so expiry never skews the count.
//!
//! Watches table: key (`episode_id`, `user_id`). Settings table: key `user_id`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use domain::notification::NOTIFICATION_RETENTION_DAYS;
use domain::store::StoreError;
use domain::{
    Actor, DisplayName, EpisodeId, EventId, Notification, Preferences, Role, Timestamp, UserId,
};

use crate::item::{self, Item, n, s};

const COUNTER_SK: &str = "count";
const NOTIFICATION_PREFIX: &str = "n#";
/// Notifications marked read per transaction in read-all (plus the counter: ≤ 100 items).
const READ_ALL_CHUNK: i32 = 50;
const READ_ALL_MAX_ROUNDS: usize = 200;
/// DynamoDB's limit on the items of one transaction.
const TRANSACTION_MAX_ITEMS: usize = 100;

#[derive(Debug, Clone)]
pub struct NotificationTables {
    pub notifications: String,
    pub watches: String,
    pub settings: String,
    pub episodes: String,
}

#[derive(Debug, Clone)]
pub struct DynamoNotificationStore {
    client: Client,
    tables: NotificationTables,
}

/// What marking one notification read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkRead {
    Marked,
    AlreadyRead,
    NotFound,
}

/// A page of a user's notifications.
#[derive(Debug, Clone)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    /// The `sk` of the last item when more may follow.
    pub next: Option<String>,
}

fn sk(id: EventId) -> String {
    format!("{NOTIFICATION_PREFIX}{id}")
}

fn key(user: &UserId, sort: &str) -> Item {
    Item::from([
        ("user_id".to_owned(), s(user.as_str())),
        ("sk".to_owned(), s(sort)),
    ])
}

/// The first item's condition failed: `Some(old item or empty)`; any other error: `None`.
fn first_condition_failure(err: &SdkError<TransactWriteItemsError>) -> Option<Item> {
    let reasons = crate::transact::cancellation_reasons(err)?;
    let (failed, item) = reasons.into_iter().next()?;
    failed.then(|| item.unwrap_or_default())
}

impl DynamoNotificationStore {
    pub fn new(client: Client, tables: NotificationTables) -> Self {
        Self { client, tables }
    }

    // ---------------------------------------------------------------- worker side

    /// Everyone watching the episode (its creator, and whoever asked to).
    pub async fn watchers(&self, episode: EpisodeId) -> Result<Vec<UserId>, StoreError> {
        let mut users = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.watches)
                .key_condition_expression("episode_id = :e")
                .expression_attribute_values(":e", s(episode.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            for it in out.items() {
                users.push(
                    item::parse(it, "user_id", UserId::parse).map_err(StoreError::unavailable)?,
                );
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(users);
            }
        }
    }

    /// The preferences of each user who has any, with BatchGetItem (100 keys a call).
    pub async fn preferences_of(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Preferences>, StoreError> {
        let mut found = HashMap::new();
        for chunk in users.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|u| Item::from([("user_id".to_owned(), s(u.as_str()))]))
                .collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .build()
                .map_err(StoreError::unavailable)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.tables.settings, request)
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            for it in out
                .responses()
                .and_then(|r| r.get(&self.tables.settings))
                .into_iter()
                .flatten()
            {
                let user =
                    item::parse(it, "user_id", UserId::parse).map_err(StoreError::unavailable)?;
                found.insert(user, preferences_from_item(it)?);
            }
        }
        Ok(found)
    }

    fn notification_put(&self, note: &Notification) -> Result<TransactWriteItem, StoreError> {
        let mut it = key(&note.recipient, &sk(note.id));
        it.insert("notification_id".into(), s(note.id.to_string()));
        it.insert("event_type".into(), s(note.event_type.as_str()));
        it.insert("episode_id".into(), s(note.episode_id.to_string()));
        it.insert("actor_id".into(), s(note.actor.id.as_str()));
        it.insert("actor_name".into(), s(note.actor.name.as_str()));
        it.insert("summary".into(), s(note.summary.as_str()));
        it.insert("created_at".into(), s(note.created_at.to_string()));
        it.insert("unread_user".into(), s(note.recipient.as_str()));
        let put = Put::builder()
            .table_name(&self.tables.notifications)
            .set_item(Some(it))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(StoreError::unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Stores the notification and counts it unread, atomically. Delivering the same
    /// (event, recipient) again changes nothing.
    pub async fn deliver(&self, note: &Notification) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.notification_put(note)?)
            .transact_items(self.counter_update(&note.recipient, 1)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if first_condition_failure(&e).is_some() => Ok(()), // delivered before
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    /// Delivers many notifications in one transaction (each user's counter moved once by their
    /// count): the usual case, one call for a whole batch. `Ok(false)` when any of them was
    /// delivered before (the transaction then wrote nothing): deliver those one by one instead.
    pub async fn deliver_all(&self, notes: &[Notification]) -> Result<bool, StoreError> {
        let mut per_user: HashMap<&UserId, i64> = HashMap::new();
        for note in notes {
            *per_user.entry(&note.recipient).or_default() += 1;
        }
        if notes.is_empty() {
            return Ok(true);
        }
        if notes.len() + per_user.len() > TRANSACTION_MAX_ITEMS {
            return Ok(false);
        }
        let mut items = notes
            .iter()
            .map(|n| self.notification_put(n))
            .collect::<Result<Vec<_>, _>>()?;
        for (user, count) in per_user {
            items.push(self.counter_update(user, count)?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    fn counter_update(&self, user: &UserId, delta: i64) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.tables.notifications)
            .set_key(Some(key(user, COUNTER_SK)))
            .update_expression("ADD unread :d")
            .expression_attribute_values(":d", n(delta))
            .build()
            .map_err(StoreError::unavailable)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    // ---------------------------------------------------------------- API side

    pub async fn list(
        &self,
        user: &UserId,
        unread_only: bool,
        limit: u16,
        after: Option<String>,
    ) -> Result<NotificationPage, StoreError> {
        let mut req = self
            .client
            .query()
            .table_name(&self.tables.notifications)
            .scan_index_forward(false)
            .limit(i32::from(limit))
            .expression_attribute_values(":u", s(user.as_str()))
            .expression_attribute_values(":p", s(NOTIFICATION_PREFIX));
        let mut start = after.map(|a| key(user, &a));
        if unread_only {
            req = req
                .index_name("unread")
                .key_condition_expression("unread_user = :u AND begins_with(sk, :p)");
            if let Some(st) = start.as_mut() {
                st.insert("unread_user".into(), s(user.as_str()));
            }
        } else {
            req = req.key_condition_expression("user_id = :u AND begins_with(sk, :p)");
        }
        let out = req
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let items = out
            .items()
            .iter()
            .map(notification_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok(NotificationPage { items, next })
    }

    pub async fn unread_count(&self, user: &UserId) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.notifications)
            .set_key(Some(key(user, COUNTER_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let count = out
            .item()
            .map(|it| item::opt_u64(it, "unread"))
            .transpose()
            .map_err(StoreError::unavailable)?;
        Ok(count.flatten().unwrap_or(0))
    }

    fn read_update(
        &self,
        user: &UserId,
        sort: &str,
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.tables.notifications)
            .set_key(Some(key(user, sort)))
            .update_expression("SET read_at = :now, expires_at = :exp REMOVE unread_user")
            .condition_expression("attribute_exists(unread_user)")
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(
                ":exp",
                n(now.plus_days(NOTIFICATION_RETENTION_DAYS).unix_seconds()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::unavailable)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Marks one of the user's notifications read (and counts it down) in one transaction.
    /// Another user's notification id is simply not found under this user's key.
    pub async fn mark_read(
        &self,
        user: &UserId,
        id: EventId,
        now: Timestamp,
    ) -> Result<MarkRead, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.read_update(user, &sk(id), now)?)
            .transact_items(self.counter_update(user, -1)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(MarkRead::Marked),
            Err(e) => match first_condition_failure(&e) {
                Some(old) if !old.is_empty() => Ok(MarkRead::AlreadyRead),
                Some(_) => Ok(MarkRead::NotFound),
                None => Err(StoreError::unavailable(e)),
            },
        }
    }

    /// Marks every unread notification read, a transaction per 50, the counter moved by
    /// exactly as many as were marked. Returns how many.
    pub async fn mark_all_read(&self, user: &UserId, now: Timestamp) -> Result<u64, StoreError> {
        let mut marked = 0u64;
        for _ in 0..READ_ALL_MAX_ROUNDS {
            let out = self
                .client
                .query()
                .table_name(&self.tables.notifications)
                .index_name("unread")
                .key_condition_expression("unread_user = :u")
                .expression_attribute_values(":u", s(user.as_str()))
                .projection_expression("sk")
                .limit(READ_ALL_CHUNK)
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            let sks: Vec<String> = out
                .items()
                .iter()
                .filter_map(|it| it.get("sk").and_then(|v| v.as_s().ok()).cloned())
                .collect();
            if sks.is_empty() {
                return Ok(marked);
            }
            let mut items = sks
                .iter()
                .map(|k| self.read_update(user, k, now))
                .collect::<Result<Vec<_>, _>>()?;
            items.push(self.counter_update(user, -i64::try_from(sks.len()).unwrap_or(0))?);
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => marked += sks.len() as u64,
                // Another request read one of them meanwhile (the index lags): query again.
                Err(SdkError::ServiceError(se))
                    if matches!(
                        se.err(),
                        TransactWriteItemsError::TransactionCanceledException(_)
                    ) => {}
                Err(e) => return Err(StoreError::unavailable(e)),
            }
        }
        Ok(marked)
    }

    /// Adds the user to the episode's watchers, if the episode exists (checked in the same
    /// transaction). `false` when it does not.
    pub async fn watch(
        &self,
        episode: EpisodeId,
        user: &UserId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.tables.episodes)
            .key("id", s(episode.to_string()))
            .condition_expression("attribute_exists(id) AND attribute_not_exists(deleted_at)")
            .build()
            .map_err(StoreError::unavailable)?;
        let put = Put::builder()
            .table_name(&self.tables.watches)
            .set_item(Some(watch_item(episode, user, now, "asked")))
            .build()
            .map_err(StoreError::unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if first_condition_failure(&e).is_some() => Ok(false),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    pub async fn unwatch(&self, episode: EpisodeId, user: &UserId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.tables.watches)
            .key("episode_id", s(episode.to_string()))
            .key("user_id", s(user.as_str()))
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }

    pub async fn preferences(&self, user: &UserId) -> Result<Preferences, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.settings)
            .key("user_id", s(user.as_str()))
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.item()
            .map(preferences_from_item)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    pub async fn set_preferences(
        &self,
        user: &UserId,
        prefs: &Preferences,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(prefs).map_err(StoreError::unavailable)?;
        self.client
            .put_item()
            .table_name(&self.tables.settings)
            .item("user_id", s(user.as_str()))
            .item("preferences", s(json))
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }
}

/// The watch item the episodes API writes with a new episode (its creator watches it).
pub fn watch_item(episode: EpisodeId, user: &UserId, now: Timestamp, reason: &str) -> Item {
    Item::from([
        ("episode_id".to_owned(), s(episode.to_string())),
        ("user_id".to_owned(), s(user.as_str())),
        ("since".to_owned(), s(now.to_string())),
        ("reason".to_owned(), s(reason)),
    ])
}

fn preferences_from_item(it: &Item) -> Result<Preferences, StoreError> {
    match item::opt_str(it, "preferences").map_err(StoreError::unavailable)? {
        Some(json) => serde_json::from_str(json).map_err(StoreError::unavailable),
        None => Ok(Preferences::default()),
    }
}

fn notification_from_item(it: &Item) -> Result<Notification, StoreError> {
    let parse = || -> Result<Notification, item::CorruptItem> {
        let event_type = item::req_str(it, "event_type")?;
        Ok(Notification {
            id: item::parse(it, "notification_id", EventId::parse)?,
            recipient: item::parse(it, "user_id", UserId::parse)?,
            event_type: serde_json::from_value(serde_json::Value::String(event_type.to_owned()))
                .map_err(|e| item::corrupt("event_type", e.to_string()))?,
            episode_id: item::parse(it, "episode_id", EpisodeId::parse)?,
            actor: Actor {
                id: item::parse(it, "actor_id", UserId::parse)?,
                name: DisplayName::new(item::opt_str(it, "actor_name")?.unwrap_or_default()),
                role: Role::Viewer,
            },
            summary: item::req_str(it, "summary")?.to_owned(),
            created_at: item::parse(it, "created_at", Timestamp::parse)?,
            read_at: item::parse_opt(it, "read_at", Timestamp::parse)?,
        })
    };
    parse().map_err(StoreError::unavailable)
}
