//! A call: one device leg (SIP for now) joined to one room leg (a LiveKit participant) through a
//! media bridge, run as one task so media never crosses a channel. The protocol front (SIP)
//! drives it with [`ToCall`] commands and hears back through [`FromCall`] events.

pub mod admission;
pub mod capacity;
pub mod media;
pub mod metrics;
pub mod pin_phase;
pub mod record;
pub mod speaker;
pub mod video;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use str0m::media::{Frequency, MediaKind, MediaTime};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::livekit::connection::RoomLink;
use crate::livekit::ClientEvent;
use crate::media::codec::Codec;
use crate::media::negotiated::Negotiated;
use crate::media::session::SessionEvent;
use crate::prompt::Prompt;
use crate::rooms::latency::SharedHistogram;
use media::{CallMedia, ToRoom};
pub use pin_phase::{LookupFuture, PinSetup};
use record::CallRecord;
use str0m::media::KeyframeRequestKind;
use video::{CallVideo, VideoOutput};

/// Identifies a call inside the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl CallId {
    /// A new id, unique in the process (SIP and H.323 calls share the sequence).
    pub fn next() -> CallId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        CallId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// The local address for a call's room-leg media: loopback for a loopback LiveKit URL, the
/// URL's own address when it is one, else the first local non-loopback address.
pub fn room_bind_ip(url: &str) -> IpAddr {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', ':']).next())
        .unwrap_or("127.0.0.1");
    host.parse::<IpAddr>()
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or_else(|| first_local_ip().unwrap_or(IpAddr::from([127, 0, 0, 1])))
}

/// The first local non-loopback IPv4 address.
pub fn first_local_ip() -> Option<IpAddr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupCause {
    /// The caller hung up (BYE).
    CallerBye,
    /// The caller cancelled before answer.
    Cancelled,
    /// The room could not be joined.
    RoomUnavailable,
    /// The room was closed (deleted, or the room server went away).
    RoomClosed,
    /// The gateway's participant was removed from the room (by a moderator or the API).
    Removed,
    /// No RTP from the caller.
    MediaTimeout,
    /// The call reached its maximum duration.
    MaxDuration,
    /// The caller never acknowledged our answer.
    NoAck,
    /// The gateway is stopping.
    Shutdown,
    /// The session timer expired without a refresh (RFC 4028).
    SessionExpired,
    /// No usable media description (a delayed offer answered badly, or not at all).
    NoMedia,
    /// The caller did not give a valid PIN.
    PinRefused,
    /// The PIN directory could not answer.
    PinDirectoryFailed,
    /// The gatekeeper ended the call (H.225.0 RAS DisengageRequest).
    Disengaged,
}

impl HangupCause {
    /// Every cause, in declaration order (the metrics count them by position).
    pub const ALL: [HangupCause; 14] = [
        Self::CallerBye,
        Self::Cancelled,
        Self::RoomUnavailable,
        Self::RoomClosed,
        Self::Removed,
        Self::MediaTimeout,
        Self::MaxDuration,
        Self::NoAck,
        Self::Shutdown,
        Self::SessionExpired,
        Self::NoMedia,
        Self::PinRefused,
        Self::PinDirectoryFailed,
        Self::Disengaged,
    ];

    /// Short name for records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallerBye => "caller-bye",
            Self::Cancelled => "cancelled",
            Self::RoomUnavailable => "room-unavailable",
            Self::RoomClosed => "room-closed",
            Self::Removed => "removed",
            Self::MediaTimeout => "media-timeout",
            Self::MaxDuration => "max-duration",
            Self::NoAck => "no-ack",
            Self::Shutdown => "shutdown",
            Self::SessionExpired => "session-expired",
            Self::NoMedia => "no-media",
            Self::PinRefused => "pin-refused",
            Self::PinDirectoryFailed => "pin-directory-failed",
            Self::Disengaged => "disengaged",
        }
    }
}

