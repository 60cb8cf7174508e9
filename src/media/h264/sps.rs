//! Sequence parameter set parsing (H.264 §7.3.2.1.1): profile, constraint flags and level (the
//! SDP `profile-level-id` of RFC 6184 §8.1) and the displayed resolution after frame cropping.

use std::fmt;

/// Why an SPS could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpsError {
    /// The NAL unit is not an SPS (type 7).
    #[error("NAL unit of type {0} is not an SPS")]
    NotSps(u8),
    /// The SPS ends before its last field.
    #[error("SPS truncated")]
    Truncated,
    /// A field has a value the standard forbids (exp-Golomb overflow, crop past the picture).
    #[error("SPS field {0} out of range")]
    OutOfRange(&'static str),
}

/// The fields of an SPS a gateway needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// The byte holding `constraint_set0_flag`..`constraint_set5_flag` and the reserved bits.
    pub constraint_flags: u8,
    /// `level_idc` (level × 10, e.g. 31 for 3.1).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub id: u32,
    /// Displayed width in pixels, after cropping.
    pub width: u32,
    /// Displayed height in pixels, after cropping.
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (header byte first, emulation prevention bytes still in).
    pub fn parse(nal: &[u8]) -> Result<Self, SpsError> {
        let (&header, body) = nal.split_first().ok_or(SpsError::Truncated)?;
        if header & 0x1f != super::nal_type::SPS {
            return Err(SpsError::NotSps(header & 0x1f));
        }
        let mut r = BitReader::new(body);
        let profile_idc = r.bits(8)? as u8;
        let constraint_flags = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        let id = r.ue()?;
        if id > 31 {
            return Err(SpsError::OutOfRange("seq_parameter_set_id"));
        }
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc > 3 {
                return Err(SpsError::OutOfRange("chroma_format_idc"));
            }
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            let _bit_depth_luma_minus8 = r.ue()?;
            let _bit_depth_chroma_minus8 = r.ue()?;
            let _qpprime_y_zero_transform_bypass = r.flag()?;
            if r.flag()? {
                // seq_scaling_matrix_present_flag: skip the scaling lists (§7.3.2.1.1.1).
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        r.skip_scaling_list(if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let _log2_max_frame_num_minus4 = r.ue()?;
        match r.ue()? {
            0 => {
                let _log2_max_pic_order_cnt_lsb_minus4 = r.ue()?;
            }
            1 => {
                let _delta_pic_order_always_zero = r.flag()?;
                let _offset_for_non_ref_pic = r.se()?;
                let _offset_for_top_to_bottom_field = r.se()?;
                let cycle = r.ue()?;
                if cycle > 255 {
                    return Err(SpsError::OutOfRange(
                        "num_ref_frames_in_pic_order_cnt_cycle",
                    ));
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            2 => {}
            _ => return Err(SpsError::OutOfRange("pic_order_cnt_type")),
        }
        let _max_num_ref_frames = r.ue()?;
        let _gaps_in_frame_num_allowed = r.flag()?;
        let width_mbs = u64::from(r.ue()?) + 1;
        let height_map_units = u64::from(r.ue()?) + 1;
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.flag()?;
        }
        let _direct_8x8_inference = r.flag()?;
        let (mut left, mut right, mut top, mut bottom) = (0, 0, 0, 0);
        if r.flag()? {
            left = u64::from(r.ue()?);
            right = u64::from(r.ue()?);
            top = u64::from(r.ue()?);
            bottom = u64::from(r.ue()?);
        }
        // §7.4.2.1.1: crop units depend on the chroma sampling and on field coding.
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (crop_x, crop_y) = match chroma_array_type {
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        let full_w = width_mbs * 16;
        let full_h = height_map_units * 16 * field_factor;
        let width = full_w
            .checked_sub(crop_x * (left + right))
            .filter(|&w| w > 0)
            .ok_or(SpsError::OutOfRange("frame_crop_left/right_offset"))?;
        let height = full_h
            .checked_sub(crop_y * (top + bottom))
            .filter(|&h| h > 0)
            .ok_or(SpsError::OutOfRange("frame_crop_top/bottom_offset"))?;
        Ok(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            id,
            width: u32::try_from(width).map_err(|_| SpsError::OutOfRange("width"))?,
            height: u32::try_from(height).map_err(|_| SpsError::OutOfRange("height"))?,
        })
    }

    /// The SDP `profile-level-id` (RFC 6184 §8.1): six hex digits, e.g. `42e01f`.
    pub fn profile_level_id(&self) -> ProfileLevelId {
        ProfileLevelId([self.profile_idc, self.constraint_flags, self.level_idc])
    }
}

/// The three bytes of `profile-level-id`; `Display` gives the six lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProfileLevelId(pub [u8; 3]);

impl fmt::Display for ProfileLevelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [p, c, l] = self.0;
        write!(f, "{p:02x}{c:02x}{l:02x}")
    }
}

