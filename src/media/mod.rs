//! Media plane for SIP legs: RTP/RTCP wire formats and receive statistics, the audio jitter
//! buffer, RFC 4733 DTMF and the per-stream RTP session (latching, timeouts, RTCP).
//!
//! Everything here is sans-IO: functions take bytes and `now` and return bytes, events and
//! the next instant they want to be woken at.

pub mod dtmf;
pub mod jitter;
pub mod rtp;
pub mod session;
