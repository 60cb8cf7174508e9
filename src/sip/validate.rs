//! What a UAS answers to a request before any dialog logic: the checks of RFC 3261 §8.2
//! (method, URI scheme, extensions, content) and the syntax rules that RFC 4475's torture
//! messages exercise, each mapped to the status code the RFC prescribes.

use super::message::{is_token_char, split_commas, Message, ParseError, StartLine};

/// What the stack supports, for 405/420/415/406 decisions.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Methods we handle (listed in `Allow`).
    pub allowed: &'static [&'static str],
    /// Option tags we understand in `Require`.
    pub supported: &'static [&'static str],
    /// Body types we accept in requests.
    pub accepted_types: &'static [&'static str],
}

/// The gateway's policy: a UAS for calls, not a registrar, presence server or IM endpoint.
pub const GATEWAY: Policy = Policy {
    allowed: &[
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "PRACK",
    ],
    supported: &["timer", "100rel", "replaces", "path", "outbound"],
    accepted_types: &[
        "application/sdp",
        "application/dtmf-relay",
        "application/dtmf",
        "application/media_control+xml",
        "multipart/mixed",
    ],
};

/// Methods defined by RFCs that we do not serve: 405, not 501.
const KNOWN_METHODS: &[&str] = &[
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// A request refused before processing, with the response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// What exactly was wrong (logged, and sent in a Warning header).
    pub detail: String,
    /// Extra headers (`Allow`, `Unsupported`, `Accept`).
    pub headers: Vec<(&'static str, String)>,
}

/// What to do with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A request to process.
    Request(Box<Message>),
    /// A response to match against client transactions.
    Response(Box<Message>),
    /// A request to refuse; the message head is kept to build the response when possible.
    Reject(Box<Option<Message>>, Reject),
    /// Drop silently (unusable response, or bytes that are not SIP).
    Discard(String),
}

fn reject(status: u16, reason: &'static str, detail: impl Into<String>) -> Reject {
    Reject {
        status,
        reason,
        detail: detail.into(),
        headers: Vec::new(),
    }
}

fn bad(detail: impl Into<String>) -> Reject {
    reject(400, "Bad Request", detail)
}

/// Parses and checks one UDP datagram.
pub fn check_datagram(data: &[u8], policy: &Policy) -> Verdict {
    let is_response = data.starts_with(b"SIP/");
    match Message::parse_datagram(data) {
        Ok(m) => match m.start {
            StartLine::Response(_) => match check_response(&m) {
                Ok(()) => Verdict::Response(Box::new(m)),
                Err(why) => Verdict::Discard(why),
            },
            StartLine::Request(_) => match check_request(&m, policy) {
                Ok(()) => Verdict::Request(Box::new(m)),
                Err(r) => Verdict::Reject(Box::new(Some(m)), r),
            },
        },
        Err(e) if is_response => Verdict::Discard(format!("malformed response: {e}")),
        Err(e @ (ParseError::ContentLength | ParseError::Truncated { .. })) => {
            Verdict::Reject(Box::new(Message::parse_head(data)), bad(e.to_string()))
        }
        Err(e) => match Message::parse_head(data) {
            Some(head) if head.request().is_some() => {
                Verdict::Reject(Box::new(Some(head)), bad(e.to_string()))
            }
            _ => Verdict::Discard(format!("not a SIP message: {e}")),
        },
    }
}

/// Checks a response's mandatory scalar fields (RFC 4475 §3.1.2.5: overlarge values → drop).
pub fn check_response(m: &Message) -> Result<(), String> {
    let cseq = m.header("CSeq").ok_or("no CSeq")?;
    parse_cseq(cseq).map_err(|r| r.detail)?;
    if m.header("Via").is_none() {
        return Err("no Via".into());
    }
    if let Some(ra) = m.header("Retry-After") {
        let secs = ra.split([';', '(', ' ']).next().unwrap_or_default();
        if secs.parse::<u32>().is_err() {
            return Err("overlarge Retry-After".into());
        }
    }
    for w in m.header_values("Warning") {
        let code = w.split(' ').next().unwrap_or_default();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err("malformed Warning code".into());
        }
    }
    Ok(())
}

