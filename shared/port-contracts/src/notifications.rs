//! The notifications ports: one notification per (event, recipient), an unread count that
//! moves exactly once per change, transactions within DynamoDB's limits, watches, settings.

use std::collections::BTreeSet;

use domain::notification::{Notification, Preferences};
use domain::store::notification::{Audiences, Inbox, MarkRead, NotificationWriter, ReadAll};
use domain::{DomainEvent, EpisodeId, EventId, EventType, Timestamp, UserId};
use serde_json::json;

use crate::World;
use crate::sample::{self, CREATOR, context};

/// A user no other run has used (the notifications table is shared).
fn someone() -> UserId {
    UserId::parse(&format!("user-{}", EpisodeId::new())).unwrap_or_else(|e| panic!("{e}"))
}

/// A new event's notification for `user`.
fn note(user: &UserId) -> Notification {
    let episode = EpisodeId::new();
    let job = sample::job(episode, None, "alice");
    let event = DomainEvent::about_job(
        &context("system:job-worker"),
        EventType::JobFailed,
        &job,
        Timestamp::now(),
        json!({}),
    );
    Notification::for_recipient(&event, user.clone(), "Your checksum job failed".into())
}

async fn unread(w: &impl World, user: &UserId) -> u64 {
    w.notifications()
        .unread_count(user)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn inbox(w: &impl World, user: &UserId) -> Vec<EventId> {
    w.notifications()
        .list(user, false, 100, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .iter()
        .map(|n| n.id)
        .collect()
}

pub async fn a_notification_is_delivered_and_counted_once(w: &impl World) {
    let user = someone();
    let n = note(&user);
    for _ in 0..2 {
        w.notifications()
            .deliver(&n)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(inbox(w, &user).await, [n.id]);
    assert_eq!(unread(w, &user).await, 1);
    let stored = w
        .notifications()
        .list(&user, false, 10, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items;
    assert_eq!(stored, [n], "read back as written");
}

pub async fn a_batch_is_delivered_whole_or_not_at_all(w: &impl World) {
    let (ann, ben) = (someone(), someone());
    let (a, b, c) = (note(&ann), note(&ben), note(&ann));
    let notes = w.notifications();
    // Two copies of one notification in a batch count once.
    assert!(matches!(
        notes.deliver_all(&[a.clone(), b.clone(), b.clone()]).await,
        Ok(true)
    ));
    assert_eq!((unread(w, &ann).await, unread(w, &ben).await), (1, 1));
    // One of them delivered before: nothing of the batch is written.
    assert!(matches!(
        notes.deliver_all(&[b.clone(), c.clone()]).await,
        Ok(false)
    ));
    assert_eq!(inbox(w, &ann).await, [a.id]);
    assert_eq!(unread(w, &ann).await, 1);
    assert!(matches!(notes.deliver_all(&[]).await, Ok(true)));
}

pub async fn a_batch_beyond_one_transaction_is_left_to_single_deliveries(w: &impl World) {
    // 60 recipients: 60 notifications and 60 counters, beyond a transaction's 100 items.
    let users: Vec<UserId> = (0..60).map(|_| someone()).collect();
    let batch: Vec<Notification> = users.iter().map(note).collect();
    assert!(matches!(
        w.notifications().deliver_all(&batch).await,
        Ok(false)
    ));
    assert!(inbox(w, &users[0]).await.is_empty(), "nothing written");
    for n in &batch {
        w.notifications()
            .deliver(n)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(inbox(w, &users[59]).await, [batch[59].id]);
}

/// What the worker sends (`transaction_chunks`): 60 recipients in two transactions, one of
/// exactly the limit (50 notifications and 50 counters), each recipient counted once.
pub async fn a_batch_in_transaction_chunks_is_delivered_in_full(w: &impl World) {
    let users: Vec<UserId> = (0..60).map(|_| someone()).collect();
    let batch: Vec<Notification> = users.iter().map(note).collect();
    let chunks = domain::notification::transaction_chunks(&batch);
    assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [50, 10]);
    for chunk in &chunks {
        assert!(matches!(
            w.notifications().deliver_all(chunk).await,
            Ok(true)
        ));
    }
    for (u, n) in users.iter().zip(&batch) {
        assert_eq!(inbox(w, u).await, [n.id]);
        assert_eq!(
            w.notifications().unread_count(u).await.ok(),
            Some(1),
            "{u:?}"
        );
    }
}

pub async fn reading_marks_ones_own_notifications_once(w: &impl World) {
    let (ann, ben) = (someone(), someone());
    let n = note(&ann);
    let notes = w.notifications();
    notes.deliver(&n).await.unwrap_or_else(|e| panic!("{e}"));
    let now = Timestamp::now();
    assert_eq!(
        notes.mark_read(&ben, n.id, now).await.ok(),
        Some(MarkRead::NotFound)
    );
    assert_eq!(
        notes.mark_read(&ann, EventId::new(), now).await.ok(),
        Some(MarkRead::NotFound)
    );
    assert_eq!(
        notes.mark_read(&ann, n.id, now).await.ok(),
        Some(MarkRead::Marked)
    );
    assert_eq!(
        notes.mark_read(&ann, n.id, now).await.ok(),
        Some(MarkRead::AlreadyRead)
    );
    assert_eq!(unread(w, &ann).await, 0);
    let read = notes
        .list(&ann, false, 10, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items;
    assert_eq!(read[0].read_at, Some(now));
    let unread_only = notes
        .list(&ann, true, 10, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items;
    assert!(unread_only.is_empty());
}

pub async fn read_all_marks_exactly_the_unread(w: &impl World) {
    let user = someone();
    let notes = w.notifications();
    let all: Vec<Notification> = (0..3).map(|_| note(&user)).collect();
    for n in &all {
        notes.deliver(n).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let now = Timestamp::now();
    notes
        .mark_read(&user, all[0].id, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        notes.mark_all_read(&user, now).await.ok(),
        Some(ReadAll {
            marked: 2,
            more: false
        })
    );
    assert_eq!(unread(w, &user).await, 0);
    assert_eq!(
        notes.mark_all_read(&user, now).await.ok(),
        Some(ReadAll {
            marked: 0,
            more: false
        })
    );
}

pub async fn an_inbox_comes_newest_first_in_pages(w: &impl World) {
    let user = someone();
    let all: Vec<Notification> = (0..3).map(|_| note(&user)).collect();
    for n in &all {
        w.notifications()
            .deliver(n)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    w.notifications()
        .mark_read(&user, all[2].id, Timestamp::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = w
        .notifications()
        .list(&user, false, 2, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        [all[2].id, all[1].id]
    );
    let rest = w
        .notifications()
        .list(&user, false, 2, first.next)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rest.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        [all[0].id]
    );
    assert_eq!(rest.next, None);
    let unread_only = w
        .notifications()
        .list(&user, true, 10, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unread_only.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        [all[1].id, all[0].id]
    );
}

pub async fn watching_needs_an_episode_and_happens_once(w: &impl World) {
    let user = someone();
    let notes = w.notifications();
    let now = Timestamp::now();
    assert!(matches!(
        notes.watch(EpisodeId::new(), &user, now).await,
        Ok(false)
    ));
    let episode = w.episode().await;
    let creator = UserId::parse(CREATOR).unwrap_or_else(|e| panic!("{e}"));
    let watchers = |w: Vec<UserId>| w.into_iter().collect::<BTreeSet<_>>();
    assert_eq!(
        watchers(notes.watchers(episode).await.unwrap_or_default()),
        [creator.clone()].into(),
        "the creator watches from the start"
    );
    for _ in 0..2 {
        assert!(matches!(notes.watch(episode, &user, now).await, Ok(true)));
    }
    assert_eq!(
        notes.watchers(episode).await.unwrap_or_default().len(),
        2,
        "watched once"
    );
    notes
        .unwatch(episode, &user)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    notes
        .unwatch(episode, &user)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        watchers(notes.watchers(episode).await.unwrap_or_default()),
        [creator].into()
    );
    assert!(
        notes
            .watchers(EpisodeId::new())
            .await
            .is_ok_and(|w| w.is_empty())
    );
}

pub async fn preferences_are_kept_per_user(w: &impl World) {
    let (ann, ben) = (someone(), someone());
    let notes = w.notifications();
    assert_eq!(
        notes.preferences(&ann).await.ok(),
        Some(Preferences::default())
    );
    let muted = Preferences {
        muted_event_types: [EventType::JobFailed, EventType::EpisodeDeleted].into(),
    };
    notes
        .set_preferences(&ann, &muted)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(notes.preferences(&ann).await.ok(), Some(muted.clone()));
    let found = notes
        .preferences_of(&[ann.clone(), ben.clone()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.len(), 1, "only users who set any");
    assert_eq!(found.get(&ann), Some(&muted));
    // Beyond one BatchGetItem (100 keys), a user named twice.
    let many: Vec<UserId> = (0..150)
        .map(|_| someone())
        .chain([ann.clone(), ann.clone()])
        .collect();
    let found = notes
        .preferences_of(&many)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.keys().collect::<Vec<_>>(), [&ann]);
    notes
        .set_preferences(&ann, &Preferences::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        notes.preferences(&ann).await.ok(),
        Some(Preferences::default())
    );
}
