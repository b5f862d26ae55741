//! Small pieces of HTTP every API function needs: JSON responses, body limits, media types.

use lambda_http::http::{HeaderMap, HeaderValue, StatusCode, header};
use std::collections::BTreeMap;

use domain::FieldError;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

use crate::problem::Problem;

/// A JSON response with the given status.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Body>, Problem> {
    let text = serde_json::to_string(value).map_err(|_| Problem::internal())?;
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A response with no body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response
}

/// Sets a header whose value we produced ourselves (ids, versions); never fails a request.
pub fn set_header(response: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

/// The bytes of the request body.
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Checks the body's media type and size before anything reads it: 415 for another media type
/// (parameters such as `charset=utf-8` are fine), 413 over the limit.
pub fn check_body<'a>(
    req: &'a Request,
    accepted: &[&str],
    max_bytes: usize,
) -> Result<&'a [u8], Problem> {
    let bytes = body_bytes(req);
    if bytes.len() > max_bytes {
        return Err(Problem::payload_too_large(max_bytes));
    }
    if !media_type_is(req.headers(), accepted) {
        return Err(Problem::unsupported_media_type(
            accepted.first().copied().unwrap_or("application/json"),
        ));
    }
    Ok(bytes)
}

fn media_type_is(headers: &HeaderMap, accepted: &[&str]) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    accepted.iter().any(|a| *a == essence)
}

/// The query string as a map, refusing unknown and repeated parameters (400, each named).
pub fn query_params(req: &Request, allowed: &[&str]) -> Result<BTreeMap<String, String>, Problem> {
    let mut params = BTreeMap::new();
    let mut errors = Vec::new();
    if let Some(q) = req.query_string_parameters_ref() {
        for (key, value) in q.iter() {
            if !allowed.contains(&key) {
                errors.push(FieldError::new(key, "is not a known query parameter"));
            } else if params.insert(key.to_owned(), value.to_owned()).is_some() {
                errors.push(FieldError::new(key, "is given more than once"));
            }
        }
    }
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(Problem::bad_request(errors))
    }
}

/// The episode id in a route's path, or a 400 naming the `id` field: the one check every
/// function's episode routes share.
pub fn episode_id(raw: &str) -> Result<domain::EpisodeId, Problem> {
    domain::EpisodeId::parse(raw)
        .map_err(|_| Problem::bad_request(vec![FieldError::new("id", "is not an episode id")]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: Option<&str>, body: &str) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/episodes");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(Body::Text(body.to_owned())).unwrap()
    }

    #[test]
    fn media_types_and_limits() {
        let ok = request(Some("application/json; charset=utf-8"), "{}");
        assert!(check_body(&ok, &["application/json"], 10).is_ok());
        let wrong = request(Some("text/plain"), "{}");
        assert_eq!(
            check_body(&wrong, &["application/json"], 10)
                .unwrap_err()
                .status,
            415
        );
        let missing = request(None, "{}");
        assert_eq!(
            check_body(&missing, &["application/json"], 10)
                .unwrap_err()
                .status,
            415
        );
        let big = request(Some("application/json"), &"x".repeat(11));
        assert_eq!(
            check_body(&big, &["application/json"], 10)
                .unwrap_err()
                .status,
            413
        );
    }
}

/// A page asked for with `limit` and `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub limit: domain::store::PageSize,
    /// The cursor's position (its scope checked), when one was given.
    pub after: Option<Vec<String>>,
}

impl Paging {
    /// The cursor's position as one id (`parse` returns None for anything else).
    pub fn after_id<T>(&self, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, Problem> {
        self.after
            .as_ref()
            .map(|position| match position.as_slice() {
                [one] => parse(one).ok_or(()),
                _ => Err(()),
            })
            .transpose()
            .map_err(|()| {
                Problem::bad_request(vec![FieldError::new(
                    "cursor",
                    "is not a cursor this list returned",
                )])
            })
    }
}

/// `limit` (1–100, 20 when not given) and `cursor` (made for `scope`) from the query; both
/// problems at once.
pub fn paging(params: &BTreeMap<String, String>, scope: &str) -> Result<Paging, Problem> {
    let mut errors = Vec::new();
    let limit = match params
        .get("limit")
        .map(|l| domain::store::PageSize::parse(l))
    {
        None => domain::store::PageSize::DEFAULT,
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            errors.push(e);
            domain::store::PageSize::DEFAULT
        }
    };
    let after = match params
        .get("cursor")
        .map(|c| crate::cursor::decode(c, scope))
    {
        None => None,
        Some(Ok(position)) => Some(position),
        Some(Err(e)) => {
            errors.push(e);
            None
        }
    };
    if errors.is_empty() {
        Ok(Paging { limit, after })
    } else {
        Err(Problem::bad_request(errors))
    }
}
