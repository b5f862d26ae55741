//! A batch of events to notifications: decide the audience (domain rules), look up watchers and
//! preferences, write one notification per (event, recipient), report partial failures.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::notification::{audience, recipients, requester, transaction_chunks};
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
/// and the realtime queue (`Q`).
#[derive(Debug)]
pub struct Stores<N, L, Q> {
    pub notifications: N,
    pub labels: L,
    /// The realtime queue: written notifications go on to their recipients' open connections.
    pub live: Q,
}

/// Notifications per realtime notice (keeps each SQS message far below 256 KB).
const NOTIFICATIONS_PER_NOTICE: usize = 50;

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
        .map(|(_, e)| e.episode_id)
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
            .map(|(_, e)| e.episode_id)
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

    // Every (message, notification) of the batch; then one transaction for all of them.
    let mut planned: Vec<(&String, &DomainEvent, Vec<Notification>)> = Vec::new();
    for (message_id, e) in &to_notify {
        let list = match audience(e) {
            Audience::Watchers => match watchers.get(&e.episode_id) {
                Some(list) => list.clone(),
                None => {
                    failed.push(message_id.clone());
                    continue;
                }
            },
            Audience::Requester => requester(e).into_iter().collect(),
            Audience::Nobody => Vec::new(),
        };
        let summary =
            ActivityEntry::from_event(e, labels.get(&e.episode_id).map(String::as_str)).summary;
        let notes = recipients(e, &list, &prefs)
            .into_iter()
            .map(|user| Notification::for_recipient(e, user, summary.clone()))
            .collect();
        planned.push((message_id, e, notes));
    }
    let all: Vec<Notification> = planned
        .iter()
        .flat_map(|(_, _, n)| n.iter().cloned())
        .collect();
    // As few transactions as fit (50 notifications with their counters each); a chunk that
    // was partly delivered before (a redelivery) or failed is written one by one: idempotent
    // per (event, recipient), so only what is missing is written.
    let mut undelivered: HashSet<(UserId, EventId)> = HashSet::new();
    for chunk in transaction_chunks(&all) {
        let together = match stores.notifications.deliver_all(&chunk).await {
            Ok(done) => done,
            Err(err) => {
                tracing::warn!(error = %err, "batched delivery failed; delivering one by one");
                false
            }
        };
        if together {
            continue;
        }
        for note in &chunk {
            if let Err(err) = stores.notifications.deliver(note).await {
                tracing::warn!(event_id = %note.id, error = %err, "notification not delivered; will retry");
                undelivered.insert((note.recipient.clone(), note.id));
            }
        }
    }
    let mut live: Vec<(&String, Vec<Addressed>)> = Vec::new();
    for (message_id, e, notes) in planned {
        let ok = notes
            .iter()
            .all(|n| !undelivered.contains(&(n.recipient.clone(), n.id)));
        if ok {
            tracing::info!(event_id = %e.id, correlation_id = %e.correlation_id, recipients = notes.len(), "notified");
            let addressed = notes
                .iter()
                .map(|n| Addressed {
                    recipient: n.recipient.clone(),
                    notification: n.to_json(),
                })
                .collect();
            live.push((message_id, addressed));
        } else {
            failed.push(message_id.clone());
        }
    }
    // Then on to the recipients' connections. If SQS refuses, the messages come again:
    // delivery is idempotent, and clients drop a notification id they already have.
    let notices: Vec<String> = live
        .iter()
        .flat_map(|(_, items)| items.chunks(NOTIFICATIONS_PER_NOTICE))
        .map(|chunk| {
            Notice::Notifications {
                items: chunk.to_vec(),
            }
            .to_body()
        })
        .collect();
    if let Err(err) = stores.live.send_all(&notices).await {
        tracing::warn!(error = %err, "notifications not passed on to live connections; will retry");
        failed.extend(live.into_iter().map(|(id, _)| id.clone()));
    }
    Ok(batch_response(failed))
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
        }
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
            .map(|n| n.summary)
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
            assert_eq!(
                stores.notifications.unread_count(&user(u)).await.unwrap(),
                1
            );
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
        assert!(deliver(&stores, &dlq, &[&body]).await.is_empty());
        assert_eq!(summaries(&stores, "bob").len(), 1);
        assert_eq!(
            stores
                .notifications
                .unread_count(&user("bob"))
                .await
                .unwrap(),
            1
        );
    }

    /// Issue 15: a status move for W watchers is written in transactions of 50 notifications
    /// with their counters, not one per watcher; a redelivery still notifies no one twice.
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
        // Bob, Carol and the 118: 120 notifications, three transactions of at most 50.
        assert_eq!(stores.notifications.writes() - before, 3);
        for u in crowd.iter().map(String::as_str).chain(["bob", "carol"]) {
            assert_eq!(summaries(&stores, u).len(), 1, "{u}");
        }
        // Redelivered: every chunk was delivered before, so each is written one by one, and
        // changes nothing.
        assert!(deliver(&stores, &dlq, &[&updated()]).await.is_empty());
        for u in ["watcher-000", "watcher-117", "bob"] {
            assert_eq!(summaries(&stores, u).len(), 1, "{u}");
            assert_eq!(
                stores.notifications.unread_count(&user(u)).await.unwrap(),
                1,
                "{u}"
            );
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
        assert_eq!(
            stores
                .notifications
                .unread_count(&user("bob"))
                .await
                .unwrap(),
            1
        );
        assert_eq!(stores.live.sent().len(), 1);
    }
}
