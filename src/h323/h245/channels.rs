//! Logical channels: OpenLogicalChannel and its Ack for H.225.0 (RTP) media.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use super::capabilities::{codec_data_type, oid, Codec, H264_MODE1_OID};
use crate::h323::asn::multimedia_system_control::{
    H2250LogicalChannelAckParameters, H2250LogicalChannelParameters,
    H2250LogicalChannelParametersMediaPacketization, H245TransportAddress, LogicalChannelNumber,
    OpenLogicalChannel, OpenLogicalChannelAck, OpenLogicalChannelAckForwardMultiplexAckParameters,
    OpenLogicalChannelForwardLogicalChannelParameters,
    OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters, RTPPayloadType,
    RTPPayloadTypePayloadDescriptor, UnicastAddress, UnicastAddressIP6Address,
    UnicastAddressIPAddress,
};

/// RTP session of audio (H.225.0).
pub const SESSION_AUDIO: u8 = 1;
/// RTP session of video (H.225.0).
pub const SESSION_VIDEO: u8 = 2;

/// Media kind of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Audio (session 1).
    Audio,
    /// Video (session 2).
    Video,
}

impl MediaKind {
    /// The H.225.0 RTP session ID of this kind.
    pub fn session_id(self) -> u8 {
        match self {
            MediaKind::Audio => SESSION_AUDIO,
            MediaKind::Video => SESSION_VIDEO,
        }
    }
}

/// Which way media flows on a channel, seen from us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We send (we opened it).
    Outgoing,
    /// We receive (the peer opened it).
    Incoming,
}

/// Our RTP and RTCP addresses for one media kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaAddresses {
    /// Where we receive RTP.
    pub rtp: SocketAddr,
    /// Where we receive RTCP.
    pub rtcp: SocketAddr,
}

/// An open logical channel, as events report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Forward logical channel number (chosen by whoever opened it).
    pub number: u16,
    /// Direction.
    pub direction: Direction,
    /// RTP session ID.
    pub session_id: u8,
    /// Media format.
    pub codec: Codec,
    /// Dynamic RTP payload type, if signalled (H.264).
    pub payload_type: Option<u8>,
    /// The peer's RTP address (outgoing channels: where we send).
    pub remote_rtp: Option<SocketAddr>,
    /// The peer's RTCP address.
    pub remote_rtcp: Option<SocketAddr>,
}

/// State of one of our outgoing channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutgoingState {
    /// OLC sent, T103 running until the deadline.
    AwaitingAck(Instant),
    /// Acknowledged.
    Open,
    /// CLC sent, awaiting CLCAck until the deadline.
    AwaitingCloseAck(Instant),
}

/// One of our outgoing channels.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub info: ChannelInfo,
    pub state: OutgoingState,
}

/// A socket address as an H.245 unicast address.
pub fn transport_address(addr: SocketAddr) -> H245TransportAddress {
    let unicast = match addr.ip() {
        IpAddr::V4(ip) => UnicastAddress::iPAddress(UnicastAddressIPAddress::new(
            ip.octets().to_vec().into(),
            addr.port(),
        )),
        IpAddr::V6(ip) => UnicastAddress::iP6Address(UnicastAddressIP6Address::new(
            ip.octets().to_vec().into(),
            addr.port(),
        )),
    };
    H245TransportAddress::unicastAddress(unicast)
}

/// A socket address from an H.245 unicast address (others: `None`).
pub fn socket_address(addr: &H245TransportAddress) -> Option<SocketAddr> {
    match addr {
        H245TransportAddress::unicastAddress(UnicastAddress::iPAddress(a)) => {
            let o: [u8; 4] = a.network.as_ref().try_into().ok()?;
            Some(SocketAddr::new(Ipv4Addr::from(o).into(), a.tsap_identifier))
        }
        H245TransportAddress::unicastAddress(UnicastAddress::iP6Address(a)) => {
            let o: [u8; 16] = a.network.as_ref().try_into().ok()?;
            Some(SocketAddr::new(Ipv6Addr::from(o).into(), a.tsap_identifier))
        }
        _ => None,
    }
}

/// Our OLC for a channel that sends `codec`, announcing our RTCP address.
pub(crate) fn build_olc(
    number: u16,
    codec: &Codec,
    session_id: u8,
    rtcp: Option<SocketAddr>,
    payload_type: Option<u8>,
) -> OpenLogicalChannel {
    let packetization = match codec {
        Codec::H264(_) => Some(
            H2250LogicalChannelParametersMediaPacketization::rtpPayloadType(RTPPayloadType::new(
                RTPPayloadTypePayloadDescriptor::oid(oid(&H264_MODE1_OID)),
                payload_type,
            )),
        ),
        Codec::Audio { .. } => None,
    };
    let h2250 = H2250LogicalChannelParameters::new(
        None,
        session_id,
        None,
        None,
        None,
        rtcp.map(transport_address),
        None,
        matches!(codec, Codec::Audio { .. }).then_some(false),
        None,
        payload_type,
        packetization,
        None,
        None,
        None,
    );
    OpenLogicalChannel::new(
        LogicalChannelNumber(number),
        OpenLogicalChannelForwardLogicalChannelParameters::new(
            None,
            codec_data_type(codec),
            OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(h2250),
            None,
            None,
        ),
        None,
        None,
        None,
        None,
    )
}

/// The OLCAck of the peer's channel `number`, with where we receive its media.
pub(crate) fn build_olc_ack(
    number: u16,
    session_id: u8,
    ours: &MediaAddresses,
    payload_type: Option<u8>,
) -> OpenLogicalChannelAck {
    let params = H2250LogicalChannelAckParameters::new(
        None,
        Some(session_id),
        Some(transport_address(ours.rtp)),
        Some(transport_address(ours.rtcp)),
        payload_type,
        None,
        None,
    );
    OpenLogicalChannelAck::new(
        LogicalChannelNumber(number),
        None,
        None,
        Some(
            OpenLogicalChannelAckForwardMultiplexAckParameters::h2250LogicalChannelAckParameters(
                params,
            ),
        ),
        None,
        None,
    )
}

/// The H.225.0 parameters of an OLC, if it has them.
pub(crate) fn h2250_params(olc: &OpenLogicalChannel) -> Option<&H2250LogicalChannelParameters> {
    match &olc.forward_logical_channel_parameters.multiplex_parameters {
        OpenLogicalChannelForwardLogicalChannelParametersMultiplexParameters::h2250LogicalChannelParameters(p) => Some(p),
        _ => None,
    }
}

/// The peer's RTP and RTCP addresses from an OLCAck.
pub(crate) fn ack_addresses(
    ack: &OpenLogicalChannelAck,
) -> (Option<SocketAddr>, Option<SocketAddr>, Option<u8>) {
    match &ack.forward_multiplex_ack_parameters {
        Some(
            OpenLogicalChannelAckForwardMultiplexAckParameters::h2250LogicalChannelAckParameters(p),
        ) => (
            p.media_channel.as_ref().and_then(socket_address),
            p.media_control_channel.as_ref().and_then(socket_address),
            p.session_id,
        ),
        _ => (None, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_convert_both_ways() {
        for a in ["10.1.3.143:5000", "[2001:db8::1]:40000"] {
            let addr: SocketAddr = a.parse().expect("addr");
            assert_eq!(socket_address(&transport_address(addr)), Some(addr));
        }
        let bad = H245TransportAddress::unicastAddress(UnicastAddress::iPAddress(
            UnicastAddressIPAddress::new(vec![1, 2, 3].into(), 5),
        ));
        assert_eq!(socket_address(&bad), None);
    }
}
