//! Sends relayed events to their SQS queues with `SendMessageBatch`, reporting per entry which
//! ones SQS did not take (the batch call succeeding says nothing about its entries).

use std::collections::HashMap;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use domain::Queue;
use domain::store::relay::{BATCH_MAX, EventPublisher, OutgoingMessage};
use domain::store::{DeadLetters, MessageSender, StoreError};

/// Queue URLs by queue, from the function's environment.
#[derive(Debug, Clone)]
pub struct SqsPublisher {
    client: Client,
    urls: HashMap<Queue, String>,
    dead_letters: DeadLetterQueue,
}

/// Where a consumer parks what it can never process (a record that does not parse, an unknown
/// event type or version) so it is kept for a person to look at without blocking anything.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    client: Client,
    url: String,
}

impl DeadLetterQueue {
    pub fn new(client: Client, url: String) -> Self {
        Self { client, url }
    }
}

impl DeadLetters for DeadLetterQueue {
    async fn park(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes(
                "reason",
                attr("String", reason.chars().take(256).collect())?,
            )
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }
}

fn attr(data_type: &str, value: String) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(StoreError::unavailable)
}

impl SqsPublisher {
    pub fn new(
        client: Client,
        urls: HashMap<Queue, String>,
        dead_letters: DeadLetterQueue,
    ) -> Self {
        Self {
            client,
            urls,
            dead_letters,
        }
    }
}

impl EventPublisher for SqsPublisher {
    /// Sends up to ten messages to `queue`; returns the indexes of those SQS did not accept.
    /// A transport failure fails them all.
    async fn send_batch(&self, queue: Queue, messages: &[OutgoingMessage]) -> Vec<usize> {
        let all = || (0..messages.len()).collect();
        let Some(url) = self.urls.get(&queue) else {
            tracing::error!(%queue, "no queue URL configured");
            return all();
        };
        let entries: Result<Vec<_>, StoreError> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .message_attributes("event_type", attr("String", m.event_type.clone())?)
                    .message_attributes(
                        "schema_version",
                        attr("Number", m.schema_version.to_string())?,
                    )
                    .message_attributes("event_id", attr("String", m.event_id.clone())?)
                    .build()
                    .map_err(StoreError::unavailable)
            })
            .collect();
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "could not build the batch");
                return all();
            }
        };
        match self
            .client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                let refused: Option<Vec<usize>> = out
                    .failed()
                    .iter()
                    .map(|f| {
                        tracing::warn!(%queue, id = f.id(), code = f.code(), "SQS refused an entry");
                        f.id().parse().ok()
                    })
                    .collect();
                // An entry id we did not send: which entries failed is unknown, so all did.
                refused.unwrap_or_else(all)
            }
            Err(e) => {
                use aws_sdk_sqs::error::ProvideErrorMetadata;
                tracing::warn!(%queue, code = e.code(), error = e.message(), "SendMessageBatch failed");
                all()
            }
        }
    }
}

impl DeadLetters for SqsPublisher {
    /// Parks a record that cannot be relayed (it does not parse as an event) in the relay's
    /// dead-letter queue, with the reason, so the stream can move on without losing it.
    async fn park(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        self.dead_letters.park(body, reason).await
    }
}

/// A queue this code sends its own messages to: notices to the broadcaster (presence,
/// notifications), tasks to the files worker.
#[derive(Debug, Clone)]
pub struct MessageQueue {
    client: Client,
    url: String,
}

impl MessageQueue {
    pub fn new(client: Client, url: String) -> Self {
        Self { client, url }
    }
}

impl MessageSender for MessageQueue {
    /// Sends one message, delivered after `delay_seconds` (at most 900).
    async fn send(&self, body: String, delay_seconds: u32) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(i32::try_from(delay_seconds.min(900)).unwrap_or(900))
            .send()
            .await
            .map(|_| ())
            .map_err(StoreError::unavailable)
    }

    /// Sends messages in batches of ten; fails if SQS refused any of them.
    async fn send_all(&self, bodies: &[String]) -> Result<(), StoreError> {
        for chunk in bodies.chunks(BATCH_MAX) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(StoreError::unavailable)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            if let Some(f) = out.failed().first() {
                return Err(StoreError::unavailable(std::io::Error::other(format!(
                    "SQS refused {} of {} messages ({})",
                    out.failed().len(),
                    chunk.len(),
                    f.code()
                ))));
            }
        }
        Ok(())
    }
}
