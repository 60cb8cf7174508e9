//! RTP and RTCP (RFC 3550): packet views and writers, sequence and timestamp extension,
//! compound RTCP and receiver statistics with the report scheduler; payload format names
//! ([`payload_format`]).

use std::fmt;

pub mod packet;
pub mod payload_format;
pub mod ports;
pub mod rtcp;
pub mod seq;
pub mod stats;

pub use packet::{ExtensionElement, RtpError, RtpPacket, RtpWriter};
pub use seq::{SeqOutcome, SequenceTracker, TimestampUnwrapper};

/// A synchronisation source identifier (RFC 3550 §3): one per RTP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl From<u32> for Ssrc {
    fn from(v: u32) -> Self {
        Ssrc(v)
    }
}
