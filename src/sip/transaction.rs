//! SIP transactions (RFC 3261 §17, with RFC 6026's Accepted state), sans-IO: each transaction
//! is fed requests/responses and time, and returns what to send and when it next wants time.
//! Timer names follow the RFC so a log can say which one fired.

use std::time::{Duration, Instant};

/// RTT estimate (RFC 3261 §17.1.1.1).
pub const T1: Duration = Duration::from_millis(500);
/// Maximum retransmit interval for non-INVITE requests and INVITE responses.
pub const T2: Duration = Duration::from_secs(4);
/// Maximum time a message stays in the network.
pub const T4: Duration = Duration::from_secs(5);

/// The RFC 3261 timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// INVITE request retransmit (client, unreliable transports).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait for response retransmits (client INVITE, after a final response).
    D,
    /// Non-INVITE request retransmit (client).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmit (server).
    G,
    /// Wait for ACK (server INVITE).
    H,
    /// Wait for ACK retransmits (server INVITE, Confirmed).
    I,
    /// Wait for request retransmits (server non-INVITE).
    J,
    /// Wait for response retransmits (client non-INVITE).
    K,
    /// Wait for 2xx retransmissions of the request (server INVITE, Accepted; RFC 6026).
    L,
    /// Wait for retransmitted 2xx (client INVITE, Accepted; RFC 6026).
    M,
}

/// Whether the transport retransmits by itself (TCP/TLS) or not (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// UDP: the transaction retransmits.
    Unreliable,
    /// TCP, TLS: no retransmissions, zero wait timers.
    Reliable,
}

/// What a transaction asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to the peer.
    Send(Vec<u8>),
    /// Give this request or response to the transaction user (core).
    Deliver,
    /// The transaction is over: forget it.
    Terminated,
    /// The transaction timed out (the TU must treat it as a 408 / failure).
    TimedOut(Timer),
}

/// Server transaction states (INVITE and non-INVITE share the names that apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE: request received, no response yet.
    Trying,
    /// A provisional response was sent (or INVITE received).
    Proceeding,
    /// A final (non-2xx for INVITE) response was sent.
    Completed,
    /// INVITE: ACK received for the final response.
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026): request retransmits are absorbed.
    Accepted,
    /// Over.
    Terminated,
}

/// A server transaction (UAS side).
#[derive(Debug)]
pub struct ServerTransaction {
    invite: bool,
    reliability: Reliability,
    state: ServerState,
    last_response: Option<(u16, Vec<u8>)>,
    timer: Option<(Timer, Instant)>,
    /// The overall timer that runs beside G (H).
    deadline: Option<(Timer, Instant)>,
    retransmit_interval: Duration,
}

impl ServerTransaction {
    /// A transaction for a new request (which the owner delivers to the TU).
    pub fn new(invite: bool, reliability: Reliability) -> Self {
        Self {
            invite,
            reliability,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last_response: None,
            timer: None,
            deadline: None,
            retransmit_interval: T1,
        }
    }

    /// Current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The status of the last response sent.
    pub fn last_status(&self) -> Option<u16> {
        self.last_response.as_ref().map(|(s, _)| *s)
    }

    /// A retransmission of the request (or, for INVITE, an ACK to a non-2xx final response).
    pub fn handle_request(&mut self, now: Instant, is_ack: bool) -> Vec<Action> {
        if is_ack {
            if self.invite && self.state == ServerState::Completed {
                self.state = ServerState::Confirmed;
                self.deadline = None;
                return self.arm(now, Timer::I, self.wait(T4));
            }
            return Vec::new();
        }
        match self.state {
            ServerState::Proceeding | ServerState::Completed => self
                .last_response
                .as_ref()
                .map(|(_, b)| vec![Action::Send(b.clone())])
                .unwrap_or_default(),
            // Accepted: the TU retransmits 2xx itself; retransmitted INVITEs are absorbed.
            _ => Vec::new(),
        }
    }

