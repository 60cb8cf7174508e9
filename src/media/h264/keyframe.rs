//! Keyframe request rate limiting: PLI/FIR toward a source at most once per interval, so that
//! many waiting receivers (or a burst of losses) do not make an encoder send IDR after IDR.

use std::time::{Duration, Instant};

use crate::media::rtp::Ssrc;

/// Remembers when each source was last asked for a keyframe.
#[derive(Debug, Clone)]
pub struct KeyframeLimiter {
    min_interval: Duration,
    last: Vec<(Ssrc, Instant)>,
}

/// Sources remembered at most; the oldest request is forgotten first.
const MAX_SOURCES: usize = 32;

impl KeyframeLimiter {
    /// A limiter allowing one request per source per `min_interval` (500 ms is usual).
    pub fn new(min_interval: Duration) -> Self {
        KeyframeLimiter {
            min_interval,
            last: Vec::new(),
        }
    }

    /// Whether a request to `ssrc` may go out now; if so, it is recorded as sent.
    pub fn allow(&mut self, now: Instant, ssrc: Ssrc) -> bool {
        if let Some(entry) = self.last.iter_mut().find(|(s, _)| *s == ssrc) {
            if now.saturating_duration_since(entry.1) < self.min_interval {
                return false;
            }
            entry.1 = now;
            return true;
        }
        if self.last.len() >= MAX_SOURCES {
            if let Some(oldest) = (0..self.last.len()).min_by_key(|&i| self.last[i].1) {
                self.last.swap_remove(oldest);
            }
        }
        self.last.push((ssrc, now));
        true
    }

    /// The earliest instant a request to `ssrc` will be allowed (`now` if already).
    pub fn next_allowed(&self, now: Instant, ssrc: Ssrc) -> Instant {
        self.last
            .iter()
            .find(|(s, _)| *s == ssrc)
            .map_or(now, |&(_, at)| (at + self.min_interval).max(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval_per_source() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut l = KeyframeLimiter::new(ms(500));
        assert!(l.allow(t0, Ssrc(1)));
        assert!(!l.allow(t0 + ms(100), Ssrc(1)));
        assert!(l.allow(t0 + ms(100), Ssrc(2)));
        assert_eq!(l.next_allowed(t0 + ms(200), Ssrc(1)), t0 + ms(500));
        assert!(!l.allow(t0 + ms(499), Ssrc(1)));
        assert!(l.allow(t0 + ms(500), Ssrc(1)));
        for i in 0..100 {
            assert!(l.allow(t0, Ssrc(100 + i)));
        }
        assert!(l.last.len() <= MAX_SOURCES);
    }
}
