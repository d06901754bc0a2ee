"""Helpers shared by the benchmark scripts: timing, memory, table and JSON output.

Units: seconds, MB.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import jax


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def best(fn, repeats: int):
    """(fastest wall time in s over `repeats` calls of `fn`, the last result)."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), out


def fmt(x, spec: str) -> str:
    """`x` formatted with `spec`, or "-" for None."""
    return "-" if x is None else format(x, spec)


def write_rows(rows: list[dict], path) -> None:
    """Write the benchmark rows as JSON to `path` (folders created) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")
