"""Real LiveKit clients (the `livekit` Python SDK, which bundles libwebrtc) against jonction's
embedded room server: media both ways, data packets, participant and speaker events, and
refusal of bad input.

Each test runs its own asyncio loop (asyncio.run) and bounds every wait it makes, so a failure says
what did not arrive instead of hitting the global timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import os
import secrets
import socket
import time
import urllib.parse
from typing import Any, Callable, Optional

import aiohttp
import jwt
import numpy as np
import pytest
from livekit import rtc

from conftest import API_KEY, API_SECRET, ARTIFACTS, Server, assert_clean_exit, launch, stop

SR = 48_000
FRAME_SAMPLES = SR // 100  # 10 ms
TONE_HZ = 440.0
CONNECT_TIMEOUT_S = 20.0
EVENT_TIMEOUT_S = 15.0
MEDIA_TIMEOUT_S = 25.0
TEST_BUDGET_S = 55.0  # below pytest-timeout's 60 s, so our own error message wins

log = logging.getLogger("jonction-tests")


# --------------------------------------------------------------------------------------------
# helpers


def room_name() -> str:
    return f"t-{secrets.token_hex(4)}"


def run(coro, budget: float = TEST_BUDGET_S):
    """Runs one test's coroutine on a fresh event loop, bounded in time."""

    async def bounded():
        return await asyncio.wait_for(coro, budget)

    return asyncio.run(bounded())


