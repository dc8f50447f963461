//! Command line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::graphql::DocumentLimits;

/// opsgraph: the operations record and control plane of a platform, served
/// as GraphQL over one redb file.
#[derive(Debug, Parser)]
#[command(name = "opsgraph", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, the default command.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Run the server with demo data: the same as `serve --demo`.
    Demo(ServeArgs),
    /// Print the GraphQL schema (SDL) to standard output.
    ExportSchema,
    /// Manage API tokens in a database file (while no server has it open).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage organizations in a database file (while no server has it
    /// open).
    #[command(subcommand)]
    Org(OrgCommand),
}

/// `opsgraph org …`.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its id; give it an owner with
    /// `opsgraph token create --org <id> --role OWNER`.
    Create(OrgCreateArgs),
}

/// `opsgraph org create`.
#[derive(Debug, Clone, Args)]
pub struct OrgCreateArgs {
    /// Path of the redb database file (not open in a running server).
    #[arg(long, env = "OPSGRAPH_DB", default_value = "opsgraph.redb")]
    pub db: PathBuf,
    /// Its display name.
    #[arg(long)]
    pub name: String,
}

/// `opsgraph token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown only this once).
    Create(TokenCreateArgs),
}

/// `opsgraph token create`.
#[derive(Debug, Clone, Args)]
pub struct TokenCreateArgs {
    /// Path of the redb database file. The server must not be running on
    /// it (a running server holds the file): use the `createToken`
    /// mutation then.
    #[arg(long, env = "OPSGRAPH_DB", default_value = "opsgraph.redb")]
    pub db: PathBuf,
    /// The organization: its id (`org_1`) or its number (`1`).
    #[arg(long)]
    pub org: String,
    /// For a personal token: the role it acts with (OWNER, ADMIN,
    /// DEVELOPER, VIEWER). It acts as the organization's first member with
    /// that role, created (named after the role) if there is none.
    #[arg(long)]
    pub role: Option<String>,
    /// PERSONAL (default), WORKER or MONITORING.
    #[arg(long, default_value = "PERSONAL")]
    pub kind: String,
    /// What to call the token.
    #[arg(long, default_value = "cli")]
    pub name: String,
    /// Days until the token expires; omitted: never.
    #[arg(long)]
    pub expires_in_days: Option<u32>,
}

