//! The RTP port range, shared by the SIP and H.323 fronts: even ports handed out in turn.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

/// Hands out RTP sockets from `[min, max]`, round robin, skipping ports in use.
#[derive(Debug, Clone)]
pub struct RtpPorts {
    inner: Arc<Mutex<Range>>,
}

#[derive(Debug)]
struct Range {
    min: u16,
    max: u16,
    next: u16,
}

impl RtpPorts {
    /// A range (`min` even, `max` above it).
    pub fn new(min: u16, max: u16) -> Self {
        let min = min + (min & 1);
        RtpPorts {
            inner: Arc::new(Mutex::new(Range {
                min,
                max: max.max(min),
                next: min,
            })),
        }
    }

    /// The next free even port on `ip`, bound (None when the whole range is busy).
    pub fn bind(&self, ip: IpAddr) -> Option<UdpSocket> {
        let (min, max) = {
            let r = self.inner.lock().ok()?;
            (r.min, r.max)
        };
        let span = max.saturating_sub(min).max(2);
        for _ in 0..=(span / 2).min(500) {
            let port = {
                let mut r = self.inner.lock().ok()?;
                let port = r.next;
                r.next = if u32::from(port) + 2 > u32::from(r.max) {
                    r.min
                } else {
                    port + 2
                };
                port
            };
            let sock = std::net::UdpSocket::bind(SocketAddr::new(ip, port))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .and_then(UdpSocket::from_std);
            if let Ok(s) = sock {
                return Some(s);
            }
        }
        warn!("no free RTP port in {min}-{max}");
        None
    }

    /// An RTP socket and the RTCP socket on the next port (for peers without rtcp-mux).
    pub fn bind_pair(&self, ip: IpAddr) -> Option<(UdpSocket, UdpSocket)> {
        for _ in 0..8 {
            let rtp = self.bind(ip)?;
            let Ok(addr) = rtp.local_addr() else { continue };
            let rtcp_addr = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1));
            let rtcp = std::net::UdpSocket::bind(rtcp_addr)
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .and_then(UdpSocket::from_std);
            if let Ok(rtcp) = rtcp {
                return Some((rtp, rtcp));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ports_are_even_and_skip_busy_ones() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        // Find a free pair of even ports to make the range from.
        let probe = std::net::UdpSocket::bind((ip, 0)).expect("bind");
        let base = probe.local_addr().expect("addr").port() & !1;
        drop(probe);
        let ports = RtpPorts::new(base, base + 5);
        let port = |s: &UdpSocket| s.local_addr().expect("addr").port();
        let a = ports.bind(ip).expect("first");
        let b = ports.bind(ip).expect("second");
        let c = ports.bind(ip).expect("third");
        assert_eq!((port(&a), port(&b), port(&c)), (base, base + 2, base + 4));
        // All busy: none left.
        assert!(ports.bind(ip).is_none());
        // A freed port is found again, whatever the turn.
        drop(b);
        let d = ports.bind(ip).expect("freed");
        assert_eq!(port(&d), base + 2);
        drop((a, c, d));
    }
}
