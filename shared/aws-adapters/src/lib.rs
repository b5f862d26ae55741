//! AWS implementations of the domain's ports, and the one way every function builds its SDK
//! configuration (endpoint from `AWS_ENDPOINT_URL`, the same code path on AWS and locally).

pub mod activity_store;
pub mod call_counter;
pub mod connections;
pub mod episode_store;
pub mod file_store;
mod item;
pub mod job_store;
pub mod notification_store;
pub mod object_store;
pub mod publisher;
pub mod realtime_store;
mod transact;

pub use activity_store::{ActivityPage, ActivityQuery, DynamoActivityStore};
pub use call_counter::AwsCallCounter;
pub use connections::{ConnectionPoster, FanOut, PostOutcome};
pub use episode_store::{DynamoEpisodeStore, Tables};
pub use file_store::{DynamoFileStore, FilePage, FileTables, FileWriteError};
pub use job_store::{CreateError, DynamoJobStore, JobPage, JobTables, MoveError};
pub use notification_store::{
    DynamoNotificationStore, MarkRead, NotificationPage, NotificationTables,
};
pub use object_store::{ObjectInfo, ObjectStore, Presigned};
pub use publisher::{DeadLetterQueue, MessageQueue, OutgoingMessage, SqsPublisher};
pub use realtime_store::{Closed, DynamoRealtimeStore, RealtimeTables, SubscribeError, Subscribed};

/// A DynamoDB client whose calls `calls` counts (for the per-request and per-batch logs).
pub fn counted_dynamodb(
    sdk: &aws_config::SdkConfig,
    calls: &AwsCallCounter,
) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    )
}

/// An SQS client whose calls `calls` counts.
pub fn counted_sqs(sdk: &aws_config::SdkConfig, calls: &AwsCallCounter) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    )
}

/// Loads the shared SDK configuration once, at init. Region, credentials and the endpoint come
/// from the environment, as on AWS.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}