/// Commands from the protocol front.
#[derive(Debug)]
pub enum ToCall {
    /// End the call (the front already told the device, or will).
    Stop(HangupCause),
    /// The media description changed (re-INVITE: hold, resume, codec change), or arrived (the
    /// ACK of a delayed offer).
    Media(Box<Negotiated>),
    /// A digit from SIP INFO (RFC 2976 with `application/dtmf-relay` or `application/dtmf`).
    Dtmf(char),
    /// The device asked for a video keyframe (SIP INFO, RFC 5168; H.245
    /// videoFastUpdatePicture).
    FastUpdate,
}

/// Events to the protocol front.
#[derive(Debug)]
pub enum FromCall {
    /// The room is joined and the caller's track published: answer the call.
    Answer(CallId),
    /// End the call with the device (send BYE, or a final error before answer).
    Hangup(CallId, HangupCause),
    /// Ask the device for a video keyframe (SIP INFO, RFC 5168; H.245 videoFastUpdatePicture).
    FastUpdate(CallId),
    /// A digit from the room (`SipDTMF`) for a device whose media has no RFC 4733 events:
    /// the front signals it (H.245 UserInputIndication).
    Digit(CallId, char),
}

/// Everything a call needs to start.
pub struct CallSetup {
    /// Our id.
    pub id: CallId,
    /// The protocol's call id: SIP Call-ID, or H.323 callIdentifier in hex (for the room's
    /// attributes and the record).
    pub call_id: String,
    /// The device leg's protocol.
    pub protocol: crate::dialplan::Protocol,
    /// The device leg's signalling transport (`udp`, `tcp`, `tls`; `h323` for H.323).
    pub transport: crate::dialplan::Transport,
    /// Room to join.
    pub room: String,
    /// Caller number or user.
    pub caller: String,
    /// Called number or user.
    pub callee: String,
    /// The negotiated audio stream (None with a delayed offer until the ACK brings the answer).
    pub negotiated: Option<Negotiated>,
    /// Our RTP socket for this call.
    pub rtp: UdpSocket,
    /// Our RTP and RTCP sockets for the call's video, when video was offered.
    pub video_rtp: Option<(UdpSocket, UdpSocket)>,
    /// LiveKit server URL (`ws://...`).
    pub livekit_url: String,
    /// Participant token for the room leg.
    pub token: String,
    /// Local address for the room leg's media sockets.
    pub room_bind_ip: IpAddr,
    /// No RTP for this long ends the call.
    pub media_timeout: Duration,
    /// Publish a G.711 caller as Opus even when the room accepts G.711.
    pub publish_opus: bool,
    /// Longest call.
    pub max_duration: Duration,
    /// Where the call record goes.
    pub records: std::path::PathBuf,
    /// When set, the room (and `room`, `token`) comes from a PIN the caller types after answer.
    pub pin: Option<Box<PinSetup>>,
    /// The call's place in the gateway's capacity: freed when the call ends.
    pub slot: capacity::CallSlot,
}

/// Device RTP in → the room-leg datagram out (G.711 published unchanged; G.722 and Opus
/// enter the jitter buffer instead and are counted at play-out), for every call.
pub static UPLINK_LATENCY: SharedHistogram = SharedHistogram::new();
/// Video, device → room: the RTP packet that completes a picture in → the picture's last
/// room-leg datagram out, for every call.
pub static VIDEO_UPLINK_LATENCY: SharedHistogram = SharedHistogram::new();
/// Video, room → device: a room picture in → its last RTP packet to the device out.
pub static VIDEO_DOWNLINK_LATENCY: SharedHistogram = SharedHistogram::new();
/// One 20 ms mixing tick for the device: mix, encode, RTP out (the room frames wait for it by
/// design, like a jitter buffer's target), for every call.
pub static DOWNLINK_TICK: SharedHistogram = SharedHistogram::new();

/// The caller's published track id.
const CALLER_TRACK: &str = "caller-audio";
/// Device video datagrams taken per wake-up at most (a picture's burst).
const VIDEO_BATCH: usize = 64;
/// The device's published video track id.
const VIDEO_TRACK: &str = "device-video";

