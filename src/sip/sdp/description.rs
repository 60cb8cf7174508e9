//! A typed, read-only view of a remote session description: the parts of SDP (RFC 8866 §5)
//! that offer/answer (RFC 3264) needs, plus the attributes of RFC 3605 (`a=rtcp`), RFC 5761
//! (`a=rtcp-mux`), RFC 4568 (`a=crypto`, kept verbatim), RFC 4796 (`a=content`) and RFC 4574
//! (`a=label`).

use std::net::IpAddr;

use super::SdpError;
use crate::media::negotiated::Direction;
use crate::media::rtp::payload_format::{self as codec, RtpCodec};

/// A parsed session description. Lines and m-lines keep their order; attributes jonction does
/// not model are still reachable through [`SessionDescription::raw`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` session id, as written (RFC 8866 §5.2).
    pub session_id: String,
    /// `o=` session version.
    pub session_version: u64,
    /// The session-level `c=` line, if any.
    pub connection: Option<Connection>,
    /// The session-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// The m-lines, in order.
    pub media: Vec<MediaDescription>,
    raw: sdp_types::Session,
}

/// A `c=` line (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The address as written, without any `/ttl` suffix.
    pub address: String,
    /// The address as an IP; `None` when it is a host name, which the sans-IO core cannot
    /// resolve.
    pub ip: Option<IpAddr>,
}

impl Connection {
    /// Whether this is the RFC 2543 hold address `0.0.0.0` (or `::`), which RFC 3264 §8.4 still
    /// asks answerers to understand as "do not send to me".
    pub fn is_hold(&self) -> bool {
        self.ip.is_some_and(|ip| ip.is_unspecified())
    }

    fn from_sdp(c: &sdp_types::Connection) -> Self {
        let ip = c.try_address().ok().map(|a| a.ip);
        let address = c
            .connection_address
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Connection { address, ip }
    }
}

/// The transport protocol of an m-line (RFC 8866 §5.14 and the registries it points to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proto {
    /// `RTP/AVP` (RFC 3551).
    RtpAvp,
    /// `RTP/AVPF` (RFC 4585).
    RtpAvpf,
    /// `RTP/SAVP` (RFC 3711, SDES keys in `a=crypto`).
    RtpSavp,
    /// `RTP/SAVPF` (RFC 5124).
    RtpSavpf,
    /// `UDP/TLS/RTP/SAVP` or `UDP/TLS/RTP/SAVPF` (DTLS-SRTP, RFC 5764).
    DtlsSrtp,
    /// `TCP/BFCP`, `TCP/TLS/BFCP`, `UDP/BFCP`, ... (RFC 8856).
    Bfcp,
    /// Anything else (`udptl`, `TCP/MSRP`, ...).
    Other,
}

impl Proto {
    /// Classifies a proto string, ignoring case.
    pub fn parse(s: &str) -> Self {
        let upper = s.to_ascii_uppercase();
        match upper.as_str() {
            "RTP/AVP" => Proto::RtpAvp,
            "RTP/AVPF" => Proto::RtpAvpf,
            "RTP/SAVP" => Proto::RtpSavp,
            "RTP/SAVPF" => Proto::RtpSavpf,
            "UDP/TLS/RTP/SAVP" | "UDP/TLS/RTP/SAVPF" | "TCP/DTLS/RTP/SAVP"
            | "TCP/DTLS/RTP/SAVPF" => Proto::DtlsSrtp,
            _ if upper.ends_with("/BFCP") => Proto::Bfcp,
            _ => Proto::Other,
        }
    }

    /// Whether the formats of this m-line are RTP payload types.
    pub fn is_rtp(&self) -> bool {
        matches!(
            self,
            Proto::RtpAvp | Proto::RtpAvpf | Proto::RtpSavp | Proto::RtpSavpf | Proto::DtlsSrtp
        )
    }

    /// Whether plain (unencrypted) RTP flows on this m-line.
    pub fn is_plain_rtp(&self) -> bool {
        matches!(self, Proto::RtpAvp | Proto::RtpAvpf)
    }
}

