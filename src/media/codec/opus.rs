//! Opus (RFC 6716) through libopus 1.6 (`opusic_c`, bundled), mono, with the RTP timing of
//! RFC 7587: the RTP clock is 48 kHz whatever rate the codec runs at.
//!
//! The encoder and decoder run at the SIP side's PCM rate where libopus allows it (8, 12, 16, 24
//! or 48 kHz): a PCMU leg codes Opus straight from and to 8 kHz PCM, a G.722 leg from and to
//! 16 kHz, and no resampler sits in the path. libopus caps the coded bandwidth to the input rate
//! (8 kHz PCM gives narrowband Opus), which loses nothing the SIP side could hear.
//!
//! Encoder defaults ([`OpusConfig`]): VOIP application, 32 kbit/s VBR, in-band FEC on (which
//! libopus only uses when told to expect loss, so [`OpusConfig::expected_loss_percent`] defaults to
//! 10), DTX off, complexity 5. Complexity 5 instead of libopus's 10 costs a third less CPU per
//! frame (55 against 83 µs per 20 ms frame at 8 kHz on the CI machine) for a quality difference
//! that narrowband and wideband speech from a phone or a room system does not show; libwebrtc
//! makes the same trade on low-power devices.
//!
//! Decoder: [`AudioDecoder::conceal`] runs libopus PLC; [`AudioDecoder::decode_fec`] recovers the
//! lost frame before a packet from that packet's in-band FEC (LBRR) data.
//!
//! libopus takes `opus_int16` samples; `opusic_c` types them as `u16`, so frames are copied
//! through a scratch buffer (allocated once per codec) with `as` casts, which keep the bits.

use opusic_c::{Application, Bitrate, Channels, ErrorCode, InbandFec, SampleRate};

use super::{AudioDecoder, AudioEncoder, Codec, CodecError, MAX_DECODED_SAMPLES};

/// The RTP clock rate of Opus (RFC 7587 §4.1).
pub const RTP_CLOCK_RATE: u32 = 48000;

/// The default target bitrate, in bit/s.
pub const DEFAULT_BITRATE: u32 = 32_000;

/// A payload buffer this size holds any packet our encoder makes: 60 ms at libopus's largest
/// bitrate (510 kbit/s) is 3825 bytes.
pub const MAX_PAYLOAD_LEN: usize = 4000;

/// The longest frame the encoder takes: 60 ms at 48 kHz.
const MAX_ENCODE_SAMPLES: usize = 2880;

/// How far the RTP timestamp advances for a packet of `frame_ms` milliseconds: always counted at
/// 48 kHz (RFC 7587 §4.1), so 960 for 20 ms, whatever the PCM rate of the codec.
pub const fn rtp_timestamp_increment(frame_ms: u32) -> u32 {
    RTP_CLOCK_RATE / 1000 * frame_ms
}

/// The encoder complexity used unless configured otherwise (see the module docs).
pub const DEFAULT_COMPLEXITY: u8 = 5;

/// Settings of an Opus encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bitrate in bit/s (libopus clamps it to 500..=512000).
    pub bitrate: u32,
    /// In-band forward error correction (LBRR, RFC 6716 §2.1.7): each packet also carries a
    /// coarse copy of the previous frame, which [`AudioDecoder::decode_fec`] recovers.
    pub inband_fec: bool,
    /// The packet loss the encoder should plan for, 0..=100 %. In-band FEC is only emitted when
    /// this is above 0; the call session should feed the loss measured by RTCP with
    /// [`OpusEncoder::set_expected_loss`].
    pub expected_loss_percent: u8,
    /// Discontinuous transmission (send almost nothing during silence).
    pub dtx: bool,
    /// Encoder complexity 0..=10, or `None` for libopus's default.
    pub complexity: Option<u8>,
}

impl Default for OpusConfig {
    fn default() -> Self {
        Self {
            bitrate: DEFAULT_BITRATE,
            inband_fec: true,
            expected_loss_percent: 10,
            dtx: false,
            complexity: Some(DEFAULT_COMPLEXITY),
        }
    }
}

