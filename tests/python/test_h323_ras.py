"""H.225.0 RAS both ways, with pycrate (an independent ASN.1 stack) as the other side:
- a room system registers to jonction's gatekeeper mode (GRQ, RRQ, lightweight RRQ), asks
  admission for a call (ARQ → ACF naming jonction's call-signalling address), places it with
  the H.323 test caller, disengages (DRQ) and unregisters (URQ);
- jonction registers to a test gatekeeper, keeps the registration alive with lightweight RRQs
  before its timeToLive runs out, asks admission (ARQ, answerCall) for a call it receives and
  disengages (DRQ) after it; a call the gatekeeper ends (its DRQ) gets a DCF and is released;
  jonction unregisters (URQ) when it stops.
What the gatekeeper mode sends is also checked with tshark (no malformed packet)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Optional

import pytest

from conftest import ARTIFACTS, Capture, Server, assert_clean_exit, launch, stop
from test_h323 import CLIENT_IP, records_for, report_of, start_caller, tshark_malformed, tshark_protocols

try:
    from pycrate_asn1dir import H225

    RAS = H225.H323_MESSAGES.RasMessage
except ImportError:  # pragma: no cover - the test venv has it
    RAS = None

PROTOCOL = (0, 0, 8, 2250, 0, 7)
VENDOR = {"vendor": {"t35CountryCode": 181, "t35Extension": 0, "manufacturerCode": 0}}
TERMINAL = {"terminal": {}, "mc": False, "undefinedNode": False}


def transport(host: str, port: int) -> tuple:
    return ("ipAddress", {"ip": socket.inet_aton(host), "port": port})


def address_of(ta: tuple) -> tuple[str, int]:
    assert ta[0] == "ipAddress", ta
    return socket.inet_ntoa(ta[1]["ip"]), ta[1]["port"]


def encode(msg: tuple) -> bytes:
    RAS.set_val(msg)
    return RAS.to_aper()


def decode(data: bytes) -> tuple[str, dict]:
    RAS.from_aper(data)
    return RAS.get_val()


class RasPeer:
    """A UDP RAS socket speaking pycrate-encoded messages."""

    def __init__(self, host: str = CLIENT_IP, port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.addr = self.sock.getsockname()
        self.seq = 100

    def request(self, to: tuple[str, int], kind: str, body: dict, timeout: float = 3.0) -> tuple[str, dict]:
        """Sends a request (its requestSeqNum filled in) and returns the answer with that number."""
        self.seq += 1
        body = dict(body, requestSeqNum=self.seq)
        self.sock.sendto(encode((kind, body)), to)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data, _ = self.sock.recvfrom(4096)
            name, val = decode(data)
            if val.get("requestSeqNum") == self.seq:
                return name, val
        raise AssertionError(f"no answer to {kind}")

    def recv(self, timeout: float) -> tuple[Optional[tuple[str, dict]], Optional[tuple[str, int]]]:
        self.sock.settimeout(timeout)
        try:
            data, frm = self.sock.recvfrom(4096)
        except socket.timeout:
            return None, None
        return decode(data), frm

    def close(self) -> None:
        self.sock.close()


def test_room_system_registers_to_the_gatekeeper_and_places_an_admitted_call(server: Server):
    assert RAS is not None, "pycrate is not installed"
    gk = server.ras_addr
    ep = RasPeer()
    csa = (CLIENT_IP, 1820)
    pcap = ARTIFACTS / "h323-ras-gatekeeper.pcap"
    cap = Capture(pcap, f"udp port {gk[1]}", ARTIFACTS / "h323-ras-tshark.log")
    try:
        name, gcf = ep.request(gk, "gatekeeperRequest", {
            "protocolIdentifier": PROTOCOL, "rasAddress": transport(*ep.addr), "endpointType": TERMINAL,
            "endpointAlias": [("h323-ID", "ras-room")],
        })
        assert name == "gatekeeperConfirm", (name, gcf)
        assert address_of(gcf["rasAddress"]) == gk, gcf
        gk_id = gcf.get("gatekeeperIdentifier")
        assert gk_id, gcf

        rrq = {
            "protocolIdentifier": PROTOCOL, "discoveryComplete": True,
            "callSignalAddress": [transport(*csa)], "rasAddress": [transport(*ep.addr)],
            "terminalType": TERMINAL, "terminalAlias": [("h323-ID", "ras-room"), ("dialledDigits", "7201")],
            "gatekeeperIdentifier": gk_id, "endpointVendor": VENDOR, "timeToLive": 60, "keepAlive": False,
            "willSupplyUUIEs": False, "maintainConnection": False,
        }
        name, rcf = ep.request(gk, "registrationRequest", rrq)
        assert name == "registrationConfirm", (name, rcf)
        ep_id = rcf["endpointIdentifier"]
        assert 0 < rcf.get("timeToLive", 0) <= 60, rcf
        assert ("h323-ID", "ras-room") in rcf.get("terminalAlias", []), rcf

        # Lightweight RRQ: keepAlive with the identifiers, no aliases.
        light = {k: v for k, v in rrq.items() if k != "terminalAlias"}
        light.update(keepAlive=True, endpointIdentifier=ep_id)
        name, val = ep.request(gk, "registrationRequest", light)
        assert name == "registrationConfirm", (name, val)

        room = f"ras-{int(time.time()) % 100000}"
        # ARQ and DRQ carry root components only: pycrate 0.8.1 mis-encodes their extension
        # additions (open types of length 0, which Wireshark also flags as malformed).
        name, acf = ep.request(gk, "admissionRequest", {
            "callType": ("pointToPoint", 0), "endpointIdentifier": ep_id,
            "destinationInfo": [("h323-ID", room)], "srcInfo": [("h323-ID", "ras-room")],
            "bandWidth": 1280, "callReferenceValue": 7, "conferenceID": b"\x22" * 16, "activeMC": False,
            "answerCall": False,
        })
        assert name == "admissionConfirm", (name, acf)
        dest = address_of(acf["destCallSignalAddress"])
        assert dest == server.h323_addr, acf

        # The admitted call, to the address the gatekeeper gave.
        caller = start_caller(server, room, "tunnel", "--seconds", "3")
        report = report_of(caller, 40)
        assert report.get("connected") and report.get("released_by") == "local", report
        assert len(records_for(server, room)) == 1

        name, val = ep.request(gk, "disengageRequest", {
            "endpointIdentifier": ep_id, "conferenceID": b"\x22" * 16, "callReferenceValue": 7,
            "disengageReason": ("normalDrop", 0),
        })
        assert name == "disengageConfirm", (name, val)

        name, val = ep.request(gk, "unregistrationRequest", {
            "callSignalAddress": [transport(*csa)], "endpointIdentifier": ep_id,
        })
        assert name == "unregistrationConfirm", (name, val)

        # Unregistered: no more admissions.
        name, val = ep.request(gk, "admissionRequest", {
            "callType": ("pointToPoint", 0), "endpointIdentifier": ep_id,
            "destinationInfo": [("h323-ID", room)], "srcInfo": [("h323-ID", "ras-room")],
            "bandWidth": 1280, "callReferenceValue": 8,
            "conferenceID": b"\x23" * 16, "activeMC": False, "answerCall": False,
        })
        assert name == "admissionReject", (name, val)
    finally:
        ep.close()
        cap.stop()
    # What the gatekeeper mode sent (and pycrate's requests) decodes in tshark, port 1719.
    bad = tshark_malformed(pcap, [])
    sent = [l for l in bad if l]
    assert not sent, "tshark finds malformed RAS packets:\n" + "\n".join(sent[:20])
    assert tshark_protocols(pcap, []).count("h225") >= 14, "tshark did not dissect the RAS messages"


class PycrateGatekeeper(threading.Thread):
    """Answers jonction's GRQ, RRQ (granting `ttl` seconds) and URQ; records what came."""

    def __init__(self, ttl: int):
        super().__init__(daemon=True)
        self.peer = RasPeer(CLIENT_IP, 0)
        self.addr = self.peer.addr
        self.ttl = ttl
        self.log: list[tuple[float, str, dict]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            got, frm = self.peer.recv(0.2)
            if got is None:
                continue
            name, val = got
            self.log.append((time.monotonic(), name, val))
            seq = val.get("requestSeqNum", 0)
            if name == "gatekeeperRequest":
                answer: Any = ("gatekeeperConfirm", {
                    "requestSeqNum": seq, "protocolIdentifier": PROTOCOL, "gatekeeperIdentifier": "test-gk",
                    "rasAddress": transport(*self.addr),
                })
            elif name == "registrationRequest":
                aliases = val.get("terminalAlias", [("h323-ID", "x")])
                answer = ("registrationConfirm", {
                    "requestSeqNum": seq, "protocolIdentifier": PROTOCOL,
                    "callSignalAddress": val.get("callSignalAddress", []), "terminalAlias": aliases,
                    "gatekeeperIdentifier": "test-gk", "endpointIdentifier": "ep-jonction",
                    "timeToLive": self.ttl, "willRespondToIRR": False, "maintainConnection": False,
                })
            elif name == "unregistrationRequest":
                answer = ("unregistrationConfirm", {"requestSeqNum": seq})
            elif name == "admissionRequest":
                answer = ("admissionConfirm", {
                    "requestSeqNum": seq, "bandWidth": val.get("bandWidth", 1280), "callModel": ("direct", 0),
                    "destCallSignalAddress": val.get("destCallSignalAddress", transport(*self.addr)),
                })
            elif name == "disengageRequest":
                answer = ("disengageConfirm", {"requestSeqNum": seq})
            else:
                continue
            self.peer.sock.sendto(encode(answer), frm)

    def stop(self) -> None:
        self.running = False
        self.join(5)
        self.peer.close()


def test_gateway_registers_keeps_alive_and_unregisters():
    assert RAS is not None, "pycrate is not installed"
    gk = PycrateGatekeeper(ttl=6)
    gk.start()
    srv = launch(
        http_port=7946, udp_port=7948, log_path=ARTIFACTS / "jonction-pytest-ras.log",
        extra_env={
            "JONCTION_H323__GATEKEEPER": f"{gk.addr[0]}:{gk.addr[1]}",
            "JONCTION_H323__H323_ID": "jonction-test",
            "JONCTION_H323__E164": "7300",
        },
    )
    try:
        deadline = time.monotonic() + 15
        lightweight = []
        while time.monotonic() < deadline and not lightweight:
            lightweight = [v for (_t, n, v) in gk.log if n == "registrationRequest" and v.get("keepAlive")]
            time.sleep(0.2)
        full = [(t, v) for (t, n, v) in gk.log if n == "registrationRequest" and not v.get("keepAlive")]
        assert full, [n for (_t, n, _v) in gk.log]
        aliases = full[0][1].get("terminalAlias", [])
        assert ("h323-ID", "jonction-test") in aliases and ("dialledDigits", "7300") in aliases, aliases
        assert lightweight, "no lightweight RRQ within the 6 s timeToLive"
        assert lightweight[0].get("endpointIdentifier") == "ep-jonction", lightweight[0]
        first_light = [t for (t, n, v) in gk.log if n == "registrationRequest" and v.get("keepAlive")][0]
        assert first_light - full[0][0] < 6.0, "the keep-alive came after the registration expired"

        # A call to the registered gateway: ARQ (answerCall) before it goes on, DRQ after.
        room = f"ras-in-{int(time.time()) % 100000}"
        report = report_of(start_caller(srv, room, "tunnel", "--seconds", "2"), 40)
        assert report.get("connected") and report.get("released_by") == "local", report
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(n == "disengageRequest" for (_t, n, _v) in gk.log):
            time.sleep(0.1)
        arqs = [v for (_t, n, v) in gk.log if n == "admissionRequest"]
        assert len(arqs) == 1 and arqs[0].get("answerCall") is True, arqs
        drqs = [v for (_t, n, v) in gk.log if n == "disengageRequest"]
        assert len(drqs) == 1 and drqs[0].get("endpointIdentifier") == "ep-jonction", drqs

        # The gatekeeper ends the next call (its DRQ): DCF, and the call is released.
        room = f"ras-drq-{int(time.time()) % 100000}"
        caller = start_caller(srv, room, "tunnel", "--wait-release", "20")
        deadline = time.monotonic() + 15
        arqs = []
        while time.monotonic() < deadline and len(arqs) < 2:
            arqs = [v for (_t, n, v) in gk.log if n == "admissionRequest"]
            time.sleep(0.1)
        assert len(arqs) == 2, arqs
        assert not records_for(srv, room, 0.3), "the call ended before the gatekeeper's DRQ"
        time.sleep(2)  # the call is up
        ras_addr = address_of(full[0][1]["rasAddress"][0])
        # Root components only (pycrate 0.8.1 mis-encodes the extension additions).
        gk.peer.sock.sendto(encode(("disengageRequest", {
            "requestSeqNum": 4242, "endpointIdentifier": "ep-jonction",
            "conferenceID": arqs[1]["conferenceID"], "callReferenceValue": arqs[1]["callReferenceValue"],
            "disengageReason": ("forcedDrop", 0),
        })), ras_addr)
        report = report_of(caller, 40)
        assert report.get("connected") and report.get("released_by") == "peer", report
        assert report.get("cause") == 16, report
        deadline = time.monotonic() + 5
        dcf = []
        while time.monotonic() < deadline and not dcf:
            dcf = [v for (_t, n, v) in gk.log if n == "disengageConfirm" and v.get("requestSeqNum") == 4242]
            time.sleep(0.1)
        assert dcf, "no DisengageConfirm for the gatekeeper's DRQ"
        drqs = [v for (_t, n, v) in gk.log if n == "disengageRequest"]
        assert len(drqs) == 1, f"the gateway sent a DRQ for a call the gatekeeper ended: {drqs}"
        recs = records_for(srv, room)
        assert recs and recs[0]["end_cause"] == "disengaged", recs
    finally:
        exited, status = stop(srv)
        time.sleep(0.5)
        gk.stop()
    assert_clean_exit(srv, exited, status)
    assert any(n == "unregistrationRequest" for (_t, n, _v) in gk.log), [n for (_t, n, _v) in gk.log]
