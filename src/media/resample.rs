//! Offline sample-rate conversion of a whole mono `i16` buffer by windowed sinc.
//!
//! Meant for short, known buffers (voice prompts) converted once, not for the 20 ms streaming
//! path (which needs none: codecs run at the device rate). Each output sample is the input
//! convolved with a Hann-windowed sinc low-pass whose cut-off sits at 90 % of the lower Nyquist
//! frequency, so downsampling does not alias and upsampling does not image.

use std::f64::consts::PI;

/// Half-width of the filter, in zero crossings of the sinc (taps per side at the lower rate).
const ZERO_CROSSINGS: f64 = 16.0;
/// Cut-off as a fraction of the lower of the two Nyquist frequencies.
const CUTOFF: f64 = 0.9;

/// Converts `input` sampled at `from` Hz to `to` Hz.
///
/// The output has `ceil(input.len() * to / from)` samples. Rates of 0 give an empty output.
pub fn resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == 0 || to == 0 || input.is_empty() {
        return Vec::new();
    }
    if from == to {
        return input.to_vec();
    }
    let (from64, to64) = (u64::from(from), u64::from(to));
    let out_len = (input.len() as u64 * to64).div_ceil(from64);
    // Cut-off in cycles per input sample, relative to the input Nyquist (1.0).
    let cutoff = CUTOFF * (f64::from(to) / f64::from(from)).min(1.0);
    let half = ZERO_CROSSINGS / cutoff;
    let reach = half.ceil() as i64;
    let last = input.len() as i64 - 1;
    (0..out_len)
        .map(|n| {
            // Exact position of output sample n in input samples: n * from / to.
            let pos = n * from64;
            let centre = (pos / to64) as i64;
            let frac = (pos % to64) as f64 / to64 as f64;
            let mut acc = 0.0;
            for k in (centre - reach).max(0)..=(centre + reach).min(last) {
                let d = (k - centre) as f64 - frac;
                if d.abs() >= half {
                    continue;
                }
                let x = cutoff * d;
                let sinc = if x == 0.0 {
                    1.0
                } else {
                    (PI * x).sin() / (PI * x)
                };
                let window = 0.5 * (1.0 + (PI * d / half).cos());
                acc += f64::from(input[k as usize]) * cutoff * sinc * window;
            }
            acc.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_signal::{dominant_frequency, goertzel, sine};

    #[test]
    fn lengths() {
        assert_eq!(resample(&[1; 321], 16000, 8000).len(), 161);
        assert_eq!(resample(&[1; 320], 16000, 48000).len(), 960);
        assert_eq!(resample(&[1; 7], 16000, 16000), vec![1; 7]);
        assert!(resample(&[], 16000, 8000).is_empty());
        assert!(resample(&[1], 0, 8000).is_empty());
    }

    #[test]
    fn tones_keep_their_frequency_and_level() {
        for (from, to) in [(16000, 8000), (16000, 48000), (8000, 48000), (48000, 16000)] {
            let input = sine(1000.0, from, 10000.0, from as usize / 2);
            let out = resample(&input, from, to);
            // Skip the filter's edge effects.
            let mid = &out[out.len() / 4..out.len() * 3 / 4];
            assert_eq!(dominant_frequency(mid, to, 50), 1000, "{from}->{to}");
            let peak = mid.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!((9500..=10500).contains(&peak), "{from}->{to}: peak {peak}");
        }
    }

    #[test]
    fn downsampling_removes_what_cannot_be_represented() {
        // 6 kHz cannot exist at 8 kHz: it must be filtered, not folded to 2 kHz.
        let input = sine(6000.0, 16000, 10000.0, 8000);
        let out = resample(&input, 16000, 8000);
        let mid = &out[1000..3000];
        let reference = goertzel(&sine(2000.0, 8000, 10000.0, 2000), 2000.0, 8000);
        assert!(goertzel(mid, 2000.0, 8000) < reference * 1e-3);
    }
}
