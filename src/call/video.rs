//! The video half of a call's media bridge (H.264 remux, never decoded), sans-IO.
//!
//! - Device → room: SRTP unprotect, RTP → access units ([`Depacketizer`]: loss, missing
//!   parameter sets, oversized NALs dropped and counted), published as one H.264 track whose
//!   size comes from the SPS; the room leg re-packetizes to WebRTC's MTU. Keyframe requests
//!   from the room (and our own, after a loss) go to the device as RTCP PLI/FIR, or SIP INFO
//!   (RFC 5168) when it negotiated neither, rate limited and repeated while nothing comes.
//! - Room → device: the active speaker's H.264 track ([`SpeakerSelector`]), packetized for the
//!   device's mode and spliced into one continuous stream by the [`StreamSwitcher`] (one SSRC,
//!   continuous sequence numbers and timestamps, switches at keyframes). With nobody to show,
//!   a still "no video" picture, once a second. The device's PLI/FIR/INFO reach the shown
//!   publisher; its NACKs are served from the last packets sent.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::call::speaker::{Shown, SpeakerPolicy, SpeakerSelector};
use crate::media::h264::depacketize::{Depacketizer, DepacketizerConfig};
use crate::media::h264::packetize::{PacketizationMode, Packetizer};
use crate::media::h264::switcher::{StreamSwitcher, SwitcherConfig, SwitcherEvent};
use crate::media::h264::{annex_b, AccessUnit, Counters, CLOCK_RATE};
use crate::media::negotiated::NegotiatedVideo;
use crate::media::rtp::rtcp::{self, Fir, FirEntry, Pli, RtcpPacket, Tmmb, TmmbEntry};
use crate::media::rtp::{RtpPacket, RtpWriter, Ssrc};
use crate::media::srtp::SrtpSession;

/// The still picture sent when no H.264 source is in the room (made by
/// `integration/make-no-video-picture.sh`).
const NO_VIDEO_PICTURE: &[u8] = include_bytes!("../media/h264/data/no_video.h264");
/// How often the "no video" picture is repeated (each copy is a keyframe).
const NO_VIDEO_INTERVAL: Duration = Duration::from_secs(1);
/// The switcher's source id for the "no video" picture.
const NO_VIDEO_SOURCE: Ssrc = Ssrc(0);
/// Keyframe requests to the device at most this often.
const DEVICE_KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// While someone waits for the device's keyframe, ask again this often.
const DEVICE_KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// RTP payload limit toward devices in packetization mode 1 (WebRTC's; fits any path MTU).
const DEVICE_MAX_PAYLOAD: usize = 1200;
/// Packets kept for retransmission on the device's NACK (~1.5 s of 720p).
const RETRANSMIT_PACKETS: usize = 256;
/// In mode 0 a NAL unit cannot be split: allow what fits an Ethernet MTU.
const DEVICE_MAX_PAYLOAD_MODE0: usize = 1400;

/// What the call task must do for the video stream.
#[derive(Debug, PartialEq, Eq)]
pub enum VideoOutput {
    /// Send this RTP datagram to the device (from the RTP port).
    ToDevice(SocketAddr, Vec<u8>),
    /// Send this RTCP datagram to the device (from the RTCP port unless rtcp-mux).
    ToDeviceRtcp(SocketAddr, Vec<u8>),
    /// Publish the device's video track at this size (first keyframe seen).
    Publish {
        /// Width from the SPS.
        width: u32,
        /// Height from the SPS.
        height: u32,
    },
    /// Write this access unit (Annex-B) to the published track, at `time` (90 kHz).
    RoomFrame {
        /// RTP timestamp of the device.
        time: u32,
        /// The access unit, Annex-B.
        data: Vec<u8>,
    },
    /// Ask the publisher of this room track for a keyframe.
    RoomKeyframe(String),
    /// Ask the device for a keyframe with SIP INFO.
    DeviceFastUpdate,
    /// Tell the room what we want of a subscribed video track: nothing (`enabled` false, so
    /// the room stops sending it), or the simulcast layer that fits this size.
    TrackSettings {
        /// Track sid.
        track: String,
        /// Whether the track is wanted at all.
        enabled: bool,
        /// Width wanted.
        width: u32,
        /// Height wanted.
        height: u32,
    },
}

