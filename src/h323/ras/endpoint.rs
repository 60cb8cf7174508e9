//! [`Endpoint`]: jonction registered with a gatekeeper (GRQ, RRQ, lightweight RRQ, ARQ, DRQ,
//! IRR, URQ).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::messages::{self as m, ArqParams, DrqParams, PerCall, RrqParams};
use super::RasStats;
use crate::h323::asn::h323_messages as h225;
use crate::h323::asn::h323_messages::RasMessage;
use crate::h323::call::uuie::{self, Alias, Guid, Vendor};

/// Settings of an [`Endpoint`].
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Our aliases (H.323-ID, E.164 dialledDigits).
    pub aliases: Vec<Alias>,
    /// Our call-signalling address.
    pub call_signal_address: SocketAddr,
    /// Our RAS address (where the gatekeeper sends its requests).
    pub ras_address: SocketAddr,
    /// The gatekeeper's RAS address (where GRQ, or RRQ without discovery, goes).
    pub gatekeeper: SocketAddr,
    /// The gatekeeper identifier to ask for in GRQ/RRQ (else any).
    pub gatekeeper_id: Option<String>,
    /// Discover the gatekeeper first (GRQ → GCF, then RRQ), else RRQ straight.
    pub discover: bool,
    /// The `timeToLive` we ask for (zero: none asked).
    pub time_to_live: Duration,
    /// A request unanswered for this long is sent again (H.225.0 §7.5 suggests 3 s).
    pub retry_timeout: Duration,
    /// How many times a request is sent again before it fails (§7.5: 2).
    pub retries: u32,
    /// After a failed registration, wait this long before the next attempt, doubled after
    /// each failure up to [`EndpointConfig::max_backoff`].
    pub backoff: Duration,
    /// The longest wait between registration attempts.
    pub max_backoff: Duration,
    /// After the gatekeeper unregistered us, register again after this long.
    pub reregister_delay: Duration,
    /// Our vendor identification.
    pub vendor: Vendor,
    /// The most ARQ/DRQ in progress and calls kept for IRRs.
    pub max_calls: usize,
}

impl EndpointConfig {
    /// The defaults for these addresses: no aliases, RRQ straight, 300 s time to live, 3 s
    /// retry timeout and 2 retries.
    pub fn new(
        call_signal_address: SocketAddr,
        ras_address: SocketAddr,
        gatekeeper: SocketAddr,
    ) -> Self {
        EndpointConfig {
            aliases: Vec::new(),
            call_signal_address,
            ras_address,
            gatekeeper,
            gatekeeper_id: None,
            discover: false,
            time_to_live: Duration::from_secs(300),
            retry_timeout: Duration::from_secs(3),
            retries: 2,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
            reregister_delay: Duration::from_secs(5),
            vendor: Vendor::jonction(),
            max_calls: 4096,
        }
    }
}

/// A call to admit ([`Endpoint::admit`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdmissionParams {
    /// Q.931 call reference value.
    pub call_reference: u16,
    /// `callIdentifier`.
    pub call_identifier: Guid,
    /// `conferenceID`.
    pub conference_id: Guid,
    /// We answer the call (else we place it).
    pub answer_call: bool,
    /// The called aliases (placing a call).
    pub destination: Vec<Alias>,
    /// The called party's call-signalling address, if known.
    pub dest_call_signal_address: Option<SocketAddr>,
    /// Bandwidth asked for, in units of 100 bit/s (both directions).
    pub bandwidth: u32,
}

/// Why a call ends ([`DisengageParams::reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisengageReason {
    /// `normalDrop`.
    #[default]
    Normal,
    /// `forcedDrop`.
    Forced,
    /// `undefinedReason`.
    Undefined,
}

/// A call that ended ([`Endpoint::disengage`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisengageParams {
    /// `callIdentifier`.
    pub call_identifier: Guid,
    /// `conferenceID`.
    pub conference_id: Guid,
    /// Q.931 call reference value.
    pub call_reference: u16,
    /// We answered the call.
    pub answered_call: bool,
    /// `disengageReason`.
    pub reason: DisengageReason,
}

