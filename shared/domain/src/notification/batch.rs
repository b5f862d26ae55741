//! Batching: the changes of one episode of one kind by one actor within a window become one
//! notification per recipient, grown in place while it is open and unread.
//!
//! The worker observes what the store holds for each (recipient, batch) — the open
//! notification, and which events were already counted — and [`plan`]s one [`Delivery`]:
//! every item it writes, each with the condition it must find. The store writes a delivery
//! whole or not at all; when a condition fails (a concurrent worker, the recipient reading
//! it meanwhile) the worker observes again and plans again. Each (recipient, event) is
//! counted once for good by its receipt, so a redelivery, however late, changes nothing.

use std::collections::{BTreeSet, HashSet};

use crate::actor::UserId;
use crate::event::{DomainEvent, EventType};
use crate::ids::{EpisodeId, EventId};
use crate::notification::state::{Counts, NoteState};
use crate::notification::{Change, Notification, TRANSACTION_MAX_ITEMS};

/// At most this many changes in one notification; the next opens another.
pub const MAX_CHANGES: usize = 50;

/// How changes are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// A batch takes the changes within this many seconds of its first; 0 turns batching off.
    pub window_seconds: i64,
}

impl Batching {
    pub const OFF: Self = Self { window_seconds: 0 };
    pub const DEFAULT: Self = Self { window_seconds: 60 };

    pub fn is_on(self) -> bool {
        self.window_seconds > 0
    }

    /// Whether `note` may take `event`: it is unread, not full, and the event is within the
    /// window of the note's first change (either side: events may come out of order).
    fn takes(self, note: &Notification, event: &DomainEvent) -> bool {
        self.is_on()
            && note.state.is_unread()
            && note.changes.len() < MAX_CHANGES
            && (event.occurred_at.unix_millis() - note.created_at.unix_millis()).abs()
                <= i128::from(self.window_seconds) * 1000
    }
}

/// The batch a change belongs to, for each of its recipients.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub episode_id: Option<EpisodeId>,
    pub event_type: EventType,
    pub actor: UserId,
}

impl GroupKey {
    pub fn of(event: &DomainEvent) -> Self {
        Self {
            episode_id: event.episode_id,
            event_type: event.event_type,
            actor: event.actor.id.clone(),
        }
    }

    /// `<episode>#<type>#<actor>` (`-` for no episode): the store's key for the batch's open
    /// notification.
    pub fn key(&self) -> String {
        format!(
            "{}#{}#{}",
            self.episode_id
                .map_or_else(|| "-".to_owned(), |e| e.to_string()),
            self.event_type.as_str(),
            self.actor.as_str()
        )
    }
}

/// One event for one recipient, with its line and the episode's label.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub event: DomainEvent,
    pub summary: String,
    pub label: String,
}

/// What the store held for one (recipient, batch) when observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The id of the batch's open notification, as the store names it.
    pub pointer: Option<EventId>,
    /// That notification, if it still exists.
    pub open: Option<Notification>,
}

/// Everything one (recipient, batch) needs written, whole or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub recipient: UserId,
    pub group: GroupKey,
    /// The events it counts: each (recipient, event) may be counted once only.
    pub receipts: Vec<EventId>,
    /// The notifications as they will be, each with the revision the store must hold (0: it
    /// must not exist yet).
    pub writes: Vec<(Notification, u64)>,
    /// When a new notification opened (batching on): the batch's open notification from now,
    /// and the one the store must still name.
    pub pointer: Option<(EventId, Option<EventId>)>,
    /// What it does to the recipient's counts.
    pub counts: Counts,
}

impl Delivery {
    /// The delivery of one event to one recipient as a notification of its own, assuming
    /// nothing was stored before (for tests and seeding).
    pub fn single(event: &DomainEvent, recipient: &UserId, label: &str, summary: &str) -> Self {
        let note = Notification::opened(event, recipient.clone(), label.into(), summary.into());
        Self {
            recipient: recipient.clone(),
            group: GroupKey::of(event),
            receipts: vec![event.id],
            writes: vec![(note, 0)],
            pointer: None,
            counts: Counts::of_move(None, Some(NoteState::Unseen)),
        }
    }

