//! H.225.0 RAS (registration, admission and status, on UDP), sans-IO: [`Endpoint`] registers
//! jonction with a gatekeeper and asks it to admit calls; [`Gatekeeper`] is a minimal
//! gatekeeper room systems can register with.
//!
//! Both are fed datagrams ([`Endpoint::handle_datagram`]) and the time
//! ([`Endpoint::handle_timeout`]); they return the datagrams to send
//! ([`Endpoint::poll_transmit`]), their next deadline ([`Endpoint::poll_timeout`]) and events
//! ([`Endpoint::poll_event`]). No sockets, no clock: every call takes `now`.

mod endpoint;
mod gatekeeper;
pub mod messages;

#[cfg(test)]
mod tests;

pub use endpoint::{
    AdmissionParams, DisengageParams, DisengageReason, Endpoint, EndpointConfig, RasError, RasEvent,
};
pub use gatekeeper::{Gatekeeper, GatekeeperConfig, GatekeeperEvent, Registration};

/// A datagram that is not a PER-encoded `RasMessage` (also counted in [`RasStats::malformed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an H.225.0 RAS message (aligned PER)")]
pub struct Malformed;

/// Decodes a received datagram; one that is not a RAS message is counted in `stats`.
fn decode_counted(
    stats: &mut RasStats,
    bytes: &[u8],
) -> Result<crate::h323::asn::h323_messages::RasMessage, Malformed> {
    messages::decode(bytes).ok_or_else(|| {
        stats.malformed += 1;
        Malformed
    })
}

/// Counters of datagrams a machine did not act on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RasStats {
    /// Datagrams that are not RAS messages.
    pub malformed: u64,
    /// Responses that match no request in progress.
    pub unmatched: u64,
    /// Requests sent again after a timeout.
    pub retransmissions: u64,
    /// Messages understood but not expected here (answered with a reject or XRS, or dropped).
    pub unexpected: u64,
    /// Messages we could not encode (a bug or a value out of range).
    pub encode_errors: u64,
}
