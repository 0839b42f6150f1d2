"""BackendBridgeAgent: VOLTTRON bus <-> AWS IoT Core (the VOLTTRON wiring of the bridge).

Bus -> cloud: ``ven/metering``, ``ven/ack``, ``ven/event/report``, ``ven/event/state``,
``ven/actuation``, ``ven/device/fault`` go through the durable outbox; ``ven/status`` becomes a
debounced shadow update. Cloud -> VEN: every command that passes the transport check is handed
to ``ven.agent.handle_command(cmd, source="mqtt")`` (field rules and idempotency are the VEN's:
a re-sent command gets the VEN's stored ack); the ack is queued on disk, then the command is
PUBACKed. Shadow deltas go to ``ven.agent.apply_shadow_config(change)``.

The work is in :mod:`backendbridge.runtime` (one per configuration) and the pieces it is made
of (journal follower, shadow reporter, command pipeline, status); this module is the agent:
config store, subscriptions, VIP RPC and the exports.
"""

from __future__ import annotations

# volttron.client monkey-patches socket/ssl/os on import; it must come before anything that
# imports ssl (requests, paho), or those keep references to the unpatched module.
from volttron import utils  # isort: skip
from volttron.client.vip.agent import RPC, Agent, Core  # isort: skip
from volttron.utils.commands import vip_main  # isort: skip
from volttron.client.vip.agent.errors import Unreachable, VIPError  # isort: skip
from volttron.utils.jsonrpc import Error as JsonRpcError, RemoteError  # isort: skip

import logging
import os
from pathlib import Path
from typing import Any

import gevent
import gevent.queue

from ven_common.contract import ACK_SOURCE_MQTT, VEN_IDENTITY, BusTopics

from backendbridge.bridge import FORWARDED_BUS_TOPICS
from backendbridge.config import BridgeConfig, ConfigError, load_config
from backendbridge.errors import VenFailed, VenUnreachable
from backendbridge.runtime import BridgeRuntime, BridgeShared
from backendbridge.status import bridge_status

_log = logging.getLogger(__name__)
__version__ = "0.1.0"


def agent_data_dir() -> Path:
    """volttron-core 2.0.0rc38 starts agents with cwd = $VOLTTRON_HOME/agents/<identity> and
    calls ``<cwd>/data`` the agent's data dir (aip.get_agent_data_dir); no env var is set."""
    path = Path(os.environ.get("AGENT_DATA_DIR") or Path.cwd() / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


class _VipPort:
    """The runtime's :class:`~backendbridge.runtime.VenPort` over this agent's VIP connection."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        return self._agent.vip.rpc.call(VEN_IDENTITY, method, *args).get(timeout=timeout)

    def command(self, command: dict[str, Any], timeout: float) -> Any:
        try:
            return self._agent.vip.rpc.call(VEN_IDENTITY, "handle_command", command, source=ACK_SOURCE_MQTT).get(
                timeout=timeout
            )
        except gevent.Timeout:
            raise VenUnreachable(f"no answer within {timeout:g} s") from None
        except Unreachable as exc:
            raise VenUnreachable(f"not running ({exc})") from None
        except (RemoteError, JsonRpcError) as exc:
            # The VEN (or the platform's authorization check) raised: its error, not "unreachable".
            raise VenFailed(str(exc) or type(exc).__name__) from None
        except VIPError as exc:
            raise VenUnreachable(f"{type(exc).__name__}: {exc}") from None

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        self._agent.vip.pubsub.publish("pubsub", topic, message=message)


class BackendBridgeAgent(Agent):
    def __init__(self, config_path: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vip.config.set_default("config", utils.load_config(config_path) or {})
        self.vip.config.subscribe(self._configure, actions=["NEW", "UPDATE"], pattern="config")
        self._shared = BridgeShared()
        self._runtime: BridgeRuntime | None = None
        self._cfg: BridgeConfig | None = None

    @Core.receiver("onstart")
    def _onstart(self, sender: Any, **kwargs: Any) -> None:
        # @PubSub.subscribe is never registered on volttron-core rc38: subscribe explicitly.
        for topic in (*FORWARDED_BUS_TOPICS, BusTopics.STATUS):
            self.vip.pubsub.subscribe("pubsub", topic, self._on_bus).get(timeout=10)
        _log.info("subscribed to %s", ", ".join((*FORWARDED_BUS_TOPICS, BusTopics.STATUS)))

    @Core.receiver("onstop")
    def _onstop(self, sender: Any, **kwargs: Any) -> None:
        self._stop_runtime()

    def _configure(self, config_name: str, action: str, contents: Any) -> None:
        try:
            cfg = load_config(contents)
        except ConfigError as exc:
            _log.error("%s", exc)
            if self._cfg is not None:
                _log.error("keeping the previous configuration")
            return
        if cfg == self._cfg:
            return
        self._stop_runtime()
        self._cfg = cfg
        self._runtime = BridgeRuntime(cfg, agent_data_dir(), _VipPort(self), self._shared)
        self._runtime.start()

    def _stop_runtime(self) -> None:
        if self._runtime is not None:
            self._runtime.stop()
            self._runtime = None

    def _on_bus(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        if sender == self.core.identity:
            return
        try:
            self._shared.bus.put_nowait((topic, dict(headers or {}), message))
        except gevent.queue.Full:
            self._shared.counters.bus_skipped += 1
            _log.error("bus queue full; %s message not forwarded", topic)

    # -- RPC ---------------------------------------------------------------------------

    @RPC.export
    def get_status(self) -> dict[str, Any]:
        if self._runtime is None:
            return bridge_status(self._shared.counters)
        return self._runtime.status()

    @RPC.export
    def register(self) -> dict[str, Any]:
        """Register with the backend now; retries continue in the background if needed."""
        if self._runtime is None:
            return {"ok": False, "detail": "BACKEND_URL is not configured"}
        return self._runtime.register_now()

    @RPC.export
    def flush_now(self) -> dict[str, Any]:
        """Wake the drain loop (e.g. after a test changed the broker)."""
        self._shared.wake.set()
        return {"queue_depth": self._runtime.outbox.depth() if self._runtime else 0}


def main() -> None:
    vip_main(BackendBridgeAgent, version=__version__)


if __name__ == "__main__":
    main()
