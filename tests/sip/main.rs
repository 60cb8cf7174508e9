//! RFC 4475 torture messages: each gets the verdict the RFC prescribes from jonction's SIP
//! message layer (the status code of the response, or silent discard for bad responses).

use jonction::sip::validate::{check_datagram, rejection, Verdict, GATEWAY};

/// Expected outcome per message: a status code we answer, `OK` (processed: a request that
/// passes validation, or a response that matches transactions), or `DROP` (silently discarded).
const OK: u16 = 0;
const DROP: u16 = 1;
const EXPECTED: &[(&str, u16)] = &[
    ("wsinv", OK),
    ("intmeth", 501),
    ("esc01", OK),
    ("escnull", 405), // a valid REGISTER; jonction is not a registrar
    ("esc02", 501),
    ("lwsdisp", OK),
    ("longreq", OK),
    ("dblreq", 405), // the REGISTER is processed, the trailing INVITE ignored
    ("semiuri", OK),
    ("transports", OK),
    ("mpart01", 405), // a valid MESSAGE, framed by Content-Length
    ("unreason", OK),
    ("noreason", OK),
    ("badinv01", 400),
    ("clerr", 400),
    ("ncl", 400),
    ("scalar02", 400),
    ("scalarlg", DROP),
    ("quotbal", 400),
    ("ltgtruri", 400),
    ("lwsruri", 400),
    ("lwsstart", 400),
    ("trws", 400),
    ("escruri", 400),
    ("baddate", OK), // Date does not matter to us: ignored, as the RFC allows
    ("regbadct", 400),
    ("badaspec", 400),
    ("baddn", 400),
    ("badvers", 505),
    ("mismatch01", 400),
    ("mismatch02", 501),
    ("bigcode", DROP),
    ("badbranch", 400),
    ("insuf", 400),
    ("unkscm", 416),
    ("novelsc", 416),
    ("unksm2", 405), // REGISTER to a non-registrar
    ("bext01", 420),
    ("invut", 415),
    ("regaut01", 405),
    ("multi01", 400),
    ("mcl01", 400),
    ("bcast", OK),
    ("zeromf", OK), // an endpoint processes Max-Forwards: 0 normally
    ("cparam01", 405),
    ("cparam02", 405),
    ("regescrt", 405),
    ("sdp01", 406),
    ("inv2543", OK),
];

fn data(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/sip/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_torture_message_gets_its_verdict() {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sip/rfc4475/manifest.tsv"
    ))
    .expect("manifest");
    let names: Vec<&str> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(names.len(), 49);
    assert_eq!(EXPECTED.len(), 49);
    let mut wrong = Vec::new();
    for name in names {
        let want = EXPECTED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        let (got, why) = match check_datagram(&data(name), &GATEWAY) {
            Verdict::Request(_) | Verdict::Response(_) => (OK, String::new()),
            Verdict::Reject(head, r) => {
                // The rejection must be answerable: a response with the request's identity.
                if let Some(req) = head.as_ref() {
                    let resp = rejection(req, &r, "abc", "jonction.test");
                    let bytes = resp.to_bytes();
                    assert!(bytes.starts_with(format!("SIP/2.0 {}", r.status).as_bytes()));
                }
                (r.status, r.detail)
            }
            Verdict::Discard(why) => (DROP, why),
        };
        if got != want {
            wrong.push(format!("{name}: want {want}, got {got} ({why})"));
        }
    }
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
}

#[test]
fn rejections_carry_the_required_headers() {
    let Verdict::Reject(head, r) = check_datagram(&data("intmeth"), &GATEWAY) else {
        panic!("intmeth must be rejected");
    };
    let req = head.as_ref().as_ref().expect("head kept");
    let resp = rejection(req, &r, "t1", "jonction.test");
    assert!(resp.header("Allow").is_some_and(|a| a.contains("INVITE")));
    assert_eq!(resp.header("Call-ID"), req.header("Call-ID"));

    let Verdict::Reject(head, r) = check_datagram(&data("bext01"), &GATEWAY) else {
        panic!("bext01 must be rejected");
    };
    let resp = rejection(
        head.as_ref().as_ref().expect("head"),
        &r,
        "t2",
        "jonction.test",
    );
    let unsupported = resp.header("Unsupported").unwrap_or_default();
    assert!(unsupported.contains("nothingSupportsThis"), "{unsupported}");
}

#[test]
fn garbage_never_panics() {
    // Every prefix and a few mutations of every torture message: never a panic.
    for (name, _) in EXPECTED {
        let d = data(name);
        for cut in (0..d.len()).step_by(7) {
            let _ = check_datagram(&d[..cut], &GATEWAY);
        }
        let mut flipped = d.clone();
        for i in (0..flipped.len()).step_by(11) {
            flipped[i] ^= 0x5a;
        }
        let _ = check_datagram(&flipped, &GATEWAY);
    }
}
