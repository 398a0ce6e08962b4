//! Messages: the seq-assigning insert, history pages, edits and deletes.

use chrono::{DateTime, Utc};
use chat_domain::{ConversationId, Message, MessageId, MessageKind, UserId};

use sqlx::AssertSqlSafe;

use crate::{Store, StoreError};

const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, sender_id, kind, text, client_msg_id, reply_to, \
                               created_at, edited_at, deleted_at, moderation";

/// A message to insert; its seq is assigned by [`Store::insert_message`].
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender_id: UserId,
    pub kind: MessageKind,
    pub text: String,
    pub client_msg_id: Option<String>,
    pub reply_to: Option<MessageId>,
    /// Usernames mentioned with `@`; those who are participants are recorded.
    pub mentions: Vec<String>,
    /// Ready attachments the sender uploaded to this conversation and has not sent yet.
    pub attachments: Vec<chat_domain::AttachmentId>,
}

/// What an insert did.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// A new message, committed with the next seq.
    New(Message),
    /// The sender had already used this `client_msg_id`: the original message.
    Existing(Message),
}

/// Why an insert was refused.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The conversation does not exist or the sender is not a participant.
    #[error("conversation not found")]
    ConversationNotFound,
    /// `reply_to` names no message of this conversation.
    #[error("reply_to is not a message of this conversation")]
    ReplyNotFound,
    /// An attachment is unknown, not ready, someone else's, of another conversation, or
    /// already sent.
    #[error("attachment not available")]
    AttachmentUnavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for InsertError {
    fn from(err: sqlx::Error) -> Self {
        InsertError::Store(err.into())
    }
}

/// A window of history. Pages are keyset-paginated by seq.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only messages with a smaller seq (paging back).
    pub before: Option<i64>,
    /// Only messages with a greater seq (catching up); takes precedence over `before`.
    pub after: Option<i64>,
    /// Created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Created at or before this time.
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
    /// Include messages hidden by moderation (moderators only).
    pub include_hidden: bool,
}

/// A page of history in ascending seq order.
#[derive(Debug, Clone, Default)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// Whether more messages lie past the page in the direction of travel.
    pub has_more: bool,
    /// The messages of the page that have reactions (the others need no lookup).
    pub reacted: Vec<MessageId>,
}

/// A history row with what it has besides its own columns, so that the page's
/// mentions, attachments and reactions are looked up only when there are any.
#[derive(sqlx::FromRow)]
struct HistoryRow {
    #[sqlx(flatten)]
    message: Message,
    has_mentions: bool,
    has_attachments: bool,
    has_reactions: bool,
}

const HISTORY_EXTRAS: &str = "has_mentions, has_attachments, reaction_count > 0 AS has_reactions";

