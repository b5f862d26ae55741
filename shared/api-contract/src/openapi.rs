//! The OpenAPI 3.1 document of the HTTP API.

use serde_json::{Map, Value, json};

use crate::schemas::Registry;
use crate::{Access, In, Operation, Reply, operations};

const PROBLEM: &str = "application/problem+json";

/// The document, for the routes `operations::table` lists.
pub fn openapi() -> Value {
    let mut registry = Registry::draft_2020_12();
    let ops = operations::table(&mut registry);
    let problem = registry.problem();
    let gateway = registry.gateway_error();
    let mut paths: Map<String, Value> = Map::new();
    for op in &ops {
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method.to_ascii_lowercase()] = operation(op, &problem, &gateway);
    }
    json!({
        "openapi": "3.1.1",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Episodes API",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Episodes, their files and processing jobs, the activity log, notifications and presence.",
            "description": concat!(
                "Every request but the public ones carries a bearer JWT from the stack's issuer (Cognito on AWS, the loopback issuer locally). ",
                "The role comes from the token's groups claim (`cognito:groups` by default): `viewer` reads, `editor` also writes, `admin` also reads the whole audit log. ",
                "Errors are RFC 9457 problems (`application/problem+json`), except what API Gateway answers itself before a function runs (a missing or invalid token, no such route, throttling): `{\"message\": ...}`. ",
                "Live updates, presence and notifications come over the WebSocket API, described by `/asyncapi.json`."
            ),
            "license": { "name": "MIT", "identifier": "MIT" },
        },
        "servers": [{ "url": ".", "description": "The HTTP API's stage URL (`http_url` in `.local/stack.json` locally; the `HttpApiUrl` output on AWS)." }],
        "tags": [
            { "name": "episodes", "description": "Episodes and their status." },
            { "name": "files", "description": "An episode's files: uploads and downloads straight to and from S3 with presigned URLs." },
            { "name": "jobs", "description": "Processing jobs on files: checksum, media probe, thumbnail." },
            { "name": "activity", "description": "The activity log: who did what." },
            { "name": "notifications", "description": "Watching episodes, the notifications that follow, and their preferences." },
            { "name": "presence", "description": "Who is looking at an episode." },
            { "name": "analytics", "description": "Production analytics: episodes per status, time in status, publications, jobs." },
            { "name": "meta", "description": "Health and the contracts." },
        ],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An OIDC ID or access token for the API's audience; its groups claim gives the role (viewer, editor, admin).",
                },
            },
            "parameters": {
                "CorrelationId": {
                    "name": "X-Correlation-Id",
                    "in": "header",
                    "required": false,
                    "description": "Ties together the log lines and domain events of this request and what follows from it. Kept when it is 1–64 of `A-Z a-z 0-9 - _ .`; otherwise (never refused) the request's id is used.",
                    "schema": { "type": "string", "examples": ["checkout-7f3a"] },
                },
            },
            "headers": {
                "ETag": {
                    "description": "The episode's version as a strong entity tag (`\"3\"`): send it back in `If-Match`.",
                    "schema": { "type": "string", "pattern": "^\"[1-9][0-9]*\"$" },
                },
                "Location": {
                    "description": "The path of the resource created (or, for an idempotent replay, the one created before).",
                    "schema": { "type": "string" },
                },
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": { "type": "integer", "minimum": 0 },
                },
            },
            "schemas": registry.into_components(),
        },
    })
}

