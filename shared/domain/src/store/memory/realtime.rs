//! Connections, subscriptions, presence and an episode's events, in memory, with the rules
//! of the DynamoDB tables (see `aws_adapters::realtime_store`); and a poster that records
//! what each connection was sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::poisoned;
use crate::actor::{Actor, UserId};
use crate::event::DomainEvent;
use crate::ids::{EpisodeId, EventId};
use crate::realtime::{
    Announced, ConnectionId, Editing, Listener, MAX_SUBSCRIPTIONS, Presence, UserRef,
    announces_join,
};
use crate::store::realtime::{
    Closed, ConnectionPosts, Connections, EventHistory, FanOut, Heartbeat, OpenConnection,
    PostOutcome, PresenceReader, PresenceRounds, RoundStarted, Subscribe, SubscribeError,
    Subscribed, Subscriptions,
};
use crate::store::{EpisodeExistence, StoreError};
use crate::time::Timestamp;

/// Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryRealtime(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    episodes: BTreeSet<EpisodeId>,
    connections: BTreeMap<ConnectionId, Conn>,
    /// (episode, connection) → the connection's token expiry.
    subscriptions: BTreeMap<(EpisodeId, ConnectionId), Option<Timestamp>>,
    presence: BTreeMap<(EpisodeId, UserId), Seen>,
    rounds: BTreeMap<EpisodeId, Rounds>,
    events: Vec<DomainEvent>,
    down: bool,
}

#[derive(Debug, Clone)]
struct Conn {
    user: UserRef,
    token_expires_at: Option<Timestamp>,
    subscriptions: BTreeSet<EpisodeId>,
}

#[derive(Debug, Clone)]
struct Seen {
    name: crate::actor::DisplayName,
    connections: BTreeSet<ConnectionId>,
    since: Option<Timestamp>,
    last_seen: Timestamp,
    left_at: Option<Timestamp>,
    editing: Option<Editing>,
}

/// An episode's presence rounds: the one asked for, the last begun, what was announced.
#[derive(Debug, Clone, Default)]
struct Rounds {
    due_until: Option<Timestamp>,
    round: u64,
    announced: Announced,
}

impl Seen {
    fn presence(&self, user: &UserId) -> Presence {
        Presence {
            user: UserRef {
                id: user.clone(),
                name: self.name.clone(),
            },
            connections: self.connections.len(),
            since: self.since,
            last_seen: self.last_seen,
            left_at: self.left_at,
            // As the adapter reads it: only while that connection is still subscribed.
            editing: self
                .editing
                .clone()
                .filter(|e| self.connections.contains(&e.connection)),
        }
    }
}

impl InMemoryRealtime {
    /// The episode is deleted.
    pub fn delete_episode(&self, id: EpisodeId) {
        if let Ok(mut s) = self.0.lock() {
            s.episodes.remove(&id);
        }
    }

    /// An episode that exists.
    pub fn add_episode(&self, id: EpisodeId) {
        if let Ok(mut s) = self.0.lock() {
            s.episodes.insert(id);
        }
    }

    /// An event of an episode, as the events table holds it.
    pub fn add_event(&self, event: DomainEvent) {
        if let Ok(mut s) = self.0.lock() {
            s.events.push(event);
        }
    }

    /// Whether the connection is still recorded.
    pub fn is_open(&self, connection: &ConnectionId) -> bool {
        self.0
            .lock()
            .is_ok_and(|s| s.connections.contains_key(connection))
    }

    /// Makes every following call fail (`true`) or work again (`false`).
    pub fn set_down(&self, down: bool) {
        if let Ok(mut s) = self.0.lock() {
            s.down = down;
        }
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        let s = self.0.lock().map_err(|_| poisoned())?;
        if s.down {
            return Err(StoreError::unavailable(std::io::Error::other(
                "realtime tables unavailable",
            )));
        }
        Ok(s)
    }
}