    /// The items of its transaction, the recipient's counter included when it moves.
    pub fn items(&self) -> usize {
        self.receipts.len()
            + self.writes.len()
            + usize::from(self.pointer.is_some())
            + usize::from(!self.counts.is_zero())
    }
}

/// Plans the delivery of `incoming` (one recipient's events of one batch) over what was
/// observed; `None` when every event was counted already. Events are taken oldest first; an
/// event joins the open notification when [`Batching::takes`] it, else opens a new one.
pub fn plan(
    batching: Batching,
    recipient: &UserId,
    group: &GroupKey,
    observed: &Observed,
    counted: impl Fn(EventId) -> bool,
    incoming: &[Incoming],
) -> Option<Delivery> {
    let mut seen = BTreeSet::new();
    let mut events: Vec<&Incoming> = incoming
        .iter()
        .filter(|i| !counted(i.event.id) && seen.insert(i.event.id))
        .collect();
    if events.is_empty() {
        return None;
    }
    events.sort_by_key(|i| (i.event.occurred_at, i.event.id));

    // (notification, revision the store must hold, changed)
    let mut open: Option<(Notification, u64, bool)> = observed
        .open
        .clone()
        .filter(|n| observed.pointer == Some(n.id))
        .map(|n| {
            let revision = n.revision;
            (n, revision, false)
        });
    let mut writes = Vec::new();
    let mut counts = Counts::default();
    let mut opened = false;
    for inc in events {
        let change = Change {
            event_id: inc.event.id,
            at: inc.event.occurred_at,
            summary: inc.summary.clone(),
        };
        match open.as_mut() {
            Some((note, _, changed)) if batching.takes(note, &inc.event) => {
                if note.state == NoteState::Seen {
                    // It has news since the bell showed it.
                    counts += Counts::of_move(Some(NoteState::Seen), Some(NoteState::Unseen));
                    note.state = NoteState::Unseen;
                    note.seen_at = None;
                }
                note.changes.push(change);
                note.changes.sort_by_key(|c| (c.at, c.event_id));
                note.updated_at = note.updated_at.max(inc.event.occurred_at);
                note.created_at = note.created_at.min(inc.event.occurred_at);
                *changed = true;
            }
            _ => {
                if let Some(done) = open.take() {
                    writes.push(done);
                }
                let note = Notification::opened(
                    &inc.event,
                    recipient.clone(),
                    inc.label.clone(),
                    inc.summary.clone(),
                );
                counts += Counts::of_move(None, Some(NoteState::Unseen));
                open = Some((note, 0, true));
                opened = true;
            }
        }
    }
    let last_open = open.as_ref().map(|(n, _, _)| n.id);
    writes.extend(open);
    let receipts = writes
        .iter()
        .filter(|(_, _, changed)| *changed)
        .flat_map(|(n, _, _)| n.changes.iter().map(|c| c.event_id))
        .filter(|id| seen.contains(id))
        .collect();
    let writes = writes
        .into_iter()
        .filter(|(_, _, changed)| *changed)
        .map(|(mut n, expected, _)| {
            n.revision = expected + 1;
            (n, expected)
        })
        .collect();
    let pointer = (batching.is_on() && opened)
        .then_some(last_open)
        .flatten()
        .map(|id| (id, observed.pointer));
    Some(Delivery {
        recipient: recipient.clone(),
        group: group.clone(),
        receipts,
        writes,
        pointer,
        counts,
    })
}

