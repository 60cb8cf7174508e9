//! `jonction run`: starts the embedded room server (unless an external LiveKit is configured)
//! and the HTTP listener, reports readiness to systemd, and shuts down gracefully on SIGTERM:
//! not ready, participants told to leave, listeners closed, exit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::call::capacity::Capacity;
use crate::config::Config;
use crate::http::{self, AppState};
use crate::rooms::RoomService;
use crate::token::Keys;

/// A started gateway.
pub struct Running {
    /// Where the HTTP listener is bound.
    pub http_addr: SocketAddr,
    /// The embedded room server, when it runs.
    pub rooms: Option<RoomService>,
    /// Where the SIP front listens (UDP), when it runs.
    pub sip_addr: Option<SocketAddr>,
    /// Where the H.323 front listens (TCP), when it runs.
    pub h323_addr: Option<SocketAddr>,
    sip: Option<(tokio::sync::watch::Sender<bool>, JoinHandle<()>)>,
    h323: Option<(tokio::sync::watch::Sender<bool>, JoinHandle<()>)>,
    ready: Arc<AtomicBool>,
    signalling: tokio_util::task::TaskTracker,
    stop_tx: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
}

/// The limits on new calls, reading the embedded room server's load when it runs.
fn capacity(cfg: &Config, rooms: Option<RoomService>) -> Arc<Capacity> {
    info!(limits = ?cfg.calls, "call capacity limits");
    Arc::new(Capacity::new(
        cfg.calls.clone(),
        Box::new(move || rooms.as_ref().map_or(0.0, RoomService::load)),
    ))
}

/// How often the scheduling-delay probe wakes, and over how many wakes it averages.
const PROBE_PERIOD: Duration = Duration::from_millis(100);
const PROBE_SAMPLES: u32 = 5;

/// Measures how late a timer task gets a CPU, for the capacity limits and /metrics: when the
/// runtime's threads (or the machine) are saturated, every task, media included, is that late.
fn spawn_scheduling_probe() {
    tokio::spawn(async {
        let mut recent = [Duration::ZERO; PROBE_SAMPLES as usize];
        for i in (0..recent.len()).cycle() {
            let t = tokio::time::Instant::now();
            tokio::time::sleep(PROBE_PERIOD).await;
            recent[i] = t.elapsed().saturating_sub(PROBE_PERIOD);
            let mean = recent.iter().sum::<Duration>() / PROBE_SAMPLES;
            crate::call::capacity::record_scheduling_delay(mean);
        }
    });
}

