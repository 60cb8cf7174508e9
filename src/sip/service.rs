//! The SIP front (tokio shell): owns the UDP socket, drives the sans-IO [`Endpoint`], keeps the
//! dialogs of the calls, answers OPTIONS, routes INVITEs through the dialplan
//! ([`crate::call::admission`]), and runs each call as its own task ([`crate::call`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use super::dialog::{user_of, Dialog, DialogState, InDialog, OkTimer};
use super::endpoint::ClientKey;
use super::endpoint::{tag_of, Endpoint, Output, Peer, ServerKey, Transport};
use super::media_control;
use super::message::{Header, Message};
use super::sdp::{self, LocalMedia, MediaPolicy, SdpSession, SessionDescription};
use super::session_timer::{self, Negotiation, SessionTimer, TimerAction};
use super::stream::{self, StreamIn};
use super::validate::{response_to, GATEWAY};
use crate::call::admission::{Admission, Admitted, Caller, Decision, Refusal};
use crate::call::capacity::Full;
use crate::call::{
    self, first_local_ip, room_bind_ip, CallId, CallSetup, FromCall, HangupCause, ToCall,
};
use crate::config::SipConfig;
use crate::dialplan::{Party, Protocol, RouteRequest, Transport as DpTransport};
use crate::media::negotiated::Negotiated;
use crate::media::rtp::ports::RtpPorts;

/// What the SIP front needs besides its own config.
pub struct Context {
    /// LiveKit URL of the room legs.
    pub livekit_url: String,
    /// Routing (dialplan), room-leg tokens and PIN protection, shared with the other fronts.
    pub admission: Arc<Admission>,
    /// Publish G.711 callers as Opus even when the room takes G.711 (`livekit.publish_opus`).
    pub publish_opus: bool,
    /// The RTP port range, shared with the other fronts.
    pub rtp_ports: RtpPorts,
}

struct CallEntry {
    id: CallId,
    dialog: Dialog,
    invite_key: Option<ServerKey>,
    peer: Peer,
    to_call: mpsc::UnboundedSender<ToCall>,
    answer_sdp: String,
    sdp: SdpSession,
    timer: Option<SessionTimer>,
    /// Our offer in the 2xx of a delayed-offer INVITE, until the ACK answers it.
    delayed_offer: Option<String>,
    /// Our refresh re-INVITE met glare (491): when to try again (RFC 3261 §14.1).
    refresh_retry: Option<std::time::Instant>,
    /// The call's media policy: the configuration's, with the route's SRTP policy.
    policy: MediaPolicy,
    /// The media the call runs now (re-offers keep its SRTP keys when the peer's are the same).
    negotiated: Option<Negotiated>,
}

/// What one of our requests was for.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Refresh(CallId),
    Bye,
    /// An INFO (a keyframe request, RFC 5168, or a digit); its answer changes nothing.
    Info,
}

