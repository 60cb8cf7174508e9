//! What we negotiate with: the configured codec policy and the local media endpoint we
//! advertise in `c=`/`m=` (RFC 3264 §5, §6; RFC 1918 and RFC 4193 private ranges kept out).

use std::net::IpAddr;

use crate::media::negotiated::{Direction, SrtpPolicy, DEFAULT_VIDEO_KBPS};
use crate::media::rtp::payload_format::RtpCodec;

/// Whose codec order wins when both sides share several codecs (RFC 3264 §6.1 lets the
/// answerer choose).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CodecOrder {
    /// Ours: the first codec of [`MediaPolicy::codecs`] that the offer contains.
    #[default]
    Ours,
    /// The offerer's: the first offered codec that we support.
    Theirs,
}

/// The audio negotiation policy, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPolicy {
    /// Codecs we accept, most preferred first (names and fmtp as we write them in SDP).
    pub codecs: Vec<RtpCodec>,
    /// Whose preference order picks the codec when answering.
    pub codec_order: CodecOrder,
    /// Whether to negotiate RFC 4733 `telephone-event` (at the chosen codec's clock rate).
    pub telephone_event: bool,
    /// The `a=ptime` we ask for, in ms; also the packetization used when the peer states none.
    pub ptime: Option<u32>,
    /// Whether we accept RTP and RTCP on one port (RFC 5761) when the peer offers it, and
    /// offer it ourselves.
    pub rtcp_mux: bool,
    /// SDES-SRTP (RFC 4568) on the audio and video streams.
    pub srtp: SrtpPolicy,
    /// The main video stream (H.264 remuxed): the most we receive, in kbit/s (`b=AS` of our
    /// answer). `None`: video m-lines are answered with port 0.
    pub video_kbps: Option<u32>,
}

impl Default for MediaPolicy {
    /// Opus, G.722, PCMA, PCMU in that order; telephone-event; 20 ms; rtcp-mux.
    fn default() -> Self {
        MediaPolicy::from_names(&["opus", "G722", "PCMA", "PCMU"])
            .unwrap_or_else(|_| unreachable!("the default codecs are well known"))
    }
}

impl MediaPolicy {
    /// A policy with the default settings and these codecs, by configuration name (see
    /// [`RtpCodec::well_known`]).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, UnknownCodec> {
        let codecs = names
            .iter()
            .map(|n| {
                RtpCodec::well_known(n.as_ref()).ok_or_else(|| UnknownCodec(n.as_ref().into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MediaPolicy {
            codecs,
            codec_order: CodecOrder::Ours,
            telephone_event: true,
            ptime: Some(20),
            rtcp_mux: true,
            srtp: SrtpPolicy::default(),
            video_kbps: Some(DEFAULT_VIDEO_KBPS),
        })
    }

    /// Our description of a codec the peer offered, if we accept it.
    pub(crate) fn supported(&self, offered: &RtpCodec) -> Option<&RtpCodec> {
        self.codecs.iter().find(|ours| ours.matches(offered))
    }
}

/// A codec name in the configuration that jonction cannot negotiate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec {0:?} (known: opus, G722, PCMA, PCMU)")]
pub struct UnknownCodec(pub String);

/// Our end of the audio stream: the address and port we advertise, and whether we want to
/// send and receive. The address is the configured public one; [`LocalMedia::new`] refuses
/// loopback and private addresses so that a misconfiguration cannot leak them into SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    address: IpAddr,
    alternate: Option<IpAddr>,
    rtp_port: u16,
    video_port: Option<u16>,
    direction: Direction,
}

impl LocalMedia {
    /// Advertise `address:rtp_port`. Refuses the unspecified address (it means hold), multicast,
    /// port 0 (it means "rejected"), and loopback, private (RFC 1918, RFC 6598, RFC 4193) and
    /// link-local addresses: peers outside could never reach them.
    pub fn new(address: IpAddr, rtp_port: u16) -> Result<Self, AddressError> {
        if is_private(address) {
            return Err(AddressError::Private(address));
        }
        LocalMedia::new_private_allowed(address, rtp_port)
    }

    /// Like [`LocalMedia::new`] but allows loopback and private addresses, for deployments
    /// whose configuration explicitly says the peers are on the same private network.
    pub fn new_private_allowed(address: IpAddr, rtp_port: u16) -> Result<Self, AddressError> {
        check_usable(address)?;
        if rtp_port == 0 {
            return Err(AddressError::PortZero);
        }
        Ok(LocalMedia {
            address,
            alternate: None,
            rtp_port,
            video_port: None,
            direction: Direction::SendRecv,
        })
    }

    /// Also advertise `address` (of the other IP family) to peers whose own address is of that
    /// family. It passes the same checks as the main address did, except the private check,
    /// which the caller applies by choosing the constructor.
    pub fn with_alternate(mut self, address: IpAddr) -> Result<Self, AddressError> {
        check_usable(address)?;
        self.alternate = Some(address);
        Ok(self)
    }

