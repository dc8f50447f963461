//! Integration tests over real HTTP and WebSocket.

mod activity;
mod contracts;
mod deploys;
mod errors;
mod helpers;
mod hooks;
mod queue;
mod recovery;
mod reports;
mod resources;
