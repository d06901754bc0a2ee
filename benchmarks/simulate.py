"""Benchmark: jaxdend vs NEURON vs Jaxley on the same HH model, in one run.

Cases: a small reduced pyramidal cell (~60 compartments), a binary HH tree of 127 sections x 8
segments (1,016 dendritic compartments: the size of the issue's speed target), the real L5
cell C060114A5 at 2 segments per section (~1,000 nodes) and at NEURON's d_lambda = 0.1 rule
(~2,000 nodes). HH everywhere, 100 ms at dt = 0.025 ms, step current at the soma. Reported
per simulator: compile time, forward time, value-and-gradient time (mean squared soma voltage
w.r.t. all parameters), compartment-steps per second, peak resident memory of the process so
far, and the mean absolute soma-voltage error against NEURON with exact rates.

Simulators: NEURON (exact rates, ``usetable_hh = 0``), NEURON with its default 1 mV rate
tables, jaxdend (exact rates), jaxdend with ``RateTable(dv=0.1)`` (opt-in tables), Jaxley.

Usage:
    python benchmarks/simulate.py [--quick] [--json PATH] [--no-jaxley] [--cases NAME ...]

Writes the rows as JSON (default benchmarks/results/simulate.json) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxdend as jd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import first_and_best, peak_rss_mb, print_table, write_rows  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "morphology"
SWC = DATA / "C060114A5_derived.swc"
DT, T1, AMP, DELAY, DUR = 0.025, 100.0, 2.0, 10.0, 80.0


def cases(quick: bool):
    """(name, morphology, discretize kwargs, jaxley ncomp, amp) of every benchmark case.

    Jaxley ncomp: compartments per branch, or None for NEURON's nseg of every section
    (`_jaxley_ncomp`)."""
    out = [("reduced_pyramidal", jd.reduced_pyramidal(), {"nseg": 3}, 3, 1.0)]
    if not quick:
        out.append(("binary_tree_127x8", jd.binary_tree(depth=7),
                    {"nseg": lambda i, sec: 1 if i == 0 else 8}, None, 0.5))
    if SWC.exists():
        real = jd.load_morphology(SWC)
        out.append(("C060114A5_nseg2", real, {"nseg": 2}, 2, AMP))
        if not quick:
            out.append(("C060114A5_dlambda", real, {"d_lambda": 0.1}, None, AMP))
    else:
        print(f"warning: {SWC} not found; real-cell cases skipped", file=sys.stderr)
    return out


def _jaxley_ncomp(comps):
    """Jaxley compartments per branch equal to NEURON's nseg per section.

    Jaxley reads the 3-point soma as two branches (centre -> -y, centre -> +y), each of
    which gets the soma's nseg; the other branches come in the order of the sections."""
    nseg = [int(n) for n in comps.nseg]
    return [nseg[0], nseg[0], *nseg[1:]]


def bench_jaxdend(cell, stim, repeats, solver=None):
    """Compile, forward and value-and-grad timings of jaxdend; soma trace (mV)."""
    record = cell.probe("v", index=0)

    @eqx.filter_jit
    def forward(c):
        return jd.simulate(c, stim, t1=T1, dt=DT, record=record, solver=solver)["v"][:, 0]

    @eqx.filter_jit
    def value_and_grad(c):
        return eqx.filter_value_and_grad(lambda c: jnp.mean(forward.__wrapped__(c) ** 2))(c)

    first, fwd_s, v = first_and_best(lambda: forward(cell), repeats)
    grad_first, grad_s, _ = first_and_best(lambda: value_and_grad(cell), repeats)
    return {"compile_s": first - fwd_s, "forward_s": fwd_s, "grad_s": grad_s,
            "grad_compile_s": grad_first - grad_s}, np.asarray(v)


