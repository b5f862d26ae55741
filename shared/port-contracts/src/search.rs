//! The search index's ports: claims exclude each other, a lost claim writes no record, entries
//! are found by prefix (and a one-character word only by itself), episodes' entries stay
//! apart.

use std::collections::BTreeSet;

use domain::EpisodeId;
use domain::search::{Fields, IndexState, Plan, Terms, Token};
use domain::store::search::{Claim, SearchIndexReader, SearchIndexWriter};
use domain::time::Timestamp;

use crate::World;

fn token(s: &str) -> Token {
    Token::parse(s).unwrap_or_else(|| panic!("{s} is not a token"))
}

fn claim(owner: &str, seconds: i64) -> Claim {
    Claim {
        owner: format!("{owner}-{}", EpisodeId::new()),
        until: Timestamp::now().plus_seconds(seconds),
    }
}

/// A word unique to this run, so that entries of earlier runs on the same table do not count.
fn unique(prefix: &str) -> String {
    let id = EpisodeId::new().to_string().replace('-', "");
    format!("{prefix}{}", &id[id.len() - 10..])
}

async fn found(w: &impl World, word: &Token) -> Vec<(EpisodeId, Fields)> {
    let mut all: Vec<_> = w
        .search()
        .matches(word)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|m| (m.episode, m.fields))
        .collect();
    all.sort_by_key(|(e, _)| *e);
    all
}

pub async fn one_claim_at_a_time_and_a_lost_claim_records_nothing(w: &impl World) {
    let index = w.search();
    let episode = EpisodeId::new();
    let ok = |r: Result<Option<IndexState>, domain::store::StoreError>| {
        r.unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        index.state(episode).await.unwrap_or_else(|e| panic!("{e}")),
        None
    );
    let first = claim("first", 60);
    let state = ok(index.claim(episode, &first, Timestamp::now()).await);
    assert_eq!(state, Some(IndexState::default()), "a record never indexed");
    let second = claim("second", 60);
    assert_eq!(
        ok(index.claim(episode, &second, Timestamp::now()).await),
        None,
        "held"
    );
    let pending = BTreeSet::from([token("alpha"), token("beta")]);
    let reserved = index.reserve(episode, &second, &pending).await;
    assert!(
        reserved.unwrap_or_else(|e| panic!("{e}")).is_err(),
        "not the holder's"
    );
    index
        .reserve(episode, &first, &pending)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));

    // Past its time the claim goes to the next worker, with the pending tokens.
    let later = Timestamp::now().plus_seconds(120);
    let taken = ok(index.claim(episode, &second, later).await)
        .unwrap_or_else(|| panic!("an expired claim is taken"));
    assert_eq!(taken.pending, pending);
    let terms = Terms::from_entries([(token("alpha"), Fields::TITLE)]);
    let late = index.release(episode, &first, &terms, Some(2)).await;
    assert!(late.unwrap_or_else(|e| panic!("{e}")).is_err(), "lost");
    index
        .release(episode, &second, &terms, Some(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let settled = index
        .state(episode)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("recorded"));
    assert_eq!(
        settled,
        IndexState {
            terms,
            pending: BTreeSet::new(),
            version: Some(3)
        }
    );
    assert!(settled.is_at(Some(3)));
    // Settled, it moves on without a claim, only from the version it is at.
    let ok_bool = |r: Result<bool, domain::store::StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
    assert!(!ok_bool(
        index.advance(episode, 2, 4, Timestamp::now()).await
    ));
    assert!(ok_bool(
        index.advance(episode, 3, 4, Timestamp::now()).await
    ));
    let fourth = claim("fourth", 60);
    let at4 =
        ok(index.claim(episode, &fourth, Timestamp::now()).await).unwrap_or_else(|| panic!("free"));
    assert_eq!(at4.version, Some(4));
    assert!(
        !ok_bool(index.advance(episode, 4, 5, Timestamp::now()).await),
        "claimed"
    );
    index
        .release(episode, &fourth, &at4.terms, Some(4))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));

    // Released with no terms, the record goes.
    let last = claim("last", 60);
    ok(index.claim(episode, &last, Timestamp::now()).await).unwrap_or_else(|| panic!("free"));
    index
        .release(episode, &last, &Terms::default(), Some(4))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        index.state(episode).await.unwrap_or_else(|e| panic!("{e}")),
        None
    );
}

pub async fn words_find_their_tokens_by_prefix_and_deletes_take_entries_away(w: &impl World) {
    let index = w.search();
    let (one, two) = (EpisodeId::new(), EpisodeId::new());
    let stem = unique("zq");
    let (short, long) = (token(&stem), token(&format!("{stem}xyz")));
    let letter = token("ǿ");
    let plan = |puts: Vec<(Token, Fields)>, deletes: Vec<Token>| Plan { puts, deletes };
    index
        .apply(
            one,
            &plan(
                vec![
                    (short.clone(), Fields::TITLE),
                    (long.clone(), Fields::DESCRIPTION),
                    (letter.clone(), Fields::SERIES),
                ],
                vec![],
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // More than one BatchWriteItem's worth, for the other episode.
    let many: Vec<(Token, Fields)> = (0..30)
        .map(|i| {
            (
                token(&format!("{stem}{i}")),
                Fields::TITLE.with(Fields::SERIES),
            )
        })
        .chain([(long.clone(), Fields::TITLE)])
        .collect();
    index
        .apply(two, &plan(many, vec![]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let word = token(&stem[..4]);
    let all = found(w, &word).await;
    assert_eq!(all.iter().filter(|(e, _)| *e == one).count(), 2);
    assert_eq!(all.iter().filter(|(e, _)| *e == two).count(), 31);
    assert_eq!(
        found(w, &long).await,
        [(one, Fields::DESCRIPTION), (two, Fields::TITLE)]
    );
    assert_eq!(
        found(w, &token(&format!("{stem}xyzw"))).await,
        [],
        "longer than any token"
    );
    // A one-character word finds only itself: "ǿ" but not "ǿx..." tokens.
    index
        .apply(
            two,
            &plan(vec![(token(&format!("ǿ{stem}")), Fields::TITLE)], vec![]),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let letters = found(w, &letter).await;
    assert!(letters.contains(&(one, Fields::SERIES)), "{letters:?}");
    assert!(!letters.iter().any(|(e, _)| *e == two), "{letters:?}");

    index
        .apply(one, &plan(vec![], vec![short.clone(), long.clone()]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found(w, &long).await, [(two, Fields::TITLE)]);
    assert!(!found(w, &word).await.iter().any(|(e, _)| *e == one));
}
