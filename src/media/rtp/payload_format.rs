//! RTP payload formats, named as SDP's `a=rtpmap`/`a=fmtp` name them (H.323 channels map to
//! the same names): the static payload types of RFC 3551 §6 (table 4), `telephone-event`
//! (RFC 4733 §7) and the Opus parameters of RFC 7587 §6/§7.

use std::fmt;

/// An RTP payload format as SDP names it: what `a=rtpmap` (or a static payload type) and
/// `a=fmtp` say. The media layer maps it to its own codec type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpCodec {
    /// Encoding name as written by the peer (`PCMU`, `opus`, ...); compare it with
    /// [`RtpCodec::is`], which ignores case (RFC 4855 §3).
    pub name: String,
    /// RTP clock rate in Hz. G.722 says 8000 although it samples at 16 kHz (RFC 3551 §4.5.2).
    pub clock_rate: u32,
    /// Number of channels (the rtpmap encoding parameter; 1 when absent).
    pub channels: u8,
    /// The `a=fmtp` parameters, verbatim, if any.
    pub fmtp: Option<String>,
}

impl RtpCodec {
    /// A codec description without fmtp.
    pub fn new(name: impl Into<String>, clock_rate: u32, channels: u8) -> Self {
        RtpCodec {
            name: name.into(),
            clock_rate,
            channels,
            fmtp: None,
        }
    }

    /// The same description with these fmtp parameters.
    pub fn with_fmtp(mut self, fmtp: impl Into<String>) -> Self {
        self.fmtp = Some(fmtp.into());
        self
    }

    /// The codecs jonction knows how to offer, by configuration name (case-insensitive):
    /// `opus` (RFC 7587: `opus/48000/2`, fmtp `useinbandfec=1; minptime=10`), `G722`, `PCMA`,
    /// `PCMU`.
    pub fn well_known(name: &str) -> Option<RtpCodec> {
        let codec = match name.to_ascii_lowercase().as_str() {
            "opus" => RtpCodec::new("opus", 48_000, 2).with_fmtp(OPUS_FMTP),
            "g722" => RtpCodec::new("G722", 8_000, 1),
            "pcma" => RtpCodec::new("PCMA", 8_000, 1),
            "pcmu" => RtpCodec::new("PCMU", 8_000, 1),
            _ => return None,
        };
        Some(codec)
    }

    /// Whether the encoding name is `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Whether this is RFC 4733 `telephone-event`.
    pub fn is_telephone_event(&self) -> bool {
        self.is(TELEPHONE_EVENT)
    }

    /// Whether this is comfort noise (`CN`, RFC 3389), which is never a call's main codec.
    pub fn is_comfort_noise(&self) -> bool {
        self.is("CN")
    }

    /// Whether `other` is the same payload format: same name (ignoring case) and clock rate.
    /// Channels are not compared: RFC 7587 §7 fixes Opus at `/2` whatever is really sent,
    /// and some devices still write `opus/48000` or `opus/48000/1`.
    pub fn matches(&self, other: &RtpCodec) -> bool {
        self.is(&other.name) && self.clock_rate == other.clock_rate
    }

    /// The payload type RFC 3551 assigns to this format, if it has one.
    pub fn static_payload_type(&self) -> Option<u8> {
        STATIC_PAYLOAD_TYPES
            .iter()
            .find(|(_, name, rate, _)| self.is(name) && self.clock_rate == *rate)
            .map(|(pt, ..)| *pt)
    }

    /// The `a=rtpmap` value for payload type `pt` (`0 PCMU/8000`, `111 opus/48000/2`).
    pub fn rtpmap(&self, pt: u8) -> String {
        if self.channels > 1 {
            format!("{pt} {}/{}/{}", self.name, self.clock_rate, self.channels)
        } else {
            format!("{pt} {}/{}", self.name, self.clock_rate)
        }
    }

    /// The Opus parameters of the fmtp line (all absent when this is not Opus or has none).
    pub fn opus_params(&self) -> OpusParams {
        OpusParams::from_fmtp(self.fmtp.as_deref().unwrap_or(""))
    }
}

impl fmt::Display for RtpCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.clock_rate)?;
        if self.channels > 1 {
            write!(f, "/{}", self.channels)?;
        }
        Ok(())
    }
}

