//! The `opsgraph` binary: parses the command line and runs the library.

use std::io::Write;

use clap::Parser;
use opsgraph::app::Application;
use opsgraph::config::{Cli, Command, ServeArgs};
use tracing_subscriber::EnvFilter;

/// mimalloc: GraphQL execution allocates a small value per resolved field;
/// the benchmark (`cargo bench --bench throughput`) reads much faster with it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::ExportSchema) => {
            print!("{}", opsgraph::graphql::sdl());
            return Ok(());
        }
        Some(Command::Serve(args)) => args,
        Some(Command::Demo(args)) => ServeArgs { demo: true, ..args },
        None => cli.serve,
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let app = Application::build(args).await?;
    let shutdown = app.shutdown_token();
    // The address goes to stdout so scripts and tests can read it.
    let base = format!("http://127.0.0.1:{}", app.port());
    // One write, and a closed stdout is no reason to stop serving: a
    // script may read the first line and hang up.
    let banner = format!("opsgraph listening on {base}/ (GraphiQL)\nconsole: {base}/console\n");
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
    drop(stdout);
    tokio::spawn(async move {
        opsgraph::shutdown_signal().await;
        tracing::info!("shutdown signal received");
        shutdown.cancel();
    });
    app.run_until_stopped().await
}
