//! A batch of events to notifications: decide the audience (domain rules), look up watchers and
//! preferences, fold each recipient's events into their batches (`notification::batch`),
//! write them, pass them on to live connections, report partial failures.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::notification::batch::plan;
use domain::notification::{Batching, GroupKey, Incoming, Observed};
use domain::notification::{audience, recipients, requester};
use domain::realtime::Addressed;
use domain::store::activity::EpisodeLabels;
use domain::store::notification::{Audiences, NotificationWriter};
use domain::store::{DeadLetters, MessageSender, StoreError};
use domain::{
    ActivityEntry, Audience, DomainEvent, EpisodeId, EventId, Notice, Notification, UserId,
};
use lambda_kit::sqs::{batch_response, read_events};
use lambda_runtime::LambdaEvent;

/// What the worker needs: watches, preferences and notifications (`N`), episode labels (`L`)
/// and the realtime queue (`Q`); and how changes are batched.
#[derive(Debug)]
pub struct Stores<N, L, Q> {
    pub notifications: N,
    pub labels: L,
    /// The realtime queue: written notifications go on to their recipients' open connections.
    pub live: Q,
    pub batching: Batching,
}

/// Notifications per realtime notice (keeps each SQS message far below 256 KB: a notification
/// of 50 changes is about 10 KB).
const NOTIFICATIONS_PER_NOTICE: usize = 10;

/// Rounds of observe, plan, write for the batches whose conditions failed (another worker or
/// the recipient changed them meanwhile); what is still unwritten after them comes again.
const ROUNDS: usize = 4;

type Key = (UserId, GroupKey);

pub async fn handle<N, L, Q>(
    stores: &Stores<N, L, Q>,
    dead_letters: &impl DeadLetters,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible>
where
    N: Audiences + NotificationWriter + Sync,
    L: EpisodeLabels + Sync,
    Q: MessageSender + Sync,
{
    let (events, mut failed) = read_events(&event.payload.records, dead_letters).await;
    let to_notify: Vec<(String, DomainEvent)> = events
        .into_iter()
        .filter(|(_, e)| audience(e) != Audience::Nobody)
        .collect();
    if to_notify.is_empty() {
        return Ok(batch_response(failed));
    }

    // One Query per distinct episode for its watchers (for the events that go to watchers).
    let episodes: HashSet<EpisodeId> = to_notify
        .iter()
        .filter(|(_, e)| audience(e) == Audience::Watchers)
        .filter_map(|(_, e)| e.episode_id)
        .collect();
    let mut watchers: HashMap<EpisodeId, Vec<UserId>> = HashMap::new();
    for episode in episodes {
        match stores.notifications.watchers(episode).await {
            Ok(w) => {
                watchers.insert(episode, w);
            }
            Err(e) => tracing::warn!(%episode, error = %e, "watchers unavailable"),
        }
    }
    // One BatchGetItem for everyone's preferences, one for the episodes' labels.
    let candidates: Vec<UserId> = watchers
        .values()
        .flatten()
        .cloned()
        .chain(to_notify.iter().filter_map(|(_, e)| requester(e)))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let lookups = async {
        let prefs = stores.notifications.preferences_of(&candidates).await?;
        let ids: Vec<EpisodeId> = to_notify
            .iter()
            .filter_map(|(_, e)| e.episode_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let labels = stores.labels.labels(&ids).await?;
        Ok::<_, StoreError>((prefs, labels))
    };
    let (prefs, labels) = match lookups.await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "preferences or labels unavailable; the batch will come again");
            failed.extend(to_notify.into_iter().map(|(id, _)| id));
            return Ok(batch_response(failed));
        }
    };

    // Each recipient's events by batch, and which messages each batch answers for.
    let mut batches: BTreeMap<Key, Vec<Incoming>> = BTreeMap::new();
    let mut messages_of: HashMap<Key, HashSet<String>> = HashMap::new();
    for (message_id, e) in &to_notify {
        let list = match audience(e) {
            Audience::Watchers => match e.episode_id.and_then(|ep| watchers.get(&ep)) {
                Some(list) => list.clone(),
                None => {
                    failed.push(message_id.clone());
                    continue;
                }
            },
            Audience::Requester => requester(e).into_iter().collect(),
            Audience::Nobody => Vec::new(),
        };
        let known = e
            .episode_id
            .and_then(|ep| labels.get(&ep))
            .map(String::as_str);
        let entry = ActivityEntry::from_event(e, known);
        let label = domain::activity::label_of(e, known);
        for user in recipients(e, &list, &prefs) {
            let key = (user, GroupKey::of(e));
            batches.entry(key.clone()).or_default().push(Incoming {
                event: e.clone(),
                summary: entry.summary.clone(),
                label: label.clone(),
            });
            messages_of
                .entry(key)
                .or_default()
                .insert(message_id.clone());
        }
    }

    let (written, unwritten, complete) = deliver(stores, &batches).await;
    for key in &unwritten {
        failed.extend(messages_of.get(key).into_iter().flatten().cloned());
    }
    let failed_set: HashSet<&String> = failed.iter().collect();
    let answered: Vec<String> = to_notify
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| !failed_set.contains(id))
        .collect();
    // One line per event handled, to follow it by its ids across the functions' logs.
    for (message_id, e) in &to_notify {
        if !failed_set.contains(message_id) {
            tracing::info!(
                event_id = %e.id,
                event_type = %e.event_type,
                correlation_id = e.correlation_id.as_str(),
                "event notified"
            );
        }
    }
    tracing::info!(
        notifications = written.len(),
        batches = batches.len(),
        unwritten = unwritten.len(),
        "notified"
    );

    // Then on to the recipients' connections. If SQS refuses, the messages come again: their
    // events are counted already, so nothing is written twice, and the notifications they are
    // in are sent again (clients keep the copy of the highest revision).
    let addressed: Vec<Addressed> = written
        .iter()
        .map(|n| Addressed {
            recipient: n.recipient.clone(),
            notification: n.to_json(),
        })
        .collect();
    let notices: Vec<String> = addressed
        .chunks(NOTIFICATIONS_PER_NOTICE)
        .map(|chunk| {
            Notice::Notifications {
                items: chunk.to_vec(),
            }
            .to_body()
        })
        .collect();
    if !complete {
        failed.extend(answered);
    } else if let Err(err) = stores.live.send_all(&notices).await {
        tracing::warn!(error = %err, "notifications not passed on to live connections; will retry");
        failed.extend(answered);
    }
    Ok(batch_response(failed))
}

