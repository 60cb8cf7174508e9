"""Dialplans end to end, with the shipped example plan (`dialplans/`) unless a test makes its own:
an unmatched number gets 404 and a premium-rate caller 403; the public reception number answers
with the PIN prompt (recorded by baresip: non-silent, the prompt's length), a PIN typed as RFC 4733
joins the room (a livekit client there hears baresip), three wrong PINs play "wrong PIN" and hang
up, an X-PIN header skips the prompt; a plan edited while calls are up routes new calls the new way
and leaves the calls in progress alone, and a broken edit keeps the running plan."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from livekit import api

from conftest import API_KEY, API_SECRET, ARTIFACTS, Server, launch, stop
from test_baresip import BARESIP, Events, baresip_config, key, read_wav, write_tone
from test_call_lifecycle import wait_participants
from test_rooms import Rooms, collect_audio, run
from test_sip import Uac, dominant_hz

RECEPTION = "0187654321"
PINS = {"1234567890": "board-room", "5550001111": "support"}
ENTER_PIN_S = 4.2  # src/prompt/audio/en/enter_pin.wav


def invite_status(server: Server, called: str, from_user: str = "+33612345678", extra: str = "") -> tuple[int, str]:
    uac = Uac(server, called, from_user=from_user)
    try:
        uac.request("INVITE", uac.sdp("inactive"), extra=extra)
        rs = uac.responses()
        assert rs, "no final response"
        return rs[-1]
    finally:
        uac.close()


def test_unmatched_number_gets_404_and_premium_rate_caller_403(server: Server):
    code, _ = invite_status(server, "999999999999")
    assert code == 404
    code, text = invite_status(server, "demo-room", from_user="0891234567")
    assert code == 403 and "Premium-rate" in text.split("\r\n")[0], text.split("\r\n")[0]
    # Room URIs still work.
    code, _ = invite_status(server, f"plain-{secrets.token_hex(3)}")
    assert code == 200


def test_x_pin_header_skips_the_prompt(server: Server):
    async def main():
        uac = Uac(server, RECEPTION, from_user="+33612345678")
        try:
            uac.request("INVITE", uac.sdp("inactive"), extra="X-PIN: 5550001111\r\n")
            rs = uac.responses()
            assert rs and rs[-1][0] == 200, [c for c, _ in rs]
            uac.request("ACK", cseq=uac.cseq)
            async with api.LiveKitAPI(server.http_url, API_KEY, API_SECRET) as lk:
                ps = await wait_participants(lk, "support", 1, timeout=8)
                assert any(p.attributes.get("sip.callID") == uac.call_id for p in ps), ps
            uac.request("BYE")
            uac.responses()
        finally:
            uac.close()

    run(main())


class Baresip:
    """One baresip process dialling through the gateway (PCMU), recording what it hears."""

    def __init__(self, d: Path, sip_port: int, ctrl_port: int, tone: float):
        self.d, self.ctrl_port = d, ctrl_port
        wav = d / "src.wav"
        write_tone(wav, 8000, 1, tone, 60)
        baresip_config(d, sip_port, ctrl_port, wav, "PCMU/8000/1")
        self.proc = subprocess.Popen(
            [BARESIP, "-f", str(d)], stdin=subprocess.DEVNULL, stdout=(d / "out.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.events = None

    async def dial(self, uri: str) -> None:
        deadline = time.monotonic() + 10
        while self.events is None and time.monotonic() < deadline:
            try:
                self.events = Events(self.ctrl_port)
            except OSError:
                await asyncio.sleep(0.2)
        assert self.events is not None, "baresip ctrl_tcp did not come up"
        self.events.command("dial", uri)
        await self.wait_for("CALL_ESTABLISHED", 15)

    async def wait_for(self, event: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while event not in self.events.types() and time.monotonic() < deadline:
            await asyncio.to_thread(self.events.poll)
        return event in self.events.types()

    async def keys(self, digits: str) -> None:
        await asyncio.to_thread(key, self.ctrl_port + 1, digits)

    def close(self) -> np.ndarray:
        """Stops baresip; the 8 kHz audio it received."""
        if self.events:
            self.events.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        recs = sorted((self.d / "rec").glob("*-dec.wav"))
        assert recs, f"baresip recorded nothing: {list((self.d / 'rec').iterdir())}"
        x, _ = read_wav(recs[-1])
        return x.astype(np.float64)


def voiced_seconds(x: np.ndarray, rate: int = 8000) -> float:
    """Length of the first stretch of sound (20 ms frames above a floor, gaps < 0.6 s bridged)."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    loud = np.sqrt((frames**2).mean(axis=1)) > 200
    idx = np.flatnonzero(loud)
    if len(idx) == 0:
        return 0.0
    end = idx[0]
    for i in idx[1:]:
        if i - end > 30:
            break
        end = i
    return (end - idx[0] + 1) * 0.02


