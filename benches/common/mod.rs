//! Helpers shared by the whole-process benchmarks: free ports, process CPU, child guards.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

/// A free local port (UDP and TCP are free together in practice on loopback).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// (utime, stime) of a process, in seconds (USER_HZ is 100 on Linux).
fn times(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}

/// utime + stime of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let (user, system) = times(pid);
    user + system
}

/// stime of a process, in seconds: its time in the kernel (for the gateway, mostly its UDP
/// sends and receives on loopback, with the receiving side's softirq work they trigger).
pub fn system_seconds(pid: u32) -> f64 {
    times(pid).1
}

/// The machine's cores.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |c| c.get()) as f64
}

/// True when the command line asks for the rooms in their own process (see [`Rooms`]).
pub fn external_rooms_asked() -> bool {
    std::env::args().any(|a| a == "--external-rooms")
}

/// Datagrams the kernel dropped on `pid`'s UDP sockets because their receive buffers were
/// full (the `drops` column of /proc/net/udp and udp6 for the sockets it holds).
pub fn udp_drops(pid: u32) -> u64 {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    ["udp", "udp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        })
        .filter(|f| f.get(9).is_some_and(|i| inodes.contains(i)))
        .filter_map(|f| f.last()?.parse::<u64>().ok())
        .sum()
}

/// Prints what the load generators cost (this bench process and its helpers share the
/// gateway's cores) and what that leaves for the gateway at `target` units on this machine;
/// returns that share per unit, in cores. `gateway`, its `kernel` (system) part and `load` are
/// in cores (CPU seconds per second) for `n` units.
pub fn load_budget(unit: &str, n: usize, target: f64, gateway: f64, kernel: f64, load: f64) -> f64 {
    let cores = cores();
    let load_per_unit = load / n as f64;
    let left = (cores - load_per_unit * target) / target;
    println!(
        "load generators: {:.1} % of one core = {:.2} % per {unit}; at {target} {unit}s they would take {:.0} % of this machine's {:.0} %, leaving {:.2} % per {unit} for the gateway (it used {:.2} % here: {:.1}x that)",
        load * 100.0,
        load_per_unit * 100.0,
        load_per_unit * target * 100.0,
        cores * 100.0,
        left * 100.0,
        gateway / n as f64 * 100.0,
        gateway / n as f64 / left.max(1e-9),
    );
    println!(
        "  the gateway's time in the kernel alone (system time: UDP I/O, epoll, timers) was {:.2} % per {unit} = {:.1}x that share",
        kernel / n as f64 * 100.0,
        kernel / n as f64 / left.max(1e-9),
    );
    left
}

/// `[calls]` overload limits off: a bench that measures the cost of N legs must not have some
/// of them refused when the machine saturates (`sip_load` keeps the defaults, and reports them).
pub const NO_OVERLOAD_LIMITS: [(&str, &str); 2] = [
    ("JONCTION_CALLS__MAX_SCHEDULING_DELAY", "0s"),
    ("JONCTION_CALLS__ROOM_SERVER_BUSY_LIMIT", "0"),
];

/// Starts the gateway (`jonction run`, release build) with SIP on `sip`, HTTP on `http`, the
/// embedded room server on loopback, PCMU only, call records in `records`, and `extra`
/// settings; waits a moment for it to listen. `JONCTION_LOG__LEVEL` in the environment is passed
/// on (default `warn`). Returns its pid and the guard that kills it.
pub fn spawn_gateway(
    http: SocketAddr,
    sip: SocketAddr,
    records: &std::path::Path,
    extra: &[(&str, &str)],
) -> (u32, Guard) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_jonction"))
        .arg("run")
        .env("JONCTION_HTTP__LISTEN", http.to_string())
        .env("JONCTION_ROOMS__UDP_PORT", "0")
        .env("JONCTION_ROOMS__BIND_IPS", "127.0.0.1")
        .env("JONCTION_SIP__LISTEN", sip.to_string())
        .env("JONCTION_SIP__CALL_RECORDS", records)
        .env("JONCTION_SIP__CODECS", "PCMU")
        .env(
            "JONCTION_LOG__LEVEL",
            std::env::var("JONCTION_LOG__LEVEL").unwrap_or_else(|_| "warn".into()),
        )
        .envs(extra.iter().copied())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start jonction");
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(800));
    (pid, Guard(child))
}

/// Kills and reaps a child process when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The body of a plain HTTP/1.0 GET.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of an unlabelled sample in a Prometheus exposition (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The RFC 6464 level (-dBov) a room publisher's frames carry: someone talking, as a browser
/// sends it.
pub const TALKING: u8 = 20;

/// The embedded room server's busy-time counter in /metrics (seconds).
pub const ROOM_SERVER_BUSY: &str = "jonction_room_server_busy_seconds_total";

/// The room server's working time, split from the rest of a gateway's CPU over a window:
/// prints both per `unit`-second (`n` units).
/// Busy time is wall time while working, so it over-counts when the cores are contended.
pub fn split_room_server(unit: &str, n: usize, wall: f64, cpu: f64, busy: f64) {
    let per = |x: f64| x * 1e6 / wall / n as f64;
    println!(
        "  of which the embedded room server (busy time, one task): {:.1} % of one core = {:.0} µs per {unit}-second; the rest (SIP/H.323, media, room client): {:.0} µs per {unit}-second",
        busy / wall * 100.0,
        per(busy),
        per((cpu - busy).max(0.0))
    );
}

