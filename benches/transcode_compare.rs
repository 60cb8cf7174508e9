//! Side-by-side one-way PCMU → Opus transcoding capacity: `rtpengine` (Debian `rtpengine-daemon`,
//! userspace, driven over its ng protocol) against jonction in Opus-publishing mode
//! (`livekit.publish_opus = true`), for the same N in the same run, next to the codec floor
//! measured in the same process.
//!
//!     integration/setup.sh --bench        # installs sip-tester and rtpengine-daemon (idempotent)
//!     cargo bench --bench transcode_compare -- [--calls 20,40,60,80,120] [--seconds 15] [--external-rooms]
//!
//! Both sides get the same input: N streams of a 440 Hz tone as PCMU, 20 ms per packet, 50 packets
//! per second each, on loopback. Only the transcoder's own process CPU is counted (utime + stime of
//! all its threads from /proc over a steady window after every stream is up); the senders and
//! sinks run elsewhere (this process, sipp).
//!
//! - **rtpengine** (`--table=-1`, no kernel module, `--interface=127.0.0.1`, default worker
//!   threads): per call an `offer` (the caller's PCMU SDP, `codec: {mask: [all], transcode:
//!   [opus]}`), an `answer` (the callee's `opus/48000/2` SDP), then this process sends PCMU RTP to
//!   the caller-side port rtpengine answered and counts what arrives on the callee's socket; each
//!   packet is checked to carry the negotiated Opus payload type. Per frame rtpengine receives
//!   the RTP, decodes PCMU, resamples 8 → 48 kHz, encodes Opus (its default 32 kbit/s, 2-channel
//!   as the `opus/48000/2` format says) and sends plain RTP. `delete` at the end.
//! - **jonction** (`JONCTION_LIVEKIT__PUBLISH_OPUS=true`, embedded room server): sipp places N
//!   calls (`tests/sip/scenarios/uac_pcmu_stream.xml`), one per room; each room holds one
//!   subscriber (jonction's own `RoomLink`, in this process) that counts the Opus frames it
//!   receives. Per frame jonction receives the RTP, runs the uplink jitter buffer, decodes PCMU,
//!   encodes Opus (mono, 8 kHz input, 32 kbit/s VBR, in-band FEC), SRTP-protects and sends it to
//!   its room server, which decrypts, forwards and re-encrypts it to the subscriber — and it keeps
//!   the caller's downlink running (a 20 ms tick that mixes the room, here silence, and sends PCMU
//!   back to sipp). So jonction does more per frame than rtpengine, except for the resample.
//! - **codec floor**: PCMU decode + Opus encode of one 20 ms frame (the one-way work; at 8 kHz as
//!   jonction encodes, and at 48 kHz as rtpengine's format), and the two-way floor (+ Opus decode
//!   + PCMU encode).
//!
//! With `--external-rooms`, jonction's rooms run in a second jonction process that it joins as
//! it would join LiveKit at scale: its CPU is then the gateway's own, without the room server's
//! forwarding (which rtpengine does not do).
//!
//! Saturation point of a side = the largest N whose frames out stay ≥ 99.5 % of the frames sent
//! and whose CPU stays below one core; calls per core = that N / the cores it used.

#[path = "common/mod.rs"]
mod common;
use common::{
    cpu_seconds, external_rooms_asked, free_port, http_get, system_seconds, ulaw_wav, Guard, Rooms,
    NO_OVERLOAD_LIMITS,
};

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jonction::livekit::connection::RoomLink;
use jonction::livekit::ClientEvent;
use jonction::media::codec::{AudioDecoder, AudioEncoder, Codec};
use jonction::token::{Keys, TokenRequest};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Streams are up and steady this long before the CPU window opens.
const WARMUP: Duration = Duration::from_secs(3);

fn arg(name: &str) -> Option<String> {
    let v: Vec<String> = std::env::args().collect();
    v.iter()
        .position(|a| a == name)
        .and_then(|i| v.get(i + 1))
        .cloned()
}

