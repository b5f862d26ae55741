//! The search index's ports: what the search worker writes ([`SearchIndexWriter`]) and what
//! `GET /episodes?q=` reads ([`SearchIndexReader`]).
//!
//! One worker at a time writes an episode's entries: it claims the episode's index record for
//! [`CLAIM_SECONDS`](crate::search::CLAIM_SECONDS), records as pending the tokens it is about
//! to add, writes the entries, then releases the record with the terms it now holds. A worker
//! that stopped half-way leaves its pending tokens behind, and the next one clears them.

use std::collections::BTreeSet;
use std::future::Future;

use super::StoreError;
use crate::ids::EpisodeId;
use crate::search::{IndexState, Match, Plan, Terms, Token};
use crate::time::Timestamp;

/// Who holds an episode's index record, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Unique to the worker's attempt.
    pub owner: String,
    pub until: Timestamp,
}

/// The claim is no longer this worker's (it outlived [`Claim::until`] and another took it):
/// what it wrote is accounted for as pending, and the next worker finishes the job.
#[derive(Debug, thiserror::Error)]
#[error("the index record of episode {0} is no longer this worker's")]
pub struct ClaimLost(pub EpisodeId);

pub trait SearchIndexWriter {
    /// The record as it is now (a strongly consistent read); `None` if never indexed.
    fn state(
        &self,
        episode: EpisodeId,
    ) -> impl Future<Output = Result<Option<IndexState>, StoreError>> + Send;

    /// Takes the record for `claim` unless another worker holds it past `now`; the state as
    /// of the claim, or `None` when it is held.
    fn claim(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<IndexState>, StoreError>> + Send;

    /// Adds `tokens` to the record's pending ones, while the claim holds.
    fn reserve(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        tokens: &BTreeSet<Token>,
    ) -> impl Future<Output = Result<Result<(), ClaimLost>, StoreError>> + Send;

    /// Moves a settled record (nothing pending, no claim held) from version `from` to `to`
    /// without claiming it: one write for a change that changes no word (a status move).
    /// `false`, and nothing written, when the record is not settled at `from`.
    fn advance(
        &self,
        episode: EpisodeId,
        from: u64,
        to: u64,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Writes the plan's entries (puts and deletes are idempotent).
    fn apply(
        &self,
        episode: EpisodeId,
        plan: &Plan,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records `terms` at `version` with nothing pending, and lets go of the record; no terms
    /// remove the record (a deleted episode).
    fn release(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        terms: &Terms,
        version: Option<u64>,
    ) -> impl Future<Output = Result<Result<(), ClaimLost>, StoreError>> + Send;
}

/// Why a word's entries could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// It matches more than [`MAX_MATCHES_PER_WORD`](crate::search::MAX_MATCHES_PER_WORD)
    /// entries.
    #[error("“{0}” matches too many episodes")]
    TooBroad(Token),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub trait SearchIndexReader {
    /// Every entry the word finds ([`Token::finds`]), in no particular order.
    fn matches(&self, word: &Token)
    -> impl Future<Output = Result<Vec<Match>, LookupError>> + Send;
}
