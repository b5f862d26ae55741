//! Checking one compact JWS: its header, its RS256 signature (`jsonwebtoken`, with its aws-lc-rs
//! backend), and the registered claims: pure functions, tested without a network.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::{Expectations, KeySet};

/// Longest token accepted before any decoding (Cognito's are about 1–2 KB).
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token is refused. The messages name the rule, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not RS256")]
    Algorithm,
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token was issued by another issuer")]
    Issuer,
    #[error("the token is meant for another audience")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// One RSA public key from a JWKS.
#[derive(Debug, Clone)]
pub struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl RsaKey {
    pub fn new(n: Vec<u8>, e: Vec<u8>) -> Self {
        Self { n, e }
    }

    /// A JWK (`kty` RSA, base64url `n` and `e`), or None for keys of other kinds, keys meant
    /// for encryption, and keys the issuer pinned to another algorithm (`alg`): a key is only
    /// ever used with the algorithm its JWK allows.
    pub fn from_jwk(jwk: &Value) -> Option<(String, Self)> {
        if jwk.get("kty")?.as_str()? != "RSA" {
            return None;
        }
        let other = |field: &str, wanted: &str| {
            jwk.get(field)
                .is_some_and(|v| v.as_str().is_none_or(|x| x != wanted))
        };
        if other("use", "sig") || other("alg", "RS256") {
            return None;
        }
        let kid = jwk.get("kid")?.as_str()?.to_owned();
        let n = URL_SAFE_NO_PAD.decode(jwk.get("n")?.as_str()?).ok()?;
        let e = URL_SAFE_NO_PAD.decode(jwk.get("e")?.as_str()?).ok()?;
        Some((kid, Self { n, e }))
    }
}

/// A token whose shape, algorithm and key id were read, its signature not checked yet.
#[derive(Debug)]
pub struct Unverified {
    pub kid: String,
    token: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// Splits and decodes a token; checks only its shape and algorithm.
pub fn parse_unverified(token: &str) -> Result<Unverified, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if p.is_empty() || s.is_empty() {
        return Err(TokenError::Malformed);
    }
    // The header is read here, not by the library, so that `none`, HS256 and the like are
    // refused as algorithms before any key is looked up.
    let header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|raw| serde_json::from_slice::<Header>(&raw).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != "RS256" {
        return Err(TokenError::Algorithm);
    }
    Ok(Unverified {
        kid: header.kid.ok_or(TokenError::UnknownKey)?,
        token: token.to_owned(),
    })
}

/// The signature (by `jsonwebtoken`, on aws-lc-rs), then the claims as a JSON object. The
/// registered claims are checked by [`verify_with`] against its `now`: the library reads the
/// system clock, and cannot take Cognito access tokens' `client_id` for an audience.
fn signed_claims(
    token: &Unverified,
    key: &RsaKey,
) -> Result<serde_json::Map<String, Value>, TokenError> {
    let mut only_the_signature = Validation::new(Algorithm::RS256);
    only_the_signature.validate_exp = false;
    only_the_signature.validate_nbf = false;
    only_the_signature.validate_aud = false;
    only_the_signature.required_spec_claims.clear();
    let decoded = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
        &token.token,
        &DecodingKey::from_rsa_raw_components(&key.n, &key.e),
        &only_the_signature,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) => TokenError::Signature,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => TokenError::Algorithm,
        _ => TokenError::Malformed,
    })?;
    Ok(decoded.claims)
}

/// The claims of a verified token that a caller reads as text (`sub`, `name`, groups, ...):
/// strings as they are, lists of strings as API Gateway's JWT authorizer passes them to a
/// function (`[a b]`), so one reader serves both.
pub type Claims = HashMap<String, String>;

/// A verified token: its claims, and the second it stops being good (`exp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub claims: Claims,
    pub expires_at: i64,
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().filter(|s| !s.contains(char::is_whitespace)))
            .collect::<Option<Vec<_>>>()
            .map(|list| format!("[{}]", list.join(" "))),
        _ => None,
    }
}

