//! DTMF: RFC 4733 telephone-event payloads (§2.3), a receiver that turns event packets into
//! one digit per key press (§2.5.2), a sender that schedules the packets of one digit
//! (§2.5.1), and the SIP INFO bodies `application/dtmf-relay` and `application/dtmf`.

use std::time::{Duration, Instant};

/// Interval between update packets of a long event (RFC 4733 §2.5.1.2 suggests 50 ms).
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(50);
/// Number of end packets sent (RFC 4733 §2.5.1.4 recommends three).
pub const END_PACKETS: usize = 3;
/// An event with no update for this long is taken as ended (its end packets were lost).
pub const EVENT_TIMEOUT: Duration = Duration::from_millis(250);
/// Duration reported for SIP INFO digits that carry none.
pub const DEFAULT_INFO_DURATION: Duration = Duration::from_millis(100);

/// Why DTMF input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// The telephone-event payload is shorter than 4 bytes.
    #[error("telephone-event payload of {0} bytes, 4 needed")]
    TooShort(usize),
    /// The event code is not a DTMF digit (0–15).
    #[error("event {0} is not a DTMF digit")]
    NotDtmf(u8),
    /// A SIP INFO body with no recognisable digit.
    #[error("no DTMF digit in INFO body")]
    NoSignal,
    /// A SIP INFO content type other than `application/dtmf-relay` or `application/dtmf`.
    #[error("unsupported INFO content type {0:?}")]
    ContentType(String),
    /// Sender: not a DTMF character.
    #[error("{0:?} is not a DTMF character")]
    BadDigit(char),
}

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// How long the key was held.
    pub duration: Duration,
}

/// The event code of a DTMF character (RFC 4733 §3.2).
pub fn digit_to_event(c: char) -> Option<u8> {
    match c.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The DTMF character of an event code.
pub fn event_to_digit(e: u8) -> Option<char> {
    match e {
        0..=9 => Some((b'0' + e) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + e - 12) as char),
        _ => None,
    }
}

/// A telephone-event payload (RFC 4733 §2.3).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     event     |E|R| volume    |          duration             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 for DTMF).
    pub event: u8,
    /// E bit: this is (a retransmission of) the final packet of the event.
    pub end: bool,
    /// Power level in −dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event of a payload (later blocks are redundant older events).
    pub fn parse(payload: &[u8]) -> Result<Self, DtmfError> {
        let b: [u8; 4] = payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(DtmfError::TooShort(payload.len()))?;
        Ok(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The 4-byte payload.
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

// === impl DtmfReceiver ===

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    event: u8,
    duration: u16,
    last_seen: Instant,
}

/// Turns received telephone-event packets into one [`DtmfDigit`] per key press.
///
/// All packets of one event share its RTP timestamp; the end packet is repeated. A digit is
/// reported on the first end packet, when a new event starts before the end was seen, or
/// from [`DtmfReceiver::handle_timeout`] when the event goes quiet.
#[derive(Debug, Clone)]
pub struct DtmfReceiver {
    clock_rate: u32,
    current: Option<Current>,
    /// Timestamp of the last event reported, to ignore its retransmitted end packets.
    reported: Option<u32>,
}

impl DtmfReceiver {
    /// A receiver for telephone-event at this RTP clock rate (usually 8000).
    pub fn new(clock_rate: u32) -> Self {
        DtmfReceiver {
            clock_rate: clock_rate.max(1),
            current: None,
            reported: None,
        }
    }

    /// Feeds one telephone-event RTP packet. Returns a digit when a key press completed;
    /// at most one digit per packet (a missing end of the previous event is reported when
    /// the next event starts, and that next event's own end packet comes later).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<DtmfDigit>, DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        if event_to_digit(ev.event).is_none() {
            return Err(DtmfError::NotDtmf(ev.event));
        }
        if self.reported == Some(timestamp) {
            return Ok(None);
        }
        let mut out = None;
        match &mut self.current {
            Some(cur) if cur.timestamp == timestamp => {
                cur.duration = cur.duration.max(ev.duration);
                cur.last_seen = now;
            }
            _ => {
                // A new event: flush one whose end packets never came.
                out = self.flush();
                self.current = Some(Current {
                    timestamp,
                    event: ev.event,
                    duration: ev.duration,
                    last_seen: now,
                });
            }
        }
        if ev.end {
            // The previous event was flushed above, so at most one digit is pending here:
            // if `out` is set, this packet both started and ended its event.
            let ended = self.flush();
            return Ok(out.or(ended));
        }
        Ok(out)
    }

    fn flush(&mut self) -> Option<DtmfDigit> {
        let cur = self.current.take()?;
        self.reported = Some(cur.timestamp);
        Some(DtmfDigit {
            digit: event_to_digit(cur.event)?,
            duration: Duration::from_nanos(
                u64::from(cur.duration) * 1_000_000_000 / u64::from(self.clock_rate),
            ),
        })
    }

    /// When an event in progress would be considered ended without its end packets.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|c| c.last_seen + EVENT_TIMEOUT)
    }

    /// Reports an event whose end packets were all lost.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<DtmfDigit> {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            return self.flush();
        }
        None
    }
}

