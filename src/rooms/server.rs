//! The embedded room server's core: a sans-IO state machine holding every room, participant and
//! peer connection (str0m `Rtc`), fed with signalling messages, datagrams and time, returning
//! datagrams to send, signalling messages and the next wake-up.
//!
//! Run-loop contract (as str0m's): after each [`RoomServer::handle_input`], call
//! [`RoomServer::poll_output`] until it returns [`Output::Timeout`]. Media is forwarded inside
//! `handle_input`, from one `Rtc` to the others, with no copy beyond str0m's own packetizer.

// LiveKit clients still read fields the protocol marks deprecated (TrackInfo.layers, ...).
#![allow(deprecated)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use prost::Message;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::{ChannelConfig, Reliability};
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, RtcConfig};

use super::ids;
use super::participant::{Channels, ConnId, Participant, Pc, PcSide};
use super::speakers::SpeakerDetector;
use super::track::{DownState, DownTrack, LayerWish, PublishedTrack};
use crate::media::level::is_voice;
use crate::media::peer_connection;
use crate::token::JoinGrant;

/// Interval of active speaker updates.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(400);
/// Interval of housekeeping (ping timeouts, empty rooms).
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(500);
/// Fewest time between two keyframe requests to one publisher track.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(300);
/// Reliable data packets kept per participant until its channel opens.
const MAX_PENDING_DATA: usize = 64;
/// Version we report: the LiveKit server release whose protocol we follow.
pub const COMPAT_SERVER_VERSION: &str = "1.9.0";
/// Signalling protocol version we speak.
pub const PROTOCOL_VERSION: i32 = 16;

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Host candidates to advertise (one per local address, or the public address).
    pub candidates: Vec<SocketAddr>,
    /// Empty rooms close after this.
    pub empty_timeout: Duration,
    /// Client ping interval (announced).
    pub ping_interval: Duration,
    /// Silence after which a participant is dropped.
    pub ping_timeout: Duration,
    /// Most participants per room (0: no limit).
    pub max_participants: u32,
    /// Node name reported in `ServerInfo`.
    pub node_id: String,
}

/// A verified join, handed over by the signalling shell.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The connection.
    pub conn: ConnId,
    /// The verified token.
    pub grant: JoinGrant,
    /// `auto_subscribe` query parameter.
    pub auto_subscribe: bool,
}

/// Inputs of the core.
// Signalling messages are moved once each; boxing them would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// A new participant (token already verified).
    Join(JoinRequest),
    /// A signalling request from a connected participant.
    Signal(ConnId, Req),
    /// The signalling connection closed.
    Disconnected(ConnId),
    /// Time passed.
    Timeout,
    /// Tell everybody to leave: the server is stopping.
    Shutdown,
}

/// Outputs of the core.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Output {
    /// A datagram to send.
    Transmit {
        /// Advertised local address to send from.
        source: SocketAddr,
        /// Remote address.
        destination: SocketAddr,
        /// Payload.
        data: Vec<u8>,
    },
    /// A signalling message to a participant.
    Signal(ConnId, Resp),
    /// Close that signalling connection (after the messages queued before this).
    Close(ConnId, String),
    /// Nothing more until then (or until the next input).
    Timeout(Instant),
}

/// Counters, for metrics and the load benchmark.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Media frames received from publishers.
    pub frames_in: u64,
    /// Media frames written to subscribers.
    pub frames_out: u64,
    /// Datagrams no peer connection accepted.
    pub datagrams_unrouted: u64,
    /// Data packets relayed.
    pub data_relayed: u64,
    /// Malformed data packets dropped.
    pub data_malformed: u64,
}

struct Room {
    sid: String,
    name: String,
    created_ms: i64,
    members: Vec<ConnId>,
    empty_since: Option<Instant>,
    speakers: SpeakerDetector,
}

/// The core. See the module docs for the run-loop contract.
pub struct RoomServer {
    cfg: ServerConfig,
    start: Instant,
    start_unix_ms: i64,
    now: Instant,
    rooms: HashMap<String, Room>,
    parts: HashMap<ConnId, Participant>,
    routes: HashMap<SocketAddr, (ConnId, PcSide)>,
    out: VecDeque<Output>,
    dirty: Vec<(ConnId, PcSide)>,
    /// Every peer connection's next timeout, earliest first (so that neither the next deadline
    /// nor the due connections need a scan of all participants).
    timers: BTreeSet<(Instant, ConnId, PcSide)>,
    keyframe_requests: Vec<(ConnId, Mid, Option<Rid>)>,
    next_speakers: Instant,
    next_housekeeping: Instant,
    stats: Stats,
    shutting_down: bool,
}

impl RoomServer {
    /// A server with no rooms. `start_unix_ms` is the wall clock at `start`.
    pub fn new(cfg: ServerConfig, start: Instant, start_unix_ms: i64) -> Self {
        Self {
            cfg,
            start,
            start_unix_ms,
            now: start,
            rooms: HashMap::new(),
            parts: HashMap::new(),
            routes: HashMap::new(),
            out: VecDeque::new(),
            dirty: Vec::new(),
            timers: BTreeSet::new(),
            keyframe_requests: Vec::new(),
            next_speakers: start + SPEAKER_INTERVAL,
            next_housekeeping: start + HOUSEKEEPING_INTERVAL,
            stats: Stats::default(),
            shutting_down: false,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of open rooms and of participants.
    pub fn counts(&self) -> (usize, usize) {
        (self.rooms.len(), self.parts.len())
    }

    /// Feeds one input at time `now` (which must not go backwards).
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::Join(req) => self.join(req),
            Input::Signal(conn, msg) => self.signal(conn, msg),
            Input::Disconnected(conn) => self.remove(conn, "signalling closed"),
            Input::Timeout => self.timeout(),
            Input::Shutdown => self.shutdown(),
        }
        self.run_dirty();
    }

    /// Feeds UDP datagrams of the media sockets read together, each as (remote address,
    /// advertised local address it arrived on, bytes), then drains the peer connections they
    /// touched once each: several packets of one publisher (a video frame) cost one drain.
    pub fn handle_datagrams<'a>(
        &mut self,
        now: Instant,
        batch: impl IntoIterator<Item = (SocketAddr, SocketAddr, &'a [u8])>,
    ) {
        self.now = self.now.max(now);
        for (source, destination, data) in batch {
            self.datagram(source, destination, data);
        }
        self.run_dirty();
    }

