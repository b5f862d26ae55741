//! One batch of the realtime queue. A message fails (and comes again) only when the store
//! cannot say who to post to; posts themselves fail open: a closed connection (410) is
//! forgotten, a throttled one retried with backoff, any other failure logged and counted.

use std::convert::Infallible;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::realtime::{Addressed, Listener, split_expired};
use domain::store::realtime::{ConnectionPosts, Connections, Subscriptions};
use domain::store::{DeadLetters, MessageSender, StoreError};
use domain::{ConnectionId, DomainEvent, EpisodeId, Frame, Notice, RealtimeMessage, Timestamp};
use lambda_kit::sqs::{batch_response, read_messages};
use lambda_runtime::LambdaEvent;

/// What the worker needs: connections and subscriptions (`S`), posts to connections (`P`),
/// the realtime queue for presence checks (`Q`) and its dead-letter queue (`D`).
#[derive(Debug)]
pub struct App<S, P, Q, D> {
    pub store: S,
    pub poster: P,
    pub notices: Q,
    pub dead_letters: D,
    /// Seconds between a user's last connection leaving and `presence.left`.
    pub grace: u32,
}

/// The realtime tables the worker reads and cleans up.
pub trait Store: Connections + Subscriptions + Sync {}
impl<T: Connections + Subscriptions + Sync> Store for T {}

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
        RealtimeMessage::Notice(Notice::PresenceJoined {
            episode_id,
            user,
            at,
        }) => {
            let frame = Frame::PresenceJoined {
                episode_id: *episode_id,
                user: user.clone(),
                at: *at,
            };
            to_episode(app, *episode_id, &frame.to_json(), "presence.joined").await
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
                tracing::info!(%episode_id, user_id = %user.id, "came back within the grace period");
                return Ok(());
            }
            let frame = Frame::PresenceLeft {
                episode_id: *episode_id,
                user: user.clone(),
                at: *left_at,
            };
            to_episode(app, *episode_id, &frame.to_json(), "presence.left").await
        }
        RealtimeMessage::Notice(Notice::Close { connection_id }) => {
            close(app, connection_id).await;
            Ok(())
        }
    }
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
    let frame = Frame::for_event(event);
    to_episode(app, event.episode_id, &frame, event.event_type.as_str()).await
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
    post(app, listeners, frame, what).await;
    Ok(())
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
        post(app, listeners, &frame.to_json(), "notification").await;
    }
    Ok(())
}

/// Posts one frame to many connections, then forgets those that are gone. Posting failures
/// are logged and counted, never retried through the queue (the client resumes on reconnect).
/// A connection whose token has expired gets nothing: it is closed and forgotten instead.
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
) {
    let (connections, expired) = split_expired(listeners, Timestamp::now());
    for connection in &expired {
        close(app, connection).await;
        forget(app, connection).await;
    }
    if connections.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let report = app.poster.fan_out(&connections, frame.as_bytes()).await;
    tracing::info!(
        what,
        fan_out_ms = started.elapsed().as_secs_f64() * 1000.0,
        connections = connections.len(),
        expired = expired.len(),
        sent = report.sent,
        gone = report.gone.len(),
        failed = report.failed,
        "broadcast"
    );
    for connection in report.gone {
        forget(app, &connection).await;
    }
}

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
        // The check comes back: bob did not return, so the others hear he left.
        assert!(deliver(&app, &[&sent[0].0]).await.is_empty());
        assert_eq!(frame_types(&app, &alice), ["event", "presence.left"]);
        // A second copy of the check announces nothing more.
        assert!(deliver(&app, &[&sent[0].0]).await.is_empty());
        assert_eq!(frame_types(&app, &alice).len(), 2);
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