/// The encoding name of RFC 4733 named telephone events (DTMF).
pub const TELEPHONE_EVENT: &str = "telephone-event";

/// The fmtp we put on `telephone-event`: the 16 DTMF digits and flash (RFC 4733 §3.2).
pub const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// The fmtp we put on Opus (RFC 7587 §6.1): what we want to receive.
pub const OPUS_FMTP: &str = "useinbandfec=1; minptime=10";

/// Static payload types we can name without an rtpmap (RFC 3551 §6, table 4): payload type,
/// encoding name, clock rate, channels. Only audio; video static types are obsolete.
const STATIC_PAYLOAD_TYPES: &[(u8, &str, u32, u8)] = &[
    (0, "PCMU", 8_000, 1),
    (3, "GSM", 8_000, 1),
    (4, "G723", 8_000, 1),
    (8, "PCMA", 8_000, 1),
    (9, "G722", 8_000, 1),
    (13, "CN", 8_000, 1),
    (18, "G729", 8_000, 1),
];

/// The format a static payload type stands for when no rtpmap says otherwise.
pub fn static_payload(pt: u8) -> Option<RtpCodec> {
    STATIC_PAYLOAD_TYPES
        .iter()
        .find(|(p, ..)| *p == pt)
        .map(|&(_, name, rate, channels)| RtpCodec::new(name, rate, channels))
}

/// Parses an `a=rtpmap` value, `<pt> <name>/<rate>[/<channels>]`, leniently about spaces.
/// Returns `None` for anything malformed, so the caller can skip the line.
pub(crate) fn parse_rtpmap(value: &str) -> Option<(u8, RtpCodec)> {
    let (pt, rest) = value.trim().split_once(char::is_whitespace)?;
    let pt = parse_payload_type(pt)?;
    let mut parts = rest.trim().split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let clock_rate = parts.next()?.trim().parse().ok().filter(|r| *r > 0)?;
    let channels = match parts.next() {
        Some(c) => c.trim().parse().ok().filter(|c| *c > 0)?,
        None => 1,
    };
    Some((pt, RtpCodec::new(name, clock_rate, channels)))
}

/// Parses an `a=fmtp` value, `<format> <parameters>`, into the format and the parameters.
pub(crate) fn parse_fmtp(value: &str) -> Option<(&str, &str)> {
    let value = value.trim();
    match value.split_once(char::is_whitespace) {
        Some((format, params)) => Some((format, params.trim())),
        None if !value.is_empty() => Some((value, "")),
        None => None,
    }
}

/// An RTP payload type number, 0..=127.
pub(crate) fn parse_payload_type(s: &str) -> Option<u8> {
    s.trim().parse::<u8>().ok().filter(|pt| *pt <= 127)
}

/// Iterates over the `key=value` pairs of an fmtp parameter string (`;`-separated, spaces
/// allowed around them); keys are returned as written, values may be empty.
pub fn fmtp_params(params: &str) -> impl Iterator<Item = (&str, &str)> {
    params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (p, ""),
        })
}

/// The Opus fmtp parameters of RFC 7587 §6.1 that matter to the media layer. Each is `None`
/// when absent; RFC 7587 gives the defaults (48000 Hz, mono, no FEC, no DTX, VBR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpusParams {
    /// `maxplaybackrate`: the highest rate the peer's decoder will play, in Hz.
    pub max_playback_rate: Option<u32>,
    /// `sprop-maxcapturerate`: the highest rate the peer captures at, in Hz.
    pub sprop_max_capture_rate: Option<u32>,
    /// `stereo`: whether the peer prefers to receive stereo.
    pub stereo: Option<bool>,
    /// `sprop-stereo`: whether the peer is likely to send stereo.
    pub sprop_stereo: Option<bool>,
    /// `useinbandfec`: whether the peer can decode in-band FEC.
    pub use_inband_fec: Option<bool>,
    /// `usedtx`: whether the peer prefers DTX.
    pub use_dtx: Option<bool>,
    /// `cbr`: whether the peer prefers constant bit rate.
    pub cbr: Option<bool>,
    /// `maxaveragebitrate`: the peer's receive bit-rate cap, in bit/s.
    pub max_average_bitrate: Option<u32>,
}

