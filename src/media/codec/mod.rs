//! Audio codecs of a call leg behind one encoder/decoder pair: G.711 (ITU-T G.711, G.191 STL),
//! G.722 (ITU-T G.722) and Opus (RFC 6716, RTP clock per RFC 7587); static payload types and
//! clock rates per RFC 3551.
//!
//! A codec turns 20 ms frames of mono `i16` PCM at its *PCM rate* into RTP payload bytes and back.
//! The PCM rate is not always the RTP clock rate:
//!
//! | codec | PCM rate               | RTP clock | default PT |
//! |-------|------------------------|-----------|------------|
//! | PCMU  | 8000                   | 8000      | 0          |
//! | PCMA  | 8000                   | 8000      | 8          |
//! | G722  | 16000                  | **8000** (RFC 3551 §4.5.2, a historical error kept for compatibility) | 9 |
//! | opus  | 8/12/16/24/48 kHz, chosen per leg | **48000** always (RFC 7587 §4.1) | dynamic (111 by convention) |
//!
//! Opus is run at the SIP side's rate (8 kHz for G.711, 16 kHz for G.722), so a G.711/G.722 ↔
//! Opus path needs no resampler: libopus resamples internally on the wire side for free.
//!
//! [`Codec::encoder`] and [`Codec::decoder`] return an [`Encoder`] / [`Decoder`] enum that
//! dispatches by `match`: one allocation when the codec is made, none per frame. Both implement
//! the [`AudioEncoder`] / [`AudioDecoder`] traits, which the individual codecs implement too.
//!
//! Decoders take untrusted bytes from the network: they return [`CodecError`] and never panic.

use std::fmt;

mod conceal;
pub mod g711;
pub mod g722;
pub mod opus;

/// The length of one frame, in milliseconds, that the media plane works with.
pub const FRAME_MS: u32 = 20;

/// The largest PCM frame a decoder can be asked to write: 120 ms at 48 kHz, the longest Opus
/// packet (RFC 6716 §3.2.5). An output buffer this size always suffices.
pub const MAX_DECODED_SAMPLES: usize = 5760;

/// Errors of the codecs. Which side is at fault is given per variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// Our caller asked for a PCM rate the codec cannot run at (G.711 is 8 kHz only, G.722
    /// 16 kHz only, Opus one of 8, 12, 16, 24, 48 kHz). Happens when the codec is made.
    #[error("{codec} cannot run with {rate} Hz PCM")]
    UnsupportedRate {
        /// The codec asked for.
        codec: Codec,
        /// The PCM rate asked for.
        rate: u32,
    },
    /// Our caller passed a PCM frame (or asked for a concealment length) the codec cannot code:
    /// an odd number of samples for G.722, a duration that is not 2.5, 5, 10, 20, 40 or 60 ms for
    /// Opus.
    #[error("{codec} cannot code a frame of {samples} samples at {rate} Hz")]
    FrameSize {
        /// The codec.
        codec: Codec,
        /// The number of PCM samples passed or asked for.
        samples: usize,
        /// The PCM rate of the codec instance.
        rate: u32,
    },
    /// Our caller's output buffer is too small for the result. [`MAX_DECODED_SAMPLES`] and
    /// [`Encoder::max_payload_len`] give sizes that always suffice.
    #[error("output buffer of {have} is too small")]
    BufferTooSmall {
        /// The length of the buffer that was passed.
        have: usize,
    },
    /// The peer sent a payload that is not valid for the codec (only Opus payloads can be
    /// malformed: every byte string is a valid G.711 or G.722 payload).
    #[error("malformed {codec} payload")]
    MalformedPayload {
        /// The codec of the payload.
        codec: Codec,
    },
    /// libopus failed for another reason (allocation, internal error); its message.
    #[error("libopus: {0}")]
    Opus(&'static str),
}

/// An audio codec that a call leg can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (RFC 3551 "PCMU").
    Pcmu,
    /// G.711 A-law (RFC 3551 "PCMA").
    Pcma,
    /// G.722 at 64 kbit/s (RFC 3551 "G722").
    G722,
    /// Opus, mono (RFC 7587 "opus").
    Opus,
}

impl Codec {
    /// Every codec, in our default order of preference for a SIP offer.
    pub const ALL: [Codec; 4] = [Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu];

