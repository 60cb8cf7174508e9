//! What a phone caller goes through before joining a room: PIN entry by DTMF, a brute-force
//! guard per source address, and PIN → room lookups.
//!
//! - [`entry`]: the DTMF PIN dialogue (prompts, digits, timeouts, attempts), sans-IO;
//! - [`guard`]: refuses sources that try too many wrong PINs, sans-IO;
//! - [`lookup`]: PIN → room via a static table, Visio roomkit or LiveKit dispatch rules (tokio).
//!
//! How a call task wires them (the test `caller_journey` below runs exactly this):
//! 1. before answering, [`guard::BruteForceGuard::check`] the source address (or, for calls
//!    through a trusted trunk, [`guard::GuardKey::caller`]): `Refused` → reject the call (e.g.
//!    SIP 403/486) without prompting;
//! 2. [`entry::PinEntry::new`] with the PIN given up front, if any (X-PIN header, or
//!    [`entry::split_dialled_pin`] of the request-URI user part);
//! 3. drain [`entry::PinEntry::poll_action`]: `Play` → feed a [`crate::prompt::PromptPlayer`]
//!    at the device rate instead of the room mix, and report its end; `StopPrompt` → stop it;
//!    `Lookup(pin)` → spawn [`lookup::PinDirectory::resolve`], then hand
//!    [`entry::LookupOutcome::of`] its result to [`entry::PinEntry::handle_lookup`], and
//!    `record_failure` on the guard for `NotFound` (`record_success` for `Found`; a `Refused`
//!    verdict there ends the call at once); `Join` → join the room of the kept
//!    [`lookup::RoomMatch`]; `Hangup` → BYE;
//! 4. DTMF digits go to [`entry::PinEntry::handle_digit`]; sleep until
//!    [`entry::PinEntry::poll_timeout`], then [`entry::PinEntry::handle_timeout`].

pub mod entry;
pub mod guard;
pub mod lookup;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    use super::entry::{Action, HangupReason, LookupOutcome, PinConfig, PinEntry};
    use super::guard::{BruteForceGuard, GuardConfig, Verdict};
    use super::lookup::{LookupContext, PinDirectory};
    use crate::prompt::{Language, Prompt, PromptPlayer};

    /// A caller's end of the dialogue: the digits it types after each prompt it hears.
    struct Caller<'a> {
        typing: std::slice::Iter<'a, &'a str>,
    }

    /// Runs one call through guard, entry, prompts and lookups, as a call task would; returns
    /// the prompts heard and how the dialogue ended.
    async fn call(
        guard: &mut BruteForceGuard,
        dir: &PinDirectory,
        now: &mut Instant,
        ip: IpAddr,
        preset: Option<&str>,
        caller: &mut Caller<'_>,
    ) -> (Vec<Prompt>, Option<Action>) {
        if let Verdict::Refused { .. } = guard.check(*now, ip) {
            return (Vec::new(), None);
        }
        let ctx = LookupContext::default();
        let mut entry = PinEntry::new(PinConfig::default(), *now, preset);
        let mut heard = Vec::new();
        for _ in 0..100 {
            while let Some(action) = entry.poll_action() {
                match action {
                    Action::Play(prompt) => {
                        heard.push(prompt);
                        // 20 ms frames at the device rate until the prompt is over.
                        let player = PromptPlayer::new(prompt, Language::Fr, 8000).unwrap();
                        let frames = player.count() as u32;
                        *now += Duration::from_millis(20) * frames;
                        entry.handle_prompt_finished(*now);
                        if !matches!(prompt, Prompt::Goodbye | Prompt::Unavailable) {
                            if let Some(keys) = caller.typing.next() {
                                for key in keys.chars() {
                                    *now += Duration::from_millis(300);
                                    entry.handle_digit(*now, key);
                                }
                            }
                        }
                    }
                    Action::StopPrompt => {}
                    Action::Lookup(pin) => {
                        let result = dir.resolve(&pin, &ctx).await;
                        match &result {
                            Ok(Some(_)) => guard.record_success(ip),
                            Ok(None) => {
                                if let Verdict::Refused { .. } = guard.record_failure(*now, ip) {
                                    let end = Action::Hangup(HangupReason::TooManyAttempts);
                                    return (heard, Some(end));
                                }
                            }
                            Err(_) => {}
                        }
                        entry.handle_lookup(*now, LookupOutcome::of(&result));
                    }
                    end @ (Action::Join(_) | Action::Hangup(_)) => return (heard, Some(end)),
                }
            }
            match entry.poll_timeout() {
                Some(t) => {
                    *now = t;
                    entry.handle_timeout(t);
                }
                None => break,
            }
        }
        (heard, None)
    }

    #[tokio::test]
    async fn caller_journey() {
        let dir = PinDirectory::Static(HashMap::from([("1234567890".into(), "visio".into())]));
        let mut guard = BruteForceGuard::new(GuardConfig {
            max_failures: 4,
            ..GuardConfig::default()
        });
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let mut now = Instant::now();
        use Prompt::{EnterPin, Goodbye, WrongPin};

        // A wrong PIN given up front, then a typo, then the right PIN.
        let keys = ["1111#", "123456789*1234567890"];
        let mut caller = Caller {
            typing: keys.iter(),
        };
        let (heard, end) = call(&mut guard, &dir, &mut now, ip, Some("9999"), &mut caller).await;
        assert_eq!(heard, [EnterPin, WrongPin]);
        assert_eq!(end, Some(Action::Join("visio".into())));

        // Three wrong PINs: goodbye. The guard has seen 3 failures since the success.
        let keys = ["0000000000", "0000000001#", "0000000002#"];
        let mut caller = Caller {
            typing: keys.iter(),
        };
        let (heard, end) = call(&mut guard, &dir, &mut now, ip, None, &mut caller).await;
        assert_eq!(heard, [EnterPin, WrongPin, WrongPin, Goodbye]);
        assert_eq!(end, Some(Action::Hangup(HangupReason::TooManyAttempts)));

        // The next wrong PIN trips the guard, which ends this call at once and refuses the
        // next one unprompted.
        let mut caller = Caller { typing: [].iter() };
        let (heard, end) = call(&mut guard, &dir, &mut now, ip, Some("5555"), &mut caller).await;
        assert_eq!(heard, []);
        assert_eq!(end, Some(Action::Hangup(HangupReason::TooManyAttempts)));
        let (heard, end) = call(&mut guard, &dir, &mut now, ip, None, &mut caller).await;
        assert_eq!((heard.len(), end), (0, None), "refused by the guard");
    }
}
