//! Call counters for the metrics endpoint: calls in progress per protocol, calls ended per
//! cause, and call records that could not be written (each one is a call lost to billing and
//! support, so it must page somebody).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::HangupCause;
use crate::dialplan::Protocol;
use crate::prometheus::{family, sample, single, Kind};

const PROTOCOLS: [Protocol; 2] = [Protocol::Sip, Protocol::H323];
static ACTIVE: [AtomicI64; PROTOCOLS.len()] = [const { AtomicI64::new(0) }; PROTOCOLS.len()];
static ENDED: [AtomicU64; HangupCause::ALL.len()] =
    [const { AtomicU64::new(0) }; HangupCause::ALL.len()];
static RECORDS_FAILED: AtomicU64 = AtomicU64::new(0);

fn slot(p: Protocol) -> usize {
    match p {
        Protocol::Sip => 0,
        Protocol::H323 => 1,
    }
}

/// A call in progress, counted until dropped: a call task cancelled at shutdown counts down too.
pub struct InProgress(Protocol);

impl InProgress {
    /// Counts a call of `protocol` in.
    pub fn start(protocol: Protocol) -> Self {
        ACTIVE[slot(protocol)].fetch_add(1, Ordering::Relaxed);
        Self(protocol)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        ACTIVE[slot(self.0)].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a call that ended for `cause`.
pub fn ended(cause: HangupCause) {
    // A cause missing from HangupCause::ALL is not counted rather than a panic.
    if let Some(n) = ENDED.get(cause as usize) {
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts a call record that could not be written.
pub fn record_failed() {
    RECORDS_FAILED.fetch_add(1, Ordering::Relaxed);
}

/// Appends the call metrics in the Prometheus text format.
pub fn write_prometheus(out: &mut String) {
    let active = "jonction_calls_active";
    family(out, active, "Calls in progress.", Kind::Gauge);
    for p in PROTOCOLS {
        let n = ACTIVE[slot(p)].load(Ordering::Relaxed).max(0);
        sample(out, active, Some(("protocol", &p.to_string())), n);
    }
    let ended = "jonction_calls_ended_total";
    family(
        out,
        ended,
        "Calls ended, by end cause (as in the call records).",
        Kind::Counter,
    );
    for c in HangupCause::ALL {
        let n = ENDED[c as usize].load(Ordering::Relaxed);
        sample(out, ended, Some(("cause", c.as_str())), n);
    }
    single(
        out,
        "jonction_call_records_failed_total",
        "Call records that could not be written.",
        Kind::Counter,
        RECORDS_FAILED.load(Ordering::Relaxed),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_own_counter() {
        for (i, c) in HangupCause::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?} out of place in HangupCause::ALL");
        }
    }

    #[test]
    fn calls_are_counted_in_and_out_and_by_cause() {
        let text = |name: &str| {
            let mut out = String::new();
            write_prometheus(&mut out);
            out.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<i64>().ok())
                .expect("sample present")
        };
        let active = "jonction_calls_active{protocol=\"h323\"}";
        let disengaged = "jonction_calls_ended_total{cause=\"disengaged\"}";
        let (a0, d0) = (text(active), text(disengaged));
        let call = InProgress::start(Protocol::H323);
        assert_eq!(text(active), a0 + 1);
        ended(HangupCause::Disengaged);
        drop(call);
        assert_eq!(text(active), a0);
        assert_eq!(text(disengaged), d0 + 1);
    }
}
