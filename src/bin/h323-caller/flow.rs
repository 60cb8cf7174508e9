//! The caller's event loop: the call-signalling TCP connection, the H.245 one (separate
//! H.245), the RTP/RTCP sockets and a timer; [`Caller`] decides what to do with them.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use jonction::h323::call::{Alias, Call, Config, DialParams, Direction, Guid, Proposal, Vendor};
use jonction::h323::h245::{self, AudioCodec, H245Config, MediaAddresses, H245};
use jonction::h323::tpkt::{self, TpktReader};

use crate::caller::{expected_fast_start, h245_codec, media_codec, Caller, Phase, Transport};
use crate::media::Receiver;
use crate::report::{H245Report, Report};
use crate::{Cli, Mode};

/// Bound on every TCP connect and write.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// The I/O of a run.
struct Io {
    sig_read: OwnedReadHalf,
    sig_write: OwnedWriteHalf,
    h245_read: Option<OwnedReadHalf>,
    h245_write: Option<OwnedWriteHalf>,
    h245_reader: TpktReader,
    listener: Option<TcpListener>,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Video RTP and RTCP, with `--video`.
    video: Option<(UdpSocket, UdpSocket)>,
}

enum Input {
    Signalling(io::Result<usize>),
    H245(io::Result<usize>),
    Rtp(io::Result<usize>),
    Rtcp,
    Video(io::Result<usize>),
    Accept(io::Result<(TcpStream, SocketAddr)>),
    Wake,
}

