"""The locked set: one owner (config/vhome/poetry.lock), its export, its seeding of a VOLTTRON_HOME, no index named."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from ven_common import lockset

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_files_agree() -> None:
    """requirements.txt is the lock's export (every package, its version, hashes); the project pins = the lock."""
    assert lockset.verify() == []


def test_every_requirement_is_hash_checked() -> None:
    text = (REPO / "requirements.txt").read_text().replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all("==" in line and "--hash=sha256:" in line for line in lines), \
        [line for line in lines if "--hash=sha256:" not in line][:3]


def test_the_venv_is_the_lock() -> None:
    """The interpreter running the tests is the platform venv: exactly the lock (what start and CI install)."""
    want, have = lockset.wanted(lockset.read_lock()), lockset.installed()
    assert lockset.differences(want, have) == []


def test_no_file_names_a_package_index_host() -> None:
    """The index is the user's (pip's configuration): the repository names none, in any tracked file."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False).stdout.split()
    if not files:  # the service user's copy has no .git: every file then
        files = [str(p.relative_to(REPO)) for p in REPO.rglob("*")
                 if p.is_file() and not any(part.startswith((".", "__pycache__")) for part in p.relative_to(REPO).parts)]
    hosts = ("pypi" + ".org", "pythonhosted" + ".org", "test" + ".pypi")  # spelled apart: this file is scanned too
    offenders = []
    for name in files:
        path = REPO / name
        if path.suffix in (".png", ".whl", ".gz", ".sqlite", ".pyc") or not path.is_file() or "artifacts" in path.parts:
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {h}" for h in hosts if h in text]
    assert offenders == []


def test_the_project_is_never_named_volttron() -> None:
    """A root project named like a package it depends on (volttron) crashes poetry 2.5.1's resolver."""
    project = tomllib.loads((REPO / "config/vhome/pyproject.toml").read_text())
    assert project["project"]["name"] != "volttron"
    assert any(dep.startswith("volttron==") for dep in project["project"]["dependencies"])


def test_the_roots_are_locked() -> None:
    project = tomllib.loads((REPO / "config/vhome/pyproject.toml").read_text())
    locked = {p.name for p in lockset.read_lock()}
    for root in project["tool"]["ven"]["roots"]:
        assert lockset.requirement_name(root) in locked, root


def test_seeding_fills_in_the_index_and_is_done_once(tmp_path: Path) -> None:
    vhome = tmp_path / "vhome"
    assert lockset.seed(vhome, "http://mirror.example:3141/root/simple/") == "seeded"
    project = (vhome / "pyproject.toml").read_text()
    assert 'url = "http://mirror.example:3141/root/simple"' in project and lockset.PLACEHOLDER not in project
    lock = (vhome / "poetry.lock").read_text()
    assert lockset.PLACEHOLDER not in lock and 'url = "http://mirror.example:3141/root/simple"' in lock
    assert lockset.seed(vhome, "http://mirror.example:3141/root/simple") == ""


