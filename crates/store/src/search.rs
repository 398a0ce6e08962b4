//! Full-text search over a user's conversations.

use chat_domain::{Message, MessageId, UserId};
use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A search hit.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hit {
    #[sqlx(flatten)]
    pub message: Message,
    pub rank: f32,
}

impl Hit {
    /// Where the next page starts: right after this hit.
    pub fn position(&self) -> SearchPosition {
        SearchPosition {
            rank: self.rank,
            created_at: self.message.created_at,
            id: self.message.id,
        }
    }
}

/// A place in the order of search results (best rank first, then newest, then by id):
/// the next page is what comes after it, found by comparison instead of by counting
/// skipped rows, so a deep page costs what the first one does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchPosition {
    pub rank: f32,
    pub created_at: DateTime<Utc>,
    pub id: MessageId,
}

/// Matches of `$2` in `$1`'s conversations after the position (`$4`, `$5`, `$6`, or from
/// the start when `$4` is null), best first, at most `$3`. The matches come from the GIN
/// index over `messages.search`; the cost is the number of matches, whatever the size of
/// the conversations or the depth of the page.
pub const SEARCH: &str = "WITH q AS (
        SELECT websearch_to_tsquery('portuguese', chat_fold($2))
            || websearch_to_tsquery('english', chat_fold($2))
            || websearch_to_tsquery('simple', chat_fold($2)) AS tsq
     )
     SELECT * FROM (
        SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.kind, m.text, m.client_msg_id,
               m.reply_to, m.created_at, m.edited_at, m.deleted_at, m.moderation,
               ts_rank(m.search, q.tsq) AS rank
          FROM q, participants p
          JOIN messages m ON m.conversation_id = p.conversation_id
         WHERE p.user_id = $1
           AND m.search @@ q.tsq
           AND m.moderation <> 'hidden'
           AND m.deleted_at IS NULL) hits
      WHERE $4::real IS NULL OR (rank, created_at, id) < ($4, $5, $6)
      ORDER BY rank DESC, created_at DESC, id DESC
      LIMIT $3";

impl Store {
    /// Messages of `user`'s conversations matching `query` (web-search syntax: words,
    /// "phrases", -exclusions), accents and case folded, in Portuguese and English,
    /// best first, starting after `after`. Hidden and deleted messages never match.
    pub async fn search(
        &self,
        user: UserId,
        query: &str,
        limit: i64,
        after: Option<SearchPosition>,
    ) -> Result<Vec<Hit>, StoreError> {
        Ok(sqlx::query_as::<_, Hit>(SEARCH)
            .bind(user)
            .bind(query)
            .bind(limit)
            .bind(after.map(|a| a.rank))
            .bind(after.map(|a| a.created_at))
            .bind(after.map(|a| a.id))
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
