//! The caller, as the API Gateway JWT authorizer vouched for them, and the ids that tie a
//! request's logs and events together.

use std::collections::HashMap;

use domain::{Actor, CorrelationId, DisplayName, Role, UserId};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::problem::Problem;

/// Claims that carry the role: ours, or a Cognito custom attribute.
const ROLE_CLAIMS: [&str; 2] = ["role", "custom:role"];
/// Claims that carry a display name, best first.
const NAME_CLAIMS: [&str; 3] = ["name", "preferred_username", "email"];

/// The actor named by the authorizer's claims. No `sub` claim (a route left without an
/// authorizer, a forged context) is 401: every route that needs a user checks, not trusts.
pub fn actor_from_claims(claims: &HashMap<String, String>) -> Result<Actor, Problem> {
    let sub = claims.get("sub").ok_or_else(Problem::unauthorized)?;
    let id = UserId::parse(sub).map_err(|_| Problem::unauthorized())?;
    let name = NAME_CLAIMS
        .iter()
        .filter_map(|c| claims.get(*c))
        .map(|n| DisplayName::new(n))
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| DisplayName::new(sub));
    let role = Role::from_claim(
        ROLE_CLAIMS
            .iter()
            .find_map(|c| claims.get(*c))
            .map(String::as_str),
    );
    Ok(Actor { id, name, role })
}

/// Per-request facts every handler and log line wants.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub correlation_id: CorrelationId,
    claims: Option<HashMap<String, String>>,
}

impl RequestMeta {
    pub fn from_request(req: &Request) -> Self {
        let (request_id, claims) = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => (
                ctx.request_id.clone(),
                ctx.authorizer
                    .as_ref()
                    .and_then(|a| a.jwt.as_ref())
                    .map(|jwt| jwt.claims.clone()),
            ),
            _ => (None, None),
        };
        let correlation_id = req
            .headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| CorrelationId::parse(v).ok())
            .or_else(|| {
                request_id
                    .as_deref()
                    .and_then(|r| CorrelationId::parse(r).ok())
            })
            .unwrap_or_else(CorrelationId::generate);
        Self {
            request_id,
            correlation_id,
            claims,
        }
    }

    /// The authenticated caller, or 401.
    pub fn actor(&self) -> Result<Actor, Problem> {
        self.claims
            .as_ref()
            .map_or_else(|| Err(Problem::unauthorized()), actor_from_claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_sub_name_and_role() {
        let a = actor_from_claims(&claims(&[
            ("sub", "u1"),
            ("name", "Alice"),
            ("role", "admin"),
        ]))
        .unwrap();
        assert_eq!(
            (a.id.as_str(), a.name.as_str(), a.role),
            ("u1", "Alice", Role::Admin)
        );
    }

    #[test]
    fn missing_role_is_viewer_and_name_falls_back() {
        let a = actor_from_claims(&claims(&[("sub", "u1")])).unwrap();
        assert_eq!((a.name.as_str(), a.role), ("u1", Role::Viewer));
        let c = actor_from_claims(&claims(&[("sub", "u2"), ("custom:role", "editor")])).unwrap();
        assert_eq!(c.role, Role::Editor);
    }

    #[test]
    fn no_subject_is_unauthorized() {
        assert_eq!(
            actor_from_claims(&claims(&[("name", "x")]))
                .unwrap_err()
                .status,
            401
        );
    }
}
