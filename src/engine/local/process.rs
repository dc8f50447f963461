//! Child processes of the local executor: commands run through `sh -c` in a
//! process group of their own, so stopping one reaches everything it
//! started; output is pumped line by line into a log.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::domain::{InstanceId, LogStream, OperationId, ServiceId};
use crate::store::{Store, operations};

/// Longest line kept whole; longer output is cut into several lines.
const MAX_LINE: usize = 64 * 1024;
/// Most lines written in one store job.
const MAX_FLUSH: usize = 1024;

/// Where output lines go.
#[derive(Clone, Copy, Debug)]
pub enum LogTarget {
    Operation(OperationId),
    Service(ServiceId, InstanceId),
}

/// Writes `lines` to `target` in one store job.
pub async fn write_lines(store: &Store, target: LogTarget, lines: Vec<(LogStream, String)>) {
    let result = match target {
        LogTarget::Operation(op) => {
            let lines: Vec<_> = lines.into_iter().map(|(s, t)| (s, t, None)).collect();
            store.write(move |tx| operations::append_logs(tx, op, &lines)).await
        }
        LogTarget::Service(svc, inst) => {
            let lines: Vec<_> = lines.into_iter().map(|(s, t)| (s, t, Some(inst))).collect();
            store.write(move |tx| operations::append_service_logs(tx, svc, &lines)).await
        }
    };
    if let Err(error) = result {
        tracing::error!(%error, ?target, "writing log lines failed");
    }
}

/// A `sh -c` command with the given directory and environment, in its own
/// process group, with piped output.
pub fn shell(command: &str, dir: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Kills the whole process group of `pid` when dropped, so a cancelled or
/// abandoned command leaves nothing behind.
pub struct GroupGuard(pub Option<u32>);

impl GroupGuard {
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            signal_group(pid, Signal::SIGKILL);
        }
    }
}

/// Sends `signal` to the process group led by `pid`; a group that is gone
/// already is not an error.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// Starts pumping the child's stdout and stderr into `target`. The returned
/// task ends when both pipes are closed and every line is written.
pub fn pump_output(
    store: Store,
    tasks: &TaskTracker,
    child: &mut Child,
    target: LogTarget,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<(LogStream, String)>(MAX_FLUSH);
    if let Some(out) = child.stdout.take() {
        tokio::spawn(read_lines(out, LogStream::Stdout, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(read_lines(err, LogStream::Stderr, tx));
    }
    // Tracked: the server waits for the last lines to be written.
    tasks.spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, MAX_FLUSH).await > 0 {
            write_lines(&store, target, std::mem::take(&mut batch)).await;
        }
    })
}

async fn read_lines(pipe: impl AsyncRead + Unpin, stream: LogStream, tx: mpsc::Sender<(LogStream, String)>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                let text = String::from_utf8_lossy(&buf);
                for part in split_long(&text) {
                    if tx.send((stream, part.to_owned())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Cuts `text` into pieces of at most [`MAX_LINE`] bytes on character
/// boundaries.
pub fn split_long(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// Runs `command` to completion with its output pumped to `target`;
/// returns its exit code (`None` when killed by a signal).
pub async fn run_to_end(
    store: &Store,
    tasks: &TaskTracker,
    command: &str,
    dir: &Path,
    env: &[(&str, String)],
    target: LogTarget,
) -> Result<Option<i32>, String> {
    let mut child = shell(command, dir, env).spawn().map_err(|e| format!("could not start `sh -c`: {e}"))?;
    let mut guard = GroupGuard(child.id());
    let pump = pump_output(store.clone(), tasks, &mut child, target);
    let status = child.wait().await.map_err(|e| format!("waiting for the command failed: {e}"))?;
    // Grandchildren may hold the pipes open; the group dies with the command.
    if let Some(pid) = guard.0 {
        signal_group(pid, Signal::SIGKILL);
    }
    guard.disarm();
    let _ = tokio::time::timeout(Duration::from_secs(5), pump).await;
    Ok(status.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_split_not_truncated() {
        let text = "é".repeat(MAX_LINE);
        let parts = split_long(&text);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.len() <= MAX_LINE));
        assert_eq!(split_long("short"), ["short"]);
    }
}