class Rooms:
    """Connects SDK clients and always disconnects them (bounded) at the end of a test."""

    def __init__(self, server: Server):
        self.server = server
        self.rooms: list[rtc.Room] = []

    async def connect(
        self, room: str, identity: str, *, room_obj: Optional[rtc.Room] = None, **opts: Any
    ) -> rtc.Room:
        r = room_obj or rtc.Room()
        token = self.server.token(room, identity, name=identity.capitalize())
        options = rtc.RoomOptions(connect_timeout=10.0, **opts)
        self.rooms.append(r)
        try:
            await asyncio.wait_for(r.connect(self.server.ws_url, token, options), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            pytest.fail(f"{identity}: SDK connect to {room} did not finish within {CONNECT_TIMEOUT_S:.0f} s")
        except rtc.ConnectError as e:
            pytest.fail(f"{identity}: SDK connect to {room} failed: {e.message}")
        assert r.isconnected(), f"{identity}: not connected after connect()"
        assert r.local_participant.identity == identity
        assert r.name == room
        return r

    async def close(self) -> None:
        for r in self.rooms:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(r.disconnect(), 10.0)

    async def __aenter__(self) -> "Rooms":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class Waiter:
    """Resolves on the first `event` whose arguments satisfy `pred`. Register before the cause."""

    def __init__(self, emitter: Any, event: str, pred: Callable[..., bool] = lambda *a: True):
        self.event = event
        self.seen: list[tuple] = []
        self._pred = pred
        self._fut: asyncio.Future = asyncio.get_running_loop().create_future()
        emitter.on(event, self._on)

    def _on(self, *args: Any) -> None:
        self.seen.append(args)
        if not self._fut.done() and self._pred(*args):
            self._fut.set_result(args)

    async def wait(self, what: str, timeout: float = EVENT_TIMEOUT_S) -> tuple:
        try:
            return await asyncio.wait_for(asyncio.shield(self._fut), timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"no '{self.event}' event for {what} within {timeout:.0f} s (saw {len(self.seen)}: {self.seen[:5]!r})")


def remote_track_waiter(room: rtc.Room, identity: str, kind: int) -> Waiter:
    return Waiter(
        room,
        "track_subscribed",
        lambda track, pub, participant: participant.identity == identity and track.kind == kind,
    )


class SinePublisher:
    """Publishes a 48 kHz mono sine as a microphone track, pushed in real-time 10 ms frames."""

    def __init__(self, room: rtc.Room, freq: float = TONE_HZ, amplitude: float = 0.5):
        self.room = room
        self.freq = freq
        self.amplitude = amplitude
        self.frames_pushed = 0
        self._task: Optional[asyncio.Task] = None

    async def start(self) -> rtc.LocalTrackPublication:
        self.source = rtc.AudioSource(SR, 1)
        self.track = rtc.LocalAudioTrack.create_audio_track("sine", self.source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        try:
            pub = await asyncio.wait_for(self.room.local_participant.publish_track(self.track, opts), EVENT_TIMEOUT_S)
        except asyncio.TimeoutError:
            pytest.fail(f"publish_track(audio) not acknowledged within {EVENT_TIMEOUT_S:.0f} s")
        self._task = asyncio.create_task(self._pump())
        return pub

    async def _pump(self) -> None:
        n = 0
        next_at = time.monotonic()
        while True:
            scale = self.amplitude * 32767.0  # read each frame: a test may silence the tone
            idx = np.arange(n, n + FRAME_SAMPLES)
            samples = (scale * np.sin(2.0 * math.pi * self.freq * idx / SR)).astype(np.int16)
            n += FRAME_SAMPLES
            await self.source.capture_frame(rtc.AudioFrame(samples.tobytes(), SR, 1, FRAME_SAMPLES))
            self.frames_pushed += 1
            next_at += FRAME_SAMPLES / SR
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class VideoPublisher:
    """Publishes RGBA frames of a changing pattern (background colour cycles, a bar moves), ~15 fps."""

    def __init__(
        self, room: rtc.Room, width: int = 320, height: int = 240, fps: float = 15.0, simulcast: bool = False
    ):
        self.room, self.width, self.height, self.fps = room, width, height, fps
        self.simulcast = simulcast
        self.frames_pushed = 0
        self._task: Optional[asyncio.Task] = None

    async def start(self) -> rtc.LocalTrackPublication:
        self.source = rtc.VideoSource(self.width, self.height)
        self.track = rtc.LocalVideoTrack.create_video_track("pattern", self.source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, simulcast=self.simulcast)
        try:
            pub = await asyncio.wait_for(self.room.local_participant.publish_track(self.track, opts), EVENT_TIMEOUT_S)
        except asyncio.TimeoutError:
            pytest.fail(f"publish_track(video) not acknowledged within {EVENT_TIMEOUT_S:.0f} s")
        self._task = asyncio.create_task(self._pump())
        return pub

    def frame(self, i: int) -> rtc.VideoFrame:
        img = np.zeros((self.height, self.width, 4), dtype=np.uint8)
        # Red ramps over ~2 s, so a receiver can tell live frames from a frozen one.
        img[:, :, 0] = (i * 8) % 256
        img[:, :, 1] = 64
        img[:, :, 2] = 255 - (i * 8) % 256
        img[:, :, 3] = 255
        x = (i * 7) % self.width
        img[:, x : x + 16, :3] = 255
        return rtc.VideoFrame(self.width, self.height, rtc.VideoBufferType.RGBA, img.tobytes())

    async def _pump(self) -> None:
        i = 0
        period = 1.0 / self.fps
        next_at = time.monotonic()
        while True:
            self.source.capture_frame(self.frame(i), timestamp_us=int(time.monotonic() * 1e6))
            self.frames_pushed += 1
            i += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64))))) if len(x) else 0.0