    /// The next output; drain until [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let mut next = self.next_speakers.min(self.next_housekeeping);
        if let Some((t, ..)) = self.timers.first() {
            next = next.min(*t);
        }
        Output::Timeout(next.max(self.now))
    }

    fn unix_ms(&self) -> i64 {
        self.start_unix_ms + self.now.saturating_duration_since(self.start).as_millis() as i64
    }

    fn send(&mut self, conn: ConnId, msg: Resp) {
        self.out.push_back(Output::Signal(conn, msg));
    }

    // === joining and leaving ===

    fn join(&mut self, req: JoinRequest) {
        let JoinRequest {
            conn,
            grant,
            auto_subscribe,
        } = req;
        if self.shutting_down {
            self.refuse(conn, proto::DisconnectReason::ServerShutdown);
            return;
        }
        let now = self.now;
        let unix_ms = self.unix_ms();
        let room_name = grant.room.clone();
        let room = self.rooms.entry(room_name.clone()).or_insert_with(|| {
            info!(room = %room_name, "room opened");
            Room {
                sid: ids::room_sid(),
                name: room_name.clone(),
                created_ms: unix_ms,
                members: Vec::new(),
                empty_since: None,
                speakers: SpeakerDetector::default(),
            }
        });
        let max = self.cfg.max_participants as usize;
        if max > 0 && room.members.len() >= max {
            warn!(room = %room_name, "room full, join refused");
            self.refuse(conn, proto::DisconnectReason::JoinFailure);
            return;
        }
        room.empty_since = None;
        // LiveKit semantics: a second session with the same identity replaces the first.
        let dup = room.members.iter().copied().find(|c| {
            self.parts
                .get(c)
                .is_some_and(|p| p.grant.identity == grant.identity)
        });
        if let Some(old) = dup {
            self.send(
                old,
                Resp::Leave(proto::LeaveRequest {
                    reason: proto::DisconnectReason::DuplicateIdentity as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                }),
            );
            self.remove(old, "duplicate identity");
        }

        let kind = proto::participant_info::Kind::from_str_name(&grant.kind.to_uppercase())
            .map(|k| k as i32)
            .unwrap_or(0);
        let publisher = self.new_pc(now);
        let subscriber = self.new_pc(now);
        let mut p = Participant {
            sid: ids::participant_sid(),
            grant,
            room: room_name.clone(),
            kind,
            state: proto::participant_info::State::Joined as i32,
            version: 1,
            joined_at_ms: unix_ms,
            auto_subscribe,
            publisher,
            subscriber,
            pub_channels: HashMap::new(),
            sub_channels: Channels::default(),
            pending_data: Vec::new(),
            tracks: Vec::new(),
            unbound_mids: Vec::new(),
            down: Vec::new(),
            sub_pending: None,
            sub_offer_id: 0,
            last_seen: now,
        };
        info!(room = %room_name, participant = %p.sid, identity = %p.grant.identity, "participant joined");

        let Some(room) = self.rooms.get_mut(&room_name) else {
            return;
        };
        let others: Vec<proto::ParticipantInfo> = room
            .members
            .iter()
            .filter_map(|c| self.parts.get(c))
            .filter(|o| !o.grant.hidden)
            .map(Participant::info)
            .collect();
        // Subscriptions to what is already published.
        if p.auto_subscribe && p.grant.can_subscribe {
            for o in room.members.iter().filter_map(|c| self.parts.get(c)) {
                for t in o.tracks.iter().filter(|t| t.mid.is_some()) {
                    p.down.push(DownTrack::new(&t.sid, &o.sid, t.kind));
                }
            }
        }
        room.members.push(conn);
        let room_info = self.room_info(&room_name);
        let join = proto::JoinResponse {
            room: Some(room_info),
            participant: Some(p.info()),
            other_participants: others,
            server_version: COMPAT_SERVER_VERSION.into(),
            ice_servers: Vec::new(),
            subscriber_primary: true,
            ping_timeout: self.cfg.ping_timeout.as_secs() as i32,
            ping_interval: self.cfg.ping_interval.as_secs().max(1) as i32,
            server_info: Some(proto::ServerInfo {
                edition: proto::server_info::Edition::Standard as i32,
                version: COMPAT_SERVER_VERSION.into(),
                protocol: PROTOCOL_VERSION,
                node_id: self.cfg.node_id.clone(),
                ..Default::default()
            }),
            enabled_publish_codecs: enabled_codecs(),
            ..Default::default()
        };
        let info = p.info();
        let hidden = p.grant.hidden;
        self.timers
            .insert((p.publisher.timeout, conn, PcSide::Publisher));
        self.timers
            .insert((p.subscriber.timeout, conn, PcSide::Subscriber));
        self.parts.insert(conn, p);
        self.send(conn, Resp::Join(join));
        if !hidden {
            self.broadcast_update(&room_name, vec![info], Some(conn));
        }
        self.negotiate_subscriber(conn);
    }

    fn refuse(&mut self, conn: ConnId, reason: proto::DisconnectReason) {
        self.send(
            conn,
            Resp::Leave(proto::LeaveRequest {
                reason: reason as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                ..Default::default()
            }),
        );
        self.out
            .push_back(Output::Close(conn, reason.as_str_name().to_string()));
    }

    fn new_pc(&self, now: Instant) -> Pc {
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_pcmu(true, false)
            .enable_pcma(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .build(now);
        for addr in &self.cfg.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!(%addr, "cannot use address as ICE candidate: {e}"),
            }
        }
        Pc {
            rtc,
            timeout: now,
            connected: false,
        }
    }

    /// Removes a participant: its subscribers stop its tracks, the room is told.
    fn remove(&mut self, conn: ConnId, why: &str) {
        let Some(mut p) = self.parts.remove(&conn) else {
            return;
        };
        info!(room = %p.room, participant = %p.sid, identity = %p.grant.identity, why, "participant left");
        p.publisher.rtc.disconnect();
        p.subscriber.rtc.disconnect();
        self.timers
            .remove(&(p.publisher.timeout, conn, PcSide::Publisher));
        self.timers
            .remove(&(p.subscriber.timeout, conn, PcSide::Subscriber));
        self.routes.retain(|_, (c, _)| *c != conn);
        self.dirty.retain(|(c, _)| *c != conn);
        let room_name = p.room.clone();
        let mut speaker_change = None;
        if let Some(room) = self.rooms.get_mut(&room_name) {
            room.members.retain(|c| *c != conn);
            speaker_change = room.speakers.remove(&p.sid);
            if room.members.is_empty() {
                room.empty_since = Some(self.now);
            }
        }
        let members = self.members(&room_name);
        for m in members {
            let changed = {
                let Some(o) = self.parts.get_mut(&m) else {
                    continue;
                };
                stop_down_tracks(o, |d| d.publisher_sid == p.sid)
            };
            if changed {
                self.negotiate_subscriber(m);
            }
        }
        p.state = proto::participant_info::State::Disconnected as i32;
        p.touch();
        if !p.grant.hidden {
            self.broadcast_update(&room_name, vec![p.info()], None);
        }
        if let Some((sid, level, active)) = speaker_change {
            self.broadcast(
                &room_name,
                Resp::SpeakersChanged(proto::SpeakersChanged {
                    speakers: vec![proto::SpeakerInfo { sid, level, active }],
                }),
            );
        }
        self.out.push_back(Output::Close(conn, why.to_string()));
    }

    fn shutdown(&mut self) {
        self.shutting_down = true;
        let conns: Vec<ConnId> = self.parts.keys().copied().collect();
        for c in conns {
            self.send(
                c,
                Resp::Leave(proto::LeaveRequest {
                    can_reconnect: false,
                    reason: proto::DisconnectReason::ServerShutdown as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                }),
            );
            self.remove(c, "server shutdown");
        }
    }

    // === signalling ===

    fn signal(&mut self, conn: ConnId, msg: Req) {
        let now = self.now;
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        p.last_seen = now;
        trace!(participant = %p.sid, request = super::signal::request_name(&msg), "signal");
        match msg {
            Req::Offer(sd) => self.publisher_offer(conn, sd),
            Req::Answer(sd) => self.subscriber_answer(conn, sd),
            Req::Trickle(t) => self.trickle(conn, t),
            Req::AddTrack(req) => self.add_track(conn, req),
            Req::Mute(m) => self.mute(conn, m),
            Req::Subscription(s) => self.subscription(conn, s),
            Req::TrackSetting(s) => self.track_settings(conn, s),
            Req::Leave(_) => self.remove(conn, "client leave"),
            Req::Ping(ts) => {
                let _ = ts;
                let ms = self.unix_ms();
                self.send(conn, Resp::Pong(ms));
            }
            Req::PingReq(ping) => {
                let ms = self.unix_ms();
                self.send(
                    conn,
                    Resp::PongResp(proto::Pong {
                        last_ping_timestamp: ping.timestamp,
                        timestamp: ms,
                    }),
                );
            }
            Req::UpdateMetadata(u) => self.update_metadata(conn, u),
            other => debug!(
                request = super::signal::request_name(&other),
                "signal request not supported; ignored"
            ),
        }
    }

    fn publisher_offer(&mut self, conn: ConnId, sd: proto::SessionDescription) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        let offer = match SdpOffer::from_sdp_string(&sd.sdp) {
            Ok(o) => o,
            Err(e) => {
                warn!(participant = %p.sid, "unparsable publisher offer: {e}");
                return;
            }
        };
        match p.publisher.rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                let resp = Resp::Answer(proto::SessionDescription {
                    r#type: "answer".into(),
                    sdp: answer.to_sdp_string(),
                    id: sd.id,
                    mid_to_track_id: HashMap::new(),
                });
                self.send(conn, resp);
                mark(&mut self.dirty, (conn, PcSide::Publisher));
            }
            Err(e) => warn!(participant = %p.sid, "publisher offer refused: {e}"),
        }
    }

    fn subscriber_answer(&mut self, conn: ConnId, sd: proto::SessionDescription) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        let Some(pending) = p.sub_pending.take() else {
            warn!(participant = %p.sid, "subscriber answer without an offer; ignored");
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(&sd.sdp) {
            Ok(a) => a,
            Err(e) => {
                warn!(participant = %p.sid, "unparsable subscriber answer: {e}");
                return;
            }
        };
        if let Err(e) = p.subscriber.rtc.sdp_api().accept_answer(pending, answer) {
            warn!(participant = %p.sid, "subscriber answer refused: {e}");
            return;
        }
        for d in &mut p.down {
            if let DownState::Negotiating(m) = d.state {
                d.state = DownState::Open(m);
            }
        }
        p.down
            .retain(|d| !matches!(d.state, DownState::Stopping(_)));
        mark(&mut self.dirty, (conn, PcSide::Subscriber));
        // Changes queued meanwhile go in the next offer.
        self.negotiate_subscriber(conn);
        // Ask for keyframes so new video subscribers see a picture at once.
        self.request_keyframes_for(conn);
    }

    fn trickle(&mut self, conn: ConnId, t: proto::TrickleRequest) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        #[derive(serde::Deserialize)]
        struct Init {
            #[serde(default)]
            candidate: String,
        }
        let Ok(init) = serde_json::from_str::<Init>(&t.candidate_init) else {
            debug!(participant = %p.sid, "unparsable trickle candidate; ignored");
            return;
        };
        if init.candidate.is_empty() {
            return; // end of candidates
        }
        let side = if t.target == proto::SignalTarget::Subscriber as i32 {
            PcSide::Subscriber
        } else {
            PcSide::Publisher
        };
        match Candidate::from_sdp_string(&init.candidate) {
            Ok(c) => {
                p.pc(side).rtc.add_remote_candidate(c);
                mark(&mut self.dirty, (conn, side));
            }
            Err(e) => debug!("ignored remote candidate {}: {e}", init.candidate),
        }
    }

    fn add_track(&mut self, conn: ConnId, req: proto::AddTrackRequest) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        if !p.grant.can_publish {
            warn!(participant = %p.sid, "add_track without publish permission; ignored");
            return;
        }
        if let Some(t) = p.tracks.iter().find(|t| t.cid == req.cid) {
            // A retry of the same request: answer again.
            let resp = Resp::TrackPublished(proto::TrackPublishedResponse {
                cid: req.cid.clone(),
                track: Some(t.info.clone()),
            });
            self.send(conn, resp);
            return;
        }
        let kind = if req.r#type == proto::TrackType::Video as i32 {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let sid = ids::track_sid();
        let layers = PublishedTrack::layers_from(&req);
        let info = proto::TrackInfo {
            sid: sid.clone(),
            r#type: req.r#type,
            name: req.name.clone(),
            muted: req.muted,
            width: req.width,
            height: req.height,
            simulcast: layers.len() > 1,
            disable_dtx: req.disable_dtx,
            source: req.source,
            layers: req.layers.clone(),
            stereo: req.stereo,
            disable_red: req.disable_red,
            stream: req.stream.clone(),
            audio_features: req.audio_features.clone(),
            ..Default::default()
        };
        p.tracks.push(PublishedTrack {
            sid,
            cid: req.cid.clone(),
            mid: None,
            kind,
            info: info.clone(),
            layers,
            last_keyframe_request: None,
        });
        self.send(
            conn,
            Resp::TrackPublished(proto::TrackPublishedResponse {
                cid: req.cid,
                track: Some(info),
            }),
        );
        // The media line may have been negotiated before the request arrived.
        let pending: Vec<_> = self
            .parts
            .get_mut(&conn)
            .map(|p| std::mem::take(&mut p.unbound_mids))
            .unwrap_or_default();
        for (mid, kind, track_id) in pending {
            self.bind_media(conn, mid, kind, track_id);
        }
    }

    fn mute(&mut self, conn: ConnId, m: proto::MuteTrackRequest) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        let Some(t) = p.tracks.iter_mut().find(|t| t.sid == m.sid) else {
            return;
        };
        t.info.muted = m.muted;
        p.touch();
        let info = p.info();
        let room = p.room.clone();
        self.broadcast_update(&room, vec![info], None);
    }

    fn update_metadata(&mut self, conn: ConnId, u: proto::UpdateParticipantMetadata) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        if !u.name.is_empty() {
            p.grant.name = u.name;
        }
        if !u.metadata.is_empty() {
            p.grant.metadata = u.metadata;
        }
        for (k, v) in u.attributes {
            if v.is_empty() {
                p.grant.attributes.remove(&k);
            } else {
                p.grant.attributes.insert(k, v);
            }
        }
        p.touch();
        let info = p.info();
        let room = p.room.clone();
        self.broadcast_update(&room, vec![info], None);
    }

    fn subscription(&mut self, conn: ConnId, s: proto::UpdateSubscription) {
        let mut sids = s.track_sids.clone();
        for pt in &s.participant_tracks {
            sids.extend(pt.track_sids.iter().cloned());
        }
        let Some(room) = self.parts.get(&conn).map(|p| p.room.clone()) else {
            return;
        };
        if !self.parts.get(&conn).is_some_and(|p| p.grant.can_subscribe) {
            return;
        }
        // Find each track's publisher in the room.
        let mut found: Vec<(String, String, MediaKind)> = Vec::new();
        for m in self.members(&room) {
            if m == conn {
                continue;
            }
            let Some(o) = self.parts.get(&m) else {
                continue;
            };
            for t in o.tracks.iter().filter(|t| t.mid.is_some()) {
                if sids.contains(&t.sid) {
                    found.push((t.sid.clone(), o.sid.clone(), t.kind));
                }
            }
        }
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        let mut changed = false;
        if s.subscribe {
            for (tsid, psid, kind) in found {
                let active = p.down.iter().any(|d| {
                    d.track_sid == tsid
                        && !matches!(d.state, DownState::ToStop(_) | DownState::Stopping(_))
                });
                if !active {
                    p.down.push(DownTrack::new(&tsid, &psid, kind));
                    changed = true;
                }
            }
        } else {
            changed = stop_down_tracks(p, |d| sids.contains(&d.track_sid));
        }
        if changed {
            self.negotiate_subscriber(conn);
        }
    }

    fn track_settings(&mut self, conn: ConnId, s: proto::UpdateTrackSettings) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        for d in p
            .down
            .iter_mut()
            .filter(|d| s.track_sids.contains(&d.track_sid))
        {
            d.disabled = s.disabled;
            d.want = if s.width > 0 || s.height > 0 {
                LayerWish::Fit {
                    width: s.width,
                    height: s.height,
                }
            } else {
                LayerWish::Quality(s.quality)
            };
        }
    }

    /// Offers the subscriber PC's pending changes, unless an offer is already out.
    fn negotiate_subscriber(&mut self, conn: ConnId) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        if p.sub_pending.is_some() {
            return;
        }
        let first = p.sub_channels.reliable.is_none() && p.sub_offer_id == 0;
        if !first && !p.has_sub_changes() {
            return;
        }
        let mut api = p.subscriber.rtc.sdp_api();
        if first {
            p.sub_channels.reliable = Some(api.add_channel_with_config(ChannelConfig {
                label: "_reliable".into(),
                ordered: true,
                reliability: Reliability::Reliable,
                ..Default::default()
            }));
            p.sub_channels.lossy = Some(api.add_channel_with_config(ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            }));
        }
        for d in &mut p.down {
            match d.state {
                DownState::ToOpen => {
                    let mid = api.add_media(
                        d.kind,
                        Direction::SendOnly,
                        Some(format!("{}|{}", d.publisher_sid, d.track_sid)),
                        Some(d.track_sid.clone()),
                        None,
                    );
                    d.state = DownState::Negotiating(mid);
                }
                DownState::ToStop(mid) => {
                    api.stop_media(mid);
                    d.state = DownState::Stopping(mid);
                }
                _ => {}
            }
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        p.sub_pending = Some(pending);
        p.sub_offer_id += 1;
        let mid_to_track_id = p
            .down
            .iter()
            .filter_map(|d| match d.state {
                DownState::Negotiating(m) | DownState::Open(m) => {
                    Some((m.to_string(), d.track_sid.clone()))
                }
                _ => None,
            })
            .collect();
        let resp = Resp::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: p.sub_offer_id,
            mid_to_track_id,
        });
        self.send(conn, resp);
        mark(&mut self.dirty, (conn, PcSide::Subscriber));
    }

    // === media plane ===

    fn datagram(&mut self, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            self.stats.datagrams_unrouted += 1;
            return;
        };
        let input = str0m::Input::Receive(
            self.now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let route = self.routes.get(&source).copied().filter(|(c, side)| {
            self.parts.get(c).is_some_and(|p| match side {
                PcSide::Publisher => p.publisher.rtc.accepts(&input),
                PcSide::Subscriber => p.subscriber.rtc.accepts(&input),
            })
        });
        let route = route.or_else(|| {
            self.parts.iter().find_map(|(c, p)| {
                if p.publisher.rtc.accepts(&input) {
                    Some((*c, PcSide::Publisher))
                } else if p.subscriber.rtc.accepts(&input) {
                    Some((*c, PcSide::Subscriber))
                } else {
                    None
                }
            })
        });
        let Some((conn, side)) = route else {
            self.stats.datagrams_unrouted += 1;
            trace!(%source, "datagram for no peer connection");
            return;
        };
        self.routes.insert(source, (conn, side));
        if let Some(p) = self.parts.get_mut(&conn) {
            if let Err(e) = p.pc(side).rtc.handle_input(input) {
                debug!(participant = %p.sid, "bad datagram: {e}");
            }
            mark(&mut self.dirty, (conn, side));
        }
    }

    fn timeout(&mut self) {
        let now = self.now;
        // Each due connection leaves the queue here and re-enters it when drained (run_dirty).
        while let Some(&(t, c, side)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(p) = self.parts.get_mut(&c) else {
                continue;
            };
            if let Err(e) = p.pc(side).rtc.handle_input(str0m::Input::Timeout(now)) {
                debug!("timeout handling failed: {e}");
            }
            mark(&mut self.dirty, (c, side));
        }
        if now >= self.next_speakers {
            self.next_speakers = now + SPEAKER_INTERVAL;
            self.tick_speakers();
        }
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING_INTERVAL;
            self.housekeeping();
        }
    }

    fn housekeeping(&mut self) {
        trace!(rooms = self.rooms.len(), "housekeeping");
        let now = self.now;
        let silent: Vec<ConnId> = self
            .parts
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) > self.cfg.ping_timeout)
            .map(|(c, _)| *c)
            .collect();
        for c in silent {
            self.remove(c, "ping timeout");
        }
        let dead: Vec<ConnId> = self
            .parts
            .iter()
            .filter(|(_, p)| !p.publisher.rtc.is_alive() || !p.subscriber.rtc.is_alive())
            .map(|(c, _)| *c)
            .collect();
        for c in dead {
            self.send(
                c,
                Resp::Leave(proto::LeaveRequest {
                    can_reconnect: true,
                    reason: proto::DisconnectReason::StateMismatch as i32,
                    action: proto::leave_request::Action::Reconnect as i32,
                    ..Default::default()
                }),
            );
            self.remove(c, "peer connection failed");
        }
        let timeout = self.cfg.empty_timeout;
        self.rooms.retain(|name, r| {
            let close = r.members.is_empty()
                && r.empty_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= timeout);
            if close {
                info!(room = %name, "room closed (empty)");
            }
            !close
        });
    }

    fn tick_speakers(&mut self) {
        let names: Vec<String> = self.rooms.keys().cloned().collect();
        for name in names {
            let Some(room) = self.rooms.get_mut(&name) else {
                continue;
            };
            let changes = room.speakers.tick();
            if changes.is_empty() {
                continue;
            }
            let speakers = changes
                .into_iter()
                .map(|(sid, level, active)| proto::SpeakerInfo { sid, level, active })
                .collect();
            self.broadcast(
                &name,
                Resp::SpeakersChanged(proto::SpeakersChanged { speakers }),
            );
        }
    }

    /// Drains every peer connection that got input, handling what it emits.
    fn run_dirty(&mut self) {
        let mut rounds = 0usize;
        while let Some((conn, side)) = self.dirty.pop() {
            rounds += 1;
            if rounds > 100_000 {
                error!("peer connection drain did not settle; deferring");
                break;
            }
            let events = self.drain_pc(conn, side);
            for ev in events {
                self.handle_event(conn, side, ev);
            }
            if self.dirty.is_empty() && !self.keyframe_requests.is_empty() {
                self.send_keyframe_requests();
            }
        }
    }

    fn drain_pc(&mut self, conn: ConnId, side: PcSide) -> Vec<Event> {
        let mut events = Vec::new();
        let Some(p) = self.parts.get_mut(&conn) else {
            return events;
        };
        let sid = &p.sid;
        let pc = match side {
            PcSide::Publisher => &mut p.publisher,
            PcSide::Subscriber => &mut p.subscriber,
        };
        let mut rounds = 0;
        loop {
            match peer_connection::poll_output(&mut pc.rtc, self.now, &mut rounds) {
                Ok(str0m::Output::Timeout(t)) => {
                    self.timers.remove(&(pc.timeout, conn, side));
                    pc.timeout = t;
                    self.timers.insert((t, conn, side));
                    break;
                }
                Ok(str0m::Output::Transmit(t)) => self.out.push_back(Output::Transmit {
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.into(),
                }),
                Ok(str0m::Output::Event(e)) => events.push(e),
                Err(e) => {
                    warn!(participant = %sid, ?side, "peer connection failed: {e}");
                    pc.rtc.disconnect();
                    self.timers.remove(&(pc.timeout, conn, side));
                    pc.timeout = self.now + Duration::from_secs(3600);
                    self.timers.insert((pc.timeout, conn, side));
                    break;
                }
            }
        }
        events
    }

    fn handle_event(&mut self, conn: ConnId, side: PcSide, ev: Event) {
        match ev {
            Event::IceConnectionStateChange(s) => {
                debug!(?conn, ?side, ?s, "ice state");
                if s == IceConnectionState::Disconnected {
                    if let Some(p) = self.parts.get_mut(&conn) {
                        p.pc(side).connected = false;
                    }
                }
            }
            Event::Connected => self.pc_connected(conn, side),
            Event::MediaAdded(m) if side == PcSide::Publisher => {
                // Only media the client sends is a publication (some SDKs also add
                // receive-only transceivers to the publisher PC).
                if !matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) {
                    return;
                }
                let track_id = self
                    .parts
                    .get_mut(&conn)
                    .and_then(|p| {
                        p.publisher
                            .rtc
                            .media(m.mid)
                            .map(|x| x.track_id().to_string())
                    })
                    .unwrap_or_default();
                self.bind_media(conn, m.mid, m.kind, track_id);
            }
            Event::MediaChanged(m)
                if side == PcSide::Publisher
                    && !matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) =>
            {
                self.unpublish(conn, m.mid);
            }
            Event::MediaData(d) if side == PcSide::Publisher => self.forward(conn, d),
            Event::KeyframeRequest(r) if side == PcSide::Subscriber => {
                self.relay_keyframe_request(conn, r.mid)
            }
            Event::ChannelOpen(id, label) => {
                let Some(p) = self.parts.get_mut(&conn) else {
                    return;
                };
                match side {
                    PcSide::Publisher => {
                        p.pub_channels.insert(id, label);
                    }
                    PcSide::Subscriber if p.sub_channels.reliable == Some(id) => {
                        debug!(participant = %p.sid, ?id, usable = p.subscriber.rtc.channel(id).is_some(), "subscriber reliable channel open");
                        let queued = std::mem::take(&mut p.pending_data);
                        if let Some(mut ch) = p.subscriber.rtc.channel(id) {
                            for pkt in queued {
                                if let Err(e) = ch.write(true, &pkt) {
                                    debug!("queued data packet lost: {e}");
                                }
                            }
                        }
                        mark(&mut self.dirty, (conn, PcSide::Subscriber));
                    }
                    PcSide::Subscriber => {
                        debug!(participant = %p.sid, ?id, %label, reliable = ?p.sub_channels.reliable, "other subscriber channel open");
                    }
                }
            }
            Event::ChannelData(d) => self.relay_data(conn, side, d),
            _ => {}
        }
    }

    fn pc_connected(&mut self, conn: ConnId, side: PcSide) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        p.pc(side).connected = true;
        debug!(participant = %p.sid, ?side, "peer connection up");
        if p.state != proto::participant_info::State::Active as i32 {
            p.state = proto::participant_info::State::Active as i32;
            p.touch();
            let info = p.info();
            let room = p.room.clone();
            if !p.grant.hidden {
                self.broadcast_update(&room, vec![info], None);
            }
        }
    }

    /// Binds a negotiated publisher media line to the track announced for it.
    fn bind_media(&mut self, conn: ConnId, mid: Mid, kind: MediaKind, track_id: String) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        if p.tracks.iter().any(|t| t.mid == Some(mid)) {
            return;
        }
        // By the client's track id, else the oldest pending track of that kind (Firefox and
        // some SDKs do not carry the cid in the msid).
        let idx = p
            .tracks
            .iter()
            .position(|t| t.mid.is_none() && t.cid == track_id)
            .or_else(|| {
                p.tracks
                    .iter()
                    .position(|t| t.mid.is_none() && t.kind == kind)
            });
        debug!(participant = %p.sid, %mid, %track_id, found = idx.is_some(), "binding media line");
        let Some(idx) = idx else {
            p.unbound_mids.push((mid, kind, track_id));
            return;
        };
        let t = &mut p.tracks[idx];
        t.mid = Some(mid);
        t.info.mid = mid.to_string();
        if let Some(params) = p
            .publisher
            .rtc
            .media(mid)
            .and_then(|m| m.remote_pts().first().copied())
            .and_then(|pt| {
                p.publisher
                    .rtc
                    .codec_config()
                    .find(|c| c.pt() == pt)
                    .cloned()
            })
        {
            t.info.mime_type = format!("{}/{}", kind_str(kind), params.spec().codec);
            t.info.codecs = vec![proto::SimulcastCodecInfo {
                mime_type: t.info.mime_type.clone(),
                mid: t.info.mid.clone(),
                cid: t.cid.clone(),
                layers: t.info.layers.clone(),
                ..Default::default()
            }];
        }
        let (tsid, psid) = (t.sid.clone(), p.sid.clone());
        info!(participant = %p.sid, track = %tsid, %mid, ?kind, "track published");
        p.touch();
        let info = p.info();
        let room = p.room.clone();
        self.broadcast_update(&room, vec![info], None);
        for m in self.members(&room) {
            if m == conn {
                continue;
            }
            let Some(o) = self.parts.get_mut(&m) else {
                continue;
            };
            if o.auto_subscribe && o.grant.can_subscribe {
                o.down.push(DownTrack::new(&tsid, &psid, kind));
                self.negotiate_subscriber(m);
            }
        }
    }

    fn unpublish(&mut self, conn: ConnId, mid: Mid) {
        let Some(p) = self.parts.get_mut(&conn) else {
            return;
        };
        let Some(idx) = p.tracks.iter().position(|t| t.mid == Some(mid)) else {
            return;
        };
        let t = p.tracks.remove(idx);
        info!(participant = %p.sid, track = %t.sid, "track unpublished");
        p.touch();
        let info = p.info();
        let room = p.room.clone();
        self.send(
            conn,
            Resp::TrackUnpublished(proto::TrackUnpublishedResponse {
                track_sid: t.sid.clone(),
            }),
        );
        self.broadcast_update(&room, vec![info], None);
        for m in self.members(&room) {
            let changed = {
                let Some(o) = self.parts.get_mut(&m) else {
                    continue;
                };
                stop_down_tracks(o, |d| d.track_sid == t.sid)
            };
            if changed {
                self.negotiate_subscriber(m);
            }
        }
    }

    /// Forwards one publisher frame to every subscriber of its track.
    fn forward(&mut self, conn: ConnId, data: MediaData) {
        self.stats.frames_in += 1;
        let Some(p) = self.parts.get(&conn) else {
            return;
        };
        let Some(track) = p.tracks.iter().find(|t| t.mid == Some(data.mid)) else {
            return;
        };
        if track.info.muted {
            return;
        }
        let Some(room) = self.rooms.get_mut(&p.room) else {
            return;
        };
        let (tsid, kind) = (track.sid.clone(), track.kind);
        let layers = if kind == MediaKind::Video && track.layers.len() > 1 {
            track.layers.clone()
        } else {
            Vec::new()
        };
        let level = data.ext_vals.audio_level;
        if kind == MediaKind::Audio {
            if let Some(l) = level {
                room.speakers.record(&p.sid, l.unsigned_abs().min(127));
            }
        }
        let is_key = kind == MediaKind::Video && data.is_keyframe();
        let step = if kind == MediaKind::Video { 3000 } else { 960 };
        // Split borrows: the room's member list is read while subscribers are written to.
        let members = &room.members;
        for &m in members {
            if m == conn {
                continue;
            }
            let Some(s) = self.parts.get_mut(&m) else {
                continue;
            };
            let Some(d) = s.down.iter_mut().find(|d| d.track_sid == tsid) else {
                continue;
            };
            let DownState::Open(mid) = d.state else {
                continue;
            };
            if d.disabled {
                continue;
            }
            if !layers.is_empty() {
                let want = d.choose(&layers);
                if d.current != Some(want) {
                    if data.rid == want && is_key {
                        d.current = Some(want);
                        d.clock.rebase();
                    } else {
                        if d.target != Some(want) {
                            d.target = Some(want);
                            self.keyframe_requests.push((conn, data.mid, want));
                        }
                        continue;
                    }
                }
                if d.current != Some(data.rid) {
                    continue;
                }
            }
            let Some(writer) = s.subscriber.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            let time = d.clock.map(data.time, step);
            let writer = match level {
                Some(l) if kind == MediaKind::Audio => {
                    writer.audio_level(l, is_voice(l.unsigned_abs()))
                }
                _ => writer,
            };
            if let Err(e) = writer.write(pt, data.network_time, time, data.data.clone()) {
                debug!(participant = %s.sid, "forward failed: {e}");
                continue;
            }
            d.forwarded += 1;
            self.stats.frames_out += 1;
            mark(&mut self.dirty, (m, PcSide::Subscriber));
        }
    }

    /// A subscriber asked for a keyframe: pass it to the publisher of that track's layer.
    fn relay_keyframe_request(&mut self, conn: ConnId, mid: Mid) {
        let Some(s) = self.parts.get_mut(&conn) else {
            return;
        };
        let Some(d) = s.down_by_mid(mid) else { return };
        let rid = d.current.flatten();
        let (tsid, psid) = (d.track_sid.clone(), d.publisher_sid.clone());
        let room = s.room.clone();
        for m in self.members(&room) {
            let Some(p) = self.parts.get(&m) else {
                continue;
            };
            if p.sid != psid {
                continue;
            }
            if let Some(t) = p.track(&tsid) {
                if let Some(pmid) = t.mid {
                    self.keyframe_requests.push((m, pmid, rid));
                }
            }
        }
        self.send_keyframe_requests();
    }

    /// New subscriber video: ask its publishers for a keyframe.
    fn request_keyframes_for(&mut self, conn: ConnId) {
        let Some(s) = self.parts.get(&conn) else {
            return;
        };
        let wanted: Vec<(String, String)> = s
            .down
            .iter()
            .filter(|d| d.kind == MediaKind::Video && d.current.is_none())
            .map(|d| (d.publisher_sid.clone(), d.track_sid.clone()))
            .collect();
        let room = s.room.clone();
        for m in self.members(&room) {
            let Some(p) = self.parts.get(&m) else {
                continue;
            };
            for (psid, tsid) in &wanted {
                if &p.sid != psid {
                    continue;
                }
                if let Some(t) = p.track(tsid) {
                    if let Some(pmid) = t.mid {
                        let rid = t.layers.last().and_then(|l| l.rid);
                        self.keyframe_requests.push((m, pmid, rid));
                    }
                }
            }
        }
    }

    fn send_keyframe_requests(&mut self) {
        let now = self.now;
        for (conn, mid, rid) in std::mem::take(&mut self.keyframe_requests) {
            let Some(p) = self.parts.get_mut(&conn) else {
                continue;
            };
            let Some(t) = p.tracks.iter_mut().find(|t| t.mid == Some(mid)) else {
                continue;
            };
            if t.last_keyframe_request
                .is_some_and(|l| now.saturating_duration_since(l) < KEYFRAME_REQUEST_GAP)
            {
                continue;
            }
            t.last_keyframe_request = Some(now);
            if let Some(mut w) = p.publisher.rtc.writer(mid) {
                if let Err(e) = w.request_keyframe(rid, KeyframeRequestKind::Pli) {
                    debug!("keyframe request failed: {e}");
                }
                mark(&mut self.dirty, (conn, PcSide::Publisher));
            }
        }
    }

    // === data packets ===

    fn relay_data(&mut self, conn: ConnId, side: PcSide, d: str0m::channel::ChannelData) {
        let Some(p) = self.parts.get(&conn) else {
            return;
        };
        if !p.grant.can_publish_data {
            return;
        }
        let reliable = match side {
            PcSide::Publisher => p.pub_channels.get(&d.id).is_none_or(|l| l != "_lossy"),
            PcSide::Subscriber => p.sub_channels.lossy != Some(d.id),
        };
        let Ok(mut pkt) = proto::DataPacket::decode(&d.data[..]) else {
            self.stats.data_malformed += 1;
            debug!(participant = %p.sid, "malformed data packet dropped");
            return;
        };
        pkt.participant_identity = p.grant.identity.clone();
        pkt.participant_sid = p.sid.clone();
        #[allow(deprecated)]
        {
            pkt.kind = if reliable {
                proto::data_packet::Kind::Reliable as i32
            } else {
                proto::data_packet::Kind::Lossy as i32
            };
        }
        let mut dest = pkt.destination_identities.clone();
        if let Some(proto::data_packet::Value::User(u)) = &mut pkt.value {
            #[allow(deprecated)]
            {
                u.participant_sid = p.sid.clone();
                u.participant_identity = p.grant.identity.clone();
                dest.extend(u.destination_identities.iter().cloned());
            }
        }
        let bytes = pkt.encode_to_vec();
        let room = p.room.clone();
        for m in self.members(&room) {
            if m == conn {
                continue;
            }
            let Some(o) = self.parts.get_mut(&m) else {
                continue;
            };
            if !dest.is_empty() && !dest.contains(&o.grant.identity) {
                continue;
            }
            let id = if reliable {
                o.sub_channels.reliable
            } else {
                o.sub_channels.lossy
            };
            let Some(mut ch) = id.and_then(|id| o.subscriber.rtc.channel(id)) else {
                // Reliable packets wait (bounded) for the channel; lossy ones are dropped.
                if reliable && o.pending_data.len() < MAX_PENDING_DATA {
                    debug!(participant = %o.sid, ?id, alive = o.subscriber.rtc.is_alive(), "data packet queued until the channel opens");
                    o.pending_data.push(bytes.clone());
                } else {
                    debug!(participant = %o.sid, ?id, alive = o.subscriber.rtc.is_alive(), "data channel not open; packet dropped");
                }
                continue;
            };
            match ch.write(true, &bytes) {
                Ok(_) => {
                    self.stats.data_relayed += 1;
                    mark(&mut self.dirty, (m, PcSide::Subscriber));
                }
                Err(e) => debug!("data relay failed: {e}"),
            }
        }
    }

    // === administration (the RoomService API) ===

    /// The open rooms, all of them or those named.
    pub fn list_rooms(&self, names: &[String]) -> Vec<proto::Room> {
        let mut rooms: Vec<proto::Room> = self
            .rooms
            .keys()
            .filter(|n| names.is_empty() || names.contains(n))
            .map(|n| self.room_info(n))
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    /// The participants of a room (hidden ones included, as LiveKit does); `None` if no such room.
    pub fn list_participants(&self, room: &str) -> Option<Vec<proto::ParticipantInfo>> {
        let r = self.rooms.get(room)?;
        Some(
            r.members
                .iter()
                .filter_map(|c| self.parts.get(c))
                .map(Participant::info)
                .collect(),
        )
    }

    /// Removes a participant by identity: it is told (PARTICIPANT_REMOVED) and disconnected.
    /// False when there is no such participant.
    pub fn remove_participant(&mut self, now: Instant, room: &str, identity: &str) -> bool {
        self.now = self.now.max(now);
        let found = self.members(room).into_iter().find(|c| {
            self.parts
                .get(c)
                .is_some_and(|p| p.grant.identity == identity)
        });
        let Some(conn) = found else {
            return false;
        };
        self.leave_with(conn, proto::DisconnectReason::ParticipantRemoved);
        self.remove(conn, "removed by the API");
        self.run_dirty();
        true
    }

    /// Closes a room: every participant is told (ROOM_DELETED) and disconnected. False when
    /// there is no such room.
    pub fn delete_room(&mut self, now: Instant, room: &str) -> bool {
        self.now = self.now.max(now);
        if !self.rooms.contains_key(room) {
            return false;
        }
        for conn in self.members(room) {
            self.leave_with(conn, proto::DisconnectReason::RoomDeleted);
            self.remove(conn, "room deleted by the API");
        }
        self.rooms.remove(room);
        info!(room, "room deleted by the API");
        self.run_dirty();
        true
    }

    fn leave_with(&mut self, conn: ConnId, reason: proto::DisconnectReason) {
        self.send(
            conn,
            Resp::Leave(proto::LeaveRequest {
                can_reconnect: false,
                reason: reason as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                ..Default::default()
            }),
        );
    }

    // === room helpers ===

    fn members(&self, room: &str) -> Vec<ConnId> {
        self.rooms
            .get(room)
            .map(|r| r.members.clone())
            .unwrap_or_default()
    }

    fn room_info(&self, name: &str) -> proto::Room {
        let Some(r) = self.rooms.get(name) else {
            return proto::Room::default();
        };
        proto::Room {
            sid: r.sid.clone(),
            name: r.name.clone(),
            empty_timeout: self.cfg.empty_timeout.as_secs() as u32,
            departure_timeout: self.cfg.empty_timeout.as_secs() as u32,
            max_participants: self.cfg.max_participants,
            creation_time: r.created_ms / 1000,
            creation_time_ms: r.created_ms,
            enabled_codecs: enabled_codecs(),
            num_participants: r.members.len() as u32,
            ..Default::default()
        }
    }

    fn broadcast(&mut self, room: &str, msg: Resp) {
        for m in self.members(room) {
            self.send(m, msg.clone());
        }
    }

    /// Sends participant updates to the room (optionally skipping one connection).
    fn broadcast_update(
        &mut self,
        room: &str,
        infos: Vec<proto::ParticipantInfo>,
        skip: Option<ConnId>,
    ) {
        let msg = Resp::Update(proto::ParticipantUpdate {
            participants: infos,
        });
        for m in self.members(room) {
            if Some(m) != skip {
                self.send(m, msg.clone());
            }
        }
    }
}

/// Queues a peer connection for draining, once.
fn mark(dirty: &mut Vec<(ConnId, PcSide)>, pc: (ConnId, PcSide)) {
    if !dirty.contains(&pc) {
        dirty.push(pc);
    }
}

/// Marks a participant's down tracks matching `pred` for removal; true when something changed.
fn stop_down_tracks(p: &mut Participant, pred: impl Fn(&DownTrack) -> bool) -> bool {
    let mut changed = false;
    p.down.retain_mut(|d| {
        if !pred(d) {
            return true;
        }
        match d.state {
            DownState::ToOpen => {
                changed = true;
                false
            }
            DownState::Negotiating(m) | DownState::Open(m) => {
                d.state = DownState::ToStop(m);
                changed = true;
                true
            }
            _ => true,
        }
    });
    changed
}

fn kind_str(k: MediaKind) -> &'static str {
    match k {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

/// The codecs the embedded server forwards.
fn enabled_codecs() -> Vec<proto::Codec> {
    [
        "audio/opus",
        "audio/PCMU",
        "audio/PCMA",
        "video/VP8",
        "video/H264",
    ]
    .iter()
    .map(|m| proto::Codec {
        mime: m.to_string(),
        fmtp_line: String::new(),
    })
    .collect()
}
