//! The SIP endpoint, sans-IO: demultiplexes datagrams and stream messages into server and
//! client transactions (RFC 3261 §17.1.3, §17.2.3), answers what needs no user (malformed
//! requests, retransmissions, CANCEL's own 200), stamps Via `received`/`rport` (RFC 3581), and
//! hands requests and responses to the transaction user (the dialog layer).
//!
//! Run loop: `handle_*`, then drain [`Endpoint::poll_output`] until [`Output::Timeout`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use super::message::{Header, Message, StartLine};
use super::transaction::{Action, ClientTransaction, Reliability, ServerTransaction};
use super::validate::{self, Policy, Verdict};

/// A transport flow to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// UDP or TCP.
    pub transport: Transport,
    /// Remote address.
    pub remote: SocketAddr,
    /// Our local address it arrived on.
    pub local: SocketAddr,
}

/// Transport protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (retransmissions by the transactions).
    Udp,
    /// TCP (reliable).
    Tcp,
    /// TLS over TCP (reliable).
    Tls,
}

impl Transport {
    fn reliability(self) -> Reliability {
        match self {
            Self::Udp => Reliability::Unreliable,
            Self::Tcp | Self::Tls => Reliability::Reliable,
        }
    }

    /// Name in a Via header.
    pub fn via_name(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }
}

/// Identifies a server transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey {
    /// Via branch (or an RFC 2543 substitute built from Call-ID and CSeq).
    pub branch: String,
    /// Via sent-by.
    pub sent_by: String,
    /// Method (INVITE for an ACK or CANCEL matching an INVITE).
    pub method: String,
}

/// Identifies a client transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// Our Via branch.
    pub branch: String,
    /// Method.
    pub method: String,
}

/// What the endpoint produces.
#[derive(Debug)]
pub enum Output {
    /// Bytes to send.
    Transmit {
        /// Where.
        peer: Peer,
        /// What.
        data: Vec<u8>,
    },
    /// A new request for the user (not ACK, not a retransmission).
    Request {
        /// Its transaction, to respond on.
        key: ServerKey,
        /// The request.
        msg: Box<Message>,
        /// Where it came from.
        peer: Peer,
    },
    /// An ACK for a 2xx (no transaction: the dialog's business).
    Ack {
        /// The ACK.
        msg: Box<Message>,
        /// Where it came from.
        peer: Peer,
    },
    /// A CANCEL matched this INVITE transaction (its 200 was sent already).
    Cancelled {
        /// The INVITE's transaction.
        key: ServerKey,
    },
    /// A response to one of our requests.
    Response {
        /// Our transaction.
        key: ClientKey,
        /// The response.
        msg: Box<Message>,
    },
    /// Our request got no final response (408 for the user).
    TimedOut {
        /// Our transaction.
        key: ClientKey,
    },
    /// An INVITE we answered with a non-2xx got no ACK (Timer H).
    AckTimeout {
        /// Its transaction.
        key: ServerKey,
    },
    /// A request was refused before reaching the user (counted, logged).
    Refused {
        /// Status sent (0: dropped).
        status: u16,
        /// Why.
        detail: String,
    },
    /// Nothing until then.
    Timeout(Instant),
}

struct ServerEntry {
    tx: ServerTransaction,
    peer: Peer,
    request: Message,
}

struct ClientEntry {
    tx: ClientTransaction,
    peer: Peer,
    request: Message,
}

/// The endpoint.
pub struct Endpoint {
    policy: Policy,
    host: String,
    user_agent: String,
    now: Instant,
    servers: HashMap<ServerKey, ServerEntry>,
    clients: HashMap<ClientKey, ClientEntry>,
    out: VecDeque<Output>,
    next_id: u64,
}

impl Endpoint {
    /// An endpoint that names itself `host` in Warning headers and `user_agent` in Server.
    pub fn new(now: Instant, policy: Policy, host: &str, user_agent: &str) -> Self {
        Self {
            policy,
            host: host.to_string(),
            user_agent: user_agent.to_string(),
            now,
            servers: HashMap::new(),
            clients: HashMap::new(),
            out: VecDeque::new(),
            next_id: 1,
        }
    }

