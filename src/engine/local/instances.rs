//! Instance processes: start, supervise, health-check and stop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::task::TaskTracker;

use super::process::{LogTarget, pump_output, shell, signal_group, write_lines};
use crate::domain::{
    DomainError, Instance, InstanceId, InstanceStatus, NewLine, Service, ServiceKind, now_millis,
};
use crate::store::{Store, resources};

/// How a supervised process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
}

/// A running instance process.
struct Process {
    pid: u32,
    /// Set before an intended stop, so the exit is not taken for a crash.
    stopping: std::sync::atomic::AtomicBool,
    exited: watch::Receiver<Option<Exit>>,
}

/// The instance processes this server started, by instance. An entry stays
/// after its process exits (so a health check can read how it ended) until
/// the instance is stopped.
#[derive(Default)]
pub struct Processes {
    map: Mutex<HashMap<InstanceId, Arc<Process>>>,
    /// Set at shutdown: no new process may start.
    closing: std::sync::atomic::AtomicBool,
}

impl Processes {
    fn get(&self, id: InstanceId) -> Option<Arc<Process>> {
        self.map.lock().expect("process map").get(&id).cloned()
    }

    /// The pid of the process of `id` while it runs (never the pid of one
    /// that exited: it may belong to another process by now).
    pub fn live_pid(&self, id: InstanceId) -> Option<u32> {
        self.get(id).filter(|p| p.exited.borrow().is_none()).map(|p| p.pid)
    }

