//! Queues: what was sent (with its delay), what the relay published, and what was parked.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::poisoned;
use crate::routing::Queue;
use crate::store::relay::{BATCH_BYTES, BATCH_MAX, EventPublisher, OutgoingMessage};
use crate::store::{DeadLetters, MessageSender, StoreError};

/// Messages sent, oldest first, with their delay. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryQueue(Arc<QueueState>);

#[derive(Debug, Default)]
struct QueueState {
    sent: Mutex<Vec<(String, u32)>>,
    down: AtomicBool,
}

impl InMemoryQueue {
    pub fn sent(&self) -> Vec<(String, u32)> {
        self.0.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Makes every following send fail (`true`) or work again (`false`).
    pub fn set_down(&self, down: bool) {
        self.0.down.store(down, Ordering::Relaxed);
    }

    fn up(&self) -> Result<(), StoreError> {
        if self.0.down.load(Ordering::Relaxed) {
            return Err(StoreError::unavailable(std::io::Error::other(
                "queue unavailable",
            )));
        }
        Ok(())
    }
}

impl MessageSender for InMemoryQueue {
    async fn send(&self, body: String, delay_seconds: u32) -> Result<(), StoreError> {
        self.up()?;
        self.0
            .sent
            .lock()
            .map_err(|_| poisoned())?
            .push((body, delay_seconds.min(900)));
        Ok(())
    }

    async fn send_all(&self, bodies: &[String]) -> Result<(), StoreError> {
        self.up()?;
        let mut sent = self.0.sent.lock().map_err(|_| poisoned())?;
        sent.extend(bodies.iter().map(|b| (b.clone(), 0)));
        Ok(())
    }
}

/// Messages parked, with the reason. Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryDeadLetters(Arc<Mutex<Vec<(String, String)>>>);

impl InMemoryDeadLetters {
    pub fn parked(&self) -> Vec<(String, String)> {
        self.0.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl DeadLetters for InMemoryDeadLetters {
    async fn park(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        self.0
            .lock()
            .map_err(|_| poisoned())?
            .push((body.to_owned(), reason.to_owned()));
        Ok(())
    }
}

/// The relay's queues and its dead-letter queue: what each queue accepted, the size of every
/// batch, what was parked, and refusals on demand (every entry while down; chosen events
/// always; parking while the dead-letter queue is down). Clones share the state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryPublisher(Arc<PublisherState>);

#[derive(Debug, Default)]
struct PublisherState {
    accepted: Mutex<Vec<(Queue, OutgoingMessage)>>,
    batches: Mutex<Vec<(usize, usize)>>,
    refused_events: Mutex<BTreeSet<String>>,
    down: AtomicBool,
    parked: Mutex<Vec<(String, String)>>,
    dead_letters_down: AtomicBool,
}

impl InMemoryPublisher {
    /// What each queue accepted, in order.
    pub fn accepted(&self) -> Vec<(Queue, OutgoingMessage)> {
        self.0
            .accepted
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// (entries, bytes) of every batch sent, accepted or not.
    pub fn batches(&self) -> Vec<(usize, usize)> {
        self.0.batches.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Every entry of every following batch is refused (`true`), or none (`false`).
    pub fn set_down(&self, down: bool) {
        self.0.down.store(down, Ordering::Relaxed);
    }

    /// What was parked, with the reason.
    pub fn parked(&self) -> Vec<(String, String)> {
        self.0.parked.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Parking fails (`true`) or works again (`false`).
    pub fn set_dead_letters_down(&self, down: bool) {
        self.0.dead_letters_down.store(down, Ordering::Relaxed);
    }

    /// The event's messages are refused on every attempt, as SQS refuses an entry.
    pub fn refuse_event(&self, event_id: &str) {
        if let Ok(mut refused) = self.0.refused_events.lock() {
            refused.insert(event_id.to_owned());
        }
    }
}

impl EventPublisher for InMemoryPublisher {
    async fn send_batch(&self, queue: Queue, messages: &[OutgoingMessage]) -> Vec<usize> {
        let all = || (0..messages.len()).collect();
        let bytes = messages.iter().map(OutgoingMessage::size).sum();
        let (Ok(mut batches), Ok(refused), Ok(mut accepted)) = (
            self.0.batches.lock(),
            self.0.refused_events.lock(),
            self.0.accepted.lock(),
        ) else {
            return all();
        };
        batches.push((messages.len(), bytes));
        // As SQS answers a request over its limits: nothing is taken.
        if self.0.down.load(Ordering::Relaxed) || messages.len() > BATCH_MAX || bytes > BATCH_BYTES
        {
            return all();
        }
        let mut not_accepted = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if refused.contains(&m.event_id) {
                not_accepted.push(i);
            } else {
                accepted.push((queue, m.clone()));
            }
        }
        not_accepted
    }
}

impl DeadLetters for InMemoryPublisher {
    async fn park(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        if self.0.dead_letters_down.load(Ordering::Relaxed) {
            return Err(StoreError::unavailable(std::io::Error::other(
                "dead-letter queue unavailable",
            )));
        }
        self.0
            .parked
            .lock()
            .map_err(|_| poisoned())?
            .push((body.to_owned(), reason.to_owned()));
        Ok(())
    }
}
