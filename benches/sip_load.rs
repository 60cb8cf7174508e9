//! Whole-process SIP capacity run: N concurrent sipp calls (PCMU, a tone) into N rooms that each
//! hold one LiveKit participant publishing Opus. Every call publishes the caller's G.711 unchanged
//! and mixes the room's Opus for the caller (decode + PCMU encode every 20 ms). Reports the
//! gateway's CPU per call and the frames each call delivered both ways, next to the codec floor
//! measured in the same run (Opus decode + PCMU encode of one 20 ms frame), and how much of that
//! CPU the embedded room server took (its busy time from /metrics). Also reports what
//! the load itself costs (sipp and the room participants share the gateway's cores), what that
//! leaves per call at the 500-call target, the publishers' stalls (ticks > 100 ms apart) and the
//! datagrams the kernel dropped on the gateway's full sockets. The gateway runs with its default
//! `[calls]` limits, so past its capacity it refuses calls (counted here) rather than degrade
//! them all; `JONCTION_CALLS__MAX_SCHEDULING_DELAY=0s JONCTION_CALLS__ROOM_SERVER_BUSY_LIMIT=0`
//! in the environment turn that off.
//!
//! With `--external-rooms`, the rooms run in a second jonction process that the gateway joins as
//! it would join LiveKit at scale, and the gateway's CPU is its own.
//!
//!     cargo bench --bench sip_load -- [--calls N] [--seconds S] [--external-rooms]

