//! Generated input for the parsers every HTTP function shares (proptest): request bodies, the
//! paging query (limit and cursor), the authorizer's claims. Parsing never panics; what parses
//! says what the input said; a cursor decodes to what was encoded, only in its own scope.

// A test harness: a failed set-up step fails the test, as it would inside #[test].
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};

use lambda_kit::RoleSource;
use lambda_kit::router::{BodyRules, JsonObject};
use lambda_kit::{actor_from_claims, cursor, http};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-_A-Za-z0-9=%+/.]{0,80}",
        "[\\[\\]{}\":,0-9a-z \\\\]{0,80}",
    ]
}

#[derive(Debug)]
struct Rules;

impl BodyRules for Rules {
    const MAX_BYTES: usize = 64 * 1024;
    const FIELDS: &'static [&'static str] = &["title", "season", "status"];
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_body_is_an_object_or_a_clear_400_or_422(bytes in prop_oneof![
        any::<Vec<u8>>(),
        hostile().prop_map(String::into_bytes),
        prop::collection::btree_map(
            prop_oneof![prop::sample::select(vec!["title", "season", "status"]).prop_map(str::to_owned), "[a-z]{0,8}"],
            "[a-z0-9]{0,8}",
            0..6,
        )
        .prop_map(|m| serde_json::to_vec(&m).unwrap()),
    ]) {
        match JsonObject::<Rules>::parse(&bytes) {
            Ok(body) => {
                let value: Value = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(Value::Object(body.fields.clone()), value);
                let unknown: Vec<&str> = body.fields.keys().map(String::as_str)
                    .filter(|k| !Rules::FIELDS.contains(k)).collect();
                let named: Vec<&str> = body.errors.fields().iter().map(|e| e.field.as_str()).collect();
                prop_assert_eq!(named, unknown, "each unknown field named, nothing else");
            }
            Err(p) => {
                prop_assert!(p.status == 400 || p.status == 422, "{}", p.status);
                prop_assert!(!p.errors.is_empty());
            }
        }
    }

    #[test]
    fn a_cursor_decodes_to_its_position_in_its_scope_only(
        after in prop::collection::vec(hostile(), 0..4),
        scope in hostile(),
        other in hostile(),
    ) {
        let c = cursor::encode(&after, &scope);
        prop_assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "URL-safe");
        prop_assert_eq!(cursor::decode(&c, &scope).unwrap(), after);
        if other != scope {
            prop_assert!(cursor::decode(&c, &other).is_err());
        }
    }

    #[test]
    fn a_forged_cursor_is_refused_not_a_panic(text in hostile(), scope in hostile()) {
        let _ = cursor::decode(&text, &scope);
    }

    #[test]
    fn paging_takes_any_query(
        limit in prop::option::of(prop_oneof![hostile(), (0u32..200).prop_map(|n| n.to_string())]),
        position in prop::option::of(prop::collection::vec("[a-z0-9-]{1,36}", 1..3)),
        forged in prop::option::of(hostile()),
        scope in hostile(),
        theirs in any::<bool>(),
    ) {
        let mut params = BTreeMap::new();
        if let Some(l) = &limit {
            params.insert("limit".to_owned(), l.clone());
        }
        // A cursor this list returned (for this scope or, `theirs`, another), or a forged one.
        let cursor_text = match (&position, &forged) {
            (Some(p), _) => Some(cursor::encode(p, if theirs { "another scope" } else { &scope })),
            (None, f) => f.clone(),
        };
        if let Some(c) = &cursor_text {
            params.insert("cursor".to_owned(), c.clone());
        }
        match http::paging(&params, &scope) {
            Ok(p) => {
                let n = p.limit.get();
                prop_assert!((1..=100).contains(&n));
                if let Some(l) = &limit {
                    prop_assert_eq!(l.parse::<u16>().ok(), Some(n));
                }
                prop_assert_eq!(p.after.is_some(), cursor_text.is_some());
                if position.is_some() {
                    prop_assert!(!theirs || scope == "another scope", "another query's cursor is refused");
                    prop_assert_eq!(p.after, position);
                }
            }
            Err(problem) => prop_assert_eq!(problem.status, 400),
        }
    }

    #[test]
    fn claims_name_an_actor_or_401(
        claims in prop::collection::hash_map(
            prop::sample::select(vec!["sub", "name", "cognito:username", "cognito:groups", "email", "x"]),
            hostile(), 0..6),
    ) {
        let claims: HashMap<String, String> = claims.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        match actor_from_claims(&claims, &RoleSource::default()) {
            Ok(actor) => prop_assert_eq!(Some(actor.id.as_str()), claims.get("sub").map(String::as_str)),
            Err(p) => prop_assert_eq!(p.status, 401),
        }
    }
}
