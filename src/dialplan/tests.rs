//! Engine tests: every condition, transform and action kind, positive and negative, and load
//! errors located at `file:line:col`.

use std::net::IpAddr;
use std::path::PathBuf;

use super::*;

/// Writes `src` as `name` in a fresh temp dir and loads it.
fn load(name: &str, src: &str) -> (tempfile::TempDir, Result<Dialplan, DialplanError>) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(name), src).expect("write");
    let plan = Dialplan::load_dir(dir.path());
    (dir, plan)
}

fn plan(src: &str) -> (tempfile::TempDir, Dialplan) {
    let (dir, p) = load("plan.toml", src);
    match p {
        Ok(p) => (dir, p),
        Err(e) => panic!("plan refused:\n{e}"),
    }
}

/// The first error, as "line:col: message" (file name checked separately).
fn first_error(src: &str) -> String {
    let (_dir, p) = load("bad.toml", src);
    let e = p.expect_err("should be refused");
    let d = &e.diagnostics[0];
    assert_eq!(
        d.file.file_name().and_then(|f| f.to_str()),
        Some("bad.toml")
    );
    format!("{}:{}: {}", d.line, d.col, d.message)
}

fn room(r: &Routing) -> Option<&str> {
    match &r.outcome {
        Outcome::Room(t) => Some(t.room.as_str()),
        _ => None,
    }
}

const CONDITIONS: &str = r#"
[[rule]]
name = "called"
match.called = '(?P<room>[a-z]+)'
action = { type = "room", room = "c-{room}" }

[[rule]]
name = "called-host"
match = { called = '\d+', called_host = 'gw\.example\.(org|net)' }
action = { type = "room", room = "host-{called}" }

[[rule]]
name = "calling"
match = { called = '1\d+', calling = '\+33(?P<nsn>\d+)' }
action = { type = "room", room = "from-{nsn}" }

[[rule]]
name = "calling-host"
match = { called = '2\d+', calling_host = 'partner\.example' }
action = { type = "room", room = "partner" }

[[rule]]
name = "source"
match = { called = '3\d+', source = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"] }
action = { type = "room", room = "lan" }

[[rule]]
name = "transport"
match = { called = '4\d+', transport = "tls" }
action = { type = "room", room = "secure" }

[[rule]]
name = "trunk"
match = { called = '5\d+', trunk = ["ovh", "orange"] }
action = { type = "room", room = "trunk-{trunk}" }

[[rule]]
name = "protocol"
match = { called = '6\d+', protocol = "h323" }
action = { type = "room", room = "h323-{called}" }

[[rule]]
name = "header"
match = { called = '7\d+', headers = { "X-Room" = '(?P<hroom>[a-z]+)' } }
action = { type = "room", room = "hdr-{hroom}" }

[[rule]]
name = "disabled"
enabled = false
match = { called = '8\d+' }
action = { type = "room", room = "never" }
"#;

#[test]
fn every_condition_kind() {
    let (_d, p) = plan(CONDITIONS);
    assert_eq!(p.rule_count(), 10);
    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }
    type Edit = fn(&mut RouteRequest);
    let none: Edit = |_| {};
    let cases: Vec<(&str, &str, Edit, Option<&str>)> = vec![
        ("sip:demo@x", "sip:a@b", none, Some("c-demo")),
        ("sip:Demo@x", "sip:a@b", none, None), // regexes are case-sensitive, anchored
        ("sip:demo-1@x", "sip:a@b", none, None), // anchored: the whole user part
        ("sip:99@GW.example.org", "sip:a@b", none, Some("host-99")),
        ("sip:99@gw.example.com", "sip:a@b", none, None),
        ("sip:100@x", "tel:+33612", none, Some("from-612")),
        ("sip:100@x", "tel:0612", none, None),
        (
            "sip:200@x",
            "sip:bob@partner.example",
            none,
            Some("partner"),
        ),
        ("sip:200@x", "sip:bob@other.example", none, None),
        (
            "sip:300@x",
            "sip:a@b",
            |r| r.source = ip("10.1.2.3"),
            Some("lan"),
        ),
        (
            "sip:300@x",
            "sip:a@b",
            |r| r.source = ip("2001:db8::1"),
            Some("lan"),
        ),
        (
            "sip:300@x",
            "sip:a@b",
            |r| r.source = ip("192.0.2.7"),
            Some("lan"),
        ),
        ("sip:300@x", "sip:a@b", |r| r.source = ip("192.0.2.8"), None),
        (
            "sip:300@x",
            "sip:a@b",
            |r| r.source = ip("::ffff:10.9.8.7"),
            Some("lan"),
        ),
        (
            "sip:300@x",
            "sip:a@b",
            |r| r.source = ip("::ffff:192.0.2.8"),
            None,
        ),
        ("sip:300@x", "sip:a@b", none, None), // no source known
        (
            "sip:400@x",
            "sip:a@b",
            |r| r.transport = Transport::Tls,
            Some("secure"),
        ),
        ("sip:400@x", "sip:a@b", none, None),
        (
            "sip:500@x",
            "sip:a@b",
            |r| r.trunk = Some("ovh".into()),
            Some("trunk-ovh"),
        ),
        (
            "sip:500@x",
            "sip:a@b",
            |r| r.trunk = Some("sfr".into()),
            None,
        ),
        ("sip:500@x", "sip:a@b", none, None),
        (
            "h323:600",
            "",
            |r| r.protocol = Protocol::H323,
            Some("h323-600"),
        ),
        ("sip:600@x", "sip:a@b", none, None),
        (
            "sip:700@x",
            "sip:a@b",
            |r| r.headers = vec![("x-room".into(), "blue".into())],
            Some("hdr-blue"),
        ),
        (
            "sip:700@x",
            "sip:a@b",
            |r| r.headers = vec![("X-Room".into(), "Blue".into())],
            None,
        ),
        ("sip:700@x", "sip:a@b", none, None),
        ("sip:800@x", "sip:a@b", none, None), // disabled rule
    ];
    for (to, from, edit, want) in cases {
        let mut req = RouteRequest::sip(to, from);
        edit(&mut req);
        let r = p.route(&req);
        assert_eq!(room(&r), want, "{to} from {from}: {r:?}");
        if want.is_none() {
            assert_eq!(r.outcome, Outcome::NoMatch, "{to}");
            assert_eq!(r.rule, None);
        }
    }
}