// === sender ===

/// One packet of a digit: when to send it (relative to the first), its marker bit and
/// payload. Every packet of a digit carries the same RTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// Send time relative to the start of the digit.
    pub at: Duration,
    /// Marker bit (set on the first packet only).
    pub marker: bool,
    /// The payload.
    pub event: TelephoneEvent,
}

/// The packets for one digit of `duration` at `clock_rate` (RFC 4733 §2.5.1): a first
/// packet with the marker bit, an update every [`UPDATE_INTERVAL`], then
/// [`END_PACKETS`] end packets. Durations beyond the 16-bit field are clamped.
pub fn digit_packets(
    digit: char,
    duration: Duration,
    clock_rate: u32,
    volume: u8,
) -> Result<Vec<EventPacket>, DtmfError> {
    let event = digit_to_event(digit).ok_or(DtmfError::BadDigit(digit))?;
    let ticks = |d: Duration| -> u16 {
        let t = d.as_nanos() * u128::from(clock_rate) / 1_000_000_000;
        u16::try_from(t).unwrap_or(u16::MAX)
    };
    let mut packets = Vec::new();
    let mut at = Duration::ZERO;
    while at < duration {
        let covered = (at + UPDATE_INTERVAL).min(duration);
        packets.push(EventPacket {
            at,
            marker: at.is_zero(),
            event: TelephoneEvent {
                event,
                end: false,
                volume: volume & 0x3f,
                duration: ticks(covered),
            },
        });
        at += UPDATE_INTERVAL;
    }
    for i in 0..END_PACKETS {
        packets.push(EventPacket {
            at: duration.max(at.saturating_sub(UPDATE_INTERVAL))
                + Duration::from_millis(i as u64 * 20),
            marker: packets.is_empty(),
            event: TelephoneEvent {
                event,
                end: true,
                volume: volume & 0x3f,
                duration: ticks(duration),
            },
        });
    }
    Ok(packets)
}

// === SIP INFO ===

/// Parses the body of a SIP INFO carrying DTMF, by content type:
/// `application/dtmf-relay` (`Signal=5\r\nDuration=160`, duration in ms) or
/// `application/dtmf` (`5`).
pub fn parse_info(content_type: &str, body: &str) -> Result<DtmfDigit, DtmfError> {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/dtmf-relay" => {
            let mut digit = None;
            let mut duration = DEFAULT_INFO_DURATION;
            for line in body.lines() {
                let Some((key, value)) = line.split_once('=') else {
                    continue;
                };
                let value = value.trim();
                match key.trim().to_ascii_lowercase().as_str() {
                    "signal" => digit = info_signal(value),
                    "duration" => {
                        if let Ok(ms) = value.parse::<u64>() {
                            duration = Duration::from_millis(ms);
                        }
                    }
                    _ => {}
                }
            }
            digit
                .map(|digit| DtmfDigit { digit, duration })
                .ok_or(DtmfError::NoSignal)
        }
        "application/dtmf" => info_signal(body.trim())
            .map(|digit| DtmfDigit {
                digit,
                duration: DEFAULT_INFO_DURATION,
            })
            .ok_or(DtmfError::NoSignal),
        _ => Err(DtmfError::ContentType(content_type.to_owned())),
    }
}

