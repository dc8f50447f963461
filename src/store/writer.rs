//! The one writer: a dedicated thread that runs write jobs, grouping the
//! jobs that are waiting into one commit.
//!
//! redb admits one write transaction at a time and each commit pays an
//! fsync; under concurrent load, jobs queue while a commit is in flight and
//! the next commit carries all of them. A job that fails aborts its batch;
//! the others are then run again one per transaction, so a failed job never
//! leaves a partial write and never takes the others down with it.

use std::sync::Arc;
use std::sync::mpsc;

use redb::Database;
use tokio::sync::oneshot;

use super::access::{Result, Tx, internal};
use super::events::{Event, EventBus};
use crate::domain::DomainError;

/// Most jobs one commit carries.
const MAX_BATCH: usize = 512;

/// A unit of work of the writer; `run` may be called again after an abort.
pub(crate) trait Job: Send {
    fn run(&mut self, tx: &mut Tx<'_>) -> Result<()>;
    fn finish(self: Box<Self>, outcome: Result<()>);
}

struct TypedJob<F, T> {
    f: F,
    output: Option<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> Job for TypedJob<F, T>
where
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send,
    T: Send,
{
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

pub(crate) fn job<F, T>(f: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T>>)
where
    F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    (Box::new(TypedJob { f, output: None, reply }), rx)
}

/// Runs jobs from `jobs` until every sender is gone; then drops its handle
/// on the database.
pub(crate) fn run(db: Arc<Database>, bus: EventBus, jobs: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&db, &bus, batch);
    }
}

fn run_batch(db: &Database, bus: &EventBus, mut batch: Vec<Box<dyn Job>>) {
    match try_batch(db, &mut batch) {
        Ok(events) => {
            for event in events {
                bus.publish(event);
            }
            for job in batch {
                job.finish(Ok(()));
            }
        }
        Err(BatchError::Job(index, error)) => {
            // Give the failing job its error, and the others a transaction
            // of their own.
            let failed = batch.remove(index);
            failed.finish(Err(error));
            for job in batch {
                run_batch(db, bus, vec![job]);
            }
        }
        Err(BatchError::Storage(error)) => {
            tracing::error!(%error, jobs = batch.len(), "write transaction failed");
            for job in batch {
                job.finish(Err(clone_error(&error)));
            }
        }
    }
}

enum BatchError {
    Job(usize, DomainError),
    Storage(DomainError),
}

fn try_batch(db: &Database, batch: &mut [Box<dyn Job>]) -> std::result::Result<Vec<Event>, BatchError> {
    let txn = db.begin_write().map_err(|e| BatchError::Storage(internal(e)))?;
    let mut events = Vec::new();
    for (index, job) in batch.iter_mut().enumerate() {
        let mut tx = Tx::new(&txn);
        if let Err(error) = job.run(&mut tx) {
            // Dropping `txn` without commit aborts it.
            return Err(BatchError::Job(index, error));
        }
        events.append(&mut tx.events);
    }
    txn.commit().map_err(|e| BatchError::Storage(internal(e)))?;
    Ok(events)
}

/// Storage errors are shared by every job of a failed batch.
fn clone_error(error: &DomainError) -> DomainError {
    match error {
        DomainError::Internal(detail) => DomainError::Internal(detail.clone()),
        other => DomainError::internal(other),
    }
}
