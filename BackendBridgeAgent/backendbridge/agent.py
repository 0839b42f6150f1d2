"""BackendBridgeAgent: VOLTTRON bus <-> AWS IoT Core (thin shell over the pure modules).

Bus -> cloud: ``ven/metering``, ``ven/ack``, ``ven/event/report``, ``ven/event/state``,
``ven/actuation``, ``ven/device/fault`` go through the durable outbox; ``ven/status`` becomes a
debounced shadow update. Cloud -> VEN: every command that passes the transport check is handed
to ``ven.agent.handle_command(cmd, source="mqtt")`` (field rules and idempotency are the VEN's:
a re-sent command gets the VEN's stored ack); the ack is queued on disk, then the command is
PUBACKed. Shadow deltas go to ``ven.agent.apply_shadow_config(change)``.
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
import random
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.queue

from ven_common.contract import ACK_SOURCE_MQTT, VEN_IDENTITY, BusTopics

from backendbridge.batching import KIND_SHADOW, KIND_SHADOW_GET
from backendbridge.bridge import (
    FORWARDED_BUS_TOPICS,
    CommandPipeline,
    Routed,
    VenFailed,
    VenUnreachable,
    route_bus_message,
)
from backendbridge.config import BridgeConfig, ConfigError, load_config
from backendbridge.drain import Drainer
from backendbridge.gevent_link import GeventHandoff
from backendbridge.mqtt_link import CertificateError, CloudLink, LinkSettings
from backendbridge.outbox import DEAD_LETTER, DROPPED, Outbox
from backendbridge.registration import RegistrationPolicy, RegistrationResult, register_once
from backendbridge.shadow import ShadowVersionSync, apply_delta, build_reported

_log = logging.getLogger(__name__)
__version__ = "0.1.0"

_SHADOW_MARGIN = 200  # room for "version" and "clientToken" added after building
_BUS_QUEUE_MAX = 20_000
_SHADOW_COUNTERS = ("connected", "queue_depth", "dropped", "dead_letter", "sent", "acked", "reconnects")
_CATCH_UP_PAGE = 2000
_CERT_RECHECK_SEC = 60.0


def agent_data_dir() -> Path:
    """volttron-core 2.0.0rc38 starts agents with cwd = $VOLTTRON_HOME/agents/<identity> and
    calls ``<cwd>/data`` the agent's data dir (aip.get_agent_data_dir); no env var is set."""
    path = Path(os.environ.get("AGENT_DATA_DIR") or Path.cwd() / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


class BackendBridgeAgent(Agent):
    def __init__(self, config_path: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._defaults: dict[str, Any] = utils.load_config(config_path) or {}
        self.vip.config.set_default("config", self._defaults)
        self.vip.config.subscribe(self._configure, actions=["NEW", "UPDATE"], pattern="config")
        self._cfg: BridgeConfig | None = None
        self._outbox: Outbox | None = None
        self._link: CloudLink | None = None
        self._drainer: Drainer | None = None
        self._handoff: GeventHandoff | None = None
        self._pipeline: CommandPipeline | None = None
        self._shadow_sync = ShadowVersionSync()
        self._wake = gevent.event.Event()
        self._commands: gevent.queue.Queue[tuple[bytes, Any]] = gevent.queue.Queue(maxsize=1000)
        # Bus messages wait here until the runtime (outbox) exists, and are then handled in
        # order by one greenlet, which may first fetch what the VEN published while we were down.
        self._bus_q: gevent.queue.Queue[tuple[str, dict[str, Any], Any]] = gevent.queue.Queue(maxsize=_BUS_QUEUE_MAX)
        self._cursor: tuple[str, int] | None = None
        self._journal_resets = 0
        self._caught_up = 0
        self._greenlets: list[gevent.Greenlet] = []
        self._registration_glet: gevent.Greenlet | None = None
        self._shadow_timer: gevent.Greenlet | None = None
        self._latest_status: dict[str, Any] | None = None
        self._desired_echo: dict[str, Any] = {}
        self._desired_refused: dict[str, str] = {}
        self._cert_errors: list[str] = []
        self._registration: RegistrationResult | None = None
        self._bus_skipped = 0
        self._bus_unqueueable = 0
        self._commands_dropped = 0
        self._commands_unacked = 0
        self._redeliveries = 0

    # -- lifecycle ---------------------------------------------------------------------

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
        self._start_runtime(cfg)

    def _start_runtime(self, cfg: BridgeConfig) -> None:
        self._cfg = cfg
        self._outbox = Outbox(
            cfg.outbox_file(agent_data_dir()),
            max_messages=cfg.outbox_max_messages,
            drop_policy=cfg.outbox_drop_policy,
            synchronous=cfg.outbox_synchronous,
        )
        _log.info("outbox %s: %d queued, last seq %d", self._outbox.path, self._outbox.depth(), self._outbox.last_seq())
        self._pipeline = CommandPipeline(cfg.thing_name)
        self._handoff = GeventHandoff()
        topics = cfg.mqtt_topics()
        settings = LinkSettings(
            thing=cfg.thing_name,
            endpoint=cfg.endpoint,
            port=cfg.port,
            ca=cfg.ca_file,
            cert=cfg.cert_file,
            key=cfg.key_file,
            topics=topics,
            keepalive=cfg.keepalive,
            reconnect_min=cfg.reconnect_min_sec,
            reconnect_max=cfg.reconnect_max_sec,
            stable_after=cfg.stable_after_sec,
            max_inflight=cfg.max_inflight,
        )
        self._link = CloudLink(settings, self, handoff=self._handoff, rng=random.Random())
        self._drainer = Drainer(
            self._outbox,
            self._link,
            ven_id=cfg.thing_name,
            # One reading per message unless the backend asked for batches (batch_metering).
            batch_max_readings=cfg.batch_max_readings if cfg.batch_metering else 1,
            max_inflight=cfg.max_inflight,
            max_publish_per_sec=cfg.max_publish_per_sec,
        )
        self._cursor = self._outbox.cursor()
        self._greenlets = [
            gevent.spawn(self._bus_loop),
            gevent.spawn(self._drain_loop),
            gevent.spawn(self._command_loop),
            gevent.spawn(self._status_loop),
            gevent.spawn(self._link_starter),
        ]
        if cfg.backend_url and cfg.registration_enabled:
            self._registration_glet = gevent.spawn(self._registration_loop)

    def _stop_runtime(self) -> None:
        for glet in [*self._greenlets, self._registration_glet, self._shadow_timer]:
            if glet is not None:
                glet.kill(block=False)
        self._greenlets = []
        self._registration_glet = None
        self._shadow_timer = None
        if self._link is not None:
            try:
                self._link.stop(reason="shutdown", sleep=gevent.sleep)
            except (Exception, gevent.Timeout):
                _log.exception("error while disconnecting")
            self._link = None
        if self._handoff is not None:
            self._handoff.close()
            self._handoff = None
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None
        self._drainer = None

    def _link_starter(self) -> None:
        """Start the link; with bad certificates keep queueing and re-check periodically."""
        while self._link is not None:
            try:
                self._link.start()
                self._cert_errors = []
                return
            except CertificateError as exc:
                self._cert_errors = exc.problems
                for problem in exc.problems:
                    _log.error("cannot connect to AWS IoT: %s", problem)
                gevent.sleep(_CERT_RECHECK_SEC)

    # -- bus -> cloud ------------------------------------------------------------------

    def _on_bus(self, peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
        if sender == self.core.identity:
            return
        try:
            self._bus_q.put_nowait((topic, dict(headers or {}), message))
        except gevent.queue.Full:
            self._bus_skipped += 1
            _log.error("bus queue full; %s message not forwarded", topic)

    def _bus_loop(self) -> None:
        self._catch_up()
        while True:
            topic, headers, message = self._bus_q.get()
            try:
                self._accept(topic, headers, message)
            except (Exception, gevent.Timeout):
                _log.exception("forwarding a %s message failed", topic)

    def _accept(self, topic: str, headers: dict[str, Any], message: Any) -> None:
        epoch, vseq = headers.get("vepoch"), headers.get("vseq")
        if not isinstance(epoch, str) or not isinstance(vseq, int):
            self._on_bus_message(topic, message, None)  # not from the VenAgent's journal
            return
        cur = self._cursor
        if cur is not None and (cur[0] != epoch or vseq > cur[1] + 1):
            self._catch_up()  # a gap, or the VEN restarted: fetch what we have not seen
            cur = self._cursor
        if cur is not None and cur[0] == epoch and vseq <= cur[1]:
            return  # already queued by a catch-up
        self._on_bus_message(topic, message, (epoch, vseq))

    def _catch_up(self) -> None:
        """Queue what the VEN published after our cursor (pubsub drops it while we are down)."""
        assert self._cfg is not None
        for _ in range(1000):
            cur = self._cursor
            if cur is None:
                return  # first start ever: nothing was missed
            try:
                page = self.vip.rpc.call(VEN_IDENTITY, "get_journal_since", cur[0], cur[1], _CATCH_UP_PAGE).get(
                    timeout=self._cfg.rpc_timeout_sec
                )
            except (Exception, gevent.Timeout) as exc:
                _log.warning("cannot catch up with the VEN's journal (%s); continuing with live messages", exc)
                return
            if not page.get("complete", True):
                self._journal_resets += 1
                _log.warning("VEN journal restarted or evicted since %s:%d; catching up from %s", cur[0], cur[1],
                             page.get("epoch"))
            messages = page.get("messages") or []
            for seq, topic, message in messages:
                self._on_bus_message(topic, message, (page["epoch"], int(seq)))
                self._caught_up += 1
            if messages:
                _log.info("caught up %d message(s) from the VEN journal", len(messages))
            if len(messages) < _CATCH_UP_PAGE:
                if self._cursor is None or self._cursor[0] != page.get("epoch"):
                    self._set_cursor((page["epoch"], int(page.get("last_seq", 0))))
                return

    def _set_cursor(self, cursor: tuple[str, int] | None) -> None:
        if cursor is not None and self._outbox is not None:
            self._outbox.set_cursor(cursor)
            self._cursor = cursor

    def _on_bus_message(self, topic: str, message: Any, cursor: tuple[str, int] | None) -> None:
        assert self._cfg is not None
        if topic == BusTopics.STATUS:
            self._on_status(message)
            self._set_cursor(cursor)
            return
        routed = route_bus_message(topic, message, self._cfg.mqtt_topics())
        if not isinstance(routed, Routed):
            self._bus_skipped += 1
            _log.debug("not forwarding %s: %s", topic, routed)
            self._set_cursor(cursor)
            return
        self._enqueue(routed.kind, routed.topic, routed.payload, cursor=cursor)

    def _enqueue(self, kind: str, topic: str, payload: dict[str, Any], supersede: bool = False,
                 cursor: tuple[str, int] | None = None) -> None:
        if self._outbox is None:
            return
        try:
            self._outbox.enqueue(kind, topic, payload, supersede=supersede, cursor=cursor)
        except (ValueError, TypeError) as exc:
            # Not JSON-serialisable or over AWS's limits: it can never be sent. Counted (status
            # "unqueueable") rather than blocking everything behind it; other errors (disk)
            # propagate, the cursor stays, and the journal catch-up fetches the message again.
            self._bus_unqueueable += 1
            _log.error("cannot queue %s for %s: %s", kind, topic, exc)
            self._set_cursor(cursor)
            return
        if cursor is not None:
            self._cursor = cursor
        self._wake.set()

    def _drain_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = self._drainer.pump() if self._drainer else None
            except (Exception, gevent.Timeout):
                _log.exception("drain failed")
                wait = 1.0
            if wait == 0.0:
                gevent.sleep(0)
                continue
            # A periodic look even without a wake-up, in case a PUBACK was missed.
            self._wake.wait(timeout=5.0 if wait is None else wait)

    # -- shadow ------------------------------------------------------------------------

    def _on_status(self, message: Any) -> None:
        if isinstance(message, dict):
            self._latest_status = message
        if self._shadow_timer is None and self._cfg is not None:
            self._shadow_timer = gevent.spawn_later(self._cfg.shadow_debounce_sec, self._debounced_shadow)

    def _debounced_shadow(self) -> None:
        self._shadow_timer = None
        self._push_shadow()

    def _push_shadow(self, version: int | None = None) -> None:
        if self._cfg is None:
            return
        echo: dict[str, Any] = dict(self._desired_echo)
        if self._desired_refused:
            echo["desired_refused"] = dict(self._desired_refused)
        doc = build_reported(
            self._latest_status,
            bridge=self._bridge_counters(),
            desired_echo=echo,
            max_bytes=8 * 1024 - _SHADOW_MARGIN,
        )
        if version is None:
            self._shadow_sync.fresh_update()
        else:
            doc["version"] = version
        self._enqueue(KIND_SHADOW, self._cfg.mqtt_topics().shadow_update, doc, supersede=True)

    def on_shadow_delta(self, doc: dict[str, Any]) -> None:
        gevent.spawn(self._apply_delta, doc)

    def _apply_delta(self, doc: dict[str, Any]) -> None:
        assert self._cfg is not None
        self._shadow_sync.on_delta(doc)
        outcome = apply_delta(doc.get("state"))
        refused = dict(outcome.refused)
        if outcome.change:
            try:
                result = self.vip.rpc.call(VEN_IDENTITY, "apply_shadow_config", outcome.change).get(
                    timeout=self._cfg.rpc_timeout_sec
                )
            except (Exception, gevent.Timeout) as exc:
                _log.error("VEN did not take the shadow config %s: %s", outcome.change, exc)
                refused.update({k: f"VEN agent unreachable: {exc}"[:200] for k in outcome.change})
            else:
                accepted = result if isinstance(result, dict) else {}
                self._desired_echo.update({k: v for k, v in accepted.items() if k in outcome.change})
                refused.update({k: "refused by the VEN" for k in outcome.change if k not in accepted})
        if refused:
            _log.warning("shadow delta keys refused: %s", refused)
        self._desired_refused = refused
        self._push_shadow()

    def on_shadow_rejected(self, doc: dict[str, Any]) -> None:
        _log.warning("shadow update rejected: %s", doc)
        if self._shadow_sync.on_rejected(doc) and self._cfg is not None:
            self._enqueue(KIND_SHADOW_GET, self._cfg.mqtt_topics().shadow_get, {})

    def on_shadow_get_accepted(self, doc: dict[str, Any]) -> None:
        version = self._shadow_sync.on_get_accepted(doc)
        if version is not None:
            self._push_shadow(version=version)

    # -- cloud -> VEN ------------------------------------------------------------------

    def on_command(self, payload: bytes, dup: bool, done: Any = None) -> None:
        # Ordered, one at a time: an "event" followed quickly by a "restore" must reach the
        # VEN in that order.
        if dup:
            self._redeliveries += 1
        try:
            self._commands.put_nowait((payload, done))
        except gevent.queue.Full:
            # Not PUBACKed: the broker redelivers it after the next reconnect.
            self._commands_dropped += 1
            _log.error("command queue full; a command (%d bytes) waits for redelivery", len(payload))

    def _command_loop(self) -> None:
        while True:
            raw, done = self._commands.get()
            try:
                self._handle_command(raw)
            except (Exception, gevent.Timeout):
                # No ack on disk: no PUBACK either, so the broker delivers the command again
                # (after a reconnect) and the VEN's idempotency answers it then.
                self._commands_unacked += 1
                _log.exception("command not acknowledged (no PUBACK: the broker will redeliver it)")
                continue
            if done is not None:
                done()

    def _call_ven(self, command: dict[str, Any]) -> Any:
        assert self._cfg is not None
        try:
            return self.vip.rpc.call(VEN_IDENTITY, "handle_command", command, source=ACK_SOURCE_MQTT).get(
                timeout=self._cfg.rpc_timeout_sec
            )
        except gevent.Timeout:
            raise VenUnreachable(f"no answer within {self._cfg.rpc_timeout_sec:g} s") from None
        except Unreachable as exc:
            raise VenUnreachable(f"not running ({exc})") from None
        except (RemoteError, JsonRpcError) as exc:
            # The VEN (or the platform's authorization check) raised: its error, not "unreachable".
            raise VenFailed(str(exc) or type(exc).__name__) from None
        except VIPError as exc:
            raise VenUnreachable(f"{type(exc).__name__}: {exc}") from None

    def _handle_command(self, raw: bytes) -> None:
        """Exactly one ack per command, queued durably; raises if it could not be queued."""
        assert self._pipeline is not None and self._cfg is not None
        started = time.monotonic()
        ack, correlation_id = self._pipeline.process(raw, self._call_ven)
        if ack.get("status") == "rejected":
            _log.warning("command %s rejected (%s): %s", correlation_id, ack.get("reason_code"), ack.get("reason"))
        _log.info("command %s %s -> %s in %.1f ms", ack.get("op"), correlation_id, ack.get("status"),
                  (time.monotonic() - started) * 1000)
        assert self._outbox is not None
        self._outbox.enqueue("ack", self._cfg.mqtt_topics().ack, ack)
        self._wake.set()

    # -- link events -------------------------------------------------------------------

    def on_connected(self, session_present: bool) -> None:
        _log.info("cloud link up (session_present=%s)", session_present)
        if self._drainer is not None:
            self._drainer.on_reconnected()
        self._wake.set()
        self._push_shadow()

    def on_disconnected(self, reason: str) -> None:
        _log.warning("cloud link down: %s", reason)

    def on_puback(self, token: int) -> None:
        if self._drainer is not None:
            self._drainer.on_puback(token)
        self._wake.set()

    # -- status, registration ----------------------------------------------------------

    def _bridge_counters(self) -> dict[str, Any]:
        """The part of the status that goes into the shadow."""
        status = self._status()
        return {key: status[key] for key in _SHADOW_COUNTERS}

    def _status(self) -> dict[str, Any]:
        cfg, ob, dr, link, pipe = self._cfg, self._outbox, self._drainer, self._link, self._pipeline
        counters = ob.counters() if ob else {}
        return {
            "connected": bool(link and link.connected),
            "endpoint": f"{cfg.endpoint}:{cfg.port}" if cfg else None,
            "thing": cfg.thing_name if cfg else None,
            "last_connect": link.last_connect if link else None,
            "last_disconnect": link.last_disconnect if link else None,
            "last_error": link.last_error if link else None,
            "cert_errors": list(self._cert_errors),
            "queue_depth": ob.depth() if ob else 0,
            "oldest_queued_age_sec": ob.oldest_age() if ob else None,
            "inflight": dr.inflight if dr else 0,
            "sent": dr.sent if dr else 0,
            "acked": dr.acked if dr else 0,
            "dropped": counters.get(DROPPED, 0),
            "superseded": counters.get("superseded", 0),
            "rejected": pipe.rejected if pipe else 0,
            "rejected_by_reason": dict(pipe.checker.rejected) if pipe else {},
            "redeliveries": self._redeliveries,
            "forwarded_commands": pipe.forwarded if pipe else 0,
            "not_ready": pipe.not_ready if pipe else 0,
            "internal_errors": pipe.internal if pipe else 0,
            "commands_dropped": self._commands_dropped,
            "commands_unacked": self._commands_unacked,
            "unqueueable": self._bus_unqueueable,
            "dead_letter": counters.get(DEAD_LETTER, 0),
            "reconnects": link.reconnects if link else 0,
            "connect_failures": link.connect_failures if link else 0,
            "bus_skipped": self._bus_skipped,
            "caught_up": self._caught_up,
            "journal_resets": self._journal_resets,
            "registration": self._registration.detail if self._registration else None,
        }

    def _status_loop(self) -> None:
        assert self._cfg is not None
        last_shadow = time.monotonic()
        while True:
            gevent.sleep(self._cfg.status_interval_sec)
            try:
                self.vip.pubsub.publish("pubsub", BusTopics.BRIDGE_STATUS, message=self._status())
            except (Exception, gevent.Timeout):
                _log.exception("status publish failed")
            if time.monotonic() - last_shadow >= self._cfg.shadow_interval_sec:
                last_shadow = time.monotonic()
                self._push_shadow()

    def _register_attempt(self) -> RegistrationResult:
        assert self._cfg is not None and self._cfg.backend_url
        cfg = self._cfg
        import requests  # only with BACKEND_URL: ~5 MiB the bridge need not carry otherwise

        result = register_once(
            requests.post,
            cfg.backend_url,
            cfg.thing_name,
            timeout=cfg.registration_timeout_sec,
            lat=cfg.latitude,
            lon=cfg.longitude,
        )
        self._registration = result
        (_log.info if result.ok else _log.warning)("backend registration: %s", result.detail)
        return result

    def _registration_loop(self) -> None:
        policy = RegistrationPolicy(1.0, 300.0, random.Random())
        while True:
            result = self._register_attempt()
            if result.ok or not result.retry:
                return
            gevent.sleep(policy.next_delay())

    # -- RPC ---------------------------------------------------------------------------

    @RPC.export
    def get_status(self) -> dict[str, Any]:
        return self._status()

    @RPC.export
    def register(self) -> dict[str, Any]:
        """Register with the backend now; retries continue in the background if needed."""
        if self._cfg is None or not self._cfg.backend_url:
            return {"ok": False, "detail": "BACKEND_URL is not configured"}
        if self._registration_glet is not None:
            self._registration_glet.kill(block=False)
        result = self._register_attempt()
        if not result.ok and result.retry:
            self._registration_glet = gevent.spawn(self._registration_loop)
        return {"ok": result.ok, "status": result.status, "detail": result.detail}

    @RPC.export
    def flush_now(self) -> dict[str, Any]:
        """Wake the drain loop (e.g. after a test changed the broker)."""
        self._wake.set()
        return {"queue_depth": self._outbox.depth() if self._outbox else 0}


def main() -> None:
    vip_main(BackendBridgeAgent, version=__version__)


if __name__ == "__main__":
    main()
