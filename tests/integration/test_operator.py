"""The operator's commands and web page on the session's real platform and broker.

The scripts run as subprocesses, as an operator runs them, pointed at the session's broker and
PKI with --port/--certs (ven_control.sh itself targets the system under VEN_ROOT). The web page is
loaded in headless Chromium (Debian's package; run_tests.sh installs it) through the platform's
web service.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ven_common.contract import registration_body

from tests.support.broker import LocalBroker, free_port
from tests.support.cloud import CloudBackend, ShadowService
from tests.support.device import PanelDevice
from tests.support.system import REPO, Platform, settle, wait_until
from tests.support.ven_checks import restore_idle

pytestmark = pytest.mark.platform

THING = "volttron_thing"
ARTIFACTS = REPO / "tests" / "artifacts"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IOT_ENDPOINT", "BACKEND_URL", "VOLTTRON_HOME")}
    env.update(extra)
    return env


def run_script(name: str, *args: str, broker: LocalBroker | None = None, certs: Path | None = None,
               env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(REPO / "scripts" / name), *args]
    if broker is not None:
        cmd += ["--port", str(broker.port)]
    if certs is not None:
        cmd += ["--certs", str(certs)]
    return subprocess.run(cmd, check=False, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    err = result.stderr.strip()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:") or "error:" in line]
    assert lines, f"no error line in stderr: {err!r}"
    return lines[-1]


def _cid() -> str:
    return f"op-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def idle(platform: Platform) -> Platform:
    restore_idle(platform)  # no event, and every circuit back on (a restore may still be pending)
    return platform


# -- send-event / restore ------------------------------------------------------------------

def test_send_event_and_restore_print_the_ack(idle: Platform, broker: LocalBroker, certs: Path) -> None:
    event_id = f"evt-{_cid()}"
    sent = run_script("ven_cmd_publish.py", "--ven-id", THING, "--op", "event", "--shed-kw", "1.0", "--duration",
                      "120", "--event-id", event_id, "--wait-ack", broker=broker, certs=certs)
    assert sent.returncode == 0, sent.stderr
    ack = json.loads(sent.stdout)
    assert ack["op"] == "event" and ack["status"] == "accepted" and ack["event_id"] == event_id
    assert ack["requested_shed_kw"] == 1.0 and isinstance(ack["actual_shed_kw"], float)
    assert idle.rpc("ven.agent", "get_status")["active_event"]["event_id"] == event_id

    restored = run_script("ven_cmd_publish.py", "--op", "restore", "--wait-ack", broker=broker, certs=certs)
    assert restored.returncode == 0, restored.stderr
    rack = json.loads(restored.stdout)
    assert rack["op"] == "restore" and rack["status"] == "accepted" and rack["correlationId"].startswith("restore-")

    # A finished event cannot be modified: the VEN rejects, the script prints the ack and exits 1.
    again = run_script("ven_cmd_publish.py", "--op", "event", "--shed-kw", "1.0", "--duration", "60", "--event-id",
                       event_id, "--wait-ack", broker=broker, certs=certs)
    assert again.returncode == 1
    assert json.loads(again.stdout)["status"] == "rejected"
    assert "rejected" in _one_line_error(again)


def test_publish_without_wait_prints_the_command(idle: Platform, broker: LocalBroker, certs: Path) -> None:
    cid = _cid()
    result = run_script("ven_cmd_publish.py", "--op", "status", "--correlation-id", cid, "--no-wait", broker=broker,
                        certs=certs)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"op": "status", "correlationId": cid, "venId": THING}


def test_the_seed_publisher_prints_the_vens_ack(idle: Platform, broker: LocalBroker, certs: Path) -> None:
    """As the guide prints it (no --wait-ack): the user sees whether the VEN answered, not only what was sent."""
    cid = _cid()
    result = run_script("ven_cmd_publish.py", "--ven-id", THING, "--op", "status", "--correlation-id", cid,
                        broker=broker, certs=certs)
    assert result.returncode == 0, result.stderr
    ack = json.loads(result.stdout)
    assert ack["correlationId"] == cid and ack["status"] == "accepted" and "status_snapshot" in ack, ack
    assert "the VEN answered accepted" in result.stderr


def test_the_seed_publisher_says_in_one_line_that_no_ack_came(broker: LocalBroker, certs: Path) -> None:
    """A thing no VEN runs as: nothing answers, and the script says so in one line (exit 4)."""
    result = run_script("ven_cmd_publish.py", "--ven-id", "other_thing", "--op", "status", "--timeout", "2",
                        broker=broker, certs=certs)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "no ack from VEN 'other_thing' within 2 s" in _one_line_error(result)


def test_local_flag_goes_over_vip(idle: Platform) -> None:
    env = dict(idle.env)
    env.pop("IOT_ENDPOINT", None)
    result = run_script("ven_cmd_publish.py", "--op", "event", "--shed-kw", "1.0", "--duration", "60", "--local",
                        "--compact", env=env)
    assert result.returncode == 0, result.stderr
    ack = json.loads(result.stdout)
    assert ack["status"] == "accepted" and ack["op"] == "event"
    result = run_script("ven_cmd_publish.py", "--op", "restore", "--local", env=env)
    assert result.returncode == 0 and json.loads(result.stdout)["op"] == "restore"


def test_local_flag_without_platform_is_one_line(tmp_path: Path) -> None:
    result = run_script("ven_cmd_publish.py", "--op", "restore", "--local", env=_env(VOLTTRON_HOME=str(tmp_path)))
    assert result.returncode == 1
    assert "platform is not running" in _one_line_error(result)


# -- shadow ----------------------------------------------------------------------------

def test_shadow_prints_the_seed_shape(idle: Platform, broker: LocalBroker, certs: Path) -> None:
    result = run_script("ven_shadow.py", broker=broker, certs=certs)
    assert result.returncode == 0, result.stderr
    shadow = json.loads(result.stdout)
    assert set(shadow) == {"power_kw", "shed_kw", "active_event", "circuits"}
    assert shadow["active_event"] is None and shadow["power_kw"] > 0
    names = [c["name"] for c in shadow["circuits"]]
    assert {"HVAC", "Heater", "Lighting"} <= set(names)
    assert all(set(c) == {"name", "enabled", "current_kw"} for c in shadow["circuits"])

    full = json.loads(run_script("ven_shadow.py", "--full", broker=broker, certs=certs).stdout)
    assert "baseline_kw" in full and all("priority" in c and "critical" in c for c in full["circuits"])


# -- telemetry -------------------------------------------------------------------------

def test_telemetry_count_stops_after_n_readings(idle: Platform, broker: LocalBroker, certs: Path) -> None:
    result = run_script("ven_telemetry_listen.py", "--count", "3", "--json", broker=broker, certs=certs, timeout=90)
    assert result.returncode == 0, result.stderr
    readings = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(readings) == 3
    assert all(r["venId"] == THING and isinstance(r["power_kw"], float) for r in readings)

    human = run_script("ven_telemetry_listen.py", "--count", "1", broker=broker, certs=certs, timeout=90)
    assert human.returncode == 0 and THING in human.stdout and "kW" in human.stdout


def test_telemetry_unrolls_batches(broker: LocalBroker, certs: Path) -> None:
    """A batched message from the bridge becomes one line per reading."""
    from tests.support.backend import Backend

    proc = subprocess.Popen([sys.executable, str(REPO / "scripts/ven_telemetry_listen.py"), "--ven-id", "batch_thing",
                             "--count", "2", "--json", "--port", str(broker.port), "--certs", str(certs)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sender = Backend(certs, broker.port).start()
    try:
        batch = {"batch": True, "venId": "batch_thing", "readings": [{"ts": 1.0, "power_kw": 1.5}, {"ts": 2.0, "power_kw": 2.5}]}
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            sender.publish("volttron/metering", batch)  # until the listener's subscription is in place
            time.sleep(0.5)
        out, err = proc.communicate(timeout=10)
    finally:
        sender.stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["power_kw"] for r in lines] == [1.5, 2.5] and all(r["venId"] == "batch_thing" for r in lines)


# -- errors ----------------------------------------------------------------------------

def test_unreachable_broker_exits_4_with_one_line(certs: Path) -> None:
    port = free_port()
    for script, args in [("ven_cmd_publish.py", ["--op", "restore", "--wait-ack"]), ("ven_shadow.py", []),
                         ("ven_telemetry_listen.py", ["--count", "1"])]:
        result = run_script(script, *args, "--port", str(port), certs=certs)
        assert result.returncode == 4, (script, result.stderr)
        assert "unreachable" in _one_line_error(result)


def test_missing_certificate_names_the_file(tmp_path: Path, broker: LocalBroker) -> None:
    result = run_script("ven_shadow.py", broker=broker, certs=tmp_path)
    assert result.returncode == 1
    line = _one_line_error(result)
    assert str(tmp_path) in line and "ven_control.sh start" in line


def test_no_ack_in_time_exits_4(broker: LocalBroker, certs: Path) -> None:
    """Nobody serves this thing: the command reaches the broker but no ack comes back."""
    result = run_script("ven_cmd_publish.py", "--ven-id", "nobody_home", "--op", "restore", "--wait-ack", "--timeout",
                        "1.5", broker=broker, certs=certs)
    assert result.returncode == 4
    assert "no ack" in _one_line_error(result)


@pytest.mark.parametrize("args", [
    ["ven_cmd_publish.py", "--op", "event", "--shed-kw", "1"],
    ["ven_cmd_publish.py", "--op", "event", "--shed-kw", "-1", "--duration", "60"],
    ["ven_cmd_publish.py", "--op", "launch"],
    ["ven_telemetry_listen.py", "--count", "0"],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run_script(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("script", ["ven_cmd_publish.py", "ven_shadow.py", "ven_telemetry_listen.py", "register_ven.py"])
def test_every_script_has_help(script: str) -> None:
    result = run_script(script, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


# -- register ----------------------------------------------------------------------------

class _StubBackend(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, Any]]] = []
    status = 201

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.received.append((self.path, json.loads(self.rfile.read(length) or b"null")))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": 1}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def stub_backend() -> Iterator[tuple[str, type[_StubBackend]]]:
    handler = type("Stub", (_StubBackend,), {"received": [], "status": 201})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_register_posts_the_seed_body(stub_backend: tuple[str, type[_StubBackend]]) -> None:
    url, handler = stub_backend
    result = run_script("register_ven.py", env=_env(BACKEND_URL=url))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] is True
    assert handler.received == [("/api/vens/", registration_body(THING))]

    handler.status = 409  # already registered counts as registered
    assert run_script("register_ven.py", "--backend-url", url).returncode == 0
    handler.status = 400
    refused = run_script("register_ven.py", "--backend-url", url)
    assert refused.returncode == 1 and "refused" in _one_line_error(refused)


def test_register_errors_are_clear() -> None:
    unset = run_script("register_ven.py")
    assert unset.returncode == 2 and "BACKEND_URL is not set" in _one_line_error(unset)
    down = run_script("register_ven.py", env=_env(BACKEND_URL=f"http://127.0.0.1:{free_port()}"))
    assert down.returncode == 4 and "unreachable" in _one_line_error(down)


# -- status ------------------------------------------------------------------------------

def test_status_reports_platform_agents_bridge_and_web(platform: Platform, broker: LocalBroker, panel: PanelDevice,
                                                       cloud: CloudBackend, shadows: ShadowService,
                                                       tmp_path: Path) -> None:
    """ven_control.sh status against the session's platform (VEN_ROOT laid out around it). The pid
    files name the session's stand-ins, which this VEN_ROOT did not start (their command lines carry
    other paths): status does not take them for its own, says so with the fix, and exits 3. (The
    start matrix checks status on a system `start` brought up: tests/integration/test_start_converges.py.)"""
    root = tmp_path / "venroot"
    (root / "broker").mkdir(parents=True)
    (root / "device").mkdir()
    (root / "tmp").mkdir()
    (root / "venv").symlink_to(Path(sys.prefix))
    (root / "src").symlink_to(REPO)
    (root / "broker" / "mosquitto.pid").write_text(str(broker._proc.pid) if broker._proc else "")
    (root / "device" / "device.pid").write_text(str(panel.pid))
    (root / "cloud").mkdir()
    (root / "cloud" / "backend.pid").write_text(str(cloud.proc.pid if cloud.proc else ""))
    (root / "cloud" / "shadow.pid").write_text(str(shadows.proc.pid if shadows.proc else ""))
    env = _env(VEN_ROOT=str(root), VOLTTRON_HOME_OVERRIDE=str(platform.vhome), BROKER_PORT=str(broker.port),
               PANEL_PORT=str(panel.port), BACKEND_PORT=str(cloud.port))
    result = subprocess.run(["bash", str(REPO / "scripts/ven_control.sh"), "status"], check=False, env=env, capture_output=True,
                            text=True, timeout=120)
    out = result.stdout
    assert result.returncode == 3, out + result.stderr
    assert "Traceback" not in out + result.stderr
    assert "platform   running" in out
    for identity in ("ven.agent", "ven.bridge", "platform.driver"):
        assert f"agent      {identity}" in out
    assert "not installed" not in out and "agent" in out
    assert "bridge     connected" in out
    assert f"web        {platform.web_url}/" in out and "ven_web_token" in out
    for line in ("broker     not running: ./scripts/ven_control.sh start starts it",
                 "device     building panel not running (./scripts/ven_control.sh start brings it up)",
                 "backend    local backend stand-in not running", "shadow     Device Shadow service stand-in not running"):
        assert line in out, out
    assert broker._proc is not None and broker._proc.poll() is None   # status signals nothing


# -- web page ----------------------------------------------------------------------------

def _http(url: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    # No Content-Type on a GET: the web service parses an empty JSON body and answers 500.
    headers = {} if body is None else {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST", headers=headers)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _Dom(HTMLParser):
    """What the tests read from Chromium's DOM dump: circuit rows, event rows, the chart summary."""

    def __init__(self) -> None:
        super().__init__()
        self.circuits: list[str] = []
        self.events: list[str] = []
        self.summary: dict[str, str] = {}
        self.has_chart = False
        self.ready = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-circuit" in a:
            self.circuits.append(a["data-circuit"])
        if "data-event" in a:
            self.events.append(a["data-event"])
        if a.get("id") == "chart-summary":
            self.summary = {k[5:]: v for k, v in a.items() if k.startswith("data-")}
        if "uplot" in a.get("class", "").split():
            self.has_chart = True
        if tag == "body" and a.get("data-ready") == "1":
            self.ready = True


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (run_tests.sh installs it as root: apt-get install chromium)")


