//! Members, tokens and the audit log: their rows and the rules that need
//! the rows (the last owner stays; only owners make or unmake owners).
//!
//! Members and tokens are few, so they are read whole; the audit log is
//! keyed by organization and read one range at a time.

use std::ops::ControlFlow;

use super::access::{Reader, Result, Tx};
use super::paging::{Page, PageArgs, Visitor, paginate};
use super::tables::{AUDIT_LOG, MEMBERS, ORGANIZATIONS, TOKENS};
use crate::domain::access::{AuditEntry, AuditFilter, MemberRecord, Token};
use crate::domain::{
    DomainError, Millis, Organization, OrganizationId, Principal, Role, TokenKind, now_millis,
};

/// Every member row (of every organization), removed ones included.
pub fn all_members(r: Reader<'_>) -> Result<Vec<MemberRecord>> {
    r.all_rows(MEMBERS)
}

/// Every token row (of every organization), revoked ones included.
pub fn all_tokens(r: Reader<'_>) -> Result<Vec<Token>> {
    r.all_rows(TOKENS)
}

/// The member `id` of `org`, removed or not; `NOT_FOUND` for another
/// organization's.
pub fn member(r: Reader<'_>, org: OrganizationId, id: u64) -> Result<MemberRecord> {
    r.get::<MemberRecord>(MEMBERS, id)?
        .filter(|m| m.organization_id == org)
        .ok_or_else(|| DomainError::not_found("Member", format!("mem_{id}")))
}

/// The token `id` of `org`; `NOT_FOUND` for another organization's.
pub fn token(r: Reader<'_>, org: OrganizationId, id: u64) -> Result<Token> {
    r.get::<Token>(TOKENS, id)?
        .filter(|t| t.organization_id == org)
        .ok_or_else(|| DomainError::not_found("Token", format!("tok_{id}")))
}

/// A page of the organization's members (not removed ones), oldest first.
pub fn members_page(r: Reader<'_>, org: OrganizationId, args: &PageArgs) -> Result<Page<MemberRecord>> {
    let rows = all_members(r)?.into_iter().filter(|m| m.organization_id == org && !m.is_removed());
    page_of(rows.map(|m| (m.id, m)).collect(), args)
}

/// A page of the organization's tokens, oldest first: all of them, or
/// only member `only`'s personal tokens.
pub fn tokens_page(
    r: Reader<'_>,
    org: OrganizationId,
    only: Option<u64>,
    args: &PageArgs,
) -> Result<Page<Token>> {
    let rows = all_tokens(r)?
        .into_iter()
        .filter(|t| t.organization_id == org && only.is_none_or(|m| t.member_id == Some(m)));
    page_of(rows.map(|t| (t.id, t)).collect(), args)
}

/// A page of rows already read, sorted by id.
fn page_of<T>(mut rows: Vec<(u64, T)>, args: &PageArgs) -> Result<Page<T>> {
    rows.sort_by_key(|(id, _)| *id);
    paginate(args, false, |range, rev, visit: Visitor<'_, T>| {
        let within = rows.into_iter().filter(|(id, _)| range.contains(id));
        let ordered: Vec<(u64, T)> = if rev { within.rev().collect() } else { within.collect() };
        for (id, row) in ordered {
            if visit(id, row)?.is_break() {
                break;
            }
        }
        Ok(())
    })
}

/// The owners of `org` that are not removed.
fn owners(r: Reader<'_>, org: OrganizationId) -> Result<usize> {
    Ok(all_members(r)?
        .iter()
        .filter(|m| m.organization_id == org && !m.is_removed() && m.role == Role::Owner)
        .count())
}

/// `FORBIDDEN` unless `by` may give or take `role` (only an owner handles
/// the owner role).
fn may_handle(by: &Principal, role: Role) -> Result<()> {
    if role == Role::Owner && by.grant.role() != Some(Role::Owner) {
        return Err(DomainError::Forbidden("only an OWNER may make, change or remove an owner".into()));
    }
    Ok(())
}

