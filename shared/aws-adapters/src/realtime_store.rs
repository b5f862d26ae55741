//! WebSocket connections, subscriptions and presence in DynamoDB.
//!
//! - Connections table, key `connection_id`: the user, when it connected, its subscriptions (a
//!   string set of episode ids), `expires_at` (TTL, a little over API Gateway's 2 hours).
//!   Index `by-user` (`user_id`, `connection_id`): a user's connections, for notifications.
//! - Subscriptions table, key (`episode_id`, `connection_id`): an episode's connections are one
//!   Query, for broadcasts. Same TTL as the connection.
//! - Presence table, key (`episode_id`, `user_id`): the user's connections subscribed to the
//!   episode as a string set (its size is the count; adding or removing an id twice changes
//!   nothing, so a retried subscribe cannot inflate it), `since`, `last_seen`, and `left_at`
//!   while the grace period after the last connection runs. The item outlives the visit
//!   (last seen per user), expiring after a retention period.
//!   One more item per episode, under [`ROUND_KEY`], holds its presence rounds: `due_until`
//!   while a round is asked for, `round` (the last begun) and `announced` (what the last
//!   finished round told the connections, as JSON). User ids are printable, so no user's item
//!   can take that key, and it sorts before all of them: reads of people start after it.

use std::collections::BTreeSet;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};
use domain::realtime::{
    Announced, CONNECTION_TTL_SECONDS, DEFAULT_PRESENCE_RETENTION_DAYS, EditedField, Editing,
    Listener, MAX_SUBSCRIPTIONS,
};
use domain::store::realtime::{
    Closed, Connections, EventHistory, Heartbeat, OpenConnection, PresenceReader, PresenceRounds,
    RoundStarted, Subscribe, SubscribeError, Subscribed, Subscriptions,
};
use domain::store::{EpisodeExistence, StoreError};
use domain::{
    Actor, ConnectionId, DisplayName, DomainEvent, EpisodeId, EventId, Presence, Timestamp, UserId,
    UserRef,
};

use crate::batch::BatchGet;
use crate::item::{self, Item, n, s};
use crate::transact::{cancellation_reasons, episode_exists};

#[derive(Debug, Clone)]
pub struct RealtimeTables {
    pub connections: String,
    pub subscriptions: String,
    pub presence: String,
}

#[derive(Debug, Clone)]
pub struct DynamoRealtimeStore {
    client: Client,
    tables: RealtimeTables,
    presence_days: u32,
}

/// The sort key of an episode's presence-rounds item in the presence table: a control
/// character no user id may hold, below every printable one.
pub const ROUND_KEY: &str = "\u{1}rounds";

/// When the token a connection was opened with expires: on the connection item and on each of
/// its subscriptions.
const TOKEN_EXPIRES_AT: &str = "token_expires_at";

fn str_set(values: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::Ss(values.into_iter().collect())
}

fn string_set(item: &Item, name: &str) -> Vec<String> {
    match item.get(name) {
        Some(AttributeValue::Ss(v)) => v.clone(),
        _ => Vec::new(),
    }
}

fn is_conditional<E>(err: &SdkError<E>) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(se) if se.err().code() == Some("ConditionalCheckFailedException"))
}

/// A conditional write: true when it took effect, false when its condition did not hold.
pub(crate) fn applied<T, E>(result: Result<T, SdkError<E>>) -> Result<bool, StoreError>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_conditional(&e) => Ok(false),
        Err(e) => Err(StoreError::unavailable(e)),
    }
}

fn presence_from(it: &Item) -> Result<Presence, StoreError> {
    let parse = || -> Result<Presence, item::CorruptItem> {
        let connections = string_set(it, "connections");
        // What they are editing holds only while the connection that said so is subscribed.
        let editing = match (
            item::opt_str(it, "editing_field")?,
            item::opt_str(it, "editing_connection")?,
        ) {
            (Some(field), Some(connection)) if connections.iter().any(|c| c == connection) => {
                Some(Editing {
                    field: EditedField::parse(field)
                        .ok_or_else(|| item::corrupt("editing_field", field))?,
                    connection: ConnectionId::parse(connection)
                        .map_err(|e| item::corrupt("editing_connection", e.to_string()))?,
                    until: item::parse(it, "editing_until", Timestamp::parse)?,
                })
            }
            _ => None,
        };
        Ok(Presence {
            user: UserRef {
                id: item::parse(it, "user_id", UserId::parse)?,
                name: DisplayName::new(item::req_str(it, "user_name")?),
            },
            connections: connections.len(),
            since: item::parse_opt(it, "since", Timestamp::parse)?,
            last_seen: item::parse(it, "last_seen", Timestamp::parse)?,
            left_at: item::parse_opt(it, "left_at", Timestamp::parse)?,
            editing,
        })
    };
    parse().map_err(StoreError::unavailable)
}