/// Starts everything and returns once listening.
pub async fn start(cfg: &Config) -> anyhow::Result<Running> {
    crate::rooms::install_crypto();
    let keys = Keys::new(&cfg.livekit.api_key, &cfg.livekit.api_secret);
    let ready = Arc::new(AtomicBool::new(false));
    let node_id = format!("jonction-{}", std::process::id());

    let rooms = if cfg.livekit.embedded() {
        let (svc, _task) = RoomService::start(&cfg.rooms, node_id)
            .await
            .context("starting the embedded room server")?;
        Some(svc)
    } else {
        info!(url = %cfg.livekit.url, "using an external LiveKit server; embedded room server off");
        None
    };

    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", cfg.http.listen))?;
    let http_addr = listener.local_addr()?;
    let dev_mode = cfg.http.dev_mode();
    let signalling = tokio_util::task::TaskTracker::new();
    let state = AppState {
        signalling: signalling.clone(),
        keys,
        rooms: rooms.clone(),
        dev_mode,
        web_root: cfg.web.root.clone(),
        ready: ready.clone(),
    };
    let app = http::router(state);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    type Front = (tokio::sync::watch::Sender<bool>, JoinHandle<()>);
    let (mut sip, mut sip_addr, mut h323, mut h323_addr) =
        (None::<Front>, None, None::<Front>, None);
    if cfg.sip.enabled || cfg.h323.enabled {
        let livekit_url = if cfg.livekit.embedded() {
            format!("ws://{http_addr}")
        } else {
            cfg.livekit.url.clone()
        };
        // The watcher takes the directory's state before the plan is loaded: a file still being
        // written when the gateway starts is then seen changing, and reloaded once complete.
        let handle = crate::dialplan::reload::DialplanHandle::default();
        let watcher = (!cfg.dialplan.reload_interval.is_zero()).then(|| {
            crate::dialplan::reload::watch(
                cfg.dialplan.dir.clone(),
                cfg.dialplan.reload_interval,
                handle.clone(),
            )
        });
        handle.swap(load_dialplan(&cfg.dialplan.dir)?);
        if let Some(w) = watcher {
            tokio::spawn(w);
        }
        spawn_scheduling_probe();
        let capacity = capacity(cfg, rooms.clone());
        let admission = std::sync::Arc::new(crate::call::admission::Admission::new(
            handle,
            Keys::new(&cfg.livekit.api_key, &cfg.livekit.api_secret),
            livekit_url.clone(),
            capacity,
        ));
        // One RTP port range for both fronts.
        let rtp_ports =
            crate::media::rtp::ports::RtpPorts::new(cfg.sip.rtp_port_min, cfg.sip.rtp_port_max);
        if cfg.sip.enabled {
            let ctx = crate::sip::service::Context {
                livekit_url: livekit_url.clone(),
                admission: admission.clone(),
                publish_opus: cfg.livekit.publish_opus,
                rtp_ports: rtp_ports.clone(),
            };
            let front = crate::sip::service::SipFront::bind(&cfg.sip, ctx)
                .await
                .with_context(|| format!("cannot start SIP on {} (sip.listen)", cfg.sip.listen))?;
            sip_addr = Some(front.local_addr());
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            sip = Some((stop_tx, tokio::spawn(front.run(stop_rx))));
        }
        if cfg.h323.enabled {
            let ctx = crate::h323::front::Context {
                livekit_url,
                admission,
                publish_opus: cfg.livekit.publish_opus,
                rtp_ports,
                media_timeout: cfg.sip.media_timeout,
                max_duration: cfg.sip.max_call_duration,
                records: cfg.sip.call_records.clone(),
            };
            let front = crate::h323::front::H323Front::bind(&cfg.h323, ctx)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen for H.323 on {} (h323.listen)",
                        cfg.h323.listen
                    )
                })?;
            h323_addr = Some(front.local_addr());
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            h323 = Some((stop_tx, tokio::spawn(front.run(stop_rx))));
        }
    }
    info!(
        listen = %http_addr,
        dev_mode,
        embedded_rooms = rooms.is_some(),
        version = crate::VERSION,
        "jonction started"
    );
    if dev_mode {
        info!("development mode: open http://{http_addr}/ to join a room");
    }
    ready.store(true, Ordering::Relaxed);
    Ok(Running {
        http_addr,
        rooms,
        sip_addr,
        h323_addr,
        sip,
        h323,
        ready,
        signalling,
        stop_tx,
        server,
    })
}

impl Running {
    /// Graceful stop: not ready, participants told to leave, HTTP closed (10 s at most).
    pub async fn stop(self) {
        self.ready.store(false, Ordering::Relaxed);
        // Both fronts release their calls at once.
        let fronts: Vec<_> = [self.sip, self.h323].into_iter().flatten().collect();
        for (stop, _) in &fronts {
            let _ = stop.send(true);
        }
        for (_, task) in fronts {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        if let Some(r) = &self.rooms {
            r.shutdown().await;
        }
        // The WebSocket tasks deliver their last Leave and close frame.
        self.signalling.close();
        if tokio::time::timeout(Duration::from_secs(5), self.signalling.wait())
            .await
            .is_err()
        {
            warn!("signalling connections did not close within 5 s");
        }
        let _ = self.stop_tx.send(());
        match tokio::time::timeout(Duration::from_secs(10), self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!("http server ended with an error: {e}"),
            Ok(Err(e)) => warn!("http server task failed: {e}"),
            Err(_) => warn!("http connections did not close within 10 s; exiting anyway"),
        }
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let running = start(&cfg).await?;
    notify(&[sd_notify::NotifyState::Ready]);
    wait_for_signal().await;
    info!("shutting down");
    notify(&[sd_notify::NotifyState::Stopping]);
    running.stop().await;
    info!("stopped");
    Ok(())
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    // Not under systemd (no NOTIFY_SOCKET): nothing to do.
    let _ = sd_notify::notify(state);
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => info!("SIGTERM received"),
                _ = i.recv() => info!("SIGINT received"),
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The dialplan at start-up: a refused plan stops the start (there is no running plan to keep);
/// a missing directory gives an empty plan (every call 404) until files appear.
fn load_dialplan(dir: &std::path::Path) -> anyhow::Result<crate::dialplan::Dialplan> {
    if !dir.is_dir() {
        warn!(dir = %dir.display(), "dialplan directory not found: every call gets 404 until it appears");
        return Ok(crate::dialplan::Dialplan::default());
    }
    match crate::dialplan::Dialplan::load_dir(dir) {
        Ok(plan) => {
            info!(dir = %dir.display(), rules = plan.rule_count(), "dialplan loaded");
            Ok(plan)
        }
        Err(e) => anyhow::bail!("dialplan refused (dialplan.dir = {}):\n{e}", dir.display()),
    }
}