/// One second (50 frames) of a 440 Hz tone, PCM at 8 kHz.
fn tone_frames() -> Vec<Vec<i16>> {
    (0..50)
        .map(|f| {
            (0..160)
                .map(|i| {
                    let t = (f * 160 + i) as f32 / 8000.0;
                    ((t * 2.0 * std::f32::consts::PI * 440.0).sin() * 12000.0) as i16
                })
                .collect()
        })
        .collect()
}

fn ulaw(pcm: &[i16]) -> Vec<u8> {
    let mut enc = Codec::Pcmu.encoder(8000).expect("pcmu");
    let mut out = vec![0u8; pcm.len()];
    let n = enc.encode(pcm, &mut out).expect("pcmu encode");
    out.truncate(n);
    out
}

// ---------------------------------------------------------------------------------------------
// Codec floor

struct Floor {
    /// PCMU decode + Opus encode at 8 kHz (jonction's uplink), µs per frame.
    one_way_8k: f64,
    /// PCMU decode + Opus encode at 48 kHz (rtpengine's format; the resample is not counted).
    one_way_48k: f64,
    /// One-way at 8 kHz + Opus decode (48 kHz packet, to 8 kHz) + PCMU encode.
    two_way: f64,
}

/// The fastest of three timed passes of `frames` iterations of `f`, in µs per iteration.
fn time_us(frames: u32, mut f: impl FnMut(usize)) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            for i in 0..frames as usize {
                f(i);
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(frames)
        })
        .fold(f64::MAX, f64::min)
}

fn codec_floor() -> Floor {
    let tone = tone_frames();
    let pcmu: Vec<Vec<u8>> = tone.iter().map(|f| ulaw(f)).collect();
    let mut dec_u = Codec::Pcmu.decoder(8000).expect("pcmu");
    let mut enc_u = Codec::Pcmu.encoder(8000).expect("pcmu");
    let mut enc8 = Codec::Opus.encoder(8000).expect("opus");
    let mut enc48 = Codec::Opus.encoder(48_000).expect("opus");
    let mut dec_o = Codec::Opus.decoder(8000).expect("opus");
    // Browser-like packets of the tone for the downlink half.
    let mut enc_b = Codec::Opus.encoder(48_000).expect("opus");
    let opus48: Vec<Vec<u8>> = tone
        .iter()
        .map(|f| {
            let up: Vec<i16> = f.iter().flat_map(|&s| [s; 6]).collect();
            let mut b = [0u8; 1500];
            let n = enc_b.encode(&up, &mut b).expect("encode");
            b[..n].to_vec()
        })
        .collect();
    let mut pcm = [0i16; 960];
    let mut up = [0i16; 960];
    let mut out = [0u8; 1500];
    let n = 3000;
    let one_way_8k = time_us(n, |i| {
        let k = dec_u.decode(&pcmu[i % 50], &mut pcm).unwrap_or(0);
        let _ = enc8.encode(&pcm[..k], &mut out);
    });
    let one_way_48k = time_us(n, |i| {
        let k = dec_u.decode(&pcmu[i % 50], &mut pcm).unwrap_or(0);
        for (j, s) in pcm[..k].iter().enumerate() {
            up[j * 6..j * 6 + 6].fill(*s);
        }
        let _ = enc48.encode(&up[..k * 6], &mut out);
    });
    let two_way = time_us(n, |i| {
        let k = dec_u.decode(&pcmu[i % 50], &mut pcm).unwrap_or(0);
        let _ = enc8.encode(&pcm[..k], &mut out);
        let k = dec_o.decode(&opus48[i % 50], &mut pcm).unwrap_or(0);
        let _ = enc_u.encode(&pcm[..k], &mut out);
    });
    Floor {
        one_way_8k,
        one_way_48k,
        two_way,
    }
}

// ---------------------------------------------------------------------------------------------
// bencode, just enough for the ng protocol

