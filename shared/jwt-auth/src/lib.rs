//! RS256 JWT verification against an OIDC issuer, with the rules API Gateway's JWT authorizer
//! applies (issuer, audience, expiry, not-before, a key from the issuer's JWKS). The HTTP API
//! lets the authorizer do this; a WebSocket `$connect` cannot have a JWT authorizer, so the
//! function verifies the token itself with this crate.
//!
//! Keys are fetched lazily (discovery document, then JWKS) on the first verification, kept for
//! the life of the process, and fetched again when a token names a key id not seen yet (key
//! rotation) — at most once per [`REFETCH_AFTER`], so forged key ids cannot hammer the issuer.

mod fetch;
mod token;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

pub use fetch::FetchError;
pub use token::{Claims, TokenError, parse_unverified, verify_with};

/// How long a set of keys is trusted not to have gained a new key id.
pub const REFETCH_AFTER: Duration = Duration::from_secs(300);

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
}

/// Verifies tokens of one issuer and audience.
#[derive(Debug)]
pub struct Verifier {
    expect: Expectations,
    fetcher: fetch::Fetcher,
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
    pub fn new(expect: Expectations) -> Self {
        Self {
            fetcher: fetch::Fetcher::new(&expect.issuer),
            expect,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The verified claims of `token` at `now` (Unix seconds).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, VerifyError> {
        let unverified = parse_unverified(token)?;
        let mut cache = self.cache.lock().await;
        let stale = cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= REFETCH_AFTER);
        if !cache.keys.contains_key(&unverified.kid) && stale {
            cache.keys = self.fetcher.keys().await?;
            cache.fetched_at = Some(Instant::now());
        }
        Ok(verify_with(&unverified, &cache.keys, &self.expect, now)?)
    }
}
