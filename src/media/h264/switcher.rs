//! Several H.264 sources → one outgoing RTP stream (room → device): active speaker and
//! simulcast layer switches without the receiver noticing a new stream.
//!
//! On [`StreamSwitcher::switch_to`] the new source is asked for a keyframe
//! ([`SwitcherEvent::RequestKeyframe`], which the caller sends as PLI/FIR), rate limited per
//! source and repeated while it does not come. Meanwhile the old source keeps flowing. The new
//! source's packets are dropped until an access unit that starts with an SPS and holds a PPS
//! and an IDR slice; from there on it replaces the old one once the old one finishes its
//! current picture (or goes quiet). Every packet goes out with the switcher's SSRC and payload
//! type, with sequence numbers continuing the last sent one by one, and timestamps continuing
//! the last sent plus the wall-clock time elapsed, in 90 kHz units.
//!
//! Packets are forwarded as they come (no depacketization): a switch costs nothing per packet
//! and a receiver's NACKs map one to one onto the source's sequence numbers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::keyframe::KeyframeLimiter;
use super::{nal_type, CLOCK_RATE};
use crate::media::rtp::{RtpPacket, RtpWriter, Ssrc};

/// Settings of a [`StreamSwitcher`].
#[derive(Debug, Clone)]
pub struct SwitcherConfig {
    /// SSRC of the outgoing stream.
    pub ssrc: Ssrc,
    /// Payload type negotiated with the receiver.
    pub payload_type: u8,
    /// At most one keyframe request per source per this interval.
    pub keyframe_min_interval: Duration,
    /// Ask again after this long while the keyframe does not come.
    pub keyframe_retry: Duration,
    /// A ready source takes over without waiting for the old one's picture to end once the
    /// old one has been silent this long.
    pub stale_after: Duration,
    /// Packets of the new source held at most while the old one finishes its picture.
    pub max_held_packets: usize,
}

impl SwitcherConfig {
    /// Defaults: 500 ms between requests, retry every second, 100 ms to declare the old
    /// source silent, 512 held packets.
    pub fn new(ssrc: Ssrc, payload_type: u8) -> Self {
        SwitcherConfig {
            ssrc,
            payload_type,
            keyframe_min_interval: Duration::from_millis(500),
            keyframe_retry: Duration::from_secs(1),
            stale_after: Duration::from_millis(100),
            max_held_packets: 512,
        }
    }
}

/// What the caller must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitcherEvent {
    /// Send a PLI (or FIR) to this source.
    RequestKeyframe(Ssrc),
    /// The outgoing stream now carries `to`.
    Switched {
        /// The previous source, if any.
        from: Option<Ssrc>,
        /// The new source.
        to: Ssrc,
    },
}

/// Counters of a [`StreamSwitcher`], for the caller's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwitcherCounters {
    /// Packets sent.
    pub forwarded: u64,
    /// Packets of a new source dropped before its keyframe.
    pub dropped_before_keyframe: u64,
    /// Packets from sources that are neither active nor awaited.
    pub unknown_source: u64,
    /// Duplicates, and packets of the active source older than the switch.
    pub late_packets: u64,
    /// Keyframe requests emitted.
    pub keyframe_requests: u64,
    /// Switches completed.
    pub switches: u64,
}

/// Splices sources into one stream. Feed packets with [`StreamSwitcher::handle_packet`],
/// drain [`StreamSwitcher::poll_packet`] and [`StreamSwitcher::poll_event`], and call
/// [`StreamSwitcher::handle_timeout`] at [`StreamSwitcher::poll_timeout`].
#[derive(Debug)]
pub struct StreamSwitcher {
    cfg: SwitcherConfig,
    limiter: KeyframeLimiter,
    active: Option<Active>,
    pending: Option<Pending>,
    out: Option<Sent>,
    packets: VecDeque<Vec<u8>>,
    spare: Vec<Vec<u8>>,
    events: VecDeque<SwitcherEvent>,
    counters: SwitcherCounters,
    /// A receiver's request that the rate limit held back: sent when allowed.
    deferred: Option<Instant>,
}