/// Video counters, as the call record holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VideoStats {
    /// RTP packets from the device accepted.
    pub packets_in: u64,
    /// Datagrams from the device dropped (stranger SSRC, SRTP failure, not RTP).
    pub packets_rejected: u64,
    /// Access units published to the room.
    pub frames_to_room: u64,
    /// Packets sent to the device.
    pub packets_to_device: u64,
    /// Keyframe requests sent to the device (RTCP or INFO).
    pub keyframe_requests_to_device: u64,
    /// Keyframe requests sent to room publishers.
    pub keyframe_requests_to_room: u64,
    /// Active-speaker switches completed on the device's stream.
    pub switches: u64,
    /// "No video" pictures sent.
    pub no_video_pictures: u64,
    /// Packets sent to the device again after its NACK.
    pub retransmissions: u64,
    /// Depacketizer and packetizer drops and repairs (broken, malformed, oversized, wrong
    /// payload type, waiting for a keyframe, parameter sets inserted...).
    pub h264: Counters,
}

/// A room track that may be shown.
#[derive(Debug)]
struct Source {
    participant: String,
    ssrc: Ssrc,
    seq: u16,
    /// What the room was last told about it: enabled at that size, disabled, or nothing yet
    /// (the room sends it at full size).
    settings: Option<(bool, (u32, u32))>,
}

/// Largest frame size, in macroblocks, of an H.264 level (Table A-1), by `level_idc`.
fn max_frame_macroblocks(level_idc: u8) -> u32 {
    match level_idc {
        0..=10 => 99,
        11..=20 => 396,
        21 => 792,
        22..=30 => 1620,
        31 => 3600,
        32 => 5120,
        _ => 8192,
    }
}

/// The picture size to ask the room for: the largest of LiveKit's usual simulcast layers
/// (720p, 360p, 180p) that the device's level decodes and its bit rate carries.
pub fn wanted_size(level_idc: u8, kbps: u32) -> (u32, u32) {
    let mbs = |(w, h): (u32, u32)| w.div_ceil(16) * h.div_ceil(16);
    let by_rate = match kbps {
        1200.. => (1280, 720),
        450.. => (640, 360),
        _ => (320, 180),
    };
    [(1280, 720), (640, 360), (320, 180)]
        .into_iter()
        .filter(|s| s.0 <= by_rate.0)
        .find(|s| mbs(*s) <= max_frame_macroblocks(level_idc))
        .unwrap_or((320, 180))
}

