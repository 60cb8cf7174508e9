//! In-band DTMF: the dual tones of ITU-T Q.23 for the sixteen keys, generated as PCM for a caller
//! that wants tones in the audio rather than RFC 4733 events (e.g. a `SipDTMF` sent from the room).
//!
//! ```text
//!            1209 Hz  1336 Hz  1477 Hz  1633 Hz
//!   697 Hz      1        2        3        A
//!   770 Hz      4        5        6        B
//!   852 Hz      7        8        9        C
//!   941 Hz      *        0        #        D
//! ```
//!
//! Each tone is sent at -7 dBFS peak (so the pair peaks just under -1 dBFS, never clipping) with
//! the high group not weaker than the low one (Q.24 allows up to 4 dB of "twist" the other way).
//! The generator keeps its phase across calls to [`ToneGenerator::fill`], so frames join without
//! clicks; a 5 ms ramp opens and [`ToneGenerator::fill_release`] closes the tone.

use std::f64::consts::TAU;

/// A DTMF key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtmfDigit {
    /// `0`.
    D0,
    /// `1`.
    D1,
    /// `2`.
    D2,
    /// `3`.
    D3,
    /// `4`.
    D4,
    /// `5`.
    D5,
    /// `6`.
    D6,
    /// `7`.
    D7,
    /// `8`.
    D8,
    /// `9`.
    D9,
    /// `*`.
    Star,
    /// `#`.
    Hash,
    /// `A`.
    A,
    /// `B`.
    B,
    /// `C`.
    C,
    /// `D`.
    D,
}

const LOW_GROUP: [u32; 4] = [697, 770, 852, 941];
const HIGH_GROUP: [u32; 4] = [1209, 1336, 1477, 1633];

impl DtmfDigit {
    /// Every key, in RFC 4733 event-code order.
    pub const ALL: [DtmfDigit; 16] = [
        DtmfDigit::D0,
        DtmfDigit::D1,
        DtmfDigit::D2,
        DtmfDigit::D3,
        DtmfDigit::D4,
        DtmfDigit::D5,
        DtmfDigit::D6,
        DtmfDigit::D7,
        DtmfDigit::D8,
        DtmfDigit::D9,
        DtmfDigit::Star,
        DtmfDigit::Hash,
        DtmfDigit::A,
        DtmfDigit::B,
        DtmfDigit::C,
        DtmfDigit::D,
    ];

    /// The key for a character: `0`-`9`, `*`, `#`, `A`-`D` (either case).
    pub fn from_char(c: char) -> Option<DtmfDigit> {
        Some(match c.to_ascii_uppercase() {
            d @ '0'..='9' => DtmfDigit::ALL[(d as u8 - b'0') as usize],
            '*' => DtmfDigit::Star,
            '#' => DtmfDigit::Hash,
            'A' => DtmfDigit::A,
            'B' => DtmfDigit::B,
            'C' => DtmfDigit::C,
            'D' => DtmfDigit::D,
            _ => return None,
        })
    }

    /// The key for an RFC 4733 §3.2 event code (0-9, `*` = 10, `#` = 11, A-D = 12-15), which is
    /// also LiveKit's `SipDTMF.code`.
    pub fn from_event_code(code: u32) -> Option<DtmfDigit> {
        DtmfDigit::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// The RFC 4733 event code.
    pub fn event_code(self) -> u8 {
        self as u8
    }

    /// The character of the key.
    pub fn as_char(self) -> char {
        b"0123456789*#ABCD"[self as usize] as char
    }

    /// The (low group, high group) frequencies in Hz (ITU-T Q.23).
    pub fn frequencies(self) -> (u32, u32) {
        // (row, column) in the keypad above.
        let (row, col) = match self {
            DtmfDigit::D1 => (0, 0),
            DtmfDigit::D2 => (0, 1),
            DtmfDigit::D3 => (0, 2),
            DtmfDigit::A => (0, 3),
            DtmfDigit::D4 => (1, 0),
            DtmfDigit::D5 => (1, 1),
            DtmfDigit::D6 => (1, 2),
            DtmfDigit::B => (1, 3),
            DtmfDigit::D7 => (2, 0),
            DtmfDigit::D8 => (2, 1),
            DtmfDigit::D9 => (2, 2),
            DtmfDigit::C => (2, 3),
            DtmfDigit::Star => (3, 0),
            DtmfDigit::D0 => (3, 1),
            DtmfDigit::Hash => (3, 2),
            DtmfDigit::D => (3, 3),
        };
        (LOW_GROUP[row], HIGH_GROUP[col])
    }
}

/// Peak amplitude of each of the two tones: -7 dBFS.
const TONE_AMPLITUDE: f64 = 32767.0 * 0.446_683_6;

/// Length of the opening and closing ramps.
const RAMP_MS: u32 = 5;

/// Generates the dual tone of one key, frame after frame, at one PCM rate.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    digit: DtmfDigit,
    /// Phase increments per sample, radians.
    step: (f64, f64),
    /// Current phases, radians, kept in [0, TAU).
    phase: (f64, f64),
    /// Samples generated so far (drives the opening ramp).
    elapsed: u64,
    ramp_len: u64,
}

