//! The event catalogue: one event for every state change (spec section 6).
//!
//! Events are what the bus carries and what WebSocket clients receive. The JSON form is
//! `{"type": "message.created", "conversation_id": …, "seq": …, "actor_id": …, "at": …,
//! "data": {…}}`; `type` names are stable wire names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AttachmentId, ConversationId, MessageId, UserId};
use crate::model::{Attachment, Conversation, Export, Message, Participant, Role};

/// What happened, with its data. Adjacently tagged: `{"type": …, "data": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum EventPayload {
    #[serde(rename = "message.created")]
    MessageCreated { message: Message },
    #[serde(rename = "message.edited")]
    MessageEdited { message: Message },
    #[serde(rename = "message.deleted")]
    MessageDeleted { message_id: MessageId, seq: i64 },
    #[serde(rename = "reaction.added")]
    ReactionAdded {
        message_id: MessageId,
        seq: i64,
        user_id: UserId,
        emoji: String,
    },
    #[serde(rename = "reaction.removed")]
    ReactionRemoved {
        message_id: MessageId,
        seq: i64,
        user_id: UserId,
        emoji: String,
    },
    #[serde(rename = "message.pinned")]
    MessagePinned {
        message_id: MessageId,
        seq: i64,
        pinned_by: UserId,
    },
    #[serde(rename = "message.unpinned")]
    MessageUnpinned {
        message_id: MessageId,
        seq: i64,
        unpinned_by: UserId,
    },
    /// A participant reported the message (who and why are for moderators only).
    #[serde(rename = "message.flagged")]
    MessageFlagged { message_id: MessageId, seq: i64 },
    #[serde(rename = "message.approved")]
    MessageApproved {
        message_id: MessageId,
        seq: i64,
        moderator_id: UserId,
    },
    /// Hidden by a moderator: clients of non-moderators remove it.
    #[serde(rename = "message.hidden")]
    MessageHidden {
        message_id: MessageId,
        seq: i64,
        moderator_id: UserId,
    },
    /// An upload was processed and can be sent.
    #[serde(rename = "attachment.ready")]
    AttachmentReady { attachment: Attachment },
    /// An upload was refused (disallowed type, unreadable); its bytes are gone.
    #[serde(rename = "attachment.rejected")]
    AttachmentRejected {
        attachment_id: AttachmentId,
        uploader_id: Option<UserId>,
        reason: String,
    },
    /// An export finished (or failed); `requested_by` is told.
    #[serde(rename = "export.finished")]
    ExportFinished { export: Export },
    #[serde(rename = "participant.joined")]
    ParticipantJoined { participant: Participant },
    #[serde(rename = "participant.left")]
    ParticipantLeft {
        user_id: UserId,
        removed_by: Option<UserId>,
    },
    #[serde(rename = "participant.role_changed")]
    ParticipantRoleChanged { user_id: UserId, role: Role },
    #[serde(rename = "receipt.delivered")]
    DeliveredUpTo { user_id: UserId, seq: i64 },
    #[serde(rename = "receipt.read")]
    ReadUpTo { user_id: UserId, seq: i64 },
    #[serde(rename = "conversation.created")]
    ConversationCreated {
        conversation: Conversation,
        participants: Vec<UserId>,
    },
    #[serde(rename = "conversation.updated")]
    ConversationUpdated { conversation: Conversation },
    #[serde(rename = "conversation.deleted")]
    ConversationDeleted {},
    #[serde(rename = "typing")]
    Typing { user_id: UserId, typing: bool },
    #[serde(rename = "presence")]
    Presence { user_id: UserId, online: bool },
}

impl EventPayload {
    /// The stable wire name (`message.created`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            EventPayload::MessageCreated { .. } => "message.created",
            EventPayload::MessageEdited { .. } => "message.edited",
            EventPayload::MessageDeleted { .. } => "message.deleted",
            EventPayload::ReactionAdded { .. } => "reaction.added",
            EventPayload::ReactionRemoved { .. } => "reaction.removed",
            EventPayload::MessagePinned { .. } => "message.pinned",
            EventPayload::MessageUnpinned { .. } => "message.unpinned",
            EventPayload::MessageFlagged { .. } => "message.flagged",
            EventPayload::MessageApproved { .. } => "message.approved",
            EventPayload::MessageHidden { .. } => "message.hidden",
            EventPayload::AttachmentReady { .. } => "attachment.ready",
            EventPayload::AttachmentRejected { .. } => "attachment.rejected",
            EventPayload::ExportFinished { .. } => "export.finished",
            EventPayload::ParticipantJoined { .. } => "participant.joined",
            EventPayload::ParticipantLeft { .. } => "participant.left",
            EventPayload::ParticipantRoleChanged { .. } => "participant.role_changed",
            EventPayload::DeliveredUpTo { .. } => "receipt.delivered",
            EventPayload::ReadUpTo { .. } => "receipt.read",
            EventPayload::ConversationCreated { .. } => "conversation.created",
            EventPayload::ConversationUpdated { .. } => "conversation.updated",
            EventPayload::ConversationDeleted {} => "conversation.deleted",
            EventPayload::Typing { .. } => "typing",
            EventPayload::Presence { .. } => "presence",
        }
    }

    /// The message seq this event is about, for events about one message or a watermark.
    fn related_seq(&self) -> Option<i64> {
        match self {
            EventPayload::MessageCreated { message } | EventPayload::MessageEdited { message } => {
                Some(message.seq)
            }
            EventPayload::MessageDeleted { seq, .. }
            | EventPayload::ReactionAdded { seq, .. }
            | EventPayload::ReactionRemoved { seq, .. }
            | EventPayload::MessagePinned { seq, .. }
            | EventPayload::MessageUnpinned { seq, .. }
            | EventPayload::MessageFlagged { seq, .. }
            | EventPayload::MessageApproved { seq, .. }
            | EventPayload::MessageHidden { seq, .. }
            | EventPayload::DeliveredUpTo { seq, .. }
            | EventPayload::ReadUpTo { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// One state change of one conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    pub conversation_id: ConversationId,
    /// The seq this change relates to (the message's seq, or the watermark), if any.
    pub seq: Option<i64>,
    /// Who caused it; `None` for the system.
    pub actor_id: Option<UserId>,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub payload: EventPayload,
}

impl Event {
    pub fn new(
        conversation_id: ConversationId,
        actor_id: Option<UserId>,
        payload: EventPayload,
    ) -> Self {
        Self {
            conversation_id,
            seq: payload.related_seq(),
            actor_id,
            at: Utc::now(),
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_type_and_data() {
        let user = UserId::new();
        let event = Event::new(
            ConversationId::new(),
            Some(user),
            EventPayload::ReadUpTo {
                user_id: user,
                seq: 7,
            },
        );
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], "receipt.read");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["data"]["seq"], 7);
        assert_eq!(event.payload.type_name(), "receipt.read");
        let back: Event = serde_json::from_value(json).expect("parses");
        assert_eq!(back, event);
    }
}
