//! Our offers (RFC 3264 §5: a delayed-offer INVITE answered in our 200 OK; §8: our
//! re-INVITEs for hold and resume) and checking the answer to them (RFC 3264 §7).

use std::net::IpAddr;

use super::answer::{negotiated, rejected, session_skeleton, AudioLine};
use super::description::{MediaDescription, MediaKind, Proto, SessionDescription};
use super::negotiated::NegotiationError;
use super::policy::{LocalMedia, MediaPolicy};
use super::session::LocalSdp;
use crate::media::negotiated::{Negotiated, NegotiatedVideo, SrtpKeys, SrtpPolicy};
use crate::media::rtp::payload_format::RtpCodec;
use crate::media::srtp::{CryptoAttribute, SrtpSuite};

/// The first dynamic payload type (RFC 3551 §3).
const FIRST_DYNAMIC_PT: u8 = 96;

/// The payload type most devices expect for `telephone-event/8000`.
const TELEPHONE_EVENT_8K_PT: u8 = 101;

/// A fresh offer with an audio m-line (and a video one when `local` has a video port and the
/// policy takes video, see `video_offer`): every codec of `policy` in its order (static
/// payload types where RFC 3551 has one, dynamic ones from 96), then `telephone-event` once
/// per clock rate among them (101 for 8 kHz), `a=ptime`, `a=rtcp-mux` if enabled, and
/// `local`'s direction.
pub fn offer(policy: &MediaPolicy, local: &LocalMedia) -> LocalSdp {
    let mut used: Vec<u8> = Vec::new();
    let mut codecs = Vec::new();
    for codec in &policy.codecs {
        let pt = codec
            .static_payload_type()
            .filter(|pt| !used.contains(pt))
            .unwrap_or_else(|| next_dynamic(&used, FIRST_DYNAMIC_PT));
        used.push(pt);
        codecs.push((pt, codec.clone()));
    }
    let mut dtmf_pts = Vec::new();
    if policy.telephone_event {
        for (_, codec) in &codecs {
            let rate = codec.clock_rate;
            if dtmf_pts.iter().any(|(_, r)| *r == rate) {
                continue;
            }
            let preferred = if rate == 8_000 {
                TELEPHONE_EVENT_8K_PT
            } else {
                FIRST_DYNAMIC_PT
            };
            let pt = next_dynamic(&used, preferred);
            used.push(pt);
            dtmf_pts.push((pt, rate));
        }
    }
    let address = local.address();
    let mut body = session_skeleton(address);
    // SRTP required: RTP/SAVP with our preferred suite (one key, tag 1); otherwise plain RTP,
    // which every device answers (optional SRTP applies to what callers offer).
    let required = policy.srtp == SrtpPolicy::Required;
    let audio = AudioLine {
        media: "audio",
        port: local.rtp_port(),
        proto: if required { "RTP/SAVP" } else { "RTP/AVP" },
        codecs,
        dtmf_pts,
        ptime: policy.ptime,
        direction: local.direction(),
        rtcp_mux: policy.rtcp_mux,
        crypto: required.then(|| CryptoAttribute::generate(1, SrtpSuite::ALL[1]).to_sdp()),
    };
    body.medias.push(audio.build());
    if let (Some(port), Some(kbps)) = (local.video_port(), policy.video_kbps) {
        body.medias
            .push(video_offer(port, kbps, policy, local, required));
    }
    LocalSdp::new(body, address)
}

/// Payload types of our H.264 offer: packetization-mode 1, then 0.
const VIDEO_PTS: [(u8, u8); 2] = [(96, 1), (97, 0)];

/// Our main video m-line: H.264 Constrained Baseline level 3.1 in packetization modes 1 and
/// 0 (what every room system and browser decodes; a remux cannot offer more than the room's
/// publishers send), the RTCP feedback we act on, `a=content:main`, `b=AS`.
fn video_offer(
    port: u16,
    kbps: u32,
    policy: &MediaPolicy,
    local: &LocalMedia,
    srtp: bool,
) -> sdp_types::Media {
    let formats: Vec<String> = VIDEO_PTS.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut m = sdp_types::Media::new(
        sdp_types::MediaType::Video,
        port,
        if srtp {
            sdp_types::TransportProto::RtpSavp
        } else {
            sdp_types::TransportProto::RtpAvp
        },
        formats.join(" "),
    );
    m.bandwidths.push(sdp_types::Bandwidth {
        bwtype: "AS".into(),
        bandwidth: u64::from(kbps),
    });
    for (pt, mode) in VIDEO_PTS {
        m.add_attribute_with_value("rtpmap", format!("{pt} H264/90000"));
        m.add_attribute_with_value(
            "fmtp",
            format!(
                "{pt} profile-level-id=42e01f;packetization-mode={mode};level-asymmetry-allowed=1"
            ),
        );
        for fb in super::RTCP_FEEDBACK.iter().filter(|fb| **fb != "goog-remb") {
            m.add_attribute_with_value("rtcp-fb", format!("{pt} {fb}"));
        }
    }
    if policy.rtcp_mux {
        m.add_attribute(sdp_types::Attribute::new("rtcp-mux"));
    }
    if srtp {
        m.add_attribute_with_value(
            "crypto",
            CryptoAttribute::generate(1, SrtpSuite::ALL[1]).to_sdp(),
        );
    }
    m.add_attribute_with_value("content", "main");
    m.add_attribute(sdp_types::Attribute::new(local.direction().as_str()));
    m
}

