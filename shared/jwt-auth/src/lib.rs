//! RS256 JWT verification against an OIDC issuer, with the rules API Gateway's JWT authorizer
//! applies (issuer, audience, expiry, not-before, a key from the issuer's JWKS). The HTTP API
//! lets the authorizer do this; a WebSocket `$connect` cannot have a JWT authorizer, so the
//! function verifies the token itself with this crate.
//!
//! Keys are fetched lazily (discovery document, then JWKS) on the first verification and kept
//! for [`KEYS_MAX_AGE`]; then fetched again, and the new set replaces the old, so a key the
//! issuer withdrew stops working. A token naming a key id not seen yet (key rotation) fetches
//! again too, at most once per [`REFETCH_AFTER`], so forged key ids cannot hammer the issuer.
//! While the issuer cannot be reached, fetches back off exponentially (up to
//! [`MAX_BACKOFF`]) and the keys already held keep working, for at most [`KEYS_MAX_STALE`]
//! since they were read; with none held, verification fails as unavailable (500), never as
//! the caller's fault.
//! Keys are only read over https (plain http to loopback only), from a discovery document that
//! names this issuer, and each key is used only with the algorithm its JWK allows (RS256).

mod fetch;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod token;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

pub use fetch::{FetchError, Fetcher, check_url};
pub use token::{Claims, TokenError, Verified, parse_unverified, verify_with};

/// How long a set of keys is trusted not to have gained a new key id.
pub const REFETCH_AFTER: Duration = Duration::from_secs(300);
/// How long a set of keys is used before it is read again (withdrawn keys stop working).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(900);
/// The longest held keys keep working while the issuer cannot be reached (since the last read).
pub const KEYS_MAX_STALE: Duration = Duration::from_secs(6 * 3600);
/// The first wait after a failed fetch; it doubles with each failure, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Where an issuer's keys come from: its JWKS over the network, or a fake in tests.
pub trait KeySource {
    fn keys(&self) -> impl Future<Output = Result<KeySet, FetchError>> + Send;
}

/// What a token must say about where it came from.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: i64,
}

/// An issuer's public keys by key id.
pub type KeySet = HashMap<String, token::RsaKey>;

#[derive(Debug, Default)]
struct Cache {
    keys: KeySet,
    fetched_at: Option<Instant>,
    /// Fetches that failed in a row, and when the next may be tried.
    failures: u32,
    retry_at: Option<Instant>,
}

impl Cache {
    fn due(&self, kid: &str, now: Instant) -> bool {
        if self.retry_at.is_some_and(|at| now < at) {
            return false; // backing off
        }
        match self.fetched_at {
            None => true,
            Some(at) => {
                let age = now.saturating_duration_since(at);
                age >= KEYS_MAX_AGE || (!self.keys.contains_key(kid) && age >= REFETCH_AFTER)
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

/// Verifies tokens of one issuer and audience.
#[derive(Debug)]
pub struct Verifier<S = fetch::Fetcher> {
    expect: Expectations,
    source: S,
    cache: Mutex<Cache>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is not acceptable: the caller is refused (401/403).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The issuer's keys could not be read: not the caller's fault (500).
    #[error("the issuer's keys are unavailable: {0}")]
    Keys(#[from] FetchError),
}

impl Verifier {
    /// A verifier of `expect.issuer`'s tokens; refused unless the issuer is https (or loopback).
    pub fn new(expect: Expectations) -> Result<Self, FetchError> {
        Ok(Self::with_source(
            fetch::Fetcher::new(&expect.issuer)?,
            expect,
        ))
    }
}

impl<S: KeySource> Verifier<S> {
    pub fn with_source(source: S, expect: Expectations) -> Self {
        Self {
            expect,
            source,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Where the keys come from.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The verified claims of `token` at `now` (Unix seconds), and its expiry.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Verified, VerifyError> {
        self.verify_at(token, now, Instant::now()).await
    }

    /// [`Verifier::verify`] with the cache's clock given (`at`), for tests.
    pub async fn verify_at(
        &self,
        token: &str,
        now: i64,
        at: Instant,
    ) -> Result<Verified, VerifyError> {
        let unverified = parse_unverified(token)?;
        let mut cache = self.cache.lock().await;
        if cache.due(&unverified.kid, at) {
            match self.source.keys().await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(at);
                    cache.failures = 0;
                    cache.retry_at = None;
                }
                Err(e) => {
                    cache.failures = cache.failures.saturating_add(1);
                    let wait = backoff(cache.failures);
                    cache.retry_at = Some(at + wait);
                    tracing::warn!(error = %e, failures = cache.failures, retry_in_s = wait.as_secs(), "issuer keys not fetched");
                    // Held keys stand in while the issuer is down, but not for ever: a key it
                    // withdrew must not live on through a long outage.
                    let too_old = cache
                        .fetched_at
                        .is_none_or(|t| at.saturating_duration_since(t) >= KEYS_MAX_STALE);
                    if too_old {
                        cache.keys.clear();
                    }
                    if !cache.keys.contains_key(&unverified.kid) {
                        return Err(VerifyError::Keys(e));
                    }
                }
            }
        } else if cache.keys.is_empty() && cache.retry_at.is_some() {
            // Backing off with nothing held (an issuer that answered with no usable key is
            // not an outage: its tokens are refused as signed by an unknown key).
            return Err(VerifyError::Keys(FetchError::BackingOff));
        }
        Ok(verify_with(&unverified, &cache.keys, &self.expect, now)?)
    }
}

#[cfg(test)]
mod tests;
