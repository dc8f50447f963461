//! Integration tests over real HTTP and WebSocket.

mod contracts;
mod deploys;
mod errors;
mod healing;
mod helpers;
mod logs;
mod queue;
mod recovery;
mod resources;
mod statuses;
