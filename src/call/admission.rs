//! Admission: what an incoming call becomes, whichever front (SIP, H.323) received it. The
//! dialplan routes it; a room gets a room-leg token at once, a PIN rule gets a [`PinSetup`]
//! (prompt language, lookup in the rule's directory, brute-force protection), and everything
//! else is refused with the status the rule or the situation calls for. A call the gateway would
//! take must also fit its capacity limits ([`Capacity`]): it then holds a [`CallSlot`] until it
//! ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::capacity::{CallSlot, Capacity, Full};
use super::pin_phase::{LookupFuture, PinSetup};
use super::CallId;
use crate::dialplan::{
    reload::DialplanHandle, Outcome, PinAction, PinLookup, PromptLanguage, RouteRequest, Routing,
};
use crate::media::negotiated::SrtpPolicy;
use crate::pin::entry::{LookupOutcome, PinConfig};
use crate::pin::guard::{BruteForceGuard, GuardConfig, Verdict};
use crate::pin::lookup::{LiveKitApi, LookupContext, PinDirectory, LOOKUP_TIMEOUT};
use crate::prompt::Language;
use crate::token::{Keys, TokenRequest};

/// What to do with a call.
pub enum Decision {
    /// Take it.
    Admit(Admitted),
    /// Refuse it.
    Refuse(Refusal),
}

/// A call the gateway takes.
pub struct Admitted {
    /// Room to join (empty when a PIN names it).
    pub room: String,
    /// Room-leg token (empty when a PIN names the room).
    pub token: String,
    /// Set: answer, collect a PIN, then join the room it opens.
    pub pin: Option<Box<PinSetup>>,
    /// The route's SRTP policy for the device leg, if it sets one.
    pub srtp: Option<SrtpPolicy>,
    /// The call's place in the gateway's capacity, held until it ends.
    pub slot: CallSlot,
}

/// A call the gateway refuses.
pub struct Refusal {
    /// SIP status.
    pub sip_code: u16,
    /// Reason phrase.
    pub reason: String,
    /// Q.850 cause for H.323.
    pub h323_cause: Option<u8>,
    /// A capacity limit refused it: when to try again, and the Q.850 cause for a SIP Reason
    /// header.
    pub full: Option<Full>,
}

/// The caller, as the front saw it.
pub struct Caller {
    /// Our id of the call.
    pub id: CallId,
    /// The protocol's call id (SIP Call-ID), for attributes and logs.
    pub call_id: String,
    /// The routing request (called/calling parties, source, transport, headers).
    pub request: RouteRequest,
}

/// Routes calls and tracks failed PINs; shared by the fronts.
pub struct Admission {
    plan: DialplanHandle,
    keys: Keys,
    livekit_url: String,
    guard: Mutex<BruteForceGuard>,
    capacity: Arc<Capacity>,
}

impl Admission {
    /// Admission with the running dialplan, the keys for room-leg tokens and the LiveKit URL
    /// (also used by roomkit lookups to read the room's dispatch rule), within `capacity`.
    pub fn new(
        plan: DialplanHandle,
        keys: Keys,
        livekit_url: String,
        capacity: Arc<Capacity>,
    ) -> Self {
        Self {
            plan,
            keys,
            livekit_url,
            guard: Mutex::new(BruteForceGuard::new(GuardConfig::default())),
            capacity,
        }
    }

    /// Takes a place for a call the dialplan accepted, or refuses it.
    fn admit(&self, c: &Caller) -> Result<CallSlot, Decision> {
        self.capacity.admit(Instant::now()).map_err(|full| {
            info!(
                call = c.id.0,
                limit = full.as_str(),
                "call refused: capacity limit reached"
            );
            Decision::Refuse(Refusal {
                sip_code: 503,
                reason: "Service Unavailable".into(),
                h323_cause: Some(full.q850()),
                full: Some(full),
            })
        })
    }

