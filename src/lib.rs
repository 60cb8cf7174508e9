//! jonction: a SIP/H.323 gateway into LiveKit WebRTC rooms, with an embedded single-node
//! room server that speaks the LiveKit client protocol.
//!
//! Layout:
//! - [`config`]: the TOML configuration and its `JONCTION_*` environment overrides;
//! - [`token`]: LiveKit access tokens (mint and verify);
//! - [`dialplan`]: call routing rules (`dialplans/*.toml`): engine, hot reload, admin CLI;
//! - [`rooms`]: the embedded room server (sans-IO core + tokio shell);
//! - [`sip`]: the SIP protocol core: messages, validation, transactions, endpoint, SDP;
//! - [`http`]: the HTTP/WebSocket listener (signalling, web page, health);
//! - [`prometheus`]: the text format `/metrics` is written in;
//! - [`gateway`]: process wiring for `jonction run` (start, readiness, graceful shutdown);
//! - [`logging`]: tracing set-up;
//! - [`media`]: the media plane of a call leg (codecs, mixer, RTP/RTCP, jitter buffer, DTMF),
//!   sans-IO;
//! - [`prompt`]: the embedded voice prompts (fr/en) played to phone callers, as 20 ms frames;
//! - [`pin`]: what a caller goes through before joining a room: PIN entry, brute-force guard,
//!   PIN → room lookups;
//!
//! Protocol cores never read the clock nor touch sockets: they take `now` as an argument and
//! return what to send, like str0m and quinn-proto. Only the shells (`rooms::service`, `http`,
//! `gateway`) run on tokio.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[macro_use]
extern crate tracing;

pub mod call;
pub mod config;
pub mod dialplan;
pub mod file_watch;
pub mod gateway;
pub mod h323;
pub mod http;
pub mod livekit;
pub mod logging;
pub mod media;
pub mod pin;
pub mod prometheus;
pub mod prompt;
pub mod rooms;
pub mod sip;
pub mod token;
pub mod twirp;

/// The version string (`jonction version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
