"""CloudLink: the paho-mqtt 2 connection to AWS IoT Core (or the local mosquitto stand-in).

Threading model (why it looks like this): paho runs its own network thread
(``loop_start``). A VOLTTRON agent process monkey-patches only socket/ssl/os, so that is a
real OS thread, and nothing here may touch the agent's gevent hub or ``vip`` from it. Every
listener callback therefore goes through ``handoff``, a thread-safe "run this in the
consumer's context" function: :class:`backendbridge.gevent_link.GeventHandoff` in the agent,
a direct call or a queue in tests. ``publish`` is safe from any thread because in threaded
mode paho only queues the packet and wakes its loop through its socket pair.

Reconnects use our full-jitter back-off rather than paho's fixed doubling: paho's own loop
(``loop_forever(retry_first_connection=True)`` inside ``loop_start``) keeps doing the
reconnecting, and before each of its waits we set ``reconnect_delay_set(d, d)`` with the next
jittered ``d``, which makes paho wait exactly ``d``. That keeps paho's well-tested reconnect
and resend logic (QoS-1 messages queued while offline are resent with DUP after reconnect)
and only replaces the delay policy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ven_common.contract import AWS_MAX_PAYLOAD_BYTES, MqttTopics

from backendbridge.backoff import FullJitterBackoff
from backendbridge.certcheck import certificate_problems_isolated
from backendbridge.errors import CertificateError
from backendbridge.limits import publish_problems

_log = logging.getLogger(__name__)

Handoff = Callable[[Callable[[], None]], None]
_MIN_PAHO_DELAY = 0.05  # a zero delay would make paho spin on a dead endpoint
_EARLY_ACKS_KEEP = 1024


def direct_handoff(fn: Callable[[], None]) -> None:
    """Run the callback in paho's thread (tests with thread-safe listeners)."""
    fn()


class LinkListener(Protocol):
    def on_command(self, payload: bytes, dup: bool, done: Callable[[], None]) -> None:
        """``done()`` PUBACKs the command: call it once its ack is safely queued."""
    def on_shadow_delta(self, doc: dict[str, Any]) -> None: ...
    def on_shadow_rejected(self, doc: dict[str, Any]) -> None: ...
    def on_shadow_get_accepted(self, doc: dict[str, Any]) -> None: ...
    def on_connected(self, session_present: bool) -> None: ...
    def on_disconnected(self, reason: str) -> None: ...
    def on_puback(self, token: int) -> None: ...



@dataclass(frozen=True)
class LinkSettings:
    thing: str
    endpoint: str
    port: int
    ca: Path
    cert: Path
    key: Path
    topics: MqttTopics
    keepalive: int = 30
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    stable_after: float = 30.0
    max_inflight: int = 100

    def subscriptions(self) -> list[str]:
        t = self.topics
        return [t.cmd, t.shadow_update_delta, t.shadow_update_rejected, t.shadow_get_accepted]

    def will_payload(self, reason: str) -> bytes:
        return json.dumps({"venId": self.thing, "online": False, "reason": reason}).encode()


