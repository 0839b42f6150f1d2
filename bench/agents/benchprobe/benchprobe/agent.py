"""A probe agent for the benchmarks: it times bus hops from inside the platform.

Every measurement runs in the agent and returns raw samples (nanoseconds from
``time.perf_counter_ns``, i.e. CLOCK_MONOTONIC, comparable across processes on one host), so
the orchestrating script never has to import volttron. Installed only by bench/ scripts into
their own throw-away platform.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any

import gevent
import gevent.pool
from volttron.client.vip.agent import RPC, Agent, Core
from volttron.utils.commands import vip_main

_log = logging.getLogger(__name__)
__version__ = "0.1.0"


class BenchProbe(Agent):
    def __init__(self, config_path: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._subs: dict[str, dict[str, Any]] = {}

    @Core.receiver("onstart")
    def _onstart(self, sender: Any, **kwargs: Any) -> None:
        _log.info("bench probe %s up", self.core.identity)

    # -- RPC round trips ----------------------------------------------------------------

    @RPC.export
    def echo(self, payload: Any = None) -> Any:
        return payload

    @RPC.export
    def work(self, device: str | None, points: list[Any] | None, publishes: int, deferred: bool = False) -> dict:
        """Mimic the shape of ven.agent.handle_command: one driver write, then ``publishes`` bus
        messages, then return; with ``deferred`` the publishes run in a greenlet after the return."""
        if device and points:
            self.vip.rpc.call("platform.driver", "set_multiple_points", device, points).get(timeout=10)

        def publish_all() -> None:
            for i in range(publishes):
                self.vip.pubsub.publish("pubsub", "bench/work", message={"i": i})

        if deferred:
            gevent.spawn(publish_all)
        else:
            publish_all()
        return {"status": "accepted"}

    @RPC.export
    def time_rpc(self, peer: str, method: str, args: list[Any], n: int, warmup: int = 50,
                 gap_ms: float = 0.0) -> list[int]:
        """Round trip of ``peer.method(*args)`` measured around ``call(...).get()``."""
        samples: list[int] = []
        for i in range(warmup + n):
            t0 = time.perf_counter_ns()
            self.vip.rpc.call(peer, method, *args).get(timeout=10)
            dt = time.perf_counter_ns() - t0
            if i >= warmup:
                samples.append(dt)
            if gap_ms > 0:
                gevent.sleep(gap_ms / 1000.0)
        return samples

    @RPC.export
    def time_calls(self, peer: str, method: str, arg_lists: list[list[Any]], gap_ms: float = 0.0) -> list[int]:
        """Round trip of ``peer.method(*args)`` for each args list in turn (distinct commands)."""
        samples: list[int] = []
        for args in arg_lists:
            t0 = time.perf_counter_ns()
            self.vip.rpc.call(peer, method, *args).get(timeout=10)
            samples.append(time.perf_counter_ns() - t0)
            if gap_ms > 0:
                gevent.sleep(gap_ms / 1000.0)
        return samples

    @RPC.export
    def time_publish(self, topic: str, n: int, warmup: int = 20) -> list[int]:
        """How long one ``pubsub.publish`` call blocks its caller (the pre-checks)."""
        samples: list[int] = []
        for i in range(warmup + n):
            t0 = time.perf_counter_ns()
            self.vip.pubsub.publish("pubsub", topic, message={"i": i})
            dt = time.perf_counter_ns() - t0
            if i >= warmup:
                samples.append(dt)
        return samples

    # -- pubsub: publishing --------------------------------------------------------------

    @RPC.export
    def publish_many(self, topic: str, n: int, template: dict[str, Any], seq_field: str = "bench_seq",
                     first_seq: int = 0, concurrency: int = 1, rate: float = 0.0,
                     ts_step: float = 0.0) -> dict[str, Any]:
        """Publish ``n`` copies of ``template`` with ``seq_field`` = first_seq..first_seq+n-1.

        With ``ts_step`` the template's ``ts`` advances by that much per message (a backlog of
        readings spread over time).
        ``concurrency`` greenlets publish in parallel (each publish blocks on its pre-checks);
        ``rate`` > 0 paces the publications. Returns the send window in perf_counter ns.
        """
        pool = gevent.pool.Pool(max(1, concurrency))
        t_start = time.perf_counter_ns()
        period_ns = int(1e9 / rate) if rate > 0 else 0

        def one(seq: int) -> None:
            msg = dict(template)
            msg[seq_field] = seq
            if ts_step:
                msg["ts"] = template.get("ts", 0.0) + (seq - first_seq) * ts_step
            msg["bench_t_ns"] = time.perf_counter_ns()
            self.vip.pubsub.publish("pubsub", topic, message=msg)

        for k in range(n):
            if period_ns:
                due = t_start + k * period_ns
                wait = due - time.perf_counter_ns()
                if wait > 0:
                    gevent.sleep(wait / 1e9)
            pool.spawn(one, first_seq + k)
        pool.join()
        t_end = time.perf_counter_ns()
        return {"sent": n, "t_start_ns": t_start, "t_end_ns": t_end}

    # -- pubsub: receiving ---------------------------------------------------------------

    @RPC.export
    def sub_start(self, prefix: str, seq_field: str = "bench_seq") -> bool:
        """Count what arrives on ``prefix`` (and remember each ``seq_field``, and each arrival's
        topic and time for :meth:`sub_log`)."""
        if prefix in self._subs:
            self._subs[prefix].update(count=0, seqs=set(), first_ns=None, last_ns=None, log=[])
            return True
        state: dict[str, Any] = {"count": 0, "seqs": set(), "first_ns": None, "last_ns": None, "log": []}
        self._subs[prefix] = state

        def on_msg(peer: str, sender: str, bus: str, topic: str, headers: Any, message: Any) -> None:
            now = time.perf_counter_ns()
            state["count"] += 1
            if state["first_ns"] is None:
                state["first_ns"] = now
            state["last_ns"] = now
            if len(state["log"]) < 200_000:
                state["log"].append((topic, now))
            if isinstance(message, dict) and seq_field in message:
                state["seqs"].add(message[seq_field])

        self.vip.pubsub.subscribe("pubsub", prefix, on_msg).get(timeout=10)
        return True

    @RPC.export
    def sub_stats(self, prefix: str) -> dict[str, Any]:
        state = self._subs.get(prefix)
        if state is None:
            return {}
        return {"count": state["count"], "unique": len(state["seqs"]), "first_ns": state["first_ns"],
                "last_ns": state["last_ns"]}

    @RPC.export
    def sub_log(self, prefix: str) -> list[tuple[str, int]]:
        state = self._subs.get(prefix)
        return [] if state is None else list(state["log"])


def main() -> None:
    vip_main(BenchProbe, version=__version__)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
