"""SDES-SRTP with baresip (srtp module, SRTP mandatory) on a gateway whose dialplan requires
SRTP on `sec-*` rooms (`srtp = "required"` on the route; `[sip] srtp` stays `optional`): the
room hears baresip's tone, a capture of the call's RTP shows no plain audio, the call record
names the suite; a plain-RTP caller is refused with 488 on that route and accepted on another."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ARTIFACTS, HOST, Capture, launch, stop
from test_baresip import BARESIP, CLIENT_IP, Events, baresip_config, write_tone
from test_rooms import Rooms, collect_audio, run
from test_sip import dominant_hz, scrape

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


def start_baresip(
    d: Path, sip_port: int, ctrl_port: int, mediaenc: str | None, extra_config: str = ""
) -> subprocess.Popen:
    """baresip sending the TONE as PCMU, with `extra_config` lines added to its config."""
    wav = d / "src.wav"
    write_tone(wav, 8000, 1, TONE, 30)
    baresip_config(d, sip_port, ctrl_port, wav, "PCMU/8000/1", mediaenc)
    with (d / "config").open("a") as f:
        f.write(extra_config)
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


@contextlib.asynccontextmanager
async def baresip(d: Path, sip_port: int, ctrl_port: int, mediaenc: str | None, extra_config: str = ""):
    """A running baresip (see `start_baresip`) and its event stream; stopped on exit."""
    proc = start_baresip(d, sip_port, ctrl_port, mediaenc, extra_config)
    events = None
    try:
        events = await connect_events(ctrl_port)
        yield events
    finally:
        if events:
            events.close()
        proc.terminate()
        proc.wait(10)


async def dial_and_hear_tone(srv, room: str, events: Events, uri: str, log: Path) -> None:
    """A room listener joins `room`; baresip dials `uri`; the call is established and the
    listener hears baresip's TONE; then baresip hangs up and the call closes."""
    async with Rooms(srv) as rooms:
        listener = await rooms.connect(room, "listener")
        got: list = []
        listener.on("track_subscribed", lambda t, pub, p: got.append(t))
        events.command("dial", uri)
        deadline = time.monotonic() + 15
        while "CALL_ESTABLISHED" not in events.types() and time.monotonic() < deadline:
            await asyncio.to_thread(events.poll)
        assert "CALL_ESTABLISHED" in events.types(), (
            f"{uri} not established: {events.events[-5:]}\n{log.read_text(errors='replace')[-2000:]}"
        )
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert got, "baresip's track did not reach the room"
        heard = dominant_hz(await collect_audio(got[0], seconds=3.0, timeout=10), 48000)
        assert abs(heard - TONE) <= 5, f"room heard {heard:.1f} Hz"
        events.command("hangup")
        deadline = time.monotonic() + 10
        while "CALL_CLOSED" not in events.types() and time.monotonic() < deadline:
            await asyncio.to_thread(events.poll)
        assert "CALL_CLOSED" in events.types(), "the hang-up was not answered"


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
            try:
                async with baresip(d, sip_port, ctrl_port, "srtp-mand") as events:
                    host, port = srv.sip_addr
                    await dial_and_hear_tone(srv, room, events, f"sip:{room}@{host}:{port}", d / "out.log")
            finally:
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
            async with baresip(d, sip_port + 2, ctrl_port + 10, None) as events:
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

    try:
        run(main())
        recs = [json.loads(l) for l in srv.call_records.read_text().splitlines() if l.strip()]
        srtp = [r for r in recs if r["room"] == room and r.get("srtp")]
        assert srtp and srtp[0]["srtp"].startswith(("AES_CM_128_HMAC_SHA1", "AEAD_AES_128_GCM")), recs
        assert srtp[0]["frames_to_room"] > 50 and srtp[0]["srtp_rejected"] == 0, srtp
    finally:
        stop(srv)
        plans.cleanup()


def settles(cond, timeout: float = 5.0) -> bool:
    """Whether `cond()` holds within `timeout` seconds (polled)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def make_certificate(d: Path, ip: str) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for `ip` signed by it (openssl): (ca, chain, key)."""
    ca_key, ca, key, csr, chain = d / "ca.key", d / "ca.pem", d / "server.key", d / "server.csr", d / "server.pem"
    ossl = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=30)  # noqa: E731
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(ca_key),
         "-out", str(ca), "-days", "2", "-subj", "/CN=jonction test CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
         "-out", str(csr), "-subj", f"/CN={ip}")
    ext = d / "san.ext"
    ext.write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
         "-out", str(d / "leaf.pem"), "-days", "2", "-extfile", str(ext))
    chain.write_bytes((d / "leaf.pem").read_bytes() + ca.read_bytes())
    return ca, chain, key