    /// The RTP clock rate: the rate RTP timestamps count at, and the rate in the SDP `rtpmap`.
    /// G.722 says 8000 though it samples at 16 kHz (RFC 3551 §4.5.2); Opus always says 48000
    /// (RFC 7587 §4.1).
    pub const fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus => 48000,
        }
    }

    /// The codec's native PCM rate: the rate its encoder takes and its decoder gives. For Opus,
    /// which can run at 8, 12, 16, 24 or 48 kHz, the full-band rate 48000; pick another with
    /// [`Codec::encoder`].
    pub const fn pcm_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 => 16000,
            Codec::Opus => 48000,
        }
    }

    /// Whether the codec can encode from and decode to PCM at `rate` Hz.
    pub const fn supports_pcm_rate(self, rate: u32) -> bool {
        match self {
            Codec::Pcmu | Codec::Pcma => rate == 8000,
            Codec::G722 => rate == 16000,
            Codec::Opus => matches!(rate, 8000 | 12000 | 16000 | 24000 | 48000),
        }
    }

    /// The default RTP payload type: the static one of RFC 3551 for G.711 and G.722, and 111 for
    /// Opus, the dynamic type that browsers and LiveKit use by convention. An SDP negotiation
    /// overrides it.
    pub const fn default_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
            Codec::Opus => 111,
        }
    }

    /// The encoding name of the SDP `rtpmap` attribute, as registered.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }

    /// The channel count in the SDP `rtpmap` attribute, when one is written: Opus always says 2
    /// (RFC 7587 §7), the others say nothing (mono).
    pub const fn sdp_channels(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    /// The codec named by an SDP `rtpmap` (`encoding name/clock rate`), or `None` when we do not
    /// support it. Names compare without case (RFC 4855 §3).
    pub fn from_rtpmap(encoding_name: &str, clock_rate: u32) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| {
            c.encoding_name().eq_ignore_ascii_case(encoding_name)
                && c.rtp_clock_rate() == clock_rate
        })
    }

    /// How far the RTP timestamp advances per packet of `frame_ms` milliseconds, counted at the RTP
    /// clock rate: 160 for 20 ms of PCMU, PCMA or G.722, 960 for 20 ms of Opus at any PCM rate.
    pub const fn rtp_timestamp_increment(self, frame_ms: u32) -> u32 {
        self.rtp_clock_rate() / 1000 * frame_ms
    }

    /// An encoder taking PCM at `pcm_rate` Hz; Opus gets the default [`opus::OpusConfig`].
    pub fn encoder(self, pcm_rate: u32) -> Result<Encoder, CodecError> {
        if !self.supports_pcm_rate(pcm_rate) {
            return Err(CodecError::UnsupportedRate {
                codec: self,
                rate: pcm_rate,
            });
        }
        Ok(match self {
            Codec::Pcmu => Encoder::G711(g711::G711Encoder::new(g711::Law::Mu)),
            Codec::Pcma => Encoder::G711(g711::G711Encoder::new(g711::Law::A)),
            Codec::G722 => Encoder::G722(g722::G722Encoder::new()),
            Codec::Opus => Encoder::Opus(opus::OpusEncoder::new(
                pcm_rate,
                &opus::OpusConfig::default(),
            )?),
        })
    }

    /// A decoder giving PCM at `pcm_rate` Hz.
    pub fn decoder(self, pcm_rate: u32) -> Result<Decoder, CodecError> {
        if !self.supports_pcm_rate(pcm_rate) {
            return Err(CodecError::UnsupportedRate {
                codec: self,
                rate: pcm_rate,
            });
        }
        Ok(match self {
            Codec::Pcmu => Decoder::G711(g711::G711Decoder::new(g711::Law::Mu)),
            Codec::Pcma => Decoder::G711(g711::G711Decoder::new(g711::Law::A)),
            Codec::G722 => Decoder::G722(g722::G722Decoder::new()),
            Codec::Opus => Decoder::Opus(opus::OpusDecoder::new(pcm_rate)?),
        })
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// The number of samples in `frame_ms` milliseconds of PCM at `pcm_rate` Hz (160 for 20 ms at
/// 8 kHz).
pub const fn samples_per_frame(pcm_rate: u32, frame_ms: u32) -> usize {
    (pcm_rate / 1000 * frame_ms) as usize
}

/// Turns PCM frames into RTP payloads.
pub trait AudioEncoder {
    /// The codec.
    fn codec(&self) -> Codec;

    /// The PCM rate the encoder takes, in Hz.
    fn pcm_rate(&self) -> u32;

    /// Encodes one frame of mono PCM at [`AudioEncoder::pcm_rate`] into `out`; returns the
    /// payload length. Frame lengths: any for G.711, even for G.722, 2.5 to 60 ms for Opus.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;
}

/// Turns RTP payloads into PCM frames, and makes up frames for the lost ones.
pub trait AudioDecoder {
    /// The codec.
    fn codec(&self) -> Codec;

    /// The PCM rate the decoder gives, in Hz.
    fn pcm_rate(&self) -> u32;

    /// Decodes one payload (untrusted bytes) into `out`; returns the number of samples written.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;

    /// Fills all of `out` with a stand-in for a lost packet of `out.len()` samples (packet loss
    /// concealment): libopus PLC for Opus; for G.711 and G.722 the last frame repeated, fading
    /// to silence over 60 ms of consecutive loss. Returns `out.len()`.
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError>;

    /// Recovers the lost packet *before* `next_payload` into all of `out` (`out.len()` samples:
    /// the lost duration) from the forward error correction data that `next_payload` carries.
    /// Call it when the packet after a gap arrives, then [`AudioDecoder::decode`] that packet.
    /// Codecs without FEC, and Opus packets without FEC data, conceal instead.
    fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let _ = next_payload;
        self.conceal(out)
    }
}

