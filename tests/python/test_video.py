"""H.264 video through the gateway, both ways, with real peers.

- baresip (avcodec/libx264, fakevideo source, packetization-mode 0) calls a room: a livekit
  client receives the gateway's video track and decodes frames at baresip's 640x360.
- Two livekit clients publish H.264 (one red, one blue) and take turns speaking: the RTP the
  gateway sends baresip, captured with tshark and depacketized here, decodes with ffmpeg without
  a single error across at least two active-speaker switches, and the pictures change colour
  with the speaker. Before anyone publishes, the "no video" picture is sent.
- Keyframe requests reach the device as RTCP PLI/FIR (or SIP INFO).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from conftest import ARTIFACTS, Capture, launch, stop
from test_baresip import BARESIP, baresip_config
from test_rooms import Rooms, SinePublisher, VideoPublisher, run
from test_srtp import connect_events

TSHARK = shutil.which("tshark")
FFMPEG = shutil.which("ffmpeg")
W, H = 640, 360


def baresip_video_config(d: Path, sip_port: int, ctrl_port: int) -> None:
    """baresip with H.264 video from its fakevideo pattern and silent PCMU audio (the room's
    active speaker must be one of the publishers, never the device)."""
    wav = d / "silence.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(8000 * 2 * 60))
    baresip_config(d, sip_port, ctrl_port, wav, "PCMU/8000/1", video=(W, H))


def depacketize(payloads: list[bytes]) -> bytes:
    """RFC 6184 single NAL / STAP-A / FU-A payloads (in order) → an Annex-B stream."""
    out = bytearray()
    fu = bytearray()
    for p in payloads:
        if not p:
            continue
        t = p[0] & 0x1F
        if 1 <= t <= 23:
            out += b"\x00\x00\x00\x01" + p
        elif t == 24:
            i = 1
            while i + 2 <= len(p):
                n = int.from_bytes(p[i : i + 2], "big")
                out += b"\x00\x00\x00\x01" + p[i + 2 : i + 2 + n]
                i += 2 + n
        elif t == 28 and len(p) > 2:
            start, end = p[1] & 0x80, p[1] & 0x40
            if start:
                fu = bytearray([(p[0] & 0xE0) | (p[1] & 0x1F)])
            fu += p[2:]
            if end:
                out += b"\x00\x00\x00\x01" + fu
                fu = bytearray()
    return bytes(out)


def captured_rtp(pcap: Path, dst_lo: int, dst_hi: int) -> list[tuple[float, bytes]]:
    """(time, UDP payload) of the datagrams sent to baresip's port range."""
    out = subprocess.run(
        [TSHARK, "-r", str(pcap), "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.dstport", "-e", "udp.payload"],
        capture_output=True, text=True, timeout=120,
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[2]:
            continue
        if dst_lo <= int(parts[1] or 0) <= dst_hi:
            rows.append((float(parts[0]), bytes.fromhex(parts[2].replace(":", ""))))
    return rows


def decode_colours(stream: Path) -> tuple[list[tuple[int, int, int]], str]:
    """ffmpeg decodes the stream (errors are fatal with -xerror); mean RGB of each picture."""
    r = subprocess.run(
        [FFMPEG, "-hide_banner", "-v", "error", "-xerror", "-err_detect", "explode", "-i", str(stream),
         "-vf", "scale=32:18", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=120,
    )
    errors = r.stderr.decode(errors="replace").strip()
    frames = np.frombuffer(r.stdout, dtype=np.uint8)
    n = len(frames) // (32 * 18 * 3)
    px = frames[: n * 32 * 18 * 3].reshape(n, 18, 32, 3)
    return [tuple(int(c) for c in f.reshape(-1, 3).mean(axis=0)) for f in px], errors


def colour_of(rgb: tuple[int, int, int]) -> str:
    r, g, b = rgb
    if r > 150 and b < 100:
        return "red"
    if b > 150 and r < 100:
        return "blue"
    return "other"


class ColourPublisher(VideoPublisher):
    """A plain-colour H.264 camera track (red or blue), so a picture tells whose it is."""

    def __init__(self, room: rtc.Room, rgb: tuple[int, int, int]):
        super().__init__(room, 320, 240, fps=15.0)
        self.rgb = rgb

    async def start(self) -> rtc.LocalTrackPublication:
        self.source = rtc.VideoSource(self.width, self.height)
        self.track = rtc.LocalVideoTrack.create_video_track("camera", self.source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA, video_codec=rtc.VideoCodec.H264)
        pub = await asyncio.wait_for(self.room.local_participant.publish_track(self.track, opts), 10)
        self._task = asyncio.create_task(self._pump())
        return pub

    def frame(self, i: int) -> rtc.VideoFrame:
        img = np.zeros((self.height, self.width, 4), dtype=np.uint8)
        img[:, :, :3] = self.rgb
        img[:, :, 3] = 255
        # A small moving square keeps the encoder producing real pictures.
        x = (i * 5) % (self.width - 16)
        img[:16, x : x + 16, :3] = 128
        return rtc.VideoFrame(self.width, self.height, rtc.VideoBufferType.RGBA, img.tobytes())


@pytest.mark.skipif(BARESIP is None or TSHARK is None or FFMPEG is None, reason="baresip, tshark or ffmpeg missing")
def test_h264_video_both_ways_with_baresip_and_speaker_switches():
    srv = launch(http_port=7926, udp_port=7928, log_path=ARTIFACTS / "jonction-pytest-video.log")
    room = f"video-{secrets.token_hex(3)}"
    sip_port, ctrl_port = 5130, 4564
    pcap = ARTIFACTS / "video-call.pcap"
    lo, hi = sip_port * 2, sip_port * 2 + 99
    timeline: list[tuple[float, str]] = []

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            cap = Capture(pcap, f"udp dst portrange {lo}-{hi}", ARTIFACTS / "video-tshark.log")
            baresip_video_config(d, sip_port, ctrl_port)
            proc = subprocess.Popen(
                [BARESIP, "-f", str(d)], stdin=subprocess.DEVNULL,
                stdout=(ARTIFACTS / "video-baresip.log").open("wb"), stderr=subprocess.STDOUT,
            )
            events = None
            try:
                async with Rooms(srv) as rooms:
                    watcher = await rooms.connect(room, "watcher")
                    got: list = []
                    watcher.on(
                        "track_subscribed",
                        lambda t, pub, p: got.append(t) if t.kind == rtc.TrackKind.KIND_VIDEO else None,
                    )
                    events = await connect_events(ctrl_port)
                    host, port = srv.sip_addr
                    events.command("dial", f"sip:{room}@{host}:{port}")
                    deadline = time.monotonic() + 15
                    while "CALL_ESTABLISHED" not in events.types() and time.monotonic() < deadline:
                        await asyncio.to_thread(events.poll)
                    assert "CALL_ESTABLISHED" in events.types(), f"not established: {events.types()}"
                    timeline.append((time.time(), "no-video"))

                    # Device → room: the watcher decodes the device's pictures at its size.
                    deadline = time.monotonic() + 15
                    while not got and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                    assert got, "baresip's video did not reach the room"
                    stream = rtc.VideoStream(got[0], format=rtc.VideoBufferType.RGBA)
                    sizes: dict = {}

                    async def pull():
                        async for ev in stream:
                            key = (ev.frame.width, ev.frame.height)
                            sizes[key] = sizes.get(key, 0) + 1
                            if sizes.get((W, H), 0) >= 10:
                                return

                    try:
                        await asyncio.wait_for(pull(), 20)
                    except asyncio.TimeoutError:
                        pytest.fail(f"the room got {sizes} frames of baresip's video, wanted 10 at {W}x{H}")
                    finally:
                        await stream.aclose()

                    # Room → device: two H.264 publishers taking turns as the active speaker.
                    alice = await rooms.connect(room, "alice")
                    bob = await rooms.connect(room, "bob")
                    va, vb = ColourPublisher(alice, (230, 30, 30)), ColourPublisher(bob, (30, 30, 230))
                    sa, sb = SinePublisher(alice, 440.0, 0.5), SinePublisher(bob, 550.0, 0.0)
                    for p in (va, vb, sa, sb):
                        await p.start()
                    for who, speak, quiet in (("red", sa, sb), ("blue", sb, sa), ("red", sa, sb)):
                        speak.amplitude, quiet.amplitude = 0.5, 0.0
                        timeline.append((time.time(), who))
                        await asyncio.sleep(6)
                    for p in (va, vb, sa, sb):
                        await p.stop()
                    events.command("hangup")
                    await asyncio.sleep(1)
            finally:
                if events:
                    events.close()
                proc.terminate()
                proc.wait(10)
                cap.stop()

    try:
        run(main(), budget=110)
        rows = captured_rtp(pcap, lo, hi)
        # The video stream: RTP (version 2) with a dynamic payload type other than the audio's
        # telephone-event; RTCP (PT 200-206) is checked separately.
        rtp = [(t, p) for t, p in rows if len(p) > 12 and p[0] >> 6 == 2 and 96 <= (p[1] & 0x7F) <= 127 and not 200 <= p[1] <= 206]
        pts = {}
        for _, p in rtp:
            pts[p[1] & 0x7F] = pts.get(p[1] & 0x7F, 0) + 1
        video_pt = max(pts, key=pts.get) if pts else None
        video = [(t, p) for t, p in rtp if p[1] & 0x7F == video_pt]
        assert len(video) > 100, f"{len(video)} video packets captured to baresip (payload types {pts})"
        # One stream: one SSRC, sequence numbers one by one (loopback loses nothing).
        assert len({p[8:12] for _, p in video}) == 1, "the device saw more than one SSRC"
        seqs = [int.from_bytes(p[2:4], "big") for _, p in video]
        steps = {(b - a) & 0xFFFF for a, b in zip(seqs, seqs[1:])}
        assert steps == {1}, f"sequence numbers jump: steps {sorted(steps)[:10]}"
        stream = ARTIFACTS / "video-to-device.h264"
        stream.write_bytes(depacketize([p[12:] for _, p in video]))
        colours, errors = decode_colours(stream)
        assert not errors, f"ffmpeg found errors in the stream sent to the device: {errors[:500]}"
        seen = [colour_of(c) for c in colours]
        runs = [c for i, c in enumerate(seen) if c != "other" and (i == 0 or seen[i - 1] != c)]
        assert len(colours) > 50, f"only {len(colours)} pictures decoded"
        switches = sum(1 for a, b in zip(runs, runs[1:]) if a != b)
        assert switches >= 2, f"colour runs {runs} (timeline {timeline}): fewer than two speaker switches"
        assert seen[0] == "other", f"first picture {colours[0]}: not the 'no video' picture"
        # Keyframe requests to the device (PLI/FIR in RTCP to its RTCP port, or INFO).
        rtcp_fb = [p for _, p in rows if len(p) >= 12 and p[0] >> 6 == 2 and p[1] in (206,)]
        recs = [json.loads(l) for l in srv.call_records.read_text().splitlines() if l.strip()]
        mine = [r for r in recs if r["room"] == room]
        assert mine and mine[0].get("video"), recs
        v = mine[0]["video"]
        assert v["frames_to_room"] > 50 and v["switches"] >= 2, v
        assert v["keyframe_requests_to_device"] >= 1 and rtcp_fb, (v, len(rtcp_fb))
    finally:
        stop(srv)
