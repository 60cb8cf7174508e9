"""SIP dial-in against the running gateway, with real peers: sipp (Debian sip-tester) calls in,
a livekit Python SDK client in the room listens; raw UDP for protocol checks (RFC 4475)."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from livekit import rtc

from conftest import ARTIFACTS, REPO, Server
from test_rooms import Rooms, Waiter, collect_audio, dominant_frequency, run

SIPP = shutil.which("sipp")
SCENARIOS = REPO / "tests" / "sip" / "scenarios"
TORTURE = REPO / "tests" / "data" / "sip" / "rfc4475"
CLIENT_IP = "10.200.0.2"


def tone_wav(path: Path, freq: float, seconds: float) -> Path:
    """A mu-law 8 kHz WAV of a sine (what sipp's rtp_stream sends as PCMU)."""
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(path), "synth", str(seconds), "sine", str(freq)],
        check=True,
        timeout=20,
    )
    return path


def sipp_call(
    server: Server, room: str, wav: Path, seconds: float, workdir: Path, scenario: str = "uac_pcmu_stream.xml"
) -> subprocess.Popen:
    scenario = (SCENARIOS / scenario).read_text().replace("@WAV@", str(wav))
    sf = workdir / "uac.xml"
    sf.write_text(scenario)
    host, port = server.sip_addr
    return subprocess.Popen(
        [
            SIPP, f"{host}:{port}", "-sf", str(sf), "-s", room, "-i", CLIENT_IP, "-mi", CLIENT_IP,
            "-m", "1", "-d", str(int(seconds * 1000)), "-nostdin", "-timeout", f"{int(seconds) + 20}s",
            "-trace_err", "-error_file", str(workdir / "sipp_err.log"),
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def dominant_hz(x: np.ndarray, rate: int) -> float:
    """The strongest frequency of a recording."""
    return dominant_frequency(x, rate)[0]


@pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) is not installed")
@pytest.mark.parametrize("scenario", ["uac_pcmu_stream.xml", "uac_delayed_offer.xml"])
def test_pcmu_tone_from_sipp_is_heard_in_the_room(server: Server, scenario: str):
    """sipp calls sip:<room>@gateway and streams a 440 Hz PCMU tone (with the offer in the INVITE,
    or delayed: offer in our 200, answer in the ACK); a livekit client in the room subscribes to
    the SIP participant (kind SIP, sip.* attributes) and hears 440 Hz; the caller's BYE ends the
    call and a call record is written."""
    room = f"call-{secrets.token_hex(3)}"

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            tmpd = Path(tmp)
            wav = tone_wav(tmpd / "tone.wav", 440, 6)
            async with Rooms(server) as rooms:
                listener = await rooms.connect(room, "listener")
                got: list = []
                listener.on("track_subscribed", lambda t, pub, p: got.append((t, p)))
                sipp = sipp_call(server, room, wav, 5.0, tmpd, scenario)
                try:
                    deadline = time.monotonic() + 15
                    while not got and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    assert got, "no track from the SIP caller reached the room"
                    track, participant = got[0]
                    assert participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
                    attrs = dict(participant.attributes)
                    assert attrs.get("sip.phoneNumber") == "+33100000001", attrs
                    assert attrs.get("sip.callID"), attrs
                    heard = await collect_audio(track, seconds=1.5, timeout=10)
                    f = dominant_hz(heard, 48000)
                    assert abs(f - 440) <= 5, f"dominant frequency {f:.1f} Hz"
                finally:
                    rc = await asyncio.to_thread(sipp.wait, 40)
                err = sipp.stderr.read().decode(errors="replace") if sipp.stderr else ""
                assert rc == 0, f"sipp failed ({rc}): {err[-800:]}"
        # The caller hung up: one record, with the right cause and packets counted.
        deadline = time.monotonic() + 5
        records = []
        while time.monotonic() < deadline:
            if server.call_records.exists():
                records = [json.loads(l) for l in server.call_records.read_text().splitlines() if l.strip()]
                records = [r for r in records if r["room"] == room]
                if records:
                    break
            await asyncio.sleep(0.1)
        assert len(records) == 1, records
        r = records[0]
        assert r["end_cause"] == "caller-bye" and r["codec"].upper() == "PCMU", r
        assert r["rtp_in"] > 200 and r["frames_to_room"] > 200, r
        assert r["rtp_lost"] == 0 and 0 <= r["jitter_ms"] < 50, r

    run(main())


@pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) is not installed")
def test_a_talking_caller_is_an_active_speaker_and_silence_ends_it(server: Server):
    """The caller's audio carries RFC 6464 levels into the room, so rooms see a phone caller speak:
    sipp plays 3 s of a PCMU tone then 5 s of PCMU silence (still sent); a livekit client in the
    room is told the SIP participant is an active speaker during the tone, and no longer one
    during the silence, while the call goes on."""
    room = f"speaker-{secrets.token_hex(3)}"

    def is_sip(p) -> bool:
        return p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            tmpd = Path(tmp)
            wav = tmpd / "tone_then_silence.wav"
            subprocess.run(
                ["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", str(wav),
                 "synth", "3", "sine", "440", "vol", "0.3", "pad", "0", "5"],
                check=True, timeout=20,
            )
            async with Rooms(server) as rooms:
                listener_obj = rtc.Room()
                speaking = Waiter(listener_obj, "active_speakers_changed", lambda sp: any(is_sip(p) for p in sp))
                await rooms.connect(room, "listener", room_obj=listener_obj)
                sipp = sipp_call(server, room, wav, 9.0, tmpd)
                try:
                    await speaking.wait("the SIP caller speaking (its tone)", timeout=15)
                    quiet = Waiter(listener_obj, "active_speakers_changed", lambda sp: not any(is_sip(p) for p in sp))
                    await quiet.wait("the SIP caller silent (its PCMU silence)", timeout=10)
                    # The turn ended with the silence, not with the caller leaving.
                    in_room = [p for p in listener_obj.remote_participants.values() if is_sip(p)]
                    assert in_room and sipp.poll() is None, "the call ended before its silence was seen"
                finally:
                    rc = await asyncio.to_thread(sipp.wait, 40)
                err = sipp.stderr.read().decode(errors="replace") if sipp.stderr else ""
                assert rc == 0, f"sipp failed ({rc}): {err[-800:]}"

    run(main())


