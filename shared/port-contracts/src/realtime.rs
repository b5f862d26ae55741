//! The realtime ports: connections with their tokens' expiry, subscriptions checked against
//! the episode and bounded per connection, presence counted per connection with a grace
//! period after the last one leaves, clean-up on close.

use domain::realtime::{Announced, ConnectionId, MAX_SUBSCRIPTIONS, UserRef, Viewer};
use domain::store::EpisodeExistence;
use domain::store::realtime::{
    Connections, Heartbeat, OpenConnection, PresenceReader, PresenceRounds, Subscribe,
    SubscribeError, Subscriptions,
};
use domain::{Actor, DisplayName, EpisodeId, Role, Timestamp, UserId};

use crate::World;

/// A connection id and a user no other run has used (the tables are shared).
fn fresh() -> (ConnectionId, Actor) {
    let tag = EpisodeId::new().to_string();
    let actor = Actor {
        id: UserId::parse(&format!("user-{tag}")).unwrap_or_else(|e| panic!("{e}")),
        name: DisplayName::new("Viewer"),
        role: Role::Viewer,
    };
    (connection(), actor)
}

fn connection() -> ConnectionId {
    ConnectionId::parse(&format!("c-{}", EpisodeId::new())).unwrap_or_else(|e| panic!("{e}"))
}

/// Opens `connection` for `actor`, its token good for an hour.
async fn open(w: &impl World, connection: &ConnectionId, actor: &Actor) -> OpenConnection {
    let now = Timestamp::now();
    let until = now.plus_seconds(3600);
    w.realtime()
        .open(connection, actor, until, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    OpenConnection {
        user: UserRef {
            id: actor.id.clone(),
            name: actor.name.clone(),
        },
        token_expires_at: Some(until),
    }
}

async fn viewers(w: &impl World, episode: EpisodeId, user: &UserId) -> Option<usize> {
    w.realtime()
        .presence(episode)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|p| p.user.id == *user)
        .map(|p| p.connections)
}

pub async fn a_connection_is_known_until_closed_and_not_past_its_token(w: &impl World) {
    let (c, actor) = fresh();
    let open_c = open(w, &c, &actor).await;
    let rt = w.realtime();
    assert_eq!(rt.connection(&c).await.ok().flatten(), Some(open_c));
    let now = Timestamp::now();
    assert_eq!(rt.heartbeat(&c, now).await.ok(), Some(Heartbeat::Seen));
    assert_eq!(
        rt.heartbeat(&c, now.plus_seconds(7200)).await.ok(),
        Some(Heartbeat::Expired),
        "past its token"
    );
    assert_eq!(
        rt.heartbeat(&connection(), now).await.ok(),
        Some(Heartbeat::Unknown)
    );
    let listed = rt
        .connections_of(&actor.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        listed.iter().map(|l| &l.connection).collect::<Vec<_>>(),
        [&c]
    );
    let closed = rt.close(&c, now).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(closed.map(|c| c.user.id), Some(actor.id.clone()));
    assert!(
        rt.close(&c, now).await.is_ok_and(|c| c.is_none()),
        "closed once"
    );
    assert_eq!(rt.connection(&c).await.ok(), Some(None));
    assert!(
        rt.connections_of(&actor.id)
            .await
            .is_ok_and(|l| l.is_empty())
    );
}

pub async fn a_subscription_needs_an_episode_and_the_users_own_connection(w: &impl World) {
    let (c, actor) = fresh();
    let opened = open(w, &c, &actor).await;
    let now = Timestamp::now();
    let sub = w.subscriber();
    let r = sub.subscribe(&c, &opened, EpisodeId::new(), now).await;
    assert!(matches!(r, Err(SubscribeError::NoEpisode)), "{r:?}");
    let episode = w.quiet_episode().await;
    let r = sub.subscribe(&connection(), &opened, episode, now).await;
    assert!(
        matches!(r, Err(SubscribeError::NoConnection)),
        "unknown: {r:?}"
    );
    let (_, other) = fresh();
    let as_other = OpenConnection {
        user: UserRef {
            id: other.id,
            name: other.name,
        },
        token_expires_at: opened.token_expires_at,
    };
    let r = sub.subscribe(&c, &as_other, episode, now).await;
    assert!(
        matches!(r, Err(SubscribeError::NoConnection)),
        "another's: {r:?}"
    );
    assert!(sub.episode_exists(episode).await.unwrap_or(false));
    w.delete_episode(episode).await;
    let r = sub.subscribe(&c, &opened, episode, now).await;
    assert!(
        matches!(r, Err(SubscribeError::NoEpisode)),
        "deleted: {r:?}"
    );
    assert!(!sub.episode_exists(episode).await.unwrap_or(true));
}

