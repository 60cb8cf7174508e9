//! G.711 µ-law (PCMU) and A-law (PCMA), bit-exact with the ITU-T G.191 Software Tool Library
//! (`g711.c`), for ITU-T G.711 at 8 kHz.
//!
//! The STL takes 16-bit linear input and first drops the bits G.711 does not code: µ-law works on
//! 14 bits (`x >> 2`), A-law on 13 bits (`x >> 4`). Negative inputs are one's-complemented (`!x`)
//! before the shift, so that, for instance, -1 codes like 0. Then:
//!
//! - **µ-law**: add the bias 33 (0x84 = 132 in 16-bit units), clip to 0x1FFF, find the segment
//!   (1 + the bit length of `biased >> 6`), take the 4 mantissa bits below the segment's leading
//!   one, and invert the code (the µ-law wire format sends `!(segment << 4 | mantissa)`, sign bit
//!   set for positive values);
//! - **A-law**: magnitudes below 16 code as they are (segment 0); above, the segment is the bit
//!   length minus 4 and the mantissa the 4 bits below the leading one; the sign bit is set for
//!   positive values and the even bits are inverted (`^ 0x55`).
//!
//! Decoding returns the middle of each quantisation interval, in 16-bit units; both decoders are
//! 256-entry tables built at compile time from the STL expansion formulas.

use super::conceal::RepeatFade;
use super::{AudioDecoder, AudioEncoder, Codec, CodecError};

/// The PCM rate of G.711.
pub const PCM_RATE: u32 = 8000;

/// Which of the two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, North America and Japan (PCMU).
    Mu,
    /// A-law, the rest of the world (PCMA).
    A,
}

impl Law {
    /// The codec this law is.
    pub const fn codec(self) -> Codec {
        match self {
            Law::Mu => Codec::Pcmu,
            Law::A => Codec::Pcma,
        }
    }

    /// Encodes one 16-bit linear sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => ulaw_encode(sample),
            Law::A => alaw_encode(sample),
        }
    }

    /// Decodes one code to a 16-bit linear sample.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Mu => ULAW_DECODE[usize::from(code)],
            Law::A => ALAW_DECODE[usize::from(code)],
        }
    }
}

/// The µ-law bias in 14-bit units (132 = 0x84 in 16-bit units).
const ULAW_BIAS: i32 = 33;
/// The largest biased 14-bit µ-law magnitude.
const ULAW_CLIP: i32 = 0x1FFF;

/// Encodes one 16-bit linear sample to µ-law (G.191 STL `ulaw_compress`).
#[inline]
pub const fn ulaw_encode(sample: i16) -> u8 {
    let x = sample as i32;
    // Branch-free (speech signs are unpredictable): `sign` is 0 or -1, and `x ^ sign` is the
    // one's complement for negatives. Then 16 -> 14 bits, the bias, the clip.
    let sign = x >> 31;
    let mut biased = ((x ^ sign) >> 2) + ULAW_BIAS;
    if biased > ULAW_CLIP {
        biased = ULAW_CLIP;
    }
    // Segment search: 1 + the bit length of `biased >> 6` (so 1..=8).
    let segment = 1 + (32 - ((biased >> 6) as u32).leading_zeros());
    let high = 8 - segment as i32;
    let low = 0x0F - ((biased >> segment) & 0x0F);
    ((high << 4) | low | (!sign & 0x80)) as u8
}

