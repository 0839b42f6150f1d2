"""A real VOLTTRON platform for integration tests, driven from outside through volttron/vctl.

volttrontesting's PlatformWrapper cannot drive a real zmq platform in this version, so the
session fixture starts ``volttron`` itself. The pytest process never imports volttron (it
would monkey-patch the process with gevent); RPCs go through ``scripts/ven_rpc.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ven_common import lockset

from tests.support.waiting import wait_until  # the tests import it from here too

REPO = Path(__file__).resolve().parents[2]


class SystemError_(RuntimeError):
    pass



def settle(predicate: Callable[[], Any], timeout: float, interval: float = 0.5,
           retry_on: tuple[type[BaseException], ...] = ()) -> Any:
    """Like ``wait_until`` but returns None on timeout: for waits followed by asserts that say
    precisely what is wrong (a timeout message could only say "not yet")."""
    try:
        return wait_until(predicate, timeout, interval, retry_on=retry_on)
    except TimeoutError:
        return None

@dataclass
class Platform:
    vhome: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    web_url: str | None = None

    @classmethod
    def create(cls, root: Path, extra_env: dict[str, str], web_port: int | None = None) -> Platform:
        vhome = root / "vhome"
        vhome.mkdir(parents=True, exist_ok=True)
        lockset.seed(vhome, lockset.index_url())  # the locked set, as `start` seeds it
        env = dict(os.environ, VOLTTRON_HOME=str(vhome), **extra_env)
        web_url = None
        if web_port is not None:  # the platform's web service ([web] is read only at start)
            from ven_common.web_conf import write_web_section
            web_url = f"http://127.0.0.1:{web_port}"
            write_web_section(vhome, web_url)
        return cls(vhome=vhome, log=root / "volttron.log", env=env, web_url=web_url)

    def start(self, timeout: float = 180) -> None:
        out = open(self.log.with_suffix(".out"), "ab")  # noqa: SIM115 - the platform's stdout, open for its lifetime
        # SIGINT must not be inherited as ignored, or the platform never shuts down cleanly.
        self.proc = subprocess.Popen(
            ["volttron", "-v", "-l", str(self.log)], cwd=self.vhome, env=self.env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509 - no threads fork here
        wait_until(self.is_up, timeout, 0.5, "the platform to answer vctl status")

    def is_up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise SystemError_(f"volttron exited with {self.proc.returncode}: see {self.log}")
        return self.vctl("status", check=False, timeout=30).returncode == 0

    def vctl(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["vctl", *args], cwd=self.vhome, env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise SystemError_(f"vctl {' '.join(args)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def rpc(self, peer: str, method: str, *args: Any, timeout: float = 15, identity: str = "ven.operator") -> Any:
        """An RPC from outside the platform, as ``identity`` (default: the operator tool)."""
        cmd = [sys.executable, str(REPO / "scripts/ven_rpc.py"), "--timeout", str(timeout), "--identity", identity,
               peer, method, *[json.dumps(a) for a in args]]
        result = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout + 30,
                                check=False)
        if result.returncode != 0:
            raise SystemError_(f"rpc {peer}.{method} failed: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def agents(self) -> dict[str, dict[str, Any]]:
        data = json.loads(self.vctl("--json", "status").stdout or "{}")
        rows = data.values() if isinstance(data, dict) else data
        return {r.get("identity"): r for r in rows}

    def agent_running(self, identity: str) -> bool:
        row = self.agents().get(identity)
        return bool(row) and "running" in str(row.get("status", ""))

    def agent_pid(self, identity: str) -> int | None:
        status = str(self.agents().get(identity, {}).get("status", ""))
        digits = "".join(ch for ch in status.rsplit("[", maxsplit=1)[-1] if ch.isdigit()) if "[" in status else ""
        return int(digits) if digits else None

    def install_agents(self, certs: Path, broker_port: int, panel_port: int, building: str = "modbus",
                       devices: str = "simbuilding modbus", extra_operators: str = "",
                       backend_url: str | None = None, wiring: Path | None = None) -> None:
        """``wiring``: a building written by ``building_device.campus`` instead of the default one."""
        env = dict(self.env, VEN_CERTS=str(certs), BROKER_PORT=str(broker_port), IOT_PORT=str(broker_port),
                   PANEL_PORT=str(panel_port), VEN_BUILDING=building, VEN_DEVICES=devices,
                   VEN_EXTRA_OPERATORS=extra_operators)
        if wiring is not None:
            env["VEN_WIRING"] = str(wiring)
        if backend_url:
            env["BACKEND_URL"] = backend_url
        env.pop("IOT_ENDPOINT", None)
        result = subprocess.run(["bash", str(REPO / "install_agents.sh")], env=env, capture_output=True, text=True,
                                timeout=600, check=False)
        if result.returncode != 0:
            raise SystemError_(f"install_agents.sh failed: {result.stdout}{result.stderr}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.vctl("shutdown", "--platform", check=False, timeout=60)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        # Agents are children in the platform's session; make sure none outlives it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def flood_bus(platform: Platform, count: int, marker: str) -> str:
    """Publish ``count`` readings on ``ven/metering`` from an external client; returns its output."""
    result = subprocess.run([sys.executable, str(REPO / "tests/support/bus_flood.py"), str(platform.vhome),
                             str(count), marker], env=platform.env, capture_output=True, text=True, timeout=600,
                            check=False)
    if result.returncode != 0:
        raise SystemError_(f"bus flood failed: {result.stderr[-2000:]}")
    return result.stdout.strip()
