//! Adaptive audio jitter buffer: reorders RTP frames, drops duplicates and late packets,
//! and plays out one frame per `pop` at a target delay that follows the measured network
//! delay variation (RFC 3550 §6.4.1 transit times, with a peak-hold estimator).
//!
//! # Model
//!
//! The caller pushes every received frame (`push(now, ssrc, seq_ext, rtp_ts, payload)`) and
//! pops one frame per frame duration (`pop(now)`, usually from a 20 ms timer). Each pop
//! returns a [`Playout`]:
//!
//! - [`Playout::Frame`]: decode this;
//! - [`Playout::Missing`]: a frame should be here (lost, or not arrived yet while the buffer
//!   grows): run packet loss concealment;
//! - [`Playout::Empty`]: nothing to play (not started, silence gap, or stream stopped): play
//!   silence or comfort noise.
//!
//! # Adaptation
//!
//! For each packet the relative transit delay `d = (arrival - timestamp) - min(transit)` is
//! measured in timestamp units. A peak estimator takes new maxima at once, holds them for
//! about ten seconds of packets, then decays towards current values. The target delay is
//! that peak plus one frame, clamped to `[min_delay, max_delay]`.
//!
//! The controlled quantity is the *playout delay*: how long after its earliest possible
//! arrival (timestamp + minimum transit) the frame at the playout point is played. It does
//! not dip when packets are held up, unlike the amount of buffered media.
//!
//! The delay grows when the buffer runs dry (it holds the playout point and conceals instead
//! of skipping the late frame) or when it is more than one frame under the target (one
//! concealed frame every [`STRETCH_EVERY`] pops). It shrinks by dropping one buffered frame
//! at most every [`SHRINK_EVERY`] pops while it is more than two frames over the target.
//! The band between the two is wider than the one-frame phase swing between arrivals and
//! pops, so they do not fight.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::rtp::{Ssrc, TimestampUnwrapper};

/// At most one frame is dropped to shrink the buffer in this many pops (5 % speed-up).
pub const SHRINK_EVERY: u32 = 20;
/// At most one frame is concealed to grow the buffer in this many pops.
pub const STRETCH_EVERY: u32 = 10;
/// Packets a new delay peak is held for before the estimate decays (about 10 s at 20 ms: a
/// sender that stalls every few seconds keeps its margin instead of making the buffer shrink
/// and grow again each time, which costs a dropped and a concealed frame per cycle).
const PEAK_HOLD_PACKETS: u32 = 500;
/// Packets per window of the minimum-transit tracker (about 5 s at 20 ms).
const MIN_WINDOW_PACKETS: u32 = 250;
/// A sequence jump larger than this resets the buffer (RFC 3550 A.1 `MAX_DROPOUT`).
const MAX_SEQ_JUMP: u64 = 3000;
/// How many played sequence numbers are remembered to tell duplicates from late packets.
const PLAYED_HISTORY: u64 = 64;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the payload (8000 for G.711 and G.722, 48000 for Opus).
    pub clock_rate: u32,
    /// Lowest target delay.
    pub min_delay: Duration,
    /// Highest target delay; also how long the buffer conceals an outage before it goes back
    /// to buffering.
    pub max_delay: Duration,
    /// Frame duration assumed until two consecutive packets show the real one.
    pub initial_frame: Duration,
    /// A timestamp jump larger than this (relative to the sequence numbers) resets the buffer.
    pub reset_jump: Duration,
}

impl JitterConfig {
    /// Defaults for a clock rate: 20–200 ms target, 20 ms frames, reset on a 1 s jump.
    pub fn new(clock_rate: u32) -> Self {
        JitterConfig {
            clock_rate,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            initial_frame: Duration::from_millis(20),
            reset_jump: Duration::from_secs(1),
        }
    }
}

/// One frame handed out for decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Extended sequence number.
    pub seq: u64,
    /// RTP timestamp as received.
    pub timestamp: u32,
    /// Encoded payload.
    pub payload: Vec<u8>,
}

/// What to play for one frame duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode and play this frame.
    Frame(Frame),
    /// A frame is missing: conceal it.
    Missing,
    /// Nothing to play: silence.
    Empty,
}

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Stored for playout.
    Queued,
    /// Its playout time has passed: dropped.
    Late,
    /// Already stored or played: dropped.
    Duplicate,
}

