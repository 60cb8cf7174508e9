"""H.323 dial-in against the running gateway: our H.323 test caller (`h323-caller`, caller role,
its own call flow on jonction's H.225.0/H.245 library) calls a room in the four set-up modes
(fast start; slow start with H.245 tunnelled; slow start with a separate H.245 connection; fast
start refused, then H.245), and a livekit Python client in the room exchanges audio and DTMF
with it. Every PDU the gateway sends is captured and must decode in tshark (no malformed
packet) and in pycrate. Bad input (malformed PER, broken TPKT, a 64 KB TPKT, a PDU never
finished) releases that call with a cause and closes its socket; other calls go on."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

from livekit import api, rtc

from conftest import API_KEY, API_SECRET, ARTIFACTS, REPO, Capture, Server
from test_rooms import Rooms, SinePublisher, collect_audio, run
from test_sip import dominant_hz

CALLER = Path(os.environ.get("H323_CALLER_BIN", REPO / "target" / "debug" / "h323-caller"))
TSHARK = shutil.which("tshark")
CLIENT_IP = "10.200.0.2"
SETUP_FIXTURE = REPO / "tests" / "data" / "h323" / "generated-setup-faststart.hex"
RELEASE_COMPLETE = 0x5A
CAUSE_IE = 0x08

try:
    from pycrate_asn1dir import H225, H245

    UUIE = H225.H323_MESSAGES.H323_UserInformation
    MSC = H245.MULTIMEDIA_SYSTEM_CONTROL.MultimediaSystemControlMessage
    OLC = H245.MULTIMEDIA_SYSTEM_CONTROL.OpenLogicalChannel
except ImportError:  # pragma: no cover - the test venv has it (requirements.txt)
    UUIE = MSC = OLC = None


def start_caller(server: Server, room: str, mode: str, *extra: str) -> subprocess.Popen:
    host, port = server.h323_addr
    if not CALLER.is_file():
        pytest.fail(f"h323-caller not found at {CALLER} (cargo build)")
    return subprocess.Popen(
        [str(CALLER), "--gateway", f"{host}:{port}", "--called", room, "--mode", mode,
         "--local-ip", CLIENT_IP, *extra],
        stdout=subprocess.PIPE, stderr=(ARTIFACTS / f"h323-caller-{mode}.log").open("wb"),
    )


def report_of(proc: subprocess.Popen, timeout: float) -> dict:
    out, _ = proc.communicate(timeout=timeout)
    lines = [l for l in out.decode(errors="replace").splitlines() if l.strip().startswith("{")]
    assert lines, f"h323-caller printed no report (exit {proc.returncode})"
    return json.loads(lines[-1])


async def track_from(caller: subprocess.Popen, got: list, what: str, timeout: float = 15.0) -> None:
    """Waits until `got` (filled by a track_subscribed handler) holds the caller's track, while
    the caller runs; fails with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not got and time.monotonic() < deadline and caller.poll() is None:
        await asyncio.sleep(0.05)
    assert got, what


