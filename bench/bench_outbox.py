"""Outbox throughput: enqueue rate, and drain rate through the real planner + drainer.

    python bench/bench_outbox.py [--n 20000] [--synchronous NORMAL|FULL]

Prints msgs/s and writes bench/results/outbox.json. The drain uses a fake link that
PUBACKs immediately, so it measures the bridge's own cost (SQLite + JSON + batching), not
the network; the rate limit is lifted to AWS's maximum and then ignored via a fast clock.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "BackendBridgeAgent"), str(HERE.parent / "common")]

from backendbridge.drain import Drainer  # noqa: E402
from backendbridge.outbox import Outbox  # noqa: E402

THING = "volttron_thing"


class InstantLink:
    connected = True

    def __init__(self) -> None:
        self.acks: list[int] = []
        self.messages = 0

    def publish(self, topic: str, payload: bytes, qos: int, token: int) -> bool:
        self.acks.append(token)
        self.messages += 1
        return True


def reading(i: int) -> dict:
    return {"venId": THING, "ts": 1_760_000_000 + i, "power_kw": 10.25, "shed_kw": 0.0,
            "circuits": {"HVAC": 5.5, "Heater": 2.5, "EV Charger": 0.0, "Lights": 1.2}}


def run(n: int, synchronous: str, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ob = Outbox(Path(tmp) / "outbox.sqlite", synchronous=synchronous)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        for i in range(n):
            ob.enqueue("metering", "volttron/metering", reading(i))
        enqueue_s = time.perf_counter() - t0

        link = InstantLink()
        fake_now = [0.0]
        drainer = Drainer(ob, link, ven_id=THING, batch_max_readings=batch, max_inflight=100,
                          max_publish_per_sec=100.0, clock=lambda: fake_now[0])
        t0 = time.perf_counter()
        while ob.depth():
            fake_now[0] += 10.0  # refill the token bucket: measure our cost, not the limit
            drainer.pump()
            for token in link.acks:
                drainer.on_puback(token)
            link.acks.clear()
        drain_s = time.perf_counter() - t0
        ob.close()
    return {
        "n": n,
        "synchronous": synchronous,
        "batch_max_readings": batch,
        "enqueue_msgs_per_s": round(n / enqueue_s),
        "drain_readings_per_s": round(n / drain_s),
        "drain_mqtt_messages": link.messages,
        "drain_mqtt_messages_per_s": round(link.messages / drain_s),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--synchronous", choices=["NORMAL", "FULL"], default=None,
                    help="only this mode (default: both)")
    args = ap.parse_args()
    modes = [args.synchronous] if args.synchronous else ["NORMAL", "FULL"]
    results = []
    for mode in modes:
        for batch in (1, 100):
            r = run(args.n if mode == "NORMAL" else min(args.n, 5000), mode, batch)
            results.append(r)
            print(f"sync={mode:6} batch={batch:3}  enqueue {r['enqueue_msgs_per_s']:>7} msg/s   "
                  f"drain {r['drain_readings_per_s']:>7} readings/s in {r['drain_mqtt_messages']} MQTT messages")
    out = HERE / "results" / "outbox.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                               "results": results}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
