//! Reactions and pins.

use chat_domain::{ConversationId, MessageId, Pin, ReactionSummary, UserId};

use crate::{OutboxEvent, Outboxed, Store, StoreError, commit_with_events};

/// Most distinct reactions one user may put on one message.
pub const MAX_REACTIONS_PER_USER: i64 = 20;
/// Most distinct emoji on one message, everyone's together (every page carries them).
pub const MAX_EMOJI_PER_MESSAGE: i64 = 50;
/// The [`StoreError::Conflict`] names of the two quotas.
pub const REACTIONS_PER_USER: &str = "reactions_per_user";
pub const EMOJI_PER_MESSAGE: &str = "emoji_per_message";

impl Store {
    /// Adds (`add`) or removes a reaction; `false` when there was nothing to do (already
    /// reacted with this emoji, or no such reaction). The events are written (to the
    /// outbox) only when something changed; so for pins.
    pub async fn set_reaction(
        &self,
        message: MessageId,
        user: UserId,
        emoji: &str,
        add: bool,
        events: impl FnOnce() -> Vec<OutboxEvent>,
    ) -> Result<(bool, Outboxed), StoreError> {
        let sql = if add {
            "WITH added AS (
                INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, $3)
                ON CONFLICT DO NOTHING RETURNING message_id
             )
             UPDATE messages SET reaction_count = reaction_count + 1 WHERE id IN (SELECT message_id FROM added)"
        } else {
            "WITH removed AS (
                DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3 RETURNING message_id
             )
             UPDATE messages SET reaction_count = reaction_count - 1 WHERE id IN (SELECT message_id FROM removed)"
        };
        let mut tx = self.pool.begin().await?;
        if add {
            // The message's row lock serialises its reactions, so the quotas hold under
            // concurrent adds.
            let (mine, has_this, kinds, emoji_known) = sqlx::query_as::<_, (i64, bool, i64, bool)>(
                "WITH locked AS (SELECT id FROM messages WHERE id = $1 FOR UPDATE)
                 SELECT count(*) FILTER (WHERE user_id = $2),
                        bool_or(user_id = $2 AND emoji = $3) IS TRUE,
                        count(DISTINCT emoji),
                        bool_or(emoji = $3) IS TRUE
                   FROM reactions WHERE message_id = (SELECT id FROM locked)",
            )
            .bind(message)
            .bind(user)
            .bind(emoji)
            .fetch_one(&mut *tx)
            .await?;
            if !has_this {
                if mine >= MAX_REACTIONS_PER_USER {
                    return Err(StoreError::Conflict(REACTIONS_PER_USER.into()));
                }
                if !emoji_known && kinds >= MAX_EMOJI_PER_MESSAGE {
                    return Err(StoreError::Conflict(EMOJI_PER_MESSAGE.into()));
                }
            }
        }
        let done = sqlx::query(sql)
            .bind(message)
            .bind(user)
            .bind(emoji)
            .execute(&mut *tx)
            .await?;
        changed_with_events(tx, done.rows_affected() == 1, events).await
    }

    /// Reaction counts per message and emoji, with whether `viewer` is among them, in the
    /// order the emojis were first used.
    pub async fn reactions_of(
        &self,
        messages: &[MessageId],
        viewer: UserId,
    ) -> Result<Vec<ReactionSummary>, StoreError> {
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
    pub async fn pin(
        &self,
        conversation: ConversationId,
        message: MessageId,
        by: UserId,
        events: impl FnOnce() -> Vec<OutboxEvent>,
    ) -> Result<(bool, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO pins (conversation_id, message_id, pinned_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(conversation)
        .bind(message)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        changed_with_events(tx, done.rows_affected() == 1, events).await
    }

    /// Unpins a message; `false` when it was not pinned.
    pub async fn unpin(
        &self,
        conversation: ConversationId,
        message: MessageId,
        events: impl FnOnce() -> Vec<OutboxEvent>,
    ) -> Result<(bool, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM pins WHERE conversation_id = $1 AND message_id = $2")
            .bind(conversation)
            .bind(message)
            .execute(&mut *tx)
            .await?;
        changed_with_events(tx, done.rows_affected() == 1, events).await
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

/// Commits a change that may have been a no-op: its events only if it changed something.
async fn changed_with_events(
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    changed: bool,
    events: impl FnOnce() -> Vec<OutboxEvent>,
) -> Result<(bool, Outboxed), StoreError> {
    let events = if changed { events() } else { Vec::new() };
    Ok((changed, commit_with_events(tx, events).await?))
}
