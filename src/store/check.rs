//! Rebuilds every secondary index from the primary rows and compares it
//! with the stored one: a consistency check for tests and operators.

use std::collections::BTreeSet;

use super::access::{Reader, Result};
use super::tables::*;
use crate::domain::status_page::Incident;
use crate::domain::{Environment, Instance, Operation, Service};

type Keys = BTreeSet<(u64, u64)>;

/// An index: its name, the keys its rows call for, and the keys stored.
type IndexCheck = (&'static str, Keys, Vec<(u64, u64)>);

/// The differences between stored and rebuilt indexes, one line each;
/// empty when every index matches its rows.
pub fn index_differences(r: Reader<'_>) -> Result<Vec<String>> {
    let environments: Vec<Environment> = r.all_rows(ENVIRONMENTS)?;
    let services: Vec<Service> = r.all_rows(SERVICES)?;
    let instances: Vec<Instance> = r.all_rows(INSTANCES)?;
    let operations: Vec<Operation> = r.all_rows(OPERATIONS)?;
    let incidents: Vec<Incident> = r.all_rows(INCIDENTS)?;
    let expected: [IndexCheck; 9] = [
        (
            "environments_by_org",
            environments.iter().map(|e| (e.organization_id.0, e.id.0)).collect(),
            r.index_keys(ENVIRONMENTS_BY_ORG)?,
        ),
        (
            "services_by_environment",
            services.iter().map(|s| (s.environment_id.0, s.id.0)).collect(),
            r.index_keys(SERVICES_BY_ENVIRONMENT)?,
        ),
        (
            "instances_by_service",
            instances.iter().map(|i| (i.service_id.0, i.id.0)).collect(),
            r.index_keys(INSTANCES_BY_SERVICE)?,
        ),
        (
            "operations_by_org",
            operations.iter().map(|o| (o.organization_id.0, o.id.0)).collect(),
            r.index_keys(OPERATIONS_BY_ORG)?,
        ),
        (
            "operations_by_environment",
            operations.iter().map(|o| (o.environment_id.0, o.id.0)).collect(),
            r.index_keys(OPERATIONS_BY_ENVIRONMENT)?,
        ),
        (
            "operations_by_service",
            operations.iter().map(|o| (o.service_id.0, o.id.0)).collect(),
            r.index_keys(OPERATIONS_BY_SERVICE)?,
        ),
        (
            "operations_by_status",
            operations.iter().map(|o| (u64::from(o.status.code()), o.id.0)).collect(),
            r.index_keys(OPERATIONS_BY_STATUS)?,
        ),
        (
            "active_operations_by_service",
            operations.iter().filter(|o| !o.status.is_final()).map(|o| (o.service_id.0, o.id.0)).collect(),
            r.index_keys(ACTIVE_OPERATIONS_BY_SERVICE)?,
        ),
        (
            "incidents_by_audience",
            incidents
                .iter()
                .flat_map(super::status_page::incidents::audience_keys)
                .map(|(a, id)| (u64::from(a), id))
                .collect(),
            r.index_keys(INCIDENTS_BY_AUDIENCE)?,
        ),
    ];
    let mut differences = time_index_differences(r, &operations)?;
    for (name, want, stored) in expected {
        let stored: Keys = stored.into_iter().collect();
        for missing in want.difference(&stored) {
            differences.push(format!("{name}: missing {missing:?}"));
        }
        for extra in stored.difference(&want) {
            differences.push(format!("{name}: extra {extra:?}"));
        }
    }
    Ok(differences)
}

/// The differences of the time index (three-part keys) from its rows.
fn time_index_differences(r: Reader<'_>, operations: &[Operation]) -> Result<Vec<String>> {
    let want: BTreeSet<(u64, i64, u64)> =
        operations.iter().map(|o| (o.environment_id.0, o.queued_at, o.id.0)).collect();
    let stored: BTreeSet<(u64, i64, u64)> = r.time_index_keys()?.into_iter().collect();
    let missing = want.difference(&stored).map(|k| format!("operations_by_environment_time: missing {k:?}"));
    let extra = stored.difference(&want).map(|k| format!("operations_by_environment_time: extra {k:?}"));
    Ok(missing.chain(extra).collect())
}

#[cfg(test)]
mod tests {
    use crate::domain::{Name, OrganizationId};
    use crate::store::{Store, resources, tables};

    #[tokio::test]
    async fn a_missing_or_stray_index_entry_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let env = store
            .write(|tx| {
                let org = resources::ensure_first_organization(tx, "default")?;
                resources::create_environment(tx, org.id, Name::parse("name", "prod")?, 30)
            })
            .await
            .unwrap();
        assert_eq!(store.index_differences().await.unwrap(), Vec::<String>::new());

        store
            .write(move |tx| {
                tx.unindex(tables::ENVIRONMENTS_BY_ORG, (env.organization_id.0, env.id.0))?;
                tx.index(tables::SERVICES_BY_ENVIRONMENT, (env.id.0, 99))?;
                tx.index_time((env.id.0, 5, 98))
            })
            .await
            .unwrap();
        let differences = store.index_differences().await.unwrap();
        assert_eq!(
            differences,
            [
                format!("operations_by_environment_time: extra ({}, 5, 98)", env.id.0),
                format!("environments_by_org: missing ({}, {})", OrganizationId(1).0, env.id.0),
                format!("services_by_environment: extra ({}, 99)", env.id.0),
            ]
        );
    }
}
