//! The committed AsyncAPI document is the one the code generates, and it is well-formed.
//!
//! Regenerate with: `cargo run -q -p chat-gateway-bin -- asyncapi > openapi/chat-gateway.asyncapi.json`

use serde_json::Value;

const COMMITTED: &str = include_str!("../../../openapi/chat-gateway.asyncapi.json");

#[test]
fn committed_asyncapi_matches_the_code() {
    assert!(
        chat_gateway::asyncapi::document_json() == COMMITTED,
        "openapi/chat-gateway.asyncapi.json is out of date: run \
         `cargo run -q -p chat-gateway-bin -- asyncapi > openapi/chat-gateway.asyncapi.json`"
    );
}

fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.extend(v.as_str());
                }
                refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Follows a local JSON pointer such as `#/components/schemas/Event`.
fn resolve<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    doc.pointer(pointer.strip_prefix('#')?)
}

#[test]
fn every_reference_resolves_and_every_frame_is_described() {
    let doc: Value = serde_json::from_str(COMMITTED).expect("JSON");
    assert_eq!(doc["asyncapi"], "3.0.0");
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        assert!(resolve(&doc, r).is_some(), "dangling $ref {r}");
    }
    let text = COMMITTED;
    for name in [
        "send",
        "edit",
        "delete",
        "react",
        "typing",
        "read",
        "delivered",
        "resume",
        "ping",
    ] {
        assert!(
            text.contains(&format!("\"const\": \"{name}\"")),
            "client frame {name} is not described"
        );
    }
    for event in [
        "message.created",
        "receipt.read",
        "participant.joined",
        "typing",
        "presence",
    ] {
        assert!(text.contains(event), "event {event} is not described");
    }
    for frame in [
        "hello",
        "ack",
        "ok",
        "error",
        "pong",
        "resumed",
        "reconnect",
    ] {
        assert!(
            text.contains(&format!("\"const\": \"{frame}\"")),
            "frame {frame} is not described"
        );
    }
}
