//! SIP over connection-oriented transports, TCP and TLS: one task per connection frames the byte
//! stream into messages (RFC 3261 §18.3) for the front and writes what the front sends back on
//! it; partial messages and idle connections time out. TLS (RFC 3261 §26.2) is a rustls server
//! handshake before the same framing; a renewed certificate is picked up without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use super::endpoint::{Peer, Transport};
use super::message::{Message, ParseError, MAX_MESSAGE};
use crate::file_watch::{Fingerprint, Settle};

/// What a connection task reports to the front.
pub enum StreamIn {
    /// A framed message (or, before a close, the unframeable rest, for a 400).
    Message(Peer, Vec<u8>),
    /// The connection is gone: forget its writer.
    Closed(Transport, SocketAddr),
}

/// How long a peer may take to finish a message it started.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may stay idle.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a TLS client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the certificate files are checked for a renewal.
pub const CERTIFICATE_CHECK: Duration = Duration::from_secs(10);

/// The TLS server side of SIP: the certificate chain and key of `[sip] tls_certificate` and
/// `tls_private_key` (PEM), TLS 1.2 and 1.3, no client certificates.
fn tls_acceptor(certificate: &Path, private_key: &Path) -> std::io::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::other(format!("{}: {e}", what.display()))
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(certificate, &e))?;
    if chain.is_empty() {
        return Err(bad(certificate, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(private_key).map_err(|e| bad(private_key, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(certificate, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS acceptor of `certificate` and `private_key`, kept up to date: a task checks the
/// files every `every` and, once a change has settled (a renewal writes two files), loads
/// them. Connections accepted afterwards get the new certificate; open connections, and the
/// calls on them, are not touched. A change that does not load is logged and the running
/// certificate kept. The task ends with the last receiver.
pub fn watched_tls_acceptor(
    certificate: &Path,
    private_key: &Path,
    every: Duration,
) -> std::io::Result<watch::Receiver<TlsAcceptor>> {
    let files = [certificate.to_path_buf(), private_key.to_path_buf()];
    // The state before the load: a renewal during it is seen as a change.
    let mut settle = Settle::new(Fingerprint::of(&files));
    let (tx, rx) = watch::channel(tls_acceptor(certificate, private_key)?);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !tx.is_closed() {
            tick.tick().await;
            if !settle.observe(Fingerprint::of(&files)) {
                continue;
            }
            let [certificate, private_key]: &[PathBuf; 2] = &files;
            match tls_acceptor(certificate, private_key) {
                Ok(acceptor) => {
                    info!(certificate = %certificate.display(), "SIP TLS certificate reloaded");
                    let _ = tx.send(acceptor);
                }
                Err(e) => error!("SIP TLS certificate refused, the running one kept: {e}"),
            }
        }
    });
    Ok(rx)
}

/// Completes the TLS handshake of an accepted connection, then serves it as [`connection`]
/// does. A failed or slow handshake closes it (logged at debug: scanners do this all day).
pub async fn tls_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: Peer,
    out: mpsc::UnboundedReceiver<Vec<u8>>,
    to_front: mpsc::UnboundedSender<StreamIn>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => connection(tls, peer, out, to_front).await,
        Ok(Err(e)) => {
            debug!(remote = %peer.remote, "SIP TLS handshake failed: {e}");
            super::metrics::tls_handshake_failed();
            let _ = to_front.send(StreamIn::Closed(peer.transport, peer.remote));
        }
        Err(_) => {
            debug!(remote = %peer.remote, "SIP TLS handshake timed out");
            super::metrics::tls_handshake_failed();
            let _ = to_front.send(StreamIn::Closed(peer.transport, peer.remote));
        }
    }
}

/// Reads framed messages from one connection and writes what the front sends on it.
pub async fn connection<S: AsyncRead + AsyncWrite>(
    stream: S,
    peer: Peer,
    mut out: mpsc::UnboundedReceiver<Vec<u8>>,
    to_front: mpsc::UnboundedSender<StreamIn>,
) {
    let remote = peer.remote;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut started: Option<tokio::time::Instant> = None;
    loop {
        let limit = match started {
            Some(t) => t + MESSAGE_TIMEOUT,
            None => tokio::time::Instant::now() + IDLE_TIMEOUT,
        };
        tokio::select! {
            r = rd.read(&mut chunk) => {
                let n = match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match Message::parse_stream(&buf) {
                        Ok((_, framed)) => {
                            let bytes: Vec<u8> = buf.drain(..framed.len).collect();
                            let _ = to_front.send(StreamIn::Message(peer, bytes));
                            started = None;
                        }
                        Err(ParseError::Incomplete) if buf.len() <= MAX_MESSAGE => {
                            // Keep-alive CRLFs alone are not a message start.
                            if buf.iter().all(|b| *b == b'\r' || *b == b'\n') {
                                buf.clear();
                            } else if started.is_none() {
                                started = Some(tokio::time::Instant::now());
                            }
                            break;
                        }
                        Err(e) => {
                            // Unframeable: answer what can be answered, then close (RFC 3261 §18.3).
                            debug!(%remote, "closing SIP {} connection: {e}", peer.transport.via_name());
                            let _ = to_front.send(StreamIn::Message(peer, std::mem::take(&mut buf)));
                            let _ = to_front.send(StreamIn::Closed(peer.transport, remote));
                            let _ = tokio::time::timeout(Duration::from_millis(200), async {
                                while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(50), out.recv()).await {
                                    let _ = wr.write_all(&m).await;
                                }
                            }).await;
                            let _ = wr.shutdown().await;
                            return;
                        }
                    }
                }
            }
            m = out.recv() => match m {
                Some(bytes) => {
                    if wr.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep_until(limit) => {
                debug!(%remote, "SIP {} connection timed out", peer.transport.via_name());
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
    let _ = to_front.send(StreamIn::Closed(peer.transport, remote));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("jonction-tls-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("temp dir is writable");
        p
    }

    fn data(name: &str) -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/tls")
            .join(name);
        std::fs::read(p).expect("test certificate")
    }

    /// Waits (bounded) for a new acceptor; true if one came.
    async fn reloaded(rx: &mut watch::Receiver<TlsAcceptor>) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(2), rx.changed()).await,
            Ok(Ok(()))
        )
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_loaded_and_a_broken_one_refused() {
        let cert = temp("renew.pem", "");
        let key = temp("renew.key", "");
        std::fs::write(&cert, data("a.pem")).expect("write");
        std::fs::write(&key, data("a.key")).expect("write");
        let mut rx = watched_tls_acceptor(&cert, &key, Duration::from_millis(20)).expect("loads");
        let first = Arc::clone(rx.borrow_and_update().config());
        // Unchanged files: nothing is reloaded.
        assert!(!reloaded(&mut rx).await, "reloaded without a change");
        // A renewal: the new certificate, then its key.
        std::fs::write(&cert, data("b.pem")).expect("write");
        std::fs::write(&key, data("b.key")).expect("write");
        assert!(reloaded(&mut rx).await, "the renewal was not loaded");
        assert!(!Arc::ptr_eq(&first, rx.borrow_and_update().config()));
        // A certificate that is not the key's (a renewal half done): refused.
        std::fs::write(&cert, data("a.pem")).expect("write");
        assert!(
            !reloaded(&mut rx).await,
            "a certificate not matching its key was loaded"
        );
        std::fs::write(&cert, data("b.pem")).expect("write");
        assert!(
            reloaded(&mut rx).await,
            "the completed renewal was not loaded"
        );
        // A broken file: refused, the running acceptor stays.
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\ngarbage\n").expect("write");
        assert!(!reloaded(&mut rx).await, "a broken key was loaded");
        // Fixed again: loaded.
        std::fs::write(&key, data("b.key")).expect("write");
        assert!(reloaded(&mut rx).await, "the fixed key was not loaded");
        for p in [cert, key] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn unusable_certificate_files_are_refused_with_their_path() {
        let missing = Path::new("/nonexistent/jonction/sip.pem");
        let e = tls_acceptor(missing, missing).err().expect("refused");
        assert!(
            e.to_string().contains("/nonexistent/jonction/sip.pem"),
            "{e}"
        );
        let empty = temp("empty.pem", "no PEM here\n");
        let e = tls_acceptor(&empty, &empty).err().expect("refused");
        assert!(e.to_string().contains("no certificate"), "{e}");
        let cert = temp(
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n",
        );
        let e = tls_acceptor(&cert, &empty).err().expect("refused");
        assert!(e.to_string().contains(&*empty.to_string_lossy()), "{e}");
        for p in [empty, cert] {
            let _ = std::fs::remove_file(p);
        }
    }
}
