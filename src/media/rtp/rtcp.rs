//! Compound RTCP parse and build: SR, RR, SDES, BYE (RFC 3550 §6.4–6.6), generic NACK and
//! PLI (RFC 4585 §6.2.1, §6.3.1), FIR, TMMBR and TMMBN (RFC 5104 §4.2–4.3) and REMB
//! (draft-alvestrand-rmcat-remb, PSFB FMT 15 "goog-remb").
//!
//! [`RtcpReader`] walks a compound datagram one packet at a time and stops at the first
//! inconsistent length; unknown packet types are skipped as [`RtcpPacket::Unknown`].

use super::Ssrc;

/// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1).
mod pt {
    pub const SR: u8 = 200;
    pub const RR: u8 = 201;
    pub const SDES: u8 = 202;
    pub const BYE: u8 = 203;
    pub const RTPFB: u8 = 205;
    pub const PSFB: u8 = 206;
}

/// Feedback message types (FMT) for RTPFB and PSFB.
mod fmt {
    pub const NACK: u8 = 1;
    pub const TMMBR: u8 = 3;
    pub const TMMBN: u8 = 4;
    pub const PLI: u8 = 1;
    pub const FIR: u8 = 4;
    pub const AFB: u8 = 15;
}

/// SDES item type of the canonical name (RFC 3550 §6.5.1).
pub const SDES_CNAME: u8 = 1;

/// Why an RTCP datagram could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer than 4 bytes remain where a packet header should start.
    #[error("RTCP header truncated ({0} bytes left)")]
    TooShort(usize),
    /// The version field is not 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// The length field runs past the end of the datagram.
    #[error("RTCP packet of {words} words runs past the datagram")]
    LengthOverrun {
        /// Announced length in 32-bit words, minus one.
        words: u16,
    },
    /// The padding count is zero or larger than the packet body.
    #[error("bad RTCP padding")]
    BadPadding,
    /// The body is shorter than its counts announce; names the packet type.
    #[error("{0} body truncated")]
    Truncated(&'static str),
    /// Builder: a count does not fit in the header's 5 bits (or 8 bits for REMB).
    #[error("too many {0} for one packet")]
    TooMany(&'static str),
    /// Builder: an SDES item or BYE reason longer than 255 bytes.
    #[error("text longer than 255 bytes")]
    TextTooLong,
}

// === packet types ===

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed on the wire, clamped when built).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from that source.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// The sender.
    pub ssrc: Ssrc,
    /// 64-bit NTP wallclock time of this report.
    pub ntp_time: u64,
    /// RTP timestamp corresponding to `ntp_time`.
    pub rtp_time: u32,
    /// Packets sent since the start of transmission.
    pub packet_count: u32,
    /// Payload octets sent since the start of transmission.
    pub octet_count: u32,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

/// Receiver report (RFC 3550 §6.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// The reporter.
    pub ssrc: Ssrc,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

/// One SDES item (RFC 3550 §6.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    /// Item type ([`SDES_CNAME`] = 1, NAME = 2, ...).
    pub kind: u8,
    /// Item text (UTF-8 on the wire; invalid sequences are replaced).
    pub value: String,
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    /// The source described.
    pub ssrc: Ssrc,
    /// Its items.
    pub items: Vec<SdesItem>,
}

/// Source description (RFC 3550 §6.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sdes {
    /// Chunks (at most 31).
    pub chunks: Vec<SdesChunk>,
}

impl Sdes {
    /// An SDES packet with one chunk holding only a CNAME.
    pub fn cname(ssrc: Ssrc, cname: &str) -> Self {
        Sdes {
            chunks: vec![SdesChunk {
                ssrc,
                items: vec![SdesItem {
                    kind: SDES_CNAME,
                    value: cname.to_owned(),
                }],
            }],
        }
    }

    /// The CNAME given for `ssrc`, if any.
    pub fn cname_of(&self, ssrc: Ssrc) -> Option<&str> {
        self.chunks
            .iter()
            .filter(|c| c.ssrc == ssrc)
            .flat_map(|c| c.items.iter())
            .find(|i| i.kind == SDES_CNAME)
            .map(|i| i.value.as_str())
    }
}

