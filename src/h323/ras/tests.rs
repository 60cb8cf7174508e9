//! Endpoint ↔ Gatekeeper through their datagrams, captured PDUs, garbage.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::messages as m;
use super::*;
use crate::h323::asn::h323_messages as h225;
use crate::h323::asn::h323_messages::RasMessage;
use crate::h323::asn::rasn;
use crate::h323::call::uuie::{Alias, Guid};

const EP_RAS: &str = "10.0.0.2:1719";
const EP_CS: &str = "10.0.0.2:1720";
const GK_RAS: &str = "10.0.0.1:1719";
const GK_CS: &str = "10.0.0.1:1720";

fn a(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn ep_config(discover: bool) -> EndpointConfig {
    let mut c = EndpointConfig::new(a(EP_CS), a(EP_RAS), a(GK_RAS));
    c.aliases = vec![
        Alias::H323Id("jonction".into()),
        Alias::Digits("4420".into()),
    ];
    c.discover = discover;
    c
}

fn gk_config() -> GatekeeperConfig {
    GatekeeperConfig::new("jonction-gk", a(GK_RAS), a(GK_CS))
}

/// Decodes what a side sent, with the rasn decoder itself.
fn decode(b: &[u8]) -> RasMessage {
    rasn::aper::decode::<RasMessage>(b).expect("every PDU we send decodes")
}

fn name(msg: &RasMessage) -> String {
    m::choice_name(msg)
}

/// Carries every datagram between the two until both are quiet; returns the message names in
/// the order they were sent.
fn pump(now: Instant, ep: &mut Endpoint, gk: &mut Gatekeeper) -> Vec<String> {
    let ep_ras = ep.config().ras_address;
    let mut log = Vec::new();
    loop {
        let mut quiet = true;
        while let Some((to, b)) = ep.poll_transmit() {
            quiet = false;
            assert_eq!(to, a(GK_RAS));
            log.push(name(&decode(&b)));
            gk.handle_datagram(now, ep_ras, &b).expect("a RAS message");
        }
        while let Some((to, b)) = gk.poll_transmit() {
            quiet = false;
            assert_eq!(to, ep_ras);
            log.push(name(&decode(&b)));
            ep.handle_datagram(now, a(GK_RAS), &b)
                .expect("a RAS message");
        }
        if quiet {
            return log;
        }
    }
}

fn events(ep: &mut Endpoint) -> Vec<RasEvent> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

fn gk_events(gk: &mut Gatekeeper) -> Vec<GatekeeperEvent> {
    std::iter::from_fn(|| gk.poll_event()).collect()
}

/// A registered pair at `t`.
fn registered(t: Instant) -> (Endpoint, Gatekeeper) {
    let mut ep = Endpoint::new(ep_config(false));
    let mut gk = Gatekeeper::new(gk_config());
    ep.start(t);
    pump(t, &mut ep, &mut gk);
    assert!(ep.is_registered());
    events(&mut ep);
    gk_events(&mut gk);
    (ep, gk)
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn call(n: u8) -> AdmissionParams {
    AdmissionParams {
        call_reference: 100 + u16::from(n),
        call_identifier: Guid([n; 16]),
        conference_id: Guid([n + 1; 16]),
        answer_call: false,
        destination: vec![Alias::Digits("1234".into())],
        dest_call_signal_address: None,
        bandwidth: 100_000,
    }
}

#[test]
fn register_with_discovery() {
    let t = Instant::now();
    let mut ep = Endpoint::new(ep_config(true));
    let mut gk = Gatekeeper::new(gk_config());
    ep.start(t);
    let log = pump(t, &mut ep, &mut gk);
    assert_eq!(
        log,
        [
            "gatekeeperRequest",
            "gatekeeperConfirm",
            "registrationRequest",
            "registrationConfirm"
        ]
    );
    let ev = events(&mut ep);
    assert_eq!(
        ev[0],
        RasEvent::GatekeeperFound {
            gatekeeper_id: Some("jonction-gk".into()),
            ras_address: a(GK_RAS)
        }
    );
    let RasEvent::Registered {
        endpoint_id,
        gatekeeper_id,
        time_to_live,
    } = &ev[1]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(gatekeeper_id.as_deref(), Some("jonction-gk"));
    assert_eq!(*time_to_live, Some(s(300)));
    assert_eq!(ep.endpoint_id().as_ref(), Some(endpoint_id));
    let gev = gk_events(&mut gk);
    assert_eq!(
        gev,
        [GatekeeperEvent::Registered {
            endpoint_id: endpoint_id.clone(),
            aliases: ep_config(false).aliases,
            call_signal_address: Some(a(EP_CS)),
        }]
    );
    let reg = gk.registration(endpoint_id).expect("registered");
    assert_eq!(reg.ras_address, a(EP_RAS));
    assert_eq!(
        reg.vendor.as_ref().map(|v| v.product.as_str()),
        Some("jonction")
    );
    assert_eq!(
        gk.find_alias(&Alias::Digits("4420".into()))
            .map(|r| &r.endpoint_id),
        Some(endpoint_id)
    );
    // The keep-alive is due at 2/3 of the time to live.
    assert_eq!(ep.poll_timeout(), Some(t + s(200)));
}

#[test]
fn register_straight_with_capped_time_to_live() {
    let t = Instant::now();
    let mut ep = Endpoint::new(ep_config(false));
    let mut config = gk_config();
    config.time_to_live = s(60);
    let mut gk = Gatekeeper::new(config);
    ep.start(t);
    // The RRQ carries our addresses, aliases and the time to live asked for.
    let (_, b) = ep.poll_transmit().expect("RRQ");
    let RasMessage::registrationRequest(rrq) = decode(&b) else {
        panic!()
    };
    assert_eq!(rrq.time_to_live, Some(h225::TimeToLive(300)));
    assert_eq!(m::addresses(&rrq.call_signal_address), [a(EP_CS)]);
    assert_eq!(m::addresses(&rrq.ras_address), [a(EP_RAS)]);
    assert_eq!(rrq.terminal_alias.as_ref().map(Vec::len), Some(2));
    assert!(!rrq.discovery_complete);
    gk.handle_datagram(t, a(EP_RAS), &b).expect("a RAS message");
    let log = pump(t, &mut ep, &mut gk);
    assert_eq!(log, ["registrationConfirm"]);
    assert!(matches!(
        events(&mut ep)[..],
        [RasEvent::Registered { time_to_live: Some(ttl), .. }] if ttl == s(60)
    ));
    assert_eq!(ep.poll_timeout(), Some(t + s(40)));
    assert_eq!(gk.poll_timeout(), Some(t + s(60) + s(30)));
}

#[test]
fn lightweight_rrq_before_expiry() {
    let t = Instant::now();
    let (mut ep, mut gk) = registered(t);
    let id = ep.endpoint_id().expect("id");
    let t1 = t + s(200);
    ep.handle_timeout(t1);
    let (_, b) = ep.poll_transmit().expect("keep-alive");
    let RasMessage::registrationRequest(rrq) = decode(&b) else {
        panic!()
    };
    assert_eq!(rrq.keep_alive, Some(true));
    assert_eq!(rrq.endpoint_identifier, m::endpoint_identifier(&id));
    assert_eq!(
        rrq.gatekeeper_identifier,
        m::gatekeeper_identifier("jonction-gk")
    );
    assert_eq!(rrq.terminal_alias, None);
    gk.handle_datagram(t1, a(EP_RAS), &b)
        .expect("a RAS message");
    assert_eq!(pump(t1, &mut ep, &mut gk), ["registrationConfirm"]);
    assert_eq!(
        events(&mut ep),
        [RasEvent::Refreshed {
            time_to_live: Some(s(300))
        }]
    );
    assert!(
        gk_events(&mut gk).is_empty(),
        "a refresh is not a new registration"
    );
    assert_eq!(
        gk.registration(&id).and_then(|r| r.expires),
        Some(t1 + s(300))
    );
    assert_eq!(ep.poll_timeout(), Some(t1 + s(200)));
    // Without refreshes the gatekeeper drops it after the time to live and the grace.
    gk.handle_timeout(t1 + s(329));
    assert_eq!(gk.registrations().count(), 1);
    gk.handle_timeout(t1 + s(330));
    assert_eq!(gk.registrations().count(), 0);
    assert!(matches!(
        &gk_events(&mut gk)[..],
        [GatekeeperEvent::Unregistered { reason: "expired", endpoint_id, .. }] if *endpoint_id == id
    ));
}

#[test]
fn rejected_keep_alive_registers_fully() {
    let t = Instant::now();
    let (mut ep, _) = registered(t);
    // The gatekeeper restarted and forgot us.
    let mut gk = Gatekeeper::new(gk_config());
    let t1 = t + s(200);
    ep.handle_timeout(t1);
    let log = pump(t1, &mut ep, &mut gk);
    assert_eq!(
        log,
        [
            "registrationRequest",
            "registrationReject",
            "registrationRequest",
            "registrationConfirm"
        ]
    );
    assert!(matches!(events(&mut ep)[..], [RasEvent::Registered { .. }]));
    assert!(ep.is_registered());
    assert_eq!(gk.registrations().count(), 1);
}

#[test]
fn unanswered_keep_alive_registers_fully() {
    let t = Instant::now();
    let (mut ep, mut gk) = registered(t);
    let t1 = t + s(200);
    ep.handle_timeout(t1);
    let keep_alive = ep.poll_transmit().expect("keep-alive").1;
    for k in 1..=2 {
        ep.handle_timeout(t1 + s(3 * k));
        assert_eq!(
            ep.poll_transmit().map(|(_, b)| b).as_ref(),
            Some(&keep_alive)
        );
    }
    ep.handle_timeout(t1 + s(9));
    let (_, b) = ep.poll_transmit().expect("full RRQ");
    let RasMessage::registrationRequest(rrq) = decode(&b) else {
        panic!()
    };
    assert_eq!(rrq.keep_alive, Some(false));
    assert!(rrq.terminal_alias.is_some());
    gk.handle_datagram(t1 + s(9), a(EP_RAS), &b)
        .expect("a RAS message");
    pump(t1 + s(9), &mut ep, &mut gk);
    assert!(matches!(events(&mut ep)[..], [RasEvent::Registered { .. }]));
    assert_eq!(ep.stats().retransmissions, 2);
}

#[test]
fn admission_and_disengage() {
    let t = Instant::now();
    let (mut ep, mut gk) = registered(t);
    let id = ep.endpoint_id().expect("id");
    let seq = ep.admit(t, call(1)).expect("ARQ");
    assert_eq!(
        pump(t, &mut ep, &mut gk),
        ["admissionRequest", "admissionConfirm"]
    );
    assert_eq!(
        events(&mut ep),
        [RasEvent::Admitted {
            seq,
            call_identifier: Guid([1; 16]),
            dest_call_signal_address: Some(a(GK_CS)),
            bandwidth: 40_000,
            irr_frequency: None,
            gatekeeper_routed: false,
        }]
    );
    assert_eq!(
        gk_events(&mut gk),
        [GatekeeperEvent::Admitted {
            endpoint_id: id.clone(),
            call_identifier: Some(Guid([1; 16])),
            conference_id: Guid([2; 16]),
            call_reference: 101,
            answer_call: false,
            destination: vec![Alias::Digits("1234".into())],
            bandwidth: 40_000,
        }]
    );
    assert_eq!((ep.active_calls(), gk.active_calls()), (1, 1));
    let end = DisengageParams {
        call_identifier: Guid([1; 16]),
        conference_id: Guid([2; 16]),
        call_reference: 101,
        answered_call: false,
        reason: DisengageReason::Normal,
    };
    let seq = ep.disengage(t + s(60), end).expect("DRQ");
    assert_eq!(
        pump(t + s(60), &mut ep, &mut gk),
        ["disengageRequest", "disengageConfirm"]
    );
    assert_eq!(
        events(&mut ep),
        [RasEvent::Disengaged {
            seq,
            call_identifier: Guid([1; 16])
        }]
    );
    assert!(matches!(
        &gk_events(&mut gk)[..],
        [GatekeeperEvent::Disengaged {
            call_reference: 101,
            ..
        }]
    ));
    assert_eq!((ep.active_calls(), gk.active_calls()), (0, 0));
}

#[test]
fn admission_needs_a_registration() {
    let t = Instant::now();
    let mut ep = Endpoint::new(ep_config(false));
    assert_eq!(ep.admit(t, call(1)), Err(RasError::NotRegistered));
    // An ARQ from an endpoint the gatekeeper does not know: ARJ callerNotRegistered.
    let mut gk = Gatekeeper::new(gk_config());
    let arq = m::arq(
        7,
        m::ArqParams {
            endpoint_id: m::endpoint_identifier("nobody").expect("id"),
            gatekeeper_id: None,
            destination: &[],
            dest_call_signal_address: None,
            source: &[],
            src_call_signal_address: Some(a(EP_CS)),
            bandwidth: 640,
            call_reference: 1,
            conference_id: Guid([3; 16]).conference_id(),
            call_identifier: Guid([4; 16]).call_identifier(),
            answer_call: true,
        },
    );
    gk.handle_datagram(t, a(EP_RAS), &m::encode(&arq).expect("ARQ"))
        .expect("a RAS message");
    let (_, b) = gk.poll_transmit().expect("ARJ");
    let RasMessage::admissionReject(arj) = decode(&b) else {
        panic!()
    };
    assert_eq!(arj.request_seq_num.0, 7);
    assert_eq!(m::choice_name(&arj.reject_reason), "callerNotRegistered");
}

#[test]
fn admission_rejected_and_timed_out() {
    let t = Instant::now();
    let (mut ep, mut gk) = registered(t);
    // The gatekeeper forgets us: ARJ.
    let id = ep.endpoint_id().expect("id");
    assert!(gk.unregister(&id));
    let _ = gk.poll_transmit();
    let seq = ep.admit(t, call(1)).expect("ARQ");
    pump(t, &mut ep, &mut gk);
    assert_eq!(
        events(&mut ep),
        [RasEvent::AdmissionRejected {
            seq,
            call_identifier: Guid([1; 16]),
            reason: "callerNotRegistered".into()
        }]
    );
    // No answer: three sends, then a timeout.
    let seq = ep.admit(t, call(2)).expect("ARQ");
    for k in 0..3 {
        ep.handle_timeout(t + s(3 * k));
        assert!(ep.poll_transmit().is_some());
        assert!(ep.poll_event().is_none());
    }
    ep.handle_timeout(t + s(9));
    assert!(ep.poll_transmit().is_none());
    assert_eq!(
        events(&mut ep),
        [RasEvent::AdmissionRejected {
            seq,
            call_identifier: Guid([2; 16]),
            reason: "timeout".into()
        }]
    );
}

#[test]
fn info_request_answered_with_calls() {
    let t = Instant::now();
    let (mut ep, mut gk) = registered(t);
    let id = ep.endpoint_id().expect("id");
    ep.admit(t, call(1)).expect("ARQ");
    ep.admit(t, call(2)).expect("ARQ");
    pump(t, &mut ep, &mut gk);
    gk_events(&mut gk);
    assert!(gk.info_request(&id, 0));
    assert_eq!(
        pump(t, &mut ep, &mut gk),
        ["infoRequest", "infoRequestResponse"]
    );
    assert_eq!(
        gk_events(&mut gk),
        [GatekeeperEvent::InfoResponse {
            endpoint_id: id.clone(),
            calls: 2
        }]
    );
    // One call by its call reference.
    assert!(gk.info_request(&id, 102));
    let (_, irq) = gk.poll_transmit().expect("IRQ");
    ep.handle_datagram(t, a(GK_RAS), &irq)
        .expect("a RAS message");
    let (to, b) = ep.poll_transmit().expect("IRR");
    assert_eq!(to, a(GK_RAS));
    let RasMessage::infoRequestResponse(irr) = decode(&b) else {
        panic!()
    };
    let calls = irr.per_call_info.expect("perCallInfo").0;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].call_reference_value.0, 102);
    assert_eq!(m::addresses(&irr.call_signal_address), [a(EP_CS)]);
    assert_eq!(irr.endpoint_alias.map(|v| v.len()), Some(2));
}

