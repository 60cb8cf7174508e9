//! The UAS side of an INVITE dialog (RFC 3261 §12, §13.3, §14, §15): identifiers, route set,
//! remote target and CSeq bookkeeping; builds our responses (with Contact and Record-Route) and
//! our in-dialog requests (BYE, re-INVITE, UPDATE, INFO); retransmits our 2xx until the ACK
//! arrives (§13.3.1.4). Sans-IO: messages and time in, messages out.

use std::time::{Duration, Instant};

use super::endpoint::tag_of;
use super::message::{Header, Message, RequestLine, StartLine};
use super::transaction::{T1, T2};
use super::validate::response_to;

/// Dialog state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// INVITE received; no final response yet.
    Early,
    /// 2xx sent; waiting for the ACK.
    Accepted,
    /// ACK received.
    Confirmed,
    /// BYE sent or received, or the INVITE failed.
    Terminated,
}

/// A UAS INVITE dialog.
#[derive(Debug)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag (To tag of our responses).
    pub local_tag: String,
    /// The caller's From tag.
    pub remote_tag: String,
    /// The caller's From (name-addr with tag).
    pub remote_uri: String,
    /// The To of the INVITE (our identity), without tag.
    pub local_uri: String,
    /// Where in-dialog requests go: the caller's Contact URI.
    pub remote_target: String,
    /// Record-Route values, in the order our requests use them (reversed, §12.1.1).
    pub route_set: Vec<String>,
    /// Our Contact URI.
    pub contact: String,
    /// Our next CSeq number.
    pub local_cseq: u32,
    /// The highest CSeq the caller used.
    pub remote_cseq: u32,
    /// State.
    pub state: DialogState,
    invite: Message,
    record_route: Vec<String>,
    ok: Option<(Vec<u8>, Instant, Duration, Instant)>,
}

/// What the 2xx retransmission timer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OkTimer {
    /// Nothing to do now.
    Idle,
    /// Send the 2xx again.
    Resend(Vec<u8>),
    /// No ACK within 64·T1: end the call.
    NoAck,
}

/// What a received in-dialog request means for the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDialog {
    /// Process it (CSeq is new).
    Fresh,
    /// Lower or equal CSeq than one already processed: answer 500 (§12.2.2).
    OutOfOrder,
    /// Not this dialog.
    Foreign,
}

impl Dialog {
    /// A dialog for a received INVITE. `contact` is our Contact URI (`sip:room@ip:port`).
    pub fn new(invite: &Message, local_tag: &str, contact: &str) -> Option<Self> {
        let call_id = invite.header("Call-ID")?.to_string();
        let from = invite.header("From")?.to_string();
        let remote_tag = tag_of(&from).unwrap_or_default();
        let to = invite.header("To")?.to_string();
        let remote_target = invite
            .header("Contact")
            .map(uri_of)
            .unwrap_or_else(|| uri_of(&from));
        let record_route: Vec<String> = invite
            .header_values("Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut route_set = record_route.clone();
        route_set.reverse();
        let remote_cseq = invite
            .header("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Some(Self {
            call_id,
            local_tag: local_tag.to_string(),
            remote_tag,
            remote_uri: from,
            local_uri: to,
            remote_target,
            route_set,
            contact: contact.to_string(),
            local_cseq: 1,
            remote_cseq,
            state: DialogState::Early,
            invite: invite.clone(),
            record_route,
            ok: None,
        })
    }

    /// The INVITE that created the dialog.
    pub fn invite(&self) -> &Message {
        &self.invite
    }

    /// A response to the INVITE (or to `req`, an in-dialog request) with our tag, Contact and
    /// the Record-Route copied (§12.1.1), and an optional SDP body.
    pub fn response(&self, req: &Message, status: u16, reason: &str, sdp: Option<&str>) -> Message {
        let mut resp = response_to(req, status, reason, &self.local_tag);
        if (101..300).contains(&status) {
            for rr in &self.record_route {
                resp.headers.push(Header {
                    name: "Record-Route".into(),
                    value: rr.clone(),
                });
            }
            resp.headers.push(Header {
                name: "Contact".into(),
                value: format!("<{}>", self.contact),
            });
        }
        if let Some(body) = sdp {
            resp.headers.push(Header {
                name: "Content-Type".into(),
                value: "application/sdp".into(),
            });
            resp.body = body.as_bytes().to_vec();
        }
        resp
    }