def bench_neuron(cell, morph, stim, repeats, usetable=False):
    """NEURON fixed-step backward Euler (the same scheme) on the same model."""
    from jaxdend.neuron_bridge import NeuronModel

    t0 = time.perf_counter()
    model = NeuronModel(cell, morph, usetable=usetable)
    build_s = time.perf_counter() - t0
    times, v = [], None
    for _ in range(repeats):
        _, v, seconds = model.run(stim, T1, DT, [0])
        times.append(seconds)
    return {"compile_s": build_s, "forward_s": min(times), "grad_s": None}, v[:, 0]


def main(argv=None) -> int:
    """Run the benchmark and write the JSON rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases, one repeat")
    parser.add_argument("--json", default=str(HERE / "results" / "simulate.json"),
                        help="where to write the rows")
    parser.add_argument("--no-jaxley", action="store_true", help="skip the Jaxley peer")
    parser.add_argument("--cases", nargs="*", help="run only these cases (names as printed)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (best of)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    rows = []
    for name, morph, disc, ncomp, amp in cases(args.quick):
        if args.cases and name not in args.cases:
            continue
        comps = jd.discretize(morph, **disc)
        cell = jd.Cell(comps, ra=100.0, cm=1.0).insert(jd.channels.HH())
        stim = jd.stimulus.step(0, amp, DELAY, DUR)
        n_seg = int((~comps.is_junction).sum())
        steps = round(T1 / DT)
        print(f"[{name}] {comps.n} nodes ({n_seg} segments), {steps} steps", flush=True)
        results = {}
        nrn, v_ref = bench_neuron(cell, morph, stim, repeats)
        results["NEURON"] = (nrn, v_ref, n_seg)
        nrn_t, v_nt = bench_neuron(cell, morph, stim, repeats, usetable=True)
        results["NEURON (1 mV tables)"] = (nrn_t, v_nt, n_seg)
        jdx, v = bench_jaxdend(cell, stim, repeats)
        results["jaxdend"] = (jdx, v, n_seg)
        table = jd.BackwardEuler(rate_table=jd.RateTable(dv=0.1))
        jdx_t, v_t = bench_jaxdend(cell, stim, repeats, solver=table)
        results["jaxdend (0.1 mV tables)"] = (jdx_t, v_t, n_seg)
        if not args.no_jaxley:
            try:
                from _jaxley_peer import run_jaxley

                if name.startswith("C060114A5"):
                    src = SWC
                elif name.startswith("binary_tree"):
                    src = jd.morphology.save_swc(morph, Path(tempfile.mkdtemp()) / f"{name}.swc")
                else:
                    raise RuntimeError("Jaxley peer runs on SWC files only")
                jx_ncomp = _jaxley_ncomp(comps) if ncomp is None else ncomp
                r = run_jaxley(str(src), jx_ncomp, T1, DT, amp, DELAY, DUR, repeats=repeats)
                v_jx = np.asarray(r["v_soma"])[: len(v_ref)]
                results[f"Jaxley {r.get('version', '')}".strip()] = (
                    {k: r[k] for k in ("compile_s", "forward_s", "grad_s")}, v_jx, r["n_comp"])
            except Exception as err:  # noqa: BLE001 - report and continue
                print(f"  Jaxley skipped: {type(err).__name__}: {err}", flush=True)
        for sim, (timing, trace, n_comp) in results.items():
            err = float(np.mean(np.abs(trace - v_ref))) if len(trace) == len(v_ref) else None
            row = {
                "case": name, "n_comp": int(n_comp), "simulator": sim,
                "compile_s": timing["compile_s"], "forward_s": timing["forward_s"],
                "grad_s": timing["grad_s"], "mean_abs_err_mV": err,
                "comp_steps_per_s": n_comp * steps / timing["forward_s"],
                "peak_rss_MB": peak_rss_mb(),
                "spikes": int(len(jd.features.spike_times(np.arange(len(trace)) * DT, trace))),
            }
            rows.append(row)
            print("  " + json.dumps(row), flush=True)
    print_table(rows, skip=("peak RSS MB",))
    write_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