/// How the server runs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Path of the redb database file; created if missing.
    #[arg(long, env = "OPSGRAPH_DB", default_value = "opsgraph.redb")]
    pub db: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, env = "OPSGRAPH_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Directory of the services' work and data directories
    /// [default: the database path with `.data` appended].
    #[arg(long, env = "OPSGRAPH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Milliseconds instances get between SIGTERM and SIGKILL when the
    /// server shuts down.
    #[arg(long, env = "OPSGRAPH_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,
    /// Most log lines one `appendLogs` call may carry.
    #[arg(long, env = "OPSGRAPH_MAX_APPEND_LINES", default_value_t = crate::graphql::Limits::default().max_append_lines)]
    pub max_append_lines: usize,
    /// How many lines (or events) a live subscriber may fall behind before
    /// it is ended with SLOW_CONSUMER (it then resumes from its cursor).
    #[arg(long, env = "OPSGRAPH_SLOW_CONSUMER_LAG", default_value_t = crate::graphql::Limits::default().slow_consumer_lag)]
    pub slow_consumer_lag: u64,
    /// Most platform redeploys (self-healing) in flight at once.
    #[arg(long, env = "OPSGRAPH_RECOVERY_CONCURRENCY", default_value_t = 4)]
    pub recovery_concurrency: usize,
    /// Milliseconds a worker's lease on an operation lasts after its claim
    /// or any later call of the worker; a worker silent for longer is
    /// declared lost.
    #[arg(long, env = "OPSGRAPH_WORKER_LEASE_MS", default_value_t = 30_000)]
    pub worker_lease_ms: u64,
    /// Seconds between two passes of log retention.
    #[arg(long, env = "OPSGRAPH_RETENTION_INTERVAL_SECS", default_value_t = 600)]
    pub retention_interval_secs: u64,
    /// Mebibytes of database pages kept in memory; bounds the memory a
    /// large read (a report download) can take.
    #[arg(long, env = "OPSGRAPH_CACHE_MB", default_value_t = DEFAULT_CACHE_MB)]
    pub cache_mb: usize,
    /// Milliseconds an operation cancelled with `force: true`, or past its
    /// timeout, gets to stop and roll back on its own; after that it is
    /// ended by force (its task stopped, the processes it started killed).
    #[arg(long, env = "OPSGRAPH_FORCE_CANCEL_GRACE_MS", default_value_t = 5_000)]
    pub force_cancel_grace_ms: u64,
    /// Milliseconds a WebSocket client has, once connected, to send
    /// `connection_init`; past it the connection is closed with 4408.
    #[arg(long, env = "OPSGRAPH_CONNECTION_INIT_TIMEOUT_MS", default_value_t = 10_000)]
    pub connection_init_timeout_ms: u64,
    /// Milliseconds between two usage samples (CPU, memory, disk) of every
    /// running instance of the monitored services, stored together in one
    /// transaction; 0 turns usage metrics off.
    #[arg(long, env = "OPSGRAPH_METRICS_INTERVAL_MS", default_value_t = 10_000)]
    pub metrics_interval_ms: u64,
    /// Hours usage samples are kept; older ones are deleted by the
    /// retention pass (every `--retention-interval-secs`).
    #[arg(long, env = "OPSGRAPH_METRICS_RETENTION_HOURS", default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(1..=87_600))]
    pub metrics_retention_hours: u64,
    /// An incident opens by itself on the status page (as a draft) when
    /// monitoring redeploys more than this percentage of an
    /// organization's monitored services within `--auto-incident-window-ms`.
    #[arg(long, env = "OPSGRAPH_AUTO_INCIDENT_SHARE_PERCENT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    pub auto_incident_share_percent: u32,
    /// The window, in milliseconds, over which platform redeploys are
    /// counted for an automatic incident.
    #[arg(long, env = "OPSGRAPH_AUTO_INCIDENT_WINDOW_MS", default_value_t = 300_000)]
    pub auto_incident_window_ms: u64,
    /// The fewest services redeployed within the window that open an
    /// automatic incident (so one small organization's single failure
    /// does not).
    #[arg(long, env = "OPSGRAPH_AUTO_INCIDENT_MIN_SERVICES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub auto_incident_min_services: u32,
    /// Seed demo data once the server is up: two environments whose
    /// services run on this machine, with a history of deploys (successful,
    /// failed, cancelled, a platform redeploy). Only into an organization
    /// that has no environment yet; otherwise it does nothing.
    #[arg(long, env = "OPSGRAPH_DEMO")]
    pub demo: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Bounds on what one client may send or ask, each refused with a clear
