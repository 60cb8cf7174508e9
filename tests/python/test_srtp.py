"""SDES-SRTP with baresip (srtp module, SRTP mandatory) on a gateway whose dialplan requires
SRTP on `sec-*` rooms (`srtp = "required"` on the route; `[sip] srtp` stays `optional`): the
room hears baresip's tone, a capture of the call's RTP shows no plain audio, the call record
names the suite; a plain-RTP caller is refused with 488 on that route and accepted on another."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ARTIFACTS, Capture, launch, stop
from test_baresip import BARESIP, CLIENT_IP, Events, baresip_config, write_tone
from test_rooms import Rooms, collect_audio, run
from test_sip import dominant_hz

TSHARK = shutil.which("tshark")
TONE = 330.0
DIALPLAN = """
[[rule]]
name = "secure-rooms"
match.called = 'sec-(?P<r>[a-z0-9-]+)'
action = { type = "room", room = "sec-{r}", srtp = "required" }

[[rule]]
name = "rooms"
match.called = '[a-z0-9-]+'
action = { type = "room", room = "{called}" }
"""


def ulaw_to_linear(b: np.ndarray) -> np.ndarray:
    """G.711 µ-law bytes to 16-bit samples."""
    u = ~b.astype(np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def tone_share(x: np.ndarray, rate: int, freq: float) -> float:
    """The share of the signal's power within ±20 Hz of `freq`."""
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spec[(f > freq - 20) & (f < freq + 20)].sum() / max(spec.sum(), 1e-9))


def start_baresip(d: Path, sip_port: int, ctrl_port: int, mediaenc: str | None) -> subprocess.Popen:
    wav = d / "src.wav"
    write_tone(wav, 8000, 1, TONE, 30)
    baresip_config(d, sip_port, ctrl_port, wav, "PCMU/8000/1", mediaenc)
    return subprocess.Popen(
        [BARESIP, "-f", str(d)], stdin=subprocess.DEVNULL, stdout=(d / "out.log").open("wb"), stderr=subprocess.STDOUT
    )


async def connect_events(ctrl_port: int) -> Events:
    deadline = time.monotonic() + 10
    while True:
        try:
            return Events(ctrl_port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.skipif(BARESIP is None or TSHARK is None, reason="baresip or tshark missing")
def test_srtp_required_with_baresip():
    plans = tempfile.TemporaryDirectory()
    (Path(plans.name) / "10-secure.toml").write_text(DIALPLAN)
    srv = launch(
        http_port=7922,
        udp_port=7924,
        log_path=ARTIFACTS / "jonction-pytest-srtp.log",
        extra_env={"JONCTION_DIALPLAN__DIR": plans.name},
    )
    room = f"sec-{secrets.token_hex(3)}"
    sip_port, ctrl_port = 5120, 4544
    pcap = ARTIFACTS / "srtp-call.pcap"

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            # Media only: RTP between baresip's port range and the gateway (not SIP, not WebRTC).
            # baresip's media: its RTP port range (the source address of local traffic is the
            # kernel's choice, so ports identify it).
            lo, hi = sip_port * 2, sip_port * 2 + 99
            cap = Capture(pcap, f"udp src portrange {lo}-{hi}", ARTIFACTS / "srtp-tshark.log")
            proc = start_baresip(d, sip_port, ctrl_port, "srtp-mand")
            events = None
            try:
                async with Rooms(srv) as rooms:
                    listener = await rooms.connect(room, "listener")
                    got: list = []
                    listener.on("track_subscribed", lambda t, pub, p: got.append(t))
                    events = await connect_events(ctrl_port)
                    host, port = srv.sip_addr
                    events.command("dial", f"sip:{room}@{host}:{port}")
                    deadline = time.monotonic() + 15
                    while "CALL_ESTABLISHED" not in events.types() and time.monotonic() < deadline:
                        await asyncio.to_thread(events.poll)
                    assert "CALL_ESTABLISHED" in events.types(), f"not established: {events.types()}"
                    deadline = time.monotonic() + 10
                    while not got and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                    assert got, "baresip's track did not reach the room"
                    heard = dominant_hz(await collect_audio(got[0], seconds=3.0, timeout=10), 48000)
                    assert abs(heard - TONE) <= 5, f"room heard {heard:.1f} Hz over SRTP"
                    events.command("hangup")
                    await asyncio.sleep(1)
            finally:
                if events:
                    events.close()
                proc.terminate()
                proc.wait(10)
                cap.stop()
        # What crossed the wire: RTP-shaped UDP from baresip whose payloads, read as µ-law, do
        # not carry the tone (they would, at > 50 % of the power, if they were plain RTP).
        out = subprocess.run(
            [TSHARK, "-r", str(pcap), "-T", "fields", "-e", "udp.srcport", "-e", "udp.payload"],
            capture_output=True, text=True, timeout=60,
        ).stdout
        payloads = [
            bytes.fromhex(p.replace(":", ""))
            for src, p in (l.split("\t") for l in out.splitlines() if "\t" in l)
            if sip_port * 2 <= int(src or 0) <= sip_port * 2 + 99 and p
        ]
        rtp = [p for p in payloads if len(p) > 12 and p[0] >> 6 == 2 and p[1] & 0x7F == 0]
        assert len(rtp) > 100, f"{len(rtp)} PCMU-typed packets captured of {len(payloads)}"
        samples = ulaw_to_linear(np.frombuffer(b"".join(p[12:172] for p in rtp), dtype=np.uint8))
        share = tone_share(samples, 8000, TONE)
        assert share < 0.05, f"{share:.2f} of the captured payload power is the {TONE} Hz tone: plain RTP?"
        # A plain-RTP caller to the same gateway: 488.
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            proc = start_baresip(d, sip_port + 2, ctrl_port + 10, None)
            events = None
            try:
                events = await connect_events(ctrl_port + 10)
                host, port = srv.sip_addr
                events.command("dial", f"sip:{room}@{host}:{port}")
                deadline = time.monotonic() + 10
                while "CALL_CLOSED" not in events.types() and time.monotonic() < deadline:
                    await asyncio.to_thread(events.poll)
                closed = [e for e in events.events if e.get("type") == "CALL_CLOSED"]
                assert closed and "488" in json.dumps(closed), f"plain RTP caller: {events.events[-5:]}"
                # The same caller to a room without the route's requirement: answered.
                events.command("dial", f"sip:plain-{room[4:]}@{host}:{port}")
                deadline = time.monotonic() + 15
                while "CALL_ESTABLISHED" not in events.types() and time.monotonic() < deadline:
                    await asyncio.to_thread(events.poll)
                assert "CALL_ESTABLISHED" in events.types(), f"plain call elsewhere: {events.events[-5:]}"
                events.command("hangup")
                await asyncio.sleep(1)
            finally:
                if events:
                    events.close()
                proc.terminate()
                proc.wait(10)

    try:
        run(main())
        recs = [json.loads(l) for l in srv.call_records.read_text().splitlines() if l.strip()]
        srtp = [r for r in recs if r["room"] == room and r.get("srtp")]
        assert srtp and srtp[0]["srtp"].startswith(("AES_CM_128_HMAC_SHA1", "AEAD_AES_128_GCM")), recs
        assert srtp[0]["frames_to_room"] > 50 and srtp[0]["srtp_rejected"] == 0, srtp
    finally:
        stop(srv)
        plans.cleanup()
