//! From the TOML syntax ([`super::schema`]) to compiled rules: regexes, CIDRs, templates and
//! actions checked once at load time, every problem located at `file:line:col`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;
use toml::Spanned;

use super::error::{Diagnostic, DialplanError};
use super::schema::{ActionDef, FileDef, LookupDef, MatchDef, OneOrMany, RuleDef, TransformDef};
use super::template::Template;
use super::transform::{self, Transform};
use super::{
    DialOutAction, Dialplan, PinAction, PinLookup, PromptLanguage, Protocol, RuleId, Secret,
    Transport,
};
use crate::media::negotiated::SrtpPolicy;

/// Variables every template may use, besides the rule's named captures.
pub(crate) const BUILTINS: &[&str] = &[
    "called",
    "called_host",
    "calling",
    "calling_host",
    "number",
    "trunk",
    "protocol",
    "transport",
];

/// A compiled rule.
#[derive(Debug)]
pub(crate) struct Rule {
    pub id: RuleId,
    pub enabled: bool,
    pub cond: Conditions,
    pub transforms: Vec<Transform>,
    pub action: Action,
    /// The action's `srtp`: overrides `[sip] srtp` for calls it routes.
    pub srtp: Option<SrtpPolicy>,
}

/// Conditions of a rule; `None` or empty means "any".
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    pub called: Option<Regex>,
    pub called_host: Option<Regex>,
    pub calling: Option<Regex>,
    pub calling_host: Option<Regex>,
    /// Lower-case header name, value regex.
    pub headers: Vec<(String, Regex)>,
    pub sources: Vec<IpNet>,
    pub transports: Vec<Transport>,
    pub trunks: Vec<String>,
    pub protocols: Vec<Protocol>,
}

/// A compiled action; templates are rendered per call.
#[derive(Debug)]
pub(crate) enum Action {
    Room {
        room: Template,
        participant_name: Option<Template>,
        attributes: BTreeMap<String, Template>,
    },
    Pin(PinAction),
    Reject {
        sip_code: u16,
        reason: String,
        h323_cause: Option<u8>,
    },
    DialOut {
        target: Template,
        protocol: Protocol,
        room: Option<Template>,
    },
}

/// Loads and compiles `paths`, all or nothing.
pub(crate) fn load(paths: &[PathBuf]) -> Result<Dialplan, DialplanError> {
    let mut diags = Vec::new();
    let mut rules = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for path in paths {
        let src = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                diags.push(Diagnostic::file(path, format!("cannot read the file: {e}")));
                continue;
            }
        };
        let def: FileDef = match toml::from_str(&src) {
            Ok(d) => d,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                diags.push(Diagnostic::at(path, &src, span, e.message().trim()));
                continue;
            }
        };
        let mut cx = Cx {
            file: path,
            src: &src,
            diags: &mut diags,
            captures: BTreeSet::new(),
        };
        for def in def.rule {
            let def = def.into_inner();
            let name = def.name.get_ref().trim().to_string();
            if name.is_empty() {
                cx.err(def.name.span(), "rule name is empty");
            } else {
                let here = cx.locate(def.name.span());
                if let Some(first) = names.get(&name) {
                    cx.err(
                        def.name.span(),
                        format!("duplicate rule name {name:?} (first defined at {first})"),
                    );
                } else {
                    names.insert(name.clone(), here);
                }
            }
            let index = rules.len();
            if let Some(rule) = cx.rule(def, path, name, index) {
                rules.push(rule);
            }
        }
    }
    if diags.is_empty() {
        Ok(Dialplan {
            rules,
            files: paths.to_vec(),
        })
    } else {
        Err(DialplanError { diagnostics: diags })
    }
}

/// The compile context of one file.
struct Cx<'a> {
    file: &'a Path,
    src: &'a str,
    diags: &'a mut Vec<Diagnostic>,
    /// Named captures of the rule being compiled.
    captures: BTreeSet<String>,
}