/// One call's video bridge.
#[derive(Debug)]
pub struct CallVideo {
    neg: NegotiatedVideo,
    srtp: Option<SrtpSession>,
    /// Our SSRC toward the device.
    ssrc: Ssrc,
    // Device → room.
    device_ssrc: Option<Ssrc>,
    device_addr: SocketAddr,
    depack: Depacketizer,
    published: Publication,
    /// When the device was last asked for a keyframe.
    device_asked: Option<Instant>,
    /// Someone (the room, or our depacketizer) waits for a device keyframe since then.
    device_waiting: Option<Instant>,
    fir_seq: u8,
    // Room → device.
    selector: SpeakerSelector,
    switcher: StreamSwitcher,
    packetizer: Packetizer,
    /// Room track sid → source.
    sources: HashMap<String, Source>,
    next_source: u32,
    no_video: AccessUnit,
    next_no_video: Option<Instant>,
    no_video_seq: u16,
    /// Origin of the generated pictures' timestamps.
    epoch: Instant,
    /// The last packets sent to the device, as sent, for its NACKs (when it negotiated them).
    sent: VecDeque<Vec<u8>>,
    /// The device's receive limit: its SDP bandwidth, lowered (or raised back up to it) by its
    /// TMMBR/REMB.
    max_kbps: u32,
    rtp_buf: Vec<u8>,
    out: VecDeque<VideoOutput>,
    stats: VideoStats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publication {
    None,
    Requested,
    Published,
}

impl CallVideo {
    /// The video bridge of a call whose own room participant is `me`.
    pub fn new(
        now: Instant,
        neg: &NegotiatedVideo,
        me: &str,
    ) -> Result<Self, crate::media::srtp::SrtpError> {
        let srtp = match &neg.srtp {
            Some(k) => Some(SrtpSession::new(&k.local, &k.remote)?),
            None => None,
        };
        let ssrc = Ssrc(rand::random::<u32>() | 1);
        let mode = if neg.packetization_mode == 0 {
            PacketizationMode::SingleNal
        } else {
            PacketizationMode::NonInterleaved
        };
        let max_payload = match mode {
            PacketizationMode::SingleNal => DEVICE_MAX_PAYLOAD_MODE0,
            PacketizationMode::NonInterleaved => DEVICE_MAX_PAYLOAD,
        };
        let mut no_video = AccessUnit::new(0);
        for nal in annex_b::nal_units(NO_VIDEO_PICTURE) {
            no_video.push_nal(nal);
        }
        let mut v = CallVideo {
            srtp,
            ssrc,
            device_ssrc: None,
            device_addr: neg.remote_rtp,
            depack: depacketizer(neg.peer_pt),
            published: Publication::None,
            device_asked: None,
            epoch: now,
            device_waiting: None,
            fir_seq: 0,
            selector: SpeakerSelector::new(me, SpeakerPolicy::default()),
            switcher: StreamSwitcher::new(SwitcherConfig::new(ssrc, neg.pt)),
            packetizer: Packetizer::new(mode, max_payload),
            sources: HashMap::new(),
            next_source: 1,
            no_video,
            next_no_video: None,
            no_video_seq: 0,
            max_kbps: neg.max_kbps,
            sent: VecDeque::new(),
            rtp_buf: Vec::with_capacity(1500),
            out: VecDeque::new(),
            stats: VideoStats::default(),
            neg: neg.clone(),
        };
        v.show(now, Shown::NoVideo);
        Ok(v)
    }

    /// The counters.
    pub fn stats(&self) -> VideoStats {
        let mut s = self.stats;
        s.h264 = *self.depack.counters();
        s.h264.add(self.packetizer.counters());
        s.switches = self.switcher.counters().switches;
        s
    }

    /// The participant whose video the device sees.
    pub fn shown(&self) -> Option<&str> {
        self.selector.shown()
    }

    /// The device's media description changed (re-INVITE).
    pub fn renegotiated(&mut self, neg: &NegotiatedVideo) {
        if neg.srtp != self.neg.srtp {
            self.srtp = neg
                .srtp
                .as_ref()
                .and_then(|k| SrtpSession::new(&k.local, &k.remote).ok());
        }
        self.device_addr = neg.remote_rtp;
        if neg.peer_pt != self.neg.peer_pt {
            self.depack = depacketizer(neg.peer_pt);
            self.device_ssrc = None;
        }
        let limit_changed = neg.max_kbps != self.neg.max_kbps;
        self.neg = neg.clone();
        if limit_changed {
            // A new limit (re-INVITE bandwidth, H.245 FlowControlCommand) replaces the old one.
            self.max_kbps = neg.max_kbps;
            self.sync_track_settings();
        }
    }

    /// The room leg was joined again (new session, new track ids): publish anew at the next
    /// keyframe and forget the old room tracks.
    pub fn room_rejoined(&mut self, now: Instant) {
        self.published = Publication::None;
        let participants: Vec<String> = self
            .sources
            .values()
            .map(|s| s.participant.clone())
            .collect();
        for p in participants {
            self.set_participant_video(now, &p, None);
        }
        self.device_waiting.get_or_insert(now);
        self.request_device_keyframe(now);
    }

    // === device → room ===

