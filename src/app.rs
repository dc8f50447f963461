//! The application: storage, engine, GraphQL schema and HTTP server wired
//! together, with start-up recovery and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Registry, random_secret};
use crate::config::ServeArgs;
use crate::domain::access::{Grant, Principal, Role, new_secret};
use crate::engine::healing::Healing;
use crate::engine::{Engine, LocalExecutor, metrics, monitor};
use crate::graphql::{CodedSchema, GraphqlContext, build_schema};
use crate::http::{self, AppState, TransportLimits};
use crate::store::auth::{self, SecretParts};
use crate::store::{Store, idempotency, retention};

/// Name of the organization a new database starts with.
const FIRST_ORGANIZATION: &str = "default";
/// Shortest time between two usage sampling passes: samples are keyed by
/// their millisecond, and a pass costs a transaction.
const MIN_METRICS_INTERVAL_MS: u64 = 50;

/// A built server, listening but not yet serving.
pub struct Application {
    /// What the first start of a new database file made, to show once.
    first_start: Option<FirstToken>,
    listener: TcpListener,
    state: AppState,
    engine: Arc<Engine>,
    executor: Arc<LocalExecutor>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    ready: watch::Sender<bool>,
    grace: Duration,
    schedule: Schedule,
    /// Set with `--demo`: what seeds the demo once the server is ready.
    demo: Option<DemoSeed>,
    /// `None` until the demo seeding ended (or with no demo); then how.
    demo_seeded: watch::Sender<Option<Result<(), String>>>,
}

/// The demo seeding: the schema it goes through and the caller it acts as.
struct DemoSeed {
    schema: crate::graphql::AppSchema,
    caller: Principal,
}

/// When background work runs.
struct Schedule {
    /// Time between two passes of log and metrics retention.
    retention_every: Duration,
    /// How long usage samples are kept.
    metrics_kept: Duration,
    /// Time between two usage sampling passes; `None`: metrics are off.
    metrics_every: Option<Duration>,
}

impl Schedule {
    fn new(args: &ServeArgs) -> Self {
        let metrics_every = Duration::from_millis(args.metrics_interval_ms.max(MIN_METRICS_INTERVAL_MS));
        Self {
            retention_every: Duration::from_secs(args.retention_interval_secs.max(1)),
            metrics_kept: Duration::from_secs(args.metrics_retention_hours.saturating_mul(3_600)),
            metrics_every: (args.metrics_interval_ms > 0).then_some(metrics_every),
        }
    }
}

