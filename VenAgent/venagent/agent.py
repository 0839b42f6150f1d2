"""VenAgent: the VOLTTRON shell around the demand-response core (``venagent.core``).

Everything that decides lives in the core; this module only moves data: driver publishes in,
commands in (VIP RPC from the bridge or other agents), driver writes and bus messages out.
Circuits are reached only through ``platform.driver`` so any driver can replace the simulation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import gevent
import gevent.lock
import gevent.queue
from volttron import utils
from volttron.client.vip.agent import RPC, Agent, Core
from volttron.client.vip.agent.subsystems.web import WebSubSystem
from volttron.utils.commands import vip_main

from ven_common.contract import (
    DRIVER_IDENTITY,
    Ack,
    BusTopics,
    RejectReason,
    read_correlation_id,
    reject_ack,
    resolve_thing_name,
)

from venagent import driver_io, proxy_reaper
from venagent.bus_publish import CachedAuthPublisher
from venagent.core import CircuitSample, Effects, VenConfig, VenCoreError, VenEngine, VenStore
from venagent.core.config import desired_outcome
from venagent.core.poll_round import COALESCE_SEC, PollRound, Step
from venagent.journal import Journal
from venagent.page_host import PageHost
from venagent.web import VenWeb

_log = logging.getLogger(__name__)
__version__ = "0.1.0"

TICK_SEC = 0.5
REAP_SEC = 5.0

# State-changing RPCs: only identities granted them (install_agents.sh: the bridge, the operator
# tool) may call them; the read-only ones stay open. VOLTTRON's authorization wraps them.
PROTECTED_RPCS = ("handle_command", "send_event", "restore", "set_override", "apply_shadow_config")


class VenAgent(Agent):
    def __init__(self, config_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._defaults: dict[str, Any] = utils.load_config(config_path) if config_path else {}
        self._config: VenConfig | None = None
        self._engine: VenEngine | None = None
        # A poll round's /all publishes become one driver last() and one engine step (core.poll_round).
        self._round = PollRound(frozenset())
        self._round_timer: gevent.Greenlet | None = None
        # The operator's page (venagent/web.py); off without platform.web. volttron-core rc38's
        # Agent has no vip.web: the agent builds the web subsystem itself (it exports route.callback).
        self._web = VenWeb(PageHost(self), WebSubSystem(self, self.core, self.vip.rpc))
        self._journal = Journal()
        self._outgoing: gevent.queue.Queue[tuple[Effects, str, str | None]] = gevent.queue.Queue()
        self._publisher: gevent.Greenlet | None = None
        self._bus: CachedAuthPublisher | None = None   # made at the first publish (needs the identity)
        # One command at a time: a command's ack is settled with its own writes' outcome.
        self._command_lock = gevent.lock.BoundedSemaphore()
        self.vip.config.set_default("config", self._defaults)
        self.vip.config.subscribe(self._configure, actions=["NEW", "UPDATE"], pattern="config")

    @property
    def engine(self) -> VenEngine | None:
        return self._engine

    @property
    def config(self) -> VenConfig | None:
        return self._config

    # -- configuration -------------------------------------------------------------------
    def _configure(self, config_name: str, action: str, contents: Mapping[str, Any]) -> None:
        data = dict(contents)
        data["thing_name"] = resolve_thing_name(contents.get("thing_name"), os.environ)  # the bridge's rule too
        try:
            config = VenConfig.from_dict(data)
        except ValueError as exc:  # ConfigError (a VenCoreError) lists every problem
            # A bad config store update must not take down a running VEN: keep the old one.
            _log.error("config %s rejected, keeping the previous one: %s", action, exc)
            return
        now = time.time()
        if self._engine is None:
            store = VenStore(str(self._data_dir() / "ven.sqlite"))
            # Numbering of what we publish goes on across restarts: the bridge can catch up even
            # with what we published just before a restart it did not see.
            self._journal = Journal(path=str(self._data_dir() / "journal.sqlite"))
            self._engine = VenEngine(config, store, random.Random())
            self._config = config
            # The driver may still be starting (platform restart): never block the config
            # callback on it. Writes that fail are re-sent by the engine once readings show
            # the circuits in the wrong state.
            gevent.spawn(self._apply, self._engine.resume(now), "resume")
        else:
            # Writes for circuits removed by this update carry the old config's names: resolve
            # them against the old config before switching.
            effects = self._engine.reconfigure(now, config)
            self._apply(effects, reason="reconfigure")
            self._config = config
        self._round = PollRound.for_config(config)
        _log.info("configured: %d circuits on %d device(s)", len(config.circuits), len(config.circuits_by_device))

    def _data_dir(self) -> Path:
        home = Path(os.environ.get("VOLTTRON_HOME", "~/.volttron")).expanduser()
        path = home / "agents" / self.core.identity / "data"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- lifecycle -----------------------------------------------------------------------
    @Core.receiver("onstart")
    def onstart(self, sender: Any, **kwargs: Any) -> None:
        # @PubSub.subscribe is never registered in volttron-core rc38: subscribe explicitly.
        self.vip.pubsub.subscribe("pubsub", "devices/", self._on_device_publish).get(timeout=10)
        self._protect_rpcs()
        # Agent.core is typed as the abstract CoreLoop; the core builder makes a Core (periodic etc.).
        core = cast(Core, self.core)
        core.periodic(TICK_SEC, self._tick, wait=TICK_SEC)
        core.periodic(REAP_SEC, self._reap_proxies, wait=REAP_SEC)
        self._web.start()
        _log.info("VenAgent started as %s", self.core.identity)

    def _protect_rpcs(self) -> None:
        """Load this agent's protected RPCs now: volttron-core rc38 loads them lazily, on the
        agent's first outgoing RPC, which would leave commands open to anyone until then."""
        rpc = self.vip.rpc
        try:
            protected = list(rpc.get_protected_rpcs() or [])
        except (Exception, gevent.Timeout) as exc:  # noqa: BLE001 - logged; the platform retries on the first call
            _log.error("cannot load the protected RPC list from the auth service: %s", exc)
            return
        rpc._add_protected_rpcs(protected)  # noqa: SLF001 - the subsystem's own (private) entry point
        missing = sorted(set(PROTECTED_RPCS) - set(protected))
        if missing:
            _log.warning("state-changing RPCs open to every identity on the platform: %s "
                         "(install_agents.sh grants them with vctl authz)", ", ".join(missing))
        else:
            _log.info("state-changing RPCs restricted to authorized identities: %s", ", ".join(PROTECTED_RPCS))

    def _reap_proxies(self) -> None:
        home = os.environ.get("VOLTTRON_HOME")
        if home:
            try:
                proxy_reaper.reap(home)
            except Exception:  # noqa: BLE001 - a watchdog must never take the VEN down
                _log.exception("looking for orphaned protocol proxies failed")

    def _tick(self) -> None:
        if self._engine is None:
            return
        try:
            self._apply(self._engine.tick(time.time()), reason="tick")
        except (Exception, gevent.Timeout):  # noqa: BLE001 - the periodic must survive any single failure
            _log.exception("tick failed")

    def _on_device_publish(self, peer: str, sender: str, bus: str, topic: str,
                           headers: Mapping[str, Any], message: Any) -> None:
        if self._engine is None or self._config is None or not topic.endswith("/all"):
            return
        device = topic[len("devices/"):-len("/all")]
        values = message[0] if isinstance(message, list) and message else message
        if not isinstance(values, dict):
            return
        match self._round.offer(device, values):
            case Step.TAKE:
                self._take_round()
            case Step.WAIT:
                self._round_timer = gevent.spawn_later(COALESCE_SEC, self._take_round)
            case Step.IGNORE | Step.HELD:
                pass

    def _take_round(self) -> None:
        """The publishes held for this poll round become one step of the engine. The publish is the
        clock; what the driver last read (value and time together) is the data."""
        timer, self._round_timer = self._round_timer, None
        if timer is not None and timer is not gevent.getcurrent():
            timer.kill(block=False)
        held = self._round.take()
        if not held or self._engine is None or self._config is None:
            return
        try:
            read = driver_io.read_devices(self._driver_call, sorted(held))
            samples: dict[str, CircuitSample] = {}
            meter_kw = meter_ts = None
            for device, values in held.items():
                part, kw, ts = driver_io.samples_of(self._config, device, self._config.circuits_by_device.get(device, ()),
                                                    read[device], values)
                samples.update(part)
                if self._config.meter is not None and device == self._config.meter.device:
                    meter_kw, meter_ts = kw, ts
            self._apply(self._engine.on_readings(time.time(), samples, meter_kw, meter_ts), reason="readings")
        except (Exception, gevent.Timeout):  # noqa: BLE001 - the next round is another chance
            _log.exception("handling the readings of %s failed", ", ".join(sorted(held)))

    def _driver_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.vip.rpc.call(DRIVER_IDENTITY, method, *args, **kwargs)

    # -- output --------------------------------------------------------------------------
    def _apply(self, effects: Effects, reason: str, source: str | None = None) -> None:
        if effects.writes:
            written, failed = self._write(effects.writes)
            assert self._engine is not None
            outcome = self._engine.on_write_outcome(time.time(), written, failed)
            effects = Effects(effects.writes, effects.messages + outcome.messages)
            self._read_back_later(effects.writes, written, failed)
        self._publish_messages(effects, reason, source)

    def _read_back_later(self, writes: Mapping[str, bool], written: list[str], failed: Mapping[str, str]) -> None:
        """Read the switched circuits' power right away, so the change shows in the next metering
        slot instead of one driver poll later (see driver_io.read_back)."""
        confirmed = {name: writes[name] for name in written if name not in failed and name in writes}
        if confirmed:
            gevent.spawn(self._read_back, confirmed)

    def _meter_now(self) -> None:
        if self._engine is None:
            return
        try:
            self._apply(self._engine.meter(time.time()), reason="read-back")
        except (Exception, gevent.Timeout):  # noqa: BLE001 - the next driver publish meters instead
            _log.exception("metering a read-back failed")

    def _read_back(self, switched: Mapping[str, bool]) -> None:
        if self._engine is None or self._config is None:
            return
        try:
            t0 = time.perf_counter()
            samples, meter_kw, meter_ts = driver_io.read_back(self._driver_call, self._config, switched)
            if samples or meter_kw is not None:
                effects = self._engine.on_readings(time.time(), samples, meter_kw, meter_ts, after_switch=True)
                metered = any(topic == BusTopics.METERING for topic, _ in effects.messages)
                _log.debug("read-back of %s: %.0f ms, metered at once: %s", sorted(switched),
                           (time.perf_counter() - t0) * 1e3, metered)
                self._apply(effects, reason="read-back")
                if not metered:
                    # Its slot is not open yet: meter at the first moment it is, not at the driver's
                    # next publish (up to a poll later).
                    gevent.spawn_later(self._engine.metering_wait_sec(time.time()), self._meter_now)
        except (Exception, gevent.Timeout):  # noqa: BLE001 - the next driver publish shows the change instead
            _log.exception("read-back after a switch failed")

    def _publish_messages(self, effects: Effects, reason: str, source: str | None) -> None:
        for topic, message in effects.messages:
            self._web.observe(topic, message)
            sent = dict(message, source=source) if source is not None and topic == BusTopics.ACK else message
            self._publish(topic, sent, source or reason)

    def _publish_later(self, effects: Effects, reason: str, source: str | None) -> None:
        """Publish after the command's RPC has returned its ack: every pubsub publish costs ~3.5 ms
        of peer-list and authorization round trips before it leaves: an immediate event makes five (two event
        states, actuation, status, ack), ~18 ms.
        One queue, one publisher greenlet: bus order stays the order of the commands."""
        self._outgoing.put((effects, reason, source))
        if self._publisher is None or self._publisher.dead:
            self._publisher = gevent.spawn(self._drain_outgoing)

    def _drain_outgoing(self) -> None:
        while not self._outgoing.empty():
            effects, reason, source = self._outgoing.get()
            try:
                self._publish_messages(effects, reason, source)
            except (Exception, gevent.Timeout):  # noqa: BLE001 - one bad message must not stop the others
                _log.exception("publishing a command's bus messages failed")

    def _publish(self, topic: str, message: Any, source: str) -> None:
        vseq = self._journal.append(topic, message)
        headers = {"source": source, "vepoch": self._journal.epoch, "vseq": vseq}
        if self._bus is None:
            self._bus = CachedAuthPublisher(self.vip.pubsub, self.vip.rpc, self.core.identity)
        self._bus.publish(topic, headers, message)

    def _write(self, writes: Mapping[str, bool]) -> tuple[list[str], dict[str, str]]:
        assert self._config is not None
        return driver_io.write_circuits(self._driver_call, self._config, writes)

    # -- VIP RPC -------------------------------------------------------------------------
    @RPC.export
    def handle_command(self, command: Any, source: str = "rpc") -> Ack:
        """Handle a command dict (the MQTT schema) and return its ack, settled with what the
        driver confirmed of its writes (at most ``driver_timeout_sec`` later)."""
        if self._engine is None or self._config is None:
            return reject_ack(op=command.get("op") if isinstance(command, dict) else None,
                              correlation_id=read_correlation_id(command), reason_code=RejectReason.NOT_READY,
                              reason="VEN not configured yet", ts=int(time.time()),
                              ven_id=str(resolve_thing_name(None, os.environ)))
        with self._command_lock:
            t0 = time.perf_counter()
            pending = self._engine.begin_command(time.time(), command)
            t1 = time.perf_counter()
            written, failed = self._write(pending.effects.writes) if pending.effects.writes else ([], {})
            t2 = time.perf_counter()
            ack, done = self._engine.complete_command(time.time(), pending, written=written, failed=failed)
        self._read_back_later(pending.effects.writes, written, failed)
        self._publish_later(Effects(pending.effects.writes, pending.effects.messages + done.messages), "command", source)
        _log.debug("command %s %s: core %.1f ms, write %.1f ms", ack.get("op"), ack.get("correlationId"),
                   (t1 - t0) * 1e3, (t2 - t1) * 1e3)
        if ack.get("status") == "rejected":
            _log.warning("command rejected (%s): %s", ack.get("correlationId"), ack.get("reason"))
        return ack

    @RPC.export
    def send_event(self, shed_kw: float, duration_sec: float, event_id: str | None = None,
                   start_ts: float | None = None, correlation_id: str | None = None) -> Ack:
        now = time.time()
        command: dict[str, Any] = {
            "op": "event",
            "correlationId": correlation_id or f"rpc-{int(now * 1000)}-{random.randrange(10**6)}",
            "event_id": event_id or f"evt-{int(now)}",
            "shed_kw": shed_kw,
            "duration_sec": duration_sec,
        }
        if start_ts is not None:
            command["start_ts"] = start_ts
        return self.handle_command(command, source="rpc")

    @RPC.export
    def restore(self, correlation_id: str | None = None) -> Ack:
        now = time.time()
        return self.handle_command(
            {"op": "restore", "correlationId": correlation_id or f"rpc-restore-{int(now * 1000)}"}, source="rpc")

    @RPC.export
    def get_status(self) -> dict[str, Any]:
        if self._engine is None:
            return {"power_kw": None, "shed_kw": 0.0, "active_event": None, "circuits": [], "ready": False}
        return self._engine.status(time.time())

    @RPC.export
    def get_journal_since(self, epoch: str | None, after_seq: int, limit: int = 2000) -> dict[str, Any]:
        """What this agent published after ``(epoch, after_seq)``: the bridge's catch-up after
        it was down (pubsub does not queue for absent subscribers)."""
        return self._journal.since(epoch, int(after_seq), int(limit))

    @RPC.export
    def get_events(self) -> list[dict[str, Any]]:
        return [] if self._engine is None else self._engine.events()

    @RPC.export
    def apply_shadow_config(self, change: Mapping[str, Any]) -> dict[str, Any]:
        """Apply permitted desired-shadow settings through the config store (so they persist).

        Returns ``{"accepted": {...}, "refused": {setting: the VEN's reason}}``: the bridge reports the reasons in
        the shadow (``desired_refused``), where the backend reads them.
        """
        if self._config is None or not isinstance(change, Mapping):
            return {"accepted": {}, "refused": {"*": "VEN not configured yet"}}
        data, accepted, refused = desired_outcome(self._config, change)
        if refused:
            _log.warning("shadow settings refused: %s", refused)
        if accepted and data is not None:
            self.vip.config.set("config", data, trigger_callback=True)
        return {"accepted": accepted, "refused": refused}

    @RPC.export
    def set_override(self, circuit: str, state: bool | None) -> dict[str, Any]:
        if self._engine is None:
            return {"ok": False, "error": "VEN not configured yet"}
        if state is not None and not isinstance(state, bool):
            return {"ok": False, "error": "state must be true, false or null (clear)"}
        try:
            effects = self._engine.set_override(time.time(), circuit, state)
        except VenCoreError as exc:
            return {"ok": False, "error": str(exc)}
        self._apply(effects, reason="override")
        return {"ok": True, "circuit": circuit, "override": state}


def main() -> None:
    vip_main(VenAgent, version=__version__)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
