//! The WebSocket protocol: every frame a client may send and every frame the gateway
//! sends back. These types are the protocol: the AsyncAPI document in
//! `openapi/chat-gateway.asyncapi.json` is generated from them.
//!
//! All frames are JSON text. Client frames carry a `type`; an optional `id` is echoed in
//! the answer (`ack`, `ok` or `error`) so a client can match answers to requests. Events
//! (section 6 of the spec) are sent as they are on the bus: `{"type": "message.created",
//! "conversation_id", "seq", "actor_id", "at", "data"}`.

use std::collections::BTreeMap;

use chat_domain::{ConversationId, Event, MessageId, UserId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request from the client.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Send a message. Acknowledged with `ack` only after it is committed.
    Send {
        id: Option<String>,
        /// Optional on `/ws/chat/{conversation_id}/` (defaults to that conversation).
        conversation_id: Option<ConversationId>,
        text: String,
        /// Idempotency key: a resend with the same key is acknowledged with the original
        /// message's id and seq and is not delivered twice.
        client_msg_id: Option<String>,
        reply_to: Option<MessageId>,
    },
    /// Edit one's own message.
    Edit {
        id: Option<String>,
        conversation_id: Option<ConversationId>,
        message_id: MessageId,
        text: String,
    },
    /// Delete a message (one's own, or any as a moderator).
    Delete {
        id: Option<String>,
        conversation_id: Option<ConversationId>,
        message_id: MessageId,
    },
    /// Add or remove a reaction.
    React {
        id: Option<String>,
        conversation_id: Option<ConversationId>,
        message_id: MessageId,
        emoji: String,
        /// `false` removes the reaction.
        #[serde(default = "yes")]
        add: bool,
    },
    /// Start or stop typing (ephemeral; not stored; not answered unless refused).
    Typing {
        id: Option<String>,
        conversation_id: Option<ConversationId>,
        typing: bool,
    },
    /// Everything up to `seq` was read (moves the read watermark).
    Read {
        id: Option<String>,
        conversation_id: Option<ConversationId>,
        seq: i64,
    },
    /// Everything up to `seq` reached this device (moves the delivered watermark).
    Delivered {
        id: Option<String>,
        conversation_id: Option<ConversationId>,
        seq: i64,
    },
    /// Resume: for each conversation, the last seq this client has. Every message after
    /// it is sent in order (from PostgreSQL when the streams no longer hold it), then
    /// `resumed`.
    Resume {
        id: Option<String>,
        positions: BTreeMap<ConversationId, i64>,
    },
    /// Answered with `pong`.
    Ping { id: Option<String> },
}

fn yes() -> bool {
    true
}

/// A frame from the gateway that is not a bus event.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every connection.
    Hello {
        connection_id: String,
        user_id: UserId,
        /// Which gateway process holds the connection.
        gateway_id: String,
        /// The gateway pings this often; a connection silent for three intervals is closed.
        heartbeat_ms: u64,
        /// The conversations this connection receives, with the seq live delivery starts
        /// after (or the position the client resumed from).
        conversations: Vec<Position>,
    },
    /// A `send` was committed.
    Ack {
        id: Option<String>,
        conversation_id: ConversationId,
        message_id: MessageId,
        seq: i64,
        client_msg_id: Option<String>,
        /// `false` when this acknowledges a resend of an already committed message.
        created: bool,
    },
    /// A request other than `send` succeeded.
    Ok {
        id: Option<String>,
    },
    /// A request failed; nothing was changed.
    Error {
        id: Option<String>,
        /// Stable code, see the AsyncAPI document.
        code: String,
        message: String,
        /// For `rate_limited`: milliseconds until the request would be accepted.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    Pong {
        id: Option<String>,
    },
    /// Everything after the resumed position, up to `seq`, has been sent; live events follow.
    Resumed {
        conversation_id: ConversationId,
        seq: i64,
    },
    /// The gateway is shutting down: reconnect (to any gateway) and resume.
    Reconnect {
        reason: String,
    },
}

/// A conversation and a seq in it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Position {
    pub conversation_id: ConversationId,
    pub seq: i64,
}

/// What the gateway sends: its own frames, and the events of the bus.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
#[expect(
    clippy::large_enum_variant,
    reason = "describes the wire for the AsyncAPI document; never built"
)]
pub enum ServerMessage {
    Frame(ServerFrame),
    Event(Event),
}

/// Error codes of `error` frames.
pub mod codes {
    /// The frame is not JSON, or not an object.
    pub const MALFORMED: &str = "malformed_frame";
    /// The `type` names no action.
    pub const UNKNOWN_ACTION: &str = "unknown_action";
    /// A field is missing or has the wrong type.
    pub const INVALID_FRAME: &str = "invalid_frame";
    /// The conversation does not exist or the user is not a participant.
    pub const NOT_FOUND: &str = "not_found";
    /// The frame names a conversation other than the one this socket is bound to.
    pub const WRONG_CONVERSATION: &str = "wrong_conversation";
    /// Too many requests: slow down (the request was not carried out).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Binary frames are not part of the protocol.
    pub const BINARY_UNSUPPORTED: &str = "binary_unsupported";
    /// The action cannot be done over the socket (e.g. a seed file message).
    pub const NOT_SUPPORTED: &str = "not_supported";
}

