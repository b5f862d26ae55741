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
    #[error("the issuer could not be reached lately; not asking again yet")]
    BackingOff,
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

#[derive(Debug)]
pub struct Fetcher {
    issuer: String,
    discovery_url: String,
    client: tokio::sync::OnceCell<HttpsClient>,
}

/// Keys are only read over TLS: an attacker on the path of a plain-HTTP fetch could hand out
/// keys of their own and sign any token. Plain HTTP is allowed to loopback only (the local
/// issuer), where nothing is on the path.
pub fn check_url(url: &str) -> Result<(), FetchError> {
    let uri: hyper::Uri = url.parse().map_err(|_| failed(url, "not a URL"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(failed(url, "must be https (plain http only to loopback)")),
    }
}

impl Fetcher {
    /// A fetcher for `issuer`'s keys; refused unless the issuer's URL is https (or loopback).
    pub fn new(issuer: &str) -> Result<Self, FetchError> {
        check_url(issuer)?;
        let issuer = issuer.trim_end_matches('/').to_owned();
        Ok(Self {
            discovery_url: format!("{issuer}/.well-known/openid-configuration"),
            issuer,
            client: tokio::sync::OnceCell::new(),
        })
    }
}

impl crate::KeySource for Fetcher {
    /// The issuer's RSA signing keys. The discovery document must name this issuer (OIDC
    /// Discovery §4.3) and a JWKS URL that is https (or loopback) too.
    async fn keys(&self) -> Result<KeySet, FetchError> {
        let discovery = self.get_json(&self.discovery_url).await?;
        let named = discovery.get("issuer").and_then(Value::as_str);
        if named.map(|i| i.trim_end_matches('/')) != Some(self.issuer.as_str()) {
            return Err(failed(
                &self.discovery_url,
                "the discovery document names another issuer",
            ));
        }
        let jwks_url = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| failed(&self.discovery_url, "no jwks_uri"))?;
        check_url(jwks_url)?;
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
}

impl Fetcher {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_over_tls_or_from_loopback_only() {
        for ok in [
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc",
            "http://127.0.0.1:9000",
            "http://localhost:9000/issuer",
            "http://[::1]:9000",
            "http://127.0.0.2",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://issuer.example.com",
            "http://10.0.0.1",
            "http://127.0.0.1.example.com",
            "ftp://127.0.0.1",
            "https://",
            "not a url",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(Fetcher::new("http://issuer.example.com").is_err());
    }
}
