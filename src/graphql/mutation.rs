//! The `Mutation` root. Each mutation validates its input into domain types
//! and calls one function: a store write for environments and services,
//! the engine for everything that changes what runs.

use async_graphql::{Context, ID, Object, Result};

use super::error::GqlResult;
use super::scope::{Scope, parse_id, scope};
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
use crate::domain::{self, DomainError, NewLine, NewOperation, OperationId, OperationType, ServiceId};
use crate::store::{logs, pins, resources};

/// The `Mutation` root.
#[derive(Default)]
pub struct Mutation;

/// Changes. Every change to what runs is an operation, queued and run in
/// order per service; those mutations answer with the operation as queued.
// Merged into the `Mutation` root (see `graphql::MutationRoot`).
#[Object(name = "OperationsMutation")]
impl Mutation {
    /// Creates an environment.
    async fn create_environment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The environment to create.")] input: CreateEnvironmentInput,
    ) -> Result<EnvironmentNode> {
        let (name, days) = input.validate().gql()?;
        let s = scope(ctx)?;
        let env = s.write(move |tx, org| resources::create_environment(tx, org, name.clone(), days)).await?;
        Ok(EnvironmentNode(env))
    }

    /// Renames an environment or changes its log retention. Its operations
    /// keep the environment name they were queued with.
    async fn update_environment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The changes; omitted fields keep their values.")] input: UpdateEnvironmentInput,
    ) -> Result<EnvironmentNode> {
        let (id, patch) = input.validate().gql()?;
        let env =
            scope(ctx)?.write(move |tx, org| resources::update_environment(tx, org, id, &patch)).await?;
        Ok(EnvironmentNode(env))
    }

    /// Creates a service; nothing runs until its first deploy.
    async fn create_service(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to create.")] input: CreateServiceInput,
    ) -> Result<ServiceNode> {
        let new = input.validate().gql()?;
        let svc = scope(ctx)?.write(move |tx, org| resources::create_service(tx, org, &new)).await?;
        Ok(ServiceNode(svc))
    }

    /// Changes a service's name or spec. Running instances keep their
    /// settings until the next operation replaces them.
    async fn update_service(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The changes; omitted fields keep their values.")] input: UpdateServiceInput,
    ) -> Result<ServiceNode> {
        let update = input.validate().gql()?;
        let svc = scope(ctx)?.write(move |tx, org| update.apply(tx, org)).await?;
        Ok(ServiceNode(svc))
    }

    /// Queues a `DEPLOY` of a commit.
    async fn deploy(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service and the commit to deploy.")] input: DeployInput,
    ) -> Result<OperationNode> {
        let s = scope(ctx)?;
        submit(&s, input.validate(&s.principal.member).gql()?).await
    }

    /// Queues a `REDEPLOY` of a service's current commit, or, given an
    /// operation (by id, or by a selector on the service), a `DEPLOY` of
    /// that operation's commit ("redeploy this commit": the quick roll
    /// back). Rolling back to an older commit pins the commit the service
    /// ran, so that pushes of it do not deploy it again (`Service.pin`).
    async fn redeploy(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service, or the operation whose commit to deploy again.")] input: RedeployInput,
    ) -> Result<OperationNode> {
        let s = scope(ctx)?;
        match input.validate(&s.principal.member).gql()? {
            Redeploy::Service(new) => submit(&s, new).await,
            Redeploy::Operation(named, common) => {
                let of = s.read(move |r, org| redeployable(r, org, named)).await?;
                submit(&s, Redeploy::deploy_of(&of, common)).await
            }
        }
    }

    /// Lifts the pin of a service's commit, so that a push of it deploys
    /// again; a service without a pin is answered as it is.
    async fn unpin_commit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service whose pin to lift.")] input: UnpinCommitInput,
    ) -> Result<ServiceNode> {
        let svc: ServiceId = parse_id(&input.service_id)?;
        let svc = scope(ctx)?.write(move |tx, org| pins::unpin_commit(tx, org, svc)).await?;
        Ok(ServiceNode(svc))
    }

    /// Queues a `RESTART`: new instances of the current commit replace the
    /// running ones.
    async fn restart(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to restart.")] input: ServiceActionInput,
    ) -> Result<OperationNode> {
        action(ctx, input, OperationType::Restart).await
    }

    /// Queues a `SCALE` to an instance count.
    async fn scale(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service and the instance count to reach.")] input: ScaleInput,
    ) -> Result<OperationNode> {
        let s = scope(ctx)?;
        submit(&s, input.validate(&s.principal.member).gql()?).await
    }

    /// Queues a `STOP` of every instance.
    async fn stop(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to stop.")] input: ServiceActionInput,
    ) -> Result<OperationNode> {
        action(ctx, input, OperationType::Stop).await
    }

    /// Queues a `START` of a stopped service.
    async fn start(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to start.")] input: ServiceActionInput,
    ) -> Result<OperationNode> {
        action(ctx, input, OperationType::Start).await
    }

    /// Queues a `DELETE`: the instances stop and the service is marked
    /// deleted; its operations stay readable.
    async fn delete_service(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service to delete.")] input: ServiceActionInput,
    ) -> Result<OperationNode> {
        action(ctx, input, OperationType::Delete).await
    }

    /// Cancels an operation: a queued one ends at once as `CANCELLED`; a
    /// running one goes to `CANCELLING`, stops its current step and rolls
    /// back. With `force: true` a running one is sure to end within a short
    /// bound, and the answer is the final operation. A final one is refused
    /// with `INVALID_TRANSITION`.
    async fn cancel_operation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The operation to cancel.")] input: CancelOperationInput,
    ) -> Result<OperationNode> {
        let id: OperationId = parse_id(&input.operation_id)?;
        let s = scope(ctx)?;
        let force = input.force.unwrap_or(false);
        let op = s.engine().cancel(s.principal, id, force).await.gql()?;
        Ok(OperationNode(op))
    }

    /// Starts a maintenance campaign: a `REDEPLOY` (trigger `PLATFORM`,
    /// reason `MAINTENANCE`) of every matching service that was deployed
    /// before, at most `concurrency` queued or running at once. Answers at
    /// once with the campaign; follow it with `maintenanceProgress`. A
    /// filter that matches nothing gives a campaign completed at once with
    /// a total of 0. An environment or service the caller cannot see is
    /// `NOT_FOUND`.
    async fn start_maintenance(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which services, why, and how many at a time.")] input: StartMaintenanceInput,
    ) -> Result<MaintenanceCampaignObject> {
        let new = input.validate().gql()?;
        let s = scope(ctx)?;
        let campaign = s.engine().start_maintenance(s.principal, new).await.gql()?;
        Ok(campaign.into())
    }

    /// Appends lines to the log of an operation that is not final: for
    /// deployment machinery outside opsgraph. Each string may hold several
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
    ) -> Result<AppendLogsPayload> {
        let s = scope(ctx)?;
        let op: OperationId = parse_id(&operation_id)?;
        let stream = stream.unwrap_or(LogStream::Stdout).into();
        let lines = client_lines(lines, stream, s.app.limits.max_append_lines).gql()?;
        let (org, weight) = (s.org(), lines.len());
        let (first_seq, last_seq) = s
            .store()
            .write_weighted(weight, move |tx| logs::append_to_operation(tx, org, op, &lines))
            .await
            .gql()?;
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

/// Queues `new` for the caller.
async fn submit(s: &Scope<'_>, new: NewOperation) -> Result<OperationNode> {
    let op = s.engine().submit(s.principal, new).await.gql()?;
    Ok(OperationNode(op))
}

/// Queues an operation of `op_type` that takes nothing but the service.
async fn action(
    ctx: &Context<'_>,
    input: ServiceActionInput,
    op_type: OperationType,
) -> Result<OperationNode> {
    let s = scope(ctx)?;
    submit(&s, input.validate(op_type, &s.principal.member).gql()?).await
}
