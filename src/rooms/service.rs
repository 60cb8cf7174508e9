//! The tokio shell of the room server: owns the UDP media sockets (one per local address, all on
//! the same port) and the [`RoomServer`] core, and runs them in one task. Signalling connections
//! talk to it through a command channel; media never crosses a channel.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::latency::Histogram;
use super::participant::ConnId;
use super::server::{Input, JoinRequest, Output, RoomServer, ServerConfig, Stats};
use crate::config::RoomsConfig;

/// What a signalling connection receives from the room server.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ConnEvent {
    /// A message to send to the client.
    Signal(proto::signal_response::Message),
    /// Close the connection with this reason.
    Close(String),
}

#[allow(clippy::large_enum_variant)]
enum Command {
    Join(JoinRequest, mpsc::UnboundedSender<ConnEvent>),
    Signal(ConnId, proto::signal_request::Message),
    Disconnected(ConnId),
    Stats(oneshot::Sender<Snapshot>),
    Admin(AdminOp, oneshot::Sender<AdminReply>),
    Shutdown(oneshot::Sender<()>),
}

/// An administrative operation (the LiveKit RoomService API).
#[derive(Debug, Clone)]
pub enum AdminOp {
    /// Every open room, or those named.
    ListRooms(Vec<String>),
    /// The participants of a room.
    ListParticipants(String),
    /// Disconnect a participant (room, identity).
    RemoveParticipant(String, String),
    /// Close a room and disconnect everyone in it.
    DeleteRoom(String),
}

/// The answer to an [`AdminOp`].
#[derive(Debug, Clone)]
pub enum AdminReply {
    /// Rooms.
    Rooms(Vec<proto::Room>),
    /// Participants (`None`: no such room).
    Participants(Option<Vec<proto::ParticipantInfo>>),
    /// Whether the room or participant existed.
    Done(bool),
}

/// Counters of the running room server.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Core counters.
    pub stats: Stats,
    /// Open rooms.
    pub rooms: usize,
    /// Connected participants.
    pub participants: usize,
    /// Datagram in → datagram out, for every datagram sent because one arrived.
    pub forward_latency: Histogram,
    /// Datagrams the socket refused (full buffer).
    pub send_drops: u64,
    /// Time the server spent handling input and sending what it caused (not waiting). The
    /// server is one task: a rate near one second per second means it is saturated.
    pub busy: Duration,
}

/// A handle on the running room server (cheap to clone).
#[derive(Clone)]
pub struct RoomService {
    tx: mpsc::UnboundedSender<Command>,
    next_conn: Arc<AtomicU64>,
    candidates: Arc<Vec<SocketAddr>>,
    load: Arc<AtomicU32>,
}

/// How long the busy time is averaged over for [`RoomService::load`].
const LOAD_WINDOW: Duration = Duration::from_millis(500);

/// Asks for a receive buffer of `bytes` (0: leave the default) and says so when the kernel
/// grants less: a burst larger than the buffer is dropped before the room server sees it.
fn set_receive_buffer(sock: &UdpSocket, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let s = socket2::SockRef::from(sock);
    let set = s.set_recv_buffer_size(bytes);
    // Linux reports twice what it grants (the other half is its bookkeeping).
    match (set, s.recv_buffer_size()) {
        (Ok(()), Ok(got)) if got / 2 >= bytes => {}
        (set, got) => warn!(
            wanted = bytes,
            granted = got.map_or(0, |g| g / 2),
            error = set.err().map(|e| e.to_string()),
            "media socket receive buffer smaller than rooms.udp_receive_buffer: \
             raise net.core.rmem_max (sysctl) or bursts will be dropped"
        ),
    }
}

struct Socket {
    sock: UdpSocket,
    /// The address advertised for it (its own, or the public one).
    advertised: SocketAddr,
}

