//! Routing one call through the compiled rules: first match wins, transforms, then the action.

use std::collections::BTreeMap;

use regex::Regex;

use super::compile::{self, Action, Conditions, Rule};
use super::{Outcome, RoomTarget, RouteRequest, Routing, TraceStep};

/// Routes `req` through `rules`.
pub(crate) fn route(rules: &[Rule], req: &RouteRequest) -> Routing {
    for rule in rules.iter().filter(|r| r.enabled) {
        let Some(captures) = matches(&rule.cond, req) else {
            continue;
        };
        let mut routing = Routing {
            rule: Some(rule.id.clone()),
            captures,
            steps: Vec::new(),
            outcome: Outcome::NoMatch,
            srtp: rule.srtp,
        };
        let mut number = req.called.user.clone();
        for t in &rule.transforms {
            match t.apply(&number) {
                Ok(after) => {
                    routing.steps.push(TraceStep {
                        step: t.describe(),
                        before: std::mem::replace(&mut number, after.clone()),
                        after,
                    });
                }
                Err(e) => {
                    routing.outcome = Outcome::Invalid(format!("{}: {e}", t.describe()));
                    return routing;
                }
            }
        }
        let vars = variables(req, &number, &routing.captures);
        routing.outcome = outcome(&rule.action, &vars);
        return routing;
    }
    Routing {
        rule: None,
        captures: BTreeMap::new(),
        steps: Vec::new(),
        outcome: Outcome::NoMatch,
        srtp: None,
    }
}

/// The named captures if every condition holds.
fn matches(c: &Conditions, req: &RouteRequest) -> Option<BTreeMap<String, String>> {
    if !c.protocols.is_empty() && !c.protocols.contains(&req.protocol) {
        return None;
    }
    if !c.transports.is_empty() && !c.transports.contains(&req.transport) {
        return None;
    }
    if !c.trunks.is_empty() {
        let trunk = req.trunk.as_deref()?;
        if !c.trunks.iter().any(|t| t == trunk) {
            return None;
        }
    }
    if !c.sources.is_empty() {
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
        let ip = req.source?.to_canonical();
        if !c.sources.iter().any(|n| n.contains(&ip)) {
            return None;
        }
    }
    let mut caps = BTreeMap::new();
    let fields = [
        (&c.called, req.called.user.as_str()),
        (&c.called_host, req.called.host.as_str()),
        (&c.calling, req.calling.user.as_str()),
        (&c.calling_host, req.calling.host.as_str()),
    ];
    for (re, value) in fields {
        if let Some(re) = re {
            capture(re, value, &mut caps)?;
        }
    }
    for (name, re) in &c.headers {
        let found = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| capture(re, v.trim(), &mut caps).is_some());
        if !found {
            return None;
        }
    }
    Some(caps)
}

/// Matches `value` in full and records the named groups (empty when a group did not take part).
fn capture(re: &Regex, value: &str, caps: &mut BTreeMap<String, String>) -> Option<()> {
    let m = re.captures(value)?;
    for name in re.capture_names().flatten() {
        let v = m.name(name).map_or("", |g| g.as_str());
        caps.insert(name.to_string(), v.to_string());
    }
    Some(())
}

/// Built-in variables, then the captures (which shadow them).
fn variables(
    req: &RouteRequest,
    number: &str,
    caps: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut v: BTreeMap<String, String> = [
        ("called", req.called.user.clone()),
        ("called_host", req.called.host.clone()),
        ("calling", req.calling.user.clone()),
        ("calling_host", req.calling.host.clone()),
        ("number", number.to_string()),
        ("trunk", req.trunk.clone().unwrap_or_default()),
        ("protocol", req.protocol.to_string()),
        ("transport", req.transport.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    debug_assert_eq!(v.len(), compile::BUILTINS.len());
    v.extend(caps.iter().map(|(k, v)| (k.clone(), v.clone())));
    v
}

fn room_name(s: String) -> Result<String, Outcome> {
    if crate::http::valid_room_name(&s) {
        Ok(s)
    } else {
        Err(Outcome::Invalid(format!(
            "room name {s:?} is not valid (letters, digits, - _ ., up to 64)"
        )))
    }
}

fn outcome(action: &Action, vars: &BTreeMap<String, String>) -> Outcome {
    match action {
        Action::Room {
            room,
            participant_name,
            attributes,
        } => match room_name(room.render(vars)) {
            Ok(room) => Outcome::Room(RoomTarget {
                room,
                participant_name: participant_name
                    .as_ref()
                    .map(|t| t.render(vars))
                    .filter(|n| !n.is_empty()),
                attributes: attributes
                    .iter()
                    .map(|(k, t)| (k.clone(), t.render(vars)))
                    .collect(),
            }),
            Err(o) => o,
        },
        Action::Pin(p) => Outcome::Pin(p.clone()),
        Action::Reject {
            sip_code,
            reason,
            h323_cause,
        } => Outcome::Reject {
            sip_code: *sip_code,
            reason: reason.clone(),
            h323_cause: *h323_cause,
        },
        Action::DialOut {
            target,
            protocol,
            room,
        } => {
            let room = match room.as_ref().map(|r| room_name(r.render(vars))).transpose() {
                Ok(r) => r,
                Err(o) => return o,
            };
            let target = target.render(vars);
            let rest = target.split_once(':').map_or("", |(_, r)| r);
            if rest.is_empty()
                || target
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
            {
                return Outcome::Invalid(format!("dial-out target {target:?} is not a URI"));
            }
            Outcome::DialOut(compile::dial_out(target, *protocol, room))
        }
    }
}
