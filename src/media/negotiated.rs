//! The media a device leg negotiated, whichever protocol negotiated it (SDP offer/answer on
//! SIP, fast start or H.245 logical channels on H.323): what the call core needs to run the
//! audio and video streams of a call.

use std::net::SocketAddr;

use crate::media::h264::profile::ProfileLevelId;
use crate::media::rtp::payload_format::{OpusParams, RtpCodec};
use crate::media::srtp::CryptoAttribute;

/// What the media layer needs to run the audio stream of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the audio m-line in the offer (and the answer).
    pub media_index: usize,
    /// The codec, as the peer described it (its fmtp is what it wants to receive).
    pub codec: RtpCodec,
    /// Its payload type, the same both ways (the offerer's number, RFC 3264 §6.1).
    pub pt: u8,
    /// RTP clock rate of the codec (8000 for G.722, 48000 for Opus).
    pub clock_rate: u32,
    /// Packetization to send with, in ms: the peer's `a=ptime` if any (capped by its
    /// `a=maxptime`), else ours, else 20.
    pub ptime: u32,
    /// Payload type of `telephone-event` at the codec's clock rate, if both sides have it.
    pub dtmf_pt: Option<u8>,
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: `remote_rtp` with rtcp-mux, else `a=rtcp`, else RTP port + 1.
    pub remote_rtcp: SocketAddr,
    /// Whether RTP and RTCP share the port (RFC 5761).
    pub rtcp_mux: bool,
    /// Our direction: whether *we* send and receive. A peer on hold gives `recvonly` or
    /// `inactive` here, never `sendrecv`.
    pub direction: Direction,
    /// The peer's Opus parameters when the codec is Opus (RFC 7587 §6.1).
    pub opus: Option<OpusParams>,
    /// SDES-SRTP keys when the stream is encrypted.
    pub srtp: Option<SrtpKeys>,
    /// The main video stream (H.264), when one was offered and accepted.
    pub video: Option<NegotiatedVideo>,
}

/// What the media layer needs to run the main video stream of a call (H.264, RFC 6184).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedVideo {
    /// Index of the video m-line in the offer (and the answer).
    pub media_index: usize,
    /// The H.264 payload type we send with.
    pub pt: u8,
    /// The payload type the peer sends with: `pt` in SDP (the same both ways); H.323 opens
    /// one channel per direction, each with its own dynamic payload type.
    pub peer_pt: u8,
    /// `packetization-mode` (0 or 1).
    pub packetization_mode: u8,
    /// The peer's `profile-level-id` (what it decodes).
    pub profile_level_id: ProfileLevelId,
    /// Where to send RTP.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP.
    pub remote_rtcp: SocketAddr,
    /// Whether RTP and RTCP share the port.
    pub rtcp_mux: bool,
    /// Our direction for video.
    pub direction: Direction,
    /// RTCP feedback both sides agreed on.
    pub feedback: VideoFeedback,
    /// The bit rate the peer receives at most (its `b=TIAS`/`b=AS`, capped by ours), kbit/s.
    pub max_kbps: u32,
    /// SDES-SRTP keys when the stream is encrypted.
    pub srtp: Option<SrtpKeys>,
}

/// Which keyframe requests and rate feedback the peer understands (`a=rtcp-fb`, RFC 4585,
/// RFC 5104).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoFeedback {
    /// `nack pli`.
    pub pli: bool,
    /// `ccm fir`.
    pub fir: bool,
    /// `nack`.
    pub nack: bool,
    /// `ccm tmmbr`.
    pub tmmbr: bool,
}

/// The two `a=crypto` lines of an SDES exchange: ours (what we send with) and the peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// Our line (our key, the chosen suite and tag).
    pub local: CryptoAttribute,
    /// The peer's line.
    pub remote: CryptoAttribute,
}

/// The direction of a media stream, from the point of view of whoever wrote the SDP
/// (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`, the default.
    SendRecv,
    /// `a=sendonly`: the writer sends and does not want to receive (what a phone on hold offers).
    SendOnly,
    /// `a=recvonly`: the writer only receives.
    RecvOnly,
    /// `a=inactive`: nothing flows either way.
    Inactive,
}

impl Direction {
    /// The attribute name (`sendrecv`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an attribute name; `None` when it is not a direction.
    pub fn from_attribute(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the writer sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end: `sendonly` ⇄ `recvonly` (RFC 3264 §6.1).
    pub fn reversed(self) -> Self {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both allow: sends only if both send, receives only if both receive.
    pub fn intersect(self, other: Direction) -> Self {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// This direction without receiving: what an RFC 2543 `c=0.0.0.0` hold means.
    pub fn without_receive(self) -> Self {
        Direction::from_flags(self.sends(), false)
    }
}

/// Whether a device leg's media is encrypted (SDES-SRTP on SIP; H.323 has no media security
/// here, so a route that requires it refuses H.323 calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpPolicy {
    /// Plain RTP only: `RTP/SAVP` offers are refused.
    Off,
    /// Whatever the caller offers: SRTP when it sends usable `a=crypto` lines, else RTP.
    #[default]
    Optional,
    /// SRTP only: plain RTP offers are refused with 488.
    Required,
}

impl SrtpPolicy {
    /// The configuration and dialplan spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpPolicy::Off => "off",
            SrtpPolicy::Optional => "optional",
            SrtpPolicy::Required => "required",
        }
    }
}

impl std::fmt::Display for SrtpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SrtpPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(SrtpPolicy::Off),
            "optional" => Ok(SrtpPolicy::Optional),
            "required" => Ok(SrtpPolicy::Required),
            other => Err(format!(
                "unknown srtp policy {other:?} (off, optional, required)"
            )),
        }
    }
}

/// The video bit rate we receive at most unless configured otherwise (720p30 H.264 fits).
pub const DEFAULT_VIDEO_KBPS: u32 = 2500;
