//! Every redb table of the file, in one place.
//!
//! Names carry a version suffix: a change of key or value layout gets a new
//! name and a numbered migration (see `migrations`). Values are serde structs
//! encoded by [`super::codec`]; keys are integers or tuples of integers, most
//! selective part first, so one range scan reads one parent's children in
//! order. Secondary indexes are `(index_key, id) -> ()` tables written in the
//! same write transaction as their row.

use redb::TableDefinition;

/// Key: a setting name (`"schema_version"`).
/// Value: its number.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta_v1");

/// Key: the kind of id (`"operation"`, `"service"` …).
/// Value: the last id handed out for it. Ids start at 1 and never repeat.
pub const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences_v1");

/// Key: OrganizationId.
/// Value: `domain::Organization`.
pub const ORGANIZATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("organizations_v1");

/// Key: EnvironmentId.
/// Value: `domain::Environment`.
pub const ENVIRONMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("environments_v1");

/// Key: (OrganizationId, EnvironmentId).
/// Value: ().
pub const ENVIRONMENTS_BY_ORG: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("environments_by_org_v1");

/// Key: ServiceId.
/// Value: `domain::Service` (deleted services stay, with `deleted_at`).
pub const SERVICES: TableDefinition<u64, &[u8]> = TableDefinition::new("services_v1");

/// Key: (EnvironmentId, ServiceId).
/// Value: ().
pub const SERVICES_BY_ENVIRONMENT: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("services_by_environment_v1");

/// Key: InstanceId.
/// Value: `domain::Instance`. Rows of stopped instances that were replaced
/// are removed; the service log keeps what they printed.
pub const INSTANCES: TableDefinition<u64, &[u8]> = TableDefinition::new("instances_v1");

/// Key: (ServiceId, InstanceId).
/// Value: ().
pub const INSTANCES_BY_SERVICE: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("instances_by_service_v1");

/// Key: OperationId (ids grow in queue order).
/// Value: `domain::Operation`, steps included.
pub const OPERATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("operations_v1");

/// Key: (OrganizationId, OperationId).
/// Value: ().
pub const OPERATIONS_BY_ORG: TableDefinition<(u64, u64), ()> = TableDefinition::new("operations_by_org_v1");

/// Key: (EnvironmentId, OperationId).
/// Value: ().
pub const OPERATIONS_BY_ENVIRONMENT: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("operations_by_environment_v1");

/// Key: (ServiceId, OperationId).
/// Value: ().
pub const OPERATIONS_BY_SERVICE: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("operations_by_service_v1");

/// Key: (EnvironmentId, queued_at in ms, OperationId): an environment's
/// operations in queue-time order, so a report over a period is one range
/// scan. `queued_at` never changes once an operation is queued.
/// Value: ().
pub const OPERATIONS_BY_ENVIRONMENT_TIME: TableDefinition<(u64, i64, u64), ()> =
    TableDefinition::new("operations_by_environment_time_v1");

/// Key: (OperationStatus code, OperationId).
/// Value: ().
pub const OPERATIONS_BY_STATUS: TableDefinition<(u8, u64), ()> =
    TableDefinition::new("operations_by_status_v1");

/// Key: (ServiceId, OperationId) of every operation that is not final: the
/// service's queue, oldest first.
/// Value: ().
pub const ACTIVE_OPERATIONS_BY_SERVICE: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("active_operations_by_service_v1");

/// Key: (OrganizationId, idempotency key).
/// Value: the OperationId the key created. Up to version 4 only: version 5
/// moves every key to [`IDEMPOTENCY_RECORDS`] and deletes the table.
pub const IDEMPOTENCY_KEYS: TableDefinition<(u64, &str), u64> = TableDefinition::new("idempotency_keys_v1");

/// Key: (OperationId, seq) with seq 1, 2, 3 … per operation.
/// Value: `domain::LogLine`.
pub const OPERATION_LOGS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("operation_logs_v1");

/// Key: (ServiceId, seq) with seq 1, 2, 3 … per service.
/// Value: `domain::LogLine`: what the service's instances printed.
pub const SERVICE_LOGS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("service_logs_v1");

/// Key: (EnvironmentId, event seq) with one seq across all environments.
/// Value: `store::OperationEvent`: the feed `operationEvents` resumes from.
pub const OPERATION_EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("operation_events_v1");

/// Key: OperationId.
/// Value: the highest `seq` of the operation's log that retention deleted
/// (lines `1..=value` are gone). Absent: nothing deleted.
pub const OPERATION_LOG_FLOORS: TableDefinition<u64, u64> = TableDefinition::new("operation_log_floors_v1");