    /// The capacity limit a new call would meet now, if any (see [`Capacity::full_now`]).
    pub fn full_now(&self) -> Option<Full> {
        self.capacity.full_now()
    }

    /// The dialplan in force.
    pub fn plan(&self) -> &DialplanHandle {
        &self.plan
    }

    /// Decides what the call becomes.
    pub fn decide(self: &Arc<Self>, c: &Caller) -> Decision {
        let source = c.request.source;
        if let Some(ip) = source {
            let refused = self
                .guard
                .lock()
                .map(|g| matches!(g.check(Instant::now(), ip), Verdict::Refused { .. }))
                .unwrap_or(false);
            if refused {
                warn!(call = c.id.0, %ip, "call refused: too many wrong PINs from this source");
                return refuse(403, "Forbidden", Some(21));
            }
        }
        let routing = self.plan.current().route(&c.request);
        log_routing(c, &routing);
        match routing.outcome {
            Outcome::NoMatch => refuse(404, "Not Found", Some(1)),
            Outcome::Invalid(why) => {
                info!(call = c.id.0, "call refused: {why}");
                refuse(404, "Not Found", Some(1))
            }
            Outcome::Reject {
                sip_code,
                reason,
                h323_cause,
            } => Decision::Refuse(Refusal {
                sip_code,
                reason,
                h323_cause,
                full: None,
            }),
            Outcome::DialOut(_) => {
                info!(
                    call = c.id.0,
                    "dial_out rule matched: dial-out is not available yet"
                );
                refuse(404, "Not Found", Some(1))
            }
            Outcome::Room(t) => {
                let slot = match self.admit(c) {
                    Ok(s) => s,
                    Err(refused) => return refused,
                };
                let attrs: Vec<(String, String)> = t.attributes.into_iter().collect();
                match self.token(c, &t.room, t.participant_name.as_deref(), &attrs) {
                    Some(token) => Decision::Admit(Admitted {
                        room: t.room,
                        token,
                        pin: None,
                        srtp: routing.srtp,
                        slot,
                    }),
                    None => refuse(500, "Server Internal Error", Some(41)),
                }
            }
            Outcome::Pin(p) => {
                let slot = match self.admit(c) {
                    Ok(s) => s,
                    Err(refused) => return refused,
                };
                match self.pin_setup(c, &p) {
                    Ok(setup) => Decision::Admit(Admitted {
                        room: String::new(),
                        token: String::new(),
                        pin: Some(setup),
                        srtp: routing.srtp,
                        slot,
                    }),
                    Err(refused) => refused,
                }
            }
        }
    }

    fn pin_setup(self: &Arc<Self>, c: &Caller, p: &PinAction) -> Result<Box<PinSetup>, Decision> {
        let Some(directory) = self.directory(&p.lookup) else {
            error!(
                call = c.id.0,
                "PIN rule's directory is missing a secret (environment variable unset?)"
            );
            return Err(refuse(503, "Service Unavailable", Some(41)));
        };
        let directory = Arc::new(directory);
        let language = match p.prompt_language(&c.request) {
            PromptLanguage::Fr => Language::Fr,
            PromptLanguage::En | PromptLanguage::Auto => Language::En,
        };
        let ctx = LookupContext {
            call_id: Some(c.call_id.clone()),
            trunk_id: c.request.trunk.clone(),
            calling_number: Some(c.request.calling.user.clone()),
            called_number: Some(c.request.called.user.clone()),
        };
        let lookup = move |pin: String| -> LookupFuture {
            let directory = directory.clone();
            let ctx = ctx.clone();
            Box::pin(async move {
                match directory.resolve_within(&pin, &ctx, LOOKUP_TIMEOUT).await {
                    Ok(Some(m)) => LookupOutcome::Found(m.room_name),
                    Ok(None) => LookupOutcome::NotFound,
                    Err(e) => {
                        warn!(call_id = ?ctx.call_id, "PIN lookup failed: {e}");
                        LookupOutcome::Failed
                    }
                }
            })
        };
        let me = self.clone();
        let caller = Caller {
            id: c.id,
            call_id: c.call_id.clone(),
            request: c.request.clone(),
        };
        let mint = move |room: &str| me.token(&caller, room, None, &[]);
        let me = self.clone();
        let source = c.request.source;
        let failed = move || {
            if let (Some(ip), Ok(mut g)) = (source, me.guard.lock()) {
                if let Verdict::Refused { .. } = g.record_failure(Instant::now(), ip) {
                    warn!(%ip, "too many wrong PINs: source refused for a while");
                }
            }
        };
        let timeout = p.timeout.max(Duration::from_secs(1));
        Ok(Box::new(PinSetup {
            config: PinConfig {
                min_digits: usize::from(p.min_digits),
                max_digits: usize::from(p.max_digits),
                first_digit_timeout: timeout,
                inter_digit_timeout: timeout,
                attempts: u32::from(p.attempts),
                ..PinConfig::default()
            },
            language,
            preset: p.signalled_pin(&c.request),
            hash_terminates: p.hash_terminates,
            lookup: Box::new(lookup),
            mint: Box::new(mint),
            failed: Box::new(failed),
        }))
    }

