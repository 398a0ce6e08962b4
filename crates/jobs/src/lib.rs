//! Background jobs: the only crate that knows apalis.
//!
//! - [`Jobs`]: pushes jobs from any process (the API, the service layer).
//! - [`run_workers`]: runs the worker side, calling a [`JobHandlers`] implementation for
//!   each job; the handlers themselves (in `chat-worker`) know nothing about apalis.
//!
//! Queues live in Redis under `{prefix}jobs:<kind>`. A job's id is chosen by us (the
//! attachment or export id), so pushing it twice does not run it twice, and its state can
//! be looked up. Delivery is at least once: a job whose worker died is re-run by another
//! worker after the heartbeat timeout, so handlers must be idempotent.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::{
    AbortError, Attempt, BackendExt, BoxDynError, Data as JobData, Monitor, RetryPolicy,
    TaskBuilder, TaskId, TaskSink, WorkerBuilder, WorkerBuilderExt,
};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

/// Process an uploaded file: sniff its type, hash it, make a thumbnail, mark it ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessAttachment {
    pub attachment_id: uuid::Uuid,
    /// W3C `traceparent` of the request that uploaded it.
    pub traceparent: Option<String>,
}

/// Write a conversation's visible history to a JSON or CSV file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportConversation {
    pub export_id: uuid::Uuid,
    pub traceparent: Option<String>,
}

/// Work out who must be notified of a new message, and queue their deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyMessage {
    pub message_id: uuid::Uuid,
    pub conversation_id: uuid::Uuid,
    pub traceparent: Option<String>,
}

/// One webhook delivery; `attempt` counts from 1. Failed attempts are re-queued with
/// exponential backoff by the handler (see [`Jobs::deliver_notification`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverNotification {
    pub delivery_id: uuid::Uuid,
    pub attempt: u32,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// Worth trying again later (a dependency was down).
    #[error("transient: {0}")]
    Retry(String),
    /// Will never succeed; do not retry.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Attempts before a failing job is given up (dead-lettered).
pub const MAX_ATTEMPTS: usize = 5;

/// The work, implemented by `chat-worker`.
pub trait JobHandlers: Clone + Send + Sync + 'static {
    fn process_attachment(
        &self,
        job: ProcessAttachment,
        attempt: usize,
    ) -> impl Future<Output = Result<(), JobFailure>> + Send;
    fn export_conversation(
        &self,
        job: ExportConversation,
        attempt: usize,
    ) -> impl Future<Output = Result<(), JobFailure>> + Send;
    fn notify_message(
        &self,
        job: NotifyMessage,
        attempt: usize,
    ) -> impl Future<Output = Result<(), JobFailure>> + Send;
    fn deliver_notification(
        &self,
        job: DeliverNotification,
    ) -> impl Future<Output = Result<(), JobFailure>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("job queue unavailable: {0}")]
    Unavailable(String),
}

fn config(prefix: &str, kind: &str) -> Config {
    Config::default()
        .queue(format!("{prefix}jobs:{kind}"))
        .heartbeat_interval(Duration::from_secs(2))
        // A worker silent for 10 s is dead; its jobs go back on the queue.
        .missed_heartbeats(5)
        .batch_size(4)
}

/// Pushes jobs. Connects on first use, so processes start while Redis is down.
#[derive(Clone)]
pub struct Jobs {
    redis_url: String,
    prefix: String,
    connection: Arc<OnceCell<ConnectionManager>>,
}