enum Be {
    Int(i64),
    Str(Vec<u8>),
    List(Vec<Be>),
    Dict(BTreeMap<Vec<u8>, Be>),
}

impl Be {
    fn s(v: &str) -> Be {
        Be::Str(v.as_bytes().to_vec())
    }
    fn dict(pairs: Vec<(&str, Be)>) -> Be {
        Be::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Be::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Be::Str(s) => {
                out.extend_from_slice(format!("{}:", s.len()).as_bytes());
                out.extend_from_slice(s);
            }
            Be::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Be::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Be::Str(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }
    /// Parses one value at `*i`; `None` on malformed input.
    fn decode(b: &[u8], i: &mut usize) -> Option<Be> {
        match *b.get(*i)? {
            b'i' => {
                let end = *i + b[*i..].iter().position(|&c| c == b'e')?;
                let v = std::str::from_utf8(&b[*i + 1..end]).ok()?.parse().ok()?;
                *i = end + 1;
                Some(Be::Int(v))
            }
            b'l' => {
                *i += 1;
                let mut l = Vec::new();
                while *b.get(*i)? != b'e' {
                    l.push(Be::decode(b, i)?);
                }
                *i += 1;
                Some(Be::List(l))
            }
            b'd' => {
                *i += 1;
                let mut d = BTreeMap::new();
                while *b.get(*i)? != b'e' {
                    let Be::Str(k) = Be::decode(b, i)? else {
                        return None;
                    };
                    d.insert(k, Be::decode(b, i)?);
                }
                *i += 1;
                Some(Be::Dict(d))
            }
            _ => {
                let colon = *i + b[*i..].iter().position(|&c| c == b':')?;
                let n: usize = std::str::from_utf8(&b[*i..colon]).ok()?.parse().ok()?;
                let s = b.get(colon + 1..colon + 1 + n)?.to_vec();
                *i = colon + 1 + n;
                Some(Be::Str(s))
            }
        }
    }
    fn get(&self, key: &str) -> Option<&Be> {
        match self {
            Be::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }
    fn text(&self, key: &str) -> String {
        match self.get(key) {
            Some(Be::Str(s)) => String::from_utf8_lossy(s).into_owned(),
            _ => String::new(),
        }
    }
}

/// An ng control client: one request, one reply (cookie-matched), bounded by a timeout.
struct Ng {
    sock: UdpSocket,
    to: SocketAddr,
    seq: u64,
}

impl Ng {
    fn new(to: SocketAddr) -> Ng {
        let sock = UdpSocket::bind((LO, 0)).expect("ng socket");
        sock.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        Ng { sock, to, seq: 0 }
    }

    fn call(&mut self, msg: Be) -> Result<Be, String> {
        self.seq += 1;
        let cookie = format!("{}_{}", std::process::id(), self.seq);
        let mut out = format!("{cookie} ").into_bytes();
        msg.encode(&mut out);
        self.sock
            .send_to(&out, self.to)
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 65_536];
        for _ in 0..8 {
            let n = self.sock.recv(&mut buf).map_err(|e| e.to_string())?;
            let Some(sp) = buf[..n].iter().position(|&c| c == b' ') else {
                continue;
            };
            if buf[..sp] != *cookie.as_bytes() {
                continue;
            }
            let mut i = sp + 1;
            let reply = Be::decode(&buf[..n], &mut i).ok_or("malformed ng reply")?;
            return match reply.text("result").as_str() {
                "ok" | "pong" => Ok(reply),
                r => Err(format!("{r}: {}", reply.text("error-reason"))),
            };
        }
        Err("no matching ng reply".into())
    }
}

fn sdp(port: u16, pt: &str, rtpmap: &str) -> String {
    format!(
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {rtpmap}\r\na=ptime:20\r\n"
    )
}

/// The port of the first m-line and the payload type whose rtpmap starts with `codec`.
fn sdp_port_pt(sdp: &str, codec: &str) -> Option<(u16, u8)> {
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let pt = sdp.lines().find_map(|l| {
        let (pt, map) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        map.to_ascii_lowercase()
            .starts_with(codec)
            .then(|| pt.parse().ok())?
    })?;
    Some((port, pt))
}

// ---------------------------------------------------------------------------------------------
// One measured point

struct Point {
    n: usize,
    /// CPU seconds per wall second (1.0 = one core).
    cores: f64,
    /// The part of `cores` spent in the kernel (system time).
    kernel: f64,
    /// Frames received by the sinks / frames sent into the transcoder over the window.
    out_ratio: f64,
    note: String,
}

impl Point {
    fn us_per_stream_s(&self) -> f64 {
        self.cores * 1e6 / self.n as f64
    }
    fn kernel_us_per_stream_s(&self) -> f64 {
        self.kernel * 1e6 / self.n as f64
    }
    fn healthy(&self) -> bool {
        self.out_ratio >= 0.995 && self.cores < 1.0
    }
}

/// Measures `pid` and the frame counters over `window`: (cores, of which in the kernel, frames
/// out / frames in).
fn measure(
    pid: u32,
    window: Duration,
    sent: &dyn Fn() -> u64,
    recv: &AtomicU64,
) -> (f64, f64, f64) {
    let (c0, k0, s0, r0, t0) = (
        cpu_seconds(pid),
        system_seconds(pid),
        sent(),
        recv.load(Ordering::Relaxed),
        Instant::now(),
    );
    std::thread::sleep(window);
    let (c1, k1, s1, r1) = (
        cpu_seconds(pid),
        system_seconds(pid),
        sent(),
        recv.load(Ordering::Relaxed),
    );
    let wall = t0.elapsed().as_secs_f64();
    let out = (r1 - r0) as f64 / (s1 - s0).max(1) as f64;
    ((c1 - c0) / wall, (k1 - k0) / wall, out)
}

fn run_rtpengine(n: usize, window: Duration, dir: &Path) -> Point {
    let ng_port = free_port();
    // A private media port range below the ephemeral ports (4 per call: RTP + RTCP per side).
    let base = 20_000 + (std::process::id() % 8) * 1_500;
    let log = std::fs::File::create(dir.join(format!("rtpengine-{n}.log"))).expect("log");
    let child = Command::new("rtpengine")
        .args([
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=4",
            "--table=-1",
            "--interface=127.0.0.1",
            "--delete-delay=0",
        ])
        .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
        .arg(format!("--port-min={base}"))
        .arg(format!("--port-max={}", base + 1_499))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect(
            "rtpengine (Debian rtpengine-daemon) must be installed: integration/setup.sh --bench",
        );
    let pid = child.id();
    let _guard = Guard(child);
    let mut ng = Ng::new(SocketAddr::new(LO, ng_port));
    let t0 = Instant::now();
    while ng.call(Be::dict(vec![("command", Be::s("ping"))])).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rtpengine did not answer ng ping"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Set up the calls: caller socket (sends PCMU), callee socket (receives Opus).
    let mut legs = Vec::new();
    let mut opus_pt = 0u8;
    let mut note = String::new();
    for c in 0..n {
        let caller = UdpSocket::bind((LO, 0)).expect("caller socket");
        let callee = UdpSocket::bind((LO, 0)).expect("callee socket");
        let call_id = format!("bench-{}-{n}-{c}", std::process::id());
        let offer = ng
            .call(Be::dict(vec![
                ("command", Be::s("offer")),
                ("call-id", Be::s(&call_id)),
                ("from-tag", Be::s("caller")),
                ("ICE", Be::s("remove")),
                (
                    "sdp",
                    Be::s(&sdp(
                        caller.local_addr().expect("addr").port(),
                        "0",
                        "PCMU/8000",
                    )),
                ),
                (
                    "codec",
                    Be::dict(vec![
                        ("mask", Be::List(vec![Be::s("all")])),
                        ("transcode", Be::List(vec![Be::s("opus")])),
                    ]),
                ),
            ]))
            .expect("ng offer");
        let offered = offer.text("sdp");
        let (_, pt) = sdp_port_pt(&offered, "opus/").expect("rtpengine offers Opus to the callee");
        assert!(
            sdp_port_pt(&offered, "pcmu/").is_none(),
            "PCMU must be masked towards the callee:\n{offered}"
        );
        opus_pt = pt;
        let answer = ng
            .call(Be::dict(vec![
                ("command", Be::s("answer")),
                ("call-id", Be::s(&call_id)),
                ("from-tag", Be::s("caller")),
                ("to-tag", Be::s("callee")),
                ("ICE", Be::s("remove")),
                (
                    "sdp",
                    Be::s(&sdp(
                        callee.local_addr().expect("addr").port(),
                        &pt.to_string(),
                        "opus/48000/2",
                    )),
                ),
            ]))
            .expect("ng answer");
        let answered = answer.text("sdp");
        let (port, pcmu) =
            sdp_port_pt(&answered, "pcmu/").expect("rtpengine answers PCMU to the caller");
        assert_eq!(pcmu, 0, "PCMU payload type");
        caller
            .connect(SocketAddr::new(LO, port))
            .expect("connect caller");
        legs.push((call_id, caller, callee));
    }

    // Sender: every 20 ms one PCMU packet per call, paced on absolute deadlines.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let recv = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let payloads: Vec<Vec<u8>> = tone_frames().iter().map(|f| ulaw(f)).collect();
    let callers: Vec<UdpSocket> = legs
        .iter()
        .map(|l| l.1.try_clone().expect("clone"))
        .collect();
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut pkt = vec![0u8; 12 + 160];
            for k in 0u64.. {
                if stop.load(Ordering::Relaxed) || k > 3_600 * 50 {
                    break;
                }
                let due = start + Duration::from_millis(20 * k);
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                pkt[12..].copy_from_slice(&payloads[(k % 50) as usize]);
                for (c, sock) in callers.iter().enumerate() {
                    pkt[0] = 0x80;
                    pkt[1] = if k == 0 { 0x80 } else { 0 };
                    pkt[2..4].copy_from_slice(&(k as u16).to_be_bytes());
                    pkt[4..8].copy_from_slice(&((k * 160) as u32).to_be_bytes());
                    pkt[8..12].copy_from_slice(&(0x1000_0000 + c as u32).to_be_bytes());
                    if sock.send(&pkt).is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // Sinks: one thread polls every callee socket (non-blocking, every 5 ms).
    let callees: Vec<UdpSocket> = legs
        .iter()
        .map(|l| {
            let s = l.2.try_clone().expect("clone");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let sink = {
        let (stop, recv, wrong, bytes) = (stop.clone(), recv.clone(), wrong.clone(), bytes.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let t = Instant::now();
            while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(3_600) {
                for s in &callees {
                    while let Ok(len) = s.recv(&mut buf) {
                        if len > 12 && buf[1] & 0x7f == opus_pt {
                            recv.fetch_add(1, Ordering::Relaxed);
                            bytes.fetch_add(len as u64 - 12, Ordering::Relaxed);
                        } else {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(WARMUP);
    let (cores, kernel, out_ratio) = measure(pid, window, &|| sent.load(Ordering::Relaxed), &recv);
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let _ = sink.join();
    let r = recv.load(Ordering::Relaxed).max(1);
    note.push_str(&format!(
        "Opus PT {opus_pt}, mean payload {} B, {} non-Opus packets",
        bytes.load(Ordering::Relaxed) / r,
        wrong.load(Ordering::Relaxed)
    ));
    for (call_id, _, _) in &legs {
        let _ = ng.call(Be::dict(vec![
            ("command", Be::s("delete")),
            ("call-id", Be::s(call_id)),
            ("from-tag", Be::s("caller")),
        ]));
    }
    Point {
        n,
        cores,
        kernel,
        out_ratio,
        note,
    }
}

fn run_jonction(n: usize, window: Duration, dir: &Path) -> Point {
    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let sip: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let records = dir.join(format!("calls-{n}.jsonl"));
    let rooms = Rooms::from_args(dir);
    let (pid, _guard) = rooms.spawn_gateway(
        http,
        sip,
        &records,
        &[
            ("JONCTION_LIVEKIT__PUBLISH_OPUS", "true"),
            NO_OVERLOAD_LIMITS[0],
            NO_OVERLOAD_LIMITS[1],
        ],
    );
    let t0 = Instant::now();
    while !http_get(http, "/readyz").contains("200 OK") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "jonction did not get ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let recv = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let keys = Keys::new("devkey", "secret");
    let url = rooms.url(http);
    // One subscriber per room: the sink that makes the room server forward the caller's Opus.
    for r in 0..n {
        let (url, keys, stop, recv, wrong) = (
            url.clone(),
            keys.clone(),
            stop.clone(),
            recv.clone(),
            wrong.clone(),
        );
        rt.spawn(async move {
            let t = keys
                .mint(&TokenRequest::new(format!("tc{r}"), format!("sink{r}")))
                .expect("token");
            let Ok(mut link) = RoomLink::connect(&url, &t, LO).await else {
                eprintln!("sink {r} failed to connect");
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), link.next_event()).await {
                    Ok(Ok(ClientEvent::Media { data, .. })) => {
                        if data.params.spec().codec == str0m::format::Codec::Opus {
                            recv.fetch_add(1, Ordering::Relaxed);
                        } else {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(_)) => return,
                }
            }
            link.leave();
        });
    }
    std::thread::sleep(Duration::from_secs(2));

    let seconds = (WARMUP + window).as_secs() + 2 + n as u64 / 50;
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
    let csv: String = std::iter::once("SEQUENTIAL\n".to_string())
        .chain((0..n).map(|r| format!("tc{r};\n")))
        .collect();
    std::fs::write(dir.join("rooms.csv"), csv).expect("csv");
    let sipp = Command::new("sipp")
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
        .args(["-m", &n.to_string(), "-l", &n.to_string(), "-r", "50"])
        .args(["-d", &(seconds * 1000).to_string(), "-nostdin", "-timeout"])
        .arg(format!("{}s", seconds + 30))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (Debian sip-tester) must be installed");
    let mut sipp = Guard(sipp);
    // All calls placed (50 per second) and joined, then the warm-up.
    std::thread::sleep(Duration::from_millis(n as u64 * 20 + 1000) + WARMUP);
    // Expected = 50 frames per second per call (sipp paces its stream in real time).
    let t_start = Instant::now();
    let nominal = move || (t_start.elapsed().as_secs_f64() * 50.0 * n as f64) as u64;
    let (cores, kernel, out_ratio) = measure(pid, window, &nominal, &recv);
    let deadline = Instant::now() + Duration::from_secs(seconds + 40);
    while sipp.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    drop(rt);
    let text = std::fs::read_to_string(&records).unwrap_or_default();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let opus = rows
        .iter()
        .filter(|r| r["published_codec"].as_str() == Some("opus"))
        .count();
    let sum = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap_or(0)).sum::<u64>();
    Point {
        n,
        cores,
        kernel,
        out_ratio,
        note: format!(
            "{} call records, {opus} published as Opus; frames to room {}, to device {}; {} non-Opus frames at the sinks",
            rows.len(),
            sum("frames_to_room"),
            sum("frames_to_device"),
            wrong.load(Ordering::Relaxed)
        ),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The saturation point: the last healthy N (in increasing N), and its calls per core.
fn saturation(points: &[Point]) -> Option<(&Point, f64)> {
    let p = points.iter().take_while(|p| p.healthy()).last()?;
    Some((p, p.n as f64 / p.cores.max(1e-9)))
}

fn main() {
    let calls: Vec<usize> = arg("--calls")
        .unwrap_or_else(|| "20,40,60,80,120".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let window = Duration::from_secs(arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(15));
    let dir = std::env::temp_dir().join(format!("jonction-transcode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let load_before = loadavg();
    let floor = codec_floor();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for &n in &calls {
        let p = run_rtpengine(n, window, &dir);
        eprintln!(
            "rtpengine N={n}: {:.1} % of a core, {:.2} % out; {}",
            p.cores * 100.0,
            p.out_ratio * 100.0,
            p.note
        );
        theirs.push(p);
        let p = run_jonction(n, window, &dir);
        eprintln!(
            "jonction  N={n}: {:.1} % of a core, {:.2} % out; {}",
            p.cores * 100.0,
            p.out_ratio * 100.0,
            p.note
        );
        ours.push(p);
    }
    let floor_us_s = floor.one_way_8k * 50.0;
    println!(
        "transcode_compare: one-way PCMU → Opus, {} s windows, jonction's rooms {}, load average before {load_before}, after {}",
        window.as_secs(),
        if external_rooms_asked() {
            "in their own process (not counted)"
        } else {
            "in its embedded room server (counted)"
        },
        loadavg()
    );
    println!(
        "codec floor per 20 ms frame: one-way {:.1} µs at 8 kHz ({:.0} µs per stream-second), {:.1} µs at 48 kHz; two-way {:.1} µs",
        floor.one_way_8k, floor_us_s, floor.one_way_48k, floor.two_way
    );
    println!("(µs/str-s: CPU per stream-second, and of that in the kernel, in brackets)");
    println!(
        "{:>4} | {:>30} | {:>30} | {:>9} {:>9}",
        "N",
        "rtpengine CPU µs/str-s (sys) out",
        "jonction CPU µs/str-s (sys) out",
        "ours/rtpe",
        "ours/flr"
    );
    for (t, o) in theirs.iter().zip(&ours) {
        println!(
            "{:>4} | {:>5.1}% {:>6.0} ({:>5.0}) {:>7.2}% | {:>5.1}% {:>6.0} ({:>5.0}) {:>7.2}% | {:>9.2} {:>9.2}",
            t.n,
            t.cores * 100.0,
            t.us_per_stream_s(),
            t.kernel_us_per_stream_s(),
            t.out_ratio * 100.0,
            o.cores * 100.0,
            o.us_per_stream_s(),
            o.kernel_us_per_stream_s(),
            o.out_ratio * 100.0,
            o.us_per_stream_s() / t.us_per_stream_s(),
            o.us_per_stream_s() / floor_us_s,
        );
    }
    let show = |name: &str, pts: &[Point]| match saturation(pts) {
        Some((p, cpc)) => {
            let more = if pts.last().is_some_and(|l| l.n == p.n) {
                " (never saturated: a lower bound)"
            } else {
                ""
            };
            println!(
                "{name}: saturation at N = {} ({:.1} % of a core): {cpc:.0} calls per core{more}",
                p.n,
                p.cores * 100.0
            );
            Some(cpc)
        }
        None => {
            println!("{name}: unhealthy already at the smallest N");
            None
        }
    };
    let t = show("rtpengine", &theirs);
    let o = show("jonction ", &ours);
    if let (Some(t), Some(o)) = (t, o) {
        println!(
            "calls per core, ours / rtpengine: {:.2}x (target ≥ 2x)",
            o / t
        );
    }
    if let Some((p, _)) = saturation(&ours) {
        println!(
            "per-call CPU at N = {}: {:.2}x the one-way codec floor (target ≤ 1.5x); its kernel time plus the floor alone: {:.2}x",
            p.n,
            p.us_per_stream_s() / floor_us_s,
            (p.kernel_us_per_stream_s() + floor_us_s) / floor_us_s
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
