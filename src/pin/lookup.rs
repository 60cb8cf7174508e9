//! PIN → room lookups: a static table, Visio's roomkit API, or LiveKit's SIP dispatch rules.
//!
//! - [`PinDirectory::LiveKitDispatch`]: Twirp `POST {url}/twirp/livekit.SIP/ListSIPDispatchRule`,
//!   body `{}`, `Authorization: Bearer <JWT with the sip.admin grant>`; the answer is scanned for
//!   a `dispatchRuleDirect` rule whose `pin` matches and whose `trunkIds` / `inboundNumbers` /
//!   `numbers` filters (when non-empty) admit the call (the rule naming the most of them wins over
//!   catch-all rules, as in LiveKit); the rule's participant `attributes` and `metadata` come
//!   along. Parsed as `serde_json::Value` rather than with the pbjson types of
//!   `livekit-protocol`: those reject enum values they do not know, so one rule using a feature
//!   newer than the crate would make the whole list unreadable. Field names are accepted in
//!   both protobuf JSON spellings (`roomName` and `room_name`). The server pages through all its
//!   rules itself when the request has no `page`, so one request sees them all.
//! - [`PinDirectory::Roomkit`]: Visio's server-to-server `POST {url}/api/v1.0/roomkit/join/` with
//!   `{"pin_code": "<PIN>"}` and `Authorization: Bearer <token>` (livekit.md §2.6). It answers
//!   `200 {"status": "success"}` after ensuring the room's direct dispatch rule, `404` for an
//!   unknown PIN and `400` for a PIN of the wrong length; it does not return the room name,
//!   so the room is then read from the dispatch rule it ensured (LiveKit Twirp, as above).
//!
//! Every lookup is bounded by a timeout ([`LOOKUP_TIMEOUT`]); "no such PIN" is `Ok(None)`,
//! anything that prevents an answer is a [`LookupError`]. The two must stay apart: a caller
//! whose PIN is unknown hears "wrong PIN" and tries again (an attempt, counted by the
//! brute-force guard), while a caller whose lookup failed hears "service unavailable" and is
//! hung up on, without an attempt counted ([`super::entry::LookupOutcome::Failed`]).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use livekit_api::access_token::{AccessToken, SIPGrants};
use serde_json::Value;

use super::entry::LookupOutcome;

/// Time allowed for a whole lookup (all its requests).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest PIN sent to a directory; longer input is "no such PIN" without a request.
const MAX_PIN_LEN: usize = 32;

/// Where PINs are looked up. `Debug` leaves the secrets out.
#[derive(Clone)]
pub enum PinDirectory {
    /// A fixed PIN → room name table (tests, small installations).
    Static(HashMap<String, String>),
    /// Visio's roomkit API, then LiveKit's dispatch rules for the room name.
    Roomkit {
        /// Base URL of the Visio backend (`https://visio.example`), or its full join endpoint
        /// (`https://visio.example/api/v1.0/roomkit/join/`).
        url: String,
        /// `ROOMKIT_SERVER_TO_SERVER_API_TOKEN`.
        token: String,
        /// The LiveKit server whose dispatch rule roomkit ensures.
        livekit: LiveKitApi,
    },
    /// LiveKit's SIP dispatch rules (direct rules with a PIN).
    LiveKitDispatch(LiveKitApi),
}

/// Where and how to call LiveKit's server API.
#[derive(Clone)]
pub struct LiveKitApi {
    /// Base URL (`https://lk.example`; `ws`/`wss` are turned into `http`/`https`).
    pub url: String,
    /// API key.
    pub api_key: String,
    /// API secret.
    pub api_secret: String,
}

impl std::fmt::Debug for PinDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Static(table) => f.debug_tuple("Static").field(&table.len()).finish(),
            Self::Roomkit { url, livekit, .. } => f
                .debug_struct("Roomkit")
                .field("url", url)
                .field("livekit", livekit)
                .finish_non_exhaustive(),
            Self::LiveKitDispatch(api) => f.debug_tuple("LiveKitDispatch").field(api).finish(),
        }
    }
}

