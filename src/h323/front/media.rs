//! From H.323 channels to the call core's media description, fast-start choices, and the
//! Q.850 causes of the call core's hang-up reasons.

use std::net::SocketAddr;

use crate::call::HangupCause;
use crate::h323::call::cause;
use crate::h323::call::{Channel, Codec as FsCodec, Direction as FsDirection};
use crate::h323::h245::AudioCodec;
use crate::sip::sdp::{Direction, Negotiated, RtpCodec};

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

fn audio(c: FsCodec) -> Option<AudioCodec> {
    match c {
        FsCodec::Pcma => Some(AudioCodec::Pcma),
        FsCodec::Pcmu => Some(AudioCodec::Pcmu),
        FsCodec::G722 => Some(AudioCodec::G722),
        FsCodec::H264 | FsCodec::Other => None,
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
            let codec = audio(out.codec)?;
            let remote_rtp = out.rtp?;
            let receive = channels.iter().position(|c| {
                c.direction == FsDirection::CallerToCallee && audio(c.codec) == Some(codec)
            })?;
            Some(FastStartChoice {
                codec,
                frames: out.frames.unwrap_or(20),
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

/// The Q.850 cause of ReleaseComplete for why the call core ended the call.
pub fn q850_for(c: HangupCause) -> u8 {
    match c {
        HangupCause::CallerBye
        | HangupCause::Cancelled
        | HangupCause::RoomClosed
        | HangupCause::Removed
        | HangupCause::MaxDuration => cause::NORMAL_CLEARING,
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

    fn ch(direction: FsDirection, codec: FsCodec, rtp: Option<&str>) -> Channel {
        let addr = |a: &str| a.parse::<SocketAddr>().expect("addr");
        let p = crate::h323::call::Proposal {
            direction,
            codec,
            frames: 30,
            max_bit_rate: 40_960,
            payload_type: (codec == FsCodec::H264).then_some(96),
            rtp: addr(rtp.unwrap_or("10.0.0.2:5000")),
            rtcp: addr("10.0.0.2:5001"),
        };
        let bytes = crate::h323::call::faststart::propose(&p, 1, codec.default_session())
            .expect("proposal");
        Channel::decode(&bytes).expect("decodes")
    }

    #[test]
    fn fast_start_takes_the_callers_first_symmetric_codec() {
        use FsDirection::*;
        let list = vec![
            ch(CallerToCallee, FsCodec::Pcmu, None),
            ch(CallerToCallee, FsCodec::G722, None),
            ch(CalleeToCaller, FsCodec::Pcma, Some("10.0.0.2:5000")),
            ch(CalleeToCaller, FsCodec::G722, Some("10.0.0.2:5000")),
            ch(CalleeToCaller, FsCodec::Pcmu, Some("10.0.0.2:5000")),
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
            ch(CallerToCallee, FsCodec::Pcmu, None),
            ch(CalleeToCaller, FsCodec::Pcma, Some("10.0.0.2:5000")),
        ];
        assert_eq!(choose_fast_start(&asymmetric), None);
        let one_way = vec![ch(CallerToCallee, FsCodec::Pcmu, None)];
        assert_eq!(choose_fast_start(&one_way), None);
        let video = vec![
            ch(CallerToCallee, FsCodec::H264, None),
            ch(CalleeToCaller, FsCodec::H264, Some("10.0.0.2:5000")),
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

    #[test]
    fn refusals_map_to_q850() {
        assert_eq!(q850_for_sip(404), 1);
        assert_eq!(q850_for_sip(403), cause::CALL_REJECTED);
        assert_eq!(q850_for_sip(503), cause::TEMPORARY_FAILURE);
        assert_eq!(q850_for(HangupCause::CallerBye), cause::NORMAL_CLEARING);
    }
}
