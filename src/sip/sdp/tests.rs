//! Offer/answer scenarios across the module (RFC 3264 §6, §7, §8), with offers written in
//! the style of real devices (Cisco, Poly, Yealink, Asterisk, FreeSWITCH). Addresses are from
//! the documentation ranges (RFC 5737, RFC 3849).

use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::media::negotiated::{Direction, Negotiated, SrtpPolicy};

const CISCO_ROOM: &str = "v=0\r\n\
o=tandberg 1 2 IN IP4 198.51.100.10\r\n\
s=-\r\n\
c=IN IP4 198.51.100.10\r\n\
b=AS:6000\r\n\
t=0 0\r\n\
m=audio 2326 RTP/AVP 9 8 0 101\r\n\
b=TIAS:64000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
m=video 2328 RTP/AVP 97 126\r\n\
b=TIAS:6000000\r\n\
a=rtpmap:97 H264/90000\r\n\
a=fmtp:97 profile-level-id=42e016;max-mbps=245000;max-fs=8160;packetization-mode=0\r\n\
a=rtpmap:126 H264/90000\r\n\
a=fmtp:126 profile-level-id=42e016;max-mbps=245000;max-fs=8160;packetization-mode=1\r\n\
a=content:main\r\n\
a=label:11\r\n\
a=rtcp-fb:* nack pli\r\n\
a=sendrecv\r\n\
m=application 5070 TCP/BFCP *\r\n\
a=setup:actpass\r\n\
a=connection:new\r\n\
a=floorctrl:c-s\r\n\
a=confid:1\r\n\
a=floorid:2 mstrm:12\r\n\
a=userid:1\r\n\
m=video 2330 RTP/AVP 97\r\n\
a=rtpmap:97 H264/90000\r\n\
a=content:slides\r\n\
a=label:12\r\n\
a=sendrecv\r\n";

const POLY_GROUP: &str = "v=0\r\n\
o=GroupSeries 1234567890 0 IN IP4 198.51.100.20\r\n\
s=-\r\n\
c=IN IP4 198.51.100.20\r\n\
b=AS:2048\r\n\
t=0 0\r\n\
a=sendrecv\r\n\
m=audio 49152 RTP/AVP 115 102 9 15 0 8 18 101\r\n\
a=rtpmap:115 G7221/32000\r\n\
a=fmtp:115 bitrate=48000\r\n\
a=rtpmap:102 G7221/16000\r\n\
a=fmtp:102 bitrate=32000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:15 G728/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
m=video 49154 RTP/AVPF 109 96\r\n\
a=rtpmap:109 H264/90000\r\n\
a=fmtp:109 profile-level-id=428016; max-br=1920; packetization-mode=1\r\n\
a=rtpmap:96 H263-1998/90000\r\n\
a=rtcp-fb:* ccm fir\r\n\
m=application 49156 UDP/BFCP *\r\n\
a=floorctrl:c-only\r\n";

/// A Yealink desk phone, LF line endings, no session-level direction.
const YEALINK: &str = "v=0\n\
o=- 20049 20049 IN IP4 198.51.100.30\n\
s=SDP data\n\
c=IN IP4 198.51.100.30\n\
t=0 0\n\
m=audio 11796 RTP/AVP 0 8 9 18 101\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:9 G722/8000\n\
a=rtpmap:18 G729/8000\n\
a=fmtp:18 annexb=no\n\
a=ptime:20\n\
a=sendrecv\n\
a=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-15\n";

/// Asterisk (chan_pjsip): static types without rtpmap for 0/8? It writes them, but a trunk in
/// front of it often strips them; this one has none.
const ASTERISK: &str = "v=0\r\n\
o=- 1925385512 1925385512 IN IP4 198.51.100.40\r\n\
s=Asterisk\r\n\
c=IN IP4 198.51.100.40\r\n\
t=0 0\r\n\
m=audio 10030 RTP/AVP 0 8 3 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

const FREESWITCH: &str = "v=0\r\n\
o=FreeSWITCH 1700000000 1700000001 IN IP4 198.51.100.50\r\n\
s=FreeSWITCH\r\n\
c=IN IP4 198.51.100.50\r\n\
t=0 0\r\n\
m=audio 24680 RTP/AVP 102 9 0 8 100 101 13\r\n\
a=rtpmap:102 opus/48000/2\r\n\
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10; maxptime=40\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:100 telephone-event/48000\r\n\
a=fmtp:100 0-16\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtpmap:13 CN/8000\r\n\
a=ptime:20\r\n\
a=rtcp:24681 IN IP4 198.51.100.50\r\n\
a=rtcp-mux\r\n";

