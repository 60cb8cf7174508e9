//! RTP fixed header view and writer (RFC 3550 §5.1, §5.3.1) with header extensions in the
//! one-byte and two-byte forms of RFC 8285 §4.
//!
//! [`RtpPacket::parse`] checks every length once, up front; the accessors then never fail.
//! [`RtpWriter`] builds a packet into a caller's buffer without allocating.

use super::Ssrc;

/// Size of the fixed RTP header, before the CSRC list.
pub const FIXED_HEADER_LEN: usize = 12;
/// Profile value of the one-byte header extension form (RFC 8285 §4.2).
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// Profile value of the two-byte header extension form (RFC 8285 §4.3); the low four bits
/// ("appbits") are application defined.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why an RTP packet could not be parsed or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The datagram is shorter than the 12-byte fixed header.
    #[error("RTP packet of {len} bytes is shorter than the fixed header")]
    TooShort {
        /// Length of the datagram.
        len: usize,
    },
    /// The version field is not 2 (the sender is not speaking RTP, or this is STUN/DTLS).
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The CSRC count announces more identifiers than the datagram holds.
    #[error("CSRC count {count} runs past the end of the packet")]
    CsrcOverrun {
        /// The announced CSRC count.
        count: u8,
    },
    /// The X bit is set but the 4-byte extension header is missing.
    #[error("header extension header is truncated")]
    ExtensionHeaderTruncated,
    /// The extension length field announces more 32-bit words than the datagram holds.
    #[error("header extension of {words} words runs past the end of the packet")]
    ExtensionOverrun {
        /// The announced length, in 32-bit words.
        words: u16,
    },
    /// An RFC 8285 element inside the extension block runs past the block.
    #[error("header extension element {id} runs past the extension block")]
    ExtensionElementOverrun {
        /// The element's identifier.
        id: u8,
    },
    /// The P bit is set but the padding count is zero or larger than what follows the header.
    #[error("padding of {padding} bytes with only {available} bytes after the header")]
    BadPadding {
        /// The padding count (last byte of the packet).
        padding: u8,
        /// Bytes after the header (payload and padding).
        available: usize,
    },
    /// Writer: more than 15 CSRCs.
    #[error("{0} CSRCs, at most 15 fit")]
    TooManyCsrcs(usize),
    /// Writer: the payload type does not fit in 7 bits.
    #[error("payload type {0} does not fit in 7 bits")]
    PayloadTypeOutOfRange(u8),
    /// Writer: an extension element id or length fits neither RFC 8285 form.
    #[error("extension element id {id} with {len} bytes fits no RFC 8285 form")]
    BadExtensionElement {
        /// The element's identifier.
        id: u8,
        /// The element's length.
        len: usize,
    },
    /// Writer: the extension block is longer than 65535 words.
    #[error("header extension block too long")]
    ExtensionTooLong,
    /// Writer: the caller's buffer is too small.
    #[error("buffer of {available} bytes, {needed} needed")]
    BufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

/// A parsed, borrowed view of one RTP packet. All lengths were checked by [`RtpPacket::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    marker: bool,
    pt: u8,
    seq: u16,
    timestamp: u32,
    ssrc: Ssrc,
    csrcs: &'a [u8],
    extension: Option<(u16, &'a [u8])>,
    payload: &'a [u8],
    padding: u8,
}

/// One header extension element (RFC 8285): a local identifier and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    /// Local identifier negotiated with `a=extmap` (1–14 one-byte form, 1–255 two-byte form).
    pub id: u8,
    /// The element's value.
    pub data: &'a [u8],
}

// === impl RtpPacket ===