#[test]
fn unregister_on_shutdown() {
    let t = Instant::now();
    let (mut ep, mut gk) = registered(t);
    ep.unregister(t);
    assert_eq!(
        pump(t, &mut ep, &mut gk),
        ["unregistrationRequest", "unregistrationConfirm"]
    );
    assert_eq!(
        events(&mut ep),
        [RasEvent::Unregistered {
            by_gatekeeper: false,
            reason: None
        }]
    );
    assert!(matches!(
        &gk_events(&mut gk)[..],
        [GatekeeperEvent::Unregistered { reason: "urq", .. }]
    ));
    assert_eq!(gk.registrations().count(), 0);
    assert!(!ep.is_registered());
    assert_eq!(ep.poll_timeout(), None);
    assert_eq!(gk.poll_timeout(), None);
    // Unanswered URQ: Unregistered after the retries.
    let (mut ep, _) = registered(t);
    ep.unregister(t);
    for k in 0..=3 {
        ep.handle_timeout(t + s(3 * k));
    }
    assert_eq!(
        events(&mut ep),
        [RasEvent::Unregistered {
            by_gatekeeper: false,
            reason: Some("timeout".into())
        }]
    );
    // Not registered: at once.
    let mut ep = Endpoint::new(ep_config(false));
    ep.unregister(t);
    assert!(ep.poll_transmit().is_none());
    assert_eq!(
        events(&mut ep),
        [RasEvent::Unregistered {
            by_gatekeeper: false,
            reason: None
        }]
    );
}

