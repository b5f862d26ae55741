//! Small pieces of HTTP every API function needs: JSON responses and paging.

use lambda_http::http::{HeaderValue, StatusCode, header};
use std::collections::BTreeMap;

use domain::FieldError;
use lambda_http::{Body, Response};
use serde::Serialize;

use crate::problem::Problem;

/// What a route handler returns: its response, or the problem the router renders.
pub type Handled = Result<Response<Body>, Problem>;

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
        self.after_position(|position| match position {
            [one] => parse(one),
            _ => None,
        })
    }

    /// The cursor's position as `parse` reads its parts (None for anything else).
    pub fn after_position<T>(
        &self,
        parse: impl Fn(&[String]) -> Option<T>,
    ) -> Result<Option<T>, Problem> {
        self.after
            .as_ref()
            .map(|position| parse(position).ok_or(()))
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
