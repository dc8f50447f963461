//! The local executor, the embedded default: it really runs services on this
//! machine, as child processes of the server.
//!
//! Each service has a work directory (`<data-dir>/services/<id>/work`) where
//! every command runs, and a `DATABASE` a data directory
//! (`…/<id>/data`, given to its instance as `DATA_DIR`). Instances get
//! `PORT`, `COMMIT`, `INSTANCE_ID` and `SERVICE_NAME` in their environment.

mod instances;
mod process;
pub mod usage;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use instances::{Processes, pick_port, set_status};
pub use process::{LogTarget, signal_group, write_lines};

use crate::domain::{
    Instance, InstanceId, InstanceStatus, NewLine, Operation, OperationType, Service, ServiceId, ServiceKind,
    StepKind, now_millis,
};
use crate::store::{Store, resources};

/// Everything one operation's steps share while it runs.
pub struct Run {
    pub op: Operation,
    pub svc: Service,
    /// The service's current instances when the operation started.
    pub old: Vec<Instance>,
    /// Instances this operation created.
    pub new: Vec<Instance>,
    /// Instances this operation stopped (so a rollback can start them again).
    pub stopped: Vec<Instance>,
    /// When the old instance of a database stopped: the start of downtime.
    pub downtime_from: Option<Instant>,
}

/// What undoing a step did.
pub enum Undo {
    /// The step changed nothing that needs undoing.
    Nothing,
    Undone(String),
    /// The step's effects stay (a release); not a failure of the rollback.
    Irreversible(String),
    Failed(String),
}

/// The environment variable that marks every process the executor starts
/// with the database it belongs to, so start-up recovery finds the orphans
/// of a killed run — and only its own, when several servers share a machine.
pub const OWNER_MARK: &str = "OPSGRAPH_OWNER";

/// Runs steps on this machine.
pub struct LocalExecutor {
    store: Store,
    root: PathBuf,
    /// Value of [`OWNER_MARK`] for this database.
    mark: String,
    processes: Arc<Processes>,
    tasks: TaskTracker,
}

type StepResult = Result<String, String>;

impl LocalExecutor {
    /// An executor keeping its directories under `root`; `mark` names the
    /// database (its canonical path).
    pub fn new(store: Store, root: PathBuf, mark: String, tasks: TaskTracker) -> Arc<Self> {
        Arc::new(Self { store, root, mark, processes: Arc::default(), tasks })
    }