/// Goodbye (RFC 3550 §6.6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    /// Sources leaving (at most 31).
    pub ssrcs: Vec<Ssrc>,
    /// Optional reason.
    pub reason: Option<String>,
}

/// One generic NACK entry: a lost packet id and a bitmask of the 16 following
/// (RFC 4585 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NackPair {
    /// Packet id (sequence number) of a lost packet.
    pub pid: u16,
    /// Bit i set: `pid + i + 1` is lost too.
    pub blp: u16,
}

/// Generic NACK (RFC 4585 §6.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nack {
    /// The sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// The media source the losses are about.
    pub media_ssrc: Ssrc,
    /// Loss entries.
    pub pairs: Vec<NackPair>,
}

impl Nack {
    /// A NACK for these lost sequence numbers (packed into as few pairs as possible; the
    /// input should be ascending modulo wrap).
    pub fn from_lost(sender_ssrc: Ssrc, media_ssrc: Ssrc, lost: &[u16]) -> Self {
        let mut pairs: Vec<NackPair> = Vec::new();
        for &seq in lost {
            if let Some(last) = pairs.last_mut() {
                let d = seq.wrapping_sub(last.pid);
                if (1..=16).contains(&d) {
                    last.blp |= 1 << (d - 1);
                    continue;
                }
            }
            pairs.push(NackPair { pid: seq, blp: 0 });
        }
        Nack {
            sender_ssrc,
            media_ssrc,
            pairs,
        }
    }

    /// Every sequence number this NACK reports lost.
    pub fn lost(&self) -> impl Iterator<Item = u16> + '_ {
        self.pairs.iter().flat_map(|p| {
            std::iter::once(p.pid).chain(
                (0..16u16)
                    .filter(move |i| p.blp & (1 << i) != 0)
                    .map(move |i| p.pid.wrapping_add(i + 1)),
            )
        })
    }
}

/// Picture loss indication (RFC 4585 §6.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pli {
    /// The sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// The media source that should send a keyframe.
    pub media_ssrc: Ssrc,
}

/// One FIR entry (RFC 5104 §4.3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirEntry {
    /// The media source that should send a decoder refresh point.
    pub ssrc: Ssrc,
    /// Command sequence number, incremented for each new request.
    pub seq_nr: u8,
}

/// Full intra request (RFC 5104 §4.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fir {
    /// The sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// Requests.
    pub entries: Vec<FirEntry>,
}

/// One TMMBR/TMMBN entry (RFC 5104 §4.2.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TmmbEntry {
    /// The media source concerned.
    pub ssrc: Ssrc,
    /// Maximum total media bit rate in bit/s (precision lost to the 17-bit mantissa).
    pub bitrate: u64,
    /// Measured per-packet overhead in bytes (9 bits).
    pub overhead: u16,
}

/// Temporary maximum media bit rate request or notification (RFC 5104 §4.2.1, §4.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmmb {
    /// The sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// Entries (a TMMBN may have none).
    pub entries: Vec<TmmbEntry>,
}

/// Receiver estimated maximum bitrate (draft-alvestrand-rmcat-remb §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remb {
    /// The sender of the feedback.
    pub sender_ssrc: Ssrc,
    /// Estimated total bit rate in bit/s (18-bit mantissa).
    pub bitrate: u64,
    /// Sources the estimate applies to (at most 255).
    pub ssrcs: Vec<Ssrc>,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR.
    SenderReport(SenderReport),
    /// RR.
    ReceiverReport(ReceiverReport),
    /// SDES.
    Sdes(Sdes),
    /// BYE.
    Bye(Bye),
    /// RTPFB generic NACK.
    Nack(Nack),
    /// PSFB PLI.
    Pli(Pli),
    /// PSFB FIR.
    Fir(Fir),
    /// RTPFB TMMBR.
    Tmmbr(Tmmb),
    /// RTPFB TMMBN.
    Tmmbn(Tmmb),
    /// PSFB application layer feedback "REMB".
    Remb(Remb),
    /// A packet type (or feedback type) we do not interpret; skipped.
    Unknown {
        /// Packet type.
        pt: u8,
        /// The 5-bit count or FMT field.
        fmt: u8,
    },
}