impl<'a> RtpPacket<'a> {
    /// Parses a datagram as RTP. Never panics: any inconsistent length is an [`RtpError`].
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let fixed: &[u8; FIXED_HEADER_LEN] = buf
            .get(..FIXED_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RtpError::TooShort { len: buf.len() })?;
        let version = fixed[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let cc = fixed[0] & 0x0f;
        let marker = fixed[1] & 0x80 != 0;
        let pt = fixed[1] & 0x7f;
        let seq = u16::from_be_bytes([fixed[2], fixed[3]]);
        let timestamp = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let ssrc = Ssrc(u32::from_be_bytes([
            fixed[8], fixed[9], fixed[10], fixed[11],
        ]));

        let rest = buf.get(FIXED_HEADER_LEN..).unwrap_or_default();
        let csrc_len = usize::from(cc) * 4;
        if rest.len() < csrc_len {
            return Err(RtpError::CsrcOverrun { count: cc });
        }
        let (csrcs, mut rest) = rest.split_at(csrc_len);

        let mut extension = None;
        if has_extension {
            if rest.len() < 4 {
                return Err(RtpError::ExtensionHeaderTruncated);
            }
            let (head, after) = rest.split_at(4);
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let words = u16::from_be_bytes([head[2], head[3]]);
            let len = usize::from(words) * 4;
            if after.len() < len {
                return Err(RtpError::ExtensionOverrun { words });
            }
            let (data, after) = after.split_at(len);
            validate_elements(profile, data)?;
            extension = Some((profile, data));
            rest = after;
        }

        let mut padding = 0;
        if has_padding {
            let count = rest.last().copied().unwrap_or(0);
            if count == 0 || usize::from(count) > rest.len() {
                return Err(RtpError::BadPadding {
                    padding: count,
                    available: rest.len(),
                });
            }
            padding = count;
            rest = rest.split_at(rest.len() - usize::from(count)).0;
        }

        Ok(RtpPacket {
            marker,
            pt,
            seq,
            timestamp,
            ssrc,
            csrcs,
            extension,
            payload: rest,
            padding,
        })
    }

    /// The marker bit (start of a talk spurt for audio, end of a frame for video).
    pub fn marker(&self) -> bool {
        self.marker
    }

    /// The 7-bit payload type.
    pub fn pt(&self) -> u8 {
        self.pt
    }

    /// The 16-bit sequence number (extend it with [`super::SequenceTracker`]).
    pub fn seq(&self) -> u16 {
        self.seq
    }

    /// The 32-bit media timestamp.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The contributing sources (up to 15).
    pub fn csrcs(&self) -> impl Iterator<Item = Ssrc> + 'a {
        self.csrcs
            .chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// The payload, without header, extension or padding.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Number of padding bytes that were stripped (0 when the P bit is clear).
    pub fn padding_len(&self) -> u8 {
        self.padding
    }

    /// The raw header extension: its 16-bit profile and data, when the X bit is set.
    pub fn extension(&self) -> Option<(u16, &'a [u8])> {
        self.extension
    }

    /// The RFC 8285 extension elements (empty for other profiles or without extension).
    pub fn extension_elements(&self) -> ExtensionElements<'a> {
        match self.extension {
            Some((profile, data)) => ExtensionElements {
                form: ExtensionForm::of(profile),
                data,
            },
            None => ExtensionElements {
                form: ExtensionForm::Opaque,
                data: &[],
            },
        }
    }

    /// The first extension element with this id, if any.
    pub fn extension_element(&self, id: u8) -> Option<&'a [u8]> {
        self.extension_elements()
            .find(|e| e.id == id)
            .map(|e| e.data)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtensionForm {
    OneByte,
    TwoByte,
    Opaque,
}

impl ExtensionForm {
    fn of(profile: u16) -> Self {
        if profile == ONE_BYTE_PROFILE {
            ExtensionForm::OneByte
        } else if profile & 0xfff0 == TWO_BYTE_PROFILE {
            ExtensionForm::TwoByte
        } else {
            ExtensionForm::Opaque
        }
    }
}

/// Iterator over RFC 8285 header extension elements, skipping padding bytes.
#[derive(Debug, Clone)]
pub struct ExtensionElements<'a> {
    form: ExtensionForm,
    data: &'a [u8],
}