#[test]
fn unregistered_by_the_gatekeeper_then_registers_again() {
    let t = Instant::now();
    let (mut ep, mut gk) = registered(t);
    let id = ep.endpoint_id().expect("id");
    assert!(gk.unregister(&id));
    assert_eq!(
        pump(t, &mut ep, &mut gk),
        ["unregistrationRequest", "unregistrationConfirm"]
    );
    assert_eq!(
        events(&mut ep),
        [RasEvent::Unregistered {
            by_gatekeeper: true,
            reason: Some("maintenance".into())
        }]
    );
    assert!(!ep.is_registered());
    assert_eq!(ep.poll_timeout(), Some(t + s(5)));
    ep.handle_timeout(t + s(5));
    assert_eq!(
        pump(t + s(5), &mut ep, &mut gk),
        ["registrationRequest", "registrationConfirm"]
    );
    assert!(ep.is_registered());
    assert_ne!(ep.endpoint_id(), Some(id), "a new registration");
    assert_eq!(gk.registrations().count(), 1);
}

#[test]
fn lost_rrq_is_retransmitted() {
    let t = Instant::now();
    let mut ep = Endpoint::new(ep_config(false));
    let mut gk = Gatekeeper::new(gk_config());
    ep.start(t);
    let lost = ep.poll_transmit().expect("RRQ").1;
    assert_eq!(ep.poll_timeout(), Some(t + s(3)));
    ep.handle_timeout(t + s(3));
    let (to, again) = ep.poll_transmit().expect("RRQ again");
    assert_eq!((to, &again), (a(GK_RAS), &lost));
    gk.handle_datagram(t + s(3), a(EP_RAS), &again)
        .expect("a RAS message");
    pump(t + s(3), &mut ep, &mut gk);
    assert!(ep.is_registered());
    assert_eq!(ep.stats().retransmissions, 1);
    // A late duplicate answer matches nothing.
    gk.handle_datagram(t + s(4), a(EP_RAS), &lost)
        .expect("a RAS message");
    let (_, rcf) = gk.poll_transmit().expect("RCF");
    ep.handle_datagram(t + s(4), a(GK_RAS), &rcf)
        .expect("a RAS message");
    assert_eq!(ep.stats().unmatched, 1);
    assert!(events(&mut ep)
        .iter()
        .all(|e| matches!(e, RasEvent::Registered { .. })));
}

