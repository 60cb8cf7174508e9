//! The dialplan: ordered rules, read from `dialplans/*.toml`, that turn an incoming call (called
//! and calling party, source address, transport, trunk, protocol, headers) into a [`Routing`]:
//! a room, a PIN prompt, a rejection, a dial-out, or [`Outcome::NoMatch`].
//!
//! The engine is sans-IO and pure: [`Dialplan::route`] reads nothing but its argument. Files are
//! loaded all or nothing ([`Dialplan::load_dir`]); every error names `file:line:col`.
//! [`reload::DialplanHandle`] holds the running plan and swaps it when the files change.
//! The admin's guide (schema, evaluation order, examples) is `dialplans/README.md`.
//!
//! Evaluation: files in file-name order, rules in file order; disabled rules are skipped; the
//! first rule whose every condition holds wins; its transforms rewrite the called number in
//! order; its action is rendered from templates. No rule → [`Outcome::NoMatch`] (answer 404).
//!
//! ```
//! use jonction::dialplan::{reload::DialplanHandle, Dialplan, Outcome, RouteRequest};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # std::fs::write(
//! #     dir.path().join("10-rooms.toml"),
//! #     "[[rule]]\nname = \"rooms\"\nmatch.called = '(?P<room>[a-z0-9-]+)'\n\
//! #      action = { type = \"room\", room = \"{room}\" }\n",
//! # )?;
//! // At start-up (an error names file:line:col); then `reload::watch` keeps it current
//! // (create it before this load, so that an edit during the load is seen as a change).
//! let handle = DialplanHandle::new(Dialplan::load_dir(dir.path())?);
//! // For each new call, the plan in force (calls in progress keep the one they had).
//! let req = RouteRequest::sip("sip:demo@gw.example.org", "sip:alice@example.org");
//! match handle.current().route(&req).outcome {
//!     Outcome::Room(target) => assert_eq!(target.room, "demo"),
//!     Outcome::NoMatch | Outcome::Invalid(_) => unreachable!("answered 404"),
//!     other => unreachable!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

pub mod cli;
mod compile;
mod error;
pub mod reload;
mod route;
mod schema;
mod template;
mod transform;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use error::{Diagnostic, DialplanError};

/// A compiled dialplan: immutable, shared as `Arc<Dialplan>`.
#[derive(Debug, Default)]
pub struct Dialplan {
    rules: Vec<compile::Rule>,
    files: Vec<PathBuf>,
}

impl Dialplan {
    /// Loads the top-level `*.toml` files of `dir` (not sub-directories, not hidden files) in
    /// file-name order.
    pub fn load_dir(dir: &Path) -> Result<Dialplan, DialplanError> {
        let files = dir_files(dir).map_err(|d| DialplanError {
            diagnostics: vec![d],
        })?;
        Self::load_files(&files)
    }

    /// Loads `paths` in the order given; any error in any file refuses the whole set.
    pub fn load_files(paths: &[PathBuf]) -> Result<Dialplan, DialplanError> {
        compile::load(paths)
    }

    /// Number of rules (disabled ones included).
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Number of enabled rules.
    pub fn enabled_count(&self) -> usize {
        self.rules.iter().filter(|r| r.enabled).count()
    }

    /// The files the plan was loaded from, in evaluation order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Routes one call. Never panics; a bad rendered value gives [`Outcome::Invalid`].
    pub fn route(&self, req: &RouteRequest) -> Routing {
        route::route(&self.rules, req)
    }
}

/// The top-level `*.toml` files of `dir`, sorted by file name (hidden files skipped).
pub fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Diagnostic::file(dir, format!("cannot read the directory: {e}")))?;
    let mut files = Vec::new();
    for entry in rd {
        let entry =
            entry.map_err(|e| Diagnostic::file(dir, format!("cannot read the directory: {e}")))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".toml") || !path.is_file() {
            continue;
        }
        files.push(path);
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

// === Requests ===

/// Signalling protocol of the incoming call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SIP.
    Sip,
    /// H.323.
    H323,
}

/// Transport the call arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS.
    Tls,
    /// H.323 (H.225 over TCP).
    H323,
}

/// A party of the call: the user part (number or name) and host of its URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// User part (`demo` in `sip:demo@host`, `+33187654321` in `tel:+33187654321`).
    pub user: String,
    /// Host (empty when none: `tel:` URIs, bare numbers, H.323 aliases).
    pub host: String,
}

