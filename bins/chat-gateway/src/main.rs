//! `chat-gateway`: holds WebSocket connections; also prints its AsyncAPI document.

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chat-gateway",
    version,
    about = "The chat platform's WebSocket gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at start; the settings are moved out"
)]
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
        Command::Serve {
            gateway,
            service,
            telemetry,
        } => {
            let _telemetry = chat_telemetry::init("chat-gateway", &telemetry)?;
            let chat = service.build().context("configuration")?;
            let bound = chat_gateway::bind(&gateway.addr)
                .await
                .with_context(|| format!("binding {}", gateway.addr))?;
            chat_gateway::serve(bound, chat, gateway, chat_telemetry::shutdown_signal()).await?;
            tracing::info!("chat-gateway stopped");
            Ok(())
        }
    }
}
