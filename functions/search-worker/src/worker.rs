//! A batch of episode events to index writes: each episode named in the batch is indexed once,
//! as it is now (so redelivered, repeated and out-of-order events change nothing), writing only
//! the difference from what the index holds.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use domain::search::{CLAIM_SECONDS, IndexState, Plan, Terms};
use domain::store::search::{Claim, ClaimLost, SearchIndexWriter};
use domain::store::{DeadLetters, EpisodeReader, StoreError};
use domain::{EpisodeId, Timestamp};
use lambda_kit::sqs::{batch_response, read_events};
use lambda_runtime::LambdaEvent;

/// How long a worker waits for another one's claim on the same episode before the message
/// comes again later.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub tries: u32,
    pub pause: Duration,
}

impl Patience {
    /// 3 s in all (15 pauses of 200 ms): another worker holds an episode for a few calls.
    pub const WORKER: Self = Self {
        tries: 16,
        pause: Duration::from_millis(200),
    };
}

/// What indexing one episode did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The index was already at the episode's version: nothing written.
    Settled,
    Indexed {
        /// Entries written or deleted.
        entry_writes: usize,
        /// Writes of the episode's record: the claim, the pending tokens, the release.
        record_writes: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lost(#[from] ClaimLost),
    #[error("another worker is indexing episode {0}")]
    Busy(EpisodeId),
}

pub async fn handle(
    index: &impl SearchIndexWriter,
    episodes: &(impl EpisodeReader + Sync),
    dead_letters: &impl DeadLetters,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    handle_with(index, episodes, dead_letters, event, Patience::WORKER).await
}

pub async fn handle_with(
    index: &impl SearchIndexWriter,
    episodes: &(impl EpisodeReader + Sync),
    dead_letters: &impl DeadLetters,
    event: LambdaEvent<SqsEvent>,
    patience: Patience,
) -> Result<SqsBatchResponse, Infallible> {
    let (events, mut failed) = read_events(&event.payload.records, dead_letters).await;
    let mut by_episode: BTreeMap<EpisodeId, Vec<String>> = BTreeMap::new();
    for (message_id, e) in events {
        match e.episode_id {
            Some(episode) => by_episode.entry(episode).or_default().push(message_id),
            // Never routed here (only episode events are); nothing to index.
            None => tracing::warn!(event_id = %e.id, "an event about no episode; skipped"),
        }
    }
    for (episode, message_ids) in by_episode {
        match reindex(index, episodes, episode, patience).await {
            Ok(Outcome::Settled) => {
                tracing::info!(episode_id = %episode, "index already current");
            }
            Ok(Outcome::Indexed {
                entry_writes,
                record_writes,
            }) => {
                tracing::info!(episode_id = %episode, entry_writes, record_writes, "episode indexed");
            }
            Err(e) => {
                tracing::warn!(episode_id = %episode, error = %e, "not indexed; its events will come again");
                failed.extend(message_ids);
            }
        }
    }
    Ok(batch_response(failed))
}

/// Brings the index to the episode as it is now.
pub async fn reindex(
    index: &impl SearchIndexWriter,
    episodes: &(impl EpisodeReader + Sync),
    episode: EpisodeId,
    patience: Patience,
) -> Result<Outcome, IndexError> {
    let version = |e: &Option<domain::Episode>| e.as_ref().map(|e| e.version.get());
    // Settled already (a redelivery, or a later event's worker got here first): two reads.
    let current = episodes.get(episode).await?;
    let state = index.state(episode).await?;
    let gone = current.as_ref().is_none_or(|e| e.deleted.is_some());
    match &state {
        Some(s) if s.is_at(version(&current)) => return Ok(Outcome::Settled),
        None if gone => return Ok(Outcome::Settled),
        _ => {}
    }
    // A change of no word (a status move): the record's version moves on, in one write.
    if let (Some(s), Some(live)) = (&state, current.as_ref().filter(|e| e.deleted.is_none()))
        && let (Some(from), true) = (s.version, s.pending.is_empty())
        && from < live.version.get()
        && Terms::of(live) == s.terms
        && index
            .advance(episode, from, live.version.get(), Timestamp::now())
            .await?
    {
        return Ok(Outcome::Indexed {
            entry_writes: 0,
            record_writes: 1,
        });
    }

    let claim = Claim {
        owner: uuid::Uuid::now_v7().to_string(),
        until: Timestamp::now().plus_seconds(CLAIM_SECONDS),
    };
    let state = claimed(index, episode, &claim, patience).await?;
    // Read again under the claim: a change made before it is in this read, one made after it
    // brings its own event, whose worker waits for this claim.
    let current = episodes.get(episode).await?;
    let wanted = current.as_ref().map(Terms::of).unwrap_or_default();
    let plan = Plan::between(&state, &wanted);
    let unrecorded = plan.unrecorded(&state);
    let mut record_writes = 2;
    if !unrecorded.is_empty() {
        index.reserve(episode, &claim, &unrecorded).await??;
        record_writes += 1;
    }
    index.apply(episode, &plan).await?;
    index
        .release(episode, &claim, &wanted, version(&current))
        .await??;
    Ok(Outcome::Indexed {
        entry_writes: plan.entry_writes(),
        record_writes,
    })
}

async fn claimed(
    index: &impl SearchIndexWriter,
    episode: EpisodeId,
    claim: &Claim,
    patience: Patience,
) -> Result<IndexState, IndexError> {
    for attempt in 0..patience.tries {
        if attempt > 0 {
            tokio::time::sleep(patience.pause).await;
        }
        if let Some(state) = index.claim(episode, claim, Timestamp::now()).await? {
            return Ok(state);
        }
    }
    Err(IndexError::Busy(episode))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use domain::search::{Fields, Token};
    use domain::store::memory::{InMemoryDeadLetters, InMemoryEpisodeStore, InMemorySearchIndex};
    use domain::store::search::SearchIndexReader;
    use domain::{
        Actor, Description, DisplayName, DomainEvent, Episode, NewEpisode, Role, SeriesName, Title,
        UserId, Version,
    };
    use lambda_kit::fixture::{failed, sqs_invocation};

    use super::*;

    const CREATED: &str = include_str!("../../../events/domain/episode.created.json");
    const UPDATED: &str = include_str!("../../../events/domain/episode.updated.json");
    const DELETED: &str = include_str!("../../../events/domain/episode.deleted.json");

    const QUICK: Patience = Patience {
        tries: 2,
        pause: Duration::from_millis(1),
    };

    const FIXTURE: &str = include_str!("../../../events/search-worker/episode-deleted.json");

    fn batch(bodies: &[&str]) -> LambdaEvent<SqsEvent> {
        sqs_invocation(FIXTURE, bodies).unwrap()
    }

    /// The golden events' episode.
    fn episode_id() -> EpisodeId {
        let e: DomainEvent = serde_json::from_str(CREATED).unwrap();
        e.episode_id.unwrap()
    }

    fn episode(title: &str, description: &str, version: u64) -> Episode {
        let actor = Actor {
            id: UserId::parse("alice").unwrap(),
            name: DisplayName::new("Alice"),
            role: Role::Editor,
        };
        let mut e = NewEpisode {
            title: Title::parse(title).unwrap(),
            description: Description::parse(description).unwrap(),
            series: Some(SeriesName::parse("Harbour").unwrap()),
            season: None,
            number: None,
            air_date: None,
        }
        .into_episode(episode_id(), &actor, Timestamp::now());
        e.version = Version::new(version).unwrap();
        e
    }

    fn token(s: &str) -> Token {
        Token::parse(s).unwrap()
    }

    async fn found(index: &InMemorySearchIndex, word: &str) -> Vec<EpisodeId> {
        index
            .matches(&token(word))
            .await
            .unwrap()
            .iter()
            .map(|m| m.episode)
            .collect()
    }

    async fn run(
        index: &InMemorySearchIndex,
        store: &InMemoryEpisodeStore,
        bodies: &[&str],
    ) -> Vec<String> {
        let r = handle_with(
            index,
            store,
            &InMemoryDeadLetters::default(),
            batch(bodies),
            QUICK,
        )
        .await
        .unwrap();
        failed(r)
    }

    #[tokio::test]
    async fn an_episode_is_indexed_as_it_is_and_again_changes_nothing() {
        let index = InMemorySearchIndex::default();
        let store = InMemoryEpisodeStore::default();
        store.put(episode("The Pilot", "Rain over the harbour.", 1));
        let r = run(&index, &store, &[CREATED]).await;
        assert!(r.is_empty());
        let entries = index.entries_of(episode_id());
        assert_eq!(entries.len(), 5, "{entries:?}");
        assert_eq!(
            entries[&token("harbour")],
            Fields::SERIES.with(Fields::DESCRIPTION)
        );
        assert_eq!(found(&index, "pil").await, [episode_id()]);
        let writes = index.entry_writes();
        assert_eq!(writes, 5);

        // Redelivered, twice in one batch, or any other event of the same version: nothing.
        run(&index, &store, &[CREATED, CREATED, UPDATED]).await;
        assert_eq!(index.entry_writes(), writes);
        assert_eq!(
            reindex(&index, &store, episode_id(), QUICK).await.unwrap(),
            Outcome::Settled
        );
    }

    #[tokio::test]
    async fn an_edit_writes_the_difference_and_a_deletion_takes_every_entry() {
        let index = InMemorySearchIndex::default();
        let store = InMemoryEpisodeStore::default();
        store.put(episode("The Pilot", "Rain over the harbour.", 1));
        run(&index, &store, &[CREATED]).await;
        let before = index.entry_writes();

        store.put(episode("The Storm", "Rain over the harbour.", 2));
        // The created event comes late, after the edit: the index follows the episode.
        let r = run(&index, &store, &[CREATED]).await;
        assert!(r.is_empty());
        assert_eq!(index.entry_writes() - before, 2, "pilot out, storm in");
        assert!(found(&index, "pilot").await.is_empty());
        assert_eq!(found(&index, "sto").await, [episode_id()]);

        let mut deleted = episode("The Storm", "Rain over the harbour.", 3);
        deleted.deleted = Some(deleted.updated.clone());
        store.put(deleted);
        run(&index, &store, &[DELETED]).await;
        assert!(index.entries_of(episode_id()).is_empty());
        assert_eq!(index.state(episode_id()).await.unwrap(), None);
        let after = index.entry_writes();
        run(&index, &store, &[DELETED, UPDATED]).await;
        assert_eq!(index.entry_writes(), after, "gone stays gone");
    }

    #[tokio::test]
    async fn a_change_of_no_word_moves_the_record_on_in_one_write() {
        let index = InMemorySearchIndex::default();
        let store = InMemoryEpisodeStore::default();
        store.put(episode("The Pilot", "Rain.", 1));
        run(&index, &store, &[CREATED]).await;
        let before = index.entry_writes();
        let mut moved = episode("The Pilot", "Rain.", 2);
        moved.status = domain::EpisodeStatus::InProduction;
        store.put(moved);
        assert_eq!(
            reindex(&index, &store, episode_id(), QUICK).await.unwrap(),
            Outcome::Indexed {
                entry_writes: 0,
                record_writes: 1
            }
        );
        assert_eq!(index.entry_writes(), before);
        assert!(
            index
                .state(episode_id())
                .await
                .unwrap()
                .unwrap()
                .is_at(Some(2))
        );
        // Held by another worker, the record is not moved behind its back.
        store.put(episode("The Pilot", "Rain.", 3));
        let other = Claim {
            owner: "other".into(),
            until: Timestamp::now().plus_seconds(60),
        };
        index
            .claim(episode_id(), &other, Timestamp::now())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            reindex(&index, &store, episode_id(), QUICK).await,
            Err(IndexError::Busy(_))
        ));
    }

    #[tokio::test]
    async fn what_a_stopped_worker_left_is_cleared_by_the_next() {
        let index = InMemorySearchIndex::default();
        let store = InMemoryEpisodeStore::default();
        store.put(episode("The Pilot", "Rain.", 1));
        // A worker claimed the record, reserved "ghost", wrote it, and stopped; its claim
        // has run out.
        let stopped = Claim {
            owner: "stopped".into(),
            until: Timestamp::now().plus_seconds(-1),
        };
        index
            .claim(episode_id(), &stopped, Timestamp::now().plus_seconds(-100))
            .await
            .unwrap()
            .unwrap();
        let ghost = BTreeSet::from([token("ghost")]);
        index
            .reserve(episode_id(), &stopped, &ghost)
            .await
            .unwrap()
            .unwrap();
        index.put_entry(token("ghost"), episode_id(), Fields::TITLE);

        let r = run(&index, &store, &[UPDATED]).await;
        assert!(r.is_empty());
        assert!(found(&index, "ghost").await.is_empty());
        assert_eq!(found(&index, "pilot").await, [episode_id()]);
        assert!(
            index
                .state(episode_id())
                .await
                .unwrap()
                .unwrap()
                .is_at(Some(1))
        );
        // The stopped worker cannot release what is no longer its own.
        let late = index
            .release(episode_id(), &stopped, &Terms::default(), None)
            .await
            .unwrap();
        assert!(late.is_err());
    }

    #[tokio::test]
    async fn an_episode_another_worker_holds_comes_again_later() {
        let index = InMemorySearchIndex::default();
        let store = InMemoryEpisodeStore::default();
        store.put(episode("The Pilot", "Rain.", 1));
        let other = Claim {
            owner: "other".into(),
            until: Timestamp::now().plus_seconds(60),
        };
        index
            .claim(episode_id(), &other, Timestamp::now())
            .await
            .unwrap()
            .unwrap();
        let r = run(&index, &store, &[CREATED, UPDATED]).await;
        assert_eq!(r, ["m0", "m1"]);
        assert!(index.entries_of(episode_id()).is_empty());
    }

    #[tokio::test]
    async fn poison_is_parked_and_the_rest_indexed() {
        let index = InMemorySearchIndex::default();
        let store = InMemoryEpisodeStore::default();
        store.put(episode("The Pilot", "Rain.", 1));
        let dlq = InMemoryDeadLetters::default();
        let r = handle_with(&index, &store, &dlq, batch(&["{not json", CREATED]), QUICK)
            .await
            .unwrap();
        assert!(failed(r).is_empty());
        assert_eq!(dlq.parked().len(), 1);
        assert_eq!(found(&index, "pilot").await, [episode_id()]);
    }
}