// === helpers ===

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad test address {s}"))
}

fn local() -> LocalMedia {
    LocalMedia::new(ip("203.0.113.7"), 30000).unwrap_or_else(|e| panic!("{e}"))
}

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Answers `offer`, renders it, and checks what every answer must satisfy: it parses again,
/// has the offer's m-lines in order with their media and proto, exactly one active m-line
/// carrying one codec (plus telephone-event), and our address.
fn answer_checked(offer: &str, policy: &MediaPolicy, local: &LocalMedia) -> (String, Negotiated) {
    let offer = parse(offer);
    let answer = answer(&offer, policy, local).unwrap_or_else(|r| panic!("rejected: {r}"));
    let text = SdpSession::new(42).render(&answer.sdp);
    let parsed = parse(&text);
    assert_eq!(parsed.media.len(), offer.media.len(), "{text}");
    for (i, (o, a)) in offer.media.iter().zip(&parsed.media).enumerate() {
        assert_eq!(
            (&o.media, &o.proto_text),
            (&a.media, &a.proto_text),
            "m-line {i}\n{text}"
        );
        if i == answer.negotiated.media_index {
            assert_eq!(a.port, local.rtp_port());
            let real: Vec<_> = a
                .codecs()
                .into_iter()
                .filter(|(_, c)| !c.is_telephone_event())
                .collect();
            assert_eq!(real.len(), 1, "one codec\n{text}");
            assert_eq!(real[0].0, answer.negotiated.pt);
            assert!(a
                .payload_types()
                .iter()
                .all(|pt| o.payload_types().contains(pt)));
            let dir = parsed.direction_of(a);
            assert_eq!(dir, answer.negotiated.direction);
            if !offer.direction_of(o).receives() || !offer.direction_of(o).sends() {
                assert_ne!(dir, Direction::SendRecv, "hold answered sendrecv\n{text}");
            }
        } else {
            assert_eq!(a.port, 0, "m-line {i} rejected\n{text}");
            assert_eq!(a.formats.len(), 1);
            assert_eq!(a.formats.first(), o.formats.first());
        }
        assert_eq!(
            parsed.connection_of(a).and_then(|c| c.ip),
            Some(local.address_for(answer.negotiated.remote_rtp.ip().into()))
        );
    }
    (text, answer.negotiated)
}

fn with_order(order: CodecOrder) -> MediaPolicy {
    MediaPolicy {
        codec_order: order,
        ..MediaPolicy::default()
    }
}

// === answering ===

