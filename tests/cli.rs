//! The `jonction` command line: version, token, check-config, and configuration errors.

use std::process::Command;

use jonction::token::Keys;

fn jonction(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jonction"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("jonction runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version() {
    let (code, out, _) = jonction(&["version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("jonction {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn token_is_verifiable_with_the_configured_keys() {
    let env = [
        ("JONCTION_LIVEKIT__API_KEY", "APItest"),
        ("JONCTION_LIVEKIT__API_SECRET", "test-secret-123"),
    ];
    let (code, out, err) = jonction(
        &[
            "token",
            "--room",
            "demo",
            "--identity",
            "alice",
            "--name",
            "Alice",
            "--kind",
            "sip",
            "--ttl",
            "10m",
            "--no-subscribe",
            "--attribute",
            "sip.callID=abc",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let g = Keys::new("APItest", "test-secret-123")
        .verify_join(out.trim())
        .expect("valid token");
    assert_eq!(
        (g.room.as_str(), g.identity.as_str(), g.name.as_str()),
        ("demo", "alice", "Alice")
    );
    assert_eq!(g.kind, "sip");
    assert!(g.can_publish && !g.can_subscribe);
    assert_eq!(
        g.attributes.get("sip.callID").map(String::as_str),
        Some("abc")
    );
    assert!(Keys::new("APItest", "other-secret")
        .verify_join(out.trim())
        .is_err());

    let (code, _, err) = jonction(
        &[
            "token",
            "--room",
            "demo",
            "--identity",
            "a",
            "--ttl",
            "soon",
        ],
        &env,
    );
    assert_ne!(code, 0);
    assert!(err.contains("--ttl"), "{err}");
}

#[test]
fn check_config_names_bad_keys_and_their_origin() {
    let dir = std::env::temp_dir().join(format!("jonction-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.toml");
    std::fs::write(&good, "[http]\nlisten = \"127.0.0.1:7999\"\n").expect("write");
    let (code, out, err) = jonction(&["check-config", "--config", good.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("configuration ok") && out.contains("7999"),
        "{out}"
    );

    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[rooms]\nudp_prot = 1\n").expect("write");
    let (code, _, err) = jonction(&["check-config", "--config", typo.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("rooms.udp_prot") && err.contains("typo.toml"),
        "{err}"
    );

    let (code, _, err) = jonction(
        &["check-config"],
        &[("JONCTION_ROOMS__EMPTY_TIMEOUT", "forever")],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("rooms.empty_timeout") && err.contains("JONCTION_ROOMS__EMPTY_TIMEOUT"),
        "{err}"
    );

    // The sample configuration shipped for systemd is valid.
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/jonction.toml");
    let (code, _, err) = jonction(&["check-config", "--config", sample], &[]);
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `jonction` for each argument list from the crate root and compares the transcript with
/// `tests/data/dialplan/<golden>` (`UPDATE_GOLDEN=1` rewrites it).
fn golden(golden: &str, runs: &[&[&str]]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut transcript = String::new();
    for args in runs {
        let out = Command::new(env!("CARGO_BIN_EXE_jonction"))
            .current_dir(root)
            .args(*args)
            .output()
            .expect("jonction runs");
        transcript.push_str(&format!("$ jonction {}\n", args.join(" ")));
        transcript.push_str(&String::from_utf8_lossy(&out.stdout));
        transcript.push_str(&String::from_utf8_lossy(&out.stderr));
        transcript.push_str(&format!("[exit {}]\n\n", out.status.code().unwrap_or(-1)));
    }
    let path = format!("{root}/tests/data/dialplan/{golden}");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &transcript).expect("write golden");
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        transcript, want,
        "output differs from {path} (UPDATE_GOLDEN=1 to rewrite it)"
    );
}

#[test]
fn dialplan_check_golden() {
    golden(
        "check.golden",
        &[
            &["dialplan", "check"],
            &["dialplan", "check", "dialplans/10-rooms.toml"],
            &["dialplan", "check", "tests/data/dialplan/bad"],
            &[
                "dialplan",
                "check",
                "dialplans",
                "tests/data/dialplan/bad/20-rules.toml",
            ],
            &["dialplan", "check", "tests/data/dialplan/missing.toml"],
        ],
    );
}

#[test]
fn dialplan_route_golden() {
    golden(
        "route.golden",
        &[
            &[
                "dialplan",
                "route",
                "--to",
                "sip:demo@gw.example.org",
                "--from",
                "sip:alice@example.org",
            ],
            &[
                "dialplan",
                "route",
                "--to",
                "sip:demo@gw",
                "--from",
                "tel:+33899123456",
            ],
            &[
                "dialplan",
                "route",
                "--to",
                "0187654321",
                "--header",
                "X-PIN: 1234567890",
            ],
            &[
                "dialplan",
                "route",
                "--to",
                "tel:+33187654321",
                "--header",
                "X-PIN: 9999999999",
            ],
            &[
                "dialplan",
                "route",
                "--to",
                "sip:+33187654321@gw",
                "--from",
                "tel:+33612345678",
                "--header",
                "Accept-Language: de, fr;q=0.8, en;q=0.5",
            ],
            &[
                "dialplan",
                "route",
                "--to",
                "h323:7001",
                "--from",
                "h323:7700",
                "--protocol",
                "h323",
            ],
            &["dialplan", "route", "--to", "tel:+33199001042"],
            &[
                "dialplan",
                "route",
                "--to",
                "sip:0140000000@ovh",
                "--trunk",
                "pstn-ovh",
                "--source",
                "192.0.2.1",
                "--transport",
                "tls",
            ],
            &["dialplan", "route", "--to", "sip:123@gw"],
            &[
                "dialplan",
                "route",
                "--to",
                "sip:demo@gw",
                "--protocol",
                "q931",
            ],
            &[
                "dialplan",
                "route",
                "--to",
                "sip:demo@gw",
                "--dir",
                "tests/data/dialplan/bad",
            ],
        ],
    );
}

#[test]
fn dialplan_test_shipped_expectations() {
    let (code, out, err) = jonction(
        &[
            "dialplan",
            "test",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/dialplans/tests/examples.test.toml"
            ),
            "--dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/dialplans"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
}

#[test]
fn dialplan_default_dir_comes_from_the_configuration() {
    let root = env!("CARGO_MANIFEST_DIR");
    let bad = format!("{root}/tests/data/dialplan/bad");
    // From the environment: the bad set is checked, and refused.
    let (code, out, err) = jonction(
        &["dialplan", "check"],
        &[("JONCTION_DIALPLAN__DIR", bad.as_str())],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.ends_with("refused: 8 errors\n"), "{err}");
    // From a configuration file.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("jonction.toml");
    std::fs::write(
        &cfg,
        format!("[dialplan]\ndir = \"{root}/dialplans\"\nreload_interval = \"2s\"\n"),
    )
    .expect("write");
    let cfg = cfg.to_string_lossy().into_owned();
    let (code, out, err) = jonction(&["-c", &cfg, "dialplan", "check"], &[]);
    assert_eq!(
        (code, out.as_str()),
        (0, "ok: 6 rules in 4 files\n"),
        "{err}"
    );
    let (code, out, err) = jonction(
        &["-c", &cfg, "dialplan", "route", "--to", "sip:demo@gw"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("action: room \"demo\""), "{out}");
    // An explicit path wins, and a broken configuration is then not even read.
    let (code, out, err) = jonction(
        &["dialplan", "check", &format!("{root}/dialplans")],
        &[("JONCTION_DIALPLAN__DRI", "x")],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "ok: 6 rules in 4 files\n"),
        "{err}"
    );
    let (code, _, err) = jonction(&["dialplan", "check"], &[("JONCTION_DIALPLAN__DRI", "x")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("dialplan.dri"), "{err}");
}

#[test]
fn dialplan_test_failures_are_reported_on_stdout_with_exit_1() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = dir.path().join("mine.test.toml");
    std::fs::write(
        &cases,
        "[[case]]\nname = \"demo\"\nto = \"sip:demo@gw\"\nexpect = { room = \"demo\" }\n\n\
         [[case]]\nname = \"wrong\"\nto = \"sip:123@gw\"\nexpect = { room = \"x\" }\n",
    )
    .expect("write");
    let (code, out, err) = jonction(
        &[
            "dialplan",
            "test",
            &cases.to_string_lossy(),
            "--dir",
            &format!("{root}/dialplans"),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err, "");
    assert!(out.starts_with("ok   demo\nFAIL wrong\n"), "{out}");
    assert!(
        out.contains(":6:1: expected room \"x\", got no rule matched → 404 Not Found\n"),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 1 failed\n"), "{out}");
}
