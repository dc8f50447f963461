//! Storage faults on demand: a redb storage backend over the database file
//! that fails writes and syncs when told to, so tests can show what a
//! failing disk does to the server (see [`Store::open_with_faults`]).
//!
//! [`Store::open_with_faults`]: super::Store::open_with_faults

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::StorageBackend;
use redb::backends::FileBackend;

/// No fault armed.
const DISARMED: u64 = u64::MAX;

/// The switch of the faults, shared by the test and every backend the
/// store opens over the file (it reopens after a failure).
///
/// Armed with [`StorageFaults::fail_after`], the backend counts its write,
/// `set_len` and sync calls; the one that reaches the count fails, and so
/// does every later one until [`StorageFaults::heal`]: a disk that fills up
/// or goes away, then comes back.
#[derive(Debug, Clone, Default)]
pub struct StorageFaults(Arc<Switch>);

#[derive(Debug)]
struct Switch {
    /// Write and sync calls since the switch was made (or last armed).
    calls: AtomicU64,
    /// The call number from which calls fail; [`DISARMED`]: none.
    fail_from: AtomicU64,
    /// Calls failed so far.
    failed: AtomicU64,
}

impl Default for Switch {
    fn default() -> Self {
        Self { calls: AtomicU64::new(0), fail_from: AtomicU64::new(DISARMED), failed: AtomicU64::new(0) }
    }
}

impl StorageFaults {
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on, the `n`-th write or sync call (`0`: the next one) and
    /// every one after it fail, until [`StorageFaults::heal`].
    pub fn fail_after(&self, n: u64) {
        let now = self.0.calls.load(Ordering::SeqCst);
        self.0.fail_from.store(now.saturating_add(n), Ordering::SeqCst);
    }

    /// Writes and syncs succeed again.
    pub fn heal(&self) {
        self.0.fail_from.store(DISARMED, Ordering::SeqCst);
    }

    /// How many calls have failed so far.
    pub fn failures(&self) -> u64 {
        self.0.failed.load(Ordering::SeqCst)
    }

    /// Counts a write or sync call; an error if it must fail.
    fn check(&self, what: &str) -> io::Result<()> {
        let call = self.0.calls.fetch_add(1, Ordering::SeqCst);
        if call >= self.0.fail_from.load(Ordering::SeqCst) {
            self.0.failed.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::other(format!("injected storage fault on {what} (call {call})")));
        }
        Ok(())
    }

    /// A backend over the file at `path` (created if missing) that obeys
    /// this switch.
    pub(crate) fn backend(&self, path: &Path) -> io::Result<FaultyBackend> {
        let file: File = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        Ok(FaultyBackend { inner: FileBackend::new(file).map_err(io::Error::other)?, faults: self.clone() })
    }
}

/// A [`FileBackend`] whose writes and syncs fail when its switch says so.
#[derive(Debug)]
pub(crate) struct FaultyBackend {
    inner: FileBackend,
    faults: StorageFaults,
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.faults.check("set_len")?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.faults.check("sync")?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.faults.check("write")?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