#[test]
fn real_world_offers() {
    struct Case {
        name: &'static str,
        offer: &'static str,
        policy: MediaPolicy,
        codec: &'static str,
        pt: u8,
        dtmf: Option<u8>,
        rtp: &'static str,
        rtcp: &'static str,
        ptime: u32,
    }
    let cases = [
        Case {
            name: "cisco room: video, BFCP, slides rejected",
            offer: CISCO_ROOM,
            policy: MediaPolicy::default(),
            codec: "G722",
            pt: 9,
            dtmf: Some(101),
            rtp: "198.51.100.10:2326",
            rtcp: "198.51.100.10:2327",
            ptime: 20,
        },
        Case {
            name: "poly: wideband G.722.1 skipped, G722 taken",
            offer: POLY_GROUP,
            policy: MediaPolicy::default(),
            codec: "G722",
            pt: 9,
            dtmf: Some(101),
            rtp: "198.51.100.20:49152",
            rtcp: "198.51.100.20:49153",
            ptime: 20,
        },
        Case {
            name: "yealink, our order",
            offer: YEALINK,
            policy: MediaPolicy::default(),
            codec: "G722",
            pt: 9,
            dtmf: Some(101),
            rtp: "198.51.100.30:11796",
            rtcp: "198.51.100.30:11797",
            ptime: 20,
        },
        Case {
            name: "yealink, their order",
            offer: YEALINK,
            policy: with_order(CodecOrder::Theirs),
            codec: "PCMU",
            pt: 0,
            dtmf: Some(101),
            rtp: "198.51.100.30:11796",
            rtcp: "198.51.100.30:11797",
            ptime: 20,
        },
        Case {
            name: "asterisk: static types without rtpmap",
            offer: ASTERISK,
            policy: MediaPolicy::default(),
            codec: "PCMA",
            pt: 8,
            dtmf: Some(101),
            rtp: "198.51.100.40:10030",
            rtcp: "198.51.100.40:10031",
            ptime: 20,
        },
        Case {
            name: "freeswitch: opus with telephone-event/48000 and rtcp-mux",
            offer: FREESWITCH,
            policy: MediaPolicy::default(),
            codec: "opus",
            pt: 102,
            dtmf: Some(100),
            rtp: "198.51.100.50:24680",
            rtcp: "198.51.100.50:24680",
            ptime: 20,
        },
        Case {
            name: "freeswitch without rtcp-mux support uses a=rtcp",
            offer: FREESWITCH,
            policy: MediaPolicy {
                rtcp_mux: false,
                ..MediaPolicy::default()
            },
            codec: "opus",
            pt: 102,
            dtmf: Some(100),
            rtp: "198.51.100.50:24680",
            rtcp: "198.51.100.50:24681",
            ptime: 20,
        },
        Case {
            name: "freeswitch, G.711 only: telephone-event/8000",
            offer: FREESWITCH,
            policy: MediaPolicy::from_names(&["PCMU", "PCMA"]).unwrap_or_default(),
            codec: "PCMU",
            pt: 0,
            dtmf: Some(101),
            rtp: "198.51.100.50:24680",
            rtcp: "198.51.100.50:24680",
            ptime: 20,
        },
        Case {
            name: "telephone-event disabled",
            offer: YEALINK,
            policy: MediaPolicy {
                telephone_event: false,
                ..MediaPolicy::default()
            },
            codec: "G722",
            pt: 9,
            dtmf: None,
            rtp: "198.51.100.30:11796",
            rtcp: "198.51.100.30:11797",
            ptime: 20,
        },
    ];
    for case in &cases {
        let (text, n) = answer_checked(case.offer, &case.policy, &local());
        let ctx = format!("{}\n{text}", case.name);
        assert!(n.codec.is(case.codec), "{ctx}");
        assert_eq!(n.pt, case.pt, "{ctx}");
        assert_eq!(n.dtmf_pt, case.dtmf, "{ctx}");
        assert_eq!(
            n.remote_rtp,
            case.rtp
                .parse::<SocketAddr>()
                .ok()
                .unwrap_or_else(|| panic!())
        );
        assert_eq!(n.remote_rtcp.to_string(), case.rtcp, "{ctx}");
        assert_eq!(n.ptime, case.ptime, "{ctx}");
        assert_eq!(n.direction, Direction::SendRecv, "{ctx}");
        assert!(text.contains("c=IN IP4 203.0.113.7\r\n"), "{ctx}");
        assert!(!text.contains("a=crypto"), "{ctx}");
    }
}

#[test]
fn cisco_answer_text() {
    let (text, _) = answer_checked(CISCO_ROOM, &MediaPolicy::default(), &local());
    let want = "v=0\r\n\
        o=jonction 42 42 IN IP4 203.0.113.7\r\n\
        s=jonction\r\n\
        c=IN IP4 203.0.113.7\r\n\
        t=0 0\r\n\
        m=audio 30000 RTP/AVP 9 101\r\n\
        a=rtpmap:9 G722/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n\
        a=ptime:20\r\n\
        a=sendrecv\r\n\
        m=video 0 RTP/AVP 97\r\n\
        m=application 0 TCP/BFCP *\r\n\
        m=video 0 RTP/AVP 97\r\n";
    assert_eq!(text, want);
}

#[test]
fn opus_answer_follows_rfc_7587() {
    let offer = "v=0\no=- 1 1 IN IP4 198.51.100.60\ns=-\nc=IN IP4 198.51.100.60\nt=0 0\n\
        m=audio 5000 RTP/AVP 111 9 101\n\
        a=rtpmap:111 opus/48000/2\n\
        a=fmtp:111 stereo=1; sprop-stereo=1; maxplaybackrate=24000; sprop-maxcapturerate=16000\n\
        a=rtpmap:101 telephone-event/8000\n";
    let (text, n) = answer_checked(offer, &MediaPolicy::default(), &local());
    // telephone-event/8000 beside Opus is accepted: devices offer it so, and decode it.
    assert!(text.contains("m=audio 30000 RTP/AVP 111 101\r\n"), "{text}");
    assert!(
        text.contains("a=rtpmap:101 telephone-event/8000\r\n"),
        "{text}"
    );
    assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"), "{text}");
    assert!(
        text.contains("a=fmtp:111 useinbandfec=1; minptime=10\r\n"),
        "{text}"
    );
    assert_eq!(n.clock_rate, 48000);
    // RFC 4733 §2.1 wants the codec's rate; 8 kHz events are accepted as the fallback.
    assert_eq!(n.dtmf_pt, Some(101));
    let opus = n.opus.unwrap_or_default();
    assert_eq!(opus.stereo, Some(true));
    assert_eq!(opus.sprop_stereo, Some(true));
    assert_eq!(opus.max_playback_rate, Some(24000));
    assert_eq!(opus.sprop_max_capture_rate, Some(16000));
}