impl RoomService {
    /// Binds the media sockets and starts the room server task.
    pub async fn start(cfg: &RoomsConfig, node_id: String) -> io::Result<(Self, JoinHandle<()>)> {
        let ips = local_ips(cfg)?;
        let mut sockets = Vec::new();
        for ip in ips {
            let local = SocketAddr::new(ip, cfg.udp_port);
            let sock = UdpSocket::bind(local).await.map_err(|e| {
                io::Error::new(e.kind(), format!("cannot bind media socket {local}: {e}"))
            })?;
            set_receive_buffer(&sock, cfg.udp_receive_buffer);
            // Port 0 (tests) picks a free port: advertise the real one.
            let local = sock.local_addr()?;
            let advertised = match cfg.public_ip {
                Some(public) if !ip.is_loopback() => SocketAddr::new(public, local.port()),
                _ => local,
            };
            info!(%local, %advertised, "media socket bound");
            sockets.push(Socket { sock, advertised });
        }
        let mut candidates: Vec<SocketAddr> = sockets.iter().map(|s| s.advertised).collect();
        candidates.dedup();
        let server_cfg = ServerConfig {
            candidates: candidates.clone(),
            empty_timeout: cfg.empty_timeout,
            ping_interval: cfg.ping_interval,
            ping_timeout: cfg.ping_timeout,
            max_participants: cfg.max_participants,
            node_id,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let load = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn(run(server_cfg, sockets, rx, load.clone()));
        Ok((
            Self {
                tx,
                next_conn: Arc::new(AtomicU64::new(1)),
                candidates: Arc::new(candidates),
                load,
            },
            task,
        ))
    }

    /// The advertised ICE host candidates.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// The share of one core the server used over its last half-second or so (it is one task:
    /// near 1.0 it is saturated and every room on it suffers).
    pub fn load(&self) -> f64 {
        f64::from(self.load.load(Ordering::Relaxed)) / 1000.0
    }

    /// A fresh connection id.
    pub fn new_conn(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Joins a participant; its messages arrive on `out`.
    pub fn join(&self, req: JoinRequest, out: mpsc::UnboundedSender<ConnEvent>) {
        let _ = self.tx.send(Command::Join(req, out));
    }

    /// Passes a signalling request.
    pub fn signal(&self, conn: ConnId, msg: proto::signal_request::Message) {
        let _ = self.tx.send(Command::Signal(conn, msg));
    }

    /// Tells the server a connection closed.
    pub fn disconnected(&self, conn: ConnId) {
        let _ = self.tx.send(Command::Disconnected(conn));
    }

    /// Counters, room and participant counts, latency.
    pub async fn stats(&self) -> Option<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Stats(tx)).ok()?;
        rx.await.ok()
    }

    /// Runs an administrative operation; `None` when the server has stopped.
    pub async fn admin(&self, op: AdminOp) -> Option<AdminReply> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Command::Admin(op, tx)).ok()?;
        rx.await.ok()
    }

    /// Tells every participant to leave, then stops the task.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The addresses to bind: configured ones, or every local address (IPv4 and global IPv6).