    /// The TU responds: the response is sent and the state moves on.
    pub fn respond(&mut self, now: Instant, status: u16, bytes: Vec<u8>) -> Vec<Action> {
        if matches!(
            self.state,
            ServerState::Completed | ServerState::Confirmed | ServerState::Terminated
        ) {
            return Vec::new();
        }
        let mut out = vec![Action::Send(bytes.clone())];
        self.last_response = Some((status, bytes));
        if status < 200 {
            self.state = ServerState::Proceeding;
            return out;
        }
        if self.invite {
            if status < 300 {
                self.state = ServerState::Accepted;
                out.extend(self.arm(now, Timer::L, 64 * T1));
            } else {
                self.state = ServerState::Completed;
                self.deadline = Some((Timer::H, now + 64 * T1));
                if self.reliability == Reliability::Unreliable {
                    self.retransmit_interval = T1;
                    self.timer = Some((Timer::G, now + T1));
                }
            }
        } else {
            self.state = ServerState::Completed;
            out.extend(self.arm(now, Timer::J, self.wait(64 * T1)));
        }
        out
    }

    /// When the transaction next wants [`ServerTransaction::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timer, self.deadline) {
            (Some((_, a)), Some((_, b))) => Some(a.min(b)),
            (Some((_, a)), None) | (None, Some((_, a))) => Some(a),
            (None, None) => None,
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        if let Some((Timer::H, at)) = self.deadline {
            if now >= at {
                self.state = ServerState::Terminated;
                self.timer = None;
                self.deadline = None;
                return vec![Action::TimedOut(Timer::H), Action::Terminated];
            }
        }
        let Some((timer, at)) = self.timer else {
            return Vec::new();
        };
        if now < at {
            return Vec::new();
        }
        match timer {
            Timer::G => {
                self.retransmit_interval = (self.retransmit_interval * 2).min(T2);
                self.timer = Some((Timer::G, now + self.retransmit_interval));
                self.last_response
                    .as_ref()
                    .map(|(_, b)| vec![Action::Send(b.clone())])
                    .unwrap_or_default()
            }
            _ => {
                self.state = ServerState::Terminated;
                self.timer = None;
                vec![Action::Terminated]
            }
        }
    }

    fn wait(&self, d: Duration) -> Duration {
        match self.reliability {
            Reliability::Unreliable => d,
            Reliability::Reliable => Duration::ZERO,
        }
    }

    fn arm(&mut self, now: Instant, t: Timer, d: Duration) -> Vec<Action> {
        if d.is_zero() {
            self.state = ServerState::Terminated;
            self.timer = None;
            return vec![Action::Terminated];
        }
        self.timer = Some((t, now + d));
        Vec::new()
    }
}

/// Client transaction states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, nothing back.
    Calling,
    /// Non-INVITE sent, nothing back.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; absorbing retransmissions.
    Completed,
    /// INVITE: a 2xx arrived (RFC 6026); the TU sends the ACK.
    Accepted,
    /// Over.
    Terminated,
}

/// A client transaction (requests we send: BYE, re-INVITE, UPDATE, OPTIONS, INVITE).
#[derive(Debug)]
pub struct ClientTransaction {
    invite: bool,
    reliability: Reliability,
    state: ClientState,
    request: Vec<u8>,
    ack: Option<Vec<u8>>,
    retransmit: Option<Instant>,
    interval: Duration,
    deadline: Option<(Timer, Instant)>,
}

impl ClientTransaction {
    /// Starts the transaction: returns it and the first transmission.
    pub fn start(
        now: Instant,
        invite: bool,
        reliability: Reliability,
        request: Vec<u8>,
    ) -> (Self, Vec<Action>) {
        let retransmit = (reliability == Reliability::Unreliable).then_some(now + T1);
        let t = Self {
            invite,
            reliability,
            state: if invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            request: request.clone(),
            ack: None,
            retransmit,
            interval: T1,
            deadline: Some((if invite { Timer::B } else { Timer::F }, now + 64 * T1)),
        };
        (t, vec![Action::Send(request)])
    }

