//! The part of a call before it has a room: the caller is answered, hears the voice prompts and
//! types a PIN (RFC 4733 or SIP INFO); the [`PinEntry`] dialogue decides, a directory lookup
//! (supplied by the front as a closure, so the call core knows no directory) maps the PIN to a
//! room. Runs in the call's task, on the call's [`CallMedia`].

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::media::{CallMedia, ToRoom};
use super::record::CallRecord;
use super::{CallSetup, HangupCause, ToCall};
use crate::media::negotiated::Negotiated;
use crate::media::session::SessionEvent;
use crate::pin::entry::{Action, HangupReason, LookupOutcome, PinConfig, PinEntry};
use crate::prompt::{Language, Prompt, PromptPlayer};

/// A PIN lookup in progress.
pub type LookupFuture = Pin<Box<dyn Future<Output = LookupOutcome> + Send>>;
/// Starts a PIN lookup.
pub type LookupFn = Box<dyn Fn(String) -> LookupFuture + Send + Sync>;
/// Mints the room-leg token for a room (`None`: cannot).
pub type MintFn = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// How a call without a room gets one.
pub struct PinSetup {
    /// Digits, timeouts, attempts.
    pub config: PinConfig,
    /// Language of the prompts.
    pub language: Language,
    /// A PIN given up front (an `X-PIN` header, or dialled as `room*pin`).
    pub preset: Option<String>,
    /// `#` ends the PIN; when false it is ignored (the PIN ends at `max_digits` or on the
    /// inter-digit timeout).
    pub hash_terminates: bool,
    /// Looks a PIN up.
    pub lookup: LookupFn,
    /// Mints the room-leg token for the room found (`None`: cannot).
    pub mint: MintFn,
    /// Told of each wrong PIN (brute-force protection).
    pub failed: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for PinSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinSetup")
            .field("config", &self.config)
            .field("language", &self.language)
            .field("preset", &self.preset.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

/// Longest the whole dialogue may take, whatever the settings (a caller who never hangs up).
const MAX_DIALOGUE: Duration = Duration::from_secs(300);

/// Queues a prompt on the device's audio; false if it could not be played.
pub fn play(m: &mut CallMedia, prompt: Prompt, lang: Language) -> bool {
    match PromptPlayer::new(prompt, lang, m.pcm_rate()) {
        Ok(p) => {
            for frame in p {
                m.play_pcm(&frame);
            }
            true
        }
        Err(e) => {
            warn!(prompt = prompt.name(), "prompt not played: {e}");
            false
        }
    }
}

/// Runs the dialogue; the room and its token, or why the call ends. `media` is started here
/// when the offer is already known, or when the ACK of a delayed offer brings it; `described`
/// keeps the newest media description that came meanwhile (its video starts with the room).
pub async fn collect_pin(
    s: &CallSetup,
    pin: &PinSetup,
    rx: &mut mpsc::UnboundedReceiver<ToCall>,
    rec: &mut CallRecord,
    media: &mut Option<CallMedia>,
    described: &mut Option<Negotiated>,
) -> Result<(String, String), HangupCause> {
    let start = |n: &Negotiated, rec: &mut CallRecord| {
        super::start_media(s, n, rec).ok_or(HangupCause::NoMedia)
    };
    if media.is_none() {
        if let Some(n) = s.negotiated.as_ref() {
            *media = Some(start(n, rec)?);
        }
    }
    let t0 = Instant::now();
    let mut entry = PinEntry::new(pin.config.clone(), t0, pin.preset.as_deref());
    let mut lookup: Option<LookupFuture> = None;
    let mut playing = false;
    let mut buf = vec![0u8; 2048];
    let give_up = tokio::time::Instant::from_std(t0 + MAX_DIALOGUE);
    loop {
        while let Some(a) = entry.poll_action() {
            match a {
                Action::Play(p) => {
                    debug!(call = s.id.0, prompt = p.name(), "playing prompt");
                    if let Some(m) = media.as_mut() {
                        m.stop_announcement();
                        playing = play(m, p, pin.language);
                    }
                    if !playing {
                        entry.handle_prompt_finished(Instant::now());
                    }
                }
                Action::StopPrompt => {
                    if let Some(m) = media.as_mut() {
                        m.stop_announcement();
                    }
                    playing = false;
                }
                Action::Lookup(p) => lookup = Some((pin.lookup)(p)),
                Action::Join(room) => {
                    info!(call = s.id.0, %room, "PIN accepted");
                    let Some(token) = (pin.mint)(&room) else {
                        error!(call = s.id.0, %room, "cannot mint a room token");
                        return Err(HangupCause::RoomUnavailable);
                    };
                    return Ok((room, token));
                }
                Action::Hangup(HangupReason::TooManyAttempts) => {
                    info!(call = s.id.0, failures = entry.failures(), "PIN refused");
                    return Err(HangupCause::PinRefused);
                }
                Action::Hangup(HangupReason::LookupFailed) => {
                    warn!(call = s.id.0, "PIN directory unavailable");
                    return Err(HangupCause::PinDirectoryFailed);
                }
            }
        }
        let mut wake = media
            .as_ref()
            .map(|m| m.poll_timeout())
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        if let Some(t) = entry.poll_timeout() {
            wake = wake.min(t);
        }
        tokio::select! {
            r = s.rtp.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let Some(m) = media.as_mut() else { continue };
                let before = m.session().counters().rtp_received;
                for ev in m.handle_datagram(Instant::now(), from, &buf[..n]) {
                    if let ToRoom::Digit(d) = ev {
                        rec.digits_from_device += 1;
                        if d != '#' || pin.hash_terminates {
                            entry.handle_digit(Instant::now(), d);
                        }
                    }
                }
                if m.session().counters().rtp_received > before {
                    rec.rtp_in += 1;
                } else {
                    rec.rtp_rejected += 1;
                }
            }
            outcome = async {
                match lookup.as_mut() {
                    Some(f) => f.as_mut().await,
                    None => std::future::pending().await,
                }
            } => {
                lookup = None;
                if outcome == LookupOutcome::NotFound {
                    (pin.failed)();
                }
                entry.handle_lookup(Instant::now(), outcome);
            }
            cmd = rx.recv() => match cmd {
                Some(ToCall::Stop(c)) => return Err(c),
                None => return Err(HangupCause::Shutdown),
                Some(ToCall::Media(n)) => {
                    match media.as_mut() {
                        Some(m) => m.renegotiated(&n, Instant::now(), s.media_timeout),
                        None => *media = Some(start(&n, rec)?),
                    }
                    *described = Some(*n);
                }
                // No video before the room is joined.
                Some(ToCall::FastUpdate) => {}
                Some(ToCall::Dtmf(d)) => {
                    rec.digits_from_device += 1;
                    if d != '#' || pin.hash_terminates {
                        entry.handle_digit(Instant::now(), d);
                    }
                }
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                let now = Instant::now();
                if let Some(m) = media.as_mut() {
                    let (datagrams, _) = m.handle_timeout(now);
                    for (dest, pkt) in datagrams {
                        let _ = s.rtp.try_send_to(&pkt, dest);
                    }
                    rec.observe(m);
                    while let Some(ev) = m.poll_event() {
                        if ev == SessionEvent::MediaTimeout {
                            return Err(HangupCause::MediaTimeout);
                        }
                    }
                    if playing && m.announcement_left().is_zero() {
                        playing = false;
                        entry.handle_prompt_finished(now);
                    }
                }
                entry.handle_timeout(now);
            }
            _ = tokio::time::sleep_until(give_up) => return Err(HangupCause::PinRefused),
        }
    }
}

/// Plays a prompt to its end (bounded), keeping the device's media running; used before a
/// hang-up the caller should understand ("the meeting has ended").
pub async fn play_to_end(s: &CallSetup, m: &mut CallMedia, prompt: Prompt, lang: Language) {
    m.stop_announcement();
    if !play(m, prompt, lang) {
        return;
    }
    let until = Instant::now() + m.announcement_left() + Duration::from_millis(200);
    while Instant::now() < until {
        let wake = m.poll_timeout().min(until);
        tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
        let (datagrams, _) = m.handle_timeout(Instant::now());
        for (dest, pkt) in datagrams {
            let _ = s.rtp.try_send_to(&pkt, dest);
        }
    }
}
