//! SIP counters for the metrics endpoint: the final responses given to call attempts (initial
//! INVITEs), by status — 200 answered, and those refused before any call exists: 404
//! unrouted, 403 barred, 488 no common codec, 487 cancelled, 503 overload… — the messages
//! refused as malformed or dropped as garbage, the open TCP and TLS connections and the failed
//! TLS handshakes.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::endpoint::Transport;

use crate::prometheus::{family, sample, single, Kind};

/// Final statuses 200..=699, by `status - 200`.
static INVITE_FINAL: [AtomicU64; 500] = [const { AtomicU64::new(0) }; 500];
static REFUSED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Open connections: TCP, TLS.
static CONNECTIONS: [AtomicI64; 2] = [const { AtomicI64::new(0) }; 2];
static TLS_HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// The [`CONNECTIONS`] slot of a connection-oriented transport.
fn slot(t: Transport) -> Option<&'static AtomicI64> {
    match t {
        Transport::Udp => None,
        Transport::Tcp => Some(&CONNECTIONS[0]),
        Transport::Tls => Some(&CONNECTIONS[1]),
    }
}

/// Counts a TCP or TLS connection accepted (`opened`) or gone.
pub fn connection(t: Transport, opened: bool) {
    if let Some(c) = slot(t) {
        c.fetch_add(if opened { 1 } else { -1 }, Ordering::Relaxed);
    }
}

/// Counts a TLS handshake that failed or timed out.
pub fn tls_handshake_failed() {
    TLS_HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed);
}

/// Counts a final response to an initial INVITE (provisional ones are not counted).
pub fn invite_answered(status: u16) {
    if let Some(n) = status
        .checked_sub(200)
        .and_then(|i| INVITE_FINAL.get(usize::from(i)))
    {
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts a message refused with an error response (`status` > 0) or dropped (`status` 0).
pub fn refused(status: u16) {
    let c = if status == 0 { &DROPPED } else { &REFUSED };
    c.fetch_add(1, Ordering::Relaxed);
}

/// Appends the SIP metrics in the Prometheus text format.
pub fn write_prometheus(out: &mut String) {
    let finals = "jonction_sip_invite_final_responses_total";
    family(
        out,
        finals,
        "Final responses to call attempts (initial INVITEs), by status.",
        Kind::Counter,
    );
    for (i, n) in INVITE_FINAL.iter().enumerate() {
        let n = n.load(Ordering::Relaxed);
        if n > 0 {
            sample(out, finals, Some(("code", &(i + 200).to_string())), n);
        }
    }
    single(
        out,
        "jonction_sip_messages_refused_total",
        "SIP messages refused as malformed (answered with an error).",
        Kind::Counter,
        REFUSED.load(Ordering::Relaxed),
    );
    single(
        out,
        "jonction_sip_datagrams_dropped_total",
        "Datagrams dropped as not SIP or not answerable.",
        Kind::Counter,
        DROPPED.load(Ordering::Relaxed),
    );
    let connections = "jonction_sip_connections";
    family(
        out,
        connections,
        "Open SIP connections, by transport.",
        Kind::Gauge,
    );
    for t in [Transport::Tcp, Transport::Tls] {
        let n = slot(t).map_or(0, |c| c.load(Ordering::Relaxed).max(0));
        let name = t.via_name().to_ascii_lowercase();
        sample(out, connections, Some(("transport", &name)), n as u64);
    }
    single(
        out,
        "jonction_sip_tls_handshake_failures_total",
        "TLS connections closed because their handshake failed or timed out.",
        Kind::Counter,
        TLS_HANDSHAKE_FAILURES.load(Ordering::Relaxed),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> u64 {
        let mut out = String::new();
        write_prometheus(&mut out);
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn final_responses_count_by_status_and_odd_statuses_are_ignored() {
        let s699 = "jonction_sip_invite_final_responses_total{code=\"699\"}";
        let s200 = "jonction_sip_invite_final_responses_total{code=\"200\"}";
        let (a, b) = (sample(s699), sample(s200));
        invite_answered(699);
        invite_answered(200);
        invite_answered(180);
        invite_answered(700);
        invite_answered(0);
        assert_eq!(sample(s699), a + 1);
        assert_eq!(sample(s200), b + 1);
        assert_eq!(
            sample("jonction_sip_invite_final_responses_total{code=\"180\"}"),
            0
        );
    }

    #[test]
    fn connections_are_counted_by_transport_and_udp_is_not_one() {
        let tls = "jonction_sip_connections{transport=\"tls\"}";
        let tcp = "jonction_sip_connections{transport=\"tcp\"}";
        let failed = "jonction_sip_tls_handshake_failures_total";
        let (a, b, f) = (sample(tls), sample(tcp), sample(failed));
        connection(Transport::Tls, true);
        connection(Transport::Udp, true);
        assert_eq!((sample(tls), sample(tcp)), (a + 1, b));
        tls_handshake_failed();
        connection(Transport::Tls, false);
        assert_eq!((sample(tls), sample(failed)), (a, f + 1));
    }
}
