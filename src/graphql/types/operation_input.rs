//! Inputs of the mutations that queue or cancel operations, and their
//! validation into [`NewOperation`]s.

use async_graphql::{ID, InputObject};

use super::enums::TriggerSource;
use super::selector::OperationSelectorInput;
use crate::domain::resource::{parse_commit, parse_instances};
use crate::domain::{
    DomainError, IdempotencyKey, Member, NewOperation, Operation, OperationId, OperationSelector,
    OperationType, ServiceId, Trigger,
};

/// Input of `deploy`.
#[derive(InputObject)]
pub struct DeployInput {
    /// The service to deploy.
    pub service_id: ID,
    /// The commit to build and deploy: 1 to 200 characters without spaces.
    pub commit: String,
    /// The channel the request comes through.
    #[graphql(default_with = "TriggerSource::Api")]
    pub source: TriggerSource,
    /// Sending the same request again with the same key (1 to 200
    /// characters) answers with the reply to the first one (the operation
    /// as it was queued) instead of queueing another, even when the first
    /// reply was lost or the server restarted since; the same key with a
    /// different request is refused with `IDEMPOTENCY_KEY_REUSED`. Keys
    /// are kept 24 hours.
    pub idempotency_key: Option<String>,
}

/// Input of `redeploy`: `serviceId` alone, `operationId` alone, or
/// `serviceId` with `operation`.
#[derive(InputObject)]
pub struct RedeployInput {
    /// Alone: redeploy the service's current commit (a `REDEPLOY`). With
    /// `operation`: the service whose operation is named.
    pub service_id: Option<ID>,
    /// "Redeploy this commit": deploy again the commit of this operation on
    /// its service (a `DEPLOY` with `redeployOf` set). Refused when the
    /// operation's `canRedeploy` is false.
    pub operation_id: Option<ID>,
    /// With `serviceId`: "redeploy this commit" of the operation the
    /// selector names (for example `PREVIOUS`: roll back to what ran
    /// before), instead of giving its id.
    pub operation: Option<OperationSelectorInput>,
    /// The channel the request comes through.
    #[graphql(default_with = "TriggerSource::Api")]
    pub source: TriggerSource,
    /// Sending the same request again with the same key (1 to 200
    /// characters) answers with the reply to the first one (the operation
    /// as it was queued) instead of queueing another, even when the first
    /// reply was lost or the server restarted since; the same key with a
    /// different request is refused with `IDEMPOTENCY_KEY_REUSED`. Keys
    /// are kept 24 hours.
    pub idempotency_key: Option<String>,
}

/// Input of `restart`, `stop`, `start` and `deleteService`.
#[derive(InputObject)]
pub struct ServiceActionInput {
    /// The service to act on.
    pub service_id: ID,
    /// The channel the request comes through.
    #[graphql(default_with = "TriggerSource::Api")]
    pub source: TriggerSource,
    /// Sending the same request again with the same key (1 to 200
    /// characters) answers with the reply to the first one (the operation
    /// as it was queued) instead of queueing another, even when the first
    /// reply was lost or the server restarted since; the same key with a
    /// different request is refused with `IDEMPOTENCY_KEY_REUSED`. Keys
    /// are kept 24 hours.
    pub idempotency_key: Option<String>,
}

/// Input of `scale`.
#[derive(InputObject)]
pub struct ScaleInput {
    /// The service to scale.
    pub service_id: ID,
    /// The instance count to reach (0 to 64; a `DATABASE` at most 1).
    pub instances: i32,
    /// The channel the request comes through.
    #[graphql(default_with = "TriggerSource::Api")]
    pub source: TriggerSource,
    /// Sending the same request again with the same key (1 to 200
    /// characters) answers with the reply to the first one (the operation
    /// as it was queued) instead of queueing another, even when the first
    /// reply was lost or the server restarted since; the same key with a
    /// different request is refused with `IDEMPOTENCY_KEY_REUSED`. Keys
    /// are kept 24 hours.
    pub idempotency_key: Option<String>,
}

