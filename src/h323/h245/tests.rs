//! Session tests: two sessions back to back through the PER codec, timers, captured PDUs.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

fn addrs(host: u8, port: u16) -> MediaAddresses {
    MediaAddresses {
        rtp: SocketAddr::from(([192, 0, 2, host], port)),
        rtcp: SocketAddr::from(([192, 0, 2, host], port + 1)),
    }
}

fn config(host: u8) -> H245Config {
    H245Config {
        audio_addresses: Some(addrs(host, 5000)),
        video_addresses: Some(addrs(host, 5002)),
        ..H245Config::default()
    }
}

/// Moves every pending PDU between the two sessions (PER-encoded and decoded) until both are
/// quiet; returns how many PDUs each sent.
fn pump(a: &mut H245, b: &mut H245, now: Instant) -> (usize, usize) {
    let (mut na, mut nb) = (0, 0);
    for _ in 0..100 {
        let mut moved = false;
        while let Some(bytes) = a.poll_transmit_bytes() {
            na += 1;
            moved = true;
            b.handle_bytes(now, &bytes);
        }
        while let Some(bytes) = b.poll_transmit_bytes() {
            nb += 1;
            moved = true;
            a.handle_bytes(now, &bytes);
        }
        if !moved {
            return (na, nb);
        }
    }
    panic!("sessions never went quiet");
}

fn events(s: &mut H245) -> Vec<H245Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn transmits(s: &mut H245) -> Vec<MultimediaSystemControlMessage> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn opened(events: &[H245Event], direction: Direction) -> Vec<ChannelInfo> {
    events
        .iter()
        .filter_map(|e| match e {
            H245Event::ChannelOpened(i) if i.direction == direction => Some(i.clone()),
            _ => None,
        })
        .collect()
}

/// Caller and callee, capabilities exchanged and MSD done.
fn ready_pair(now: Instant) -> (H245, H245) {
    let mut a = H245::with_seed(config(1), 1);
    let mut b = H245::with_seed(config(2), 2);
    a.start(now);
    b.start(now);
    pump(&mut a, &mut b, now);
    assert!(a.is_ready() && b.is_ready(), "a {a:?} b {b:?}");
    (a, b)
}

fn capture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/h323/ndpi")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("capture file");
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn back_to_back_call_opens_audio_both_ways_and_ends() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    let mut b = H245::with_seed(config(2), 2);
    a.start(now);
    b.start(now);
    assert_eq!(
        a.open_channel(now, MediaKind::Audio),
        Err(H245Error::NotReady)
    );
    pump(&mut a, &mut b, now);
    let (ea, eb) = (events(&mut a), events(&mut b));
    for e in [&ea, &eb] {
        assert!(e.contains(&H245Event::Ready), "{e:?}");
        assert!(e.contains(&H245Event::CapabilitiesAcknowledged), "{e:?}");
    }
    // Same terminal type: the numbers decide, and the two sides agree.
    let (ra, rb) = (a.role().expect("a role"), b.role().expect("b role"));
    assert_eq!(ra, rb.opposite());
    assert!(ea.contains(&H245Event::MasterSlave(ra)));
    let peer = a.peer_capabilities().expect("caps");
    assert_eq!(peer.audio_frames(AudioCodec::G722), Some(20));
    assert_eq!(
        peer.h264.map(|h| h.level),
        Some(capabilities::H264_LEVEL_3_1)
    );

    let la = a.open_channel(now, MediaKind::Audio).expect("a opens");
    let lb = b.open_channel(now, MediaKind::Audio).expect("b opens");
    assert_eq!(
        a.open_channel(now, MediaKind::Audio),
        Err(H245Error::AlreadyOpen)
    );
    pump(&mut a, &mut b, now);
    let (ea, eb) = (events(&mut a), events(&mut b));
    let a_out = opened(&ea, Direction::Outgoing);
    let a_in = opened(&ea, Direction::Incoming);
    let b_in = opened(&eb, Direction::Incoming);
    assert_eq!(a_out.len(), 1, "{ea:?}");
    assert_eq!(a_out[0].number, la);
    assert_eq!(a_out[0].session_id, 1);
    assert_eq!(
        a_out[0].codec,
        Codec::Audio {
            codec: AudioCodec::G722,
            frames: 20
        }
    );
    // a sends to b's addresses, and b knows a's RTCP.
    assert_eq!(a_out[0].remote_rtp, Some(addrs(2, 5000).rtp));
    assert_eq!(a_out[0].remote_rtcp, Some(addrs(2, 5000).rtcp));
    assert_eq!(b_in.len(), 1);
    assert_eq!(b_in[0].number, la);
    assert_eq!(b_in[0].remote_rtcp, Some(addrs(1, 5000).rtcp));
    assert_eq!(a_in.len(), 1);
    assert_eq!(a_in[0].number, lb);
    assert_eq!(a.channels().len(), 2);
    assert_eq!(b.channels().len(), 2);

    a.end_session(now);
    pump(&mut a, &mut b, now);
    assert!(a.is_ended() && b.is_ended());
    let eb = events(&mut b);
    assert!(
        eb.contains(&H245Event::SessionEnded { by_peer: true }),
        "{eb:?}"
    );
    assert!(eb.contains(&H245Event::ChannelClosed {
        number: la,
        direction: Direction::Incoming
    }));
    assert!(events(&mut a).contains(&H245Event::SessionEnded { by_peer: false }));
    assert_eq!(a.poll_timeout(), None);
    assert_eq!(a.send_user_input(now, '1', None), Err(H245Error::Ended));
}

