//! The one writer: a dedicated thread that runs write jobs, grouping the
//! jobs that are waiting into one commit.
//!
//! redb admits one write transaction at a time and each commit pays an
//! fsync; under concurrent load, jobs queue while a commit is in flight and
//! the next commit carries all of them. A job refused before its first
//! write (bad input, a conflict) simply drops out of the batch. A job that
//! fails or panics after writing aborts the batch; the others are then run
//! again one per transaction. Either way a failed job never leaves a partial
//! write and never takes the others down with it.
//!
//! A failure of storage itself (a write or fsync that fails) marks the
//! store unhealthy; the writer then opens the file again before it runs
//! anything else (see [`super::health`]).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::oneshot;

use super::access::{Result, Tx, internal};
use super::events::{Event, EventBus};
use super::health::{Opener, Shared, StoreStats};
use crate::domain::DomainError;

/// First and longest wait between two attempts to reopen a failed file.
const REOPEN_BACKOFF: (Duration, Duration) = (Duration::from_millis(20), Duration::from_secs(2));

/// Most jobs one commit carries.
const MAX_BATCH: usize = 512;
/// Most weight (log lines) one commit carries beyond its first job: a
/// commit lands every few thousand lines under a flood, and as soon as the
/// previous one is done otherwise (a few milliseconds).
const MAX_WEIGHT: usize = 4_096;