/// Input of `cancelOperation`.
#[derive(InputObject)]
pub struct CancelOperationInput {
    /// The operation to cancel; it must not be final.
    pub operation_id: ID,
    /// `true` guarantees that a running operation ends even when its
    /// current step or its rollback does not respond: after the normal
    /// cancel it gets a short grace (the server's force grace, 5 seconds
    /// by default), then it is stopped where it is, the processes it
    /// started are killed, and it ends `CANCELLED` — with rollback `FAILED`
    /// when something it changed was not undone; its log says what was
    /// left. The mutation then answers with the final operation. Also
    /// allowed on a `CANCELLING` operation. A queued operation is cancelled
    /// at once either way. Null or omitted: `false`.
    #[graphql(default_with = "Some(false)")]
    pub force: Option<bool>,
}

/// What the fields shared by every operation input become.
pub struct Common {
    trigger: Trigger,
    pub idempotency_key: Option<IdempotencyKey>,
}

/// The shared fields, checked; `request` is every other input field as
/// the client gave it (the key's fingerprint).
fn common(
    author: &Member,
    source: TriggerSource,
    key: Option<&str>,
    request: &[&str],
) -> Result<Common, DomainError> {
    let source_name = format!("{source:?}");
    let mut fields = request.to_vec();
    fields.push(&source_name);
    Ok(Common {
        trigger: Trigger::user(author.clone(), source.into())?,
        idempotency_key: key.map(|k| IdempotencyKey::new(k, &fields)).transpose()?,
    })
}

fn new_operation(service_id: ServiceId, op_type: OperationType, common: Common) -> NewOperation {
    NewOperation {
        service_id,
        op_type,
        commit: None,
        trigger: common.trigger,
        target_instances: None,
        redeploy_of: None,
        idempotency_key: common.idempotency_key,
    }
}

impl DeployInput {
    pub fn validate(&self, author: &Member) -> Result<NewOperation, DomainError> {
        let fields = ["deploy", self.service_id.as_str(), self.commit.as_str()];
        let common = common(author, self.source, self.idempotency_key.as_deref(), &fields)?;
        let commit = parse_commit(&self.commit)?;
        let new = new_operation(self.service_id.parse()?, OperationType::Deploy, common);
        Ok(NewOperation { commit: Some(commit), ..new })
    }
}

/// An operation named by its id or by a selector on its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationRef {
    Id(OperationId),
    Selected(ServiceId, OperationSelector),
}

/// What a [`RedeployInput`] asks for.
pub enum Redeploy {
    /// A `REDEPLOY` of the service's current commit, ready to submit.
    Service(NewOperation),
    /// "Redeploy this commit": see [`Redeploy::deploy_of`].
    Operation(OperationRef, Common),
}

impl Redeploy {
    /// The `DEPLOY` of the commit of `of` on its service, asked for with
    /// `common`.
    pub fn deploy_of(of: &Operation, common: Common) -> NewOperation {
        let new = new_operation(of.service_id, OperationType::Deploy, common);
        NewOperation { commit: of.commit.clone(), redeploy_of: Some(of.id), ..new }
    }
}

impl RedeployInput {
    pub fn validate(&self, author: &Member) -> Result<Redeploy, DomainError> {
        let selector = self.operation.map(|s| format!("{:?}/{:?}", s.kind, s.offset)).unwrap_or_default();
        let fields = [
            "redeploy",
            self.service_id.as_ref().map_or("", |id| id.as_str()),
            self.operation_id.as_ref().map_or("", |id| id.as_str()),
            selector.as_str(),
        ];
        let common = common(author, self.source, self.idempotency_key.as_deref(), &fields)?;
        match (&self.service_id, &self.operation_id, self.operation) {
            (Some(svc), None, None) => {
                Ok(Redeploy::Service(new_operation(svc.parse()?, OperationType::Redeploy, common)))
            }
            (None, Some(op), None) => Ok(Redeploy::Operation(OperationRef::Id(op.parse()?), common)),
            (Some(svc), None, Some(selector)) => {
                let named = OperationRef::Selected(svc.parse()?, selector.validate()?);
                Ok(Redeploy::Operation(named, common))
            }
            _ => Err(DomainError::bad_input(
                "serviceId",
                "give `serviceId` alone (redeploy the current commit), `operationId` alone, or `serviceId` \
                 with `operation` (redeploy that operation's commit)",
            )),
        }
    }
}

