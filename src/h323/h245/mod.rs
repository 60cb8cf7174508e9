//! H.245 control protocol (v7+ semantics as H.323 endpoints use it), sans-IO.
//!
//! One [`H245`] per call. It is fed decoded [`MultimediaSystemControlMessage`]s (or their
//! aligned-PER bytes), the time and commands; it hands back messages to send
//! ([`H245::poll_transmit`]), the next timer deadline ([`H245::poll_timeout`]) and
//! [`H245Event`]s. How the PDUs travel (separate TCP with TPKT, or tunnelled in H.225.0) is
//! the caller's business.
//!
//! Procedures: capability exchange ([`capabilities`], T101), master/slave determination
//! ([`msd`], T106, N100 retries), unidirectional RTP logical channels ([`channels`], T103),
//! CloseLogicalChannel / RequestChannelClose, EndSessionCommand, RoundTripDelay,
//! UserInputIndication, videoFastUpdatePicture, FlowControlCommand; unknown requests get
//! FunctionNotUnderstood / FunctionNotSupported.

pub mod capabilities;
pub mod channels;
pub mod msd;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::h323::asn::multimedia_system_control::{
    CloseLogicalChannel, CloseLogicalChannelAck, CloseLogicalChannelSource, CommandMessage,
    EndSessionCommand, FlowControlCommand, FlowControlCommandRestriction, FlowControlCommandScope,
    FunctionNotSupported, FunctionNotSupportedCause, FunctionNotUnderstood, IndicationMessage,
    LogicalChannelNumber, MasterSlaveDetermination, MasterSlaveDeterminationAck,
    MasterSlaveDeterminationAckDecision, MasterSlaveDeterminationReject,
    MasterSlaveDeterminationRejectCause, MasterSlaveDeterminationRelease, MiscellaneousCommand,
    MiscellaneousCommandType, MultimediaSystemControlMessage, OpenLogicalChannel,
    OpenLogicalChannelAck, OpenLogicalChannelReject, OpenLogicalChannelRejectCause,
    RequestChannelClose, RequestChannelCloseAck, RequestChannelCloseReject,
    RequestChannelCloseRejectCause, RequestMessage, ResponseMessage, RoundTripDelayRequest,
    RoundTripDelayResponse, SequenceNumber, TerminalCapabilitySet, TerminalCapabilitySetAck,
    TerminalCapabilitySetReject, TerminalCapabilitySetRejectCause, TerminalCapabilitySetRelease,
    UserInputIndication, UserInputIndicationSignal,
};
use crate::h323::asn::rasn::aper;
use crate::h323::asn::rasn::types::{GeneralString, Ia5String};

pub use capabilities::{AudioCodec, Codec, H264Params, PeerCapabilities, UserInputKinds};
pub use channels::{ChannelInfo, Direction, MediaAddresses, MediaKind};
pub use msd::Role;

use capabilities::{PeerTcs, TcsProblem};
use channels::{Outgoing, OutgoingState};
use msd::{Determination, MsdState};

/// At most this many messages wait in the transmit queue; more are dropped (and counted).
const MAX_TRANSMIT: usize = 256;
/// At most this many events wait; the oldest are dropped beyond.
const MAX_EVENTS: usize = 1024;
/// At most this many channels the peer may have open towards us.
const MAX_INCOMING_CHANNELS: usize = 16;
/// DTMF characters a `signal` UserInputIndication can carry.
const SIGNAL_KEYS: &str = "0123456789*#ABCD!";

/// Configuration of an H.245 session.
#[derive(Debug, Clone)]
pub struct H245Config {
    /// Our terminalType for MSD (60: gateway).
    pub terminal_type: u8,
    /// Audio codecs we receive and send, in preference order.
    pub audio_codecs: Vec<AudioCodec>,
    /// H.264 we receive and send, if any.
    pub h264: Option<H264Params>,
    /// Dynamic RTP payload type of our H.264 channels.
    pub h264_payload_type: u8,
    /// Where we receive audio RTP/RTCP (needed to accept the peer's audio channel).
    pub audio_addresses: Option<MediaAddresses>,
    /// Where we receive video RTP/RTCP (needed to accept the peer's video channel).
    pub video_addresses: Option<MediaAddresses>,
    /// T101: wait for TerminalCapabilitySetAck/Reject.
    pub t101: Duration,
    /// T103: wait for OpenLogicalChannelAck/Reject and CloseLogicalChannelAck.
    pub t103: Duration,
    /// T106: wait for MasterSlaveDeterminationAck/Reject.
    pub t106: Duration,
    /// Wait for RoundTripDelayResponse.
    pub round_trip_timeout: Duration,
    /// N100: MSD attempts before giving up on indeterminate results.
    pub n100: u32,
}

impl Default for H245Config {
    fn default() -> Self {
        H245Config {
            terminal_type: msd::TERMINAL_TYPE_GATEWAY,
            audio_codecs: vec![AudioCodec::G722, AudioCodec::Pcmu, AudioCodec::Pcma],
            h264: Some(H264Params::baseline_3_1(Some(20_480))),
            h264_payload_type: 96,
            audio_addresses: None,
            video_addresses: None,
            t101: Duration::from_secs(30),
            t103: Duration::from_secs(30),
            t106: Duration::from_secs(30),
            round_trip_timeout: Duration::from_secs(10),
            n100: 3,
        }
    }
}

/// A protocol timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Our TerminalCapabilitySet went unanswered.
    T101,
    /// Our OpenLogicalChannel (or CloseLogicalChannel) of this channel went unanswered.
    T103(u16),
    /// Our MasterSlaveDetermination(Ack) went unanswered.
    T106,
    /// Our RoundTripDelayRequest went unanswered.
    RoundTripDelay,
}