#[test]
fn first_match_wins_across_files_in_name_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rule = |name: &str, room: &str| {
        format!("[[rule]]\nname = \"{name}\"\naction = {{ type = \"room\", room = \"{room}\" }}\n")
    };
    std::fs::write(dir.path().join("20-b.toml"), rule("b", "second")).expect("write");
    std::fs::write(dir.path().join("10-a.toml"), rule("a", "first")).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not a plan").expect("write");
    std::fs::write(dir.path().join(".hidden.toml"), "garbage = [").expect("write");
    std::fs::create_dir(dir.path().join("tests")).expect("mkdir");
    std::fs::write(dir.path().join("tests/x.toml"), "garbage = [").expect("write");
    let p = Dialplan::load_dir(dir.path()).expect("loads");
    assert_eq!(p.rule_count(), 2);
    let r = p.route(&RouteRequest::sip("sip:anything@x", ""));
    assert_eq!(room(&r), Some("first"));
    let id = r.rule.expect("a rule");
    assert_eq!((id.name.as_str(), id.index), ("a", 0));
    assert!(id.file.ends_with("10-a.toml"));
}

#[test]
fn transforms_in_order_with_trace() {
    let (_d, p) = plan(
        r#"
[[rule]]
name = "national"
match.called = '9(?P<rest>0\d{9})'
transform = [
  { type = "strip_prefix", prefix = "9" },
  { type = "e164", country = "FR" },
  { type = "replace", pattern = '^\+', with = "" },
  { type = "add_prefix", prefix = "tel-" },
]
action = { type = "room", room = "{number}", participant_name = "{calling} via {rest}", attributes = { "sip.number" = "{called}" } }

[[rule]]
name = "bad-number"
match.called = 'x(?P<n>.*)'
transform = [{ type = "e164", country = "fr" }]
action = { type = "room", room = "r-{number}" }

[[rule]]
name = "lenient"
match.called = 'L\d+'
transform = [
  { type = "strip_prefix", prefix = "L" },
  { type = "e164", country = "FR", strict = false },
  { type = "replace", pattern = '^\+', with = "" },
]
action = { type = "room", room = "n-{number}" }
"#,
    );
    let r = p.route(&RouteRequest::sip("sip:90187654321@gw", "sip:alice@b"));
    let steps: Vec<(&str, &str, &str)> = r
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.before.as_str(), s.after.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("strip_prefix \"9\"", "90187654321", "0187654321"),
            ("e164 FR", "0187654321", "+33187654321"),
            (
                "replace \"^\\\\+\" with \"\"",
                "+33187654321",
                "33187654321"
            ),
            ("add_prefix \"tel-\"", "33187654321", "tel-33187654321"),
        ]
    );
    let Outcome::Room(t) = &r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!(t.room, "tel-33187654321");
    assert_eq!(t.participant_name.as_deref(), Some("alice via 0187654321"));
    assert_eq!(
        t.attributes.get("sip.number").map(String::as_str),
        Some("90187654321")
    );
    assert_eq!(
        r.captures.get("rest").map(String::as_str),
        Some("0187654321")
    );

    let r = p.route(&RouteRequest::sip("sip:xabc@gw", ""));
    assert!(
        matches!(&r.outcome, Outcome::Invalid(m) if m.contains("e164")),
        "{r:?}"
    );
    assert_eq!(r.rule.map(|i| i.name), Some("bad-number".to_string()));
    // Strict (the default): a number outside the French plan is refused.
    let r = p.route(&RouteRequest::sip("sip:x123@gw", ""));
    assert!(
        matches!(&r.outcome, Outcome::Invalid(m) if m.contains("not a valid number")),
        "{r:?}"
    );
    // Not strict: only parsed and formatted.
    let r = p.route(&RouteRequest::sip("sip:L123@gw", ""));
    assert_eq!(room(&r), Some("n-33123"), "{r:?}");
    assert_eq!(r.steps[1].step, "e164 FR (not strict)");
}