/// The media type of an m-line (RFC 8866 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `application` (BFCP, ...).
    Application,
    /// `image` (T.38), `text`, `message` or anything else.
    Other,
}

/// `a=rtcp` (RFC 3605): where the peer wants RTCP, when not at RTP port + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpAttribute {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when given and an IP.
    pub ip: Option<IpAddr>,
}

/// One m-line and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type, classified.
    pub kind: MediaKind,
    /// Media type as written (`audio`, `video`, `application`).
    pub media: String,
    /// Port; 0 means the stream is disabled or rejected (RFC 3264 §5.1).
    pub port: u16,
    /// Transport protocol, classified.
    pub proto: Proto,
    /// Transport protocol as written.
    pub proto_text: String,
    /// The formats, in the offerer's order of preference (payload types for RTP, `*` or a MIME
    /// subtype for others).
    pub formats: Vec<String>,
    /// The media-level `c=` line, which overrides the session's.
    pub connection: Option<Connection>,
    /// `a=rtpmap` lines, in order, as (payload type, format). Malformed lines are skipped.
    pub rtpmaps: Vec<(u8, RtpCodec)>,
    /// `a=fmtp` lines, in order, as (format, parameters).
    pub fmtps: Vec<(String, String)>,
    /// `a=ptime` in milliseconds (RFC 8866 §6.4).
    pub ptime: Option<u32>,
    /// `a=maxptime` in milliseconds (RFC 8866 §6.5).
    pub maxptime: Option<u32>,
    /// The media-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// `a=rtcp` (RFC 3605).
    pub rtcp: Option<RtcpAttribute>,
    /// `a=rtcp-mux` (RFC 5761).
    pub rtcp_mux: bool,
    /// `a=crypto` values, verbatim (RFC 4568); interpreted once SRTP exists.
    pub crypto: Vec<String>,
    /// `a=content` (RFC 4796: `main`, `slides`, ...).
    pub content: Option<String>,
    /// `a=label` (RFC 4574).
    pub label: Option<String>,
}

impl MediaDescription {
    /// The RTP payload types of the m-line, in order (empty when it is not RTP). Formats that
    /// are not numbers in 0..=127 are left out.
    pub fn payload_types(&self) -> Vec<u8> {
        if !self.proto.is_rtp() {
            return Vec::new();
        }
        self.formats
            .iter()
            .filter_map(|f| codec::parse_payload_type(f))
            .collect()
    }

    /// What payload type `pt` stands for: its rtpmap, else the static assignment of RFC 3551,
    /// with its fmtp attached. `None` for an unknown dynamic type.
    pub fn codec(&self, pt: u8) -> Option<RtpCodec> {
        let mut codec = self
            .rtpmaps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, c)| c.clone())
            .or_else(|| codec::static_payload(pt))?;
        let pt_text = pt.to_string();
        codec.fmtp = self
            .fmtps
            .iter()
            .find(|(f, _)| *f == pt_text)
            .map(|(_, p)| p.clone());
        Some(codec)
    }

    /// The payload formats of the m-line, in order, with what each stands for. Unknown dynamic
    /// payload types are skipped.
    pub fn codecs(&self) -> Vec<(u8, RtpCodec)> {
        self.payload_types()
            .into_iter()
            .filter_map(|pt| self.codec(pt).map(|c| (pt, c)))
            .collect()
    }

    /// The payload type of `telephone-event` at `clock_rate`, if offered.
    pub fn telephone_event(&self, clock_rate: u32) -> Option<u8> {
        self.codecs()
            .into_iter()
            .find(|(_, c)| c.is_telephone_event() && c.clock_rate == clock_rate)
            .map(|(pt, _)| pt)
    }

    fn from_sdp(m: &sdp_types::Media) -> Self {
        let kind = match m.media.to_ascii_lowercase().as_str() {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "application" => MediaKind::Application,
            _ => MediaKind::Other,
        };
        let mut media = MediaDescription {
            kind,
            media: m.media.clone(),
            port: m.port,
            proto: Proto::parse(&m.proto),
            proto_text: m.proto.clone(),
            formats: m.fmt.split_whitespace().map(str::to_string).collect(),
            connection: m.connections.first().map(Connection::from_sdp),
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            maxptime: None,
            direction: None,
            rtcp: None,
            rtcp_mux: false,
            crypto: Vec::new(),
            content: None,
            label: None,
        };
        for a in &m.attributes {
            let value = a.value.as_deref().unwrap_or("").trim();
            match a.attribute.to_ascii_lowercase().as_str() {
                "rtpmap" => media.rtpmaps.extend(codec::parse_rtpmap(value)),
                "fmtp" => media
                    .fmtps
                    .extend(codec::parse_fmtp(value).map(|(f, p)| (f.to_string(), p.to_string()))),
                "ptime" => media.ptime = media.ptime.or_else(|| parse_millis(value)),
                "maxptime" => media.maxptime = media.maxptime.or_else(|| parse_millis(value)),
                "rtcp" => media.rtcp = media.rtcp.or_else(|| parse_rtcp(value)),
                "rtcp-mux" => media.rtcp_mux = true,
                "crypto" => media.crypto.push(value.to_string()),
                "content" => media.content = Some(value.to_string()),
                "label" => media.label = Some(value.to_string()),
                name => {
                    if let Some(d) = Direction::from_attribute(name) {
                        media.direction = Some(d);
                    }
                }
            }
        }
        media
    }
}

