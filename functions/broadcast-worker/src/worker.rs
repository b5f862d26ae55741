//! One batch of the realtime queue. A message fails (and comes again) only when the store
//! cannot say who to post to, or a repost cannot be queued; posts themselves fail open: a
//! closed connection (410) is forgotten, a throttled one retried with backoff and, if still
//! throttled, posted again later (a `repost` notice for just those connections), any other
//! failure logged and counted.

use std::convert::Infallible;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::realtime::{
    Addressed, Listener, REPOST_ATTEMPTS, REPOST_DELAY_SECONDS, presence_round, split_expired,
    viewers,
};
use domain::store::realtime::{
    ConnectionPosts, Connections, PresenceReader, PresenceRounds, Subscriptions, ask_for_round,
};
use domain::store::{DeadLetters, MessageSender, StoreError};
use domain::{ConnectionId, DomainEvent, EpisodeId, Frame, Notice, RealtimeMessage, Timestamp};
use lambda_kit::sqs::{batch_response, read_messages};
use lambda_runtime::LambdaEvent;

/// What the worker needs: connections, subscriptions and presence (`S`), posts to
/// connections (`P`), the presence queue for leave checks and rounds (`Q`) and the dead-letter
/// queue (`D`).
#[derive(Debug)]
pub struct App<S, P, Q, D> {
    pub store: S,
    pub poster: P,
    pub notices: Q,
    pub dead_letters: D,
    /// Seconds between a user's last connection leaving and their leaving being news.
    pub grace: u32,
    /// Seconds a presence round gathers changes for.
    pub window: u32,
    /// Most viewers a presence frame lists (above: the count).
    pub list_max: usize,
}

/// The realtime tables the worker reads and cleans up.
pub trait Store: Connections + Subscriptions + PresenceRounds + PresenceReader + Sync {}
impl<T: Connections + Subscriptions + PresenceRounds + PresenceReader + Sync> Store for T {}

pub async fn handle<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let (messages, mut failed) = read_messages(
        &event.payload.records,
        RealtimeMessage::parse,
        &app.dead_letters,
    )
    .await;
    for (message_id, message) in messages {
        if let Err(e) = deliver(app, &message).await {
            tracing::warn!(%message_id, error = %e, "not delivered; will retry");
            failed.push(message_id);
        }
    }
    Ok(batch_response(failed))
}

async fn deliver<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    message: &RealtimeMessage,
) -> Result<(), StoreError> {
    match message {
        RealtimeMessage::Event(event) => broadcast_event(app, event).await,
        RealtimeMessage::Notice(Notice::Notifications { items }) => notify(app, items).await,
        RealtimeMessage::Notice(Notice::PresenceJoined { episode_id, .. }) => {
            ask_for_round(&app.store, &app.notices, *episode_id, app.window).await?;
            Ok(())
        }
        RealtimeMessage::Notice(Notice::PresenceRound { episode_id }) => {
            round(app, *episode_id).await
        }
        RealtimeMessage::Notice(Notice::PresenceCheck {
            episode_id,
            user,
            left_at,
        }) => {
            let gone = app
                .store
                .finish_leaving(*episode_id, &user.id, *left_at, Timestamp::now())
                .await?;
            if !gone {
                tracing::info!(%episode_id, user_id = %user.id, "came back within the grace period (or this check ran before)");
            }
            // Asked for either way: a retry of a check whose first run ended the grace period
            // but failed to ask still gets the round (one with no news posts nothing).
            ask_for_round(&app.store, &app.notices, *episode_id, app.window).await?;
            Ok(())
        }
        RealtimeMessage::Notice(Notice::Close { connection_id }) => {
            close(app, connection_id).await;
            Ok(())
        }
        RealtimeMessage::Notice(Notice::Repost {
            listeners,
            frame,
            attempt,
        }) => send_frame(app, listeners.clone(), frame, "repost", *attempt).await,
    }
}

