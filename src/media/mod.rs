//! Media plane of a call leg: audio codecs, the per-leg mixer and DTMF tones (sans-IO, no tokio).
//!
//! Everything here works on 20 ms frames of mono `i16` PCM and on RTP payload bytes; nothing reads
//! the clock or touches a socket. The call's media session (later `media::session`) feeds frames in
//! and takes frames out at the pace its shell decides.
//!
//! - [`codec`]: G.711 (µ-law, A-law), G.722 and Opus behind one [`codec::Encoder`] /
//!   [`codec::Decoder`] pair (enum dispatch, no allocation per frame), with packet loss
//!   concealment. Opus runs at the SIP side's rate (8 or 16 kHz), so the G.711 and G.722 paths need
//!   no resampler.
//! - [`mixer`]: sums N inputs into one frame, with mix-minus and per-input jitter slack.
//! - [`dtmf_tone`]: in-band dual-tone generator for DTMF digits.
//!
//! Policy on input: payloads come from the network and are untrusted. Decoders return a
//! [`codec::CodecError`] on garbage and never panic; a panic in this module is a bug.

pub mod codec;
pub mod dtmf_tone;
pub mod mixer;

#[cfg(test)]
pub(crate) mod test_signal;
