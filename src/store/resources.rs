//! Organizations, environments, services and instances.

use std::ops::ControlFlow;

use super::access::{Reader, Result, Tx};
use super::events::Event;
use super::paging::{Page, PageArgs, paginate};
use super::statuses::Watch;
use super::tables::*;
use crate::domain::resource::NewService;
use crate::domain::{
    DomainError, Environment, EnvironmentId, EnvironmentPatch, Instance, InstanceId, Name, Organization,
    OrganizationId, Service, ServiceId, ServiceKind, ServicePatch, ServiceSpec, now_millis,
};

/// The organization with id 1, created on first start.
pub fn ensure_first_organization(tx: &mut Tx<'_>, name: &str) -> Result<Organization> {
    if let Some(org) = tx.reader().get::<Organization>(ORGANIZATIONS, 1)? {
        return Ok(org);
    }
    let id = OrganizationId(tx.next_id("organization")?);
    let org = Organization { id, name: name.to_owned(), created_at: now_millis() };
    tx.put(ORGANIZATIONS, id.0, &org)?;
    Ok(org)
}

/// The organization `org`.
pub fn organization(r: Reader<'_>, org: OrganizationId) -> Result<Organization> {
    r.get::<Organization>(ORGANIZATIONS, org.0)?.ok_or_else(|| DomainError::not_found("Organization", org))
}