// === parse ===

/// Iterates the packets of a compound RTCP datagram (RFC 3550 §6.1). After an error it
/// yields nothing more: the rest of the datagram cannot be framed.
#[derive(Debug, Clone)]
pub struct RtcpReader<'a> {
    rest: &'a [u8],
}

impl<'a> RtcpReader<'a> {
    /// A reader over one datagram.
    pub fn new(buf: &'a [u8]) -> Self {
        RtcpReader { rest: buf }
    }
}

impl Iterator for RtcpReader<'_> {
    type Item = Result<RtcpPacket, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let res = next_packet(self.rest);
        match res {
            Ok((packet, rest)) => {
                self.rest = rest;
                Some(Ok(packet))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// Parses a whole compound datagram; any malformed packet fails the whole datagram.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    if buf.is_empty() {
        return Err(RtcpError::TooShort(0));
    }
    RtcpReader::new(buf).collect()
}

/// Whether a datagram on a muxed port looks like RTCP rather than RTP (RFC 5761 §4:
/// packet types 192–223 in the second byte).
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223)) && buf.len() >= 4
}

fn next_packet(buf: &[u8]) -> Result<(RtcpPacket, &[u8]), RtcpError> {
    let head: [u8; 4] = buf
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or(RtcpError::TooShort(buf.len()))?;
    let version = head[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let padded = head[0] & 0x20 != 0;
    let count = head[0] & 0x1f;
    let pt = head[1];
    let words = u16::from_be_bytes([head[2], head[3]]);
    let len = (usize::from(words) + 1) * 4;
    let packet = buf.get(..len).ok_or(RtcpError::LengthOverrun { words })?;
    let rest = buf.get(len..).unwrap_or_default();
    let mut body = packet.get(4..).unwrap_or_default();
    if padded {
        let pad = usize::from(body.last().copied().unwrap_or(0));
        if pad == 0 || pad > body.len() {
            return Err(RtcpError::BadPadding);
        }
        body = body.get(..body.len() - pad).unwrap_or_default();
    }
    let mut r = Reader(body);
    let packet = match pt {
        pt::SR => {
            let t = "SR";
            let ssrc = r.ssrc(t)?;
            let ntp_time = r.u64(t)?;
            let rtp_time = r.u32(t)?;
            let packet_count = r.u32(t)?;
            let octet_count = r.u32(t)?;
            let reports = r.report_blocks(count)?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc,
                ntp_time,
                rtp_time,
                packet_count,
                octet_count,
                reports,
            })
        }
        pt::RR => {
            let ssrc = r.ssrc("RR")?;
            let reports = r.report_blocks(count)?;
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports })
        }
        pt::SDES => RtcpPacket::Sdes(r.sdes(count)?),
        pt::BYE => {
            let t = "BYE";
            let mut ssrcs = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                ssrcs.push(r.ssrc(t)?);
            }
            let reason = match r.u8(t) {
                Ok(n) => Some(String::from_utf8_lossy(r.take(usize::from(n), t)?).into_owned()),
                Err(_) => None,
            };
            RtcpPacket::Bye(Bye { ssrcs, reason })
        }
        pt::RTPFB => {
            let t = "RTPFB";
            let sender_ssrc = r.ssrc(t)?;
            let media_ssrc = r.ssrc(t)?;
            match count {
                fmt::NACK => {
                    let mut pairs = Vec::with_capacity(r.0.len() / 4);
                    while !r.0.is_empty() {
                        pairs.push(NackPair {
                            pid: r.u16("NACK")?,
                            blp: r.u16("NACK")?,
                        });
                    }
                    RtcpPacket::Nack(Nack {
                        sender_ssrc,
                        media_ssrc,
                        pairs,
                    })
                }
                fmt::TMMBR | fmt::TMMBN => {
                    let mut entries = Vec::with_capacity(r.0.len() / 8);
                    while !r.0.is_empty() {
                        let ssrc = r.ssrc("TMMBR")?;
                        let v = r.u32("TMMBR")?;
                        entries.push(TmmbEntry {
                            ssrc,
                            bitrate: mantissa_exp_decode(v >> 26, (v >> 9) & 0x1_ffff),
                            overhead: (v & 0x1ff) as u16,
                        });
                    }
                    let tmmb = Tmmb {
                        sender_ssrc,
                        entries,
                    };
                    if count == fmt::TMMBR {
                        RtcpPacket::Tmmbr(tmmb)
                    } else {
                        RtcpPacket::Tmmbn(tmmb)
                    }
                }
                _ => RtcpPacket::Unknown { pt, fmt: count },
            }
        }
        pt::PSFB => {
            let t = "PSFB";
            let sender_ssrc = r.ssrc(t)?;
            let media_ssrc = r.ssrc(t)?;
            match count {
                fmt::PLI => RtcpPacket::Pli(Pli {
                    sender_ssrc,
                    media_ssrc,
                }),
                fmt::FIR => {
                    let mut entries = Vec::with_capacity(r.0.len() / 8);
                    while !r.0.is_empty() {
                        let ssrc = r.ssrc("FIR")?;
                        let seq_nr = r.u8("FIR")?;
                        r.take(3, "FIR")?;
                        entries.push(FirEntry { ssrc, seq_nr });
                    }
                    RtcpPacket::Fir(Fir {
                        sender_ssrc,
                        entries,
                    })
                }
                fmt::AFB if r.0.starts_with(b"REMB") => {
                    let t = "REMB";
                    r.take(4, t)?;
                    let n = r.u8(t)?;
                    let b = r.take(3, t)?;
                    let v = u32::from_be_bytes([0, b[0], b[1], b[2]]);
                    let bitrate = mantissa_exp_decode(v >> 18, v & 0x3_ffff);
                    let mut ssrcs = Vec::with_capacity(usize::from(n));
                    for _ in 0..n {
                        ssrcs.push(r.ssrc(t)?);
                    }
                    RtcpPacket::Remb(Remb {
                        sender_ssrc,
                        bitrate,
                        ssrcs,
                    })
                }
                _ => RtcpPacket::Unknown { pt, fmt: count },
            }
        }
        _ => RtcpPacket::Unknown { pt, fmt: count },
    };
    Ok((packet, rest))
}

