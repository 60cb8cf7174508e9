//! [`Call`]: the Q.931/H.225.0 call state machine of one call-signalling connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::cause;
use super::faststart::{self, Channel, Direction, Proposal};
use super::uuie::{self, Alias, Guid, Vendor};
use crate::h323::asn::h323_messages as h225;
use crate::h323::asn::h323_messages::H323UUPDUH323MessageBody as Body;
use crate::h323::asn::rasn;
use crate::h323::asn::rasn::types::OctetString;
use crate::h323::q931::{self, ie, Message, MessageType};
use crate::h323::tpkt::{self, TpktReader};

/// Which end of the call we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent the Setup.
    Caller,
    /// We received the Setup.
    Callee,
}

/// Q.931 call states (the value is the Call State IE's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// U0: no call yet (callee waiting for a Setup).
    Null,
    /// U1: Setup sent.
    CallInitiated,
    /// U3: CallProceeding received.
    OutgoingCallProceeding,
    /// U4: Alerting received.
    CallDelivered,
    /// U6: Setup received, not answered.
    CallPresent,
    /// U7: Alerting sent.
    CallReceived,
    /// U9: CallProceeding sent.
    IncomingCallProceeding,
    /// U10: connected.
    Active,
    /// ReleaseComplete sent or received: write what is left and close.
    Released,
}

impl State {
    /// The Call State IE value.
    pub fn code(self) -> u8 {
        match self {
            State::Null | State::Released => 0,
            State::CallInitiated => 1,
            State::OutgoingCallProceeding => 3,
            State::CallDelivered => 4,
            State::CallPresent => 6,
            State::CallReceived => 7,
            State::IncomingCallProceeding => 9,
            State::Active => 10,
        }
    }
}

/// Settings of a call instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our vendor identification.
    pub vendor: Vendor,
    /// Whether we tunnel H.245 (on only if the peer also says so).
    pub h245_tunnelling: bool,
    /// Caller: Setup → first response (T303).
    pub t303: Duration,
    /// Caller: CallProceeding/Alerting → Connect.
    pub t310: Duration,
    /// Callee: the application's first answer is late, send CallProceeding ourselves.
    pub auto_proceeding: Duration,
    /// Callee: Setup → Connect, then release with "no answer".
    pub answer_timeout: Duration,
    /// The largest TPKT accepted.
    pub max_pdu: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            vendor: Vendor::jonction(),
            h245_tunnelling: true,
            t303: Duration::from_secs(4),
            t310: Duration::from_secs(180),
            auto_proceeding: Duration::from_secs(2),
            answer_timeout: Duration::from_secs(180),
            max_pdu: 16 * 1024,
        }
    }
}

/// What a caller puts in its Setup.
#[derive(Debug, Clone, Default)]
pub struct DialParams {
    /// The call reference value (1..=32767).
    pub call_reference: u16,
    /// `conferenceID`.
    pub conference_id: Guid,
    /// `callIdentifier`.
    pub call_identifier: Guid,
    /// `destinationAddress`.
    pub destination: Vec<Alias>,
    /// The Q.931 Called Party Number.
    pub called_number: Option<String>,
    /// `sourceAddress`.
    pub source: Vec<Alias>,
    /// The Q.931 Calling Party Number.
    pub calling_number: Option<String>,
    /// The Q.931 Display IE.
    pub display: Option<String>,
    /// `destCallSignalAddress` (always send it: Polycom m100 crashes without).
    pub dest_call_signal_address: Option<SocketAddr>,
    /// `sourceCallSignalAddress`.
    pub source_call_signal_address: Option<SocketAddr>,
    /// Fast-start proposals (empty: slow start).
    pub fast_start: Vec<Proposal>,
    /// Our H.245 listener, for a separate H.245 connection.
    pub h245_address: Option<SocketAddr>,
}

