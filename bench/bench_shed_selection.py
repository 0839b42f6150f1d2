"""Time shed selection for 10/100/1000 circuits; print medians and write bench/results/shed_selection.json.

Run: python bench/bench_shed_selection.py   (no VOLTTRON needed; the core is pure Python)
"""

from __future__ import annotations

import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "VenAgent"), str(ROOT / "common")]

from venagent.core.shedding import Candidate, select_shed  # noqa: E402

REPEATS = 51
SIZES = (10, 100, 1000)


def _candidates(n: int, rng: random.Random) -> list[Candidate]:
    return [Candidate(f"c{i:04d}", round(rng.uniform(0.1, 10.0), 2), rng.randint(0, 9)) for i in range(n)]


def main() -> None:
    rng = random.Random(42)
    results = []
    for n in SIZES:
        cands = _candidates(n, rng)
        need = sum(c.kw for c in cands) * 0.37  # a need that forces the walk, the cover and the prune
        timings = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            select_shed(cands, need)
            timings.append(time.perf_counter() - start)
        median_ms = statistics.median(timings) * 1000
        results.append({"circuits": n, "median_ms": round(median_ms, 4), "max_ms": round(max(timings) * 1000, 4),
                        "repeats": REPEATS})
        print(f"{n:5d} circuits: median {median_ms:.3f} ms (max {max(timings) * 1000:.3f} ms over {REPEATS})")
    out = ROOT / "bench" / "results" / "shed_selection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": platform.python_version(), "results": results}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