    /// Current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// A response for this transaction. For a non-2xx final response to an INVITE, `ack` is the
    /// ACK to send (built by the owner from the request and the response, §17.1.1.3).
    pub fn handle_response(
        &mut self,
        now: Instant,
        status: u16,
        ack: Option<Vec<u8>>,
    ) -> Vec<Action> {
        match self.state {
            ClientState::Terminated => return Vec::new(),
            ClientState::Completed => {
                // A retransmitted final response: ACK it again (INVITE), else absorb.
                return self
                    .ack
                    .clone()
                    .map(|a| vec![Action::Send(a)])
                    .unwrap_or_default();
            }
            ClientState::Accepted => {
                // Retransmitted 2xx go to the TU, which re-sends its ACK.
                return if (200..300).contains(&status) {
                    vec![Action::Deliver]
                } else {
                    Vec::new()
                };
            }
            _ => {}
        }
        if status < 200 {
            self.state = ClientState::Proceeding;
            if self.invite {
                // Timer A stops on a provisional response; B keeps running until final.
                self.retransmit = None;
            } else if self.reliability == Reliability::Unreliable {
                self.interval = T2;
            }
            return vec![Action::Deliver];
        }
        self.retransmit = None;
        let mut out = vec![Action::Deliver];
        if self.invite && status < 300 {
            self.state = ClientState::Accepted;
            self.deadline = Some((Timer::M, now + 64 * T1));
            return out;
        }
        self.state = ClientState::Completed;
        if self.invite {
            if let Some(a) = ack {
                out.push(Action::Send(a.clone()));
                self.ack = Some(a);
            }
        }
        let (timer, wait) = if self.invite {
            (Timer::D, Duration::from_secs(32))
        } else {
            (Timer::K, T4)
        };
        if self.reliability == Reliability::Reliable {
            self.state = ClientState::Terminated;
            self.deadline = None;
            out.push(Action::Terminated);
        } else {
            self.deadline = Some((timer, now + wait));
        }
        out
    }