def sip_exchange(server: Server, data: bytes, wait: float = 1.0, stop_at_final: bool = True) -> list[int]:
    """Sends one datagram to the gateway's SIP port; returns the status codes received (until the
    first final one, or `wait` seconds)."""
    codes = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((CLIENT_IP, 0))
        s.settimeout(0.2)
        s.sendto(data, server.sip_addr)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            try:
                msg, _ = s.recvfrom(65536)
            except socket.timeout:
                continue
            if msg.startswith(b"SIP/2.0 "):
                codes.append(int(msg[8:11]))
                if codes[-1] >= 200 and stop_at_final:
                    break
    return codes


# RFC 4475: the status the gateway must answer (None: no response at all; "ok": not refused).
TORTURE_EXPECT = {
    "intmeth": 501, "esc02": 501, "escnull": 405, "dblreq": 405, "mpart01": 405,
    "badinv01": 400, "clerr": 400, "ncl": 400, "scalar02": 400, "quotbal": 400, "ltgtruri": 400,
    "lwsruri": 400, "lwsstart": 400, "trws": 400, "escruri": 400, "regbadct": 400, "badaspec": 400,
    "baddn": 400, "badvers": 505, "mismatch01": 400, "mismatch02": 501, "badbranch": 400,
    "insuf": 400, "unkscm": 416, "novelsc": 416, "unksm2": 405, "bext01": 420, "invut": 415,
    "regaut01": 405, "multi01": 400, "mcl01": 400, "cparam01": 405, "cparam02": 405,
    "regescrt": 405, "sdp01": 406,
    # responses with no transaction, valid or not: silently dropped
    "unreason": None, "noreason": None, "scalarlg": None, "bigcode": None, "bcast": None,
    # valid requests: processed (OPTIONS answered 200; INVITEs get 100 first)
    "lwsdisp": 200, "semiuri": 200, "transports": 200, "zeromf": 200,
    # wsinv carries a To tag for a dialog that does not exist: processed, hence 481 (§12.2.2)
    "wsinv": 481, "esc01": "ok", "longreq": "ok", "baddate": "ok", "inv2543": "ok",
}


