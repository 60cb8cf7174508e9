//! H.264 video negotiation for the SIP leg (RFC 6184 §8; RTCP feedback RFC 4585/5104;
//! `a=content` RFC 4796; `b=AS`/`b=TIAS` RFC 8866 §5.8, RFC 3890).
//!
//! jonction remuxes video and never re-encodes it, so the answer can only accept what it can
//! forward unchanged to WebRTC rooms:
//! - H.264 with `packetization-mode` 1 (FU-A/STAP-A, what browsers send) or 0 (single NAL
//!   units, older room systems); interleaved mode 2 is refused.
//! - The profile the offer names is kept in the answer (RFC 6184 §8.2.2: the answerer keeps the
//!   profile; we re-send the stream as it is, so the level is the offerer's too). Constrained
//!   Baseline is preferred (every browser decodes it), then Baseline, Main and High; other
//!   profiles (High 10, 4:2:2, ...) are not answered.
//! - RTCP feedback: the subset of `nack`, `nack pli`, `ccm fir`, `ccm tmmbr` and `goog-remb` that
//!   the offer lists for that payload type (or for `*`).

use super::description::{MediaDescription, MediaKind, Proto, SessionDescription};
use super::policy::{LocalMedia, MediaPolicy};
use crate::media::h264::profile::ProfileLevelId;
use crate::media::negotiated::{NegotiatedVideo, SrtpKeys, SrtpPolicy, VideoFeedback};
use crate::media::srtp::choose_offered;

/// The feedback messages jonction handles on the SIP video leg.
pub const RTCP_FEEDBACK: [&str; 5] = ["nack", "nack pli", "ccm fir", "ccm tmmbr", "goog-remb"];

/// One H.264 format of an m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Format {
    /// Its payload type.
    pub pt: u8,
    /// `profile-level-id`, or the default when absent.
    pub profile_level_id: ProfileLevelId,
    /// Whether `profile-level-id` was written (answers echo it only then).
    pub explicit_profile: bool,
    /// `packetization-mode` (0 when absent).
    pub packetization_mode: u8,
    /// The fmtp as written.
    pub fmtp: Option<String>,
}

/// The H.264 formats of a video m-line, in the offer's order (non-H.264 formats skipped;
/// unreadable `profile-level-id` values make the format unusable and skip it too).
pub fn h264_formats(media: &MediaDescription) -> Vec<H264Format> {
    media
        .codecs()
        .into_iter()
        .filter(|(_, c)| c.is("H264") && c.clock_rate == 90_000)
        .filter_map(|(pt, c)| {
            let mut profile = None;
            let mut mode = 0u8;
            if let Some(fmtp) = c.fmtp.as_deref() {
                for (k, v) in crate::media::rtp::payload_format::fmtp_params(fmtp) {
                    if k.eq_ignore_ascii_case("profile-level-id") {
                        profile = Some(ProfileLevelId::parse(v)?);
                    } else if k.eq_ignore_ascii_case("packetization-mode") {
                        mode = v.trim().parse().ok()?;
                    }
                }
            }
            Some(H264Format {
                pt,
                profile_level_id: profile.unwrap_or(ProfileLevelId::DEFAULT),
                explicit_profile: profile.is_some(),
                packetization_mode: mode,
                fmtp: c.fmtp.clone(),
            })
        })
        .collect()
}

/// The format to answer: forwardable profile and mode, preferring packetization-mode 1, then
/// the better profile, then the offerer's order.
pub fn choose_h264(formats: &[H264Format]) -> Option<&H264Format> {
    formats
        .iter()
        .enumerate()
        .filter(|(_, f)| f.packetization_mode <= 1)
        .filter_map(|(i, f)| f.profile_level_id.profile().map(|p| (i, p, f)))
        .min_by_key(|(i, p, f)| (1 - f.packetization_mode, *p, *i))
        .map(|(_, _, f)| f)
}

