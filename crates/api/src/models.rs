//! The JSON shapes of the REST API, as documented in the OpenAPI spec.
//!
//! Field names follow seed 000 (`name`, `is_group`, `participants`, `text`, `sender`,
//! `attachments`, `statuses`) with ours beside them. Domain values are converted here, at
//! the edge; the domain crate knows nothing of this format.

use chat_domain as domain;
use chat_service::messages::RecipientStatus;
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use uuid::Uuid;

pub use crate::strict::Text;

macro_rules! api_enum {
    ($(#[$meta:meta])* $name:ident from $domain:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, serde::Serialize)]
        #[oai(rename_all = "snake_case")]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl From<domain::$domain> for $name {
            fn from(v: domain::$domain) -> Self {
                match v { $(domain::$domain::$variant => $name::$variant),+ }
            }
        }

        impl From<$name> for domain::$domain {
            fn from(v: $name) -> Self {
                match v { $($name::$variant => domain::$domain::$variant),+ }
            }
        }
    };
}

api_enum!(
    /// A participant's role: owner > admin > moderator > member.
    Role from Role { Owner, Admin, Moderator, Member }
);
api_enum!(
    /// `direct` (one-to-one) or `group`.
    ConversationKind from ConversationKind { Direct, Group }
);
api_enum!(
    /// What a conversation belongs to.
    ContextType from ContextType { Private, Nucleus, Event, Organization }
);
api_enum!(
    /// What a message carries.
    MessageKind from MessageKind { Text, File, Image, System }
);
api_enum!(
    /// Moderation state of a message.
    ModerationState from ModerationState { Visible, Flagged, Hidden }
);
api_enum!(
    /// A recipient's state of a message.
    DeliveryStatus from DeliveryStatus { Sent, Delivered, Read }
);

/// A user as others see them.
#[derive(Debug, Clone, Object)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

impl From<domain::User> for User {
    fn from(u: domain::User) -> Self {
        Self {
            id: u.id.as_uuid(),
            username: u.username,
            display_name: u.display_name,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct RegisterRequest {
    /// 3–32 characters of `a-z 0-9 _ . -` (folded to lowercase).
    pub username: Text,
    /// 8–128 characters.
    pub password: Text,
    /// Shown to others; defaults to the username.
    pub display_name: Option<Text>,
}

#[derive(Debug, Clone, Object)]
pub struct LoginRequest {
    pub username: Text,
    pub password: Text,
}

/// One of the caller's live sessions (a login on some device).
#[derive(Debug, Clone, Object)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// When its tokens were last refreshed (or, if never, when it was opened).
    pub last_used_at: DateTime<Utc>,
    /// When it ends unless refreshed before.
    pub expires_at: DateTime<Utc>,
    /// When it ends however often it is refreshed.
    pub absolute_expires_at: DateTime<Utc>,
    /// The `User-Agent` of the login, to tell devices apart.
    #[oai(skip_serializing_if_is_none)]
    pub user_agent: Option<String>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

#[derive(Debug, Clone, Object)]
pub struct ChangePasswordRequest {
    pub current_password: Text,
    /// 8–128 characters.
    pub new_password: Text,
}

/// A web session opened by `POST /api/auth/session`: the tokens are in `HttpOnly`
/// cookies, out of the page's reach.
#[derive(Debug, Clone, Object)]
pub struct Session {
    pub user: User,
    /// Seconds until the access cookie expires; refresh before then at
    /// `/api/auth/session/refresh`.
    pub expires_in: u64,
}

/// What `GET /api/auth/session` knows of the web client's session.
#[derive(Debug, Clone, Object)]
pub struct SessionState {
    /// The signed-in user; absent when the access cookie is missing, expired or revoked.
    pub user: Option<User>,
    /// A refresh cookie is present: `POST /api/auth/session/refresh` may restore the session.
    pub refreshable: bool,
}

#[derive(Debug, Clone, Object)]
pub struct RefreshRequest {
    pub refresh_token: Text,
}

/// Tokens issued at login and refresh.
#[derive(Debug, Clone, Object)]
pub struct TokenPair {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Trade for new tokens at `/api/auth/refresh`; single use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user_id: Uuid,
}

impl From<chat_service::auth::Tokens> for TokenPair {
    fn from(t: chat_service::auth::Tokens) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "Bearer".into(),
            expires_in: t.expires_in,
            user_id: t.user_id.as_uuid(),
        }
    }
}

/// A participant of a conversation.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Participant {
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    #[serde(with = "crate::serialized::rfc3339")]
    pub joined_at: DateTime<Utc>,
    /// Messages up to this seq reached one of the user's devices.
    pub last_delivered_seq: i64,
    /// Messages up to this seq were read by the user.
    pub last_read_seq: i64,
    pub muted: bool,
}