def test_rfc4475_torture_messages_over_udp(server: Server):
    """Every RFC 4475 message, sent over UDP to the running gateway, gets its verdict; the
    gateway still answers OPTIONS afterwards."""
    assert len(TORTURE_EXPECT) == 49
    wrong = []
    for name, want in TORTURE_EXPECT.items():
        wait = 0.3 if want is None else (0.5 if want == "ok" else 2.0)
        codes = sip_exchange(server, (TORTURE / f"{name}.dat").read_bytes(), wait=wait)
        finals = [c for c in codes if c >= 200]
        if want is None:
            ok = codes == []
        elif want == "ok":
            ok = bool(codes) and codes[0] == 100 and not any(c in (400, 406, 415, 416, 420, 501, 505) for c in codes)
        else:
            ok = bool(finals) and finals[0] == want
        if not ok:
            wrong.append(f"{name}: want {want}, got {codes}")
    assert not wrong, "\n".join(wrong)
    opts = (
        "OPTIONS sip:ping@{h} SIP/2.0\r\nVia: SIP/2.0/UDP {c}:5999;branch=z9hG4bK{b}\r\n"
        "Max-Forwards: 70\r\nTo: <sip:ping@{h}>\r\nFrom: <sip:t@{c}>;tag=1\r\nCall-ID: {b}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).format(h=server.sip_addr[0], c=CLIENT_IP, b=secrets.token_hex(6))
    assert sip_exchange(server, opts.encode()) == [200]


def test_garbage_and_oversized_datagrams_are_survived(server: Server):
    """Garbage, truncated and oversized datagrams get a 400 or nothing; OPTIONS still works."""
    for junk in [b"", b"\x00" * 100, secrets.token_bytes(1400), b"INVITE sip:x SIP/2.0\r\n" + b"A" * 60000]:
        codes = sip_exchange(server, junk, wait=0.3)
        assert all(c == 400 for c in codes), codes
    opts = (
        "OPTIONS sip:ping@{h} SIP/2.0\r\nVia: SIP/2.0/UDP {c}:5999;branch=z9hG4bK{b}\r\n"
        "Max-Forwards: 70\r\nTo: <sip:ping@{h}>\r\nFrom: <sip:t@{c}>;tag=1\r\nCall-ID: {b}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).format(h=server.sip_addr[0], c=CLIENT_IP, b=secrets.token_hex(6))
    assert sip_exchange(server, opts.encode()) == [200]


def invite(server: Server, room: str, sdp: str, branch: str, call_id: str) -> bytes:
    h = server.sip_addr[0]
    return (
        f"INVITE sip:{room}@{h} SIP/2.0\r\nVia: SIP/2.0/UDP {CLIENT_IP}:5998;branch=z9hG4bK{branch}\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:{room}@{h}>\r\nFrom: <sip:+331@{CLIENT_IP}>;tag=f{branch}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:+331@{CLIENT_IP}:5998>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
    ).encode()


def sdp_offer(pts: str, maps: str) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {CLIENT_IP}\r\ns=-\r\nc=IN IP4 {CLIENT_IP}\r\nt=0 0\r\n"
        f"m=audio 40000 RTP/AVP {pts}\r\n{maps}"
    )


def test_no_common_codec_gets_488_with_warning(server: Server):
    b = secrets.token_hex(5)
    msg = invite(server, "demo488", sdp_offer("18", "a=rtpmap:18 G729/8000\r\n"), b, f"c488-{b}")
    codes = sip_exchange(server, msg)
    assert codes[:1] == [100] and 488 in codes, codes


def test_invalid_room_name_gets_404(server: Server):
    b = secrets.token_hex(5)
    msg = invite(server, "no%20such%2Froom", sdp_offer("0", "a=rtpmap:0 PCMU/8000\r\n"), b, f"c404-{b}")
    codes = sip_exchange(server, msg)
    assert 404 in codes, codes


def test_malformed_sdp_gets_400(server: Server):
    b = secrets.token_hex(5)
    msg = invite(server, "demobad", "this is not sdp\r\n", b, f"cbad-{b}")
    codes = sip_exchange(server, msg)
    assert 400 in codes, codes


def run_scenario(server: Server, scenario: str, room: str, timeout_s: int) -> tuple[int, str]:
    """Runs a sipp scenario of tests/sip/scenarios with a looped 1 s tone; (exit code, stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        wav = tone_wav(tmpd / "tone.wav", 440, 1)
        sf = tmpd / "s.xml"
        sf.write_text((SCENARIOS / scenario).read_text().replace("@WAV@", str(wav)))
        host, port = server.sip_addr
        p = subprocess.run(
            [
                SIPP, f"{host}:{port}", "-sf", str(sf), "-s", room, "-i", CLIENT_IP, "-mi", CLIENT_IP,
                "-m", "1", "-nostdin", "-timeout", f"{timeout_s}s", "-trace_err",
                "-error_file", str(tmpd / "err.log"),
            ],
            cwd=tmpd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout_s + 30,
        )
        err = p.stderr.decode(errors="replace")
        if (tmpd / "err.log").exists():
            err += (tmpd / "err.log").read_text(errors="replace")[-1500:]
        return p.returncode, err


def records_for(server: Server, room: str) -> list[dict]:
    if not server.call_records.exists():
        return []
    rows = [json.loads(l) for l in server.call_records.read_text().splitlines() if l.strip()]
    return [r for r in rows if r["room"] == room]


@pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) is not installed")
def test_session_timer_refreshed_call_survives_200s(server: Server):
    """Session-Expires: 90 with the caller refreshing every 40 s: the call lasts 200 s and ends
    with the caller's BYE, not ours."""
    room = f"timer-{secrets.token_hex(3)}"
    rc, err = run_scenario(server, "uac_timer_refresh.xml", room, 260)
    assert rc == 0, err
    recs = records_for(server, room)
    assert recs and recs[0]["end_cause"] == "caller-bye", recs
    assert recs[0]["end_ms"] - recs[0]["start_ms"] >= 195_000, recs


@pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) is not installed")
def test_session_timer_missed_refresh_is_torn_down(server: Server):
    """Session-Expires: 90 and no refresh: the gateway sends BYE (RFC 4028 §10) within 90 s."""
    room = f"timer-{secrets.token_hex(3)}"
    t0 = time.monotonic()
    rc, err = run_scenario(server, "uac_timer_silent.xml", room, 120)
    assert rc == 0, err
    assert time.monotonic() - t0 < 95
    deadline = time.monotonic() + 5
    while not records_for(server, room) and time.monotonic() < deadline:
        time.sleep(0.1)
    recs = records_for(server, room)
    assert recs and recs[0]["end_cause"] == "session-expired", recs


