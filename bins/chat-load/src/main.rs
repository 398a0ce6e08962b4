//! `chat-load`: drives the gateway fleet with an open-loop, fixed-rate load and reports
//! end-to-end latency, throughput, losses and duplicates. See `docs/benchmarks.md`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = chat_loadgen::LoadArgs::parse();
    let report = chat_loadgen::run(args).await?;
    println!("{report}");
    Ok(())
}
