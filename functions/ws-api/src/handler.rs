//! One WebSocket event in, one answer out: the `$connect` verdict, or the frame that answers a
//! client message. Tokens are never logged; every line names the connection.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use domain::realtime::{
    ClientMessage, EditedField, Editing, MAX_FRAME_BYTES, RESUME_MAX_EVENTS, Viewer,
};
use domain::store::realtime::{
    Connections, EventHistory, Heartbeat, OpenConnection, PresenceRounds, Subscribe,
    SubscribeError, Subscriptions, ask_for_round,
};
use domain::store::{EpisodeExistence, MessageSender};
use domain::{ConnectionId, EpisodeId, EventId, Frame, Notice, Timestamp};
use http::HeaderValue;
use jwt_auth::{Fetcher, KeySource, Verifier, VerifyError};
use lambda_kit::AwsCallCounter;
use tracing::Instrument;

use crate::handshake::read_offer;

/// What the handler needs: connections, subscriptions and presence rounds (`S`), subscribing
/// to an episode that must exist (`B`), an episode's events for resuming (`H`), the presence
/// queue (`Q`: rounds, leave checks, closes), and the issuer's keys for `$connect` (`K`: its
/// JWKS, a test issuer in tests).
#[derive(Debug)]
pub struct App<S, B, H, Q, K = Fetcher> {
    pub store: S,
    pub subscriber: B,
    pub history: H,
    pub notices: Q,
    pub verifier: Verifier<K>,
    /// How long after a user's last connection leaves before their leaving is news.
    pub grace: Duration,
    /// Seconds a presence round gathers joins and leaves for.
    pub window: u32,
    /// How long an `editing` holds without being sent again.
    pub editing_seconds: u32,
    pub calls: AwsCallCounter,
}

/// The realtime tables the handler reads and writes.
pub trait Store: Connections + Subscriptions + PresenceRounds + Sync {}
impl<T: Connections + Subscriptions + PresenceRounds + Sync> Store for T {}

/// Subscribing, checked against the episodes.
pub trait Subscriber: Subscribe + EpisodeExistence + Sync {}
impl<T: Subscribe + EpisodeExistence + Sync> Subscriber for T {}

fn response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut r = ApiGatewayProxyResponse::default();
    r.status_code = status;
    r.body = body.map(Body::Text);
    r
}

fn frame(f: &Frame) -> ApiGatewayProxyResponse {
    response(200, Some(f.to_json()))
}

pub async fn handle<
    S: Store,
    B: Subscriber,
    H: EventHistory + Sync,
    Q: MessageSender + Sync,
    K: KeySource + Sync,
