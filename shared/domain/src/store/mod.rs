//! The narrow ports the handlers need. Each handler takes only the capability it uses, and the
//! function's IAM policy grants only the calls behind it.

use std::future::Future;

use crate::episode::{Episode, EpisodeDeletion, EpisodeStatus, EpisodeUpdate, Rejection};
use crate::event::DomainEvent;
use crate::ids::EpisodeId;
use crate::validation::FieldError;

/// An `Idempotency-Key` and what identifies the request it came with: a create that names a
/// key its user used in the last [`IDEMPOTENCY_HOURS`] writes nothing and names what the first
/// one created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
}

/// How long an `Idempotency-Key` names what it created.
pub const IDEMPOTENCY_HOURS: i64 = 24;

pub mod activity;
pub mod analytics;
pub mod export;
pub mod file;
pub mod job;
pub mod memory;
pub mod notification;
pub mod object;
pub mod realtime;
pub mod relay;
pub mod search;

/// The store could not do what was asked for reasons other than the domain's rules.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write was refused; the domain's explanation of why.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Transport, throttling, corrupt items: nothing the caller can fix.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

/// Where a consumer parks a message it can never process (it does not parse, or names an
/// unknown event type or version), kept for a person to look at, blocking nothing.
pub trait DeadLetters {
    fn park(&self, body: &str, reason: &str)
    -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A queue this function sends to (a delayed job retry, the files worker's tasks).
pub trait MessageSender {
    /// One message, delivered after `delay_seconds` (at most 900).
    fn send(
        &self,
        body: String,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Several messages; fails if the queue refused any of them (senders are idempotent).
    fn send_all(&self, bodies: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Whether an episode exists and is not deleted: a cheap check for the error paths of other
/// aggregates (a file or job of an episode that does not exist).
pub trait EpisodeExistence {
    fn episode_exists(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A bounded page size: 1 to 100, 20 when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u16);

impl PageSize {
    pub const DEFAULT: Self = Self(20);
    pub const MAX: u16 = 100;
    /// The largest page, for internal sweeps.
    pub const LARGEST: Self = Self(Self::MAX);

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        match s.parse::<u16>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(FieldError::new("limit", "must be an integer from 1 to 100")),
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// Newest first, optionally only one status, resuming after an episode id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub status: Option<EpisodeStatus>,
    pub limit: PageSize,
    pub after: Option<EpisodeId>,
}

/// One page, and where the next one starts when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, K = EpisodeId> {
    pub items: Vec<T>,
    pub next_after: Option<K>,
}

impl<T, K> Page<T, K> {
    /// The page of a query that asked for one item more than `wanted` (to learn whether a
    /// next page exists without a second call); `store_has_more` when the store stopped early
    /// (a filtered or size-limited query). The next page starts after the last item's `key`.
    pub fn from_query(
        mut items: Vec<T>,
        wanted: usize,
        store_has_more: bool,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let more = items.len() > wanted || store_has_more;
        items.truncate(wanted);
        let next_after = if more { items.last().map(key) } else { None };
        Self { items, next_after }
    }
}

pub trait EpisodeReader {
    /// The episode, deleted ones included (callers decide what a tombstone means).
    fn get(
        &self,
        id: EpisodeId,
    ) -> impl Future<Output = Result<Option<Episode>, StoreError>> + Send;

    /// Those of the episodes that exist (tombstones included), in no particular order: at
    /// most [`PageSize::MAX`] ids. One `get` each unless the store reads them together.
    fn get_many(
        &self,
        ids: &[EpisodeId],
    ) -> impl Future<Output = Result<Vec<Episode>, StoreError>> + Send
    where
        Self: Sync,
    {
        async move {
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                found.extend(self.get(*id).await?);
            }
            Ok(found)
        }
    }
}

pub trait EpisodeLister {
    fn list(
        &self,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Page<Episode>, StoreError>> + Send;
}

/// Writes an episode change and its event atomically, in one call.
pub trait EpisodeWriter {
    /// Creates the episode with its event (and its creator's watch). With an idempotency key
    /// its user used in the last 24 hours it writes nothing and is refused with
    /// [`Rejection::Replayed`], naming the episode that key created.
    fn create(
        &self,
        episode: &Episode,
        event: &DomainEvent,
        idempotency: Option<Idempotency<'_>>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies the update only if the stored episode is at `update.expected`, not deleted, and
    /// (when the status changes) in a status the new one is reachable from.
    fn update(
        &self,
        update: &EpisodeUpdate,
        event: &DomainEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks the episode deleted under the deletion's conditions.
    fn delete(
        &self,
        deletion: &EpisodeDeletion,
        event: &DomainEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_page_knows_whether_another_follows() {
        let page = Page::from_query(vec![1, 2, 3], 2, false, |x: &i32| *x);
        assert_eq!((page.items, page.next_after), (vec![1, 2], Some(2)));
        let page = Page::from_query(vec![1, 2], 2, false, |x: &i32| *x);
        assert_eq!((page.items, page.next_after), (vec![1, 2], None));
        let page = Page::from_query(vec![1], 2, true, |x: &i32| *x);
        assert_eq!((page.items, page.next_after), (vec![1], Some(1)));
        let page = Page::from_query(Vec::<i32>::new(), 2, true, |x: &i32| *x);
        assert_eq!(page.next_after, None);
    }

    use super::*;

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(PageSize::parse("1").map(PageSize::get), Ok(1));
        assert_eq!(PageSize::parse("100").map(PageSize::get), Ok(100));
        for bad in ["0", "101", "-1", "ten", ""] {
            assert!(PageSize::parse(bad).is_err(), "{bad}");
        }
    }
}
