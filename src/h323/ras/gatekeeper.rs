//! [`Gatekeeper`]: a minimal gatekeeper so that room systems can register with jonction
//! itself (GRQ, RRQ, lightweight RRQ, URQ, ARQ, DRQ, BRQ, IRR; anything else rejected).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::messages as m;
use super::RasStats;
use crate::h323::asn::h323_messages as h225;
use crate::h323::asn::h323_messages::RasMessage;
use crate::h323::call::uuie::{self, Alias, Guid, Vendor};

/// Settings of a [`Gatekeeper`].
#[derive(Debug, Clone)]
pub struct GatekeeperConfig {
    /// Our `gatekeeperIdentifier`.
    pub gatekeeper_id: String,
    /// Our RAS address (in GCF).
    pub ras_address: SocketAddr,
    /// Our call-signalling address: where admitted calls go (ACF) and RCF's address.
    pub call_signal_address: SocketAddr,
    /// The longest `timeToLive` granted, and the one granted when none is asked for (zero:
    /// registrations do not expire).
    pub time_to_live: Duration,
    /// A registration is dropped this long after its time to live ran out.
    pub grace: Duration,
    /// The most registrations kept; beyond, new endpoints are refused.
    pub max_registrations: usize,
    /// The most bandwidth granted per call, in units of 100 bit/s.
    pub max_bandwidth: u32,
    /// The most calls admitted and not disengaged.
    pub max_calls: usize,
    /// ACF's `irrFrequency`: ask admitted endpoints for an unsolicited IRR this often, in
    /// seconds (none: no IRRs asked).
    pub irr_frequency: Option<u16>,
}

impl GatekeeperConfig {
    /// The defaults for these addresses: 300 s time to live, 30 s grace, 10 000
    /// registrations, 4 Mbit/s per call.
    pub fn new(
        gatekeeper_id: &str,
        ras_address: SocketAddr,
        call_signal_address: SocketAddr,
    ) -> Self {
        GatekeeperConfig {
            gatekeeper_id: gatekeeper_id.into(),
            ras_address,
            call_signal_address,
            time_to_live: Duration::from_secs(300),
            grace: Duration::from_secs(30),
            max_registrations: 10_000,
            max_bandwidth: 40_000,
            max_calls: 10_000,
            irr_frequency: None,
        }
    }
}

/// An endpoint registered with us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The `endpointIdentifier` we gave it.
    pub endpoint_id: String,
    /// Its aliases.
    pub aliases: Vec<Alias>,
    /// Its call-signalling addresses.
    pub call_signal_addresses: Vec<SocketAddr>,
    /// Its RAS address.
    pub ras_address: SocketAddr,
    /// Its vendor.
    pub vendor: Option<Vendor>,
    /// The `timeToLive` granted (none: no expiry).
    pub time_to_live: Option<Duration>,
    /// When the registration runs out (before the grace period).
    pub expires: Option<Instant>,
}

/// What a [`Gatekeeper`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatekeeperEvent {
    /// An endpoint registered (full RRQ).
    Registered {
        /// The identifier we gave it.
        endpoint_id: String,
        /// Its aliases.
        aliases: Vec<Alias>,
        /// Its first call-signalling address.
        call_signal_address: Option<SocketAddr>,
    },
    /// A registration ended.
    Unregistered {
        /// The endpoint.
        endpoint_id: String,
        /// Its aliases.
        aliases: Vec<Alias>,
        /// `urq` (it unregistered), `expired`, or `gatekeeper` ([`Gatekeeper::unregister`]).
        reason: &'static str,
    },
    /// A call was admitted (ACF sent).
    Admitted {
        /// The endpoint.
        endpoint_id: String,
        /// `callIdentifier`.
        call_identifier: Option<Guid>,
        /// `conferenceID`.
        conference_id: Guid,
        /// Q.931 call reference value.
        call_reference: u16,
        /// The endpoint answers the call (else it places it, to us).
        answer_call: bool,
        /// The called aliases.
        destination: Vec<Alias>,
        /// The bandwidth granted, in units of 100 bit/s.
        bandwidth: u32,
    },
    /// A call ended (DCF sent).
    Disengaged {
        /// The endpoint.
        endpoint_id: String,
        /// `callIdentifier`.
        call_identifier: Option<Guid>,
        /// `conferenceID`.
        conference_id: Guid,
        /// Q.931 call reference value.
        call_reference: u16,
    },
    /// An IRR (solicited or not) from a registered endpoint.
    InfoResponse {
        /// The endpoint.
        endpoint_id: String,
        /// How many calls its `perCallInfo` lists.
        calls: usize,
    },
}

