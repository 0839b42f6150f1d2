"""Command -> ack latency over the full path, next to the floor measured in the same run.

    bench/run.sh bench_command_latency.py [--n 600] [--gap-ms 100] [--floor-n 400]

Full path: backend (paho) publishes on ven/cmd/{thing} -> mosquitto -> bridge -> VIP RPC
ven.agent.handle_command -> VEN -> platform.driver set -> ack returned ->
bridge -> MQTT ven/ack/{thing} -> backend. Commands cycle create / modify (shed 3.0) /
modify (shed 1.0) / restore on fresh correlationIds, so events and modifications write.

Floor, same platform and broker, same gap between samples:
  (a) raw MQTT command -> ack round trip (a paho "device" with the other_thing identity echoes);
  (b) a bare VIP RPC round trip, timed inside the platform by the probe agent
      (bench.probe -> bench.probe2.echo; platform.driver get_point is shown as well);
  (c) a bare platform.driver set round trip (one point, as the VEN writes).
The bridge logs the duration of its handle_command RPC per correlationId; that splits the
full path into "bridge RPC to the VEN" and "everything else" (MQTT both ways, the bridge's
hand-off, outbox and drain).
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from typing import Any

from _harness import (
    DEVICE,
    STAT_HEADERS,
    THING,
    TOPICS,
    BenchSystem,
    MqttClient,
    log,
    machine,
    ns_to_ms,
    print_machine,
    stat_row,
    summary,
    table,
    wait_until,
    write_results,
)

from ven_common.contract import event_command, restore_command

NAME = "command_latency"
DEVICE_THING = "other_thing"  # the raw-MQTT floor's echoing device (its own ACL topics)
PAYLOAD = {"cmd_id": str(uuid.UUID(int=1)), "ven_id": THING, "event_id": "evt-0001", "signal": "SIMPLE",
           "level": 2, "targets": ["campus/building/sim/HVAC_enabled"], "seq": 1}


class AckWaiter:
    """Backend side: publish a command, wait for the ack carrying its correlationId."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[threading.Event, list[Any]]] = {}

    def handler(self, topic: str, payload: bytes, t_ns: int, dup: bool) -> None:
        try:
            cid = json.loads(payload).get("correlationId")
        except (ValueError, AttributeError):
            return
        with self._lock:
            entry = self._pending.get(cid)
        if entry is not None and not entry[0].is_set():
            entry[1][:] = [t_ns, payload]
            entry[0].set()

    def expect(self, cid: str) -> tuple[threading.Event, list[Any]]:
        entry = (threading.Event(), [])
        with self._lock:
            self._pending[cid] = entry
        return entry

    def done(self, cid: str) -> None:
        with self._lock:
            self._pending.pop(cid, None)


def round_trip(client: MqttClient, waiter: AckWaiter, topic: str, body: dict[str, Any],
               timeout: float = 10.0) -> tuple[float | None, dict[str, Any] | None, int]:
    cid = body["correlationId"]
    ev, slot = waiter.expect(cid)
    data = json.dumps(body)
    t0 = time.perf_counter_ns()
    client.publish(topic, data, qos=1)
    ok = ev.wait(timeout)
    waiter.done(cid)
    if not ok:
        return None, None, t0
    return (slot[0] - t0) / 1e6, json.loads(slot[1]), t0


def raw_mqtt_floor(system: BenchSystem, n: int, warmup: int, gap: float) -> list[float]:
    broker = system.broker
    assert broker is not None
    cmd_topic, ack_topic = f"ven/cmd/{DEVICE_THING}", f"ven/ack/{DEVICE_THING}"
    device: MqttClient

    def echo(topic: str, payload: bytes, t_ns: int, dup: bool) -> None:
        body = json.loads(payload)
        device.publish(ack_topic, json.dumps({"op": body.get("op"), "status": "accepted",
                                              "correlationId": body.get("correlationId"), "ts": int(time.time())}))

    device = MqttClient(broker, DEVICE_THING, subscriptions=[(cmd_topic, 1)], handler=echo).start()
    waiter = AckWaiter()
    backend = MqttClient(broker, "cloud_backend", subscriptions=[(ack_topic, 1)], handler=waiter.handler).start()
    out: list[float] = []
    try:
        for i in range(warmup + n):
            body = {**PAYLOAD, "op": "event", "correlationId": f"raw-{i}-{uuid.uuid4().hex[:6]}"}
            ms, _, _ = round_trip(backend, waiter, cmd_topic, body)
            if ms is None:
                raise RuntimeError("raw MQTT echo lost a message")
            if i >= warmup:
                out.append(ms)
            time.sleep(gap)
    finally:
        backend.stop()
        device.stop()
    return out