impl From<domain::Participant> for Participant {
    fn from(p: domain::Participant) -> Self {
        Self {
            user_id: p.user_id.as_uuid(),
            username: p.username,
            display_name: p.display_name,
            role: p.role.into(),
            joined_at: p.joined_at,
            last_delivered_seq: p.last_delivered_seq,
            last_read_seq: p.last_read_seq,
            muted: p.muted,
        }
    }
}

/// A recipient's state of a message, derived from their watermarks.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct MessageStatus {
    pub user_id: Uuid,
    pub status: DeliveryStatus,
}

impl From<RecipientStatus> for MessageStatus {
    fn from(s: RecipientStatus) -> Self {
        Self {
            user_id: s.user_id.as_uuid(),
            status: s.status.into(),
        }
    }
}

api_enum!(
    /// Processing state of an upload: `pending` until a worker has checked it.
    AttachmentState from AttachmentState { Pending, Ready, Rejected }
);

/// An uploaded file.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Attachment {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub message_id: Option<Uuid>,
    pub uploader_id: Option<Uuid>,
    pub file_name: String,
    /// Sniffed from the bytes (absent until processed).
    pub content_type: Option<String>,
    /// What the client said it was (not trusted).
    pub declared_type: Option<String>,
    pub size: i64,
    pub sha256: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub state: AttachmentState,
    /// Why it was rejected.
    pub error: Option<String>,
    /// Where participants download it (once ready).
    pub download_url: String,
    /// Where participants get its thumbnail (images, once ready).
    pub thumbnail_url: Option<String>,
    #[serde(with = "crate::serialized::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<domain::Attachment> for Attachment {
    fn from(a: domain::Attachment) -> Self {
        let id = a.id.as_uuid();
        Self {
            id,
            conversation_id: a.conversation_id.as_uuid(),
            message_id: a.message_id.map(|m| m.as_uuid()),
            uploader_id: a.uploader_id.map(|u| u.as_uuid()),
            download_url: format!("/api/chat/attachments/{id}/download"),
            thumbnail_url: a
                .has_thumbnail()
                .then(|| format!("/api/chat/attachments/{id}/thumbnail")),
            file_name: a.file_name,
            content_type: a.content_type,
            declared_type: a.declared_type,
            size: a.size_bytes,
            sha256: a.sha256,
            width: a.width,
            height: a.height,
            state: a.state.into(),
            error: a.error,
            created_at: a.created_at,
        }
    }
}

/// A message.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// Position in the conversation: dense, starting at 1. Page and resume by it.
    pub seq: i64,
    /// The sender's user id; absent for system messages.
    pub sender: Option<Uuid>,
    pub kind: MessageKind,
    /// Empty once deleted.
    pub text: String,
    pub client_msg_id: Option<String>,
    pub reply_to: Option<Uuid>,
    #[serde(with = "crate::serialized::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::serialized::rfc3339::option")]
    pub edited_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::serialized::rfc3339::option")]
    pub deleted_at: Option<DateTime<Utc>>,
    pub moderation: ModerationState,
    pub attachments: Vec<Attachment>,
    /// How far it got with its recipients (everyone but the sender), in counts.
    pub delivery: Delivery,
    /// Per recipient: sent, delivered or read (seed 000's statuses). Listed only when
    /// there are at most 10 recipients, else empty: page them with `…/statuses/`.
    pub statuses: Vec<MessageStatus>,
    /// Reactions per emoji, in the order they were first used.
    pub reactions: Vec<Reaction>,
    /// Participants mentioned with `@username`.
    pub mentions: Vec<Uuid>,
}