/// `CONFLICT` if another environment of `org` than `except` is named `name`.
fn check_environment_name(
    r: Reader<'_>,
    org: OrganizationId,
    name: &Name,
    except: Option<EnvironmentId>,
) -> Result<()> {
    let mut taken = false;
    r.scan_index(ENVIRONMENTS_BY_ORG, org.0, 0..=u64::MAX, false, |id| {
        let env: Option<Environment> = r.get(ENVIRONMENTS, id)?;
        taken = env.is_some_and(|e| &e.name == name && Some(e.id) != except);
        Ok(if taken { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    if taken {
        return Err(DomainError::Conflict(format!(
            "an environment named `{}` already exists",
            name.as_str()
        )));
    }
    Ok(())
}

pub fn create_environment(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    name: Name,
    log_retention_days: u32,
) -> Result<Environment> {
    check_environment_name(tx.reader(), org, &name, None)?;
    let id = EnvironmentId(tx.next_id("environment")?);
    let env = Environment { id, organization_id: org, name, created_at: now_millis(), log_retention_days };
    tx.put(ENVIRONMENTS, id.0, &env)?;
    tx.index(ENVIRONMENTS_BY_ORG, (org.0, id.0))?;
    Ok(env)
}

/// The environment, if it belongs to `org`: another organization's objects
/// are reported exactly as missing ones.
pub fn environment(r: Reader<'_>, org: OrganizationId, id: EnvironmentId) -> Result<Environment> {
    r.get::<Environment>(ENVIRONMENTS, id.0)?
        .filter(|e| e.organization_id == org)
        .ok_or_else(|| DomainError::not_found("Environment", id))
}

/// Renames an environment of `org` or changes its log retention. The name
/// must stay unique within the organization (`CONFLICT`); another
/// organization's environment is `NOT_FOUND`. Operations keep the
/// environment name they were queued with, so nothing else is rewritten;
/// the indexes hold ids only, so none changes.
pub fn update_environment(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    id: EnvironmentId,
    patch: &EnvironmentPatch,
) -> Result<Environment> {
    let r = tx.reader();
    let mut env = environment(r, org, id)?;
    let before = (env.name.clone(), env.log_retention_days);
    if let Some(name) = patch.name.as_ref().filter(|n| **n != env.name) {
        check_environment_name(r, org, name, Some(id))?;
        env.name = name.clone();
    }
    env.log_retention_days = patch.log_retention_days.unwrap_or(env.log_retention_days);
    if (env.name.clone(), env.log_retention_days) != before {
        tx.put(ENVIRONMENTS, id.0, &env)?;
    }
    Ok(env)
}

pub fn environments_page(r: Reader<'_>, org: OrganizationId, args: &PageArgs) -> Result<Page<Environment>> {
    paginate(args, false, |range, rev, visit| {
        r.scan_index(ENVIRONMENTS_BY_ORG, org.0, range, rev, |id| match r.get(ENVIRONMENTS, id)? {
            Some(env) => visit(id, env),
            None => Ok(ControlFlow::Continue(())),
        })
    })
}

fn name_taken(r: Reader<'_>, env: EnvironmentId, name: &Name, except: Option<ServiceId>) -> Result<bool> {
    let mut taken = false;
    r.scan_index(SERVICES_BY_ENVIRONMENT, env.0, 0..=u64::MAX, false, |id| {
        let svc: Option<Service> = r.get(SERVICES, id)?;
        taken = svc.is_some_and(|s| !s.is_deleted() && &s.name == name && Some(s.id) != except);
        Ok(if taken { ControlFlow::Break(()) } else { ControlFlow::Continue(()) })
    })?;
    Ok(taken)
}

pub fn create_service(tx: &mut Tx<'_>, org: OrganizationId, new: &NewService) -> Result<Service> {
    let r = tx.reader();
    let env = new.environment_id;
    environment(r, org, env)?;
    check_spec(new.kind, &new.spec)?;
    if name_taken(r, env, &new.name, None)? {
        return Err(DomainError::Conflict(format!(
            "a service named `{}` already exists in environment {env}",
            new.name.as_str()
        )));
    }
    let watch = Watch::environment(r, env)?;
    let id = ServiceId(tx.next_id("service")?);
    let svc = Service {
        id,
        organization_id: org,
        environment_id: env,
        name: new.name.clone(),
        kind: new.kind,
        spec: new.spec.clone(),
        current_commit: None,
        created_at: now_millis(),
        deleted_at: None,
        branch: new.branch.clone(),
        webhook_secret: new.webhook_secret.clone(),
        pin: None,
    };
    tx.put(SERVICES, id.0, &svc)?;
    tx.index(SERVICES_BY_ENVIRONMENT, (env.0, id.0))?;
    watch.record(tx, None)?;
    Ok(svc)
}

/// Rules that tie a spec to the kind of service.
pub fn check_spec(kind: ServiceKind, spec: &ServiceSpec) -> Result<()> {
    const ONE_HOLDER: &str = "a DATABASE owns a data directory that only one instance may hold: at most 1";
    if kind == ServiceKind::Database && spec.instances > 1 {
        return Err(DomainError::bad_input("instances", ONE_HOLDER));
    }
    if kind == ServiceKind::Database && spec.monitoring.max_instances.is_some_and(|n| n > 1) {
        return Err(DomainError::bad_input("maxInstances", ONE_HOLDER));
    }
    Ok(())
}

pub fn update_service(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    id: ServiceId,
    patch: &ServicePatch,
) -> Result<Service> {
    let r = tx.reader();
    let mut svc = live_service(r, org, id)?;
    if let Some(name) = &patch.name {
        if name_taken(r, svc.environment_id, name, Some(id))? {
            return Err(DomainError::Conflict(format!(
                "a service named `{}` already exists in environment {}",
                name.as_str(),
                svc.environment_id
            )));
        }
        svc.name = name.clone();
    }
    if patch.executor.as_ref().is_some_and(|e| *e != svc.spec.executor)
        && super::operations::queue_end(r, id, false)?.is_some()
    {
        return Err(DomainError::Conflict(format!(
            "service {id} has operations queued or running: change its executor once they have ended"
        )));
    }
    patch.apply(&mut svc.spec);
    check_spec(svc.kind, &svc.spec)?;
    if let Some(branch) = &patch.branch {
        svc.branch.clone_from(branch);
    }
    if let Some(secret) = &patch.webhook_secret {
        svc.webhook_secret.clone_from(secret);
    }
    tx.put(SERVICES, id.0, &svc)?;
    Ok(svc)
}

/// Rewrites a service row as the engine changes it (commit, count, deletion).
/// Stores a service; records the change of its environment's running
/// status when it was deleted.
pub fn put_service(tx: &mut Tx<'_>, svc: &Service) -> Result<()> {
    let watch = Watch::environment(tx.reader(), svc.environment_id)?;
    tx.put(SERVICES, svc.id.0, svc)?;
    watch.record(tx, None)
}

/// The service, deleted or not, if it belongs to `org`.
pub fn service(r: Reader<'_>, org: OrganizationId, id: ServiceId) -> Result<Service> {
    r.get::<Service>(SERVICES, id.0)?
        .filter(|s| s.organization_id == org)
        .ok_or_else(|| DomainError::not_found("Service", id))
}

/// The service, unless it was deleted (then `CONFLICT`).
pub fn live_service(r: Reader<'_>, org: OrganizationId, id: ServiceId) -> Result<Service> {
    let svc = service(r, org, id)?;
    if svc.is_deleted() {
        return Err(DomainError::Conflict(format!("service {id} has been deleted")));
    }
    Ok(svc)
}

/// A service by id alone, for the engine (which acts for every organization).
pub fn service_by_id(r: Reader<'_>, id: ServiceId) -> Result<Service> {
    r.get::<Service>(SERVICES, id.0)?.ok_or_else(|| DomainError::not_found("Service", id))
}

pub fn services_page(
    r: Reader<'_>,
    env: EnvironmentId,
    include_deleted: bool,
    args: &PageArgs,
) -> Result<Page<Service>> {
    paginate(args, false, |range, rev, visit| {
        r.scan_index(SERVICES_BY_ENVIRONMENT, env.0, range, rev, |id| {
            match r.get::<Service>(SERVICES, id)? {
                Some(svc) if include_deleted || !svc.is_deleted() => visit(id, svc),
                _ => Ok(ControlFlow::Continue(())),
            }
        })
    })
}

/// Every live service of an environment (for statuses).
pub fn services_of(r: Reader<'_>, env: EnvironmentId) -> Result<Vec<Service>> {
    let page = services_page(r, env, false, &PageArgs::first(usize::MAX - 1))?;
    Ok(page.items.into_iter().map(|(_, s)| s).collect())
}

/// Stores an instance; records the running statuses it changes.
pub fn put_instance(tx: &mut Tx<'_>, inst: &Instance) -> Result<()> {
    let watch = watch_instance(tx.reader(), inst)?;
    tx.put(INSTANCES, inst.id.0, inst)?;
    tx.index(INSTANCES_BY_SERVICE, (inst.service_id.0, inst.id.0))?;
    tx.emit(Event::Instance { service_id: inst.service_id });
    watch.record(tx, Some(inst.status.running_value()))
}

/// Removes an instance (replaced and stopped); records the running statuses
/// its going changes.
pub fn remove_instance(tx: &mut Tx<'_>, inst: &Instance) -> Result<()> {
    let watch = watch_instance(tx.reader(), inst)?;
    tx.delete(INSTANCES, inst.id.0)?;
    tx.unindex(INSTANCES_BY_SERVICE, (inst.service_id.0, inst.id.0))?;
    tx.emit(Event::Instance { service_id: inst.service_id });
    watch.record(tx, None)
}

fn watch_instance(r: Reader<'_>, inst: &Instance) -> Result<Watch> {
    let svc = service_by_id(r, inst.service_id)?;
    let before = instance(r, inst.id)?.map(|i| i.status.running_value());
    Watch::instance(r, &svc, inst.id, before)
}

pub fn new_instance_id(tx: &mut Tx<'_>) -> Result<InstanceId> {
    Ok(InstanceId(tx.next_id("instance")?))
}

pub fn instance(r: Reader<'_>, id: InstanceId) -> Result<Option<Instance>> {
    r.get(INSTANCES, id.0)
}

pub fn instances_of(r: Reader<'_>, svc: ServiceId) -> Result<Vec<Instance>> {
    let mut out = Vec::new();
    r.scan_index(INSTANCES_BY_SERVICE, svc.0, 0..=u64::MAX, false, |id| {
        out.extend(r.get::<Instance>(INSTANCES, id)?);
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Every service row, deleted ones included (for monitoring).
pub fn all_services(r: Reader<'_>) -> Result<Vec<Service>> {
    r.all_rows(SERVICES)
}

/// Every instance row of every service (for start-up recovery).
pub fn all_instances(r: Reader<'_>) -> Result<Vec<Instance>> {
    r.all_rows(INSTANCES)
}
