//! [`Caller`]: the caller's state and decisions over the sans-IO [`Call`] and [`H245`]
//! machines (no I/O: the event loop in `flow` feeds it and carries out its requests).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jonction::h323::asn::multimedia_system_control::{
    CommandMessage, MultimediaSystemControlMessage,
};
use jonction::h323::asn::rasn::aper;
use jonction::h323::call::{Call, Direction, Event, ReleaseOrigin};
use jonction::h323::h245::{self, AudioCodec, H245Event, MediaKind, H245};
use jonction::media::codec::Codec as MediaCodec;

use crate::media::{Receiver, Sender, FRAME_MS};
use crate::report::Report;
use crate::video::{VideoReceiver, VideoSender};
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

/// Where H.245 travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    None,
    Tunnel,
    Separate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
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
pub(crate) struct Caller<'a> {
    pub(crate) cli: &'a Cli,
    pub(crate) started: Instant,
    pub(crate) call: Call,
    pub(crate) h245: H245,
    pub(crate) h245_started: bool,
    pub(crate) transport: Transport,
    /// The gateway's H.245 listener, once known.
    pub(crate) h245_address: Option<SocketAddr>,
    /// I/O requests for the loop.
    pub(crate) connect_h245_to: Option<SocketAddr>,
    pub(crate) listen_at: Option<Instant>,
    pub(crate) report: Report,
    pub(crate) fast_start_accepted: bool,
    pub(crate) remote_rtp: Option<SocketAddr>,
    pub(crate) sender: Option<Sender>,
    pub(crate) receiver: Receiver,
    pub(crate) media_start: Option<Instant>,
    pub(crate) media_end: Option<Instant>,
    pub(crate) next_tick: Instant,
    pub(crate) connected_at: Option<Instant>,
    pub(crate) digits_todo: VecDeque<char>,
    pub(crate) next_digit: Option<Instant>,
    pub(crate) phase: Phase,
    /// Who started the clearing.
    pub(crate) initiator: Option<&'static str>,
    pub(crate) peer_end_session_seen: bool,
    /// Our H.264 sender, once our video channel is acknowledged.
    pub(crate) video_tx: Option<VideoSender>,
    /// Where we send video.
    pub(crate) video_remote: Option<SocketAddr>,
    pub(crate) video_rx: VideoReceiver,
    /// The gateway's video channel to us.
    pub(crate) video_in: Option<u16>,
    /// When the first video packet from the gateway came.
    pub(crate) video_rx_started: Option<Instant>,
    /// Keyframes received when we sent our videoFastUpdatePicture.
    pub(crate) keyframes_at_fast_update: Option<u64>,
}

pub(crate) fn h245_codec(c: CodecArg) -> AudioCodec {
    match c {
        CodecArg::Pcmu => AudioCodec::Pcmu,
        CodecArg::Pcma => AudioCodec::Pcma,
        CodecArg::G722 => AudioCodec::G722,
    }
}

fn media_of(codec: AudioCodec) -> MediaCodec {
    match codec {
        AudioCodec::Pcmu => MediaCodec::Pcmu,
        AudioCodec::Pcma => MediaCodec::Pcma,
        AudioCodec::G722 => MediaCodec::G722,
    }
}

pub(crate) fn media_codec(c: CodecArg) -> MediaCodec {
    media_of(h245_codec(c))
}

fn from_h245_codec(c: h245::Codec) -> Option<MediaCodec> {
    match c {
        h245::Codec::Audio { codec, .. } => Some(media_of(codec)),
        h245::Codec::H264(_) => None,
    }
}

