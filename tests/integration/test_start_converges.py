"""`ven_control.sh start` converges: from nothing to running, a second run changes nothing, and a
dead broker is brought back without restarting the platform or any agent (a VEN restart
mid-event is an interruption the building does not need).

Runs the real script beside the suite's own platform: its own VEN_ROOT, ports and log, sharing
only the suite's venv and sources (so it takes about a minute, not a cold install).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.broker import free_port
from tests.support.system import REPO, Platform, wait_until

pytestmark = pytest.mark.platform


def _control(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "scripts/ven_control.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture()
def system(tmp_path: Path):
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if k not in ("VOLTTRON_HOME", "IOT_ENDPOINT", "BACKEND_URL")}
    env.update(VEN_ROOT=str(root), VEN_VENV=sys.prefix, VEN_SRC_DIR=str(REPO), BROKER_PORT=str(free_port()),
               WEB_PORT=str(free_port()), VEN_LOG=str(tmp_path / "ven.log"), PANEL_PORT=str(free_port()),
               BACKEND_PORT=str(free_port()))
    vendor = Path(os.environ.get("VEN_ROOT", "/nonexistent")) / "web-vendor"
    if (vendor / "node_modules/uplot/package.json").exists():
        env["VEN_WEB_VENDOR"] = str(vendor)
    try:
        yield env, root
    finally:
        _control(env, "stop", timeout=120)


def test_start_converges_and_a_dead_broker_restarts_nothing_else(system) -> None:
    env, root = system
    t0 = time.monotonic()
    first = _control(env, "start")
    took_first = time.monotonic() - t0
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert _last_line(first).startswith("start: changed:") and "started the platform" in _last_line(first)

    t0 = time.monotonic()
    second = _control(env, "start")
    took_second = time.monotonic() - t0
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert _last_line(second) == "start: nothing changed (everything was already running)", second.stdout[-2000:]

    platform = Platform(vhome=root / "vhome", log=Path(env["VEN_LOG"]), env=dict(env, VOLTTRON_HOME=str(root / "vhome")))
    pids = {identity: platform.agent_pid(identity) for identity in ("platform.driver", "ven.agent", "ven.bridge")}
    assert all(pids.values()), pids
    platform_pid = (root / "vhome/VOLTTRON_PID").read_text().strip()
    broker_pid = int((root / "broker/mosquitto.pid").read_text().strip())
    os.kill(broker_pid, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{broker_pid}").exists(), 10, 0.1, "the broker gone")

    t0 = time.monotonic()
    third = _control(env, "start")
    took_third = time.monotonic() - t0
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert _last_line(third) == "start: changed: started the broker", third.stdout[-2000:]
    assert {identity: platform.agent_pid(identity) for identity in pids} == pids, "an agent was restarted"
    assert (root / "vhome/VOLTTRON_PID").read_text().strip() == platform_pid
    wait_until(lambda: "bridge     connected" in _control(env, "status", timeout=120).stdout, 60, 1.0,
               "the bridge connected to the restarted broker")
    print(f"start from nothing {took_first:.1f} s; again {took_second:.1f} s (nothing changed); "
          f"with the broker killed {took_third:.1f} s (broker only)")

    stopped = _control(env, "stop", timeout=120)
    assert stopped.returncode == 0
    assert not _processes_of(root), f"processes left behind: {_processes_of(root)}"


def _processes_of(root: Path) -> list[int]:
    """PIDs whose environment or command line names this system's VEN_ROOT."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            blob = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(root).encode() in blob and int(proc.name) != os.getpid():
            out.append(int(proc.name))
    return out


def test_start_names_an_unwritable_log_at_once(system, tmp_path: Path) -> None:
    """The platform would die on its first log line; `start` says why, with the fix, in one line."""
    env, root = system
    log = tmp_path / "left-by-another-run.log"
    log.write_text("")
    log.chmod(0o444)
    env = dict(env, VEN_LOG=str(log))
    t0 = time.monotonic()
    result = _control(env, "start", timeout=300)
    took = time.monotonic() - t0
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors and f"cannot write {log}" in errors[-1] and "set VEN_LOG" in errors[-1], result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    print(f"unwritable log reported after {took:.1f} s: {errors[-1]}")
