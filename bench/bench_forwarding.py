"""Forwarding throughput bus -> MQTT (QoS 1, no loss) next to the bus's own pubsub throughput
and raw paho QoS 1, all measured in the same run.

    bench/run.sh bench_forwarding.py [--n 3000] [--concurrency 1 8]

* bus: the probe agent publishes ``n`` ~300 B readings on ``bench/tput`` as fast as it can
  (1 or k greenlets); a second probe counts them. Throughput = received / (last receipt -
  first publish).
* forwarding: the same probe publishes the same readings on ``ven/metering``; the bridge queues
  them in its outbox and publishes them on volttron/metering (QoS 1, batched when a backlog
  builds); the backend counts readings by ``bench_seq``. Throughput = readings received /
  (last arrival - first publish). Loss = n - unique.
* raw paho: a paho client (the other_thing identity) publishes ``--raw-n`` readings QoS 1,
  100 in flight, on volttron/metering; the backend counts them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from _harness import (
    TOPICS,
    BenchSystem,
    MqttClient,
    log,
    machine,
    per_second_peak,
    print_machine,
    reading_template,
    table,
    write_results,
)

NAME = "forwarding"


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset("")

    def reset(self, run: str) -> None:
        with self.lock:
            self.run = run
            self.seen: dict[int, int] = {}
            self.dups = 0
            self.messages: list[int] = []

    def handler(self, topic: str, payload: bytes, t_ns: int, dup: bool) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            return
        readings = body.get("readings") if body.get("batch") else [body]
        with self.lock:
            hit = False
            for r in readings:
                if r.get("bench_run") == self.run and "bench_seq" in r:
                    hit = True
                    if r["bench_seq"] in self.seen:
                        self.dups += 1
                    else:
                        self.seen[r["bench_seq"]] = t_ns
            if hit:
                self.messages.append(t_ns)

    def settle(self, expect: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last, still = -1, time.monotonic()
        while time.monotonic() < deadline:
            with self.lock:
                n = len(self.seen)
            if n >= expect:
                return
            if n != last:
                last, still = n, time.monotonic()
            elif time.monotonic() - still > 10:
                return  # nothing new for 10 s
            time.sleep(0.2)


def bus_run(system: BenchSystem, n: int, conc: int, run: str) -> dict[str, Any]:
    tpl = {**reading_template(), "bench_run": run}
    system.rpc("bench.probe2", "sub_start", "bench/tput")
    pub = system.rpc("bench.probe", "publish_many", "bench/tput", n, tpl, "bench_seq", 0, conc, timeout=600)
    last, stable = None, 0
    while stable < 3:
        time.sleep(0.5)
        st = system.rpc("bench.probe2", "sub_stats", "bench/tput")
        stable = stable + 1 if st == last else 0
        last = st
    span = (st["last_ns"] - pub["t_start_ns"]) / 1e9
    send = (pub["t_end_ns"] - pub["t_start_ns"]) / 1e9
    return {"sent": n, "received": st["count"], "unique": st["unique"], "lost": n - st["unique"],
            "send_per_s": round(n / send, 1), "throughput_per_s": round(st["unique"] / span, 1)}


def forward_run(system: BenchSystem, counter: Counter, n: int, conc: int, run: str) -> dict[str, Any]:
    counter.reset(run)
    tpl = {**reading_template(), "bench_run": run}
    pub = system.rpc("bench.probe", "publish_many", "ven/metering", n, tpl, "bench_seq", 0, conc, timeout=600)
    counter.settle(n, 120)
    with counter.lock:
        seen = dict(counter.seen)
        msgs = list(counter.messages)
        dups = counter.dups
    span = (max(seen.values()) - pub["t_start_ns"]) / 1e9 if seen else float("nan")
    send = (pub["t_end_ns"] - pub["t_start_ns"]) / 1e9
    peak, _ = per_second_peak(msgs)
    return {"sent": n, "unique": len(seen), "lost": n - len(seen), "duplicates": dups, "mqtt_messages": len(msgs),
            "readings_per_message": round(len(seen) / max(1, len(msgs)), 1), "peak_mqtt_per_s": peak,
            "send_per_s": round(n / send, 1), "throughput_per_s": round(len(seen) / span, 1),
            "lag_after_last_publish_s": round((max(seen.values()) - pub["t_end_ns"]) / 1e9, 3) if seen else None}


def raw_run(system: BenchSystem, counter: Counter, n: int, run: str) -> dict[str, Any]:
    assert system.broker is not None
    counter.reset(run)
    pub = MqttClient(system.broker, "other_thing", max_inflight=100).start()
    tpl = {**reading_template("other_thing"), "bench_run": run}
    try:
        t0 = time.perf_counter_ns()
        for i in range(n):
            body = dict(tpl, bench_seq=i)
            pub.publish(TOPICS.metering, json.dumps(body), qos=1)
        t_sent = time.perf_counter_ns()
        counter.settle(n, 120)
        deadline = time.monotonic() + 30
        while pub.puback_count < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pub.stop()
    with counter.lock:
        seen = dict(counter.seen)
    span = (max(seen.values()) - t0) / 1e9
    return {"sent": n, "unique": len(seen), "lost": n - len(seen), "pubacks": pub.puback_count,
            "send_per_s": round(n / ((t_sent - t0) / 1e9), 1), "throughput_per_s": round(len(seen) / span, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--raw-n", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    m = machine()
    results: dict[str, Any] = {"bus": {}, "forwarding": {}}
    counter = Counter()
    with BenchSystem(NAME, probes=("bench.probe", "bench.probe2"), keep=a.keep) as system:
        assert system.broker is not None
        backend = MqttClient(system.broker, "cloud_backend", subscriptions=[(TOPICS.metering, 1)],
                             handler=counter.handler).start()
        try:
            time.sleep(3)
            for conc in a.concurrency:
                log(f"bus pubsub, {a.n} readings, {conc} publishing greenlet(s)")
                results["bus"][conc] = bus_run(system, a.n, conc, f"bus-{conc}")
                log(f"forwarding bus -> MQTT, {a.n} readings, {conc} publishing greenlet(s)")
                results["forwarding"][conc] = forward_run(system, counter, a.n, conc, f"fwd-{conc}")
            log(f"raw paho QoS 1, {a.raw_n} messages")
            results["raw_paho"] = raw_run(system, counter, a.raw_n, "raw")
            results["bridge_after"] = system.rpc("ven.bridge", "get_status")
        finally:
            backend.stop()

    print()
    print_machine(m)
    rows = []
    for conc in a.concurrency:
        b, f = results["bus"][conc], results["forwarding"][conc]
        ratio = f["throughput_per_s"] / b["throughput_per_s"]
        f["ratio_to_bus"] = round(ratio, 3)
        rows.append([f"bus pubsub probe -> probe2, {conc} greenlet(s)", b["sent"], b["unique"], b["lost"],
                     b["throughput_per_s"], ""])
        rows.append([f"forwarding bus -> MQTT QoS 1, {conc} greenlet(s)", f["sent"], f["unique"], f["lost"],
                     f["throughput_per_s"],
                     f"{ratio:.2f}x bus; {f['mqtt_messages']} MQTT msgs ({f['readings_per_message']}/msg), "
                     f"peak {f['peak_mqtt_per_s']}/s, dups {f['duplicates']}"])
    r = results["raw_paho"]
    rows.append(["raw paho QoS 1 (100 in flight)", r["sent"], r["unique"], r["lost"], r["throughput_per_s"],
                 f"pubacks {r['pubacks']}"])
    print(table(["throughput (readings/s)", "sent", "received", "lost", "per s", "note"], rows))
    print("aim: forwarding >= 0.9x the bus's own throughput, 0 lost")
    write_results(NAME, {"machine": m, "params": {"n": a.n, "raw_n": a.raw_n, "concurrency": a.concurrency},
                         **results, "aims": {"ratio_to_bus": 0.9, "lost": 0}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
