//! The generated ASN.1 bindings (`jonction::h323::asn`) on real PDUs: every RAS message,
//! every H.225.0 H323-UserInformation (unwrapped from Q.931 with jonction's own module) and
//! every H.245 MultimediaSystemControlMessage of nDPI's capture (tests/data/h323/ndpi, see its
//! README), plus a generated fastStart Setup. Truncated and garbage inputs must give errors,
//! never panics.

use std::path::{Path, PathBuf};

use jonction::h323::asn;
use jonction::h323::asn::h323_messages::{H323UserInformation, RasMessage};
use jonction::h323::asn::multimedia_system_control::MultimediaSystemControlMessage;
use jonction::h323::q931::Message;
use jonction::h323::tpkt::TpktReader;

fn hex(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/h323")
        .join(name)
}

/// The fixtures of `ndpi/` whose name contains `part`, sorted by frame.
fn ndpi(part: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(data("ndpi"))
        .expect("ndpi dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .filter(|p| p.to_string_lossy().contains(part))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let name = p
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, hex(p))
        })
        .collect()
}

fn ras_files() -> Vec<(String, Vec<u8>)> {
    let mut all = ndpi("Re");
    all.extend(ndpi("Confirm"));
    all.sort();
    all.dedup();
    all
}

/// The User-User IE payload (H323-UserInformation) of a Q.931 message.
fn uuie(q931: &[u8]) -> Option<Vec<u8>> {
    Message::decode(q931).ok()?.user_user().map(<[u8]>::to_vec)
}

/// Decodes `pdu` as `T` and re-encodes it; the re-encoding must decode to the same value.
/// `Ok(identical)` tells whether the re-encoding is byte-identical.
fn round_trip<T>(pdu: &[u8]) -> Result<bool, String>
where
    T: asn::rasn::Decode + asn::rasn::Encode + std::fmt::Debug + PartialEq,
{
    let value: T = asn::rasn::aper::decode(pdu).map_err(|e| e.to_string())?;
    let again = asn::rasn::aper::encode(&value).map_err(|e| e.to_string())?;
    let back: T = asn::rasn::aper::decode(&again).map_err(|e| format!("re-decode: {e}"))?;
    if back != value {
        return Err(format!("re-encoding decodes to {back:?}, not {value:?}"));
    }
    if again != pdu {
        let at = again.iter().zip(pdu).take_while(|(a, b)| a == b).count();
        println!(
            "  first difference at byte {at} (ours {} bytes, theirs {})",
            again.len(),
            pdu.len()
        );
    }
    Ok(again == pdu)
}

/// PDUs sent by endpoints of older versions than our modules (H.225.0 v2–v4, H.245 before
/// v15) whose extension-addition bitmaps are shorter than ours: X.691 §19.8 has an encoder
/// flag every addition *its* version knows, so our re-encoding of them (pycrate's too) has
/// longer bitmaps. All others must re-encode byte-identically.
const OLDER_VERSION: &[&str] = &[
    "frame06", "frame10", "frame14", "frame18", "frame47", "frame48",
    "frame66", // H.225.0 v2-v4
    "frame41", "frame42", // OpenLogicalChannelAck without the later H.245 additions
    "frame59", "frame61", "frame62", "frame63", "frame64", "frame67", "frame68", "frame69",
    "frame70", // callgen323 and OpenH323 Gatekeeper: H.225.0 v4 RAS
];

/// Asserts that every PDU decoded and that the ones not in [`OLDER_VERSION`] are identical.
fn assert_round_trips(
    what: &str,
    pdus: &[(String, Vec<u8>)],
    decoded: &[String],
    identical: &[String],
) {
    assert_eq!(decoded.len(), pdus.len(), "every {what} PDU decodes");
    for (name, _) in pdus {
        let older = OLDER_VERSION.iter().any(|f| name.starts_with(f));
        assert!(
            older || identical.contains(name),
            "{what} {name} does not re-encode byte-identically"
        );
    }
}