/// Why a request could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RasError {
    /// Not registered with a gatekeeper.
    #[error("not registered with a gatekeeper")]
    NotRegistered,
    /// Too many requests in progress.
    #[error("too many RAS requests in progress")]
    TooManyRequests,
    /// The request could not be encoded.
    #[error("the RAS request could not be encoded")]
    Encode,
}

/// What an [`Endpoint`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RasEvent {
    /// GCF: a gatekeeper answered our GRQ (an RRQ follows).
    GatekeeperFound {
        /// Its identifier.
        gatekeeper_id: Option<String>,
        /// Its RAS address.
        ras_address: SocketAddr,
    },
    /// RCF to a full RRQ: registered.
    Registered {
        /// The identifier the gatekeeper gave us.
        endpoint_id: String,
        /// The gatekeeper's identifier.
        gatekeeper_id: Option<String>,
        /// The `timeToLive` granted (none: the registration does not expire).
        time_to_live: Option<Duration>,
    },
    /// RCF to a lightweight RRQ: the registration is kept alive.
    Refreshed {
        /// The `timeToLive` granted.
        time_to_live: Option<Duration>,
    },
    /// GRJ, RRJ or no answer: not registered; another attempt is made at `retry_at`.
    RegistrationFailed {
        /// The reject reason, or `timeout`.
        reason: String,
        /// When we try again.
        retry_at: Instant,
    },
    /// ACF.
    Admitted {
        /// The ARQ's `requestSeqNum` ([`Endpoint::admit`]'s value).
        seq: u16,
        /// The call.
        call_identifier: Guid,
        /// Where to send the Setup (placing a call).
        dest_call_signal_address: Option<SocketAddr>,
        /// The bandwidth granted, in units of 100 bit/s.
        bandwidth: u32,
        /// Send unsolicited IRRs this often during the call.
        irr_frequency: Option<Duration>,
        /// The gatekeeper routes the call signalling.
        gatekeeper_routed: bool,
    },
    /// ARJ or no answer.
    AdmissionRejected {
        /// The ARQ's `requestSeqNum`.
        seq: u16,
        /// The call.
        call_identifier: Guid,
        /// The reject reason, or `timeout`.
        reason: String,
    },
    /// DCF.
    Disengaged {
        /// The DRQ's `requestSeqNum`.
        seq: u16,
        /// The call.
        call_identifier: Guid,
    },
    /// DRJ or no answer (the call is forgotten all the same).
    DisengageRejected {
        /// The DRQ's `requestSeqNum`.
        seq: u16,
        /// The call.
        call_identifier: Guid,
        /// The reject reason, or `timeout`.
        reason: String,
    },
    /// The gatekeeper ended a call (its DRQ, answered with DCF): clear it.
    DisengageRequested {
        /// The admitted call the DRQ names (by `callIdentifier`, else by `conferenceID` and
        /// call reference): its [`AdmissionParams::call_identifier`]; `None` when it names
        /// none of ours.
        call: Option<Guid>,
        /// Q.931 call reference value.
        call_reference: u16,
    },
    /// No longer registered: our URQ was answered (or not), or the gatekeeper sent a URQ
    /// (then we register again after [`EndpointConfig::reregister_delay`]).
    Unregistered {
        /// The gatekeeper unregistered us.
        by_gatekeeper: bool,
        /// URQ's reason, URJ's reason, or `timeout`.
        reason: Option<String>,
    },
}

#[derive(Debug, Clone)]
enum Kind {
    Grq,
    Rrq { light: bool },
    Urq,
    Arq(AdmissionParams),
    Drq(Guid),
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    to: SocketAddr,
    bytes: Vec<u8>,
    sent: u32,
    deadline: Instant,
}

