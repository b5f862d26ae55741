//! What each HTTP function's tests check against the contract, so the document cannot drift
//! from the code: every operation the function serves is routed, and its query parameters and
//! body fields are the ones the handler accepts.

use std::collections::BTreeSet;

use lambda_kit::fixture::{HttpFixture, json_body, respond};
use lambda_kit::router::{BodyRules, QueryRules};

use crate::{Function, operation, operations_of};

/// An id of the right shape for any `{id}`.
const SOME_ID: &str = "01a213ea-bcea-7231-95fb-08c52221b2de";

/// Every operation of `function` reaches a handler of `app`: neither the router's own 404
/// ("no such route") nor its 405. `fixture` is any of the function's request fixtures.
pub async fn assert_routed(app: axum::Router, function: Function, fixture: &str) {
    let ops = operations_of(function);
    assert!(
        !ops.is_empty(),
        "the contract lists no operation of {function:?}"
    );
    for op in ops {
        let path = op.path.replace("{id}", SOME_ID);
        let request = HttpFixture::parse(fixture).and_then(|f| {
            f.route(op.method, &path)
                .caller("contract", "admin")
                .request()
        });
        let Ok(request) = request else {
            panic!("the fixture is not a request");
        };
        let response = respond(app.clone(), request).await;
        let status = response.status().as_u16();
        let body = json_body(&response).unwrap_or_default();
        assert!(
            status != 405 && !(status == 404 && body["detail"] == "no such route"),
            "{} is in the contract but not routed by {}: {status} {body}",
            op.route_key(),
            function.name(),
        );
    }
}

/// The operation's query parameters are exactly the ones `R` accepts.
pub fn assert_query<R: QueryRules>(operation_id: &str) {
    let Some(op) = operation(operation_id) else {
        panic!("no operation {operation_id} in the contract");
    };
    let documented: BTreeSet<&str> = op.query_names().into_iter().collect();
    let accepted: BTreeSet<&str> = R::ALLOWED.iter().copied().collect();
    assert_eq!(documented, accepted, "{operation_id}: query parameters");
}

/// The operation's body is the one `B` takes: its fields, size limit and media types.
pub fn assert_body<B: BodyRules>(operation_id: &str) {
    let Some(op) = operation(operation_id) else {
        panic!("no operation {operation_id} in the contract");
    };
    let Some(body) = op.body else {
        panic!("{operation_id}: the contract gives no body");
    };
    let documented: BTreeSet<&str> = body.fields.iter().map(String::as_str).collect();
    let accepted: BTreeSet<&str> = B::FIELDS.iter().copied().collect();
    assert_eq!(documented, accepted, "{operation_id}: body fields");
    assert_eq!(body.max_bytes, B::MAX_BYTES, "{operation_id}: body limit");
    assert_eq!(
        body.media_types,
        B::MEDIA_TYPES,
        "{operation_id}: media types"
    );
}
