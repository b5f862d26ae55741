//! The caller, as the API Gateway JWT authorizer vouched for them, and the ids that tie a
//! request's logs and events together.

use std::collections::HashMap;

use domain::{Actor, CorrelationId, DisplayName, EventContext, Role, UserId};
use lambda_http::http::{Extensions, HeaderMap};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

use crate::problem::Problem;

/// Claims that carry a display name, best first.
const NAME_CLAIMS: [&str; 3] = ["name", "preferred_username", "email"];

/// Where the caller's role comes from: one claim of the token, holding group names.
///
/// By default Cognito's `cognito:groups`, which only an administrator of the user pool can
/// change. A claim the user can write (a Cognito custom attribute such as `custom:role` is
/// writable by the user in a default app client) must never be used: anyone could make
/// themselves admin. Other issuers name their own claim (`ROLE_CLAIM`), which must be just as
/// out of the user's reach. The claim may hold one group or several (a JSON list in a token;
/// API Gateway's JWT authorizer passes a list as `[a b]`); several give the highest role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSource {
    pub claim: String,
    pub admin_group: String,
    pub editor_group: String,
    pub viewer_group: String,
}

impl Default for RoleSource {
    fn default() -> Self {
        Self {
            claim: "cognito:groups".to_owned(),
            admin_group: "admin".to_owned(),
            editor_group: "editor".to_owned(),
            viewer_group: "viewer".to_owned(),
        }
    }
}

impl RoleSource {
    /// From `ROLE_CLAIM`, `ADMIN_GROUP`, `EDITOR_GROUP`, `VIEWER_GROUP`; each unset or empty
    /// one keeps its default.
    pub fn from_env() -> Self {
        let d = Self::default();
        let var = |name: &str, default: String| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
        };
        Self {
            claim: var("ROLE_CLAIM", d.claim),
            admin_group: var("ADMIN_GROUP", d.admin_group),
            editor_group: var("EDITOR_GROUP", d.editor_group),
            viewer_group: var("VIEWER_GROUP", d.viewer_group),
        }
    }

    /// The function's role source, read from its environment once.
    pub fn configured() -> &'static Self {
        static SOURCE: std::sync::OnceLock<RoleSource> = std::sync::OnceLock::new();
        SOURCE.get_or_init(Self::from_env)
    }

    /// The highest role the claim's groups give; a viewer when none is ours.
    pub fn role(&self, claims: &HashMap<String, String>) -> Role {
        let Some(value) = claims.get(&self.claim) else {
            return Role::Viewer;
        };
        group_names(value)
            .iter()
            .filter_map(|g| {
                if *g == self.admin_group {
                    Some(Role::Admin)
                } else if *g == self.editor_group {
                    Some(Role::Editor)
                } else if *g == self.viewer_group {
                    Some(Role::Viewer)
                } else {
                    None
                }
            })
            .max()
            .unwrap_or(Role::Viewer)
    }
}

/// The group names in a claim's value as the function sees it: `["admin","editor"]` (a JSON
/// list), `[admin editor]` (API Gateway's rendering of a list, which separates by spaces) or
/// one name. A name is matched whole: nothing else splits it (group names may hold commas).
fn group_names(value: &str) -> Vec<String> {
    let value = value.trim();
    if let Ok(list) = serde_json::from_str::<Vec<String>>(value) {
        return list;
    }
    match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(inner) => inner.split_whitespace().map(str::to_owned).collect(),
        None => vec![value.to_owned()],
    }
}

