"""The web page's view of the VenAgent (:class:`venagent.web.WebHost`): the few things the page
reads and the two it may do, so only the agent depends on the web module."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ven_common.contract import BRIDGE_IDENTITY

if TYPE_CHECKING:
    from venagent.agent import VenAgent


class PageHost:
    """The web page's view of this agent (:class:`venagent.web.WebHost`)."""

    def __init__(self, agent: VenAgent) -> None:
        self._agent = agent

    @property
    def identity(self) -> str:
        return str(self._agent.core.identity)

    def peers(self) -> list[str]:
        return list(self._agent.vip.peerlist().get(timeout=10))

    def get_status(self) -> dict[str, Any]:
        return self._agent.get_status()

    def recent_events(self, limit: int) -> list[dict[str, Any]]:
        engine = self._agent.engine
        return engine.recent_events(limit) if engine is not None else []

    def thing(self) -> str | None:
        config = self._agent.config
        return None if config is None else config.thing_name

    def send_event(self, shed_kw: float, duration_sec: float, event_id: str | None = None) -> dict[str, Any]:
        return self._agent.send_event(shed_kw, duration_sec, event_id=event_id)

    def restore(self) -> dict[str, Any]:
        return self._agent.restore()

    def bridge_status(self) -> Any:
        return self._agent.vip.rpc.call(BRIDGE_IDENTITY, "get_status").get(timeout=2)