#[test]
fn hold_and_direction() {
    // (session-level extra lines, media-level extra lines, our answered direction)
    let cases: &[(&str, &str, Direction)] = &[
        (
            "c=IN IP4 198.51.100.30\n",
            "a=sendrecv\n",
            Direction::SendRecv,
        ),
        (
            "c=IN IP4 198.51.100.30\n",
            "a=sendonly\n",
            Direction::RecvOnly,
        ),
        (
            "c=IN IP4 198.51.100.30\na=sendonly\n",
            "",
            Direction::RecvOnly,
        ),
        (
            "c=IN IP4 198.51.100.30\na=sendonly\n",
            "a=sendrecv\n",
            Direction::SendRecv,
        ),
        (
            "c=IN IP4 198.51.100.30\n",
            "a=recvonly\n",
            Direction::SendOnly,
        ),
        (
            "c=IN IP4 198.51.100.30\n",
            "a=inactive\n",
            Direction::Inactive,
        ),
        ("c=IN IP4 0.0.0.0\n", "", Direction::RecvOnly),
        ("c=IN IP4 0.0.0.0\n", "a=sendrecv\n", Direction::RecvOnly),
        ("c=IN IP4 0.0.0.0\n", "a=recvonly\n", Direction::Inactive),
        (
            "c=IN IP4 198.51.100.30\n",
            "c=IN IP4 0.0.0.0\n",
            Direction::RecvOnly,
        ),
    ];
    for (session, media, want) in cases {
        let offer = format!(
            "v=0\no=- 1 1 IN IP4 198.51.100.30\ns=-\n{session}t=0 0\n\
             m=audio 4000 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\n{media}"
        );
        let (text, n) = answer_checked(&offer, &MediaPolicy::default(), &local());
        assert_eq!(n.direction, *want, "{session:?} {media:?}");
        assert!(text.contains(&format!("a={}\r\n", want.as_str())), "{text}");
        assert_eq!(
            text.matches("sendrecv").count(),
            usize::from(*want == Direction::SendRecv)
        );
    }
    // Our own hold limits the answer too.
    let on_hold = local().with_direction(Direction::SendOnly);
    let (_, n) = answer_checked(YEALINK, &MediaPolicy::default(), &on_hold);
    assert_eq!(n.direction, Direction::SendOnly);
}

#[test]
fn ipv6_offers() {
    let offer = "v=0\no=- 7 7 IN IP6 2001:db8::30\ns=-\nc=IN IP6 2001:db8::30\nt=0 0\n\
        m=audio 6000 RTP/AVP 8 0\n";
    let (text, n) = answer_checked(offer, &MediaPolicy::default(), &local());
    assert_eq!(n.remote_rtp, SocketAddr::new(ip("2001:db8::30"), 6000));
    assert!(
        text.contains("c=IN IP4 203.0.113.7"),
        "no v6 address configured\n{text}"
    );
    let dual = local()
        .with_alternate(ip("2001:db8::7"))
        .unwrap_or_else(|e| panic!("{e}"));
    let (text, _) = answer_checked(offer, &MediaPolicy::default(), &dual);
    assert!(
        text.contains("o=jonction 42 42 IN IP6 2001:db8::7\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP6 2001:db8::7\r\n"), "{text}");
}

#[test]
fn ptime_choices() {
    // (offer's media attributes, our ptime preference, negotiated ptime)
    let cases: &[(&str, Option<u32>, u32)] = &[
        ("a=ptime:30\n", Some(20), 30),
        ("", Some(20), 20),
        ("", Some(30), 30),
        ("", None, 20),
        ("a=ptime:60\na=maxptime:40\n", Some(20), 40),
        ("a=ptime:0\n", Some(20), 20),
        ("a=ptime:1000\n", Some(20), 20),
    ];
    for (attrs, ours, want) in cases {
        let offer = format!(
            "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n\
             m=audio 4000 RTP/AVP 0\n{attrs}"
        );
        let policy = MediaPolicy {
            ptime: *ours,
            ..MediaPolicy::default()
        };
        let (text, n) = answer_checked(&offer, &policy, &local());
        assert_eq!(n.ptime, *want, "{attrs:?} {ours:?}");
        assert_eq!(text.contains("a=ptime"), ours.is_some());
    }
}