async def collect_audio(track: rtc.Track, seconds: float = 2.0, timeout: float = MEDIA_TIMEOUT_S) -> np.ndarray:
    """`seconds` of received audio (48 kHz mono) from the first non-silent frame on."""
    stream = rtc.AudioStream(track, sample_rate=SR, num_channels=1)
    need = int(SR * seconds)
    chunks: list[np.ndarray] = []
    stats = {"frames": 0, "silent": 0, "got": 0}

    async def pull() -> None:
        async for ev in stream:
            f = ev.frame
            assert f.sample_rate == SR and f.num_channels == 1, f"unexpected frame format {f!r}"
            s = np.frombuffer(f.data, dtype=np.int16).copy()
            stats["frames"] += 1
            if not chunks and rms(s) < 200:  # wait for sound: the first frames are silence
                stats["silent"] += 1
                continue
            chunks.append(s)
            stats["got"] += len(s)
            if stats["got"] >= need:
                return

    try:
        await asyncio.wait_for(pull(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(
            f"received {stats['got'] / SR:.2f} s of sound of the {seconds} s wanted within {timeout:.0f} s "
            f"({stats['frames']} frames, {stats['silent']} silent before the first sound)"
        )
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stream.aclose(), 5.0)
    return np.concatenate(chunks)[:need]


def dominant_frequency(samples: np.ndarray, sr: int = SR) -> tuple[float, float]:
    """(frequency of the strongest FFT bin, share of the spectrum's energy within ±10 Hz of it)."""
    x = samples.astype(np.float64)
    x -= x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    spec[freqs < 20] = 0.0
    k = int(np.argmax(spec))
    near = np.abs(freqs - freqs[k]) <= 10.0
    return float(freqs[k]), float(spec[near].sum() / max(spec.sum(), 1e-12))


def assert_tone(samples: np.ndarray, freq: float = TONE_HZ) -> None:
    f, share = dominant_frequency(samples)
    level = rms(samples)
    log.info("received tone: %.1f Hz, %.0f%% of energy near it, rms %.0f", f, share * 100, level)
    assert abs(f - freq) <= 5.0, f"dominant frequency {f:.1f} Hz, want {freq:.0f} ± 5 Hz (rms {level:.0f})"
    assert share > 0.3, f"tone is not clean: only {share:.0%} of the energy near {f:.1f} Hz"
    # 0.5 full scale sine has rms ≈ 11585; allow for codec and level processing, not for near-silence.
    assert level > 1000, f"received tone too quiet: rms {level:.0f}"


def lk_token(
    identity: str,
    room: str,
    *,
    secret: str = API_SECRET,
    key: str = API_KEY,
    exp_offset: float = 3600,
    nbf_offset: float = -10,
) -> str:
    """A LiveKit-format access token minted here (not by the CLI), for good and bad cases.
    Verifiers allow some clock skew (60 s in LiveKit's and jsonwebtoken's defaults), so an
    "expired" token here is an hour past its expiry."""
    now = int(time.time())
    claims = {
        "iss": key,
        "sub": identity,
        "jti": identity,
        "name": identity,
        "nbf": now + int(nbf_offset),
        "exp": now + int(exp_offset),
        "video": {"roomJoin": True, "room": room},
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def http_get(server: Server, path: str, headers: Optional[dict] = None, **params: str) -> tuple[int, str]:
    url = f"{server.http_url}{path}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.get(url, params=params, headers=headers or {}) as resp:
            return resp.status, await resp.text()


def raw_upgrade(
    server: Server, path_and_query: str, extra_headers: Optional[dict] = None, timeout: float = 10.0
) -> tuple[int, dict, bytes]:
    """A WebSocket upgrade request sent by hand, so a refusal's status and body can be read."""
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (extra_headers or {}).items())
    req = (
        f"GET {path_and_query} HTTP/1.1\r\n"
        f"Host: {server.host}:{server.http_port}\r\n"
        "Connection: Upgrade\r\n"
        "Upgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        f"{extra}"
        "\r\n"
    ).encode()
    with socket.create_connection((server.host, server.http_port), timeout=timeout) as sock:
        sock.sendall(req)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines and lines[0].startswith("HTTP/1."), f"no HTTP response: {buf[:200]!r}"
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        if status != 101:
            want = int(headers.get("content-length", "-1"))
            while (want < 0 or len(body) < want) and time.monotonic() < deadline:
                try:
                    chunk = sock.recv(4096)
                except socket.timeout:
                    break
                if not chunk:
                    break
                body += chunk
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = _dechunk(body)
        return status, headers, body


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


# --------------------------------------------------------------------------------------------
# tests


def test_health_endpoints(server: Server):
    async def main():
        for path in ("/healthz", "/readyz"):
            status, _ = await http_get(server, path)
            assert status == 200, f"GET {path} -> {status}"

    run(main())


def test_audio_tone_reaches_subscriber(server: Server):
    """A publishes a 440 Hz sine; B (auto-subscribe) receives it; the dominant frequency is 440 ± 5 Hz."""

    async def main():
        room = room_name()
        async with Rooms(server) as rooms:
            a = await rooms.connect(room, "alice")
            b = await rooms.connect(room, "bob")
            got_audio = remote_track_waiter(b, "alice", rtc.TrackKind.KIND_AUDIO)
            sine = SinePublisher(a)
            pub = await sine.start()
            assert pub.sid, "publication has no sid"
            track, rpub, participant = await got_audio.wait("alice's audio at bob")
            assert rpub.sid == pub.sid, f"bob subscribed to {rpub.sid}, alice published {pub.sid}"
            assert rpub.source == rtc.TrackSource.SOURCE_MICROPHONE
            samples = await collect_audio(track, seconds=2.0)
            await sine.stop()
            assert_tone(samples)

    run(main())


def test_video_reaches_subscriber_at_publisher_resolution(server: Server):
    """B publishes 320x240 video at ~15 fps (no simulcast); A decodes live frames of that size."""
    W, H = 320, 240

    async def main():
        room = room_name()
        async with Rooms(server) as rooms:
            a = await rooms.connect(room, "alice")
            b = await rooms.connect(room, "bob")
            got_video = remote_track_waiter(a, "bob", rtc.TrackKind.KIND_VIDEO)
            video = VideoPublisher(b, W, H)
            pub = await video.start()
            track, rpub, participant = await got_video.wait("bob's video at alice")
            assert rpub.sid == pub.sid
            stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)
            sizes: dict[tuple[int, int], int] = {}
            reds: list[int] = []
            full = 0

            async def pull():
                nonlocal full
                async for ev in stream:
                    f = ev.frame
                    sizes[(f.width, f.height)] = sizes.get((f.width, f.height), 0) + 1
                    if (f.width, f.height) == (W, H):
                        full += 1
                        px = np.frombuffer(f.data, dtype=np.uint8).reshape(H, W, 4)
                        # Mean red of the left column strip, away from the moving bar most of the time.
                        reds.append(int(px[:, :8, 0].mean()))
                    if full >= 15:
                        return

            try:
                await asyncio.wait_for(pull(), MEDIA_TIMEOUT_S)
            except asyncio.TimeoutError:
                pytest.fail(
                    f"alice got {full} frames at {W}x{H} within {MEDIA_TIMEOUT_S:.0f} s "
                    f"(sizes seen: {sizes}; bob pushed {video.frames_pushed})"
                )
            finally:
                await video.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stream.aclose(), 5.0)
            log.info("video sizes received: %s; red samples %s", sizes, reds)
            assert len({r // 16 for r in reds}) >= 3, f"decoded frames do not change (red means {reds})"

    run(main())


def test_simulcast_layer_follows_subscriber_choice(server: Server):
    """B publishes 1280x720 with simulcast; A first gets the top layer, then asks for the low
    layer (UpdateTrackSettings) and receives smaller frames, then the top one again."""
    W, H = 1280, 720

    async def main():
        room = room_name()
        async with Rooms(server) as rooms:
            a = await rooms.connect(room, "alice")
            b = await rooms.connect(room, "bob")
            got_video = remote_track_waiter(a, "bob", rtc.TrackKind.KIND_VIDEO)
            video = VideoPublisher(b, W, H, fps=10.0, simulcast=True)
            await video.start()
            track, rpub, _ = await got_video.wait("bob's video at alice")
            stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGBA)
            widths: list[int] = []

            async def until(pred, what: str) -> None:
                async def pull():
                    async for ev in stream:
                        widths.append(ev.frame.width)
                        if pred(ev.frame.width):
                            return

                try:
                    await asyncio.wait_for(pull(), MEDIA_TIMEOUT_S)
                except asyncio.TimeoutError:
                    pytest.fail(f"{what}: widths seen {sorted(set(widths))} (last {widths[-5:]})")

            try:
                await until(lambda w: w == W, "top layer first")
                rpub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_LOW)
                await until(lambda w: 0 < w < W // 2, "low layer after set_video_quality(LOW)")
                rpub.set_video_quality(rtc.VideoQuality.VIDEO_QUALITY_HIGH)
                await until(lambda w: w == W, "top layer again after set_video_quality(HIGH)")
            finally:
                await video.stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stream.aclose(), 5.0)
            log.info("simulcast widths received: %s", sorted(set(widths)))

    run(main())


