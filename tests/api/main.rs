//! Integration tests over real HTTP and WebSocket.

mod contracts;
mod deploys;
mod errors;
mod helpers;
mod logs;
mod queue;
mod recovery;
mod resources;
mod statuses;
mod stuck;
