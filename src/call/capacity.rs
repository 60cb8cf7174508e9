//! Capacity limits on new calls, shared by the fronts: calls in progress, call attempts per
//! second, and two overload signals: how late the gateway's tasks get a CPU (scheduling delay:
//! the whole process, or the machine, is saturated) and the load of the embedded room server
//! (one task, so it saturates one core while others idle). A call beyond a limit is refused before
//! any work is done for it (SIP 503 with Retry-After, H.323 ReleaseComplete with a congestion
//! cause), so that the calls in progress keep their quality and a trunk can try elsewhere.
//!
//! An admitted call holds a [`CallSlot`] until it ends; dropping the slot frees its place.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::CallsConfig;
use crate::prometheus::{family, sample, single, Kind};

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_concurrent` calls are in progress.
    Concurrent,
    /// More than `max_per_second` calls arrived within the last second.
    Rate,
    /// The gateway's tasks wait too long for a CPU.
    SchedulingDelay,
    /// The embedded room server is saturated.
    RoomServerBusy,
}

impl Full {
    const ALL: [Full; 4] = [
        Full::Concurrent,
        Full::Rate,
        Full::SchedulingDelay,
        Full::RoomServerBusy,
    ];

    /// The label in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Full::Concurrent => "max_concurrent",
            Full::Rate => "max_per_second",
            Full::SchedulingDelay => "scheduling_delay",
            Full::RoomServerBusy => "room_server_busy",
        }
    }

    /// When the caller may try again (SIP Retry-After).
    pub fn retry_after(self) -> Duration {
        match self {
            Full::Rate => Duration::from_secs(1),
            Full::Concurrent | Full::SchedulingDelay | Full::RoomServerBusy => {
                Duration::from_secs(5)
            }
        }
    }

    /// The Q.850 cause: 34 "no circuit/channel available" when every place is taken, 42
    /// "switching equipment congestion" when the gateway is overloaded.
    pub fn q850(self) -> u8 {
        match self {
            Full::Concurrent => 34,
            Full::Rate | Full::SchedulingDelay | Full::RoomServerBusy => 42,
        }
    }
}

static REFUSED: [AtomicU64; Full::ALL.len()] = [const { AtomicU64::new(0) }; Full::ALL.len()];
static SCHEDULING_DELAY_US: AtomicU32 = AtomicU32::new(0);

/// Records how late the gateway's tasks lately got a CPU (measured by the process shell: a timer
/// task's lateness, averaged over the last half-second or so).
pub fn record_scheduling_delay(d: Duration) {
    let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    SCHEDULING_DELAY_US.store(us, Ordering::Relaxed);
}

/// The last recorded scheduling delay.
pub fn scheduling_delay() -> Duration {
    Duration::from_micros(u64::from(SCHEDULING_DELAY_US.load(Ordering::Relaxed)))
}

/// The load of the embedded room server: the share of one core it used lately (0 without one).
pub type LoadProbe = Box<dyn Fn() -> f64 + Send + Sync>;

/// The limits and what holds them; shared by the fronts (`Arc`).
pub struct Capacity {
    limits: CallsConfig,
    held: AtomicUsize,
    /// Token bucket: tokens left and when it was last filled.
    bucket: Mutex<(f64, Option<Instant>)>,
    load: LoadProbe,
}

impl Capacity {
    /// Capacity with `limits` (zero disables one), reading the room server's load from `load`.
    pub fn new(limits: CallsConfig, load: LoadProbe) -> Self {
        Self {
            bucket: Mutex::new((f64::from(limits.max_per_second), None)),
            limits,
            held: AtomicUsize::new(0),
            load,
        }
    }

    /// Calls admitted and not ended yet.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Admits a new call at `now`, or says which limit refuses it (and counts the refusal).
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<CallSlot, Full> {
        let r = self.check(now);
        if let Err(full) = r {
            let n = REFUSED[full as usize].fetch_add(1, Ordering::Relaxed) + 1;
            // A flood of attempts must not flood the log too.
            if n.is_power_of_two() {
                warn!(
                    limit = full.as_str(),
                    refused = n,
                    in_progress = self.held(),
                    "calls refused: capacity limit reached ([calls])"
                );
            }
        }
        r
    }

    /// The limit a new call would meet now, if any, without taking a place or counting a
    /// refusal: what an OPTIONS ping is answered from. The attempt rate is left out, since it
    /// is about the calls themselves.
    pub fn full_now(&self) -> Option<Full> {
        if let Some(full) = self.overloaded() {
            return Some(full);
        }
        let max = self.limits.max_concurrent;
        (max != 0 && self.held() >= max).then_some(Full::Concurrent)
    }

    /// The overload limit the gateway is beyond, if any.
    fn overloaded(&self) -> Option<Full> {
        let lag = self.limits.max_scheduling_delay;
        if !lag.is_zero() && scheduling_delay() > lag {
            return Some(Full::SchedulingDelay);
        }
        let busy = self.limits.room_server_busy_limit;
        if busy > 0.0 && busy < 1.0 && (self.load)() > busy {
            return Some(Full::RoomServerBusy);
        }
        None
    }

    fn check(self: &Arc<Self>, now: Instant) -> Result<CallSlot, Full> {
        if let Some(full) = self.overloaded() {
            return Err(full);
        }
        // Take the place first, so that two fronts racing for the last one cannot both win.
        let max = self.limits.max_concurrent;
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(Full::Concurrent);
        }
        let slot = CallSlot(self.clone());
        if !self.take_token(now) {
            return Err(Full::Rate); // `slot` gives its place back
        }
        Ok(slot)
    }

    fn take_token(&self, now: Instant) -> bool {
        let rate = f64::from(self.limits.max_per_second);
        if rate == 0.0 {
            return true;
        }
        let Ok(mut b) = self.bucket.lock() else {
            return true;
        };
        let (tokens, last) = &mut *b;
        if let Some(t) = *last {
            let elapsed = now.saturating_duration_since(t).as_secs_f64();
            *tokens = (*tokens + elapsed * rate).min(rate);
        }
        *last = Some(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An admitted call's place; the place is free again when this is dropped.
pub struct CallSlot(Arc<Capacity>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for CallSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallSlot")
    }
}

/// Appends the refusal counters and the scheduling delay in the Prometheus text format.
pub fn write_prometheus(out: &mut String) {
    single(
        out,
        "jonction_scheduling_delay_seconds",
        "How late the gateway's tasks lately got a CPU.",
        Kind::Gauge,
        scheduling_delay().as_secs_f64(),
    );
    let refused = "jonction_calls_refused_total";
    family(
        out,
        refused,
        "Calls refused by a capacity limit ([calls]).",
        Kind::Counter,
    );
    for f in Full::ALL {
        let n = REFUSED[f as usize].load(Ordering::Relaxed);
        sample(out, refused, Some(("limit", f.as_str())), n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn capacity(max_concurrent: usize, max_per_second: u32, busy: f64) -> Arc<Capacity> {
        Arc::new(Capacity::new(
            CallsConfig {
                max_concurrent,
                max_per_second,
                max_scheduling_delay: Duration::ZERO,
                room_server_busy_limit: busy,
            },
            Box::new(|| 0.5),
        ))
    }

    #[test]
    fn concurrent_calls_are_capped_and_an_ended_call_frees_its_place() {
        let c = capacity(2, 0, 0.0);
        let now = Instant::now();
        let a = c.admit(now).expect("first");
        assert_eq!(c.full_now(), None);
        let _b = c.admit(now).expect("second");
        assert_eq!(c.full_now(), Some(Full::Concurrent));
        assert_eq!(c.admit(now).unwrap_err(), Full::Concurrent);
        assert_eq!(c.held(), 2);
        drop(a);
        assert_eq!(c.held(), 1);
        assert_eq!(c.full_now(), None);
        assert!(c.admit(now).is_ok());
    }

    #[test]
    fn attempts_per_second_are_capped_with_a_burst_and_refill() {
        let c = capacity(0, 3, 0.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            // Dropped at once: the rate limit counts attempts, not calls in progress.
            c.admit(t0).expect("within the burst");
        }
        assert_eq!(c.admit(t0).unwrap_err(), Full::Rate);
        // A refused attempt holds no place, and the rate is not a state a ping reports.
        assert_eq!(c.held(), 0);
        assert_eq!(c.full_now(), None);
        assert_eq!(
            c.admit(t0 + Duration::from_millis(100)).unwrap_err(),
            Full::Rate
        );
        // One token every 1/3 s.
        assert!(c.admit(t0 + Duration::from_millis(400)).is_ok());
        assert_eq!(
            c.admit(t0 + Duration::from_millis(450)).unwrap_err(),
            Full::Rate
        );
        // Never more than a second's worth saved up.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            c.admit(later).expect("a full bucket again");
        }
        assert_eq!(c.admit(later).unwrap_err(), Full::Rate);
    }

    #[test]
    fn a_busy_room_server_refuses_new_calls_until_it_recovers() {
        let load = Arc::new(AtomicU32::new(500));
        let probe = load.clone();
        let c = Arc::new(Capacity::new(
            CallsConfig {
                max_concurrent: 0,
                max_per_second: 0,
                max_scheduling_delay: Duration::ZERO,
                room_server_busy_limit: 0.9,
            },
            Box::new(move || f64::from(probe.load(Ordering::Relaxed)) / 1000.0),
        ));
        let now = Instant::now();
        assert!(c.admit(now).is_ok());
        load.store(950, Ordering::Relaxed);
        assert_eq!(c.full_now(), Some(Full::RoomServerBusy));
        assert_eq!(c.admit(now).unwrap_err(), Full::RoomServerBusy);
        load.store(700, Ordering::Relaxed);
        assert_eq!(c.full_now(), None);
        assert!(c.admit(now).is_ok());
    }

    #[test]
    fn a_late_scheduler_refuses_new_calls_until_it_catches_up() {
        let c = Arc::new(Capacity::new(
            CallsConfig {
                max_concurrent: 0,
                max_per_second: 0,
                max_scheduling_delay: Duration::from_millis(20),
                room_server_busy_limit: 0.0,
            },
            Box::new(|| 0.0),
        ));
        let now = Instant::now();
        // The only test touching the recorded delay (a process-wide figure).
        record_scheduling_delay(Duration::from_millis(5));
        assert!(c.admit(now).is_ok());
        record_scheduling_delay(Duration::from_millis(35));
        assert_eq!(c.admit(now).unwrap_err(), Full::SchedulingDelay);
        let mut out = String::new();
        write_prometheus(&mut out);
        assert!(
            out.contains("jonction_scheduling_delay_seconds 0.035"),
            "{out}"
        );
        record_scheduling_delay(Duration::from_millis(2));
        assert!(c.admit(now).is_ok());
        record_scheduling_delay(Duration::ZERO);
    }

    #[test]
    fn zero_limits_admit_everything() {
        let c = capacity(0, 0, 0.0);
        let now = Instant::now();
        let slots: Vec<_> = (0..1000).map(|_| c.admit(now).expect("admitted")).collect();
        assert_eq!(c.held(), 1000);
        drop(slots);
        assert_eq!(c.held(), 0);
        // A limit of 1 or more on the load never refuses.
        assert!(capacity(0, 0, 1.0).admit(now).is_ok());
    }

    #[test]
    fn refusals_are_counted_by_limit() {
        let c = capacity(1, 0, 0.0);
        let now = Instant::now();
        let _held = c.admit(now).expect("first");
        let before = REFUSED[Full::Concurrent as usize].load(Ordering::Relaxed);
        assert!(c.admit(now).is_err());
        assert!(REFUSED[Full::Concurrent as usize].load(Ordering::Relaxed) > before);
        let mut out = String::new();
        write_prometheus(&mut out);
        assert!(out.contains("jonction_calls_refused_total{limit=\"max_concurrent\"}"));
        assert!(out.contains("# TYPE jonction_calls_refused_total counter"));
    }
}
