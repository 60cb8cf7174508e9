//! The PIN entry dialogue, sans-IO: DTMF digits, prompt completions, lookup results and timeouts
//! go in with `now`; [`Action`]s come out.
//!
//! ```text
//!  preset PIN? ──yes──▶ Lookup ──Found──▶ Join
//!      │no                 │NotFound (an attempt)
//!      ▼                   ▼
//!  Play(EnterPin) ──▶ collect digits ──#/max──▶ Lookup ──Found──▶ Join
//!      ▲    ▲              │timeout, too short    │NotFound
//!      │    └─ (no digit) ─┤                      ▼
//!      │                   └──────────────▶ Play(WrongPin) ──▶ collect again
//!      └ attempts exhausted anywhere ──▶ Play(Goodbye) ──▶ Hangup(TooManyAttempts)
//!
//!  Lookup ──Failed──▶ Play(Unavailable) ──▶ Hangup(LookupFailed)
//! ```
//!
//! Run loop: after each `handle_*` call, drain [`PinEntry::poll_action`] until `None`, then wake
//! at [`PinEntry::poll_timeout`] and call [`PinEntry::handle_timeout`].
//!
//! Rules:
//! - digits typed while the entry prompt (or the wrong-PIN prompt) plays stop it (barge-in,
//!   [`Action::StopPrompt`]); digits are ignored while a lookup runs or a closing prompt
//!   (goodbye, unavailable) plays;
//! - `#` ends the PIN; reaching `max_digits` ends it too; `*` clears what was typed;
//! - the first-digit timer starts when the prompt has finished playing; then each digit
//!   restarts the inter-digit timer; on inter-digit timeout a PIN of at least `min_digits` is
//!   submitted, a shorter one is a failed attempt;
//! - a first-digit timeout (nothing typed) is a failed attempt and replays the entry prompt;
//! - a PIN shorter than `min_digits` is a failed attempt without a lookup;
//! - a PIN given up front (X-PIN header, `room*pin` dialled) is looked up first; if wrong, it
//!   counts as an attempt and the caller is prompted;
//! - a lookup failure (directory unreachable, timeout, HTTP error) is not the caller's fault: it
//!   costs no attempt and is not "wrong PIN"; the caller hears "service unavailable, call again
//!   later" and is hung up on (retrying would only make them wait).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::prompt::Prompt;

/// Tunables of the PIN dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinConfig {
    /// Fewest digits of a valid PIN.
    pub min_digits: usize,
    /// Most digits: the PIN is submitted when reached, without `#`.
    pub max_digits: usize,
    /// Time allowed for the first digit, from the end of the prompt.
    pub first_digit_timeout: Duration,
    /// Time allowed between two digits.
    pub inter_digit_timeout: Duration,
    /// Failed attempts before goodbye.
    pub attempts: u32,
    /// If a prompt's end is not reported within this time, it is taken as finished.
    pub prompt_timeout: Duration,
}

impl Default for PinConfig {
    fn default() -> Self {
        Self {
            min_digits: 4,
            // Visio's PINs have 10 digits by default (ROOM_TELEPHONY_PIN_LENGTH).
            max_digits: 10,
            first_digit_timeout: Duration::from_secs(10),
            inter_digit_timeout: Duration::from_secs(5),
            attempts: 3,
            prompt_timeout: Duration::from_secs(10),
        }
    }
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hang up; the closing prompt (goodbye or unavailable) has already been played.
    Hangup(HangupReason),
    /// Join this room: the dialogue is over.
    Join(String),
    /// Look this PIN up, then call [`PinEntry::handle_lookup`].
    Lookup(String),
    /// Play a prompt, then call [`PinEntry::handle_prompt_finished`].
    Play(Prompt),
    /// Stop the prompt playing now (the caller started typing).
    StopPrompt,
}

/// Why the dialogue ended without a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupReason {
    /// The PIN directory failed (timeout, HTTP error); the caller heard "unavailable".
    LookupFailed,
    /// Every attempt failed.
    TooManyAttempts,
}

/// The result of a [`Action::Lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupOutcome {
    /// The directory could not answer.
    Failed,
    /// The PIN opens this room.
    Found(String),
    /// No room has this PIN.
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// A prompt plays; `deadline` guards against a shell that never reports its end.
    Playing { prompt: Prompt, deadline: Instant },
    /// Digits are collected until `deadline`.
    Collecting { digits: String, deadline: Instant },
    /// Waiting for the result of a lookup.
    LookingUp,
    /// Joined or hung up.
    Done,
}