/// The deliveries in groups that each fit one transaction (≤ 100 items, a recipient's
/// counter once per transaction): indexes into `deliveries`, in order.
pub fn packs(deliveries: &[Delivery]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut pack: Vec<usize> = Vec::new();
    let mut items = 0;
    // The recipients whose counter the pack moves already.
    let mut counters: HashSet<&UserId> = HashSet::new();
    for (i, d) in deliveries.iter().enumerate() {
        let moves = !d.counts.is_zero();
        let own = d.items() - usize::from(moves);
        let new_counter =
            |counters: &HashSet<&UserId>| usize::from(moves && !counters.contains(&d.recipient));
        if !pack.is_empty() && items + own + new_counter(&counters) > TRANSACTION_MAX_ITEMS {
            out.push(std::mem::take(&mut pack));
            items = 0;
            counters.clear();
        }
        items += own + new_counter(&counters);
        if moves {
            counters.insert(&d.recipient);
        }
        pack.push(i);
    }
    if !pack.is_empty() {
        out.push(pack);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::state::Transition;
    use crate::time::Timestamp;

    fn moved(at_seconds: i64) -> Incoming {
        let mut event: DomainEvent = serde_json::from_str(include_str!(
            "../../../../events/domain/episode.updated.json"
        ))
        .unwrap();
        event.id = EventId::new();
        event.occurred_at = Timestamp::parse("2026-12-01T10:00:00Z")
            .unwrap()
            .plus_seconds(at_seconds);
        Incoming {
            summary: format!("Alice moved S2E4 “Pilot” at {at_seconds}"),
            label: "S2E4 “Pilot”".into(),
            event,
        }
    }

    fn bob() -> UserId {
        UserId::parse("bob").unwrap()
    }

    fn plan_all(b: Batching, observed: &Observed, incoming: &[Incoming]) -> Delivery {
        let group = GroupKey::of(&incoming[0].event);
        plan(b, &bob(), &group, observed, |_| false, incoming).unwrap()
    }

    /// The store after a delivery, as the worker would observe it next.
    fn after(d: &Delivery) -> Observed {
        let pointer = d.pointer.map(|(id, _)| id);
        Observed {
            pointer,
            open: d
                .writes
                .iter()
                .map(|(n, _)| n.clone())
                .find(|n| Some(n.id) == pointer),
        }
    }

    #[test]
    fn four_moves_in_the_window_are_one_notification_counted_once() {
        let moves: Vec<Incoming> = [0, 10, 30, 59].map(moved).into();
        let d = plan_all(Batching::DEFAULT, &Observed::default(), &moves);
        assert_eq!(d.writes.len(), 1);
        let (note, expected) = &d.writes[0];
        assert_eq!(*expected, 0, "new");
        assert_eq!(note.revision, 1);
        assert_eq!(note.changes.len(), 4);
        assert_eq!(note.summary(), "Alice moved S2E4 “Pilot” 4 times");
        assert_eq!(note.id, moves[0].event.id);
        assert_eq!(d.receipts.len(), 4);
        assert_eq!(
            d.counts,
            Counts {
                unread: 1,
                unseen: 1
            }
        );
        assert_eq!(d.pointer, Some((note.id, None)));
        assert_eq!(d.items(), 4 + 1 + 1 + 1);
    }

    #[test]
    fn a_change_after_the_window_opens_another() {
        let moves: Vec<Incoming> = [0, 61].map(moved).into();
        let d = plan_all(Batching::DEFAULT, &Observed::default(), &moves);
        assert_eq!(d.writes.len(), 2);
        assert_eq!(d.counts.unread, 2);
        assert_eq!(d.pointer.map(|p| p.0), Some(moves[1].event.id));
    }

    #[test]
    fn an_open_notification_grows_in_place_and_a_seen_one_is_unseen_again() {
        let first = plan_all(Batching::DEFAULT, &Observed::default(), &[moved(0)]);
        let mut observed = after(&first);
        let next = plan_all(Batching::DEFAULT, &observed, &[moved(5)]);
        assert_eq!(next.writes.len(), 1);
        assert_eq!(next.writes[0].1, 1, "must find revision 1");
        assert_eq!(next.writes[0].0.revision, 2);
        assert!(next.counts.is_zero(), "the bell counts notifications");
        assert_eq!(next.pointer, None, "the pointer stays");
        assert_eq!(next.items(), 2, "a receipt and the notification");

        // The bell showed it; a third change makes it unseen again (unread unchanged).
        let open = observed.open.as_mut().unwrap();
        assert!(open.apply(Transition::See, Timestamp::now()));
        let third = plan_all(Batching::DEFAULT, &observed, &[moved(6)]);
        assert_eq!(
            third.counts,
            Counts {
                unread: 0,
                unseen: 1
            }
        );
        assert_eq!(third.writes[0].0.state, NoteState::Unseen);
        assert_eq!(third.writes[0].0.seen_at, None);
    }

    #[test]
    fn a_read_or_full_notification_starts_a_new_one() {
        let first = plan_all(Batching::DEFAULT, &Observed::default(), &[moved(0)]);
        let mut observed = after(&first);
        observed
            .open
            .as_mut()
            .unwrap()
            .apply(Transition::Read, Timestamp::now());
        let next = plan_all(Batching::DEFAULT, &observed, &[moved(1)]);
        assert_eq!(next.writes.len(), 1);
        assert_eq!(next.writes[0].1, 0, "a new one");
        assert_eq!(
            next.pointer,
            Some((next.writes[0].0.id, Some(first.writes[0].0.id)))
        );

        let many: Vec<Incoming> = (0..(MAX_CHANGES as i64 + 3))
            .map(|i| moved(i % 60))
            .collect();
        let d = plan_all(Batching::DEFAULT, &Observed::default(), &many);
        let sizes: Vec<usize> = d.writes.iter().map(|(n, _)| n.changes.len()).collect();
        assert_eq!(sizes, [MAX_CHANGES, 3]);
        assert_eq!(d.receipts.len(), MAX_CHANGES + 3);
    }

    #[test]
    fn counted_events_are_skipped_and_batching_off_is_one_per_event() {
        let moves: Vec<Incoming> = [0, 1, 1].map(moved).into();
        let group = GroupKey::of(&moves[0].event);
        let done = moves[0].event.id;
        let d = plan(
            Batching::DEFAULT,
            &bob(),
            &group,
            &Observed::default(),
            |id| id == done,
            &moves,
        )
        .unwrap();
        assert_eq!(d.receipts.len(), 2);
        assert!(!d.receipts.contains(&done));
        let all = moves.iter().map(|m| m.event.id).collect::<Vec<_>>();
        assert!(
            plan(
                Batching::DEFAULT,
                &bob(),
                &group,
                &Observed::default(),
                |id| all.contains(&id),
                &moves
            )
            .is_none()
        );
        // The same event twice in one batch counts once.
        let twice = [moved(0)];
        let twice = [twice[0].clone(), twice[0].clone()];
        assert_eq!(
            plan_all(Batching::DEFAULT, &Observed::default(), &twice)
                .receipts
                .len(),
            1
        );

        let off = plan_all(Batching::OFF, &Observed::default(), &moves);
        assert_eq!(off.writes.len(), 3);
        assert!(off.writes.iter().all(|(n, _)| n.changes.len() == 1));
        assert_eq!(off.pointer, None, "no batches, nothing to point at");
        assert_eq!(off.counts.unread, 3);
    }

    #[test]
    fn late_events_within_the_window_join_in_order() {
        let d = plan_all(Batching::DEFAULT, &Observed::default(), &[moved(30)]);
        let observed = after(&d);
        let late = plan_all(Batching::DEFAULT, &observed, &[moved(0)]);
        let note = &late.writes[0].0;
        assert_eq!(note.changes.len(), 2);
        assert!(note.changes[0].at < note.changes[1].at);
        assert_eq!(note.created_at, note.changes[0].at);
    }

    #[test]
    fn packs_fit_transactions_with_one_counter_per_recipient() {
        let one = plan_all(Batching::DEFAULT, &Observed::default(), &[moved(0)]);
        assert_eq!(one.items(), 4);
        let many: Vec<Delivery> = (0..60)
            .map(|i| Delivery {
                recipient: UserId::parse(&format!("u{i}")).unwrap(),
                ..one.clone()
            })
            .collect();
        let sizes: Vec<usize> = packs(&many).iter().map(Vec::len).collect();
        assert_eq!(sizes, [25, 25, 10]);
        // The same recipient's two batches share the counter item.
        let two = vec![
            one.clone(),
            Delivery {
                group: GroupKey {
                    event_type: EventType::JobFailed,
                    ..one.group.clone()
                },
                ..one.clone()
            },
        ];
        assert_eq!(packs(&two), [vec![0, 1]]);
        assert!(packs(&[]).is_empty());
    }
}