#[test]
fn no_gatekeeper_backs_off() {
    let t = Instant::now();
    let mut ep = Endpoint::new(ep_config(true));
    ep.start(t);
    let mut sent = 0;
    for k in 0..=3 {
        ep.handle_timeout(t + s(3 * k));
        sent += std::iter::from_fn(|| ep.poll_transmit()).count();
    }
    assert_eq!(sent, 3, "GRQ and two retries");
    assert_eq!(
        events(&mut ep),
        [RasEvent::RegistrationFailed {
            reason: "timeout".into(),
            retry_at: t + s(9) + s(10)
        }]
    );
    assert_eq!(ep.poll_timeout(), Some(t + s(19)));
    ep.handle_timeout(t + s(19));
    let (to, b) = ep.poll_transmit().expect("GRQ");
    assert_eq!(to, a(GK_RAS));
    assert!(matches!(decode(&b), RasMessage::gatekeeperRequest(_)));
}

#[test]
fn rejected_then_retried() {
    let t = Instant::now();
    let mut ep = Endpoint::new(ep_config(false));
    let mut config = gk_config();
    config.max_registrations = 0;
    let mut full = Gatekeeper::new(config);
    ep.start(t);
    assert_eq!(
        pump(t, &mut ep, &mut full),
        ["registrationRequest", "registrationReject"]
    );
    assert_eq!(
        events(&mut ep),
        [RasEvent::RegistrationFailed {
            reason: "resourceUnavailable".into(),
            retry_at: t + s(10)
        }]
    );
    assert_eq!(ep.poll_timeout(), Some(t + s(10)));
    let mut gk = Gatekeeper::new(gk_config());
    ep.handle_timeout(t + s(10));
    assert_eq!(
        pump(t + s(10), &mut ep, &mut gk),
        ["registrationRequest", "registrationConfirm"]
    );
    assert!(ep.is_registered());
}

