//! Participants: membership, roles and watermarks.

use chat_domain::{ConversationId, Participant, Role, UserId};

use sqlx::AssertSqlSafe;

use crate::{OutboxEvent, Outboxed, Store, StoreError, commit_with_events};

const PARTICIPANT_SELECT: &str = "SELECT p.conversation_id, p.user_id, u.username, u.display_name, p.role, \
     p.joined_at, p.last_delivered_seq, p.last_read_seq, p.muted \
     FROM participants p JOIN users u ON u.id = p.user_id";

/// A change to one participant that must not leave the conversation without an owner.
#[derive(Debug, Clone, Copy)]
pub enum MembershipChange {
    SetRole(Role),
    Remove,
}

/// Which watermark to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watermark {
    Delivered,
    Read,
}

/// The result of moving a watermark: the new values, and whether anything moved.
#[derive(Debug, Clone, Copy)]
pub struct WatermarkMove {
    pub delivered: i64,
    pub read: i64,
    pub moved: bool,
}

impl Store {
    /// The user's membership of the conversation, if any.
    pub async fn participant(
        &self,
        conversation: ConversationId,
        user: UserId,
    ) -> Result<Option<Participant>, StoreError> {
        Ok(sqlx::query_as::<_, Participant>(AssertSqlSafe(format!(
            "{PARTICIPANT_SELECT} WHERE p.conversation_id = $1 AND p.user_id = $2"
        )))
        .bind(conversation)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Of these conversations, those the user is still a participant of.
    pub async fn still_joined(
        &self,
        user: UserId,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationId>, StoreError> {
        let ids: Vec<uuid::Uuid> = conversations.iter().map(|c| c.as_uuid()).collect();
        Ok(sqlx::query_scalar::<_, ConversationId>(
            "SELECT conversation_id FROM participants WHERE user_id = $1 AND conversation_id = ANY($2)",
        )
        .bind(user)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn participants(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<Participant>, StoreError> {
        Ok(sqlx::query_as::<_, Participant>(AssertSqlSafe(format!(
            "{PARTICIPANT_SELECT} WHERE p.conversation_id = $1 ORDER BY p.joined_at, u.username"
        )))
        .bind(conversation)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of participants in user id order, after `after`: bounded by the page in a
    /// conversation of any size.
    pub async fn participants_page(
        &self,
        conversation: ConversationId,
        after: Option<UserId>,
        limit: i64,
    ) -> Result<Vec<Participant>, StoreError> {
        Ok(sqlx::query_as::<_, Participant>(AssertSqlSafe(format!(
            "{PARTICIPANT_SELECT} WHERE p.conversation_id = $1 AND p.user_id > $2
              ORDER BY p.user_id LIMIT $3"
        )))
        .bind(conversation)
        .bind(after.map_or(uuid::Uuid::nil(), |u| u.as_uuid()))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// How far message `seq` got with its recipients (every participant but `sender`):
    /// (recipients, delivered or read, read), counted in PostgreSQL.
    pub async fn reach(
        &self,
        conversation: ConversationId,
        sender: Option<UserId>,
        seq: i64,
    ) -> Result<(i64, i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT count(*),
                    count(*) FILTER (WHERE GREATEST(last_delivered_seq, last_read_seq) >= $3),
                    count(*) FILTER (WHERE last_read_seq >= $3)
               FROM participants WHERE conversation_id = $1 AND user_id IS DISTINCT FROM $2",
        )
        .bind(conversation)
        .bind(sender)
        .bind(seq)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Adds a participant. Already a participant: `Conflict("participants_pkey")`;
    /// unknown user: `MissingReference`.
    pub async fn add_participant(
        &self,
        conversation: ConversationId,
        user: UserId,
        role: Role,
        events: impl FnOnce(&Participant) -> Vec<OutboxEvent>,
    ) -> Result<(Participant, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO participants (conversation_id, user_id, role) VALUES ($1, $2, $3)",
        )
        .bind(conversation)
        .bind(user)
        .bind(role)
        .execute(&mut *tx)
        .await?;
        let added = sqlx::query_as::<_, Participant>(AssertSqlSafe(format!(
            "{PARTICIPANT_SELECT} WHERE p.conversation_id = $1 AND p.user_id = $2"
        )))
        .bind(conversation)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        let outboxed = commit_with_events(tx, events(&added)).await?;
        Ok((added, outboxed))
    }

    /// Changes a participant's role or removes them, refusing with [`StoreError::LastOwner`]
    /// when that would leave remaining participants without an owner. Returns the
    /// participant as they were before the change.
    pub async fn change_membership(
        &self,
        conversation: ConversationId,
        user: UserId,
        change: MembershipChange,
        events: Vec<OutboxEvent>,
    ) -> Result<(Participant, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the conversation row: membership changes of one conversation run one at a
        // time, so two owners cannot both step down at once.
        sqlx::query("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE")
            .bind(conversation)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let before = sqlx::query_as::<_, Participant>(AssertSqlSafe(format!(
            "{PARTICIPANT_SELECT} WHERE p.conversation_id = $1 AND p.user_id = $2"
        )))
        .bind(conversation)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let (owners, total): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE role = 'owner'), count(*) FROM participants WHERE conversation_id = $1",
        )
        .bind(conversation)
        .fetch_one(&mut *tx)
        .await?;
        let loses_owner = before.role == Role::Owner
            && match change {
                MembershipChange::SetRole(role) => role != Role::Owner,
                MembershipChange::Remove => true,
            };
        let remaining = match change {
            MembershipChange::Remove => total - 1,
            MembershipChange::SetRole(_) => total,
        };
        if loses_owner && owners == 1 && remaining > 0 {
            return Err(StoreError::LastOwner);
        }
        match change {
            MembershipChange::SetRole(role) => {
                sqlx::query(
                    "UPDATE participants SET role = $3 WHERE conversation_id = $1 AND user_id = $2",
                )
                .bind(conversation)
                .bind(user)
                .bind(role)
                .execute(&mut *tx)
                .await?;
            }
            MembershipChange::Remove => {
                sqlx::query("DELETE FROM participants WHERE conversation_id = $1 AND user_id = $2")
                    .bind(conversation)
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let outboxed = commit_with_events(tx, events).await?;
        Ok((before, outboxed))
    }

    /// Moves a watermark forward to `seq` (never back). Reading implies delivery, so the
    /// read watermark also moves the delivered one. `seq` past the conversation's last
    /// message is clamped to it. `NotFound` if the user is not a participant.
    pub async fn advance_watermark(
        &self,
        conversation: ConversationId,
        user: UserId,
        which: Watermark,
        seq: i64,
        events: impl FnOnce(&WatermarkMove) -> Vec<OutboxEvent>,
    ) -> Result<(WatermarkMove, Outboxed), StoreError> {
        let sql = match which {
            Watermark::Read => {
                "WITH target AS (SELECT LEAST($3, last_seq) AS s FROM conversations WHERE id = $1),
                      old AS (SELECT last_read_seq AS r FROM participants
                               WHERE conversation_id = $1 AND user_id = $2 FOR UPDATE)
                 UPDATE participants p
                    SET last_read_seq = GREATEST(p.last_read_seq, target.s),
                        last_delivered_seq = GREATEST(p.last_delivered_seq, target.s)
                   FROM target, old
                  WHERE p.conversation_id = $1 AND p.user_id = $2
                 RETURNING p.last_delivered_seq, p.last_read_seq, p.last_read_seq <> old.r"
            }
            Watermark::Delivered => {
                "WITH target AS (SELECT LEAST($3, last_seq) AS s FROM conversations WHERE id = $1),
                      old AS (SELECT last_delivered_seq AS d FROM participants
                               WHERE conversation_id = $1 AND user_id = $2 FOR UPDATE)
                 UPDATE participants p
                    SET last_delivered_seq = GREATEST(p.last_delivered_seq, target.s)
                   FROM target, old
                  WHERE p.conversation_id = $1 AND p.user_id = $2
                 RETURNING p.last_delivered_seq, p.last_read_seq, p.last_delivered_seq <> old.d"
            }
        };
        let mut tx = self.pool.begin().await?;
        let (delivered, read, moved): (i64, i64, bool) = sqlx::query_as(sql)
            .bind(conversation)
            .bind(user)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let moved = WatermarkMove {
            delivered,
            read,
            moved,
        };
        let events = if moved.moved {
            events(&moved)
        } else {
            Vec::new()
        };
        Ok((moved, commit_with_events(tx, events).await?))
    }
}

impl Store {
    /// The conversations a user takes part in, each with its newest seq: where a live
    /// subscription starts.
    pub async fn positions_of(
        &self,
        user: UserId,
    ) -> Result<Vec<(ConversationId, i64)>, StoreError> {
        Ok(sqlx::query_as::<_, (ConversationId, i64)>(
            "SELECT c.id, c.last_seq FROM participants p JOIN conversations c ON c.id = p.conversation_id
              WHERE p.user_id = $1",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The users who share at least one conversation with `user`, among `others`.
    pub async fn contacts_among(
        &self,
        user: UserId,
        others: &[UserId],
    ) -> Result<Vec<UserId>, StoreError> {
        let others: Vec<uuid::Uuid> = others.iter().map(UserId::as_uuid).collect();
        Ok(sqlx::query_scalar::<_, UserId>(
            "SELECT DISTINCT theirs.user_id FROM participants mine
               JOIN participants theirs ON theirs.conversation_id = mine.conversation_id
              WHERE mine.user_id = $1 AND theirs.user_id = ANY($2)",
        )
        .bind(user)
        .bind(others)
        .fetch_all(&self.pool)
        .await?)
    }
}
