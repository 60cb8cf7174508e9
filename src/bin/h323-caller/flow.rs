//! The caller's call flow: one event loop over the call-signalling TCP connection, the H.245
//! one (separate H.245), the RTP/RTCP sockets and a timer; the sans-IO [`Call`] and [`H245`]
//! machines do the protocol work, [`Caller`] decides what to do next.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use jonction::h323::asn::multimedia_system_control::{
    CommandMessage, MultimediaSystemControlMessage,
};
use jonction::h323::asn::rasn::aper;
use jonction::h323::call::{
    self, Alias, Call, Config, DialParams, Direction, Event, Guid, Proposal, ReleaseOrigin,
};
use jonction::h323::h245::{
    self, AudioCodec, H245Config, H245Event, MediaAddresses, MediaKind, H245,
};
use jonction::h323::tpkt::{self, TpktReader};
use jonction::media::codec::Codec as MediaCodec;

use crate::media::{Receiver, Sender, FRAME_MS};
use crate::{Cli, CodecArg, Mode};

/// Q.850 normal call clearing.
const NORMAL_CLEARING: u8 = 16;
/// How long we wait for the gateway's EndSessionCommand after ours.
const END_SESSION_WAIT: Duration = Duration::from_secs(1);
/// How long we wait for the gateway's ReleaseComplete after its EndSessionCommand.
const PEER_RELEASE_WAIT: Duration = Duration::from_secs(3);
/// After Connect, how long we wait for the gateway's media address.
const MEDIA_WAIT: Duration = Duration::from_secs(10);
/// After a Connect without h245Address (no tunnelling), how long we wait for the gateway's
/// Facility(startH245) before offering our own H.245 listener.
const START_H245_WAIT: Duration = Duration::from_secs(1);
/// Bound on every TCP connect and write.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// The H.245 part of the report.
#[derive(Debug, Default, Serialize)]
pub struct H245Report {
    /// `none`, `tunnel` or `separate`.
    pub transport: &'static str,
    /// The gateway acknowledged our TerminalCapabilitySet.
    pub tcs_acked: bool,
    /// We received the gateway's TerminalCapabilitySet.
    pub peer_tcs: bool,
    /// Our master/slave role.
    pub msd: Option<&'static str>,
    /// Capabilities exchanged and MSD done.
    pub ready: bool,
    /// Logical channels opened (ours acknowledged plus the gateway's accepted).
    pub channels_opened: u32,
    /// The session ended (EndSessionCommand sent or received).
    pub session_ended: bool,
    /// The gateway sent EndSessionCommand first.
    pub session_ended_by_peer: bool,
}

/// The JSON line printed at the end.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The `--mode`.
    pub mode: &'static str,
    /// The gateway's address.
    pub gateway: String,
    /// Connect received.
    pub connected: bool,
    /// `accepted`, `refused` or `none`.
    pub fast_start: &'static str,
    /// H.245 tunnelling as agreed in the gateway's answer (null: no answer).
    pub tunnelling: Option<bool>,
    /// H.245.
    pub h245: H245Report,
    /// The codec we send.
    pub codec: String,
    /// The codec the gateway declared for its channel to us, if any.
    pub rx_codec: Option<String>,
    /// Our RTP address.
    pub local_rtp: Option<String>,
    /// Where we send RTP.
    pub remote_rtp: Option<String>,
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received.
    pub rtp_received: u64,
    /// Received datagrams that were not RTP or did not decode.
    pub rtp_bad: u64,
    /// The payload type of the last RTP packet decoded.
    pub rx_payload_type: Option<u8>,
    /// Dominant frequency of the last ~1.5 s received.
    pub rx_tone_hz: Option<f64>,
    /// RMS level of the last ~1.5 s received (dBFS, RMS re full scale: our -10 dBFS-peak
    /// tone measures about -13).
    pub rx_rms_dbfs: Option<f64>,
    /// Seconds from the first RTP sent to the end.
    pub media_seconds: f64,
    /// Digits sent as UserInputIndication.
    pub digits_sent: String,
    /// Digits received (H.245 UserInputIndication and Q.931 keypad).
    pub digits_received: String,
    /// Who started the clearing: `local`, `peer`, `timeout`, `error`, `closed` (TCP closed
    /// without ReleaseComplete); null if the call never started.
    pub released_by: Option<&'static str>,
    /// The Q.850 cause of the ReleaseComplete (sent or received).
    pub cause: Option<u8>,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// Where H.245 travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    None,
    Tunnel,
    Separate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// We sent EndSessionCommand; ReleaseComplete at `until` or on the gateway's reply.
    EndingH245 {
        until: Instant,
    },
    /// The gateway sent EndSessionCommand; we release at `until` unless it does first.
    PeerEnding {
        until: Instant,
    },
    Released,
}