/// The video stream set up by the answer to our offer, if our video m-line was accepted with
/// an H.264 format we offered (anything else leaves the call audio-only).
fn accept_video_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Option<NegotiatedVideo> {
    let index = offer
        .media
        .iter()
        .position(|m| m.kind == MediaKind::Video && m.port != 0)?;
    let (ours, theirs) = (&offer.media[index], answer.media.get(index)?);
    if theirs.port == 0 {
        return None;
    }
    let pt = *theirs.payload_types().first()?;
    let (_, mode) = VIDEO_PTS.iter().find(|(p, _)| *p == pt)?;
    let format = super::h264_formats(theirs).into_iter().find(|f| f.pt == pt);
    let remote_ip = answer.connection_of(theirs)?.ip?;
    let rtcp_mux = ours.rtcp_mux && theirs.rtcp_mux;
    let (remote_rtp, remote_rtcp) = super::answer::remote_addresses(remote_ip, theirs, rtcp_mux);
    let fb = super::rtcp_feedback(answer, index, pt);
    let has = |x: &str| {
        fb.iter()
            .any(|l| l.split_once(' ').is_some_and(|(_, v)| v == x))
    };
    let ours_kbps =
        super::bandwidth_kbps(offer, index).unwrap_or(crate::media::negotiated::DEFAULT_VIDEO_KBPS);
    Some(NegotiatedVideo {
        media_index: index,
        pt,
        peer_pt: pt,
        packetization_mode: *mode,
        profile_level_id: format.filter(|f| f.explicit_profile).map_or(
            crate::media::h264::profile::ProfileLevelId::parse("42e01f")?,
            |f| f.profile_level_id,
        ),
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        direction: offer
            .direction_of(ours)
            .intersect(answer.direction_of(theirs).reversed()),
        feedback: crate::media::negotiated::VideoFeedback {
            pli: has("nack pli"),
            fir: has("ccm fir"),
            nack: has("nack"),
            tmmbr: has("ccm tmmbr"),
        },
        max_kbps: super::bandwidth_kbps(answer, index).map_or(ours_kbps, |k| k.min(ours_kbps)),
        srtp: answered_keys(ours, theirs).ok().flatten(),
    })
}

/// A re-offer in an established dialog (hold, resume, refresh): the m-lines of `previous`
/// (the peer's last description) in the same order and number as RFC 3264 §8 requires, the
/// audio one with the current codec and payload type only (so nothing but the direction
/// changes), every other one with port 0.
pub fn reoffer(
    previous: &SessionDescription,
    current: &Negotiated,
    policy: &MediaPolicy,
    local: &LocalMedia,
) -> LocalSdp {
    let remote_ip = Some(current.remote_rtp.ip()).filter(|ip| !ip.is_unspecified());
    let address = local.address_for(remote_ip);
    let ours = policy
        .supported(&current.codec)
        .cloned()
        .unwrap_or_else(|| RtpCodec {
            fmtp: None,
            ..current.codec.clone()
        });
    let mut body = session_skeleton(address);
    for (i, m) in previous.media.iter().enumerate() {
        if i == current.media_index {
            let audio = AudioLine {
                media: &m.media,
                port: local.rtp_port(),
                proto: &m.proto_text,
                codecs: vec![(current.pt, ours.clone())],
                dtmf_pts: current
                    .dtmf_pt
                    .map(|pt| (pt, current.clock_rate))
                    .into_iter()
                    .collect(),
                ptime: policy.ptime,
                direction: local.direction(),
                rtcp_mux: current.rtcp_mux,
                // The same key as before: a hold or refresh does not rekey.
                crypto: current.srtp.as_ref().map(|k| k.local.to_sdp()),
            };
            body.medias.push(audio.build());
        } else {
            body.medias.push(rejected(m));
        }
    }
    LocalSdp::new(body, address)
}

