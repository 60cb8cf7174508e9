//! One SIP-side RTP stream, sans-IO: symmetric RTP latching (RFC 4961 behaviour for
//! endpoints behind NAT), media timeout, receive statistics, our sender state, and RTCP
//! SR/RR/SDES generation on the RFC 3550 §6.2 schedule.
//!
//! # Using it
//!
//! - inputs: [`RtpSession::handle_rtp`], [`RtpSession::handle_rtcp`] (datagrams with their
//!   source and `now`), [`RtpSession::handle_timeout`];
//! - commands: [`RtpSession::next_packet`] builds our next RTP packet (send it to
//!   [`RtpSession::remote_rtp_addr`]), [`RtpSession::relatch`] after a re-INVITE;
//! - outputs: drain [`RtpSession::poll_transmit`] (RTCP) and [`RtpSession::poll_event`]
//!   after every input, then sleep until [`RtpSession::poll_timeout`].
//!
//! # Latching
//!
//! Until the first acceptable packet, the session sends to the address from SDP. The first
//! packet that parses as RTP, carries a negotiated payload type and, when SDP announced one,
//! the announced SSRC, fixes the remote address, whether it is the SDP address or a NAT
//! mapping of it. From then on packets from any other address are dropped and counted: a
//! stranger cannot inject audio into, or steal, an established call. The window before the
//! first packet remains; announcing `a=ssrc` narrows it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::media::rtp::rtcp::{self, ReceiverReport, RtcpPacket, Sdes, SenderReport};
use crate::media::rtp::stats::{self, NtpClock, ReceiverStats, RtcpScheduler};
use crate::media::rtp::{RtpError, RtpPacket, RtpWriter, SeqOutcome, Ssrc};

/// What the SDP negotiation and the call set up for one stream.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our SSRC for the packets we send.
    pub local_ssrc: Ssrc,
    /// RTP clock rate of the stream (8000 for G.711/G.722/telephone-event).
    pub clock_rate: u32,
    /// Remote RTP address from SDP (`c=` and `m=`).
    pub remote_rtp: SocketAddr,
    /// Remote RTCP address from SDP (`a=rtcp`, else RTP port + 1; equal to `remote_rtp`
    /// with `a=rtcp-mux`).
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share the port (RFC 5761).
    pub rtcp_mux: bool,
    /// Negotiated payload types, telephone-event included.
    pub payload_types: Vec<u8>,
    /// SSRC announced in SDP (`a=ssrc`), if any.
    pub remote_ssrc: Option<Ssrc>,
    /// No RTP for this long raises [`SessionEvent::MediaTimeout`] (`None`: never, e.g. on
    /// hold).
    pub media_timeout: Option<Duration>,
    /// Our RTCP CNAME.
    pub cname: String,
    /// Wallclock mapping for sender reports.
    pub ntp: NtpClock,
    /// Mean RTCP report interval.
    pub rtcp_interval: Duration,
    /// Seeds the RTCP randomisation and our initial sequence number and timestamp.
    pub seed: u64,
}

/// Something the call should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The remote RTP address is now fixed.
    Latched {
        /// The address packets come from.
        addr: SocketAddr,
        /// It differs from the SDP address (the peer is behind NAT).
        moved: bool,
    },
    /// The remote sender changed SSRC (from the latched address).
    RemoteSsrcChanged {
        /// The new SSRC.
        ssrc: Ssrc,
    },
    /// No RTP for the configured time.
    MediaTimeout,
    /// RTP came back after a timeout.
    MediaResumed,
    /// The remote source sent RTCP BYE.
    Bye {
        /// Its reason, if given.
        reason: Option<String>,
    },
    /// A new round-trip time measurement from a report about our stream.
    Rtt(Duration),
}

