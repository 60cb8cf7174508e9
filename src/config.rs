//! The gateway's configuration: one TOML file, overridden by `JONCTION_*` environment variables.
//!
//! Every key has a safe default, so `jonction run` with no file serves on loopback. Unknown keys
//! and bad values are errors that name the key and where it came from (the file or the
//! environment variable), because a typo in a telecom config must never be silently ignored.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Prefix of the environment variables that override file keys (`JONCTION_HTTP__LISTEN`).
pub const ENV_PREFIX: &str = "JONCTION";
/// Separator between nested keys in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// The development API key, accepted only while every listener is on loopback.
pub const DEV_API_KEY: &str = "devkey";
/// The development API secret, accepted only while every listener is on loopback.
pub const DEV_API_SECRET: &str = "secret";

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Logging.
    pub log: LogConfig,
    /// The HTTP/WebSocket listener (room signalling, web page, health).
    pub http: HttpConfig,
    /// The web page's static files.
    pub web: WebConfig,
    /// LiveKit credentials, and the URL of an external LiveKit (empty: the embedded server).
    pub livekit: LiveKitConfig,
    /// The embedded room server's media settings.
    pub rooms: RoomsConfig,
    /// SIP signalling and media.
    pub sip: SipConfig,
    /// H.323 call signalling (H.225.0 and H.245 on TCP); media shares `[sip]`'s RTP port
    /// range, timeouts and call records.
    pub h323: H323Config,
    /// Call routing rules (`dialplans/*.toml`).
    pub dialplan: DialplanConfig,
    /// Capacity limits on new calls (SIP and H.323 together).
    pub calls: CallsConfig,
}

/// `[calls]`: beyond a limit, a new call gets SIP 503 with Retry-After (H.323: ReleaseComplete,
/// Q.850 cause 34 or 42) and the calls in progress are left alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallsConfig {
    /// Calls in progress at most (0: no limit).
    pub max_concurrent: usize,
    /// New calls admitted per second at most, a burst of as many allowed (0: no limit).
    pub max_per_second: u32,
    /// New calls are refused while the gateway's tasks get a CPU later than this (the process
    /// or the machine is saturated: media would arrive late for every call). `0s`: never.
    #[serde(with = "humantime_serde")]
    pub max_scheduling_delay: Duration,
    /// New calls are refused while the embedded room server is busier than this share of its
    /// core (it is one task; past ~0.9 its rooms lose packets). 0 or 1: never.
    pub room_server_busy_limit: f64,
}

impl Default for CallsConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 0,
            max_per_second: 0,
            max_scheduling_delay: Duration::from_millis(5),
            room_server_busy_limit: 0.9,
        }
    }
}

/// `[dialplan]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialplanConfig {
    /// Directory whose top-level `*.toml` files are the dialplan, read in file-name order.
    pub dir: PathBuf,
    /// How often the directory is polled for changes (hot reload). `0s`: no hot reload.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for DialplanConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(crate::dialplan::cli::DEFAULT_DIR),
            reload_interval: Duration::from_secs(2),
        }
    }
}

/// `[sip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Run the SIP side at all.
    pub enabled: bool,
    /// Address of the UDP and TCP listeners.
    pub listen: SocketAddr,
    /// Address advertised in SDP and Contact (default: the listen address, or the first local
    /// non-loopback address when listening on a wildcard).
    pub advertised_ip: Option<IpAddr>,
    /// Allow a loopback or private advertised address (test beds, private networks).
    /// Default: allowed only when the listener itself is loopback.
    pub allow_private_address: Option<bool>,
    /// First RTP port (even).
    pub rtp_port_min: u16,
    /// Last RTP port.
    pub rtp_port_max: u16,
    /// Audio codecs in order of preference (`opus`, `G722`, `PCMA`, `PCMU`).
    pub codecs: Vec<String>,
    /// SDES-SRTP on the device side: `off`, `optional` (SRTP when the caller offers a usable
    /// key) or `required` (plain RTP offers get 488).
    pub srtp: crate::media::negotiated::SrtpPolicy,
    /// The most video we receive from a device, in kbit/s (our `b=AS`); 0 answers video
    /// m-lines with port 0 (audio-only calls).
    pub video_max_kbps: u32,
    /// Session refresh interval offered (RFC 4028 Session-Expires).
    #[serde(with = "humantime_serde")]
    pub session_expires: Duration,
    /// Calls longer than this are ended.
    #[serde(with = "humantime_serde")]
    pub max_call_duration: Duration,
    /// No RTP from the caller for this long ends the call.
    #[serde(with = "humantime_serde")]
    pub media_timeout: Duration,
    /// Where call records are appended (one JSON line per call).
    pub call_records: PathBuf,
    /// SIP over TLS (RFC 3261 §26.2, usually port 5061): off unless this address is set.
    pub tls_listen: Option<SocketAddr>,
    /// PEM file of the TLS certificate chain (server certificate first).
    pub tls_certificate: Option<PathBuf>,
    /// PEM file of the TLS private key.
    pub tls_private_key: Option<PathBuf>,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            advertised_ip: None,
            allow_private_address: None,
            rtp_port_min: 10000,
            rtp_port_max: 20000,
            codecs: vec!["opus".into(), "G722".into(), "PCMA".into(), "PCMU".into()],
            srtp: crate::media::negotiated::SrtpPolicy::default(),
            video_max_kbps: crate::media::negotiated::DEFAULT_VIDEO_KBPS,
            session_expires: Duration::from_secs(1800),
            max_call_duration: Duration::from_secs(4 * 3600),
            media_timeout: Duration::from_secs(30),
            call_records: PathBuf::from("calls.jsonl"),
            tls_listen: None,
            tls_certificate: None,
            tls_private_key: None,
        }
    }
}