impl State {
    /// Removes one connection from a user's presence on an episode; when none is left, the
    /// grace period starts now.
    fn leave(
        &mut self,
        episode: EpisodeId,
        user: &UserId,
        connection: &ConnectionId,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let seen = self.presence.get_mut(&(episode, user.clone()))?;
        if !seen.connections.remove(connection) {
            return None;
        }
        seen.last_seen = now;
        if !seen.connections.is_empty() {
            return None;
        }
        seen.left_at = Some(now);
        Some(now)
    }

    fn presence_of(&self, episode: EpisodeId) -> Vec<Presence> {
        self.presence
            .iter()
            .filter(|((e, _), _)| *e == episode)
            .map(|((_, u), s)| s.presence(u))
            .collect()
    }
}

impl EpisodeExistence for InMemoryRealtime {
    async fn episode_exists(&self, episode: EpisodeId) -> Result<bool, StoreError> {
        Ok(self.state()?.episodes.contains(&episode))
    }
}

impl Connections for InMemoryRealtime {
    async fn open(
        &self,
        connection: &ConnectionId,
        actor: &Actor,
        token_expires_at: Timestamp,
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        self.state()?.connections.insert(
            connection.clone(),
            Conn {
                user: UserRef {
                    id: actor.id.clone(),
                    name: actor.name.clone(),
                },
                token_expires_at: Some(token_expires_at),
                subscriptions: BTreeSet::new(),
            },
        );
        Ok(())
    }

    async fn connection(
        &self,
        connection: &ConnectionId,
    ) -> Result<Option<OpenConnection>, StoreError> {
        Ok(self
            .state()?
            .connections
            .get(connection)
            .map(|c| OpenConnection {
                user: c.user.clone(),
                token_expires_at: c.token_expires_at,
            }))
    }

    async fn heartbeat(
        &self,
        connection: &ConnectionId,
        now: Timestamp,
    ) -> Result<Heartbeat, StoreError> {
        let mut s = self.state()?;
        let Some(conn) = s.connections.get(connection).cloned() else {
            return Ok(Heartbeat::Unknown);
        };
        if crate::realtime::token_expired(conn.token_expires_at, now) {
            return Ok(Heartbeat::Expired);
        }
        for episode in conn.subscriptions {
            if let Some(seen) = s.presence.get_mut(&(episode, conn.user.id.clone()))
                && seen.connections.contains(connection)
            {
                seen.last_seen = now;
            }
        }
        Ok(Heartbeat::Seen)
    }

    async fn close(
        &self,
        connection: &ConnectionId,
        now: Timestamp,
    ) -> Result<Option<Closed>, StoreError> {
        let mut s = self.state()?;
        let Some(conn) = s.connections.remove(connection) else {
            return Ok(None);
        };
        let mut left = Vec::new();
        for episode in conn.subscriptions {
            s.subscriptions.remove(&(episode, connection.clone()));
            if let Some(at) = s.leave(episode, &conn.user.id, connection, now) {
                left.push((episode, at));
            }
        }
        Ok(Some(Closed {
            user: conn.user,
            left,
        }))
    }

    async fn connections_of(&self, user: &UserId) -> Result<Vec<Listener>, StoreError> {
        Ok(self
            .state()?
            .connections
            .iter()
            .filter(|(_, c)| c.user.id == *user)
            .map(|(id, c)| Listener {
                connection: id.clone(),
                token_expires_at: c.token_expires_at,
            })
            .collect())
    }
}

impl Subscribe for InMemoryRealtime {
    async fn subscribe(
        &self,
        connection: &ConnectionId,
        open: &OpenConnection,
        episode: EpisodeId,
        now: Timestamp,
    ) -> Result<Subscribed, SubscribeError> {
        let mut s = self.state()?;
        if !s.episodes.contains(&episode) {
            return Err(SubscribeError::NoEpisode);
        }
        let Some(conn) = s
            .connections
            .get_mut(connection)
            .filter(|c| c.user.id == open.user.id)
        else {
            return Err(SubscribeError::NoConnection);
        };
        if conn.subscriptions.len() >= MAX_SUBSCRIPTIONS && !conn.subscriptions.contains(&episode) {
            return Err(SubscribeError::TooMany);
        }
        conn.subscriptions.insert(episode);
        s.subscriptions
            .insert((episode, connection.clone()), open.token_expires_at);
        let key = (episode, open.user.id.clone());
        let before = s.presence.get(&key).map(|p| p.presence(&open.user.id));
        let seen = s.presence.entry(key).or_insert_with(|| Seen {
            name: open.user.name.clone(),
            connections: BTreeSet::new(),
            since: None,
            last_seen: now,
            left_at: None,
            editing: None,
        });
        seen.connections.insert(connection.clone());
        seen.name = open.user.name.clone();
        seen.last_seen = now;
        seen.since = seen.since.or(Some(now));
        seen.left_at = None;
        Ok(Subscribed {
            announce: announces_join(before.as_ref(), now),
            announced: s
                .rounds
                .get(&episode)
                .map(|r| r.announced.clone())
                .unwrap_or_default(),
        })
    }
}

