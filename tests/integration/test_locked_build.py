"""Built from nothing: a new venv and a new VOLTTRON_HOME from the lock, against the index this machine is configured with.

The other fixtures copy a venv that already exists, which hides drift (a package index moves daily; a copy does not).
This test builds a venv with pip from ``requirements.txt`` (the lock's hashed export) as ``start`` does, seeds a new
VOLTTRON_HOME from ``config/vhome`` as ``start`` does, starts a platform on it, and installs into it every library
and agent ``install_agents.sh`` installs, with vctl (poetry add underneath). It checks what a user's machine would
show: the venv is exactly the lock after pip, and no vctl step changed the version of any installed package. (A
`vctl remove` and its repair by ``start`` are checked against the lock by the start matrix.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ven_common import lockset

from tests.support.system import REPO, Platform

pytestmark = pytest.mark.platform

# What install_agents.sh installs (libraries, then agents), in its order.
LIBRARIES = ["volttron-lib-tree==2.0.0rc4", "volttron-lib-web==2.0.0rc7", "volttron-lib-modbus-driver==0.2.1rc1",
             str(REPO / "simbuilding")]
AGENTS = [("volttron-platform-driver==2.0.0rc9", "platform.driver"), (str(REPO / "VenAgent"), "ven.agent"),
          (str(REPO / "BackendBridgeAgent"), "ven.bridge")]


def _run(cmd: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result


def _installed(venv: Path, env: dict[str, str]) -> dict[str, str]:
    """name → version of every distribution in the venv, read by the venv's own interpreter."""
    code = ("import importlib.metadata as m, json, re; print(json.dumps({re.sub(r'[-_.]+', '-', d.metadata['Name'])"
            ".lower(): d.version for d in m.distributions()}))")
    return dict(json.loads(_run([str(venv / "bin/python"), "-c", code], env).stdout))


def test_a_venv_and_volttron_home_from_the_lock_stay_the_lock(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "VOLTTRON_HOME")}
    venv = tmp_path / "venv"
    t0 = time.monotonic()
    _run([os.environ.get("VEN_PYTHON", "/usr/bin/python3"), "-m", "venv", str(venv)], env)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _run([*pip, "-r", str(REPO / "requirements.txt")], env)
    _run([*pip, "--no-deps", "-e", str(REPO / "common"), "-e", str(REPO / "building_device"),
          "-e", str(REPO / "local_backend")], env)
    took_pip = time.monotonic() - t0

    want = lockset.wanted(lockset.read_lock())
    after_pip = _installed(venv, env)
    assert lockset.differences(want, after_pip) == [], "pip did not install exactly the lock"
    assert lockset.extras(want, after_pip) == [], "the venv holds packages the lock does not name"

    venv_env = dict(env, VIRTUAL_ENV=str(venv), PATH=f"{venv}/bin:{env['PATH']}", TMPDIR=str(tmp_path))
    platform = Platform.create(tmp_path / "p", {k: v for k, v in venv_env.items() if k in ("VIRTUAL_ENV", "PATH",
                                                                                          "TMPDIR")})
    t1 = time.monotonic()
    platform.start()
    try:
        for library in LIBRARIES:
            platform.vctl("install-lib", library, timeout=300)
        for source, identity in AGENTS:
            platform.vctl("install", source, "--vip-identity", identity, timeout=300)
        installed = _installed(venv, env)
        assert lockset.differences(want, installed) == [], "a vctl install changed an installed package's version"
        assert {k: v for k, v in installed.items() if k in after_pip} == after_pip, "vctl changed the venv"

    finally:
        platform.stop()
    print(f"venv from the lock (pip, hash-checked) {took_pip:.1f} s; platform, {len(LIBRARIES)} libraries, "
          f"{len(AGENTS)} agents: {time.monotonic() - t1:.1f} s; "
          f"{len(want)} packages, none changed")


def test_the_python_is_the_one_the_lock_was_made_for() -> None:
    """The lock is resolved for one Python minor version (volttron-core's gevent and pyzmq wheels end at 3.12)."""
    project = (REPO / "config/vhome/pyproject.toml").read_text()
    assert f'requires-python = "~{sys.version_info[0]}.{sys.version_info[1]}"' in project
