//! Test signals and measurements shared by the media tests: sines, SNR after delay alignment,
//! Goertzel power, and a small deterministic random generator.

/// `n` samples of a sine of `freq` Hz and peak `amplitude` at `rate` Hz.
pub(crate) fn sine(freq: f64, rate: u32, amplitude: f64, n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
        })
        .collect()
}

/// The lag (0..=max_lag) at which `degraded` best matches `reference`, by cross-correlation.
pub(crate) fn best_lag(reference: &[i16], degraded: &[i16], max_lag: usize) -> usize {
    (0..=max_lag)
        .max_by(|&a, &b| {
            let corr = |lag: usize| -> f64 {
                reference
                    .iter()
                    .zip(degraded.iter().skip(lag))
                    .map(|(&r, &d)| f64::from(r) * f64::from(d))
                    .sum()
            };
            corr(a).total_cmp(&corr(b))
        })
        .unwrap_or(0)
}

/// Signal-to-noise ratio, in dB, of `degraded` against `reference` (already aligned).
pub(crate) fn snr_db(reference: &[i16], degraded: &[i16]) -> f64 {
    let (mut signal, mut noise) = (0f64, 0f64);
    for (&r, &d) in reference.iter().zip(degraded) {
        signal += f64::from(r).powi(2);
        noise += (f64::from(r) - f64::from(d)).powi(2);
    }
    10.0 * (signal / noise.max(1e-9)).log10()
}

/// The power of `freq` Hz in `samples` (Goertzel), normalised by the length.
pub(crate) fn goertzel(samples: &[i16], freq: f64, rate: u32) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (samples.len() as f64).powi(2)
}

/// The frequency, on a grid of `step` Hz below `rate / 2`, with the most power in `samples`.
pub(crate) fn dominant_frequency(samples: &[i16], rate: u32, step: u32) -> u32 {
    (1..)
        .map(|k| k * step)
        .take_while(|&f| f < rate / 2)
        .max_by(|&a, &b| {
            goertzel(samples, f64::from(a), rate).total_cmp(&goertzel(samples, f64::from(b), rate))
        })
        .unwrap_or(0)
}

/// A xorshift64 generator: deterministic noise and random payloads for tests.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}