/// Checks a request; `Err` carries the response to send.
pub fn check_request(m: &Message, policy: &Policy) -> Result<(), Reject> {
    let Some(rl) = m.request() else {
        return Err(bad("not a request"));
    };
    if rl.version != "SIP/2.0" {
        let mut r = reject(
            505,
            "Version Not Supported",
            format!("version {}", rl.version),
        );
        r.headers
            .push(("Warning", "399 jonction \"only SIP/2.0\"".into()));
        return Err(r);
    }
    if !rl.well_spaced {
        return Err(bad(
            "request line must be Method SP Request-URI SP SIP-Version",
        ));
    }
    // Mandatory headers (RFC 3261 §8.1.1) and single-valued ones (§7.3.1).
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if m.header(h).is_none() {
            return Err(bad(format!("missing {h}")));
        }
    }
    for h in [
        "Call-ID",
        "From",
        "To",
        "CSeq",
        "Max-Forwards",
        "Content-Type",
    ] {
        if m.header_values(h).len() > 1 {
            return Err(bad(format!("more than one {h}")));
        }
    }
    let (_, cseq_method) = parse_cseq(m.header("CSeq").unwrap_or_default())?;
    if let Some(mf) = m.header("Max-Forwards") {
        if mf.is_empty() || !mf.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("Max-Forwards is not a number"));
        }
    }
    for via in m.header_values("Via") {
        check_via(via)?;
    }
    for h in ["From", "To"] {
        let v = m.header(h).unwrap_or_default();
        check_name_addr(v).map_err(|e| bad(format!("{h}: {e}")))?;
    }
    for c in m.header_values("Contact") {
        if c == "*" && rl.method == "REGISTER" {
            continue;
        }
        check_name_addr(c).map_err(|e| bad(format!("Contact: {e}")))?;
    }
    check_request_uri(&rl.uri)?;

    // Method: unknown → 501, known but not ours → 405 (RFC 3261 §8.2.1).
    let method = rl.method.as_str();
    if !policy.allowed.contains(&method) {
        let allow = policy.allowed.join(", ");
        let (status, reason) = if KNOWN_METHODS.contains(&method) {
            (405, "Method Not Allowed")
        } else {
            (501, "Not Implemented")
        };
        let mut r = reject(status, reason, format!("method {method}"));
        r.headers.push(("Allow", allow));
        return Err(r);
    }
    if cseq_method != method {
        return Err(bad(format!(
            "CSeq method {cseq_method} differs from {method}"
        )));
    }
    // URI scheme (§8.2.2.1): only sip, sips and tel reach a room.
    let scheme = rl
        .uri
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
        return Err(reject(
            416,
            "Unsupported URI Scheme",
            format!("scheme {scheme}"),
        ));
    }
    // Extensions (§8.2.2.3).
    let unsupported: Vec<&str> = m
        .header_values("Require")
        .into_iter()
        .filter(|t| !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect();
    if !unsupported.is_empty() && method != "CANCEL" && method != "ACK" {
        let mut r = reject(
            420,
            "Bad Extension",
            format!("Require: {}", unsupported.join(", ")),
        );
        r.headers.push(("Unsupported", unsupported.join(", ")));
        return Err(r);
    }
    // Content (§8.2.3), for requests whose bodies we read.
    if !m.body.is_empty() && method != "ACK" {
        let ct = m
            .header("Content-Type")
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if !policy.accepted_types.contains(&ct.as_str()) {
            let mut r = reject(415, "Unsupported Media Type", format!("Content-Type {ct}"));
            r.headers.push(("Accept", policy.accepted_types.join(", ")));
            return Err(r);
        }
    }
    if method == "INVITE" {
        let accepts: Vec<String> = m
            .header_values("Accept")
            .into_iter()
            .map(|a| {
                a.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .collect();
        if !accepts.is_empty()
            && !accepts
                .iter()
                .any(|a| a == "application/sdp" || a == "*/*" || a == "application/*")
        {
            let mut r = reject(406, "Not Acceptable", "Accept excludes application/sdp");
            r.headers.push((
                "Warning",
                "399 jonction \"answers are application/sdp\"".into(),
            ));
            return Err(r);
        }
    }
    Ok(())
}

/// `CSeq: 1*DIGIT LWS Method` with the number below 2^31 (RFC 3261 §8.1.1.5).
fn parse_cseq(v: &str) -> Result<(u32, &str), Reject> {
    let mut it = v.split_whitespace();
    let (Some(n), Some(method), None) = (it.next(), it.next(), it.next()) else {
        return Err(bad("malformed CSeq"));
    };
    let n: u32 = n.parse().map_err(|_| bad("CSeq number out of range"))?;
    if n >= 1 << 31 || !method.bytes().all(is_token_char) {
        return Err(bad("CSeq number out of range"));
    }
    Ok((n, method))
}

/// `Via: SIP/2.0/TRANSPORT sent-by *( ;param )` with a usable branch.
fn check_via(v: &str) -> Result<(), Reject> {
    let mut parts = v.split(';');
    // SLASH = SWS "/" SWS: whitespace may surround the slashes of the sent-protocol.
    let first: String = {
        let raw = parts.next().unwrap_or_default().trim();
        let mut out = String::with_capacity(raw.len());
        for piece in raw.split('/') {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(piece.trim());
        }
        out
    };
    let (proto, sent_by) = first
        .split_once(char::is_whitespace)
        .ok_or_else(|| bad("malformed Via"))?;
    let proto: Vec<&str> = proto.split('/').map(str::trim).collect();
    if proto.len() != 3
        || !proto
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(is_token_char))
    {
        return Err(bad("malformed Via protocol"));
    }
    let sent_by = sent_by.trim();
    if sent_by.is_empty() || sent_by.contains(char::is_whitespace) {
        return Err(bad("malformed Via sent-by"));
    }
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            return Err(bad("empty Via parameter"));
        }
        let (name, value) = p
            .split_once('=')
            .map(|(n, v)| (n.trim(), Some(v.trim())))
            .unwrap_or((p, None));
        if !name.bytes().all(is_token_char) {
            return Err(bad("malformed Via parameter"));
        }
        if name.eq_ignore_ascii_case("branch") {
            let b = value.unwrap_or_default();
            if b.eq_ignore_ascii_case("z9hG4bK") || b.is_empty() {
                return Err(bad("Via branch has nothing after the magic cookie"));
            }
        }
    }
    Ok(())
}

