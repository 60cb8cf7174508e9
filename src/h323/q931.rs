//! Q.931 as H.225.0 uses it on the call-signalling channel, sans-IO: the message header, the
//! information elements jonction reads or writes, and the User-User IE that carries the
//! H.225.0 `H323-UserInformation` (PER-encoded elsewhere).
//!
//! Decoding keeps every IE (unknown ones raw), so a message re-encodes byte for byte.

/// Q.931's protocol discriminator.
pub const PROTOCOL_DISCRIMINATOR: u8 = 0x08;
/// The User-User IE's protocol discriminator for X.208/X.209 coded user information (H.225.0).
pub const UUIE_DISCRIMINATOR: u8 = 0x05;
/// Bearer capability for an audio call: ITU-T coding, speech (0x80); circuit mode, 64 kbit/s
/// (0x90); layer 1 H.221/H.242 (0xa5). Video calls say "unrestricted digital" with a rate.
pub const BEARER_SPEECH: [u8; 3] = [0x80, 0x90, 0xa5];

/// Message types (Q.931 §4.4, those H.225.0 uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 0x01
    Alerting,
    /// 0x02
    CallProceeding,
    /// 0x03
    Progress,
    /// 0x05
    Setup,
    /// 0x07
    Connect,
    /// 0x0d
    SetupAcknowledge,
    /// 0x5a
    ReleaseComplete,
    /// 0x62
    Facility,
    /// 0x6e
    Notify,
    /// 0x75
    StatusEnquiry,
    /// 0x7b
    Information,
    /// 0x7d
    Status,
    /// Anything else (answered with Status "message type non-existent" by the caller).
    Other(u8),
}

impl MessageType {
    /// The code.
    pub fn code(self) -> u8 {
        match self {
            MessageType::Alerting => 0x01,
            MessageType::CallProceeding => 0x02,
            MessageType::Progress => 0x03,
            MessageType::Setup => 0x05,
            MessageType::Connect => 0x07,
            MessageType::SetupAcknowledge => 0x0d,
            MessageType::ReleaseComplete => 0x5a,
            MessageType::Facility => 0x62,
            MessageType::Notify => 0x6e,
            MessageType::StatusEnquiry => 0x75,
            MessageType::Information => 0x7b,
            MessageType::Status => 0x7d,
            MessageType::Other(c) => c,
        }
    }

    /// The type of a code.
    pub fn from_code(c: u8) -> Self {
        [
            MessageType::Alerting,
            MessageType::CallProceeding,
            MessageType::Progress,
            MessageType::Setup,
            MessageType::Connect,
            MessageType::SetupAcknowledge,
            MessageType::ReleaseComplete,
            MessageType::Facility,
            MessageType::Notify,
            MessageType::StatusEnquiry,
            MessageType::Information,
            MessageType::Status,
        ]
        .into_iter()
        .find(|t| t.code() == c)
        .unwrap_or(MessageType::Other(c))
    }
}

/// Information element identifiers (Q.931 §4.5).
pub mod ie {
    /// Bearer capability.
    pub const BEARER_CAPABILITY: u8 = 0x04;
    /// Cause (Q.850).
    pub const CAUSE: u8 = 0x08;
    /// Call state.
    pub const CALL_STATE: u8 = 0x14;
    /// Progress indicator.
    pub const PROGRESS_INDICATOR: u8 = 0x1e;
    /// Notification indicator.
    pub const NOTIFICATION_INDICATOR: u8 = 0x27;
    /// Display (IA5 text).
    pub const DISPLAY: u8 = 0x28;
    /// Keypad facility (digits typed in Information).
    pub const KEYPAD: u8 = 0x2c;
    /// Signal.
    pub const SIGNAL: u8 = 0x34;
    /// Calling party number.
    pub const CALLING_PARTY_NUMBER: u8 = 0x6c;
    /// Called party number.
    pub const CALLED_PARTY_NUMBER: u8 = 0x70;
    /// User-user (2-byte length in H.225.0).
    pub const USER_USER: u8 = 0x7e;
}

/// One information element: single-octet ones (identifier ≥ 0x80) have an empty value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ie {
    /// Identifier.
    pub id: u8,
    /// Contents (after the length).
    pub value: Vec<u8>,
}