/// The caller's state and decisions (no I/O).
struct Caller<'a> {
    cli: &'a Cli,
    started: Instant,
    call: Call,
    h245: H245,
    h245_started: bool,
    transport: Transport,
    /// The gateway's H.245 listener, once known.
    h245_address: Option<SocketAddr>,
    /// I/O requests for the loop.
    connect_h245_to: Option<SocketAddr>,
    listen_at: Option<Instant>,
    report: Report,
    fast_start_accepted: bool,
    remote_rtp: Option<SocketAddr>,
    sender: Option<Sender>,
    receiver: Receiver,
    media_start: Option<Instant>,
    media_end: Option<Instant>,
    next_tick: Instant,
    connected_at: Option<Instant>,
    digits_todo: VecDeque<char>,
    next_digit: Option<Instant>,
    phase: Phase,
    /// Who started the clearing.
    initiator: Option<&'static str>,
    peer_end_session_seen: bool,
}

fn media_codec(c: CodecArg) -> MediaCodec {
    match c {
        CodecArg::Pcmu => MediaCodec::Pcmu,
        CodecArg::Pcma => MediaCodec::Pcma,
        CodecArg::G722 => MediaCodec::G722,
    }
}

fn call_codec(c: CodecArg) -> call::Codec {
    match c {
        CodecArg::Pcmu => call::Codec::Pcmu,
        CodecArg::Pcma => call::Codec::Pcma,
        CodecArg::G722 => call::Codec::G722,
    }
}

fn h245_codec(c: CodecArg) -> AudioCodec {
    match c {
        CodecArg::Pcmu => AudioCodec::Pcmu,
        CodecArg::Pcma => AudioCodec::Pcma,
        CodecArg::G722 => AudioCodec::G722,
    }
}

fn from_call_codec(c: call::Codec) -> Option<MediaCodec> {
    match c {
        call::Codec::Pcmu => Some(MediaCodec::Pcmu),
        call::Codec::Pcma => Some(MediaCodec::Pcma),
        call::Codec::G722 => Some(MediaCodec::G722),
        _ => None,
    }
}

fn from_h245_codec(c: h245::Codec) -> Option<MediaCodec> {
    match c {
        h245::Codec::Audio { codec, .. } => Some(match codec {
            AudioCodec::Pcmu => MediaCodec::Pcmu,
            AudioCodec::Pcma => MediaCodec::Pcma,
            AudioCodec::G722 => MediaCodec::G722,
        }),
        h245::Codec::H264(_) => None,
    }
}

/// Whether `pdu` is an EndSessionCommand.
fn is_end_session(pdu: &[u8]) -> bool {
    matches!(
        aper::decode::<MultimediaSystemControlMessage>(pdu),
        Ok(MultimediaSystemControlMessage::command(
            CommandMessage::endSessionCommand(_)
        ))
    )
}