/// A ptime value: milliseconds, possibly with a fraction (`20`, `22.5`, rounded down); 0 or
/// nonsense is `None`.
fn parse_millis(value: &str) -> Option<u32> {
    let whole = value.split('.').next().unwrap_or_default();
    whole.trim().parse().ok().filter(|ms| *ms > 0)
}

/// `a=rtcp:<port> [IN IP4 <address>]` (RFC 3605 §2.1).
fn parse_rtcp(value: &str) -> Option<RtcpAttribute> {
    let mut words = value.split_whitespace();
    let port = words.next()?.parse().ok()?;
    let ip = words.nth(2).and_then(|a| a.parse().ok());
    Some(RtcpAttribute { port, ip })
}

impl SessionDescription {
    /// Parses an SDP body. Lines may end in CRLF, LF or a lone CR; trailing blanks are ignored.
    /// The result keeps every m-line, including ones jonction does not understand.
    pub fn parse(body: &[u8]) -> Result<Self, SdpError> {
        let normalized = normalize_lines(body);
        let raw =
            sdp_types::Session::parse(&normalized).map_err(|e| SdpError::Syntax(e.to_string()))?;
        let direction = raw
            .attributes
            .iter()
            .rev()
            .find_map(|a| Direction::from_attribute(&a.attribute));
        Ok(SessionDescription {
            session_id: raw.origin.sess_id.clone(),
            session_version: raw.origin.sess_version,
            connection: raw.connection.as_ref().map(Connection::from_sdp),
            direction,
            media: raw.medias.iter().map(MediaDescription::from_sdp).collect(),
            raw,
        })
    }

    /// The description as `sdp-types` parsed it, for attributes this view does not model.
    pub fn raw(&self) -> &sdp_types::Session {
        &self.raw
    }

    /// The connection that applies to `media`: its own `c=`, else the session's (RFC 8866 §5.7).
    pub fn connection_of<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// The direction the writer gives `media`: the media-level attribute, else the session-level
    /// one, else `sendrecv` (RFC 3264 §5.1), with an RFC 2543 `c=0.0.0.0` hold taken as "do not
    /// send to me" (RFC 3264 §8.4).
    pub fn direction_of(&self, media: &MediaDescription) -> Direction {
        let declared = media
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv);
        if self.connection_of(media).is_some_and(Connection::is_hold) {
            declared.without_receive()
        } else {
            declared
        }
    }
}

