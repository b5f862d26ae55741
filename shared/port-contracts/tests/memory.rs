//! The contracts against the in-memory ports the handler tests use.

// A test harness: a failed set-up step fails the test, as it would inside #[test].
#![allow(clippy::unwrap_used)]

use domain::store::memory::{
    InMemoryActivityLog, InMemoryAnalytics, InMemoryDeadLetters, InMemoryEpisodeLabels,
    InMemoryEpisodeStore, InMemoryExports, InMemoryFileStore, InMemoryJobStore,
    InMemoryNotifications, InMemoryObjects, InMemoryPublisher, InMemoryQueue, InMemoryRealtime,
    InMemorySearchIndex,
};
use domain::store::notification::Inbox;
use domain::store::{
    EpisodeLister, EpisodeReader, EpisodeWriter, Idempotency, ListQuery, Page, StoreError,
};
use domain::{
    DomainEvent, Episode, EpisodeDeletion, EpisodeId, EpisodeUpdate, EventType, Timestamp, UserId,
};
use port_contracts::sample::{self, CREATOR, LABEL};
use port_contracts::{QueueWorld, Sink, World, contract_tests, queue_contract_tests};

/// The episodes store, and the events table it writes as the event history reads it (on AWS
/// one table; here the history is the realtime fake's, fed with each event written).
struct Episodes {
    store: InMemoryEpisodeStore,
    history: InMemoryRealtime,
}

impl Episodes {
    fn written(
        &self,
        result: Result<(), StoreError>,
        event: &DomainEvent,
    ) -> Result<(), StoreError> {
        if result.is_ok() {
            self.history.add_event(event.clone());
        }
        result
    }
}

impl EpisodeReader for Episodes {
    async fn get(&self, id: EpisodeId) -> Result<Option<Episode>, StoreError> {
        self.store.get(id).await
    }
}

impl EpisodeLister for Episodes {
    async fn list(&self, query: &ListQuery) -> Result<Page<Episode>, StoreError> {
        self.store.list(query).await
    }
}

impl EpisodeWriter for Episodes {
    async fn create(
        &self,
        episode: &Episode,
        event: &DomainEvent,
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<(), StoreError> {
        let result = self.store.create(episode, event, idempotency).await;
        self.written(result, event)
    }

    async fn update(&self, update: &EpisodeUpdate, event: &DomainEvent) -> Result<(), StoreError> {
        let result = self.store.update(update, event).await;
        self.written(result, event)
    }

    async fn delete(
        &self,
        deletion: &EpisodeDeletion,
        event: &DomainEvent,
    ) -> Result<(), StoreError> {
        let result = self.store.delete(deletion, event).await;
        self.written(result, event)
    }
}

struct Memory {
    episodes: Episodes,
    files: InMemoryFileStore,
    jobs: InMemoryJobStore,
    objects: InMemoryObjects,
    exports: InMemoryExports,
    search: InMemorySearchIndex,
    analytics: InMemoryAnalytics,
    activity: InMemoryActivityLog,
    labels: InMemoryEpisodeLabels,
    notifications: InMemoryNotifications,
    realtime: InMemoryRealtime,
}

fn world() -> Memory {
    let files = InMemoryFileStore::default();
    let realtime = InMemoryRealtime::default();
    Memory {
        episodes: Episodes {
            store: InMemoryEpisodeStore::default(),
            history: realtime.clone(),
        },
        jobs: InMemoryJobStore::new(&files),
        files,
        objects: InMemoryObjects::default(),
        exports: InMemoryExports::default(),
        search: InMemorySearchIndex::default(),
        analytics: InMemoryAnalytics::default(),
        activity: InMemoryActivityLog::default(),
        labels: InMemoryEpisodeLabels::default(),
        notifications: InMemoryNotifications::default(),
        realtime,
    }
}

impl World for Memory {
    type Episodes = Episodes;
    type History = InMemoryRealtime;
    type Files = InMemoryFileStore;
    type Jobs = InMemoryJobStore;
    type Exports = InMemoryExports;
    type Search = InMemorySearchIndex;
    type Analytics = InMemoryAnalytics;
    type Objects = InMemoryObjects;
    type Activity = InMemoryActivityLog;
    type Labels = InMemoryEpisodeLabels;
    type Notifications = InMemoryNotifications;
    type Realtime = InMemoryRealtime;
    type Subscriber = InMemoryRealtime;

