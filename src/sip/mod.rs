//! SIP protocol core (sans-IO). For now only the SDP offer/answer model lives here.

pub mod sdp;
