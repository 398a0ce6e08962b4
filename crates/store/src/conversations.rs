//! Conversations and the caller's conversation list.

use std::collections::HashMap;

use chat_domain::{
    ContextType, Conversation, ConversationId, ConversationKind, ConversationSummary, Message,
    PARTICIPANT_PREVIEW, Participant, Role, UserId,
};

use sqlx::AssertSqlSafe;

use crate::{OutboxEvent, Outboxed, Store, StoreError, commit_with_events};

const CONVERSATION_COLUMNS: &str = "id, kind, name, context_type, context_id, created_by, created_at, \
                                    updated_at, last_seq, last_message_at";

/// Unread messages are counted among the newest this many seqs after the read watermark,
/// and up to [`UNREAD_CAP`]: a list costs the same however far behind its reader is.
pub const UNREAD_WINDOW: i64 = 500;
/// The most unread messages (and unread mentions) counted: the cap means "this many or
/// more" (clients show "99+").
pub const UNREAD_CAP: i64 = 100;

/// The caller's conversation list: `$1` the user, `$2`/`$3` context filters, `$4` limit,
/// `$5` offset, `$6` one conversation only, `$7` [`UNREAD_WINDOW`], `$8` [`UNREAD_CAP`].
/// Public for the plan test (`tests/tests/suite/read_plans.rs`).
pub const CONVERSATION_LIST: &str = "SELECT l.id, l.kind, l.name, l.context_type, l.context_id, l.created_by,
        l.created_at, l.updated_at, l.last_seq, l.last_message_at, l.participant_count, l.role, l.muted,
        (SELECT count(*) FROM (
            SELECT 1 FROM messages m
             WHERE m.conversation_id = l.id AND m.seq > GREATEST(l.last_read_seq, l.last_seq - $7)
               AND m.sender_id IS DISTINCT FROM l.user_id
               AND m.deleted_at IS NULL AND m.moderation <> 'hidden'
             -- In seq order, so that the (conversation_id, seq) index is the only good
             -- plan even when one conversation holds most of the table's rows.
             ORDER BY m.seq
             LIMIT $8) unread) AS unread_count,
        (SELECT count(*) FROM (
            SELECT 1 FROM mentions mn JOIN messages m ON m.id = mn.message_id
             WHERE mn.user_id = l.user_id AND mn.conversation_id = l.id AND mn.seq > l.last_read_seq
               AND m.deleted_at IS NULL AND m.moderation <> 'hidden'
             LIMIT $8) mentioned) AS unread_mentions
   FROM (
     -- The page first: the counts are then taken for its conversations only.
     SELECT c.id, c.kind, c.name, c.context_type, c.context_id, c.created_by, c.created_at,
            c.updated_at, c.last_seq, c.last_message_at, c.participant_count, p.role, p.muted,
            p.user_id, p.last_read_seq, COALESCE(c.last_message_at, c.created_at) AS active_at
       FROM participants p JOIN conversations c ON c.id = p.conversation_id
      WHERE p.user_id = $1
        AND ($2::text IS NULL OR c.context_type = $2)
        AND ($3::text IS NULL OR c.context_id = $3)
        AND ($6::uuid IS NULL OR c.id = $6)
      ORDER BY active_at DESC, c.id
      LIMIT $4 OFFSET $5) l
  ORDER BY l.active_at DESC, l.id";

/// The newest visible message of each conversation in `$1`.
pub const LAST_MESSAGES: &str =
    "SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.kind, m.text,
        m.client_msg_id, m.reply_to, m.created_at, m.edited_at, m.deleted_at, m.moderation
   FROM unnest($1::uuid[]) AS c(id),
        LATERAL (SELECT * FROM messages WHERE conversation_id = c.id AND moderation <> 'hidden'
                  ORDER BY seq DESC LIMIT 1) m";

/// The first `$2` participants (by user id) of each conversation in `$1`.
pub const PARTICIPANT_PREVIEWS: &str =
    "SELECT p.conversation_id, p.user_id, u.username, u.display_name,
        p.role, p.joined_at, p.last_delivered_seq, p.last_read_seq, p.muted
   FROM unnest($1::uuid[]) AS c(id),
        LATERAL (SELECT * FROM participants WHERE conversation_id = c.id
                  ORDER BY user_id LIMIT $2) p
   JOIN users u ON u.id = p.user_id
  ORDER BY p.conversation_id, p.user_id";

/// A conversation to create.
#[derive(Debug, Clone)]
pub struct NewConversation {
    pub id: ConversationId,
    pub kind: ConversationKind,
    pub name: Option<String>,
    pub context_type: ContextType,
    pub context_id: Option<String>,
    pub created_by: UserId,
    /// Everyone who takes part, the creator included, with their roles.
    pub participants: Vec<(UserId, Role)>,
}

/// Filters and window of a conversation list.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this conversation (to read one conversation's summary).
    pub only: Option<ConversationId>,
    pub context_type: Option<ContextType>,
    pub context_id: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Changes to a conversation's metadata; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConversationChanges {
    pub name: Option<String>,
    pub context_type: Option<ContextType>,
    pub context_id: Option<String>,
}

/// The key that makes a direct conversation between two users unique.
fn direct_key(a: UserId, b: UserId) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    #[sqlx(flatten)]
    conversation: Conversation,
    participant_count: i32,
    role: Role,
    muted: bool,
    unread_count: i64,
    unread_mentions: i64,
}

