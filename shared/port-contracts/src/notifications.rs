//! The notifications ports: each (recipient, event) counted once, deliveries written whole
//! or not at all under the conditions they were planned on, batches grown in place, the
//! bell's two counts moved with what they count, moves of one's own notifications only,
//! transactions within DynamoDB's limits, watches, settings.

use std::collections::BTreeSet;

use domain::notification::batch::plan;
use domain::notification::{
    Batching, Delivery, GroupKey, Incoming, Moved, NoteFilter, NoteState, Notification,
    Preferences, Transition,
};
use domain::store::notification::{
    Audiences, BellCounts, Inbox, NotificationWriter, ReadAll, Removed,
};
use domain::{DomainEvent, EpisodeId, EventId, EventType, Timestamp, UserId};
use serde_json::json;

use crate::World;
use crate::sample::{self, CREATOR, context};

/// A user no other run has used (the notifications table is shared).
fn someone() -> UserId {
    UserId::parse(&format!("user-{}", EpisodeId::new())).unwrap_or_else(|e| panic!("{e}"))
}

/// A job of a new episode failed: one event of its own batch.
fn failed_job() -> DomainEvent {
    let episode = EpisodeId::new();
    let job = sample::job(episode, None, "alice");
    DomainEvent::about_job(
        &context("system:job-worker"),
        EventType::JobFailed,
        &job,
        Timestamp::now(),
        json!({}),
    )
}

/// Another failure in the same batch (same episode, type and actor), `seconds` later.
fn again(event: &DomainEvent, seconds: i64) -> DomainEvent {
    let mut next = event.clone();
    next.id = EventId::new();
    next.occurred_at = event.occurred_at.plus_seconds(seconds);
    next
}

fn single(event: &DomainEvent, user: &UserId) -> Delivery {
    Delivery::single(event, user, "S1E1", "Your checksum job failed")
}

fn incoming(event: &DomainEvent) -> Incoming {
    Incoming {
        event: event.clone(),
        summary: format!("failed at {}", event.occurred_at),
        label: "S1E1".into(),
    }
}

/// Plans `events` for `user` over what the store holds now (batching on): something to write.
async fn planned(w: &impl World, user: &UserId, events: &[DomainEvent]) -> Delivery {
    plan_over_store(w, user, events)
        .await
        .unwrap_or_else(|| panic!("nothing to write: every event was counted"))
}

