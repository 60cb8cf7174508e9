"""Session fixtures for the end-to-end tests against jonction's embedded room server.

The server binary (``$JONCTION_BIN``, default ``<repo>/target/debug/jonction``) is started once per
session, listening on 10.200.0.1:7880 (HTTP/WebSocket) and UDP 7882 (media). Those addresses only
exist inside the network namespace made by ``integration/netns.sh``:

    integration/netns.sh target/venv/bin/python -m pytest -q tests/python

The server's stderr goes to ``target/artifacts/jonction-pytest.log``. At the end of the session the
server is sent SIGTERM and must exit with status 0 within 10 s, and its log must not contain a panic.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("JONCTION_BIN", REPO / "target" / "debug" / "jonction"))
HOST = os.environ.get("JONCTION_TEST_HOST", "10.200.0.1")
HTTP_PORT = int(os.environ.get("JONCTION_TEST_HTTP_PORT", "7880"))
UDP_PORT = int(os.environ.get("JONCTION_TEST_UDP_PORT", "7882"))
# Not the development defaults (devkey/secret): the server refuses those on a non-loopback address
# unless in development mode, and the tests should run the way a deployment does.
API_KEY = "pytestkey"
API_SECRET = "jonction-pytest-secret-5f0c1e2d9a"
ARTIFACTS = REPO / "target" / "artifacts"
LOG_PATH = ARTIFACTS / "jonction-pytest.log"

READY_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
TOKEN_CLI_TIMEOUT_S = 10.0

log = logging.getLogger("jonction-tests")


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "JONCTION_HTTP__LISTEN": f"{HOST}:{HTTP_PORT}",
            "JONCTION_ROOMS__UDP_PORT": str(UDP_PORT),
            "JONCTION_LIVEKIT__API_KEY": API_KEY,
            "JONCTION_LIVEKIT__API_SECRET": API_SECRET,
            "JONCTION_LOG__LEVEL": os.environ.get("JONCTION_TEST_LOG_LEVEL", "debug"),
            # The shipped example dialplan (room URIs, the PIN reception number, rejects).
            "JONCTION_DIALPLAN__DIR": str(REPO / "dialplans"),
            # No load-based refusals: a debug build is many times slower than a release one and
            # shares the machine with browsers, so its load says nothing of capacity (the
            # capacity tests set their own limits).
            "JONCTION_CALLS__ROOM_SERVER_BUSY_LIMIT": "0",
            "JONCTION_CALLS__MAX_SCHEDULING_DELAY": "0s",
        }
    )
    return env


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when pytest dies, so no server outlives the run."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def _http_status(url: str, timeout: float = 2.0) -> Optional[int]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def _log_tail(path: Path = LOG_PATH, n: int = 40, width: int = 400) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(line if len(line) <= width else line[:width] + " [...]" for line in lines[-n:])


def _check_namespace() -> None:
    """The test addresses exist only inside integration/netns.sh; say so instead of timing out."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, 0))
        except OSError as e:
            pytest.exit(
                f"{HOST} is not a local address ({e}); run the suite inside the test network "
                "namespace: integration/netns.sh target/venv/bin/python -m pytest -q tests/python",
                returncode=3,
            )


@dataclasses.dataclass
class Server:
    proc: subprocess.Popen
    host: str
    http_port: int
    udp_port: int
    log_path: Path

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.http_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def sip_addr(self) -> tuple[str, int]:
        return (self.host, sip_port_for(self.http_port))

    @property
    def h323_addr(self) -> tuple[str, int]:
        return (self.host, h323_port_for(self.http_port))

    @property
    def ras_addr(self) -> tuple[str, int]:
        return (self.host, ras_port_for(self.http_port))

    @property
    def call_records(self) -> Path:
        return call_records_for(self.http_port)

    def token(self, room: str, identity: str, name: Optional[str] = None, ttl: str = "1h") -> str:
        return mint_token(room, identity, name=name, ttl=ttl)

    def mark(self, text: str) -> None:
        """Writes a marker line into the server log (opened O_APPEND, so lines stay whole)."""
        with open(self.log_path, "a") as f:
            f.write(f"##### pytest: {text}\n")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def mint_token(room: str, identity: str, name: Optional[str] = None, ttl: str = "1h") -> str:
    """A LiveKit access token from the CLI: `jonction token --room R --identity I [--name N] [--ttl T]`."""
    cmd = [str(BIN), "token", "--room", room, "--identity", identity, "--ttl", ttl]
    if name is not None:
        cmd += ["--name", name]
    res = subprocess.run(
        cmd,
        env=_server_env(),
        capture_output=True,
        text=True,
        timeout=TOKEN_CLI_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()}"
    token = res.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token, f"not a JWT on stdout: {res.stdout!r}"
    return token


@pytest.fixture(scope="session", autouse=True)
def _sdk_logging():
    """The SDK forwards its Rust/libwebrtc logs to the `livekit` logger; pytest shows them on failure.
    LIVEKIT_RTC_DEBUG=1 (read by the SDK itself) adds its debug logs."""
    level = logging.DEBUG if os.environ.get("LIVEKIT_RTC_DEBUG", "") in ("1", "true") else logging.INFO
    logging.getLogger("livekit").setLevel(level)
    yield


def sip_port_for(http_port: int) -> int:
    """The SIP port of an instance: 5060 for the main one (HTTP 7880)."""
    return 5060 + (http_port - HTTP_PORT)