#[derive(Debug, Clone)]
struct ActiveCall {
    params: AdmissionParams,
    bandwidth: u32,
    /// ACF's `irrFrequency`: an unsolicited IRR this often, next at `next_irr`.
    irr_every: Option<Duration>,
    next_irr: Option<Instant>,
}

/// jonction's RAS endpoint: registration with one gatekeeper and admission of calls.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    next_seq: u16,
    pending: BTreeMap<u16, Pending>,
    gk_ras: SocketAddr,
    gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    endpoint_id: Option<h225::EndpointIdentifier>,
    registered: bool,
    time_to_live: Option<Duration>,
    /// Lightweight RRQ when registered, else the next registration attempt.
    rereg_at: Option<Instant>,
    discovery_complete: bool,
    failures: u32,
    stopped: bool,
    calls: HashMap<Guid, ActiveCall>,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<RasEvent>,
    stats: RasStats,
}

impl Endpoint {
    /// A new endpoint; nothing happens before [`Endpoint::start`].
    pub fn new(config: EndpointConfig) -> Self {
        let gatekeeper_id = config
            .gatekeeper_id
            .as_deref()
            .and_then(m::gatekeeper_identifier);
        Endpoint {
            gk_ras: config.gatekeeper,
            config,
            next_seq: 0,
            pending: BTreeMap::new(),
            gatekeeper_id,
            endpoint_id: None,
            registered: false,
            time_to_live: None,
            rereg_at: None,
            discovery_complete: false,
            failures: 0,
            stopped: true,
            calls: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: RasStats::default(),
        }
    }

    /// Starts registering: GRQ (discovery) or RRQ.
    pub fn start(&mut self, now: Instant) {
        self.stopped = false;
        self.failures = 0;
        self.attempt(now);
    }

    /// Registered with the gatekeeper.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// The endpoint identifier the gatekeeper gave us.
    pub fn endpoint_id(&self) -> Option<String> {
        self.endpoint_id.as_ref().map(|e| m::text(&e.0))
    }

    /// The gatekeeper's identifier.
    pub fn gatekeeper_id(&self) -> Option<String> {
        self.gatekeeper_id.as_ref().map(|g| m::text(&g.0))
    }

    /// The `timeToLive` the gatekeeper granted (none: the registration does not expire).
    pub fn time_to_live(&self) -> Option<Duration> {
        self.time_to_live
    }

    /// The gatekeeper's RAS address (from GCF once discovered).
    pub fn gatekeeper_address(&self) -> SocketAddr {
        self.gk_ras
    }

