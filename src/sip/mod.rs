//! SIP (RFC 3261): messages, request validation, transactions, the endpoint that demultiplexes
//! them, and SDP offer/answer for the media of a call.
//!
//! Every piece is sans-IO: bytes and time in, messages, verdicts and timers out.

pub mod dialog;
pub mod endpoint;
pub mod media_control;
pub mod message;
pub mod metrics;
pub mod sdp;
pub mod service;
pub mod session_timer;
pub mod stream;
pub mod transaction;
pub mod validate;
