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
