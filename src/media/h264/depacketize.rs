//! RTP → access units (RFC 6184 §5.6–5.8): single NAL unit packets, STAP-A and FU-A, i.e.
//! packetization modes 0 and 1. Interleaved-mode structures (STAP-B, MTAP, FU-B) are dropped.
//!
//! An access unit ends at the marker bit or when the timestamp changes. Any sequence gap
//! inside it, a fragment without its start or end, or a truncated aggregate marks it broken:
//! it is dropped and counted, and the stream then waits for the next IDR (dropping the
//! predicted pictures a decoder could not decode anyway) and asks for one
//! ([`Depacketizer::take_keyframe_request`]).
//!
//! The latest SPS and PPS are kept and inserted before an IDR that comes without them.

use std::collections::VecDeque;

use super::sps::Sps;
use super::{nal_type, AccessUnit, Counters};
use crate::media::rtp::RtpPacket;

/// Settings of a [`Depacketizer`].
#[derive(Debug, Clone)]
pub struct DepacketizerConfig {
    /// The negotiated payload type; other payload types are dropped and counted. `None`
    /// accepts any.
    pub payload_type: Option<u8>,
    /// Largest NAL unit accepted, in bytes; larger ones break their access unit.
    pub max_nal_size: usize,
    /// Largest access unit accepted, in bytes.
    pub max_access_unit_size: usize,
    /// Drop non-IDR pictures after a loss (and at the start) until an IDR arrives.
    pub wait_for_keyframe: bool,
}

impl Default for DepacketizerConfig {
    fn default() -> Self {
        DepacketizerConfig {
            payload_type: None,
            max_nal_size: 512 * 1024,
            max_access_unit_size: 2 * 1024 * 1024,
            wait_for_keyframe: true,
        }
    }
}

/// Reassembles the access units of one RTP stream (one SSRC).
///
/// Feed packets in arrival order with [`Depacketizer::push`], then drain
/// [`Depacketizer::pop`]; hand finished access units back with [`Depacketizer::recycle`] to
/// reuse their buffers.
#[derive(Debug)]
pub struct Depacketizer {
    cfg: DepacketizerConfig,
    building: AccessUnit,
    /// `building` holds at least one packet's worth (its timestamp is meaningful).
    started: bool,
    broken: bool,
    /// The last NAL unit of `building` is an unfinished FU-A.
    in_fragment: bool,
    last_seq: Option<u16>,
    waiting_keyframe: bool,
    keyframe_request: bool,
    sps: Vec<u8>,
    pps: Vec<u8>,
    sps_info: Option<Sps>,
    ready: VecDeque<AccessUnit>,
    spare: Vec<AccessUnit>,
    counters: Counters,
}

impl Depacketizer {
    /// A depacketizer waiting for its first packet (and, if configured, its first IDR).
    pub fn new(cfg: DepacketizerConfig) -> Self {
        Depacketizer {
            waiting_keyframe: cfg.wait_for_keyframe,
            cfg,
            building: AccessUnit::default(),
            started: false,
            broken: false,
            in_fragment: false,
            last_seq: None,
            keyframe_request: false,
            sps: Vec::new(),
            pps: Vec::new(),
            sps_info: None,
            ready: VecDeque::new(),
            spare: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Takes one RTP packet of the stream.
    pub fn push(&mut self, pkt: &RtpPacket<'_>) {
        if self.cfg.payload_type.is_some_and(|pt| pt != pkt.pt()) {
            // Not our stream: its sequence number is not ours either, so a real packet it
            // replaced shows up as a gap.
            self.counters.wrong_payload_type += 1;
            return;
        }
        let seq = pkt.seq();
        let mut lost = false;
        if let Some(last) = self.last_seq {
            let d = seq.wrapping_sub(last);
            if d == 0 || d >= 0x8000 {
                self.counters.late_packets += 1;
                return;
            }
            lost = d > 1;
        }
        self.last_seq = Some(seq);
        if self.started && pkt.timestamp() != self.building.timestamp() {
            // The previous access unit lost its marker packet.
            self.broken = true;
            self.finish();
        }
        if !self.started {
            self.building.clear(pkt.timestamp());
            self.started = true;
        }
        if lost {
            self.broken = true;
        }
        self.payload(pkt.payload());
        if self.building.byte_len() > self.cfg.max_access_unit_size {
            self.counters.oversized_nals += 1;
            self.broken = true;
        }
        if pkt.marker() {
            self.finish();
        }
    }

    /// Ends the access unit in progress (end of stream, or a source that sends no marker).
    pub fn flush(&mut self) {
        if self.started {
            self.finish();
        }
    }

    /// The next finished access unit, in order.
    pub fn pop(&mut self) -> Option<AccessUnit> {
        self.ready.pop_front()
    }

    /// Gives an access unit's buffers back for reuse.
    pub fn recycle(&mut self, au: AccessUnit) {
        if self.spare.len() < 4 {
            self.spare.push(au);
        }
    }

    /// True once after the stream started waiting for a keyframe (loss, missing parameter
    /// sets) and again after each picture dropped while waiting: the caller should send a
    /// PLI/FIR, through a [`super::KeyframeLimiter`].
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_request)
    }

