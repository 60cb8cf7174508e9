//! The outcome of an offer/answer exchange for the audio stream (RFC 3264 §6.1, §7), and why
//! one fails: SIP 488 with a `Warning` code (RFC 3261 §20.43, §21.4.26).

use std::net::SocketAddr;

use super::codec::{OpusParams, RtpCodec};
use super::description::Direction;
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
    pub profile_level_id: super::ProfileLevelId,
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

/// Why an offer or an answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The offer has no audio m-line with a non-zero port (only video, or everything disabled).
    #[error("no audio stream offered")]
    NoAudio,
    /// Audio is offered only over transports we do not run yet (SRTP, DTLS-SRTP).
    #[error("audio offered only over {0}")]
    IncompatibleTransport(String),
    /// Audio is offered, but none of its codecs is in our policy.
    #[error("no audio codec in common")]
    NoCommonCodec,
    /// Plain RTP offered where the route requires SRTP (or SRTP without a usable key).
    #[error("SRTP is required: no usable a=crypto line")]
    SrtpRequired,
    /// SRTP offered where the route does not allow it.
    #[error("SRTP is disabled here")]
    SrtpDisabled,
    /// The audio stream has no `c=` line, neither its own nor the session's.
    #[error("the audio stream has no connection address")]
    NoConnection,
    /// The `c=` address is a host name; the core does not resolve names.
    #[error("the connection address {0:?} is not an IP address")]
    UnresolvedAddress(String),
    /// The answer's m-line count differs from the offer's (RFC 3264 §6).
    #[error("the answer has {answer} m-lines, the offer had {offer}")]
    MediaCountMismatch {
        /// m-lines in the offer.
        offer: usize,
        /// m-lines in the answer.
        answer: usize,
    },
    /// The answer rejected our audio stream (port 0).
    #[error("the answer rejected the audio stream")]
    AudioRejected,
    /// The answer's first payload type is not one of the codecs we offered.
    #[error("the answer chose payload type {0}, which we did not offer")]
    UnofferedCodec(u8),
}

impl NegotiationError {
    /// The SIP status to refuse an offer with: 488 Not Acceptable Here for negotiation
    /// failures, 400 Bad Request for a description that lacks what SDP requires.
    pub fn status(&self) -> u16 {
        match self {
            NegotiationError::NoConnection => 400,
            _ => 488,
        }
    }

    /// The `Warning` code and text (RFC 3261 §20.43), when one applies.
    pub fn warning_code(&self) -> Option<(u16, &'static str)> {
        match self {
            NegotiationError::NoAudio | NegotiationError::AudioRejected => {
                Some((304, "Media type not available"))
            }
            NegotiationError::IncompatibleTransport(_)
            | NegotiationError::SrtpRequired
            | NegotiationError::SrtpDisabled => Some((302, "Incompatible transport protocol")),
            NegotiationError::NoCommonCodec | NegotiationError::UnofferedCodec(_) => {
                Some((305, "Incompatible media format"))
            }
            NegotiationError::UnresolvedAddress(_) => {
                Some((301, "Incompatible network address formats"))
            }
            NegotiationError::NoConnection | NegotiationError::MediaCountMismatch { .. } => None,
        }
    }
}

/// An offer we refuse: the status and `Warning` header value for the SIP response, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {error}")]
pub struct Reject {
    /// SIP status code (488 or 400).
    pub status: u16,
    /// `Warning` header value, e.g. `305 203.0.113.7 "Incompatible media format"`.
    pub warning: Option<String>,
    /// The reason.
    pub error: NegotiationError,
}

impl Reject {
    /// A rejection whose `Warning` names `agent` (our host, RFC 3261 §20.43 warn-agent).
    pub fn new(error: NegotiationError, agent: &str) -> Self {
        Reject {
            status: error.status(),
            warning: error
                .warning_code()
                .map(|(code, text)| format!("{code} {agent} \"{text}\"")),
            error,
        }
    }
}