impl Jobs {
    pub fn new(redis_url: &str, prefix: &str) -> Self {
        Self {
            redis_url: redis_url.to_owned(),
            prefix: prefix.to_owned(),
            connection: Arc::default(),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, JobsError> {
        self.connection
            .get_or_try_init(|| async { apalis_redis::connect(self.redis_url.as_str()).await })
            .await
            .cloned()
            .map_err(|e| JobsError::Unavailable(e.to_string()))
    }

    /// Queues the notifications of a new message (once per message).
    pub async fn notify_message(&self, job: NotifyMessage) -> Result<(), JobsError> {
        let id = TaskId::from_string(job.message_id.to_string());
        self.push("notify", job, id, None).await
    }

    /// Queues a webhook delivery attempt, after `delay` (once per delivery and attempt).
    pub async fn deliver_notification(
        &self,
        job: DeliverNotification,
        delay: Option<Duration>,
    ) -> Result<(), JobsError> {
        let id = TaskId::from_string(format!("{}-{}", job.delivery_id, job.attempt));
        self.push("deliveries", job, id, delay).await
    }

    async fn push<T>(
        &self,
        kind: &str,
        job: T,
        id: TaskId,
        delay: Option<Duration>,
    ) -> Result<(), JobsError>
    where
        T: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static,
    {
        let mut storage: RedisStorage<T> =
            RedisStorage::new(self.connection().await?).with_config(config(&self.prefix, kind));
        let mut task = TaskBuilder::new(job).task_id(id);
        if let Some(d) = delay {
            task = task.run_after(d);
        }
        storage
            .push_task(task.build())
            .await
            .map_err(|e| JobsError::Unavailable(e.to_string()))
    }

    /// Queues an export (once per export id).
    pub async fn export_conversation(&self, job: ExportConversation) -> Result<(), JobsError> {
        let mut storage: RedisStorage<ExportConversation> =
            RedisStorage::new(self.connection().await?)
                .with_config(config(&self.prefix, "exports"));
        let id = TaskId::from_string(job.export_id.to_string());
        storage
            .push_task(TaskBuilder::new(job).task_id(id).build())
            .await
            .map_err(|e| JobsError::Unavailable(e.to_string()))
    }

    /// Queues an attachment for processing (once per attachment id).
    pub async fn process_attachment(&self, job: ProcessAttachment) -> Result<(), JobsError> {
        let mut storage: RedisStorage<ProcessAttachment> =
            RedisStorage::new(self.connection().await?)
                .with_config(config(&self.prefix, "attachments"));
        let id = TaskId::from_string(job.attachment_id.to_string());
        storage
            .push_task(TaskBuilder::new(job).task_id(id).build())
            .await
            .map_err(|e| JobsError::Unavailable(e.to_string()))
    }
}

/// Maps a handler's result to apalis: retry transient failures up to [`MAX_ATTEMPTS`].
fn outcome(result: Result<(), JobFailure>, attempt: usize) -> Result<(), BoxDynError> {
    match result {
        Ok(()) => Ok(()),
        Err(e @ JobFailure::Permanent(_)) => Err(AbortError::new(e).into()),
        Err(e) if attempt >= MAX_ATTEMPTS => Err(AbortError::new(e).into()),
        Err(e) => Err(e.into()),
    }
}

async fn attachment_job<H: JobHandlers>(
    job: ProcessAttachment,
    handlers: JobData<H>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let n = attempt.current();
    outcome(handlers.process_attachment(job, n).await, n)
}

async fn notify_job<H: JobHandlers>(
    job: NotifyMessage,
    handlers: JobData<H>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let n = attempt.current();
    outcome(handlers.notify_message(job, n).await, n)
}

/// Delivery retries are scheduled by the handler itself (exponential backoff), so a
/// failed attempt is never retried by the queue.
async fn delivery_job<H: JobHandlers>(
    job: DeliverNotification,
    handlers: JobData<H>,
) -> Result<(), BoxDynError> {
    match handlers.deliver_notification(job).await {
        Ok(()) => Ok(()),
        Err(e) => Err(AbortError::new(e).into()),
    }
}

async fn export_job<H: JobHandlers>(
    job: ExportConversation,
    handlers: JobData<H>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let n = attempt.current();
    outcome(handlers.export_conversation(job, n).await, n)
}

/// Runs the workers of every queue until `shutdown` resolves; in-flight jobs finish
/// first. Returns an error if the workers died for another reason.
pub async fn run_workers<H: JobHandlers>(
    redis_url: &str,
    prefix: &str,
    concurrency: usize,
    handlers: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), JobsError> {
    let connection = apalis_redis::connect(redis_url)
        .await
        .map_err(|e| JobsError::Unavailable(e.to_string()))?;
    let attachments: RedisStorage<ProcessAttachment> =
        RedisStorage::new(connection.clone()).with_config(config(prefix, "attachments"));
    let exports: RedisStorage<ExportConversation> =
        RedisStorage::new(connection.clone()).with_config(config(prefix, "exports"));
    let notify: RedisStorage<NotifyMessage> =
        RedisStorage::new(connection.clone()).with_config(config(prefix, "notify"));
    let deliveries: RedisStorage<DeliverNotification> =
        RedisStorage::new(connection).with_config(config(prefix, "deliveries"));
    // Worker names must be unique per process (a restarted process gets a new one).
    let instance = format!(
        "{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let backoff = ExponentialBackoffMaker::new(
        Duration::from_millis(200),
        Duration::from_secs(10),
        0.2,
        HasherRng::default(),
    )
    .map_err(|e| JobsError::Unavailable(e.to_string()))?
    .make_backoff();
    let (handlers_exports, instance_exports) = (handlers.clone(), instance.clone());
    let (handlers_notify, instance_notify) = (handlers.clone(), instance.clone());
    let (handlers_deliveries, instance_deliveries) = (handlers.clone(), instance.clone());
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = stopping.clone();
    Monitor::new()
        .register(move |_restarts| {
            WorkerBuilder::new(format!("attachments-{instance}"))
                .backend(
                    attachments
                        .clone()
                        .poll_with_interval(Duration::from_millis(100)),
                )
                .concurrency(concurrency.max(1))
                .retry(RetryPolicy::retries(2).with_backoff(backoff.clone()))
                .catch_panic()
                .timeout(Duration::from_secs(300))
                .enable_tracing()
                .data(handlers.clone())
                .build(attachment_job::<H>)
        })
        .register({
            let handlers = handlers_exports;
            let instance = instance_exports;
            move |_restarts| {
                WorkerBuilder::new(format!("exports-{instance}"))
                    .backend(
                        exports
                            .clone()
                            .poll_with_interval(Duration::from_millis(100)),
                    )
                    // Exports are long and memory-bounded; run them one or two at a time.
                    .concurrency(2)
                    .catch_panic()
                    .timeout(Duration::from_secs(3600))
                    .enable_tracing()
                    .data(handlers.clone())
                    .build(export_job::<H>)
            }
        })
        .register({
            let handlers = handlers_notify;
            let instance = instance_notify;
            move |_restarts| {
                WorkerBuilder::new(format!("notify-{instance}"))
                    .backend(
                        notify
                            .clone()
                            .poll_with_interval(Duration::from_millis(100)),
                    )
                    .concurrency(concurrency.max(1))
                    .catch_panic()
                    .timeout(Duration::from_secs(60))
                    .enable_tracing()
                    .data(handlers.clone())
                    .build(notify_job::<H>)
            }
        })
        .register({
            let handlers = handlers_deliveries;
            let instance = instance_deliveries;
            move |_restarts| {
                WorkerBuilder::new(format!("deliveries-{instance}"))
                    .backend(
                        deliveries
                            .clone()
                            .poll_with_interval(Duration::from_millis(100)),
                    )
                    .concurrency(concurrency.max(1) * 4)
                    .catch_panic()
                    .timeout(Duration::from_secs(60))
                    .enable_tracing()
                    .data(handlers.clone())
                    .build(delivery_job::<H>)
            }
        })
        .shutdown_timeout(Duration::from_secs(30))
        .run_with_signal(async move {
            shutdown.await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .map_err(|e| JobsError::Unavailable(e.to_string()))?;
    if !stopping.load(Ordering::SeqCst) {
        return Err(JobsError::Unavailable("every worker stopped".into()));
    }
    Ok(())
}
