//! SIP messages (RFC 3261 §7): framing of a datagram or stream chunk into one message,
//! start line, headers (folding, compact names, multi-value splitting on demand) and body, and
//! their serialisation. Parsing is deliberately tolerant of what RFC 3261 §7.3.1 allows and
//! exact about framing (§18.3): the finer syntax checks live in [`super::validate`].

use std::fmt;

/// Largest message accepted (a UDP datagram is smaller anyway; TCP peers are cut here).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not even a start line.
    #[error("malformed start line")]
    StartLine,
    /// A header line without a colon, or an empty name.
    #[error("malformed header line {0}")]
    Header(usize),
    /// Content-Length is not a non-negative integer, or appears with conflicting values.
    #[error("bad Content-Length")]
    ContentLength,
    /// Content-Length says more bytes than the datagram holds.
    #[error("body shorter than Content-Length ({have} < {want})")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes announced.
        want: usize,
    },
    /// A stream chunk that does not hold a whole message yet.
    #[error("incomplete message")]
    Incomplete,
    /// Over [`MAX_MESSAGE`].
    #[error("message too large")]
    TooLarge,
    /// Not UTF-8 where text is required (start line, header names).
    #[error("invalid characters in message head")]
    Encoding,
}

/// A request's start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// Method token as sent (case-sensitive per RFC 3261 §7.1).
    pub method: String,
    /// Request-URI text exactly as between the two spaces.
    pub uri: String,
    /// Protocol version, e.g. `SIP/2.0`.
    pub version: String,
    /// Whether the line had exactly one SP between elements and none trailing.
    pub well_spaced: bool,
}

/// A response's start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine {
    /// Protocol version.
    pub version: String,
    /// Status code (validated to 100..=699 by the parser).
    pub code: u16,
    /// Reason phrase (may be empty).
    pub reason: String,
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// A request.
    Request(RequestLine),
    /// A response.
    Response(StatusLine),
}

/// One header field as received: canonical name and raw value (folding undone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Canonical long name (`Via`, `Call-ID`, ...), or the name as sent for unknown headers.
    pub name: String,
    /// Value with leading/trailing whitespace trimmed and line folding replaced by one SP.
    pub value: String,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: StartLine,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Body bytes (exactly Content-Length of them).
    pub body: Vec<u8>,
}

/// Compact forms (RFC 3261 §7.3.3 and later RFCs).
const COMPACT: &[(&str, &str)] = &[
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("x", "Session-Expires"),
    ("u", "Allow-Events"),
];

/// Canonical spellings of the headers we read, for case-insensitive matching.
const KNOWN: &[&str] = &[
    "Accept",
    "Accept-Language",
    "Allow",
    "Authorization",
    "Call-ID",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Expires",
    "From",
    "Max-Forwards",
    "Min-SE",
    "Proxy-Require",
    "Reason",
    "Record-Route",
    "Require",
    "Route",
    "Session-Expires",
    "Subject",
    "Supported",
    "To",
    "User-Agent",
    "Via",
    "Warning",
    "Event",
    "Refer-To",
    "Referred-By",
    "Allow-Events",
    "Server",
    "Retry-After",
];

/// The canonical name of a header as written on the wire.
pub fn canonical_name(name: &str) -> String {
    if name.len() == 1 {
        if let Some((_, long)) = COMPACT.iter().find(|(c, _)| c.eq_ignore_ascii_case(name)) {
            return (*long).to_string();
        }
    }
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| (*k).to_string())
        .unwrap_or_else(|| name.to_string())
}

/// Where a framed message ends inside a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed {
    /// Bytes of the message (head and body).
    pub len: usize,
}

impl Message {
    /// Parses one message from a UDP datagram: the body is Content-Length bytes (or the rest of
    /// the datagram when the header is absent, RFC 3261 §18.3); trailing bytes are ignored.
    pub fn parse_datagram(data: &[u8]) -> Result<Self, ParseError> {
        Self::parse(data, true).map(|(m, _)| m)
    }