def test_data_packets_reach_other_participant(server: Server):
    """A's lossy and reliable data packets reach B with their payload, kind, topic and sender."""

    async def main():
        room = room_name()
        async with Rooms(server) as rooms:
            a = await rooms.connect(room, "alice")
            b = await rooms.connect(room, "bob")
            received: asyncio.Queue[rtc.DataPacket] = asyncio.Queue()
            b.on("data_received", received.put_nowait)

            async def next_packet(timeout: float) -> Optional[rtc.DataPacket]:
                try:
                    return await asyncio.wait_for(received.get(), timeout)
                except asyncio.TimeoutError:
                    return None

            # Lossy first, resent until one arrives: may be lost, and also shows the path is up.
            lossy = b"lossy-" + secrets.token_hex(8).encode()
            got: Optional[rtc.DataPacket] = None
            for _ in range(20):
                await a.local_participant.publish_data(lossy, reliable=False, topic="lossy-topic")
                got = await next_packet(0.5)
                if got is not None:
                    break
            assert got is not None, "no lossy data packet from alice reached bob in 20 tries"
            assert got.data == lossy, f"lossy payload {got.data[:40]!r}, want {lossy!r}"
            assert got.kind == rtc.DataPacketKind.KIND_LOSSY, f"kind {got.kind}"
            assert got.participant is not None and got.participant.identity == "alice", got.participant
            assert got.topic == "lossy-topic", got.topic
            await asyncio.sleep(0.5)
            while not received.empty():  # resent copies of the lossy packet
                extra = received.get_nowait()
                assert extra.data == lossy, f"unexpected packet {extra.data[:40]!r}"

            # Reliable: each must arrive exactly once, in order, with the sender's identity.
            payloads = [
                ("chat", b"reliable-" + secrets.token_hex(8).encode()),
                ("", "h\u00e9llo \u2603".encode()),
                ("blob", os.urandom(4000)),
            ]
            for topic, payload in payloads:
                await a.local_participant.publish_data(payload, reliable=True, topic=topic)
            for i, (topic, payload) in enumerate(payloads):
                p = await next_packet(10.0)
                assert p is not None, f"reliable packet {i} ({len(payload)} bytes) did not reach bob"
                assert p.data == payload, f"reliable packet {i}: payload {p.data[:40]!r}, want {payload[:40]!r}"
                assert p.kind == rtc.DataPacketKind.KIND_RELIABLE, f"packet {i}: kind {p.kind}"
                assert p.participant is not None and p.participant.identity == "alice", p.participant
                assert (p.topic or "") == topic, f"packet {i}: topic {p.topic!r}, want {topic!r}"
            extra = await next_packet(1.0)
            assert extra is None, f"duplicate or unexpected packet at bob: {extra.data[:40]!r}"

    run(main())


