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
from typing import Any, cast

import gevent
import gevent.event
from volttron.client.vip.agent import Agent, Core
from volttron.types.agent_context import AgentOptions
from volttron.types.auth.auth_credentials import VolttronCredentials


class VipClientError(RuntimeError):
    """The client could not register or connect."""


def _vctl(vhome: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VOLTTRON_HOME=str(vhome))
    return subprocess.run(["vctl", *args], cwd=vhome, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def ensure_credentials(vhome: Path, identity: str) -> Path:
    path = vhome / "credentials_store" / f"{identity}.json"
    if not path.exists():
        result = _vctl(vhome, "auth", "add", identity)
        if not path.exists():
            raise VipClientError(f"vctl auth add {identity} failed: {result.stdout} {result.stderr}".strip())
    return path


def _core(agent: Agent) -> Core:
    # Agent.core is typed as the abstract CoreLoop; the core builder makes a Core (run, stop, ...).
    return cast(Core, agent.core)


def stop(agent: Agent, timeout: float = 2.0) -> None:
    """Disconnect an agent made by :func:`connect`."""
    _core(agent).stop(timeout=timeout)


def connect(vhome: str | Path, identity: str, timeout: float = 15.0) -> Agent:
    """A connected Agent for ``identity`` on the platform at ``vhome`` (caller must :func:`stop` it)."""
    vhome = Path(vhome)
    creds_path = ensure_credentials(vhome, identity)
    creds = VolttronCredentials(**json.loads(creds_path.read_text()))
    address = f"ipc://@{vhome}/run/vip.socket"
    agent = Agent(credentials=creds, address=address,
                  options=AgentOptions(heartbeat_autostart=False, enable_store=False, volttron_home=str(vhome)))
    ready = gevent.event.Event()
    gevent.spawn(_core(agent).run, ready)
    if not ready.wait(timeout):
        raise VipClientError(f"could not connect to the platform at {vhome} within {timeout} s")
    return agent


def call(agent: Agent, peer: str, method: str, *args: Any, timeout: float = 15.0, **kwargs: Any) -> Any:
    return agent.vip.rpc.call(peer, method, *args, **kwargs).get(timeout=timeout)


def platform_running(vhome: str | Path) -> bool:
    """True when VOLTTRON_HOME's VOLTTRON_PID names a live process (no connection attempt)."""
    try:
        pid = int((Path(vhome) / "VOLTTRON_PID").read_text().strip())
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, owned by another user
    except (OSError, ValueError):
        return False
    return True


def call_once(peer: str, method: str, *args: Any, timeout: float = 15.0, identity: str = "ven.operator",
              **kwargs: Any) -> Any:
    """Connect, call one RPC, disconnect. VipClientError carries a one-line reason and its fix."""
    vhome = os.environ.get("VOLTTRON_HOME")
    if not vhome:
        raise VipClientError("VOLTTRON_HOME is not set: run this through ./scripts/ven_control.sh, "
                             "or export VOLTTRON_HOME=<the platform's home>")
    if not platform_running(vhome):
        raise VipClientError(f"the VOLTTRON platform is not running (VOLTTRON_HOME={vhome}): "
                             f"start it with ./scripts/ven_control.sh start")
    store = Path(vhome) / "credentials_store"
    if store.exists() and not os.access(store, os.R_OK | os.X_OK):
        raise VipClientError(f"{store} is not readable by this user: run as the platform's user "
                             f"(./scripts/ven_control.sh does this)")
    try:
        agent = connect(vhome, identity, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise VipClientError(f"cannot connect to the platform at {vhome}: {exc}") from None
    try:
        return call(agent, peer, method, *args, timeout=timeout, **kwargs)
    except gevent.Timeout:
        raise VipClientError(f"{peer}.{method} did not answer within {timeout:g} s: is the agent running? "
                             f"see ./scripts/ven_control.sh status") from None
    except Exception as exc:  # noqa: BLE001 - remote errors arrive as many types; one line for the operator
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise VipClientError(f"{peer}.{method} failed: {text}") from None
    finally:
        stop(agent)
