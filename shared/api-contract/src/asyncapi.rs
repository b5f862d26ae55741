//! The AsyncAPI 3.0 document of the WebSocket API: the connection, the messages a client sends
//! (API Gateway routes them on `action`), the frames the server sends (tagged by `type`, the
//! schemas derived from `domain::Frame`), and the domain events they carry, each with its data.

use domain::realtime::{HEARTBEAT_SECONDS, RESUME_MAX_EVENTS};
use domain::{EpisodeId, EventId, Frame};
use serde_json::{Map, Value, json};

use crate::schemas::{Registry, object};

/// A frame's `type`, its message name and what it is for (one per `Frame` variant: a test
/// holds the two lists together).
const FRAMES: &[(&str, &str, &str)] = &[
    (
        "subscribed",
        "subscribed",
        "The answer to `subscribe`: who is looking at the episode now, and how often to ping.",
    ),
    (
        "unsubscribed",
        "unsubscribed",
        "The answer to `unsubscribe`.",
    ),
    (
        "pong",
        "pong",
        "The answer to `ping` (send one every `heartbeat_seconds` to stay listed as present).",
    ),
    (
        "resumed",
        "resumed",
        "The answer to `resume`: the episode's events after `after`, in order; `more` says to ask again from the last one.",
    ),
    (
        "event",
        "event",
        "A domain event of an episode you subscribed to, in the order it happened.",
    ),
    (
        "event.ref",
        "eventRef",
        "An event too large for one frame: fetch it with `resume` (after the event before it) or from the episode's activity.",
    ),
    (
        "notification",
        "notification",
        "A notification for you, as `GET /me/notifications` lists it.",
    ),
    (
        "presence",
        "presence",
        "Who is looking at the episode after one presence round: the whole list, and who joined (their first connection to it) and left (their last went, and they did not come back within the grace period) since the last round. Joins and leaves within a window come as one frame; drop a frame whose `round` is not above the last you applied.",
    ),
    (
        "presence.occupancy",
        "presenceOccupancy",
        "Instead of `presence` when more people look at the episode than a frame lists: how many. Page through them with `GET /episodes/{id}/presence` (`href`).",
    ),
    (
        "editing",
        "editing",
        "The answer to `editing` (the field, held until `until`) and to `idle` (no field). The others see it in the next `presence` frame.",
    ),
    (
        "error",
        "error",
        "A message that could not be handled; `action` names it when known.",
    ),
];