impl std::fmt::Debug for LiveKitApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKitApi")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

/// What is known of the call, for the dispatch rules' filters and the logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupContext {
    /// The call's id (SIP Call-ID or H.323 call identifier), for the logs only.
    pub call_id: Option<String>,
    /// The LiveKit SIP trunk id the call is attributed to, if any.
    pub trunk_id: Option<String>,
    /// The caller's number (matched against `inbound_numbers`, ignoring spaces, dashes, dots
    /// and brackets).
    pub calling_number: Option<String>,
    /// The number dialled (matched against `numbers`, likewise).
    pub called_number: Option<String>,
}

/// A room found for a PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMatch {
    /// The LiveKit room name.
    pub room_name: String,
    /// The dispatch rule that matched, when the directory has rules.
    pub rule_id: Option<String>,
    /// Attributes the rule gives the participants it creates (empty if none).
    pub participant_attributes: HashMap<String, String>,
    /// Metadata the rule gives the participants it creates.
    pub participant_metadata: Option<String>,
}

impl RoomMatch {
    /// A match of `room_name` with nothing else known.
    pub fn room(room_name: impl Into<String>) -> Self {
        Self {
            room_name: room_name.into(),
            rule_id: None,
            participant_attributes: HashMap::new(),
            participant_metadata: None,
        }
    }
}

/// Why a directory could not answer (as opposed to `Ok(None)`: no such PIN). The caller hears
/// "service unavailable", not "wrong PIN" (see the module docs).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The directory refused our credentials (401/403).
    #[error("directory refused our credentials (HTTP {0})")]
    Unauthorized(u16),
    /// An HTTP status other than the ones documented.
    #[error("directory answered HTTP {0}")]
    Status(u16),
    /// The body was not the documented JSON.
    #[error("malformed directory answer: {0}")]
    Malformed(String),
    /// Roomkit accepted the PIN but LiveKit has no rule for it.
    #[error("roomkit accepted the PIN but no dispatch rule carries it")]
    NoDispatchRule,
    /// The lookup took longer than allowed.
    #[error("directory lookup timed out")]
    Timeout,
    /// Connection, TLS or protocol failure.
    #[error("directory unreachable: {0}")]
    Transport(#[source] reqwest::Error),
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The LiveKit API token could not be minted (bad key/secret).
    #[error("cannot mint LiveKit API token: {0}")]
    Token(String),
}

impl LookupOutcome {
    /// What the PIN dialogue needs to know of a lookup's result (the shell keeps the
    /// [`RoomMatch`] for the join itself).
    pub fn of(result: &Result<Option<RoomMatch>, LookupError>) -> Self {
        match result {
            Ok(Some(m)) => Self::Found(m.room_name.clone()),
            Ok(None) => Self::NotFound,
            Err(_) => Self::Failed,
        }
    }
}

impl PinDirectory {
    /// The room for `pin`, within [`LOOKUP_TIMEOUT`].
    pub async fn resolve(
        &self,
        pin: &str,
        ctx: &LookupContext,
    ) -> Result<Option<RoomMatch>, LookupError> {
        self.resolve_within(pin, ctx, LOOKUP_TIMEOUT).await
    }

    /// The room for `pin`, within `timeout`.
    pub async fn resolve_within(
        &self,
        pin: &str,
        ctx: &LookupContext,
        timeout: Duration,
    ) -> Result<Option<RoomMatch>, LookupError> {
        // Only digits ever leave the process: a PIN is typed on a keypad.
        if pin.is_empty() || pin.len() > MAX_PIN_LEN || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let work = async {
            match self {
                Self::Static(table) => Ok(table.get(pin).map(RoomMatch::room)),
                Self::Roomkit {
                    url,
                    token,
                    livekit,
                } => {
                    if !roomkit_join(url, token, pin).await? {
                        return Ok(None);
                    }
                    let found = livekit.find_direct_rule(pin, ctx).await?;
                    found.map(Some).ok_or(LookupError::NoDispatchRule)
                }
                Self::LiveKitDispatch(api) => api.find_direct_rule(pin, ctx).await,
            }
        };
        let result = tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(LookupError::Timeout));
        let call_id = ctx.call_id.as_deref().unwrap_or("-");
        match &result {
            Ok(Some(m)) => debug!(call_id, room = %m.room_name, "PIN resolved"),
            Ok(None) => debug!(call_id, "no room for PIN"),
            Err(e) => warn!(call_id, error = %e, "PIN lookup failed"),
        }
        result
    }
}

