//! The `Node` interface: every object with a global id, and the lookup
//! behind `Query.node`.

use async_graphql::{ID, Interface};

use super::environment::EnvironmentNode;
use super::instance::{InstanceNode, visible_instance};
use super::operation::OperationNode;
use super::service::ServiceNode;
use crate::domain::{DomainError, EnvironmentId, InstanceId, OperationId, OrganizationId, ServiceId};
use crate::graphql::scope::found;
use crate::store::{Reader, operations, resources};

/// An object with a global id, which `Query.node` finds again.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Global id: a type prefix and a number, such as `svc_12`."))]
pub enum Node {
    Environment(EnvironmentNode),
    /// Boxed: a service row (its spec) is far larger than the others.
    Service(Box<ServiceNode>),
    Operation(OperationNode),
    Instance(InstanceNode),
}

/// The object with global id `raw`, if `org` can see it. A malformed id is
/// `BAD_USER_INPUT`; an unknown one is `None`.
pub fn lookup(r: Reader<'_>, org: OrganizationId, raw: &str) -> Result<Option<Node>, DomainError> {
    let prefix = raw.split_once('_').map_or("", |(prefix, _)| prefix);
    let node = match prefix {
        EnvironmentId::PREFIX => found(resources::environment(r, org, raw.parse()?))?
            .map(|e| Node::Environment(EnvironmentNode(e))),
        ServiceId::PREFIX => {
            found(resources::service(r, org, raw.parse()?))?.map(|s| Node::Service(Box::new(ServiceNode(s))))
        }
        OperationId::PREFIX => {
            found(operations::operation(r, org, raw.parse()?))?.map(|o| Node::Operation(OperationNode(o)))
        }
        InstanceId::PREFIX => {
            found(visible_instance(r, org, raw.parse()?))?.map(|i| Node::Instance(InstanceNode(i)))
        }
        _ => {
            return Err(DomainError::bad_input(
                "id",
                format!("`{raw}` is not the global id of an Environment, Service, Operation or Instance"),
            ));
        }
    };
    Ok(node)
}