/// One presence round of an episode: who is viewing now against what the last round said,
/// told to every connection in one frame; nothing when there is no news, or when a later round
/// began meanwhile (it tells instead).
async fn round<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    episode: EpisodeId,
) -> Result<(), StoreError> {
    let started = app.store.start_round(episode).await?;
    let now = Timestamp::now();
    let viewing = viewers(&app.store.presence(episode).await?, now);
    let Some((news, announced)) = presence_round(
        &started.before,
        viewing,
        app.list_max,
        episode,
        started.round,
        now,
    ) else {
        tracing::info!(%episode, round = started.round, "presence round: no news");
        return Ok(());
    };
    if !app
        .store
        .finish_round(episode, started.round, &announced)
        .await?
    {
        tracing::info!(%episode, round = started.round, "presence round superseded");
        return Ok(());
    }
    // Who to tell is read after the round is recorded: a subscriber the read misses was answered
    // from this round already. If the read fails, the round is taken back, so its retry tells.
    let listeners = match app.store.subscribers(episode).await {
        Ok(l) => l,
        Err(e) => {
            let _ = app
                .store
                .finish_round(episode, started.round, &started.before)
                .await;
            return Err(e);
        }
    };
    let what = match news.frame {
        Frame::Presence { .. } => "presence",
        _ => "presence.occupancy",
    };
    // The round is recorded: a failure to queue a repost is logged, not retried (its retry
    // would find no news); the next round tells the throttled connections.
    if let Err(e) = post(app, listeners, &news.json, what).await {
        tracing::warn!(%episode, error = %e, "presence frame not reposted");
    }
    Ok(())
}

async fn broadcast_event<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    event: &DomainEvent,
) -> Result<(), StoreError> {
    // An event of no episode (the log's own) has no subscribers; none is routed here.
    let (Some(episode), Some(frame)) = (event.episode_id, Frame::for_event(event)) else {
        return Ok(());
    };
    to_episode(app, episode, &frame, event.event_type.as_str()).await
}

async fn to_episode<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    episode: EpisodeId,
    frame: &str,
    what: &str,
) -> Result<(), StoreError> {
    let listeners = app.store.subscribers(episode).await?;
    post(app, listeners, frame, what).await
}

async fn notify<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    items: &[Addressed],
) -> Result<(), StoreError> {
    for item in items {
        let listeners = app.store.connections_of(&item.recipient).await?;
        let frame = Frame::Notification {
            notification: item.notification.clone(),
        };
        post(app, listeners, &frame.to_json(), "notification").await?;
    }
    Ok(())
}

/// Posts one frame to many connections, then forgets those that are gone and queues a repost
/// for those still throttled. Other posting failures are logged and counted, never retried
/// through the queue (the client resumes on reconnect). A connection whose token has expired
/// gets nothing: it is closed and forgotten instead. Fails only if a repost cannot be queued
/// (the message comes again: the connections that got the frame get it twice, and drop it).
async fn post<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    listeners: Vec<Listener>,
    frame: &str,
    what: &str,
) -> Result<(), StoreError> {
    send_frame(app, listeners, frame, what, 0).await
}

/// The fan-out itself, for the first post (`attempt` 0) and each repost: closes and forgets
/// the expired, forgets the gone, queues the still throttled for repost `attempt + 1` (up to
/// `REPOST_ATTEMPTS`; past that their frame is dropped, logged).
async fn send_frame<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    listeners: Vec<Listener>,
    frame: &str,
    what: &str,
    attempt: u32,
) -> Result<(), StoreError> {
    let expiries: std::collections::HashMap<ConnectionId, Option<Timestamp>> = listeners
        .iter()
        .map(|l| (l.connection.clone(), l.token_expires_at))
        .collect();
    let (connections, expired) = split_expired(listeners, Timestamp::now());
    for connection in &expired {
        close(app, connection).await;
        forget(app, connection).await;
    }
    if connections.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let report = app.poster.fan_out(&connections, frame.as_bytes()).await;
    tracing::info!(
        what,
        attempt,
        fan_out_ms = started.elapsed().as_secs_f64() * 1000.0,
        connections = connections.len(),
        expired = expired.len(),
        sent = report.sent,
        gone = report.gone.len(),
        throttled = report.throttled.len(),
        failed = report.failed,
        "broadcast"
    );
    for connection in report.gone {
        forget(app, &connection).await;
    }
    if report.throttled.is_empty() {
        return Ok(());
    }
    if attempt >= REPOST_ATTEMPTS {
        tracing::warn!(
            what,
            connections = report.throttled.len(),
            "still throttled after every repost; frame dropped for them"
        );
        return Ok(());
    }
    let next = attempt + 1;
    let throttled: Vec<Listener> = report
        .throttled
        .into_iter()
        .map(|connection| Listener {
            token_expires_at: expiries.get(&connection).copied().flatten(),
            connection,
        })
        .collect();
    // A thousand listeners and a frame (at most 32 KB) keep a notice far under SQS's 256 KiB.
    for chunk in throttled.chunks(REPOST_CHUNK) {
        let repost = Notice::Repost {
            listeners: chunk.to_vec(),
            frame: frame.to_owned(),
            attempt: next,
        };
        app.notices
            .send(repost.to_body(), REPOST_DELAY_SECONDS * next)
            .await?;
    }
    Ok(())
}

