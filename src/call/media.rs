//! The media bridge of one call, sans-IO: the device's RTP session on one side, the room's
//! frames on the other.
//!
//! - device → room: G.711 and Opus payloads go to the room unchanged (LiveKit accepts PCMU, PCMA
//!   and Opus), so that direction costs no codec work; G.722 is decoded and re-encoded to Opus
//!   at 16 kHz (no resampler). RFC 4733 digits become `SipDTMF` data packets.
//! - room → device: every subscribed audio track is decoded at the device codec's PCM rate
//!   (libopus decodes at 8/16/48 kHz directly), mixed (the caller's own track is never
//!   subscribed: mix-minus), encoded with the device codec and sent every 20 ms; `SipDTMF` from
//!   the room becomes RFC 4733 events.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::media::codec::{AudioDecoder, AudioEncoder, Codec, Decoder, Encoder};
use crate::media::dtmf::{digit_packets, DtmfReceiver};
use crate::media::mixer::Mixer;
use crate::media::rtp::stats::NtpClock;
use crate::media::rtp::Ssrc;
use crate::media::session::{RtpSession, SessionConfig, SessionEvent};
use crate::sip::sdp::Negotiated;

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
    },
    /// A DTMF digit pressed on the device.
    Digit(char),
}

/// The codec the device uses, as the media layer knows it.
pub fn device_codec(n: &Negotiated) -> Option<Codec> {
    Codec::from_rtpmap(&n.codec.name, n.clock_rate)
}

enum Uplink {
    /// Published as received.
    Passthrough(&'static str),
    /// G.722 → Opus (decoder at 16 kHz, encoder at 16 kHz).
    Transcode {
        dec: Box<Decoder>,
        enc: Box<Encoder>,
        pcm: Vec<i16>,
        time: u64,
    },
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
    /// Per room track: its mixer input and decoder.
    decoders: HashMap<String, (u32, Decoder)>,
    next_input: u32,
    next_tick: Instant,
    /// RFC 4733 packets to send: (when, marker, payload, first of its event).
    dtmf_out: VecDeque<(Instant, bool, [u8; 4], bool)>,
    scratch: Vec<i16>,
    out: Vec<u8>,
    /// Frames sent to the device.
    pub frames_to_device: u64,
    /// Room frames that could not be decoded (unknown codec, garbage).
    pub room_frames_dropped: u64,
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
                media_timeout: Some(media_timeout),
                cname: format!("jonction-{:x}", seed & 0xffff_ffff),
                ntp: NtpClock::new(now, wallclock),
                rtcp_interval: Duration::from_secs(5),
                seed,
            },
        );
        let uplink = match codec {
            Codec::Pcmu => Uplink::Passthrough("PCMU"),
            Codec::Pcma => Uplink::Passthrough("PCMA"),
            Codec::Opus => Uplink::Passthrough("opus"),
            Codec::G722 => Uplink::Transcode {
                dec: Box::new(Codec::G722.decoder(16_000)?),
                enc: Box::new(Codec::Opus.encoder(16_000)?),
                pcm: Vec::with_capacity(960),
                time: 0,
            },
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
            decoders: HashMap::new(),
            next_input: 0,
            next_tick: now + FRAME,
            dtmf_out: VecDeque::new(),
            scratch: vec![0; rate as usize / 50 * 3],
            out: vec![0; 1500],
            frames_to_device: 0,
            room_frames_dropped: 0,
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

    /// A datagram on the call's RTP port (RTP or, with rtcp-mux, RTCP).
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Vec<ToRoom> {
        let mut out = Vec::new();
        if data.len() >= 2 && (200..=206).contains(&data[1]) {
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
            Uplink::Passthrough(mime) => out.push(ToRoom::Frame {
                mime,
                time: u64::from(pkt.timestamp()),
                clock: self.codec.rtp_clock_rate(),
                payload: pkt.payload().to_vec(),
            }),
            Uplink::Transcode {
                dec,
                enc,
                pcm,
                time,
            } => {
                let mut buf = [0i16; 960];
                if let Ok(n) = dec.decode(pkt.payload(), &mut buf) {
                    pcm.extend_from_slice(&buf[..n]);
                }
                // Opus takes 20 ms frames: 320 samples at 16 kHz.
                while pcm.len() >= 320 {
                    let mut bytes = [0u8; 400];
                    let frame: Vec<i16> = pcm.drain(..320).collect();
                    if let Ok(len) = enc.encode(&frame, &mut bytes) {
                        *time += 960;
                        out.push(ToRoom::Frame {
                            mime: "opus",
                            time: *time,
                            clock: 48_000,
                            payload: bytes[..len].to_vec(),
                        });
                    }
                }
            }
        }
        out
    }

    /// A frame of a subscribed room track (`codec` from its payload parameters).
    pub fn handle_room_frame(&mut self, track: &str, codec: Codec, payload: &[u8]) {
        let rate = self.mixer_rate();
        if !self.decoders.contains_key(track) {
            if !codec.supports_pcm_rate(rate) {
                self.room_frames_dropped += 1;
                return;
            }
            match codec.decoder(rate) {
                Ok(d) => {
                    self.next_input += 1;
                    self.decoders
                        .insert(track.to_string(), (self.next_input, d));
                    let _ = self.mixer.add_input(self.next_input);
                }
                Err(_) => {
                    self.room_frames_dropped += 1;
                    return;
                }
            }
        }
        let Some((input, dec)) = self.decoders.get_mut(track) else {
            return;
        };
        match dec.decode(payload, &mut self.scratch) {
            Ok(n) => {
                let frame = rate as usize / 50;
                // Frames other than 20 ms are cut into 20 ms pieces (and a tail is dropped).
                for chunk in self.scratch[..n].chunks_exact(frame) {
                    let _ = self.mixer.push(*input, chunk);
                }
            }
            Err(_) => self.room_frames_dropped += 1,
        }
    }

    /// A room track went away.
    pub fn remove_track(&mut self, track: &str) {
        if let Some((input, _)) = self.decoders.remove(track) {
            let _ = self.mixer.remove_input(input);
        }
    }

    /// Plays a digit from the room to the device (RFC 4733), or in-band when telephone-event
    /// was not negotiated.
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
        if let Some((at, ..)) = self.dtmf_out.front() {
            t = t.min(*at);
        }
        t
    }

    /// Time passed: returns the datagrams to send to the device.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
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
        let mut guard = 0;
        while now >= self.next_tick && guard < 10 {
            guard += 1;
            self.next_tick += FRAME;
            self.mixer.tick();
            if dtmf_active {
                continue;
            }
            let frame = self.mixer.output(None).to_vec();
            if let Ok(len) = self.downlink_enc.encode(&frame, &mut self.out) {
                let inc = self.samples_per_frame();
                let pkt = self
                    .session
                    .next_packet(now, self.pt, inc, false, &self.out[..len]);
                out.push((dest, pkt));
                self.frames_to_device += 1;
            }
        }
        if now >= self.next_tick {
            // Far behind (the task was starved): skip ahead rather than burst.
            self.next_tick = now + FRAME;
        }
        while let Some(t) = self.session.poll_transmit() {
            out.push((t.destination, t.payload));
        }
        out
    }

    /// The media description changed (re-INVITE): new address, maybe hold.
    pub fn renegotiated(&mut self, n: &Negotiated, now: Instant, media_timeout: Duration) {
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