def options(server: Server, branch: str, transport: str = "UDP") -> bytes:
    return (
        f"OPTIONS sip:ping@{server.sip_addr[0]} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {CLIENT_IP}:5999;branch=z9hG4bK{branch}\r\n"
        f"Max-Forwards: 70\r\nTo: <sip:ping@{server.sip_addr[0]}>\r\nFrom: <sip:t@{CLIENT_IP}>;tag=1\r\n"
        f"Call-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def read_responses(sock: socket.socket, want: int, timeout: float = 3.0) -> list[int]:
    """Reads SIP responses from a TCP stream until `want` arrived or the timeout."""
    data = b""
    sock.settimeout(0.2)
    end = time.monotonic() + timeout
    while time.monotonic() < end and data.count(b"SIP/2.0 ") < want:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    return [int(data[i + 8 : i + 11]) for i in range(len(data)) if data.startswith(b"SIP/2.0 ", i)]


def test_sip_over_tcp_framing(server: Server):
    """Over TCP: two requests in one segment, one request split over segments, keep-alive CRLFs;
    each is answered on the connection; an unframeable message gets 400 and the close."""
    with socket.create_connection(server.sip_addr, timeout=5) as s:
        s.sendall(b"\r\n\r\n" + options(server, "tcpa", "TCP") + options(server, "tcpb", "TCP"))
        assert read_responses(s, 2) == [200, 200]
        third = options(server, "tcpc", "TCP")
        s.sendall(third[:40])
        time.sleep(0.3)
        s.sendall(third[40:])
        assert read_responses(s, 1) == [200]
        bad = options(server, "tcpd", "TCP").replace(b"Content-Length: 0", b"Content-Length: -5")
        s.sendall(bad)
        assert read_responses(s, 1) == [400]
        s.settimeout(2)
        assert s.recv(100) == b"", "connection closed after an unframeable message"
    assert sip_exchange(server, options(server, secrets.token_hex(4))) == [200]


class Uac:
    """A minimal SIP UAC over UDP for signalling-only checks (no media)."""

    def __init__(self, server: Server, room: str, from_user: str = "+332"):
        self.server, self.room, self.from_user = server, room, from_user
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((CLIENT_IP, 0))
        self.port = self.sock.getsockname()[1]
        self.call_id = f"uac-{secrets.token_hex(6)}"
        self.tag = secrets.token_hex(4)
        self.to_tag = ""
        self.cseq = 0
        self.host = server.sip_addr[0]

    def close(self) -> None:
        self.sock.close()

    def sdp(self, direction: str) -> str:
        return (
            f"v=0\r\no=- 1 {self.cseq} IN IP4 {CLIENT_IP}\r\ns=-\r\nc=IN IP4 {CLIENT_IP}\r\nt=0 0\r\n"
            f"m=audio {self.port + 2} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            f"a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
        )

    def request(
        self, method: str, body: str = "", cseq: int | None = None, branch: str | None = None, extra: str = ""
    ) -> tuple[str, int]:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        branch = branch or f"z9hG4bK{secrets.token_hex(6)}"
        to = f"<sip:{self.room}@{self.host}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        msg = (
            f"{method} sip:{self.room}@{self.host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {CLIENT_IP}:{self.port};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\nTo: {to}\r\nFrom: <sip:{self.from_user}@{CLIENT_IP}>;tag={self.tag}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method.split()[0]}\r\n"
            f"Contact: <sip:{self.from_user}@{CLIENT_IP}:{self.port}>\r\n{extra}{ctype}Content-Length: {len(body)}\r\n\r\n{body}"
        )
        self.sock.sendto(msg.encode(), self.server.sip_addr)
        return branch, cseq

    def responses(self, until_final: bool = True, timeout: float = 10.0) -> list[tuple[int, str]]:
        out = []
        self.sock.settimeout(0.2)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            text = data.decode(errors="replace")
            if not text.startswith("SIP/2.0 "):
                continue
            code = int(text[8:11])
            out.append((code, text))
            for line in text.split("\r\n"):
                if line.lower().startswith("to:") and ";tag=" in line:
                    self.to_tag = line.split(";tag=")[1].split(";")[0].strip()
            if until_final and code >= 200:
                break
        return out

    def establish(self) -> None:
        """INVITE with a sendrecv PCMU offer, 200 OK, ACK: the call is up."""
        self.request("INVITE", self.sdp("sendrecv"))
        rs = self.responses()
        assert rs and rs[-1][0] == 200, [c for c, _ in rs]
        self.request("ACK", cseq=self.cseq)