def _browser(url: str, *, screenshot: Path | None = None, budget_ms: int = 6000) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--window-size=1280,1900", f"--virtual-time-budget={budget_ms}"]
        cmd += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
        result = subprocess.run([*cmd, url], check=False, capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, HOME=profile))
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _dom(url: str) -> _Dom:
    dom = _Dom()
    dom.feed(_browser(url))
    return dom


def test_web_page_serves_state_and_refuses_unauthenticated_commands(idle: Platform) -> None:
    assert idle.web_url, "the session platform has no web service"
    base = idle.web_url
    wait_until(lambda: _http(f"{base}/ven/api/state")[0] == 200, 60, 1.0, "the VEN's web routes")
    status, headers, _ = _http(f"{base}/")
    assert status == 302 and headers.get("Location") == "/ven/index.html"
    status, _, body = _http(f"{base}/ven/api/state")
    state = json.loads(body)
    assert state["ven_id"] == THING and state["status"]["circuits"] and state["readings"]
    assert state["bridge"]["available"] is True and state["chart_lib"] == "uplot 1.6.32"
    assert len(state["readings"][-1]) == 6

    before = idle.rpc("ven.agent", "get_status")
    for body in ({"op": "event", "shed_kw": 2.0, "duration_sec": 60},
                 {"op": "event", "shed_kw": 2.0, "duration_sec": 60, "token": "wrong"},
                 {"op": "restore", "token": ""}):
        status, _, reply = _http(f"{base}/ven/api/command", body)
        assert status == 401, reply
    assert _http(f"{base}/ven/api/command")[0] == 405
    assert idle.rpc("ven.agent", "get_status")["active_event"] is None and before["active_event"] is None
    assert (idle.vhome / "ven_web_token").stat().st_mode & 0o077 == 0
    assert (idle.vhome / "config").stat().st_mode & 0o077 == 0