/// Reads bits MSB first from an RBSP, dropping emulation prevention bytes (`00 00 03`) on the
/// fly.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    zeros: u8,
    cur: u8,
    left: u8,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            zeros: 0,
            cur: 0,
            left: 0,
        }
    }

    fn bit(&mut self) -> Result<u32, SpsError> {
        if self.left == 0 {
            let mut b = *self.data.get(self.pos).ok_or(SpsError::Truncated)?;
            self.pos += 1;
            if self.zeros >= 2 && b == 3 {
                b = *self.data.get(self.pos).ok_or(SpsError::Truncated)?;
                self.pos += 1;
                self.zeros = 0;
            }
            self.zeros = if b == 0 {
                self.zeros.saturating_add(1)
            } else {
                0
            };
            self.cur = b;
            self.left = 8;
        }
        self.left -= 1;
        Ok(u32::from((self.cur >> self.left) & 1))
    }

    fn bits(&mut self, n: u32) -> Result<u32, SpsError> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Ok(v)
    }

    fn flag(&mut self) -> Result<bool, SpsError> {
        Ok(self.bit()? == 1)
    }

    /// Unsigned exp-Golomb (§9.1), up to 32 bits of value.
    fn ue(&mut self) -> Result<u32, SpsError> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(SpsError::OutOfRange("exp-Golomb code"));
            }
        }
        let rest = self.bits(zeros)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }

    /// Signed exp-Golomb (§9.1.1).
    fn se(&mut self) -> Result<i64, SpsError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }

    fn skip_scaling_list(&mut self, size: usize) -> Result<(), SpsError> {
        let (mut last, mut next) = (8i64, 8i64);
        for _ in 0..size {
            if next != 0 {
                let delta = self.se()?;
                if !(-128..=127).contains(&delta) {
                    return Err(SpsError::OutOfRange("delta_scale"));
                }
                next = (last + delta + 256) % 256;
            }
            if next != 0 {
                last = next;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes bits MSB first, for building SPSs field by field.
    #[derive(Default)]
    struct BitWriter {
        out: Vec<u8>,
        n: u32,
    }

    impl BitWriter {
        fn bits(&mut self, v: u64, n: u32) {
            for i in (0..n).rev() {
                if self.n % 8 == 0 {
                    self.out.push(0);
                }
                let b = ((v >> i) & 1) as u8;
                *self.out.last_mut().unwrap() |= b << (7 - self.n % 8);
                self.n += 1;
            }
        }
        fn ue(&mut self, v: u64) {
            let x = v + 1;
            let len = 64 - x.leading_zeros();
            self.bits(0, len - 1);
            self.bits(x, len);
        }
        fn se(&mut self, v: i64) {
            self.ue(if v > 0 {
                2 * v as u64 - 1
            } else {
                (-2 * v) as u64
            });
        }
        /// Adds the stop bit and emulation prevention, and the NAL header.
        fn nal(mut self) -> Vec<u8> {
            self.bits(1, 1);
            let mut nal = vec![0x67];
            let mut zeros = 0;
            for b in self.out {
                if zeros >= 2 && b <= 3 {
                    nal.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                nal.push(b);
            }
            nal
        }
    }

    /// A High 4:2:2 SPS with scaling lists, POC type 1, field coding and cropping: every
    /// branch the Baseline streams of the integration tests do not take.
    #[test]
    fn parses_high_profile_fields_and_cropping() {
        let mut w = BitWriter::default();
        w.bits(122, 8); // High 4:2:2
        w.bits(0x00, 8);
        w.bits(41, 8);
        w.ue(3); // sps id
        w.ue(2); // chroma 4:2:2
        w.ue(2); // bit depth luma - 8
        w.ue(2); // bit depth chroma - 8
        w.bits(0, 1);
        w.bits(1, 1); // scaling matrix present
        for i in 0..8 {
            let present = i == 0 || i == 6;
            w.bits(present as u64, 1);
            if present {
                w.se(5);
                w.se(-13); // next = 0: the rest of the list repeats
            }
        }
        w.ue(0); // log2_max_frame_num - 4
        w.ue(1); // poc type 1
        w.bits(0, 1);
        w.se(-2);
        w.se(1);
        w.ue(2);
        w.se(3);
        w.se(-4);
        w.ue(4); // max ref frames
        w.bits(0, 1);
        w.ue(119); // 1920 wide
        w.ue(33); // 34 map units × 2 (fields) × 16 = 1088
        w.bits(0, 1); // frame_mbs_only = 0
        w.bits(1, 1);
        w.bits(1, 1);
        w.bits(1, 1); // cropping
        w.ue(0);
        w.ue(0);
        w.ue(0);
        w.ue(4); // 4:2:2 field: crop unit y = 1 × 2 → 8 lines
        let sps = Sps::parse(&w.nal()).unwrap();
        assert_eq!((sps.profile_idc, sps.level_idc, sps.id), (122, 41, 3));
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.profile_level_id().to_string(), "7a0029");
    }

    /// Baseline 1280x720 (no cropping, 45 MB rows) and 640x360 (cropped from 368).
    #[test]
    fn parses_baseline_with_and_without_cropping() {
        for (h_mbs, crop, want) in [(45, None, 720), (23, Some(4), 360)] {
            let mut w = BitWriter::default();
            w.bits(66, 8);
            w.bits(0xe0, 8);
            w.bits(31, 8);
            w.ue(0);
            w.ue(0);
            w.ue(2); // poc type 2
            w.ue(1);
            w.bits(0, 1);
            w.ue(1280 / 16 - 1);
            w.ue(h_mbs - 1);
            w.bits(1, 1);
            w.bits(1, 1);
            w.bits(crop.is_some() as u64, 1);
            if let Some(b) = crop {
                w.ue(0);
                w.ue(0);
                w.ue(0);
                w.ue(b);
            }
            let sps = Sps::parse(&w.nal()).unwrap();
            assert_eq!((sps.width, sps.height), (1280, want));
            assert_eq!(sps.profile_level_id().to_string(), "42e01f");
        }
    }

    #[test]
    fn rejects_bad_sps() {
        assert_eq!(Sps::parse(&[]), Err(SpsError::Truncated));
        assert_eq!(Sps::parse(&[0x68, 66]), Err(SpsError::NotSps(8)));
        assert_eq!(Sps::parse(&[0x67, 66, 0xe0]), Err(SpsError::Truncated));
        // 40 zero bits: exp-Golomb overflow.
        assert!(matches!(
            Sps::parse(&[0x67, 66, 0, 31, 0, 0, 3, 0, 0, 3, 0, 0]),
            Err(SpsError::OutOfRange(_) | SpsError::Truncated)
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut nal = vec![0x67];
            nal.extend(bytes);
            let _ = Sps::parse(&nal);
        }
    }
}