impl<'a> Iterator for ExtensionElements<'a> {
    type Item = ExtensionElement<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // `validate_elements` already accepted the block; the `get`s below only keep this
        // iterator panic-free should that ever change.
        loop {
            match self.form {
                ExtensionForm::Opaque => return None,
                ExtensionForm::OneByte => {
                    let (&b, rest) = self.data.split_first()?;
                    let id = b >> 4;
                    if id == 0 {
                        self.data = rest;
                        continue;
                    }
                    if id == 15 {
                        // RFC 8285 §4.2: id 15 means "stop processing".
                        self.data = &[];
                        return None;
                    }
                    let len = usize::from(b & 0x0f) + 1;
                    let data = rest.get(..len)?;
                    self.data = rest.get(len..).unwrap_or_default();
                    return Some(ExtensionElement { id, data });
                }
                ExtensionForm::TwoByte => {
                    let (&id, rest) = self.data.split_first()?;
                    if id == 0 {
                        self.data = rest;
                        continue;
                    }
                    let (&len, rest) = rest.split_first()?;
                    let len = usize::from(len);
                    let data = rest.get(..len)?;
                    self.data = rest.get(len..).unwrap_or_default();
                    return Some(ExtensionElement { id, data });
                }
            }
        }
    }
}

fn validate_elements(profile: u16, mut data: &[u8]) -> Result<(), RtpError> {
    match ExtensionForm::of(profile) {
        ExtensionForm::Opaque => Ok(()),
        ExtensionForm::OneByte => {
            while let Some((&b, rest)) = data.split_first() {
                let id = b >> 4;
                if id == 0 {
                    data = rest;
                    continue;
                }
                if id == 15 {
                    return Ok(());
                }
                let len = usize::from(b & 0x0f) + 1;
                data = rest
                    .get(len..)
                    .ok_or(RtpError::ExtensionElementOverrun { id })?;
            }
            Ok(())
        }
        ExtensionForm::TwoByte => {
            while let Some((&id, rest)) = data.split_first() {
                if id == 0 {
                    data = rest;
                    continue;
                }
                let (&len, rest) = rest
                    .split_first()
                    .ok_or(RtpError::ExtensionElementOverrun { id })?;
                data = rest
                    .get(usize::from(len)..)
                    .ok_or(RtpError::ExtensionElementOverrun { id })?;
            }
            Ok(())
        }
    }
}

// === impl RtpWriter ===

/// Builds one RTP packet into a caller's buffer.
///
/// ```
/// # use jonction::media::rtp::{RtpWriter, Ssrc};
/// let mut out = Vec::new();
/// RtpWriter::new(0, 1, 160, Ssrc(7)).marker(true).write(&[0xff; 160], &mut out).unwrap();
/// assert_eq!(out.len(), 12 + 160);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RtpWriter<'e> {
    marker: bool,
    pt: u8,
    seq: u16,
    timestamp: u32,
    ssrc: Ssrc,
    csrcs: &'e [Ssrc],
    extensions: &'e [ExtensionElement<'e>],
    padding: u8,
}

impl<'e> RtpWriter<'e> {
    /// A writer for a packet with these header fields, no CSRC, no extension, no padding.
    pub fn new(pt: u8, seq: u16, timestamp: u32, ssrc: Ssrc) -> Self {
        RtpWriter {
            marker: false,
            pt,
            seq,
            timestamp,
            ssrc,
            csrcs: &[],
            extensions: &[],
            padding: 0,
        }
    }

    /// Sets the marker bit.
    pub fn marker(mut self, marker: bool) -> Self {
        self.marker = marker;
        self
    }

    /// Sets the contributing sources (at most 15).
    pub fn csrcs(mut self, csrcs: &'e [Ssrc]) -> Self {
        self.csrcs = csrcs;
        self
    }