/// The same, `None` when every event was counted.
async fn plan_over_store(
    w: &impl World,
    user: &UserId,
    events: &[DomainEvent],
) -> Option<Delivery> {
    let group = GroupKey::of(&events[0]);
    let keys: Vec<(UserId, EventId)> = events.iter().map(|e| (user.clone(), e.id)).collect();
    let seen = w
        .notifications()
        .observe(&[(user.clone(), group.clone())], &keys, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let observed = seen
        .groups
        .get(&(user.clone(), group.clone()))
        .cloned()
        .unwrap_or_default();
    let incoming: Vec<Incoming> = events.iter().map(incoming).collect();
    plan(
        Batching::DEFAULT,
        user,
        &group,
        &observed,
        |id| seen.counted.contains_key(&(user.clone(), id)),
        &incoming,
    )
}

async fn apply(w: &impl World, deliveries: &[Delivery]) -> Vec<bool> {
    w.notifications()
        .apply(deliveries)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn counts(w: &impl World, user: &UserId) -> (u64, u64) {
    let BellCounts { unread, unseen } = w
        .notifications()
        .counts(user)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (unread, unseen)
}

async fn listed(w: &impl World, user: &UserId, filter: NoteFilter) -> Vec<Notification> {
    w.notifications()
        .list(user, filter, 100, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
}

async fn ids(w: &impl World, user: &UserId, filter: NoteFilter) -> Vec<EventId> {
    listed(w, user, filter).await.iter().map(|n| n.id).collect()
}

async fn moved(w: &impl World, user: &UserId, ids: &[EventId], t: Transition) -> Vec<Moved> {
    w.notifications()
        .transition(user, ids, t, Timestamp::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

pub async fn a_delivery_is_written_once_and_read_back(w: &impl World) {
    let user = someone();
    let event = failed_job();
    let d = single(&event, &user);
    assert_eq!(apply(w, std::slice::from_ref(&d)).await, [true]);
    assert_eq!(
        apply(w, std::slice::from_ref(&d)).await,
        [false],
        "its receipt is taken"
    );
    let stored = listed(w, &user, NoteFilter::Inbox).await;
    assert_eq!(stored, [d.writes[0].0.clone()], "read back as written");
    assert_eq!(counts(w, &user).await, (1, 1));
    let seen = w
        .notifications()
        .observe(
            &[],
            &[(user.clone(), event.id), (user.clone(), EventId::new())],
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seen.counted.into_iter().collect::<Vec<_>>(),
        [((user.clone(), event.id), event.id)],
        "counted, in that notification"
    );
    let again = w
        .notifications()
        .notes(&[(user.clone(), event.id), (someone(), event.id)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, stored);
}

pub async fn a_batch_grows_in_place_and_a_stale_plan_is_refused(w: &impl World) {
    let user = someone();
    let first = failed_job();
    let d = planned(w, &user, std::slice::from_ref(&first)).await;
    assert_eq!(apply(w, &[d]).await, [true]);
    let second = again(&first, 5);
    let grow = planned(w, &user, std::slice::from_ref(&second)).await;
    let stale = planned(w, &user, &[again(&first, 6)]).await;
    assert_eq!(apply(w, &[grow]).await, [true]);
    // Planned on revision 1; the store holds 2: refused, nothing changes.
    assert_eq!(apply(w, &[stale]).await, [false]);
    let stored = listed(w, &user, NoteFilter::Inbox).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, first.id);
    assert_eq!(
        stored[0]
            .changes
            .iter()
            .map(|c| c.event_id)
            .collect::<Vec<_>>(),
        [first.id, second.id]
    );
    assert_eq!(stored[0].revision, 2);
    assert_eq!(stored[0].summary(), "2 jobs on S1E1 failed");
    assert_eq!(
        counts(w, &user).await,
        (1, 1),
        "the bell counts notifications"
    );
    assert!(
        plan_over_store(w, &user, &[first, second]).await.is_none(),
        "all counted"
    );
}

pub async fn two_openers_of_one_batch_cannot_both_open_it(w: &impl World) {
    let user = someone();
    let a = failed_job();
    let b = again(&a, 1);
    let pa = planned(w, &user, std::slice::from_ref(&a)).await;
    let pb = planned(w, &user, std::slice::from_ref(&b)).await;
    assert_eq!(apply(w, &[pa]).await, [true]);
    assert_eq!(apply(w, &[pb]).await, [false], "the batch is open already");
    let pb = planned(w, &user, &[b]).await;
    assert_eq!(apply(w, &[pb]).await, [true]);
    let stored = listed(w, &user, NoteFilter::Inbox).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].changes.len(), 2);
    assert_eq!(counts(w, &user).await, (1, 1));
}

pub async fn a_growth_and_a_read_meanwhile_do_not_overwrite_each_other(w: &impl World) {
    let user = someone();
    let first = failed_job();
    let d = planned(w, &user, std::slice::from_ref(&first)).await;
    assert_eq!(apply(w, &[d]).await, [true]);
    let second = again(&first, 5);
    let grow = planned(w, &user, std::slice::from_ref(&second)).await;
    assert_eq!(
        moved(w, &user, &[first.id], Transition::Read).await,
        [Moved::Changed]
    );
    assert_eq!(apply(w, &[grow]).await, [false], "planned before the read");
    // Planned again: the read one is left alone, a new one opens.
    let grow = planned(w, &user, std::slice::from_ref(&second)).await;
    assert_eq!(apply(w, &[grow]).await, [true]);
    let stored = listed(w, &user, NoteFilter::All).await;
    assert_eq!(
        stored.iter().map(|n| (n.id, n.state)).collect::<Vec<_>>(),
        [(second.id, NoteState::Unseen), (first.id, NoteState::Read),]
    );
    assert_eq!(counts(w, &user).await, (1, 1));
}

/// 60 recipients: 180 items, packed into transactions of at most 100; one delivery among
/// them that no longer holds does not hold back the others.
pub async fn deliveries_beyond_one_transaction_are_packed_and_written_in_full(w: &impl World) {
    let users: Vec<UserId> = (0..60).map(|_| someone()).collect();
    let event = failed_job();
    let batch: Vec<Delivery> = users.iter().map(|u| single(&event, u)).collect();
    assert_eq!(apply(w, &batch[..1]).await, [true]);
    let done = apply(w, &batch).await;
    assert_eq!(done.iter().filter(|d| !**d).count(), 1);
    assert!(!done[0], "the one delivered before");
    for u in &users {
        assert_eq!(ids(w, u, NoteFilter::Inbox).await, [event.id]);
        assert_eq!(counts(w, u).await, (1, 1), "{u:?}");
    }
}

/// What a removal (the TTL) of each notification takes off the counts: an unseen one both, a
/// seen one the unread, a read one nothing; each once, however often the stream tells it.
pub async fn removed_notifications_come_off_the_counts_once(w: &impl World) {
    let ann = someone();
    let events: Vec<DomainEvent> = (0..3).map(|_| failed_job()).collect();
    let all: Vec<EventId> = events.iter().map(|e| e.id).collect();
    let deliveries: Vec<Delivery> = events.iter().map(|e| single(e, &ann)).collect();
    assert_eq!(apply(w, &deliveries).await, [true; 3]);
    assert_eq!(
        moved(w, &ann, &all[1..2], Transition::See).await,
        [Moved::Changed]
    );
    assert_eq!(
        moved(w, &ann, &all[2..], Transition::Read).await,
        [Moved::Changed]
    );
    assert_eq!(counts(w, &ann).await, (2, 1));
    let removed = |i: usize, state: NoteState| Removed {
        recipient: ann.clone(),
        id: all[i],
        state,
    };
    let read = [removed(2, NoteState::Read)];
    w.notifications()
        .uncount(&read)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts(w, &ann).await, (2, 1), "a read one counted nothing");
    let unread = [removed(0, NoteState::Unseen), removed(1, NoteState::Seen)];
    for _ in 0..2 {
        w.notifications()
            .uncount(&unread)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counts(w, &ann).await, (0, 0), "told twice, taken off once");
    }
}

pub async fn moves_are_ones_own_and_move_both_counts(w: &impl World) {
    let (ann, ben) = (someone(), someone());
    let events: Vec<DomainEvent> = (0..4).map(|_| failed_job()).collect();
    let all: Vec<EventId> = events.iter().map(|e| e.id).collect();
    let deliveries: Vec<Delivery> = events.iter().map(|e| single(e, &ann)).collect();
    assert_eq!(apply(w, &deliveries).await, [true; 4]);
    assert_eq!(counts(w, &ann).await, (4, 4));
    assert_eq!(
        moved(w, &ben, &all[..1], Transition::Read).await,
        [Moved::NotFound]
    );
    assert_eq!(
        moved(w, &ann, &[all[0], all[1], EventId::new()], Transition::See).await,
        [Moved::Changed, Moved::Changed, Moved::NotFound]
    );
    assert_eq!(
        moved(w, &ann, &all[..1], Transition::See).await,
        [Moved::Unchanged]
    );
    assert_eq!(counts(w, &ann).await, (4, 2));
    assert_eq!(
        moved(w, &ann, &all[1..3], Transition::Read).await,
        [Moved::Changed; 2]
    );
    assert_eq!(
        counts(w, &ann).await,
        (2, 1),
        "a seen one and an unseen one read"
    );
    assert_eq!(
        moved(w, &ann, &all[3..], Transition::Archive).await,
        [Moved::Changed]
    );
    assert_eq!(counts(w, &ann).await, (1, 0));
    let newest_first = |ids: &[usize]| ids.iter().map(|i| all[*i]).collect::<Vec<_>>();
    assert_eq!(
        ids(w, &ann, NoteFilter::Inbox).await,
        newest_first(&[2, 1, 0])
    );
    assert_eq!(ids(w, &ann, NoteFilter::Unread).await, newest_first(&[0]));
    assert_eq!(
        ids(w, &ann, NoteFilter::Unseen).await,
        Vec::<EventId>::new()
    );
    assert_eq!(ids(w, &ann, NoteFilter::Read).await, newest_first(&[2, 1]));
    assert_eq!(ids(w, &ann, NoteFilter::Archived).await, newest_first(&[3]));
    assert_eq!(
        ids(w, &ann, NoteFilter::All).await,
        newest_first(&[3, 2, 1, 0])
    );
    let archived = &listed(w, &ann, NoteFilter::Archived).await[0];
    assert!(archived.read_at.is_some() && archived.archived_at.is_some());
    assert_eq!(
        moved(w, &ann, &all[3..], Transition::Unarchive).await,
        [Moved::Changed]
    );
    assert_eq!(
        ids(w, &ann, NoteFilter::Read).await,
        newest_first(&[3, 2, 1])
    );
    assert_eq!(counts(w, &ann).await, (1, 0));
    assert_eq!(counts(w, &ben).await, (0, 0));
}

pub async fn read_all_marks_exactly_the_unread(w: &impl World) {
    let user = someone();
    let notes = w.notifications();
    let events: Vec<DomainEvent> = (0..3).map(|_| failed_job()).collect();
    let deliveries: Vec<Delivery> = events.iter().map(|e| single(e, &user)).collect();
    assert_eq!(apply(w, &deliveries).await, [true; 3]);
    assert_eq!(
        moved(w, &user, &[events[0].id], Transition::Read).await,
        [Moved::Changed]
    );
    assert_eq!(
        moved(w, &user, &[events[1].id], Transition::See).await,
        [Moved::Changed]
    );
    let now = Timestamp::now();
    assert_eq!(
        notes.mark_all_read(&user, now).await.ok(),
        Some(ReadAll {
            marked: 2,
            more: false
        })
    );
    assert_eq!(counts(w, &user).await, (0, 0));
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
    let events: Vec<DomainEvent> = (0..3).map(|_| failed_job()).collect();
    let all: Vec<EventId> = events.iter().map(|e| e.id).collect();
    let deliveries: Vec<Delivery> = events.iter().map(|e| single(e, &user)).collect();
    assert_eq!(apply(w, &deliveries).await, [true; 3]);
    assert_eq!(
        moved(w, &user, &all[2..], Transition::Read).await,
        [Moved::Changed]
    );
    let first = w
        .notifications()
        .list(&user, NoteFilter::Inbox, 2, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        [all[2], all[1]]
    );
    let rest = w
        .notifications()
        .list(&user, NoteFilter::Inbox, 2, first.next)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rest.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        [all[0]]
    );
    assert_eq!(rest.next, None);
    let unread = w
        .notifications()
        .list(&user, NoteFilter::Unread, 1, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        unread.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        [all[1]]
    );
    let rest = w
        .notifications()
        .list(&user, NoteFilter::Unread, 1, unread.next)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rest.items.iter().map(|n| n.id).collect::<Vec<_>>(),
        [all[0]]
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
