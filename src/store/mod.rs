//! The only module that imports redb: one database file, its tables, the
//! writer thread, and typed reads and writes of every row.
//!
//! Reads run on tokio's blocking pool with their own MVCC snapshot. Writes
//! are jobs sent to the writer thread (see [`writer`]): one job per
//! mutation, committed alone or with the jobs that queued beside it, and
//! events published only after the commit succeeded.

mod access;
pub mod activity;
pub mod auth;
mod check;
mod codec;
pub mod events;
pub mod faults;
mod health;
pub mod hooks;
pub mod idempotency;
pub mod logs;
pub mod metrics;
mod migrations;
pub mod operations;
pub mod paging;
pub mod pins;
pub mod resources;
pub mod retention;
pub mod status_page;
pub mod statuses;
pub mod tables;
pub mod workers;
mod writer;

use std::path::Path;
use std::sync::{Arc, mpsc};

use anyhow::Context;
use redb::{Database, ReadableDatabase};

pub use faults::StorageFaults;
pub use health::StoreStats;

pub use access::{Reader, Tx};
/// The result of a function that runs inside a transaction.
pub type TxResult<T> = std::result::Result<T, DomainError>;
pub use events::{Event, EventBus, OperationEvent, OperationEventKind};
pub use paging::{DEFAULT_PAGE, Page, PageArgs};

use crate::domain::DomainError;

type Result<T> = std::result::Result<T, DomainError>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The database (reopened by the writer after a storage failure), and
    /// the health and figures of storage.
    shared: Arc<health::Shared>,
    jobs: mpsc::SyncSender<Box<dyn writer::Job>>,
    bus: EventBus,
    /// Turns `true` when the writer thread has stopped and let go of the
    /// database (after the last `Store` clone was dropped).
    closed: tokio::sync::watch::Receiver<bool>,
}

/// Bytes redb may cache by default. Bounded, so that reading a large
/// history (a report over a million operations) does not grow the process
/// with every page read: redb's own default is 1 GiB.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl Store {
    /// Opens (or creates) the file at `path` with the default cache size.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the file at `path` with a page cache of at most
    /// `cache_bytes`, checks or migrates its schema and starts the writer
    /// thread.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> anyhow::Result<Self> {
        let path = path.to_owned();
        Self::open_with(&path.clone(), move || Database::builder().set_cache_size(cache_bytes).create(&path))
    }

    /// [`Store::open`] over a backend that fails writes and syncs when
    /// `faults` says so (tests of storage failures). Reopens after a
    /// failure go through the same switch.
    pub fn open_with_faults(path: &Path, faults: StorageFaults) -> anyhow::Result<Self> {
        let file = path.to_owned();
        Self::open_with(path, move || {
            let backend = faults.backend(&file).map_err(redb::StorageError::from)?;
            Database::builder().set_cache_size(DEFAULT_CACHE_BYTES).create_with_backend(backend)
        })
    }

    fn open_with(
        path: &Path,
        open: impl Fn() -> std::result::Result<Database, redb::DatabaseError> + Send + 'static,
    ) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory of {}", path.display()))?;
        }
        let db = open().with_context(|| format!("opening the database file {}", path.display()))?;
        migrations::migrate(&db).with_context(|| format!("preparing {}", path.display()))?;
        let shared = Arc::new(health::Shared::new(Arc::new(db)));
        let bus = EventBus::new();
        // Bounded so that a flood of writes pushes back on its callers.
        let (jobs, receiver) = mpsc::sync_channel(4096);
        let (thread_shared, thread_bus) = (shared.clone(), bus.clone());
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        std::thread::Builder::new()
            .name("opsgraph-writer".into())
            .spawn(move || {
                writer::run(thread_shared, Box::new(open), thread_bus, receiver);
                closed_tx.send_replace(true);
            })
            .context("starting the writer thread")?;
        Ok(Self { shared, jobs, bus, closed })
    }

    /// Whether storage works: `false` from a failed write until the file
    /// is open again (see [`health`]).
    pub fn is_healthy(&self) -> bool {
        self.shared.stats.is_healthy()
    }

    /// Figures about commits and storage, for `/metrics`.
    pub fn stats(&self) -> &StoreStats {
        &self.shared.stats
    }

    /// Resolves once every clone of this store is gone and the database
    /// file is closed (its lock released).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closed = self.closed.clone();
        async move {
            let _ = closed.wait_for(|c| *c).await;
        }
    }

    /// Rebuilds every secondary index from the primary rows and returns
    /// how the stored ones differ (empty when consistent).
    pub async fn index_differences(&self) -> Result<Vec<String>> {
        self.read(check::index_differences).await
    }

    /// The feed of committed changes.
    pub fn events(&self) -> &EventBus {
        &self.bus
    }

    /// Runs `f` in a read snapshot on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Reader<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.shared.database()?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(access::internal)?;
            f(Reader::of_read(&txn))
        })
        .await
        .map_err(|e| DomainError::internal(format!("read task failed: {e}")))?
    }

    /// Runs `f` in a write transaction of the writer thread and returns its
    /// output once committed. `f` may run more than once (after the abort of
    /// a shared batch), so it must only depend on its inputs and `tx`.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_weighted(1, f).await
    }

    /// [`Store::write`] for a job that appends `lines` log lines: commits
    /// are cut every few thousand lines (see [`writer`]).
    pub async fn write_weighted<T, F>(&self, lines: usize, f: F) -> Result<T>
    where
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (job, reply) = writer::job(lines, f);
        let stopped = || DomainError::internal("the writer thread has stopped");
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(stopped()),
            Err(mpsc::TrySendError::Full(job)) => {
                // The queue is full: wait for room off the runtime.
                let jobs = self.jobs.clone();
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|e| DomainError::internal(format!("write task failed: {e}")))?
                    .map_err(|_| stopped())?;
            }
        }
        reply.await.map_err(|_| DomainError::internal("the writer dropped a job"))?
    }
}