impl ServiceActionInput {
    pub fn validate(&self, op_type: OperationType, author: &Member) -> Result<NewOperation, DomainError> {
        let fields = [op_type.as_str(), self.service_id.as_str()];
        let common = common(author, self.source, self.idempotency_key.as_deref(), &fields)?;
        Ok(new_operation(self.service_id.parse()?, op_type, common))
    }
}

impl ScaleInput {
    pub fn validate(&self, author: &Member) -> Result<NewOperation, DomainError> {
        let instances_given = self.instances.to_string();
        let fields = ["scale", self.service_id.as_str(), instances_given.as_str()];
        let common = common(author, self.source, self.idempotency_key.as_deref(), &fields)?;
        let instances = parse_instances(self.instances.into())?;
        let new = new_operation(self.service_id.parse()?, OperationType::Scale, common);
        Ok(NewOperation { target_instances: Some(instances), ..new })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ada() -> Member {
        Member { id: 1, name: "ada".into() }
    }

    #[test]
    fn redeploy_needs_exactly_one_target() {
        use super::super::selector::OperationSelectorKind;
        let previous = OperationSelectorInput { kind: OperationSelectorKind::Previous, offset: None };
        let input =
            |svc: Option<&str>, op: Option<&str>, selector: Option<OperationSelectorInput>| RedeployInput {
                service_id: svc.map(ID::from),
                operation_id: op.map(ID::from),
                operation: selector,
                source: TriggerSource::Api,
                idempotency_key: None,
            };
        for bad in [
            input(None, None, None),
            input(Some("svc_1"), Some("op_1"), None),
            input(None, None, Some(previous)),
            input(None, Some("op_1"), Some(previous)),
        ] {
            let err = bad.validate(&ada()).err().unwrap();
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT");
        }
        let named = |input: RedeployInput| match input.validate(&ada()).unwrap() {
            Redeploy::Operation(named, _) => named,
            Redeploy::Service(_) => panic!("expected a redeploy of an operation"),
        };
        assert_eq!(named(input(None, Some("op_7"), None)), OperationRef::Id(OperationId(7)));
        assert_eq!(
            named(input(Some("svc_2"), None, Some(previous))),
            OperationRef::Selected(ServiceId(2), OperationSelector::Previous)
        );
    }

    #[test]
    fn users_cannot_claim_the_monitoring_source() {
        let input = ServiceActionInput {
            service_id: ID::from("svc_1"),
            source: TriggerSource::Monitoring,
            idempotency_key: None,
        };
        let err = input.validate(OperationType::Restart, &ada()).unwrap_err();
        assert_eq!(err.code().as_str(), "BAD_USER_INPUT");
    }

    #[test]
    fn malformed_ids_commits_and_keys_are_bad_user_input() {
        let deploy = |svc: &str, commit: &str, key: Option<&str>| DeployInput {
            service_id: ID::from(svc),
            commit: commit.into(),
            source: TriggerSource::Cli,
            idempotency_key: key.map(str::to_owned),
        };
        assert!(deploy("svc_1", "abc", Some("k-1")).validate(&ada()).is_ok());
        for bad in
            [deploy("op_1", "abc", None), deploy("svc_1", "a b", None), deploy("svc_1", "abc", Some(""))]
        {
            assert_eq!(bad.validate(&ada()).unwrap_err().code().as_str(), "BAD_USER_INPUT");
        }
    }
}
