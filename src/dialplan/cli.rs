//! `jonction dialplan check | route | test`: the admin's tools. Each returns its output and
//! exit code, so that tests can call them without a process.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::error::Diagnostic;
use super::{
    dir_files, Dialplan, Outcome, Party, PinLookup, Protocol, RouteRequest, Routing, Transport,
};

/// The default dialplan directory (`[dialplan] dir` in the configuration).
pub const DEFAULT_DIR: &str = "dialplans";

/// `jonction dialplan ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DialplanCommand {
    /// Check dialplan files or directories (default: `[dialplan] dir`): all or nothing.
    Check {
        /// Files, or directories whose top-level *.toml are read in file-name order.
        paths: Vec<PathBuf>,
    },
    /// Dry run: show how a call would be routed (rule, transforms, action).
    Route(RouteArgs),
    /// Run a file of test cases (`[[case]]` with an `expect`) against a dialplan.
    Test {
        /// The test file.
        file: PathBuf,
        /// The dialplan directory (default: `[dialplan] dir` of the configuration, `dialplans`).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `jonction dialplan route`
#[derive(Debug, Clone, clap::Args)]
pub struct RouteArgs {
    /// Called URI or number (sip:demo@host, tel:+33..., 0187654321).
    #[arg(long)]
    pub to: String,
    /// Calling URI or number.
    #[arg(long, default_value = "")]
    pub from: String,
    /// Header NAME:VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// sip or h323.
    #[arg(long, default_value = "sip")]
    pub protocol: String,
    /// Source address of the call.
    #[arg(long)]
    pub source: Option<IpAddr>,
    /// udp, tcp, tls, h323 (default: udp for SIP, h323 for H.323).
    #[arg(long)]
    pub transport: Option<String>,
    /// Trunk name.
    #[arg(long)]
    pub trunk: Option<String>,
    /// The dialplan directory (default: `[dialplan] dir` of the configuration, `dialplans`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl DialplanCommand {
    /// Whether the command reads the default directory (no path or `--dir` given), so that
    /// the configuration is only read when it matters.
    pub fn needs_default_dir(&self) -> bool {
        match self {
            Self::Check { paths } => paths.is_empty(),
            Self::Route(a) => a.dir.is_none(),
            Self::Test { dir, .. } => dir.is_none(),
        }
    }
}

/// Runs a dialplan command: (output, exit code). 0 ok, 1 refused plan or failed test, 2 usage.
/// `default_dir` is used when the command names no path nor `--dir`.
pub fn run(cmd: &DialplanCommand, default_dir: &Path) -> (String, i32) {
    match cmd {
        DialplanCommand::Check { paths } if paths.is_empty() => check(&[default_dir.to_path_buf()]),
        DialplanCommand::Check { paths } => check(paths),
        DialplanCommand::Route(args) => route(args, args.dir.as_deref().unwrap_or(default_dir)),
        DialplanCommand::Test { file, dir } => test(file, dir.as_deref().unwrap_or(default_dir)),
    }
}

/// `check`: `ok: N rules in M files`, or every error.
pub fn check(paths: &[PathBuf]) -> (String, i32) {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            match dir_files(p) {
                Ok(f) => files.extend(f),
                Err(d) => return (format!("{d}\n"), 1),
            }
        } else {
            files.push(p.clone());
        }
    }
    match Dialplan::load_files(&files) {
        Ok(plan) => {
            let (r, f) = (plan.rule_count(), plan.files().len());
            let rs = if r == 1 { "rule" } else { "rules" };
            let fs = if f == 1 { "file" } else { "files" };
            let mut out = format!("ok: {r} {rs} in {f} {fs}\n");
            if plan.enabled_count() == 0 {
                out.push_str("warning: no enabled rule: every call will be answered 404\n");
            }
            (out, 0)
        }
        Err(e) => {
            let n = e.diagnostics.len();
            let s = if n == 1 { "" } else { "s" };
            (format!("{e}\nrefused: {n} error{s}\n"), 1)
        }
    }
}

/// The request described by command-line style inputs.
fn request(
    to: &str,
    from: &str,
    headers: &[String],
    protocol: &str,
    source: Option<IpAddr>,
    transport: Option<&str>,
    trunk: Option<&str>,
) -> Result<RouteRequest, String> {
    let protocol: Protocol = protocol.parse()?;
    let transport: Transport = match transport {
        Some(t) => t.parse()?,
        None if protocol == Protocol::H323 => Transport::H323,
        None => Transport::Udp,
    };
    let mut hs = Vec::new();
    for h in headers {
        let Some((n, v)) = h.split_once(':') else {
            return Err(format!("header {h:?}: want NAME:VALUE"));
        };
        hs.push((n.trim().to_string(), v.trim().to_string()));
    }
    Ok(RouteRequest {
        protocol,
        called: Party::from_uri(to),
        calling: Party::from_uri(from),
        source,
        transport,
        trunk: trunk.map(str::to_string),
        headers: hs,
    })
}

