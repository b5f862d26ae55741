//! The contracts against the AWS adapters on the running local stack (`make test` runs this
//! with `--features emulator` after deploying the template; it reads `.local/stack.json`).

// A test harness: a failed set-up step fails the test, as it would inside #[test].
#![allow(clippy::unwrap_used)]

use aws_adapters::{
    DynamoActivityStore, DynamoEpisodeLabels, DynamoEpisodeStore, DynamoEventHistory,
    DynamoFileStore, DynamoJobStore, DynamoNotificationStore, DynamoRealtimeStore,
    DynamoSubscriber, FileTables, JobTables, NotificationTables, ObjectStore, RealtimeTables,
    Tables,
};
use aws_sdk_dynamodb::types::AttributeValue;
use domain::store::EpisodeWriter;
use domain::{
    Actor, CorrelationId, DomainEvent, EpisodeDeletion, EpisodeId, EventContext, EventType, Stamp,
    Timestamp,
};
use port_contracts::{World, contract_tests};
use serde_json::Value;

struct Emulator {
    episodes: DynamoEpisodeStore,
    history: DynamoEventHistory,
    files: DynamoFileStore,
    jobs: DynamoJobStore,
    objects: ObjectStore,
    activity: DynamoActivityStore,
    labels: DynamoEpisodeLabels,
    notifications: DynamoNotificationStore,
    realtime: DynamoRealtimeStore,
    subscriber: DynamoSubscriber,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    events_table: String,
    episodes_table: String,
    bucket: String,
}

fn stack() -> Value {
    let path = std::env::var("STACK_JSON")
        .unwrap_or_else(|_| format!("{}/../../.local/stack.json", env!("CARGO_MANIFEST_DIR")));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (is the local stack up? `make up`)"));
    serde_json::from_str(&text).unwrap()
}

async fn world() -> Emulator {
    let stack = stack();
    let out = |name: &str| stack["outputs"][name].as_str().unwrap().to_owned();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(stack["aws_endpoint"].as_str().unwrap())
        .region(aws_config::Region::new(
            stack["region"].as_str().unwrap().to_owned(),
        ))
        // The local stack's credentials (ministack checks them), as `stack.py` gives functions.
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into()),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into()),
            None,
            None,
            "local-stack",
        ))
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let (episodes, events, files) = (
        out("EpisodesTableName"),
        out("EventsTableName"),
        out("FilesTableName"),
    );
    let realtime = DynamoRealtimeStore::new(
        dynamodb.clone(),
        RealtimeTables {
            connections: out("ConnectionsTableName"),
            subscriptions: out("SubscriptionsTableName"),
            presence: out("PresenceTableName"),
        },
    );
    Emulator {
        episodes: DynamoEpisodeStore::new(
            dynamodb.clone(),
            Tables {
                episodes: episodes.clone(),
                events: events.clone(),
                watches: out("WatchesTableName"),
            },
        ),
        history: DynamoEventHistory::new(dynamodb.clone(), events.clone()),
        files: DynamoFileStore::new(
            dynamodb.clone(),
            FileTables {
                files: files.clone(),
                episodes: episodes.clone(),
                events: events.clone(),
            },
        ),
        jobs: DynamoJobStore::new(
            dynamodb.clone(),
            JobTables {
                jobs: out("JobsTableName"),
                episodes,
                files,
                events: events.clone(),
            },
        ),
        objects: ObjectStore::new(&sdk, out("FilesBucketName"), &NoCounter),
        activity: DynamoActivityStore::new(dynamodb.clone(), out("ActivityTableName")),
        labels: DynamoEpisodeLabels::new(dynamodb.clone(), out("EpisodesTableName")),
        notifications: DynamoNotificationStore::new(
            dynamodb.clone(),
            NotificationTables {
                notifications: out("NotificationsTableName"),
                watches: out("WatchesTableName"),
                settings: out("SettingsTableName"),
                episodes: out("EpisodesTableName"),
            },
        ),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        ),
        realtime: realtime.clone(),
        subscriber: DynamoSubscriber::new(realtime, out("EpisodesTableName")),
        dynamodb,
        events_table: events,
        episodes_table: out("EpisodesTableName"),
        bucket: out("FilesBucketName"),
    }
}