    /// Records that our 2xx was sent: it is retransmitted (T1 doubling to T2) until the ACK,
    /// for 64·T1 at most (§13.3.1.4).
    pub fn sent_2xx(&mut self, now: Instant, bytes: Vec<u8>) {
        self.state = DialogState::Accepted;
        self.ok = Some((bytes, now + T1, T1, now + 64 * T1));
    }

    /// When the 2xx retransmission needs time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ok.as_ref().map(|(_, next, _, end)| (*next).min(*end))
    }

    /// Time passed: whether to retransmit the 2xx, or give up (no ACK: the caller must send
    /// BYE, §13.3.1.4).
    pub fn handle_timeout(&mut self, now: Instant) -> OkTimer {
        let Some((bytes, next, interval, end)) = self.ok.as_mut() else {
            return OkTimer::Idle;
        };
        if now >= *end {
            self.ok = None;
            return OkTimer::NoAck;
        }
        if now < *next {
            return OkTimer::Idle;
        }
        *interval = (*interval * 2).min(T2);
        *next = now + *interval;
        OkTimer::Resend(bytes.clone())
    }

    /// The ACK for our 2xx arrived.
    pub fn handle_ack(&mut self) {
        self.ok = None;
        if self.state == DialogState::Accepted {
            self.state = DialogState::Confirmed;
        }
    }

    /// Whether a request belongs to this dialog, and whether its CSeq is acceptable.
    pub fn check_request(&mut self, req: &Message) -> InDialog {
        let same = req.header("Call-ID") == Some(self.call_id.as_str())
            && req.header("From").and_then(tag_of).as_deref() == Some(self.remote_tag.as_str())
            && req.header("To").and_then(tag_of).as_deref() == Some(self.local_tag.as_str());
        if !same {
            return InDialog::Foreign;
        }
        let is_ack = req.request().is_some_and(|r| r.method == "ACK");
        let n: u32 = req
            .header("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if is_ack {
            return InDialog::Fresh;
        }
        if n <= self.remote_cseq {
            return InDialog::OutOfOrder;
        }
        self.remote_cseq = n;
        // A target refresh (re-INVITE, UPDATE) may move the remote target (§12.2.2).
        if let (Some(rl), Some(c)) = (req.request(), req.header("Contact")) {
            if rl.method == "INVITE" || rl.method == "UPDATE" {
                self.remote_target = uri_of(c);
            }
        }
        InDialog::Fresh
    }

    /// An in-dialog request from us (BYE, INVITE, UPDATE, INFO), without Via (the endpoint
    /// adds it). Extra headers are appended; the body gets `content_type`.
    pub fn request(
        &mut self,
        method: &str,
        extra: Vec<Header>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Message {
        self.local_cseq += 1;
        let mut headers = vec![Header {
            name: "Max-Forwards".into(),
            value: "70".into(),
        }];
        for r in &self.route_set {
            headers.push(Header {
                name: "Route".into(),
                value: r.clone(),
            });
        }
        let local = strip_tag(&self.local_uri);
        headers.push(Header {
            name: "From".into(),
            value: format!("{local};tag={}", self.local_tag),
        });
        headers.push(Header {
            name: "To".into(),
            value: self.remote_uri.clone(),
        });
        headers.push(Header {
            name: "Call-ID".into(),
            value: self.call_id.clone(),
        });
        headers.push(Header {
            name: "CSeq".into(),
            value: format!("{} {method}", self.local_cseq),
        });
        headers.push(Header {
            name: "Contact".into(),
            value: format!("<{}>", self.contact),
        });
        headers.extend(extra);
        let mut body_bytes = Vec::new();
        if let Some((ct, b)) = body {
            headers.push(Header {
                name: "Content-Type".into(),
                value: ct.to_string(),
            });
            body_bytes = b;
        }
        if method == "BYE" {
            self.state = DialogState::Terminated;
        }
        Message {
            start: StartLine::Request(RequestLine {
                method: method.to_string(),
                uri: self.remote_target.clone(),
                version: "SIP/2.0".into(),
                well_spaced: true,
            }),
            headers,
            body: body_bytes,
        }
    }
}

/// The URI inside a name-addr or addr-spec (`"A" <sip:a@b>;tag=1` → `sip:a@b`).
pub fn uri_of(v: &str) -> String {
    if let (Some(l), Some(r)) = (v.find('<'), v.rfind('>')) {
        if l < r {
            return v[l + 1..r].trim().to_string();
        }
    }
    v.split(';').next().unwrap_or(v).trim().to_string()
}

fn strip_tag(v: &str) -> String {
    let lower = v.to_ascii_lowercase();
    match lower.find(";tag=") {
        Some(i) => v[..i].to_string(),
        None => v.to_string(),
    }
}

