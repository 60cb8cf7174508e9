//! From H.323 channels to the call core's media description, fast-start choices, and the
//! Q.850 causes of the call core's hang-up reasons.

use std::net::SocketAddr;

use crate::call::HangupCause;
use crate::h323::call::cause;
use crate::h323::call::{Channel, Direction as FsDirection};
use crate::h323::h245::{AudioCodec, ChannelInfo, Codec as H245Codec};
use crate::media::h264::profile::ProfileLevelId;
use crate::media::negotiated::{Direction, Negotiated, NegotiatedVideo, VideoFeedback};
use crate::media::rtp::payload_format::RtpCodec;

/// The audio codecs of the H.323 front, in our order of preference (G.722 sounds best).
pub const AUDIO_CODECS: [AudioCodec; 3] = [AudioCodec::G722, AudioCodec::Pcmu, AudioCodec::Pcma];

/// The fast-start proposals we accept: one audio channel each way, same codec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastStartChoice {
    /// The codec, both ways.
    pub codec: AudioCodec,
    /// The caller's packet size (ms) for what we send.
    pub frames: u16,
    /// Index of the caller → us proposal.
    pub receive: usize,
    /// Index of the us → caller proposal.
    pub send: usize,
    /// Where we send RTP (the caller's address in its receive proposal).
    pub remote_rtp: SocketAddr,
    /// Where we send RTCP.
    pub remote_rtcp: Option<SocketAddr>,
}

/// The audio codec and packet size of a fast-start channel, when it is audio we handle.
fn audio(c: &Channel) -> Option<(AudioCodec, u16)> {
    match c.codec {
        Some(H245Codec::Audio { codec, frames }) => Some((codec, frames)),
        _ => None,
    }
}

/// Picks the caller's first us → caller audio proposal that has a caller → us proposal of
/// the same codec (our pipeline runs one codec both ways). `None`: fast start is refused.
pub fn choose_fast_start(channels: &[Channel]) -> Option<FastStartChoice> {
    channels
        .iter()
        .enumerate()
        .filter(|(_, c)| c.direction == FsDirection::CalleeToCaller)
        .find_map(|(send, out)| {
            let (codec, frames) = audio(out)?;
            let remote_rtp = out.rtp?;
            let receive = channels.iter().position(|c| {
                c.direction == FsDirection::CallerToCallee
                    && audio(c).is_some_and(|(other, _)| other == codec)
            })?;
            Some(FastStartChoice {
                codec,
                frames,
                receive,
                send,
                remote_rtp,
                remote_rtcp: out.rtcp,
            })
        })
}

/// The call core's description of an H.323 audio stream: one codec both ways, its static
/// payload type, no RFC 4733 events (digits travel as H.245 UserInputIndication).
pub fn negotiated(
    codec: AudioCodec,
    frames: u16,
    remote_rtp: SocketAddr,
    remote_rtcp: Option<SocketAddr>,
) -> Negotiated {
    let (name, pt) = match codec {
        AudioCodec::Pcmu => ("PCMU", 0),
        AudioCodec::Pcma => ("PCMA", 8),
        AudioCodec::G722 => ("G722", 9),
    };
    // `frames` is the most milliseconds per packet the peer takes: 20 ms unless it takes less.
    let ptime = if frames >= 20 { 20 } else { 10 };
    Negotiated {
        media_index: 0,
        codec: RtpCodec::new(name, 8000, 1),
        pt,
        clock_rate: 8000,
        ptime,
        dtmf_pt: None,
        remote_rtp,
        remote_rtcp: remote_rtcp
            .unwrap_or_else(|| SocketAddr::new(remote_rtp.ip(), remote_rtp.port() | 1)),
        rtcp_mux: false,
        direction: Direction::SendRecv,
        opus: None,
        srtp: None,
        video: None,
    }
}

/// The `level_idc` of an H.241 level code (15 is level 1, 19 level 1b, then 22, 29, 36,
/// 43, ... for 1.1, 1.2, 1.3, 2, ...); codes in between round down.
pub fn level_idc(h241_level: u16) -> u8 {
    const LEVELS: [(u16, u8); 16] = [
        (15, 10),
        (19, 11),
        (22, 11),
        (29, 12),
        (36, 13),
        (43, 20),
        (50, 21),
        (57, 22),
        (64, 30),
        (71, 31),
        (78, 32),
        (85, 40),
        (92, 41),
        (99, 42),
        (106, 50),
        (113, 51),
    ];
    LEVELS
        .iter()
        .rev()
        .find(|(code, _)| *code <= h241_level)
        .map_or(10, |(_, idc)| *idc)
}