/// An interceptor that sees nothing: the contracts do not count calls.
#[derive(Debug, Clone)]
struct NoCounter;

impl aws_smithy_runtime_api::client::interceptors::Intercept for NoCounter {
    fn name(&self) -> &'static str {
        "NoCounter"
    }
}

fn contractor() -> Actor {
    port_contracts::sample::actor(port_contracts::sample::CREATOR)
}

fn context() -> EventContext {
    EventContext {
        actor: contractor(),
        correlation_id: CorrelationId::generate(),
        request_id: None,
    }
}

impl World for Emulator {
    type Episodes = DynamoEpisodeStore;
    type History = DynamoEventHistory;
    type Files = DynamoFileStore;
    type Jobs = DynamoJobStore;
    type Objects = ObjectStore;
    type Activity = DynamoActivityStore;
    type Labels = DynamoEpisodeLabels;
    type Notifications = DynamoNotificationStore;
    type Realtime = DynamoRealtimeStore;
    type Subscriber = DynamoSubscriber;

    fn episodes(&self) -> &DynamoEpisodeStore {
        &self.episodes
    }

    fn history(&self) -> &DynamoEventHistory {
        &self.history
    }

    fn files(&self) -> &DynamoFileStore {
        &self.files
    }

    fn jobs(&self) -> &DynamoJobStore {
        &self.jobs
    }

    fn objects(&self) -> &ObjectStore {
        &self.objects
    }

    fn activity(&self) -> &DynamoActivityStore {
        &self.activity
    }

    fn labels(&self) -> &DynamoEpisodeLabels {
        &self.labels
    }

    fn notifications(&self) -> &DynamoNotificationStore {
        &self.notifications
    }

    fn realtime(&self) -> &DynamoRealtimeStore {
        &self.realtime
    }

    fn subscriber(&self) -> &DynamoSubscriber {
        &self.subscriber
    }

    async fn episode(&self) -> EpisodeId {
        let episode = port_contracts::sample::episode();
        let event = DomainEvent::episode_created(&context(), &episode);
        self.episodes.create(&episode, &event).await.unwrap();
        episode.id
    }

    async fn quiet_episode(&self) -> EpisodeId {
        let id = EpisodeId::new();
        self.dynamodb
            .put_item()
            .table_name(&self.episodes_table)
            .item("id", AttributeValue::S(id.to_string()))
            .item("title", AttributeValue::S("Contract".into()))
            .send()
            .await
            .unwrap();
        id
    }

    async fn delete_episode(&self, id: EpisodeId) {
        let deletion = EpisodeDeletion {
            id,
            expected: None,
            only_if_created_by: None,
            deleted: Stamp::new(&contractor(), Timestamp::now()),
        };
        let event = DomainEvent::episode_deleted(&context(), &deletion);
        self.episodes.delete(&deletion, &event).await.unwrap();
    }

    async fn events(&self, episode: EpisodeId) -> Vec<EventType> {
        let out = self
            .dynamodb
            .query()
            .table_name(&self.events_table)
            .key_condition_expression("episode_id = :e")
            .expression_attribute_values(":e", AttributeValue::S(episode.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .map(|it| {
                let name = it["type"].as_s().unwrap();
                EventType::ALL
                    .into_iter()
                    .find(|t| t.as_str() == name)
                    .unwrap()
            })
            // The episode's own events are set-up here, not what the contracts are about.
            .filter(|t| !t.as_str().starts_with("episode."))
            .collect()
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part: u32, bytes: Vec<u8>) {
        self.s3
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(i32::try_from(part).unwrap())
            .body(bytes.into())
            .send()
            .await
            .unwrap();
    }
}

contract_tests!(world().await);
