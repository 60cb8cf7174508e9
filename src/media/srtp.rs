//! SDES-SRTP for the SIP leg (RFC 4568 key exchange in SDP, RFC 3711 SRTP/SRTCP, RFC 7714
//! AES-GCM), sans-IO: parse and write `a=crypto`, make keys, protect and unprotect packets.
//!
//! The ciphers are `webrtc-srtp`'s (webrtc-rs), used without its I/O parts. Master keys never appear in
//! logs: [`MasterKey`] prints as `MasterKey(<redacted>)`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore as _;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Packets remembered by the replay check (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 128;

/// The crypto suites jonction offers and accepts, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    /// `AEAD_AES_128_GCM` (RFC 7714).
    AeadAes128Gcm,
    /// `AES_CM_128_HMAC_SHA1_80` (RFC 4568 §6.2).
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32` (32-bit SRTP tag; SRTCP keeps 80 bits).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// All suites, in our order of preference.
    pub const ALL: [SrtpSuite; 3] = [
        SrtpSuite::AeadAes128Gcm,
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ];

    /// The name in `a=crypto`.
    pub fn sdp_name(self) -> &'static str {
        match self {
            SrtpSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite of an `a=crypto` name.
    pub fn from_sdp_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.sdp_name() == name)
    }

    /// Master key and master salt lengths in bytes.
    pub fn key_salt_len(self) -> (usize, usize) {
        match self {
            SrtpSuite::AeadAes128Gcm => (16, 12),
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => (16, 14),
        }
    }

    /// Bytes an SRTP packet carries after its payload (authentication tag).
    fn rtp_trailer(self) -> usize {
        match self {
            SrtpSuite::AeadAes128Gcm => 16,
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
        }
    }

    /// Bytes an SRTCP packet carries after its payload (E flag + index, then the tag).
    fn rtcp_trailer(self) -> usize {
        match self {
            SrtpSuite::AeadAes128Gcm => 4 + 16,
            SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => 4 + 10,
        }
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// A master key and salt, concatenated as in `inline:` (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey(Vec<u8>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        // Do not leave key bytes in freed memory.
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl MasterKey {
    /// Fresh random key material for `suite` (rand's thread CSPRNG, seeded by the OS).
    pub fn random(suite: SrtpSuite) -> Self {
        let (k, s) = suite.key_salt_len();
        let mut bytes = vec![0u8; k + s];
        rand::rng().fill_bytes(&mut bytes);
        MasterKey(bytes)
    }

    /// Key material given as bytes (master key then salt).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        MasterKey(bytes.to_vec())
    }
}

/// One `a=crypto` attribute (RFC 4568 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The tag that pairs an answer with the offer's line.
    pub tag: u32,
    /// The suite.
    pub suite: SrtpSuite,
    /// Master key and salt.
    pub key: MasterKey,
}

/// Why an `a=crypto` line cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Not `tag suite key-params`.
    #[error("malformed a=crypto line")]
    Malformed,
    /// A suite jonction does not implement.
    #[error("unsupported crypto suite {0}")]
    Suite(String),
    /// The key is not `inline:` base64 of the suite's key and salt length.
    #[error("bad inline key for {0}")]
    Key(&'static str),
    /// An MKI, a short key lifetime, several keys or session parameters: not supported.
    #[error("unsupported crypto parameter: {0}")]
    Parameter(String),
    /// None of the offered lines can be used.
    #[error("no usable a=crypto line")]
    NoneUsable,
}

impl CryptoAttribute {
    /// A new attribute with a random key.
    pub fn generate(tag: u32, suite: SrtpSuite) -> Self {
        CryptoAttribute {
            tag,
            suite,
            key: MasterKey::random(suite),
        }
    }

    /// Parses an `a=crypto` value (`1 AES_CM_128_HMAC_SHA1_80 inline:...`).
    pub fn parse(value: &str) -> Result<Self, CryptoError> {
        let mut words = value.split_whitespace();
        let tag = words
            .next()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|t| *t < 1_000_000_000)
            .ok_or(CryptoError::Malformed)?;
        let suite_name = words.next().ok_or(CryptoError::Malformed)?;
        let suite = SrtpSuite::from_sdp_name(suite_name)
            .ok_or_else(|| CryptoError::Suite(suite_name.to_string()))?;
        let params = words.next().ok_or(CryptoError::Malformed)?;
        if let Some(session_param) = words.next() {
            return Err(CryptoError::Parameter(session_param.to_string()));
        }
        if params.contains(';') {
            return Err(CryptoError::Parameter("several keys".into()));
        }
        let inline = params
            .strip_prefix("inline:")
            .ok_or(CryptoError::Key(suite.sdp_name()))?;
        let mut parts = inline.split('|');
        let key_b64 = parts.next().unwrap_or_default();
        for p in parts {
            if p.contains(':') {
                return Err(CryptoError::Parameter(format!("MKI {p}")));
            }
            // A lifetime shorter than 2^31 packets could end inside a call.
            let ok = p
                .strip_prefix("2^")
                .and_then(|e| e.parse::<u32>().ok())
                .map(|e| e >= 31)
                .or_else(|| p.parse::<u64>().ok().map(|n| n >= 1 << 31))
                .unwrap_or(false);
            if !ok {
                return Err(CryptoError::Parameter(format!("lifetime {p}")));
            }
        }
        let bytes = BASE64
            .decode(key_b64)
            .map_err(|_| CryptoError::Key(suite.sdp_name()))?;
        let (k, s) = suite.key_salt_len();
        if bytes.len() != k + s {
            return Err(CryptoError::Key(suite.sdp_name()));
        }
        Ok(CryptoAttribute {
            tag,
            suite,
            key: MasterKey(bytes),
        })
    }

    /// The `a=crypto` value.
    pub fn to_sdp(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.sdp_name(),
            BASE64.encode(&self.key.0)
        )
    }
}

/// The offered line to answer: the best suite we support among the usable lines (RFC 4568
/// §7.1.1: the answerer picks one and answers with its tag).
pub fn choose_offered(values: &[String]) -> Result<CryptoAttribute, CryptoError> {
    let usable: Vec<CryptoAttribute> = values
        .iter()
        .filter_map(|v| CryptoAttribute::parse(v).ok())
        .collect();
    SrtpSuite::ALL
        .iter()
        .find_map(|s| usable.iter().find(|c| c.suite == *s).cloned())
        .ok_or(CryptoError::NoneUsable)
}

/// Counters of a protected stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SrtpStats {
    /// Packets (RTP and RTCP) that failed authentication or decryption: dropped.
    pub auth_failures: u64,
    /// Replayed packets: dropped.
    pub replays: u64,
}

/// Why a packet was not protected or unprotected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The keys could not be installed.
    #[error("SRTP context: {0}")]
    Context(String),
    /// Authentication failed, the packet is malformed or replayed; it is dropped.
    #[error("SRTP packet refused: {0}")]
    Packet(String),
}

/// The two directions of one m-line's SRTP (our key for what we send, theirs for what we get).
pub struct SrtpSession {
    tx: Context,
    rx: Context,
    suite: SrtpSuite,
    stats: SrtpStats,
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession")
            .field("suite", &self.suite)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SrtpSession {
    /// Contexts for sending with `local` and receiving with `remote` (same suite).
    pub fn new(local: &CryptoAttribute, remote: &CryptoAttribute) -> Result<Self, SrtpError> {
        let make = |c: &CryptoAttribute| {
            let (k, _) = c.suite.key_salt_len();
            let (key, salt) = c.key.0.split_at(k.min(c.key.0.len()));
            Context::new(
                key,
                salt,
                c.suite.profile(),
                Some(srtp_replay_protection(REPLAY_WINDOW)),
                Some(srtcp_replay_protection(REPLAY_WINDOW)),
            )
            .map_err(|e| SrtpError::Context(e.to_string()))
        };
        if local.suite != remote.suite {
            return Err(SrtpError::Context("suites differ".into()));
        }
        Ok(SrtpSession {
            tx: make(local)?,
            rx: make(remote)?,
            suite: local.suite,
            stats: SrtpStats::default(),
        })
    }

    /// The suite in use.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// Counters so far.
    pub fn stats(&self) -> SrtpStats {
        self.stats
    }

    /// Encrypts and authenticates an RTP packet.
    pub fn protect_rtp(&mut self, rtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        rtp_header_len(rtp).ok_or_else(|| SrtpError::Packet("not an RTP packet".into()))?;
        self.tx
            .encrypt_rtp(rtp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Packet(e.to_string()))
    }

    /// Encrypts and authenticates an RTCP compound packet.
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        if !is_rtcp(rtcp, 0) {
            return Err(SrtpError::Packet("not an RTCP packet".into()));
        }
        self.tx
            .encrypt_rtcp(rtcp)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Packet(e.to_string()))
    }

    /// Checks and decrypts an SRTCP packet when `rtcp`, else an SRTP packet.
    pub fn unprotect(&mut self, data: &[u8], rtcp: bool) -> Result<Vec<u8>, SrtpError> {
        if rtcp {
            self.unprotect_rtcp(data)
        } else {
            self.unprotect_rtp(data)
        }
    }

    /// Checks and decrypts an SRTP packet; failures are counted.
    pub fn unprotect_rtp(&mut self, srtp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        // webrtc-srtp indexes without checking lengths: only well-formed packets reach it.
        let fits = rtp_header_len(srtp).is_some_and(|h| srtp.len() >= h + self.suite.rtp_trailer());
        let r = if fits {
            self.rx
                .decrypt_rtp(srtp)
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string())
        } else {
            Err("truncated SRTP packet".to_string())
        };
        self.count(r)
    }

    /// Checks and decrypts an SRTCP packet; failures are counted.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Vec<u8>, SrtpError> {
        // webrtc-srtp returns packets whose E flag is clear without checking their tag; SRTCP is
        // always encrypted here (no UNENCRYPTED_SRTCP), so such packets are forgeries.
        let trailer = self.suite.rtcp_trailer();
        let encrypted = srtcp
            .len()
            .checked_sub(trailer)
            .and_then(|e| srtcp.get(e))
            .is_some_and(|e| e & 0x80 != 0);
        let r = if encrypted && is_rtcp(srtcp, trailer) {
            self.rx
                .decrypt_rtcp(srtcp)
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string())
        } else {
            Err("truncated SRTCP packet".to_string())
        };
        self.count(r)
    }

    fn count<E: std::fmt::Display>(&mut self, r: Result<Vec<u8>, E>) -> Result<Vec<u8>, SrtpError> {
        r.map_err(|e| {
            let text = e.to_string();
            if text.contains("duplicated") {
                self.stats.replays += 1;
            } else {
                self.stats.auth_failures += 1;
            }
            SrtpError::Packet(text)
        })
    }
}

/// The length of an RTP header (fixed part, CSRCs, extension) when `p` holds one.
fn rtp_header_len(p: &[u8]) -> Option<usize> {
    let first = *p.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = p.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (p.len() >= len).then_some(len)
}

/// Whether `p` starts with an RTCP header and SSRC and has `trailer` more bytes.
fn is_rtcp(p: &[u8], trailer: usize) -> bool {
    p.len() >= 8 + trailer && p[0] >> 6 == 2 && (192..=223).contains(&p[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    }

    fn rtp() -> Vec<u8> {
        let mut v = hex("80000001000000a012345678");
        v.extend(0..160u8);
        v
    }

    fn rtcp() -> Vec<u8> {
        let mut v = hex("80c8000612345678");
        v.extend([0u8; 20]);
        v
    }

    fn key_for(suite: SrtpSuite) -> MasterKey {
        let (k, s) = suite.key_salt_len();
        MasterKey((1..=(k + s) as u8).collect())
    }

    /// Our output equals libsrtp's for the same keys and packets, and libsrtp's output
    /// unprotects back to the packet.
    #[test]
    fn libsrtp_known_answers() {
        let text = include_str!("../../tests/data/srtp/libsrtp_vectors.txt");
        let mut seen = 0;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let mut w = line.split_whitespace();
            let suite = SrtpSuite::from_sdp_name(w.next().expect("suite")).expect("known suite");
            let (want_rtp, want_rtcp) = (hex(w.next().expect("rtp")), hex(w.next().expect("rtcp")));
            let a = CryptoAttribute {
                tag: 1,
                suite,
                key: key_for(suite),
            };
            let mut s = SrtpSession::new(&a, &a).expect("session");
            assert_eq!(
                s.protect_rtp(&rtp()).expect("protect"),
                want_rtp,
                "{suite:?} RTP"
            );
            assert_eq!(
                s.protect_rtcp(&rtcp()).expect("protect"),
                want_rtcp,
                "{suite:?} RTCP"
            );
            assert_eq!(s.unprotect_rtp(&want_rtp).expect("unprotect"), rtp());
            assert_eq!(s.unprotect_rtcp(&want_rtcp).expect("unprotect"), rtcp());
            seen += 1;
        }
        assert_eq!(seen, 3);
    }

    #[test]
    fn tampering_and_replays_are_refused_and_counted() {
        for suite in SrtpSuite::ALL {
            let ours = CryptoAttribute::generate(1, suite);
            let theirs = CryptoAttribute::generate(1, suite);
            let mut tx = SrtpSession::new(&theirs, &ours).expect("peer");
            let mut rx = SrtpSession::new(&ours, &theirs).expect("us");
            let p = tx.protect_rtp(&rtp()).expect("protect");
            let mut bad = p.clone();
            let n = bad.len();
            bad[n - 1] ^= 1;
            assert!(rx.unprotect_rtp(&bad).is_err());
            assert_eq!(rx.unprotect_rtp(&p).expect("good"), rtp());
            assert!(rx.unprotect_rtp(&p).is_err(), "{suite:?} replay");
            let s = rx.stats();
            assert_eq!((s.auth_failures, s.replays), (1, 1), "{suite:?}");
            let mut tx = tx;
            for junk in [&[][..], &[0x80], &p[..12], &[0xff; 40]] {
                assert!(rx.unprotect_rtp(junk).is_err());
                assert!(rx.unprotect_rtcp(junk).is_err());
            }
            // Every truncation of a real packet is refused, never a panic.
            let c = tx.protect_rtcp(&rtcp()).expect("protect");
            for n in 0..p.len() {
                assert!(
                    rx.unprotect_rtp(&p[..n]).is_err(),
                    "{suite:?} RTP cut at {n}"
                );
            }
            for n in 0..c.len() {
                assert!(
                    rx.unprotect_rtcp(&c[..n]).is_err(),
                    "{suite:?} RTCP cut at {n}"
                );
            }
        }
    }

    #[test]
    fn crypto_lines() {
        let a = CryptoAttribute::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^31",
        )
        .expect("line");
        assert_eq!((a.tag, a.suite), (1, SrtpSuite::AesCm128HmacSha1_80));
        let back = CryptoAttribute::parse(&a.to_sdp()).expect("round trip");
        assert_eq!(back, a);
        for (line, err) in [
            ("", CryptoError::Malformed),
            ("1 AES_CM_128_HMAC_SHA1_80", CryptoError::Malformed),
            ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", CryptoError::Malformed),
            ("1 F8_128_HMAC_SHA1_80 inline:AAAA", CryptoError::Suite("F8_128_HMAC_SHA1_80".into())),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", CryptoError::Key("AES_CM_128_HMAC_SHA1_80")),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
                CryptoError::Parameter("lifetime 2^20".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1:4",
                CryptoError::Parameter("MKI 1:4".into()),
            ),
            (
                "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz UNENCRYPTED_SRTP",
                CryptoError::Parameter("UNENCRYPTED_SRTP".into()),
            ),
        ] {
            assert_eq!(CryptoAttribute::parse(line), Err(err), "{line}");
        }
    }

    #[test]
    fn the_best_offered_suite_is_chosen() {
        let offered = [
            "1 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".to_string(),
            "2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz".to_string(),
            "3 AES_256_CM_HMAC_SHA1_80 inline:AAAA".to_string(),
        ];
        assert_eq!(choose_offered(&offered).map(|c| c.tag), Ok(2));
        assert_eq!(choose_offered(&offered[2..]), Err(CryptoError::NoneUsable));
    }

    #[test]
    fn keys_are_never_printed() {
        let a = CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_80);
        let inline = a.to_sdp();
        let b64 = inline.rsplit("inline:").next().expect("key");
        let printed = format!("{a:?}");
        assert!(!printed.contains(b64), "{printed}");
        assert!(printed.contains("redacted"));
        let s = SrtpSession::new(&a, &a).expect("session");
        assert!(!format!("{s:?}").contains(b64));
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), line in ".{0,120}") {
            let a = CryptoAttribute::generate(7, SrtpSuite::AeadAes128Gcm);
            let mut s = SrtpSession::new(&a, &a).expect("session");
            let _ = s.unprotect_rtp(&bytes);
            let _ = s.unprotect_rtcp(&bytes);
            let _ = CryptoAttribute::parse(&line);
        }
    }
}