/// The user part of a SIP or tel URI (`sip:demo@host` → `demo`, `tel:+331` → `+331`).
pub fn user_of(uri: &str) -> Option<String> {
    let rest = uri.split_once(':')?.1;
    let user = match rest.split_once('@') {
        Some((u, _)) => u,
        None if uri.to_ascii_lowercase().starts_with("tel:") => rest,
        None => return None,
    };
    let user = user.split(';').next().unwrap_or(user);
    Some(percent_decode(user))
}

/// Decodes `%HH` escapes of a URI part (others are kept as written); invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(Ok(v)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:demo@192.0.2.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKabc\r\n\
        Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
        Max-Forwards: 70\r\nTo: <sip:demo@192.0.2.1>\r\n\
        From: \"Alice\" <sip:alice@10.0.0.7>;tag=f1\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\n\
        Contact: <sip:alice@10.0.0.7:5062;transport=udp>\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn uas_dialog_builds_responses_and_requests() {
        let inv = Message::parse_datagram(INVITE.as_bytes()).expect("valid");
        let mut d = Dialog::new(&inv, "t1", "sip:demo@192.0.2.1:5060").expect("dialog");
        assert_eq!(d.remote_target, "sip:alice@10.0.0.7:5062;transport=udp");
        let ok = d.response(&inv, 200, "OK", Some("v=0\r\n"));
        assert_eq!(ok.header_values("Record-Route").len(), 2);
        assert!(ok.header("To").is_some_and(|t| t.ends_with(";tag=t1")));
        assert_eq!(ok.header("Content-Type"), Some("application/sdp"));
        let bye = d.request("BYE", Vec::new(), None);
        let routes = bye.header_values("Route");
        assert_eq!(
            routes,
            vec!["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );
        assert_eq!(
            bye.header("To"),
            Some("\"Alice\" <sip:alice@10.0.0.7>;tag=f1")
        );
        assert_eq!(bye.header("From"), Some("<sip:demo@192.0.2.1>;tag=t1"));
        assert_eq!(
            bye.request().map(|r| r.uri.as_str()),
            Some("sip:alice@10.0.0.7:5062;transport=udp")
        );
        assert_eq!(d.state, DialogState::Terminated);
    }

    #[test]
    fn in_dialog_cseq_and_2xx_retransmission() {
        let inv = Message::parse_datagram(INVITE.as_bytes()).expect("valid");
        let mut d = Dialog::new(&inv, "t1", "sip:demo@192.0.2.1").expect("dialog");
        let t0 = Instant::now();
        d.sent_2xx(t0, b"200".to_vec());
        assert_eq!(d.handle_timeout(t0 + T1), OkTimer::Resend(b"200".to_vec()));
        assert_eq!(d.handle_timeout(t0 + T1), OkTimer::Idle);
        d.handle_ack();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.poll_timeout(), None);
        let bye = INVITE
            .replace("INVITE sip", "BYE sip")
            .replace("7 INVITE", "8 BYE")
            .replace(
                "To: <sip:demo@192.0.2.1>",
                "To: <sip:demo@192.0.2.1>;tag=t1",
            );
        let bye = Message::parse_datagram(bye.as_bytes()).expect("valid");
        assert_eq!(d.check_request(&bye), InDialog::Fresh);
        assert_eq!(d.check_request(&bye), InDialog::OutOfOrder);
        let other = Message::parse_datagram(INVITE.as_bytes()).expect("valid");
        assert_eq!(d.check_request(&other), InDialog::Foreign);
    }

    #[test]
    fn no_ack_gives_up_after_64_t1() {
        let inv = Message::parse_datagram(INVITE.as_bytes()).expect("valid");
        let mut d = Dialog::new(&inv, "t1", "sip:demo@192.0.2.1").expect("dialog");
        let t0 = Instant::now();
        d.sent_2xx(t0, b"200".to_vec());
        assert_eq!(d.handle_timeout(t0 + 64 * T1), OkTimer::NoAck);
    }

    #[test]
    fn users() {
        assert_eq!(
            user_of("sip:demo@example.com;transport=udp").as_deref(),
            Some("demo")
        );
        assert_eq!(
            user_of("sip:room%2D1@example.com").as_deref(),
            Some("room-1")
        );
        assert_eq!(user_of("tel:+33123456789").as_deref(), Some("+33123456789"));
        assert_eq!(user_of("sip:example.com"), None);
        assert_eq!(uri_of("\"A\" <sip:a@b>;tag=1"), "sip:a@b");
        assert_eq!(uri_of("sip:a@b;tag=1"), "sip:a@b");
    }
}