impl Store {
    /// Inserts a message, assigning the conversation's next seq in the same transaction.
    ///
    /// The sender must be a participant; this is checked in the statement that takes the
    /// seq, so a member removed concurrently cannot slip a message in. A retry with a
    /// `client_msg_id` the sender already used returns the original message instead.
    ///
    /// There is no lookup of the key beforehand: the unique constraint decides, in the
    /// same round trips as a first send, and a retry's rollback gives its seq back.
    pub async fn insert_message(&self, new: &NewMessage) -> Result<Inserted, InsertError> {
        let mut tx = self.pool.begin().await?;
        if let Some(reply_to) = new.reply_to {
            let found: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM messages WHERE id = $1 AND conversation_id = $2")
                    .bind(reply_to)
                    .bind(new.conversation_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if found.is_none() {
                return Err(InsertError::ReplyNotFound);
            }
        }
        // Takes the row lock that orders concurrent senders of this conversation.
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = now()
              WHERE id = $1
                AND EXISTS (SELECT 1 FROM participants WHERE conversation_id = $1 AND user_id = $2)
              RETURNING last_seq",
        )
        .bind(new.conversation_id)
        .bind(new.sender_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(seq) = seq else {
            return Err(InsertError::ConversationNotFound);
        };
        let inserted = sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, kind, text, client_msg_id, reply_to)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (sender_id, client_msg_id) DO NOTHING
             RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(new.id)
        .bind(new.conversation_id)
        .bind(seq)
        .bind(new.sender_id)
        .bind(new.kind)
        .bind(&new.text)
        .bind(&new.client_msg_id)
        .bind(new.reply_to)
        .fetch_optional(&mut *tx)
        .await?;
        match inserted {
            Some(mut message) => {
                if !new.mentions.is_empty() {
                    message.mentions = sqlx::query_scalar::<_, UserId>(
                        "INSERT INTO mentions (message_id, user_id, conversation_id, seq)
                         SELECT $1, p.user_id, $2, $3
                           FROM participants p JOIN users u ON u.id = p.user_id
                          WHERE p.conversation_id = $2 AND u.username = ANY($4) AND p.user_id <> $5
                         RETURNING user_id",
                    )
                    .bind(message.id)
                    .bind(new.conversation_id)
                    .bind(seq)
                    .bind(&new.mentions)
                    .bind(new.sender_id)
                    .fetch_all(&mut *tx)
                    .await?;
                }
                if !new.attachments.is_empty() {
                    let ids: Vec<uuid::Uuid> = new.attachments.iter().map(|a| a.as_uuid()).collect();
                    message.attachments = sqlx::query_as::<_, chat_domain::Attachment>(AssertSqlSafe(format!(
                        "UPDATE attachments SET message_id = $1
                          WHERE id = ANY($2) AND conversation_id = $3 AND uploader_id = $4
                            AND state = 'ready' AND message_id IS NULL
                          RETURNING {}",
                        crate::attachments::ATTACHMENT_COLUMNS
                    )))
                    .bind(message.id)
                    .bind(&ids)
                    .bind(new.conversation_id)
                    .bind(new.sender_id)
                    .fetch_all(&mut *tx)
                    .await?;
                    if message.attachments.len() != ids.len() {
                        // Rolled back with the seq when `tx` drops.
                        return Err(InsertError::AttachmentUnavailable);
                    }
                }
                if !message.mentions.is_empty() || !message.attachments.is_empty() {
                    sqlx::query("UPDATE messages SET has_mentions = $2, has_attachments = $3 WHERE id = $1")
                        .bind(message.id)
                        .bind(!message.mentions.is_empty())
                        .bind(!message.attachments.is_empty())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(Inserted::New(message))
            }
            None => {
                // This key was used before (a retry): give the seq back, return the original.
                tx.rollback().await?;
                let existing = self
                    .message_by_client_id(new.sender_id, new.client_msg_id.as_deref())
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok(Inserted::Existing(existing))
            }
        }
    }

    async fn message_by_client_id(
        &self,
        sender: UserId,
        client_msg_id: Option<&str>,
    ) -> Result<Option<Message>, StoreError> {
        let Some(key) = client_msg_id else { return Ok(None) };
        Ok(sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id = $1 AND client_msg_id = $2"
        )))
        .bind(sender)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn message(&self, conversation: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError> {
        Ok(sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND conversation_id = $2"
        )))
        .bind(id)
        .bind(conversation)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A message by id alone (for workers that already know it is theirs to handle).
    pub async fn message_by_id(&self, id: MessageId) -> Result<Option<Message>, StoreError> {
        Ok(sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A page of a conversation's history (see [`HistoryQuery`]), in ascending seq order,
    /// with mentions and attachments filled in.
    pub async fn history(&self, conversation: ConversationId, q: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        // Both statements are sargable on (conversation_id, seq): absent bounds become
        // open ones rather than `$n IS NULL OR …`, which a generic plan cannot use.
        let forward = q.after.is_some();
        let (op, order) = if forward { (">", "ASC") } else { ("<", "DESC") };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, {HISTORY_EXTRAS} FROM messages
              WHERE conversation_id = $1 AND seq {op} $2
                AND created_at >= COALESCE($3, '-infinity') AND created_at <= COALESCE($4, 'infinity')
                AND ($5 OR moderation <> 'hidden')
              ORDER BY seq {order} LIMIT $6"
        );
        let bound = if forward { q.after.unwrap_or(0) } else { q.before.unwrap_or(i64::MAX) };
        let mut rows = sqlx::query_as::<_, HistoryRow>(AssertSqlSafe(sql))
            .bind(conversation)
            .bind(bound)
            .bind(q.since)
            .bind(q.until)
            .bind(q.include_hidden)
            .bind(q.limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let has_more = rows.len() as i64 > q.limit;
        rows.truncate(q.limit.max(0) as usize);
        if !forward {
            rows.reverse();
        }
        let any_mentions = rows.iter().any(|r| r.has_mentions);
        let any_attachments = rows.iter().any(|r| r.has_attachments);
        let reacted = rows.iter().filter(|r| r.has_reactions).map(|r| r.message.id).collect();
        let mut messages: Vec<Message> = rows.into_iter().map(|r| r.message).collect();
        if any_mentions {
            self.load_mentions(&mut messages).await?;
        }
        if any_attachments {
            self.load_attachments(&mut messages).await?;
        }
        Ok(HistoryPage { messages, has_more, reacted })
    }

    /// Fills in the mentions of some messages.
    pub async fn load_mentions(&self, messages: &mut [Message]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = messages.iter().map(|m| m.id.as_uuid()).collect();
        let rows: Vec<(MessageId, UserId)> =
            sqlx::query_as("SELECT message_id, user_id FROM mentions WHERE message_id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?;
        for (message_id, user_id) in rows {
            if let Some(m) = messages.iter_mut().find(|m| m.id == message_id) {
                m.mentions.push(user_id);
            }
        }
        Ok(())
    }

    /// Direct replies to a message, in seq order, after `after`.
    pub async fn replies(
        &self,
        conversation: ConversationId,
        root: MessageId,
        after: i64,
        limit: i64,
        include_hidden: bool,
    ) -> Result<HistoryPage, StoreError> {
        let mut messages = sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
              WHERE conversation_id = $1 AND reply_to = $2 AND seq > $3 AND ($4 OR moderation <> 'hidden')
              ORDER BY seq LIMIT $5"
        )))
        .bind(conversation)
        .bind(root)
        .bind(after)
        .bind(include_hidden)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        let has_more = messages.len() as i64 > limit;
        messages.truncate(limit.max(0) as usize);
        Ok(HistoryPage { messages, has_more, reacted: Vec::new() })
    }

    /// Replaces the text of a message that is not deleted; sets `edited_at`.
    pub async fn edit_message(
        &self,
        conversation: ConversationId,
        id: MessageId,
        text: &str,
    ) -> Result<Message, StoreError> {
        sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "UPDATE messages SET text = $3, edited_at = now()
              WHERE id = $1 AND conversation_id = $2 AND deleted_at IS NULL
              RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(id)
        .bind(conversation)
        .bind(text)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }

    /// Deletes a message: the row and its seq stay, the text goes.
    pub async fn delete_message(&self, conversation: ConversationId, id: MessageId) -> Result<Message, StoreError> {
        sqlx::query_as::<_, Message>(AssertSqlSafe(format!(
            "UPDATE messages SET text = '', deleted_at = now()
              WHERE id = $1 AND conversation_id = $2 AND deleted_at IS NULL
              RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(id)
        .bind(conversation)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)
    }
}