/// Runs a call to its end.
pub async fn run(
    setup: CallSetup,
    mut rx: mpsc::UnboundedReceiver<ToCall>,
    tx: mpsc::UnboundedSender<FromCall>,
) {
    let id = setup.id;
    let in_progress = metrics::InProgress::start(setup.protocol);
    let mut rec = CallRecord::start(&setup, SystemTime::now());
    let cause = bridge(&setup, &mut rx, &tx, &mut rec).await;
    info!(call = id.0, room = %setup.room, cause = cause.as_str(), "call ended");
    rec.finish(cause, SystemTime::now());
    if let Err(e) = rec.append(&setup.records) {
        metrics::record_failed();
        error!(call = id.0, "call record not written: {e}");
    }
    metrics::ended(cause);
    drop(in_progress);
    // The front may already know (it sent Stop); telling it again is harmless.
    let _ = tx.send(FromCall::Hangup(id, cause));
}

async fn bridge(
    s: &CallSetup,
    rx: &mut mpsc::UnboundedReceiver<ToCall>,
    tx: &mpsc::UnboundedSender<FromCall>,
    rec: &mut CallRecord,
) -> HangupCause {
    let mut media: Option<CallMedia> = None;
    // A media description newer than the setup's, when one came during PIN entry.
    let mut described: Option<Negotiated> = None;
    let (mut room, mut token) = (s.room.clone(), s.token.clone());
    if let Some(pin) = s.pin.as_deref() {
        // Answer first: the caller hears the prompts and types the PIN over the call's media.
        let _ = tx.send(FromCall::Answer(s.id));
        info!(call = s.id.0, "call answered for PIN entry");
        match pin_phase::collect_pin(s, pin, rx, rec, &mut media, &mut described).await {
            Ok(found) => (room, token) = found,
            Err(c) => return c,
        }
        rec.room = room.clone();
    }
    let mut deferred = Vec::new();
    let Joined {
        mut link,
        sid: me,
        others,
        publish_codecs,
    } = match join_room(s, &room, &token, rx, &mut deferred).await {
        Ok(joined) => joined,
        Err(c) => return c,
    };
    if s.pin.is_none() {
        let _ = tx.send(FromCall::Answer(s.id));
        info!(call = s.id.0, %room, "call answered");
    }

    let started = tokio::time::Instant::now();
    if let (None, Some(n)) = (media.as_ref(), s.negotiated.as_ref()) {
        media = start_media(s, n, rec);
        if media.is_none() {
            link.leave();
            return HangupCause::NoMedia;
        }
    }
    if let Some(m) = media.as_mut() {
        choose_uplink(s, &publish_codecs, m);
    }
    if let (Some(pin), Some(m), 0) = (s.pin.as_deref(), media.as_mut(), others) {
        pin_phase::play(m, Prompt::FirstParticipant, pin.language);
    }
    let mut video = start_video(
        s,
        described.as_ref().or(s.negotiated.as_ref()),
        &me,
        &mut link,
        tx,
    );
    let mut buf = vec![0u8; 2048];
    let mut vbuf = vec![0u8; 2048];
    let mut cbuf = vec![0u8; 1500];
    let mut check = tokio::time::interval(Duration::from_secs(1));
    // Participant sid → its track sids, to stop mixing tracks that went away.
    let mut room_tracks: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    // Commands that arrived while the room leg was (re)joining.
    let mut pending: std::collections::VecDeque<ToCall> = deferred.drain(..).collect();
    loop {
        let wake = media
            .as_ref()
            .map(|m| m.poll_timeout())
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let wake = video
            .as_ref()
            .and_then(|v| v.poll_timeout())
            .map_or(wake, |t| t.min(wake));
        tokio::select! {
            r = recv_video(s, &mut vbuf, &mut cbuf) => {
                let Ok((n, from, rtcp)) = r else { continue };
                let data = if rtcp { &cbuf[..n] } else { &vbuf[..n] };
                let t0 = Instant::now();
                if let Some(v) = video.as_mut() {
                    v.handle_device_datagram(t0, from, data);
                    // A picture's packets come in a burst: take what is already queued
                    // before sending, one wake-up and one flush for all of it.
                    if let (Some((sock, _)), false) = (s.video_rtp.as_ref(), rtcp) {
                        for _ in 0..VIDEO_BATCH {
                            let Ok((n, from)) = sock.try_recv_from(&mut vbuf) else { break };
                            v.handle_device_datagram(t0, from, &vbuf[..n]);
                        }
                    }
                }
                if drain_video(s, &mut video, &mut link, tx).frames_to_room > 0 {
                    VIDEO_UPLINK_LATENCY.record(t0.elapsed());
                }
            }
            r = s.rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let Some(m) = media.as_mut() else { continue };
                let t0 = Instant::now();
                let before = m.session().counters().rtp_received;
                let evs = m.handle_datagram(t0, from, &buf[..n]);
                let forwarded = !evs.is_empty();
                to_room(&mut link, evs, rec);
                if forwarded {
                    UPLINK_LATENCY.record(t0.elapsed());
                }
                let after = m.session().counters().rtp_received;
                if after > before {
                    rec.rtp_in += 1;
                } else {
                    rec.rtp_rejected += 1;
                }
            }
            ev = link.next_event() => match ev {
                Ok(ClientEvent::Media { track_sid, data }) if data.params.spec().codec == str0m::format::Codec::H264 => {
                    let t0 = Instant::now();
                    if let Some(v) = video.as_mut() {
                        v.handle_room_frame(t0, &track_sid, data.time.numer() as u32, &data.data);
                    }
                    if drain_video(s, &mut video, &mut link, tx).packets_to_device > 0 {
                        VIDEO_DOWNLINK_LATENCY.record(t0.elapsed());
                    }
                }
                Ok(ClientEvent::Media { track_sid, data }) => {
                    if let (Some(m), Some(codec)) = (media.as_mut(), room_codec(data.params.spec().codec)) {
                        let (seq, ts) = (**data.seq_range.start(), data.time.numer() as u32);
                        m.handle_room_frame(Instant::now(), &track_sid, codec, seq, ts, &data.data);
                    }
                }
                Ok(ClientEvent::Data(pkt)) => {
                    if let Some(proto::data_packet::Value::SipDtmf(d)) = pkt.value {
                        if let (Some(m), Some(c)) = (media.as_mut(), d.digit.chars().next()) {
                            rec.digits_to_device += 1;
                            if m.sends_telephone_events() {
                                m.send_digit(Instant::now(), c);
                            } else {
                                let _ = tx.send(FromCall::Digit(s.id, c));
                            }
                        }
                    }
                }
                Ok(ClientEvent::Participant(p)) => {
                    // Tracks that went away (unpublished, or their participant left) stop
                    // being mixed.
                    let gone = p.state == proto::participant_info::State::Disconnected as i32;
                    let now: Vec<String> = if gone {
                        Vec::new()
                    } else {
                        p.tracks.iter().map(|t| t.sid.clone()).collect()
                    };
                    let mut before = room_tracks.remove(&p.sid).unwrap_or_default();
                    before.extend(p.tracks.iter().map(|t| t.sid.clone()));
                    if let Some(m) = media.as_mut() {
                        for t in before.iter().filter(|t| !now.contains(t)) {
                            m.remove_track(t);
                        }
                    }
                    if let Some(v) = video.as_mut() {
                        let track = if gone { None } else { video_track(&p) };
                        v.set_participant_video(Instant::now(), &p.sid, track);
                    }
                    drain_video(s, &mut video, &mut link, tx);
                    if !gone {
                        room_tracks.insert(p.sid, now);
                    }
                }
                Ok(ClientEvent::Speakers(list)) => {
                    if let Some(v) = video.as_mut() {
                        v.speakers(Instant::now(), list.into_iter().map(|x| (x.sid, x.active)));
                    }
                    drain_video(s, &mut video, &mut link, tx);
                }
                Ok(ClientEvent::Published { cid, .. }) if cid == VIDEO_TRACK => {
                    if let Some(v) = video.as_mut() {
                        v.published(Instant::now());
                    }
                    drain_video(s, &mut video, &mut link, tx);
                }
                Ok(ClientEvent::KeyframeRequest { cid, .. }) if cid == VIDEO_TRACK => {
                    if let Some(v) = video.as_mut() {
                        v.room_wants_keyframe(Instant::now());
                    }
                    drain_video(s, &mut video, &mut link, tx);
                }
                Ok(ClientEvent::Left(l)) => {
                    info!(call = s.id.0, reason = ?l.reason(), "the room ended our participation");
                    if let (Some(pin), Some(m), proto::DisconnectReason::RoomDeleted) =
                        (s.pin.as_deref(), media.as_mut(), l.reason())
                    {
                        pin_phase::play_to_end(s, m, Prompt::MeetingEnded, pin.language).await;
                    }
                    return if l.reason() == proto::DisconnectReason::ParticipantRemoved {
                        HangupCause::Removed
                    } else {
                        HangupCause::RoomClosed
                    };
                }
                Err(e) => {
                    warn!(call = s.id.0, "room signalling lost: {e}; rejoining");
                    rec.room_rejoins += 1;
                    link = match rejoin_room(s, &room, &token, rx, &mut deferred).await {
                        Ok(l) => l,
                        Err(c) => return c,
                    };
                    for cmd in deferred.drain(..) {
                        pending.push_back(cmd);
                    }
                    // The new session subscribes afresh, under new track ids.
                    room_tracks.clear();
                    if let Some(m) = media.as_mut() {
                        m.remove_all_tracks();
                    }
                    if let Some(v) = video.as_mut() {
                        v.room_rejoined(Instant::now());
                    }
                    drain_video(s, &mut video, &mut link, tx);
                }
                Ok(_) => {}
            },
            cmd = async {
                match pending.pop_front() {
                    Some(c) => Some(c),
                    None => rx.recv().await,
                }
            } => match cmd {
                Some(ToCall::Stop(c)) => {
                    link.leave();
                    return c;
                }
                Some(ToCall::Media(n)) => match media.as_mut() {
                    Some(m) => {
                        m.renegotiated(&n, Instant::now(), s.media_timeout);
                        match (video.as_mut(), n.video.as_ref()) {
                            (Some(v), Some(nv)) => v.renegotiated(nv),
                            (None, Some(_)) => video = start_video(s, Some(&n), &me, &mut link, tx),
                            (Some(v), None) => {
                                rec.observe_video(v);
                                video = None;
                            }
                            (None, None) => {}
                        }
                    }
                    None => {
                        media = start_media(s, &n, rec);
                        video = start_video(s, Some(&n), &me, &mut link, tx);
                        match media.as_mut() {
                            Some(m) => choose_uplink(s, &publish_codecs, m),
                            None => {
                                link.leave();
                                return HangupCause::NoMedia;
                            }
                        }
                    }
                },
                Some(ToCall::Dtmf(d)) => {
                    rec.digits_from_device += 1;
                    send_dtmf(&mut link, d);
                }
                Some(ToCall::FastUpdate) => {
                    if let Some(v) = video.as_mut() {
                        v.device_wants_keyframe(Instant::now());
                    }
                    drain_video(s, &mut video, &mut link, tx);
                }
                None => {
                    link.leave();
                    return HangupCause::Shutdown;
                }
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                if let Some(v) = video.as_mut() {
                    let now = Instant::now();
                    if v.poll_timeout().is_some_and(|t| t <= now) {
                        v.handle_timeout(now);
                        drain_video(s, &mut video, &mut link, tx);
                    }
                    if let Some(v) = video.as_ref() {
                        rec.observe_video(v);
                    }
                }
                let Some(m) = media.as_mut() else { continue };
                let t0 = Instant::now();
                let (datagrams, evs) = m.handle_timeout(t0);
                let ticked = !datagrams.is_empty();
                for (dest, pkt) in datagrams {
                    let _ = s.rtp.try_send_to(&pkt, dest);
                }
                if ticked {
                    DOWNLINK_TICK.record(t0.elapsed());
                }
                if !evs.is_empty() {
                    to_room(&mut link, evs, rec);
                }
                rec.observe(m);
                while let Some(ev) = m.poll_event() {
                    if ev == SessionEvent::MediaTimeout {
                        link.leave();
                        return HangupCause::MediaTimeout;
                    }
                }
            }
            _ = check.tick() => {
                if started.elapsed() > s.max_duration {
                    link.leave();
                    return HangupCause::MaxDuration;
                }
            }
        }
    }
}