def sdp_direction(text: str) -> str:
    for d in ("sendrecv", "sendonly", "recvonly", "inactive"):
        if f"a={d}" in text:
            return d
    return "sendrecv"


def test_hold_and_resume_reinvites_get_the_right_directions(server: Server):
    """Hold (sendonly) is answered recvonly, inactive with inactive, resume with sendrecv; the
    call survives and ends with our BYE answered 200."""
    uac = Uac(server, f"hold-{secrets.token_hex(3)}")
    try:
        uac.establish()
        for offered, want in [("sendonly", "recvonly"), ("inactive", "inactive"), ("sendrecv", "sendrecv")]:
            uac.request("INVITE", uac.sdp(offered))
            rs = uac.responses()
            assert rs and rs[-1][0] == 200, (offered, [c for c, _ in rs])
            got = sdp_direction(rs[-1][1])
            assert got == want, f"offer {offered}: answered {got}, want {want}"
            uac.request("ACK", cseq=uac.cseq)
        uac.request("BYE")
        rs = uac.responses()
        assert rs and rs[-1][0] == 200, [c for c, _ in rs]
    finally:
        uac.close()


def scrape(server: Server) -> dict[str, float]:
    """The gateway's /metrics samples (with their labels) and values."""
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_count_the_call_in_progress_and_its_end_cause(server: Server):
    """What an admin's Prometheus sees of SIP calls: a refused attempt counted by its status; an
    answered one counted as 200, one more call in progress while it is up, back down after the
    caller's BYE, and one more `caller-bye` end; no record lost."""
    active = 'jonction_calls_active{protocol="sip"}'
    bye = 'jonction_calls_ended_total{cause="caller-bye"}'
    answered = 'jonction_sip_invite_final_responses_total{code="200"}'
    unrouted = 'jonction_sip_invite_final_responses_total{code="404"}'
    # The previous test's call may still be leaving its room.
    deadline = time.monotonic() + 5
    while scrape(server)[active] > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    before = scrape(server)
    assert before[active] == 0, "calls of earlier tests are still up"
    b = secrets.token_hex(5)
    msg = invite(server, "no%20such%2Froom", sdp_offer("0", "a=rtpmap:0 PCMU/8000\r\n"), b, f"m404-{b}")
    assert 404 in sip_exchange(server, msg)
    assert scrape(server)[unrouted] == before.get(unrouted, 0) + 1
    uac = Uac(server, f"metrics-{secrets.token_hex(3)}")
    try:
        uac.establish()
        assert scrape(server)[active] == before[active] + 1
        uac.request("BYE")
        rs = uac.responses()
        assert rs and rs[-1][0] == 200, [c for c, _ in rs]
    finally:
        uac.close()
    deadline = time.monotonic() + 5
    while scrape(server)[active] > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    after = scrape(server)
    assert after[bye] == before[bye] + 1, (before[bye], after[bye])
    assert after[active] == 0
    assert after[answered] == before.get(answered, 0) + 1
    assert after["jonction_call_records_failed_total"] == 0


