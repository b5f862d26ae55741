//! AWS implementations of the domain's ports, and the one way every function builds its SDK
//! configuration (endpoint from `AWS_ENDPOINT_URL`, the same code path on AWS and locally).

pub mod activity_store;
pub mod analytics_store;
mod batch;
pub mod capacity;
pub mod connections;
pub mod episode_store;
pub mod export_store;
pub mod file_store;
mod item;
pub mod job_store;
pub mod notification_store;
pub mod object_store;
pub mod publisher;
pub mod realtime_store;
pub mod search_index;
pub mod shards;
mod transact;

use aws_smithy_runtime_api::client::interceptors::Intercept;

pub use activity_store::{DynamoActivityStore, DynamoEpisodeLabels};
pub use analytics_store::DynamoAnalyticsStore;
pub use connections::ConnectionPoster;
pub use episode_store::{DynamoEpisodeReader, DynamoEpisodeStore, Tables};
pub use export_store::DynamoExportStore;
pub use file_store::{DynamoFileStore, FileTables};
pub use job_store::{DynamoJobStore, JobTables};
pub use notification_store::{DynamoNotificationStore, NotificationTables, removed_from_image};
pub use object_store::{ObjectBody, ObjectStore};
pub use publisher::{DeadLetterQueue, MessageQueue, SqsPublisher};
pub use realtime_store::{
    DynamoEventHistory, DynamoPresenceReader, DynamoRealtimeStore, DynamoSubscriber, RealtimeTables,
};
pub use search_index::DynamoSearchIndex;

/// Something that sees every request an SDK client sends: the function's call counter, for the
/// per-request and per-batch logs (`lambda_kit::AwsCallCounter`).
pub trait CallObserver: Intercept + Clone + 'static {}
impl<T: Intercept + Clone + 'static> CallObserver for T {}

/// A DynamoDB client whose calls `calls` counts, with the request units each consumed.
pub fn counted_dynamodb(
    sdk: &aws_config::SdkConfig,
    calls: &lambda_kit::AwsCallCounter,
) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .interceptor(capacity::CapacityMeter(calls.clone()))
            .build(),
    )
}

/// An SQS client whose calls `calls` sees.
pub fn counted_sqs(sdk: &aws_config::SdkConfig, calls: &impl CallObserver) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build(),
    )
}

/// The roots of trust for the SDK clients: Amazon Trust Services', which issue the certificate of
/// every AWS endpoint these functions call (DynamoDB, SQS, API Gateway, and S3 since June 2022).
/// Compiled in, so init reads no certificate files: the system store (hundreds of certificates,
/// read and parsed at client construction) was most of a cold start (issue 7). It also means a
/// certificate from any other CA is refused for AWS traffic.
const AMAZON_TRUST_SERVICES: &str = include_str!("../certs/amazon-trust-services.pem");

/// Loads the shared SDK configuration once, at init. Region, credentials and the endpoint come
/// from the environment, as on AWS; no profile files are read (a Lambda function has none).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};

    let no_profiles = EnvConfigFiles::builder()
        .with_contents(EnvConfigFileKind::Config, "")
        .with_contents(EnvConfigFileKind::Credentials, "")
        .build();
    let loader =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).profile_files(no_profiles);
    match https_client() {
        Ok(http) => loader.http_client(http),
        Err(error) => {
            tracing::warn!(%error, "using the system's root certificates instead");
            loader
        }
    }
    .load()
    .await
}

fn https_client() -> Result<
    aws_smithy_runtime_api::client::http::SharedHttpClient,
    aws_smithy_http_client::HttpClientError,
> {
    use aws_smithy_http_client::tls::{
        Provider, TlsContext, TrustStore, rustls_provider::CryptoMode,
    };

    let roots = TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES.as_bytes());
    let tls = TlsContext::builder().with_trust_store(roots).build()?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(tls)
        .build_https())
}

#[cfg(test)]
mod tests {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    use super::AMAZON_TRUST_SERVICES;

    /// The SDK parses the bundle when it first connects and panics on a bad certificate: check
    /// here that every one parses as a trust anchor, and that they are the five expected.
    #[test]
    fn amazon_trust_services_roots_parse_as_trust_anchors() {
        let certs = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default();
        assert_eq!(certs.len(), 5);
        let mut store = rustls::RootCertStore::empty();
        let (added, refused) = store.add_parsable_certificates(certs);
        assert_eq!((added, refused), (5, 0));
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
        ] {
            assert!(
                AMAZON_TRUST_SERVICES.contains(&format!("# {name}\n")),
                "{name}"
            );
        }
        assert!(super::https_client().is_ok());
    }
}
