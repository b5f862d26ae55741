//! The contracts against the in-memory ports the handler tests use.

use domain::store::memory::{InMemoryFileStore, InMemoryJobStore, InMemoryObjects};
use domain::{EpisodeId, EventType};
use port_contracts::{World, contract_tests};

struct Memory {
    files: InMemoryFileStore,
    jobs: InMemoryJobStore,
    objects: InMemoryObjects,
}

fn world() -> Memory {
    let files = InMemoryFileStore::default();
    Memory {
        jobs: InMemoryJobStore::new(&files),
        files,
        objects: InMemoryObjects::default(),
    }
}

impl World for Memory {
    type Files = InMemoryFileStore;
    type Jobs = InMemoryJobStore;
    type Objects = InMemoryObjects;

    fn files(&self) -> &InMemoryFileStore {
        &self.files
    }

    fn jobs(&self) -> &InMemoryJobStore {
        &self.jobs
    }

    fn objects(&self) -> &InMemoryObjects {
        &self.objects
    }

    async fn episode(&self) -> EpisodeId {
        let id = EpisodeId::new();
        self.files.add_episode(id);
        id
    }

    async fn delete_episode(&self, id: EpisodeId) {
        self.files.delete_episode(id);
    }

    async fn events(&self, episode: EpisodeId) -> Vec<EventType> {
        let mut events: Vec<_> = self
            .files
            .events()
            .into_iter()
            .chain(self.jobs.events())
            .filter(|e| e.episode_id == episode)
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