/// Why master/slave determination failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsdFailure {
    /// N100 attempts ended indeterminate (identical numbers).
    IdenticalNumbers,
    /// The peer's Ack contradicts our determination.
    Inconsistent,
    /// The peer released the procedure (MasterSlaveDeterminationRelease).
    Released,
}

/// What happened in the session.
#[derive(Debug, Clone, PartialEq)]
pub enum H245Event {
    /// The peer's (new) capabilities, acknowledged.
    PeerCapabilities(PeerCapabilities),
    /// The peer sent an empty TerminalCapabilitySet (pause / third-party re-routing): our
    /// outgoing channels are being closed; wait for a new non-empty set.
    PeerPaused,
    /// The peer rejected a TerminalCapabilitySet it sent us (bad table).
    PeerCapabilitiesRejected,
    /// The peer acknowledged our TerminalCapabilitySet.
    CapabilitiesAcknowledged,
    /// The peer rejected our TerminalCapabilitySet.
    CapabilitiesRejected,
    /// Master/slave determination is done: our role.
    MasterSlave(Role),
    /// Master/slave determination failed.
    MasterSlaveFailed(MsdFailure),
    /// Capabilities were exchanged both ways and MSD is done: channels can be opened.
    Ready,
    /// A logical channel is open (ours acknowledged, or the peer's accepted).
    ChannelOpened(ChannelInfo),
    /// The peer rejected our channel.
    ChannelRejected {
        /// Channel number.
        number: u16,
        /// What the channel carried.
        kind: MediaKind,
        /// The peer's cause.
        cause: OpenLogicalChannelRejectCause,
    },
    /// We rejected the peer's channel.
    IncomingChannelRejected {
        /// Channel number.
        number: u16,
        /// Our cause.
        cause: OpenLogicalChannelRejectCause,
    },
    /// A logical channel is closed.
    ChannelClosed {
        /// Channel number.
        number: u16,
        /// Direction.
        direction: Direction,
    },
    /// The peer refused to close one of its channels we asked it to close.
    ChannelCloseRejected {
        /// Channel number.
        number: u16,
    },
    /// A DTMF key (or other user input character) from the peer.
    UserInput {
        /// The character.
        key: char,
        /// Duration in milliseconds, if signalled.
        duration: Option<u16>,
    },
    /// The peer asks for an intra picture on our channel `number`.
    VideoFastUpdate {
        /// The channel (ours, outgoing) the peer receives.
        number: u16,
    },
    /// The peer caps the bit rate (`None` channel: whole multiplex; `None` rate: no limit).
    FlowControl {
        /// Channel, when the scope is one.
        number: Option<u16>,
        /// Maximum bit rate in units of 100 bit/s.
        max_bit_rate: Option<u32>,
    },
    /// Round-trip delay measured by our RoundTripDelayRequest.
    RoundTripDelay(Duration),
    /// A timer expired (the procedure it guarded is abandoned).
    Timeout(Timer),
    /// EndSessionCommand was sent or received: the session is over.
    SessionEnded {
        /// Whether the peer ended it.
        by_peer: bool,
    },
    /// Bytes from the peer did not decode as a MultimediaSystemControlMessage.
    DecodeError(String),
    /// A message was ignored (unsupported, late, duplicate, or after the end).
    Ignored {
        /// What it was.
        what: &'static str,
        /// How many messages this session has ignored so far.
        count: u64,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H245Error {
    /// The session has ended.
    Ended,
    /// Capabilities not exchanged both ways, or MSD not done, or the peer paused.
    NotReady,
    /// No codec of ours is in the peer's capabilities.
    NoCommonCodec,
    /// We already have an outgoing channel of this kind.
    AlreadyOpen,
    /// No such channel.
    UnknownChannel,
    /// The character cannot be sent as user input.
    InvalidKey,
}

/// State of our TerminalCapabilitySet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutTcs {
    Idle,
    Awaiting { sequence: u8, deadline: Instant },
    Acked,
    Failed,
}

/// One H.245 control session (one per call).
pub struct H245 {
    config: H245Config,
    sdn_source: Box<dyn FnMut() -> u32 + Send>,
    transmit: VecDeque<MultimediaSystemControlMessage>,
    events: VecDeque<H245Event>,
    ignored: u64,
    ended: bool,
    ready: bool,
    // Capability exchange.
    tcs_sequence: u8,
    out_tcs: OutTcs,
    peer_caps: Option<PeerCapabilities>,
    peer_paused: bool,
    // Master/slave determination.
    msd: MsdState,
    local_sdn: Option<u32>,
    msd_attempts: u32,
    t106: Option<Instant>,
    // Logical channels.
    outgoing: BTreeMap<u16, Outgoing>,
    incoming: BTreeMap<u16, ChannelInfo>,
    next_channel: u16,
    // Round-trip delay.
    rtd_sequence: u8,
    rtd_pending: Option<(u8, Instant)>,
}

impl std::fmt::Debug for H245 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H245")
            .field("out_tcs", &self.out_tcs)
            .field("msd", &self.msd)
            .field("outgoing", &self.outgoing.len())
            .field("incoming", &self.incoming.len())
            .field("ended", &self.ended)
            .finish()
    }
}

impl H245 {
    /// A session; `sdn_source` gives the random statusDeterminationNumbers of MSD (only its
    /// low 24 bits are used), e.g. `rand::random::<u32>`.
    pub fn new(config: H245Config, sdn_source: impl FnMut() -> u32 + Send + 'static) -> Self {
        H245 {
            config,
            sdn_source: Box::new(sdn_source),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            ignored: 0,
            ended: false,
            ready: false,
            tcs_sequence: 0,
            out_tcs: OutTcs::Idle,
            peer_caps: None,
            peer_paused: false,
            msd: MsdState::Idle,
            local_sdn: None,
            msd_attempts: 0,
            t106: None,
            outgoing: BTreeMap::new(),
            incoming: BTreeMap::new(),
            next_channel: 1,
            rtd_sequence: 0,
            rtd_pending: None,
        }
    }