#[test]
fn srtp_offers() {
    use crate::media::srtp::SrtpSuite;
    let crypto =
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj\n";
    let head = "v=0\no=- 1 1 IN IP4 198.51.100.70\ns=-\nc=IN IP4 198.51.100.70\nt=0 0\n";
    let with = |srtp| MediaPolicy {
        srtp,
        ..MediaPolicy::default()
    };
    let refused = |offer: &str, policy: &MediaPolicy| {
        let r = answer(&parse(offer), policy, &local())
            .err()
            .unwrap_or_else(|| panic!("accepted: {offer}"));
        assert_eq!(r.status, 488);
        assert_eq!(
            r.warning.as_deref(),
            Some("302 203.0.113.7 \"Incompatible transport protocol\"")
        );
    };
    // SAVP with a key (optional, the default): SRTP, our own key with the same tag and suite.
    let savp = format!("{head}m=audio 4000 RTP/SAVP 8 0\n{crypto}");
    let (text, n) = answer_checked(&savp, &MediaPolicy::default(), &local());
    let keys = n.srtp.expect("keys");
    assert_eq!(
        (keys.local.tag, keys.local.suite),
        (1, SrtpSuite::AesCm128HmacSha1_80)
    );
    assert_ne!(keys.local.key, keys.remote.key, "our own key");
    assert!(text.contains("m=audio 30000 RTP/SAVP 8\r\n"), "{text}");
    assert!(
        text.contains(&format!("a=crypto:{}\r\n", keys.local.to_sdp())),
        "{text}"
    );
    // SAVP where SRTP is off; SAVP without a usable key; plain RTP where it is required.
    refused(&savp, &with(SrtpPolicy::Off));
    refused(
        &format!("{head}m=audio 4000 RTP/SAVP 8\na=crypto:1 F8_128_HMAC_SHA1_80 inline:AAAA\n"),
        &MediaPolicy::default(),
    );
    refused(
        &format!("{head}m=audio 4000 RTP/AVP 8\n"),
        &with(SrtpPolicy::Required),
    );
    // SAVP then AVP (capability fallback): SRTP when allowed, the plain line when off.
    let both = format!("{head}m=audio 4000 RTP/SAVP 8\n{crypto}m=audio 4002 RTP/AVP 8\n");
    let (_, n) = answer_checked(&both, &MediaPolicy::default(), &local());
    assert_eq!(n.media_index, 0);
    let (_, n) = answer_checked(&both, &with(SrtpPolicy::Off), &local());
    assert_eq!(
        (n.media_index, n.remote_rtp.port(), n.srtp),
        (1, 4002, None)
    );
    // Best-effort SRTP (a=crypto on RTP/AVP): keyed unless off.
    let best_effort = format!("{head}m=audio 4000 RTP/AVP 8\n{crypto}");
    let (text, n) = answer_checked(&best_effort, &with(SrtpPolicy::Required), &local());
    assert!(n.srtp.is_some() && text.contains("a=crypto:1 "), "{text}");
    let (text, n) = answer_checked(&best_effort, &with(SrtpPolicy::Off), &local());
    assert!(n.srtp.is_none() && !text.contains("crypto"), "{text}");
    // DTLS-SRTP (WebRTC-style) audio plus plain audio.
    let offer = format!("{head}m=audio 9 UDP/TLS/RTP/SAVPF 111\nm=audio 4002 RTP/AVPF 0\n");
    let (text, n) = answer_checked(&offer, &MediaPolicy::default(), &local());
    assert_eq!(n.media_index, 1);
    assert!(
        text.contains("m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n"),
        "{text}"
    );
    assert!(text.contains("m=audio 30000 RTP/AVPF 0\r\n"), "{text}");
}

