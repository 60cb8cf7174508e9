//! The media bridge of one call, sans-IO: the device's RTP session on one side, the room's
//! frames on the other.
//!
//! - device → room: G.711 and Opus payloads go to the room unchanged (LiveKit accepts PCMU, PCMA
//!   and Opus), so that direction costs no codec work; G.722 is decoded and re-encoded to Opus
//!   at 16 kHz (no resampler). RFC 4733 digits become `SipDTMF` data packets.
//! - room → device: every subscribed audio track goes through its own adaptive jitter buffer
//!   (bursts, reordering, late frames), is decoded at the device codec's PCM rate (libopus
//!   decodes at 8/16/48 kHz directly; lost frames are concealed by the codec), mixed (the
//!   caller's own track is never subscribed: mix-minus), encoded with the device codec and sent
//!   every 20 ms; `SipDTMF` from the room becomes RFC 4733 events.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::media::codec::g711::Law;
use crate::media::codec::{AudioDecoder, AudioEncoder, Codec, Decoder, Encoder};
use crate::media::dtmf::{digit_packets, DtmfReceiver};
use crate::media::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use crate::media::level;
use crate::media::mixer::Mixer;
use crate::media::negotiated::{Negotiated, SrtpKeys};
use crate::media::rtp::stats::NtpClock;
use crate::media::rtp::Ssrc;
use crate::media::session::{RtpSession, SessionConfig, SessionEvent};
use crate::media::srtp::{SrtpSession, SrtpStats, SrtpSuite};

/// Frame duration of the bridge.
pub const FRAME: Duration = Duration::from_millis(20);

/// What the device sent, for the room.
#[derive(Debug, PartialEq, Eq)]
pub enum ToRoom {
    /// A frame to publish: codec name for the room track, RTP time and clock rate, payload.
    Frame {
        /// `PCMU`, `PCMA` or `opus`.
        mime: &'static str,
        /// Media time in `clock` units.
        time: u64,
        /// Clock rate of `time`.
        clock: u32,
        /// Encoded payload.
        payload: Vec<u8>,
        /// Its RFC 6464 level (-dBov), for the room's active speaker detection.
        level: Option<u8>,
    },
    /// A DTMF digit pressed on the device.
    Digit(char),
}

/// The codec the device uses, as the media layer knows it.
pub fn device_codec(n: &Negotiated) -> Option<Codec> {
    Codec::from_rtpmap(&n.codec.name, n.clock_rate)
}

enum Uplink {
    /// Published as received, its level read on the way.
    Passthrough(&'static str, Meter),
    /// G.722 → Opus at 16 kHz, or G.711 → Opus at 8 kHz (when the room does not take G.711 or
    /// Opus publishing is configured): no resampler; played out of a jitter buffer
    /// (reordering, loss concealment) before decoding.
    Transcode {
        dec: Box<Decoder>,
        enc: Box<Encoder>,
        jb: Box<JitterBuffer>,
        next_pop: Instant,
        pcm: Vec<i16>,
        /// Samples per 20 ms at the transcoding rate.
        frame: usize,
        time: u64,
    },
}

/// How the level of a frame published as received is read.
enum Meter {
    /// Through the law's table, no decoding.
    G711(Law),
    /// By decoding it at 8 kHz, which is plenty for a level and the cheapest Opus decode.
    Opus(Box<Decoder>),
}

impl Meter {
    /// The level of one payload; `None` when it does not decode.
    fn level(&mut self, payload: &[u8]) -> Option<u8> {
        match self {
            Meter::G711(law) => Some(level::of_g711(*law, payload)),
            Meter::Opus(dec) => {
                // Up to 120 ms at 8 kHz.
                let mut pcm = [0i16; 960];
                let n = dec.decode(payload, &mut pcm).ok()?;
                Some(level::of_pcm(&pcm[..n]))
            }
        }
    }
}

impl Uplink {
    /// Decoding `codec` and encoding Opus at `rate` (the codec's own PCM rate).
    fn transcode(now: Instant, codec: Codec, rate: u32) -> Result<Uplink, MediaError> {
        Ok(Uplink::Transcode {
            dec: Box::new(codec.decoder(rate)?),
            enc: Box::new(Codec::Opus.encoder(rate)?),
            jb: Box::new(JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate()))),
            next_pop: now + FRAME,
            pcm: Vec::with_capacity(rate as usize / 50 * 3),
            frame: rate as usize / 50,
            time: 0,
        })
    }
}

/// One subscribed room track on its way to the mix: jitter buffer → decoder → PCM.
struct RoomTrack {
    /// Its mixer input.
    input: u32,
    dec: Decoder,
    jb: JitterBuffer,
    /// Decoded samples not mixed yet (a frame longer than the mix's 20 ms leaves a tail).
    pcm: Vec<i16>,
}

