//! Building and reading RAS PDUs (H.225.0 §7): one constructor per message with the fields
//! jonction uses, every other field absent (the generated types are `#[non_exhaustive]` and
//! only built positionally, so the long lists of `None`s live here and nowhere else).

use std::net::SocketAddr;

use crate::h323::asn::h323_messages as h225;
use crate::h323::asn::h323_messages::RasMessage;
use crate::h323::asn::rasn;
use crate::h323::asn::rasn::types::BmpString;
use crate::h323::call::uuie::{self, Alias, Vendor};

/// Encodes a RAS message (aligned PER); `None` if a value breaks a constraint.
pub fn encode(msg: &RasMessage) -> Option<Vec<u8>> {
    rasn::aper::encode(msg).ok()
}

/// Decodes a RAS datagram; `None` if it is not a RAS message.
pub fn decode(bytes: &[u8]) -> Option<RasMessage> {
    rasn::aper::decode::<RasMessage>(bytes).ok()
}

/// A BMP string of at most 128 UTF-16 units (endpoint and gatekeeper identifiers).
pub fn bmp(s: &str) -> BmpString {
    let mut b = BmpString::default();
    b.extend(s.encode_utf16().take(128));
    b
}

/// A BMP string as text.
pub fn text(b: &BmpString) -> String {
    String::from_utf16_lossy(b)
}

/// An `EndpointIdentifier` (1..128 characters; `None` when empty).
pub fn endpoint_identifier(s: &str) -> Option<h225::EndpointIdentifier> {
    let b = bmp(s);
    (!b.is_empty()).then_some(h225::EndpointIdentifier(b))
}

/// A `GatekeeperIdentifier` (1..128 characters; `None` when empty).
pub fn gatekeeper_identifier(s: &str) -> Option<h225::GatekeeperIdentifier> {
    let b = bmp(s);
    (!b.is_empty()).then_some(h225::GatekeeperIdentifier(b))
}