#[test]
fn duplicate_alias_refused() {
    let t = Instant::now();
    let (_, mut gk) = registered(t);
    let mut config = ep_config(false);
    config.ras_address = a("10.0.0.3:1719");
    config.call_signal_address = a("10.0.0.3:1720");
    let mut other = Endpoint::new(config);
    other.start(t);
    assert_eq!(
        pump(t, &mut other, &mut gk),
        ["registrationRequest", "registrationReject"]
    );
    assert!(matches!(
        &events(&mut other)[..],
        [RasEvent::RegistrationFailed { reason, .. }] if reason == "duplicateAlias"
    ));
    assert_eq!(gk.registrations().count(), 1);
}

/// callgen323's RRQ (frame 61), with the identifier of the OpenH323 gatekeeper it names
/// removed (as if it had discovered ours).
fn captured_rrq_for_us() -> Vec<u8> {
    let pdu = hex(include_str!(
        "../../../tests/data/h323/ndpi/frame61-registrationRequest.hex"
    ));
    let RasMessage::registrationRequest(mut rrq) = decode(&pdu) else {
        panic!()
    };
    assert!(rrq.gatekeeper_identifier.is_some());
    rrq.gatekeeper_identifier = None;
    m::encode(&RasMessage::registrationRequest(rrq)).expect("RRQ")
}

