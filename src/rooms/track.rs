//! Published tracks and their forwarded copies ("down tracks"): simulcast layer choice and the
//! RTP time rewriting that makes a layer switch look like one continuous stream to a subscriber.

use std::time::Instant;

use livekit_protocol as proto;
use str0m::media::{MediaKind, MediaTime, Mid, Rid};

/// A track a participant publishes.
#[derive(Debug)]
pub(crate) struct PublishedTrack {
    /// `TR_...`
    pub sid: String,
    /// The client's id for the track (`AddTrackRequest.cid`).
    pub cid: String,
    /// Media line in the publisher peer connection, once negotiated.
    pub mid: Option<Mid>,
    /// Audio or video.
    pub kind: MediaKind,
    /// What the room is told about it.
    pub info: proto::TrackInfo,
    /// Simulcast layers, highest quality last.
    pub layers: Vec<Layer>,
    /// Last keyframe request sent to the publisher, per rid (rate limit).
    pub last_keyframe_request: Option<Instant>,
}

/// One simulcast layer of a video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layer {
    /// `VideoQuality` (0 low, 1 medium, 2 high).
    pub quality: i32,
    /// RTP stream id carrying it (None: no simulcast).
    pub rid: Option<Rid>,
    /// Width in pixels (0 unknown).
    pub width: u32,
    /// Height in pixels (0 unknown).
    pub height: u32,
}

impl PublishedTrack {
    /// Builds the layer list from the client's request; rids follow LiveKit's q/h/f naming when
    /// the client does not name them.
    pub fn layers_from(req: &proto::AddTrackRequest) -> Vec<Layer> {
        let mut layers: Vec<Layer> = req
            .layers
            .iter()
            .map(|l| Layer {
                quality: l.quality,
                rid: if l.rid.is_empty() {
                    None
                } else {
                    Some(Rid::from(l.rid.as_str()))
                },
                width: l.width,
                height: l.height,
            })
            .collect();
        layers.sort_by_key(|l| (l.quality, l.width));
        let names = ["q", "h", "f"];
        let n = layers.len();
        for (i, l) in layers.iter_mut().enumerate() {
            if l.rid.is_none() && n > 1 {
                // LiveKit clients name their layers q, h, f from the lowest up.
                l.rid = Some(Rid::from(names[i.min(2)]));
            }
        }
        layers
    }
}

/// A subscriber's copy of a published track.
#[derive(Debug)]
pub(crate) struct DownTrack {
    /// The published track's sid.
    pub track_sid: String,
    /// The publisher's sid.
    pub publisher_sid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Negotiation state in the subscriber peer connection.
    pub state: DownState,
    /// Paused by the subscriber (`UpdateTrackSettings.disabled`).
    pub disabled: bool,
    /// What the subscriber asked for: a quality, or a size to fit.
    pub want: LayerWish,
    /// Layer being forwarded now.
    pub current: Option<Option<Rid>>,
    /// Layer we switch to at its next keyframe.
    pub target: Option<Option<Rid>>,
    /// Time rewriting, so switches do not jump.
    pub clock: Rewriter,
    /// Packets (frames) forwarded.
    pub forwarded: u64,
}

/// Negotiation state of a down track's m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DownState {
    /// To be added in the next offer.
    ToOpen,
    /// In an offer awaiting its answer.
    Negotiating(Mid),
    /// Negotiated: media flows.
    Open(Mid),
    /// To be stopped in the next offer.
    ToStop(Mid),
    /// Stop offered, awaiting the answer.
    Stopping(Mid),
}

impl DownState {
    /// The m-line, once one was allocated.
    pub fn mid(self) -> Option<Mid> {
        match self {
            Self::ToOpen => None,
            Self::Negotiating(m) | Self::Open(m) | Self::ToStop(m) | Self::Stopping(m) => Some(m),
        }
    }
}

/// Which simulcast layer a subscriber wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerWish {
    /// The best available.
    Highest,
    /// A `VideoQuality`.
    Quality(i32),
    /// The smallest layer at least this big.
    Fit {
        /// Pixels.
        width: u32,
        /// Pixels.
        height: u32,
    },
}

