//! Authentication: which token a request carries and who it acts as.
//!
//! The [`Registry`] keeps every token (by the hash of its secret) and every
//! member in memory, loaded once at start and changed by the mutations
//! that change them right after their commit, before they answer. So
//! authenticating a request costs a hash and a map lookup, and a revoked
//! token is refused from the moment its revocation is acknowledged. Each
//! token has a cancellation token that fires when it is revoked (or its
//! member removed): open WebSocket connections of the token select on it
//! and close.
//!
//! Secrets never reach a log: only their SHA-256 is kept, and errors name
//! tokens by id and prefix.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

use crate::domain::access::{MemberRecord, Token, TokenRef, hash_secret};
use crate::domain::{DomainError, Member, Millis, Principal, Role, TokenKind};
use crate::store::{Store, auth};

/// The tokens and members the server authenticates against.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Token id by the hash of its secret.
    by_hash: HashMap<String, u64>,
    tokens: HashMap<u64, Entry>,
    members: HashMap<u64, MemberRecord>,
}

struct Entry {
    token: Token,
    /// Cancelled when the token is revoked or its member removed.
    ended: CancellationToken,
}

/// A request's caller and how long its token lasts.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    /// Fires when the token is revoked (or its member removed).
    pub revoked: CancellationToken,
    /// When the token expires, if it does.
    pub expires_at: Option<Millis>,
}

impl Registry {
    /// Loads every token and member from `store`.
    pub async fn load(store: &Store) -> Result<Arc<Self>, DomainError> {
        let (tokens, members) = store.read(|r| Ok((auth::all_tokens(r)?, auth::all_members(r)?))).await?;
        let registry = Arc::new(Self::default());
        for member in &members {
            registry.member_changed(member);
        }
        for token in &tokens {
            registry.token_changed(token);
        }
        Ok(registry)
    }

    /// Who an `Authorization` value (`Bearer <secret>`) acts as at `now`.
    /// `UNAUTHENTICATED` without one, or for a token that is unknown,
    /// revoked, expired, or whose member was removed.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        now: Millis,
    ) -> Result<Authenticated, DomainError> {
        let unauthenticated = |why: &str| DomainError::Unauthenticated(why.to_owned());
        let value = authorization.ok_or_else(|| unauthenticated("send `Authorization: Bearer <token>`"))?;
        let secret = bearer(value)
            .ok_or_else(|| unauthenticated("the Authorization value is not `Bearer <token>`"))?;
        let hash = hash_secret(secret);
        let inner = self.inner.read().expect("registry lock");
        let entry = inner
            .by_hash
            .get(&hash)
            .and_then(|id| inner.tokens.get(id))
            .ok_or_else(|| unauthenticated("unknown token"))?;
        let token = &entry.token;
        if let Some(why) = token.unusable(now) {
            return Err(unauthenticated(why));
        }
        let member = token.member_id.and_then(|id| inner.members.get(&id)).filter(|m| !m.is_removed());
        let grant = token
            .grant(member.map(|m| m.role))
            .ok_or_else(|| unauthenticated("the token's member was removed"))?;
        let member = match (token.kind, member) {
            (TokenKind::Personal, Some(m)) => m.member(),
            _ => Member { id: 0, name: token.name.clone() },
        };
        let principal = Principal {
            organization_id: token.organization_id,
            member,
            grant,
            token: Some(TokenRef { id: token.id, name: token.name.clone() }),
        };
        Ok(Authenticated { principal, revoked: entry.ended.clone(), expires_at: token.expires_at })
    }

    /// Takes in a created or changed token; a revoked one ends its
    /// connections.
    pub fn token_changed(&self, token: &Token) {
        let mut inner = self.inner.write().expect("registry lock");
        inner.by_hash.insert(token.hash.clone(), token.id);
        let entry = inner
            .tokens
            .entry(token.id)
            .or_insert_with(|| Entry { token: token.clone(), ended: CancellationToken::new() });
        entry.token = token.clone();
        if token.revoked_at.is_some() {
            entry.ended.cancel();
        }
    }

    /// Takes in a created or changed member (an older revision than the one
    /// held is ignored: two changes may be taken in out of order). A removed
    /// member's tokens end their connections.
    pub fn member_changed(&self, member: &MemberRecord) {
        let mut inner = self.inner.write().expect("registry lock");
        if inner.members.get(&member.id).is_some_and(|held| held.revision > member.revision) {
            return;
        }
        inner.members.insert(member.id, member.clone());
        if member.is_removed() {
            for entry in inner.tokens.values().filter(|e| e.token.member_id == Some(member.id)) {
                entry.ended.cancel();
            }
        }
    }

    /// The current role of member `id`; `None` once removed (or unknown).
    pub fn member_role(&self, id: u64) -> Option<Role> {
        let inner = self.inner.read().expect("registry lock");
        inner.members.get(&id).filter(|m| !m.is_removed()).map(|m| m.role)
    }
}

