//! `chat-api`: serves the REST API; also applies migrations and prints the OpenAPI spec.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "chat-api", version, about = "The chat platform's REST API")]
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
    /// Serve the REST API, `/openapi.json` and `/docs`.
    Serve {
        #[command(flatten)]
        api: chat_api::ApiSettings,
        #[command(flatten)]
        service: chat_service::ServiceSettings,
        #[command(flatten)]
        telemetry: chat_telemetry::TelemetryArgs,
        /// Apply pending database migrations before serving.
        #[arg(long, env = "CHAT_MIGRATE", default_value_t = false)]
        migrate: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// PostgreSQL connection URL.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Print the OpenAPI document (as committed in `openapi/chat-api.json`).
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Openapi => {
            print!("{}", chat_api::openapi_json());
            Ok(())
        }
        Command::Migrate { database_url } => {
            let store = chat_service::settings::migrate_only(&database_url)?;
            store.migrate().await.context("applying migrations")?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Serve {
            api,
            service,
            telemetry,
            migrate,
        } => {
            let _telemetry = chat_telemetry::init("chat-api", &telemetry)?;
            let chat = service.build().context("configuration")?;
            if migrate {
                chat.store()
                    .migrate()
                    .await
                    .context("applying migrations")?;
            }
            let bound = chat_api::bind(&api.addr)
                .await
                .with_context(|| format!("binding {}", api.addr))?;
            chat_api::serve(
                bound,
                chat,
                api.web,
                chat_telemetry::shutdown_signal(),
                Duration::from_secs(api.shutdown_grace_secs),
            )
            .await?;
            tracing::info!("chat-api stopped");
            Ok(())
        }
    }
}
