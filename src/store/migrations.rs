//! The stored schema version and the numbered migrations that reach it.

use anyhow::{Context, bail};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::tables::*;

/// The layout this build reads and writes.
pub const SCHEMA_VERSION: u64 = 6;

const VERSION_KEY: &str = "schema_version";

/// One migration: changes the tables inside the given write transaction.
type Migration = fn(&WriteTransaction) -> anyhow::Result<()>;

/// Migration `n` brings a file from version `n - 1` to `n`.
const MIGRATIONS: [Migration; 6] = [
    create_tables_v1,
    index_operations_by_time_v2,
    create_tables_v3,
    create_usage_samples_v4,
    create_status_page_v5,
    create_access_tables_v6,
];

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
    migrate_to(db, stored, SCHEMA_VERSION)
}

/// Runs the migrations after `stored` up to `target`, one transaction each.
fn migrate_to(db: &Database, stored: u64, target: u64) -> anyhow::Result<()> {
    for version in stored + 1..=target {
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

fn create_tables_v1(txn: &WriteTransaction) -> anyhow::Result<()> {
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

/// Version 2: the time index of operations (built from every stored
/// operation) and the webhook deliveries.
fn index_operations_by_time_v2(txn: &WriteTransaction) -> anyhow::Result<()> {
    /// The two fields the index needs; the rest of the row is skipped.
    #[derive(serde::Deserialize)]
    struct Queued {
        environment_id: u64,
        queued_at: i64,
    }
    let operations = txn.open_table(OPERATIONS)?;
    let mut index = txn.open_table(OPERATIONS_BY_ENVIRONMENT_TIME)?;
    for entry in operations.iter()? {
        let (id, row) = entry?;
        let op: Queued = serde_json::from_slice(row.value())
            .with_context(|| format!("reading operation {} to index it by time", id.value()))?;
        index.insert((op.environment_id, op.queued_at, id.value()), ())?;
    }
    txn.open_table(WEBHOOK_DELIVERIES)?;
    Ok(())
}

/// Version 3: where retention has deleted logs up to, and the status feed.
fn create_tables_v3(txn: &WriteTransaction) -> anyhow::Result<()> {
    for def in [OPERATION_LOG_FLOORS, SERVICE_LOG_FLOORS, LOG_RETENTION_MARKS] {
        txn.open_table(def)?;
    }
    txn.open_table(STATUS_EVENTS)?;
    Ok(())
}

/// Version 4: the usage samples behind `Service.metrics` (empty: history
/// starts with the first sampling after the upgrade).
fn create_usage_samples_v4(txn: &WriteTransaction) -> anyhow::Result<()> {
    txn.open_table(USAGE_SAMPLES)?;
    Ok(())
}

/// Version 5: the status page (components, incidents, maintenance windows,
/// their timelines and the feed of `incidentUpdates`), empty.
fn create_status_page_v5(txn: &WriteTransaction) -> anyhow::Result<()> {
    for def in [COMPONENTS, INCIDENTS, MAINTENANCE_WINDOWS] {
        txn.open_table(def)?;
    }
    for def in [COMPONENT_CHANGES, INCIDENT_UPDATES, MAINTENANCE_UPDATES, STATUS_PAGE_EVENTS] {
        txn.open_table(def)?;
    }
    txn.open_table(INCIDENTS_BY_AUDIENCE)?;
    Ok(())
}

/// Version 6: members, tokens, the audit log, and idempotency keys that
/// remember when and for what request they were used. Every organization
/// gets an `OWNER` member named `owner` (the one every request acted as
/// before: the first one gets id 1, the author of its past operations);
/// existing keys move over, dated by their operation's queue time.
fn create_access_tables_v6(txn: &WriteTransaction) -> anyhow::Result<()> {
    use crate::domain::access::{MemberRecord, Role};
    use crate::domain::{Organization, OrganizationId};
    txn.open_table(TOKENS)?;
    txn.open_table(AUDIT_LOG)?;
    let organizations: Vec<Organization> = {
        let t = txn.open_table(ORGANIZATIONS)?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            out.push(serde_json::from_slice(entry?.1.value()).context("reading an organization")?);
        }
        out
    };
    {
        let mut members = txn.open_table(MEMBERS)?;
        let mut sequences = txn.open_table(SEQUENCES)?;
        for org in organizations {
            let id = sequences.get("member")?.map_or(0, |v| v.value()) + 1;
            sequences.insert("member", id)?;
            let owner = MemberRecord {
                id,
                organization_id: OrganizationId(org.id.0),
                name: "owner".into(),
                role: Role::Owner,
                created_at: org.created_at,
                removed_at: None,
                revision: 1,
            };
            members.insert(id, serde_json::to_vec(&owner)?.as_slice())?;
        }
    }
    let old: Vec<(u64, String, u64)> = match txn.open_table(IDEMPOTENCY_KEYS) {
        Ok(t) => {
            let mut out = Vec::new();
            for entry in t.iter()? {
                let (key, op) = entry?;
                let (org, name) = key.value();
                out.push((org, name.to_owned(), op.value()));
            }
            out
        }
        Err(e) => return Err(e.into()),
    };
    {
        #[derive(serde::Deserialize)]
        struct Queued {
            queued_at: i64,
        }
        let operations = txn.open_table(OPERATIONS)?;
        let mut records = txn.open_table(IDEMPOTENCY_RECORDS)?;
        for (org, key, op) in old {
            let Some(row) = operations.get(op)? else { continue };
            let queued: Queued = serde_json::from_slice(row.value()).context("reading an operation")?;
            let record = super::idempotency::KeyRecord::legacy(op, queued.queued_at);
            records.insert((org, key.as_str()), serde_json::to_vec(&record)?.as_slice())?;
        }
    }
    txn.delete_table(IDEMPOTENCY_KEYS)?;
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

    #[tokio::test]
    async fn version_2_builds_the_time_index_of_the_operations_of_a_version_1_file() {
        use crate::domain::fixtures::op;
        use crate::domain::{OperationStatus, OperationType};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            migrate_to(&db, 0, 1).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut rows = txn.open_table(OPERATIONS).unwrap();
                for id in [1, 2, 3] {
                    let mut row = op(id, OperationType::Restart, OperationStatus::DeploymentOk);
                    row.environment_id.0 = id % 2;
                    rows.insert(id, serde_json::to_vec(&row).unwrap().as_slice()).unwrap();
                }
                let mut by_env = txn.open_table(OPERATIONS_BY_ENVIRONMENT).unwrap();
                for (env, id) in [(1, 1), (0, 2), (1, 3)] {
                    by_env.insert((env, id), ()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = crate::store::Store::open(&path).unwrap();
        let keys = store.read(|r| r.time_index_keys()).await.unwrap();
        assert_eq!(keys, [(0, 2_000, 2), (1, 1_000, 1), (1, 3_000, 3)]);
    }

    #[tokio::test]
    async fn version_5_adds_an_empty_status_page_to_a_version_4_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            migrate_to(&db, 0, 4).unwrap();
        }
        let store = crate::store::Store::open(&path).unwrap();
        let view = store.read(|r| crate::store::status_page::public_view(r, 10)).await.unwrap();
        assert!(view.components.is_empty() && view.incidents.is_empty() && view.windows.is_empty());
    }

    #[tokio::test]
    async fn version_6_gives_each_organization_an_owner_and_keeps_its_idempotency_keys() {
        use crate::domain::fixtures::op;
        use crate::domain::{IdempotencyKey, OperationStatus, OperationType, Organization, OrganizationId};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        {
            let db = Database::create(&path).unwrap();
            migrate_to(&db, 0, 5).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let org = Organization { id: OrganizationId(1), name: "default".into(), created_at: 5 };
                txn.open_table(ORGANIZATIONS)
                    .unwrap()
                    .insert(1, serde_json::to_vec(&org).unwrap().as_slice())
                    .unwrap();
                txn.open_table(SEQUENCES).unwrap().insert("organization", 1).unwrap();
                let row = op(7, OperationType::Deploy, OperationStatus::DeploymentOk);
                txn.open_table(OPERATIONS)
                    .unwrap()
                    .insert(7, serde_json::to_vec(&row).unwrap().as_slice())
                    .unwrap();
                txn.open_table(IDEMPOTENCY_KEYS).unwrap().insert((1, "push-1"), 7).unwrap();
            }
            txn.commit().unwrap();
        }
        let store = crate::store::Store::open(&path).unwrap();
        let members = store.read(crate::store::auth::all_members).await.unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(
            (members[0].id, members[0].name.as_str(), members[0].role),
            (1, "owner", crate::domain::Role::Owner)
        );
        // Any request with the old key replays its operation, for 24 hours
        // from its queue time (7 s after the epoch in the fixture).
        let key = IdempotencyKey::new("push-1", &["anything"]).unwrap();
        let at = 7_000 + 1_000;
        let replayed = store
            .read(move |r| crate::store::idempotency::replay(r, OrganizationId(1), &key, at))
            .await
            .unwrap();
        assert_eq!(replayed.map(|o| o.id.0), Some(7));
        let later = 7_000 + crate::store::idempotency::KEPT_MS;
        assert_eq!(crate::store::idempotency::expire(&store, later).await.unwrap(), 1);
    }
}