#[test]
fn every_action_kind() {
    let (_d, p) = plan(
        r#"
[[rule]]
name = "reject"
match.calling = '\+338\d+'
action = { type = "reject", code = 403, reason = "Premium rate", h323_cause = 21 }

[[rule]]
name = "reject-default-reason"
match.called = 'busy'
action = { type = "reject", code = 486 }

[[rule]]
name = "pin-static"
match.called = '\+33187654321'
[rule.action]
type = "pin"
language = "fr"
min_digits = 4
max_digits = 6
hash_terminates = false
timeout = "15s"
attempts = 2
pin_header = false
pin_in_uri = true
lookup = { type = "static", pins = { "1234" = "board", "987654" = "lab" } }

[[rule]]
name = "pin-roomkit"
match.called = 'roomkit'
[rule.action]
type = "pin"
[rule.action.lookup]
type = "roomkit"
url = "https://visio.example/api/v1.0/"
token_env = "ROOMKIT_TOKEN"

[[rule]]
name = "pin-livekit"
match.called = 'lk'
action.type = "pin"
action.lookup = { type = "livekit_dispatch", url = "https://lk.example", api_key = "APIk", api_secret = "s3cret" }

[[rule]]
name = "dial-out"
match.called = 'out-(?P<n>\d+)'
action = { type = "dial_out", target = "sip:{n}@pstn.example", protocol = "sip", room = "out-{n}" }

[[rule]]
name = "dial-out-h323"
match.called = 'h(?P<n>\d+)'
action = { type = "dial_out", target = "h323:{n}", protocol = "h323" }

[[rule]]
name = "dial-out-bad"
match.called = 'bad-out(?P<x>.*)'
action = { type = "dial_out", target = "sip:{x}" }

[[rule]]
name = "bad-room"
match.called = '(?P<any>.*)'
action = { type = "room", room = "{any}" }
"#,
    );
    let r = p.route(&RouteRequest::sip("sip:1@x", "tel:+33899123456"));
    assert_eq!(
        r.outcome,
        Outcome::Reject {
            sip_code: 403,
            reason: "Premium rate".into(),
            h323_cause: Some(21)
        }
    );
    let r = p.route(&RouteRequest::sip("sip:busy@x", ""));
    assert_eq!(
        r.outcome,
        Outcome::Reject {
            sip_code: 486,
            reason: "Busy Here".into(),
            h323_cause: None
        }
    );
    let r = p.route(&RouteRequest::sip("tel:+33187654321", ""));
    let Outcome::Pin(pin) = r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!(pin.language, PromptLanguage::Fr);
    assert_eq!((pin.min_digits, pin.max_digits, pin.attempts), (4, 6, 2));
    assert_eq!(pin.timeout, Duration::from_secs(15));
    assert!(!pin.pin_header && pin.pin_in_uri && !pin.hash_terminates);
    let PinLookup::Static(table) = &pin.lookup else {
        panic!("{pin:?}")
    };
    assert_eq!(table.get("1234").map(String::as_str), Some("board"));
    assert_eq!(table.len(), 2);

    let r = p.route(&RouteRequest::sip("sip:roomkit@x", ""));
    let Outcome::Pin(pin) = r.outcome else {
        panic!("{r:?}")
    };
    assert_eq!(pin.language, PromptLanguage::Auto);
    assert_eq!((pin.min_digits, pin.max_digits, pin.attempts), (4, 10, 3));
    assert_eq!(pin.timeout, Duration::from_secs(10));
    assert!(pin.pin_header && !pin.pin_in_uri && pin.hash_terminates);
    assert_eq!(
        pin.lookup,
        PinLookup::Roomkit {
            url: "https://visio.example/api/v1.0/".into(),
            token: Secret::Env("ROOMKIT_TOKEN".into())
        }
    );

    let r = p.route(&RouteRequest::sip("sip:lk@x", ""));
    let Outcome::Pin(pin) = r.outcome else {
        panic!("{r:?}")
    };
    let PinLookup::LivekitDispatch { api_secret, .. } = &pin.lookup else {
        panic!("{pin:?}")
    };
    assert_eq!(api_secret.resolve().as_deref(), Some("s3cret"));
    assert!(!format!("{api_secret:?}").contains("s3cret"));

    let r = p.route(&RouteRequest::sip("sip:out-42@x", ""));
    assert_eq!(
        r.outcome,
        Outcome::DialOut(DialOutAction {
            target: "sip:42@pstn.example".into(),
            protocol: Protocol::Sip,
            room: Some("out-42".into())
        })
    );

    let r = p.route(&RouteRequest::sip("sip:h7001@x", ""));
    assert_eq!(
        r.outcome,
        Outcome::DialOut(DialOutAction {
            target: "h323:7001".into(),
            protocol: Protocol::H323,
            room: None
        })
    );
    // A rendered target that is no URI: Invalid.
    for user in ["bad-out", "bad-out a b", "bad-out<x>"] {
        let mut req = RouteRequest::sip("", "");
        req.called.user = user.into();
        let r = p.route(&req);
        assert!(matches!(r.outcome, Outcome::Invalid(_)), "{user}: {r:?}");
    }
    let r = p.route(&RouteRequest::sip("sip:bad-out1@x", ""));
    assert!(
        matches!(r.outcome, Outcome::DialOut(ref d) if d.target == "sip:1"),
        "{r:?}"
    );

    // A room name that the room server would refuse: Invalid, not a panic nor a bad room.
    for bad in [
        "sip:a%20b@x",
        "sip:a!b@x",
        &format!("sip:{}@x", "a".repeat(65)),
    ] {
        let r = p.route(&RouteRequest::sip(bad, ""));
        assert!(matches!(r.outcome, Outcome::Invalid(_)), "{bad}: {r:?}");
    }
    let r = p.route(&RouteRequest::sip("sip:fine-room@x", ""));
    assert_eq!(room(&r), Some("fine-room"));
}

