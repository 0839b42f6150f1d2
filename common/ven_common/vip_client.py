"""A VIP client for processes outside the platform (operator scripts, tests, benchmarks).

It registers its own credentials with ``vctl auth add`` once, then connects like an agent.
Importing it pulls in volttron.client, which monkey-patches socket/ssl/os with gevent for the
whole process: import it only where that is acceptable.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from volttron.client.vip.agent import Agent
from volttron.types.agent_context import AgentOptions
from volttron.types.auth.auth_credentials import VolttronCredentials


class VipClientError(RuntimeError):
    """The client could not register or connect."""


def _vctl(vhome: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VOLTTRON_HOME=str(vhome))
    return subprocess.run(["vctl", *args], cwd=vhome, env=env, capture_output=True, text=True, timeout=timeout)


def ensure_credentials(vhome: Path, identity: str) -> Path:
    path = vhome / "credentials_store" / f"{identity}.json"
    if not path.exists():
        result = _vctl(vhome, "auth", "add", identity)
        if not path.exists():
            raise VipClientError(f"vctl auth add {identity} failed: {result.stdout} {result.stderr}".strip())
    return path


def connect(vhome: str | Path, identity: str, timeout: float = 15.0) -> Agent:
    """A connected Agent for ``identity`` on the platform at ``vhome`` (caller must ``core.stop()``)."""
    vhome = Path(vhome)
    creds_path = ensure_credentials(vhome, identity)
    creds = VolttronCredentials(**json.loads(creds_path.read_text()))
    address = f"ipc://@{vhome}/run/vip.socket"
    agent = Agent(credentials=creds, address=address,
                  options=AgentOptions(heartbeat_autostart=False, enable_store=False, volttron_home=str(vhome)))
    ready = gevent.event.Event()
    gevent.spawn(agent.core.run, ready)
    if not ready.wait(timeout):
        raise VipClientError(f"could not connect to the platform at {vhome} within {timeout} s")
    return agent


def call(agent: Agent, peer: str, method: str, *args: Any, timeout: float = 15.0, **kwargs: Any) -> Any:
    return agent.vip.rpc.call(peer, method, *args, **kwargs).get(timeout=timeout)
