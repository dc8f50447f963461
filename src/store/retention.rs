//! Log retention: deletes the lines older than their environment's
//! retention period, in small transactions that queue with every other
//! write, so ingest never waits long behind a pass. Metrics retention
//! ([`expire_samples`]) does the same for usage samples, against one
//! server-wide cutoff.
//!
//! Operations are visited in queue order from the environment's mark (the
//! last operation whose whole log is gone), and the pass stops at the first
//! operation queued after the cutoff: later ones cannot hold older lines.
//! Service logs are visited for every service of the environment, deleted
//! ones included.

use std::ops::ControlFlow;

use super::Store;
use super::access::{Reader, Result, Tx};
use super::logs::{self, Log};
use super::resources;
use super::tables::*;
use crate::domain::{Environment, EnvironmentId, Millis, Operation, ServiceId};

/// Most lines (or samples) one retention transaction deletes.
const BATCH: usize = 1_000;
/// Operations examined per read.
const OPERATION_PAGE: usize = 500;

/// One pass over every environment as of `now`; returns how many lines
/// were deleted.
pub async fn expire_logs(store: &Store, now: Millis) -> Result<u64> {
    let environments: Vec<Environment> = store.read(|r| r.all_rows(ENVIRONMENTS)).await?;
    let mut deleted = 0;
    for env in environments {
        let cutoff = env.log_cutoff(now);
        let services = store.read(move |r| services_of(r, env.id)).await?;
        for svc in services {
            deleted += expire_log(store, Log::Service(svc), cutoff).await?;
        }
        deleted += expire_operations(store, env.id, cutoff).await?;
    }
    Ok(deleted)
}

/// Deletes the lines of one log stored before `cutoff`, a batch per
/// transaction.
async fn expire_log(store: &Store, log: Log, cutoff: Millis) -> Result<u64> {
    in_batches(store, move |tx| logs::expire(tx, log, cutoff, BATCH)).await
}

/// One pass of metrics retention: deletes every usage sample taken before
/// `cutoff`, of every service (deleted ones included), a batch per
/// transaction; returns how many went.
pub async fn expire_samples(store: &Store, cutoff: Millis) -> Result<u64> {
    let services: Vec<ServiceId> =
        store.read(|r| Ok(resources::all_services(r)?.into_iter().map(|s| s.id).collect())).await?;
    let mut deleted = 0;
    for svc in services {
        deleted += in_batches(store, move |tx| tx.remove_samples_before(svc, cutoff, BATCH)).await?;
    }
    Ok(deleted)
}