#[test]
fn refusals_and_h323_requests() {
    let (_d, p) = plan(
        r#"
[[rule]]
name = "ext"
match = { protocol = "h323", transport = "h323", called = '(?P<ext>7\d{3})' }
action = { type = "room", room = "ext-{ext}" }

[[rule]]
name = "busy"
match.called = 'busy'
action = { type = "reject", code = 486, h323_cause = 17 }

[[rule]]
name = "bad"
match.called = 'bad(?P<x>.*)'
action = { type = "room", room = "b{x}" }
"#,
    );
    let r = p.route(&RouteRequest::h323("7001", "h323:alice@gk"));
    assert_eq!(room(&r), Some("ext-7001"));
    assert_eq!(r.outcome.refusal(), None);
    assert_eq!(
        p.route(&RouteRequest::sip("sip:7001@gw", "")).outcome,
        Outcome::NoMatch
    );
    let cases = [
        ("sip:busy@gw", Some((486, "Busy Here"))),
        ("sip:nothing@gw", Some((404, "Not Found"))),
        ("sip:bad%20x@gw", Some((404, "Not Found"))),
        ("sip:badx@gw", None),
    ];
    for (to, want) in cases {
        let r = p.route(&RouteRequest::sip(to, ""));
        assert_eq!(r.outcome.refusal(), want, "{to}: {r:?}");
    }
}

#[test]
fn plans_are_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Dialplan>();
    send_sync::<Routing>();
    send_sync::<reload::DialplanHandle>();
}

#[test]
fn empty_plan_matches_nothing() {
    let (d, p) = plan("# nothing yet\n");
    let (out, code) = cli::check(&[d.path().to_path_buf()]);
    assert_eq!(
        (out.as_str(), code),
        (
            "ok: 0 rules in 1 file\nwarning: no enabled rule: every call will be answered 404\n",
            0
        )
    );
    assert_eq!(p.rule_count(), 0);
    assert_eq!(
        p.route(&RouteRequest::sip("sip:demo@x", "")).outcome,
        Outcome::NoMatch
    );
}

#[test]
fn uri_forms() {
    let cases = [
        (
            "sip:demo@gw.example:5060;transport=tcp",
            "demo",
            "gw.example",
        ),
        (
            "\"Alice\" <sips:alice@Example.COM>;tag=1",
            "alice",
            "example.com",
        ),
        ("tel:+33187654321", "+33187654321", ""),
        ("h323:1234", "1234", ""),
        ("0187654321", "0187654321", ""),
        ("bob@[2001:db8::1]:5061", "bob", "[2001:db8::1]"),
        ("sip:user;x=1@host?subject=a", "user", "host"),
        ("sip:%2B33187654321@gw;user=phone", "+33187654321", "gw"),
        ("sip:a%20b@gw", "a b", "gw"),
        ("sip:100%@gw", "100%", "gw"),
        ("sip:%zz%4@gw", "%zz%4", "gw"),
        ("sip:%C3%A9t%C3%A9@gw", "été", "gw"),
        ("tel:+33-1-87.65.43.21", "+33187654321", ""),
        ("tel:(01)87654321;phone-context=+33", "0187654321", ""),
        ("sip:01-87@gw", "01-87", "gw"), // separators are only dropped from tel: numbers
    ];
    for (uri, user, host) in cases {
        let p = Party::from_uri(uri);
        assert_eq!((p.user.as_str(), p.host.as_str()), (user, host), "{uri}");
    }
}

