//! Which room participant's video a room system sees: the active speaker, with hysteresis, sans-IO.
//!
//! Fed with the room's `SpeakersChanged` updates (loudest first) and the set of participants that
//! publish a forwardable video track; answers which one to show. Rules:
//! - never the device's own participant (it would see itself);
//! - a new speaker takes over only after speaking for [`SpeakerPolicy::switch_after`], and not
//!   sooner than [`SpeakerPolicy::min_hold`] after the last switch (no flapping on a cough);
//! - when the shown participant stops publishing video or leaves, the most recent other speaker
//!   with video (or any participant with video) takes over at once;
//! - with nobody to show, nothing (the caller then sends the "no video" picture).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A change of what the device is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// This participant's video.
    Participant(String),
    /// Nobody: the "no video" picture.
    NoVideo,
}

/// Timing of the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerPolicy {
    /// How long a new speaker must be active before the video switches to them.
    pub switch_after: Duration,
    /// The least time between two switches.
    pub min_hold: Duration,
}

impl Default for SpeakerPolicy {
    fn default() -> Self {
        SpeakerPolicy {
            switch_after: Duration::from_millis(1500),
            min_hold: Duration::from_secs(3),
        }
    }
}

/// The selector of one call's video source.
#[derive(Debug)]
pub struct SpeakerSelector {
    policy: SpeakerPolicy,
    /// Our own participant sid (never shown).
    me: String,
    /// Participants with a forwardable video track, and when each last spoke.
    with_video: HashMap<String, Option<Instant>>,
    /// Currently active speakers and since when.
    active: HashMap<String, Instant>,
    shown: Option<String>,
    switched_at: Option<Instant>,
}

impl SpeakerSelector {
    /// A selector for the call whose own participant sid is `me`.
    pub fn new(me: impl Into<String>, policy: SpeakerPolicy) -> Self {
        SpeakerSelector {
            policy,
            me: me.into(),
            with_video: HashMap::new(),
            active: HashMap::new(),
            shown: None,
            switched_at: None,
        }
    }

    /// The participant shown now.
    pub fn shown(&self) -> Option<&str> {
        self.shown.as_deref()
    }

    /// A participant started (`true`) or stopped publishing forwardable video.
    pub fn set_video(&mut self, now: Instant, sid: &str, has_video: bool) -> Option<Shown> {
        if sid == self.me {
            return None;
        }
        if has_video {
            self.with_video.entry(sid.to_string()).or_insert(None);
        } else {
            self.with_video.remove(sid);
        }
        self.decide(now)
    }

    /// A `SpeakersChanged` update: `(sid, active)` for each participant it names.
    pub fn speakers(
        &mut self,
        now: Instant,
        changes: impl IntoIterator<Item = (String, bool)>,
    ) -> Option<Shown> {
        for (sid, active) in changes {
            if active {
                self.active.entry(sid.clone()).or_insert(now);
                if let Some(last) = self.with_video.get_mut(&sid) {
                    *last = Some(now);
                }
            } else {
                self.active.remove(&sid);
            }
        }
        self.decide(now)
    }

    /// Re-evaluates as time passes (a speaker may have talked long enough by now). Every
    /// method returns what to show when it changes.
    pub fn tick(&mut self, now: Instant) -> Option<Shown> {
        for (sid, since) in &self.active {
            if let Some(last) = self.with_video.get_mut(sid) {
                *last = Some(now.max(*since));
            }
        }
        self.decide(now)
    }

