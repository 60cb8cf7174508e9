//! A LiveKit participant, sans-IO: the signalling state machine plus its two str0m peer
//! connections (publisher: we offer; subscriber: the server offers). The gateway's room legs and
//! the load generator are built on it; it speaks to the embedded room server and to LiveKit alike.
//!
//! Run-loop contract: after each `handle_*` or command, drain [`RoomClient::poll_output`] until
//! it returns [`ClientOutput::Timeout`].

// LiveKit servers still send (and read) fields marked deprecated in the protocol.
#![allow(deprecated)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use prost::Message;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Rtc, RtcConfig};

use crate::media::{level, peer_connection};

/// Client-side settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Local addresses of the publisher PC's UDP socket (its host candidates).
    pub publisher: Vec<SocketAddr>,
    /// Local addresses of the subscriber PC's UDP socket. Each PC needs its own socket: the
    /// server would otherwise see both PCs' DTLS and SRTP from one address and could not tell
    /// them apart.
    pub subscriber: Vec<SocketAddr>,
}

/// A track we publish.
#[derive(Debug, Clone)]
pub struct LocalTrack {
    /// Our id for it (`AddTrackRequest.cid`).
    pub cid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Display name.
    pub name: String,
    /// Server's sid once published.
    pub sid: Option<String>,
    /// Media line once negotiated.
    pub mid: Option<Mid>,
}

/// What happened in the room.
#[derive(Debug)]
pub enum ClientEvent {
    /// Joined: our participant sid and the room name.
    Joined {
        /// Our sid.
        sid: String,
        /// Room name.
        room: String,
        /// Participants already there.
        others: Vec<proto::ParticipantInfo>,
        /// MIME types the room accepts for publishing, lowercase (`audio/pcmu`, ...). Empty:
        /// the server did not say (LiveKit's defaults, which include PCMU and PCMA).
        publish_codecs: Vec<String>,
    },
    /// A participant's info changed, joined or (state DISCONNECTED) left.
    Participant(proto::ParticipantInfo),
    /// A local track got its sid and media line: media can be written.
    Published {
        /// Our cid.
        cid: String,
        /// Server sid.
        sid: String,
    },
    /// A remote track is negotiated on our subscriber PC.
    Subscribed {
        /// Track sid.
        track_sid: String,
        /// Publisher's sid.
        participant_sid: String,
        /// Audio or video.
        kind: MediaKind,
    },
    /// A media frame of a subscribed track.
    Media {
        /// Track sid.
        track_sid: String,
        /// The frame.
        data: MediaData,
    },
    /// A data packet from the room.
    Data(proto::DataPacket),
    /// Active speakers changed.
    Speakers(Vec<proto::SpeakerInfo>),
    /// A subscriber of one of our video tracks wants a keyframe (PLI or FIR relayed by the
    /// server): the source should send one soon.
    KeyframeRequest {
        /// Our cid of the track.
        cid: String,
        /// PLI or FIR.
        kind: KeyframeRequestKind,
    },
    /// Both peer connections are up.
    Connected,
    /// The server told us to leave.
    Left(proto::LeaveRequest),
}

/// Outputs of the client.
#[derive(Debug)]
pub enum ClientOutput {
    /// A signalling request to send.
    Signal(Req),
    /// A datagram to send.
    Transmit {
        /// Local address to send from.
        source: SocketAddr,
        /// Remote address.
        destination: SocketAddr,
        /// Payload.
        data: Vec<u8>,
    },
    /// Something happened.
    Event(ClientEvent),
    /// Nothing more until then.
    Timeout(Instant),
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The track is not (yet) published.
    #[error("track {0} is not published yet")]
    NotPublished(String),
    /// Not joined yet.
    #[error("not joined")]
    NotJoined,
    /// No such subscribed track (not negotiated yet, or gone).
    #[error("track {0} is not subscribed")]
    NotSubscribed(String),
    /// str0m refused.
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
}

