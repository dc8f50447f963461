//! The `Mutation` root. Each mutation starts with its permission check
//! (`guard_mutation`, which also drafts its audit record), validates its
//! input into domain types and calls one function: a store write for
//! environments and services, the engine for everything that changes what
//! runs. Members and tokens are in [`access`].

use async_graphql::{Context, ID, MergedObject, Object, Result};

use super::guard::{Mutating, guard_mutation};
use super::types::enums::LogStream;
use super::types::environment::{CreateEnvironmentInput, EnvironmentNode, UpdateEnvironmentInput};
use super::types::log_line::AppendLogsPayload;
use super::types::maintenance::{MaintenanceCampaignObject, StartMaintenanceInput};
use super::types::operation::OperationNode;
use super::types::operation_input::{
    CancelOperationInput, DeployInput, Redeploy, RedeployInput, ScaleInput, ServiceActionInput,
};
use super::types::redeploy::redeployable;
use super::types::service::ServiceNode;
use super::types::service_input::{CreateServiceInput, UnpinCommitInput, UpdateServiceInput};
use crate::domain::{
    self, Action, DomainError, NewLine, NewOperation, OperationId, OperationType, ServiceId,
};
use crate::store::{idempotency, logs, pins, resources};

mod access;

/// Changes. Every change to what runs is an operation, queued and run in
/// order per service; those mutations answer with the operation as queued.
/// Every attempt, allowed or refused, is recorded in the audit log.
#[derive(MergedObject, Default)]
// Merged with the status page into the `Mutation` root (see
// `graphql::MutationRoot`) under its own name.
#[graphql(name = "OperationsMutation")]
pub struct Mutation(ResourceMutation, access::AccessMutation);

/// The mutations of environments, services and operations.
#[derive(Default)]
pub struct ResourceMutation;