    /// Also receive video on `port` (a main video m-line is then answered).
    pub fn with_video_port(mut self, port: u16) -> Self {
        self.video_port = (port != 0).then_some(port);
        self
    }

    /// The direction we want (default `sendrecv`); `sendonly` when we put the peer on hold.
    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// The address to advertise to a peer at `remote`: one of the same IP family if we have
    /// it, else the main one.
    pub fn address_for(&self, remote: Option<IpAddr>) -> IpAddr {
        match (remote, self.alternate) {
            (Some(r), Some(alt))
                if r.is_ipv4() == alt.is_ipv4() && r.is_ipv4() != self.address.is_ipv4() =>
            {
                alt
            }
            _ => self.address,
        }
    }

    /// The main advertised address.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The RTP port we advertise.
    pub fn rtp_port(&self) -> u16 {
        self.rtp_port
    }

    /// The video RTP port we advertise, if we take video.
    pub fn video_port(&self) -> Option<u16> {
        self.video_port
    }

    /// The direction we want.
    pub fn direction(&self) -> Direction {
        self.direction
    }
}

/// An address [`LocalMedia`] refuses to advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// `0.0.0.0`/`::` in SDP means hold (RFC 3264 §8.4), and multicast is not a call.
    #[error("{0} cannot be advertised in SDP")]
    Unusable(IpAddr),
    /// A loopback, private or link-local address, refused unless configured explicitly.
    #[error("{0} is a loopback, private or link-local address; configure a public media address")]
    Private(IpAddr),
    /// Port 0 means a rejected stream.
    #[error("the RTP port cannot be 0")]
    PortZero,
}

fn check_usable(address: IpAddr) -> Result<(), AddressError> {
    if address.is_unspecified() || address.is_multicast() {
        return Err(AddressError::Unusable(address));
    }
    Ok(())
}

fn is_private(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            // RFC 6598 shared address space (carrier-grade NAT), 100.64.0.0/10.
            let shared = a == 100 && (64..128).contains(&b);
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || shared
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            let mapped_private = v6
                .to_ipv4_mapped()
                .is_some_and(|v4| is_private(IpAddr::V4(v4)));
            v6.is_loopback() || unique_local || link_local || mapped_private
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad test address {s}"))
    }

    #[test]
    fn advertised_addresses() {
        let cases = [
            ("203.0.113.7", Ok(())),
            ("2001:db8::7", Ok(())),
            ("127.0.0.1", Err(AddressError::Private(ip("127.0.0.1")))),
            ("10.1.2.3", Err(AddressError::Private(ip("10.1.2.3")))),
            ("172.16.0.1", Err(AddressError::Private(ip("172.16.0.1")))),
            ("192.168.1.1", Err(AddressError::Private(ip("192.168.1.1")))),
            ("100.64.0.1", Err(AddressError::Private(ip("100.64.0.1")))),
            ("169.254.0.1", Err(AddressError::Private(ip("169.254.0.1")))),
            ("::1", Err(AddressError::Private(ip("::1")))),
            ("fd00::2", Err(AddressError::Private(ip("fd00::2")))),
            ("fe80::1", Err(AddressError::Private(ip("fe80::1")))),
            (
                "::ffff:192.168.0.1",
                Err(AddressError::Private(ip("::ffff:192.168.0.1"))),
            ),
            ("0.0.0.0", Err(AddressError::Unusable(ip("0.0.0.0")))),
            ("::", Err(AddressError::Unusable(ip("::")))),
            ("224.0.0.1", Err(AddressError::Unusable(ip("224.0.0.1")))),
        ];
        for (addr, want) in cases {
            assert_eq!(LocalMedia::new(ip(addr), 4000).map(|_| ()), want, "{addr}");
        }
        assert!(LocalMedia::new_private_allowed(ip("192.168.1.1"), 4000).is_ok());
        assert!(LocalMedia::new_private_allowed(ip("0.0.0.0"), 4000).is_err());
        assert_eq!(
            LocalMedia::new(ip("203.0.113.7"), 0),
            Err(AddressError::PortZero)
        );
    }

    #[test]
    fn address_family_follows_the_peer() {
        let local = LocalMedia::new(ip("203.0.113.7"), 4000)
            .and_then(|l| l.with_alternate(ip("2001:db8::7")))
            .expect("valid");
        assert_eq!(
            local.address_for(Some(ip("2001:db8::1"))),
            ip("2001:db8::7")
        );
        assert_eq!(
            local.address_for(Some(ip("198.51.100.1"))),
            ip("203.0.113.7")
        );
        assert_eq!(local.address_for(None), ip("203.0.113.7"));
    }

    #[test]
    fn policy_from_names() {
        let p = MediaPolicy::from_names(&["PCMU", "opus"]).expect("known");
        assert_eq!(p.codecs.len(), 2);
        assert!(p.codecs[0].is("pcmu"));
        assert_eq!(
            MediaPolicy::from_names(&["G729"]),
            Err(UnknownCodec("G729".into()))
        );
        assert_eq!(MediaPolicy::default().codecs.len(), 4);
    }
}
