//! The key cache's rules, against a key source whose answers the test sets, on a clock the
//! test moves.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aws_lc_rs::rsa::KeyPair;
use serde_json::json;

use super::*;
use crate::testing::{key, keyset, sign};

const NOW: i64 = 1_800_000_000;

/// Answers with whatever the test last set; counts the fetches.
#[derive(Default)]
struct Issuer {
    keys: Mutex<Option<KeySet>>,
    fetches: AtomicUsize,
}

impl Issuer {
    fn publish(&self, keys: Option<KeySet>) {
        *self.keys.lock().unwrap() = keys;
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl KeySource for &Issuer {
    async fn keys(&self) -> Result<KeySet, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.keys.lock().unwrap().clone().ok_or(FetchError::Failed {
            url: "http://127.0.0.1/jwks".into(),
            reason: "connection refused".into(),
        })
    }
}

fn verifier(issuer: &Issuer) -> Verifier<&Issuer> {
    Verifier::with_source(
        issuer,
        Expectations {
            issuer: "http://issuer".into(),
            audience: "episodes-api".into(),
            leeway_seconds: 0,
        },
    )
}

/// A clock the test moves.
struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Self(Instant::now())
    }
    fn advance(&mut self, by: Duration) {
        self.0 += by;
    }
}

fn token(kp: &KeyPair, kid: &str) -> String {
    sign(
        kp,
        json!({"alg": "RS256", "kid": kid}),
        json!({"iss": "http://issuer", "aud": "episodes-api", "sub": "alice", "exp": NOW + 60}),
    )
}

#[tokio::test]
async fn keys_are_kept_then_read_again_and_a_withdrawn_key_stops_working() {
    let (k1, k2) = (key(), key());
    let issuer = Issuer::default();
    issuer.publish(Some(keyset(&k1, "k1")));
    let v = verifier(&issuer);
    let mut clock = Clock::new();
    let verified = v.verify_at(&token(&k1, "k1"), NOW, clock.0).await.unwrap();
    assert_eq!(verified.expires_at, NOW + 60);
    v.verify_at(&token(&k1, "k1"), NOW, clock.0).await.unwrap();
    assert_eq!(issuer.fetches(), 1, "kept, not fetched per token");

    // The issuer rotates: k1 withdrawn, k2 published. Until the set is read again, k1 works.
    issuer.publish(Some(keyset(&k2, "k2")));
    clock.advance(KEYS_MAX_AGE - Duration::from_secs(1));
    v.verify_at(&token(&k1, "k1"), NOW, clock.0).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(matches!(
        v.verify_at(&token(&k1, "k1"), NOW, clock.0).await,
        Err(VerifyError::Token(TokenError::UnknownKey))
    ));
    v.verify_at(&token(&k2, "k2"), NOW, clock.0).await.unwrap();
    assert_eq!(issuer.fetches(), 2);
}

#[tokio::test]
async fn unknown_key_ids_fetch_again_at_most_once_per_period() {
    let (k1, k2) = (key(), key());
    let issuer = Issuer::default();
    issuer.publish(Some(keyset(&k1, "k1")));
    let v = verifier(&issuer);
    let mut clock = Clock::new();
    v.verify_at(&token(&k1, "k1"), NOW, clock.0).await.unwrap();
    for _ in 0..5 {
        assert!(
            v.verify_at(&token(&k2, "forged"), NOW, clock.0)
                .await
                .is_err()
        );
    }
    assert_eq!(
        issuer.fetches(),
        1,
        "forged key ids do not hammer the issuer"
    );
    issuer.publish(Some(keyset(&k2, "k2")));
    clock.advance(REFETCH_AFTER);
    v.verify_at(&token(&k2, "k2"), NOW, clock.0).await.unwrap();
    assert_eq!(
        issuer.fetches(),
        2,
        "a new key id is learnt after the period"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_asked_less_and_less_while_held_keys_keep_working() {
    let k1 = key();
    let issuer = Issuer::default();
    let v = verifier(&issuer);
    let mut clock = Clock::new();
    // Down from the start: no keys to fall back on, so unavailable (not the caller's fault).
    assert!(matches!(
        v.verify_at(&token(&k1, "k1"), NOW, clock.0).await,
        Err(VerifyError::Keys(FetchError::Failed { .. }))
    ));
    assert!(matches!(
        v.verify_at(&token(&k1, "k1"), NOW, clock.0).await,
        Err(VerifyError::Keys(FetchError::BackingOff))
    ));
    assert_eq!(issuer.fetches(), 1, "not asked again while backing off");
    clock.advance(FIRST_BACKOFF);
    issuer.publish(Some(keyset(&k1, "k1")));
    v.verify_at(&token(&k1, "k1"), NOW, clock.0).await.unwrap();
    assert_eq!(issuer.fetches(), 2);

    // Down again when the keys are due: the held keys keep working, fetches back off
    // 2 s, 4 s, 8 s, ...
    issuer.publish(None);
    clock.advance(KEYS_MAX_AGE);
    let mut asked_at = Vec::new();
    for second in 0..40 {
        let before = issuer.fetches();
        v.verify_at(&token(&k1, "k1"), NOW, clock.0).await.unwrap();
        if issuer.fetches() > before {
            asked_at.push(second);
        }
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(asked_at, [0, 2, 6, 14, 30]);
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    assert_eq!(backoff(1), FIRST_BACKOFF);
    assert_eq!(backoff(2), FIRST_BACKOFF * 2);
    assert_eq!(backoff(3), FIRST_BACKOFF * 4);
    assert_eq!(backoff(30), MAX_BACKOFF);
    assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
}

#[test]
fn a_plain_http_issuer_is_refused_unless_on_loopback() {
    let expect = |issuer: &str| Expectations {
        issuer: issuer.into(),
        audience: "a".into(),
        leeway_seconds: 0,
    };
    assert!(Verifier::new(expect("http://issuer.example.com")).is_err());
    assert!(Verifier::new(expect("http://127.0.0.1:9000")).is_ok());
    assert!(Verifier::new(expect("https://issuer.example.com")).is_ok());
}

#[tokio::test]
async fn held_keys_stop_working_after_a_long_outage() {
    let k1 = key();
    let issuer = Issuer::default();
    issuer.publish(Some(keyset(&k1, "k1")));
    let v = verifier(&issuer);
    let mut clock = Clock::new();
    v.verify_at(&token(&k1, "k1"), NOW, clock.0).await.unwrap();
    issuer.publish(None);
    clock.advance(KEYS_MAX_STALE - Duration::from_secs(1));
    v.verify_at(&token(&k1, "k1"), NOW, clock.0).await.unwrap();
    clock.advance(MAX_BACKOFF);
    assert!(matches!(
        v.verify_at(&token(&k1, "k1"), NOW, clock.0).await,
        Err(VerifyError::Keys(_))
    ));
}

#[tokio::test]
async fn an_issuer_without_usable_keys_refuses_tokens_as_unknown_keys() {
    let k1 = key();
    let issuer = Issuer::default();
    issuer.publish(Some(KeySet::new()));
    let v = verifier(&issuer);
    let clock = Clock::new();
    for _ in 0..2 {
        assert!(matches!(
            v.verify_at(&token(&k1, "k1"), NOW, clock.0).await,
            Err(VerifyError::Token(TokenError::UnknownKey))
        ));
    }
}