/// A Q.931 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The call reference value (15 bits).
    pub call_ref: u16,
    /// The call reference flag: set in messages sent by the side that did not allocate it.
    pub from_destination: bool,
    /// The message type.
    pub kind: MessageType,
    /// The information elements, in order.
    pub ies: Vec<Ie>,
}

/// Why bytes are not a Q.931 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Q931Error {
    /// Shorter than its header or an IE's length.
    #[error("truncated Q.931 message")]
    Truncated,
    /// Not protocol discriminator 0x08.
    #[error("protocol discriminator {0:#04x} is not Q.931")]
    Discriminator(u8),
    /// A call reference that is not 0 to 2 bytes (H.225.0 uses 2).
    #[error("call reference length {0}")]
    CallReference(u8),
}

impl Message {
    /// An empty message of `kind` on call reference `call_ref`.
    pub fn new(kind: MessageType, call_ref: u16, from_destination: bool) -> Self {
        Message {
            call_ref: call_ref & 0x7fff,
            from_destination,
            kind,
            ies: Vec::new(),
        }
    }

    /// Parses one message (a TPKT payload).
    pub fn decode(b: &[u8]) -> Result<Self, Q931Error> {
        let (&pd, rest) = b.split_first().ok_or(Q931Error::Truncated)?;
        if pd != PROTOCOL_DISCRIMINATOR {
            return Err(Q931Error::Discriminator(pd));
        }
        let (&crl, rest) = rest.split_first().ok_or(Q931Error::Truncated)?;
        let crl = crl & 0x0f;
        if crl > 2 {
            return Err(Q931Error::CallReference(crl));
        }
        let crv = rest.get(..usize::from(crl)).ok_or(Q931Error::Truncated)?;
        let rest = &rest[usize::from(crl)..];
        let (from_destination, call_ref) = match crv {
            [] => (false, 0),
            [a] => (a & 0x80 != 0, u16::from(a & 0x7f)),
            [a, c, ..] => (a & 0x80 != 0, u16::from_be_bytes([a & 0x7f, *c])),
        };
        let (&mt, mut rest) = rest.split_first().ok_or(Q931Error::Truncated)?;
        let mut ies = Vec::new();
        while let Some((&id, after)) = rest.split_first() {
            if id & 0x80 != 0 {
                ies.push(Ie {
                    id,
                    value: Vec::new(),
                });
                rest = after;
                continue;
            }
            let (len, after) = if id == ie::USER_USER {
                let l = after.get(..2).ok_or(Q931Error::Truncated)?;
                (usize::from(u16::from_be_bytes([l[0], l[1]])), &after[2..])
            } else {
                let (&l, after) = after.split_first().ok_or(Q931Error::Truncated)?;
                (usize::from(l), after)
            };
            let value = after.get(..len).ok_or(Q931Error::Truncated)?;
            ies.push(Ie {
                id,
                value: value.to_vec(),
            });
            rest = &after[len..];
        }
        Ok(Message {
            call_ref,
            from_destination,
            kind: MessageType::from_code(mt),
            ies,
        })
    }