def test_web_page_shows_circuits_and_the_chart_follows_an_event(idle: Platform) -> None:
    base = idle.web_url
    assert base
    wait_until(lambda: _http(f"{base}/ven/api/state")[0] == 200, 60, 1.0, "the VEN's web routes")
    page = f"{base}/ven/index.html"

    before = _dom(page)
    assert before.ready and before.has_chart, "the page did not load its data or draw the chart"
    assert {"HVAC", "Heater", "EV Charger", "Water Heater", "Lighting"} <= set(before.circuits)
    assert int(before.summary["points"]) > 0
    idle_mean = float(before.summary["recent-mean"])

    token = (idle.vhome / "ven_web_token").read_text().strip()
    event_id = f"web-{_cid()}"
    status, _, reply = _http(f"{base}/ven/api/command",
                             {"op": "event", "shed_kw": 2.0, "duration_sec": 120, "event_id": event_id, "token": token})
    assert status == 200, reply
    assert json.loads(reply)["ack"]["status"] == "accepted"
    # The page's recent mean moves as metering intervals at the reduced power arrive.
    def shows_the_shed() -> object:
        seen = _dom(page)
        try:
            mean = float(seen.summary.get("recent-mean", "nan"))
        except ValueError:
            return None  # the page has not rendered the summary yet
        return seen if event_id in seen.events and mean < idle_mean - 1.5 else None

    during = settle(shows_the_shed, 45, 1.0) or _dom(page)  # else the asserts say what the page shows
    assert event_id in during.events
    assert int(during.summary["windows"]) >= 1 and int(during.summary["target-points"]) > 0
    assert float(during.summary["recent-mean"]) < idle_mean - 1.5, (before.summary, during.summary)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "web_page_during_event.png"
    _browser(page, screenshot=shot)
    assert shot.stat().st_size > 10_000

    status, _, reply = _http(f"{base}/ven/api/command", {"op": "restore", "token": token})
    assert status == 200 and json.loads(reply)["ack"]["op"] == "restore"