/// Starts the video bridge when the device negotiated video and the front gave it a port,
/// with the room's participants as they are now.
fn start_video(
    s: &CallSetup,
    n: Option<&Negotiated>,
    me: &str,
    link: &mut RoomLink,
    tx: &mpsc::UnboundedSender<FromCall>,
) -> Option<CallVideo> {
    let nv = n?.video.as_ref()?;
    s.video_rtp.as_ref()?;
    let now = Instant::now();
    let mut v = match CallVideo::new(now, nv, me) {
        Ok(v) => v,
        Err(e) => {
            warn!(call = s.id.0, "video not started: {e}");
            return None;
        }
    };
    info!(
        call = s.id.0,
        pt = nv.pt,
        mode = nv.packetization_mode,
        "video bridged"
    );
    for p in link.client().remote().values() {
        v.set_participant_video(now, &p.sid, video_track(p));
    }
    let mut video = Some(v);
    drain_video(s, &mut video, link, tx);
    video
}

/// Waits for a datagram on the video port (forever when the call has none).
/// Returns the datagram's length, sender and which buffer holds it (`false`: `rtp_buf`).
async fn recv_video(
    s: &CallSetup,
    rtp_buf: &mut [u8],
    rtcp_buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr, bool)> {
    match &s.video_rtp {
        Some((rtp, rtcp)) => tokio::select! {
            r = rtp.recv_from(rtp_buf) => r.map(|(n, a)| (n, a, false)),
            r = rtcp.recv_from(rtcp_buf) => r.map(|(n, a)| (n, a, true)),
        },
        None => std::future::pending().await,
    }
}

