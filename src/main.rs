//! The `opsgraph` binary: parses the command line and runs the library.

use std::io::Write;

use clap::Parser;
use opsgraph::app::Application;
use opsgraph::config::{Cli, Command, OrgCommand, ServeArgs, TokenCommand};
use tracing_subscriber::EnvFilter;

/// mimalloc: GraphQL execution allocates a small value per resolved field;
/// the benchmark (`cargo bench --bench throughput`) reads much faster with it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let args = match cli.command {
        Some(Command::ExportSchema) => {
            print!("{}", opsgraph::graphql::sdl());
            return Ok(());
        }
        Some(Command::Token(TokenCommand::Create(args))) => {
            // The secret goes to stdout alone, so that scripts can capture it.
            println!("{}", opsgraph::app::create_token_offline(args).await?);
            return Ok(());
        }
        Some(Command::Org(OrgCommand::Create(args))) => {
            println!("{}", opsgraph::app::create_organization_offline(&args.db, &args.name).await?);
            return Ok(());
        }
        Some(Command::Serve(args)) => args,
        Some(Command::Demo(args)) => ServeArgs { demo: true, ..args },
        None => cli.serve,
    };
    let app = Application::build(args).await?;
    let shutdown = app.shutdown_token();
    // The address (and a first start's token) go to stdout, never to the
    // log, so scripts and tests can read them.
    // One write, so that a reader who stops after the line it wanted
    // cannot make a later line fail.
    let port = app.port();
    let mut banner = format!(
        "opsgraph listening on http://127.0.0.1:{port}/ (GraphiQL)\nconsole: http://127.0.0.1:{port}/console\n"
    );
    if let Some(first) = app.first_token() {
        banner.push_str(&format!(
            "first start: created organization `{}` and its owner `{}`, with this owner token (shown only once):\n\
             OPSGRAPH_TOKEN={}\n\
             open the playground with it: http://127.0.0.1:{port}/?token={}\n",
            first.organization, first.owner, first.secret, first.secret
        ));
    }
    // A closed stdout is no reason to stop serving.
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