/// Checks the signature with `keys` and the registered claims against `expect` at `now`.
pub fn verify_with(
    token: &Unverified,
    keys: &KeySet,
    expect: &Expectations,
    now: i64,
) -> Result<Verified, TokenError> {
    let key = keys.get(&token.kid).ok_or(TokenError::UnknownKey)?;
    let claims = &signed_claims(token, key)?;
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer.as_str()) {
        return Err(TokenError::Issuer);
    }
    // `aud` (a string or a list), or Cognito access tokens' `client_id`, as API Gateway reads it.
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == expect.audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&expect.audience)),
        _ => claims.get("client_id").and_then(Value::as_str) == Some(expect.audience.as_str()),
    };
    if !audience_ok {
        return Err(TokenError::Audience);
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TokenError::Malformed)?;
    if now >= exp + expect.leeway_seconds {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_i64().ok_or(TokenError::Malformed)?;
        if now + expect.leeway_seconds < nbf {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(Verified {
        claims: claims
            .iter()
            .filter_map(|(k, v)| as_text(v).map(|s| (k.clone(), s)))
            .collect(),
        expires_at: exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{key, keyset, sign};
    use aws_lc_rs::rsa::KeyPair;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn expect() -> Expectations {
        Expectations {
            issuer: "http://issuer".into(),
            audience: "episodes-api".into(),
            leeway_seconds: 0,
        }
    }

    fn claims() -> Value {
        json!({"iss": "http://issuer", "aud": "episodes-api", "sub": "alice", "role": "editor",
               "name": "Alice", "exp": NOW + 60, "nbf": NOW - 5, "iat": NOW - 5})
    }

    fn check(
        kp: &KeyPair,
        keys: &KeySet,
        header: Value,
        claims: Value,
    ) -> Result<Claims, TokenError> {
        let token = sign(kp, header, claims);
        verify_with(&parse_unverified(&token)?, keys, &expect(), NOW).map(|v| v.claims)
    }

    fn rs256() -> Value {
        json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})
    }

    #[test]
    fn a_valid_token_gives_its_text_claims_and_its_expiry() {
        let kp = key();
        let mut c = claims();
        c["cognito:groups"] = json!(["viewer", "editor"]);
        c["odd"] = json!([1, 2]);
        let token = sign(&kp, rs256(), c);
        let got = verify_with(
            &parse_unverified(&token).unwrap(),
            &keyset(&kp, "k1"),
            &expect(),
            NOW,
        )
        .unwrap();
        assert_eq!(got.expires_at, NOW + 60);
        assert_eq!(got.claims["sub"], "alice");
        assert_eq!(got.claims["role"], "editor");
        assert_eq!(got.claims["cognito:groups"], "[viewer editor]");
        assert!(!got.claims.contains_key("exp"));
        assert!(!got.claims.contains_key("odd"), "only lists of strings");
    }

    #[test]
    fn keys_pinned_to_another_algorithm_or_use_are_not_taken() {
        let jwk = |extra: Value| {
            let mut k = json!({"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"});
            for (name, v) in extra.as_object().unwrap() {
                k[name] = v.clone();
            }
            RsaKey::from_jwk(&k).is_some()
        };
        assert!(jwk(json!({})));
        assert!(jwk(json!({"alg": "RS256", "use": "sig"})));
        assert!(!jwk(json!({"alg": "RS512"})));
        assert!(!jwk(json!({"alg": "HS256"})));
        assert!(!jwk(json!({"alg": 7})));
        assert!(!jwk(json!({"use": "enc"})));
        assert!(!jwk(json!({"kty": "EC"})));
    }

    #[test]
    fn every_broken_rule_is_refused_with_its_reason() {
        let kp = key();
        let keys = keyset(&kp, "k1");
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            c
        };
        let cases = [
            (with("iss", json!("http://evil")), TokenError::Issuer),
            (with("aud", json!("other")), TokenError::Audience),
            (with("aud", json!(["a", "b"])), TokenError::Audience),
            (with("exp", json!(NOW)), TokenError::Expired),
            (with("nbf", json!(NOW + 30)), TokenError::NotYetValid),
            (with("exp", json!("soon")), TokenError::Malformed),
        ];
        for (c, want) in cases {
            assert_eq!(check(&kp, &keys, rs256(), c).unwrap_err(), want);
        }
        assert!(
            check(
                &kp,
                &keys,
                rs256(),
                with("aud", json!(["x", "episodes-api"]))
            )
            .is_ok()
        );
    }

    #[test]
    fn forged_signatures_keys_and_algorithms_are_refused() {
        let kp = key();
        let other = key();
        let keys = keyset(&kp, "k1");
        // Signed by another key that claims our key id.
        assert_eq!(
            check(&other, &keys, rs256(), claims()).unwrap_err(),
            TokenError::Signature
        );
        // An unknown key id.
        let h = json!({"alg": "RS256", "kid": "k2"});
        assert_eq!(
            check(&kp, &keys, h, claims()).unwrap_err(),
            TokenError::UnknownKey
        );
        // alg none / HS256, whatever the signature.
        for alg in ["none", "HS256"] {
            let h = json!({"alg": alg, "kid": "k1"});
            assert_eq!(
                check(&kp, &keys, h, claims()).unwrap_err(),
                TokenError::Algorithm
            );
        }
        // Claims changed after signing.
        let token = sign(&kp, rs256(), claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with_role_admin().to_string());
        parts[1] = &forged;
        let forged = parts.join(".");
        let parsed = parse_unverified(&forged).unwrap();
        assert_eq!(
            verify_with(&parsed, &keys, &expect(), NOW).unwrap_err(),
            TokenError::Signature
        );
    }

    fn with_role_admin() -> Value {
        let mut c = claims();
        c["role"] = json!("admin");
        c
    }

    #[test]
    fn garbage_is_malformed() {
        for t in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            &"a".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert_eq!(
                parse_unverified(t).unwrap_err(),
                TokenError::Malformed,
                "{t:.20}"
            );
        }
    }
}
