//! Brute-force guard for PIN entry, sans-IO (time comes in as `now`).
//!
//! `max_failures` wrong PINs from one source within `window` refuse that source for
//! `cool_down`. Sources are IPv4 addresses and IPv6 /64 prefixes (one host usually owns a whole
//! /64, so counting single v6 addresses would be trivially bypassed); IPv4-mapped IPv6 counts
//! as IPv4. Memory is bounded: at `capacity` sources, expired entries are purged, then the
//! least recently seen is evicted, sources under cool-down last (so that a flood of new
//! addresses cannot lift a ban).
//!
//! Calls that come through a SIP trunk or proxy all carry its address: charging their failures
//! to that address would let one attacker lock every PSTN caller out. For such trusted
//! addresses, charge the caller's number instead ([`GuardKey::caller`]); the deployment decides
//! which addresses are trunks.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Tunables of the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// Wrong PINs within `window` that trigger the cool-down.
    pub max_failures: u32,
    /// Sliding window over which failures are counted.
    pub window: Duration,
    /// How long a source stays refused.
    pub cool_down: Duration,
    /// Most sources remembered.
    pub capacity: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::from_secs(10 * 60),
            cool_down: Duration::from_secs(15 * 60),
            capacity: 10_000,
        }
    }
}

/// Whether a source may try a PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It may.
    Allowed,
    /// It may not until then.
    Refused {
        /// End of the cool-down.
        until: Instant,
    },
}

/// Who wrong PINs are charged to. An [`IpAddr`] converts into its address key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GuardKey {
    /// A caller number behind a trusted trunk or proxy address.
    Caller {
        /// The trunk's address.
        trunk: IpAddr,
        /// The caller's number, as signalled.
        number: String,
    },
    /// An IPv4 address (IPv4-mapped IPv6 included).
    V4(Ipv4Addr),
    /// An IPv6 /64 prefix (the upper 64 bits of the address).
    V6Prefix(u64),
}

impl GuardKey {
    /// The key of `number` calling through the trusted trunk or proxy at `trunk`.
    pub fn caller(trunk: IpAddr, number: &str) -> Self {
        Self::Caller {
            trunk,
            number: number.to_owned(),
        }
    }
}

impl From<IpAddr> for GuardKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4),
                None => Self::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// Times of the latest failures, at most `max_failures`.
    failures: VecDeque<Instant>,
    refused_until: Option<Instant>,
    last_seen: Instant,
}

impl Entry {
    /// Whether the entry holds nothing that still matters at `now`.
    fn is_expired(&self, now: Instant, window: Duration) -> bool {
        self.refused_until.is_none_or(|t| t <= now)
            && self.failures.back().is_none_or(|&t| t + window <= now)
    }
}

/// Counts wrong PINs per source and refuses sources that try too many.
#[derive(Debug)]
pub struct BruteForceGuard {
    config: GuardConfig,
    sources: HashMap<GuardKey, Entry>,
}

impl BruteForceGuard {
    /// An empty guard.
    pub fn new(config: GuardConfig) -> Self {
        Self {
            config,
            sources: HashMap::new(),
        }
    }

    /// Records a wrong PIN from `source` at `now`; returns whether `source` may go on.
    pub fn record_failure(&mut self, now: Instant, source: impl Into<GuardKey>) -> Verdict {
        let source = source.into();
        if !self.sources.contains_key(&source) {
            self.make_room(now);
        }
        let config = &self.config;
        let entry = self.sources.entry(source.clone()).or_insert_with(|| Entry {
            failures: VecDeque::new(),
            refused_until: None,
            last_seen: now,
        });
        entry.last_seen = entry.last_seen.max(now);
        entry.failures.push_back(now);
        while entry.failures.len() > config.max_failures as usize
            || entry
                .failures
                .front()
                .is_some_and(|&t| t + config.window <= now)
        {
            entry.failures.pop_front();
        }
        if entry.failures.len() >= config.max_failures as usize {
            let until = now + config.cool_down;
            entry.refused_until = Some(until);
            entry.failures.clear();
            warn!(?source, "too many wrong PINs: source refused");
            return Verdict::Refused { until };
        }
        Self::verdict(entry, now)
    }

    /// A correct PIN from `source`: forgets its failures (not an active cool-down).
    pub fn record_success(&mut self, source: impl Into<GuardKey>) {
        if let Some(entry) = self.sources.get_mut(&source.into()) {
            entry.failures.clear();
        }
    }

    /// Whether `source` may try a PIN at `now`.
    pub fn check(&self, now: Instant, source: impl Into<GuardKey>) -> Verdict {
        self.sources
            .get(&source.into())
            .map_or(Verdict::Allowed, |e| Self::verdict(e, now))
    }

