//! Whole-process video capacity run: N SIP video legs, each sending a 720p30 H.264 stream (made
//! by ffmpeg, RTP packetization-mode 1) into its own room, remuxed by the gateway (depacketize,
//! SPS read, re-packetize and SRTP toward the room). Reports the gateway's CPU per leg, the legs
//! one core would carry, and the added latency (the packet completing a picture in → the
//! picture's last room-leg datagram out), next to a reference measured in the same run: the
//! cost of moving the same packets through one plain UDP relay hop (receive + send, no
//! processing), and how much of the CPU the embedded room server took (its busy time from
//! /metrics). Also reports what the load itself costs (this process shares the gateway's
//! cores), what that leaves per leg at the 500-leg target, and the datagrams the kernel dropped
//! on the gateway's full sockets.
//!
//! With `--external-rooms`, the rooms run in a second jonction process that the gateway joins as
//! it would join LiveKit at scale, and the gateway's CPU is its own.
//!
//!     cargo bench --bench video_load -- [--legs N] [--seconds S] [--external-rooms]

#[path = "common/mod.rs"]
mod common;
use common::{
    cpu_seconds, free_port, http_get, load_budget, metric, quantiles, system_seconds, udp_drops,
    Rooms, NO_OVERLOAD_LIMITS, ROOM_SERVER_BUSY,
};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jonction::media::h264::annex_b::access_units;
use jonction::media::h264::packetize::{PacketizationMode, Packetizer, WEBRTC_MAX_PAYLOAD};
use jonction::media::rtp::packet::RtpWriter;
use jonction::media::rtp::Ssrc;
use tokio::net::UdpSocket;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PT: u8 = 102;

/// The RTP payloads (with their marker bit) of each picture of the stream.
type Pictures = Vec<Vec<(Vec<u8>, bool)>>;

fn arg(name: &str, default: u64) -> u64 {
    let v: Vec<String> = std::env::args().collect();
    v.iter()
        .position(|a| a == name)
        .and_then(|i| v.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// 2 s of 720p30 H.264 (Constrained Baseline, 1.5 Mbit/s, an IDR every 2 s) as the RTP
/// payloads of each picture.
fn stream(dir: &std::path::Path) -> Pictures {
    let out = dir.join("720p.h264");
    let ok = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
        ])
        .args([
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "veryfast",
        ])
        .args(["-b:v", "1500k", "-g", "60", "-f", "h264"])
        .arg(&out)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ffmpeg (Debian) is needed to make the 720p stream");
    let bytes = std::fs::read(&out).expect("stream");
    let mut p = Packetizer::new(PacketizationMode::NonInterleaved, WEBRTC_MAX_PAYLOAD);
    access_units(&bytes, 3000)
        .iter()
        .map(|au| {
            let mut v = Vec::new();
            p.packetize(au, |payload, marker| v.push((payload.to_vec(), marker)));
            v
        })
        .collect()
}

