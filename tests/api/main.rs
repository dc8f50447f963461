//! Integration tests over real HTTP and WebSocket.

mod access;
mod activity;
mod contracts;
mod deploys;
mod errors;
mod healing;
mod helpers;
mod hooks;
mod idempotency;
mod logs;
mod maintenance;
mod metrics;
mod queue;
mod recovery;
mod reports;
mod resources;
mod scaling;
mod statuses;
mod stuck;
mod websocket;