/// `name-addr / addr-spec` followed by parameters (RFC 3261 §20.10, §25.1).
pub fn check_name_addr(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v.is_empty() {
        return Err("empty".into());
    }
    let (uri, params) = if let Some(lt) = find_unquoted(v, '<') {
        let display = v[..lt].trim();
        check_display_name(display)?;
        let rest = &v[lt + 1..];
        let gt = rest.find('>').ok_or("unterminated <")?;
        let uri = &rest[..gt];
        if uri.starts_with(char::is_whitespace) || uri.ends_with(char::is_whitespace) {
            return Err("spaces inside <>".into());
        }
        (uri, &rest[gt + 1..])
    } else {
        if v.contains('"') {
            return Err("quoted display name without <addr-spec>".into());
        }
        // addr-spec: its own ';' start header parameters; '?' or ',' need <> (§20).
        let raw = v.split_once(';').map(|(u, _)| u).unwrap_or(v);
        let uri = raw.trim_end();
        if uri.contains('?') || uri.contains(',') {
            return Err("URI with headers or commas must be enclosed in <>".into());
        }
        (uri, &v[raw.len()..])
    };
    if uri.is_empty() || uri.contains(char::is_whitespace) || !uri.contains(':') {
        return Err(format!("malformed URI {uri:?}"));
    }
    let params = params.trim();
    if !params.is_empty() {
        let rest = params
            .strip_prefix(';')
            .ok_or("garbage after the address")?;
        for p in rest.split(';') {
            let p = p.trim();
            let name = p.split('=').next().unwrap_or_default().trim();
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err("empty or malformed parameter".into());
            }
        }
    }
    Ok(())
}

