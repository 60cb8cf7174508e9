//! Answering a remote offer for the audio stream (RFC 3264 §6, §6.1; RFC 4733 §7.1 for
//! telephone-event; RFC 7587 §7 for Opus; RFC 5761 §5.1.1 for rtcp-mux).

use std::net::{IpAddr, SocketAddr};

use super::description::{MediaDescription, MediaKind, Proto, SessionDescription};
use super::negotiated::{NegotiationError, Reject};
use super::policy::{CodecOrder, LocalMedia, MediaPolicy};
use super::session::LocalSdp;
use crate::media::negotiated::{Direction, Negotiated, SrtpKeys, SrtpPolicy};
use crate::media::rtp::payload_format::{RtpCodec, TELEPHONE_EVENT, TELEPHONE_EVENT_FMTP};
use crate::media::srtp::{choose_offered, CryptoAttribute};

/// An accepted offer: the answer to send and what it sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer; render it with [`super::SdpSession::render`].
    pub sdp: LocalSdp,
    /// The negotiated audio stream.
    pub negotiated: Negotiated,
}

/// Answers `offer` as RFC 3264 §6 says, for the audio stream only.
///
/// - The audio stream is the first audio m-line with a non-zero port over plain RTP
///   (`RTP/AVP`, `RTP/AVPF`) that has a codec in common with `policy`. SRTP audio m-lines are
///   answered with port 0 until SRTP exists; `a=crypto` on a plain `RTP/AVP` line ("best
///   effort SRTP") is ignored, so such calls fall back to RTP.
/// - The answer carries exactly one codec, with the offerer's payload type number, plus
///   `telephone-event` at that codec's clock rate when offered and enabled.
/// - Every other m-line (video, BFCP, a second audio, disabled ones) is answered with port 0,
///   the offer's proto and its first format, so the answer has the offer's m-lines in order.
/// - The direction is the offer's reversed (`sendonly` → `recvonly`, `recvonly` → `sendonly`,
///   `inactive` → `inactive`), limited by `local`'s own; an RFC 2543 `c=0.0.0.0` hold counts
///   as `sendonly`. A hold is never answered `sendrecv`.
///
/// Fails with a [`Reject`] (488 and a `Warning`) when no audio can be set up.
pub fn answer(
    offer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
) -> Result<Answer, Reject> {
    answer_keeping(offer, policy, local, None)
}

/// Answers a re-offer in an established dialog like [`answer`], keeping our SDES keys for every
/// stream whose peer key did not change (RFC 4568 §7.1.4 lets the answerer rekey; devices that
/// do not expect it on a session refresh would lose our media).
pub fn reanswer(
    offer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
    current: &Negotiated,
) -> Result<Answer, Reject> {
    answer_keeping(offer, policy, local, Some(current))
}

fn answer_keeping(
    offer: &SessionDescription,
    policy: &MediaPolicy,
    local: &LocalMedia,
    current: Option<&Negotiated>,
) -> Result<Answer, Reject> {
    let agent = warn_agent(local.address());
    let reject = |error| Reject::new(error, &agent);

    let (index, pt, offered, ours, remote_key) = choose_stream(offer, policy).map_err(reject)?;
    let media = &offer.media[index];
    let connection = offer
        .connection_of(media)
        .ok_or(NegotiationError::NoConnection)
        .map_err(reject)?;
    let remote_ip = connection
        .ip
        .ok_or_else(|| NegotiationError::UnresolvedAddress(connection.address.clone()))
        .map_err(reject)?;

    let direction = offer
        .direction_of(media)
        .reversed()
        .intersect(local.direction());
    // telephone-event at the codec's rate (RFC 4733 §2.1); failing that, at 8 kHz, which many
    // devices offer beside Opus (baresip, older PBXs) and decode fine.
    let dtmf = policy
        .telephone_event
        .then(|| {
            media
                .telephone_event(offered.clock_rate)
                .map(|pt| (pt, offered.clock_rate))
                .or_else(|| media.telephone_event(8000).map(|pt| (pt, 8000)))
        })
        .flatten();
    let dtmf_pt = dtmf.map(|(pt, _)| pt);
    let rtcp_mux = policy.rtcp_mux && media.rtcp_mux;
    let negotiated = negotiated(
        index,
        pt,
        offered,
        dtmf_pt,
        remote_ip,
        media,
        rtcp_mux,
        direction,
        policy.ptime,
    );
    // SDES: our own key, same suite and tag as the line we accept (RFC 4568 §7.1.1).
    let mut negotiated = negotiated;
    negotiated.srtp =
        remote_key.map(|remote| keys_for(remote, current.and_then(|c| c.srtp.as_ref())));
    let crypto = negotiated.srtp.as_ref().map(|k| k.local.to_sdp());

    let current_video_keys = current
        .and_then(|c| c.video.as_ref())
        .and_then(|v| v.srtp.as_ref());
    let video = super::video::negotiate_video(offer, policy, local, current_video_keys);
    let address = local.address_for(Some(remote_ip));
    let mut body = session_skeleton(address);
    for (i, m) in offer.media.iter().enumerate() {
        if let Some((v, line)) = video.as_ref().filter(|(v, _)| v.media_index == i) {
            negotiated.video = Some(v.clone());
            body.medias.push(line.clone());
        } else if i == index {
            let audio = AudioLine {
                media: &m.media,
                port: local.rtp_port(),
                proto: &m.proto_text,
                codecs: vec![(pt, ours.clone())],
                dtmf_pts: dtmf.into_iter().collect(),
                ptime: policy.ptime,
                direction,
                rtcp_mux,
                crypto: crypto.clone(),
            };
            body.medias.push(audio.build());
        } else {
            body.medias.push(rejected(m));
        }
    }
    Ok(Answer {
        sdp: LocalSdp::new(body, address),
        negotiated,
    })
}