    /// Forgets every entry that no longer matters at `now` (call now and then).
    pub fn purge(&mut self, now: Instant) {
        let window = self.config.window;
        self.sources.retain(|_, e| !e.is_expired(now, window));
    }

    /// Sources remembered.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    fn verdict(entry: &Entry, now: Instant) -> Verdict {
        match entry.refused_until {
            Some(until) if until > now => Verdict::Refused { until },
            _ => Verdict::Allowed,
        }
    }

    /// Makes room for one more source.
    fn make_room(&mut self, now: Instant) {
        if self.sources.len() < self.config.capacity.max(1) {
            return;
        }
        self.purge(now);
        while self.sources.len() >= self.config.capacity.max(1) {
            let oldest = self
                .sources
                .iter()
                .min_by_key(|(_, e)| (e.refused_until.is_some_and(|t| t > now), e.last_seen))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.sources.remove(&k),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn cfg() -> GuardConfig {
        GuardConfig {
            max_failures: 3,
            window: 60 * S,
            cool_down: 300 * S,
            capacity: 4,
        }
    }

    fn v4(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    #[test]
    fn refuses_after_n_failures_within_window_then_cools_down() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(cfg());
        assert_eq!(g.record_failure(t0, v4(1)), Verdict::Allowed);
        assert_eq!(g.record_failure(t0 + S, v4(1)), Verdict::Allowed);
        let refused = Verdict::Refused {
            until: t0 + 302 * S,
        };
        assert_eq!(g.record_failure(t0 + 2 * S, v4(1)), refused);
        assert_eq!(g.check(t0 + 100 * S, v4(1)), refused);
        assert_eq!(g.check(t0 + 100 * S, v4(2)), Verdict::Allowed);
        assert_eq!(g.check(t0 + 302 * S, v4(1)), Verdict::Allowed);
        // A success does not lift a cool-down.
        g.record_success(v4(1));
        assert_eq!(g.check(t0 + 10 * S, v4(1)), refused);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(cfg());
        for i in 0..10 {
            assert_eq!(g.record_failure(t0 + i * 31 * S, v4(1)), Verdict::Allowed);
        }
    }

    #[test]
    fn success_resets_failures() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(cfg());
        g.record_failure(t0, v4(1));
        g.record_failure(t0, v4(1));
        g.record_success(v4(1));
        assert_eq!(g.record_failure(t0, v4(1)), Verdict::Allowed);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(cfg());
        for host in 1..=3u16 {
            g.record_failure(
                t0,
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, host)),
            );
        }
        let other_host = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9));
        let other_net = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert!(matches!(g.check(t0, other_host), Verdict::Refused { .. }));
        assert_eq!(g.check(t0, other_net), Verdict::Allowed);
        for _ in 0..3 {
            g.record_failure(t0, v4(7));
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert!(matches!(g.check(t0, mapped), Verdict::Refused { .. }));
    }

    #[test]
    fn callers_behind_a_trunk_are_counted_apart() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(cfg());
        let trunk = v4(100);
        for _ in 0..3 {
            g.record_failure(t0, GuardKey::caller(trunk, "+33100000001"));
        }
        let attacker = GuardKey::caller(trunk, "+33100000001");
        assert!(matches!(g.check(t0, attacker), Verdict::Refused { .. }));
        assert_eq!(
            g.check(t0, GuardKey::caller(trunk, "+33100000002")),
            Verdict::Allowed
        );
        assert_eq!(g.check(t0, trunk), Verdict::Allowed, "the trunk stays open");
        assert_eq!(
            g.check(t0, GuardKey::caller(v4(101), "+33100000001")),
            Verdict::Allowed
        );
    }

    #[test]
    fn memory_is_bounded_and_oldest_is_evicted() {
        let t0 = Instant::now();
        let mut g = BruteForceGuard::new(cfg());
        for n in 0..=255u8 {
            g.record_failure(t0 + u32::from(n) * S / 1000, v4(n));
            assert!(g.len() <= 4);
        }
        // The most recent sources survive, the oldest went.
        g.record_failure(t0 + S, v4(255));
        g.record_failure(t0 + S, v4(255));
        assert!(matches!(g.check(t0 + S, v4(255)), Verdict::Refused { .. }));
        assert_eq!(g.len(), 4);
        // A flood of new sources evicts the others before a refused one.
        for n in 0..=254u8 {
            g.record_failure(t0 + 2 * S, v4(n));
        }
        assert!(matches!(
            g.check(t0 + 2 * S, v4(255)),
            Verdict::Refused { .. }
        ));
        // Expired entries are purged first.
        g.purge(t0 + 1000 * S);
        assert!(g.is_empty());
    }
}