/// A Setup received.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    /// The Q.931 call reference value.
    pub call_reference: u16,
    /// The H.225.0 version of the caller (last arc of `protocolIdentifier`).
    pub protocol_version: Option<u32>,
    /// `conferenceID`.
    pub conference_id: Guid,
    /// `callIdentifier` (absent from v1 Setups).
    pub call_identifier: Option<Guid>,
    /// `destinationAddress`.
    pub called: Vec<Alias>,
    /// The Q.931 Called Party Number.
    pub called_number: Option<String>,
    /// `sourceAddress`.
    pub caller: Vec<Alias>,
    /// The Q.931 Calling Party Number.
    pub calling_number: Option<String>,
    /// The Q.931 Display IE, else the UUIE's `displayName`.
    pub display: Option<String>,
    /// `sourceInfo`'s vendor.
    pub vendor: Option<Vendor>,
    /// `destCallSignalAddress`.
    pub dest_call_signal_address: Option<SocketAddr>,
    /// `sourceCallSignalAddress`.
    pub source_call_signal_address: Option<SocketAddr>,
    /// Fast-start proposals, in the caller's order.
    pub fast_start: Vec<Channel>,
    /// Fast-start entries that could not be parsed.
    pub fast_start_unusable: usize,
    /// `mediaWaitForConnect`.
    pub media_wait_for_connect: bool,
    /// The caller tunnels H.245.
    pub h245_tunnelling: bool,
    /// The caller's H.245 listener (separate H.245).
    pub h245_address: Option<SocketAddr>,
    /// `parallelH245Control`: H.245 PDUs sent in parallel with fast start.
    pub parallel_h245: Vec<Vec<u8>>,
}

/// What the callee said in CallProceeding, Alerting, Progress or Connect.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// The fast-start channels it accepted (in this message; see also [`Event::FastStart`]).
    pub fast_start: Vec<Channel>,
    /// It refused fast start.
    pub fast_connect_refused: bool,
    /// H.245 is tunnelled (both sides agree).
    pub h245_tunnelling: bool,
    /// Its H.245 listener (only when not tunnelling).
    pub h245_address: Option<SocketAddr>,
    /// `destinationInfo`'s vendor.
    pub vendor: Option<Vendor>,
    /// The Q.931 Display IE.
    pub display: Option<String>,
}

/// The callee's fast-start decision in [`ConnectParams`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum FastStartReply {
    /// Say nothing (slow start; also when the Setup had no fastStart).
    #[default]
    None,
    /// Accept these proposals (indices in [`IncomingCall::fast_start`], at most one per session
    /// and direction) with our RTP and RTCP addresses.
    Accept(Vec<(usize, SocketAddr, SocketAddr)>),
    /// Send `fastConnectRefused`.
    Refuse,
}

/// The callee's Connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectParams {
    /// Fast-start answer.
    pub fast_start: FastStartReply,
    /// Keep H.245 tunnelling (if both sides had it); false turns it off.
    pub h245_tunnelling: bool,
    /// Our H.245 listener, sent when H.245 is not tunnelled.
    pub h245_address: Option<SocketAddr>,
    /// `connectedAddress`.
    pub connected: Vec<Alias>,
    /// The Display IE (not sent in Connect by h323plus for Codian; ours is optional).
    pub display: Option<String>,
}

/// Who or what ended the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOrigin {
    /// [`Call::release`].
    Local,
    /// The peer's ReleaseComplete (or Status in the null state).
    Peer,
    /// A timer ran out.
    Timeout,
    /// The peer sent something unreadable; we sent ReleaseComplete.
    ProtocolError(String),
}

/// What the state machine reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Callee: a Setup arrived.
    IncomingCall(Box<IncomingCall>),
    /// Caller: CallProceeding.
    Proceeding(Answer),
    /// Caller: Alerting.
    Alerting(Answer),
    /// Caller: Progress.
    Progress(Answer),
    /// Caller: Connect.
    Connected(Answer),
    /// Caller: the callee's fast-start answer (once, in whichever message it came).
    FastStart(Vec<Channel>),
    /// Caller: the callee refused fast start (explicitly, or by connecting without an answer).
    FastConnectRefused,
    /// The peer's H.245 listener (Facility startH245 or a late h245Address).
    H245Address(SocketAddr),
    /// A tunnelled H.245 PDU.
    H245(Vec<u8>),
    /// Keypad digits (Information).
    Digits(String),
    /// The peer's Status.
    Status {
        /// Its Q.850 cause.
        cause: Option<u8>,
        /// Its call state.
        call_state: Option<u8>,
    },
    /// The call is over.
    Released {
        /// The Q.850 cause.
        cause: u8,
        /// Who ended it.
        origin: ReleaseOrigin,
    },
}

