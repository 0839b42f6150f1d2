"""Enable the platform's web service: the ``[web]`` section of ``$VOLTTRON_HOME/config``.

    python -m ven_common.web_conf --vhome "$VOLTTRON_HOME" --bind http://127.0.0.1:8080

Writes (or updates) ``bind-web-address`` and keeps an existing ``web-secret-key`` (a new random
one otherwise); the file is made 0600 since it now holds a secret. VOLTTRON reads the section
at start and keeps it when it rewrites the file, so a change needs a platform restart; the exit
code says whether anything changed (0 unchanged, 10 changed). Before the first start, a minimal
``[volttron]`` section is written too (VOLTTRON refuses a config file without one).

Also the operator token file of the VEN's web page (``ven_web_token``): see :func:`ensure_token`.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import sys
from pathlib import Path

TOKEN_FILE = "ven_web_token"
CHANGED = 10


def _sections(text: str) -> list[tuple[str | None, list[str]]]:
    """Split INI text into (section name, lines) keeping every line as it was."""
    out: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        m = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if m:
            out.append((m.group(1).strip(), []))
        else:
            out[-1][1].append(line)
    return out


def _value(lines: list[str], key: str) -> str | None:
    for line in lines:
        m = re.match(rf"\s*{re.escape(key)}\s*[=:]\s*(.*?)\s*$", line)
        if m:
            return m.group(1)
    return None


def write_web_section(vhome: Path, bind: str) -> bool:
    """Make ``[web]`` bind to ``bind``; True if the file changed (the platform must restart)."""
    path = Path(vhome) / "config"
    text = path.read_text() if path.exists() else ""
    sections = _sections(text)
    old_web = next((lines for name, lines in sections if name == "web"), None)
    key = (_value(old_web, "web-secret-key") if old_web else None) or secrets.token_hex(32)
    kept = [(name, lines) for name, lines in sections if name != "web"]
    if not any(name == "volttron" for name, _ in kept):
        # What a first start would write itself (instance name = host name).
        kept.append(("volttron", [f"instance-name = {socket.gethostname()}", "messagebus = zmq", ""]))
    parts: list[str] = []
    for name, section_lines in kept:
        if name is not None:
            parts.append(f"[{name}]")
        lines = list(section_lines)
        while lines and not lines[-1].strip():
            lines.pop()
        parts.extend(lines)
        if name is not None or lines:
            parts.append("")
    parts += ["[web]", f"bind-web-address = {bind}", f"web-secret-key = {key}", ""]
    new = "\n".join(parts)
    changed = new != text
    if changed:
        tmp = path.with_name(".config.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return changed


def web_bind(vhome: Path) -> str | None:
    """The configured ``bind-web-address``, or None when the web service is not enabled."""
    path = Path(vhome) / "config"
    if not path.exists():
        return None
    web = next((lines for name, lines in _sections(path.read_text()) if name == "web"), None)
    return _value(web, "bind-web-address") if web else None


def ensure_token(vhome: Path) -> str:
    """The web page's operator token: created once (0600) in VOLTTRON_HOME, then read back."""
    path = Path(vhome) / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if token:
            return token
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    token = secrets.token_urlsafe(24)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vhome", type=Path, default=Path(os.environ.get("VOLTTRON_HOME", "~/.volttron")).expanduser())
    p.add_argument("--bind", required=True, help="e.g. http://127.0.0.1:8080 (http://0.0.0.0:8080 for every interface)")
    p.add_argument("--token", action="store_true", help="also create the operator token file if missing")
    a = p.parse_args()
    if not re.match(r"^https?://[^/:]+:\d+/?$", a.bind):
        p.error(f"--bind must look like http://HOST:PORT, got {a.bind!r}")
    a.vhome.mkdir(parents=True, exist_ok=True)
    changed = write_web_section(a.vhome, a.bind.rstrip("/"))
    if a.token:
        ensure_token(a.vhome)
    return CHANGED if changed else 0


if __name__ == "__main__":
    sys.exit(main())