    fn episodes(&self) -> &Episodes {
        &self.episodes
    }

    fn history(&self) -> &InMemoryRealtime {
        &self.realtime
    }

    fn files(&self) -> &InMemoryFileStore {
        &self.files
    }

    fn jobs(&self) -> &InMemoryJobStore {
        &self.jobs
    }

    fn exports(&self) -> &InMemoryExports {
        &self.exports
    }

    fn search(&self) -> &InMemorySearchIndex {
        &self.search
    }

    fn analytics(&self) -> &InMemoryAnalytics {
        &self.analytics
    }

    fn objects(&self) -> &InMemoryObjects {
        &self.objects
    }

    fn activity(&self) -> &InMemoryActivityLog {
        &self.activity
    }

    fn labels(&self) -> &InMemoryEpisodeLabels {
        &self.labels
    }

    fn notifications(&self) -> &InMemoryNotifications {
        &self.notifications
    }

    fn realtime(&self) -> &InMemoryRealtime {
        &self.realtime
    }

    fn subscriber(&self) -> &InMemoryRealtime {
        &self.realtime
    }

    /// As the episodes API leaves a new episode: it exists, has its label, its creator
    /// watches it.
    async fn episode(&self) -> EpisodeId {
        let id = sample::episode().id;
        self.files.add_episode(id);
        self.labels.set(id, LABEL);
        self.notifications.add_episode(id);
        self.realtime.add_episode(id);
        let creator = UserId::parse(CREATOR).unwrap();
        assert!(
            self.notifications
                .watch(id, &creator, Timestamp::now())
                .await
                .unwrap()
        );
        id
    }

    async fn quiet_episode(&self) -> EpisodeId {
        self.episode().await
    }

    async fn delete_episode(&self, id: EpisodeId) {
        self.files.delete_episode(id);
        self.notifications.delete_episode(id);
        self.realtime.delete_episode(id);
    }

    async fn events(&self, episode: EpisodeId) -> Vec<EventType> {
        let mut events: Vec<_> = self
            .files
            .events()
            .into_iter()
            .chain(self.jobs.events())
            .filter(|e| e.episode_id == Some(episode))
            .collect();
        // The events table's sort key: event ids are UUIDv7, in time order.
        events.sort_by_key(|e| e.id);
        events.into_iter().map(|e| e.event_type).collect()
    }

    async fn upload_part(&self, _key: &str, upload_id: &str, part: u32, bytes: Vec<u8>) {
        self.objects.upload_part(upload_id, part, bytes);
    }
}

contract_tests!(world());

/// The queues: what the fakes recorded is what a consumer would receive.
#[derive(Default)]
struct Queues {
    queue: InMemoryQueue,
    parking: InMemoryDeadLetters,
    publisher: InMemoryPublisher,
}

impl QueueWorld for Queues {
    type Queue = InMemoryQueue;
    type Parking = InMemoryDeadLetters;
    type Publisher = InMemoryPublisher;

    fn queue(&self) -> &InMemoryQueue {
        &self.queue
    }

    fn parking(&self) -> &InMemoryDeadLetters {
        &self.parking
    }

    fn publisher(&self) -> &InMemoryPublisher {
        &self.publisher
    }

    async fn received(&self, sink: Sink, _count: usize) -> Vec<String> {
        match sink {
            Sink::Queue => self.queue.sent().into_iter().map(|(b, _)| b).collect(),
            Sink::DeadLetters => self.parking.parked().into_iter().map(|(b, _)| b).collect(),
            Sink::Published => self
                .publisher
                .accepted()
                .into_iter()
                .map(|(_, m)| m.body)
                .collect(),
        }
    }

    async fn finish(&self) {}
}

queue_contract_tests!(Queues::default());
