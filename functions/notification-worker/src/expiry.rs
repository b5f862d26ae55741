//! The notifications table's stream: a notification the table's TTL removed (the retention
//! of `UnreadNotificationRetentionDays`) comes off its recipient's bell counts, once.

use domain::store::StoreError;
use domain::store::notification::{NotificationWriter, Removed};

/// What one stream batch removed, as `main` read it from the records' old images.
#[derive(Debug, Default)]
pub struct Removals {
    pub removed: Vec<Removed>,
    /// Records of notifications whose image could not be read (logged, not counted).
    pub unreadable: usize,
}

/// Takes the removed notifications off the counts. An error fails the invocation: the
/// stream sends the batch again, and notifications taken off before are not taken off twice.
pub async fn handle<N: NotificationWriter + Sync>(
    store: &N,
    removals: &Removals,
) -> Result<(), StoreError> {
    let counted = removals
        .removed
        .iter()
        .filter(|r| r.state.is_unread())
        .count();
    store.uncount(&removals.removed).await?;
    tracing::info!(
        removed = removals.removed.len(),
        unread = counted,
        unreadable = removals.unreadable,
        "removed notifications uncounted"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use domain::notification::{Delivery, NoteState};
    use domain::store::memory::InMemoryNotifications;
    use domain::store::notification::Inbox;
    use domain::{DomainEvent, EventId, UserId};

    use super::*;

    fn bob() -> UserId {
        UserId::parse("bob").unwrap()
    }

    async fn delivered(store: &InMemoryNotifications) -> EventId {
        let event: DomainEvent =
            serde_json::from_str(include_str!("../../../events/domain/episode.updated.json"))
                .unwrap();
        let delivery = Delivery::single(&event, &bob(), "S2E4", "moved");
        assert_eq!(store.apply(&[delivery]).await.unwrap(), [true]);
        event.id
    }

    fn removed(id: EventId, state: NoteState) -> Removals {
        Removals {
            removed: vec![Removed {
                recipient: bob(),
                id,
                state,
            }],
            unreadable: 0,
        }
    }

    #[tokio::test]
    async fn an_expired_unread_notification_comes_off_the_counts_once() {
        let store = InMemoryNotifications::default();
        let id = delivered(&store).await;
        let before = store.counts(&bob()).await.unwrap();
        assert_eq!((before.unread, before.unseen), (1, 1));
        let gone = removed(id, NoteState::Unseen);
        handle(&store, &gone).await.unwrap();
        handle(&store, &gone).await.unwrap(); // the stream's redelivery
        let after = store.counts(&bob()).await.unwrap();
        assert_eq!((after.unread, after.unseen), (0, 0));
    }

    #[tokio::test]
    async fn an_expired_read_notification_changes_no_count() {
        let store = InMemoryNotifications::default();
        let id = delivered(&store).await;
        handle(&store, &removed(id, NoteState::Read)).await.unwrap();
        let after = store.counts(&bob()).await.unwrap();
        assert_eq!((after.unread, after.unseen), (1, 1));
    }
}
