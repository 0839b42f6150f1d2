"""Runs the in-process tier (test_shell_*.py) in a child pytest: see conftest.py for why."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent / "artifacts"


def test_agent_shells_in_process(tmp_path: Path) -> None:
    env = dict(os.environ, VEN_INPROCESS_CHILD="1")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:anyio", "--durations=5",
         f"--basetemp={tmp_path / 'child'}", str(HERE)],
        cwd=HERE.parents[1], env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    elapsed = time.monotonic() - started
    report = f"{result.stdout}\n{result.stderr}\nin-process tier: exit {result.returncode} in {elapsed:.1f} s wall\n"
    if ARTIFACTS.is_dir():
        (ARTIFACTS / "inprocess_tier.txt").write_text(report)
    print(report)
    assert result.returncode == 0, report[-6000:]
