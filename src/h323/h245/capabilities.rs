//! TerminalCapabilitySet: the one we send, and what we keep from the peer's.

use crate::h323::asn::multimedia_system_control::{
    AlternativeCapabilitySet, AudioCapability, Capability, CapabilityDescriptor,
    CapabilityDescriptorNumber, CapabilityIdentifier, CapabilityTableEntry,
    CapabilityTableEntryNumber, DataType, GenericCapability, GenericParameter, H2250Capability,
    H2250CapabilityMcCapability, MediaPacketizationCapability, MultiplexCapability,
    MultipointCapability, ParameterIdentifier, ParameterValue, RTPPayloadType,
    RTPPayloadTypePayloadDescriptor, SequenceNumber, TerminalCapabilitySet, UserInputCapability,
    VideoCapability,
};
use crate::h323::asn::rasn::types::{ObjectIdentifier, SetOf};

/// H.245 v7 protocol identifier `{itu-t(0) recommendation(0) h(8) 245 version(0) 7}`.
pub const PROTOCOL_IDENTIFIER: [u32; 6] = [0, 0, 8, 245, 0, 7];
/// H.241 H.264 generic capability identifier.
pub const H264_OID: [u32; 7] = [0, 0, 8, 241, 0, 0, 1];
/// H.241 RTP payload descriptor: single NAL unit mode (packetization-mode 0).
pub const H264_MODE0_OID: [u32; 8] = [0, 0, 8, 241, 0, 0, 0, 0];
/// H.241 RTP payload descriptor: non-interleaved mode (packetization-mode 1).
pub const H264_MODE1_OID: [u32; 8] = [0, 0, 8, 241, 0, 0, 0, 1];
/// H.241 generic parameter: profile (booleanArray).
const H264_PARAM_PROFILE: u8 = 41;
/// H.241 generic parameter: level (unsignedMin).
const H264_PARAM_LEVEL: u8 = 42;
/// H.241 profile bit of Baseline.
pub const H264_PROFILE_BASELINE: u8 = 64;
/// H.241 level code of level 3.1.
pub const H264_LEVEL_3_1: u16 = 71;

/// Audio codecs the gateway can send and receive over H.323.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// G.711 A-law, 64 kbit/s.
    Pcma,
    /// G.711 µ-law, 64 kbit/s.
    Pcmu,
    /// G.722, 64 kbit/s.
    G722,
}

/// H.264 parameters as H.241 signals them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Params {
    /// Profile bits (64 Baseline, 32 Main, 16 Extended, 8 High).
    pub profile: u8,
    /// H.241 level code (e.g. 71 = level 3.1).
    pub level: u16,
    /// Maximum bit rate in units of 100 bit/s.
    pub max_bit_rate: Option<u32>,
}

impl H264Params {
    /// What jonction sends and receives: Constrained Baseline (what WebRTC rooms send and
    /// every room system decodes) up to level 3.1, at most `max_bit_rate` (100 bit/s units).
    pub fn baseline_3_1(max_bit_rate: Option<u32>) -> Self {
        H264Params {
            profile: H264_PROFILE_BASELINE,
            level: H264_LEVEL_3_1,
            max_bit_rate,
        }
    }
}

/// A media format of a capability or a logical channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Audio, with the number of frames (milliseconds for G.711/G.722) per packet.
    Audio {
        /// The codec.
        codec: AudioCodec,
        /// Frames per packet (maximum in a capability, actual in a channel).
        frames: u16,
    },
    /// H.264 video.
    H264(H264Params),
}

impl Codec {
    /// Audio or video.
    pub fn media_kind(&self) -> super::MediaKind {
        match self {
            Codec::Audio { .. } => super::MediaKind::Audio,
            Codec::H264(_) => super::MediaKind::Video,
        }
    }
}

/// The kinds of user input (DTMF) the peer declared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserInputKinds {
    /// `basicString`: alphanumeric UII.
    pub basic_string: bool,
    /// `iA5String` or `generalString`.
    pub strings: bool,
    /// `dtmf`: signal UII.
    pub dtmf: bool,
    /// `hookflash`.
    pub hookflash: bool,
}