/// The bridge.
pub struct CallMedia {
    codec: Codec,
    pt: u8,
    dtmf_pt: Option<u8>,
    session: RtpSession,
    dtmf_rx: DtmfReceiver,
    uplink: Uplink,
    mixer: Mixer<u32>,
    downlink_enc: Encoder,
    /// Per room track (by track sid): its jitter buffer, decoder and mixer input.
    tracks: HashMap<String, RoomTrack>,
    /// Jitter-buffer counters of room tracks that went away.
    removed_track_stats: JitterStats,
    next_input: u32,
    next_tick: Instant,
    /// RFC 4733 packets to send: (when, marker, payload, first of its event).
    dtmf_out: VecDeque<(Instant, bool, [u8; 4], bool)>,
    scratch: Vec<i16>,
    out: Vec<u8>,
    /// Gateway audio (voice prompts) at the mix rate, played to the device over the room mix.
    announcement: VecDeque<i16>,
    /// Frames sent to the device.
    pub frames_to_device: u64,
    /// Room frames that could not be decoded (unknown codec, garbage).
    pub room_frames_dropped: u64,
    /// SDES-SRTP on the device side, when negotiated.
    srtp: Option<SrtpSession>,
    srtp_keys: Option<SrtpKeys>,
}

/// Why the bridge cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The negotiated codec is not one the media layer implements.
    #[error("codec {0} is not supported by the media engine")]
    Codec(String),
    /// A codec failed to start.
    #[error("codec: {0}")]
    Init(#[from] crate::media::codec::CodecError),
    /// The SRTP keys could not be installed.
    #[error("{0}")]
    Srtp(#[from] crate::media::srtp::SrtpError),
    /// The mixer refused the rate.
    #[error("mixer: {0}")]
    Mixer(#[from] crate::media::mixer::MixerError),
}

impl CallMedia {
    /// A bridge for a negotiated stream.
    pub fn new(
        now: Instant,
        wallclock: Duration,
        n: &Negotiated,
        media_timeout: Duration,
    ) -> Result<Self, MediaError> {
        let codec = device_codec(n).ok_or_else(|| MediaError::Codec(n.codec.name.clone()))?;
        // The mix runs at the device's PCM rate; Opus devices get a 48 kHz mix.
        let rate = codec.pcm_rate();
        let mut pts = vec![n.pt];
        pts.extend(n.dtmf_pt);
        let seed: u64 = rand::random();
        let session = RtpSession::new(
            now,
            SessionConfig {
                local_ssrc: Ssrc(rand::random()),
                clock_rate: n.clock_rate,
                remote_rtp: n.remote_rtp,
                remote_rtcp: n.remote_rtcp,
                rtcp_mux: n.rtcp_mux,
                payload_types: pts,
                remote_ssrc: None,
                media_timeout: n.direction.receives().then_some(media_timeout),
                cname: format!("jonction-{:x}", seed & 0xffff_ffff),
                ntp: NtpClock::new(now, wallclock),
                rtcp_interval: Duration::from_secs(5),
                seed,
            },
        );
        let uplink = match codec {
            Codec::Pcmu => Uplink::Passthrough("PCMU", Meter::G711(Law::Mu)),
            Codec::Pcma => Uplink::Passthrough("PCMA", Meter::G711(Law::A)),
            Codec::Opus => {
                Uplink::Passthrough("opus", Meter::Opus(Box::new(Codec::Opus.decoder(8000)?)))
            }
            Codec::G722 => Uplink::transcode(now, Codec::G722, 16_000)?,
        };
        Ok(Self {
            codec,
            pt: n.pt,
            dtmf_pt: n.dtmf_pt,
            session,
            dtmf_rx: DtmfReceiver::new(n.clock_rate),
            uplink,
            mixer: Mixer::new(rate)?,
            downlink_enc: codec.encoder(rate)?,
            tracks: HashMap::new(),
            removed_track_stats: JitterStats::default(),
            next_input: 0,
            next_tick: now + FRAME,
            dtmf_out: VecDeque::new(),
            announcement: VecDeque::new(),
            scratch: vec![0; rate as usize / 50 * 6],
            out: vec![0; 1500],
            frames_to_device: 0,
            room_frames_dropped: 0,
            srtp: n
                .srtp
                .as_ref()
                .map(|k| SrtpSession::new(&k.local, &k.remote))
                .transpose()?,
            srtp_keys: n.srtp.clone(),
        })
    }

    /// The device codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The RTP session (counters, stats).
    pub fn session(&self) -> &RtpSession {
        &self.session
    }

    /// Publishes a G.711 caller as Opus from now on (decode + Opus encode at 8 kHz) instead of
    /// unchanged. Other codecs keep their uplink.
    pub fn publish_as_opus(&mut self, now: Instant) -> Result<(), MediaError> {
        if let (Codec::Pcmu | Codec::Pcma, Uplink::Passthrough(..)) = (self.codec, &self.uplink) {
            self.uplink = Uplink::transcode(now, self.codec, 8000)?;
        }
        Ok(())
    }

    /// The codec the caller's audio is published with (`PCMU`, `PCMA` or `opus`).
    pub fn published_codec(&self) -> &'static str {
        match &self.uplink {
            Uplink::Passthrough(mime, _) => mime,
            Uplink::Transcode { .. } => "opus",
        }
    }

    /// The SRTP suite and counters of the device side, when it is encrypted.
    pub fn srtp(&self) -> Option<(SrtpSuite, SrtpStats)> {
        self.srtp.as_ref().map(|s| (s.suite(), s.stats()))
    }

    /// The room mix's counters (late and dropped room frames).
    pub fn mixer_stats(&self) -> crate::media::mixer::MixerStats {
        self.mixer.stats()
    }

    /// The uplink jitter buffer's counters, when the uplink is transcoded.
    pub fn uplink_jitter_stats(&self) -> Option<crate::media::jitter::JitterStats> {
        match &self.uplink {
            Uplink::Transcode { jb, .. } => Some(jb.stats()),
            Uplink::Passthrough(..) => None,
        }
    }

    /// A datagram on the call's RTP port (RTP or, with rtcp-mux, RTCP).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Vec<ToRoom> {
        let mut out = Vec::new();
        let is_rtcp = data.len() >= 2 && (200..=206).contains(&data[1]);
        // SRTP: only authenticated packets go on (failures are counted by the session).
        let clear;
        let data = match self.srtp.as_mut().map(|s| s.unprotect(data, is_rtcp)) {
            Some(Ok(c)) => {
                clear = c;
                &clear[..]
            }
            Some(Err(_)) => return out,
            None => data,
        };
        if is_rtcp {
            let _ = self.session.handle_rtcp(now, from, data);
            return out;
        }
        let Ok(rx) = self.session.handle_rtp(now, from, data) else {
            return out;
        };
        let pkt = rx.packet;
        let pt = pkt.pt();
        if Some(pt) == self.dtmf_pt {
            if let Ok(Some(d)) = self
                .dtmf_rx
                .handle_packet(now, pkt.timestamp(), pkt.payload())
            {
                out.push(ToRoom::Digit(d.digit));
            }
            return out;
        }
        if pt != self.pt {
            return out;
        }
        match &mut self.uplink {
            Uplink::Passthrough(mime, meter) => out.push(ToRoom::Frame {
                mime,
                time: u64::from(pkt.timestamp()),
                clock: self.codec.rtp_clock_rate(),
                payload: pkt.payload().to_vec(),
                level: meter.level(pkt.payload()),
            }),
            Uplink::Transcode { jb, .. } => {
                jb.push(now, pkt.ssrc(), rx.seq, pkt.timestamp(), pkt.payload());
            }
        }
        out
    }

    /// Plays the transcoded uplink out of its jitter buffer: decode (or conceal), then Opus.
    fn uplink_playout(&mut self, now: Instant, out: &mut Vec<ToRoom>) {
        let Uplink::Transcode {
            dec,
            enc,
            jb,
            next_pop,
            pcm,
            frame,
            time,
        } = &mut self.uplink
        else {
            return;
        };
        let period = jb.frame_duration().max(Duration::from_millis(10));
        for due in owed_ticks(next_pop, now, period) {
            let mut buf = [0i16; 960];
            let n = match jb.pop(due) {
                Playout::Frame(f) => dec.decode(&f.payload, &mut buf).unwrap_or(0),
                Playout::Missing => dec.conceal(&mut buf[..*frame]).unwrap_or(0),
                Playout::Empty => 0,
            };
            pcm.extend_from_slice(&buf[..n]);
        }
        // Opus takes the 20 ms frames.
        while pcm.len() >= *frame {
            let mut bytes = [0u8; 400];
            let encoded = enc.encode(&pcm[..*frame], &mut bytes);
            let level = level::of_pcm(&pcm[..*frame]);
            pcm.drain(..*frame);
            if let Ok(len) = encoded {
                *time += 960;
                out.push(ToRoom::Frame {
                    mime: "opus",
                    time: *time,
                    clock: 48_000,
                    payload: bytes[..len].to_vec(),
                    level: Some(level),
                });
            }
        }
    }

    /// A frame of a subscribed room track (`codec` from its payload parameters; `seq` its
    /// extended RTP sequence number, `rtp_ts` its RTP timestamp). It is buffered, and played
    /// into the mix at the next ticks.
    pub fn handle_room_frame(
        &mut self,
        now: Instant,
        track: &str,
        codec: Codec,
        seq: u64,
        rtp_ts: u32,
        payload: &[u8],
    ) {
        let rate = self.mixer_rate();
        if !self.tracks.contains_key(track) {
            if !codec.supports_pcm_rate(rate) {
                self.room_frames_dropped += 1;
                return;
            }
            let Ok(dec) = codec.decoder(rate) else {
                self.room_frames_dropped += 1;
                return;
            };
            self.next_input += 1;
            if self.mixer.add_input(self.next_input).is_err() {
                self.room_frames_dropped += 1;
                return;
            }
            let jb = JitterBuffer::new(JitterConfig::new(codec.rtp_clock_rate()));
            self.tracks.insert(
                track.to_string(),
                RoomTrack {
                    input: self.next_input,
                    dec,
                    jb,
                    pcm: Vec::with_capacity(rate as usize / 50 * 3),
                },
            );
        }
        if let Some(t) = self.tracks.get_mut(track) {
            t.jb.push(now, Ssrc(0), seq, rtp_ts, payload);
        }
    }

    /// Plays every room track's next 20 ms into the mixer (decoding or concealing).
    fn room_playout(&mut self, now: Instant) {
        let frame = self.mixer.frame_len();
        let rate = self.mixer_rate() as u64;
        for t in self.tracks.values_mut() {
            // Frames of other lengths than 20 ms: pop until a mix frame is there (bounded).
            let mut pops = 0;
            while t.pcm.len() < frame && pops < 6 {
                pops += 1;
                let n = match t.jb.pop(now) {
                    Playout::Frame(f) => match t.dec.decode(&f.payload, &mut self.scratch) {
                        Ok(n) => n,
                        Err(_) => {
                            self.room_frames_dropped += 1;
                            continue;
                        }
                    },
                    Playout::Missing => {
                        let lost =
                            (t.jb.frame_duration().as_micros() as u64 * rate / 1_000_000) as usize;
                        let lost = lost.clamp(1, self.scratch.len());
                        t.dec.conceal(&mut self.scratch[..lost]).unwrap_or(0)
                    }
                    Playout::Empty => break,
                };
                t.pcm.extend_from_slice(&self.scratch[..n]);
            }
            if t.pcm.len() >= frame {
                let _ = self.mixer.push(t.input, &t.pcm[..frame]);
                t.pcm.drain(..frame);
            }
        }
    }

    /// A room track went away.
    pub fn remove_track(&mut self, track: &str) {
        if let Some(t) = self.tracks.remove(track) {
            self.removed_track_stats.add(&t.jb.stats());
            let _ = self.mixer.remove_input(t.input);
        }
    }

    /// The rate of the device-side mix: what [`CallMedia::play_pcm`] takes.
    pub fn pcm_rate(&self) -> u32 {
        self.mixer_rate()
    }

    /// Queues gateway audio (a voice prompt, mono at [`CallMedia::pcm_rate`]) for the device,
    /// after what is already queued; it is added to the room mix 20 ms at a time.
    pub fn play_pcm(&mut self, pcm: &[i16]) {
        self.announcement.extend(pcm.iter().copied());
    }

    /// Audio still queued by [`CallMedia::play_pcm`].
    pub fn announcement_left(&self) -> Duration {
        Duration::from_micros(
            self.announcement.len() as u64 * 1_000_000 / u64::from(self.mixer_rate()),
        )
    }

    /// Drops queued gateway audio (the caller typed over the prompt).
    pub fn stop_announcement(&mut self) {
        self.announcement.clear();
    }

    /// Forgets every room track (the room leg was replaced).
    pub fn remove_all_tracks(&mut self) {
        let sids: Vec<String> = self.tracks.keys().cloned().collect();
        for sid in sids {
            self.remove_track(&sid);
        }
    }

    /// Room tracks being decoded and mixed.
    pub fn room_track_count(&self) -> usize {
        self.tracks.len()
    }

    /// The room tracks' jitter-buffer counters, present and removed tracks summed.
    pub fn room_jitter_stats(&self) -> JitterStats {
        let mut total = self.removed_track_stats;
        for t in self.tracks.values() {
            total.add(&t.jb.stats());
        }
        total
    }

    /// Whether digits go to the device as RFC 4733 events (`telephone-event` negotiated).
    pub fn sends_telephone_events(&self) -> bool {
        self.dtmf_pt.is_some()
    }

    /// Plays a digit from the room to the device as RFC 4733 events; nothing when
    /// telephone-event was not negotiated (the front signals the digit instead).
    pub fn send_digit(&mut self, now: Instant, digit: char) {
        let Some(_) = self.dtmf_pt else {
            return;
        };
        let Ok(packets) = digit_packets(digit, Duration::from_millis(160), 8000, 10) else {
            return;
        };
        for (i, p) in packets.iter().enumerate() {
            self.dtmf_out
                .push_back((now + p.at, p.marker, p.event.to_bytes(), i == 0));
        }
    }

    /// The media timeout or other session events.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.session.poll_event()
    }

    /// When the bridge next needs [`CallMedia::handle_timeout`].
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_tick.min(self.session.poll_timeout());
        if let Uplink::Transcode { next_pop, .. } = &self.uplink {
            t = t.min(*next_pop);
        }
        if let Some((at, ..)) = self.dtmf_out.front() {
            t = t.min(*at);
        }
        t
    }

    /// Time passed: returns the datagrams to send to the device, and what to publish to the
    /// room (the transcoded uplink's frames).
    pub fn handle_timeout(&mut self, now: Instant) -> (Vec<(SocketAddr, Vec<u8>)>, Vec<ToRoom>) {
        let mut out = Vec::new();
        let mut to_room = Vec::new();
        self.uplink_playout(now, &mut to_room);
        self.session.handle_timeout(now);
        let dest = self
            .session
            .latched()
            .unwrap_or(self.session.remote_rtp_addr());
        // DTMF events replace audio while they play (RFC 4733 §2.5.1.5 lets audio continue,
        // but devices decode events more reliably without overlapping voice).
        let dtmf_active = !self.dtmf_out.is_empty();
        while let Some((at, marker, payload, first)) = self.dtmf_out.front().copied() {
            if at > now {
                break;
            }
            self.dtmf_out.pop_front();
            if let Some(pt) = self.dtmf_pt {
                let inc = if first { self.samples_per_frame() } else { 0 };
                out.push((
                    dest,
                    self.session.next_packet(now, pt, inc, marker, &payload),
                ));
            }
        }
        for due in owed_ticks(&mut self.next_tick, now, FRAME) {
            self.room_playout(due);
            self.mixer.tick();
            if dtmf_active {
                continue;
            }
            let mut frame = self.mixer.output(None).to_vec();
            let n = frame.len().min(self.announcement.len());
            for (o, a) in frame.iter_mut().zip(self.announcement.drain(..n)) {
                *o = o.saturating_add(a);
            }
            if let Ok(len) = self.downlink_enc.encode(&frame, &mut self.out) {
                let inc = self.samples_per_frame();
                let pkt = self
                    .session
                    .next_packet(now, self.pt, inc, false, &self.out[..len]);
                out.push((dest, pkt));
                self.frames_to_device += 1;
            }
        }
        while let Some(t) = self.session.poll_transmit() {
            out.push((t.destination, t.payload));
        }
        if let Some(s) = self.srtp.as_mut() {
            out = out
                .into_iter()
                .filter_map(|(dest, pkt)| {
                    let rtcp = pkt.len() >= 2 && (200..=206).contains(&pkt[1]);
                    let protected = if rtcp {
                        s.protect_rtcp(&pkt)
                    } else {
                        s.protect_rtp(&pkt)
                    };
                    protected.ok().map(|p| (dest, p))
                })
                .collect();
        }
        (out, to_room)
    }

    /// The media description changed (re-INVITE): new address, maybe hold.
    pub fn renegotiated(&mut self, n: &Negotiated, now: Instant, media_timeout: Duration) {
        if n.srtp != self.srtp_keys {
            // New keys (RFC 4568 §7.1.4): new contexts; a failure leaves the old ones.
            match n
                .srtp
                .as_ref()
                .map(|k| SrtpSession::new(&k.local, &k.remote))
            {
                Some(Ok(s)) => {
                    self.srtp = Some(s);
                    self.srtp_keys = n.srtp.clone();
                }
                None => {
                    self.srtp = None;
                    self.srtp_keys = None;
                }
                Some(Err(e)) => tracing::warn!("SRTP rekey failed: {e}"),
            }
        }
        self.session.relatch(n.remote_rtp, n.remote_rtcp);
        let on_hold = !n.direction.receives();
        self.session
            .set_media_timeout(now, (!on_hold).then_some(media_timeout));
    }

    fn mixer_rate(&self) -> u32 {
        self.codec.pcm_rate()
    }

    fn samples_per_frame(&self) -> u32 {
        self.codec.rtp_clock_rate() / 50
    }
}