impl Application {
    /// Opens the database and binds the listener; nothing is served yet.
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let store = Store::open_with_cache(&args.db, args.cache_mb << 20)?;
        Self::build_on(args, store).await
    }

    /// [`Application::build`] over a store the caller opened on `args.db`
    /// (tests run the server over a backend that fails on demand).
    pub async fn build_on(args: ServeArgs, store: Store) -> anyhow::Result<Self> {
        let first_start = first_start(&store).await?;
        let registry = Registry::load(&store).await.context("loading tokens and members")?;
        let listener =
            TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mark = std::fs::canonicalize(&args.db).unwrap_or_else(|_| args.db.clone());
        // Absolute: commands run in their service's work directory, so a
        // relative `DATA_DIR` would point nowhere.
        let data_dir = std::path::absolute(args.data_dir()).context("resolving the data directory")?;
        let executor = LocalExecutor::new(store.clone(), data_dir, mark.display().to_string(), tasks.clone());
        let force_grace = Duration::from_millis(args.force_cancel_grace_ms);
        let engine = Engine::new(
            store.clone(),
            executor.clone(),
            shutdown.child_token(),
            args.recovery_concurrency,
            force_grace,
            args.auto_incident_rule(),
            args.worker_lease_ms,
        );
        let limits = args.limits();
        let context = GraphqlContext {
            store: store.clone(),
            engine: engine.clone(),
            limits,
            registry: registry.clone(),
        };
        let schema = build_schema(Some(context));
        let (ready, ready_rx) = watch::channel(false);
        let init_timeout = Duration::from_millis(args.connection_init_timeout_ms);
        let demo = match args.demo {
            true => Some(DemoSeed { schema: schema.clone(), caller: demo_caller(&store).await? }),
            false => None,
        };
        let execution_time = Duration::from_millis(args.limits.max_execution_ms);
        let schema = CodedSchema::new(schema, args.limits.document(), execution_time);
        let state =
            AppState::new(schema, store, engine.clone(), registry, ready_rx, shutdown.clone(), tasks.clone())
                .with_connection_init_timeout(init_timeout)
                .with_limits(TransportLimits::from(&args.limits), args.limits.rate_limit);
        Ok(Self {
            first_start,
            listener,
            state,
            engine,
            executor,
            shutdown,
            tasks,
            ready,
            grace: Duration::from_millis(args.shutdown_grace_ms),
            schedule: Schedule::new(&args),
            demo,
            demo_seeded: watch::channel(None).0,
        })
    }

    /// The owner token made by the first start of a new database file
    /// (`None` on any later start): shown once, never stored.
    pub fn first_token(&self) -> Option<&FirstToken> {
        self.first_start.as_ref()
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// The store the server runs on (benchmarks compare against it).
    pub fn store(&self) -> Store {
        self.state.store()
    }

    /// Cancelling it shuts the server down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Turns `true` once start-up recovery is done (`/readyz`).
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Says how the demo seeding ended (`Some(Ok(()))` also when there was
    /// nothing to seed); stays `None` while it runs, and without `--demo`.
    pub fn demo_seeded(&self) -> watch::Receiver<Option<Result<(), String>>> {
        self.demo_seeded.subscribe()
    }

    /// Serves until the shutdown token is cancelled: in-flight requests
    /// finish, open subscriptions end, running operations stop where they
    /// are (start-up recovery ends them next time), every instance process
    /// is stopped, and the database file is closed before this returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            first_start: _,
            listener,
            state,
            engine,
            executor,
            shutdown,
            tasks,
            ready,
            grace,
            schedule,
            demo,
            demo_seeded,
        } = self;
        let router = http::router(state);
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await
        });
        engine.recover().await.context("start-up recovery")?;
        tasks.spawn(retain(
            engine.store().clone(),
            schedule.retention_every,
            schedule.metrics_kept,
            shutdown.clone(),
        ));
        tasks.spawn(monitor::run(engine.clone(), shutdown.clone()));
        if let Some(every) = schedule.metrics_every {
            tasks.spawn(metrics::run(engine.clone(), every, shutdown.clone()));
        }
        tasks.spawn(Healing::run(engine.clone(), shutdown.clone()));
        tasks.spawn(crate::engine::workers::run_lease_clock(engine.clone(), shutdown.clone()));
        ready.send_replace(true);
        tracing::info!("ready");
        if let Some(demo) = demo {
            tasks.spawn(seed_demo(demo, demo_seeded, shutdown.clone()));
        }
        server.await.context("the HTTP server task failed")?.context("serving HTTP")?;
        tracing::info!("HTTP server stopped; stopping operations and instances");
        // Operations stop where they are first (a rollback in progress gets
        // a grace), so no step starts a process after the instances stop.
        shutdown.cancel();
        if !engine.wait_stopped(grace + Duration::from_secs(5)).await {
            tracing::warn!("some operations did not stop in time");
        }
        executor.shutdown(grace).await;
        tasks.close();
        if tokio::time::timeout(grace + Duration::from_secs(5), tasks.wait()).await.is_err() {
            tracing::warn!("some background tasks did not stop in time");
        }
        let closed = engine.store().closed();
        drop((engine, executor));
        if tokio::time::timeout(Duration::from_secs(10), closed).await.is_err() {
            tracing::warn!("the database is still in use; it closes when the process exits");
        }
        Ok(())
    }
}

/// The organization and owner token of a first start.
#[derive(Clone)]
pub struct FirstToken {
    pub organization: String,
    pub owner: String,
    /// The whole secret. Never logged: printed once to standard output.
    pub secret: String,
}

impl std::fmt::Debug for FirstToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstToken").field("organization", &self.organization).finish_non_exhaustive()
    }
}

/// On a database file that never had a token: creates the first
/// organization (if none), its owner and an owner token.
async fn first_start(store: &Store) -> anyhow::Result<Option<FirstToken>> {
    let (secret, prefix, hash) = new_secret(random_secret()?);
    let parts = SecretParts { prefix, hash };
    let made = store
        .write(move |tx| auth::first_start(tx, FIRST_ORGANIZATION, &parts))
        .await
        .context("creating the first organization and owner token")?;
    Ok(made.map(|m| {
        tracing::info!(organization = %m.organization.id, token = %m.token.prefix, "first start: created an owner token");
        FirstToken { organization: m.organization.name, owner: m.owner.name, secret }
    }))
}

/// The caller the demo seeds as: the first organization's first owner,
/// acting without a token (the seeding runs inside the server).
async fn demo_caller(store: &Store) -> anyhow::Result<Principal> {
    let members = store.read(auth::all_members).await.context("reading the members")?;
    let owner = members
        .into_iter()
        .filter(|m| !m.is_removed() && m.role == Role::Owner)
        .min_by_key(|m| m.id)
        .context("no owner to seed the demo as")?;
    Ok(Principal {
        organization_id: owner.organization_id,
        member: owner.member(),
        grant: Grant::Member(Role::Owner),
        token: None,
    })
}

