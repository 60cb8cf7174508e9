//! The embedded room server against jonction's own LiveKit client (str0m peers on loopback):
//! join, publish, subscribe, forwarding, data relay, leave, token and frame errors.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use jonction::config::Config;
use jonction::livekit::connection::RoomLink;
use jonction::livekit::ClientEvent;
use jonction::token::{Keys, TokenRequest};
use livekit_protocol as proto;
use str0m::media::{Frequency, MediaKind, MediaTime};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn start() -> (jonction::gateway::Running, String, Keys) {
    start_with(&[]).await
}

async fn start_with(extra: &[(&str, &str)]) -> (jonction::gateway::Running, String, Keys) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let env = vec![
        (
            "JONCTION_HTTP__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        ("JONCTION_ROOMS__UDP_PORT".to_string(), "0".to_string()),
        ("JONCTION_SIP__ENABLED".to_string(), "false".to_string()),
        ("JONCTION_H323__ENABLED".to_string(), "false".to_string()),
        (
            "JONCTION_ROOMS__BIND_IPS".to_string(),
            "127.0.0.1".to_string(),
        ),
    ]
    .into_iter()
    .chain(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    .collect::<Vec<_>>();
    let cfg = Config::load_with_env(None, &env).expect("test config");
    let running = jonction::gateway::start(&cfg)
        .await
        .expect("gateway starts");
    let url = format!("ws://{}", running.http_addr);
    (running, url, Keys::new("devkey", "secret"))
}

fn token(keys: &Keys, room: &str, id: &str) -> String {
    keys.mint(&TokenRequest::new(room, id)).expect("mint")
}

/// Waits (bounded) for an event matching `pred`.
async fn wait_for<T>(
    link: &mut RoomLink,
    what: &str,
    mut pred: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, link.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap_or_else(|e| panic!("link failed waiting for {what}: {e}"));
        if let Some(v) = pred(ev) {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_data_and_leave() {
    let (running, url, keys) = start().await;
    let mut a = RoomLink::connect(&url, &token(&keys, "t1", "alice"), LO)
        .await
        .expect("alice connects");
    wait_for(&mut a, "alice joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    let mut b = RoomLink::connect(&url, &token(&keys, "t1", "bob"), LO)
        .await
        .expect("bob connects");
    let others = wait_for(&mut b, "bob joined", |e| match e {
        ClientEvent::Joined { others, .. } => Some(others),
        _ => None,
    })
    .await;
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].identity, "alice");

    a.client().publish(
        "mic",
        "mic",
        MediaKind::Audio,
        proto::TrackSource::Microphone,
    );
    a.flush();
    wait_for(&mut a, "published", |e| {
        matches!(e, ClientEvent::Published { .. }).then_some(())
    })
    .await;

    // Alice sends 20 ms Opus frames while Bob waits for them; both links are driven together.
    let payload: Vec<u8> = (0..60u8).map(|i| i.wrapping_mul(7)).collect();
    let start = Instant::now();
    let mut received = 0;
    let mut subscribed = false;
    let mut n = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while received < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no media forwarded"
        );
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                let t = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
                a.client().write("mic", "opus", Instant::now(), t, payload.clone(), None).expect("write");
                a.flush();
            }
            ev = a.next_event() => { ev.expect("alice link"); }
            ev = b.next_event() => match ev.expect("bob link") {
                ClientEvent::Subscribed { kind, .. } => { assert_eq!(kind, MediaKind::Audio); subscribed = true; }
                ClientEvent::Media { data, .. } => {
                    assert_eq!(&data.data[..], &payload[..]);
                    received += 1;
                }
                _ => {}
            },
        }
    }
    assert!(subscribed);

    // Reliable data from Bob reaches Alice with Bob named as sender.
    let pkt = proto::DataPacket {
        value: Some(proto::data_packet::Value::User(proto::UserPacket {
            payload: b"hello".to_vec(),
            topic: Some("t".into()),
            ..Default::default()
        })),
        ..Default::default()
    };
    b.client().send_data(pkt, true).expect("send data");
    b.flush();
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                ev = a.next_event() => if let ClientEvent::Data(p) = ev.expect("alice link") { return p; },
                ev = b.next_event() => { ev.expect("bob link"); }
            }
        }
    })
    .await
    .expect("data arrives");
    assert_eq!(got.participant_identity, "bob");
    match got.value {
        Some(proto::data_packet::Value::User(u)) => assert_eq!(u.payload, b"hello"),
        other => panic!("unexpected data packet {other:?}"),
    }

    // Alice leaves: Bob is told.
    a.leave();
    wait_for(&mut b, "alice's departure", |e| match e {
        ClientEvent::Participant(p)
            if p.identity == "alice"
                && p.state == proto::participant_info::State::Disconnected as i32 =>
        {
            Some(())
        }
        _ => None,
    })
    .await;

    // What an admin's Prometheus scrapes says so, in a well-formed exposition.
    let (code, body) = http_get(&format!("http://{}/metrics", running.http_addr)).await;
    assert_eq!(code, 200);
    let m = parse_metrics(&body);
    assert_eq!(m["jonction_ready"], 1.0);
    assert_eq!(m["jonction_rooms"], 1.0);
    assert_eq!(m["jonction_participants"], 1.0, "bob is left");
    assert!(m["jonction_media_frames_in_total"] >= 20.0);
    assert!(m["jonction_media_frames_out_total"] >= 20.0);
    assert!(m["jonction_data_packets_relayed_total"] >= 1.0);
    let busy = m["jonction_room_server_busy_seconds_total"];
    assert!(
        busy > 0.0 && busy < start.elapsed().as_secs_f64(),
        "busy {busy} s"
    );
    assert!(m["jonction_forward_latency_seconds_count"] >= 20.0);
    running.stop().await;
}