    /// Parses only the head of a datagram, ignoring body framing: enough to answer a message
    /// whose body is unframeable (bad or conflicting Content-Length) with an error response.
    pub fn parse_head(data: &[u8]) -> Option<Self> {
        let end = find_head_end(data).map(|(e, _)| e).unwrap_or(data.len());
        let head = std::str::from_utf8(&data[..end.min(MAX_MESSAGE)]).ok()?;
        let mut lines = unfold(head).into_iter();
        let start = parse_start_line(&lines.next()?).ok()?;
        let headers = lines
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some(Header {
                    name: canonical_name(n.trim_end()),
                    value: v.trim().to_string(),
                })
            })
            .collect();
        Some(Self {
            start,
            headers,
            body: Vec::new(),
        })
    }

    /// Parses the first message of a stream buffer (TCP/TLS): needs Content-Length, returns
    /// [`ParseError::Incomplete`] until the whole message is there.
    pub fn parse_stream(data: &[u8]) -> Result<(Self, Framed), ParseError> {
        Self::parse(data, false)
    }

    fn parse(data: &[u8], datagram: bool) -> Result<(Self, Framed), ParseError> {
        // Keep-alive CRLFs before a message are skipped (RFC 5626 §3.5.1 uses them on streams).
        let skip = data
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        let data = &data[skip..];
        if data.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        let (head_end, body_start) = match find_head_end(data) {
            Some(x) => x,
            // A datagram whose headers run to its end (no empty line) is still a message.
            None if datagram => (data.len(), data.len()),
            None => return Err(ParseError::Incomplete),
        };
        let head = std::str::from_utf8(&data[..head_end]).map_err(|_| ParseError::Encoding)?;
        let mut lines = unfold(head).into_iter();
        let first = lines.next().ok_or(ParseError::StartLine)?;
        let start = parse_start_line(&first)?;
        let mut headers = Vec::new();
        for (i, line) in lines.enumerate() {
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').ok_or(ParseError::Header(i + 2))?;
            let name = name.trim_end();
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(ParseError::Header(i + 2));
            }
            headers.push(Header {
                name: canonical_name(name),
                value: value.trim().to_string(),
            });
        }
        let lengths: Vec<&str> = headers
            .iter()
            .filter(|h| h.name == "Content-Length")
            .map(|h| h.value.as_str())
            .collect();
        let rest = &data[body_start..];
        let body_len = match lengths.as_slice() {
            [] if datagram => rest.len(),
            [] => 0,
            [one] => one
                .parse::<usize>()
                .map_err(|_| ParseError::ContentLength)?,
            many => {
                // The same value repeated is harmless; differing values are unframeable.
                let first = many[0];
                if many.iter().any(|v| *v != first) {
                    return Err(ParseError::ContentLength);
                }
                first
                    .parse::<usize>()
                    .map_err(|_| ParseError::ContentLength)?
            }
        };
        if rest.len() < body_len {
            if datagram {
                return Err(ParseError::Truncated {
                    have: rest.len(),
                    want: body_len,
                });
            }
            return Err(ParseError::Incomplete);
        }
        let body = rest[..body_len].to_vec();
        Ok((
            Self {
                start,
                headers,
                body,
            },
            Framed {
                len: skip + body_start + body_len,
            },
        ))
    }

    /// The request line, if a request.
    pub fn request(&self) -> Option<&RequestLine> {
        match &self.start {
            StartLine::Request(r) => Some(r),
            StartLine::Response(_) => None,
        }
    }

    /// The status line, if a response.
    pub fn response(&self) -> Option<&StatusLine> {
        match &self.start {
            StartLine::Response(s) => Some(s),
            StartLine::Request(_) => None,
        }
    }

    /// The first value of a header (by canonical name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every header line with that name.
    pub fn header_lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated value of a multi-value header, over all its lines
    /// (commas inside quotes or `<...>` do not split).
    pub fn header_values<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.header_lines(name).flat_map(split_commas).collect()
    }

    /// Serialises for the wire (Content-Length recomputed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(self.start.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in self.headers.iter().filter(|h| h.name != "Content-Length") {
            out.extend_from_slice(h.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

impl fmt::Display for StartLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(r) => write!(f, "{} {} {}", r.method, r.uri, r.version),
            Self::Response(s) => write!(f, "{} {} {}", s.version, s.code, s.reason),
        }
    }
}

/// Token characters (RFC 3261 §25.1).
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Splits at top-level commas (not inside quotes or angle brackets).
pub fn split_commas(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out
}