def records_for(server: Server, room: str, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.call_records.exists():
            recs = [json.loads(l) for l in server.call_records.read_text().splitlines() if l.strip()]
            recs = [r for r in recs if r.get("room") == room]
            if recs:
                return recs
        time.sleep(0.1)
    return []


# --- what the gateway sent, decoded ---------------------------------------------------------


def tcp_payloads(pcap: Path, src: str, dst: str) -> dict[tuple[int, int], bytes]:
    """The bytes `src` sent to `dst` on each TCP connection of the capture, by (stream, source
    port)."""
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", f"ip.src=={src} && ip.dst=={dst} && tcp.len>0", "-T", "fields",
         "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.payload"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    streams: dict[tuple[int, int], bytes] = {}
    for line in out.splitlines():
        stream, sport, _dport, payload = line.split("\t")
        key = (int(stream), int(sport))
        streams[key] = streams.get(key, b"") + bytes.fromhex(payload.replace(":", ""))
    return streams


def tpkts(data: bytes) -> list[bytes]:
    pdus, i = [], 0
    while i + 4 <= len(data):
        assert data[i] == 3, f"not TPKT at offset {i}: {data[i:i + 8].hex()}"
        n = struct.unpack(">H", data[i + 2 : i + 4])[0]
        assert n >= 4 and i + n <= len(data), f"bad TPKT length {n}"
        if n > 4:
            pdus.append(data[i + 4 : i + n])
        i += n
    assert i == len(data), "trailing bytes after the last TPKT"
    return pdus


def q931_user_user(pdu: bytes) -> tuple[int, Optional[bytes], Optional[int]]:
    """(message type, the User-User IE's contents, the Cause IE's Q.850 value) of a Q.931 PDU."""
    assert pdu[0] == 0x08, "not Q.931"
    crl = pdu[1] & 0x0F
    i = 2 + crl
    mt = pdu[i]
    i += 1
    uu, cause = None, None
    while i < len(pdu):
        ie = pdu[i]
        if ie & 0x80:
            i += 1
        elif ie == 0x7E:
            n = struct.unpack(">H", pdu[i + 1 : i + 3])[0]
            uu = pdu[i + 3 : i + 3 + n]
            i += 3 + n
        else:
            n = pdu[i + 1]
            if ie == CAUSE_IE and n >= 2:
                cause = pdu[i + 3] & 0x7F
            i += 2 + n
    return mt, uu, cause


def check_with_pycrate(streams: dict[tuple[int, int], bytes], h225_port: int) -> dict[str, int]:
    """Decodes every PDU with pycrate: H.225.0 UUIEs (with their tunnelled H.245 and fast-start
    OLCs) on the call-signalling port, H.245 on the others. Returns counts by kind."""
    assert UUIE is not None, "pycrate is not installed"
    counts: dict[str, int] = {}

    def count(k: str) -> None:
        counts[k] = counts.get(k, 0) + 1

    for (_stream, sport), data in streams.items():
        for pdu in tpkts(data):
            if sport == h225_port:
                mt, uu, _ = q931_user_user(pdu)
                assert uu is not None and uu[0] == 0x05, f"Q.931 0x{mt:02x} without an H.225.0 User-User IE"
                UUIE.from_aper(uu[1:])
                v = UUIE.get_val()["h323-uu-pdu"]
                body = v["h323-message-body"]
                count(body[0])
                for h in v.get("h245Control", []):
                    MSC.from_aper(h)
                    count("h245:" + MSC.get_val()[1][0])
                if isinstance(body[1], dict):
                    for o in body[1].get("fastStart", []):
                        OLC.from_aper(o)
                        count("fastStart-olc")
            else:
                MSC.from_aper(pdu)
                count("h245:" + MSC.get_val()[1][0])
    return counts


def tshark_malformed(pcap: Path, h245_ports: list[int]) -> list[str]:
    """Frames tshark marks malformed (or with errors) when it decodes H.225.0 and H.245."""
    args = ["tshark", "-r", str(pcap), "-o", "q931.desegment_h323_messages:TRUE"]
    for p in h245_ports:
        args += ["-d", f"tcp.port=={p},tpkt"]
    args += ["-Y", "_ws.malformed || _ws.expert.severity == error", "-T", "fields", "-e", "frame.number",
             "-e", "_ws.col.Info"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [l for l in r.stdout.splitlines() if l.strip()]


def tshark_protocols(pcap: Path, h245_ports: list[int]) -> str:
    args = ["tshark", "-r", str(pcap)]
    for p in h245_ports:
        args += ["-d", f"tcp.port=={p},tpkt"]
    args += ["-T", "fields", "-e", "frame.protocols"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout


# --- calls in the four modes ----------------------------------------------------------------

MODES = {
    # mode: the fast-start outcome the caller must report
    "faststart": "accepted",
    "tunnel": "none",
    "separate": "none",
    "refused": "refused",
}


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("mode", list(MODES))
def test_h323_call_audio_and_dtmf_both_ways(server: Server, mode: str):
    """The caller sends a 1 kHz tone and the digits 1 2 3 #; the room client publishes 440 Hz
    and the digit 7. The room hears 1 kHz from a participant of kind SIP and gets the digits
    as SipDTMF; the caller hears 440 Hz and gets 7 as UserInputIndication. The caller hangs up
    (EndSessionCommand, ReleaseComplete): the record says caller-bye."""
    room = f"h323-{mode}-{secrets.token_hex(3)}"
    pcap = ARTIFACTS / f"h323-{mode}.pcap"
    cap = Capture(pcap, f"tcp and host {CLIENT_IP}", ARTIFACTS / f"h323-{mode}-tshark.log")
    report: dict = {}

    async def main():
        nonlocal report
        async with Rooms(server) as rooms:
            listener = await rooms.connect(room, "listener")
            got: list = []
            dtmf_in: list[str] = []
            listener.on("track_subscribed", lambda t, pub, p: got.append((t, p)))
            listener.on("sip_dtmf_received", lambda ev: dtmf_in.append(ev.digit))
            sine = SinePublisher(listener, freq=440.0)
            await sine.start()
            caller = start_caller(
                server, room, mode, "--codec", "pcmu", "--tone-hz", "1000", "--seconds", "9",
                "--digits", "123#", "--digits-at", "3",
            )
            try:
                await track_from(caller, got, "no track from the H.323 caller reached the room")
                track, participant = got[0]
                heard = dominant_hz(await collect_audio(track, seconds=1.5, timeout=10), 48000)
                assert abs(heard - 1000) <= 8, f"room heard {heard:.1f} Hz, the caller sent 1000 Hz"
                deadline = time.monotonic() + 8
                while len(dtmf_in) < 4 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                assert "".join(dtmf_in) == "123#", f"room got DTMF {dtmf_in}"
                await listener.local_participant.publish_dtmf(code=7, digit="7")
            finally:
                report = await asyncio.to_thread(report_of, caller, 40)
                await sine.stop()

    try:
        run(main())
    finally:
        cap.stop()
    assert report.get("connected"), report
    assert report.get("fast_start") == MODES[mode], report
    assert report.get("rtp_received", 0) > 150, report
    assert report.get("rx_tone_hz") is not None and abs(report["rx_tone_hz"] - 440) <= 10, report
    assert "7" in report.get("digits_received", ""), report
    assert report.get("released_by") == "local", report
    recs = records_for(server, room)
    assert len(recs) == 1, recs
    r = recs[0]
    assert r["end_cause"] == "caller-bye" and r["codec"].upper() == "PCMU", r
    assert r["protocol"] == "h323", r
    assert r["digits_from_device"] == 4 and r["digits_to_device"] == 1, r

    # What the gateway sent decodes everywhere.
    h225_port = server.h323_addr[1]
    streams = tcp_payloads(pcap, server.host, CLIENT_IP)
    h245_ports = sorted({sport for (_s, sport) in streams if sport != h225_port})
    if mode == "separate":
        assert h245_ports, "no separate H.245 connection from the gateway"
    else:
        assert not h245_ports, f"unexpected connections from ports {h245_ports}"
    counts = check_with_pycrate(streams, h225_port)
    for kind in ["callProceeding", "alerting", "connect", "releaseComplete"]:
        assert counts.get(kind, 0) >= 1, counts
    assert counts.get("h245:terminalCapabilitySet", 0) == 1, counts
    assert counts.get("h245:endSessionCommand", 0) <= 1, counts
    if mode == "faststart":
        assert counts.get("fastStart-olc", 0) == 2, counts
    else:
        assert counts.get("h245:openLogicalChannel", 0) == 1, counts
        assert counts.get("h245:openLogicalChannelAck", 0) == 1, counts
    bad = tshark_malformed(pcap, h245_ports)
    assert not bad, "tshark finds malformed packets:\n" + "\n".join(bad[:20])
    protos = tshark_protocols(pcap, h245_ports)
    assert "h225" in protos and "h245" in protos, "tshark did not dissect H.225.0 and H.245"


def test_h323_call_ended_by_the_room(server: Server):
    """The room is deleted during the call: the gateway ends the H.245 session and sends
    ReleaseComplete (normal clearing); the record says room-closed."""
    room = f"h323-end-{secrets.token_hex(3)}"

    async def main():
        async with Rooms(server) as rooms:
            listener = await rooms.connect(room, "listener")
            got: list = []
            listener.on("track_subscribed", lambda t, pub, p: got.append(t))
            caller = start_caller(server, room, "tunnel", "--codec", "g722", "--wait-release", "20")
            try:
                await track_from(caller, got, "no track from the H.323 caller reached the room")
                await asyncio.sleep(1)
                async with api.LiveKitAPI(server.http_url, API_KEY, API_SECRET) as lk:
                    await lk.room.delete_room(api.DeleteRoomRequest(room=room))
            finally:
                return await asyncio.to_thread(report_of, caller, 40)

    report = run(main())
    assert report.get("connected") and report.get("codec", "").upper() == "G722", report
    assert report.get("released_by") == "peer" and report.get("cause") == 16, report
    assert report["h245"].get("session_ended_by_peer"), report
    recs = records_for(server, room)
    assert len(recs) == 1 and recs[0]["end_cause"] == "room-closed", recs


# --- video ----------------------------------------------------------------------------------

VIDEO = REPO / "tests" / "data" / "video" / "a_640x360.h264"


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_h323_video_both_ways(server: Server):
    """H.264 in both TerminalCapabilitySets (H.241 generic capability): the gateway opens its
    video channel to the caller and accepts the caller's. The room decodes the caller's
    640x360 pictures; the caller receives the room publisher's H.264, in the payload type of
    the gateway's channel, with a keyframe after its videoFastUpdatePicture; the gateway asks
    the caller for a keyframe (videoFastUpdatePicture) when the device's video starts, and
    takes the caller's FlowControlCommand. The record counts the video; every PDU decodes in
    tshark and pycrate."""
    from test_video import ColourPublisher

    room = f"h323-video-{secrets.token_hex(3)}"
    pcap = ARTIFACTS / "h323-video.pcap"
    cap = Capture(pcap, f"tcp and host {CLIENT_IP}", ARTIFACTS / "h323-video-tshark.log")
    report: dict = {}
    sizes: dict = {}

    async def main():
        nonlocal report
        async with Rooms(server) as rooms:
            watcher = await rooms.connect(room, "watcher")
            got: list = []
            watcher.on(
                "track_subscribed",
                lambda t, pub, p: got.append(t) if t.kind == rtc.TrackKind.KIND_VIDEO else None,
            )
            camera = ColourPublisher(watcher, (230, 30, 30))
            await camera.start()
            caller = start_caller(
                server, room, "tunnel", "--seconds", "10", "--video", str(VIDEO),
                "--fast-update-at", "3", "--video-limit-kbps", "400",
            )
            try:
                await track_from(caller, got, "the H.323 caller's video did not reach the room")
                stream = rtc.VideoStream(got[0], format=rtc.VideoBufferType.RGBA)

                async def pull():
                    async for ev in stream:
                        key = (ev.frame.width, ev.frame.height)
                        sizes[key] = sizes.get(key, 0) + 1
                        if sizes.get((640, 360), 0) >= 10:
                            return

                try:
                    await asyncio.wait_for(pull(), 15)
                except asyncio.TimeoutError:
                    pass
                finally:
                    await stream.aclose()
            finally:
                report = await asyncio.to_thread(report_of, caller, 40)
                await camera.stop()

    try:
        run(main())
    finally:
        cap.stop()
    assert sizes.get((640, 360), 0) >= 10, f"the room decoded {sizes}, wanted 10 frames at 640x360"
    assert report.get("connected") and report.get("released_by") == "local", report
    v = report["video"]
    assert v["channel_out"] and v["channel_in"], report
    assert v["rtp_sent"] > 100, report
    # The room's camera at 15 pictures/s for several seconds, not just "no video" pictures.
    assert v["pictures_received"] >= 40 and v["keyframes_received"] >= 1, report
    assert v["rx_payload_type"] == v["rx_channel_pt"], report
    assert v["fast_updates_received"] >= 1, "the gateway never asked the caller for a keyframe"
    assert v["fast_updates_sent"] == 1 and v["keyframes_after_fast_update"] >= 1, report
    assert v["limit_sent_kbps"] == 400, report
    recs = records_for(server, room)
    assert len(recs) == 1 and recs[0].get("video"), recs
    rv = recs[0]["video"]
    assert rv["packets_in"] > 100 and rv["frames_to_room"] >= 30 and rv["packets_to_device"] > 30, rv

    streams = tcp_payloads(pcap, server.host, CLIENT_IP)
    counts = check_with_pycrate(streams, server.h323_addr[1])
    assert counts.get("h245:openLogicalChannel", 0) == 2, counts
    assert counts.get("h245:openLogicalChannelAck", 0) == 2, counts
    assert counts.get("h245:miscellaneousCommand", 0) >= 1, counts
    bad = tshark_malformed(pcap, [])
    assert not bad, "tshark finds malformed packets:\n" + "\n".join(bad[:20])


def test_h323_device_refusing_video_keeps_its_audio(server: Server):
    """A room system that declares H.264 but refuses the gateway's video channel (out of video
    resources, say): the call goes on with audio both ways and ends normally."""
    room = f"h323-novideo-{secrets.token_hex(3)}"

    async def main():
        async with Rooms(server) as rooms:
            listener = await rooms.connect(room, "listener")
            sine = SinePublisher(listener, freq=440.0)
            await sine.start()
            caller = start_caller(server, room, "tunnel", "--seconds", "6", "--refuse-video")
            try:
                return await asyncio.to_thread(report_of, caller, 40)
            finally:
                await sine.stop()

    report = run(main())
    assert report.get("connected") and report.get("released_by") == "local", report
    assert report["video"]["refused_channels"] == 1, report
    assert not report.get("errors"), report
    assert report.get("rtp_received", 0) > 100, report
    assert report.get("rx_tone_hz") is not None and abs(report["rx_tone_hz"] - 440) <= 10, report
    recs = records_for(server, room)
    assert len(recs) == 1 and recs[0]["end_cause"] == "caller-bye", recs


# --- bad input ------------------------------------------------------------------------------


def tpkt(payload: bytes) -> bytes:
    return struct.pack(">BBH", 3, 0, len(payload) + 4) + payload


def setup_pdu(called: str) -> bytes:
    """A valid Setup (our fixture: fast start G.711 A-law) dialling `called` (4 digits): in the
    Called Party Number IE and in the dialedDigits alias (aligned PER, 4 bits a digit from the
    alphabet "#*,0123456789": "1234" is 0x45 0x67)."""
    raw = bytes.fromhex(SETUP_FIXTURE.read_text().split()[0])
    assert len(called) == 4 and called.isdigit()
    old_ie = bytes([0x70, 0x05, 0x81]) + b"1234"
    assert raw.count(old_ie) == 1
    raw = raw.replace(old_ie, bytes([0x70, 0x05, 0x81]) + called.encode())
    nibbles = [int(c) + 3 for c in called]
    alias = bytes([nibbles[0] << 4 | nibbles[1], nibbles[2] << 4 | nibbles[3]])
    at = raw.index(bytes([0x45, 0x67]), raw.index(bytes([0x7E])))
    return raw[:at] + alias + raw[at + 2 :]


def read_until_closed(s: socket.socket, timeout: float) -> bytes:
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the gateway did not close the connection within {timeout} s (got {data.hex()[:200]})")


def release_cause(data: bytes) -> Optional[int]:
    for pdu in tpkts(data):
        mt, _uu, cause = q931_user_user(pdu)
        if mt == RELEASE_COMPLETE:
            return cause
    return None


def connect(server: Server) -> socket.socket:
    s = socket.create_connection(server.h323_addr, timeout=5)
    return s


def test_h323_bad_input_releases_only_that_call(server: Server):
    # A good call first, held while the bad ones come (ext-7xxx rooms from the example plan).
    good = connect(server)
    good.sendall(setup_pdu("7101"))
    good.settimeout(10)
    first = good.recv(65536)
    assert first and first[0] == 3, "no answer to a valid Setup"

    # Malformed PER in the User-User IE of a Setup: ReleaseComplete with a cause, closed.
    raw = bytearray(setup_pdu("7102"))
    uu = raw.index(bytes([0x7E]))
    for i in range(uu + 8, min(uu + 60, len(raw))):
        raw[i] = 0xFF
    s = connect(server)
    s.sendall(bytes(raw))
    data = read_until_closed(s, 10)
    s.close()
    assert release_cause(data) in (95, 96, 100, 111), f"malformed PER: {data.hex()}"

    # A TPKT whose length is below its own header: closed (nothing to release yet).
    s = connect(server)
    s.sendall(bytes([3, 0, 0, 2]) + b"\x08\x02\x00\x01\x05")
    read_until_closed(s, 10)
    s.close()

    # A 64 KB TPKT (65535 bytes, above the gateway's PDU limit): closed.
    s = connect(server)
    try:
        s.sendall(bytes([3, 0, 0xFF, 0xFF]) + bytes([0x08]) + os.urandom(65530))
    except (BrokenPipeError, ConnectionResetError):
        pass
    read_until_closed(s, 10)
    s.close()

    # The same inside a call (after a valid Setup): the call is released with cause 95
    # (invalid message) and the socket closed.
    for room, junk in (("7104", bytes([3, 0, 0, 2]) + b"\x08\x02\x00\x01\x05"),
                       ("7105", bytes([3, 0, 0xFF, 0xFF]) + bytes([0x08]) + os.urandom(65530))):
        s = connect(server)
        s.sendall(setup_pdu(room))
        time.sleep(0.5)
        try:
            s.sendall(junk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = read_until_closed(s, 10)
        s.close()
        assert release_cause(data) == 95, f"{len(junk)}-byte broken TPKT in a call: {data[-64:].hex()}"

    # A call whose next PDU never ends: after a valid Setup, half a TPKT, then silence; the
    # call is released (timer expiry, 102) and the socket closed.
    s = connect(server)
    s.sendall(setup_pdu("7103"))
    time.sleep(0.5)
    s.sendall(bytes([3, 0, 0, 200]) + b"\x08\x02\x00")
    data = read_until_closed(s, 20)
    s.close()
    assert release_cause(data) == 102, f"unfinished PDU: {data.hex()}"

    # The good call still goes on: Connect arrives once its room is joined.
    got = first
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        types = [q931_user_user(p)[0] for p in tpkts(got[: complete_prefix(got)])]
        if 0x07 in types:
            break
        try:
            more = good.recv(65536)
        except socket.timeout:
            continue
        assert more, f"the good call was closed: {got.hex()}"
        got += more
    types = [q931_user_user(p)[0] for p in tpkts(got[: complete_prefix(got)])]
    assert 0x07 in types, f"no Connect for the good call: {[hex(t) for t in types]}"
    good.close()


def complete_prefix(data: bytes) -> int:
    """The length of the whole TPKTs at the start of `data`."""
    i = 0
    while i + 4 <= len(data):
        n = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if n < 4 or i + n > len(data):
            break
        i += n
    return i


def test_h323_caller_types_a_pin_and_joins_its_room(server: Server):
    """The example plan's reception number asks for a PIN: the H.323 caller hears the prompt,
    types the PIN as H.245 UserInputIndication and joins the room the PIN opens (board-room):
    its call record names that room. Its video channel, opened during PIN entry, is published
    once the room is joined."""
    caller = start_caller(
        server, "0187654321", "tunnel", "--seconds", "9", "--digits", "1234567890", "--digits-at", "2",
        "--video", str(VIDEO),
    )
    report = report_of(caller, 40)
    assert report.get("connected") and report.get("digits_sent") == "1234567890", report
    assert report.get("rtp_received", 0) > 100, f"no prompt heard: {report}"
    # The SIP PIN tests join board-room from the same number: only this H.323 call counts.
    recs = [r for r in records_for(server, "board-room") if r["protocol"] == "h323"]
    assert len(recs) == 1 and recs[0]["to"] == "0187654321", recs
    assert recs[0]["end_cause"] == "caller-bye" and recs[0]["digits_from_device"] == 10, recs
    assert recs[0]["frames_to_room"] > 50, recs
    video = recs[0].get("video") or {}
    assert video.get("frames_to_room", 0) >= 20, f"the caller's video was not published after the PIN: {recs}"