class CloudLink:
    def __init__(
        self,
        settings: LinkSettings,
        listener: LinkListener,
        *,
        handoff: Handoff = direct_handoff,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._listener = listener
        self._handoff = handoff
        self._clock = clock
        self._wall = wall_clock
        self._backoff = FullJitterBackoff(
            settings.reconnect_min, settings.reconnect_max, rng or random.Random(), settings.stable_after
        )
        self._client: mqtt.Client | None = None
        self._connected = False
        self._subscribed = False
        self._ack_lock = threading.Lock()
        self._pending: dict[int, int] = {}
        self._early: OrderedDict[int, None] = OrderedDict()
        self._waiters: dict[int, threading.Event] = {}
        self._sub_mid: int | None = None
        self._session_present = False
        self._stopping = False
        self._paho_error: str | None = None
        self.connects = 0
        self.connect_failures = 0
        self.last_connect: float | None = None
        self.last_disconnect: float | None = None
        self.last_error: str | None = None
        self.warnings: list[str] = []

    # -- public API --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Up for publishing (the outbox drains on it)."""
        return self._connected

    @property
    def subscribed(self) -> bool:
        """Every subscription granted since the last connect: commands can arrive."""
        return self._connected and self._subscribed

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def check_certificates(self) -> None:
        s = self.settings
        errors, warnings = certificate_problems_isolated(s.ca, s.cert, s.key, s.thing)
        self.warnings = warnings
        for w in warnings:
            _log.warning("certificate: %s", w)
        if errors:
            raise CertificateError(errors)

    def start(self) -> None:
        """Check the certificates (raises CertificateError), then connect in the background."""
        self.check_certificates()
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.thing,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            # A command is PUBACKed only after the VEN answered and its ack is on disk: if the
            # bridge dies in between, the broker redelivers it (persistent session).
            manual_ack=True,
        )
        client.enable_logger(logging.getLogger("backendbridge.paho"))
        client.tls_set(
            ca_certs=str(s.ca),
            certfile=str(s.cert),
            keyfile=str(s.key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        # The broker publishes this if we vanish without a DISCONNECT (crash, network loss).
        client.will_set(s.topics.telemetry, s.will_payload("connection_lost"), qos=1, retain=False)
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(0)
        # paho's stubs say int; it computes with floats, and the backoff is sub-second at first.
        client.reconnect_delay_set(s.reconnect_min, s.reconnect_min)  # type: ignore[arg-type]
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_log = self._on_log
        self._client = client
        _log.info("connecting to %s:%s as %s", s.endpoint, s.port, s.thing)
        client.connect_async(s.endpoint, s.port, keepalive=s.keepalive)
        client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, token: int = 0) -> bool:
        """Queue a publish; ``listener.on_puback(token)`` follows the broker's PUBACK.

        Returns False (nothing queued) if the publish breaks an AWS limit or paho refuses it.
        Callable while disconnected: paho keeps QoS-1 messages and sends them on reconnect.
        """
        problems = publish_problems(topic, payload, qos)
        if problems:
            _log.error("refusing to publish on %s: %s", topic, "; ".join(problems))
            return False
        client = self._client
        if client is None:
            return False
        info = client.publish(topic, payload, qos=qos)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            _log.warning("paho refused publish on %s: %s", topic, mqtt.error_string(info.rc))
            return False
        if qos == 0:
            return True
        with self._ack_lock:
            early = info.mid in self._early
            if early:
                del self._early[info.mid]
            else:
                self._pending[info.mid] = token
        if early:
            self._handoff(lambda: self._listener.on_puback(token))
        return True

    def stop(self, reason: str = "shutdown", timeout: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> None:
        """Say goodbye on the telemetry topic (the broker drops the will on a clean
        DISCONNECT), then disconnect and join paho's thread."""
        client = self._client
        if client is None:
            return
        self._stopping = True
        if self._connected:
            info = client.publish(self.settings.topics.telemetry, self.settings.will_payload(reason), qos=1)
            event = threading.Event()
            with self._ack_lock:
                if info.mid in self._early:
                    del self._early[info.mid]
                    event.set()
                else:
                    self._waiters[info.mid] = event
            deadline = self._clock() + timeout
            while not event.is_set() and self._clock() < deadline:
                sleep(0.02)
        client.disconnect()
        client.loop_stop()
        self._connected = False
        self._client = None

    # -- paho callbacks (paho's thread) -------------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # paho never sets it; without it a command->ack round trip stalls on delayed ACKs.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"CONNACK refused: {reason}"
            _log.error("broker refused the connection: %s", reason)
            return
        self._connected = True
        self._subscribed = False  # until the SUBACK grants every subscription
        self._session_present = bool(flags.session_present)
        self.connects += 1
        self.last_connect = self._wall()
        self._backoff.connected(self._clock())
        # Always resubscribe: AWS may have expired the persistent session (1 h default).
        _result, mid = client.subscribe([(topic, 1) for topic in self.settings.subscriptions()])
        self._sub_mid = mid
        _log.info(
            "connected to %s:%s (session_present=%s)", self.settings.endpoint, self.settings.port, self._session_present
        )

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any], props: Any) -> None:
        if mid != self._sub_mid:
            return
        failed = [f"{topic}: {r}" for topic, r in zip(self.settings.subscriptions(), reasons, strict=False)
                  if r.is_failure]
        self._subscribed = not failed
        if failed:
            # Connected but deaf to commands: never reported as connected (status, shadow, doctor), with why.
            self.last_error = "subscription refused: " + "; ".join(failed) + \
                " (the thing's policy must allow subscribe and receive on its command and shadow topics)"
            _log.error("%s", self.last_error)
        session_present = self._session_present
        self._handoff(lambda: self._listener.on_connected(session_present))

    def _schedule_reconnect(self, client: mqtt.Client) -> float:
        delay = max(_MIN_PAHO_DELAY, self._backoff.next_delay())
        client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]  # float delays: see start()
        return delay

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # Called inside paho's ``except OSError`` block, so the cause is still at hand.
        exc = sys.exc_info()[1]
        self.connect_failures += 1
        self.last_error = f"connect failed: {type(exc).__name__}: {exc}" if exc else "connect failed"
        delay = self._schedule_reconnect(client)
        _log.warning("%s; retrying in %.2f s", self.last_error, delay)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was_connected = self._connected
        self._connected = False
        self.last_disconnect = self._wall()
        self._backoff.disconnected(self._clock())
        text = str(reason)
        if self._paho_error:
            text = f"{text} ({self._paho_error})"
            self._paho_error = None
        if was_connected:
            self.last_error = f"disconnected: {text}"
        else:
            # With TLS 1.3 a refused client certificate surfaces only on the first read,
            # after paho considered the socket connected: it is a failed connect all the same.
            self.connect_failures += 1
            self.last_error = f"connection closed before CONNACK: {text}"
        if self._stopping:
            return
        delay = self._schedule_reconnect(client)
        _log.warning("disconnected (%s); reconnecting in %.2f s", text, delay)
        if was_connected:
            self._handoff(lambda: self._listener.on_disconnected(text))

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, buf: str) -> None:
        # paho reports socket/TLS errors only through its log; keep the last one for status.
        if level == mqtt.MQTT_LOG_ERR:
            self._paho_error = buf[:300]

    def _ack_incoming(self, mid: int, qos: int) -> None:
        # paho queues the PUBACK under its own lock and wakes its loop: safe from any thread.
        client = self._client
        if client is not None:
            client.ack(mid, qos)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topics = self.settings.topics
        payload = bytes(message.payload)
        if message.topic == topics.cmd:
            dup = bool(message.dup)
            mid, qos = message.mid, message.qos
            self._handoff(lambda: self._listener.on_command(payload, dup, lambda: self._ack_incoming(mid, qos)))
            return
        client.ack(message.mid, message.qos)  # shadow documents: nothing to lose by acking now
        handler = {
            topics.shadow_update_delta: self._listener.on_shadow_delta,
            topics.shadow_update_rejected: self._listener.on_shadow_rejected,
            topics.shadow_get_accepted: self._listener.on_shadow_get_accepted,
        }.get(message.topic)
        if handler is None:
            _log.debug("ignoring message on %s", message.topic)
            return
        if len(payload) > AWS_MAX_PAYLOAD_BYTES:
            _log.warning("dropping oversize shadow message on %s", message.topic)
            return
        try:
            doc = json.loads(payload)
        except ValueError:
            _log.warning("dropping non-JSON shadow message on %s", message.topic)
            return
        if not isinstance(doc, dict):
            _log.warning("dropping non-object shadow message on %s", message.topic)
            return
        self._handoff(lambda: handler(doc))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # Runs under paho's message mutex: never call into paho from here, only hand off.
        with self._ack_lock:
            waiter = self._waiters.pop(mid, None)
            token = self._pending.pop(mid, None)
            if waiter is None and token is None:
                # PUBACK processed before publish() recorded the mid (possible: paho thread).
                self._early[mid] = None
                while len(self._early) > _EARLY_ACKS_KEEP:
                    self._early.popitem(last=False)
        if waiter is not None:
            waiter.set()
        if token is not None:
            self._handoff(lambda: self._listener.on_puback(token))
