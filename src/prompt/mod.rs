//! Voice prompts played to a phone caller before it joins a room (PIN entry, errors, waiting).
//!
//! The prompts are French and English recordings made at development time by
//! `integration/make-prompts.sh` (espeak-ng, mono PCM16 at 16 kHz) and embedded in the binary.
//! [`PromptPlayer`] turns one into 20 ms frames at the device's PCM rate (8, 16 or 48 kHz),
//! resampling with [`crate::media::resample`].

mod player;
pub mod wav;

use std::time::Duration;

pub use player::{PromptError, PromptPlayer};
use wav::{Wav, WavError};

/// One of the embedded voice prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// "Please enter your meeting PIN, followed by the hash key."
    EnterPin,
    /// "You are the first participant."
    FirstParticipant,
    /// "Too many wrong attempts. Goodbye."
    Goodbye,
    /// "Please wait, you are joining the meeting."
    Joining,
    /// "The meeting has ended."
    MeetingEnded,
    /// "The service is temporarily unavailable. Please call again later." (the PIN directory
    /// could not answer: not the caller's fault, so not "wrong PIN").
    Unavailable,
    /// "Wrong PIN, please try again."
    WrongPin,
}

impl Prompt {
    /// Every prompt.
    pub const ALL: [Self; 7] = [
        Self::EnterPin,
        Self::FirstParticipant,
        Self::Goodbye,
        Self::Joining,
        Self::MeetingEnded,
        Self::Unavailable,
        Self::WrongPin,
    ];

    /// The file stem of the recording (`enter_pin`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Self::EnterPin => "enter_pin",
            Self::FirstParticipant => "first_participant",
            Self::Goodbye => "goodbye",
            Self::Joining => "joining",
            Self::MeetingEnded => "meeting_ended",
            Self::Unavailable => "unavailable",
            Self::WrongPin => "wrong_pin",
        }
    }

    /// The embedded WAV file of this prompt in `lang`.
    pub fn wav_bytes(self, lang: Language) -> &'static [u8] {
        macro_rules! table {
            ($($variant:ident => $file:literal),* $(,)?) => {
                match (lang, self) {
                    $(
                        (Language::En, Self::$variant) => include_bytes!(concat!("audio/en/", $file, ".wav")),
                        (Language::Fr, Self::$variant) => include_bytes!(concat!("audio/fr/", $file, ".wav")),
                    )*
                }
            };
        }
        table! {
            EnterPin => "enter_pin",
            FirstParticipant => "first_participant",
            Goodbye => "goodbye",
            Joining => "joining",
            MeetingEnded => "meeting_ended",
            Unavailable => "unavailable",
            WrongPin => "wrong_pin",
        }
    }

    /// The decoded recording (16 kHz mono).
    pub fn decode(self, lang: Language) -> Result<Wav, WavError> {
        Wav::parse(self.wav_bytes(lang))
    }

    /// Duration of the recording in `lang`.
    pub fn duration(self, lang: Language) -> Duration {
        self.decode(lang).map(|w| w.duration()).unwrap_or_default()
    }
}

/// The language the prompts are spoken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    /// English (the fallback).
    #[default]
    En,
    /// French.
    Fr,
}

impl Language {
    /// Both languages.
    pub const ALL: [Self; 2] = [Self::En, Self::Fr];

    /// The primary language subtag (`en`, `fr`).
    pub const fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Fr => "fr",
        }
    }

    /// The language of a tag (`fr`, `fr-FR`, `EN_us`), if supported.
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        [Self::En, Self::Fr]
            .into_iter()
            .find(|l| primary.eq_ignore_ascii_case(l.code()))
    }

    /// Picks the preferred supported language of an `Accept-Language` header (RFC 9110
    /// §12.5.4): highest q-value first, then header order; `q=0` excludes; English if none.
    pub fn from_accept_language(header: &str) -> Self {
        let mut best: Option<(f32, Self)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Self::from_tag) else {
                continue;
            };
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if !(q > 0.0 && q <= 1.0) {
                continue;
            }
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language() {
        let cases = [
            ("fr-FR", Language::Fr),
            ("fr", Language::Fr),
            ("FR_ca", Language::Fr),
            ("en-US,fr;q=0.5", Language::En),
            ("de, fr;q=0.8, en;q=0.7", Language::Fr),
            ("en;q=0.3, fr-FR;q=0.9", Language::Fr),
            ("fr;q=0, en;q=0.1", Language::En),
            ("fr;q=0", Language::En),
            ("de-DE, it", Language::En),
            ("*", Language::En),
            ("", Language::En),
            ("fr;q=abc", Language::Fr),
            ("fr;q=2, en;q=0.5", Language::En),
            ("en;q=0.5, fr;q=0.5", Language::En),
            (";;,,;q=", Language::En),
        ];
        for (header, want) in cases {
            assert_eq!(Language::from_accept_language(header), want, "{header:?}");
        }
    }

    #[test]
    fn every_prompt_decodes_in_both_languages() {
        for lang in Language::ALL {
            for p in Prompt::ALL {
                let w = p
                    .decode(lang)
                    .unwrap_or_else(|e| panic!("{p:?} {lang:?}: {e}"));
                assert_eq!(w.rate, 16000);
                let d = p.duration(lang);
                assert!(
                    d >= Duration::from_millis(500) && d <= Duration::from_secs(6),
                    "{p:?} {lang:?}: {d:?}"
                );
                // Non-silent: an RMS well above dither, and a loud peak (normalised to -3 dBFS).
                let rms = (w.samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>()
                    / w.samples.len() as f64)
                    .sqrt();
                let peak = w
                    .samples
                    .iter()
                    .map(|s| s.unsigned_abs())
                    .max()
                    .unwrap_or(0);
                assert!(rms > 1000.0, "{p:?} {lang:?}: rms {rms}");
                assert!(peak > 16000, "{p:?} {lang:?}: peak {peak}");
            }
        }
    }

    #[test]
    fn languages_differ() {
        for p in Prompt::ALL {
            assert_ne!(
                p.wav_bytes(Language::En),
                p.wav_bytes(Language::Fr),
                "{p:?}"
            );
        }
    }
}