/// The PIN dialogue of one call. See the module docs for the rules and the run loop.
#[derive(Debug)]
pub struct PinEntry {
    config: PinConfig,
    state: State,
    failures: u32,
    /// The lookup running is of the PIN given up front.
    preset: bool,
    actions: VecDeque<Action>,
}

impl PinEntry {
    /// Starts the dialogue at `now`, with the PIN the caller may have given up front.
    pub fn new(config: PinConfig, now: Instant, preset: Option<&str>) -> Self {
        let mut this = Self {
            config,
            state: State::Done,
            failures: 0,
            preset: false,
            actions: VecDeque::new(),
        };
        match preset.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            Some(pin) => {
                this.preset = true;
                this.lookup(pin.to_owned());
            }
            None => this.play(now, Prompt::EnterPin),
        }
        this
    }

    /// A DTMF digit (`0`-`9`, `*`, `#`; others are ignored) pressed at `now`.
    pub fn handle_digit(&mut self, now: Instant, digit: char) {
        if !matches!(digit, '0'..='9' | '*' | '#') {
            return;
        }
        let digits = match &mut self.state {
            State::Playing { prompt, .. } if !is_closing(*prompt) => {
                self.actions.push_back(Action::StopPrompt);
                self.state = State::Collecting {
                    digits: String::new(),
                    deadline: now,
                };
                return self.handle_digit(now, digit);
            }
            State::Collecting { digits, .. } => digits,
            _ => return,
        };
        match digit {
            '#' => {
                let pin = std::mem::take(digits);
                return self.submit(now, pin);
            }
            '*' => digits.clear(),
            d => digits.push(d),
        }
        if digits.len() >= self.config.max_digits {
            let pin = std::mem::take(digits);
            return self.submit(now, pin);
        }
        let wait = if digits.is_empty() {
            self.config.first_digit_timeout
        } else {
            self.config.inter_digit_timeout
        };
        if let State::Collecting { deadline, .. } = &mut self.state {
            *deadline = now + wait;
        }
    }

    /// The prompt asked for by the last [`Action::Play`] has finished (or was stopped).
    pub fn handle_prompt_finished(&mut self, now: Instant) {
        let State::Playing { prompt, .. } = self.state else {
            return;
        };
        match prompt {
            Prompt::Goodbye => self.finish(Action::Hangup(HangupReason::TooManyAttempts)),
            Prompt::Unavailable => self.finish(Action::Hangup(HangupReason::LookupFailed)),
            _ => {
                self.state = State::Collecting {
                    digits: String::new(),
                    deadline: now + self.config.first_digit_timeout,
                };
            }
        }
    }

    /// The answer to the last [`Action::Lookup`].
    pub fn handle_lookup(&mut self, now: Instant, outcome: LookupOutcome) {
        if self.state != State::LookingUp {
            return;
        }
        let preset = std::mem::take(&mut self.preset);
        match outcome {
            LookupOutcome::Found(room) => self.finish(Action::Join(room)),
            LookupOutcome::Failed => self.play(now, Prompt::Unavailable),
            // A preset PIN was wrong: the caller has not heard the entry prompt yet.
            LookupOutcome::NotFound if preset => self.fail(now, Prompt::EnterPin),
            LookupOutcome::NotFound => self.fail(now, Prompt::WrongPin),
        }
    }

    /// Time has reached `now`: fires the timer due, if any.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            State::Playing { deadline, .. } if now >= *deadline => self.handle_prompt_finished(now),
            State::Collecting { digits, deadline } if now >= *deadline => {
                if digits.is_empty() {
                    self.fail(now, Prompt::EnterPin);
                } else {
                    let pin = std::mem::take(digits);
                    self.submit(now, pin);
                }
            }
            _ => {}
        }
    }

    /// The next thing to do, until `None`.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Self::handle_timeout`] next, if a timer runs.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Playing { deadline, .. } | State::Collecting { deadline, .. } => Some(*deadline),
            State::LookingUp | State::Done => None,
        }
    }

    /// Failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the dialogue has ended (joined or hung up).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn submit(&mut self, now: Instant, pin: String) {
        if pin.len() < self.config.min_digits {
            self.fail(now, Prompt::WrongPin);
        } else {
            self.lookup(pin);
        }
    }

    fn lookup(&mut self, pin: String) {
        self.state = State::LookingUp;
        self.actions.push_back(Action::Lookup(pin));
    }

    /// Counts a failed attempt, then re-prompts with `prompt` or says goodbye.
    fn fail(&mut self, now: Instant, prompt: Prompt) {
        self.failures += 1;
        debug!(failures = self.failures, "PIN attempt failed");
        if self.failures >= self.config.attempts {
            self.play(now, Prompt::Goodbye);
        } else {
            self.play(now, prompt);
        }
    }

    fn play(&mut self, now: Instant, prompt: Prompt) {
        self.state = State::Playing {
            prompt,
            deadline: now + self.config.prompt_timeout,
        };
        self.actions.push_back(Action::Play(prompt));
    }

    fn finish(&mut self, action: Action) {
        self.state = State::Done;
        self.actions.push_back(action);
    }
}

