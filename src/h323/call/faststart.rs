//! Fast Connect (H.323 §8.1.7): the H.245 `OpenLogicalChannel` proposals a caller puts in
//! `fastStart` and the ones the callee sends back, parsed into [`Channel`]s and built.
//!
//! A proposal where the caller sends media carries its codec in the *forward* parameters
//! (with the caller's RTCP address); one where the caller receives has a forward `nullData`
//! and the codec in the *reverse* parameters (with the caller's RTP and RTCP addresses). The
//! callee answers the ones it picks with its own addresses filled in.

use std::net::SocketAddr;

use crate::h323::asn::multimedia_system_control as h245;
use crate::h323::asn::rasn;
use crate::h323::asn::rasn::types::OctetString;
use crate::h323::h245::capabilities::{codec_data_type, data_type_codec, Codec};
use crate::h323::h245::channels::{socket_address, transport_address};

/// Which way media flows on a fast-start channel, seen from the call (not from us).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The caller sends, the callee receives (codec in the forward parameters).
    CallerToCallee,
    /// The callee sends, the caller receives (forward `nullData`, codec in the reverse ones).
    CalleeToCaller,
}

/// One fast-start channel: a proposal from a Setup or an answer from the callee.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// Which way media flows.
    pub direction: Direction,
    /// The logical channel number.
    pub lcn: u16,
    /// The RTP session (1 audio, 2 video, others for extra streams).
    pub session_id: u8,
    /// The media format (audio with its packet size, or H.264), `None` for one jonction does
    /// not handle (such a proposal is still answerable).
    pub codec: Option<Codec>,
    /// The dynamic RTP payload type, if any.
    pub payload_type: Option<u8>,
    /// `mediaChannel` as carried: in a proposal the caller's RTP address (where the callee
    /// sends, [`Direction::CalleeToCaller`]); in an answer to a [`Direction::CallerToCallee`]
    /// proposal the callee's RTP address (where the caller sends).
    pub rtp: Option<SocketAddr>,
    /// `mediaControlChannel` as carried: the RTCP address of whoever wrote the OLC.
    pub rtcp: Option<SocketAddr>,
    olc: h245::OpenLogicalChannel,
}

/// Why a fast-start entry was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FastStartError {
    /// Not a PER `OpenLogicalChannel`.
    #[error("fastStart entry is not an OpenLogicalChannel: {0}")]
    Decode(String),
    /// No H.225.0 (`h2250LogicalChannelParameters`) multiplex parameters.
    #[error("fastStart entry without H.225.0 logical channel parameters")]
    NotH2250,
    /// Our own channel could not be encoded.
    #[error("cannot encode the OpenLogicalChannel: {0}")]
    Encode(String),
}

/// A channel the caller offers (see [`propose`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Which way media flows.
    pub direction: Direction,
    /// The media format: audio with its packet size in ms (20 is what every room system
    /// takes), or H.264 with its limits.
    pub codec: Codec,
    /// Dynamic RTP payload type (H.264).
    pub payload_type: Option<u8>,
    /// Our RTP address (used when we receive).
    pub rtp: SocketAddr,
    /// Our RTCP address.
    pub rtcp: SocketAddr,
}

impl Channel {
    /// Parses one PER-encoded `OpenLogicalChannel`.
    pub fn decode(bytes: &[u8]) -> Result<Channel, FastStartError> {
        let olc: h245::OpenLogicalChannel =
            rasn::aper::decode(bytes).map_err(|e| FastStartError::Decode(e.to_string()))?;
        Channel::from_olc(olc)
    }

    fn from_olc(olc: h245::OpenLogicalChannel) -> Result<Channel, FastStartError> {
        use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as F;
        use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as R;
        let fwd = &olc.forward_logical_channel_parameters;
        let (direction, data_type, params) =
            match (&fwd.data_type, &olc.reverse_logical_channel_parameters) {
                (h245::DataType::nullData(()), Some(rev)) => match &rev.multiplex_parameters {
                    Some(R::h2250LogicalChannelParameters(p)) => {
                        (Direction::CalleeToCaller, &rev.data_type, p)
                    }
                    _ => return Err(FastStartError::NotH2250),
                },
                (d, _) => match &fwd.multiplex_parameters {
                    F::h2250LogicalChannelParameters(p) => (Direction::CallerToCallee, d, p),
                    _ => return Err(FastStartError::NotH2250),
                },
            };
        Ok(Channel {
            direction,
            lcn: olc.forward_logical_channel_number.0,
            session_id: params.session_id,
            codec: data_type_codec(data_type),
            payload_type: params.dynamic_rtppayload_type,
            rtp: params.media_channel.as_ref().and_then(socket_address),
            rtcp: params
                .media_control_channel
                .as_ref()
                .and_then(socket_address),
            olc,
        })
    }