/// The actor named by the authorizer's claims. No `sub` claim (a route left without an
/// authorizer, a forged context) is 401: every route that needs a user checks, not trusts. So
/// is a `sub` that names one of the system's own actors (`system:…`): what those did (files a
/// job made, jobs a rule started) must not be what a person can do or be taken for.
pub fn actor_from_claims(
    claims: &HashMap<String, String>,
    roles: &RoleSource,
) -> Result<Actor, Problem> {
    let sub = claims.get("sub").ok_or_else(Problem::unauthorized)?;
    let id = UserId::parse(sub)
        .ok()
        .filter(|id| !id.is_system())
        .ok_or_else(Problem::unauthorized)?;
    let name = NAME_CLAIMS
        .iter()
        .filter_map(|c| claims.get(*c))
        .map(|n| DisplayName::new(n))
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| DisplayName::new(sub));
    Ok(Actor {
        id,
        name,
        role: roles.role(claims),
    })
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
        Self::from_parts(req.extensions(), req.headers())
    }

    /// From what lambda_http put in the request's extensions (the API Gateway context and the
    /// invocation's) and the headers.
    pub fn from_parts(extensions: &Extensions, headers: &HeaderMap) -> Self {
        let (request_id, claims) = match extensions.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => (
                ctx.request_id.clone(),
                ctx.authorizer
                    .as_ref()
                    .and_then(|a| a.jwt.as_ref())
                    .map(|jwt| jwt.claims.clone()),
            ),
            _ => (None, None),
        };
        // The server's own id for the request, always: API Gateway's, else the invocation's.
        let request_id = request_id.or_else(|| {
            extensions
                .lambda_context_ref()
                .map(|c| c.request_id.clone())
                .filter(|r| !r.is_empty())
        });
        let correlation_id = headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
            .and_then(CorrelationId::from_client)
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
        self.claims.as_ref().map_or_else(
            || Err(Problem::unauthorized()),
            |c| actor_from_claims(c, RoleSource::configured()),
        )
    }

    /// The caller, who must be allowed to write (an editor or an admin); `refusal` says what
    /// a viewer may not do.
    pub fn writer(&self, refusal: &'static str) -> Result<Actor, Problem> {
        let actor = self.actor()?;
        if actor.role.can_write() {
            Ok(actor)
        } else {
            Err(Problem::forbidden(refusal))
        }
    }

    /// What the events this request causes carry: its caller, correlation and request ids.
    pub fn event_context(&self, actor: &Actor) -> EventContext {
        EventContext {
            actor: actor.clone(),
            correlation_id: self.correlation_id.clone(),
            request_id: self.request_id.clone(),
        }
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

    fn actor(pairs: &[(&str, &str)]) -> Actor {
        actor_from_claims(&claims(pairs), &RoleSource::default()).unwrap()
    }

    #[test]
    fn a_sub_naming_a_system_actor_is_refused() {
        let refused = actor_from_claims(
            &claims(&[("sub", "system:job-worker")]),
            &RoleSource::default(),
        );
        assert_eq!(refused.unwrap_err().status().as_u16(), 401);
        assert_eq!(actor(&[("sub", "systematic")]).id.as_str(), "systematic");
    }

    #[test]
    fn reads_sub_name_and_the_role_from_cognito_groups() {
        let a = actor(&[
            ("sub", "u1"),
            ("name", "Alice"),
            ("cognito:groups", "admin"),
        ]);
        assert_eq!(
            (a.id.as_str(), a.name.as_str(), a.role),
            ("u1", "Alice", Role::Admin)
        );
    }

    #[test]
    fn several_groups_give_the_highest_role_in_every_rendering() {
        for groups in [
            "[viewer editor]",
            "[editor viewer]",
            "[\"viewer\",\"editor\"]",
            "[other editor]",
        ] {
            assert_eq!(
                actor(&[("sub", "u"), ("cognito:groups", groups)]).role,
                Role::Editor,
                "{groups}"
            );
        }
        assert_eq!(
            actor(&[("sub", "u"), ("cognito:groups", "[admin viewer editor]")]).role,
            Role::Admin
        );
        assert_eq!(
            actor(&[("sub", "u"), ("cognito:groups", "[]")]).role,
            Role::Viewer
        );
    }

    #[test]
    fn a_user_writable_claim_gives_nothing() {
        // custom:role is writable by the user in a default Cognito app client; role is not
        // the configured claim either.
        let a = actor(&[("sub", "u"), ("custom:role", "admin"), ("role", "admin")]);
        assert_eq!(a.role, Role::Viewer);
        // Group names are matched whole, not as substrings, nor split on commas.
        for value in ["[administrators]", "guests,admin", "[\"guests,admin\"]"] {
            assert_eq!(
                actor(&[("sub", "u"), ("cognito:groups", value)]).role,
                Role::Viewer,
                "{value}"
            );
        }
    }

    #[test]
    fn the_claim_and_the_group_names_are_configurable() {
        let roles = RoleSource {
            claim: "groups".to_owned(),
            admin_group: "ops".to_owned(),
            editor_group: "producers".to_owned(),
            viewer_group: "guests".to_owned(),
        };
        let role = |v: &str| {
            actor_from_claims(&claims(&[("sub", "u"), ("groups", v)]), &roles)
                .unwrap()
                .role
        };
        assert_eq!(role("[guests producers]"), Role::Editor);
        assert_eq!(role("ops"), Role::Admin);
        assert_eq!(
            role("admin"),
            Role::Viewer,
            "the default names mean nothing here"
        );
    }

    #[test]
    fn missing_role_is_viewer_and_name_falls_back() {
        let a = actor(&[("sub", "u1")]);
        assert_eq!((a.name.as_str(), a.role), ("u1", Role::Viewer));
    }

    fn meta(correlation: Option<&str>) -> RequestMeta {
        let mut event: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/episodes-api/get-episode.json"
        ))
        .unwrap();
        if let Some(c) = correlation {
            event["headers"]["x-correlation-id"] = serde_json::json!(c);
        }
        RequestMeta::from_request(&lambda_http::request::from_str(&event.to_string()).unwrap())
    }

    #[test]
    fn a_client_correlation_id_is_kept_only_when_short_and_safe() {
        let server = meta(None);
        let request_id = server.request_id.clone().unwrap();
        assert_eq!(server.correlation_id.as_str(), request_id);
        assert_eq!(
            meta(Some("checkout-42.a_b")).correlation_id.as_str(),
            "checkout-42.a_b"
        );
        for unsafe_id in [
            "a b",
            "x\"y",
            "{\"json\":1}",
            "a/b",
            "a:b",
            &"x".repeat(65),
            "",
        ] {
            let m = meta(Some(unsafe_id));
            assert_eq!(m.correlation_id.as_str(), request_id, "{unsafe_id:?}");
            // The server's request id is there whatever the client sent.
            assert_eq!(m.request_id.as_deref(), Some(request_id.as_str()));
        }
    }

    #[test]
    fn no_subject_is_unauthorized() {
        assert_eq!(
            actor_from_claims(&claims(&[("name", "x")]), &RoleSource::default())
                .unwrap_err()
                .status,
            401
        );
    }
}
