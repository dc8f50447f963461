//! Operation and service logs: appending lines with the next `seq`, reading
//! them by position or time, and where retention has deleted them up to.
//!
//! Within one log, `seq` and time both only grow: a line is never stored
//! with an earlier time than the line before it, so a time range is found
//! by a binary search over `seq`.

use std::ops::ControlFlow;
use std::sync::Arc;

use redb::TableDefinition;

use super::access::{Reader, Result, Tx};
use super::events::{Event, LiveLines};
use super::operations::{operation, operation_by_id};
use super::paging::{Page, PageArgs, paginate};
use super::tables::*;
use crate::domain::{
    DomainError, LogFilter, LogLine, Millis, NewLine, OperationId, OrganizationId, ServiceId, now_millis,
};

/// One log: an operation's, or a service's runtime log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    Operation(OperationId),
    Service(ServiceId),
}

impl Log {
    fn table(self) -> TableDefinition<'static, (u64, u64), &'static [u8]> {
        match self {
            Self::Operation(_) => OPERATION_LOGS,
            Self::Service(_) => SERVICE_LOGS,
        }
    }

    fn floors(self) -> TableDefinition<'static, u64, u64> {
        match self {
            Self::Operation(_) => OPERATION_LOG_FLOORS,
            Self::Service(_) => SERVICE_LOG_FLOORS,
        }
    }

    fn owner(self) -> u64 {
        match self {
            Self::Operation(op) => op.0,
            Self::Service(svc) => svc.0,
        }
    }
}

/// Most text a log event carries to live subscribers; a larger batch only
/// says it is stored, and subscribers read it back.
pub const LIVE_BYTES: usize = 32 * 1024;

/// Appends `lines` with the next sequence numbers and returns the last
/// one. Lines longer than [`MAX_LINE`](crate::domain::log::MAX_LINE) are
/// stored in pieces.
pub fn append(tx: &mut Tx<'_>, log: Log, lines: &[NewLine]) -> Result<u64> {
    let (table, owner) = (log.table(), log.owner());
    let (mut seq, last_at) = match tx.reader().last_row::<LogLine>(table, owner)? {
        Some((seq, line)) => (seq, line.at),
        None => (tx.reader().get_u64(log.floors(), owner)?.unwrap_or(0), Millis::MIN),
    };
    // Never earlier than the line before, even if the clock stepped back.
    let at = now_millis().max(last_at);
    let mut stored = Vec::with_capacity(lines.len());
    let mut push = |line: &NewLine| {
        seq += 1;
        let NewLine { stream, text, instance, continued } = line;
        stored.push(LogLine {
            seq,
            at,
            stream: *stream,
            text: text.clone(),
            instance: *instance,
            continued: *continued,
        });
    };
    for line in lines {
        if line.text.len() > crate::domain::log::MAX_LINE {
            line.clone().into_pieces().iter().for_each(&mut push);
        } else {
            push(line);
        }
    }
    tx.put_rows(table, owner, stored.iter().map(|l| (l.seq, l)))?;
    tx.lines += stored.len() as u64;
    let bytes: usize = stored.iter().map(|l| l.text.len()).sum();
    let lines = (bytes <= LIVE_BYTES).then(|| Arc::new(LiveLines::new(stored)));
    tx.emit(Event::Log { log, last_seq: seq, lines });
    Ok(seq)
}

/// Appends the engine's own lines (command output, `SYSTEM` notes) to an
/// operation's log, unless the operation is final: output that arrives
/// after an operation was ended by force (the last lines of a killed
/// command) is dropped, since a final operation never changes again.
/// Returns whether the lines were stored.
pub fn append_while_open(tx: &mut Tx<'_>, op: OperationId, lines: &[NewLine]) -> Result<bool> {
    if operation_by_id(tx.reader(), op)?.status.is_final() {
        return Ok(false);
    }
    append(tx, Log::Operation(op), lines)?;
    Ok(true)
}

