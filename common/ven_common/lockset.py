"""The locked dependency set: one owner for every package of the platform venv and of the VOLTTRON_HOME project.

``config/vhome/poetry.lock`` owns the versions. It is made by poetry (the resolver ``vctl install`` uses) from the
roots in ``config/vhome/pyproject.toml`` (``[tool.ven] roots``), which also pins every locked package as a dependency
of the VOLTTRON_HOME project. ``requirements.txt`` is the lock's export (``poetry export``, with hashes), which pip
installs into the venv. A VOLTTRON_HOME is seeded from the same two files, so ``vctl install`` and ``vctl
install-lib`` (``poetry add``) find every package locked at the version pip installed and change none; and ``vctl
remove`` of a package cannot orphan another one (all are pinned), so re-adding it resolves nothing new.

The committed files name no package index: ``@INDEX_URL@`` is replaced when a VOLTTRON_HOME is seeded with the index
of the user's own pip configuration (``PIP_INDEX_URL``, ``pip config``, else pip's default), so a mirror or a proxy
works. Poetry then only recomputes the lock's content hash (offline, ~2 s).

    python lockset.py seed VHOME        write VHOME's pyproject.toml and poetry.lock (or re-seed a drifted one)
    python lockset.py check             print each locked package the running venv lacks or has at another version
    python lockset.py refresh           new versions from the roots (same resolver), requirements.txt, the difference
    python lockset.py index             the index poetry is given (the user's pip configuration)
    python lockset.py verify            the committed files agree: requirements.txt is the lock's export, pins = lock

Standard library only (and pip's vendored ``packaging`` for markers): ``check`` runs in a venv that lost packages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCK_DIR = REPO / "config" / "vhome"
REQUIREMENTS = REPO / "requirements.txt"
PLACEHOLDER = "@INDEX_URL@"
# The project's own packages, installed editable beside the locked set (pip -e, vctl install): not in the lock.
OWN_PACKAGES = frozenset({"ven-common", "ven-building-device", "ven-local-backend", "venagent", "backendbridge",
                          "volttron-lib-simbuilding-driver"})
_REQUIREMENTS_HEADER = (
    "# Generated from config/vhome/poetry.lock by `./scripts/ven_control.sh refresh-lock`: do not edit by hand.\n"
    "# The platform venv installs exactly this (pip, hash-checked); the VOLTTRON_HOME project is seeded from the lock.\n"
)


class LocksetError(RuntimeError):
    """A problem with the locked set, said so that the message names the fix."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    """The normalized distribution name of a PEP 508 requirement (``x==1 ; marker``, ``x (==1)``, ``x @ url``)."""
    return normalize(re.split(r"[\s@=<>!~;(\[]", spec.strip(), maxsplit=1)[0])


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    marker: str | None  # PEP 508 environment marker; None: every platform

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}" + (f" ; {self.marker}" if self.marker else "")


def read_lock(path: Path | None = None) -> list[Locked]:
    data = tomllib.loads((path or LOCK_DIR / "poetry.lock").read_text())
    out = []
    for package in data.get("package", []):
        marker = package.get("markers")
        if isinstance(marker, dict):  # per dependency group; the project has only "main"
            marker = marker.get("main")
        out.append(Locked(normalize(package["name"]), package["version"], marker or None))
    return out


def applies(marker: str | None) -> bool:
    if marker is None:
        return True
    try:
        from packaging.markers import Marker
        return bool(Marker(marker).evaluate())
    except ImportError:  # a venv that lost packaging still has pip's copy
        from pip._vendor.packaging.markers import Marker as PipMarker
        return bool(PipMarker(marker).evaluate())


def wanted(locked: Iterable[Locked]) -> dict[str, str]:
    """name → version of every locked package for this interpreter and platform."""
    return {p.name: p.version for p in locked if applies(p.marker)}


def installed() -> dict[str, str]:
    import importlib.metadata as metadata
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[normalize(name)] = dist.version
    return found


def differences(want: Mapping[str, str], have: Mapping[str, str]) -> list[str]:
    """``name==version`` for each wanted package missing, or at another version (then with what is installed)."""
    out = []
    for name, version in sorted(want.items()):
        got = have.get(name)
        if got != version:
            out.append(f"{name}=={version}" + (f" (installed {got})" if got else ""))
    return out


def extras(want: Mapping[str, str], have: Mapping[str, str]) -> list[str]:
    """Installed packages the lock does not name (the project's own aside)."""
    return sorted(f"{n}=={v}" for n, v in have.items() if n not in want and n not in OWN_PACKAGES)


# -- the index of the user's pip configuration -------------------------------------------------------------

def index_url(env: Mapping[str, str] | None = None) -> str:
    """PIP_INDEX_URL, else pip's configured index-url, else pip's own default: never a host of ours."""
    env = os.environ if env is None else env
    if env.get("PIP_INDEX_URL"):
        return env["PIP_INDEX_URL"].split()[0].rstrip("/")
    for key in ("global.index-url", "install.index-url"):
        done = subprocess.run([sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True,
                              check=False, env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip().rstrip("/")
    from pip._internal.models.index import PyPI  # pip's default, asked of pip rather than written here
    return str(PyPI.simple_url).rstrip("/")


# -- seeding a VOLTTRON_HOME ---------------------------------------------------------------------------------

def seed(vhome: Path, index: str) -> str:
    """Write VHOME's pyproject.toml and poetry.lock from the locked set; return what was done ('' if nothing).

    A VOLTTRON_HOME seeded earlier keeps what ``vctl`` added to it (agents, wheels). One whose lock disagrees with
    ours (seeded by an older version, or re-resolved) is re-seeded: our pins and lock, its own additions kept.
    """
    vhome.mkdir(parents=True, exist_ok=True)
    project, lock = vhome / "pyproject.toml", vhome / "poetry.lock"
    ours = read_lock()
    if project.exists() and lock.exists():
        drift = _drift(ours, read_lock(lock))
        if not drift:
            return ""
        added = _added_dependencies(project)
    elif project.exists():
        drift, added = ["no poetry.lock"], _added_dependencies(project)
    else:
        drift, added = [], {}
    project.write_text(_merge(_template("pyproject.toml", index), added))
    lock.write_text(_template("poetry.lock", index))
    if drift:
        return "re-seeded (its lock differed: " + ", ".join(drift[:4]) + (", …" if len(drift) > 4 else "") + ")"
    return "seeded"


def _template(name: str, index: str) -> str:
    return (LOCK_DIR / name).read_text().replace(PLACEHOLDER, index.rstrip("/"))


def _drift(ours: list[Locked], theirs: list[Locked]) -> list[str]:
    have = {p.name: p.version for p in theirs}
    return [f"{p.name} {have[p.name]} → {p.version}" if p.name in have else f"{p.name} missing"
            for p in ours if have.get(p.name) != p.version]


def _added_dependencies(project: Path) -> dict[str, object]:
    """What vctl added to a VOLTTRON_HOME project: dependencies not in our lock (agents, wheels, libraries)."""
    data = tomllib.loads(project.read_text())
    locked = {p.name for p in read_lock()}
    added: dict[str, object] = {}
    for spec in data.get("project", {}).get("dependencies", []):
        name = requirement_name(spec)
        if name not in locked:
            added[spec] = data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get(name)
    return added


def _merge(template: str, added: Mapping[str, object]) -> str:
    if not added:
        return template
    import tomlkit  # poetry's own TOML library, in the venv wherever poetry is
    doc = tomlkit.parse(template)
    deps = doc["project"]["dependencies"]
    develop = {}
    for spec, poetry_table in added.items():
        deps.append(spec)
        if isinstance(poetry_table, dict):
            develop[requirement_name(spec)] = poetry_table
    if develop:
        tool_deps = doc["tool"]["poetry"].setdefault("dependencies", tomlkit.table())
        for name, table in develop.items():
            tool_deps[name] = table
    return tomlkit.dumps(doc)


# -- the committed files agree --------------------------------------------------------------------------------

def verify() -> list[str]:
    """Problems with the committed set: pins that are not the lock's, a requirements.txt that is not its export."""
    problems = []
    locked = read_lock()
    project = tomllib.loads((LOCK_DIR / "pyproject.toml").read_text())
    pins = {requirement_name(s): s for s in project["project"]["dependencies"]}
    for package in locked:
        if pins.get(package.name, "").replace(" ", "") != package.pin.replace(" ", ""):
            problems.append(f"config/vhome/pyproject.toml pins {pins.get(package.name)!r}, the lock has {package.pin!r}")
    for name in sorted(set(pins) - {p.name for p in locked}):
        problems.append(f"config/vhome/pyproject.toml pins {name}, which the lock does not have")
    reqs = requirement_pins(REQUIREMENTS.read_text())
    for package in locked:
        if reqs.get(package.name) != package.version:
            problems.append(f"requirements.txt has {package.name}=={reqs.get(package.name)}, the lock {package.version}")
    for name in sorted(set(reqs) - {p.name for p in locked}):
        problems.append(f"requirements.txt has {name}, which the lock does not")
    if "--hash=sha256:" not in REQUIREMENTS.read_text():
        problems.append("requirements.txt has no hashes")
    return problems


def requirement_pins(text: str) -> dict[str, str]:
    out = {}
    for line in text.replace("\\\n", " ").splitlines():
        match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;\\]+)", line)
        if match:
            out[normalize(match.group(1))] = match.group(2)
    return out


def poetry(args: list[str], cwd: Path) -> str:
    """Run the venv's own poetry (the resolver vctl uses) on the project in CWD."""
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               POETRY_VIRTUALENVS_CREATE="false", PYTHONWARNINGS="ignore")
    done = subprocess.run([str(Path(sys.executable).parent / "poetry"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise LocksetError(f"poetry {' '.join(args)} failed: {(done.stderr or done.stdout).strip()[-600:]}")
    return done.stdout


def _refresh_cli() -> int:
    from ven_common.lockset_refresh import refresh
    return refresh()


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[3] if __doc__ else "")
        return 2
    verb, rest = argv[0], argv[1:]
    try:
        if verb == "seed" and len(rest) == 1:
            done = seed(Path(rest[0]), index_url())
            if done:
                print(f"VOLTTRON_HOME project {rest[0]}: {done}")
            return 0
        if verb == "check":
            want, have = wanted(read_lock()), installed()
            for line in differences(want, have):
                print(line)
            if "--extras" in rest:
                print(json.dumps(extras(want, have)))
            return 0
        if verb == "index":
            print(index_url())
            return 0
        if verb == "verify":
            problems = verify()
            for line in problems:
                print(line)
            return 1 if problems else 0
        if verb == "refresh":
            return _refresh_cli()
    except LocksetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"unknown command {' '.join(argv)!r}: seed VHOME | check [--extras] | index | verify | refresh", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
