//! The RAS socket (UDP): our registration with a gatekeeper ([`Endpoint`]: RRQ, keep-alives,
//! ARQ/DRQ per call, URQ when stopping) and the gatekeeper mode ([`Gatekeeper`]), both on one
//! socket. Datagrams from the gatekeeper we registered with go to the endpoint, the others to
//! the gatekeeper mode.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::h323::call::Guid;
use crate::h323::ras::{
    AdmissionParams, DisengageParams, Endpoint, Gatekeeper, GatekeeperEvent, RasEvent,
};

/// How long a call waits for the gatekeeper's admission (its retries included).
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(12);
/// How long the URQ may take when stopping.
const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What a call asks of the RAS task.
#[derive(Debug)]
pub enum RasCommand {
    /// ARQ for a call we answer; the reply says whether it may go on (reject reason if not).
    /// `ended` fires if the gatekeeper ends the call later (its DRQ).
    Admit {
        /// The call.
        params: AdmissionParams,
        /// The admission's outcome.
        reply: oneshot::Sender<Result<(), String>>,
        /// The gatekeeper's DisengageRequest for this call.
        ended: oneshot::Sender<()>,
    },
    /// DRQ for a call that ended.
    Disengage(DisengageParams),
}

/// The RAS task's state.
pub struct Ras {
    sock: UdpSocket,
    endpoint: Option<Endpoint>,
    gatekeeper: Option<Gatekeeper>,
    admissions: HashMap<u16, oneshot::Sender<Result<(), String>>>,
    /// Admitted calls by callIdentifier, told when the gatekeeper ends them.
    calls: HashMap<Guid, oneshot::Sender<()>>,
}

impl Ras {
    /// A RAS task on `sock` with the machines configured.
    pub fn new(
        sock: UdpSocket,
        endpoint: Option<Endpoint>,
        gatekeeper: Option<Gatekeeper>,
    ) -> Self {
        Ras {
            sock,
            endpoint,
            gatekeeper,
            admissions: HashMap::new(),
            calls: HashMap::new(),
        }
    }

