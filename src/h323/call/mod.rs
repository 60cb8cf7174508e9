//! The H.225.0 call-signalling state machine (Q.931 on TCP), sans-IO: one [`Call`] per
//! call-signalling connection, as callee ([`Call::accept`]) or caller ([`Call::dial`]).
//!
//! Fed the TCP bytes ([`Call::handle_input`]) and the time ([`Call::handle_timeout`]), it
//! returns the TPKT-framed bytes to write ([`Call::poll_transmit`]), its next deadline
//! ([`Call::poll_timeout`]) and [`Event`]s ([`Call::poll_event`]). H.245 PDUs are carried as
//! opaque bytes (tunnelled in `h245Control`); fast-start `OpenLogicalChannel`s are parsed and
//! built here ([`faststart`]). Once released, write what is left to send and close the socket.

pub mod cause;
pub mod faststart;
mod signalling;
pub mod uuie;

#[cfg(test)]
mod tests;

pub use faststart::{Channel, Direction, Proposal};
pub use signalling::{
    Answer, Call, CallError, Config, ConnectParams, DialParams, Event, FastStartReply,
    IncomingCall, ReleaseOrigin, Role, State,
};
pub use uuie::{Alias, Guid, Vendor};
