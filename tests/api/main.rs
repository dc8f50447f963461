//! Integration tests over real HTTP and WebSocket.

mod activity;
mod auto_incidents;
mod browser;
mod cdp;
mod contracts;
mod crash;
mod demo;
mod deploys;
mod errors;
mod healing;
mod health;
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
mod status_page;
mod statuses;
mod stuck;
mod transport;
mod websocket;