    /// The message's bytes (call reference on 2 bytes, as H.225.0 requires). IEs too long for
    /// their length field are cut to fit.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![PROTOCOL_DISCRIMINATOR, 2];
        let crv = (self.call_ref & 0x7fff) | if self.from_destination { 0x8000 } else { 0 };
        out.extend_from_slice(&crv.to_be_bytes());
        out.push(self.kind.code());
        for i in &self.ies {
            out.push(i.id);
            if i.id & 0x80 != 0 {
                continue;
            }
            if i.id == ie::USER_USER {
                let n = i.value.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&(n as u16).to_be_bytes());
                out.extend_from_slice(&i.value[..n]);
            } else {
                let n = i.value.len().min(255);
                out.push(n as u8);
                out.extend_from_slice(&i.value[..n]);
            }
        }
        out
    }

    /// The first IE with identifier `id`.
    pub fn ie(&self, id: u8) -> Option<&[u8]> {
        self.ies
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.value.as_slice())
    }

    /// Adds an IE (after the others; Q.931 orders IEs by identifier, which callers respect by
    /// adding them in that order).
    pub fn push_ie(&mut self, id: u8, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ies.push(Ie {
            id,
            value: value.into(),
        });
        self
    }

    /// The H.225.0 `H323-UserInformation` bytes carried in the User-User IE.
    pub fn user_user(&self) -> Option<&[u8]> {
        match self.ie(ie::USER_USER)? {
            [UUIE_DISCRIMINATOR, rest @ ..] => Some(rest),
            _ => None,
        }
    }

    /// Sets the User-User IE to carry `h225` (PER bytes of `H323-UserInformation`).
    pub fn set_user_user(&mut self, h225: &[u8]) -> &mut Self {
        self.ies.retain(|i| i.id != ie::USER_USER);
        let mut v = Vec::with_capacity(h225.len() + 1);
        v.push(UUIE_DISCRIMINATOR);
        v.extend_from_slice(h225);
        self.push_ie(ie::USER_USER, v)
    }

    /// The Q.850 cause value of the Cause IE.
    pub fn cause(&self) -> Option<u8> {
        let v = self.ie(ie::CAUSE)?;
        // Octet 3 (coding standard, location), 3a when its extension bit is clear, then 4.
        let at = if v.first()? & 0x80 != 0 { 1 } else { 2 };
        v.get(at).map(|c| c & 0x7f)
    }

    /// Adds a Cause IE (ITU-T coding, location "private network serving the local user").
    pub fn push_cause(&mut self, q850: u8) -> &mut Self {
        self.push_ie(ie::CAUSE, [0x81, 0x80 | (q850 & 0x7f)])
    }

    /// The digits of the Called Party Number IE.
    pub fn called_number(&self) -> Option<String> {
        number_digits(self.ie(ie::CALLED_PARTY_NUMBER)?)
    }

    /// The digits of the Calling Party Number IE.
    pub fn calling_number(&self) -> Option<String> {
        number_digits(self.ie(ie::CALLING_PARTY_NUMBER)?)
    }

    /// Adds a party number IE (`id` is [`ie::CALLED_PARTY_NUMBER`] or
    /// [`ie::CALLING_PARTY_NUMBER`]): unknown type, ISDN/E.164 plan, IA5 digits.
    pub fn push_number(&mut self, id: u8, digits: &str) -> &mut Self {
        let mut v = vec![0x81];
        v.extend(
            digits
                .bytes()
                .filter(|b| b.is_ascii_digit() || *b == b'*' || *b == b'#'),
        );
        self.push_ie(id, v)
    }

    /// The Display IE's text.
    pub fn display(&self) -> Option<String> {
        let v = self.ie(ie::DISPLAY)?;
        Some(
            String::from_utf8_lossy(v)
                .chars()
                .filter(|c| !c.is_control())
                .collect(),
        )
    }

    /// The digits of a Keypad facility IE (DTMF typed during overlap or a call).
    pub fn keypad(&self) -> Option<String> {
        let v = self.ie(ie::KEYPAD)?;
        Some(
            v.iter()
                .filter(|b| b.is_ascii_graphic())
                .map(|b| char::from(*b))
                .collect(),
        )
    }
}

