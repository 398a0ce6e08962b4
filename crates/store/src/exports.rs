//! History exports.

use chat_domain::{ConversationId, Export, ExportFormat, ExportRow, UserId};
use chrono::{DateTime, Utc};

use crate::{OutboxEvent, Outboxed, Store, StoreError, commit_row_with_events};

const EXPORT_COLUMNS: &str = "id, conversation_id, requested_by, format, since, until, state, progress, total, \
     attempts, object_key, row_count, error, created_at, started_at, finished_at";

/// What asking for an export came to.
#[derive(Debug)]
pub enum ExportRequest {
    /// A new export, to queue.
    New(Export),
    /// The same request is unfinished or was just made: this is it.
    Same(Export),
    /// The requester has too many exports unfinished.
    TooMany,
}

impl Store {
    /// Records an export request, unless the same one (same requester, conversation,
    /// format and range) is unfinished or was made within `window`: then that one is
    /// returned. A requester with `max_unfinished` exports queued or running is refused.
    /// Serialised per requester, so two identical requests at once make one export.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_export(
        &self,
        conversation: ConversationId,
        by: UserId,
        format: ExportFormat,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        window: std::time::Duration,
        max_unfinished: i64,
    ) -> Result<ExportRequest, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('export:' || $1::text, 0))")
            .bind(by)
            .execute(&mut *tx)
            .await?;
        let same = sqlx::query_as::<_, Export>(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPORT_COLUMNS} FROM exports
              WHERE requested_by = $1 AND conversation_id = $2 AND format = $3
                AND since IS NOT DISTINCT FROM $4 AND until IS NOT DISTINCT FROM $5
                AND (state IN ('queued', 'running')
                     OR (state = 'done' AND created_at > now() - make_interval(secs => $6)))
              ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(by)
        .bind(conversation)
        .bind(format)
        .bind(since)
        .bind(until)
        .bind(window.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(existing) = same {
            tx.commit().await?;
            return Ok(ExportRequest::Same(existing));
        }
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM exports WHERE requested_by = $1 AND state IN ('queued', 'running')",
        )
        .bind(by)
        .fetch_one(&mut *tx)
        .await?;
        if unfinished >= max_unfinished {
            return Ok(ExportRequest::TooMany);
        }
        let export = sqlx::query_as::<_, Export>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO exports (id, conversation_id, requested_by, format, since, until)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {EXPORT_COLUMNS}"
        )))
        .bind(uuid::Uuid::now_v7())
        .bind(conversation)
        .bind(by)
        .bind(format)
        .bind(since)
        .bind(until)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ExportRequest::New(export))
    }

    /// Deletes up to 500 exports that finished (or failed) more than `age` ago; returns
    /// the keys of their files.
    pub async fn delete_old_exports(
        &self,
        age: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        let keys = sqlx::query_scalar::<_, Option<String>>(
            "DELETE FROM exports WHERE id IN (
                 SELECT id FROM exports
                 WHERE state IN ('done', 'failed') AND finished_at < now() - make_interval(secs => $1)
                 LIMIT 500 FOR UPDATE SKIP LOCKED)
             RETURNING object_key",
        )
        .bind(age.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(keys.into_iter().flatten().collect())
    }

    pub async fn export(&self, id: uuid::Uuid) -> Result<Option<Export>, StoreError> {
        Ok(sqlx::query_as::<_, Export>(sqlx::AssertSqlSafe(format!(
            "SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Starts (or restarts, after a crash) an export: running, progress 0, the total
    /// counted now. `None` if it is already done.
    pub async fn start_export(&self, id: uuid::Uuid) -> Result<Option<Export>, StoreError> {
        Ok(sqlx::query_as::<_, Export>(sqlx::AssertSqlSafe(format!(
            "UPDATE exports e SET state = 'running', progress = 0, attempts = attempts + 1,
                    started_at = now(), error = NULL,
                    total = (SELECT count(*) FROM messages m
                              WHERE m.conversation_id = e.conversation_id AND m.moderation <> 'hidden'
                                AND m.deleted_at IS NULL
                                AND m.created_at >= COALESCE(e.since, '-infinity')
                                AND m.created_at <= COALESCE(e.until, 'infinity'))
              WHERE id = $1 AND state IN ('queued', 'running', 'failed')
              RETURNING {EXPORT_COLUMNS}"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn export_progress(&self, id: uuid::Uuid, progress: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE exports SET progress = $2 WHERE id = $1 AND state = 'running'")
            .bind(id)
            .bind(progress)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn finish_export(
        &self,
        id: uuid::Uuid,
        key: &str,
        rows: i64,
        events: impl FnOnce(&Export) -> Vec<OutboxEvent>,
    ) -> Result<(Export, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query_as::<_, Export>(sqlx::AssertSqlSafe(format!(
            "UPDATE exports SET state = 'done', object_key = $2, row_count = $3, progress = $3, finished_at = now()
              WHERE id = $1 RETURNING {EXPORT_COLUMNS}"
        )))
        .bind(id)
        .bind(key)
        .bind(rows)
        .fetch_optional(&mut *tx)
        .await?;
        match commit_row_with_events(tx, done, events).await? {
            (Some(export), outboxed) => Ok((export, outboxed)),
            (None, _) => Err(StoreError::NotFound),
        }
    }

    pub async fn fail_export(
        &self,
        id: uuid::Uuid,
        error: &str,
        events: impl FnOnce(&Export) -> Vec<OutboxEvent>,
    ) -> Result<(Option<Export>, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let failed = sqlx::query_as::<_, Export>(sqlx::AssertSqlSafe(format!(
            "UPDATE exports SET state = 'failed', error = $2, finished_at = now()
              WHERE id = $1 AND state <> 'done' RETURNING {EXPORT_COLUMNS}"
        )))
        .bind(id)
        .bind(error)
        .fetch_optional(&mut *tx)
        .await?;
        commit_row_with_events(tx, failed, events).await
    }

    /// The next page of an export's rows after `after_seq`: visible (not hidden, not
    /// deleted) messages in the export's window, in seq order.
    pub async fn export_rows(
        &self,
        export: &Export,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>, StoreError> {
        Ok(sqlx::query_as::<_, ExportRow>(
            "SELECT m.id, COALESCE(u.username, 'system') AS remetente, m.kind AS tipo, m.text AS conteudo,
                    m.created_at AS timestamp, m.seq
               FROM messages m LEFT JOIN users u ON u.id = m.sender_id
              WHERE m.conversation_id = $1 AND m.seq > $2
                AND m.moderation <> 'hidden' AND m.deleted_at IS NULL
                AND m.created_at >= COALESCE($3, '-infinity') AND m.created_at <= COALESCE($4, 'infinity')
              ORDER BY m.seq LIMIT $5",
        )
        .bind(export.conversation_id)
        .bind(after_seq)
        .bind(export.since)
        .bind(export.until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl Store {
    /// Exports not finished after `minutes` (their job may have been lost).
    pub async fn stale_exports(&self, minutes: i32) -> Result<Vec<uuid::Uuid>, StoreError> {
        Ok(sqlx::query_scalar::<_, uuid::Uuid>(
            "SELECT id FROM exports WHERE state IN ('queued', 'running')
                AND COALESCE(started_at, created_at) < now() - make_interval(mins => $1) LIMIT 1000",
        )
        .bind(minutes)
        .fetch_all(&self.pool)
        .await?)
    }
}
