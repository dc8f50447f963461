//! Integration tests over real HTTP and WebSocket.

mod contracts;
mod deploys;
mod helpers;
mod queue;
mod recovery;
mod resources;