impl DynamoRealtimeStore {
    pub fn new(client: Client, tables: RealtimeTables) -> Self {
        Self {
            client,
            tables,
            presence_days: DEFAULT_PRESENCE_RETENTION_DAYS,
        }
    }

    /// How long a user's last-seen time on an episode is kept (the template's
    /// `PresenceRetentionDays`).
    #[must_use]
    pub fn with_presence_retention_days(mut self, days: u32) -> Self {
        self.presence_days = days;
        self
    }

    fn connection_expiry(now: Timestamp) -> AttributeValue {
        n(now.plus_seconds(CONNECTION_TTL_SECONDS).unix_seconds())
    }

    fn presence_expiry(&self, now: Timestamp) -> AttributeValue {
        n(now.plus_days(i64::from(self.presence_days)).unix_seconds())
    }

    /// Removes one connection from the user's presence on an episode; when none is left, starts
    /// the grace period and returns its start.
    async fn leave(
        &self,
        episode: EpisodeId,
        user: &UserId,
        connection: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let key =
            |b: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder| {
                b.table_name(&self.tables.presence)
                    .key("episode_id", s(episode.to_string()))
                    .key("user_id", s(user.as_str()))
            };
        let removed = key(self.client.update_item())
            .update_expression("DELETE connections :c SET last_seen = :now")
            .condition_expression("contains(connections, :id)")
            .expression_attribute_values(":c", str_set([connection.to_string()]))
            .expression_attribute_values(":id", s(connection.as_str()))
            .expression_attribute_values(":now", s(now.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let after = match removed {
            Ok(out) => out.attributes().cloned().unwrap_or_default(),
            Err(e) if is_conditional(&e) => return Ok(None), // not counted there (any more)
            Err(e) => return Err(StoreError::unavailable(e)),
        };
        if !string_set(&after, "connections").is_empty() {
            return Ok(None);
        }
        let marked = key(self.client.update_item())
            .update_expression("SET left_at = :now")
            .condition_expression("attribute_exists(user_id) AND attribute_not_exists(connections)")
            .expression_attribute_values(":now", s(now.to_string()))
            .send()
            .await;
        match marked {
            Ok(_) => Ok(Some(now)),
            Err(e) if is_conditional(&e) => Ok(None), // came back in between
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    async fn query_all(
        &self,
        table: &str,
        index: Option<&str>,
        key_condition: &str,
        key: AttributeValue,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(table)
                .set_index_name(index.map(str::to_owned))
                // Strongly consistent on the table (an index cannot be): a presence round reads
                // who is subscribed after it recorded what it announced.
                .consistent_read(index.is_none())
                .key_condition_expression(key_condition)
                .expression_attribute_values(":k", key.clone())
                .set_projection_expression(projection.map(str::to_owned))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            items.extend(out.items().iter().cloned());
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

impl Connections for DynamoRealtimeStore {
    /// Records a new connection of `actor`, opened with a token good until `token_expires_at`.
    async fn open(
        &self,
        connection: &ConnectionId,
        actor: &Actor,
        token_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.connections)
            .item("connection_id", s(connection.as_str()))
            .item("user_id", s(actor.id.as_str()))
            .item("user_name", s(actor.name.as_str()))
            .item("connected_at", s(now.to_string()))
            .item("last_seen", s(now.to_string()))
            .item(TOKEN_EXPIRES_AT, s(token_expires_at.to_string()))
            .item("expires_at", Self::connection_expiry(now))
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }

    /// An open connection's user and token expiry (None when it is not known: closed, or
    /// gone with its TTL).
    async fn connection(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<OpenConnection>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection.as_str()))
            .projection_expression("user_id, user_name, token_expires_at")
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        out.item()
            .map(|it| {
                Ok(OpenConnection {
                    user: UserRef {
                        id: item::parse(it, "user_id", UserId::parse)?,
                        name: DisplayName::new(item::req_str(it, "user_name")?),
                    },
                    token_expires_at: item::parse_opt(it, TOKEN_EXPIRES_AT, Timestamp::parse)?,
                })
            })
            .transpose()
            .map_err(|e: item::CorruptItem| StoreError::unavailable(e))
    }

    /// A heartbeat: the connection and the user's presence on its episodes are seen now —
    /// unless the connection is not known, or its token has expired (it is then not seen).
    async fn heartbeat(
        &self,
        connection: &ConnectionId,
        now: Timestamp,
    ) -> Result<Heartbeat, StoreError> {
        // Timestamps have one fixed RFC 3339 form, so they compare as strings.
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection.as_str()))
            .update_expression("SET last_seen = :now")
            .condition_expression(
                "attribute_exists(connection_id) AND \
                 (attribute_not_exists(token_expires_at) OR token_expires_at > :now)",
            )
            .expression_attribute_values(":now", s(now.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let conn = match out {
            Ok(out) => out.attributes().cloned().unwrap_or_default(),
            // Rare: tell an unknown connection from an expired one with one read.
            Err(e) if is_conditional(&e) => {
                return Ok(match self.connection(connection).await? {
                    None => Heartbeat::Unknown,
                    Some(_) => Heartbeat::Expired,
                });
            }
            Err(e) => return Err(StoreError::unavailable(e)),
        };
        let user = item::req_str(&conn, "user_id").map_err(StoreError::unavailable)?;
        for episode in string_set(&conn, "subscriptions") {
            let seen = self
                .client
                .update_item()
                .table_name(&self.tables.presence)
                .key("episode_id", s(episode))
                .key("user_id", s(user))
                .update_expression("SET last_seen = :now, expires_at = :exp")
                .condition_expression("contains(connections, :c)")
                .expression_attribute_values(":now", s(now.to_string()))
                .expression_attribute_values(":exp", self.presence_expiry(now))
                .expression_attribute_values(":c", s(connection.as_str()))
                .send()
                .await;
            match seen {
                Ok(_) => {}
                Err(e) if is_conditional(&e) => {}
                Err(e) => return Err(StoreError::unavailable(e)),
            }
        }
        Ok(Heartbeat::Seen)
    }

    /// Forgets a connection (`$disconnect`, or a post that found it gone): its item, its
    /// subscriptions, its share of presence. None when it was already forgotten.
    async fn close(
        &self,
        connection: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Closed>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection.as_str()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let Some(conn) = out.attributes().filter(|a| !a.is_empty()) else {
            return Ok(None);
        };
        let user = UserRef {
            id: item::parse(conn, "user_id", UserId::parse).map_err(StoreError::unavailable)?,
            name: DisplayName::new(
                item::req_str(conn, "user_name").map_err(StoreError::unavailable)?,
            ),
        };
        let episodes: BTreeSet<EpisodeId> = string_set(conn, "subscriptions")
            .iter()
            .filter_map(|e| EpisodeId::parse(e).ok())
            .collect();
        if !episodes.is_empty() {
            let deletes: Vec<WriteRequest> = episodes
                .iter()
                .filter_map(|e| {
                    DeleteRequest::builder()
                        .key("episode_id", s(e.to_string()))
                        .key("connection_id", s(connection.as_str()))
                        .build()
                        .ok()
                })
                .map(|d| WriteRequest::builder().delete_request(d).build())
                .collect();
            // At most MAX_SUBSCRIPTIONS (20) deletes: one BatchWriteItem; leftovers expire.
            if let Err(e) = self
                .client
                .batch_write_item()
                .request_items(&self.tables.subscriptions, deletes)
                .send()
                .await
            {
                tracing::warn!(error = %e, "subscriptions not deleted; they expire with the connection");
            }
        }
        let mut left = Vec::new();
        for episode in episodes {
            if let Some(at) = self.leave(episode, &user.id, connection, now).await? {
                left.push((episode, at));
            }
        }
        Ok(Some(Closed { user, left }))
    }

    /// A user's open connections, with their tokens' expiry. The `by-user` index holds keys
    /// only, so the expiries come from the connection items (one BatchGetItem per 100).
    async fn connections_of(&self, user: &UserId) -> Result<Vec<Listener>, StoreError> {
        let keys = self
            .query_all(
                &self.tables.connections,
                Some("by-user"),
                "user_id = :k",
                s(user.as_str()),
                Some("connection_id"),
            )
            .await?;
        // A connection gone meanwhile is not listed.
        let found = BatchGet {
            table: &self.tables.connections,
            key: "connection_id",
            projection: Some(LISTENER_FIELDS),
            names: &[],
            consistent: true,
        }
        .run(
            &self.client,
            keys.iter()
                .filter_map(|k| k.get("connection_id"))
                .filter_map(|v| v.as_s().ok().cloned()),
        )
        .await?;
        listeners(&found)
    }
}

impl Subscriptions for DynamoRealtimeStore {
    /// One UpdateItem of the user's presence item, on condition the connection is subscribed
    /// (in its `connections` set).
    async fn set_editing(
        &self,
        episode: EpisodeId,
        user: &UserId,
        connection: &ConnectionId,
        editing: Option<&Editing>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.tables.presence)
            .key("episode_id", s(episode.to_string()))
            .key("user_id", s(user.as_str()))
            .condition_expression("contains(connections, :c)")
            .expression_attribute_values(":c", s(connection.to_string()))
            .expression_attribute_values(":now", s(now.to_string()));
        let req = match editing {
            Some(e) => req
                .update_expression(
                    "SET editing_field = :f, editing_connection = :c, editing_until = :u, \
                     last_seen = :now",
                )
                .expression_attribute_values(":f", s(e.field.as_str()))
                .expression_attribute_values(":u", s(e.until.to_string())),
            None => req.update_expression(
                "SET last_seen = :now REMOVE editing_field, editing_connection, editing_until",
            ),
        };
        applied(req.send().await)
    }

    /// Unsubscribes a connection; `Some(left_at)` when it was the user's last one there.
    async fn unsubscribe(
        &self,
        connection: &ConnectionId,
        user: &UserId,
        episode: EpisodeId,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let ep = episode.to_string();
        let unfollow = Update::builder()
            .table_name(&self.tables.connections)
            .key("connection_id", s(connection.as_str()))
            .update_expression("DELETE subscriptions :ep")
            .condition_expression("attribute_exists(connection_id)")
            .expression_attribute_values(":ep", str_set([ep.clone()]))
            .build()
            .map_err(StoreError::unavailable)?;
        let forget = Delete::builder()
            .table_name(&self.tables.subscriptions)
            .key("episode_id", s(&ep))
            .key("connection_id", s(connection.as_str()))
            .build()
            .map_err(StoreError::unavailable)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(unfollow).build())
            .transact_items(TransactWriteItem::builder().delete(forget).build())
            .send()
            .await;
        if let Err(e) = result
            && cancellation_reasons(&e).is_none()
        {
            return Err(StoreError::unavailable(e));
        }
        self.leave(episode, user, connection, now).await
    }

    /// Ends the grace period that began at `left_at`: true when the user did not come back
    /// (their leaving is news), false when they did or it was ended before.
    async fn finish_leaving(
        &self,
        episode: EpisodeId,
        user: &UserId,
        left_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.presence)
            .key("episode_id", s(episode.to_string()))
            .key("user_id", s(user.as_str()))
            .update_expression("REMOVE left_at, since SET expires_at = :exp")
            .condition_expression("attribute_not_exists(connections) AND left_at = :left")
            .expression_attribute_values(":left", s(left_at.to_string()))
            .expression_attribute_values(":exp", self.presence_expiry(now))
            .send()
            .await;
        applied(result)
    }

