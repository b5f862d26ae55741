//! An issuer for tests: an RS256 key pair, tokens it signs, and its keys as a [`KeySource`].
//! Behind the `testing` feature, for the handler tests of functions that verify tokens.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::token::RsaKey;
use crate::{FetchError, KeySet, KeySource};

/// A fresh 2048-bit RSA key pair.
///
/// # Panics
/// When the platform cannot generate one (tests only).
#[allow(clippy::expect_used)]
pub fn key() -> KeyPair {
    KeyPair::generate(KeySize::Rsa2048).expect("an RSA key pair")
}

/// The key pair's public half as the issuer's JWKS names it.
pub fn keyset(kp: &KeyPair, kid: &str) -> KeySet {
    let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
    let jwk = json!({
        "kty": "RSA", "use": "sig", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    });
    RsaKey::from_jwk(&jwk).into_iter().collect()
}

/// A compact JWS of `header` and `claims`, signed RS256 with `kp`.
///
/// # Panics
/// When signing fails (tests only).
#[allow(clippy::expect_used)]
pub fn sign(kp: &KeyPair, header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; kp.public_modulus_len()];
    kp.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("an RS256 signature");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// An issuer with one key (`kid` "test"): signs tokens and publishes its key.
#[derive(Debug)]
pub struct TestIssuer {
    key: KeyPair,
}

impl Default for TestIssuer {
    fn default() -> Self {
        Self { key: key() }
    }
}

impl TestIssuer {
    pub const KID: &'static str = "test";

    /// `claims` signed with the issuer's key.
    pub fn token(&self, claims: Value) -> String {
        sign(
            &self.key,
            json!({"alg": "RS256", "typ": "JWT", "kid": Self::KID}),
            claims,
        )
    }
}

impl KeySource for TestIssuer {
    async fn keys(&self) -> Result<KeySet, FetchError> {
        Ok(keyset(&self.key, Self::KID))
    }
}