#[test]
fn gatekeeper_answers_captured_pdus() {
    let t = Instant::now();
    let mut gk = Gatekeeper::new(gk_config());
    let from = a("17.2.0.124:2034");
    let answer = |gk: &mut Gatekeeper, pdu: &str| {
        gk.handle_datagram(t, from, &hex(pdu))
            .expect("a RAS message");
        let (to, b) = gk.poll_transmit().expect("an answer");
        assert_eq!(to, from);
        decode(&b)
    };
    // callgen323's GRQ (with the empty integrity OID) and RRQ.
    let gcf = answer(
        &mut gk,
        include_str!("../../../tests/data/h323/ndpi/frame59-gatekeeperRequest.hex"),
    );
    assert!(matches!(gcf, RasMessage::gatekeeperConfirm(ref c) if c.request_seq_num.0 == 1));
    // As captured, it names another gatekeeper: rejected.
    let rrj = answer(
        &mut gk,
        include_str!("../../../tests/data/h323/ndpi/frame61-registrationRequest.hex"),
    );
    assert!(matches!(rrj, RasMessage::registrationReject(ref r) if r.request_seq_num.0 == 2));
    assert_eq!(gk.registrations().count(), 0);
    gk.handle_datagram(t, from, &captured_rrq_for_us())
        .expect("a RAS message");
    let rcf = decode(&gk.poll_transmit().expect("RCF").1);
    let RasMessage::registrationConfirm(rcf) = rcf else {
        panic!("{rcf:?}")
    };
    assert_eq!(rcf.request_seq_num.0, 2);
    assert!(rcf.terminal_alias.is_some(), "aliases echoed");
    let reg = gk.registrations().next().expect("registered").clone();
    // Its only alias is a mobileUIM one, which jonction does not route on.
    assert!(reg.aliases.is_empty());
    assert_eq!(reg.call_signal_addresses, [a("17.2.0.124:1720")]);
    assert!(matches!(
        &gk_events(&mut gk)[..],
        [GatekeeperEvent::Registered { .. }]
    ));
    // Its ARQ names the endpoint identifier the OpenH323 gatekeeper gave it: not ours.
    let arj = answer(
        &mut gk,
        include_str!("../../../tests/data/h323/ndpi/frame63-admissionRequest.hex"),
    );
    let RasMessage::admissionReject(arj) = arj else {
        panic!("{arj:?}")
    };
    assert_eq!(m::choice_name(&arj.reject_reason), "callerNotRegistered");
    // The Tandberg keep-alive for a registration we never made.
    let rrj = answer(
        &mut gk,
        include_str!("../../../tests/data/h323/ndpi/frame71-registrationRequest.hex"),
    );
    let RasMessage::registrationReject(rrj) = rrj else {
        panic!("{rrj:?}")
    };
    assert_eq!(
        m::choice_name(&rrj.reject_reason),
        "fullRegistrationRequired"
    );
    // A gatekeeper's IRQ sent to a gatekeeper: not understood.
    let xrs = answer(
        &mut gk,
        include_str!("../../../tests/data/h323/ndpi/frame67-infoRequest.hex"),
    );
    assert!(
        matches!(xrs, RasMessage::unknownMessageResponse(_)),
        "{xrs:?}"
    );
}

#[test]
fn gatekeeper_admits_a_captured_arq_once_registered() {
    // The captured ARQ, with its endpoint identifier replaced by the one we gave: ACF to us.
    let t = Instant::now();
    let mut gk = Gatekeeper::new(gk_config());
    let from = a("17.2.0.124:2034");
    gk.handle_datagram(t, from, &captured_rrq_for_us())
        .expect("a RAS message");
    let _ = gk.poll_transmit();
    let id = gk
        .registrations()
        .next()
        .expect("registered")
        .endpoint_id
        .clone();
    let RasMessage::admissionRequest(mut arq) = decode(&hex(include_str!(
        "../../../tests/data/h323/ndpi/frame63-admissionRequest.hex"
    ))) else {
        panic!()
    };
    arq.endpoint_identifier = m::endpoint_identifier(&id).expect("id");
    let bytes = m::encode(&RasMessage::admissionRequest(arq)).expect("ARQ");
    gk.handle_datagram(t, from, &bytes).expect("a RAS message");
    let (_, b) = gk.poll_transmit().expect("ACF");
    let RasMessage::admissionConfirm(acf) = decode(&b) else {
        panic!()
    };
    assert_eq!(acf.request_seq_num.0, 3);
    assert_eq!(
        crate::h323::call::uuie::from_transport(&acf.dest_call_signal_address),
        Some(a(GK_CS))
    );
    assert!(gk_events(&mut gk)
        .iter()
        .any(|e| matches!(e, GatekeeperEvent::Admitted { .. })));
}

