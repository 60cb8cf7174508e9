//! Session timers (RFC 4028) on the UAS side: negotiate `Session-Expires` and the refresher
//! from the INVITE, then either refresh the session ourselves (re-INVITE at half the interval)
//! or expect the caller's refreshes and end the call when one is missed.

use std::time::{Duration, Instant};

use super::message::{Header, Message};

/// Our Min-SE (RFC 4028 §4: at least 90 s).
pub const MIN_SE: Duration = Duration::from_secs(90);

/// A negotiated session timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    /// Session interval.
    pub interval: Duration,
    /// Whether we (the UAS) refresh.
    pub we_refresh: bool,
    /// Whether the caller supports the extension (so our 2xx carries `Require: timer`).
    pub peer_supports: bool,
    next: Option<Instant>,
}

/// What a session timer needs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// Nothing yet.
    Idle,
    /// Send a refresh (re-INVITE) now.
    Refresh,
    /// The caller missed its refresh: end the call (RFC 4028 §10).
    Expired,
}

/// The outcome of negotiating a session timer for an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Negotiation {
    /// Use this timer.
    Timer(SessionTimer),
    /// The interval asked is below our Min-SE: answer 422 with this Min-SE (§6).
    TooSmall(Duration),
}

fn seconds(v: &str) -> Option<u64> {
    v.split(';').next()?.trim().parse().ok()
}

/// Negotiates from a (re-)INVITE or UPDATE, with `default` as our preferred interval.
pub fn negotiate(req: &Message, default: Duration) -> Negotiation {
    let peer_supports = req
        .header_values("Supported")
        .iter()
        .chain(req.header_values("Require").iter())
        .any(|t| t.eq_ignore_ascii_case("timer"));
    let asked = req.header("Session-Expires");
    let interval = match asked.and_then(seconds) {
        Some(s) if Duration::from_secs(s) < MIN_SE => {
            return Negotiation::TooSmall(MIN_SE);
        }
        Some(s) => Duration::from_secs(s),
        None => default.max(MIN_SE),
    };
    let interval = match req.header("Min-SE").and_then(seconds) {
        Some(min) => interval.max(Duration::from_secs(min)),
        None => interval,
    };
    let refresher = asked
        .and_then(|v| {
            v.split(';').skip(1).find_map(|p| {
                let (k, val) = p.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("refresher")
                    .then(|| val.trim().to_ascii_lowercase())
            })
        })
        .unwrap_or_default();
    // A caller without the extension cannot refresh: we do (§9). Otherwise it does, unless it
    // asked us to.
    let we_refresh = !peer_supports || refresher == "uas";
    Negotiation::Timer(SessionTimer {
        interval,
        we_refresh,
        peer_supports,
        next: None,
    })
}

impl SessionTimer {
    /// Headers for our 2xx: `Session-Expires` with the refresher, `Require: timer` when the peer
    /// supports it.
    pub fn headers(&self) -> Vec<Header> {
        let refresher = if self.we_refresh { "uas" } else { "uac" };
        let mut h = vec![Header {
            name: "Session-Expires".into(),
            value: format!("{};refresher={refresher}", self.interval.as_secs()),
        }];
        if self.peer_supports {
            h.push(Header {
                name: "Require".into(),
                value: "timer".into(),
            });
        }
        h
    }

    /// The session was (re)established or refreshed at `now`.
    pub fn refreshed(&mut self, now: Instant) {
        self.next = Some(if self.we_refresh {
            now + self.interval / 2
        } else {
            // §10: BYE when no refresh by interval - min(32 s, interval / 3).
            now + self.interval - (self.interval / 3).min(Duration::from_secs(32))
        });
    }

    /// When the timer next fires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) -> TimerAction {
        match self.next {
            Some(t) if now >= t => {
                if self.we_refresh {
                    // Until the refresh is answered, the next check is the expiry.
                    self.next = Some(now + self.interval / 2);
                    TimerAction::Refresh
                } else {
                    self.next = None;
                    TimerAction::Expired
                }
            }
            _ => TimerAction::Idle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(extra: &str) -> Message {
        let text = format!(
            "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\n\
             From: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse_datagram(text.as_bytes()).expect("valid")
    }

    #[test]
    fn caller_refreshes_when_it_supports_timers() {
        let Negotiation::Timer(mut t) = negotiate(
            &invite("Supported: timer\r\nSession-Expires: 90\r\n"),
            Duration::from_secs(1800),
        ) else {
            panic!("timer expected");
        };
        assert_eq!(t.interval, Duration::from_secs(90));
        assert!(!t.we_refresh && t.peer_supports);
        assert_eq!(t.headers()[0].value, "90;refresher=uac");
        let t0 = Instant::now();
        t.refreshed(t0);
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(59)),
            TimerAction::Idle
        );
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(60)),
            TimerAction::Expired
        );
    }

    #[test]
    fn we_refresh_for_callers_without_timers_or_when_asked() {
        let Negotiation::Timer(mut t) = negotiate(&invite(""), Duration::from_secs(1800)) else {
            panic!("timer expected");
        };
        assert!(t.we_refresh && !t.peer_supports);
        assert_eq!(t.headers().len(), 1);
        let t0 = Instant::now();
        t.refreshed(t0);
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(900)),
            TimerAction::Refresh
        );
        let asked = invite("Supported: timer\r\nSession-Expires: 120;refresher=uas\r\n");
        assert!(
            matches!(negotiate(&asked, Duration::from_secs(1800)), Negotiation::Timer(t) if t.we_refresh)
        );
    }

    #[test]
    fn too_small_gets_422() {
        assert_eq!(
            negotiate(
                &invite("Session-Expires: 30\r\n"),
                Duration::from_secs(1800)
            ),
            Negotiation::TooSmall(MIN_SE)
        );
    }
}