/// The libopus rate for `pcm_rate`, if libopus runs at it.
fn sample_rate(pcm_rate: u32) -> Result<SampleRate, CodecError> {
    Ok(match pcm_rate {
        8000 => SampleRate::Hz8000,
        12000 => SampleRate::Hz12000,
        16000 => SampleRate::Hz16000,
        24000 => SampleRate::Hz24000,
        48000 => SampleRate::Hz48000,
        rate => {
            return Err(CodecError::UnsupportedRate {
                codec: Codec::Opus,
                rate,
            })
        }
    })
}

/// How many 2.5 ms units `samples` at `pcm_rate` is, if a whole number of them.
fn units_of_2_5_ms(samples: usize, pcm_rate: u32) -> Option<usize> {
    let per_unit = (pcm_rate / 400) as usize;
    (samples > 0 && samples % per_unit == 0).then_some(samples / per_unit)
}

fn frame_size_error(samples: usize, rate: u32) -> CodecError {
    CodecError::FrameSize {
        codec: Codec::Opus,
        samples,
        rate,
    }
}

/// Maps a libopus error. `have` is the length of the output buffer passed.
fn opus_error(e: ErrorCode, have: usize) -> CodecError {
    match e {
        ErrorCode::InvalidPacket => CodecError::MalformedPayload { codec: Codec::Opus },
        ErrorCode::BufferTooSmall => CodecError::BufferTooSmall { have },
        other => CodecError::Opus(other.message()),
    }
}

/// A mono Opus encoder.
pub struct OpusEncoder {
    inner: opusic_c::Encoder,
    pcm_rate: u32,
    /// The input frame as libopus wants it.
    scratch: Vec<u16>,
}

impl OpusEncoder {
    /// An encoder taking mono PCM at `pcm_rate` Hz (8, 12, 16, 24 or 48 kHz).
    pub fn new(pcm_rate: u32, config: &OpusConfig) -> Result<Self, CodecError> {
        let rate = sample_rate(pcm_rate)?;
        let err = |e: ErrorCode| opus_error(e, 0);
        let mut inner =
            opusic_c::Encoder::new(Channels::Mono, rate, Application::Voip).map_err(err)?;
        inner
            .set_bitrate(Bitrate::Value(config.bitrate))
            .map_err(err)?;
        inner
            .set_inband_fec(if config.inband_fec {
                InbandFec::Mode1
            } else {
                InbandFec::Off
            })
            .map_err(err)?;
        inner
            .set_packet_loss(config.expected_loss_percent.min(100))
            .map_err(err)?;
        inner.set_dtx(config.dtx).map_err(err)?;
        if let Some(complexity) = config.complexity {
            inner.set_complexity(complexity.min(10)).map_err(err)?;
        }
        Ok(Self {
            inner,
            pcm_rate,
            scratch: vec![0; MAX_ENCODE_SAMPLES],
        })
    }

    /// Changes the target bitrate, in bit/s (e.g. on a REMB/TMMBR or a re-INVITE's `b=`).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), CodecError> {
        self.inner
            .set_bitrate(Bitrate::Value(bitrate))
            .map_err(|e| opus_error(e, 0))
    }

    /// Changes the packet loss the encoder plans its FEC for, 0..=100 %.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.inner
            .set_packet_loss(percent.min(100))
            .map_err(|e| opus_error(e, 0))
    }
}

impl AudioEncoder for OpusEncoder {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn pcm_rate(&self) -> u32 {
        self.pcm_rate
    }

    /// Encodes one frame of 2.5, 5, 10, 20, 40 or 60 ms.
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if !matches!(
            units_of_2_5_ms(pcm.len(), self.pcm_rate),
            Some(1 | 2 | 4 | 8 | 16 | 24)
        ) {
            return Err(frame_size_error(pcm.len(), self.pcm_rate));
        }
        // 60 ms at the rate is at most MAX_ENCODE_SAMPLES, checked just above.
        let input = &mut self.scratch[..pcm.len()];
        for (d, &s) in input.iter_mut().zip(pcm) {
            *d = s as u16;
        }
        self.inner
            .encode_to_slice(input, out)
            .map_err(|e| opus_error(e, out.len()))
    }
}