impl Subscriptions for InMemoryRealtime {
    async fn set_editing(
        &self,
        episode: EpisodeId,
        user: &UserId,
        connection: &ConnectionId,
        editing: Option<&Editing>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        match s.presence.get_mut(&(episode, user.clone())) {
            Some(seen) if seen.connections.contains(connection) => {
                seen.editing = editing.cloned();
                seen.last_seen = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unsubscribe(
        &self,
        connection: &ConnectionId,
        user: &UserId,
        episode: EpisodeId,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, StoreError> {
        let mut s = self.state()?;
        if let Some(conn) = s.connections.get_mut(connection) {
            conn.subscriptions.remove(&episode);
        }
        s.subscriptions.remove(&(episode, connection.clone()));
        Ok(s.leave(episode, user, connection, now))
    }

    async fn finish_leaving(
        &self,
        episode: EpisodeId,
        user: &UserId,
        left_at: Timestamp,
        _now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        match s.presence.get_mut(&(episode, user.clone())) {
            Some(seen) if seen.connections.is_empty() && seen.left_at == Some(left_at) => {
                seen.left_at = None;
                seen.since = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn subscribers(&self, episode: EpisodeId) -> Result<Vec<Listener>, StoreError> {
        Ok(self
            .state()?
            .subscriptions
            .iter()
            .filter(|((e, _), _)| *e == episode)
            .map(|((_, c), t)| Listener {
                connection: c.clone(),
                token_expires_at: *t,
            })
            .collect())
    }
}

impl PresenceReader for InMemoryRealtime {
    async fn presence(&self, episode: EpisodeId) -> Result<Vec<Presence>, StoreError> {
        Ok(self.state()?.presence_of(episode))
    }

    async fn presence_page(
        &self,
        episode: EpisodeId,
        limit: usize,
        after: Option<UserId>,
    ) -> Result<(Vec<Presence>, Option<UserId>), StoreError> {
        let all = self.state()?.presence_of(episode);
        let page: Vec<Presence> = all
            .into_iter()
            .filter(|p| after.as_ref().is_none_or(|a| p.user.id > *a))
            .take(limit.max(1))
            .collect();
        // As DynamoDB's Limit: a full page may be the last, and says so only on the next.
        let next = (page.len() == limit.max(1)).then(|| page[page.len() - 1].user.id.clone());
        Ok((page, next))
    }
}

impl PresenceRounds for InMemoryRealtime {
    async fn presence_changed(
        &self,
        episode: EpisodeId,
        now: Timestamp,
        due_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        let rounds = s.rounds.entry(episode).or_default();
        if rounds.due_until.is_some_and(|due| due >= now) {
            return Ok(false);
        }
        rounds.due_until = Some(due_until);
        Ok(true)
    }

    async fn withdraw_request(
        &self,
        episode: EpisodeId,
        due_until: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.state()?;
        if let Some(rounds) = s.rounds.get_mut(&episode)
            && rounds.due_until == Some(due_until)
        {
            rounds.due_until = None;
        }
        Ok(())
    }

    async fn start_round(&self, episode: EpisodeId) -> Result<RoundStarted, StoreError> {
        let mut s = self.state()?;
        let rounds = s.rounds.entry(episode).or_default();
        rounds.due_until = None;
        rounds.round += 1;
        Ok(RoundStarted {
            round: rounds.round,
            before: rounds.announced.clone(),
        })
    }

    async fn finish_round(
        &self,
        episode: EpisodeId,
        round: u64,
        announced: &Announced,
    ) -> Result<bool, StoreError> {
        let mut s = self.state()?;
        match s.rounds.get_mut(&episode) {
            Some(rounds) if rounds.round == round => {
                rounds.announced = announced.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl EventHistory for InMemoryRealtime {
    async fn events_after(
        &self,
        episode: EpisodeId,
        after: EventId,
        limit: usize,
    ) -> Result<(Vec<DomainEvent>, bool), StoreError> {
        let s = self.state()?;
        let mut events: Vec<DomainEvent> = s
            .events
            .iter()
            .filter(|e| e.episode_id == Some(episode) && e.id > after)
            .cloned()
            .collect();
        events.sort_by_key(|e| e.id);
        let more = events.len() > limit;
        events.truncate(limit);
        Ok((events, more))
    }
}

/// Records every post; connections marked gone answer 410, failing ones fail.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPoster(Arc<Mutex<Posts>>);

#[derive(Debug, Default)]
struct Posts {
    sent: Vec<(ConnectionId, Vec<u8>)>,
    gone: BTreeSet<ConnectionId>,
    failing: BTreeSet<ConnectionId>,
    throttled: BTreeSet<ConnectionId>,
    closed: Vec<ConnectionId>,
}

impl InMemoryPoster {
    /// The connection was closed by its client: posts answer 410.
    pub fn mark_gone(&self, connection: &ConnectionId) {
        if let Ok(mut p) = self.0.lock() {
            p.gone.insert(connection.clone());
        }
    }

    /// Posts to the connection are throttled every time (until `unthrottle`).
    pub fn mark_throttled(&self, connection: &ConnectionId) {
        if let Ok(mut p) = self.0.lock() {
            p.throttled.insert(connection.clone());
        }
    }

    pub fn unthrottle(&self, connection: &ConnectionId) {
        if let Ok(mut p) = self.0.lock() {
            p.throttled.remove(connection);
        }
    }

    /// Posts to the connection fail (not 410).
    pub fn mark_failing(&self, connection: &ConnectionId) {
        if let Ok(mut p) = self.0.lock() {
            p.failing.insert(connection.clone());
        }
    }

    /// The frames sent to a connection, as JSON text, oldest first.
    pub fn frames(&self, connection: &ConnectionId) -> Vec<String> {
        self.0
            .lock()
            .map(|p| {
                p.sent
                    .iter()
                    .filter(|(c, _)| c == connection)
                    .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Connections the server closed, in order.
    pub fn closed(&self) -> Vec<ConnectionId> {
        self.0.lock().map(|p| p.closed.clone()).unwrap_or_default()
    }
}

impl ConnectionPosts for InMemoryPoster {
    async fn post(&self, connection: &ConnectionId, data: &[u8]) -> PostOutcome {
        let Ok(mut p) = self.0.lock() else {
            return PostOutcome::Failed("poisoned".into());
        };
        if p.gone.contains(connection) {
            return PostOutcome::Gone;
        }
        if p.failing.contains(connection) {
            return PostOutcome::Failed("InternalServerError".into());
        }
        if p.throttled.contains(connection) {
            return PostOutcome::Throttled;
        }
        p.sent.push((connection.clone(), data.to_vec()));
        PostOutcome::Sent
    }

    async fn close(&self, connection: &ConnectionId) -> Result<(), String> {
        let mut p = self.0.lock().map_err(|_| "poisoned".to_owned())?;
        p.closed.push(connection.clone());
        p.gone.insert(connection.clone());
        Ok(())
    }

    async fn fan_out(&self, connections: &[ConnectionId], data: &[u8]) -> FanOut {
        let mut report = FanOut::default();
        for c in connections {
            match self.post(c, data).await {
                PostOutcome::Sent => report.sent += 1,
                PostOutcome::Gone => report.gone.push(c.clone()),
                PostOutcome::Throttled => report.throttled.push(c.clone()),
                PostOutcome::Failed(_) => report.failed += 1,
            }
        }
        report
    }
}
