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


def best(fn, repeats: int, budget_s: float = 0.0, max_repeats: int = 30):
    """(fastest wall time in s over `repeats` calls of `fn`, the last result); with
    `budget_s`, more calls while they add up to under `budget_s` s (at most `max_repeats`),
    so that short programs get enough tries on a machine whose load comes and goes."""
    times, out = [], None
    while len(times) < max(1, repeats) or (sum(times) < budget_s and len(times) < max_repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), out


def first_and_best(fn, repeats: int):
    """(first call s, i.e. compile + run; fastest of `repeats` further calls s; last result)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    best_s, out = best(fn, repeats)
    return first, best_s, out


def xla_temp_mb(compiled) -> float | None:
    """Temporary (working) memory XLA allocates for a compiled function, MB, if known."""
    try:
        stats = getattr(compiled, "compiled", compiled).memory_analysis()
        return stats.temp_size_in_bytes / 2**20
    except Exception:  # noqa: BLE001 - optional diagnostic
        return None


def print_xla_temp(label: str, compiled) -> None:
    """Print XLA's working memory of a compiled value-and-grad, when it reports one."""
    temp = xla_temp_mb(compiled)
    if temp is not None:
        print(f"  {label}: XLA working memory of value-and-grad {temp:.0f} MB", flush=True)


def fmt(x, spec: str) -> str:
    """`x` formatted with `spec`, or "-" for None."""
    return "-" if x is None else format(x, spec)


def write_rows(rows: list[dict], path) -> None:
    """Write the benchmark rows as JSON to `path` (folders created) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


#: (header, row key or function of the row, format) of the columns of the simulator tables.
COLUMNS = (
    ("case", "case", "s"),
    ("n_comp", "n_comp", "d"),
    ("n_syn", "n_syn", "d"),
    ("simulator", "simulator", "s"),
    ("compile s", "compile_s", ".2f"),
    ("forward s", "forward_s", ".3f"),
    ("grad s", "grad_s", ".3f"),
    ("grad/fwd", lambda r: r["grad_s"] / r["forward_s"] if r.get("grad_s") else None, ".1f"),
    ("Mcomp-steps/s", lambda r: r["comp_steps_per_s"] / 1e6, ".1f"),
    ("peak RSS MB", "peak_rss_MB", ".0f"),
    ("err vs NEURON mV", "mean_abs_err_mV", ".2g"),
    ("spikes", "spikes", "d"),
)


def print_table(rows: list[dict], skip: tuple[str, ...] = ()) -> None:
    """Print simulator rows as a Markdown table (columns of `COLUMNS` whose row key exists)."""
    cols = [c for c in COLUMNS if c[0] not in skip and (callable(c[1]) or c[1] in rows[0])]
    print("\n| " + " | ".join(c[0] for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [fmt(key(r) if callable(key) else r.get(key), spec) for _, key, spec in cols]
        print("| " + " | ".join(cells) + " |")
