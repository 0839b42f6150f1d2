"""Publish N metering-shaped readings on the VOLTTRON bus, fast (test and bench helper).

    python bus_flood.py VOLTTRON_HOME COUNT MARKER [--topic ven/metering]

Runs in its own process: importing volttron patches the process with gevent.
"""

from __future__ import annotations

import argparse
import sys
import time

import gevent


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("vhome")
    p.add_argument("count", type=int)
    p.add_argument("marker")
    p.add_argument("--topic", default="ven/metering")
    p.add_argument("--greenlets", type=int, default=8)
    a = p.parse_args()
    from ven_common import vip_client

    agent = vip_client.connect(a.vhome, "test.flood")
    started = time.time()

    def worker(offset: int) -> None:
        for i in range(offset, a.count, a.greenlets):
            reading = {"venId": "volttron_thing", "ts": started + i, "power_kw": 10.0, "baseline_kw": 10.0,
                       "shed_kw": 0.0, "active_event": None, "circuits": [], "flood": a.marker, "i": i}
            agent.vip.pubsub.publish("pubsub", a.topic, message=reading).get(timeout=30)

    gevent.joinall([gevent.spawn(worker, k) for k in range(a.greenlets)], raise_error=True)
    print(f"{a.count} readings in {time.time() - started:.1f} s")
    agent.core.stop(timeout=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