#[test]
fn endpoint_answers_captured_gatekeeper_requests() {
    // The OpenH323 gatekeeper's IRQ and DRQ, to an endpoint registered with that identifier.
    let t = Instant::now();
    let RasMessage::disengageRequest(drq) = decode(&hex(include_str!(
        "../../../tests/data/h323/ndpi/frame69-disengageRequest.hex"
    ))) else {
        panic!()
    };
    let mut ep = Endpoint::new(ep_config(false));
    ep.start(t);
    let (_, b) = ep.poll_transmit().expect("RRQ");
    let RasMessage::registrationRequest(rrq) = decode(&b) else {
        panic!()
    };
    let rcf = m::rcf(
        rrq.request_seq_num.0,
        a(GK_CS),
        None,
        None,
        drq.endpoint_identifier.clone(),
        None,
    );
    ep.handle_datagram(t, a(GK_RAS), &m::encode(&rcf).expect("RCF"))
        .expect("a RAS message");
    assert!(ep.is_registered());
    assert_eq!(ep.poll_timeout(), None, "no time to live, no keep-alive");
    events(&mut ep);
    ep.handle_datagram(
        t,
        a(GK_RAS),
        &hex(include_str!(
            "../../../tests/data/h323/ndpi/frame67-infoRequest.hex"
        )),
    )
    .expect("a RAS message");
    let (_, b) = ep.poll_transmit().expect("IRR");
    assert!(
        matches!(decode(&b), RasMessage::infoRequestResponse(ref r) if r.request_seq_num.0 == 4180)
    );
    ep.handle_datagram(
        t,
        a(GK_RAS),
        &hex(include_str!(
            "../../../tests/data/h323/ndpi/frame69-disengageRequest.hex"
        )),
    )
    .expect("a RAS message");
    let (_, b) = ep.poll_transmit().expect("DCF");
    assert!(
        matches!(decode(&b), RasMessage::disengageConfirm(ref c) if c.request_seq_num.0 == 4181)
    );
    assert!(matches!(
        events(&mut ep)[..],
        [RasEvent::DisengageRequested { .. }]
    ));
    // Captured confirms match nothing of ours.
    for pdu in [
        include_str!("../../../tests/data/h323/ndpi/frame60-gatekeeperConfirm.hex"),
        include_str!("../../../tests/data/h323/ndpi/frame64-admissionConfirm.hex"),
        include_str!("../../../tests/data/h323/ndpi/frame72-registrationConfirm.hex"),
    ] {
        ep.handle_datagram(t, a(GK_RAS), &hex(pdu))
            .expect("a RAS message");
    }
    assert!(ep.poll_transmit().is_none());
    assert_eq!(ep.stats().unmatched, 3);
}

#[test]
fn garbage_never_panics() {
    let t = Instant::now();
    let (mut ep, mut gk) = registered(t);
    let mut inputs: Vec<Vec<u8>> = vec![Vec::new(), vec![0], vec![0xff; 3], vec![0x55; 1500]];
    let mut x: u32 = 0x1234_5678;
    for len in [1usize, 2, 5, 17, 64, 300] {
        for _ in 0..50 {
            inputs.push(
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect(),
            );
        }
    }
    for pdu in [
        include_str!("../../../tests/data/h323/ndpi/frame61-registrationRequest.hex"),
        include_str!("../../../tests/data/h323/ndpi/frame63-admissionRequest.hex"),
        include_str!("../../../tests/data/h323/ndpi/frame67-infoRequest.hex"),
        include_str!("../../../tests/data/h323/ndpi/frame73-registrationRequest.hex"),
    ] {
        let pdu = hex(pdu);
        for len in 0..pdu.len() {
            inputs.push(pdu[..len].to_vec());
        }
        for i in 0..pdu.len() {
            let mut bad = pdu.clone();
            bad[i] ^= 0xa5;
            inputs.push(bad);
        }
    }
    let mut refused = 0;
    for b in &inputs {
        refused += usize::from(ep.handle_datagram(t, a(GK_RAS), b).is_err());
        refused += usize::from(gk.handle_datagram(t, a(EP_RAS), b).is_err());
    }
    // Whatever they answered decodes.
    while let Some((_, b)) = ep.poll_transmit() {
        decode(&b);
    }
    while let Some((_, b)) = gk.poll_transmit() {
        decode(&b);
    }
    assert!(ep.stats().malformed > 100);
    assert!(gk.stats().malformed > 100);
    assert_eq!(
        refused as u64,
        ep.stats().malformed + gk.stats().malformed,
        "every malformed datagram is reported"
    );
    ep.handle_timeout(t + s(1000));
    gk.handle_timeout(t + s(1000));
}

