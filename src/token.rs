//! LiveKit access tokens (HS256 JWT): minting for `jonction token`, the dev page and the gateway's
//! own room legs, and verification for the embedded room server.

use std::collections::HashMap;
use std::time::Duration;

use livekit_api::access_token::{AccessToken, TokenVerifier, VideoGrants};

/// What a participant token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Room to join.
    pub room: String,
    /// Unique participant identity.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Participant kind (`standard`, `sip`, ...).
    pub kind: String,
    /// May publish tracks.
    pub can_publish: bool,
    /// May subscribe to tracks.
    pub can_subscribe: bool,
    /// May send data packets.
    pub can_publish_data: bool,
    /// Participant attributes.
    pub attributes: HashMap<String, String>,
    /// Validity.
    pub ttl: Duration,
}

impl TokenRequest {
    /// A request with every grant, kind `standard`, valid for six hours.
    pub fn new(room: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            room: room.into(),
            identity: identity.into(),
            name: String::new(),
            kind: "standard".into(),
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            attributes: HashMap::new(),
            ttl: Duration::from_secs(6 * 3600),
        }
    }
}

/// Why a token was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Signature, issuer, expiry or format is wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Valid, but grants nothing usable for this request.
    #[error("token does not grant {0}")]
    NotGranted(&'static str),
    /// A request that cannot be turned into a token.
    #[error("cannot mint token: {0}")]
    Mint(String),
}

/// The verified content of a join token.
#[derive(Debug, Clone)]
pub struct JoinGrant {
    /// Room to join.
    pub room: String,
    /// Participant identity.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Participant kind as written in the token (lower case).
    pub kind: String,
    /// Metadata.
    pub metadata: String,
    /// Attributes.
    pub attributes: HashMap<String, String>,
    /// May publish.
    pub can_publish: bool,
    /// May subscribe.
    pub can_subscribe: bool,
    /// May send data.
    pub can_publish_data: bool,
    /// Hidden participant (not announced to others).
    pub hidden: bool,
}

/// The verified administrative rights of a server API token.
#[derive(Debug, Clone, Default)]
pub struct AdminGrant {
    /// May list rooms (`roomList`).
    pub room_list: bool,
    /// May create and delete rooms (`roomCreate`).
    pub room_create: bool,
    /// May administer the participants of `room` (`roomAdmin`).
    pub room_admin: bool,
    /// The room `roomAdmin` applies to.
    pub room: String,
}

/// Mints and verifies tokens with one API key pair.
#[derive(Clone)]
pub struct Keys {
    key: String,
    secret: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys from the API key and secret.
    pub fn new(key: &str, secret: &str) -> Self {
        Self {
            key: key.to_string(),
            secret: secret.to_string(),
        }
    }

    /// Mints a participant token.
    pub fn mint(&self, req: &TokenRequest) -> Result<String, TokenError> {
        if req.room.is_empty() || req.identity.is_empty() {
            return Err(TokenError::Mint(
                "room and identity must not be empty".into(),
            ));
        }
        let grants = VideoGrants {
            room_join: true,
            room: req.room.clone(),
            can_publish: Some(req.can_publish),
            can_subscribe: Some(req.can_subscribe),
            can_publish_data: Some(req.can_publish_data),
            can_update_own_metadata: Some(true),
            ..Default::default()
        };
        let mut token = AccessToken::with_api_key(&self.key, &self.secret)
            .with_identity(&req.identity)
            .with_grants(grants)
            .with_kind(&req.kind)
            .with_ttl(req.ttl);
        if !req.name.is_empty() {
            token = token.with_name(&req.name);
        }
        if !req.attributes.is_empty() {
            token = token.with_attributes(req.attributes.clone());
        }
        token.to_jwt().map_err(|e| TokenError::Mint(e.to_string()))
    }

