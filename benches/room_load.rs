//! Whole-process load run of the embedded room server: N publishers send 20 ms audio frames into
//! one room, M subscribers receive every track. Reports the server's CPU per forwarded packet and
//! its forwarding latency (datagram in → datagram out, from its own histogram), next to a
//! reference measured in the same run: a bare UDP relay process doing the same fan-out with no
//! WebRTC at all (no SRTP, no RTP handling).
//!
//!     cargo bench --bench room_load -- [--publishers N] [--subscribers M] [--seconds S]

#[path = "common/mod.rs"]
mod common;
use common::{cpu_seconds, free_port, http_get, Guard, TALKING};

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jonction::livekit::connection::RoomLink;
use jonction::livekit::ClientEvent;
use jonction::token::{Keys, TokenRequest};
use livekit_protocol as proto;
use str0m::media::{Frequency, MediaKind, MediaTime};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const FRAME: Duration = Duration::from_millis(20);
const PAYLOAD: usize = 80; // a 32 kbit/s Opus frame

struct Args {
    publishers: usize,
    subscribers: usize,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        publishers: 10,
        subscribers: 20,
        seconds: 15,
    };
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        let next = v.get(i + 1).and_then(|s| s.parse().ok());
        match (v[i].as_str(), next) {
            ("--publishers", Some(n)) => a.publishers = n as usize,
            ("--subscribers", Some(n)) => a.subscribers = n as usize,
            ("--seconds", Some(n)) => a.seconds = n,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn main() {
    let v: Vec<String> = std::env::args().collect();
    if v.get(1).map(String::as_str) == Some("--relay") {
        relay_main(&v[2..]);
        return;
    }
    let a = args();
    println!(
        "room_load: {} publishers x {} subscribers, {} s measured ({} forwarded streams)",
        a.publishers,
        a.subscribers,
        a.seconds,
        a.publishers * a.subscribers
    );
    let ours = run_jonction(&a);
    let reference = run_reference(&a);
    println!();
    println!("                         jonction      bare UDP relay   ratio");
    println!(
        "forwarded packets/s      {:>10.0}      {:>10.0}",
        ours.pps, reference.pps
    );
    println!(
        "CPU per forwarded pkt    {:>8.2} µs     {:>8.2} µs      {:.1}x",
        ours.cpu_us_per_pkt,
        reference.cpu_us_per_pkt,
        ours.cpu_us_per_pkt / reference.cpu_us_per_pkt.max(1e-9)
    );
    println!(
        "latency p50 (≤ bucket)   {:>8} µs     {:>8} µs",
        ours.p50_us, reference.p50_us
    );
    println!(
        "latency p99 (≤ bucket)   {:>8} µs     {:>8} µs",
        ours.p99_us, reference.p99_us
    );
    println!(
        "received by subscribers  {:.2} % of sent",
        ours.delivered_pct
    );
}

struct Figures {
    pps: f64,
    cpu_us_per_pkt: f64,
    p50_us: u64,
    p99_us: u64,
    delivered_pct: f64,
}

/// (frames_out, latency bucket cumulative counts by `le` in µs)
fn scrape(addr: SocketAddr) -> (u64, Vec<(u64, u64)>) {
    let text = http_get(addr, "/metrics");
    let mut out = 0;
    let mut buckets = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("jonction_media_frames_out_total ") {
            out = v.trim().parse().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("jonction_forward_latency_seconds_bucket{le=\"") {
            if let Some((le, c)) = rest.split_once("\"} ") {
                let le_us = if le == "+Inf" {
                    u64::MAX
                } else {
                    (le.parse::<f64>().unwrap_or(0.0) * 1e6).round() as u64
                };
                buckets.push((le_us, c.trim().parse().unwrap_or(0)));
            }
        }
    }
    (out, buckets)
}

fn quantile(before: &[(u64, u64)], after: &[(u64, u64)], q: f64) -> u64 {
    let diff: Vec<(u64, u64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map(|x| x.1)
                .unwrap_or(0);
            (*le, c.saturating_sub(b))
        })
        .collect();
    let total = diff.last().map(|x| x.1).unwrap_or(0);
    if total == 0 {
        return 0;
    }
    let rank = ((total as f64) * q).ceil() as u64;
    diff.iter()
        .find(|(_, c)| *c >= rank)
        .map(|x| x.0)
        .unwrap_or(u64::MAX)
}

