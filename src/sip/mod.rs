//! SIP (RFC 3261): messages, request validation, and (next) transactions and dialogs.
//!
//! Every piece is sans-IO: bytes in, messages and verdicts out.

pub mod endpoint;
pub mod message;
pub mod transaction;
pub mod validate;