def h323_port_for(http_port: int) -> int:
    """The H.323 call-signalling port of an instance: 1720 for the main one (HTTP 7880)."""
    return 1720 + (http_port - HTTP_PORT)


def ras_port_for(http_port: int) -> int:
    """The RAS (UDP) port of an instance: 1719 for the main one, counting down."""
    return 1719 - (http_port - HTTP_PORT)


def call_records_for(http_port: int) -> Path:
    """Where an instance appends its call records."""
    return ARTIFACTS / f"calls-{http_port}.jsonl"


def launch(
    http_port: int = HTTP_PORT,
    udp_port: int = UDP_PORT,
    log_path: Path = LOG_PATH,
    extra_env: Optional[dict[str, str]] = None,
) -> Server:
    """Starts `jonction run` on HOST:http_port (media on udp_port) and waits for /readyz 200;
    `extra_env` adds or overrides configuration variables."""
    _check_namespace()
    if not BIN.is_file() or not os.access(BIN, os.X_OK):
        pytest.fail(f"jonction binary not found at {BIN} (cargo build, or set JONCTION_BIN)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"")
    # Opened O_APPEND, as Server.mark() does, so its lines and the server's do not overwrite.
    logf = open(log_path, "ab")
    env = _server_env()
    env["JONCTION_HTTP__LISTEN"] = f"{HOST}:{http_port}"
    env["JONCTION_ROOMS__UDP_PORT"] = str(udp_port)
    # SIP on the same host, 5060 for the main instance; private addresses are allowed in SDP
    # because the test network is 10.200.0.0/24.
    env["JONCTION_SIP__LISTEN"] = f"{HOST}:{sip_port_for(http_port)}"
    env["JONCTION_SIP__ALLOW_PRIVATE_ADDRESS"] = "true"
    env["JONCTION_H323__LISTEN"] = f"{HOST}:{h323_port_for(http_port)}"
    env["JONCTION_H323__RAS_LISTEN"] = f"{HOST}:{ras_port_for(http_port)}"
    env["JONCTION_H323__GATEKEEPER_MODE"] = "true"
    env["JONCTION_SIP__CALL_RECORDS"] = str(call_records_for(http_port))
    call_records_for(http_port).unlink(missing_ok=True)
    env.update(extra_env or {})
    try:
        proc = subprocess.Popen(
            [str(BIN), "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            preexec_fn=_die_with_parent,
        )
    finally:
        logf.close()  # the child has its own descriptor
    srv = Server(proc, HOST, http_port, udp_port, log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jonction exited with {proc.returncode} before /readyz; log tail:\n{_log_tail(log_path)}")
        status = _http_status(f"{srv.http_url}/readyz", timeout=1.0)
        if status == 200:
            log.info("jonction ready at %s (pid %d)", srv.http_url, proc.pid)
            return srv
        time.sleep(0.2)
    stop(srv)
    pytest.fail(f"/readyz not 200 within {READY_TIMEOUT_S:.0f} s (last status {status}); log tail:\n{_log_tail(log_path)}")


def stop(srv: Server) -> tuple[bool, Optional[int]]:
    """SIGTERM, then wait up to SHUTDOWN_TIMEOUT_S; kills it if it hangs. (exited in time, status)."""
    proc = srv.proc
    if proc.poll() is not None:
        return True, proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        return True, proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        return False, proc.returncode


def assert_clean_exit(srv: Server, exited_in_time: bool, status: Optional[int]) -> None:
    """Graceful shutdown: exit status 0 within the bound, and no panic in the log."""
    tail = _log_tail(srv.log_path)
    assert exited_in_time, f"jonction did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s of SIGTERM; log tail:\n{tail}"
    assert status == 0, f"jonction exited with {status} after SIGTERM; log tail:\n{tail}"
    panics = [line for line in srv.log_text().splitlines() if "panicked" in line]
    assert not panics, "jonction panicked:\n" + "\n".join(panics[:20])


@pytest.fixture(scope="session")
def server():
    srv = launch()
    try:
        yield srv
    finally:
        exited_in_time, status = stop(srv)
    assert_clean_exit(srv, exited_in_time, status)


@pytest.fixture(autouse=True)
def _mark_test_in_server_log(request):
    """Puts the test's name into the server log, to find its lines when diagnosing."""
    srv = request.getfixturevalue("server") if "server" in request.fixturenames else None
    if srv is not None:
        srv.mark(f"start {request.node.nodeid}")
    yield
    if srv is not None:
        srv.mark(f"end {request.node.nodeid}")


class Capture:
    """tshark on every interface with a capture filter `bpf`, writing `pcap`; started (and
    waited for) on creation, stopped with `stop()` (SIGINT: tshark flushes the file)."""

    def __init__(self, pcap: Path, bpf: str, log: Path):
        tshark = shutil.which("tshark")
        if tshark is None:
            pytest.fail("tshark is not installed")
        self.proc = subprocess.Popen(
            [tshark, "-q", "-i", "any", "-w", str(pcap), "-f", bpf],
            stdout=subprocess.DEVNULL, stderr=log.open("wb"),
        )
        # tshark prints "Capturing on" before dumpcap has attached the filter, and "Capture
        # started." once it has: packets sent in between would be missed.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"Capture started" not in log.read_bytes():
            if self.proc.poll() is not None:
                pytest.fail(f"tshark exited: {log.read_text(errors='replace')}")
            time.sleep(0.1)
        time.sleep(0.2)

    def stop(self) -> None:
        time.sleep(1)  # the last packets reach the capture
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