/// The source being forwarded and its rewrite offsets.
#[derive(Debug, Clone, Copy)]
struct Active {
    ssrc: Ssrc,
    seq_offset: u16,
    ts_offset: u32,
    highest_seq: u16,
    /// Sequence numbers advanced since the switch: older packets within it are reordered ones
    /// and still go out, older ones precede the switch.
    span: u16,
    /// The last packet sent did not end its access unit.
    mid_picture: bool,
    last_at: Instant,
}

/// A source waited for: the keyframe it is asked for, then its packets held until it takes
/// over.
#[derive(Debug)]
struct Pending {
    ssrc: Ssrc,
    next_request: Instant,
    held: Vec<Held>,
    prev: Option<(u32, bool)>,
    has_sps: bool,
    has_pps: bool,
    ready: bool,
}

#[derive(Debug)]
struct Held {
    seq: u16,
    ts: u32,
    marker: bool,
    at: Instant,
    payload: Vec<u8>,
}

/// The last packet sent: highest sequence number, newest timestamp and when it started.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u16,
    ts: u32,
    ts_at: Instant,
}

impl StreamSwitcher {
    /// A switcher with no source yet.
    pub fn new(cfg: SwitcherConfig) -> Self {
        StreamSwitcher {
            limiter: KeyframeLimiter::new(cfg.keyframe_min_interval),
            cfg,
            active: None,
            pending: None,
            out: None,
            packets: VecDeque::new(),
            spare: Vec::new(),
            events: VecDeque::new(),
            counters: SwitcherCounters::default(),
            deferred: None,
        }
    }

    /// Makes `ssrc` the wanted source: ask it for a keyframe and switch at that keyframe.
    /// Switching back to the active source cancels a pending switch.
    pub fn switch_to(&mut self, now: Instant, ssrc: Ssrc) {
        if self.active.is_some_and(|a| a.ssrc == ssrc) {
            self.pending = None;
            return;
        }
        if self.pending.as_ref().is_some_and(|p| p.ssrc == ssrc) {
            return;
        }
        self.pending = Some(Pending {
            ssrc,
            next_request: now,
            held: Vec::new(),
            prev: None,
            has_sps: false,
            has_pps: false,
            ready: false,
        });
        self.request_pending(now);
    }

    /// A source left (unpublished, muted): stop forwarding or awaiting it. The stream's
    /// numbering carries on with the next source.
    pub fn remove_source(&mut self, now: Instant, ssrc: Ssrc) {
        if self.active.is_some_and(|a| a.ssrc == ssrc) {
            self.active = None;
            if self.pending.as_ref().is_some_and(|p| p.ready) {
                self.commit();
            }
        }
        if self.pending.as_ref().is_some_and(|p| p.ssrc == ssrc) {
            self.pending = None;
        }
        let _ = now;
    }

    /// The receiver asked for a keyframe (its PLI/FIR): pass it on to the source it will
    /// come from, rate limited; a request held back by the limit goes out once allowed (several
    /// held back make one).
    pub fn request_keyframe(&mut self, now: Instant) {
        if self.pending.is_some() {
            self.request_pending(now);
        } else if let Some(a) = self.active {
            if self.limiter.allow(now, a.ssrc) {
                self.deferred = None;
                self.counters.keyframe_requests += 1;
                self.events
                    .push_back(SwitcherEvent::RequestKeyframe(a.ssrc));
            } else {
                self.deferred = Some(self.limiter.next_allowed(now, a.ssrc));
            }
        }
    }

    /// Takes one packet from any source.
    pub fn handle_packet(&mut self, now: Instant, pkt: &RtpPacket<'_>) {
        let ssrc = pkt.ssrc();
        if self.pending.as_ref().is_some_and(|p| p.ssrc == ssrc) {
            self.pending_packet(now, pkt);
        } else if self.active.is_some_and(|a| a.ssrc == ssrc) {
            self.active_packet(now, pkt);
            let takes_over = self.pending.as_ref().is_some_and(|p| p.ready)
                && self.active.is_some_and(|a| !a.mid_picture);
            if takes_over {
                self.commit();
            }
        } else {
            self.counters.unknown_source += 1;
        }
    }

