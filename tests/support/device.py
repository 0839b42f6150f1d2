"""The building's Modbus panel for tests: the real device process, and a Modbus client of our own.

Faults are real: ``hang()`` SIGSTOPs the process (connections stay open, nothing answers),
``kill()`` SIGKILLs it (connections refused), ``start()`` again brings it back with its power-on
relays (or latched ones with a state file). ``relays()`` reads the coils with our own client,
not through the VEN or the driver.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymodbus.client import ModbusTcpClient

from tests.support.system import REPO, wait_until

REGISTRY = REPO / "config/driver/panel.csv"
COILS = {"HVAC": 0, "Heater": 1, "EV Charger": 2, "Water Heater": 3, "Lighting": 4}


class PanelDevice:
    def __init__(self, root: Path, port: int, latching: bool = False, registries: list[str] | None = None) -> None:
        """``registries``: ``FILE:UNIT`` arguments for a campus gateway (default: the building's panel)."""
        self.root = root
        self.registries = registries or [str(REGISTRY)]
        self.port = port
        self.state_file = root / "relays.json" if latching else None
        self.proc: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 15) -> PanelDevice:
        args = [sys.executable, "-m", "building_device", "--port", str(self.port)]
        for registry in self.registries:
            args += ["--registry", registry]
        if self.state_file is not None:
            args += ["--state-file", str(self.state_file)]
        log = open(self.root / "device.log", "ab")  # noqa: SIM115 - the child's log, open for its lifetime
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=dict(os.environ, PYTHONPATH=str(REPO / "building_device")
                                                                     + os.pathsep + str(REPO / "common")))
        wait_until(self._listening, timeout, 0.05, "the panel's Modbus port")
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the panel exited with {self.proc.returncode}: see {self.root / 'device.log'}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def hang(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)  # a stopped process must be able to die
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()

    def relays(self) -> dict[str, bool]:
        """The relay coils as the device holds them (our own Modbus client)."""
        client = ModbusTcpClient("127.0.0.1", port=self.port, timeout=2, retries=1)
        try:
            if not client.connect():
                raise ConnectionError(f"panel on port {self.port} not reachable")
            bits = client.read_coils(0, count=len(COILS), device_id=1).bits
        finally:
            client.close()
        return {name: bool(bits[coil]) for name, coil in COILS.items()}

    def set_relay(self, circuit: str, on: bool) -> None:
        """Someone at the panel switches a circuit by hand."""
        client = ModbusTcpClient("127.0.0.1", port=self.port, timeout=2, retries=1)
        try:
            client.connect()
            client.write_coil(COILS[circuit], on, device_id=1)
        finally:
            client.close()

    def __enter__(self) -> PanelDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_relays(device: PanelDevice, want: dict[str, bool], timeout: float = 20) -> dict[str, bool]:
    def ok() -> dict[str, bool] | None:
        try:
            got = device.relays()
        except (ConnectionError, OSError):
            return None
        return got if all(got[k] == v for k, v in want.items()) else None
    return wait_until(ok, timeout, 0.2, f"the panel's relays {want}")


def now() -> float:
    return time.time()
