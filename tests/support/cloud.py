"""The cloud side in tests: the local backend stand-in and the Device Shadow service, as real
processes on the session's broker, and a small HTTP client for the backend's API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.broker import LocalBroker, free_port
from tests.support.system import REPO, wait_until


def _env() -> dict[str, str]:
    path = os.pathsep.join(str(REPO / p) for p in ("local_backend", "common"))
    return dict(os.environ, PYTHONPATH=path)


class CloudBackend:
    """``python -m local_backend`` on a free port, connected to the broker as cloud_backend."""

    def __init__(self, root: Path, broker: LocalBroker) -> None:
        self.root = root
        self.broker = broker
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    def start(self) -> CloudBackend:
        log = open(self.root / "backend.log", "ab")  # noqa: SIM115 - the child's log, open for its lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local_backend", "--db", str(self.root / "backend.sqlite"), "--port", str(self.port),
             "--mqtt-port", str(self.broker.port), "--certs", str(self.broker.pki.root)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env(), start_new_session=True)
        wait_until(self._health_ok, 30, 0.2, "the local backend's /health with MQTT connected")
        return self

    def _health_ok(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"local backend exited {self.proc.returncode}: see {self.root / 'backend.log'}")
        try:
            return bool(self.get("/health")[1].get("mqtt_connected"))
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def readings(self, ven_id: str, limit: int = 100_000) -> list[dict[str, Any]]:
        """The seed-shaped rows the backend stored for ``ven_id`` (each with ``received_ts``)."""
        status, rows = self.get(f"/api/readings?venId={ven_id}&limit={limit}")
        assert status == 200, rows
        return rows


class ShadowService:
    """``python -m local_backend.shadow_service`` on the session's broker."""

    def __init__(self, root: Path, broker: LocalBroker) -> None:
        self.root = root
        self.broker = broker
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    def start(self) -> ShadowService:
        log = open(self.root / "shadow.log", "ab")  # noqa: SIM115 - the child's log, open for its lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "local_backend.shadow_service", "--dir", str(self.root / "shadows"),
             "--mqtt-port", str(self.broker.port), "--certs", str(self.broker.pki.root)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_env(), start_new_session=True)
        wait_until(lambda: "serving" in (self.root / "shadow.log").read_text(errors="replace"), 30, 0.2,
                   "the shadow service subscribed")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
