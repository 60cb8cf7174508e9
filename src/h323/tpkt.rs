//! TPKT framing (RFC 1006 §6) of H.225.0 call signalling and H.245 on TCP, sans-IO: fed the bytes
//! a TCP socket returns, in whatever pieces, it yields whole PDUs.
//!
//! `03 00 <length: 2 bytes, header included> <payload>`. Several PDUs may share one read, one PDU
//! may span many; empty TPKTs (`03 00 00 04`) are keep-alives and are skipped.

/// The TPKT header length.
pub const HEADER: usize = 4;

/// The largest TPKT the format allows (the length field is 16 bits).
pub const MAX_TPKT: usize = 65_535;

/// Why the stream cannot be read on: the call is released and the socket closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TpktError {
    /// The first byte is not version 3 (or the reserved byte is not 0): not TPKT at all.
    #[error("not a TPKT header: {0:02x} {1:02x}")]
    BadHeader(u8, u8),
    /// A length under the header's own 4 bytes.
    #[error("TPKT length {0} is shorter than its header")]
    BadLength(usize),
    /// A PDU larger than the configured limit.
    #[error("TPKT of {0} bytes is over the {1}-byte limit")]
    TooLarge(usize, usize),
}

/// Reassembles TPKT PDUs from a TCP byte stream.
#[derive(Debug)]
pub struct TpktReader {
    buf: Vec<u8>,
    max_pdu: usize,
    failed: Option<TpktError>,
    keepalives: u64,
}

impl TpktReader {
    /// A reader refusing PDUs (payload and header) larger than `max_pdu` bytes.
    pub fn new(max_pdu: usize) -> Self {
        TpktReader {
            buf: Vec::new(),
            max_pdu: max_pdu.clamp(HEADER, MAX_TPKT),
            failed: None,
            keepalives: 0,
        }
    }

    /// Bytes read from the socket.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next whole PDU's payload, `Ok(None)` when more bytes are needed. After an error the
    /// stream is unusable and every call returns that error.
    pub fn next_pdu(&mut self) -> Result<Option<Vec<u8>>, TpktError> {
        loop {
            if let Some(e) = &self.failed {
                return Err(e.clone());
            }
            let (Some(&v), Some(&r)) = (self.buf.first(), self.buf.get(1)) else {
                return Ok(None);
            };
            if v != 3 || r != 0 {
                return Err(self.fail(TpktError::BadHeader(v, r)));
            }
            let Some(len) = self
                .buf
                .get(2..4)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            else {
                return Ok(None);
            };
            if len < HEADER {
                return Err(self.fail(TpktError::BadLength(len)));
            }
            if len > self.max_pdu {
                return Err(self.fail(TpktError::TooLarge(len, self.max_pdu)));
            }
            if self.buf.len() < len {
                return Ok(None);
            }
            let pdu: Vec<u8> = self.buf[HEADER..len].to_vec();
            self.buf.drain(..len);
            if pdu.is_empty() {
                self.keepalives += 1;
                continue;
            }
            return Ok(Some(pdu));
        }
    }

    /// Bytes received that do not make a whole PDU yet (a peer that never finishes one is
    /// detected by the caller's timer on this staying non-zero).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Empty keep-alive TPKTs skipped so far.
    pub fn keepalives(&self) -> u64 {
        self.keepalives
    }

    fn fail(&mut self, e: TpktError) -> TpktError {
        self.buf = Vec::new();
        self.failed = Some(e.clone());
        e
    }
}

/// Frames `payload` as one TPKT; `None` when it does not fit the 16-bit length.
pub fn encode(payload: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(payload.len() + HEADER).ok()?;
    let mut out = Vec::with_capacity(usize::from(len));
    out.extend_from_slice(&[3, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdus(r: &mut TpktReader) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Ok(Some(p)) = r.next_pdu() {
            v.push(p);
        }
        v
    }

    #[test]
    fn split_joined_and_keepalive_pdus() {
        let a = encode(b"setup").expect("a");
        let b = encode(&[7u8; 300]).expect("b");
        let mut stream = a.clone();
        stream.extend_from_slice(&[3, 0, 0, 4]);
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&a);
        // Every way of cutting the stream in two gives the same PDUs.
        for cut in 0..stream.len() {
            let mut r = TpktReader::new(MAX_TPKT);
            r.push(&stream[..cut]);
            let mut got = pdus(&mut r);
            r.push(&stream[cut..]);
            got.extend(pdus(&mut r));
            assert_eq!(
                got,
                vec![b"setup".to_vec(), vec![7u8; 300], b"setup".to_vec()],
                "cut {cut}"
            );
            assert_eq!((r.keepalives(), r.pending()), (1, 0));
        }
        // Byte by byte.
        let mut r = TpktReader::new(MAX_TPKT);
        let mut got = Vec::new();
        for byte in &stream {
            r.push(std::slice::from_ref(byte));
            got.extend(pdus(&mut r));
        }
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn bad_streams_are_errors_that_stay() {
        let mut r = TpktReader::new(MAX_TPKT);
        r.push(b"INVITE sip:");
        assert_eq!(r.next_pdu(), Err(TpktError::BadHeader(b'I', b'N')));
        r.push(&encode(b"x").expect("x"));
        assert!(r.next_pdu().is_err(), "the stream stays failed");

        let mut r = TpktReader::new(MAX_TPKT);
        r.push(&[3, 0, 0, 2]);
        assert_eq!(r.next_pdu(), Err(TpktError::BadLength(2)));

        // A 64 KB+ announcement over a 16 KB limit is refused before its bytes arrive.
        let mut r = TpktReader::new(16 * 1024);
        r.push(&[3, 0, 0xff, 0xff]);
        assert_eq!(r.next_pdu(), Err(TpktError::TooLarge(65_535, 16 * 1024)));

        // A peer that never finishes: nothing yet, bytes pending.
        let mut r = TpktReader::new(MAX_TPKT);
        r.push(&[3, 0, 0, 100, 1, 2, 3]);
        assert_eq!(r.next_pdu(), Ok(None));
        assert_eq!(r.pending(), 7);
        assert_eq!(encode(&vec![0u8; MAX_TPKT]), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..8)) {
            let mut r = TpktReader::new(4096);
            for c in chunks {
                r.push(&c);
                for _ in 0..16 {
                    if !matches!(r.next_pdu(), Ok(Some(_))) { break; }
                }
            }
        }
    }
}