/// Adds a member to `org`.
pub fn add_member(tx: &mut Tx<'_>, by: &Principal, name: &str, role: Role) -> Result<MemberRecord> {
    may_handle(by, role)?;
    insert_member(tx, by.organization_id, name, role)
}

fn insert_member(tx: &mut Tx<'_>, org: OrganizationId, name: &str, role: Role) -> Result<MemberRecord> {
    let id = tx.next_id("member")?;
    let member = MemberRecord {
        id,
        organization_id: org,
        name: name.to_owned(),
        role,
        created_at: now_millis(),
        removed_at: None,
        revision: 1,
    };
    tx.put(MEMBERS, id, &member)?;
    Ok(member)
}

/// Changes a member's role. The last owner stays an owner (`CONFLICT`).
pub fn change_role(tx: &mut Tx<'_>, by: &Principal, id: u64, role: Role) -> Result<MemberRecord> {
    let org = by.organization_id;
    let mut member = live_member(tx.reader(), org, id)?;
    may_handle(by, member.role)?;
    may_handle(by, role)?;
    if member.role == Role::Owner && role != Role::Owner && owners(tx.reader(), org)? == 1 {
        return Err(DomainError::Conflict(format!(
            "{} is the last owner of the organization: make another member an owner first",
            member.name
        )));
    }
    member.role = role;
    member.revision += 1;
    tx.put(MEMBERS, id, &member)?;
    Ok(member)
}

/// Removes a member and revokes its tokens; returns the member and the
/// tokens revoked. The last owner cannot be removed (`CONFLICT`).
pub fn remove_member(tx: &mut Tx<'_>, by: &Principal, id: u64) -> Result<(MemberRecord, Vec<Token>)> {
    let org = by.organization_id;
    let mut member = live_member(tx.reader(), org, id)?;
    may_handle(by, member.role)?;
    if member.role == Role::Owner && owners(tx.reader(), org)? == 1 {
        return Err(DomainError::Conflict(format!(
            "{} is the last owner of the organization and cannot be removed",
            member.name
        )));
    }
    let now = now_millis();
    member.removed_at = Some(now);
    member.revision += 1;
    tx.put(MEMBERS, id, &member)?;
    let mut revoked = Vec::new();
    for mut token in all_tokens(tx.reader())? {
        if token.member_id == Some(id) && token.revoked_at.is_none() {
            token.revoked_at = Some(now);
            tx.put(TOKENS, token.id, &token)?;
            revoked.push(token);
        }
    }
    Ok((member, revoked))
}

fn live_member(r: Reader<'_>, org: OrganizationId, id: u64) -> Result<MemberRecord> {
    let member = member(r, org, id)?;
    if member.is_removed() {
        return Err(DomainError::not_found("Member", format!("mem_{id}")));
    }
    Ok(member)
}

/// A token to create, checked.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub kind: TokenKind,
    /// For a personal token: its member (`None`: the caller).
    pub member_id: Option<u64>,
    pub role: Option<Role>,
    pub expires_at: Option<Millis>,
}

/// The secret's listed prefix and hash (the secret itself is never
/// stored).
#[derive(Debug, Clone)]
pub struct SecretParts {
    pub prefix: String,
    pub hash: String,
}

/// Creates a token for `by`. Anyone may create personal tokens for
/// themselves; tokens of other members, and worker and monitoring
/// tokens, need the right to manage members.
pub fn create_token(tx: &mut Tx<'_>, by: &Principal, new: &NewToken, secret: &SecretParts) -> Result<Token> {
    let org = by.organization_id;
    let member_id = match new.kind {
        TokenKind::Personal => Some(new.member_id.unwrap_or(by.member.id)),
        _ if new.member_id.is_some() || new.role.is_some() => {
            return Err(DomainError::bad_input(
                "memberId",
                "only a PERSONAL token acts as a member with a role",
            ));
        }
        _ => None,
    };
    let own = member_id.is_some_and(|m| by.is_member(m));
    if !own {
        by.check(crate::domain::Action::ManageMembers)?;
    }
    if let Some(id) = member_id {
        let member = live_member(tx.reader(), org, id)?;
        if new.role.is_some_and(|cap| cap == Role::Owner && member.role != Role::Owner) {
            return Err(DomainError::bad_input("role", format!("{} is not an OWNER", member.name)));
        }
    }
    if new.expires_at.is_some_and(|at| at <= now_millis()) {
        return Err(DomainError::bad_input("expiresAt", "must be in the future"));
    }
    insert_token(tx, org, new, member_id, secret, &by.member.name)
}

