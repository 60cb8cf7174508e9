//! H.323 signalling for room systems that dial in over H.323, sans-IO.
//!
//! So far the framing layers: [`tpkt`] (RFC 1006 on TCP, for H.225.0 call signalling and
//! H.245) and [`q931`] (the Q.931 messages and information elements H.225.0 uses, with the
//! User-User IE that carries the PER-encoded H.225.0 payload). The ASN.1 (H.225.0, H.245, RAS),
//! the call and control state machines and the front that joins the call core come next.

/// The ASN.1 types and PER codecs (crate `jonction-asn1`, generated from the ITU modules).
pub use jonction_asn1 as asn;
pub mod h245;
pub mod q931;
pub mod tpkt;
