//! Criterion benches for the RTP hot path: header parse, and one jitter buffer push + pop
//! per 20 ms packet.
//!
//!     cargo bench --bench rtp

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use jonction::media::jitter::{JitterBuffer, JitterConfig};
use jonction::media::rtp::{ExtensionElement, RtpPacket, RtpWriter, Ssrc};

fn parse(c: &mut Criterion) {
    let mut plain = Vec::new();
    RtpWriter::new(0, 1, 160, Ssrc(1))
        .write(&[0xd5; 160], &mut plain)
        .unwrap();
    let ext = [
        ExtensionElement {
            id: 1,
            data: &[0x80],
        },
        ExtensionElement {
            id: 3,
            data: &[1, 2, 3],
        },
    ];
    let mut with_ext = Vec::new();
    RtpWriter::new(111, 1, 960, Ssrc(1))
        .extensions(&ext)
        .write(&[0x55; 80], &mut with_ext)
        .unwrap();
    let mut g = c.benchmark_group("rtp_parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pcmu_160", |b| {
        b.iter(|| RtpPacket::parse(black_box(&plain)).map(|p| p.payload().len()))
    });
    g.bench_function("opus_with_2_extensions", |b| {
        b.iter(|| {
            RtpPacket::parse(black_box(&with_ext)).map(|p| p.extension_element(3).map(|d| d.len()))
        })
    });
    g.finish();
}

fn jitter(c: &mut Criterion) {
    let mut g = c.benchmark_group("jitter");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_pop_per_packet", |b| {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let payload = [0xd5u8; 160];
        let mut i: u64 = 0;
        b.iter(|| {
            let now = t0 + Duration::from_millis(20 * i);
            jb.push(now, Ssrc(1), i, (i as u32).wrapping_mul(160), &payload);
            let out = jb.pop(now + Duration::from_millis(10));
            i += 1;
            black_box(out)
        })
    });
    g.finish();
}

criterion_group!(benches, parse, jitter);
criterion_main!(benches);