/// `route`: the dry-run trace of the call `a` describes through the plan in `dir`.
pub fn route(a: &RouteArgs, dir: &Path) -> (String, i32) {
    let req = match request(
        &a.to,
        &a.from,
        &a.headers,
        &a.protocol,
        a.source,
        a.transport.as_deref(),
        a.trunk.as_deref(),
    ) {
        Ok(r) => r,
        Err(e) => return (format!("{e}\n"), 2),
    };
    let plan = match Dialplan::load_dir(dir) {
        Ok(p) => p,
        Err(e) => return (format!("{e}\nrefused: the dialplan does not load\n"), 1),
    };
    (trace(&req, &plan.route(&req)), 0)
}

/// Prints the routing decision for `req`, one fact a line.
pub fn trace(req: &RouteRequest, r: &Routing) -> String {
    let mut o = String::new();
    let Some(rule) = &r.rule else {
        return "no rule matched → 404 Not Found\n".to_string();
    };
    let _ = writeln!(o, "rule: {:?} ({})", rule.name, rule.file.display());
    for (k, v) in &r.captures {
        let _ = writeln!(o, "capture: {k} = {v:?}");
    }
    for s in &r.steps {
        let _ = writeln!(o, "transform: {}: {:?} → {:?}", s.step, s.before, s.after);
    }
    let _ = writeln!(o, "action: {}", describe(&r.outcome));
    if let (Some(p), None) = (r.srtp, r.outcome.refusal()) {
        let _ = writeln!(o, "  srtp: {p} (overrides [sip] srtp)");
    }
    if let Outcome::Room(t) = &r.outcome {
        if let Some(n) = &t.participant_name {
            let _ = writeln!(o, "  participant_name: {n:?}");
        }
        for (k, v) in &t.attributes {
            let _ = writeln!(o, "  attribute: {k} = {v:?}");
        }
    }
    if let Outcome::Pin(p) = &r.outcome {
        match p.signalled_pin(req) {
            None => {
                let _ = writeln!(
                    o,
                    "  no PIN carried by the call: prompt for it, in {}",
                    p.prompt_language(req)
                );
            }
            Some(pin) => {
                let _ = writeln!(o, "  PIN carried by the call: {pin:?} (no prompt)");
                if let PinLookup::Static(table) = &p.lookup {
                    let _ = match table.get(&pin) {
                        Some(room) => writeln!(o, "  static lookup: {pin:?} → room {room:?}"),
                        None => writeln!(o, "  static lookup: {pin:?} is not in the table"),
                    };
                }
            }
        }
    }
    o
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Room(t) => format!("room {:?}", t.room),
        Outcome::Pin(p) => {
            let lookup = match &p.lookup {
                PinLookup::Static(t) => format!("static table ({} PINs)", t.len()),
                PinLookup::Roomkit { url, .. } => format!("roomkit {url}"),
                PinLookup::LivekitDispatch { url, .. } => format!("livekit_dispatch {url}"),
            };
            format!(
                "pin (language {}, {}-{} digits{}, timeout {}, {} attempts, X-PIN header {}, \
                 PIN in URI {}), lookup {lookup}",
                p.language,
                p.min_digits,
                p.max_digits,
                if p.hash_terminates { ", # ends" } else { "" },
                humantime_serde::re::humantime::format_duration(p.timeout),
                p.attempts,
                if p.pin_header { "accepted" } else { "ignored" },
                if p.pin_in_uri { "accepted" } else { "ignored" },
            )
        }
        Outcome::Reject {
            sip_code,
            reason,
            h323_cause,
        } => match h323_cause {
            Some(c) => format!("reject {sip_code} {reason} (H.323 cause {c})"),
            None => format!("reject {sip_code} {reason}"),
        },
        Outcome::DialOut(d) => match &d.room {
            Some(r) => format!("dial_out {} over {} into room {r:?}", d.target, d.protocol),
            None => format!("dial_out {} over {}", d.target, d.protocol),
        },
        Outcome::NoMatch => "no rule matched → 404 Not Found".to_string(),
        Outcome::Invalid(why) => format!("invalid → 404 Not Found: {why}"),
    }
}

/// A test file: `[[case]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    case: Vec<Spanned<Case>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    to: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default = "sip")]
    protocol: String,
    source: Option<IpAddr>,
    transport: Option<String>,
    trunk: Option<String>,
    expect: Spanned<Expect>,
}

fn sip() -> String {
    "sip".into()
}