/// An encoder of any of our codecs, dispatched by `match` (no allocation per frame).
pub enum Encoder {
    /// PCMU or PCMA.
    G711(g711::G711Encoder),
    /// G.722.
    G722(g722::G722Encoder),
    /// Opus.
    Opus(opus::OpusEncoder),
}

impl Encoder {
    /// A payload buffer of this many bytes holds the encoding of `samples` PCM samples.
    pub fn max_payload_len(&self, samples: usize) -> usize {
        match self {
            Encoder::G711(_) => samples,
            Encoder::G722(_) => samples.div_ceil(2),
            Encoder::Opus(_) => opus::MAX_PAYLOAD_LEN,
        }
    }
}

impl AudioEncoder for Encoder {
    fn codec(&self) -> Codec {
        match self {
            Encoder::G711(e) => e.codec(),
            Encoder::G722(e) => e.codec(),
            Encoder::Opus(e) => e.codec(),
        }
    }

    fn pcm_rate(&self) -> u32 {
        match self {
            Encoder::G711(e) => e.pcm_rate(),
            Encoder::G722(e) => e.pcm_rate(),
            Encoder::Opus(e) => e.pcm_rate(),
        }
    }

    #[inline]
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        match self {
            Encoder::G711(e) => e.encode(pcm, out),
            Encoder::G722(e) => e.encode(pcm, out),
            Encoder::Opus(e) => e.encode(pcm, out),
        }
    }
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("codec", &self.codec())
            .field("pcm_rate", &self.pcm_rate())
            .finish()
    }
}

/// A decoder of any of our codecs, dispatched by `match` (no allocation per frame).
pub enum Decoder {
    /// PCMU or PCMA.
    G711(g711::G711Decoder),
    /// G.722.
    G722(g722::G722Decoder),
    /// Opus.
    Opus(opus::OpusDecoder),
}

impl AudioDecoder for Decoder {
    fn codec(&self) -> Codec {
        match self {
            Decoder::G711(d) => d.codec(),
            Decoder::G722(d) => d.codec(),
            Decoder::Opus(d) => d.codec(),
        }
    }

    fn pcm_rate(&self) -> u32 {
        match self {
            Decoder::G711(d) => d.pcm_rate(),
            Decoder::G722(d) => d.pcm_rate(),
            Decoder::Opus(d) => d.pcm_rate(),
        }
    }

