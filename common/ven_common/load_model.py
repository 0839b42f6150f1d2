"""The simulated building's load physics, shared by the in-process driver interface
(``simbuilding``) and the Modbus panel device (``building_device``): a circuit that is on draws
its rated kW x a load profile x a small noise; off, it draws 0.

Noise is a pure function of (point, second, seed), so the circuits and the meter read in one
scrape agree with each other, and two processes simulating the same building agree too.
"""

from __future__ import annotations

import math
import random
import zlib


def circuit_kw(point_name: str, rated_kw: float, now: float, *, profile: str = "flat", noise_pct: float = 1.0,
               seed: int = 0) -> float:
    factor = 1.0
    if profile == "diurnal":
        hour = (now % 86400) / 3600.0
        factor = 0.85 + 0.15 * math.sin((hour - 9.0) / 24.0 * 2 * math.pi)
    noise = 0.0
    if noise_pct > 0:
        key = zlib.crc32(point_name.encode()) ^ int(now) ^ int(seed)
        noise = random.Random(key).uniform(-1.0, 1.0) * noise_pct / 100.0
    return round(rated_kw * factor * (1.0 + noise), 4)
