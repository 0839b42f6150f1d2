"""End protocol proxies orphaned by a crashed driver.

The VOLTTRON Modbus driver talks to devices through a child process (``protocol_proxy``). When
the driver agent dies without stopping it (SIGKILL, OOM), the platform starts a new driver with
a new proxy and the old one lives on, re-parented, still holding a TCP connection to the device;
a real panel that accepts one or two clients is then blocked. This platform's orphans carry its
``VOLTTRON_HOME`` in their environment; a proxy whose parent is no longer a driver is ended.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_log = logging.getLogger(__name__)

PROXY_MARK = b"protocol_proxy"
DRIVER_MARK = b"platform_driver"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    cmdline: bytes
    volttron_home: str | None


def orphaned_proxies(procs: Iterable[Proc], volttron_home: str) -> list[int]:
    """PIDs of this platform's proxies whose parent is not a live driver (pure: tested alone)."""
    table = {p.pid: p for p in procs}
    out = []
    for proc in table.values():
        if PROXY_MARK not in proc.cmdline or proc.volttron_home != volttron_home:
            continue
        parent = table.get(proc.ppid)
        if parent is None or DRIVER_MARK not in parent.cmdline:
            out.append(proc.pid)
    return out


def _read(pid: int) -> Proc | None:
    base = Path("/proc") / str(pid)
    try:
        cmdline = (base / "cmdline").read_bytes()
        stat = (base / "stat").read_text()
        environ = (base / "environ").read_bytes()
    except OSError:
        return None  # gone, or another user's
    ppid = int(stat.rsplit(")", 1)[1].split()[1])
    home = next((v[len(b"VOLTTRON_HOME="):].decode(errors="replace") for v in environ.split(b"\0")
                 if v.startswith(b"VOLTTRON_HOME=")), None)
    return Proc(pid, ppid, cmdline, home)


def reap(volttron_home: str) -> list[int]:
    """SIGTERM this platform's orphaned proxies; returns their PIDs."""
    procs = [p for p in (_read(int(d)) for d in os.listdir("/proc") if d.isdigit()) if p is not None]
    ended = []
    for pid in orphaned_proxies(procs, volttron_home):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as exc:
            _log.warning("cannot end orphaned protocol proxy %d: %s", pid, exc)
            continue
        ended.append(pid)
        _log.warning("ended protocol proxy %d, orphaned by a driver that died (it held the device's connection)", pid)
    return ended
