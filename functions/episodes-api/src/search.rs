//! `GET /episodes?q=`: the index's entries for each word, ranked ([`domain::search::rank`]),
//! then the page's episodes read together and checked as they are now: a deleted one, one of
//! another status, or one whose words changed since it was indexed is left out.

use std::collections::HashMap;

use domain::search::{Ranked, SearchText, rank};
use domain::store::search::{LookupError, SearchIndexReader};
use domain::store::{EpisodeReader, PageSize, StoreError};
use domain::{Episode, EpisodeId, EpisodeStatus};

/// Reads of the episodes table one request may make (each of a page of episodes, or of 100
/// with a status) before it answers with what it has and a cursor: a status few of the
/// matches have ends early rather than reading every match.
pub const MAX_EPISODE_READS: usize = 5;

/// A search as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub text: SearchText,
    pub status: Option<EpisodeStatus>,
    pub limit: PageSize,
    /// Where the previous page ended.
    pub after: Option<Ranked>,
}

impl SearchQuery {
    /// What a cursor is bound to: the words and the status.
    pub fn scope(text: &SearchText, status: Option<EpisodeStatus>) -> String {
        let status = status.map(|s| format!("&status={s}")).unwrap_or_default();
        format!("q={}{status}", text.canonical())
    }
}