    /// The callee's answer to this proposal: the same channel with our RTP and RTCP addresses
    /// (for a channel we send on, `lcn` is our own forward channel number).
    pub fn answer(
        &self,
        lcn: u16,
        rtp: SocketAddr,
        rtcp: SocketAddr,
    ) -> Result<Vec<u8>, FastStartError> {
        use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as F;
        use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as R;
        let mut olc = self.olc.clone();
        match self.direction {
            Direction::CallerToCallee => {
                if let F::h2250LogicalChannelParameters(p) =
                    &mut olc.forward_logical_channel_parameters.multiplex_parameters
                {
                    p.media_channel = Some(transport_address(rtp));
                    p.media_control_channel = Some(transport_address(rtcp));
                }
            }
            Direction::CalleeToCaller => {
                olc.forward_logical_channel_number = h245::LogicalChannelNumber(lcn);
                if let Some(rev) = &mut olc.reverse_logical_channel_parameters {
                    if let Some(R::h2250LogicalChannelParameters(p)) = &mut rev.multiplex_parameters
                    {
                        p.media_control_channel = Some(transport_address(rtcp));
                    }
                }
            }
        }
        rasn::aper::encode(&olc).map_err(|e| FastStartError::Encode(e.to_string()))
    }
}

/// Builds a caller's proposal with channel number `lcn` and RTP session `session_id`.
pub fn propose(p: &Proposal, lcn: u16, session_id: u8) -> Result<Vec<u8>, FastStartError> {
    use h245::OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters as F;
    use h245::OpenLogicalChannelReverseLogicalChannelParametersMultiplexParameters as R;
    let data_type = codec_data_type(&p.codec);
    let h2250 = |rtp: Option<SocketAddr>| {
        h245::H2250LogicalChannelParameters::new(
            None,
            session_id,
            None,
            rtp.map(transport_address),
            None,
            Some(transport_address(p.rtcp)),
            None,
            matches!(p.codec, Codec::Audio { .. }).then_some(false),
            None,
            p.payload_type.filter(|pt| (96..=127).contains(pt)),
            None,
            None,
            None,
            None,
        )
    };
    let olc = match p.direction {
        Direction::CallerToCallee => h245::OpenLogicalChannel::new(
            h245::LogicalChannelNumber(lcn),
            h245::OpenLogicalChannelForwardLogicalChannelParameters::new(
                None,
                data_type,
                F::h2250LogicalChannelParameters(h2250(None)),
                None,
                None,
            ),
            None,
            None,
            None,
            None,
        ),
        Direction::CalleeToCaller => h245::OpenLogicalChannel::new(
            h245::LogicalChannelNumber(lcn),
            h245::OpenLogicalChannelForwardLogicalChannelParameters::new(
                None,
                h245::DataType::nullData(()),
                F::none(()),
                None,
                None,
            ),
            Some(
                h245::OpenLogicalChannelReverseLogicalChannelParameters::new(
                    data_type,
                    Some(R::h2250LogicalChannelParameters(h2250(Some(p.rtp)))),
                    None,
                    None,
                ),
            ),
            None,
            None,
            None,
        ),
    };
    rasn::aper::encode(&olc).map_err(|e| FastStartError::Encode(e.to_string()))
}

