"""Memory and CPU of each process at steady 1 Hz metering (from /proc), over a 60 s window.

    bench/run.sh bench_footprint.py [--window 60] [--settle 30]

After the system has settled (live metering flowing to the backend), every second reads
/proc/PID/stat (utime + stime, all threads) and /proc/PID/status (VmRSS) and, when readable,
/proc/PID/smaps_rollup (Pss) of: the platform (volttron), platform.driver, ven.agent,
ven.bridge and mosquitto. CPU % of one core = delta(utime+stime) / CLK_TCK / wall * 100.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path
from typing import Any

from _harness import (TOPICS, BenchSystem, MqttClient, log, machine, print_machine, table, wait_until,
                      write_results)

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
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    m = machine()
    m["building"] = os.environ.get("BENCH_BUILDING", "modbus")
    readings: list[float] = []
    lock = threading.Lock()

    def on_msg(topic: str, payload: bytes, t_ns: int, dup: bool) -> None:
        with lock:
            readings.append(time.monotonic())

    with BenchSystem(NAME, probes=(), keep=a.keep) as system:
        assert system.broker is not None and system.broker._proc is not None
        backend = MqttClient(system.broker, "cloud_backend", subscriptions=[(TOPICS.metering, 1)], handler=on_msg).start()
        try:
            wait_until(lambda: len(readings) >= 3, 60, 0.5, "live metering")
            log(f"settling {a.settle:.0f} s, then sampling for {a.window:.0f} s")
            time.sleep(a.settle)
            pids = system.pids()
            pids["mosquitto"] = system.broker._proc.pid
            if system.panel is not None and system.building == "modbus":
                pids["building panel (Modbus device)"] = system.panel.pid
                for n, proxy in enumerate(protocol_proxies(system)):
                    pids[f"protocol_proxy {n + 1} (driver child)"] = proxy
            start_ticks = {k: cpu_ticks(p) for k, p in pids.items()}
            t0 = time.monotonic()
            rss: dict[str, list[int]] = {k: [] for k in pids}
            pss: dict[str, list[int]] = {k: [] for k in pids}
            threads: dict[str, int] = {}
            while time.monotonic() - t0 < a.window:
                for k, p in pids.items():
                    v = status_kb(p, "VmRSS")
                    if v is not None:
                        rss[k].append(v)
                    q = pss_kb(p)
                    if q is not None:
                        pss[k].append(q)
                    threads[k] = status_kb(p, "Threads") or 0
                time.sleep(1.0)
            wall = time.monotonic() - t0
            end_ticks = {k: cpu_ticks(p) for k, p in pids.items()}
            with lock:
                in_window = sum(1 for t in readings if t0 <= t <= t0 + wall)
        finally:
            backend.stop()

    rows, out = [], {}
    for k, p in pids.items():
        cpu_pct = (end_ticks[k] - start_ticks[k]) / CLK_TCK / wall * 100
        r = rss[k]
        q = pss[k]
        out[k] = {"pid": p, "threads": threads.get(k), "cpu_pct_one_core": round(cpu_pct, 3),
                  "rss_mib_mean": round(sum(r) / len(r) / 1024, 1), "rss_mib_min": round(min(r) / 1024, 1),
                  "rss_mib_max": round(max(r) / 1024, 1),
                  "pss_mib_mean": round(sum(q) / len(q) / 1024, 1) if q else None}
        rows.append([k, p, threads.get(k), f"{cpu_pct:.2f}", out[k]["rss_mib_mean"],
                     f"{out[k]['rss_mib_min']}-{out[k]['rss_mib_max']}", out[k]["pss_mib_mean"]])
    print()
    print_machine(m)
    print(f"window {wall:.0f} s; metering readings at the backend in the window: {in_window} "
          f"({in_window / wall:.2f}/s); CPU resolution {100 / CLK_TCK / wall:.3f} % (1 tick over the window)")
    print(table(["process", "pid", "threads", "CPU % of a core", "RSS MiB", "RSS min-max", "PSS MiB"], rows))
    print("aim per agent: RSS <= 60 MB, CPU <= 1 % of a core")
    write_results(NAME, {"machine": m, "params": {"window_s": a.window, "settle_s": a.settle},
                         "window_s": round(wall, 1), "metering_readings_in_window": in_window, "processes": out,
                         "aims": {"rss_mb": 60, "cpu_pct": 1.0}})
    return 0


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
