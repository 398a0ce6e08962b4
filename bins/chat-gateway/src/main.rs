//! `chat-gateway`: holds WebSocket connections; also prints its AsyncAPI document.

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chat-gateway", version, about = "The chat platform's WebSocket gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve WebSocket connections on `/ws` and `/ws/chat/{conversation_id}/`.
    Serve {
        #[command(flatten)]
        gateway: chat_gateway::GatewaySettings,
        #[command(flatten)]
        service: chat_service::ServiceSettings,
        #[command(flatten)]
        telemetry: chat_telemetry::TelemetryArgs,
    },
    /// Print the AsyncAPI document (as committed in `openapi/chat-gateway.asyncapi.json`).
    Asyncapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Asyncapi => {
            print!("{}", chat_gateway::asyncapi::document_json());
            Ok(())
        }
        Command::Serve { gateway, service, telemetry } => {
            let _telemetry = chat_telemetry::init("chat-gateway", &telemetry)?;
            let chat = service.build().context("configuration")?;
            let bound = chat_gateway::bind(&gateway.addr)
                .await
                .with_context(|| format!("binding {}", gateway.addr))?;
            chat_gateway::serve(bound, chat, gateway, shutdown_signal()).await?;
            tracing::info!("chat-gateway stopped");
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