#[test]
fn video_channel_uses_h264_with_payload_type() {
    let now = Instant::now();
    let (mut a, mut b) = ready_pair(now);
    events(&mut a);
    events(&mut b);
    let n = a.open_channel(now, MediaKind::Video).expect("video");
    pump(&mut a, &mut b, now);
    let eb = events(&mut b);
    let b_in = opened(&eb, Direction::Incoming);
    assert_eq!(b_in.len(), 1, "{eb:?}");
    assert_eq!(b_in[0].number, n);
    assert_eq!(b_in[0].session_id, 2);
    assert_eq!(b_in[0].payload_type, Some(96));
    match b_in[0].codec {
        Codec::H264(p) => {
            assert_eq!(p.profile, capabilities::H264_PROFILE_BASELINE);
            assert_eq!(p.level, capabilities::H264_LEVEL_3_1);
        }
        other => panic!("{other:?}"),
    }
    let a_out = opened(&events(&mut a), Direction::Outgoing);
    assert_eq!(a_out[0].remote_rtp, Some(addrs(2, 5002).rtp));
}

#[test]
fn close_and_request_close_both_ways() {
    let now = Instant::now();
    let (mut a, mut b) = ready_pair(now);
    let la = a.open_channel(now, MediaKind::Audio).expect("a");
    let lb = b.open_channel(now, MediaKind::Audio).expect("b");
    pump(&mut a, &mut b, now);
    events(&mut a);
    events(&mut b);
    // a closes its own channel.
    a.close_channel(now, Direction::Outgoing, la)
        .expect("close");
    // a asks b to close b's channel.
    a.close_channel(now, Direction::Incoming, lb)
        .expect("request close");
    pump(&mut a, &mut b, now);
    let (ea, eb) = (events(&mut a), events(&mut b));
    assert!(ea.contains(&H245Event::ChannelClosed {
        number: la,
        direction: Direction::Outgoing
    }));
    assert!(ea.contains(&H245Event::ChannelClosed {
        number: lb,
        direction: Direction::Incoming
    }));
    assert!(eb.contains(&H245Event::ChannelClosed {
        number: la,
        direction: Direction::Incoming
    }));
    assert!(eb.contains(&H245Event::ChannelClosed {
        number: lb,
        direction: Direction::Outgoing
    }));
    assert!(a.channels().is_empty() && b.channels().is_empty());
    assert_eq!(
        a.close_channel(now, Direction::Outgoing, la),
        Err(H245Error::UnknownChannel)
    );
    // A RequestChannelClose for a channel b does not have is rejected.
    b.handle_message(
        now,
        MultimediaSystemControlMessage::request(RequestMessage::requestChannelClose(
            RequestChannelClose::new(LogicalChannelNumber(77), None, None),
        )),
    );
    if let Some(m) = b.poll_transmit() {
        a.handle_message(now, m);
    }
    assert!(events(&mut a).contains(&H245Event::ChannelCloseRejected { number: 77 }));
}

#[test]
fn empty_tcs_pauses_and_closes_our_channels() {
    let now = Instant::now();
    let (mut a, mut b) = ready_pair(now);
    let la = a.open_channel(now, MediaKind::Audio).expect("a");
    pump(&mut a, &mut b, now);
    events(&mut a);
    let empty = TerminalCapabilitySet::new(
        SequenceNumber(9),
        capabilities::oid(&capabilities::PROTOCOL_IDENTIFIER),
        None,
        None,
        None,
        None,
    );
    a.handle_message(
        now,
        MultimediaSystemControlMessage::request(RequestMessage::terminalCapabilitySet(empty)),
    );
    assert!(events(&mut a).contains(&H245Event::PeerPaused));
    assert!(a.peer_capabilities().is_none());
    assert_eq!(
        a.open_channel(now, MediaKind::Audio),
        Err(H245Error::NotReady)
    );
    pump(&mut a, &mut b, now);
    assert!(events(&mut a).contains(&H245Event::ChannelClosed {
        number: la,
        direction: Direction::Outgoing
    }));
    // A new TCS resumes.
    b.start(now);
    pump(&mut a, &mut b, now);
    assert!(a.peer_capabilities().is_some());
    assert!(a.open_channel(now, MediaKind::Audio).is_ok());
}