def probe_rpc(system: BenchSystem, peer: str, method: str, args: list[Any], n: int, warmup: int,
              gap_ms: float) -> list[float]:
    samples = system.rpc("bench.probe", "time_rpc", peer, method, args, n, warmup, gap_ms,
                         timeout=60 + n * (gap_ms / 1000 + 0.05))
    return ns_to_ms(samples)


MODIFIES_PER_EVENT = 8


def command_cycle(k: int) -> list[tuple[str, dict[str, Any]]]:
    """One event's life on fresh correlationIds: create (1 kW), then modifications toggling
    3 kW / 1 kW (each re-selects and writes one circuit), then restore (its writes are
    staggered by restore_spacing_sec, so they happen after the ack, from the VEN's tick)."""
    evt = f"bench-evt-{k}-{uuid.uuid4().hex[:6]}"

    def cid(tag: str) -> str:
        return f"bench-{k}-{tag}-{uuid.uuid4().hex[:8]}"

    def event(tag: str, kw: float) -> dict[str, Any]:
        return event_command(correlation_id=cid(tag), ven_id=THING, event_id=evt, shed_kw=kw, duration_sec=3600)

    cycle = [("create", event("c", 1.0))]
    for i in range(MODIFIES_PER_EVENT):
        cycle.append(("modify_up", event(f"u{i}", 3.0)) if i % 2 == 0 else ("modify_down", event(f"d{i}", 1.0)))
    cycle.append(("restore", restore_command(correlation_id=cid("r"), ven_id=THING)))
    return cycle


_BRIDGE_LINE = re.compile(r"command (\S+) (\S+) -> (\S+) in ([0-9.]+) ms")


_VEN_LINE = re.compile(r"command (\S+) (\S+) timing: core ([0-9.]+) ms, write ([0-9.]+) ms, "
                       r"(\d+) bus message\(s\) ([0-9.]+) ms")


def ven_timings(log_text: str) -> dict[str, dict[str, float]]:
    """The VenAgent's per-command timing log line (core, driver write, bus publishes), if present."""
    return {m.group(2): {"core": float(m.group(3)), "write": float(m.group(4)), "messages": int(m.group(5)),
                         "publish": float(m.group(6))} for m in _VEN_LINE.finditer(log_text)}


def bridge_rpc_times(log_text: str) -> dict[str, float]:
    return {m.group(2): float(m.group(4)) for m in _BRIDGE_LINE.finditer(log_text)}


def full_path(system: BenchSystem, n: int, warmup: int, gap: float,
              actuations: dict[str, int]) -> list[dict[str, Any]]:
    broker = system.broker
    assert broker is not None
    waiter = AckWaiter()

    def handler(topic: str, payload: bytes, t_ns: int, dup: bool) -> None:
        if topic == TOPICS.telemetry:
            try:
                body = json.loads(payload)
            except ValueError:
                return
            if body.get("type") == "actuation":
                key = str(body.get("reason"))
                actuations[key] = actuations.get(key, 0) + 1
            return
        waiter.handler(topic, payload, t_ns, dup)

    backend = MqttClient(broker, "cloud_backend", subscriptions=[(TOPICS.ack, 1), (TOPICS.telemetry, 1)],
                         handler=handler).start()
    rows: list[dict[str, Any]] = []
    k = 0
    try:
        while len(rows) < warmup + n:
            for kind, body in command_cycle(k):
                ms, ack, t0 = round_trip(backend, waiter, TOPICS.cmd, body)
                rows.append({"kind": kind, "cid": body["correlationId"], "ms": ms, "t0_ns": t0,
                             "status": None if ack is None else ack.get("status"),
                             "reason": None if ack is None else ack.get("reason"),
                             "warmup": len(rows) < warmup})
                time.sleep(gap)
            k += 1
            if k % 25 == 0:
                log(f"  {len(rows)} commands sent")
    finally:
        backend.stop()
    return rows