impl Caller<'_> {
    fn error(&mut self, e: impl Into<String>) {
        let e = e.into();
        eprintln!("h323-caller: error: {e}");
        self.report.errors.push(e);
    }

    fn log(&self, what: impl std::fmt::Display) {
        eprintln!(
            "h323-caller: {:7.3} {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn initiate(&mut self, who: &'static str) {
        if self.initiator.is_none() {
            self.initiator = Some(who);
        }
    }

    /// Handles every pending event of both machines.
    fn process(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(ev) = self.call.poll_event() {
                any = true;
                self.on_call_event(now, ev);
            }
            while let Some(ev) = self.h245.poll_event() {
                any = true;
                self.on_h245_event(now, ev);
            }
            if !any {
                break;
            }
        }
    }

    fn on_call_event(&mut self, now: Instant, ev: Event) {
        match ev {
            Event::Proceeding(a) | Event::Alerting(a) | Event::Progress(a) => {
                self.log(format_args!(
                    "response: tunnelling {}, h245 address {:?}, vendor {:?}",
                    a.h245_tunnelling, a.h245_address, a.vendor
                ));
                self.report.tunnelling = Some(a.h245_tunnelling);
                if a.h245_address.is_some() {
                    self.h245_address = a.h245_address;
                }
            }
            Event::Connected(a) => {
                self.log(format_args!(
                    "Connect: tunnelling {}, fast start {} channel(s), refused {}, h245 address {:?}",
                    a.h245_tunnelling,
                    a.fast_start.len(),
                    a.fast_connect_refused,
                    a.h245_address
                ));
                self.report.connected = true;
                self.connected_at = Some(now);
                self.report.tunnelling = Some(a.h245_tunnelling);
                if a.h245_address.is_some() {
                    self.h245_address = a.h245_address;
                }
                if a.h245_tunnelling {
                    self.transport = Transport::Tunnel;
                    self.start_h245(now);
                } else if self.transport == Transport::None {
                    match self.h245_address {
                        Some(addr) => self.connect_h245_to = Some(addr),
                        None => self.listen_at = Some(now + START_H245_WAIT),
                    }
                }
            }
            Event::FastStart(channels) => {
                self.log(format_args!("fast start accepted: {channels:?}"));
                self.report.fast_start = "accepted";
                self.fast_start_accepted = true;
                for ch in channels {
                    match (ch.direction, from_call_codec(ch.codec), ch.rtp) {
                        (Direction::CallerToCallee, Some(codec), Some(rtp)) => {
                            self.start_media(now, codec, rtp)
                        }
                        (Direction::CallerToCallee, _, _) => self.error(format!(
                            "fast start: unusable CallerToCallee answer {:?} rtp {:?}",
                            ch.codec, ch.rtp
                        )),
                        (Direction::CalleeToCaller, codec, _) => {
                            self.report.rx_codec = Some(
                                codec.map_or_else(|| format!("{:?}", ch.codec), |c| c.to_string()),
                            )
                        }
                    }
                }
                if self.remote_rtp.is_none() {
                    self.error("fast start answer without a CallerToCallee channel");
                }
            }
            Event::FastConnectRefused => {
                self.log("fast start refused");
                self.report.fast_start = "refused";
            }
            Event::H245Address(addr) => {
                self.log(format_args!("gateway H.245 address {addr}"));
                self.h245_address = Some(addr);
                if self.report.connected && self.transport == Transport::None {
                    self.listen_at = None;
                    self.connect_h245_to = Some(addr);
                }
            }
            Event::H245(pdu) => {
                if !self.h245_started && self.transport == Transport::None {
                    self.transport = Transport::Tunnel;
                    self.start_h245(now);
                }
                self.h245_bytes(now, &pdu);
            }
            Event::Digits(d) => {
                self.log(format_args!("Q.931 keypad {d:?}"));
                self.report.digits_received.push_str(&d);
            }
            Event::Status { cause, call_state } => {
                self.log(format_args!(
                    "Status: cause {cause:?}, call state {call_state:?}"
                ));
            }
            Event::Released { cause, origin } => {
                self.log(format_args!("released: cause {cause}, {origin:?}"));
                self.report.cause = Some(cause);
                match origin {
                    ReleaseOrigin::Local => self.initiate("local"),
                    ReleaseOrigin::Peer => self.initiate("peer"),
                    ReleaseOrigin::Timeout => {
                        self.error(format!("call timer expired (cause {cause})"));
                        self.initiate("timeout");
                    }
                    ReleaseOrigin::ProtocolError(e) => {
                        self.error(format!("protocol error from the gateway: {e}"));
                        self.initiate("error");
                    }
                }
                self.phase = Phase::Released;
            }
            other => self.log(format_args!("unexpected event {other:?}")),
        }
    }

    fn h245_bytes(&mut self, now: Instant, pdu: &[u8]) {
        if self.h245.is_ended() && is_end_session(pdu) {
            self.log("gateway's EndSessionCommand");
            self.peer_end_session_seen = true;
        }
        self.h245.handle_bytes(now, pdu);
    }

    fn start_h245(&mut self, now: Instant) {
        if !self.h245_started {
            self.log(format_args!("H.245 starts ({:?})", self.transport));
            self.h245_started = true;
            self.report.h245.transport = match self.transport {
                Transport::Tunnel => "tunnel",
                Transport::Separate => "separate",
                Transport::None => "none",
            };
            self.h245.start(now);
        }
    }

    fn on_h245_event(&mut self, now: Instant, ev: H245Event) {
        match ev {
            H245Event::PeerCapabilities(c) => {
                self.log(format_args!("H.245 gateway capabilities {c:?}"));
                self.report.h245.peer_tcs = true;
            }
            H245Event::CapabilitiesAcknowledged => {
                self.log("H.245 TCS acknowledged");
                self.report.h245.tcs_acked = true;
            }
            H245Event::CapabilitiesRejected => self.error("H.245: our TCS was rejected"),
            H245Event::PeerCapabilitiesRejected => {
                self.error("H.245: we rejected the gateway's TCS")
            }
            H245Event::MasterSlave(role) => {
                self.log(format_args!("H.245 MSD: we are {role:?}"));
                self.report.h245.msd = Some(match role {
                    h245::Role::Master => "master",
                    h245::Role::Slave => "slave",
                });
            }
            H245Event::MasterSlaveFailed(f) => self.error(format!("H.245 MSD failed: {f:?}")),
            H245Event::Ready => {
                self.log("H.245 ready");
                self.report.h245.ready = true;
                if !self.fast_start_accepted {
                    match self.h245.open_channel(now, MediaKind::Audio) {
                        Ok(n) => self.log(format_args!("H.245 opening audio channel {n}")),
                        Err(e) => self.error(format!("H.245 open_channel: {e:?}")),
                    }
                }
            }
            H245Event::ChannelOpened(info) => {
                self.log(format_args!("H.245 channel opened {info:?}"));
                self.report.h245.channels_opened += 1;
                match info.direction {
                    h245::Direction::Outgoing => {
                        match (from_h245_codec(info.codec), info.remote_rtp) {
                            (Some(codec), Some(rtp)) => self.start_media(now, codec, rtp),
                            _ => self.error(format!(
                                "our channel {} acknowledged without a usable codec/address: {:?} {:?}",
                                info.number, info.codec, info.remote_rtp
                            )),
                        }
                    }
                    h245::Direction::Incoming => {
                        self.report.rx_codec = Some(
                            from_h245_codec(info.codec)
                                .map_or_else(|| format!("{:?}", info.codec), |c| c.to_string()),
                        );
                    }
                }
            }
            H245Event::ChannelRejected { number, cause } => self.error(format!(
                "H.245: gateway rejected our channel {number}: {cause:?}"
            )),
            H245Event::IncomingChannelRejected { number, cause } => self.error(format!(
                "H.245: we rejected the gateway's channel {number}: {cause:?}"
            )),
            H245Event::UserInput { key, duration } => {
                self.log(format_args!("H.245 user input {key:?} ({duration:?} ms)"));
                self.report.digits_received.push(key);
            }
            H245Event::SessionEnded { by_peer } => {
                self.log(format_args!("H.245 session ended (by gateway: {by_peer})"));
                self.report.h245.session_ended = true;
                if by_peer {
                    self.report.h245.session_ended_by_peer = true;
                    self.initiate("peer");
                    if self.phase == Phase::Running {
                        self.phase = Phase::PeerEnding {
                            until: now + PEER_RELEASE_WAIT,
                        };
                    }
                }
            }
            H245Event::Timeout(t) => self.error(format!("H.245 timer {t:?} expired")),
            H245Event::DecodeError(e) => self.error(format!("H.245 decode error: {e}")),
            other => self.log(format_args!("H.245 {other:?}")),
        }
    }

    /// We know where to send: media starts (or changes codec/address).
    fn start_media(&mut self, now: Instant, codec: MediaCodec, rtp: SocketAddr) {
        self.log(format_args!("media: sending {codec} to {rtp}"));
        if self.sender.as_ref().is_none_or(|s| s.codec() != codec) {
            match Sender::new(codec, self.cli.tone_hz) {
                Ok(s) => self.sender = Some(s),
                Err(e) => return self.error(format!("encoder {codec}: {e}")),
            }
        }
        self.report.codec = codec.to_string();
        self.remote_rtp = Some(rtp);
        self.report.remote_rtp = Some(rtp.to_string());
        if self.media_start.is_none() {
            self.media_start = Some(now);
            self.next_tick = now;
            self.next_digit = Some(now + Duration::from_secs_f64(self.cli.digits_at));
        }
    }

    /// The RTP packets due at `now`.
    fn media_packets(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.phase == Phase::Released || self.remote_rtp.is_none() {
            return out;
        }
        let Some(sender) = self.sender.as_mut() else {
            return out;
        };
        let frame = Duration::from_millis(u64::from(FRAME_MS));
        if now > self.next_tick + 10 * frame {
            self.next_tick = now; // stalled: no burst
        }
        let mut failed = None;
        while self.next_tick <= now {
            match sender.next_packet() {
                Ok(p) => out.push(p),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            self.next_tick += frame;
        }
        if let Some(e) = failed {
            self.error(format!("encode: {e}"));
            self.sender = None;
        }
        out
    }

    /// Starts our clearing.
    fn hang_up(&mut self, now: Instant) {
        self.initiate("local");
        if self.h245_started && !self.h245.is_ended() && self.transport != Transport::None {
            self.log("hanging up: EndSessionCommand");
            self.h245.end_session(now);
            self.phase = Phase::EndingH245 {
                until: now + END_SESSION_WAIT,
            };
        } else {
            self.release();
        }
    }

    fn release(&mut self) {
        self.log("ReleaseComplete");
        if let Err(e) = self.call.release(NORMAL_CLEARING) {
            self.log(format_args!("release: {e}"));
            self.phase = Phase::Released;
        }
    }

    /// Timers, the phase, digits.
    fn control(&mut self, now: Instant) {
        if self.call.poll_timeout().is_some_and(|t| t <= now) {
            self.call.handle_timeout(now);
        }
        if self.h245.poll_timeout().is_some_and(|t| t <= now) {
            self.h245.handle_timeout(now);
        }
        self.process(now);
        if self.phase != Phase::Released && now >= self.started + self.cli.hard_limit() {
            self.error("hard time limit reached");
            self.initiator = Some("timeout");
            self.release();
            return;
        }
        match self.phase {
            Phase::Running => {
                if self.media_end.is_none() {
                    if let Some(m) = self.media_start {
                        self.media_end = Some(m + Duration::from_secs_f64(self.cli.seconds));
                    }
                }
                if let (Some(wait), Some(c)) = (self.cli.wait_release, self.connected_at) {
                    if now >= c + Duration::from_secs_f64(wait) {
                        self.error(format!("the gateway did not end the call within {wait} s"));
                        self.hang_up(now);
                        return;
                    }
                } else if self.media_end.is_some_and(|e| now >= e) {
                    self.hang_up(now);
                    return;
                }
                if let (None, Some(c)) = (self.media_start, self.connected_at) {
                    if now >= c + MEDIA_WAIT {
                        self.error("no media address 10 s after Connect");
                        self.hang_up(now);
                        return;
                    }
                }
                self.send_digits(now);
            }
            Phase::EndingH245 { until } => {
                if self.peer_end_session_seen || now >= until {
                    if !self.peer_end_session_seen {
                        self.log("no EndSessionCommand from the gateway");
                    }
                    self.release();
                }
            }
            Phase::PeerEnding { until } => {
                if now >= until {
                    self.log("no ReleaseComplete after the gateway's EndSessionCommand");
                    self.release();
                }
            }
            Phase::Released => {}
        }
        self.process(now);
    }

    fn send_digits(&mut self, now: Instant) {
        let Some(at) = self.next_digit else { return };
        if now < at || self.digits_todo.is_empty() || !self.h245.is_ready() {
            return;
        }
        let Some(key) = self.digits_todo.pop_front() else {
            return;
        };
        match self.h245.send_user_input(now, key, Some(100)) {
            Ok(()) => {
                self.log(format_args!("sent user input {key:?}"));
                self.report.digits_sent.push(key);
            }
            Err(e) => self.error(format!("user input {key:?}: {e:?}")),
        }
        self.next_digit = Some(now + Duration::from_millis(300));
    }

    /// H.245 PDUs to write on the separate connection (tunnelled ones go into the call).
    fn h245_out(&mut self) -> Vec<Vec<u8>> {
        let mut separate = Vec::new();
        while let Some(pdu) = self.h245.poll_transmit_bytes() {
            match self.transport {
                Transport::Separate => separate.push(pdu),
                Transport::Tunnel => {
                    if let Err(e) = self.call.send_h245(pdu) {
                        if self.phase != Phase::Released {
                            self.error(format!("tunnelled H.245: {e}"));
                        }
                    }
                }
                Transport::None => self.error("H.245 output without a transport"),
            }
        }
        separate
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + Duration::from_millis(50);
        for t in [self.call.poll_timeout(), self.h245.poll_timeout()]
            .into_iter()
            .flatten()
        {
            wake = wake.min(t);
        }
        if self.sender.is_some() && self.remote_rtp.is_some() {
            wake = wake.min(self.next_tick);
        }
        wake.max(now)
    }

    /// Whether the run ended as asked.
    fn succeeded(&self) -> bool {
        let fast_start_ok = match self.cli.mode {
            Mode::Faststart => self.report.fast_start == "accepted",
            Mode::Refused => self.report.fast_start == "refused",
            Mode::Tunnel | Mode::Separate => self.report.fast_start == "none",
        };
        let ended_ok = if self.cli.wait_release.is_some() {
            self.initiator == Some("peer")
        } else {
            self.initiator == Some("local") && self.media_start.is_some()
        };
        self.report.connected && fast_start_ok && ended_ok
    }
}

