//! Our side of a dialog's SDP: the `o=` line, whose session id stays fixed and whose version
//! goes up by one exactly when the description changes (RFC 3264 §8, RFC 8866 §5.2).

use std::net::IpAddr;

/// A description we wrote (an offer or an answer), not yet given an `o=` line. Render it with
/// [`SdpSession::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSdp {
    body: sdp_types::Session,
    address: IpAddr,
}

impl LocalSdp {
    /// Wraps a description built by this module; `address` goes into `o=`.
    pub(crate) fn new(body: sdp_types::Session, address: IpAddr) -> Self {
        LocalSdp { body, address }
    }

    /// The description, with a placeholder `o=` line.
    pub fn body(&self) -> &sdp_types::Session {
        &self.body
    }
}

/// The `o=` state of one dialog. Every SDP we send in the dialog goes through
/// [`SdpSession::render`], which keeps the session id and bumps the version only when the
/// description differs from the previous one: a session-refresh re-INVITE gets the same
/// version back, hold and resume each get a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpSession {
    id: u64,
    version: u64,
    last: Option<LocalSdp>,
}

impl SdpSession {
    /// A new dialog's state. `id` should be unique per dialog (RFC 8866 §5.2 suggests an NTP
    /// timestamp); the caller provides it so that the core stays deterministic.
    pub fn new(id: u64) -> Self {
        SdpSession {
            id,
            version: id,
            last: None,
        }
    }

    /// The `o=` session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The version of the last rendered description.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The SDP text of `sdp` (CRLF line endings), with our `o=` line.
    pub fn render(&mut self, sdp: &LocalSdp) -> String {
        match &self.last {
            Some(last) if last == sdp => {}
            Some(_) => {
                self.version = self.version.wrapping_add(1);
                self.last = Some(sdp.clone());
            }
            None => self.last = Some(sdp.clone()),
        }
        let mut body = sdp.body.clone();
        body.origin =
            sdp_types::Origin::with_ip_addr(self.id.to_string(), self.version, sdp.address);
        body.origin.set_username("jonction");
        body.to_string()
    }
}
