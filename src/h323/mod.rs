//! H.323 signalling for room systems that dial in over H.323, sans-IO.
//!
//! The layers, bottom up: [`tpkt`] (RFC 1006 on TCP, for H.225.0 call signalling and H.245),
//! [`q931`] (the Q.931 messages and information elements H.225.0 uses, with the User-User IE
//! that carries the PER-encoded H.225.0 payload), [`asn`] (the generated H.225.0/RAS, H.235
//! and H.245 types and their PER codecs), [`call`] (H.225.0 call signalling, callee and
//! caller, fast start, tunnelled H.245) and [`h245`] (the H.245 control session:
//! capabilities, master/slave determination, logical channels, commands and indications).
//! [`front`] serves calls on TCP and joins them to the call core. [`ras`] registers with a
//! gatekeeper, or serves as one (UDP, sans-IO).

/// The ASN.1 types and PER codecs (crate `jonction-asn1`, generated from the ITU modules).
pub use jonction_asn1 as asn;
pub mod call;
pub mod front;
pub mod h245;
pub mod q931;
pub mod ras;
pub mod tpkt;