/// Digits of a party number IE: octet 3 (type, plan), octet 3a when octet 3's extension bit is
/// clear (presentation, screening), then IA5 characters.
fn number_digits(v: &[u8]) -> Option<String> {
    let at = if v.first()? & 0x80 != 0 { 1 } else { 2 };
    let digits = v.get(at..)?;
    Some(
        digits
            .iter()
            .filter(|b| b.is_ascii_digit() || **b == b'*' || **b == b'#')
            .map(|b| char::from(*b))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h323::tpkt::{TpktReader, MAX_TPKT};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn a_real_setup_decodes_and_re_encodes_identically() {
        let bytes = hex(include_str!(
            "../../tests/data/h323/generated-setup-faststart.hex"
        ));
        let mut r = TpktReader::new(MAX_TPKT);
        r.push(&bytes);
        let pdu = r.next_pdu().expect("tpkt").expect("one pdu");
        let m = Message::decode(&pdu).expect("q931");
        assert_eq!(m.kind, MessageType::Setup);
        assert_eq!((m.call_ref, m.from_destination), (1, false));
        assert_eq!(m.ie(ie::BEARER_CAPABILITY), Some(&[0x88, 0x93, 0xa5][..]));
        assert_eq!(m.display().as_deref(), Some("Visio GW"));
        assert_eq!(m.called_number().as_deref(), Some("1234"));
        let uu = m.user_user().expect("H.225 payload");
        assert_eq!(uu.len(), 163);
        assert_eq!(m.encode(), pdu, "byte-identical re-encoding");
    }

    #[test]
    fn release_complete_with_cause_and_a_reply_flag() {
        let mut m = Message::new(MessageType::ReleaseComplete, 0x77f4, true);
        m.push_cause(16).set_user_user(&[0x05, 0x25, 0x80]);
        let b = m.encode();
        assert_eq!(&b[..5], &[0x08, 0x02, 0xf7, 0xf4, 0x5a]);
        let back = Message::decode(&b).expect("decode");
        assert_eq!(back, m);
        assert_eq!(back.cause(), Some(16));
        assert_eq!(back.user_user(), Some(&[0x05, 0x25, 0x80][..]));
        // A cause with octet 3a (extension bit clear on octet 3).
        let mut c = Message::new(MessageType::ReleaseComplete, 1, false);
        c.push_ie(ie::CAUSE, [0x01, 0x80, 0x91]);
        assert_eq!(c.cause(), Some(17));
    }

    #[test]
    fn numbers_keypad_and_single_octet_ies() {
        let mut m = Message::new(MessageType::Setup, 42, false);
        m.push_ie(ie::BEARER_CAPABILITY, BEARER_SPEECH)
            .push_number(ie::CALLING_PARTY_NUMBER, "+33 1 23")
            .push_number(ie::CALLED_PARTY_NUMBER, "4321#")
            .push_ie(0xa1, []); // Sending complete.
        let back = Message::decode(&m.encode()).expect("decode");
        assert_eq!(back.calling_number().as_deref(), Some("33123"));
        assert_eq!(back.called_number().as_deref(), Some("4321#"));
        assert_eq!(back.ies.last().map(|i| i.id), Some(0xa1));
        // Calling number with presentation octet 3a.
        let mut p = Message::new(MessageType::Setup, 1, false);
        p.push_ie(ie::CALLING_PARTY_NUMBER, *b"\x01\x80100");
        assert_eq!(p.calling_number().as_deref(), Some("100"));
        let mut k = Message::new(MessageType::Information, 1, false);
        k.push_ie(ie::KEYPAD, *b"12#");
        assert_eq!(k.keypad().as_deref(), Some("12#"));
    }

    #[test]
    fn bad_messages_are_errors() {
        assert_eq!(Message::decode(&[]), Err(Q931Error::Truncated));
        assert_eq!(
            Message::decode(&[0x09, 2, 0, 1, 5]),
            Err(Q931Error::Discriminator(9))
        );
        assert_eq!(
            Message::decode(&[8, 5, 0, 1, 5]),
            Err(Q931Error::CallReference(5))
        );
        assert_eq!(Message::decode(&[8, 2, 0]), Err(Q931Error::Truncated));
        assert_eq!(Message::decode(&[8, 2, 0, 1]), Err(Q931Error::Truncated));
        // IE lengths past the end.
        assert_eq!(
            Message::decode(&[8, 2, 0, 1, 5, 0x28, 9, b'a']),
            Err(Q931Error::Truncated)
        );
        assert_eq!(
            Message::decode(&[8, 2, 0, 1, 5, 0x7e, 0, 9, 5]),
            Err(Q931Error::Truncated)
        );
        assert_eq!(
            Message::decode(&[8, 2, 0, 1, 5, 0x7e, 0]),
            Err(Q931Error::Truncated)
        );
        // An unknown type is kept, and its IEs.
        let m = Message::decode(&[8, 2, 0, 1, 0x4f, 0x28, 1, b'x']).expect("decode");
        assert_eq!(m.kind, MessageType::Other(0x4f));
        assert_eq!(m.display().as_deref(), Some("x"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(m) = Message::decode(&b) {
                let _ = (m.cause(), m.called_number(), m.calling_number(), m.display(), m.keypad(), m.user_user());
                let again = Message::decode(&m.encode()).expect("our encoding decodes");
                proptest::prop_assert_eq!(again.ies, m.ies);
            }
        }
    }
}