/// Runs `batch` (which deletes at most [`BATCH`] rows) in one transaction
/// after another until one deletes fewer; returns how many went in all.
async fn in_batches<F>(store: &Store, batch: F) -> Result<u64>
where
    F: FnMut(&mut Tx<'_>) -> Result<usize> + Clone + Send + 'static,
{
    let mut deleted = 0;
    loop {
        let n = store.write(batch.clone()).await?;
        deleted += n as u64;
        if n < BATCH {
            return Ok(deleted);
        }
    }
}

async fn expire_operations(store: &Store, env: EnvironmentId, cutoff: Millis) -> Result<u64> {
    let mut after = store.read(move |r| Ok(r.get_u64(LOG_RETENTION_MARKS, env.0)?.unwrap_or(0))).await?;
    // Whether every operation up to `after` is final with its log gone.
    let mut contiguous = true;
    let mut deleted = 0;
    loop {
        let page = store.read(move |r| operations_after(r, env, after)).await?;
        let Some(last) = page.last() else { return Ok(deleted) };
        after = last.id.0;
        for op in page {
            if op.queued_at >= cutoff {
                return Ok(deleted);
            }
            deleted += expire_log(store, Log::Operation(op.id), cutoff).await?;
            let gone = op.status.is_final() && op.finished_at.is_some_and(|f| f < cutoff);
            contiguous &= gone;
            if contiguous {
                let id = op.id;
                store.write(move |tx| tx.put_u64(LOG_RETENTION_MARKS, env.0, id.0)).await?;
            }
        }
    }
}

fn services_of(r: Reader<'_>, env: EnvironmentId) -> Result<Vec<ServiceId>> {
    let mut out = Vec::new();
    r.scan_index(SERVICES_BY_ENVIRONMENT, env.0, 0..=u64::MAX, false, |id| {
        out.push(ServiceId(id));
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

fn operations_after(r: Reader<'_>, env: EnvironmentId, after: u64) -> Result<Vec<Operation>> {
    let mut out = Vec::new();
    r.scan_index(OPERATIONS_BY_ENVIRONMENT, env.0, after.saturating_add(1)..=u64::MAX, false, |id| {
        if let Some(op) = r.get::<Operation>(OPERATIONS, id)? {
            out.push(op);
        }
        Ok(if out.len() >= OPERATION_PAGE { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NewLine;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_lines_go_and_new_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let svc = Log::Service(ServiceId(7));
        let lines: Vec<NewLine> = (0..2_500).map(|n| NewLine::system(format!("line {n}"))).collect();
        store.write(move |tx| logs::append(tx, svc, &lines)).await.unwrap();
        // Everything is older than a cutoff in the future; nothing is older
        // than one in the past.
        assert_eq!(expire_log(&store, svc, 0).await.unwrap(), 0);
        let later = crate::domain::now_millis() + 1;
        assert_eq!(expire_log(&store, svc, later).await.unwrap(), 2_500);
        let (floor, head) =
            store.read(move |r| Ok((logs::floor(r, svc)?, logs::head(r, svc)?))).await.unwrap();
        assert_eq!((floor, head), (2_500, 2_500));
        // The next line continues the numbering.
        let seq = store.write(move |tx| logs::append(tx, svc, &[NewLine::system("after")])).await.unwrap();
        assert_eq!(seq, 2_501);
        let expired = store.read(move |r| logs::check_cursor(r, svc, 10)).await.unwrap_err();
        assert_eq!(expired.code().as_str(), "CURSOR_EXPIRED");
        store.read(move |r| logs::check_cursor(r, svc, 2_500)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_older_than_the_cutoff_go_in_batches_and_newer_ones_stay() {
        use crate::domain::resource::NewService;
        use crate::domain::usage::Sample;
        use crate::domain::{InstanceId, Name, ServiceKind, ServiceSpec};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let services = store
            .write(|tx| {
                let org = resources::ensure_first_organization(tx, "org")?.id;
                let env = resources::create_environment(tx, org, Name::parse("name", "prod")?, 30)?.id;
                let mut ids = Vec::new();
                for name in ["old", "new"] {
                    let new = NewService {
                        environment_id: env,
                        name: Name::parse("name", name)?,
                        kind: ServiceKind::Application,
                        spec: ServiceSpec::default(),
                        branch: "main".into(),
                        webhook_secret: None,
                    };
                    ids.push(resources::create_service(tx, org, &new)?.id);
                }
                Ok(ids)
            })
            .await
            .unwrap();
        let (old, new) = (services[0], services[1]);
        let sample = |instance: u64, at: Millis| Sample {
            instance: InstanceId(instance),
            at,
            cpu_percent: 12.34,
            memory_bytes: 5 << 20,
            disk_bytes: 4096,
        };
        // Two instances sampled every second: 2,500 samples for `old`, from
        // 0 s; 500 for `new`, from 1,000 s.
        let mut samples = Vec::new();
        for (svc, times) in [(old, 0..1_250), (new, 1_000..1_250)] {
            for t in times {
                samples.extend([(svc, sample(1, t * 1_000)), (svc, sample(2, t * 1_000))]);
            }
        }
        store.write(move |tx| crate::store::metrics::record(tx, &samples)).await.unwrap();
        // Before 1,000 s: the first 1,000 sampling times of `old`, in two
        // full batches and no more.
        let cutoff = 1_000_000;
        assert_eq!(expire_samples(&store, cutoff).await.unwrap(), 2_000);
        assert_eq!(expire_samples(&store, cutoff).await.unwrap(), 0);
        let kept = |svc| {
            store.read(move |r| {
                let mut kept = Vec::new();
                r.scan_samples(svc, (Millis::MIN, Millis::MAX), |s| {
                    kept.push(s);
                    Ok(ControlFlow::Continue(()))
                })?;
                Ok(kept)
            })
        };
        let (old_kept, new_kept) = (kept(old).await.unwrap(), kept(new).await.unwrap());
        assert_eq!((old_kept.len(), new_kept.len()), (500, 500));
        assert_eq!(old_kept[0], sample(1, cutoff), "the first sample kept is the cutoff's, as stored");
    }
}
