//! A JSON response body written by serde straight into the response buffer. poem-openapi's
//! `Json<T>` first builds a `serde_json::Value` tree of the whole body (a map and a string
//! per field) and then writes it; the hot pages (history, the conversation list) skip
//! that. The schema in the OpenAPI document is still `T`'s, and a test
//! (`serialized_bodies_match_the_documented_ones`) holds the two encodings equal, value for
//! value (the keys come in field order rather than sorted).

use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;

/// A body documented as `T` and written with `T`'s `serde::Serialize`.
#[derive(Debug, Clone)]
pub struct Serialized<T>(pub T);

impl<T: Type + serde::Serialize + Send> Payload for Serialized<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> IntoResponse for Serialized<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .content_type("application/json; charset=utf-8")
                .body(body),
            Err(e) => {
                tracing::error!(error = %e, "response not serialisable");
                Response::builder()
                    .status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
                    .finish()
            }
        }
    }
}

impl<T: Type + serde::Serialize + Send> ApiResponse for Serialized<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: Self::CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// Timestamps as poem-openapi writes them (`to_rfc3339`: `…+00:00`), so both encodings of
/// a body agree to the byte.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};

    pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub mod option {
        use chrono::{DateTime, Utc};

        pub fn serialize<S: serde::Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&t.to_rfc3339()),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use poem_openapi::types::ToJSON;
    use uuid::Uuid;

    use crate::models::*;

    fn message() -> Message {
        let at = Utc
            .timestamp_opt(1_764_680_000, 123_456_789)
            .single()
            .expect("time");
        Message {
            id: Uuid::now_v7(),
            conversation_id: Uuid::now_v7(),
            seq: 42,
            sender: Some(Uuid::now_v7()),
            kind: MessageKind::Image,
            text: "olá \"mundo\" \u{1F600}\n".into(),
            client_msg_id: None,
            reply_to: Some(Uuid::now_v7()),
            created_at: at,
            edited_at: Some(at),
            deleted_at: None,
            moderation: ModerationState::Flagged,
            attachments: vec![Attachment {
                id: Uuid::now_v7(),
                conversation_id: Uuid::now_v7(),
                message_id: None,
                uploader_id: Some(Uuid::now_v7()),
                file_name: "photo.png".into(),
                content_type: Some("image/png".into()),
                declared_type: None,
                size: 1234,
                sha256: None,
                width: Some(640),
                height: None,
                state: AttachmentState::Ready,
                error: None,
                download_url: "/api/chat/attachments/x/download".into(),
                thumbnail_url: None,
                created_at: at,
            }],
            delivery: Delivery {
                state: DeliveryStatus::Delivered,
                recipients: 3,
                delivered: 3,
                read: 1,
            },
            statuses: vec![MessageStatus {
                user_id: Uuid::now_v7(),
                status: DeliveryStatus::Read,
            }],
            reactions: vec![Reaction {
                emoji: "👍".into(),
                count: 2,
                reacted_by_me: true,
            }],
            mentions: vec![Uuid::now_v7()],
        }
    }

    #[test]
    fn serialized_bodies_match_the_documented_ones() {
        let m = message();
        assert_eq!(
            serde_json::to_value(&m).expect("serde"),
            m.to_json().expect("poem")
        );
        let c = Conversation {
            id: Uuid::now_v7(),
            name: None,
            is_group: true,
            kind: ConversationKind::Group,
            participants: vec![Participant {
                user_id: Uuid::now_v7(),
                username: "ana".into(),
                display_name: "Ana".into(),
                role: Role::Moderator,
                joined_at: m.created_at,
                last_delivered_seq: 4,
                last_read_seq: 2,
                muted: false,
            }],
            participant_count: 1000,
            context_type: ContextType::Nucleus,
            context_id: Some("n-1".into()),
            created_by: Uuid::now_v7(),
            created_at: m.created_at,
            updated_at: m.created_at,
            last_seq: 42,
            last_message: Some(m),
            unread_count: 100,
            unread_mentions: 0,
            my_role: Role::Owner,
            muted: true,
        };
        assert_eq!(
            serde_json::to_value(&c).expect("serde"),
            c.to_json().expect("poem")
        );
    }
}