/// What we keep from the peer's TerminalCapabilitySet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCapabilities {
    /// Audio codecs the peer can receive, with its maximum frames per packet, in table order.
    pub audio: Vec<(AudioCodec, u16)>,
    /// H.264 the peer can receive.
    pub h264: Option<H264Params>,
    /// User input kinds the peer handles.
    pub user_input: UserInputKinds,
}

impl PeerCapabilities {
    /// The peer's maximum frames per packet for `codec`, if it can receive it.
    pub fn audio_frames(&self, codec: AudioCodec) -> Option<u16> {
        self.audio
            .iter()
            .find(|(c, _)| *c == codec)
            .map(|(_, f)| *f)
    }
}

/// Why a peer TCS cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcsProblem {
    /// A descriptor names a table entry that the table does not have.
    UndefinedTableEntryUsed,
}

/// What a received TerminalCapabilitySet means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerTcs {
    /// No table and no descriptors: the peer pauses (third-party re-routing).
    Empty,
    /// Usable capabilities.
    Capabilities(PeerCapabilities),
}

pub(crate) fn oid(arcs: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new_unchecked(arcs.to_vec().into())
}

/// The AudioCapability of `codec` with `frames` per packet.
pub(crate) fn audio_capability(codec: AudioCodec, frames: u16) -> AudioCapability {
    let frames = frames.clamp(1, 256);
    match codec {
        AudioCodec::Pcma => AudioCapability::g711Alaw64k(frames),
        AudioCodec::Pcmu => AudioCapability::g711Ulaw64k(frames),
        AudioCodec::G722 => AudioCapability::g722_64k(frames),
    }
}

/// The codec of an AudioCapability, if we support it.
pub(crate) fn audio_codec(cap: &AudioCapability) -> Option<(AudioCodec, u16)> {
    match cap {
        AudioCapability::g711Alaw64k(f) => Some((AudioCodec::Pcma, *f)),
        AudioCapability::g711Ulaw64k(f) => Some((AudioCodec::Pcmu, *f)),
        AudioCapability::g722_64k(f) => Some((AudioCodec::G722, *f)),
        _ => None,
    }
}

/// The H.241 generic capability of H.264 with `params`.
pub(crate) fn h264_capability(params: &H264Params) -> GenericCapability {
    let collapsing = vec![
        GenericParameter::new(
            ParameterIdentifier::standard(H264_PARAM_PROFILE),
            ParameterValue::booleanArray(params.profile),
            None,
        ),
        GenericParameter::new(
            ParameterIdentifier::standard(H264_PARAM_LEVEL),
            ParameterValue::unsignedMin(params.level),
            None,
        ),
    ];
    GenericCapability::new(
        CapabilityIdentifier::standard(oid(&H264_OID)),
        params.max_bit_rate,
        Some(collapsing),
        None,
        None,
        None,
    )
}

/// H.264 parameters of a generic capability, if it is H.264 (H.241).
pub(crate) fn h264_params(cap: &GenericCapability) -> Option<H264Params> {
    match &cap.capability_identifier {
        CapabilityIdentifier::standard(id) if **id == H264_OID[..] => {}
        _ => return None,
    }
    let mut params = H264Params {
        profile: 0,
        level: 0,
        max_bit_rate: cap.max_bit_rate,
    };
    for p in cap.collapsing.iter().flatten() {
        match (&p.parameter_identifier, &p.parameter_value) {
            (
                ParameterIdentifier::standard(H264_PARAM_PROFILE),
                ParameterValue::booleanArray(b),
            ) => params.profile = *b,
            (ParameterIdentifier::standard(H264_PARAM_LEVEL), ParameterValue::unsignedMin(l)) => {
                params.level = *l
            }
            _ => {}
        }
    }
    Some(params)
}

/// The codec a logical channel's DataType carries, if we support it.
pub(crate) fn data_type_codec(data_type: &DataType) -> Option<Codec> {
    match data_type {
        DataType::audioData(a) => {
            audio_codec(a).map(|(codec, frames)| Codec::Audio { codec, frames })
        }
        DataType::videoData(VideoCapability::genericVideoCapability(g)) => {
            h264_params(g).map(Codec::H264)
        }
        _ => None,
    }
}