#[test]
fn identical_numbers_retry_then_fail_after_n100() {
    let now = Instant::now();
    let mut a = H245::new(config(1), || 4242);
    let mut b = H245::new(config(2), || 4242);
    a.start(now);
    b.start(now);
    let mut msd_sent = 0;
    let go = |from: &mut H245, to: &mut H245| {
        let mut n = 0;
        while let Some(m) = from.poll_transmit() {
            if matches!(
                m,
                MultimediaSystemControlMessage::request(RequestMessage::masterSlaveDetermination(
                    _
                ))
            ) {
                n += 1;
            }
            to.handle_message(now, m);
        }
        n
    };
    for _ in 0..20 {
        msd_sent += go(&mut a, &mut b);
        go(&mut b, &mut a);
    }
    assert_eq!(msd_sent, 3, "N100 = 3 attempts");
    for s in [&mut a, &mut b] {
        let e = events(s);
        assert!(
            e.contains(&H245Event::MasterSlaveFailed(MsdFailure::IdenticalNumbers)),
            "{e:?}"
        );
        assert_eq!(s.role(), None);
        assert!(!e.contains(&H245Event::Ready));
    }
}

#[test]
fn indeterminate_once_then_decided() {
    let now = Instant::now();
    let mut numbers = vec![7u32, 100].into_iter();
    let mut a = H245::new(config(1), move || numbers.next().unwrap_or(100));
    let mut b = H245::new(config(2), || 7);
    a.start(now);
    b.start(now);
    pump(&mut a, &mut b, now);
    // Both start with 7 (indeterminate); a retries with 100 and that decides.
    let expected = match msd::determine(60, 100, 60, 7) {
        Determination::Decided(r) => r,
        Determination::Indeterminate => panic!("indeterminate"),
    };
    assert_eq!(a.role(), Some(expected));
    assert_eq!(b.role(), Some(expected.opposite()));
}

#[test]
fn gateway_is_master_against_a_room() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 5);
    let mut room = H245::with_seed(
        H245Config {
            terminal_type: 50,
            ..config(2)
        },
        6,
    );
    a.start(now);
    room.start(now);
    pump(&mut a, &mut room, now);
    assert_eq!(a.role(), Some(Role::Master));
    assert_eq!(room.role(), Some(Role::Slave));
}

