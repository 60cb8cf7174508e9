//! The gateway's side of LiveKit: a participant client (sans-IO core in [`client`], tokio shell
//! in [`connection`]) that joins rooms on the embedded server or on any LiveKit deployment.

pub mod client;
pub mod connection;

pub use client::{ClientConfig, ClientError, ClientEvent, ClientOutput, LocalTrack, RoomClient};