    /// Sets header extension elements. The one-byte form is used when every element fits it
    /// (id 1–14, 1–16 bytes), the two-byte form otherwise.
    pub fn extensions(mut self, extensions: &'e [ExtensionElement<'e>]) -> Self {
        self.extensions = extensions;
        self
    }

    /// Appends `padding` bytes (0 for none) and sets the P bit.
    pub fn padding(mut self, padding: u8) -> Self {
        self.padding = padding;
        self
    }

    fn one_byte_form(&self) -> bool {
        self.extensions
            .iter()
            .all(|e| (1..=14).contains(&e.id) && (1..=16).contains(&e.data.len()))
    }

    /// Length of the extension data, before rounding up to 32-bit words.
    fn extension_data_len(&self) -> Result<usize, RtpError> {
        let one = self.one_byte_form();
        let mut len = 0;
        for e in self.extensions {
            if e.id == 0 || (!one && e.data.len() > 255) {
                return Err(RtpError::BadExtensionElement {
                    id: e.id,
                    len: e.data.len(),
                });
            }
            len += if one { 1 } else { 2 } + e.data.len();
        }
        Ok(len)
    }

    /// The length of the packet this writer produces for a payload of `payload_len` bytes.
    pub fn len(&self, payload_len: usize) -> Result<usize, RtpError> {
        if self.csrcs.len() > 15 {
            return Err(RtpError::TooManyCsrcs(self.csrcs.len()));
        }
        if self.pt > 0x7f {
            return Err(RtpError::PayloadTypeOutOfRange(self.pt));
        }
        let mut len = FIXED_HEADER_LEN + 4 * self.csrcs.len();
        if !self.extensions.is_empty() {
            let words = self.extension_data_len()?.div_ceil(4);
            if words > usize::from(u16::MAX) {
                return Err(RtpError::ExtensionTooLong);
            }
            len += 4 + 4 * words;
        }
        Ok(len + payload_len + usize::from(self.padding))
    }

    /// Appends the packet to `out` and returns its length.
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<usize, RtpError> {
        let len = self.len(payload.len())?;
        let start = out.len();
        out.resize(start + len, 0);
        let written = self.write_to(payload, out.get_mut(start..).unwrap_or_default());
        if written.is_err() {
            out.truncate(start);
        }
        written
    }

    /// Writes the packet at the start of `buf` and returns its length.
    pub fn write_to(&self, payload: &[u8], buf: &mut [u8]) -> Result<usize, RtpError> {
        let len = self.len(payload.len())?;
        let available = buf.len();
        let buf = buf.get_mut(..len).ok_or(RtpError::BufferTooSmall {
            needed: len,
            available,
        })?;
        let mut w = Cursor { buf, at: 0 };
        let mut b0 = 0x80 | self.csrcs.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if !self.extensions.is_empty() {
            b0 |= 0x10;
        }
        w.put(&[b0, (u8::from(self.marker) << 7) | self.pt]);
        w.put(&self.seq.to_be_bytes());
        w.put(&self.timestamp.to_be_bytes());
        w.put(&self.ssrc.0.to_be_bytes());
        for c in self.csrcs {
            w.put(&c.0.to_be_bytes());
        }
        if !self.extensions.is_empty() {
            let one = self.one_byte_form();
            let data_len = self.extension_data_len()?;
            let words = data_len.div_ceil(4);
            let profile = if one {
                ONE_BYTE_PROFILE
            } else {
                TWO_BYTE_PROFILE
            };
            w.put(&profile.to_be_bytes());
            w.put(&(words as u16).to_be_bytes());
            for e in self.extensions {
                if one {
                    w.put(&[(e.id << 4) | (e.data.len() as u8 - 1)]);
                } else {
                    w.put(&[e.id, e.data.len() as u8]);
                }
                w.put(e.data);
            }
            // Zero bytes pad the block to a word boundary (id 0 = padding, RFC 8285 §4.2).
            w.skip(words * 4 - data_len);
        }
        w.put(payload);
        if self.padding > 0 {
            w.skip(usize::from(self.padding) - 1);
            w.put(&[self.padding]);
        }
        Ok(len)
    }
}