/// Our SRTP-required offer (delayed offer) and the answer to it pair keys by tag; an answer
/// without a key to an SRTP offer fails.
#[test]
fn srtp_offer_and_answer() {
    let policy = MediaPolicy {
        srtp: SrtpPolicy::Required,
        ..MediaPolicy::default()
    };
    let ours = SdpSession::new(1).render(&offer(&policy, &local()));
    assert!(
        ours.contains("RTP/SAVP") && ours.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{ours}"
    );
    let peer = crate::media::srtp::CryptoAttribute::generate(
        1,
        crate::media::srtp::SrtpSuite::AesCm128HmacSha1_80,
    );
    let head = "v=0\no=- 1 1 IN IP4 198.51.100.70\ns=-\nc=IN IP4 198.51.100.70\nt=0 0\n";
    let reply = format!(
        "{head}m=audio 4000 RTP/SAVP 0\na=crypto:{}\n",
        peer.to_sdp()
    );
    let n = accept_answer(&parse(&ours), &parse(&reply)).expect("accepted");
    let keys = n.srtp.expect("keys");
    assert_eq!(keys.remote, peer);
    assert!(ours.contains(&keys.local.to_sdp()));
    let plain = format!("{head}m=audio 4000 RTP/SAVP 0\n");
    assert_eq!(
        accept_answer(&parse(&ours), &parse(&plain)).err(),
        Some(NegotiationError::SrtpRequired)
    );
}

#[test]
fn audio_line_selection() {
    let head = "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n";
    // (m-lines, chosen index)
    let cases: &[(&str, usize)] = &[
        ("m=audio 4000 RTP/AVP 18\nm=audio 4002 RTP/AVP 0\n", 1),
        ("m=audio 0 RTP/AVP 0\nm=audio 4002 RTP/AVP 8\n", 1),
        (
            "m=video 4000 RTP/AVP 96\nm=audio 4002 RTP/AVP 0\nm=audio 4004 RTP/AVP 8\n",
            1,
        ),
        ("m=image 4000 udptl t38\nm=audio 4002 RTP/AVP 0\n", 1),
    ];
    for (lines, want) in cases {
        let (_, n) = answer_checked(&format!("{head}{lines}"), &MediaPolicy::default(), &local());
        assert_eq!(n.media_index, *want, "{lines}");
    }
}

#[test]
fn refusals() {
    let head = "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\n";
    // (m-lines, status, warning)
    let cases: &[(&str, u16, Option<&str>)] = &[
        (
            "m=audio 4000 RTP/AVP 18 4\na=rtpmap:18 G729/8000\n",
            488,
            Some("305 203.0.113.7 \"Incompatible media format\""),
        ),
        (
            "m=audio 4000 RTP/AVP 96 101\na=rtpmap:101 telephone-event/8000\n",
            488,
            Some("305 203.0.113.7 \"Incompatible media format\""),
        ),
        (
            "m=video 4000 RTP/AVP 96\na=rtpmap:96 H264/90000\n",
            488,
            Some("304 203.0.113.7 \"Media type not available\""),
        ),
        (
            "m=audio 0 RTP/AVP 0\n",
            488,
            Some("304 203.0.113.7 \"Media type not available\""),
        ),
        (
            "",
            488,
            Some("304 203.0.113.7 \"Media type not available\""),
        ),
    ];
    for (lines, status, warning) in cases {
        let offer = parse(&format!("{head}{lines}"));
        let r = answer(&offer, &MediaPolicy::default(), &local())
            .err()
            .unwrap_or_else(|| panic!("accepted {lines}"));
        assert_eq!(
            (r.status, r.warning.as_deref()),
            (*status, *warning),
            "{lines}"
        );
    }
    // No c= anywhere: malformed, 400.
    let offer = parse("v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n");
    let r = answer(&offer, &MediaPolicy::default(), &local()).err();
    assert_eq!(
        r.map(|r| (r.status, r.error)),
        Some((400, NegotiationError::NoConnection))
    );
    // A host name in c=: the core does not resolve.
    let offer = parse(
        "v=0\no=- 1 1 IN IP4 a\ns=-\nc=IN IP4 pbx.example.net\nt=0 0\nm=audio 4000 RTP/AVP 0\n",
    );
    let r = answer(&offer, &MediaPolicy::default(), &local()).err();
    assert_eq!(
        r.map(|r| r.error),
        Some(NegotiationError::UnresolvedAddress(
            "pbx.example.net".into()
        ))
    );
    // IPv6 warn-agent is bracketed.
    let v6 = LocalMedia::new(ip("2001:db8::7"), 30000).unwrap_or_else(|e| panic!("{e}"));
    let r = answer(
        &parse(&format!("{head}m=audio 4000 RTP/AVP 18\n")),
        &MediaPolicy::default(),
        &v6,
    );
    assert_eq!(
        r.err().and_then(|r| r.warning),
        Some("305 [2001:db8::7] \"Incompatible media format\"".into())
    );
}

