//! The embedded single-node room server that speaks the LiveKit client protocol.
//!
//! - [`server`]: the sans-IO core (rooms, participants, str0m peer connections, forwarding);
//! - [`service`]: the tokio shell that owns the UDP media sockets and drives the core;
//! - [`signal`]: signalling frame encoding.
//!
//! Signalling connections (WebSocket `/rtc`, served by [`crate::http`]) verify the token, then
//! exchange `SignalRequest`/`SignalResponse` with the core through the service. All media of all
//! rooms is handled by one task, so forwarding is a function call from one `Rtc` to another.

pub mod ids;
pub mod latency;
pub mod participant;
pub mod server;
pub mod service;
pub mod signal;
mod speakers;
mod track;

pub use participant::ConnId;
pub use server::{Input, JoinRequest, Output, RoomServer, ServerConfig, Stats};
pub use service::RoomService;

/// Installs the process-wide crypto provider of the WebRTC stack (once).
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}
