"""baresip (Debian) calls into a room through the gateway with each of PCMU, PCMA, G.722 and
Opus: the room hears baresip's file, baresip records the tone the room client publishes, and
DTMF goes both ways (RFC 4733 from baresip → SipDTMF in the room; SipDTMF from the room →
RFC 4733 to baresip)."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from conftest import Server
from test_rooms import Rooms, SinePublisher, collect_audio, run
from test_sip import dominant_hz

BARESIP = shutil.which("baresip")
CLIENT_IP = "10.200.0.2"

# codec name for baresip, PCM rate and channels its aufile source must match, tone it sends
CODECS = [
    ("PCMU/8000/1", 8000, 1, 330.0),
    ("PCMA/8000/1", 8000, 1, 350.0),
    ("G722/16000/1", 16000, 1, 370.0),
    ("opus/48000/2", 48000, 2, 390.0),
]


def write_tone(path: Path, rate: int, channels: int, freq: float, seconds: float) -> None:
    t = np.arange(int(rate * seconds)) / rate
    x = (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)
    if channels == 2:
        x = np.repeat(x[:, None], 2, axis=1).reshape(-1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())


def baresip_config(
    d: Path,
    sip_port: int,
    ctrl_port: int,
    wav: Path,
    codec: str,
    mediaenc: str | None = None,
    video: tuple[int, int] | None = None,
) -> None:
    """baresip's config and account; `mediaenc` (e.g. `srtp-mand`) loads the srtp module;
    `video` (width, height) adds H.264 (avcodec, libx264) from the fakevideo pattern."""
    (d / "rec").mkdir(parents=True, exist_ok=True)
    mods = ["g711", "g722", "opus", "alsa", "aufile", "sndfile", "cons"] + (["srtp"] if mediaenc else [])
    if video:
        mods += ["avcodec", "fakevideo", "swscale"]
    lines = [
        "poll_method epoll",
        f"sip_listen {CLIENT_IP}:{sip_port}",
        f"net_interface {CLIENT_IP}",
        "audio_player alsa,null",
        "audio_alert alsa,null",
        f"audio_source aufile,{wav}",
        "ausrc_format s16",
        "auplay_format s16",
        f"rtp_ports {sip_port * 2}-{sip_port * 2 + 99}",
        "rtcp_mux no",
        "module_path /usr/lib/baresip/modules",
        *[f"module {m}.so" for m in mods],
        "module_tmp uuid.so",
        "module_tmp account.so",
        "module_app contact.so",
        "module_app menu.so",
        "module_app ctrl_tcp.so",
        f"ctrl_tcp_listen {CLIENT_IP}:{ctrl_port}",
        f"cons_listen {CLIENT_IP}:{ctrl_port + 1}",
        f"snd_path {d / 'rec'}",
    ]
    if video:
        lines += [
            "video_source fakevideo,nil",
            f"video_size {video[0]}x{video[1]}",
            "video_bitrate 500000",
            "video_fps 25.00",
            "avcodec_h264enc libx264",
            "avcodec_h264dec h264",
        ]
    (d / "config").write_text("\n".join(lines) + "\n")
    (d / "accounts").write_text(
        f"<sip:caller@{CLIENT_IP}:{sip_port}>;regint=0;answermode=manual;audio_codecs={codec}"
        + (f";mediaenc={mediaenc}" if mediaenc else "")
        + (";video_codecs=H264" if video else "")
        + "\n"
    )
    (d / "contacts").write_text("")


class Events:
    """baresip's ctrl_tcp event stream (JSON netstrings), read in a thread."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((CLIENT_IP, port), timeout=5)
        self.sock.settimeout(0.2)
        self.buf = b""
        self.events: list[dict] = []

    def poll(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        self.buf += chunk
        while b":" in self.buf:
            n, rest = self.buf.split(b":", 1)
            if not n.isdigit() or len(rest) < int(n) + 1:
                return
            msg, self.buf = rest[: int(n)], rest[int(n) + 1 :]
            try:
                self.events.append(json.loads(msg))
            except ValueError:
                pass

    def command(self, command: str, params: str = "") -> None:
        """Sends a command on the same connection (baresip sends events to its last client)."""
        body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def types(self) -> list[str]:
        return [e.get("type", "") for e in self.events]

    def close(self) -> None:
        self.sock.close()


def key(port: int, digits: str) -> None:
    """Presses keys through baresip's cons module (UDP); \\x04 releases the last key."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in digits:
            s.sendto(d.encode(), (CLIENT_IP, port))
            time.sleep(0.25)
            s.sendto(b"\x04", (CLIENT_IP, port))
            time.sleep(0.25)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        rate, ch = w.getframerate(), w.getnchannels()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    if ch == 2:
        x = x.reshape(-1, 2)[:, 0]
    return x, rate


@pytest.mark.skipif(BARESIP is None, reason="baresip is not installed")
@pytest.mark.parametrize("codec,rate,channels,tone", CODECS, ids=[c[0].split("/")[0] for c in CODECS])
def test_baresip_call_audio_and_dtmf_both_ways(server: Server, codec, rate, channels, tone):
    room = f"bs-{secrets.token_hex(3)}"
    idx = [c[0] for c in CODECS].index(codec)
    sip_port, ctrl_port = 5090 + 2 * idx, 4444 + 10 * idx

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            wav = d / "src.wav"
            write_tone(wav, rate, channels, tone, 30)
            baresip_config(d, sip_port, ctrl_port, wav, codec)
            proc = subprocess.Popen(
                [BARESIP, "-f", str(d)], stdin=subprocess.DEVNULL, stdout=(d / "out.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            events = None
            try:
                async with Rooms(server) as rooms:
                    listener = await rooms.connect(room, "listener")
                    got: list = []
                    dtmf_in: list[str] = []
                    listener.on("track_subscribed", lambda t, pub, p: got.append(t))
                    listener.on("sip_dtmf_received", lambda ev: dtmf_in.append(ev.digit))
                    sine = SinePublisher(listener, freq=440.0)
                    await sine.start()
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        try:
                            events = Events(ctrl_port)
                            break
                        except OSError:
                            await asyncio.sleep(0.2)
                    assert events is not None, "baresip ctrl_tcp did not come up"
                    host, port = server.sip_addr
                    events.command("dial", f"sip:{room}@{host}:{port}")
                    deadline = time.monotonic() + 15
                    while "CALL_ESTABLISHED" not in events.types() and time.monotonic() < deadline:
                        await asyncio.to_thread(events.poll)
                    assert "CALL_ESTABLISHED" in events.types(), f"call not established: {events.types()}"
                    deadline = time.monotonic() + 10
                    while not got and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                    assert got, "baresip's track did not reach the room"
                    heard = dominant_hz(await collect_audio(got[0], seconds=1.0, timeout=10), 48000)
                    assert abs(heard - tone) <= 5, f"room heard {heard:.1f} Hz, baresip sent {tone} Hz"

                    # DTMF: baresip → room, then room → baresip.
                    await asyncio.to_thread(key, ctrl_port + 1, "5")
                    deadline = time.monotonic() + 5
                    while "5" not in dtmf_in and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                    assert "5" in dtmf_in, f"room got DTMF {dtmf_in}"
                    await listener.local_participant.publish_dtmf(code=7, digit="7")
                    deadline = time.monotonic() + 5
                    seen = False
                    while not seen and time.monotonic() < deadline:
                        await asyncio.to_thread(events.poll)
                        seen = any(
                            e.get("type") == "CALL_DTMF_START" and e.get("param") == "7" for e in events.events
                        )
                    assert seen, f"baresip did not get DTMF 7: {[e for e in events.events if 'DTMF' in e.get('type', '')]}"
                    await asyncio.sleep(2)  # more of the room's tone in baresip's recording
                    events.command("hangup")
                    await sine.stop()
                    await asyncio.sleep(1)
            finally:
                if events:
                    events.close()
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            recs = sorted((d / "rec").glob("*-dec.wav"))
            assert recs, f"baresip recorded nothing: {list((d / 'rec').iterdir())}"
            x, r = read_wav(recs[-1])
            loud = x[np.abs(x) > 0]
            assert len(loud) > r, f"baresip's recording is silent ({len(loud)} non-zero samples)"
            # The last 2 s hold the room's 440 Hz tone (DTMF events are not in the decoded audio).
            f = dominant_hz(x[-2 * r :], r)
            assert abs(f - 440) <= 8, f"baresip heard {f:.1f} Hz, the room sent 440 Hz"

    run(main())