/// Reads SIP responses until one with `status`.
async fn response(sip: &UdpSocket, status: u16) -> Option<String> {
    let mut buf = vec![0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (n, _) = tokio::time::timeout_at(deadline, sip.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with(&format!("SIP/2.0 {status}")) {
            return Some(text);
        }
        if text.starts_with("SIP/2.0 4") || text.starts_with("SIP/2.0 5") {
            return None;
        }
    }
}

/// One device: calls room `vload<i>` with audio and H.264 video, then streams the pictures at
/// 30 fps until `stop`.
async fn leg(
    i: usize,
    gw: SocketAddr,
    pictures: Arc<Pictures>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> bool {
    let (Ok(sip), Ok(audio), Ok(video)) = (
        UdpSocket::bind((LO, 0)).await,
        UdpSocket::bind((LO, 0)).await,
        UdpSocket::bind((LO, 0)).await,
    ) else {
        return false;
    };
    let port = |s: &UdpSocket| s.local_addr().map(|a| a.port()).unwrap_or(0);
    let (sp, ap, vp) = (port(&sip), port(&audio), port(&video));
    let sdp = format!(
        "v=0\r\no=dev 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {ap} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtcp-mux\r\n\
         m=video {vp} RTP/AVP {PT}\r\nb=AS:2000\r\na=rtpmap:{PT} H264/90000\r\n\
         a=fmtp:{PT} profile-level-id=42e01f;packetization-mode=1\r\n\
         a=rtcp-fb:* nack pli\r\na=rtcp-mux\r\n"
    );
    let invite = format!(
        "INVITE sip:vload{i}@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bKv{i};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:dev{i}@127.0.0.1>;tag=d{i}\r\nTo: <sip:vload{i}@{gw}>\r\n\
         Call-ID: vload-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:dev{i}@127.0.0.1:{sp}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    if sip.send_to(invite.as_bytes(), gw).await.is_err() {
        return false;
    }
    let Some(ok) = response(&sip, 200).await else {
        return false;
    };
    let to = ok
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .unwrap_or_default()
        .to_string();
    let Some(gw_video) = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=video "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
    else {
        return false;
    };
    let ack = format!(
        "ACK sip:vload{i}@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bKva{i};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:dev{i}@127.0.0.1>;tag=d{i}\r\n{to}\r\nCall-ID: vload-{i}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = sip.send_to(ack.as_bytes(), gw).await;
    let dest = SocketAddr::new(LO, gw_video);
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    let (mut n, mut seq) = (0usize, 0u16);
    let mut pkt = Vec::with_capacity(1500);
    let mut sink = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tick.tick() => {
                let ts = 3000 * n as u32;
                for (payload, marker) in &pictures[n % pictures.len()] {
                    seq = seq.wrapping_add(1);
                    pkt.clear();
                    if RtpWriter::new(PT, seq, ts, Ssrc(0x1000 + i as u32))
                        .marker(*marker)
                        .write(payload, &mut pkt)
                        .is_ok()
                    {
                        let _ = video.send_to(&pkt, dest).await;
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            // The "no video" picture and RTCP coming back: read and dropped.
            _ = video.recv_from(&mut sink) => {}
        }
    }
    let bye = format!(
        "BYE sip:vload{i}@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{sp};branch=z9hG4bKvb{i};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:dev{i}@127.0.0.1>;tag=d{i}\r\n{to}\r\nCall-ID: vload-{i}\r\n\
         CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = sip.send_to(bye.as_bytes(), gw).await;
    response(&sip, 200).await.is_some()
}

/// The reference: CPU per packet of one plain UDP relay hop (receive, send) for the same
/// packets, measured in this process.
fn relay_floor(pictures: &[Vec<(Vec<u8>, bool)>]) -> Duration {
    let a = std::net::UdpSocket::bind((LO, 0)).expect("a");
    let relay = std::net::UdpSocket::bind((LO, 0)).expect("relay");
    let sink = std::net::UdpSocket::bind((LO, 0)).expect("sink");
    let (r_addr, s_addr) = (
        relay.local_addr().expect("addr"),
        sink.local_addr().expect("addr"),
    );
    let mut buf = vec![0u8; 2048];
    let mut n = 0u32;
    let t = Instant::now();
    for pic in pictures.iter().cycle().take(pictures.len() * 2) {
        for (payload, _) in pic {
            let _ = a.send_to(payload, r_addr);
            if let Ok((len, _)) = relay.recv_from(&mut buf) {
                let _ = relay.send_to(&buf[..len], s_addr);
            }
            let _ = sink.recv_from(&mut buf);
            n += 1;
        }
    }
    // Four system calls per packet here; the relay's share is two of them.
    t.elapsed() / n.max(1) / 2
}

fn main() {
    let legs = arg("--legs", 20) as usize;
    let seconds = arg("--seconds", 20);
    let dir = std::env::temp_dir().join(format!("jonction-videoload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let pictures = Arc::new(stream(&dir));
    let per_second: usize = pictures.iter().take(30).map(Vec::len).sum();
    let floor = relay_floor(&pictures);

    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let sip: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let records = dir.join("calls.jsonl");
    let rooms = Rooms::from_args(&dir);
    let (pid, _guard) = rooms.spawn_gateway(
        http,
        sip,
        &records,
        &[
            ("JONCTION_SIP__MEDIA_TIMEOUT", "1h"),
            NO_OVERLOAD_LIMITS[0],
            NO_OVERLOAD_LIMITS[1],
        ],
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..legs {
        let (p, s, c) = (pictures.clone(), stop.clone(), sent.clone());
        tasks.push(rt.spawn(leg(i, sip, p, s, c)));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Steady state: every leg up and publishing.
    std::thread::sleep(Duration::from_secs(3));
    let busy0 = metric(&http_get(http, "/metrics"), ROOM_SERVER_BUSY);
    let (cpu0, sys0, rooms0, load0, sent0, m0) = (
        cpu_seconds(pid),
        system_seconds(pid),
        rooms.cpu_seconds(),
        cpu_seconds(std::process::id()),
        sent.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu = cpu_seconds(pid) - cpu0;
    let sys = system_seconds(pid) - sys0;
    let rooms_cpu = rooms.cpu_seconds() - rooms0;
    let load = cpu_seconds(std::process::id()) - load0;
    let wall = m0.elapsed().as_secs_f64();
    let packets = sent.load(Ordering::Relaxed) - sent0;
    let metrics = http_get(http, "/metrics");
    let busy = metric(&metrics, ROOM_SERVER_BUSY) - busy0;
    let drops = udp_drops(pid);
    stop.store(true, Ordering::Relaxed);
    let up = rt.block_on(async {
        let mut up = 0;
        for t in tasks {
            if matches!(
                tokio::time::timeout(Duration::from_secs(5), t).await,
                Ok(Ok(true))
            ) {
                up += 1;
            }
        }
        up
    });

    std::thread::sleep(Duration::from_millis(500));
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&records)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let video = |k: &str| -> u64 {
        rows.iter()
            .map(|r| r["video"].pointer(k).and_then(|v| v.as_u64()).unwrap_or(0))
            .sum()
    };
    println!(
        "call records: {} of {legs}; pictures published to the rooms: {}, dropped: {}, packets in: {}; datagrams dropped on the gateway's full sockets: {drops}",
        rows.len(),
        video("/frames_to_room"),
        video("/h264/broken_access_units")
            + video("/h264/oversized_nals")
            + video("/h264/waiting_for_keyframe"),
        video("/packets_in")
    );
    let per_leg = cpu / wall / legs as f64;
    let per_packet = Duration::from_secs_f64(cpu / packets.max(1) as f64);
    println!(
        "video_load: {legs} legs of 720p30 H.264 ({per_second} packets/s each), {up} ran to the end, {seconds} s measured"
    );
    println!(
        "gateway CPU: {:.1} % of one core = {:.2} % per leg; one core carries ~{:.0} legs",
        cpu / wall * 100.0,
        per_leg * 100.0,
        1.0 / per_leg.max(1e-9)
    );
    rooms.report("leg", legs, wall, cpu, busy, rooms_cpu);
    println!(
        "per device packet (gateway, with its embedded room server's ingest unless --external-rooms): {:.1} µs; \
         plain UDP relay hop in this run: {:.1} µs; ratio {:.1}x",
        per_packet.as_secs_f64() * 1e6,
        floor.as_secs_f64() * 1e6,
        per_packet.as_secs_f64() / floor.as_secs_f64().max(1e-12)
    );
    let left = load_budget("leg", legs, 500.0, cpu / wall, sys / wall, load / wall);
    println!(
        "that is {:.1} µs per device packet at 500 legs: {:.1}x the plain relay hop",
        left / per_second as f64 * 1e6,
        left / per_second as f64 / floor.as_secs_f64().max(1e-12)
    );
    for (name, what) in [
        (
            "jonction_call_video_uplink_latency_seconds",
            "added latency device → room (packet completing a picture in → its last datagram out)",
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