impl LiveKitApi {
    /// Lists the dispatch rules and picks the direct rule for `pin` that admits `ctx`.
    async fn find_direct_rule(
        &self,
        pin: &str,
        ctx: &LookupContext,
    ) -> Result<Option<RoomMatch>, LookupError> {
        let jwt = AccessToken::with_api_key(&self.api_key, &self.api_secret)
            .with_ttl(Duration::from_secs(60))
            .with_sip_grants(SIPGrants {
                admin: true,
                call: false,
            })
            .to_jwt()
            .map_err(|e| LookupError::Token(e.to_string()))?;
        let url = format!(
            "{}/twirp/livekit.SIP/ListSIPDispatchRule",
            http_base(&self.url)
        );
        let resp = client()?
            .post(url)
            .bearer_auth(jwt)
            .json(&serde_json::json!({}))
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            401 | 403 => return Err(LookupError::Unauthorized(status)),
            _ => return Err(LookupError::Status(status)),
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| LookupError::Malformed(e.to_string()))?;
        direct_rule_for(&body, pin, ctx)
    }
}

/// Asks roomkit to prepare the room of `pin`: `true` if it exists.
async fn roomkit_join(url: &str, token: &str, pin: &str) -> Result<bool, LookupError> {
    let url = roomkit_join_url(url);
    let resp = client()?
        .post(url)
        .bearer_auth(token)
        .json(&serde_json::json!({ "pin_code": pin }))
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status().as_u16();
    match status {
        200 => {}
        // 404: no room has this PIN; 400: the PIN has the wrong length for this instance.
        400 | 404 => return Ok(false),
        401 | 403 => return Err(LookupError::Unauthorized(status)),
        _ => return Err(LookupError::Status(status)),
    }
    let body: Value = resp
        .json()
        .await
        .map_err(|e| LookupError::Malformed(e.to_string()))?;
    match body.get("status").and_then(Value::as_str) {
        Some("success") => Ok(true),
        _ => Err(LookupError::Malformed(format!(
            "roomkit answer without status success: {body}"
        ))),
    }
}

/// The join endpoint from the backend's base URL, or the endpoint itself if configured so
/// (livekit-sip's Visio fork configures the full join URL).
fn roomkit_join_url(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/roomkit/join") {
        format!("{base}/")
    } else {
        format!("{base}/api/v1.0/roomkit/join/")
    }
}

