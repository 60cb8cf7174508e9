//! The H.323 front: the H.225.0 call-signalling listener (TCP, port 1720 by default). Each
//! accepted connection is one call, served by its own task (`connection`), which joins it
//! to the call core like the SIP front does: dialplan, PIN, room leg, the audio pipeline.

mod connection;
pub mod media;
mod ras;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::call::admission::Admission;
use crate::config::H323Config;
use crate::h323::call::Alias;
use crate::h323::ras::{Endpoint, EndpointConfig, Gatekeeper, GatekeeperConfig};
use crate::media::rtp::ports::RtpPorts;

/// At most this many H.323 connections at once; more are closed on accept.
const MAX_CONNECTIONS: usize = 2000;
/// On shutdown, how long calls get to be released.
const DRAIN: Duration = Duration::from_secs(4);

/// What the H.323 front needs besides its own config.
pub struct Context {
    /// LiveKit URL of the room legs.
    pub livekit_url: String,
    /// Routing (dialplan), room-leg tokens and PIN protection, shared with the other fronts.
    pub admission: Arc<Admission>,
    /// Publish G.711 callers as Opus even when the room takes G.711.
    pub publish_opus: bool,
    /// The RTP port range, shared with the other fronts.
    pub rtp_ports: RtpPorts,
    /// No RTP for this long ends a call.
    pub media_timeout: Duration,
    /// Longest call.
    pub max_duration: Duration,
    /// Where call records go.
    pub records: PathBuf,
}

/// The running front.
pub struct H323Front {
    cfg: H323Config,
    ctx: Arc<Context>,
    listener: TcpListener,
    local: SocketAddr,
    /// The RAS task and where calls reach it, when RAS is on.
    ras: Option<(
        ras::Ras,
        mpsc::UnboundedSender<ras::RasCommand>,
        mpsc::UnboundedReceiver<ras::RasCommand>,
    )>,
}

impl H323Front {
    /// Binds the call-signalling listener.
    pub async fn bind(cfg: &H323Config, ctx: Context) -> std::io::Result<Self> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let local = listener.local_addr()?;
        info!(%local, "H.323 listening (H.225.0 over TCP)");
        let ras = if cfg.gatekeeper_mode || !cfg.gatekeeper.is_empty() {
            Some(bind_ras(cfg, local).await?)
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            ctx: Arc::new(ctx),
            listener,
            local,
            ras,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts calls until `stop`, then releases the calls in progress.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        let (unregister_tx, unregister_rx) = watch::channel(false);
        // Calls reach the RAS task only when we register with a gatekeeper (ARQ/DRQ).
        // `ras_tx` keeps the RAS task's command channel open until the end.
        let (ras_task, ras_tx) = match self.ras.take() {
            Some((r, tx, rx)) => (Some(tokio::spawn(r.run(rx, unregister_rx))), Some(tx)),
            None => (None, None),
        };
        let to_ras = ras_tx.clone().filter(|_| !self.cfg.gatekeeper.is_empty());
        loop {
            tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((stream, remote)) => {
                        if tasks.len() >= MAX_CONNECTIONS {
                            warn!(%remote, "too many H.323 connections: refused");
                            continue;
                        }
                        tasks.spawn(connection::serve(
                            stream,
                            remote,
                            self.ctx.clone(),
                            self.cfg.clone(),
                            to_ras.clone(),
                            stop.clone(),
                        ));
                    }
                    Err(e) => {
                        warn!("H.323 accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = stop.changed() => break,
            }
        }
        drop(self.listener);
        let calls = tasks.len();
        if calls > 0 {
            info!(calls, "releasing H.323 calls");
        }
        let drained =
            tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!("H.323 calls not released within {DRAIN:?}");
            tasks.abort_all();
        }
        // Calls are gone (their DRQs sent): unregister.
        let _ = unregister_tx.send(true);
        drop((to_ras, ras_tx));
        if let Some(t) = ras_task {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
    }
}

/// Binds the RAS socket and sets up the gatekeeper mode and our registration.
async fn bind_ras(
    cfg: &H323Config,
    call_signal: SocketAddr,
) -> std::io::Result<(
    ras::Ras,
    mpsc::UnboundedSender<ras::RasCommand>,
    mpsc::UnboundedReceiver<ras::RasCommand>,
)> {
    let sock = UdpSocket::bind(cfg.ras_listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("RAS on {} (h323.ras_listen): {e}", cfg.ras_listen),
        )
    })?;
    let ras_local = sock.local_addr()?;
    // Addresses we give out: a wildcard listener is reached on the first local address.
    let ip = if ras_local.ip().is_unspecified() {
        crate::call::first_local_ip().unwrap_or(ras_local.ip())
    } else {
        ras_local.ip()
    };
    let ras_address = SocketAddr::new(ip, ras_local.port());
    let call_signal = SocketAddr::new(
        if call_signal.ip().is_unspecified() {
            ip
        } else {
            call_signal.ip()
        },
        call_signal.port(),
    );
    let gatekeeper = cfg.gatekeeper_mode.then(|| {
        info!(%ras_address, "H.323 gatekeeper mode on");
        Gatekeeper::new(GatekeeperConfig::new("jonction", ras_address, call_signal))
    });
    let endpoint = match cfg.gatekeeper.parse::<SocketAddr>() {
        Ok(gk) => {
            let mut c = EndpointConfig::new(call_signal, ras_address, gk);
            c.aliases = std::iter::once(Alias::H323Id(cfg.h323_id.clone()))
                .filter(|a| !matches!(a, Alias::H323Id(s) if s.is_empty()))
                .chain(cfg.e164.iter().cloned().map(Alias::Digits))
                .collect();
            c.discover = true;
            c.time_to_live = cfg.time_to_live;
            info!(gatekeeper = %gk, "registering with the gatekeeper");
            Some(Endpoint::new(c))
        }
        Err(_) => None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    Ok((ras::Ras::new(sock, endpoint, gatekeeper), tx, rx))
}
