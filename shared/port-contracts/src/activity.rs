//! The activity log's ports: entries written once per event, read newest first, in pages
//! and slices; labels of the episodes that exist.

use std::collections::BTreeSet;

use domain::store::activity::{ActivityQuery, ActivityReader, ActivityWriter, EpisodeLabels};
use domain::{ActivityEntry, DomainEvent, EpisodeId, EventId, EventType, UserId};
use serde_json::json;

use crate::World;
use crate::sample::{self, LABEL, context};

/// A user id no other run has used (the log's indexes span every episode).
fn someone() -> String {
    format!("user-{}", EpisodeId::new())
}

/// An entry of `event_type` about a job of `episode`, by `user`.
fn entry(episode: EpisodeId, user: &str, event_type: EventType) -> ActivityEntry {
    let job = sample::job(episode, None, user);
    let event = DomainEvent::about_job(&context(user), event_type, &job, job.created.at, json!({}));
    ActivityEntry::from_event(&event, Some(LABEL))
}

async fn write(w: &impl World, entries: &[ActivityEntry]) {
    let left = w
        .activity()
        .put_batch(entries)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(left.is_empty(), "left unprocessed: {left:?}");
}

fn ids(entries: &[ActivityEntry]) -> Vec<EventId> {
    entries.iter().map(|e| e.event_id).collect()
}

fn of_episode(episode: EpisodeId, limit: u16) -> ActivityQuery {
    ActivityQuery {
        episode: Some(episode),
        limit,
        ..ActivityQuery::default()
    }
}

async fn read(w: &impl World, q: &ActivityQuery) -> Vec<ActivityEntry> {
    w.activity()
        .query(q)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
}

pub async fn entries_are_written_once_per_event_and_read_newest_first(w: &impl World) {
    let episode = EpisodeId::new();
    let user = someone();
    let entries: Vec<ActivityEntry> = (0..3)
        .map(|_| entry(episode, &user, EventType::JobCreated))
        .collect();
    // The second copy of an event in one batch (DynamoDB refuses a batch naming a key twice).
    let with_copy = [entries.clone(), vec![entries[1].clone()]].concat();
    write(w, &with_copy).await;
    write(w, &entries).await;
    let found = read(w, &of_episode(episode, 10)).await;
    let mut newest_first = ids(&entries);
    newest_first.reverse();
    assert_eq!(ids(&found), newest_first);
    assert_eq!(found[0], entries[2], "read back as written");
}

pub async fn a_batch_beyond_one_write_is_written_whole(w: &impl World) {
    let episode = EpisodeId::new();
    let user = someone();
    let entries: Vec<ActivityEntry> = (0..60)
        .map(|_| entry(episode, &user, EventType::JobProgress))
        .collect();
    write(w, &entries).await;
    assert_eq!(read(w, &of_episode(episode, 100)).await.len(), 60);
}

pub async fn the_log_comes_in_pages_that_miss_and_repeat_nothing(w: &impl World) {
    let episode = EpisodeId::new();
    let user = someone();
    let entries: Vec<ActivityEntry> = (0..4)
        .map(|_| entry(episode, &user, EventType::JobStarted))
        .collect();
    write(w, &entries).await;
    let mut seen = Vec::new();
    let mut q = of_episode(episode, 2);
    for _ in 0..4 {
        let page = w
            .activity()
            .query(&q)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(page.items.len() <= 2);
        seen.extend(ids(&page.items));
        match page.next {
            Some(next) => q.after = Some(next),
            // A store may end with a full page and a cursor to an empty one; either way the
            // pages hold every entry once.
            None => break,
        }
    }
    let mut newest_first = ids(&entries);
    newest_first.reverse();
    assert_eq!(seen, newest_first);
}

pub async fn the_log_is_read_by_actor_action_and_time(w: &impl World) {
    let episode = EpisodeId::new();
    let (ann, ben) = (someone(), someone());
    let early = entry(episode, &ann, EventType::JobCreated);
    let middle = entry(episode, &ben, EventType::JobFailed);
    let late = entry(episode, &ann, EventType::JobFailed);
    write(w, &[early.clone(), middle.clone(), late.clone()]).await;
    let by_ann = ActivityQuery {
        actor: Some(UserId::parse(&ann).unwrap_or_else(|e| panic!("{e}"))),
        limit: 10,
        ..ActivityQuery::default()
    };
    assert_eq!(
        ids(&read(w, &by_ann).await),
        [late.event_id, early.event_id]
    );
    let failed = ActivityQuery {
        action: Some(EventType::JobFailed),
        ..of_episode(episode, 10)
    };
    assert_eq!(
        ids(&read(w, &failed).await),
        [late.event_id, middle.event_id]
    );
    let about_job = ActivityQuery {
        resource_type: Some("job".into()),
        resource_id: Some(middle.resource.id.clone()),
        ..of_episode(episode, 10)
    };
    assert_eq!(ids(&read(w, &about_job).await), [middle.event_id]);
    let window = ActivityQuery {
        from_id: Some(middle.event_id.to_string()),
        to_id: Some(middle.event_id.to_string()),
        ..of_episode(episode, 10)
    };
    assert_eq!(
        ids(&read(w, &window).await),
        [middle.event_id],
        "bounds are inclusive"
    );
    // schemathesis found it: a range that ends before it starts was a DynamoDB
    // ValidationException, answered 503. It is an empty range.
    let reversed = ActivityQuery {
        from_id: Some(late.event_id.to_string()),
        to_id: Some(early.event_id.to_string()),
        ..of_episode(episode, 10)
    };
    assert!(
        read(w, &reversed).await.is_empty(),
        "a reversed range is empty"
    );
    let none = ActivityQuery {
        actor: Some(UserId::parse(&someone()).unwrap_or_else(|e| panic!("{e}"))),
        limit: 10,
        ..ActivityQuery::default()
    };
    assert!(read(w, &none).await.is_empty());
}

pub async fn labels_name_the_episodes_that_exist(w: &impl World) {
    let (a, b) = (w.episode().await, w.episode().await);
    let missing = EpisodeId::new();
    let labels = w
        .labels()
        .labels(&[a, b, missing, a])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(labels.get(&a).map(String::as_str), Some(LABEL));
    assert_eq!(labels.get(&b).map(String::as_str), Some(LABEL));
    assert_eq!(
        labels.keys().collect::<BTreeSet<_>>(),
        [a, b].iter().collect()
    );
    assert!(w.labels().labels(&[]).await.is_ok_and(|l| l.is_empty()));
    // Beyond one BatchGetItem (100 keys).
    let many: Vec<EpisodeId> = (0..150).map(|_| EpisodeId::new()).chain([b]).collect();
    let labels = w
        .labels()
        .labels(&many)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(labels.keys().collect::<Vec<_>>(), [&b]);
}
