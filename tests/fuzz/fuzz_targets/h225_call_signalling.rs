//! TCP bytes of an H.225.0 call-signalling connection: TPKT reassembly (the input is cut
//! into segments at the positions its first byte picks), each PDU decoded as Q.931 and its
//! User-User IE as a PER H323-UserInformation, re-encoded again (errors
//! are allowed, panics are not).
#![no_main]

use jonction::h323::asn::h323_messages::H323UserInformation;
use jonction::h323::asn::rasn;
use jonction::h323::q931::Message;
use jonction::h323::tpkt::TpktReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let mut tpkt = TpktReader::new(65_536);
    let segment = usize::from(cut).max(1);
    for chunk in stream.chunks(segment) {
        tpkt.push(chunk);
        loop {
            match tpkt.next_pdu() {
                Ok(Some(pdu)) => decode_q931(&pdu),
                Ok(None) => break,
                // A framing error ends the connection.
                Err(_) => return,
            }
        }
    }
});

fn decode_q931(pdu: &[u8]) {
    let Ok(message) = Message::decode(pdu) else {
        return;
    };
    let _ = message.called_number();
    let _ = message.calling_number();
    let _ = message.display();
    let _ = message.keypad();
    let _ = message.cause();
    if let Some(uuie) = message.user_user() {
        if let Ok(value) = rasn::aper::decode::<H323UserInformation>(uuie) {
            let _ = rasn::aper::encode(&value);
        }
    }
    let _ = message.encode();
}