impl DownTrack {
    /// A new subscription, to be negotiated.
    pub fn new(track_sid: &str, publisher_sid: &str, kind: MediaKind) -> Self {
        Self {
            track_sid: track_sid.to_string(),
            publisher_sid: publisher_sid.to_string(),
            kind,
            state: DownState::ToOpen,
            disabled: false,
            want: LayerWish::Highest,
            current: None,
            target: None,
            clock: Rewriter::default(),
            forwarded: 0,
        }
    }

    /// Picks the layer (rid) this subscriber should receive among `layers`.
    pub fn choose(&self, layers: &[Layer]) -> Option<Rid> {
        if layers.len() <= 1 {
            return layers.first().and_then(|l| l.rid);
        }
        let pick = match self.want {
            LayerWish::Highest => layers.last(),
            LayerWish::Quality(q) => layers.iter().rfind(|l| l.quality <= q).or(layers.first()),
            LayerWish::Fit { width, height } => layers
                .iter()
                .find(|l| l.width >= width && l.height >= height)
                .or(layers.last()),
        };
        pick.and_then(|l| l.rid)
    }
}

/// Rewrites RTP media time so a subscriber sees one continuous timeline across source changes
/// (simulcast layer switches): `out = src - src_base + out_base`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Rewriter {
    bases: Option<(u64, u64)>,
    last_out: Option<u64>,
    rebase_next: bool,
}

impl Rewriter {
    /// Asks for a new base at the next frame (the source changes).
    pub fn rebase(&mut self) {
        self.rebase_next = true;
    }

    /// The output time for a source time. After a rebase the output continues one frame
    /// interval (`step`, in the clock's units) after the last output.
    pub fn map(&mut self, src: MediaTime, step: u64) -> MediaTime {
        let t = src.numer();
        let (src_base, out_base) = match (self.bases, self.rebase_next) {
            (Some(b), false) => b,
            _ => {
                let out_base = self.last_out.map(|l| l.wrapping_add(step)).unwrap_or(t);
                self.bases = Some((t, out_base));
                self.rebase_next = false;
                (t, out_base)
            }
        };
        let out = t.wrapping_sub(src_base).wrapping_add(out_base);
        self.last_out = Some(out);
        MediaTime::new(out, src.frequency())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::Frequency;

    fn layer(q: i32, rid: &str, w: u32, h: u32) -> Layer {
        Layer {
            quality: q,
            rid: Some(Rid::from(rid)),
            width: w,
            height: h,
        }
    }

    #[test]
    fn layer_choice() {
        let layers = vec![
            layer(0, "q", 320, 180),
            layer(1, "h", 640, 360),
            layer(2, "f", 1280, 720),
        ];
        let mut d = DownTrack::new("TR_a", "PA_b", MediaKind::Video);
        assert_eq!(d.choose(&layers), Some(Rid::from("f")));
        d.want = LayerWish::Quality(1);
        assert_eq!(d.choose(&layers), Some(Rid::from("h")));
        d.want = LayerWish::Fit {
            width: 300,
            height: 170,
        };
        assert_eq!(d.choose(&layers), Some(Rid::from("q")));
        d.want = LayerWish::Fit {
            width: 4000,
            height: 2000,
        };
        assert_eq!(d.choose(&layers), Some(Rid::from("f")));
        assert_eq!(d.choose(&[]), None);
    }

    #[test]
    fn rewriter_is_continuous_across_rebase() {
        let f = Frequency::NINETY_KHZ;
        let mut r = Rewriter::default();
        assert_eq!(r.map(MediaTime::new(1000, f), 3000).numer(), 1000);
        assert_eq!(r.map(MediaTime::new(4000, f), 3000).numer(), 4000);
        r.rebase();
        // A new source with an unrelated clock continues one frame later.
        assert_eq!(r.map(MediaTime::new(900_000, f), 3000).numer(), 7000);
        assert_eq!(r.map(MediaTime::new(903_000, f), 3000).numer(), 10000);
    }
}