/// Our SDES keys answering the peer's `remote`: the current ones when the peer's key is the
/// same as before, a fresh key of the same suite and tag otherwise.
pub(super) fn keys_for(remote: CryptoAttribute, current: Option<&SrtpKeys>) -> SrtpKeys {
    let local = current
        .filter(|k| k.remote == remote)
        .map(|k| k.local.clone())
        .unwrap_or_else(|| CryptoAttribute::generate(remote.tag, remote.suite));
    SrtpKeys { local, remote }
}

/// What [`choose_stream`] picked: m-line index, payload type, the offered codec, ours, and the
/// peer's SDES key line when the stream is to be SRTP.
type Chosen<'p> = (usize, u8, RtpCodec, &'p RtpCodec, Option<CryptoAttribute>);

/// Picks the audio m-line, codec and transport. `RTP/SAVP(F)` lines need a usable `a=crypto`
/// and a policy other than off; `RTP/AVP(F)` lines with a usable `a=crypto` ("best effort"
/// SDES) become SRTP unless the policy is off; plain lines are refused when SRTP is required.
fn choose_stream<'p>(
    offer: &SessionDescription,
    policy: &'p MediaPolicy,
) -> Result<Chosen<'p>, NegotiationError> {
    let mut other_transport = None;
    let mut usable_transport = false;
    let mut srtp_refusal = None;
    for (i, m) in offer.media.iter().enumerate() {
        if m.kind != MediaKind::Audio || m.port == 0 {
            continue;
        }
        let secure = matches!(m.proto, Proto::RtpSavp | Proto::RtpSavpf);
        if !secure && !m.proto.is_plain_rtp() {
            other_transport.get_or_insert_with(|| m.proto_text.clone());
            continue;
        }
        let key = (policy.srtp != SrtpPolicy::Off)
            .then(|| choose_offered(&m.crypto).ok())
            .flatten();
        if key.is_none() && (secure || policy.srtp == SrtpPolicy::Required) {
            srtp_refusal.get_or_insert(if policy.srtp == SrtpPolicy::Off {
                NegotiationError::SrtpDisabled
            } else {
                NegotiationError::SrtpRequired
            });
            continue;
        }
        usable_transport = true;
        if let Some((pt, offered, ours)) = choose_codec(m, policy) {
            return Ok((i, pt, offered, ours, key));
        }
    }
    Err(match (srtp_refusal, other_transport) {
        _ if usable_transport => NegotiationError::NoCommonCodec,
        (Some(e), _) => e,
        (None, Some(proto)) => NegotiationError::IncompatibleTransport(proto),
        (None, None) => NegotiationError::NoAudio,
    })
}

fn choose_codec<'p>(
    m: &MediaDescription,
    policy: &'p MediaPolicy,
) -> Option<(u8, RtpCodec, &'p RtpCodec)> {
    let offered: Vec<(u8, RtpCodec)> = m
        .codecs()
        .into_iter()
        .filter(|(_, c)| !c.is_telephone_event() && !c.is_comfort_noise())
        .collect();
    match policy.codec_order {
        CodecOrder::Ours => policy.codecs.iter().find_map(|ours| {
            offered
                .iter()
                .find(|(_, c)| c.matches(ours))
                .map(|(pt, c)| (*pt, c.clone(), ours))
        }),
        CodecOrder::Theirs => offered
            .into_iter()
            .find_map(|(pt, c)| policy.supported(&c).map(|ours| (pt, c, ours))),
    }
}

