//! A small fixed-bucket histogram of forwarding latency (datagram in → datagram out), in
//! microseconds, cheap enough to record every forwarded packet.

use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket is open).
pub const BUCKETS_US: [u64; 16] = [
    10,
    20,
    50,
    100,
    200,
    300,
    500,
    750,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    u64::MAX,
];

/// Counts per bucket, with the sum for a mean.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: [u64; 16],
    sum_us: u64,
}

impl Histogram {
    /// Records one sample.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(15);
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of samples in microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us
    }

    /// Cumulative counts per bucket bound (Prometheus `le` buckets).
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut acc = 0;
        BUCKETS_US
            .iter()
            .zip(self.counts.iter())
            .map(move |(b, c)| {
                acc += c;
                (*b, acc)
            })
    }

    /// The upper bound of the bucket holding quantile `q` (0..=1), in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let n = self.count();
        if n == 0 {
            return 0;
        }
        let rank = ((n as f64) * q).ceil().max(1.0) as u64;
        self.cumulative()
            .find(|(_, c)| *c >= rank)
            .map(|(b, _)| b)
            .unwrap_or(u64::MAX)
    }
}

/// A [`Histogram`] many tasks record into (relaxed atomics: a sample costs two additions).
#[derive(Debug)]
pub struct SharedHistogram {
    counts: [std::sync::atomic::AtomicU64; 16],
    sum_us: std::sync::atomic::AtomicU64,
}

impl SharedHistogram {
    /// An empty histogram (usable in a `static`).
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            counts: [ZERO; 16],
            sum_us: ZERO,
        }
    }

    /// Records one sample.
    pub fn record(&self, d: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(15);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// A copy of the counts so far.
    pub fn snapshot(&self) -> Histogram {
        use std::sync::atomic::Ordering::Relaxed;
        let mut h = Histogram::default();
        for (c, a) in h.counts.iter_mut().zip(self.counts.iter()) {
            *c = a.load(Relaxed);
        }
        h.sum_us = self.sum_us.load(Relaxed);
        h
    }
}

impl Default for SharedHistogram {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(15));
        }
        h.record(Duration::from_micros(400));
        h.record(Duration::from_millis(3));
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile_us(0.5), 20);
        assert_eq!(h.quantile_us(0.99), 500);
        assert_eq!(h.quantile_us(1.0), 5_000);
        assert_eq!(Histogram::default().quantile_us(0.99), 0);
    }
}
