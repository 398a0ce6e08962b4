//! Flags and moderation decisions.

use chat_domain::{
    ConversationId, Decision, Flag, FlagState, MessageId, ModerationDecision, ModerationState,
    UserId,
};

use crate::{OutboxEvent, Outboxed, Store, StoreError, commit_with_events};

const FLAG_COLUMNS: &str = "id, message_id, flagged_by, reason, state, created_at";

impl Store {
    /// Records a participant's flag and marks a visible message `flagged`. A second flag
    /// by the same user is `Conflict("flags_once_per_user")`.
    pub async fn flag_message(
        &self,
        message: MessageId,
        by: UserId,
        reason: &str,
        events: Vec<OutboxEvent>,
    ) -> Result<(Flag, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let flag = sqlx::query_as::<_, Flag>(
            "INSERT INTO flags (id, message_id, flagged_by, reason) VALUES ($1, $2, $3, $4)
             RETURNING id, message_id, flagged_by, reason, state, created_at",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(message)
        .bind(by)
        .bind(reason)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE messages SET moderation = 'flagged' WHERE id = $1 AND moderation = 'visible'",
        )
        .bind(message)
        .execute(&mut *tx)
        .await?;
        Ok((flag, commit_with_events(tx, events).await?))
    }

    /// Records a decision, sets the message's state, and closes its open flags.
    pub async fn decide(
        &self,
        message: MessageId,
        moderator: UserId,
        decision: Decision,
        reason: Option<&str>,
        events: Vec<OutboxEvent>,
    ) -> Result<(ModerationDecision, Outboxed), StoreError> {
        let (state, flag_state) = match decision {
            Decision::Approve => (ModerationState::Visible, FlagState::Approved),
            Decision::Hide => (ModerationState::Hidden, FlagState::Hidden),
        };
        let mut tx = self.pool.begin().await?;
        let recorded = sqlx::query_as::<_, ModerationDecision>(
            "INSERT INTO moderation_decisions (id, message_id, moderator_id, decision, reason)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING id, message_id, moderator_id, decision, reason, decided_at",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(message)
        .bind(moderator)
        .bind(decision)
        .bind(reason)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE messages SET moderation = $2 WHERE id = $1")
            .bind(message)
            .bind(state)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE flags SET state = $2 WHERE message_id = $1 AND state = 'open'")
            .bind(message)
            .bind(flag_state)
            .execute(&mut *tx)
            .await?;
        Ok((recorded, commit_with_events(tx, events).await?))
    }

    /// A conversation's flags in a state (all states when `None`), newest first.
    pub async fn flags(
        &self,
        conversation: ConversationId,
        state: Option<FlagState>,
    ) -> Result<Vec<Flag>, StoreError> {
        Ok(sqlx::query_as::<_, Flag>(sqlx::AssertSqlSafe(
            "SELECT f.id, f.message_id, f.flagged_by, f.reason, f.state, f.created_at
               FROM flags f JOIN messages m ON m.id = f.message_id
              WHERE m.conversation_id = $1 AND ($2::text IS NULL OR f.state = $2)
              ORDER BY f.created_at DESC"
                .to_string(),
        ))
        .bind(conversation)
        .bind(state)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A message's recorded decisions, oldest first.
    pub async fn decisions(
        &self,
        message: MessageId,
    ) -> Result<Vec<ModerationDecision>, StoreError> {
        Ok(sqlx::query_as::<_, ModerationDecision>(
            "SELECT id, message_id, moderator_id, decision, reason, decided_at
               FROM moderation_decisions WHERE message_id = $1 ORDER BY decided_at",
        )
        .bind(message)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The flags of one message.
    pub async fn flags_of_message(&self, message: MessageId) -> Result<Vec<Flag>, StoreError> {
        Ok(sqlx::query_as::<_, Flag>(sqlx::AssertSqlSafe(format!(
            "SELECT {FLAG_COLUMNS} FROM flags WHERE message_id = $1 ORDER BY created_at"
        )))
        .bind(message)
        .fetch_all(&self.pool)
        .await?)
    }
}
