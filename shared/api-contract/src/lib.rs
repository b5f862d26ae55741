//! The published contracts of the stack, generated from the code so they cannot drift:
//! - [`openapi()`]: OpenAPI 3.1 for every HTTP route ([`operations()`] is the route table, in
//!   the template's `RouteKey` terms, each operation with the function that serves it);
//! - [`asyncapi()`]: AsyncAPI 3.0 for the WebSocket protocol.
//!
//! Schemas come from the domain's types (`schemars`): the validated values carry the rules
//! their parsers enforce (`domain::schema`), the wire types derive theirs. What keeps the rest
//! true: each HTTP function's tests check its operations against its router (every operation
//! is routed; query parameters and body fields are the ones the handler accepts), a template
//! test checks the operations against the template's routes, and schemathesis checks the
//! running stack against the document.

mod asyncapi;
mod bodies;
mod openapi;
mod operations;
mod schemas;
pub mod testing;

pub use asyncapi::asyncapi;
pub use openapi::openapi;
pub use operations::operations;

/// The function that serves an operation (its directory under `functions/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Analytics,
    Episodes,
    Feed,
    Files,
    Jobs,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Self::Analytics => "analytics-api",
            Self::Episodes => "episodes-api",
            Self::Feed => "feed-api",
            Self::Files => "files-api",
            Self::Jobs => "jobs-api",
        }
    }
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// No token (the route has no authorizer).
    Public,
    /// Any signed-in user: viewers, editors and admins.
    Anyone,
    /// Editors and admins; a viewer is refused with 403.
    Editors,
    /// Admins only; anyone else is refused with 403.
    Admins,
}

impl Access {
    fn roles(self) -> &'static [&'static str] {
        match self {
            Self::Public => &[],
            Self::Anyone => &["viewer", "editor", "admin"],
            Self::Editors => &["editor", "admin"],
            Self::Admins => &["admin"],
        }
    }
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
    Header,
}

impl In {
    fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
        }
    }
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    pub at: In,
    pub required: bool,
    pub description: &'static str,
    pub schema: serde_json::Value,
}

/// The request body an operation takes: a JSON object of these fields.
#[derive(Debug, Clone)]
pub struct Body {
    pub media_types: &'static [&'static str],
    pub max_bytes: usize,
    /// A `$ref` to the body's schema in the components.
    pub schema: serde_json::Value,
    /// The object's fields (its schema's properties), for the drift tests.
    pub fields: Vec<String>,
    pub required: bool,
    pub example: Option<serde_json::Value>,
}

/// A response an operation may give.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub description: &'static str,
    /// The body's schema, when there is one (`application/json`, or problem+json for errors).
    pub schema: Option<serde_json::Value>,
    pub headers: Vec<&'static str>,
    pub links: Vec<Link>,
    pub example: Option<serde_json::Value>,
}

/// A follow-up operation whose parameters come from this response (OpenAPI `links`).
#[derive(Debug, Clone)]
pub struct Link {
    pub name: &'static str,
    pub operation_id: &'static str,
    pub parameters: Vec<(&'static str, &'static str)>,
    pub request_body: Option<serde_json::Value>,
}

/// One route of the HTTP API.
#[derive(Debug, Clone)]
pub struct Operation {
    pub id: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub function: Function,
    pub access: Access,
    pub tag: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub params: Vec<Param>,
    pub body: Option<Body>,
    pub replies: Vec<Reply>,
}

impl Operation {
    /// `GET /episodes/{id}`, as the template's `RouteKey` names it.
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The names of its query parameters.
    pub fn query_names(&self) -> Vec<&'static str> {
        self.params
            .iter()
            .filter(|p| p.at == In::Query)
            .map(|p| p.name)
            .collect()
    }
}

/// The operations `function` serves.
pub fn operations_of(function: Function) -> Vec<Operation> {
    operations()
        .into_iter()
        .filter(|o| o.function == function)
        .collect()
}

/// The operation with this id.
pub fn operation(id: &str) -> Option<Operation> {
    operations().into_iter().find(|o| o.id == id)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every `$ref` in `doc` names something in it.
    pub fn assert_refs_resolve(doc: &Value) {
        fn walk(v: &Value, doc: &Value, seen: &mut usize) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let pointer = r
                            .strip_prefix('#')
                            .unwrap_or_else(|| panic!("external ref {r}"));
                        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
                        *seen += 1;
                    }
                    m.values().for_each(|v| walk(v, doc, seen));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, doc, seen)),
                _ => {}
            }
        }
        let mut seen = 0;
        walk(doc, doc, &mut seen);
        assert!(seen > 50, "only {seen} references");
    }

    #[test]
    fn the_openapi_document_hangs_together() {
        let doc = super::openapi();
        assert_refs_resolve(&doc);
        let ops = super::operations();
        let mut ids: Vec<&str> = ops.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ops.len(), "operation ids are unique");
        // Every link names an operation, and parameters that operation has.
        for op in &ops {
            for reply in &op.replies {
                for link in &reply.links {
                    let target = super::operation(link.operation_id)
                        .unwrap_or_else(|| panic!("{}: link to {}", op.id, link.operation_id));
                    for (name, _) in &link.parameters {
                        let bare = name.rsplit('.').next().unwrap_or(name);
                        assert!(
                            target.params.iter().any(|p| p.name == bare),
                            "{} → {}: no parameter {name}",
                            op.id,
                            target.id
                        );
                    }
                }
            }
        }
    }
}
