//! G.722 at 64 kbit/s (ITU-T G.722 mode 1; RTP per RFC 3551 §4.5.2): 16 kHz PCM, one byte per two
//! samples, so 20 ms = 320 samples = 160 bytes, and an RTP clock of 8000 whatever the PCM rate.
//!
//! The sub-band ADPCM itself is `audio_codec::g722` (a pure-Rust port of the spandsp code). It is
//! not bit-exact with spandsp (see `shared/reference/dependencies.md` §5) and has not been run
//! against the ITU-T test vectors yet; its quality on test signals matches spandsp.
//!
//! G.722 has no concealment of its own: lost frames are the last frame repeated and faded.

use audio_codec::{Decoder as _, Encoder as _};

use super::conceal::RepeatFade;
use super::{AudioDecoder, AudioEncoder, Codec, CodecError};

/// The PCM rate of G.722.
pub const PCM_RATE: u32 = 16000;

/// A G.722 64 kbit/s encoder.
pub struct G722Encoder {
    /// Boxed: the codec state is 400 bytes, and [`super::Encoder`] should stay small.
    inner: Box<audio_codec::g722::G722Encoder>,
}

impl G722Encoder {
    /// A 64 kbit/s encoder (one code byte per two 16 kHz samples).
    pub fn new() -> Self {
        Self {
            inner: Box::new(audio_codec::g722::G722Encoder::new()),
        }
    }
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioEncoder for G722Encoder {
    fn codec(&self) -> Codec {
        Codec::G722
    }

    fn pcm_rate(&self) -> u32 {
        PCM_RATE
    }

    /// Encodes an even number of 16 kHz samples into half as many bytes.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if pcm.len() % 2 != 0 {
            // The QMF analysis takes sample pairs; an odd tail would be padded and shift every
            // later frame by one sample.
            return Err(CodecError::FrameSize {
                codec: Codec::G722,
                samples: pcm.len(),
                rate: PCM_RATE,
            });
        }
        let need = pcm.len() / 2;
        let Some(out) = out.get_mut(..need) else {
            return Err(CodecError::BufferTooSmall { have: out.len() });
        };
        match self.inner.encode_into(pcm, out) {
            Ok(n) => Ok(n),
            // The buffer was sized above; anything else is a bug in the wrapped codec.
            Err(_) => Err(CodecError::BufferTooSmall { have: out.len() }),
        }
    }
}

/// A G.722 64 kbit/s decoder with repeat-and-fade concealment.
pub struct G722Decoder {
    /// Boxed: the codec state is 400 bytes, and [`super::Decoder`] should stay small.
    inner: Box<audio_codec::g722::G722Decoder>,
    plc: RepeatFade,
}

impl G722Decoder {
    /// A 64 kbit/s decoder (two 16 kHz samples per code byte).
    pub fn new() -> Self {
        Self {
            inner: Box::new(audio_codec::g722::G722Decoder::new()),
            plc: RepeatFade::new(PCM_RATE),
        }
    }
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioDecoder for G722Decoder {
    fn codec(&self) -> Codec {
        Codec::G722
    }

    fn pcm_rate(&self) -> u32 {
        PCM_RATE
    }

    /// Decodes any payload (every byte is a valid code) into twice as many samples.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let need = payload.len() * 2;
        let Some(out) = out.get_mut(..need) else {
            return Err(CodecError::BufferTooSmall { have: out.len() });
        };
        let n = self
            .inner
            .decode_into(payload, out)
            .map_err(|_| CodecError::BufferTooSmall { have: need })?;
        self.plc.remember(&out[..n]);
        Ok(n)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.plc.conceal(out);
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_signal::{best_lag, sine, snr_db};

    #[test]
    fn twenty_ms_is_160_bytes_and_a_sine_survives() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let input = sine(1000.0, PCM_RATE, 16000.0, 50 * 320);
        let mut output = Vec::with_capacity(input.len());
        let mut payload = [0u8; 200];
        let mut frame = [0i16; 320];
        for pcm in input.chunks_exact(320) {
            let n = enc.encode(pcm, &mut payload).expect("encodes");
            assert_eq!(n, 160, "64 kbit/s: 160 bytes per 20 ms");
            assert_eq!(dec.decode(&payload[..n], &mut frame), Ok(320));
            output.extend_from_slice(&frame);
        }
        // The QMF pair delays the signal by 22 samples; find the lag rather than assume it.
        let lag = best_lag(&input, &output, 64);
        let skip = 320; // let the ADPCM adapt
        let snr = snr_db(&input[skip..input.len() - lag], &output[skip + lag..]);
        assert!(snr > 15.0, "SNR {snr:.1} dB at lag {lag}");
        assert!((15..=30).contains(&lag), "codec delay {lag}");
    }

    #[test]
    fn odd_frames_and_small_buffers_are_refused() {
        let mut enc = G722Encoder::new();
        let mut payload = [0u8; 160];
        assert!(matches!(
            enc.encode(&[0; 319], &mut payload),
            Err(CodecError::FrameSize { samples: 319, .. })
        ));
        assert_eq!(
            enc.encode(&[0; 320], &mut payload[..159]),
            Err(CodecError::BufferTooSmall { have: 159 })
        );
        let mut dec = G722Decoder::new();
        let mut out = [0i16; 320];
        assert_eq!(
            dec.decode(&payload, &mut out[..319]),
            Err(CodecError::BufferTooSmall { have: 319 })
        );
        assert_eq!(dec.decode(&payload, &mut out), Ok(320));
    }

    #[test]
    fn concealment_continues_the_signal_then_fades() {
        let mut enc = G722Encoder::new();
        let mut dec = G722Decoder::new();
        let input = sine(500.0, PCM_RATE, 12000.0, 10 * 320);
        let mut payload = [0u8; 160];
        let mut frame = [0i16; 320];
        for pcm in input.chunks_exact(320) {
            let n = enc.encode(pcm, &mut payload).expect("encodes");
            dec.decode(&payload[..n], &mut frame).expect("decodes");
        }
        let energy = |f: &[i16]| f.iter().map(|&s| i64::from(s).pow(2)).sum::<i64>();
        let good = energy(&frame);
        let mut lost = [0i16; 320];
        assert_eq!(dec.conceal(&mut lost), Ok(320));
        let first = energy(&lost);
        assert!(first > good / 8 && first < good, "{first} vs {good}");
        for _ in 0..3 {
            dec.conceal(&mut lost).expect("conceals");
        }
        assert_eq!(energy(&lost), 0);
    }
}