def attribute_bus_messages(rows: list[dict[str, Any]], log_items: list[Any]) -> dict[str, dict[str, Any]]:
    """Per command kind: the VEN's bus messages that arrived while the command was in flight.

    The VEN publishes them inside handle_command, so they reach the probe before the ack
    reaches the backend; metering and the bridge's status are not the command's."""
    items = sorted((int(t), str(topic)) for topic, t in log_items
                   if topic not in ("ven/metering", "ven/bridge/status"))
    out: dict[str, dict[str, Any]] = {}
    j = 0
    for r in sorted(rows, key=lambda r: r["t0_ns"]):
        start, end = r["t0_ns"], r["t0_ns"] + int((r["ms"] + 2.0) * 1e6)
        while j < len(items) and items[j][0] < start:
            j += 1
        k = j
        topics: dict[str, int] = {}
        while k < len(items) and items[k][0] <= end:
            topics[items[k][1]] = topics.get(items[k][1], 0) + 1
            k += 1
        acc = out.setdefault(r["kind"], {"commands": 0, "messages": 0, "wrote": 0, "topics": {}})
        acc["commands"] += 1
        acc["messages"] += sum(topics.values())
        acc["wrote"] += int("ven/actuation" in topics)
        for t, c in topics.items():
            acc["topics"][t] = acc["topics"].get(t, 0) + c
    for acc in out.values():
        acc["messages_mean"] = round(acc["messages"] / acc["commands"], 2)
        acc["write_share"] = round(acc["wrote"] / acc["commands"], 2)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="measured full-path commands (after warm-up)")
    ap.add_argument("--floor-n", type=int, default=400, help="samples per floor measurement")
    ap.add_argument("--gap-ms", type=float, default=100.0, help="idle time between samples (all measurements)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    a = ap.parse_args()
    m = machine()
    gap = a.gap_ms / 1000.0
    with BenchSystem(NAME, probes=("bench.probe", "bench.probe2"), keep=a.keep) as system:
        wait_until(lambda: (system.rpc("ven.agent", "get_status") or {}).get("power_kw") is not None, 60, 1.0,
                   "the VEN's first reading")
        time.sleep(3)
        log("floor (a): raw MQTT command -> ack echo")
        raw = raw_mqtt_floor(system, a.floor_n, 50, gap)
        log("floor (b): bare VIP RPC (probe -> probe2.echo, and platform.driver get_point)")
        echo = probe_rpc(system, "bench.probe2", "echo", [PAYLOAD], a.floor_n, 100, a.gap_ms)
        get_point = probe_rpc(system, "platform.driver", "get_point", [DEVICE, "Building_kw"], a.floor_n, 100,
                              a.gap_ms)
        log(f"floor (c): platform.driver set (1 point, as the VEN writes) on the {system.building} building")
        smp = probe_rpc(system, "platform.driver", "set", [False, [f"devices/{DEVICE}/EV_Charger_enabled"]],
                        a.floor_n, 50, a.gap_ms)
        log("extra: how long one pubsub.publish blocks its caller")
        pub_block = ns_to_ms(system.rpc("bench.probe", "time_publish", "bench/blocking", 500, 20, timeout=120))
        log("lever check: an RPC shaped like handle_command (1 write + 3 publishes), publishes before vs after return")
        work_args = [DEVICE, [["EV_Charger_enabled", False]], 3]
        work_sync = probe_rpc(system, "bench.probe2", "work", [*work_args, False], a.floor_n, 50, a.gap_ms)
        work_deferred = probe_rpc(system, "bench.probe2", "work", [*work_args, True], a.floor_n, 50, a.gap_ms)
        log("the VEN alone: handle_command called from the probe (no MQTT, no bridge)")
        direct_kinds, direct_args = [], []
        for k in range(max(1, a.floor_n // (MODIFIES_PER_EVENT + 2))):
            for kind, body in command_cycle(10_000 + k):
                direct_kinds.append(kind)
                direct_args.append([body, "rpc"])
        direct = ns_to_ms(system.rpc("bench.probe", "time_calls", "ven.agent", "handle_command", direct_args,
                                     a.gap_ms, timeout=120 + len(direct_args) * (a.gap_ms / 1000 + 0.1)))
        time.sleep(5)  # let the last event's staggered restores finish
        system.rpc("bench.probe", "sub_start", "ven/")
        log(f"full path: {a.n} commands (+20 warm-up), gap {a.gap_ms} ms")
        actuations: dict[str, int] = {}
        rows = full_path(system, a.n, 20, gap, actuations)
        time.sleep(1.0)
        log_text = system.platform_log()
        rpc_ms = bridge_rpc_times(log_text)
        ven_ms = ven_timings(log_text)
        ven_msgs = system.rpc("bench.probe", "sub_log", "ven/", timeout=60)
        stats_after = system.rpc("ven.bridge", "get_status")

    measured = [r for r in rows if not r["warmup"]]
    lost = [r for r in measured if r["ms"] is None]
    ok = [r for r in measured if r["ms"] is not None]
    full = summary(r["ms"] for r in ok)
    by_kind = {kind: summary(r["ms"] for r in ok if r["kind"] == kind)
               for kind in ("create", "modify_up", "modify_down", "restore")}
    kind_of = {r["cid"]: r["kind"] for r in ok}
    rpc_by_kind = {kind: summary(v for c, v in rpc_ms.items() if kind_of.get(c) == kind) for kind in by_kind}
    per_kind_msgs = attribute_bus_messages(ok, ven_msgs)
    statuses: dict[str, int] = {}
    for r in measured:
        key = f"{r['kind']}:{r['status']}"
        statuses[key] = statuses.get(key, 0) + 1
    rejected_reasons = sorted({r["reason"] for r in measured if r["status"] == "rejected"})[:5]
    in_rpc = [rpc_ms[r["cid"]] for r in ok if r["cid"] in rpc_ms]
    outside = [r["ms"] - rpc_ms[r["cid"]] for r in ok if r["cid"] in rpc_ms]

    s_raw, s_echo, s_get, s_smp, s_pub = (summary(x) for x in (raw, echo, get_point, smp, pub_block))
    floor_p50 = s_raw["p50"] + s_echo["p50"] + s_smp["p50"]
    floor_p99 = s_raw["p99"] + s_echo["p99"] + s_smp["p99"]
    ratio_p50 = full["p50"] / floor_p50
    ratio_p99 = full["p99"] / floor_p99

    print()
    print_machine(m)
    print(f"gap between samples: {a.gap_ms} ms; full path n={len(ok)} measured, {len(lost)} without an ack")
    if len(ok) > 1:
        span_s = (max(r["t0_ns"] + r["ms"] * 1e6 for r in ok) - min(r["t0_ns"] for r in ok)) / 1e9
        print(f"sustained: {len(ok)} commands acked in {span_s:.1f} s = {len(ok) / span_s:.1f} commands/s")
    print(table(STAT_HEADERS, [
        stat_row("FULL PATH cmd -> ack (all kinds)", full),
        *[stat_row(f"  full path, {k}", s) for k, s in by_kind.items()],
        stat_row("  of which: bridge's handle_command RPC", summary(in_rpc)),
        stat_row("  of which: rest (MQTT x2, bridge in/out)", summary(outside)),
        stat_row("(a) raw MQTT cmd -> ack echo", s_raw),
        stat_row("(b) bare VIP RPC probe -> probe2.echo", s_echo),
        stat_row("(b') platform.driver get_point", s_get),
        stat_row("(c) platform.driver set (1 point)", s_smp),
        stat_row("(x) one pubsub.publish() blocks caller", s_pub),
    ]))
    print()
    print(f"floor = (a)+(b)+(c): p50 {floor_p50:.2f} ms, sum of p99s {floor_p99:.2f} ms")
    print(f"ratio full path / floor: p50 {ratio_p50:.2f}x, p99 {ratio_p99:.2f}x")
    print(f"aim p50 <= 10 ms: {'met' if full['p50'] <= 10 else 'MISSED'} ({full['p50']} ms); "
          f"aim p99 <= 20 ms: {'met' if full['p99'] <= 20 else 'MISSED'} ({full['p99']} ms)")
    print()
    s_ws, s_wd = summary(work_sync), summary(work_deferred)
    s_direct = summary(direct)
    s_direct_kind = {kind: summary(v for v, k in zip(direct, direct_kinds, strict=False) if k == kind) for kind in by_kind}
    print(table(STAT_HEADERS, [
        stat_row("VEN handle_command from the probe (all)", s_direct),
        *[stat_row(f"  from the probe, {k}", v) for k, v in s_direct_kind.items()],
        stat_row("(y) RPC: 1 write + 3 publishes, then return", s_ws),
        stat_row("(z) RPC: 1 write, return, then 3 publishes", s_wd),
    ]))
    print()
    print("Where the VEN's time goes: bus messages the VEN published while each command was in flight")
    print("(seen by the probe subscribed to ven/), and a model from this run's floor rows:")
    print("  model = (b) RPC + (c) x share of commands that wrote + (x) x messages published before returning")
    model_rows = []
    for kind, e in per_kind_msgs.items():
        model = s_echo["p50"] + e["write_share"] * s_smp["p50"] + e["messages_mean"] * s_pub["p50"]
        e["model_p50_ms"] = round(model, 2)
        e["measured_rpc_p50_ms"] = rpc_by_kind.get(kind, {}).get("p50")
        model_rows.append([kind, e["messages_mean"], " ".join(f"{t}:{c}" for t, c in e["topics"].items()),
                           e["write_share"], e["model_p50_ms"], e["measured_rpc_p50_ms"]])
    print(table(["command", "msgs", "topics (total)", "wrote", "model p50", "bridge RPC p50"], model_rows))
    ven_split: dict[str, Any] = {}
    if ven_ms:
        print()
        print("Inside ven.agent.handle_command (its timing log line), p50 / p99 per command kind, ms:")
        split_rows = []
        for kind in by_kind:
            vals = [ven_ms[r["cid"]] for r in ok if r["kind"] == kind and r["cid"] in ven_ms]
            if not vals:
                continue
            parts = {part: summary(v[part] for v in vals) for part in ("core", "write", "publish")}
            total = summary(v["core"] + v["write"] + v["publish"] for v in vals)
            nmsg = sum(v["messages"] for v in vals) / len(vals)
            outside_ven = summary(rpc_ms[r["cid"]] - (ven_ms[r["cid"]]["core"] + ven_ms[r["cid"]]["write"]
                                                      + ven_ms[r["cid"]]["publish"])
                                  for r in ok if r["kind"] == kind and r["cid"] in ven_ms and r["cid"] in rpc_ms)
            ven_split[kind] = {**parts, "inside_total": total, "messages_mean": round(nmsg, 2),
                               "rpc_minus_inside": outside_ven}
            split_rows.append([kind, len(vals), f"{parts['core']['p50']} / {parts['core']['p99']}",
                               f"{parts['write']['p50']} / {parts['write']['p99']}", round(nmsg, 2),
                               f"{parts['publish']['p50']} / {parts['publish']['p99']}",
                               f"{total['p50']} / {total['p99']}",
                               f"{outside_ven.get('p50')} / {outside_ven.get('p99')}"])
        print(table(["command", "n", "core", "driver write", "msgs", "publishes", "inside total",
                     "bridge RPC - inside"], split_rows))
    event_cmds = sum(1 for r in rows if r["kind"] != "restore")
    print(f"driver writes seen on {TOPICS.telemetry} (type actuation) by reason: {actuations}; "
          f"event commands sent (incl. warm-up): {event_cmds}")
    print(f"ack statuses: {statuses}" + (f"; rejections: {rejected_reasons}" if rejected_reasons else ""))

    write_results(NAME, {
        "machine": m,
        "params": {"n": a.n, "floor_n": a.floor_n, "gap_ms": a.gap_ms, "warmup_full": 20},
        "full_path": full,
        "full_path_by_kind": by_kind,
        "bridge_rpc_to_ven": summary(in_rpc),
        "bridge_rpc_to_ven_by_kind": rpc_by_kind,
        "ven_bus_messages_by_kind": per_kind_msgs,
        "ven_inside_handle_command": ven_split,
        "ven_handle_command_from_probe": s_direct,
        "ven_handle_command_from_probe_by_kind": s_direct_kind,
        "lever_rpc_publish_then_return": summary(work_sync),
        "lever_rpc_return_then_publish": summary(work_deferred),
        "outside_rpc": summary(outside),
        "lost": len(lost),
        "actuations_by_reason": actuations,
        "event_commands_sent": sum(1 for r in rows if r["kind"] != "restore"),
        "ack_statuses": statuses,
        "floor": {"raw_mqtt": s_raw, "vip_rpc_echo": s_echo, "driver_get_point": s_get,
                  "driver_set_multiple_points": s_smp, "publish_blocking": s_pub},
        "floor_sum_p50": round(floor_p50, 3),
        "floor_sum_p99": round(floor_p99, 3),
        "ratio_p50": round(ratio_p50, 2),
        "ratio_p99": round(ratio_p99, 2),
        "aims": {"p50_ms": 10, "p99_ms": 20},
        "bridge_status_after": stats_after,
        "samples_ms": [round(r["ms"], 3) if r["ms"] is not None else None for r in measured],
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