@pytest.mark.skipif(BARESIP is None, reason="baresip is not installed")
def test_pin_prompt_then_correct_pin_joins_the_room(server: Server):
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            bs = Baresip(Path(tmp), 5190, 4544, tone=330.0)
            try:
                async with Rooms(server) as rooms:
                    listener = await rooms.connect("board-room", f"listener-{secrets.token_hex(2)}")
                    got: list = []
                    listener.on("track_subscribed", lambda t, pub, p: got.append(t))
                    host, port = server.sip_addr
                    await bs.dial(f"sip:{RECEPTION}@{host}:{port}")
                    await asyncio.sleep(ENTER_PIN_S + 0.5)  # hear the whole prompt
                    assert not got, "the caller reached the room before typing a PIN"
                    await bs.keys("1234567890#")
                    deadline = time.monotonic() + 10
                    while not got and time.monotonic() < deadline:
                        await asyncio.sleep(0.1)
                    assert got, "a correct PIN did not join the room"
                    heard = dominant_hz(await collect_audio(got[0], seconds=1.0, timeout=10), 48000)
                    assert abs(heard - 330) <= 5, f"room heard {heard:.1f} Hz"
                    bs.events.command("hangup")
                    await asyncio.sleep(0.5)
            finally:
                x = bs.close()
        prompt = voiced_seconds(x)
        assert abs(prompt - ENTER_PIN_S) <= 0.8, f"first sound lasted {prompt:.2f} s, the prompt is {ENTER_PIN_S} s"

    run(main())


@pytest.mark.skipif(BARESIP is None, reason="baresip is not installed")
def test_three_wrong_pins_play_wrong_pin_then_hang_up(server: Server):
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            bs = Baresip(Path(tmp), 5194, 4554, tone=350.0)
            try:
                host, port = server.sip_addr
                await bs.dial(f"sip:{RECEPTION}@{host}:{port}")
                for _ in range(3):
                    await bs.keys("0000000000")  # 10 digits: submitted without #
                    await asyncio.sleep(3.5)  # the wrong-PIN (then goodbye) prompt
                closed = await bs.wait_for("CALL_CLOSED", 15)
                assert closed, f"the gateway did not hang up: {bs.events.types()}"
            finally:
                x = bs.close()
        loud = x[np.abs(x) > 300]
        assert len(loud) > 8000, "baresip heard no prompts"
        recs = [json.loads(l) for l in server.call_records.read_text().splitlines() if l.strip()]
        mine = [r for r in recs if r["to"] == RECEPTION and r["end_cause"] == "pin-refused"]
        assert mine, [r["end_cause"] for r in recs[-3:]]
        assert mine[-1]["digits_from_device"] >= 30, mine[-1]

    run(main())


def route_with(dir_: Path, rule_room: str) -> None:
    (dir_ / "10-test.toml").write_text(
        '[[rule]]\nname = "alpha"\nmatch.called = "alpha"\n'
        f'[rule.action]\ntype = "room"\nroom = "{rule_room}"\n'
    )


async def wait_log_lines(log: Path, needle: str, count: int, timeout: float = 10.0) -> None:
    """Waits (bounded) until `log` holds at least `count` lines containing `needle`."""
    for _ in range(int(timeout / 0.1)):
        if sum(needle in l for l in log.read_text(errors="replace").splitlines()) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {count} {needle!r} lines in {log}")


def test_hot_reload_routes_new_calls_and_keeps_calls_in_progress(server: Server):
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            dp = Path(tmp)
            first, second = f"first-{secrets.token_hex(2)}", f"second-{secrets.token_hex(2)}"
            route_with(dp, first)
            log = ARTIFACTS / "jonction-pytest-reload.log"
            srv = launch(
                http_port=7910,
                udp_port=7912,
                log_path=log,
                extra_env={"JONCTION_DIALPLAN__DIR": str(dp), "JONCTION_DIALPLAN__RELOAD_INTERVAL": "200ms"},
            )
            calls: list[Uac] = []
            try:
                async def call_alpha() -> Uac:
                    uac = Uac(srv, "alpha")
                    calls.append(uac)
                    uac.request("INVITE", uac.sdp("inactive"))
                    rs = await asyncio.to_thread(uac.responses)
                    assert rs and rs[-1][0] == 200, [c for c, _ in rs]
                    uac.request("ACK", cseq=uac.cseq)
                    return uac

                async with api.LiveKitAPI(srv.http_url, API_KEY, API_SECRET) as lk:
                    await call_alpha()
                    await wait_participants(lk, first, 1)
                    route_with(dp, second)
                    await wait_log_lines(log, "dialplan reloaded", 1)
                    await call_alpha()
                    await wait_participants(lk, second, 1)
                    ps = await wait_participants(lk, first, 1)
                    assert len(ps) == 1, "the call in progress should stay where it was"
                    # A broken edit: refused, logged with file:line:col, the plan keeps serving.
                    (dp / "10-test.toml").write_text(
                        '[[rule]]\nname = "alpha"\nmatch.called = "("\n[rule.action]\ntype = "room"\nroom = "x"\n'
                    )
                    await wait_log_lines(log, "dialplan refused", 1)
                    await call_alpha()
                    ps = await wait_participants(lk, second, 2)
                    assert len(ps) == 2
                text = log.read_text(errors="replace")
                refused = [l for l in text.splitlines() if "dialplan refused" in l]
                assert refused and "10-test.toml:3:" in refused[-1], refused
            finally:
                for u in calls:
                    u.request("BYE")
                    u.close()
                stop(srv)

    run(main())
