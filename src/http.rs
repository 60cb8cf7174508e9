//! The HTTP + WebSocket listener: LiveKit signalling (`/rtc`, `/rtc/validate`), the web page,
//! the development token endpoint, and health (`/healthz`, `/readyz`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tower_http::services::ServeDir;

use crate::prometheus::{self, Kind};
use crate::rooms::service::ConnEvent;
use crate::rooms::signal::{self, Encoding, Frame};
use crate::rooms::{JoinRequest, RoomService};
use crate::token::{Keys, TokenError, TokenRequest};

/// Largest signalling frame accepted (an SDP with many m-lines fits easily).
const MAX_FRAME: usize = 1 << 20;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Token keys.
    pub keys: Keys,
    /// The embedded room server, when it runs.
    pub rooms: Option<RoomService>,
    /// Serve `/api/dev/token`.
    pub dev_mode: bool,
    /// The web page's files.
    pub web_root: PathBuf,
    /// False until started, and again while shutting down.
    pub ready: Arc<AtomicBool>,
    /// The signalling WebSocket tasks, which outlive their HTTP connection: a graceful stop
    /// waits for them to deliver their last `Leave` and close frame.
    pub signalling: TaskTracker,
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let statics = ServeDir::new(state.web_root.clone());
    Router::new()
        .route("/rtc", get(rtc))
        .route("/rtc/validate", get(validate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/dev/token", get(dev_token))
        .route(
            "/twirp/livekit.RoomService/{method}",
            axum::routing::post(crate::twirp::room_service),
        )
        .route("/", get(index))
        .route("/room/{name}", get(index))
        .nest_service("/static", statics)
        .with_state(state)
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Prometheus text exposition: calls, SIP, the room server's counters, media latencies.
async fn metrics(State(st): State<AppState>) -> Response {
    let mut out = String::new();
    let ready = st.ready.load(Ordering::Relaxed) as u8;
    prometheus::single(
        &mut out,
        "jonction_ready",
        "1 when serving.",
        Kind::Gauge,
        ready,
    );
    crate::call::metrics::write_prometheus(&mut out);
    crate::call::capacity::write_prometheus(&mut out);
    crate::sip::metrics::write_prometheus(&mut out);
    if let Some(snap) = match &st.rooms {
        Some(r) => r.stats().await,
        None => None,
    } {
        let s = snap.stats;
        let gauges = [
            ("jonction_rooms", "Open rooms.", snap.rooms as u64),
            (
                "jonction_participants",
                "Connected participants.",
                snap.participants as u64,
            ),
        ];
        for (name, help, v) in gauges {
            prometheus::single(&mut out, name, help, Kind::Gauge, v);
        }
        let counters = [
            (
                "jonction_media_frames_in_total",
                "Media frames received from publishers.",
                s.frames_in,
            ),
            (
                "jonction_media_frames_out_total",
                "Media frames forwarded to subscribers.",
                s.frames_out,
            ),
            (
                "jonction_datagrams_unrouted_total",
                "Datagrams no peer connection accepted.",
                s.datagrams_unrouted,
            ),
            (
                "jonction_data_packets_relayed_total",
                "Data packets relayed.",
                s.data_relayed,
            ),
            (
                "jonction_data_packets_malformed_total",
                "Malformed data packets dropped.",
                s.data_malformed,
            ),
            (
                "jonction_datagrams_send_dropped_total",
                "Datagrams the socket refused.",
                snap.send_drops,
            ),
        ];
        for (name, help, v) in counters {
            prometheus::single(&mut out, name, help, Kind::Counter, v);
        }
        prometheus::single(
            &mut out,
            "jonction_room_server_busy_seconds_total",
            "Time the embedded room server spent working (one task: a rate near 1 means it is \
             saturated).",
            Kind::Counter,
            format_args!("{:.6}", snap.busy.as_secs_f64()),
        );
        write_histogram(
            &mut out,
            "jonction_forward_latency_seconds",
            "Datagram in to datagram out inside the room server.",
            &snap.forward_latency,
        );
    }
    write_histogram(
        &mut out,
        "jonction_call_uplink_latency_seconds",
        "Device RTP in to room-leg datagram out, per forwarded packet.",
        &crate::call::UPLINK_LATENCY.snapshot(),
    );
    write_histogram(
        &mut out,
        "jonction_call_video_uplink_latency_seconds",
        "Device RTP completing a picture in to its last room-leg datagram out.",
        &crate::call::VIDEO_UPLINK_LATENCY.snapshot(),
    );
    write_histogram(
        &mut out,
        "jonction_call_video_downlink_latency_seconds",
        "Room picture in to its last RTP packet to the device out.",
        &crate::call::VIDEO_DOWNLINK_LATENCY.snapshot(),
    );
    write_histogram(
        &mut out,
        "jonction_call_downlink_tick_seconds",
        "One 20 ms mix-encode-send tick towards a device.",
        &crate::call::DOWNLINK_TICK.snapshot(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Prometheus text of a latency histogram.
fn write_histogram(out: &mut String, name: &str, help: &str, h: &crate::rooms::latency::Histogram) {
    prometheus::family(out, name, help, Kind::Histogram);
    let bucket = format!("{name}_bucket");
    for (le, c) in h.cumulative() {
        let le = if le == u64::MAX {
            "+Inf".to_string()
        } else {
            format!("{}", le as f64 / 1e6)
        };
        prometheus::sample(out, &bucket, Some(("le", &le)), c);
    }
    prometheus::sample(out, &format!("{name}_sum"), None, h.sum_us() as f64 / 1e6);
    prometheus::sample(out, &format!("{name}_count"), None, h.count());
}

async fn index(State(st): State<AppState>) -> Response {
    match tokio::fs::read_to_string(st.web_root.join("index.html")).await {
        Ok(html) => Html(html).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the web page is not built ({} has no index.html): run integration/setup.sh\n",
                st.web_root.display()
            ),
        )
            .into_response(),
    }
}

/// A room name safe in URLs, logs and file names.
pub fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn dev_token(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !st.dev_mode {
        return (StatusCode::NOT_FOUND, "development mode is off\n").into_response();
    }
    let room = q.get("room").cloned().unwrap_or_default();
    let identity = q.get("identity").cloned().unwrap_or_default();
    if !valid_room_name(&room) || identity.is_empty() || identity.len() > 128 {
        return (
            StatusCode::BAD_REQUEST,
            "room (letters, digits, - _ ., up to 64) and identity are required\n",
        )
            .into_response();
    }
    let mut req = TokenRequest::new(room, identity);
    req.name = q.get("name").cloned().unwrap_or_default();
    match st.keys.mint(&req) {
        Ok(token) => Json(serde_json::json!({ "token": token, "url": "" })).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn bearer(headers: &HeaderMap, q: &HashMap<String, String>) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_string())
        .or_else(|| q.get("access_token").cloned())
}

fn unauthorized(e: &TokenError) -> Response {
    (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response()
}

async fn validate(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if st.rooms.is_none() {
        return (StatusCode::NOT_FOUND, "no embedded room server\n").into_response();
    }
    let Some(token) = bearer(&headers, &q) else {
        return (StatusCode::UNAUTHORIZED, "no access token\n").into_response();
    };
    match st.keys.verify_join(&token) {
        Ok(_) => (StatusCode::OK, "success\n").into_response(),
        Err(e) => unauthorized(&e),
    }
}

async fn rtc(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(rooms) = st.rooms.clone() else {
        return (StatusCode::NOT_FOUND, "no embedded room server\n").into_response();
    };
    let Some(token) = bearer(&headers, &q) else {
        return (StatusCode::UNAUTHORIZED, "no access token\n").into_response();
    };
    let grant = match st.keys.verify_join(&token) {
        Ok(g) => g,
        Err(e) => {
            warn!(error = %e, "signalling connection refused");
            return unauthorized(&e);
        }
    };
    if !valid_room_name(&grant.room) {
        return (StatusCode::BAD_REQUEST, "invalid room name in token\n").into_response();
    }
    if q.get("reconnect").is_some_and(|v| v == "1" || v == "true") {
        // Sessions are not resumable here: the client falls back to a full rejoin.
        debug!("resume requested; answering with a full reconnect");
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let auto_subscribe = q
        .get("auto_subscribe")
        .is_none_or(|v| v != "0" && v != "false");
    ws.max_message_size(MAX_FRAME)
        .read_buffer_size(8 * 1024)
        .on_upgrade(move |socket| {
            st.signalling
                .track_future(serve_signal(socket, rooms, grant, auto_subscribe))
        })
}

async fn serve_signal(
    socket: WebSocket,
    rooms: RoomService,
    grant: crate::token::JoinGrant,
    auto_subscribe: bool,
) {
    let conn = rooms.new_conn();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    rooms.join(
        JoinRequest {
            conn,
            grant,
            auto_subscribe,
        },
        out_tx,
    );
    let (mut sink, mut stream) = socket.split();
    let mut enc = Encoding::Protobuf;
    loop {
        tokio::select! {
            ev = out_rx.recv() => match ev {
                Some(ConnEvent::Signal(m)) => {
                    let msg = match signal::encode(m, enc) {
                        Frame::Binary(b) => Message::Binary(b.into()),
                        Frame::Text(t) => Message::Text(t.into()),
                    };
                    if sink.send(msg).await.is_err() {
                        break;
                    }
                }
                Some(ConnEvent::Close(why)) => {
                    let _ = sink.send(close(1000, &why)).await;
                    await_close(&mut stream).await;
                    break;
                }
                None => {
                    let _ = sink.send(close(1001, "server going away")).await;
                    await_close(&mut stream).await;
                    break;
                }
            },
            msg = stream.next() => {
                let decoded = match msg {
                    Some(Ok(Message::Binary(b))) => {
                        enc = Encoding::Protobuf;
                        signal::decode_binary(&b)
                    }
                    Some(Ok(Message::Text(t))) => {
                        enc = Encoding::Json;
                        signal::decode_text(&t)
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        debug!(?conn, "signalling read error: {e}");
                        break;
                    }
                };
                match decoded {
                    Ok(m) => rooms.signal(conn, m),
                    Err(e) => {
                        warn!(?conn, error = %e, "malformed signalling frame; closing connection");
                        // 1007: invalid frame payload data (RFC 6455 §7.4.1).
                        let _ = sink.send(close(1007, &e.to_string())).await;
                        break;
                    }
                }
            }
        }
    }
    rooms.disconnected(conn);
}

/// How long a closing server waits for the client's close frame.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Finishes the closing handshake we started (RFC 6455 §7.1.1): reads until the client's close
/// frame or the end of the stream, for [`CLOSE_WAIT`] at most. Dropping the TCP connection at once
/// would reset it when client data is still unread, and the client could lose our last `Leave`.
async fn await_close(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let drain = async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}

fn close(code: u16, reason: &str) -> Message {
    // Close reasons are limited to 123 bytes.
    let mut r = reason.to_string();
    while r.len() > 120 {
        r.pop();
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: r.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::valid_room_name;

    #[test]
    fn room_names() {
        assert!(valid_room_name("demo-1_a.b"));
        assert!(!valid_room_name(""));
        assert!(!valid_room_name("a b"));
        assert!(!valid_room_name("../etc"));
        assert!(!valid_room_name(&"x".repeat(65)));
    }
}