/// The video track of a participant that the device may be shown: a camera (else any) video
/// track that is not muted and, when its codec is known, H.264.
fn video_track(p: &proto::ParticipantInfo) -> Option<&str> {
    let usable = |t: &&proto::TrackInfo| {
        t.r#type == proto::TrackType::Video as i32
            && !t.muted
            && (t.mime_type.is_empty() || t.mime_type.eq_ignore_ascii_case("video/h264"))
    };
    let camera = p
        .tracks
        .iter()
        .filter(usable)
        .find(|t| t.source == proto::TrackSource::Camera as i32);
    camera
        .or_else(|| p.tracks.iter().find(usable))
        .map(|t| t.sid.as_str())
}

/// What [`drain_video`] sent.
#[derive(Default)]
struct Drained {
    frames_to_room: usize,
    packets_to_device: usize,
}

/// Carries out what the video bridge asks for.
fn drain_video(
    s: &CallSetup,
    video: &mut Option<CallVideo>,
    link: &mut RoomLink,
    tx: &mpsc::UnboundedSender<FromCall>,
) -> Drained {
    let mut done = Drained::default();
    let (Some(v), Some((rtp, rtcp))) = (video.as_mut(), s.video_rtp.as_ref()) else {
        return done;
    };
    let mut wrote = false;
    while let Some(out) = v.poll_output() {
        match out {
            VideoOutput::ToDevice(dest, pkt) => {
                let _ = rtp.try_send_to(&pkt, dest);
                done.packets_to_device += 1;
            }
            VideoOutput::ToDeviceRtcp(dest, pkt) => {
                let sock = if v.rtcp_mux() { rtp } else { rtcp };
                let _ = sock.try_send_to(&pkt, dest);
            }
            VideoOutput::Publish { width, height } => {
                info!(
                    call = s.id.0,
                    width, height, "publishing the device's video"
                );
                link.client().publish_video(
                    VIDEO_TRACK,
                    &s.caller,
                    proto::TrackSource::Camera,
                    width,
                    height,
                );
                wrote = true;
            }
            VideoOutput::RoomFrame { time, data } => {
                let t = MediaTime::new(u64::from(time), Frequency::NINETY_KHZ);
                if let Err(e) =
                    link.client()
                        .write(VIDEO_TRACK, "h264", Instant::now(), t, data, None)
                {
                    debug!(call = s.id.0, "video frame not written: {e}");
                }
                done.frames_to_room += 1;
                wrote = true;
            }
            VideoOutput::RoomKeyframe(track) => {
                if let Err(e) = link
                    .client()
                    .request_keyframe(&track, KeyframeRequestKind::Pli)
                {
                    debug!(call = s.id.0, "keyframe request not sent: {e}");
                }
                wrote = true;
            }
            VideoOutput::DeviceFastUpdate => {
                let _ = tx.send(FromCall::FastUpdate(s.id));
            }
            VideoOutput::TrackSettings {
                track,
                enabled,
                width,
                height,
            } => {
                link.client()
                    .update_track_settings(&track, !enabled, width, height);
                wrote = true;
            }
        }
    }
    if wrote {
        link.flush();
    }
    done
}