/// Connections per repost notice.
const REPOST_CHUNK: usize = 1000;

/// Closes a connection whose token expired (the client reconnects with a fresh token).
async fn close<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    connection: &ConnectionId,
) {
    match app.poster.close(connection).await {
        Ok(()) => tracing::info!(%connection, "expired connection closed"),
        Err(reason) => tracing::warn!(%connection, %reason, "expired connection not closed"),
    }
}

/// A connection found gone: remove exactly it, and start the grace period wherever it was
/// its user's last connection.
async fn forget<
    S: Store,
    P: ConnectionPosts + Sync,
    Q: MessageSender + Sync,
    D: DeadLetters + Sync,
>(
    app: &App<S, P, Q, D>,
    connection: &ConnectionId,
) {
    let now = Timestamp::now();
    match app.store.close(connection, now).await {
        Ok(Some(closed)) => {
            for (episode_id, left_at) in closed.left {
                let notice = Notice::PresenceCheck {
                    episode_id,
                    user: closed.user.clone(),
                    left_at,
                };
                if let Err(e) = app.notices.send(notice.to_body(), app.grace).await {
                    tracing::warn!(%episode_id, error = %e, "presence check not scheduled");
                }
            }
            tracing::info!(%connection, "gone connection forgotten");
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(%connection, error = %e, "gone connection not forgotten; its TTL will")
        }
    }
}

#[cfg(test)]
mod tests {
    //! The worker through `handle`, with the SQS fixture from `events/broadcast-worker` and
    //! the in-memory ports: success, duplicate delivery, poison, partial failure, clean-up.

    use domain::realtime::UserRef;
    use domain::store::memory::{
        InMemoryDeadLetters, InMemoryPoster, InMemoryQueue, InMemoryRealtime,
    };
    use domain::store::realtime::{OpenConnection, Subscribe};
    use domain::{Actor, DisplayName, Role, UserId};
    use lambda_kit::fixture::{failed, sqs_event, sqs_invocation};

    use super::*;

    const FIXTURE: &str = include_str!("../../../events/broadcast-worker/episode-updated.json");
    const EPISODE: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

    type TestApp = App<InMemoryRealtime, InMemoryPoster, InMemoryQueue, InMemoryDeadLetters>;

    fn app() -> TestApp {
        let store = InMemoryRealtime::default();
        store.add_episode(episode());
        App {
            store,
            poster: InMemoryPoster::default(),
            notices: InMemoryQueue::default(),
            dead_letters: InMemoryDeadLetters::default(),
            grace: 2,
            window: 1,
            list_max: 3,
        }
    }

    fn episode() -> EpisodeId {
        EpisodeId::parse(EPISODE).unwrap()
    }

    fn actor(user: &str) -> Actor {
        Actor {
            id: UserId::parse(user).unwrap(),
            name: DisplayName::new(user),
            role: Role::Editor,
        }
    }

    /// `user`'s connection `id`, its token good for `ttl` seconds, following `episodes`.
    async fn connect(
        app: &TestApp,
        id: &str,
        user: &str,
        ttl: i64,
        episodes: &[EpisodeId],
    ) -> ConnectionId {
        let connection = ConnectionId::parse(id).unwrap();
        let now = Timestamp::now();
        let a = actor(user);
        app.store
            .open(&connection, &a, now.plus_seconds(ttl), now)
            .await
            .unwrap();
        let open = OpenConnection {
            user: UserRef {
                id: a.id,
                name: a.name,
            },
            token_expires_at: Some(now.plus_seconds(ttl)),
        };
        for e in episodes {
            app.store.add_episode(*e);
            app.store
                .subscribe(&connection, &open, *e, now)
                .await
                .unwrap();
        }
        connection
    }

    async fn deliver(app: &TestApp, bodies: &[&str]) -> Vec<String> {
        let event = sqs_invocation(FIXTURE, bodies).unwrap();
        failed(handle(app, event).await.unwrap())
    }

    fn updated() -> String {
        sqs_event(FIXTURE).unwrap().records[0].body.clone().unwrap()
    }