    /// Number of live transactions (server, client).
    pub fn transactions(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    /// A new unique token (tags, branches).
    pub fn token(&mut self) -> String {
        self.next_id += 1;
        let r: u64 = rand::random();
        format!("{:x}{:x}", r, self.next_id)
    }

    /// One datagram (UDP) or one framed message (TCP) from `peer`.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        self.now = self.now.max(now);
        match validate::check_datagram(data, &self.policy) {
            Verdict::Request(m) => self.request(peer, *m),
            Verdict::Response(m) => self.response(*m),
            Verdict::Reject(head, r) => {
                let to_tag = self.token();
                if let Some(req) = head.as_ref() {
                    let is_ack = req.request().is_some_and(|rl| rl.method == "ACK");
                    if !is_ack {
                        let mut resp = validate::rejection(req, &r, &to_tag, &self.host);
                        self.stamp_via(&mut resp, peer);
                        self.server_header(&mut resp);
                        self.out.push_back(Output::Transmit {
                            peer,
                            data: resp.to_bytes(),
                        });
                    }
                }
                self.out.push_back(Output::Refused {
                    status: r.status,
                    detail: r.detail,
                });
            }
            Verdict::Discard(why) => self.out.push_back(Output::Refused {
                status: 0,
                detail: why,
            }),
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let due: Vec<ServerKey> = self
            .servers
            .iter()
            .filter(|(_, e)| e.tx.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(e) = self.servers.get_mut(&k) {
                let acts = e.tx.handle_timeout(now);
                let peer = e.peer;
                self.server_actions(&k, peer, acts);
            }
        }
        let due: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, e)| e.tx.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(e) = self.clients.get_mut(&k) {
                let acts = e.tx.handle_timeout(now);
                let peer = e.peer;
                self.client_actions(&k, peer, acts, None);
            }
        }
    }

    /// The user responds on a server transaction. Via, From, To, Call-ID and CSeq must already
    /// be those of the request (see [`validate::response_to`]). Returns the bytes sent (a UAS
    /// keeps those of a 2xx to retransmit them until the ACK).
    pub fn respond(&mut self, key: &ServerKey, mut resp: Message) -> Option<Vec<u8>> {
        let e = self.servers.get(key)?;
        let peer = e.peer;
        let status = resp.response().map(|s| s.code).unwrap_or(500);
        // A call attempt: an INVITE outside any dialog (no To tag), not a re-INVITE.
        let initial = e.request.header("To").and_then(tag_of).is_none();
        if initial && e.request.request().is_some_and(|r| r.method == "INVITE") {
            super::metrics::invite_answered(status);
        }
        self.stamp_via(&mut resp, peer);
        self.server_header(&mut resp);
        let bytes = resp.to_bytes();
        let now = self.now;
        if let Some(e) = self.servers.get_mut(key) {
            let acts = e.tx.respond(now, status, bytes.clone());
            self.server_actions(key, peer, acts);
        }
        Some(bytes)
    }

    /// The request a server transaction was created for.
    pub fn request_of(&self, key: &ServerKey) -> Option<&Message> {
        self.servers.get(key).map(|e| &e.request)
    }

    /// Sends a request in a new client transaction; the top Via is added here.
    pub fn send_request(&mut self, peer: Peer, mut req: Message) -> ClientKey {
        let branch = format!("z9hG4bK{}", self.token());
        let method = req.request().map(|r| r.method.clone()).unwrap_or_default();
        let via = Header {
            name: "Via".into(),
            value: format!(
                "SIP/2.0/{} {};branch={branch};rport",
                peer.transport.via_name(),
                peer.local
            ),
        };
        req.headers.insert(0, via);
        let key = ClientKey {
            branch,
            method: method.clone(),
        };
        if method == "ACK" {
            // ACK for a 2xx is sent outside any transaction (RFC 3261 §13.2.2.4).
            self.out.push_back(Output::Transmit {
                peer,
                data: req.to_bytes(),
            });
            return key;
        }
        let (tx, acts) = ClientTransaction::start(
            self.now,
            method == "INVITE",
            peer.transport.reliability(),
            req.to_bytes(),
        );
        self.clients.insert(
            key.clone(),
            ClientEntry {
                tx,
                peer,
                request: req,
            },
        );
        self.client_actions(&key, peer, acts, None);
        key
    }

    /// The next output; drain until [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let next = self
            .servers
            .values()
            .filter_map(|e| e.tx.poll_timeout())
            .chain(self.clients.values().filter_map(|e| e.tx.poll_timeout()))
            .min()
            .unwrap_or(self.now + std::time::Duration::from_secs(3600));
        Output::Timeout(next.max(self.now))
    }

    // === internals ===

    fn request(&mut self, peer: Peer, msg: Message) {
        let Some(rl) = msg.request() else { return };
        let method = rl.method.clone();
        let key = server_key(&msg, &method);
        let now = self.now;
        match method.as_str() {
            "ACK" => {
                let inv = ServerKey {
                    method: "INVITE".into(),
                    ..key
                };
                if let Some(e) = self.servers.get_mut(&inv) {
                    if e.tx.last_status().is_some_and(|s| s >= 300) {
                        let acts = e.tx.handle_request(now, true);
                        self.server_actions(&inv, peer, acts);
                        return;
                    }
                }
                self.out.push_back(Output::Ack {
                    msg: Box::new(msg),
                    peer,
                });
            }
            "CANCEL" => {
                let inv = ServerKey {
                    method: "INVITE".into(),
                    ..key.clone()
                };
                let status = if self.servers.contains_key(&inv) {
                    200
                } else {
                    481
                };
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Call/Transaction Does Not Exist"
                };
                let tag = self.token();
                let mut resp = validate::response_to(&msg, status, reason, &tag);
                self.stamp_via(&mut resp, peer);
                self.server_header(&mut resp);
                self.out.push_back(Output::Transmit {
                    peer,
                    data: resp.to_bytes(),
                });
                if status == 200 {
                    let answered = self
                        .servers
                        .get(&inv)
                        .and_then(|e| e.tx.last_status())
                        .is_some_and(|s| s >= 200);
                    if !answered {
                        self.out.push_back(Output::Cancelled { key: inv });
                    }
                }
            }
            _ => {
                if let Some(e) = self.servers.get_mut(&key) {
                    // A retransmission: the transaction answers it.
                    let acts = e.tx.handle_request(now, false);
                    self.server_actions(&key, peer, acts);
                    return;
                }
                let invite = method == "INVITE";
                let tx = ServerTransaction::new(invite, peer.transport.reliability());
                self.servers.insert(
                    key.clone(),
                    ServerEntry {
                        tx,
                        peer,
                        request: msg.clone(),
                    },
                );
                self.out.push_back(Output::Request {
                    key,
                    msg: Box::new(msg),
                    peer,
                });
            }
        }
    }

    fn response(&mut self, msg: Message) {
        let Some(status) = msg.response().map(|s| s.code) else {
            return;
        };
        let via = msg
            .header_values("Via")
            .first()
            .map(|v| v.to_string())
            .unwrap_or_default();
        let branch = via_param(&via, "branch").unwrap_or_default();
        let method = msg
            .header("CSeq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_string();
        let key = ClientKey { branch, method };
        let now = self.now;
        let Some(e) = self.clients.get_mut(&key) else {
            // A 2xx retransmission after the transaction ended still concerns the dialog.
            if (200..300).contains(&status) && key.method == "INVITE" {
                self.out.push_back(Output::Response {
                    key,
                    msg: Box::new(msg),
                });
            }
            return;
        };
        let ack = (key.method == "INVITE" && status >= 300).then(|| non_2xx_ack(&e.request, &msg));
        let acts = e.tx.handle_response(now, status, ack);
        let peer = e.peer;
        self.client_actions(&key, peer, acts, Some(msg));
    }

    fn server_actions(&mut self, key: &ServerKey, peer: Peer, acts: Vec<Action>) {
        for a in acts {
            match a {
                Action::Send(data) => self.out.push_back(Output::Transmit { peer, data }),
                Action::Terminated => {
                    self.servers.remove(key);
                }
                Action::TimedOut(_) => self.out.push_back(Output::AckTimeout { key: key.clone() }),
                Action::Deliver => {}
            }
        }
    }

    fn client_actions(
        &mut self,
        key: &ClientKey,
        peer: Peer,
        acts: Vec<Action>,
        mut msg: Option<Message>,
    ) {
        for a in acts {
            match a {
                Action::Send(data) => self.out.push_back(Output::Transmit { peer, data }),
                Action::Deliver => {
                    if let Some(m) = msg.take() {
                        self.out.push_back(Output::Response {
                            key: key.clone(),
                            msg: Box::new(m),
                        });
                    }
                }
                Action::Terminated => {
                    self.clients.remove(key);
                }
                Action::TimedOut(_) => self.out.push_back(Output::TimedOut { key: key.clone() }),
            }
        }
    }

    /// RFC 3261 §18.2.1 `received` and RFC 3581 `rport` on the top Via of a response.
    fn stamp_via(&self, resp: &mut Message, peer: Peer) {
        let Some(top) = resp.headers.iter_mut().find(|h| h.name == "Via") else {
            return;
        };
        let mut values = super::message::split_commas(&top.value)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        let Some(first) = values.first_mut() else {
            return;
        };
        let mut params: Vec<String> = first.split(';').map(|p| p.trim().to_string()).collect();
        let ip = peer.remote.ip().to_string();
        let mut has_received = false;
        for p in params.iter_mut().skip(1) {
            if p.eq_ignore_ascii_case("rport") {
                *p = format!("rport={}", peer.remote.port());
            } else if p.to_ascii_lowercase().starts_with("received=") {
                has_received = true;
            }
        }
        if !has_received {
            params.push(format!("received={ip}"));
        }
        *first = params.join(";");
        top.value = values.join(", ");
    }

    fn server_header(&self, resp: &mut Message) {
        if resp.header("Server").is_none() {
            resp.headers.push(Header {
                name: "Server".into(),
                value: self.user_agent.clone(),
            });
        }
    }
}