/// The reactions of one emoji on a message.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Reaction {
    pub emoji: String,
    pub count: i64,
    /// Whether the caller is among them.
    pub reacted_by_me: bool,
}

/// A message's progress over all its recipients.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Delivery {
    /// `read` once every recipient read it, `delivered` once it reached a device of each,
    /// else `sent` (also with no recipients).
    pub state: DeliveryStatus,
    pub recipients: i64,
    /// Recipients it reached (read ones included).
    pub delivered: i64,
    pub read: i64,
}

impl From<chat_service::messages::Reach> for Delivery {
    fn from(r: chat_service::messages::Reach) -> Self {
        Self {
            state: r.state().into(),
            recipients: r.recipients,
            delivered: r.delivered,
            read: r.read,
        }
    }
}

impl Message {
    /// A message with its delivery and statuses derived from these participants'
    /// watermarks (all of the conversation's).
    pub fn with_statuses(m: domain::Message, participants: &[domain::Participant]) -> Self {
        let reach = chat_service::messages::reach_of(&m, participants);
        let statuses = if reach.recipients as usize <= domain::PARTICIPANT_PREVIEW {
            chat_service::messages::statuses_of(&m, participants)
                .into_iter()
                .map(Into::into)
                .collect()
        } else {
            Vec::new()
        };
        Self::build(m, reach.into(), statuses)
    }

    /// A message of a listing that carries no statuses (search hits).
    pub fn without_statuses(m: domain::Message) -> Self {
        let unknown = Delivery {
            state: DeliveryStatus::Sent,
            recipients: 0,
            delivered: 0,
            read: 0,
        };
        Self::build(m, unknown, Vec::new())
    }

    /// Attaches the reactions that belong to this message (others are ignored).
    pub fn with_reactions(mut self, all: &[domain::ReactionSummary]) -> Self {
        self.reactions = all
            .iter()
            .filter(|r| r.message_id.as_uuid() == self.id)
            .map(|r| Reaction {
                emoji: r.emoji.clone(),
                count: r.count,
                reacted_by_me: r.reacted_by_me,
            })
            .collect();
        self
    }

    fn build(m: domain::Message, delivery: Delivery, statuses: Vec<MessageStatus>) -> Self {
        Self {
            id: m.id.as_uuid(),
            conversation_id: m.conversation_id.as_uuid(),
            seq: m.seq,
            sender: m.sender_id.map(|u| u.as_uuid()),
            kind: m.kind.into(),
            text: m.text,
            client_msg_id: m.client_msg_id,
            reply_to: m.reply_to.map(|r| r.as_uuid()),
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
            moderation: m.moderation.into(),
            attachments: m.attachments.into_iter().map(Into::into).collect(),
            delivery,
            statuses,
            reactions: Vec::new(),
            mentions: m.mentions.iter().map(|u| u.as_uuid()).collect(),
        }
    }
}

/// A conversation, as listed for its participants.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Conversation {
    pub id: Uuid,
    /// The group's name; for direct conversations usually absent.
    pub name: Option<String>,
    pub is_group: bool,
    pub kind: ConversationKind,
    /// The first 10 participants by user id (all of a conversation of up to 10); page
    /// the rest with `…/participants/`.
    pub participants: Vec<Participant>,
    pub participant_count: i64,
    pub context_type: ContextType,
    pub context_id: Option<String>,
    pub created_by: Uuid,
    #[serde(with = "crate::serialized::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::serialized::rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Seq of the newest message (0 when empty).
    pub last_seq: i64,
    /// The newest visible message, as a preview.
    pub last_message: Option<Message>,
    /// Messages from others the caller has not read, among the newest 500 and counted
    /// up to 100 (100 means "100 or more": show "99+").
    pub unread_count: i64,
    /// Unread messages that mention the caller, counted up to 100.
    pub unread_mentions: i64,
    /// The caller's role here.
    pub my_role: Role,
    /// Whether the caller muted this conversation.
    pub muted: bool,
}

