//! The contracts against the AWS adapters on the running local stack (`make test` runs this
//! with `--features emulator` after deploying the template; it reads `.local/stack.json`).

// A test harness: a failed set-up step fails the test, as it would inside #[test].
#![allow(clippy::unwrap_used)]

use aws_adapters::{
    DeadLetterQueue, DynamoActivityStore, DynamoAnalyticsStore, DynamoEpisodeLabels,
    DynamoEpisodeStore, DynamoEventHistory, DynamoExportStore, DynamoFileStore, DynamoJobStore,
    DynamoNotificationStore, DynamoRealtimeStore, DynamoSearchIndex, DynamoSubscriber, FileTables,
    JobTables, MessageQueue, NotificationTables, ObjectStore, RealtimeTables, SqsPublisher, Tables,
};
use aws_sdk_dynamodb::types::AttributeValue;
use domain::store::EpisodeWriter;
use domain::{
    Actor, CorrelationId, DomainEvent, EpisodeDeletion, EpisodeId, EventContext, EventType, Queue,
    Stamp, Timestamp,
};
use port_contracts::{QueueWorld, Sink, World, contract_tests, queue_contract_tests};
use serde_json::Value;

struct Emulator {
    episodes: DynamoEpisodeStore,
    history: DynamoEventHistory,
    files: DynamoFileStore,
    jobs: DynamoJobStore,
    objects: ObjectStore,
    exports: DynamoExportStore,
    search: DynamoSearchIndex,
    analytics: DynamoAnalyticsStore,
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

/// The SDK set-up for the local stack's endpoint, region and credentials.
async fn sdk(stack: &Value) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
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
        .await
}

