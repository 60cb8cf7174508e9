//! Active speaker detection from the RFC 6464 audio level header extension.
//!
//! Each audio packet's level (0 = loudest, 127 = silence, in -dBov) is sampled; every interval a
//! participant is "speaking" when at least `MIN_LOUD_FRACTION` of its packets were voice
//! ([`is_voice`]). Only changes are announced, as LiveKit's `SpeakersChanged` does.

use std::collections::HashMap;

use crate::media::level::is_voice;

/// Fraction of loud packets in an interval for a participant to count as speaking.
pub(crate) const MIN_LOUD_FRACTION: f32 = 0.3;

/// Per-room accumulator.
#[derive(Debug, Default)]
pub(crate) struct SpeakerDetector {
    window: HashMap<String, Window>,
    /// Last announced level of each speaking participant.
    speaking: HashMap<String, f32>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    packets: u32,
    loud: u32,
    linear_sum: f32,
}

/// A change to announce: participant sid, level (0..1), active.
pub(crate) type SpeakerChange = (String, f32, bool);

impl SpeakerDetector {
    /// Records one audio packet's level (`level` is the header's -dBov value, 0..=127).
    pub fn record(&mut self, participant_sid: &str, level: u8) {
        let w = self.window.entry(participant_sid.to_string()).or_default();
        w.packets += 1;
        if is_voice(level) {
            w.loud += 1;
            w.linear_sum += 10f32.powf(-(level as f32) / 20.0);
        }
    }

    /// Forgets a participant; returns a change if it was speaking.
    pub fn remove(&mut self, participant_sid: &str) -> Option<SpeakerChange> {
        self.window.remove(participant_sid);
        self.speaking
            .remove(participant_sid)
            .map(|_| (participant_sid.to_string(), 0.0, false))
    }

    /// Closes the interval: returns who started or stopped speaking, loudest first.
    pub fn tick(&mut self) -> Vec<SpeakerChange> {
        let mut changes = Vec::new();
        let mut now_speaking = HashMap::new();
        for (sid, w) in self.window.drain() {
            if w.packets > 0 && (w.loud as f32) >= MIN_LOUD_FRACTION * w.packets as f32 {
                let level = (w.linear_sum / w.loud.max(1) as f32).clamp(0.0, 1.0);
                now_speaking.insert(sid, level);
            }
        }
        for (sid, level) in &now_speaking {
            if !self.speaking.contains_key(sid) {
                changes.push((sid.clone(), *level, true));
            }
        }
        for sid in self.speaking.keys() {
            if !now_speaking.contains_key(sid) {
                changes.push((sid.clone(), 0.0, false));
            }
        }
        self.speaking = now_speaking;
        changes.sort_by(|a, b| b.1.total_cmp(&a.1));
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_stops_speaking() {
        let mut d = SpeakerDetector::default();
        for _ in 0..20 {
            d.record("PA_a", 10);
            d.record("PA_b", 127);
        }
        let c = d.tick();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].0.as_str(), c[0].2), ("PA_a", true));
        assert!(c[0].1 > 0.2);
        // Still speaking: no change announced.
        for _ in 0..20 {
            d.record("PA_a", 12);
        }
        assert!(d.tick().is_empty());
        // Silence: stops.
        for _ in 0..20 {
            d.record("PA_a", 120);
        }
        assert_eq!(d.tick(), vec![("PA_a".to_string(), 0.0, false)]);
        // No packets at all also ends nothing new.
        assert!(d.tick().is_empty());
    }
}