>(
    app: &App<S, B, H, Q, K>,
    req: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse, Infallible> {
    let ctx = &req.request_context;
    let event_type = ctx.event_type.clone().unwrap_or_default();
    let route = ctx.route_key.clone().unwrap_or_default();
    let Some(connection) = ctx
        .connection_id
        .as_deref()
        .and_then(|c| ConnectionId::parse(c).ok())
    else {
        tracing::error!(%event_type, "event without a valid connection id");
        return Ok(response(400, None));
    };
    let span = tracing::info_span!(
        "ws",
        %connection,
        route = %route,
        request_id = ctx.request_id.as_deref().unwrap_or_default()
    );
    let started = Instant::now();
    app.calls.take();
    let answer = async {
        match event_type.as_str() {
            "CONNECT" => app.connect(&connection, &req).await,
            "DISCONNECT" => app.disconnect(&connection).await,
            _ => {
                app.message(&connection, req.body.as_deref().unwrap_or_default())
                    .await
            }
        }
    }
    .instrument(span.clone())
    .await;
    let spent = app.calls.take();
    span.in_scope(|| {
        tracing::info!(
            status = answer.status_code,
            dynamodb_calls = spent.dynamodb,
            dynamodb_read_units = spent.read_units,
            dynamodb_write_units = spent.write_units,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "ws event handled"
        );
    });
    Ok(answer)
}

/// What the handler does for each kind of event, over one set of ports.
impl<S: Store, B: Subscriber, H: EventHistory + Sync, Q: MessageSender + Sync, K: KeySource + Sync>
    App<S, B, H, Q, K>
{
    async fn connect(
        &self,
        connection: &ConnectionId,
        req: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let offer = read_offer(&req.headers, req.query_string_parameters.first("token"));
        let Some(token) = offer.token else {
            tracing::info!("refused: no token");
            return response(401, None);
        };
        let now = Timestamp::now();
        let verified = match self.verifier.verify(&token, now.unix_seconds()).await {
            Ok(v) => v,
            Err(VerifyError::Token(e)) => {
                tracing::info!(reason = %e, "refused: bad token");
                return response(401, None);
            }
            Err(e @ VerifyError::Keys(_)) => {
                tracing::error!(error = %e, "cannot verify tokens");
                return response(500, None);
            }
        };
        let roles = lambda_kit::RoleSource::configured();
        let actor = match lambda_kit::identity::actor_from_claims(&verified.claims, roles) {
            Ok(a) => a,
            Err(_) => {
                tracing::info!("refused: the token names no usable subject");
                return response(403, None);
            }
        };
        // A connection does not outlive its token: past `exp`, messages are refused and the
        // connection is closed (the client reconnects with a fresh token and resumes).
        let Some(token_expires_at) = Timestamp::from_unix_seconds(verified.expires_at) else {
            tracing::info!("refused: the token's expiry is out of range");
            return response(401, None);
        };
        if let Err(e) = self
            .store
            .open(connection, &actor, token_expires_at, now)
            .await
        {
            tracing::error!(error = %e, "connection not recorded");
            return response(500, None);
        }
        tracing::info!(user_id = %actor.id, "connected");
        accepted(offer.echo)
    }

    async fn disconnect(&self, connection: &ConnectionId) -> ApiGatewayProxyResponse {
        let now = Timestamp::now();
        match self.store.close(connection, now).await {
            Ok(Some(closed)) => {
                tracing::info!(user_id = %closed.user.id, left = closed.left.len(), "disconnected");
                for (episode, left_at) in closed.left {
                    self.schedule_leave_check(episode, closed.user.clone(), left_at)
                        .await;
                }
            }
            Ok(None) => tracing::info!("disconnected (already forgotten)"),
            // Best effort: the connection's TTL, and 410 Gone at the next post, clean up the rest.
            Err(e) => tracing::warn!(error = %e, "disconnect clean-up failed"),
        }
        response(200, None)
    }

    async fn schedule_leave_check(
        &self,
        episode_id: EpisodeId,
        user: domain::UserRef,
        left_at: Timestamp,
    ) {
        let notice = Notice::PresenceCheck {
            episode_id,
            user,
            left_at,
        };
        let delay = u32::try_from(self.grace.as_secs()).unwrap_or(900);
        if let Err(e) = self.notices.send(notice.to_body(), delay).await {
            tracing::warn!(%episode_id, error = %e, "presence check not scheduled");
        }
    }

    async fn message(&self, connection: &ConnectionId, body: &str) -> ApiGatewayProxyResponse {
        let msg = match ClientMessage::parse(body) {
            Ok(m) => m,
            Err(e) => {
                tracing::info!(error = %e, "bad message");
                let status = match e {
                    domain::realtime::MessageError::Invalid { .. } => 422,
                    _ => 400,
                };
                return frame(&Frame::error(status, e.to_string(), None));
            }
        };
        let now = Timestamp::now();
        let answer = match msg {
            ClientMessage::Ping => self.ping(connection, now).await,
            ClientMessage::Subscribe { episode_id } => {
                match self.open_connection(connection, "subscribe", now).await {
                    Ok(open) => self.subscribe(connection, &open, episode_id, now).await,
                    Err(refusal) => refusal,
                }
            }
            ClientMessage::Unsubscribe { episode_id } => {
                match self.open_connection(connection, "unsubscribe", now).await {
                    Ok(open) => {
                        self.unsubscribe(connection, open.user, episode_id, now)
                            .await
                    }
                    Err(refusal) => refusal,
                }
            }
            ClientMessage::Editing { episode_id, field } => {
                match self.open_connection(connection, "editing", now).await {
                    Ok(open) => {
                        self.editing(connection, &open, episode_id, Some(field), now)
                            .await
                    }
                    Err(refusal) => refusal,
                }
            }
            ClientMessage::Idle { episode_id } => {
                match self.open_connection(connection, "idle", now).await {
                    Ok(open) => self.editing(connection, &open, episode_id, None, now).await,
                    Err(refusal) => refusal,
                }
            }
            ClientMessage::Resume { episode_id, after } => {
                match self.open_connection(connection, "resume", now).await {
                    Ok(_) => self.resume(episode_id, after).await,
                    Err(refusal) => refusal,
                }
            }
        };
        frame(&answer)
    }

    /// The connection a message came on, if it is known and its token still good; otherwise the
    /// frame that refuses the message (an expired connection is closed and forgotten first).
    async fn open_connection(
        &self,
        connection: &ConnectionId,
        action: &str,
        now: Timestamp,
    ) -> Result<OpenConnection, Frame> {
        match self.store.connection(connection).await {
            Ok(Some(open)) if open.expired(now) => Err(self.expire(connection, action, now).await),
            Ok(Some(open)) => Ok(open),
            Ok(None) => Err(unknown_connection(action)),
            Err(e) => Err(unavailable(action, &e)),
        }
    }

    /// The connection's token has expired: forget the connection (its presence too, as a
    /// disconnect would), have the broadcaster close the socket once this answer is out, and say
    /// why.
    async fn expire(&self, connection: &ConnectionId, action: &str, now: Timestamp) -> Frame {
        match self.store.close(connection, now).await {
            Ok(Some(closed)) => {
                tracing::info!(user_id = %closed.user.id, "token expired: connection forgotten");
                for (episode, left_at) in closed.left {
                    self.schedule_leave_check(episode, closed.user.clone(), left_at)
                        .await;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "expired connection not forgotten; its TTL will"),
        }
        let close = Notice::Close {
            connection_id: connection.clone(),
        };
        // A second's delay: the error frame below goes out first.
        if let Err(e) = self.notices.send(close.to_body(), 1).await {
            tracing::warn!(error = %e, "close of the expired connection not scheduled");
        }
        token_expired(action)
    }

    async fn ping(&self, connection: &ConnectionId, now: Timestamp) -> Frame {
        match self.store.heartbeat(connection, now).await {
            Ok(Heartbeat::Seen) => Frame::Pong { at: now },
            Ok(Heartbeat::Unknown) => unknown_connection("ping"),
            Ok(Heartbeat::Expired) => self.expire(connection, "ping", now).await,
            Err(e) => unavailable("ping", &e),
        }
    }

    async fn subscribe(
        &self,
        connection: &ConnectionId,
        open: &OpenConnection,
        episode_id: EpisodeId,
        now: Timestamp,
    ) -> Frame {
        let user = &open.user;
        match self
            .subscriber
            .subscribe(connection, open, episode_id, now)
            .await
        {
            Ok(done) => {
                // News for the others, in the episode's next presence round.
                if done.announce
                    && let Err(e) =
                        ask_for_round(&self.store, &self.notices, episode_id, self.window).await
                {
                    tracing::warn!(%episode_id, error = %e, "presence round not asked for");
                }
                tracing::info!(%episode_id, user_id = %user.id, announced = done.announce, "subscribed");
                let me = Viewer {
                    id: user.id.clone(),
                    name: user.name.clone(),
                    since: now,
                    last_seen: now,
                    editing: None,
                };
                done.announced.subscribed(episode_id, me, done.announce)
            }
            Err(SubscribeError::NoEpisode) => Frame::error(
                404,
                format!("episode {episode_id} does not exist"),
                Some("subscribe"),
            ),
            Err(SubscribeError::NoConnection) => unknown_connection("subscribe"),
            Err(e @ SubscribeError::TooMany) => Frame::error(409, e.to_string(), Some("subscribe")),
            Err(SubscribeError::Store(e)) => unavailable("subscribe", &e),
        }
    }

    /// What the user is editing on the episode (`None`: `idle`), held on this connection's
    /// presence until `editing_seconds` from now. The others hear it in the episode's next
    /// presence round; a round is also scheduled for when it lapses, so that a person who went
    /// quiet is seen to stop.
    async fn editing(
        &self,
        connection: &ConnectionId,
        open: &OpenConnection,
        episode_id: EpisodeId,
        field: Option<EditedField>,
        now: Timestamp,
    ) -> Frame {
        let action = if field.is_some() { "editing" } else { "idle" };
        let hold = i64::from(self.editing_seconds);
        let editing = field.map(|field| Editing {
            field,
            connection: connection.clone(),
            until: now.plus_seconds(hold),
        });
        match self
            .store
            .set_editing(episode_id, &open.user.id, connection, editing.as_ref(), now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Frame::error(
                    409,
                    format!("subscribe to episode {episode_id} first"),
                    Some(action),
                );
            }
            Err(e) => return unavailable(action, &e),
        }
        if let Err(e) = ask_for_round(&self.store, &self.notices, episode_id, self.window).await {
            tracing::warn!(%episode_id, error = %e, "presence round not asked for");
        }
        if editing.is_some() {
            let lapse = Notice::PresenceRound { episode_id };
            let delay = self.editing_seconds.saturating_add(1).min(900);
            if let Err(e) = self.notices.send(lapse.to_body(), delay).await {
                tracing::warn!(%episode_id, error = %e, "editing lapse round not scheduled");
            }
        }
        tracing::info!(%episode_id, user_id = %open.user.id, field = field.map(EditedField::as_str), "editing");
        Frame::Editing {
            episode_id,
            field,
            until: editing.map(|e| e.until),
        }
    }

    async fn unsubscribe(
        &self,
        connection: &ConnectionId,
        user: domain::UserRef,
        episode_id: EpisodeId,
        now: Timestamp,
    ) -> Frame {
        match self
            .store
            .unsubscribe(connection, &user.id, episode_id, now)
            .await
        {
            Ok(left) => {
                if let Some(left_at) = left {
                    self.schedule_leave_check(episode_id, user, left_at).await;
                }
                Frame::Unsubscribed { episode_id }
            }
            Err(e) => unavailable("unsubscribe", &e),
        }
    }

    async fn resume(&self, episode_id: EpisodeId, after: EventId) -> Frame {
        let (mut events, mut more) = match self
            .history
            .events_after(episode_id, after, RESUME_MAX_EVENTS)
            .await
        {
            Ok(found) => found,
            Err(e) => return unavailable("resume", &e),
        };
        if events.is_empty() {
            match self.subscriber.episode_exists(episode_id).await {
                Ok(false) => {
                    return Frame::error(
                        404,
                        format!("episode {episode_id} does not exist"),
                        Some("resume"),
                    );
                }
                Ok(true) => {}
                Err(e) => return unavailable("resume", &e),
            }
        }
        // Within one frame: drop events from the end (the client asks again) until it fits.
        loop {
            let answer = Frame::Resumed {
                episode_id,
                after,
                events: events.clone(),
                more,
            };
            if answer.to_json().len() <= MAX_FRAME_BYTES {
                return answer;
            }
            if events.len() == 1 {
                // One event too large for any frame: its reference; resume after it next.
                return Frame::EventRef {
                    episode_id,
                    event_id: events[0].id,
                    event_type: events[0].event_type,
                    href: format!("/episodes/{episode_id}/activity"),
                };
            }
            events.truncate(events.len() / 2);
            more = true;
        }
    }
}

/// The `$connect` answer that accepts the handshake. A browser that offered subprotocols fails
/// the handshake unless one comes back, so ours is echoed when offered.
fn accepted(echo: Option<&'static str>) -> ApiGatewayProxyResponse {
    let mut ok = response(200, None);
    if let Some(protocol) = echo {
        ok.headers
            .insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    }
    ok
}

fn unavailable(action: &str, e: &dyn std::fmt::Display) -> Frame {
    tracing::error!(error = %e, action, "store unavailable");
    Frame::error(500, "temporarily unavailable; try again", Some(action))
}

/// The answer on a connection whose token has expired.
pub fn token_expired(action: &str) -> Frame {
    Frame::error(
        401,
        "the token has expired: reconnect with a fresh token, then resume",
        Some(action),
    )
}

fn unknown_connection(action: &str) -> Frame {
    Frame::error(
        401,
        "this connection is not known (expired or closed); reconnect",
        Some(action),
    )
}

#[cfg(test)]
mod tests {
    //! `handle` driven with the recorded WebSocket events from `events/ws-api`, tokens from a
    //! test issuer and the in-memory ports: `$connect`'s verdicts, each message's answer and
    //! refusals, and `$disconnect`.

    use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
    use domain::store::memory::{InMemoryQueue, InMemoryRealtime};
    use domain::{DomainEvent, EventType};
    use jwt_auth::Expectations;
    use jwt_auth::testing::TestIssuer;
    use serde_json::{Value, json};

    use super::*;
    use crate::handshake::PROTOCOL;

    const CONNECTION: &str = "UZQ9xeSvoAMCJnQ=";
    const EPISODE: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";
    const ISSUER: &str = "https://issuer.example.com";
    const AUDIENCE: &str = "episodes-console";

    use domain::realtime::HEARTBEAT_SECONDS;

    type TestApp =
        App<InMemoryRealtime, InMemoryRealtime, InMemoryRealtime, InMemoryQueue, TestIssuer>;

    fn app() -> TestApp {
        let realtime = InMemoryRealtime::default();
        realtime.add_episode(episode());
        App {
            store: realtime.clone(),
            subscriber: realtime.clone(),
            history: realtime,
            notices: InMemoryQueue::default(),
            verifier: Verifier::with_source(
                TestIssuer::default(),
                Expectations {
                    issuer: ISSUER.to_owned(),
                    audience: AUDIENCE.to_owned(),
                    leeway_seconds: 0,
                },
            ),
            grace: Duration::from_secs(30),
            window: 1,
            editing_seconds: 30,
            calls: AwsCallCounter::default(),
        }
    }

    fn episode() -> EpisodeId {
        EpisodeId::parse(EPISODE).unwrap()
    }

    fn connection() -> ConnectionId {
        ConnectionId::parse(CONNECTION).unwrap()
    }

    fn issuer(app: &TestApp) -> &TestIssuer {
        app.verifier.source()
    }

    /// A token for `sub`, good for `ttl` seconds (negative: expired).
    fn token(app: &TestApp, sub: &str, ttl: i64) -> String {
        let now = Timestamp::now().unix_seconds();
        issuer(app).token(json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "name": "Ada Lovelace",
            "cognito:groups": ["editor"], "iat": now, "exp": now + ttl,
        }))
    }

    fn event(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    /// `$connect` offering `protocols` (`TOKEN` stands for the fixture's token).
    fn connecting(protocols: &str) -> ApiGatewayWebsocketProxyRequest {
        let mut e = event(include_str!("../../../events/ws-api/connect.json"));
        e["headers"]["Sec-WebSocket-Protocol"] = json!(protocols);
        e["multiValueHeaders"]["Sec-WebSocket-Protocol"] = json!([protocols]);
        serde_json::from_value(e).unwrap()
    }

    fn saying(body: &str) -> ApiGatewayWebsocketProxyRequest {
        let mut e = event(include_str!("../../../events/ws-api/message.json"));
        e["body"] = json!(body);
        serde_json::from_value(e).unwrap()
    }

    fn leaving() -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_str(include_str!("../../../events/ws-api/disconnect.json")).unwrap()
    }

    async fn status(app: &TestApp, req: ApiGatewayWebsocketProxyRequest) -> i64 {
        handle(app, req).await.unwrap().status_code
    }

    /// A message's answer: the frame in the route's response.
    async fn answer(app: &TestApp, body: &str) -> Value {
        let r = handle(app, saying(body)).await.unwrap();
        assert_eq!(r.status_code, 200);
        match r.body {
            Some(Body::Text(t)) => serde_json::from_str(&t).unwrap(),
            other => panic!("no frame: {other:?}"),
        }
    }

    async fn connected(app: &TestApp) {
        let offer = format!("{PROTOCOL}, bearer.{}", token(app, "ada", 3600));
        assert_eq!(status(app, connecting(&offer)).await, 200);
    }

    fn notices(app: &TestApp) -> Vec<(Value, u32)> {
        app.notices
            .sent()
            .into_iter()
            .map(|(body, delay)| (serde_json::from_str(&body).unwrap(), delay))
            .collect()
    }

    #[test]
    fn the_accepted_handshake_echoes_our_subprotocol_and_nothing_else() {
        let with = serde_json::to_value(accepted(Some(PROTOCOL))).unwrap();
        assert_eq!(with["statusCode"], 200);
        assert_eq!(with["headers"]["sec-websocket-protocol"], "episodes.v1");
        let without = serde_json::to_value(accepted(None)).unwrap();
        assert!(without["headers"].get("sec-websocket-protocol").is_none());
    }

    #[test]
    fn answers_are_frames_in_the_body() {
        let r = serde_json::to_value(frame(&Frame::error(
            404,
            "episode x does not exist",
            Some("subscribe"),
        )))
        .unwrap();
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["status"], 404);
        assert_eq!(body["action"], "subscribe");
    }

    #[tokio::test]
    async fn connect_verifies_the_token_records_the_connection_and_echoes_our_protocol() {
        let app = app();
        let offer = format!("{PROTOCOL}, bearer.{}", token(&app, "ada", 3600));
        let r = handle(&app, connecting(&offer)).await.unwrap();
        assert_eq!(r.status_code, 200);
        assert_eq!(r.headers["sec-websocket-protocol"], PROTOCOL);
        assert!(app.store.is_open(&connection()));
    }

    #[tokio::test]
    async fn connect_refuses_what_is_not_a_good_token_and_records_nothing() {
        let app = app();
        let forged = {
            let other = TestIssuer::default();
            let now = Timestamp::now().unix_seconds();
            other.token(json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "ada", "exp": now + 60}))
        };
        let now = Timestamp::now().unix_seconds();
        let wrong_audience = issuer(&app)
            .token(json!({"iss": ISSUER, "aud": "someone-else", "sub": "ada", "exp": now + 60}));
        for (case, protocols, expected) in [
            ("no token", PROTOCOL.to_owned(), 401),
            ("not a JWT", format!("{PROTOCOL}, bearer.nope"), 401),
            (
                "expired",
                format!("bearer.{}", token(&app, "ada", -60)),
                401,
            ),
            ("another issuer's key", format!("bearer.{forged}"), 401),
            ("another audience", format!("bearer.{wrong_audience}"), 401),
            (
                "no usable subject",
                format!("bearer.{}", token(&app, "", 60)),
                403,
            ),
        ] {
            assert_eq!(
                status(&app, connecting(&protocols)).await,
                expected,
                "{case}"
            );
        }
        assert!(!app.store.is_open(&connection()));
    }

    #[tokio::test]
    async fn connect_is_500_when_the_connection_cannot_be_recorded() {
        let app = app();
        app.store.set_down(true);
        let offer = format!("bearer.{}", token(&app, "ada", 3600));
        assert_eq!(status(&app, connecting(&offer)).await, 500);
    }

    #[tokio::test]
    async fn subscribe_answers_with_the_viewers_and_asks_for_one_presence_round() {
        let app = app();
        connected(&app).await;
        let subscribe = format!(r#"{{"action":"subscribe","episode_id":"{EPISODE}"}}"#);
        let frame = answer(&app, &subscribe).await;
        assert_eq!(frame["type"], "subscribed", "{frame}");
        assert_eq!(frame["viewers"][0]["id"], "ada");
        assert_eq!(
            (frame["count"].clone(), frame["round"].clone()),
            (json!(1), json!(0))
        );
        assert_eq!(frame["heartbeat_seconds"], HEARTBEAT_SECONDS);
        let frame = answer(&app, &subscribe).await;
        assert_eq!(frame["type"], "subscribed", "again: {frame}");
        assert_eq!(
            frame["count"], 1,
            "a second subscribe is the same viewer: {frame}"
        );
        let rounds: Vec<_> = notices(&app)
            .into_iter()
            .filter(|(n, _)| n["kind"] == "presence_round")
            .collect();
        assert_eq!(rounds.len(), 1, "asked for once");
        assert_eq!(rounds[0].1, 1, "a window later");
        assert_eq!(rounds[0].0["episode_id"], EPISODE);
    }

    #[tokio::test]
    async fn messages_are_refused_by_name_and_status() {
        let app = app();
        let missing = format!(
            r#"{{"action":"subscribe","episode_id":"{}"}}"#,
            EpisodeId::new()
        );
        let frame = answer(&app, &missing).await;
        assert_eq!(
            (frame["status"].clone(), frame["action"].clone()),
            (json!(401), json!("subscribe")),
            "not connected: {frame}"
        );
        connected(&app).await;
        for (body, expected) in [
            ("not json", 400),
            (r#"{"action":"dance"}"#, 400),
            (r#"{"action":"subscribe","episode_id":"nope"}"#, 422),
            (r#"{"action":"ping","extra":1}"#, 422),
            (missing.as_str(), 404),
        ] {
            let frame = answer(&app, body).await;
            assert_eq!(frame["type"], "error", "{body}: {frame}");
            assert_eq!(frame["status"], expected, "{body}: {frame}");
        }
        app.store.set_down(true);
        let frame = answer(&app, r#"{"action":"ping"}"#).await;
        assert_eq!(frame["status"], 500, "{frame}");
        assert!(!frame["detail"].as_str().unwrap().contains("unavailable:"));
    }

    #[tokio::test]
    async fn ping_is_answered_with_pong_on_a_known_connection_only() {
        let app = app();
        let frame = answer(&app, r#"{"action":"ping"}"#).await;
        assert_eq!(frame["status"], 401);
        connected(&app).await;
        let frame = answer(&app, r#"{"action":"ping"}"#).await;
        assert_eq!(frame["type"], "pong", "{frame}");
    }

    #[tokio::test]
    async fn resume_sends_the_events_after_the_last_one_seen() {
        let app = app();
        connected(&app).await;
        let golden: Vec<DomainEvent> = [
            include_str!("../../../events/domain/episode.created.json"),
            include_str!("../../../events/domain/episode.updated.json"),
            include_str!("../../../events/domain/episode.deleted.json"),
        ]
        .iter()
        .map(|g| serde_json::from_str(g).unwrap())
        .collect();
        for e in &golden {
            app.history.add_event(e.clone());
        }
        let resume = format!(
            r#"{{"action":"resume","episode_id":"{EPISODE}","after":"{}"}}"#,
            golden[0].id
        );
        let frame = answer(&app, &resume).await;
        assert_eq!(frame["type"], "resumed", "{frame}");
        let types: Vec<&str> = frame["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                EventType::EpisodeUpdated.as_str(),
                EventType::EpisodeDeleted.as_str()
            ]
        );
        assert_eq!(frame["more"], false);
        let elsewhere = format!(
            r#"{{"action":"resume","episode_id":"{}","after":"{}"}}"#,
            EpisodeId::new(),
            golden[0].id
        );
        assert_eq!(answer(&app, &elsewhere).await["status"], 404);
    }

    #[tokio::test]
    async fn an_expired_connection_is_forgotten_closed_and_told_why() {
        let app = app();
        // A connection whose token expired a second ago (connect refuses expired tokens).
        let now = Timestamp::now();
        let expired = Timestamp::from_unix_seconds(now.unix_seconds() - 1).unwrap();
        let ada = lambda_kit::actor_from_claims(
            &[("sub".to_owned(), "ada".to_owned())].into(),
            lambda_kit::RoleSource::configured(),
        )
        .unwrap();
        app.store
            .open(&connection(), &ada, expired, now)
            .await
            .unwrap();
        let frame = answer(&app, r#"{"action":"ping"}"#).await;
        assert_eq!(frame["status"], 401, "{frame}");
        assert!(frame["detail"].as_str().unwrap().contains("expired"));
        assert!(!app.store.is_open(&connection()));
        let closes: Vec<_> = notices(&app)
            .into_iter()
            .filter(|(n, _)| n["kind"] == "close")
            .collect();
        assert_eq!(closes.len(), 1);
        assert_eq!(closes[0].0["connection_id"], CONNECTION);
    }

    #[tokio::test]
    async fn disconnect_forgets_the_connection_and_checks_presence_after_the_grace() {
        let app = app();
        connected(&app).await;
        let subscribe = format!(r#"{{"action":"subscribe","episode_id":"{EPISODE}"}}"#);
        answer(&app, &subscribe).await;
        assert_eq!(status(&app, leaving()).await, 200);
        assert!(!app.store.is_open(&connection()));
        let checks: Vec<_> = notices(&app)
            .into_iter()
            .filter(|(n, _)| n["kind"] == "presence_check")
            .collect();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].0["episode_id"], EPISODE);
        assert_eq!(checks[0].1, 30, "after the grace period");
        // A second disconnect (API Gateway retries) changes nothing and still answers 200.
        assert_eq!(status(&app, leaving()).await, 200);
        assert_eq!(notices(&app).len(), 2, "joined and one check");
    }

    #[tokio::test]
    async fn editing_is_held_on_a_subscribed_connection_and_asks_for_rounds() {
        use domain::store::realtime::PresenceReader;
        let app = app();
        connected(&app).await;
        let editing = format!(r#"{{"action":"editing","episode_id":"{EPISODE}","field":"title"}}"#);
        let frame = answer(&app, &editing).await;
        assert_eq!(frame["type"], "error", "not subscribed yet: {frame}");
        assert_eq!(frame["status"], 409);
        let subscribe = format!(r#"{{"action":"subscribe","episode_id":"{EPISODE}"}}"#);
        assert_eq!(answer(&app, &subscribe).await["type"], "subscribed");
        let before = notices(&app).len();
        let frame = answer(&app, &editing).await;
        assert_eq!(frame["type"], "editing", "{frame}");
        assert_eq!(frame["field"], "title");
        assert!(frame["until"].is_string());
        let presence = app.store.presence(episode()).await.unwrap();
        let now = Timestamp::now();
        assert_eq!(
            presence[0].viewer(now).editing,
            Some(EditedField::Title),
            "held"
        );
        assert_eq!(
            presence[0].viewer(now.plus_seconds(31)).editing,
            None,
            "lapsed without a refresh"
        );
        // A round for the news (or one due already), and one for when it lapses.
        let delays: Vec<u32> = notices(&app)[before..].iter().map(|(_, d)| *d).collect();
        assert!(delays.contains(&31), "{delays:?}");
        let idle = format!(r#"{{"action":"idle","episode_id":"{EPISODE}"}}"#);
        let frame = answer(&app, &idle).await;
        assert_eq!(frame["type"], "editing");
        assert_eq!(frame["field"], Value::Null);
        let presence = app.store.presence(episode()).await.unwrap();
        assert_eq!(presence[0].viewer(Timestamp::now()).editing, None);
        let bad = format!(r#"{{"action":"editing","episode_id":"{EPISODE}","field":"colour"}}"#);
        assert_eq!(answer(&app, &bad).await["status"], 422);
    }
}