    /// Verifies a join token: signature, issuer, expiry, and a `roomJoin` grant naming a room.
    pub fn verify_join(&self, jwt: &str) -> Result<JoinGrant, TokenError> {
        let claims = TokenVerifier::with_api_key(&self.key, &self.secret)
            .verify(jwt)
            .map_err(|e| TokenError::Invalid(reason(&e)))?;
        let v = &claims.video;
        if !v.room_join {
            return Err(TokenError::NotGranted("roomJoin"));
        }
        if v.room.is_empty() {
            return Err(TokenError::NotGranted("a room"));
        }
        if claims.sub.is_empty() {
            return Err(TokenError::NotGranted("an identity"));
        }
        // LiveKit's rule: when none of the three is set, everything is allowed.
        let none_set =
            v.can_publish.is_none() && v.can_subscribe.is_none() && v.can_publish_data.is_none();
        Ok(JoinGrant {
            room: v.room.clone(),
            identity: claims.sub.clone(),
            name: claims.name.clone(),
            kind: claims.kind.to_lowercase(),
            metadata: claims.metadata.clone(),
            attributes: claims.attributes.clone(),
            can_publish: none_set || v.can_publish.unwrap_or(false),
            can_subscribe: none_set || v.can_subscribe.unwrap_or(false),
            can_publish_data: none_set || v.can_publish_data.unwrap_or(false),
            hidden: v.hidden,
        })
    }
}

impl Keys {
    /// The API key.
    pub fn api_key(&self) -> &str {
        &self.key
    }

    /// The API secret.
    pub fn api_secret(&self) -> &str {
        &self.secret
    }

    /// Verifies a server API token (signature, issuer, expiry) and reads its admin grants.
    pub fn verify_admin(&self, jwt: &str) -> Result<AdminGrant, TokenError> {
        let claims = TokenVerifier::with_api_key(&self.key, &self.secret)
            .verify(jwt)
            .map_err(|e| TokenError::Invalid(reason(&e)))?;
        let v = &claims.video;
        Ok(AdminGrant {
            room_list: v.room_list,
            room_create: v.room_create,
            room_admin: v.room_admin,
            room: v.room.clone(),
        })
    }
}

/// A readable reason for a refused token (the library prints every decode error the same way).
fn reason(e: &livekit_api::access_token::AccessTokenError) -> String {
    use livekit_api::access_token::AccessTokenError as E;
    let E::Encoding(inner) = e else {
        return e.to_string();
    };
    match inner.to_string().as_str() {
        "ExpiredSignature" => "token expired".into(),
        "InvalidSignature" => "bad signature (wrong API secret?)".into(),
        "InvalidIssuer" => "unknown API key (issuer)".into(),
        "ImmatureSignature" => "token not valid yet (nbf in the future)".into(),
        "InvalidAlgorithm" => "unsupported algorithm (only HS256)".into(),
        other => format!("malformed token ({other})"),
    }
}

/// Parses a duration such as `90s`, `6h` or `1h30m`.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_then_verify() {
        let keys = Keys::new("devkey", "secret");
        let mut req = TokenRequest::new("demo", "alice");
        req.name = "Alice".into();
        req.kind = "sip".into();
        req.can_subscribe = false;
        let jwt = keys.mint(&req).expect("mint");
        let g = keys.verify_join(&jwt).expect("verify");
        assert_eq!((g.room.as_str(), g.identity.as_str()), ("demo", "alice"));
        assert_eq!(g.name, "Alice");
        assert_eq!(g.kind, "sip");
        assert!(g.can_publish && !g.can_subscribe);
    }

    #[test]
    fn wrong_secret_and_wrong_issuer_are_refused() {
        let jwt = Keys::new("devkey", "secret")
            .mint(&TokenRequest::new("demo", "a"))
            .expect("mint");
        assert!(Keys::new("devkey", "other-secret")
            .verify_join(&jwt)
            .is_err());
        assert!(Keys::new("otherkey", "secret").verify_join(&jwt).is_err());
        assert!(Keys::new("devkey", "secret")
            .verify_join("not.a.jwt")
            .is_err());
    }

    #[test]
    fn ttl_parse() {
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_ttl("soon").is_err());
    }
}
