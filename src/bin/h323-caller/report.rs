//! The JSON line the caller prints at the end.

use serde::Serialize;

/// The H.245 part of the report.
#[derive(Debug, Default, Serialize)]
pub struct H245Report {
    /// `none`, `tunnel` or `separate`.
    pub transport: &'static str,
    /// The gateway acknowledged our TerminalCapabilitySet.
    pub tcs_acked: bool,
    /// We received the gateway's TerminalCapabilitySet.
    pub peer_tcs: bool,
    /// Our master/slave role.
    pub msd: Option<&'static str>,
    /// Capabilities exchanged and MSD done.
    pub ready: bool,
    /// Logical channels opened (ours acknowledged plus the gateway's accepted).
    pub channels_opened: u32,
    /// The session ended (EndSessionCommand sent or received).
    pub session_ended: bool,
    /// The gateway sent EndSessionCommand first.
    pub session_ended_by_peer: bool,
}

/// The video part of the report.
#[derive(Debug, Default, Serialize)]
pub struct VideoReport {
    /// Our H.264 channel was acknowledged.
    pub channel_out: bool,
    /// The gateway opened its H.264 channel to us.
    pub channel_in: bool,
    /// The gateway's payload type for its channel.
    pub rx_channel_pt: Option<u8>,
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received.
    pub rtp_received: u64,
    /// Pictures received (marker bits).
    pub pictures_received: u64,
    /// Packets received that start an IDR picture or carry an SPS.
    pub keyframes_received: u64,
    /// Keyframes received after our videoFastUpdatePicture.
    pub keyframes_after_fast_update: u64,
    /// The payload type of the last packet received.
    pub rx_payload_type: Option<u8>,
    /// videoFastUpdatePicture requests from the gateway.
    pub fast_updates_received: u32,
    /// videoFastUpdatePicture requests we sent.
    pub fast_updates_sent: u32,
    /// FlowControlCommand sent (kbit/s).
    pub limit_sent_kbps: Option<u32>,
    /// The gateway's channels we refused (`--refuse-video`).
    pub refused_channels: u32,
}

/// The JSON line printed at the end.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The `--mode`.
    pub mode: &'static str,
    /// The gateway's address.
    pub gateway: String,
    /// Connect received.
    pub connected: bool,
    /// `accepted`, `refused` or `none`.
    pub fast_start: &'static str,
    /// H.245 tunnelling as agreed in the gateway's answer (null: no answer).
    pub tunnelling: Option<bool>,
    /// H.245.
    pub h245: H245Report,
    /// The codec we send.
    pub codec: String,
    /// The codec the gateway declared for its channel to us, if any.
    pub rx_codec: Option<String>,
    /// Our RTP address.
    pub local_rtp: Option<String>,
    /// Where we send RTP.
    pub remote_rtp: Option<String>,
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP packets received.
    pub rtp_received: u64,
    /// Received datagrams that were not RTP or did not decode.
    pub rtp_bad: u64,
    /// The payload type of the last RTP packet decoded.
    pub rx_payload_type: Option<u8>,
    /// Dominant frequency of the last ~1.5 s received.
    pub rx_tone_hz: Option<f64>,
    /// RMS level of the last ~1.5 s received (dBFS, RMS re full scale: our -10 dBFS-peak
    /// tone measures about -13).
    pub rx_rms_dbfs: Option<f64>,
    /// Seconds from the first RTP sent to the end.
    pub media_seconds: f64,
    /// Digits sent as UserInputIndication.
    pub digits_sent: String,
    /// Digits received (H.245 UserInputIndication and Q.931 keypad).
    pub digits_received: String,
    /// Who started the clearing: `local`, `peer`, `timeout`, `error`, `closed` (TCP closed
    /// without ReleaseComplete); null if the call never started.
    pub released_by: Option<&'static str>,
    /// The Q.850 cause of the ReleaseComplete (sent or received).
    pub cause: Option<u8>,
    /// Video (with `--video`).
    pub video: VideoReport,
    /// What went wrong.
    pub errors: Vec<String>,
}
