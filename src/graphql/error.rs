//! The one conversion point from [`DomainError`] to GraphQL errors.
//!
//! async-graphql turns any `Display` value into a client-visible error with
//! `?`, which would send internal details to clients and leave out
//! `extensions.code`. So a `Result<_, DomainError>` is never returned with a
//! bare `?` in this module tree: it goes through [`gql`] (or [`GqlResult::gql`]).
//!
//! The errors async-graphql raises itself (syntax, validation, input
//! coercion) carry no code; [`CodedSchema`], which every transport runs
//! requests through, gives them `BAD_USER_INPUT`.

use std::sync::Arc;

use std::future::Future;

use async_graphql::{Data, ErrorExtensionValues, ErrorExtensions, Executor, Request, Response, ServerError};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::AppSchema;
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

/// A response-level error (no path, no location) with `message` and
/// `extensions.code`, for the transports to answer with.
pub fn server_error(message: impl Into<String>, code: ErrorCode) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.extensions = Some(with_code(code));
    error
}

fn with_code(code: ErrorCode) -> ErrorExtensionValues {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code.as_str());
    extensions
}

/// The schema as the transports run it: gives `extensions.code = "BAD_USER_INPUT"` to
/// every error of a response that has no code yet.
///
/// Resolver errors carry their code already (they go through [`gql`]);
/// what is left are the errors async-graphql raises before or while
/// reading the request: syntax errors, validation errors (unknown field,
/// wrong argument type, Int out of range in a literal) and the coercion of
/// variables and arguments. All of them are the client's to fix.
///
/// It wraps both entry points of the schema, so it covers every transport:
/// `execute` (queries and mutations over HTTP) and `execute_stream`
/// (everything sent over WebSocket, whose parse and validation errors are
/// the first response of the stream).
///
/// It is not an async-graphql extension on purpose: registering any
/// extension makes every field resolve through a chain of boxed hooks,
/// which costs a fifth of the read throughput (`cargo bench`). The
/// transports call [`CodedSchema`] instead, once per response.
#[derive(Clone)]
pub struct CodedSchema(pub AppSchema);

impl Executor for CodedSchema {
    fn execute(&self, request: Request) -> impl Future<Output = Response> + Send {
        let schema = self.0.clone();
        async move { with_default_codes(schema.execute(request).await) }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        self.0
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(with_default_codes)
            .boxed()
    }
}

/// `response` with `BAD_USER_INPUT` on each error that has no code.
pub fn with_default_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(ErrorExtensionValues::default);
        if extensions.get("code").is_none() {
            extensions.set("code", ErrorCode::BadUserInput.as_str());
        }
    }
    response
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
            (DomainError::Unauthenticated("x".into()), "UNAUTHENTICATED"),
            (DomainError::Forbidden("viewer".into()), "FORBIDDEN"),
            (DomainError::RateLimited, "RATE_LIMITED"),
            (DomainError::IdempotencyKeyReused("k".into()), "IDEMPOTENCY_KEY_REUSED"),
            (DomainError::CursorExpired("x".into()), "CURSOR_EXPIRED"),
            (DomainError::SlowConsumer("x".into()), "SLOW_CONSUMER"),
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

    fn server_code(error: &ServerError) -> Option<Value> {
        error.extensions.as_ref().and_then(|ext| ext.get("code")).cloned()
    }

    #[test]
    fn errors_without_a_code_get_bad_user_input_and_coded_ones_keep_theirs() {
        let coded = gql(DomainError::Conflict("taken".into())).into_server_error(Default::default());
        let bare = ServerError::new("Unknown field \"nope\"", None);
        let response = with_default_codes(Response::from_errors(vec![coded, bare]));
        let codes: Vec<_> = response.errors.iter().map(server_code).collect();
        assert_eq!(codes, [Some(Value::from("CONFLICT")), Some(Value::from("BAD_USER_INPUT"))]);
    }

    #[test]
    fn a_server_error_carries_its_code() {
        let error = server_error("mutations must be sent with POST", ErrorCode::BadUserInput);
        assert_eq!(server_code(&error), Some(Value::from("BAD_USER_INPUT")));
        assert!(error.locations.is_empty() && error.path.is_empty());
    }
}
