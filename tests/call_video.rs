//! A call's video bridge (`jonction::call::video::CallVideo`) fed with real H.264 (the ffmpeg
//! streams of `tests/data/video`): the device's stream is published at its SPS size, keyframe
//! requests go both ways in the form each side understands, bad input is dropped and counted
//! and the stream recovers at the next keyframe, and the device sees one continuous stream
//! across speaker switches.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jonction::call::video::{CallVideo, VideoOutput};
use jonction::media::h264::annex_b::access_units;
use jonction::media::h264::packetize::{PacketizationMode, Packetizer, WEBRTC_MAX_PAYLOAD};
use jonction::media::h264::profile::ProfileLevelId;
use jonction::media::h264::AccessUnit;
use jonction::media::negotiated::{Direction, NegotiatedVideo, VideoFeedback};
use jonction::media::rtp::packet::{RtpPacket, RtpWriter};
use jonction::media::rtp::rtcp::{
    parse_compound, write_compound, Nack, Pli, RtcpPacket, Tmmb, TmmbEntry,
};
use jonction::media::rtp::Ssrc;

const PT: u8 = 126;

fn device() -> SocketAddr {
    "192.0.2.9:40002".parse().expect("addr")
}

fn negotiated(feedback: VideoFeedback) -> NegotiatedVideo {
    NegotiatedVideo {
        media_index: 1,
        pt: PT,
        peer_pt: PT,
        packetization_mode: 1,
        profile_level_id: ProfileLevelId::parse("42e01f").expect("level 3.1"),
        remote_rtp: device(),
        remote_rtcp: "192.0.2.9:40003".parse().expect("addr"),
        rtcp_mux: false,
        direction: Direction::SendRecv,
        feedback,
        max_kbps: 2000,
        srtp: None,
    }
}

