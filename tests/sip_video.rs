//! Keyframe requests across the whole gateway, on loopback: a SIP video device (a raw UDP user
//! agent sending the ffmpeg stream of `tests/data/video`) calls a room of the embedded server,
//! where a viewer (jonction's own LiveKit client) subscribes to its video and publishes H.264
//! of its own.
//! - the viewer's PLI reaches the device as RTCP PLI and, since the device negotiated no RTCP
//!   feedback, as SIP INFO `picture_fast_update` too (RFC 5168; measured: printed, and bounded
//!   well below the gateway's own 1 s retry, so it is the relayed request that arrived);
//! - the device's RTCP PLI, and later its INFO, reach the viewer's track as keyframe requests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use jonction::config::Config;
use jonction::livekit::connection::RoomLink;
use jonction::livekit::ClientEvent;
use jonction::media::h264::annex_b::access_units;
use jonction::media::h264::packetize::{PacketizationMode, Packetizer, WEBRTC_MAX_PAYLOAD};
use jonction::media::h264::AccessUnit;
use jonction::media::rtp::packet::RtpWriter;
use jonction::media::rtp::rtcp::{parse_compound, write_compound, Pli, RtcpPacket};
use jonction::media::rtp::Ssrc;
use jonction::token::{Keys, TokenRequest};
use livekit_protocol as proto;
use str0m::media::{Frequency, KeyframeRequestKind, MediaKind, MediaTime};
use tokio::net::UdpSocket;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PT: u8 = 102;

fn stream() -> Vec<AccessUnit> {
    let path = format!(
        "{}/tests/data/video/a_640x360.h264",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    access_units(&bytes, 3000)
}

async fn start(records: &std::path::Path) -> jonction::gateway::Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dialplans = format!("{}/dialplans", env!("CARGO_MANIFEST_DIR"));
    let env: Vec<(String, String)> = [
        ("JONCTION_HTTP__LISTEN", "127.0.0.1:0"),
        ("JONCTION_ROOMS__UDP_PORT", "0"),
        ("JONCTION_ROOMS__BIND_IPS", "127.0.0.1"),
        ("JONCTION_SIP__LISTEN", "127.0.0.1:0"),
        ("JONCTION_H323__LISTEN", "127.0.0.1:0"),
        ("JONCTION_SIP__RTP_PORT_MIN", "36000"),
        ("JONCTION_SIP__RTP_PORT_MAX", "36999"),
        ("JONCTION_DIALPLAN__DIR", dialplans.as_str()),
        (
            "JONCTION_SIP__CALL_RECORDS",
            records.to_str().expect("utf-8 path"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let cfg = Config::load_with_env(None, &env).expect("test config");
    jonction::gateway::start(&cfg)
        .await
        .expect("gateway starts")
}

/// Waits (bounded) for an event matching `pred`.
async fn wait_for(link: &mut RoomLink, what: &str, mut pred: impl FnMut(&ClientEvent) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, link.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|e| panic!("link failed waiting for {what}: {e}"));
        if pred(&ev) {
            return;
        }
    }
}

/// The whole header line of a message starting with `name` (lowercase, with its colon).
fn header(msg: &str, name: &str) -> String {
    msg.lines()
        .find(|l| l.to_ascii_lowercase().starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{msg}"))
        .to_string()
}

/// The port of the `m=video` line of a message's SDP (0: refused).
fn video_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=video "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no video m-line in:\n{msg}"))
}

/// The RTP packets of one picture (sequence numbers continue from `seq`).
fn rtp_packets(
    pk: &mut Packetizer,
    au: &AccessUnit,
    pt: u8,
    ssrc: Ssrc,
    ts: u32,
    seq: &mut u16,
) -> Vec<Vec<u8>> {
    let mut pkts = Vec::new();
    pk.packetize(au, |payload, marker| {
        *seq = seq.wrapping_add(1);
        let mut p = Vec::new();
        RtpWriter::new(pt, *seq, ts, ssrc)
            .marker(marker)
            .write(payload, &mut p)
            .expect("rtp");
        pkts.push(p);
    });
    pkts
}