fn insert_token(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    new: &NewToken,
    member_id: Option<u64>,
    secret: &SecretParts,
    created_by: &str,
) -> Result<Token> {
    let id = tx.next_id("token")?;
    let token = Token {
        id,
        organization_id: org,
        name: new.name.clone(),
        kind: new.kind,
        member_id,
        role: new.role,
        prefix: secret.prefix.clone(),
        hash: secret.hash.clone(),
        created_at: now_millis(),
        created_by: created_by.to_owned(),
        expires_at: new.expires_at,
        revoked_at: None,
    };
    tx.put(TOKENS, id, &token)?;
    Ok(token)
}

/// Revokes a token: one's own, or any of the organization's with the right
/// to manage members. Revoking a revoked token answers it as it is.
pub fn revoke_token(tx: &mut Tx<'_>, by: &Principal, id: u64) -> Result<Token> {
    let mut token = token(tx.reader(), by.organization_id, id)?;
    let own = token.member_id.is_some_and(|m| by.is_member(m));
    if !own {
        by.check(crate::domain::Action::ManageMembers)?;
    }
    if token.revoked_at.is_none() {
        token.revoked_at = Some(now_millis());
        tx.put(TOKENS, id, &token)?;
    }
    Ok(token)
}

/// What the first start of a new database file made.
pub struct FirstStart {
    pub organization: Organization,
    pub owner: MemberRecord,
    pub token: Token,
}

/// On a file that has never had a token: makes sure an organization
/// exists (named `org_name` when new) and gives its first owner (created
/// if none) a personal token named `first owner token`. `None` once any
/// token exists.
pub fn first_start(tx: &mut Tx<'_>, org_name: &str, secret: &SecretParts) -> Result<Option<FirstStart>> {
    if !all_tokens(tx.reader())?.is_empty() {
        return Ok(None);
    }
    let organization = super::resources::ensure_first_organization(tx, org_name)?;
    let org = organization.id;
    let existing = all_members(tx.reader())?
        .into_iter()
        .find(|m| m.organization_id == org && !m.is_removed() && m.role == Role::Owner);
    let owner = match existing {
        Some(owner) => owner,
        None => insert_member(tx, org, "owner", Role::Owner)?,
    };
    let new = NewToken {
        name: "first owner token".into(),
        kind: TokenKind::Personal,
        member_id: Some(owner.id),
        role: None,
        expires_at: None,
    };
    let token = insert_token(tx, org, &new, Some(owner.id), secret, "opsgraph")?;
    Ok(Some(FirstStart { organization, owner, token }))
}

/// A new organization, without members (`opsgraph org create`).
pub fn create_organization(tx: &mut Tx<'_>, name: &str) -> Result<Organization> {
    let id = OrganizationId(tx.next_id("organization")?);
    let org = Organization { id, name: name.to_owned(), created_at: now_millis() };
    tx.put(ORGANIZATIONS, id.0, &org)?;
    Ok(org)
}