pub async fn presence_counts_connections_once_and_announces_the_first(w: &impl World) {
    let (c1, actor) = fresh();
    let c2 = connection();
    let o1 = open(w, &c1, &actor).await;
    let o2 = open(w, &c2, &actor).await;
    let episode = w.quiet_episode().await;
    let now = Timestamp::now();
    let sub = w.subscriber();
    let first = sub
        .subscribe(&c1, &o1, episode, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(first.announce, "the first connection is news");
    assert_eq!(
        first.announced,
        Announced::default(),
        "no round has announced anyone yet"
    );
    assert_eq!(viewers(w, episode, &actor.id).await, Some(1));
    let second = sub
        .subscribe(&c2, &o2, episode, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!second.announce, "the second is not");
    // A retried subscribe does not inflate the count.
    sub.subscribe(&c2, &o2, episode, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(viewers(w, episode, &actor.id).await, Some(2));
    let listeners = w
        .realtime()
        .subscribers(episode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ids: Vec<&ConnectionId> = listeners.iter().map(|l| &l.connection).collect();
    ids.sort();
    let mut expected = vec![&c1, &c2];
    expected.sort();
    assert_eq!(ids, expected);
    for l in &listeners {
        let own = if l.connection == c1 { &o1 } else { &o2 };
        assert_eq!(
            l.token_expires_at, own.token_expires_at,
            "beside each subscription"
        );
    }
}

pub async fn a_connection_follows_at_most_twenty_episodes(w: &impl World) {
    let (c, actor) = fresh();
    let opened = open(w, &c, &actor).await;
    let now = Timestamp::now();
    let mut episodes = Vec::new();
    for i in 0..MAX_SUBSCRIPTIONS {
        let e = w.quiet_episode().await;
        w.subscriber()
            .subscribe(&c, &opened, e, now)
            .await
            .unwrap_or_else(|e| panic!("subscription {}: {e}", i + 1));
        episodes.push(e);
    }
    let one_more = w.quiet_episode().await;
    let r = w.subscriber().subscribe(&c, &opened, one_more, now).await;
    assert!(matches!(r, Err(SubscribeError::TooMany)), "{r:?}");
    assert!(
        w.subscriber()
            .subscribe(&c, &opened, episodes[3], now)
            .await
            .is_ok(),
        "again"
    );
    w.realtime()
        .unsubscribe(&c, &actor.id, episodes[0], now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        w.subscriber()
            .subscribe(&c, &opened, one_more, now)
            .await
            .is_ok(),
        "room again"
    );
}

pub async fn the_last_connection_leaving_starts_a_grace_period(w: &impl World) {
    let (c1, actor) = fresh();
    let c2 = connection();
    let (o1, o2) = (open(w, &c1, &actor).await, open(w, &c2, &actor).await);
    let episode = w.quiet_episode().await;
    let now = Timestamp::now();
    let (sub, rt) = (w.subscriber(), w.realtime());
    for (c, o) in [(&c1, &o1), (&c2, &o2)] {
        sub.subscribe(c, o, episode, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let later = now.plus_seconds(5);
    assert_eq!(
        rt.unsubscribe(&c1, &actor.id, episode, later).await.ok(),
        Some(None)
    );
    assert_eq!(
        rt.unsubscribe(&c1, &actor.id, episode, later).await.ok(),
        Some(None),
        "twice"
    );
    let left = rt
        .unsubscribe(&c2, &actor.id, episode, later)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left, Some(later));
    let presence = rt.presence(episode).await.unwrap_or_else(|e| panic!("{e}"));
    let mine = presence.iter().find(|p| p.user.id == actor.id);
    assert_eq!(
        mine.map(|p| (p.connections, p.left_at)),
        Some((0, Some(later)))
    );
    // Back within the grace period: the check finds them there.
    sub.subscribe(&c1, &o1, episode, later)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        rt.finish_leaving(episode, &actor.id, later, later).await,
        Ok(false)
    ));
    let again = now.plus_seconds(9);
    let left = rt
        .unsubscribe(&c1, &actor.id, episode, again)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left, Some(again));
    assert!(
        matches!(
            rt.finish_leaving(episode, &actor.id, later, again).await,
            Ok(false)
        ),
        "an old check"
    );
    assert!(matches!(
        rt.finish_leaving(episode, &actor.id, again, again).await,
        Ok(true)
    ));
    assert!(
        matches!(
            rt.finish_leaving(episode, &actor.id, again, again).await,
            Ok(false)
        ),
        "once"
    );
    assert!(rt.subscribers(episode).await.is_ok_and(|l| l.is_empty()));
}

pub async fn closing_a_connection_takes_its_subscriptions_and_presence(w: &impl World) {
    let (c, actor) = fresh();
    let keep = connection();
    let opened = open(w, &c, &actor).await;
    let kept = open(w, &keep, &actor).await;
    let (alone, shared) = (w.quiet_episode().await, w.quiet_episode().await);
    let now = Timestamp::now();
    let sub = w.subscriber();
    for e in [alone, shared] {
        sub.subscribe(&c, &opened, e, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    sub.subscribe(&keep, &kept, shared, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let later = now.plus_seconds(3);
    let closed = w
        .realtime()
        .close(&c, later)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("it was open"));
    assert_eq!(
        closed.left,
        [(alone, later)],
        "left only where it was the last"
    );
    assert!(
        w.realtime()
            .subscribers(alone)
            .await
            .is_ok_and(|l| l.is_empty())
    );
    let on_shared = w
        .realtime()
        .subscribers(shared)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        on_shared.iter().map(|l| &l.connection).collect::<Vec<_>>(),
        [&keep]
    );
    assert_eq!(viewers(w, shared, &actor.id).await, Some(1));
    assert_eq!(viewers(w, alone, &actor.id).await, Some(0));
}

pub async fn presence_rounds_gather_changes_and_the_latest_round_wins(w: &impl World) {
    let episode = w.quiet_episode().await;
    let rt = w.realtime();
    let now = Timestamp::now();
    let due = now.plus_seconds(11);
    let ok = |r: Result<bool, domain::store::StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ok(rt.presence_changed(episode, now, due).await),
        "the first change asks for a round"
    );
    assert!(
        !ok(rt.presence_changed(episode, now.plus_seconds(1), due).await),
        "a change while one is due does not"
    );
    assert!(
        ok(rt
            .presence_changed(episode, now.plus_seconds(12), now.plus_seconds(23))
            .await),
        "one overdue (its message lost) is asked for again"
    );
    // A request whose message could not be sent is withdrawn (only that one): the next asks.
    rt.withdraw_request(episode, due)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !ok(rt
            .presence_changed(episode, now.plus_seconds(13), due)
            .await),
        "another request's due time is not withdrawn"
    );
    rt.withdraw_request(episode, now.plus_seconds(23))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ok(rt.presence_changed(episode, now, due).await));
    let first = rt
        .start_round(episode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.before, Announced::default());
    assert!(
        ok(rt.presence_changed(episode, now, due).await),
        "once a round has begun, the next change asks for the next"
    );
    // A second round begins before the first finishes: the first may not record.
    let second = rt
        .start_round(episode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.round, first.round + 1);
    let (c, actor) = fresh();
    let announced = Announced {
        round: second.round,
        count: 1,
        viewers: Some(vec![Viewer {
            id: actor.id.clone(),
            name: actor.name.clone(),
            since: now,
            last_seen: now,
            editing: None,
        }]),
    };
    assert!(!ok(rt.finish_round(episode, first.round, &announced).await));
    assert!(ok(rt.finish_round(episode, second.round, &announced).await));
    let third = rt
        .start_round(episode)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(third.before, announced, "what the round told is kept");
    // A subscriber is answered with it, and the rounds item is nobody's presence.
    let opened = open(w, &c, &actor).await;
    let done = w
        .subscriber()
        .subscribe(&c, &opened, episode, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(done.announced, announced);
    let all = rt.presence(episode).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].user.id, actor.id);
    let (page, _) = rt
        .presence_page(episode, 10, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page, all, "a page is read past the rounds item too");
    let (page, next) = rt
        .presence_page(episode, 10, Some(actor.id.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(page.is_empty() && next.is_none(), "{page:?} {next:?}");
}
