//! Packet loss concealment for the codecs without their own (G.711, G.722): repeat the last good
//! frame and fade it out, a much simplified cousin of ITU-T G.711 Appendix I.
//!
//! The first lost frame is the last good one, fading linearly from full level; the fade reaches
//! silence after [`FADE_MS`] of consecutive loss, and stays silent until a good frame arrives.

/// How long consecutive concealment takes to fade to silence.
pub(crate) const FADE_MS: u32 = 60;

/// How many of the last good samples are kept and repeated: 20 ms at 16 kHz, 40 ms at 8 kHz.
const HISTORY: usize = 320;

/// The repeat-and-fade state of one decoder.
#[derive(Debug, Clone)]
pub(crate) struct RepeatFade {
    /// The tail of the last good output, `len` samples long (boxed, to keep decoders small).
    history: Box<[i16; HISTORY]>,
    len: usize,
    /// The next sample of `history` to replay.
    pos: usize,
    /// Samples concealed since the last good frame.
    concealed: u32,
    /// Samples in [`FADE_MS`] at the decoder's rate.
    fade_len: u32,
}

impl RepeatFade {
    /// Concealment for a decoder giving PCM at `pcm_rate` Hz.
    pub(crate) fn new(pcm_rate: u32) -> Self {
        Self {
            history: Box::new([0; HISTORY]),
            len: 0,
            pos: 0,
            concealed: 0,
            fade_len: (pcm_rate / 1000 * FADE_MS).max(1),
        }
    }

    /// Records good decoded output (called after every successful decode).
    pub(crate) fn remember(&mut self, good: &[i16]) {
        if good.is_empty() {
            return;
        }
        let tail = &good[good.len().saturating_sub(HISTORY)..];
        self.history[..tail.len()].copy_from_slice(tail);
        self.len = tail.len();
        self.pos = 0;
        self.concealed = 0;
    }

    /// Fills `out` with the faded repetition.
    pub(crate) fn conceal(&mut self, out: &mut [i16]) {
        for s in out.iter_mut() {
            if self.len == 0 || self.concealed >= self.fade_len {
                *s = 0;
                continue;
            }
            let remaining = i64::from(self.fade_len - self.concealed);
            let v = i64::from(self.history[self.pos]) * remaining / i64::from(self.fade_len);
            // |v| <= |history sample|, so it fits an i16.
            *s = v as i16;
            self.pos = (self.pos + 1) % self.len;
            self.concealed += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_heard_yet_conceals_silence() {
        let mut c = RepeatFade::new(8000);
        let mut out = [7i16; 160];
        c.conceal(&mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn repeats_then_fades_to_silence_in_60_ms() {
        let mut c = RepeatFade::new(8000);
        let good: Vec<i16> = (0..160)
            .map(|i| if i % 2 == 0 { 16000 } else { -16000 })
            .collect();
        c.remember(&good);
        let mut out = [0i16; 160];
        c.conceal(&mut out);
        assert_eq!(out[0], 16000, "starts at full level");
        assert!(out[1] < 0, "replays the waveform");
        let peak = |f: &[i16]| f.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        let first = peak(&out);
        c.conceal(&mut out);
        let second = peak(&out);
        c.conceal(&mut out);
        let third = peak(&out);
        assert!(first > second && second > third && third > 0);
        c.conceal(&mut out);
        assert_eq!(peak(&out), 0, "silent after 60 ms");
        // A good frame resets the fade.
        c.remember(&good);
        c.conceal(&mut out);
        assert_eq!(out[0], 16000);
    }

    #[test]
    fn keeps_only_the_tail_of_long_frames() {
        let mut c = RepeatFade::new(16000);
        let good: Vec<i16> = (0..1000).map(|i| i as i16).collect();
        c.remember(&good);
        let mut out = [0i16; 1];
        c.conceal(&mut out);
        assert_eq!(out[0], 1000 - HISTORY as i16);
    }
}
