"""Run an operator script with the project's environment, from any shell and directory.

The seed's tools (``ven_cmd_publish.py``, ``ven_telemetry_listen.py``, ``ven_shadow.py``,
``register_ven.py``) start with ``#!/usr/bin/env python3``: whatever python is first on the PATH.
Imported first by each of them: when that python lacks the project's packages, the script is
re-run with the venv that ``./scripts/ven_control.sh start`` made (as root:
/var/lib/volttron-ven/venv, else ~/.local/share/volttron-ven/venv, or $VEN_ROOT/venv); when
there is none, one line says so and how to fix it. Never a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_NEEDED = ("paho", "cryptography")


def _candidates() -> list[Path]:
    pythons = []
    if os.environ.get("VEN_VENV"):   # ven_control.sh's override of the venv's place
        pythons.append(Path(os.environ["VEN_VENV"]) / "bin/python")
    roots = []
    if os.environ.get("VEN_ROOT"):
        roots.append(Path(os.environ["VEN_ROOT"]))
    if os.geteuid() == 0:
        roots.append(Path("/var/lib/volttron-ven"))
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
    roots += [Path(data) / "volttron-ven", Path("/var/lib/volttron-ven")]
    return pythons + [root / "venv/bin/python" for root in roots]


def ensure() -> None:
    if all(importlib.util.find_spec(name) is not None for name in _NEEDED):
        for sub in ("common", "building_device"):
            path = str(REPO / sub)
            if path not in sys.path:
                sys.path.insert(0, path)
        return
    if os.environ.get("_VEN_REEXEC"):
        print(f"error: {sys.executable} lacks the project's packages even in its venv: "
              "run ./scripts/ven_control.sh start (it rebuilds the venv)", file=sys.stderr)
        sys.exit(1)
    for python in _candidates():
        if os.access(python, os.X_OK):
            os.environ["_VEN_REEXEC"] = "1"
            os.execv(str(python), [str(python), str(Path(sys.argv[0]).resolve()), *sys.argv[1:]])
    print(f"error: {Path(sys.argv[0]).name} needs the project's environment, which is not set up yet: "
          "run ./scripts/ven_control.sh start once (it creates the venv)", file=sys.stderr)
    sys.exit(1)


ensure()