#[test]
fn t101_and_t106_expire() {
    let t0 = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    a.start(t0);
    assert_eq!(transmits(&mut a).len(), 2);
    assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    a.handle_timeout(t0 + Duration::from_secs(29));
    assert!(events(&mut a).is_empty());
    a.handle_timeout(t0 + Duration::from_secs(30));
    let e = events(&mut a);
    assert!(e.contains(&H245Event::Timeout(Timer::T101)), "{e:?}");
    assert!(e.contains(&H245Event::Timeout(Timer::T106)), "{e:?}");
    let sent = transmits(&mut a);
    assert!(sent.iter().any(|m| matches!(
        m,
        MultimediaSystemControlMessage::indication(
            IndicationMessage::terminalCapabilitySetRelease(_)
        )
    )));
    assert!(sent.iter().any(|m| matches!(
        m,
        MultimediaSystemControlMessage::indication(
            IndicationMessage::masterSlaveDeterminationRelease(_)
        )
    )));
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn t103_expires_and_closes_our_channel() {
    let t0 = Instant::now();
    let (mut a, _b) = ready_pair(t0);
    events(&mut a);
    let t1 = t0 + Duration::from_secs(1);
    let n = a.open_channel(t1, MediaKind::Audio).expect("open");
    transmits(&mut a);
    assert_eq!(a.poll_timeout(), Some(t1 + Duration::from_secs(30)));
    a.handle_timeout(t1 + Duration::from_secs(30));
    assert!(events(&mut a).contains(&H245Event::Timeout(Timer::T103(n))));
    let sent = transmits(&mut a);
    assert!(matches!(
        sent.as_slice(),
        [MultimediaSystemControlMessage::request(RequestMessage::closeLogicalChannel(c))]
            if c.forward_logical_channel_number.0 == n
    ));
    assert!(a.channels().is_empty());
}

#[test]
fn round_trip_delay_both_ways_and_timeout() {
    let t0 = Instant::now();
    let (mut a, mut b) = ready_pair(t0);
    events(&mut a);
    a.send_round_trip_delay_request(t0).expect("rtd");
    let req = a.poll_transmit().expect("request");
    b.handle_message(t0, req);
    let resp = b.poll_transmit().expect("response");
    a.handle_message(t0 + Duration::from_millis(40), resp.clone());
    assert!(events(&mut a).contains(&H245Event::RoundTripDelay(Duration::from_millis(40))));
    // The same response again is late.
    a.handle_message(t0, resp);
    assert!(matches!(
        events(&mut a).as_slice(),
        [H245Event::Ignored { .. }]
    ));
    a.send_round_trip_delay_request(t0).expect("rtd");
    a.handle_timeout(t0 + Duration::from_secs(10));
    assert!(events(&mut a).contains(&H245Event::Timeout(Timer::RoundTripDelay)));
}

#[test]
fn user_input_and_fast_update_both_ways() {
    let now = Instant::now();
    let (mut a, mut b) = ready_pair(now);
    let la = a.open_channel(now, MediaKind::Video).expect("a video");
    let lb = b.open_channel(now, MediaKind::Video).expect("b video");
    pump(&mut a, &mut b, now);
    events(&mut a);
    events(&mut b);
    a.send_user_input(now, '5', Some(120)).expect("uii");
    b.send_user_input(now, '#', None).expect("uii");
    // b receives a's channel `la`: it asks a for an intra picture on it, and vice versa.
    b.send_video_fast_update(now, la).expect("fur");
    a.send_video_fast_update(now, lb).expect("fur");
    // b caps a's channel at 256 kbit/s.
    b.send_flow_control(now, la, Some(2560))
        .expect("flow control");
    assert_eq!(
        b.send_flow_control(now, 999, None),
        Err(H245Error::UnknownChannel)
    );
    assert_eq!(
        a.send_video_fast_update(now, 999),
        Err(H245Error::UnknownChannel)
    );
    pump(&mut a, &mut b, now);
    let (ea, eb) = (events(&mut a), events(&mut b));
    assert!(eb.contains(&H245Event::UserInput {
        key: '5',
        duration: Some(120)
    }));
    assert!(ea.contains(&H245Event::UserInput {
        key: '#',
        duration: None
    }));
    assert!(ea.contains(&H245Event::VideoFastUpdate { number: la }));
    assert!(ea.contains(&H245Event::FlowControl {
        number: Some(la),
        max_bit_rate: Some(2560)
    }));
    assert!(eb.contains(&H245Event::VideoFastUpdate { number: lb }));
    // Alphanumeric with several digits, and an empty keep-alive.
    for s in ["12", ""] {
        a.handle_message(
            now,
            MultimediaSystemControlMessage::indication(IndicationMessage::userInput(
                UserInputIndication::alphanumeric(
                    GeneralString::from_bytes(s.as_bytes()).expect("string"),
                ),
            )),
        );
    }
    let keys: Vec<char> = events(&mut a)
        .iter()
        .filter_map(|e| match e {
            H245Event::UserInput { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    assert_eq!(keys, vec!['1', '2']);
}

#[test]
fn flow_control_is_reported() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    a.handle_message(
        now,
        MultimediaSystemControlMessage::command(CommandMessage::flowControlCommand(
            crate::h323::asn::multimedia_system_control::FlowControlCommand::new(
                FlowControlCommandScope::logicalChannelNumber(LogicalChannelNumber(3)),
                FlowControlCommandRestriction::maximumBitRate(3840),
            ),
        )),
    );
    assert_eq!(
        events(&mut a),
        vec![H245Event::FlowControl {
            number: Some(3),
            max_bit_rate: Some(3840)
        }]
    );
}

#[test]
fn unsupported_request_gets_function_not_supported() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    let request = MultimediaSystemControlMessage::request(RequestMessage::genericRequest(
        crate::h323::asn::multimedia_system_control::GenericMessage::new(
            crate::h323::asn::multimedia_system_control::CapabilityIdentifier::standard(
                capabilities::oid(&[0, 0, 8, 999]),
            ),
            None,
            None,
        ),
    ));
    let bytes = aper::encode(&request).expect("encode");
    a.handle_bytes(now, &bytes);
    match a.poll_transmit() {
        Some(MultimediaSystemControlMessage::indication(
            IndicationMessage::functionNotSupported(f),
        )) => assert_eq!(f.returned_function.as_deref(), Some(&bytes[..])),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        events(&mut a).as_slice(),
        [H245Event::Ignored { count: 1, .. }]
    ));
}

#[test]
fn captured_tcs_is_acknowledged_with_its_g711() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    a.handle_bytes(now, &capture("frame25-h245-0.hex"));
    match a.poll_transmit() {
        Some(MultimediaSystemControlMessage::response(
            ResponseMessage::terminalCapabilitySetAck(ack),
        )) => assert_eq!(ack.sequence_number.0, 1),
        other => panic!("{other:?}"),
    }
    let caps = a.peer_capabilities().expect("caps").clone();
    assert_eq!(caps.audio_frames(AudioCodec::Pcma), Some(30));
    assert_eq!(caps.audio_frames(AudioCodec::Pcmu), None);
    assert!(events(&mut a).contains(&H245Event::PeerCapabilities(caps)));
}