/// Why a datagram was not accepted as media.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// It is not valid RTP.
    #[error("not RTP: {0}")]
    Malformed(#[from] RtpError),
    /// It is not valid RTCP.
    #[error("not RTCP: {0}")]
    MalformedRtcp(#[from] rtcp::RtcpError),
    /// Its payload type was not negotiated.
    #[error("payload type {0} not negotiated")]
    PayloadType(u8),
    /// Before latching: not the SSRC announced in SDP.
    #[error("SSRC {0} not the announced one")]
    Ssrc(Ssrc),
    /// After latching: from another address than the latched one.
    #[error("from {0}, not the latched address")]
    Stranger(SocketAddr),
    /// The sequence number jumped too far to be trusted yet (RFC 3550 A.1).
    #[error("sequence number out of range")]
    Sequence,
}

/// An accepted RTP packet, for the jitter buffer or the DTMF receiver.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The packet view.
    pub packet: RtpPacket<'a>,
    /// Its extended sequence number.
    pub seq: u64,
    /// How it relates to the previous ones.
    pub outcome: SeqOutcome,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// Counters of what the session did with its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// RTP packets accepted.
    pub rtp_received: u64,
    /// Datagrams dropped because they came from a stranger after latching.
    pub stranger: u64,
    /// Datagrams dropped for any other reason.
    pub rejected: u64,
    /// RTP packets we built.
    pub packets_sent: u32,
    /// Payload octets we built.
    pub octets_sent: u32,
    /// RTCP compounds queued.
    pub rtcp_sent: u64,
}

/// Our sending state (RFC 3550 §5.1 fields and §6.4.1 counts).
#[derive(Debug, Clone)]
struct Sender {
    seq: u16,
    timestamp: u32,
    started: bool,
    last_sent_at: Option<Instant>,
    sent_since_report: bool,
}

/// One RTP stream; see the module docs.
#[derive(Debug)]
pub struct RtpSession {
    cfg: SessionConfig,
    latched_rtp: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    remote_ssrc: Option<Ssrc>,
    stats: ReceiverStats,
    last_rtp: Instant,
    timed_out: bool,
    sender: Sender,
    scheduler: RtcpScheduler,
    rtt: Option<Duration>,
    counters: SessionCounters,
    events: VecDeque<SessionEvent>,
    transmits: VecDeque<Transmit>,
}

// === impl RtpSession ===

impl RtpSession {
    /// A session starting at `now` (the media timeout counts from here).
    pub fn new(now: Instant, cfg: SessionConfig) -> Self {
        let mix = splitmix(cfg.seed);
        RtpSession {
            latched_rtp: None,
            latched_rtcp: None,
            remote_ssrc: cfg.remote_ssrc,
            stats: ReceiverStats::new(cfg.clock_rate),
            last_rtp: now,
            timed_out: false,
            sender: Sender {
                // RFC 3550 §5.1: random initial sequence number and timestamp.
                seq: mix as u16,
                timestamp: (mix >> 32) as u32,
                started: false,
                last_sent_at: None,
                sent_since_report: false,
            },
            scheduler: RtcpScheduler::new(now, cfg.rtcp_interval, splitmix(mix)),
            rtt: None,
            counters: SessionCounters::default(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            cfg,
        }
    }

    // --- getters ---

    /// Where to send our RTP: the latched address, else the SDP one.
    pub fn remote_rtp_addr(&self) -> SocketAddr {
        self.latched_rtp.unwrap_or(self.cfg.remote_rtp)
    }

    /// Where to send our RTCP.
    pub fn remote_rtcp_addr(&self) -> SocketAddr {
        match (self.latched_rtcp, self.latched_rtp) {
            (Some(a), _) => a,
            (None, Some(rtp)) if self.cfg.rtcp_mux => rtp,
            _ => self.cfg.remote_rtcp,
        }
    }

    /// The latched remote RTP address, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched_rtp
    }

    /// Receive statistics of the remote stream.
    pub fn receiver_stats(&self) -> &ReceiverStats {
        &self.stats
    }

    /// The last round-trip time measured from RTCP.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Counters.
    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    // --- inputs ---