def test_participants_speakers_and_disconnect(server: Server):
    """B sees A on join, A sees B arrive, B is told A speaks while A plays the sine, and B is told
    when A leaves."""

    async def main():
        room = room_name()
        async with Rooms(server) as rooms:
            a = await rooms.connect(room, "alice")
            bob_arrives = Waiter(a, "participant_connected", lambda p: p.identity == "bob")
            b_obj = rtc.Room()
            speaking = Waiter(b_obj, "active_speakers_changed", lambda sp: any(p.identity == "alice" for p in sp))
            alice_leaves = Waiter(b_obj, "participant_disconnected", lambda p: p.identity == "alice")
            b = await rooms.connect(room, "bob", room_obj=b_obj)

            assert "alice" in b.remote_participants, f"bob's remote participants: {list(b.remote_participants)}"
            assert b.remote_participants["alice"].name == "Alice"
            (p,) = await bob_arrives.wait("bob joining, seen by alice")
            assert p.name == "Bob"
            assert "bob" in a.remote_participants

            sine = SinePublisher(a)
            await sine.start()
            (speakers,) = await speaking.wait("alice speaking (audio level extension)")
            log.info("active speakers at bob: %s", [s.identity for s in speakers])
            # Silence (still sent, with its audio level) must end alice's turn as a speaker.
            quiet = Waiter(b, "active_speakers_changed", lambda sp: all(p.identity != "alice" for p in sp))
            sine.amplitude = 0.0
            (speakers,) = await quiet.wait("alice no longer speaking after she went silent")
            log.info("active speakers at bob after silence: %s", [s.identity for s in speakers])
            await sine.stop()

            await asyncio.wait_for(a.disconnect(), 10.0)
            (gone,) = await alice_leaves.wait("alice leaving")
            assert gone.identity == "alice"
            assert "alice" not in b.remote_participants

    run(main())