#[Object]
impl ResourceMutation {
    /// Creates an environment. `ADMIN` or `OWNER`.
    async fn create_environment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The environment to create.")] input: CreateEnvironmentInput,
    ) -> Result<EnvironmentNode> {
        let m = guard_mutation(ctx, Action::Configure, None).await?;
        let audit = m.audit.clone();
        let result = async {
            let (name, days) = input.validate()?;
            m.scope
                .try_write(move |tx, by| {
                    let env = resources::create_environment(tx, by.organization_id, name.clone(), days)?;
                    audit.record_on(tx, env.id)?;
                    Ok(env)
                })
                .await
        };
        m.finish(result.await).await.map(EnvironmentNode)
    }

    /// Renames an environment or changes its log retention. Its operations
    /// keep the environment name they were queued with. `ADMIN` or `OWNER`.
    async fn update_environment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The changes; omitted fields keep their values.")] input: UpdateEnvironmentInput,
    ) -> Result<EnvironmentNode> {
        let m = guard_mutation(ctx, Action::Configure, Some(input.environment_id.to_string())).await?;
        let audit = m.audit.clone();
        let result = async {
            let (id, patch) = input.validate()?;
            m.scope
                .try_write(move |tx, by| {
                    let env = resources::update_environment(tx, by.organization_id, id, &patch)?;
                    audit.record(tx)?;
                    Ok(env)
                })
                .await
        };
        m.finish(result.await).await.map(EnvironmentNode)
    }

    /// Creates a service; nothing runs until its first deploy. `ADMIN` or
    /// `OWNER`.
    async fn create_service(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to create.")] input: CreateServiceInput,
    ) -> Result<ServiceNode> {
        let m = guard_mutation(ctx, Action::Configure, Some(input.environment_id.to_string())).await?;
        let audit = m.audit.clone();
        let result = async {
            let new = input.validate()?;
            m.scope
                .try_write(move |tx, by| {
                    let svc = resources::create_service(tx, by.organization_id, &new)?;
                    audit.record_on(tx, svc.id)?;
                    Ok(svc)
                })
                .await
        };
        m.finish(result.await).await.map(ServiceNode)
    }

    /// Changes a service's name or spec. Running instances keep their
    /// settings until the next operation replaces them. `ADMIN` or `OWNER`.
    async fn update_service(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The changes; omitted fields keep their values.")] input: UpdateServiceInput,
    ) -> Result<ServiceNode> {
        let m = guard_mutation(ctx, Action::Configure, Some(input.service_id.to_string())).await?;
        let audit = m.audit.clone();
        let result = async {
            let update = input.validate()?;
            m.scope
                .try_write(move |tx, by| {
                    let svc = update.apply(tx, by.organization_id)?;
                    audit.record(tx)?;
                    Ok(svc)
                })
                .await
        };
        m.finish(result.await).await.map(ServiceNode)
    }

    /// Queues a `DEPLOY` of a commit. `DEVELOPER`, `ADMIN` or `OWNER`.
    async fn deploy(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service and the commit to deploy.")] input: DeployInput,
    ) -> Result<OperationNode> {
        let m = guard_mutation(ctx, Action::Operate, Some(input.service_id.to_string())).await?;
        let result = async { submit(&m, input.validate(&m.scope.principal.member)?).await };
        m.finish(result.await).await.map(OperationNode)
    }

    /// Queues a `REDEPLOY` of a service's current commit, or, given an
    /// operation (by id, or by a selector on the service), a `DEPLOY` of
    /// that operation's commit ("redeploy this commit": the quick roll
    /// back). Rolling back to an older commit pins the commit the service
    /// ran, so that pushes of it do not deploy it again (`Service.pin`).
    /// `DEVELOPER`, `ADMIN` or `OWNER`.
    async fn redeploy(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service, or the operation whose commit to deploy again.")] input: RedeployInput,
    ) -> Result<OperationNode> {
        let target = input.service_id.as_ref().or(input.operation_id.as_ref()).map(|id| id.to_string());
        let m = guard_mutation(ctx, Action::Operate, target).await?;
        let result = async {
            match input.validate(&m.scope.principal.member)? {
                Redeploy::Service(new) => submit(&m, new).await,
                Redeploy::Operation(named, common) => {
                    // A replay answers before the selector is read again: it
                    // may name another operation by now.
                    if let Some(key) = common.idempotency_key.clone() {
                        let now = domain::now_millis();
                        let first =
                            m.scope.try_read(move |r, org| idempotency::replay(r, org, &key, now)).await?;
                        if let Some(first) = first {
                            let audit = m.audit.clone();
                            let id = first.id;
                            m.scope.try_write(move |tx, _| audit.record_on(tx, id)).await?;
                            return Ok(first);
                        }
                    }
                    let of = m.scope.try_read(move |r, org| redeployable(r, org, named)).await?;
                    submit(&m, Redeploy::deploy_of(&of, common)).await
                }
            }
        };
        m.finish(result.await).await.map(OperationNode)
    }

    /// Lifts the pin of a service's commit, so that a push of it deploys
    /// again; a service without a pin is answered as it is. `DEVELOPER`,
    /// `ADMIN` or `OWNER`.
    async fn unpin_commit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service whose pin to lift.")] input: UnpinCommitInput,
    ) -> Result<ServiceNode> {
        let m = guard_mutation(ctx, Action::Operate, Some(input.service_id.to_string())).await?;
        let audit = m.audit.clone();
        let result = async {
            let svc: ServiceId = input.service_id.parse()?;
            m.scope
                .try_write(move |tx, by| {
                    let svc = pins::unpin_commit(tx, by.organization_id, svc)?;
                    audit.record(tx)?;
                    Ok(svc)
                })
                .await
        };
        m.finish(result.await).await.map(ServiceNode)
    }

    /// Queues a `RESTART`: new instances of the current commit replace the
    /// running ones. `DEVELOPER`, `ADMIN` or `OWNER`.
    async fn restart(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to restart.")] input: ServiceActionInput,
    ) -> Result<OperationNode> {
        action(ctx, input, OperationType::Restart, Action::Operate).await
    }

    /// Queues a `SCALE` to an instance count. `DEVELOPER`, `ADMIN` or
    /// `OWNER`.
    async fn scale(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service and the instance count to reach.")] input: ScaleInput,
    ) -> Result<OperationNode> {
        let m = guard_mutation(ctx, Action::Operate, Some(input.service_id.to_string())).await?;
        let result = async { submit(&m, input.validate(&m.scope.principal.member)?).await };
        m.finish(result.await).await.map(OperationNode)
    }

    /// Queues a `STOP` of every instance. `DEVELOPER`, `ADMIN` or `OWNER`.
    async fn stop(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to stop.")] input: ServiceActionInput,
    ) -> Result<OperationNode> {
        action(ctx, input, OperationType::Stop, Action::Operate).await
    }

    /// Queues a `START` of a stopped service. `DEVELOPER`, `ADMIN` or
    /// `OWNER`.
    async fn start(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to start.")] input: ServiceActionInput,
    ) -> Result<OperationNode> {
        action(ctx, input, OperationType::Start, Action::Operate).await
    }

    /// Queues a `DELETE`: the instances stop and the service is marked
    /// deleted; its operations stay readable. `ADMIN` or `OWNER`.
    async fn delete_service(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to delete.")] input: ServiceActionInput,
    ) -> Result<OperationNode> {
        action(ctx, input, OperationType::Delete, Action::Configure).await
    }

    /// Cancels an operation: a queued one ends at once as `CANCELLED`; a
    /// running one goes to `CANCELLING`, stops its current step and rolls
    /// back. With `force: true` a running one is sure to end within a short
    /// bound, and the answer is the final operation. A final one is refused
    /// with `INVALID_TRANSITION`. `DEVELOPER`, `ADMIN` or `OWNER`.
    async fn cancel_operation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The operation to cancel.")] input: CancelOperationInput,
    ) -> Result<OperationNode> {
        let m = guard_mutation(ctx, Action::Operate, Some(input.operation_id.to_string())).await?;
        let result = async {
            let id: OperationId = input.operation_id.parse()?;
            let force = input.force.unwrap_or(false);
            m.scope.engine().cancel(m.scope.principal, id, force, Some(m.audit.clone())).await
        };
        m.finish(result.await).await.map(OperationNode)
    }

    /// Starts a maintenance campaign: a `REDEPLOY` (trigger `PLATFORM`,
    /// reason `MAINTENANCE`) of every matching service that was deployed
    /// before, at most `concurrency` queued or running at once. Answers at
    /// once with the campaign; follow it with `maintenanceProgress`. A
    /// filter that matches nothing gives a campaign completed at once with
    /// a total of 0. An environment or service the caller cannot see is
    /// `NOT_FOUND`. `ADMIN` or `OWNER`.
    async fn start_maintenance(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which services, why, and how many at a time.")] input: StartMaintenanceInput,
    ) -> Result<MaintenanceCampaignObject> {
        let m =
            guard_mutation(ctx, Action::Configure, input.environment_id.as_ref().map(|id| id.to_string()))
                .await?;
        let result = async {
            let new = input.validate()?;
            m.scope.engine().start_maintenance(m.scope.principal, new, Some(m.audit.clone())).await
        };
        m.finish(result.await).await.map(Into::into)
    }

    /// Appends lines to the log of an operation that is not final: for
    /// deployment machinery outside opsgraph (`WORKER` tokens), and for
    /// `DEVELOPER`, `ADMIN` and `OWNER`. Each string may hold several
    /// lines (split at line breaks); a line longer than 64 KiB is stored in
    /// pieces (see `LogLine.continuesPrevious`), never cut short. Every line
    /// is stored durably before the reply. A final operation's log is
    /// closed: `INVALID_TRANSITION`.
    async fn append_logs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The operation whose log the lines extend.")] operation_id: ID,
        #[graphql(desc = "The lines, in order.")] lines: Vec<String>,
        #[graphql(
            desc = "The stream of every line: `STDOUT` (also when null) or `STDERR`.",
            default_with = "Some(LogStream::Stdout)"
        )]
        stream: Option<LogStream>,
        #[graphql(desc = "Makes a retry safe (1 to 200 characters): the same key with the same \
                          lines answers with the first call's `firstSeq` and `lastSeq` and appends \
                          nothing; with other lines it is `IDEMPOTENCY_KEY_REUSED`. Kept 24 hours.")]
        idempotency_key: Option<String>,
    ) -> Result<AppendLogsPayload> {
        let m = guard_mutation(ctx, Action::AppendLogs, Some(operation_id.to_string())).await?;
        let result = async {
            let op: OperationId = operation_id.parse()?;
            let stream: domain::LogStream = stream.unwrap_or(LogStream::Stdout).into();
            let key = idempotency_key
                .map(|key| {
                    let mut fields = vec![operation_id.as_str(), stream.as_str()];
                    fields.extend(lines.iter().map(String::as_str));
                    domain::IdempotencyKey::new(&key, &fields)
                })
                .transpose()?;
            let lines = client_lines(lines, stream, m.scope.app.limits.max_append_lines)?;
            let (org, weight, audit) = (m.scope.org(), lines.len(), m.audit.clone());
            m.scope
                .store()
                .write_weighted(weight, move |tx| {
                    let now = domain::now_millis();
                    if let Some(key) = &key
                        && let Some(replayed) = idempotency::replay_lines(tx.reader(), org, key, now)?
                    {
                        audit.record(tx)?;
                        return Ok(replayed);
                    }
                    let appended = logs::append_to_operation(tx, org, op, &lines)?;
                    if let Some(key) = &key {
                        idempotency::remember_lines(tx, org, key, op, appended, now)?;
                    }
                    audit.record(tx)?;
                    Ok(appended)
                })
                .await
        };
        let (first_seq, last_seq) = m.finish(result.await).await?;
        Ok(AppendLogsPayload { first_seq, last_seq })
    }
}

