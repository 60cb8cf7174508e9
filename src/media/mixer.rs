//! The audio mixer of one call leg: N inputs at one PCM rate, 20 ms frames, summed with
//! saturation, with mix-minus (a listener does not hear itself).
//!
//! Each input has a small ring of frames between its producer and the mixer's tick (a call
//! feeds it from a jitter buffer just before each tick, so the ring rarely holds more than one):
//!
//! ```text
//!  push(id, frame) ──▶ [ f0 f1 f2 f3 f4 ]  ring of RING_FRAMES
//!                        │  full: the oldest frame is dropped (overflow, counted)
//!                        ▼
//!  tick() ─────▶ takes one frame per *playing* input; an input starts playing once it holds
//!                START_FRAMES frames, and stops (underrun, counted) when it has none at a
//!                tick: it is silent until it has START_FRAMES frames again
//!  output(exclude) ─▶ Σ inputs − excluded input, saturated to i16
//! ```
//!
//! [`Mixer::mix`] is `tick` then `output`. To make several mix-minus outputs of the same instant
//! (one per SIP participant of a bridge), call [`Mixer::tick`] once and [`Mixer::output`] for each.
//!
//! The sum is kept in `i32`: with at most [`MAX_INPUTS`] inputs it cannot overflow, and the
//! saturation happens once, after the excluded input is taken out, so mix-minus is exact.

use crate::media::codec::{samples_per_frame, FRAME_MS};

/// Frames an input buffers at most; pushing another drops the oldest.
pub const RING_FRAMES: usize = 5;

/// Frames an input must hold before it is mixed (and again after an underrun). One: the
/// call's inputs come out of jitter buffers, one frame just before each tick.
pub const START_FRAMES: usize = 1;

/// The most inputs a mixer takes (keeps the `i32` sum far from overflow).
pub const MAX_INPUTS: usize = 256;

/// Errors of the mixer; all are misuse by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MixerError {
    /// The PCM rate is not a positive whole number of samples per millisecond up to 48 kHz.
    #[error("the mixer cannot run at {0} Hz")]
    UnsupportedRate(u32),
    /// `push` or `remove_input` named an input that was never added (or was removed).
    #[error("no such mixer input")]
    UnknownInput,
    /// `add_input` named an input that is already there.
    #[error("mixer input already present")]
    DuplicateInput,
    /// `add_input` past [`MAX_INPUTS`].
    #[error("the mixer already has {MAX_INPUTS} inputs")]
    TooManyInputs,
    /// A pushed frame was not one 20 ms frame at the mixer's rate.
    #[error("frame of {got} samples, the mixer takes {expected}")]
    FrameSize {
        /// Samples per frame at the mixer's rate.
        expected: usize,
        /// Samples pushed.
        got: usize,
    },
}

/// Counters of a mixer or of one of its inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixerStats {
    /// Frames pushed.
    pub pushed: u64,
    /// Frames mixed.
    pub mixed: u64,
    /// Ticks at which a playing input had no frame (it then waits to refill).
    pub underruns: u64,
    /// Frames dropped because a ring was full.
    pub overflows: u64,
}

impl MixerStats {
    fn add(&mut self, other: &MixerStats) {
        self.pushed += other.pushed;
        self.mixed += other.mixed;
        self.underruns += other.underruns;
        self.overflows += other.overflows;
    }
}

/// One input: its ring and its frame of the current tick.
#[derive(Debug)]
struct Input<K> {
    id: K,
    /// RING_FRAMES frames back to back.
    ring: Vec<i16>,
    /// Index of the oldest buffered frame.
    head: usize,
    /// Frames buffered.
    len: usize,
    /// Whether the input is being mixed (it reached START_FRAMES and has not run dry since).
    playing: bool,
    /// The frame taken at the last tick, if any.
    current: Vec<i16>,
    has_current: bool,
    stats: MixerStats,
}

/// Mixes the 20 ms frames of N inputs at one PCM rate. `K` names the inputs (a participant or
/// track id).
#[derive(Debug)]
pub struct Mixer<K> {
    frame_len: usize,
    inputs: Vec<Input<K>>,
    /// Stats of removed inputs, so that the totals never go backwards.
    removed: MixerStats,
    /// The sum of the inputs' current frames.
    sum: Vec<i32>,
    /// The last output.
    out: Vec<i16>,
}