fn mantissa_exp_decode(exp: u32, mantissa: u32) -> u64 {
    u64::from(mantissa)
        .checked_shl(exp)
        .filter(|v| v >> exp == u64::from(mantissa))
        .unwrap_or(u64::MAX)
}

/// Splits `value` into (exponent, mantissa) with the mantissa under `bits` bits,
/// rounding down.
fn mantissa_exp_encode(value: u64, bits: u32) -> (u32, u32) {
    let mut exp = 0;
    let mut m = value;
    while m >= (1 << bits) {
        m >>= 1;
        exp += 1;
    }
    (exp, m as u32)
}

/// A cursor over a packet body; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RtcpError> {
        if self.0.len() < n {
            return Err(RtcpError::Truncated(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, RtcpError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0))
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, RtcpError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, RtcpError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, RtcpError> {
        Ok((u64::from(self.u32(what)?) << 32) | u64::from(self.u32(what)?))
    }
    fn ssrc(&mut self, what: &'static str) -> Result<Ssrc, RtcpError> {
        self.u32(what).map(Ssrc)
    }

    fn report_blocks(&mut self, count: u8) -> Result<Vec<ReportBlock>, RtcpError> {
        let t = "report block";
        let mut v = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let ssrc = self.ssrc(t)?;
            let lost = self.u32(t)?;
            // Sign-extend the 24-bit cumulative loss.
            let cumulative_lost = ((lost << 8) as i32) >> 8;
            v.push(ReportBlock {
                ssrc,
                fraction_lost: (lost >> 24) as u8,
                cumulative_lost,
                extended_highest_seq: self.u32(t)?,
                jitter: self.u32(t)?,
                last_sr: self.u32(t)?,
                delay_since_last_sr: self.u32(t)?,
            });
        }
        Ok(v)
    }

    fn sdes(&mut self, count: u8) -> Result<Sdes, RtcpError> {
        let t = "SDES";
        let mut chunks = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let start = self.0.len();
            let ssrc = self.ssrc(t)?;
            let mut items = Vec::new();
            loop {
                let kind = self.u8(t)?;
                if kind == 0 {
                    // The end item, then zero padding up to the next 32-bit boundary.
                    let used = start - self.0.len();
                    self.take((4 - used % 4) % 4, t)?;
                    break;
                }
                let len = self.u8(t)?;
                let value = String::from_utf8_lossy(self.take(usize::from(len), t)?).into_owned();
                items.push(SdesItem { kind, value });
            }
            chunks.push(SdesChunk { ssrc, items });
        }
        Ok(Sdes { chunks })
    }
}