fn operation(op: &Operation, problem: &Value, gateway: &Value) -> Value {
    let mut out = json!({
        "operationId": op.id,
        "tags": [op.tag],
        "summary": op.summary,
        "description": format!("{}\n\n{}", op.description, who(op.access)),
        "x-function": op.function.name(),
        "x-roles": op.access.roles(),
        "responses": responses(op, problem, gateway),
    });
    if op.access == Access::Public {
        out["security"] = json!([]);
    }
    {
        let mut params: Vec<Value> = op
            .params
            .iter()
            .map(|p| {
                let mut v = json!({
                    "name": p.name,
                    "in": p.at.as_str(),
                    "required": p.required || p.at == In::Path,
                    "description": p.description,
                    "schema": p.schema,
                });
                if p.at == In::Query {
                    v["style"] = json!("form");
                    v["explode"] = json!(false);
                }
                v
            })
            .collect();
        // Read on every route (by the access log and into the events).
        params.push(json!({ "$ref": "#/components/parameters/CorrelationId" }));
        out["parameters"] = Value::Array(params);
    }
    if let Some(body) = &op.body {
        let content: Map<String, Value> = body
            .media_types
            .iter()
            .map(|m| {
                let mut media = json!({ "schema": body.schema });
                if let Some(example) = &body.example {
                    media["example"] = example.clone();
                }
                ((*m).to_owned(), media)
            })
            .collect();
        out["requestBody"] = json!({
            "required": body.required,
            "description": format!("A JSON object, at most {} bytes.", body.max_bytes),
            "content": content,
        });
    }
    out
}

fn who(access: Access) -> &'static str {
    match access {
        Access::Public => "No token needed.",
        Access::Anyone => "Any signed-in user (viewer, editor or admin).",
        Access::Editors => "Editors and admins; a viewer gets 403.",
        Access::Admins => "Admins only; anyone else gets 403.",
    }
}

fn responses(op: &Operation, problem: &Value, gateway: &Value) -> Value {
    let mut out = Map::new();
    for reply in &op.replies {
        out.insert(reply.status.to_string(), response(reply));
    }
    let both = |description: &str| {
        json!({
            "description": description,
            "content": {
                PROBLEM: { "schema": problem },
                "application/json": { "schema": gateway },
            },
        })
    };
    // What API Gateway may answer itself for any route, besides the function's own problems.
    if let Some(not_found) = out.get_mut("404") {
        not_found["content"]["application/json"] = json!({ "schema": gateway });
    } else if op.params.iter().any(|p| p.at == In::Path) {
        out.insert(
            "404".into(),
            json!({
                "description": "No route matches the path (API Gateway's answer).",
                "content": { "application/json": { "schema": gateway } },
            }),
        );
    }
    if op.access != Access::Public {
        out.insert(
            "401".into(),
            both("No valid bearer token: missing, expired, or not from the API's issuer and audience (API Gateway's answer), or without a usable subject."),
        );
    }
    out.insert(
        "429".into(),
        json!({
            "description": "Throttled (API Gateway's answer): slow down and retry.",
            "content": { "application/json": { "schema": gateway } },
        }),
    );
    let mut unavailable = both(
        "A store or queue the operation needs is unavailable, or the function failed: retry later. Nothing was half done.",
    );
    unavailable["headers"] =
        json!({ "Retry-After": { "$ref": "#/components/headers/Retry-After" } });
    out.insert("503".into(), unavailable);
    out.insert(
        "500".into(),
        both("The function failed (no details are given out)."),
    );
    Value::Object(out)
}

fn response(reply: &Reply) -> Value {
    let mut out = json!({ "description": reply.description });
    if let Some(schema) = &reply.schema {
        let media = if reply.status >= 400 {
            PROBLEM
        } else {
            "application/json"
        };
        let mut content = json!({ "schema": schema });
        if let Some(example) = &reply.example {
            content["example"] = example.clone();
        }
        out["content"] = json!({ media: content });
    }
    if !reply.headers.is_empty() {
        let headers: Map<String, Value> = reply
            .headers
            .iter()
            .map(|h| {
                (
                    (*h).to_owned(),
                    json!({ "$ref": format!("#/components/headers/{h}") }),
                )
            })
            .collect();
        out["headers"] = Value::Object(headers);
    }
    if !reply.links.is_empty() {
        let links: Map<String, Value> = reply
            .links
            .iter()
            .map(|l| {
                let params: Map<String, Value> = l
                    .parameters
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), json!(v)))
                    .collect();
                let mut link = json!({ "operationId": l.operation_id, "parameters": params });
                if let Some(body) = &l.request_body {
                    link["requestBody"] = body.clone();
                }
                (l.name.to_owned(), link)
            })
            .collect();
        out["links"] = Value::Object(links);
    }
    out
}