impl ToneGenerator {
    /// A generator of `digit` at `pcm_rate` Hz. `None` if the rate cannot carry the high tone
    /// (below 4 kHz).
    pub fn new(digit: DtmfDigit, pcm_rate: u32) -> Option<Self> {
        if pcm_rate < 4000 {
            return None;
        }
        let (low, high) = digit.frequencies();
        let rate = f64::from(pcm_rate);
        Some(Self {
            digit,
            step: (TAU * f64::from(low) / rate, TAU * f64::from(high) / rate),
            phase: (0.0, 0.0),
            elapsed: 0,
            ramp_len: u64::from(pcm_rate / 1000 * RAMP_MS).max(1),
        })
    }

    /// The key being generated.
    pub fn digit(&self) -> DtmfDigit {
        self.digit
    }

    fn next_sample(&mut self) -> f64 {
        let v = TONE_AMPLITUDE * (self.phase.0.sin() + self.phase.1.sin());
        self.phase.0 = (self.phase.0 + self.step.0) % TAU;
        self.phase.1 = (self.phase.1 + self.step.1) % TAU;
        self.elapsed += 1;
        v
    }

    /// Fills `out` with the next samples of the tone (the first 5 ms ramp up from silence).
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out {
            let gain = (self.elapsed as f64 / self.ramp_len as f64).min(1.0);
            *s = (gain * self.next_sample()).round() as i16;
        }
    }

    /// Fills `out` with the end of the tone: the next samples, ramping down to silence over the
    /// first 5 ms of `out`, then silence.
    pub fn fill_release(&mut self, out: &mut [i16]) {
        let ramp = self.ramp_len as f64;
        for (i, s) in out.iter_mut().enumerate() {
            let gain = (1.0 - i as f64 / ramp).max(0.0);
            *s = (gain * self.next_sample()).round() as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_signal::goertzel;

    #[test]
    fn every_key_has_its_two_tones_and_no_other() {
        for rate in [8000, 16000, 48000] {
            for digit in DtmfDigit::ALL {
                let mut tone = ToneGenerator::new(digit, rate).expect("rate");
                let mut pcm = vec![0i16; rate as usize / 20]; // 50 ms
                tone.fill(&mut pcm);
                tone.fill(&mut pcm); // the second frame, past the ramp
                let (low, high) = digit.frequencies();
                let power = |f: u32| goertzel(&pcm, f64::from(f), rate);
                let others = LOW_GROUP
                    .iter()
                    .chain(&HIGH_GROUP)
                    .filter(|&&f| f != low && f != high)
                    .map(|&f| power(f))
                    .fold(0.0, f64::max);
                for f in [low, high] {
                    assert!(
                        power(f) > 100.0 * others,
                        "{digit:?} at {rate} Hz: {f} Hz {:.0} vs others {others:.0}",
                        power(f)
                    );
                }
                // Equal levels: no twist.
                let twist_db = 10.0 * (power(high) / power(low)).log10();
                assert!(
                    twist_db.abs() < 1.0,
                    "{digit:?} at {rate}: twist {twist_db:.2} dB"
                );
                // Loud, never clipped.
                let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
                assert!((25000..32767).contains(&peak), "{digit:?}: peak {peak}");
            }
        }
    }

    #[test]
    fn frames_join_without_a_click() {
        let mut tone = ToneGenerator::new(DtmfDigit::D5, 8000).expect("rate");
        let mut whole = vec![0i16; 800];
        for chunk in whole.chunks_mut(160) {
            tone.fill(chunk);
        }
        let mut again = ToneGenerator::new(DtmfDigit::D5, 8000).expect("rate");
        let mut reference = vec![0i16; 800];
        again.fill(&mut reference);
        assert_eq!(whole, reference);
    }

    #[test]
    fn ramps_open_and_close() {
        let mut tone = ToneGenerator::new(DtmfDigit::Hash, 8000).expect("rate");
        let mut pcm = [0i16; 160];
        tone.fill(&mut pcm);
        assert_eq!(pcm[0], 0);
        assert!(pcm[..10].iter().all(|s| s.unsigned_abs() < 8000));
        tone.fill_release(&mut pcm);
        assert!(pcm[40..].iter().all(|&s| s == 0), "silent after 5 ms");
        assert!(pcm[..20].iter().any(|s| s.unsigned_abs() > 4000));
    }

    #[test]
    fn keys_by_char_and_event_code() {
        for (code, c) in "0123456789*#ABCD".chars().enumerate() {
            let digit = DtmfDigit::from_char(c).expect("key");
            assert_eq!(DtmfDigit::from_event_code(code as u32), Some(digit));
            assert_eq!(usize::from(digit.event_code()), code);
            assert_eq!(digit.as_char(), c);
        }
        assert_eq!(DtmfDigit::from_char('a'), Some(DtmfDigit::A));
        assert_eq!(DtmfDigit::from_char('E'), None);
        assert_eq!(DtmfDigit::from_event_code(16), None);
        assert_eq!(DtmfDigit::Star.frequencies(), (941, 1209));
        assert_eq!(DtmfDigit::D0.frequencies(), (941, 1336));
        assert!(ToneGenerator::new(DtmfDigit::D1, 2000).is_none());
    }
}