/// Counters, cumulative over resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    /// Packets dropped because their playout time had passed.
    pub late: u64,
    /// Frames concealed because their packet never arrived in time.
    pub lost: u64,
    /// Packets dropped as duplicates.
    pub duplicate: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Frames dropped to shrink the buffer.
    pub shrunk: u64,
    /// Frames concealed to grow the buffer (underruns and stretches).
    pub stretched: u64,
    /// Frames dropped because the buffer was full.
    pub overflow: u64,
    /// Resets (SSRC change, timestamp or sequence jump, long outage).
    pub resets: u64,
}

impl JitterStats {
    /// Adds another buffer's counters (totals over several streams).
    pub fn add(&mut self, o: &JitterStats) {
        self.late += o.late;
        self.lost += o.lost;
        self.duplicate += o.duplicate;
        self.reordered += o.reordered;
        self.shrunk += o.shrunk;
        self.stretched += o.stretched;
        self.overflow += o.overflow;
        self.resets += o.resets;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No anchor: the next push starts buffering.
    Idle,
    /// Anchored, waiting for the target delay to pass before playing.
    Buffering {
        since: Instant,
    },
    Playing,
}

#[derive(Debug, Clone)]
struct Slot {
    ts: u64,
    rtp_ts: u32,
    payload: Vec<u8>,
}

/// Tracks relative transit delay and its recent peak, in timestamp units.
#[derive(Debug, Clone, Default)]
struct DelayEstimator {
    epoch: Option<Instant>,
    window_min: Option<i64>,
    prev_min: Option<i64>,
    window_packets: u32,
    peak: i64,
    hold: u32,
}

impl DelayEstimator {
    /// How long after its earliest possible arrival the frame at `play_ts` is played when
    /// played at `now`, in timestamp units (the playout delay the buffer controls).
    fn playout_delay(&self, now: Instant, play_ts: u64, clock_rate: u32) -> i64 {
        let (Some(epoch), Some(m)) = (self.epoch, self.window_min) else {
            return 0;
        };
        let base = self.prev_min.map_or(m, |p| p.min(m));
        let arrival = now.saturating_duration_since(epoch).as_nanos() * u128::from(clock_rate)
            / 1_000_000_000;
        arrival as i64 - base - play_ts as i64
    }

    fn observe(&mut self, now: Instant, ts: u64, clock_rate: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.saturating_duration_since(epoch).as_nanos() * u128::from(clock_rate)
            / 1_000_000_000;
        let transit = arrival as i64 - ts as i64;
        self.window_packets += 1;
        if self.window_packets >= MIN_WINDOW_PACKETS {
            // Start a new window so that clock drift cannot pin an old minimum forever.
            self.prev_min = self.window_min;
            self.window_min = None;
            self.window_packets = 0;
        }
        let m = self.window_min.map_or(transit, |m| m.min(transit));
        self.window_min = Some(m);
        let base = self.prev_min.map_or(m, |p| p.min(m));
        let d = transit - base;
        if d >= self.peak {
            self.peak = d;
            self.hold = PEAK_HOLD_PACKETS;
        } else if self.hold > 0 {
            self.hold -= 1;
        } else {
            self.peak -= (self.peak - d + 31) / 32;
        }
    }
}

/// The adaptive jitter buffer; see the module docs for the model.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    state: State,
    ssrc: Option<Ssrc>,
    /// `slots[i]` holds sequence number `next_seq + i`.
    slots: VecDeque<Option<Slot>>,
    capacity: usize,
    count: usize,
    next_seq: u64,
    /// Unwrapped timestamp of the next frame to play.
    play_ts: u64,
    unwrapper: TimestampUnwrapper,
    /// Highest sequence number pushed since the last reset, and its timestamp.
    newest: Option<(u64, u64)>,
    frame_ts: u64,
    frame_candidate: u64,
    estimator: DelayEstimator,
    /// Bit i set: `next_seq - 1 - i` was played or dropped after arriving.
    played: u64,
    underrun_run: u32,
    shrink_cooldown: u32,
    stretch_cooldown: u32,
    stats: JitterStats,
}