// === build ===

impl RtcpPacket {
    /// Appends this packet (header included, no padding) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let start = out.len();
        let res = self.write_inner(out);
        if res.is_err() {
            out.truncate(start);
        }
        res
    }

    fn write_inner(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        match self {
            RtcpPacket::SenderReport(sr) => {
                let h = header(out, count5(sr.reports.len(), "report blocks")?, pt::SR);
                out.extend_from_slice(&sr.ssrc.0.to_be_bytes());
                out.extend_from_slice(&sr.ntp_time.to_be_bytes());
                out.extend_from_slice(&sr.rtp_time.to_be_bytes());
                out.extend_from_slice(&sr.packet_count.to_be_bytes());
                out.extend_from_slice(&sr.octet_count.to_be_bytes());
                write_blocks(out, &sr.reports);
                finish(out, h)
            }
            RtcpPacket::ReceiverReport(rr) => {
                let h = header(out, count5(rr.reports.len(), "report blocks")?, pt::RR);
                out.extend_from_slice(&rr.ssrc.0.to_be_bytes());
                write_blocks(out, &rr.reports);
                finish(out, h)
            }
            RtcpPacket::Sdes(sdes) => {
                let h = header(out, count5(sdes.chunks.len(), "SDES chunks")?, pt::SDES);
                for chunk in &sdes.chunks {
                    let cstart = out.len();
                    out.extend_from_slice(&chunk.ssrc.0.to_be_bytes());
                    for item in &chunk.items {
                        let len =
                            u8::try_from(item.value.len()).map_err(|_| RtcpError::TextTooLong)?;
                        out.extend_from_slice(&[item.kind, len]);
                        out.extend_from_slice(item.value.as_bytes());
                    }
                    // End item plus padding to a word boundary: 1 to 4 zero bytes.
                    out.push(0);
                    while (out.len() - cstart) % 4 != 0 {
                        out.push(0);
                    }
                }
                finish(out, h)
            }
            RtcpPacket::Bye(bye) => {
                let h = header(out, count5(bye.ssrcs.len(), "BYE sources")?, pt::BYE);
                for s in &bye.ssrcs {
                    out.extend_from_slice(&s.0.to_be_bytes());
                }
                if let Some(reason) = &bye.reason {
                    let len = u8::try_from(reason.len()).map_err(|_| RtcpError::TextTooLong)?;
                    out.push(len);
                    out.extend_from_slice(reason.as_bytes());
                    while (out.len() - h) % 4 != 0 {
                        out.push(0);
                    }
                }
                finish(out, h)
            }
            RtcpPacket::Nack(n) => {
                let h = header(out, fmt::NACK, pt::RTPFB);
                feedback_ssrcs(out, n.sender_ssrc, n.media_ssrc);
                for p in &n.pairs {
                    out.extend_from_slice(&p.pid.to_be_bytes());
                    out.extend_from_slice(&p.blp.to_be_bytes());
                }
                finish(out, h)
            }
            RtcpPacket::Pli(p) => {
                let h = header(out, fmt::PLI, pt::PSFB);
                feedback_ssrcs(out, p.sender_ssrc, p.media_ssrc);
                finish(out, h)
            }
            RtcpPacket::Fir(f) => {
                let h = header(out, fmt::FIR, pt::PSFB);
                // RFC 5104 §4.3.1.2: the media source field is not used and set to 0.
                feedback_ssrcs(out, f.sender_ssrc, Ssrc(0));
                for e in &f.entries {
                    out.extend_from_slice(&e.ssrc.0.to_be_bytes());
                    out.extend_from_slice(&[e.seq_nr, 0, 0, 0]);
                }
                finish(out, h)
            }
            RtcpPacket::Tmmbr(t) | RtcpPacket::Tmmbn(t) => {
                let f = if matches!(self, RtcpPacket::Tmmbr(_)) {
                    fmt::TMMBR
                } else {
                    fmt::TMMBN
                };
                let h = header(out, f, pt::RTPFB);
                feedback_ssrcs(out, t.sender_ssrc, Ssrc(0));
                for e in &t.entries {
                    let (exp, m) = mantissa_exp_encode(e.bitrate, 17);
                    let v = (exp << 26) | (m << 9) | u32::from(e.overhead & 0x1ff);
                    out.extend_from_slice(&e.ssrc.0.to_be_bytes());
                    out.extend_from_slice(&v.to_be_bytes());
                }
                finish(out, h)
            }
            RtcpPacket::Remb(r) => {
                let n = u8::try_from(r.ssrcs.len()).map_err(|_| RtcpError::TooMany("REMB"))?;
                let h = header(out, fmt::AFB, pt::PSFB);
                feedback_ssrcs(out, r.sender_ssrc, Ssrc(0));
                out.extend_from_slice(b"REMB");
                let (exp, m) = mantissa_exp_encode(r.bitrate, 18);
                let v = (exp << 18) | m;
                out.push(n);
                out.extend_from_slice(&v.to_be_bytes()[1..]);
                for s in &r.ssrcs {
                    out.extend_from_slice(&s.0.to_be_bytes());
                }
                finish(out, h)
            }
            RtcpPacket::Unknown { .. } => Ok(()),
        }
    }
}

