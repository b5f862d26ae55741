//! What every function does the same way: configuration from the environment, JSON logs,
//! the caller's identity from the authorizer's claims, and errors as RFC 9457 problem+json.

pub mod call_counter;
pub mod config;
pub mod cursor;
pub mod fixture;
pub mod http;
pub mod identity;
pub mod problem;
pub mod router;
pub mod sqs;
pub mod telemetry;

pub use call_counter::{AwsCallCounter, AwsCalls};
pub use config::{
    ConfigError, NumberError, RulesError, notification_retention_from_env, parse_upload_rules,
    presence_retention_from_env, required_env, upload_rules_from_env, whole_env,
};
pub use identity::{RequestMeta, RoleSource, actor_from_claims};
pub use problem::{Problem, SavedFirst};
