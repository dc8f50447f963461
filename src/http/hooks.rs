//! `POST /hooks/github/{serviceId}`: GitHub push events.
//!
//! The body is checked against `X-Hub-Signature-256` with the service's
//! webhook secret before anything else is read from it; a missing or wrong
//! signature is answered 401 and recorded on the service. A push to the
//! service's branch queues a `DEPLOY` (201); anything else is accepted with
//! nothing to do (202) and the reason, also recorded.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};

use super::{AppState, coded_response, error_response};
use crate::domain::webhook::{Delivery, DeliveryOutcome, PushEvent, verify_signature};
use crate::domain::{ErrorCode, ServiceId};
use crate::store::hooks::{self, DeliveryMeta};
use crate::store::resources;

/// GitHub's own cap on a delivery's payload.
pub const MAX_BODY: usize = 25 << 20;

pub async fn github(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let svc = match id.parse::<ServiceId>() {
        Ok(id) => id,
        Err(e) => return error_response(e),
    };
    let service = match state.store.read(move |r| resources::service_by_id(r, svc)).await {
        Ok(s) => s,
        Err(e) => return error_response(e),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let meta = DeliveryMeta { delivery_id: header("x-github-delivery"), event: header("x-github-event") };
    let signature = header("x-hub-signature-256");
    if let Err(refusal) = verify_signature(service.webhook_secret.as_ref(), &body, signature.as_deref()) {
        let message = refusal.message();
        tracing::warn!(service = %svc, message, "refused a webhook delivery");
        let recorded = state
            .store
            .write(move |tx| {
                hooks::record(tx, svc, &meta, DeliveryOutcome::Refused, message.to_owned(), None)
            })
            .await;
        if let Err(e) = recorded {
            return error_response(e);
        }
        return coded_response(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, message);
    }
    let outcome = match meta.event.as_deref() {
        Some("push") => match PushEvent::parse(&body) {
            Ok(push) => state.engine.accept_push(svc, push, meta).await,
            Err(e) => return error_response(e),
        },
        other => {
            let message = match other {
                Some("ping") => "pong: the webhook reaches this service".to_owned(),
                Some(event) => format!("`{event}` events are ignored: only `push` deploys"),
                None => "no X-GitHub-Event header: only `push` deploys".to_owned(),
            };
            state
                .store
                .write(move |tx| {
                    hooks::record(tx, svc, &meta, DeliveryOutcome::Ignored, message.clone(), None)
                })
                .await
        }
    };
    match outcome {
        Ok(delivery) => answer(&delivery),
        Err(e) => error_response(e),
    }
}

/// 201 with the operation when a deploy was queued; 202 with the reason
/// otherwise.
fn answer(delivery: &Delivery) -> Response {
    let status = match delivery.outcome {
        DeliveryOutcome::Deployed => StatusCode::CREATED,
        _ => StatusCode::ACCEPTED,
    };
    let body = serde_json::json!({
        "outcome": delivery.outcome,
        "message": delivery.message,
        "operationId": delivery.operation_id.map(|id| id.to_string()),
    });
    (status, Json(body)).into_response()
}
