//! Back-to-back tests of the call state machine: a caller and a callee wired through bytes,
//! real Setups from other stacks, bad input and timers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::h323::asn::h323_messages as h225;
use crate::h323::asn::rasn;
use crate::h323::h245::{AudioCodec, Codec};
use crate::h323::q931::{ie, Message, MessageType};
use crate::h323::tpkt::{self, TpktReader, MAX_TPKT};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn hex(s: &str) -> Vec<u8> {
    let d: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    d.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

/// Moves bytes both ways until both sides are quiet.
fn pump(a: &mut Call, b: &mut Call, now: Instant) {
    loop {
        let mut moved = false;
        while let Some(x) = a.poll_transmit() {
            b.handle_input(now, &x);
            moved = true;
        }
        while let Some(x) = b.poll_transmit() {
            a.handle_input(now, &x);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

fn events(c: &mut Call) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// The Q.931 messages in `c`'s pending output.
fn sent(c: &mut Call) -> Vec<Message> {
    let mut r = TpktReader::new(MAX_TPKT);
    while let Some(b) = c.poll_transmit() {
        r.push(&b);
    }
    std::iter::from_fn(|| r.next_pdu().expect("our TPKT"))
        .map(|p| Message::decode(&p).expect("our Q.931"))
        .collect()
}

fn uu(m: &Message) -> h225::H323UserInformation {
    rasn::aper::decode(m.user_user().expect("UUIE")).expect("our PER")
}

fn incoming(evs: &[Event]) -> IncomingCall {
    evs.iter()
        .find_map(|e| match e {
            Event::IncomingCall(c) => Some((**c).clone()),
            _ => None,
        })
        .expect("an IncomingCall event")
}

fn audio(direction: Direction, codec: AudioCodec) -> Proposal {
    Proposal {
        direction,
        codec: Codec::Audio { codec, frames: 20 },
        payload_type: None,
        rtp: addr("192.0.2.1:5000"),
        rtcp: addr("192.0.2.1:5001"),
    }
}

fn pcma() -> Codec {
    Codec::Audio {
        codec: AudioCodec::Pcma,
        frames: 20,
    }
}

fn dial_params(fast_start: Vec<Proposal>) -> DialParams {
    DialParams {
        call_reference: 0x1234,
        conference_id: Guid([1; 16]),
        call_identifier: Guid([2; 16]),
        destination: vec![
            Alias::Digits("4321".into()),
            Alias::Url("h323:4321@gw".into()),
        ],
        called_number: Some("4321".into()),
        source: vec![Alias::H323Id("Salle Poly".into())],
        calling_number: Some("100".into()),
        display: Some("Salle".into()),
        dest_call_signal_address: Some(addr("198.51.100.2:1720")),
        source_call_signal_address: Some(addr("192.0.2.1:40000")),
        fast_start,
        h245_address: None,
    }
}

/// A caller and a callee up to the callee's IncomingCall.
fn setup(caller_cfg: Config, p: &DialParams, now: Instant) -> (Call, Call, IncomingCall) {
    let mut caller = Call::dial(caller_cfg, p, now).expect("dial");
    let mut callee = Call::accept(Config::default());
    pump(&mut caller, &mut callee, now);
    let call = incoming(&events(&mut callee));
    (caller, callee, call)
}

#[test]
fn fast_start_accepted_carries_both_directions_and_addresses() {
    let now = Instant::now();
    let p = dial_params(vec![
        audio(Direction::CallerToCallee, AudioCodec::G722),
        audio(Direction::CallerToCallee, AudioCodec::Pcma),
        audio(Direction::CalleeToCaller, AudioCodec::G722),
        audio(Direction::CalleeToCaller, AudioCodec::Pcma),
    ]);
    let (mut caller, mut callee, call) = setup(Config::default(), &p, now);
    assert_eq!(call.call_reference, 0x1234);
    assert_eq!(
        (call.conference_id, call.call_identifier),
        (Guid([1; 16]), Some(Guid([2; 16])))
    );
    assert_eq!(call.called, p.destination);
    assert_eq!(call.called_number.as_deref(), Some("4321"));
    assert_eq!(call.caller, p.source);
    assert_eq!(call.calling_number.as_deref(), Some("100"));
    assert_eq!(call.display.as_deref(), Some("Salle"));
    assert_eq!(
        call.vendor.as_ref().map(|v| v.product.as_str()),
        Some("jonction")
    );
    assert_eq!(call.protocol_version, Some(4));
    assert_eq!(
        call.dest_call_signal_address,
        Some(addr("198.51.100.2:1720"))
    );
    let kinds: Vec<_> = call
        .fast_start
        .iter()
        .map(|c| match c.codec {
            Some(Codec::Audio { codec, .. }) => (c.direction, Some(codec)),
            _ => (c.direction, None),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Direction::CallerToCallee, Some(AudioCodec::G722)),
            (Direction::CallerToCallee, Some(AudioCodec::Pcma)),
            (Direction::CalleeToCaller, Some(AudioCodec::G722)),
            (Direction::CalleeToCaller, Some(AudioCodec::Pcma)),
        ]
    );
    assert_eq!(call.fast_start[2].rtp, Some(addr("192.0.2.1:5000")));
    assert_eq!(call.fast_start[0].rtcp, Some(addr("192.0.2.1:5001")));

    callee.proceeding().expect("proceeding");
    callee.alerting().expect("alerting");
    // Two channels for one session and direction are refused.
    let twice = ConnectParams {
        fast_start: FastStartReply::Accept(vec![
            (0, addr("198.51.100.2:7000"), addr("198.51.100.2:7001")),
            (1, addr("198.51.100.2:7000"), addr("198.51.100.2:7001")),
        ]),
        h245_tunnelling: true,
        ..ConnectParams::default()
    };
    assert!(matches!(
        callee.connect(&twice),
        Err(CallError::FastStart(_))
    ));
    let ok = ConnectParams {
        fast_start: FastStartReply::Accept(vec![
            (1, addr("198.51.100.2:7000"), addr("198.51.100.2:7001")),
            (3, addr("198.51.100.2:7002"), addr("198.51.100.2:7003")),
        ]),
        h245_tunnelling: true,
        ..ConnectParams::default()
    };
    callee.connect(&ok).expect("connect");
    pump(&mut caller, &mut callee, now);
    assert_eq!(
        (caller.state(), callee.state()),
        (State::Active, State::Active)
    );
    let evs = events(&mut caller);
    assert!(matches!(evs[0], Event::Proceeding(_)), "{evs:?}");
    assert!(matches!(evs[1], Event::Alerting(_)), "{evs:?}");
    let Some(Event::FastStart(chosen)) = evs.get(2) else {
        panic!("no FastStart in {evs:?}");
    };
    assert_eq!(chosen.len(), 2);
    let tx = chosen
        .iter()
        .find(|c| c.direction == Direction::CallerToCallee)
        .expect("caller's sending channel");
    assert_eq!((tx.codec, tx.session_id), (Some(pcma()), 1));
    assert_eq!(
        tx.rtp,
        Some(addr("198.51.100.2:7000")),
        "where the caller sends RTP"
    );
    assert_eq!(tx.rtcp, Some(addr("198.51.100.2:7001")));
    let rx = chosen
        .iter()
        .find(|c| c.direction == Direction::CalleeToCaller)
        .expect("caller's receiving channel");
    assert_eq!(rx.codec, Some(pcma()));
    assert_eq!(
        rx.rtp,
        Some(addr("192.0.2.1:5000")),
        "where the callee sends RTP"
    );
    assert_eq!(rx.rtcp, Some(addr("198.51.100.2:7003")));
    let Some(Event::Connected(a)) = evs.get(3) else {
        panic!("no Connected in {evs:?}");
    };
    assert!(a.h245_tunnelling && !a.fast_connect_refused);
    assert_eq!(a.fast_start, *chosen);
    assert_eq!(
        a.vendor.as_ref().map(|v| v.product.as_str()),
        Some("jonction")
    );
    assert!(!evs.iter().any(|e| matches!(e, Event::FastConnectRefused)));
}

#[test]
fn slow_start_tunnelled_h245_travels_both_ways() {
    let now = Instant::now();
    let (mut caller, mut callee, call) = setup(Config::default(), &dial_params(vec![]), now);
    assert!(call.h245_tunnelling && call.fast_start.is_empty());
    // Before answering: the PDU waits for the Connect.
    callee.send_h245(b"callee TCS".to_vec()).expect("tunnelled");
    assert!(
        callee.poll_transmit().is_none(),
        "nothing before the first response"
    );
    callee
        .connect(&ConnectParams {
            h245_tunnelling: true,
            ..ConnectParams::default()
        })
        .expect("connect");
    // Caller side: queued until the callee's answer confirms tunnelling.
    caller.send_h245(b"caller TCS".to_vec()).expect("tunnelled");
    assert!(caller.poll_transmit().is_none());
    let connect = sent(&mut callee);
    assert_eq!(connect.len(), 1);
    assert_eq!(connect[0].kind, MessageType::Connect);
    assert!(connect[0].from_destination);
    let pdu = uu(&connect[0]).h323_uu_pdu;
    assert_eq!(pdu.h245_tunnelling, Some(true));
    assert_eq!(pdu.h245_control.map(|c| c.len()), Some(1));
    for m in &connect {
        caller.handle_input(now, &tpkt::encode(&m.encode()).expect("tpkt"));
    }
    let evs = events(&mut caller);
    assert!(
        evs.contains(&Event::H245(b"callee TCS".to_vec())),
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::Connected(a) if a.h245_tunnelling)),
        "{evs:?}"
    );
    // The caller's queued PDU leaves in an empty-bodied Facility.
    let fac = sent(&mut caller);
    assert_eq!(fac.len(), 1);
    assert_eq!(fac[0].kind, MessageType::Facility);
    assert!(matches!(
        uu(&fac[0]).h323_uu_pdu.h323_message_body,
        h225::H323UUPDUH323MessageBody::empty(())
    ));
    callee.handle_input(now, &tpkt::encode(&fac[0].encode()).expect("tpkt"));
    assert_eq!(events(&mut callee), [Event::H245(b"caller TCS".to_vec())]);
    // Later PDUs from the callee go out at once.
    callee.send_h245(b"ack".to_vec()).expect("tunnelled");
    pump(&mut caller, &mut callee, now);
    assert_eq!(events(&mut caller), [Event::H245(b"ack".to_vec())]);
    assert_eq!(
        (caller.state(), callee.state()),
        (State::Active, State::Active)
    );
}

#[test]
fn slow_start_separate_h245_carries_both_addresses() {
    let now = Instant::now();
    let no_tunnel = Config {
        h245_tunnelling: false,
        ..Config::default()
    };
    let p = DialParams {
        h245_address: Some(addr("192.0.2.1:1800")),
        ..dial_params(vec![])
    };
    let (mut caller, mut callee, call) = setup(no_tunnel, &p, now);
    assert!(!call.h245_tunnelling);
    assert_eq!(call.h245_address, Some(addr("192.0.2.1:1800")));
    assert_eq!(callee.send_h245(vec![1]), Err(CallError::NotTunnelling));
    callee.proceeding().expect("proceeding");
    callee
        .connect(&ConnectParams {
            h245_tunnelling: true,
            h245_address: Some(addr("198.51.100.2:1801")),
            ..ConnectParams::default()
        })
        .expect("connect");
    pump(&mut caller, &mut callee, now);
    let evs = events(&mut caller);
    let Some(Event::Connected(a)) = evs.last() else {
        panic!("{evs:?}");
    };
    assert!(!a.h245_tunnelling);
    assert_eq!(a.h245_address, Some(addr("198.51.100.2:1801")));
    assert_eq!(caller.send_h245(vec![1]), Err(CallError::NotTunnelling));
    assert_eq!(
        (caller.state(), callee.state()),
        (State::Active, State::Active)
    );
    // Facility(startH245) reaches the other side as an H245Address event.
    caller
        .start_h245(addr("192.0.2.1:1802"))
        .expect("startH245");
    pump(&mut caller, &mut callee, now);
    assert_eq!(
        events(&mut callee),
        [Event::H245Address(addr("192.0.2.1:1802"))]
    );
}

#[test]
fn h245_in_the_setup_is_delivered_after_the_incoming_call() {
    let q931 = hex(include_str!(
        "../../../tests/data/h323/ndpi/frame06-q931-0.hex"
    ));
    let mut m = Message::decode(&q931).expect("q931");
    let mut info = uu(&m);
    info.h323_uu_pdu.h245_tunnelling = Some(true);
    info.h323_uu_pdu.h245_control = Some(vec![vec![1, 2, 3].into(), vec![4].into()]);
    m.set_user_user(&rasn::aper::encode(&info).expect("per"));
    let mut callee = Call::accept(Config::default());
    callee.handle_input(Instant::now(), &tpkt::encode(&m.encode()).expect("tpkt"));
    let evs = events(&mut callee);
    assert!(
        matches!(&evs[0], Event::IncomingCall(c) if c.h245_tunnelling),
        "{evs:?}"
    );
    assert_eq!(evs[1..], [Event::H245(vec![1, 2, 3]), Event::H245(vec![4])]);
    assert!(
        callee.start_h245(addr("198.51.100.2:1801")).is_err(),
        "tunnelling is on"
    );
}

#[test]
fn fast_start_refused_explicitly_or_by_silence() {
    let now = Instant::now();
    for reply in [FastStartReply::Refuse, FastStartReply::None] {
        let p = dial_params(vec![
            audio(Direction::CallerToCallee, AudioCodec::Pcmu),
            audio(Direction::CalleeToCaller, AudioCodec::Pcmu),
        ]);
        let (mut caller, mut callee, call) = setup(Config::default(), &p, now);
        assert_eq!(call.fast_start.len(), 2);
        callee
            .connect(&ConnectParams {
                fast_start: reply.clone(),
                h245_tunnelling: true,
                ..ConnectParams::default()
            })
            .expect("connect");
        pump(&mut caller, &mut callee, now);
        let evs = events(&mut caller);
        assert!(
            evs.contains(&Event::FastConnectRefused),
            "{reply:?}: {evs:?}"
        );
        assert!(!evs.iter().any(|e| matches!(e, Event::FastStart(_))));
        let Some(Event::Connected(a)) = evs.last() else {
            panic!("{evs:?}");
        };
        assert_eq!(a.fast_connect_refused, reply == FastStartReply::Refuse);
        assert_eq!(caller.state(), State::Active);
    }
}

#[test]
fn release_from_either_side_with_cause_and_reason() {
    let now = Instant::now();
    // The callee refuses: busy.
    let (mut caller, mut callee, _) = setup(Config::default(), &dial_params(vec![]), now);
    callee.release(cause::USER_BUSY).expect("release");
    assert_eq!(callee.state(), State::Released);
    let rc = sent(&mut callee);
    assert_eq!(
        (rc[0].kind, rc[0].cause()),
        (MessageType::ReleaseComplete, Some(17))
    );
    let h225::H323UUPDUH323MessageBody::releaseComplete(body) =
        uu(&rc[0]).h323_uu_pdu.h323_message_body
    else {
        panic!("not a releaseComplete body");
    };
    assert_eq!(body.reason, Some(h225::ReleaseCompleteReason::inConf(())));
    caller.handle_input(now, &tpkt::encode(&rc[0].encode()).expect("tpkt"));
    assert_eq!(
        events(&mut caller).last(),
        Some(&Event::Released {
            cause: 17,
            origin: ReleaseOrigin::Peer
        })
    );
    assert_eq!(caller.state(), State::Released);
    assert_eq!(caller.poll_timeout(), None, "no timer after release");

    // The caller hangs up an active call.
    let (mut caller, mut callee, _) = setup(Config::default(), &dial_params(vec![]), now);
    callee.connect(&ConnectParams::default()).expect("connect");
    pump(&mut caller, &mut callee, now);
    caller.release(cause::NORMAL_CLEARING).expect("release");
    pump(&mut caller, &mut callee, now);
    assert_eq!(
        events(&mut callee).last(),
        Some(&Event::Released {
            cause: 16,
            origin: ReleaseOrigin::Peer
        })
    );
    assert_eq!(
        events(&mut caller).last(),
        Some(&Event::Released {
            cause: 16,
            origin: ReleaseOrigin::Local
        })
    );
    assert_eq!(
        callee.release(16),
        Err(CallError::State("release", State::Released))
    );
}

#[test]
fn ndpi_setup_decodes_and_is_answered_on_its_call_reference() {
    let q931 = hex(include_str!(
        "../../../tests/data/h323/ndpi/frame06-q931-0.hex"
    ));
    let mut callee = Call::accept(Config::default());
    let framed = tpkt::encode(&q931).expect("tpkt");
    // Split over two reads, as TCP may deliver it.
    callee.handle_input(Instant::now(), &framed[..10]);
    assert!(callee.poll_event().is_none());
    callee.handle_input(Instant::now(), &framed[10..]);
    let call = incoming(&events(&mut callee));
    assert_eq!(call.call_reference, 0x77f4);
    assert_eq!(call.caller, [Alias::H323Id("m.jemec".into())]);
    assert!(call.called.is_empty());
    assert_eq!(call.protocol_version, Some(4));
    let v = call.vendor.expect("vendor");
    assert_eq!((v.t35_country_code, v.manufacturer_code), (9, 61));
    assert!(v.product.starts_with("Callgen323"), "{}", v.product);
    assert_eq!(call.dest_call_signal_address, Some(addr("10.1.6.18:1720")));
    assert_eq!(
        call.source_call_signal_address,
        Some(addr("10.1.3.143:32803"))
    );
    assert_eq!(
        call.conference_id.0.to_vec(),
        hex("F8FDF93ECD9ED6119AB2000476222017")
    );
    assert_eq!(
        call.call_identifier.map(|g| g.0.to_vec()),
        Some(hex("C0FEF93ECD9ED6119AB2000476222017"))
    );
    assert!(!call.h245_tunnelling && call.fast_start.is_empty());
    callee.proceeding().expect("proceeding");
    let out = sent(&mut callee);
    assert_eq!((out[0].call_ref, out[0].from_destination), (0x77f4, true));
    let h225::H323UUPDUH323MessageBody::callProceeding(cp) =
        uu(&out[0]).h323_uu_pdu.h323_message_body
    else {
        panic!("not callProceeding");
    };
    assert_eq!(
        cp.call_identifier.map(|c| c.guid.0.to_vec()),
        Some(hex("C0FEF93ECD9ED6119AB2000476222017"))
    );
}

#[test]
fn generated_fast_start_setup_gives_its_proposals() {
    let bytes = hex(include_str!(
        "../../../tests/data/h323/generated-setup-faststart.hex"
    ));
    let mut callee = Call::accept(Config::default());
    callee.handle_input(Instant::now(), &bytes);
    let call = incoming(&events(&mut callee));
    assert_eq!(call.called_number.as_deref(), Some("1234"));
    assert_eq!(call.display.as_deref(), Some("Visio GW"));
    assert!(
        call.caller.contains(&Alias::H323Id("visio-gw".into())),
        "{:?}",
        call.caller
    );
    assert!(call.h245_tunnelling);
    assert_eq!(call.fast_start.len(), 2, "{:?}", call.fast_start);
    let tx = &call.fast_start[0];
    assert_eq!(
        (tx.direction, tx.codec, tx.session_id),
        (Direction::CallerToCallee, Some(pcma()), 1)
    );
    assert_eq!(tx.rtcp, Some(addr("192.0.2.10:5001")));
    let rx = &call.fast_start[1];
    assert_eq!(
        (rx.direction, rx.codec),
        (Direction::CalleeToCaller, Some(pcma()))
    );
    assert_eq!(rx.rtp, Some(addr("192.0.2.10:5000")));
    assert_eq!(rx.rtcp, Some(addr("192.0.2.10:5001")));
    // Answering both directions puts two OLCs in the Connect.
    callee
        .connect(&ConnectParams {
            fast_start: FastStartReply::Accept(vec![
                (0, addr("198.51.100.2:7000"), addr("198.51.100.2:7001")),
                (1, addr("198.51.100.2:7002"), addr("198.51.100.2:7003")),
            ]),
            h245_tunnelling: true,
            ..ConnectParams::default()
        })
        .expect("connect");
    let out = sent(&mut callee);
    let h225::H323UUPDUH323MessageBody::connect(c) = uu(&out[0]).h323_uu_pdu.h323_message_body
    else {
        panic!("not connect");
    };
    let (answers, bad) = faststart::parse_list(&c.fast_start.expect("fastStart answer"));
    assert_eq!((answers.len(), bad), (2, 0));
    assert_eq!(answers[0].rtp, Some(addr("198.51.100.2:7000")));
}

/// Feeds `bytes` to a fresh callee and returns the cause of the ReleaseComplete it sends.
fn release_cause_for(bytes: &[u8]) -> Option<u8> {
    let mut callee = Call::accept(Config::default());
    callee.handle_input(Instant::now(), bytes);
    let evs = events(&mut callee);
    let released = evs.iter().find_map(|e| match e {
        Event::Released {
            cause,
            origin: ReleaseOrigin::ProtocolError(_),
        } => Some(*cause),
        _ => None,
    });
    let rc = sent(&mut callee);
    assert_eq!(rc.len(), usize::from(released.is_some()), "{evs:?}");
    if let Some(m) = rc.first() {
        assert_eq!(m.kind, MessageType::ReleaseComplete);
        assert_eq!(m.cause(), released);
    }
    assert_eq!(callee.state() == State::Released, released.is_some());
    released
}

#[test]
fn malformed_input_releases_with_a_cause() {
    let setup = hex(include_str!(
        "../../../tests/data/h323/ndpi/frame06-q931-0.hex"
    ));
    // Not TPKT at all.
    assert_eq!(
        release_cause_for(b"GET / HTTP/1.1\r\n\r\n"),
        Some(cause::INVALID_MESSAGE)
    );
    // A TPKT over the limit (64 KB+ announced and sent).
    let mut big = vec![3, 0, 0xff, 0xff];
    big.resize(70_000, 0x41);
    assert_eq!(release_cause_for(&big), Some(cause::INVALID_MESSAGE));
    // A truncated Q.931 header.
    assert_eq!(
        release_cause_for(&tpkt::encode(&[8, 2, 0]).expect("tpkt")),
        Some(cause::INVALID_MESSAGE)
    );
    // A Setup whose H.225.0 payload is cut short (User-User length adjusted).
    let mut m = Message::decode(&setup).expect("q931");
    let uu = m.user_user().expect("uu").to_vec();
    m.set_user_user(&uu[..uu.len() / 2]);
    assert_eq!(
        release_cause_for(&tpkt::encode(&m.encode()).expect("tpkt")),
        Some(cause::INVALID_IE_CONTENTS)
    );
    // A Setup without a User-User IE.
    let mut bare = Message::new(MessageType::Setup, 5, false);
    bare.push_ie(ie::BEARER_CAPABILITY, crate::h323::q931::BEARER_SPEECH);
    assert_eq!(
        release_cause_for(&tpkt::encode(&bare.encode()).expect("tpkt")),
        Some(cause::MANDATORY_IE_MISSING)
    );
    // Something other than a Setup first.
    let conn = Message::new(MessageType::Connect, 5, true);
    assert_eq!(
        release_cause_for(&tpkt::encode(&conn.encode()).expect("tpkt")),
        Some(cause::INVALID_CALL_REFERENCE)
    );
    // An incomplete TPKT is no error yet; keep-alives are skipped.
    assert_eq!(release_cause_for(&[3, 0, 0, 4, 3, 0, 0, 40, 8]), None);
}

#[test]
fn status_enquiry_unknown_messages_and_foreign_call_references() {
    let now = Instant::now();
    let (mut caller, mut callee, _) = setup(Config::default(), &dial_params(vec![]), now);
    callee.proceeding().expect("proceeding");
    pump(&mut caller, &mut callee, now);
    events(&mut caller);
    let send =
        |c: &mut Call, m: Message| c.handle_input(now, &tpkt::encode(&m.encode()).expect("tpkt"));

    send(
        &mut callee,
        Message::new(MessageType::StatusEnquiry, 0x1234, false),
    );
    let st = sent(&mut callee);
    assert_eq!(st[0].kind, MessageType::Status);
    assert_eq!(st[0].cause(), Some(cause::RESPONSE_TO_STATUS_ENQUIRY));
    assert_eq!(
        st[0].ie(ie::CALL_STATE),
        Some(&[9u8][..]),
        "incoming call proceeding"
    );

    send(
        &mut callee,
        Message::new(MessageType::Other(0x4f), 0x1234, false),
    );
    assert_eq!(
        sent(&mut callee)[0].cause(),
        Some(cause::MESSAGE_TYPE_NON_EXISTENT)
    );

    // CallProceeding after Alerting is not compatible with the caller's state.
    send(
        &mut caller,
        Message::new(MessageType::Alerting, 0x1234, true),
    );
    send(
        &mut caller,
        Message::new(MessageType::CallProceeding, 0x1234, true),
    );
    let st = sent(&mut caller);
    assert_eq!(
        st.last().map(|m| (m.kind, m.cause())),
        Some((MessageType::Status, Some(101)))
    );
    assert_eq!(caller.state(), State::CallDelivered);

    // Another call reference: refused on that reference, ours goes on.
    send(
        &mut callee,
        Message::new(MessageType::Information, 0x0999, false),
    );
    let rc = sent(&mut callee);
    assert_eq!(
        (rc[0].kind, rc[0].call_ref, rc[0].cause()),
        (MessageType::ReleaseComplete, 0x0999, Some(81))
    );
    assert_eq!(callee.state(), State::IncomingCallProceeding);

    // Keypad digits.
    caller.send_digits("12#").expect("digits");
    pump(&mut caller, &mut callee, now);
    assert_eq!(events(&mut callee), [Event::Digits("12#".into())]);

    // A Status saying the peer has no call clears ours.
    let mut st = Message::new(MessageType::Status, 0x1234, false);
    st.push_cause(cause::INVALID_CALL_REFERENCE)
        .push_ie(ie::CALL_STATE, [0]);
    send(&mut callee, st);
    assert!(matches!(
        events(&mut callee).last(),
        Some(Event::Released {
            cause: 81,
            origin: ReleaseOrigin::Peer
        })
    ));
}

#[test]
fn t303_releases_an_unanswered_setup() {
    let now = Instant::now();
    let mut caller = Call::dial(Config::default(), &dial_params(vec![]), now).expect("dial");
    assert_eq!(sent(&mut caller)[0].kind, MessageType::Setup);
    assert_eq!(caller.poll_timeout(), Some(now + Duration::from_secs(4)));
    caller.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(caller.state(), State::CallInitiated);
    caller.handle_timeout(now + Duration::from_secs(4));
    assert_eq!(caller.state(), State::Released);
    let rc = sent(&mut caller);
    assert_eq!(
        (rc[0].kind, rc[0].cause()),
        (MessageType::ReleaseComplete, Some(cause::TIMER_EXPIRY))
    );
    assert_eq!(
        events(&mut caller),
        [Event::Released {
            cause: cause::TIMER_EXPIRY,
            origin: ReleaseOrigin::Timeout
        }]
    );
}

#[test]
fn t310_and_the_callee_guards() {
    let now = Instant::now();
    let (mut caller, mut callee, _) = setup(Config::default(), &dial_params(vec![]), now);
    // The application does not answer: CallProceeding goes out by itself, stopping T303.
    let t = callee.poll_timeout().expect("guard");
    assert_eq!(t, now + Duration::from_secs(2));
    callee.handle_timeout(t);
    assert_eq!(callee.state(), State::IncomingCallProceeding);
    pump(&mut caller, &mut callee, t);
    assert_eq!(caller.state(), State::OutgoingCallProceeding);
    assert_eq!(caller.poll_timeout(), Some(t + Duration::from_secs(180)));
    caller.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(
        caller.state(),
        State::OutgoingCallProceeding,
        "T303 stopped"
    );
    // Nobody answers: the callee gives up after 180 s with "no answer".
    callee.handle_timeout(now + Duration::from_secs(180));
    assert!(matches!(
        events(&mut callee).last(),
        Some(Event::Released {
            cause: 19,
            origin: ReleaseOrigin::Timeout
        })
    ));
    let (mut caller, mut callee, _) = setup(Config::default(), &dial_params(vec![]), now);
    callee.alerting().expect("alerting");
    pump(&mut caller, &mut callee, now);
    caller.handle_timeout(now + Duration::from_secs(180));
    assert!(matches!(
        events(&mut caller).last(),
        Some(Event::Released {
            cause: 19,
            origin: ReleaseOrigin::Timeout
        })
    ));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        cut in 0usize..300,
    ) {
        let now = Instant::now();
        // Random bytes, and a real Setup with random bytes spliced in.
        let mut callee = Call::accept(Config::default());
        callee.handle_input(now, &b);
        let mut setup = hex(include_str!("../../../tests/data/h323/generated-setup-faststart.hex"));
        let at = cut.min(setup.len());
        setup.splice(at..(at + b.len().min(8)).min(setup.len()), b.iter().take(8).copied());
        let mut other = Call::accept(Config::default());
        other.handle_input(now, &setup);
        for c in [&mut callee, &mut other] {
            let evs = events(c);
            // Either a call arrived, a release was reported, or more bytes are awaited.
            let released = evs.iter().any(|e| matches!(e, Event::Released { .. }));
            proptest::prop_assert_eq!(released, c.state() == State::Released);
            let _ = sent(c);
        }
    }
}
