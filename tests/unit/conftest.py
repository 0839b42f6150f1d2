"""Make the in-repo packages importable for unit tests without installing them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
for _package, _sub in (("venagent", "VenAgent"), ("ven_common", "common")):
    if importlib.util.find_spec(_package) is None and str(_ROOT / _sub) not in sys.path:
        sys.path.insert(0, str(_ROOT / _sub))
