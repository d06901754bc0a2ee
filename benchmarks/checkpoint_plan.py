"""Benchmark: the two checkpoint plans of `simulate`'s gradient on the same HH cells.

`jaxdend.solve._simulate._checkpoint_plan` picks, for `simulate(..., checkpoint=True)`, how
the backward pass recomputes the time loop: cells stepped wholly by native code on CPU (HH,
passive channels) get five-step units that store only their first state and hand each
step's HH current on to the next step, so that the gate step and the current reverse in
one native loop ("recompute"); other cells three-step units that keep every tree solve's
output ("keep solves"). This script times value-and-gradient of the same cells under both
plans and under the first without the handing on ("recompute, 2 loops"), in one process,
alternating, so the rows compare within one machine state. Since session 14 these plans serve
the cells that keep the scan path (HH cells that record only voltages take the native whole
run and its reverse instead): the runs here record the soma's m gate too, which keeps it.

Cases (HH everywhere, 100 ms at dt = 0.025 ms, step current at the soma; as
`simulate.py`): the reduced pyramidal cell (50 nodes), the 1,080-node binary tree and
C060114A5 at nseg 2 (930 nodes) and at d_lambda 0.1 (1,953 nodes). Loss: mean squared soma
voltage, gradient w.r.t. every parameter of the cell.

Usage:
    python benchmarks/checkpoint_plan.py [--quick] [--json PATH] [--repeats N]

Units: times in s (forward, value-and-gradient best of `--repeats`; compile = first call minus
best), memory in MiB (XLA's working memory of the compiled value-and-gradient).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

import jaxdend as jd  # noqa: E402
from jaxdend.solve import _simulate  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best, fmt, write_rows, xla_temp_mb  # noqa: E402

HERE = Path(__file__).resolve().parent
SWC = HERE.parent.parent / "shared" / "data" / "morphology" / "C060114A5_derived.swc"
DT, T1, DELAY, DUR = 0.025, 100.0, 10.0, 80.0


DEFAULT_PLAN = _simulate._checkpoint_plan


def keep_solves_plan(cell, tables, v):
    """The plan for cells stepped by XLA formulas: three-step units keeping the solves."""
    if cell.synapses:
        return DEFAULT_PLAN(cell, tables, v)
    return _simulate._UNIT, _simulate.KEEP_SOLVES, False


def separate_plan(cell, tables, v):
    """The default plan without relinearization (HH's gate step and current reversed by two
    native loops, not one)."""
    unit, policy, _ = DEFAULT_PLAN(cell, tables, v)
    return unit, policy, False


PLANS = {"recompute": DEFAULT_PLAN, "recompute, 2 loops": separate_plan,
         "keep solves": keep_solves_plan}


def cases(quick: bool):
    """(name, morphology, discretize kwargs, soma step nA) of every case."""
    out = [("reduced_pyramidal", jd.reduced_pyramidal(), {"nseg": 3}, 1.0)]
    if not quick:
        out.append(("binary_tree_127x8", jd.binary_tree(depth=7),
                    {"nseg": lambda i, sec: 1 if i == 0 else 8}, 0.5))
    if SWC.exists():
        real = jd.load_morphology(SWC)
        out.append(("C060114A5_nseg2", real, {"nseg": 2}, 2.0))
        if not quick:
            out.append(("C060114A5_dlambda", real, {"d_lambda": 0.1}, 2.0))
    else:
        print(f"warning: {SWC} not found; real-cell cases skipped", file=sys.stderr)
    return out


def programs(cell, stim):
    """(forward, value-and-gradient) of `cell` under the current plan, compiled. The soma's
    HH m gate is recorded too, which keeps the scan path whose plans these are (HH cells
    recording only voltages run natively whole, `jaxdend.solve._native_run`)."""
    record = {"v": cell.probe("v", index=0), "m": cell.probe("HH.m", index=0)}

    def trace(c):
        return jd.simulate(c, stim, t1=T1, dt=DT, record=record)["v"][:, 0]

    fwd = eqx.filter_jit(trace)
    vg = eqx.filter_jit(eqx.filter_value_and_grad(lambda c: jnp.mean(trace(c) ** 2)))
    return fwd, vg


def compare(name: str, cell, stim, repeats: int) -> list[dict]:
    """Rows of both plans for one cell: compiled once each, then timed alternately."""
    progs = {}
    try:
        for plan, fn in PLANS.items():
            _simulate._checkpoint_plan = fn  # read when simulate is traced
            fwd, vg = programs(cell, stim)
            best(lambda f=fwd: f(cell), 1)
            first_g = best(lambda g=vg: g(cell), 1)[0]
            progs[plan] = (fwd, vg, first_g, xla_temp_mb(vg.lower(cell).compile()))
    finally:
        _simulate._checkpoint_plan = PLANS["recompute"]
    times = {plan: ([], []) for plan in progs}
    for _ in range(repeats):  # alternate the plans round by round
        for plan, (fwd, vg, _first, _temp) in progs.items():
            times[plan][0].append(best(lambda f=fwd: f(cell), 1)[0])
            times[plan][1].append(best(lambda g=vg: g(cell), 1)[0])
    rows = []
    for plan, (_fwd, _vg, first_g, temp) in progs.items():
        f_s, g_s = min(times[plan][0]), min(times[plan][1])
        rows.append({"case": name, "n_nodes": int(cell.n), "plan": plan, "forward_s": f_s,
                     "grad_s": g_s, "grad_over_forward": g_s / f_s,
                     "grad_compile_s": first_g - g_s, "xla_temp_MiB": temp})
        print(f"  {name:18s} {plan:18s} forward {f_s * 1e3:7.1f} ms  grad {g_s * 1e3:7.1f} ms"
              f"  ratio {g_s / f_s:4.2f}  grad compile {first_g - g_s:4.1f} s  XLA temp "
              f"{fmt(temp, '6.1f')} MiB", flush=True)
    return rows


def main(argv=None) -> int:
    """Run the comparison and write the JSON rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small cases, 2 repeats")
    parser.add_argument("--json", default=str(HERE / "results" / "checkpoint_plan.json"),
                        help="where to write the rows")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (best of)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    rows = []
    for name, morph, disc, amp in cases(args.quick):
        cell = jd.Cell(jd.discretize(morph, **disc), ra=100.0, cm=1.0).insert(jd.channels.HH())
        rows += compare(name, cell, jd.stimulus.step(0, amp, DELAY, DUR), repeats)
    print("\n| case | nodes | plan | forward ms | grad ms | grad/fwd | grad compile s | "
          "XLA temp MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['n_nodes']} | {r['plan']} | {r['forward_s'] * 1e3:.1f} | "
              f"{r['grad_s'] * 1e3:.1f} | {r['grad_over_forward']:.2f} | "
              f"{r['grad_compile_s']:.1f} | {fmt(r['xla_temp_MiB'], '.0f')} |")
    write_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
