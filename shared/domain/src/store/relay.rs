//! The relay's outbound side: each domain event to the queues its type routes to, in batches
//! that stay inside the queue's limits, each message accepted or refused on its own.

use std::future::Future;

use crate::routing::Queue;

/// At most this many messages in one batch (SQS's `SendMessageBatch` limit).
pub const BATCH_MAX: usize = 10;
/// At most this many bytes of bodies and attributes in one batch (256 KiB, SQS's limit on the
/// whole request as on one message).
pub const BATCH_BYTES: usize = 256 * 1024;

/// One message to send: the event's JSON and the attributes consumers filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub event_id: String,
    pub event_type: String,
    pub schema_version: u16,
    pub body: String,
}

impl OutgoingMessage {
    /// What the message counts for against the limit on a batch: the body and each
    /// attribute's name, type and value.
    pub fn size(&self) -> usize {
        const ATTRS: usize = "event_type".len()
            + "String".len()
            + "schema_version".len()
            + "Number".len()
            + "event_id".len()
            + "String".len();
        self.body.len()
            + ATTRS
            + self.event_type.len()
            + self.schema_version.to_string().len()
            + self.event_id.len()
    }
}

/// Where the relay sends events: one batch to one queue at a time.
pub trait EventPublisher {
    /// Sends up to [`BATCH_MAX`] messages (at most [`BATCH_BYTES`] together) to `queue`;
    /// returns the indexes of those not accepted. A transport failure refuses them all.
    fn send_batch(
        &self,
        queue: Queue,
        messages: &[OutgoingMessage],
    ) -> impl Future<Output = Vec<usize>> + Send;
}