    /// A datagram on the video port.
    pub fn handle_device_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let is_rtcp = rtcp::is_rtcp(data);
        let clear;
        let data = match self.srtp.as_mut().map(|s| s.unprotect(data, is_rtcp)) {
            Some(Ok(c)) => {
                clear = c;
                &clear[..]
            }
            Some(Err(_)) => {
                self.stats.packets_rejected += 1;
                return;
            }
            None => data,
        };
        if is_rtcp {
            self.device_rtcp(now, data);
            return;
        }
        let Ok(pkt) = RtpPacket::parse(data) else {
            self.stats.packets_rejected += 1;
            return;
        };
        // Latch onto the first packet of the negotiated payload type; strangers are dropped.
        match self.device_ssrc {
            None if pkt.pt() == self.neg.peer_pt => {
                self.device_ssrc = Some(pkt.ssrc());
                if from != self.device_addr {
                    info!(%from, negotiated = %self.device_addr, "video latched to the device's source address");
                    self.device_addr = from;
                }
            }
            Some(s) if s == pkt.ssrc() => {}
            _ => {
                self.stats.packets_rejected += 1;
                return;
            }
        }
        self.stats.packets_in += 1;
        if !self.neg.direction.receives() {
            return;
        }
        self.depack.push(&pkt);
        while let Some(au) = self.depack.pop() {
            self.device_access_unit(&au);
            self.depack.recycle(au);
        }
        if self.depack.take_keyframe_request() {
            self.device_waiting.get_or_insert(now);
            self.request_device_keyframe(now);
        }
    }

    fn device_access_unit(&mut self, au: &AccessUnit) {
        let keyframe = au.is_keyframe();
        if keyframe {
            self.device_waiting = None;
        }
        match self.published {
            Publication::Published => {
                let mut data = Vec::with_capacity(au.byte_len() + 4 * au.len());
                au.write_annex_b(&mut data);
                self.stats.frames_to_room += 1;
                self.out.push_back(VideoOutput::RoomFrame {
                    time: au.timestamp(),
                    data,
                });
            }
            Publication::None if keyframe => {
                if let Some(sps) = self.depack.sps() {
                    self.published = Publication::Requested;
                    self.out.push_back(VideoOutput::Publish {
                        width: sps.width,
                        height: sps.height,
                    });
                }
            }
            Publication::None | Publication::Requested => {}
        }
    }

    /// The device's track is published: ask for a keyframe to start it with.
    pub fn published(&mut self, now: Instant) {
        debug!("the device's video track is published");
        self.published = Publication::Published;
        self.room_wants_keyframe(now);
    }

    /// A room subscriber of the device's track wants a keyframe (PLI/FIR relayed by the room).
    pub fn room_wants_keyframe(&mut self, now: Instant) {
        self.device_waiting.get_or_insert(now);
        self.request_device_keyframe(now);
    }

    fn request_device_keyframe(&mut self, now: Instant) {
        if self
            .device_asked
            .is_some_and(|t| now.saturating_duration_since(t) < DEVICE_KEYFRAME_INTERVAL)
        {
            return;
        }
        self.device_asked = Some(now);
        self.stats.keyframe_requests_to_device += 1;
        let media_ssrc = self.device_ssrc.unwrap_or(Ssrc(0));
        let fb = self.neg.feedback;
        let pkt = if fb.fir && !fb.pli {
            self.fir_seq = self.fir_seq.wrapping_add(1);
            RtcpPacket::Fir(Fir {
                sender_ssrc: self.ssrc,
                entries: vec![FirEntry {
                    ssrc: media_ssrc,
                    seq_nr: self.fir_seq,
                }],
            })
        } else {
            RtcpPacket::Pli(Pli {
                sender_ssrc: self.ssrc,
                media_ssrc,
            })
        };
        let mut buf = Vec::with_capacity(64);
        if rtcp::write_compound(&[pkt], &mut buf).is_ok() {
            self.send_rtcp(buf);
        }
        if !fb.pli && !fb.fir {
            // Nothing negotiated: room systems of that kind take RFC 5168 INFO.
            self.out.push_back(VideoOutput::DeviceFastUpdate);
        }
    }

