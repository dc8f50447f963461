//! The stored schema version and the numbered migrations that reach it.

use anyhow::bail;
use redb::{Database, ReadableDatabase, TableDefinition, WriteTransaction};

use super::tables::*;

/// The layout this build reads and writes.
pub const SCHEMA_VERSION: u64 = 2;

const VERSION_KEY: &str = "schema_version";

/// One migration: changes the tables inside the given write transaction.
type Migration = fn(&WriteTransaction) -> Result<(), redb::TableError>;

/// Migration `n` brings a file from version `n - 1` to `n`.
const MIGRATIONS: [Migration; 2] = [create_tables_v1, create_tables_v2];

/// Brings `db` to [`SCHEMA_VERSION`], or refuses a file written by a newer
/// build with a message that says what to do.
pub fn migrate(db: &Database) -> anyhow::Result<()> {
    let stored = stored_version(db)?;
    if stored > SCHEMA_VERSION {
        bail!(
            "this database file has schema version {stored}, but this build of opsgraph only \
             knows versions up to {SCHEMA_VERSION}: run a newer opsgraph, or start with a new \
             --db file"
        );
    }
    for version in stored + 1..=SCHEMA_VERSION {
        let txn = db.begin_write()?;
        MIGRATIONS[(version - 1) as usize](&txn)?;
        txn.open_table(META)?.insert(VERSION_KEY, version)?;
        txn.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

fn stored_version(db: &Database) -> anyhow::Result<u64> {
    let txn = db.begin_read()?;
    match txn.open_table(META) {
        Ok(t) => Ok(t.get(VERSION_KEY)?.map_or(0, |v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

fn create_tables_v1(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    fn rows(txn: &WriteTransaction, def: TableDefinition<u64, &[u8]>) -> Result<(), redb::TableError> {
        txn.open_table(def).map(drop)
    }
    fn pairs(txn: &WriteTransaction, def: TableDefinition<(u64, u64), ()>) -> Result<(), redb::TableError> {
        txn.open_table(def).map(drop)
    }
    fn logs(txn: &WriteTransaction, def: TableDefinition<(u64, u64), &[u8]>) -> Result<(), redb::TableError> {
        txn.open_table(def).map(drop)
    }
    txn.open_table(META)?;
    txn.open_table(SEQUENCES)?;
    for def in [ORGANIZATIONS, ENVIRONMENTS, SERVICES, INSTANCES, OPERATIONS] {
        rows(txn, def)?;
    }
    for def in [
        ENVIRONMENTS_BY_ORG,
        SERVICES_BY_ENVIRONMENT,
        INSTANCES_BY_SERVICE,
        OPERATIONS_BY_ORG,
        OPERATIONS_BY_ENVIRONMENT,
        OPERATIONS_BY_SERVICE,
        ACTIVE_OPERATIONS_BY_SERVICE,
    ] {
        pairs(txn, def)?;
    }
    for def in [OPERATION_LOGS, SERVICE_LOGS, OPERATION_EVENTS] {
        logs(txn, def)?;
    }
    txn.open_table(OPERATIONS_BY_STATUS)?;
    txn.open_table(IDEMPOTENCY_KEYS)?;
    Ok(())
}

/// Version 2: where retention has deleted logs up to, and the status feed.
fn create_tables_v2(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    for def in [OPERATION_LOG_FLOORS, SERVICE_LOG_FLOORS, LOG_RETENTION_MARKS] {
        txn.open_table(def)?;
    }
    txn.open_table(STATUS_EVENTS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_the_current_version_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let db = Database::create(&path).unwrap();
        migrate(&db).unwrap();
        assert_eq!(stored_version(&db).unwrap(), SCHEMA_VERSION);
        migrate(&db).unwrap();

        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(VERSION_KEY, SCHEMA_VERSION + 1).unwrap();
        txn.commit().unwrap();
        let err = migrate(&db).unwrap_err().to_string();
        assert!(err.contains("run a newer opsgraph"), "{err}");
    }
}
