//! The test caller's H.264 video: an Annex-B file sent as RTP (RFC 6184, single NAL units and
//! FU-A) at 30 pictures per second in a loop, and a receiver that counts what the gateway sends.
//! Written here, not taken from the gateway's media code, so that the two check each other.

use std::time::{Duration, Instant};

/// Pictures per second of the test streams (tests/data/video/README.md).
const FPS: u32 = 30;
/// Largest RTP payload we send.
const MAX_PAYLOAD: usize = 1200;
/// NAL unit types.
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// One picture: its NAL units (without start codes).
type AccessUnit = Vec<Vec<u8>>;

/// Splits an Annex-B stream into NAL units.
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |n| n - 3);
        // A 4-byte start code leaves a zero before the next 3-byte one.
        while end > s && stream[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > s {
            out.push(&stream[s..end]);
        }
    }
    out
}

/// Groups NAL units into pictures: a slice with `first_mb_in_slice` 0 (its first bit set)
/// starts a new picture, and so does a parameter set after a picture's slices.
fn access_units(stream: &[u8]) -> Vec<AccessUnit> {
    let mut out: Vec<AccessUnit> = Vec::new();
    let mut cur: AccessUnit = Vec::new();
    let mut has_slice = false;
    for nal in nal_units(stream) {
        let t = nal[0] & 0x1f;
        let is_slice = t == 1 || t == NAL_IDR;
        let first_slice = is_slice && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        if has_slice && (first_slice || !is_slice) {
            out.push(std::mem::take(&mut cur));
            has_slice = false;
        }
        has_slice |= is_slice;
        cur.push(nal.to_vec());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Sends the file's pictures in a loop; a keyframe request restarts it at the first (IDR).
pub(crate) struct VideoSender {
    pictures: Vec<AccessUnit>,
    index: usize,
    pt: u8,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    next_at: Instant,
    /// RTP packets sent.
    pub(crate) sent: u64,
}

impl VideoSender {
    /// Reads `path`; an error when it cannot be read or holds no pictures.
    pub(crate) fn open(path: &std::path::Path, pt: u8, now: Instant) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let pictures = access_units(&bytes);
        if pictures.is_empty() {
            return Err(format!("{}: no H.264 pictures", path.display()));
        }
        Ok(VideoSender {
            pictures,
            index: 0,
            pt,
            ssrc: rand::random::<u32>() | 1,
            seq: rand::random(),
            timestamp: rand::random(),
            next_at: now,
            sent: 0,
        })
    }

    /// The next picture is the first one (an IDR with its parameter sets).
    pub(crate) fn restart(&mut self) {
        self.index = 0;
    }

    /// When the next picture is due.
    pub(crate) fn next_at(&self) -> Instant {
        self.next_at
    }

    /// The RTP packets of the pictures due at `now`.
    pub(crate) fn packets(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let period = Duration::from_secs(1) / FPS;
        if now > self.next_at + 10 * period {
            self.next_at = now; // stalled: no burst
        }
        let mut out = Vec::new();
        while self.next_at <= now {
            let payloads: Vec<(Vec<u8>, bool)> = {
                let picture = &self.pictures[self.index];
                let last_nal = picture.len().saturating_sub(1);
                picture
                    .iter()
                    .enumerate()
                    .flat_map(|(k, nal)| {
                        fragments(nal)
                            .into_iter()
                            .map(move |(p, last)| (p, k == last_nal && last))
                    })
                    .collect()
            };
            for (payload, marker) in payloads {
                out.push(self.rtp(marker, &payload));
            }
            self.index = (self.index + 1) % self.pictures.len();
            self.timestamp = self.timestamp.wrapping_add(90_000 / FPS);
            self.next_at += period;
        }
        self.sent += out.len() as u64;
        out
    }

    fn rtp(&mut self, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + payload.len());
        p.push(0x80);
        p.push((u8::from(marker) << 7) | self.pt);
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.timestamp.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        p
    }
}

/// A NAL unit's RTP payloads: itself when it fits, else FU-A fragments; with "is last".
fn fragments(nal: &[u8]) -> Vec<(Vec<u8>, bool)> {
    if nal.len() <= MAX_PAYLOAD {
        return vec![(nal.to_vec(), true)];
    }
    let (header, body) = (nal[0], &nal[1..]);
    let chunks: Vec<&[u8]> = body.chunks(MAX_PAYLOAD - 2).collect();
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut fu_header = header & 0x1f;
            if i == 0 {
                fu_header |= 0x80;
            }
            if i + 1 == n {
                fu_header |= 0x40;
            }
            let mut p = vec![(header & 0xe0) | FU_A, fu_header];
            p.extend_from_slice(c);
            (p, i + 1 == n)
        })
        .collect()
}

