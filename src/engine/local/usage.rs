//! What an instance's processes use, read from `/proc`: the instance's
//! process (the `sh -c` that leads its process group) and every
//! descendant, found through `/proc/<pid>/task/<tid>/children`, so a start
//! command that forks workers is measured whole. A descendant that left
//! the tree (reparented after its parent exited) is no longer counted.
//! Memory is the sum of the processes' resident sets, so pages they share
//! (forked workers) count once per process: an upper bound.
//!
//! Every function here blocks on the file system (procfs reads are quick,
//! but still system calls): call them from `spawn_blocking`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use crate::domain::scaling::Reading;
use crate::domain::usage::cpu_percent;
use crate::domain::{InstanceId, Millis};

/// Most processes counted in one instance's tree (a fork bomb is not
/// walked to its end).
const MAX_PROCESSES: usize = 4_096;

/// The processes of one instance at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcUsage {
    /// CPU time used so far, in clock ticks: user and system time of every
    /// process of the tree, and of the children they waited for (so time
    /// does not vanish when a short-lived child is reaped).
    pub cpu_ticks: u64,
    /// Resident memory of every process of the tree.
    pub rss_bytes: u64,
}

/// Clock ticks per second and page size, read once.
fn units() -> (u64, u64) {
    static UNITS: OnceLock<(u64, u64)> = OnceLock::new();
    *UNITS.get_or_init(|| {
        use nix::unistd::{SysconfVar, sysconf};
        let read = |var, fallback: u64| {
            sysconf(var).ok().flatten().and_then(|v| u64::try_from(v).ok()).unwrap_or(fallback)
        };
        (read(SysconfVar::CLK_TCK, 100), read(SysconfVar::PAGE_SIZE, 4_096))
    })
}

/// Clock ticks per second of the CPU times in `/proc`.
pub fn ticks_per_second() -> u64 {
    units().0
}

/// The usage of the process `pid` and its descendants; `None` when `pid`
/// is gone.
pub fn tree_usage(pid: u32) -> Option<ProcUsage> {
    let page = units().1;
    let mut total = ProcUsage::default();
    let mut pending = vec![pid];
    let mut seen = 0;
    while let Some(p) = pending.pop() {
        let Some((ticks, rss_pages)) = stat(p) else {
            if p == pid {
                return None;
            }
            continue;
        };
        total.cpu_ticks += ticks;
        total.rss_bytes += rss_pages * page;
        seen += 1;
        if seen >= MAX_PROCESSES {
            break;
        }
        children(p, &mut pending);
    }
    Some(total)
}

/// CPU ticks (utime, stime, cutime, cstime) and resident pages of `pid`.
fn stat(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: the
    // fields that matter come after the last `)`, starting at the state.
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let ticks = field(11)? + field(12)? + field(13)? + field(14)?;
    Some((ticks, field(21)?))
}

/// Adds the children of every thread of `pid` to `out`.
fn children(pid: u32, out: &mut Vec<u32>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
    for task in tasks.flatten() {
        let Ok(list) = std::fs::read_to_string(task.path().join("children")) else { continue };
        out.extend(list.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
    }
}

/// Bytes used by the files under `dir` (0 when it does not exist).
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => disk_usage(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Turns successive usage of instances into readings: the CPU figure of a
/// reading is the share of one core used since the instance's previous
/// reading by the same meter (each consumer keeps its own, at its own
/// pace).
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: HashMap<InstanceId, (u64, Millis)>,
}

impl CpuMeter {
    /// The reading of `usage` of `instance` taken at `at`.
    pub fn reading(&mut self, instance: InstanceId, usage: ProcUsage, at: Millis) -> Reading {
        let now = (usage.cpu_ticks, at);
        let before = self.last.insert(instance, now);
        Reading {
            at,
            cpu_percent: before.and_then(|before| cpu_percent(before, now, ticks_per_second())),
            memory_bytes: usage.rss_bytes,
        }
    }

    /// Forgets the instances `keep` says no to (gone, or no longer read).
    pub fn retain(&mut self, keep: impl Fn(InstanceId) -> bool) {
        self.last.retain(|id, _| keep(*id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_tree_is_read_whole() {
        // A shell whose child burns CPU and whose grandchild sleeps.
        use std::os::unix::process::CommandExt;
        let mut shell = std::process::Command::new("sh")
            .process_group(0)
            .arg("-c")
            .arg("sh -c 'sleep 30 & while :; do :; done' & wait")
            .spawn()
            .unwrap();
        let pid = shell.id();
        let mut meter = CpuMeter::default();
        let first = meter.reading(InstanceId(1), tree_usage(pid).unwrap(), 0);
        assert_eq!(first.cpu_percent, None, "a CPU figure needs two readings");
        // Wait (bounded) until the burning child has used some CPU.
        let start = std::time::Instant::now();
        let mut usage = tree_usage(pid).unwrap();
        while usage.cpu_ticks < 20 && start.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(20));
            usage = tree_usage(pid).unwrap();
        }
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL)
            .ok();
        let _ = shell.wait();
        assert!(usage.cpu_ticks >= 20, "the child's CPU is counted: {usage:?}");
        assert!(usage.rss_bytes > 3 * units().1, "three processes hold memory: {usage:?}");
        let later = meter.reading(InstanceId(1), usage, 1_000);
        assert!(later.cpu_percent.unwrap() > 0.0, "{later:?}");
        assert_eq!(tree_usage(pid), None, "gone once reaped");
    }
}