def test_cancel_before_answer(server: Server):
    """CANCEL right after the INVITE: 200 for the CANCEL, 487 for the INVITE."""
    uac = Uac(server, f"cancel-{secrets.token_hex(3)}")
    try:
        branch, cseq = uac.request("INVITE", uac.sdp("sendrecv"))
        # At once: the room join that precedes our 200 takes a few tens of milliseconds.
        uac.request("CANCEL", cseq=cseq, branch=branch)
        rs = uac.responses(until_final=False, timeout=3)
        codes = [c for c, _ in rs]
        cancel_ok = any(c == 200 and "CANCEL" in t for c, t in rs)
        invite_487 = any(c == 487 and "INVITE" in t for c, t in rs)
        assert cancel_ok and invite_487, codes
        assert not any(c == 200 and "INVITE" in t.split("CSeq:")[1][:20] for c, t in rs), codes
    finally:
        uac.close()


def test_rtp_from_a_stranger_is_refused_and_counted(server: Server):
    """The caller's RTP latches the media path; a stranger sending loud noise to the same port
    afterwards is dropped and counted; the room still hears only the caller's 440 Hz."""
    import audioop

    room = f"latch-{secrets.token_hex(3)}"

    async def main():
        uac = Uac(server, room)
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind((CLIENT_IP, uac.port + 2))
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind((CLIENT_IP, 0))
        try:
            async with Rooms(server) as rooms:
                listener = await rooms.connect(room, "listener")
                got: list = []
                listener.on("track_subscribed", lambda t, pub, p: got.append(t))
                uac.request("INVITE", uac.sdp("sendrecv"))
                rs = await asyncio.to_thread(uac.responses)
                assert rs and rs[-1][0] == 200, [c for c, _ in rs]
                body = rs[-1][1].split("\r\n\r\n", 1)[1]
                port = int(next(l for l in body.split("\r\n") if l.startswith("m=audio")).split()[1])
                uac.request("ACK", cseq=uac.cseq)
                dest = (server.sip_addr[0], port)
                t = np.arange(160 * 200) / 8000
                tone = audioop.lin2ulaw((np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16).tobytes(), 2)
                noise = audioop.lin2ulaw((np.random.default_rng(1).normal(0, 12000, 160 * 200)).clip(-32000, 32000).astype(np.int16).tobytes(), 2)

                def pkt(seq: int, payload: bytes, ssrc: int) -> bytes:
                    return bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + payload

                async def send():
                    for i in range(200):
                        rtp.sendto(pkt(i, tone[i * 160 : (i + 1) * 160], 0x1111), dest)
                        if i >= 10:  # after latching, a stranger joins in with noise
                            stranger.sendto(pkt(i, noise[i * 160 : (i + 1) * 160], 0x2222), dest)
                        await asyncio.sleep(0.02)

                sender = asyncio.create_task(send())
                deadline = time.monotonic() + 10
                while not got and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert got, "the caller's track did not reach the room"
                heard = await collect_audio(got[0], seconds=1.5, timeout=10)
                await sender
                x = heard.astype(np.float64)
                sp = np.abs(np.fft.rfft(x * np.hanning(len(x))))
                fr = np.fft.rfftfreq(len(x), 1 / 48000)
                peak = sp[np.abs(fr - 440) < 10].sum()
                # Noise would spread energy over the whole band: the tone must dominate.
                assert peak / sp.sum() > 0.5, f"the room heard more than the tone ({peak / sp.sum():.2f})"
                uac.request("BYE")
                rs = await asyncio.to_thread(uac.responses)
                assert rs and rs[-1][0] == 200
        finally:
            uac.close()
            rtp.close()
            stranger.close()
        deadline = time.monotonic() + 5
        while not records_for(server, room) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        recs = records_for(server, room)
        assert recs and recs[0]["rtp_rejected"] >= 150, recs

    run(main())