def test_a_drifted_project_is_reseeded_keeping_what_vctl_added(tmp_path: Path) -> None:
    vhome = tmp_path / "vhome"
    lockset.seed(vhome, "http://index.example/simple")
    # What an older seed and vctl left: a lock resolved on another day, agents and a wheel added.
    (vhome / "pyproject.toml").write_text(
        '[project]\nname = "volttron"\nversion = "0.1.0"\nrequires-python = "~3.11"\n'
        'dependencies = ["volttron-core==2.0.0rc38", "virtualenv (==99.0)",\n'
        '  "venagent @ file:///srv/src/VenAgent", "volttron-lib-simbuilding-driver @ file:///vh/wheelhouse/s.whl"]\n'
        '[tool.poetry]\npackage-mode = false\n[tool.poetry.dependencies]\nvenagent = {develop = true}\n')
    lock = (vhome / "poetry.lock").read_text()
    virtualenv = next(p for p in lockset.read_lock() if p.name == "virtualenv")
    (vhome / "poetry.lock").write_text(lock.replace(f'name = "virtualenv"\nversion = "{virtualenv.version}"',
                                                    'name = "virtualenv"\nversion = "99.0"'))
    done = lockset.seed(vhome, "http://index.example/simple")
    assert done.startswith("re-seeded") and f"virtualenv 99.0 → {virtualenv.version}" in done
    project = tomllib.loads((vhome / "pyproject.toml").read_text())
    deps = project["project"]["dependencies"]
    assert "venagent @ file:///srv/src/VenAgent" in deps
    assert "volttron-lib-simbuilding-driver @ file:///vh/wheelhouse/s.whl" in deps
    assert f"virtualenv=={virtualenv.version}" in deps and "virtualenv (==99.0)" not in deps
    assert project["tool"]["poetry"]["dependencies"]["venagent"] == {"develop": True}
    assert project["project"]["name"] == "ven-volttron-home"
    assert lockset.seed(vhome, "http://index.example/simple") == ""


def test_differences_name_missing_and_moved_packages() -> None:
    want = {"a": "1.0", "b": "2.0", "c": "3.0"}
    have = {"a": "1.0", "b": "2.1", "d": "4.0", "ven-common": "0.1.0"}
    assert lockset.differences(want, have) == ["b==2.0 (installed 2.1)", "c==3.0"]
    assert lockset.extras(want, have) == ["d==4.0"]


def test_markers_of_other_platforms_are_not_wanted() -> None:
    packages = [lockset.Locked("colorama", "0.4.6", 'sys_platform == "win32"'), lockset.Locked("six", "1.17.0", None)]
    assert lockset.wanted(packages) == {"six": "1.17.0"}


@pytest.mark.parametrize(("env", "expected"), [
    ({"PIP_INDEX_URL": "https://mirror.example/simple/ https://other.example/simple"}, "https://mirror.example/simple"),
])
def test_the_index_is_the_users(env: dict[str, str], expected: str) -> None:
    assert lockset.index_url(env) == expected


def test_without_configuration_the_index_is_pips_own_default(tmp_path: Path) -> None:
    env = {"PIP_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    url = lockset.index_url(env)
    assert url.startswith("https://") and url.endswith("/simple")


def test_the_cli_says_what_it_takes() -> None:
    assert lockset.main(["nonsense"]) == 2


def test_a_refreshed_lock_is_committed_without_the_index() -> None:
    from ven_common.lockset_refresh import _without_index
    index = "https://mirror.example/simple"
    lock = ('[[package]]\nname = "x"\ndescription = "Mirrored on mirror.example daily"\n[package.source]\n'
            f'type = "legacy"\nurl = "{index}"\nreference = "pip-index"\n')
    committed = _without_index(lock, index)
    assert "mirror.example" not in committed and f'url = "{lockset.PLACEHOLDER}"' in committed
    assert 'description = ""' in committed


def test_keep_adds_a_new_root_and_moves_nothing_else() -> None:
    from ven_common.lockset_refresh import _keep_pins
    pins = _keep_pins(["six", "attrs>=20", "newpkg<2"], {"six": "1.17.0", "attrs": "26.1.0"})
    assert pins == ["attrs==26.1.0", "six==1.17.0", "newpkg<2"]


def test_the_project_file_pins_and_keeps_its_roots() -> None:
    from ven_common.lockset_refresh import PROJECT_NAME, project_text
    text = project_text(['colorama==0.4.6 ; sys_platform == "win32"', "six==1.17.0"], ["six"], "https://i.example/simple")
    data = tomllib.loads(text)
    assert data["project"]["name"] == PROJECT_NAME
    assert data["project"]["dependencies"] == ['colorama==0.4.6 ; sys_platform == "win32"', "six==1.17.0"]
    assert data["tool"]["ven"]["roots"] == ["six"] and data["tool"]["poetry"]["source"][0]["priority"] == "primary"