/// Fills [`Negotiated`] from the peer's m-line.
#[allow(clippy::too_many_arguments)]
pub(super) fn negotiated(
    media_index: usize,
    pt: u8,
    codec: RtpCodec,
    dtmf_pt: Option<u8>,
    remote_ip: IpAddr,
    remote: &MediaDescription,
    rtcp_mux: bool,
    direction: Direction,
    our_ptime: Option<u32>,
) -> Negotiated {
    let (remote_rtp, remote_rtcp) = remote_addresses(remote_ip, remote, rtcp_mux);
    let mut ptime = remote
        .ptime
        .filter(|p| (10..=120).contains(p))
        .or(our_ptime)
        .unwrap_or(20);
    if let Some(max) = remote.maxptime.filter(|m| *m >= 10) {
        ptime = ptime.min(max);
    }
    let opus = codec.is("opus").then(|| codec.opus_params());
    Negotiated {
        media_index,
        pt,
        clock_rate: codec.clock_rate,
        codec,
        ptime,
        dtmf_pt,
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        direction,
        opus,
        srtp: None,
        video: None,
    }
}

/// Where to send a stream's RTP and RTCP: RTCP to the RTP address with rtcp-mux, else to
/// `a=rtcp`, else to the RTP port + 1 (RFC 3605, RFC 5761).
pub(super) fn remote_addresses(
    remote_ip: IpAddr,
    remote: &MediaDescription,
    rtcp_mux: bool,
) -> (SocketAddr, SocketAddr) {
    let rtp = SocketAddr::new(remote_ip, remote.port);
    let rtcp = match (rtcp_mux, remote.rtcp) {
        (true, _) => rtp,
        (false, Some(rtcp)) => SocketAddr::new(rtcp.ip.unwrap_or(remote_ip), rtcp.port),
        (false, None) => {
            SocketAddr::new(remote_ip, remote.port.checked_add(1).unwrap_or(remote.port))
        }
    };
    (rtp, rtcp)
}

/// The session-level part of a description we write: `v=`, a placeholder `o=` (set by
/// [`super::SdpSession`]), `s=`, `c=`, `t=0 0`.
pub(super) fn session_skeleton(address: IpAddr) -> sdp_types::Session {
    let mut s =
        sdp_types::Session::new(sdp_types::Origin::with_ip_addr("0", 0, address), "jonction");
    s.connection = Some(sdp_types::Connection::from_ip_addr(address));
    s.add_time(sdp_types::Time::new(0, 0));
    s
}

/// An m-line answered (or re-offered) with port 0: same media and proto, one format of the
/// original, no attributes (RFC 3264 §6, §8.2).
pub(super) fn rejected(m: &MediaDescription) -> sdp_types::Media {
    let format = m.formats.first().map_or("0", String::as_str);
    let mut media = sdp_types::Media::new(
        sdp_types::MediaType::Audio,
        0,
        sdp_types::TransportProto::RtpAvp,
        format,
    );
    media.media = m.media.clone();
    media.proto = m.proto_text.clone();
    media
}

/// The audio m-line we write, in an offer or an answer.
pub(super) struct AudioLine<'a> {
    pub media: &'a str,
    pub port: u16,
    pub proto: &'a str,
    pub codecs: Vec<(u8, RtpCodec)>,
    /// telephone-event payload types, each at the clock rate of one of the codecs.
    pub dtmf_pts: Vec<(u8, u32)>,
    pub ptime: Option<u32>,
    pub direction: Direction,
    pub rtcp_mux: bool,
    /// Our `a=crypto` value (SDES-SRTP).
    pub crypto: Option<String>,
}

impl AudioLine<'_> {
    pub(super) fn build(self) -> sdp_types::Media {
        let formats: Vec<String> = self
            .codecs
            .iter()
            .map(|(pt, _)| *pt)
            .chain(self.dtmf_pts.iter().map(|(pt, _)| *pt))
            .map(|pt| pt.to_string())
            .collect();
        let mut m = sdp_types::Media::new(
            sdp_types::MediaType::Audio,
            self.port,
            sdp_types::TransportProto::RtpAvp,
            formats.join(" "),
        );
        m.media = self.media.to_string();
        m.proto = self.proto.to_string();
        for (pt, codec) in &self.codecs {
            m.add_attribute_with_value("rtpmap", codec.rtpmap(*pt));
            if let Some(fmtp) = &codec.fmtp {
                m.add_attribute_with_value("fmtp", format!("{pt} {fmtp}"));
            }
        }
        for (pt, rate) in &self.dtmf_pts {
            m.add_attribute_with_value("rtpmap", format!("{pt} {TELEPHONE_EVENT}/{rate}"));
            m.add_attribute_with_value("fmtp", format!("{pt} {TELEPHONE_EVENT_FMTP}"));
        }
        if let Some(ptime) = self.ptime {
            m.add_attribute_with_value("ptime", ptime);
        }
        if self.rtcp_mux {
            m.add_attribute(sdp_types::Attribute::new("rtcp-mux"));
        }
        if let Some(crypto) = self.crypto {
            m.add_attribute_with_value("crypto", crypto);
        }
        m.add_attribute(sdp_types::Attribute::new(self.direction.as_str()));
        m
    }
}

/// The warn-agent of RFC 3261 §20.43: our host, bracketed when IPv6.
fn warn_agent(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}
