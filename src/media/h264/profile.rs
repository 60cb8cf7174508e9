//! H.264 `profile-level-id` (RFC 6184 §8.1) and the profile families that can be forwarded to
//! browsers.

/// `profile-level-id` (RFC 6184 §8.1): profile_idc, the constraint-flag byte, level_idc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileLevelId {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// `profile-iop`: constraint_set0..5 flags and reserved bits.
    pub profile_iop: u8,
    /// `level_idc` (31 = level 3.1; 11 with constraint_set3 is level 1b).
    pub level_idc: u8,
}

/// The H.264 profile families jonction can forward to browsers, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum H264Profile {
    /// Constrained Baseline (every WebRTC endpoint decodes it).
    ConstrainedBaseline,
    /// Baseline (in practice what room systems send as "baseline").
    Baseline,
    /// Main.
    Main,
    /// High.
    High,
}

impl ProfileLevelId {
    /// The RFC 6184 default when `profile-level-id` is absent: Baseline, level 1.0.
    pub const DEFAULT: ProfileLevelId = ProfileLevelId {
        profile_idc: 66,
        profile_iop: 0,
        level_idc: 10,
    };

    /// Parses the 6 hex digits; `None` for anything else.
    pub fn parse(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() != 6 || !hex.is_ascii() {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
        Some(ProfileLevelId {
            profile_idc: byte(0)?,
            profile_iop: byte(2)?,
            level_idc: byte(4)?,
        })
    }

    /// The 6 lowercase hex digits.
    pub fn to_hex(self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.profile_iop, self.level_idc
        )
    }

    /// The profile family, when it is one that can be forwarded to browsers.
    pub fn profile(self) -> Option<H264Profile> {
        let set0 = self.profile_iop & 0x80 != 0;
        let set1 = self.profile_iop & 0x40 != 0;
        match self.profile_idc {
            // Constrained Baseline: Baseline with constraint_set1, or Main/Extended with set0+set1
            // (RFC 6184 §8.1, Table 5).
            66 if set1 => Some(H264Profile::ConstrainedBaseline),
            77 | 88 if set0 && set1 => Some(H264Profile::ConstrainedBaseline),
            66 => Some(H264Profile::Baseline),
            77 => Some(H264Profile::Main),
            100 => Some(H264Profile::High),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_level_ids() {
        let cb = ProfileLevelId::parse("42e01f").expect("cb");
        assert_eq!(
            (cb.profile_idc, cb.profile_iop, cb.level_idc),
            (66, 0xe0, 31)
        );
        assert_eq!(cb.profile(), Some(H264Profile::ConstrainedBaseline));
        assert_eq!(cb.to_hex(), "42e01f");
        assert_eq!(
            ProfileLevelId::parse("42001f").and_then(ProfileLevelId::profile),
            Some(H264Profile::Baseline)
        );
        assert_eq!(
            ProfileLevelId::parse("4dc01f").and_then(ProfileLevelId::profile),
            Some(H264Profile::ConstrainedBaseline)
        );
        assert_eq!(
            ProfileLevelId::parse("640c1f").and_then(ProfileLevelId::profile),
            Some(H264Profile::High)
        );
        // High 10: not forwardable to browsers.
        assert_eq!(
            ProfileLevelId::parse("6e001f").and_then(ProfileLevelId::profile),
            None
        );
        for bad in ["", "42e0", "42e01f00", "zze01f", "42é01f"] {
            assert_eq!(ProfileLevelId::parse(bad), None, "{bad}");
        }
    }
}
