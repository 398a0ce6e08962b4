//! Full-text search over a user's conversations.

use chat_domain::{Message, UserId};

use crate::{Store, StoreError};

/// A search hit.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hit {
    #[sqlx(flatten)]
    pub message: Message,
    pub rank: f32,
}

impl Store {
    /// Messages of `user`'s conversations matching `query` (web-search syntax: words,
    /// "phrases", -exclusions), accents and case folded, in Portuguese and English,
    /// best first. Hidden and deleted messages never match.
    pub async fn search(
        &self,
        user: UserId,
        query: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Hit>, StoreError> {
        Ok(sqlx::query_as::<_, Hit>(
            "WITH q AS (
                SELECT websearch_to_tsquery('portuguese', chat_fold($2))
                    || websearch_to_tsquery('english', chat_fold($2))
                    || websearch_to_tsquery('simple', chat_fold($2)) AS tsq
             )
             SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.kind, m.text, m.client_msg_id, m.reply_to,
                    m.created_at, m.edited_at, m.deleted_at, m.moderation,
                    ts_rank(m.search, q.tsq) AS rank
               FROM q, participants p
               JOIN messages m ON m.conversation_id = p.conversation_id
              WHERE p.user_id = $1
                AND m.search @@ q.tsq
                AND m.moderation <> 'hidden'
                AND m.deleted_at IS NULL
              ORDER BY rank DESC, m.created_at DESC
              LIMIT $3 OFFSET $4",
        )
        .bind(user)
        .bind(query)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Builds the search vectors of up to `limit` messages that have none yet (new or
    /// edited), oldest first; returns how many. Concurrent indexers take disjoint rows.
    pub async fn index_pending_messages(&self, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE messages m SET search = chat_search_vector(m.text)
               FROM (SELECT id FROM messages WHERE search IS NULL
                      ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED) pending
              WHERE m.id = pending.id",
        )
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