/// The I/O of a run.
struct Io {
    sig_read: OwnedReadHalf,
    sig_write: OwnedWriteHalf,
    h245_read: Option<OwnedReadHalf>,
    h245_write: Option<OwnedWriteHalf>,
    h245_reader: TpktReader,
    listener: Option<TcpListener>,
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

enum Input {
    Signalling(io::Result<usize>),
    H245(io::Result<usize>),
    Rtp(io::Result<usize>),
    Rtcp,
    Accept(io::Result<(TcpStream, SocketAddr)>),
    Wake,
}

async fn read_opt(r: &mut Option<OwnedReadHalf>, buf: &mut [u8]) -> io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn accept_opt(l: &Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn write_all(w: &mut OwnedWriteHalf, bytes: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(IO_TIMEOUT, w.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
    }
}

/// Binds an RTP socket on an even port and the RTCP one on the next.
async fn bind_media(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no even port pair");
    for _ in 0..64 {
        let port = 20_000 + 2 * (rand::random::<u16>() % 20_000);
        let rtp = match UdpSocket::bind((ip, port)).await {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match UdpSocket::bind((ip, port + 1)).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs one call; the report and whether it went as asked.
pub async fn run(cli: &Cli) -> (Report, bool) {
    let mut report = Report {
        mode: cli.mode.name(),
        gateway: cli.gateway.to_string(),
        fast_start: "none",
        codec: media_codec(cli.codec).to_string(),
        h245: H245Report {
            transport: "none",
            ..H245Report::default()
        },
        ..Report::default()
    };
    let started = Instant::now();
    eprintln!("h323-caller: calling {} at {}", cli.called, cli.gateway);
    let tcp = match tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(cli.gateway)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            report.errors.push(format!("connect {}: {e}", cli.gateway));
            return (report, false);
        }
        Err(_) => {
            report
                .errors
                .push(format!("connect {}: timed out", cli.gateway));
            return (report, false);
        }
    };
    let _ = tcp.set_nodelay(true);
    let local_sig = tcp.local_addr().ok();
    let ip = cli
        .local_ip
        .or(local_sig.map(|a| a.ip()))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let (rtp, rtcp) = match bind_media(ip).await {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("bind RTP/RTCP on {ip}: {e}"));
            return (report, false);
        }
    };
    let (Ok(rtp_addr), Ok(rtcp_addr)) = (rtp.local_addr(), rtcp.local_addr()) else {
        report.errors.push("RTP socket address".into());
        return (report, false);
    };
    report.local_rtp = Some(rtp_addr.to_string());

    let codec = call_codec(cli.codec);
    let proposal = |direction, codec| Proposal {
        direction,
        codec,
        frames: 20,
        max_bit_rate: 0,
        payload_type: None,
        rtp: rtp_addr,
        rtcp: rtcp_addr,
    };
    let fast_start = match cli.mode {
        Mode::Faststart => vec![
            proposal(Direction::CallerToCallee, codec),
            proposal(Direction::CalleeToCaller, codec),
        ],
        Mode::Refused => vec![
            proposal(Direction::CallerToCallee, call::Codec::Pcmu),
            proposal(Direction::CalleeToCaller, call::Codec::Pcma),
        ],
        Mode::Tunnel | Mode::Separate => Vec::new(),
    };
    let all_digits = !cli.called.is_empty() && cli.called.bytes().all(|b| b.is_ascii_digit());
    let mut destination = vec![Alias::H323Id(cli.called.clone())];
    if all_digits {
        destination.push(Alias::Digits(cli.called.clone()));
    }
    let params = DialParams {
        call_reference: (rand::random::<u16>() & 0x7fff).max(1),
        conference_id: Guid(rand::random()),
        call_identifier: Guid(rand::random()),
        destination,
        called_number: all_digits.then(|| cli.called.clone()),
        source: vec![Alias::H323Id(cli.calling.clone())],
        calling_number: cli.calling_number.clone(),
        display: Some(cli.calling.clone()),
        dest_call_signal_address: Some(cli.gateway),
        source_call_signal_address: local_sig,
        fast_start,
        h245_address: None,
    };
    let config = Config {
        h245_tunnelling: cli.mode != Mode::Separate,
        t303: Duration::from_secs(5),
        t310: Duration::from_secs(20),
        ..Config::default()
    };
    let now = Instant::now();
    let call = match Call::dial(config, &params, now) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("dial: {e}"));
            return (report, false);
        }
    };
    let h245 = H245::new(
        H245Config {
            terminal_type: cli.terminal_type,
            audio_codecs: vec![h245_codec(cli.codec)],
            h264: None,
            audio_addresses: Some(MediaAddresses {
                rtp: rtp_addr,
                rtcp: rtcp_addr,
            }),
            video_addresses: None,
            t101: Duration::from_secs(10),
            t103: Duration::from_secs(10),
            t106: Duration::from_secs(10),
            ..H245Config::default()
        },
        rand::random::<u32>,
    );
    let (sig_read, sig_write) = tcp.into_split();
    let mut io = Io {
        sig_read,
        sig_write,
        h245_read: None,
        h245_write: None,
        h245_reader: TpktReader::new(64 * 1024),
        listener: None,
        rtp,
        rtcp,
    };
    let mut c = Caller {
        cli,
        started,
        call,
        h245,
        h245_started: false,
        transport: Transport::None,
        h245_address: None,
        connect_h245_to: None,
        listen_at: None,
        report,
        fast_start_accepted: false,
        remote_rtp: None,
        sender: None,
        receiver: Receiver::default(),
        media_start: None,
        media_end: None,
        next_tick: now,
        connected_at: None,
        digits_todo: cli.digits.chars().collect(),
        next_digit: None,
        phase: Phase::Running,
        initiator: None,
        peer_end_session_seen: false,
    };
    c.log(format_args!(
        "Setup to {:?} from {:?}, mode {}, media {rtp_addr}",
        params.destination,
        params.source,
        cli.mode.name()
    ));
    event_loop(&mut c, &mut io).await;

    let end = Instant::now();
    if let Some(m) = c.media_start {
        c.report.media_seconds = ((end - m).as_secs_f64() * 100.0).round() / 100.0;
    }
    c.report.rtp_sent = c.sender.as_ref().map_or(0, |s| s.sent);
    c.report.rtp_received = c.receiver.received;
    c.report.rtp_bad = c.receiver.bad;
    c.report.rx_payload_type = c.receiver.last_pt;
    let (tone, level) = c.receiver.analyse();
    c.report.rx_tone_hz = tone;
    c.report.rx_rms_dbfs = level;
    if !c.digits_todo.is_empty() {
        let left: String = c.digits_todo.iter().collect();
        c.error(format!("digits not sent: {left:?}"));
    }
    c.report.released_by = c.initiator;
    let ok = c.succeeded();
    (c.report, ok)
}