/// Starts the media bridge for a negotiated stream (the record notes the codec).
fn start_media(s: &CallSetup, n: &Negotiated, rec: &mut CallRecord) -> Option<CallMedia> {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    match CallMedia::new(Instant::now(), wall, n, s.media_timeout) {
        Ok(m) => {
            rec.codec = n.codec.name.clone();
            Some(m)
        }
        Err(e) => {
            warn!(call = s.id.0, "media not started: {e}");
            None
        }
    }
}

/// How long joining the room (signalling, ICE/DTLS, publishing) may take.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts to rejoin after the room signalling is lost.
const REJOIN_ATTEMPTS: u32 = 3;

/// A joined room leg.
struct Joined {
    link: RoomLink,
    /// Our participant sid.
    sid: String,
    /// Participants already in the room.
    others: usize,
    /// What the room accepts for publishing (lowercase MIME types; empty: not said).
    publish_codecs: Vec<String>,
}

/// Switches a G.711 uplink to Opus when configured so or when the room does not accept the
/// caller's G.711 as it is.
fn choose_uplink(s: &CallSetup, publish_codecs: &[String], m: &mut CallMedia) {
    let mime = match m.codec() {
        Codec::Pcmu => "audio/pcmu",
        Codec::Pcma => "audio/pcma",
        _ => return,
    };
    let accepted = publish_codecs.is_empty() || publish_codecs.iter().any(|c| c == mime);
    if s.publish_opus || !accepted {
        match m.publish_as_opus(Instant::now()) {
            Ok(()) => info!(
                call = s.id.0,
                configured = s.publish_opus,
                "caller's G.711 published as Opus"
            ),
            Err(e) => warn!(call = s.id.0, "cannot publish as Opus: {e}"),
        }
    }
}

