//! One participant of the embedded room server: its two peer connections (LiveKit's dual-PC
//! model: the client offers on the publisher PC, the server offers on the subscriber PC), its
//! published tracks and its subscriptions.

use std::collections::HashMap;
use std::time::Instant;

use livekit_protocol as proto;
use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::Rtc;

use super::track::{DownState, DownTrack, PublishedTrack};
use crate::token::JoinGrant;

/// Identifies one signalling connection (= one participant session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Which of a participant's two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PcSide {
    /// Client → server media (client offers).
    Publisher,
    /// Server → client media and the server's data channels (server offers).
    Subscriber,
}

/// A peer connection and when it next wants time.
pub(crate) struct Pc {
    pub rtc: Rtc,
    pub timeout: Instant,
    pub connected: bool,
}

/// The server's data channels on the subscriber PC, by label.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    pub reliable: Option<ChannelId>,
    pub lossy: Option<ChannelId>,
}

/// A participant.
pub(crate) struct Participant {
    pub sid: String,
    pub grant: JoinGrant,
    pub room: String,
    pub kind: i32,
    pub state: i32,
    pub version: u32,
    pub joined_at_ms: i64,
    pub auto_subscribe: bool,
    pub publisher: Pc,
    pub subscriber: Pc,
    /// Labels of the client's channels on the publisher PC.
    pub pub_channels: HashMap<ChannelId, String>,
    pub sub_channels: Channels,
    /// Reliable data packets waiting for the subscriber's `_reliable` channel to open.
    pub pending_data: Vec<Vec<u8>>,
    /// Tracks announced by AddTrackRequest, and bound to a media line once negotiated.
    pub tracks: Vec<PublishedTrack>,
    /// Media lines of the publisher PC not yet matched to a track (offer before AddTrack).
    pub unbound_mids: Vec<(str0m::media::Mid, str0m::media::MediaKind, String)>,
    pub down: Vec<DownTrack>,
    /// The subscriber offer awaiting its answer.
    pub sub_pending: Option<SdpPendingOffer>,
    pub sub_offer_id: u32,
    pub last_seen: Instant,
}

impl Participant {
    /// The participant as the room sees it.
    pub fn info(&self) -> proto::ParticipantInfo {
        proto::ParticipantInfo {
            sid: self.sid.clone(),
            identity: self.grant.identity.clone(),
            state: self.state,
            tracks: self
                .tracks
                .iter()
                .filter(|t| t.mid.is_some())
                .map(|t| t.info.clone())
                .collect(),
            metadata: self.grant.metadata.clone(),
            joined_at: self.joined_at_ms / 1000,
            joined_at_ms: self.joined_at_ms,
            name: self.grant.name.clone(),
            version: self.version,
            permission: Some(proto::ParticipantPermission {
                can_subscribe: self.grant.can_subscribe,
                can_publish: self.grant.can_publish,
                can_publish_data: self.grant.can_publish_data,
                hidden: self.grant.hidden,
                can_update_metadata: true,
                ..Default::default()
            }),
            is_publisher: self.tracks.iter().any(|t| t.mid.is_some()),
            kind: self.kind,
            attributes: self.grant.attributes.clone(),
            ..Default::default()
        }
    }

    /// Bumps the version before an update is sent.
    pub fn touch(&mut self) {
        self.version += 1;
    }

    /// The PC on one side.
    pub fn pc(&mut self, side: PcSide) -> &mut Pc {
        match side {
            PcSide::Publisher => &mut self.publisher,
            PcSide::Subscriber => &mut self.subscriber,
        }
    }

    /// A published track by sid.
    pub fn track(&self, sid: &str) -> Option<&PublishedTrack> {
        self.tracks.iter().find(|t| t.sid == sid)
    }

    /// The down track on a subscriber media line.
    pub fn down_by_mid(&mut self, mid: str0m::media::Mid) -> Option<&mut DownTrack> {
        self.down.iter_mut().find(|d| d.state.mid() == Some(mid))
    }

    /// Whether the subscriber PC has changes to offer.
    pub fn has_sub_changes(&self) -> bool {
        self.down
            .iter()
            .any(|d| matches!(d.state, DownState::ToOpen | DownState::ToStop(_)))
    }
}