    /// The connections subscribed to an episode.
    async fn subscribers(&self, episode: EpisodeId) -> Result<Vec<Listener>, StoreError> {
        let items = self
            .query_all(
                &self.tables.subscriptions,
                None,
                "episode_id = :k",
                s(episode.to_string()),
                Some(LISTENER_FIELDS),
            )
            .await?;
        listeners(&items)
    }
}

impl PresenceReader for DynamoRealtimeStore {
    async fn presence(&self, episode: EpisodeId) -> Result<Vec<Presence>, StoreError> {
        presence_on(&self.client, &self.tables.presence, episode).await
    }

    async fn presence_page(
        &self,
        episode: EpisodeId,
        limit: usize,
        after: Option<UserId>,
    ) -> Result<(Vec<Presence>, Option<UserId>), StoreError> {
        presence_page_on(
            &self.client,
            &self.tables.presence,
            episode,
            PresenceRead::Page(limit),
            after,
        )
        .await
    }
}

/// How a presence read reads.
#[derive(Debug, Clone, Copy)]
enum PresenceRead {
    /// A page for the API (eventually consistent, as every list is).
    Page(usize),
    /// Everything, strongly consistent: a round must see every change that asked for it
    /// before it began.
    All,
}

/// One page of an episode's presence, in user id order (one Query), and the user the next
/// page starts after.
async fn presence_page_on(
    client: &Client,
    table: &str,
    episode: EpisodeId,
    read: PresenceRead,
    after: Option<UserId>,
) -> Result<(Vec<Presence>, Option<UserId>), StoreError> {
    let ep = episode.to_string();
    let start = after.map(|user| {
        [
            ("episode_id".to_owned(), s(&ep)),
            ("user_id".to_owned(), s(user.as_str())),
        ]
        .into_iter()
        .collect()
    });
    let (limit, consistent) = match read {
        PresenceRead::Page(limit) => (Some(i32::try_from(limit.max(1)).unwrap_or(i32::MAX)), false),
        PresenceRead::All => (None, true),
    };
    let out = client
        .query()
        .table_name(table)
        .key_condition_expression("episode_id = :k AND user_id > :rounds")
        .expression_attribute_values(":k", s(&ep))
        .expression_attribute_values(":rounds", s(ROUND_KEY))
        .set_limit(limit)
        .consistent_read(consistent)
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(StoreError::unavailable)?;
    let items = out
        .items()
        .iter()
        .map(presence_from)
        .collect::<Result<Vec<_>, _>>()?;
    let next = match out.last_evaluated_key() {
        Some(key) => {
            Some(item::parse(key, "user_id", UserId::parse).map_err(StoreError::unavailable)?)
        }
        None => None,
    };
    Ok((items, next))
}