    fn device_rtcp(&mut self, now: Instant, data: &[u8]) {
        let Ok(packets) = rtcp::parse_compound(data) else {
            self.stats.packets_rejected += 1;
            return;
        };
        if packets
            .iter()
            .any(|p| matches!(p, RtcpPacket::Pli(_) | RtcpPacket::Fir(_)))
        {
            self.device_wants_keyframe(now);
        }
        for p in &packets {
            if let RtcpPacket::Nack(n) = p {
                if n.media_ssrc == self.ssrc {
                    self.retransmit(n.lost());
                }
            }
        }
        // A rate limit from the device (TMMBR, RFC 5104; REMB): a smaller layer when it no
        // longer fits, the larger one again when it does (never above the SDP's).
        let tmmbr = packets.iter().find_map(|p| match p {
            RtcpPacket::Tmmbr(t) => t.entries.iter().find(|e| e.ssrc == self.ssrc).copied(),
            _ => None,
        });
        if let Some(entry) = tmmbr {
            // Acknowledge with a TMMBN naming us as the owner of the bound (RFC 5104 §4.2.2).
            let tmmbn = RtcpPacket::Tmmbn(Tmmb {
                sender_ssrc: self.ssrc,
                entries: vec![TmmbEntry {
                    ssrc: self.ssrc,
                    ..entry
                }],
            });
            let mut buf = Vec::with_capacity(32);
            if rtcp::write_compound(&[tmmbn], &mut buf).is_ok() {
                self.send_rtcp(buf);
            }
        }
        let limit = tmmbr.map(|e| e.bitrate).or_else(|| {
            packets.iter().find_map(|p| match p {
                RtcpPacket::Remb(r) => Some(r.bitrate),
                _ => None,
            })
        });
        if let Some(bps) = limit {
            let kbps = u32::try_from(bps / 1000).unwrap_or(u32::MAX);
            self.max_kbps = kbps.min(self.neg.max_kbps);
            self.sync_track_settings();
        }
    }

    /// The picture size the device is sent.
    pub fn wanted_size(&self) -> (u32, u32) {
        wanted_size(self.neg.profile_level_id.level_idc, self.max_kbps)
    }

    /// Tells the room which tracks to send (the one shown and the one switched to) and at
    /// which size, and which to stop.
    fn sync_track_settings(&mut self) {
        let (active, pending) = (self.switcher.active(), self.switcher.pending());
        let size = self.wanted_size();
        for (sid, src) in &mut self.sources {
            let wanted = Some(src.ssrc) == active || Some(src.ssrc) == pending;
            let want = (wanted, if wanted { size } else { (0, 0) });
            if src.settings != Some(want) {
                src.settings = Some(want);
                self.out.push_back(VideoOutput::TrackSettings {
                    track: sid.clone(),
                    enabled: wanted,
                    width: want.1 .0,
                    height: want.1 .1,
                });
            }
        }
    }

    /// The device wants a keyframe of what it is shown (its PLI/FIR or INFO).
    pub fn device_wants_keyframe(&mut self, now: Instant) {
        if self.switcher.active() == Some(NO_VIDEO_SOURCE) {
            self.next_no_video = Some(now);
        }
        self.switcher.request_keyframe(now);
        self.switcher_events(now);
    }

    // === room → device ===