    fn frame_types(app: &TestApp, c: &ConnectionId) -> Vec<String> {
        app.poster
            .frames(c)
            .iter()
            .map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).unwrap();
                v["type"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }

    /// The repost notices queued so far, with their delays.
    fn reposts(app: &TestApp) -> Vec<(Vec<ConnectionId>, u32, u32, String)> {
        app.notices
            .sent()
            .into_iter()
            .filter_map(|(body, delay)| match RealtimeMessage::parse(&body) {
                Ok(RealtimeMessage::Notice(Notice::Repost {
                    listeners, attempt, ..
                })) => Some((
                    listeners.into_iter().map(|l| l.connection).collect(),
                    attempt,
                    delay,
                    body,
                )),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_connection_still_throttled_gets_its_frame_again_later_and_only_it() {
        let app = app();
        let alice = connect(&app, "alice-1=", "alice", 3600, &[episode()]).await;
        let bob = connect(&app, "bob-1=", "bob", 3600, &[episode()]).await;
        app.poster.mark_throttled(&bob);
        assert!(deliver(&app, &[&updated()]).await.is_empty());
        assert_eq!(frame_types(&app, &alice), ["event"]);
        assert!(frame_types(&app, &bob).is_empty());
        let [(to, attempt, delay, body)] = reposts(&app).try_into().unwrap();
        assert_eq!(
            (to, attempt, delay),
            (vec![bob.clone()], 1, REPOST_DELAY_SECONDS)
        );

        // The throttling is over by the time the repost comes: bob gets the frame, alice
        // nothing more, and nothing is queued again.
        app.poster.unthrottle(&bob);
        assert!(deliver(&app, &[&body]).await.is_empty());
        assert_eq!(frame_types(&app, &bob), ["event"]);
        assert_eq!(app.poster.frames(&bob), app.poster.frames(&alice));
        assert_eq!(frame_types(&app, &alice), ["event"]);
        assert_eq!(reposts(&app).len(), 1);
    }

    #[tokio::test]
    async fn reposts_back_off_and_stop_after_their_attempts() {
        let app = app();
        let bob = connect(&app, "bob-1=", "bob", 3600, &[episode()]).await;
        app.poster.mark_throttled(&bob);
        assert!(deliver(&app, &[&updated()]).await.is_empty());
        for attempt in 1..=REPOST_ATTEMPTS {
            let (_, got, delay, body) = reposts(&app).pop().unwrap();
            assert_eq!((got, delay), (attempt, REPOST_DELAY_SECONDS * attempt));
            assert!(deliver(&app, &[&body]).await.is_empty());
        }
        assert_eq!(
            reposts(&app).len() as u32,
            REPOST_ATTEMPTS,
            "none after the last"
        );
        assert!(frame_types(&app, &bob).is_empty());
    }

    #[tokio::test]
    async fn a_repost_skips_a_connection_whose_token_expired_meanwhile() {
        let app = app();
        let bob = connect(&app, "bob-1=", "bob", 3600, &[episode()]).await;
        app.poster.mark_throttled(&bob);
        assert!(deliver(&app, &[&updated()]).await.is_empty());
        let (_, _, _, body) = reposts(&app).pop().unwrap();
        // The repost as it would be had bob's token expired during the delay.
        let mut notice: serde_json::Value = serde_json::from_str(&body).unwrap();
        notice["listeners"][0]["token_expires_at"] =
            serde_json::json!(Timestamp::now().plus_seconds(-1));
        app.poster.unthrottle(&bob);
        assert!(deliver(&app, &[&notice.to_string()]).await.is_empty());
        assert!(
            frame_types(&app, &bob).is_empty(),
            "nothing after its token expired"
        );
        assert_eq!(app.poster.closed(), [bob]);
    }

    #[tokio::test]
    async fn an_event_whose_repost_cannot_be_queued_comes_again() {
        let app = app();
        let bob = connect(&app, "bob-1=", "bob", 3600, &[episode()]).await;
        app.poster.mark_throttled(&bob);
        app.notices.set_down(true);
        assert_eq!(
            deliver(&app, &[&updated()]).await.len(),
            1,
            "the message is retried"
        );
    }

    #[tokio::test]
    async fn an_event_goes_to_every_subscriber_of_its_episode_once() {
        let app = app();
        let alice = connect(&app, "alice-1=", "alice", 3600, &[episode()]).await;
        let bob = connect(&app, "bob-1=", "bob", 3600, &[episode()]).await;
        let elsewhere = connect(&app, "carol-1=", "carol", 3600, &[EpisodeId::new()]).await;
        let body = updated();
        assert!(deliver(&app, &[&body, &body]).await.is_empty());
        assert_eq!(frame_types(&app, &alice), ["event"]);
        assert_eq!(frame_types(&app, &bob), ["event"]);
        assert!(app.poster.frames(&elsewhere).is_empty());
        let frame: serde_json::Value = serde_json::from_str(&app.poster.frames(&bob)[0]).unwrap();
        assert_eq!(frame["event"]["type"], "episode.updated");
    }

    #[tokio::test]
    async fn a_gone_connection_is_forgotten_and_its_user_leaves_after_the_grace_period() {
        let app = app();
        let alice = connect(&app, "alice-1=", "alice", 3600, &[episode()]).await;
        let bob = connect(&app, "bob-1=", "bob", 3600, &[episode()]).await;
        app.poster.mark_gone(&bob);
        assert!(deliver(&app, &[&updated()]).await.is_empty());
        assert!(!app.store.is_open(&bob), "forgotten");
        let sent = app.notices.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1, 2, "after the grace period");
        // The check comes back: bob did not return, so a presence round is asked for, a
        // window later; it tells alice who is there now.
        assert!(deliver(&app, &[&sent[0].0]).await.is_empty());
        let sent = app.notices.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].1, 1, "a window later");
        assert!(deliver(&app, &[&sent[1].0]).await.is_empty());
        assert_eq!(frame_types(&app, &alice), ["event", "presence"]);
        let frame = last_frame(&app, &alice);
        assert_eq!(frame["viewers"].as_array().unwrap().len(), 1);
        // A second copy of the check, or of the round, announces nothing more.
        assert!(deliver(&app, &[&sent[0].0, &sent[1].0]).await.is_empty());
        assert_eq!(frame_types(&app, &alice).len(), 2);
    }