impl Cx<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::at(self.file, self.src, span, msg));
    }

    fn locate(&self, span: Range<usize>) -> String {
        let (l, c) = super::error::line_col(self.src, span.start);
        format!("{}:{l}:{c}", self.file.display())
    }

    fn rule(&mut self, def: RuleDef, file: &Path, name: String, index: usize) -> Option<Rule> {
        let before = self.diags.len();
        self.captures.clear();
        let cond = self.conditions(def.matches.unwrap_or_default());
        let mut known: BTreeSet<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
        known.extend(std::mem::take(&mut self.captures));
        let transforms = def
            .transform
            .iter()
            .filter_map(|t| self.transform(t))
            .collect();
        if self.diags.len() > before {
            // A bad match regex would make every capture name look unknown: say it once.
            return None;
        }
        let srtp = match &def.action.get_ref().srtp {
            Some(v) => match v.get_ref().parse::<SrtpPolicy>() {
                Ok(p) => Some(p),
                Err(e) => {
                    self.err(v.span(), e);
                    None
                }
            },
            None => None,
        };
        let action = self.action(def.action, &known);
        if self.diags.len() > before {
            return None;
        }
        Some(Rule {
            id: RuleId {
                file: file.to_path_buf(),
                name,
                index,
            },
            enabled: def.enabled,
            cond,
            transforms,
            action: action?,
            srtp,
        })
    }

    /// A match regex (anchored); its named captures must be new to the rule and not shadow a
    /// built-in variable.
    fn regex(&mut self, s: &Spanned<String>, case_insensitive: bool) -> Option<Regex> {
        let flags = if case_insensitive { "(?i)" } else { "" };
        match Regex::new(&format!("{flags}^(?:{})$", s.get_ref())) {
            Ok(r) => {
                for name in r.capture_names().flatten() {
                    if BUILTINS.contains(&name) {
                        self.err(
                            s.span(),
                            format!(
                                "capture name {name:?} is a built-in variable \
                                 ({{{name}}}): choose another"
                            ),
                        );
                        return None;
                    }
                    if !self.captures.insert(name.to_string()) {
                        self.err(
                            s.span(),
                            format!("capture name {name:?} is already used by another condition"),
                        );
                        return None;
                    }
                }
                Some(r)
            }
            Err(e) => {
                let why = e.to_string();
                let why = why.lines().last().unwrap_or_default();
                let why = why.trim().trim_start_matches("error: ");
                self.err(s.span(), format!("bad regex {:?}: {why}", s.get_ref()));
                None
            }
        }
    }

    fn conditions(&mut self, m: MatchDef) -> Conditions {
        let mut c = Conditions {
            called: m.called.as_ref().and_then(|s| self.regex(s, false)),
            called_host: m.called_host.as_ref().and_then(|s| self.regex(s, true)),
            calling: m.calling.as_ref().and_then(|s| self.regex(s, false)),
            calling_host: m.calling_host.as_ref().and_then(|s| self.regex(s, true)),
            ..Conditions::default()
        };
        for (name, re) in &m.headers {
            if !is_token(name.get_ref()) {
                self.err(name.span(), format!("bad header name {:?}", name.get_ref()));
            }
            if let Some(r) = self.regex(re, false) {
                c.headers.push((name.get_ref().to_ascii_lowercase(), r));
            }
        }
        if let Some(s) = &m.source {
            for net in &s.get_ref().0 {
                match parse_net(net) {
                    Some(n) => c.sources.push(n),
                    None => self.err(
                        s.span(),
                        format!("bad source {net:?}: want an address or a CIDR (10.0.0.0/8)"),
                    ),
                }
            }
        }
        c.transports = self.list(&m.transport);
        c.protocols = self.list(&m.protocol);
        if let Some(t) = &m.trunk {
            c.trunks = t.get_ref().0.clone();
        }
        for list in [&m.source, &m.transport, &m.trunk, &m.protocol]
            .into_iter()
            .flatten()
        {
            if list.get_ref().0.is_empty() {
                self.err(
                    list.span(),
                    "empty list: it would match nothing (remove the key)",
                );
            }
        }
        c
    }

    fn list<T: std::str::FromStr<Err = String>>(
        &mut self,
        v: &Option<Spanned<OneOrMany>>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        if let Some(v) = v {
            for s in &v.get_ref().0 {
                match s.parse() {
                    Ok(t) => out.push(t),
                    Err(e) => self.err(v.span(), e),
                }
            }
        }
        out
    }

    fn transform(&mut self, t: &Spanned<TransformDef>) -> Option<Transform> {
        let d = t.get_ref();
        let kind = d.kind.get_ref().as_str();
        let allowed: &[&str] = match kind {
            "replace" => &["pattern", "with"],
            "strip_prefix" | "add_prefix" => &["prefix"],
            "e164" => &["country", "strict"],
            other => {
                self.err(
                    d.kind.span(),
                    format!(
                        "unknown transform type {other:?} \
                         (replace, strip_prefix, add_prefix, e164)"
                    ),
                );
                return None;
            }
        };
        let present = [
            ("pattern", d.pattern.as_ref().map(Spanned::span)),
            ("with", d.with.as_ref().map(Spanned::span)),
            ("prefix", d.prefix.as_ref().map(Spanned::span)),
            ("country", d.country.as_ref().map(Spanned::span)),
            ("strict", d.strict.as_ref().map(Spanned::span)),
        ];
        if !self.only(&present, allowed, "transform", kind) {
            return None;
        }
        let need = |cx: &mut Self, v: &Option<Spanned<String>>, key: &str| {
            if v.is_none() {
                cx.err(t.span(), format!("transform {kind:?} needs `{key}`"));
            }
            v.clone()
        };
        match kind {
            "replace" => {
                let pattern = need(self, &d.pattern, "pattern")?;
                let with = need(self, &d.with, "with")?;
                match Regex::new(pattern.get_ref()) {
                    Ok(re) => Some(Transform::Replace {
                        re,
                        with: with.into_inner(),
                    }),
                    Err(e) => {
                        let why = e.to_string();
                        let why = why.lines().last().unwrap_or_default();
                        let why = why.trim().trim_start_matches("error: ");
                        self.err(
                            pattern.span(),
                            format!("bad regex {:?}: {why}", pattern.get_ref()),
                        );
                        None
                    }
                }
            }
            "strip_prefix" | "add_prefix" => {
                let p = need(self, &d.prefix, "prefix")?;
                if p.get_ref().is_empty() {
                    self.err(p.span(), "empty prefix");
                    return None;
                }
                Some(if kind == "strip_prefix" {
                    Transform::StripPrefix(p.into_inner())
                } else {
                    Transform::AddPrefix(p.into_inner())
                })
            }
            _ => {
                let c = need(self, &d.country, "country")?;
                match transform::country(c.get_ref()) {
                    Some(country) => Some(Transform::E164 {
                        country,
                        strict: d.strict.as_ref().is_none_or(|s| *s.get_ref()),
                    }),
                    None => {
                        self.err(
                            c.span(),
                            format!(
                                "unknown country {:?} (ISO 3166 code: FR, BE, ...)",
                                c.get_ref()
                            ),
                        );
                        None
                    }
                }
            }
        }
    }

    /// Checks that only `allowed` keys are present; false (and errors) otherwise.
    fn only(
        &mut self,
        present: &[(&str, Option<Range<usize>>)],
        allowed: &[&str],
        what: &str,
        kind: &str,
    ) -> bool {
        let mut ok = true;
        for (key, span) in present {
            if let Some(span) = span {
                if !allowed.contains(key) {
                    self.err(
                        span.clone(),
                        format!("`{key}` does not apply to {what} type {kind:?}"),
                    );
                    ok = false;
                }
            }
        }
        ok
    }

    fn template(&mut self, s: &Spanned<String>, known: &BTreeSet<String>) -> Option<Template> {
        match Template::parse(s.get_ref()) {
            Ok(t) => {
                let Some(unknown) = t.names().find(|n| !known.contains(*n)) else {
                    return Some(t);
                };
                let all: Vec<&str> = known.iter().map(String::as_str).collect();
                self.err(
                    s.span(),
                    format!(
                        "unknown name {{{unknown}}} in template {:?} (known: {})",
                        s.get_ref(),
                        all.join(", ")
                    ),
                );
                None
            }
            Err(e) => {
                self.err(s.span(), e);
                None
            }
        }
    }

    /// A room-name template: its literal text must be possible in a room name, and without
    /// variables it must be a valid room name itself.
    fn room_template(&mut self, s: &Spanned<String>, known: &BTreeSet<String>) -> Option<Template> {
        let t = self.template(s, known)?;
        let bad = t
            .literals()
            .flat_map(str::chars)
            .find(|c| !crate::http::valid_room_name(c.encode_utf8(&mut [0; 4])));
        if let Some(c) = bad {
            self.err(
                s.span(),
                format!(
                    "room template {:?} holds {c:?}: room names are letters, digits, - _ .",
                    s.get_ref()
                ),
            );
            return None;
        }
        if t.names().next().is_none() && !crate::http::valid_room_name(s.get_ref()) {
            self.err(
                s.span(),
                format!("invalid room name {:?} (1 to 64 characters)", s.get_ref()),
            );
            return None;
        }
        Some(t)
    }

    fn action(&mut self, a: Spanned<ActionDef>, known: &BTreeSet<String>) -> Option<Action> {
        let span = a.span();
        let d = a.into_inner();
        let kind = d.kind.get_ref().clone();
        let allowed: &[&str] = match kind.as_str() {
            "room" => &["room", "participant_name", "attributes", "srtp"],
            "pin" => &[
                "language",
                "min_digits",
                "max_digits",
                "hash_terminates",
                "timeout",
                "attempts",
                "pin_header",
                "pin_in_uri",
                "lookup",
                "srtp",
            ],
            "reject" => &["code", "reason", "h323_cause"],
            "dial_out" => &["target", "protocol", "room", "srtp"],
            other => {
                self.err(
                    d.kind.span(),
                    format!("unknown action type {other:?} (room, pin, reject, dial_out)"),
                );
                return None;
            }
        };
        let s = |v: &Option<Spanned<String>>| v.as_ref().map(Spanned::span);
        let n = |v: &Option<Spanned<u32>>| v.as_ref().map(Spanned::span);
        let b = |v: &Option<Spanned<bool>>| v.as_ref().map(Spanned::span);
        let present = [
            ("room", s(&d.room)),
            ("participant_name", s(&d.participant_name)),
            ("attributes", d.attributes.as_ref().map(Spanned::span)),
            ("language", s(&d.language)),
            ("min_digits", n(&d.min_digits)),
            ("max_digits", n(&d.max_digits)),
            ("hash_terminates", b(&d.hash_terminates)),
            ("timeout", s(&d.timeout)),
            ("attempts", n(&d.attempts)),
            ("pin_header", b(&d.pin_header)),
            ("pin_in_uri", b(&d.pin_in_uri)),
            ("lookup", d.lookup.as_ref().map(Spanned::span)),
            ("code", n(&d.code)),
            ("reason", s(&d.reason)),
            ("h323_cause", n(&d.h323_cause)),
            ("target", s(&d.target)),
            ("protocol", s(&d.protocol)),
            ("srtp", s(&d.srtp)),
        ];
        if !self.only(&present, allowed, "action", &kind) {
            return None;
        }
        match kind.as_str() {
            "room" => {
                let Some(room) = &d.room else {
                    self.err(
                        span,
                        "action \"room\" needs `room` (a template: \"{room}\")",
                    );
                    return None;
                };
                let room = self.room_template(room, known);
                let participant_name = match &d.participant_name {
                    Some(p) => Some(self.template(p, known)?),
                    None => None,
                };
                let mut attributes = BTreeMap::new();
                if let Some(attrs) = &d.attributes {
                    for (k, v) in attrs.get_ref() {
                        if k.get_ref().trim().is_empty() {
                            self.err(k.span(), "empty attribute name");
                        } else if let Some(t) = self.template(v, known) {
                            attributes.insert(k.get_ref().clone(), t);
                        }
                    }
                }
                Some(Action::Room {
                    room: room?,
                    participant_name,
                    attributes,
                })
            }
            "pin" => self.pin(&d, span).map(Action::Pin),
            "reject" => {
                let Some(code) = &d.code else {
                    self.err(
                        span,
                        "action \"reject\" needs `code` (a SIP status, 400-699)",
                    );
                    return None;
                };
                let sip_code = *code.get_ref();
                if !(400..=699).contains(&sip_code) {
                    self.err(
                        code.span(),
                        format!("SIP code {sip_code} out of range (400-699)"),
                    );
                    return None;
                }
                let h323_cause = match &d.h323_cause {
                    Some(c) if (1..=127).contains(c.get_ref()) => Some(*c.get_ref() as u8),
                    Some(c) => {
                        self.err(
                            c.span(),
                            format!("H.323 cause {} out of range (1-127)", c.get_ref()),
                        );
                        return None;
                    }
                    None => None,
                };
                if let Some(r) = d
                    .reason
                    .as_ref()
                    .filter(|r| r.get_ref().chars().any(char::is_control))
                {
                    self.err(
                        r.span(),
                        "the reason must be one line of text (no control characters)",
                    );
                    return None;
                }
                let reason = d
                    .reason
                    .as_ref()
                    .map(|r| r.get_ref().trim().to_string())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| default_reason(sip_code).to_string());
                Some(Action::Reject {
                    sip_code: sip_code as u16,
                    reason,
                    h323_cause,
                })
            }
            _ => {
                let Some(target) = &d.target else {
                    self.err(span, "action \"dial_out\" needs `target` (a URI template)");
                    return None;
                };
                let target_t = self.template(target, known);
                let protocol = match &d.protocol {
                    Some(p) => match p.get_ref().parse() {
                        Ok(p) => p,
                        Err(e) => {
                            self.err(p.span(), e);
                            return None;
                        }
                    },
                    None => Protocol::Sip,
                };
                let schemes: &[&str] = match protocol {
                    Protocol::Sip => &["sip:", "sips:", "tel:"],
                    Protocol::H323 => &["h323:"],
                };
                let raw = target.get_ref();
                let has_scheme = schemes.iter().any(|s| {
                    raw.get(..s.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(s))
                });
                if !has_scheme {
                    self.err(
                        target.span(),
                        format!(
                            "dial_out target {raw:?} must start with {} for protocol {protocol}",
                            schemes.join(" or ")
                        ),
                    );
                    return None;
                }
                let room = match &d.room {
                    Some(r) => Some(self.room_template(r, known)?),
                    None => None,
                };
                Some(Action::DialOut {
                    target: target_t?,
                    protocol,
                    room,
                })
            }
        }
    }

    fn pin(&mut self, d: &ActionDef, span: Range<usize>) -> Option<PinAction> {
        let before = self.diags.len();
        let language = match &d.language {
            None => PromptLanguage::Auto,
            Some(l) => match l.get_ref().as_str() {
                "fr" => PromptLanguage::Fr,
                "en" => PromptLanguage::En,
                "auto" => PromptLanguage::Auto,
                other => {
                    self.err(
                        l.span(),
                        format!("unknown language {other:?} (fr, en, auto)"),
                    );
                    PromptLanguage::Auto
                }
            },
        };
        let digits = |cx: &mut Self, v: &Option<Spanned<u32>>, default: u8| match v {
            None => default,
            Some(v) if (1..=32).contains(v.get_ref()) => *v.get_ref() as u8,
            Some(v) => {
                cx.err(v.span(), format!("{} digits: want 1 to 32", v.get_ref()));
                default
            }
        };
        let min_digits = digits(self, &d.min_digits, 4);
        let max_digits = digits(self, &d.max_digits, 10);
        if min_digits > max_digits {
            let at = d.min_digits.as_ref().map_or(span.clone(), Spanned::span);
            self.err(
                at,
                format!("min_digits ({min_digits}) is above max_digits ({max_digits})"),
            );
        }
        let timeout = match &d.timeout {
            None => Duration::from_secs(10),
            Some(t) => match humantime_serde::re::humantime::parse_duration(t.get_ref()) {
                Ok(t) if !t.is_zero() => t,
                Ok(_) => {
                    self.err(t.span(), "timeout must be above zero");
                    Duration::ZERO
                }
                Err(e) => {
                    self.err(
                        t.span(),
                        format!("bad timeout {:?}: {e} (e.g. \"10s\")", t.get_ref()),
                    );
                    Duration::ZERO
                }
            },
        };
        let attempts = match &d.attempts {
            None => 3,
            Some(a) if (1..=10).contains(a.get_ref()) => *a.get_ref() as u8,
            Some(a) => {
                self.err(a.span(), format!("{} attempts: want 1 to 10", a.get_ref()));
                3
            }
        };
        let lookup = match &d.lookup {
            Some(l) => self.lookup(l, min_digits, max_digits),
            None => {
                self.err(span, "action \"pin\" needs `lookup` ([rule.action.lookup])");
                None
            }
        };
        if self.diags.len() > before {
            return None;
        }
        Some(PinAction {
            language,
            min_digits,
            max_digits,
            hash_terminates: d.hash_terminates.as_ref().is_none_or(|b| *b.get_ref()),
            timeout,
            attempts,
            pin_header: d.pin_header.as_ref().is_none_or(|b| *b.get_ref()),
            pin_in_uri: d.pin_in_uri.as_ref().is_some_and(|b| *b.get_ref()),
            lookup: lookup?,
        })
    }

    fn lookup(&mut self, l: &Spanned<LookupDef>, min: u8, max: u8) -> Option<PinLookup> {
        let span = l.span();
        let d = l.get_ref();
        let kind = d.kind.get_ref().as_str();
        let allowed: &[&str] = match kind {
            "static" => &["pins"],
            "roomkit" => &["url", "token", "token_env"],
            "livekit_dispatch" => &["url", "api_key", "api_secret", "api_secret_env"],
            other => {
                self.err(
                    d.kind.span(),
                    format!("unknown lookup type {other:?} (static, roomkit, livekit_dispatch)"),
                );
                return None;
            }
        };
        let s = |v: &Option<Spanned<String>>| v.as_ref().map(Spanned::span);
        let present = [
            ("pins", d.pins.as_ref().map(Spanned::span)),
            ("url", s(&d.url)),
            ("token", s(&d.token)),
            ("token_env", s(&d.token_env)),
            ("api_key", s(&d.api_key)),
            ("api_secret", s(&d.api_secret)),
            ("api_secret_env", s(&d.api_secret_env)),
        ];
        if !self.only(&present, allowed, "lookup", kind) {
            return None;
        }
        match kind {
            "static" => {
                let Some(pins) = &d.pins else {
                    self.err(span, "lookup \"static\" needs `pins` (PIN = \"room\")");
                    return None;
                };
                let mut table = BTreeMap::new();
                for (pin_at, room) in pins.get_ref() {
                    let pin = pin_at.get_ref();
                    let len = pin.len();
                    if !pin.bytes().all(|b| b.is_ascii_digit())
                        || len < min as usize
                        || len > max as usize
                    {
                        self.err(
                            pin_at.span(),
                            format!("PIN {pin:?}: want {min} to {max} digits"),
                        );
                    } else if !crate::http::valid_room_name(room.get_ref()) {
                        self.err(
                            room.span(),
                            format!("invalid room name {:?}", room.get_ref()),
                        );
                    } else {
                        table.insert(pin.clone(), room.get_ref().clone());
                    }
                }
                Some(PinLookup::Static(Arc::new(table)))
            }
            "roomkit" => {
                let url = self.url(&d.url, span.clone())?;
                let token = self.secret(&d.token, &d.token_env, "token", span)?;
                Some(PinLookup::Roomkit { url, token })
            }
            _ => {
                let url = self.url(&d.url, span.clone())?;
                let Some(api_key) = &d.api_key else {
                    self.err(span, "lookup \"livekit_dispatch\" needs `api_key`");
                    return None;
                };
                if api_key.get_ref().trim().is_empty() {
                    self.err(api_key.span(), "empty `api_key`");
                    return None;
                }
                let api_secret =
                    self.secret(&d.api_secret, &d.api_secret_env, "api_secret", span)?;
                Some(PinLookup::LivekitDispatch {
                    url,
                    api_key: api_key.get_ref().clone(),
                    api_secret,
                })
            }
        }
    }

    fn url(&mut self, u: &Option<Spanned<String>>, span: Range<usize>) -> Option<String> {
        let Some(u) = u else {
            self.err(span, "lookup needs `url`");
            return None;
        };
        let v = u.get_ref();
        let rest = v
            .strip_prefix("https://")
            .or_else(|| v.strip_prefix("http://"))
            .or_else(|| v.strip_prefix("wss://"))
            .or_else(|| v.strip_prefix("ws://"));
        if rest.is_none_or(str::is_empty) {
            self.err(u.span(), format!("bad url {v:?}: want http(s)://host/..."));
            return None;
        }
        Some(v.clone())
    }

    fn secret(
        &mut self,
        value: &Option<Spanned<String>>,
        env: &Option<Spanned<String>>,
        key: &str,
        span: Range<usize>,
    ) -> Option<Secret> {
        match (value, env) {
            (Some(v), None) if v.get_ref().is_empty() => {
                self.err(v.span(), format!("empty `{key}`"));
                None
            }
            (Some(v), None) => Some(Secret::Value(v.get_ref().clone())),
            (None, Some(e)) if !e.get_ref().is_empty() => Some(Secret::Env(e.get_ref().clone())),
            (Some(_), Some(e)) => {
                self.err(e.span(), format!("give `{key}` or `{key}_env`, not both"));
                None
            }
            _ => {
                self.err(span, format!("lookup needs `{key}` or `{key}_env`"));
                None
            }
        }
    }
}

/// A usual reason phrase for `code`.
fn default_reason(code: u32) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Rejected",
    }
}

/// A SIP header name: an RFC 3261 token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// Used by route: a dial-out action rendered.
pub(crate) fn dial_out(target: String, protocol: Protocol, room: Option<String>) -> DialOutAction {
    DialOutAction {
        target,
        protocol,
        room,
    }
}