// === impl JitterBuffer ===

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        let frame_ts = to_ts(cfg.initial_frame, cfg.clock_rate).max(1);
        let capacity = ((cfg.max_delay.as_millis() / 10) as usize * 2 + 8).max(32);
        JitterBuffer {
            cfg,
            state: State::Idle,
            ssrc: None,
            slots: VecDeque::with_capacity(capacity),
            capacity,
            count: 0,
            next_seq: 0,
            play_ts: 0,
            unwrapper: TimestampUnwrapper::new(),
            newest: None,
            frame_ts,
            frame_candidate: 0,
            estimator: DelayEstimator::default(),
            played: 0,
            underrun_run: 0,
            shrink_cooldown: 0,
            stretch_cooldown: 0,
            stats: JitterStats::default(),
        }
    }

    /// Stores one received frame. `seq` is the extended sequence number (see
    /// [`crate::media::rtp::SequenceTracker`]).
    pub fn push(
        &mut self,
        now: Instant,
        ssrc: Ssrc,
        seq: u64,
        rtp_ts: u32,
        payload: &[u8],
    ) -> Pushed {
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                debug!(old = %self.ssrc.unwrap_or_default(), new = %ssrc, "jitter: SSRC change");
                self.reset();
            }
            self.ssrc = Some(ssrc);
        }
        if let Some((nseq, nts)) = self.newest {
            let ts = self.unwrapper.peek(rtp_ts) as i64;
            let expected = nts as i64 + (seq as i64 - nseq as i64) * self.frame_ts as i64;
            let jump = to_ts(self.cfg.reset_jump, self.cfg.clock_rate) as i64;
            if (ts - expected).abs() > jump || seq.abs_diff(nseq) > MAX_SEQ_JUMP {
                debug!(seq, rtp_ts, "jitter: timestamp or sequence jump");
                self.reset();
            }
        }
        let ts = self.unwrapper.unwrap(rtp_ts);
        self.estimator.observe(now, ts, self.cfg.clock_rate);

        if let Some((nseq, nts)) = self.newest {
            if seq == nseq + 1 && ts > nts {
                let d = ts - nts;
                // Two equal steps in a row set the frame duration (a single one may be a
                // silence gap). Up to 120 ms frames.
                if d == self.frame_candidate
                    && d <= to_ts(Duration::from_millis(120), self.cfg.clock_rate)
                {
                    self.frame_ts = d;
                }
                self.frame_candidate = d;
            }
        }

        match self.state {
            State::Idle => {
                self.state = State::Buffering { since: now };
                self.next_seq = seq;
                self.play_ts = ts;
                self.slots.clear();
                self.count = 0;
            }
            State::Buffering { .. } if seq < self.next_seq => {
                // Reordered before playout started: move the anchor back if it fits.
                let back = self.next_seq - seq;
                if (back as usize) + self.slots.len() < self.capacity {
                    for _ in 0..back {
                        self.slots.push_front(None);
                    }
                    self.next_seq = seq;
                    self.play_ts = self.play_ts.min(ts);
                }
            }
            _ => {}
        }

        if seq < self.next_seq || ts < self.play_ts {
            let back = self.next_seq.saturating_sub(seq);
            if (1..=PLAYED_HISTORY).contains(&back) && self.played & (1 << (back - 1)) != 0 {
                self.stats.duplicate += 1;
                return Pushed::Duplicate;
            }
            trace!(seq, "jitter: late packet");
            self.stats.late += 1;
            return Pushed::Late;
        }

        let mut idx = (seq - self.next_seq) as usize;
        while idx >= self.capacity {
            // Full: drop from the head to make room (the sender runs fast or we stalled).
            if let Some(Some(_)) = self.slots.pop_front() {
                self.count -= 1;
                self.stats.overflow += 1;
                self.played = (self.played << 1) | 1;
            } else {
                self.played <<= 1;
            }
            self.next_seq += 1;
            self.play_ts += self.frame_ts;
            idx -= 1;
        }
        if let Some(Some(head)) = self.slots.front() {
            self.play_ts = self.play_ts.min(head.ts);
        }
        while self.slots.len() <= idx {
            self.slots.push_back(None);
        }
        let Some(slot) = self.slots.get_mut(idx) else {
            return Pushed::Late; // unreachable: the loop above made the slot
        };
        if slot.is_some() {
            self.stats.duplicate += 1;
            return Pushed::Duplicate;
        }
        *slot = Some(Slot {
            ts,
            rtp_ts,
            payload: payload.to_vec(),
        });
        self.count += 1;
        match self.newest {
            Some((nseq, _)) if nseq > seq => self.stats.reordered += 1,
            _ => self.newest = Some((seq, ts)),
        }
        Pushed::Queued
    }

    /// Takes what to play for the next frame duration.
    pub fn pop(&mut self, now: Instant) -> Playout {
        match self.state {
            State::Idle => return Playout::Empty,
            State::Buffering { since } => {
                if self.count == 0 || now < since + self.target_delay() {
                    return Playout::Empty;
                }
                debug!(
                    target_ms = self.target_delay().as_millis(),
                    "jitter: playout starts"
                );
                self.state = State::Playing;
            }
            State::Playing => {}
        }
        self.shrink_cooldown = self.shrink_cooldown.saturating_sub(1);
        self.stretch_cooldown = self.stretch_cooldown.saturating_sub(1);

        if self.count == 0 {
            // Underrun: hold the playout point so a late frame can still play; give up and
            // rebuffer after max_delay.
            self.underrun_run += 1;
            if Duration::from_nanos(self.frame_nanos()) * self.underrun_run >= self.cfg.max_delay {
                debug!("jitter: outage, back to buffering");
                self.state = State::Idle;
                self.slots.clear();
                self.underrun_run = 0;
                return Playout::Empty;
            }
            self.stats.stretched += 1;
            return Playout::Missing;
        }
        self.underrun_run = 0;

        let target = to_ts(self.target_delay(), self.cfg.clock_rate) as i64;
        let delay = self
            .estimator
            .playout_delay(now, self.play_ts, self.cfg.clock_rate);
        let frame = self.frame_ts as i64;
        match self.slots.front() {
            None | Some(None) => {
                // A gap with later frames present: this one is lost.
                self.slots.pop_front();
                self.advance(false);
                self.stats.lost += 1;
                return Playout::Missing;
            }
            Some(Some(head)) if head.ts > self.play_ts + self.frame_ts / 2 => {
                // Timestamp gap without a sequence gap: silence (DTX) until the head is due.
                self.play_ts += self.frame_ts;
                return Playout::Empty;
            }
            Some(Some(_)) => {}
        }
        if delay > target + 2 * frame
            && self.shrink_cooldown == 0
            && matches!(self.slots.get(1), Some(Some(_)))
        {
            self.slots.pop_front();
            self.count -= 1;
            self.advance(true);
            self.stats.shrunk += 1;
            self.shrink_cooldown = SHRINK_EVERY;
            trace!(delay, target, "jitter: shrink");
        } else if delay + frame < target && self.stretch_cooldown == 0 {
            self.stats.stretched += 1;
            self.stretch_cooldown = STRETCH_EVERY;
            trace!(delay, target, "jitter: stretch");
            return Playout::Missing;
        }
        match self.slots.pop_front() {
            Some(Some(slot)) => {
                self.count -= 1;
                let seq = self.next_seq;
                self.advance(true);
                self.play_ts = slot.ts + self.frame_ts;
                Playout::Frame(Frame {
                    seq,
                    timestamp: slot.rtp_ts,
                    payload: slot.payload,
                })
            }
            _ => {
                self.advance(false);
                self.stats.lost += 1;
                Playout::Missing
            }
        }
    }

    fn advance(&mut self, arrived: bool) {
        self.next_seq += 1;
        self.play_ts += self.frame_ts;
        self.played = (self.played << 1) | u64::from(arrived);
    }

    /// Clears every stored frame and the delay history; the next push starts buffering.
    pub fn reset(&mut self) {
        self.stats.resets += 1;
        self.state = State::Idle;
        self.slots.clear();
        self.count = 0;
        self.newest = None;
        self.unwrapper.reset();
        self.estimator = DelayEstimator::default();
        self.played = 0;
        self.underrun_run = 0;
    }

    /// Buffered media ahead of the playout point, in timestamp units.
    fn level_ts(&self) -> u64 {
        match self.newest {
            Some((_, nts)) if self.count > 0 => (nts + self.frame_ts).saturating_sub(self.play_ts),
            _ => 0,
        }
    }

    fn frame_nanos(&self) -> u64 {
        self.frame_ts * 1_000_000_000 / u64::from(self.cfg.clock_rate.max(1))
    }

    /// The delay the buffer currently aims for.
    pub fn target_delay(&self) -> Duration {
        let peak = u64::try_from(self.estimator.peak).unwrap_or(0);
        let t = Duration::from_nanos(
            (peak + self.frame_ts) * 1_000_000_000 / u64::from(self.cfg.clock_rate.max(1)),
        );
        t.clamp(
            self.cfg.min_delay,
            self.cfg.max_delay.max(self.cfg.min_delay),
        )
    }

    /// Media buffered ahead of the playout point.
    pub fn buffered(&self) -> Duration {
        Duration::from_nanos(
            self.level_ts() * 1_000_000_000 / u64::from(self.cfg.clock_rate.max(1)),
        )
    }

    /// The frame duration learned from timestamps (how often to call `pop`).
    pub fn frame_duration(&self) -> Duration {
        Duration::from_nanos(self.frame_nanos())
    }

    /// Counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}

