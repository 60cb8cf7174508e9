//! RTP for the test caller: a sine sent in 20 ms packets, and what comes back decoded and
//! measured (dominant frequency and level of the last ~1.5 s).

use std::collections::VecDeque;
use std::f64::consts::PI;

use jonction::media::codec::{AudioDecoder, AudioEncoder, Codec, Decoder, Encoder};

/// Packet duration.
pub const FRAME_MS: u32 = 20;
/// Peak amplitude of the sent tone: -10 dBFS (peak).
const AMPLITUDE: f64 = 32767.0 * 0.316_227_766;
/// Seconds of received audio kept for the analysis.
const ANALYSIS_SECONDS: f64 = 1.5;

/// Our outgoing RTP stream.
pub struct Sender {
    codec: Codec,
    encoder: Encoder,
    rate: u32,
    tone_hz: f64,
    phase: f64,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// Packets sent.
    pub sent: u64,
}

impl Sender {
    /// A stream of `codec` carrying a sine at `tone_hz`.
    pub fn new(codec: Codec, tone_hz: f64) -> Result<Sender, String> {
        let rate = codec.pcm_rate();
        let encoder = codec.encoder(rate).map_err(|e| e.to_string())?;
        Ok(Sender {
            codec,
            encoder,
            rate,
            tone_hz,
            phase: 0.0,
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            sent: 0,
        })
    }

    /// The codec sent.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The next 20 ms packet (RTP header and payload).
    pub fn next_packet(&mut self) -> Result<Vec<u8>, String> {
        let n = jonction::media::codec::samples_per_frame(self.rate, FRAME_MS);
        let step = 2.0 * PI * self.tone_hz / f64::from(self.rate);
        let pcm: Vec<i16> = (0..n)
            .map(|_| {
                let s = (self.phase.sin() * AMPLITUDE) as i16;
                self.phase = (self.phase + step) % (2.0 * PI);
                s
            })
            .collect();
        let mut packet = vec![0u8; 12 + self.encoder.max_payload_len(n)];
        let len = self
            .encoder
            .encode(&pcm, &mut packet[12..])
            .map_err(|e| e.to_string())?;
        packet.truncate(12 + len);
        packet[0] = 0x80;
        packet[1] = self.codec.default_payload_type() | if self.sent == 0 { 0x80 } else { 0 };
        packet[2..4].copy_from_slice(&self.seq.to_be_bytes());
        packet[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self
            .timestamp
            .wrapping_add(self.codec.rtp_timestamp_increment(FRAME_MS));
        self.sent += 1;
        Ok(packet)
    }
}

/// What came back.
#[derive(Default)]
pub struct Receiver {
    decoder: Option<(u8, Decoder)>,
    /// The decoded PCM of the last [`ANALYSIS_SECONDS`], at `rate`.
    window: VecDeque<i16>,
    rate: u32,
    /// RTP packets received (any payload type).
    pub received: u64,
    /// Packets of a payload type we do not decode.
    pub other_pt: u64,
    /// Packets that failed to parse or decode.
    pub bad: u64,
    /// The payload type last decoded.
    pub last_pt: Option<u8>,
}

impl Receiver {
    /// One datagram from the RTP socket (untrusted).
    pub fn handle(&mut self, datagram: &[u8]) {
        let Some(payload) = rtp_payload(datagram) else {
            self.bad += 1;
            return;
        };
        self.received += 1;
        let pt = datagram[1] & 0x7f;
        let codec = match pt {
            0 => Codec::Pcmu,
            8 => Codec::Pcma,
            9 => Codec::G722,
            _ => {
                self.other_pt += 1;
                return;
            }
        };
        if self.decoder.as_ref().is_none_or(|(p, _)| *p != pt) {
            match codec.decoder(codec.pcm_rate()) {
                Ok(d) => self.decoder = Some((pt, d)),
                Err(_) => {
                    self.bad += 1;
                    return;
                }
            }
            if self.rate != codec.pcm_rate() {
                self.window.clear();
                self.rate = codec.pcm_rate();
            }
        }
        let Some((_, decoder)) = self.decoder.as_mut() else {
            return;
        };
        let mut out = vec![0i16; payload.len() * 2 + 16];
        match decoder.decode(payload, &mut out) {
            Ok(n) => {
                self.last_pt = Some(pt);
                self.window.extend(&out[..n.min(out.len())]);
                let max = (f64::from(self.rate) * ANALYSIS_SECONDS) as usize;
                while self.window.len() > max {
                    self.window.pop_front();
                }
            }
            Err(_) => self.bad += 1,
        }
    }

    /// The dominant frequency (Goertzel, 100–3500 Hz in 5 Hz steps) and the RMS level in
    /// dBFS (RMS relative to full scale: a full-scale sine measures -3 dB) of the window;
    /// `None` without audio.
    pub fn analyse(&self) -> (Option<f64>, Option<f64>) {
        if self.window.len() < 400 || self.rate == 0 {
            return (None, None);
        }
        let x: Vec<f64> = self
            .window
            .iter()
            .map(|s| f64::from(*s) / 32768.0)
            .collect();
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt();
        let dbfs = if rms > 0.0 {
            20.0 * rms.log10()
        } else {
            -200.0
        };
        let rate = f64::from(self.rate);
        let top = 3500.0f64.min(rate / 2.0 - 50.0);
        let mut best = (0.0f64, 0.0f64);
        let mut f = 100.0;
        while f <= top {
            let p = goertzel_power(&x, f, rate);
            if p > best.1 {
                best = (f, p);
            }
            f += 5.0;
        }
        let tone = (best.1 > 0.0 && rms > 1e-4).then_some(best.0);
        (tone, Some((dbfs * 10.0).round() / 10.0))
    }
}

/// The payload of an RTP packet (version 2, CSRCs, extension and padding accounted for).
fn rtp_payload(p: &[u8]) -> Option<&[u8]> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(p[0] & 0x0f);
    let mut start = 12 + 4 * cc;
    if p[0] & 0x10 != 0 {
        let ext = p.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = p.len();
    if p[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*p.last()?))?;
    }
    p.get(start..end)
}

fn goertzel_power(x: &[f64], f: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (2.0 * PI * f / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_round_trips_through_each_codec() {
        for (codec, hz) in [
            (Codec::Pcmu, 1000.0),
            (Codec::Pcma, 440.0),
            (Codec::G722, 2000.0),
        ] {
            let mut s = Sender::new(codec, hz).expect("encoder");
            let mut r = Receiver::default();
            for _ in 0..100 {
                r.handle(&s.next_packet().expect("packet"));
            }
            let (tone, level) = r.analyse();
            assert_eq!(r.received, 100);
            assert!((tone.expect("tone") - hz).abs() <= 5.0, "{codec}: {tone:?}");
            let level = level.expect("level");
            assert!((-15.0..-11.0).contains(&level), "{codec}: {level}");
        }
    }

    #[test]
    fn garbage_is_counted_not_decoded() {
        let mut r = Receiver::default();
        r.handle(&[0x80, 0]);
        r.handle(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        r.handle(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(r.bad, 3);
        assert_eq!(r.analyse(), (None, None));
    }
}