pub fn asyncapi() -> Value {
    let mut r = Registry::draft_07();
    let frame = r.of::<Frame>();
    let episode_id = r.of::<EpisodeId>();
    let event_id = r.of::<EventId>();
    let typed_event = typed_event(&mut r);
    let edited_field = r.of::<domain::realtime::EditedField>();
    let variants = frame_variants(&mut r, &frame);

    let mut messages = Map::new();
    let client = [
        (
            "subscribe",
            "Follow an episode: its events, and who is looking at it. You count as present until you unsubscribe or disconnect.",
            object(
                vec![
                    ("action", json!({ "const": "subscribe" })),
                    ("episode_id", episode_id.clone()),
                ],
                &["action", "episode_id"],
            ),
            json!({ "action": "subscribe", "episode_id": "01a213ea-bcea-7231-95fb-08c52221b2de" }),
        ),
        (
            "unsubscribe",
            "Stop following an episode.",
            object(
                vec![
                    ("action", json!({ "const": "unsubscribe" })),
                    ("episode_id", episode_id.clone()),
                ],
                &["action", "episode_id"],
            ),
            json!({ "action": "unsubscribe", "episode_id": "01a213ea-bcea-7231-95fb-08c52221b2de" }),
        ),
        (
            "ping",
            "Keeps the connection and your presence alive; answered with `pong`.",
            object(vec![("action", json!({ "const": "ping" }))], &["action"]),
            json!({ "action": "ping" }),
        ),
        (
            "resume",
            "After a reconnect: the episode's events after the last one you saw, in order.",
            object(
                vec![
                    ("action", json!({ "const": "resume" })),
                    ("episode_id", episode_id.clone()),
                    ("after", event_id),
                ],
                &["action", "episode_id", "after"],
            ),
            json!({ "action": "resume", "episode_id": "01a213ea-bcea-7231-95fb-08c52221b2de", "after": "01a213ea-bcea-7231-95fb-08c52221b2df" }),
        ),
        (
            "editing",
            "You are editing this field of an episode you subscribed to. Send it again within 30 seconds while you still are: then the others see you stop (as they do on `idle`, or when this connection goes).",
            object(
                vec![
                    ("action", json!({ "const": "editing" })),
                    ("episode_id", episode_id.clone()),
                    ("field", edited_field),
                ],
                &["action", "episode_id", "field"],
            ),
            json!({ "action": "editing", "episode_id": "01a213ea-bcea-7231-95fb-08c52221b2de", "field": "title" }),
        ),
        (
            "idle",
            "You stopped editing the episode.",
            object(
                vec![
                    ("action", json!({ "const": "idle" })),
                    ("episode_id", episode_id.clone()),
                ],
                &["action", "episode_id"],
            ),
            json!({ "action": "idle", "episode_id": "01a213ea-bcea-7231-95fb-08c52221b2de" }),
        ),
    ];
    for (name, summary, payload, example) in client {
        let schema_name = format!("{}Message", capitalised(name));
        let payload = r.define(&schema_name, payload);
        messages.insert(
            name.to_owned(),
            json!({
                "name": name,
                "title": name,
                "summary": summary,
                "payload": payload,
                "examples": [{ "payload": example }],
            }),
        );
    }
    for (tag, name, summary) in FRAMES {
        let mut payload = variants.get(*tag).cloned().unwrap_or(Value::Bool(false));
        // The events a frame carries, with each type's data.
        if *tag == "event" {
            payload["properties"]["event"] = typed_event.clone();
        }
        if *tag == "resumed" {
            payload["properties"]["events"]["items"] = typed_event.clone();
        }
        let schema_name = format!("{}Frame", capitalised(name));
        let payload = r.define(&schema_name, payload);
        messages.insert(
            (*name).to_owned(),
            json!({ "name": name, "title": tag, "summary": summary, "payload": payload }),
        );
    }
    let server_frames: Vec<Value> = FRAMES
        .iter()
        .map(|(_, name, _)| {
            reference_to(&format!("#/components/schemas/{}Frame", capitalised(name)))
        })
        .collect();
    r.define(
        "ServerFrame",
        json!({ "description": "Any frame the server sends, by `type`.", "oneOf": server_frames }),
    );

    let channel_messages: Map<String, Value> = messages
        .keys()
        .map(|k| {
            (
                k.clone(),
                reference_to(&format!("#/components/messages/{k}")),
            )
        })
        .collect();
    let msg = |name: &str| reference_to(&format!("#/channels/episodes/messages/{name}"));
    let send = |name: &str, summary: &str, replies: &[&str]| {
        let mut op = json!({
            "action": "send",
            "channel": reference_to("#/channels/episodes"),
            "summary": summary,
            "messages": [msg(name)],
        });
        if !replies.is_empty() {
            op["reply"] = json!({
                "channel": reference_to("#/channels/episodes"),
                "messages": replies.iter().map(|m| msg(m)).collect::<Vec<_>>(),
            });
        }
        op
    };
    let receive = |name: &str, summary: &str| {
        json!({
            "action": "receive",
            "channel": reference_to("#/channels/episodes"),
            "summary": summary,
            "messages": [msg(name)],
        })
    };
    let mut operations = Map::new();
    operations.insert(
        "subscribe".into(),
        send("subscribe", "Follow an episode.", &["subscribed", "error"]),
    );
    operations.insert(
        "unsubscribe".into(),
        send(
            "unsubscribe",
            "Stop following an episode.",
            &["unsubscribed", "error"],
        ),
    );
    operations.insert(
        "ping".into(),
        send("ping", "Stay connected and present.", &["pong"]),
    );
    operations.insert(
        "resume".into(),
        send(
            "resume",
            "Catch up after a reconnect.",
            &["resumed", "error"],
        ),
    );
    operations.insert(
        "editing".into(),
        send(
            "editing",
            "Say what you are editing.",
            &["editing", "error"],
        ),
    );
    operations.insert(
        "idle".into(),
        send("idle", "Say you stopped editing.", &["editing", "error"]),
    );
    for (tag, name, summary) in FRAMES {
        if matches!(
            *tag,
            "subscribed" | "unsubscribed" | "pong" | "resumed" | "editing"
        ) {
            continue;
        }
        operations.insert(
            format!("receive{}", capitalised(name)),
            receive(name, summary),
        );
    }

    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Episodes live updates",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The WebSocket API: live domain events of the episodes you follow, your notifications, and who is looking at an episode. Send JSON messages with an `action`; the server sends JSON frames with a `type`. Ping every {HEARTBEAT_SECONDS} seconds. A `resume` answer carries at most {RESUME_MAX_EVENTS} events. A connection does not outlive its token: reconnect with a fresh one and `resume`. Since 0.2.0, presence comes in rounds (`presence`, `presence.occupancy`) in place of one `presence.joined` or `presence.left` per change, and `subscribed` carries `count` and `round`."
            ),
            "license": { "name": "MIT", "url": "https://opensource.org/license/mit" },
        },
        "defaultContentType": "application/json",
        "servers": {
            "aws": {
                "host": "{apiId}.execute-api.{region}.amazonaws.com",
                "pathname": "/{stage}",
                "protocol": "wss",
                "description": "The WebSocket API on AWS (the `WebSocketUrl` output).",
                "variables": {
                    "apiId": { "description": "The WebSocket API's id." },
                    "region": { "default": "eu-west-1" },
                    "stage": { "default": "live" },
                },
                "security": [
                    reference_to("#/components/securitySchemes/subprotocol"),
                    reference_to("#/components/securitySchemes/query"),
                ],
            },
            "local": {
                "host": "127.0.0.1:4566",
                "protocol": "ws",
                "description": "The local stack (`ws_url` in `.local/stack.json`). Locally the emulator does not echo the subprotocol, so browsers must use `?token=`.",
                "security": [
                    reference_to("#/components/securitySchemes/subprotocol"),
                    reference_to("#/components/securitySchemes/query"),
                ],
            },
        },
        "channels": {
            "episodes": {
                "address": "/",
                "title": "The connection",
                "description": "One connection per browser tab. The handshake carries the token; a missing, expired or forged one is refused with 401 before the connection opens.",
                "messages": channel_messages,
                "bindings": {
                    "ws": {
                        "bindingVersion": "0.1.0",
                        "method": "GET",
                        "headers": {
                            "type": "object",
                            "properties": {
                                "Sec-WebSocket-Protocol": {
                                    "type": "string",
                                    "description": "`episodes.v1, bearer.<token>`: the server answers `episodes.v1`, never the token.",
                                },
                            },
                        },
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": "The token, for clients that cannot offer subprotocols (it then appears in URLs: prefer the subprotocol).",
                                },
                            },
                        },
                    },
                },
            },
        },
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": r.into_components(),
            "securitySchemes": {
                "subprotocol": {
                    "type": "httpApiKey",
                    "name": "Sec-WebSocket-Protocol",
                    "in": "header",
                    "description": "Offer the subprotocols `episodes.v1` and `bearer.<token>` (a browser: `new WebSocket(url, [\"episodes.v1\", \"bearer.\" + token])`).",
                },
                "query": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "`?token=<token>`, where subprotocols cannot be used.",
                },
            },
        },
    })
}