impl From<domain::ConversationSummary> for Conversation {
    fn from(s: domain::ConversationSummary) -> Self {
        let c = s.conversation;
        let last_message = s
            .last_message
            .map(|m| Message::with_statuses(m, &s.participants));
        Self {
            id: c.id.as_uuid(),
            is_group: c.is_group(),
            name: c.name,
            kind: c.kind.into(),
            participants: s.participants.into_iter().map(Into::into).collect(),
            participant_count: s.participant_count,
            context_type: c.context_type.into(),
            context_id: c.context_id,
            created_by: c.created_by.as_uuid(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_seq: c.last_seq,
            last_message,
            unread_count: s.unread_count,
            unread_mentions: s.unread_mentions,
            my_role: s.my_role.into(),
            muted: s.muted,
        }
    }
}

/// Conversation metadata without the per-caller fields (returned by updates).
#[derive(Debug, Clone, Object)]
pub struct ConversationInfo {
    pub id: Uuid,
    pub name: Option<String>,
    pub is_group: bool,
    pub kind: ConversationKind,
    pub context_type: ContextType,
    pub context_id: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_seq: i64,
}

impl From<domain::Conversation> for ConversationInfo {
    fn from(c: domain::Conversation) -> Self {
        Self {
            id: c.id.as_uuid(),
            is_group: c.is_group(),
            name: c.name,
            kind: c.kind.into(),
            context_type: c.context_type.into(),
            context_id: c.context_id,
            created_by: c.created_by.as_uuid(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_seq: c.last_seq,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct CreateConversationRequest {
    /// Required for groups.
    pub name: Option<Text>,
    /// `false` (default): a direct conversation with exactly one other user.
    #[oai(default)]
    pub is_group: bool,
    /// User ids of the other participants (the caller is added as well).
    #[oai(default)]
    pub participants: Vec<Uuid>,
    /// Defaults to `private`. Portuguese names (`privado`, `núcleo`, …) are accepted.
    pub context_type: Option<Text>,
    pub context_id: Option<Text>,
}

#[derive(Debug, Clone, Object)]
pub struct UpdateConversationRequest {
    pub name: Option<Text>,
    pub context_type: Option<Text>,
    pub context_id: Option<Text>,
}

#[derive(Debug, Clone, Object)]
pub struct AddParticipantRequest {
    pub user_id: Uuid,
    /// Defaults to `member`.
    pub role: Option<Role>,
}

#[derive(Debug, Clone, Object)]
pub struct UpdateParticipantRequest {
    pub role: Role,
}

#[derive(Debug, Clone, Object)]
pub struct SendMessageRequest {
    /// 1–4000 characters (may be empty when `attachments` are given).
    #[oai(default)]
    pub text: Text,
    /// Your idempotency key (1–64 printable ASCII): a retry with the same key returns the
    /// original message instead of sending twice.
    pub client_msg_id: Option<Text>,
    /// Id of the message this one replies to (same conversation).
    pub reply_to: Option<Uuid>,
    /// Ids of uploaded, processed attachments.
    #[oai(default)]
    pub attachments: Vec<Uuid>,
}

#[derive(Debug, Clone, Object)]
pub struct EditMessageRequest {
    pub text: Text,
}

#[derive(Debug, Clone, Object)]
pub struct WatermarkRequest {
    /// Everything up to and including this seq (clamped to the newest message).
    pub seq: i64,
}

/// The caller's watermarks after a move.
#[derive(Debug, Clone, Object)]
pub struct Watermarks {
    pub last_delivered_seq: i64,
    pub last_read_seq: i64,
}

/// The per-recipient statuses of one message.
#[derive(Debug, Clone, Object)]
pub struct MessageStatuses {
    pub message_id: Uuid,
    pub seq: i64,
    /// Over all recipients.
    pub delivery: Delivery,
    /// This page of recipients, in user id order.
    pub statuses: Vec<MessageStatus>,
    /// Pass as `after` for the next page; absent on the last.
    #[oai(skip_serializing_if_is_none)]
    pub next: Option<Uuid>,
}

#[derive(Debug, Clone, Object)]
pub struct Health {
    /// `ok`, or what is not.
    pub status: String,
    #[oai(skip_serializing_if_is_none)]
    pub postgres: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub redis: Option<String>,
}

/// Parses a context type from its English or Portuguese name.
pub fn parse_context_type(raw: &str) -> Result<domain::ContextType, domain::ValidationError> {
    raw.trim().to_lowercase().parse().map_err(|_| {
        domain::ValidationError::new(
            "context_type",
            "must be one of private, nucleus, event, organization",
        )
    })
}

/// Whether a user is online (has a live WebSocket connection on any gateway).
#[derive(Debug, Clone, Object)]
pub struct Presence {
    pub user_id: Uuid,
    pub online: bool,
}

api_enum!(
    /// Review state of a flag.
    FlagState from FlagState { Open, Approved, Hidden }
);
api_enum!(
    /// A moderator's decision.
    Decision from Decision { Approve, Hide }
);

/// A pinned message.
#[derive(Debug, Clone, Object)]
pub struct PinnedMessage {
    pub message: Message,
    pub pinned_by: Option<Uuid>,
    pub pinned_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct PinRequest {
    pub message_id: Uuid,
}

/// A message and its direct replies.
#[derive(Debug, Clone, Object)]
pub struct Thread {
    pub root: Message,
    /// Replies in seq order; page with `after=<seq of the last>`.
    pub replies: Vec<Message>,
    pub has_more: bool,
}

#[derive(Debug, Clone, Object)]
pub struct FlagRequest {
    /// Why the message should be reviewed (1–500 characters).
    pub reason: Text,
}

/// A participant's report of a message (seen by moderators).
#[derive(Debug, Clone, Object)]
pub struct Flag {
    pub id: Uuid,
    pub message_id: Uuid,
    pub flagged_by: Option<Uuid>,
    pub reason: String,
    pub state: FlagState,
    pub created_at: DateTime<Utc>,
}

impl From<domain::Flag> for Flag {
    fn from(f: domain::Flag) -> Self {
        Self {
            id: f.id,
            message_id: f.message_id.as_uuid(),
            flagged_by: f.flagged_by.map(|u| u.as_uuid()),
            reason: f.reason,
            state: f.state.into(),
            created_at: f.created_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct ModerationRequest {
    pub decision: Decision,
    /// Recorded with the decision.
    pub reason: Option<Text>,
}

/// A recorded moderation decision.
#[derive(Debug, Clone, Object)]
pub struct ModerationDecision {
    pub id: Uuid,
    pub message_id: Uuid,
    pub moderator_id: Option<Uuid>,
    pub decision: Decision,
    pub reason: Option<String>,
    pub decided_at: DateTime<Utc>,
}

impl From<domain::ModerationDecision> for ModerationDecision {
    fn from(d: domain::ModerationDecision) -> Self {
        Self {
            id: d.id,
            message_id: d.message_id.as_uuid(),
            moderator_id: d.moderator_id.map(|u| u.as_uuid()),
            decision: d.decision.into(),
            reason: d.reason,
            decided_at: d.decided_at,
        }
    }
}

/// Everything recorded about a message's moderation.
#[derive(Debug, Clone, Object)]
pub struct ModerationRecord {
    pub flags: Vec<Flag>,
    pub decisions: Vec<ModerationDecision>,
}

/// A search result.
#[derive(Debug, Clone, Object)]
pub struct SearchHit {
    pub message: Message,
    pub conversation_id: Uuid,
    /// Relevance; higher is better.
    pub rank: f32,
    /// Opaque: pass the last hit's `cursor` as `after` for the next page.
    pub cursor: String,
}

/// A search hit's position as its opaque `cursor` text: the rank's bits, the time in
/// microseconds and the id, which is everything the order of results compares.
pub fn search_cursor(position: &chat_service::SearchPosition) -> String {
    format!(
        "{:08x}.{}.{}",
        position.rank.to_bits(),
        position.created_at.timestamp_micros(),
        position.id.as_uuid()
    )
}

/// The position a `cursor` names; `None` for text no hit ever had as its cursor.
pub fn parse_search_cursor(cursor: &str) -> Option<chat_service::SearchPosition> {
    let mut parts = cursor.split('.');
    let (rank, micros, id) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || rank.len() != 8 {
        return None;
    }
    Some(chat_service::SearchPosition {
        rank: f32::from_bits(u32::from_str_radix(rank, 16).ok()?),
        created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id: Uuid::parse_str(id).ok()?.into(),
    })
}

api_enum!(
    /// Export file format.
    ExportFormat from ExportFormat { Json, Csv }
);
api_enum!(
    /// Export state: `queued` → `running` → `done` (or `failed`).
    ExportState from ExportState { Queued, Running, Done, Failed }
);

/// A history export (seed 002: `RelatorioChatExport`).
#[derive(Debug, Clone, Object)]
pub struct Export {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub requested_by: Option<Uuid>,
    pub format: ExportFormat,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub state: ExportState,
    /// Messages written so far.
    pub progress: i64,
    /// Messages the export will hold (known once it runs).
    pub total: Option<i64>,
    pub attempts: i32,
    pub row_count: Option<i64>,
    pub error: Option<String>,
    /// The export itself: poll it here (also the `Location` of the 202 that queued it).
    pub url: String,
    /// Where participants download the file, once done.
    pub download_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<domain::Export> for Export {
    fn from(e: domain::Export) -> Self {
        let done = e.state == domain::ExportState::Done;
        let url = format!(
            "/api/chat/conversations/{}/exports/{}",
            e.conversation_id, e.id
        );
        Self {
            download_url: done.then(|| format!("{url}/download")),
            url,
            id: e.id,
            conversation_id: e.conversation_id.as_uuid(),
            requested_by: e.requested_by.map(|u| u.as_uuid()),
            format: e.format.into(),
            since: e.since,
            until: e.until,
            state: e.state.into(),
            progress: e.progress,
            total: e.total,
            attempts: e.attempts,
            row_count: e.row_count,
            error: e.error,
            created_at: e.created_at,
            started_at: e.started_at,
            finished_at: e.finished_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct ExportRequest {
    pub format: ExportFormat,
    /// Only messages created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only messages created at or before this time.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Object)]
pub struct WebhookRequest {
    /// Where notifications are POSTed (http or https).
    pub url: Text,
}

/// A webhook for your notifications. Each call is signed: `X-Chat-Signature:
/// sha256=<hex HMAC-SHA256 of "<X-Chat-Timestamp>.<body>" with the secret>`.
#[derive(Debug, Clone, Object)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// The signing secret: shown once, when the webhook is created.
    #[oai(skip_serializing_if_is_none)]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct MuteRequest {
    pub muted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_cursor_names_exactly_its_position() {
        let position = chat_service::SearchPosition {
            rank: 0.060_792_7,
            created_at: DateTime::from_timestamp_micros(1_796_237_830_996_123).expect("time"),
            id: Uuid::now_v7().into(),
        };
        assert_eq!(
            parse_search_cursor(&search_cursor(&position)),
            Some(position)
        );
        for bad in [
            "",
            "nonsense",
            "3d790a7f.1.",
            "3d790a7.1.018f0000-0000-7000-8000-000000000000",
            "3d790a7f.x.018f0000-0000-7000-8000-000000000000",
            "3d790a7f.1.018f0000-0000-7000-8000-000000000000.extra",
        ] {
            assert_eq!(parse_search_cursor(bad), None, "{bad}");
        }
    }
}
