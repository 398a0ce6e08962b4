//! `chat-worker`: the background work, run by any number of worker processes sharing
//! the Redis queues (see `chat-jobs`, the only crate that knows apalis).
//!
//! - [`attachments`]: sniff an upload's real type from its bytes, refuse disallowed
//!   types, hash it, make a thumbnail of images, mark it ready.
//! - [`exports`]: stream a conversation's visible history into a JSON or CSV file.
//! - [`notifications`]: signed webhook deliveries with backoff and a dead-letter state.
//!
//! Every handler is idempotent (a job may run again after a worker dies): it reads the
//! current state first and does nothing for work already done.

pub mod attachments;
pub mod endpoints;
pub mod exports;
pub mod notifications;

use chat_jobs::{
    DeliverNotification, ExportConversation, JobFailure, JobHandlers, MAX_ATTEMPTS, NotifyMessage,
    ProcessAttachment,
};
use chat_service::{ChatService, ServiceError};
use tracing::Instrument;

/// Settings of the worker process.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerSettings {
    /// Jobs run at once by this process.
    #[arg(long, env = "CHAT_WORKER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,
    /// The installation's webhook: notified for every user (besides users' own webhooks).
    #[arg(long, env = "CHAT_NOTIFY_WEBHOOK_URL")]
    pub notify_webhook_url: Option<String>,
    /// Secret that signs the installation's webhook calls.
    #[arg(long, env = "CHAT_NOTIFY_WEBHOOK_SECRET", hide_env_values = true)]
    pub notify_webhook_secret: Option<String>,
    /// Delivery attempts before a notification is dead-lettered.
    #[arg(long, env = "CHAT_NOTIFY_MAX_ATTEMPTS", default_value_t = 6)]
    pub notify_max_attempts: u32,
    /// Allow webhooks on loopback and private addresses (off by default: a user's webhook
    /// must not reach internal services).
    #[arg(long, env = "CHAT_NOTIFY_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub notify_allow_private: bool,
    /// First retry delay in milliseconds; it doubles at every attempt (whole seconds).
    #[arg(long, env = "CHAT_NOTIFY_BACKOFF_MS", default_value_t = 1000)]
    pub notify_backoff_ms: u64,
    /// Seconds between sweeps (stale jobs queued again, expired files and sessions deleted).
    #[arg(long, env = "CHAT_SWEEP_SECS", default_value_t = 60)]
    pub sweep_secs: u64,
    /// Seconds an upload that was never sent is kept; then it is deleted.
    #[arg(long, env = "CHAT_UNSENT_UPLOAD_TTL_SECS", default_value_t = 24 * 3600)]
    pub unsent_upload_ttl_secs: u64,
    /// Seconds a finished (or failed) export is kept; then it is deleted.
    #[arg(long, env = "CHAT_EXPORT_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub export_ttl_secs: u64,
}

impl WorkerSettings {
    pub fn notify_backoff(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.notify_backoff_ms.max(1000))
    }
}

/// The handlers, over the service layer.
#[derive(Clone)]
pub struct Handlers {
    pub service: ChatService,
    pub settings: WorkerSettings,
    pub webhooks: notifications::WebhookClients,
}

impl Handlers {
    pub fn new(service: ChatService, settings: WorkerSettings) -> Self {
        Self {
            service,
            settings,
            webhooks: notifications::WebhookClients::new(),
        }
    }
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
    async fn process_attachment(
        &self,
        job: ProcessAttachment,
        attempt: usize,
    ) -> Result<(), JobFailure> {
        let span =
            tracing::info_span!("process_attachment", attachment = %job.attachment_id, attempt);
        let span = chat_telemetry::continue_trace(span, job.traceparent.as_deref());
        attachments::process(&self.service, job.attachment_id.into())
            .instrument(span)
            .await
    }

    async fn export_conversation(
        &self,
        job: ExportConversation,
        attempt: usize,
    ) -> Result<(), JobFailure> {
        let span = tracing::info_span!("export_conversation", export = %job.export_id, attempt);
        let span = chat_telemetry::continue_trace(span, job.traceparent.as_deref());
        let result = exports::run(&self.service, job.export_id)
            .instrument(span)
            .await;
        if let Err(e) = &result {
            // The last attempt: say so on the export, so the requester is not left waiting.
            if matches!(e, JobFailure::Permanent(_)) || attempt >= MAX_ATTEMPTS {
                let _ = self
                    .service
                    .export_failed(job.export_id, &e.to_string())
                    .await;
            }
        }
        result
    }

    async fn notify_message(&self, job: NotifyMessage, _attempt: usize) -> Result<(), JobFailure> {
        let span = tracing::info_span!("notify_message", message = %job.message_id);
        let span = chat_telemetry::continue_trace(span, job.traceparent.as_deref());
        notifications::fan_out(&self.service, &self.settings, job)
            .instrument(span)
            .await
    }

    async fn deliver_notification(&self, job: DeliverNotification) -> Result<(), JobFailure> {
        notifications::deliver(&self.service, &self.settings, &self.webhooks, job).await
    }
}

/// Keeps full-text search up to date: indexes messages sent or edited since the last
/// round, in batches, every `interval` (and at once again while there is a backlog).
/// Several workers share the work without overlap.
pub async fn index_search(service: ChatService, interval: std::time::Duration) {
    const BATCH: i64 = 2000;
    loop {
        match service.index_new_messages(BATCH).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "search indexing failed; retrying"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// Every `CHAT_SWEEP_SECS`: queues again the work whose jobs may have been lost (see
/// `ChatService::requeue_stale_jobs`), and deletes what has expired: uploads never sent,
/// old exports, sessions that ended a week ago. Runs until dropped.
pub async fn sweep(service: ChatService, settings: WorkerSettings) {
    let mut tick =
        tokio::time::interval(std::time::Duration::from_secs(settings.sweep_secs.max(1)));
    let unsent = std::time::Duration::from_secs(settings.unsent_upload_ttl_secs);
    let exports = std::time::Duration::from_secs(settings.export_ttl_secs);
    loop {
        tick.tick().await;
        match service.requeue_stale_jobs(2).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requeued = n, "queued stale jobs again"),
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
        match service.expire_files(unsent, exports).await {
            Ok((0, 0)) => {}
            Ok((uploads, exports)) => {
                tracing::info!(uploads, exports, "deleted expired uploads and exports")
            }
            Err(e) => tracing::warn!(error = %e, "file expiry failed"),
        }
        match service.forget_ended_sessions().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "deleted ended sessions"),
            Err(e) => tracing::warn!(error = %e, "session sweep failed"),
        }
    }
}
