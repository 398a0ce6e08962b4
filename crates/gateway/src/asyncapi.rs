//! The AsyncAPI 3 document of the gateway, generated from the protocol types.
//!
//! Committed as `openapi/chat-gateway.asyncapi.json` (regenerate with
//! `chat-gateway asyncapi > openapi/chat-gateway.asyncapi.json`); a test fails when it
//! drifts from the code.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::protocol::{ClientFrame, ServerMessage};

/// The AsyncAPI document as a JSON value.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft07();
    settings.definitions_path = "#/components/schemas/".into();
    let mut generator = settings.into_generator();
    let client = generator.subschema_for::<ClientFrame>();
    let server = generator.subschema_for::<ServerMessage>();
    let schemas = generator.take_definitions(true);
    let messages = json!({
        "clientFrame": {"$ref": "#/components/messages/ClientFrame"},
        "serverMessage": {"$ref": "#/components/messages/ServerMessage"},
    });
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Chat gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:8081", "protocol": "ws", "description": "First gateway of ./ops/run"},
            "local2": {"host": "127.0.0.1:8082", "protocol": "ws", "description": "Second gateway of ./ops/run"},
        },
        "channels": {
            "all": {
                "address": "/ws",
                "title": "All of the user's conversations on one socket",
                "messages": messages.clone(),
                "bindings": {"ws": {"query": {
                    "type": "object",
                    "properties": {
                        "token": {"type": "string", "description": "Access token (or use the Authorization header, a `bearer.<token>` subprotocol, or the chat_token cookie, accepted only from pages of an allowed origin, CHAT_ALLOWED_ORIGINS)"},
                        "since": {"type": "string", "description": "Resume positions: `<conversation_id>:<seq>,…`"},
                    },
                }}},
            },
            "conversation": {
                "address": "/ws/chat/{conversation_id}/",
                "title": "One conversation (seed 000)",
                "parameters": {"conversation_id": {"description": "The conversation's id; non-participants are refused before the upgrade (404)"}},
                "messages": messages,
                "bindings": {"ws": {"query": {
                    "type": "object",
                    "properties": {
                        "token": {"type": "string"},
                        "after": {"type": "integer", "minimum": 0, "description": "Resume after this seq"},
                    },
                }}},
            },
        },
        "operations": {
            "request": {
                "action": "receive",
                "title": "Client requests",
                "channel": {"$ref": "#/channels/all"},
                "messages": [{"$ref": "#/channels/all/messages/clientFrame"}],
            },
            "deliver": {
                "action": "send",
                "title": "Acknowledgements, errors and events",
                "channel": {"$ref": "#/channels/all"},
                "messages": [{"$ref": "#/channels/all/messages/serverMessage"}],
            },
            "requestOne": {
                "action": "receive",
                "channel": {"$ref": "#/channels/conversation"},
                "messages": [{"$ref": "#/channels/conversation/messages/clientFrame"}],
            },
            "deliverOne": {
                "action": "send",
                "channel": {"$ref": "#/channels/conversation"},
                "messages": [{"$ref": "#/channels/conversation/messages/serverMessage"}],
            },
        },
        "components": {
            "messages": {
                "ClientFrame": {"name": "ClientFrame", "title": "A client request", "payload": client},
                "ServerMessage": {"name": "ServerMessage", "title": "A gateway frame or an event", "payload": server},
            },
            "schemas": schemas,
        },
        "x-error-codes": {
            "malformed_frame": "The frame is not a JSON object",
            "unknown_action": "The `type` names no action",
            "invalid_frame": "A field is missing or has the wrong type",
            "wrong_conversation": "The frame names another conversation than the socket's",
            "rate_limited": "Too many requests; the request was not carried out",
            "binary_unsupported": "Binary frames are not part of the protocol",
            "not_supported": "The action cannot be done over the socket",
            "not_found": "Unknown conversation or message, or not a participant",
            "forbidden": "The role does not allow this",
            "validation_failed": "Invalid input (see the message)",
            "conflict codes": "client_msg_id_reused, message_deleted, …: as in the REST API",
            "unavailable": "A dependency is down; retry",
        },
        "x-close-codes": {
            "1001": "The gateway is draining: reconnect (to any gateway) and resume",
            "1009": "A frame exceeded the size limit",
            "1011": "Internal error",
            "4000": "Idle: no frame for three heartbeat intervals",
            "4001": "Unauthenticated",
            "4003": "No longer a participant (single-conversation socket)",
            "4008": "Slow consumer: reconnect and resume from your last seq",
        },
    })
}

const DESCRIPTION: &str = "JSON text frames. Client frames carry a `type` and an optional `id` that the \
answer (`ack`, `ok`, `error`) echoes. Events are sent as published: `{type, conversation_id, seq, \
actor_id, at, data}`. Every `message.created` is delivered exactly once per connection and in seq \
order; after a reconnect, send `resume` (or `?since=`) with the last seq you have per conversation to \
receive what you missed, from any gateway. Seed frames are accepted as sends: `{\"tipo\": \"texto\", \
\"conteudo\": …}` and `{\"message\": …}`.";

/// The document as committed: pretty JSON with a trailing newline.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}
