//! Reading an issuer's keys: its discovery document names the JWKS, the JWKS holds the keys.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::KeySet;
use crate::token::RsaKey;

/// Largest discovery document or JWKS read.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

#[derive(Debug)]
pub struct Fetcher {
    discovery_url: String,
    client: tokio::sync::OnceCell<HttpsClient>,
}

impl Fetcher {
    pub fn new(issuer: &str) -> Self {
        Self {
            discovery_url: format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ),
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// The issuer's RSA signing keys.
    pub async fn keys(&self) -> Result<KeySet, FetchError> {
        let discovery = self.get_json(&self.discovery_url).await?;
        let jwks_url = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| failed(&self.discovery_url, "no jwks_uri"))?;
        let jwks = self.get_json(jwks_url).await?;
        let keys: KeySet = jwks
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(RsaKey::from_jwk)
            .collect();
        tracing::info!(keys = keys.len(), "issuer keys fetched");
        Ok(keys)
    }

    async fn client(&self) -> Result<&HttpsClient, FetchError> {
        self.client
            .get_or_try_init(|| async {
                let provider = rustls::crypto::aws_lc_rs::default_provider();
                let https = HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(provider)
                    .map_err(|e| failed("native roots", &e.to_string()))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new()).build(https))
            })
            .await
    }

    async fn get_json(&self, url: &str) -> Result<Value, FetchError> {
        let uri: hyper::Uri = url.parse().map_err(|_| failed(url, "not a URL"))?;
        let client = self.client().await?;
        let response = tokio::time::timeout(TIMEOUT, client.get(uri))
            .await
            .map_err(|_| failed(url, "timed out"))?
            .map_err(|e| failed(url, &e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(url, &format!("status {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| failed(url, &e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| failed(url, &e.to_string()))
    }
}

fn failed(url: &str, reason: &str) -> FetchError {
    FetchError::Failed {
        url: url.to_owned(),
        reason: reason.to_owned(),
    }
}