/// The RTCP feedback lines the offer lists for `pt` (or `*`) that jonction handles, as
/// `rtcp-fb` attribute values for `pt`, in [`RTCP_FEEDBACK`] order.
pub fn rtcp_feedback(offer: &SessionDescription, index: usize, pt: u8) -> Vec<String> {
    let Some(m) = offer.raw().medias.get(index) else {
        return Vec::new();
    };
    let pt_text = pt.to_string();
    let offered: Vec<String> = m
        .attributes
        .iter()
        .filter(|a| a.attribute.eq_ignore_ascii_case("rtcp-fb"))
        .filter_map(|a| {
            let v = a.value.as_deref()?.trim();
            let (fmt, rest) = v.split_once(char::is_whitespace)?;
            (fmt == pt_text || fmt == "*").then(|| {
                rest.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_ascii_lowercase()
            })
        })
        .collect();
    RTCP_FEEDBACK
        .iter()
        .filter(|fb| offered.iter().any(|o| o == *fb))
        .map(|fb| format!("{pt} {fb}"))
        .collect()
}

/// The offerer's bandwidth limit for the m-line in kbit/s: `b=TIAS` (bit/s, RFC 3890) when
/// present, else `b=AS`.
pub fn bandwidth_kbps(offer: &SessionDescription, index: usize) -> Option<u32> {
    let m = offer.raw().medias.get(index)?;
    let find = |t: &str| {
        m.bandwidths
            .iter()
            .find(|b| b.bwtype.eq_ignore_ascii_case(t))
            .map(|b| b.bandwidth)
    };
    find("TIAS")
        .map(|bps| (bps / 1000) as u32)
        .or_else(|| find("AS").map(|kbps| kbps as u32))
        .filter(|k| *k > 0)
}

/// What the answer says for an accepted H.264 m-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoAnswer {
    /// Index of the m-line in the offer.
    pub index: usize,
    /// The chosen format.
    pub format: H264Format,
    /// `a=fmtp` value (without the payload type).
    pub fmtp: String,
    /// `a=rtcp-fb` values.
    pub rtcp_fb: Vec<String>,
    /// `a=content` to echo (RFC 4796), `main` for the main video.
    pub content: Option<String>,
    /// Our receive limit to write as `b=AS` (kbit/s).
    pub bandwidth_kbps: u32,
}

/// Answers the first main video m-line of `offer` (no `a=content`, or `content:main`) with
/// H.264, limited to `max_kbps`; `None` when there is none or nothing in it can be forwarded
/// (the m-line is then answered with port 0).
pub fn answer_video(offer: &SessionDescription, max_kbps: u32) -> Option<VideoAnswer> {
    let (index, media) = offer.media.iter().enumerate().find(|(_, m)| {
        m.kind == MediaKind::Video
            && m.port != 0
            && m.proto.is_rtp()
            && m.content.as_deref().is_none_or(|c| c == "main")
    })?;
    let formats = h264_formats(media);
    let format = choose_h264(&formats)?.clone();
    let mut fmtp = Vec::new();
    if format.explicit_profile {
        fmtp.push(format!(
            "profile-level-id={}",
            format.profile_level_id.to_hex()
        ));
    }
    fmtp.push(format!("packetization-mode={}", format.packetization_mode));
    fmtp.push("level-asymmetry-allowed=1".to_string());
    let offered = bandwidth_kbps(offer, index);
    Some(VideoAnswer {
        index,
        rtcp_fb: rtcp_feedback(offer, index, format.pt),
        fmtp: format!("{} {}", format.pt, fmtp.join(";")),
        content: media.content.clone(),
        bandwidth_kbps: offered.map_or(max_kbps, |o| o.min(max_kbps)),
        format,
    })
}

