//! Notifications, watches and notification preferences in DynamoDB.
//!
//! Notifications table: key (`user_id`, `sk`). Per user:
//! - a notification: `sk = "n#<id of the event that opened it>"`, so a user's are one Query,
//!   newest opened first. Its `revision` grows with every write, and every write is
//!   conditional on the revision it read: the worker growing a batch and the user reading it
//!   cannot overwrite each other.
//! - a receipt per (recipient, event) counted: `sk = "r#<event id>"`, written with what counts
//!   it, on condition it is new; so a redelivery, however late, counts nothing twice.
//! - the open notification of each batch: `sk = "g#<episode>#<type>#<actor>"`.
//! - the counter (`sk = "count"`: `unread`, `unseen`), moved in the same transaction as what it
//!   counts, so both counts are exact.
//!
//! Indexes: the sparse `unread` (`unread_user`, `sk`) holds unread notifications only;
//! `by-state` (`state_key` = `<user>#<state>`, `sk`) every notification by state. TTL
//! (`expires_at`) applies the retention (`domain::notification::Retention`); receipts are
//! kept [`RECEIPT_DAYS`], longer than a message can be redelivered (a queue keeps it 4 days,
//! its dead-letter queue 14).
//!
//! Watches table: key (`episode_id`, `user_id`). Settings table: key `user_id`.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem, Update};
use domain::notification::batch::packs;
use domain::notification::{
    Change, Counts, Delivery, GroupKey, Moved, NoteFilter, NoteState, Observed, Retention,
    TRANSACTION_MAX_ITEMS, Transition,
};
use domain::store::StoreError;
use domain::store::notification::{
    Audiences, BellCounts, Inbox, NotificationPage, NotificationWriter, Observations, ReadAll,
    Removed,
};
use domain::{
    Actor, DisplayName, EpisodeId, EventId, EventType, Notification, Preferences, Role, Timestamp,
    UserId,
};

use crate::batch::BatchGet;
use crate::item::{self, Item, n, s};

const COUNTER_SK: &str = "count";
const NOTIFICATION_PREFIX: &str = "n#";
const RECEIPT_PREFIX: &str = "r#";
const POINTER_PREFIX: &str = "g#";
/// The mark that a removed notification was taken off the counts: `x#<id>`.
const UNCOUNTED_PREFIX: &str = "x#";
/// How long a receipt is kept.
pub const RECEIPT_DAYS: i64 = 30;
/// Notifications marked read per transaction in read-all (plus the counter: ≤ 100 items).
const READ_ALL_CHUNK: i32 = 50;
/// Pages of [`READ_ALL_CHUNK`] one read-all call goes through at most (1,000 notifications).
pub const READ_ALL_MAX_PAGES: usize = 20;
/// Notifications moved per transaction by one `transition` call (plus the counter).
const MOVE_CHUNK: usize = 50;
/// Tries of one notification's move when it changes meanwhile.
const MOVE_TRIES: usize = 4;

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
    retention: Retention,
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

fn state_key(user: &UserId, state: NoteState) -> String {
    format!("{}#{}", user.as_str(), state.as_str())
}

/// The first item's condition failed: `Some(old item or empty)`; any other error: `None`.
fn first_condition_failure(err: &SdkError<TransactWriteItemsError>) -> Option<Item> {
    let reasons = crate::transact::cancellation_reasons(err)?;
    let (failed, item) = reasons.into_iter().next()?;
    failed.then(|| item.unwrap_or_default())
}

/// The condition that the stored notification is still at `revision` (0: a notification
/// written before revisions were kept).
fn at_revision(revision: u64) -> (&'static str, Option<u64>) {
    if revision == 0 {
        (
            "attribute_exists(sk) AND attribute_not_exists(revision)",
            None,
        )
    } else {
        ("revision = :rev", Some(revision))
    }
}

impl DynamoNotificationStore {
    pub fn new(client: Client, tables: NotificationTables) -> Self {
        Self {
            client,
            tables,
            retention: Retention::DEFAULT,
        }
    }

    /// How long notifications are kept (default [`Retention::DEFAULT`]).
    #[must_use]
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    // ---------------------------------------------------------------- worker side

