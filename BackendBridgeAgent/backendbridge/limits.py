"""AWS IoT Core publish limits, checked before anything reaches paho.

mosquitto does not enforce most of them, and an oversize payload that does reach paho is
resent forever (mosquitto drops an over-limit PUBLISH without a PUBACK, so paho retries it on every
reconnect: measured when the local broker was built), so these checks are the only guard.
"""

from __future__ import annotations

from ven_common.contract import (
    AWS_MAX_PAYLOAD_BYTES,
    AWS_MAX_QOS,
    AWS_MAX_TOPIC_BYTES,
    AWS_MAX_TOPIC_SLASHES,
)


def topic_problems(topic: str) -> list[str]:
    """Why ``topic`` cannot be published to on AWS IoT (empty list = fine)."""
    problems: list[str] = []
    if not topic:
        return ["empty topic"]
    size = len(topic.encode("utf-8"))
    if size > AWS_MAX_TOPIC_BYTES:
        problems.append(f"topic is {size} bytes > {AWS_MAX_TOPIC_BYTES}")
    slashes = topic.count("/")
    if slashes > AWS_MAX_TOPIC_SLASHES:
        problems.append(f"topic has {slashes} slashes > {AWS_MAX_TOPIC_SLASHES}")
    if "+" in topic or "#" in topic:
        problems.append("wildcards are not allowed in a publish topic")
    if "\0" in topic:
        problems.append("NUL in topic")
    return problems


def publish_problems(topic: str, payload: bytes, qos: int) -> list[str]:
    """Every AWS limit that a publish of ``payload`` on ``topic`` would break."""
    problems = topic_problems(topic)
    if len(payload) > AWS_MAX_PAYLOAD_BYTES:
        problems.append(f"payload is {len(payload)} bytes > {AWS_MAX_PAYLOAD_BYTES}")
    if qos not in range(0, AWS_MAX_QOS + 1):
        problems.append(f"qos {qos} not supported (max {AWS_MAX_QOS})")
    return problems