/// error (`LIMIT_EXCEEDED`, `RATE_LIMITED`, or the HTTP status the
/// GraphQL-over-HTTP specification gives).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Most bytes of an HTTP request body (larger: 413 before the rest is
    /// read) or of one WebSocket message (larger: close 1009).
    #[arg(long, env = "OPSGRAPH_MAX_BODY_BYTES", default_value_t = LimitArgs::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Most nested levels of fields in a GraphQL document.
    #[arg(long, env = "OPSGRAPH_MAX_QUERY_DEPTH", default_value_t = DocumentLimits::default().depth)]
    pub max_query_depth: usize,
    /// Most fields a document may resolve in the worst case, each list
    /// counted at its `first`/`last` (or default page) size.
    #[arg(long, env = "OPSGRAPH_MAX_QUERY_COMPLEXITY", default_value_t = DocumentLimits::default().complexity)]
    pub max_query_complexity: usize,
    /// Most aliased fields in a document.
    #[arg(long, env = "OPSGRAPH_MAX_ALIASES", default_value_t = DocumentLimits::default().aliases)]
    pub max_aliases: usize,
    /// Most directives in a document.
    #[arg(long, env = "OPSGRAPH_MAX_DIRECTIVES", default_value_t = DocumentLimits::default().directives)]
    pub max_directives: usize,
    /// Most bytes of one string input (in the document or a variable).
    #[arg(long, env = "OPSGRAPH_MAX_STRING_BYTES", default_value_t = DocumentLimits::default().string_bytes)]
    pub max_string_bytes: usize,
    /// Milliseconds one query or mutation may run.
    #[arg(long, env = "OPSGRAPH_MAX_EXECUTION_MS", default_value_t = LimitArgs::default().max_execution_ms)]
    pub max_execution_ms: u64,
    /// Requests per second one caller may send over HTTP, with bursts of
    /// twice as many; past it, 429 with `RATE_LIMITED`. 0 turns it off.
    #[arg(long, env = "OPSGRAPH_RATE_LIMIT", default_value_t = LimitArgs::default().rate_limit)]
    pub rate_limit: u32,
    /// Most subscriptions open at once on one WebSocket connection.
    #[arg(long, env = "OPSGRAPH_MAX_SUBSCRIPTIONS_PER_CONNECTION",
          default_value_t = LimitArgs::default().max_subscriptions_per_connection)]
    pub max_subscriptions_per_connection: usize,
    /// Most WebSocket connections open at once for one caller.
    #[arg(long, env = "OPSGRAPH_MAX_CONNECTIONS_PER_CALLER",
          default_value_t = LimitArgs::default().max_connections_per_caller)]
    pub max_connections_per_caller: usize,
    /// Most requests in one batch (a JSON array posted to `/graphql`); 0,
    /// the default, refuses batches.
    #[arg(long, env = "OPSGRAPH_MAX_BATCH", default_value_t = 0)]
    pub max_batch: usize,
    /// Turns introspection off; error messages then suggest no field names.
    #[arg(long, env = "OPSGRAPH_NO_INTROSPECTION")]
    pub no_introspection: bool,
    /// Origins, besides the server's own, whose pages may open a WebSocket
    /// (comma-separated, such as `https://console.example.com`). Clients
    /// that send no `Origin` (not browsers) are not affected.
    #[arg(long, env = "OPSGRAPH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
}

impl Default for LimitArgs {
    fn default() -> Self {
        let document = DocumentLimits::default();
        Self {
            max_body_bytes: 4 << 20,
            max_query_depth: document.depth,
            max_query_complexity: document.complexity,
            max_aliases: document.aliases,
            max_directives: document.directives,
            max_string_bytes: document.string_bytes,
            max_execution_ms: 30_000,
            rate_limit: 200,
            max_subscriptions_per_connection: 100,
            max_connections_per_caller: 64,
            max_batch: 0,
            no_introspection: false,
            allowed_origins: Vec::new(),
        }
    }
}

impl LimitArgs {
    /// The limits every GraphQL document is held to.
    pub fn document(&self) -> DocumentLimits {
        DocumentLimits {
            depth: self.max_query_depth,
            complexity: self.max_query_complexity,
            aliases: self.max_aliases,
            directives: self.max_directives,
            string_bytes: self.max_string_bytes,
        }
    }
}

/// The default of `--cache-mb`: the store's default cache.
pub const DEFAULT_CACHE_MB: usize = crate::store::DEFAULT_CACHE_BYTES >> 20;

