//! H.264 remuxing without decoding (RFC 6184): RTP payloads in, access units of NAL units out,
//! and back to RTP payloads at another MTU or packetization mode; SPS parsing (resolution,
//! `profile-level-id`); a stream switcher that splices several sources into one outgoing stream.
//!
//! - [`annex_b`]: splitting an Annex-B byte stream (files, the encoder's output) into access
//!   units, and writing access units back as Annex-B.
//! - [`sps`]: the sequence parameter set parser.
//! - [`profile`]: `profile-level-id` and the profiles browsers take.
//! - [`depacketize`]: RTP payloads → [`AccessUnit`]s, with loss handling, SPS/PPS insertion
//!   before IDRs and keyframe waits.
//! - [`packetize`]: [`AccessUnit`] → RTP payloads (single NAL, STAP-A, FU-A) for a given MTU.
//! - [`keyframe`]: the keyframe request rate limiter.
//! - [`switcher`]: many sources → one stream, with SSRC/sequence/timestamp rewriting.
//!
//! Access units keep their NAL units length-delimited in memory (one buffer plus an index of
//! ranges), not in Annex-B: the packetizer needs NAL boundaries and must not scan for start
//! codes on every packet, and trailing zero bytes stay unambiguous. Annex-B is only written at
//! the edges ([`AccessUnit::write_annex_b`]).

pub mod annex_b;
pub mod depacketize;
pub mod keyframe;
pub mod packetize;
pub mod profile;
pub mod sps;
pub mod switcher;

pub use depacketize::{Depacketizer, DepacketizerConfig};
pub use keyframe::KeyframeLimiter;
pub use packetize::{PacketizationMode, Packetizer};
pub use sps::{Sps, SpsError};
pub use switcher::{StreamSwitcher, SwitcherConfig, SwitcherEvent};

/// The RTP clock rate of H.264 video (RFC 6184 §8.1).
pub const CLOCK_RATE: u32 = 90_000;

/// NAL unit types (H.264 Table 7-1) and RTP payload structure types (RFC 6184 §5.2).
pub mod nal_type {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture (a keyframe).
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
    /// Single-time aggregation packet A.
    pub const STAP_A: u8 = 24;
    /// Single-time aggregation packet B (interleaved mode only).
    pub const STAP_B: u8 = 25;
    /// Multi-time aggregation packet, 16-bit offsets.
    pub const MTAP16: u8 = 26;
    /// Multi-time aggregation packet, 24-bit offsets.
    pub const MTAP24: u8 = 27;
    /// Fragmentation unit A.
    pub const FU_A: u8 = 28;
    /// Fragmentation unit B (interleaved mode only).
    pub const FU_B: u8 = 29;

    /// The type of a NAL unit from its first byte.
    pub fn of(header: u8) -> u8 {
        header & 0x1f
    }

    /// Whether this type carries a coded slice (VCL, types 1–5).
    pub fn is_vcl(t: u8) -> bool {
        (1..=5).contains(&t)
    }
}

/// Drop and repair counters, a plain struct for the caller's metrics. Each component counts
/// what it sees; [`Counters::add`] sums them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Access units delivered.
    pub access_units: u64,
    /// Access units dropped because a packet was lost or a fragment was missing (FU-A without
    /// start or end, sequence gap, truncated STAP-A).
    pub broken_access_units: u64,
    /// Packets that could not be parsed (empty, forbidden bit, truncated STAP-A or FU-A).
    pub malformed_packets: u64,
    /// Packets or NAL units of unsupported types (STAP-B, MTAP16/24, FU-B, types 0, 30, 31).
    pub unsupported_nal_types: u64,
    /// NAL units above the size cap (receive) or above the MTU in mode 0 (send).
    pub oversized_nals: u64,
    /// Packets with another payload type than the negotiated one.
    pub wrong_payload_type: u64,
    /// Duplicated or late (reordered past the access unit) packets.
    pub late_packets: u64,
    /// IDRs that lacked SPS or PPS with none known to insert: dropped.
    pub missing_parameter_sets: u64,
    /// IDRs that lacked SPS or PPS and got the latest known ones inserted.
    pub parameter_sets_inserted: u64,
    /// Non-IDR access units dropped while waiting for a keyframe.
    pub waiting_for_keyframe: u64,
}

