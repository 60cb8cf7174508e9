//! The LiveKit RoomService API of the embedded room server, over Twirp (HTTP `POST
//! /twirp/livekit.RoomService/<Method>`, protobuf or JSON bodies), so that LiveKit's server SDKs
//! and tools can list rooms and participants, remove a participant or close a room. Tokens are
//! checked like LiveKit does: `roomList` to list rooms, `roomCreate` to delete one, `roomAdmin`
//! on the room for participant operations.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use livekit_protocol as proto;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::AppState;
use crate::rooms::service::{AdminOp, AdminReply};
use crate::token::AdminGrant;

/// A Twirp error: its code names the HTTP status (Twirp spec, "Error codes").
#[derive(Debug)]
struct TwirpError {
    code: &'static str,
    msg: String,
}

impl TwirpError {
    fn new(code: &'static str, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
        }
    }
}

impl IntoResponse for TwirpError {
    fn into_response(self) -> Response {
        let status = match self.code {
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "permission_denied" => StatusCode::FORBIDDEN,
            "not_found" | "bad_route" => StatusCode::NOT_FOUND,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = serde_json::json!({ "code": self.code, "msg": self.msg });
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// The body encoding, taken from the request's Content-Type and used for the answer too.
#[derive(Clone, Copy)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Result<Self, TwirpError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/protobuf" => Ok(Self::Protobuf),
            "application/json" => Ok(Self::Json),
            other => Err(TwirpError::new(
                "malformed",
                format!(
                    "unsupported Content-Type {other:?} (application/protobuf or application/json)"
                ),
            )),
        }
    }

    fn decode<T: Message + Default + DeserializeOwned>(self, body: &[u8]) -> Result<T, TwirpError> {
        match self {
            Self::Protobuf => T::decode(body)
                .map_err(|e| TwirpError::new("malformed", format!("bad protobuf body: {e}"))),
            Self::Json if body.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
            Self::Json => serde_json::from_slice(body)
                .map_err(|e| TwirpError::new("malformed", format!("bad JSON body: {e}"))),
        }
    }

    fn encode<T: Message + Serialize>(self, msg: &T) -> Response {
        match self {
            Self::Protobuf => (
                [(header::CONTENT_TYPE, "application/protobuf")],
                msg.encode_to_vec(),
            )
                .into_response(),
            Self::Json => (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(msg).unwrap_or_default(),
            )
                .into_response(),
        }
    }
}

/// `POST /twirp/livekit.RoomService/{method}`.
pub async fn room_service(
    State(st): State<AppState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle(&st, &method, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            debug!(method, code = e.code, msg = %e.msg, "RoomService request refused");
            e.into_response()
        }
    }
}

async fn handle(
    st: &AppState,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, TwirpError> {
    let enc = Encoding::of(headers)?;
    let grant = authenticate(st, headers)?;
    let Some(rooms) = st.rooms.as_ref() else {
        return Err(TwirpError::new("unavailable", "no embedded room server"));
    };
    let run = |op: AdminOp| async move {
        rooms
            .admin(op)
            .await
            .ok_or_else(|| TwirpError::new("unavailable", "room server stopped"))
    };
    match method {
        "ListRooms" => {
            let req: proto::ListRoomsRequest = enc.decode(body)?;
            require(grant.room_list, "roomList")?;
            let AdminReply::Rooms(rooms) = run(AdminOp::ListRooms(req.names)).await? else {
                return Err(internal());
            };
            Ok(enc.encode(&proto::ListRoomsResponse { rooms }))
        }
        "DeleteRoom" => {
            let req: proto::DeleteRoomRequest = enc.decode(body)?;
            require(grant.room_create, "roomCreate")?;
            match run(AdminOp::DeleteRoom(req.room.clone())).await? {
                AdminReply::Done(true) => Ok(enc.encode(&proto::DeleteRoomResponse {})),
                _ => Err(TwirpError::new(
                    "not_found",
                    format!("room {:?} not found", req.room),
                )),
            }
        }
        "ListParticipants" => {
            let req: proto::ListParticipantsRequest = enc.decode(body)?;
            require_admin(&grant, &req.room)?;
            match run(AdminOp::ListParticipants(req.room.clone())).await? {
                AdminReply::Participants(Some(participants)) => {
                    Ok(enc.encode(&proto::ListParticipantsResponse { participants }))
                }
                _ => Err(TwirpError::new(
                    "not_found",
                    format!("room {:?} not found", req.room),
                )),
            }
        }
        "GetParticipant" => {
            let req: proto::RoomParticipantIdentity = enc.decode(body)?;
            require_admin(&grant, &req.room)?;
            let found = match run(AdminOp::ListParticipants(req.room.clone())).await? {
                AdminReply::Participants(Some(ps)) => {
                    ps.into_iter().find(|p| p.identity == req.identity)
                }
                _ => None,
            };
            match found {
                Some(p) => Ok(enc.encode(&p)),
                None => Err(not_found_participant(&req)),
            }
        }
        "RemoveParticipant" => {
            let req: proto::RoomParticipantIdentity = enc.decode(body)?;
            require_admin(&grant, &req.room)?;
            match run(AdminOp::RemoveParticipant(
                req.room.clone(),
                req.identity.clone(),
            ))
            .await?
            {
                AdminReply::Done(true) => Ok(enc.encode(&proto::RemoveParticipantResponse {})),
                _ => Err(not_found_participant(&req)),
            }
        }
        "CreateRoom"
        | "MutePublishedTrack"
        | "UpdateParticipant"
        | "UpdateSubscriptions"
        | "SendData"
        | "UpdateRoomMetadata"
        | "ForwardParticipant"
        | "MoveParticipant" => Err(TwirpError::new(
            "unimplemented",
            format!("{method} is not implemented by the embedded room server"),
        )),
        other => Err(TwirpError::new(
            "bad_route",
            format!("no method {other:?} in livekit.RoomService"),
        )),
    }
}

fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<AdminGrant, TwirpError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| TwirpError::new("unauthenticated", "missing Authorization header"))?;
    let jwt = auth
        .strip_prefix("Bearer ")
        .ok_or_else(|| TwirpError::new("unauthenticated", "Authorization is not a Bearer token"))?;
    st.keys
        .verify_admin(jwt.trim())
        .map_err(|e| TwirpError::new("unauthenticated", e.to_string()))
}

fn require(granted: bool, what: &str) -> Result<(), TwirpError> {
    if granted {
        Ok(())
    } else {
        Err(TwirpError::new(
            "permission_denied",
            format!("token does not grant {what}"),
        ))
    }
}

fn require_admin(grant: &AdminGrant, room: &str) -> Result<(), TwirpError> {
    if room.is_empty() {
        return Err(TwirpError::new("invalid_argument", "room is required"));
    }
    require(grant.room_admin, "roomAdmin")?;
    if grant.room != room {
        return Err(TwirpError::new(
            "permission_denied",
            format!("token grants roomAdmin on {:?}, not {room:?}", grant.room),
        ));
    }
    Ok(())
}

fn not_found_participant(req: &proto::RoomParticipantIdentity) -> TwirpError {
    TwirpError::new(
        "not_found",
        format!(
            "participant {:?} not found in room {:?}",
            req.identity, req.room
        ),
    )
}

fn internal() -> TwirpError {
    TwirpError::new("internal", "unexpected reply from the room server")
}
