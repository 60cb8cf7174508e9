"""The gateway pointed at an external LiveKit server (`[livekit] url`) over wss://: a second
jonction instance plays the LiveKit server (its embedded room server), behind a TLS-terminating
proxy whose certificate chains to a CA made by the test and trusted through SSL_CERT_FILE. sipp
calls the gateway; a livekit client on the room server hears the caller."""

from __future__ import annotations

import asyncio
import secrets
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from livekit import rtc

from conftest import ARTIFACTS, HOST, Server, launch, stop
from test_call_lifecycle import last_record
from test_rooms import Rooms, collect_audio, run
from test_sip import SIPP, dominant_hz, sipp_call, tone_wav

TLS_PORT = 7943


def make_ca(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for HOST; (ca.pem, server.pem, server.key)."""
    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2", "-subj", "/CN=jonction test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"), "-subj", f"/CN={HOST}")
    (d / "ext").write_text(f"subjectAltName=IP:{HOST}\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
         "-CAcreateserial", "-out", str(d / "server.pem"), "-days", "2", "-extfile", str(d / "ext"))
    return d / "ca.pem", d / "server.pem", d / "server.key"


class TlsProxy:
    """TLS on HOST:TLS_PORT → plain TCP to the room server's HTTP port, in a thread."""

    def __init__(self, cert: Path, key: Path, upstream: tuple[str, int]):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.upstream = upstream
        self.handshakes = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        ur, uw = await asyncio.open_connection(*self.upstream)
        self.writers += [w, uw]
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))

    def cut(self) -> int:
        """Closes every proxied connection (both sides); how many were open."""
        async def close_all() -> int:
            n = sum(1 for w in self.writers if not w.is_closing())
            for w in self.writers:
                w.transport.abort()
            self.writers.clear()
            return n

        return asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(5)

    def __enter__(self) -> "TlsProxy":
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, HOST, TLS_PORT, ssl=self.ctx), self.loop
        )
        self.server = fut.result(10)
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def launch_gateway(ca: Path) -> Server:
    """A gateway instance (no embedded rooms) whose room legs go to the proxy over wss://,
    trusting the CA bundle `ca`."""
    return launch(
        http_port=7904,
        udp_port=7906,
        log_path=ARTIFACTS / "jonction-pytest-gateway.log",
        extra_env={"JONCTION_LIVEKIT__URL": f"wss://{HOST}:{TLS_PORT}", "SSL_CERT_FILE": str(ca)},
    )


@pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) is not installed")
def test_gateway_joins_an_external_livekit_over_wss():
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ca, cert, key = make_ca(d)
        rooms_srv = launch(http_port=7900, udp_port=7902, log_path=ARTIFACTS / "jonction-pytest-livekit.log")
        try:
            with TlsProxy(cert, key, (HOST, 7900)) as proxy:
                gw = launch_gateway(ca)
                try:
                    room = f"ext-{secrets.token_hex(3)}"
                    heard_hz = run_call(rooms_srv, gw, room, d)
                    assert abs(heard_hz - 440) <= 5, f"dominant frequency {heard_hz:.1f} Hz"
                    assert proxy.handshakes >= 1
                finally:
                    stop(gw)
                log = (ARTIFACTS / "jonction-pytest-gateway.log").read_text(errors="replace")
                assert "embedded room server off" in log
        finally:
            stop(rooms_srv)


@pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) is not installed")
def test_untrusted_certificate_is_refused_and_the_call_rejected():
    """Without the CA in SSL_CERT_FILE the TLS handshake fails: the INVITE gets a 480, not a hang."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _, cert, key = make_ca(d)
        rooms_srv = launch(http_port=7900, udp_port=7902, log_path=ARTIFACTS / "jonction-pytest-livekit.log")
        try:
            with TlsProxy(cert, key, (HOST, 7900)):
                gw = launch_gateway(Path("/dev/null"))
                try:
                    from test_sip import Uac

                    uac = Uac(gw, f"untrusted-{secrets.token_hex(3)}")
                    try:
                        uac.request("INVITE", uac.sdp("sendrecv"))
                        rs = uac.responses(timeout=20)
                        assert rs and rs[-1][0] == 480, [c for c, _ in rs]
                    finally:
                        uac.close()
                finally:
                    stop(gw)
                log = (ARTIFACTS / "jonction-pytest-gateway.log").read_text(errors="replace")
                assert "certificate" in log.lower(), "the refusal should name the certificate problem"
        finally:
            stop(rooms_srv)


@pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) is not installed")
def test_room_leg_rejoins_after_its_signalling_is_cut():
    """Mid-call, the proxy drops the gateway's signalling connection: the room leg rejoins (same
    identity, caller's track published again), the room hears the caller again, the SIP call is
    untouched and its record counts one rejoin."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ca, cert, key = make_ca(d)
        rooms_srv = launch(http_port=7900, udp_port=7902, log_path=ARTIFACTS / "jonction-pytest-livekit.log")
        try:
            with TlsProxy(cert, key, (HOST, 7900)) as proxy:
                gw = launch_gateway(ca)
                room = f"cut-{secrets.token_hex(3)}"
                try:

                    async def main() -> None:
                        wav = tone_wav(d / "tone.wav", 440, 14)
                        async with Rooms(rooms_srv) as rooms:
                            listener = await rooms.connect(room, "listener")
                            got: list = []
                            listener.on("track_subscribed", lambda t, pub, p: got.append((t, p)))
                            sipp = sipp_call(gw, room, wav, 14.0, d)
                            try:
                                hz, who = await nth_track_hz(got, 0)
                                assert abs(hz - 440) <= 5, f"heard {hz:.1f} Hz"
                                assert proxy.cut() >= 2, "no proxied connection to cut"
                                hz, who2 = await nth_track_hz(got, 1)
                                assert abs(hz - 440) <= 5, f"heard {hz:.1f} Hz after the rejoin"
                                assert who2.identity == who.identity
                            finally:
                                rc = await asyncio.to_thread(sipp.wait, 60)
                            assert rc == 0, "sipp saw the call fail"

                    run(main())
                finally:
                    stop(gw)
                rec = last_record(gw, room)
                assert rec["room_rejoins"] == 1 and rec["end_cause"] == "caller-bye", rec
        finally:
            stop(rooms_srv)


async def nth_track_hz(got: list, n: int) -> tuple[float, rtc.RemoteParticipant]:
    """Waits for the n-th (0-based) track of the SIP caller; its dominant frequency and owner."""
    deadline = time.monotonic() + 15
    while len(got) <= n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(got) > n, f"track {n} of the SIP caller did not reach the room server"
    track, participant = got[n]
    heard = await collect_audio(track, seconds=1.0, timeout=10)
    return dominant_hz(heard, 48000), participant


def run_call(rooms_srv: Server, gw: Server, room: str, d: Path) -> float:
    async def main() -> float:
        wav = tone_wav(d / "tone.wav", 440, 6)
        async with Rooms(rooms_srv) as rooms:
            listener = await rooms.connect(room, "listener")
            got: list = []
            listener.on("track_subscribed", lambda t, pub, p: got.append((t, p)))
            sipp = sipp_call(gw, room, wav, 5.0, d)
            try:
                hz, participant = await nth_track_hz(got, 0)
                assert participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
                return hz
            finally:
                await asyncio.to_thread(sipp.wait, 40)

    return run(main())
