//! Records of the data model and their enums.
//!
//! The wire names of every enum (`direct`, `owner`, `hidden`, …) are part of the public API
//! and of the event format; renaming a variant is a breaking change.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AttachmentId, ConversationId, MessageId, UserId};

/// Declares a string-valued enum with its wire names and, optionally, accepted aliases.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal $(| $alias:literal)*),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text", rename_all = "snake_case"))]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical wire name.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire $(| $alias)* => Ok($name::$variant),)+
                    other => Err(UnknownValue { kind: stringify!($name), value: other.to_owned() }),
                }
            }
        }
    };
}

/// A string that names no variant of an enum.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
}

wire_enum! {
    /// One-to-one or many-to-many.
    ConversationKind { Direct = "direct", Group = "group" }
}

wire_enum! {
    /// What a conversation belongs to (seed 002's `contexto_tipo`; the Portuguese names are
    /// accepted as aliases).
    ContextType {
        Private = "private" | "privado",
        Nucleus = "nucleus" | "núcleo" | "nucleo",
        Event = "event" | "evento",
        Organization = "organization" | "organização" | "organizacao",
    }
}

wire_enum! {
    /// A participant's role. Ordered by power: owner > admin > moderator > member.
    Role { Owner = "owner", Admin = "admin", Moderator = "moderator", Member = "member" }
}

wire_enum! {
    /// What a message carries (seed 002's `tipo`).
    MessageKind { Text = "text", File = "file", Image = "image", System = "system" }
}

wire_enum! {
    /// Moderation state of a message. Hidden messages are seen by moderators only.
    ModerationState { Visible = "visible", Flagged = "flagged", Hidden = "hidden" }
}

wire_enum! {
    /// Processing state of an uploaded file.
    AttachmentState { Pending = "pending", Ready = "ready", Rejected = "rejected" }
}

wire_enum! {
    /// Format of a history export.
    ExportFormat { Json = "json", Csv = "csv" }
}

wire_enum! {
    /// State of a history export.
    ExportState { Queued = "queued", Running = "running", Done = "done", Failed = "failed" }
}

wire_enum! {
    /// Review state of a flag.
    FlagState { Open = "open", Approved = "approved", Hidden = "hidden" }
}

wire_enum! {
    /// What a moderator decided about a flagged message.
    Decision { Approve = "approve", Hide = "hide" }
}

wire_enum! {
    /// Per-recipient state of a message (seed 000's `MessageStatus`), derived from watermarks.
    DeliveryStatus { Sent = "sent", Delivered = "delivered", Read = "read" }
}

impl Role {
    /// Higher is more powerful.
    pub fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Moderator => 1,
            Role::Member => 0,
        }
    }

    /// Admins and owners manage metadata and participants.
    pub fn can_manage(self) -> bool {
        self.rank() >= Role::Admin.rank()
    }

    /// Moderators (and above) delete others' messages and review flags.
    pub fn can_moderate(self) -> bool {
        self.rank() >= Role::Moderator.rank()
    }
}

impl ContextType {
    /// The Portuguese name used by seed 002 (`privado`, `núcleo`, `evento`, `organização`).
    pub fn portuguese(self) -> &'static str {
        match self {
            ContextType::Private => "privado",
            ContextType::Nucleus => "núcleo",
            ContextType::Event => "evento",
            ContextType::Organization => "organização",
        }
    }
}

impl DeliveryStatus {
    /// The status of message `seq` for a recipient with these watermarks.
    pub fn from_watermarks(seq: i64, delivered: i64, read: i64) -> Self {
        if read >= seq {
            DeliveryStatus::Read
        } else if delivered >= seq {
            DeliveryStatus::Delivered
        } else {
            DeliveryStatus::Sent
        }
    }
}

/// A registered user, as others see them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

/// A conversation (seed 002: `ChatChannel`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Conversation {
    pub id: ConversationId,
    pub kind: ConversationKind,
    pub name: Option<String>,
    pub context_type: ContextType,
    pub context_id: Option<String>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The seq of the newest message; 0 when there is none.
    pub last_seq: i64,
    pub last_message_at: Option<DateTime<Utc>>,
}

impl Conversation {
    pub fn is_group(&self) -> bool {
        self.kind == ConversationKind::Group
    }
}

/// A user's membership of a conversation, with the user's public fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Participant {
    pub conversation_id: ConversationId,
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    /// Every message with `seq <=` this has reached one of the user's devices.
    pub last_delivered_seq: i64,
    /// Every message with `seq <=` this has been read by the user.
    pub last_read_seq: i64,
    pub muted: bool,
}