impl SipConfig {
    /// Whether private and loopback addresses may be advertised.
    pub fn private_allowed(&self) -> bool {
        self.allow_private_address
            .unwrap_or_else(|| self.listen.ip().is_loopback())
    }
}

/// `[h323]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct H323Config {
    /// Run the H.323 side at all.
    pub enabled: bool,
    /// Address of the H.225.0 call-signalling listener (TCP; 1720 is the standard port).
    pub listen: SocketAddr,
    /// Accept fast start (Fast Connect) proposals; false refuses them (H.245 then opens the
    /// channels).
    pub fast_start: bool,
    /// Tunnel H.245 in the call-signalling connection when the caller offers it; false gives
    /// the caller an H.245 address to connect to instead.
    pub h245_tunnelling: bool,
    /// Address of the RAS socket (UDP; 1719 is the standard port), for the gatekeeper mode
    /// and our own registration.
    pub ras_listen: SocketAddr,
    /// Gatekeeper mode: room systems register to jonction (RRQ/RCF) and ask it to admit their
    /// calls to it (ARQ/ACF).
    pub gatekeeper_mode: bool,
    /// A gatekeeper to register to (`host:port`); empty: none.
    pub gatekeeper: String,
    /// Our H.323-ID alias when registering.
    pub h323_id: String,
    /// Our E.164 aliases when registering (in an environment variable, a single number with
    /// a leading 0 loses it: give it in the file, or list two).
    #[serde(deserialize_with = "digit_strings")]
    pub e164: Vec<String>,
    /// The registration lifetime asked of the gatekeeper (kept alive with lightweight RRQs).
    #[serde(with = "humantime_serde")]
    pub time_to_live: Duration,
    /// H.264 video (H.241 capability, one channel each way, remuxed to the room): the most we
    /// receive, in kbit/s; 0 turns video off.
    pub video_max_kbps: u32,
}

impl Default for H323Config {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1720)),
            fast_start: true,
            h245_tunnelling: true,
            ras_listen: SocketAddr::from(([127, 0, 0, 1], 1719)),
            gatekeeper_mode: false,
            gatekeeper: String::new(),
            h323_id: "jonction".into(),
            e164: Vec::new(),
            time_to_live: Duration::from_secs(300),
            video_max_kbps: crate::media::negotiated::DEFAULT_VIDEO_KBPS,
        }
    }
}

/// A list of digit strings, also taken as one value: an environment variable with a single
/// number (`JONCTION_H323__E164=7300`) reaches us as an integer, not a list.
fn digit_strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Text(String),
        Number(u64),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<Item>),
        One(Item),
    }
    let text = |i: Item| match i {
        Item::Text(s) => s,
        Item::Number(n) => n.to_string(),
    };
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(v) => v.into_iter().map(text).collect(),
        OneOrMany::One(i) => vec![text(i)],
    })
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `info,jonction::rooms=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for journald/Loki).
    Json,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP + WebSocket listener.
    pub listen: SocketAddr,
    /// Development mode (the `/api/dev/token` endpoint). `auto`: on when `listen` is loopback.
    pub dev_mode: DevMode,
}

/// Whether development conveniences are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DevMode {
    /// `true` or `false`.
    Set(bool),
    /// `"auto"`: on when the listener is on loopback.
    Auto(AutoWord),
}

/// The literal word `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoWord {
    /// `auto`
    Auto,
}

