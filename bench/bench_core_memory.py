"""Memory of the VEN's pure parts over simulated hours: engine, store, journal and the page's ring.

    python bench/bench_core_memory.py [--hours 2] [--circuits 5] [--event-every 300]

No VOLTTRON: the VenEngine is fed one reading a second of a simulated building (time passed in,
so two hours take seconds), an event every ``--event-every`` s (120 s long, so it restores on its
own clock), and every bus message it emits goes to a file journal and the page's metering ring,
as the agent does. ``tracemalloc`` reports the Python heap every simulated 10 minutes and the
allocation sites that grew most between the end of the first and of the last hour. Bounded parts
(the journal's SQLite, the one-hour ring) show as growth only while they fill.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "VenAgent"), str(ROOT / "common")]

from venagent.core import CircuitSample, VenConfig, VenEngine, VenStore  # noqa: E402
from venagent.journal import Journal  # noqa: E402
from venagent.web import MeteringRing  # noqa: E402

T0 = 1_760_000_000.0


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def config(n: int) -> VenConfig:
    circuits = [{"name": f"C{i:03d}", "device": f"campus/building/u{i // 25 + 1:02d}", "enable_point": f"C{i:03d}_on",
                 "power_point": f"C{i:03d}_kw", "rated_kw": 1.0 + (i % 7), "priority": i % 9, "critical": i % 10 == 9}
                for i in range(n)]
    return VenConfig.from_dict({"circuits": circuits, "restore_spacing_sec": 2.0, "restore_jitter_sec": 1.0})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--circuits", type=int, default=5)
    ap.add_argument("--event-every", type=float, default=300.0)
    a = ap.parse_args()
    cfg = config(a.circuits)
    rated = {c.name: c.rated_kw for c in cfg.circuits}
    state = dict.fromkeys(rated, True)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        engine = VenEngine(cfg, VenStore(str(Path(tmp) / "store.sqlite")), random.Random(7))
        journal = Journal(path=str(Path(tmp) / "journal.sqlite"))
        ring = MeteringRing()
        tracemalloc.start(12)
        marks: list[tuple[float, int]] = []
        hour_snap = None
        events = 0
        t, end = T0, T0 + a.hours * 3600
        while t < end:
            samples = {n: CircuitSample(on, rated[n] * (1 + rng.uniform(-0.01, 0.01)) if on else 0.0, read_ts=t - 0.3)
                       for n, on in state.items()}
            fx = engine.on_readings(t, samples)
            if (t - T0) % a.event_every < 1 and t > T0 + 60:
                events += 1
                ack, more = engine.on_command(t, {"op": "event", "correlationId": f"c{events}", "venId": cfg.thing_name,
                                                  "event_id": f"e{events}", "shed_kw": 0.2 * sum(rated.values()),
                                                  "duration_sec": 120})
                fx = type(fx)(dict(fx.writes) | dict(more.writes), fx.messages + more.messages + (("ven/ack", ack),))
            for tick in (0.0, 0.5):
                tfx = engine.tick(t + tick)
                fx = type(fx)(dict(fx.writes) | dict(tfx.writes), fx.messages + tfx.messages)
            if fx.writes:
                state.update({k: v for k, v in fx.writes.items() if k in state})
                out = engine.on_write_outcome(t, list(fx.writes), {})
                fx = type(fx)(fx.writes, fx.messages + out.messages)
            for topic, message in fx.messages:
                journal.append(topic, message)
                if topic == "ven/metering":
                    ring.add(message, None)
            if (t - T0) % 600 < 1:
                marks.append(((t - T0) / 3600, tracemalloc.get_traced_memory()[0], rss_kb()))
            if hour_snap is None and t - T0 >= 3600:
                hour_snap = tracemalloc.take_snapshot()
            t += 1.0
        final = tracemalloc.take_snapshot()
        print(f"{a.circuits} circuits, {a.hours:g} simulated hours, {events} events, journal last seq {journal.last_seq}")
        print("hour   Python heap (KiB)   process RSS (KiB, with tracemalloc's own)")
        for hour, size, rss in marks:
            print(f"{hour:5.2f}  {size / 1024:17.1f}   {rss:10d}")
        if hour_snap is not None:
            print("largest growth after the first hour (allocation site, KiB):")
            for stat in final.compare_to(hour_snap, "traceback")[:4]:
                print(f"  {stat.size_diff / 1024:+9.1f}  " + " <- ".join(
                    f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stat.traceback) if "python3" not in f.filename
                )[:300])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
