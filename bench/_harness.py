"""Shared plumbing of the system benchmarks (not a benchmark itself).

* :class:`BenchSystem` brings up a private mosquitto (``tests.support.broker.LocalBroker``) and a
  private VOLTTRON platform (``tests.support.system.Platform``) with the VEN's agents installed by
  ``install_agents.sh``, plus the probe agent(s) of ``bench/agents/benchprobe``, all on free
  ports in a temp dir; leaving the ``with`` block tears all of it down.
* :class:`MqttClient` is a paho client that stamps every arrival with ``time.perf_counter_ns``
  (CLOCK_MONOTONIC: the same clock the probe agent uses, so cross-process times are valid).
* Statistics, the machine description and the JSON writer.

The orchestrating process never imports volttron (it would monkey-patch it with gevent); it
talks to the platform through the probe agent's RPCs and ``scripts/ven_rpc.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform as pyplatform
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT / "common"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from ven_common.contract import MqttTopics  # noqa: E402

from tests.support.broker import LocalBroker, free_port  # noqa: E402
from tests.support.device import PanelDevice  # noqa: E402
from tests.support.system import Platform, SystemError_, wait_until  # noqa: E402

THING = "volttron_thing"
TOPICS = MqttTopics(THING)
DEVICES = {"modbus": "campus/building/panel", "simbuilding": "campus/building/sim"}
DEVICE = DEVICES[os.environ.get("BENCH_BUILDING", "modbus")]
PROBE_DIR = ROOT / "bench" / "agents" / "benchprobe"
RESULTS = ROOT / "bench" / "results"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- statistics -------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary(values_ms: Iterable[float]) -> dict[str, Any]:
    v = sorted(values_ms)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "min": round(v[0], 3),
        "p50": round(percentile(v, 50), 3),
        "p90": round(percentile(v, 90), 3),
        "p99": round(percentile(v, 99), 3),
        "max": round(v[-1], 3),
        "mean": round(sum(v) / len(v), 3),
    }


def ns_to_ms(values: Iterable[int]) -> list[float]:
    return [x / 1e6 for x in values]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for k, r in enumerate(cells):
        out.append("  ".join(c.rjust(w) if k and i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def stat_row(label: str, s: dict[str, Any]) -> list[Any]:
    return [label, s.get("n"), s.get("min"), s.get("p50"), s.get("p90"), s.get("p99"), s.get("max")]


STAT_HEADERS = ["measurement (ms)", "n", "min", "p50", "p90", "p99", "max"]


# -- machine and results ----------------------------------------------------------------

def reading_template(thing: str = THING) -> dict[str, Any]:
    """A metering reading shaped like the VEN's (about 300 bytes as JSON)."""
    return {"venId": thing, "ts": time.time(), "power_kw": 10.247, "baseline_kw": 10.251, "shed_kw": 0.0,
            "active_event": None,
            "circuits": {"HVAC": {"kw": 5.512, "enabled": True}, "Heater": {"kw": 2.498, "enabled": True},
                         "EV Charger": {"kw": 0.0, "enabled": False},
                         "Water Heater": {"kw": 1.203, "enabled": True},
                         "Lighting": {"kw": 0.801, "enabled": True}}}


def per_second_peak(times_ns: list[int], origin_ns: int | None = None) -> tuple[int, list[int]]:
    """Counts in consecutive 1 s windows from ``origin_ns`` (default: the first arrival), and their maximum."""
    if not times_ns:
        return 0, []
    t0 = min(times_ns) if origin_ns is None else origin_ns
    counts: dict[int, int] = {}
    for t in times_ns:
        k = (t - t0) // 1_000_000_000
        counts[k] = counts.get(k, 0) + 1
    series = [counts.get(k, 0) for k in range(max(counts) + 1)]
    return max(series), series


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return pyplatform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": pyplatform.release(),
        "python": pyplatform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    data.setdefault("machine", machine())
    data["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    log(f"wrote {path}")
    return path


def print_machine(m: dict[str, Any]) -> None:
    print(f"machine: {m['nproc']} x {m['cpu']}, kernel {m['kernel']}, {m['date']}; "
          f"load average at start {m['loadavg_start']}, now {[round(x, 2) for x in os.getloadavg()]}")


# -- MQTT -------------------------------------------------------------------------------

class MqttClient:
    """A paho client (mTLS with one of the dev PKI's identities) that timestamps arrivals.

    ``handler(topic, payload, t_ns, dup)`` runs in paho's network thread.
    """

    def __init__(self, broker: LocalBroker, cert_name: str, *, subscriptions: list[tuple[str, int]] = (),
                 handler: Callable[[str, bytes, int, bool], None] | None = None, client_id: str | None = None,
                 clean_session: bool = True, max_inflight: int = 100, reconnect_min: float = 1.0) -> None:
        self.broker = broker
        self.subscriptions = list(subscriptions)
        self.handler = handler
        self.connected = threading.Event()
        self.suback = threading.Event()
        self.connects = 0
        self.last_connect_ns = 0
        self.puback_count = 0
        self._lock = threading.Lock()
        certs = broker.pki.root
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"bench-{uuid.uuid4().hex[:8]}",
                                  clean_session=clean_session, protocol=mqtt.MQTTv311)
        self.client.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / f"{cert_name}.crt"),
                            keyfile=str(certs / f"{cert_name}.key"), cert_reqs=ssl.CERT_REQUIRED)
        # Without TCP_NODELAY on both ends a 40 ms delayed-ACK stall appears (reference §2).
        self.client.on_socket_open = lambda c, u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.on_subscribe = lambda *a: self.suback.set()
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=reconnect_min, max_delay=max(reconnect_min, 1.0))

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            return
        self.connects += 1
        self.last_connect_ns = time.perf_counter_ns()
        if self.subscriptions:
            client.subscribe(self.subscriptions)
        else:
            self.suback.set()
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        t = time.perf_counter_ns()
        if self.handler is not None:
            self.handler(msg.topic, bytes(msg.payload), t, bool(msg.dup))

    def _on_publish(self, *args: Any) -> None:
        with self._lock:
            self.puback_count += 1

    def start(self, timeout: float = 10.0) -> MqttClient:
        self.client.connect("localhost", self.broker.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout) or not self.suback.wait(timeout):
            raise TimeoutError("MQTT client could not connect and subscribe")
        return self

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos)

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


