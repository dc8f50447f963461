//! The one error type of the domain, with a stable machine code per variant.

use std::fmt;

/// Stable machine-readable codes, sent to clients as `extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    BadUserInput,
    Conflict,
    InvalidTransition,
    Unauthenticated,
    Forbidden,
    RateLimited,
    IdempotencyKeyReused,
    CursorExpired,
    SlowConsumer,
    /// A request beyond one of the server's limits (size, depth,
    /// complexity, time, connections…); the message names the limit.
    LimitExceeded,
    InternalServerError,
}

impl ErrorCode {
    /// The code as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::InvalidTransition => "INVALID_TRANSITION",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::RateLimited => "RATE_LIMITED",
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Self::CursorExpired => "CURSOR_EXPIRED",
            Self::SlowConsumer => "SLOW_CONSUMER",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in a request, as the caller should learn it.
///
/// `Internal` carries the full detail for the server log; clients only ever
/// see a generic message for it (see `graphql::error`).
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("invalid {field}: {reason}")]
    BadUserInput { field: &'static str, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidTransition(String),
    /// No token, or one that cannot act (unknown, revoked, expired).
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many requests")]
    RateLimited,
    #[error("idempotency key `{0}` was already used for a different request")]
    IdempotencyKeyReused(String),
    /// The items after a client's cursor were deleted by retention.
    #[error("cursor expired: {0}")]
    CursorExpired(String),
    /// A subscriber fell too far behind its feed; it resumes from its
    /// cursor with a new subscription.
    #[error("subscriber too slow: {0}")]
    SlowConsumer(String),
    /// A request beyond one of the server's limits; the message names it.
    #[error("{0}")]
    LimitExceeded(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::BadUserInput { .. } => ErrorCode::BadUserInput,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::InvalidTransition(_) => ErrorCode::InvalidTransition,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::RateLimited => ErrorCode::RateLimited,
            Self::IdempotencyKeyReused(_) => ErrorCode::IdempotencyKeyReused,
            Self::CursorExpired(_) => ErrorCode::CursorExpired,
            Self::SlowConsumer(_) => ErrorCode::SlowConsumer,
            Self::LimitExceeded(_) => ErrorCode::LimitExceeded,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound { kind, id: id.to_string() }
    }

    pub fn bad_input(field: &'static str, reason: impl Into<String>) -> Self {
        Self::BadUserInput { field, reason: reason.into() }
    }

    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_stable_code() {
        let cases = [
            (DomainError::not_found("Service", "svc_1"), "NOT_FOUND"),
            (DomainError::bad_input("name", "empty"), "BAD_USER_INPUT"),
            (DomainError::Conflict("x".into()), "CONFLICT"),
            (DomainError::InvalidTransition("x".into()), "INVALID_TRANSITION"),
            (DomainError::Unauthenticated("x".into()), "UNAUTHENTICATED"),
            (DomainError::Forbidden("x".into()), "FORBIDDEN"),
            (DomainError::RateLimited, "RATE_LIMITED"),
            (DomainError::IdempotencyKeyReused("k".into()), "IDEMPOTENCY_KEY_REUSED"),
            (DomainError::CursorExpired("x".into()), "CURSOR_EXPIRED"),
            (DomainError::SlowConsumer("x".into()), "SLOW_CONSUMER"),
            (DomainError::LimitExceeded("depth".into()), "LIMIT_EXCEEDED"),
            (DomainError::internal("disk"), "INTERNAL_SERVER_ERROR"),
        ];
        for (error, code) in cases {
            assert_eq!(error.code().as_str(), code, "{error}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(DomainError::not_found("Service", "svc_9").to_string(), "Service svc_9 not found");
        assert_eq!(
            DomainError::bad_input("instances", "must be at least 0").to_string(),
            "invalid instances: must be at least 0"
        );
    }
}