/// A minimal gatekeeper (direct call model: admitted calls are sent to jonction).
#[derive(Debug)]
pub struct Gatekeeper {
    config: GatekeeperConfig,
    gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    registrations: HashMap<String, Registration>,
    /// Calls admitted: (endpoint, callIdentifier or else conferenceID) → bandwidth.
    calls: HashMap<(String, Guid), u32>,
    next_id: u64,
    next_seq: u16,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<GatekeeperEvent>,
    stats: RasStats,
}

impl Gatekeeper {
    /// A new gatekeeper with no registrations.
    pub fn new(config: GatekeeperConfig) -> Self {
        Gatekeeper {
            gatekeeper_id: m::gatekeeper_identifier(&config.gatekeeper_id),
            config,
            registrations: HashMap::new(),
            calls: HashMap::new(),
            next_id: 0,
            next_seq: 0,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: RasStats::default(),
        }
    }

    /// The registrations (in no particular order).
    pub fn registrations(&self) -> impl Iterator<Item = &Registration> {
        self.registrations.values()
    }

    /// One registration.
    pub fn registration(&self, endpoint_id: &str) -> Option<&Registration> {
        self.registrations.get(endpoint_id)
    }

    /// The registration that has this alias.
    pub fn find_alias(&self, alias: &Alias) -> Option<&Registration> {
        self.registrations
            .values()
            .find(|r| r.aliases.contains(alias))
    }

    /// Calls admitted and not disengaged.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Counters.
    pub fn stats(&self) -> RasStats {
        self.stats
    }

    /// Unregisters an endpoint: URQ to it (not retransmitted; its UCF is not awaited) and
    /// [`GatekeeperEvent::Unregistered`]. False if it is not registered.
    pub fn unregister(&mut self, endpoint_id: &str) -> bool {
        let n = self.seq();
        let Some(reg) = self.registrations.get(endpoint_id) else {
            return false;
        };
        let msg = m::urq(
            n,
            &reg.call_signal_addresses,
            &[],
            m::endpoint_identifier(endpoint_id),
            self.gatekeeper_id.clone(),
            Some(h225::UnregRequestReason::maintenance(())),
        );
        let to = reg.ras_address;
        self.send(to, &msg);
        self.remove(endpoint_id, "gatekeeper");
        true
    }