/// Connects the room leg and publishes the caller's track. Commands other than `Stop` that
/// arrive meanwhile are kept in `deferred` for the caller to apply.
async fn join_room(
    s: &CallSetup,
    room: &str,
    token: &str,
    rx: &mut mpsc::UnboundedReceiver<ToCall>,
    deferred: &mut Vec<ToCall>,
) -> Result<Joined, HangupCause> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    let connect = RoomLink::connect_with(&s.livekit_url, token, s.room_bind_ip, true);
    let mut link = match tokio::time::timeout_at(deadline, connect).await {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            warn!(call = s.id.0, %room, "room leg failed: {e}");
            return Err(HangupCause::RoomUnavailable);
        }
        Err(_) => {
            warn!(call = s.id.0, %room, "room leg timed out");
            return Err(HangupCause::RoomUnavailable);
        }
    };
    let mut asked = false;
    let mut others = 0;
    let mut publish_codecs = Vec::new();
    let mut me = String::new();
    loop {
        let ev = tokio::select! {
            ev = link.next_event() => ev,
            cmd = rx.recv() => match cmd {
                Some(ToCall::Stop(c)) => {
                    link.leave();
                    return Err(c);
                }
                None => {
                    link.leave();
                    return Err(HangupCause::Shutdown);
                }
                Some(other) => {
                    deferred.push(other);
                    continue;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                warn!(call = s.id.0, %room, "room leg: joining timed out");
                link.leave();
                return Err(HangupCause::RoomUnavailable);
            }
        };
        match ev {
            Ok(ClientEvent::Joined {
                sid,
                others: o,
                publish_codecs: c,
                ..
            }) if !asked => {
                asked = true;
                me = sid;
                others = o.len();
                publish_codecs = c;
                link.client().publish(
                    CALLER_TRACK,
                    &s.caller,
                    MediaKind::Audio,
                    proto::TrackSource::Microphone,
                );
                link.flush();
            }
            Ok(ClientEvent::Published { .. }) => {
                return Ok(Joined {
                    link,
                    sid: me,
                    others,
                    publish_codecs,
                })
            }
            Ok(ClientEvent::Left(_)) | Err(_) => return Err(HangupCause::RoomUnavailable),
            Ok(_) => {}
        }
    }
}

