"""Memory of value-and-gradient of long simulations of the real cell C060114A5.

Model: C060114A5_derived.swc discretised with NEURON's d_lambda = 0.1 rule (1,953 nodes,
1,774 membrane segments), HH everywhere (cm 1 uF/cm^2, Ra 100 Ohm cm), a 2 nA step at the
soma from 10 ms to the end, dt = 0.025 ms. Loss: mean squared soma voltage (every step
recorded); gradient with respect to every parameter of the cell (`eqx.filter_value_and_grad`).
For each simulated duration (0.1, 0.3, 1 and 3 s: 4,000 to 120,000 steps) and gradient path a
fresh child process compiles the value-and-gradient, reads
XLA's working memory (``compiled.memory_analysis().temp_size_in_bytes``), runs it once and
reports its wall time and the process peak resident memory (``ru_maxrss``, which includes
~0.4 GB of Python + JAX). Configurations whose XLA temp exceeds ``--max-run-gib`` are compiled
but not run. Paths: "native" (the soma voltage recorded: the native reverse run of
`jaxdend.solve._native_run`, a state kept every ~sqrt(steps) steps; its working memory is
allocated by the native code, outside XLA's temp, and shows in the peak RSS), and the scan
path's two checkpoint policies (the soma's HH m gate recorded too, which keeps the scan path):
`simulate(..., checkpoint=True)` ("per-step": memory linear in the steps, a fraction of a state
per step) and `"nested"` (O(sqrt(steps))).

Usage:
    python benchmarks/memory.py [--quick] [--json PATH] [--max-run-gib GIB]

Units: simulated time s, memory MiB, wall time s.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SWC = HERE.parent.parent / "shared" / "data" / "morphology" / "C060114A5_derived.swc"
DT = 0.025  # ms
FULL = [(s, ck) for s in (0.1, 0.3, 1.0, 3.0) for ck in ("native", "nested", True)]
QUICK = [(0.1, "native"), (0.1, "nested"), (0.1, True), (0.3, "native"), (0.3, "nested")]


def child(cfg: dict) -> dict:
    """Compile, measure and run one configuration (in a fresh process)."""
    import resource

    import equinox as eqx
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import jaxdend as jd

    comps = jd.discretize(jd.load_morphology(SWC), d_lambda=0.1)
    cell = jd.Cell(comps, cm=1.0, ra=100.0).insert(jd.channels.HH())
    t1 = cfg["seconds"] * 1000.0
    stim = jd.stimulus.step(0, 2.0, 10.0, 1e9)
    record = {"v": cell.probe("v", index=0)}
    if cfg["checkpoint"] != "native":  # a gate recorded too: the scan path
        record["m"] = cell.probe("HH.m", index=0)
    checkpoint = True if cfg["checkpoint"] == "native" else cfg["checkpoint"]

    def loss(c):
        sol = jd.simulate(c, stim, t1=t1, dt=DT, record=record, checkpoint=checkpoint)
        return jnp.mean(sol["v"] ** 2)

    vg = eqx.filter_jit(eqx.filter_value_and_grad(loss))
    t0 = time.perf_counter()
    compiled = vg.lower(cell).compile()
    compile_s = time.perf_counter() - t0
    stats = getattr(compiled, "compiled", compiled).memory_analysis()
    row = {"n_nodes": int(comps.n), "n_comp": int((~comps.is_junction).sum()),
           "seconds": cfg["seconds"], "steps": round(t1 / DT),
           "checkpoint": {"native": "native", "nested": "nested"}.get(cfg["checkpoint"],
                                                                         "per-step"),
           "compile_s": compile_s,
           "xla_temp_mib": stats.temp_size_in_bytes / 2**20,
           "xla_args_mib": stats.argument_size_in_bytes / 2**20,
           "xla_out_mib": stats.output_size_in_bytes / 2**20,
           "ran": False}
    if row["xla_temp_mib"] <= cfg["max_run_gib"] * 1024:
        t0 = time.perf_counter()
        val, grad = jax.block_until_ready(compiled(cell))
        row["run_s"] = time.perf_counter() - t0
        row["loss_mV2"] = float(val)
        row["dloss_dgna_soma"] = float(grad.channels[0].g_na[0])
        row["ran"] = True
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return row


def main(argv=None) -> int:
    """Run every configuration in a child process, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.1 and 0.3 s only")
    parser.add_argument("--json", default=str(HERE / "results" / "memory.json"))
    parser.add_argument("--max-run-gib", type=float, default=8.0,
                        help="compile only when XLA temp exceeds this (GiB)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("ROW " + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    if not SWC.exists():
        print(f"{SWC} not found (the shared data folder); nothing to measure.", file=sys.stderr)
        return 1
    rows = []
    for seconds, ck in (QUICK if args.quick else FULL):
        cfg = {"seconds": seconds, "checkpoint": ck, "max_run_gib": args.max_run_gib}
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)],
                              capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")]
        if proc.returncode or not lines:
            print(f"[{seconds} s, {ck}] failed:\n{proc.stderr[-2000:]}", flush=True)
            continue
        row = json.loads(lines[-1][4:])
        rows.append(row)
        print("  " + json.dumps(row), flush=True)
    print(f"\nC060114A5 (d_lambda 0.1, {rows[0]['n_nodes']} nodes, {rows[0]['n_comp']} segments),"
          f" HH, value and gradient; {platform.machine()}, jax float64")
    print("| simulated | steps | path | compile s | run s | XLA temp MiB | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        run = f"{r['run_s']:.1f}" if r["ran"] else "(not run)"
        print(f"| {r['seconds']:g} s | {r['steps']:,} | {r['checkpoint']} | {r['compile_s']:.1f} "
              f"| {run} | {r['xla_temp_mib']:,.0f} | {r['peak_rss_mib']:,.0f} |")
    for sec in sorted({r["seconds"] for r in rows}):
        pair = {r["checkpoint"]: r for r in rows if r["seconds"] == sec and r["ran"]}
        for key in ("nested", "native"):
            if key in pair and "per-step" in pair:
                a, b = pair[key]["dloss_dgna_soma"], pair["per-step"]["dloss_dgna_soma"]
                rel = abs(a - b) / abs(b)
                pair[key]["grad_rel_diff_vs_per_step"] = rel
                print(f"{sec:g} s: d loss / d g_na(soma) {key} vs per-step, relative diff "
                      f"{rel:.1e}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
