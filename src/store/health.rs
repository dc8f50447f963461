//! The open database behind a swappable slot, whether storage works, and
//! the figures `/metrics` shows about it.
//!
//! redb latches an I/O failure: once a write or sync has failed, every
//! later transaction on that handle fails too, and only opening the file
//! again (which rolls back to the last good commit) clears it. So:
//!
//! - the writer marks the store **unhealthy** when a batch fails and the
//!   database refuses a new write transaction afterwards (the probe costs
//!   no I/O);
//! - it then takes the handle out of the slot, waits for the reads still
//!   using it, and opens the file again, retrying with a back-off while
//!   the fault lasts; jobs that arrive meanwhile are answered at once with
//!   an internal error, and reads get one too;
//! - a successful reopen puts the new handle in the slot and marks the
//!   store **healthy** again. Nothing acknowledged is lost: a job is
//!   acknowledged only after its commit returned, and redb reopens at the
//!   last commit that did.
//!
//! `/readyz` is not ready while the store is unhealthy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redb::Database;

use crate::domain::DomainError;
use crate::telemetry::Histogram;

/// Opens the database file again (after a storage failure).
pub(crate) type Opener = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send>;

/// What every clone of a store shares with its writer thread.
pub(crate) struct Shared {
    /// The open database; `None` while the writer reopens it.
    slot: RwLock<Option<Arc<Database>>>,
    pub(crate) stats: StoreStats,
}

impl Shared {
    pub(crate) fn new(db: Arc<Database>) -> Self {
        let stats = StoreStats { healthy: AtomicBool::new(true), ..StoreStats::default() };
        Self { slot: RwLock::new(Some(db)), stats }
    }

    /// The open database, or an internal error while it is being reopened.
    pub(crate) fn database(&self) -> Result<Arc<Database>, DomainError> {
        self.slot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| DomainError::internal("storage: the database is being reopened after a failure"))
    }

    /// Takes the handle out: reads fail until [`Shared::put`].
    pub(crate) fn take(&self) -> Option<Arc<Database>> {
        self.slot.write().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(crate) fn put(&self, db: Arc<Database>) {
        *self.slot.write().unwrap_or_else(|e| e.into_inner()) = Some(db);
    }
}

/// Figures about storage, recorded by the writer thread with relaxed
/// atomics (no lock on the commit path).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// `false` from a storage failure until the file is open again.
    healthy: AtomicBool,
    /// Write transactions committed.
    pub commits: AtomicU64,
    /// Write transactions whose commit (or start) failed in storage.
    pub commit_failures: AtomicU64,
    /// Time spent in `commit()` (the write-out and fsync of a batch).
    pub commit_latency: Histogram,
    /// Log lines committed (every log, every stream).
    pub log_lines: AtomicU64,
    /// Times the database was opened again after a failure.
    pub reopens: AtomicU64,
}

impl StoreStats {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Release);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