/// Whether `prompt` ends the dialogue (no barge-in, hang up when it has played).
fn is_closing(prompt: Prompt) -> bool {
    matches!(prompt, Prompt::Goodbye | Prompt::Unavailable)
}

/// Splits the user part of a dialled URI into `(room, pin)`: `room*pin` gives both, an
/// all-digit user is a PIN alone, anything else is a room alias alone.
pub fn split_dialled_pin(user: &str) -> (Option<String>, Option<String>) {
    let is_pin = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    if let Some((room, pin)) = user.split_once('*') {
        return (non_empty(room), is_pin(pin).then(|| pin.to_owned()));
    }
    if is_pin(user) {
        return (None, Some(user.to_owned()));
    }
    (non_empty(user), None)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn drain(e: &mut PinEntry) -> Vec<Action> {
        std::iter::from_fn(|| e.poll_action()).collect()
    }

    fn typed(e: &mut PinEntry, now: Instant, keys: &str) -> Vec<Action> {
        for c in keys.chars() {
            e.handle_digit(now, c);
        }
        drain(e)
    }

    fn play(p: Prompt) -> Action {
        Action::Play(p)
    }

    fn lookup(pin: &str) -> Action {
        Action::Lookup(pin.into())
    }

    #[test]
    fn happy_path_with_hash() {
        let t0 = Instant::now();
        let mut e = PinEntry::new(PinConfig::default(), t0, None);
        assert_eq!(drain(&mut e), [play(Prompt::EnterPin)]);
        assert_eq!(e.poll_timeout(), Some(t0 + 10 * S), "prompt guard");
        e.handle_prompt_finished(t0 + 4 * S);
        assert_eq!(e.poll_timeout(), Some(t0 + 14 * S), "first-digit timer");
        assert_eq!(typed(&mut e, t0 + 5 * S, "12345#"), [lookup("12345")]);
        assert_eq!(e.poll_timeout(), None);
        e.handle_lookup(t0 + 6 * S, LookupOutcome::Found("room".into()));
        assert_eq!(drain(&mut e), [Action::Join("room".into())]);
        assert!(e.is_done());
    }

    #[test]
    fn barge_in_star_clears_and_max_digits_submits() {
        let t0 = Instant::now();
        let cfg = PinConfig {
            max_digits: 6,
            ..PinConfig::default()
        };
        let mut e = PinEntry::new(cfg, t0, None);
        drain(&mut e);
        assert_eq!(typed(&mut e, t0, "99"), [Action::StopPrompt]);
        assert_eq!(e.poll_timeout(), Some(t0 + 5 * S), "inter-digit timer");
        assert_eq!(typed(&mut e, t0, "*"), []);
        assert_eq!(
            e.poll_timeout(),
            Some(t0 + 10 * S),
            "cleared: first-digit timer"
        );
        assert_eq!(typed(&mut e, t0, "A123456"), [lookup("123456")]);
        // Digits during the lookup are ignored.
        assert_eq!(typed(&mut e, t0, "77#"), []);
    }

    #[test]
    fn inter_digit_timeout_submits_or_fails() {
        let t0 = Instant::now();
        let mut e = PinEntry::new(PinConfig::default(), t0, None);
        e.handle_prompt_finished(t0);
        drain(&mut e);
        typed(&mut e, t0, "1234");
        e.handle_timeout(t0 + 4 * S);
        assert_eq!(drain(&mut e), []);
        e.handle_timeout(t0 + 5 * S);
        assert_eq!(drain(&mut e), [lookup("1234")]);

        let mut e = PinEntry::new(PinConfig::default(), t0, None);
        e.handle_prompt_finished(t0);
        drain(&mut e);
        typed(&mut e, t0, "12");
        e.handle_timeout(t0 + 5 * S);
        assert_eq!(drain(&mut e), [play(Prompt::WrongPin)]);
        assert_eq!(e.failures(), 1);
    }

    #[test]
    fn short_pin_is_a_failed_attempt_without_lookup() {
        let t0 = Instant::now();
        let mut e = PinEntry::new(PinConfig::default(), t0, None);
        e.handle_prompt_finished(t0);
        drain(&mut e);
        assert_eq!(typed(&mut e, t0, "12#"), [play(Prompt::WrongPin)]);
        e.handle_prompt_finished(t0 + S);
        assert_eq!(typed(&mut e, t0 + S, "#"), [play(Prompt::WrongPin)]);
        assert_eq!(e.failures(), 2);
    }

    #[test]
    fn three_wrong_pins_then_goodbye_then_hangup() {
        let t0 = Instant::now();
        let mut e = PinEntry::new(PinConfig::default(), t0, None);
        e.handle_prompt_finished(t0);
        drain(&mut e);
        for attempt in 1..=3 {
            assert_eq!(typed(&mut e, t0, "11111#"), [lookup("11111")]);
            e.handle_lookup(t0, LookupOutcome::NotFound);
            let want = if attempt < 3 {
                Prompt::WrongPin
            } else {
                Prompt::Goodbye
            };
            assert_eq!(drain(&mut e), [play(want)]);
            if attempt < 3 {
                e.handle_prompt_finished(t0);
            }
        }
        // No barge-in on goodbye.
        assert_eq!(typed(&mut e, t0, "1"), []);
        e.handle_prompt_finished(t0);
        assert_eq!(
            drain(&mut e),
            [Action::Hangup(HangupReason::TooManyAttempts)]
        );
        assert!(e.is_done());
        assert_eq!(e.poll_timeout(), None);
    }

    #[test]
    fn silence_reprompts_and_ends() {
        let t0 = Instant::now();
        let mut e = PinEntry::new(PinConfig::default(), t0, None);
        drain(&mut e);
        let mut now = t0;
        let mut actions = Vec::new();
        // The shell never reports prompt ends: the guard timer does.
        while let Some(t) = e.poll_timeout() {
            now = t;
            e.handle_timeout(now);
            actions.extend(drain(&mut e));
        }
        assert_eq!(
            actions,
            [
                play(Prompt::EnterPin),
                play(Prompt::EnterPin),
                play(Prompt::Goodbye),
                Action::Hangup(HangupReason::TooManyAttempts)
            ]
        );
        // 3 entry prompts and goodbye guarded 10 s each, 3 first-digit timeouts of 10 s.
        assert_eq!(now - t0, 70 * S);
    }

    #[test]
    fn preset_pin() {
        let t0 = Instant::now();
        let mut e = PinEntry::new(PinConfig::default(), t0, Some("123456"));
        assert_eq!(drain(&mut e), [lookup("123456")]);
        e.handle_lookup(t0, LookupOutcome::Found("r".into()));
        assert_eq!(drain(&mut e), [Action::Join("r".into())]);

        let mut e = PinEntry::new(PinConfig::default(), t0, Some("123456"));
        drain(&mut e);
        e.handle_lookup(t0, LookupOutcome::NotFound);
        assert_eq!(drain(&mut e), [play(Prompt::EnterPin)]);
        assert_eq!(e.failures(), 1);
        e.handle_prompt_finished(t0);
        typed(&mut e, t0, "6543#");
        e.handle_lookup(t0, LookupOutcome::NotFound);
        assert_eq!(drain(&mut e), [play(Prompt::WrongPin)]);

        // A non-numeric preset is ignored.
        let mut e = PinEntry::new(PinConfig::default(), t0, Some("12a"));
        assert_eq!(drain(&mut e), [play(Prompt::EnterPin)]);
    }

    #[test]
    fn lookup_failure_says_unavailable_then_hangs_up_and_stale_inputs_are_ignored() {
        let t0 = Instant::now();
        let mut e = PinEntry::new(PinConfig::default(), t0, Some("1234"));
        drain(&mut e);
        e.handle_prompt_finished(t0);
        e.handle_timeout(t0 + 100 * S);
        assert_eq!(drain(&mut e), []);
        e.handle_lookup(t0, LookupOutcome::Failed);
        assert_eq!(drain(&mut e), [play(Prompt::Unavailable)]);
        assert_eq!(e.failures(), 0, "not the caller's fault");
        // No barge-in on a closing prompt.
        assert_eq!(typed(&mut e, t0, "1#"), []);
        e.handle_prompt_finished(t0 + 5 * S);
        assert_eq!(drain(&mut e), [Action::Hangup(HangupReason::LookupFailed)]);
        assert!(e.is_done());
        e.handle_lookup(t0, LookupOutcome::Found("late".into()));
        e.handle_digit(t0, '1');
        assert_eq!(drain(&mut e), []);
    }

    #[test]
    fn split() {
        let s = |x: Option<&str>| x.map(str::to_owned);
        let cases = [
            ("visio*1234567890", s(Some("visio")), s(Some("1234567890"))),
            ("1234567890", None, s(Some("1234567890"))),
            ("*42", None, s(Some("42"))),
            ("room*", s(Some("room")), None),
            ("room*12a", s(Some("room")), None),
            ("alice", s(Some("alice")), None),
            ("+33123", s(Some("+33123")), None),
            ("", None, None),
        ];
        for (user, room, pin) in cases {
            assert_eq!(split_dialled_pin(user), (room, pin), "{user:?}");
        }
    }

    #[derive(Debug, Clone)]
    enum Ev {
        Digit(char),
        Wait(u64),
        PromptDone,
        Lookup(u8),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            4 => proptest::sample::select(&b"0123456789*#AD"[..]).prop_map(|b| Ev::Digit(b as char)),
            1 => (0u64..20_000).prop_map(Ev::Wait),
            1 => Just(Ev::PromptDone),
            1 => (0u8..3).prop_map(Ev::Lookup),
        ]
    }

    proptest! {
        #[test]
        fn any_input_is_bounded(
            preset in proptest::option::of("[0-9]{0,12}"),
            events in proptest::collection::vec(ev(), 0..200),
            attempts in 1u32..5,
        ) {
            let cfg = PinConfig { attempts, ..PinConfig::default() };
            let t0 = Instant::now();
            let mut now = t0;
            let mut e = PinEntry::new(cfg, now, preset.as_deref());
            let mut lookups = 0u32;
            let mut ends = 0;
            let count = |e: &mut PinEntry, lookups: &mut u32, ends: &mut u32| {
                for a in drain(e) {
                    match a {
                        Action::Lookup(_) => *lookups += 1,
                        Action::Join(_) | Action::Hangup(_) => *ends += 1,
                        _ => {}
                    }
                }
            };
            count(&mut e, &mut lookups, &mut ends);
            for ev in events {
                match ev {
                    Ev::Digit(d) => e.handle_digit(now, d),
                    Ev::Wait(ms) => {
                        now += Duration::from_millis(ms);
                        e.handle_timeout(now);
                    }
                    Ev::PromptDone => e.handle_prompt_finished(now),
                    Ev::Lookup(0) => e.handle_lookup(now, LookupOutcome::NotFound),
                    Ev::Lookup(1) => e.handle_lookup(now, LookupOutcome::Found("r".into())),
                    Ev::Lookup(_) => e.handle_lookup(now, LookupOutcome::Failed),
                }
                count(&mut e, &mut lookups, &mut ends);
                prop_assert!(e.failures() <= attempts);
                prop_assert!(lookups <= attempts);
                if let Some(t) = e.poll_timeout() {
                    prop_assert!(t > now, "a timer is never left in the past");
                }
            }
            // Left alone (wrong PINs, silence), the dialogue always ends.
            for _ in 0..100 {
                if e.is_done() {
                    break;
                }
                match e.poll_timeout() {
                    Some(t) => {
                        now = now.max(t);
                        e.handle_timeout(now);
                    }
                    None => e.handle_lookup(now, LookupOutcome::NotFound),
                }
                count(&mut e, &mut lookups, &mut ends);
            }
            prop_assert!(e.is_done());
            prop_assert_eq!(ends, 1);
            prop_assert!(lookups <= attempts);
        }
    }
}