/// (samples, p50 bucket bound, p99 bucket bound) in µs of a Prometheus histogram.
pub fn quantiles(text: &str, name: &str) -> (u64, String, String) {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = match le.parse::<f64>() {
                Ok(v) => format!("{}", (v * 1e6).round() as u64),
                Err(_) => "∞".to_string(),
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let n = buckets.last().map(|b| b.1).unwrap_or(0);
    let q = |q: f64| {
        let rank = ((n as f64) * q).ceil().max(1.0) as u64;
        buckets
            .iter()
            .find(|(_, c)| *c >= rank)
            .map(|(le, _)| le.clone())
            .unwrap_or_else(|| "-".into())
    };
    (n, q(0.5), q(0.99))
}

/// An Opus encoder configured as a desktop browser's (libwebrtc: complexity 9, 32 kbit/s,
/// in-band FEC), for the room participants the benches play: what jonction decodes depends on
/// it, so it stays fixed whatever jonction's own encoder defaults are.
pub fn browser_opus_encoder() -> jonction::media::codec::opus::OpusEncoder {
    let cfg = jonction::media::codec::opus::OpusConfig {
        complexity: Some(9),
        ..Default::default()
    };
    jonction::media::codec::opus::OpusEncoder::new(48_000, &cfg).expect("opus encoder")
}

/// A µ-law WAV of a 440 Hz tone (for sipp's rtp_stream), encoded with jonction's own G.711.
pub fn ulaw_wav(path: &std::path::Path, seconds: u32) {
    let n = 8000 * seconds as usize;
    let pcm: Vec<i16> = (0..n)
        .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0).sin() * 12000.0) as i16)
        .collect();
    use jonction::media::codec::{AudioEncoder, Codec};
    let mut enc = Codec::Pcmu.encoder(8000).expect("pcmu");
    let mut data = vec![0u8; n];
    for (c, o) in pcm.chunks(160).zip(data.chunks_mut(160)) {
        let _ = enc.encode(c, o);
    }
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("wav");
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(50 + n as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&18u32.to_le_bytes());
    h.extend_from_slice(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&8000u32.to_le_bytes());
    h.extend_from_slice(&8000u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&8u16.to_le_bytes());
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(b"fact");
    h.extend_from_slice(&4u32.to_le_bytes());
    h.extend_from_slice(&(n as u32).to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(n as u32).to_le_bytes());
    f.write_all(&h).expect("header");
    f.write_all(&data).expect("data");
}

/// Where the benchmark's rooms are. By default, the gateway's embedded room server (in the
/// measured process). With `--external-rooms` among the arguments, a second jonction process
/// serves them, standing for the external LiveKit of a deployment at scale, and the gateway
/// joins it as it would join LiveKit: the gateway's CPU, and its kernel time, are then its own.
pub struct Rooms {
    external: Option<(SocketAddr, u32, Guard)>,
}

impl Rooms {
    /// Starts the external room server if the arguments ask for it; its call records (none:
    /// no call reaches it) go in `dir`.
    pub fn from_args(dir: &std::path::Path) -> Self {
        if !external_rooms_asked() {
            return Self { external: None };
        }
        let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let sip: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let records = dir.join("room-server-calls.jsonl");
        // The gateway under test holds the default H.323 port.
        let h323 = format!("127.0.0.1:{}", free_port());
        let extra = [
            NO_OVERLOAD_LIMITS[0],
            NO_OVERLOAD_LIMITS[1],
            ("JONCTION_H323__LISTEN", h323.as_str()),
        ];
        let (pid, guard) = spawn_gateway(http, sip, &records, &extra);
        Self {
            external: Some((http, pid, guard)),
        }
    }

    /// True when the rooms run in their own process.
    pub fn external(&self) -> bool {
        self.external.is_some()
    }

    /// Starts the gateway as [`spawn_gateway`] does, joined to these rooms.
    pub fn spawn_gateway(
        &self,
        http: SocketAddr,
        sip: SocketAddr,
        records: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> (u32, Guard) {
        let url = self.external.as_ref().map(|(h, _, _)| format!("ws://{h}"));
        let mut env = extra.to_vec();
        if let Some(url) = &url {
            env.push(("JONCTION_LIVEKIT__URL", url));
        }
        spawn_gateway(http, sip, records, &env)
    }

    /// The signalling URL the benchmark's own participants join, given the gateway's HTTP
    /// address.
    pub fn url(&self, gateway: SocketAddr) -> String {
        let http = self.external.as_ref().map_or(gateway, |(h, _, _)| *h);
        format!("ws://{http}")
    }

    /// Prints the room server's share over a window of `wall` seconds: the embedded one's
    /// `busy` time (part of the gateway's `cpu`), or the external process's `rooms_cpu` (not
    /// part of it).
    pub fn report(&self, unit: &str, n: usize, wall: f64, cpu: f64, busy: f64, rooms_cpu: f64) {
        if self.external() {
            println!(
                "  the rooms ran in their own process (--external-rooms; not counted above): {:.1} % of one core = {:.0} µs per {unit}-second",
                rooms_cpu / wall * 100.0,
                rooms_cpu * 1e6 / wall / n as f64
            );
            let cores = cores();
            println!(
                "  at this cost the gateway alone, on this machine's {cores:.0} cores with nothing else, would carry about {:.0} {unit}s",
                cores / (cpu / wall / n as f64).max(1e-9)
            );
        } else {
            split_room_server(unit, n, wall, cpu, busy);
        }
    }

    /// CPU seconds used so far by the external room server's process (0 when embedded).
    pub fn cpu_seconds(&self) -> f64 {
        self.external
            .as_ref()
            .map_or(0.0, |(_, pid, _)| cpu_seconds(*pid))
    }
}