impl Counters {
    /// Adds `other` to `self`, field by field.
    pub fn add(&mut self, other: &Counters) {
        self.access_units += other.access_units;
        self.broken_access_units += other.broken_access_units;
        self.malformed_packets += other.malformed_packets;
        self.unsupported_nal_types += other.unsupported_nal_types;
        self.oversized_nals += other.oversized_nals;
        self.wrong_payload_type += other.wrong_payload_type;
        self.late_packets += other.late_packets;
        self.missing_parameter_sets += other.missing_parameter_sets;
        self.parameter_sets_inserted += other.parameter_sets_inserted;
        self.waiting_for_keyframe += other.waiting_for_keyframe;
    }
}

/// One access unit (a coded picture with its parameter sets and SEI): NAL units without start
/// codes, in decoding order, and the RTP timestamp they share.
///
/// The buffers are reused: [`AccessUnit::clear`] keeps their capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessUnit {
    data: Vec<u8>,
    nals: Vec<(usize, usize)>,
    timestamp: u32,
}

impl AccessUnit {
    /// An empty access unit.
    pub fn new(timestamp: u32) -> Self {
        AccessUnit {
            timestamp,
            ..AccessUnit::default()
        }
    }

    /// Empties the access unit, keeping its buffers, and sets its timestamp.
    pub fn clear(&mut self, timestamp: u32) {
        self.data.clear();
        self.nals.clear();
        self.timestamp = timestamp;
    }

    /// Sets the RTP timestamp (a picture sent again at another time).
    pub fn set_timestamp(&mut self, timestamp: u32) {
        self.timestamp = timestamp;
    }

    /// Appends a whole NAL unit (header byte first, no start code).
    pub fn push_nal(&mut self, nal: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(nal);
        self.nals.push((start, self.data.len()));
    }

    /// Inserts a NAL unit before the one at `index` (at the end if `index` is past it).
    pub fn insert_nal(&mut self, index: usize, nal: &[u8]) {
        let Some(&(at, _)) = self.nals.get(index) else {
            self.push_nal(nal);
            return;
        };
        self.data.splice(at..at, nal.iter().copied());
        for r in self.nals.iter_mut().skip(index) {
            r.0 += nal.len();
            r.1 += nal.len();
        }
        self.nals.insert(index, (at, at + nal.len()));
    }

    /// Appends bytes to the last NAL unit (fragment reassembly).
    fn extend_last(&mut self, bytes: &[u8]) {
        if let Some(last) = self.nals.last_mut() {
            self.data.extend_from_slice(bytes);
            last.1 = self.data.len();
        }
    }

    /// Removes the last NAL unit (an unfinished fragment).
    fn pop_nal(&mut self) {
        if let Some((start, _)) = self.nals.pop() {
            self.data.truncate(start);
        }
    }

    /// Length of the last NAL unit.
    fn last_len(&self) -> usize {
        self.nals.last().map_or(0, |&(s, e)| e - s)
    }

    /// The RTP timestamp (90 kHz) of the access unit.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The NAL units, in order.
    pub fn nals(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.nals
            .iter()
            .map(|&(s, e)| self.data.get(s..e).unwrap_or_default())
    }

    /// The NAL unit at `index`.
    pub fn nal(&self, index: usize) -> Option<&[u8]> {
        let &(s, e) = self.nals.get(index)?;
        self.data.get(s..e)
    }

    /// Number of NAL units.
    pub fn len(&self) -> usize {
        self.nals.len()
    }

    /// Whether the access unit holds no NAL unit.
    pub fn is_empty(&self) -> bool {
        self.nals.is_empty()
    }

    /// Total bytes of NAL units (without any framing).
    pub fn byte_len(&self) -> usize {
        self.data.len()
    }

    /// Whether a NAL unit of type `t` is present.
    pub fn contains(&self, t: u8) -> bool {
        self.position(|n| n == t).is_some()
    }

    /// Index of the first NAL unit whose type satisfies `f`.
    pub fn position(&self, f: impl Fn(u8) -> bool) -> Option<usize> {
        self.nals()
            .position(|n| n.first().is_some_and(|&h| f(nal_type::of(h))))
    }

    /// Whether this is a keyframe: it holds an IDR slice.
    pub fn is_keyframe(&self) -> bool {
        self.contains(nal_type::IDR)
    }

    /// Appends the access unit to `out` in Annex-B form (4-byte start codes).
    pub fn write_annex_b(&self, out: &mut Vec<u8>) {
        for nal in self.nals() {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
}