/// Reads SIP responses until one with `status`; returns it.
async fn response(sip: &UdpSocket, status: u16) -> String {
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, sip.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {status} response"))
            .expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with(&format!("SIP/2.0 {status}")) {
            return text;
        }
        assert!(
            !text.starts_with("SIP/2.0 4") && !text.starts_with("SIP/2.0 5"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_requests_cross_the_gateway_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&dir.path().join("calls.jsonl")).await;
    let gw = running.sip_addr.expect("SIP runs");
    let keys = Keys::new("devkey", "secret");
    let url = format!("ws://{}", running.http_addr);

    // The viewer joins first and publishes H.264 (so the device is shown it).
    let token = keys.mint(&TokenRequest::new("kf", "viewer")).expect("mint");
    let mut viewer = RoomLink::connect(&url, &token, LO)
        .await
        .expect("viewer connects");
    wait_for(&mut viewer, "viewer joined", |e| {
        matches!(e, ClientEvent::Joined { .. })
    })
    .await;
    viewer
        .client()
        .publish_video("cam", "cam", proto::TrackSource::Camera, 640, 360);
    viewer.flush();
    wait_for(&mut viewer, "viewer published", |e| {
        matches!(e, ClientEvent::Published { .. })
    })
    .await;

    // The device.
    let sip = UdpSocket::bind((LO, 0)).await.expect("sip socket");
    let audio = UdpSocket::bind((LO, 0)).await.expect("audio socket");
    let video = UdpSocket::bind((LO, 0)).await.expect("video socket");
    let (sp, ap, vp) = (
        sip.local_addr().expect("addr").port(),
        audio.local_addr().expect("addr").port(),
        video.local_addr().expect("addr").port(),
    );
    let sdp = format!(
        "v=0\r\no=dev 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {ap} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n\
         m=video {vp} RTP/AVP {PT}\r\na=rtpmap:{PT} H264/90000\r\n\
         a=fmtp:{PT} profile-level-id=42e01f;packetization-mode=1\r\n\
         a=rtcp-mux\r\n"
    );
    let invite = format!(
        "INVITE sip:kf@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bKkf1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:dev@127.0.0.1>;tag=d1\r\nTo: <sip:kf@{gw}>\r\n\
         Call-ID: kf-video-1\r\nCSeq: 1 INVITE\r\nContact: <sip:dev@127.0.0.1:{sp}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sip.send_to(invite.as_bytes(), gw)
        .await
        .expect("send INVITE");
    let ok = response(&sip, 200).await;
    let to = header(&ok, "to:");
    let gw_video = video_port(&ok);
    assert_ne!(gw_video, 0, "video refused:\n{ok}");
    let ack = format!(
        "ACK sip:kf@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bKkf2;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:dev@127.0.0.1>;tag=d1\r\n{to}\r\nCall-ID: kf-video-1\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    sip.send_to(ack.as_bytes(), gw).await.expect("send ACK");
    let gw_video = SocketAddr::new(LO, gw_video);

    let aus = stream();
    let mut pk = Packetizer::new(PacketizationMode::NonInterleaved, WEBRTC_MAX_PAYLOAD);
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    let (mut n, mut seq) = (0usize, 0u16);
    let mut buf = vec![0u8; 2048];
    let mut last_pli: Option<Instant> = None;
    let mut asked_at: Option<Instant> = None;
    let mut relayed: Option<Duration> = None;
    let mut device_pli_at: Option<Instant> = None;
    let mut device_pli_relayed: Option<Duration> = None;
    let mut device_track: Option<String> = None;
    let mut info_relayed: Option<Duration> = None;
    let mut info_sent_at: Option<Instant> = None;
    let mut info_to_publisher: Option<Duration> = None;
    let mut sip_buf = vec![0u8; 8192];
    let mut viewer_frames = 0;
    let mut device_frames = 0;
    let start = Instant::now();
    while relayed.is_none()
        || device_pli_relayed.is_none()
        || info_relayed.is_none()
        || info_to_publisher.is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "viewer frames {viewer_frames}, device packets {device_frames}, track {device_track:?}, \
             asked {asked_at:?}, relayed {relayed:?}, device PLI {device_pli_at:?} → {device_pli_relayed:?}, \
             INFO {info_relayed:?}, INFO sent {info_sent_at:?} → {info_to_publisher:?}"
        );
        tokio::select! {
            _ = tick.tick() => {
                // The device's pictures, paced at 30 fps (timestamps keep running as it loops).
                let au = &aus[n % aus.len()];
                let ts = 3000 * n as u32;
                n += 1;
                for p in rtp_packets(&mut pk, au, PT, Ssrc(0xde71ce), ts, &mut seq) {
                    video.send_to(&p, gw_video).await.expect("send RTP");
                }
                // The viewer's pictures.
                let unit = {
                    let mut v = Vec::new();
                    au.write_annex_b(&mut v);
                    v
                };
                let t = MediaTime::new(n as u64 * 3000, Frequency::NINETY_KHZ);
                if viewer.client().write("cam", "h264", Instant::now(), t, unit, None).is_ok() {
                    viewer.flush();
                }
                // Once the device's video flows and no PLI came for 1.5 s (the gateway's own
                // requests at publish time are over), the viewer asks for a keyframe.
                let quiet = last_pli.is_none_or(|t| t.elapsed() > Duration::from_millis(1500));
                if let (None, Some(track), true, true) = (asked_at, device_track.as_ref(), viewer_frames > 30, quiet) {
                    viewer.client().request_keyframe(track, KeyframeRequestKind::Pli).expect("PLI");
                    viewer.flush();
                    asked_at = Some(Instant::now());
                }
                // Once the device receives the viewer's video, it asks for a keyframe.
                if device_pli_at.is_none() && device_frames > 30 {
                    let mut pli = Vec::new();
                    write_compound(&[RtcpPacket::Pli(Pli { sender_ssrc: Ssrc(0xde71ce), media_ssrc: Ssrc(0) })], &mut pli)
                        .expect("pli");
                    video.send_to(&pli, gw_video).await.expect("send PLI");
                    device_pli_at = Some(Instant::now());
                }
                // A second later, the device asks again with SIP INFO (RFC 5168).
                if let (Some(at), None, Some(_)) = (device_pli_at, info_sent_at, device_pli_relayed) {
                    if at.elapsed() > Duration::from_secs(1) {
                        let body = "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n<media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>\r\n";
                        let info = format!(
                            "INFO sip:kf@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bKkf3;rport\r\n\
                             Max-Forwards: 70\r\nFrom: <sip:dev@127.0.0.1>;tag=d1\r\n{to}\r\nCall-ID: kf-video-1\r\n\
                             CSeq: 2 INFO\r\nContent-Type: application/media_control+xml\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        sip.send_to(info.as_bytes(), gw).await.expect("send INFO");
                        info_sent_at = Some(Instant::now());
                    }
                }
            }
            r = sip.recv_from(&mut sip_buf) => {
                let (len, from) = r.expect("recv");
                let text = String::from_utf8_lossy(&sip_buf[..len]).into_owned();
                assert!(!text.starts_with("SIP/2.0 4"), "the gateway refused: {text}");
                if text.starts_with("INFO ") {
                    assert!(text.contains("application/media_control+xml") && text.contains("picture_fast_update"), "{text}");
                    if let (Some(a), None) = (asked_at, info_relayed) {
                        info_relayed = Some(a.elapsed());
                    }
                    // 200 OK: the request's Via, From, To, Call-ID and CSeq.
                    let head: Vec<&str> = text
                        .lines()
                        .filter(|l| ["via:", "from:", "to:", "call-id:", "cseq:"].iter().any(|h| l.to_ascii_lowercase().starts_with(h)))
                        .collect();
                    let ok = format!("SIP/2.0 200 OK\r\n{}\r\nContent-Length: 0\r\n\r\n", head.join("\r\n"));
                    sip.send_to(ok.as_bytes(), from).await.expect("send 200");
                }
            }
            r = video.recv_from(&mut buf) => {
                let (len, _) = r.expect("recv");
                let d = &buf[..len];
                if len >= 8 && (200..=206).contains(&d[1]) {
                    let plis = parse_compound(d).map(|ps| ps.iter().filter(|p| matches!(p, RtcpPacket::Pli(_) | RtcpPacket::Fir(_))).count()).unwrap_or(0);
                    if plis > 0 {
                        let now = Instant::now();
                        if let (Some(a), None) = (asked_at, relayed) {
                            relayed = Some(now - a);
                        }
                        last_pli = Some(now);
                    }
                } else {
                    device_frames += 1;
                }
            }
            ev = viewer.next_event() => match ev.expect("viewer link") {
                ClientEvent::Subscribed { kind: MediaKind::Video, track_sid, .. } => device_track = Some(track_sid),
                ClientEvent::Media { .. } => viewer_frames += 1,
                ClientEvent::KeyframeRequest { cid, .. } if cid == "cam" => {
                    if let (Some(a), None) = (device_pli_at, device_pli_relayed) {
                        device_pli_relayed = Some(a.elapsed());
                    } else if let (Some(a), None) = (info_sent_at, info_to_publisher) {
                        info_to_publisher = Some(a.elapsed());
                    }
                }
                _ => {}
            },
        }
    }
    let relayed = relayed.expect("relayed");
    let device = device_pli_relayed.expect("device PLI relayed");
    let info = info_relayed.expect("INFO");
    let info_up = info_to_publisher.expect("INFO relayed");
    println!(
        "room PLI → device RTCP PLI: {relayed:?}, SIP INFO: {info:?}; device PLI → publisher: {device:?}, device INFO → publisher: {info_up:?}"
    );
    assert!(info < Duration::from_millis(900), "{info:?}");
    assert!(info_up < Duration::from_millis(900), "{info_up:?}");
    assert!(
        relayed < Duration::from_millis(900),
        "{relayed:?}: the gateway's retry, not the relay"
    );
    assert!(device < Duration::from_millis(900), "{device:?}");
    running.stop().await;
}

/// A delayed offer (INVITE without SDP, as Cisco CUCM and Expressway send): our 200 OK offers
/// audio and H.264, the ACK answers with both, and the device's pictures reach the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_offer_video_reaches_the_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = start(&dir.path().join("calls.jsonl")).await;
    let gw = running.sip_addr.expect("SIP runs");
    let keys = Keys::new("devkey", "secret");
    let url = format!("ws://{}", running.http_addr);
    let token = keys.mint(&TokenRequest::new("do", "viewer")).expect("mint");
    let mut viewer = RoomLink::connect(&url, &token, LO)
        .await
        .expect("viewer connects");
    wait_for(&mut viewer, "viewer joined", |e| {
        matches!(e, ClientEvent::Joined { .. })
    })
    .await;

    let sip = UdpSocket::bind((LO, 0)).await.expect("sip socket");
    let audio = UdpSocket::bind((LO, 0)).await.expect("audio socket");
    let video = UdpSocket::bind((LO, 0)).await.expect("video socket");
    let port = |s: &UdpSocket| s.local_addr().expect("addr").port();
    let (sp, ap, vp) = (port(&sip), port(&audio), port(&video));
    let invite = format!(
        "INVITE sip:do@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bKdo1;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:dev@127.0.0.1>;tag=d2\r\nTo: <sip:do@{gw}>\r\n\
         Call-ID: do-video-1\r\nCSeq: 1 INVITE\r\nContact: <sip:dev@127.0.0.1:{sp}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sip.send_to(invite.as_bytes(), gw)
        .await
        .expect("send INVITE");
    let ok = response(&sip, 200).await;
    assert!(ok.contains("m=video "), "no video offered:\n{ok}");
    let to = header(&ok, "to:");
    let gw_video = video_port(&ok);
    let sdp = format!(
        "v=0\r\no=dev 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {ap} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n\
         m=video {vp} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\na=rtcp-fb:96 nack pli\r\na=rtcp-mux\r\n"
    );
    let ack = format!(
        "ACK sip:do@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bKdo2;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:dev@127.0.0.1>;tag=d2\r\n{to}\r\nCall-ID: do-video-1\r\n\
         CSeq: 1 ACK\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sip.send_to(ack.as_bytes(), gw).await.expect("send ACK");
    let dest = SocketAddr::new(LO, gw_video);

    let aus = stream();
    let mut pk = Packetizer::new(PacketizationMode::NonInterleaved, WEBRTC_MAX_PAYLOAD);
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    let (mut n, mut seq, mut frames) = (0usize, 0u16, 0usize);
    let mut size = None;
    let start = Instant::now();
    while frames < 15 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{frames} frames reached the room"
        );
        tokio::select! {
            _ = tick.tick() => {
                let au = &aus[n % aus.len()];
                let ts = 3000 * n as u32;
                n += 1;
                for p in rtp_packets(&mut pk, au, 96, Ssrc(0x5eed), ts, &mut seq) {
                    video.send_to(&p, dest).await.expect("send RTP");
                }
            }
            ev = viewer.next_event() => match ev.expect("viewer link") {
                ClientEvent::Participant(p) if p.identity.starts_with("sip_") => {
                    size = p.tracks.iter().find(|t| t.r#type == proto::TrackType::Video as i32).map(|t| (t.width, t.height)).or(size);
                }
                ClientEvent::Media { data, .. } if data.params.spec().codec == str0m::format::Codec::H264 => frames += 1,
                _ => {}
            },
        }
    }
    assert_eq!(
        size,
        Some((640, 360)),
        "the device's track is announced at its SPS size"
    );
    running.stop().await;
}