/// A message. Deleted messages keep their row and seq (text emptied) so that the
/// sequence a client resumes by has no holes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: i64,
    /// `None` for system messages.
    pub sender_id: Option<UserId>,
    pub kind: MessageKind,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub reply_to: Option<MessageId>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub moderation: ModerationState,
    /// Participants mentioned with `@username` (filled by the store where it is needed).
    #[serde(default)]
    #[cfg_attr(feature = "sqlx", sqlx(skip))]
    pub mentions: Vec<UserId>,
    /// Files sent with the message (filled by the store where it is needed).
    #[serde(default)]
    #[cfg_attr(feature = "sqlx", sqlx(skip))]
    pub attachments: Vec<Attachment>,
}

/// An uploaded file. Its content type is sniffed from the bytes, never taken from the
/// client; it can be sent with a message once `ready`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Attachment {
    pub id: AttachmentId,
    pub conversation_id: ConversationId,
    pub message_id: Option<MessageId>,
    pub uploader_id: Option<UserId>,
    #[serde(skip)]
    pub object_key: String,
    pub file_name: String,
    /// Sniffed from the bytes once processed.
    pub content_type: Option<String>,
    pub declared_type: Option<String>,
    pub size_bytes: i64,
    pub sha256: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    #[serde(skip)]
    pub thumbnail_key: Option<String>,
    pub state: AttachmentState,
    /// Why it was rejected.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Attachment {
    pub fn has_thumbnail(&self) -> bool {
        self.thumbnail_key.is_some()
    }
}

/// Reactions of one emoji on a message, as one viewer sees them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ReactionSummary {
    pub message_id: MessageId,
    pub emoji: String,
    pub count: i64,
    pub reacted_by_me: bool,
}

/// A pinned message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Pin {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub pinned_by: Option<UserId>,
    pub pinned_at: DateTime<Utc>,
}

/// A participant's report of a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Flag {
    pub id: uuid::Uuid,
    pub message_id: MessageId,
    pub flagged_by: Option<UserId>,
    pub reason: String,
    pub state: FlagState,
    pub created_at: DateTime<Utc>,
}

/// A recorded moderation decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ModerationDecision {
    pub id: uuid::Uuid,
    pub message_id: MessageId,
    pub moderator_id: Option<UserId>,
    pub decision: Decision,
    pub reason: Option<String>,
    pub decided_at: DateTime<Utc>,
}

/// How many participants a conversation listing carries, and how many recipients a
/// message lists one by one: beyond that, counts (and the paged endpoints).
pub const PARTICIPANT_PREVIEW: usize = 10;

/// One row of a user's conversation list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConversationSummary {
    pub conversation: Conversation,
    /// The first [`PARTICIPANT_PREVIEW`] participants, by user id (all of a small
    /// conversation); the rest are paged by their own endpoint.
    pub participants: Vec<Participant>,
    pub participant_count: i64,
    pub last_message: Option<Message>,
    /// Messages from others past the caller's read watermark.
    pub unread_count: i64,
    /// Of those, the ones that mention the caller.
    pub unread_mentions: i64,
    pub my_role: Role,
    pub muted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portuguese_context_names_are_aliases() {
        assert_eq!(
            "privado".parse::<ContextType>().ok(),
            Some(ContextType::Private)
        );
        assert_eq!(
            "núcleo".parse::<ContextType>().ok(),
            Some(ContextType::Nucleus)
        );
        assert_eq!(
            "organização".parse::<ContextType>().ok(),
            Some(ContextType::Organization)
        );
        assert_eq!(ContextType::Event.as_str(), "event");
        assert!("planet".parse::<ContextType>().is_err());
    }

    #[test]
    fn status_follows_watermarks() {
        assert_eq!(
            DeliveryStatus::from_watermarks(5, 4, 3),
            DeliveryStatus::Sent
        );
        assert_eq!(
            DeliveryStatus::from_watermarks(5, 5, 3),
            DeliveryStatus::Delivered
        );
        assert_eq!(
            DeliveryStatus::from_watermarks(5, 9, 5),
            DeliveryStatus::Read
        );
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Owner.can_manage() && Role::Admin.can_manage());
        assert!(!Role::Moderator.can_manage() && Role::Moderator.can_moderate());
        assert!(!Role::Member.can_moderate());
    }
}

/// A history export (seed 002: `RelatorioChatExport`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct Export {
    pub id: uuid::Uuid,
    pub conversation_id: ConversationId,
    pub requested_by: Option<UserId>,
    pub format: ExportFormat,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub state: ExportState,
    pub progress: i64,
    pub total: Option<i64>,
    pub attempts: i32,
    #[serde(skip)]
    pub object_key: Option<String>,
    pub row_count: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One exported message, with seed 002's field names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ExportRow {
    pub id: MessageId,
    /// The sender's username (`system` for system messages).
    pub remetente: String,
    pub tipo: MessageKind,
    pub conteudo: String,
    pub timestamp: DateTime<Utc>,
    #[serde(skip)]
    pub seq: i64,
}