    /// Time passed: repeat keyframe requests, let a ready source replace a silent one.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deferred.is_some_and(|t| t <= now) {
            self.deferred = None;
            self.request_keyframe(now);
        }
        let Some(p) = &self.pending else {
            return;
        };
        if p.ready && self.active_silent(now) {
            self.commit();
            return;
        }
        if !p.ready && now >= p.next_request {
            self.request_pending(now);
        }
    }

    /// When [`StreamSwitcher::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().and_then(|p| {
            if p.ready {
                self.active.map(|a| a.last_at + self.cfg.stale_after)
            } else {
                Some(p.next_request)
            }
        });
        match (pending, self.deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next RTP packet to send.
    pub fn poll_packet(&mut self) -> Option<Vec<u8>> {
        self.packets.pop_front()
    }

    /// Gives a sent packet's buffer back for reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < 64 {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// The next event to act on.
    pub fn poll_event(&mut self) -> Option<SwitcherEvent> {
        self.events.pop_front()
    }

    /// The source being forwarded.
    pub fn active(&self) -> Option<Ssrc> {
        self.active.map(|a| a.ssrc)
    }

    /// The source waited for, if a switch is in progress.
    pub fn pending(&self) -> Option<Ssrc> {
        self.pending.as_ref().map(|p| p.ssrc)
    }

    /// The counters.
    pub fn counters(&self) -> &SwitcherCounters {
        &self.counters
    }

    fn active_silent(&self, now: Instant) -> bool {
        self.active
            .is_none_or(|a| now.saturating_duration_since(a.last_at) >= self.cfg.stale_after)
    }

    fn request_pending(&mut self, now: Instant) {
        let Some(p) = &mut self.pending else {
            return;
        };
        if self.limiter.allow(now, p.ssrc) {
            self.counters.keyframe_requests += 1;
            self.events
                .push_back(SwitcherEvent::RequestKeyframe(p.ssrc));
            p.next_request = now + self.cfg.keyframe_retry;
        } else {
            p.next_request = self.limiter.next_allowed(now, p.ssrc);
        }
    }

    fn pending_packet(&mut self, now: Instant, pkt: &RtpPacket<'_>) {
        let max_held = self.cfg.max_held_packets;
        let Some(p) = &mut self.pending else {
            return;
        };
        let scan = Scan::of(pkt.payload());
        let starts_picture = p
            .prev
            .is_none_or(|(ts, marker)| marker || ts != pkt.timestamp());
        p.prev = Some((pkt.timestamp(), pkt.marker()));
        if !p.ready {
            if let Some(last) = p.held.last() {
                let broken = pkt.timestamp() != last.ts || pkt.seq() != last.seq.wrapping_add(1);
                if broken || p.held.len() >= max_held {
                    // The picture that began with an SPS held no IDR, or lost a packet.
                    self.counters.dropped_before_keyframe += p.held.len() as u64;
                    p.held.clear();
                }
            }
            if p.held.is_empty() {
                if !(starts_picture && scan.sps) {
                    self.counters.dropped_before_keyframe += 1;
                    return;
                }
                p.has_sps = false;
                p.has_pps = false;
            }
        }
        p.has_sps |= scan.sps;
        p.has_pps |= scan.pps;
        p.ready |= p.has_sps && p.has_pps && scan.idr;
        p.held.push(Held {
            seq: pkt.seq(),
            ts: pkt.timestamp(),
            marker: pkt.marker(),
            at: now,
            payload: pkt.payload().to_vec(),
        });
        if p.ready
            && (self.active.is_none_or(|a| !a.mid_picture)
                || p.held.len() >= max_held
                || self.active_silent(now))
        {
            self.commit();
        }
    }

    fn active_packet(&mut self, now: Instant, pkt: &RtpPacket<'_>) {
        let Some(a) = &mut self.active else {
            return;
        };
        let seq = pkt.seq();
        let ahead = seq.wrapping_sub(a.highest_seq);
        if ahead == 0 {
            self.counters.late_packets += 1;
            return;
        }
        if ahead < 0x8000 {
            a.highest_seq = seq;
            a.span = a.span.saturating_add(ahead);
            a.mid_picture = !pkt.marker();
            a.last_at = now;
        } else if a.highest_seq.wrapping_sub(seq) > a.span {
            self.counters.late_packets += 1;
            return;
        }
        let (seq_offset, ts_offset) = (a.seq_offset, a.ts_offset);
        self.send(
            seq.wrapping_add(seq_offset),
            pkt.timestamp().wrapping_add(ts_offset),
            pkt.marker(),
            pkt.payload(),
            now,
        );
    }

    /// The pending source takes over: offsets so that its first held packet follows the last
    /// one sent, then the held packets go out.
    fn commit(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let Some(first) = p.held.first() else {
            self.pending = Some(p);
            return;
        };
        let (seq_offset, ts_offset) = match self.out {
            Some(out) => {
                let elapsed = first.at.saturating_duration_since(out.ts_at);
                let ticks = (elapsed.as_micros() * u128::from(CLOCK_RATE) / 1_000_000)
                    .clamp(1, u128::from(u32::MAX / 2)) as u32;
                (
                    out.seq.wrapping_add(1).wrapping_sub(first.seq),
                    out.ts.wrapping_add(ticks).wrapping_sub(first.ts),
                )
            }
            None => (0, 0),
        };
        let from = self.active.map(|a| a.ssrc);
        let mut active = Active {
            ssrc: p.ssrc,
            seq_offset,
            ts_offset,
            highest_seq: first.seq,
            span: 0,
            mid_picture: false,
            last_at: first.at,
        };
        self.counters.switches += 1;
        self.events
            .push_back(SwitcherEvent::Switched { from, to: p.ssrc });
        debug!(?from, to = %p.ssrc, "video source switched");
        for h in &p.held {
            let ahead = h.seq.wrapping_sub(active.highest_seq);
            if ahead < 0x8000 {
                active.highest_seq = h.seq;
                active.span = active.span.saturating_add(ahead);
                active.mid_picture = !h.marker;
                active.last_at = h.at;
            }
            self.send(
                h.seq.wrapping_add(seq_offset),
                h.ts.wrapping_add(ts_offset),
                h.marker,
                &h.payload,
                h.at,
            );
        }
        self.active = Some(active);
    }

    fn send(&mut self, seq: u16, ts: u32, marker: bool, payload: &[u8], at: Instant) {
        match &mut self.out {
            None => self.out = Some(Sent { seq, ts, ts_at: at }),
            Some(out) => {
                if seq.wrapping_sub(out.seq) < 0x8000 {
                    out.seq = seq;
                }
                let newer = ts.wrapping_sub(out.ts);
                if newer != 0 && newer < 0x8000_0000 {
                    out.ts = ts;
                    out.ts_at = at;
                }
            }
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        let written = RtpWriter::new(self.cfg.payload_type, seq, ts, self.cfg.ssrc)
            .marker(marker)
            .write(payload, &mut buf);
        if written.is_ok() {
            self.counters.forwarded += 1;
            self.packets.push_back(buf);
        }
    }
}

/// What an RTP payload carries, as far as a switch cares.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    sps: bool,
    pps: bool,
    idr: bool,
}

