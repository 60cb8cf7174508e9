//! Access units → RTP payloads (RFC 6184 §5.6–5.8) for a maximum payload size: a NAL unit
//! that fits goes alone, consecutive small ones (SPS, PPS, SEI, small slices) share a STAP-A,
//! a large one is cut into FU-As. In packetization mode 0 only single NAL unit packets exist,
//! so an access unit with a NAL unit above the MTU cannot be sent: it is dropped and counted.

use super::{nal_type, AccessUnit, Counters};

/// The `packetization-mode` negotiated in SDP (RFC 6184 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacketizationMode {
    /// Mode 0: single NAL unit packets only.
    SingleNal,
    /// Mode 1: single NAL unit, STAP-A and FU-A.
    #[default]
    NonInterleaved,
}

/// The payload size WebRTC stacks use for video (a 1200-byte packet budget minus headers).
pub const WEBRTC_MAX_PAYLOAD: usize = 1200;

/// Smallest payload size accepted (an FU-A needs two header bytes plus data).
const MIN_PAYLOAD: usize = 16;

/// Cuts access units into RTP payloads.
#[derive(Debug)]
pub struct Packetizer {
    mode: PacketizationMode,
    max_payload: usize,
    scratch: Vec<u8>,
    counters: Counters,
}

impl Packetizer {
    /// A packetizer for payloads of at most `max_payload` bytes (clamped to 16..=65535, the
    /// STAP-A size field being 16 bits).
    pub fn new(mode: PacketizationMode, max_payload: usize) -> Self {
        let max_payload = max_payload.clamp(MIN_PAYLOAD, usize::from(u16::MAX));
        Packetizer {
            mode,
            max_payload,
            scratch: Vec::with_capacity(max_payload),
            counters: Counters::default(),
        }
    }

    /// Calls `emit(payload, marker)` for each RTP payload of `au`, the marker set on the last.
    /// Returns the number of payloads (0 when the access unit was dropped).
    pub fn packetize(&mut self, au: &AccessUnit, mut emit: impl FnMut(&[u8], bool)) -> usize {
        let n = au.len();
        let max = self.max_payload;
        if self.mode == PacketizationMode::SingleNal {
            if au.nals().any(|nal| nal.len() > max) {
                self.counters.oversized_nals += 1;
                return 0;
            }
            for (i, nal) in au.nals().enumerate() {
                emit(nal, i + 1 == n);
            }
            return n;
        }
        let mut sent = 0;
        let mut i = 0;
        while let Some(nal) = au.nal(i) {
            if nal.len() > max {
                sent += self.fu_a(nal, i + 1 == n, &mut emit);
                i += 1;
                continue;
            }
            // Gather the following NAL units that fit with this one into a STAP-A.
            let mut size = 1 + 2 + nal.len();
            let mut j = i + 1;
            while let Some(next) = au.nal(j) {
                if size + 2 + next.len() > max {
                    break;
                }
                size += 2 + next.len();
                j += 1;
            }
            if j == i + 1 {
                emit(nal, j == n);
            } else {
                self.stap_a(au, i..j, j == n, &mut emit);
            }
            sent += 1;
            i = j;
        }
        sent
    }

    /// The drop counters (oversized NAL units in mode 0).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn stap_a(
        &mut self,
        au: &AccessUnit,
        range: std::ops::Range<usize>,
        marker: bool,
        emit: &mut impl FnMut(&[u8], bool),
    ) {
        // F is the OR of the units' F bits, NRI their maximum (RFC 6184 §5.7).
        let (mut f, mut nri) = (0u8, 0u8);
        self.scratch.clear();
        self.scratch.push(nal_type::STAP_A);
        for i in range {
            let nal = au.nal(i).unwrap_or_default();
            let h = nal.first().copied().unwrap_or(0);
            f |= h & 0x80;
            nri = nri.max(h & 0x60);
            self.scratch
                .extend_from_slice(&(nal.len() as u16).to_be_bytes());
            self.scratch.extend_from_slice(nal);
        }
        if let Some(first) = self.scratch.first_mut() {
            *first |= f | nri;
        }
        emit(&self.scratch, marker);
    }

    fn fu_a(&mut self, nal: &[u8], last: bool, emit: &mut impl FnMut(&[u8], bool)) -> usize {
        let Some((&header, body)) = nal.split_first() else {
            return 0;
        };
        let indicator = (header & 0xe0) | nal_type::FU_A;
        let chunk = self.max_payload - 2;
        let count = body.len().div_ceil(chunk);
        for (k, part) in body.chunks(chunk).enumerate() {
            let mut fu = header & 0x1f;
            if k == 0 {
                fu |= 0x80;
            }
            if k + 1 == count {
                fu |= 0x40;
            }
            self.scratch.clear();
            self.scratch.extend_from_slice(&[indicator, fu]);
            self.scratch.extend_from_slice(part);
            emit(&self.scratch, last && k + 1 == count);
        }
        count
    }
}