/// A mono Opus decoder, with libopus packet loss concealment and FEC recovery.
pub struct OpusDecoder {
    inner: opusic_c::Decoder,
    pcm_rate: u32,
    /// The output frame as libopus gives it.
    scratch: Vec<u16>,
}

impl OpusDecoder {
    /// A decoder giving mono PCM at `pcm_rate` Hz (8, 12, 16, 24 or 48 kHz), whatever rate the
    /// far end encoded at.
    pub fn new(pcm_rate: u32) -> Result<Self, CodecError> {
        let rate = sample_rate(pcm_rate)?;
        let inner = opusic_c::Decoder::new(Channels::Mono, rate).map_err(|e| opus_error(e, 0))?;
        Ok(Self {
            inner,
            pcm_rate,
            scratch: vec![0; MAX_DECODED_SAMPLES],
        })
    }

    /// The number of samples a lost or recovered stretch of `samples` asks libopus for, checked:
    /// a whole number of 2.5 ms units, at most 120 ms.
    fn check_gap(&self, samples: usize) -> Result<(), CodecError> {
        match units_of_2_5_ms(samples, self.pcm_rate) {
            Some(units) if units <= 48 => Ok(()),
            _ => Err(frame_size_error(samples, self.pcm_rate)),
        }
    }

    /// Runs libopus on `payload` (empty for PLC) for `samples` samples and copies them to `out`.
    fn run(
        &mut self,
        payload: &[u8],
        fec: bool,
        samples: usize,
        out: &mut [i16],
    ) -> Result<usize, CodecError> {
        let have = out.len();
        // Callers bound `samples` by 120 ms at the decoder's rate, which is at most
        // MAX_DECODED_SAMPLES, and by `out.len()`.
        let scratch = &mut self.scratch[..samples];
        let n = self
            .inner
            .decode_to_slice(payload, scratch, fec)
            .map_err(|e| opus_error(e, have))?;
        for (o, &s) in out.iter_mut().zip(&scratch[..n.min(samples)]) {
            *o = s as i16;
        }
        Ok(n.min(samples))
    }
}

impl AudioDecoder for OpusDecoder {
    fn codec(&self) -> Codec {
        Codec::Opus
    }

    fn pcm_rate(&self) -> u32 {
        self.pcm_rate
    }