/// The server transaction key of a request (RFC 3261 §17.2.3, with the RFC 2543 fallback).
fn server_key(msg: &Message, method: &str) -> ServerKey {
    let via = msg
        .header_values("Via")
        .first()
        .map(|v| v.to_string())
        .unwrap_or_default();
    let sent_by = via
        .split(';')
        .next()
        .and_then(|p| p.split_whitespace().last())
        .unwrap_or_default()
        .to_string();
    let method = if method == "ACK" || method == "CANCEL" {
        "INVITE".to_string()
    } else {
        method.to_string()
    };
    let branch = match via_param(&via, "branch") {
        Some(b) if b.starts_with("z9hG4bK") => b,
        _ => {
            // RFC 2543 peers: Call-ID, From tag, CSeq number identify the transaction.
            let cseq = msg
                .header("CSeq")
                .and_then(|c| c.split_whitespace().next())
                .unwrap_or("");
            format!(
                "2543:{}:{}:{cseq}",
                msg.header("Call-ID").unwrap_or_default(),
                msg.header("From").and_then(tag_of).unwrap_or_default()
            )
        }
    };
    ServerKey {
        branch,
        sent_by,
        method,
    }
}

/// A parameter of a header value (`;name=value`), case-insensitive name.
pub fn via_param(v: &str, name: &str) -> Option<String> {
    v.split(';').skip(1).find_map(|p| {
        let (n, val) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.trim().to_string())
    })
}