impl<K: Copy + Eq> Mixer<K> {
    /// A mixer of 20 ms frames at `pcm_rate` Hz (e.g. 8000: 160 samples per frame).
    pub fn new(pcm_rate: u32) -> Result<Self, MixerError> {
        if pcm_rate == 0 || pcm_rate % 1000 != 0 || pcm_rate > 48000 {
            return Err(MixerError::UnsupportedRate(pcm_rate));
        }
        let frame_len = samples_per_frame(pcm_rate, FRAME_MS);
        Ok(Self {
            frame_len,
            inputs: Vec::new(),
            removed: MixerStats::default(),
            sum: vec![0; frame_len],
            out: vec![0; frame_len],
        })
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// The number of inputs.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Adds an input (allocates its ring; nothing is allocated afterwards).
    pub fn add_input(&mut self, id: K) -> Result<(), MixerError> {
        if self.inputs.iter().any(|i| i.id == id) {
            return Err(MixerError::DuplicateInput);
        }
        if self.inputs.len() >= MAX_INPUTS {
            return Err(MixerError::TooManyInputs);
        }
        self.inputs.push(Input {
            id,
            ring: vec![0; RING_FRAMES * self.frame_len],
            head: 0,
            len: 0,
            playing: false,
            current: vec![0; self.frame_len],
            has_current: false,
            stats: MixerStats::default(),
        });
        Ok(())
    }

    /// Removes an input and its buffered frames. Its counters stay in [`Mixer::stats`].
    pub fn remove_input(&mut self, id: K) -> Result<(), MixerError> {
        let pos = self
            .inputs
            .iter()
            .position(|i| i.id == id)
            .ok_or(MixerError::UnknownInput)?;
        let input = self.inputs.swap_remove(pos);
        self.removed.add(&input.stats);
        Ok(())
    }

    /// Buffers one frame of an input, dropping its oldest frame if its ring is full.
    pub fn push(&mut self, id: K, frame: &[i16]) -> Result<(), MixerError> {
        if frame.len() != self.frame_len {
            return Err(MixerError::FrameSize {
                expected: self.frame_len,
                got: frame.len(),
            });
        }
        let n = self.frame_len;
        let input = self
            .inputs
            .iter_mut()
            .find(|i| i.id == id)
            .ok_or(MixerError::UnknownInput)?;
        if input.len == RING_FRAMES {
            input.head = (input.head + 1) % RING_FRAMES;
            input.len -= 1;
            input.stats.overflows += 1;
        }
        let slot = (input.head + input.len) % RING_FRAMES;
        input.ring[slot * n..(slot + 1) * n].copy_from_slice(frame);
        input.len += 1;
        input.stats.pushed += 1;
        Ok(())
    }

    /// Advances one frame: takes the next frame of every playing input and sums them.
    pub fn tick(&mut self) {
        let n = self.frame_len;
        self.sum.fill(0);
        for input in &mut self.inputs {
            input.has_current = false;
            if !input.playing && input.len >= START_FRAMES {
                input.playing = true;
            }
            if !input.playing {
                continue;
            }
            if input.len == 0 {
                input.playing = false;
                input.stats.underruns += 1;
                continue;
            }
            let frame = &input.ring[input.head * n..(input.head + 1) * n];
            input.current.copy_from_slice(frame);
            input.head = (input.head + 1) % RING_FRAMES;
            input.len -= 1;
            input.has_current = true;
            input.stats.mixed += 1;
            for (acc, &s) in self.sum.iter_mut().zip(frame) {
                *acc += i32::from(s);
            }
        }
    }

    /// The mix of the last [`Mixer::tick`], without `exclude`'s own frame (mix-minus), saturated
    /// to `i16`. Silence when nothing is playing. Can be called for several listeners per tick.
    pub fn output(&mut self, exclude: Option<K>) -> &[i16] {
        let own = exclude.and_then(|id| {
            self.inputs
                .iter()
                .find(|i| i.id == id && i.has_current)
                .map(|i| &i.current)
        });
        match own {
            Some(own) => {
                for ((o, &acc), &s) in self.out.iter_mut().zip(&self.sum).zip(own) {
                    *o = saturate(acc - i32::from(s));
                }
            }
            None => {
                for (o, &acc) in self.out.iter_mut().zip(&self.sum) {
                    *o = saturate(acc);
                }
            }
        }
        &self.out
    }

    /// One 20 ms frame of mix: [`Mixer::tick`] then [`Mixer::output`].
    pub fn mix(&mut self, exclude: Option<K>) -> &[i16] {
        self.tick();
        self.output(exclude)
    }

    /// The counters of one input.
    pub fn input_stats(&self, id: K) -> Option<MixerStats> {
        self.inputs.iter().find(|i| i.id == id).map(|i| i.stats)
    }

    /// Frames buffered by one input.
    pub fn buffered(&self, id: K) -> Option<usize> {
        self.inputs.iter().find(|i| i.id == id).map(|i| i.len)
    }

    /// The counters summed over all inputs, present and removed.
    pub fn stats(&self) -> MixerStats {
        let mut total = self.removed;
        for input in &self.inputs {
            total.add(&input.stats);
        }
        total
    }
}

#[inline]
fn saturate(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 160;

    fn mixer(inputs: &[u32]) -> Mixer<u32> {
        let mut m = Mixer::new(8000).expect("8 kHz");
        for &id in inputs {
            m.add_input(id).expect("new input");
        }
        m
    }

    fn frame(v: i16) -> Vec<i16> {
        vec![v; N]
    }

    /// Pushes the same constant frame twice, so that the input plays at the next tick.
    fn prime(m: &mut Mixer<u32>, id: u32, v: i16) {
        m.push(id, &frame(v)).expect("push");
        m.push(id, &frame(v)).expect("push");
    }

    /// Each row: constant values of inputs 1..=k, the excluded input, the expected sample.
    #[test]
    fn table_of_sums() {
        let max = i16::MAX;
        let min = i16::MIN;
        #[rustfmt::skip]
        let table: &[(&[i16], Option<u32>, i16)] = &[
            (&[], None, 0),
            (&[100], None, 100),
            (&[100], Some(1), 0),
            (&[100, 200], None, 300),
            (&[100, 200], Some(1), 200),
            (&[100, 200], Some(2), 100),
            (&[100, 200], Some(9), 300),          // excluding an unknown id changes nothing
            (&[100, -100], None, 0),
            (&[max, max], None, max),             // saturates up
            (&[min, min], None, min),             // saturates down
            (&[max, max, min], None, max - 1),    // sum first, saturate last
            (&[max, 1], Some(2), max),
            (&[max, max, max], Some(1), max),     // still saturated without one
            (&[max, 1000], Some(1), 1000),        // mix-minus is exact before saturation
            (&[min, min, 5], Some(3), min),
            (&[20000, 20000, -30000], Some(3), max),
            (&[20000, 20000, -30000], None, 10000),
            (&[-1, -1, -1, -1, -1, -1, -1, -1], Some(8), -7),
        ];
        for (row, &(values, exclude, want)) in table.iter().enumerate() {
            let ids: Vec<u32> = (1..=values.len() as u32).collect();
            let mut m = mixer(&ids);
            for (&id, &v) in ids.iter().zip(values.iter()) {
                prime(&mut m, id, v);
            }
            let out = m.mix(exclude);
            assert!(
                out.iter().all(|&s| s == want),
                "row {row}: {} != {want}",
                out[0]
            );
        }
    }

    #[test]
    fn all_extremes_stay_in_bounds() {
        let ids: Vec<u32> = (0..MAX_INPUTS as u32).collect();
        for v in [i16::MAX, i16::MIN] {
            let mut m = mixer(&ids);
            for &id in &ids {
                prime(&mut m, id, v);
            }
            assert!(m.mix(None).iter().all(|&s| s == v));
            assert!(m.output(Some(0)).iter().all(|&s| s == v));
        }
    }

    #[test]
    fn one_tick_serves_many_listeners() {
        let mut m = mixer(&[1, 2, 3]);
        prime(&mut m, 1, 1);
        prime(&mut m, 2, 10);
        prime(&mut m, 3, 100);
        m.tick();
        assert_eq!(m.output(Some(1))[0], 110);
        assert_eq!(m.output(Some(2))[0], 101);
        assert_eq!(m.output(Some(3))[0], 11);
        assert_eq!(m.output(None)[0], 111);
        // One frame was consumed per input, not one per listener.
        assert_eq!(m.buffered(1), Some(1));
        assert_eq!(m.stats().mixed, 3);
    }

    #[test]
    fn an_input_plays_its_frame_at_the_next_tick_and_underruns_to_silence() {
        let mut m = mixer(&[1]);
        assert!(m.mix(None).iter().all(|&s| s == 0), "nothing pushed yet");
        assert_eq!(
            m.stats().underruns,
            0,
            "waiting to start is not an underrun"
        );
        m.push(1, &frame(5)).expect("push");
        m.push(1, &frame(6)).expect("push");
        assert_eq!(m.mix(None)[0], 5, "starts with the oldest");
        assert_eq!(m.mix(None)[0], 6);
        assert_eq!(m.mix(None)[0], 0, "ran dry");
        assert_eq!(m.mix(None)[0], 0);
        assert_eq!(
            m.input_stats(1).map(|s| s.underruns),
            Some(1),
            "counted once"
        );
        m.push(1, &frame(7)).expect("push");
        assert_eq!(m.mix(None)[0], 7, "plays again at once");
    }

    #[test]
    fn overflow_drops_the_oldest_frames() {
        let mut m = mixer(&[1]);
        for v in 1..=8 {
            m.push(1, &frame(v)).expect("push");
        }
        assert_eq!(m.buffered(1), Some(RING_FRAMES));
        let stats = m.input_stats(1).expect("input");
        assert_eq!((stats.pushed, stats.overflows), (8, 3));
        for want in 4..=8 {
            assert_eq!(m.mix(None)[0], want);
        }
        assert_eq!(m.mix(None)[0], 0);
    }

    #[test]
    fn a_silent_input_leaves_the_others_alone() {
        let mut m = mixer(&[1, 2]);
        prime(&mut m, 1, 300);
        assert_eq!(m.mix(None)[0], 300);
        assert_eq!(m.mix(Some(2))[0], 300, "excluding a non-playing input");
        assert_eq!(m.input_stats(2).map(|s| s.underruns), Some(0));
    }

    #[test]
    fn waveforms_add_sample_by_sample() {
        let mut m = mixer(&[1, 2]);
        let a: Vec<i16> = (0..N as i16).collect();
        let b: Vec<i16> = (0..N as i16).map(|i| -2 * i).collect();
        for _ in 0..2 {
            m.push(1, &a).expect("push");
            m.push(2, &b).expect("push");
        }
        let out = m.mix(None).to_vec();
        assert!(out.iter().enumerate().all(|(i, &s)| s == -(i as i16)));
        assert_eq!(m.mix(Some(1)), &b[..]);
    }

    #[test]
    fn inputs_come_and_go() {
        let mut m = mixer(&[1, 2]);
        assert_eq!(m.add_input(1), Err(MixerError::DuplicateInput));
        assert_eq!(m.push(3, &frame(0)), Err(MixerError::UnknownInput));
        assert_eq!(
            m.push(1, &frame(0)[..100]),
            Err(MixerError::FrameSize {
                expected: 160,
                got: 100
            })
        );
        prime(&mut m, 1, 1);
        prime(&mut m, 2, 2);
        assert_eq!(m.mix(None)[0], 3);
        m.remove_input(1).expect("present");
        assert_eq!(m.remove_input(1), Err(MixerError::UnknownInput));
        assert_eq!(m.input_count(), 1);
        assert_eq!(m.mix(None)[0], 2);
        // The removed input's counters are kept in the totals.
        assert_eq!(m.stats().pushed, 4);
        assert_eq!(m.stats().mixed, 3);
        m.add_input(1).expect("back");
        assert_eq!(m.buffered(1), Some(0));
    }

    #[test]
    fn limits() {
        for rate in [0, 44100, 96000, 8001] {
            assert_eq!(
                Mixer::<u32>::new(rate).err(),
                Some(MixerError::UnsupportedRate(rate))
            );
        }
        for (rate, n) in [(8000, 160), (16000, 320), (48000, 960)] {
            assert_eq!(Mixer::<u32>::new(rate).map(|m| m.frame_len()), Ok(n));
        }
        let ids: Vec<u32> = (0..MAX_INPUTS as u32).collect();
        let mut m = mixer(&ids);
        assert_eq!(m.add_input(u32::MAX), Err(MixerError::TooManyInputs));
    }
}