/// Appends lines sent by a client to a running operation's log; returns
/// the `seq` of the first and the last line stored. A final operation's
/// log is closed: `INVALID_TRANSITION`.
pub fn append_to_operation(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    op: OperationId,
    lines: &[NewLine],
) -> Result<(u64, u64)> {
    let found = operation(tx.reader(), org, op)?;
    if found.status.is_final() {
        return Err(DomainError::InvalidTransition(format!(
            "operation {op} is {}: its log takes no more lines",
            found.status.as_str()
        )));
    }
    let first = head(tx.reader(), Log::Operation(op))? + 1;
    Ok((first, append(tx, Log::Operation(op), lines)?))
}

/// A page of a log by sequence number, with the lines that match `filter`.
/// A time range narrows the scan itself (times grow with `seq`).
pub fn page(r: Reader<'_>, log: Log, filter: &LogFilter, args: &PageArgs) -> Result<Page<LogLine>> {
    let (table, owner) = (log.table(), log.owner());
    let mut args = *args;
    if let Some(since) = filter.since {
        let start = position_before(r, log, since)?;
        args.after = Some(args.after.map_or(start, |a| a.max(start)));
    }
    if let Some(until) = filter.until {
        let end = position_before(r, log, until)? + 1;
        args.before = Some(args.before.map_or(end, |b| b.min(end)));
    }
    paginate(&args, false, |range, rev, visit| {
        r.scan_rows(table, owner, range, rev, |seq, line: LogLine| {
            if filter.matches(&line) { visit(seq, line) } else { Ok(ControlFlow::Continue(())) }
        })
    })
}

/// The lines after `after`, at most `limit`, in order.
pub fn lines_after(r: Reader<'_>, log: Log, after: u64, limit: usize) -> Result<Vec<LogLine>> {
    let mut out = Vec::new();
    r.scan_rows(log.table(), log.owner(), after.saturating_add(1)..=u64::MAX, false, |_, line| {
        out.push(line);
        Ok(if out.len() >= limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    Ok(out)
}

/// The `seq` of the last stored line (0 when none was ever stored).
pub fn head(r: Reader<'_>, log: Log) -> Result<u64> {
    let last = r.last_seq(log.table(), log.owner())?;
    Ok(last.max(floor(r, log)?))
}

/// The highest `seq` retention has deleted (0 when none).
pub fn floor(r: Reader<'_>, log: Log) -> Result<u64> {
    Ok(r.get_u64(log.floors(), log.owner())?.unwrap_or(0))
}

/// Checks that reading after `after` misses nothing: `CURSOR_EXPIRED` when
/// lines after it were deleted by retention. 0 means "from the oldest
/// line kept" and is always valid.
pub fn check_cursor(r: Reader<'_>, log: Log, after: u64) -> Result<()> {
    let floor = floor(r, log)?;
    if after > 0 && after < floor {
        return Err(DomainError::CursorExpired(format!(
            "lines up to {floor} of this log were deleted by retention: resume from {floor} or later"
        )));
    }
    Ok(())
}

/// The position just before the first line stored at or after `since`:
/// reading after it starts at that line.
pub fn position_before(r: Reader<'_>, log: Log, since: Millis) -> Result<u64> {
    let (table, owner) = (log.table(), log.owner());
    // Invariant: every line at or below `lo` is older than `since`, every
    // stored line above `hi` is not.
    let (mut lo, mut hi) = (floor(r, log)?, r.last_seq(table, owner)?);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        match r.get_row::<LogLine>(table, (owner, mid))? {
            Some(line) if line.at < since => lo = mid,
            _ => hi = mid - 1,
        }
    }
    Ok(lo)
}

/// Deletes the lines of `log` stored before `cutoff`, at most `limit`;
/// returns how many went. Moves the log's floor up to the last one.
pub fn expire(tx: &mut Tx<'_>, log: Log, cutoff: Millis, limit: usize) -> Result<usize> {
    let r = tx.reader();
    let from = floor(r, log)?;
    let upto = position_before(r, log, cutoff)?.min(from.saturating_add(limit as u64));
    if upto <= from {
        return Ok(0);
    }
    let removed = tx.remove_rows(log.table(), log.owner(), from + 1..=upto, limit)?;
    tx.put_u64(log.floors(), log.owner(), upto)?;
    Ok(removed)
}
