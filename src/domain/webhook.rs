//! GitHub push events: the shared secret, the signature check and what a
//! push asks for.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::resource::parse_commit;
use super::{DomainError, Millis, OperationId, Service};

/// The secret a service's GitHub webhook signs its deliveries with. It is
/// stored (an HMAC key cannot be hashed away) but never shown: `Debug`
/// prints a placeholder and no API returns it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 256;

    /// Checks a secret a client gave: 8 to 256 characters, no control
    /// characters.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) || raw.chars().any(char::is_control) {
            return Err(DomainError::bad_input(
                "webhookSecret",
                format!(
                    "must be {} to {} characters without control characters",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a delivery's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    NoSecret,
    Missing,
    Malformed,
    Mismatch,
}

impl SignatureError {
    pub fn message(&self) -> &'static str {
        match self {
            Self::NoSecret => "the service has no webhook secret: set one with updateService",
            Self::Missing => "missing X-Hub-Signature-256 header",
            Self::Malformed => "X-Hub-Signature-256 is not `sha256=` and 64 hex digits",
            Self::Mismatch => "X-Hub-Signature-256 does not match the body signed with the service's secret",
        }
    }
}

/// Checks `header` (`sha256=<hex>`) against the HMAC-SHA256 of `body`
/// under `secret`, in constant time.
pub fn verify_signature(
    secret: Option<&WebhookSecret>,
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let secret = secret.ok_or(SignatureError::NoSecret)?;
    let header = header.ok_or(SignatureError::Missing)?;
    let digest = header
        .strip_prefix("sha256=")
        .and_then(|hex| hex::decode(hex).ok())
        .filter(|d| d.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    let mut mac = mac(secret);
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&digest).map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value GitHub sends for `body` (for tests and
/// clients that sign their own deliveries).
pub fn sign(secret: &WebhookSecret, body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(secret: &WebhookSecret) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    Hmac::<Sha256>::new_from_slice(secret.0.as_bytes()).expect("HMAC accepts any key length")
}

/// The fields of a GitHub push event that matter here.
#[derive(Debug, Clone, Deserialize)]
pub struct PushEvent {
    /// `refs/heads/<branch>`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The head commit after the push; all zeros when the branch was deleted.
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    pub pusher: Pusher,
}

/// Who pushed.
#[derive(Debug, Clone, Deserialize)]
pub struct Pusher {
    pub name: String,
}

/// Longest pusher name kept.
const MAX_PUSHER: usize = 200;

impl PushEvent {
    /// Parses a delivery's body; `BAD_USER_INPUT` when it is not a push.
    pub fn parse(body: &[u8]) -> Result<Self, DomainError> {
        let event: Self = serde_json::from_slice(body)
            .map_err(|e| DomainError::bad_input("body", format!("not a GitHub push event: {e}")))?;
        if event.pusher.name.is_empty() || event.pusher.name.chars().count() > MAX_PUSHER {
            return Err(DomainError::bad_input(
                "pusher.name",
                format!("must be 1 to {MAX_PUSHER} characters"),
            ));
        }
        Ok(event)
    }

    /// What the push asks of `svc`. `BAD_USER_INPUT` when the head commit
    /// is not a commit reference.
    pub fn decide(&self, svc: &Service) -> Result<PushDecision, DomainError> {
        if svc.is_deleted() {
            return Ok(PushDecision::Ignore("the service has been deleted".to_owned()));
        }
        let wanted = format!("refs/heads/{}", svc.branch);
        if self.git_ref != wanted {
            return Ok(PushDecision::Ignore(format!(
                "push to {} ignored: the service deploys from branch {}",
                self.git_ref, svc.branch
            )));
        }
        if self.deleted || self.after.bytes().all(|b| b == b'0') {
            return Ok(PushDecision::Ignore(format!("branch {} was deleted: nothing to deploy", svc.branch)));
        }
        let commit = parse_commit(&self.after)?;
        Ok(match super::pin::push_refusal(svc, &commit) {
            Some(reason) => PushDecision::Skip(reason),
            None => PushDecision::Deploy(commit),
        })
    }
}

/// What a push asks of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushDecision {
    /// Deploy this commit.
    Deploy(String),
    /// Nothing to do, for this reason.
    Ignore(String),
    /// The commit is pinned: not deployed, for this reason.
    Skip(String),
}

/// What became of one delivery to `/hooks/github/{serviceId}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryOutcome {
    /// A `DEPLOY` was queued.
    Deployed,
    /// Accepted, and nothing to do (another branch, another event, a
    /// deleted branch).
    Ignored,
    /// A push of a pinned commit.
    Skipped,
    /// The signature was missing or wrong: refused with 401.
    Refused,
}

/// One delivery as recorded on its service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub seq: u64,
    pub at: Millis,
    /// `X-GitHub-Delivery`, when sent.
    pub delivery_id: Option<String>,
    /// `X-GitHub-Event`, when sent.
    pub event: Option<String>,
    pub outcome: DeliveryOutcome,
    /// Why it was ignored, skipped or refused; what it queued otherwise.
    pub message: String,
    pub operation_id: Option<OperationId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::service;

    fn secret() -> WebhookSecret {
        WebhookSecret::parse("It's a Secret to Everybody").unwrap()
    }

    #[test]
    fn the_signature_of_githubs_documentation_example_verifies() {
        // From GitHub's "Validating webhook deliveries" page.
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(&secret(), b"Hello, World!"), header);
        assert_eq!(verify_signature(Some(&secret()), b"Hello, World!", Some(header)), Ok(()));
    }

    #[test]
    fn missing_malformed_and_wrong_signatures_are_refused() {
        let body = b"{}";
        let good = sign(&secret(), body);
        let check = |h: Option<&str>| verify_signature(Some(&secret()), body, h);
        assert_eq!(check(None), Err(SignatureError::Missing));
        assert_eq!(check(Some("sha1=abc")), Err(SignatureError::Malformed));
        assert_eq!(check(Some("sha256=zz")), Err(SignatureError::Malformed));
        assert_eq!(verify_signature(Some(&secret()), b"{ }", Some(&good)), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(None, body, Some(&good)), Err(SignatureError::NoSecret));
        assert!(!format!("{:?}", secret()).contains("Secret to"));
    }

    fn push(git_ref: &str, after: &str) -> PushEvent {
        let body = serde_json::json!({ "ref": git_ref, "after": after, "pusher": { "name": "octocat" } });
        PushEvent::parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_push_to_the_services_branch_deploys_its_head_and_others_are_ignored() {
        let svc = service(None);
        let decide = |r: &str, after: &str| push(r, after).decide(&svc).unwrap();
        assert_eq!(decide("refs/heads/main", "abc123"), PushDecision::Deploy("abc123".to_owned()));
        let PushDecision::Ignore(other) = decide("refs/heads/dev", "abc123") else { panic!("not ignored") };
        assert!(other.contains("deploys from branch main"), "{other}");
        let PushDecision::Ignore(deleted) = decide("refs/heads/main", &"0".repeat(40)) else {
            panic!("not ignored")
        };
        assert!(deleted.contains("deleted"), "{deleted}");
        assert!(PushEvent::parse(b"{\"zen\": \"hi\"}").is_err());
    }
}