/// Rejoins the room after its signalling was lost (a LiveKit node restart, a proxy cut): a
/// fresh session with the same identity, which replaces the old one. The device leg is not
/// touched; a few frames are lost meanwhile.
async fn rejoin_room(
    s: &CallSetup,
    room: &str,
    token: &str,
    rx: &mut mpsc::UnboundedReceiver<ToCall>,
    deferred: &mut Vec<ToCall>,
) -> Result<RoomLink, HangupCause> {
    let mut last = HangupCause::RoomClosed;
    for attempt in 1..=REJOIN_ATTEMPTS {
        tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
        match join_room(s, room, token, rx, deferred).await {
            Ok(j) => {
                info!(call = s.id.0, %room, attempt, "room leg rejoined");
                return Ok(j.link);
            }
            Err(c @ (HangupCause::Shutdown | HangupCause::CallerBye | HangupCause::Cancelled)) => {
                return Err(c)
            }
            Err(c) => {
                warn!(call = s.id.0, %room, attempt, "rejoin failed");
                last = c;
            }
        }
    }
    Err(if last == HangupCause::RoomUnavailable {
        HangupCause::RoomClosed
    } else {
        last
    })
}

/// Publishes the device's frames and digits to the room.
fn to_room(link: &mut RoomLink, evs: Vec<ToRoom>, rec: &mut CallRecord) {
    for ev in evs {
        match ev {
            ToRoom::Frame {
                mime,
                time,
                clock,
                payload,
                level,
            } => {
                let freq = Frequency::new(clock).unwrap_or(Frequency::EIGHT_KHZ);
                let t = MediaTime::new(time, freq);
                if link
                    .client()
                    .write(CALLER_TRACK, mime, Instant::now(), t, payload, level)
                    .is_ok()
                {
                    rec.frames_to_room += 1;
                }
            }
            ToRoom::Digit(d) => {
                rec.digits_from_device += 1;
                send_dtmf(link, d);
            }
        }
    }
    link.flush();
}

/// The media codec of a room track's payload.
fn room_codec(c: str0m::format::Codec) -> Option<Codec> {
    match c {
        str0m::format::Codec::Opus => Some(Codec::Opus),
        str0m::format::Codec::PCMU => Some(Codec::Pcmu),
        str0m::format::Codec::PCMA => Some(Codec::Pcma),
        str0m::format::Codec::G722 => Some(Codec::G722),
        _ => None,
    }
}

/// A digit pressed on the device, to the room as LiveKit's `SipDTMF` data packet.
fn send_dtmf(link: &mut RoomLink, digit: char) {
    let code = crate::media::dtmf::digit_to_event(digit).unwrap_or(0) as u32;
    let pkt = proto::DataPacket {
        value: Some(proto::data_packet::Value::SipDtmf(proto::SipDtmf {
            code,
            digit: digit.to_string(),
        })),
        ..Default::default()
    };
    if let Err(e) = link.client().send_data(pkt, true) {
        debug!("DTMF not sent to the room: {e}");
    }
    link.flush();
}
