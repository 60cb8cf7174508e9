//! A small RIFF/WAVE reader for the embedded prompts: PCM, 16-bit, mono only.
//!
//! Chunks are walked by their declared sizes (padded to even, as RIFF requires); unknown chunks
//! (`LIST`, `fact`, ...) are skipped. Anything else than PCM16 mono is rejected, never guessed.

/// Why a WAV file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WavError {
    /// The file does not start with `RIFF....WAVE`.
    #[error("not a RIFF/WAVE file")]
    NotWave,
    /// A chunk header or body runs past the end of the file.
    #[error("truncated chunk {0:?}")]
    Truncated(String),
    /// No `fmt ` chunk before the `data` chunk.
    #[error("missing fmt chunk")]
    MissingFormat,
    /// No `data` chunk.
    #[error("missing data chunk")]
    MissingData,
    /// Not PCM, not 16-bit, not mono, or an inconsistent header.
    #[error("unsupported format: tag {tag:#06x}, {channels} channel(s), {bits} bits")]
    Unsupported {
        /// `wFormatTag` (`0x0001` is PCM).
        tag: u16,
        /// Channel count.
        channels: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// A sample rate of zero or above 192 kHz.
    #[error("invalid sample rate {0}")]
    InvalidRate(u32),
}

/// Decoded PCM: mono `i16` samples at `rate` Hz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Sample rate in Hz.
    pub rate: u32,
    /// Mono samples.
    pub samples: Vec<i16>,
}

impl Wav {
    /// Parses a PCM16 mono WAV file.
    pub fn parse(bytes: &[u8]) -> Result<Self, WavError> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(WavError::NotWave);
        }
        // The RIFF size may be wrong (streamed writers leave 0 or 0xFFFFFFFF): walk the bytes.
        let mut rest = &bytes[12..];
        let mut rate = None;
        while rest.len() >= 8 {
            let id = &rest[0..4];
            let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
            let name = || String::from_utf8_lossy(id).into_owned();
            let body = rest.get(8..8usize.saturating_add(size));
            match id {
                b"fmt " => {
                    let body = body.ok_or_else(|| WavError::Truncated(name()))?;
                    rate = Some(parse_format(body)?);
                }
                b"data" => {
                    let rate = rate.ok_or(WavError::MissingFormat)?;
                    let body = body.ok_or_else(|| WavError::Truncated(name()))?;
                    let samples = body
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect();
                    return Ok(Self { rate, samples });
                }
                _ => {}
            }
            let skip = 8usize.saturating_add(size).saturating_add(size & 1);
            rest = rest.get(skip..).unwrap_or_default();
        }
        Err(WavError::MissingData)
    }

    /// Duration of the samples.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.rate))
    }
}

/// Checks a `fmt ` chunk body and returns its sample rate.
fn parse_format(body: &[u8]) -> Result<u32, WavError> {
    if body.len() < 16 {
        return Err(WavError::Truncated("fmt ".into()));
    }
    let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
    let block_align = u16_at(12);
    let bits = u16_at(14);
    // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
    if tag == 0xfffe && body.len() >= 26 {
        tag = u16_at(24);
    }
    if tag != 0x0001 || channels != 1 || bits != 16 || block_align != 2 {
        return Err(WavError::Unsupported {
            tag,
            channels,
            bits,
        });
    }
    if rate == 0 || rate > 192_000 {
        return Err(WavError::InvalidRate(rate));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canonical 44-byte-header WAV with the given format fields.
    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(channels) * u32::from(bits) / 8).to_le_bytes());
        v.extend_from_slice(&(channels * bits / 8).to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_pcm16_mono() {
        let w = Wav::parse(&wav(1, 1, 16000, 16, &[1, 0, 0xff, 0xff, 0, 0x80])).unwrap();
        assert_eq!(w.rate, 16000);
        assert_eq!(w.samples, vec![1, -1, i16::MIN]);
    }

    #[test]
    fn skips_unknown_and_odd_chunks() {
        let base = wav(1, 1, 8000, 16, &[2, 0]);
        // Insert an odd-sized LIST chunk (plus its pad byte) between fmt and data.
        let mut v = base[..36].to_vec();
        v.extend_from_slice(b"LIST");
        v.extend_from_slice(&3u32.to_le_bytes());
        v.extend_from_slice(&[9, 9, 9, 0]);
        v.extend_from_slice(&base[36..]);
        assert_eq!(Wav::parse(&v).unwrap().samples, vec![2]);
    }

    #[test]
    fn rejects_other_formats() {
        for (tag, ch, bits) in [(3, 1, 32), (1, 2, 16), (1, 1, 8), (6, 1, 8)] {
            assert!(matches!(
                Wav::parse(&wav(tag, ch, 8000, bits, &[0; 8])),
                Err(WavError::Unsupported { .. })
            ));
        }
        assert_eq!(
            Wav::parse(&wav(1, 1, 0, 16, &[0; 2])),
            Err(WavError::InvalidRate(0))
        );
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(Wav::parse(b""), Err(WavError::NotWave));
        assert_eq!(Wav::parse(b"RIFF\0\0\0\0WAVX"), Err(WavError::NotWave));
        assert_eq!(Wav::parse(b"RIFF\0\0\0\0WAVE"), Err(WavError::MissingData));
        let good = wav(1, 1, 8000, 16, &[0; 8]);
        // Data chunk claims more bytes than present.
        assert!(matches!(
            Wav::parse(&good[..good.len() - 2]),
            Err(WavError::Truncated(_))
        ));
        // fmt chunk cut short.
        assert!(matches!(
            Wav::parse(&good[..30]),
            Err(WavError::Truncated(_))
        ));
        // data before fmt.
        let mut v = b"RIFF\0\0\0\0WAVEdata\x02\0\0\0\0\0".to_vec();
        v.extend_from_slice(&good[12..36]);
        assert_eq!(Wav::parse(&v), Err(WavError::MissingFormat));
        // Huge chunk size must not overflow.
        let mut v = b"RIFF\0\0\0\0WAVEjunk\xff\xff\xff\xff".to_vec();
        v.extend_from_slice(&good[12..]);
        assert_eq!(Wav::parse(&v), Err(WavError::MissingData));
    }

    #[test]
    fn never_panics_on_truncations_of_a_valid_file() {
        let good = wav(1, 1, 8000, 16, &[1, 2, 3, 4, 5, 6]);
        for n in 0..good.len() {
            let _ = Wav::parse(&good[..n]);
        }
    }
}
