//! Uploaded files' metadata (the bytes are in object storage).

use chat_domain::{Attachment, AttachmentId, ConversationId, Message, UserId};

use crate::{OutboxEvent, Outboxed, Store, StoreError, commit_row_with_events};

pub(crate) const ATTACHMENT_COLUMNS: &str = "id, conversation_id, message_id, uploader_id, object_key, file_name, \
     content_type, declared_type, size_bytes, sha256, width, height, thumbnail_key, state, error, created_at";

/// A file just stored, to record.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub id: AttachmentId,
    pub conversation_id: ConversationId,
    pub uploader_id: UserId,
    pub object_key: String,
    pub file_name: String,
    pub declared_type: Option<String>,
    pub size_bytes: i64,
}

/// What processing found out about a file.
#[derive(Debug, Clone)]
pub struct Processed {
    pub content_type: String,
    pub sha256: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_key: Option<String>,
}

impl Store {
    pub async fn insert_attachment(&self, new: &NewAttachment) -> Result<Attachment, StoreError> {
        Ok(sqlx::query_as::<_, Attachment>(sqlx::AssertSqlSafe(format!(
            "INSERT INTO attachments (id, conversation_id, uploader_id, object_key, file_name, declared_type, size_bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING {ATTACHMENT_COLUMNS}"
        )))
        .bind(new.id)
        .bind(new.conversation_id)
        .bind(new.uploader_id)
        .bind(&new.object_key)
        .bind(&new.file_name)
        .bind(&new.declared_type)
        .bind(new.size_bytes)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn attachment(&self, id: AttachmentId) -> Result<Option<Attachment>, StoreError> {
        Ok(sqlx::query_as::<_, Attachment>(sqlx::AssertSqlSafe(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// How many of `uploader`'s uploads are not sent yet (the upload quota).
    pub async fn unsent_uploads(&self, uploader: UserId) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM attachments WHERE uploader_id = $1 AND message_id IS NULL",
        )
        .bind(uploader)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Deletes up to 500 uploads never sent and older than `age` (skipping any a send is
    /// claiming right now); returns their object keys (files and thumbnails).
    pub async fn delete_unsent_attachments(
        &self,
        age: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query_as::<_, (String, Option<String>)>(
            "DELETE FROM attachments WHERE id IN (
                 SELECT id FROM attachments
                 WHERE message_id IS NULL AND created_at < now() - make_interval(secs => $1)
                 LIMIT 500 FOR UPDATE SKIP LOCKED)
             RETURNING object_key, thumbnail_key",
        )
        .bind(age.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .flat_map(|(object, thumbnail)| std::iter::once(object).chain(thumbnail))
            .collect())
    }

    /// Marks a pending attachment ready. `None` if it was not pending (processed before).
    pub async fn attachment_ready(
        &self,
        id: AttachmentId,
        p: &Processed,
        events: impl FnOnce(&Attachment) -> Vec<OutboxEvent>,
    ) -> Result<(Option<Attachment>, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let ready = sqlx::query_as::<_, Attachment>(sqlx::AssertSqlSafe(format!(
            "UPDATE attachments SET state = 'ready', content_type = $2, sha256 = $3, width = $4, height = $5,
                    thumbnail_key = $6, error = NULL
              WHERE id = $1 AND state = 'pending'
              RETURNING {ATTACHMENT_COLUMNS}"
        )))
        .bind(id)
        .bind(&p.content_type)
        .bind(&p.sha256)
        .bind(p.width)
        .bind(p.height)
        .bind(&p.thumbnail_key)
        .fetch_optional(&mut *tx)
        .await?;
        commit_row_with_events(tx, ready, events).await
    }

    /// Marks a pending attachment rejected. `None` if it was not pending.
    pub async fn attachment_rejected(
        &self,
        id: AttachmentId,
        content_type: Option<&str>,
        reason: &str,
        events: impl FnOnce(&Attachment) -> Vec<OutboxEvent>,
    ) -> Result<(Option<Attachment>, Outboxed), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rejected = sqlx::query_as::<_, Attachment>(sqlx::AssertSqlSafe(format!(
            "UPDATE attachments SET state = 'rejected', content_type = $2, error = $3
              WHERE id = $1 AND state = 'pending'
              RETURNING {ATTACHMENT_COLUMNS}"
        )))
        .bind(id)
        .bind(content_type)
        .bind(reason)
        .fetch_optional(&mut *tx)
        .await?;
        commit_row_with_events(tx, rejected, events).await
    }

    /// Fills in the attachments of some messages.
    pub async fn load_attachments(&self, messages: &mut [Message]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let ids: Vec<uuid::Uuid> = messages.iter().map(|m| m.id.as_uuid()).collect();
        let rows = sqlx::query_as::<_, Attachment>(sqlx::AssertSqlSafe(format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE message_id = ANY($1) ORDER BY created_at"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        for a in rows {
            if let Some(m) = messages.iter_mut().find(|m| Some(m.id) == a.message_id) {
                m.attachments.push(a);
            }
        }
        Ok(())
    }
}

impl Store {
    /// Attachments still pending after `minutes` (their job may have been lost).
    pub async fn stale_pending_attachments(
        &self,
        minutes: i32,
    ) -> Result<Vec<AttachmentId>, StoreError> {
        Ok(sqlx::query_scalar::<_, AttachmentId>(
            "SELECT id FROM attachments WHERE state = 'pending' AND created_at < now() - make_interval(mins => $1) LIMIT 1000",
        )
        .bind(minutes)
        .fetch_all(&self.pool)
        .await?)
    }
}