/// `[web]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Directory holding the bundled page (`index.html`, `app.js`, ...).
    pub root: PathBuf,
}

/// `[livekit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveKitConfig {
    /// `ws(s)://` URL of an external LiveKit server. Empty: run the embedded room server.
    pub url: String,
    /// API key (the JWT issuer).
    pub api_key: String,
    /// API secret (HS256 key of the JWTs).
    pub api_secret: String,
    /// Publish G.711 callers' audio as Opus even when the room accepts PCMU/PCMA (costs one
    /// decode + Opus encode per 20 ms frame). Off: G.711 is published unchanged when the room's
    /// `enabled_publish_codecs` allow it, and transcoded to Opus only when they do not.
    pub publish_opus: bool,
}

/// `[rooms]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// UDP port of the one media socket (per local address) that serves every peer connection.
    pub udp_port: u16,
    /// Receive buffer of each media socket, in bytes (0: the system's default). Every peer
    /// connection's packets queue there while the room server is busy; the kernel caps it at
    /// `net.core.rmem_max`.
    pub udp_receive_buffer: usize,
    /// Addresses to bind and advertise as ICE host candidates. Empty: every local address.
    pub bind_ips: Vec<IpAddr>,
    /// Public address to advertise instead of the local ones (1:1 NAT).
    pub public_ip: Option<IpAddr>,
    /// How long an empty room is kept before it closes.
    #[serde(with = "humantime_serde")]
    pub empty_timeout: Duration,
    /// Interval at which clients ping, announced in the JoinResponse.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A participant silent for this long is dropped.
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// Most participants in one room (0: no limit).
    pub max_participants: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7880)),
            dev_mode: DevMode::Auto(AutoWord::Auto),
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("web/dist"),
        }
    }
}

impl Default for LiveKitConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            api_key: DEV_API_KEY.into(),
            api_secret: DEV_API_SECRET.into(),
            publish_opus: false,
        }
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            udp_port: 7882,
            udp_receive_buffer: 4 << 20,
            bind_ips: Vec::new(),
            public_ip: None,
            empty_timeout: Duration::from_secs(20),
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(15),
            max_participants: 0,
        }
    }
}

impl HttpConfig {
    /// Whether the development token endpoint is served.
    pub fn dev_mode(&self) -> bool {
        match self.dev_mode {
            DevMode::Set(on) => on,
            DevMode::Auto(_) => self.listen.ip().is_loopback(),
        }
    }
}

impl LiveKitConfig {
    /// Whether the embedded room server runs (no external LiveKit configured).
    pub fn embedded(&self) -> bool {
        self.url.trim().is_empty()
    }
}

/// A configuration error, naming the key and its origin.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key nobody reads.
    #[error("unknown key `{key}` ({origin})")]
    UnknownKey {
        /// Dotted key path.
        key: String,
        /// Where it was set.
        origin: Origin,
    },
    /// A key whose value does not fit.
    #[error("bad value for `{key}` ({origin}): {message}")]
    BadValue {
        /// Dotted key path.
        key: String,
        /// Where it was set.
        origin: Origin,
        /// What is wrong.
        message: String,
    },
    /// Values that are each valid but unsafe together.
    #[error("{0}")]
    Unsafe(String),
}

/// Where a key was set.
#[derive(Debug, Clone)]
pub enum Origin {
    /// In this file.
    File(PathBuf),
    /// In this environment variable.
    Env(String),
    /// Built-in default.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "in {}", p.display()),
            Self::Env(v) => write!(f, "from environment variable {v}"),
            Self::Default => f.write_str("default"),
        }
    }
}