/// The call core's description of the H.323 video: our H.264 channel to the device (`out`,
/// acknowledged: where we send) and the device's channel to us (`inc`: its payload type), either
/// of which may be missing. `max_kbps` is the most the device takes (its capability, its
/// FlowControlCommand). Keyframe requests travel as H.245 videoFastUpdatePicture, not RTCP
/// feedback; packetization mode 1 (H.241 non-interleaved) carries the room's large NAL units.
pub fn negotiated_video(
    out: Option<&ChannelInfo>,
    inc: Option<&ChannelInfo>,
    max_kbps: u32,
) -> Option<NegotiatedVideo> {
    let level = |c: &ChannelInfo| match c.codec {
        H245Codec::H264(p) => Some(p.level),
        H245Codec::Audio { .. } => None,
    };
    let (sends, receives) = (out.is_some(), inc.is_some());
    let remote_rtp = out
        .and_then(|c| c.remote_rtp)
        .or_else(|| inc.and_then(|c| c.remote_rtcp))?;
    let remote_rtcp = out
        .and_then(|c| c.remote_rtcp)
        .or_else(|| inc.and_then(|c| c.remote_rtcp))
        .unwrap_or_else(|| SocketAddr::new(remote_rtp.ip(), remote_rtp.port() | 1));
    let pt = out.and_then(|c| c.payload_type).unwrap_or(96);
    let level = out
        .or(inc)
        .and_then(level)
        .unwrap_or(crate::h323::h245::capabilities::H264_LEVEL_3_1);
    Some(NegotiatedVideo {
        media_index: 1,
        pt,
        peer_pt: inc.and_then(|c| c.payload_type).unwrap_or(pt),
        packetization_mode: 1,
        profile_level_id: ProfileLevelId {
            profile_idc: 66,
            profile_iop: 0xe0,
            level_idc: level_idc(level),
        },
        remote_rtp,
        remote_rtcp,
        rtcp_mux: false,
        direction: match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            _ => Direction::RecvOnly,
        },
        feedback: VideoFeedback::default(),
        max_kbps,
        srtp: None,
    })
}

/// The Q.850 cause of ReleaseComplete for why the call core ended the call.
pub fn q850_for(c: HangupCause) -> u8 {
    match c {
        HangupCause::CallerBye
        | HangupCause::Cancelled
        | HangupCause::RoomClosed
        | HangupCause::Removed
        | HangupCause::MaxDuration
        | HangupCause::Disengaged => cause::NORMAL_CLEARING,
        HangupCause::RoomUnavailable
        | HangupCause::MediaTimeout
        | HangupCause::Shutdown
        | HangupCause::PinDirectoryFailed => cause::TEMPORARY_FAILURE,
        HangupCause::NoAck | HangupCause::SessionExpired => cause::TIMER_EXPIRY,
        HangupCause::NoMedia => cause::INCOMPATIBLE_DESTINATION,
        HangupCause::PinRefused => cause::CALL_REJECTED,
    }
}