/// A token made from the command line (`opsgraph token create`): personal
/// tokens act as the organization's first member with `role` (created,
/// named after the role, when there is none).
pub fn create_token_offline(
    tx: &mut Tx<'_>,
    org: OrganizationId,
    new: &NewToken,
    secret: &SecretParts,
) -> Result<Token> {
    if tx.reader().get::<Organization>(ORGANIZATIONS, org.0)?.is_none() {
        return Err(DomainError::not_found("Organization", org));
    }
    let member_id = match (new.kind, new.role) {
        (TokenKind::Personal, Some(role)) => {
            let existing = all_members(tx.reader())?
                .into_iter()
                .find(|m| m.organization_id == org && !m.is_removed() && m.role == role);
            let member = match existing {
                Some(m) => m,
                None => insert_member(tx, org, &role.as_str().to_ascii_lowercase(), role)?,
            };
            Some(member.id)
        }
        (TokenKind::Personal, None) => {
            return Err(DomainError::bad_input("role", "a personal token needs --role"));
        }
        _ => None,
    };
    let new = NewToken { role: None, ..new.clone() };
    insert_token(tx, org, &new, member_id, secret, "opsgraph")
}

/// Appends one audit record; returns it.
pub fn record_audit(tx: &mut Tx<'_>, mut entry: AuditEntry) -> Result<AuditEntry> {
    entry.id = tx.next_id("audit")?;
    entry.at = now_millis();
    tx.put_row(AUDIT_LOG, (entry.organization_id.0, entry.id), &entry)?;
    Ok(entry)
}

/// A page of the organization's audit log, newest first.
pub fn audit_page(
    r: Reader<'_>,
    org: OrganizationId,
    filter: &AuditFilter,
    args: &PageArgs,
) -> Result<Page<AuditEntry>> {
    paginate(args, true, |range, rev, visit| {
        r.scan_rows(AUDIT_LOG, org.0, range, rev, |id, e: AuditEntry| {
            if filter.matches(&e) { visit(id, e) } else { Ok(ControlFlow::Continue(())) }
        })
    })
}

/// Calls `f` with every audit record of `org` matching `filter`, oldest
/// first, until it breaks (the CSV export).
pub fn for_each_audit(
    r: Reader<'_>,
    org: OrganizationId,
    filter: &AuditFilter,
    mut f: impl FnMut(&AuditEntry) -> Result<ControlFlow<()>>,
) -> Result<()> {
    r.scan_rows(AUDIT_LOG, org.0, 0..=u64::MAX, false, |_, e: AuditEntry| {
        if filter.matches(&e) { f(&e) } else { Ok(ControlFlow::Continue(())) }
    })
}

/// The audit record of one mutation attempt, drafted before it acts and
/// written by the transaction that makes its effect ([`Audit::record`]),
/// or on its own when it is refused ([`Audit::refused`]).
#[derive(Debug, Clone)]
pub struct Audit {
    draft: AuditEntry,
    /// Set once a transaction wrote the success record: the resolver checks
    /// that no success goes unrecorded.
    recorded: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Audit {
    /// A draft for `action` by `actor` on `target`.
    pub fn new(by: &Principal, action: &str, target: Option<String>, request_id: &str) -> Self {
        let draft = AuditEntry {
            id: 0,
            organization_id: by.organization_id,
            at: 0,
            actor: by.actor(),
            action: action.to_owned(),
            target: target.map(|t| t.chars().take(200).collect()),
            outcome: crate::domain::access::SUCCEEDED.to_owned(),
            request_id: request_id.to_owned(),
        };
        Self { draft, recorded: Default::default() }
    }

    /// Records the success in `tx`, the transaction of the effect.
    pub fn record(&self, tx: &mut Tx<'_>) -> Result<()> {
        record_audit(tx, self.draft.clone())?;
        self.recorded.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Records the success in `tx` with the object it acted on (the one it
    /// created, for instance).
    pub fn record_on(&self, tx: &mut Tx<'_>, target: impl std::fmt::Display) -> Result<()> {
        let mut entry = self.draft.clone();
        entry.target = Some(target.to_string());
        record_audit(tx, entry)?;
        self.recorded.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Whether a success record was written.
    pub fn was_recorded(&self) -> bool {
        self.recorded.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The record of a refusal with `code`, to write on its own.
    pub fn refused(&self, code: crate::domain::ErrorCode) -> AuditEntry {
        AuditEntry { outcome: code.as_str().to_owned(), ..self.draft.clone() }
    }
}
