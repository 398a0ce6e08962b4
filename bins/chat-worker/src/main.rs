//! `chat-worker`: runs background jobs (attachment processing) from the Redis queues.

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chat-worker",
    version,
    about = "The chat platform's background worker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run jobs until Ctrl-C or SIGTERM (jobs in flight finish first).
    Serve {
        #[command(flatten)]
        worker: chat_worker::WorkerSettings,
        #[command(flatten)]
        service: chat_service::ServiceSettings,
        #[command(flatten)]
        telemetry: chat_telemetry::TelemetryArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            worker,
            service,
            telemetry,
        } => {
            let _telemetry = chat_telemetry::init("chat-worker", &telemetry)?;
            if worker.notify_webhook_url.is_some()
                && worker.notify_webhook_secret.as_deref().unwrap_or("").len() < 16
            {
                anyhow::bail!(
                    "CHAT_NOTIFY_WEBHOOK_SECRET (16 characters or more) is required with CHAT_NOTIFY_WEBHOOK_URL"
                );
            }
            let chat = service.build().context("configuration")?;
            tracing::info!(concurrency = worker.concurrency, "chat-worker running");
            let sweeper = tokio::spawn(chat_worker::sweep(chat.clone(), worker.clone()));
            let indexer = tokio::spawn(chat_worker::index_search(
                chat.clone(),
                std::time::Duration::from_millis(250),
            ));
            let consumer = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
            let notifier = tokio::spawn(chat_worker::notifications::follow_new_messages(
                chat.clone(),
                worker.clone(),
                consumer,
            ));
            let handlers = chat_worker::Handlers::new(chat, worker.clone());
            let result = chat_jobs::run_workers(
                &service.redis_url,
                &service.redis_prefix,
                worker.concurrency,
                handlers,
                chat_telemetry::shutdown_signal(),
            )
            .await;
            sweeper.abort();
            indexer.abort();
            notifier.abort();
            result?;
            tracing::info!("chat-worker stopped");
            Ok(())
        }
    }
}
