//! One H.323 call-signalling connection: the sans-IO [`Call`] (callee) and [`H245`] session
//! driven with its TCP socket(s), joined to the call core.
//!
//! Flow: Setup → dialplan → CallProceeding + Alerting, the call core starts joining the room;
//! the room joined → Connect (fast-start answer, or H.245 tunnelled / on a separate TCP
//! connection) → H.245 capabilities, master/slave, our audio channel → the call core gets the
//! media description; H.264 channels each way (when video is on and the device has H.264)
//! add video to it, with videoFastUpdatePicture and FlowControlCommand mapped to the call
//! core's keyframe requests and bit-rate limit. Either side's EndSessionCommand /
//! ReleaseComplete ends it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::media::{self, FastStartChoice, AUDIO_CODECS};
use super::ras::{self, RasCommand};
use super::Context;
use crate::call::admission::{Admitted, Caller, Decision, Refusal};
use crate::call::{self, CallId, CallSetup, FromCall, HangupCause, ToCall};
use crate::config::H323Config;
use crate::dialplan::{Party, Protocol, RouteRequest, Transport};
use crate::h323::call::{
    cause, Alias, Call, Config as CallConfig, ConnectParams, Event, FastStartReply, IncomingCall,
};
use crate::h323::h245::{
    self, ChannelInfo, Codec, Direction, H245Config, H245Event, H264Params, MediaAddresses,
    MediaKind, H245,
};
use crate::h323::ras::{AdmissionParams, DisengageParams, DisengageReason};
use crate::h323::tpkt::{self, TpktReader};
use crate::media::negotiated::{Negotiated, SrtpPolicy};

/// A connection that sends no Setup within this time is closed.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A PDU begun and not finished within this time ends the call.
const PDU_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting to the caller's H.245 listener.
const H245_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Waiting for the caller to connect to our H.245 listener.
const H245_ACCEPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest H.245 PDU taken on a separate connection.
const MAX_H245_PDU: usize = 16 * 1024;
/// How long a closing connection waits for the peer to close too.
const LINGER: Duration = Duration::from_secs(2);
/// How much a closing connection reads and drops at most.
const LINGER_BYTES: usize = 256 * 1024;
/// How long the connection sleeps when no timer is armed (everything else wakes it).
const IDLE_WAKE: Duration = Duration::from_secs(3600);
/// How long a digit from the room lasts as an H.245 signal.
const DIGIT_MS: u16 = 160;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A separate H.245 TCP connection.
struct H245Link {
    reader: TpktReader,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    out: Vec<Vec<u8>>,
}

/// The call core's side of the call.
struct Core {
    id: CallId,
    tx: mpsc::UnboundedSender<ToCall>,
}

/// A call routed by the dialplan, not started yet.
struct Routed {
    id: CallId,
    call_id: String,
    called: Party,
    calling: Party,
    room: String,
    token: String,
    pin: Option<Box<crate::call::PinSetup>>,
    slot: crate::call::capacity::CallSlot,
}

/// One connection's state.
struct Conn {
    ctx: Arc<Context>,
    cfg: H323Config,
    remote: SocketAddr,
    local_ip: IpAddr,
    call: Call,
    core: Option<Core>,
    from_core: mpsc::UnboundedReceiver<FromCall>,
    from_core_tx: mpsc::UnboundedSender<FromCall>,
    incoming: Option<Box<IncomingCall>>,
    fast: Option<FastStartChoice>,
    rtp_local: Option<SocketAddr>,
    h245: Option<H245>,
    h245_started: bool,
    /// H.245 PDUs waiting for the separate connection.
    h245_waiting: Vec<Vec<u8>>,
    link: Option<H245Link>,
    listener: Option<(TcpListener, Instant)>,
    /// The caller's H.245 listener (Setup or Facility), for a separate connection.
    peer_h245: Option<SocketAddr>,
    answered: bool,
    audio_opened: bool,
    /// The audio the call core runs (from fast start or our acknowledged channel).
    audio_neg: Option<Negotiated>,
    /// Our video RTP/RTCP addresses, when the call has video.
    video_local: Option<MediaAddresses>,
    /// Our H.264 channel's OpenLogicalChannel is sent.
    video_opened: bool,
    /// Our H.264 channel to the device, acknowledged.
    video_out: Option<ChannelInfo>,
    /// The device's H.264 channel to us, accepted.
    video_in: Option<ChannelInfo>,
    /// The device's FlowControlCommand on our video channel, in kbit/s.
    video_limit: Option<u32>,
    /// The codec of our audio channel (what the call core runs).
    out_codec: Option<h245::AudioCodec>,
    /// When the first byte of an unfinished PDU came.
    partial_since: Option<Instant>,
    /// The RAS task, when we are registered with a gatekeeper (ARQ before a call, DRQ after).
    ras: Option<mpsc::UnboundedSender<RasCommand>>,
    /// The gatekeeper's answer to our ARQ, awaited.
    admission: Option<oneshot::Receiver<Result<(), String>>>,
    /// Fires when the gatekeeper ends the admitted call (its DRQ).
    disengaged: Option<oneshot::Receiver<()>>,
    /// The call was admitted: the DRQ to send at its end.
    disengage: Option<DisengageParams>,
    /// The dialplan's route, kept while the gatekeeper admits the call.
    routed: Option<Routed>,
    started: Instant,
    done: bool,
}