/// Most ticks a late wake-up catches up on; a task starved for longer skips ahead.
const MAX_OWED_TICKS: u32 = 10;

/// The times of the ticks owed at `now`, from `next` on, `period` apart: each is played at its
/// own time, so a late wake-up does not look like an over-full jitter buffer. Advances `next`
/// past them; far behind (the task was starved), it skips ahead rather than burst.
fn owed_ticks(next: &mut Instant, now: Instant, period: Duration) -> impl Iterator<Item = Instant> {
    let first = *next;
    let mut owed = 0;
    while now >= *next && owed < MAX_OWED_TICKS {
        owed += 1;
        *next += period;
    }
    if now >= *next {
        *next = now + FRAME;
    }
    (0..owed).map(move |k| first + period * k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::{answer, LocalMedia, MediaPolicy, SessionDescription};

    fn negotiated(codec: &str, pt: u8, rate: u32) -> Negotiated {
        let offer = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP {pt} 101\r\na=rtpmap:{pt} {codec}/{rate}\r\n\
             a=rtpmap:101 telephone-event/8000\r\n"
        );
        let offer = SessionDescription::parse(offer.as_bytes()).expect("offer");
        let policy = MediaPolicy::from_names(&["opus", "G722", "PCMA", "PCMU"]).expect("policy");
        let local = LocalMedia::new("203.0.113.5".parse().expect("ip"), 30000).expect("local");
        answer(&offer, &policy, &local).expect("answer").negotiated
    }

    /// A bridge for `n` started at `t0` (30 s media timeout).
    fn bridge(t0: Instant, n: &Negotiated) -> CallMedia {
        CallMedia::new(t0, Duration::from_secs(1), n, Duration::from_secs(30)).expect("media")
    }

    /// The device's RTP address in `negotiated` offers.
    fn device() -> SocketAddr {
        "192.0.2.9:40000".parse().expect("addr")
    }

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, pt];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Runs the bridge's timers for `secs` seconds of silence from the device; true when it
    /// reported a media timeout.
    fn times_out(m: &mut CallMedia, t0: Instant, secs: u64) -> bool {
        let mut now = t0;
        while now < t0 + Duration::from_secs(secs) {
            now = m.poll_timeout().max(now + Duration::from_millis(1));
            m.handle_timeout(now);
            while let Some(e) = m.poll_event() {
                if e == SessionEvent::MediaTimeout {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn queued_prompt_audio_reaches_the_device_20_ms_at_a_time() {
        let t0 = Instant::now();
        let mut m = bridge(t0, &negotiated("PCMU", 0, 8000));
        assert_eq!(m.pcm_rate(), 8000);
        // 100 ms of a loud 1 kHz tone.
        let tone: Vec<i16> = (0..800)
            .map(|i| ((i as f32 * std::f32::consts::TAU / 8.0).sin() * 16000.0) as i16)
            .collect();
        m.play_pcm(&tone);
        assert_eq!(m.announcement_left(), Duration::from_millis(100));
        let mut loud = 0;
        let mut now = t0;
        for _ in 0..10 {
            now += FRAME;
            let (dgrams, _) = m.handle_timeout(now);
            for (_, pkt) in dgrams.iter().filter(|(_, p)| p.len() == 12 + 160) {
                // µ-law of silence is 0xFF/0x7F; a loud tone has small code magnitudes.
                if pkt[12..].iter().filter(|b| (**b & 0x7f) < 0x30).count() > 40 {
                    loud += 1;
                }
            }
        }
        assert_eq!(loud, 5, "100 ms of tone = 5 loud frames, then silence");
        assert_eq!(m.announcement_left(), Duration::ZERO);
        m.play_pcm(&tone);
        m.stop_announcement();
        assert_eq!(m.announcement_left(), Duration::ZERO);
    }

    #[test]
    fn a_call_answered_on_hold_has_no_media_timeout() {
        let t0 = Instant::now();
        let wall = Duration::from_secs(1);
        let mut n = negotiated("PCMU", 0, 8000);
        let mut live = CallMedia::new(t0, wall, &n, Duration::from_secs(5)).expect("media");
        assert!(
            times_out(&mut live, t0, 8),
            "a silent live call must time out"
        );
        n.direction = crate::media::negotiated::Direction::SendOnly;
        let mut held = CallMedia::new(t0, wall, &n, Duration::from_secs(5)).expect("media");
        assert!(
            !times_out(&mut held, t0, 8),
            "a call on hold must not time out"
        );
    }

    #[test]
    fn g711_goes_to_the_room_unchanged_and_strangers_do_not() {
        let t0 = Instant::now();
        let mut m = bridge(t0, &negotiated("PCMU", 0, 8000));
        let from = device();
        let out = m.handle_datagram(t0, from, &rtp(0, 1, 160, &[0x55; 160]));
        assert_eq!(
            out,
            vec![ToRoom::Frame {
                mime: "PCMU",
                time: 160,
                clock: 8000,
                payload: vec![0x55; 160],
                level: Some(level::of_g711(Law::Mu, &[0x55; 160])),
            }]
        );
        // µ-law silence is published as silence.
        let out = m.handle_datagram(t0, from, &rtp(0, 2, 320, &[0xff; 160]));
        assert!(
            matches!(
                out[..],
                [ToRoom::Frame {
                    level: Some(level::SILENCE),
                    ..
                }]
            ),
            "{out:?}"
        );
        let stranger: SocketAddr = "198.51.100.1:40000".parse().expect("addr");
        assert!(m
            .handle_datagram(t0, stranger, &rtp(0, 2, 320, &[0x11; 160]))
            .is_empty());
        assert!(m.handle_datagram(t0, from, b"garbage").is_empty());
    }

    #[test]
    fn g722_is_played_out_of_the_jitter_buffer_as_opus() {
        let t0 = Instant::now();
        let mut m = bridge(t0, &negotiated("G722", 9, 8000));
        let from = device();
        let mut enc = Codec::G722.encoder(16_000).expect("encoder");
        let mut frames = Vec::new();
        for i in 0..10u16 {
            let pcm: Vec<i16> = (0..320)
                .map(|k| ((k as f32 + 320.0 * i as f32) * 0.2).sin() as i16 * 8000)
                .collect();
            let mut b = [0u8; 200];
            let len = enc.encode(&pcm, &mut b).expect("encode");
            frames.push(rtp(9, i + 1, 160 * (u32::from(i) + 1), &b[..len]));
        }
        // Out of order: 2 before 1.
        frames.swap(0, 1);
        let mut room = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let now = t0 + FRAME * i as u32;
            assert!(
                m.handle_datagram(now, from, f).is_empty(),
                "transcoded frames wait for playout"
            );
            room.extend(m.handle_timeout(now).1);
        }
        for i in 10..20u32 {
            room.extend(m.handle_timeout(t0 + FRAME * i).1);
        }
        let opus: Vec<_> = room
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    ToRoom::Frame {
                        mime: "opus",
                        clock: 48_000,
                        ..
                    }
                )
            })
            .collect();
        assert!(opus.len() >= 8, "{} Opus frames", opus.len());
    }

    /// A PCMU caller published as Opus: the room gets Opus that decodes back to the caller's
    /// tone (dominant 440 Hz), not the PCMU payloads.
    #[test]
    fn pcmu_published_as_opus_carries_the_callers_tone() {
        let t0 = Instant::now();
        let mut m = bridge(t0, &negotiated("PCMU", 0, 8000));
        assert_eq!(m.published_codec(), "PCMU");
        m.publish_as_opus(t0).expect("opus");
        assert_eq!(m.published_codec(), "opus");
        let from = device();
        let mut enc = Codec::Pcmu.encoder(8000).expect("encoder");
        let mut room = Vec::new();
        for i in 0..50u32 {
            let pcm: Vec<i16> = (0..160)
                .map(|k| {
                    let t = (k + 160 * i) as f32 / 8000.0;
                    ((t * 2.0 * std::f32::consts::PI * 440.0).sin() * 9000.0) as i16
                })
                .collect();
            let mut b = [0u8; 160];
            let len = enc.encode(&pcm, &mut b).expect("encode");
            let now = t0 + FRAME * i;
            let f = rtp(0, i as u16 + 1, 160 * (i + 1), &b[..len]);
            assert!(m.handle_datagram(now, from, &f).is_empty());
            room.extend(m.handle_timeout(now).1);
        }
        let mut dec = Codec::Opus.decoder(48_000).expect("decoder");
        let mut pcm = Vec::new();
        for f in &room {
            let ToRoom::Frame {
                mime: "opus",
                clock: 48_000,
                payload,
                level,
                ..
            } = f
            else {
                panic!("not Opus: {f:?}");
            };
            // The tone's level (a 9000 peak sine is -14 dBov), measured before encoding; the
            // jitter buffer's first frames are silence.
            assert!(
                matches!(level, Some(14) | Some(level::SILENCE)),
                "level {level:?}"
            );
            let mut out = [0i16; 5760];
            let n = dec.decode(payload, &mut out).expect("decode");
            pcm.extend_from_slice(&out[..n]);
        }
        assert!(room.len() >= 40, "{} frames", room.len());
        // Dominant frequency by zero crossings over the second half (past the codec's start).
        let half = &pcm[pcm.len() / 2..];
        let crossings = half.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        let hz = crossings as f64 / 2.0 / (half.len() as f64 / 48_000.0);
        assert!((hz - 440.0).abs() < 20.0, "{hz} Hz");
    }

    /// An Opus caller is published as received, with the level of what it said.
    #[test]
    fn opus_published_unchanged_carries_its_level() {
        let t0 = Instant::now();
        let mut m = bridge(t0, &negotiated("opus", 111, 48_000));
        let from = device();
        let mut enc = Codec::Opus.encoder(48_000).expect("encoder");
        // Loud for 10 frames, then silent.
        let mut signal = crate::media::test_signal::sine(440.0, 48_000, 9000.0, 960 * 10);
        signal.resize(960 * 25, 0);
        let mut levels = Vec::new();
        for (i, pcm) in (0u32..).zip(signal.chunks(960)) {
            let mut b = [0u8; 400];
            let len = enc.encode(pcm, &mut b).expect("encode");
            let f = rtp(111, i as u16 + 1, 960 * (i + 1), &b[..len]);
            for out in m.handle_datagram(t0 + FRAME * i, from, &f) {
                let ToRoom::Frame {
                    mime: "opus",
                    payload,
                    level,
                    ..
                } = out
                else {
                    panic!("not Opus: {out:?}");
                };
                assert_eq!(payload, &b[..len], "published unchanged");
                levels.push(level.expect("a level"));
            }
        }
        assert_eq!(levels.len(), 25);
        // Past the codec's start-up, the tone measures about -14 dBov, voice; silence is not.
        assert!(
            levels[3..10].iter().all(|&l| (13..=16).contains(&l)),
            "{levels:?}"
        );
        assert!(
            levels[15..].iter().all(|&l| !level::is_voice(l)),
            "{levels:?}"
        );
    }

    /// The room's Opus frame number `n` (48 kHz, 20 ms) from one track.
    fn room_opus(m: &mut CallMedia, now: Instant, n: u64, payload: &[u8]) {
        m.handle_room_frame(now, "TR_a", Codec::Opus, n, (n * 960) as u32, payload);
    }

    /// The call's task itself woken late (a busy machine): the ticks it owes are played at
    /// their own times, so the jitter buffer does not take the lateness for an over-full
    /// buffer and drop a frame to catch up.
    #[test]
    fn a_late_wake_up_plays_the_owed_frames_without_dropping_one() {
        let n = negotiated("PCMU", 0, 8000);
        let t0 = Instant::now();
        let mut m = CallMedia::new(t0, Duration::ZERO, &n, Duration::from_secs(30)).expect("media");
        let mut enc = Codec::Opus.encoder(48_000).expect("opus");
        let (mut pkt, pcm) = ([0u8; 400], [0i16; 960]);
        let len = enc.encode(&pcm, &mut pkt).expect("encode");
        let (mut sent, mut now, mut next_frame) = (0u64, t0, t0);
        // Every 400 ms the task wakes 100 ms after it asked to; frames that arrived meanwhile
        // are read when it wakes.
        let mut next_stall = t0 + Duration::from_secs(1);
        let end = t0 + Duration::from_secs(8);
        while now < end {
            let mut wake = m
                .poll_timeout()
                .min(next_frame)
                .max(now + Duration::from_millis(1));
            if wake >= next_stall {
                wake = next_stall + Duration::from_millis(100);
                next_stall += Duration::from_millis(400);
            }
            now = wake;
            while next_frame <= now {
                room_opus(&mut m, now, sent, &pkt[..len]);
                sent += 1;
                next_frame += FRAME;
            }
            m.handle_timeout(now);
        }
        let jb = m.room_jitter_stats();
        assert_eq!(jb.shrunk + jb.overflow + jb.late, 0, "{jb:?}");
        assert!(m.mixer_stats().mixed + 10 >= sent, "{jb:?}");
    }

    /// Room audio arriving in bursts (a publisher stalled for 180 ms, then catching up) is
    /// played to the device without losing frames: the track's jitter buffer absorbs them.
    #[test]
    fn bursty_room_audio_is_played_without_drops() {
        let n = negotiated("PCMU", 0, 8000);
        let t0 = Instant::now();
        let mut m = CallMedia::new(t0, Duration::ZERO, &n, Duration::from_secs(30)).expect("media");
        let mut enc = Codec::Opus.encoder(48_000).expect("opus");
        let mut pkt = [0u8; 400];
        let mut sent = 0u64;
        let mut now = t0;
        let end = t0 + Duration::from_secs(4);
        let mut next_burst = t0;
        while now < end {
            // Every 200 ms, ten 20 ms frames at once.
            if now >= next_burst {
                for _ in 0..10 {
                    let pcm: Vec<i16> = (0..960)
                        .map(|i| {
                            let k = (sent * 960 + i) as f32;
                            ((k * 2.0 * std::f32::consts::PI * 440.0 / 48_000.0).sin() * 8000.0)
                                as i16
                        })
                        .collect();
                    let len = enc.encode(&pcm, &mut pkt).expect("encode");
                    room_opus(&mut m, now, sent, &pkt[..len]);
                    sent += 1;
                }
                next_burst += Duration::from_millis(200);
            }
            now = m
                .poll_timeout()
                .min(next_burst)
                .max(now + Duration::from_millis(1));
            m.handle_timeout(now);
        }
        let jb = m.room_jitter_stats();
        let mixed = m.mixer_stats().mixed;
        assert_eq!(jb.late + jb.overflow, 0, "{jb:?}");
        // All but what is still buffered at the end (≤ 400 ms) was played.
        assert!(
            mixed + 20 >= sent,
            "{mixed} of {sent} frames played ({jb:?})"
        );
        assert!(jb.lost <= 5, "{jb:?}");
    }
}