/// A command that does not fit the call's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Not allowed in this state.
    #[error("{0} not allowed in state {1:?}")]
    State(&'static str, State),
    /// H.245 is not tunnelled on this call.
    #[error("H.245 is not tunnelled")]
    NotTunnelling,
    /// A fast-start choice that does not match the proposals.
    #[error("fast start: {0}")]
    FastStart(String),
    /// A message could not be built.
    #[error("encoding: {0}")]
    Encode(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    T303,
    T310,
    AutoProceeding,
    Answer,
}

/// One call on one call-signalling connection.
#[derive(Debug)]
pub struct Call {
    role: Role,
    config: Config,
    state: State,
    call_ref: u16,
    conference_id: Guid,
    call_identifier: Guid,
    reader: TpktReader,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    timers: Vec<(Timer, Instant)>,
    /// H.245 tunnelling: `None` until the callee's first response decides.
    tunnelling: Option<bool>,
    h245_out: Vec<Vec<u8>>,
    proposals: Vec<Channel>,
    /// Caller: offered fast start; callee: the Setup had fastStart.
    fast_start_offered: bool,
    /// Caller: answer or refusal received; callee: answer or refusal sent.
    fast_start_done: bool,
    responded: bool,
    next_lcn: u16,
}

impl Call {
    /// A callee waiting for the Setup on an accepted connection.
    pub fn accept(config: Config) -> Call {
        Call::new(Role::Callee, config)
    }

    fn new(role: Role, config: Config) -> Call {
        Call {
            role,
            reader: TpktReader::new(config.max_pdu),
            config,
            state: State::Null,
            call_ref: 0,
            conference_id: Guid::default(),
            call_identifier: Guid::default(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            timers: Vec::new(),
            tunnelling: None,
            h245_out: Vec::new(),
            proposals: Vec::new(),
            fast_start_offered: false,
            fast_start_done: false,
            responded: false,
            next_lcn: 1,
        }
    }

    /// A caller: builds the Setup (ready in [`Call::poll_transmit`]) and starts T303.
    pub fn dial(config: Config, p: &DialParams, now: Instant) -> Result<Call, CallError> {
        let mut c = Call::new(Role::Caller, config);
        c.call_ref = p.call_reference & 0x7fff;
        c.conference_id = p.conference_id;
        c.call_identifier = p.call_identifier;
        let mut fast_start = Vec::new();
        for (i, prop) in p.fast_start.iter().enumerate() {
            let lcn = u16::try_from(i + 1).unwrap_or(u16::MAX);
            let bytes = faststart::propose(prop, lcn, prop.codec.media_kind().session_id())
                .map_err(|e| CallError::FastStart(e.to_string()))?;
            fast_start.push(OctetString::from(bytes));
        }
        c.fast_start_offered = !fast_start.is_empty();
        let setup = h225::SetupUUIE::new(
            uuie::protocol_identifier(),
            p.h245_address.map(uuie::to_transport),
            uuie::alias_list(&p.source),
            uuie::endpoint_type(&c.config.vendor),
            uuie::alias_list(&p.destination),
            p.dest_call_signal_address.map(uuie::to_transport),
            None,
            None,
            false,
            p.conference_id.conference_id(),
            h225::SetupUUIEConferenceGoal::create(()),
            None,
            h225::CallType::pointToPoint(()),
            p.source_call_signal_address.map(uuie::to_transport),
            None,
            Some(p.call_identifier.call_identifier()),
            None,
            None,
            None,
            (!fast_start.is_empty()).then_some(fast_start),
            Some(false),
            Some(false),
            None,
            Some(false),
            Some(false),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        );
        let mut m = Message::new(MessageType::Setup, c.call_ref, false);
        let video = p
            .fast_start
            .iter()
            .any(|f| f.codec.media_kind() == crate::h323::h245::MediaKind::Video);
        // Speech, or unrestricted digital 384 kbit/s when video is offered (as h323plus).
        m.push_ie(
            ie::BEARER_CAPABILITY,
            if video {
                vec![0x88, 0x93, 0xa5]
            } else {
                q931::BEARER_SPEECH.to_vec()
            },
        );
        if let Some(d) = &p.display {
            m.push_ie(
                ie::DISPLAY,
                d.as_bytes().iter().take(82).copied().collect::<Vec<_>>(),
            );
        }
        if let Some(n) = &p.calling_number {
            m.push_number(ie::CALLING_PARTY_NUMBER, n);
        }
        if let Some(n) = &p.called_number {
            m.push_number(ie::CALLED_PARTY_NUMBER, n);
        }
        let tunnelling = c.config.h245_tunnelling;
        c.send_uuie(m, Body::setup(setup), tunnelling, Vec::new())?;
        c.state = State::CallInitiated;
        c.set_timer(Timer::T303, now + c.config.t303);
        Ok(c)
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The call state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The call reference value.
    pub fn call_reference(&self) -> u16 {
        self.call_ref
    }

    /// Whether H.245 is tunnelled (`None` while undecided).
    pub fn h245_tunnelling(&self) -> Option<bool> {
        self.tunnelling
    }

    /// Bytes of a PDU received in part, waiting for the rest.
    pub fn pending_input(&self) -> usize {
        self.reader.pending()
    }

    /// The next bytes to write to the TCP connection.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Call::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.iter().map(|t| t.1).min()
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|t| t.1 <= now)
            .map(|t| t.0)
            .collect();
        for t in due {
            self.timers.retain(|x| x.0 != t);
            if self.state == State::Released {
                return;
            }
            match t {
                Timer::T303 => self.release_with(cause::TIMER_EXPIRY, ReleaseOrigin::Timeout),
                Timer::T310 => {
                    let c = if self.state == State::CallDelivered {
                        cause::NO_ANSWER
                    } else {
                        cause::TIMER_EXPIRY
                    };
                    self.release_with(c, ReleaseOrigin::Timeout);
                }
                Timer::AutoProceeding => {
                    if self.state == State::CallPresent {
                        let _ = self.proceeding();
                    }
                }
                Timer::Answer => self.release_with(cause::NO_ANSWER, ReleaseOrigin::Timeout),
            }
        }
    }

    /// Bytes read from the TCP connection.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if self.state == State::Released {
            return;
        }
        self.reader.push(data);
        loop {
            match self.reader.next_pdu() {
                Ok(Some(pdu)) => self.handle_pdu(now, &pdu),
                Ok(None) => break,
                Err(e) => {
                    self.protocol_error(cause::INVALID_MESSAGE, e.to_string());
                    break;
                }
            }
            if self.state == State::Released {
                break;
            }
        }
        self.flush_h245();
    }

    /// Callee: sends CallProceeding.
    pub fn proceeding(&mut self) -> Result<(), CallError> {
        if self.state != State::CallPresent {
            return Err(CallError::State("proceeding", self.state));
        }
        let body = Body::callProceeding(h225::CallProceedingUUIE::new(
            uuie::protocol_identifier(),
            uuie::endpoint_type(&self.config.vendor),
            None,
            Some(self.call_identifier.call_identifier()),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ));
        self.respond(MessageType::CallProceeding, body, None)?;
        self.state = State::IncomingCallProceeding;
        Ok(())
    }

    /// Callee: sends Alerting.
    pub fn alerting(&mut self) -> Result<(), CallError> {
        if !matches!(
            self.state,
            State::CallPresent | State::IncomingCallProceeding
        ) {
            return Err(CallError::State("alerting", self.state));
        }
        let body = Body::alerting(h225::AlertingUUIE::new(
            uuie::protocol_identifier(),
            uuie::endpoint_type(&self.config.vendor),
            None,
            Some(self.call_identifier.call_identifier()),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ));
        self.respond(MessageType::Alerting, body, None)?;
        self.state = State::CallReceived;
        Ok(())
    }

    /// Callee: answers with Connect (fast-start answer, H.245 tunnelling or address).
    pub fn connect(&mut self, p: &ConnectParams) -> Result<(), CallError> {
        if !matches!(
            self.state,
            State::CallPresent | State::IncomingCallProceeding | State::CallReceived
        ) {
            return Err(CallError::State("connect", self.state));
        }
        let (fast_start, refused) = self.fast_start_answer(&p.fast_start)?;
        if !p.h245_tunnelling {
            self.tunnelling = Some(false);
        }
        let tunnelling = self.tunnelling.unwrap_or(self.our_tunnelling());
        let mut connect = h225::ConnectUUIE::new(
            uuie::protocol_identifier(),
            None,
            uuie::endpoint_type(&self.config.vendor),
            self.conference_id.conference_id(),
            Some(self.call_identifier.call_identifier()),
            None,
            None,
            None,
            fast_start,
            Some(false),
            Some(false),
            None,
            uuie::alias_list(&p.connected),
            None,
            None,
            refused.then_some(()),
            None,
            None,
            None,
            None,
        );
        if !tunnelling {
            connect.h245_address = p.h245_address.map(uuie::to_transport);
        }
        self.respond(
            MessageType::Connect,
            Body::connect(connect),
            p.display.as_deref(),
        )?;
        self.state = State::Active;
        self.timers.clear();
        Ok(())
    }

    /// Ends the call: ReleaseComplete with the Q.850 `cause` and its H.225.0 reason.
    pub fn release(&mut self, q850: u8) -> Result<(), CallError> {
        if matches!(self.state, State::Null | State::Released) {
            return Err(CallError::State("release", self.state));
        }
        self.release_with(q850, ReleaseOrigin::Local);
        Ok(())
    }

    /// Sends an H.245 PDU tunnelled in the next message, or in a Facility of its own.
    pub fn send_h245(&mut self, pdu: Vec<u8>) -> Result<(), CallError> {
        if self.state == State::Released
            || self.tunnelling == Some(false)
            || !self.config.h245_tunnelling
        {
            return Err(CallError::NotTunnelling);
        }
        self.h245_out.push(pdu);
        self.flush_h245();
        Ok(())
    }

    /// Sends Facility(startH245) with our H.245 listener, for a separate H.245 connection
    /// (e.g. the caller after a Connect without `h245Address`). Only once H.245 tunnelling is
    /// known to be off.
    pub fn start_h245(&mut self, h245_address: SocketAddr) -> Result<(), CallError> {
        if matches!(self.state, State::Null | State::Released) || self.tunnelling != Some(false) {
            return Err(CallError::State("start_h245", self.state));
        }
        let mut f = h225::FacilityUUIE::new(
            uuie::protocol_identifier(),
            None,
            None,
            Some(self.conference_id.conference_id()),
            h225::FacilityReason::startH245(()),
            Some(self.call_identifier.call_identifier()),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        );
        f.h245_address = Some(uuie::to_transport(h245_address));
        let m = self.message(MessageType::Facility);
        self.send_uuie(m, Body::facility(f), false, Vec::new())
    }

    /// Sends Information with a Keypad IE (digits).
    pub fn send_digits(&mut self, digits: &str) -> Result<(), CallError> {
        if matches!(self.state, State::Null | State::Released) {
            return Err(CallError::State("send_digits", self.state));
        }
        let mut m = self.message(MessageType::Information);
        m.push_ie(
            ie::KEYPAD,
            digits
                .bytes()
                .filter(u8::is_ascii_graphic)
                .collect::<Vec<_>>(),
        );
        let body = Body::information(h225::InformationUUIE::new(
            uuie::protocol_identifier(),
            Some(self.call_identifier.call_identifier()),
            None,
            None,
            None,
            None,
            None,
        ));
        let t = self.tunnelling.unwrap_or(false);
        self.send_uuie(m, body, t, Vec::new())
    }

    // ---- internals ----

    fn our_tunnelling(&self) -> bool {
        self.config.h245_tunnelling
    }

    fn set_timer(&mut self, t: Timer, at: Instant) {
        self.timers.retain(|x| x.0 != t);
        self.timers.push((t, at));
    }

    fn cancel(&mut self, t: Timer) {
        self.timers.retain(|x| x.0 != t);
    }

    /// A message on our call reference with the right direction flag.
    fn message(&self, kind: MessageType) -> Message {
        Message::new(kind, self.call_ref, self.role == Role::Callee)
    }

    /// Callee: a response carrying pending H.245 and fixing the tunnelling decision.
    fn respond(
        &mut self,
        kind: MessageType,
        body: Body,
        display: Option<&str>,
    ) -> Result<(), CallError> {
        // Undecided means both sides asked for tunnelling: our first response confirms it.
        let tunnelling = *self.tunnelling.get_or_insert(true);
        let mut m = self.message(kind);
        if let Some(d) = display {
            m.push_ie(
                ie::DISPLAY,
                d.as_bytes().iter().take(82).copied().collect::<Vec<_>>(),
            );
        }
        let h245 = if tunnelling {
            std::mem::take(&mut self.h245_out)
        } else {
            Vec::new()
        };
        self.send_uuie(m, body, tunnelling, h245)?;
        self.responded = true;
        self.cancel(Timer::AutoProceeding);
        Ok(())
    }

    fn send_uuie(
        &mut self,
        mut m: Message,
        body: Body,
        tunnelling: bool,
        h245: Vec<Vec<u8>>,
    ) -> Result<(), CallError> {
        let control = (!h245.is_empty()).then(|| h245.into_iter().map(OctetString::from).collect());
        let pdu = h225::H323UUPDU::new(
            body,
            None,
            None,
            Some(tunnelling),
            control,
            None,
            None,
            None,
            None,
            None,
            None,
        );
        let info = h225::H323UserInformation::new(pdu, None);
        let bytes = rasn::aper::encode(&info).map_err(|e| CallError::Encode(e.to_string()))?;
        m.set_user_user(&bytes);
        self.send_q931(&m)
    }

    fn send_q931(&mut self, m: &Message) -> Result<(), CallError> {
        let framed = tpkt::encode(&m.encode())
            .ok_or_else(|| CallError::Encode("message over 64 KB".into()))?;
        self.transmit.push_back(framed);
        Ok(())
    }

    /// Sends the pending tunnelled H.245 PDUs, one per empty Facility, once tunnelling is
    /// agreed and the callee has answered.
    fn flush_h245(&mut self) {
        if self.h245_out.is_empty() || self.state == State::Released {
            return;
        }
        match self.tunnelling {
            Some(true) if self.responded || self.role == Role::Caller => {}
            Some(false) => {
                self.h245_out.clear();
                return;
            }
            _ => return,
        }
        for pdu in std::mem::take(&mut self.h245_out) {
            let m = self.message(MessageType::Facility);
            // Any failure here is an encoding bug; the PDU is dropped, never a panic.
            let _ = self.send_uuie(m, Body::empty(()), true, vec![pdu]);
        }
    }

    fn fast_start_answer(
        &mut self,
        reply: &FastStartReply,
    ) -> Result<(Option<Vec<OctetString>>, bool), CallError> {
        if self.fast_start_done {
            return Ok((None, false));
        }
        match reply {
            FastStartReply::None => Ok((None, false)),
            FastStartReply::Refuse => {
                self.fast_start_done = true;
                Ok((None, true))
            }
            FastStartReply::Accept(chosen) => {
                let mut seen = Vec::new();
                let mut out = Vec::new();
                for &(i, rtp, rtcp) in chosen {
                    let ch = self
                        .proposals
                        .get(i)
                        .ok_or_else(|| CallError::FastStart(format!("no proposal {i}")))?;
                    let key = (ch.session_id, ch.direction);
                    if seen.contains(&key) {
                        return Err(CallError::FastStart(format!(
                            "two channels for session {} {:?}",
                            key.0, key.1
                        )));
                    }
                    seen.push(key);
                    let lcn = if ch.direction == Direction::CalleeToCaller {
                        let l = self.next_lcn;
                        self.next_lcn = self.next_lcn.wrapping_add(1).max(1);
                        l
                    } else {
                        ch.lcn
                    };
                    let bytes = ch
                        .answer(lcn, rtp, rtcp)
                        .map_err(|e| CallError::FastStart(e.to_string()))?;
                    out.push(OctetString::from(bytes));
                }
                self.fast_start_done = true;
                if out.is_empty() {
                    Ok((None, true))
                } else {
                    Ok((Some(out), false))
                }
            }
        }
    }

    fn release_with(&mut self, q850: u8, origin: ReleaseOrigin) {
        if self.state == State::Released {
            return;
        }
        let mut m = self.message(MessageType::ReleaseComplete);
        m.push_cause(q850);
        let body = Body::releaseComplete(h225::ReleaseCompleteUUIE::new(
            uuie::protocol_identifier(),
            Some(cause::reason_for(q850)),
            Some(self.call_identifier.call_identifier()),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ));
        let t = self.tunnelling.unwrap_or(false);
        if self.send_uuie(m.clone(), body, t, Vec::new()).is_err() {
            // Never leave the peer without a ReleaseComplete: the bare Q.931 one.
            let _ = self.send_q931(&m);
        }
        self.finish(q850, origin);
    }

    fn finish(&mut self, cause: u8, origin: ReleaseOrigin) {
        self.state = State::Released;
        self.timers.clear();
        self.h245_out.clear();
        self.events.push_back(Event::Released { cause, origin });
    }

    fn protocol_error(&mut self, q850: u8, what: String) {
        self.release_with(q850, ReleaseOrigin::ProtocolError(what));
    }

    fn send_status(&mut self, q850: u8) {
        let mut m = self.message(MessageType::Status);
        m.push_cause(q850);
        m.push_ie(ie::CALL_STATE, [self.state.code() & 0x3f]);
        let body = Body::status(h225::StatusUUIE::new(
            uuie::protocol_identifier(),
            self.call_identifier.call_identifier(),
            None,
            None,
        ));
        let t = self.tunnelling.unwrap_or(false);
        let _ = self.send_uuie(m, body, t, Vec::new());
    }

    fn handle_pdu(&mut self, now: Instant, pdu: &[u8]) {
        let m = match Message::decode(pdu) {
            Ok(m) => m,
            Err(e) => return self.protocol_error(cause::INVALID_MESSAGE, e.to_string()),
        };
        // Messages from the peer carry the flag of the side that did not allocate the
        // reference: clear from our callee's caller, set from our caller's callee.
        let peer_flag = self.role == Role::Caller;
        if self.state == State::Null {
            if m.kind != MessageType::Setup || m.from_destination {
                if m.kind != MessageType::ReleaseComplete {
                    self.call_ref = m.call_ref;
                    self.protocol_error(
                        cause::INVALID_CALL_REFERENCE,
                        format!("{:?} before any Setup", m.kind),
                    );
                }
                return;
            }
        } else if m.call_ref != self.call_ref || m.from_destination != peer_flag {
            if m.call_ref == 0 || m.kind == MessageType::ReleaseComplete {
                return; // Global call reference or a stray release: nothing to do.
            }
            // Another call reference on this connection: refuse it, keep ours.
            let mut rc = Message::new(
                MessageType::ReleaseComplete,
                m.call_ref,
                !m.from_destination,
            );
            rc.push_cause(cause::INVALID_CALL_REFERENCE);
            let _ = self.send_q931(&rc);
            return;
        }
        let info = match m.user_user() {
            Some(uu) => match rasn::aper::decode::<h225::H323UserInformation>(uu) {
                Ok(i) => Some(i),
                Err(e) => {
                    return self.protocol_error(
                        cause::INVALID_IE_CONTENTS,
                        format!("H323-UserInformation: {e}"),
                    )
                }
            },
            None => None,
        };
        let body = info.as_ref().map(|i| &i.h323_uu_pdu.h323_message_body);
        let peer_tunnelling = info
            .as_ref()
            .and_then(|i| i.h323_uu_pdu.h245_tunnelling)
            .unwrap_or(false);
        let control: Vec<Vec<u8>> = info
            .as_ref()
            .and_then(|i| i.h323_uu_pdu.h245_control.as_ref())
            .map(|c| c.iter().map(|b| b.to_vec()).collect())
            .unwrap_or_default();

        match m.kind {
            MessageType::Setup => {
                if self.state != State::Null {
                    return self.send_status(cause::MESSAGE_NOT_COMPATIBLE);
                }
                let Some(Body::setup(setup)) = body else {
                    self.call_ref = m.call_ref;
                    return self.protocol_error(
                        cause::MANDATORY_IE_MISSING,
                        "Setup without a setup UUIE".into(),
                    );
                };
                self.incoming_setup(now, &m, setup, peer_tunnelling);
            }
            MessageType::CallProceeding
            | MessageType::Alerting
            | MessageType::Progress
            | MessageType::Connect
                if self.role == Role::Caller =>
            {
                self.response(&m, body, peer_tunnelling, now);
            }
            MessageType::ReleaseComplete => {
                let c = m.cause().unwrap_or_else(|| match body {
                    Some(Body::releaseComplete(rc)) => rc
                        .reason
                        .as_ref()
                        .map_or(cause::NORMAL_CLEARING, cause::cause_for),
                    _ => cause::NORMAL_CLEARING,
                });
                self.deliver_h245(control);
                self.finish(c, ReleaseOrigin::Peer);
                return;
            }
            MessageType::Facility => {
                if let Some(Body::facility(f)) = body {
                    if self.role == Role::Caller {
                        let c = uuie::common(body.unwrap_or(&Body::empty(())));
                        self.fast_start_from(&c);
                    }
                    if let (Some(a), false) = (
                        f.h245_address.as_ref().and_then(uuie::from_transport),
                        self.tunnelling == Some(true),
                    ) {
                        self.events.push_back(Event::H245Address(a));
                    }
                }
            }
            MessageType::Information => {
                if let Some(k) = m.keypad().filter(|k| !k.is_empty()) {
                    self.events.push_back(Event::Digits(k));
                }
            }
            MessageType::Notify | MessageType::SetupAcknowledge => {}
            MessageType::StatusEnquiry => self.send_status(cause::RESPONSE_TO_STATUS_ENQUIRY),
            MessageType::Status => {
                let call_state = m
                    .ie(ie::CALL_STATE)
                    .and_then(|v| v.first())
                    .map(|s| s & 0x3f);
                self.events.push_back(Event::Status {
                    cause: m.cause(),
                    call_state,
                });
                if call_state == Some(0) {
                    // The peer has no call: ours is gone too (Q.931 §5.8.11).
                    self.deliver_h245(control);
                    self.finish(
                        m.cause().unwrap_or(cause::MESSAGE_NOT_COMPATIBLE),
                        ReleaseOrigin::Peer,
                    );
                    return;
                }
            }
            MessageType::Other(_) => self.send_status(cause::MESSAGE_TYPE_NON_EXISTENT),
            _ => self.send_status(cause::MESSAGE_NOT_COMPATIBLE),
        }
        self.deliver_h245(control);
    }

    fn deliver_h245(&mut self, control: Vec<Vec<u8>>) {
        self.events.extend(
            control
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(Event::H245),
        );
    }

    fn incoming_setup(&mut self, now: Instant, m: &Message, s: &h225::SetupUUIE, tunnelling: bool) {
        self.call_ref = m.call_ref;
        self.conference_id = Guid::from_asn(&s.conference_id.0);
        let call_identifier = s.call_identifier.as_ref().map(|c| Guid::from_asn(&c.guid));
        self.call_identifier = call_identifier.unwrap_or(self.conference_id);
        let (fast_start, fast_start_unusable) = s
            .fast_start
            .as_deref()
            .map(faststart::parse_list)
            .unwrap_or_default();
        self.proposals = fast_start.clone();
        self.fast_start_offered = s.fast_start.is_some();
        self.tunnelling = (!(tunnelling && self.our_tunnelling())).then_some(false);
        let call = IncomingCall {
            call_reference: m.call_ref,
            protocol_version: uuie::version_of(&s.protocol_identifier),
            conference_id: self.conference_id,
            call_identifier,
            called: uuie::aliases(&s.destination_address),
            called_number: m.called_number().filter(|n| !n.is_empty()),
            caller: uuie::aliases(&s.source_address),
            calling_number: m.calling_number().filter(|n| !n.is_empty()),
            display: m
                .display()
                .filter(|d| !d.is_empty())
                .or_else(|| uuie::display_name(&s.display_name)),
            vendor: uuie::vendor_of(&s.source_info),
            dest_call_signal_address: s
                .dest_call_signal_address
                .as_ref()
                .and_then(uuie::from_transport),
            source_call_signal_address: s
                .source_call_signal_address
                .as_ref()
                .and_then(uuie::from_transport),
            fast_start,
            fast_start_unusable,
            media_wait_for_connect: s.media_wait_for_connect.unwrap_or(false),
            h245_tunnelling: tunnelling,
            h245_address: s.h245_address.as_ref().and_then(uuie::from_transport),
            parallel_h245: s
                .parallel_h245_control
                .iter()
                .flatten()
                .map(|b| b.to_vec())
                .collect(),
        };
        self.state = State::CallPresent;
        self.set_timer(Timer::AutoProceeding, now + self.config.auto_proceeding);
        self.set_timer(Timer::Answer, now + self.config.answer_timeout);
        self.events.push_back(Event::IncomingCall(Box::new(call)));
    }

    /// Caller: CallProceeding, Alerting, Progress or Connect.
    fn response(&mut self, m: &Message, body: Option<&Body>, peer_tunnelling: bool, now: Instant) {
        let allowed = match m.kind {
            MessageType::CallProceeding => self.state == State::CallInitiated,
            MessageType::Alerting => {
                matches!(
                    self.state,
                    State::CallInitiated | State::OutgoingCallProceeding
                )
            }
            _ => matches!(
                self.state,
                State::CallInitiated | State::OutgoingCallProceeding | State::CallDelivered
            ),
        };
        if !allowed {
            return self.send_status(cause::MESSAGE_NOT_COMPATIBLE);
        }
        let c = body.map(uuie::common).unwrap_or_default();
        if self.tunnelling.is_none() {
            let agreed = peer_tunnelling && self.our_tunnelling();
            self.tunnelling = Some(agreed);
            if !agreed {
                self.h245_out.clear();
            }
        }
        let tunnelling = self.tunnelling == Some(true);
        self.cancel(Timer::T303);
        let fast_start = self.fast_start_from(&c);
        let answer = Answer {
            fast_start,
            fast_connect_refused: c.fast_connect_refused,
            h245_tunnelling: tunnelling,
            h245_address: c.h245_address.filter(|_| !tunnelling),
            vendor: c.vendor,
            display: m.display(),
        };
        match m.kind {
            MessageType::CallProceeding => {
                self.state = State::OutgoingCallProceeding;
                self.set_timer(Timer::T310, now + self.config.t310);
                self.events.push_back(Event::Proceeding(answer));
            }
            MessageType::Alerting => {
                self.state = State::CallDelivered;
                if !self.timers.iter().any(|t| t.0 == Timer::T310) {
                    self.set_timer(Timer::T310, now + self.config.t310);
                }
                self.events.push_back(Event::Alerting(answer));
            }
            MessageType::Progress => self.events.push_back(Event::Progress(answer)),
            _ => {
                if self.fast_start_offered && !self.fast_start_done {
                    self.fast_start_done = true;
                    self.events.push_back(Event::FastConnectRefused);
                }
                self.state = State::Active;
                self.timers.clear();
                self.events.push_back(Event::Connected(answer));
            }
        }
    }

    /// Caller: the first fast-start answer or refusal; returns the channels it accepted.
    fn fast_start_from(&mut self, c: &uuie::Common) -> Vec<Channel> {
        if !self.fast_start_offered || self.fast_start_done {
            return Vec::new();
        }
        if let Some(list) = &c.fast_start {
            let (channels, _) = faststart::parse_list(list);
            self.fast_start_done = true;
            if channels.is_empty() {
                self.events.push_back(Event::FastConnectRefused);
            } else {
                self.events.push_back(Event::FastStart(channels.clone()));
            }
            return channels;
        }
        if c.fast_connect_refused {
            self.fast_start_done = true;
            self.events.push_back(Event::FastConnectRefused);
        }
        Vec::new()
    }
}