    /// Calls admitted and not yet disengaged.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// The settings.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> RasStats {
        self.stats
    }

    /// Asks the gatekeeper to admit a call (ARQ); the answer is [`RasEvent::Admitted`] or
    /// [`RasEvent::AdmissionRejected`] with the returned `requestSeqNum`.
    pub fn admit(&mut self, now: Instant, call: AdmissionParams) -> Result<u16, RasError> {
        let endpoint_id = self.endpoint_id.clone().filter(|_| self.registered);
        let endpoint_id = endpoint_id.ok_or(RasError::NotRegistered)?;
        if self.pending.len() >= self.config.max_calls {
            return Err(RasError::TooManyRequests);
        }
        let n = self.seq();
        let msg = m::arq(
            n,
            ArqParams {
                endpoint_id,
                gatekeeper_id: self.gatekeeper_id.clone(),
                destination: &call.destination,
                dest_call_signal_address: call.dest_call_signal_address,
                source: &self.config.aliases,
                src_call_signal_address: Some(self.config.call_signal_address),
                bandwidth: call.bandwidth,
                call_reference: call.call_reference,
                conference_id: call.conference_id.conference_id(),
                call_identifier: call.call_identifier.call_identifier(),
                answer_call: call.answer_call,
            },
        );
        self.request(now, n, Kind::Arq(call), &msg)?;
        Ok(n)
    }

    /// Tells the gatekeeper a call ended (DRQ); the answer is [`RasEvent::Disengaged`] or
    /// [`RasEvent::DisengageRejected`] with the returned `requestSeqNum`.
    pub fn disengage(&mut self, now: Instant, call: DisengageParams) -> Result<u16, RasError> {
        self.calls.remove(&call.call_identifier);
        let endpoint_id = self.endpoint_id.clone().filter(|_| self.registered);
        let endpoint_id = endpoint_id.ok_or(RasError::NotRegistered)?;
        if self.pending.len() >= self.config.max_calls {
            return Err(RasError::TooManyRequests);
        }
        let n = self.seq();
        let reason = match call.reason {
            DisengageReason::Normal => h225::DisengageReason::normalDrop(()),
            DisengageReason::Forced => h225::DisengageReason::forcedDrop(()),
            DisengageReason::Undefined => h225::DisengageReason::undefinedReason(()),
        };
        let msg = m::drq(
            n,
            DrqParams {
                endpoint_id,
                gatekeeper_id: self.gatekeeper_id.clone(),
                conference_id: call.conference_id.conference_id(),
                call_reference: call.call_reference,
                call_identifier: call.call_identifier.call_identifier(),
                answered_call: call.answered_call,
                reason,
            },
        );
        self.request(now, n, Kind::Drq(call.call_identifier), &msg)?;
        Ok(n)
    }

    /// Shutting down: URQ if registered (then [`RasEvent::Unregistered`] on UCF, URJ or
    /// timeout), else [`RasEvent::Unregistered`] at once. No registration attempt follows.
    pub fn unregister(&mut self, now: Instant) {
        self.stopped = true;
        self.rereg_at = None;
        self.pending
            .retain(|_, p| !matches!(p.kind, Kind::Grq | Kind::Rrq { .. }));
        if self.pending.values().any(|p| matches!(p.kind, Kind::Urq)) {
            return;
        }
        match self.endpoint_id.clone().filter(|_| self.registered) {
            Some(id) => {
                let n = self.seq();
                let msg = m::urq(
                    n,
                    &[self.config.call_signal_address],
                    &self.config.aliases,
                    Some(id),
                    self.gatekeeper_id.clone(),
                    None,
                );
                if self.request(now, n, Kind::Urq, &msg).is_err() {
                    self.unregistered(false, Some("encode".into()));
                }
            }
            None => self.unregistered(false, None),
        }
    }

    /// A datagram received on our RAS socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), super::Malformed> {
        let msg = super::decode_counted(&mut self.stats, bytes)?;
        self.on_message(now, from, msg, bytes);
        Ok(())
    }

    fn on_message(&mut self, now: Instant, from: SocketAddr, msg: RasMessage, bytes: &[u8]) {
        let n = m::request_seq(&msg).unwrap_or(0);
        match msg {
            RasMessage::gatekeeperConfirm(gcf) => {
                if self.take(n, from, |k| matches!(k, Kind::Grq)).is_none() {
                    return;
                }
                let ras = uuie::from_transport(&gcf.ras_address).unwrap_or(from);
                self.gk_ras = ras;
                if gcf.gatekeeper_identifier.is_some() {
                    self.gatekeeper_id = gcf.gatekeeper_identifier;
                }
                self.events.push_back(RasEvent::GatekeeperFound {
                    gatekeeper_id: self.gatekeeper_id(),
                    ras_address: ras,
                });
                self.discovery_complete = true;
                self.send_rrq(now, false);
            }
            RasMessage::gatekeeperReject(grj) => {
                if self.take(n, from, |k| matches!(k, Kind::Grq)).is_some() {
                    self.failed(now, m::choice_name(&grj.reject_reason));
                }
            }
            RasMessage::registrationConfirm(rcf) => {
                let Some(Kind::Rrq { light }) =
                    self.take(n, from, |k| matches!(k, Kind::Rrq { .. }))
                else {
                    return;
                };
                self.endpoint_id = Some(rcf.endpoint_identifier);
                if rcf.gatekeeper_identifier.is_some() {
                    self.gatekeeper_id = rcf.gatekeeper_identifier;
                }
                let ttl = rcf.time_to_live.map(|t| Duration::from_secs(t.0.into()));
                self.time_to_live = ttl;
                self.registered = true;
                self.failures = 0;
                // Refresh at two thirds of the time to live (at least a second ahead).
                self.rereg_at = ttl.map(|t| now + (t * 2 / 3).max(Duration::from_secs(1)));
                self.events.push_back(if light {
                    RasEvent::Refreshed { time_to_live: ttl }
                } else {
                    RasEvent::Registered {
                        endpoint_id: self.endpoint_id().unwrap_or_default(),
                        gatekeeper_id: self.gatekeeper_id(),
                        time_to_live: ttl,
                    }
                });
            }
            RasMessage::registrationReject(rrj) => {
                let Some(Kind::Rrq { light }) =
                    self.take(n, from, |k| matches!(k, Kind::Rrq { .. }))
                else {
                    return;
                };
                if light {
                    // fullRegistrationRequired (or any reject of a keep-alive): register again.
                    self.send_rrq(now, false);
                    return;
                }
                if matches!(
                    rrj.reject_reason,
                    h225::RegistrationRejectReason::discoveryRequired(_)
                ) {
                    self.discovery_complete = false;
                }
                self.failed(now, m::choice_name(&rrj.reject_reason));
            }
            RasMessage::unregistrationConfirm(_) => {
                if self.take(n, from, |k| matches!(k, Kind::Urq)).is_some() {
                    self.unregistered(false, None);
                }
            }
            RasMessage::unregistrationReject(urj) => {
                if self.take(n, from, |k| matches!(k, Kind::Urq)).is_some() {
                    self.unregistered(false, Some(m::choice_name(&urj.reject_reason)));
                }
            }
            RasMessage::admissionConfirm(acf) => {
                let Some(Kind::Arq(call)) = self.take(n, from, |k| matches!(k, Kind::Arq(_)))
                else {
                    return;
                };
                let bandwidth = acf.band_width.0;
                let irr_every = acf.irr_frequency.map(|f| Duration::from_secs(f.into()));
                self.events.push_back(RasEvent::Admitted {
                    seq: n,
                    call_identifier: call.call_identifier,
                    dest_call_signal_address: uuie::from_transport(&acf.dest_call_signal_address),
                    bandwidth,
                    irr_frequency: irr_every,
                    gatekeeper_routed: matches!(
                        acf.call_model,
                        h225::CallModel::gatekeeperRouted(_)
                    ),
                });
                if self.calls.len() < self.config.max_calls {
                    self.calls.insert(
                        call.call_identifier,
                        ActiveCall {
                            params: call,
                            bandwidth,
                            irr_every,
                            next_irr: irr_every.map(|e| now + e),
                        },
                    );
                }
            }
            RasMessage::admissionReject(arj) => {
                if let Some(Kind::Arq(call)) = self.take(n, from, |k| matches!(k, Kind::Arq(_))) {
                    self.events.push_back(RasEvent::AdmissionRejected {
                        seq: n,
                        call_identifier: call.call_identifier,
                        reason: m::choice_name(&arj.reject_reason),
                    });
                }
            }
            RasMessage::disengageConfirm(_) => {
                if let Some(Kind::Drq(call_identifier)) =
                    self.take(n, from, |k| matches!(k, Kind::Drq(_)))
                {
                    self.events.push_back(RasEvent::Disengaged {
                        seq: n,
                        call_identifier,
                    });
                }
            }
            RasMessage::disengageReject(drj) => {
                if let Some(Kind::Drq(call_identifier)) =
                    self.take(n, from, |k| matches!(k, Kind::Drq(_)))
                {
                    self.events.push_back(RasEvent::DisengageRejected {
                        seq: n,
                        call_identifier,
                        reason: m::choice_name(&drj.reject_reason),
                    });
                }
            }
            RasMessage::requestInProgress(rip) => {
                // The gatekeeper needs more time: wait `delay` ms more before retrying.
                match self.pending.get_mut(&n) {
                    Some(p) if p.to == from => {
                        p.deadline = now + Duration::from_millis(rip.delay.into())
                    }
                    _ => self.stats.unmatched += 1,
                }
            }
            RasMessage::unregistrationRequest(urq) => self.on_urq(now, from, n, &urq),
            RasMessage::infoRequest(irq) => self.on_irq(from, n, &irq),
            RasMessage::disengageRequest(drq) => self.on_drq(from, n, &drq),
            other if m::is_request(&other) => {
                // A request an endpoint does not serve (GRQ, RRQ, ARQ, LRQ, BRQ, …).
                self.stats.unexpected += 1;
                self.send(from, &m::xrs(n, bytes));
            }
            _ => self.stats.unmatched += 1,
        }
    }

    /// The next datagram to send, with its destination.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let irr = self.calls.values().filter_map(|c| c.next_irr);
        self.pending
            .values()
            .map(|p| p.deadline)
            .chain(self.rereg_at)
            .chain(irr)
            .min()
    }

    /// Retransmissions, request timeouts, keep-alives and registration attempts due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            let Some(p) = self.pending.get_mut(&n) else {
                continue;
            };
            if p.sent <= self.config.retries {
                p.sent += 1;
                p.deadline = now + self.config.retry_timeout;
                self.transmit.push_back((p.to, p.bytes.clone()));
                self.stats.retransmissions += 1;
                continue;
            }
            let Some(p) = self.pending.remove(&n) else {
                continue;
            };
            match p.kind {
                Kind::Grq | Kind::Rrq { light: false } => self.failed(now, "timeout".into()),
                // An unanswered keep-alive: register again, fully.
                Kind::Rrq { light: true } => self.send_rrq(now, false),
                Kind::Urq => self.unregistered(false, Some("timeout".into())),
                Kind::Arq(call) => self.events.push_back(RasEvent::AdmissionRejected {
                    seq: n,
                    call_identifier: call.call_identifier,
                    reason: "timeout".into(),
                }),
                Kind::Drq(call_identifier) => self.events.push_back(RasEvent::DisengageRejected {
                    seq: n,
                    call_identifier,
                    reason: "timeout".into(),
                }),
            }
        }
        self.send_due_irrs(now);
        if self.rereg_at.is_some_and(|t| t <= now) {
            self.rereg_at = None;
            if self.stopped {
                return;
            }
            if self.registered {
                self.send_rrq(now, true);
            } else {
                self.attempt(now);
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RasEvent> {
        self.events.pop_front()
    }

    // --- internals

    fn seq(&mut self) -> u16 {
        loop {
            self.next_seq = self.next_seq.checked_add(1).unwrap_or(1);
            if !self.pending.contains_key(&self.next_seq) {
                return self.next_seq;
            }
        }
    }

    fn send(&mut self, to: SocketAddr, msg: &RasMessage) {
        match m::encode(msg) {
            Some(b) => self.transmit.push_back((to, b)),
            None => self.stats.encode_errors += 1,
        }
    }

    fn request(
        &mut self,
        now: Instant,
        n: u16,
        kind: Kind,
        msg: &RasMessage,
    ) -> Result<(), RasError> {
        let Some(bytes) = m::encode(msg) else {
            self.stats.encode_errors += 1;
            return Err(RasError::Encode);
        };
        let to = if matches!(kind, Kind::Grq) {
            self.config.gatekeeper
        } else {
            self.gk_ras
        };
        self.transmit.push_back((to, bytes.clone()));
        self.pending.insert(
            n,
            Pending {
                kind,
                to,
                bytes,
                sent: 1,
                deadline: now + self.config.retry_timeout,
            },
        );
        Ok(())
    }

    /// Removes and returns the request a response answers: same `requestSeqNum`, expected
    /// kind, from the address the request went to (any address for GRQ).
    fn take(&mut self, n: u16, from: SocketAddr, kind: impl Fn(&Kind) -> bool) -> Option<Kind> {
        let ok = self
            .pending
            .get(&n)
            .is_some_and(|p| kind(&p.kind) && (p.to == from || matches!(p.kind, Kind::Grq)));
        if !ok {
            self.stats.unmatched += 1;
            return None;
        }
        self.pending.remove(&n).map(|p| p.kind)
    }

    /// A registration attempt: GRQ, or RRQ when discovery is off or done.
    fn attempt(&mut self, now: Instant) {
        self.pending
            .retain(|_, p| !matches!(p.kind, Kind::Grq | Kind::Rrq { .. }));
        if self.config.discover && !self.discovery_complete {
            let n = self.seq();
            let msg = m::grq(
                n,
                self.config.ras_address,
                &self.config.vendor,
                self.config
                    .gatekeeper_id
                    .as_deref()
                    .and_then(m::gatekeeper_identifier),
                &self.config.aliases,
            );
            if self.request(now, n, Kind::Grq, &msg).is_err() {
                self.failed(now, "encode".into());
            }
        } else {
            self.send_rrq(now, false);
        }
    }

    fn send_rrq(&mut self, now: Instant, light: bool) {
        self.pending
            .retain(|_, p| !matches!(p.kind, Kind::Grq | Kind::Rrq { .. }));
        let keep_alive = if light {
            self.endpoint_id.clone()
        } else {
            None
        };
        let light = keep_alive.is_some();
        let n = self.seq();
        let ttl = self.config.time_to_live.as_secs().min(u32::MAX.into()) as u32;
        let msg = m::rrq(
            n,
            RrqParams {
                call_signal: &[self.config.call_signal_address],
                ras: self.config.ras_address,
                vendor: &self.config.vendor,
                aliases: &self.config.aliases,
                gatekeeper_id: self.gatekeeper_id.clone(),
                time_to_live: Some(ttl),
                keep_alive,
                discovery_complete: self.discovery_complete,
            },
        );
        if self.request(now, n, Kind::Rrq { light }, &msg).is_err() {
            self.failed(now, "encode".into());
        }
    }

    /// The registration failed: not registered, try again after the backoff.
    fn failed(&mut self, now: Instant, reason: String) {
        self.registered = false;
        self.failures = self.failures.saturating_add(1);
        let factor = 1u32 << self.failures.saturating_sub(1).min(16);
        let wait = self
            .config
            .backoff
            .saturating_mul(factor)
            .min(self.config.max_backoff);
        let retry_at = now + wait;
        if self.config.discover {
            // The gatekeeper may have moved: discover it again.
            self.discovery_complete = false;
            self.gk_ras = self.config.gatekeeper;
        }
        self.rereg_at = (!self.stopped).then_some(retry_at);
        self.events
            .push_back(RasEvent::RegistrationFailed { reason, retry_at });
    }

    fn unregistered(&mut self, by_gatekeeper: bool, reason: Option<String>) {
        self.registered = false;
        self.endpoint_id = None;
        self.time_to_live = None;
        self.rereg_at = None;
        self.events.push_back(RasEvent::Unregistered {
            by_gatekeeper,
            reason,
        });
    }

    fn on_urq(
        &mut self,
        now: Instant,
        from: SocketAddr,
        n: u16,
        urq: &h225::UnregistrationRequest,
    ) {
        let ours = match (&urq.endpoint_identifier, &self.endpoint_id) {
            (Some(theirs), Some(ours)) => theirs == ours,
            _ => true,
        };
        if !self.registered || !ours {
            self.stats.unexpected += 1;
            self.send(
                from,
                &m::urj(n, h225::UnregRejectReason::notCurrentlyRegistered(())),
            );
            return;
        }
        self.send(from, &m::ucf(n));
        self.pending
            .retain(|_, p| !matches!(p.kind, Kind::Grq | Kind::Rrq { .. }));
        self.unregistered(true, urq.reason.as_ref().map(m::choice_name));
        if !self.stopped {
            self.rereg_at = Some(now + self.config.reregister_delay);
        }
    }

    fn on_irq(&mut self, from: SocketAddr, n: u16, irq: &h225::InfoRequest) {
        let Some(endpoint_id) = self.endpoint_id.clone().filter(|_| self.registered) else {
            self.stats.unexpected += 1;
            return;
        };
        let crv = irq.call_reference_value.0;
        let calls: Vec<PerCall> = self
            .calls
            .values()
            .filter(|c| match &irq.call_identifier {
                Some(id) if crv != 0 => Guid::from_asn(&id.guid) == c.params.call_identifier,
                _ => crv == 0 || crv == c.params.call_reference,
            })
            .map(|c| self.per_call(c))
            .collect();
        let to = irq
            .reply_address
            .as_ref()
            .and_then(uuie::from_transport)
            .unwrap_or(from);
        let msg = m::irr(
            n,
            &self.config.vendor,
            endpoint_id,
            self.config.ras_address,
            &[self.config.call_signal_address],
            &self.config.aliases,
            &calls,
            false,
        );
        self.send(to, &msg);
    }

    fn on_drq(&mut self, from: SocketAddr, n: u16, drq: &h225::DisengageRequest) {
        if !self.registered || self.endpoint_id.as_ref() != Some(&drq.endpoint_identifier) {
            self.stats.unexpected += 1;
            let reason = h225::DisengageRejectReason::notRegistered(());
            self.send(from, &m::drj(n, reason));
            return;
        }
        let call_identifier = drq
            .call_identifier
            .as_ref()
            .map(|c| Guid::from_asn(&c.guid));
        let conference_id = Guid::from_asn(&drq.conference_id.0);
        let call_reference = drq.call_reference_value.0;
        let call = self
            .calls
            .iter()
            .find(|(id, c)| match call_identifier {
                Some(ci) => **id == ci,
                None => {
                    c.params.conference_id == conference_id
                        && c.params.call_reference == call_reference
                }
            })
            .map(|(id, _)| *id);
        if let Some(id) = call {
            self.calls.remove(&id);
        }
        self.send(from, &m::dcf(n));
        self.events.push_back(RasEvent::DisengageRequested {
            call,
            call_reference,
        });
    }

    fn per_call(&self, c: &ActiveCall) -> PerCall {
        PerCall {
            call_reference: c.params.call_reference,
            conference_id: c.params.conference_id.conference_id(),
            call_identifier: c.params.call_identifier.call_identifier(),
            originator: !c.params.answer_call,
            bandwidth: c.bandwidth,
            call_signalling: (
                Some(self.config.call_signal_address),
                c.params.dest_call_signal_address,
            ),
        }
    }

    /// Unsolicited IRRs for the calls whose `irrFrequency` period ran out.
    fn send_due_irrs(&mut self, now: Instant) {
        let Some(endpoint_id) = self.endpoint_id.clone().filter(|_| self.registered) else {
            return;
        };
        let mut due = Vec::new();
        for c in self.calls.values_mut() {
            if let (Some(every), Some(next)) = (c.irr_every, c.next_irr) {
                if next <= now {
                    c.next_irr = Some(now + every.max(Duration::from_secs(1)));
                    due.push(c.params.call_identifier);
                }
            }
        }
        for id in due {
            let Some(call) = self.calls.get(&id) else {
                continue;
            };
            let per_call = self.per_call(call);
            let n = self.seq();
            let msg = m::irr(
                n,
                &self.config.vendor,
                endpoint_id.clone(),
                self.config.ras_address,
                &[self.config.call_signal_address],
                &self.config.aliases,
                &[per_call],
                true,
            );
            let to = self.gk_ras;
            self.send(to, &msg);
        }
    }
}
