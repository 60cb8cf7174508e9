//! What a phone caller goes through before joining a room: PIN entry by DTMF, a brute-force
//! guard per source address, and PIN → room lookups.
//!
//! - [`entry`]: the DTMF PIN dialogue (prompts, digits, timeouts, attempts), sans-IO;
//! - [`guard`]: refuses sources that try too many wrong PINs, sans-IO;
//! - [`lookup`]: PIN → room via a static table, Visio roomkit or LiveKit dispatch rules (tokio).

pub mod entry;
pub mod guard;
pub mod lookup;