async fn event_loop(c: &mut Caller<'_>, io: &mut Io) {
    let mut sig_buf = vec![0u8; 16 * 1024];
    let mut h245_buf = vec![0u8; 16 * 1024];
    let mut rtp_buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let mut rtp_send_errors = 0u64;
    loop {
        let now = Instant::now();
        c.control(now);

        // I/O the caller asked for.
        if let Some(addr) = c.connect_h245_to.take() {
            c.log(format_args!("H.245: connecting to {addr}"));
            match tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    let (r, w) = s.into_split();
                    io.h245_read = Some(r);
                    io.h245_write = Some(w);
                    c.transport = Transport::Separate;
                    c.start_h245(Instant::now());
                }
                Ok(Err(e)) => c.error(format!("H.245 connect {addr}: {e}")),
                Err(_) => c.error(format!("H.245 connect {addr}: timed out")),
            }
        }
        if c.listen_at.is_some_and(|t| now >= t) && c.transport == Transport::None {
            c.listen_at = None;
            match TcpListener::bind((
                io.rtp.local_addr().map_or(c.cli.gateway.ip(), |a| a.ip()),
                0,
            ))
            .await
            {
                Ok(l) => match l.local_addr() {
                    Ok(a) => match c.call.start_h245(a) {
                        Ok(()) => {
                            c.log(format_args!("Facility(startH245) with our listener {a}"));
                            io.listener = Some(l);
                        }
                        Err(e) => c.error(format!("start_h245: {e}")),
                    },
                    Err(e) => c.error(format!("H.245 listener: {e}")),
                },
                Err(e) => c.error(format!("H.245 listener: {e}")),
            }
        }
        c.process(Instant::now());

        // Output.
        for pdu in c.h245_out() {
            let Some(w) = io.h245_write.as_mut() else {
                c.error("H.245 PDU dropped: no connection");
                continue;
            };
            let Some(framed) = tpkt::encode(&pdu) else {
                continue;
            };
            if let Err(e) = write_all(w, &framed).await {
                c.error(format!("H.245 write: {e}"));
                io.h245_write = None;
            }
        }
        while let Some(bytes) = c.call.poll_transmit() {
            if let Err(e) = write_all(&mut io.sig_write, &bytes).await {
                c.error(format!("signalling write: {e}"));
                if c.phase != Phase::Released {
                    c.initiate("closed");
                    c.phase = Phase::Released;
                }
                break;
            }
        }
        if c.phase == Phase::Released {
            let _ = tokio::time::timeout(IO_TIMEOUT, io.sig_write.shutdown()).await;
            if let Some(w) = io.h245_write.as_mut() {
                let _ = tokio::time::timeout(IO_TIMEOUT, w.shutdown()).await;
            }
            return;
        }
        let now = Instant::now();
        if let Some(to) = c.remote_rtp {
            for p in c.media_packets(now) {
                if let Err(e) = io.rtp.send_to(&p, to).await {
                    rtp_send_errors += 1;
                    if rtp_send_errors == 1 {
                        c.error(format!("RTP send to {to}: {e}"));
                    }
                }
            }
        }

        let wake = tokio::time::Instant::from_std(c.next_wake(Instant::now()));
        let Io {
            sig_read,
            h245_read,
            listener,
            rtp,
            rtcp,
            ..
        } = &mut *io;
        let input = tokio::select! {
            r = sig_read.read(&mut sig_buf) => Input::Signalling(r),
            r = read_opt(h245_read, &mut h245_buf) => Input::H245(r),
            r = rtp.recv(&mut rtp_buf) => Input::Rtp(r),
            _ = rtcp.recv(&mut rtcp_buf) => Input::Rtcp,
            r = accept_opt(listener) => Input::Accept(r),
            _ = tokio::time::sleep_until(wake) => Input::Wake,
        };
        let now = Instant::now();
        match input {
            Input::Signalling(Err(e)) => {
                c.error(format!("signalling read: {e}"));
                c.initiate("closed");
                c.phase = Phase::Released;
            }
            Input::Signalling(Ok(0)) => {
                c.error(
                    "the gateway closed the call-signalling connection without ReleaseComplete",
                );
                c.initiate("closed");
                c.phase = Phase::Released;
            }
            Input::Signalling(Ok(n)) => c.call.handle_input(now, &sig_buf[..n]),
            Input::H245(Ok(0)) | Input::H245(Err(_)) => {
                if !c.h245.is_ended() {
                    c.error("the gateway closed the H.245 connection");
                } else {
                    c.log("H.245 connection closed");
                }
                io.h245_read = None;
                io.h245_write = None;
            }
            Input::H245(Ok(n)) => {
                io.h245_reader.push(&h245_buf[..n]);
                loop {
                    match io.h245_reader.next_pdu() {
                        Ok(Some(pdu)) => c.h245_bytes(now, &pdu),
                        Ok(None) => break,
                        Err(e) => {
                            c.error(format!("H.245 TPKT: {e}"));
                            io.h245_read = None;
                            break;
                        }
                    }
                }
            }
            Input::Rtp(Ok(n)) => c.receiver.handle(&rtp_buf[..n]),
            Input::Rtp(Err(_)) | Input::Rtcp | Input::Wake => {}
            Input::Accept(Ok((s, from))) => {
                c.log(format_args!("H.245 connection from {from}"));
                io.listener = None;
                if c.transport == Transport::None {
                    let _ = s.set_nodelay(true);
                    let (r, w) = s.into_split();
                    io.h245_read = Some(r);
                    io.h245_write = Some(w);
                    c.transport = Transport::Separate;
                    c.start_h245(now);
                }
            }
            Input::Accept(Err(e)) => {
                c.error(format!("H.245 accept: {e}"));
                io.listener = None;
            }
        }
    }
}
