"""A system brought up by the real `ven_control.sh start`, beside the suite's own platform.

Its own VEN_ROOT, ports and log, and a copy of the suite's venv (a test may break that venv, and the
system's `vctl install` edits only the copy); sources are the suite's. The start matrix and the
guide-as-a-test share one (session fixture `controlled`), so only the first start pays for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.broker import free_port
from tests.support.system import REPO, Platform, wait_until

IDENTITIES = ("platform.driver", "ven.agent", "ven.bridge")


def copy_venv(dest: Path) -> Path:
    """The suite's venv, copied: its scripts' shebangs point at the copy."""
    shutil.copytree(sys.prefix, dest, symlinks=True)
    old, new = f"#!{sys.prefix}/bin/", f"#!{dest}/bin/"
    for script in (dest / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        head = script.read_bytes()[:256]
        if head.startswith(old.encode()):
            script.write_bytes(script.read_bytes().replace(old.encode(), new.encode(), 1))
    return dest


@dataclass
class System:
    env: dict[str, str]
    root: Path
    venv: Path

    def control(self, *args: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, **extra)
        return subprocess.run(["bash", str(REPO / "scripts/ven_control.sh"), *args], check=False, env=env,
                              capture_output=True,
                              text=True, timeout=timeout)

    def start(self, **extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
        t0 = time.monotonic()
        result = self.control("start", **extra)
        return result, time.monotonic() - t0

    @property
    def platform(self) -> Platform:
        env = dict(self.env, VOLTTRON_HOME=str(self.root / "vhome"), PATH=f"{self.venv}/bin:{os.environ['PATH']}")
        return Platform(vhome=self.root / "vhome", log=Path(self.env["VEN_LOG"]), env=env)

    def agent_pids(self) -> dict[str, int | None]:
        return {identity: self.platform.agent_pid(identity) for identity in IDENTITIES}

    def platform_pid(self) -> str:
        return (self.root / "vhome/VOLTTRON_PID").read_text().strip()

    def pidfile(self, name: str) -> Path:
        return {"broker": self.root / "broker/mosquitto.pid", "device": self.root / "device/device.pid",
                "backend": self.root / "cloud/backend.pid", "shadow": self.root / "cloud/shadow.pid"}[name]

    def pid(self, name: str) -> int:
        return int(self.pidfile(name).read_text().strip())

    def _clean_status(self) -> subprocess.CompletedProcess[str] | None:
        result = self.control("status", timeout=120)
        return result if result.returncode == 0 and "bridge     connected" in result.stdout else None

    def assert_up(self, result: subprocess.CompletedProcess[str]) -> None:
        """start succeeded, status is clean, and a seed event is acked through the broker."""
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "Traceback" not in result.stdout + result.stderr
        # One status call per try: clean (exit 0: every part up, and a status command through the cloud came
        # back accepted) with the bridge connected.
        status = wait_until(self._clean_status, 60, 1.0, "status clean, the bridge connected")
        assert "not running" not in status.stdout and "not installed" not in status.stdout, status.stdout
        assert "command    status through the cloud: accepted" in status.stdout, status.stdout
        event = f"matrix-{time.monotonic_ns()}"
        sent = self.control("send-event", "--shed-kw", "1.0", "--duration", "60", "--event-id", event, timeout=120)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        ack = json.loads(sent.stdout)
        assert ack["status"] == "accepted" and ack["event_id"] == event, ack
        restored = self.control("restore", timeout=120)
        assert restored.returncode == 0, restored.stdout + restored.stderr


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    return errors[-1]


def base_env(tmp: Path, venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VOLTTRON_HOME", "IOT_ENDPOINT", "BACKEND_URL")}
    env.update(VEN_ROOT=str(tmp / "root"), VEN_VENV=str(venv), VEN_SRC_DIR=str(REPO), BROKER_PORT=str(free_port()),
               WEB_PORT=str(free_port()), VEN_LOG=str(tmp / "ven.log"), PANEL_PORT=str(free_port()),
               BACKEND_PORT=str(free_port()), PATH=f"{venv}/bin:{os.environ['PATH']}")
    vendor = Path(os.environ.get("VEN_ROOT", "/nonexistent")) / "web-vendor"
    if (vendor / "node_modules/uplot/package.json").exists():
        env["VEN_WEB_VENDOR"] = str(vendor)
    return env




def controlled_system(tmp: Path) -> System:
    venv = copy_venv(tmp / "venv")
    return System(env=base_env(tmp, venv), root=tmp / "root", venv=venv)