#[test]
fn endpoint_answers_other_requests_with_xrs() {
    let t = Instant::now();
    let (mut ep, _) = registered(t);
    let grq = m::grq(
        9,
        a(GK_RAS),
        &crate::h323::call::Vendor::jonction(),
        None,
        &[],
    );
    ep.handle_datagram(t, a(GK_RAS), &m::encode(&grq).expect("GRQ"))
        .expect("a RAS message");
    let (_, b) = ep.poll_transmit().expect("XRS");
    let RasMessage::unknownMessageResponse(x) = decode(&b) else {
        panic!()
    };
    assert_eq!(x.request_seq_num.0, 9);
}

#[test]
fn unsolicited_irrs_at_the_irr_frequency() {
    let t = Instant::now();
    let mut ep = Endpoint::new(ep_config(false));
    let mut config = gk_config();
    config.irr_frequency = Some(30);
    let mut gk = Gatekeeper::new(config);
    ep.start(t);
    pump(t, &mut ep, &mut gk);
    ep.admit(t, call(1)).expect("ARQ");
    pump(t, &mut ep, &mut gk);
    assert!(events(&mut ep).iter().any(|e| matches!(
        e,
        RasEvent::Admitted { irr_frequency: Some(f), .. } if *f == s(30)
    )));
    gk_events(&mut gk);
    assert_eq!(ep.poll_timeout(), Some(t + s(30)));
    ep.handle_timeout(t + s(30));
    let (to, b) = ep.poll_transmit().expect("IRR");
    assert_eq!(to, a(GK_RAS));
    let RasMessage::infoRequestResponse(irr) = decode(&b) else {
        panic!()
    };
    assert_eq!(irr.unsolicited, Some(true));
    gk.handle_datagram(t + s(30), a(EP_RAS), &b)
        .expect("a RAS message");
    assert!(matches!(
        &gk_events(&mut gk)[..],
        [GatekeeperEvent::InfoResponse { calls: 1, .. }]
    ));
    assert_eq!(ep.poll_timeout(), Some(t + s(60)));
    // None once the call is disengaged.
    let end = DisengageParams {
        call_identifier: Guid([1; 16]),
        conference_id: Guid([2; 16]),
        call_reference: 101,
        ..Default::default()
    };
    ep.disengage(t + s(40), end).expect("DRQ");
    pump(t + s(40), &mut ep, &mut gk);
    assert_eq!(ep.poll_timeout(), Some(t + s(200)), "the keep-alive only");
}

/// RAS PDUs encoded by pycrate (an independent ASN.1 stack): a full RRQ, lightweight ones
/// (keepAlive, endpointIdentifier as an extension addition) and an ARQ of root components
/// decode. Its ARQ with extension additions is malformed (open types of length 0: Wireshark
/// says so too) and is refused, not misread.
#[test]
fn pycrate_pdus() {
    let good = [
        "0e400000060008914a00078001000ac80002071c01000ac80002071b0201c0006a006f006e006300740069006f006e00b5000000348b00000002003b010001000100",
        "0e400000060008914a00078001000ac80002071c01000ac80002071b0201c0006a006f006e006300740069006f006e00b5000000348b00000002003b018001000100",
        "0e400000060008914a00078001000ac80002071c01000ac80002071b0201c0006a006f006e006300740069006f006e00b5000000348f00000002003b0180110e006a006e00300030003000300030003101000100",
        "2480006701c0006a006e003000300030003000300031014008007200610073002d00310032003300340035014007007200610073002d0072006f006f006d40050000072222222222222222222222222222222200",
    ];
    let bad = "2680006701c0006a006e003000300030003000300031014008007200610073002d00310032003300340035014007007200610073002d0072006f006f006d400500000722222222222222222222222222222222096020000001001100111111111111111111111111111111110100";
    let bytes = |hex: &str| -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    };
    for hex in good {
        let r = rasn::aper::decode::<RasMessage>(&bytes(hex));
        assert!(r.is_ok(), "{hex}: {r:?}");
    }
    assert!(rasn::aper::decode::<RasMessage>(&bytes(bad)).is_err());
}
