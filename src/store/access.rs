//! Typed access to tables inside a read or a write transaction.
//!
//! [`Reader`] reads the same way in both kinds of transaction, so every
//! lookup is written once and used by queries and by mutations that check
//! before they write. [`Tx`] adds the writes and collects the events that
//! the writer publishes once the transaction has committed.

use std::ops::{Bound, ControlFlow, RangeInclusive};

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec;
use super::events::Event;
use super::tables::{OPERATIONS_BY_ENVIRONMENT_TIME, SEQUENCES};
use crate::domain::DomainError;

pub(crate) type Result<T> = std::result::Result<T, DomainError>;

/// Turns a storage error into an internal error that keeps its detail for
/// the server log.
pub(crate) fn internal(e: impl std::fmt::Display) -> DomainError {
    DomainError::internal(format!("storage: {e}"))
}

#[derive(Clone, Copy)]
enum Txn<'a> {
    Read(&'a ReadTransaction),
    Write(&'a WriteTransaction),
}

/// Opens `$def` in whichever transaction `$txn` is and evaluates `$body`
/// with the table bound to `$t`.
macro_rules! with_table {
    ($txn:expr, $def:expr, |$t:ident| $body:expr) => {
        match $txn {
            Txn::Read(r) => {
                let $t = r.open_table($def).map_err(internal)?;
                $body
            }
            Txn::Write(w) => {
                let $t = w.open_table($def).map_err(internal)?;
                $body
            }
        }
    };
}

mod samples;

/// Reads rows and index entries.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    txn: Txn<'a>,
}

impl<'a> Reader<'a> {
    pub(crate) fn of_read(txn: &'a ReadTransaction) -> Self {
        Self { txn: Txn::Read(txn) }
    }

    /// The row `id` of `def`, decoded.
    pub fn get<T: DeserializeOwned>(&self, def: TableDefinition<u64, &[u8]>, id: u64) -> Result<Option<T>> {
        with_table!(self.txn, def, |t| match t.get(id).map_err(internal)? {
            Some(v) => Ok(Some(codec::decode(v.value())?)),
            None => Ok(None),
        })
    }

    /// Every row of a table, decoded (for small tables and recovery).
    pub fn all_rows<T: DeserializeOwned>(&self, def: TableDefinition<u64, &[u8]>) -> Result<Vec<T>> {
        with_table!(self.txn, def, |t| {
            let mut out = Vec::new();
            for entry in t.iter().map_err(internal)? {
                let (_, value) = entry.map_err(internal)?;
                out.push(codec::decode(value.value())?);
            }
            Ok(out)
        })
    }

    /// Every key of an index table, in order.
    pub fn index_keys<K>(&self, def: TableDefinition<(K, u64), ()>) -> Result<Vec<(u64, u64)>>
    where
        K: redb::Key + 'static,
        for<'k> K::SelfType<'k>: Into<u64>,
    {
        with_table!(self.txn, def, |t| {
            let mut out = Vec::new();
            for entry in t.iter().map_err(internal)? {
                let (key, _) = entry.map_err(internal)?;
                let (a, b) = key.value();
                out.push((a.into(), b));
            }
            Ok(out)
        })
    }