/// Checks the peer's `answer` to our `offer` (both parsed) and returns the stream it sets up:
/// no more m-lines than offered (fewer: the missing ones are refused), our audio m-line accepted, its first codec one we offered (by payload
/// type and name), the direction ours limited by the answer's reversed.
pub fn accept_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    // RFC 3264 §6 wants as many m-lines as offered; UAs that do not do video often answer our
    // audio+video offer with their audio line alone: missing trailing lines count as refused.
    if answer.media.len() > offer.media.len() || answer.media.is_empty() {
        return Err(NegotiationError::MediaCountMismatch {
            offer: offer.media.len(),
            answer: answer.media.len(),
        });
    }
    let index = offer
        .media
        .iter()
        .position(|m| {
            m.kind == MediaKind::Audio
                && m.port != 0
                && (m.proto.is_plain_rtp() || matches!(m.proto, Proto::RtpSavp | Proto::RtpSavpf))
        })
        .ok_or(NegotiationError::NoAudio)?;
    let ours = &offer.media[index];
    let theirs = answer
        .media
        .get(index)
        .ok_or(NegotiationError::AudioRejected)?;
    if theirs.port == 0 {
        return Err(NegotiationError::AudioRejected);
    }
    let (pt, codec) = answered_codec(ours, theirs)?;
    let dtmf_pt = theirs
        .telephone_event(codec.clock_rate)
        .filter(|pt| ours.telephone_event(codec.clock_rate) == Some(*pt));
    let connection = answer
        .connection_of(theirs)
        .ok_or(NegotiationError::NoConnection)?;
    let remote_ip: IpAddr = connection
        .ip
        .ok_or_else(|| NegotiationError::UnresolvedAddress(connection.address.clone()))?;
    let direction = offer
        .direction_of(ours)
        .intersect(answer.direction_of(theirs).reversed());
    let rtcp_mux = ours.rtcp_mux && theirs.rtcp_mux;
    let srtp = answered_keys(ours, theirs)?;
    let mut n = negotiated(
        index, pt, codec, dtmf_pt, remote_ip, theirs, rtcp_mux, direction, ours.ptime,
    );
    n.srtp = srtp;
    n.video = accept_video_answer(offer, answer);
    Ok(n)
}

/// The SDES keys of an answer to our offer: its `a=crypto` paired by tag with ours. An SRTP
/// offer answered without a usable key fails.
fn answered_keys(
    ours: &MediaDescription,
    theirs: &MediaDescription,
) -> Result<Option<SrtpKeys>, NegotiationError> {
    let secure = matches!(ours.proto, Proto::RtpSavp | Proto::RtpSavpf);
    let remote = theirs
        .crypto
        .iter()
        .find_map(|c| CryptoAttribute::parse(c).ok());
    let Some(remote) = remote else {
        return if secure {
            Err(NegotiationError::SrtpRequired)
        } else {
            Ok(None)
        };
    };
    let local = ours
        .crypto
        .iter()
        .filter_map(|c| CryptoAttribute::parse(c).ok())
        .find(|c| c.tag == remote.tag && c.suite == remote.suite)
        .ok_or(NegotiationError::SrtpRequired)?;
    Ok(Some(SrtpKeys { local, remote }))
}

/// The first real codec of the answer, checked against our offer. The answer may leave out
/// the rtpmap of a payload type we defined; then our definition holds (RFC 3264 §6.1).
fn answered_codec(
    ours: &MediaDescription,
    theirs: &MediaDescription,
) -> Result<(u8, RtpCodec), NegotiationError> {
    let offered_pts = ours.payload_types();
    for pt in theirs.payload_types() {
        let Some(offered) = ours.codec(pt).filter(|_| offered_pts.contains(&pt)) else {
            return Err(NegotiationError::UnofferedCodec(pt));
        };
        if offered.is_telephone_event() || offered.is_comfort_noise() {
            continue;
        }
        let answered = match theirs.codec(pt) {
            Some(c) if theirs.rtpmaps.iter().any(|(p, _)| *p == pt) => c,
            Some(c) => RtpCodec {
                fmtp: c.fmtp,
                ..offered.clone()
            },
            None => RtpCodec {
                fmtp: None,
                ..offered.clone()
            },
        };
        if !answered.matches(&offered) {
            return Err(NegotiationError::UnofferedCodec(pt));
        }
        return Ok((pt, answered));
    }
    Err(NegotiationError::NoCommonCodec)
}

fn next_dynamic(used: &[u8], preferred: u8) -> u8 {
    (preferred..=127)
        .chain(FIRST_DYNAMIC_PT..preferred)
        .find(|pt| !used.contains(pt))
        .unwrap_or(preferred)
}