def test_validate_endpoint_checks_tokens(server: Server):
    """/rtc/validate: 401 for expired, wrongly signed or garbage tokens; 200 for good ones."""

    async def main():
        room = room_name()
        cases = {
            "expired": (lk_token("eve", room, exp_offset=-3600, nbf_offset=-7200), 401),
            "wrong secret": (lk_token("eve", room, secret="not-the-secret"), 401),
            "unknown api key": (lk_token("eve", room, key="otherkey"), 401),
            "dev default key": (lk_token("eve", room, key="devkey", secret="secret"), 401),
            "not a jwt": ("definitely-not-a-jwt", 401),
            "cli token": (server.token(room, "carol"), 200),
            "pyjwt token": (lk_token("dave", room), 200),
        }
        results = {}
        for what, (token, _) in cases.items():
            results[what] = await http_get(server, "/rtc/validate", access_token=token)
        wrong = {w: r for w, r in results.items() if r[0] != cases[w][1]}
        assert not wrong, "unexpected /rtc/validate statuses: " + "; ".join(
            f"{w}: {s} (want {cases[w][1]}) {b[:80]!r}" for w, (s, b) in wrong.items()
        )
        status, _ = await http_get(server, "/rtc/validate")
        assert status == 401, f"/rtc/validate without a token -> {status}"
        # The SDK (livekit 1.2) sends the token as `Authorization: Bearer`, not as a query parameter.
        for what, (token, want) in (("bearer cli token", (server.token(room, "carol"), 200)),
                                    ("bearer wrong secret", (lk_token("eve", room, secret="not-the-secret"), 401))):
            status, body = await http_get(server, "/rtc/validate", headers={"Authorization": f"Bearer {token}"})
            assert status == want, f"/rtc/validate, {what}: {status} (want {want}) {body[:80]!r}"

    run(main())


def test_signal_upgrade_with_bad_token_is_refused(server: Server):
    """A WebSocket upgrade to /rtc with a bad token gets HTTP 401 and a readable reason."""
    room = room_name()
    wrong = lk_token("eve", room, secret="not-the-secret")
    expired = lk_token("eve", room, exp_offset=-3600, nbf_offset=-7200)
    # (case, token, sent as Authorization header, a word the reason must contain)
    for what, token, header, cause in (
        ("wrong secret", wrong, False, "signature"),
        ("expired", expired, False, "expired"),
        ("no token", None, False, "token"),
        ("wrong secret, Authorization header", wrong, True, "signature"),
    ):
        params = {"protocol": "15", "sdk": "python"}
        if token is not None and not header:
            params["access_token"] = token
        extra = {"Authorization": f"Bearer {token}"} if header else None
        status, headers, body = raw_upgrade(server, f"/rtc?{urllib.parse.urlencode(params)}", extra)
        assert status == 401, f"{what}: upgrade answered {status} {body[:200]!r}"
        text = body.decode("utf-8", errors="replace").strip()
        readable = all(ch.isprintable() or ch.isspace() for ch in text)
        assert text and readable, f"{what}: 401 without a readable reason: {body[:200]!r}"
        assert cause in text.lower(), f"{what}: the reason does not name the cause ({cause!r}): {text!r}"
        log.info("%s: 401 %s", what, text)


def test_sdk_connect_with_bad_token_fails(server: Server):
    """The SDK's connect raises for a wrongly signed token; the same room accepts a good one."""

    async def main():
        room = room_name()
        bad = rtc.Room()
        t0 = time.monotonic()
        with pytest.raises(rtc.ConnectError) as err:
            await asyncio.wait_for(
                bad.connect(server.ws_url, lk_token("eve", room, secret="not-the-secret"), rtc.RoomOptions(connect_timeout=5.0)),
                40.0,
            )
        log.info("bad token refused after %.1f s: %s", time.monotonic() - t0, err.value.message)
        assert not bad.isconnected()
        async with Rooms(server) as rooms:
            await rooms.connect(room, "carol")

    run(main())