/// Everyone's presence on an episode, strongly consistent (one Query per 1 MB; the table keeps
/// at most one item per user who was there within the retention period).
async fn presence_on(
    client: &Client,
    table: &str,
    episode: EpisodeId,
) -> Result<Vec<Presence>, StoreError> {
    let mut items = Vec::new();
    let mut after = None;
    loop {
        let (page, next) =
            presence_page_on(client, table, episode, PresenceRead::All, after).await?;
        items.extend(page);
        match next {
            Some(next) => after = Some(next),
            None => return Ok(items),
        }
    }
}

/// What the last round announced, from the rounds item (nothing yet: the default).
fn announced_in(item: Option<&Item>) -> Result<Announced, StoreError> {
    match item.and_then(|it| it.get("announced")) {
        Some(AttributeValue::S(json)) => serde_json::from_str(json)
            .map_err(|e| StoreError::unavailable(item::corrupt("announced", e.to_string()))),
        Some(_) => Err(StoreError::unavailable(item::corrupt(
            "announced",
            "not a string",
        ))),
        None => Ok(Announced::default()),
    }
}

impl DynamoRealtimeStore {
    /// An update of the episode's rounds item.
    fn rounds_update(
        &self,
        episode: EpisodeId,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.presence)
            .key("episode_id", s(episode.to_string()))
            .key("user_id", s(ROUND_KEY))
    }
}

