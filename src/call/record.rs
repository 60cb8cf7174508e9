//! Call records: one JSON line per call, appended and flushed to disk when the call ends.

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::media::CallMedia;
use super::video::{CallVideo, VideoStats};
use super::{CallSetup, HangupCause};

/// What is recorded about a call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallRecord {
    /// The protocol's call id (SIP Call-ID, H.323 callIdentifier in hex).
    pub call_id: String,
    /// `sip` or `h323`.
    pub protocol: String,
    /// The signalling transport: `udp`, `tcp` or `tls` (SIP), `h323`.
    pub transport: String,
    /// Room joined.
    pub room: String,
    /// Caller.
    pub from: String,
    /// Called.
    pub to: String,
    /// Codec on the device side.
    pub codec: String,
    /// Codec the caller's audio is published with in the room (`PCMU`/`PCMA`: unchanged).
    pub published_codec: String,
    /// The SDES-SRTP suite of the device's media, when encrypted (keys are never recorded).
    pub srtp: Option<String>,
    /// Device packets dropped because they failed SRTP authentication (or were replayed).
    pub srtp_rejected: u64,
    /// Start (unix ms).
    pub start_ms: u64,
    /// End (unix ms).
    pub end_ms: u64,
    /// Why it ended.
    pub end_cause: String,
    /// RTP packets accepted from the device.
    pub rtp_in: u64,
    /// RTP packets refused (strangers, unknown payload types, garbage).
    pub rtp_rejected: u64,
    /// Frames published to the room.
    pub frames_to_room: u64,
    /// Frames sent to the device.
    pub frames_to_device: u64,
    /// DTMF digits from the device (RFC 4733 or INFO) sent to the room.
    pub digits_from_device: u64,
    /// DTMF digits from the room played to the device.
    pub digits_to_device: u64,
    /// RTP packets the device's stream lost (RFC 3550 cumulative lost).
    pub rtp_lost: i64,
    /// Interarrival jitter of the device's stream, in milliseconds (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Round-trip time to the device from its RTCP reports, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Times the room leg rejoined after its signalling was lost.
    pub room_rejoins: u32,
    /// Room frames played into the device's mix (summed over the room's tracks).
    pub room_frames_mixed: u64,
    /// Room frames that reached their jitter buffer after their playout time (dropped).
    pub room_frames_late: u64,
    /// Room frames concealed because their packet never arrived in time.
    pub room_frames_concealed: u64,
    /// Room frames dropped to keep the delay down after a burst (buffer over its target).
    pub room_frames_overflow: u64,
    /// Device frames that reached the jitter buffer after their playout time (transcoded
    /// uplinks only; a passthrough uplink forwards each packet as it arrives).
    pub device_frames_late: u64,
    /// Device frames concealed because their packet never arrived (transcoded uplinks only).
    pub device_frames_concealed: u64,
    /// The video stream, when the call has one.
    pub video: Option<VideoStats>,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl CallRecord {
    /// A record for a call that starts now.
    pub fn start(s: &CallSetup, now: SystemTime) -> Self {
        Self {
            call_id: s.call_id.clone(),
            protocol: s.protocol.to_string(),
            transport: s.transport.to_string(),
            room: s.room.clone(),
            from: s.caller.clone(),
            to: s.callee.clone(),
            codec: s
                .negotiated
                .as_ref()
                .map(|n| n.codec.name.clone())
                .unwrap_or_default(),
            published_codec: String::new(),
            srtp: None,
            srtp_rejected: 0,
            start_ms: ms(now),
            end_ms: 0,
            end_cause: String::new(),
            rtp_in: 0,
            rtp_rejected: 0,
            frames_to_room: 0,
            frames_to_device: 0,
            digits_from_device: 0,
            digits_to_device: 0,
            rtp_lost: 0,
            jitter_ms: 0.0,
            rtt_ms: None,
            room_rejoins: 0,
            room_frames_mixed: 0,
            room_frames_late: 0,
            room_frames_concealed: 0,
            room_frames_overflow: 0,
            device_frames_late: 0,
            device_frames_concealed: 0,
            video: None,
        }
    }

    /// Copies the video bridge's counters.
    pub fn observe_video(&mut self, v: &CallVideo) {
        self.video = Some(v.stats());
    }

    /// Copies the media counters of the call's bridge into the record.
    pub fn observe(&mut self, m: &CallMedia) {
        self.frames_to_device = m.frames_to_device;
        self.published_codec = m.published_codec().to_string();
        if let Some((suite, st)) = m.srtp() {
            self.srtp = Some(suite.sdp_name().to_string());
            self.srtp_rejected = st.auth_failures + st.replays;
        }
        let st = m.session().receiver_stats();
        self.rtp_lost = st.cumulative_lost();
        self.jitter_ms = st.jitter_duration().as_secs_f64() * 1000.0;
        self.rtt_ms = m.session().rtt().map(|d| d.as_secs_f64() * 1000.0);
        self.room_frames_mixed = m.mixer_stats().mixed;
        let jb = m.room_jitter_stats();
        self.room_frames_late = jb.late;
        self.room_frames_concealed = jb.lost;
        self.room_frames_overflow = jb.overflow + jb.shrunk;
        if let Some(jb) = m.uplink_jitter_stats() {
            self.device_frames_late = jb.late;
            self.device_frames_concealed = jb.lost;
        }
    }

    /// Closes the record.
    pub fn finish(&mut self, cause: HangupCause, now: SystemTime) {
        self.end_ms = ms(now);
        self.end_cause = cause.as_str().to_string();
    }

    /// Appends the record as one line and flushes it to disk.
    pub fn append(&self, path: &Path) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        f.write_all(&line)?;
        f.sync_data()
    }
}