/// Key: ServiceId.
/// Value: the highest `seq` of the service's log that retention deleted.
pub const SERVICE_LOG_FLOORS: TableDefinition<u64, u64> = TableDefinition::new("service_log_floors_v1");

/// Key: EnvironmentId.
/// Value: the OperationId up to which every operation of the environment is
/// final and its whole log deleted by retention: the next pass starts after
/// it.
pub const LOG_RETENTION_MARKS: TableDefinition<u64, u64> = TableDefinition::new("log_retention_marks_v1");

/// Key: (EnvironmentId, status event seq) with one seq across all
/// environments.
/// Value: `store::statuses::StatusEvent`: the feed `statusChanges` resumes
/// from.
pub const STATUS_EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("status_events_v1");
/// Key: (ServiceId, seq) with seq 1, 2, 3 … per service; only the newest
/// `store::hooks::KEPT_DELIVERIES` are kept (refused deliveries come from
/// anyone who knows the URL).
/// Value: `domain::webhook::Delivery`: what became of a GitHub delivery.
pub const WEBHOOK_DELIVERIES: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("webhook_deliveries_v1");

/// Key: (ServiceId, sampled at in ms, InstanceId): one service's samples
/// in time order, every instance of one sampling time together, so a
/// period is one range scan and retention deletes from the front.
/// Value: (CPU in hundredths of a percent of one core, resident memory in
/// bytes, bytes under the service's data directory): `domain::usage::Sample`.
/// A fixed-width tuple rather than a codec row: samples are by far the
/// most numerous rows (one per instance every metrics interval), and JSON
/// would triple their size and their decoding time.
pub const USAGE_SAMPLES: TableDefinition<(u64, i64, u64), (u32, u64, u64)> =
    TableDefinition::new("usage_samples_v1");

/// Key: ComponentId.
/// Value: `domain::status_page::Component`.
pub const COMPONENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("components_v1");

/// Key: (ComponentId, change seq) with one seq across all components.
/// Value: `domain::status_page::ComponentChange`: the component's history.
pub const COMPONENT_CHANGES: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("component_changes_v1");

/// Key: IncidentId.
/// Value: `domain::status_page::Incident` (drafts included).
pub const INCIDENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("incidents_v1");

/// Key: (audience, IncidentId): audience 0 lists the published incidents,
/// 1 every incident (drafts too), 2 the published ones not yet resolved
/// (those that shape the components' availability).
/// Value: ().
pub const INCIDENTS_BY_AUDIENCE: TableDefinition<(u8, u64), ()> =
    TableDefinition::new("incidents_by_audience_v1");

/// Key: (IncidentId, update number) with numbers 1, 2, 3 … per incident.
/// Value: `domain::status_page::TimelineUpdate`, with its corrections.
pub const INCIDENT_UPDATES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("incident_updates_v1");

/// Key: WindowId (a scheduled maintenance).
/// Value: `domain::status_page::Window`. Maintenance is public once
/// scheduled.
pub const MAINTENANCE_WINDOWS: TableDefinition<u64, &[u8]> = TableDefinition::new("maintenance_windows_v1");

/// Key: (WindowId, update number) with numbers 1, 2, 3 … per window.
/// Value: `domain::status_page::TimelineUpdate`.
pub const MAINTENANCE_UPDATES: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("maintenance_updates_v1");

/// Key: (audience, event seq) with one seq across both audiences:
/// audience 0 holds what the public may see, 1 every event (drafts
/// included); an event of both is stored under both with the same seq.
/// Value: `store::status_page::PageEvent`: the feed `incidentUpdates`
/// resumes from.
pub const STATUS_PAGE_EVENTS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("status_page_events_v1");

/// Key: member id (`mem_<n>`), across organizations.
/// Value: `domain::access::MemberRecord` (removed members stay, marked).
pub const MEMBERS: TableDefinition<u64, &[u8]> = TableDefinition::new("members_v1");

/// Key: token id (`tok_<n>`), across organizations.
/// Value: `domain::access::Token`: the hash of its secret, never the secret.
pub const TOKENS: TableDefinition<u64, &[u8]> = TableDefinition::new("tokens_v1");

/// Key: (OrganizationId, audit record id) with one id sequence across
/// organizations, so one organization's log is one range scan in order.
/// Value: `domain::access::AuditEntry`: one mutation attempt.
pub const AUDIT_LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("audit_log_v1");

/// Key: (OrganizationId, idempotency key).
/// Value: `store::idempotency::KeyRecord`: the operation the key created,
/// the fingerprint of the request that created it, when, and the reply it
/// got. Kept 24 hours (`store::idempotency::KEPT_MS`).
pub const IDEMPOTENCY_RECORDS: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("idempotency_records_v2");