/// Runs `check` on each PDU, prints a line per PDU and returns (decoded, identical).
fn survey(
    what: &str,
    pdus: &[(String, Vec<u8>)],
    check: impl Fn(&[u8]) -> Result<bool, String>,
) -> (Vec<String>, Vec<String>) {
    let (mut decoded, mut identical) = (Vec::new(), Vec::new());
    for (name, pdu) in pdus {
        match check(pdu) {
            Ok(same) => {
                println!("{what} {name}: decoded, re-encode identical: {same}");
                decoded.push(name.clone());
                if same {
                    identical.push(name.clone());
                }
            }
            Err(e) => println!("{what} {name}: FAILED: {e}"),
        }
    }
    println!(
        "{what}: decoded {}/{}, identical {}",
        decoded.len(),
        pdus.len(),
        identical.len()
    );
    (decoded, identical)
}

#[test]
fn setup_faststart_round_trips() {
    let mut tpkt = TpktReader::new(65536);
    tpkt.push(&hex(&data("generated-setup-faststart.hex")));
    let q931 = tpkt.next_pdu().expect("tpkt").expect("one pdu");
    let uuie = uuie(&q931).expect("user-user IE");
    assert_eq!(round_trip::<H323UserInformation>(&uuie), Ok(true));
}

#[test]
fn ndpi_call_signalling() {
    let pdus: Vec<_> = ndpi("q931")
        .into_iter()
        .filter(|(n, _)| !n.starts_with("frame65"))
        .map(|(n, q)| (n, uuie(&q).expect("user-user IE")))
        .collect();
    assert!(!pdus.is_empty());
    let (decoded, identical) = survey("H.225", &pdus, round_trip::<H323UserInformation>);
    assert_round_trips("H.225", &pdus, &decoded, &identical);
}

#[test]
fn ndpi_malformed_setup_is_an_error() {
    let (_, q931) = &ndpi("frame65-q931")[0];
    // Q.931 itself may or may not accept it; if it does, the UUIE must fail to decode.
    if let Some(uuie) = uuie(q931) {
        assert!(asn::rasn::aper::decode::<H323UserInformation>(&uuie).is_err());
    }
}

#[test]
fn ndpi_h245() {
    let pdus = ndpi("h245");
    assert_eq!(pdus.len(), 12);
    let (decoded, identical) = survey("H.245", &pdus, round_trip::<MultimediaSystemControlMessage>);
    assert_round_trips("H.245", &pdus, &decoded, &identical);
}

#[test]
fn ndpi_ras() {
    let pdus = ras_files();
    assert_eq!(pdus.len(), 15);
    let (decoded, identical) = survey("RAS", &pdus, round_trip::<RasMessage>);
    assert_round_trips("RAS", &pdus, &decoded, &identical);
}

/// Every prefix, and a few bit-flipped copies, of each fixture: errors are fine, panics not.
#[test]
fn truncated_and_garbage_never_panic() {
    let mut inputs: Vec<Vec<u8>> = ras_files().into_iter().map(|(_, p)| p).collect();
    inputs.extend(ndpi("h245").into_iter().map(|(_, p)| p));
    inputs.extend(ndpi("q931").into_iter().filter_map(|(_, q)| uuie(&q)));
    for pdu in &inputs {
        for len in 0..pdu.len() {
            let cut = &pdu[..len];
            let _ = asn::rasn::aper::decode::<RasMessage>(cut);
            let _ = asn::rasn::aper::decode::<H323UserInformation>(cut);
            let _ = asn::rasn::aper::decode::<MultimediaSystemControlMessage>(cut);
        }
        for i in 0..pdu.len() {
            let mut bad = pdu.clone();
            bad[i] ^= 0xa5;
            let _ = asn::rasn::aper::decode::<RasMessage>(&bad);
            let _ = asn::rasn::aper::decode::<MultimediaSystemControlMessage>(&bad);
        }
    }
}