impl PresenceRounds for DynamoRealtimeStore {
    async fn presence_changed(
        &self,
        episode: EpisodeId,
        now: Timestamp,
        due_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .rounds_update(episode)
            .update_expression("SET due_until = :due, expires_at = :exp")
            .condition_expression("attribute_not_exists(due_until) OR due_until < :now")
            .expression_attribute_values(":due", s(due_until.to_string()))
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":exp", self.presence_expiry(now))
            .send()
            .await;
        applied(result)
    }

    async fn withdraw_request(
        &self,
        episode: EpisodeId,
        due_until: Timestamp,
    ) -> Result<(), StoreError> {
        let result = self
            .rounds_update(episode)
            .update_expression("REMOVE due_until")
            .condition_expression("due_until = :due")
            .expression_attribute_values(":due", s(due_until.to_string()))
            .send()
            .await;
        // Not applied: another request replaced it, and stays.
        applied(result).map(|_| ())
    }

    async fn start_round(&self, episode: EpisodeId) -> Result<RoundStarted, StoreError> {
        let out = self
            .rounds_update(episode)
            .update_expression("REMOVE due_until ADD #round :one")
            .expression_attribute_names("#round", "round")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let item = out.attributes().cloned().unwrap_or_default();
        let round = item::req_u64(&item, "round").map_err(StoreError::unavailable)?;
        Ok(RoundStarted {
            round,
            before: announced_in(Some(&item))?,
        })
    }

    async fn finish_round(
        &self,
        episode: EpisodeId,
        round: u64,
        announced: &Announced,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(announced).map_err(StoreError::unavailable)?;
        let result = self
            .rounds_update(episode)
            .update_expression("SET announced = :a")
            .condition_expression("#round = :round")
            .expression_attribute_names("#round", "round")
            .expression_attribute_values(":a", s(json))
            .expression_attribute_values(":round", n(round))
            .send()
            .await;
        applied(result)
    }
}

