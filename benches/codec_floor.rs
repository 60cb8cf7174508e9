//! The codec floor: the CPU one call pays per 20 ms frame to transcode between the SIP leg and the
//! room leg, before any RTP, SRTP, jitter buffer or mixing. One iteration = decode one 20 ms
//! payload of one codec + encode the PCM into the other, as the media plane does.
//!
//!     cargo bench --bench codec_floor
//!
//! - PCMU→Opus: 8 kHz PCM straight into libopus at 8 kHz (no resampler).
//! - Opus→PCMU: packets from a 48 kHz (browser-like) encoder, decoded by libopus at 8 kHz.
//! - G.722↔Opus: the same at 16 kHz.
//! - PCMU↔PCMA: table decode + STL encode.
//!
//! The signal is speech-like: a 140 Hz harmonic series under a syllabic envelope, plus noise.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use jonction::media::codec::{
    samples_per_frame, AudioDecoder, AudioEncoder, Codec, Decoder, Encoder, MAX_DECODED_SAMPLES,
};

const FRAMES: usize = 50; // one second, cycled

/// `FRAMES` 20 ms frames of a speech-like signal at `rate`.
fn speech_like(rate: u32) -> Vec<Vec<i16>> {
    let n = samples_per_frame(rate, 20);
    let mut noise = 0x2545_F491_4F6C_DD1Du64;
    let samples: Vec<i16> = (0..n * FRAMES)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let envelope = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            let voiced: f64 = (1..=20)
                .map(|h| {
                    let f = 140.0 * f64::from(h);
                    if f < f64::from(rate) / 2.0 {
                        (2.0 * std::f64::consts::PI * f * t).sin() / f64::from(h)
                    } else {
                        0.0
                    }
                })
                .sum();
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let white = (noise >> 40) as f64 / f64::from(1u32 << 24) - 0.5;
            (envelope * (5000.0 * voiced + 1500.0 * white)) as i16
        })
        .collect();
    samples.chunks_exact(n).map(<[i16]>::to_vec).collect()
}

/// The payloads of `frames` encoded by `enc`.
fn encode_all(enc: &mut Encoder, frames: &[Vec<i16>]) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 4000];
    frames
        .iter()
        .map(|f| {
            let n = enc.encode(f, &mut buf).expect("encodes");
            buf[..n].to_vec()
        })
        .collect()
}

/// Benches `from` payloads → PCM at `rate` → `to` payloads.
fn transcode(c: &mut Criterion, name: &str, from: Codec, to: Codec, rate: u32, source: &[Vec<u8>]) {
    let mut dec: Decoder = from.decoder(rate).expect("decoder");
    let mut enc: Encoder = to.encoder(rate).expect("encoder");
    let mut pcm = vec![0i16; MAX_DECODED_SAMPLES];
    let mut out = vec![0u8; 4000];
    let mut i = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            let payload = &source[i % source.len()];
            i += 1;
            let n = dec.decode(black_box(payload), &mut pcm).expect("decodes");
            let m = enc.encode(&pcm[..n], &mut out).expect("encodes");
            black_box(&out[..m]);
        })
    });
}

fn codec_floor(c: &mut Criterion) {
    let narrow = speech_like(8000);
    let wide = speech_like(16000);
    let full = speech_like(48000);

    let pcmu = encode_all(&mut Codec::Pcmu.encoder(8000).expect("PCMU"), &narrow);
    let pcma = encode_all(&mut Codec::Pcma.encoder(8000).expect("PCMA"), &narrow);
    let g722 = encode_all(&mut Codec::G722.encoder(16000).expect("G.722"), &wide);
    let opus = encode_all(&mut Codec::Opus.encoder(48000).expect("Opus"), &full);

    transcode(
        c,
        "PCMU->Opus (8 kHz)",
        Codec::Pcmu,
        Codec::Opus,
        8000,
        &pcmu,
    );
    transcode(
        c,
        "Opus->PCMU (8 kHz)",
        Codec::Opus,
        Codec::Pcmu,
        8000,
        &opus,
    );
    transcode(
        c,
        "G722->Opus (16 kHz)",
        Codec::G722,
        Codec::Opus,
        16000,
        &g722,
    );
    transcode(
        c,
        "Opus->G722 (16 kHz)",
        Codec::Opus,
        Codec::G722,
        16000,
        &opus,
    );
    transcode(c, "PCMU->PCMA", Codec::Pcmu, Codec::Pcma, 8000, &pcmu);
    transcode(c, "PCMA->PCMU", Codec::Pcma, Codec::Pcmu, 8000, &pcma);
}

/// Each codec alone, to split the pipelines above.
fn codec_parts(c: &mut Criterion) {
    let narrow = speech_like(8000);
    let wide = speech_like(16000);
    let full = speech_like(48000);
    let opus = encode_all(&mut Codec::Opus.encoder(48000).expect("Opus"), &full);
    let g722 = encode_all(&mut Codec::G722.encoder(16000).expect("G.722"), &wide);
    let mut pcm = vec![0i16; MAX_DECODED_SAMPLES];
    let mut out = vec![0u8; 4000];

    for (name, codec, rate, frames) in [
        ("encode Opus (8 kHz)", Codec::Opus, 8000, &narrow),
        ("encode Opus (16 kHz)", Codec::Opus, 16000, &wide),
        ("encode Opus (48 kHz)", Codec::Opus, 48000, &full),
        ("encode G722", Codec::G722, 16000, &wide),
        ("encode PCMU", Codec::Pcmu, 8000, &narrow),
    ] {
        let mut enc = codec.encoder(rate).expect("encoder");
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                let f = &frames[i % frames.len()];
                i += 1;
                black_box(enc.encode(black_box(f), &mut out).expect("encodes"));
            })
        });
    }
    for (name, codec, rate, payloads) in [
        (
            "decode Opus (48 kHz packets to 8 kHz)",
            Codec::Opus,
            8000,
            &opus,
        ),
        (
            "decode Opus (48 kHz packets to 16 kHz)",
            Codec::Opus,
            16000,
            &opus,
        ),
        ("decode G722", Codec::G722, 16000, &g722),
    ] {
        let mut dec = codec.decoder(rate).expect("decoder");
        let mut i = 0;
        c.bench_function(name, |b| {
            b.iter(|| {
                let p = &payloads[i % payloads.len()];
                i += 1;
                black_box(dec.decode(black_box(p), &mut pcm).expect("decodes"));
            })
        });
    }
}

criterion_group!(benches, codec_floor, codec_parts);
criterion_main!(benches);