/// What the gateway sent on our video port.
#[derive(Debug, Default)]
pub(crate) struct VideoReceiver {
    /// RTP packets.
    pub(crate) received: u64,
    /// Datagrams that are not RTP.
    pub(crate) bad: u64,
    /// The payload type of the last packet.
    pub(crate) last_pt: Option<u8>,
    /// Packets that start an IDR picture or carry an SPS.
    pub(crate) keyframes: u64,
    /// Pictures (RTP marker bits).
    pub(crate) pictures: u64,
}

impl VideoReceiver {
    /// One datagram on the video RTP port.
    pub(crate) fn handle(&mut self, data: &[u8]) {
        if data.len() < 13 || data[0] >> 6 != 2 {
            self.bad += 1;
            return;
        }
        let cc = usize::from(data[0] & 0x0f);
        let mut off = 12 + 4 * cc;
        if data[0] & 0x10 != 0 {
            let Some(len) = data.get(off + 2..off + 4) else {
                self.bad += 1;
                return;
            };
            off += 4 + 4 * usize::from(u16::from_be_bytes([len[0], len[1]]));
        }
        let Some(payload) = data.get(off..).filter(|p| !p.is_empty()) else {
            self.bad += 1;
            return;
        };
        self.received += 1;
        self.last_pt = Some(data[1] & 0x7f);
        if data[1] & 0x80 != 0 {
            self.pictures += 1;
        }
        if starts_keyframe(payload) {
            self.keyframes += 1;
        }
    }
}

/// Whether an RTP payload starts an IDR picture or carries an SPS.
fn starts_keyframe(p: &[u8]) -> bool {
    let key = |t: u8| t == NAL_IDR || t == NAL_SPS;
    match p[0] & 0x1f {
        STAP_A => {
            let mut i = 1;
            while i + 3 <= p.len() {
                let n = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                if key(p[i + 2] & 0x1f) {
                    return true;
                }
                i += 2 + n;
            }
            false
        }
        FU_A => p.get(1).is_some_and(|h| h & 0x80 != 0 && key(h & 0x1f)),
        t => key(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/video/a_640x360.h264"
        );
        std::fs::read(path).expect("test stream")
    }

    #[test]
    fn the_test_stream_is_60_pictures_with_an_idr_every_30() {
        let aus = access_units(&stream());
        assert_eq!(aus.len(), 60);
        let idr: Vec<usize> = aus
            .iter()
            .enumerate()
            .filter(|(_, au)| au.iter().any(|n| n[0] & 0x1f == NAL_IDR))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(idr, vec![0, 30]);
    }

    #[test]
    fn sent_packets_are_received_as_pictures_and_keyframes() {
        let t0 = Instant::now();
        let path = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/video/a_640x360.h264"
        ));
        let mut tx = VideoSender::open(&path, 96, t0).expect("open");
        let mut rx = VideoReceiver::default();
        // One second: 30 pictures, one of them the IDR.
        for ms in (0..1000).step_by(33) {
            for p in tx.packets(t0 + Duration::from_millis(ms)) {
                rx.handle(&p);
            }
        }
        assert_eq!((rx.pictures, rx.last_pt, rx.bad), (30, Some(96), 0));
        assert!(rx.keyframes >= 1, "{rx:?}");
        tx.restart();
        let before = rx.keyframes;
        for p in tx.packets(t0 + Duration::from_millis(1000)) {
            rx.handle(&p);
        }
        assert!(rx.keyframes > before);
    }

    #[test]
    fn large_nal_units_become_fu_a() {
        let nal: Vec<u8> = std::iter::once(0x65)
            .chain((0..3000).map(|i| i as u8))
            .collect();
        let f = fragments(&nal);
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].0[0] & 0x1f, f[0].0[1]), (FU_A, 0x80 | 5));
        assert_eq!(f[2].0[1], 0x40 | 5);
        assert!(starts_keyframe(&f[0].0) && !starts_keyframe(&f[1].0));
        let joined: Vec<u8> = f.iter().flat_map(|(p, _)| p[2..].to_vec()).collect();
        assert_eq!(joined, nal[1..]);
    }
}
