//! Receiver statistics (RFC 3550 A.3 loss, A.8 interarrival jitter, §6.4.1 round-trip time
//! from LSR/DLSR), the NTP wallclock mapping for sender reports, and the RTCP report
//! scheduler (RFC 3550 §6.2 and §6.3.5, simplified to a fixed 5 s interval randomised by
//! 0.5–1.5).

use std::time::{Duration, Instant};

use super::rtcp::{ReportBlock, SenderReport};
use super::seq::{SeqOutcome, SequenceTracker};
use super::Ssrc;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Maps the caller's monotonic `Instant`s to 64-bit NTP wallclock timestamps.
///
/// Cores do not read the clock: the shell reads the wallclock once and passes it in.
#[derive(Debug, Clone, Copy)]
pub struct NtpClock {
    base: Instant,
    base_ntp: u64,
}

impl NtpClock {
    /// `since_unix_epoch` is the wallclock at the instant `base`.
    pub fn new(base: Instant, since_unix_epoch: Duration) -> Self {
        NtpClock {
            base,
            base_ntp: duration_to_ntp(since_unix_epoch + Duration::from_secs(NTP_UNIX_OFFSET)),
        }
    }

    /// The NTP timestamp (32.32 fixed point seconds since 1900) at `now`.
    pub fn ntp(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.base);
        self.base_ntp.wrapping_add(duration_to_ntp(elapsed))
    }
}