/// Serves one accepted connection to its end.
pub(super) async fn serve(
    stream: TcpStream,
    remote: SocketAddr,
    ctx: Arc<Context>,
    cfg: H323Config,
    ras: Option<mpsc::UnboundedSender<RasCommand>>,
    mut stop: watch::Receiver<bool>,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (from_core_tx, from_core) = mpsc::unbounded_channel();
    let call = Call::accept(CallConfig {
        h245_tunnelling: cfg.h245_tunnelling,
        ..CallConfig::default()
    });
    let mut c = Conn {
        ctx,
        cfg,
        remote,
        local_ip: local.ip(),
        call,
        core: None,
        from_core,
        from_core_tx,
        incoming: None,
        fast: None,
        rtp_local: None,
        h245: None,
        h245_started: false,
        h245_waiting: Vec::new(),
        link: None,
        listener: None,
        peer_h245: None,
        answered: false,
        audio_opened: false,
        audio_neg: None,
        video_local: None,
        video_opened: false,
        video_out: None,
        video_in: None,
        video_limit: None,
        out_codec: None,
        partial_since: None,
        ras,
        admission: None,
        disengaged: None,
        disengage: None,
        routed: None,
        started: now(),
        done: false,
    };
    debug!(%remote, "H.323 connection");
    let mut buf = vec![0u8; 16 * 1024];
    let mut hbuf = vec![0u8; 8 * 1024];
    loop {
        c.pump();
        if c.write_out(&mut wr).await.is_err() {
            c.peer_gone("call-signalling connection write failed");
        }
        if c.done {
            // What the pump produced last (ReleaseComplete) is written above.
            if c.write_out(&mut wr).await.is_err() {
                debug!(%remote, "ReleaseComplete not written");
            }
            break;
        }
        let deadline = c.next_deadline();
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => c.peer_gone("call-signalling connection closed"),
                Ok(n) => {
                    let t = now();
                    c.call.handle_input(t, &buf[..n]);
                    c.partial_since = match (c.call.pending_input(), c.partial_since) {
                        (0, _) => None,
                        (_, Some(s)) => Some(s),
                        (_, None) => Some(t),
                    };
                }
            },
            r = read_link(&mut c.link, &mut hbuf) => match r {
                Ok(0) | Err(_) => {
                    // H.245 gone while signalling stays: the call goes on without control.
                    info!(%remote, "H.245 connection closed by the caller");
                    c.link = None;
                }
                Ok(n) => c.link_input(&hbuf[..n]),
            },
            r = accept_h245(&c.listener) => {
                c.listener = None;
                match r {
                    Ok((stream, from)) => {
                        debug!(%remote, %from, "H.245 connection accepted");
                        c.attach_link(stream);
                    }
                    Err(e) => warn!(%remote, "H.245 listener: {e}"),
                }
            }
            r = admission(&mut c.admission) => {
                c.admission = None;
                match r {
                    Ok(()) => c.start_call(),
                    Err(reason) => {
                        info!(%remote, %reason, "the gatekeeper refused the call");
                        c.release_now(HangupCause::CallerBye, cause::CALL_REJECTED);
                    }
                }
            }
            () = disengaged(&mut c.disengaged) => {
                c.disengaged = None;
                info!(%remote, "the gatekeeper ended the call");
                // It knows: no DRQ of ours.
                c.disengage = None;
                c.hangup(HangupCause::Disengaged);
            }
            ev = c.from_core.recv() => {
                if let Some(ev) = ev {
                    c.core_event(ev);
                }
            }
            _ = stop.changed() => {
                if c.core.is_none() {
                    c.done = true;
                } else {
                    c.hangup(HangupCause::Shutdown);
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => c.timers(),
        }
        if c.peer_h245.is_some() && c.answered && c.link.is_none() && c.needs_link() {
            c.connect_link().await;
        }
    }
    if let Some(core) = c.core.take() {
        let _ = core.tx.send(ToCall::Stop(HangupCause::CallerBye));
    }
    if let (Some(ras), Some(d)) = (c.ras.as_ref(), c.disengage.take()) {
        let _ = ras.send(RasCommand::Disengage(d));
    }
    if let Some(mut l) = c.link.take() {
        let _ = l.wr.shutdown().await;
    }
    let _ = wr.shutdown().await;
    linger(&mut rd).await;
    debug!(%remote, "H.323 connection closed");
}

