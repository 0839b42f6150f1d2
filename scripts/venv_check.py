"""What the venv lacks: each pin of requirements.txt that is not installed at its version.

    venv/bin/python scripts/venv_check.py requirements.txt [--project NAME ...]

Prints one `name==version` per missing or different pin (and each project package given with
--project that is not installed), nothing when the venv is complete. Stdlib only: it must run in a
venv that lost any package. `start` runs it on every call (about 0.1 s), so a package removed by
hand is put back instead of being found by an agent that crashes.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import sys
from pathlib import Path

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def missing(requirements: Path, projects: list[str]) -> list[str]:
    out = []
    for line in requirements.read_text().splitlines():
        match = _PIN.match(line)
        if not match:
            continue
        name, version = match.groups()
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            out.append(f"{name}=={version}")
    for name in projects:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def main(argv: list[str]) -> int:
    if not argv or "-h" in argv or "--help" in argv:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    projects = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--project"]
    for spec in missing(Path(argv[0]), projects):
        print(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