/// Negotiates the main video stream of `offer` for the answer: the stream's parameters and
/// the m-line to write, or `None` when video stays off (disabled in `policy`, no video port in
/// `local`, nothing forwardable offered, or the transport does not fit the SRTP policy: the
/// m-line is then answered with port 0 and the call goes on with audio).
pub(super) fn negotiate_video(
    offer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
    current_keys: Option<&SrtpKeys>,
) -> Option<(NegotiatedVideo, sdp_types::Media)> {
    let (max_kbps, port) = (policy.video_kbps?, local.video_port()?);
    let va = answer_video(offer, max_kbps)?;
    let media = offer.media.get(va.index)?;
    let secure = matches!(media.proto, Proto::RtpSavp | Proto::RtpSavpf);
    let key = (policy.srtp != SrtpPolicy::Off)
        .then(|| choose_offered(&media.crypto).ok())
        .flatten();
    if key.is_none() && (secure || policy.srtp == SrtpPolicy::Required) {
        return None;
    }
    let remote_ip = offer.connection_of(media)?.ip?;
    let direction = offer
        .direction_of(media)
        .reversed()
        .intersect(local.direction());
    let rtcp_mux = policy.rtcp_mux && media.rtcp_mux;
    let (remote_rtp, remote_rtcp) = super::answer::remote_addresses(remote_ip, media, rtcp_mux);
    let has = |fb: &str| {
        va.rtcp_fb
            .iter()
            .any(|l| l.split_once(' ').is_some_and(|(_, v)| v == fb))
    };
    let feedback = VideoFeedback {
        pli: has("nack pli"),
        fir: has("ccm fir"),
        nack: has("nack"),
        tmmbr: has("ccm tmmbr"),
    };
    let srtp = key.map(|remote| super::answer::keys_for(remote, current_keys));

    let pt = va.format.pt;
    let mut m = sdp_types::Media::new(
        sdp_types::MediaType::Video,
        port,
        sdp_types::TransportProto::RtpAvp,
        pt.to_string(),
    );
    m.media = media.media.clone();
    m.proto = media.proto_text.clone();
    m.bandwidths.push(sdp_types::Bandwidth {
        bwtype: "AS".into(),
        bandwidth: u64::from(va.bandwidth_kbps),
    });
    m.add_attribute_with_value("rtpmap", format!("{pt} H264/90000"));
    m.add_attribute_with_value("fmtp", va.fmtp.clone());
    for fb in &va.rtcp_fb {
        m.add_attribute_with_value("rtcp-fb", fb.clone());
    }
    if rtcp_mux {
        m.add_attribute(sdp_types::Attribute::new("rtcp-mux"));
    }
    if let Some(k) = &srtp {
        m.add_attribute_with_value("crypto", k.local.to_sdp());
    }
    if let Some(c) = &va.content {
        m.add_attribute_with_value("content", c.clone());
    }
    m.add_attribute(sdp_types::Attribute::new(direction.as_str()));
    let negotiated = NegotiatedVideo {
        media_index: va.index,
        pt,
        peer_pt: pt,
        packetization_mode: va.format.packetization_mode,
        profile_level_id: va.format.profile_level_id,
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        direction,
        feedback,
        max_kbps: va.bandwidth_kbps,
        srtp,
    };
    Some((negotiated, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(video: &str) -> SessionDescription {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\n{video}"
        );
        SessionDescription::parse(sdp.as_bytes()).expect("sdp")
    }

    #[test]
    fn a_room_system_offer_is_answered_with_mode_1_constrained_baseline() {
        // A typical room-system offer: High first, then Baseline in both modes, then H.263.
        let o = offer(
            "b=AS:2048\r\nm=video 40002 RTP/AVP 97 96 98 34\r\n\
             a=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=640c1f;packetization-mode=1\r\n\
             a=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=0\r\n\
             a=rtpmap:98 H264/90000\r\na=fmtp:98 profile-level-id=42e01f;packetization-mode=1\r\n\
             a=rtcp-fb:* nack\r\na=rtcp-fb:98 nack pli\r\na=rtcp-fb:98 ccm fir\r\n\
             a=rtcp-fb:97 ccm tmmbr\r\na=rtcp-fb:98 trr-int 100\r\na=content:main\r\n",
        );
        let a = answer_video(&o, 1500).expect("video");
        assert_eq!(a.index, 1);
        assert_eq!(a.format.pt, 98);
        assert_eq!(
            a.fmtp,
            "98 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1"
        );
        assert_eq!(a.rtcp_fb, ["98 nack", "98 nack pli", "98 ccm fir"]);
        assert_eq!(a.content.as_deref(), Some("main"));
        // b=AS:2048 belongs to the audio m-line; the video m-line has none: our limit.
        assert_eq!(a.bandwidth_kbps, 1500);
    }

    #[test]
    fn mode_0_only_devices_and_media_bandwidth() {
        let o = offer(
            "m=video 40002 RTP/AVP 109\r\nb=TIAS:768000\r\n\
             a=rtpmap:109 H264/90000\r\na=fmtp:109 profile-level-id=42801e\r\n",
        );
        let a = answer_video(&o, 1500).expect("video");
        assert_eq!(a.format.packetization_mode, 0);
        assert_eq!(
            a.fmtp,
            "109 profile-level-id=42801e;packetization-mode=0;level-asymmetry-allowed=1"
        );
        assert!(a.rtcp_fb.is_empty());
        assert_eq!(a.bandwidth_kbps, 768);
    }

    #[test]
    fn what_cannot_be_forwarded_is_not_answered() {
        // Interleaved mode, High 10, VP8, a slides stream, a disabled m-line.
        for video in [
            "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f;packetization-mode=2\r\n",
            "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=6e001f;packetization-mode=1\r\n",
            "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
            "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=content:slides\r\n",
            "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
            "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=xyz;packetization-mode=1\r\n",
        ] {
            assert_eq!(answer_video(&offer(video), 1500), None, "{video}");
        }
    }

    #[test]
    fn no_profile_level_id_means_baseline_and_is_not_echoed() {
        let o = offer(
            "m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n",
        );
        let a = answer_video(&o, 1000).expect("video");
        assert_eq!(a.format.profile_level_id, ProfileLevelId::DEFAULT);
        assert_eq!(a.fmtp, "96 packetization-mode=1;level-asymmetry-allowed=1");
    }

    fn answer_text(
        offer: &SessionDescription,
        policy: &MediaPolicy,
    ) -> (super::super::Answer, String) {
        let local = LocalMedia::new("203.0.113.5".parse().expect("ip"), 30000)
            .expect("local")
            .with_video_port(30002);
        let a = super::super::answer(offer, policy, &local).expect("answer");
        let text = super::super::SdpSession::new(1).render(&a.sdp);
        (a, text)
    }

    const CISCO_LIKE: &str = "m=video 40002 RTP/AVP 97 126\r\nb=TIAS:1000000\r\n\
        a=rtpmap:97 H264/90000\r\na=fmtp:97 profile-level-id=42801f;packetization-mode=0\r\n\
        a=rtpmap:126 H264/90000\r\na=fmtp:126 profile-level-id=42801f;packetization-mode=1\r\n\
        a=rtcp-fb:* ccm fir\r\na=rtcp-fb:* nack pli\r\na=content:main\r\na=sendrecv\r\n\
        m=video 40004 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\na=content:slides\r\n";

    #[test]
    fn the_answer_carries_the_main_video_and_refuses_slides() {
        let o = offer(CISCO_LIKE);
        let (a, text) = answer_text(&o, &MediaPolicy::default());
        let v = a.negotiated.video.expect("video negotiated");
        assert_eq!((v.media_index, v.pt, v.packetization_mode), (1, 126, 1));
        assert_eq!(v.remote_rtp, "192.0.2.9:40002".parse().expect("addr"));
        assert_eq!(v.remote_rtcp, "192.0.2.9:40003".parse().expect("addr"));
        assert!(v.feedback.pli && v.feedback.fir && !v.feedback.nack);
        assert_eq!(v.max_kbps, 1000);
        assert_eq!(v.direction, crate::media::negotiated::Direction::SendRecv);
        assert!(
            text.contains("m=video 30002 RTP/AVP 126\r\nb=AS:1000\r\n"),
            "{text}"
        );
        assert!(
            text.contains("a=fmtp:126 profile-level-id=42801f;packetization-mode=1"),
            "{text}"
        );
        assert!(
            text.contains("a=rtcp-fb:126 nack pli\r\na=rtcp-fb:126 ccm fir\r\n"),
            "{text}"
        );
        assert!(text.contains("a=content:main"), "{text}");
        // The slides stream (BFCP content) is refused with port 0, in place.
        assert!(text.contains("m=video 0 RTP/AVP 97\r\n"), "{text}");
        assert_eq!(text.matches("m=").count(), 3, "{text}");
    }

    #[test]
    fn video_off_or_unusable_leaves_an_audio_call() {
        let o = offer(CISCO_LIKE);
        let policy = MediaPolicy {
            video_kbps: None,
            ..MediaPolicy::default()
        };
        let (a, text) = answer_text(&o, &policy);
        assert_eq!(a.negotiated.video, None);
        assert!(
            text.contains("m=video 0 RTP/AVP 97 126\r\n")
                || text.contains("m=video 0 RTP/AVP 97\r\n"),
            "{text}"
        );
        assert!(!text.contains("H264"), "{text}");
        // SRTP required: plain video is refused, SRTP audio still works.
        let key = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj\r\n";
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
             m=audio 40000 RTP/SAVP 0\r\n{key}{CISCO_LIKE}"
        );
        let o = SessionDescription::parse(sdp.as_bytes()).expect("sdp");
        let policy = MediaPolicy {
            srtp: SrtpPolicy::Required,
            ..MediaPolicy::default()
        };
        let (a, _) = answer_text(&o, &policy);
        assert!(a.negotiated.srtp.is_some() && a.negotiated.video.is_none());
        // Without a video port (none could be bound), the same.
        let local = LocalMedia::new("203.0.113.5".parse().expect("ip"), 30000).expect("local");
        let a = super::super::answer(&offer(CISCO_LIKE), &MediaPolicy::default(), &local)
            .expect("answer");
        assert_eq!(a.negotiated.video, None);
    }

    #[test]
    fn srtp_video_gets_its_own_key_and_hold_is_mirrored() {
        let key = "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj\r\n";
        let video = format!(
            "m=video 40002 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1\r\n{key}a=sendonly\r\n"
        );
        let o = offer(&video);
        let (a, text) = answer_text(&o, &MediaPolicy::default());
        let v = a.negotiated.video.expect("video");
        let k = v.srtp.expect("video SRTP keys");
        assert_eq!(k.remote.tag, 2);
        assert_eq!(k.local.tag, 2);
        assert_ne!(k.local.to_sdp(), k.remote.to_sdp());
        assert_eq!(v.direction, crate::media::negotiated::Direction::RecvOnly);
        assert!(text.contains("m=video 30002 RTP/SAVP 96"), "{text}");
        assert!(
            text.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"),
            "{text}"
        );
        // Our key only: the peer's never goes back.
        assert!(
            !text.contains("d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj"),
            "{text}"
        );
        // SRTP off: an SRTP video line is refused, the call goes on with audio.
        let policy = MediaPolicy {
            srtp: SrtpPolicy::Off,
            ..MediaPolicy::default()
        };
        let (a, _) = answer_text(&o, &policy);
        assert_eq!(a.negotiated.video, None);
    }

    #[test]
    fn delayed_offers_carry_video_and_the_answer_sets_it_up() {
        let local = LocalMedia::new("203.0.113.5".parse().expect("ip"), 30000)
            .expect("local")
            .with_video_port(30002);
        let ours = super::super::offer(&MediaPolicy::default(), &local);
        let text = super::super::SdpSession::new(1).render(&ours);
        assert!(
            text.contains("m=video 30002 RTP/AVP 96 97\r\nb=AS:2500\r\n"),
            "{text}"
        );
        assert!(
            text.contains("a=fmtp:97 profile-level-id=42e01f;packetization-mode=0"),
            "{text}"
        );
        assert!(
            text.contains("a=rtcp-fb:96 nack pli\r\n") && text.contains("a=content:main"),
            "{text}"
        );
        let offer = SessionDescription::parse(text.as_bytes()).expect("our offer parses");
        // A mode-0 device answers 97, 768 kbit/s, PLI only, no rtcp-mux.
        let answer = "v=0\r\no=- 2 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
            m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
            m=video 40002 RTP/AVP 97\r\nb=AS:768\r\na=rtpmap:97 H264/90000\r\n\
            a=fmtp:97 profile-level-id=42801e;packetization-mode=0\r\na=rtcp-fb:97 nack pli\r\n";
        let answer = SessionDescription::parse(answer.as_bytes()).expect("answer");
        let n = super::super::accept_answer(&offer, &answer).expect("accepted");
        let v = n.video.expect("video");
        assert_eq!((v.pt, v.packetization_mode, v.max_kbps), (97, 0, 768));
        assert_eq!(v.profile_level_id.level_idc, 30);
        assert_eq!(v.remote_rtcp, "192.0.2.9:40003".parse().expect("addr"));
        assert!(v.feedback.pli && !v.feedback.fir);
        // Video refused in the answer: an audio call.
        let refused = "v=0\r\no=- 2 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
            m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 96\r\n";
        let refused = SessionDescription::parse(refused.as_bytes()).expect("answer");
        let n = super::super::accept_answer(&offer, &refused).expect("accepted");
        assert_eq!(n.video, None);
        // Without a video port, the offer is audio only.
        let audio_only = LocalMedia::new("203.0.113.5".parse().expect("ip"), 30000).expect("local");
        let text = super::super::SdpSession::new(1)
            .render(&super::super::offer(&MediaPolicy::default(), &audio_only));
        assert!(!text.contains("m=video"), "{text}");
    }

    #[test]
    fn re_offers_keep_our_keys_unless_the_peer_rekeys() {
        let key = |k: &str| format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}\r\n");
        let sdp = |k: &str| {
            format!(
                "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
                 m=audio 40000 RTP/SAVP 0\r\n{}m=video 40002 RTP/SAVP 96\r\na=rtpmap:96 H264/90000\r\n\
                 a=fmtp:96 packetization-mode=1\r\n{}",
                key(k),
                key(k)
            )
        };
        let first =
            SessionDescription::parse(sdp("d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj").as_bytes())
                .expect("sdp");
        let local = LocalMedia::new("203.0.113.5".parse().expect("ip"), 30000)
            .expect("local")
            .with_video_port(30002);
        let policy = MediaPolicy::default();
        let a = super::super::answer(&first, &policy, &local).expect("answer");
        let n = a.negotiated;
        let (audio, video) = (
            n.srtp.clone().expect("audio keys"),
            n.video.clone().and_then(|v| v.srtp).expect("video keys"),
        );
        // A session refresh with the same keys: ours stay.
        let again = super::super::reanswer(&first, &policy, &local, &n).expect("re-answer");
        assert_eq!(again.negotiated.srtp.as_ref(), Some(&audio));
        assert_eq!(
            again
                .negotiated
                .video
                .as_ref()
                .and_then(|v| v.srtp.as_ref()),
            Some(&video)
        );
        // The peer rekeys: so do we.
        let rekeyed =
            SessionDescription::parse(sdp("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk").as_bytes())
                .expect("sdp");
        let b = super::super::reanswer(&rekeyed, &policy, &local, &n).expect("re-answer");
        let k = b.negotiated.srtp.expect("keys");
        assert_ne!(k.local, audio.local);
        assert_ne!(k.remote, audio.remote);
    }
}
