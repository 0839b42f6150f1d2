"""The VEN's bus publisher asks platform.auth once per topic (per ttl), not once per message."""

from __future__ import annotations

import itertools
from typing import Any

from venagent.bus_publish import CachedAuthPublisher


class _Answer:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, timeout: float | None = None) -> Any:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value


class _Rpc:
    def __init__(self, allowed: Any = True) -> None:
        self.allowed = allowed
        self.asked: list[str] = []

    def call(self, peer: str, method: str, **kwargs: Any) -> _Answer:
        assert (peer, method) == ("platform.auth", "check_pubsub_authorization")
        self.asked.append(kwargs["topic_pattern"])
        return _Answer(self.allowed)


class _Result:
    def __init__(self, ident: str) -> None:
        self.ident = ident


class _Connection:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_vip_message(self, message: Any) -> None:
        self.sent.append(message)


class _Core:
    def __init__(self) -> None:
        self.connection = _Connection()


class _PubSub:
    """The parts of volttron-core rc38's PubSub the publisher uses, plus its slow publish()."""

    def __init__(self) -> None:
        self._results = (_Result(str(i)) for i in itertools.count())
        self.core = _Core()
        self.slow: list[str] = []

    def __core__(self) -> _Core:
        return self.core

    def _create_message_for_router(self, msg_id: str, args: list[Any]) -> tuple[str, list[Any]]:
        return msg_id, args

    def publish(self, peer: str, topic: str, headers: Any = None, message: Any = None) -> None:
        self.slow.append(topic)


def test_one_question_per_topic_then_straight_to_the_router() -> None:
    pubsub, rpc = _PubSub(), _Rpc()
    clock = iter([0.0, 1.0, 2.0, 40.0]).__next__
    bus = CachedAuthPublisher(pubsub, rpc, "ven.agent", ttl_sec=30.0, clock=clock)
    for _ in range(3):
        bus.publish("ven/ack", {"vseq": 1}, {"op": "event"})
    assert rpc.asked == ["ven/ack"]
    sent = pubsub.core.connection.sent
    assert len(sent) == 3 and sent[0][1][:2] == ["publish", "ven/ack"]
    assert sent[0][1][2]["headers"]["min_compatible_version"] == "3.0" and sent[0][1][2]["message"] == {"op": "event"}
    bus.publish("ven/ack", {}, {})   # the ttl ran out: asked again
    assert rpc.asked == ["ven/ack", "ven/ack"] and not pubsub.slow


def test_a_refused_topic_is_not_published_and_no_auth_answer_means_the_ordinary_publish() -> None:
    pubsub = _PubSub()
    refused = CachedAuthPublisher(pubsub, _Rpc(allowed=False), "ven.agent")
    assert refused.publish("protected/x", {}, {}) is None
    assert pubsub.core.connection.sent == [] and pubsub.slow == []
    unknown = CachedAuthPublisher(pubsub, _Rpc(allowed=RuntimeError("no platform.auth")), "ven.agent")
    unknown.publish("ven/status", {}, {})
    assert pubsub.slow == ["ven/status"] and pubsub.core.connection.sent == []