/// The DataType of a logical channel carrying `codec`.
pub(crate) fn codec_data_type(codec: &Codec) -> DataType {
    match codec {
        Codec::Audio { codec, frames } => DataType::audioData(audio_capability(*codec, *frames)),
        Codec::H264(p) => {
            DataType::videoData(VideoCapability::genericVideoCapability(h264_capability(p)))
        }
    }
}

/// Our TerminalCapabilitySet: receive capabilities for `audio` (in preference order, 20 ms
/// frames), H.264 if `h264` is set, user input (dtmf, basicString, hookflash), one descriptor.
pub(crate) fn local_tcs(
    sequence: u8,
    audio: &[AudioCodec],
    h264: Option<&H264Params>,
) -> TerminalCapabilitySet {
    let mut table = Vec::new();
    let mut sets = Vec::new();
    let mut n: u16 = 0;
    let mut next = |cap: Capability, table: &mut Vec<CapabilityTableEntry>| {
        n += 1;
        table.push(CapabilityTableEntry::new(
            CapabilityTableEntryNumber(n),
            Some(cap),
        ));
        CapabilityTableEntryNumber(n)
    };
    let audio_set: Vec<_> = audio
        .iter()
        .map(|c| {
            next(
                Capability::receiveAudioCapability(audio_capability(*c, 20)),
                &mut table,
            )
        })
        .collect();
    if !audio_set.is_empty() {
        sets.push(AlternativeCapabilitySet(audio_set));
    }
    if let Some(p) = h264 {
        let e = next(
            Capability::receiveVideoCapability(VideoCapability::genericVideoCapability(
                h264_capability(p),
            )),
            &mut table,
        );
        sets.push(AlternativeCapabilitySet(vec![e]));
    }
    for ui in [
        UserInputCapability::dtmf(()),
        UserInputCapability::basicString(()),
        UserInputCapability::hookflash(()),
    ] {
        let e = next(
            Capability::receiveAndTransmitUserInputCapability(ui),
            &mut table,
        );
        sets.push(AlternativeCapabilitySet(vec![e]));
    }
    let packetization = MediaPacketizationCapability::new(
        false,
        h264.map(|_| {
            vec![
                RTPPayloadType::new(
                    RTPPayloadTypePayloadDescriptor::oid(oid(&H264_MODE0_OID)),
                    None,
                ),
                RTPPayloadType::new(
                    RTPPayloadTypePayloadDescriptor::oid(oid(&H264_MODE1_OID)),
                    None,
                ),
            ]
        }),
    );
    let multipoint = || MultipointCapability::new(false, false, Vec::new());
    let h2250 = H2250Capability::new(
        250,
        multipoint(),
        multipoint(),
        multipoint(),
        H2250CapabilityMcCapability::new(false, false),
        false,
        packetization,
        None,
        None,
        Some(false),
        Some(false),
    );
    TerminalCapabilitySet::new(
        SequenceNumber(sequence),
        oid(&PROTOCOL_IDENTIFIER),
        Some(MultiplexCapability::h2250Capability(h2250)),
        Some(SetOf::from_vec(table)),
        Some(SetOf::from_vec(vec![CapabilityDescriptor::new(
            CapabilityDescriptorNumber(0),
            Some(SetOf::from_vec(sets)),
        )])),
        None,
    )
}