/// (end of head, start of body): the head ends at the first empty line (CRLF CRLF, or bare LF
/// line ends from lenient peers).
fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            match data.get(i + 1) {
                Some(b'\n') => return Some((i, i + 2)),
                Some(b'\r') if data.get(i + 2) == Some(&b'\n') => return Some((i, i + 3)),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Splits the head into logical lines, joining folded continuation lines (§7.3.1).
fn unfold(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t']) && !lines.is_empty() {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(line.trim_start());
            }
        } else {
            lines.push(line.to_string());
        }
    }
    lines
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (ver, rest) = rest.split_once(' ').ok_or(ParseError::StartLine)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StartLine);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StartLine);
        }
        return Ok(StartLine::Response(StatusLine {
            version: format!("SIP/{ver}"),
            code,
            reason: reason.to_string(),
        }));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version; tolerate extra whitespace here and
    // report it, so that validation decides (RFC 4475 §3.1.2.9 and §3.1.2.10).
    let parts: Vec<&str> = line.split_whitespace().collect();
    let well_spaced = line.split(' ').count() == 3 && !line.contains('\t');
    match parts.as_slice() {
        [method, uri, version] if method.bytes().all(is_token_char) => {
            Ok(StartLine::Request(RequestLine {
                method: method.to_string(),
                uri: uri.to_string(),
                version: version.to_string(),
                well_spaced,
            }))
        }
        // Whitespace inside the Request-URI (RFC 4475 §3.1.2.8): keep it so it is rejected.
        [method, uri @ .., version] if uri.len() > 1 && method.bytes().all(is_token_char) => {
            Ok(StartLine::Request(RequestLine {
                method: method.to_string(),
                uri: uri.join(" "),
                version: version.to_string(),
                well_spaced: false,
            }))
        }
        _ => Err(ParseError::StartLine),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:demo@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n\
        v: SIP/2.0/TCP 192.0.2.2;branch=z9hG4bKx\r\n\
        Max-Forwards: 70\r\n\
        To: <sip:demo@example.com>\r\n\
        From: \"A, B\" <sip:a@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710\r\n\
        CSeq: 314159 INVITE\r\n\
        Subject: folded\r\n  continuation\r\n\
        Content-Length: 4\r\n\r\nv=0\nEXTRA";

    #[test]
    fn frames_by_content_length_and_unfolds() {
        let m = Message::parse_datagram(INVITE.as_bytes()).expect("valid");
        assert_eq!(m.request().map(|r| r.method.as_str()), Some("INVITE"));
        assert_eq!(m.body, b"v=0\n");
        assert_eq!(m.header("subject"), Some("folded continuation"));
        assert_eq!(m.header_values("Via").len(), 2);
        assert_eq!(
            m.header("From"),
            Some("\"A, B\" <sip:a@example.com>;tag=1928301774")
        );
        assert_eq!(split_commas(m.header("From").unwrap_or_default()).len(), 1);
        let again = Message::parse_datagram(&m.to_bytes()).expect("round trip");
        assert_eq!(again, m);
    }

    #[test]
    fn stream_framing() {
        let bytes = INVITE.as_bytes();
        let cut = bytes.len() - 8;
        assert_eq!(
            Message::parse_stream(&bytes[..cut]).unwrap_err(),
            ParseError::Incomplete
        );
        let mut two = Vec::from(&bytes[..bytes.len() - 5]);
        two.extend_from_slice(b"\r\n\r\n");
        let (_, framed) = Message::parse_stream(&two).expect("whole");
        assert_eq!(framed.len, bytes.len() - 5);
    }

    #[test]
    fn bad_framing() {
        let short = INVITE.replace("Content-Length: 4", "Content-Length: 400");
        assert!(matches!(
            Message::parse_datagram(short.as_bytes()),
            Err(ParseError::Truncated { .. })
        ));
        let neg = INVITE.replace("Content-Length: 4", "Content-Length: -4");
        assert_eq!(
            Message::parse_datagram(neg.as_bytes()).unwrap_err(),
            ParseError::ContentLength
        );
        let dup = INVITE.replace("Content-Length: 4", "Content-Length: 4\r\nl: 3");
        assert_eq!(
            Message::parse_datagram(dup.as_bytes()).unwrap_err(),
            ParseError::ContentLength
        );
        assert!(Message::parse_datagram(b"\xff\xfe garbage").is_err());
        assert!(Message::parse_datagram(b"").is_err());
        assert!(Message::parse_datagram(b"SIP/2.0 4294967301 Big\r\n\r\n").is_err());
        assert!(Message::parse_datagram(b"INVITE sip:a@b SIP/2.0\r\nNoColonHere\r\n\r\n").is_err());
    }

    #[test]
    fn responses() {
        let m = Message::parse_datagram(b"SIP/2.0 100 \r\nVia: x\r\n\r\n").expect("valid");
        let s = m.response().expect("response");
        assert_eq!((s.code, s.reason.as_str()), (100, ""));
    }
}