/// A signal value: one DTMF character, or its event code in decimal (`10` = `*`).
fn info_signal(value: &str) -> Option<char> {
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if digit_to_event(c).is_some() => Some(c.to_ascii_uppercase()),
        _ => value.parse::<u8>().ok().and_then(event_to_digit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn payload_round_trip() {
        // RFC 4733 §2.3 fields: digit 5, end, volume 10, 800 ticks (100 ms at 8 kHz).
        let b = [0x05, 0x8a, 0x03, 0x20];
        let e = TelephoneEvent::parse(&b).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(e.to_bytes(), b);
        assert_eq!(TelephoneEvent::parse(&b[..3]), Err(DtmfError::TooShort(3)));
    }

    #[test]
    fn digit_mapping() {
        for (c, e) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('d', 15),
        ] {
            assert_eq!(digit_to_event(c), Some(e));
            assert_eq!(event_to_digit(e), Some(c.to_ascii_uppercase()));
        }
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn sender_packets_feed_the_receiver_once() {
        let packets = digit_packets('7', Duration::from_millis(160), 8000, 10).unwrap();
        // 0, 50, 100, 150 ms updates, then three ends.
        assert_eq!(packets.len(), 4 + END_PACKETS);
        assert!(packets[0].marker && packets[1..].iter().all(|p| !p.marker));
        assert_eq!(
            packets.iter().map(|p| p.event.duration).collect::<Vec<_>>(),
            vec![400, 800, 1200, 1280, 1280, 1280, 1280]
        );
        assert!(packets[..4].iter().all(|p| !p.event.end));
        assert!(packets[4..].iter().all(|p| p.event.end));
        assert!(packets.windows(2).all(|w| w[0].at <= w[1].at));

        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        let digits: Vec<_> = packets
            .iter()
            .filter_map(|p| {
                rx.handle_packet(t0 + p.at, 1234, &p.event.to_bytes())
                    .unwrap()
            })
            .collect();
        assert_eq!(
            digits,
            vec![DtmfDigit {
                digit: '7',
                duration: 160 * MS
            }]
        );
    }

    #[test]
    fn lost_end_reported_on_next_event_or_timeout() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        let start = |d: u16| TelephoneEvent {
            event: 1,
            end: false,
            volume: 10,
            duration: d,
        };
        assert_eq!(rx.handle_packet(t0, 100, &start(400).to_bytes()), Ok(None));
        assert_eq!(
            rx.handle_packet(t0 + 50 * MS, 100, &start(800).to_bytes()),
            Ok(None)
        );
        // The next key's first packet arrives: the first digit is reported.
        let two = TelephoneEvent {
            event: 2,
            ..start(400)
        };
        assert_eq!(
            rx.handle_packet(t0 + 300 * MS, 2000, &two.to_bytes()),
            Ok(Some(DtmfDigit {
                digit: '1',
                duration: 100 * MS
            }))
        );
        // Its end packets are all lost: the timeout reports it.
        assert_eq!(rx.handle_timeout(t0 + 400 * MS), None);
        assert_eq!(rx.poll_timeout(), Some(t0 + 300 * MS + EVENT_TIMEOUT));
        assert_eq!(
            rx.handle_timeout(t0 + 600 * MS),
            Some(DtmfDigit {
                digit: '2',
                duration: 50 * MS
            })
        );
        // A late retransmitted end of that event is ignored.
        let end = TelephoneEvent { end: true, ..two };
        assert_eq!(
            rx.handle_packet(t0 + 610 * MS, 2000, &end.to_bytes()),
            Ok(None)
        );
    }

    #[test]
    fn end_only_event_and_same_digit_twice() {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(8000);
        let end = TelephoneEvent {
            event: 11,
            end: true,
            volume: 0,
            duration: 800,
        };
        // Only an end packet arrives (start and updates lost): one digit.
        assert_eq!(
            rx.handle_packet(t0, 1, &end.to_bytes())
                .unwrap()
                .map(|d| d.digit),
            Some('#')
        );
        assert_eq!(rx.handle_packet(t0, 1, &end.to_bytes()), Ok(None));
        // Same key again: a new timestamp makes a new digit.
        assert_eq!(
            rx.handle_packet(t0, 2000, &end.to_bytes())
                .unwrap()
                .map(|d| d.digit),
            Some('#')
        );
        assert_eq!(
            rx.handle_packet(t0, 3000, &[16, 0x80, 0, 1]),
            Err(DtmfError::NotDtmf(16))
        );
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(
            parse_info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            Ok(DtmfDigit {
                digit: '5',
                duration: 160 * MS
            })
        );
        assert_eq!(
            parse_info(
                "Application/DTMF-Relay; charset=utf-8",
                "signal= *\nduration = 250"
            ),
            Ok(DtmfDigit {
                digit: '*',
                duration: 250 * MS
            })
        );
        assert_eq!(
            parse_info("application/dtmf-relay", "Signal=11"),
            Ok(DtmfDigit {
                digit: '#',
                duration: DEFAULT_INFO_DURATION
            })
        );
        assert_eq!(
            parse_info("application/dtmf", "5\r\n").map(|d| d.digit),
            Ok('5')
        );
        assert_eq!(
            parse_info("application/dtmf", "b").map(|d| d.digit),
            Ok('B')
        );
        assert_eq!(
            parse_info("application/dtmf-relay", "Duration=100"),
            Err(DtmfError::NoSignal)
        );
        assert_eq!(
            parse_info("application/dtmf", "55"),
            Err(DtmfError::NoSignal)
        );
        assert!(matches!(
            parse_info("text/plain", "5"),
            Err(DtmfError::ContentType(_))
        ));
    }
}