impl OpusParams {
    /// Reads the parameters from an fmtp string; unknown or malformed ones are ignored.
    pub fn from_fmtp(params: &str) -> Self {
        let mut opus = OpusParams::default();
        for (key, value) in fmtp_params(params) {
            let number = value.parse::<u32>().ok();
            let flag = match value {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            };
            match key.to_ascii_lowercase().as_str() {
                "maxplaybackrate" => opus.max_playback_rate = number,
                "sprop-maxcapturerate" => opus.sprop_max_capture_rate = number,
                "stereo" => opus.stereo = flag,
                "sprop-stereo" => opus.sprop_stereo = flag,
                "useinbandfec" => opus.use_inband_fec = flag,
                "usedtx" => opus.use_dtx = flag,
                "cbr" => opus.cbr = flag,
                "maxaveragebitrate" => opus.max_average_bitrate = number,
                _ => {}
            }
        }
        opus
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap_values() {
        type Want = Option<(u8, &'static str, u32, u8)>;
        let cases: &[(&str, Want)] = &[
            ("0 PCMU/8000", Some((0, "PCMU", 8000, 1))),
            ("111 opus/48000/2", Some((111, "opus", 48000, 2))),
            (
                "101  telephone-event/8000 ",
                Some((101, "telephone-event", 8000, 1)),
            ),
            ("9 G722/8000/1", Some((9, "G722", 8000, 1))),
            ("128 foo/8000", None),
            ("x PCMU/8000", None),
            ("96 PCMU", None),
            ("96 PCMU/0", None),
            ("96 opus/48000/0", None),
            ("96", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = parse_rtpmap(input).map(|(pt, c)| (pt, c.name, c.clock_rate, c.channels));
            let want = want.map(|(pt, n, r, ch)| (pt, n.to_string(), r, ch));
            assert_eq!(got, want, "{input:?}");
        }
    }

    #[test]
    fn static_types() {
        assert_eq!(static_payload(0), Some(RtpCodec::new("PCMU", 8000, 1)));
        assert_eq!(static_payload(8), Some(RtpCodec::new("PCMA", 8000, 1)));
        assert_eq!(static_payload(9), Some(RtpCodec::new("G722", 8000, 1)));
        assert_eq!(static_payload(96), None);
        assert_eq!(
            RtpCodec::new("pcma", 8000, 1).static_payload_type(),
            Some(8)
        );
        assert_eq!(RtpCodec::new("opus", 48000, 2).static_payload_type(), None);
    }

    #[test]
    fn well_known_codecs() {
        let opus = RtpCodec::well_known("OPUS").expect("opus is well known");
        assert_eq!(opus.rtpmap(111), "111 opus/48000/2");
        assert_eq!(opus.fmtp.as_deref(), Some("useinbandfec=1; minptime=10"));
        assert_eq!(
            RtpCodec::well_known("g722").map(|c| c.rtpmap(9)).as_deref(),
            Some("9 G722/8000")
        );
        assert!(RtpCodec::well_known("G729").is_none());
    }

    #[test]
    fn opus_fmtp() {
        let p = OpusParams::from_fmtp(
            "maxplaybackrate=16000;sprop-maxcapturerate=16000; stereo=1;sprop-stereo=1;\
             useinbandfec=1;usedtx=0;maxaveragebitrate=20000;bogus;cbr=x",
        );
        assert_eq!(
            p,
            OpusParams {
                max_playback_rate: Some(16000),
                sprop_max_capture_rate: Some(16000),
                stereo: Some(true),
                sprop_stereo: Some(true),
                use_inband_fec: Some(true),
                use_dtx: Some(false),
                cbr: None,
                max_average_bitrate: Some(20000),
            }
        );
        assert_eq!(OpusParams::from_fmtp(""), OpusParams::default());
    }

    #[test]
    fn fmtp_split() {
        assert_eq!(parse_fmtp("101 0-15"), Some(("101", "0-15")));
        assert_eq!(parse_fmtp("96   a=1; b=2 "), Some(("96", "a=1; b=2")));
        assert_eq!(parse_fmtp("96"), Some(("96", "")));
        assert_eq!(parse_fmtp("  "), None);
    }
}
