//! Plays one prompt as successive 20 ms frames at the device's PCM rate.

use std::time::Duration;

use super::wav::WavError;
use super::{Language, Prompt};
use crate::media::resample::resample;

/// Frame duration of the player, in milliseconds.
pub const FRAME_MS: u32 = 20;

/// Why a player could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PromptError {
    /// The output rate is not one of 8000, 16000 or 48000 Hz.
    #[error("unsupported output rate {0} Hz")]
    UnsupportedRate(u32),
    /// The embedded recording is broken (a build defect).
    #[error("bad prompt recording: {0}")]
    Wav(#[from] WavError),
}

/// Yields a prompt as 20 ms mono `i16` frames at 8, 16 or 48 kHz; the last frame is padded
/// with silence.
///
/// The whole prompt is resampled up front (a few seconds of audio), so [`Self::next_frame`]
/// only copies.
#[derive(Debug, Clone)]
pub struct PromptPlayer {
    samples: Vec<i16>,
    rate: u32,
    pos: usize,
    source_duration: Duration,
}

impl PromptPlayer {
    /// A player for `prompt` in `lang` at `rate` Hz.
    pub fn new(prompt: Prompt, lang: Language, rate: u32) -> Result<Self, PromptError> {
        Self::check_rate(rate)?;
        let wav = prompt.decode(lang)?;
        Ok(Self::from_pcm(&wav.samples, wav.rate, rate))
    }

    /// A player for arbitrary mono PCM at `source_rate`, played at `rate` (any non-zero rates).
    pub fn from_pcm(samples: &[i16], source_rate: u32, rate: u32) -> Self {
        let mut out = resample(samples, source_rate, rate);
        let frame = Self::frame_len_at(rate);
        if frame > 0 {
            out.resize(out.len().div_ceil(frame) * frame, 0);
        }
        let source_duration = if source_rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(samples.len() as f64 / f64::from(source_rate))
        };
        Self {
            samples: out,
            rate,
            pos: 0,
            source_duration,
        }
    }

    /// The next 20 ms frame, or `None` when the prompt is over.
    pub fn next_frame(&mut self) -> Option<&[i16]> {
        let frame = self.frame_len();
        let start = self.pos;
        let end = start.checked_add(frame)?;
        let out = self.samples.get(start..end)?;
        if frame == 0 {
            return None;
        }
        self.pos = end;
        Some(out)
    }

    /// Stops playing (barge-in: the caller started typing).
    pub fn stop(&mut self) {
        self.pos = self.samples.len();
    }

    /// Whether every frame has been returned.
    pub fn is_finished(&self) -> bool {
        self.pos >= self.samples.len()
    }

    /// Duration of the recording (before padding to whole frames).
    pub fn duration(&self) -> Duration {
        self.source_duration
    }

    /// Number of frames in the whole prompt.
    pub fn frame_count(&self) -> usize {
        self.samples
            .len()
            .checked_div(self.frame_len())
            .unwrap_or(0)
    }

    /// Output rate in Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples per frame at the output rate.
    pub fn frame_len(&self) -> usize {
        Self::frame_len_at(self.rate)
    }

    fn frame_len_at(rate: u32) -> usize {
        (rate / (1000 / FRAME_MS)) as usize
    }

    fn check_rate(rate: u32) -> Result<(), PromptError> {
        match rate {
            8000 | 16000 | 48000 => Ok(()),
            _ => Err(PromptError::UnsupportedRate(rate)),
        }
    }
}

impl Iterator for PromptPlayer {
    type Item = Vec<i16>;

    fn next(&mut self) -> Option<Vec<i16>> {
        self.next_frame().map(<[i16]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_signal::{dominant_frequency, sine};

    #[test]
    fn frame_count_matches_duration_at_each_rate() {
        for lang in Language::ALL {
            for p in Prompt::ALL {
                for rate in [8000, 16000, 48000] {
                    let mut player = PromptPlayer::new(p, lang, rate).unwrap();
                    let want = (player.duration().as_secs_f64() * 1000.0 / f64::from(FRAME_MS))
                        .ceil() as usize;
                    let expected_len = rate as usize / 50;
                    let mut n = 0;
                    while let Some(f) = player.next_frame() {
                        assert_eq!(f.len(), expected_len);
                        n += 1;
                    }
                    assert!(player.is_finished());
                    assert_eq!(n, want, "{p:?} {lang:?} {rate}");
                    assert_eq!(player.frame_count(), want);
                }
            }
        }
    }

    #[test]
    fn resampled_tone_keeps_its_frequency() {
        let tone = sine(440.0, 16000, 8000.0, 16000);
        for rate in [8000, 16000, 48000] {
            let frames: Vec<i16> = PromptPlayer::from_pcm(&tone, 16000, rate)
                .flatten()
                .collect();
            let mid = &frames[frames.len() / 4..frames.len() / 2];
            assert_eq!(dominant_frequency(mid, rate, 10), 440, "{rate}");
        }
    }

    #[test]
    fn rejects_odd_rates_and_stops() {
        assert_eq!(
            PromptPlayer::new(Prompt::Goodbye, Language::En, 44100).err(),
            Some(PromptError::UnsupportedRate(44100))
        );
        let mut p = PromptPlayer::new(Prompt::Goodbye, Language::Fr, 8000).unwrap();
        assert!(!p.is_finished());
        assert!(p.next_frame().is_some());
        p.stop();
        assert!(p.is_finished());
        assert!(p.next_frame().is_none());
        assert!(PromptPlayer::from_pcm(&[1, 2], 16000, 0)
            .next_frame()
            .is_none());
    }
}
