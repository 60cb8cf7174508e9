//! Audio levels as the RFC 6464 header extension carries them: the frame's RMS in -dBov, from
//! 0 (a full-scale square wave) to 127 (digital silence and anything quieter).
//!
//! Rooms choose their active speakers from these levels (LiveKit reads the extension of each
//! published audio packet), so a caller whose audio carries none is never shown speaking.

use crate::media::codec::g711::Law;

/// Quietest level (in -dBov) that still counts as voice: the extension's voice activity flag,
/// and a loud packet for active speaker detection.
pub const VOICE_MAX_DBOV: u8 = 40;

/// The level of silence, and of anything quieter than -127 dBov.
pub const SILENCE: u8 = 127;

/// The level of a frame of linear PCM.
pub fn of_pcm(pcm: &[i16]) -> u8 {
    of_energy(
        pcm.iter().map(|&s| i64::from(s) * i64::from(s)).sum(),
        pcm.len(),
    )
}

/// The level of a G.711 payload, read through the law's decoding table (no decoder state).
pub fn of_g711(law: Law, payload: &[u8]) -> u8 {
    of_energy(
        payload
            .iter()
            .map(|&c| {
                let s = i64::from(law.decode(c));
                s * s
            })
            .sum(),
        payload.len(),
    )
}

/// Whether a level counts as voice.
pub fn is_voice(level: u8) -> bool {
    level <= VOICE_MAX_DBOV
}

/// -dBov of `samples` samples whose squares sum to `energy`.
fn of_energy(energy: i64, samples: usize) -> u8 {
    if energy <= 0 || samples == 0 {
        return SILENCE;
    }
    let mean_square = energy as f64 / samples as f64;
    let full_scale = 32768.0f64 * 32768.0;
    let dbov = -10.0 * (mean_square / full_scale).log10();
    dbov.round().clamp(0.0, f64::from(SILENCE)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::test_signal;

    fn sine(amplitude: f64, n: usize) -> Vec<i16> {
        test_signal::sine(440.0, 8000, amplitude, n)
    }

    #[test]
    fn full_scale_and_silence_are_the_ends_of_the_range() {
        assert_eq!(of_pcm(&[i16::MIN, i16::MAX].repeat(80)), 0);
        assert_eq!(of_pcm(&[0; 160]), SILENCE);
        assert_eq!(of_pcm(&[]), SILENCE);
        // One LSB of noise is -90 dBov; nothing can be quieter than the floor.
        assert_eq!(of_pcm(&[1, -1].repeat(80)), 90);
    }

    #[test]
    fn a_sine_is_three_db_below_its_peak() {
        // Full scale: -3 dBov; a tenth of it: -23 dBov; a thousandth: -63 dBov.
        assert_eq!(of_pcm(&sine(32767.0, 160)), 3);
        assert_eq!(of_pcm(&sine(3276.7, 160)), 23);
        assert_eq!(of_pcm(&sine(32.767, 160)), 63);
        assert!(is_voice(23) && !is_voice(63));
    }

    #[test]
    fn g711_payloads_measure_as_their_decoded_samples() {
        let pcm = sine(3276.7, 160);
        for law in [Law::Mu, Law::A] {
            let coded: Vec<u8> = pcm.iter().map(|&s| law.encode(s)).collect();
            let decoded: Vec<i16> = coded.iter().map(|&c| law.decode(c)).collect();
            assert_eq!(of_g711(law, &coded), of_pcm(&decoded), "{law:?}");
            assert!((22..=24).contains(&of_g711(law, &coded)), "{law:?}");
        }
        // µ-law's silence code (0xff) decodes to 0; A-law's (0xd5) to ±8, -72 dBov.
        assert_eq!(of_g711(Law::Mu, &[0xff; 160]), SILENCE);
        assert_eq!(of_g711(Law::A, &[0xd5; 160]), 72);
        assert!(!is_voice(of_g711(Law::A, &[0xd5; 160])));
    }
}
