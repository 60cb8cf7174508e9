//! Why an offer/answer exchange fails: SIP 488 with a `Warning` code (RFC 3261 §20.43, §21.4.26).

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