/// A unit of work of the writer; `run` may be called again after an abort.
pub(crate) trait Job: Send {
    /// How much the job writes, in log lines (1 for anything else).
    fn weight(&self) -> usize;
    fn run(&mut self, tx: &mut Tx<'_>) -> Result<()>;
    fn finish(self: Box<Self>, outcome: Result<()>);
}

struct TypedJob<F, T> {
    weight: usize,
    f: F,
    output: Option<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> Job for TypedJob<F, T>
where
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send,
    T: Send,
{
    fn weight(&self) -> usize {
        self.weight
    }

    fn run(&mut self, tx: &mut Tx<'_>) -> Result<()> {
        self.output = Some((self.f)(tx)?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<()>) {
        let TypedJob { output, reply, .. } = *self;
        let result = outcome
            .and_then(|()| output.ok_or_else(|| DomainError::internal("write job finished without output")));
        // The caller may have gone away (request cancelled): nothing to do.
        let _ = reply.send(result);
    }
}

pub(crate) fn job<F, T>(weight: usize, f: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T>>)
where
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    (Box::new(TypedJob { weight: weight.max(1), f, output: None, reply }), rx)
}

/// Runs jobs from `jobs` until every sender is gone; then lets go of the
/// database.
pub(crate) fn run(shared: Arc<Shared>, open: Opener, bus: EventBus, jobs: mpsc::Receiver<Box<dyn Job>>) {
    let Ok(mut db) = shared.database() else { return };
    let mut next = None;
    while let Some(first) = next.take().or_else(|| jobs.recv().ok()) {
        let mut batch = vec![first];
        let mut weight = 0;
        while batch.len() < MAX_BATCH && weight < MAX_WEIGHT {
            let Ok(job) = jobs.try_recv() else { break };
            weight += job.weight();
            if weight > MAX_WEIGHT {
                // Too heavy for this commit: it starts the next one.
                next = Some(job);
                break;
            }
            batch.push(job);
        }
        let failed = run_batch(&db, &bus, &shared.stats, batch);
        if failed && !writable(&db) {
            drop(db);
            match reopen(&shared, &open, &jobs) {
                Some(again) => db = again,
                None => break,
            }
        }
    }
    drop(shared.take());
}

/// Whether the database still takes write transactions. redb refuses
/// them, without any I/O, once a write or sync has failed.
fn writable(db: &Database) -> bool {
    db.begin_write().and_then(|txn| txn.abort().map_err(Into::into)).is_ok()
}

/// Marks the store unhealthy if storage failed, before any job of the
/// failed batch is answered: a client told of the failure then finds
/// `/readyz` not ready.
fn mark_if_failed(db: &Database, stats: &StoreStats) {
    if !writable(db) {
        stats.set_healthy(false);
    }
}

/// Marks the store unhealthy, closes the failed handle and opens the file
/// again, retrying with a back-off while it fails. Jobs that arrive
/// meanwhile are answered at once with an internal error. Returns `None`
/// if every sender went away first.
fn reopen(shared: &Shared, open: &Opener, jobs: &mpsc::Receiver<Box<dyn Job>>) -> Option<Arc<Database>> {
    shared.stats.set_healthy(false);
    tracing::error!("storage failed: reopening the database file");
    let mut old = shared.take();
    let mut wait = REOPEN_BACKOFF.0;
    loop {
        // The old handle closes once the reads still using it are done.
        old = old.and_then(|db| Arc::try_unwrap(db).err());
        if old.is_none() {
            // Opening may not write at all: an empty commit proves that
            // writes and syncs work again.
            let opened = open().map_err(|e| e.to_string()).and_then(|db| {
                let txn = db.begin_write().map_err(|e| e.to_string())?;
                txn.commit().map_err(|e| e.to_string())?;
                Ok(db)
            });
            match opened {
                Ok(db) => {
                    let db = Arc::new(db);
                    shared.put(db.clone());
                    StoreStats::add(&shared.stats.reopens, 1);
                    shared.stats.set_healthy(true);
                    tracing::info!("the database file is open again; storage is healthy");
                    return Some(db);
                }
                Err(error) => tracing::warn!(%error, "reopening the database failed; retrying"),
            }
        }
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match jobs.recv_timeout(left) {
                Ok(job) => {
                    job.finish(Err(DomainError::internal("storage: unavailable while it is reopened")))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
        wait = (wait * 2).min(REOPEN_BACKOFF.1);
    }
}

/// Runs a batch and answers its jobs; `true` if something failed with an
/// internal error (storage may be failing).
fn run_batch(db: &Database, bus: &EventBus, stats: &StoreStats, mut batch: Vec<Box<dyn Job>>) -> bool {
    match try_batch(db, stats, &mut batch) {
        Ok((events, refused, lines)) => {
            StoreStats::add(&stats.commits, 1);
            StoreStats::add(&stats.log_lines, lines);
            // Replies first: a writer waiting for its reply is then woken
            // ahead of the (perhaps thousands of) subscribers of its events,
            // and does not queue behind them.
            for (job, refusal) in batch.into_iter().zip(refused) {
                job.finish(refusal.map_or(Ok(()), Err));
            }
            for event in events {
                bus.publish(event);
            }
            false
        }
        Err(BatchError::Job(index, error)) => {
            // The job failed after writing: the transaction was dropped.
            // Give it its error, and the others a transaction of their own.
            let internal = matches!(error, DomainError::Internal(_));
            if internal {
                mark_if_failed(db, stats);
            }
            let failed = batch.remove(index);
            failed.finish(Err(error));
            let mut any = internal;
            for job in batch {
                if internal && !writable(db) {
                    // Storage itself failed: no use trying the others here.
                    job.finish(Err(DomainError::internal("storage: a write failed")));
                    continue;
                }
                any |= run_batch(db, bus, stats, vec![job]);
            }
            any
        }
        Err(BatchError::Storage(error)) => {
            StoreStats::add(&stats.commit_failures, 1);
            tracing::error!(%error, jobs = batch.len(), "write transaction failed");
            mark_if_failed(db, stats);
            for job in batch {
                job.finish(Err(clone_error(&error)));
            }
            true
        }
    }
}

/// What a committed batch leaves to do: the events to publish, per job the
/// error of a job refused before it wrote, and the log lines committed.
type Committed = (Vec<Event>, Vec<Option<DomainError>>, u64);

enum BatchError {
    /// A job failed (or panicked) after it had written: the whole
    /// transaction must go.
    Job(usize, DomainError),
    Storage(DomainError),
}

/// Runs every job in one transaction and commits it. Returns the events to
/// publish, per job the error of a job that was refused before it wrote
/// anything (the others' writes are kept), and the log lines committed.
fn try_batch(
    db: &Database,
    stats: &StoreStats,
    batch: &mut [Box<dyn Job>],
) -> std::result::Result<Committed, BatchError> {
    let txn = db.begin_write().map_err(|e| BatchError::Storage(internal(e)))?;
    let mut events = Vec::new();
    let mut refused = Vec::with_capacity(batch.len());
    let mut lines = 0;
    for (index, job) in batch.iter_mut().enumerate() {
        let mut tx = Tx::new(&txn);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&mut tx)))
            .unwrap_or_else(|_| Err(DomainError::internal("a write job panicked")));
        match outcome {
            Ok(()) => {
                events.append(&mut tx.events);
                lines += tx.lines;
                refused.push(None);
            }
            Err(error) if !tx.wrote => refused.push(Some(error)),
            // Dropping `txn` without commit aborts it.
            Err(error) => return Err(BatchError::Job(index, error)),
        }
    }
    let started = Instant::now();
    txn.commit().map_err(|e| BatchError::Storage(internal(e)))?;
    stats.commit_latency.observe(started.elapsed());
    Ok((events, refused, lines))
}

/// Storage errors are shared by every job of a failed batch.
fn clone_error(error: &DomainError) -> DomainError {
    match error {
        DomainError::Internal(detail) => DomainError::Internal(detail.clone()),
        other => DomainError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::DomainError;
    use crate::store::{Store, tables};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_jobs_leave_no_write_and_never_take_others_down() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let mut jobs = Vec::new();
        for n in 0..64u64 {
            let store = store.clone();
            jobs.push(tokio::spawn(async move {
                store
                    .write(move |tx| {
                        match n % 4 {
                            // Refused before writing anything.
                            1 => return Err(DomainError::Conflict(format!("job {n} refused"))),
                            // Fails after a write: that write must vanish.
                            2 => {
                                tx.index(tables::SERVICES_BY_ENVIRONMENT, (n, n))?;
                                return Err(DomainError::Conflict(format!("job {n} failed late")));
                            }
                            3 if n == 3 => panic!("job {n} panics"),
                            _ => {}
                        }
                        tx.index(tables::SERVICES_BY_ENVIRONMENT, (n, n))?;
                        Ok(n)
                    })
                    .await
            }));
        }
        let mut committed = Vec::new();
        for (n, job) in jobs.into_iter().enumerate() {
            match (n % 4, job.await.unwrap()) {
                (0, Ok(got)) => committed.push(got),
                (3, Ok(got)) if n != 3 => committed.push(got),
                (1 | 2, Err(DomainError::Conflict(_))) => {}
                (3, Err(DomainError::Internal(detail))) => assert!(detail.contains("panicked")),
                (_, other) => panic!("job {n}: unexpected {other:?}"),
            }
        }
        let stored: Vec<u64> = store
            .read(|r| {
                Ok(r.index_keys(tables::SERVICES_BY_ENVIRONMENT)?.into_iter().map(|(a, _)| a).collect())
            })
            .await
            .unwrap();
        assert_eq!(stored, committed, "exactly the successful jobs' writes are stored");
        assert_eq!(committed.len(), 31);
    }
}
