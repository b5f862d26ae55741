//! A batch of events to notifications: decide the audience (domain rules), look up watchers and
//! preferences, write one notification per (event, recipient), report partial failures.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use aws_adapters::{DeadLetterQueue, DynamoActivityStore, DynamoNotificationStore, MessageQueue};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::notification::{audience, recipients, requester};
use domain::realtime::Addressed;
use domain::store::MessageSender;
use domain::store::StoreError;
use domain::{ActivityEntry, Audience, DomainEvent, EpisodeId, Notice, Notification, UserId};
use lambda_kit::sqs::{batch_response, read_events};
use lambda_runtime::LambdaEvent;

#[derive(Debug)]
pub struct Stores {
    pub notifications: DynamoNotificationStore,
    pub labels: DynamoActivityStore,
    /// The realtime queue: written notifications go on to their recipients' open connections.
    pub live: MessageQueue,
}

/// Notifications per realtime notice (keeps each SQS message far below 256 KB).
const NOTIFICATIONS_PER_NOTICE: usize = 50;

pub async fn handle(
    stores: &Stores,
    dead_letters: &DeadLetterQueue,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
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
    let delivered_together = match stores.notifications.deliver_all(&all).await {
        Ok(done) => done,
        Err(err) => {
            tracing::warn!(error = %err, "batched delivery failed; delivering one by one");
            false
        }
    };
    let mut live: Vec<(&String, Vec<Addressed>)> = Vec::new();
    for (message_id, e, notes) in planned {
        let mut ok = true;
        if !delivered_together {
            for note in &notes {
                // Idempotent per (event, recipient): a redelivery, or a retry, writes only the missing.
                if let Err(err) = stores.notifications.deliver(note).await {
                    tracing::warn!(event_id = %e.id, error = %err, "notification not delivered; will retry");
                    ok = false;
                }
            }
        }
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
