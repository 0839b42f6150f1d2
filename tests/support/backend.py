"""The cloud side in tests: a paho client holding the ``cloud_backend`` certificate.

It sees the broker exactly as the seed's backend does (publishes commands on ``ven/cmd/{thing}``,
reads ``ven/ack/{thing}``, ``volttron/metering``, telemetry and the shadow topics) and lets
tests wait on what arrived instead of sleeping.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    dup: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


class Backend:
    def __init__(self, certs: Path, port: int, client_id: str | None = None,
                 cert_name: str = "cloud_backend", ca_name: str = "ca.pem", persistent: bool = False,
                 reconnect: tuple[float, float] = (1, 2)) -> None:
        """``reconnect``: paho's (min, max) delay after the broker went away."""
        self._cond = threading.Condition()
        self.messages: list[Received] = []
        self.connected = threading.Event()
        self.connects: list[float] = []   # wall time of each CONNACK (a persistent session's backlog lands then)
        self.subscribed = threading.Event()
        self._sub_mid: int | None = None
        self.client_id = client_id or f"backend-{uuid.uuid4().hex[:8]}"
        self.persistent = persistent
        self._tls = dict(ca_certs=str(certs / ca_name), certfile=str(certs / f"{cert_name}.crt"),
                         keyfile=str(certs / f"{cert_name}.key"), cert_reqs=ssl.CERT_REQUIRED)
        self.client = self._new_client(not persistent)
        # A persistent backend keeps its subscriptions and queued messages across broker restarts,
        # as an AWS IoT rule does; by default it reconnects within ~1 s of the broker coming back.
        self.client.reconnect_delay_set(min_delay=reconnect[0], max_delay=reconnect[1])
        self.client.on_socket_open = lambda c, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        # Cleared, so a test can wait for the re-subscription after the broker came back.
        self.client.on_disconnect = lambda *a: self.subscribed.clear()
        self.port = port

    def _new_client(self, clean_session: bool) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=clean_session,
                             protocol=mqtt.MQTTv311)
        client.tls_set(**self._tls)
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if not rc.is_failure:
            self.connects.append(time.time())
            _, self._sub_mid = client.subscribe([("#", 1), ("$aws/#", 1)])
            self.connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: Any, props: Any = None) -> None:
        if mid == self._sub_mid:
            self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.dup), time.time()))
            self._cond.notify_all()

    def start(self, timeout: float = 10) -> Backend:
        self.client.connect("localhost", self.port, keepalive=30)
        self.client.loop_start()
        # Tests publish right after this: wait for the SUBACK, not just the CONNACK.
        if not (self.connected.wait(timeout) and self.subscribed.wait(timeout)):
            raise TimeoutError("backend could not connect and subscribe to the broker")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        if self.persistent:
            self._end_session()

    def _end_session(self) -> None:
        """A persistent session left on the broker queues every later message for nobody (and the
        broker rewrites it at each autosave): connect once more with a clean session to end it."""
        closer = self._new_client(True)
        done = threading.Event()
        closer.on_connect = lambda c, u, f, rc, p=None: done.set()
        try:
            closer.connect("localhost", self.port, keepalive=10)
            closer.loop_start()
            done.wait(10)
            closer.disconnect()
        except OSError:
            pass  # broker gone: its session went with it unless persisted, and the session ends anyway
        finally:
            closer.loop_stop()

    def publish(self, topic: str, payload: Any, qos: int = 1) -> None:
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        self.client.publish(topic, data, qos=qos).wait_for_publish(10)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 15, what: str = "message") -> Received:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for msg in self.messages[seen:]:
                    if predicate(msg):
                        return msg
                seen = len(self.messages)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s ({len(self.messages)} messages seen)")
                self._cond.wait(remaining)

    def on_topic(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_json(self, topic: str, match: Callable[[Any], bool] = lambda d: True, timeout: float = 15,
                  since: float = 0.0) -> Any:
        def pred(m: Received) -> bool:
            if m.topic != topic or m.at < since:
                return False
            try:
                return bool(match(m.json()))
            except ValueError:
                return False
        return self.wait_for(pred, timeout, what=f"matching message on {topic}").json()
