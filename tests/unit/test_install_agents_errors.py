"""install_agents.sh refuses clearly, in one line, before touching anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(REPO / "install_agents.sh")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture()
def base_env(tmp_path: Path) -> dict[str, str]:
    if os.geteuid() == 0:
        pytest.skip("runs as the platform's user (the suite does)")
    if not shutil.which("vctl"):
        pytest.skip("needs the platform venv on PATH")
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("ca.pem", "client.crt", "client.key"):
        (certs / name).write_text("x")
    env = {k: v for k, v in os.environ.items() if k not in ("VOLTTRON_HOME", "VEN_ROOT")}
    env.update(VIRTUAL_ENV=os.environ.get("VIRTUAL_ENV", str(Path(shutil.which("vctl")).parent.parent)),
               VEN_CERTS=str(certs), VOLTTRON_HOME=str(tmp_path / "no-platform-home"))
    return env


def _one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("install_agents.sh: error:"), result.stderr
    for word in words:
        assert word in lines[0]


def test_volttron_home_unset(base_env: dict[str, str]) -> None:
    base_env.pop("VOLTTRON_HOME")
    _one_line_error(_run(base_env), "VOLTTRON_HOME is not set")


def test_missing_certificate_names_the_file(base_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "certs" / "client.key").unlink()
    _one_line_error(_run(base_env), "client.key", "ven_control.sh start")


def test_no_running_platform(base_env: dict[str, str]) -> None:
    Path(base_env["VOLTTRON_HOME"]).mkdir()
    _one_line_error(_run(base_env), "no running platform")