/// Reads the peer's TerminalCapabilitySet.
pub(crate) fn parse_peer_tcs(tcs: &TerminalCapabilitySet) -> Result<PeerTcs, TcsProblem> {
    if tcs.capability_table.is_none() && tcs.capability_descriptors.is_none() {
        return Ok(PeerTcs::Empty);
    }
    let table: Vec<&CapabilityTableEntry> = tcs
        .capability_table
        .as_ref()
        .map(|t| t.iter().collect())
        .unwrap_or_default();
    let find = |n: &CapabilityTableEntryNumber| {
        table
            .iter()
            .find(|e| e.capability_table_entry_number == *n)
            .copied()
    };
    // The entries that count: those the descriptors name, else the whole table.
    let mut used: Vec<&CapabilityTableEntry> = Vec::new();
    match &tcs.capability_descriptors {
        Some(descriptors) => {
            for d in descriptors.iter() {
                for set in d.simultaneous_capabilities.iter().flat_map(|s| s.iter()) {
                    for n in &set.0 {
                        let entry = find(n).ok_or(TcsProblem::UndefinedTableEntryUsed)?;
                        if !used.iter().any(|u| u.capability_table_entry_number == *n) {
                            used.push(entry);
                        }
                    }
                }
            }
            used.sort_by_key(|e| e.capability_table_entry_number.0);
        }
        None => used = table.clone(),
    }
    let mut caps = PeerCapabilities::default();
    for entry in used {
        let Some(cap) = &entry.capability else {
            continue;
        };
        match cap {
            Capability::receiveAudioCapability(a)
            | Capability::receiveAndTransmitAudioCapability(a) => {
                if let Some((codec, frames)) = audio_codec(a) {
                    if caps.audio_frames(codec).is_none() {
                        caps.audio.push((codec, frames));
                    }
                }
            }
            Capability::receiveVideoCapability(VideoCapability::genericVideoCapability(g))
            | Capability::receiveAndTransmitVideoCapability(
                VideoCapability::genericVideoCapability(g),
            ) => {
                if let Some(p) = h264_params(g) {
                    // Keep the best level the peer offers.
                    if caps.h264.is_none_or(|old| old.level < p.level) {
                        caps.h264 = Some(p);
                    }
                }
            }
            Capability::receiveUserInputCapability(u)
            | Capability::receiveAndTransmitUserInputCapability(u) => match u {
                UserInputCapability::basicString(()) => caps.user_input.basic_string = true,
                UserInputCapability::iA5String(()) | UserInputCapability::generalString(()) => {
                    caps.user_input.strings = true
                }
                UserInputCapability::dtmf(()) => caps.user_input.dtmf = true,
                UserInputCapability::hookflash(()) => caps.user_input.hookflash = true,
                _ => {}
            },
            _ => {}
        }
    }
    Ok(PeerTcs::Capabilities(caps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h323::asn::rasn::aper;

    #[test]
    fn local_tcs_round_trips_and_parses_back() {
        let h264 = H264Params {
            profile: H264_PROFILE_BASELINE,
            level: H264_LEVEL_3_1,
            max_bit_rate: Some(19_200),
        };
        let tcs = local_tcs(
            1,
            &[AudioCodec::G722, AudioCodec::Pcmu, AudioCodec::Pcma],
            Some(&h264),
        );
        let bytes = aper::encode(&tcs).expect("encode");
        let back: TerminalCapabilitySet = aper::decode(&bytes).expect("decode");
        assert_eq!(back, tcs);
        let PeerTcs::Capabilities(caps) = parse_peer_tcs(&back).expect("usable") else {
            panic!("not empty")
        };
        assert_eq!(
            caps.audio,
            vec![
                (AudioCodec::G722, 20),
                (AudioCodec::Pcmu, 20),
                (AudioCodec::Pcma, 20)
            ]
        );
        assert_eq!(caps.h264, Some(h264));
        assert!(caps.user_input.dtmf && caps.user_input.basic_string && caps.user_input.hookflash);
    }

    #[test]
    fn descriptor_naming_a_missing_entry_is_unusable() {
        let mut tcs = local_tcs(1, &[AudioCodec::Pcma], None);
        tcs.capability_descriptors = Some(SetOf::from_vec(vec![CapabilityDescriptor::new(
            CapabilityDescriptorNumber(0),
            Some(SetOf::from_vec(vec![AlternativeCapabilitySet(vec![
                CapabilityTableEntryNumber(99),
            ])])),
        )]));
        assert_eq!(
            parse_peer_tcs(&tcs),
            Err(TcsProblem::UndefinedTableEntryUsed)
        );
    }

    #[test]
    fn empty_tcs_is_a_pause() {
        let mut tcs = local_tcs(3, &[AudioCodec::Pcma], None);
        tcs.capability_table = None;
        tcs.capability_descriptors = None;
        assert_eq!(parse_peer_tcs(&tcs), Ok(PeerTcs::Empty));
    }
}
