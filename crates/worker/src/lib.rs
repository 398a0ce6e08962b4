//! `chat-worker`: the background work, run by any number of worker processes sharing
//! the Redis queues (see `chat-jobs`, the only crate that knows apalis).
//!
//! - [`attachments`]: sniff an upload's real type from its bytes, refuse disallowed
//!   types, hash it, make a thumbnail of images, mark it ready.
//! - [`exports`]: stream a conversation's visible history into a JSON or CSV file.
//!
//! Every handler is idempotent (a job may run again after a worker dies): it reads the
//! current state first and does nothing for work already done.

pub mod attachments;
pub mod exports;

use chat_jobs::{ExportConversation, JobFailure, JobHandlers, ProcessAttachment, MAX_ATTEMPTS};
use chat_service::{ChatService, ServiceError};

/// Settings of the worker process.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerSettings {
    /// Jobs run at once by this process.
    #[arg(long, env = "CHAT_WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
}

/// The handlers, over the service layer.
#[derive(Clone)]
pub struct Handlers {
    pub service: ChatService,
}

/// Dependencies that are down are worth a retry; bugs and bad data are not.
pub(crate) fn failure(e: ServiceError) -> JobFailure {
    match e {
        ServiceError::Unavailable => JobFailure::Retry(e.to_string()),
        ServiceError::Internal(m) => JobFailure::Retry(m),
        other => JobFailure::Permanent(other.to_string()),
    }
}

impl JobHandlers for Handlers {
    async fn process_attachment(&self, job: ProcessAttachment, attempt: usize) -> Result<(), JobFailure> {
        tracing::info!(attachment = %job.attachment_id, attempt, "processing attachment");
        attachments::process(&self.service, job.attachment_id.into()).await
    }

    async fn export_conversation(&self, job: ExportConversation, attempt: usize) -> Result<(), JobFailure> {
        tracing::info!(export = %job.export_id, attempt, "exporting");
        let result = exports::run(&self.service, job.export_id).await;
        if let Err(e) = &result {
            // The last attempt: say so on the export, so the requester is not left waiting.
            if matches!(e, JobFailure::Permanent(_)) || attempt >= MAX_ATTEMPTS {
                let _ = self.service.export_failed(job.export_id, &e.to_string()).await;
            }
        }
        result
    }
}