/// Scans a `ListSIPDispatchRuleResponse` (protobuf JSON) for the direct rule of `pin`.
fn direct_rule_for(
    body: &Value,
    pin: &str,
    ctx: &LookupContext,
) -> Result<Option<RoomMatch>, LookupError> {
    let items = match field(body, "items", "items") {
        None | Some(Value::Null) => return Ok(None), // proto3 JSON omits empty lists
        Some(Value::Array(items)) => items,
        Some(_) => return Err(LookupError::Malformed("items is not a list".into())),
    };
    // (specificity, item, room): like LiveKit, a rule whose filters name this call wins over a
    // catch-all one; among equals, the first listed.
    let mut best: Option<(usize, &Value, &str)> = None;
    for item in items {
        let Some(direct) = field(item, "rule", "rule")
            .and_then(|r| field(r, "dispatchRuleDirect", "dispatch_rule_direct"))
        else {
            continue;
        };
        let rule_pin = field(direct, "pin", "pin").and_then(Value::as_str);
        let room = field(direct, "roomName", "room_name").and_then(Value::as_str);
        let (Some(rule_pin), Some(room)) = (rule_pin, room) else {
            continue;
        };
        if rule_pin != pin || room.is_empty() {
            continue;
        }
        // Some(true): a non-empty filter names the call; Some(false): no filter; None: excluded.
        let admits =
            |json: &str, proto: &str, value: Option<&String>, same: fn(&str, &str) -> bool| {
                let list: Vec<&str> = field(item, json, proto)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if list.is_empty() {
                    return Some(false);
                }
                value
                    .is_some_and(|v| list.iter().any(|l| same(l, v)))
                    .then_some(true)
            };
        let exact = |a: &str, b: &str| a == b;
        let filters = [
            admits("trunkIds", "trunk_ids", ctx.trunk_id.as_ref(), exact),
            admits(
                "inboundNumbers",
                "inbound_numbers",
                ctx.calling_number.as_ref(),
                same_number,
            ),
            admits(
                "numbers",
                "numbers",
                ctx.called_number.as_ref(),
                same_number,
            ),
        ];
        let Some(specificity) = filters
            .into_iter()
            .try_fold(0, |n, f| f.map(|named| n + usize::from(named)))
        else {
            continue;
        };
        if best.is_none_or(|(b, _, _)| specificity > b) {
            best = Some((specificity, item, room));
        }
    }
    let Some((_, item, room)) = best else {
        return Ok(None);
    };
    let participant_attributes = field(item, "attributes", "attributes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let participant_metadata = field(item, "metadata", "metadata")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    let rule_id = field(item, "sipDispatchRuleId", "sip_dispatch_rule_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Some(RoomMatch {
        room_name: room.to_owned(),
        rule_id,
        participant_attributes,
        participant_metadata,
    }))
}

/// Whether two phone numbers are the same once spaces, dashes, dots and brackets are dropped
/// (`+33 1 40-00-00-00` is `+33140000000`); anything else must match exactly.
fn same_number(a: &str, b: &str) -> bool {
    let skip = |c: &char| matches!(c, ' ' | '-' | '.' | '(' | ')');
    a.chars()
        .filter(|c| !skip(c))
        .eq(b.chars().filter(|c| !skip(c)))
}

/// A protobuf-JSON field by its JSON (lowerCamel) name, or its proto name.
fn field<'a>(v: &'a Value, json: &str, proto: &str) -> Option<&'a Value> {
    v.get(json).or_else(|| v.get(proto))
}

/// `ws(s)://` → `http(s)://`, without a trailing slash.
fn http_base(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        url.to_owned()
    }
}

fn transport(e: reqwest::Error) -> LookupError {
    if e.is_timeout() {
        LookupError::Timeout
    } else {
        LookupError::Transport(e)
    }
}