/// Reading presence (the feed API): the presence table, and the episodes table to tell an
/// episode nobody looked at from one that does not exist.
#[derive(Debug, Clone)]
pub struct DynamoPresenceReader {
    client: Client,
    presence: String,
    episodes: String,
}

impl DynamoPresenceReader {
    pub fn new(client: Client, presence: String, episodes: String) -> Self {
        Self {
            client,
            presence,
            episodes,
        }
    }
}

impl PresenceReader for DynamoPresenceReader {
    async fn presence(&self, episode: EpisodeId) -> Result<Vec<Presence>, StoreError> {
        presence_on(&self.client, &self.presence, episode).await
    }

    async fn presence_page(
        &self,
        episode: EpisodeId,
        limit: usize,
        after: Option<UserId>,
    ) -> Result<(Vec<Presence>, Option<UserId>), StoreError> {
        presence_page_on(
            &self.client,
            &self.presence,
            episode,
            PresenceRead::Page(limit),
            after,
        )
        .await
    }
}

impl EpisodeExistence for DynamoPresenceReader {
    async fn episode_exists(&self, episode: EpisodeId) -> Result<bool, StoreError> {
        episode_exists(&self.client, &self.episodes, episode).await
    }
}

/// Subscribing: the realtime tables, and the episodes table the subscription is checked against.
#[derive(Debug, Clone)]
pub struct DynamoSubscriber {
    store: DynamoRealtimeStore,
    episodes: String,
}

impl DynamoSubscriber {
    pub fn new(store: DynamoRealtimeStore, episodes: String) -> Self {
        Self { store, episodes }
    }
}