/// The client. See the module docs for the run-loop contract.
pub struct RoomClient {
    pub_addrs: Vec<SocketAddr>,
    now: Instant,
    publisher: Rtc,
    subscriber: Rtc,
    pub_timeout: Instant,
    sub_timeout: Instant,
    sid: Option<String>,
    tracks: Vec<LocalTrack>,
    pub_pending: Option<SdpPendingOffer>,
    pub_offer_id: u32,
    pub_dirty: bool,
    reliable: Option<ChannelId>,
    lossy: Option<ChannelId>,
    sub_tracks: HashMap<Mid, (String, String, MediaKind)>,
    pending_mid_map: HashMap<String, String>,
    remote: HashMap<String, proto::ParticipantInfo>,
    connected: (bool, bool),
    out: VecDeque<ClientOutput>,
    next_ping: Instant,
    ping_interval: Duration,
    data_seq: u32,
}

impl RoomClient {
    /// A client that has not joined yet; the join happens on the WebSocket, whose first message
    /// feeds [`RoomClient::handle_signal`].
    pub fn new(cfg: ClientConfig, now: Instant) -> Self {
        let publisher = new_rtc(&cfg.publisher, now, false);
        let subscriber = new_rtc(&cfg.subscriber, now, true);
        Self {
            pub_addrs: cfg.publisher,
            now,
            publisher,
            subscriber,
            pub_timeout: now,
            sub_timeout: now,
            sid: None,
            tracks: Vec::new(),
            pub_pending: None,
            pub_offer_id: 0,
            pub_dirty: false,
            reliable: None,
            lossy: None,
            sub_tracks: HashMap::new(),
            pending_mid_map: HashMap::new(),
            remote: HashMap::new(),
            connected: (false, false),
            out: VecDeque::new(),
            next_ping: now + Duration::from_secs(5),
            ping_interval: Duration::from_secs(5),
            data_seq: 0,
        }
    }

    // === getters ===

    /// Our participant sid, once joined.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// Other participants, by sid.
    pub fn remote(&self) -> &HashMap<String, proto::ParticipantInfo> {
        &self.remote
    }

    /// Local tracks.
    pub fn tracks(&self) -> &[LocalTrack] {
        &self.tracks
    }

    // === inputs ===

    /// A signalling response from the server.
    pub fn handle_signal(&mut self, now: Instant, msg: Resp) {
        self.now = self.now.max(now);
        match msg {
            Resp::Join(j) => self.joined(j),
            Resp::Offer(sd) => {
                self.subscriber_offer(sd);
                let _ = self
                    .subscriber
                    .handle_input(str0m::Input::Timeout(self.now));
            }
            Resp::Answer(sd) => {
                self.publisher_answer(sd);
                let _ = self.publisher.handle_input(str0m::Input::Timeout(self.now));
            }
            Resp::Trickle(t) => self.trickle(t),
            Resp::TrackPublished(t) => self.track_published(t),
            Resp::Update(u) => {
                for p in u.participants {
                    if Some(&p.sid) == self.sid.as_ref() {
                        continue;
                    }
                    if p.state == proto::participant_info::State::Disconnected as i32 {
                        self.remote.remove(&p.sid);
                    } else {
                        self.remote.insert(p.sid.clone(), p.clone());
                    }
                    self.event(ClientEvent::Participant(p));
                }
            }
            Resp::SpeakersChanged(s) => self.event(ClientEvent::Speakers(s.speakers)),
            Resp::Leave(l) => self.event(ClientEvent::Left(l)),
            _ => {}
        }
        self.drain();
    }

