//! The media plane of a call leg, sans-IO (no clock reads, no sockets, no tokio): functions take
//! bytes, frames and `now`, and return bytes, frames, events and the next instant they want.
//!
//! Everything works on 20 ms frames of mono `i16` PCM and on RTP payload bytes.
//!
//! - [`codec`]: G.711 (µ-law, A-law), G.722 and Opus behind one [`codec::Encoder`] /
//!   [`codec::Decoder`] pair (enum dispatch, no allocation per frame), with packet loss
//!   concealment. Opus runs at the SIP side's rate (8 or 16 kHz), so the G.711 and G.722 paths
//!   need no resampler.
//! - [`mixer`]: sums N inputs into one frame, with mix-minus and per-input jitter slack.
//! - [`dtmf_tone`]: in-band dual-tone generator for DTMF digits.
//! - [`level`]: RFC 6464 audio levels of frames, for the rooms' active speaker detection.
//! - [`rtp`]: RTP/RTCP wire formats, payload format names, receive statistics.
//! - [`negotiated`]: what a device leg negotiated (SDP on SIP, logical channels on H.323): the
//!   description the call core runs its streams from, whichever front produced it.
//! - [`jitter`]: the adaptive audio jitter buffer.
//! - [`dtmf`]: RFC 4733 telephone events and SIP INFO DTMF bodies.
//! - [`resample`]: offline windowed-sinc rate conversion (prompts).
//! - [`session`]: the per-stream RTP session (latching, timeouts, RTCP).
//! - [`h264`]: H.264 remuxing without decoding: depacketizer, packetizer, SPS parser, and the
//!   stream switcher that splices room sources into one stream toward a device.
//!
//! Policy on input: payloads come from the network and are untrusted. Parsers and decoders
//! return errors on garbage and never panic; a panic in this module is a bug.

pub mod codec;
pub mod dtmf;
pub mod dtmf_tone;
pub mod h264;
pub mod jitter;
pub mod level;
pub mod mixer;
pub mod negotiated;
pub mod peer_connection;
pub mod resample;
pub mod rtp;
pub mod session;
pub mod srtp;

#[cfg(test)]
pub(crate) mod test_signal;
