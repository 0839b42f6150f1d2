"""The bridge at work for one configuration: outbox, cloud link, drainer and their greenlets.

The agent builds a :class:`BridgeRuntime` from each valid configuration and stops the old one;
what must outlive a reconfigure (counters, the shadow's state, the queues of bus messages and
commands) is in :class:`BridgeShared`. The VEN is reached only through :class:`VenPort`, so a
test drives a runtime with fakes and no platform.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.queue

from ven_common.contract import BusTopics

from backendbridge.batching import KIND_SHADOW, KIND_SHADOW_GET
from backendbridge.bridge import CommandPipeline, Routed, route_bus_message
from backendbridge.config import BridgeConfig
from backendbridge.drain import Drainer
from backendbridge.errors import CertificateError, JournalUnavailable
from backendbridge.gevent_link import GeventHandoff
from backendbridge.journal_follower import Cursor, JournalFollower
from backendbridge.mqtt_link import CloudLink, LinkSettings
from backendbridge.outbox import Outbox
from backendbridge.registration import RegistrationPolicy, RegistrationResult, register_once
from backendbridge.shadow_reporter import ShadowReporter
from backendbridge.status import BridgeCounters, bridge_status, shadow_counters

_log = logging.getLogger(__name__)

BUS_QUEUE_MAX = 20_000
COMMAND_QUEUE_MAX = 1000
_CERT_RECHECK_SEC = 60.0


class VenPort(Protocol):
    """The VenAgent and the bus, as the runtime sees them (VIP in the agent, fakes in tests)."""

    def call(self, method: str, *args: Any, timeout: float) -> Any:
        """An RPC on ``ven.agent``; raises anything when there is no answer."""

    def command(self, command: dict[str, Any], timeout: float) -> Any:
        """``handle_command``; raises VenUnreachable or VenFailed (backendbridge.bridge)."""

    def publish(self, topic: str, message: dict[str, Any]) -> None: ...


@dataclass
class BridgeShared:
    """What the bridge keeps across reconfigures."""

    counters: BridgeCounters = field(default_factory=BridgeCounters)
    shadow: ShadowReporter = field(default_factory=ShadowReporter)
    wake: gevent.event.Event = field(default_factory=gevent.event.Event)
    # Bus messages wait here until a runtime exists, then one greenlet handles them in order.
    bus: gevent.queue.Queue[tuple[str, dict[str, Any], Any]] = field(
        default_factory=lambda: gevent.queue.Queue(maxsize=BUS_QUEUE_MAX))
    commands: gevent.queue.Queue[tuple[bytes, Any]] = field(
        default_factory=lambda: gevent.queue.Queue(maxsize=COMMAND_QUEUE_MAX))


def link_settings(cfg: BridgeConfig) -> LinkSettings:
    return LinkSettings(
        thing=cfg.thing_name, endpoint=cfg.endpoint, port=cfg.port, ca=cfg.ca_file, cert=cfg.cert_file,
        key=cfg.key_file, topics=cfg.mqtt_topics(), keepalive=cfg.keepalive, reconnect_min=cfg.reconnect_min_sec,
        reconnect_max=cfg.reconnect_max_sec, stable_after=cfg.stable_after_sec, max_inflight=cfg.max_inflight,
    )


class BridgeRuntime:
    def __init__(self, cfg: BridgeConfig, data_dir: Path, ven: VenPort, shared: BridgeShared,
                 post: Callable[..., Any] | None = None) -> None:
        self.cfg = cfg
        self._ven = ven
        self._shared = shared
        self._post = post
        self.outbox = Outbox(cfg.outbox_file(data_dir), max_messages=cfg.outbox_max_messages,
                             max_bytes=cfg.outbox_max_bytes,
                             drop_policy=cfg.outbox_drop_policy, synchronous=cfg.outbox_synchronous)
        _log.info("outbox %s: %d queued, last seq %d", self.outbox.path, self.outbox.depth(), self.outbox.last_seq())
        self.pipeline = CommandPipeline(cfg.thing_name)
        self._handoff = GeventHandoff()
        self.link = CloudLink(link_settings(cfg), self, handoff=self._handoff, rng=random.Random())
        self.drainer = Drainer(
            self.outbox, self.link, ven_id=cfg.thing_name,
            # One reading per message unless the backend asked for batches (batch_metering).
            batch_max_readings=cfg.batch_max_readings if cfg.batch_metering else 1,
            max_inflight=cfg.max_inflight, max_publish_per_sec=cfg.max_publish_per_sec,
        )
        self.journal = JournalFollower(self.outbox, self._fetch_journal, self._deliver, shared.counters)
        self._topics = cfg.mqtt_topics()
        self._greenlets: list[gevent.Greenlet] = []
        self._registration: gevent.Greenlet | None = None
        self._shadow_timer: gevent.Greenlet | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        loops = (self._bus_loop, self._drain_loop, self._command_loop, self._status_loop, self._link_starter)
        self._greenlets = [gevent.spawn(loop) for loop in loops]
        if self.cfg.backend_url and self.cfg.registration_enabled:
            self._registration = gevent.spawn(self._registration_loop)

    def stop(self) -> None:
        for glet in [*self._greenlets, self._registration, self._shadow_timer]:
            if glet is not None:
                glet.kill(block=False)
        self._greenlets, self._registration, self._shadow_timer = [], None, None
        try:
            self.link.stop(reason="shutdown", sleep=gevent.sleep)
        except (Exception, gevent.Timeout):  # noqa: BLE001 - stopping goes on whatever the link does (logged)
            _log.exception("error while disconnecting")
        self._handoff.close()
        self.outbox.close()

    def _link_starter(self) -> None:
        """Start the link; with bad certificates keep queueing and re-check periodically."""
        while True:
            try:
                self.link.start()
                self._shared.counters.cert_errors = []
                return
            except CertificateError as exc:
                self._shared.counters.cert_errors = exc.problems
                for problem in exc.problems:
                    _log.error("cannot connect to AWS IoT: %s", problem)
                gevent.sleep(_CERT_RECHECK_SEC)

    def status(self) -> dict[str, Any]:
        return bridge_status(self._shared.counters, self.cfg, self.outbox, self.drainer, self.link, self.pipeline)

    # -- bus -> cloud ------------------------------------------------------------------

    def _bus_loop(self) -> None:
        self.journal.catch_up()
        while True:
            topic, headers, message = self._shared.bus.get()
            try:
                self.journal.accept(topic, headers, message)
            except (Exception, gevent.Timeout):  # noqa: BLE001 - one bad message must not stop the others (logged)
                _log.exception("forwarding a %s message failed", topic)

    def _fetch_journal(self, epoch: str, seq: int, limit: int) -> Mapping[str, Any]:
        try:
            page: Mapping[str, Any] = self._ven.call("get_journal_since", epoch, seq, limit,
                                                     timeout=self.cfg.rpc_timeout_sec)
        except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - any failure means "no catch-up now"
            raise JournalUnavailable(str(exc)) from None
        return page

    def _deliver(self, topic: str, message: Any, cursor: Cursor | None) -> None:
        if topic == BusTopics.STATUS:
            self._on_status(message)
            self.journal.skipped(cursor)
            return
        routed = route_bus_message(topic, message, self._topics)
        if not isinstance(routed, Routed):
            self._shared.counters.bus_skipped += 1
            _log.debug("not forwarding %s: %s", topic, routed)
            self.journal.skipped(cursor)
            return
        self._enqueue(routed.kind, routed.topic, routed.payload, cursor=cursor)

    def _enqueue(self, kind: str, topic: str, payload: dict[str, Any], supersede: bool = False,
                 cursor: Cursor | None = None) -> None:
        try:
            self.outbox.enqueue(kind, topic, payload, supersede=supersede, cursor=cursor)
        except (ValueError, TypeError) as exc:
            # Not JSON-serialisable or over AWS's limits: it can never be sent. Counted (status
            # "unqueueable") rather than blocking everything behind it; other errors (disk)
            # propagate, the cursor stays, and the journal catch-up fetches the message again.
            self._shared.counters.bus_unqueueable += 1
            _log.error("cannot queue %s for %s: %s", kind, topic, exc)
            self.journal.skipped(cursor)
            return
        self.journal.queued(cursor)
        self._shared.wake.set()

    def _drain_loop(self) -> None:
        wake = self._shared.wake
        while True:
            wake.clear()
            try:
                wait = self.drainer.pump()
            except (Exception, gevent.Timeout):  # noqa: BLE001 - the drain must outlive any single failure (logged)
                _log.exception("drain failed")
                wait = 1.0
            if wait == 0.0:
                gevent.sleep(0)
                continue
            # A periodic look even without a wake-up, in case a PUBACK was missed.
            wake.wait(timeout=5.0 if wait is None else wait)

    # -- shadow ------------------------------------------------------------------------

    def _on_status(self, message: Any) -> None:
        self._shared.shadow.note_status(message)
        if self._shadow_timer is None:
            self._shadow_timer = gevent.spawn_later(self.cfg.shadow_debounce_sec, self._debounced_shadow)

    def _debounced_shadow(self) -> None:
        self._shadow_timer = None
        self.push_shadow()

    def push_shadow(self, version: int | None = None) -> None:
        doc = self._shared.shadow.document(shadow_counters(self.status()), version)
        self._enqueue(KIND_SHADOW, self._topics.shadow_update, doc, supersede=True)

    def on_shadow_delta(self, doc: dict[str, Any]) -> None:
        gevent.spawn(self._apply_delta, doc)

    def _apply_delta(self, doc: dict[str, Any]) -> None:
        outcome = self._shared.shadow.take_delta(doc)
        if outcome.change:
            try:
                result = self._ven.call("apply_shadow_config", outcome.change, timeout=self.cfg.rpc_timeout_sec)
            except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - any failure is reported back as refused
                _log.error("VEN did not take the shadow config %s: %s", outcome.change, exc)
                self._shared.shadow.settle(outcome, error=str(exc))
            else:
                self._shared.shadow.settle(outcome, accepted=result)
        else:
            self._shared.shadow.settle(outcome)
        self.push_shadow()

    def on_shadow_rejected(self, doc: dict[str, Any]) -> None:
        if self._shared.shadow.rejected(doc):
            self._enqueue(KIND_SHADOW_GET, self._topics.shadow_get, {})

    def on_shadow_get_accepted(self, doc: dict[str, Any]) -> None:
        version = self._shared.shadow.get_accepted(doc)
        if version is not None:
            self.push_shadow(version=version)

    # -- cloud -> VEN ------------------------------------------------------------------

    def on_command(self, payload: bytes, dup: bool, done: Any = None) -> None:
        # Ordered, one at a time: an "event" followed quickly by a "restore" must reach the
        # VEN in that order.
        counters = self._shared.counters
        if dup:
            counters.redeliveries += 1
        try:
            self._shared.commands.put_nowait((payload, done))
        except gevent.queue.Full:
            # Not PUBACKed: the broker redelivers it after the next reconnect.
            counters.commands_dropped += 1
            _log.error("command queue full; a command (%d bytes) waits for redelivery", len(payload))

    def _command_loop(self) -> None:
        while True:
            raw, done = self._shared.commands.get()
            try:
                self.pipeline.handle(raw, self._call_ven, self._queue_ack)
            except (Exception, gevent.Timeout):  # noqa: BLE001 - no PUBACK then; logged
                # No ack on disk: no PUBACK either, so the broker delivers the command again
                # (after a reconnect) and the VEN's idempotency answers it then.
                self._shared.counters.commands_unacked += 1
                _log.exception("command not acknowledged (no PUBACK: the broker will redeliver it)")
                continue
            if done is not None:
                done()

    def _call_ven(self, command: dict[str, Any]) -> Any:
        return self._ven.command(command, timeout=self.cfg.rpc_timeout_sec)

    def _queue_ack(self, ack: dict[str, Any]) -> None:
        self.outbox.enqueue("ack", self._topics.ack, ack)
        self._shared.wake.set()

    # -- link events -------------------------------------------------------------------

    def on_connected(self, session_present: bool) -> None:
        _log.info("cloud link up (session_present=%s)", session_present)
        self.drainer.on_reconnected()
        self._shared.wake.set()
        if self._shared.shadow.latest_status is None:
            gevent.spawn(self._seed_status)
        self.push_shadow()

    def _seed_status(self, tries: int = 15, every_sec: float = 2.0) -> None:
        """No ``ven/status`` seen yet: the VEN published its last one before this bridge subscribed
        (it starts first), and publishes again on a change or every 30 s. Ask it, so the shadow shows
        the building now; while the VEN has no fresh reading yet (power unknown), ask again a few times."""
        seeded: Any = None
        for _ in range(tries):
            if self._shared.shadow.latest_status is not seeded:
                return   # a ven/status arrived meanwhile: newer than anything asked for
            try:
                status = self._ven.call("get_status", timeout=self.cfg.rpc_timeout_sec)
            except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - the next ven/status fills it instead
                _log.info("could not ask the VEN for its status (%s): the shadow waits for its next one", exc)
                return
            if self._shared.shadow.latest_status is not seeded:
                return
            self._on_status(status)
            seeded = self._shared.shadow.latest_status
            if not isinstance(status, dict) or status.get("power_kw") is not None:
                return
            gevent.sleep(every_sec)

    def on_disconnected(self, reason: str) -> None:
        _log.warning("cloud link down: %s", reason)

    def on_puback(self, token: int) -> None:
        self.drainer.on_puback(token)
        self._shared.wake.set()

    # -- status, registration ----------------------------------------------------------

    def _status_loop(self) -> None:
        last_shadow = time.monotonic()
        while True:
            gevent.sleep(self.cfg.status_interval_sec)
            try:
                self._ven.publish(BusTopics.BRIDGE_STATUS, self.status())
            except (Exception, gevent.Timeout):  # noqa: BLE001 - the loop must outlive a failed publish (logged)
                _log.exception("status publish failed")
            if time.monotonic() - last_shadow >= self.cfg.shadow_interval_sec:
                last_shadow = time.monotonic()
                self.push_shadow()

    def _register_attempt(self) -> RegistrationResult:
        cfg = self.cfg
        assert cfg.backend_url
        post: Callable[..., Any] | None = self._post
        if post is None:
            import requests  # only with BACKEND_URL: ~5 MiB the bridge need not carry otherwise

            post = requests.post
        result = register_once(post, cfg.backend_url, cfg.thing_name, timeout=cfg.registration_timeout_sec,
                               lat=cfg.latitude, lon=cfg.longitude)
        self._shared.counters.registration = result
        (_log.info if result.ok else _log.warning)("backend registration: %s", result.detail)
        return result

    def _registration_loop(self) -> None:
        policy = RegistrationPolicy(1.0, 300.0, random.Random())
        while True:
            result = self._register_attempt()
            if result.ok or not result.retry:
                return
            gevent.sleep(policy.next_delay())

    def register_now(self) -> dict[str, Any]:
        """Register with the backend now; retries continue in the background if needed."""
        if not self.cfg.backend_url:
            return {"ok": False, "detail": "BACKEND_URL is not configured"}
        if self._registration is not None:
            self._registration.kill(block=False)
        result = self._register_attempt()
        if not result.ok and result.retry:
            self._registration = gevent.spawn(self._registration_loop)
        return {"ok": result.ok, "status": result.status, "detail": result.detail}
