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

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Data, ErrorExtensionValues, ErrorExtensions, Executor, Request, Response, ServerError};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};

use super::AppSchema;
use super::limits::{self, DocumentLimits};
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

/// The id of one request (or one WebSocket subscription), set by the
/// transport: it is in every error's `extensions.requestId`, in the
/// `x-request-id` header, and in the server's log lines for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub Arc<str>);

impl RequestId {
    /// A new id: unique within this process, and unlikely to repeat across
    /// restarts (it starts from the clock).
    pub fn next() -> Self {
        static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
        let next = NEXT.get_or_init(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            std::sync::atomic::AtomicU64::new((now.as_nanos() as u64) << 8)
        });
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(format!("req_{n:016x}").into())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The schema as the transports run it.
///
/// Before anything runs, the document is held to the [`DocumentLimits`]
/// (`LIMIT_EXCEEDED`); a query or mutation that runs past the time limit
/// is answered with `LIMIT_EXCEEDED` (a mutation's effect may still land,
/// as with any lost reply: retry with the same idempotency key). A
/// panicking resolver is answered with an internal error, never with the
/// panic's message.
///
/// Every error of the response that has no code yet gets
/// `BAD_USER_INPUT`: resolver errors carry their code already (they go
/// through [`gql`]); what is left are the errors async-graphql raises
/// before or while reading the request: syntax errors, validation errors
/// (unknown field, wrong argument type, Int out of range in a literal) and
/// the coercion of variables and arguments. All of them are the client's
/// to fix. With a [`RequestId`] in the request's data, every error also
/// gets `extensions.requestId` and a log line with it.
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
pub struct CodedSchema {
    schema: AppSchema,
    limits: Arc<(DocumentLimits, Duration)>,
}

impl CodedSchema {
    /// `schema` held to `document` limits, with `execution_time` per query
    /// or mutation.
    pub fn new(schema: AppSchema, document: DocumentLimits, execution_time: Duration) -> Self {
        Self { schema, limits: Arc::new((document, execution_time)) }
    }

    /// The checks that run before anything else: the document parses and
    /// keeps the limits. The parsed document stays in the request. Returns
    /// the refusal, if any.
    fn refusal(&self, request: &mut Request) -> Option<Response> {
        // The document borrows the request: the variables step aside.
        let variables = std::mem::take(&mut request.variables);
        let checked = match request.parsed_query() {
            Ok(document) => limits::check(document, &variables, &self.limits.0),
            Err(e) => return Some(Response::from_errors(vec![e])),
        };
        request.variables = variables;
        let e = checked.err()?;
        Some(Response::from_errors(vec![server_error(e.to_string(), e.code())]))
    }
}

impl Executor for CodedSchema {
    fn execute(&self, mut request: Request) -> impl Future<Output = Response> + Send {
        let schema = self.schema.clone();
        let refusal = self.refusal(&mut request);
        let time_limit = self.limits.1;
        let id = request_id(&request);
        async move {
            let response = match refusal {
                Some(refused) => refused,
                None => within(time_limit, schema.execute(request)).await,
            };
            finish(response, id.as_ref())
        }
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let id = request_id(&request);
        if let Some(refused) = self.refusal(&mut request) {
            return futures_util::stream::once(async move { finish(refused, id.as_ref()) }).boxed();
        }
        self.schema
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(move |response| finish(response, id.as_ref()))
            .boxed()
    }
}

/// What `run` answers within `limit`: its response, a `LIMIT_EXCEEDED`
/// error past the limit, or an internal error if it panics.
async fn within(limit: Duration, run: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, AssertUnwindSafe(run).catch_unwind()).await {
        Ok(Ok(response)) => response,
        Ok(Err(_panic)) => {
            // The panic's message went to the log through the panic hook.
            tracing::error!("a resolver panicked");
            Response::from_errors(vec![server_error(INTERNAL_MESSAGE, ErrorCode::InternalServerError)])
        }
        Err(_) => {
            let limit = limit.as_millis();
            let message = format!("the request ran longer than the execution time limit of {limit} ms");
            Response::from_errors(vec![server_error(message, ErrorCode::LimitExceeded)])
        }
    }
}

fn request_id(request: &Request) -> Option<RequestId> {
    request
        .data
        .get(&std::any::TypeId::of::<RequestId>())
        .and_then(|d| d.downcast_ref::<RequestId>())
        .cloned()
}

/// `response` with default codes, and stamped with `id` when there is one.
fn finish(response: Response, id: Option<&RequestId>) -> Response {
    let mut response = with_default_codes(response);
    if let Some(id) = id {
        stamp(&mut response, id);
    }
    response
}

/// Puts `id` in every error of `response` and logs each error with it.
pub fn stamp(response: &mut Response, id: &RequestId) {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(ErrorExtensionValues::default);
        let code = extensions.get("code").map(ToString::to_string).unwrap_or_default();
        extensions.set("requestId", &*id.0);
        tracing::info!(request_id = %id, %code, message = %error.message, "request answered with an error");
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
            (DomainError::LimitExceeded("depth".into()), "LIMIT_EXCEEDED"),
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

    fn first_error(response: &Response) -> (String, Option<Value>) {
        let error = &response.errors[0];
        (error.message.clone(), server_code(error))
    }

    #[tokio::test]
    async fn a_request_gets_its_time_and_no_more() {
        let limit = Duration::from_millis(20);
        let done = within(limit, async { Response::new(Value::from("done")) }).await;
        assert_eq!(done.data, Value::from("done"));
        let stuck = within(limit, std::future::pending()).await;
        assert_eq!(
            first_error(&stuck),
            (
                "the request ran longer than the execution time limit of 20 ms".to_owned(),
                Some(Value::from("LIMIT_EXCEEDED"))
            )
        );
    }

    #[tokio::test]
    async fn a_panicking_resolver_is_answered_with_an_internal_error_only() {
        let panicked = within(Duration::from_secs(5), async {
            panic!("storage: /var/lib/opsgraph.redb unreadable");
        })
        .await;
        assert_eq!(
            first_error(&panicked),
            (INTERNAL_MESSAGE.to_owned(), Some(Value::from("INTERNAL_SERVER_ERROR")))
        );
    }

    #[test]
    fn a_server_error_carries_its_code() {
        let error = server_error("mutations must be sent with POST", ErrorCode::BadUserInput);
        assert_eq!(server_code(&error), Some(Value::from("BAD_USER_INPUT")));
        assert!(error.locations.is_empty() && error.path.is_empty());
    }
}