/// A tiny deterministic generator, so the no-panic test needs no dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn mutated_offers_never_panic() {
    let seeds = [CISCO_ROOM, POLY_GROUP, YEALINK, ASTERISK, FREESWITCH];
    let alphabet = b" \r\n=:/0123456789amcvtoIPNRTAVP.*-;";
    let mut rng = Lcg(7);
    for round in 0..4000 {
        let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
        for _ in 0..(1 + rng.next() % 8) {
            let at = (rng.next() as usize) % bytes.len().max(1);
            match rng.next() % 4 {
                0 if !bytes.is_empty() => {
                    bytes.remove(at.min(bytes.len() - 1));
                }
                1 => bytes.insert(at, alphabet[(rng.next() as usize) % alphabet.len()]),
                2 => bytes.truncate(at),
                _ => bytes.insert(at, (rng.next() % 256) as u8),
            }
        }
        if let Ok(offer) = SessionDescription::parse(&bytes) {
            if let Ok(a) = answer(&offer, &MediaPolicy::default(), &local()) {
                let text = SdpSession::new(1).render(&a.sdp);
                let again = SessionDescription::parse(text.as_bytes());
                assert!(again.is_ok(), "our answer does not parse:\n{text}");
                assert_eq!(again.map(|a| a.media.len()).ok(), Some(offer.media.len()));
            }
        }
    }
}

// === offering ===

#[test]
fn our_offer() {
    let text = SdpSession::new(5).render(&offer(&MediaPolicy::default(), &local()));
    let want = "v=0\r\n\
        o=jonction 5 5 IN IP4 203.0.113.7\r\n\
        s=jonction\r\n\
        c=IN IP4 203.0.113.7\r\n\
        t=0 0\r\n\
        m=audio 30000 RTP/AVP 96 9 8 0 97 101\r\n\
        a=rtpmap:96 opus/48000/2\r\n\
        a=fmtp:96 useinbandfec=1; minptime=10\r\n\
        a=rtpmap:9 G722/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:97 telephone-event/48000\r\n\
        a=fmtp:97 0-16\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n\
        a=ptime:20\r\n\
        a=rtcp-mux\r\n\
        a=sendrecv\r\n";
    assert_eq!(text, want);
}

