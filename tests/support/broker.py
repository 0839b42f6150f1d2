"""A mosquitto child process with the dev PKI, for tests and benchmarks (no VOLTTRON needed).

    broker = LocalBroker(tmp_path)        # PKI in tmp_path/pki unless pki_dir is given
    broker.start(); ...; broker.kill(); broker.restart(); broker.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ven_common.broker_conf import LOG_NAME, write_broker_files
from ven_common.pki import PkiPaths, generate_dev_pki

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class LocalBroker:
    """mosquitto on 127.0.0.1:``port`` configured by :mod:`ven_common.broker_conf`."""

    def __init__(
        self,
        tmpdir: str | os.PathLike[str],
        port: int | None = None,
        *,
        pki_dir: str | os.PathLike[str] | None = None,
        thing: str = "volttron_thing",
    ) -> None:
        self.dir = Path(tmpdir) / "broker"
        self.port = port or free_port()
        self.pki: PkiPaths = generate_dev_pki(pki_dir or Path(tmpdir) / "pki", thing)
        self.conf = write_broker_files(port=self.port, pki_dir=self.pki.root, broker_dir=self.dir)
        self.log_path = self.dir / LOG_NAME
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The mosquitto process, while one was started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> LocalBroker:
        if self.running:
            return self
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited rc={self._proc.returncode}: {err}\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"mosquitto did not open port {self.port}\n{self.log()}")
            time.sleep(0.01)
        return self

    def _end(self, sig: int) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(sig)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its persistence file."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: only what autosave already wrote survives."""
        self._end(signal.SIGKILL)

    def restart(self, timeout: float = 10.0) -> LocalBroker:
        self.stop()
        return self.start(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
