//! One H.245 MultimediaSystemControlMessage (aligned PER), as it arrives in a TPKT of the
//! H.245 connection or tunnelled in an H.225.0 h245Control; a decoded value is re-encoded
//! (errors are allowed, panics are not).
#![no_main]

use jonction::h323::asn::multimedia_system_control::MultimediaSystemControlMessage;
use jonction::h323::asn::rasn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = rasn::aper::decode::<MultimediaSystemControlMessage>(data) {
        let _ = rasn::aper::encode(&value);
    }
});
