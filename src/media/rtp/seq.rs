//! Sequence number extension to 64 bits with source validation (RFC 3550 Appendix A.1:
//! probation, `MAX_DROPOUT`, `MAX_MISORDER`) and 32-bit RTP timestamp unwrapping.

/// Sequential packets needed before a new source is considered valid (RFC 3550 A.1).
pub const MIN_SEQUENTIAL: u16 = 2;
/// Largest forward jump still taken as packet loss rather than a restart (RFC 3550 A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// Largest backward step still taken as reordering rather than a restart (RFC 3550 A.1).
pub const MAX_MISORDER: u16 = 100;

const SEQ_MOD: u64 = 1 << 16;

/// What [`SequenceTracker::update`] made of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqOutcome {
    /// The source is still on probation; `ext` is its tentative extended number.
    Probation {
        /// Tentative extended sequence number.
        ext: u64,
    },
    /// In order (possibly after a gap): the new highest extended sequence number.
    InOrder {
        /// Extended sequence number.
        ext: u64,
    },
    /// Older than the highest seen (reordered or duplicated), within `MAX_MISORDER`.
    Older {
        /// Extended sequence number.
        ext: u64,
    },
    /// Two sequential packets after a large jump: the sender restarted its numbering. The
    /// extension starts over at `ext` and callers should reset dependent state.
    Restarted {
        /// Extended sequence number in the new numbering.
        ext: u64,
    },
    /// A large jump not (yet) confirmed by a following packet, or a packet from before the
    /// first one received: drop it.
    Invalid,
}

impl SeqOutcome {
    /// The extended sequence number, unless the packet is [`SeqOutcome::Invalid`].
    pub fn ext(&self) -> Option<u64> {
        match *self {
            SeqOutcome::Probation { ext }
            | SeqOutcome::InOrder { ext }
            | SeqOutcome::Older { ext }
            | SeqOutcome::Restarted { ext } => Some(ext),
            SeqOutcome::Invalid => None,
        }
    }
}

/// Extends 16-bit RTP sequence numbers to 64 bits and validates the source (RFC 3550 A.1).
///
/// Extended numbers start at the first sequence number seen (cycle 0), so they are never
/// below 65536 only while the first cycle lasts.
#[derive(Debug, Clone)]
pub struct SequenceTracker {
    max_seq: u16,
    /// Wrap count times 2^16.
    cycles: u64,
    base_seq: u64,
    /// The sequence number that would confirm a restart, after a large jump.
    bad_seq: Option<u16>,
    probation: u16,
    started: bool,
}

impl Default for SequenceTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SequenceTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> Self {
        SequenceTracker {
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: None,
            probation: MIN_SEQUENTIAL,
            started: false,
        }
    }

    /// Feeds one received sequence number.
    pub fn update(&mut self, seq: u16) -> SeqOutcome {
        if !self.started {
            self.started = true;
            self.init(seq);
            self.probation = MIN_SEQUENTIAL - 1;
            return SeqOutcome::Probation {
                ext: self.extended_max(),
            };
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if udelta == 1 {
                self.probation -= 1;
                self.advance(seq);
                if self.probation == 0 {
                    return SeqOutcome::InOrder {
                        ext: self.extended_max(),
                    };
                }
            } else {
                // Out of sequence: probation starts over from this packet.
                self.probation = MIN_SEQUENTIAL - 1;
                self.init(seq);
            }
            return SeqOutcome::Probation {
                ext: self.extended_max(),
            };
        }
        if udelta == 0 {
            return SeqOutcome::Older {
                ext: self.extended_max(),
            };
        }
        if udelta < MAX_DROPOUT {
            self.advance(seq);
            return SeqOutcome::InOrder {
                ext: self.extended_max(),
            };
        }
        if u64::from(udelta) <= SEQ_MOD - u64::from(MAX_MISORDER) {
            // A very large jump: a restart if the next packet follows it.
            if self.bad_seq == Some(seq) {
                self.init(seq);
                self.probation = 0;
                return SeqOutcome::Restarted {
                    ext: self.extended_max(),
                };
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            return SeqOutcome::Invalid;
        }
        // Reordered or duplicate, up to MAX_MISORDER behind.
        let back = u64::from(self.max_seq.wrapping_sub(seq));
        match self.extended_max().checked_sub(back) {
            Some(ext) if ext >= self.base_seq => SeqOutcome::Older { ext },
            _ => SeqOutcome::Invalid,
        }
    }

    fn init(&mut self, seq: u16) {
        self.cycles = 0;
        self.max_seq = seq;
        self.base_seq = u64::from(seq);
        self.bad_seq = None;
    }

    fn advance(&mut self, seq: u16) {
        if seq < self.max_seq {
            self.cycles += SEQ_MOD;
        }
        self.max_seq = seq;
    }

    /// The highest extended sequence number seen (RFC 3550 A.3 `extended_max`).
    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// The first extended sequence number of the current numbering (A.3 `base_seq`).
    pub fn base(&self) -> u64 {
        self.base_seq
    }

    /// Whether the source passed probation.
    pub fn is_valid(&self) -> bool {
        self.started && self.probation == 0
    }
}

/// Unwraps 32-bit RTP timestamps into a monotonic-ish 64-bit timeline.
///
/// Each timestamp is placed within ±2^31 of the previous one. The first timestamp is placed
/// in cycle 1 (`2^32 + ts`) so that packets reordered across an early wrap stay positive.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimestampUnwrapper {
    last: Option<u64>,
}