/// Parses a Prometheus text exposition, checking its form: every sample's metric has HELP and
/// TYPE lines before it and a numeric value. Returns sample (with labels) → value.
fn parse_metrics(body: &str) -> std::collections::HashMap<String, f64> {
    let mut typed = std::collections::HashMap::new();
    let mut helped = std::collections::HashSet::new();
    let mut samples = std::collections::HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(!help.is_empty(), "{line}");
            helped.insert(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_string(), kind.to_string());
        } else {
            let (sample, value) = line.rsplit_once(' ').expect("sample and value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
            let name = sample.split('{').next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(typed.contains_key(family), "no TYPE before {line}");
            assert!(helped.contains(family), "no HELP before {line}");
            if typed[family] == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "counter {name} must end in _total"
                );
            }
            samples.insert(sample.to_string(), value);
        }
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_bad_frames() {
    let (running, url, keys) = start().await;
    let http = format!("http://{}", running.http_addr);
    let good = token(&keys, "t2", "carol");
    let wrong = Keys::new("devkey", "another-secret")
        .mint(&TokenRequest::new("t2", "x"))
        .unwrap();
    let expired = expired_token("devkey", "secret", "t2", "old");

    let status = |t: String| {
        let http = http.clone();
        async move {
            let (code, body) = http_get(&format!("{http}/rtc/validate?access_token={t}")).await;
            (code, body)
        }
    };
    assert_eq!(status(good.clone()).await.0, 200);
    let (code, body) = status(wrong).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("bad signature"), "{body}");
    let (code, body) = status(expired.clone()).await;
    assert_eq!(code, 401);
    assert!(body.to_lowercase().contains("expired"), "{body}");

    // The WebSocket is refused with a readable reason.
    match RoomLink::connect(&url, &expired, LO).await {
        Err(e) => assert!(e.to_string().contains("401"), "{e}"),
        Ok(_) => panic!("expired token accepted"),
    }

    // A connected client keeps working while another sends garbage.
    let mut c = RoomLink::connect(&url, &good, LO)
        .await
        .expect("carol connects");
    wait_for(&mut c, "carol joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let t = token(&keys, "t2", "mallory");
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/rtc?access_token={t}"))
            .await
            .expect("ws opens");
        ws.send(Message::Binary(vec![0xff, 0xff, 0xff, 0xff, 0x0f].into()))
            .await
            .expect("send garbage");
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(m) = ws.next().await {
                if let Ok(Message::Close(f)) = m {
                    return f.map(|f| u16::from(f.code));
                }
            }
            None
        })
        .await
        .expect("server closes the bad connection");
        assert_eq!(closed, Some(1007));
    }
    // Carol is still served: a ping round trip works through a new subscription request.
    c.client().subscribe(vec![], true);
    c.flush();
    let probe = tokio::time::timeout(Duration::from_secs(2), c.next_event()).await;
    if let Ok(r) = probe {
        r.expect("carol's link is alive");
    }
    assert_eq!(http_get(&format!("{http}/healthz")).await.0, 200);
    assert_eq!(http_get(&format!("{http}/readyz")).await.0, 200);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_room_closes_after_grace_period() {
    let (running, url, keys) = start_with(&[("JONCTION_ROOMS__EMPTY_TIMEOUT", "1s")]).await;
    let rooms = running.rooms.clone().expect("embedded rooms");
    let mut a = RoomLink::connect(&url, &token(&keys, "t3", "dave"), LO)
        .await
        .expect("connects");
    wait_for(&mut a, "joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    assert_eq!(rooms.stats().await.expect("stats").rooms, 1);
    a.leave();
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = rooms.stats().await.expect("stats");
    assert_eq!(
        (s.rooms, s.participants),
        (1, 0),
        "the room stays during the grace period"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rooms.stats().await.expect("stats").rooms,
        0,
        "the empty room closed"
    );
    running.stop().await;
}

/// A minimal HTTP/1.1 GET (no client dependency for two calls).
async fn http_get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = tokio::net::TcpStream::connect(host).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (code, body)
}