/// Seeds the demo in the background while the server already serves (the
/// console shows the history being made), unless shutdown comes first.
async fn seed_demo(
    demo: DemoSeed,
    done: watch::Sender<Option<Result<(), String>>>,
    shutdown: CancellationToken,
) {
    tracing::info!("seeding demo data");
    let outcome = tokio::select! {
        outcome = crate::demo::seed(&demo.schema, &demo.caller) => outcome,
        () = shutdown.cancelled() => return,
    };
    let outcome = match outcome {
        Ok(Some(seeded)) => {
            tracing::info!(environments = ?seeded.environments, operations = seeded.operations, "demo data seeded");
            Ok(())
        }
        Ok(None) => {
            tracing::info!("the organization already has environments: no demo data added");
            Ok(())
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "seeding the demo data failed");
            Err(format!("{error:#}"))
        }
    };
    done.send_replace(Some(outcome));
}

/// Runs a pass of log retention, then one of metrics retention (samples
/// older than `metrics_kept`), every `every` until shutdown. A pass stopped
/// by shutdown leaves nothing half-done: each of its transactions is
/// complete on its own.
async fn retain(store: Store, every: Duration, metrics_kept: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let kept_ms = i64::try_from(metrics_kept.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let passes = async {
            let now = crate::domain::now_millis();
            match retention::expire_logs(&store, now).await {
                Ok(0) => {}
                Ok(lines) => tracing::info!(lines, "log retention deleted expired lines"),
                Err(error) => tracing::error!(%error, "a log retention pass failed"),
            }
            match retention::expire_samples(&store, now.saturating_sub(kept_ms)).await {
                Ok(0) => {}
                Ok(samples) => tracing::info!(samples, "metrics retention deleted expired usage samples"),
                Err(error) => tracing::error!(%error, "a metrics retention pass failed"),
            }
            match idempotency::expire(&store, now).await {
                Ok(0) => {}
                Ok(keys) => tracing::info!(keys, "expired idempotency keys deleted"),
                Err(error) => tracing::error!(%error, "an idempotency key retention pass failed"),
            }
        };
        tokio::select! {
            () = passes => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// `opsgraph org create`: makes an organization in the database file and
/// returns its id.
pub async fn create_organization_offline(
    db: &std::path::Path,
    name: &str,
) -> anyhow::Result<crate::domain::OrganizationId> {
    let name = crate::domain::access::parse_member_name(name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let store = open_offline(db)?;
    let org = store.write(move |tx| auth::create_organization(tx, &name)).await?;
    let closed = store.closed();
    drop(store);
    closed.await;
    Ok(org.id)
}

fn open_offline(db: &std::path::Path) -> anyhow::Result<Store> {
    Store::open(db).with_context(|| {
        format!("opening {} (a running server holds it: use the API instead, or stop it)", db.display())
    })
}

/// `opsgraph token create`: makes a token in the database file and returns
/// its secret (to print once).
pub async fn create_token_offline(args: crate::config::TokenCreateArgs) -> anyhow::Result<String> {
    use crate::domain::{OrganizationId, Role, TokenKind};
    let org: OrganizationId = match args.org.parse::<u64>() {
        Ok(n) => OrganizationId(n),
        Err(_) => args.org.parse().map_err(|e| anyhow::anyhow!("--org: {e}"))?,
    };
    let kind = match args.kind.to_ascii_uppercase().as_str() {
        "PERSONAL" => TokenKind::Personal,
        "WORKER" => TokenKind::Worker,
        "MONITORING" => TokenKind::Monitoring,
        other => anyhow::bail!("--kind: `{other}` is not PERSONAL, WORKER or MONITORING"),
    };
    let role =
        args.role.as_deref().map(Role::parse).transpose().map_err(|e| anyhow::anyhow!("--role: {e}"))?;
    if kind != TokenKind::Personal && role.is_some() {
        anyhow::bail!("--role is for PERSONAL tokens only");
    }
    let new = auth::NewToken {
        name: crate::domain::access::parse_token_name(&args.name)
            .map_err(|e| anyhow::anyhow!("--name: {e}"))?,
        kind,
        member_id: None,
        role,
        expires_at: args
            .expires_in_days
            .map(|days| crate::domain::now_millis().saturating_add(i64::from(days) * 86_400_000)),
    };
    let store = open_offline(&args.db)?;
    let (secret, prefix, hash) = new_secret(random_secret()?);
    let parts = SecretParts { prefix, hash };
    let token = store.write(move |tx| auth::create_token_offline(tx, org, &new, &parts)).await?;
    tracing::info!(token = %token.prefix, organization = %org, "token created from the command line");
    let closed = store.closed();
    drop(store);
    closed.await;
    Ok(secret)
}