fn reference_to(pointer: &str) -> Value {
    json!({ "$ref": pointer })
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The derived `Frame` schema's variants, by their `type`.
fn frame_variants(r: &mut Registry, frame: &Value) -> Map<String, Value> {
    let name = frame["$ref"]
        .as_str()
        .and_then(|p| p.rsplit('/').next())
        .unwrap_or("Frame")
        .to_owned();
    let Some(schema) = r.definition(&name) else {
        return Map::new();
    };
    schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let tag = v["properties"]["type"]["const"]
                .as_str()
                .or_else(|| v["properties"]["type"]["enum"][0].as_str())?;
            Some((tag.to_owned(), v.clone()))
        })
        .collect()
}

/// The domain event envelope with `data` per `type`.
fn typed_event(r: &mut Registry) -> Value {
    let envelope = r.event();
    let variants: Vec<Value> = r
        .event_data()
        .into_iter()
        .map(|(t, data)| {
            json!({
                "allOf": [envelope, {
                    "properties": { "type": { "const": t.as_str() }, "data": data },
                }],
            })
        })
        .collect();
    r.define(
        "Event",
        json!({
            "description": "A domain event: the envelope, and the data of its type.",
            "oneOf": variants,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::assert_refs_resolve;

    #[test]
    fn every_frame_variant_is_a_message_and_every_message_a_variant() {
        let mut r = Registry::draft_07();
        let frame = r.of::<Frame>();
        let variants: Vec<String> = frame_variants(&mut r, &frame).keys().cloned().collect();
        let mut listed: Vec<String> = FRAMES.iter().map(|(t, _, _)| (*t).to_owned()).collect();
        listed.sort();
        let mut variants = variants;
        variants.sort();
        assert_eq!(listed, variants);
    }

    #[test]
    fn every_reference_resolves_and_every_event_type_has_its_data() {
        let doc = asyncapi();
        assert_refs_resolve(&doc);
        let events = doc["components"]["schemas"]["Event"]["oneOf"]
            .as_array()
            .unwrap();
        assert_eq!(events.len(), domain::EventType::ALL.len());
    }
}
