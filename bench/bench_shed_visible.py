"""Command -> reduced power visible on volttron/metering (what the cloud sees), >= 20 samples.

    bench/run.sh bench_shed_visible.py [--samples 25] [--shed-kw 2.0]

Per sample: wait a random 0-1 s (so commands fall at random phases of the driver's 1 s poll
grid), publish an event command on ven/cmd/{thing} as the backend, and time until the first
reading on volttron/metering whose power_kw is below the pre-command level by at least 75 %
of the requested shed. Then restore and wait until the power is back before the next sample.
The reading's own ``ts`` (stamped by the VEN when it built it) splits the time into
"until the VEN saw the drop" and "VEN -> bridge -> MQTT -> backend".
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import threading
import time
import uuid
from typing import Any

from _harness import (
    STAT_HEADERS,
    THING,
    TOPICS,
    BenchSystem,
    MqttClient,
    log,
    machine,
    print_machine,
    stat_row,
    summary,
    table,
    wait_until,
    write_results,
)

from ven_common.contract import event_command, restore_command

NAME = "shed_visible"


class Readings:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.items: list[tuple[int, float, dict[str, Any]]] = []  # (arrival perf ns, arrival wall, reading)
        self.acks: dict[str, int] = {}

    def handler(self, topic: str, payload: bytes, t_ns: int, dup: bool) -> None:
        wall = time.time()
        try:
            body = json.loads(payload)
        except ValueError:
            return
        with self.cond:
            if topic == TOPICS.ack:
                if isinstance(body.get("correlationId"), str):
                    self.acks[body["correlationId"]] = t_ns
            else:
                for r in body.get("readings") or [body]:
                    self.items.append((t_ns, wall, r))
            self.cond.notify_all()

    def wait(self, pred, since_ns: int, timeout: float) -> tuple[int, float, dict[str, Any]] | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.items:
                    if item[0] >= since_ns and pred(item[2]):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def recent_power(self, since_ns: int = 0, k: int = 3) -> float:
        """The building's power before a command: the median of the last k readings taken since the
        previous sample's restore showed (earlier ones may still show its shed)."""
        with self.cond:
            vals = [r["power_kw"] for t, _, r in self.items[-k:]
                    if t >= since_ns and isinstance(r.get("power_kw"), (int, float))]
        return statistics.median(vals) if vals else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=25)
    ap.add_argument("--shed-kw", type=float, default=2.0)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    m = machine()
    rng = random.Random()
    threshold = 0.75 * a.shed_kw
    rows: list[dict[str, Any]] = []
    with BenchSystem(NAME, probes=(), keep=a.keep) as system:
        assert system.broker is not None
        rd = Readings()
        backend = MqttClient(system.broker, "cloud_backend", subscriptions=[(TOPICS.metering, 1), (TOPICS.ack, 1)],
                             handler=rd.handler).start()
        try:
            wait_until(lambda: len(rd.items) >= 5, 60, 0.5, "5 metering readings")
            restored_ns = 0
            for i in range(a.samples):
                time.sleep(rng.uniform(0.0, 1.0))
                base = rd.recent_power(restored_ns)
                cid = f"vis-{i}-{uuid.uuid4().hex[:8]}"
                cmd = event_command(correlation_id=cid, ven_id=THING, event_id=f"vis-evt-{i}-{uuid.uuid4().hex[:4]}",
                                    shed_kw=a.shed_kw, duration_sec=600)
                t0 = time.perf_counter_ns()
                wall0 = time.time()
                backend.publish(TOPICS.cmd, json.dumps(cmd), qos=1)
                hit = rd.wait(lambda r, base=base: isinstance(r.get("power_kw"), (int, float))
                              and r["power_kw"] <= base - threshold, t0, 10.0)
                ack_ns = rd.acks.get(cid)
                row: dict[str, Any] = {"base_kw": round(base, 3), "ack_ms": None if ack_ns is None else (ack_ns - t0) / 1e6}
                if hit is None:
                    row.update(visible_ms=None)
                else:
                    t_ns, wall, reading = hit
                    row.update(visible_ms=(t_ns - t0) / 1e6, power_kw=reading["power_kw"],
                               ven_saw_ms=(float(reading["ts"]) - wall0) * 1000,
                               forward_ms=(wall - float(reading["ts"])) * 1000)
                rows.append(row)
                shown = "LOST" if row["visible_ms"] is None else f"{row['visible_ms']:.0f} ms"
                log(f"  sample {i + 1}/{a.samples}: visible after {shown}")
                restored_since = time.perf_counter_ns()
                backend.publish(TOPICS.cmd, json.dumps(restore_command(correlation_id=f"{cid}-r", ven_id=THING)), qos=1)
                back = rd.wait(lambda r, base=base: isinstance(r.get("power_kw"), (int, float)) and r["power_kw"] >= base - 0.5
                               and r.get("active_event") is None, restored_since, 20.0)
                if back is None:
                    log("  power did not come back within 20 s; continuing")
                else:
                    restored_ns = back[0]
                time.sleep(1.0)
        finally:
            backend.stop()

    vis = [r["visible_ms"] for r in rows if r["visible_ms"] is not None]
    s_vis = summary(vis)
    s_ack = summary(r["ack_ms"] for r in rows if r["ack_ms"] is not None)
    s_saw = summary(r["ven_saw_ms"] for r in rows if r.get("ven_saw_ms") is not None)
    s_fwd = summary(r["forward_ms"] for r in rows if r.get("forward_ms") is not None)
    print()
    print_machine(m)
    print(f"shed {a.shed_kw} kW; 'visible' = first reading on {TOPICS.metering} with power_kw <= base - {threshold:.2f}")
    print(table(STAT_HEADERS, [
        stat_row("command -> drop visible at backend", s_vis),
        stat_row("  command -> VEN built that reading", s_saw),
        stat_row("  reading built -> arrived at backend", s_fwd),
        stat_row("command -> ack (same commands)", s_ack),
    ]))
    print(f"samples without a visible drop within 10 s: {len(rows) - len(vis)}")
    walls = [wall for _, wall, _ in rd.items]
    gaps = [b - a_ for a_, b in itertools.pairwise(walls)]
    if gaps:   # the cadence promise: one reading per slot, never two within half an interval
        print(f"metering: {len(walls)} readings, gaps min {min(gaps) * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms, "
              f"mean {sum(gaps) / len(gaps) * 1000:.0f} ms")
    write_results(NAME, {"machine": m, "params": {"samples": a.samples, "shed_kw": a.shed_kw, "threshold_kw": threshold},
                         "visible": s_vis, "ven_built_reading": s_saw, "reading_forward": s_fwd, "ack": s_ack,
                         "not_visible": len(rows) - len(vis), "samples": rows,
                         "readings": [(round(wall, 3), r.get("power_kw"), r.get("active_event"))
                                      for _, wall, r in rd.items]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