fn check_display_name(d: &str) -> Result<(), String> {
    if d.is_empty() {
        return Ok(());
    }
    if let Some(inner) = d.strip_prefix('"') {
        // quoted-string: ends at an unescaped quote that closes the whole display name.
        let mut escaped = false;
        for (i, c) in inner.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                return if inner[i + 1..].trim().is_empty() {
                    Ok(())
                } else {
                    Err("text after the quoted display name".into())
                };
            }
        }
        return Err("unterminated quoted display name".into());
    }
    if d.split_whitespace().all(|w| w.bytes().all(is_token_char)) {
        Ok(())
    } else {
        Err(format!("display name {d:?} must be quoted"))
    }
}

fn find_unquoted(s: &str, needle: char) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == needle && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The Request-URI: an absoluteURI, not enclosed in `<>`, no whitespace, and for SIP URIs no
/// escaped headers (RFC 4475 §3.1.2.7, §3.1.2.8, §3.1.2.11).
fn check_request_uri(uri: &str) -> Result<(), Reject> {
    if uri.starts_with('<') || uri.contains(char::is_whitespace) {
        return Err(bad("malformed Request-URI"));
    }
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or_else(|| bad("Request-URI has no scheme"))?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok || rest.is_empty() {
        return Err(bad("malformed Request-URI scheme"));
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        // Userinfo may hold '?' and ';' (RFC 4475 §3.1.1.2): headers start after the host.
        let hostport = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
        if hostport.contains('?') {
            return Err(bad("headers in the Request-URI"));
        }
        let host = hostport.split(';').next().unwrap_or_default();
        if host.is_empty() {
            return Err(bad("Request-URI has no host"));
        }
    }
    Ok(())
}

/// Builds the response to a request (RFC 3261 §8.2.6): Via, From, To (with a tag added on a
/// non-100 response when missing), Call-ID and CSeq copied.
pub fn response_to(req: &Message, status: u16, reason: &str, to_tag: &str) -> Message {
    use super::message::{Header, StatusLine};
    let mut headers = Vec::new();
    for h in &req.headers {
        match h.name.as_str() {
            "Via" | "From" | "Call-ID" | "CSeq" => headers.push(h.clone()),
            "To" => {
                let mut value = h.value.clone();
                if status > 100 && !value.to_ascii_lowercase().contains(";tag=") {
                    value.push_str(";tag=");
                    value.push_str(to_tag);
                }
                headers.push(Header {
                    name: "To".into(),
                    value,
                });
            }
            _ => {}
        }
    }
    Message {
        start: StartLine::Response(StatusLine {
            version: "SIP/2.0".into(),
            code: status,
            reason: reason.into(),
        }),
        headers,
        body: Vec::new(),
    }
}

/// The response for a rejected request, with the reject's extra headers and a Warning.
pub fn rejection(req: &Message, r: &Reject, to_tag: &str, host: &str) -> Message {
    use super::message::Header;
    let mut resp = response_to(req, r.status, r.reason, to_tag);
    for (name, value) in &r.headers {
        resp.headers.push(Header {
            name: (*name).to_string(),
            value: value.clone(),
        });
    }
    if r.status == 400 {
        let detail = r.detail.replace('"', "'");
        resp.headers.push(Header {
            name: "Warning".into(),
            value: format!("399 {host} \"{detail}\""),
        });
    }
    resp
}

/// Splits a header value list (re-exported for callers that read Contact/Route lists).
pub fn values(v: &str) -> Vec<&str> {
    split_commas(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        for ok in [
            "<sip:a@b>;tag=1",
            "sip:a@b;tag=2",
            "\"A \\\"Q\\\" B\" <sip:a@b>",
            "caller<sip:caller@example.com>;tag=323",
            "Joe Bloggs <sip:a@b>",
            "<http://example.com>",
        ] {
            assert_eq!(check_name_addr(ok), Ok(()), "{ok}");
        }
        for ko in [
            "\"unterminated <sip:a@b>",
            "Bell, Alexander <sip:a@b>",
            "< sip:a@b >",
            "sip:a@b?Route=%3Csip:x%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "",
        ] {
            assert!(check_name_addr(ko).is_err(), "{ko}");
        }
    }

    #[test]
    fn via_forms() {
        assert!(check_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport").is_ok());
        assert!(check_via("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        assert!(check_via("SIP/2.0/UDP host;branch=z9hG4bK").is_err());
        assert!(check_via("garbage").is_err());
    }
}
