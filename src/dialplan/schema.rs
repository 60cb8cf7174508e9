//! The TOML syntax of a dialplan file, as deserialized (spans kept for error messages).
//!
//! Actions, lookups and transforms are flat tables with a `type` key rather than serde-tagged
//! enums: tagged enums buffer their content and lose the spans that errors need.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A whole file: `[[rule]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDef {
    #[serde(default)]
    pub rule: Vec<Spanned<RuleDef>>,
}

/// `[[rule]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDef {
    pub name: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)] // documentation for admins only
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(rename = "match", default)]
    pub matches: Option<MatchDef>,
    #[serde(default)]
    pub transform: Vec<Spanned<TransformDef>>,
    pub action: Spanned<ActionDef>,
}

fn yes() -> bool {
    true
}

/// `[rule.match]`: every condition given must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchDef {
    pub called: Option<Spanned<String>>,
    pub called_host: Option<Spanned<String>>,
    pub calling: Option<Spanned<String>>,
    pub calling_host: Option<Spanned<String>>,
    pub source: Option<Spanned<OneOrMany>>,
    pub transport: Option<Spanned<OneOrMany>>,
    pub trunk: Option<Spanned<OneOrMany>>,
    pub protocol: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    pub headers: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// `[[rule.transform]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransformDef {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub pattern: Option<Spanned<String>>,
    pub with: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
    pub country: Option<Spanned<String>>,
    pub strict: Option<Spanned<bool>>,
}

/// `[rule.action]`: the keys allowed depend on `type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActionDef {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    // room (and dial_out)
    pub room: Option<Spanned<String>>,
    pub participant_name: Option<Spanned<String>>,
    pub attributes: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    // pin
    pub language: Option<Spanned<String>>,
    pub min_digits: Option<Spanned<u32>>,
    pub max_digits: Option<Spanned<u32>>,
    pub hash_terminates: Option<Spanned<bool>>,
    pub timeout: Option<Spanned<String>>,
    pub attempts: Option<Spanned<u32>>,
    pub pin_header: Option<Spanned<bool>>,
    pub pin_in_uri: Option<Spanned<bool>>,
    pub lookup: Option<Spanned<LookupDef>>,
    // reject
    pub code: Option<Spanned<u32>>,
    pub reason: Option<Spanned<String>>,
    pub h323_cause: Option<Spanned<u32>>,
    // dial_out
    pub target: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    // room, pin and dial_out: SDES-SRTP policy of the device leg
    pub srtp: Option<Spanned<String>>,
}

/// `[rule.action.lookup]`: the keys allowed depend on `type`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupDef {
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub pins: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub url: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub api_key: Option<Spanned<String>>,
    pub api_secret: Option<Spanned<String>>,
    pub api_secret_env: Option<Spanned<String>>,
}

/// A string or a list of strings (`transport = "tls"` or `transport = ["tcp", "tls"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}
