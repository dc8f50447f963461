//! Child processes of the local executor: commands run through `sh -c` in a
//! process group of their own, so stopping one reaches everything it
//! started; output is pumped line by line into a log.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::domain::log::MAX_LINE;
use crate::domain::{InstanceId, LogStream, NewLine, OperationId, ServiceId};
use crate::store::Store;
use crate::store::logs::{self, Log};

/// Most lines written in one store job.
const MAX_FLUSH: usize = 1024;

/// Where output lines go.
#[derive(Clone, Copy, Debug)]
pub enum LogTarget {
    Operation(OperationId),
    Service(ServiceId, InstanceId),
}

/// Writes `lines` to `target` in one store job. Lines for an operation
/// that is final by then are dropped (see [`logs::append_while_open`]).
pub async fn write_lines(store: &Store, target: LogTarget, lines: Vec<NewLine>) {
    let weight = lines.len();
    let written = match target {
        LogTarget::Operation(op) => {
            store.write_weighted(weight, move |tx| logs::append_while_open(tx, op, &lines).map(drop)).await
        }
        LogTarget::Service(svc, inst) => {
            let lines: Vec<NewLine> = lines.into_iter().map(|l| l.of_instance(inst)).collect();
            store
                .write_weighted(weight, move |tx| logs::append(tx, Log::Service(svc), &lines).map(drop))
                .await
        }
    };
    if let Err(error) = written {
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
    let (tx, mut rx) = mpsc::channel::<NewLine>(MAX_FLUSH);
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

/// Reads `pipe` line by line. A line longer than [`MAX_LINE`] is sent in
/// pieces as it arrives (never held whole), cut on character boundaries.
async fn read_lines(pipe: impl AsyncRead + Unpin, stream: LogStream, tx: mpsc::Sender<NewLine>) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    let mut continued = false;
    loop {
        let limit = (MAX_LINE - buf.len()) as u64;
        match (&mut reader).take(limit).read_until(b'\n', &mut buf).await {
            Ok(0) if buf.is_empty() => return,
            Err(_) => return,
            Ok(_) => {}
        }
        let ended = buf.last() == Some(&b'\n');
        let at_eof = !ended && buf.len() < MAX_LINE;
        if ended {
            buf.pop();
        }
        // A piece cut mid-character keeps the character's first bytes for
        // the next piece.
        let keep = if ended || at_eof { 0 } else { incomplete_tail(&buf) };
        let rest = buf.split_off(buf.len() - keep);
        let line = NewLine { continued, ..NewLine::new(stream, String::from_utf8_lossy(&buf)) };
        if tx.send(line).await.is_err() {
            return;
        }
        continued = !ended && !at_eof;
        buf = rest;
        if at_eof {
            return;
        }
    }
}

/// How many bytes at the end of `bytes` start a UTF-8 character that is
/// not complete yet.
fn incomplete_tail(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => bytes.len() - e.valid_up_to(),
        _ => 0,
    }
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

    #[tokio::test]
    async fn long_output_lines_arrive_in_pieces_that_rejoin() {
        let long = "é".repeat(MAX_LINE / 2 + 10);
        let input = format!("a\n{long}\nlast");
        let (tx, mut rx) = mpsc::channel(16);
        read_lines(input.as_bytes(), LogStream::Stdout, tx).await;
        let mut lines = Vec::new();
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
        let texts: Vec<(&str, bool)> = lines.iter().map(|l| (l.text.as_str(), l.continued)).collect();
        assert_eq!(texts.len(), 4);
        assert_eq!(texts[0], ("a", false));
        assert!(!texts[1].1 && texts[2].1, "the second piece continues the first");
        assert_eq!(format!("{}{}", texts[1].0, texts[2].0), long);
        assert!(lines.iter().all(|l| l.text.len() <= MAX_LINE));
        assert_eq!(texts[3], ("last", false));
    }
}