    /// Decodes one packet (up to 120 ms). An empty payload is malformed (RFC 6716 §3.4 R1); a
    /// lost packet is [`AudioDecoder::conceal`]ed instead.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let malformed = CodecError::MalformedPayload { codec: Codec::Opus };
        // The TOC byte and frame count give the duration; libopus refuses an empty packet, a
        // missing frame count, and packets over 120 ms. A count of 0 frames (R5) gives 0.
        let samples = match self.inner.get_nb_samples(payload) {
            Ok(0) | Err(_) => return Err(malformed),
            Ok(n) if n > self.scratch.len() => return Err(malformed),
            Ok(n) => n,
        };
        if samples > out.len() {
            return Err(CodecError::BufferTooSmall { have: out.len() });
        }
        self.run(payload, false, samples, out).map_err(|e| match e {
            // The length is right, so a bad argument can only come from the payload.
            CodecError::Opus(_) => malformed,
            e => e,
        })
    }

    /// libopus PLC for `out.len()` samples: a whole number of 2.5 ms, at most 120 ms.
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.check_gap(out.len())?;
        self.run(&[], false, out.len(), out)
    }

    /// Recovers the `out.len()` samples lost before `next_payload` from its FEC data; without
    /// FEC data, libopus conceals instead. Then decode `next_payload` itself as usual.
    fn decode_fec(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.check_gap(out.len())?;
        if next_payload.is_empty() {
            return self.conceal(out);
        }
        self.run(next_payload, true, out.len(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::samples_per_frame;
    use crate::media::test_signal::{best_lag, dominant_frequency, sine, snr_db};

    /// Encodes `input` in 20 ms frames; returns the packets.
    fn encode_all(enc: &mut OpusEncoder, input: &[i16]) -> Vec<Vec<u8>> {
        let frame = samples_per_frame(enc.pcm_rate(), 20);
        let mut buf = [0u8; MAX_PAYLOAD_LEN];
        input
            .chunks_exact(frame)
            .map(|pcm| {
                let n = enc.encode(pcm, &mut buf).expect("encodes");
                buf[..n].to_vec()
            })
            .collect()
    }

    #[test]
    fn a_sine_keeps_its_frequency_at_8_16_and_48_khz() {
        for (rate, freq) in [
            (8000, 1000.0),
            (16000, 1000.0),
            (16000, 3000.0),
            (48000, 1000.0),
        ] {
            let frame = samples_per_frame(rate, 20);
            let input = sine(freq, rate, 10000.0, 50 * frame);
            let mut enc = OpusEncoder::new(rate, &OpusConfig::default()).expect("encoder");
            let mut dec = OpusDecoder::new(rate).expect("decoder");
            let packets = encode_all(&mut enc, &input);
            assert_eq!(packets.len(), 50);
            // 32 kbit/s is 80 bytes per 20 ms on average; VBR and the start-up vary it.
            let total: usize = packets.iter().map(Vec::len).sum();
            let mean = total / packets.len();
            assert!(
                (20..=160).contains(&mean),
                "{rate} Hz: mean packet {mean} bytes"
            );
            assert!(packets.iter().all(|p| !p.is_empty() && p.len() <= 400));

            let mut output = Vec::new();
            let mut out = vec![0i16; MAX_DECODED_SAMPLES];
            for p in &packets {
                assert_eq!(dec.decode(p, &mut out), Ok(frame));
                output.extend_from_slice(&out[..frame]);
            }
            let tail = &output[output.len() / 2..];
            let found = dominant_frequency(tail, rate, 50);
            assert!(
                (f64::from(found) - freq).abs() <= 50.0,
                "{rate} Hz: {freq} Hz came out as {found} Hz"
            );
            // A steady sine should also come out close in waveform, once aligned.
            let lag = best_lag(&input[frame * 10..frame * 40], &output[frame * 10..], frame);
            let snr = snr_db(&input[frame * 10..frame * 40], &output[frame * 10 + lag..]);
            assert!(
                snr > 5.0,
                "{rate} Hz, {freq} Hz: SNR {snr:.1} dB at lag {lag}"
            );
        }
    }

    #[test]
    fn decoder_rate_is_independent_of_encoder_rate() {
        // A browser encodes at 48 kHz; the PCMU leg decodes at 8 kHz.
        let input = sine(440.0, 48000, 10000.0, 25 * 960);
        let mut enc = OpusEncoder::new(48000, &OpusConfig::default()).expect("encoder");
        let mut dec = OpusDecoder::new(8000).expect("decoder");
        let mut output = Vec::new();
        let mut out = [0i16; 160];
        for p in encode_all(&mut enc, &input) {
            assert_eq!(dec.decode(&p, &mut out), Ok(160));
            output.extend_from_slice(&out);
        }
        let found = dominant_frequency(&output[2000..], 8000, 20);
        assert!((420..=460).contains(&found), "{found}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = OpusDecoder::new(16000).expect("decoder");
        let mut out = vec![0i16; MAX_DECODED_SAMPLES];
        let malformed = Err(CodecError::MalformedPayload { codec: Codec::Opus });
        // Empty payload (RFC 6716 §3.4 R1).
        assert_eq!(dec.decode(&[], &mut out), malformed);
        // Code 3 packet without its frame count byte (R6), and with a count of 0 (R5).
        assert_eq!(dec.decode(&[0x03], &mut out), malformed);
        assert_eq!(dec.decode(&[0x03, 0x00], &mut out), malformed);
        // Code 1 (two equal frames) with an odd payload (R3).
        assert_eq!(dec.decode(&[0x01, 0xAA, 0xBB, 0xCC], &mut out), malformed);
        // Code 3 asking for 48 frames of 20 ms (960 ms > 120 ms, R5).
        assert_eq!(dec.decode(&[0x0B, 0x30, 0x00], &mut out), malformed);
        // A valid 20 ms packet into a buffer that is too small.
        let mut enc = OpusEncoder::new(16000, &OpusConfig::default()).expect("encoder");
        let mut p = [0u8; MAX_PAYLOAD_LEN];
        let n = enc.encode(&[0; 320], &mut p).expect("encodes");
        assert_eq!(
            dec.decode(&p[..n], &mut out[..319]),
            Err(CodecError::BufferTooSmall { have: 319 })
        );
        assert_eq!(dec.decode(&p[..n], &mut out), Ok(320));
    }

    #[test]
    fn frame_sizes_are_checked() {
        let mut enc = OpusEncoder::new(8000, &OpusConfig::default()).expect("encoder");
        let mut p = [0u8; MAX_PAYLOAD_LEN];
        // 2.5, 5, 10, 20, 40, 60 ms at 8 kHz.
        for samples in [20, 40, 80, 160, 320, 480] {
            assert!(enc.encode(&vec![0; samples], &mut p).is_ok(), "{samples}");
        }
        for samples in [0, 1, 100, 159, 161, 240, 640, 960] {
            assert_eq!(
                enc.encode(&vec![0; samples], &mut p),
                Err(frame_size_error(samples, 8000)),
                "{samples}"
            );
        }
        let mut dec = OpusDecoder::new(8000).expect("decoder");
        let mut out = [0i16; 1000];
        assert_eq!(
            dec.conceal(&mut out[..101]),
            Err(frame_size_error(101, 8000))
        );
        assert_eq!(
            dec.conceal(&mut out[..980]),
            Err(frame_size_error(980, 8000))
        );
        assert_eq!(dec.conceal(&mut out[..960]), Ok(960)); // 120 ms
        assert_eq!(dec.conceal(&mut out[..100]), Ok(100)); // 12.5 ms
    }

    #[test]
    fn timestamps_count_at_48_khz_whatever_the_pcm_rate() {
        assert_eq!(rtp_timestamp_increment(20), 960);
        assert_eq!(rtp_timestamp_increment(10), 480);
        assert_eq!(Codec::Opus.rtp_timestamp_increment(20), 960);
    }

    #[test]
    fn plc_continues_and_fec_recovers_the_lost_frame() {
        let rate = 16000;
        let frame = samples_per_frame(rate, 20);
        let input = sine(440.0, rate, 8000.0, 30 * frame);
        let config = OpusConfig {
            expected_loss_percent: 20,
            ..OpusConfig::default()
        };
        let mut enc = OpusEncoder::new(rate, &config).expect("encoder");
        let packets = encode_all(&mut enc, &input);
        const LOST: usize = 20;

        // Reference: every packet decoded.
        let mut reference = vec![0i16; frame];
        let mut dec = OpusDecoder::new(rate).expect("decoder");
        let mut out = vec![0i16; frame];
        for (i, p) in packets.iter().enumerate() {
            dec.decode(p, &mut out).expect("decodes");
            if i == LOST {
                reference.copy_from_slice(&out);
            }
        }

        let recover = |fec: bool| -> Vec<i16> {
            let mut dec = OpusDecoder::new(rate).expect("decoder");
            let mut out = vec![0i16; frame];
            for p in &packets[..LOST] {
                dec.decode(p, &mut out).expect("decodes");
            }
            if fec {
                assert_eq!(dec.decode_fec(&packets[LOST + 1], &mut out), Ok(frame));
            } else {
                assert_eq!(dec.conceal(&mut out), Ok(frame));
            }
            out
        };
        let plc = recover(false);
        let fec = recover(true);
        let energy = |f: &[i16]| f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>();
        assert!(
            energy(&plc) > energy(&reference) / 10.0,
            "PLC is not silence"
        );
        let snr_plc = snr_db(&reference, &plc);
        let snr_fec = snr_db(&reference, &fec);
        assert!(
            snr_fec > snr_plc && snr_fec > 3.0,
            "FEC {snr_fec:.1} dB vs PLC {snr_plc:.1} dB"
        );
    }
}
