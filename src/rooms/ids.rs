//! LiveKit-style identifiers: a type prefix and 12 random base62 characters.

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn random_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 12);
    s.push_str(prefix);
    for _ in 0..12 {
        s.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    s
}

/// `RM_...`
pub fn room_sid() -> String {
    random_id("RM_")
}

/// `PA_...`
pub fn participant_sid() -> String {
    random_id("PA_")
}

/// `TR_...` (clients recognise track ids by this prefix).
pub fn track_sid() -> String {
    random_id("TR_")
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_and_uniqueness() {
        let a = super::track_sid();
        assert!(a.starts_with("TR_") && a.len() == 15);
        assert_ne!(a, super::track_sid());
        assert!(super::participant_sid().starts_with("PA_"));
    }
}