/// After our FIN, reads (and drops) what the peer still sends until it closes too, for
/// [`LINGER`] and [`LINGER_BYTES`] at most: closing a socket with unread data resets the
/// connection, and the peer could lose our ReleaseComplete.
async fn linger(rd: &mut OwnedReadHalf) {
    let mut buf = [0u8; 4096];
    let mut left = LINGER_BYTES;
    let drain = async {
        while left > 0 {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Reads the separate H.245 connection (forever when there is none).
async fn read_link(link: &mut Option<H245Link>, buf: &mut [u8]) -> std::io::Result<usize> {
    match link {
        Some(l) => l.rd.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The gatekeeper's admission (forever when none is awaited); bounded by
/// [`ras::ADMISSION_TIMEOUT`].
async fn admission(rx: &mut Option<oneshot::Receiver<Result<(), String>>>) -> Result<(), String> {
    match rx {
        Some(r) => match tokio::time::timeout(ras::ADMISSION_TIMEOUT, r).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err("the RAS task is gone".into()),
            Err(_) => Err("no answer from the gatekeeper".into()),
        },
        None => std::future::pending().await,
    }
}

/// The gatekeeper's DisengageRequest for the call (forever when there is none to wait for).
async fn disengaged(rx: &mut Option<oneshot::Receiver<()>>) {
    match rx {
        Some(r) => {
            if r.await.is_err() {
                // The RAS task is gone: nobody will end the call this way.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Accepts the caller's H.245 connection (forever when we are not listening).
async fn accept_h245(
    listener: &Option<(TcpListener, Instant)>,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some((l, _)) => l.accept().await,
        None => std::future::pending().await,
    }
}

impl Conn {
    /// Runs the state machines until nothing more happens.
    fn pump(&mut self) {
        for _ in 0..64 {
            let mut progressed = false;
            while let Some(ev) = self.call.poll_event() {
                progressed = true;
                self.call_event(ev);
            }
            let mut events = Vec::new();
            if let Some(h) = self.h245.as_mut() {
                while let Some(ev) = h.poll_event() {
                    events.push(ev);
                }
            }
            for ev in events {
                progressed = true;
                self.h245_event(ev);
            }
            progressed |= self.route_h245();
            if !progressed {
                break;
            }
        }
    }

    /// Moves H.245 PDUs to where they travel: tunnelled, or the separate connection.
    fn route_h245(&mut self) -> bool {
        let Some(h) = self.h245.as_mut() else {
            return false;
        };
        let mut moved = false;
        while let Some(pdu) = h.poll_transmit_bytes() {
            moved = true;
            if self.call.h245_tunnelling() == Some(true) {
                if let Err(e) = self.call.send_h245(pdu) {
                    debug!(remote = %self.remote, "H.245 PDU not tunnelled: {e}");
                }
            } else {
                self.h245_waiting.push(pdu);
            }
        }
        if let Some(l) = self.link.as_mut() {
            for pdu in self.h245_waiting.drain(..) {
                if let Some(framed) = tpkt::encode(&pdu) {
                    l.out.push(framed);
                }
            }
        }
        moved
    }

    /// Writes what the state machines produced.
    async fn write_out(&mut self, wr: &mut OwnedWriteHalf) -> std::io::Result<()> {
        if let Some(l) = self.link.as_mut() {
            for b in std::mem::take(&mut l.out) {
                if l.wr.write_all(&b).await.is_err() {
                    info!(remote = %self.remote, "H.245 connection write failed");
                    self.link = None;
                    break;
                }
            }
        }
        while let Some(b) = self.call.poll_transmit() {
            wr.write_all(&b).await?;
        }
        Ok(())
    }

    /// The earliest of the machines' timers and the connection's own deadlines (no Setup,
    /// an unfinished PDU, nobody on our H.245 listener); far away when none is armed.
    fn next_deadline(&self) -> Instant {
        let own = [
            self.incoming
                .is_none()
                .then(|| self.started + SETUP_TIMEOUT),
            self.partial_since.map(|s| s + PDU_TIMEOUT),
            self.listener
                .as_ref()
                .map(|(_, s)| *s + H245_ACCEPT_TIMEOUT),
            self.call.poll_timeout(),
            self.h245.as_ref().and_then(|h| h.poll_timeout()),
        ];
        own.into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| now() + IDLE_WAKE)
    }

    fn timers(&mut self) {
        let t = now();
        if self.call.poll_timeout().is_some_and(|x| x <= t) {
            self.call.handle_timeout(t);
        }
        if let Some(h) = self.h245.as_mut() {
            if h.poll_timeout().is_some_and(|x| x <= t) {
                h.handle_timeout(t);
            }
        }
        if self.incoming.is_none() && t.duration_since(self.started) >= SETUP_TIMEOUT {
            info!(remote = %self.remote, "no Setup within {SETUP_TIMEOUT:?}: closing");
            self.done = true;
        }
        if self
            .partial_since
            .is_some_and(|s| t.duration_since(s) >= PDU_TIMEOUT)
        {
            warn!(remote = %self.remote, "a PDU left unfinished for {PDU_TIMEOUT:?}: releasing");
            self.partial_since = None;
            self.release_now(HangupCause::CallerBye, cause::TIMER_EXPIRY);
        }
        if let Some((_, since)) = &self.listener {
            if t.duration_since(*since) >= H245_ACCEPT_TIMEOUT {
                warn!(remote = %self.remote, "the caller never connected to our H.245 listener");
                self.listener = None;
                if self.fast.is_none() {
                    self.hangup(HangupCause::NoMedia);
                }
            }
        }
    }

    fn call_event(&mut self, ev: Event) {
        match ev {
            Event::IncomingCall(ic) => self.incoming_call(ic),
            Event::H245(pdu) => {
                self.ensure_h245();
                if let Some(h) = self.h245.as_mut() {
                    h.handle_bytes(now(), &pdu);
                }
            }
            Event::H245Address(a) => self.peer_h245 = Some(a),
            Event::Digits(d) => {
                for c in d.chars() {
                    self.tell_core(ToCall::Dtmf(c));
                }
            }
            Event::Released { cause, origin } => {
                info!(remote = %self.remote, cause, ?origin, "H.323 call released");
                if let Some(core) = self.core.take() {
                    let _ = core.tx.send(ToCall::Stop(HangupCause::CallerBye));
                }
                self.done = true;
            }
            Event::Status { cause, call_state } => {
                debug!(remote = %self.remote, ?cause, ?call_state, "Status");
            }
            other => debug!(remote = %self.remote, "ignored: {other:?}"),
        }
    }

    fn incoming_call(&mut self, ic: Box<IncomingCall>) {
        let id = CallId::next();
        let called = called_party(&ic);
        let calling = calling_party(&ic);
        let guid = ic.call_identifier.unwrap_or(ic.conference_id);
        let call_id: String = guid.0.iter().map(|b| format!("{b:02x}")).collect();
        let caller = Caller {
            id,
            call_id: call_id.clone(),
            request: RouteRequest {
                protocol: Protocol::H323,
                called: called.clone(),
                calling: calling.clone(),
                source: Some(self.remote.ip()),
                transport: Transport::H323,
                trunk: None,
                headers: Vec::new(),
            },
        };
        let Admitted {
            room,
            token,
            pin,
            srtp,
            slot,
        } = match self.ctx.admission.decide(&caller) {
            Decision::Admit(a) => a,
            Decision::Refuse(Refusal {
                sip_code,
                reason,
                h323_cause,
                full,
            }) => {
                let q850 = h323_cause.unwrap_or_else(|| media::q850_for_sip(sip_code));
                if full.is_none() {
                    info!(call = id.0, called = %called.user, q850, %reason, "H.323 call refused by the dialplan");
                }
                self.incoming = Some(ic);
                self.release_now(HangupCause::CallerBye, q850);
                return;
            }
        };
        self.incoming = Some(ic);
        if srtp == Some(SrtpPolicy::Required) {
            info!(
                call = id.0,
                "H.323 call refused: the route requires SRTP (no H.235 media security)"
            );
            self.release_now(HangupCause::NoMedia, cause::INCOMPATIBLE_DESTINATION);
            return;
        }
        if let Err(e) = self.call.proceeding() {
            warn!(call = id.0, "CallProceeding not sent: {e}");
        }
        self.routed = Some(Routed {
            id,
            call_id,
            called,
            calling,
            room,
            token,
            pin,
            slot,
        });
        let (Some(ras), Some(ic)) = (self.ras.as_ref(), self.incoming.as_deref()) else {
            self.start_call();
            return;
        };
        // Registered with a gatekeeper: ARQ (answerCall) first.
        let params = AdmissionParams {
            call_reference: ic.call_reference,
            call_identifier: ic.call_identifier.unwrap_or(ic.conference_id),
            conference_id: ic.conference_id,
            answer_call: true,
            destination: ic.called.clone(),
            dest_call_signal_address: None,
            bandwidth: 1280,
        };
        let (tx, rx) = oneshot::channel();
        let (ended_tx, ended_rx) = oneshot::channel();
        self.disengage = Some(DisengageParams {
            call_identifier: params.call_identifier,
            conference_id: params.conference_id,
            call_reference: params.call_reference,
            answered_call: true,
            reason: DisengageReason::Normal,
        });
        let admit = RasCommand::Admit {
            params,
            reply: tx,
            ended: ended_tx,
        };
        if ras.send(admit).is_ok() {
            self.admission = Some(rx);
            self.disengaged = Some(ended_rx);
        } else {
            self.disengage = None;
            self.start_call();
        }
    }

    /// The call is routed (and admitted): media port, fast start, the call core.
    fn start_call(&mut self) {
        let Some(Routed {
            id,
            call_id,
            called,
            calling,
            room,
            token,
            pin,
            slot,
        }) = self.routed.take()
        else {
            return;
        };
        let Some(rtp) = self.ctx.rtp_ports.bind(self.local_ip) else {
            self.release_now(HangupCause::NoMedia, cause::RESOURCE_UNAVAILABLE);
            return;
        };
        let Ok(rtp_local) = rtp.local_addr() else {
            self.release_now(HangupCause::NoMedia, cause::RESOURCE_UNAVAILABLE);
            return;
        };
        self.rtp_local = Some(rtp_local);
        // A second port pair for H.264, when video is on (opened over H.245 once it runs).
        let video_rtp = (self.cfg.video_max_kbps > 0)
            .then(|| self.ctx.rtp_ports.bind_pair(self.local_ip))
            .flatten();
        self.video_local = video_rtp.as_ref().and_then(|(rtp, rtcp)| {
            Some(MediaAddresses {
                rtp: rtp.local_addr().ok()?,
                rtcp: rtcp.local_addr().ok()?,
            })
        });
        let Some(ic) = self.incoming.as_deref() else {
            return;
        };
        self.fast = if self.cfg.fast_start {
            media::choose_fast_start(&ic.fast_start)
        } else {
            None
        };
        if !ic.fast_start.is_empty() {
            match &self.fast {
                Some(f) => info!(call = id.0, codec = ?f.codec, "fast start accepted"),
                None => info!(
                    call = id.0,
                    proposals = ic.fast_start.len(),
                    "fast start refused: no audio codec both ways"
                ),
            }
        }
        self.peer_h245 = ic.h245_address;
        let parallel = ic.parallel_h245.clone();
        if !parallel.is_empty() {
            self.ensure_h245();
            if let Some(h) = self.h245.as_mut() {
                for pdu in &parallel {
                    h.handle_bytes(now(), pdu);
                }
            }
        }
        let negotiated = self
            .fast
            .as_ref()
            .map(|f| media::negotiated(f.codec, f.frames, f.remote_rtp, f.remote_rtcp));
        self.audio_neg = negotiated.clone();
        self.out_codec = self.fast.as_ref().map(|f| f.codec);
        if let Err(e) = self.call.alerting() {
            warn!(call = id.0, "Alerting not sent: {e}");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let setup = CallSetup {
            id,
            call_id,
            protocol: Protocol::H323,
            transport: crate::dialplan::Transport::H323,
            room: room.clone(),
            caller: calling.user.clone(),
            callee: called.user.clone(),
            negotiated,
            rtp,
            video_rtp,
            livekit_url: self.ctx.livekit_url.clone(),
            token,
            room_bind_ip: call::room_bind_ip(&self.ctx.livekit_url),
            media_timeout: self.ctx.media_timeout,
            publish_opus: self.ctx.publish_opus,
            max_duration: self.ctx.max_duration,
            records: self.ctx.records.clone(),
            pin,
            slot,
        };
        info!(call = id.0, called = %called.user, calling = %calling.user, %room, remote = %self.remote, "incoming H.323 call");
        tokio::spawn(call::run(setup, rx, self.from_core_tx.clone()));
        self.core = Some(Core { id, tx });
    }

    fn core_event(&mut self, ev: FromCall) {
        match ev {
            FromCall::Answer(_) => self.answer(),
            FromCall::Hangup(_, c) => self.hangup(c),
            FromCall::Digit(_, d) => self.digit_to_device(d),
            FromCall::FastUpdate(_) => self.fast_update_to_device(),
        }
    }

    /// The room is joined: Connect, then H.245.
    fn answer(&mut self) {
        let (Some(ic), Some(rtp)) = (self.incoming.as_deref(), self.rtp_local) else {
            return;
        };
        let fast_start = match &self.fast {
            Some(f) => FastStartReply::Accept(vec![(f.receive, rtp, rtp), (f.send, rtp, rtp)]),
            None if !ic.fast_start.is_empty() => FastStartReply::Refuse,
            None => FastStartReply::None,
        };
        let tunnelling = self.cfg.h245_tunnelling && ic.h245_tunnelling;
        let h245_address = if tunnelling || self.peer_h245.is_some() {
            None
        } else {
            match std::net::TcpListener::bind(SocketAddr::new(self.local_ip, 0))
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(TcpListener::from_std)
            {
                Ok(l) => {
                    let a = l.local_addr().ok();
                    self.listener = Some((l, now()));
                    a
                }
                Err(e) => {
                    warn!(remote = %self.remote, "no H.245 listener: {e}");
                    None
                }
            }
        };
        let params = ConnectParams {
            fast_start,
            h245_tunnelling: tunnelling,
            h245_address,
            ..ConnectParams::default()
        };
        if let Err(e) = self.call.connect(&params) {
            warn!(remote = %self.remote, "Connect not sent: {e}");
            self.hangup(HangupCause::NoMedia);
            return;
        }
        self.answered = true;
        info!(
            remote = %self.remote,
            fast_start = self.fast.is_some(),
            tunnelling,
            h245_listener = ?h245_address,
            "H.323 call connected"
        );
        if tunnelling {
            self.start_h245();
        }
    }

    /// Whether a separate H.245 connection is still wanted.
    fn needs_link(&self) -> bool {
        self.call.h245_tunnelling() != Some(true) && self.listener.is_none() && !self.done
    }

    async fn connect_link(&mut self) {
        let Some(addr) = self.peer_h245.take() else {
            return;
        };
        match tokio::time::timeout(H245_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                debug!(remote = %self.remote, %addr, "H.245 connected");
                self.attach_link(stream);
            }
            Ok(Err(e)) => warn!(remote = %self.remote, %addr, "H.245 connection failed: {e}"),
            Err(_) => warn!(remote = %self.remote, %addr, "H.245 connection timed out"),
        }
    }

    fn attach_link(&mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        self.link = Some(H245Link {
            reader: TpktReader::new(MAX_H245_PDU),
            rd,
            wr,
            out: Vec::new(),
        });
        self.start_h245();
    }

    fn link_input(&mut self, data: &[u8]) {
        let Some(l) = self.link.as_mut() else {
            return;
        };
        l.reader.push(data);
        let mut pdus = Vec::new();
        loop {
            match l.reader.next_pdu() {
                Ok(Some(p)) => pdus.push(p),
                Ok(None) => break,
                Err(e) => {
                    warn!(remote = %self.remote, "H.245 connection: {e}; closing it");
                    self.link = None;
                    break;
                }
            }
        }
        self.ensure_h245();
        if let Some(h) = self.h245.as_mut() {
            for p in pdus {
                h.handle_bytes(now(), &p);
            }
        }
    }

    fn ensure_h245(&mut self) {
        if self.h245.is_some() {
            return;
        }
        let addrs = self.rtp_local.map(|a| MediaAddresses { rtp: a, rtcp: a });
        let config = H245Config {
            audio_codecs: AUDIO_CODECS.to_vec(),
            h264: self.video_local.map(|_| {
                H264Params::baseline_3_1(Some(self.cfg.video_max_kbps.saturating_mul(10)))
            }),
            audio_addresses: addrs,
            video_addresses: self.video_local,
            ..H245Config::default()
        };
        self.h245 = Some(H245::new(config, rand::random::<u32>));
    }

    fn start_h245(&mut self) {
        self.ensure_h245();
        if self.h245_started {
            return;
        }
        if let Some(h) = self.h245.as_mut() {
            h.start(now());
            self.h245_started = true;
        }
    }

    fn h245_event(&mut self, ev: H245Event) {
        let t = now();
        match ev {
            H245Event::Ready => {
                if self.fast.is_none() && !self.audio_opened {
                    let r = self
                        .h245
                        .as_mut()
                        .map(|h| h.open_channel(t, MediaKind::Audio));
                    match r {
                        Some(Ok(n)) => {
                            self.audio_opened = true;
                            debug!(remote = %self.remote, channel = n, "audio channel opening");
                        }
                        Some(Err(e)) => {
                            warn!(remote = %self.remote, "no audio channel: {e:?}");
                            self.hangup(HangupCause::NoMedia);
                        }
                        None => {}
                    }
                }
                self.open_video(t);
            }
            H245Event::ChannelOpened(info) => {
                let Codec::Audio { codec, frames } = info.codec else {
                    self.video_channel_opened(info);
                    return;
                };
                match (info.direction, info.remote_rtp) {
                    (Direction::Outgoing, Some(rtp)) if self.fast.is_none() => {
                        info!(remote = %self.remote, ?codec, %rtp, "audio channel open: media starts");
                        self.out_codec = Some(codec);
                        self.audio_neg =
                            Some(media::negotiated(codec, frames, rtp, info.remote_rtcp));
                        self.describe_media();
                    }
                    (Direction::Incoming, _) if self.out_codec.is_some_and(|c| c != codec) => {
                        warn!(remote = %self.remote, ?codec, ours = ?self.out_codec, "the caller sends another codec than ours: its audio is not understood");
                    }
                    _ => {}
                }
            }
            H245Event::ChannelRejected {
                number,
                kind: MediaKind::Video,
                cause,
            } => {
                info!(remote = %self.remote, number, ?cause, "our video channel was refused: audio only to the device");
            }
            H245Event::ChannelRejected { number, cause, .. } => {
                warn!(remote = %self.remote, number, ?cause, "our audio channel was refused");
                if self.fast.is_none() {
                    self.hangup(HangupCause::NoMedia);
                }
            }
            H245Event::ChannelClosed { number, direction } => {
                let closed = match direction {
                    Direction::Outgoing => &mut self.video_out,
                    Direction::Incoming => &mut self.video_in,
                };
                if closed.as_ref().is_some_and(|c| c.number == number) {
                    *closed = None;
                    info!(remote = %self.remote, number, ?direction, "video channel closed");
                    self.describe_media();
                }
            }
            H245Event::VideoFastUpdate { number } => {
                debug!(remote = %self.remote, number, "the device asks for a video keyframe");
                self.tell_core(ToCall::FastUpdate);
            }
            H245Event::FlowControl {
                number,
                max_bit_rate,
            } => {
                let ours = self.video_out.as_ref().map(|c| c.number);
                if number.is_none() || number == ours {
                    // The whole multiplex's limit applies to video, audio being 64 kbit/s.
                    let kbps = max_bit_rate.map(|b| {
                        let kbps = b / 10;
                        if number.is_none() {
                            kbps.saturating_sub(64)
                        } else {
                            kbps
                        }
                    });
                    info!(remote = %self.remote, ?number, ?kbps, "the device limits our video bit rate");
                    self.video_limit = kbps;
                    self.describe_media();
                }
            }
            H245Event::UserInput { key, .. } => self.tell_core(ToCall::Dtmf(key)),
            H245Event::SessionEnded { by_peer: true } => {
                info!(remote = %self.remote, "the caller ended the H.245 session");
                self.release_now(HangupCause::CallerBye, cause::NORMAL_CLEARING);
            }
            H245Event::MasterSlaveFailed(f) => {
                warn!(remote = %self.remote, ?f, "master/slave determination failed");
                if self.fast.is_none() {
                    self.hangup(HangupCause::NoMedia);
                }
            }
            H245Event::Timeout(timer) => {
                warn!(remote = %self.remote, ?timer, "H.245 procedure timed out");
                // Fatal only while audio is not running yet (a late video channel is not).
                if self.audio_neg.is_none() && !matches!(timer, h245::Timer::RoundTripDelay) {
                    self.hangup(HangupCause::NoMedia);
                }
            }
            H245Event::DecodeError(e) => warn!(remote = %self.remote, "H.245: {e}"),
            other => debug!(remote = %self.remote, "H.245: {other:?}"),
        }
    }

    /// Opens our H.264 channel when the call has video and the device receives H.264.
    fn open_video(&mut self, t: Instant) {
        if self.video_opened || self.video_local.is_none() {
            return;
        }
        let Some(h) = self.h245.as_mut() else {
            return;
        };
        if h.peer_capabilities().is_none_or(|c| c.h264.is_none()) {
            debug!(remote = %self.remote, "the device receives no H.264: no video channel");
            return;
        }
        match h.open_channel(t, MediaKind::Video) {
            Ok(n) => {
                self.video_opened = true;
                debug!(remote = %self.remote, channel = n, "video channel opening");
            }
            Err(e) => debug!(remote = %self.remote, "no video channel: {e:?}"),
        }
    }

    /// An H.264 channel opened either way: the call core's video description changes.
    fn video_channel_opened(&mut self, info: ChannelInfo) {
        info!(
            remote = %self.remote,
            number = info.number,
            direction = ?info.direction,
            pt = ?info.payload_type,
            rtp = ?info.remote_rtp,
            "video channel open"
        );
        match info.direction {
            Direction::Outgoing => self.video_out = Some(info),
            Direction::Incoming => self.video_in = Some(info),
        }
        self.describe_media();
    }

    /// The most video the device takes, in kbit/s: what our channel was opened with (ours and
    /// its capability, the lower), lowered by its flow control.
    fn video_kbps(&self) -> u32 {
        let channel = match self.video_out.as_ref().map(|c| c.codec) {
            Some(Codec::H264(p)) => p.max_bit_rate.map(|b| b / 10),
            _ => None,
        };
        channel
            .unwrap_or(self.cfg.video_max_kbps)
            .min(self.video_limit.unwrap_or(u32::MAX))
    }

    /// Tells the call core the audio and video streams as they are now (audio must be known).
    fn describe_media(&mut self) {
        let Some(mut n) = self.audio_neg.clone() else {
            return;
        };
        n.video = media::negotiated_video(
            self.video_out.as_ref(),
            self.video_in.as_ref(),
            self.video_kbps(),
        );
        self.tell_core(ToCall::Media(Box::new(n)));
    }

    /// The call core wants a keyframe from the device: videoFastUpdatePicture on its channel.
    fn fast_update_to_device(&mut self) {
        let (Some(h), Some(number)) =
            (self.h245.as_mut(), self.video_in.as_ref().map(|c| c.number))
        else {
            return;
        };
        if let Err(e) = h.send_video_fast_update(now(), number) {
            debug!(remote = %self.remote, "videoFastUpdatePicture not sent: {e:?}");
        }
    }

    /// A digit from the room: H.245 UserInputIndication, else a Q.931 keypad Information.
    fn digit_to_device(&mut self, d: char) {
        let t = now();
        if let Some(h) = self.h245.as_mut().filter(|h| h.is_ready()) {
            if let Err(e) = h.send_user_input(t, d, Some(DIGIT_MS)) {
                debug!(remote = %self.remote, "digit not sent: {e:?}");
            }
        } else if let Err(e) = self.call.send_digits(&d.to_string()) {
            debug!(remote = %self.remote, "digit not sent: {e}");
        }
    }

    fn tell_core(&mut self, cmd: ToCall) {
        if let Some(core) = &self.core {
            let _ = core.tx.send(cmd);
        }
    }

    /// Ends the call from our side: EndSessionCommand (H.245 up), ReleaseComplete.
    fn hangup(&mut self, why: HangupCause) {
        if self.done {
            return;
        }
        if let Some(core) = self.core.take() {
            let _ = core.tx.send(ToCall::Stop(why));
            info!(
                call = core.id.0,
                cause = why.as_str(),
                "ending the H.323 call"
            );
        }
        if let Some(h) = self.h245.as_mut().filter(|_| self.h245_started) {
            if !h.is_ended() {
                h.end_session(now());
            }
        }
        self.route_h245();
        self.release_now(why, media::q850_for(why));
    }

    /// ReleaseComplete with `q850`, the call core stopped, the connection to close.
    fn release_now(&mut self, why: HangupCause, q850: u8) {
        if let Some(core) = self.core.take() {
            let _ = core.tx.send(ToCall::Stop(why));
        }
        if let Err(e) = self.call.release(q850) {
            debug!(remote = %self.remote, "no ReleaseComplete: {e}");
        }
        self.done = true;
    }

    /// The caller's TCP connection went away.
    fn peer_gone(&mut self, what: &str) {
        info!(remote = %self.remote, "{what}");
        if let Some(core) = self.core.take() {
            let _ = core.tx.send(ToCall::Stop(HangupCause::CallerBye));
        }
        self.done = true;
    }
}

/// The called party for the dialplan: E.164 digits first (alias, then Called Party Number),
/// else the H.323-ID, URL or e-mail alias.
fn called_party(ic: &IncomingCall) -> Party {
    party(&ic.called, ic.called_number.as_deref())
}

/// The calling party: the same order over the source aliases and Calling Party Number.
fn calling_party(ic: &IncomingCall) -> Party {
    let mut p = party(&ic.caller, ic.calling_number.as_deref());
    if p.user.is_empty() {
        p.user = ic.display.clone().unwrap_or_default();
    }
    p
}

fn party(aliases: &[Alias], number: Option<&str>) -> Party {
    let digits = aliases.iter().find_map(|a| match a {
        Alias::Digits(d) => Some(d.clone()),
        _ => None,
    });
    if let Some(d) = digits.or_else(|| number.map(str::to_string)) {
        return Party {
            user: d,
            host: String::new(),
        };
    }
    aliases
        .iter()
        .find_map(|a| match a {
            Alias::H323Id(s) => Some(Party {
                user: s.clone(),
                host: String::new(),
            }),
            Alias::Url(s) | Alias::Email(s) => Some(Party::from_uri(s)),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn called_party_prefers_digits_then_h323_id_then_url() {
        let p = party(
            &[
                Alias::H323Id("board-room".into()),
                Alias::Digits("7001".into()),
            ],
            None,
        );
        assert_eq!(p.user, "7001");
        let p = party(&[Alias::H323Id("board-room".into())], None);
        assert_eq!((p.user.as_str(), p.host.as_str()), ("board-room", ""));
        let p = party(&[Alias::Url("h323:town-hall@gw.example".into())], None);
        assert_eq!(
            (p.user.as_str(), p.host.as_str()),
            ("town-hall", "gw.example")
        );
        let p = party(&[], Some("0187654321"));
        assert_eq!(p.user, "0187654321");
        assert_eq!(party(&[Alias::Other], None), Party::default());
    }
}
