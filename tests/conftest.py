"""Make the project's packages importable from a plain checkout (the venv installs only ven_common)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for sub in ("", "common", "VenAgent", "BackendBridgeAgent"):
    path = str(REPO / sub) if sub else str(REPO)
    if path not in sys.path:
        sys.path.insert(0, path)