    /// Calls `f` with the second key part of every `(prefix, k)` entry of an
    /// index with `k` in `range`, ascending (or descending with `rev`), until
    /// `f` breaks.
    pub fn scan_index<K: redb::Key + 'static>(
        &self,
        def: TableDefinition<(K, u64), ()>,
        prefix: K::SelfType<'_>,
        range: RangeInclusive<u64>,
        rev: bool,
        mut f: impl FnMut(u64) -> Result<ControlFlow<()>>,
    ) -> Result<()>
    where
        for<'k> K::SelfType<'k>: Copy,
    {
        let (lo, hi) = range.into_inner();
        if lo > hi {
            return Ok(());
        }
        with_table!(self.txn, def, |t| {
            let mut iter = t.range((prefix, lo)..=(prefix, hi)).map_err(internal)?;
            loop {
                let next = if rev { iter.next_back() } else { iter.next() };
                let Some(entry) = next else { break };
                let (key, _) = entry.map_err(internal)?;
                if f(key.value().1)?.is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Calls `f` with every row of a `u64`-keyed table with its key in
    /// `range`, decoded, ascending (or descending with `rev`), until `f`
    /// breaks.
    pub fn scan_table<T: DeserializeOwned>(
        &self,
        def: TableDefinition<u64, &[u8]>,
        range: RangeInclusive<u64>,
        rev: bool,
        mut f: impl FnMut(u64, T) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let (lo, hi) = range.into_inner();
        if lo > hi {
            return Ok(());
        }
        with_table!(self.txn, def, |t| {
            let mut iter = t.range(lo..=hi).map_err(internal)?;
            loop {
                let next = if rev { iter.next_back() } else { iter.next() };
                let Some(entry) = next else { break };
                let (key, value) = entry.map_err(internal)?;
                if f(key.value(), codec::decode(value.value())?)?.is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Calls `f` with every `(prefix, seq)` row of a log-like table with
    /// `seq` in `range`, decoded, until `f` breaks.
    pub fn scan_rows<T: DeserializeOwned>(
        &self,
        def: TableDefinition<(u64, u64), &[u8]>,
        prefix: u64,
        range: RangeInclusive<u64>,
        rev: bool,
        mut f: impl FnMut(u64, T) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let (lo, hi) = range.into_inner();
        if lo > hi {
            return Ok(());
        }
        with_table!(self.txn, def, |t| {
            let mut iter = t.range((prefix, lo)..=(prefix, hi)).map_err(internal)?;
            loop {
                let next = if rev { iter.next_back() } else { iter.next() };
                let Some(entry) = next else { break };
                let (key, value) = entry.map_err(internal)?;
                let row = codec::decode(value.value())?;
                if f(key.value().1, row)?.is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Every key of the time index of operations, in order.
    pub fn time_index_keys(&self) -> Result<Vec<(u64, i64, u64)>> {
        with_table!(self.txn, OPERATIONS_BY_ENVIRONMENT_TIME, |t| {
            let mut out = Vec::new();
            for entry in t.iter().map_err(internal)? {
                out.push(entry.map_err(internal)?.0.value());
            }
            Ok(out)
        })
    }

    /// Calls `f` with the `(queued_at, OperationId)` of every operation of
    /// environment `env` queued in `[from, to)` and after the position
    /// `after`, in queue-time order, until `f` breaks: one range scan.
    pub fn scan_time_index(
        &self,
        env: u64,
        (from, to): (i64, i64),
        after: Option<(i64, u64)>,
        mut f: impl FnMut(i64, u64) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let start = match after {
            Some((at, id)) if (at, id) >= (from, 0) => Bound::Excluded((env, at, id)),
            _ => Bound::Included((env, from, 0)),
        };
        // Ids start at 1: `(env, to, 0)` lies before every key queued at `to`.
        let end = Bound::Excluded((env, to, 0));
        with_table!(self.txn, OPERATIONS_BY_ENVIRONMENT_TIME, |t| {
            for entry in t.range::<(u64, i64, u64)>((start, end)).map_err(internal)? {
                let (_, at, id) = entry.map_err(internal)?.0.value();
                if f(at, id)?.is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    /// The highest `seq` stored under `prefix`, or 0.
    pub fn last_seq(&self, def: TableDefinition<(u64, u64), &[u8]>, prefix: u64) -> Result<u64> {
        with_table!(self.txn, def, |t| {
            let last = t
                .range((prefix, 0)..=(prefix, u64::MAX))
                .map_err(internal)?
                .next_back()
                .transpose()
                .map_err(internal)?;
            Ok(last.map_or(0, |(k, _)| k.value().1))
        })
    }

    /// The highest `seq` stored under `prefix` and its row, if any.
    pub fn last_row<T: DeserializeOwned>(
        &self,
        def: TableDefinition<(u64, u64), &[u8]>,
        prefix: u64,
    ) -> Result<Option<(u64, T)>> {
        let mut last = None;
        self.scan_rows(def, prefix, 0..=u64::MAX, true, |seq, row| {
            last = Some((seq, row));
            Ok(ControlFlow::Break(()))
        })?;
        Ok(last)
    }

    /// The row `seq` of `prefix` in a log-like table.
    pub fn get_row<T: DeserializeOwned>(
        &self,
        def: TableDefinition<(u64, u64), &[u8]>,
        key: (u64, u64),
    ) -> Result<Option<T>> {
        with_table!(self.txn, def, |t| match t.get(key).map_err(internal)? {
            Some(v) => Ok(Some(codec::decode(v.value())?)),
            None => Ok(None),
        })
    }

    /// A value of a `u64 -> u64` table.
    pub fn get_u64(&self, def: TableDefinition<u64, u64>, key: u64) -> Result<Option<u64>> {
        with_table!(self.txn, def, |t| Ok(t.get(key).map_err(internal)?.map(|v| v.value())))
    }

    /// A value of a small `&str`-keyed table.
    pub fn get_number(&self, def: TableDefinition<&str, u64>, key: &str) -> Result<Option<u64>> {
        with_table!(self.txn, def, |t| Ok(t.get(key).map_err(internal)?.map(|v| v.value())))
    }

    /// A row of a `(u64, &str)`-keyed table, decoded.
    pub fn get_keyed_row<T: DeserializeOwned>(
        &self,
        def: TableDefinition<(u64, &str), &[u8]>,
        key: (u64, &str),
    ) -> Result<Option<T>> {
        with_table!(self.txn, def, |t| match t.get(key).map_err(internal)? {
            Some(v) => Ok(Some(codec::decode(v.value())?)),
            None => Ok(None),
        })
    }

    /// Every row of a `(u64, &str)`-keyed table with its key, decoded.
    pub fn keyed_rows<T: DeserializeOwned>(
        &self,
        def: TableDefinition<(u64, &str), &[u8]>,
    ) -> Result<Vec<((u64, String), T)>> {
        with_table!(self.txn, def, |t| {
            let mut out = Vec::new();
            for entry in t.iter().map_err(internal)? {
                let (key, value) = entry.map_err(internal)?;
                let (a, b) = key.value();
                out.push(((a, b.to_owned()), codec::decode(value.value())?));
            }
            Ok(out)
        })
    }

    /// A value of a `(u64, &str)`-keyed table.
    pub fn get_keyed(&self, def: TableDefinition<(u64, &str), u64>, key: (u64, &str)) -> Result<Option<u64>> {
        with_table!(self.txn, def, |t| Ok(t.get(key).map_err(internal)?.map(|v| v.value())))
    }
}

/// A write transaction shared by the jobs of one commit, plus the events
/// of the job that is running.
pub struct Tx<'a> {
    txn: &'a WriteTransaction,
    pub(crate) events: Vec<Event>,
    /// Whether the job wrote anything: a job that fails before its first
    /// write leaves the shared transaction as it found it.
    pub(crate) wrote: bool,
    /// Log lines the job appended (counted once committed).
    pub(crate) lines: u64,
}

impl<'a> Tx<'a> {
    pub(crate) fn new(txn: &'a WriteTransaction) -> Self {
        Self { txn, events: Vec::new(), wrote: false, lines: 0 }
    }

    /// Reads inside this transaction, seeing its own writes.
    pub fn reader(&self) -> Reader<'a> {
        Reader { txn: Txn::Write(self.txn) }
    }

    /// Publishes `event` once the transaction has committed.
    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// The next id of `kind`: 1, 2, 3 …
    pub fn next_id(&mut self, kind: &str) -> Result<u64> {
        self.wrote = true;
        let mut t = self.txn.open_table(SEQUENCES).map_err(internal)?;
        let next = t.get(kind).map_err(internal)?.map_or(0, |v| v.value()) + 1;
        t.insert(kind, next).map_err(internal)?;
        Ok(next)
    }

    pub fn put<T: Serialize>(&mut self, def: TableDefinition<u64, &[u8]>, id: u64, row: &T) -> Result<()> {
        self.wrote = true;
        let bytes = codec::encode(row)?;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.insert(id, bytes.as_slice()).map_err(internal)?;
        Ok(())
    }

    pub fn delete(&mut self, def: TableDefinition<u64, &[u8]>, id: u64) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.remove(id).map_err(internal)?;
        Ok(())
    }

    pub fn put_row<T: Serialize>(
        &mut self,
        def: TableDefinition<(u64, u64), &[u8]>,
        key: (u64, u64),
        row: &T,
    ) -> Result<()> {
        self.wrote = true;
        let bytes = codec::encode(row)?;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.insert(key, bytes.as_slice()).map_err(internal)?;
        Ok(())
    }

    /// Stores `rows` under `prefix` with their `seq`, opening the table
    /// once: the hot path of log ingest.
    pub fn put_rows<'r, T: Serialize + 'r>(
        &mut self,
        def: TableDefinition<(u64, u64), &[u8]>,
        prefix: u64,
        rows: impl IntoIterator<Item = (u64, &'r T)>,
    ) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        let mut bytes = Vec::new();
        for (seq, row) in rows {
            bytes.clear();
            codec::encode_into(row, &mut bytes)?;
            t.insert((prefix, seq), bytes.as_slice()).map_err(internal)?;
        }
        Ok(())
    }

    /// Removes the rows of `prefix` with `seq` in `range`, at most `limit`
    /// of them, lowest first; returns how many went.
    pub fn remove_rows(
        &mut self,
        def: TableDefinition<(u64, u64), &[u8]>,
        prefix: u64,
        range: RangeInclusive<u64>,
        limit: usize,
    ) -> Result<usize> {
        let (lo, hi) = range.into_inner();
        if lo > hi || limit == 0 {
            return Ok(0);
        }
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        // Only the entries read from the iterator are removed.
        let mut removed = 0;
        for entry in
            t.extract_from_if((prefix, lo)..=(prefix, hi), |_, _| true).map_err(internal)?.take(limit)
        {
            entry.map_err(internal)?;
            removed += 1;
        }
        Ok(removed)
    }

    pub fn put_u64(&mut self, def: TableDefinition<u64, u64>, key: u64, value: u64) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.insert(key, value).map_err(internal)?;
        Ok(())
    }

    pub fn delete_row(&mut self, def: TableDefinition<(u64, u64), &[u8]>, key: (u64, u64)) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.remove(key).map_err(internal)?;
        Ok(())
    }

    pub fn index<K: redb::Key + 'static>(
        &mut self,
        def: TableDefinition<(K, u64), ()>,
        key: (K::SelfType<'_>, u64),
    ) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.insert(key, ()).map_err(internal)?;
        Ok(())
    }

    pub fn unindex<K: redb::Key + 'static>(
        &mut self,
        def: TableDefinition<(K, u64), ()>,
        key: (K::SelfType<'_>, u64),
    ) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.remove(key).map_err(internal)?;
        Ok(())
    }

    /// Adds `(env, queued_at, id)` to the time index of operations.
    pub fn index_time(&mut self, key: (u64, i64, u64)) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(OPERATIONS_BY_ENVIRONMENT_TIME).map_err(internal)?;
        t.insert(key, ()).map_err(internal)?;
        Ok(())
    }

    pub fn put_keyed_row<T: Serialize>(
        &mut self,
        def: TableDefinition<(u64, &str), &[u8]>,
        key: (u64, &str),
        row: &T,
    ) -> Result<()> {
        self.wrote = true;
        let bytes = codec::encode(row)?;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.insert(key, bytes.as_slice()).map_err(internal)?;
        Ok(())
    }

    pub fn delete_keyed_row(
        &mut self,
        def: TableDefinition<(u64, &str), &[u8]>,
        key: (u64, &str),
    ) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.remove(key).map_err(internal)?;
        Ok(())
    }

    pub fn put_keyed(
        &mut self,
        def: TableDefinition<(u64, &str), u64>,
        key: (u64, &str),
        value: u64,
    ) -> Result<()> {
        self.wrote = true;
        let mut t = self.txn.open_table(def).map_err(internal)?;
        t.insert(key, value).map_err(internal)?;
        Ok(())
    }
}