/// Rewrites every line ending (CRLF, LF, lone CR) as LF and strips trailing blanks, which some
/// devices leave after attribute values.
fn normalize_lines(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    for line in body
        .split(|b| *b == b'\n')
        .flat_map(|l| l.split(|b| *b == b'\r'))
    {
        let end = line
            .iter()
            .rposition(|b| *b != b' ' && *b != b'\t')
            .map_or(0, |i| i + 1);
        if end > 0 {
            out.extend_from_slice(&line[..end]);
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CISCO_LIKE: &str = "v=0\r\n\
        o=CiscoSystemsSIP-GW-UserAgent 4424 3042 IN IP4 198.51.100.10\r\n\
        s=SIP Call\r\n\
        c=IN IP4 198.51.100.10\r\n\
        t=0 0\r\n\
        m=audio 16500 RTP/AVP 9 8 0 101\r\n\
        c=IN IP4 198.51.100.11\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        a=ptime:20\r\n\
        a=rtcp:16503 IN IP4 198.51.100.12\r\n\
        m=video 16502 RTP/AVP 97\r\n\
        b=TIAS:2000000\r\n\
        a=rtpmap:97 H264/90000\r\n\
        a=fmtp:97 profile-level-id=42801f;packetization-mode=1\r\n\
        a=content:main\r\n\
        a=label:11\r\n\
        a=sendonly\r\n\
        m=application 5070 TCP/BFCP *\r\n\
        a=floorctrl:c-s\r\n\
        a=confid:1\r\n";

    #[test]
    fn parses_cisco_like_offer() {
        let sdp = SessionDescription::parse(CISCO_LIKE.as_bytes()).expect("valid sdp");
        assert_eq!(sdp.session_id, "4424");
        assert_eq!(sdp.session_version, 3042);
        assert_eq!(sdp.media.len(), 3);
        let audio = &sdp.media[0];
        assert_eq!(audio.kind, MediaKind::Audio);
        assert_eq!(audio.port, 16500);
        assert_eq!(audio.proto, Proto::RtpAvp);
        assert_eq!(audio.payload_types(), vec![9, 8, 0, 101]);
        assert_eq!(audio.codec(9), Some(RtpCodec::new("G722", 8000, 1)));
        assert_eq!(
            audio.codec(101),
            Some(RtpCodec::new("telephone-event", 8000, 1).with_fmtp("0-15"))
        );
        assert_eq!(audio.telephone_event(8000), Some(101));
        assert_eq!(audio.telephone_event(48000), None);
        assert_eq!(audio.ptime, Some(20));
        assert_eq!(
            audio.rtcp,
            Some(RtcpAttribute {
                port: 16503,
                ip: "198.51.100.12".parse().ok()
            })
        );
        let c = sdp.connection_of(audio).expect("connection");
        assert_eq!(c.ip, "198.51.100.11".parse().ok());
        assert_eq!(sdp.direction_of(audio), Direction::SendRecv);
        let video = &sdp.media[1];
        assert_eq!(video.kind, MediaKind::Video);
        assert_eq!(video.content.as_deref(), Some("main"));
        assert_eq!(video.label.as_deref(), Some("11"));
        assert_eq!(sdp.direction_of(video), Direction::SendOnly);
        assert_eq!(
            sdp.connection_of(video).and_then(|c| c.ip),
            "198.51.100.10".parse().ok()
        );
        let bfcp = &sdp.media[2];
        assert_eq!(bfcp.proto, Proto::Bfcp);
        assert_eq!(bfcp.formats, vec!["*"]);
        assert!(bfcp.payload_types().is_empty());
    }

    #[test]
    fn line_endings_are_equivalent() {
        let crlf = SessionDescription::parse(CISCO_LIKE.as_bytes()).expect("crlf");
        let lf = SessionDescription::parse(CISCO_LIKE.replace("\r\n", "\n").as_bytes());
        let cr = SessionDescription::parse(CISCO_LIKE.replace("\r\n", "\r").as_bytes());
        let blanks =
            SessionDescription::parse(CISCO_LIKE.replace("\r\n", " \t\r\n\r\n").as_bytes());
        assert_eq!(lf.as_ref(), Ok(&crlf));
        assert_eq!(cr.as_ref(), Ok(&crlf));
        assert_eq!(blanks.as_ref(), Ok(&crlf));
    }

    #[test]
    fn directions_and_hold() {
        // (session-level lines, media-level lines, expected effective direction)
        let cases: &[(&str, &str, Direction)] = &[
            ("c=IN IP4 192.0.2.1\n", "", Direction::SendRecv),
            ("c=IN IP4 192.0.2.1\na=sendonly\n", "", Direction::SendOnly),
            (
                "c=IN IP4 192.0.2.1\na=sendonly\n",
                "a=sendrecv\n",
                Direction::SendRecv,
            ),
            ("c=IN IP4 192.0.2.1\n", "a=inactive\n", Direction::Inactive),
            ("c=IN IP4 192.0.2.1\n", "a=recvonly\n", Direction::RecvOnly),
            ("c=IN IP4 0.0.0.0\n", "", Direction::SendOnly),
            ("c=IN IP4 0.0.0.0\n", "a=recvonly\n", Direction::Inactive),
            (
                "c=IN IP4 192.0.2.1\n",
                "c=IN IP4 0.0.0.0\na=sendrecv\n",
                Direction::SendOnly,
            ),
            ("c=IN IP6 ::\n", "", Direction::SendOnly),
            (
                "c=IN IP6 2001:db8::5\n",
                "a=SENDONLY\n",
                Direction::SendOnly,
            ),
        ];
        for (session, media, want) in cases {
            let text = format!(
                "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\n{session}t=0 0\nm=audio 4000 RTP/AVP 0\n{media}"
            );
            let sdp = SessionDescription::parse(text.as_bytes()).expect("valid sdp");
            assert_eq!(
                sdp.direction_of(&sdp.media[0]),
                *want,
                "{session:?} {media:?}"
            );
        }
    }

    #[test]
    fn attributes_of_interest() {
        let text = "v=0\no=- 1 1 IN IP6 2001:db8::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\n\
            m=audio 5004 RTP/SAVP 111 0\n\
            a=rtpmap:111 opus/48000/2\na=fmtp:111 stereo=1;useinbandfec=1\n\
            a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\n\
            a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\n\
            a=rtcp-mux\na=ptime:22.5\na=maxptime:40\na=rtcp:5005\n";
        let sdp = SessionDescription::parse(text.as_bytes()).expect("valid sdp");
        let m = &sdp.media[0];
        assert_eq!(m.proto, Proto::RtpSavp);
        assert_eq!(m.crypto.len(), 2);
        assert!(m.crypto[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(m.rtcp_mux);
        assert_eq!((m.ptime, m.maxptime), (Some(22), Some(40)));
        assert_eq!(
            m.rtcp,
            Some(RtcpAttribute {
                port: 5005,
                ip: None
            })
        );
        assert_eq!(
            sdp.connection.as_ref().and_then(|c| c.ip),
            "2001:db8::1".parse().ok()
        );
        let opus = m.codec(111).expect("opus");
        assert_eq!(opus.opus_params().stereo, Some(true));
    }

    #[test]
    fn protos() {
        let cases = [
            ("RTP/AVP", Proto::RtpAvp),
            ("rtp/avp", Proto::RtpAvp),
            ("RTP/AVPF", Proto::RtpAvpf),
            ("RTP/SAVP", Proto::RtpSavp),
            ("RTP/SAVPF", Proto::RtpSavpf),
            ("UDP/TLS/RTP/SAVPF", Proto::DtlsSrtp),
            ("TCP/BFCP", Proto::Bfcp),
            ("TCP/TLS/BFCP", Proto::Bfcp),
            ("udptl", Proto::Other),
        ];
        for (text, want) in cases {
            assert_eq!(Proto::parse(text), want, "{text}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let cases: &[&[u8]] = &[
            b"",
            b"hello",
            b"INVITE sip:x SIP/2.0\r\n",
            b"v=1\r\n",
            b"v=0\r\nm=audio notaport RTP/AVP 0\r\n",
            b"v=0\r\nc=IN\r\n",
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\n",
            b"v=0\r\no=\xff\xfe 1 1 IN IP4 1.2.3.4\r\n",
            b"v=0\r\nxx=1\r\n",
            b"v=0\r\nm=audio 4000\r\n",
        ];
        for input in cases {
            assert!(
                SessionDescription::parse(input).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