/// The Q.850 cause for a dialplan refusal given as a SIP status (RFC 3398 §8.2.6.1, in
/// reverse), when the rule sets no `h323_cause`.
pub fn q850_for_sip(status: u16) -> u8 {
    match status {
        403 | 603 => cause::CALL_REJECTED,
        404 | 604 => 1, // unallocated number
        410 => 22,      // number changed
        408 => cause::TIMER_EXPIRY,
        480 => cause::NO_USER_RESPONDING,
        484 => cause::INVALID_NUMBER_FORMAT,
        486 | 600 => cause::USER_BUSY,
        488 | 606 => cause::INCOMPATIBLE_DESTINATION,
        500..=599 => cause::TEMPORARY_FAILURE,
        _ => cause::NORMAL_UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h323::h245::H264Params;

    fn ch(direction: FsDirection, codec: Option<AudioCodec>, rtp: Option<&str>) -> Channel {
        let addr = |a: &str| a.parse::<SocketAddr>().expect("addr");
        // `None`: H.264.
        let codec = match codec {
            Some(codec) => H245Codec::Audio { codec, frames: 30 },
            None => H245Codec::H264(H264Params::baseline_3_1(Some(40_960))),
        };
        let p = crate::h323::call::Proposal {
            direction,
            codec,
            payload_type: matches!(codec, H245Codec::H264(_)).then_some(96),
            rtp: addr(rtp.unwrap_or("10.0.0.2:5000")),
            rtcp: addr("10.0.0.2:5001"),
        };
        let bytes = crate::h323::call::faststart::propose(&p, 1, codec.media_kind().session_id())
            .expect("proposal");
        Channel::decode(&bytes).expect("decodes")
    }

    #[test]
    fn fast_start_takes_the_callers_first_symmetric_codec() {
        use FsDirection::*;
        let list = vec![
            ch(CallerToCallee, Some(AudioCodec::Pcmu), None),
            ch(CallerToCallee, Some(AudioCodec::G722), None),
            ch(
                CalleeToCaller,
                Some(AudioCodec::Pcma),
                Some("10.0.0.2:5000"),
            ),
            ch(
                CalleeToCaller,
                Some(AudioCodec::G722),
                Some("10.0.0.2:5000"),
            ),
            ch(
                CalleeToCaller,
                Some(AudioCodec::Pcmu),
                Some("10.0.0.2:5000"),
            ),
        ];
        let c = choose_fast_start(&list).expect("a choice");
        assert_eq!((c.codec, c.receive, c.send), (AudioCodec::G722, 1, 3));
        assert_eq!(c.remote_rtp, "10.0.0.2:5000".parse().expect("addr"));
        assert_eq!(c.frames, 30);
    }

    #[test]
    fn asymmetric_or_one_way_fast_start_is_refused() {
        use FsDirection::*;
        let asymmetric = vec![
            ch(CallerToCallee, Some(AudioCodec::Pcmu), None),
            ch(
                CalleeToCaller,
                Some(AudioCodec::Pcma),
                Some("10.0.0.2:5000"),
            ),
        ];
        assert_eq!(choose_fast_start(&asymmetric), None);
        let one_way = vec![ch(CallerToCallee, Some(AudioCodec::Pcmu), None)];
        assert_eq!(choose_fast_start(&one_way), None);
        let video = vec![
            ch(CallerToCallee, None, None),
            ch(CalleeToCaller, None, Some("10.0.0.2:5000")),
        ];
        assert_eq!(choose_fast_start(&video), None);
    }

    #[test]
    fn negotiated_uses_static_payload_types_and_rtcp_port() {
        let n = negotiated(
            AudioCodec::G722,
            20,
            "10.0.0.2:5000".parse().expect("a"),
            None,
        );
        assert_eq!((n.pt, n.codec.name.as_str(), n.ptime), (9, "G722", 20));
        assert_eq!(n.remote_rtcp.port(), 5001);
        assert_eq!(n.dtmf_pt, None);
    }

    fn video_channel(direction: crate::h323::h245::Direction, pt: u8) -> ChannelInfo {
        let addr = |a: &str| a.parse::<SocketAddr>().expect("addr");
        let outgoing = direction == crate::h323::h245::Direction::Outgoing;
        ChannelInfo {
            number: 2,
            direction,
            session_id: 2,
            codec: H245Codec::H264(H264Params {
                profile: 64,
                level: 64,
                max_bit_rate: Some(10_240),
            }),
            payload_type: Some(pt),
            remote_rtp: outgoing.then(|| addr("10.0.0.2:5002")),
            remote_rtcp: Some(addr("10.0.0.2:5003")),
        }
    }

    #[test]
    fn video_channels_describe_the_stream_each_way() {
        use crate::h323::h245::Direction::{Incoming, Outgoing};
        let out = video_channel(Outgoing, 96);
        let inc = video_channel(Incoming, 109);
        let v = negotiated_video(Some(&out), Some(&inc), 768).expect("video");
        assert_eq!((v.pt, v.peer_pt, v.packetization_mode), (96, 109, 1));
        assert_eq!(v.direction, Direction::SendRecv);
        assert_eq!(
            v.profile_level_id,
            ProfileLevelId::parse("42e01e").expect("plid")
        );
        assert_eq!(v.remote_rtp.port(), 5002);
        assert_eq!((v.max_kbps, v.feedback), (768, VideoFeedback::default()));
        // Only our channel: we send; only theirs: we receive (RTCP goes to its control port).
        let v = negotiated_video(Some(&out), None, 768).expect("video");
        assert_eq!((v.direction, v.peer_pt), (Direction::SendOnly, 96));
        let v = negotiated_video(None, Some(&inc), 768).expect("video");
        assert_eq!(v.direction, Direction::RecvOnly);
        assert_eq!(v.remote_rtcp.port(), 5003);
        assert_eq!(negotiated_video(None, None, 768), None);
    }

    #[test]
    fn h241_levels_map_to_level_idc() {
        assert_eq!(level_idc(71), 31);
        assert_eq!(level_idc(85), 40);
        assert_eq!(level_idc(19), 11);
        assert_eq!(level_idc(70), 30);
        assert_eq!(level_idc(0), 10);
    }

    #[test]
    fn refusals_map_to_q850() {
        assert_eq!(q850_for_sip(404), 1);
        assert_eq!(q850_for_sip(403), cause::CALL_REJECTED);
        assert_eq!(q850_for_sip(503), cause::TEMPORARY_FAILURE);
        assert_eq!(q850_for(HangupCause::CallerBye), cause::NORMAL_CLEARING);
    }
}