    fn last_frame(app: &TestApp, c: &ConnectionId) -> serde_json::Value {
        serde_json::from_str(app.poster.frames(c).last().unwrap()).unwrap()
    }

    /// `user` opens a connection and subscribes, and the change asks for a round as ws-api's
    /// subscribe does.
    async fn join(app: &TestApp, user: &str) -> ConnectionId {
        let c = connect(app, &format!("{user}-1="), user, 3600, &[episode()]).await;
        ask_for_round(&app.store, &app.notices, episode(), app.window)
            .await
            .unwrap();
        c
    }

    fn rounds_asked(app: &TestApp) -> Vec<String> {
        app.notices
            .sent()
            .into_iter()
            .filter(|(body, _)| body.contains("presence_round"))
            .map(|(body, _)| body)
            .collect()
    }

    #[tokio::test]
    async fn joins_within_a_window_reach_each_connection_as_one_frame() {
        let app = app();
        let mut connections = Vec::new();
        for user in ["ann", "ben", "cat"] {
            connections.push(join(&app, user).await);
        }
        let asked = rounds_asked(&app);
        assert_eq!(asked.len(), 1, "one round for the window's three joins");
        // Delivered twice (SQS is at least once): the second finds no news.
        assert!(deliver(&app, &[&asked[0], &asked[0]]).await.is_empty());
        for c in &connections {
            assert_eq!(frame_types(&app, c), ["presence"], "{c}");
        }
        let frame = last_frame(&app, &connections[0]);
        assert_eq!(frame["count"], 3);
        let joined: Vec<&str> = frame["joined"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap())
            .collect();
        assert_eq!(joined, ["ann", "ben", "cat"]);
        let first_round = frame["round"].as_u64().unwrap();

        // The round has begun: the next change asks for the next one, which tells the diff.
        // ben's tab closes; after the grace period his check finds him gone.
        let ben = UserId::parse("ben").unwrap();
        let left_at = app
            .store
            .unsubscribe(&connections[1], &ben, episode(), Timestamp::now())
            .await
            .unwrap()
            .expect("his last connection there");
        let check = Notice::PresenceCheck {
            episode_id: episode(),
            user: UserRef {
                id: ben,
                name: DisplayName::new("ben"),
            },
            left_at,
        };
        assert!(deliver(&app, &[&check.to_body()]).await.is_empty());
        let asked = rounds_asked(&app);
        assert_eq!(asked.len(), 2);
        assert!(deliver(&app, &[&asked[1]]).await.is_empty());
        let frame = last_frame(&app, &connections[0]);
        assert_eq!(frame["type"], "presence");
        assert_eq!(frame["count"], 2);
        assert_eq!(frame["joined"], serde_json::json!([]));
        assert_eq!(frame["left"][0]["id"], "ben");
        assert!(frame["round"].as_u64().unwrap() > first_round);
        assert_eq!(
            app.poster.frames(&connections[1]).len(),
            1,
            "ben no longer follows it"
        );
    }