    /// When [`SpeakerSelector::tick`] may next change something.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hold_end = self.switched_at.map(|t| t + self.policy.min_hold);
        self.active
            .iter()
            .filter(|(sid, _)| Some(sid.as_str()) != self.shown.as_deref())
            .filter(|(sid, _)| self.with_video.contains_key(*sid))
            .map(|(_, since)| {
                let ready = *since + self.policy.switch_after;
                hold_end.map_or(ready, |h| ready.max(h))
            })
            .min()
    }

    fn decide(&mut self, now: Instant) -> Option<Shown> {
        let shown_ok = self
            .shown
            .as_ref()
            .is_some_and(|s| self.with_video.contains_key(s));
        let candidate = if !shown_ok {
            // Nothing (valid) shown: the most recent speaker with video, else anyone with video.
            self.with_video
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(sid, _)| sid.clone())
        } else {
            let held = self
                .switched_at
                .is_some_and(|t| now.saturating_duration_since(t) < self.policy.min_hold);
            if held {
                None
            } else {
                // The longest-speaking active participant with video who has spoken long enough.
                self.active
                    .iter()
                    .filter(|(sid, _)| Some(sid.as_str()) != self.shown.as_deref())
                    .filter(|(sid, _)| self.with_video.contains_key(*sid))
                    .filter(|(_, since)| {
                        now.saturating_duration_since(**since) >= self.policy.switch_after
                    })
                    .min_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.cmp(b.0)))
                    .map(|(sid, _)| sid.clone())
            }
        };
        match candidate {
            Some(c) if Some(&c) != self.shown.as_ref() => {
                self.shown = Some(c.clone());
                self.switched_at = Some(now);
                Some(Shown::Participant(c))
            }
            None if !shown_ok && self.shown.is_some() => {
                self.shown = None;
                Some(Shown::NoVideo)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn on(sid: &str) -> (String, bool) {
        (sid.to_string(), true)
    }

    fn off(sid: &str) -> (String, bool) {
        (sid.to_string(), false)
    }

    #[test]
    fn first_publisher_is_shown_then_a_sustained_speaker_takes_over() {
        let t0 = Instant::now();
        let mut s = SpeakerSelector::new("PA_me", SpeakerPolicy::default());
        assert_eq!(
            s.set_video(t0, "PA_a", true),
            Some(Shown::Participant("PA_a".into()))
        );
        assert_eq!(s.set_video(t0, "PA_b", true), None, "a is shown");
        // b speaks: not yet (switch_after), and a was just switched to (min_hold).
        assert_eq!(s.speakers(ms(t0, 100), [on("PA_b")]), None);
        assert_eq!(
            s.tick(ms(t0, 1700)),
            None,
            "held for 3 s after the first switch"
        );
        assert_eq!(s.poll_timeout(), Some(ms(t0, 3000)));
        assert_eq!(
            s.tick(ms(t0, 3000)),
            Some(Shown::Participant("PA_b".into()))
        );
        assert_eq!(s.shown(), Some("PA_b"));
    }

    #[test]
    fn a_cough_does_not_switch_and_the_device_never_sees_itself() {
        let t0 = Instant::now();
        let mut s = SpeakerSelector::new("PA_me", SpeakerPolicy::default());
        s.set_video(t0, "PA_a", true);
        s.set_video(t0, "PA_b", true);
        assert_eq!(s.set_video(t0, "PA_me", true), None);
        // Long after the hold: b coughs for 500 ms.
        assert_eq!(s.speakers(ms(t0, 10_000), [on("PA_b")]), None);
        assert_eq!(s.speakers(ms(t0, 10_500), [off("PA_b")]), None);
        assert_eq!(s.tick(ms(t0, 13_000)), None);
        // The device itself talks for long: still a.
        assert_eq!(s.speakers(ms(t0, 14_000), [on("PA_me")]), None);
        assert_eq!(s.tick(ms(t0, 20_000)), None);
        assert_eq!(s.shown(), Some("PA_a"));
    }

    #[test]
    fn when_the_shown_one_leaves_the_last_speaker_takes_over_at_once() {
        let t0 = Instant::now();
        let mut s = SpeakerSelector::new("PA_me", SpeakerPolicy::default());
        s.set_video(t0, "PA_a", true);
        s.set_video(t0, "PA_b", true);
        s.set_video(t0, "PA_c", true);
        s.speakers(ms(t0, 5000), [on("PA_c")]);
        s.speakers(ms(t0, 5200), [off("PA_c")]);
        // a unpublishes: c spoke last, even inside min_hold.
        assert_eq!(
            s.set_video(ms(t0, 5300), "PA_a", false),
            Some(Shown::Participant("PA_c".into()))
        );
        // Everyone gone: nothing to show.
        s.set_video(ms(t0, 6000), "PA_b", false);
        assert_eq!(
            s.set_video(ms(t0, 6000), "PA_c", false),
            Some(Shown::NoVideo)
        );
        assert_eq!(s.shown(), None);
    }
}