    /// A session whose statusDeterminationNumbers come from a small PRNG seeded with `seed`.
    pub fn with_seed(config: H245Config, seed: u64) -> Self {
        let mut state = seed;
        H245::new(config, move || {
            // splitmix64
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u32
        })
    }

    /// Sends our TerminalCapabilitySet and MasterSlaveDetermination.
    pub fn start(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        self.send_tcs(now);
        if !matches!(self.msd, MsdState::Done(_)) {
            self.send_msd(now);
        }
    }

    /// Sets where we receive a media kind (used to accept the peer's channels).
    pub fn set_media_addresses(&mut self, kind: MediaKind, addresses: MediaAddresses) {
        match kind {
            MediaKind::Audio => self.config.audio_addresses = Some(addresses),
            MediaKind::Video => self.config.video_addresses = Some(addresses),
        }
    }

    /// The peer's capabilities, once received (and not paused).
    pub fn peer_capabilities(&self) -> Option<&PeerCapabilities> {
        self.peer_caps.as_ref().filter(|_| !self.peer_paused)
    }

    /// Our role, once MSD is done.
    pub fn role(&self) -> Option<Role> {
        match self.msd {
            MsdState::Done(r) => Some(r),
            _ => None,
        }
    }

    /// Whether capabilities were exchanged both ways and MSD is done.
    pub fn is_ready(&self) -> bool {
        !self.ended
            && self.out_tcs == OutTcs::Acked
            && self.peer_capabilities().is_some()
            && self.role().is_some()
    }