impl Scan {
    fn of(payload: &[u8]) -> Scan {
        let mut s = Scan::default();
        let Some((&h, mut rest)) = payload.split_first() else {
            return s;
        };
        match nal_type::of(h) {
            nal_type::STAP_A => {
                while let Some(len) = rest
                    .get(..2)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                {
                    let Some(nal) = rest.get(2..2 + len) else {
                        break;
                    };
                    if let Some(&inner) = nal.first() {
                        s.note(nal_type::of(inner));
                    }
                    rest = rest.get(2 + len..).unwrap_or_default();
                }
            }
            nal_type::FU_A => {
                if let Some(&fu) = rest.first() {
                    s.note(nal_type::of(fu));
                }
            }
            t => s.note(t),
        }
        s
    }

    fn note(&mut self, t: u8) {
        match t {
            nal_type::SPS => self.sps = true,
            nal_type::PPS => self.pps = true,
            nal_type::IDR => self.idr = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        RtpWriter::new(100, seq, ts, Ssrc(ssrc))
            .marker(marker)
            .write(payload, &mut out)
            .expect("rtp");
        out
    }

    /// A keyframe of `ssrc` as single NAL unit packets: SPS, PPS, IDR.
    fn keyframe(s: &mut StreamSwitcher, now: Instant, ssrc: u32, seq: u16, ts: u32) {
        for (i, nal) in [&[0x67u8, 1, 2][..], &[0x68, 3], &[0x65, 4, 5, 6]]
            .iter()
            .enumerate()
        {
            let p = packet(ssrc, seq + i as u16, ts, i == 2, nal);
            s.handle_packet(now, &RtpPacket::parse(&p).expect("rtp"));
        }
    }

    #[test]
    fn switches_at_the_keyframe_and_defers_rate_limited_requests() {
        let t0 = Instant::now();
        let mut s = StreamSwitcher::new(SwitcherConfig::new(Ssrc(9), 96));
        s.switch_to(t0, Ssrc(1));
        assert_eq!(
            s.poll_event(),
            Some(SwitcherEvent::RequestKeyframe(Ssrc(1)))
        );
        // A predicted picture before the keyframe is dropped.
        let p = packet(1, 10, 900, true, &[0x41, 9]);
        s.handle_packet(t0, &RtpPacket::parse(&p).expect("rtp"));
        assert_eq!(s.poll_packet(), None);
        keyframe(&mut s, t0, 1, 11, 1800);
        assert_eq!(
            s.poll_event(),
            Some(SwitcherEvent::Switched {
                from: None,
                to: Ssrc(1)
            })
        );
        let out: Vec<Vec<u8>> = std::iter::from_fn(|| s.poll_packet()).collect();
        assert_eq!(out.len(), 3);
        let first = RtpPacket::parse(&out[0]).expect("rtp");
        assert_eq!((first.ssrc(), first.pt()), (Ssrc(9), 96));
        assert_eq!(s.counters().dropped_before_keyframe, 1);

        // The receiver asks 100 ms after the switch's request: held back, sent at 500 ms.
        s.request_keyframe(t0 + Duration::from_millis(100));
        assert_eq!(s.poll_event(), None);
        let at = s.poll_timeout().expect("deferred request");
        assert_eq!(at, t0 + Duration::from_millis(500));
        s.request_keyframe(t0 + Duration::from_millis(200));
        s.handle_timeout(at);
        assert_eq!(
            s.poll_event(),
            Some(SwitcherEvent::RequestKeyframe(Ssrc(1)))
        );
        assert_eq!(s.poll_event(), None, "two held-back requests make one");
        assert_eq!(s.poll_timeout(), None);

        // Switching to another source: its packets wait for its keyframe, then numbering
        // continues the old source's one by one.
        s.switch_to(t0 + Duration::from_secs(1), Ssrc(2));
        assert_eq!(
            s.poll_event(),
            Some(SwitcherEvent::RequestKeyframe(Ssrc(2)))
        );
        keyframe(&mut s, t0 + Duration::from_secs(1), 2, 500, 77_000);
        let out: Vec<Vec<u8>> = std::iter::from_fn(|| s.poll_packet()).collect();
        assert_eq!(out.len(), 3);
        let seqs: Vec<u16> = out
            .iter()
            .map(|d| RtpPacket::parse(d).expect("rtp").seq())
            .collect();
        let last_before = first.seq().wrapping_add(2);
        assert_eq!(seqs, [last_before + 1, last_before + 2, last_before + 3]);
        assert_eq!(s.counters().switches, 2);
    }
}