fn local_ips(cfg: &RoomsConfig) -> io::Result<Vec<IpAddr>> {
    if !cfg.bind_ips.is_empty() {
        return Ok(cfg.bind_ips.clone());
    }
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            // Link-local IPv6 needs a scope id that ICE candidates cannot carry.
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no local IP address",
        ));
    }
    Ok(ips)
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn run(
    cfg: ServerConfig,
    sockets: Vec<Socket>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    load: Arc<AtomicU32>,
) {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut server = RoomServer::new(cfg, now(), unix_ms);
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<ConnEvent>> = HashMap::new();
    let mut batch = Batch::default();
    let mut send_drops = 0u64;
    let mut latency = Histogram::default();
    // When the input being handled is datagrams: when their run was taken up.
    let mut input_at: Option<std::time::Instant> = None;
    // When the current input woke the task up: from then to the next wait is busy time.
    let mut woke = std::time::Instant::now();
    let mut busy = Duration::ZERO;
    // The load window: its start, and the busy time then. The core's own timers (speakers,
    // housekeeping) wake the task a few times a second, so the figure never goes stale.
    let (mut window, mut window_busy) = (woke, busy);
    // One timer re-armed when the core's deadline moves, not a new one per loop.
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut armed: Option<std::time::Instant> = None;
    loop {
        // Drain the core.
        let deadline = deliver(
            &mut server,
            &sockets,
            &mut conns,
            &mut latency,
            &mut send_drops,
            input_at,
        );
        let done = std::time::Instant::now();
        busy += done.saturating_duration_since(woke);
        let span = done.saturating_duration_since(window);
        if span >= LOAD_WINDOW {
            let share = (busy - window_busy).as_secs_f64() / span.as_secs_f64();
            load.store((share * 1000.0).round() as u32, Ordering::Relaxed);
            (window, window_busy) = (done, busy);
        }
        input_at = None;
        if armed != Some(deadline) {
            armed = Some(deadline);
            sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
        }

        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                woke = std::time::Instant::now();
                match cmd {
                    Command::Join(req, out) => {
                        conns.insert(req.conn, out);
                        server.handle_input(now(), Input::Join(req));
                    }
                    Command::Signal(c, m) => server.handle_input(now(), Input::Signal(c, m)),
                    Command::Disconnected(c) => {
                        conns.remove(&c);
                        server.handle_input(now(), Input::Disconnected(c));
                    }
                    Command::Stats(tx) => {
                        let (rooms, participants) = server.counts();
                        let _ = tx.send(Snapshot {
                            stats: server.stats(),
                            rooms,
                            participants,
                            forward_latency: latency.clone(),
                            send_drops,
                            busy,
                        });
                    }
                    Command::Admin(op, reply) => {
                        let t = now();
                        let r = match op {
                            AdminOp::ListRooms(names) => AdminReply::Rooms(server.list_rooms(&names)),
                            AdminOp::ListParticipants(room) => {
                                AdminReply::Participants(server.list_participants(&room))
                            }
                            AdminOp::RemoveParticipant(room, identity) => {
                                AdminReply::Done(server.remove_participant(t, &room, &identity))
                            }
                            AdminOp::DeleteRoom(room) => AdminReply::Done(server.delete_room(t, &room)),
                        };
                        let _ = reply.send(r);
                    }
                    Command::Shutdown(done) => {
                        server.handle_input(now(), Input::Shutdown);
                        while let Output::Signal(..) | Output::Close(..) | Output::Transmit { .. } =
                            flush_one(&mut server, &mut conns)
                        {}
                        let _ = done.send(());
                        break;
                    }
                }
            }
            (idx, source, len) = recv_any(&sockets, &mut batch.bufs[0]) => {
                woke = std::time::Instant::now();
                batch.fill(&sockets[idx].sock, source, len);
                let destination = sockets[idx].advertised;
                // A run of datagrams from one source (one publisher's video frame) is drained
                // once; each run's packets leave before the next run is handled.
                for run in batch.runs(destination) {
                    // Latency from when the run is taken up, as for a datagram read alone.
                    input_at = Some(now());
                    server.handle_datagrams(now(), run);
                    deliver(&mut server, &sockets, &mut conns, &mut latency, &mut send_drops, input_at);
                }
            }
            _ = &mut sleep => {
                armed = None;
                woke = std::time::Instant::now();
                trace!(?deadline, "room server timeout");
                server.handle_input(now(), Input::Timeout);
            }
        }
    }
    info!("room server stopped");
}

/// Delivers one pending output during shutdown; returns it (Timeout ends the loop).
fn flush_one(
    server: &mut RoomServer,
    conns: &mut HashMap<ConnId, mpsc::UnboundedSender<ConnEvent>>,
) -> Output {
    let o = server.poll_output();
    match &o {
        Output::Signal(conn, msg) => {
            if let Some(tx) = conns.get(conn) {
                let _ = tx.send(ConnEvent::Signal(msg.clone()));
            }
        }
        Output::Close(conn, why) => {
            if let Some(tx) = conns.remove(conn) {
                let _ = tx.send(ConnEvent::Close(why.clone()));
            }
        }
        _ => {}
    }
    o
}

/// Datagrams read from one socket in one go, at most this many.
const BATCH: usize = 16;

/// Buffers for the datagrams of one wake-up: the first from `recv_any`, then those already
/// queued on the same socket, so that the room server drains each peer connection once for all
/// of them (one publisher's video frame arrives as several back-to-back packets).
struct Batch {
    bufs: Vec<Vec<u8>>,
    /// Source and length of each datagram read.
    got: Vec<(SocketAddr, usize)>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            bufs: vec![vec![0u8; 2048]; BATCH],
            got: Vec::with_capacity(BATCH),
        }
    }
}