    /// A room participant's video track: `Some(track_sid)` when it publishes one that can be
    /// forwarded (H.264), `None` when it stopped or left.
    pub fn set_participant_video(&mut self, now: Instant, participant: &str, track: Option<&str>) {
        let old: Vec<String> = self
            .sources
            .iter()
            .filter(|(sid, s)| s.participant == participant && Some(sid.as_str()) != track)
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in old {
            if let Some(s) = self.sources.remove(&sid) {
                self.switcher.remove_source(now, s.ssrc);
            }
        }
        if let Some(t) = track {
            if !self.sources.contains_key(t) {
                let ssrc = Ssrc(self.next_source);
                self.next_source = self.next_source.wrapping_add(1).max(1);
                self.sources.insert(
                    t.to_string(),
                    Source {
                        participant: participant.to_string(),
                        ssrc,
                        seq: rand::random(),
                        settings: None,
                    },
                );
            }
        }
        if let Some(s) = self.selector.set_video(now, participant, track.is_some()) {
            self.show(now, s);
        } else if track.is_none() && self.switcher.active().is_none() {
            self.show(now, Shown::NoVideo);
        }
        self.switcher_events(now);
        self.sync_track_settings();
    }

    /// The room's active speakers changed: `(participant sid, active)`.
    pub fn speakers(&mut self, now: Instant, changes: impl IntoIterator<Item = (String, bool)>) {
        if let Some(s) = self.selector.speakers(now, changes) {
            self.show(now, s);
        }
        self.switcher_events(now);
    }

    fn show(&mut self, now: Instant, s: Shown) {
        let ssrc = match &s {
            Shown::NoVideo => {
                self.next_no_video.get_or_insert(now);
                NO_VIDEO_SOURCE
            }
            Shown::Participant(p) => match self.sources.values().find(|x| &x.participant == p) {
                Some(src) => src.ssrc,
                None => return,
            },
        };
        debug!(shown = ?s, "video source for the device");
        self.switcher.switch_to(now, ssrc);
        self.sync_track_settings();
    }

    /// A frame (access unit, Annex-B as the room leg delivers it) of a subscribed video track.
    pub fn handle_room_frame(&mut self, now: Instant, track: &str, rtp_ts: u32, data: &[u8]) {
        let Some(src) = self.sources.get(track) else {
            return;
        };
        let ssrc = src.ssrc;
        if self.switcher.active() != Some(ssrc) && self.switcher.pending() != Some(ssrc) {
            return;
        }
        let mut au = AccessUnit::new(rtp_ts);
        for nal in annex_b::nal_units(data) {
            au.push_nal(nal);
        }
        let mut seq = src.seq;
        self.feed_switcher(now, &au, ssrc, &mut seq);
        if let Some(src) = self.sources.get_mut(track) {
            src.seq = seq;
        }
    }

    fn feed_switcher(&mut self, now: Instant, au: &AccessUnit, ssrc: Ssrc, seq: &mut u16) {
        if !self.neg.direction.sends() {
            return;
        }
        let (pt, ts) = (self.neg.pt, au.timestamp());
        // Each payload goes straight into the switcher through one reused buffer.
        let (packetizer, switcher, buf) =
            (&mut self.packetizer, &mut self.switcher, &mut self.rtp_buf);
        packetizer.packetize(au, |payload, marker| {
            buf.clear();
            let w = RtpWriter::new(pt, *seq, ts, ssrc).marker(marker);
            *seq = seq.wrapping_add(1);
            if w.write(payload, buf).is_err() {
                return;
            }
            if let Ok(pkt) = RtpPacket::parse(buf) {
                switcher.handle_packet(now, &pkt);
            }
        });
        self.drain_switcher(now);
    }

    fn drain_switcher(&mut self, now: Instant) {
        while let Some(pkt) = self.switcher.poll_packet() {
            let wire = match self.srtp.as_mut() {
                Some(s) => s.protect_rtp(&pkt).ok(),
                None => Some(pkt.clone()),
            };
            self.switcher.recycle(pkt);
            if let Some(w) = wire {
                self.stats.packets_to_device += 1;
                if self.neg.feedback.nack {
                    if self.sent.len() == RETRANSMIT_PACKETS {
                        self.sent.pop_front();
                    }
                    self.sent.push_back(w.clone());
                }
                self.out
                    .push_back(VideoOutput::ToDevice(self.device_addr, w));
            }
        }
        self.switcher_events(now);
    }

