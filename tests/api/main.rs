//! Integration tests over real HTTP and WebSocket.

mod activity;
mod browser;
mod cdp;
mod contracts;
mod demo;
mod deploys;
mod errors;
mod healing;
mod helpers;
mod hooks;
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