/// The secret of `Bearer <secret>` (the scheme in any case).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, secret) = value.trim().split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

/// 20 random bytes from the operating system, for a token secret.
pub fn random_secret() -> Result<[u8; 20], DomainError> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)
        .map_err(|e| DomainError::internal(format!("no randomness for a token: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::new_secret;
    use crate::domain::{Grant, OrganizationId};

    fn token(id: u64, secret_seed: u8, kind: TokenKind, member_id: Option<u64>) -> (String, Token) {
        let (secret, prefix, hash) = new_secret([secret_seed; 20]);
        let token = Token {
            id,
            organization_id: OrganizationId(1),
            name: format!("t{id}"),
            kind,
            member_id,
            role: None,
            prefix,
            hash,
            created_at: 0,
            created_by: "test".into(),
            expires_at: Some(1_000),
            revoked_at: None,
        };
        (secret, token)
    }

    fn member(id: u64, role: Role, revision: u64) -> MemberRecord {
        MemberRecord {
            id,
            organization_id: OrganizationId(1),
            name: format!("m{id}"),
            role,
            created_at: 0,
            removed_at: None,
            revision,
        }
    }

    #[test]
    fn a_bearer_token_acts_as_its_member_until_revoked_or_expired() {
        let registry = Registry::default();
        let (secret, mut t) = token(1, 1, TokenKind::Personal, Some(7));
        registry.member_changed(&member(7, Role::Developer, 1));
        registry.token_changed(&t);
        let header = format!("bearer {secret}");
        let auth = registry.authenticate(Some(&header), 10).unwrap();
        assert_eq!(auth.principal.grant, Grant::Member(Role::Developer));
        assert_eq!(auth.principal.member.name, "m7");
        let code = |r: Result<Authenticated, DomainError>| r.unwrap_err().code().as_str();
        assert_eq!(code(registry.authenticate(Some(&header), 1_000)), "UNAUTHENTICATED");
        assert_eq!(code(registry.authenticate(None, 10)), "UNAUTHENTICATED");
        assert_eq!(code(registry.authenticate(Some("Bearer ogt_nope"), 10)), "UNAUTHENTICATED");
        assert_eq!(code(registry.authenticate(Some(&secret), 10)), "UNAUTHENTICATED");

        t.revoked_at = Some(5);
        registry.token_changed(&t);
        assert!(auth.revoked.is_cancelled(), "open connections of the token end");
        assert_eq!(code(registry.authenticate(Some(&header), 10)), "UNAUTHENTICATED");
    }

    #[test]
    fn removing_a_member_ends_its_tokens_and_old_revisions_are_ignored() {
        let registry = Registry::default();
        let (secret, t) = token(1, 2, TokenKind::Personal, Some(3));
        registry.member_changed(&member(3, Role::Admin, 2));
        registry.member_changed(&member(3, Role::Viewer, 1));
        registry.token_changed(&t);
        let header = format!("Bearer {secret}");
        let auth = registry.authenticate(Some(&header), 0).unwrap();
        assert_eq!(auth.principal.grant, Grant::Member(Role::Admin));
        let mut removed = member(3, Role::Admin, 3);
        removed.removed_at = Some(1);
        registry.member_changed(&removed);
        assert!(auth.revoked.is_cancelled());
        assert!(registry.authenticate(Some(&header), 0).is_err());
        assert_eq!(registry.member_role(3), None);
    }

    #[test]
    fn worker_tokens_act_as_no_member() {
        let registry = Registry::default();
        let (secret, t) = token(4, 3, TokenKind::Worker, None);
        registry.token_changed(&t);
        let auth = registry.authenticate(Some(&format!("Bearer {secret}")), 0).unwrap();
        assert_eq!(auth.principal.grant, Grant::Worker);
        assert_eq!(auth.principal.member.id, 0);
        assert_eq!(auth.principal.actor().member, None);
    }
}