    #[tokio::test]
    async fn above_the_list_limit_frames_carry_the_count() {
        let app = app();
        let mut connections = Vec::new();
        for user in ["ann", "ben", "cat", "dan", "eve"] {
            connections.push(join(&app, user).await);
        }
        let asked = rounds_asked(&app);
        assert!(deliver(&app, &[&asked[0]]).await.is_empty());
        for c in &connections {
            assert_eq!(frame_types(&app, c), ["presence.occupancy"], "{c}");
        }
        let frame = last_frame(&app, &connections[4]);
        assert_eq!(frame["count"], 5);
        assert_eq!(frame["href"], format!("/episodes/{EPISODE}/presence"));
        // One more: a new count. The same count again: no news.
        connections.push(join(&app, "fay").await);
        let asked = rounds_asked(&app);
        assert!(deliver(&app, &[&asked[1]]).await.is_empty());
        assert_eq!(last_frame(&app, &connections[0])["count"], 6);
        assert!(deliver(&app, &[&asked[1]]).await.is_empty());
        assert_eq!(app.poster.frames(&connections[0]).len(), 2);
    }

    #[tokio::test]
    async fn a_connection_whose_token_expired_is_closed_not_posted_to() {
        let app = app();
        let stale = connect(&app, "alice-1=", "alice", -1, &[episode()]).await;
        let fresh = connect(&app, "bob-1=", "bob", 3600, &[episode()]).await;
        assert!(deliver(&app, &[&updated()]).await.is_empty());
        assert!(app.poster.frames(&stale).is_empty());
        assert_eq!(app.poster.closed(), std::slice::from_ref(&stale));
        assert!(!app.store.is_open(&stale));
        assert_eq!(frame_types(&app, &fresh), ["event"]);
        // Its user left by it: the check after the grace period is scheduled.
        assert_eq!(app.notices.sent().len(), 1);
    }

    #[tokio::test]
    async fn notifications_go_to_their_recipients_connections() {
        let app = app();
        let bob = connect(&app, "bob-1=", "bob", 3600, &[]).await;
        let bob_phone = connect(&app, "bob-2=", "bob", 3600, &[]).await;
        let alice = connect(&app, "alice-1=", "alice", 3600, &[]).await;
        let notice = Notice::Notifications {
            items: vec![Addressed {
                recipient: UserId::parse("bob").unwrap(),
                notification: serde_json::json!({ "id": "n1", "summary": "S2E4 was deleted" }),
            }],
        };
        assert!(deliver(&app, &[&notice.to_body()]).await.is_empty());
        assert_eq!(frame_types(&app, &bob), ["notification"]);
        assert_eq!(frame_types(&app, &bob_phone), ["notification"]);
        assert!(app.poster.frames(&alice).is_empty());
    }

    #[tokio::test]
    async fn poison_is_parked_and_an_outage_fails_only_its_message() {
        let app = app();
        let alice = connect(&app, "alice-1=", "alice", 3600, &[episode()]).await;
        assert!(
            deliver(&app, &["{", r#"{"kind": "nonsense"}"#])
                .await
                .is_empty()
        );
        assert_eq!(app.dead_letters.parked().len(), 2);
        // A failing post is counted, not retried; a store outage is retried.
        let failing = connect(&app, "bob-1=", "bob", 3600, &[episode()]).await;
        app.poster.mark_failing(&failing);
        assert!(deliver(&app, &[&updated()]).await.is_empty());
        assert!(
            app.store.is_open(&failing),
            "a failed post is not a gone connection"
        );
        app.store.set_down(true);
        let close = Notice::Close {
            connection_id: alice.clone(),
        };
        let failed = deliver(&app, &[&updated(), &close.to_body()]).await;
        assert_eq!(
            failed,
            ["m0"],
            "who to post to is unknown; closing needs no store"
        );
        assert_eq!(app.poster.closed(), std::slice::from_ref(&alice));
        app.store.set_down(false);
        assert!(deliver(&app, &[&updated()]).await.is_empty());
    }
}