    /// When the transaction next wants time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.retransmit, self.deadline) {
            (Some(a), Some((_, b))) => Some(a.min(b)),
            (Some(a), None) | (None, Some((_, a))) => Some(a),
            (None, None) => None,
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        if let Some((timer, at)) = self.deadline {
            if now >= at {
                let timed_out = matches!(timer, Timer::B | Timer::F);
                self.state = ClientState::Terminated;
                self.deadline = None;
                self.retransmit = None;
                let mut out = Vec::new();
                if timed_out {
                    out.push(Action::TimedOut(timer));
                }
                out.push(Action::Terminated);
                return out;
            }
        }
        match self.retransmit {
            Some(at) if now >= at => {
                self.interval = if self.invite {
                    self.interval * 2
                } else {
                    (self.interval * 2).min(T2)
                };
                self.retransmit = Some(now + self.interval);
                vec![Action::Send(self.request.clone())]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sends(actions: &[Action]) -> usize {
        actions
            .iter()
            .filter(|a| matches!(a, Action::Send(_)))
            .count()
    }

    /// Steps a transaction's timers until `until`, counting sends.
    fn run_server(t: &mut ServerTransaction, start: Instant, until: Duration) -> (usize, bool) {
        let (mut n, mut timed_out) = (0, false);
        let mut guard = 0;
        while let Some(at) = t.poll_timeout() {
            if at > start + until || guard > 1000 {
                break;
            }
            guard += 1;
            let acts = t.handle_timeout(at);
            n += sends(&acts);
            timed_out |= acts.contains(&Action::TimedOut(Timer::H));
        }
        (n, timed_out)
    }

    #[test]
    fn invite_error_response_is_retransmitted_until_ack() {
        let t0 = Instant::now();
        let mut t = ServerTransaction::new(true, Reliability::Unreliable);
        assert_eq!(sends(&t.respond(t0, 100, b"100".to_vec())), 1);
        assert_eq!(
            sends(&t.handle_request(t0, false)),
            1,
            "retransmitted INVITE → 100 again"
        );
        assert_eq!(sends(&t.respond(t0, 486, b"486".to_vec())), 1);
        assert_eq!(t.state(), ServerState::Completed);
        // Timer G: 0.5, 1, 2, 4, 4, 4 ... s until H (32 s).
        let (n, timed_out) = run_server(&mut t, t0, Duration::from_secs(40));
        assert!(timed_out, "no ACK: Timer H fires");
        assert_eq!(
            n, 10,
            "G retransmissions at 0.5,1.5,3.5,7.5,11.5,...,31.5 s"
        );
    }

    #[test]
    fn ack_stops_retransmissions() {
        let t0 = Instant::now();
        let mut t = ServerTransaction::new(true, Reliability::Unreliable);
        t.respond(t0, 404, b"404".to_vec());
        let acts = t.handle_timeout(t0 + T1);
        assert_eq!(sends(&acts), 1);
        assert!(t.handle_request(t0 + T1, true).is_empty());
        assert_eq!(t.state(), ServerState::Confirmed);
        let (n, timed_out) = run_server(&mut t, t0, Duration::from_secs(40));
        assert_eq!((n, timed_out), (0, false));
        assert_eq!(t.state(), ServerState::Terminated, "Timer I ends it");
    }

    #[test]
    fn invite_2xx_goes_to_accepted_and_absorbs_retransmits() {
        let t0 = Instant::now();
        let mut t = ServerTransaction::new(true, Reliability::Unreliable);
        t.respond(t0, 200, b"200".to_vec());
        assert_eq!(t.state(), ServerState::Accepted);
        assert!(t.handle_request(t0, false).is_empty());
        assert_eq!(t.handle_timeout(t0 + 64 * T1), vec![Action::Terminated]);
    }

    #[test]
    fn non_invite_server_over_tcp_ends_at_once() {
        let t0 = Instant::now();
        let mut t = ServerTransaction::new(false, Reliability::Reliable);
        let acts = t.respond(t0, 200, b"200".to_vec());
        assert_eq!(
            acts,
            vec![Action::Send(b"200".to_vec()), Action::Terminated]
        );
    }

    #[test]
    fn non_invite_client_retransmits_then_times_out() {
        let t0 = Instant::now();
        let (mut t, first) =
            ClientTransaction::start(t0, false, Reliability::Unreliable, b"BYE".to_vec());
        assert_eq!(sends(&first), 1);
        let mut now = t0;
        let mut n = 0;
        let mut timed_out = false;
        while let Some(at) = t.poll_timeout() {
            now = at;
            let acts = t.handle_timeout(now);
            n += sends(&acts);
            timed_out |= acts.contains(&Action::TimedOut(Timer::F));
            if t.state() == ClientState::Terminated {
                break;
            }
        }
        assert!(timed_out);
        assert_eq!(now - t0, 64 * T1);
        // E: 0.5, 1, 2, 4, 4, ... capped at T2 → 10 retransmissions within 32 s.
        assert_eq!(n, 10);
    }

    #[test]
    fn client_invite_acks_error_and_reacks_retransmits() {
        let t0 = Instant::now();
        let (mut t, _) =
            ClientTransaction::start(t0, true, Reliability::Unreliable, b"INV".to_vec());
        assert_eq!(t.handle_response(t0, 180, None), vec![Action::Deliver]);
        let acts = t.handle_response(t0, 486, Some(b"ACK".to_vec()));
        assert_eq!(acts, vec![Action::Deliver, Action::Send(b"ACK".to_vec())]);
        assert_eq!(
            t.handle_response(t0, 486, None),
            vec![Action::Send(b"ACK".to_vec())]
        );
        assert_eq!(
            t.handle_timeout(t0 + Duration::from_secs(32)),
            vec![Action::Terminated]
        );
    }

    #[test]
    fn client_invite_2xx_is_accepted() {
        let t0 = Instant::now();
        let (mut t, _) =
            ClientTransaction::start(t0, true, Reliability::Unreliable, b"INV".to_vec());
        assert_eq!(t.handle_response(t0, 200, None), vec![Action::Deliver]);
        assert_eq!(t.state(), ClientState::Accepted);
        assert_eq!(t.handle_response(t0, 200, None), vec![Action::Deliver]);
    }
}