/// The name of a CHOICE value (reject reasons, …): its variant name, without its payload.
pub fn choice_name(v: &impl std::fmt::Debug) -> String {
    let s = format!("{v:?}");
    s.split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The `requestSeqNum` of any RAS message that has one.
pub fn request_seq(m: &RasMessage) -> Option<u16> {
    use RasMessage as M;
    Some(match m {
        M::gatekeeperRequest(x) => x.request_seq_num.0,
        M::gatekeeperConfirm(x) => x.request_seq_num.0,
        M::gatekeeperReject(x) => x.request_seq_num.0,
        M::registrationRequest(x) => x.request_seq_num.0,
        M::registrationConfirm(x) => x.request_seq_num.0,
        M::registrationReject(x) => x.request_seq_num.0,
        M::unregistrationRequest(x) => x.request_seq_num.0,
        M::unregistrationConfirm(x) => x.request_seq_num.0,
        M::unregistrationReject(x) => x.request_seq_num.0,
        M::admissionRequest(x) => x.request_seq_num.0,
        M::admissionConfirm(x) => x.request_seq_num.0,
        M::admissionReject(x) => x.request_seq_num.0,
        M::bandwidthRequest(x) => x.request_seq_num.0,
        M::bandwidthConfirm(x) => x.request_seq_num.0,
        M::bandwidthReject(x) => x.request_seq_num.0,
        M::disengageRequest(x) => x.request_seq_num.0,
        M::disengageConfirm(x) => x.request_seq_num.0,
        M::disengageReject(x) => x.request_seq_num.0,
        M::locationRequest(x) => x.request_seq_num.0,
        M::locationConfirm(x) => x.request_seq_num.0,
        M::locationReject(x) => x.request_seq_num.0,
        M::infoRequest(x) => x.request_seq_num.0,
        M::infoRequestResponse(x) => x.request_seq_num.0,
        M::nonStandardMessage(x) => x.request_seq_num.0,
        M::unknownMessageResponse(x) => x.request_seq_num.0,
        M::requestInProgress(x) => x.request_seq_num.0,
        M::resourcesAvailableIndicate(x) => x.request_seq_num.0,
        M::resourcesAvailableConfirm(x) => x.request_seq_num.0,
        M::infoRequestAck(x) => x.request_seq_num.0,
        M::infoRequestNak(x) => x.request_seq_num.0,
        M::serviceControlIndication(x) => x.request_seq_num.0,
        M::serviceControlResponse(x) => x.request_seq_num.0,
        _ => return None,
    })
}

/// Whether a message is a request (GRQ, RRQ, …) that a gatekeeper or endpoint answers.
pub fn is_request(m: &RasMessage) -> bool {
    use RasMessage as M;
    matches!(
        m,
        M::gatekeeperRequest(_)
            | M::registrationRequest(_)
            | M::unregistrationRequest(_)
            | M::admissionRequest(_)
            | M::bandwidthRequest(_)
            | M::disengageRequest(_)
            | M::locationRequest(_)
            | M::infoRequest(_)
            | M::nonStandardMessage(_)
            | M::resourcesAvailableIndicate(_)
            | M::serviceControlIndication(_)
    )
}

/// The first usable address of a list.
pub fn first_address(list: &[h225::TransportAddress]) -> Option<SocketAddr> {
    list.iter().find_map(uuie::from_transport)
}

/// All usable addresses of a list.
pub fn addresses(list: &[h225::TransportAddress]) -> Vec<SocketAddr> {
    list.iter().filter_map(uuie::from_transport).collect()
}

fn seq(n: u16) -> h225::RequestSeqNum {
    h225::RequestSeqNum(n.max(1))
}

/// GRQ.
pub fn grq(
    n: u16,
    ras: SocketAddr,
    vendor: &Vendor,
    gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    aliases: &[Alias],
) -> RasMessage {
    RasMessage::gatekeeperRequest(h225::GatekeeperRequest::new(
        seq(n),
        uuie::protocol_identifier(),
        None,
        uuie::to_transport(ras),
        uuie::endpoint_type(vendor),
        gatekeeper_id,
        None,
        uuie::alias_list(aliases),
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
    ))
}

/// GCF.
pub fn gcf(
    n: u16,
    gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    ras: SocketAddr,
) -> RasMessage {
    RasMessage::gatekeeperConfirm(h225::GatekeeperConfirm::new(
        seq(n),
        uuie::protocol_identifier(),
        None,
        gatekeeper_id,
        uuie::to_transport(ras),
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
    ))
}

/// GRJ.
pub fn grj(
    n: u16,
    gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    reason: h225::GatekeeperRejectReason,
) -> RasMessage {
    RasMessage::gatekeeperReject(h225::GatekeeperReject::new(
        seq(n),
        uuie::protocol_identifier(),
        None,
        gatekeeper_id,
        reason,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// What an RRQ carries.
#[derive(Debug, Clone)]
pub struct RrqParams<'a> {
    /// Our call-signalling addresses.
    pub call_signal: &'a [SocketAddr],
    /// Our RAS address.
    pub ras: SocketAddr,
    /// Our vendor.
    pub vendor: &'a Vendor,
    /// Our aliases (none in a lightweight RRQ).
    pub aliases: &'a [Alias],
    /// The gatekeeper we register with.
    pub gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    /// `timeToLive` asked for, in seconds.
    pub time_to_live: Option<u32>,
    /// Lightweight RRQ: `keepAlive` TRUE with this `endpointIdentifier`.
    pub keep_alive: Option<h225::EndpointIdentifier>,
    /// A GRQ/GCF exchange preceded.
    pub discovery_complete: bool,
}

/// RRQ (full, or lightweight when [`RrqParams::keep_alive`] is set).
pub fn rrq(n: u16, p: RrqParams<'_>) -> RasMessage {
    let light = p.keep_alive.is_some();
    RasMessage::registrationRequest(h225::RegistrationRequest::new(
        seq(n),
        uuie::protocol_identifier(),
        None,
        p.discovery_complete,
        p.call_signal
            .iter()
            .map(|a| uuie::to_transport(*a))
            .collect(),
        vec![uuie::to_transport(p.ras)],
        uuie::endpoint_type(p.vendor),
        if light {
            None
        } else {
            uuie::alias_list(p.aliases)
        },
        p.gatekeeper_id,
        p.vendor.to_asn(),
        None,
        p.time_to_live.filter(|t| *t > 0).map(h225::TimeToLive),
        None,
        None,
        None,
        Some(light),
        p.keep_alive,
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
        None,
        None,
        None,
        None,
    ))
}

/// RCF.
pub fn rcf(
    n: u16,
    call_signal: SocketAddr,
    aliases: Option<Vec<h225::AliasAddress>>,
    gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    endpoint_id: h225::EndpointIdentifier,
    time_to_live: Option<u32>,
) -> RasMessage {
    RasMessage::registrationConfirm(h225::RegistrationConfirm::new(
        seq(n),
        uuie::protocol_identifier(),
        None,
        vec![uuie::to_transport(call_signal)],
        aliases,
        gatekeeper_id,
        endpoint_id,
        None,
        time_to_live.filter(|t| *t > 0).map(h225::TimeToLive),
        None,
        None,
        None,
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
    ))
}

/// RRJ.
pub fn rrj(
    n: u16,
    gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    reason: h225::RegistrationRejectReason,
) -> RasMessage {
    RasMessage::registrationReject(h225::RegistrationReject::new(
        seq(n),
        uuie::protocol_identifier(),
        None,
        reason,
        gatekeeper_id,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// URQ.
pub fn urq(
    n: u16,
    call_signal: &[SocketAddr],
    aliases: &[Alias],
    endpoint_id: Option<h225::EndpointIdentifier>,
    gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    reason: Option<h225::UnregRequestReason>,
) -> RasMessage {
    RasMessage::unregistrationRequest(h225::UnregistrationRequest::new(
        seq(n),
        call_signal.iter().map(|a| uuie::to_transport(*a)).collect(),
        uuie::alias_list(aliases),
        None,
        endpoint_id,
        None,
        gatekeeper_id,
        None,
        None,
        None,
        reason,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// UCF.
pub fn ucf(n: u16) -> RasMessage {
    RasMessage::unregistrationConfirm(h225::UnregistrationConfirm::new(
        seq(n),
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// URJ.
pub fn urj(n: u16, reason: h225::UnregRejectReason) -> RasMessage {
    RasMessage::unregistrationReject(h225::UnregistrationReject::new(
        seq(n),
        reason,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// What an ARQ carries.
#[derive(Debug, Clone)]
pub struct ArqParams<'a> {
    /// Our endpoint identifier.
    pub endpoint_id: h225::EndpointIdentifier,
    /// The gatekeeper's identifier.
    pub gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    /// The called aliases.
    pub destination: &'a [Alias],
    /// The called party's call-signalling address.
    pub dest_call_signal_address: Option<SocketAddr>,
    /// Our aliases (`srcInfo`).
    pub source: &'a [Alias],
    /// Our call-signalling address.
    pub src_call_signal_address: Option<SocketAddr>,
    /// Bandwidth in units of 100 bit/s.
    pub bandwidth: u32,
    /// Q.931 call reference value.
    pub call_reference: u16,
    /// `conferenceID`.
    pub conference_id: h225::ConferenceIdentifier,
    /// `callIdentifier`.
    pub call_identifier: h225::CallIdentifier,
    /// We answer the call (else we place it).
    pub answer_call: bool,
}

/// ARQ.
pub fn arq(n: u16, p: ArqParams<'_>) -> RasMessage {
    // srcInfo is mandatory: fall back on our call-signalling address as a transportID.
    let mut src_info = uuie::alias_list(p.source).unwrap_or_default();
    if src_info.is_empty() {
        if let Some(a) = p.src_call_signal_address {
            src_info.push(h225::AliasAddress::transportID(uuie::to_transport(a)));
        }
    }
    RasMessage::admissionRequest(h225::AdmissionRequest::new(
        seq(n),
        h225::CallType::pointToPoint(()),
        None,
        p.endpoint_id,
        uuie::alias_list(p.destination),
        p.dest_call_signal_address.map(uuie::to_transport),
        None,
        src_info,
        p.src_call_signal_address.map(uuie::to_transport),
        h225::BandWidth(p.bandwidth),
        h225::CallReferenceValue(p.call_reference),
        None,
        None,
        p.conference_id,
        false,
        p.answer_call,
        Some(false),
        Some(p.call_identifier),
        None,
        None,
        p.gatekeeper_id,
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
    ))
}

/// ACF (direct call model).
pub fn acf(
    n: u16,
    bandwidth: u32,
    dest_call_signal: SocketAddr,
    irr_frequency: Option<u16>,
) -> RasMessage {
    RasMessage::admissionConfirm(h225::AdmissionConfirm::new(
        seq(n),
        h225::BandWidth(bandwidth),
        h225::CallModel::direct(()),
        uuie::to_transport(dest_call_signal),
        irr_frequency.filter(|f| *f > 0),
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
    ))
}

/// ARJ.
pub fn arj(n: u16, reason: h225::AdmissionRejectReason) -> RasMessage {
    RasMessage::admissionReject(h225::AdmissionReject::new(
        seq(n),
        reason,
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
    ))
}

/// What a DRQ carries.
#[derive(Debug, Clone)]
pub struct DrqParams {
    /// Our endpoint identifier.
    pub endpoint_id: h225::EndpointIdentifier,
    /// The gatekeeper's identifier.
    pub gatekeeper_id: Option<h225::GatekeeperIdentifier>,
    /// `conferenceID`.
    pub conference_id: h225::ConferenceIdentifier,
    /// Q.931 call reference value.
    pub call_reference: u16,
    /// `callIdentifier`.
    pub call_identifier: h225::CallIdentifier,
    /// We answered the call.
    pub answered_call: bool,
    /// `disengageReason`.
    pub reason: h225::DisengageReason,
}

/// DRQ.
pub fn drq(n: u16, p: DrqParams) -> RasMessage {
    RasMessage::disengageRequest(h225::DisengageRequest::new(
        seq(n),
        p.endpoint_id,
        p.conference_id,
        h225::CallReferenceValue(p.call_reference),
        p.reason,
        None,
        Some(p.call_identifier),
        p.gatekeeper_id,
        None,
        None,
        None,
        Some(p.answered_call),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// DCF.
pub fn dcf(n: u16) -> RasMessage {
    RasMessage::disengageConfirm(h225::DisengageConfirm::new(
        seq(n),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// DRJ.
pub fn drj(n: u16, reason: h225::DisengageRejectReason) -> RasMessage {
    RasMessage::disengageReject(h225::DisengageReject::new(
        seq(n),
        reason,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// BCF.
pub fn bcf(n: u16, bandwidth: u32) -> RasMessage {
    RasMessage::bandwidthConfirm(h225::BandwidthConfirm::new(
        seq(n),
        h225::BandWidth(bandwidth),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// BRJ.
pub fn brj(n: u16, reason: h225::BandRejectReason, allowed: u32) -> RasMessage {
    RasMessage::bandwidthReject(h225::BandwidthReject::new(
        seq(n),
        reason,
        h225::BandWidth(allowed),
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// LRJ.
pub fn lrj(n: u16, reason: h225::LocationRejectReason) -> RasMessage {
    RasMessage::locationReject(h225::LocationReject::new(
        seq(n),
        reason,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ))
}

/// IRQ (`callReferenceValue` 0: all calls).
pub fn irq(n: u16, call_reference: u16, reply: Option<SocketAddr>) -> RasMessage {
    RasMessage::infoRequest(h225::InfoRequest::new(
        seq(n),
        h225::CallReferenceValue(call_reference),
        None,
        reply.map(uuie::to_transport),
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
    ))
}

/// One call of an IRR's `perCallInfo`.
#[derive(Debug, Clone)]
pub struct PerCall {
    /// Q.931 call reference value.
    pub call_reference: u16,
    /// `conferenceID`.
    pub conference_id: h225::ConferenceIdentifier,
    /// `callIdentifier`.
    pub call_identifier: h225::CallIdentifier,
    /// We placed the call.
    pub originator: bool,
    /// Bandwidth in units of 100 bit/s.
    pub bandwidth: u32,
    /// Our call-signalling address (`callSignalling.sendAddress`) and the peer's, if known.
    pub call_signalling: (Option<SocketAddr>, Option<SocketAddr>),
}

/// IRR.
#[allow(clippy::too_many_arguments)]
pub fn irr(
    n: u16,
    vendor: &Vendor,
    endpoint_id: h225::EndpointIdentifier,
    ras: SocketAddr,
    call_signal: &[SocketAddr],
    aliases: &[Alias],
    calls: &[PerCall],
    unsolicited: bool,
) -> RasMessage {
    let per_call = (!calls.is_empty()).then(|| {
        h225::InfoRequestResponsePerCallInfo(
            calls
                .iter()
                .map(|c| {
                    h225::AnonymousInfoRequestResponsePerCallInfo::new(
                        None,
                        h225::CallReferenceValue(c.call_reference),
                        c.conference_id.clone(),
                        Some(c.originator),
                        None,
                        None,
                        None,
                        h225::TransportChannelInfo::new(None, None),
                        h225::TransportChannelInfo::new(
                            c.call_signalling.0.map(uuie::to_transport),
                            c.call_signalling.1.map(uuie::to_transport),
                        ),
                        h225::CallType::pointToPoint(()),
                        h225::BandWidth(c.bandwidth),
                        h225::CallModel::direct(()),
                        Some(c.call_identifier.clone()),
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                    )
                })
                .collect(),
        )
    });
    RasMessage::infoRequestResponse(h225::InfoRequestResponse::new(
        None,
        seq(n),
        uuie::endpoint_type(vendor),
        endpoint_id,
        uuie::to_transport(ras),
        call_signal.iter().map(|a| uuie::to_transport(*a)).collect(),
        uuie::alias_list(aliases),
        per_call,
        None,
        None,
        None,
        Some(false),
        None,
        None,
        Some(unsolicited),
        None,
    ))
}

/// XRS (`unknownMessageResponse`), returning the bytes not understood.
pub fn xrs(n: u16, not_understood: &[u8]) -> RasMessage {
    RasMessage::unknownMessageResponse(h225::UnknownMessageResponse::new(
        seq(n),
        None,
        None,
        None,
        Some(
            not_understood[..not_understood.len().min(1024)]
                .to_vec()
                .into(),
        ),
    ))
}
