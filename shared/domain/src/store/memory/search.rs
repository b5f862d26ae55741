//! The search index in memory, with the adapter's conditions: entries by (token, episode),
//! records with their claims.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::poisoned;
use crate::ids::EpisodeId;
use crate::search::{Fields, IndexState, MAX_MATCHES_PER_WORD, Match, Plan, Terms, Token};
use crate::store::StoreError;
use crate::store::search::{Claim, ClaimLost, LookupError, SearchIndexReader, SearchIndexWriter};
use crate::time::Timestamp;

#[derive(Debug, Default)]
struct Index {
    entries: BTreeMap<(Token, EpisodeId), Fields>,
    records: BTreeMap<EpisodeId, (IndexState, Option<Claim>)>,
    entry_writes: usize,
}

/// Clones share the index.
#[derive(Debug, Clone, Default)]
pub struct InMemorySearchIndex(Arc<Mutex<Index>>);

impl InMemorySearchIndex {
    /// The entries held for an episode, by token.
    pub fn entries_of(&self, episode: EpisodeId) -> BTreeMap<Token, Fields> {
        self.0
            .lock()
            .map(|i| {
                i.entries
                    .iter()
                    .filter(|((_, e), _)| *e == episode)
                    .map(|((t, _), f)| (t.clone(), *f))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Entry puts and deletes so far.
    pub fn entry_writes(&self) -> usize {
        self.0.lock().map(|i| i.entry_writes).unwrap_or_default()
    }

    /// An entry as a worker that stopped half-way may leave it (for tests).
    pub fn put_entry(&self, token: Token, episode: EpisodeId, fields: Fields) {
        if let Ok(mut i) = self.0.lock() {
            i.entries.insert((token, episode), fields);
        }
    }

    fn holds(claims: Option<&Claim>, claim: &Claim) -> bool {
        claims.is_some_and(|c| c.owner == claim.owner)
    }
}

impl SearchIndexWriter for InMemorySearchIndex {
    async fn state(&self, episode: EpisodeId) -> Result<Option<IndexState>, StoreError> {
        let i = self.0.lock().map_err(|_| poisoned())?;
        Ok(i.records.get(&episode).map(|(s, _)| s.clone()))
    }

    async fn claim(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        now: Timestamp,
    ) -> Result<Option<IndexState>, StoreError> {
        let mut i = self.0.lock().map_err(|_| poisoned())?;
        let (state, held) = i.records.entry(episode).or_default();
        if held.as_ref().is_some_and(|c| c.until >= now) {
            return Ok(None);
        }
        *held = Some(claim.clone());
        Ok(Some(state.clone()))
    }

    async fn reserve(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        tokens: &BTreeSet<Token>,
    ) -> Result<Result<(), ClaimLost>, StoreError> {
        let mut i = self.0.lock().map_err(|_| poisoned())?;
        match i.records.get_mut(&episode) {
            Some((state, held)) if Self::holds(held.as_ref(), claim) => {
                state.pending.extend(tokens.iter().cloned());
                Ok(Ok(()))
            }
            _ => Ok(Err(ClaimLost(episode))),
        }
    }

    async fn advance(
        &self,
        episode: EpisodeId,
        from: u64,
        to: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut i = self.0.lock().map_err(|_| poisoned())?;
        match i.records.get_mut(&episode) {
            Some((state, held))
                if state.version == Some(from)
                    && state.pending.is_empty()
                    && held.as_ref().is_none_or(|c| c.until < now) =>
            {
                state.version = Some(to);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn apply(&self, episode: EpisodeId, plan: &Plan) -> Result<(), StoreError> {
        let mut i = self.0.lock().map_err(|_| poisoned())?;
        for (token, fields) in &plan.puts {
            i.entries.insert((token.clone(), episode), *fields);
        }
        for token in &plan.deletes {
            i.entries.remove(&(token.clone(), episode));
        }
        i.entry_writes += plan.entry_writes();
        Ok(())
    }

    async fn release(
        &self,
        episode: EpisodeId,
        claim: &Claim,
        terms: &Terms,
        version: Option<u64>,
    ) -> Result<Result<(), ClaimLost>, StoreError> {
        let mut i = self.0.lock().map_err(|_| poisoned())?;
        match i.records.get(&episode) {
            Some((_, held)) if Self::holds(held.as_ref(), claim) => {}
            _ => return Ok(Err(ClaimLost(episode))),
        }
        if terms.is_empty() {
            i.records.remove(&episode);
        } else {
            let state = IndexState {
                terms: terms.clone(),
                pending: BTreeSet::new(),
                version,
            };
            i.records.insert(episode, (state, None));
        }
        Ok(Ok(()))
    }
}

impl SearchIndexReader for InMemorySearchIndex {
    async fn matches(&self, word: &Token) -> Result<Vec<Match>, LookupError> {
        let i = self.0.lock().map_err(|_| poisoned())?;
        let found: Vec<Match> = i
            .entries
            .iter()
            .filter(|((token, _), _)| word.finds(token))
            .map(|((_, episode), fields)| Match {
                episode: *episode,
                fields: *fields,
            })
            .collect();
        if found.len() > MAX_MATCHES_PER_WORD {
            return Err(LookupError::TooBroad(word.clone()));
        }
        Ok(found)
    }
}