/// Parses a `fastStart` list; entries that are not usable are counted, not fatal.
pub fn parse_list(list: &[OctetString]) -> (Vec<Channel>, usize) {
    let mut bad = 0;
    let channels = list
        .iter()
        .filter_map(|b| Channel::decode(b).map_err(|_| bad += 1).ok())
        .collect();
    (channels, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h323::h245::capabilities::{
        AudioCodec, H264Params, H264_LEVEL_3_1, H264_PROFILE_BASELINE,
    };

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn audio(codec: AudioCodec) -> Codec {
        Codec::Audio { codec, frames: 20 }
    }

    fn h264() -> Codec {
        Codec::H264(H264Params {
            profile: H264_PROFILE_BASELINE,
            level: H264_LEVEL_3_1,
            max_bit_rate: Some(20_000),
        })
    }

    fn proposal(direction: Direction, codec: Codec) -> Proposal {
        Proposal {
            direction,
            codec,
            payload_type: matches!(codec, Codec::H264(_)).then_some(109),
            rtp: addr("192.0.2.1:5000"),
            rtcp: addr("192.0.2.1:5001"),
        }
    }

    #[test]
    fn proposals_parse_back_with_direction_codec_and_addresses() {
        let tx = Channel::decode(
            &propose(
                &proposal(Direction::CallerToCallee, audio(AudioCodec::G722)),
                7,
                1,
            )
            .expect("encode"),
        )
        .expect("decode");
        assert_eq!(
            (tx.direction, tx.codec, tx.lcn, tx.session_id),
            (
                Direction::CallerToCallee,
                Some(audio(AudioCodec::G722)),
                7,
                1
            )
        );
        assert_eq!((tx.rtp, tx.rtcp), (None, Some(addr("192.0.2.1:5001"))));

        let rx = Channel::decode(
            &propose(&proposal(Direction::CalleeToCaller, h264()), 8, 2).expect("encode"),
        )
        .expect("decode");
        assert_eq!(
            (rx.direction, rx.codec, rx.payload_type, rx.session_id),
            (Direction::CalleeToCaller, Some(h264()), Some(109), 2)
        );
        assert_eq!(rx.rtp, Some(addr("192.0.2.1:5000")));

        let v6 = Proposal {
            rtcp: addr("[2001:db8::1]:6001"),
            ..proposal(Direction::CallerToCallee, audio(AudioCodec::Pcmu))
        };
        let c = Channel::decode(&propose(&v6, 1, 1).expect("encode")).expect("decode");
        assert_eq!(
            (c.codec, c.rtcp),
            (
                Some(audio(AudioCodec::Pcmu)),
                Some(addr("[2001:db8::1]:6001"))
            )
        );
    }

    #[test]
    fn answers_carry_the_callee_addresses() {
        let tx = Channel::decode(
            &propose(
                &proposal(Direction::CallerToCallee, audio(AudioCodec::Pcma)),
                1,
                1,
            )
            .expect("encode"),
        )
        .expect("decode");
        let a = Channel::decode(
            &tx.answer(99, addr("198.51.100.2:7000"), addr("198.51.100.2:7001"))
                .expect("answer"),
        )
        .expect("decode");
        assert_eq!(a.lcn, 1, "the caller's channel keeps its number");
        assert_eq!(
            (a.rtp, a.rtcp),
            (
                Some(addr("198.51.100.2:7000")),
                Some(addr("198.51.100.2:7001"))
            )
        );

        let rx = Channel::decode(
            &propose(
                &proposal(Direction::CalleeToCaller, audio(AudioCodec::Pcma)),
                2,
                1,
            )
            .expect("encode"),
        )
        .expect("decode");
        let a = Channel::decode(
            &rx.answer(99, addr("198.51.100.2:7000"), addr("198.51.100.2:7001"))
                .expect("answer"),
        )
        .expect("decode");
        assert_eq!(a.lcn, 99, "our sending channel gets our number");
        assert_eq!(a.direction, Direction::CalleeToCaller);
        assert_eq!(
            (a.rtp, a.rtcp),
            (
                Some(addr("192.0.2.1:5000")),
                Some(addr("198.51.100.2:7001"))
            )
        );
    }

    #[test]
    fn garbage_entries_are_counted_not_fatal() {
        let good = propose(
            &proposal(Direction::CallerToCallee, audio(AudioCodec::Pcma)),
            1,
            1,
        )
        .expect("encode");
        let list = [
            OctetString::from(good.clone()),
            OctetString::from(vec![0xff; 3]),
            OctetString::from(good[..good.len() / 2].to_vec()),
        ];
        let (ok, bad) = parse_list(&list);
        assert_eq!((ok.len(), bad), (1, 2));
    }
}
