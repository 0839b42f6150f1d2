"""Publishing on the VOLTTRON bus without two round trips per message.

volttron-core 2.0.0rc38's ``PubSub.publish`` asks the router for its peer list and then
``platform.auth`` whether this agent may publish on the topic, synchronously, before every single
message (~2.3 ms, and ~2.6 ms of the platform's CPU, measured on this project's 2-core machines).
An immediate event makes five bus messages, so commands sent back to back queued behind the
previous ones' checks. The answer only changes when an operator changes the authorization, so
it is asked once per topic and kept for ``ttl_sec``; the message then goes to the router exactly
as ``PubSub.publish`` sends it. A refused topic is not published (and is asked again after the
ttl). When platform.auth cannot be asked, or the pinned PubSub internals are not there, the
message takes ``PubSub.publish``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

_log = logging.getLogger(__name__)

AUTH_IDENTITY = "platform.auth"
DEFAULT_TTL_SEC = 30.0


class CachedAuthPublisher:
    def __init__(self, pubsub: Any, rpc: Any, identity: str, ttl_sec: float = DEFAULT_TTL_SEC,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pubsub = pubsub
        self._rpc = rpc
        self._identity = identity
        self._ttl = ttl_sec
        self._clock = clock
        self._authorized: dict[str, tuple[bool, float]] = {}
        self._direct = all(hasattr(pubsub, name) for name in ("_results", "_create_message_for_router", "__core__"))
        if not self._direct:
            _log.warning("this VOLTTRON's PubSub lacks the internals the VEN's publisher uses: "
                         "every bus message pays PubSub.publish's checks")

    def publish(self, topic: str, headers: dict[str, Any], message: Any) -> Any:
        allowed = self._may_publish(topic) if self._direct else None
        if allowed is None:
            return self._pubsub.publish("pubsub", topic, headers=headers, message=message)
        if not allowed:
            _log.error("%s may not publish on %s (platform.auth): message dropped", self._identity, topic)
            return None
        from volttron.client.vip.agent.subsystems import pubsub as pubsub_module

        headers = dict(headers, min_compatible_version=pubsub_module.min_compatible_version,
                       max_compatible_version=pubsub_module.max_compatible_version)
        result = next(self._pubsub._results)  # noqa: SLF001 - PubSub.publish's own send, pinned rc38 (module doc)
        args = ["publish", topic, {"bus": "", "headers": headers, "message": message}]
        frame = self._pubsub._create_message_for_router(msg_id=result.ident, args=args)  # noqa: SLF001 - as above
        self._pubsub.__core__().connection.send_vip_message(message=frame)
        return result

    def _may_publish(self, topic: str) -> bool | None:
        """The cached answer of platform.auth; None when it cannot be had (then PubSub.publish decides)."""
        now = self._clock()
        known = self._authorized.get(topic)
        if known is not None and known[1] > now:
            return known[0]
        try:
            allowed = bool(self._rpc.call(AUTH_IDENTITY, "check_pubsub_authorization", identity=self._identity,
                                          topic_pattern=topic, access="publish").get(timeout=10))
        except Exception as exc:  # noqa: BLE001 - e.g. no auth service: PubSub.publish's own behaviour applies
            _log.info("cannot ask %s about publishing on %s (%s)", AUTH_IDENTITY, topic, exc)
            return None
        self._authorized[topic] = (allowed, now + self._ttl)
        return allowed