    /// Handles one datagram received on the RTP port (with RTCP mux, check
    /// [`rtcp::is_rtcp`] first and pass RTCP to [`RtpSession::handle_rtcp`]).
    pub fn handle_rtp<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &'a [u8],
    ) -> Result<Received<'a>, Dropped> {
        let res = self.accept_rtp(now, from, bytes);
        match &res {
            Ok(_) => self.counters.rtp_received += 1,
            Err(Dropped::Stranger(addr)) => {
                self.counters.stranger += 1;
                debug!(from = %addr, count = self.counters.stranger, "RTP from a stranger dropped");
            }
            Err(e) => {
                self.counters.rejected += 1;
                trace!(%e, "RTP dropped");
            }
        }
        res
    }

    fn accept_rtp<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &'a [u8],
    ) -> Result<Received<'a>, Dropped> {
        if let Some(latched) = self.latched_rtp {
            if from != latched {
                return Err(Dropped::Stranger(from));
            }
        }
        let packet = RtpPacket::parse(bytes)?;
        if !self.cfg.payload_types.contains(&packet.pt()) {
            return Err(Dropped::PayloadType(packet.pt()));
        }
        let ssrc = packet.ssrc();
        if self.latched_rtp.is_none() {
            if let Some(expected) = self.cfg.remote_ssrc {
                if ssrc != expected {
                    return Err(Dropped::Ssrc(ssrc));
                }
            }
            self.latched_rtp = Some(from);
            let moved = from != self.cfg.remote_rtp;
            debug!(addr = %from, moved, "RTP latched");
            self.events
                .push_back(SessionEvent::Latched { addr: from, moved });
        }
        if self.remote_ssrc != Some(ssrc) {
            if self.remote_ssrc.is_some() {
                debug!(%ssrc, "remote SSRC changed");
                self.events
                    .push_back(SessionEvent::RemoteSsrcChanged { ssrc });
            }
            self.remote_ssrc = Some(ssrc);
            self.stats = ReceiverStats::new(self.cfg.clock_rate);
        }
        let outcome = self.stats.handle_rtp(now, packet.seq(), packet.timestamp());
        let seq = outcome.ext().ok_or(Dropped::Sequence)?;
        self.last_rtp = now;
        if self.timed_out {
            self.timed_out = false;
            self.events.push_back(SessionEvent::MediaResumed);
        }
        Ok(Received {
            packet,
            seq,
            outcome,
        })
    }

    /// Handles one RTCP datagram. Malformed or stranger datagrams are dropped (and
    /// counted); the error says why.
    pub fn handle_rtcp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Dropped> {
        // With mux, RTCP must come from the latched RTP address; without, it latches on
        // its own, but only once RTP has latched and from the same host.
        let allowed = match (self.latched_rtcp, self.latched_rtp) {
            (Some(a), _) => a == from,
            (None, Some(rtp)) if self.cfg.rtcp_mux => rtp == from,
            (None, Some(rtp)) => rtp.ip() == from.ip(),
            (None, None) => false,
        };
        if !allowed {
            self.counters.stranger += 1;
            return Err(Dropped::Stranger(from));
        }
        let packets = match rtcp::parse_compound(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.counters.rejected += 1;
                trace!(%e, "RTCP dropped");
                return Err(Dropped::MalformedRtcp(e));
            }
        };
        self.latched_rtcp.get_or_insert(from);
        for p in packets {
            match p {
                RtcpPacket::SenderReport(sr) => {
                    if Some(sr.ssrc) == self.remote_ssrc {
                        self.stats.handle_sender_report(now, &sr);
                    }
                    self.handle_report_blocks(now, &sr.reports);
                }
                RtcpPacket::ReceiverReport(rr) => self.handle_report_blocks(now, &rr.reports),
                RtcpPacket::Bye(bye)
                    if self.remote_ssrc.is_some_and(|s| bye.ssrcs.contains(&s)) =>
                {
                    self.events
                        .push_back(SessionEvent::Bye { reason: bye.reason });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn handle_report_blocks(&mut self, now: Instant, blocks: &[rtcp::ReportBlock]) {
        for b in blocks.iter().filter(|b| b.ssrc == self.cfg.local_ssrc) {
            if let Some(rtt) = stats::rtt(self.cfg.ntp.ntp(now), b) {
                self.rtt = Some(rtt);
                self.events.push_back(SessionEvent::Rtt(rtt));
            }
        }
    }

    /// Advances timers: media timeout and RTCP reports.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(limit) = self.cfg.media_timeout {
            if !self.timed_out && now >= self.last_rtp + limit {
                self.timed_out = true;
                debug!(after = ?limit, "media timeout");
                self.events.push_back(SessionEvent::MediaTimeout);
            }
        }
        if self.scheduler.handle_timeout(now) {
            let payload = self.build_report(now);
            self.counters.rtcp_sent += 1;
            self.transmits.push_back(Transmit {
                destination: self.remote_rtcp_addr(),
                payload,
            });
        }
    }

    /// Builds the compound report: SR if we sent since the last report, else RR; one
    /// report block for the remote source once it sent something; SDES CNAME.
    fn build_report(&mut self, now: Instant) -> Vec<u8> {
        let block = self
            .remote_ssrc
            .and_then(|ssrc| self.stats.report_block(now, ssrc));
        let reports: Vec<_> = block.into_iter().collect();
        let first = if self.sender.sent_since_report {
            self.sender.sent_since_report = false;
            let elapsed = self
                .sender
                .last_sent_at
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            let ticks =
                (elapsed.as_nanos() * u128::from(self.cfg.clock_rate) / 1_000_000_000) as u32;
            RtcpPacket::SenderReport(SenderReport {
                ssrc: self.cfg.local_ssrc,
                ntp_time: self.cfg.ntp.ntp(now),
                rtp_time: self.sender.timestamp.wrapping_add(ticks),
                packet_count: self.counters.packets_sent,
                octet_count: self.counters.octets_sent,
                reports,
            })
        } else {
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: self.cfg.local_ssrc,
                reports,
            })
        };
        let sdes = RtcpPacket::Sdes(Sdes::cname(self.cfg.local_ssrc, &self.cfg.cname));
        let mut out = Vec::with_capacity(128);
        if let Err(e) = rtcp::write_compound(&[first, sdes], &mut out) {
            // Only an over-long CNAME can fail here: send the report without it.
            warn!(%e, "RTCP SDES dropped");
            out.clear();
        }
        out
    }

    // --- commands ---

    /// Builds our next RTP packet: the timestamp advances by `ts_increment` (0 for the
    /// packets of one DTMF event) and the sequence number by one. The payload type is
    /// masked to 7 bits.
    pub fn next_packet(
        &mut self,
        now: Instant,
        pt: u8,
        ts_increment: u32,
        marker: bool,
        payload: &[u8],
    ) -> Vec<u8> {
        let s = &mut self.sender;
        if s.started {
            s.seq = s.seq.wrapping_add(1);
            s.timestamp = s.timestamp.wrapping_add(ts_increment);
        }
        s.started = true;
        s.last_sent_at = Some(now);
        s.sent_since_report = true;
        self.counters.packets_sent = self.counters.packets_sent.wrapping_add(1);
        self.counters.octets_sent = self.counters.octets_sent.wrapping_add(payload.len() as u32);
        let mut out = Vec::with_capacity(12 + payload.len());
        // Cannot fail: no CSRC, no extension, 7-bit payload type, growable buffer.
        let _ = RtpWriter::new(pt & 0x7f, s.seq, s.timestamp, self.cfg.local_ssrc)
            .marker(marker)
            .write(payload, &mut out);
        out
    }

    /// Forgets the latched addresses, e.g. after a re-INVITE moved the remote media.
    pub fn relatch(&mut self, remote_rtp: SocketAddr, remote_rtcp: SocketAddr) {
        self.cfg.remote_rtp = remote_rtp;
        self.cfg.remote_rtcp = remote_rtcp;
        self.latched_rtp = None;
        self.latched_rtcp = None;
    }

    /// Enables, changes or disables (`None`, e.g. on hold) the media timeout.
    pub fn set_media_timeout(&mut self, now: Instant, timeout: Option<Duration>) {
        self.cfg.media_timeout = timeout;
        self.last_rtp = now;
        self.timed_out = false;
    }

    // --- outputs ---

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// The next RTCP datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When to call [`RtpSession::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Instant {
        let rtcp = self.scheduler.poll_timeout();
        match self.cfg.media_timeout {
            Some(limit) if !self.timed_out => rtcp.min(self.last_rtp + limit),
            _ => rtcp,
        }
    }
}