# -- the system -------------------------------------------------------------------------

class BenchSystem:
    """Private broker + platform + VEN agents (+ probes) for one benchmark run."""

    def __init__(self, name: str, probes: Iterable[str] = ("bench.probe",), keep: bool = False,
                 building: str | None = None, campus: tuple[int, int] | None = None,
                 ven_settings: dict[str, Any] | None = None) -> None:
        """``campus=(circuits, devices)``: the building is a generated campus (``building_device.campus``)
        on that many Modbus unit ids behind one gateway process, instead of the 5-circuit panel;
        ``ven_settings`` then overrides keys of its VEN config."""
        self.name = name
        self.probes = list(probes)
        self.keep = keep
        # The building: "modbus" (the panel device through the real Modbus driver, the default run's)
        # or "simbuilding" (in the driver's process). BENCH_BUILDING picks it for every benchmark.
        self.building = "modbus" if campus else (building or os.environ.get("BENCH_BUILDING", "modbus"))
        self.device = DEVICES[self.building]
        self.campus = campus
        self.ven_settings = dict(ven_settings or {})
        self.campus_circuits: list[Any] = []
        self.root: Path | None = None
        self.broker: LocalBroker | None = None
        self.platform: Platform | None = None
        self.panel: PanelDevice | None = None

    def __enter__(self) -> BenchSystem:
        base = os.environ.get("TMPDIR") or tempfile.gettempdir()
        self.root = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-", dir=base))
        try:
            t0 = time.monotonic()
            self.broker = LocalBroker(self.root / "mqtt", thing=THING).start()
            log(f"broker up on 127.0.0.1:{self.broker.port} ({self.root})")
            panel_port = free_port()
            registries = None
            if self.campus is not None:
                from building_device import campus as campus_wiring
                base = json.loads((ROOT / "config/ven-agent.json").read_text())
                base.update(self.ven_settings)
                self.campus_circuits = campus_wiring.write(self.root / "campus", *self.campus, panel_port, base)
                registries = [f"{self.root / 'campus'}/u{u:02d}.csv:{u}" for u in range(1, self.campus[1] + 1)]
                self.device = campus_wiring.device_topic(1)
            self.panel = PanelDevice(self.root / "panel", panel_port, registries=registries).start()
            self.platform = Platform.create(self.root / "volttron", {"IOT_THING_NAME": THING})
            self.platform.start()
            log(f"platform up at {self.platform.vhome}; installing the VEN's agents on the {self.building} building")
            self.platform.install_agents(self.broker.pki.root, self.broker.port, panel_port=self.panel.port,
                                         building=self.building, devices=self.building,
                                         extra_operators=" ".join(self.probes),
                                         wiring=None if self.campus is None else self.root / "campus")
            for identity in self.probes:
                self.platform.vctl("install", str(PROBE_DIR), "--vip-identity", identity, "--start",
                                   timeout=300)
            if self.campus is not None:
                self._await_campus()
            for identity in ("platform.driver", "ven.agent", "ven.bridge", *self.probes):
                wait_until(lambda i=identity: self.platform.agent_running(i), 60, 1.0, f"{identity} running")
            wait_until(lambda: self.rpc("ven.bridge", "get_status").get("connected"), 60, 1.0,
                       "the bridge to connect to the broker")
            log(f"system up in {time.monotonic() - t0:.0f} s")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _await_campus(self) -> None:
        """install_agents.sh stored the campus (VEN_WIRING): wait until the VEN runs with all of it."""
        assert self.campus is not None
        want = len(self.campus_circuits)
        wait_until(lambda: len(self.rpc("ven.agent", "get_status").get("circuits") or []) == want, 90, 1.0,
                   f"the VEN to take the campus's {want} circuits", retry_on=(SystemError_,))
        log(f"campus wired: {want} circuits on {self.campus[1]} Modbus unit id(s)")

    def rpc(self, peer: str, method: str, *args: Any, timeout: float = 30) -> Any:
        assert self.platform is not None
        return self.platform.rpc(peer, method, *args, timeout=timeout)

    def pids(self) -> dict[str, int]:
        assert self.platform is not None and self.platform.proc is not None
        out = {"platform (volttron)": self.platform.proc.pid}
        for identity in ("platform.driver", "ven.agent", "ven.bridge", *self.probes):
            pid = self.platform.agent_pid(identity)
            if pid:
                out[identity] = pid
        return out

    def platform_log(self) -> str:
        assert self.platform is not None
        try:
            return self.platform.log.read_text(errors="replace")
        except OSError:
            return ""

    def __exit__(self, *exc: object) -> None:
        failed = exc[0] is not None
        if self.platform is not None:
            try:
                self.platform.stop()
            except Exception as e:  # noqa: BLE001 - keep tearing down
                log(f"platform stop: {e}")
        if self.broker is not None:
            self.broker.stop()
        if self.panel is not None:
            self.panel.stop()
        if self.root is not None:
            if self.keep or failed:
                log(f"kept {self.root} (logs)")
            else:
                shutil.rmtree(self.root, ignore_errors=True)