    /// Whether EndSessionCommand was sent or received.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Open channels (and ours awaiting an answer), outgoing then incoming.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.outgoing
            .values()
            .map(|o| o.info.clone())
            .chain(self.incoming.values().cloned())
            .collect()
    }

    /// Opens our outgoing channel of `kind` with the first codec of our preference order the
    /// peer can receive; returns its channel number.
    pub fn open_channel(&mut self, now: Instant, kind: MediaKind) -> Result<u16, H245Error> {
        if self.ended {
            return Err(H245Error::Ended);
        }
        if !self.is_ready() {
            return Err(H245Error::NotReady);
        }
        if self.outgoing.values().any(|o| {
            o.info.session_id == kind.session_id()
                && !matches!(o.state, OutgoingState::AwaitingCloseAck(_))
        }) {
            return Err(H245Error::AlreadyOpen);
        }
        let peer = self.peer_capabilities().ok_or(H245Error::NotReady)?;
        let codec = match kind {
            MediaKind::Audio => self
                .config
                .audio_codecs
                .iter()
                .find_map(|c| {
                    peer.audio_frames(*c).map(|f| Codec::Audio {
                        codec: *c,
                        frames: f.min(20),
                    })
                })
                .ok_or(H245Error::NoCommonCodec)?,
            MediaKind::Video => match (&self.config.h264, &peer.h264) {
                (Some(ours), Some(theirs))
                    if theirs.profile & capabilities::H264_PROFILE_BASELINE != 0 =>
                {
                    Codec::H264(H264Params {
                        profile: capabilities::H264_PROFILE_BASELINE,
                        level: ours.level.min(theirs.level),
                        max_bit_rate: match (ours.max_bit_rate, theirs.max_bit_rate) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        },
                    })
                }
                _ => return Err(H245Error::NoCommonCodec),
            },
        };
        let number = self.allocate_channel_number();
        let payload_type = matches!(codec, Codec::H264(_)).then_some(self.config.h264_payload_type);
        let rtcp = self.addresses(kind).map(|a| a.rtcp);
        let olc = channels::build_olc(number, &codec, kind.session_id(), rtcp, payload_type);
        self.send(MultimediaSystemControlMessage::request(
            RequestMessage::openLogicalChannel(olc),
        ));
        self.outgoing.insert(
            number,
            Outgoing {
                info: ChannelInfo {
                    number,
                    direction: Direction::Outgoing,
                    session_id: kind.session_id(),
                    codec,
                    payload_type,
                    remote_rtp: None,
                    remote_rtcp: None,
                },
                state: OutgoingState::AwaitingAck(now + self.config.t103),
            },
        );
        Ok(number)
    }

    /// Closes channel `number` of `direction` (the two directions number their channels
    /// independently): ours with CloseLogicalChannel, the peer's with RequestChannelClose.
    pub fn close_channel(
        &mut self,
        now: Instant,
        direction: Direction,
        number: u16,
    ) -> Result<(), H245Error> {
        if self.ended {
            return Err(H245Error::Ended);
        }
        match direction {
            Direction::Outgoing if self.outgoing.contains_key(&number) => {
                self.close_outgoing(now, number, CloseLogicalChannelSource::user(()));
                Ok(())
            }
            Direction::Incoming if self.incoming.contains_key(&number) => {
                self.send(MultimediaSystemControlMessage::request(
                    RequestMessage::requestChannelClose(RequestChannelClose::new(
                        LogicalChannelNumber(number),
                        None,
                        None,
                    )),
                ));
                Ok(())
            }
            _ => Err(H245Error::UnknownChannel),
        }
    }

    /// Sends a user input character (DTMF): as `signal` (with `duration` in ms) when the peer
    /// declared `dtmf`, else as `alphanumeric`.
    pub fn send_user_input(
        &mut self,
        _now: Instant,
        key: char,
        duration: Option<u16>,
    ) -> Result<(), H245Error> {
        if self.ended {
            return Err(H245Error::Ended);
        }
        let key = key.to_ascii_uppercase();
        if !key.is_ascii_graphic() {
            return Err(H245Error::InvalidKey);
        }
        let dtmf = self.peer_caps.as_ref().is_some_and(|c| c.user_input.dtmf);
        let mut buf = [0u8; 4];
        let bytes = key.encode_utf8(&mut buf).as_bytes();
        let uii = if dtmf && SIGNAL_KEYS.contains(key) {
            let signal_type =
                Ia5String::from_iso646_bytes(bytes).map_err(|_| H245Error::InvalidKey)?;
            UserInputIndication::signal(UserInputIndicationSignal::new(
                signal_type,
                duration.filter(|d| *d > 0),
                None,
                None,
                None,
                None,
                None,
            ))
        } else {
            UserInputIndication::alphanumeric(
                GeneralString::from_bytes(bytes).map_err(|_| H245Error::InvalidKey)?,
            )
        };
        self.send(MultimediaSystemControlMessage::indication(
            IndicationMessage::userInput(uii),
        ));
        Ok(())
    }

    /// Asks the peer for an intra picture on its channel `number` (one we receive).
    pub fn send_video_fast_update(&mut self, _now: Instant, number: u16) -> Result<(), H245Error> {
        if self.ended {
            return Err(H245Error::Ended);
        }
        if !self.incoming.contains_key(&number) {
            return Err(H245Error::UnknownChannel);
        }
        self.send(MultimediaSystemControlMessage::command(
            CommandMessage::miscellaneousCommand(MiscellaneousCommand::new(
                LogicalChannelNumber(number),
                MiscellaneousCommandType::videoFastUpdatePicture(()),
                None,
            )),
        ));
        Ok(())
    }

    /// Caps the bit rate of the peer's channel `number` (one we receive) at `max_bit_rate`
    /// units of 100 bit/s, or lifts the cap (`None`): FlowControlCommand.
    pub fn send_flow_control(
        &mut self,
        _now: Instant,
        number: u16,
        max_bit_rate: Option<u32>,
    ) -> Result<(), H245Error> {
        if self.ended {
            return Err(H245Error::Ended);
        }
        if !self.incoming.contains_key(&number) {
            return Err(H245Error::UnknownChannel);
        }
        let restriction = match max_bit_rate {
            Some(b) => FlowControlCommandRestriction::maximumBitRate(b.min(16_777_215)),
            None => FlowControlCommandRestriction::noRestriction(()),
        };
        self.send(MultimediaSystemControlMessage::command(
            CommandMessage::flowControlCommand(FlowControlCommand::new(
                FlowControlCommandScope::logicalChannelNumber(LogicalChannelNumber(number)),
                restriction,
            )),
        ));
        Ok(())
    }

    /// Sends a RoundTripDelayRequest; the answer gives [`H245Event::RoundTripDelay`].
    pub fn send_round_trip_delay_request(&mut self, now: Instant) -> Result<(), H245Error> {
        if self.ended {
            return Err(H245Error::Ended);
        }
        self.rtd_sequence = self.rtd_sequence.wrapping_add(1);
        self.rtd_pending = Some((self.rtd_sequence, now));
        self.send(MultimediaSystemControlMessage::request(
            RequestMessage::roundTripDelayRequest(RoundTripDelayRequest::new(SequenceNumber(
                self.rtd_sequence,
            ))),
        ));
        Ok(())
    }

    /// Sends EndSessionCommand (disconnect): the session is over.
    pub fn end_session(&mut self, _now: Instant) {
        if self.ended {
            return;
        }
        self.send(MultimediaSystemControlMessage::command(
            CommandMessage::endSessionCommand(EndSessionCommand::disconnect(())),
        ));
        self.finish(false);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<MultimediaSystemControlMessage> {
        self.transmit.pop_front()
    }

    /// The next message to send, aligned-PER encoded.
    pub fn poll_transmit_bytes(&mut self) -> Option<Vec<u8>> {
        while let Some(msg) = self.transmit.pop_front() {
            match aper::encode(&msg) {
                Ok(bytes) => return Some(bytes),
                Err(_) => self.ignore("unencodable outgoing message"),
            }
        }
        None
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<H245Event> {
        self.events.pop_front()
    }

    /// The earliest timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let tcs = match self.out_tcs {
            OutTcs::Awaiting { deadline, .. } => Some(deadline),
            _ => None,
        };
        let channels = self.outgoing.values().filter_map(|o| match o.state {
            OutgoingState::AwaitingAck(d) | OutgoingState::AwaitingCloseAck(d) => Some(d),
            OutgoingState::Open => None,
        });
        let rtd = self
            .rtd_pending
            .map(|(_, sent)| sent + self.config.round_trip_timeout);
        [tcs, self.t106, rtd]
            .into_iter()
            .flatten()
            .chain(channels)
            .min()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if let OutTcs::Awaiting { deadline, .. } = self.out_tcs {
            if deadline <= now {
                self.out_tcs = OutTcs::Failed;
                self.send(MultimediaSystemControlMessage::indication(
                    IndicationMessage::terminalCapabilitySetRelease(
                        TerminalCapabilitySetRelease::new(None),
                    ),
                ));
                self.event(H245Event::Timeout(Timer::T101));
            }
        }
        if self.t106.is_some_and(|d| d <= now) {
            self.t106 = None;
            self.msd = MsdState::Idle;
            self.send(MultimediaSystemControlMessage::indication(
                IndicationMessage::masterSlaveDeterminationRelease(
                    MasterSlaveDeterminationRelease::new(),
                ),
            ));
            self.event(H245Event::Timeout(Timer::T106));
        }
        let expired: Vec<(u16, bool)> = self
            .outgoing
            .iter()
            .filter_map(|(n, o)| match o.state {
                OutgoingState::AwaitingAck(d) if d <= now => Some((*n, true)),
                OutgoingState::AwaitingCloseAck(d) if d <= now => Some((*n, false)),
                _ => None,
            })
            .collect();
        for (number, opening) in expired {
            self.outgoing.remove(&number);
            if opening {
                // H.245 §C.5: on T103 the opener closes the channel it asked for.
                self.send_clc(number, CloseLogicalChannelSource::lcse(()));
            }
            self.event(H245Event::Timeout(Timer::T103(number)));
            if !opening {
                self.event(H245Event::ChannelClosed {
                    number,
                    direction: Direction::Outgoing,
                });
            }
        }
        if let Some((_, sent)) = self.rtd_pending {
            if sent + self.config.round_trip_timeout <= now {
                self.rtd_pending = None;
                self.event(H245Event::Timeout(Timer::RoundTripDelay));
            }
        }
    }

    /// Handles aligned-PER bytes of one MultimediaSystemControlMessage from the peer.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        match aper::decode::<MultimediaSystemControlMessage>(bytes) {
            Ok(msg) => self.handle_message(now, msg),
            Err(e) => self.event(H245Event::DecodeError(e.to_string())),
        }
    }

    /// Handles one message from the peer.
    pub fn handle_message(&mut self, now: Instant, msg: MultimediaSystemControlMessage) {
        if self.ended {
            self.ignore("message after EndSessionCommand");
            return;
        }
        match msg {
            MultimediaSystemControlMessage::request(r) => self.on_request(now, r),
            MultimediaSystemControlMessage::response(r) => self.on_response(now, r),
            MultimediaSystemControlMessage::command(c) => self.on_command(now, c),
            MultimediaSystemControlMessage::indication(i) => self.on_indication(now, i),
            _ => self.ignore("unknown message"),
        }
    }

    fn on_request(&mut self, now: Instant, request: RequestMessage) {
        match request {
            RequestMessage::terminalCapabilitySet(tcs) => self.on_tcs(now, &tcs),
            RequestMessage::masterSlaveDetermination(m) => self.on_msd(now, &m),
            RequestMessage::openLogicalChannel(olc) => self.on_olc(&olc),
            RequestMessage::closeLogicalChannel(clc) => {
                let number = clc.forward_logical_channel_number.0;
                self.send(MultimediaSystemControlMessage::response(
                    ResponseMessage::closeLogicalChannelAck(CloseLogicalChannelAck::new(
                        LogicalChannelNumber(number),
                    )),
                ));
                if self.incoming.remove(&number).is_some() {
                    self.event(H245Event::ChannelClosed {
                        number,
                        direction: Direction::Incoming,
                    });
                }
            }
            RequestMessage::requestChannelClose(rcc) => {
                let number = rcc.forward_logical_channel_number.0;
                let lcn = LogicalChannelNumber(number);
                match self.outgoing.get(&number).map(|o| o.state.clone()) {
                    Some(state) => {
                        self.send(MultimediaSystemControlMessage::response(
                            ResponseMessage::requestChannelCloseAck(RequestChannelCloseAck::new(
                                lcn,
                            )),
                        ));
                        if !matches!(state, OutgoingState::AwaitingCloseAck(_)) {
                            self.close_outgoing(now, number, CloseLogicalChannelSource::user(()));
                        }
                    }
                    None => self.send(MultimediaSystemControlMessage::response(
                        ResponseMessage::requestChannelCloseReject(RequestChannelCloseReject::new(
                            lcn,
                            RequestChannelCloseRejectCause::unspecified(()),
                        )),
                    )),
                }
            }
            RequestMessage::roundTripDelayRequest(r) => {
                self.send(MultimediaSystemControlMessage::response(
                    ResponseMessage::roundTripDelayResponse(RoundTripDelayResponse::new(
                        r.sequence_number,
                    )),
                ));
            }
            RequestMessage::nonStandard(_) => {
                self.send(MultimediaSystemControlMessage::indication(
                    IndicationMessage::functionNotUnderstood(FunctionNotUnderstood::request(
                        request,
                    )),
                ));
                self.ignore("non-standard request");
            }
            other => {
                let returned = aper::encode(&MultimediaSystemControlMessage::request(other))
                    .ok()
                    .map(Into::into);
                self.send(MultimediaSystemControlMessage::indication(
                    IndicationMessage::functionNotSupported(FunctionNotSupported::new(
                        FunctionNotSupportedCause::unknownFunction(()),
                        returned,
                    )),
                ));
                self.ignore("unsupported request");
            }
        }
    }

    fn on_response(&mut self, now: Instant, response: ResponseMessage) {
        match response {
            ResponseMessage::terminalCapabilitySetAck(ack) => match self.out_tcs {
                OutTcs::Awaiting { sequence, .. } if sequence == ack.sequence_number.0 => {
                    self.out_tcs = OutTcs::Acked;
                    self.event(H245Event::CapabilitiesAcknowledged);
                    self.check_ready();
                }
                _ => self.ignore("late or duplicate TerminalCapabilitySetAck"),
            },
            ResponseMessage::terminalCapabilitySetReject(rej) => match self.out_tcs {
                OutTcs::Awaiting { sequence, .. } if sequence == rej.sequence_number.0 => {
                    self.out_tcs = OutTcs::Failed;
                    self.event(H245Event::CapabilitiesRejected);
                }
                _ => self.ignore("late or duplicate TerminalCapabilitySetReject"),
            },
            ResponseMessage::masterSlaveDeterminationAck(ack) => {
                let decision = match ack.decision {
                    MasterSlaveDeterminationAckDecision::master(()) => Role::Master,
                    MasterSlaveDeterminationAckDecision::slave(()) => Role::Slave,
                };
                self.on_msd_ack(decision);
            }
            ResponseMessage::masterSlaveDeterminationReject(_) => self.on_msd_reject(now),
            ResponseMessage::openLogicalChannelAck(ack) => self.on_olc_ack(&ack),
            ResponseMessage::openLogicalChannelReject(rej) => {
                let number = rej.forward_logical_channel_number.0;
                match self.outgoing.get(&number) {
                    Some(o) if matches!(o.state, OutgoingState::AwaitingAck(_)) => {
                        let kind = o.info.codec.media_kind();
                        self.outgoing.remove(&number);
                        self.event(H245Event::ChannelRejected {
                            number,
                            kind,
                            cause: rej.cause,
                        });
                    }
                    _ => self.ignore("late OpenLogicalChannelReject"),
                }
            }
            ResponseMessage::closeLogicalChannelAck(ack) => {
                let number = ack.forward_logical_channel_number.0;
                match self.outgoing.get(&number) {
                    Some(o) if matches!(o.state, OutgoingState::AwaitingCloseAck(_)) => {
                        self.outgoing.remove(&number);
                        self.event(H245Event::ChannelClosed {
                            number,
                            direction: Direction::Outgoing,
                        });
                    }
                    _ => self.ignore("late CloseLogicalChannelAck"),
                }
            }
            ResponseMessage::requestChannelCloseAck(_) => {
                // The peer closes the channel with CloseLogicalChannel next.
            }
            ResponseMessage::requestChannelCloseReject(rej) => {
                self.event(H245Event::ChannelCloseRejected {
                    number: rej.forward_logical_channel_number.0,
                });
            }
            ResponseMessage::roundTripDelayResponse(r) => match self.rtd_pending {
                Some((seq, sent)) if seq == r.sequence_number.0 => {
                    self.rtd_pending = None;
                    self.event(H245Event::RoundTripDelay(
                        now.saturating_duration_since(sent),
                    ));
                }
                _ => self.ignore("late RoundTripDelayResponse"),
            },
            _ => self.ignore("unsupported response"),
        }
    }

    fn on_command(&mut self, now: Instant, command: CommandMessage) {
        match command {
            CommandMessage::endSessionCommand(_) => {
                // H.245 §8.8: answer with our own EndSessionCommand.
                self.send(MultimediaSystemControlMessage::command(
                    CommandMessage::endSessionCommand(EndSessionCommand::disconnect(())),
                ));
                self.finish(true);
            }
            CommandMessage::miscellaneousCommand(m) => match m.r_type {
                MiscellaneousCommandType::videoFastUpdatePicture(()) => {
                    self.event(H245Event::VideoFastUpdate {
                        number: m.logical_channel_number.0,
                    })
                }
                _ => self.ignore("unsupported miscellaneousCommand"),
            },
            CommandMessage::flowControlCommand(f) => {
                let number = match f.scope {
                    FlowControlCommandScope::logicalChannelNumber(n) => Some(n.0),
                    _ => None,
                };
                let max_bit_rate = match f.restriction {
                    FlowControlCommandRestriction::maximumBitRate(b) => Some(b),
                    FlowControlCommandRestriction::noRestriction(()) => None,
                };
                self.event(H245Event::FlowControl {
                    number,
                    max_bit_rate,
                });
            }
            CommandMessage::sendTerminalCapabilitySet(_) => self.send_tcs(now),
            _ => self.ignore("unsupported command"),
        }
    }

    fn on_indication(&mut self, _now: Instant, indication: IndicationMessage) {
        match indication {
            IndicationMessage::userInput(UserInputIndication::alphanumeric(s)) => {
                let mut any = false;
                for b in s.as_bytes().iter().filter(|b| b.is_ascii_graphic()) {
                    any = true;
                    self.event(H245Event::UserInput {
                        key: char::from(*b),
                        duration: None,
                    });
                }
                if !any {
                    // GnuGk uses empty UIIs as keep-alives.
                    self.ignore("empty UserInputIndication");
                }
            }
            IndicationMessage::userInput(UserInputIndication::signal(s)) => {
                match s.signal_type.as_iso646_bytes().first() {
                    Some(b) if b.is_ascii_graphic() => self.event(H245Event::UserInput {
                        key: char::from(*b),
                        duration: s.duration,
                    }),
                    _ => self.ignore("empty UserInputIndication signal"),
                }
            }
            IndicationMessage::masterSlaveDeterminationRelease(_) => {
                if matches!(
                    self.msd,
                    MsdState::OutgoingAwaitingResponse | MsdState::IncomingAwaitingResponse(_)
                ) {
                    self.msd = MsdState::Idle;
                    self.t106 = None;
                    self.event(H245Event::MasterSlaveFailed(MsdFailure::Released));
                } else {
                    self.ignore("MasterSlaveDeterminationRelease");
                }
            }
            IndicationMessage::userInput(_) => self.ignore("unsupported UserInputIndication"),
            _ => self.ignore("unsupported indication"),
        }
    }

    // --- Capability exchange -------------------------------------------------------------

    fn send_tcs(&mut self, now: Instant) {
        self.tcs_sequence = self.tcs_sequence.wrapping_add(1);
        let tcs = capabilities::local_tcs(
            self.tcs_sequence,
            &self.config.audio_codecs,
            self.config.h264.as_ref(),
        );
        self.send(MultimediaSystemControlMessage::request(
            RequestMessage::terminalCapabilitySet(tcs),
        ));
        self.out_tcs = OutTcs::Awaiting {
            sequence: self.tcs_sequence,
            deadline: now + self.config.t101,
        };
    }

    fn on_tcs(&mut self, now: Instant, tcs: &TerminalCapabilitySet) {
        let sequence = tcs.sequence_number.clone();
        match capabilities::parse_peer_tcs(tcs) {
            Err(TcsProblem::UndefinedTableEntryUsed) => {
                self.send(MultimediaSystemControlMessage::response(
                    ResponseMessage::terminalCapabilitySetReject(TerminalCapabilitySetReject::new(
                        sequence,
                        TerminalCapabilitySetRejectCause::undefinedTableEntryUsed(()),
                        None,
                    )),
                ));
                self.event(H245Event::PeerCapabilitiesRejected);
            }
            Ok(PeerTcs::Empty) => {
                self.send_tcs_ack(sequence);
                self.peer_paused = true;
                let ours: Vec<u16> = self
                    .outgoing
                    .iter()
                    .filter(|(_, o)| !matches!(o.state, OutgoingState::AwaitingCloseAck(_)))
                    .map(|(n, _)| *n)
                    .collect();
                for number in ours {
                    self.close_outgoing(now, number, CloseLogicalChannelSource::lcse(()));
                }
                self.event(H245Event::PeerPaused);
            }
            Ok(PeerTcs::Capabilities(caps)) => {
                self.send_tcs_ack(sequence);
                self.peer_paused = false;
                // Close our channels whose format the peer no longer takes.
                let dropped: Vec<u16> = self
                    .outgoing
                    .iter()
                    .filter(|(_, o)| !matches!(o.state, OutgoingState::AwaitingCloseAck(_)))
                    .filter(|(_, o)| match o.info.codec {
                        Codec::Audio { codec, .. } => caps.audio_frames(codec).is_none(),
                        Codec::H264(_) => caps.h264.is_none(),
                    })
                    .map(|(n, _)| *n)
                    .collect();
                for number in dropped {
                    self.close_outgoing(now, number, CloseLogicalChannelSource::lcse(()));
                }
                self.peer_caps = Some(caps.clone());
                self.event(H245Event::PeerCapabilities(caps));
                self.check_ready();
            }
        }
    }

    fn send_tcs_ack(&mut self, sequence: SequenceNumber) {
        self.send(MultimediaSystemControlMessage::response(
            ResponseMessage::terminalCapabilitySetAck(TerminalCapabilitySetAck::new(
                sequence, None,
            )),
        ));
    }

    // --- Master/slave determination ------------------------------------------------------

    fn new_sdn(&mut self) -> u32 {
        let sdn = (self.sdn_source)() & 0x00FF_FFFF;
        self.local_sdn = Some(sdn);
        sdn
    }

    fn send_msd(&mut self, now: Instant) {
        let sdn = self.new_sdn();
        self.send(MultimediaSystemControlMessage::request(
            RequestMessage::masterSlaveDetermination(MasterSlaveDetermination::new(
                self.config.terminal_type,
                sdn,
            )),
        ));
        self.msd = MsdState::OutgoingAwaitingResponse;
        self.t106 = Some(now + self.config.t106);
    }

    fn send_msd_ack(&mut self, peer_role: Role) {
        let decision = match peer_role {
            Role::Master => MasterSlaveDeterminationAckDecision::master(()),
            Role::Slave => MasterSlaveDeterminationAckDecision::slave(()),
        };
        self.send(MultimediaSystemControlMessage::response(
            ResponseMessage::masterSlaveDeterminationAck(MasterSlaveDeterminationAck::new(
                decision,
            )),
        ));
    }

    fn on_msd(&mut self, now: Instant, m: &MasterSlaveDetermination) {
        let outgoing = self.msd == MsdState::OutgoingAwaitingResponse;
        let local = match self.local_sdn {
            Some(sdn) => sdn,
            None => self.new_sdn(),
        };
        let remote_sdn = m.status_determination_number & 0x00FF_FFFF;
        match msd::determine(
            self.config.terminal_type,
            local,
            m.terminal_type,
            remote_sdn,
        ) {
            Determination::Decided(role) => {
                self.send_msd_ack(role.opposite());
                self.msd = MsdState::IncomingAwaitingResponse(role);
                self.t106 = Some(now + self.config.t106);
            }
            Determination::Indeterminate if outgoing => {
                self.msd_attempts += 1;
                if self.msd_attempts >= self.config.n100 {
                    self.msd_failed(MsdFailure::IdenticalNumbers);
                } else {
                    self.send_msd(now);
                }
            }
            Determination::Indeterminate => {
                self.send(MultimediaSystemControlMessage::response(
                    ResponseMessage::masterSlaveDeterminationReject(
                        MasterSlaveDeterminationReject::new(
                            MasterSlaveDeterminationRejectCause::identicalNumbers(()),
                        ),
                    ),
                ));
                // A new number for the peer's next attempt.
                self.new_sdn();
            }
        }
    }

    fn on_msd_ack(&mut self, decision: Role) {
        match self.msd {
            MsdState::OutgoingAwaitingResponse => {
                self.send_msd_ack(decision.opposite());
                self.msd_done(decision);
            }
            MsdState::IncomingAwaitingResponse(role) if role == decision => self.msd_done(role),
            MsdState::IncomingAwaitingResponse(_) => self.msd_failed(MsdFailure::Inconsistent),
            _ => self.ignore("late or duplicate MasterSlaveDeterminationAck"),
        }
    }

    fn on_msd_reject(&mut self, now: Instant) {
        match self.msd {
            MsdState::OutgoingAwaitingResponse | MsdState::IncomingAwaitingResponse(_) => {
                self.msd_attempts += 1;
                if self.msd_attempts >= self.config.n100 {
                    self.msd_failed(MsdFailure::IdenticalNumbers);
                } else {
                    self.send_msd(now);
                }
            }
            _ => self.ignore("late MasterSlaveDeterminationReject"),
        }
    }

    fn msd_done(&mut self, role: Role) {
        self.msd = MsdState::Done(role);
        self.t106 = None;
        self.msd_attempts = 0;
        self.event(H245Event::MasterSlave(role));
        self.check_ready();
    }

    fn msd_failed(&mut self, failure: MsdFailure) {
        self.msd = MsdState::Idle;
        self.t106 = None;
        self.msd_attempts = 0;
        self.event(H245Event::MasterSlaveFailed(failure));
    }

    fn check_ready(&mut self) {
        if !self.ready && self.is_ready() {
            self.ready = true;
            self.event(H245Event::Ready);
        }
    }

    // --- Logical channels ----------------------------------------------------------------

    fn addresses(&self, kind: MediaKind) -> Option<MediaAddresses> {
        match kind {
            MediaKind::Audio => self.config.audio_addresses,
            MediaKind::Video => self.config.video_addresses,
        }
    }

    fn allocate_channel_number(&mut self) -> u16 {
        loop {
            let n = self.next_channel;
            self.next_channel = n.checked_add(1).unwrap_or(1);
            if !self.outgoing.contains_key(&n) {
                return n;
            }
        }
    }

    fn send_clc(&mut self, number: u16, source: CloseLogicalChannelSource) {
        self.send(MultimediaSystemControlMessage::request(
            RequestMessage::closeLogicalChannel(CloseLogicalChannel::new(
                LogicalChannelNumber(number),
                source,
                None,
            )),
        ));
    }

    fn close_outgoing(&mut self, now: Instant, number: u16, source: CloseLogicalChannelSource) {
        let deadline = now + self.config.t103;
        if let Some(o) = self.outgoing.get_mut(&number) {
            o.state = OutgoingState::AwaitingCloseAck(deadline);
            self.send_clc(number, source);
        }
    }

    fn reject_olc(&mut self, number: u16, cause: OpenLogicalChannelRejectCause) {
        self.send(MultimediaSystemControlMessage::response(
            ResponseMessage::openLogicalChannelReject(OpenLogicalChannelReject::new(
                LogicalChannelNumber(number),
                cause.clone(),
                None,
            )),
        ));
        self.event(H245Event::IncomingChannelRejected { number, cause });
    }

    fn on_olc(&mut self, olc: &OpenLogicalChannel) {
        let number = olc.forward_logical_channel_number.0;
        if olc.reverse_logical_channel_parameters.is_some() {
            return self.reject_olc(
                number,
                OpenLogicalChannelRejectCause::unsuitableReverseParameters(()),
            );
        }
        let codec =
            capabilities::data_type_codec(&olc.forward_logical_channel_parameters.data_type);
        let supported = match codec {
            Some(Codec::Audio { codec, .. }) => self.config.audio_codecs.contains(&codec),
            Some(Codec::H264(_)) => self.config.h264.is_some(),
            None => false,
        };
        let (Some(codec), true) = (codec, supported) else {
            return self.reject_olc(
                number,
                OpenLogicalChannelRejectCause::dataTypeNotSupported(()),
            );
        };
        let Some(params) = channels::h2250_params(olc) else {
            return self.reject_olc(number, OpenLogicalChannelRejectCause::unspecified(()));
        };
        let kind = match codec {
            Codec::Audio { .. } => MediaKind::Audio,
            Codec::H264(_) => MediaKind::Video,
        };
        let Some(ours) = self.addresses(kind) else {
            return self.reject_olc(
                number,
                OpenLogicalChannelRejectCause::dataTypeNotAvailable(()),
            );
        };
        // The master assigns the session of a slave's sessionID 0; 1 and 2 are fixed.
        let session_id = match params.session_id {
            0 => kind.session_id(),
            s => s,
        };
        let info = ChannelInfo {
            number,
            direction: Direction::Incoming,
            session_id,
            codec,
            payload_type: params.dynamic_rtppayload_type,
            remote_rtp: None,
            remote_rtcp: params
                .media_control_channel
                .as_ref()
                .and_then(channels::socket_address),
        };
        let duplicate = self.incoming.get(&number) == Some(&info);
        if !duplicate
            && !self.incoming.contains_key(&number)
            && self.incoming.len() >= MAX_INCOMING_CHANNELS
        {
            return self.reject_olc(number, OpenLogicalChannelRejectCause::unspecified(()));
        }
        let ack = channels::build_olc_ack(number, session_id, &ours, info.payload_type);
        self.send(MultimediaSystemControlMessage::response(
            ResponseMessage::openLogicalChannelAck(ack),
        ));
        if duplicate {
            self.ignore("duplicate OpenLogicalChannel");
            return;
        }
        if self.incoming.insert(number, info.clone()).is_some() {
            self.event(H245Event::ChannelClosed {
                number,
                direction: Direction::Incoming,
            });
        }
        self.event(H245Event::ChannelOpened(info));
    }

    fn on_olc_ack(&mut self, ack: &OpenLogicalChannelAck) {
        let number = ack.forward_logical_channel_number.0;
        let (rtp, rtcp, session) = channels::ack_addresses(ack);
        match self.outgoing.get_mut(&number) {
            Some(o) if matches!(o.state, OutgoingState::AwaitingAck(_)) => {
                o.state = OutgoingState::Open;
                o.info.remote_rtp = rtp;
                o.info.remote_rtcp = rtcp;
                if let Some(s) = session.filter(|s| *s > 3) {
                    o.info.session_id = s;
                }
                let info = o.info.clone();
                self.event(H245Event::ChannelOpened(info));
            }
            _ => self.ignore("late or duplicate OpenLogicalChannelAck"),
        }
    }

    // --- Session end and plumbing ------------------------------------------------------

    fn finish(&mut self, by_peer: bool) {
        self.ended = true;
        self.t106 = None;
        self.rtd_pending = None;
        self.out_tcs = OutTcs::Idle;
        let outgoing = std::mem::take(&mut self.outgoing);
        let incoming = std::mem::take(&mut self.incoming);
        for number in outgoing.keys() {
            self.event(H245Event::ChannelClosed {
                number: *number,
                direction: Direction::Outgoing,
            });
        }
        for number in incoming.keys() {
            self.event(H245Event::ChannelClosed {
                number: *number,
                direction: Direction::Incoming,
            });
        }
        self.event(H245Event::SessionEnded { by_peer });
    }

    fn send(&mut self, msg: MultimediaSystemControlMessage) {
        if self.transmit.len() >= MAX_TRANSMIT {
            self.ignore("transmit queue full");
            return;
        }
        self.transmit.push_back(msg);
    }

    fn event(&mut self, event: H245Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn ignore(&mut self, what: &'static str) {
        self.ignored += 1;
        let count = self.ignored;
        self.event(H245Event::Ignored { what, count });
    }
}

#[cfg(test)]
mod tests;
