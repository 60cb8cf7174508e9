"""How a SIP call ends from the room side, and the LiveKit RoomService API (Twirp) of the embedded
room server that drives it: the `livekit-api` Python SDK (LiveKit's own server SDK) lists rooms and
participants, removes the gateway's participant (the caller gets a BYE) or deletes the room (the
caller gets a BYE, room clients are disconnected); a call reaching the maximum duration is ended;
calls beyond the gateway's capacity limits are turned away and the calls in progress kept."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time

import aiohttp
import pytest
from livekit import api, rtc

from conftest import API_KEY, API_SECRET, ARTIFACTS, Server, launch, stop
from test_h323 import report_of, start_caller
from test_rooms import Rooms, SinePublisher, run
from test_sip import Uac, records_for, scrape


def answer_call(server: Server, room: str) -> Uac:
    uac = Uac(server, room)
    uac.request("INVITE", uac.sdp("sendrecv"))
    rs = uac.responses()
    assert rs and rs[-1][0] == 200, [c for c, _ in rs]
    uac.request("ACK", cseq=uac.cseq)
    return uac


def wait_bye(uac: Uac, timeout: float) -> str:
    """The next BYE the gateway sends (answered 200), or '' after `timeout` seconds."""
    bye, peer = next_request(uac, "BYE", timeout)
    if bye:
        uac.sock.sendto(reply_to(bye, 200, "OK"), peer)
    return bye


def last_record(server: Server, room: str, timeout: float = 5.0) -> dict:
    """The call record of `room`, waiting for it to be written."""
    end = time.monotonic() + timeout
    while not records_for(server, room) and time.monotonic() < end:
        time.sleep(0.1)
    recs = records_for(server, room)
    assert recs, f"no call record for {room}"
    return recs[-1]


async def wait_participants(lk: api.LiveKitAPI, room: str, n: int, timeout: float = 10.0) -> list:
    end = time.monotonic() + timeout
    while True:
        try:
            res = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            if len(res.participants) >= n:
                return list(res.participants)
        except api.TwirpError:
            pass  # the room is not open yet
        assert time.monotonic() < end, f"fewer than {n} participants in {room}"
        await asyncio.sleep(0.1)


def test_room_service_api_and_its_refusals(server: Server):
    """ListRooms/ListParticipants show the SIP caller's participant (kind SIP, sip.* attributes);
    a wrong secret is refused 401, a token without roomAdmin 403, unknown rooms 404."""
    room = f"api-{secrets.token_hex(3)}"

    async def main():
        uac = answer_call(server, room)
        try:
            async with api.LiveKitAPI(server.http_url, API_KEY, API_SECRET) as lk:
                ps = await wait_participants(lk, room, 1)
                sip = ps[0]
                assert sip.kind == api.ParticipantInfo.Kind.SIP, sip
                assert sip.attributes.get("sip.callID") == uac.call_id, dict(sip.attributes)
                assert sip.attributes.get("sip.callStatus") == "active", dict(sip.attributes)
                rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
                assert [r.name for r in rooms.rooms] == [room]
                assert rooms.rooms[0].num_participants == 1
                with pytest.raises(api.TwirpError) as e:
                    await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity="nobody"))
                assert e.value.status == 404, e.value
                with pytest.raises(api.TwirpError) as e:
                    await lk.room.list_participants(api.ListParticipantsRequest(room="no-such-room"))
                assert e.value.status == 404, e.value
            async with api.LiveKitAPI(server.http_url, API_KEY, "wrong-secret-0123456789abcdef0123") as lk:
                with pytest.raises(api.TwirpError) as e:
                    await lk.room.list_rooms(api.ListRoomsRequest())
                assert e.value.status == 401 and "signature" in e.value.message, e.value
            # A join token is not an admin token.
            join = (
                api.AccessToken(API_KEY, API_SECRET)
                .with_identity("x")
                .with_grants(api.VideoGrants(room_join=True, room=room))
                .to_jwt()
            )
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{server.http_url}/twirp/livekit.RoomService/ListParticipants",
                    json={"room": room},
                    headers={"Authorization": f"Bearer {join}"},
                ) as resp:
                    body = await resp.json()
                    assert resp.status == 403 and body["code"] == "permission_denied", body
                admin = (
                    api.AccessToken(API_KEY, API_SECRET)
                    .with_grants(api.VideoGrants(room_admin=True, room=room))
                    .to_jwt()
                )
                # JSON bodies work too (what LiveKit's JS server SDK sends).
                async with http.post(
                    f"{server.http_url}/twirp/livekit.RoomService/ListParticipants",
                    json={"room": room},
                    headers={"Authorization": f"Bearer {admin}"},
                ) as resp:
                    body = await resp.json()
                    assert resp.status == 200, body
                    assert [p["identity"] for p in body["participants"]] == [ps[0].identity], body
        finally:
            uac.close()

    run(main())


def test_removed_participant_ends_the_call_with_bye(server: Server):
    room = f"rm-{secrets.token_hex(3)}"

    async def main():
        uac = answer_call(server, room)
        try:
            async with api.LiveKitAPI(server.http_url, API_KEY, API_SECRET) as lk:
                ps = await wait_participants(lk, room, 1)
                await lk.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=ps[0].identity))
            bye = await asyncio.to_thread(wait_bye, uac, 5)
            assert bye, "no BYE after the participant was removed"
            assert 'text="removed from the room"' in bye, bye
        finally:
            uac.close()
        rec = await asyncio.to_thread(last_record, server, room)
        assert rec["end_cause"] == "removed", rec

    run(main())


def test_deleted_room_ends_the_call_and_disconnects_clients(server: Server):
    room = f"del-{secrets.token_hex(3)}"

    async def main():
        async with Rooms(server) as rooms:
            viewer = await rooms.connect(room, "viewer")
            gone = asyncio.Event()
            reasons: list = []

            def on_disconnected(reason):
                reasons.append(reason)
                gone.set()

            viewer.on("disconnected", on_disconnected)
            uac = answer_call(server, room)
            try:
                async with api.LiveKitAPI(server.http_url, API_KEY, API_SECRET) as lk:
                    await wait_participants(lk, room, 2)
                    await lk.room.delete_room(api.DeleteRoomRequest(room=room))
                    bye = await asyncio.to_thread(wait_bye, uac, 5)
                    assert bye, "no BYE after the room was deleted"
                    assert 'text="room closed"' in bye, bye
                    await asyncio.wait_for(gone.wait(), 5)
                    assert reasons and reasons[0] == rtc.DisconnectReason.ROOM_DELETED, reasons
                    left = await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))
                    assert not left.rooms, left
            finally:
                uac.close()
        rec = await asyncio.to_thread(last_record, server, room)
        assert rec["end_cause"] == "room-closed", rec

    run(main())


def test_maximum_call_duration_ends_the_call(server: Server):
    """With sip.max_call_duration = 3s (a second instance), an answered call gets a BYE saying so
    after about 3 s, and its record says max-duration."""
    srv = launch(
        http_port=7897,
        udp_port=7899,
        log_path=ARTIFACTS / "jonction-pytest-maxduration.log",
        extra_env={"JONCTION_SIP__MAX_CALL_DURATION": "3s"},
    )
    room = f"max-{secrets.token_hex(3)}"
    try:
        uac = answer_call(srv, room)
        try:
            t0 = time.monotonic()
            bye = wait_bye(uac, 10)
            took = time.monotonic() - t0
            assert bye, "no BYE within 10 s"
            assert "maximum call duration" in bye, bye
            assert took >= 2.5, f"BYE after {took:.1f} s, before the 3 s limit"
        finally:
            uac.close()
        rec = last_record(srv, room)
        assert rec["end_cause"] == "max-duration", rec
    finally:
        stop(srv)


def reply_to(request: str, code: int, reason: str, body: str = "") -> bytes:
    """A response to `request` (its Via, From, To, Call-ID and CSeq copied), optionally with SDP."""
    head = [l for l in request.split("\r\n") if l.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    head = [l + ";tag=uactag" if l.lower().startswith("to:") and ";tag=" not in l else l for l in head]
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(head) + f"\r\n{ctype}Content-Length: {len(body)}\r\n\r\n{body}").encode()


def next_request(uac: Uac, method: str, timeout: float) -> tuple[str, tuple]:
    uac.sock.settimeout(0.3)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            data, peer = uac.sock.recvfrom(65536)
        except socket.timeout:
            continue
        text = data.decode(errors="replace")
        if text.startswith(method + " "):
            return text, peer
    return "", ()


def test_reinvite_glare_gets_491_and_both_sides_retry(server: Server):
    """The gateway refreshes the session (refresher=uas, Session-Expires 90 → re-INVITE after
    about 45 s). While its re-INVITE is unanswered we send ours: 491 Request Pending. We answer
    its re-INVITE with 491 too: it retries within 2 s, our 200 gets its ACK, and ours then
    succeeds. The call is up all along (on hold: no RTP is sent, so no media timeout)."""
    room = f"glare-{secrets.token_hex(3)}"
    uac = Uac(server, room)
    try:
        timer = "Supported: timer\r\nSession-Expires: 90;refresher=uas\r\n"
        uac.request("INVITE", uac.sdp("inactive"), extra=timer)
        rs = uac.responses()
        assert rs and rs[-1][0] == 200, [c for c, _ in rs]
        assert "refresher=uas" in rs[-1][1], rs[-1][1]
        uac.request("ACK", cseq=uac.cseq)
        theirs, peer = next_request(uac, "INVITE", 60)
        assert theirs, "the gateway did not refresh the session"
        uac.request("INVITE", uac.sdp("inactive"))
        rs = uac.responses()
        assert rs and rs[-1][0] == 491, [c for c, _ in rs]
        uac.request("ACK", cseq=uac.cseq)  # ACK of the non-2xx (same transaction, sloppy but harmless)
        uac.sock.sendto(reply_to(theirs, 491, "Request Pending"), peer)
        t0 = time.monotonic()
        again, peer = next_request(uac, "INVITE", 5)
        waited = time.monotonic() - t0
        assert again, "the gateway did not retry its re-INVITE after 491"
        assert waited <= 3.0, f"retried after {waited:.1f} s (0–2 s expected)"
        uac.sock.sendto(reply_to(again, 200, "OK", uac.sdp("inactive")), peer)
        ack, _ = next_request(uac, "ACK", 3)
        assert ack, "no ACK for our 200 to the gateway's re-INVITE"
        uac.request("INVITE", uac.sdp("inactive"))
        rs = uac.responses()
        assert rs and rs[-1][0] == 200, [c for c, _ in rs]
        uac.request("ACK", cseq=uac.cseq)
        uac.request("BYE")
        rs = uac.responses()
        assert rs and rs[-1][0] == 200, [c for c, _ in rs]
    finally:
        uac.close()


def test_capacity_limit_refuses_new_calls_and_frees_places_as_calls_end(server: Server):
    """With calls.max_concurrent = 1 (a second instance), a call in progress fills the gateway:
    a second SIP call gets 503 with Retry-After and a Q.850 Reason, an H.323 call gets
    ReleaseComplete with cause 34 (no circuit/channel available), an OPTIONS ping gets the 503 an
    INVITE would (RFC 3261 §11.2), the call in progress is left alone, and once it ends a new
    call is answered and OPTIONS gets 200 again. /metrics counts the refusals (not the pings)."""
    srv = launch(
        http_port=7950,
        udp_port=7952,
        log_path=ARTIFACTS / "jonction-pytest-capacity.log",
        extra_env={"JONCTION_CALLS__MAX_CONCURRENT": "1"},
    )
    room = f"cap-{secrets.token_hex(3)}"
    try:
        first = answer_call(srv, room)
        try:
            second = Uac(srv, f"{room}-2")
            try:
                second.request("INVITE", second.sdp("sendrecv"))
                rs = second.responses()
                assert rs and rs[-1][0] == 503, [c for c, _ in rs]
                refusal = rs[-1][1]
                assert "\r\nRetry-After: 5\r\n" in refusal, refusal
                assert 'Reason: Q.850;cause=34;text="max_concurrent"' in refusal, refusal
            finally:
                second.close()
            assert options_status(srv, room)[0] == 503
            ping = options_status(srv, room)[1]
            assert "\r\nRetry-After: 5\r\n" in ping and "Allow: " in ping, ping
            assert 'Reason: Q.850;cause=34;text="max_concurrent"' in ping, ping
            caller = start_caller(srv, f"{room}-3", "tunnel")
            report = report_of(caller, 30)
            assert not report.get("connected"), report
            assert report.get("released_by") == "peer" and report.get("cause") == 34, report
            # The call in progress did not notice: it still answers a re-INVITE.
            first.request("INVITE", first.sdp("sendrecv"))
            rs = first.responses()
            assert rs and rs[-1][0] == 200, [c for c, _ in rs]
            first.request("ACK", cseq=first.cseq)
            first.request("BYE")
            assert first.responses()[-1][0] == 200
        finally:
            first.close()
        assert last_record(srv, room)["end_cause"] == "caller-bye"
        # Its place is free again.
        deadline = time.monotonic() + 5
        while scrape(srv).get('jonction_calls_active{protocol="sip"}', 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert options_status(srv, room)[0] == 200
        third = answer_call(srv, f"{room}-4")
        third.request("BYE")
        third.close()
        m = scrape(srv)
        assert m.get('jonction_calls_refused_total{limit="max_concurrent"}') == 2, m
        assert m.get('jonction_calls_refused_total{limit="max_per_second"}') == 0, m
        assert m.get('jonction_sip_invite_final_responses_total{code="503"}') == 1, m
    finally:
        stop(srv)


def options_status(srv: Server, room: str) -> tuple[int, str]:
    """Sends an OPTIONS ping outside any dialog; the final status and response."""
    uac = Uac(srv, room)
    try:
        uac.request("OPTIONS")
        rs = uac.responses()
        assert rs, "no response to the OPTIONS"
        return rs[-1]
    finally:
        uac.close()


def invite_status(srv: Server, room: str) -> tuple[int, str]:
    """Sends an INVITE; the final status and response (an answered call is hung up at once)."""
    uac = Uac(srv, room)
    try:
        uac.request("INVITE", uac.sdp("sendrecv"))
        rs = uac.responses()
        assert rs, "no response to the INVITE"
        code, text = rs[-1]
        if code == 200:
            uac.request("ACK", cseq=uac.cseq)
            uac.request("BYE")
            uac.responses()
        return code, text
    finally:
        uac.close()


def test_a_busy_room_server_turns_new_calls_away_until_it_recovers(server: Server):
    """Overload protection (calls.room_server_busy_limit = 0.002 here, a second instance): while
    two room participants exchange audio the embedded room server works more than 0.2 % of the
    time, so a new call gets 503 with Retry-After and Reason Q.850 cause 42 (switching equipment
    congestion); once they leave, calls are answered again."""
    srv = launch(
        http_port=7954,
        udp_port=7956,
        log_path=ARTIFACTS / "jonction-pytest-overload.log",
        extra_env={"JONCTION_CALLS__ROOM_SERVER_BUSY_LIMIT": "0.002"},
    )
    room = f"busy-{secrets.token_hex(3)}"

    def poll(want: int, timeout: float) -> tuple[int, str]:
        end = time.monotonic() + timeout
        code, text = invite_status(srv, f"{room}-call")
        while code != want and time.monotonic() < end:
            time.sleep(0.3)
            code, text = invite_status(srv, f"{room}-call")
        return code, text

    async def main():
        async with Rooms(srv) as rooms:
            speaker = await rooms.connect(room, "speaker")
            await rooms.connect(room, "listener")
            sine = SinePublisher(speaker)
            await sine.start()
            try:
                code, text = await asyncio.to_thread(poll, 503, 15)
                assert code == 503, f"still answered ({code}) while the room server is busy"
                assert "\r\nRetry-After: 5\r\n" in text, text
                assert 'Reason: Q.850;cause=42;text="room_server_busy"' in text, text
            finally:
                await sine.stop()

    try:
        run(main())
        code, _ = poll(200, 15)
        assert code == 200, f"the room server is idle again but calls still get {code}"
        m = scrape(srv)
        assert m.get('jonction_calls_refused_total{limit="room_server_busy"}', 0) >= 1, m
    finally:
        stop(srv)