    /// A datagram on our UDP socket. Returns false if neither peer connection wanted it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> bool {
        self.now = self.now.max(now);
        let Ok(contents) = data.try_into() else {
            return false;
        };
        let input = str0m::Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let publisher = self.pub_addrs.contains(&destination);
        let rtc = if publisher {
            &mut self.publisher
        } else {
            &mut self.subscriber
        };
        let taken = rtc.accepts(&input);
        if taken {
            let _ = rtc.handle_input(input);
            self.drain_pc(publisher);
        }
        taken
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        // Until both are connected, both peer connections get the time: str0m's ICE agent only
        // starts its checks from a timeout input, and a timeout it reported before the remote
        // description can be stale. Then only the one that asked for it.
        let setup = self.connected != (true, true);
        let (pub_due, sub_due) = (
            setup || now >= self.pub_timeout,
            setup || now >= self.sub_timeout,
        );
        if pub_due {
            let _ = self.publisher.handle_input(str0m::Input::Timeout(now));
        }
        if sub_due {
            let _ = self.subscriber.handle_input(str0m::Input::Timeout(now));
        }
        if self.sid.is_some() && now >= self.next_ping {
            self.next_ping = now + self.ping_interval;
            let ts = now.saturating_duration_since(self.next_ping - self.ping_interval);
            self.out
                .push_back(ClientOutput::Signal(Req::PingReq(proto::Ping {
                    timestamp: ts.as_millis() as i64,
                    rtt: 0,
                })));
        }
        if pub_due {
            self.drain_pc(true);
        }
        if sub_due {
            self.drain_pc(false);
        }
    }

    // === commands ===

    /// Announces a track; media can be written after [`ClientEvent::Published`].
    pub fn publish(&mut self, cid: &str, name: &str, kind: MediaKind, source: proto::TrackSource) {
        self.add_track(cid, name, kind, source, (0, 0));
    }

    /// Announces a video track of `width`×`height` (what subscribers are told; one layer, no
    /// simulcast); frames are written as H.264 access units after [`ClientEvent::Published`].
    pub fn publish_video(
        &mut self,
        cid: &str,
        name: &str,
        source: proto::TrackSource,
        width: u32,
        height: u32,
    ) {
        self.add_track(cid, name, MediaKind::Video, source, (width, height));
    }

    fn add_track(
        &mut self,
        cid: &str,
        name: &str,
        kind: MediaKind,
        source: proto::TrackSource,
        (width, height): (u32, u32),
    ) {
        self.tracks.push(LocalTrack {
            cid: cid.to_string(),
            kind,
            name: name.to_string(),
            sid: None,
            mid: None,
        });
        let r#type = match kind {
            MediaKind::Audio => proto::TrackType::Audio,
            MediaKind::Video => proto::TrackType::Video,
        };
        self.out.push_back(ClientOutput::Signal(Req::AddTrack(
            proto::AddTrackRequest {
                cid: cid.to_string(),
                name: name.to_string(),
                r#type: r#type as i32,
                source: source as i32,
                width,
                height,
                ..Default::default()
            },
        )));
    }

    /// Asks the publisher of a subscribed track for a keyframe (through the server).
    pub fn request_keyframe(
        &mut self,
        track_sid: &str,
        kind: KeyframeRequestKind,
    ) -> Result<(), ClientError> {
        let mid = self
            .sub_tracks
            .iter()
            .find(|(_, (sid, _, _))| sid == track_sid)
            .map(|(mid, _)| *mid)
            .ok_or_else(|| ClientError::NotSubscribed(track_sid.to_string()))?;
        let mut writer = self
            .subscriber
            .writer(mid)
            .ok_or_else(|| ClientError::NotSubscribed(track_sid.to_string()))?;
        writer.request_keyframe(None, kind)?;
        self.drain_pc(false);
        Ok(())
    }

    /// Tells the server what we want of a subscribed video track: the size we show it at
    /// (the server picks the simulcast layer), or nothing at all (`disabled`).
    pub fn update_track_settings(
        &mut self,
        track_sid: &str,
        disabled: bool,
        width: u32,
        height: u32,
    ) {
        self.out.push_back(ClientOutput::Signal(Req::TrackSetting(
            proto::UpdateTrackSettings {
                track_sids: vec![track_sid.to_string()],
                disabled,
                width,
                height,
                ..Default::default()
            },
        )));
    }

    /// Subscribes to (or unsubscribes from) tracks.
    pub fn subscribe(&mut self, track_sids: Vec<String>, subscribe: bool) {
        self.out.push_back(ClientOutput::Signal(Req::Subscription(
            proto::UpdateSubscription {
                track_sids,
                subscribe,
                participant_tracks: Vec::new(),
            },
        )));
    }

    /// Writes one media frame of a published track (`time` in the codec's clock), captured at
    /// `wallclock` (now, for a frame being relayed); its packets are ready at once. An audio
    /// frame's `level` (RFC 6464, -dBov) goes in its header extension, which the room's active
    /// speaker detection reads.
    pub fn write(
        &mut self,
        cid: &str,
        mime: &str,
        wallclock: Instant,
        time: MediaTime,
        data: impl Into<Arc<[u8]>>,
        level: Option<u8>,
    ) -> Result<(), ClientError> {
        let mid = self
            .tracks
            .iter()
            .find(|t| t.cid == cid)
            .and_then(|t| t.mid)
            .ok_or_else(|| ClientError::NotPublished(cid.to_string()))?;
        self.now = self.now.max(wallclock);
        let writer = self
            .publisher
            .writer(mid)
            .ok_or_else(|| ClientError::NotPublished(cid.to_string()))?;
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec.to_string().eq_ignore_ascii_case(mime))
            .map(|p| p.pt())
            .ok_or_else(|| ClientError::NotPublished(format!("{cid} ({mime} not negotiated)")))?;
        let writer = match level {
            Some(l) => writer.audio_level(-(l.min(level::SILENCE) as i8), level::is_voice(l)),
            None => writer,
        };
        writer.write(pt, wallclock, time, data)?;
        self.drain_pc(true);
        Ok(())
    }

    /// Sends a data packet to the room (or to `destination_identities`).
    pub fn send_data(
        &mut self,
        mut pkt: proto::DataPacket,
        reliable: bool,
    ) -> Result<(), ClientError> {
        self.data_seq = self.data_seq.wrapping_add(1);
        pkt.sequence = self.data_seq;
        let id = if reliable { self.reliable } else { self.lossy };
        let mut ch = id
            .and_then(|id| self.publisher.channel(id))
            .ok_or(ClientError::NotJoined)?;
        ch.write(true, &pkt.encode_to_vec())?;
        self.drain();
        Ok(())
    }

    /// Leaves the room.
    pub fn leave(&mut self) {
        self.out
            .push_back(ClientOutput::Signal(Req::Leave(proto::LeaveRequest {
                reason: proto::DisconnectReason::ClientInitiated as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                ..Default::default()
            })));
    }

    // === outputs ===

    /// The next output; drain until [`ClientOutput::Timeout`].
    pub fn poll_output(&mut self) -> ClientOutput {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let mut t = self.pub_timeout.min(self.sub_timeout);
        if self.sid.is_some() {
            t = t.min(self.next_ping);
        }
        ClientOutput::Timeout(t.max(self.now))
    }

    // === internals ===

    fn event(&mut self, e: ClientEvent) {
        self.out.push_back(ClientOutput::Event(e));
    }

    fn joined(&mut self, j: proto::JoinResponse) {
        let me = j.participant.unwrap_or_default();
        self.sid = Some(me.sid.clone());
        if j.ping_interval > 0 {
            self.ping_interval = Duration::from_secs(j.ping_interval as u64);
            self.next_ping = self.now + self.ping_interval;
        }
        for p in &j.other_participants {
            self.remote.insert(p.sid.clone(), p.clone());
        }
        // Our data channels live on the publisher PC: negotiate it now.
        self.pub_dirty = true;
        self.negotiate_publisher();
        let room = j.room.map(|r| r.name).unwrap_or_default();
        self.event(ClientEvent::Joined {
            sid: me.sid,
            room,
            others: j.other_participants,
            publish_codecs: j
                .enabled_publish_codecs
                .iter()
                .map(|c| c.mime.to_ascii_lowercase())
                .collect(),
        });
    }

    fn negotiate_publisher(&mut self) {
        if self.pub_pending.is_some() || !self.pub_dirty {
            return;
        }
        let mut api = self.publisher.sdp_api();
        if self.reliable.is_none() {
            self.reliable = Some(api.add_channel_with_config(ChannelConfig {
                label: "_reliable".into(),
                ordered: true,
                reliability: Reliability::Reliable,
                ..Default::default()
            }));
            self.lossy = Some(api.add_channel_with_config(ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            }));
        }
        for t in self
            .tracks
            .iter_mut()
            .filter(|t| t.sid.is_some() && t.mid.is_none())
        {
            let mid = api.add_media(
                t.kind,
                Direction::SendOnly,
                Some(t.cid.clone()),
                Some(t.cid.clone()),
                None,
            );
            t.mid = Some(mid);
        }
        self.pub_dirty = false;
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        self.pub_pending = Some(pending);
        self.pub_offer_id += 1;
        self.out.push_back(ClientOutput::Signal(Req::Offer(
            proto::SessionDescription {
                r#type: "offer".into(),
                sdp: offer.to_sdp_string(),
                id: self.pub_offer_id,
                mid_to_track_id: HashMap::new(),
            },
        )));
    }

    fn publisher_answer(&mut self, sd: proto::SessionDescription) {
        let Some(pending) = self.pub_pending.take() else {
            return;
        };
        match SdpAnswer::from_sdp_string(&sd.sdp) {
            Ok(a) => {
                if let Err(e) = self.publisher.sdp_api().accept_answer(pending, a) {
                    warn!("publisher answer refused: {e}");
                    return;
                }
            }
            Err(e) => {
                warn!("unparsable publisher answer: {e}");
                return;
            }
        }
        let published: Vec<(String, String)> = self
            .tracks
            .iter()
            .filter_map(|t| Some((t.cid.clone(), t.sid.clone()?)).filter(|_| t.mid.is_some()))
            .collect();
        for (cid, sid) in published {
            self.event(ClientEvent::Published { cid, sid });
        }
        self.negotiate_publisher();
    }

    fn subscriber_offer(&mut self, sd: proto::SessionDescription) {
        let offer = match SdpOffer::from_sdp_string(&sd.sdp) {
            Ok(o) => o,
            Err(e) => {
                warn!("unparsable subscriber offer: {e}");
                return;
            }
        };
        self.pending_mid_map = sd.mid_to_track_id;
        match self.subscriber.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                debug!(sid = ?self.sid, id = sd.id, "subscriber offer accepted");
                self.out.push_back(ClientOutput::Signal(Req::Answer(
                    proto::SessionDescription {
                        r#type: "answer".into(),
                        sdp: answer.to_sdp_string(),
                        id: sd.id,
                        mid_to_track_id: HashMap::new(),
                    },
                )));
            }
            Err(e) => warn!("subscriber offer refused: {e}"),
        }
    }

    fn trickle(&mut self, t: proto::TrickleRequest) {
        #[derive(serde::Deserialize)]
        struct Init {
            #[serde(default)]
            candidate: String,
        }
        let Ok(init) = serde_json::from_str::<Init>(&t.candidate_init) else {
            return;
        };
        if init.candidate.is_empty() {
            return;
        }
        if let Ok(c) = Candidate::from_sdp_string(&init.candidate) {
            if t.target == proto::SignalTarget::Subscriber as i32 {
                self.subscriber.add_remote_candidate(c);
            } else {
                self.publisher.add_remote_candidate(c);
            }
        }
    }

    fn track_published(&mut self, t: proto::TrackPublishedResponse) {
        let Some(info) = t.track else { return };
        if let Some(lt) = self.tracks.iter_mut().find(|x| x.cid == t.cid) {
            lt.sid = Some(info.sid);
            self.pub_dirty = true;
            self.negotiate_publisher();
        }
    }

    /// Drains both peer connections (after a change that may concern either).
    fn drain(&mut self) {
        self.drain_pc(true);
        self.drain_pc(false);
    }

    /// Drains one peer connection's outputs until its next timeout.
    fn drain_pc(&mut self, side: bool) {
        let mut rounds = 0;
        loop {
            let rtc = if side {
                &mut self.publisher
            } else {
                &mut self.subscriber
            };
            match peer_connection::poll_output(rtc, self.now, &mut rounds) {
                Ok(str0m::Output::Timeout(t)) => {
                    if side {
                        self.pub_timeout = t;
                    } else {
                        self.sub_timeout = t;
                    }
                    break;
                }
                Ok(str0m::Output::Transmit(t)) => self.out.push_back(ClientOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.into(),
                }),
                Ok(str0m::Output::Event(e)) => self.rtc_event(side, e),
                Err(e) => {
                    warn!("peer connection failed: {e}");
                    rtc.disconnect();
                    // A dead connection has no timeout: do not wake up for it again.
                    let never = self.now + Duration::from_secs(3600);
                    if side {
                        self.pub_timeout = never;
                    } else {
                        self.sub_timeout = never;
                    }
                    break;
                }
            }
        }
    }

    fn rtc_event(&mut self, publisher: bool, e: Event) {
        match e {
            Event::Connected => {
                if publisher {
                    self.connected.0 = true;
                } else {
                    self.connected.1 = true;
                }
                if self.connected == (true, true) {
                    self.event(ClientEvent::Connected);
                }
            }
            Event::MediaAdded(m) if !publisher => {
                let track_sid = self
                    .pending_mid_map
                    .get(&m.mid.to_string())
                    .cloned()
                    .or_else(|| {
                        self.subscriber
                            .media(m.mid)
                            .map(|x| x.track_id().to_string())
                    })
                    .unwrap_or_default();
                let participant_sid = self
                    .subscriber
                    .media(m.mid)
                    .and_then(|x| x.stream_id().split('|').next().map(str::to_string))
                    .unwrap_or_default();
                self.sub_tracks
                    .insert(m.mid, (track_sid.clone(), participant_sid.clone(), m.kind));
                self.event(ClientEvent::Subscribed {
                    track_sid,
                    participant_sid,
                    kind: m.kind,
                });
            }
            Event::MediaData(d) if !publisher => {
                if let Some((sid, _, _)) = self.sub_tracks.get(&d.mid) {
                    let track_sid = sid.clone();
                    self.event(ClientEvent::Media { track_sid, data: d });
                }
            }
            Event::KeyframeRequest(r) if publisher => {
                if let Some(t) = self.tracks.iter().find(|t| t.mid == Some(r.mid)) {
                    let cid = t.cid.clone();
                    self.event(ClientEvent::KeyframeRequest { cid, kind: r.kind });
                }
            }
            Event::ChannelData(d) => {
                if let Ok(pkt) = proto::DataPacket::decode(&d.data[..]) {
                    self.event(ClientEvent::Data(pkt));
                }
            }
            _ => {}
        }
    }
}

/// A peer connection. The gateway only ever publishes H.264 video (it remuxes, never encodes),
/// so the publisher offers nothing else and the server announces the track as `video/H264`;
/// the subscriber also takes VP8, which the call ignores.
fn new_rtc(candidates: &[SocketAddr], now: Instant, subscriber: bool) -> Rtc {
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_pcmu(true, false)
        .enable_pcma(true, false)
        .enable_h264(true)
        .enable_vp8(subscriber)
        .build(now);
    for a in candidates {
        if let Ok(c) = Candidate::host(*a, "udp") {
            rtc.add_local_candidate(c);
        }
    }
    rtc
}