/// The fast-start outcome a mode expects from the gateway.
pub(crate) fn expected_fast_start(mode: Mode) -> &'static str {
    match mode {
        Mode::Faststart => "accepted",
        Mode::Refused => "refused",
        Mode::Tunnel | Mode::Separate => "none",
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
    pub(crate) fn error(&mut self, e: impl Into<String>) {
        let e = e.into();
        eprintln!("h323-caller: error: {e}");
        self.report.errors.push(e);
    }

    pub(crate) fn log(&self, what: impl std::fmt::Display) {
        eprintln!(
            "h323-caller: {:7.3} {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    pub(crate) fn initiate(&mut self, who: &'static str) {
        if self.initiator.is_none() {
            self.initiator = Some(who);
        }
    }

    /// Handles every pending event of both machines.
    pub(crate) fn process(&mut self, now: Instant) {
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

    pub(crate) fn on_call_event(&mut self, now: Instant, ev: Event) {
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
                    match (ch.direction, ch.codec.and_then(from_h245_codec), ch.rtp) {
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

    pub(crate) fn h245_bytes(&mut self, now: Instant, pdu: &[u8]) {
        if self.h245.is_ended() && is_end_session(pdu) {
            self.log("gateway's EndSessionCommand");
            self.peer_end_session_seen = true;
        }
        self.h245.handle_bytes(now, pdu);
    }

    pub(crate) fn start_h245(&mut self, now: Instant) {
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

    pub(crate) fn on_h245_event(&mut self, now: Instant, ev: H245Event) {
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
                if self.cli.video.is_some() {
                    match self.h245.open_channel(now, MediaKind::Video) {
                        Ok(n) => self.log(format_args!("H.245 opening video channel {n}")),
                        Err(e) => self.error(format!("H.245 open_channel(video): {e:?}")),
                    }
                }
            }
            H245Event::ChannelOpened(info) if matches!(info.codec, h245::Codec::H264(_)) => {
                self.log(format_args!("H.245 video channel opened {info:?}"));
                self.report.h245.channels_opened += 1;
                self.video_channel_opened(now, &info);
            }
            H245Event::VideoFastUpdate { number } => {
                self.log(format_args!(
                    "videoFastUpdatePicture on our channel {number}"
                ));
                self.report.video.fast_updates_received += 1;
                if let Some(v) = self.video_tx.as_mut() {
                    v.restart();
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
            H245Event::ChannelRejected { number, cause, .. } => self.error(format!(
                "H.245: gateway rejected our channel {number}: {cause:?}"
            )),
            H245Event::IncomingChannelRejected { number, cause } if self.cli.refuse_video => {
                self.log(format_args!(
                    "refused the gateway's channel {number}: {cause:?}"
                ));
                self.report.video.refused_channels += 1;
            }
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

    /// An H.264 channel opened: ours (start sending the file) or the gateway's.
    fn video_channel_opened(&mut self, now: Instant, info: &h245::ChannelInfo) {
        match info.direction {
            h245::Direction::Outgoing => {
                let (Some(path), Some(rtp)) = (self.cli.video.as_deref(), info.remote_rtp) else {
                    return self.error("our video channel acknowledged without an address");
                };
                match VideoSender::open(path, info.payload_type.unwrap_or(96), now) {
                    Ok(v) => {
                        self.log(format_args!("video: sending {} to {rtp}", path.display()));
                        self.video_tx = Some(v);
                        self.video_remote = Some(rtp);
                        self.report.video.channel_out = true;
                    }
                    Err(e) => self.error(format!("video: {e}")),
                }
            }
            h245::Direction::Incoming => {
                self.video_in = Some(info.number);
                self.report.video.channel_in = true;
                self.report.video.rx_channel_pt = info.payload_type;
                if let Some(kbps) = self.cli.video_limit_kbps {
                    match self.h245.send_flow_control(
                        now,
                        info.number,
                        Some(kbps.saturating_mul(10)),
                    ) {
                        Ok(()) => {
                            self.log(format_args!("FlowControlCommand: {kbps} kbit/s"));
                            self.report.video.limit_sent_kbps = Some(kbps);
                        }
                        Err(e) => self.error(format!("FlowControlCommand: {e:?}")),
                    }
                }
            }
        }
    }

    /// A datagram on our video RTP port.
    pub(crate) fn video_datagram(&mut self, now: Instant, data: &[u8]) {
        self.video_rx.handle(data);
        if self.video_rx.received > 0 && self.video_rx_started.is_none() {
            self.log("video from the gateway");
            self.video_rx_started = Some(now);
        }
    }

    /// The video RTP packets due at `now`.
    pub(crate) fn video_packets(&mut self, now: Instant) -> Vec<Vec<u8>> {
        match self.video_tx.as_mut() {
            Some(v) if self.phase != Phase::Released => v.packets(now),
            _ => Vec::new(),
        }
    }

    /// Our videoFastUpdatePicture, `--fast-update-at` seconds after video started coming.
    fn send_fast_update(&mut self, now: Instant) {
        let (Some(at), Some(started), Some(number)) = (
            self.cli.fast_update_at,
            self.video_rx_started,
            self.video_in,
        ) else {
            return;
        };
        if self.keyframes_at_fast_update.is_some() || now < started + Duration::from_secs_f64(at) {
            return;
        }
        match self.h245.send_video_fast_update(now, number) {
            Ok(()) => {
                self.log(format_args!("videoFastUpdatePicture on channel {number}"));
                self.report.video.fast_updates_sent += 1;
                self.keyframes_at_fast_update = Some(self.video_rx.keyframes);
            }
            Err(e) => self.error(format!("videoFastUpdatePicture: {e:?}")),
        }
    }

    /// We know where to send: media starts (or changes codec/address).
    pub(crate) fn start_media(&mut self, now: Instant, codec: MediaCodec, rtp: SocketAddr) {
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
    pub(crate) fn media_packets(&mut self, now: Instant) -> Vec<Vec<u8>> {
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
    pub(crate) fn hang_up(&mut self, now: Instant) {
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

    pub(crate) fn release(&mut self) {
        self.log("ReleaseComplete");
        if let Err(e) = self.call.release(NORMAL_CLEARING) {
            self.log(format_args!("release: {e}"));
            self.phase = Phase::Released;
        }
    }

    /// Timers, the phase, digits.
    pub(crate) fn control(&mut self, now: Instant) {
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
                self.send_fast_update(now);
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

    pub(crate) fn send_digits(&mut self, now: Instant) {
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
    pub(crate) fn h245_out(&mut self) -> Vec<Vec<u8>> {
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

    pub(crate) fn next_wake(&self, now: Instant) -> Instant {
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
        if let Some(v) = &self.video_tx {
            wake = wake.min(v.next_at());
        }
        wake.max(now)
    }

    /// Whether the run ended as asked.
    pub(crate) fn succeeded(&self) -> bool {
        let fast_start_ok = self.report.fast_start == expected_fast_start(self.cli.mode);
        let ended_ok = if self.cli.wait_release.is_some() {
            self.initiator == Some("peer")
        } else {
            self.initiator == Some("local") && self.media_start.is_some()
        };
        self.report.connected && fast_start_ok && ended_ok
    }
}