async fn world() -> Emulator {
    let stack = stack();
    let out = |name: &str| stack["outputs"][name].as_str().unwrap().to_owned();
    let sdk = sdk(&stack).await;
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
        exports: DynamoExportStore::new(dynamodb.clone(), out("ExportsTableName")),
        search: DynamoSearchIndex::new(dynamodb.clone(), out("SearchTableName")),
        analytics: DynamoAnalyticsStore::new(dynamodb.clone(), out("AnalyticsTableName")),
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
    type Exports = DynamoExportStore;
    type Search = DynamoSearchIndex;
    type Analytics = DynamoAnalyticsStore;
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

    fn exports(&self) -> &DynamoExportStore {
        &self.exports
    }

    fn search(&self) -> &DynamoSearchIndex {
        &self.search
    }

    fn analytics(&self) -> &DynamoAnalyticsStore {
        &self.analytics
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
        self.episodes.create(&episode, &event, None).await.unwrap();
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

/// Three queues of the world's own on the emulator's SQS, removed when it finishes.
struct Queues {
    sqs: aws_sdk_sqs::Client,
    urls: [String; 3],
    queue: MessageQueue,
    parking: DeadLetterQueue,
    publisher: SqsPublisher,
}

async fn queues() -> Queues {
    let stack = stack();
    let sdk = sdk(&stack).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let run = EpisodeId::new().to_string();
    let mut urls = Vec::new();
    for role in ["queue", "parking", "published"] {
        let out = sqs
            .create_queue()
            .queue_name(format!("contracts-{role}-{}", &run[24..]))
            .send()
            .await
            .unwrap();
        urls.push(out.queue_url().unwrap().to_owned());
    }
    let urls: [String; 3] = urls.try_into().unwrap();
    let routes = [
        Queue::Activity,
        Queue::Notifications,
        Queue::Realtime,
        Queue::Files,
        Queue::Jobs,
        Queue::Search,
        Queue::Analytics,
    ]
    .into_iter()
    .map(|q| (q, urls[2].clone()))
    .collect();
    Queues {
        queue: MessageQueue::new(sqs.clone(), urls[0].clone()),
        parking: DeadLetterQueue::new(sqs.clone(), urls[1].clone()),
        publisher: SqsPublisher::new(
            sqs.clone(),
            routes,
            DeadLetterQueue::new(sqs.clone(), urls[1].clone()),
        ),
        sqs,
        urls,
    }
}

impl QueueWorld for Queues {
    type Queue = MessageQueue;
    type Parking = DeadLetterQueue;
    type Publisher = SqsPublisher;

    fn queue(&self) -> &MessageQueue {
        &self.queue
    }

    fn parking(&self) -> &DeadLetterQueue {
        &self.parking
    }

    fn publisher(&self) -> &SqsPublisher {
        &self.publisher
    }

    async fn received(&self, sink: Sink, count: usize) -> Vec<String> {
        let url = match sink {
            Sink::Queue => &self.urls[0],
            Sink::DeadLetters => &self.urls[1],
            Sink::Published => &self.urls[2],
        };
        let mut bodies = Vec::new();
        // At most five one-second waits; one for a queue that should stay empty.
        for _ in 0..5 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in out.messages() {
                bodies.push(m.body().unwrap_or_default().to_owned());
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .unwrap();
            }
            if count == 0 || bodies.len() >= count {
                break;
            }
        }
        bodies
    }

    async fn finish(&self) {
        for url in &self.urls {
            // Best effort: a queue left behind is the emulator's, gone with it.
            let _ = self.sqs.delete_queue().queue_url(url).send().await;
        }
    }
}

queue_contract_tests!(queues().await);

/// A counted client asks DynamoDB what each call consumed and adds it up (the figures each
/// `request handled` line carries, and the bench prices): the emulator reports units from item
/// sizes as DynamoDB does.
#[tokio::test]
async fn a_counted_client_adds_up_the_request_units_dynamodb_reports() {
    let stack = stack();
    let table = stack["outputs"]["SettingsTableName"]
        .as_str()
        .unwrap()
        .to_owned();
    let calls = lambda_kit::AwsCallCounter::default();
    let client = aws_adapters::counted_dynamodb(&sdk(&stack).await, &calls);
    let key = format!("units-{}", EpisodeId::new());
    client
        .put_item()
        .table_name(&table)
        .item("user_id", AttributeValue::S(key.clone()))
        // 2.5 KB: three write units.
        .item("pad", AttributeValue::S("x".repeat(2500)))
        .send()
        .await
        .unwrap();
    client
        .get_item()
        .table_name(&table)
        .key("user_id", AttributeValue::S(key.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let spent = calls.take();
    assert_eq!(spent.dynamodb, 2);
    assert_eq!(
        (spent.read_units, spent.write_units),
        (1.0, 3.0),
        "{spent:?}"
    );
    client
        .delete_item()
        .table_name(&table)
        .key("user_id", AttributeValue::S(key))
        .send()
        .await
        .unwrap();
}

/// An episode written before the lists were sharded (bare `episodes` / `draft` keys) is still
/// listed, once; an update moves it to its shard (`list_pk`, and `status_pk` with a status
/// change), where it is listed once as well.
#[tokio::test]
async fn an_episode_written_before_the_sharding_is_listed_and_moved_by_its_next_update() {
    use domain::store::{EpisodeLister, EpisodeReader, ListQuery, PageSize};
    use domain::{EpisodeChanges, EpisodeStatus, EpisodeUpdate, Title};

    let w = world().await;
    let episode = port_contracts::sample::episode();
    w.episodes
        .create(
            &episode,
            &DomainEvent::episode_created(&context(), &episode),
            None,
        )
        .await
        .unwrap();
    let keys = || async {
        let out = w
            .dynamodb
            .get_item()
            .table_name(&w.episodes_table)
            .key("id", AttributeValue::S(episode.id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        let item = out.item().unwrap();
        let key = |name: &str| item[name].as_s().unwrap().clone();
        (key("list_pk"), key("status_pk"))
    };
    let k = episode.id.bucket(aws_adapters::shards::LIST_SHARDS);
    assert_eq!(
        keys().await,
        (format!("episodes#{k}"), format!("draft#{k}"))
    );
    w.dynamodb
        .update_item()
        .table_name(&w.episodes_table)
        .key("id", AttributeValue::S(episode.id.to_string()))
        .update_expression("SET list_pk = :all, status_pk = :draft")
        .expression_attribute_values(":all", AttributeValue::S("episodes".into()))
        .expression_attribute_values(":draft", AttributeValue::S("draft".into()))
        .send()
        .await
        .unwrap();
    // How often it is listed, walking from just after it until past it (other tests create
    // episodes meanwhile).
    let count = |status: Option<EpisodeStatus>| {
        let w = &w;
        async move {
            let (mut seen, mut after) = (0, Some(EpisodeId::new()));
            loop {
                let page = w
                    .episodes
                    .list(&ListQuery {
                        status,
                        limit: PageSize::parse("7").unwrap(),
                        after,
                    })
                    .await
                    .unwrap();
                seen += page.items.iter().filter(|e| e.id == episode.id).count();
                let passed = page.items.last().is_none_or(|e| e.id <= episode.id);
                if passed || page.next_after.is_none() {
                    return seen;
                }
                after = page.next_after;
            }
        }
    };
    assert_eq!(count(None).await, 1, "listed from the bare key");
    assert_eq!(count(Some(EpisodeStatus::Draft)).await, 1);

    let current = w.episodes.get(episode.id).await.unwrap().unwrap();
    let retitle = EpisodeUpdate {
        id: episode.id,
        expected: current.version,
        changes: EpisodeChanges {
            title: Some(Title::parse("Moved").unwrap()),
            ..EpisodeChanges::default()
        },
        updated: Stamp::new(&contractor(), Timestamp::now()),
    };
    w.episodes
        .update(
            &retitle,
            &DomainEvent::episode_updated(&context(), &retitle),
        )
        .await
        .unwrap();
    assert_eq!(keys().await, (format!("episodes#{k}"), "draft".to_owned()));
    assert_eq!(count(None).await, 1, "listed from its shard, once");
    assert_eq!(count(Some(EpisodeStatus::Draft)).await, 1);

    let start = EpisodeUpdate {
        id: episode.id,
        expected: retitle.new_version(),
        changes: EpisodeChanges {
            status: Some(EpisodeStatus::InProduction),
            ..EpisodeChanges::default()
        },
        updated: Stamp::new(&contractor(), Timestamp::now()),
    };
    w.episodes
        .update(&start, &DomainEvent::episode_updated(&context(), &start))
        .await
        .unwrap();
    assert_eq!(
        keys().await,
        (format!("episodes#{k}"), format!("in_production#{k}"))
    );
    assert_eq!(count(Some(EpisodeStatus::Draft)).await, 0);
    assert_eq!(count(Some(EpisodeStatus::InProduction)).await, 1);
}