impl Config {
    /// Loads `path` (if any) and the `JONCTION_*` environment, then checks the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => Some(read_file(p)?),
            None => None,
        };
        let mut builder = config::Config::builder();
        if let Some((p, text)) = &file {
            builder = builder.add_source(config::File::from_str(text, config::FileFormat::Toml));
            let _ = p;
        }
        let env_map: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}_")))
            .cloned()
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator(ENV_SEPARATOR)
                .list_separator(",")
                .with_list_parse_key("rooms.bind_ips")
                .with_list_parse_key("sip.codecs")
                .with_list_parse_key("h323.e164")
                .try_parsing(true)
                .source(Some(env_map.clone())),
        );
        let origin_of = |key: &str| -> Origin {
            let var = format!(
                "{ENV_PREFIX}_{}",
                key.to_uppercase().replace('.', ENV_SEPARATOR)
            );
            if env_map.contains_key(&var) {
                return Origin::Env(var);
            }
            match &file {
                Some((p, _)) => Origin::File(p.clone()),
                None => Origin::Default,
            }
        };
        let merged = builder.build().map_err(|e| ConfigError::BadValue {
            key: String::from("?"),
            origin: file
                .as_ref()
                .map(|(p, _)| Origin::File(p.clone()))
                .unwrap_or(Origin::Default),
            message: e.to_string(),
        })?;

        let mut unknown: Vec<String> = Vec::new();
        let mut track = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
        let de = serde_ignored::Deserializer::new(merged, &mut track);
        let parsed: Result<Config, _> = serde_path_to_error::deserialize(de);
        if let Some(key) = unknown.into_iter().next() {
            return Err(ConfigError::UnknownKey {
                origin: origin_of(&key),
                key,
            });
        }
        let cfg = parsed.map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().to_string();
            // serde reports unknown fields through deny_unknown_fields as plain errors.
            if let Some(rest) = message.strip_prefix("unknown field `") {
                let field = rest.split('`').next().unwrap_or_default();
                let full = if key == "." || key.is_empty() {
                    field.to_string()
                } else if key == field || key.ends_with(&format!(".{field}")) {
                    key.clone()
                } else {
                    format!("{key}.{field}")
                };
                return ConfigError::UnknownKey {
                    origin: origin_of(&full),
                    key: full,
                };
            }
            ConfigError::BadValue {
                origin: origin_of(&key),
                key,
                message,
            }
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Refuses combinations that are unsafe.
    fn check(&self) -> Result<(), ConfigError> {
        let lk = &self.livekit;
        let dev_creds = lk.api_key == DEV_API_KEY || lk.api_secret == DEV_API_SECRET;
        // Development credentials are refused on a non-loopback listener unless development
        // mode was switched on explicitly (a test bed, never production).
        let explicit_dev = self.http.dev_mode == DevMode::Set(true);
        if dev_creds && !self.http.listen.ip().is_loopback() && lk.embedded() && !explicit_dev {
            return Err(ConfigError::Unsafe(format!(
                "http.listen is {} (not loopback) but livekit.api_key/api_secret are the \
                 development defaults: set your own (JONCTION_LIVEKIT__API_SECRET or the file), \
                 listen on 127.0.0.1, or set http.dev_mode = true on a test bed",
                self.http.listen
            )));
        }
        if lk.api_secret.len() < 6 {
            return Err(ConfigError::BadValue {
                key: "livekit.api_secret".into(),
                origin: Origin::Default,
                message: "too short (at least 6 characters; use 32+ random ones)".into(),
            });
        }
        let schemes = ["ws://", "wss://", "http://", "https://"];
        if !(lk.embedded() || schemes.iter().any(|s| lk.url.starts_with(s))) {
            return Err(ConfigError::BadValue {
                key: "livekit.url".into(),
                origin: Origin::Default,
                message: "must start with ws://, wss://, http:// or https://".into(),
            });
        }
        if self.sip.rtp_port_min == 0 || self.sip.rtp_port_max <= self.sip.rtp_port_min {
            return Err(ConfigError::BadValue {
                key: "sip.rtp_port_max".into(),
                origin: Origin::Default,
                message: "must be above sip.rtp_port_min (and the range must not start at 0)"
                    .into(),
            });
        }
        if let Err(e) = crate::sip::sdp::MediaPolicy::from_names(&self.sip.codecs) {
            return Err(ConfigError::BadValue {
                key: "sip.codecs".into(),
                origin: Origin::Default,
                message: format!("unknown codec {}", e.0),
            });
        }
        if !self.h323.gatekeeper.is_empty() && self.h323.gatekeeper.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::BadValue {
                key: "h323.gatekeeper".into(),
                origin: Origin::Default,
                message: "must be an address:port such as 192.0.2.1:1719".into(),
            });
        }
        if let Some(bad) =
            self.h323.e164.iter().find(|n| {
                n.is_empty() || !n.chars().all(|c| c.is_ascii_digit() || "#*,".contains(c))
            })
        {
            return Err(ConfigError::BadValue {
                key: "h323.e164".into(),
                origin: Origin::Default,
                message: format!("{bad:?} is not an E.164 alias (digits, #, *, ,)"),
            });
        }
        let busy = self.calls.room_server_busy_limit;
        if !(0.0..=1.0).contains(&busy) {
            return Err(ConfigError::BadValue {
                key: "calls.room_server_busy_limit".into(),
                origin: Origin::Default,
                message: "must be between 0 and 1 (a share of one core; 0 or 1: no limit)".into(),
            });
        }
        if self.sip.tls_listen.is_some()
            && (self.sip.tls_certificate.is_none() || self.sip.tls_private_key.is_none())
        {
            return Err(ConfigError::BadValue {
                key: "sip.tls_listen".into(),
                origin: Origin::Default,
                message: "needs sip.tls_certificate and sip.tls_private_key (PEM files)".into(),
            });
        }
        if self.rooms.ping_timeout <= self.rooms.ping_interval {
            return Err(ConfigError::BadValue {
                key: "rooms.ping_timeout".into(),
                origin: Origin::Default,
                message: "must be longer than rooms.ping_interval".into(),
            });
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<(PathBuf, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Syntax errors are reported by the toml parser itself, with line and column.
    if let Err(e) = text.parse::<toml::Table>() {
        return Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        });
    }
    Ok((path.to_path_buf(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::new(text)
    }

    /// A tiny temp-file helper, to avoid a dependency for four tests.
    mod tempfile_path {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};

        pub struct TempFile(pub PathBuf);
        impl TempFile {
            pub fn new(text: &str) -> Self {
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "jonction-cfg-{}-{}.toml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&p, text).expect("temp dir is writable");
                Self(p)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn h323_aliases_and_gatekeeper_from_the_environment() {
        let env = |k: &str, v: &str| (k.to_string(), v.to_string());
        let c = Config::load_with_env(
            None,
            &[
                env("JONCTION_H323__E164", "7300,0187654321"),
                env("JONCTION_H323__GATEKEEPER", "10.0.0.1:1719"),
            ],
        )
        .expect("loads");
        assert_eq!(c.h323.e164, vec!["7300", "0187654321"]);
        let c = Config::load_with_env(None, &[env("JONCTION_H323__E164", "7300")]).expect("one");
        assert_eq!(c.h323.e164, vec!["7300"]);
        assert!(Config::load_with_env(None, &[env("JONCTION_H323__GATEKEEPER", "gk")]).is_err());
        assert!(Config::load_with_env(None, &[env("JONCTION_H323__E164", "12a")]).is_err());
    }

    #[test]
    fn defaults_are_loopback_and_valid() {
        let c = Config::load_with_env(None, &[]).expect("defaults load");
        assert!(c.http.listen.ip().is_loopback());
        assert!(c.http.dev_mode());
        assert!(c.livekit.embedded());
        assert_eq!(c.rooms.udp_port, 7882);
        assert_eq!(c.dialplan.dir, PathBuf::from("dialplans"));
        assert_eq!(c.dialplan.reload_interval, Duration::from_secs(2));
    }

    #[test]
    fn sip_tls_needs_its_certificate_and_key() {
        let c = Config::load_with_env(None, &[]).expect("defaults");
        assert_eq!(c.sip.tls_listen, None, "TLS is off by default");
        let f = write("[sip]\ntls_listen = \"127.0.0.1:5061\"\n");
        let e = Config::load_with_env(Some(&f.0), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sip.tls_listen") && e.contains("tls_private_key"),
            "{e}"
        );
        let f = write(
            "[sip]\ntls_listen = \"127.0.0.1:5061\"\ntls_certificate = \"/etc/jonction/tls/sip.pem\"\ntls_private_key = \"/etc/jonction/tls/sip.key\"\n",
        );
        let c = Config::load_with_env(Some(&f.0), &[]).expect("complete");
        assert_eq!(
            c.sip.tls_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 5061)))
        );
    }

    #[test]
    fn dialplan_keys() {
        let f = write("[dialplan]\ndir = \"/etc/jonction/dialplans\"\nreload_interval = \"0s\"\n");
        let c = Config::load_with_env(Some(&f.0), &[]).expect("valid");
        assert_eq!(c.dialplan.dir, PathBuf::from("/etc/jonction/dialplans"));
        assert_eq!(c.dialplan.reload_interval, Duration::ZERO);
        let env = vec![("JONCTION_DIALPLAN__DIR".to_string(), "/srv/dp".to_string())];
        let c = Config::load_with_env(Some(&f.0), &env).expect("valid");
        assert_eq!(c.dialplan.dir, PathBuf::from("/srv/dp"));
        let f = write("[dialplan]\ndri = \"x\"\n");
        let e = Config::load_with_env(Some(&f.0), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("dialplan.dri"), "{e}");
    }

    #[test]
    fn call_limits() {
        let c = Config::load_with_env(None, &[]).expect("defaults");
        assert_eq!((c.calls.max_concurrent, c.calls.max_per_second), (0, 0));
        assert_eq!(c.calls.room_server_busy_limit, 0.9);
        assert_eq!(c.calls.max_scheduling_delay, Duration::from_millis(5));
        let f = write("[calls]\nmax_concurrent = 300\nmax_per_second = 20\n");
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let c = Config::load_with_env(
            Some(&f.0),
            &env("JONCTION_CALLS__ROOM_SERVER_BUSY_LIMIT", "0.75"),
        )
        .expect("valid");
        assert_eq!((c.calls.max_concurrent, c.calls.max_per_second), (300, 20));
        assert_eq!(c.calls.room_server_busy_limit, 0.75);
        let e = Config::load_with_env(None, &env("JONCTION_CALLS__ROOM_SERVER_BUSY_LIMIT", "90"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("calls.room_server_busy_limit"), "{e}");
        let e = Config::load_with_env(None, &env("JONCTION_CALLS__MAX_CONCURRENT", "-1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("calls.max_concurrent"), "{e}");
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let f = write("[http]\nlisten = \"127.0.0.1:9000\"\nlisen = 1\n");
        let e = Config::load_with_env(Some(&f.0), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("http.lisen"), "{e}");
        assert!(e.contains(&f.0.display().to_string()), "{e}");
    }

    #[test]
    fn unknown_env_key_names_variable() {
        let env = vec![("JONCTION_ROOMS__UDP_PROT".to_string(), "1".to_string())];
        let e = Config::load_with_env(None, &env).unwrap_err().to_string();
        assert!(e.contains("rooms.udp_prot"), "{e}");
        assert!(e.contains("JONCTION_ROOMS__UDP_PROT"), "{e}");
    }

    #[test]
    fn bad_value_names_key_and_origin() {
        let f = write("[rooms]\nudp_port = \"many\"\n");
        let e = Config::load_with_env(Some(&f.0), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("rooms.udp_port"), "{e}");
        assert!(e.contains(&f.0.display().to_string()), "{e}");

        let env = vec![("JONCTION_HTTP__LISTEN".to_string(), "nowhere".to_string())];
        let e = Config::load_with_env(None, &env).unwrap_err().to_string();
        assert!(
            e.contains("http.listen") && e.contains("JONCTION_HTTP__LISTEN"),
            "{e}"
        );
    }

    #[test]
    fn env_overrides_file() {
        let f = write("[rooms]\nudp_port = 9000\nempty_timeout = \"1m\"\nudp_receive_buffer = 0\n");
        let env = vec![("JONCTION_ROOMS__UDP_PORT".to_string(), "9100".to_string())];
        let c = Config::load_with_env(Some(&f.0), &env).expect("valid");
        assert_eq!(c.rooms.udp_port, 9100);
        assert_eq!(c.rooms.empty_timeout, Duration::from_secs(60));
        assert_eq!(c.rooms.udp_receive_buffer, 0);
        assert_eq!(RoomsConfig::default().udp_receive_buffer, 4 << 20);
    }

    #[test]
    fn syntax_error_has_position() {
        let f = write("[http\nlisten = 1\n");
        let e = Config::load_with_env(Some(&f.0), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn public_listener_needs_real_secret() {
        let env = vec![(
            "JONCTION_HTTP__LISTEN".to_string(),
            "0.0.0.0:7880".to_string(),
        )];
        assert!(matches!(
            Config::load_with_env(None, &env),
            Err(ConfigError::Unsafe(_))
        ));
        let env = vec![
            (
                "JONCTION_HTTP__LISTEN".to_string(),
                "0.0.0.0:7880".to_string(),
            ),
            (
                "JONCTION_LIVEKIT__API_KEY".to_string(),
                "APIprod".to_string(),
            ),
            (
                "JONCTION_LIVEKIT__API_SECRET".to_string(),
                "a-long-production-secret".to_string(),
            ),
        ];
        let c = Config::load_with_env(None, &env).expect("valid");
        assert!(!c.http.dev_mode());
    }
}