def speech_window_scores(ref: np.ndarray, rx: np.ndarray, rate: int) -> list[float]:
    """Normalised cross-correlation of each voiced 50 ms window of `ref` with the best-matching
    stretch of `rx`. The whole signal is aligned first; each window then searches ±100 ms around
    that alignment, because the receiving client's jitter buffer (NetEQ) stretches or shrinks
    time while it adapts (seen: steps of about 9 ms in the first second), which says nothing
    about the gateway's transcoding."""
    n = 1 << int(np.ceil(np.log2(len(rx) + len(ref))))
    full = np.fft.irfft(np.fft.rfft(rx, n) * np.conj(np.fft.rfft(ref, n)), n)
    lag = int(np.argmax(full))
    if lag > n // 2:
        lag -= n  # rx starts after ref: a negative shift
    win, search = rate // 20, rate // 10
    energies = [float(np.dot(ref[i:i + win], ref[i:i + win])) for i in range(0, len(ref) - win, win)]
    floor = 0.05 * max(energies)
    scores: list[float] = []
    for k, e in enumerate(energies):
        if e < floor:
            continue
        i = k * win
        r = ref[i:i + win]
        lo, hi = max(0, i + lag - search), min(len(rx) - win, i + lag + search)
        best = 0.0
        for j in range(lo, hi + 1):
            seg = rx[j:j + win]
            best = max(best, float(np.dot(seg, r) / (np.linalg.norm(seg) * np.linalg.norm(r) + 1e-9)))
        scores.append(best)
    assert scores, "no voiced window in the reference"
    return scores


