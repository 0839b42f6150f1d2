"""Who listens on a local TCP port: the program, its PID and its user, for `start`'s one-line errors.

    python scripts/port_owner.py PORT      exit 0 and one line when something listens, 1 when free

A normal user sees the PIDs of their own processes only (Linux hides other users' sockets'
owners); the line then says who may look. psutil reads /proc for us.
"""

from __future__ import annotations

import socket
import sys

import psutil


def describe(port: int) -> str | None:
    """One phrase naming what listens on 127.0.0.1/0.0.0.0:port, or None when nothing does."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        conns = []
    listeners = [c for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    for conn in listeners:
        if conn.pid is None:
            continue
        try:
            proc = psutil.Process(conn.pid)
            cmd = " ".join(proc.cmdline())[:120] or proc.name()
            return f"{proc.name()} (pid {conn.pid}, user {proc.username()}: {cmd})"
        except psutil.Error:
            return f"pid {conn.pid}"
    if listeners or _accepts(port):
        return f"a process of another user (as root, `ss -ltnp 'sport = :{port}'` names it)"
    return None


def pid_of(port: int) -> int | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: port_owner.py PORT   (or: port_owner.py --pid PORT)", file=sys.stderr)
        return 2
    owner = describe(int(argv[1]))
    if owner is None:
        return 1
    print(owner)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--pid" and sys.argv[2].isdigit():
        found = pid_of(int(sys.argv[2]))
        if found:
            print(found)
        sys.exit(0 if found else 1)
    sys.exit(main(sys.argv))