    fn note_item(&self, note: &Notification) -> Result<Item, StoreError> {
        let user = &note.recipient;
        let mut it = key(user, &sk(note.id));
        it.insert("notification_id".into(), s(note.id.to_string()));
        it.insert("event_type".into(), s(note.event_type.as_str()));
        if let Some(episode) = note.episode_id {
            it.insert("episode_id".into(), s(episode.to_string()));
        }
        it.insert("actor_id".into(), s(note.actor.id.as_str()));
        it.insert("actor_name".into(), s(note.actor.name.as_str()));
        if let Ok(serde_json::Value::String(role)) = serde_json::to_value(note.actor.role) {
            it.insert("actor_role".into(), s(role));
        }
        it.insert("label".into(), s(note.label.as_str()));
        if let Some(link) = &note.link {
            it.insert("link".into(), s(link.as_str()));
        }
        it.insert("summary".into(), s(note.summary()));
        let changes = serde_json::to_string(&note.changes).map_err(StoreError::unavailable)?;
        it.insert("changes".into(), s(changes));
        it.insert("created_at".into(), s(note.created_at.to_string()));
        it.insert("updated_at".into(), s(note.updated_at.to_string()));
        it.insert("revision".into(), n(note.revision));
        self.state_attributes(note, &mut it);
        Ok(it)
    }

    /// The attributes a move changes, as they are for `note`.
    fn state_attributes(&self, note: &Notification, it: &mut Item) {
        let user = &note.recipient;
        it.insert("state".into(), s(note.state.as_str()));
        it.insert("state_key".into(), s(state_key(user, note.state)));
        if note.state.is_unread() {
            it.insert("unread_user".into(), s(user.as_str()));
        }
        for (name, at) in [
            ("seen_at", note.seen_at),
            ("read_at", note.read_at),
            ("archived_at", note.archived_at),
        ] {
            if let Some(at) = at {
                it.insert(name.into(), s(at.to_string()));
            }
        }
        it.insert(
            "expires_at".into(),
            n(self.retention.expires_at(note).unix_seconds()),
        );
    }