    fn directory(&self, l: &PinLookup) -> Option<PinDirectory> {
        Some(match l {
            PinLookup::Static(t) => {
                PinDirectory::Static(t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            }
            PinLookup::Roomkit { url, token } => PinDirectory::Roomkit {
                url: url.clone(),
                token: token.resolve()?,
                livekit: LiveKitApi {
                    url: self.livekit_url.clone(),
                    api_key: self.keys.api_key().to_string(),
                    api_secret: self.keys.api_secret().to_string(),
                },
            },
            PinLookup::LivekitDispatch {
                url,
                api_key,
                api_secret,
            } => PinDirectory::LiveKitDispatch(LiveKitApi {
                url: url.clone(),
                api_key: api_key.clone(),
                api_secret: api_secret.resolve()?,
            }),
        })
    }

    /// A room-leg token: kind SIP, `sip.*` attributes, the rule's name and attributes.
    fn token(
        &self,
        c: &Caller,
        room: &str,
        name: Option<&str>,
        attrs: &[(String, String)],
    ) -> Option<String> {
        let caller = &c.request.calling.user;
        let mut t = TokenRequest::new(room, format!("sip_{}_{}", sanitize(caller), c.id.0));
        t.name = match name {
            Some(n) if !n.is_empty() => n.to_string(),
            _ if caller.is_empty() => "Phone".into(),
            _ => caller.clone(),
        };
        t.kind = "sip".into();
        let mut a: HashMap<String, String> = HashMap::new();
        a.insert("sip.callID".into(), c.call_id.clone());
        a.insert("sip.phoneNumber".into(), caller.clone());
        a.insert("sip.trunkPhoneNumber".into(), c.request.called.user.clone());
        a.insert("sip.callStatus".into(), "active".into());
        a.extend(attrs.iter().cloned());
        t.attributes = a;
        match self.keys.mint(&t) {
            Ok(tok) => Some(tok),
            Err(e) => {
                error!(call = c.id.0, "cannot mint a room token: {e}");
                None
            }
        }
    }
}

fn refuse(sip_code: u16, reason: &str, h323_cause: Option<u8>) -> Decision {
    Decision::Refuse(Refusal {
        sip_code,
        reason: reason.into(),
        h323_cause,
        full: None,
    })
}

fn log_routing(c: &Caller, r: &Routing) {
    match &r.rule {
        Some(rule) => info!(
            call = c.id.0,
            called = %c.request.called.user,
            calling = %c.request.calling.user,
            rule = %rule.name,
            file = %rule.file.display(),
            "dialplan matched"
        ),
        None => info!(
            call = c.id.0,
            called = %c.request.called.user,
            calling = %c.request.calling.user,
            "no dialplan rule matched"
        ),
    }
}

/// Identity-safe characters of a caller id.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '-')
        .take(32)
        .collect()
}
