//! One RAS datagram (H.225.0 RasMessage, aligned PER); a decoded value is re-encoded
//! (errors are allowed, panics are not).
#![no_main]

use jonction::h323::asn::h323_messages::RasMessage;
use jonction::h323::asn::rasn;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = rasn::aper::decode::<RasMessage>(data) {
        let _ = rasn::aper::encode(&value);
    }
});