    /// The notification as it will be, on condition the store holds `expected` (0: nothing).
    fn note_put(
        &self,
        note: &Notification,
        expected: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder()
            .table_name(&self.tables.notifications)
            .set_item(Some(self.note_item(note)?));
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(sk)")
        } else {
            put.condition_expression("revision = :rev")
                .expression_attribute_values(":rev", n(expected))
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(StoreError::unavailable)?)
            .build())
    }

    fn receipt_put(
        &self,
        user: &UserId,
        event: EventId,
        note: EventId,
    ) -> Result<TransactWriteItem, StoreError> {
        self.mark_put(user, format!("{RECEIPT_PREFIX}{event}"), Some(note))
    }

    /// The mark that `id` was taken off `user`'s counts, on condition it is new.
    fn uncounted_put(&self, user: &UserId, id: EventId) -> Result<TransactWriteItem, StoreError> {
        self.mark_put(user, format!("{UNCOUNTED_PREFIX}{id}"), None)
    }

    /// A mark (a receipt, naming the notification it counts in, or an uncount), kept
    /// [`RECEIPT_DAYS`], on condition it is new.
    fn mark_put(
        &self,
        user: &UserId,
        sort: String,
        note: Option<EventId>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut it = key(user, &sort);
        if let Some(note) = note {
            it.insert("notification_id".into(), s(note.to_string()));
        }
        it.insert(
            "expires_at".into(),
            n(Timestamp::now().plus_days(RECEIPT_DAYS).unix_seconds()),
        );
        let put = Put::builder()
            .table_name(&self.tables.notifications)
            .set_item(Some(it))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(StoreError::unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn pointer_put(
        &self,
        user: &UserId,
        group: &GroupKey,
        open: EventId,
        expected: Option<EventId>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut it = key(user, &format!("{POINTER_PREFIX}{}", group.key()));
        it.insert("open_id".into(), s(open.to_string()));
        let mut put = Put::builder()
            .table_name(&self.tables.notifications)
            .set_item(Some(it));
        put = match expected {
            None => put.condition_expression("attribute_not_exists(sk)"),
            Some(old) => put
                .condition_expression("open_id = :old")
                .expression_attribute_values(":old", s(old.to_string())),
        };
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(StoreError::unavailable)?)
            .build())
    }

    fn counter_update(
        &self,
        user: &UserId,
        counts: Counts,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.tables.notifications)
            .set_key(Some(key(user, COUNTER_SK)))
            .update_expression("ADD unread :u, unseen :s")
            .expression_attribute_values(":u", n(counts.unread))
            .expression_attribute_values(":s", n(counts.unseen))
            .build()
            .map_err(StoreError::unavailable)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A delivery's items, its counter left to the caller (one per recipient a transaction).
    fn delivery_items(&self, d: &Delivery) -> Result<Vec<TransactWriteItem>, StoreError> {
        let user = &d.recipient;
        let mut items = Vec::with_capacity(d.items());
        for (note, expected) in &d.writes {
            for change in &note.changes {
                if d.receipts.contains(&change.event_id) {
                    items.push(self.receipt_put(user, change.event_id, note.id)?);
                }
            }
            items.push(self.note_put(note, *expected)?);
        }
        if let Some((open, expected)) = d.pointer {
            items.push(self.pointer_put(user, &d.group, open, expected)?);
        }
        Ok(items)
    }

    /// Deliveries in one transaction: `true`, or `false` when a condition cancelled it.
    async fn apply_together(&self, deliveries: &[&Delivery]) -> Result<bool, StoreError> {
        let mut items = Vec::new();
        let mut counters: HashMap<&UserId, Counts> = HashMap::new();
        for d in deliveries {
            items.extend(self.delivery_items(d)?);
            if !d.counts.is_zero() {
                *counters.entry(&d.recipient).or_default() += d.counts;
            }
        }
        for (user, counts) in counters {
            if !counts.is_zero() {
                items.push(self.counter_update(user, counts)?);
            }
        }
        if items.is_empty() {
            return Ok(true);
        }
        if items.len() > TRANSACTION_MAX_ITEMS {
            return Err(StoreError::unavailable(std::io::Error::other(format!(
                "a delivery of {} items does not fit one transaction",
                items.len()
            ))));
        }
        self.transact_unless_cancelled(items).await
    }

    /// Writes the items in one transaction: true, or false when a condition (or a concurrent
    /// transaction on one of its items) cancelled it: nothing was written.
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

    /// Whole items of the notifications table (notifications, receipts, pointers), read
    /// strongly consistent: what the writes' conditions are then checked against.
    fn notifications_get(&self) -> BatchGet<'_> {
        BatchGet {
            table: &self.tables.notifications,
            key: "user_id",
            projection: None,
            names: &[],
            consistent: true,
        }
    }

    /// The user's notifications of these ids that exist, read strongly consistent.
    async fn read_notes(
        &self,
        keys: Vec<(UserId, EventId)>,
    ) -> Result<Vec<Notification>, StoreError> {
        let pairs: Vec<(String, String)> = keys
            .into_iter()
            .map(|(u, id)| (u.as_str().to_owned(), sk(id)))
            .collect();
        let items = self
            .notifications_get()
            .run_composite(&self.client, "sk", pairs)
            .await?;
        items.iter().map(notification_from_item).collect()
    }

    // ---------------------------------------------------------------- API side

    /// A recipient's move of `note` (as it will be, from `before`'s revision).
    fn move_update(
        &self,
        note: &Notification,
        before: u64,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut attrs = Item::new();
        self.state_attributes(note, &mut attrs);
        let mut sets = Vec::new();
        let mut update = Update::builder()
            .table_name(&self.tables.notifications)
            .set_key(Some(key(&note.recipient, &sk(note.id))));
        for (i, (name, value)) in attrs.into_iter().enumerate() {
            sets.push(format!("#a{i} = :a{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":a{i}"), value);
        }
        sets.push("revision = :next".into());
        update = update.expression_attribute_values(":next", n(note.revision));
        let mut removes = Vec::new();
        if !note.state.is_unread() {
            removes.push("unread_user");
        }
        for (name, at) in [
            ("seen_at", note.seen_at),
            ("read_at", note.read_at),
            ("archived_at", note.archived_at),
        ] {
            if at.is_none() {
                removes.push(name);
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let (condition, revision) = at_revision(before);
        update = update
            .update_expression(expression)
            .condition_expression(condition);
        if let Some(r) = revision {
            update = update.expression_attribute_values(":rev", n(r));
        }
        Ok(TransactWriteItem::builder()
            .update(update.build().map_err(StoreError::unavailable)?)
            .build())
    }

    /// Moves these notifications (as read) together, the counter with them: false when any
    /// changed meanwhile (nothing was written).
    async fn move_together(
        &self,
        user: &UserId,
        notes: &[Notification],
        transition: Transition,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut items = Vec::new();
        let mut counts = Counts::default();
        for note in notes {
            let mut after = note.clone();
            if !after.apply(transition, now) {
                continue;
            }
            counts += Counts::of_move(Some(note.state), Some(after.state));
            items.push(self.move_update(&after, note.revision)?);
        }
        if items.is_empty() {
            return Ok(true);
        }
        if !counts.is_zero() {
            items.push(self.counter_update(user, counts)?);
        }
        self.transact_unless_cancelled(items).await
    }

    /// One notification's move, read again and tried again while it changes meanwhile.
    async fn move_one(
        &self,
        user: &UserId,
        id: EventId,
        transition: Transition,
        now: Timestamp,
    ) -> Result<Moved, StoreError> {
        for _ in 0..MOVE_TRIES {
            let Some(note) = self.read_notes(vec![(user.clone(), id)]).await?.pop() else {
                return Ok(Moved::NotFound);
            };
            if transition.apply(note.state).is_none() {
                return Ok(Moved::Unchanged);
            }
            if self
                .move_together(user, std::slice::from_ref(&note), transition, now)
                .await?
            {
                return Ok(Moved::Changed);
            }
        }
        Err(StoreError::unavailable(std::io::Error::other(
            "the notification kept changing while it was being moved",
        )))
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
    /// Two strongly consistent BatchGetItems: the batches' pointers with the receipts, then
    /// the open notifications they point to.
    async fn observe(
        &self,
        groups: &[(UserId, GroupKey)],
        events: &[(UserId, EventId)],
        batching: bool,
    ) -> Result<Observations, StoreError> {
        let get = self.notifications_get();
        let mut wanted: Vec<(String, String)> = Vec::new();
        if batching {
            for (u, g) in groups {
                wanted.push((
                    u.as_str().to_owned(),
                    format!("{POINTER_PREFIX}{}", g.key()),
                ));
            }
        }
        for (u, e) in events {
            wanted.push((u.as_str().to_owned(), format!("{RECEIPT_PREFIX}{e}")));
        }
        let found = get.run_composite(&self.client, "sk", wanted).await?;
        let mut by_key: HashMap<(String, String), &Item> = HashMap::new();
        for it in &found {
            let user = item::req_str(it, "user_id").map_err(StoreError::unavailable)?;
            let sort = item::req_str(it, "sk").map_err(StoreError::unavailable)?;
            by_key.insert((user.to_owned(), sort.to_owned()), it);
        }
        // The notification an item names: a receipt's (`notification_id`), a pointer's
        // (`open_id`).
        let named = |user: &UserId,
                     sort: String,
                     attribute: &'static str|
         -> Result<Option<EventId>, StoreError> {
            by_key
                .get(&(user.as_str().to_owned(), sort))
                .map(|it| item::parse(it, attribute, EventId::parse))
                .transpose()
                .map_err(StoreError::unavailable)
        };
        let mut observed = Observations::default();
        for (user, event) in events {
            let receipt = format!("{RECEIPT_PREFIX}{event}");
            if let Some(note) = named(user, receipt, "notification_id")? {
                observed.counted.insert((user.clone(), *event), note);
            }
        }
        let mut open = Vec::new();
        if batching {
            for (user, group) in groups {
                let sort = format!("{POINTER_PREFIX}{}", group.key());
                let pointer = named(user, sort, "open_id")?;
                if let Some(id) = pointer {
                    open.push((user.clone(), id));
                }
                observed.groups.insert(
                    (user.clone(), group.clone()),
                    Observed {
                        pointer,
                        open: None,
                    },
                );
            }
        }
        for note in self.read_notes(open).await? {
            let key = (note.recipient.clone(), note.group());
            if let Some(o) = observed.groups.get_mut(&key)
                && o.pointer == Some(note.id)
            {
                o.open = Some(note);
            }
        }
        Ok(observed)
    }

    /// As few transactions as fit ([`packs`]); a pack that is cancelled is written delivery
    /// by delivery, so one batch that changed meanwhile does not hold back the others.
    async fn apply(&self, deliveries: &[Delivery]) -> Result<Vec<bool>, StoreError> {
        let mut done = vec![false; deliveries.len()];
        for pack in packs(deliveries) {
            let together: Vec<&Delivery> = pack.iter().map(|i| &deliveries[*i]).collect();
            if self.apply_together(&together).await? {
                for i in pack {
                    done[i] = true;
                }
                continue;
            }
            if pack.len() == 1 {
                continue;
            }
            for i in pack {
                done[i] = self.apply_together(&[&deliveries[i]]).await?;
            }
        }
        Ok(done)
    }

    /// Per removed notification that counted: one transaction of its mark `x#<id>` (on
    /// condition it is new) and the counter; a mark already there means it was done before.
    async fn uncount(&self, removed: &[Removed]) -> Result<(), StoreError> {
        for r in removed {
            let delta = Counts::of_move(Some(r.state), None);
            if delta.is_zero() {
                continue;
            }
            let sent = self
                .client
                .transact_write_items()
                .transact_items(self.uncounted_put(&r.recipient, r.id)?)
                .transact_items(self.counter_update(&r.recipient, delta)?)
                .send()
                .await;
            match sent {
                Ok(_) => {}
                Err(e) if first_condition_failure(&e).is_some() => {}
                Err(e) => return Err(StoreError::unavailable(e)),
            }
        }
        Ok(())
    }

    async fn notes(&self, keys: &[(UserId, EventId)]) -> Result<Vec<Notification>, StoreError> {
        self.read_notes(keys.to_vec()).await
    }
}

/// The notification a stream record's old image held, when the record removed one (`None` for
/// the table's other items: receipts, pointers, counters, marks). The image is in DynamoDB
/// JSON (`{"sk": {"S": "n#…"}}`), as a Lambda stream event carries it.
pub fn removed_from_image(image: &serde_json::Value) -> Result<Option<Removed>, String> {
    let text = |name: &str| {
        image
            .pointer(&format!("/{name}/S"))
            .and_then(|v| v.as_str())
    };
    let Some(id) = text("sk").and_then(|sk| sk.strip_prefix(NOTIFICATION_PREFIX)) else {
        return Ok(None);
    };
    let id = EventId::parse(id).map_err(|e| format!("sk: {e}"))?;
    let recipient =
        UserId::parse(text("user_id").unwrap_or_default()).map_err(|e| format!("user_id: {e}"))?;
    // As `notification_from_item` reads one written before states were kept.
    let state = match text("state") {
        Some(s) => NoteState::parse(s).ok_or_else(|| format!("state: {s} is not a state"))?,
        None if text("read_at").is_some() => NoteState::Read,
        None => NoteState::Seen,
    };
    Ok(Some(Removed {
        recipient,
        id,
        state,
    }))
}

impl Inbox for DynamoNotificationStore {
    /// One Query: the table itself for the inbox (archived ones filtered out) and for all;
    /// the `unread` index for unread ones; `by-state` for unseen, read and archived.
    async fn list(
        &self,
        user: &UserId,
        filter: NoteFilter,
        limit: u16,
        after: Option<String>,
    ) -> Result<NotificationPage, StoreError> {
        let mut req = self
            .client
            .query()
            .table_name(&self.tables.notifications)
            .scan_index_forward(false)
            .limit(i32::from(limit))
            .expression_attribute_values(":p", s(NOTIFICATION_PREFIX));
        let mut start = after.map(|a| key(user, &a));
        let (index, partition, value) = match filter {
            NoteFilter::Inbox | NoteFilter::All => (None, "user_id", user.as_str().to_owned()),
            NoteFilter::Unread => (Some("unread"), "unread_user", user.as_str().to_owned()),
            NoteFilter::Unseen => (
                Some("by-state"),
                "state_key",
                state_key(user, NoteState::Unseen),
            ),
            NoteFilter::Read => (
                Some("by-state"),
                "state_key",
                state_key(user, NoteState::Read),
            ),
            NoteFilter::Archived => (
                Some("by-state"),
                "state_key",
                state_key(user, NoteState::Archived),
            ),
        };
        if let Some(st) = start.as_mut() {
            st.insert(partition.to_owned(), s(value.clone()));
        }
        req = req
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression(format!("{partition} = :u AND begins_with(sk, :p)"))
            .expression_attribute_values(":u", s(value));
        if filter == NoteFilter::Inbox {
            req = req.filter_expression("attribute_not_exists(archived_at)");
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

    async fn counts(&self, user: &UserId) -> Result<BellCounts, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.notifications)
            .set_key(Some(key(user, COUNTER_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let read = |name: &'static str| -> Result<u64, StoreError> {
            let Some(it) = out.item() else { return Ok(0) };
            // A count that went below zero (a notification deleted by hand) reads as 0.
            match it.get(name).map(|v| v.as_n()) {
                None => Ok(0),
                Some(Ok(text)) => Ok(text
                    .parse::<i64>()
                    .map(|v| v.max(0).unsigned_abs())
                    .unwrap_or(0)),
                Some(Err(_)) => Err(StoreError::unavailable(item::corrupt(name, "not a number"))),
            }
        };
        Ok(BellCounts {
            unread: read("unread")?,
            unseen: read("unseen")?,
        })
    }

    /// Reads the notifications named (strongly consistent), moves them in transactions of
    /// [`MOVE_CHUNK`] with the counter; a transaction cancelled because one changed meanwhile
    /// is done one by one, each read again.
    async fn transition(
        &self,
        user: &UserId,
        ids: &[EventId],
        transition: Transition,
        now: Timestamp,
    ) -> Result<Vec<Moved>, StoreError> {
        let found: HashMap<EventId, Notification> = self
            .read_notes(ids.iter().map(|id| (user.clone(), *id)).collect())
            .await?
            .into_iter()
            .map(|n| (n.id, n))
            .collect();
        let mut outcome: HashMap<EventId, Moved> = HashMap::new();
        let mut movable = Vec::new();
        for id in ids {
            match found.get(id) {
                None => {
                    outcome.insert(*id, Moved::NotFound);
                }
                Some(n) if transition.apply(n.state).is_none() => {
                    outcome.insert(*id, Moved::Unchanged);
                }
                Some(n) if !outcome.contains_key(id) => {
                    outcome.insert(*id, Moved::Changed);
                    movable.push(n.clone());
                }
                Some(_) => {}
            }
        }
        for chunk in movable.chunks(MOVE_CHUNK) {
            if self.move_together(user, chunk, transition, now).await? {
                continue;
            }
            for note in chunk {
                let moved = self.move_one(user, note.id, transition, now).await?;
                outcome.insert(note.id, moved);
            }
        }
        Ok(ids
            .iter()
            .map(|id| outcome.get(id).copied().unwrap_or(Moved::NotFound))
            .collect())
    }

    /// Marks the user's unread notifications read, the counts moved by exactly what was
    /// marked: at most [`READ_ALL_MAX_PAGES`] pages of 50 per call (`more` says the client
    /// should call again). See [`read_all`] for why it cannot loop.
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

/// A notification as stored. One written before batching (no `revision`) reads as one change,
/// seen when unread (the counter it was counted in had no `unseen`), at revision 0.
fn notification_from_item(it: &Item) -> Result<Notification, StoreError> {
    let parse = || -> Result<Notification, item::CorruptItem> {
        let id = item::parse(it, "notification_id", EventId::parse)?;
        let event_type: EventType = serde_json::from_value(serde_json::Value::String(
            item::req_str(it, "event_type")?.to_owned(),
        ))
        .map_err(|e| item::corrupt("event_type", e.to_string()))?;
        let created_at = item::parse(it, "created_at", Timestamp::parse)?;
        let summary = item::req_str(it, "summary")?.to_owned();
        let read_at = item::parse_opt(it, "read_at", Timestamp::parse)?;
        let changes: Vec<Change> = match item::opt_str(it, "changes")? {
            Some(json) => {
                serde_json::from_str(json).map_err(|e| item::corrupt("changes", e.to_string()))?
            }
            None => vec![Change {
                event_id: id,
                at: created_at,
                summary: summary.clone(),
            }],
        };
        if changes.is_empty() {
            return Err(item::corrupt("changes", "empty"));
        }
        let state = match item::opt_str(it, "state")? {
            Some(text) => NoteState::parse(text).ok_or_else(|| item::corrupt("state", text))?,
            None if read_at.is_some() => NoteState::Read,
            None => NoteState::Seen,
        };
        Ok(Notification {
            id,
            recipient: item::parse(it, "user_id", UserId::parse)?,
            event_type,
            episode_id: item::parse_opt(it, "episode_id", EpisodeId::parse)?,
            actor: Actor {
                id: item::parse(it, "actor_id", UserId::parse)?,
                name: DisplayName::new(item::opt_str(it, "actor_name")?.unwrap_or_default()),
                // Kept as given (notifications written before it was stored read as viewer).
                role: item::opt_str(it, "actor_role")?
                    .and_then(|r| serde_json::from_value(serde_json::Value::String(r.into())).ok())
                    .unwrap_or(Role::Viewer),
            },
            label: item::opt_str(it, "label")?
                .unwrap_or("an episode")
                .to_owned(),
            link: item::opt_str(it, "link")?.map(str::to_owned),
            changes,
            created_at,
            updated_at: item::parse_opt(it, "updated_at", Timestamp::parse)?.unwrap_or(created_at),
            state,
            seen_at: item::parse_opt(it, "seen_at", Timestamp::parse)?,
            read_at,
            archived_at: item::parse_opt(it, "archived_at", Timestamp::parse)?,
            revision: item::opt_u64(it, "revision")?.unwrap_or(0),
        })
    };
    parse().map_err(StoreError::unavailable)
}

/// The steps of read-all, so the walk can be tested without DynamoDB.
pub(crate) trait UnreadIndex {
    /// What a page lists of each notification.
    type Entry: Sync;
    /// A page of the unread index, from after `start`; and where the next starts.
    fn page(
        &self,
        start: Option<String>,
    ) -> impl Future<Output = Result<(Vec<Self::Entry>, Option<String>), StoreError>> + Send;
    /// Marks all of them read in one transaction; false when it was cancelled (one of them
    /// was read meanwhile, or the index still listed one already read).
    fn mark_page(
        &self,
        entries: &[Self::Entry],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn mark_one(
        &self,
        entry: &Self::Entry,
    ) -> impl Future<Output = Result<Moved, StoreError>> + Send;
}

/// Read-all as one forward walk over the unread index: each page is read from where the last
/// ended (never from the start again), so an index that lags behind the writes (a GSI is
/// eventually consistent, and still lists what was just marked) cannot make it go round. A
/// page whose transaction is cancelled is marked one by one, counting only what this call
/// marked. Bounded by a number of pages, not by the clock.
pub(crate) async fn read_all<I: UnreadIndex>(
    index: &I,
    max_pages: usize,
) -> Result<ReadAll, StoreError> {
    let mut marked = 0u64;
    let mut start = None;
    for _ in 0..max_pages {
        let (entries, next) = index.page(start).await?;
        if !entries.is_empty() {
            if index.mark_page(&entries).await? {
                marked += entries.len() as u64;
            } else {
                for entry in &entries {
                    if index.mark_one(entry).await? == Moved::Changed {
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
    /// The index holds whole notifications (projection ALL): each move is conditional on the
    /// revision it lists, so a lagging index cannot make it overwrite a newer one.
    type Entry = Notification;

    async fn page(
        &self,
        start: Option<String>,
    ) -> Result<(Vec<Notification>, Option<String>), StoreError> {
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
            .limit(READ_ALL_CHUNK)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let notes = out
            .items()
            .iter()
            .map(notification_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .cloned();
        Ok((notes, next))
    }

    async fn mark_page(&self, notes: &[Notification]) -> Result<bool, StoreError> {
        self.store
            .move_together(self.user, notes, Transition::Read, self.now)
            .await
    }

    async fn mark_one(&self, note: &Notification) -> Result<Moved, StoreError> {
        self.store
            .move_one(self.user, note.id, Transition::Read, self.now)
            .await
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
        type Entry = String;

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

        async fn mark_one(&self, sort: &String) -> Result<Moved, StoreError> {
            self.call();
            let mut unread = self.unread.lock().unwrap();
            match unread.get(sort) {
                Some(true) => {
                    unread.insert(sort.clone(), false);
                    Ok(Moved::Changed)
                }
                Some(false) => Ok(Moved::Unchanged),
                None => Ok(Moved::NotFound),
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