impl Subscribe for DynamoSubscriber {
    /// Subscribes a connection to an episode (which must exist) and counts the user present.
    async fn subscribe(
        &self,
        connection: &ConnectionId,
        open: &OpenConnection,
        episode: EpisodeId,
        now: Timestamp,
    ) -> Result<Subscribed, SubscribeError> {
        let user = &open.user;
        let ep = episode.to_string();
        let check = ConditionCheck::builder()
            .table_name(&self.episodes)
            .key("id", s(&ep))
            .condition_expression("attribute_exists(id) AND attribute_not_exists(deleted_at)")
            .build()
            .map_err(StoreError::unavailable)?;
        let follow = Update::builder()
            .table_name(&self.store.tables.connections)
            .key("connection_id", s(connection.as_str()))
            .update_expression("ADD subscriptions :ep SET last_seen = :now")
            .condition_expression(
                "attribute_exists(connection_id) AND user_id = :user AND \
                 (attribute_not_exists(subscriptions) OR size(subscriptions) < :max \
                  OR contains(subscriptions, :id))",
            )
            .expression_attribute_values(":ep", str_set([ep.clone()]))
            .expression_attribute_values(":id", s(&ep))
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":user", s(user.id.as_str()))
            .expression_attribute_values(":max", n(MAX_SUBSCRIPTIONS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(StoreError::unavailable)?;
        let mut subscription = Put::builder()
            .table_name(&self.store.tables.subscriptions)
            .item("episode_id", s(&ep))
            .item("connection_id", s(connection.as_str()))
            .item("user_id", s(user.id.as_str()))
            .item("expires_at", DynamoRealtimeStore::connection_expiry(now));
        if let Some(at) = open.token_expires_at {
            // Beside the connection id, so a broadcast knows without reading each connection.
            subscription = subscription.item(TOKEN_EXPIRES_AT, s(at.to_string()));
        }
        let subscription = subscription.build().map_err(StoreError::unavailable)?;
        let result = self
            .store
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().update(follow).build())
            .transact_items(TransactWriteItem::builder().put(subscription).build())
            .send()
            .await;
        if let Err(e) = result {
            return Err(match cancellation_reasons(&e).as_deref() {
                Some([(true, _), ..]) => SubscribeError::NoEpisode,
                // The connection is there and the user's: the bound was what failed.
                Some([_, (true, Some(old)), ..])
                    if old.contains_key("connection_id")
                        && item::opt_str(old, "user_id").ok().flatten()
                            == Some(user.id.as_str()) =>
                {
                    SubscribeError::TooMany
                }
                Some([_, (true, _), ..]) => SubscribeError::NoConnection,
                _ => SubscribeError::Store(StoreError::unavailable(e)),
            });
        }

        let before = self
            .store
            .client
            .update_item()
            .table_name(&self.store.tables.presence)
            .key("episode_id", s(&ep))
            .key("user_id", s(user.id.as_str()))
            .update_expression(
                "ADD connections :c SET user_name = :name, last_seen = :now, \
                 since = if_not_exists(since, :now), expires_at = :exp REMOVE left_at",
            )
            .expression_attribute_values(":c", str_set([connection.to_string()]))
            .expression_attribute_values(":name", s(user.name.as_str()))
            .expression_attribute_values(":now", s(now.to_string()))
            .expression_attribute_values(":exp", self.store.presence_expiry(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let before = before
            .attributes()
            .filter(|a| !a.is_empty())
            .map(presence_from)
            .transpose()?;
        let rounds = self
            .store
            .client
            .get_item()
            .table_name(&self.store.tables.presence)
            .key("episode_id", s(&ep))
            .key("user_id", s(ROUND_KEY))
            .projection_expression("announced")
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(Subscribed {
            announce: domain::realtime::announces_join(before.as_ref(), now),
            announced: announced_in(rounds.item())?,
        })
    }
}

impl EpisodeExistence for DynamoSubscriber {
    async fn episode_exists(&self, episode: EpisodeId) -> Result<bool, StoreError> {
        episode_exists(&self.store.client, &self.episodes, episode).await
    }
}

/// An episode's events, read from the events table (the outbox) for resuming clients.
#[derive(Debug, Clone)]
pub struct DynamoEventHistory {
    client: Client,
    events: String,
}

impl DynamoEventHistory {
    pub fn new(client: Client, events: String) -> Self {
        Self { client, events }
    }
}

impl EventHistory for DynamoEventHistory {
    /// The episode's events after `after`, in order, at most `limit`; true when there are more.
    async fn events_after(
        &self,
        episode: EpisodeId,
        after: EventId,
        limit: usize,
    ) -> Result<(Vec<DomainEvent>, bool), StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.events)
            .key_condition_expression("episode_id = :e AND event_id > :after")
            .expression_attribute_values(":e", s(episode.to_string()))
            .expression_attribute_values(":after", s(after.to_string()))
            .projection_expression("payload")
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let mut events = out
            .items()
            .iter()
            .map(|it| {
                let payload = item::req_str(it, "payload").map_err(StoreError::unavailable)?;
                serde_json::from_str::<DomainEvent>(payload).map_err(StoreError::unavailable)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let more = events.len() > limit;
        events.truncate(limit);
        Ok((events, more))
    }
}

const LISTENER_FIELDS: &str = "connection_id, token_expires_at";

fn listeners(items: &[Item]) -> Result<Vec<Listener>, StoreError> {
    items
        .iter()
        .map(|it| {
            Ok(Listener {
                connection: item::parse(it, "connection_id", ConnectionId::parse)?,
                token_expires_at: item::parse_opt(it, TOKEN_EXPIRES_AT, Timestamp::parse)?,
            })
        })
        .collect::<Result<_, item::CorruptItem>>()
        .map_err(StoreError::unavailable)
}
