//! Who may do what: roles, tokens, the actions every root field is
//! classified under, and the audit record of every mutation attempt.
//!
//! The rules are pure: [`Grant::allows`] is the whole permission matrix
//! (the README shows it as a table), and token secrets are generated and
//! hashed here so that only a hash is ever stored.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DomainError, Member, Millis, OrganizationId};

/// A member's role in an organization, weakest first (the order is used:
/// a token capped at a role acts with the weaker of the cap and its
/// member's role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Reads everything of the organization; changes nothing but its own
    /// tokens.
    Viewer,
    /// A viewer who may also deploy, redeploy, restart, scale, stop, start,
    /// cancel and lift pins.
    Developer,
    /// A developer who may also create and change environments and
    /// services, delete services, run maintenance, manage members (not
    /// owners) and tokens, and read the audit log.
    Admin,
    /// Everything, including making and unmaking owners.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "VIEWER",
            Self::Developer => "DEVELOPER",
            Self::Admin => "ADMIN",
            Self::Owner => "OWNER",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.to_ascii_uppercase().as_str() {
            "VIEWER" => Ok(Self::Viewer),
            "DEVELOPER" => Ok(Self::Developer),
            "ADMIN" => Ok(Self::Admin),
            "OWNER" => Ok(Self::Owner),
            _ => Err(DomainError::bad_input(
                "role",
                format!("`{raw}` is not OWNER, ADMIN, DEVELOPER or VIEWER"),
            )),
        }
    }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenKind {
    /// Acts as its member (a person, or CI on a person's behalf), with the
    /// member's role, or a weaker one the token is capped at.
    Personal,
    /// Deployment machinery: may only append logs to (and report on) the
    /// operations of its organization.
    Worker,
    /// A monitoring agent: may only report probes.
    Monitoring,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "PERSONAL",
            Self::Worker => "WORKER",
            Self::Monitoring => "MONITORING",
        }
    }
}

/// What a caller was granted: the one input of the permission matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A member's personal token, with its effective role.
    Member(Role),
    Worker,
    Monitoring,
    /// opsgraph itself (self-healing, scaling, maintenance, recovery).
    Platform,
}

/// What a root field does, for the permission check. Every root query,
/// mutation and subscription resolver starts with one `guard` call naming
/// its action (see `graphql::guard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reads of the organization's objects (queries, subscriptions).
    Read,
    /// Reads of the audit log.
    ReadAudit,
    /// Queue and cancel operations on existing services, lift pins.
    Operate,
    /// Create and change environments and services, delete services, run
    /// maintenance campaigns.
    Configure,
    /// Add, change and remove members; create and revoke any token of
    /// the organization.
    ManageMembers,
    /// Create, list and revoke one's own personal tokens.
    OwnTokens,
    /// Append lines to an operation's log.
    AppendLogs,
    /// Report the result of a probe of an instance.
    ReportProbes,
    /// Claim and run the operations of a worker pool.
    Work,
}

impl Action {
    /// Every action, for tests and documentation.
    pub const ALL: [Action; 9] = [
        Self::Read,
        Self::ReadAudit,
        Self::Operate,
        Self::Configure,
        Self::ManageMembers,
        Self::OwnTokens,
        Self::AppendLogs,
        Self::ReportProbes,
        Self::Work,
    ];
}

impl Grant {
    /// The permission matrix.
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Self::Platform => true,
            Self::Worker => matches!(action, AppendLogs | Work),
            Self::Monitoring => matches!(action, ReportProbes),
            Self::Member(role) => match action {
                Read | OwnTokens => true,
                Operate | AppendLogs => role >= Role::Developer,
                Configure | ManageMembers | ReadAudit => role >= Role::Admin,
                ReportProbes | Work => false,
            },
        }
    }

    /// The role, for a member's token.
    pub fn role(self) -> Option<Role> {
        match self {
            Self::Member(role) => Some(role),
            _ => None,
        }
    }
}

/// Id of a member of an organization (`mem_<n>` to clients).
pub type MemberNumber = u64;

/// A member as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: MemberNumber,
    pub organization_id: OrganizationId,
    pub name: String,
    pub role: Role,
    pub created_at: Millis,
    /// Set when the member was removed; the row stays, so that history
    /// (operation authors, audit records) keeps its name.
    pub removed_at: Option<Millis>,
    /// Bumped by every change, so that an in-memory copy keeps the newest.
    pub revision: u64,
}

impl MemberRecord {
    /// The member as operations and audit records name it.
    pub fn member(&self) -> Member {
        Member { id: self.id, name: self.name.clone() }
    }

    pub fn is_removed(&self) -> bool {
        self.removed_at.is_some()
    }
}