/// The running front.
pub struct SipFront {
    cfg: SipConfig,
    ctx: Context,
    advertised: IpAddr,
    policy: MediaPolicy,
    ep: Endpoint,
    sock: UdpSocket,
    local: SocketAddr,
    tcp: tokio::net::TcpListener,
    /// The TLS listener, its address and its server configuration (renewed when the
    /// certificate files change), when `tls_listen` is set.
    tls: Option<(
        tokio::net::TcpListener,
        SocketAddr,
        watch::Receiver<TlsAcceptor>,
    )>,
    /// Writers of the open TCP and TLS connections.
    stream_out: HashMap<(Transport, SocketAddr), mpsc::UnboundedSender<Vec<u8>>>,
    stream_in_tx: mpsc::UnboundedSender<StreamIn>,
    stream_in: mpsc::UnboundedReceiver<StreamIn>,
    calls: HashMap<CallId, CallEntry>,
    from_calls_tx: mpsc::UnboundedSender<FromCall>,
    from_calls: mpsc::UnboundedReceiver<FromCall>,
    pending: HashMap<ClientKey, Purpose>,
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl SipFront {
    /// Binds the SIP socket.
    pub async fn bind(cfg: &SipConfig, ctx: Context) -> std::io::Result<Self> {
        let sock = UdpSocket::bind(cfg.listen).await?;
        let local = sock.local_addr()?;
        let tcp = tokio::net::TcpListener::bind(local).await?;
        let (stream_in_tx, stream_in) = mpsc::unbounded_channel();
        let tls = match (&cfg.tls_listen, &cfg.tls_certificate, &cfg.tls_private_key) {
            (Some(addr), Some(cert), Some(key)) => {
                let acceptor = stream::watched_tls_acceptor(cert, key, stream::CERTIFICATE_CHECK)
                    .map_err(|e| {
                    std::io::Error::other(format!("sip.tls_certificate/tls_private_key: {e}"))
                })?;
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    std::io::Error::other(format!("SIP over TLS on {addr} (sip.tls_listen): {e}"))
                })?;
                let tls_local = listener.local_addr()?;
                info!(local = %tls_local, "SIP listening (TLS)");
                Some((listener, tls_local, acceptor))
            }
            _ => None,
        };
        let advertised = cfg.advertised_ip.unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                first_local_ip().unwrap_or(local.ip())
            } else {
                local.ip()
            }
        });
        let mut policy = MediaPolicy::from_names(&cfg.codecs)
            .map_err(|e| std::io::Error::other(format!("sip.codecs: unknown codec {}", e.0)))?;
        policy.srtp = cfg.srtp;
        policy.video_kbps = (cfg.video_max_kbps > 0).then_some(cfg.video_max_kbps);
        let (from_calls_tx, from_calls) = mpsc::unbounded_channel();
        info!(%local, %advertised, "SIP listening (UDP, TCP)");
        Ok(Self {
            cfg: cfg.clone(),
            ctx,
            advertised,
            policy,
            ep: Endpoint::new(
                now(),
                GATEWAY,
                &advertised.to_string(),
                &format!("jonction/{}", crate::VERSION),
            ),
            sock,
            local,
            calls: HashMap::new(),
            tcp,
            tls,
            stream_out: HashMap::new(),
            stream_in_tx,
            stream_in,
            from_calls_tx,
            from_calls,
            pending: HashMap::new(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Registers the writer of a new TCP or TLS connection; returns what its task reads.
    fn open_stream(&mut self, peer: Peer) -> mpsc::UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if self
            .stream_out
            .insert((peer.transport, peer.remote), tx)
            .is_none()
        {
            super::metrics::connection(peer.transport, true);
        }
        rx
    }

    /// Forgets the writer of a TCP or TLS connection that is gone.
    fn close_stream(&mut self, transport: Transport, remote: SocketAddr) {
        if self.stream_out.remove(&(transport, remote)).is_some() {
            super::metrics::connection(transport, false);
        }
    }

    /// Runs until `stop` fires; then ends every call (BYE) and returns.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let deadline = self.drain().await;
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { continue };
                    let peer = Peer { transport: Transport::Udp, remote: from, local: self.local };
                    self.ep.handle_message(now(), peer, &buf[..n]);
                }
                a = self.tcp.accept() => {
                    if let Ok((stream, remote)) = a {
                        let peer = Peer { transport: Transport::Tcp, remote, local: self.local };
                        let (rx, tx) = (self.open_stream(peer), self.stream_in_tx.clone());
                        tokio::spawn(stream::connection(stream, peer, rx, tx));
                    }
                }
                a = accept_tls(&self.tls) => {
                    if let (Ok((stream, remote)), Some((_, local, acceptor))) = (a, &self.tls) {
                        let peer = Peer { transport: Transport::Tls, remote, local: *local };
                        let acceptor = acceptor.borrow().clone();
                        let (rx, tx) = (self.open_stream(peer), self.stream_in_tx.clone());
                        tokio::spawn(stream::tls_connection(acceptor, stream, peer, rx, tx));
                    }
                }
                m = self.stream_in.recv() => match m {
                    Some(StreamIn::Message(peer, bytes)) => self.ep.handle_message(now(), peer, &bytes),
                    Some(StreamIn::Closed(transport, remote)) => self.close_stream(transport, remote),
                    None => {}
                },
                ev = self.from_calls.recv() => {
                    if let Some(ev) = ev {
                        self.call_event(ev);
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    let t = now();
                    self.ep.handle_timeout(t);
                    self.dialog_timers(t);
                }
                _ = stop.changed() => {
                    let ids: Vec<CallId> = self.calls.keys().copied().collect();
                    for id in ids {
                        self.hangup(id, HangupCause::Shutdown);
                    }
                    let _ = self.drain().await;
                    return;
                }
            }
        }
    }

    /// Handles every endpoint output; returns the next wake-up.
    async fn drain(&mut self) -> std::time::Instant {
        let mut next = loop {
            match self.ep.poll_output() {
                Output::Transmit { peer, data } => {
                    if peer.transport != Transport::Udp {
                        match self.stream_out.get(&(peer.transport, peer.remote)) {
                            Some(tx) => {
                                let _ = tx.send(data);
                            }
                            None => debug!(
                                "SIP over {} to {}: connection gone",
                                peer.transport.via_name(),
                                peer.remote
                            ),
                        }
                    } else if let Err(e) = self.sock.send_to(&data, peer.remote).await {
                        debug!("SIP send to {} failed: {e}", peer.remote);
                    }
                }
                Output::Request { key, msg, peer } => self.request(key, *msg, peer),
                Output::Ack { msg, .. } => self.ack(&msg),
                Output::Cancelled { key } => self.cancelled(&key),
                Output::Response { key, msg } => self.response(key, &msg),
                Output::TimedOut { key } => {
                    if let Some(Purpose::Refresh(id)) = self.pending.remove(&key) {
                        self.hangup(id, HangupCause::SessionExpired);
                    }
                }
                Output::AckTimeout { key } => debug!(?key, "no ACK for an error response"),
                Output::Refused { status, detail } => {
                    super::metrics::refused(status);
                    if status == 0 {
                        debug!(%detail, "SIP datagram dropped");
                    } else {
                        info!(status, %detail, "SIP request refused");
                    }
                }
                Output::Timeout(t) => break t,
            }
        };
        for c in self.calls.values() {
            let timers = [
                c.dialog.poll_timeout(),
                c.timer.as_ref().and_then(SessionTimer::poll_timeout),
                c.refresh_retry,
            ];
            for t in timers.into_iter().flatten() {
                next = next.min(t);
            }
        }
        next
    }

    fn request(&mut self, key: ServerKey, msg: Message, peer: Peer) {
        let Some(rl) = msg.request() else { return };
        let method = rl.method.clone();
        let in_dialog = msg.header("To").and_then(tag_of).is_some();
        if in_dialog {
            return self.in_dialog(key, msg, peer);
        }
        match method.as_str() {
            "INVITE" => self.invite(key, msg, peer),
            "OPTIONS" => {
                // RFC 3261 §11.2: the status an INVITE would get now, so that a trunk's pings
                // steer calls elsewhere while the gateway is full.
                let mut r = match self.ctx.admission.full_now() {
                    Some(full) => {
                        let mut r = response_to(&msg, 503, "Service Unavailable", &self.ep.token());
                        push_capacity_headers(&mut r, full);
                        r
                    }
                    None => response_to(&msg, 200, "OK", &self.ep.token()),
                };
                r.headers.push(h("Allow", GATEWAY.allowed.join(", ")));
                r.headers.push(h("Accept", "application/sdp"));
                r.headers.push(h("Supported", "timer"));
                self.ep.respond(&key, r);
            }
            "BYE" | "INFO" | "UPDATE" | "PRACK" => {
                let r = response_to(
                    &msg,
                    481,
                    "Call/Transaction Does Not Exist",
                    &self.ep.token(),
                );
                self.ep.respond(&key, r);
            }
            _ => {
                let r = response_to(&msg, 405, "Method Not Allowed", &self.ep.token());
                self.ep.respond(&key, r);
            }
        }
    }

    fn invite(&mut self, key: ServerKey, msg: Message, peer: Peer) {
        let tag = self.ep.token();
        let trying = response_to(&msg, 100, "Trying", &tag);
        self.ep.respond(&key, trying);
        let timer = match session_timer::negotiate(&msg, self.cfg.session_expires) {
            Negotiation::Timer(t) => t,
            Negotiation::TooSmall(min) => {
                let mut r = response_to(&msg, 422, "Session Interval Too Small", &tag);
                r.headers.push(h("Min-SE", min.as_secs().to_string()));
                self.ep.respond(&key, r);
                return;
            }
        };
        let uri = msg.request().map(|r| r.uri.clone()).unwrap_or_default();
        let called = user_of(&uri).unwrap_or_default();
        let from_uri = msg
            .header("From")
            .map(super::dialog::uri_of)
            .unwrap_or_default();
        let caller = user_of(&from_uri).unwrap_or_default();
        let id = CallId::next();
        let admitted = Caller {
            id,
            call_id: msg.header("Call-ID").unwrap_or_default().to_string(),
            request: RouteRequest {
                protocol: Protocol::Sip,
                called: Party::from_uri(&uri),
                calling: Party::from_uri(&from_uri),
                source: Some(peer.remote.ip()),
                transport: dialplan_transport(peer.transport),
                trunk: None,
                headers: msg
                    .headers
                    .iter()
                    .map(|x| (x.name.clone(), x.value.clone()))
                    .collect(),
            },
        };
        let Admitted {
            room,
            token,
            pin,
            srtp: route_srtp,
            slot,
        } = match self.ctx.admission.decide(&admitted) {
            Decision::Admit(a) => a,
            Decision::Refuse(Refusal {
                sip_code,
                reason,
                full,
                ..
            }) => {
                let mut r = response_to(&msg, sip_code, &reason, &tag);
                match full {
                    Some(full) => push_capacity_headers(&mut r, full),
                    None => {
                        info!(call = id.0, %called, sip_code, %reason, "call refused by the dialplan")
                    }
                }
                self.ep.respond(&key, r);
                return;
            }
        };
        // No body: a delayed offer (RFC 3261 §13.2.1): we offer in the 2xx, the ACK answers.
        let offer = match (!msg.body.is_empty()).then(|| SessionDescription::parse(&msg.body)) {
            None => None,
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                let mut r = response_to(&msg, 400, "Bad Request", &tag);
                r.headers.push(h(
                    "Warning",
                    format!("399 {} \"malformed SDP: {e}\"", self.advertised),
                ));
                {
                    self.ep.respond(&key, r);
                    return;
                }
            }
        };
        let rtp = match self.ctx.rtp_ports.bind(self.local.ip()) {
            Some(s) => s,
            None => {
                let r = response_to(&msg, 503, "Service Unavailable", &tag);
                {
                    self.ep.respond(&key, r);
                    return;
                }
            }
        };
        let Ok(rtp_local) = rtp.local_addr() else {
            return;
        };
        // A second port for the main video stream, when one is offered and video is on.
        // (A delayed offer gets one too: our offer in the 200 OK carries video.)
        let wants_video = offer
            .as_ref()
            .is_none_or(|o| sdp::answer_video(o, 1).is_some());
        let video_rtp = (self.policy.video_kbps.is_some() && wants_video)
            .then(|| self.ctx.rtp_ports.bind_pair(self.local.ip()))
            .flatten();
        let video_port = video_rtp
            .as_ref()
            .and_then(|(s, _)| s.local_addr().ok())
            .map_or(0, |a| a.port());
        let local = match local_media(&self.cfg, self.advertised, rtp_local.port()) {
            Ok(l) => l.with_video_port(video_port),
            Err(e) => {
                error!("cannot advertise {}: {e}", self.advertised);
                let r = response_to(&msg, 500, "Server Internal Error", &tag);
                {
                    self.ep.respond(&key, r);
                    return;
                }
            }
        };
        let policy = MediaPolicy {
            srtp: route_srtp.unwrap_or(self.policy.srtp),
            ..self.policy.clone()
        };
        let answer = match offer.as_ref().map(|o| sdp::answer(o, &policy, &local)) {
            None => None,
            Some(Ok(a)) => Some(a),
            Some(Err(rej)) => {
                let mut r = response_to(&msg, rej.status, "Not Acceptable Here", &tag);
                if let Some(w) = rej.warning {
                    r.headers.push(h("Warning", w));
                }
                info!(%called, srtp = %policy.srtp, "call refused: {}", rej.error);
                {
                    self.ep.respond(&key, r);
                    return;
                }
            }
        };
        // In-dialog requests must come back over the transport and to the port the call
        // arrived on.
        let contact = format!(
            "sip:{called}@{}{}",
            SocketAddr::new(self.advertised, peer.local.port()),
            match peer.transport {
                Transport::Udp => "",
                Transport::Tcp => ";transport=tcp",
                Transport::Tls => ";transport=tls",
            }
        );
        let Some(dialog) = Dialog::new(&msg, &tag, &contact) else {
            let r = response_to(&msg, 400, "Bad Request", &tag);
            {
                self.ep.respond(&key, r);
                return;
            }
        };
        let mut sdp_session = SdpSession::new(rand::random::<u32>() as u64);
        let (local_sdp, negotiated) = match answer {
            Some(a) => (a.sdp, Some(a.negotiated)),
            None => (sdp::offer(&policy, &local), None),
        };
        let answer_sdp = sdp_session.render(&local_sdp);
        let delayed_offer = negotiated.is_none().then(|| answer_sdp.clone());
        let ringing = dialog.response(&msg, 180, "Ringing", None);
        self.ep.respond(&key, ringing);
        let (to_call, rx) = mpsc::unbounded_channel();
        let setup = CallSetup {
            id,
            call_id: dialog.call_id.clone(),
            protocol: Protocol::Sip,
            transport: dialplan_transport(peer.transport),
            room: room.clone(),
            caller,
            callee: called.clone(),
            negotiated: negotiated.clone(),
            rtp,
            video_rtp,
            livekit_url: self.ctx.livekit_url.clone(),
            token,
            room_bind_ip: room_bind_ip(&self.ctx.livekit_url),
            media_timeout: self.cfg.media_timeout,
            publish_opus: self.ctx.publish_opus,
            max_duration: self.cfg.max_call_duration,
            records: self.cfg.call_records.clone(),
            pin,
            slot,
        };
        info!(call = id.0, %called, %room, "incoming call");
        tokio::spawn(call::run(setup, rx, self.from_calls_tx.clone()));
        self.calls.insert(
            id,
            CallEntry {
                id,
                dialog,
                invite_key: Some(key),
                peer,
                to_call,
                answer_sdp,
                sdp: sdp_session,
                timer: Some(timer),
                delayed_offer,
                refresh_retry: None,
                policy,
                negotiated,
            },
        );
    }

    fn in_dialog(&mut self, key: ServerKey, msg: Message, _peer: Peer) {
        let method = msg.request().map(|r| r.method.clone()).unwrap_or_default();
        let found = self
            .calls
            .values_mut()
            .map(|c| (c.id, c.dialog.check_request(&msg)))
            .find(|(_, v)| *v != InDialog::Foreign);
        let Some((id, verdict)) = found else {
            let r = response_to(
                &msg,
                481,
                "Call/Transaction Does Not Exist",
                &self.ep.token(),
            );
            {
                self.ep.respond(&key, r);
                return;
            }
        };
        if verdict == InDialog::OutOfOrder {
            let r = response_to(&msg, 500, "Server Internal Error", &self.ep.token());
            {
                self.ep.respond(&key, r);
                return;
            }
        }
        // Glare (RFC 3261 §14.2, RFC 3311 §5.2): an offer arriving while our own re-INVITE
        // (a session refresh, which carries an offer) is pending gets 491; the peer retries.
        let offering = method == "INVITE" || (method == "UPDATE" && !msg.body.is_empty());
        let ours_pending = self
            .pending
            .values()
            .any(|p| matches!(p, Purpose::Refresh(c) if *c == id));
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if offering && ours_pending {
            info!(call = id.0, %method, "glare with our re-INVITE: 491");
            let r = c.dialog.response(&msg, 491, "Request Pending", None);
            self.ep.respond(&key, r);
            return;
        }
        match method.as_str() {
            "BYE" => {
                let r = c.dialog.response(&msg, 200, "OK", None);
                c.dialog.state = DialogState::Terminated;
                let _ = c.to_call.send(ToCall::Stop(HangupCause::CallerBye));
                self.ep.respond(&key, r);
                self.calls.remove(&id);
            }
            "INVITE" | "UPDATE" if !msg.body.is_empty() => {
                // Re-offer: hold, resume or codec change (RFC 3264 §8).
                let port = |kind: &str| {
                    c.answer_sdp.lines().find_map(|l| {
                        l.strip_prefix(kind)
                            .and_then(|r| r.split(' ').next())
                            .and_then(|p| p.parse::<u16>().ok())
                    })
                };
                let video_port = port("m=video ").unwrap_or(0);
                let local = port("m=audio ")
                    .and_then(|p| local_media(&self.cfg, self.advertised, p).ok())
                    .map(|l| l.with_video_port(video_port));
                let result = SessionDescription::parse(&msg.body)
                    .ok()
                    .zip(local)
                    .map(|(o, l)| match &c.negotiated {
                        Some(current) => sdp::reanswer(&o, &c.policy, &l, current),
                        None => sdp::answer(&o, &c.policy, &l),
                    });
                match result {
                    Some(Ok(a)) => {
                        c.answer_sdp = c.sdp.render(&a.sdp);
                        c.negotiated = Some(a.negotiated.clone());
                        let _ = c.to_call.send(ToCall::Media(Box::new(a.negotiated)));
                        let mut r = c.dialog.response(&msg, 200, "OK", Some(&c.answer_sdp));
                        refresh_timer(c, &msg, &mut r, self.cfg.session_expires);
                        if method == "INVITE" {
                            c.dialog.sent_2xx(now(), Vec::new());
                            c.dialog.handle_ack();
                        }
                        self.ep.respond(&key, r);
                    }
                    Some(Err(rej)) => {
                        let mut r =
                            c.dialog
                                .response(&msg, rej.status, "Not Acceptable Here", None);
                        if let Some(w) = rej.warning {
                            r.headers.push(h("Warning", w));
                        }
                        self.ep.respond(&key, r);
                    }
                    None => {
                        let r = c.dialog.response(&msg, 400, "Bad Request", None);
                        self.ep.respond(&key, r);
                    }
                }
            }
            "INVITE" | "UPDATE" => {
                // Session refresh without a new offer: answer with the current description.
                let mut r = c.dialog.response(&msg, 200, "OK", Some(&c.answer_sdp));
                refresh_timer(c, &msg, &mut r, self.cfg.session_expires);
                self.ep.respond(&key, r);
            }
            "INFO"
                if media_control::is_picture_fast_update(
                    msg.header("Content-Type").unwrap_or_default(),
                    &msg.body,
                )
                .is_ok() =>
            {
                // A keyframe request for the video we send (RFC 5168).
                let _ = c.to_call.send(ToCall::FastUpdate);
                let r = c.dialog.response(&msg, 200, "OK", None);
                self.ep.respond(&key, r);
            }
            "INFO" if !msg.body.is_empty() => {
                // DTMF over SIP INFO (application/dtmf-relay, application/dtmf).
                let ct = msg.header("Content-Type").unwrap_or_default().to_string();
                let body = String::from_utf8_lossy(&msg.body).into_owned();
                let status = match crate::media::dtmf::parse_info(&ct, &body) {
                    Ok(d) => {
                        let _ = c.to_call.send(ToCall::Dtmf(d.digit));
                        200
                    }
                    Err(_) => 415,
                };
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Unsupported Media Type"
                };
                let r = c.dialog.response(&msg, status, reason, None);
                self.ep.respond(&key, r);
            }
            _ => {
                // OPTIONS, empty INFO and others inside the dialog: accepted.
                let r = c.dialog.response(&msg, 200, "OK", None);
                self.ep.respond(&key, r);
            }
        }
    }

    fn ack(&mut self, msg: &Message) {
        let mut failed = None;
        for c in self.calls.values_mut() {
            if c.dialog.check_request(msg) != InDialog::Fresh {
                continue;
            }
            c.dialog.handle_ack();
            if let Some(ours) = c.delayed_offer.take() {
                let negotiated = SessionDescription::parse(ours.as_bytes())
                    .ok()
                    .zip(SessionDescription::parse(&msg.body).ok())
                    .map(|(o, a)| sdp::accept_answer(&o, &a));
                match negotiated {
                    Some(Ok(n)) => {
                        c.negotiated = Some(n.clone());
                        let _ = c.to_call.send(ToCall::Media(Box::new(n)));
                    }
                    other => {
                        let why = match other {
                            Some(Err(e)) => e.to_string(),
                            _ => "no usable SDP answer in the ACK".into(),
                        };
                        warn!(call = c.id.0, "delayed offer failed: {why}");
                        failed = Some(c.id);
                    }
                }
            }
            break;
        }
        if let Some(id) = failed {
            self.hangup(id, HangupCause::NoMedia);
        }
    }

    fn cancelled(&mut self, key: &ServerKey) {
        let Some(id) = self
            .calls
            .values()
            .find(|c| c.invite_key.as_ref() == Some(key))
            .map(|c| c.id)
        else {
            return;
        };
        if let Some(c) = self.calls.remove(&id) {
            let _ = c.to_call.send(ToCall::Stop(HangupCause::Cancelled));
            let r = c
                .dialog
                .response(c.dialog.invite(), 487, "Request Terminated", None);
            self.ep.respond(key, r);
        }
    }

    fn call_event(&mut self, ev: FromCall) {
        match ev {
            FromCall::Answer(id) => {
                let Some(c) = self.calls.get_mut(&id) else {
                    return;
                };
                let Some(key) = c.invite_key.take() else {
                    return;
                };
                let mut ok = c
                    .dialog
                    .response(c.dialog.invite(), 200, "OK", Some(&c.answer_sdp));
                ok.headers.push(h("Supported", "timer"));
                if let Some(t) = c.timer.as_mut() {
                    ok.headers.extend(t.headers());
                    t.refreshed(now());
                }
                if let Some(bytes) = self.ep.respond(&key, ok) {
                    c.dialog.sent_2xx(now(), bytes);
                }
            }
            FromCall::Hangup(id, cause) => self.hangup(id, cause),
            FromCall::FastUpdate(id) => self.send_fast_update(id),
            FromCall::Digit(id, digit) => self.send_dtmf_info(id, digit),
        }
    }

    /// A digit from the room for a device without telephone-event: SIP INFO
    /// `application/dtmf-relay` (the form devices and PBXs take most widely).
    fn send_dtmf_info(&mut self, id: CallId, digit: char) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.dialog.state != DialogState::Confirmed {
            return;
        }
        let body = format!("Signal={digit}\r\nDuration=160\r\n").into_bytes();
        let info = c
            .dialog
            .request("INFO", Vec::new(), Some(("application/dtmf-relay", body)));
        let peer = c.peer;
        debug!(call = id.0, %digit, "digit to the device (INFO)");
        let key = self.ep.send_request(peer, info);
        self.pending.insert(key, Purpose::Info);
    }

    /// Asks the device for a video keyframe with SIP INFO (RFC 5168), for devices that do not
    /// take RTCP PLI/FIR.
    fn send_fast_update(&mut self, id: CallId) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.dialog.state != DialogState::Confirmed {
            return;
        }
        let body = media_control::PICTURE_FAST_UPDATE.as_bytes().to_vec();
        let info = c.dialog.request(
            "INFO",
            Vec::new(),
            Some((media_control::CONTENT_TYPE, body)),
        );
        let peer = c.peer;
        debug!(call = id.0, "asking the device for a keyframe (INFO)");
        let key = self.ep.send_request(peer, info);
        self.pending.insert(key, Purpose::Info);
    }

    /// Ends a call from our side: an error final response before answer, BYE after.
    fn hangup(&mut self, id: CallId, cause: HangupCause) {
        let Some(mut c) = self.calls.remove(&id) else {
            return;
        };
        let _ = c.to_call.send(ToCall::Stop(cause));
        if let Some(key) = c.invite_key.take() {
            let (status, reason) = match cause {
                HangupCause::RoomUnavailable => (480, "Temporarily Unavailable"),
                HangupCause::Shutdown => (503, "Service Unavailable"),
                _ => (480, "Temporarily Unavailable"),
            };
            let r = c.dialog.response(c.dialog.invite(), status, reason, None);
            self.ep.respond(&key, r);
            return;
        }
        if c.dialog.state == DialogState::Terminated {
            return;
        }
        let reason = match cause {
            HangupCause::MediaTimeout => "SIP;cause=408;text=\"media timeout\"",
            HangupCause::MaxDuration => "SIP;cause=200;text=\"maximum call duration\"",
            HangupCause::Shutdown => "SIP;cause=503;text=\"gateway shutting down\"",
            HangupCause::RoomClosed => "SIP;cause=200;text=\"room closed\"",
            HangupCause::Removed => "SIP;cause=200;text=\"removed from the room\"",
            HangupCause::PinRefused => "SIP;cause=403;text=\"wrong PIN\"",
            HangupCause::PinDirectoryFailed => "SIP;cause=503;text=\"PIN directory unavailable\"",
            _ => "SIP;cause=200;text=\"call ended\"",
        };
        let bye = c.dialog.request("BYE", vec![h("Reason", reason)], None);
        info!(call = id.0, cause = cause.as_str(), "sending BYE");
        let key = self.ep.send_request(c.peer, bye);
        self.pending.insert(key, Purpose::Bye);
    }

    /// Refreshes a session we are the refresher of: a re-INVITE with the current description
    /// (RFC 4028 §7.4; the SDP version stays, nothing changed).
    fn send_refresh(&mut self, id: CallId) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        let mut extra = vec![h("Supported", "timer")];
        if let Some(t) = &c.timer {
            extra.extend(
                t.headers()
                    .into_iter()
                    .filter(|x| x.name == "Session-Expires"),
            );
        }
        let body = c.answer_sdp.clone().into_bytes();
        let reinvite = c
            .dialog
            .request("INVITE", extra, Some(("application/sdp", body)));
        let peer = c.peer;
        debug!(call = id.0, "refreshing the session");
        let key = self.ep.send_request(peer, reinvite);
        self.pending.insert(key, Purpose::Refresh(id));
    }

    /// A response to one of our requests.
    fn response(&mut self, key: ClientKey, msg: &Message) {
        let status = msg.response().map(|s| s.code).unwrap_or(0);
        if status < 200 {
            return;
        }
        match self.pending.remove(&key) {
            Some(Purpose::Refresh(id)) => {
                if (200..300).contains(&status) {
                    let Some(c) = self.calls.get_mut(&id) else {
                        return;
                    };
                    // ACK the 2xx of our re-INVITE (RFC 3261 §13.2.2.4): same CSeq number.
                    let n = msg
                        .header("CSeq")
                        .and_then(|v| v.split_whitespace().next())
                        .unwrap_or("1")
                        .to_string();
                    let mut ack = c.dialog.request("ACK", Vec::new(), None);
                    c.dialog.local_cseq -= 1;
                    for hd in ack.headers.iter_mut().filter(|x| x.name == "CSeq") {
                        hd.value = format!("{n} ACK");
                    }
                    if let Some(t) = c.timer.as_mut() {
                        t.refreshed(now());
                    }
                    let peer = c.peer;
                    self.ep.send_request(peer, ack);
                } else if matches!(status, 408 | 481) {
                    // §10: the dialog is gone.
                    self.hangup(id, HangupCause::SessionExpired);
                } else if status == 491 {
                    // Glare: retry after a random 0–2 s, as the side that does not own the
                    // Call-ID (RFC 3261 §14.1); the session timer keeps running meanwhile.
                    if let Some(c) = self.calls.get_mut(&id) {
                        let wait = Duration::from_millis(rand::random_range(0..=2000));
                        info!(
                            call = id.0,
                            ?wait,
                            "our re-INVITE met glare (491); retrying"
                        );
                        c.refresh_retry = Some(now() + wait);
                    }
                }
            }
            Some(Purpose::Bye | Purpose::Info) | None => {}
        }
    }

    fn dialog_timers(&mut self, t: std::time::Instant) {
        let mut resend = Vec::new();
        let mut dead = Vec::new();
        for c in self.calls.values_mut() {
            match c.dialog.handle_timeout(t) {
                // Reliable transports carry the 2xx once (RFC 3261 §13.3.1.4 applies to UDP).
                OkTimer::Resend(bytes) if c.peer.transport == Transport::Udp => {
                    resend.push((c.peer, bytes))
                }
                OkTimer::Resend(_) => {}
                OkTimer::NoAck => dead.push(c.id),
                OkTimer::Idle => {}
            }
        }
        let mut refresh = Vec::new();
        for c in self.calls.values_mut() {
            if c.invite_key.is_some() {
                continue; // not answered yet
            }
            if c.refresh_retry.is_some_and(|at| at <= t) {
                c.refresh_retry = None;
                refresh.push(c.id);
                continue;
            }
            match c.timer.as_mut().map(|st| st.handle_timeout(t)) {
                Some(TimerAction::Refresh) => refresh.push(c.id),
                Some(TimerAction::Expired) => dead.push(c.id),
                _ => {}
            }
        }
        for id in refresh {
            self.send_refresh(id);
        }
        for (peer, bytes) in resend {
            let sock = &self.sock;
            let _ = sock.try_send_to(&bytes, peer.remote);
        }
        for id in dead {
            let expired = self
                .calls
                .get(&id)
                .is_some_and(|c| c.dialog.state == DialogState::Confirmed);
            let cause = if expired {
                HangupCause::SessionExpired
            } else {
                HangupCause::NoAck
            };
            self.hangup(id, cause);
        }
    }
}