fn run_jonction(a: &Args) -> Figures {
    let http_port = free_port();
    let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
    let child = Command::new(env!("CARGO_BIN_EXE_jonction"))
        .arg("run")
        .env("JONCTION_HTTP__LISTEN", http.to_string())
        .env("JONCTION_ROOMS__UDP_PORT", "0")
        .env("JONCTION_ROOMS__BIND_IPS", "127.0.0.1")
        .env("JONCTION_SIP__ENABLED", "false")
        .env("JONCTION_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start jonction");
    let pid = child.id();
    let _guard = Guard(child);
    let t0 = Instant::now();
    while !http_get(http, "/readyz").contains("200 OK") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "jonction did not get ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("ws://{http}");
    let keys = Keys::new("devkey", "secret");
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let warmup = Duration::from_secs(4);
    let total = warmup + Duration::from_secs(a.seconds) + Duration::from_secs(1);

    rt.block_on(async {
        let mut tasks = Vec::new();
        for s in 0..a.subscribers {
            let (url, keys, received, stop) = (url.clone(), keys.clone(), received.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let t = keys.mint(&TokenRequest::new("load", format!("sub{s}"))).expect("token");
                let mut link = RoomLink::connect(&url, &t, LO).await.expect("subscriber connects");
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), link.next_event()).await {
                        Ok(Ok(ClientEvent::Media { .. })) => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Ok(_)) | Err(_) => {}
                        Ok(Err(e)) => panic!("subscriber link failed: {e}"),
                    }
                }
                link.leave();
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for p in 0..a.publishers {
            let (url, keys, sent, stop) = (url.clone(), keys.clone(), sent.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let t = keys.mint(&TokenRequest::new("load", format!("pub{p}"))).expect("token");
                let mut link = RoomLink::connect_with(&url, &t, LO, false)
                    .await
                    .expect("publisher connects");
                link.client()
                    .publish("mic", "mic", MediaKind::Audio, proto::TrackSource::Microphone);
                link.flush();
                let mut published = false;
                let mut tick = tokio::time::interval(FRAME);
                let mut n = 0u64;
                let payload = vec![0x78u8; PAYLOAD];
                while !stop.load(Ordering::Relaxed) {
                    tokio::select! {
                        _ = tick.tick() => if published {
                            n += 1;
                            let time = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
                            if link.client().write("mic", "opus", Instant::now(), time, payload.clone(), Some(TALKING)).is_ok() {
                                sent.fetch_add(1, Ordering::Relaxed);
                            }
                            link.flush();
                        },
                        ev = link.next_event() => match ev {
                            Ok(ClientEvent::Published { .. }) => published = true,
                            Ok(_) => {}
                            Err(e) => panic!("publisher link failed: {e}"),
                        },
                    }
                }
                link.leave();
            }));
        }
        tokio::time::sleep(warmup).await;
        let (out0, lat0) = scrape(http);
        let cpu0 = cpu_seconds(pid);
        let (sent0, recv0) = (sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed));
        let m0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(a.seconds)).await;
        let (out1, lat1) = scrape(http);
        let cpu1 = cpu_seconds(pid);
        let wall = m0.elapsed().as_secs_f64();
        let (sent1, recv1) = (sent.load(Ordering::Relaxed), received.load(Ordering::Relaxed));
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
        let _ = total;
        let forwarded = (out1 - out0) as f64;
        let expected = ((sent1 - sent0) * a.subscribers as u64) as f64;
        println!(
            "jonction: {:.0} frames forwarded, server CPU {:.1} % of one core",
            forwarded,
            (cpu1 - cpu0) / wall * 100.0
        );
        Figures {
            pps: forwarded / wall,
            cpu_us_per_pkt: (cpu1 - cpu0) * 1e6 / forwarded.max(1.0),
            p50_us: quantile(&lat0, &lat1, 0.5),
            p99_us: quantile(&lat0, &lat1, 0.99),
            delivered_pct: (recv1 - recv0) as f64 * 100.0 / expected.max(1.0),
        }
    })
}