fn to_ts(d: Duration, clock_rate: u32) -> u64 {
    (d.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SSRC: Ssrc = Ssrc(0x1234);

    /// A scripted run: packets `(arrival_ms, seq, ts)` and a pop every 20 ms at `phase` ms.
    struct Run {
        jb: JitterBuffer,
        t0: Instant,
        out: Vec<Playout>,
    }

    impl Run {
        fn new() -> Self {
            Run {
                jb: JitterBuffer::new(JitterConfig::new(8000)),
                t0: Instant::now(),
                out: Vec::new(),
            }
        }

        /// Interleaves pushes and pops in time order; pushes first on ties.
        fn play(&mut self, mut packets: Vec<(u64, Ssrc, u64, u32)>, until_ms: u64, phase: u64) {
            packets.sort_by_key(|p| p.0);
            let mut pi = 0;
            let mut pop_at = phase;
            while pop_at <= until_ms {
                while pi < packets.len() && packets[pi].0 <= pop_at {
                    let (at, ssrc, seq, ts) = packets[pi];
                    let payload = seq.to_be_bytes();
                    self.jb
                        .push(self.t0 + MS * at as u32, ssrc, seq, ts, &payload);
                    pi += 1;
                }
                let p = self.jb.pop(self.t0 + MS * pop_at as u32);
                self.out.push(p);
                pop_at += 20;
            }
        }

        fn played(&self) -> Vec<u64> {
            self.out
                .iter()
                .filter_map(|p| match p {
                    Playout::Frame(f) => Some(f.seq),
                    _ => None,
                })
                .collect()
        }

        /// Concealed frames, not counting the underruns after the last frame played.
        fn missing(&self) -> usize {
            let end = self
                .out
                .iter()
                .rposition(|p| matches!(p, Playout::Frame(_)))
                .unwrap_or(0);
            self.out[..end]
                .iter()
                .filter(|p| **p == Playout::Missing)
                .count()
        }

        fn trace(&self) -> String {
            self.out
                .iter()
                .map(|p| match p {
                    Playout::Frame(f) => format!("{} ", f.seq),
                    Playout::Missing => "M ".into(),
                    Playout::Empty => "_ ".into(),
                })
                .collect()
        }
    }

    fn steady(n: u64, seq0: u64, ts0: u32, start_ms: u64) -> Vec<(u64, Ssrc, u64, u32)> {
        (0..n)
            .map(|i| {
                (
                    start_ms + i * 20,
                    SSRC,
                    seq0 + i,
                    ts0.wrapping_add(i as u32 * 160),
                )
            })
            .collect()
    }

    fn assert_increasing(v: &[u64]) {
        assert!(v.windows(2).all(|w| w[0] < w[1]), "not increasing: {v:?}");
    }

    #[test]
    fn in_order_plays_everything_once() {
        let mut r = Run::new();
        r.play(steady(100, 1000, 5000, 0), 2100, 10);
        assert_eq!(r.played(), (1000..1100).collect::<Vec<_>>());
        assert_eq!(r.missing(), 0);
        let s = r.jb.stats();
        assert_eq!((s.late, s.lost, s.duplicate, s.reordered), (0, 0, 0, 0));
        assert_eq!(r.jb.target_delay(), 20 * MS);
        assert_eq!(r.jb.frame_duration(), 20 * MS);
    }

    #[test]
    fn reordered_pairs_are_put_back_in_order() {
        let mut r = Run::new();
        let mut p = steady(200, 0, 0, 0);
        for pair in p.chunks_mut(2) {
            // The even packet is overtaken by the odd one and arrives 5 ms after it.
            pair[0].0 = pair[1].0 + 5;
        }
        r.play(p, 4100, 10);
        let played = r.played();
        assert_increasing(&played);
        let s = r.jb.stats();
        assert_eq!(s.reordered, 100);
        assert!(played.len() >= 197, "played {}", played.len());
        assert_eq!(
            s.lost + s.late + s.shrunk,
            200 - played.len() as u64,
            "{}",
            r.trace()
        );
    }

    /// A sender that stalls for 160 ms every 3 s (then sends the backlog at once): after the
    /// first stall the buffer keeps its margin, so the later stalls cost no frame.
    #[test]
    fn periodic_stalls_do_not_make_the_buffer_oscillate() {
        let mut r = Run::new();
        let ssrc = Ssrc(7);
        let packets: Vec<_> = (0..1500u64)
            .map(|i| {
                let due = i * 20;
                // Frames due during a stall leave when it ends.
                let in_cycle = due % 3000;
                let at = if (1000..1160).contains(&in_cycle) {
                    due - in_cycle + 1160
                } else {
                    due
                };
                (at, ssrc, i, (i * 160) as u32)
            })
            .collect();
        r.play(packets, 30_000, 5);
        let s = r.jb.stats();
        // The first stall: one growth; afterwards nothing is dropped or stretched again.
        assert_eq!(s.late, 0, "{s:?}");
        assert!(s.shrunk + s.stretched <= 12, "{s:?}");
        assert!(
            r.missing() <= 12,
            "{} concealed: {}",
            r.missing(),
            r.trace()
        );
    }

    #[test]
    fn five_percent_loss_is_concealed() {
        let mut r = Run::new();
        let p: Vec<_> = steady(400, 0, 0, 0)
            .into_iter()
            .filter(|p| p.2 % 20 != 7)
            .collect();
        r.play(p, 8100, 10);
        let s = r.jb.stats();
        assert_eq!(s.lost, 20);
        assert_eq!(r.missing(), 20);
        assert_eq!(s.late, 0);
        assert_eq!(r.played().len(), 380);
        assert_increasing(&r.played());
    }

    #[test]
    fn bursty_jitter_grows_then_steady_shrinks_back() {
        let mut r = Run::new();
        // 10 s: every second, 5 packets are held 100 ms then delivered together.
        let mut p = steady(500, 0, 0, 0);
        for pkt in p.iter_mut() {
            let i = pkt.2;
            if i % 50 >= 25 && i % 50 < 30 {
                pkt.0 = (i - i % 50 + 30) * 20 + 1;
            }
        }
        r.play(p, 10_000, 10);
        let grown = r.jb.target_delay();
        assert!(grown >= 100 * MS, "target {grown:?}");
        // Only the first burst (and at most a little of the second) underruns.
        let first = r.out[..60]
            .iter()
            .filter(|p| **p == Playout::Missing)
            .count();
        let later = r.out[100..480]
            .iter()
            .filter(|p| **p == Playout::Missing)
            .count();
        assert!(first >= 3, "first burst: {first} missing");
        assert_eq!(later, 0, "later bursts should be absorbed");
        assert!(r.jb.buffered() >= 80 * MS, "buffered {:?}", r.jb.buffered());

        // Then 15 s of steady arrivals: the target and the buffer come back down.
        let before = r.out.len();
        r.out.clear();
        let p = steady(750, 500, 500 * 160, 10_000);
        let mut r2 = r;
        // Continue the same clock: pops from 10 010 ms.
        let mut pi = 0;
        let mut pop_at = 10_010;
        while pop_at <= 25_000 {
            while pi < p.len() && p[pi].0 <= pop_at {
                let (at, ssrc, seq, ts) = p[pi];
                r2.jb.push(r2.t0 + MS * at as u32, ssrc, seq, ts, &[0]);
                pi += 1;
            }
            r2.out.push(r2.jb.pop(r2.t0 + MS * pop_at as u32));
            pop_at += 20;
        }
        assert!(before > 0);
        assert!(
            r2.jb.target_delay() <= 40 * MS,
            "target {:?}",
            r2.jb.target_delay()
        );
        assert!(
            r2.jb.buffered() <= 60 * MS,
            "buffered {:?}",
            r2.jb.buffered()
        );
        assert!(r2.jb.stats().shrunk >= 2);
        assert_eq!(r2.missing(), 0);
    }

    #[test]
    fn sequence_and_timestamp_wrap() {
        let mut r = Run::new();
        // Extended sequence numbers cross 65536 and timestamps cross 2^32.
        r.play(steady(60, 65_510, u32::MAX - 160 * 20 + 1, 0), 1300, 10);
        assert_eq!(r.played(), (65_510..65_570).collect::<Vec<_>>());
        assert_eq!(r.jb.stats().resets, 0);
        assert_eq!(r.missing(), 0);
    }

    #[test]
    fn ssrc_change_resets() {
        let mut r = Run::new();
        let mut p = steady(50, 0, 0, 0);
        p.extend(
            steady(50, 40_000, 77_777, 1000)
                .into_iter()
                .map(|(a, _, s, t)| (a, Ssrc(9), s, t)),
        );
        r.play(p, 2100, 10);
        assert_eq!(r.jb.stats().resets, 1);
        let played = r.played();
        assert!(
            played.contains(&40_049) && played.contains(&48),
            "{}",
            r.trace()
        );
        assert_eq!(r.jb.stats().late, 0);
    }

    #[test]
    fn timestamp_jump_resets() {
        let mut r = Run::new();
        let mut p = steady(20, 0, 0, 0);
        p.extend(steady(20, 20, 10 * 8000, 400));
        r.play(p, 900, 10);
        assert_eq!(r.jb.stats().resets, 1);
        assert!(r.played().contains(&39));
    }

    #[test]
    fn duplicates_and_late_packets_are_counted() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        assert_eq!(jb.push(t0, SSRC, 1, 0, b"a"), Pushed::Queued);
        assert_eq!(jb.push(t0, SSRC, 1, 0, b"a"), Pushed::Duplicate);
        assert_eq!(jb.push(t0, SSRC, 3, 320, b"c"), Pushed::Queued);
        assert_eq!(
            jb.pop(t0 + 20 * MS),
            Playout::Frame(Frame {
                seq: 1,
                timestamp: 0,
                payload: b"a".to_vec()
            })
        );
        assert_eq!(jb.pop(t0 + 40 * MS), Playout::Missing); // 2 never came
        assert_eq!(jb.push(t0 + 45 * MS, SSRC, 2, 160, b"b"), Pushed::Late);
        assert_eq!(jb.push(t0 + 45 * MS, SSRC, 1, 0, b"a"), Pushed::Duplicate);
        let s = jb.stats();
        assert_eq!((s.duplicate, s.late, s.lost), (2, 1, 1));
    }

    #[test]
    fn frame_duration_is_learned() {
        let mut r = Run::new();
        // 10 ms packets (80 timestamp units), popped every 20 ms: the caller should follow
        // frame_duration(); here we just check the learning.
        let p: Vec<_> = (0..10u64)
            .map(|i| (i * 10, SSRC, i, i as u32 * 80))
            .collect();
        r.play(p, 40, 5);
        assert_eq!(r.jb.frame_duration(), 10 * MS);
    }

    #[test]
    fn outage_goes_back_to_buffering() {
        let mut r = Run::new();
        let mut p = steady(20, 0, 0, 0);
        // 2 s outage with timestamps continuing (sender muted, not DTX).
        p.extend(steady(20, 120, 120 * 160, 2400));
        r.play(p, 3000, 10);
        let played = r.played();
        assert_eq!(played.len(), 40, "{played:?}");
        assert!(r.out.iter().filter(|p| **p == Playout::Empty).count() > 50);
    }

    #[test]
    fn garbage_inputs_do_not_panic() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut x: u64 = 88172645463325252;
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let now = t0 + MS * i;
            let seq = x % 500;
            jb.push(
                now,
                Ssrc((x >> 60) as u32 & 1),
                seq,
                (x >> 20) as u32 % 100_000,
                &[],
            );
            if i % 3 == 0 {
                jb.pop(now);
            }
        }
    }
}