#[path = "common/mod.rs"]
mod common;
use common::{
    browser_opus_encoder, cpu_seconds, free_port, http_get, load_budget, metric, quantiles,
    system_seconds, udp_drops, ulaw_wav, Rooms, ROOM_SERVER_BUSY, TALKING,
};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jonction::livekit::connection::RoomLink;
use jonction::livekit::ClientEvent;
use jonction::media::codec::{AudioDecoder, AudioEncoder, Codec};
use jonction::token::{Keys, TokenRequest};
use livekit_protocol as proto;
use str0m::media::{Frequency, MediaKind, MediaTime};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn arg(name: &str, default: u64) -> u64 {
    let v: Vec<String> = std::env::args().collect();
    v.iter()
        .position(|a| a == name)
        .and_then(|i| v.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The codec floor: Opus decode (a browser's 48 kHz packet, to 8 kHz) + PCMU encode, per frame.
fn codec_floor() -> Duration {
    let mut enc = browser_opus_encoder();
    let pcm: Vec<i16> = (0..960)
        .map(|i| ((i as f32 * 0.057).sin() * 9000.0) as i16)
        .collect();
    let mut pkt = [0u8; 400];
    let len = enc.encode(&pcm, &mut pkt).expect("encode");
    let mut dec = Codec::Opus.decoder(8000).expect("decoder");
    let mut ulaw = Codec::Pcmu.encoder(8000).expect("pcmu");
    let mut out = [0i16; 960];
    let mut bytes = [0u8; 400];
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        let k = dec.decode(&pkt[..len], &mut out).unwrap_or(0);
        let _ = ulaw.encode(&out[..k.min(160)], &mut bytes);
    }
    t.elapsed() / n
}

fn main() {
    let calls = arg("--calls", 20) as usize;
    let seconds = arg("--seconds", 20);
    let dir = std::env::temp_dir().join(format!("jonction-sipload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let sip: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let records = dir.join("calls.jsonl");
    let rooms = Rooms::from_args(&dir);
    let (pid, _guard) = rooms.spawn_gateway(http, sip, &records, &[]);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let keys = Keys::new("devkey", "secret");
    let url = rooms.url(http);
    // One Opus publisher per room.
    let mut enc = browser_opus_encoder();
    let packets: Vec<Vec<u8>> = (0..50)
        .map(|f| {
            let pcm: Vec<i16> = (0..960)
                .map(|i| (((f * 960 + i) as f32 * 0.0576).sin() * 9000.0) as i16)
                .collect();
            let mut b = [0u8; 400];
            let n = enc.encode(&pcm, &mut b).expect("encode");
            b[..n].to_vec()
        })
        .collect();
    let packets = Arc::new(packets);
    let stalls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for r in 0..calls {
        let (url, keys, stop, packets) = (url.clone(), keys.clone(), stop.clone(), packets.clone());
        let stalls = stalls.clone();
        rt.spawn(async move {
            let t = keys
                .mint(&TokenRequest::new(
                    format!("load{r}"),
                    format!("speaker{r}"),
                ))
                .expect("token");
            let Ok(mut link) = RoomLink::connect_with(&url, &t, LO, false).await else {
                eprintln!("publisher {r} failed to connect");
                return;
            };
            link.client().publish(
                "mic",
                "mic",
                MediaKind::Audio,
                proto::TrackSource::Microphone,
            );
            link.flush();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let (mut n, mut published, mut last) = (0u64, false, Instant::now());
            while !stop.load(Ordering::Relaxed) {
                tokio::select! {
                    _ = tick.tick() => if published {
                        n += 1;
                        let at = Instant::now();
                        if n > 1 && at - last > Duration::from_millis(100) {
                            stalls.fetch_add(1, Ordering::Relaxed);
                        }
                        last = at;
                        let time = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
                        let p = packets[(n % 50) as usize].clone();
                        let _ = link.client().write("mic", "opus", Instant::now(), time, p, Some(TALKING));
                        link.flush();
                    },
                    ev = link.next_event() => match ev {
                        Ok(ClientEvent::Published { .. }) => published = true,
                        Ok(_) => {}
                        Err(_) => return,
                    },
                }
            }
            link.leave();
        });
    }
    std::thread::sleep(Duration::from_secs(2));

    // sipp: N calls at once, one per room, each streaming the tone for `seconds`.
    let wav = dir.join("tone.wav");
    ulaw_wav(&wav, seconds as u32 + 5);
    let scenario = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sip/scenarios/uac_pcmu_stream.xml"
    ))
    .expect("scenario")
    .replace("@WAV@", &wav.to_string_lossy())
    .replace("[service]", "[field0]");
    std::fs::write(dir.join("uac.xml"), scenario).expect("scenario");
    let mut csv = String::from("SEQUENTIAL\n");
    for r in 0..calls {
        csv.push_str(&format!("load{r};\n"));
    }
    std::fs::write(dir.join("rooms.csv"), csv).expect("csv");
    let t_calls = Instant::now();
    let mut sipp = Command::new("sipp")
        .arg(sip.to_string())
        .args([
            "-sf",
            "uac.xml",
            "-inf",
            "rooms.csv",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
        ])
        .args([
            "-m",
            &calls.to_string(),
            "-l",
            &calls.to_string(),
            "-r",
            "50",
        ])
        .args(["-d", &(seconds * 1000).to_string(), "-nostdin", "-timeout"])
        .arg(format!("{}s", seconds + 60))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (Debian sip-tester) must be installed");
    // Measure the steady state: all calls up, until shortly before they end.
    let ramp = Duration::from_millis(calls as u64 * 20 + 2000);
    std::thread::sleep(ramp);
    let load_cpu = || cpu_seconds(std::process::id()) + cpu_seconds(sipp.id());
    let busy0 = metric(&http_get(http, "/metrics"), ROOM_SERVER_BUSY);
    let (cpu0, sys0, load0, rooms0) = (
        cpu_seconds(pid),
        system_seconds(pid),
        load_cpu(),
        rooms.cpu_seconds(),
    );
    let m0 = Instant::now();
    let window = Duration::from_secs(seconds).saturating_sub(ramp + Duration::from_secs(2));
    std::thread::sleep(window.max(Duration::from_secs(2)));
    let (cpu, sys, load, rooms_cpu) = (
        cpu_seconds(pid) - cpu0,
        system_seconds(pid) - sys0,
        load_cpu() - load0,
        rooms.cpu_seconds() - rooms0,
    );
    let wall = m0.elapsed().as_secs_f64();
    let metrics = http_get(http, "/metrics");
    let busy = metric(&metrics, ROOM_SERVER_BUSY) - busy0;
    // Calls refused by the gateway's limits cost it almost nothing: per-call figures count the
    // calls it carried.
    let carried = (metric(&metrics, "jonction_calls_active{protocol=\"sip\"}") as usize).max(1);
    let drops = udp_drops(pid);
    let status = sipp.wait().expect("sipp");
    let total = t_calls.elapsed();
    stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));

    let text = std::fs::read_to_string(&records).unwrap_or_default();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let sum = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap_or(0)).sum::<u64>() as f64;
    let dur_s: f64 = rows
        .iter()
        .map(|r| {
            (r["end_ms"].as_u64().unwrap_or(0) as f64 - r["start_ms"].as_u64().unwrap_or(0) as f64)
                / 1000.0
        })
        .sum();
    let expected = dur_s * 50.0;
    let floor = codec_floor();
    let per_call_us_per_s = cpu * 1e6 / wall / carried as f64;
    let floor_us_per_s = floor.as_secs_f64() * 1e6 * 50.0;
    println!(
        "sip_load: {calls} calls of {seconds} s, sipp exit {:?}, {:.1} s in all",
        status.code(),
        total.as_secs_f64()
    );
    let refused = |limit: &str| {
        metric(
            &metrics,
            &format!("jonction_calls_refused_total{{limit=\"{limit}\"}}"),
        )
    };
    println!(
        "call records: {} of {calls}; refused by [calls] limits: {} (scheduling delay), {} (room server busy), {} (max_concurrent), {} (max_per_second)",
        rows.len(),
        refused("scheduling_delay"),
        refused("room_server_busy"),
        refused("max_concurrent"),
        refused("max_per_second"),
    );
    println!(
        "room publishers' ticks more than 100 ms apart: {}; datagrams dropped on the gateway's full sockets: {drops}",
        stalls.load(Ordering::Relaxed)
    );
    println!(
        "gateway CPU: {:.1} % of one core for {carried} calls in progress = {:.2} % per call ({:.0} µs per call-second)",
        cpu / wall * 100.0,
        cpu / wall * 100.0 / carried as f64,
        per_call_us_per_s
    );
    rooms.report("call", carried, wall, cpu, busy, rooms_cpu);
    // The load generators run every offered call (and every room's publisher); the gateway's
    // share is scaled to what it would use for all of them at its per-carried-call cost.
    let scale = calls as f64 / carried as f64 / wall;
    let left = load_budget("call", calls, 500.0, cpu * scale, sys * scale, load / wall);
    println!(
        "codec floor (Opus decode + PCMU encode, 20 ms): {:.1} µs = {:.0} µs per call-second; ratio {:.2}x",
        floor.as_secs_f64() * 1e6,
        floor_us_per_s,
        per_call_us_per_s / floor_us_per_s
    );
    println!(
        "the codec floor alone is {:.0} % of that {:.2} % left per call at 500 calls",
        floor_us_per_s / 1e6 / left.max(1e-9) * 100.0,
        left * 100.0
    );
    println!(
        "device → room: {:.2} % of expected frames; room → device: {:.2} % of expected frames",
        sum("frames_to_room") * 100.0 / expected.max(1.0),
        sum("frames_to_device") * 100.0 / expected.max(1.0)
    );
    let (mixed, late, concealed, overflow) = (
        sum("room_frames_mixed"),
        sum("room_frames_late"),
        sum("room_frames_concealed"),
        sum("room_frames_overflow"),
    );
    let room_frames = (mixed + late + overflow).max(1.0);
    println!(
        "room → device: {:.3} % of room frames late (dropped by the jitter buffer), {:.3} % concealed, {:.3} % dropped after bursts ({mixed:.0} mixed)",
        late * 100.0 / room_frames,
        concealed * 100.0 / room_frames,
        overflow * 100.0 / room_frames,
    );
    println!(
        "scheduling delay (a timer task's lateness, last half-second): {:.1} ms",
        metric(&metrics, "jonction_scheduling_delay_seconds") * 1e3
    );
    for (name, what) in [
        (
            "jonction_call_uplink_latency_seconds",
            "added latency device → room (RTP in → datagram out)",
        ),
        (
            "jonction_call_downlink_tick_seconds",
            "20 ms tick device-ward (mix + encode + send)",
        ),
        (
            "jonction_forward_latency_seconds",
            "room server forwarding (datagram in → out)",
        ),
    ] {
        let (n, p50, p99) = quantiles(&metrics, name);
        println!("{what}: p50 ≤ {p50} µs, p99 ≤ {p99} µs ({n} samples)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