@pytest.mark.skipif(SIPP is None or shutil.which("espeak-ng") is None, reason="sipp or espeak-ng missing")
def test_speech_from_sipp_arrives_faithfully(server: Server):
    """A spoken sentence (espeak-ng, µ-law) played by sipp reaches the room client faithfully:
    its voiced 50 ms windows match what was sent with a normalised cross-correlation of at
    least 0.9 (90 % of them; median at least 0.97). Seen: every window above 0.93, median 0.999;
    white noise scores 0.16 and the same audio shuffled in 50 ms blocks 0.40."""
    room = f"speech-{secrets.token_hex(3)}"

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            subprocess.run(
                ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(d / "s.wav"),
                 "The meeting room on the third floor joins the call now."],
                check=True, timeout=30,
            )
            subprocess.run(["sox", str(d / "s.wav"), "-r", "8000", "-c", "1", "-e", "u-law", str(d / "u.wav")], check=True, timeout=30)
            subprocess.run(["sox", str(d / "u.wav"), "-e", "signed", "-b", "16", str(d / "ref.wav")], check=True, timeout=30)
            import wave as _wave

            with _wave.open(str(d / "ref.wav"), "rb") as w:
                ref = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
            async with Rooms(server) as rooms:
                listener = await rooms.connect(room, "listener")
                got: list = []
                listener.on("track_subscribed", lambda t, pub, p: got.append(t))
                seconds = len(ref) / 8000 + 1.5
                sipp = sipp_call(server, room, d / "u.wav", seconds, d)
                try:
                    deadline = time.monotonic() + 15
                    while not got and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    assert got, "no track from the SIP caller"
                    stream = rtc.AudioStream(got[0], sample_rate=48000, num_channels=1)
                    chunks: list[np.ndarray] = []
                    need = int((len(ref) / 8000 + 0.5) * 48000)

                    async def pull():
                        total = 0
                        async for ev in stream:
                            x = np.frombuffer(ev.frame.data, dtype=np.int16)
                            chunks.append(x.copy())
                            total += len(x)
                            if total >= need:
                                return

                    try:
                        await asyncio.wait_for(pull(), seconds + 10)
                    except asyncio.TimeoutError:
                        pass  # the call ended: use what arrived
                    assert sum(len(c) for c in chunks) >= len(ref) * 6, "too little audio arrived"
                finally:
                    await asyncio.to_thread(sipp.wait, 40)
            rx48 = np.concatenate(chunks).astype(np.float64)
            # 48 kHz → 8 kHz by truncating the spectrum (both are band-limited to 4 kHz).
            spec = np.fft.rfft(rx48)
            n8 = len(rx48) // 6
            rx = np.fft.irfft(spec[: n8 // 2 + 1], n8) / 6
            scores = speech_window_scores(ref, rx, 8000)
            good = sum(1 for s in scores if s >= 0.9) / len(scores)
            median = float(np.median(scores))
            if good < 0.9 or median < 0.97:
                out = ARTIFACTS / f"speech-{room}.npz"
                np.savez(out, ref=ref, rx=rx)
                raise AssertionError(
                    f"{len(scores)} voiced 50 ms windows: median NCC {median:.3f}, "
                    f"{good:.0%} at least 0.9 (signals saved to {out}); scores {np.round(scores, 2).tolist()}"
                )

    run(main())


def test_shutdown_ends_calls_with_bye(server: Server):
    """SIGTERM with a call up (on a second gateway instance): the caller gets a BYE with a Reason,
    the gateway exits 0, and the call record says why."""
    from conftest import ARTIFACTS, launch, stop

    srv = launch(http_port=7894, udp_port=7896, log_path=ARTIFACTS / "jonction-pytest-sip-shutdown.log")
    uac = Uac(srv, f"down-{secrets.token_hex(3)}")
    try:
        uac.establish()
        exited, status = stop(srv)
        assert exited and status == 0, status
        uac.sock.settimeout(0.5)
        bye = b""
        end = time.monotonic() + 5
        while time.monotonic() < end and not bye.startswith(b"BYE "):
            try:
                bye, _ = uac.sock.recvfrom(65536)
            except socket.timeout:
                continue
        assert bye.startswith(b"BYE "), bye[:80]
        assert b"Reason: SIP;cause=503" in bye, bye.decode(errors="replace")
    finally:
        uac.close()
        stop(srv)
    recs = [json.loads(l) for l in srv.call_records.read_text().splitlines() if l.strip()]
    assert recs and recs[-1]["end_cause"] == "shutdown", recs


@pytest.mark.skipif(SIPP is None, reason="sipp (sip-tester) is not installed")
def test_pcmu_caller_published_as_opus_when_configured(server: Server):
    """With `livekit.publish_opus` (a second instance), a PCMU caller's audio is decoded and
    re-encoded to Opus before it is published: the room client hears sipp's 440 Hz and the call
    record says the room got Opus."""
    from conftest import launch, stop

    srv = launch(
        http_port=7918,
        udp_port=7920,
        log_path=ARTIFACTS / "jonction-pytest-publish-opus.log",
        extra_env={"JONCTION_LIVEKIT__PUBLISH_OPUS": "true"},
    )
    room = f"opus-{secrets.token_hex(3)}"

    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            tmpd = Path(tmp)
            wav = tone_wav(tmpd / "tone.wav", 440, 6)
            async with Rooms(srv) as rooms:
                listener = await rooms.connect(room, "listener")
                got: list = []
                listener.on("track_subscribed", lambda t, pub, p: got.append(t))
                sipp = sipp_call(srv, room, wav, 5.0, tmpd)
                try:
                    deadline = time.monotonic() + 15
                    while not got and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    assert got, "no track from the SIP caller reached the room"
                    heard = await collect_audio(got[0], seconds=1.5, timeout=10)
                    f = dominant_hz(heard, 48000)
                    assert abs(f - 440) <= 5, f"dominant frequency {f:.1f} Hz"
                finally:
                    rc = await asyncio.to_thread(sipp.wait, 40)
                assert rc == 0, f"sipp failed ({rc})"

    try:
        run(main())
        deadline = time.monotonic() + 5
        recs: list = []
        while time.monotonic() < deadline and not recs:
            if srv.call_records.exists():
                recs = [json.loads(l) for l in srv.call_records.read_text().splitlines() if l.strip()]
            time.sleep(0.1)
        assert recs and recs[-1]["codec"].upper() == "PCMU", recs
        assert recs[-1]["published_codec"] == "opus" and recs[-1]["frames_to_room"] > 200, recs
    finally:
        stop(srv)
