//! SDP for the SIP leg: parsing remote descriptions (RFC 8866) and the offer/answer model for
//! the audio stream (RFC 3264), sans-IO: pure functions and small structs.
//!
//! - [`SessionDescription::parse`] gives a typed view of a remote SDP.
//! - [`answer`] answers a remote offer (INVITE with SDP, re-INVITE); [`offer`] and
//!   [`reoffer`] write our offers (delayed-offer INVITE answered in the 200 OK, our re-INVITEs),
//!   and [`accept_answer`] checks the answer to them.
//! - Both ends produce a [`Negotiated`](crate::media::negotiated::Negotiated) (what the
//!   media layer needs) and a [`LocalSdp`], which
//!   an [`SdpSession`] (one per dialog) turns into text with a correct `o=` line.
//!
//! Audio and the main H.264 video stream are negotiated ([`answer_video`] picks the format,
//! fmtp, RTCP feedback and bandwidth); every other m-line (slides, BFCP, a second audio) is
//! answered with port 0 (RFC 3264 §6), which keeps room systems that offer them talking to us.
//! Our own offers (delayed offer, re-INVITEs) carry audio only.

mod answer;
mod description;
mod negotiated;
mod offer;
mod policy;
mod session;
mod video;

pub use answer::{answer, reanswer, Answer};
pub use description::{
    Connection, MediaDescription, MediaKind, Proto, RtcpAttribute, SessionDescription,
};
pub use negotiated::{NegotiationError, Reject};
pub use offer::{accept_answer, offer, reoffer};
pub use policy::{AddressError, CodecOrder, LocalMedia, MediaPolicy, UnknownCodec};
pub use session::{LocalSdp, SdpSession};
pub use video::{
    answer_video, bandwidth_kbps, choose_h264, h264_formats, rtcp_feedback, H264Format,
    VideoAnswer, RTCP_FEEDBACK,
};

/// A session description that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not SDP: no `v=0` first, a malformed line, a duplicated session-level line,
    /// invalid UTF-8 in a field, ... The text says which line. Answer 400 (or 488 to a
    /// re-INVITE) and keep the dialog.
    #[error("malformed SDP: {0}")]
    Syntax(String),
}

#[cfg(test)]
mod tests;