/// Decodes one µ-law code (G.191 STL `ulaw_expand`).
pub const fn ulaw_decode(code: u8) -> i16 {
    let inverted = !(code as i32);
    let exponent = (inverted >> 4) & 0x07;
    let mantissa = inverted & 0x0F;
    let step = 4 << (exponent + 1);
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * ULAW_BIAS;
    if code < 0x80 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one 16-bit linear sample to A-law (G.191 STL `alaw_compress`).
#[inline]
pub const fn alaw_encode(sample: i16) -> u8 {
    let x = sample as i32;
    // One's complement for negatives (branch-free, as for µ-law), then 16 -> 12-bit magnitude.
    let sign = x >> 31;
    let magnitude = (x ^ sign) >> 4;
    // Segment search: the segment is the bit length minus 4 (0 for magnitudes below 16, which
    // code as they are), the mantissa the four bits below the leading one.
    let bits = 32 - (magnitude as u32).leading_zeros();
    let segment = bits.saturating_sub(4);
    let mantissa = (magnitude >> segment.saturating_sub(1)) & 0x0F;
    let code = ((segment as i32) << 4) | mantissa | (!sign & 0x80);
    (code ^ 0x55) as u8
}

/// Decodes one A-law code (G.191 STL `alaw_expand`).
pub const fn alaw_decode(code: u8) -> i16 {
    let v = (code ^ 0x55) as i32 & 0x7F;
    let exponent = v >> 4;
    let mut mantissa = v & 0x0F;
    if exponent > 0 {
        mantissa += 16;
    }
    mantissa = (mantissa << 4) + 0x08;
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    if code > 0x7F {
        mantissa as i16
    } else {
        -mantissa as i16
    }
}

const fn decode_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = match law {
            Law::Mu => ulaw_decode(code as u8),
            Law::A => alaw_decode(code as u8),
        };
        code += 1;
    }
    table
}

/// µ-law code → linear sample.
static ULAW_DECODE: [i16; 256] = decode_table(Law::Mu);
/// A-law code → linear sample.
static ALAW_DECODE: [i16; 256] = decode_table(Law::A);

/// A G.711 encoder: one byte per sample, no state.
#[derive(Debug, Clone)]
pub struct G711Encoder {
    law: Law,
}

impl G711Encoder {
    /// An encoder for `law`.
    pub fn new(law: Law) -> Self {
        Self { law }
    }
}

impl AudioEncoder for G711Encoder {
    fn codec(&self) -> Codec {
        self.law.codec()
    }

    fn pcm_rate(&self) -> u32 {
        PCM_RATE
    }

    #[inline]
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let Some(out) = out.get_mut(..pcm.len()) else {
            return Err(CodecError::BufferTooSmall { have: out.len() });
        };
        match self.law {
            Law::Mu => out
                .iter_mut()
                .zip(pcm)
                .for_each(|(o, &s)| *o = ulaw_encode(s)),
            Law::A => out
                .iter_mut()
                .zip(pcm)
                .for_each(|(o, &s)| *o = alaw_encode(s)),
        }
        Ok(pcm.len())
    }
}

/// A G.711 decoder: one sample per byte, with repeat-and-fade concealment.
#[derive(Debug, Clone)]
pub struct G711Decoder {
    law: Law,
    plc: RepeatFade,
}

impl G711Decoder {
    /// A decoder for `law`.
    pub fn new(law: Law) -> Self {
        Self {
            law,
            plc: RepeatFade::new(PCM_RATE),
        }
    }
}

impl AudioDecoder for G711Decoder {
    fn codec(&self) -> Codec {
        self.law.codec()
    }

    fn pcm_rate(&self) -> u32 {
        PCM_RATE
    }