    #[inline]
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        match self {
            Decoder::G711(d) => d.decode(payload, out),
            Decoder::G722(d) => d.decode(payload, out),
            Decoder::Opus(d) => d.decode(payload, out),
        }
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        match self {
            Decoder::G711(d) => d.conceal(out),
            Decoder::G722(d) => d.conceal(out),
            Decoder::Opus(d) => d.conceal(out),
        }
    }

    fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        match self {
            Decoder::G711(d) => d.decode_fec(next_payload, out),
            Decoder::G722(d) => d.decode_fec(next_payload, out),
            Decoder::Opus(d) => d.decode_fec(next_payload, out),
        }
    }
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("codec", &self.codec())
            .field("pcm_rate", &self.pcm_rate())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_signal::XorShift;

    #[test]
    fn rtp_parameters_follow_rfc_3551_and_7587() {
        // (codec, clock, pcm rate, PT, name, timestamp step for 20 ms)
        let table = [
            (Codec::Pcmu, 8000, 8000, 0, "PCMU", 160),
            (Codec::Pcma, 8000, 8000, 8, "PCMA", 160),
            (Codec::G722, 8000, 16000, 9, "G722", 160),
            (Codec::Opus, 48000, 48000, 111, "opus", 960),
        ];
        for (codec, clock, pcm, pt, name, step) in table {
            assert_eq!(codec.rtp_clock_rate(), clock, "{codec}");
            assert_eq!(codec.pcm_rate(), pcm, "{codec}");
            assert_eq!(codec.default_payload_type(), pt, "{codec}");
            assert_eq!(codec.encoding_name(), name, "{codec}");
            assert_eq!(codec.rtp_timestamp_increment(20), step, "{codec}");
            assert_eq!(Codec::from_rtpmap(name, clock), Some(codec));
            assert_eq!(
                Codec::from_rtpmap(&name.to_ascii_lowercase(), clock),
                Some(codec)
            );
        }
        assert_eq!(Codec::from_rtpmap("G722", 16000), None);
        assert_eq!(Codec::from_rtpmap("opus", 8000), None);
        assert_eq!(Codec::from_rtpmap("G729", 8000), None);
        assert_eq!(Codec::Opus.sdp_channels(), Some(2));
        assert_eq!(Codec::Opus.rtp_timestamp_increment(60), 2880);
    }

    #[test]
    fn rates_are_checked_when_the_codec_is_made() {
        for codec in Codec::ALL {
            for rate in [8000, 12000, 16000, 24000, 32000, 44100, 48000] {
                let supported = codec.supports_pcm_rate(rate);
                assert_eq!(codec.encoder(rate).is_ok(), supported, "{codec} {rate}");
                assert_eq!(codec.decoder(rate).is_ok(), supported, "{codec} {rate}");
                if !supported {
                    assert!(matches!(
                        codec.encoder(rate),
                        Err(CodecError::UnsupportedRate { .. })
                    ));
                }
            }
        }
        assert!(Codec::Opus.encoder(8000).is_ok());
        assert!(Codec::Opus.decoder(16000).is_ok());
    }

    #[test]
    fn every_decoder_survives_random_payloads() {
        let mut rng = XorShift::new(0x5EED_1234);
        let mut out = vec![0i16; MAX_DECODED_SAMPLES];
        let mut payload = [0u8; 1500];
        for codec in Codec::ALL {
            let rate = if codec == Codec::Opus {
                16000
            } else {
                codec.pcm_rate()
            };
            let mut dec = codec.decoder(rate).expect("supported rate");
            for round in 0..3000 {
                let len = (rng.next() as usize) % payload.len();
                rng.fill(&mut payload[..len]);
                // Whatever happens, no panic; the output length is bounded by the buffer.
                if let Ok(n) = dec.decode(&payload[..len], &mut out) {
                    assert!(n <= out.len());
                }
                // Small buffers must be refused, not overrun.
                let _ = dec.decode(&payload[..len], &mut out[..round % 7]);
                let frame = samples_per_frame(rate, 20);
                assert_eq!(dec.conceal(&mut out[..frame]), Ok(frame));
                let _ = dec.decode_fec(&payload[..len], &mut out[..frame]);
            }
        }
    }

    #[test]
    fn enum_dispatch_round_trips_every_codec() {
        for codec in Codec::ALL {
            let rate = if codec == Codec::Opus {
                8000
            } else {
                codec.pcm_rate()
            };
            let mut enc = codec.encoder(rate).expect("supported rate");
            let mut dec = codec.decoder(rate).expect("supported rate");
            assert_eq!((enc.codec(), enc.pcm_rate()), (codec, rate));
            assert_eq!((dec.codec(), dec.pcm_rate()), (codec, rate));
            let frame = samples_per_frame(rate, FRAME_MS);
            let pcm = vec![1000i16; frame];
            let mut payload = vec![0u8; enc.max_payload_len(frame)];
            let mut out = vec![0i16; MAX_DECODED_SAMPLES];
            for _ in 0..5 {
                let n = enc.encode(&pcm, &mut payload).expect("encodes");
                assert!(n > 0);
                assert_eq!(dec.decode(&payload[..n], &mut out), Ok(frame));
            }
            assert!(format!("{enc:?}").contains("pcm_rate"));
        }
    }
}
