//! Idempotency keys of the mutations that queue operations: the same key
//! with the same request answers with the first request's operation, even
//! after a lost reply or a restart; the same key with another request is
//! `IDEMPOTENCY_KEY_REUSED`. Keys are kept [`KEPT_MS`]; an expired key is
//! free again.

use serde::{Deserialize, Serialize};

use super::Store;
use super::access::{Reader, Result, Tx};
use super::operations::operation_by_id;
use super::tables::IDEMPOTENCY_RECORDS;
use crate::domain::{DomainError, IdempotencyKey, Millis, Operation, OperationId, OrganizationId};

/// How long a key is kept: 24 hours.
pub const KEPT_MS: i64 = 24 * 3_600_000;
/// Most expired keys one retention transaction removes.
const EXPIRE_BATCH: usize = 1_000;

/// What a key remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub operation_id: u64,
    /// Of the request that used the key first; `None` for keys stored
    /// before fingerprints existed (any request of the key replays them).
    pub fingerprint: Option<String>,
    pub created_at: Millis,
    /// The operation as the first request's reply showed it, so that every
    /// replay gets the same reply; `None` for keys stored before (they
    /// answer with the operation as it is).
    pub reply: Option<Operation>,
    /// For a key of `appendLogs`: the first and last `seq` the lines got.
    #[serde(default)]
    pub lines: Option<(u64, u64)>,
}

impl KeyRecord {
    /// A key stored by a version that kept only the operation id.
    pub fn legacy(operation_id: u64, created_at: Millis) -> Self {
        Self { operation_id, fingerprint: None, created_at, reply: None, lines: None }
    }

    fn expired(&self, now: Millis) -> bool {
        self.created_at.saturating_add(KEPT_MS) <= now
    }
}

/// The reply to a request whose key was already used, if it was (and has
/// not expired): the first reply when the request is the same,
/// `IDEMPOTENCY_KEY_REUSED` when it differs.
pub fn replay(
    r: Reader<'_>,
    org: OrganizationId,
    key: &IdempotencyKey,
    now: Millis,
) -> Result<Option<Operation>> {
    let Some(record) = r.get_keyed_row::<KeyRecord>(IDEMPOTENCY_RECORDS, (org.0, key.key.as_str()))? else {
        return Ok(None);
    };
    if record.expired(now) {
        return Ok(None);
    }
    if record.fingerprint.as_ref().is_some_and(|f| f != &key.fingerprint) {
        return Err(DomainError::IdempotencyKeyReused(key.key.clone()));
    }
    match record.reply {
        Some(reply) => Ok(Some(reply)),
        None => operation_by_id(r, OperationId(record.operation_id)).map(Some),
    }
}

/// Remembers that `key` queued `op` (replacing an expired use).
pub fn remember(tx: &mut Tx<'_>, org: OrganizationId, key: &IdempotencyKey, op: &Operation) -> Result<()> {
    let record = KeyRecord {
        operation_id: op.id.0,
        fingerprint: Some(key.fingerprint.clone()),
        created_at: op.queued_at,
        reply: Some(op.clone()),
        lines: None,
    };
    tx.put_keyed_row(IDEMPOTENCY_RECORDS, (org.0, key.key.as_str()), &record)
}

/// The `(first, last)` seqs of the `appendLogs` call that used `key`
/// first, when this is the same call again (a retry: nothing is appended
/// twice); `IDEMPOTENCY_KEY_REUSED` for another request.
pub fn replay_lines(
    r: Reader<'_>,
    org: OrganizationId,
    key: &IdempotencyKey,
    now: Millis,
) -> Result<Option<(u64, u64)>> {
    let Some(record) = r.get_keyed_row::<KeyRecord>(IDEMPOTENCY_RECORDS, (org.0, key.key.as_str()))? else {
        return Ok(None);
    };
    if record.expired(now) {
        return Ok(None);
    }
    match (record.fingerprint == Some(key.fingerprint.clone()), record.lines) {
        (true, Some(lines)) => Ok(Some(lines)),
        _ => Err(DomainError::IdempotencyKeyReused(key.key.clone())),
    }
}

/// Remembers that `key` appended the lines `seqs` to `op`'s log.
pub fn remember_lines(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    key: &IdempotencyKey,
    op: OperationId,
    seqs: (u64, u64),
    now: Millis,
) -> Result<()> {
    let record = KeyRecord {
        operation_id: op.0,
        fingerprint: Some(key.fingerprint.clone()),
        created_at: now,
        reply: None,
        lines: Some(seqs),
    };
    tx.put_keyed_row(IDEMPOTENCY_RECORDS, (org.0, key.key.as_str()), &record)
}

/// Removes the keys expired at `now`, a batch per transaction; returns how
/// many went.
pub async fn expire(store: &Store, now: Millis) -> Result<usize> {
    let expired: Vec<(u64, String)> = store
        .read(move |r| {
            Ok(r.keyed_rows::<KeyRecord>(IDEMPOTENCY_RECORDS)?
                .into_iter()
                .filter(|(_, record)| record.expired(now))
                .map(|(key, _)| key)
                .collect())
        })
        .await?;
    let total = expired.len();
    for batch in expired.chunks(EXPIRE_BATCH) {
        let batch = batch.to_vec();
        store
            .write(move |tx| {
                for (org, key) in &batch {
                    // Checked again: the key may have been used anew since.
                    let record = tx.reader().get_keyed_row::<KeyRecord>(IDEMPOTENCY_RECORDS, (*org, key))?;
                    if record.is_some_and(|r| r.expired(now)) {
                        tx.delete_keyed_row(IDEMPOTENCY_RECORDS, (*org, key))?;
                    }
                }
                Ok(())
            })
            .await?;
    }
    Ok(total)
}
