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
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use domain::notification::NOTIFICATION_RETENTION_DAYS;
use domain::store::StoreError;
use domain::store::notification::{
    Audiences, Inbox, MarkRead, NotificationPage, NotificationWriter, ReadAll,
};
use domain::{
    Actor, DisplayName, EpisodeId, EventId, Notification, Preferences, Role, Timestamp, UserId,
};

use crate::batch::BatchGet;
use crate::item::{self, Item, n, s};
use domain::notification::TRANSACTION_MAX_ITEMS;

const COUNTER_SK: &str = "count";
const NOTIFICATION_PREFIX: &str = "n#";
/// Notifications marked read per transaction in read-all (plus the counter: ≤ 100 items).
const READ_ALL_CHUNK: i32 = 50;
/// Pages of [`READ_ALL_CHUNK`] one read-all call goes through at most (1,000 notifications).
pub const READ_ALL_MAX_PAGES: usize = 20;

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

    fn notification_put(&self, note: &Notification) -> Result<TransactWriteItem, StoreError> {
        let mut it = key(&note.recipient, &sk(note.id));
        it.insert("notification_id".into(), s(note.id.to_string()));
        it.insert("event_type".into(), s(note.event_type.as_str()));
        it.insert("episode_id".into(), s(note.episode_id.to_string()));
        it.insert("actor_id".into(), s(note.actor.id.as_str()));
        it.insert("actor_name".into(), s(note.actor.name.as_str()));
        if let Ok(serde_json::Value::String(role)) = serde_json::to_value(note.actor.role) {
            it.insert("actor_role".into(), s(role));
        }
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

    /// Writes the items in one transaction: true, or false when a condition cancelled it
    /// (nothing was written).
    async fn transact_unless_cancelled(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<bool, StoreError> {
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

    async fn mark_one(
        &self,
        user: &UserId,
        sort: &str,
        now: Timestamp,
    ) -> Result<MarkRead, StoreError> {
        let result = self
            .client
            .transact_write_items()
            .transact_items(self.read_update(user, sort, now)?)
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
}

impl Audiences for DynamoNotificationStore {
    /// Everyone watching the episode (its creator, and whoever asked to).
    async fn watchers(&self, episode: EpisodeId) -> Result<Vec<UserId>, StoreError> {
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
    async fn preferences_of(
        &self,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Preferences>, StoreError> {
        let items = BatchGet {
            table: &self.tables.settings,
            key: "user_id",
            projection: None,
            names: &[],
            consistent: false,
        }
        .run(&self.client, users.iter().map(|u| u.as_str().to_owned()))
        .await?;
        let mut found = HashMap::new();
        for it in &items {
            let user =
                item::parse(it, "user_id", UserId::parse).map_err(StoreError::unavailable)?;
            found.insert(user, preferences_from_item(it)?);
        }
        Ok(found)
    }
}

impl NotificationWriter for DynamoNotificationStore {
    /// Stores the notification and counts it unread, atomically. Delivering the same
    /// (event, recipient) again changes nothing.
    async fn deliver(&self, note: &Notification) -> Result<(), StoreError> {
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
    /// A notification named twice (two copies of one event) counts once: a transaction may
    /// not name one item twice.
    async fn deliver_all(&self, notes: &[Notification]) -> Result<bool, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let notes: Vec<&Notification> = notes
            .iter()
            .filter(|n| seen.insert((&n.recipient, n.id)))
            .collect();
        let mut per_user: HashMap<&UserId, i64> = HashMap::new();
        for note in &notes {
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
        self.transact_unless_cancelled(items).await
    }
}

impl Inbox for DynamoNotificationStore {
    async fn list(
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

    async fn unread_count(&self, user: &UserId) -> Result<u64, StoreError> {
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

    /// Marks one of the user's notifications read (and counts it down) in one transaction.
    /// Another user's notification id is simply not found under this user's key.
    async fn mark_read(
        &self,
        user: &UserId,
        id: EventId,
        now: Timestamp,
    ) -> Result<MarkRead, StoreError> {
        self.mark_one(user, &sk(id), now).await
    }

    /// Marks the user's unread notifications read, the counter moved by exactly as many as
    /// were marked: at most [`READ_ALL_MAX_PAGES`] pages of 50 per call (`more` says the
    /// client should call again). See [`read_all`] for why it cannot loop.
    async fn mark_all_read(&self, user: &UserId, now: Timestamp) -> Result<ReadAll, StoreError> {
        read_all(
            &UnreadOf {
                store: self,
                user,
                now,
            },
            READ_ALL_MAX_PAGES,
        )
        .await
    }

    /// Adds the user to the episode's watchers, if the episode exists (checked in the same
    /// transaction). `false` when it does not.
    async fn watch(
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

    async fn unwatch(&self, episode: EpisodeId, user: &UserId) -> Result<(), StoreError> {
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

    async fn preferences(&self, user: &UserId) -> Result<Preferences, StoreError> {
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

    async fn set_preferences(&self, user: &UserId, prefs: &Preferences) -> Result<(), StoreError> {
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
                // Kept as given (notifications written before it was stored read as viewer).
                role: item::opt_str(it, "actor_role")?
                    .and_then(|r| serde_json::from_value(serde_json::Value::String(r.into())).ok())
                    .unwrap_or(Role::Viewer),
            },
            summary: item::req_str(it, "summary")?.to_owned(),
            created_at: item::parse(it, "created_at", Timestamp::parse)?,
            read_at: item::parse_opt(it, "read_at", Timestamp::parse)?,
        })
    };
    parse().map_err(StoreError::unavailable)
}

/// The steps of read-all, so the walk can be tested without DynamoDB.
pub(crate) trait UnreadIndex {
    /// A page of the unread index (sort keys), from after `start`; and where the next starts.
    fn page(
        &self,
        start: Option<String>,
    ) -> impl Future<Output = Result<(Vec<String>, Option<String>), StoreError>> + Send;
    /// Marks all of them read in one transaction; false when it was cancelled (one of them
    /// was read meanwhile, or the index still listed one already read).
    fn mark_page(&self, sorts: &[String]) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn mark_one(&self, sort: &str) -> impl Future<Output = Result<MarkRead, StoreError>> + Send;
}

/// Read-all as one forward walk over the unread index: each page is read from where the last
/// ended (never from the start again), so an index that lags behind the writes (a GSI is
/// eventually consistent, and still lists what was just marked) cannot make it go round. A
/// page whose transaction is cancelled is marked one by one, counting only what this call
/// marked. Bounded by a number of pages, not by the clock.
pub(crate) async fn read_all(
    index: &impl UnreadIndex,
    max_pages: usize,
) -> Result<ReadAll, StoreError> {
    let mut marked = 0u64;
    let mut start = None;
    for _ in 0..max_pages {
        let (sorts, next) = index.page(start).await?;
        if !sorts.is_empty() {
            if index.mark_page(&sorts).await? {
                marked += sorts.len() as u64;
            } else {
                for sort in &sorts {
                    if index.mark_one(sort).await? == MarkRead::Marked {
                        marked += 1;
                    }
                }
            }
        }
        match next {
            Some(key) => start = Some(key),
            None => {
                return Ok(ReadAll {
                    marked,
                    more: false,
                });
            }
        }
    }
    Ok(ReadAll { marked, more: true })
}

struct UnreadOf<'a> {
    store: &'a DynamoNotificationStore,
    user: &'a UserId,
    now: Timestamp,
}

impl UnreadIndex for UnreadOf<'_> {
    async fn page(
        &self,
        start: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let user = self.user.as_str();
        let start_key = start.map(|sort| {
            Item::from([
                ("user_id".to_owned(), s(user)),
                ("sk".to_owned(), s(sort)),
                ("unread_user".to_owned(), s(user)),
            ])
        });
        let out = self
            .store
            .client
            .query()
            .table_name(&self.store.tables.notifications)
            .index_name("unread")
            .key_condition_expression("unread_user = :u")
            .expression_attribute_values(":u", s(user))
            .projection_expression("sk")
            .limit(READ_ALL_CHUNK)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let sorts = out
            .items()
            .iter()
            .filter_map(|it| it.get("sk").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok((sorts, next))
    }

    async fn mark_page(&self, sorts: &[String]) -> Result<bool, StoreError> {
        let mut items = sorts
            .iter()
            .map(|k| self.store.read_update(self.user, k, self.now))
            .collect::<Result<Vec<_>, _>>()?;
        items.push(
            self.store
                .counter_update(self.user, -i64::try_from(sorts.len()).unwrap_or(0))?,
        );
        self.store.transact_unless_cancelled(items).await
    }

    async fn mark_one(&self, sort: &str) -> Result<MarkRead, StoreError> {
        self.store.mark_one(self.user, sort, self.now).await
    }
}

#[cfg(test)]
mod read_all_tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// Notifications by sort key (true = unread), and an index that lags: it still lists the
    /// first `lagging` notifications marked read, as a GSI may for a while.
    struct Lagging {
        unread: Mutex<BTreeMap<String, bool>>,
        listed_anyway: Mutex<Vec<String>>,
        lagging: usize,
        page_size: usize,
        calls: Mutex<usize>,
    }

    impl Lagging {
        fn new(n: usize, lagging: usize, page_size: usize) -> Self {
            Self {
                unread: Mutex::new((0..n).map(|i| (format!("n#{i:04}"), true)).collect()),
                listed_anyway: Mutex::new(Vec::new()),
                lagging,
                page_size,
                calls: Mutex::new(0),
            }
        }
        fn call(&self) {
            *self.calls.lock().unwrap() += 1;
        }
        fn unread_left(&self) -> usize {
            self.unread.lock().unwrap().values().filter(|u| **u).count()
        }
    }

    impl UnreadIndex for Lagging {
        async fn page(
            &self,
            start: Option<String>,
        ) -> Result<(Vec<String>, Option<String>), StoreError> {
            self.call();
            let unread = self.unread.lock().unwrap();
            let lagging = self.listed_anyway.lock().unwrap();
            let listed: Vec<String> = unread
                .iter()
                .filter(|(k, u)| **u || lagging.contains(k))
                .map(|(k, _)| k.clone())
                .filter(|k| start.as_ref().is_none_or(|s| k > s))
                .collect();
            let page: Vec<String> = listed.iter().take(self.page_size).cloned().collect();
            let next = (listed.len() > self.page_size)
                .then(|| page.last().cloned())
                .flatten();
            Ok((page, next))
        }

        async fn mark_page(&self, sorts: &[String]) -> Result<bool, StoreError> {
            self.call();
            let mut unread = self.unread.lock().unwrap();
            if sorts.iter().any(|k| unread.get(k) != Some(&true)) {
                return Ok(false);
            }
            let mut lagging = self.listed_anyway.lock().unwrap();
            for k in sorts {
                unread.insert(k.clone(), false);
                if lagging.len() < self.lagging {
                    lagging.push(k.clone());
                }
            }
            Ok(true)
        }

        async fn mark_one(&self, sort: &str) -> Result<MarkRead, StoreError> {
            self.call();
            let mut unread = self.unread.lock().unwrap();
            match unread.get(sort) {
                Some(true) => {
                    unread.insert(sort.to_owned(), false);
                    Ok(MarkRead::Marked)
                }
                Some(false) => Ok(MarkRead::AlreadyRead),
                None => Ok(MarkRead::NotFound),
            }
        }
    }

    #[tokio::test]
    async fn marks_everything_once_in_one_forward_walk() {
        let index = Lagging::new(120, 0, 50);
        let done = read_all(&index, READ_ALL_MAX_PAGES).await.unwrap();
        assert_eq!(
            done,
            ReadAll {
                marked: 120,
                more: false
            }
        );
        assert_eq!(index.unread_left(), 0);
        assert_eq!(*index.calls.lock().unwrap(), 6, "3 pages, 3 transactions");
    }

    #[tokio::test]
    async fn an_index_that_still_lists_read_ones_cannot_make_it_go_round() {
        // Half of the first page read by another request just before; the index still lists
        // them. The walk marks the rest one by one and moves on: nothing counted twice.
        let index = Lagging::new(100, 25, 50);
        {
            let mut unread = index.unread.lock().unwrap();
            let mut lagging = index.listed_anyway.lock().unwrap();
            for i in 0..25 {
                let k = format!("n#{i:04}");
                unread.insert(k.clone(), false);
                lagging.push(k);
            }
        }
        let done = read_all(&index, READ_ALL_MAX_PAGES).await.unwrap();
        assert_eq!(
            done,
            ReadAll {
                marked: 75,
                more: false
            }
        );
        assert_eq!(index.unread_left(), 0);
        // 2 pages; the first cancelled and marked one by one (50), the second in one go.
        assert_eq!(*index.calls.lock().unwrap(), 2 + 2 + 50);
    }

    #[tokio::test]
    async fn stops_at_its_bound_and_says_there_is_more() {
        let index = Lagging::new(500, 0, 50);
        let done = read_all(&index, 3).await.unwrap();
        assert_eq!(
            done,
            ReadAll {
                marked: 150,
                more: true
            }
        );
        let again = read_all(&index, 20).await.unwrap();
        assert_eq!(
            again,
            ReadAll {
                marked: 350,
                more: false
            }
        );
    }
}
