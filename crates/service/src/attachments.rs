//! Attachments: streamed upload into object storage, processing by the workers, and
//! downloads for participants only.

use bytes::Bytes;
use chat_domain::{
    Attachment, AttachmentId, AttachmentState, ConversationId, EventPayload, ValidationError,
    validate,
};
use chat_jobs::ProcessAttachment;
use chat_storage::StorageError;
use chat_store::attachments::{NewAttachment, Processed};
use futures::Stream;
use futures::stream::BoxStream;

use crate::{Caller, ChatService, ServiceError};

/// How a participant gets a file's bytes.
pub enum Download {
    /// A short-lived signed URL (S3): redirect there.
    Url(String),
    /// The bytes, streamed through the API (local directory).
    Stream {
        size: u64,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    },
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::TooLarge { limit } => ServiceError::TooLarge { limit },
            StorageError::NotFound => ServiceError::NotFound("file"),
            StorageError::Upload(e) => {
                ValidationError::new("file", format!("the upload was interrupted: {e}")).into()
            }
            other => {
                tracing::warn!(error = %other, "object storage unavailable");
                ServiceError::Unavailable
            }
        }
    }
}

/// Uploads one person may have that are not sent yet (in all conversations). With the
/// size limit this bounds what one account holds in storage unsent; they expire anyway
/// (the worker's sweep, `CHAT_UNSENT_UPLOAD_TTL_SECS`).
pub const MAX_UNSENT_UPLOADS: i64 = 50;

impl ChatService {
    /// Whether `caller` may upload into `conversation` now: a participant, under the
    /// quota of unsent uploads. Checked before the body is read, and again after.
    pub async fn admit_upload(
        &self,
        caller: &Caller,
        conversation: ConversationId,
    ) -> Result<(), ServiceError> {
        self.membership(caller, conversation).await?;
        if self.store.unsent_uploads(caller.user_id).await? >= MAX_UNSENT_UPLOADS {
            return Err(ServiceError::conflict(
                "too_many_uploads",
                format!(
                    "you have {MAX_UNSENT_UPLOADS} uploads not sent yet; send them, or wait for \
                     them to expire"
                ),
            ));
        }
        Ok(())
    }

    /// Stores an upload for a conversation (streamed, stopped at the size limit, nothing
    /// left behind) and queues it for processing. It can be sent once `ready`.
    pub async fn upload_attachment<S>(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        file_name: &str,
        declared_type: Option<&str>,
        body: S,
    ) -> Result<Attachment, ServiceError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send,
    {
        let file_name = validate::file_name(file_name)?;
        self.admit_upload(caller, conversation).await?;
        let key = chat_storage::new_key("attachments");
        let size = self
            .files
            .storage
            .put_stream(&key, body, self.files.max_upload_bytes)
            .await?;
        if size == 0 {
            self.files.storage.delete(&key).await?;
            return Err(ValidationError::new("file", "the file is empty").into());
        }
        let new = NewAttachment {
            id: AttachmentId::new(),
            conversation_id: conversation,
            uploader_id: caller.user_id,
            object_key: key.clone(),
            file_name,
            declared_type: declared_type.map(|t| t.chars().take(255).collect()),
            size_bytes: size as i64,
        };
        let attachment = match self.store.insert_attachment(&new).await {
            Ok(a) => a,
            Err(e) => {
                let _ = self.files.storage.delete(&key).await;
                return Err(e.into());
            }
        };
        let job = ProcessAttachment {
            attachment_id: attachment.id.as_uuid(),
            traceparent: chat_telemetry::current_traceparent(),
        };
        if let Err(e) = self.files.jobs.process_attachment(job).await {
            // The row stays `pending`; the workers' sweep queues it again (`requeue_stale_jobs`).
            tracing::warn!(error = %e, attachment = %attachment.id, "processing not queued yet");
        }
        Ok(attachment)
    }

    /// An attachment's metadata, for participants of its conversation.
    pub async fn attachment(
        &self,
        caller: &Caller,
        id: AttachmentId,
    ) -> Result<Attachment, ServiceError> {
        let not_found = || ServiceError::NotFound("attachment");
        let attachment = self.store.attachment(id).await?.ok_or_else(not_found)?;
        let me = self
            .membership(caller, attachment.conversation_id)
            .await
            .map_err(|_| not_found())?;
        // A sent file is as visible as its message: a hidden message's files are the
        // moderators', and a deleted message's files are gone.
        if let Some(message_id) = attachment.message_id {
            {
                let message = self
                    .store
                    .message(attachment.conversation_id, message_id)
                    .await?
                    .ok_or_else(not_found)?;
                let hidden = message.moderation == chat_domain::ModerationState::Hidden;
                if message.deleted_at.is_some() || (hidden && !me.role.can_moderate()) {
                    return Err(not_found());
                }
            }
        }
        Ok(attachment)
    }