impl Store {
    /// Creates a conversation with its participants. For a direct conversation that
    /// already exists between the same two users, returns the existing one and `false`.
    /// `events` (of the new conversation) are written to the outbox only if it was created.
    pub async fn create_conversation(
        &self,
        new: &NewConversation,
        events: impl FnOnce(&Conversation) -> Vec<OutboxEvent>,
    ) -> Result<(Conversation, bool, Outboxed), StoreError> {
        let key = match new.kind {
            ConversationKind::Direct => match new.participants.as_slice() {
                [(a, _), (b, _)] => Some(direct_key(*a, *b)),
                _ => return Err(StoreError::Conflict("direct_needs_two_participants".into())),
            },
            ConversationKind::Group => None,
        };
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query_as::<_, Conversation>(AssertSqlSafe(format!(
            "INSERT INTO conversations (id, kind, name, context_type, context_id, direct_key, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (direct_key) DO NOTHING
             RETURNING {CONVERSATION_COLUMNS}"
        )))
        .bind(new.id)
        .bind(new.kind)
        .bind(&new.name)
        .bind(new.context_type)
        .bind(&new.context_id)
        .bind(&key)
        .bind(new.created_by)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(conversation) = inserted else {
            tx.rollback().await?;
            let existing = sqlx::query_as::<_, Conversation>(AssertSqlSafe(format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE direct_key = $1"
            )))
            .bind(&key)
            .fetch_one(&self.pool)
            .await?;
            return Ok((existing, false, Outboxed::default()));
        };
        let (users, roles): (Vec<uuid::Uuid>, Vec<&str>) = new
            .participants
            .iter()
            .map(|(u, r)| (u.as_uuid(), r.as_str()))
            .unzip();
        sqlx::query(
            "INSERT INTO participants (conversation_id, user_id, role)
             SELECT $1, u, r FROM unnest($2::uuid[], $3::text[]) AS t(u, r)",
        )
        .bind(conversation.id)
        .bind(users)
        .bind(roles)
        .execute(&mut *tx)
        .await?;
        let outboxed = commit_with_events(tx, events(&conversation)).await?;
        Ok((conversation, true, outboxed))
    }

    pub async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        Ok(sqlx::query_as::<_, Conversation>(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The user's conversations, most recently active first, each with its participants,
    /// last visible message and the user's unread count.
    pub async fn conversations_of(
        &self,
        user: UserId,
        filter: &ConversationFilter,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let rows = sqlx::query_as::<_, MembershipRow>(CONVERSATION_LIST)
            .bind(user)
            .bind(filter.context_type)
            .bind(&filter.context_id)
            .bind(filter.limit)
            .bind(filter.offset)
            .bind(filter.only)
            .bind(UNREAD_WINDOW)
            .bind(UNREAD_CAP)
            .fetch_all(&self.pool)
            .await?;
        let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.conversation.id.as_uuid()).collect();
        let mut participants = self.participant_previews(&ids).await?;
        let mut last_messages: HashMap<ConversationId, Message> =
            sqlx::query_as::<_, Message>(LAST_MESSAGES)
                .bind(&ids)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|m| (m.conversation_id, m))
                .collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let id = row.conversation.id;
                ConversationSummary {
                    participants: participants.remove(&id).unwrap_or_default(),
                    participant_count: i64::from(row.participant_count),
                    last_message: last_messages.remove(&id),
                    unread_count: row.unread_count,
                    unread_mentions: row.unread_mentions,
                    my_role: row.role,
                    muted: row.muted,
                    conversation: row.conversation,
                }
            })
            .collect())
    }

    /// The first [`PARTICIPANT_PREVIEW`] participants (by user id) of each conversation:
    /// a bounded read whatever their size.
    async fn participant_previews(
        &self,
        ids: &[uuid::Uuid],
    ) -> Result<HashMap<ConversationId, Vec<Participant>>, StoreError> {
        let rows = sqlx::query_as::<_, Participant>(PARTICIPANT_PREVIEWS)
            .bind(ids)
            .bind(PARTICIPANT_PREVIEW as i64)
            .fetch_all(&self.pool)
            .await?;
        let mut map: HashMap<ConversationId, Vec<Participant>> = HashMap::new();
        for p in rows {
            map.entry(p.conversation_id).or_default().push(p);
        }
        Ok(map)
    }

    /// Changes metadata and bumps `updated_at`.
    pub async fn update_conversation(
        &self,
        id: ConversationId,
        changes: &ConversationChanges,
        events: impl FnOnce(&Conversation) -> Vec<OutboxEvent>,
    ) -> Result<(Conversation, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query_as::<_, Conversation>(AssertSqlSafe(format!(
            "UPDATE conversations
                SET name = COALESCE($2, name),
                    context_type = COALESCE($3, context_type),
                    context_id = COALESCE($4, context_id),
                    updated_at = now()
              WHERE id = $1
              RETURNING {CONVERSATION_COLUMNS}"
        )))
        .bind(id)
        .bind(&changes.name)
        .bind(changes.context_type)
        .bind(&changes.context_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let outboxed = commit_with_events(tx, events(&updated)).await?;
        Ok((updated, outboxed))
    }

    /// Deletes a conversation with its participants and messages.
    pub async fn delete_conversation(
        &self,
        id: ConversationId,
        events: Vec<OutboxEvent>,
    ) -> Result<Outboxed, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        commit_with_events(tx, events).await
    }
}