    /// Kills every process a previous run over the same database left
    /// behind (it was killed before it could stop them). Returns how many
    /// process groups were signalled.
    pub fn kill_orphans(&self) -> usize {
        let mark = format!("{OWNER_MARK}={}", self.mark);
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        let mut killed = 0;
        for pid in entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
            if env.split(|b| *b == 0).any(|var| var == mark.as_bytes()) {
                signal_group(pid, nix::sys::signal::Signal::SIGKILL);
                killed += 1;
            }
        }
        killed
    }

    /// What the processes of instance `id` use now; `None` when it has no
    /// running process. Blocks: call from `spawn_blocking`.
    pub fn usage(&self, id: InstanceId) -> Option<usage::ProcUsage> {
        usage::tree_usage(self.processes.live_pid(id)?)
    }

    /// Bytes under the data directory of `svc`. Blocks: call from
    /// `spawn_blocking`.
    pub fn data_usage(&self, svc: ServiceId) -> u64 {
        usage::disk_usage(&self.service_dirs(svc).1)
    }

    /// The work and data directories of a service (which may not exist).
    pub fn service_dirs(&self, svc: crate::domain::ServiceId) -> (PathBuf, PathBuf) {
        let base = self.root.join("services").join(svc.to_string());
        (base.join("work"), base.join("data"))
    }

    /// The work and data directories of a service, created if missing.
    fn dirs(&self, svc: &Service) -> Result<(PathBuf, PathBuf), String> {
        let (work, data) = self.service_dirs(svc.id);
        for dir in [&work, &data] {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        Ok((work, data))
    }

    async fn log(&self, run: &Run, text: String) {
        write_lines(&self.store, LogTarget::Operation(run.op.id), vec![NewLine::system(text)]).await;
    }

    /// Runs one step; `Ok` carries a short summary, `Err` the reason it failed.
    pub async fn run_step(&self, run: &mut Run, step: StepKind) -> StepResult {
        match step {
            StepKind::Build => self.command(run, "build", run.svc.spec.build_command.clone()).await,
            StepKind::Release => self.command(run, "release", run.svc.spec.release_command.clone()).await,
            StepKind::PrepareInstance => self.prepare(run).await,
            StepKind::StartInstances => self.start_new(run).await,
            StepKind::HealthCheck => self.health_check(run).await,
            StepKind::Switch => self.switch(run, true).await,
            StepKind::StopOldInstances => {
                let old: Vec<Instance> = run.old.clone();
                if run.svc.kind == ServiceKind::Database {
                    run.downtime_from = Some(Instant::now());
                }
                self.stop_some(run, old, true).await
            }
            StepKind::HandOverData => {
                let (_, data) = self.dirs(&run.svc)?;
                Ok(format!("data directory {} handed over to the new instance", data.display()))
            }
            StepKind::StopInstances => {
                let (victims, remove) = self.victims(run);
                self.stop_some(run, victims, remove).await
            }
            StepKind::RemoveService => self.remove_service(run).await,
        }
    }

    /// Undoes a step that had succeeded.
    pub async fn undo_step(&self, run: &mut Run, step: StepKind) -> Undo {
        match step {
            StepKind::Build | StepKind::HealthCheck | StepKind::RemoveService => Undo::Nothing,
            StepKind::Release => Undo::Irreversible(
                "the release command's effects (such as a migration) are not undone by a rollback".into(),
            ),
            StepKind::PrepareInstance | StepKind::StartInstances => {
                let new = std::mem::take(&mut run.new);
                if new.is_empty() {
                    return Undo::Nothing;
                }
                match self.stop_some(run, new, true).await {
                    Ok(done) => Undo::Undone(done),
                    Err(e) => Undo::Failed(e),
                }
            }
            StepKind::Switch => match self.switch(run, false).await {
                Ok(done) => Undo::Undone(done),
                Err(e) => Undo::Failed(e),
            },
            StepKind::HandOverData => Undo::Undone("data directory handed back to the old instance".into()),
            StepKind::StopOldInstances | StepKind::StopInstances => {
                let stopped = std::mem::take(&mut run.stopped);
                if stopped.is_empty() {
                    return Undo::Nothing;
                }
                match self.restart(run, stopped).await {
                    Ok(done) => Undo::Undone(done),
                    Err(e) => Undo::Failed(e),
                }
            }
        }
    }

    /// Kills the processes of `instances` (SIGKILL to their groups, all at
    /// once) and waits, at most `KILL_WAIT`, for them to exit: for an
    /// operation ended by force, which must end within a bound.
    pub async fn kill(&self, instances: &[InstanceId]) {
        const KILL_WAIT: Duration = Duration::from_secs(3);
        let all = futures_util::future::join_all(
            instances.iter().map(|id| self.processes.stop(*id, Duration::ZERO)),
        );
        if tokio::time::timeout(KILL_WAIT, all).await.is_err() {
            tracing::warn!(?instances, "killed instance processes had not exited in time");
        }
    }

    /// Refuses new instance processes and stops every running one (server
    /// shutdown).
    pub async fn shutdown(&self, grace: Duration) {
        self.processes.stop_all(grace).await;
    }

    async fn command(&self, run: &Run, what: &str, command: Option<String>) -> StepResult {
        let Some(command) = command.filter(|c| !c.trim().is_empty()) else {
            return Ok(format!("no {what} command"));
        };
        let (work, _) = self.dirs(&run.svc)?;
        let env = [
            (OWNER_MARK, self.mark.clone()),
            ("COMMIT", run.op.commit.clone().unwrap_or_default()),
            ("SERVICE_NAME", run.svc.name.as_str().to_owned()),
            ("OPERATION_ID", run.op.id.to_string()),
        ];
        self.log(run, format!("$ {command}")).await;
        let target = LogTarget::Operation(run.op.id);
        match process::run_to_end(&self.store, &self.tasks, &command, &work, &env, target).await? {
            Some(0) => Ok(format!("{what} command exited with status 0")),
            Some(code) => Err(format!("{what} command exited with status {code}")),
            None => Err(format!("{what} command was killed by a signal")),
        }
    }

    /// How many instances the operation starts. A service without a start
    /// command (a build-only service) runs none.
    fn wanted(&self, run: &Run) -> u32 {
        if run.svc.spec.start_command.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return 0;
        }
        let live = run.old.iter().filter(|i| i.status.is_live()).count() as u32;
        match run.op.op_type {
            OperationType::Scale => run.op.target_instances.unwrap_or(0).saturating_sub(live),
            _ => run.svc.spec.instances,
        }
    }

    async fn prepare(&self, run: &mut Run) -> StepResult {
        self.dirs(&run.svc)?;
        for _ in 0..self.wanted(run) {
            let inst = self.new_instance(run, None).await?;
            run.new.push(inst);
        }
        Ok(format!("{} new instance(s) prepared", run.new.len()))
    }

    async fn new_instance(&self, run: &Run, port: Option<u16>) -> Result<Instance, String> {
        let (svc, op) = (run.svc.id, run.op.id);
        let commit = run.op.commit.clone();
        self.store
            .write(move |tx| {
                let inst = Instance {
                    id: resources::new_instance_id(tx)?,
                    service_id: svc,
                    operation_id: op,
                    commit: commit.clone(),
                    port,
                    pid: None,
                    status: InstanceStatus::Stopped,
                    status_since: now_millis(),
                    current: false,
                    exit_code: None,
                    created_at: now_millis(),
                };
                resources::put_instance(tx, &inst)?;
                Ok(inst)
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn start_new(&self, run: &mut Run) -> StepResult {
        if run.new.is_empty() {
            for _ in 0..self.wanted(run) {
                let inst = self.new_instance(run, None).await?;
                run.new.push(inst);
            }
        }
        let mut started = Vec::new();
        for i in 0..run.new.len() {
            let svc_id = run.svc.id;
            let held: Vec<u16> = self
                .store
                .read(move |r| resources::instances_of(r, svc_id))
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|i| i.status.is_live())
                .filter_map(|i| i.port)
                .collect();
            let port = pick_port(run.svc.spec.port, &held)?;
            let mut inst = run.new[i].clone();
            inst.port = port;
            inst.status = InstanceStatus::Starting;
            inst.status_since = now_millis();
            self.put(&inst).await?;
            let dirs = self.dirs(&run.svc)?;
            let pid = self.processes.start(&self.store, &self.tasks, &run.svc, &inst, &dirs, &self.mark)?;
            inst.pid = Some(pid);
            self.put(&inst).await?;
            started.push(match port {
                Some(p) => format!("{} (pid {pid}, port {p})", inst.id),
                None => format!("{} (pid {pid})", inst.id),
            });
            run.new[i] = inst;
        }
        Ok(if started.is_empty() {
            "no instance to start (no start command, or none wanted)".into()
        } else {
            format!("started {}", started.join(", "))
        })
    }

    async fn put(&self, inst: &Instance) -> Result<(), String> {
        let inst = inst.clone();
        self.store.write(move |tx| resources::put_instance(tx, &inst)).await.map_err(|e| e.to_string())
    }

    async fn health_check(&self, run: &mut Run) -> StepResult {
        for i in 0..run.new.len() {
            let status = self.processes.health_check(&run.svc, &run.new[i]).await?;
            set_status(&self.store, run.new[i].id, status, None).await.map_err(|e| e.to_string())?;
            run.new[i].status = status;
        }
        if let Some(from) = run.downtime_from.take() {
            let ms = from.elapsed().as_millis();
            self.log(run, format!("downtime during the data directory hand-over: {ms} ms")).await;
        }
        Ok(format!("{} instance(s) healthy", run.new.len()))
    }

    /// Makes the new instances current (or, undoing, the old ones again).
    async fn switch(&self, run: &mut Run, forward: bool) -> StepResult {
        let (on, off): (Vec<_>, Vec<_>) = if forward {
            (run.new.iter().map(|i| i.id).collect(), run.old.iter().map(|i| i.id).collect())
        } else {
            (run.old.iter().map(|i| i.id).collect(), run.new.iter().map(|i| i.id).collect())
        };
        // Scaling up adds instances; everything else replaces them.
        let replaces = run.op.op_type != OperationType::Scale;
        let off = if replaces || !forward { off } else { Vec::new() };
        let serving = on.len();
        self.store
            .write(move |tx| {
                for (ids, current) in [(&on, true), (&off, false)] {
                    for id in ids {
                        if let Some(mut inst) = resources::instance(tx.reader(), *id)? {
                            inst.current = current;
                            resources::put_instance(tx, &inst)?;
                        }
                    }
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(if forward {
            format!("{serving} instance(s) now serve")
        } else {
            "old instances serve again".into()
        })
    }

    /// Which instances a STOP, DELETE or scale-down stops, and whether their
    /// rows go away (a stopped service keeps its instances, shown `STOPPED`).
    fn victims(&self, run: &Run) -> (Vec<Instance>, bool) {
        let live: Vec<Instance> = run
            .old
            .iter()
            .filter(|i| i.status.is_live() || i.status == InstanceStatus::Error)
            .cloned()
            .collect();
        match run.op.op_type {
            OperationType::Scale => {
                let keep = run.op.target_instances.unwrap_or(0) as usize;
                (live.into_iter().rev().skip(keep).collect(), true)
            }
            _ => (live, false),
        }
    }

    async fn stop_some(&self, run: &mut Run, instances: Vec<Instance>, remove: bool) -> StepResult {
        let grace = Duration::from_millis(run.svc.spec.stop_grace_ms);
        for inst in &instances {
            // Recorded first: if the step is cut short, the rollback still
            // knows this instance was (being) stopped.
            run.stopped.push(inst.clone());
            set_status(&self.store, inst.id, InstanceStatus::Stopping, None)
                .await
                .map_err(|e| e.to_string())?;
            self.processes.stop(inst.id, grace).await;
            let inst = inst.clone();
            self.store
                .write(move |tx| {
                    if remove {
                        resources::remove_instance(tx, &inst)
                    } else if let Some(mut row) = resources::instance(tx.reader(), inst.id)? {
                        row.status = InstanceStatus::Stopped;
                        row.status_since = now_millis();
                        row.pid = None;
                        resources::put_instance(tx, &row)
                    } else {
                        Ok(())
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(format!("stopped {} instance(s)", instances.len()))
    }

    /// Starts stopped instances again, as they were (a rollback).
    async fn restart(&self, run: &mut Run, instances: Vec<Instance>) -> StepResult {
        let dirs = self.dirs(&run.svc)?;
        for mut inst in instances.clone() {
            // A stop cut short by a cancel may have left the old process
            // alive (it already had its SIGTERM): kill it before the
            // instance starts again.
            self.processes.stop(inst.id, Duration::ZERO).await;
            inst.status = InstanceStatus::Running;
            inst.status_since = now_millis();
            inst.exit_code = None;
            let pid = self.processes.start(&self.store, &self.tasks, &run.svc, &inst, &dirs, &self.mark)?;
            inst.pid = Some(pid);
            self.put(&inst).await?;
        }
        Ok(format!("started {} instance(s) again", instances.len()))
    }

    async fn remove_service(&self, run: &mut Run) -> StepResult {
        let svc = run.svc.id;
        self.store
            .write(move |tx| {
                for inst in resources::instances_of(tx.reader(), svc)? {
                    resources::remove_instance(tx, &inst)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
        let dir = self.root.join("services").join(run.svc.id.to_string());
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(format!("removed {}", dir.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok("nothing on disk to remove".into()),
            Err(e) => Err(format!("removing {}: {e}", dir.display())),
        }
    }
}

/// Runs a monitoring probe command in `dir`: `sh -c`, no input or output,
/// in a process group of its own that is killed when the probe is dropped
/// (it timed out).
pub async fn probe_command(
    command: &str,
    dir: &std::path::Path,
) -> std::io::Result<std::process::ExitStatus> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let mut guard = process::GroupGuard(child.id());
    let status = child.wait().await;
    guard.disarm();
    status
}
