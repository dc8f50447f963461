//! The `Node` interface: every object with a global id, and the lookup
//! behind `Query.node`.

use async_graphql::{ID, Interface};

use super::environment::EnvironmentNode;
use super::instance::{InstanceNode, visible_instance};
use super::operation::OperationNode;
use super::service::ServiceNode;
use super::status_page::ComponentObject;
use super::status_page::incident::IncidentObject;
use super::status_page::window::MaintenanceObject;
use crate::domain::status_page::{ComponentId, IncidentId, WindowId};
use crate::domain::{DomainError, EnvironmentId, InstanceId, OperationId, OrganizationId, ServiceId};
use crate::graphql::scope::found;
use crate::store::status_page::{self as page, Audience, incidents, windows};
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
    /// Status page objects: public, found by anyone (drafts never).
    Component(ComponentObject),
    Incident(IncidentObject),
    Maintenance(MaintenanceObject),
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
        ComponentId::PREFIX => {
            let id: ComponentId = raw.parse()?;
            found(page::component(r, id))?
                .map(|c| {
                    Ok::<_, DomainError>(Node::Component(ComponentObject(
                        c,
                        page::shown_availability(r, id)?,
                    )))
                })
                .transpose()?
        }
        IncidentId::PREFIX => found(incidents::incident(r, raw.parse()?, Audience::Public))?
            .map(|i| Node::Incident(IncidentObject(i, Audience::Public))),
        WindowId::PREFIX => {
            found(windows::window(r, raw.parse()?))?.map(|w| Node::Maintenance(MaintenanceObject(w)))
        }
        _ => {
            return Err(DomainError::bad_input(
                "id",
                format!(
                    "`{raw}` is not the global id of an Environment, Service, Operation, Instance, Component, \
                     Incident or Maintenance"
                ),
            ));
        }
    };
    Ok(node)
}