/// Our media address for SDP, refusing private ones unless the configuration allows them.
fn local_media(cfg: &SipConfig, ip: IpAddr, port: u16) -> Result<LocalMedia, sdp::AddressError> {
    if cfg.private_allowed() {
        LocalMedia::new_private_allowed(ip, port)
    } else {
        LocalMedia::new(ip, port)
    }
}

/// Renegotiates the session timer on a refresh and adds its headers to our 2xx.
fn refresh_timer(c: &mut CallEntry, req: &Message, resp: &mut Message, default: Duration) {
    if let Negotiation::Timer(mut t) = session_timer::negotiate(req, default) {
        resp.headers.push(h("Supported", "timer"));
        resp.headers.extend(t.headers());
        t.refreshed(now());
        c.timer = Some(t);
    }
}

/// Retry-After and a Q.850 Reason on a response refusing for capacity: RFC 3261 §21.5.4, a
/// trunk may try another gateway, or this one later.
fn push_capacity_headers(r: &mut Message, full: Full) {
    r.headers
        .push(h("Retry-After", full.retry_after().as_secs().to_string()));
    r.headers.push(h(
        "Reason",
        format!("Q.850;cause={};text=\"{}\"", full.q850(), full.as_str()),
    ));
}

fn h(name: &str, value: impl Into<String>) -> Header {
    Header {
        name: name.to_string(),
        value: value.into(),
    }
}

/// The next connection on the TLS listener; never, when SIP over TLS is off.
async fn accept_tls(
    tls: &Option<(
        tokio::net::TcpListener,
        SocketAddr,
        watch::Receiver<TlsAcceptor>,
    )>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match tls {
        Some((listener, _, _)) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// The dialplan's (and call record's) name of a SIP transport.
fn dialplan_transport(t: Transport) -> DpTransport {
    match t {
        Transport::Udp => DpTransport::Udp,
        Transport::Tcp => DpTransport::Tcp,
        Transport::Tls => DpTransport::Tls,
    }
}
