//! LiveKit signalling frames: binary protobuf or protojson text `SignalRequest`s in, and
//! `SignalResponse`s out in the same encoding the client used.

use livekit_protocol as proto;
use prost::Message;

/// How a connection encodes its frames (LiveKit answers in kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf (all SDKs).
    Protobuf,
    /// protojson text.
    Json,
}

/// A frame that is not a `SignalRequest`.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Bad protobuf.
    #[error("malformed protobuf SignalRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Bad JSON.
    #[error("malformed JSON SignalRequest: {0}")]
    Json(#[from] serde_json::Error),
    /// A request with no message in it.
    #[error("empty SignalRequest")]
    Empty,
}

/// Decodes a binary frame.
pub fn decode_binary(data: &[u8]) -> Result<proto::signal_request::Message, FrameError> {
    proto::SignalRequest::decode(data)?
        .message
        .ok_or(FrameError::Empty)
}

/// Decodes a text frame.
pub fn decode_text(text: &str) -> Result<proto::signal_request::Message, FrameError> {
    serde_json::from_str::<proto::SignalRequest>(text)?
        .message
        .ok_or(FrameError::Empty)
}

/// Encodes a response for the wire.
pub fn encode(msg: proto::signal_response::Message, enc: Encoding) -> Frame {
    let resp = proto::SignalResponse { message: Some(msg) };
    match enc {
        Encoding::Protobuf => Frame::Binary(resp.encode_to_vec()),
        // Serialising a prost struct to JSON cannot fail: no maps with non-string keys.
        Encoding::Json => Frame::Text(serde_json::to_string(&resp).unwrap_or_default()),
    }
}

/// An encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Binary.
    Binary(Vec<u8>),
    /// Text.
    Text(String),
}

/// Short name of a request, for logs.
#[allow(deprecated)]
pub fn request_name(m: &proto::signal_request::Message) -> &'static str {
    use proto::signal_request::Message as M;
    match m {
        M::Offer(_) => "offer",
        M::Answer(_) => "answer",
        M::Trickle(_) => "trickle",
        M::AddTrack(_) => "add_track",
        M::Mute(_) => "mute",
        M::Subscription(_) => "subscription",
        M::TrackSetting(_) => "track_setting",
        M::Leave(_) => "leave",
        M::UpdateLayers(_) => "update_layers",
        M::SubscriptionPermission(_) => "subscription_permission",
        M::SyncState(_) => "sync_state",
        M::Simulate(_) => "simulate",
        M::Ping(_) => "ping",
        M::UpdateMetadata(_) => "update_metadata",
        M::PingReq(_) => "ping_req",
        M::UpdateAudioTrack(_) => "update_audio_track",
        M::UpdateVideoTrack(_) => "update_video_track",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_round_trip_and_garbage() {
        let req = proto::SignalRequest {
            message: Some(proto::signal_request::Message::Ping(42)),
        };
        let m = decode_binary(&req.encode_to_vec()).expect("valid");
        assert!(matches!(m, proto::signal_request::Message::Ping(42)));
        assert!(decode_binary(&[0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(matches!(decode_binary(&[]), Err(FrameError::Empty)));
    }

    #[test]
    fn json_request() {
        let m = decode_text(r#"{"pingReq":{"timestamp":"5","rtt":"0"}}"#).expect("valid");
        assert!(matches!(m, proto::signal_request::Message::PingReq(p) if p.timestamp == 5));
        assert!(decode_text("{nope").is_err());
        let f = encode(proto::signal_response::Message::Pong(7), Encoding::Json);
        assert!(matches!(f, Frame::Text(t) if t.contains("pong")));
    }
}
