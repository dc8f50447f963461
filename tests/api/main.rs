//! Integration tests over real HTTP and WebSocket.

mod contracts;
mod deploys;
mod errors;
mod helpers;
mod queue;
mod recovery;
mod resources;