def test_malformed_signal_frame_closes_only_that_connection(server: Server):
    """A malformed protobuf frame on a valid /rtc WebSocket closes that connection; SDK clients in
    another room keep receiving audio, and the server stays healthy."""

    async def main():
        media_room, bad_room = room_name(), room_name()
        async with Rooms(server) as rooms:
            c = await rooms.connect(media_room, "carol")
            d = await rooms.connect(media_room, "dave")
            got_audio = remote_track_waiter(d, "carol", rtc.TrackKind.KIND_AUDIO)
            sine = SinePublisher(c)
            await sine.start()
            track, _, _ = await got_audio.wait("carol's audio at dave")
            assert_tone(await collect_audio(track, seconds=1.0))

            q = {"access_token": server.token(bad_room, "mallory"), "protocol": "15", "sdk": "python", "auto_subscribe": "1"}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
                async with s.ws_connect(f"{server.ws_url}/rtc", params=q, heartbeat=None) as ws:
                    first = await ws.receive(timeout=10.0)
                    assert first.type == aiohttp.WSMsgType.BINARY, f"first signal message: {first.type} {str(first.data)[:100]}"
                    # SignalResponse.join is field 1 (length-delimited): tag byte 0x0a.
                    assert first.data[:1] == b"\x0a", f"first message is not a JoinResponse: {first.data[:16]!r}"
                    # Field 1 claims 100 bytes, 3 follow; then an invalid wire type. No decoder accepts it.
                    await ws.send_bytes(b"\x0a\x64abc\x0f\xff\xff")
                    closed_by = None
                    deadline = time.monotonic() + 10.0
                    while time.monotonic() < deadline:
                        try:
                            msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                        except asyncio.TimeoutError:
                            break
                        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            closed_by = (msg.type, msg.data, msg.extra)
                            break
                    assert closed_by is not None, "server did not close the WebSocket after a malformed frame within 10 s"
                    log.info("malformed frame: connection closed with %s", closed_by)

            # The other room is unaffected: audio still flows and is still the tone.
            assert_tone(await collect_audio(track, seconds=2.0))
            assert c.isconnected() and d.isconnected()
            await sine.stop()
            status, _ = await http_get(server, "/healthz")
            assert status == 200, f"/healthz after the malformed frame: {status}"

    run(main())


def test_sigterm_with_clients_in_a_call_is_graceful():
    """SIGTERM while two SDK clients are in a call (on a second server instance): the server exits 0
    within 10 s without a panic, and both clients are told they were disconnected."""
    srv = launch(http_port=7890, udp_port=7892, log_path=ARTIFACTS / "jonction-pytest-shutdown.log")

    async def main():
        async with Rooms(srv) as rooms:
            room = room_name()
            a = await rooms.connect(room, "alice")
            b = await rooms.connect(room, "bob")
            got_audio = remote_track_waiter(b, "alice", rtc.TrackKind.KIND_AUDIO)
            sine = SinePublisher(a)
            await sine.start()
            track, _, _ = await got_audio.wait("alice's audio at bob")
            assert_tone(await collect_audio(track, seconds=1.0))

            a_gone = Waiter(a, "disconnected")
            b_gone = Waiter(b, "disconnected")
            t0 = time.monotonic()
            exited_in_time, status = await asyncio.to_thread(stop, srv)
            log.info("server stopped %.1f s after SIGTERM with status %s", time.monotonic() - t0, status)
            assert_clean_exit(srv, exited_in_time, status)
            (reason_a,) = await a_gone.wait("alice told the server went away", 10.0)
            (reason_b,) = await b_gone.wait("bob told the server went away", 10.0)
            want = rtc.DisconnectReason.SERVER_SHUTDOWN
            assert (reason_a, reason_b) == (want, want), (
                f"disconnect reasons alice {rtc.DisconnectReason.Name(reason_a)}, "
                f"bob {rtc.DisconnectReason.Name(reason_b)}; want SERVER_SHUTDOWN"
            )
            await sine.stop()

    try:
        run(main())
    finally:
        stop(srv)