/// Close codes the gateway uses (besides the standard 1000, 1009 "too big" and 1011).
pub mod close {
    /// No valid credentials.
    pub const UNAUTHENTICATED: u16 = 4001;
    /// Not a participant of the conversation of `/ws/chat/{id}/`, or removed from it.
    pub const FORBIDDEN: u16 = 4003;
    /// No frame (not even a pong) for three heartbeat intervals.
    pub const IDLE_TIMEOUT: u16 = 4000;
    /// The client did not read fast enough; reconnect and resume from the last seq seen.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The gateway is draining (restart or scale-in); reconnect and resume.
    pub const GOING_AWAY: u16 = 1001;
}

/// Why a text frame could not be understood.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
    /// The request id, when it could be read.
    pub id: Option<String>,
}

/// Parses a client frame. Besides our typed frames, the frames of the seed documents are
/// understood as sends: seed 002's `{"tipo": …, "conteudo": …}` and seed 000's
/// `{"message": …}` / `{"text": …}` without a `type`.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|e| FrameError {
        code: codes::MALFORMED,
        message: format!("not JSON: {e}"),
        id: None,
    })?;
    let Value::Object(map) = &value else {
        return Err(FrameError {
            code: codes::MALFORMED,
            message: "a frame is a JSON object".into(),
            id: None,
        });
    };
    let id = map.get("id").and_then(Value::as_str).map(str::to_owned);
    match map.get("type") {
        Some(Value::String(kind)) => {
            const KNOWN: &[&str] = &[
                "send",
                "edit",
                "delete",
                "react",
                "typing",
                "read",
                "delivered",
                "resume",
                "ping",
            ];
            if !KNOWN.contains(&kind.as_str()) {
                return Err(FrameError {
                    code: codes::UNKNOWN_ACTION,
                    message: format!("unknown action `{kind}`"),
                    id,
                });
            }
            serde_json::from_value(value).map_err(|e| FrameError {
                code: codes::INVALID_FRAME,
                message: e.to_string(),
                id,
            })
        }
        Some(_) => Err(FrameError {
            code: codes::INVALID_FRAME,
            message: "`type` must be a string".into(),
            id,
        }),
        None => seed_send(map, id),
    }
}

/// Seed 002 (`tipo`/`conteudo`) and seed 000 (`message`/`text`) sends.
fn seed_send(
    map: &serde_json::Map<String, Value>,
    id: Option<String>,
) -> Result<ClientFrame, FrameError> {
    let text = ["conteudo", "message", "text"]
        .iter()
        .find_map(|k| map.get(*k));
    match text {
        Some(Value::String(text)) => {
            if let Some(tipo) = map.get("tipo") {
                let ok = matches!(
                    tipo.as_str(),
                    Some("text" | "texto" | "mensagem" | "message")
                );
                if !ok {
                    return Err(FrameError {
                        code: codes::NOT_SUPPORTED,
                        message: "only text messages can be sent over the socket".into(),
                        id,
                    });
                }
            }
            Ok(ClientFrame::Send {
                id,
                conversation_id: map
                    .get("conversation_id")
                    .and_then(|v| serde_json::from_value(v.clone()).ok()),
                text: text.clone(),
                client_msg_id: map
                    .get("client_msg_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                reply_to: None,
            })
        }
        Some(_) => Err(FrameError {
            code: codes::INVALID_FRAME,
            message: "the text must be a string".into(),
            id,
        }),
        None => Err(FrameError {
            code: codes::UNKNOWN_ACTION,
            message: "a frame needs a `type`".into(),
            id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_frames_parse() {
        let f = parse_client_frame(r#"{"type":"send","id":"r1","text":"hi","client_msg_id":"k1"}"#)
            .expect("parses");
        assert!(
            matches!(f, ClientFrame::Send { ref text, ref client_msg_id, .. } if text == "hi" && client_msg_id.as_deref() == Some("k1"))
        );
        let f = parse_client_frame(r#"{"type":"ping"}"#).expect("parses");
        assert_eq!(f, ClientFrame::Ping { id: None });
    }

    #[test]
    fn seed_frames_are_sends() {
        let f = parse_client_frame(r#"{"tipo":"texto","conteudo":"olá"}"#).expect("seed 002");
        assert!(matches!(f, ClientFrame::Send { ref text, .. } if text == "olá"));
        let f = parse_client_frame(r#"{"message":"hello"}"#).expect("seed 000");
        assert!(matches!(f, ClientFrame::Send { ref text, .. } if text == "hello"));
    }

    #[test]
    fn bad_frames_have_codes() {
        assert_eq!(
            parse_client_frame("{nope").map_err(|e| e.code),
            Err(codes::MALFORMED)
        );
        assert_eq!(
            parse_client_frame("[1]").map_err(|e| e.code),
            Err(codes::MALFORMED)
        );
        let e = parse_client_frame(r#"{"type":"fly","id":"x"}"#).expect_err("unknown");
        assert_eq!(
            (e.code, e.id.as_deref()),
            (codes::UNKNOWN_ACTION, Some("x"))
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"send"}"#).map_err(|e| e.code),
            Err(codes::INVALID_FRAME)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"read","seq":"x"}"#).map_err(|e| e.code),
            Err(codes::INVALID_FRAME)
        );
        assert_eq!(
            parse_client_frame(r#"{"hello":1}"#).map_err(|e| e.code),
            Err(codes::UNKNOWN_ACTION)
        );
    }
}