/// The reference: this same program as a child process relaying plain UDP.
fn run_reference(a: &Args) -> Figures {
    let sinks: Vec<UdpSocket> = (0..a.subscribers)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("sink"))
        .collect();
    let dests: Vec<String> = sinks
        .iter()
        .map(|s| s.local_addr().expect("addr").to_string())
        .collect();
    let relay_port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port");
    let warmup = 2u64;
    let child = Command::new(std::env::current_exe().expect("exe"))
        .arg("--relay")
        .arg(relay_port.to_string())
        .arg(warmup.to_string())
        .arg(a.seconds.to_string())
        .args(&dests)
        .stdout(Stdio::piped())
        .spawn()
        .expect("relay");
    std::thread::sleep(Duration::from_millis(300));
    let stop = Arc::new(AtomicBool::new(false));
    // Sinks drain their sockets so the kernel buffers never fill.
    let mut threads = Vec::new();
    for s in sinks {
        let stop = stop.clone();
        s.set_read_timeout(Some(Duration::from_millis(100))).ok();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = s.recv(&mut buf);
            }
        }));
    }
    // N senders at 50 packets/s each, from one paced thread.
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let relay: SocketAddr = ([127, 0, 0, 1], relay_port).into();
    let until = Instant::now() + Duration::from_secs(warmup + a.seconds + 1);
    let pkt = vec![0x80u8; PAYLOAD + 12];
    let mut next = Instant::now();
    while Instant::now() < until {
        for _ in 0..a.publishers {
            let _ = sender.send_to(&pkt, relay);
        }
        next += FRAME;
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let out = child.wait_with_output().expect("relay output");
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<f64> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let (fwd, cpu, wall, p50, p99) = (nums[0], nums[1], nums[2], nums[3] as u64, nums[4] as u64);
    Figures {
        pps: fwd / wall,
        cpu_us_per_pkt: cpu * 1e6 / fwd.max(1.0),
        p50_us: p50,
        p99_us: p99,
        delivered_pct: 100.0,
    }
}

/// `--relay PORT WARMUP SECONDS DEST...`: receive on PORT, send each datagram to every DEST,
/// print "forwarded cpu_s wall_s p50_us p99_us" for the measured window.
fn relay_main(v: &[String]) {
    let port: u16 = v[0].parse().expect("port");
    let warmup = Duration::from_secs(v[1].parse().expect("warmup"));
    let secs = Duration::from_secs(v[2].parse().expect("seconds"));
    let dests: Vec<SocketAddr> = v[3..].iter().map(|d| d.parse().expect("dest")).collect();
    let sock = UdpSocket::bind(("127.0.0.1", port)).expect("relay bind");
    sock.set_read_timeout(Some(Duration::from_millis(100))).ok();
    let pid = std::process::id();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    let mut hist = jonction::rooms::latency::Histogram::default();
    let mut forwarded = 0u64;
    let mut measuring = false;
    let mut cpu0 = 0.0;
    let mut m0 = start;
    loop {
        let el = start.elapsed();
        if !measuring && el >= warmup {
            measuring = true;
            cpu0 = cpu_seconds(pid);
            m0 = Instant::now();
        }
        if el >= warmup + secs {
            break;
        }
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let t_in = Instant::now();
        for d in &dests {
            let _ = sock.send_to(&buf[..n], d);
            if measuring {
                hist.record(t_in.elapsed());
                forwarded += 1;
            }
        }
    }
    let cpu = cpu_seconds(pid) - cpu0;
    println!(
        "{} {} {} {} {}",
        forwarded,
        cpu,
        m0.elapsed().as_secs_f64(),
        hist.quantile_us(0.5),
        hist.quantile_us(0.99)
    );
}
