//! The H.323 front: the H.225.0 call-signalling listener (TCP, port 1720 by default). Each
//! accepted connection is one call, served by its own task ([`connection`]), which joins it
//! to the call core like the SIP front does: dialplan, PIN, room leg, the audio pipeline.

mod connection;
pub mod media;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::call::admission::Admission;
use crate::config::H323Config;
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
}

impl H323Front {
    /// Binds the call-signalling listener.
    pub async fn bind(cfg: &H323Config, ctx: Context) -> std::io::Result<Self> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let local = listener.local_addr()?;
        info!(%local, "H.323 listening (H.225.0 over TCP)");
        Ok(Self {
            cfg: cfg.clone(),
            ctx: Arc::new(ctx),
            listener,
            local,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts calls until `stop`, then releases the calls in progress.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
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
    }
}