/// Observes, plans and writes every batch, again for those whose conditions failed, up to
/// [`ROUNDS`] times. Returns the notifications as written (or, for events counted before, as
/// they are now), the batches left unwritten, and `false` when the notifications of events
/// counted before could not be read to be sent again.
async fn deliver<N, L, Q>(
    stores: &Stores<N, L, Q>,
    batches: &BTreeMap<Key, Vec<Incoming>>,
) -> (Vec<Notification>, Vec<Key>, bool)
where
    N: NotificationWriter + Sync,
{
    let mut pending: Vec<&Key> = batches.keys().collect();
    let mut written: BTreeMap<(UserId, EventId), Notification> = BTreeMap::new();
    let mut resend: HashSet<(UserId, EventId)> = HashSet::new();
    for round in 0..ROUNDS {
        if pending.is_empty() {
            break;
        }
        let groups: Vec<Key> = pending.iter().map(|k| (*k).clone()).collect();
        let events: Vec<(UserId, EventId)> = pending
            .iter()
            .flat_map(|k| batches[*k].iter().map(|i| (k.0.clone(), i.event.id)))
            .collect();
        let observed = match stores
            .notifications
            .observe(&groups, &events, stores.batching.is_on())
            .await
        {
            Ok(o) => o,
            Err(err) => {
                tracing::warn!(error = %err, "notifications unavailable; will retry");
                break;
            }
        };
        let mut planned = Vec::new();
        let mut planned_keys = Vec::new();
        for key in pending.drain(..) {
            let (user, group) = key;
            let counted = |id: EventId| observed.counted.contains_key(&(user.clone(), id));
            resend.extend(
                batches[key]
                    .iter()
                    .filter_map(|i| observed.counted.get(&(user.clone(), i.event.id)))
                    .map(|note| (user.clone(), *note)),
            );
            let none = Observed::default();
            let seen = observed.groups.get(key).unwrap_or(&none);
            if let Some(d) = plan(stores.batching, user, group, seen, counted, &batches[key]) {
                planned.push(d);
                planned_keys.push(key);
            }
        }
        if planned.is_empty() {
            break;
        }
        match stores.notifications.apply(&planned).await {
            Ok(done) => {
                for ((d, key), ok) in planned.into_iter().zip(planned_keys).zip(done) {
                    if ok {
                        for (n, _) in d.writes {
                            written.insert((n.recipient.clone(), n.id), n);
                        }
                    } else {
                        tracing::info!(round, recipient = %key.0, "a batch changed meanwhile; planning it again");
                        pending.push(key);
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "notifications not written; will retry");
                pending.extend(planned_keys);
                break;
            }
        }
    }
    // Events counted before: their notifications go to live connections again.
    let again: Vec<(UserId, EventId)> = resend
        .into_iter()
        .filter(|k| !written.contains_key(k))
        .collect();
    let mut complete = true;
    if !again.is_empty() {
        match stores.notifications.notes(&again).await {
            Ok(notes) => {
                for n in notes {
                    written.insert((n.recipient.clone(), n.id), n);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "notifications to send again unavailable; will retry");
                complete = false;
            }
        }
    }
    (
        written.into_values().collect(),
        pending.into_iter().cloned().collect(),
        complete,
    )
}

#[cfg(test)]
mod tests {
    //! The worker through `handle`, with the SQS fixture from `events/notification-worker`
    //! and the in-memory ports: success, duplicate delivery, poison, partial failure.

    use domain::store::memory::{
        InMemoryDeadLetters, InMemoryEpisodeLabels, InMemoryNotifications, InMemoryQueue,
    };
    use domain::store::notification::Inbox;
    use domain::{EventType, Preferences, Timestamp};
    use lambda_kit::fixture::{failed, sqs_event, sqs_invocation};

    use super::*;

    const FIXTURE: &str = include_str!("../../../events/notification-worker/episode-updated.json");
    const JOB_FAILED: &str = include_str!("../../../events/domain/job.failed.json");
    const EPISODE: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

    type TestStores = Stores<InMemoryNotifications, InMemoryEpisodeLabels, InMemoryQueue>;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    /// Alice (the fixture's actor), Bob and Carol watch the fixture's episode.
    async fn stores() -> TestStores {
        let notifications = InMemoryNotifications::default();
        let episode = EpisodeId::parse(EPISODE).unwrap();
        notifications.add_episode(episode);
        for u in ["alice", "bob", "carol"] {
            assert!(
                notifications
                    .watch(episode, &user(u), Timestamp::now())
                    .await
                    .unwrap()
            );
        }
        let labels = InMemoryEpisodeLabels::default();
        labels.set(episode, "S2E4");
        Stores {
            notifications,
            labels,
            live: InMemoryQueue::default(),
            batching: Batching::DEFAULT,
        }
    }

    async fn unread(stores: &TestStores, u: &str) -> u64 {
        stores.notifications.counts(&user(u)).await.unwrap().unread
    }

    /// Another status move of the fixture's episode by Alice, `seconds` after the fixture's.
    fn moved_again(seconds: i64) -> String {
        let mut e: DomainEvent = serde_json::from_str(&updated()).unwrap();
        e.id = EventId::new();
        e.occurred_at = e.occurred_at.plus_seconds(seconds);
        serde_json::to_string(&e).unwrap()
    }

    fn updated() -> String {
        sqs_event(FIXTURE).unwrap().records[0].body.clone().unwrap()
    }

    async fn deliver(
        stores: &TestStores,
        dlq: &InMemoryDeadLetters,
        bodies: &[&str],
    ) -> Vec<String> {
        let event = sqs_invocation(FIXTURE, bodies).unwrap();
        failed(handle(stores, dlq, event).await.unwrap())
    }

    fn summaries(stores: &TestStores, u: &str) -> Vec<String> {
        stores
            .notifications
            .of(&user(u))
            .into_iter()
            .map(|n| n.summary())
            .collect()
    }

    #[tokio::test]
    async fn watchers_but_the_actor_are_notified_in_one_write_and_live() {
        let stores = stores().await;
        let dlq = InMemoryDeadLetters::default();
        assert!(deliver(&stores, &dlq, &[&updated()]).await.is_empty());
        assert!(
            summaries(&stores, "alice").is_empty(),
            "not of her own action"
        );
        for u in ["bob", "carol"] {
            assert_eq!(
                summaries(&stores, u),
                ["Alice moved S2E4 to in_production and edited its description"]
            );
            assert_eq!(unread(&stores, u).await, 1);
        }
        assert_eq!(stores.notifications.writes(), 1, "one write for the batch");
        let sent = stores.live.sent();
        assert_eq!(sent.len(), 1);
        let notice: serde_json::Value = serde_json::from_str(&sent[0].0).unwrap();
        assert_eq!(notice["items"].as_array().map(Vec::len), Some(2));
    }

    #[tokio::test]
    async fn a_muted_event_type_is_not_delivered() {
        let stores = stores().await;
        let muted = Preferences {
            muted_event_types: [EventType::EpisodeUpdated].into(),
        };
        stores
            .notifications
            .set_preferences(&user("carol"), &muted)
            .await
            .unwrap();
        assert!(
            deliver(&stores, &InMemoryDeadLetters::default(), &[&updated()])
                .await
                .is_empty()
        );
        assert_eq!(summaries(&stores, "bob").len(), 1);
        assert!(summaries(&stores, "carol").is_empty());
    }

    #[tokio::test]
    async fn a_redelivery_notifies_no_one_twice() {
        let stores = stores().await;
        let dlq = InMemoryDeadLetters::default();
        let body = updated();
        assert!(deliver(&stores, &dlq, &[&body, &body]).await.is_empty());
        let writes = stores.notifications.writes();
        assert!(deliver(&stores, &dlq, &[&body]).await.is_empty());
        assert_eq!(
            stores.notifications.writes(),
            writes,
            "counted: nothing written"
        );
        assert_eq!(summaries(&stores, "bob").len(), 1);
        assert_eq!(unread(&stores, "bob").await, 1);
        assert_eq!(stores.notifications.of(&user("bob"))[0].changes.len(), 1);
        // ... and the notification goes to the live connections again.
        assert_eq!(stores.live.sent().len(), 2);
    }

    /// Issue 15: a status move for W watchers is written in transactions of 25 deliveries (a
    /// receipt, the notification, the batch's pointer and the counter each), not one per
    /// watcher; a redelivery still notifies no one twice.
    #[tokio::test]
    async fn many_watchers_are_notified_in_transactions_of_fifty() {
        let stores = stores().await;
        let episode = EpisodeId::parse(EPISODE).unwrap();
        let crowd: Vec<String> = (0..118).map(|i| format!("watcher-{i:03}")).collect();
        for u in &crowd {
            assert!(
                stores
                    .notifications
                    .watch(episode, &user(u), Timestamp::now())
                    .await
                    .unwrap()
            );
        }
        let dlq = InMemoryDeadLetters::default();
        let before = stores.notifications.writes();
        assert!(deliver(&stores, &dlq, &[&updated()]).await.is_empty());
        // Bob, Carol and the 118: 120 notifications, five transactions of at most 25.
        assert_eq!(stores.notifications.writes() - before, 5);
        for u in crowd.iter().map(String::as_str).chain(["bob", "carol"]) {
            assert_eq!(summaries(&stores, u).len(), 1, "{u}");
        }
        // Redelivered: every (watcher, event) is counted, so nothing is written.
        let writes = stores.notifications.writes();
        assert!(deliver(&stores, &dlq, &[&updated()]).await.is_empty());
        assert_eq!(stores.notifications.writes(), writes);
        for u in ["watcher-000", "watcher-117", "bob"] {
            assert_eq!(summaries(&stores, u).len(), 1, "{u}");
            assert_eq!(unread(&stores, u).await, 1, "{u}");
        }
    }

    #[tokio::test]
    async fn a_failed_job_goes_to_whoever_asked_for_it() {
        let stores = stores().await;
        assert!(
            deliver(&stores, &InMemoryDeadLetters::default(), &[JOB_FAILED])
                .await
                .is_empty()
        );
        assert_eq!(summaries(&stores, "alice-b820b6").len(), 1);
        assert!(
            summaries(&stores, "bob").is_empty(),
            "watchers are not told of jobs"
        );
    }

    #[tokio::test]
    async fn poison_is_parked_and_events_for_nobody_write_nothing() {
        let stores = stores().await;
        let dlq = InMemoryDeadLetters::default();
        let created = include_str!("../../../events/domain/episode.created.json");
        assert!(deliver(&stores, &dlq, &["{", created]).await.is_empty());
        assert_eq!(dlq.parked().len(), 1);
        assert_eq!(stores.notifications.writes(), 0);
        assert!(stores.live.sent().is_empty());
    }

    #[tokio::test]
    async fn an_outage_fails_the_messages_and_their_retry_completes_them() {
        let stores = stores().await;
        let dlq = InMemoryDeadLetters::default();
        stores.notifications.set_down(true);
        let failed = deliver(&stores, &dlq, &[&updated(), JOB_FAILED]).await;
        assert_eq!(failed.len(), 2);
        stores.notifications.set_down(false);
        // Stored, but the live queue refuses: the messages come again and change nothing more.
        stores.live.set_down(true);
        assert_eq!(deliver(&stores, &dlq, &[&updated()]).await, ["m0"]);
        assert_eq!(summaries(&stores, "bob").len(), 1);
        stores.live.set_down(false);
        assert!(deliver(&stores, &dlq, &[&updated()]).await.is_empty());
        assert_eq!(summaries(&stores, "bob").len(), 1);
        assert_eq!(unread(&stores, "bob").await, 1);
        assert_eq!(stores.live.sent().len(), 1);
    }

    /// Issue 19: four moves by Alice within the window are one notification per watcher,
    /// counting 4, whether they come in one batch, in several, or in parallel invocations;
    /// the bell counts it once; each growth goes live with a higher revision.
    #[tokio::test]
    async fn moves_within_the_window_are_one_notification_grown_in_place() {
        let stores = stores().await;
        let dlq = InMemoryDeadLetters::default();
        let first = updated();
        let more: Vec<String> = [10, 20, 59].map(moved_again).into();
        assert!(deliver(&stores, &dlq, &[&first]).await.is_empty());
        assert!(
            deliver(&stores, &dlq, &[&more[0], &more[1]])
                .await
                .is_empty()
        );
        assert!(
            deliver(&stores, &dlq, &[&more[2], &more[1]])
                .await
                .is_empty()
        );
        for u in ["bob", "carol"] {
            let notes = stores.notifications.of(&user(u));
            assert_eq!(notes.len(), 1, "{u}");
            assert_eq!(notes[0].changes.len(), 4);
            assert_eq!(notes[0].summary(), "Alice moved S2E4 4 times");
            assert_eq!(notes[0].revision, 3, "written three times");
            let counts = stores.notifications.counts(&user(u)).await.unwrap();
            assert_eq!((counts.unread, counts.unseen), (1, 1));
        }
        let revisions: Vec<u64> = stores
            .live
            .sent()
            .iter()
            .flat_map(|(body, _)| {
                let notice: serde_json::Value = serde_json::from_str(body).unwrap();
                notice["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|i| i["recipient"] == "bob")
                    .map(|i| i["notification"]["revision"].as_u64().unwrap())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(revisions, [1, 2, 3], "re-sent as it grows");

        // After the window, or once Bob has read it, a move opens a new one.
        let late = moved_again(61);
        assert!(deliver(&stores, &dlq, &[&late]).await.is_empty());
        assert_eq!(stores.notifications.of(&user("bob")).len(), 2);
        assert_eq!(unread(&stores, "bob").await, 2);
        let open = stores.notifications.of(&user("bob"))[1].id;
        let read = stores
            .notifications
            .transition(
                &user("bob"),
                &[open],
                domain::notification::Transition::Read,
                Timestamp::now(),
            )
            .await
            .unwrap();
        assert_eq!(read, [domain::notification::Moved::Changed]);
        assert!(deliver(&stores, &dlq, &[&moved_again(62)]).await.is_empty());
        let bob = stores.notifications.of(&user("bob"));
        assert_eq!(
            bob.iter().map(|n| n.changes.len()).collect::<Vec<_>>(),
            [4, 1, 1]
        );
        assert_eq!(unread(&stores, "bob").await, 2);
        assert_eq!(
            summaries(&stores, "carol").len(),
            2,
            "Carol's second is still open"
        );
    }

    #[tokio::test]
    async fn overlapping_batches_count_every_move_once() {
        let stores = stores().await;
        let dlq = InMemoryDeadLetters::default();
        let moves: Vec<String> = (0..12).map(|i| moved_again(i * 4)).collect();
        let m: Vec<&str> = moves.iter().map(String::as_str).collect();
        assert!(deliver(&stores, &dlq, &m[0..4]).await.is_empty());
        assert!(
            deliver(&stores, &dlq, &[m[4], m[5], m[6], m[7], m[0]])
                .await
                .is_empty()
        );
        assert!(
            deliver(&stores, &dlq, &[m[8], m[9], m[10], m[11], m[4]])
                .await
                .is_empty()
        );
        let bob = stores.notifications.of(&user("bob"));
        assert_eq!(bob.len(), 1);
        assert_eq!(bob[0].changes.len(), 12);
        assert_eq!(unread(&stores, "bob").await, 1);
    }

    /// The store as another party changes it between the worker's observation and its write:
    /// on the first write, Bob reads his open notification.
    struct BobReadsMeanwhile {
        inner: InMemoryNotifications,
        raced: std::sync::atomic::AtomicBool,
    }

    impl Audiences for BobReadsMeanwhile {
        async fn watchers(&self, episode: EpisodeId) -> Result<Vec<UserId>, StoreError> {
            self.inner.watchers(episode).await
        }
        async fn preferences_of(
            &self,
            users: &[UserId],
        ) -> Result<HashMap<UserId, Preferences>, StoreError> {
            self.inner.preferences_of(users).await
        }
    }

    impl NotificationWriter for BobReadsMeanwhile {
        async fn observe(
            &self,
            groups: &[(UserId, GroupKey)],
            events: &[(UserId, EventId)],
            batching: bool,
        ) -> Result<domain::store::notification::Observations, StoreError> {
            self.inner.observe(groups, events, batching).await
        }
        async fn apply(
            &self,
            deliveries: &[domain::notification::Delivery],
        ) -> Result<Vec<bool>, StoreError> {
            if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let open: Vec<EventId> = self.inner.of(&user("bob")).iter().map(|n| n.id).collect();
                self.inner
                    .transition(
                        &user("bob"),
                        &open,
                        domain::notification::Transition::Read,
                        Timestamp::now(),
                    )
                    .await?;
            }
            self.inner.apply(deliveries).await
        }
        async fn uncount(
            &self,
            removed: &[domain::store::notification::Removed],
        ) -> Result<(), StoreError> {
            self.inner.uncount(removed).await
        }
        async fn notes(&self, keys: &[(UserId, EventId)]) -> Result<Vec<Notification>, StoreError> {
            self.inner.notes(keys).await
        }
    }

    #[tokio::test]
    async fn a_batch_read_meanwhile_is_planned_again_and_a_new_one_opens() {
        let plain = stores().await;
        let dlq = InMemoryDeadLetters::default();
        assert!(deliver(&plain, &dlq, &[&updated()]).await.is_empty());
        let racing = Stores {
            notifications: BobReadsMeanwhile {
                inner: plain.notifications.clone(),
                raced: false.into(),
            },
            labels: plain.labels.clone(),
            live: InMemoryQueue::default(),
            batching: Batching::DEFAULT,
        };
        let event = sqs_invocation(FIXTURE, &[&moved_again(5)]).unwrap();
        assert!(failed(handle(&racing, &dlq, event).await.unwrap()).is_empty());
        let bob = plain.notifications.of(&user("bob"));
        assert_eq!(
            bob.len(),
            2,
            "his first was read before the move was written"
        );
        assert_eq!(
            bob.iter().map(|n| n.changes.len()).collect::<Vec<_>>(),
            [1, 1]
        );
        assert_eq!(unread(&plain, "bob").await, 1);
        let carol = plain.notifications.of(&user("carol"));
        assert_eq!(carol.len(), 1);
        assert_eq!(carol[0].changes.len(), 2, "Carol's grew");
    }

    #[tokio::test]
    async fn batching_off_is_one_notification_per_event() {
        let mut stores = stores().await;
        stores.batching = Batching::OFF;
        let dlq = InMemoryDeadLetters::default();
        assert!(
            deliver(&stores, &dlq, &[&updated(), &moved_again(1)])
                .await
                .is_empty()
        );
        assert_eq!(summaries(&stores, "bob").len(), 2);
        assert_eq!(unread(&stores, "bob").await, 2);
    }
}