    /// For the worker's sweep: deletes uploads never sent within `unsent`, and exports
    /// finished more than `exports` ago, rows and files. Returns how many files of each.
    pub async fn expire_files(
        &self,
        unsent: std::time::Duration,
        exports: std::time::Duration,
    ) -> Result<(usize, usize), ServiceError> {
        let uploads = self.store.delete_unsent_attachments(unsent).await?;
        let old_exports = self.store.delete_old_exports(exports).await?;
        let counts = (uploads.len(), old_exports.len());
        self.forget_objects(uploads).await;
        self.forget_objects(old_exports).await;
        Ok(counts)
    }

    /// Deletes stored objects whose rows are gone. A failure leaves an orphan in the
    /// bucket (logged), never a file someone can still reach: its row is gone already.
    pub(crate) async fn forget_objects(&self, keys: Vec<String>) {
        for key in keys {
            if let Err(e) = self.files.storage.delete(&key).await {
                tracing::warn!(error = %e, %key, "could not delete a file's object");
            }
        }
    }

    /// The bytes of a ready attachment (or of its thumbnail), for participants.
    pub async fn download_attachment(
        &self,
        caller: &Caller,
        id: AttachmentId,
        thumbnail: bool,
    ) -> Result<(Attachment, Download), ServiceError> {
        let attachment = self.attachment(caller, id).await?;
        if attachment.state != AttachmentState::Ready {
            return Err(ServiceError::conflict(
                "attachment_not_ready",
                "the file is not processed yet (or was rejected)",
            ));
        }
        let key = if thumbnail {
            attachment
                .thumbnail_key
                .clone()
                .ok_or(ServiceError::NotFound("thumbnail"))?
        } else {
            attachment.object_key.clone()
        };
        if let Some(url) = self.files.storage.download_url(&key).await? {
            return Ok((attachment, Download::Url(url)));
        }
        let (size, body) = self.files.storage.get_stream(&key).await?;
        Ok((attachment, Download::Stream { size, body }))
    }

    /// For the worker: the stored bytes of a pending attachment (`None` if it is not
    /// pending any more: processed before, so nothing to do).
    pub async fn pending_attachment_bytes(
        &self,
        id: AttachmentId,
    ) -> Result<Option<(Attachment, Bytes)>, ServiceError> {
        let Some(attachment) = self.store.attachment(id).await? else {
            return Ok(None);
        };
        if attachment.state != AttachmentState::Pending {
            return Ok(None);
        }
        let bytes = self.files.storage.get(&attachment.object_key).await?;
        Ok(Some((attachment, bytes)))
    }

    /// For the worker: stores a thumbnail, returning its key.
    pub async fn store_thumbnail(&self, png: Bytes) -> Result<String, ServiceError> {
        let key = chat_storage::new_key("thumbnails");
        self.files.storage.put(&key, png).await?;
        Ok(key)
    }

    /// For the worker: marks an attachment ready and tells the conversation.
    pub async fn attachment_processed(
        &self,
        id: AttachmentId,
        processed: Processed,
    ) -> Result<(), ServiceError> {
        let events = |a: &chat_domain::Attachment| {
            vec![self.event(
                a.conversation_id,
                a.uploader_id,
                EventPayload::AttachmentReady {
                    attachment: a.clone(),
                },
            )]
        };
        let (_, outboxed) = self.store.attachment_ready(id, &processed, events).await?;
        self.announce(outboxed);
        Ok(())
    }

    /// For the worker: refuses an attachment, deletes its bytes, and tells the uploader's
    /// conversation why.
    pub async fn attachment_refused(
        &self,
        id: AttachmentId,
        content_type: Option<&str>,
        reason: &str,
    ) -> Result<(), ServiceError> {
        let events = |a: &chat_domain::Attachment| {
            let payload = EventPayload::AttachmentRejected {
                attachment_id: a.id,
                uploader_id: a.uploader_id,
                reason: reason.to_owned(),
            };
            vec![self.event(a.conversation_id, a.uploader_id, payload)]
        };
        let (rejected, outboxed) = self
            .store
            .attachment_rejected(id, content_type, reason, events)
            .await?;
        if let Some(attachment) = rejected {
            self.files.storage.delete(&attachment.object_key).await?;
        }
        self.announce(outboxed);
        Ok(())
    }

    /// Whether an object exists in storage (for tests and checks).
    pub async fn object_exists(&self, key: &str) -> Result<bool, ServiceError> {
        Ok(self.files.storage.exists(key).await?)
    }

    /// Largest upload accepted, in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.files.max_upload_bytes
    }
}