/// A token as stored: never its secret, only the secret's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: u64,
    pub organization_id: OrganizationId,
    pub name: String,
    pub kind: TokenKind,
    /// The member a personal token acts as; `None` for other kinds.
    pub member_id: Option<MemberNumber>,
    /// A personal token acts with at most this role; `None`: its member's.
    pub role: Option<Role>,
    /// The start of the secret (`ogt_` and 8 characters): enough to tell
    /// tokens apart in a list, useless to act with.
    pub prefix: String,
    /// SHA-256 of the whole secret, in hex.
    pub hash: String,
    pub created_at: Millis,
    /// Who created it: a member's name, or `opsgraph` (first start, CLI).
    pub created_by: String,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl Token {
    /// Why the token cannot act at `now`, if it cannot.
    pub fn unusable(&self, now: Millis) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("the token was revoked")
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some("the token has expired")
        } else {
            None
        }
    }

    /// The grant of the token given its member's role (personal tokens).
    pub fn grant(&self, member_role: Option<Role>) -> Option<Grant> {
        match self.kind {
            TokenKind::Worker => Some(Grant::Worker),
            TokenKind::Monitoring => Some(Grant::Monitoring),
            TokenKind::Personal => {
                let role = member_role?;
                Some(Grant::Member(self.role.map_or(role, |cap| cap.min(role))))
            }
        }
    }
}

/// The secret of a token: `ogt_` and 40 hexadecimal characters (160
/// random bits).
pub const SECRET_PREFIX: &str = "ogt_";
/// Characters of a secret shown in lists (after [`SECRET_PREFIX`]).
const SHOWN: usize = 8;

/// A new secret from 20 random bytes, its listed prefix and its hash.
pub fn new_secret(random: [u8; 20]) -> (String, String, String) {
    let secret = format!("{SECRET_PREFIX}{}", hex::encode(random));
    let prefix = secret[..SECRET_PREFIX.len() + SHOWN].to_owned();
    let hash = hash_secret(&secret);
    (secret, prefix, hash)
}

/// SHA-256 of a secret, in hex: how a presented token is looked up.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A token name: 1 to 100 printable characters.
pub fn parse_token_name(raw: &str) -> Result<String, DomainError> {
    parse_label("name", raw)
}

/// A member name: 1 to 100 printable characters.
pub fn parse_member_name(raw: &str) -> Result<String, DomainError> {
    parse_label("name", raw)
}

fn parse_label(field: &'static str, raw: &str) -> Result<String, DomainError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 || trimmed.chars().any(char::is_control) {
        return Err(DomainError::bad_input(field, "must be 1 to 100 characters without control characters"));
    }
    Ok(trimmed.to_owned())
}

/// Who the caller of a request is: every read and write is scoped by its
/// organization, and every root field checks its grant.
#[derive(Debug, Clone)]
pub struct Principal {
    pub organization_id: OrganizationId,
    /// The member a personal token acts as. Worker and monitoring tokens
    /// act as no member: this is then the token's name with id 0.
    pub member: Member,
    pub grant: Grant,
    /// The token the request came with; `None` for the platform.
    pub token: Option<TokenRef>,
}

/// The token behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRef {
    pub id: u64,
    pub name: String,
}

impl Principal {
    /// The platform itself acting in `org` (self-healing, scaling,
    /// maintenance, start-up recovery): its operations have no author.
    pub fn platform(org: OrganizationId) -> Self {
        Self {
            organization_id: org,
            member: Member { id: 0, name: "platform".into() },
            grant: Grant::Platform,
            token: None,
        }
    }

    /// `FORBIDDEN` unless the grant allows `action`.
    pub fn check(&self, action: Action) -> Result<(), DomainError> {
        if self.grant.allows(action) {
            return Ok(());
        }
        let who = match self.grant {
            Grant::Member(role) => format!("the {} role", role.as_str()),
            Grant::Worker => "a WORKER token".to_owned(),
            Grant::Monitoring => "a MONITORING token".to_owned(),
            Grant::Platform => "the platform".to_owned(),
        };
        Err(DomainError::Forbidden(format!("{who} may not do this ({action:?})")))
    }

    /// Whether the caller acts as member `id` (through a personal token).
    pub fn is_member(&self, id: MemberNumber) -> bool {
        matches!(self.grant, Grant::Member(_)) && self.member.id == id
    }

    /// The actor as the audit log records it.
    pub fn actor(&self) -> Actor {
        Actor {
            member: matches!(self.grant, Grant::Member(_)).then(|| self.member.clone()),
            token: self.token.clone().map(|t| (t.id, t.name)),
        }
    }
}

/// Who attempted a mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The member, for a personal token.
    pub member: Option<Member>,
    /// The token's id and name.
    pub token: Option<(u64, String)>,
}

impl Actor {
    /// `ada (token ci)`, `token deployer`.
    pub fn display(&self) -> String {
        match (&self.member, &self.token) {
            (Some(m), Some((_, t))) => format!("{} (token {t})", m.name),
            (Some(m), None) => m.name.clone(),
            (None, Some((_, t))) => format!("token {t}"),
            (None, None) => "platform".to_owned(),
        }
    }
}

/// One mutation attempt as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3 … across organizations, in commit order.
    pub id: u64,
    pub organization_id: OrganizationId,
    pub at: Millis,
    pub actor: Actor,
    /// The mutation, as named in the schema (`deploy`).
    pub action: String,
    /// The global id of what the mutation acted on (or created), when it
    /// names one.
    pub target: Option<String>,
    /// `SUCCEEDED`, or the code of the error it was answered with.
    pub outcome: String,
    /// The request id (the `X-Request-Id` header, or the one generated).
    pub request_id: String,
}

