//! The tokio shell of a [`RoomClient`]: its signalling WebSocket and its UDP socket, driven from
//! the caller's own task (`next_event` is polled inside the caller's `select!`), so a call's media
//! never crosses a channel. Only outgoing signalling goes through a small writer task.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use livekit_protocol as proto;
use prost::Message as _;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::client::{ClientConfig, ClientEvent, ClientOutput, RoomClient};

/// Why the link ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Socket trouble.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The WebSocket could not be opened (with the server's reason when it gave one).
    #[error("signalling connection refused: {0}")]
    Refused(String),
    /// The signalling connection closed.
    #[error("signalling connection closed")]
    Closed,
    /// The server sent something that is not a SignalResponse.
    #[error("malformed signalling frame: {0}")]
    Malformed(String),
}

type WsRead = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// A connected participant.
pub struct RoomLink {
    client: RoomClient,
    ws_rx: WsRead,
    ws_tx: mpsc::UnboundedSender<Message>,
    pub_sock: UdpSocket,
    sub_sock: UdpSocket,
    pub_local: SocketAddr,
    sub_local: SocketAddr,
    buf: Vec<u8>,
    buf2: Vec<u8>,
    deadline: Instant,
    events: std::collections::VecDeque<ClientEvent>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The signalling base URL: LiveKit URLs are given as `ws(s)://` or `http(s)://`.
pub fn websocket_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_string()
    }
}

impl RoomLink {
    /// Opens the signalling connection to `url` (`ws://`, `wss://`, `http(s)://` host) with `token`, and a UDP socket
    /// on `bind_ip` for media.
    pub async fn connect(url: &str, token: &str, bind_ip: IpAddr) -> Result<Self, LinkError> {
        Self::connect_with(url, token, bind_ip, true).await
    }

    /// Like [`RoomLink::connect`], choosing whether the server subscribes us to every track.
    pub async fn connect_with(
        url: &str,
        token: &str,
        bind_ip: IpAddr,
        auto_subscribe: bool,
    ) -> Result<Self, LinkError> {
        let pub_sock = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
        let sub_sock = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
        let pub_local = pub_sock.local_addr()?;
        let sub_local = sub_sock.local_addr()?;
        // TLS (wss://) needs a process-wide crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let endpoint = format!(
            "{}/rtc?access_token={}&auto_subscribe={}&sdk=rust&protocol=16&version={}",
            websocket_url(url),
            token,
            u8::from(auto_subscribe),
            crate::VERSION
        );
        let req = endpoint
            .into_client_request()
            .map_err(|e| LinkError::Refused(e.to_string()))?;
        // tungstenite zeroes its whole read buffer (128 KiB by default) each time the stream is
        // polled, and the call task polls it at every wake-up (each RTP packet, each 20 ms
        // tick): with 40 calls that was 12 % of the gateway's CPU. Signalling messages are
        // small; the buffer still grows for a large one.
        let ws_cfg = WebSocketConfig::default().read_buffer_size(8 * 1024);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(ws_cfg), true)
            .await
            .map_err(|e| LinkError::Refused(e.to_string()))?;
        let (mut sink, ws_rx) = ws.split();
        let (ws_tx, mut rx) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let t = now();
        let client = RoomClient::new(
            ClientConfig {
                publisher: vec![pub_local],
                subscriber: vec![sub_local],
            },
            t,
        );
        Ok(Self {
            client,
            ws_rx,
            ws_tx,
            pub_sock,
            sub_sock,
            pub_local,
            sub_local,
            buf: vec![0; 2048],
            buf2: vec![0; 2048],
            deadline: t,
            events: Default::default(),
        })
    }

    /// The client core, for commands (publish, write, send_data, ...).
    pub fn client(&mut self) -> &mut RoomClient {
        &mut self.client
    }

    /// Sends what the core produced. Call after commands given through [`RoomLink::client`].
    pub fn flush(&mut self) {
        loop {
            match self.client.poll_output() {
                ClientOutput::Signal(m) => {
                    let req = proto::SignalRequest { message: Some(m) };
                    let _ = self.ws_tx.send(Message::Binary(req.encode_to_vec().into()));
                }
                ClientOutput::Transmit {
                    source,
                    destination,
                    data,
                } => {
                    let sock = if source == self.pub_local {
                        &self.pub_sock
                    } else {
                        &self.sub_sock
                    };
                    let _ = sock.try_send_to(&data, destination);
                }
                ClientOutput::Event(e) => self.events.push_back(e),
                ClientOutput::Timeout(t) => {
                    self.deadline = t;
                    break;
                }
            }
        }
    }

    /// Drives the link until the next event. Cancel-safe: usable in `select!`.
    pub async fn next_event(&mut self) -> Result<ClientEvent, LinkError> {
        loop {
            self.flush();
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            let Self {
                ws_rx,
                pub_sock,
                sub_sock,
                buf,
                buf2,
                deadline,
                client,
                pub_local,
                sub_local,
                ..
            } = self;
            tokio::select! {
                m = ws_rx.next() => match m {
                    Some(Ok(Message::Binary(b))) => {
                        let resp = proto::SignalResponse::decode(&b[..])
                            .map_err(|e| LinkError::Malformed(e.to_string()))?;
                        if let Some(msg) = resp.message {
                            client.handle_signal(now(), msg);
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => return Err(LinkError::Closed),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(LinkError::Refused(e.to_string())),
                },
                r = pub_sock.recv_from(buf) => {
                    if let Ok((n, from)) = r {
                        client.handle_datagram(now(), from, *pub_local, &buf[..n]);
                    }
                }
                r = sub_sock.recv_from(buf2) => {
                    if let Ok((n, from)) = r {
                        client.handle_datagram(now(), from, *sub_local, &buf2[..n]);
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(*deadline)) => {
                    client.handle_timeout(now());
                }
            }
        }
    }

    /// Leaves the room and closes the signalling connection.
    pub fn leave(&mut self) {
        self.client.leave();
        self.flush();
        let _ = self.ws_tx.send(Message::Close(None));
    }
}