#[test]
fn captured_msd_gets_an_ack() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    a.handle_bytes(now, &capture("frame27-h245-0.hex"));
    // The capture's terminalType 0 is below our 60: we are master, so the peer is slave.
    match a.poll_transmit() {
        Some(MultimediaSystemControlMessage::response(
            ResponseMessage::masterSlaveDeterminationAck(ack),
        )) => assert_eq!(ack.decision, MasterSlaveDeterminationAckDecision::slave(())),
        other => panic!("{other:?}"),
    }
}

#[test]
fn captured_olc_is_acked_with_our_addresses() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    a.handle_bytes(now, &capture("frame38-h245-0.hex"));
    let Some(MultimediaSystemControlMessage::response(ResponseMessage::openLogicalChannelAck(ack))) =
        a.poll_transmit()
    else {
        panic!("no OLCAck");
    };
    let (rtp, rtcp, session) = channels::ack_addresses(&ack);
    assert_eq!(rtp, Some(addrs(1, 5000).rtp));
    assert_eq!(rtcp, Some(addrs(1, 5000).rtcp));
    assert_eq!(session, Some(1));
    let e = events(&mut a);
    let inc = opened(&e, Direction::Incoming);
    assert_eq!(inc.len(), 1, "{e:?}");
    assert_eq!(inc[0].number, ack.forward_logical_channel_number.0);
    assert!(matches!(
        inc[0].codec,
        Codec::Audio {
            codec: AudioCodec::Pcma,
            ..
        }
    ));
    assert_eq!(
        inc[0].remote_rtcp,
        Some("10.1.3.143:5001".parse().expect("addr"))
    );
    // Without our audio addresses the same OLC is rejected.
    let mut b = H245::with_seed(H245Config::default(), 1);
    b.handle_bytes(now, &capture("frame38-h245-0.hex"));
    assert!(matches!(
        b.poll_transmit(),
        Some(MultimediaSystemControlMessage::response(
            ResponseMessage::openLogicalChannelReject(_)
        ))
    ));
}

#[test]
fn duplicate_acks_are_ignored() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    a.start(now);
    transmits(&mut a);
    let ack = MultimediaSystemControlMessage::response(ResponseMessage::terminalCapabilitySetAck(
        TerminalCapabilitySetAck::new(SequenceNumber(1), None),
    ));
    a.handle_message(now, ack.clone());
    a.handle_message(now, ack);
    let e = events(&mut a);
    assert_eq!(
        e.iter()
            .filter(|e| **e == H245Event::CapabilitiesAcknowledged)
            .count(),
        1
    );
    assert!(matches!(e.last(), Some(H245Event::Ignored { .. })));
}

#[test]
fn malformed_bytes_are_an_error_event_never_a_panic() {
    let now = Instant::now();
    let mut a = H245::with_seed(config(1), 1);
    a.handle_bytes(now, &[]);
    a.handle_bytes(now, &[0xff, 0xff, 0xff]);
    let e = events(&mut a);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e.iter().all(|e| matches!(e, H245Event::DecodeError(_))));
    // Every truncation and a few bit flips of the captured PDUs.
    for name in [
        "frame25-h245-0.hex",
        "frame29-h245-0.hex",
        "frame38-h245-0.hex",
        "frame41-h245-0.hex",
    ] {
        let pdu = capture(name);
        for len in 0..pdu.len() {
            a.handle_bytes(now, &pdu[..len]);
        }
        for i in 0..pdu.len() {
            let mut p = pdu.clone();
            p[i] ^= 0x5a;
            a.handle_bytes(now, &p);
        }
    }
    while a.poll_transmit_bytes().is_some() {}
    events(&mut a);
}
