"""Memory and CPU of each process at steady 1 Hz metering (from /proc), over a window.

    bench/run.sh bench_footprint.py [--window 60] [--settle 30]
    bench/run.sh bench_footprint.py --window 3600 --event-every 300     (issue #13 goal 5: one hour)

With ``--event-every S`` the backend (an MQTT client with the cloud_backend identity) sends an
event command every S seconds (shed ``--shed-kw``, ``--event-duration`` seconds, so the VEN
restores on its own clock) and counts the acks. RSS is then judged at the window's first and last
minute, and its trend is the least-squares slope over the window's second half (MiB per hour):
growth that a warm-up would explain is excluded by not fitting the first half.

After the system has settled (live metering flowing to the backend), every second reads
/proc/PID/stat (utime + stime, all threads) and /proc/PID/status (VmRSS) and, when readable,
/proc/PID/smaps_rollup (Pss) of: the platform (volttron), platform.driver, ven.agent,
ven.bridge and mosquitto. CPU % of one core = delta(utime+stime) / CLK_TCK / wall * 100.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
from pathlib import Path

from _harness import (
    THING,
    TOPICS,
    BenchSystem,
    MqttClient,
    log,
    machine,
    print_machine,
    table,
    wait_until,
    write_results,
)

from ven_common.contract import event_command

NAME = "footprint"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def status_kb(pid: int, key: str) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def pss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=30.0)
    ap.add_argument("--event-every", type=float, default=0.0, help="seconds between event commands (0: none)")
    ap.add_argument("--event-duration", type=int, default=120)
    ap.add_argument("--shed-kw", type=float, default=2.0)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    m = machine()
    m["building"] = os.environ.get("BENCH_BUILDING", "modbus")
    readings: list[float] = []
    acks: dict[str, str] = {}
    lock = threading.Lock()

    def on_msg(topic: str, payload: bytes, t_ns: int, dup: bool) -> None:
        with lock:
            if topic == TOPICS.metering:
                readings.append(time.monotonic())
                return
            try:
                body = json.loads(payload)
            except ValueError:
                return
            cid = body.get("correlationId")
            if isinstance(cid, str):
                acks.setdefault(cid, str(body.get("status")))

    with BenchSystem(NAME, probes=(), keep=a.keep) as system:
        assert system.broker is not None and system.broker.pid is not None
        backend = MqttClient(system.broker, "cloud_backend", subscriptions=[(TOPICS.metering, 1), (TOPICS.ack, 1)],
                                handler=on_msg).start()
        try:
            wait_until(lambda: len(readings) >= 3, 60, 0.5, "live metering")
            log(f"settling {a.settle:.0f} s, then sampling for {a.window:.0f} s")
            time.sleep(a.settle)
            pids = system.pids()
            pids["mosquitto"] = system.broker.pid
            if system.panel is not None and system.building == "modbus":
                pids["building panel (Modbus device)"] = system.panel.pid
                for n, proxy in enumerate(protocol_proxies(system)):
                    pids[f"protocol_proxy {n + 1} (driver child)"] = proxy
            start_ticks = {k: cpu_ticks(p) for k, p in pids.items()}
            t0 = time.monotonic()
            rss: dict[str, list[int]] = {k: [] for k in pids}
            pss: dict[str, list[int]] = {k: [] for k in pids}
            rss_t: dict[str, list[float]] = {k: [] for k in pids}
            threads: dict[str, int] = {}
            sent: list[str] = []
            next_event = t0 + (a.event_every if a.event_every > 0 else float("inf"))
            next_log = t0 + 300
            while time.monotonic() - t0 < a.window:
                now = time.monotonic()
                if now >= next_event:
                    cid = f"fp-{len(sent)}-{uuid.uuid4().hex[:8]}"
                    cmd = event_command(correlation_id=cid, ven_id=THING, event_id=f"fp-evt-{len(sent)}-{uuid.uuid4().hex[:4]}",
                                        shed_kw=a.shed_kw, duration_sec=a.event_duration)
                    backend.publish(TOPICS.cmd, json.dumps(cmd), qos=1)
                    sent.append(cid)
                    next_event += a.event_every
                if now >= next_log:
                    log(f"  {now - t0:.0f} s: {len(sent)} events sent, "
                        f"ven.agent RSS {(rss.get('ven.agent') or [0])[-1] / 1024:.1f} MiB")
                    next_log += 300
                for k, p in pids.items():
                    v = status_kb(p, "VmRSS")
                    if v is not None:
                        rss[k].append(v)
                        rss_t[k].append(now - t0)
                    q = pss_kb(p)
                    if q is not None:
                        pss[k].append(q)
                    threads[k] = status_kb(p, "Threads") or 0
                time.sleep(1.0)
            wall = time.monotonic() - t0
            end_ticks = {k: cpu_ticks(p) for k, p in pids.items()}
            with lock:
                in_window = sum(1 for t in readings if t0 <= t <= t0 + wall)
            if sent:   # the last event's ack may still be on its way
                wait_until(lambda: all(c in acks for c in sent), 30, 0.5, "an ack for every event")
        finally:
            backend.stop()
        acked = {c: acks.get(c) for c in sent}

    rows, out = [], {}
    edge = min(60.0, wall / 4)
    for k, p in pids.items():
        cpu_pct = (end_ticks[k] - start_ticks[k]) / CLK_TCK / wall * 100
        r, ts, q = rss[k], rss_t[k], pss[k]
        first = [v for v, t in zip(r, ts, strict=False) if t <= edge] or r[:1]
        last = [v for v, t in zip(r, ts, strict=False) if t >= wall - edge] or r[-1:]
        half = [(t, v) for v, t in zip(r, ts, strict=False) if t >= wall / 2]
        out[k] = {"pid": p, "threads": threads.get(k), "cpu_pct_one_core": round(cpu_pct, 3),
                  "rss_mib_mean": round(sum(r) / len(r) / 1024, 1), "rss_mib_min": round(min(r) / 1024, 1),
                  "rss_mib_max": round(max(r) / 1024, 1),
                  "rss_mib_start": round(sum(first) / len(first) / 1024, 1),
                  "rss_mib_end": round(sum(last) / len(last) / 1024, 1),
                  "rss_mib_per_hour_second_half": round(slope_per_hour(half) / 1024, 2),
                  "rss_mib_per_minute": per_minute(r, ts),
                  "pss_mib_mean": round(sum(q) / len(q) / 1024, 1) if q else None}
        rows.append([k, p, threads.get(k), f"{cpu_pct:.2f}", out[k]["rss_mib_start"], out[k]["rss_mib_end"],
                     f"{out[k]['rss_mib_min']}-{out[k]['rss_mib_max']}",
                     f"{out[k]['rss_mib_per_hour_second_half']:+.2f}", out[k]["pss_mib_mean"]])
    print()
    print_machine(m)
    print(f"window {wall:.0f} s; metering readings at the backend in the window: {in_window} "
          f"({in_window / wall:.2f}/s); CPU resolution {100 / CLK_TCK / wall:.3f} % (1 tick over the window)")
    if sent:
        statuses = sorted(set(acked.values()), key=str)
        print(f"events sent every {a.event_every:.0f} s (shed {a.shed_kw} kW for {a.event_duration} s): {len(sent)}; "
              f"acked {sum(1 for v in acked.values() if v is not None)} ({', '.join(map(str, statuses))})")
    print(table(["process", "pid", "threads", "CPU % of a core", f"RSS MiB first {edge:.0f} s",
                 f"RSS MiB last {edge:.0f} s", "RSS min-max", "trend MiB/h (2nd half)", "PSS MiB"], rows))
    print("aim per agent: RSS <= 60 MB (5-circuit building), no growth trend, CPU <= 1 % of a core")
    write_results(NAME, {"machine": m, "params": {"window_s": a.window, "settle_s": a.settle,
                                                  "event_every_s": a.event_every, "event_duration_s": a.event_duration,
                                                  "shed_kw": a.shed_kw},
                         "window_s": round(wall, 1), "metering_readings_in_window": in_window, "processes": out,
                         "events": {"sent": len(sent), "acks": acked},
                         "aims": {"rss_mb": 60, "cpu_pct": 1.0}})
    return 0


def slope_per_hour(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, kB) points, in kB per hour (0 when too few points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return 0.0 if den == 0 else sum((t - mt) * (v - mv) for t, v in points) / den * 3600


def per_minute(values: list[int], times: list[float]) -> list[float]:
    """Mean RSS (MiB) of each minute of the window, to see a trend by eye."""
    buckets: dict[int, list[int]] = {}
    for v, t in zip(values, times, strict=False):
        buckets.setdefault(int(t // 60), []).append(v)
    return [round(sum(b) / len(b) / 1024, 2) for _, b in sorted(buckets.items())]


def protocol_proxies(system: BenchSystem) -> list[int]:
    """The Modbus driver's proxy processes of this benchmark's platform."""
    assert system.platform is not None
    mark = f"VOLTTRON_HOME={system.platform.vhome}".encode()
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"protocol_proxy" in (proc / "cmdline").read_bytes() and mark in (proc / "environ").read_bytes().split(b"\0"):
                out.append(int(proc.name))
        except OSError:
            continue
    return out


if __name__ == "__main__":
    raise SystemExit(main())
