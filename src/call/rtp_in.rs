//! RTP from the device: header parsing and symmetric-RTP latching with injection protection
//! (only a packet with a negotiated payload type may latch the remote address, and once latched
//! other sources are ignored).

use std::net::SocketAddr;

use crate::sip::sdp::Negotiated;

/// One accepted packet.
pub struct Packet<'a> {
    /// Payload type.
    pub pt: u8,
    /// RTP timestamp, extended across wraps.
    pub timestamp: u64,
    /// Payload.
    pub payload: &'a [u8],
}

/// Receive state of the device's RTP stream.
pub struct RtpIn {
    pts: Vec<u8>,
    latched: Option<(SocketAddr, u32)>,
    last_ts: Option<u32>,
    wraps: u64,
}

impl RtpIn {
    /// For a negotiated stream (none yet: nothing is accepted until [`RtpIn::renegotiated`]).
    pub fn new(n: Option<&Negotiated>) -> Self {
        let mut pts = Vec::new();
        if let Some(n) = n {
            pts.push(n.pt);
            pts.extend(n.dtmf_pt);
        }
        Self {
            pts,
            latched: None,
            last_ts: None,
            wraps: 0,
        }
    }

    /// After a re-INVITE: new payload types; the latch stays.
    pub fn renegotiated(&mut self, n: &Negotiated) {
        self.pts = vec![n.pt];
        self.pts.extend(n.dtmf_pt);
    }

    /// Parses and filters a datagram; `None` for garbage, unknown payload types and strangers.
    pub fn accept<'a>(&mut self, from: SocketAddr, d: &'a [u8]) -> Option<Packet<'a>> {
        if d.len() < 12 || d[0] >> 6 != 2 {
            return None;
        }
        let pt = d[1] & 0x7f;
        // RTCP (RFC 5761 demux: PT 64..=95 after masking) is not media.
        if (64..=95).contains(&pt) {
            return None;
        }
        let cc = (d[0] & 0x0f) as usize;
        let mut off = 12 + 4 * cc;
        if d[0] & 0x10 != 0 {
            let ext = d.get(off + 2..off + 4)?;
            off += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
        }
        let mut end = d.len();
        if d[0] & 0x20 != 0 {
            let pad = *d.last()? as usize;
            end = end.checked_sub(pad)?;
        }
        if off > end || !self.pts.contains(&pt) {
            return None;
        }
        let ssrc = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        match self.latched {
            None => self.latched = Some((from, ssrc)),
            Some((addr, _)) if addr != from => return None,
            Some(_) => {}
        }
        let ts = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        if let Some(last) = self.last_ts {
            if ts < last && last - ts > u32::MAX / 2 {
                self.wraps += 1;
            }
        }
        self.last_ts = Some(ts);
        Some(Packet {
            pt,
            timestamp: (self.wraps << 32) | ts as u64,
            payload: &d[off..end],
        })
    }
}