/// A correctly signed token that expired an hour ago (beyond any clock-skew leeway).
fn expired_token(key: &str, secret: &str, room: &str, identity: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": key, "sub": identity, "nbf": now - 7200, "exp": now - 3600,
        "video": {"roomJoin": true, "room": room}
    });
    let payload = B64.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(format!("{header}.{payload}").as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{sig}")
}

/// H.264 access units (Annex-B) of a 320x240 test pattern made by ffmpeg, one per frame, or None
/// when ffmpeg is not installed.
fn h264_access_units() -> Option<Vec<Vec<u8>>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("v.h264");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
        ])
        .args([
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-g",
            "25",
        ])
        .args(["-bsf:v", "h264_metadata=aud=insert", "-f", "h264"])
        .arg(&out)
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let bytes = std::fs::read(&out).ok()?;
    // Split at the access unit delimiters (NAL type 9) that ffmpeg inserted.
    let aud = [0u8, 0, 0, 1, 0x09];
    let starts: Vec<usize> = (0..bytes.len().saturating_sub(aud.len()))
        .filter(|&i| bytes[i..i + aud.len()] == aud)
        .collect();
    let mut units = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let e = starts.get(k + 1).copied().unwrap_or(bytes.len());
        units.push(bytes[s..e].to_vec());
    }
    Some(units)
}

/// Video through the room leg's client: a published H.264 track (announced at 320x240)
/// reaches a subscriber as whole access units, and the subscriber's keyframe request comes
/// back to the publisher as [`ClientEvent::KeyframeRequest`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_video_and_keyframe_requests() {
    let Some(units) = h264_access_units() else {
        eprintln!("ffmpeg not installed: skipping the H.264 room test");
        return;
    };
    assert!(units.len() >= 40, "{} access units", units.len());
    let (running, url, keys) = start().await;
    let mut a = RoomLink::connect(&url, &token(&keys, "v1", "camera"), LO)
        .await
        .expect("camera connects");
    wait_for(&mut a, "camera joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    let mut b = RoomLink::connect(&url, &token(&keys, "v1", "viewer"), LO)
        .await
        .expect("viewer connects");
    wait_for(&mut b, "viewer joined", |e| {
        matches!(e, ClientEvent::Joined { .. }).then_some(())
    })
    .await;
    a.client()
        .publish_video("cam", "cam", proto::TrackSource::Camera, 320, 240);
    a.flush();
    wait_for(&mut a, "published", |e| {
        matches!(e, ClientEvent::Published { .. }).then_some(())
    })
    .await;

    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(40));
    let (mut n, mut frames, mut keyframe_requests) = (0usize, 0usize, 0usize);
    let mut track: Option<String> = None;
    let mut announced = None;
    let mut asked = false;
    while frames < 30 || keyframe_requests == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{frames} frames, {keyframe_requests} keyframe requests"
        );
        tokio::select! {
            _ = tick.tick() => {
                let unit = units[n % units.len()].clone();
                let t = MediaTime::new(n as u64 * 3600, Frequency::NINETY_KHZ);
                n += 1;
                a.client().write("cam", "h264", Instant::now(), t, unit, None).expect("write");
                a.flush();
            }
            ev = a.next_event() => {
                if let ClientEvent::KeyframeRequest { cid, .. } = ev.expect("camera link") {
                    assert_eq!(cid, "cam");
                    keyframe_requests += 1;
                }
            }
            ev = b.next_event() => match ev.expect("viewer link") {
                ClientEvent::Participant(p) if p.identity == "camera" => {
                    announced = p.tracks.first().map(|t| (t.width, t.height)).or(announced);
                }
                ClientEvent::Subscribed { kind, track_sid, .. } => {
                    assert_eq!(kind, MediaKind::Video);
                    track = Some(track_sid);
                }
                ClientEvent::Media { data, track_sid } => {
                    assert_eq!(Some(&track_sid), track.as_ref());
                    // Whole access units, in Annex-B, with their slices.
                    assert!(data.data.windows(4).any(|w| w == [0, 0, 0, 1]) || data.data.windows(3).any(|w| w == [0, 0, 1]));
                    frames += 1;
                    if frames == 10 && !asked {
                        asked = true;
                        b.client()
                            .request_keyframe(&track_sid, str0m::media::KeyframeRequestKind::Pli)
                            .expect("keyframe request");
                        b.flush();
                    }
                }
                _ => {}
            },
        }
    }
    assert_eq!(announced, Some((320, 240)), "the track's announced size");
    running.stop().await;
}