/// Exactly one outcome key, and optionally the rule that must decide.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    room: Option<String>,
    pin: Option<bool>,
    /// A PIN outcome whose PIN the call carries and the static table maps to this room.
    pin_room: Option<String>,
    reject: Option<u16>,
    dial_out: Option<String>,
    no_match: Option<bool>,
    invalid: Option<bool>,
    rule: Option<String>,
    /// The route's `srtp` (`off`, `optional`, `required`), or `"default"` for none.
    srtp: Option<String>,
}

/// `test`: runs every case; exit 1 when one fails.
pub fn test(file: &Path, dir: &Path) -> (String, i32) {
    let src = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            return (
                format!("{}: cannot read the file: {e}\n", file.display()),
                1,
            )
        }
    };
    let cases: TestFile = match toml::from_str(&src) {
        Ok(c) => c,
        Err(e) => {
            let d = Diagnostic::at(file, &src, e.span().unwrap_or(0..0), e.message().trim());
            return (format!("{d}\n"), 1);
        }
    };
    let plan = match Dialplan::load_dir(dir) {
        Ok(p) => p,
        Err(e) => return (format!("{e}\nrefused: the dialplan does not load\n"), 1),
    };
    let mut out = String::new();
    let (mut passed, mut failed) = (0, 0);
    for c in &cases.case {
        let span = c.span();
        let c = c.get_ref();
        let verdict = run_case(&plan, c).map_err(|why| {
            let d = Diagnostic::at(file, &src, span.clone(), why);
            d.to_string()
        });
        match verdict {
            Ok(()) => {
                passed += 1;
                let _ = writeln!(out, "ok   {}", c.name);
            }
            Err(why) => {
                failed += 1;
                let _ = writeln!(out, "FAIL {}\n     {why}", c.name);
            }
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    (out, i32::from(failed > 0))
}

fn run_case(plan: &Dialplan, c: &Case) -> Result<(), String> {
    let req = request(
        &c.to,
        &c.from,
        &c.headers,
        &c.protocol,
        c.source,
        c.transport.as_deref(),
        c.trunk.as_deref(),
    )?;
    let e = c.expect.get_ref();
    let r = plan.route(&req);
    let got = describe(&r.outcome);
    let wanted = [
        e.room.is_some(),
        e.pin.is_some(),
        e.pin_room.is_some(),
        e.reject.is_some(),
        e.dial_out.is_some(),
        e.no_match.is_some(),
        e.invalid.is_some(),
    ];
    if wanted.iter().filter(|w| **w).count() != 1 {
        return Err(
            "expect needs exactly one of room, pin, pin_room, reject, dial_out, no_match, invalid"
                .into(),
        );
    }
    let mut got = got;
    let ok = match &r.outcome {
        Outcome::Room(t) => e.room.as_deref() == Some(t.room.as_str()),
        Outcome::Pin(p) if e.pin_room.is_some() => {
            let room = match (&p.lookup, p.signalled_pin(&req)) {
                (PinLookup::Static(table), Some(pin)) => table.get(&pin).cloned(),
                _ => None,
            };
            got = match &room {
                Some(room) => format!("pin, static lookup → room {room:?}"),
                None => "pin, no static room for the PIN the call carries".into(),
            };
            room == e.pin_room
        }
        Outcome::Pin(_) => e.pin == Some(true),
        Outcome::Reject { sip_code, .. } => e.reject == Some(*sip_code),
        Outcome::DialOut(d) => e.dial_out.as_deref() == Some(d.target.as_str()),
        Outcome::NoMatch => e.no_match == Some(true),
        Outcome::Invalid(_) => e.invalid == Some(true),
    };
    if !ok {
        return Err(format!("expected {}, got {got}", expected(e)));
    }
    if let Some(rule) = &e.rule {
        let by = r.rule.as_ref().map(|r| r.name.as_str());
        if by != Some(rule.as_str()) {
            return Err(format!("expected rule {rule:?}, decided by {by:?}"));
        }
    }
    if let Some(want) = &e.srtp {
        let got = r.srtp.map_or("default", |p| p.as_str());
        if want != got {
            return Err(format!("expected srtp {want:?}, the route has {got:?}"));
        }
    }
    Ok(())
}

fn expected(e: &Expect) -> String {
    if let Some(r) = &e.room {
        format!("room {r:?}")
    } else if let Some(c) = e.reject {
        format!("reject {c}")
    } else if let Some(t) = &e.dial_out {
        format!("dial_out {t}")
    } else if let Some(r) = &e.pin_room {
        format!("pin, static lookup → room {r:?}")
    } else if e.pin.is_some() {
        "pin".into()
    } else if e.no_match.is_some() {
        "no_match".into()
    } else {
        "invalid".into()
    }
}