impl ServeArgs {
    /// Settings for a server on `listen` with the database at `db` (tests,
    /// benchmarks).
    pub fn new(db: PathBuf, listen: SocketAddr) -> Self {
        let limits = crate::graphql::Limits::default();
        Self {
            db,
            listen,
            data_dir: None,
            shutdown_grace_ms: 5_000,
            max_append_lines: limits.max_append_lines,
            slow_consumer_lag: limits.slow_consumer_lag,
            retention_interval_secs: 600,
            recovery_concurrency: 4,
            worker_lease_ms: 30_000,
            cache_mb: DEFAULT_CACHE_MB,
            force_cancel_grace_ms: 5_000,
            connection_init_timeout_ms: 10_000,
            metrics_interval_ms: 10_000,
            metrics_retention_hours: 24,
            auto_incident_share_percent: 50,
            auto_incident_window_ms: 300_000,
            auto_incident_min_services: 3,
            limits: LimitArgs::default(),
            demo: false,
        }
    }

    /// When the platform opens an incident by itself.
    pub fn auto_incident_rule(&self) -> crate::domain::status_page::AutoIncidentRule {
        crate::domain::status_page::AutoIncidentRule {
            share_percent: self.auto_incident_share_percent,
            window_ms: self.auto_incident_window_ms,
            min_services: self.auto_incident_min_services as usize,
        }
    }

    /// The limits the GraphQL layer enforces.
    pub fn limits(&self) -> crate::graphql::Limits {
        crate::graphql::Limits {
            max_append_lines: self.max_append_lines,
            slow_consumer_lag: self.slow_consumer_lag,
            introspection: !self.limits.no_introspection,
        }
    }

    /// Where the local executor keeps its directories.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            let mut name = self.db.clone().into_os_string();
            name.push(".data");
            PathBuf::from(name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_is_the_default_and_flags_parse() {
        let cli = Cli::try_parse_from(["opsgraph", "--db", "x.redb", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.db, PathBuf::from("x.redb"));
        assert_eq!(cli.serve.data_dir(), PathBuf::from("x.redb.data"));
        assert_eq!(cli.serve.force_cancel_grace_ms, 5_000);
        let cli = Cli::try_parse_from(["opsgraph", "serve", "--listen", "0.0.0.0:9000"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve(ref a)) if a.listen.port() == 9000));
        let cli = Cli::try_parse_from(["opsgraph", "--force-cancel-grace-ms", "250"]).unwrap();
        assert_eq!(cli.serve.force_cancel_grace_ms, 250);
        assert_eq!((cli.serve.metrics_interval_ms, cli.serve.metrics_retention_hours), (10_000, 24));
        let cli = Cli::try_parse_from(["opsgraph", "--metrics-retention-hours", "168"]).unwrap();
        assert_eq!(cli.serve.metrics_retention_hours, 168);
        assert!(Cli::try_parse_from(["opsgraph", "--metrics-retention-hours", "0"]).is_err());
        let rule = Cli::try_parse_from(["opsgraph"]).unwrap().serve.auto_incident_rule();
        assert_eq!((rule.share_percent, rule.window_ms, rule.min_services), (50, 300_000, 3));
        let cli = Cli::try_parse_from(["opsgraph", "--auto-incident-share-percent", "30"]).unwrap();
        assert_eq!(cli.serve.auto_incident_share_percent, 30);
        assert!(Cli::try_parse_from(["opsgraph", "--auto-incident-share-percent", "101"]).is_err());
        assert!(Cli::try_parse_from(["opsgraph", "--auto-incident-min-services", "0"]).is_err());
        let cli = Cli::try_parse_from(["opsgraph", "export-schema"]).unwrap();
        assert!(matches!(cli.command, Some(Command::ExportSchema)));
        let cli = Cli::try_parse_from(["opsgraph", "token", "create", "--org", "org_1", "--role", "ADMIN"])
            .unwrap();
        let Some(Command::Token(TokenCommand::Create(args))) = cli.command else { panic!("token create") };
        assert_eq!(
            (args.org.as_str(), args.role.as_deref(), args.kind.as_str()),
            ("org_1", Some("ADMIN"), "PERSONAL")
        );
    }
}