impl Party {
    /// Parses `sip:user@host:port;params`, `sips:`, `tel:`, `h323:`, `user@host`, or a bare
    /// number or alias, with or without `<...>` and a display name. The user part is
    /// percent-decoded (`%2B33...` is `+33...`); a `tel:` number loses its visual separators
    /// (`tel:+33-1-87-65-43-21` is `+33187654321`, RFC 3966).
    pub fn from_uri(s: &str) -> Party {
        let mut s = s.trim();
        if let (Some(a), Some(b)) = (s.find('<'), s.rfind('>')) {
            if a < b {
                s = &s[a + 1..b];
            }
        }
        let mut tel = false;
        for scheme in ["sips:", "sip:", "tel:", "h323:"] {
            if s.get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
            {
                s = &s[scheme.len()..];
                tel = scheme == "tel:";
                break;
            }
        }
        let s = s.split(['?']).next().unwrap_or_default();
        let (user, host) = match s.rsplit_once('@') {
            Some((u, h)) => (u, h),
            None => (s, ""),
        };
        let user = user.split(';').next().unwrap_or_default();
        let host = host.split(';').next().unwrap_or_default();
        let host = if host.starts_with('[') {
            host.split_inclusive(']').next().unwrap_or(host)
        } else {
            host.split(':').next().unwrap_or(host)
        };
        let mut user = crate::sip::dialog::percent_decode(user);
        if tel {
            user.retain(|c| !matches!(c, '-' | '.' | '(' | ')'));
        }
        Party {
            user,
            host: host.to_ascii_lowercase(),
        }
    }
}

/// What the engine needs to know about an incoming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    /// SIP or H.323.
    pub protocol: Protocol,
    /// The dialled party (Request-URI, or H.323 destination alias).
    pub called: Party,
    /// The caller (From, or H.323 source alias).
    pub calling: Party,
    /// The peer's address.
    pub source: Option<IpAddr>,
    /// The transport the call came on.
    pub transport: Transport,
    /// The trunk name given by the caller of the engine, if any.
    pub trunk: Option<String>,
    /// Signalling headers (name, value); names compare case-insensitively.
    pub headers: Vec<(String, String)>,
}

impl RouteRequest {
    /// A SIP/UDP call from `calling` to `called` (URIs or numbers), no source, trunk or header.
    pub fn sip(called: &str, calling: &str) -> Self {
        Self {
            protocol: Protocol::Sip,
            called: Party::from_uri(called),
            calling: Party::from_uri(calling),
            source: None,
            transport: Transport::Udp,
            trunk: None,
            headers: Vec::new(),
        }
    }
}

impl RouteRequest {
    /// An H.323 call from alias `calling` to alias `called` (numbers, `h323:` URIs or
    /// `alias@host`), no source, trunk or header.
    pub fn h323(called: &str, calling: &str) -> Self {
        Self {
            protocol: Protocol::H323,
            transport: Transport::H323,
            ..Self::sip(called, calling)
        }
    }
}

// === Results ===

/// Which rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleId {
    /// The file it is in.
    pub file: PathBuf,
    /// Its `name`.
    pub name: String,
    /// Its position in the whole plan (0-based).
    pub index: usize,
}

/// One transform step, for the dry-run trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// The step, as written (`strip_prefix "0"`).
    pub step: String,
    /// The called number before.
    pub before: String,
    /// The called number after.
    pub after: String,
}

/// The decision for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// The rule that matched (`None`: no rule did).
    pub rule: Option<RuleId>,
    /// Named captures of the match regexes.
    pub captures: BTreeMap<String, String>,
    /// Transform steps in order.
    pub steps: Vec<TraceStep>,
    /// What to do.
    pub outcome: Outcome,
    /// The rule's SDES-SRTP policy for the device leg (`srtp` in its action), overriding the
    /// configuration's; `None`: the configuration's applies.
    pub srtp: Option<crate::media::negotiated::SrtpPolicy>,
}

/// What to do with the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Join this room.
    Room(RoomTarget),
    /// Collect a PIN, look it up, then join the room found.
    Pin(PinAction),
    /// Refuse the call.
    Reject {
        /// SIP status (400–699).
        sip_code: u16,
        /// SIP reason phrase.
        reason: String,
        /// Q.850 cause for H.323 (1–127), if given.
        h323_cause: Option<u8>,
    },
    /// Reserved: call out to another party.
    DialOut(DialOutAction),
    /// No rule matched: answer 404, never an implicit room.
    NoMatch,
    /// A rule matched but its result is unusable (bad room name, unparsable number).
    Invalid(String),
}

impl Outcome {
    /// The refusal to answer, if the call is refused: `(SIP status, reason phrase)`. No match
    /// and an invalid result are `404 Not Found`; a reject is its own code and reason.
    pub fn refusal(&self) -> Option<(u16, &str)> {
        match self {
            Self::NoMatch | Self::Invalid(_) => Some((404, "Not Found")),
            Self::Reject {
                sip_code, reason, ..
            } => Some((*sip_code, reason.as_str())),
            Self::Room(_) | Self::Pin(_) | Self::DialOut(_) => None,
        }
    }
}