    /// Runs until `unregister` turns true (then URQ, bounded) or every sender is gone.
    pub async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<RasCommand>,
        mut unregister: watch::Receiver<bool>,
    ) {
        if let Some(ep) = self.endpoint.as_mut() {
            ep.start(now());
        }
        let mut buf = vec![0u8; 4096];
        let mut stopping: Option<Instant> = None;
        loop {
            self.flush().await;
            self.events();
            if let Some(since) = stopping {
                let done = self.endpoint.as_ref().is_none_or(|e| !e.is_registered());
                if done || now().duration_since(since) > UNREGISTER_TIMEOUT {
                    break;
                }
            }
            let mut wake = now() + Duration::from_millis(500);
            for t in [
                self.endpoint.as_ref().and_then(Endpoint::poll_timeout),
                self.gatekeeper.as_ref().and_then(Gatekeeper::poll_timeout),
            ]
            .into_iter()
            .flatten()
            {
                wake = wake.min(t);
            }
            tokio::select! {
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.datagram(from, &buf[..n]),
                    Err(e) => debug!("RAS socket: {e}"),
                },
                cmd = cmds.recv(), if stopping.is_none() => match cmd {
                    Some(c) => self.command(c),
                    None => stopping = Some(self.unregister()),
                },
                r = unregister.changed(), if stopping.is_none() => {
                    let _ = r;
                    stopping = Some(self.unregister());
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    let t = now();
                    if let Some(ep) = self.endpoint.as_mut() {
                        if ep.poll_timeout().is_some_and(|x| x <= t) {
                            ep.handle_timeout(t);
                        }
                    }
                    if let Some(gk) = self.gatekeeper.as_mut() {
                        if gk.poll_timeout().is_some_and(|x| x <= t) {
                            gk.handle_timeout(t);
                        }
                    }
                }
            }
        }
        self.flush().await;
    }

    fn unregister(&mut self) -> Instant {
        if let Some(ep) = self.endpoint.as_mut().filter(|e| e.is_registered()) {
            info!("unregistering from the gatekeeper");
            ep.unregister(now());
        }
        now()
    }

    fn datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let t = now();
        let to_endpoint = self
            .endpoint
            .as_ref()
            .is_some_and(|e| e.gatekeeper_address() == from);
        let r = match (
            to_endpoint,
            self.gatekeeper.as_mut(),
            self.endpoint.as_mut(),
        ) {
            (true, _, Some(ep)) | (false, None, Some(ep)) => ep.handle_datagram(t, from, data),
            (false, Some(gk), _) => gk.handle_datagram(t, from, data),
            _ => {
                debug!(%from, "RAS datagram with nobody to take it");
                Ok(())
            }
        };
        if let Err(e) = r {
            warn!(%from, len = data.len(), "RAS datagram ignored: {e}");
        }
    }

    fn command(&mut self, cmd: RasCommand) {
        let t = now();
        match cmd {
            RasCommand::Admit {
                params,
                reply,
                ended,
            } => match self.endpoint.as_mut() {
                Some(ep) if ep.is_registered() => {
                    let call = params.call_identifier;
                    match ep.admit(t, params) {
                        Ok(seq) => {
                            self.admissions.insert(seq, reply);
                            self.calls.retain(|_, tx| !tx.is_closed());
                            self.calls.insert(call, ended);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e.to_string()));
                        }
                    }
                }
                Some(_) => {
                    warn!("a call arrives while we are not registered: taken without admission");
                    let _ = reply.send(Ok(()));
                }
                None => {
                    let _ = reply.send(Ok(()));
                }
            },
            RasCommand::Disengage(params) => {
                self.calls.remove(&params.call_identifier);
                if let Some(ep) = self.endpoint.as_mut().filter(|e| e.is_registered()) {
                    if let Err(e) = ep.disengage(t, params) {
                        debug!("no DRQ: {e}");
                    }
                }
            }
        }
    }

    fn events(&mut self) {
        while let Some(ev) = self.endpoint.as_mut().and_then(Endpoint::poll_event) {
            match ev {
                RasEvent::Registered {
                    endpoint_id,
                    gatekeeper_id,
                    time_to_live,
                } => {
                    info!(%endpoint_id, ?gatekeeper_id, ?time_to_live, "registered with the gatekeeper")
                }
                RasEvent::Refreshed { time_to_live } => {
                    debug!(?time_to_live, "registration kept alive")
                }
                RasEvent::RegistrationFailed { reason, .. } => {
                    warn!(%reason, "registration with the gatekeeper failed; trying again later")
                }
                RasEvent::Admitted { seq, .. } => {
                    if let Some(r) = self.admissions.remove(&seq) {
                        let _ = r.send(Ok(()));
                    }
                }
                RasEvent::AdmissionRejected { seq, reason, .. } => {
                    if let Some(r) = self.admissions.remove(&seq) {
                        let _ = r.send(Err(reason));
                    }
                }
                RasEvent::Unregistered {
                    by_gatekeeper,
                    reason,
                } => info!(by_gatekeeper, ?reason, "unregistered from the gatekeeper"),
                RasEvent::DisengageRequested {
                    call,
                    call_reference,
                } => match call.and_then(|c| self.calls.remove(&c)) {
                    Some(tx) => {
                        info!(call_reference, "the gatekeeper ends a call (DRQ)");
                        let _ = tx.send(());
                    }
                    None => debug!(call_reference, "DRQ for a call we do not have"),
                },
                other => debug!("RAS: {other:?}"),
            }
        }
        while let Some(ev) = self.gatekeeper.as_mut().and_then(Gatekeeper::poll_event) {
            match ev {
                GatekeeperEvent::Registered { .. } | GatekeeperEvent::Unregistered { .. } => {
                    info!("gatekeeper: {ev:?}")
                }
                other => debug!("gatekeeper: {other:?}"),
            }
        }
    }

    async fn flush(&mut self) {
        let mut out = Vec::new();
        if let Some(ep) = self.endpoint.as_mut() {
            while let Some(d) = ep.poll_transmit() {
                out.push(d);
            }
        }
        if let Some(gk) = self.gatekeeper.as_mut() {
            while let Some(d) = gk.poll_transmit() {
                out.push(d);
            }
        }
        for (to, bytes) in out {
            if let Err(e) = self.sock.send_to(&bytes, to).await {
                debug!(%to, "RAS datagram not sent: {e}");
            }
        }
    }
}