impl TimestampUnwrapper {
    /// An unwrapper that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unwraps `ts` relative to the previous timestamp and remembers it.
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        let v = self.peek(ts);
        self.last = Some(v);
        v
    }

    /// Unwraps `ts` without remembering it.
    pub fn peek(&self, ts: u32) -> u64 {
        match self.last {
            None => (1 << 32) + u64::from(ts),
            Some(last) => {
                let delta = ts.wrapping_sub(last as u32) as i32;
                last.saturating_add_signed(i64::from(delta))
            }
        }
    }

    /// Forgets the previous timestamp.
    pub fn reset(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid_at(start: u16) -> SequenceTracker {
        let mut t = SequenceTracker::new();
        assert!(matches!(t.update(start), SeqOutcome::Probation { .. }));
        assert!(matches!(
            t.update(start.wrapping_add(1)),
            SeqOutcome::InOrder { .. }
        ));
        t
    }

    #[test]
    fn probation_then_valid() {
        let mut t = SequenceTracker::new();
        assert_eq!(t.update(100), SeqOutcome::Probation { ext: 100 });
        assert!(!t.is_valid());
        assert_eq!(t.update(101), SeqOutcome::InOrder { ext: 101 });
        assert!(t.is_valid());
        assert_eq!(t.base(), 100);
    }

    #[test]
    fn probation_restarts_when_out_of_sequence() {
        let mut t = SequenceTracker::new();
        t.update(100);
        assert_eq!(t.update(500), SeqOutcome::Probation { ext: 500 });
        assert_eq!(t.update(501), SeqOutcome::InOrder { ext: 501 });
        assert_eq!(t.base(), 500);
    }

    #[test]
    fn wraps_forward_and_reorders_across_the_wrap() {
        let mut t = valid_at(65533);
        assert_eq!(t.update(65535), SeqOutcome::InOrder { ext: 65535 });
        assert_eq!(t.update(1), SeqOutcome::InOrder { ext: 65537 });
        assert_eq!(t.update(0), SeqOutcome::Older { ext: 65536 });
        assert_eq!(t.update(65535), SeqOutcome::Older { ext: 65535 });
        assert_eq!(t.update(2), SeqOutcome::InOrder { ext: 65538 });
        assert_eq!(t.update(2), SeqOutcome::Older { ext: 65538 });
    }

    #[test]
    fn gap_within_dropout_is_loss() {
        let mut t = valid_at(10);
        assert_eq!(t.update(11 + 2999), SeqOutcome::InOrder { ext: 3010 });
    }

    #[test]
    fn large_jump_needs_confirmation() {
        let mut t = valid_at(10);
        assert_eq!(t.update(30000), SeqOutcome::Invalid);
        assert_eq!(t.update(12), SeqOutcome::InOrder { ext: 12 });
        assert_eq!(t.update(40000), SeqOutcome::Invalid);
        assert_eq!(t.update(40001), SeqOutcome::Restarted { ext: 40001 });
        assert_eq!(t.update(40002), SeqOutcome::InOrder { ext: 40002 });
    }

    #[test]
    fn older_than_first_packet_is_invalid() {
        let mut t = valid_at(5);
        assert_eq!(t.update(3), SeqOutcome::Invalid);
        assert_eq!(t.update(5), SeqOutcome::Older { ext: 5 });
    }

    #[test]
    fn exhaustive_single_step_around_every_start() {
        // From every starting point, a +1 step is in order and extends by exactly one.
        for start in 0..=u16::MAX {
            let mut t = valid_at(start);
            let before = t.extended_max();
            assert_eq!(
                t.update(start.wrapping_add(2)),
                SeqOutcome::InOrder { ext: before + 1 }
            );
        }
    }

    #[test]
    fn timestamps_unwrap() {
        let mut u = TimestampUnwrapper::new();
        let a = u.unwrap(u32::MAX - 159);
        let b = u.unwrap(0);
        assert_eq!(b - a, 160);
        let c = u.unwrap(u32::MAX - 319); // reordered across the wrap
        assert_eq!(a - c, 160);
        assert_eq!(u.unwrap(160), a + 320);
        let mut u = TimestampUnwrapper::new();
        let first = u.unwrap(10);
        assert_eq!(u.unwrap(u32::MAX), first - 11);
    }

    proptest! {
        /// Any walk of steps within (−MAX_MISORDER, MAX_DROPOUT) keeps the extended number
        /// equal to the true 64-bit counter.
        #[test]
        fn extension_tracks_true_counter(start in any::<u16>(),
                                         steps in proptest::collection::vec(-50i64..2000, 1..400)) {
            let mut t = valid_at(start);
            let mut truth = u64::from(start) + 1;
            let mut max = truth;
            for s in steps {
                let next = truth as i64 + s;
                if next < u64::from(start) as i64 || (max as i64 - next) >= i64::from(MAX_MISORDER) {
                    continue;
                }
                truth = next as u64;
                let out = t.update(truth as u16);
                prop_assert_eq!(out.ext(), Some(truth));
                max = max.max(truth);
                prop_assert_eq!(t.extended_max(), max);
            }
        }

        /// Timestamp unwrapping inverts truncation for steps under 2^31.
        #[test]
        fn unwrap_tracks_true_timeline(start in any::<u32>(),
                                       steps in proptest::collection::vec(-100_000i64..1_000_000, 1..400)) {
            let mut u = TimestampUnwrapper::new();
            let mut truth = (1i64 << 32) + i64::from(start);
            prop_assert_eq!(u.unwrap(start), truth as u64);
            for s in steps {
                truth += s;
                prop_assert_eq!(u.unwrap(truth as u32), truth as u64);
            }
        }
    }
}
