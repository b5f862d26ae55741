//! The published contracts, served without a token: the OpenAPI document of the HTTP API and
//! the AsyncAPI document of the WebSocket API, generated once per instance from the code.

use std::sync::LazyLock;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use lambda_kit::router::{NoQuery, Query};

static OPENAPI: LazyLock<String> = LazyLock::new(|| api_contract::openapi().to_string());
static ASYNCAPI: LazyLock<String> = LazyLock::new(|| api_contract::asyncapi().to_string());

fn document(text: &str) -> Response<Body> {
    let mut response = Response::new(Body::Text(text.to_owned()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

pub async fn openapi(_: Query<NoQuery>) -> Response<Body> {
    document(&OPENAPI)
}

pub async fn asyncapi(_: Query<NoQuery>) -> Response<Body> {
    document(&ASYNCAPI)
}
