//! A bearer token's shape check, before any key is looked up (`$connect`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| {
    let _ = jwt_auth::parse_unverified(token);
});