async fn read_opt(r: &mut Option<OwnedReadHalf>, buf: &mut [u8]) -> io::Result<usize> {
    match r {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// A TCP connection from `local` (any port) when given, so that captures tell our side apart.
async fn connect_from(local: Option<IpAddr>, to: SocketAddr) -> io::Result<TcpStream> {
    let sock = if to.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(ip) = local {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    sock.connect(to).await
}

async fn accept_opt(l: &Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn write_all(w: &mut OwnedWriteHalf, bytes: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(IO_TIMEOUT, w.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
    }
}

/// Binds an RTP socket on an even port and the RTCP one on the next.
/// A datagram on the video RTP port (RTCP is read and dropped); never, without video.
async fn recv_video(video: &Option<(UdpSocket, UdpSocket)>, buf: &mut [u8]) -> io::Result<usize> {
    match video {
        Some((rtp, rtcp)) => {
            let mut rtcp_buf = [0u8; 1500];
            loop {
                tokio::select! {
                    r = rtp.recv(buf) => return r,
                    _ = rtcp.recv(&mut rtcp_buf) => {}
                }
            }
        }
        None => std::future::pending().await,
    }
}

async fn bind_media(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no even port pair");
    for _ in 0..64 {
        let port = 20_000 + 2 * (rand::random::<u16>() % 20_000);
        let rtp = match UdpSocket::bind((ip, port)).await {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match UdpSocket::bind((ip, port + 1)).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs one call; the report and whether it went as asked.
pub async fn run(cli: &Cli) -> (Report, bool) {
    let mut report = Report {
        mode: cli.mode.name(),
        gateway: cli.gateway.to_string(),
        fast_start: "none",
        codec: media_codec(cli.codec).to_string(),
        h245: H245Report {
            transport: "none",
            ..H245Report::default()
        },
        ..Report::default()
    };
    let started = Instant::now();
    eprintln!("h323-caller: calling {} at {}", cli.called, cli.gateway);
    let tcp = match tokio::time::timeout(IO_TIMEOUT, connect_from(cli.local_ip, cli.gateway)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            report.errors.push(format!("connect {}: {e}", cli.gateway));
            return (report, false);
        }
        Err(_) => {
            report
                .errors
                .push(format!("connect {}: timed out", cli.gateway));
            return (report, false);
        }
    };
    let _ = tcp.set_nodelay(true);
    let local_sig = tcp.local_addr().ok();
    let ip = cli
        .local_ip
        .or(local_sig.map(|a| a.ip()))
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let (rtp, rtcp) = match bind_media(ip).await {
        Ok(p) => p,
        Err(e) => {
            report.errors.push(format!("bind RTP/RTCP on {ip}: {e}"));
            return (report, false);
        }
    };
    let (Ok(rtp_addr), Ok(rtcp_addr)) = (rtp.local_addr(), rtcp.local_addr()) else {
        report.errors.push("RTP socket address".into());
        return (report, false);
    };
    report.local_rtp = Some(rtp_addr.to_string());
    let video_pair = match cli.video {
        Some(_) => match bind_media(ip).await {
            Ok(p) => Some(p),
            Err(e) => {
                report
                    .errors
                    .push(format!("bind video RTP/RTCP on {ip}: {e}"));
                return (report, false);
            }
        },
        None => None,
    };
    let video_addresses = video_pair.as_ref().and_then(|(rtp, rtcp)| {
        Some(MediaAddresses {
            rtp: rtp.local_addr().ok()?,
            rtcp: rtcp.local_addr().ok()?,
        })
    });

    let codec = h245_codec(cli.codec);
    let proposal = |direction, codec| Proposal {
        direction,
        codec: h245::Codec::Audio { codec, frames: 20 },
        payload_type: None,
        rtp: rtp_addr,
        rtcp: rtcp_addr,
    };
    let fast_start = match cli.mode {
        Mode::Faststart => vec![
            proposal(Direction::CallerToCallee, codec),
            proposal(Direction::CalleeToCaller, codec),
        ],
        Mode::Refused => vec![
            proposal(Direction::CallerToCallee, AudioCodec::Pcmu),
            proposal(Direction::CalleeToCaller, AudioCodec::Pcma),
        ],
        Mode::Tunnel | Mode::Separate => Vec::new(),
    };
    let all_digits = !cli.called.is_empty() && cli.called.bytes().all(|b| b.is_ascii_digit());
    let mut destination = vec![Alias::H323Id(cli.called.clone())];
    if all_digits {
        destination.push(Alias::Digits(cli.called.clone()));
    }
    let params = DialParams {
        call_reference: (rand::random::<u16>() & 0x7fff).max(1),
        conference_id: Guid(rand::random()),
        call_identifier: Guid(rand::random()),
        destination,
        called_number: all_digits.then(|| cli.called.clone()),
        source: vec![Alias::H323Id(cli.calling.clone())],
        calling_number: cli.calling_number.clone(),
        display: Some(cli.calling.clone()),
        dest_call_signal_address: Some(cli.gateway),
        source_call_signal_address: local_sig,
        fast_start,
        h245_address: None,
    };
    let config = Config {
        h245_tunnelling: cli.mode != Mode::Separate,
        t303: Duration::from_secs(5),
        t310: Duration::from_secs(20),
        vendor: Vendor {
            product: "jonction h323-caller".into(),
            ..Vendor::jonction()
        },
        ..Config::default()
    };
    let now = Instant::now();
    let call = match Call::dial(config, &params, now) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(format!("dial: {e}"));
            return (report, false);
        }
    };
    let h245 = H245::new(
        H245Config {
            terminal_type: cli.terminal_type,
            audio_codecs: vec![h245_codec(cli.codec)],
            // Without a video port (--refuse-video) the session refuses the gateway's channel.
            h264: (video_addresses.is_some() || cli.refuse_video)
                .then(|| H245Config::default().h264)
                .flatten(),
            audio_addresses: Some(MediaAddresses {
                rtp: rtp_addr,
                rtcp: rtcp_addr,
            }),
            video_addresses,
            t101: Duration::from_secs(10),
            t103: Duration::from_secs(10),
            t106: Duration::from_secs(10),
            ..H245Config::default()
        },
        rand::random::<u32>,
    );
    let (sig_read, sig_write) = tcp.into_split();
    let mut io = Io {
        sig_read,
        sig_write,
        h245_read: None,
        h245_write: None,
        h245_reader: TpktReader::new(64 * 1024),
        listener: None,
        rtp,
        rtcp,
        video: video_pair,
    };
    let mut c = Caller {
        cli,
        started,
        call,
        h245,
        h245_started: false,
        transport: Transport::None,
        h245_address: None,
        connect_h245_to: None,
        listen_at: None,
        report,
        fast_start_accepted: false,
        remote_rtp: None,
        sender: None,
        receiver: Receiver::default(),
        media_start: None,
        media_end: None,
        next_tick: now,
        connected_at: None,
        digits_todo: cli.digits.chars().collect(),
        next_digit: None,
        phase: Phase::Running,
        initiator: None,
        peer_end_session_seen: false,
        video_tx: None,
        video_remote: None,
        video_rx: Default::default(),
        video_in: None,
        video_rx_started: None,
        keyframes_at_fast_update: None,
    };
    c.log(format_args!(
        "Setup to {:?} from {:?}, mode {}, media {rtp_addr}",
        params.destination,
        params.source,
        cli.mode.name()
    ));
    event_loop(&mut c, &mut io).await;

    let end = Instant::now();
    if let Some(m) = c.media_start {
        c.report.media_seconds = ((end - m).as_secs_f64() * 100.0).round() / 100.0;
    }
    c.report.rtp_sent = c.sender.as_ref().map_or(0, |s| s.sent);
    c.report.rtp_received = c.receiver.received;
    c.report.rtp_bad = c.receiver.bad;
    c.report.rx_payload_type = c.receiver.last_pt;
    let (tone, level) = c.receiver.analyse();
    c.report.rx_tone_hz = tone;
    c.report.rx_rms_dbfs = level;
    if !c.digits_todo.is_empty() {
        let left: String = c.digits_todo.iter().collect();
        c.error(format!("digits not sent: {left:?}"));
    }
    let expected = expected_fast_start(cli.mode);
    if c.report.connected && c.report.fast_start != expected {
        let got = c.report.fast_start;
        c.error(format!("fast start: expected {expected}, got {got}"));
    }
    c.report.video.rtp_sent = c.video_tx.as_ref().map_or(0, |v| v.sent);
    c.report.video.rtp_received = c.video_rx.received;
    c.report.video.pictures_received = c.video_rx.pictures;
    c.report.video.keyframes_received = c.video_rx.keyframes;
    c.report.video.rx_payload_type = c.video_rx.last_pt;
    c.report.video.keyframes_after_fast_update = c
        .keyframes_at_fast_update
        .map_or(0, |k| c.video_rx.keyframes - k);
    c.report.released_by = c.initiator;
    let ok = c.succeeded();
    (c.report, ok)
}

async fn event_loop(c: &mut Caller<'_>, io: &mut Io) {
    let mut sig_buf = vec![0u8; 16 * 1024];
    let mut h245_buf = vec![0u8; 16 * 1024];
    let mut rtp_buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let mut video_buf = vec![0u8; 2048];
    let mut rtp_send_errors = 0u64;
    loop {
        let now = Instant::now();
        c.control(now);

        // I/O the caller asked for.
        if let Some(addr) = c.connect_h245_to.take() {
            c.log(format_args!("H.245: connecting to {addr}"));
            match tokio::time::timeout(IO_TIMEOUT, connect_from(c.cli.local_ip, addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    let (r, w) = s.into_split();
                    io.h245_read = Some(r);
                    io.h245_write = Some(w);
                    c.transport = Transport::Separate;
                    c.start_h245(Instant::now());
                }
                Ok(Err(e)) => c.error(format!("H.245 connect {addr}: {e}")),
                Err(_) => c.error(format!("H.245 connect {addr}: timed out")),
            }
        }
        if c.listen_at.is_some_and(|t| now >= t) && c.transport == Transport::None {
            c.listen_at = None;
            match TcpListener::bind((
                io.rtp.local_addr().map_or(c.cli.gateway.ip(), |a| a.ip()),
                0,
            ))
            .await
            {
                Ok(l) => match l.local_addr() {
                    Ok(a) => match c.call.start_h245(a) {
                        Ok(()) => {
                            c.log(format_args!("Facility(startH245) with our listener {a}"));
                            io.listener = Some(l);
                        }
                        Err(e) => c.error(format!("start_h245: {e}")),
                    },
                    Err(e) => c.error(format!("H.245 listener: {e}")),
                },
                Err(e) => c.error(format!("H.245 listener: {e}")),
            }
        }
        c.process(Instant::now());

        // Output.
        for pdu in c.h245_out() {
            let Some(w) = io.h245_write.as_mut() else {
                c.error("H.245 PDU dropped: no connection");
                continue;
            };
            let Some(framed) = tpkt::encode(&pdu) else {
                continue;
            };
            if let Err(e) = write_all(w, &framed).await {
                c.error(format!("H.245 write: {e}"));
                io.h245_write = None;
            }
        }
        while let Some(bytes) = c.call.poll_transmit() {
            if let Err(e) = write_all(&mut io.sig_write, &bytes).await {
                c.error(format!("signalling write: {e}"));
                if c.phase != Phase::Released {
                    c.initiate("closed");
                    c.phase = Phase::Released;
                }
                break;
            }
        }
        if c.phase == Phase::Released {
            let _ = tokio::time::timeout(IO_TIMEOUT, io.sig_write.shutdown()).await;
            if let Some(w) = io.h245_write.as_mut() {
                let _ = tokio::time::timeout(IO_TIMEOUT, w.shutdown()).await;
            }
            return;
        }
        let now = Instant::now();
        if let Some(to) = c.remote_rtp {
            for p in c.media_packets(now) {
                if let Err(e) = io.rtp.send_to(&p, to).await {
                    rtp_send_errors += 1;
                    if rtp_send_errors == 1 {
                        c.error(format!("RTP send to {to}: {e}"));
                    }
                }
            }
        }

        if let Some(to) = c.video_remote {
            for p in c.video_packets(now) {
                if let Some((v, _)) = io.video.as_ref() {
                    if let Err(e) = v.send_to(&p, to).await {
                        rtp_send_errors += 1;
                        if rtp_send_errors == 1 {
                            c.error(format!("video RTP send to {to}: {e}"));
                        }
                    }
                }
            }
        }

        let wake = tokio::time::Instant::from_std(c.next_wake(Instant::now()));
        let Io {
            sig_read,
            h245_read,
            listener,
            rtp,
            rtcp,
            video,
            ..
        } = &mut *io;
        let input = tokio::select! {
            r = sig_read.read(&mut sig_buf) => Input::Signalling(r),
            r = read_opt(h245_read, &mut h245_buf) => Input::H245(r),
            r = rtp.recv(&mut rtp_buf) => Input::Rtp(r),
            _ = rtcp.recv(&mut rtcp_buf) => Input::Rtcp,
            r = accept_opt(listener) => Input::Accept(r),
            r = recv_video(video, &mut video_buf) => Input::Video(r),
            _ = tokio::time::sleep_until(wake) => Input::Wake,
        };
        let now = Instant::now();
        match input {
            Input::Signalling(Err(e)) => {
                c.error(format!("signalling read: {e}"));
                c.initiate("closed");
                c.phase = Phase::Released;
            }
            Input::Signalling(Ok(0)) => {
                c.error(
                    "the gateway closed the call-signalling connection without ReleaseComplete",
                );
                c.initiate("closed");
                c.phase = Phase::Released;
            }
            Input::Signalling(Ok(n)) => c.call.handle_input(now, &sig_buf[..n]),
            Input::H245(Ok(0)) | Input::H245(Err(_)) => {
                if !c.h245.is_ended() {
                    c.error("the gateway closed the H.245 connection");
                } else {
                    c.log("H.245 connection closed");
                }
                io.h245_read = None;
                io.h245_write = None;
            }
            Input::H245(Ok(n)) => {
                io.h245_reader.push(&h245_buf[..n]);
                loop {
                    match io.h245_reader.next_pdu() {
                        Ok(Some(pdu)) => c.h245_bytes(now, &pdu),
                        Ok(None) => break,
                        Err(e) => {
                            c.error(format!("H.245 TPKT: {e}"));
                            io.h245_read = None;
                            break;
                        }
                    }
                }
            }
            Input::Rtp(Ok(n)) => c.receiver.handle(&rtp_buf[..n]),
            Input::Video(Ok(n)) => c.video_datagram(now, &video_buf[..n]),
            Input::Video(Err(_)) => {}
            Input::Rtp(Err(_)) | Input::Rtcp | Input::Wake => {}
            Input::Accept(Ok((s, from))) => {
                c.log(format_args!("H.245 connection from {from}"));
                io.listener = None;
                if c.transport == Transport::None {
                    let _ = s.set_nodelay(true);
                    let (r, w) = s.into_split();
                    io.h245_read = Some(r);
                    io.h245_write = Some(w);
                    c.transport = Transport::Separate;
                    c.start_h245(now);
                }
            }
            Input::Accept(Err(e)) => {
                c.error(format!("H.245 accept: {e}"));
                io.listener = None;
            }
        }
    }
}