    /// Starts the process of `inst` and supervises it: its output goes to
    /// the service log, its exit updates the instance status. Returns the pid.
    pub fn start(
        self: &Arc<Self>,
        store: &Store,
        tasks: &TaskTracker,
        svc: &Service,
        inst: &Instance,
        dirs: &(PathBuf, PathBuf),
        mark: &str,
    ) -> Result<u32, String> {
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("the server is shutting down".into());
        }
        let command = svc.spec.start_command.as_deref().unwrap_or_default();
        let (work, data) = dirs;
        let mut env = vec![
            (super::OWNER_MARK, mark.to_owned()),
            ("INSTANCE_ID", inst.id.to_string()),
            ("SERVICE_NAME", svc.name.as_str().to_owned()),
            ("COMMIT", inst.commit.clone().unwrap_or_default()),
        ];
        if let Some(port) = inst.port {
            env.push(("PORT", port.to_string()));
        }
        // Every service has a data directory (its disk, watched against
        // the quota); a database's is handed over between instances.
        env.push(("DATA_DIR", data.display().to_string()));
        let mut child = shell(command, work, &env)
            .spawn()
            .map_err(|e| format!("could not start instance {}: {e}", inst.id))?;
        let pid = child.id().ok_or("the instance exited before it could be watched")?;
        let (exit_tx, exit_rx) = watch::channel(None);
        let process = Arc::new(Process { pid, stopping: false.into(), exited: exit_rx });
        self.map.lock().expect("process map").insert(inst.id, process.clone());
        let pump = pump_output(store.clone(), tasks, &mut child, LogTarget::Service(svc.id, inst.id));
        let (store, kind, id, svc_id) = (store.clone(), svc.kind, inst.id, svc.id);
        tasks.spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code());
            let _ = pump.await;
            let _ = exit_tx.send(Some(Exit { code }));
            if process.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let status = match (kind, code) {
                (ServiceKind::Job, Some(0)) => InstanceStatus::Completed,
                _ => InstanceStatus::Error,
            };
            let text = match code {
                Some(c) => format!("instance {id} exited with status {c}"),
                None => format!("instance {id} was killed by a signal"),
            };
            write_lines(&store, LogTarget::Service(svc_id, id), vec![NewLine::system(text)]).await;
            if let Err(error) = set_status(&store, id, status, code).await {
                tracing::error!(%error, instance = %id, "recording an instance exit failed");
            }
        });
        Ok(pid)
    }

    /// Stops the process of `id`: SIGTERM to its group, SIGKILL after
    /// `grace`. Returns once it has exited (or was not running). A process
    /// that exited already is not signalled: its pid may belong to another
    /// process by now.
    pub async fn stop(&self, id: InstanceId, grace: Duration) {
        let Some(process) = self.get(id) else { return };
        process.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut exited = process.exited.clone();
        if exited.borrow().is_none() {
            signal_group(process.pid, Signal::SIGTERM);
            if timeout(grace, exited.wait_for(Option::is_some)).await.is_err() {
                signal_group(process.pid, Signal::SIGKILL);
                let _ = exited.wait_for(Option::is_some).await;
            }
        }
        // Only this process's entry: a rollback may have started a new one
        // for the same instance meanwhile.
        let mut map = self.map.lock().expect("process map");
        if map.get(&id).is_some_and(|p| Arc::ptr_eq(p, &process)) {
            map.remove(&id);
        }
    }

    /// Refuses new processes, then stops every running one (shutdown).
    pub async fn stop_all(&self, grace: Duration) {
        self.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        let ids: Vec<InstanceId> = self.map.lock().expect("process map").keys().copied().collect();
        futures_util::future::join_all(ids.into_iter().map(|id| self.stop(id, grace))).await;
    }

    /// Waits until `inst` is healthy: its port accepts a TCP connection
    /// within the timeout, or (without a port) its process stays alive for
    /// the grace period. A job that exits 0 in that time is healthy too.
    pub async fn health_check(&self, svc: &Service, inst: &Instance) -> Result<InstanceStatus, String> {
        let Some(process) = self.get(inst.id) else {
            return Err(format!("instance {} is not running", inst.id));
        };
        let mut exited = process.exited.clone();
        let hc = &svc.spec.health_check;
        let exit_result = |exit: Exit| match (svc.kind, exit.code) {
            (ServiceKind::Job, Some(0)) => Ok(InstanceStatus::Completed),
            (_, Some(code)) => {
                Err(format!("instance {} exited with status {code} before it was healthy", inst.id))
            }
            (_, None) => Err(format!("instance {} was killed before it was healthy", inst.id)),
        };
        let Some(port) = inst.port else {
            return match timeout(Duration::from_millis(hc.grace_ms), exited.wait_for(Option::is_some)).await {
                Ok(Ok(exit)) => exit_result(exit.unwrap_or(Exit { code: None })),
                _ => Ok(InstanceStatus::Running),
            };
        };
        let deadline = Instant::now() + Duration::from_millis(hc.timeout_ms);
        loop {
            if let Some(exit) = *exited.borrow() {
                return exit_result(exit);
            }
            let attempt = timeout(Duration::from_millis(500), TcpStream::connect(("127.0.0.1", port)));
            if let Ok(Ok(_)) = attempt.await {
                return Ok(InstanceStatus::Running);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "instance {} did not accept a connection on port {port} within {} ms",
                    inst.id, hc.timeout_ms
                ));
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Records a new status of an instance (if its row still exists).
pub async fn set_status(
    store: &Store,
    id: InstanceId,
    status: InstanceStatus,
    exit_code: Option<i32>,
) -> Result<(), DomainError> {
    store
        .write(move |tx| {
            if let Some(mut inst) = resources::instance(tx.reader(), id)? {
                if inst.status != status {
                    inst.status = status;
                    inst.status_since = now_millis();
                }
                inst.exit_code = exit_code.or(inst.exit_code);
                resources::put_instance(tx, &inst)?;
            }
            Ok(())
        })
        .await
}

/// Picks a port for a new instance: any free port when the spec says 0,
/// else the lowest port from the spec's upward that no live instance of the
/// service holds and that can be bound now.
pub fn pick_port(base: Option<u16>, held: &[u16]) -> Result<Option<u16>, String> {
    let Some(base) = base else { return Ok(None) };
    if base == 0 {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
        return Ok(Some(listener.local_addr().map_err(|e| e.to_string())?.port()));
    }
    (base..=u16::MAX)
        .filter(|p| !held.contains(p))
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .map(Some)
        .ok_or_else(|| format!("no free port at or above {base}"))
}
