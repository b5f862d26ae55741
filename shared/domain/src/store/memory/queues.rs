//! Queues: what was sent (with its delay), and what was parked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::poisoned;
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