fn stream(name: &str) -> Vec<AccessUnit> {
    let path = format!("{}/tests/data/video/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    access_units(&bytes, 3000)
}

/// The device's RTP packets (seq from 1) of `aus`.
fn rtp(aus: &[AccessUnit], pt: u8, ssrc: u32) -> Vec<Vec<u8>> {
    let mut p = Packetizer::new(PacketizationMode::NonInterleaved, WEBRTC_MAX_PAYLOAD);
    let mut out = Vec::new();
    let mut seq = 0u16;
    for au in aus {
        p.packetize(au, |payload, marker| {
            seq = seq.wrapping_add(1);
            let mut pkt = Vec::new();
            RtpWriter::new(pt, seq, au.timestamp(), Ssrc(ssrc))
                .marker(marker)
                .write(payload, &mut pkt)
                .expect("rtp");
            out.push(pkt);
        });
    }
    out
}

fn drain(v: &mut CallVideo) -> Vec<VideoOutput> {
    std::iter::from_fn(|| v.poll_output()).collect()
}

fn keyframe_requests(outs: &[VideoOutput]) -> Vec<RtcpPacket> {
    rtcp_to_device(outs)
        .into_iter()
        .filter(|p| matches!(p, RtcpPacket::Pli(_) | RtcpPacket::Fir(_)))
        .collect()
}

fn sent_ssrc(sent: &[Vec<u8>]) -> Ssrc {
    RtpPacket::parse(&sent[0]).expect("rtp").ssrc()
}

/// Every RTCP packet sent to the device.
fn rtcp_to_device(outs: &[VideoOutput]) -> Vec<RtcpPacket> {
    outs.iter()
        .filter_map(|o| match o {
            VideoOutput::ToDeviceRtcp(_, d) => parse_compound(d).ok(),
            _ => None,
        })
        .flatten()
        .collect()
}

fn annex_b(au: &AccessUnit) -> Vec<u8> {
    let mut v = Vec::new();
    au.write_annex_b(&mut v);
    v
}

#[test]
fn the_wanted_picture_size_follows_level_and_bit_rate() {
    use jonction::call::video::wanted_size;
    assert_eq!(wanted_size(31, 2000), (1280, 720));
    assert_eq!(
        wanted_size(30, 2000),
        (640, 360),
        "level 3.0 stops below 720p"
    );
    assert_eq!(wanted_size(31, 800), (640, 360));
    assert_eq!(wanted_size(40, 300), (320, 180));
    assert_eq!(
        wanted_size(21, 2000),
        (320, 180),
        "level 2.1: 792 macroblocks"
    );
    assert_eq!(wanted_size(10, 2000), (320, 180));
}

#[test]
fn device_video_is_published_at_its_size_and_keyframes_are_requested_from_it() {
    let t0 = Instant::now();
    let mut v = CallVideo::new(
        t0,
        &negotiated(VideoFeedback {
            pli: true,
            ..Default::default()
        }),
        "PA_me",
    )
    .expect("video");
    let _ = drain(&mut v);
    let aus = stream("a_640x360.h264");
    let pkts = rtp(&aus[..30], PT, 7);
    let mut outs = Vec::new();
    for p in &pkts {
        v.handle_device_datagram(t0, device(), p);
        outs.extend(drain(&mut v));
    }
    assert_eq!(
        outs.iter()
            .filter(|o| matches!(o, VideoOutput::Publish { .. }))
            .count(),
        1
    );
    assert!(outs.contains(&VideoOutput::Publish {
        width: 640,
        height: 360
    }));
    // Nothing is written before the track is published.
    assert!(!outs
        .iter()
        .any(|o| matches!(o, VideoOutput::RoomFrame { .. })));

    // Published: a keyframe is asked for at once (RTCP PLI to the device's RTCP port).
    let t1 = t0 + Duration::from_millis(100);
    v.published(t1);
    let outs = drain(&mut v);
    let reqs = keyframe_requests(&outs);
    assert!(
        matches!(
            reqs.as_slice(),
            [RtcpPacket::Pli(Pli {
                media_ssrc: Ssrc(7),
                ..
            })]
        ),
        "{outs:?}"
    );
    assert!(outs
        .iter()
        .any(|o| matches!(o, VideoOutput::ToDeviceRtcp(a, _) if a.port() == 40003)));
    // A room subscriber's request 100 ms later is rate limited; the retry comes after 1 s
    // while no keyframe arrives.
    v.room_wants_keyframe(t1 + Duration::from_millis(100));
    assert!(keyframe_requests(&drain(&mut v)).is_empty());
    assert!(v.poll_timeout().expect("a retry is scheduled") <= t1 + Duration::from_secs(1));
    let retry = t1 + Duration::from_secs(1);
    v.handle_timeout(retry);
    assert_eq!(keyframe_requests(&drain(&mut v)).len(), 1);

    // The next pictures (an IDR at frame 30) go to the room whole, in Annex-B.
    let later = rtp(&aus, PT, 7);
    let mut frames = Vec::new();
    for p in &later[pkts.len()..] {
        v.handle_device_datagram(t1, device(), p);
        for o in drain(&mut v) {
            if let VideoOutput::RoomFrame { time, data } = o {
                frames.push((time, data));
            }
        }
    }
    assert_eq!(frames.len(), aus.len() - 30);
    assert_eq!(frames[0], (aus[30].timestamp(), annex_b(&aus[30])));
    assert_eq!(v.stats().frames_to_room, frames.len() as u64);
    // The keyframe came: no more retries.
    v.handle_timeout(retry + Duration::from_secs(5));
    assert!(keyframe_requests(&drain(&mut v)).is_empty());
    assert_eq!(v.stats().keyframe_requests_to_device, 2);
}

#[test]
fn devices_without_rtcp_feedback_are_asked_with_info_and_fir_only_devices_with_fir() {
    let t0 = Instant::now();
    let mut v = CallVideo::new(t0, &negotiated(VideoFeedback::default()), "PA_me").expect("video");
    let _ = drain(&mut v);
    v.room_wants_keyframe(t0);
    let outs = drain(&mut v);
    assert!(outs.contains(&VideoOutput::DeviceFastUpdate), "{outs:?}");

    let fir_only = VideoFeedback {
        fir: true,
        ..Default::default()
    };
    let mut v = CallVideo::new(t0, &negotiated(fir_only), "PA_me").expect("video");
    let _ = drain(&mut v);
    v.room_wants_keyframe(t0);
    let outs = drain(&mut v);
    assert!(
        matches!(keyframe_requests(&outs).as_slice(), [RtcpPacket::Fir(_)]),
        "{outs:?}"
    );
    assert!(!outs.contains(&VideoOutput::DeviceFastUpdate));
}

#[test]
fn bad_device_input_is_dropped_and_counted_and_the_stream_recovers() {
    let t0 = Instant::now();
    let mut v = CallVideo::new(
        t0,
        &negotiated(VideoFeedback {
            pli: true,
            ..Default::default()
        }),
        "PA_me",
    )
    .expect("video");
    let aus = stream("a_640x360.h264");
    // The device sends the 60 pictures, then a 600 KB IDR (over the 512 KB NAL limit), then
    // pictures 30..60 again (an IDR first) with later timestamps.
    let mut all = aus.clone();
    let mut huge = AccessUnit::new(aus[59].timestamp() + 3000);
    let mut nal = vec![0x65u8];
    nal.resize(600 * 1024, 0x5a);
    huge.push_nal(&nal);
    all.push(huge);
    for (k, au) in aus[30..].iter().enumerate() {
        let mut again = au.clone();
        again.set_timestamp(aus[59].timestamp() + 6000 + 3000 * k as u32);
        all.push(again);
    }
    let mut pkts = rtp(&all, PT, 7);
    // Start the stream and publish.
    let first_gop = pkts
        .iter()
        .position(|p| RtpPacket::parse(p).expect("rtp").timestamp() == aus[1].timestamp());
    let first_gop = first_gop.expect("packets of frame 1");
    for p in &pkts[..first_gop] {
        v.handle_device_datagram(t0, device(), p);
    }
    v.published(t0);
    let _ = drain(&mut v);

    // Garbage, a stranger's SSRC, another payload type, a truncated RTP header.
    let stranger = rtp(&aus[..1], PT, 99);
    let wrong_pt = rtp(&aus[..1], 97, 7);
    v.handle_device_datagram(t0, device(), b"\x80\x01garbage");
    v.handle_device_datagram(t0, device(), &[0xff; 3]);
    for p in stranger.iter().chain(&wrong_pt) {
        v.handle_device_datagram(t0, device(), p);
    }
    // Break an FU-A: drop the middle fragment of a large picture of frame 5.
    let ts5 = aus[5].timestamp();
    let in5: Vec<usize> = (0..pkts.len())
        .filter(|&i| RtpPacket::parse(&pkts[i]).expect("rtp").timestamp() == ts5)
        .collect();
    let victim = in5[in5.len() / 2];
    pkts.remove(victim);
    let t = t0 + Duration::from_secs(1);
    let mut frames = 0;
    let mut requests = 0;
    for p in &pkts[first_gop..] {
        v.handle_device_datagram(t, device(), p);
        for o in drain(&mut v) {
            match o {
                VideoOutput::RoomFrame { .. } => frames += 1,
                VideoOutput::ToDeviceRtcp(_, d) => {
                    requests += parse_compound(&d).map(|p| p.len()).unwrap_or(0)
                }
                _ => {}
            }
        }
    }
    let st = v.stats();
    assert!(st.packets_rejected >= 2 + stranger.len() as u64, "{st:?}");
    assert_eq!(st.h264.wrong_payload_type, wrong_pt.len() as u64, "{st:?}");
    assert_eq!(st.h264.broken_access_units, 2, "{st:?}");
    assert!(st.h264.oversized_nals >= 1, "{st:?}");
    // Frames 5..29 are lost (waiting for the keyframe at 30), frames 1..4 and 30..59 go out,
    // the oversized picture is dropped, and the stream resumes at the next IDR.
    assert_eq!(frames, 4 + 30 + 30, "{st:?}");
    assert!(st.h264.waiting_for_keyframe >= 20, "{st:?}");
    assert!(requests >= 1, "the loss asked the device for a keyframe");
}

#[test]
fn the_device_sees_one_stream_across_speaker_switches() {
    let t0 = Instant::now();
    let feedback = VideoFeedback {
        pli: true,
        nack: true,
        ..Default::default()
    };
    let mut v = CallVideo::new(t0, &negotiated(feedback), "PA_me").expect("video");
    // The "no video" picture first.
    v.handle_timeout(t0);
    let outs = drain(&mut v);
    let first: Vec<&Vec<u8>> = outs
        .iter()
        .filter_map(|o| match o {
            VideoOutput::ToDevice(a, d) if *a == device() => Some(d),
            _ => None,
        })
        .collect();
    assert!(!first.is_empty(), "no 'no video' picture: {outs:?}");
    assert_eq!(v.stats().no_video_pictures, 1);

    let a = stream("a_640x360.h264");
    let b = stream("b_320x180.h264");
    v.set_participant_video(t0, "PA_a", Some("TR_a"));
    v.set_participant_video(t0, "PA_b", Some("TR_b"));
    v.set_participant_video(t0, "PA_me", Some("TR_me"));
    let mut sent: Vec<Vec<u8>> = first.into_iter().cloned().collect();
    let mut asked: Vec<String> = Vec::new();
    let mut now = t0;
    // 60 frames each at 30 fps, A speaking, then B, then A again; the devices' PLI in between.
    // Sources keep their own clocks running (the files loop, their timestamps do not).
    let mut settings: std::collections::HashMap<String, (bool, u32, u32)> = Default::default();
    let mut step = |v: &mut CallVideo,
                    now: Instant,
                    i: usize,
                    sent: &mut Vec<Vec<u8>>,
                    asked: &mut Vec<String>| {
        let ts = 3000 * i as u32;
        v.handle_room_frame(now, "TR_a", ts + 1_000_000, &annex_b(&a[i % a.len()]));
        v.handle_room_frame(now, "TR_b", ts + 5_000_000, &annex_b(&b[i % b.len()]));
        v.handle_room_frame(now, "TR_me", ts, &annex_b(&b[i % b.len()]));
        if v.poll_timeout().is_some_and(|t| t <= now) {
            v.handle_timeout(now);
        }
        for o in drain(v) {
            match o {
                VideoOutput::ToDevice(_, d) => sent.push(d),
                VideoOutput::RoomKeyframe(t) => asked.push(t),
                VideoOutput::TrackSettings {
                    track,
                    enabled,
                    width,
                    height,
                } => {
                    settings.insert(track, (enabled, width, height));
                }
                _ => {}
            }
        }
    };
    let mut i = 0;
    for (speaker, frames) in [("PA_a", 150), ("PA_b", 150), ("PA_a", 150)] {
        let others: Vec<(String, bool)> = ["PA_a", "PA_b"]
            .iter()
            .map(|p| (p.to_string(), *p == speaker))
            .chain([("PA_me".to_string(), true)])
            .collect();
        v.speakers(now, others);
        for _ in 0..frames {
            step(&mut v, now, i, &mut sent, &mut asked);
            now += Duration::from_millis(33);
            i += 1;
        }
    }
    // The room sends only the shown track, at the size the device's level and bit rate take.
    let _ = drain(&mut v);
    assert_eq!(v.wanted_size(), (1280, 720));
    let mut tmmbr = Vec::new();
    write_compound(
        &[RtcpPacket::Tmmbr(Tmmb {
            sender_ssrc: Ssrc(5),
            entries: vec![TmmbEntry {
                ssrc: sent_ssrc(&sent),
                bitrate: 300_000,
                overhead: 40,
            }],
        })],
        &mut tmmbr,
    )
    .expect("tmmbr");
    v.handle_device_datagram(now, "192.0.2.9:40003".parse().expect("addr"), &tmmbr);
    let outs = drain(&mut v);
    // Acknowledged with a TMMBN (RFC 5104 §4.2.2), then the smaller layer asked for.
    let tmmbn: Vec<RtcpPacket> = rtcp_to_device(&outs);
    assert!(
        matches!(tmmbn.as_slice(), [RtcpPacket::Tmmbn(t)] if t.entries[0].bitrate == 300_000),
        "{outs:?}"
    );
    let outs: Vec<VideoOutput> = outs
        .into_iter()
        .filter(|o| !matches!(o, VideoOutput::ToDeviceRtcp(..)))
        .collect();
    assert_eq!(
        outs,
        [VideoOutput::TrackSettings {
            track: "TR_a".into(),
            enabled: true,
            width: 320,
            height: 180
        }]
    );
    assert_eq!(settings.get("TR_b"), Some(&(false, 0, 0)), "{settings:?}");
    assert_eq!(
        settings.get("TR_a"),
        Some(&(true, 1280, 720)),
        "{settings:?}"
    );

    // The device's NACK gets the lost packets again, byte for byte.
    let lost: Vec<u16> = [10usize, 11, 40]
        .iter()
        .map(|&k| {
            RtpPacket::parse(&sent[sent.len() - 50 + k])
                .expect("rtp")
                .seq()
        })
        .collect();
    let mut nack = Vec::new();
    write_compound(
        &[RtcpPacket::Nack(Nack::from_lost(
            Ssrc(5),
            sent_ssrc(&sent),
            &lost,
        ))],
        &mut nack,
    )
    .expect("nack");
    v.handle_device_datagram(now, "192.0.2.9:40003".parse().expect("addr"), &nack);
    let again: Vec<Vec<u8>> = drain(&mut v)
        .into_iter()
        .filter_map(|o| match o {
            VideoOutput::ToDevice(_, d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(again.len(), 3);
    for (k, d) in [10usize, 11, 40].iter().zip(&again) {
        assert_eq!(d, &sent[sent.len() - 50 + k]);
    }
    assert_eq!(v.stats().retransmissions, 3);

    // The device's PLI goes to the publisher it is shown.
    let mut pli = Vec::new();
    write_compound(
        &[RtcpPacket::Pli(Pli {
            sender_ssrc: Ssrc(5),
            media_ssrc: Ssrc(1),
        })],
        &mut pli,
    )
    .expect("pli");
    let _ = drain(&mut v);
    v.handle_device_datagram(now, "192.0.2.9:40003".parse().expect("addr"), &pli);
    let outs = drain(&mut v);
    assert_eq!(v.shown(), Some("PA_a"));
    assert!(
        outs.contains(&VideoOutput::RoomKeyframe("TR_a".into())),
        "{outs:?}"
    );

    assert!(
        !asked.contains(&"TR_me".to_string()),
        "the device was shown itself"
    );
    assert!(asked.contains(&"TR_a".to_string()) && asked.contains(&"TR_b".to_string()));
    assert!(v.stats().switches >= 3, "{:?}", v.stats());
    // One SSRC, one payload type, sequence numbers one by one, timestamps never going back
    // more than a frame (the switcher continues them by wall-clock time).
    let pkts: Vec<RtpPacket> = sent
        .iter()
        .map(|d| RtpPacket::parse(d).expect("rtp"))
        .collect();
    assert!(pkts.len() > 500);
    assert!(pkts
        .iter()
        .all(|p| p.ssrc() == pkts[0].ssrc() && p.pt() == PT));
    for w in pkts.windows(2) {
        assert_eq!(w[1].seq(), w[0].seq().wrapping_add(1));
        let dt = w[1].timestamp().wrapping_sub(w[0].timestamp());
        assert!(dt < 90_000 * 2, "timestamp jump {dt}");
    }
}

#[test]
fn srtp_video_is_decrypted_from_the_device_and_encrypted_to_it() {
    use jonction::media::negotiated::SrtpKeys;
    use jonction::media::srtp::{CryptoAttribute, SrtpSession, SrtpSuite};
    let ours = CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_80);
    let theirs = CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_80);
    let mut neg = negotiated(VideoFeedback {
        pli: true,
        ..Default::default()
    });
    neg.srtp = Some(SrtpKeys {
        local: ours.clone(),
        remote: theirs.clone(),
    });
    let mut dev = SrtpSession::new(&theirs, &ours).expect("device SRTP");
    let t0 = Instant::now();
    let mut v = CallVideo::new(t0, &neg, "PA_me").expect("video");
    let aus = stream("a_640x360.h264");
    let plain = rtp(&aus[..10], PT, 7);
    // Plain RTP on an SRTP stream: refused, nothing published.
    for p in &plain {
        v.handle_device_datagram(t0, device(), p);
    }
    let outs = drain(&mut v);
    assert!(!outs
        .iter()
        .any(|o| matches!(o, VideoOutput::Publish { .. })));
    assert_eq!(v.stats().packets_rejected, plain.len() as u64);
    // The same packets encrypted by the device: published, then written to the room.
    for p in &plain {
        let s = dev.protect_rtp(p).expect("protect");
        v.handle_device_datagram(t0, device(), &s);
    }
    let outs = drain(&mut v);
    assert!(outs.contains(&VideoOutput::Publish {
        width: 640,
        height: 360
    }));
    // What goes to the device (the "no video" picture, a PLI) is SRTP/SRTCP the device opens.
    v.handle_timeout(t0);
    v.published(t0);
    let mut opened = (0, 0);
    for o in drain(&mut v) {
        match o {
            VideoOutput::ToDevice(_, d) => {
                let clear = dev.unprotect_rtp(&d).expect("SRTP from the gateway");
                assert_eq!(RtpPacket::parse(&clear).expect("rtp").pt(), PT);
                opened.0 += 1;
            }
            VideoOutput::ToDeviceRtcp(_, d) => {
                let clear = dev.unprotect_rtcp(&d).expect("SRTCP from the gateway");
                assert!(matches!(
                    parse_compound(&clear).expect("rtcp").as_slice(),
                    [RtcpPacket::Pli(_)]
                ));
                opened.1 += 1;
            }
            _ => {}
        }
    }
    assert!(opened.0 >= 3 && opened.1 == 1, "{opened:?}");
}

#[test]
fn a_new_bit_rate_limit_resizes_the_shown_track() {
    // An H.245 FlowControlCommand (or a re-INVITE's b=AS) arrives as a new description.
    let t0 = Instant::now();
    let neg = negotiated(VideoFeedback::default());
    let mut v = CallVideo::new(t0, &neg, "PA_me").expect("video");
    let a = stream("a_640x360.h264");
    v.set_participant_video(t0, "PA_a", Some("TR_a"));
    v.speakers(t0, vec![("PA_a".to_string(), true)]);
    let mut now = t0;
    let mut settings = Vec::new();
    let run = |v: &mut CallVideo, settings: &mut Vec<(bool, u32, u32)>, now: &mut Instant| {
        for (i, au) in a.iter().enumerate().take(40) {
            v.handle_room_frame(*now, "TR_a", 3000 * i as u32, &annex_b(au));
            if v.poll_timeout().is_some_and(|t| t <= *now) {
                v.handle_timeout(*now);
            }
            for o in drain(v) {
                if let VideoOutput::TrackSettings {
                    enabled,
                    width,
                    height,
                    ..
                } = o
                {
                    settings.push((enabled, width, height));
                }
            }
            *now += Duration::from_millis(33);
        }
    };
    run(&mut v, &mut settings, &mut now);
    assert_eq!(settings.last(), Some(&(true, 1280, 720)), "{settings:?}");
    v.renegotiated(&NegotiatedVideo {
        max_kbps: 300,
        ..neg.clone()
    });
    let outs = drain(&mut v);
    assert!(
        outs.contains(&VideoOutput::TrackSettings {
            track: "TR_a".into(),
            enabled: true,
            width: 320,
            height: 180
        }),
        "{outs:?}"
    );
    assert_eq!(v.wanted_size(), (320, 180));
    // The limit lifted: the full size again.
    v.renegotiated(&neg);
    assert_eq!(v.wanted_size(), (1280, 720));
}
