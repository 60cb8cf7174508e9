//! Annex-B byte streams (H.264 Annex B): NAL units behind `00 00 01` / `00 00 00 01` start
//! codes, as encoders and `.h264` files produce them. Not on the per-packet path.

use super::{nal_type, AccessUnit};

/// The NAL units of an Annex-B byte stream, without start codes or trailing zero bytes. Bytes
/// before the first start code are skipped.
pub fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut rest = after_start_code(stream);
    std::iter::from_fn(move || loop {
        let cur = rest?;
        let (nal, next) = match find_start_code(cur) {
            Some((at, len)) => (&cur[..at], cur.get(at + len..)),
            None => (cur, None),
        };
        rest = next;
        let end = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if end > 0 {
            return Some(&nal[..end]);
        }
    })
}

/// Groups the NAL units of an Annex-B stream into access units (H.264 §7.4.1.2.3): a new one
/// starts at an AUD, SPS, PPS or SEI after a slice, or at a slice with `first_mb_in_slice` 0.
/// Timestamps advance by `ts_step` per access unit (3000 for 30 fps).
pub fn access_units(stream: &[u8], ts_step: u32) -> Vec<AccessUnit> {
    let mut out: Vec<AccessUnit> = Vec::new();
    let mut cur = AccessUnit::new(0);
    let mut has_vcl = false;
    for nal in nal_units(stream) {
        let t = nal_type::of(nal[0]);
        let first_slice = nal_type::is_vcl(t) && nal.get(1).is_some_and(|b| b & 0x80 != 0);
        let starts_new = has_vcl
            && (first_slice
                || matches!(
                    t,
                    nal_type::AUD | nal_type::SPS | nal_type::PPS | nal_type::SEI
                ));
        if starts_new {
            let ts = cur.timestamp().wrapping_add(ts_step);
            out.push(std::mem::replace(&mut cur, AccessUnit::new(ts)));
            has_vcl = false;
        }
        has_vcl |= nal_type::is_vcl(t);
        cur.push_nal(nal);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn after_start_code(s: &[u8]) -> Option<&[u8]> {
    let (at, len) = find_start_code(s)?;
    s.get(at + len..)
}

/// Offset and length (3) of the first `00 00 01`.
fn find_start_code(s: &[u8]) -> Option<(usize, usize)> {
    s.windows(3).position(|w| w == [0, 0, 1]).map(|at| (at, 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_nal_units_and_access_units() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 0x88, 9, 0, 0, 1, 0x41,
            0x9a, 7, 0, 0, 1, 0x41, 0x9b, 0, 0, // trailing zeros
        ];
        let nals: Vec<_> = nal_units(&stream).collect();
        assert_eq!(
            nals,
            vec![
                &[0x67, 1, 2][..],
                &[0x68, 3],
                &[0x65, 0x88, 9],
                &[0x41, 0x9a, 7],
                &[0x41, 0x9b]
            ]
        );
        let aus = access_units(&stream, 3000);
        assert_eq!(aus.len(), 3);
        assert_eq!(aus[0].len(), 3);
        assert!(aus[0].is_keyframe());
        assert_eq!(aus[2].timestamp(), 6000);
        let mut back = Vec::new();
        for au in &aus {
            au.write_annex_b(&mut back);
        }
        assert_eq!(nal_units(&back).collect::<Vec<_>>(), nals);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
        assert_eq!(nal_units(&[0, 0, 1]).count(), 0);
    }
}
