//! Generated tokens for the one parser that reads a bearer token before any key does
//! (`parse_unverified`, used at `$connect`): it never panics, and it accepts only three
//! base64url parts whose header names RS256 and a key id.

// A test harness: a failed set-up step fails the test, as it would inside #[test].
#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_auth::parse_unverified;
use proptest::prelude::*;

fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,60}",
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
    ]
}

fn header() -> impl Strategy<Value = String> {
    let alg = prop::sample::select(vec!["RS256", "none", "HS256", "rs256", "ES256", ""]);
    let kid = prop::option::of("[a-z0-9]{0,12}");
    prop_oneof![
        (alg, kid).prop_map(|(alg, kid)| {
            let mut h = serde_json::json!({ "alg": alg, "typ": "JWT" });
            if let Some(k) = kid {
                h["kid"] = k.into();
            }
            URL_SAFE_NO_PAD.encode(h.to_string())
        }),
        part(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn only_rs256_tokens_with_a_key_id_get_past_the_shape_check(
        h in header(), p in part(), s in part(), extra in prop::option::of(part()),
    ) {
        let token = match &extra {
            Some(x) => format!("{h}.{p}.{s}.{x}"),
            None => format!("{h}.{p}.{s}"),
        };
        if let Ok(unverified) = parse_unverified(&token) {
            prop_assert!(extra.is_none() && !p.is_empty() && !s.is_empty());
            let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&h).unwrap()).unwrap();
            prop_assert_eq!(header["alg"].as_str(), Some("RS256"));
            prop_assert_eq!(header["kid"].as_str(), Some(unverified.kid.as_str()));
        }
    }

    #[test]
    fn any_string_is_refused_or_parsed_without_a_panic(token in any::<String>()) {
        let _ = parse_unverified(&token);
    }
}