#[test]
fn answers_to_our_offer() {
    let ours = parse(&SdpSession::new(5).render(&offer(&MediaPolicy::default(), &local())));
    let head = "v=0\no=- 9 9 IN IP4 198.51.100.30\ns=-\nc=IN IP4 198.51.100.30\nt=0 0\n";
    // (answer m-line and attributes, expected codec/pt/dtmf/direction/mux, or the error)
    type Want = Result<(&'static str, u8, Option<u8>, Direction, bool), NegotiationError>;
    let cases: &[(&str, Want)] = &[
        (
            "m=audio 5000 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\n",
            Ok(("PCMA", 8, Some(101), Direction::SendRecv, false)),
        ),
        (
            "m=audio 5000 RTP/AVP 96 97\na=rtpmap:96 opus/48000/2\na=rtpmap:97 telephone-event/48000\na=rtcp-mux\n",
            Ok(("opus", 96, Some(97), Direction::SendRecv, true)),
        ),
        // No rtpmap for our dynamic type: our definition holds.
        ("m=audio 5000 RTP/AVP 96\n", Ok(("opus", 96, None, Direction::SendRecv, false))),
        // Several codecs answered: the first one counts.
        ("m=audio 5000 RTP/AVP 0 8\n", Ok(("PCMU", 0, None, Direction::SendRecv, false))),
        ("m=audio 5000 RTP/AVP 9\na=recvonly\n", Ok(("G722", 9, None, Direction::SendOnly, false))),
        ("m=audio 5000 RTP/AVP 9\na=sendonly\n", Ok(("G722", 9, None, Direction::RecvOnly, false))),
        ("m=audio 5000 RTP/AVP 9\nc=IN IP4 0.0.0.0\n", Ok(("G722", 9, None, Direction::RecvOnly, false))),
        ("m=audio 5000 RTP/AVP 18\n", Err(NegotiationError::UnofferedCodec(18))),
        (
            "m=audio 5000 RTP/AVP 96\na=rtpmap:96 PCMA/8000\n",
            Err(NegotiationError::UnofferedCodec(96)),
        ),
        ("m=audio 5000 RTP/AVP 101\n", Err(NegotiationError::NoCommonCodec)),
        ("m=audio 0 RTP/AVP 0\n", Err(NegotiationError::AudioRejected)),
        (
            "m=audio 5000 RTP/AVP 0\nm=video 0 RTP/AVP 96\n",
            Err(NegotiationError::MediaCountMismatch { offer: 1, answer: 2 }),
        ),
    ];
    for (lines, want) in cases {
        let answer = parse(&format!("{head}{lines}"));
        let got = accept_answer(&ours, &answer).map(|n| {
            (
                n.codec.name.clone(),
                n.pt,
                n.dtmf_pt,
                n.direction,
                n.rtcp_mux,
            )
        });
        let want = want
            .clone()
            .map(|(c, pt, dtmf, dir, mux)| (c.to_string(), pt, dtmf, dir, mux));
        assert_eq!(got, want, "{lines}");
    }
}

#[test]
fn we_answer_our_own_offer() {
    // Our offer, answered by our own answerer with another preference order, accepted back.
    let session_offer = offer(&MediaPolicy::default(), &local());
    let offer_text = SdpSession::new(1).render(&session_offer);
    let offer_sdp = parse(&offer_text);
    let peer = LocalMedia::new(ip("198.51.100.99"), 40000).unwrap_or_else(|e| panic!("{e}"));
    let peer_policy = MediaPolicy::from_names(&["PCMU", "G722"]).unwrap_or_default();
    let a = answer(&offer_sdp, &peer_policy, &peer).unwrap_or_else(|r| panic!("{r}"));
    let answer_text = SdpSession::new(2).render(&a.sdp);
    let n = accept_answer(&offer_sdp, &parse(&answer_text)).unwrap_or_else(|e| panic!("{e}"));
    assert!(n.codec.is("PCMU"));
    assert_eq!((n.pt, n.dtmf_pt, n.rtcp_mux), (0, Some(101), true));
    assert_eq!(n.remote_rtp, SocketAddr::new(ip("198.51.100.99"), 40000));
    assert_eq!(n.remote_rtcp, n.remote_rtp);
    assert_eq!(
        a.negotiated.remote_rtp,
        SocketAddr::new(ip("203.0.113.7"), 30000)
    );
}

// === re-INVITEs and versions ===

#[test]
fn versions_follow_changes() {
    let policy = MediaPolicy::default();
    let mut session = SdpSession::new(1000);
    let hold = CISCO_ROOM.replacen("a=sendrecv", "a=sendonly", 1);
    // (offer, expected version after rendering our answer)
    let steps: &[(&str, u64)] = &[
        (CISCO_ROOM, 1000),
        (CISCO_ROOM, 1000),
        (&hold, 1001),
        (&hold, 1001),
        (CISCO_ROOM, 1002),
        (YEALINK, 1003),
    ];
    for (i, (offer_text, version)) in steps.iter().enumerate() {
        let a = answer(&parse(offer_text), &policy, &local()).unwrap_or_else(|r| panic!("{r}"));
        let text = session.render(&a.sdp);
        assert_eq!(session.version(), *version, "step {i}");
        assert_eq!(parse(&text).session_version, *version, "step {i}");
        assert_eq!(parse(&text).session_id, "1000");
    }
}

#[test]
fn reoffer_keeps_m_lines() {
    let policy = MediaPolicy::default();
    let remote = parse(CISCO_ROOM);
    let a = answer(&remote, &policy, &local()).unwrap_or_else(|r| panic!("{r}"));
    let mut session = SdpSession::new(7);
    session.render(&a.sdp);
    // We put the room on hold, then resume.
    let hold = reoffer(
        &remote,
        &a.negotiated,
        &policy,
        &local().with_direction(Direction::SendOnly),
    );
    let hold_text = session.render(&hold);
    let parsed = parse(&hold_text);
    assert_eq!(session.version(), 8);
    assert_eq!(parsed.media.len(), 4);
    assert_eq!(parsed.media[0].payload_types(), vec![9, 101]);
    assert_eq!(parsed.direction_of(&parsed.media[0]), Direction::SendOnly);
    assert!(parsed.media[1..].iter().all(|m| m.port == 0));
    // The room answers recvonly to our hold: we send, it does not.
    let room_answer = CISCO_ROOM.replacen("a=sendrecv", "a=recvonly", 1);
    let n = accept_answer(&parsed, &parse(&room_answer)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n.direction, Direction::SendOnly);
    let resume = reoffer(&remote, &a.negotiated, &policy, &local());
    session.render(&resume);
    assert_eq!(session.version(), 9);
}