/// Appends every packet to `out`, making one compound datagram.
pub fn write_compound(packets: &[RtcpPacket], out: &mut Vec<u8>) -> Result<(), RtcpError> {
    let start = out.len();
    for p in packets {
        if let Err(e) = p.write(out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

fn count5(n: usize, what: &'static str) -> Result<u8, RtcpError> {
    u8::try_from(n)
        .ok()
        .filter(|n| *n < 32)
        .ok_or(RtcpError::TooMany(what))
}

/// Writes a header with a placeholder length and returns where it starts.
fn header(out: &mut Vec<u8>, count: u8, pt: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0x80 | (count & 0x1f), pt, 0, 0]);
    at
}

/// Fills in the length of the packet that starts at `at`.
fn finish(out: &mut [u8], at: usize) -> Result<(), RtcpError> {
    let words = (out.len() - at) / 4 - 1;
    let words = u16::try_from(words).map_err(|_| RtcpError::TooMany("words"))?;
    if let Some(len) = out.get_mut(at + 2..at + 4) {
        len.copy_from_slice(&words.to_be_bytes());
    }
    Ok(())
}

fn feedback_ssrcs(out: &mut Vec<u8>, sender: Ssrc, media: Ssrc) {
    out.extend_from_slice(&sender.0.to_be_bytes());
    out.extend_from_slice(&media.0.to_be_bytes());
}

fn write_blocks(out: &mut Vec<u8>, blocks: &[ReportBlock]) {
    for b in blocks {
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32 & 0xff_ffff;
        out.extend_from_slice(&b.ssrc.0.to_be_bytes());
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: Ssrc(0x1111),
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_seq: 0x0001_0005,
            jitter: 77,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    fn all_packets() -> Vec<RtcpPacket> {
        vec![
            RtcpPacket::SenderReport(SenderReport {
                ssrc: Ssrc(1),
                ntp_time: 0xe8d4_a510_8000_0000,
                rtp_time: 160,
                packet_count: 10,
                octet_count: 1600,
                reports: vec![block()],
            }),
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: Ssrc(1),
                reports: vec![block(), block()],
            }),
            RtcpPacket::Sdes(Sdes {
                chunks: vec![
                    SdesChunk {
                        ssrc: Ssrc(1),
                        items: vec![SdesItem {
                            kind: SDES_CNAME,
                            value: "jonction@example".into(),
                        }],
                    },
                    SdesChunk {
                        ssrc: Ssrc(2),
                        items: vec![
                            SdesItem {
                                kind: SDES_CNAME,
                                value: "ab".into(),
                            },
                            SdesItem {
                                kind: 2,
                                value: "Alice".into(),
                            },
                        ],
                    },
                ],
            }),
            RtcpPacket::Bye(Bye {
                ssrcs: vec![Ssrc(1), Ssrc(2)],
                reason: Some("hangup".into()),
            }),
            RtcpPacket::Bye(Bye {
                ssrcs: vec![Ssrc(3)],
                reason: None,
            }),
            RtcpPacket::Nack(Nack::from_lost(
                Ssrc(1),
                Ssrc(9),
                &[100, 101, 116, 117, 300],
            )),
            RtcpPacket::Pli(Pli {
                sender_ssrc: Ssrc(1),
                media_ssrc: Ssrc(9),
            }),
            RtcpPacket::Fir(Fir {
                sender_ssrc: Ssrc(1),
                entries: vec![FirEntry {
                    ssrc: Ssrc(9),
                    seq_nr: 7,
                }],
            }),
            RtcpPacket::Tmmbr(Tmmb {
                sender_ssrc: Ssrc(1),
                entries: vec![TmmbEntry {
                    ssrc: Ssrc(9),
                    bitrate: 256_000,
                    overhead: 40,
                }],
            }),
            RtcpPacket::Tmmbn(Tmmb {
                sender_ssrc: Ssrc(1),
                entries: vec![],
            }),
            RtcpPacket::Remb(Remb {
                sender_ssrc: Ssrc(1),
                bitrate: 1_500_000,
                ssrcs: vec![Ssrc(9), Ssrc(10)],
            }),
        ]
    }

    #[test]
    fn compound_round_trip() {
        let packets = all_packets();
        let mut out = Vec::new();
        write_compound(&packets, &mut out).unwrap();
        assert_eq!(out.len() % 4, 0);
        assert_eq!(parse_compound(&out).unwrap(), packets);
        assert!(is_rtcp(&out));
    }

    #[test]
    fn nack_pairs_pack_and_unpack() {
        let n = Nack::from_lost(Ssrc(1), Ssrc(2), &[65534, 65535, 0, 20]);
        assert_eq!(n.pairs.len(), 2);
        assert_eq!(n.lost().collect::<Vec<_>>(), vec![65534, 65535, 0, 20]);
    }

    #[test]
    fn mantissa_rounding() {
        // 17-bit mantissa: 10 Mbit/s loses a little precision but never rounds up.
        let (e, m) = mantissa_exp_encode(10_000_001, 17);
        let back = mantissa_exp_decode(e, m);
        assert!(back <= 10_000_001 && back > 9_990_000);
        assert_eq!(mantissa_exp_decode(63, 0x3_ffff), u64::MAX);
    }

    /// An RR with one report block as Wireshark shows it from a Linphone capture (hand
    /// assembled from RFC 3550 §6.4.2 fields).
    #[test]
    fn parses_rr_bytes() {
        let bytes = [
            0x81, 0xc9, 0x00, 0x07, // V=2 RC=1 PT=201 len=7
            0x00, 0x00, 0x00, 0x01, // reporter
            0x00, 0x00, 0x00, 0x02, // source
            0x40, 0xff, 0xff, 0xff, // fraction 64/256, cumulative -1
            0x00, 0x00, 0x12, 0x34, // ext highest seq
            0x00, 0x00, 0x00, 0x10, // jitter
            0xaa, 0xbb, 0xcc, 0xdd, // LSR
            0x00, 0x02, 0x00, 0x00, // DLSR = 2 s
        ];
        let p = parse_compound(&bytes).unwrap();
        let RtcpPacket::ReceiverReport(rr) = &p[0] else {
            panic!("{p:?}")
        };
        assert_eq!(rr.reports[0].fraction_lost, 64);
        assert_eq!(rr.reports[0].cumulative_lost, -1);
        assert_eq!(rr.reports[0].delay_since_last_sr, 2 << 16);
    }

    #[test]
    fn malformed_compounds_are_errors() {
        let mut good = Vec::new();
        write_compound(&all_packets(), &mut good).unwrap();
        assert_eq!(parse_compound(&[]), Err(RtcpError::TooShort(0)));
        assert_eq!(parse_compound(&good[..3]), Err(RtcpError::TooShort(3)));
        let mut v = good.clone();
        v[0] = 0x40 | (v[0] & 0x3f);
        assert_eq!(parse_compound(&v), Err(RtcpError::BadVersion(1)));
        // Length beyond the datagram.
        assert!(matches!(
            parse_compound(&good[..good.len() - 4]),
            Err(RtcpError::LengthOverrun { .. })
        ));
        // SR claiming 3 report blocks but holding 1.
        let mut v = good.clone();
        v[0] = 0x83;
        assert_eq!(
            parse_compound(&v),
            Err(RtcpError::Truncated("report block"))
        );
        // Padding bit with a zero count.
        let mut v = vec![0xa0, 0xc9, 0x00, 0x01, 0, 0, 0, 0];
        assert_eq!(parse_compound(&v), Err(RtcpError::BadPadding));
        v[7] = 9;
        assert_eq!(parse_compound(&v), Err(RtcpError::BadPadding));
        // Valid padding of 4 bytes after an RR with no blocks.
        let v = [0xa0, 0xc9, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 4];
        assert_eq!(parse_compound(&v).unwrap().len(), 1);
        // Iteration stops after an error.
        let mut v = good.clone();
        v.extend_from_slice(&[0x80, 0xc9]);
        let items: Vec<_> = RtcpReader::new(&v).collect();
        assert!(items.last().unwrap().is_err());
        assert_eq!(items.len(), all_packets().len() + 1);
    }

    #[test]
    fn every_truncation_and_corruption_is_handled() {
        let mut good = Vec::new();
        write_compound(&all_packets(), &mut good).unwrap();
        for n in 0..good.len() {
            let _ = parse_compound(&good[..n]);
        }
        for i in 0..good.len() {
            for v in [0x00, 0xff, 0x1f, 0x80] {
                let mut m = good.clone();
                m[i] = v;
                let _ = parse_compound(&m);
            }
        }
    }

    #[test]
    fn unknown_types_are_skipped() {
        let v = [
            0x80, 0xcc, 0x00, 0x01, 1, 2, 3, 4, 0x80, 0xc9, 0x00, 0x01, 0, 0, 0, 5,
        ];
        let p = parse_compound(&v).unwrap();
        assert_eq!(p[0], RtcpPacket::Unknown { pt: 204, fmt: 0 });
        assert!(matches!(p[1], RtcpPacket::ReceiverReport(_)));
    }

    #[test]
    fn builder_limits() {
        let rr = RtcpPacket::ReceiverReport(ReceiverReport {
            ssrc: Ssrc(1),
            reports: vec![block(); 32],
        });
        let mut out = vec![1];
        assert_eq!(rr.write(&mut out), Err(RtcpError::TooMany("report blocks")));
        assert_eq!(out, vec![1]);
        let bye = RtcpPacket::Bye(Bye {
            ssrcs: vec![],
            reason: Some("x".repeat(256)),
        });
        assert_eq!(bye.write(&mut out), Err(RtcpError::TextTooLong));
    }
}