/// The middle 32 bits of an NTP timestamp (16.16 fixed point), as used by LSR and RTT.
pub fn ntp_compact(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

fn duration_to_ntp(d: Duration) -> u64 {
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (d.as_secs() << 32) | frac
}

fn compact_to_duration(v: u32) -> Duration {
    Duration::from_nanos((u64::from(v) * 1_000_000_000) >> 16)
}

fn duration_to_compact(d: Duration) -> u32 {
    let v = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Round-trip time from a report block about our stream, received when our NTP clock read
/// `arrival_ntp` (RFC 3550 §6.4.1: `A - LSR - DLSR`).
///
/// `None` when the peer has not received an SR from us yet (LSR = 0) or the result is
/// negative (clock glitch or a stale block).
pub fn rtt(arrival_ntp: u64, block: &ReportBlock) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let rtt = ntp_compact(arrival_ntp)
        .wrapping_sub(block.last_sr)
        .wrapping_sub(block.delay_since_last_sr);
    (rtt < 0x8000_0000).then(|| compact_to_duration(rtt))
}

// === impl ReceiverStats ===

/// Statistics of one received RTP source, producing its RTCP report block.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    clock_rate: u32,
    seq: SequenceTracker,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Previous relative transit time, in timestamp units (wrapping).
    transit: Option<u32>,
    /// Interarrival jitter in timestamp units, times 16 (RFC 3550 A.8, integer form).
    jitter_q4: u32,
    epoch: Option<Instant>,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// Statistics for a source with this RTP clock rate (Hz).
    pub fn new(clock_rate: u32) -> Self {
        ReceiverStats {
            clock_rate: clock_rate.max(1),
            seq: SequenceTracker::new(),
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            epoch: None,
            last_sr: None,
        }
    }

    /// Accounts for one received packet and returns the sequence verdict.
    pub fn handle_rtp(&mut self, now: Instant, seq: u16, timestamp: u32) -> SeqOutcome {
        let outcome = self.seq.update(seq);
        match outcome {
            SeqOutcome::Invalid => return outcome,
            SeqOutcome::Restarted { .. } => {
                self.received = 0;
                self.expected_prior = 0;
                self.received_prior = 0;
                self.transit = None;
            }
            _ => {}
        }
        self.received += 1;

        // A.8: the arrival clock only needs a fixed origin; wrapping arithmetic cancels it.
        let epoch = *self.epoch.get_or_insert(now);
        let elapsed = now.saturating_duration_since(epoch);
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            let d = (transit.wrapping_sub(prev) as i32).unsigned_abs();
            // J += (|D| - J) / 16, kept in 1/16 units.
            self.jitter_q4 = self
                .jitter_q4
                .saturating_add(d)
                .saturating_sub(self.jitter_q4.saturating_add(8) >> 4);
        }
        self.transit = Some(transit);
        outcome
    }

    /// Records a sender report from this source, for LSR/DLSR.
    pub fn handle_sender_report(&mut self, now: Instant, sr: &SenderReport) {
        self.last_sr = Some((ntp_compact(sr.ntp_time), now));
    }

    /// Packets received (including duplicates, as RFC 3550 A.3 counts them).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected from the sequence numbers seen.
    pub fn expected(&self) -> u64 {
        if self.received == 0 {
            return 0;
        }
        self.seq.extended_max() + 1 - self.seq.base()
    }

    /// Cumulative packets lost (negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_nanos(u64::from(self.jitter()) * 1_000_000_000 / u64::from(self.clock_rate))
    }

    /// The highest extended sequence number received.
    pub fn extended_max(&self) -> u64 {
        self.seq.extended_max()
    }

    /// Builds the report block for this source and starts a new reporting interval
    /// (RFC 3550 A.3). `None` before any packet was received.
    pub fn report_block(&mut self, now: Instant, ssrc: Ssrc) -> Option<ReportBlock> {
        if self.received == 0 {
            return None;
        }
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, duration_to_compact(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_seq: self.seq.extended_max() as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

// === impl RtcpScheduler ===

/// When to send the next RTCP report: a fixed interval randomised by a factor in
/// [0.5, 1.5) (RFC 3550 §6.3.1, without the bandwidth-dependent computation), with the
/// first report after half an interval (§6.2).
///
/// The random numbers come from a small generator seeded by the caller, so runs are
/// reproducible in tests.
#[derive(Debug, Clone)]
pub struct RtcpScheduler {
    interval: Duration,
    next: Instant,
    rng: u64,
}

/// The RFC 3550 §6.2 minimum report interval.
pub const DEFAULT_RTCP_INTERVAL: Duration = Duration::from_secs(5);

impl RtcpScheduler {
    /// A scheduler whose first report is due around `now + interval / 2`.
    pub fn new(now: Instant, interval: Duration, seed: u64) -> Self {
        let mut s = RtcpScheduler {
            interval,
            next: now,
            // xorshift must not start at zero.
            rng: seed | 1,
        };
        s.next = now + s.randomised(interval / 2);
        s
    }

    fn randomised(&mut self, base: Duration) -> Duration {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.5 + unit)
    }

    /// When the next report is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next
    }

    /// Whether a report is due at `now`; if so the next one is scheduled.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.randomised(self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn loss_fraction_and_cumulative() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(8000);
        // 100 packets, every 10th lost (seq 0..100 without 5, 15, ...).
        for seq in 0u16..100 {
            if seq % 10 != 5 {
                s.handle_rtp(t0 + MS * 20 * u32::from(seq), seq, u32::from(seq) * 160);
            }
        }
        assert_eq!(s.expected(), 100);
        assert_eq!(s.received(), 90);
        assert_eq!(s.cumulative_lost(), 10);
        let b = s.report_block(t0, Ssrc(9)).unwrap();
        assert_eq!(b.fraction_lost, (10 * 256 / 100) as u8);
        assert_eq!(b.cumulative_lost, 10);
        assert_eq!(b.extended_highest_seq, 99);
        assert_eq!(b.jitter, 0);
        // Next interval: no loss.
        for seq in 100u16..110 {
            s.handle_rtp(t0, seq, 0);
        }
        let b = s.report_block(t0, Ssrc(9)).unwrap();
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, 10));
    }

    #[test]
    fn duplicates_make_loss_negative_and_fraction_zero() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(8000);
        for seq in [1u16, 2, 3, 3, 3] {
            s.handle_rtp(t0, seq, 0);
        }
        let b = s.report_block(t0, Ssrc(1)).unwrap();
        assert_eq!((b.fraction_lost, b.cumulative_lost), (0, -2));
    }

    #[test]
    fn extended_highest_carries_cycles() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(8000);
        for seq in [65534u16, 65535, 0, 1] {
            s.handle_rtp(t0, seq, 0);
        }
        let b = s.report_block(t0, Ssrc(1)).unwrap();
        assert_eq!(b.extended_highest_seq, 0x0001_0001);
    }

    #[test]
    fn jitter_converges_to_alternating_delay() {
        let t0 = Instant::now();
        let mut s = ReceiverStats::new(8000);
        // Every other packet arrives 10 ms late: |D| = 80 timestamp units each time.
        for i in 0u32..2000 {
            let late = if i % 2 == 1 { 10 } else { 0 };
            s.handle_rtp(t0 + MS * (20 * i + late), i as u16, i * 160);
        }
        assert!((78..=80).contains(&s.jitter()), "{}", s.jitter());
        let ms = s.jitter_duration().as_secs_f64() * 1000.0;
        assert!((9.7..=10.0).contains(&ms), "{ms}");
    }

    #[test]
    fn lsr_dlsr_and_rtt() {
        let t0 = Instant::now();
        let clock = NtpClock::new(t0, Duration::from_secs(1_700_000_000));
        // We sent an SR at t0; the peer held it 1.5 s and its RR reaches us at t0 + 1.6 s.
        let sr_ntp = clock.ntp(t0);
        let block = ReportBlock {
            last_sr: ntp_compact(sr_ntp),
            delay_since_last_sr: duration_to_compact(Duration::from_millis(1500)),
            ..Default::default()
        };
        let rtt = rtt(clock.ntp(t0 + Duration::from_millis(1600)), &block).unwrap();
        assert!((rtt.as_secs_f64() - 0.1).abs() < 0.001, "{rtt:?}");
        assert_eq!(super::rtt(sr_ntp, &ReportBlock::default()), None);

        // Our side of LSR/DLSR.
        let mut s = ReceiverStats::new(8000);
        s.handle_rtp(t0, 1, 0);
        let sr = SenderReport {
            ntp_time: 0x0001_2345_6789_0000,
            ..Default::default()
        };
        s.handle_sender_report(t0, &sr);
        let b = s
            .report_block(t0 + Duration::from_secs(2), Ssrc(1))
            .unwrap();
        assert_eq!(b.last_sr, 0x2345_6789);
        assert_eq!(b.delay_since_last_sr, 2 << 16);
    }

    #[test]
    fn ntp_clock_epoch() {
        let t0 = Instant::now();
        let c = NtpClock::new(t0, Duration::from_millis(1_500));
        assert_eq!(c.ntp(t0) >> 32, NTP_UNIX_OFFSET + 1);
        assert_eq!(c.ntp(t0) & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn scheduler_randomises_within_bounds() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(5);
        let mut s = RtcpScheduler::new(t0, interval, 42);
        let first = s.poll_timeout() - t0;
        assert!(
            first >= interval / 4 && first < interval * 3 / 4,
            "{first:?}"
        );
        assert!(!s.handle_timeout(t0));
        let mut now = s.poll_timeout();
        let mut gaps = Vec::new();
        for _ in 0..200 {
            assert!(s.handle_timeout(now));
            let next = s.poll_timeout();
            gaps.push(next - now);
            now = next;
        }
        assert!(gaps
            .iter()
            .all(|g| *g >= interval / 2 && *g < interval * 3 / 2));
        let min = gaps.iter().min().unwrap();
        let max = gaps.iter().max().unwrap();
        assert!(
            *max - *min > Duration::from_secs(3),
            "not randomised: {min:?}..{max:?}"
        );
    }
}