/// Each bad file gives exactly this first error at this position.
#[test]
fn errors_name_line_and_column() {
    let act = "action = { type = \"room\", room = \"r\" }";
    let cases: Vec<(String, &str)> = vec![
        ("[[rule]\nname = \"a\"\n".into(), "1:8: unclosed array table"),
        (format!("[[rule]]\nname = \"a\"\nmatc.called = 'x'\n{act}\n"), "3:1: unknown field `matc`"),
        (format!("[[rule]]\nname = \"a\"\nmatch.called = 3\n{act}\n"), "3:16: invalid type"),
        (format!("[[rule]]\nname = \"a\"\nmatch.called = '(x'\n{act}\n"), "3:16: bad regex \"(x\""),
        (
            format!("[[rule]]\nname = \"a\"\nmatch.source = [\"10.0.0.0/33\"]\n{act}\n"),
            "3:16: bad source \"10.0.0.0/33\"",
        ),
        (
            format!("[[rule]]\nname = \"a\"\nmatch.transport = \"sctp\"\n{act}\n"),
            "3:19: unknown transport \"sctp\"",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"reject\", code = 302 }\n".into(),
            "3:36: SIP code 302 out of range",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"reject\", code = 403, h323_cause = 200 }\n"
                .into(),
            "3:54: H.323 cause 200 out of range",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"room\", room = \"r-{nope}\" }\n".into(),
            "3:34: unknown name {nope} in template \"r-{nope}\"",
        ),
        (
            format!("[[rule]]\nname = \"a\"\ntransform = [{{ type = \"e164\", country = \"XX\" }}]\n{act}\n"),
            "3:41: unknown country \"XX\"",
        ),
        (
            format!("[[rule]]\nname = \"a\"\n{act}\n\n[[rule]]\nname = \"a\"\n{act}\n"),
            "6:8: duplicate rule name \"a\" (first defined at ",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"room\", room = \"r\", code = 403 }\n".into(),
            "3:46: `code` does not apply to action type \"room\"",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"forward\" }\n".into(),
            "3:19: unknown action type \"forward\"",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\ntimeout = \"soon\"\nlookup = { type = \"static\", pins = {} }\n".into(),
            "5:11: bad timeout \"soon\"",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlookup = { type = \"static\", pins = { \"12\" = \"r\" } }\n".into(),
            "5:38: PIN \"12\": want 4 to 10 digits",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlookup = { type = \"roomkit\", url = \"https://v\" }\n".into(),
            "5:10: lookup needs `token` or `token_env`",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\n".into(),
            "3:1: action \"pin\" needs `lookup`",
        ),
        ("[[rule]]\nname = \"a\"\n".into(), "1:1: missing field `action`"),
        (
            format!("[[rule]]\nname = \"a\"\nmatch.trunk = []\n{act}\n"),
            "3:15: empty list",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"room\", room = \"{x\" }\n".into(),
            "3:34: template \"{x\": unclosed '{'",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"dial_out\", target = \"sip:x@y\", protocol = \"iax\" }\n".into(),
            "3:62: unknown protocol \"iax\"",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nmin_digits = 8\nmax_digits = 6\nlookup = { type = \"static\", pins = {} }\n".into(),
            "5:14: min_digits (8) is above max_digits (6)",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlanguage = \"de\"\nlookup = { type = \"static\", pins = {} }\n".into(),
            "5:12: unknown language \"de\"",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlookup = { type = \"static\", pins = {}, url = \"https://x\" }\n".into(),
            "5:46: `url` does not apply to lookup type \"static\"",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlookup = { type = \"roomkit\", url = \"ftp://x\", token = \"t\" }\n".into(),
            "5:36: bad url \"ftp://x\"",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlookup = { type = \"livekit_dispatch\", url = \"https://lk\", api_key = \"k\", api_secret = \"s\", api_secret_env = \"S\" }\n".into(),
            "5:109: give `api_secret` or `api_secret_env`, not both",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlookup = { type = \"roomkit\", url = \"https://v\", token = \"\" }\n".into(),
            "5:57: empty `token`",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlookup = { type = \"livekit_dispatch\", url = \"https://lk\", api_key = \" \", api_secret_env = \"S\" }\n".into(),
            "5:69: empty `api_key`",
        ),
        (
            format!("[[rule]]\nname = \"a\"\nmatch.called = '(?P<number>\\d+)'\n{act}\n"),
            "3:16: capture name \"number\" is a built-in variable ({number}): choose another",
        ),
        (
            format!("[[rule]]\nname = \"a\"\nmatch.called = '(?P<n>\\d+)'\nmatch.calling = '(?P<n>\\d+)'\n{act}\n"),
            "4:17: capture name \"n\" is already used by another condition",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"reject\", code = 403, reason = \"No\\r\\nVia: x\" }\n".into(),
            "3:50: the reason must be one line of text",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"room\", room = \"tel {called}\" }\n".into(),
            "3:34: room template \"tel {called}\" holds ' ': room names are letters, digits, - _ .",
        ),
        (
            format!("[[rule]]\nname = \"a\"\naction = {{ type = \"room\", room = \"{}\" }}\n", "r".repeat(65)),
            "3:34: invalid room name \"rrrrr",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"dial_out\", target = \"sip:x@y\", room = \"a/{called}\" }\n".into(),
            "3:58: room template \"a/{called}\" holds '/'",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nlookup = { type = \"ldap\" }\n".into(),
            "5:19: unknown lookup type \"ldap\"",
        ),
        (
            format!("[[rule]]\nname = \"a\"\ntransform = [{{ type = \"strip_prefix\" }}]\n{act}\n"),
            "3:14: transform \"strip_prefix\" needs `prefix`",
        ),
        (
            format!("[[rule]]\nname = \"a\"\ntransform = [{{ type = \"add_prefix\", prefix = \"1\", country = \"FR\" }}]\n{act}\n"),
            "3:61: `country` does not apply to transform type \"add_prefix\"",
        ),
        (
            format!("[[rule]]\nname = \"a\"\ntransform = [{{ type = \"replace\", pattern = '[', with = \"\" }}]\n{act}\n"),
            "3:44: bad regex \"[\"",
        ),
        (
            format!("[[rule]]\nname = \"a\"\ntransform = [{{ type = \"upper\" }}]\n{act}\n"),
            "3:23: unknown transform type \"upper\"",
        ),
        (
            format!("[[rule]]\nname = \" \"\n{act}\n"),
            "2:8: rule name is empty",
        ),
        (
            format!("[[rule]]\nname = \"a\"\nmatch.headers = {{ \"X-Ok\" = 'a', \"X Room\" = 'b' }}\n{act}\n"),
            "3:33: bad header name \"X Room\"",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"room\", room = \"r\", attributes = { \"\" = \"v\" } }\n".into(),
            "3:54: empty attribute name",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"dial_out\", target = \"{called}@pstn\" }\n".into(),
            "3:40: dial_out target \"{called}@pstn\" must start with sip: or sips: or tel: for protocol sip",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"dial_out\", target = \"sip:{called}@pstn\", protocol = \"h323\" }\n".into(),
            "3:40: dial_out target \"sip:{called}@pstn\" must start with h323: for protocol h323",
        ),
        (
            format!("[[rule]]\nname = \"a\"\ntransform = [{{ type = \"strip_prefix\", prefix = \"0\", strict = true }}]\n{act}\n"),
            "3:62: `strict` does not apply to transform type \"strip_prefix\"",
        ),
        (
            "[[rule]]\nname = \"a\"\naction = { type = \"reject\", code = 403, hash_terminates = true }\n".into(),
            "3:59: `hash_terminates` does not apply to action type \"reject\"",
        ),
        (
            "[[rule]]\nname = \"a\"\n[rule.action]\ntype = \"pin\"\nhash_terminates = \"yes\"\nlookup = { type = \"static\", pins = {} }\n".into(),
            "5:19: invalid type: string \"yes\", expected a boolean",
        ),
    ];
    let mut failed = Vec::new();
    for (src, want) in cases {
        let got = first_error(&src);
        if !got.starts_with(want) {
            failed.push(format!("{src}\nwant {want}\ngot  {got}\n"));
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}

#[test]
fn a_set_loads_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("a.toml");
    let bad = dir.path().join("b.toml");
    std::fs::write(
        &good,
        "[[rule]]\nname = \"a\"\naction = { type = \"room\", room = \"r\" }\n",
    )
    .expect("write");
    std::fs::write(&bad, "[[rule]]\nname = 1\n").expect("write");
    let e = Dialplan::load_files(&[good.clone(), bad.clone()]).expect_err("refused");
    assert_eq!(e.diagnostics.len(), 1);
    assert!(
        e.to_string()
            .starts_with(&format!("{}:2:8: ", bad.display())),
        "{e}"
    );
    let missing = dir.path().join("missing.toml");
    let e = Dialplan::load_files(&[good.clone(), missing.clone()]).expect_err("refused");
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot read", missing.display())));
    assert_eq!(Dialplan::load_files(&[good]).map(|p| p.rule_count()), Ok(1));
}

#[test]
fn shipped_dialplans_pass_their_expectations() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let (out, code) = cli::check(&[root.join("dialplans")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");
    // The default directory is the one given to `run` when no path is.
    let cmd = cli::DialplanCommand::Check { paths: Vec::new() };
    assert!(cmd.needs_default_dir());
    assert_eq!(cli::run(&cmd, &root.join("dialplans")), (out, 0));
    let (out, code) = cli::run(&cmd, &root.join("tests/data/dialplan/bad"));
    assert_eq!(code, 1, "{out}");
    assert!(out.ends_with("refused: 8 errors\n"), "{out}");
    let (out, code) = cli::test(
        &root.join("dialplans/tests/examples.test.toml"),
        &root.join("dialplans"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(" passed, 0 failed") && !out.contains("FAIL"),
        "{out}"
    );
}

#[test]
fn test_command_reports_failures() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("p.toml"),
        "[[rule]]\nname = \"a\"\nmatch.called = 'x'\naction = { type = \"room\", room = \"r\" }\n\n\
         [[rule]]\nname = \"p\"\nmatch.called = 'p'\naction = { type = \"pin\", lookup = { type = \"static\", pins = { \"1234\" = \"board\" } } }\n",
    )
    .expect("write");
    let cases = dir.path().join("cases.test");
    std::fs::write(
        &cases,
        "[[case]]\nname = \"right\"\nto = \"sip:x@h\"\nexpect = { room = \"r\", rule = \"a\" }\n\n\
         [[case]]\nname = \"wrong room\"\nto = \"sip:x@h\"\nexpect = { room = \"s\" }\n\n\
         [[case]]\nname = \"wrong kind\"\nto = \"sip:y@h\"\nexpect = { reject = 403 }\n\n\
         [[case]]\nname = \"pin ok\"\nto = \"sip:p@h\"\nheaders = [\"X-PIN: 1234\"]\nexpect = { pin_room = \"board\" }\n\n\
         [[case]]\nname = \"pin unknown\"\nto = \"sip:p@h\"\nheaders = [\"X-PIN: 9999\"]\nexpect = { pin_room = \"board\" }\n\n\
         [[case]]\nname = \"pin not carried\"\nto = \"sip:p@h\"\nexpect = { pin_room = \"board\" }\n\n\
         [[case]]\nname = \"two outcomes\"\nto = \"sip:p@h\"\nexpect = { pin = true, room = \"board\" }\n",
    )
    .expect("write");
    let (out, code) = cli::test(&cases, dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ok   right"), "{out}");
    assert!(out.contains("FAIL wrong room"), "{out}");
    assert!(
        out.contains(":6:1: expected room \"s\", got room \"r\""),
        "{out}"
    );
    assert!(
        out.contains("expected reject 403, got no rule matched"),
        "{out}"
    );
    assert!(out.contains("ok   pin ok"), "{out}");
    assert!(
        out.contains("expected pin, static lookup → room \"board\", got pin, no static room"),
        "{out}"
    );
    assert!(out.contains("FAIL pin not carried"), "{out}");
    assert!(
        out.contains("FAIL two outcomes\n     ") && out.contains("expect needs exactly one of"),
        "{out}"
    );
    assert!(out.ends_with("2 passed, 5 failed\n"), "{out}");
}

#[test]
fn prompt_language_from_accept_language() {
    let action = |language| PinAction {
        language,
        min_digits: 4,
        max_digits: 6,
        hash_terminates: true,
        timeout: Duration::from_secs(10),
        attempts: 3,
        pin_header: true,
        pin_in_uri: false,
        lookup: PinLookup::Static(Arc::default()),
    };
    let cases: &[(PromptLanguage, &[&str], PromptLanguage)] = &[
        (PromptLanguage::Fr, &["en"], PromptLanguage::Fr),
        (PromptLanguage::En, &["fr"], PromptLanguage::En),
        (PromptLanguage::Auto, &[], PromptLanguage::En),
        (PromptLanguage::Auto, &["fr-FR"], PromptLanguage::Fr),
        (
            PromptLanguage::Auto,
            &["de, fr;q=0.5, en;q=0.4"],
            PromptLanguage::Fr,
        ),
        (
            PromptLanguage::Auto,
            &["fr;q=0.3, EN-gb;q=0.8"],
            PromptLanguage::En,
        ),
        (PromptLanguage::Auto, &["en, fr"], PromptLanguage::En),
        (PromptLanguage::Auto, &["de", "fr"], PromptLanguage::Fr),
        (PromptLanguage::Auto, &["fr;q=0, de"], PromptLanguage::En),
        (
            PromptLanguage::Auto,
            &["es;q=1, fr;q=bad"],
            PromptLanguage::Fr,
        ),
    ];
    for (configured, headers, want) in cases {
        let mut req = RouteRequest::sip("sip:r@gw", "");
        for h in *headers {
            req.headers.push(("Accept-Language".into(), h.to_string()));
        }
        assert_eq!(
            action(*configured).prompt_language(&req),
            *want,
            "{configured} {headers:?}"
        );
    }
}

#[test]
fn pin_carried_by_the_call() {
    let pin = |header: bool, uri: bool| PinAction {
        language: PromptLanguage::Auto,
        min_digits: 4,
        max_digits: 6,
        hash_terminates: true,
        timeout: Duration::from_secs(10),
        attempts: 3,
        pin_header: header,
        pin_in_uri: uri,
        lookup: PinLookup::Static(Arc::default()),
    };
    let req = |to: &str, xpin: Option<&str>| {
        let mut r = RouteRequest::sip(to, "");
        if let Some(p) = xpin {
            r.headers.push(("x-pin".into(), p.into()));
        }
        r
    };
    let cases = [
        (
            pin(true, false),
            req("sip:reception@gw", Some(" 1234 ")),
            Some("1234"),
        ),
        (
            pin(false, false),
            req("sip:reception@gw", Some("1234")),
            None,
        ),
        (pin(true, false), req("sip:reception@gw", Some("12")), None),
        (
            pin(true, false),
            req("sip:reception@gw", Some("12a4")),
            None,
        ),
        (
            pin(true, true),
            req("sip:board*5678@gw", None),
            Some("5678"),
        ),
        (pin(true, true), req("sip:567890@gw", None), Some("567890")),
        (pin(true, true), req("sip:5678901@gw", None), None),
        (pin(true, false), req("sip:board*5678@gw", None), None),
        (
            pin(true, true),
            req("sip:board*5678@gw", Some("1111")),
            Some("1111"),
        ),
    ];
    for (p, r, want) in cases {
        assert_eq!(p.signalled_pin(&r).as_deref(), want, "{r:?} {p:?}");
    }
}

proptest::proptest! {
    /// Whatever is dialled, routing through the shipped plan and an E.164 step decides
    /// something (no panic, and a room outcome is always a valid room name).
    #[test]
    fn routing_never_panics(to in "\\PC{0,40}", from in "[+0-9a-z@.:]{0,20}", h323 in proptest::bool::ANY) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let shipped = Dialplan::load_dir(&root.join("dialplans")).expect("shipped plan loads");
        let mut req = RouteRequest::sip(&to, &from);
        if h323 {
            req.protocol = Protocol::H323;
        }
        req.trunk = Some("pstn-ovh".into());
        let r = shipped.route(&req);
        if let Outcome::Room(t) = &r.outcome {
            proptest::prop_assert!(crate::http::valid_room_name(&t.room));
        }
        for strict in [true, false] {
            let t = transform::Transform::E164 { country: transform::country("FR").expect("FR"), strict };
            let _ = t.apply(&to);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever a file holds, loading gives a plan or located errors, never a panic.
    #[test]
    fn loading_never_panics(
        body in "(\\[\\[rule\\]\\]\nname = \"[a-z]{0,3}\"\n)?(match\\.called = '\\PC{0,8}'\n)?(action = \\{ type = \"(room|pin|reject)\", (room|code) = (\"\\PC{0,6}\"|[0-9]{1,4}) \\}\n)?\\PC{0,20}",
    ) {
        let (_dir, r) = load("p.toml", &body);
        if let Err(e) = r {
            for d in &e.diagnostics {
                proptest::prop_assert!(d.line >= 1 && d.col >= 1, "{d}");
            }
        }
    }
}

#[test]
fn srtp_on_the_route() {
    use crate::media::negotiated::SrtpPolicy;
    let (dir, p) = plan(
        "[[rule]]\nname = \"secure\"\nmatch.called = 'sec-(?P<r>[a-z]+)'\n\
         action = { type = \"room\", room = \"{r}\", srtp = \"required\" }\n\n\
         [[rule]]\nname = \"pin\"\nmatch.called = 'pin'\n\
         action = { type = \"pin\", srtp = \"off\", lookup = { type = \"static\", pins = { \"1234\" = \"board\" } } }\n\n\
         [[rule]]\nname = \"plain\"\nmatch.called = '[a-z]+'\naction = { type = \"room\", room = \"{called}\" }\n\n\
         [[rule]]\nname = \"no\"\naction = { type = \"reject\", code = 403 }\n",
    );
    // (called, the route's srtp)
    let cases = [
        ("sec-board", Some(SrtpPolicy::Required)),
        ("pin", Some(SrtpPolicy::Off)),
        ("board", None),
        ("123", None),
    ];
    for (called, want) in cases {
        let r = p.route(&RouteRequest::sip(&format!("sip:{called}@gw"), "sip:a@b"));
        assert_eq!(r.srtp, want, "{called}");
    }
    let req = RouteRequest::sip("sip:sec-board@gw", "sip:a@b");
    let trace = cli::trace(&req, &p.route(&req));
    assert!(
        trace.contains("action: room \"board\"\n  srtp: required (overrides [sip] srtp)\n"),
        "{trace}"
    );
    let req = RouteRequest::sip("sip:board@gw", "sip:a@b");
    assert!(!cli::trace(&req, &p.route(&req)).contains("srtp"));

    let cases = dir.path().join("cases.test");
    std::fs::write(
        &cases,
        "[[case]]\nname = \"secure\"\nto = \"sip:sec-board@h\"\nexpect = { room = \"board\", srtp = \"required\" }\n\n\
         [[case]]\nname = \"default\"\nto = \"sip:board@h\"\nexpect = { room = \"board\", srtp = \"default\" }\n\n\
         [[case]]\nname = \"wrong\"\nto = \"sip:board@h\"\nexpect = { room = \"board\", srtp = \"required\" }\n",
    )
    .expect("write");
    let (out, code) = cli::test(&cases, dir.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ok   secure") && out.contains("ok   default"),
        "{out}"
    );
    assert!(
        out.contains("expected srtp \"required\", the route has \"default\""),
        "{out}"
    );

    let room = |extra: &str| {
        format!("[[rule]]\nname = \"a\"\naction = {{ type = \"room\", room = \"r\"{extra} }}\n")
    };
    assert_eq!(
        first_error(&room(", srtp = \"mandatory\"")),
        "3:46: unknown srtp policy \"mandatory\" (off, optional, required)"
    );
    assert_eq!(
        first_error(
            "[[rule]]\nname = \"a\"\naction = { type = \"reject\", code = 403, srtp = \"off\" }\n"
        ),
        "3:48: `srtp` does not apply to action type \"reject\""
    );
}