/// SplitMix64: spreads a seed into well-mixed bits.
fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::rtcp::{parse_compound, ReportBlock};

    const MS: Duration = Duration::from_millis(1);
    const PEER_SSRC: Ssrc = Ssrc(0xabc);
    const OUR_SSRC: Ssrc = Ssrc(0x123);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn config(t0: Instant) -> SessionConfig {
        SessionConfig {
            local_ssrc: OUR_SSRC,
            clock_rate: 8000,
            remote_rtp: addr("192.168.1.10:4000"),
            remote_rtcp: addr("192.168.1.10:4001"),
            rtcp_mux: false,
            payload_types: vec![0, 101],
            remote_ssrc: None,
            media_timeout: Some(Duration::from_secs(5)),
            cname: "jonction@test".into(),
            ntp: NtpClock::new(t0, Duration::from_secs(1_700_000_000)),
            rtcp_interval: Duration::from_secs(5),
            seed: 7,
        }
    }

    fn rtp(ssrc: Ssrc, pt: u8, seq: u16) -> Vec<u8> {
        let mut v = Vec::new();
        RtpWriter::new(pt, seq, u32::from(seq) * 160, ssrc)
            .write(&[0xff; 160], &mut v)
            .unwrap();
        v
    }

    #[test]
    fn latches_to_nat_address_and_rejects_strangers() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(t0, config(t0));
        let nat = addr("203.0.113.5:31000");
        assert_eq!(s.remote_rtp_addr(), addr("192.168.1.10:4000"));
        // Wrong payload type does not latch.
        assert_eq!(
            s.handle_rtp(t0, nat, &rtp(PEER_SSRC, 8, 1)).unwrap_err(),
            Dropped::PayloadType(8)
        );
        assert_eq!(s.latched(), None);
        // Garbage does not latch.
        assert!(matches!(
            s.handle_rtp(t0, nat, &[0x80, 0, 1]),
            Err(Dropped::Malformed(_))
        ));
        let first = rtp(PEER_SSRC, 0, 1);
        let r = s.handle_rtp(t0, nat, &first).unwrap();
        assert_eq!(r.packet.payload().len(), 160);
        assert_eq!(s.latched(), Some(nat));
        assert_eq!(s.remote_rtp_addr(), nat);
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::Latched {
                addr: nat,
                moved: true
            })
        );
        assert!(s
            .handle_rtp(t0 + 20 * MS, nat, &rtp(PEER_SSRC, 0, 2))
            .is_ok());
        // An injected packet from a stranger, even with the right SSRC and the SDP address.
        let stranger = addr("198.51.100.66:4000");
        for from in [
            stranger,
            addr("192.168.1.10:4000"),
            addr("203.0.113.5:31001"),
        ] {
            assert_eq!(
                s.handle_rtp(t0 + 30 * MS, from, &rtp(PEER_SSRC, 0, 3))
                    .unwrap_err(),
                Dropped::Stranger(from)
            );
        }
        assert_eq!(s.counters().stranger, 3);
        assert_eq!(s.counters().rejected, 2);
        assert_eq!(s.counters().rtp_received, 2);
        assert_eq!(s.remote_rtp_addr(), nat);
        // The genuine stream continues undisturbed.
        assert_eq!(
            s.handle_rtp(t0 + 40 * MS, nat, &rtp(PEER_SSRC, 0, 3))
                .unwrap()
                .seq,
            3
        );
        // RTCP from the stranger is refused too.
        assert_eq!(
            s.handle_rtcp(t0, stranger, &[0x80, 0xc9, 0, 1, 0, 0, 0, 1]),
            Err(Dropped::Stranger(stranger))
        );
    }

    #[test]
    fn announced_ssrc_is_required_before_latching() {
        let t0 = Instant::now();
        let mut cfg = config(t0);
        cfg.remote_ssrc = Some(PEER_SSRC);
        let mut s = RtpSession::new(t0, cfg);
        let sdp = addr("192.168.1.10:4000");
        assert_eq!(
            s.handle_rtp(t0, addr("198.51.100.66:9"), &rtp(Ssrc(666), 0, 1))
                .unwrap_err(),
            Dropped::Ssrc(Ssrc(666))
        );
        assert!(s.handle_rtp(t0, sdp, &rtp(PEER_SSRC, 0, 1)).is_ok());
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::Latched {
                addr: sdp,
                moved: false
            })
        );
        // After a re-INVITE the session latches afresh.
        s.relatch(addr("10.0.0.1:5000"), addr("10.0.0.1:5001"));
        assert_eq!(s.latched(), None);
        assert!(s
            .handle_rtp(t0, addr("10.0.0.1:5000"), &rtp(PEER_SSRC, 0, 2))
            .is_ok());
    }

    #[test]
    fn media_timeout_and_resume() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(t0, config(t0));
        let from = addr("192.168.1.10:4000");
        s.handle_rtp(t0, from, &rtp(PEER_SSRC, 0, 1)).unwrap();
        s.poll_event();
        let mut now = t0;
        let mut timeouts = 0;
        // Drive the timers for 12 s without RTP.
        while now < t0 + Duration::from_secs(12) {
            now = s.poll_timeout().max(now + MS);
            s.handle_timeout(now);
            while let Some(e) = s.poll_event() {
                if e == SessionEvent::MediaTimeout {
                    timeouts += 1;
                    assert!(now >= t0 + Duration::from_secs(5));
                    assert!(now < t0 + Duration::from_secs(5) + 2 * MS);
                }
            }
        }
        assert_eq!(timeouts, 1);
        s.handle_rtp(now, from, &rtp(PEER_SSRC, 0, 2)).unwrap();
        assert_eq!(s.poll_event(), Some(SessionEvent::MediaResumed));
        // Disabled on hold.
        s.set_media_timeout(now, None);
        s.handle_timeout(now + Duration::from_secs(60));
        assert_ne!(s.poll_event(), Some(SessionEvent::MediaTimeout));
    }

    fn next_report(s: &mut RtpSession, mut now: Instant) -> (Instant, Transmit) {
        loop {
            now = s.poll_timeout().max(now);
            s.handle_timeout(now);
            if let Some(t) = s.poll_transmit() {
                return (now, t);
            }
            now += MS;
        }
    }

    #[test]
    fn receiver_report_when_not_sending() {
        let t0 = Instant::now();
        let mut cfg = config(t0);
        cfg.rtcp_mux = true;
        cfg.remote_rtcp = cfg.remote_rtp;
        let mut s = RtpSession::new(t0, cfg);
        let nat = addr("203.0.113.5:31000");
        for seq in 1..=10u16 {
            if seq != 4 {
                s.handle_rtp(t0 + 20 * MS * u32::from(seq), nat, &rtp(PEER_SSRC, 0, seq))
                    .unwrap();
            }
        }
        let (_, t) = next_report(&mut s, t0);
        assert_eq!(
            t.destination, nat,
            "RTCP follows the latched address with mux"
        );
        let p = parse_compound(&t.payload).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &p[0] else {
            panic!("{p:?}")
        };
        assert_eq!(rr.ssrc, OUR_SSRC);
        let b = rr.reports[0];
        assert_eq!(b.ssrc, PEER_SSRC);
        assert_eq!(b.cumulative_lost, 1);
        assert_eq!(b.fraction_lost, 25); // 1/10 * 256
        assert_eq!(b.extended_highest_seq, 10);
        assert_eq!(b.last_sr, 0);
        let RtcpPacket::Sdes(sdes) = &p[1] else {
            panic!("{p:?}")
        };
        assert_eq!(sdes.cname_of(OUR_SSRC), Some("jonction@test"));
    }

    #[test]
    fn sender_report_when_sending_and_rtt_from_the_answer() {
        let t0 = Instant::now();
        let cfg = config(t0);
        let ntp = cfg.ntp;
        let mut s = RtpSession::new(t0, cfg);
        let mut first_ts = None;
        for i in 0..50u32 {
            let pkt = s.next_packet(t0 + 20 * MS * i, 0, 160, i == 0, &[0xd5; 160]);
            let p = RtpPacket::parse(&pkt).unwrap();
            assert_eq!(p.ssrc(), OUR_SSRC);
            assert_eq!(p.marker(), i == 0);
            let first = *first_ts.get_or_insert((p.seq(), p.timestamp()));
            assert_eq!(p.seq(), first.0.wrapping_add(i as u16));
            assert_eq!(p.timestamp(), first.1.wrapping_add(160 * i));
        }
        let (at, t) = next_report(&mut s, t0);
        // Not latched, no mux: to the SDP RTCP address.
        assert_eq!(t.destination, addr("192.168.1.10:4001"));
        let p = parse_compound(&t.payload).unwrap();
        let RtcpPacket::SenderReport(sr) = &p[0] else {
            panic!("{p:?}")
        };
        assert_eq!((sr.packet_count, sr.octet_count), (50, 8000));
        assert_eq!(sr.ntp_time, ntp.ntp(at));
        assert!(sr.reports.is_empty());
        // RTP time of the report: last packet's timestamp plus the time since it was sent.
        let last_ts = first_ts.unwrap().1.wrapping_add(160 * 49);
        let since = at - (t0 + 20 * MS * 49);
        let expected = last_ts.wrapping_add((since.as_millis() * 8) as u32);
        assert!(
            sr.rtp_time.wrapping_sub(expected) <= 8,
            "{} vs {expected}",
            sr.rtp_time
        );

        // The peer (latched at the SDP address) answers 150 ms later with an RR that held
        // our SR for 100 ms: RTT 50 ms.
        let from = addr("192.168.1.10:4000");
        s.handle_rtp(at, from, &rtp(PEER_SSRC, 0, 1)).unwrap();
        let rr = RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: PEER_SSRC,
            reports: vec![ReportBlock {
                ssrc: OUR_SSRC,
                last_sr: stats::ntp_compact(sr.ntp_time),
                delay_since_last_sr: 100 * 65536 / 1000,
                ..Default::default()
            }],
        });
        let mut bytes = Vec::new();
        rr.write(&mut bytes).unwrap();
        s.handle_rtcp(at + 150 * MS, addr("192.168.1.10:4001"), &bytes)
            .unwrap();
        let rtt = s.rtt().unwrap();
        assert!(rtt.abs_diff(50 * MS) < MS, "{rtt:?}");

        // Not sending any more: the next report is an RR with a block about the peer.
        let (_, t) = next_report(&mut s, at + MS);
        let p = parse_compound(&t.payload).unwrap();
        assert!(matches!(&p[0], RtcpPacket::ReceiverReport(rr) if rr.reports.len() == 1));
    }

    #[test]
    fn bye_and_ssrc_change_are_reported() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(t0, config(t0));
        let from = addr("192.168.1.10:4000");
        s.handle_rtp(t0, from, &rtp(PEER_SSRC, 0, 1)).unwrap();
        s.handle_rtp(t0, from, &rtp(Ssrc(77), 0, 900)).unwrap();
        assert_eq!(
            s.poll_event()
                .map(|e| matches!(e, SessionEvent::Latched { .. })),
            Some(true)
        );
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::RemoteSsrcChanged { ssrc: Ssrc(77) })
        );
        let mut bytes = Vec::new();
        RtcpPacket::Bye(rtcp::Bye {
            ssrcs: vec![Ssrc(77)],
            reason: Some("bye".into()),
        })
        .write(&mut bytes)
        .unwrap();
        s.handle_rtcp(t0, addr("192.168.1.10:4001"), &bytes)
            .unwrap();
        assert_eq!(
            s.poll_event(),
            Some(SessionEvent::Bye {
                reason: Some("bye".into())
            })
        );
    }
}