impl Batch {
    /// Records the datagram in `bufs[0]`, then reads what `sock` already holds (no waiting).
    fn fill(&mut self, sock: &UdpSocket, source: SocketAddr, len: usize) {
        self.got.clear();
        self.got.push((source, len));
        let mut errors = 0;
        while self.got.len() < BATCH && errors < BATCH {
            match sock.try_recv_from(&mut self.bufs[self.got.len()]) {
                Ok((len, source)) => self.got.push((source, len)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // ICMP errors surface here on Linux: skip them and read on.
                Err(_) => errors += 1,
            }
        }
    }

    /// The datagrams read, in runs of consecutive ones from one source, as the room server
    /// takes them.
    fn runs(
        &self,
        destination: SocketAddr,
    ) -> impl Iterator<Item = impl Iterator<Item = (SocketAddr, SocketAddr, &[u8])>> {
        let mut start = 0;
        self.got.chunk_by(|a, b| a.0 == b.0).map(move |run| {
            let bufs = &self.bufs[start..start + run.len()];
            start += run.len();
            run.iter()
                .zip(bufs)
                .map(move |(&(source, len), buf)| (source, destination, &buf[..len]))
        })
    }
}

/// Delivers the core's outputs (datagrams, signalling) until it asks for a timeout; returns
/// when. A datagram sent while `input_at` is set counts in `latency` from then.
fn deliver(
    server: &mut RoomServer,
    sockets: &[Socket],
    conns: &mut HashMap<ConnId, mpsc::UnboundedSender<ConnEvent>>,
    latency: &mut Histogram,
    send_drops: &mut u64,
    input_at: Option<std::time::Instant>,
) -> std::time::Instant {
    loop {
        match server.poll_output() {
            Output::Transmit {
                source,
                destination,
                data,
            } => {
                let sock = sockets
                    .iter()
                    .find(|s| s.advertised == source)
                    .or_else(|| sockets.first());
                if let Some(s) = sock {
                    let sent = s.sock.try_send_to(&data, destination);
                    if let Some(t0) = input_at {
                        latency.record(t0.elapsed());
                    }
                    if sent.is_err() {
                        *send_drops += 1;
                        if send_drops.is_power_of_two() {
                            warn!(
                                send_drops = *send_drops,
                                "media socket send failed; datagrams dropped"
                            );
                        }
                    }
                }
            }
            Output::Signal(conn, msg) => {
                if let Some(tx) = conns.get(&conn) {
                    let _ = tx.send(ConnEvent::Signal(msg));
                }
            }
            Output::Close(conn, why) => {
                if let Some(tx) = conns.remove(&conn) {
                    let _ = tx.send(ConnEvent::Close(why));
                }
            }
            Output::Timeout(t) => break t,
        }
    }
}

/// Receives the next datagram from any socket: (socket index, source, length).
async fn recv_any(sockets: &[Socket], buf: &mut [u8]) -> (usize, SocketAddr, usize) {
    poll_fn(|cx| {
        for (i, s) in sockets.iter().enumerate() {
            loop {
                let mut rb = ReadBuf::new(buf);
                match s.sock.poll_recv_from(cx, &mut rb) {
                    Poll::Ready(Ok(addr)) => return Poll::Ready((i, addr, rb.filled().len())),
                    // ICMP errors surface here on Linux: skip them and read on.
                    Poll::Ready(Err(_)) => continue,
                    Poll::Pending => break,
                }
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_handed_over_in_runs_from_one_source() {
        let a: SocketAddr = "192.0.2.1:5000".parse().expect("addr");
        let b: SocketAddr = "192.0.2.2:5000".parse().expect("addr");
        let local: SocketAddr = "192.0.2.9:7882".parse().expect("addr");
        let mut batch = Batch::default();
        for (i, (source, len)) in [(a, 3), (a, 1), (b, 2), (a, 4)].into_iter().enumerate() {
            batch.bufs[i][..len].fill(i as u8);
            batch.got.push((source, len));
        }
        let runs: Vec<Vec<(SocketAddr, SocketAddr, Vec<u8>)>> = batch
            .runs(local)
            .map(|run| run.map(|(s, d, data)| (s, d, data.to_vec())).collect())
            .collect();
        assert_eq!(
            runs,
            vec![
                vec![(a, local, vec![0; 3]), (a, local, vec![1])],
                vec![(b, local, vec![2; 2])],
                vec![(a, local, vec![3; 4])],
            ]
        );
    }
}
