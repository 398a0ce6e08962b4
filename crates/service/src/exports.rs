//! History exports: requested by a participant, written by a worker, downloaded by
//! participants.

use chat_domain::{
    ConversationId, EventPayload, Export, ExportFormat, ExportRow, ExportState, ValidationError,
};
use chat_jobs::ExportConversation;
use chrono::{DateTime, Utc};

use chat_store::exports::ExportRequest;

use crate::attachments::Download;
use crate::{Caller, ChatService, ServiceError};

/// How long a finished export answers an identical request instead of a new one.
pub const SAME_EXPORT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Most exports one user may have queued or running.
pub const MAX_UNFINISHED_EXPORTS: i64 = 3;

impl ChatService {
    /// Queues an export of the conversation's visible messages (optionally within a time
    /// window). Any participant. The same request while one is unfinished, or within
    /// [`SAME_EXPORT_WINDOW`] of one that finished, returns that one: a reloaded page or a
    /// replayed link does not start another job.
    pub async fn request_export(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        format: ExportFormat,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Export, ServiceError> {
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(ValidationError::new("since", "must not be after until").into());
        }
        self.membership(caller, conversation).await?;
        let request = self
            .store
            .insert_export(
                conversation,
                caller.user_id,
                format,
                since,
                until,
                SAME_EXPORT_WINDOW,
                MAX_UNFINISHED_EXPORTS,
            )
            .await?;
        let export = match request {
            ExportRequest::New(export) => export,
            ExportRequest::Same(export) => return Ok(export),
            ExportRequest::TooMany => {
                return Err(ServiceError::conflict(
                    "too_many_exports",
                    format!(
                        "you have {MAX_UNFINISHED_EXPORTS} exports in progress; wait for one to finish"
                    ),
                ));
            }
        };
        let job = ExportConversation {
            export_id: export.id,
            traceparent: chat_telemetry::current_traceparent(),
        };
        if let Err(e) = self.files.jobs.export_conversation(job).await {
            // The requester gets the error here: no event.
            let reason = "the job queue is unavailable; request the export again";
            self.store
                .fail_export(export.id, reason, |_| Vec::new())
                .await?;
            tracing::warn!(error = %e, export = %export.id, "export not queued");
            return Err(ServiceError::Unavailable);
        }
        Ok(export)
    }

    /// An export's state and progress (participants of its conversation).
    pub async fn export(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: uuid::Uuid,
    ) -> Result<Export, ServiceError> {
        self.membership(caller, conversation).await?;
        self.store
            .export(id)
            .await?
            .filter(|e| e.conversation_id == conversation)
            .ok_or(ServiceError::NotFound("export"))
    }

    /// A finished export's file.
    pub async fn download_export(
        &self,
        caller: &Caller,
        conversation: ConversationId,
        id: uuid::Uuid,
    ) -> Result<(Export, Download), ServiceError> {
        let export = self.export(caller, conversation, id).await?;
        let key = match (&export.state, &export.object_key) {
            (ExportState::Done, Some(key)) => key.clone(),
            _ => {
                return Err(ServiceError::conflict(
                    "export_not_ready",
                    "the export has not finished",
                ));
            }
        };
        if let Some(url) = self.files.storage.download_url(&key).await? {
            return Ok((export, Download::Url(url)));
        }
        let (size, body) = self.files.storage.get_stream(&key).await?;
        Ok((export, Download::Stream { size, body }))
    }

    /// For the worker: (re)starts an export. `None` when it is already done.
    pub async fn start_export(&self, id: uuid::Uuid) -> Result<Option<Export>, ServiceError> {
        Ok(self.store.start_export(id).await?)
    }

    /// For the worker: the next page of rows after `after_seq`.
    pub async fn export_rows(
        &self,
        export: &Export,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<ExportRow>, ServiceError> {
        Ok(self.store.export_rows(export, after_seq, limit).await?)
    }

    /// For the worker: records progress.
    pub async fn export_progress(&self, id: uuid::Uuid, progress: i64) -> Result<(), ServiceError> {
        Ok(self.store.export_progress(id, progress).await?)
    }

    /// For the worker: a writer for an export's file.
    pub async fn export_writer(
        &self,
        key: &str,
    ) -> Result<chat_storage::ObjectWriter, ServiceError> {
        Ok(self.files.storage.writer(key).await?)
    }

    /// For the worker: marks an export done and tells its conversation (the requester
    /// is named in the event).
    pub async fn export_finished(
        &self,
        id: uuid::Uuid,
        key: &str,
        rows: i64,
    ) -> Result<(), ServiceError> {
        let (_, outboxed) = self
            .store
            .finish_export(id, key, rows, |e| self.export_finished_event(e))
            .await?;
        self.announce(outboxed);
        Ok(())
    }

    /// For the worker: marks an export failed for good and says so.
    pub async fn export_failed(&self, id: uuid::Uuid, error: &str) -> Result<(), ServiceError> {
        let (_, outboxed) = self
            .store
            .fail_export(id, error, |e| self.export_finished_event(e))
            .await?;
        self.announce(outboxed);
        Ok(())
    }

    fn export_finished_event(&self, export: &chat_domain::Export) -> Vec<chat_store::OutboxEvent> {
        let payload = EventPayload::ExportFinished {
            export: export.clone(),
        };
        vec![self.event(export.conversation_id, export.requested_by, payload)]
    }
}

impl ChatService {
    /// For the worker: queues again the attachments and exports whose jobs may have been
    /// lost (Redis restarted empty, or the queue was down when they were requested).
    /// Pushing is idempotent by id, so work still queued or running is not doubled.
    pub async fn requeue_stale_jobs(&self, minutes: i32) -> Result<usize, ServiceError> {
        let mut queued = 0;
        for id in self.store.stale_pending_attachments(minutes).await? {
            let job = chat_jobs::ProcessAttachment {
                attachment_id: id.as_uuid(),
                traceparent: None,
            };
            if self.files.jobs.process_attachment(job).await.is_ok() {
                queued += 1;
            }
        }
        for id in self.store.stale_exports(minutes).await? {
            if self
                .files
                .jobs
                .export_conversation(ExportConversation {
                    export_id: id,
                    traceparent: None,
                })
                .await
                .is_ok()
            {
                queued += 1;
            }
        }
        Ok(queued)
    }
}