    #[inline]
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let Some(out) = out.get_mut(..payload.len()) else {
            return Err(CodecError::BufferTooSmall { have: out.len() });
        };
        let table = match self.law {
            Law::Mu => &ULAW_DECODE,
            Law::A => &ALAW_DECODE,
        };
        out.iter_mut()
            .zip(payload)
            .for_each(|(o, &c)| *o = table[usize::from(c)]);
        self.plc.remember(out);
        Ok(payload.len())
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.plc.conceal(out);
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 16-bit input codes exactly as the ITU-T G.191 STL does (`ezk_g711` was proved
    /// bit-identical to the STL on all inputs and serves as the oracle).
    #[test]
    fn encode_matches_the_stl_on_all_65536_inputs() {
        let mut mismatches = (0, 0);
        for x in i16::MIN..=i16::MAX {
            if ulaw_encode(x) != ezk_g711::mulaw::encode(x) {
                mismatches.0 += 1;
            }
            if alaw_encode(x) != ezk_g711::alaw::encode(x) {
                mismatches.1 += 1;
            }
        }
        assert_eq!(mismatches, (0, 0), "(µ-law, A-law) inputs that differ");
    }

    #[test]
    fn decode_matches_the_stl_on_all_256_codes() {
        for code in 0..=u8::MAX {
            assert_eq!(
                Law::Mu.decode(code),
                ezk_g711::mulaw::decode(code),
                "µ-law {code:#04x}"
            );
            assert_eq!(
                Law::A.decode(code),
                ezk_g711::alaw::decode(code),
                "A-law {code:#04x}"
            );
        }
    }

    /// Known points of the G.711 tables (silence codes, extremes).
    #[test]
    fn well_known_codes() {
        // (sample, µ-law, A-law)
        let table: [(i16, u8, u8); 6] = [
            (0, 0xFF, 0xD5),
            (-1, 0x7F, 0x55),
            (i16::MAX, 0x80, 0xAA),
            (i16::MIN, 0x00, 0x2A),
            (8, 0xFE, 0xD5),
            (-8, 0x7E, 0x55),
        ];
        for (x, mu, a) in table {
            assert_eq!(ulaw_encode(x), mu, "µ-law of {x}");
            assert_eq!(alaw_encode(x), a, "A-law of {x}");
        }
        assert_eq!(Law::Mu.decode(0x80), 32124);
        assert_eq!(Law::Mu.decode(0x00), -32124);
        assert_eq!(Law::A.decode(0xAA), 32256);
        assert_eq!(Law::A.decode(0x2A), -32256);
    }

    /// decode(encode(decode(c))) == decode(c): a decoded value is a fixed point of the quantiser,
    /// and the quantisation error of any input stays within half a step of its segment.
    #[test]
    fn round_trip() {
        for law in [Law::Mu, Law::A] {
            for code in 0..=u8::MAX {
                let x = law.decode(code);
                assert_eq!(law.decode(law.encode(x)), x, "{law:?} {code:#04x}");
            }
            for x in i16::MIN..=i16::MAX {
                let y = law.decode(law.encode(x));
                let err = (i32::from(x) - i32::from(y)).abs();
                // The largest step is 1024 (µ-law) / 1024 (A-law) in the top segment; half of
                // it plus the one's-complement offset bounds the error.
                assert!(err <= 1024, "{law:?} {x} -> {y}");
                // Sign is kept, except around zero where both laws have a ±small code.
                if x.unsigned_abs() > 16 {
                    assert_eq!(x.signum(), y.signum(), "{law:?} {x} -> {y}");
                }
            }
        }
    }

    #[test]
    fn frames_and_buffers() {
        let pcm: Vec<i16> = (0..160).map(|i| (i * 200 - 16000) as i16).collect();
        for law in [Law::Mu, Law::A] {
            let mut enc = G711Encoder::new(law);
            let mut dec = G711Decoder::new(law);
            let mut payload = [0u8; 160];
            assert_eq!(enc.encode(&pcm, &mut payload), Ok(160));
            assert_eq!(
                enc.encode(&pcm, &mut payload[..159]),
                Err(CodecError::BufferTooSmall { have: 159 })
            );
            let mut out = [0i16; 160];
            assert_eq!(dec.decode(&payload, &mut out), Ok(160));
            assert!(out
                .iter()
                .zip(&pcm)
                .all(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() <= 512));
            assert_eq!(
                dec.decode(&payload, &mut out[..100]),
                Err(CodecError::BufferTooSmall { have: 100 })
            );
            assert_eq!(dec.decode(&[], &mut out), Ok(0));
            // Concealment replays the last frame, fading.
            let mut lost = [0i16; 160];
            assert_eq!(dec.conceal(&mut lost), Ok(160));
            assert_eq!(lost[0], out[0]);
            assert!(lost[159].unsigned_abs() < out[159].unsigned_abs());
        }
    }
}