    /// The device lost these packets (its NACK): send them again, as they were sent.
    fn retransmit(&mut self, lost: impl Iterator<Item = u16>) {
        for seq in lost {
            let found = self
                .sent
                .iter()
                .rev()
                .find(|p| p.get(2..4) == Some(&seq.to_be_bytes()[..]));
            if let Some(p) = found {
                self.stats.retransmissions += 1;
                self.out
                    .push_back(VideoOutput::ToDevice(self.device_addr, p.clone()));
            }
        }
    }

    fn switcher_events(&mut self, now: Instant) {
        while let Some(ev) = self.switcher.poll_event() {
            match ev {
                SwitcherEvent::RequestKeyframe(NO_VIDEO_SOURCE) => {
                    self.next_no_video = Some(now);
                }
                SwitcherEvent::RequestKeyframe(ssrc) => {
                    if let Some((sid, _)) = self.sources.iter().find(|(_, s)| s.ssrc == ssrc) {
                        self.stats.keyframe_requests_to_room += 1;
                        self.out.push_back(VideoOutput::RoomKeyframe(sid.clone()));
                    }
                }
                SwitcherEvent::Switched { from, to } => {
                    debug!(?from, ?to, "device video switched");
                    if to != NO_VIDEO_SOURCE {
                        self.next_no_video = None;
                    }
                    self.sync_track_settings();
                }
            }
        }
    }

    fn send_rtcp(&mut self, buf: Vec<u8>) {
        let wire = match self.srtp.as_mut() {
            Some(s) => s.protect_rtcp(&buf).ok(),
            None => Some(buf),
        };
        if let Some(w) = wire {
            let dest = if self.neg.rtcp_mux {
                self.device_addr
            } else {
                self.neg.remote_rtcp
            };
            self.out.push_back(VideoOutput::ToDeviceRtcp(dest, w));
        }
    }

    /// Whether RTCP shares the RTP port.
    pub fn rtcp_mux(&self) -> bool {
        self.neg.rtcp_mux
    }

    // === time ===

    /// When [`CallVideo::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.next_no_video,
            self.switcher.poll_timeout(),
            self.selector.poll_timeout(),
            self.device_retry_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Time passed: the "no video" picture, keyframe retries, speaker hysteresis.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(s) = self.selector.tick(now) {
            self.show(now, s);
        }
        self.switcher.handle_timeout(now);
        self.drain_switcher(now);
        let wants_no_video = self.switcher.active() == Some(NO_VIDEO_SOURCE)
            || self.switcher.pending() == Some(NO_VIDEO_SOURCE);
        match self.next_no_video {
            Some(t) if t <= now && wants_no_video => {
                let elapsed = now.saturating_duration_since(self.epoch).as_micros() as u64;
                let ts = (elapsed * u64::from(CLOCK_RATE) / 1_000_000) as u32;
                self.no_video.set_timestamp(ts);
                let au = std::mem::replace(&mut self.no_video, AccessUnit::new(0));
                let mut seq = self.no_video_seq;
                self.feed_switcher(now, &au, NO_VIDEO_SOURCE, &mut seq);
                self.no_video_seq = seq;
                self.no_video = au;
                self.stats.no_video_pictures += 1;
                self.next_no_video = Some(now + NO_VIDEO_INTERVAL);
            }
            Some(_) if !wants_no_video => self.next_no_video = None,
            _ => {}
        }
        if self.device_retry_at().is_some_and(|t| t <= now) {
            self.request_device_keyframe(now);
        }
    }

    /// When to ask the device for its keyframe again, while someone waits for it.
    fn device_retry_at(&self) -> Option<Instant> {
        let since = self.device_waiting?;
        Some(
            self.device_asked
                .map_or(since, |t| t + DEVICE_KEYFRAME_RETRY),
        )
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<VideoOutput> {
        self.out.pop_front()
    }
}

/// A depacketizer for the device's H.264 payload type.
fn depacketizer(payload_type: u8) -> Depacketizer {
    Depacketizer::new(DepacketizerConfig {
        payload_type: Some(payload_type),
        ..DepacketizerConfig::default()
    })
}
