//! The committed OpenAPI document is the one the code generates, and it is well-formed.
//!
//! Regenerate with: `cargo run -q -p chat-api-bin -- openapi > openapi/chat-api.json`

use serde_json::Value;

const COMMITTED: &str = include_str!("../../../openapi/chat-api.json");

#[test]
fn committed_spec_matches_the_code() {
    let generated = chat_api::openapi_json();
    assert!(
        generated == COMMITTED,
        "openapi/chat-api.json is out of date: run `cargo run -q -p chat-api-bin -- openapi > openapi/chat-api.json`"
    );
}

fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(s) = v.as_str()
                {
                    out.push(s);
                }
                collect_refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn spec_is_openapi_3_with_resolvable_refs_and_named_operations() {
    let spec: Value = serde_json::from_str(COMMITTED).expect("valid JSON");
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let mut refs = Vec::new();
    collect_refs(&spec, &mut refs);
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema ref");
        assert!(
            spec["components"]["schemas"][name].is_object(),
            "dangling $ref {r}"
        );
    }
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            if path.starts_with("/api/chat") || path == "/api/users/me" {
                assert!(op["security"].is_array(), "{method} {path} is not secured");
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path} documents no 401"
                );
            }
        }
    }
    // The seed paths are listed as the seeds write them, with the trailing slash (both
    // forms are served).
    for p in [
        "/api/chat/conversations/",
        "/api/chat/conversations/{conversation_pk}/messages/",
        "/api/chat/channels/{id}/messages/",
        "/api/chat/channels/{id}/export/",
    ] {
        assert!(spec["paths"][p].is_object(), "missing {p}");
    }
}