/// A room to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTarget {
    /// Room name (valid per [`crate::http::valid_room_name`]).
    pub room: String,
    /// Participant display name, if the rule sets one and it renders non-empty.
    pub participant_name: Option<String>,
    /// Participant attributes.
    pub attributes: BTreeMap<String, String>,
}

/// PIN collection settings (the lookup itself is done by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinAction {
    /// Prompt language.
    pub language: PromptLanguage,
    /// Fewest digits accepted.
    pub min_digits: u8,
    /// Most digits accepted.
    pub max_digits: u8,
    /// `#` ends the PIN before `max_digits` (and is not part of it).
    pub hash_terminates: bool,
    /// Time allowed to enter the PIN.
    pub timeout: Duration,
    /// Tries before hanging up.
    pub attempts: u8,
    /// Accept a PIN in an `X-PIN` header (skips the prompt).
    pub pin_header: bool,
    /// Accept a PIN in the dialled user part (`room*pin`, or `pin@domain`).
    pub pin_in_uri: bool,
    /// Where PINs are looked up.
    pub lookup: PinLookup,
}

impl PinAction {
    /// A PIN the call already carries, when the rule accepts it: an `X-PIN` header
    /// (`pin_header`), else the dialled user part `room*PIN` or `PIN` (`pin_in_uri`). Only
    /// digit strings of `min_digits` to `max_digits` count; `None`: prompt for it.
    pub fn signalled_pin(&self, req: &RouteRequest) -> Option<String> {
        let fits = |p: &str| {
            (self.min_digits as usize..=self.max_digits as usize).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
        };
        if self.pin_header {
            let header = req
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-pin"))
                .map(|(_, v)| v.trim());
            if let Some(p) = header.filter(|p| fits(p)) {
                return Some(p.to_string());
            }
        }
        if self.pin_in_uri {
            let user = req.called.user.as_str();
            let candidate = user.rsplit_once('*').map_or(user, |(_, p)| p);
            if fits(candidate) {
                return Some(candidate.to_string());
            }
        }
        None
    }
}

impl PinAction {
    /// The language to prompt in: `fr` or `en` as configured, or for `auto` the preferred of
    /// the two in the call's `Accept-Language` (highest `q`, then first listed; English when
    /// neither is there).
    pub fn prompt_language(&self, req: &RouteRequest) -> PromptLanguage {
        if self.language != PromptLanguage::Auto {
            return self.language;
        }
        let header: Vec<&str> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("accept-language"))
            .map(|(_, v)| v.as_str())
            .collect();
        match crate::prompt::Language::from_accept_language(&header.join(",")) {
            crate::prompt::Language::Fr => PromptLanguage::Fr,
            crate::prompt::Language::En => PromptLanguage::En,
        }
    }
}

/// Prompt language of the PIN collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptLanguage {
    /// French.
    Fr,
    /// English.
    En,
    /// From the caller's Accept-Language (English otherwise).
    Auto,
}

/// Where a PIN is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinLookup {
    /// A fixed table PIN → room.
    Static(Arc<BTreeMap<String, String>>),
    /// Visio (La Suite Meet) `roomkit` server-to-server API.
    Roomkit {
        /// Base URL of the API.
        url: String,
        /// Server-to-server token.
        token: Secret,
    },
    /// LiveKit SIP dispatch rules (Twirp SIP API).
    LivekitDispatch {
        /// LiveKit server URL.
        url: String,
        /// API key.
        api_key: String,
        /// API secret.
        api_secret: Secret,
    },
}

/// A secret written in the file or read from an environment variable when used.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The value itself.
    Value(String),
    /// The name of the environment variable holding it.
    Env(String),
}

impl Secret {
    /// The secret's value (`None`: the environment variable is not set).
    pub fn resolve(&self) -> Option<String> {
        match self {
            Self::Value(v) => Some(v.clone()),
            Self::Env(name) => std::env::var(name).ok(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value(<redacted>)"),
            Self::Env(n) => write!(f, "Env({n:?})"),
        }
    }
}

/// Reserved: a call out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOutAction {
    /// Target URI, rendered.
    pub target: String,
    /// Protocol of the outgoing leg.
    pub protocol: Protocol,
    /// Room the outgoing leg joins, if any.
    pub room: Option<String>,
}

// === Text forms ===

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sip" => Ok(Self::Sip),
            "h323" => Ok(Self::H323),
            _ => Err(format!("unknown protocol {s:?} (sip, h323)")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sip => "sip",
            Self::H323 => "h323",
        })
    }
}

impl FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            "tls" => Ok(Self::Tls),
            "h323" => Ok(Self::H323),
            _ => Err(format!("unknown transport {s:?} (udp, tcp, tls, h323)")),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::H323 => "h323",
        })
    }
}

impl fmt::Display for PromptLanguage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fr => "fr",
            Self::En => "en",
            Self::Auto => "auto",
        })
    }
}

#[cfg(test)]
mod tests;