    /// Whether non-IDR pictures are being dropped until the next IDR.
    pub fn is_waiting_for_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// The latest SPS seen, parsed (resolution, profile-level-id).
    pub fn sps(&self) -> Option<&Sps> {
        self.sps_info.as_ref()
    }

    /// The drop and repair counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    fn payload(&mut self, payload: &[u8]) {
        let Some(&header) = payload.first() else {
            self.counters.malformed_packets += 1;
            self.broken = true;
            return;
        };
        if header & 0x80 != 0 {
            // forbidden_zero_bit: the sender flags a corrupted unit (RFC 6184 §5.3).
            self.counters.malformed_packets += 1;
            self.broken = true;
            return;
        }
        let t = nal_type::of(header);
        if t != nal_type::FU_A && self.in_fragment {
            // A fragmented NAL unit never got its end.
            self.drop_fragment();
        }
        match t {
            1..=23 => self.push_nal(payload),
            nal_type::STAP_A => self.stap_a(payload.get(1..).unwrap_or_default()),
            nal_type::FU_A => self.fu_a(header, payload.get(1..).unwrap_or_default()),
            nal_type::STAP_B | nal_type::MTAP16 | nal_type::MTAP24 | nal_type::FU_B => {
                // Interleaved mode, never negotiated: the picture data in it is lost.
                self.counters.unsupported_nal_types += 1;
                self.broken = true;
            }
            _ => self.counters.unsupported_nal_types += 1, // 0, 30, 31: unspecified
        }
    }

    fn push_nal(&mut self, nal: &[u8]) {
        let Some(&h) = nal.first() else {
            return;
        };
        if matches!(nal_type::of(h), 0 | 24..=31) {
            // Inside an aggregate, only real NAL unit types are allowed.
            self.counters.unsupported_nal_types += 1;
            return;
        }
        if nal.len() > self.cfg.max_nal_size {
            self.counters.oversized_nals += 1;
            self.broken = true;
            return;
        }
        self.building.push_nal(nal);
    }

    /// STAP-A (RFC 6184 §5.7.1): 16-bit size, NAL unit, repeated.
    fn stap_a(&mut self, mut rest: &[u8]) {
        if rest.is_empty() {
            self.counters.malformed_packets += 1;
            self.broken = true;
        }
        while !rest.is_empty() {
            let nal = rest.get(..2).and_then(|s| {
                let len = usize::from(u16::from_be_bytes([s[0], s[1]]));
                rest.get(2..2 + len)
                    .filter(|_| len > 0)
                    .map(|n| (n, 2 + len))
            });
            let Some((nal, used)) = nal else {
                self.counters.malformed_packets += 1;
                self.broken = true;
                return;
            };
            self.push_nal(nal);
            rest = rest.get(used..).unwrap_or_default();
        }
    }

    /// FU-A (RFC 6184 §5.8): indicator (F, NRI, 28), header (S, E, R, type), fragment.
    fn fu_a(&mut self, indicator: u8, rest: &[u8]) {
        let Some((&fu, fragment)) = rest.split_first() else {
            self.counters.malformed_packets += 1;
            self.broken = true;
            return;
        };
        let start = fu & 0x80 != 0;
        let end = fu & 0x40 != 0;
        if start {
            if self.in_fragment {
                self.drop_fragment();
            }
            let nal_header = (indicator & 0xe0) | (fu & 0x1f);
            if matches!(fu & 0x1f, 0 | 24..=31) {
                self.counters.unsupported_nal_types += 1;
                self.broken = true;
                return;
            }
            self.building.push_nal(&[nal_header]);
            self.in_fragment = true;
        } else if !self.in_fragment {
            // Its start was lost: the loss already broke the access unit (or this is a stray
            // fragment); either way there is nothing to append to.
            self.broken = true;
            return;
        }
        self.building.extend_last(fragment);
        if self.building.last_len() > self.cfg.max_nal_size {
            self.counters.oversized_nals += 1;
            self.broken = true;
            self.drop_fragment();
            return;
        }
        if end {
            self.in_fragment = false;
        }
    }

    fn drop_fragment(&mut self) {
        self.building.pop_nal();
        self.in_fragment = false;
        self.broken = true;
    }

    fn finish(&mut self) {
        if self.in_fragment {
            self.drop_fragment();
        }
        self.started = false;
        let next = self.spare.pop().unwrap_or_default();
        let mut au = std::mem::replace(&mut self.building, next);
        if std::mem::take(&mut self.broken) {
            self.counters.broken_access_units += 1;
            self.start_waiting();
            self.recycle(au);
            return;
        }
        if au.is_empty() {
            self.recycle(au);
            return;
        }
        self.learn_parameter_sets(&au);
        let has_vcl = au.position(nal_type::is_vcl).is_some();
        if au.is_keyframe() {
            if !self.complete_parameter_sets(&mut au) {
                self.counters.missing_parameter_sets += 1;
                self.start_waiting();
                self.recycle(au);
                return;
            }
            self.waiting_keyframe = false;
        } else if has_vcl && self.waiting_keyframe {
            self.counters.waiting_for_keyframe += 1;
            // Asked again for every dropped picture: the caller's rate limiter turns this
            // into a periodic request while the keyframe does not come.
            self.keyframe_request = true;
            self.recycle(au);
            return;
        }
        self.counters.access_units += 1;
        self.ready.push_back(au);
    }

    fn start_waiting(&mut self) {
        if self.cfg.wait_for_keyframe {
            self.waiting_keyframe = true;
        }
        self.keyframe_request = true;
    }

    fn learn_parameter_sets(&mut self, au: &AccessUnit) {
        for nal in au.nals() {
            match nal.first().map(|&h| nal_type::of(h)) {
                Some(nal_type::SPS) if nal != self.sps.as_slice() => {
                    self.sps.clear();
                    self.sps.extend_from_slice(nal);
                    match Sps::parse(nal) {
                        Ok(sps) => self.sps_info = Some(sps),
                        Err(err) => debug!(%err, "unparsable SPS forwarded as is"),
                    }
                }
                Some(nal_type::PPS) if nal != self.pps.as_slice() => {
                    self.pps.clear();
                    self.pps.extend_from_slice(nal);
                }
                _ => {}
            }
        }
    }

    /// Puts the latest SPS (before the first PPS or slice) and PPS (before the first slice)
    /// into an IDR access unit that lacks them. False if one is missing and unknown.
    fn complete_parameter_sets(&mut self, au: &mut AccessUnit) -> bool {
        let has_sps = au.contains(nal_type::SPS);
        let has_pps = au.contains(nal_type::PPS);
        if has_sps && has_pps {
            return true;
        }
        if (!has_sps && self.sps.is_empty()) || (!has_pps && self.pps.is_empty()) {
            return false;
        }
        if !has_sps {
            let at = au
                .position(|t| t == nal_type::PPS || nal_type::is_vcl(t))
                .unwrap_or(0);
            au.insert_nal(at, &self.sps);
        }
        if !has_pps {
            let at = au.position(nal_type::is_vcl).unwrap_or(0);
            au.insert_nal(at, &self.pps);
        }
        self.counters.parameter_sets_inserted += 1;
        true
    }
}
