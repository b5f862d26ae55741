//! The queue ports: what is sent arrives once with its body, `send_all` beyond one request
//! arrives whole, a parked message keeps its body, and the relay's batches are accepted whole
//! up to ten entries and refused whole beyond.

use std::collections::BTreeSet;

use domain::EpisodeId;
use domain::Queue;
use domain::store::relay::{BATCH_MAX, EventPublisher, OutgoingMessage};
use domain::store::{DeadLetters, MessageSender};

use crate::{QueueWorld, Sink};

/// Bodies no other run has sent.
fn bodies(n: usize) -> Vec<String> {
    let run = EpisodeId::new();
    (0..n)
        .map(|i| format!(r#"{{"run":"{run}","n":{i}}}"#))
        .collect()
}

fn set(bodies: &[String]) -> BTreeSet<String> {
    bodies.iter().cloned().collect()
}

fn message(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        event_id: domain::EventId::new().to_string(),
        event_type: "episode.updated".to_owned(),
        schema_version: 1,
        body: body.to_owned(),
    }
}

pub async fn what_is_sent_arrives_once_with_its_body(w: &impl QueueWorld) {
    let sent = bodies(23);
    w.queue()
        .send(sent[0].clone(), 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // More than one SendMessageBatch's worth.
    w.queue()
        .send_all(&sent[1..])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = w.received(Sink::Queue, sent.len()).await;
    assert_eq!(got.len(), sent.len(), "each once");
    assert_eq!(set(&got), set(&sent));
}

pub async fn a_parked_message_keeps_its_body(w: &impl QueueWorld) {
    let body = bodies(1).remove(0);
    w.parking()
        .park(&body, "not an event")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.received(Sink::DeadLetters, 1).await, [body]);
}

pub async fn a_batch_inside_the_limits_is_accepted_whole(w: &impl QueueWorld) {
    let sent = bodies(BATCH_MAX);
    let batch: Vec<OutgoingMessage> = sent.iter().map(|b| message(b)).collect();
    let refused = w.publisher().send_batch(Queue::Activity, &batch).await;
    assert!(refused.is_empty(), "refused {refused:?}");
    let got = w.received(Sink::Published, sent.len()).await;
    assert_eq!(set(&got), set(&sent));
}

/// Over ten entries SQS refuses the whole request, and so does the fake. (Over 256 KiB AWS
/// refuses it too, `BatchRequestTooLong`, but ministack accepts it: that limit is not part of
/// the contract; the relay never sends such a batch, its unit tests pin that.)
pub async fn a_batch_beyond_ten_entries_is_refused_whole(w: &impl QueueWorld) {
    let too_many: Vec<OutgoingMessage> = bodies(BATCH_MAX + 1).iter().map(|b| message(b)).collect();
    let refused = w.publisher().send_batch(Queue::Activity, &too_many).await;
    assert_eq!(refused, (0..too_many.len()).collect::<Vec<_>>());
    assert!(
        w.received(Sink::Published, 0).await.is_empty(),
        "nothing sent"
    );
}
