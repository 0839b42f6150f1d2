"""Refreshing the locked set on purpose: the only way versions change (``./scripts/ven_control.sh refresh-lock``).

Poetry resolves the roots (``[tool.ven] roots`` in ``config/vhome/pyproject.toml``) against the index of the user's
pip configuration, with the resolver ``vctl install`` uses. Every resolved package is then pinned as a dependency of
the VOLTTRON_HOME project and locked again (same versions), the lock is exported with hashes to
``requirements.txt``, and the difference is printed. ``--keep`` resolves the current pins plus any new root, so a
root can be added without moving anything else.
"""

from __future__ import annotations

import sys
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import urlparse

from ven_common.lockset import (
    _REQUIREMENTS_HEADER,
    LOCK_DIR,
    PLACEHOLDER,
    REQUIREMENTS,
    Locked,
    LocksetError,
    index_url,
    poetry,
    read_lock,
    requirement_name,
    requirement_pins,
    verify,
)

# Poetry names the root project; never "volttron": a project that depends on a package of its own name crashes
# poetry 2.5.1's resolver (an AssertionError while it explains the self-dependency).
PROJECT_NAME = "ven-volttron-home"


def project_text(pins: list[str], roots: list[str], index: str) -> str:
    """The VOLTTRON_HOME project: every locked package pinned, the roots it was resolved from kept beside them."""
    def strings(items: list[str]) -> str:
        return "".join(f"    {_toml_string(item)},\n" for item in items)
    return (
        "# The VOLTTRON_HOME poetry project, seeded by `python -m ven_common.lockset seed` (start, the test platforms).\n"
        "# Generated with poetry.lock and requirements.txt by `./scripts/ven_control.sh refresh-lock` from [tool.ven]\n"
        "# roots: edit the roots, never the pins. Every locked package is pinned here, so `vctl install`, `install-lib`\n"
        "# and `remove` (poetry add / remove) find each one locked and change no installed version.\n"
        "[project]\n"
        f'name = "{PROJECT_NAME}"\n'
        'version = "0.1.0"\n'
        'description = "VOLTTRON_HOME poetry project of the VEN (the locked set)"\n'
        'authors = [{name = "volttron", email = "volttron@pnnl.gov"}]\n'
        f'requires-python = "~{sys.version_info[0]}.{sys.version_info[1]}"\n'
        f"dependencies = [\n{strings(pins)}]\n\n"
        "[tool.poetry]\npackage-mode = false\n\n"
        "# The index is the user's (pip's configuration), filled in when a VOLTTRON_HOME is seeded. A primary legacy\n"
        "# source: some registry mirrors answer only the simple API, and a primary source switches the JSON API off.\n"
        '[[tool.poetry.source]]\nname = "pip-index"\n'
        f'url = "{index}"\npriority = "primary"\n\n'
        "[tool.ven]\n"
        "# What the project asks for; refresh-lock resolves these to the pins above.\n"
        f"roots = [\n{strings(roots)}]\n"
    )


def _toml_string(text: str) -> str:
    return f"'{text}'" if '"' in text else f'"{text}"'


def refresh(argv: list[str] | None = None) -> int:
    argv = sys.argv[2:] if argv is None else argv
    keep = "--keep" in argv
    index = index_url()
    template = tomllib.loads((LOCK_DIR / "pyproject.toml").read_text())
    roots: list[str] = list(template["tool"]["ven"]["roots"])
    lock_path = LOCK_DIR / "poetry.lock"
    before = {p.name: p.version for p in read_lock()} if lock_path.exists() \
        else requirement_pins(REQUIREMENTS.read_text())
    with tempfile.TemporaryDirectory(prefix="ven-refresh-lock-") as tmp:
        scratch = Path(tmp)
        first = _keep_pins(roots, before) if keep else roots
        (scratch / "pyproject.toml").write_text(project_text(first, roots, index))
        print(f"==> resolving {len(first)} requirements against {index} (poetry, as vctl install does)")
        poetry(["lock", "--regenerate"], scratch)
        pins = [p.pin for p in read_lock(scratch / "poetry.lock")]
        (scratch / "pyproject.toml").write_text(project_text(pins, roots, index))
        poetry(["lock"], scratch)  # the same versions, now pinned: the lock's content hash is the project's
        lock_text = (scratch / "poetry.lock").read_text()
        exported = poetry(["export", "--format", "requirements.txt", "--without-urls"], scratch)
        project = (scratch / "pyproject.toml").read_text()
    index_line = f'url = "{index}"'
    (LOCK_DIR / "pyproject.toml").write_text(project.replace(index_line, f'url = "{PLACEHOLDER}"'))
    lock_path.write_text(_without_index(lock_text, index))
    REQUIREMENTS.write_text(_REQUIREMENTS_HEADER + exported)
    after = {p.name: p.version for p in read_lock()}
    _print_difference(before, after)
    problems = verify()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print("==> verified: requirements.txt is the lock's export, every locked package is pinned. Next: "
              "./scripts/ven_control.sh start (installs the new set), ./scripts/run_tests.sh, then commit "
              "config/vhome/ and requirements.txt")
    return 1 if problems else 0


def _without_index(lock_text: str, index: str) -> str:
    """The lock as committed: the index replaced by the placeholder, and no package description naming its host
    (descriptions are informational; poetry writes them back when it next locks a seeded project)."""
    host = urlparse(index).hostname or index
    lines = []
    for line in lock_text.replace(f'url = "{index}"', f'url = "{PLACEHOLDER}"').splitlines(keepends=True):
        lines.append('description = ""\n' if line.startswith("description = ") and host in line else line)
    return "".join(lines)


def _keep_pins(roots: list[str], current: dict[str, str]) -> list[str]:
    """The current pins, plus each root the current set lacks (a root added since the last refresh)."""
    pins = [f"{name}=={version}" for name, version in sorted(current.items())]
    for root in roots:
        if requirement_name(root) not in current:
            pins.append(root)
    return pins


def _print_difference(before: dict[str, str], after: dict[str, str]) -> None:
    changed = [f"  {n}: {before[n]} → {after[n]}" for n in sorted(after) if n in before and before[n] != after[n]]
    added = [f"  {n}: new, {after[n]}" for n in sorted(after) if n not in before]
    removed = [f"  {n}: removed (was {before[n]})" for n in sorted(before) if n not in after]
    lines = changed + added + removed
    print(f"==> {len(after)} packages locked; {len(lines)} differ from before" + (":" if lines else ""))
    for line in lines:
        print(line)


__all__ = ["Locked", "LocksetError", "project_text", "refresh"]
