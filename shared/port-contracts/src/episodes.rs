//! The episodes' port: each change written with its event, and only from the version read;
//! a deletion is the creator's or an admin's and leaves a tombstone; the list comes newest
//! first, in pages, by status; an episode's events are read back after a given one.

use std::collections::BTreeSet;

use domain::store::realtime::EventHistory;
use domain::store::{EpisodeLister, EpisodeReader, EpisodeWriter, ListQuery, PageSize, StoreError};
use domain::{
    DomainEvent, Episode, EpisodeChanges, EpisodeDeletion, EpisodeId, EpisodeStatus, EpisodeUpdate,
    EventType, Rejection, Stamp, Timestamp, Title, UserId, Version,
};

use crate::World;
use crate::sample::{self, CREATOR, context};

async fn create(w: &impl World) -> Episode {
    let episode = sample::episode();
    let event = DomainEvent::episode_created(&context(CREATOR), &episode);
    w.episodes()
        .create(&episode, &event, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    episode
}

async fn read(w: &impl World, id: EpisodeId) -> Option<Episode> {
    w.episodes().get(id).await.unwrap_or_else(|e| panic!("{e}"))
}

fn update(episode: &Episode, expected: Version, changes: EpisodeChanges) -> EpisodeUpdate {
    EpisodeUpdate {
        id: episode.id,
        expected,
        changes,
        updated: Stamp::new(&sample::actor(CREATOR), Timestamp::now()),
    }
}

fn titled(title: &str) -> EpisodeChanges {
    EpisodeChanges {
        title: Some(Title::parse(title).unwrap_or_else(|e| panic!("{e}"))),
        ..EpisodeChanges::default()
    }
}

fn moved(to: EpisodeStatus) -> EpisodeChanges {
    EpisodeChanges {
        status: Some(to),
        ..EpisodeChanges::default()
    }
}

async fn apply(w: &impl World, u: &EpisodeUpdate) -> Result<(), StoreError> {
    let event = DomainEvent::episode_updated(&context(CREATOR), u);
    w.episodes().update(u, &event).await
}

fn deletion(episode: &Episode, by: Option<&str>, expected: Option<Version>) -> EpisodeDeletion {
    EpisodeDeletion {
        id: episode.id,
        expected,
        only_if_created_by: by.map(|u| UserId::parse(u).unwrap_or_else(|e| panic!("{e}"))),
        deleted: Stamp::new(&sample::actor(CREATOR), Timestamp::now()),
    }
}

async fn remove(w: &impl World, d: &EpisodeDeletion) -> Result<(), StoreError> {
    let event = DomainEvent::episode_deleted(&context(CREATOR), d);
    w.episodes().delete(d, &event).await
}

#[track_caller]
fn refused(result: Result<(), StoreError>) -> Rejection {
    match result {
        Err(StoreError::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

pub async fn an_idempotency_key_creates_one_episode_and_names_it_again(w: &impl World) {
    use domain::store::Idempotency;
    // A fresh key per run: on the emulator the table outlives the test.
    let key = format!("key-{}", EpisodeId::new());
    let idem = |fingerprint| {
        Some(Idempotency {
            key: &key,
            fingerprint,
        })
    };
    let first = sample::episode();
    let event = DomainEvent::episode_created(&context(CREATOR), &first);
    w.episodes()
        .create(&first, &event, idem("same"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // The request again (a new id, as the handler makes one each time): nothing written, the
    // first episode named.
    let second = sample::episode();
    let again = DomainEvent::episode_created(&context(CREATOR), &second);
    assert_eq!(
        refused(w.episodes().create(&second, &again, idem("same")).await),
        Rejection::Replayed {
            episode: first.id,
            same_request: true
        }
    );
    assert_eq!(
        refused(w.episodes().create(&second, &again, idem("other")).await),
        Rejection::Replayed {
            episode: first.id,
            same_request: false
        }
    );
    assert!(read(w, second.id).await.is_none(), "nothing written");
    assert!(event_types(w, second.id).await.is_empty());
    // The key is its user's: another user's same key creates.
    let mut theirs = sample::episode();
    theirs.created.by = UserId::parse("someone-else").unwrap_or_else(|e| panic!("{e}"));
    let event = DomainEvent::episode_created(&context(CREATOR), &theirs);
    w.episodes()
        .create(&theirs, &event, idem("same"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Without a key, creates are independent.
    create(w).await;
}

pub async fn an_episode_is_created_once_with_its_event_and_read_back(w: &impl World) {
    let episode = create(w).await;
    let stored = read(w, episode.id)
        .await
        .unwrap_or_else(|| panic!("not stored"));
    assert_eq!(stored.id, episode.id);
    assert_eq!(stored.title, episode.title);
    assert_eq!(stored.status, EpisodeStatus::Draft);
    assert_eq!(stored.version, episode.version);
    assert_eq!(stored.created.by, episode.created.by);
    // The same episode again: refused, and nothing written.
    let again = DomainEvent::episode_created(&context(CREATOR), &episode);
    assert!(matches!(
        w.episodes().create(&episode, &again, None).await,
        Err(StoreError::Rejected(_))
    ));
    assert_eq!(
        event_types(w, episode.id).await,
        [EventType::EpisodeCreated]
    );
    assert!(read(w, EpisodeId::new()).await.is_none());
}

pub async fn an_update_is_written_only_from_the_version_read(w: &impl World) {
    let episode = create(w).await;
    let first = update(&episode, episode.version, titled("Second"));
    apply(w, &first).await.unwrap_or_else(|e| panic!("{e}"));
    let stored = read(w, episode.id).await.unwrap_or_else(|| panic!("gone"));
    assert_eq!(stored.title.as_str(), "Second");
    assert_eq!(stored.version, episode.version.next());

    // From the version before: stale.
    let stale = update(&episode, episode.version, titled("Third"));
    assert!(matches!(
        refused(apply(w, &stale).await),
        Rejection::Stale { .. }
    ));
    // A move the state machine has no edge for: Draft → Published.
    let skip = update(&episode, stored.version, moved(EpisodeStatus::Published));
    assert!(matches!(
        refused(apply(w, &skip).await),
        Rejection::IllegalTransition { .. }
    ));
    // An episode that does not exist.
    let mut nowhere = update(&episode, Version::FIRST, titled("Nowhere"));
    nowhere.id = EpisodeId::new();
    assert_eq!(refused(apply(w, &nowhere).await), Rejection::NotFound);

    let after = read(w, episode.id).await.unwrap_or_else(|| panic!("gone"));
    assert_eq!(
        after.title.as_str(),
        "Second",
        "no refused write changed it"
    );
    assert_eq!(after.version, stored.version);
    assert_eq!(
        event_types(w, episode.id).await,
        [EventType::EpisodeCreated, EventType::EpisodeUpdated]
    );
}

pub async fn a_deletion_is_the_creators_or_an_admins_and_leaves_a_tombstone(w: &impl World) {
    let episode = create(w).await;
    let someone = format!("user-{}", EpisodeId::new());
    assert_eq!(
        refused(remove(w, &deletion(&episode, Some(&someone), None)).await),
        Rejection::NotOwner
    );
    let stale = Some(episode.version.next());
    assert!(matches!(
        refused(remove(w, &deletion(&episode, Some(CREATOR), stale)).await),
        Rejection::Stale { .. }
    ));
    remove(w, &deletion(&episode, Some(CREATOR), Some(episode.version)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tombstone = read(w, episode.id)
        .await
        .unwrap_or_else(|| panic!("no tombstone"));
    assert!(tombstone.deleted.is_some());
    // Gone for every later write, an admin's (no owner condition) too.
    assert_eq!(
        refused(remove(w, &deletion(&episode, None, None)).await),
        Rejection::NotFound
    );
    let late = update(&episode, tombstone.version, titled("Late"));
    assert_eq!(refused(apply(w, &late).await), Rejection::NotFound);
    assert_eq!(
        event_types(w, episode.id).await,
        [EventType::EpisodeCreated, EventType::EpisodeDeleted]
    );
}

/// Every page of the list (the table is shared: other episodes are in it too).
async fn all_pages(w: &impl World, status: Option<EpisodeStatus>) -> Vec<Episode> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let query = ListQuery {
            status,
            limit: PageSize::LARGEST,
            after,
        };
        let page = w
            .episodes()
            .list(&query)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(page.items.len() <= usize::from(PageSize::MAX));
        out.extend(page.items);
        match page.next_after {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

pub async fn the_list_comes_newest_first_in_pages_by_status(w: &impl World) {
    let made = [create(w).await, create(w).await, create(w).await];
    let started = &made[1];
    let go = update(started, started.version, moved(EpisodeStatus::InProduction));
    apply(w, &go).await.unwrap_or_else(|e| panic!("{e}"));
    let gone = create(w).await;
    remove(w, &deletion(&gone, None, None))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let all = all_pages(w, None).await;
    let ids: Vec<EpisodeId> = all.iter().map(|e| e.id).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "an episode listed twice"
    );
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    for e in &made {
        assert!(ids.contains(&e.id), "{} missing", e.id);
    }
    assert!(!ids.contains(&gone.id), "a deleted episode listed");

    let in_production = all_pages(w, Some(EpisodeStatus::InProduction)).await;
    assert!(
        in_production
            .iter()
            .all(|e| e.status == EpisodeStatus::InProduction)
    );
    assert!(in_production.iter().any(|e| e.id == started.id));
    assert!(!in_production.iter().any(|e| e.id == made[0].id));

    // A page of two, then the next after its last.
    let two = PageSize::parse("2").unwrap_or_else(|e| panic!("{e:?}"));
    let first = w
        .episodes()
        .list(&ListQuery {
            status: None,
            limit: two,
            after: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.items.len(), 2);
    let next = first.next_after.unwrap_or_else(|| panic!("no next page"));
    assert_eq!(Some(next), first.items.last().map(|e| e.id));
    let second = w
        .episodes()
        .list(&ListQuery {
            status: None,
            limit: two,
            after: Some(next),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !second.items.is_empty(),
        "at least the third episode follows"
    );
    assert!(second.items.iter().all(|e| e.id < next));
}

/// Pages of `size` from `after` on, until one reaches past `oldest` or the list ends.
async fn pages_from(
    w: &impl World,
    status: Option<EpisodeStatus>,
    size: &str,
    mut after: Option<EpisodeId>,
    oldest: EpisodeId,
) -> Vec<Vec<EpisodeId>> {
    let limit = PageSize::parse(size).unwrap_or_else(|e| panic!("{e:?}"));
    let mut pages = Vec::new();
    loop {
        let page = w
            .episodes()
            .list(&ListQuery {
                status,
                limit,
                after,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<EpisodeId> = page.items.iter().map(|e| e.id).collect();
        assert!(ids.len() <= usize::from(limit.get()));
        if page.next_after.is_some() {
            assert_eq!(
                ids.len(),
                usize::from(limit.get()),
                "a short page before the end"
            );
        }
        let done = ids.last().is_none_or(|last| *last <= oldest) || page.next_after.is_none();
        pages.push(ids);
        if done {
            return pages;
        }
        after = page.next_after;
    }
}

/// However the store spreads the list (across partitions merged on read, for one), pages of
/// any size walk it newest first, every episode once, the cursor resuming where the last
/// page ended.
pub async fn many_episodes_walk_in_small_pages_each_once_newest_first(w: &impl World) {
    let mut made = Vec::new();
    for _ in 0..30 {
        made.push(create(w).await.id);
    }
    // Walked from just after the newest, so episodes of other tests made before are not paged.
    let start = EpisodeId::new();
    let oldest = made[0];
    let mut in_production = Vec::new();
    for e in made.iter().step_by(3) {
        let found = read(w, *e).await.unwrap_or_else(|| panic!("{e} missing"));
        let go = update(&found, found.version, moved(EpisodeStatus::InProduction));
        apply(w, &go).await.unwrap_or_else(|e| panic!("{e}"));
        in_production.push(*e);
    }
    for (status, ours) in [
        (None, &made),
        (Some(EpisodeStatus::InProduction), &in_production),
    ] {
        for size in ["1", "7", "100"] {
            let pages = pages_from(w, status, size, Some(start), oldest).await;
            let ids: Vec<EpisodeId> = pages.into_iter().flatten().collect();
            assert!(ids.windows(2).all(|p| p[0] > p[1]), "newest first, once");
            let seen: Vec<EpisodeId> = ids.into_iter().filter(|i| ours.contains(i)).collect();
            let want: Vec<EpisodeId> = ours.iter().rev().copied().collect();
            assert_eq!(seen, want, "{status:?} in pages of {size}");
        }
    }
}

/// An event id before any other (a UUIDv7 at the epoch).
fn earliest() -> domain::EventId {
    domain::EventId::parse("00000000-0000-7000-8000-000000000000").unwrap_or_else(|e| panic!("{e}"))
}

/// The types of the episode's events, oldest first, as the events table holds them.
async fn event_types(w: &impl World, episode: EpisodeId) -> Vec<EventType> {
    let (events, _) = w
        .history()
        .events_after(episode, earliest(), 50)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    events.into_iter().map(|e| e.event_type).collect()
}

pub async fn an_episodes_events_are_read_back_after_a_given_one(w: &impl World) {
    let episode = create(w).await;
    let mut version = episode.version;
    for title in ["Two", "Three", "Four"] {
        let u = update(&episode, version, titled(title));
        apply(w, &u).await.unwrap_or_else(|e| panic!("{e}"));
        version = version.next();
    }
    let (all, more) = w
        .history()
        .events_after(episode.id, earliest(), 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let types: Vec<EventType> = all.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::EpisodeCreated,
            EventType::EpisodeUpdated,
            EventType::EpisodeUpdated,
            EventType::EpisodeUpdated
        ]
    );
    assert!(!more);
    let (after_first, more) = w
        .history()
        .events_after(episode.id, all[0].id, 2)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        after_first.iter().map(|e| e.id).collect::<Vec<_>>(),
        [all[1].id, all[2].id]
    );
    assert!(more, "one more after the limit");
    let (none, more) = w
        .history()
        .events_after(EpisodeId::new(), all[0].id, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.is_empty() && !more);
}
