//! The paging query (`limit`, `cursor`) and a cursor alone: refused or decoded, never a panic;
//! a cursor encoded from what decoded decodes the same.
#![no_main]

use std::collections::BTreeMap;

use lambda_kit::{cursor, http};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &str)| {
    let (limit, text, scope) = input;
    if let Ok(position) = cursor::decode(text, scope) {
        assert_eq!(
            cursor::decode(&cursor::encode(&position, scope), scope).ok(),
            Some(position)
        );
    }
    let params = BTreeMap::from([
        ("limit".to_owned(), limit.to_owned()),
        ("cursor".to_owned(), text.to_owned()),
    ]);
    let _ = http::paging(&params, scope);
});