/// A page of a search, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub items: Vec<Episode>,
    pub next_after: Option<Ranked>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Lookup(#[from] LookupError),
    #[error(transparent)]
    Episodes(#[from] StoreError),
}

pub async fn search(
    episodes: &(impl EpisodeReader + Sync),
    index: &impl SearchIndexReader,
    query: &SearchQuery,
) -> Result<Found, SearchError> {
    if query.text.words().is_empty() {
        return Ok(Found {
            items: Vec::new(),
            next_after: None,
        });
    }
    let mut per_word = Vec::with_capacity(query.text.words().len());
    for word in query.text.words() {
        per_word.push(index.matches(word).await?);
    }
    let ranked: Vec<Ranked> = rank(&per_word)
        .into_iter()
        .filter(|r| query.after.is_none_or(|after| r.is_after(&after)))
        .collect();

    let limit = usize::from(query.limit.get());
    // With a status, many matches may be of another: read as many as one call takes.
    let read_size = if query.status.is_some() {
        usize::from(PageSize::MAX)
    } else {
        limit
    };
    let mut items = Vec::with_capacity(limit);
    let mut last_read = None;
    for (reads, chunk) in ranked.chunks(read_size).enumerate() {
        if reads == MAX_EPISODE_READS {
            // Ends early; the next page goes on after the last match read.
            return Ok(Found {
                items,
                next_after: last_read,
            });
        }
        let ids: Vec<EpisodeId> = chunk.iter().map(|r| r.episode).collect();
        let mut read: HashMap<EpisodeId, Episode> = episodes
            .get_many(&ids)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        for (i, r) in chunk.iter().enumerate() {
            last_read = Some(*r);
            let Some(episode) = read.remove(&r.episode) else {
                continue;
            };
            let live = episode.deleted.is_none()
                && query.status.is_none_or(|s| s == episode.status)
                && query.text.score(&episode).is_some();
            if live {
                items.push(episode);
            }
            if items.len() == limit {
                let more = i + 1 < chunk.len() || ranked.len() > (reads + 1) * read_size;
                return Ok(Found {
                    items,
                    next_after: more.then_some(*r),
                });
            }
        }
    }
    Ok(Found {
        items,
        next_after: None,
    })
}

#[cfg(test)]
mod tests {
    use domain::search::{Plan, Terms};
    use domain::store::memory::{InMemoryEpisodeStore, InMemorySearchIndex};
    use domain::store::search::SearchIndexWriter;
    use domain::{
        Actor, Description, DisplayName, NewEpisode, Role, SeriesName, Timestamp, Title, UserId,
    };

    use super::*;

    struct Catalogue {
        episodes: InMemoryEpisodeStore,
        index: InMemorySearchIndex,
    }

    impl Catalogue {
        fn new() -> Self {
            Self {
                episodes: InMemoryEpisodeStore::default(),
                index: InMemorySearchIndex::default(),
            }
        }

        /// An episode, stored and indexed as the worker would.
        async fn add(&self, title: &str, series: &str, description: &str) -> Episode {
            let actor = Actor {
                id: UserId::parse("alice").unwrap(),
                name: DisplayName::new("Alice"),
                role: Role::Editor,
            };
            let e = NewEpisode {
                title: Title::parse(title).unwrap(),
                description: Description::parse(description).unwrap(),
                series: Some(SeriesName::parse(series).unwrap()),
                season: None,
                number: None,
                air_date: None,
            }
            .into_episode(EpisodeId::new(), &actor, Timestamp::now());
            self.index_as(&e).await;
            self.episodes.put(e.clone());
            e
        }

        async fn index_as(&self, e: &Episode) {
            let plan = Plan {
                puts: Terms::of(e)
                    .iter()
                    .map(|(t, f)| (t.clone(), f))
                    .collect::<Vec<_>>(),
                deletes: vec![],
            };
            self.index.apply(e.id, &plan).await.unwrap();
        }

        async fn find(&self, q: &str, status: Option<EpisodeStatus>, limit: u16) -> Found {
            self.page(q, status, limit, None).await
        }

        async fn page(
            &self,
            q: &str,
            status: Option<EpisodeStatus>,
            limit: u16,
            after: Option<Ranked>,
        ) -> Found {
            let query = SearchQuery {
                text: SearchText::parse(q).unwrap(),
                status,
                limit: PageSize::parse(&limit.to_string()).unwrap(),
                after,
            };
            search(&self.episodes, &self.index, &query).await.unwrap()
        }
    }

    fn titles(found: &Found) -> Vec<&str> {
        found.items.iter().map(|e| e.title.as_str()).collect()
    }

    #[tokio::test]
    async fn words_are_all_required_and_fields_matched_rank_before_newness() {
        let c = Catalogue::new();
        c.add("Pilot", "Harbour", "Rain.").await;
        c.add("The Storm", "Pilóts of the Harbour", "A pilot boat.")
            .await;
        c.add("Pilot light", "Kitchen", "Nothing else.").await;
        c.add("Harbour pilots", "Harbour", "The harbour at night.")
            .await;
        let found = c.find("pil harb", None, 20).await;
        assert_eq!(
            titles(&found),
            ["Harbour pilots", "The Storm", "Pilot"],
            "three fields, then two (newest first), not the kitchen"
        );
        assert_eq!(found.next_after, None);
        assert_eq!(titles(&c.find("PILOT", None, 20).await).len(), 4);
        assert!(c.find("pilot snow", None, 20).await.items.is_empty());
    }

    #[tokio::test]
    async fn pages_follow_the_ranking_without_repeats() {
        let c = Catalogue::new();
        for i in 0..7 {
            c.add(&format!("Episode {i}"), "Tides", "Waves.").await;
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = c.page("tides", None, 3, after).await;
            seen.extend(page.items.iter().map(|e| e.title.as_str().to_owned()));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = (0..7).rev().map(|i| format!("Episode {i}")).collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn the_episode_as_it_is_decides_deleted_status_and_lost_words() {
        let c = Catalogue::new();
        let mut gone = c.add("Storm one", "Tides", "").await;
        let mut edited = c.add("Storm two", "Tides", "").await;
        let mut moved = c.add("Storm three", "Tides", "").await;
        c.add("Storm four", "Tides", "").await;
        gone.deleted = Some(gone.updated.clone());
        c.episodes.put(gone);
        edited.title = Title::parse("Calm two").unwrap();
        c.episodes.put(edited);
        moved.status = EpisodeStatus::InProduction;
        c.episodes.put(moved);
        assert_eq!(
            titles(&c.find("storm", None, 20).await),
            ["Storm four", "Storm three"]
        );
        assert_eq!(
            titles(&c.find("storm", Some(EpisodeStatus::InProduction), 20).await),
            ["Storm three"]
        );
    }

    #[tokio::test]
    async fn a_rare_status_ends_the_page_early_with_a_cursor() {
        let c = Catalogue::new();
        let mut rare = c.add("Tide zero", "Tides", "").await;
        rare.status = EpisodeStatus::InProduction;
        c.episodes.put(rare);
        for i in 1..=512 {
            c.add(&format!("Tide {i}"), "Tides", "").await;
        }
        // With a status, reads of 100, at most 5: 500 of the 513 matches read, none of them
        // the rare one (the oldest).
        let first = c.find("tide", Some(EpisodeStatus::InProduction), 2).await;
        assert!(first.items.is_empty());
        let next = first.next_after.expect("a cursor to go on");
        let second = c
            .page("tide", Some(EpisodeStatus::InProduction), 2, Some(next))
            .await;
        assert_eq!(titles(&second), ["Tide zero"]);
        assert_eq!(second.next_after, None);
    }
}