/// The lines of an `appendLogs` call, checked.
fn client_lines(
    lines: Vec<String>,
    stream: domain::LogStream,
    max: usize,
) -> Result<Vec<NewLine>, DomainError> {
    if stream == domain::LogStream::System {
        return Err(DomainError::bad_input("stream", "SYSTEM lines are written by opsgraph itself"));
    }
    let lines = domain::log::client_lines(lines, stream);
    match lines.len() {
        0 => Err(DomainError::bad_input("lines", "give at least one line")),
        n if n > max => {
            Err(DomainError::bad_input("lines", format!("at most {max} lines per call, got {n}")))
        }
        _ => Ok(lines),
    }
}

/// Queues `new` for the caller, recording the attempt in the same
/// transaction.
async fn submit(m: &Mutating<'_>, new: NewOperation) -> Result<domain::Operation, DomainError> {
    m.scope.engine().submit(m.scope.principal, new, Some(m.audit.clone())).await
}

/// Queues an operation of `op_type` that takes nothing but the service.
async fn action(
    ctx: &Context<'_>,
    input: ServiceActionInput,
    op_type: OperationType,
    action: Action,
) -> Result<OperationNode> {
    let m = guard_mutation(ctx, action, Some(input.service_id.to_string())).await?;
    let result = async { submit(&m, input.validate(op_type, &m.scope.principal.member)?).await };
    m.finish(result.await).await.map(OperationNode)
}