@pytest.mark.skipif(BARESIP is None or TSHARK is None, reason="baresip or tshark missing")
def test_sip_over_tls_with_srtp():
    """SIP over TLS (`[sip] tls_listen`): a client that checks the gateway's certificate against
    its CA gets OPTIONS answered over TLS; baresip calls a `srtp = "required"` room over TLS
    with SDES-SRTP and the room hears its tone; the capture of the signalling shows TLS records
    and neither SIP nor the SDES keys in clear; a plaintext handshake is refused and the
    gateway keeps serving."""
    certs = tempfile.TemporaryDirectory()
    plans = tempfile.TemporaryDirectory()
    (Path(plans.name) / "10-secure.toml").write_text(DIALPLAN)
    ca, chain, key = make_certificate(Path(certs.name), HOST)
    tls_port = 5161
    srv = launch(
        http_port=7926,
        udp_port=7928,
        log_path=ARTIFACTS / "jonction-pytest-tls.log",
        extra_env={
            "JONCTION_DIALPLAN__DIR": plans.name,
            "JONCTION_SIP__TLS_LISTEN": f"{HOST}:{tls_port}",
            "JONCTION_SIP__TLS_CERTIFICATE": str(chain),
            "JONCTION_SIP__TLS_PRIVATE_KEY": str(key),
        },
    )
    room = f"sec-{secrets.token_hex(3)}"
    sip_port, ctrl_port = 5140, 4564
    pcap = ARTIFACTS / "tls-signalling.pcap"
    cap = Capture(pcap, f"tcp port {tls_port}", ARTIFACTS / "tls-tshark.log")

    def options_over_tls() -> bytes:
        ctx = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection((HOST, tls_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=HOST) as s:
                branch = secrets.token_hex(4)
                s.sendall(
                    f"OPTIONS sip:ping@{HOST} SIP/2.0\r\n"
                    f"Via: SIP/2.0/TLS {CLIENT_IP}:5999;branch=z9hG4bK{branch}\r\n"
                    f"Max-Forwards: 70\r\nTo: <sip:ping@{HOST}>\r\nFrom: <sip:t@{CLIENT_IP}>;tag=1\r\n"
                    f"Call-ID: tls-{branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".encode()
                )
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            async with baresip(d, sip_port, ctrl_port, "srtp-mand", f"sip_cafile {ca}\n") as events:
                uri = f"sip:{room}@{HOST}:{tls_port};transport=tls"
                await dial_and_hear_tone(srv, room, events, uri, d / "out.log")

    try:
        reply = options_over_tls()
        assert reply.startswith(b"SIP/2.0 200"), reply[:200]
        assert b"SIP/2.0/TLS" in reply, reply
        # Not TLS at all: the handshake fails (counted), the connection closes, and TLS still works.
        failures = "jonction_sip_tls_handshake_failures_total"
        assert scrape(srv)[failures] == 0
        with socket.create_connection((HOST, tls_port), timeout=5) as s:
            s.sendall(b"OPTIONS sip:ping@x SIP/2.0\r\n\r\n")
            s.settimeout(5)
            try:
                assert not s.recv(100).startswith(b"SIP/2.0"), "plain SIP answered on the TLS port"
            except (ConnectionResetError, socket.timeout):
                pass
        assert settles(lambda: scrape(srv)[failures] == 1), "the failed handshake was not counted"
        run(main())
        assert options_over_tls().startswith(b"SIP/2.0 200")
        # Every TLS connection closed is forgotten: none is left open.
        open_tls = 'jonction_sip_connections{transport="tls"}'
        assert settles(lambda: scrape(srv)[open_tls] == 0), scrape(srv)[open_tls]
        recs = [json.loads(l) for l in srv.call_records.read_text().splitlines() if l.strip()]
        mine = [r for r in recs if r["room"] == room]
        assert mine and (mine[0].get("srtp") or "").startswith(("AES_CM_128_HMAC_SHA1", "AEAD_AES_128_GCM")), recs
        assert mine[0]["frames_to_room"] > 50 and mine[0]["transport"] == "tls", mine
    finally:
        cap.stop()
        stop(srv)
        plans.cleanup()
        certs.cleanup()
    # The signalling on the wire: TLS records (content types 20-23, version 3.x), and no SIP in clear.
    out = subprocess.run(
        [TSHARK, "-r", str(pcap), "-T", "fields", "-e", "tcp.payload"],
        capture_output=True, text=True, timeout=60,
    ).stdout
    payload = b"".join(bytes.fromhex(l.replace(":", "")) for l in out.split() if l)
    assert len(payload) > 2000, f"only {len(payload)} bytes of signalling captured"
    for clear in (b"INVITE sip:", b"SIP/2.0 200", b"a=crypto", b"inline:"):
        assert clear not in payload, f"{clear!r} crossed the wire in clear"
    assert b"\x16\x03" in payload and b"\x17\x03" in payload, "no TLS handshake or application records"
