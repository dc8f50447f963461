//! The one conversion point from [`DomainError`] to GraphQL errors.
//!
//! async-graphql turns any `Display` value into a client-visible error with
//! `?`, which would send internal details to clients and leave out
//! `extensions.code`. So a `Result<_, DomainError>` is never returned with a
//! bare `?` in this module tree: it goes through [`gql`] (or [`GqlResult::gql`]).

use async_graphql::ErrorExtensions;

use crate::domain::{DomainError, ErrorCode};

/// What clients read instead of the detail of an internal error.
pub const INTERNAL_MESSAGE: &str = "internal error";

/// The GraphQL error for `e`, with `extensions.code` set to its stable
/// code. An internal error is logged in full and answered with a generic
/// message.
pub fn gql(e: DomainError) -> async_graphql::Error {
    let code = e.code();
    let message = match &e {
        DomainError::Internal(detail) => {
            tracing::error!(%detail, "internal error while answering a GraphQL request");
            INTERNAL_MESSAGE.to_owned()
        }
        other => other.to_string(),
    };
    coded(message, code)
}

/// A GraphQL error with `message` and `extensions.code`.
fn coded(message: String, code: ErrorCode) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code.as_str()))
}

/// `.gql()` on a domain result: the conversion of [`gql`] in method form.
pub trait GqlResult<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResult<T> for Result<T, DomainError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(gql)
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::Value;

    use super::*;

    fn code_of(error: &async_graphql::Error) -> Option<Value> {
        error.extensions.as_ref().and_then(|ext| ext.get("code")).cloned()
    }

    #[test]
    fn every_code_is_set_in_the_extensions() {
        let cases = [
            (DomainError::not_found("Service", "svc_1"), "NOT_FOUND"),
            (DomainError::bad_input("name", "empty"), "BAD_USER_INPUT"),
            (DomainError::Conflict("taken".into()), "CONFLICT"),
            (DomainError::InvalidTransition("final".into()), "INVALID_TRANSITION"),
            (DomainError::Unauthenticated, "UNAUTHENTICATED"),
            (DomainError::Forbidden("viewer".into()), "FORBIDDEN"),
            (DomainError::RateLimited, "RATE_LIMITED"),
            (DomainError::IdempotencyKeyReused("k".into()), "IDEMPOTENCY_KEY_REUSED"),
            (DomainError::internal("disk"), "INTERNAL_SERVER_ERROR"),
        ];
        for (domain, code) in cases {
            let error = gql(domain);
            assert_eq!(code_of(&error), Some(Value::from(code)), "{error:?}");
        }
    }

    #[test]
    fn user_errors_keep_their_message() {
        let error = gql(DomainError::not_found("Service", "svc_9"));
        assert_eq!(error.message, "Service svc_9 not found");
    }

    #[test]
    fn internal_details_do_not_reach_the_client() {
        let error = gql(DomainError::internal("storage: /var/lib/opsgraph.redb is corrupted"));
        assert_eq!(error.message, INTERNAL_MESSAGE);
        let json = serde_json::to_string(&error).unwrap();
        assert!(!json.contains("corrupted"), "{json}");
        assert!(!json.contains("opsgraph.redb"), "{json}");
    }

    #[test]
    fn the_method_form_converts_the_same_way() {
        let result: Result<(), DomainError> = Err(DomainError::RateLimited);
        let error = result.gql().unwrap_err();
        assert_eq!(code_of(&error), Some(Value::from("RATE_LIMITED")));
    }
}