    /// Asks a registered endpoint for its status (IRQ; `call_reference` 0: all its calls);
    /// the IRR comes back as [`GatekeeperEvent::InfoResponse`]. False if it is not
    /// registered.
    pub fn info_request(&mut self, endpoint_id: &str, call_reference: u16) -> bool {
        let Some(to) = self.registrations.get(endpoint_id).map(|r| r.ras_address) else {
            return false;
        };
        let n = self.seq();
        self.send(
            to,
            &m::irq(n, call_reference, Some(self.config.ras_address)),
        );
        true
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
        let n = m::request_seq(&msg).unwrap_or(1);
        match msg {
            RasMessage::gatekeeperRequest(grq) => {
                let other = grq
                    .gatekeeper_identifier
                    .as_ref()
                    .is_some_and(|g| Some(g) != self.gatekeeper_id.as_ref());
                let reply = if other {
                    m::grj(
                        n,
                        self.gatekeeper_id.clone(),
                        h225::GatekeeperRejectReason::terminalExcluded(()),
                    )
                } else {
                    m::gcf(n, self.gatekeeper_id.clone(), self.config.ras_address)
                };
                self.send(from, &reply);
            }
            RasMessage::registrationRequest(rrq) => self.on_rrq(now, from, n, rrq),
            RasMessage::unregistrationRequest(urq) => {
                let id = urq
                    .endpoint_identifier
                    .as_ref()
                    .map(|e| m::text(&e.0))
                    .filter(|id| self.registrations.contains_key(id))
                    .or_else(|| {
                        // No identifier: the registration with one of these addresses.
                        let csa = m::addresses(&urq.call_signal_address);
                        self.registrations
                            .values()
                            .find(|r| r.call_signal_addresses.iter().any(|a| csa.contains(a)))
                            .map(|r| r.endpoint_id.clone())
                    });
                match id {
                    Some(id) => {
                        self.send(from, &m::ucf(n));
                        self.remove(&id, "urq");
                    }
                    None => {
                        let reason = h225::UnregRejectReason::notCurrentlyRegistered(());
                        self.send(from, &m::urj(n, reason));
                    }
                }
            }
            RasMessage::admissionRequest(arq) => self.on_arq(from, n, arq),
            RasMessage::disengageRequest(drq) => {
                let id = m::text(&drq.endpoint_identifier.0);
                if !self.registrations.contains_key(&id) {
                    let reason = h225::DisengageRejectReason::notRegistered(());
                    self.send(from, &m::drj(n, reason));
                    return;
                }
                let call_identifier = drq
                    .call_identifier
                    .as_ref()
                    .map(|c| Guid::from_asn(&c.guid));
                let conference_id = Guid::from_asn(&drq.conference_id.0);
                self.calls
                    .remove(&(id.clone(), call_identifier.unwrap_or(conference_id)));
                self.send(from, &m::dcf(n));
                self.events.push_back(GatekeeperEvent::Disengaged {
                    endpoint_id: id,
                    call_identifier,
                    conference_id,
                    call_reference: drq.call_reference_value.0,
                });
            }
            RasMessage::bandwidthRequest(brq) => {
                let id = m::text(&brq.endpoint_identifier.0);
                let reply = if self.registrations.contains_key(&id) {
                    m::bcf(n, brq.band_width.0.min(self.config.max_bandwidth))
                } else {
                    m::brj(n, h225::BandRejectReason::notBound(()), 0)
                };
                self.send(from, &reply);
            }
            RasMessage::locationRequest(_) => {
                self.stats.unexpected += 1;
                let reason = h225::LocationRejectReason::requestDenied(());
                self.send(from, &m::lrj(n, reason));
            }
            RasMessage::infoRequestResponse(irr) => {
                let id = m::text(&irr.endpoint_identifier.0);
                let expires = self.expiry(
                    now,
                    self.registrations.get(&id).and_then(|r| r.time_to_live),
                );
                match self.registrations.get_mut(&id) {
                    Some(reg) => {
                        reg.expires = expires;
                        let calls = irr.per_call_info.as_ref().map_or(0, |p| p.0.len());
                        self.events.push_back(GatekeeperEvent::InfoResponse {
                            endpoint_id: id,
                            calls,
                        });
                    }
                    None => self.stats.unexpected += 1,
                }
            }
            // Answers to our URQ, which we do not wait for.
            RasMessage::unregistrationConfirm(_) | RasMessage::unregistrationReject(_) => {}
            other if m::is_request(&other) => {
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

    /// When [`Gatekeeper::handle_timeout`] should be called next (the next expiry).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.registrations
            .values()
            .filter_map(|r| r.expires)
            .min()
            .map(|t| t + self.config.grace)
    }

    /// Drops the registrations whose time to live (and grace) ran out.
    pub fn handle_timeout(&mut self, now: Instant) {
        let grace = self.config.grace;
        let expired: Vec<String> = self
            .registrations
            .values()
            .filter(|r| r.expires.is_some_and(|t| t + grace <= now))
            .map(|r| r.endpoint_id.clone())
            .collect();
        for id in expired {
            self.remove(&id, "expired");
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<GatekeeperEvent> {
        self.events.pop_front()
    }

    // --- internals

    fn seq(&mut self) -> u16 {
        self.next_seq = self.next_seq.checked_add(1).unwrap_or(1);
        self.next_seq
    }

    fn send(&mut self, to: SocketAddr, msg: &RasMessage) {
        match m::encode(msg) {
            Some(b) => self.transmit.push_back((to, b)),
            None => self.stats.encode_errors += 1,
        }
    }

    fn expiry(&self, now: Instant, ttl: Option<Duration>) -> Option<Instant> {
        ttl.map(|t| now + t)
    }

    fn remove(&mut self, endpoint_id: &str, reason: &'static str) {
        if let Some(reg) = self.registrations.remove(endpoint_id) {
            self.calls.retain(|(id, _), _| id != endpoint_id);
            self.events.push_back(GatekeeperEvent::Unregistered {
                endpoint_id: reg.endpoint_id,
                aliases: reg.aliases,
                reason,
            });
        }
    }

    fn new_endpoint_id(&mut self) -> String {
        loop {
            self.next_id += 1;
            let id = format!("jn{:06x}", self.next_id);
            if !self.registrations.contains_key(&id) {
                return id;
            }
        }
    }

    fn rrj(&mut self, to: SocketAddr, n: u16, reason: h225::RegistrationRejectReason) {
        self.stats.unexpected += 1;
        let msg = m::rrj(n, self.gatekeeper_id.clone(), reason);
        self.send(to, &msg);
    }

    fn granted_ttl(&self, asked: Option<&h225::TimeToLive>) -> Option<Duration> {
        let max = self.config.time_to_live;
        if max.is_zero() {
            return None;
        }
        Some(asked.map_or(max, |t| Duration::from_secs(t.0.into()).min(max)))
    }

    fn on_rrq(&mut self, now: Instant, from: SocketAddr, n: u16, rrq: h225::RegistrationRequest) {
        use h225::RegistrationRejectReason as R;
        let ttl = self.granted_ttl(rrq.time_to_live.as_ref());
        let ttl_secs = ttl.map(|t| t.as_secs().clamp(1, u32::MAX.into()) as u32);
        if rrq.keep_alive == Some(true) {
            // Lightweight RRQ: refresh a known registration.
            let id = rrq
                .endpoint_identifier
                .as_ref()
                .map(|e| m::text(&e.0))
                .unwrap_or_default();
            let expires = self.expiry(now, ttl);
            let Some(reg) = self.registrations.get_mut(&id) else {
                return self.rrj(from, n, R::fullRegistrationRequired(()));
            };
            reg.expires = expires;
            reg.time_to_live = ttl;
            let (csa, aliases) = (
                self.config.call_signal_address,
                uuie::alias_list(&reg.aliases),
            );
            let Some(eid) = m::endpoint_identifier(&id) else {
                return;
            };
            let msg = m::rcf(n, csa, aliases, self.gatekeeper_id.clone(), eid, ttl_secs);
            return self.send(from, &msg);
        }
        if rrq
            .gatekeeper_identifier
            .as_ref()
            .is_some_and(|g| Some(g) != self.gatekeeper_id.as_ref())
        {
            return self.rrj(from, n, R::undefinedReason(()));
        }
        let call_signal = m::addresses(&rrq.call_signal_address);
        if call_signal.is_empty() {
            return self.rrj(from, n, R::invalidCallSignalAddress(()));
        }
        let ras = m::first_address(&rrq.ras_address).unwrap_or(from);
        let aliases: Vec<Alias> = uuie::aliases(&rrq.terminal_alias)
            .into_iter()
            .filter(|a| *a != Alias::Other)
            .collect();
        self.handle_timeout(now);
        // The same endpoint registering again (restarted) keeps its identifier.
        let existing = self
            .registrations
            .values()
            .find(|r| r.ras_address == ras || r.call_signal_addresses == call_signal)
            .map(|r| r.endpoint_id.clone());
        let taken: Vec<h225::AliasAddress> = self
            .registrations
            .values()
            .filter(|r| Some(&r.endpoint_id) != existing.as_ref())
            .flat_map(|r| r.aliases.iter().filter(|a| aliases.contains(a)))
            .filter_map(Alias::to_asn)
            .collect();
        if !taken.is_empty() {
            return self.rrj(from, n, R::duplicateAlias(taken));
        }
        if existing.is_none() && self.registrations.len() >= self.config.max_registrations {
            return self.rrj(from, n, R::resourceUnavailable(()));
        }
        let id = match existing {
            Some(id) => id,
            None => self.new_endpoint_id(),
        };
        let Some(eid) = m::endpoint_identifier(&id) else {
            return;
        };
        let msg = m::rcf(
            n,
            self.config.call_signal_address,
            rrq.terminal_alias.clone(),
            self.gatekeeper_id.clone(),
            eid,
            ttl_secs,
        );
        self.send(from, &msg);
        let reg = Registration {
            endpoint_id: id.clone(),
            aliases: aliases.clone(),
            call_signal_addresses: call_signal.clone(),
            ras_address: ras,
            vendor: uuie::vendor_of(&rrq.terminal_type)
                .or(Some(Vendor::from_asn(&rrq.endpoint_vendor))),
            time_to_live: ttl,
            expires: self.expiry(now, ttl),
        };
        self.registrations.insert(id.clone(), reg);
        self.events.push_back(GatekeeperEvent::Registered {
            endpoint_id: id,
            aliases,
            call_signal_address: call_signal.first().copied(),
        });
    }

    fn on_arq(&mut self, from: SocketAddr, n: u16, arq: h225::AdmissionRequest) {
        use h225::AdmissionRejectReason as R;
        let id = m::text(&arq.endpoint_identifier.0);
        let reject = if !self.registrations.contains_key(&id) {
            Some(R::callerNotRegistered(()))
        } else if self.calls.len() >= self.config.max_calls {
            Some(R::resourceUnavailable(()))
        } else {
            None
        };
        if let Some(reason) = reject {
            self.stats.unexpected += 1;
            return self.send(from, &m::arj(n, reason));
        }
        let bandwidth = arq.band_width.0.min(self.config.max_bandwidth);
        let call_identifier = arq
            .call_identifier
            .as_ref()
            .map(|c| Guid::from_asn(&c.guid));
        let conference_id = Guid::from_asn(&arq.conference_id.0);
        self.send(
            from,
            &m::acf(
                n,
                bandwidth,
                self.config.call_signal_address,
                self.config.irr_frequency,
            ),
        );
        let key = (id.clone(), call_identifier.unwrap_or(conference_id));
        if self.calls.insert(key, bandwidth).is_some() {
            return; // a retransmitted ARQ
        }
        self.events.push_back(GatekeeperEvent::Admitted {
            endpoint_id: id,
            call_identifier,
            conference_id,
            call_reference: arq.call_reference_value.0,
            answer_call: arq.answer_call,
            destination: uuie::aliases(&arq.destination_info),
            bandwidth,
        });
    }
}