/// The process-wide HTTP client (connection pool), on rustls with aws-lc-rs and the system's
/// roots. No proxy: the directories are infrastructure services reached directly.
fn client() -> Result<&'static reqwest::Client, LookupError> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // Another component may have installed it first: that is fine.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            reqwest::Client::builder()
                .use_rustls_tls()
                .no_proxy()
                .timeout(LOOKUP_TIMEOUT)
                .connect_timeout(LOOKUP_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LookupError::Client(e.clone()))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::{Json, Router};
    use livekit_api::access_token::TokenVerifier;

    use super::*;

    const KEY: &str = "APIkey";
    const SECRET: &str = "secret-secret-secret-secret-secret";
    const ROOMKIT_TOKEN: &str = "s2s-token";

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    fn rules() -> Value {
        serde_json::json!({ "items": [
            { "sipDispatchRuleId": "SDR_individual",
              "rule": { "dispatchRuleIndividual": { "roomPrefix": "x", "pin": "1111111111" } } },
            { "sipDispatchRuleId": "SDR_trunk",
              "rule": { "dispatchRuleDirect": { "roomName": "trunk-only", "pin": "2222222222" } },
              "trunkIds": ["ST_a"] },
            { "sipDispatchRuleId": "SDR_caller",
              "rule": { "dispatchRuleDirect": { "roomName": "caller-only", "pin": "3333333333" } },
              "inboundNumbers": ["+33100000000"] },
            { "sipDispatchRuleId": "SDR_room",
              "rule": { "dispatchRuleDirect": { "roomName": "room-uuid", "pin": "1234567890" } },
              "name": "SIP_room-uuid", "futureField": {"x": 1} },
            { "sipDispatchRuleId": "SDR_details",
              "rule": { "dispatchRuleDirect": { "roomName": "details", "pin": "4444444444" } },
              "numbers": ["+33 1 40-00-00-00"],
              "attributes": { "visio.source": "phone", "bad": 3 },
              "metadata": "{\"lobby\":false}",
              "mediaEncryption": "SIP_MEDIA_ENCRYPT_FROM_THE_FUTURE" },
            { "sipDispatchRuleId": "SDR_any",
              "rule": { "dispatchRuleDirect": { "roomName": "any", "pin": "6666666666" } } },
            { "sipDispatchRuleId": "SDR_b",
              "rule": { "dispatchRuleDirect": { "roomName": "trunk-b", "pin": "6666666666" } },
              "trunkIds": ["ST_b"] },
            { "sip_dispatch_rule_id": "SDR_snake",
              "rule": { "dispatch_rule_direct": { "room_name": "snake", "pin": "5555555555" } } }
        ]})
    }

    /// A LiveKit Twirp endpoint that checks the JWT's sip.admin grant and the `{}` body.
    async fn twirp(headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let claims = token.and_then(|t| TokenVerifier::with_api_key(KEY, SECRET).verify(t).ok());
        if !claims.is_some_and(|c| c.sip.admin) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"code": "unauthenticated"})),
            );
        }
        let json = headers
            .get("content-type")
            .is_some_and(|v| v == "application/json");
        if !json || serde_json::from_str::<Value>(&body).ok() != Some(serde_json::json!({})) {
            return (StatusCode::BAD_REQUEST, Json(Value::Null));
        }
        (StatusCode::OK, Json(rules()))
    }

    /// Visio's roomkit join endpoint.
    async fn roomkit(headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("Bearer {ROOMKIT_TOKEN}")) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"detail": "no"})),
            );
        }
        let json = headers
            .get("content-type")
            .is_some_and(|v| v == "application/json");
        if !json {
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(Value::Null));
        }
        // The body is exactly `{"pin_code": "<PIN>"}`.
        let pin = serde_json::from_str::<HashMap<String, String>>(&body)
            .ok()
            .filter(|m| m.len() == 1)
            .and_then(|mut m| m.remove("pin_code"));
        match pin.as_deref() {
            Some(p) if p.len() != 10 => (StatusCode::BAD_REQUEST, Json(serde_json::json!({}))),
            Some("1234567890") => (
                StatusCode::OK,
                Json(serde_json::json!({"status": "success"})),
            ),
            // Roomkit knows it, LiveKit does not: an inconsistency.
            Some("9999999999") => (
                StatusCode::OK,
                Json(serde_json::json!({"status": "success"})),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"detail": "No room"})),
            ),
        }
    }

    async fn livekit_server() -> LiveKitApi {
        let url =
            serve(Router::new().route("/twirp/livekit.SIP/ListSIPDispatchRule", post(twirp))).await;
        LiveKitApi {
            url,
            api_key: KEY.into(),
            api_secret: SECRET.into(),
        }
    }

    fn found(room: &str, rule: &str) -> Option<RoomMatch> {
        Some(RoomMatch {
            rule_id: Some(rule.into()),
            ..RoomMatch::room(room)
        })
    }

    #[tokio::test]
    async fn static_table() {
        let dir = PinDirectory::Static(HashMap::from([("1234".into(), "r".into())]));
        let ctx = LookupContext::default();
        assert_eq!(
            dir.resolve("1234", &ctx).await.unwrap(),
            Some(RoomMatch::room("r"))
        );
        assert_eq!(dir.resolve("4321", &ctx).await.unwrap(), None);
        assert_eq!(dir.resolve("12a4", &ctx).await.unwrap(), None);
    }

    #[tokio::test]
    async fn livekit_dispatch_rules() {
        let dir = PinDirectory::LiveKitDispatch(livekit_server().await);
        let none = LookupContext::default();
        assert_eq!(
            dir.resolve("1234567890", &none).await.unwrap(),
            found("room-uuid", "SDR_room")
        );
        assert_eq!(
            dir.resolve("5555555555", &none).await.unwrap(),
            found("snake", "SDR_snake")
        );
        // Individual rules are not direct rules.
        assert_eq!(dir.resolve("1111111111", &none).await.unwrap(), None);
        assert_eq!(dir.resolve("0000000000", &none).await.unwrap(), None);
        // Filters.
        assert_eq!(dir.resolve("2222222222", &none).await.unwrap(), None);
        let trunk = LookupContext {
            trunk_id: Some("ST_a".into()),
            ..Default::default()
        };
        assert_eq!(
            dir.resolve("2222222222", &trunk).await.unwrap(),
            found("trunk-only", "SDR_trunk")
        );
        assert_eq!(dir.resolve("3333333333", &trunk).await.unwrap(), None);
        let caller = LookupContext {
            calling_number: Some("+33100000000".into()),
            ..Default::default()
        };
        assert_eq!(
            dir.resolve("3333333333", &caller).await.unwrap(),
            found("caller-only", "SDR_caller")
        );
        // ws:// URLs are accepted.
        let LookupError::Unauthorized(401) = PinDirectory::LiveKitDispatch(LiveKitApi {
            api_secret: "wrong-secret-wrong-secret-wrong".into(),
            ..livekit_server().await
        })
        .resolve("1234567890", &none)
        .await
        .unwrap_err() else {
            panic!("bad secret must be Unauthorized");
        };
        let mut api = livekit_server().await;
        api.url = api.url.replace("http://", "ws://") + "/";
        assert!(PinDirectory::LiveKitDispatch(api)
            .resolve("1234567890", &none)
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn rule_details_and_number_formats() {
        let dir = PinDirectory::LiveKitDispatch(livekit_server().await);
        let mut ctx = LookupContext {
            call_id: Some("abc@host".into()),
            called_number: Some("+33(1)40.00.00.00".into()),
            ..Default::default()
        };
        let m = dir.resolve("4444444444", &ctx).await.unwrap().unwrap();
        assert_eq!(m.room_name, "details");
        assert_eq!(m.rule_id.as_deref(), Some("SDR_details"));
        // Non-string attribute values are dropped, not fatal.
        assert_eq!(
            m.participant_attributes,
            HashMap::from([("visio.source".to_owned(), "phone".to_owned())])
        );
        assert_eq!(
            m.participant_metadata.as_deref(),
            Some(r#"{"lobby":false}"#)
        );
        ctx.called_number = Some("+33140000001".into());
        assert_eq!(dir.resolve("4444444444", &ctx).await.unwrap(), None);
        // A rule naming the call's trunk beats a catch-all one, wherever it is listed.
        assert_eq!(
            dir.resolve("6666666666", &ctx).await.unwrap(),
            found("any", "SDR_any")
        );
        ctx.trunk_id = Some("ST_b".into());
        assert_eq!(
            dir.resolve("6666666666", &ctx).await.unwrap(),
            found("trunk-b", "SDR_b")
        );
        assert!(same_number("+33 1 40-00-00-00", "+33140000000"));
        assert!(!same_number("+33140000000", "33140000000"));
        assert!(!same_number("+3314", "+33140"));
    }

    #[test]
    fn roomkit_url_forms() {
        let want = "https://v.example/api/v1.0/roomkit/join/";
        for url in [
            "https://v.example",
            "https://v.example/",
            "https://v.example/api/v1.0/roomkit/join",
            "https://v.example/api/v1.0/roomkit/join/",
        ] {
            assert_eq!(roomkit_join_url(url), want, "{url}");
        }
    }

    #[tokio::test]
    async fn roomkit_then_dispatch_rule() {
        let url = serve(Router::new().route("/api/v1.0/roomkit/join/", post(roomkit))).await;
        let livekit = livekit_server().await;
        let dir = PinDirectory::Roomkit {
            url: url.clone(),
            token: ROOMKIT_TOKEN.into(),
            livekit: livekit.clone(),
        };
        let ctx = LookupContext::default();
        assert_eq!(
            dir.resolve("1234567890", &ctx).await.unwrap(),
            found("room-uuid", "SDR_room")
        );
        assert_eq!(dir.resolve("1234567899", &ctx).await.unwrap(), None, "404");
        assert_eq!(
            dir.resolve("123", &ctx).await.unwrap(),
            None,
            "400 (length)"
        );
        assert!(matches!(
            dir.resolve("9999999999", &ctx).await,
            Err(LookupError::NoDispatchRule)
        ));
        let bad = PinDirectory::Roomkit {
            url,
            token: "nope".into(),
            livekit,
        };
        assert!(matches!(
            bad.resolve("1234567890", &ctx).await,
            Err(LookupError::Unauthorized(401))
        ));
    }

    #[tokio::test]
    async fn server_errors_are_lookup_errors() {
        let router = Router::new()
            .route(
                "/status500/twirp/livekit.SIP/ListSIPDispatchRule",
                post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route(
                "/garbage/twirp/livekit.SIP/ListSIPDispatchRule",
                post(|| async { "{not json" }),
            )
            .route(
                "/shape/twirp/livekit.SIP/ListSIPDispatchRule",
                post(|| async { Json(serde_json::json!({"items": 3})) }),
            )
            .route(
                "/empty/twirp/livekit.SIP/ListSIPDispatchRule",
                post(|| async { Json(serde_json::json!({})) }),
            )
            .route(
                "/slow/twirp/livekit.SIP/ListSIPDispatchRule",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Json(rules())
                }),
            )
            .route(
                "/roomkit-garbage/api/v1.0/roomkit/join/",
                post(|| async { Json(serde_json::json!({"status": "nope"})) }),
            );
        let base = serve(router).await;
        let api = |path: &str| LiveKitApi {
            url: format!("{base}/{path}"),
            api_key: KEY.into(),
            api_secret: SECRET.into(),
        };
        let ctx = LookupContext::default();
        let pin = "1234567890";
        let lk = |path| PinDirectory::LiveKitDispatch(api(path));
        assert!(matches!(
            lk("status500").resolve(pin, &ctx).await,
            Err(LookupError::Status(500))
        ));
        assert!(matches!(
            lk("garbage").resolve(pin, &ctx).await,
            Err(LookupError::Malformed(_))
        ));
        assert!(matches!(
            lk("shape").resolve(pin, &ctx).await,
            Err(LookupError::Malformed(_))
        ));
        assert!(matches!(lk("empty").resolve(pin, &ctx).await, Ok(None)));
        assert!(matches!(
            lk("missing").resolve(pin, &ctx).await,
            Err(LookupError::Status(404))
        ));
        let slow = lk("slow")
            .resolve_within(pin, &ctx, Duration::from_millis(200))
            .await;
        assert!(matches!(slow, Err(LookupError::Timeout)), "{slow:?}");
        let rk = PinDirectory::Roomkit {
            url: format!("{base}/roomkit-garbage"),
            token: "t".into(),
            livekit: api("x"),
        };
        assert!(matches!(
            rk.resolve(pin, &ctx).await,
            Err(LookupError::Malformed(_))
        ));
        // Nobody listening.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let down = PinDirectory::LiveKitDispatch(LiveKitApi {
            url: dead,
            api_key: KEY.into(),
            api_secret: SECRET.into(),
        });
        assert!(matches!(
            down.resolve(pin, &ctx).await,
            Err(LookupError::Transport(_))
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let api = LiveKitApi {
            url: "u".into(),
            api_key: "k".into(),
            api_secret: "TOPSECRET".into(),
        };
        assert!(!format!("{api:?}").contains("TOPSECRET"));
        let dir = PinDirectory::Roomkit {
            url: "u".into(),
            token: "TOPSECRET".into(),
            livekit: api,
        };
        assert!(!format!("{dir:?}").contains("TOPSECRET"));
    }
}