/// The outcome of a mutation that did what it was asked.
pub const SUCCEEDED: &str = "SUCCEEDED";

impl AuditEntry {
    pub fn succeeded(&self) -> bool {
        self.outcome == SUCCEEDED
    }
}

/// Which audit records a reader wants; every given field must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub member_id: Option<MemberNumber>,
    pub token_id: Option<u64>,
    pub target: Option<String>,
    /// `Some(true)`: only successes; `Some(false)`: only refusals.
    pub succeeded: Option<bool>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

impl AuditFilter {
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.action.as_ref().is_none_or(|a| a == &e.action)
            && self.member_id.is_none_or(|m| e.actor.member.as_ref().is_some_and(|x| x.id == m))
            && self.token_id.is_none_or(|t| e.actor.token.as_ref().is_some_and(|x| x.0 == t))
            && self.target.as_ref().is_none_or(|t| e.target.as_ref() == Some(t))
            && self.succeeded.is_none_or(|s| e.succeeded() == s)
            && self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
    }
}

/// The CSV header of an audit export.
pub const AUDIT_CSV_HEADER: &str = "id,at,actor,member_id,token_id,action,target,outcome,request_id\n";

/// One audit record as a CSV row (RFC 4180 quoting).
pub fn audit_csv_row(out: &mut String, e: &AuditEntry) {
    use std::fmt::Write as _;
    let at = chrono::DateTime::from_timestamp_millis(e.at)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let member = e.actor.member.as_ref().map(|m| format!("mem_{}", m.id)).unwrap_or_default();
    let token = e.actor.token.as_ref().map(|t| format!("tok_{}", t.0)).unwrap_or_default();
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{}",
        e.id,
        at,
        csv_field(&e.actor.display()),
        member,
        token,
        csv_field(&e.action),
        csv_field(e.target.as_deref().unwrap_or("")),
        csv_field(&e.outcome),
        csv_field(&e.request_id)
    );
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_matrix_follows_the_roles() {
        use Action::*;
        let allowed = |grant: Grant| Action::ALL.into_iter().filter(|a| grant.allows(*a)).collect::<Vec<_>>();
        assert_eq!(allowed(Grant::Member(Role::Viewer)), [Read, OwnTokens]);
        assert_eq!(allowed(Grant::Member(Role::Developer)), [Read, Operate, OwnTokens, AppendLogs]);
        let admin = [Read, ReadAudit, Operate, Configure, ManageMembers, OwnTokens, AppendLogs];
        assert_eq!(allowed(Grant::Member(Role::Admin)), admin);
        assert_eq!(allowed(Grant::Member(Role::Owner)), admin);
        assert_eq!(allowed(Grant::Worker), [AppendLogs, Work]);
        assert_eq!(allowed(Grant::Monitoring), [ReportProbes]);
    }

    #[test]
    fn a_capped_personal_token_acts_with_the_weaker_role() {
        let (_, prefix, hash) = new_secret([7; 20]);
        let token = Token {
            id: 1,
            organization_id: OrganizationId(1),
            name: "ci".into(),
            kind: TokenKind::Personal,
            member_id: Some(1),
            role: Some(Role::Developer),
            prefix,
            hash,
            created_at: 0,
            created_by: "ada".into(),
            expires_at: Some(10),
            revoked_at: None,
        };
        assert_eq!(token.grant(Some(Role::Owner)), Some(Grant::Member(Role::Developer)));
        assert_eq!(token.grant(Some(Role::Viewer)), Some(Grant::Member(Role::Viewer)));
        assert_eq!(token.grant(None), None, "a removed member's token acts as nobody");
        assert_eq!(token.unusable(9), None);
        assert_eq!(token.unusable(10), Some("the token has expired"));
    }

    #[test]
    fn secrets_are_listed_by_prefix_and_stored_as_a_hash() {
        let (secret, prefix, hash) = new_secret([0xab; 20]);
        assert_eq!(secret.len(), 44);
        assert!(secret.starts_with(&prefix) && prefix.len() == 12, "{prefix}");
        assert_eq!(hash, hash_secret(&secret));
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&secret[4..]));
    }

    #[test]
    fn audit_rows_quote_what_needs_quoting() {
        let mut out = String::new();
        let entry = AuditEntry {
            id: 3,
            organization_id: OrganizationId(1),
            at: 0,
            actor: Actor {
                member: Some(Member { id: 2, name: "Ada, L.".into() }),
                token: Some((5, "ci".into())),
            },
            action: "deploy".into(),
            target: Some("svc_1".into()),
            outcome: "FORBIDDEN".into(),
            request_id: "r1".into(),
        };
        audit_csv_row(&mut out, &entry);
        assert_eq!(
            out,
            "3,1970-01-01T00:00:00.000Z,\"Ada, L. (token ci)\",mem_2,tok_5,deploy,svc_1,FORBIDDEN,r1\n"
        );
    }
}