/// The `tag` parameter of a From/To value.
pub fn tag_of(v: &str) -> Option<String> {
    let params = v.rsplit_once('>').map(|(_, p)| p).unwrap_or(v);
    via_param(params, "tag")
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From,
/// CSeq number, top Via; To from the response.
fn non_2xx_ack(req: &Message, resp: &Message) -> Vec<u8> {
    let Some(rl) = req.request() else {
        return Vec::new();
    };
    let mut headers = Vec::new();
    if let Some(v) = req.headers.iter().find(|h| h.name == "Via") {
        headers.push(v.clone());
    }
    for name in ["From", "Call-ID", "Route", "Max-Forwards"] {
        for h in req.headers.iter().filter(|h| h.name == name) {
            headers.push(h.clone());
        }
    }
    if let Some(to) = resp.header("To") {
        headers.push(Header {
            name: "To".into(),
            value: to.to_string(),
        });
    }
    let n = req
        .header("CSeq")
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("1");
    headers.push(Header {
        name: "CSeq".into(),
        value: format!("{n} ACK"),
    });
    Message {
        start: StartLine::Request(super::message::RequestLine {
            method: "ACK".into(),
            uri: rl.uri.clone(),
            version: "SIP/2.0".into(),
            well_spaced: true,
        }),
        headers,
        body: Vec::new(),
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::validate::GATEWAY;

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            remote: "192.0.2.7:5062".parse().expect("addr"),
            local: "192.0.2.1:5060".parse().expect("addr"),
        }
    }

    const INVITE: &str = "INVITE sip:demo@192.0.2.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKabc;rport\r\n\
        Max-Forwards: 70\r\nTo: <sip:demo@192.0.2.1>\r\n\
        From: <sip:alice@10.0.0.7>;tag=f1\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
        Contact: <sip:alice@10.0.0.7:5062>\r\nContent-Length: 0\r\n\r\n";

    fn drain(ep: &mut Endpoint) -> Vec<Output> {
        let mut v = Vec::new();
        loop {
            match ep.poll_output() {
                Output::Timeout(_) => return v,
                o => v.push(o),
            }
        }
    }

    #[test]
    fn invite_retransmission_and_rejection_with_rport() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(t0, GATEWAY, "gw.test", "jonction-test");
        ep.handle_message(t0, peer(), INVITE.as_bytes());
        let outs = drain(&mut ep);
        let Some(Output::Request { key, msg, .. }) = outs.into_iter().next() else {
            panic!("INVITE delivered");
        };
        let resp = validate::response_to(&msg, 486, "Busy Here", "t1");
        ep.respond(&key, resp);
        let outs = drain(&mut ep);
        let Some(Output::Transmit { data, peer: p }) = outs.first() else {
            panic!("486 sent");
        };
        assert_eq!(p.remote, peer().remote);
        let text = String::from_utf8_lossy(data);
        assert!(text.starts_with("SIP/2.0 486"), "{text}");
        assert!(
            text.contains("rport=5062") && text.contains("received=192.0.2.7"),
            "{text}"
        );
        // The retransmitted INVITE gets the 486 again, not a new transaction.
        ep.handle_message(t0, peer(), INVITE.as_bytes());
        let outs = drain(&mut ep);
        assert_eq!(outs.len(), 1);
        assert!(
            matches!(&outs[0], Output::Transmit { data, .. } if data.starts_with(b"SIP/2.0 486"))
        );
        // The ACK ends the retransmissions.
        let ack = INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("1 INVITE", "1 ACK");
        ep.handle_message(t0, peer(), ack.as_bytes());
        assert!(drain(&mut ep).is_empty());
    }

    #[test]
    fn cancel_gets_200_and_cancels_the_invite() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(t0, GATEWAY, "gw.test", "jonction-test");
        ep.handle_message(t0, peer(), INVITE.as_bytes());
        drain(&mut ep);
        let cancel = INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("1 INVITE", "1 CANCEL");
        ep.handle_message(t0, peer(), cancel.as_bytes());
        let outs = drain(&mut ep);
        assert!(
            matches!(&outs[0], Output::Transmit { data, .. } if data.starts_with(b"SIP/2.0 200"))
        );
        assert!(matches!(&outs[1], Output::Cancelled { key } if key.method == "INVITE"));
        // A CANCEL for nothing gets 481.
        let other = cancel.replace("z9hG4bKabc", "z9hG4bKzzz");
        ep.handle_message(t0, peer(), other.as_bytes());
        let outs = drain(&mut ep);
        assert!(
            matches!(&outs[0], Output::Transmit { data, .. } if data.starts_with(b"SIP/2.0 481"))
        );
    }

    #[test]
    fn malformed_request_is_answered_400_and_garbage_dropped() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(t0, GATEWAY, "gw.test", "jonction-test");
        let bad = INVITE.replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
        ep.handle_message(t0, peer(), bad.as_bytes());
        let outs = drain(&mut ep);
        assert!(
            matches!(&outs[0], Output::Transmit { data, .. } if data.starts_with(b"SIP/2.0 400"))
        );
        assert!(matches!(&outs[1], Output::Refused { status: 400, .. }));
        ep.handle_message(t0, peer(), b"\x00\x01garbage");
        assert!(matches!(
            drain(&mut ep).as_slice(),
            [Output::Refused { status: 0, .. }]
        ));
        assert_eq!(ep.transactions(), (0, 0));
    }

    #[test]
    fn client_bye_is_retransmitted_and_matched() {
        let t0 = Instant::now();
        let mut ep = Endpoint::new(t0, GATEWAY, "gw.test", "jonction-test");
        let bye = Message::parse_datagram(
            b"BYE sip:alice@10.0.0.7:5062 SIP/2.0\r\nMax-Forwards: 70\r\nTo: <sip:alice@10.0.0.7>;tag=f1\r\n\
              From: <sip:demo@192.0.2.1>;tag=t1\r\nCall-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("valid");
        let key = ep.send_request(peer(), bye);
        let outs = drain(&mut ep);
        let Some(Output::Transmit { data, .. }) = outs.first() else {
            panic!("BYE sent")
        };
        let sent = Message::parse_datagram(data).expect("valid BYE");
        let via = sent.header("Via").unwrap_or_default().to_string();
        ep.handle_timeout(t0 + super::super::transaction::T1);
        assert_eq!(drain(&mut ep).len(), 1, "retransmitted");
        let resp = format!(
            "SIP/2.0 200 OK\r\nVia: {via}\r\nTo: <sip:alice@10.0.0.7>;tag=f1\r\n\
             From: <sip:demo@192.0.2.1>;tag=t1\r\nCall-ID: c1\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
        );
        ep.handle_message(t0, peer(), resp.as_bytes());
        let outs = drain(&mut ep);
        assert!(matches!(&outs[0], Output::Response { key: k, .. } if *k == key));
    }
}
