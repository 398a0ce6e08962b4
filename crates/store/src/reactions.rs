//! Reactions and pins.

use chat_domain::{ConversationId, MessageId, Pin, ReactionSummary, UserId};

use crate::{Store, StoreError};

impl Store {
    /// Adds a reaction; `false` when the user had already reacted with this emoji.
    pub async fn add_reaction(&self, message: MessageId, user: UserId, emoji: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "WITH added AS (
                INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, $3)
                ON CONFLICT DO NOTHING RETURNING message_id
             )
             UPDATE messages SET reaction_count = reaction_count + 1 WHERE id IN (SELECT message_id FROM added)",
        )
        .bind(message)
        .bind(user)
        .bind(emoji)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a reaction; `false` when there was none.
    pub async fn remove_reaction(&self, message: MessageId, user: UserId, emoji: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "WITH removed AS (
                DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3 RETURNING message_id
             )
             UPDATE messages SET reaction_count = reaction_count - 1 WHERE id IN (SELECT message_id FROM removed)",
        )
            .bind(message)
            .bind(user)
            .bind(emoji)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Reaction counts per message and emoji, with whether `viewer` is among them, in the
    /// order the emojis were first used.
    pub async fn reactions_of(&self, messages: &[MessageId], viewer: UserId) -> Result<Vec<ReactionSummary>, StoreError> {
        let ids: Vec<uuid::Uuid> = messages.iter().map(MessageId::as_uuid).collect();
        Ok(sqlx::query_as::<_, ReactionSummary>(
            "SELECT message_id, emoji, count(*) AS count, bool_or(user_id = $2) AS reacted_by_me
               FROM reactions WHERE message_id = ANY($1)
              GROUP BY message_id, emoji
              ORDER BY message_id, min(created_at)",
        )
        .bind(ids)
        .bind(viewer)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Pins a message; `false` when it was already pinned.
    pub async fn pin(&self, conversation: ConversationId, message: MessageId, by: UserId) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO pins (conversation_id, message_id, pinned_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(conversation)
        .bind(message)
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Unpins a message; `false` when it was not pinned.
    pub async fn unpin(&self, conversation: ConversationId, message: MessageId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM pins WHERE conversation_id = $1 AND message_id = $2")
            .bind(conversation)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A conversation's pins, newest first.
    pub async fn pins(&self, conversation: ConversationId) -> Result<Vec<Pin>, StoreError> {
        Ok(sqlx::query_as::<_, Pin>(
            "SELECT conversation_id, message_id, pinned_by, pinned_at FROM pins
              WHERE conversation_id = $1 ORDER BY pinned_at DESC",
        )
        .bind(conversation)
        .fetch_all(&self.pool)
        .await?)
    }
}
