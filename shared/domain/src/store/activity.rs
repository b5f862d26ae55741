//! The activity log's ports: entries written in batches (idempotent on the event id), read by
//! slice, and the episode labels they carry.

use std::collections::HashMap;
use std::future::Future;

use super::StoreError;
use crate::activity::ActivityEntry;
use crate::actor::UserId;
use crate::event::EventType;
use crate::ids::{EpisodeId, EventId};

/// Which slice of the log to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityQuery {
    pub episode: Option<EpisodeId>,
    pub actor: Option<UserId>,
    pub action: Option<EventType>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// Inclusive bounds on the event ids (UUIDv7 bounds of a time range).
    pub from_id: Option<String>,
    pub to_id: Option<String>,
    pub limit: u16,
    /// (episode id, event id) of the last entry of the previous page.
    pub after: Option<(String, String)>,
}

/// A page of entries; `next` is where the next one starts.
#[derive(Debug, Clone)]
pub struct ActivityPage {
    pub items: Vec<ActivityEntry>,
    pub next: Option<(String, String)>,
}

pub trait ActivityWriter {
    /// Writes the entries (an entry named twice is written once; writing one again writes the
    /// same item). Returns the event ids the store left unwritten.
    fn put_batch(
        &self,
        entries: &[ActivityEntry],
    ) -> impl Future<Output = Result<Vec<EventId>, StoreError>> + Send;
}

pub trait ActivityReader {
    fn query(
        &self,
        query: &ActivityQuery,
    ) -> impl Future<Output = Result<ActivityPage, StoreError>> + Send;
}

/// "S2E4" (or the quoted title) of episodes, for entries and notifications about them.
pub trait EpisodeLabels {
    /// The label of each episode that exists; a missing one has none.
    fn labels(
        &self,
        ids: &[EpisodeId],
    ) -> impl Future<Output = Result<HashMap<EpisodeId, String>, StoreError>> + Send;
}