/// Writes into a slice that `RtpWriter::len` sized; out-of-range writes are impossible by
/// construction and would be silently dropped rather than panic.
struct Cursor<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }

    fn skip(&mut self, n: usize) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + n) {
            dst.fill(0);
        }
        self.at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCMU packet: V=2, M=1, PT=0, seq 0x1234, ts 0xdeadbeef, SSRC 0x01020304, 4 bytes.
    const PCMU: &[u8] = &[
        0x80, 0x80, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xff, 0xfe, 0xfd,
        0xfc,
    ];

    #[test]
    fn parses_fixed_header() {
        let p = RtpPacket::parse(PCMU).unwrap();
        assert!(p.marker());
        assert_eq!(p.pt(), 0);
        assert_eq!(p.seq(), 0x1234);
        assert_eq!(p.timestamp(), 0xdead_beef);
        assert_eq!(p.ssrc(), Ssrc(0x0102_0304));
        assert_eq!(p.payload(), &[0xff, 0xfe, 0xfd, 0xfc]);
        assert_eq!(p.csrcs().count(), 0);
        assert_eq!(p.extension(), None);
    }

    /// RFC 8285 §4.2 example shape: one-byte form, elements id 1 (1 byte), id 2 (2 bytes),
    /// padding, id 3 (4 bytes).
    #[test]
    fn parses_one_byte_extension_and_csrcs() {
        let pkt = [
            0x91, 0x60, 0x00, 0x01, 0, 0, 0, 0x10, 0xaa, 0xbb, 0xcc, 0xdd, // X, CC=1, PT=96
            0x11, 0x22, 0x33, 0x44, // CSRC
            0xbe, 0xde, 0x00, 0x03, // profile, 3 words
            0x10, 0x01, 0x21, 0x02, 0x03, 0x00, 0x33, 0x01, 0x02, 0x03, 0x04,
            0x00, // elements
            0x42, // payload
        ];
        let p = RtpPacket::parse(&pkt).unwrap();
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![Ssrc(0x1122_3344)]);
        let els: Vec<_> = p.extension_elements().collect();
        assert_eq!(
            els,
            vec![
                ExtensionElement {
                    id: 1,
                    data: &[0x01]
                },
                ExtensionElement {
                    id: 2,
                    data: &[0x02, 0x03]
                },
                ExtensionElement {
                    id: 3,
                    data: &[1, 2, 3, 4]
                },
            ]
        );
        assert_eq!(p.extension_element(2), Some(&[0x02, 0x03][..]));
        assert_eq!(p.payload(), &[0x42]);
    }

    #[test]
    fn parses_two_byte_extension_and_padding() {
        let pkt = [
            0xb0, 0x08, 0x00, 0x01, 0, 0, 0, 0x10, 0xaa, 0xbb, 0xcc, 0xdd, // P, X, PT=8
            0x10, 0x00, 0x00, 0x02, // two-byte profile, 2 words
            0x20, 0x00, 0x00, 0x21, 0x03, 0x07, 0x08, 0x09, // id 32 empty, pad, id 33 (3)
            0x55, 0x56, // payload
            0x00, 0x00, 0x03, // 3 bytes of padding
        ];
        let p = RtpPacket::parse(&pkt).unwrap();
        let els: Vec<_> = p.extension_elements().collect();
        assert_eq!(
            els,
            vec![
                ExtensionElement { id: 32, data: &[] },
                ExtensionElement {
                    id: 33,
                    data: &[7, 8, 9]
                },
            ]
        );
        assert_eq!(p.payload(), &[0x55, 0x56]);
        assert_eq!(p.padding_len(), 3);
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(
            RtpPacket::parse(&PCMU[..11]),
            Err(RtpError::TooShort { len: 11 })
        );
        assert_eq!(RtpPacket::parse(&[]), Err(RtpError::TooShort { len: 0 }));
        let mut v1 = PCMU.to_vec();
        v1[0] = 0x40;
        assert_eq!(RtpPacket::parse(&v1), Err(RtpError::BadVersion(1)));
        // CC=2 but only 4 bytes follow the fixed header.
        let mut cc = PCMU.to_vec();
        cc[0] = 0x82;
        assert_eq!(
            RtpPacket::parse(&cc),
            Err(RtpError::CsrcOverrun { count: 2 })
        );
        // X set, extension header truncated.
        let mut x = PCMU[..14].to_vec();
        x[0] = 0x90;
        assert_eq!(
            RtpPacket::parse(&x),
            Err(RtpError::ExtensionHeaderTruncated)
        );
        // X set, 2 words announced, none present.
        let mut x = PCMU[..12].to_vec();
        x[0] = 0x90;
        x.extend_from_slice(&[0xbe, 0xde, 0x00, 0x02]);
        assert_eq!(
            RtpPacket::parse(&x),
            Err(RtpError::ExtensionOverrun { words: 2 })
        );
        // One-byte element of 4 bytes in a 1-word block.
        let mut x = PCMU[..12].to_vec();
        x[0] = 0x90;
        x.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x13, 0, 0, 0]);
        assert_eq!(
            RtpPacket::parse(&x),
            Err(RtpError::ExtensionElementOverrun { id: 1 })
        );
        // Padding larger than what follows the header.
        let mut p = PCMU.to_vec();
        p[0] = 0xa0;
        *p.last_mut().unwrap() = 5;
        assert_eq!(
            RtpPacket::parse(&p),
            Err(RtpError::BadPadding {
                padding: 5,
                available: 4
            })
        );
        // Padding count zero.
        *p.last_mut().unwrap() = 0;
        assert!(matches!(
            RtpPacket::parse(&p),
            Err(RtpError::BadPadding { padding: 0, .. })
        ));
        // P set with nothing after the header.
        let mut p = PCMU[..12].to_vec();
        p[0] = 0xa0;
        assert!(RtpPacket::parse(&p).is_err());
    }

    #[test]
    fn every_truncation_of_a_full_packet_is_handled() {
        let csrcs = [Ssrc(1), Ssrc(2)];
        let ext = [
            ExtensionElement { id: 1, data: &[1] },
            ExtensionElement {
                id: 5,
                data: &[1, 2, 3],
            },
        ];
        let mut out = Vec::new();
        RtpWriter::new(111, 9, 960, Ssrc(42))
            .csrcs(&csrcs)
            .extensions(&ext)
            .padding(4)
            .write(&[9; 20], &mut out)
            .unwrap();
        for n in 0..out.len() {
            // Shorter buffers either fail or parse to something else; none panics.
            let _ = RtpPacket::parse(&out[..n]);
        }
        for byte in 0..out.len() {
            for v in [0x00, 0xff, 0x0f, 0xf0] {
                let mut m = out.clone();
                m[byte] = v;
                let _ = RtpPacket::parse(&m).map(|p| p.extension_elements().count());
            }
        }
    }

    #[test]
    fn writer_round_trips() {
        let csrcs = [Ssrc(0xabcd)];
        let ext = [
            ExtensionElement {
                id: 1,
                data: &[0x80],
            },
            ExtensionElement {
                id: 3,
                data: &[1, 2, 3],
            },
        ];
        let mut out = vec![0xee]; // appended after existing content
        let n = RtpWriter::new(96, 65535, u32::MAX, Ssrc(1))
            .marker(true)
            .csrcs(&csrcs)
            .extensions(&ext)
            .padding(2)
            .write(b"hello", &mut out)
            .unwrap();
        assert_eq!(n, out.len() - 1);
        let p = RtpPacket::parse(&out[1..]).unwrap();
        assert!(p.marker());
        assert_eq!((p.pt(), p.seq(), p.timestamp()), (96, 65535, u32::MAX));
        assert_eq!(p.csrcs().collect::<Vec<_>>(), csrcs);
        assert_eq!(p.extension().unwrap().0, ONE_BYTE_PROFILE);
        assert_eq!(p.extension_elements().collect::<Vec<_>>(), ext);
        assert_eq!(p.payload(), b"hello");
        assert_eq!(p.padding_len(), 2);

        // Id 20 forces the two-byte form.
        let ext = [ExtensionElement {
            id: 20,
            data: &[0; 17],
        }];
        out.clear();
        RtpWriter::new(0, 1, 2, Ssrc(3))
            .extensions(&ext)
            .write(b"", &mut out)
            .unwrap();
        let p = RtpPacket::parse(&out).unwrap();
        assert_eq!(p.extension().unwrap().0, TWO_BYTE_PROFILE);
        assert_eq!(p.extension_elements().collect::<Vec<_>>(), ext);
    }

    #[test]
    fn writer_errors() {
        let mut small = [0u8; 13];
        assert_eq!(
            RtpWriter::new(0, 0, 0, Ssrc(0)).write_to(&[1, 2], &mut small),
            Err(RtpError::BufferTooSmall {
                needed: 14,
                available: 13
            })
        );
        let mut v = Vec::new();
        assert_eq!(
            RtpWriter::new(128, 0, 0, Ssrc(0)).write(&[], &mut v),
            Err(RtpError::PayloadTypeOutOfRange(128))
        );
        assert!(v.is_empty());
        let many = [Ssrc(0); 16];
        assert_eq!(
            RtpWriter::new(0, 0, 0, Ssrc(0))
                .csrcs(&many)
                .write(&[], &mut v),
            Err(RtpError::TooManyCsrcs(16))
        );
        let bad = [ExtensionElement { id: 0, data: &[1] }];
        assert!(RtpWriter::new(0, 0, 0, Ssrc(0))
            .extensions(&bad)
            .write(&[], &mut v)
            .is_err());
    }
}
