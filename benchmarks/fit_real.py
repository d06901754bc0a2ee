"""Fits of two real recordings through the config pipeline, and a CMA-ES baseline.

1. ``configs/C060114A5.toml``: the L5 pyramidal cell C060114A5 (SSCx recordings, its own
   reconstruction with the axon cut to a stub): stage 1 passive properties and Ih on IV
   sweeps, stage 2 Na/Kv/M densities and the Na activation shift on APWaveform and one IDrest
   sweep; evaluated on held-out sweeps of other amplitudes.
2. ``configs/pyabf_171116sh_0018.toml``: a regular-spiking slice neuron (pyABF example file),
   ball-and-stick model, same pipeline, only another config.
3. Gradient vs gradient-free on the SAME loss: stage `--cma-stage` of fit 1 (default 0, the
   passive stage) is minimised by CMA-ES (pycma, the `cma` package) over the same
   unconstrained parameters (the sigmoid/log-transformed values the gradient fit updates),
   from the same start. Budget: the number of simulations the gradient fit used (a
   value-and-gradient evaluation counts as one simulation), then CMA-ES continues to
   `--cma-factor` times that budget to see when it reaches the gradient fit's loss. Wall
   times are reported too, since a value-and-gradient costs a few forward simulations.

Usage:
    python benchmarks/fit_real.py [--quick] [--json PATH] [--out DIR] [--cma-stage K]
                                  [--cma-factor F] [--skip FIT]

``--quick``: the configs' [quick] settings (2-3 steps, 2 sweeps per protocol, coarse L5
morphology) and a small CMA-ES budget: a smoke run (about 1.5 min). Writes JSON (default
benchmarks/results/fit_real.json), PNGs next to it (benchmarks/results/fit_real_*.png: data vs
model traces per protocol and loss histories of both fits, CMA-ES vs gradient) and prints
tables. The full run takes about 14 min on the 2-core CPU with ``--cma-factor 20``.
Units: ms, mV, nA, S/cm^2, uF/cm^2, Ohm cm; times in s.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxdend.fit as jf  # noqa: E402
from jaxdend.fit._pipeline import evaluation_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mb, write_rows  # noqa: E402

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs"
FITS = {"C060114A5": CONFIGS / "C060114A5.toml",
        "pyabf_171116sh_0018": CONFIGS / "pyabf_171116sh_0018.toml"}


class _RecordingPipeline(jf.Pipeline):
    """A Pipeline whose stage `record` loss logs every evaluated value (in order)."""

    def __init__(self, *args, record: int | None = None, **kw):
        super().__init__(*args, **kw)
        self.record = record
        self.log: list[float] = []
        self.start_cells: dict[int, object] = {}

    def stage_problem(self, index, cell=None):
        problem = super().stage_problem(index, cell)
        self.start_cells[index] = self.cell if cell is None else cell
        if index != self.record:
            return problem
        return dataclasses.replace(problem, loss_fn=_logged(problem.loss_fn, self.log))


def _logged(loss_fn, log):
    """`loss_fn` that appends each evaluated value to `log` (jax.debug.callback)."""
    def f(model):
        val = loss_fn(model)
        jax.debug.callback(lambda v: log.append(float(v)), val, ordered=True)
        return val
    return f


def _best_so_far(values) -> np.ndarray:
    v = np.asarray(values, float)
    v = np.where(np.isfinite(v), v, np.inf)
    return np.minimum.accumulate(v)


def _first_reaching(curve: np.ndarray, level: float) -> int | None:
    """1-based number of simulations after which `curve` (best so far) is <= level."""
    hit = np.nonzero(curve <= level * (1 + 1e-9))[0]
    return int(hit[0]) + 1 if hit.size else None


def run_fit(name: str, path: Path, out: Path, *, quick: bool, record: int | None):
    """Run one config through the pipeline; returns (summary row, pipeline, result)."""
    print(f"\n=== fit {name} ({path.name}){' [quick]' if quick else ''} ===", flush=True)
    pipe = _RecordingPipeline(path, quick=quick, record=record)
    t0 = time.perf_counter()
    res = pipe.run(out / name, progress=False)
    seconds = time.perf_counter() - t0
    row = {
        "case": name, "config": str(path.relative_to(HERE.parent)), "quick": quick,
        "n_nodes": res.cell.n, "seconds": seconds,
        "stages": [{"name": s.name, "best_loss": s.fit.best_loss, "steps": s.fit.steps,
                    "n_evaluations": s.fit.n_evaluations, "seconds": s.seconds,
                    "values": {k: {"value": v["value"], "unit": v["unit"]}
                               for k, v in s.values.items() if v["trainable"]}}
                   for s in res.stages],
        "evaluation": {k: {role: e["summary"] for role, e in v.items()}
                       for k, v in res.evaluation.items() if k != "holdout_summary"},
        "holdout_summary": res.evaluation["holdout_summary"],
    }
    return row, pipe, res


def cma_comparison(pipe: _RecordingPipeline, res, stage: int, factor: float, seed: int = 0,
                   sigma0: float = 0.5) -> dict:
    """CMA-ES on the loss of `stage` from the same start, against the recorded gradient fit."""
    import cma

    problem = jf.Pipeline.stage_problem(pipe, stage, pipe.start_cells[stage])
    params, static = eqx.partition(problem.model, jf.trainable(problem.model))
    x0, unravel = jax.flatten_util.ravel_pytree(params)

    def loss_x(x):
        return problem.loss_fn(jf.unwrap(eqx.combine(unravel(x), static)))

    forward = jax.jit(loss_x)
    vg = jax.jit(jax.value_and_grad(loss_x))
    x0 = np.asarray(x0)
    # cost of one forward simulation and one value-and-gradient (after compilation)
    jax.block_until_ready(forward(x0))
    jax.block_until_ready(vg(x0))
    t_fwd = min(_timed(lambda: forward(x0)) for _ in range(3))
    t_vg = min(_timed(lambda: vg(x0)) for _ in range(2))
    grad_log = np.asarray(pipe.log, float)
    n_grad = int(grad_log.size)
    grad_curve = _best_so_far(grad_log)
    grad_seconds = res.stages[stage].seconds  # includes compilation
    grad_compute = n_grad * t_vg  # simulations x cost of one value-and-gradient
    budget = max(8, int(round(factor * n_grad)))
    es = cma.CMAEvolutionStrategy(x0, sigma0, {"seed": seed + 1, "verbose": -9,
                                               "maxfevals": budget})
    values, times = [], []
    t0 = time.perf_counter()
    while not es.stop() and len(values) < budget:
        xs = es.ask()
        fs = []
        for x in xs:
            f = float(forward(np.asarray(x)))
            fs.append(f if np.isfinite(f) else 1e30)
            values.append(f)
            times.append(time.perf_counter() - t0)
        es.tell(xs, fs)
    cma_curve = _best_so_far(values)
    out = {
        "case": "cma_vs_gradient", "fit": pipe.config.name,
        "stage": pipe.config.stages[stage].name, "n_parameters": int(x0.size),
        "optimizer": pipe.config.stages[stage].optimizer,
        "forward_s": t_fwd, "value_and_grad_s": t_vg, "vg_over_forward": t_vg / t_fwd,
        "grad_simulations": n_grad, "grad_seconds": grad_seconds, "grad_compute_s": grad_compute,
        "cma_budget": budget, "cma_simulations": len(values), "cma_seconds": times[-1],
        "cma_popsize": int(es.popsize), "cma_sigma0": sigma0,
        "grad_curve": grad_curve.tolist(), "cma_curve": cma_curve.tolist(),
    }
    out.update(race(out))
    return out


def race(row: dict) -> dict:
    """Who reaches which loss after how many simulations (and seconds), from the curves.

    Seconds without compilation: simulations x the cost of one value-and-gradient (gradient)
    or x the mean measured wall time per CMA-ES simulation (its own overhead included).
    """
    g, c = np.asarray(row["grad_curve"]), np.asarray(row["cma_curve"])
    n_grad = g.size
    s_grad, s_cma = row["value_and_grad_s"], row["cma_seconds"] / c.size
    target, at_budget, final = float(g[-1]), float(c[min(n_grad, c.size) - 1]), float(c[-1])
    n_cma_target = _first_reaching(c, target)
    n_grad_final = _first_reaching(g, final)
    out = {
        "grad_final_loss": target, "cma_loss_at_grad_budget": at_budget,
        "cma_final_loss": final, "cma_sims_to_grad_loss": n_cma_target,
        "grad_sims_to_cma_budget_loss": _first_reaching(g, at_budget),
        "grad_sims_to_cma_final_loss": n_grad_final,
        "cma_sims_to_cma_final_loss": _first_reaching(c, final),
        "sim_ratio": None if n_cma_target is None else n_cma_target / n_grad,
        "wall_ratio": None if n_cma_target is None else n_cma_target * s_cma / (
            n_grad * s_grad),
    }
    if n_grad_final is not None:  # to reach CMA-ES's best: CMA-ES sims / gradient sims
        n_c = out["cma_sims_to_cma_final_loss"]
        out["sim_ratio_at_cma_final"] = n_c / n_grad_final
        out["wall_ratio_at_cma_final"] = n_c * s_cma / (n_grad_final * s_grad)
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def plot_cma(row: dict, path: Path) -> None:
    """Loss (best so far) against the number of simulations, gradient fit and CMA-ES."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    g, c = np.asarray(row["grad_curve"]), np.asarray(row["cma_curve"])
    ax.plot(np.arange(1, g.size + 1), g, "r", lw=1.5,
            label=f"gradient ({row['optimizer']}): value+gradient = 1 simulation")
    ax.plot(np.arange(1, c.size + 1), c, "k", lw=1.2, label=f"CMA-ES (pop. {row['cma_popsize']})")
    ax.axvline(row["grad_simulations"], color="0.6", ls=":", lw=1)
    ax.axhline(row["grad_final_loss"], color="r", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simulations (loss evaluations)")
    ax.set_ylabel("best loss so far")
    ax.set_title(f"{row['fit']}, stage {row['stage']}: {row['n_parameters']} parameters, "
                 "same loss and start", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_fit(row: dict) -> None:
    print(f"\n{row['case']}: {row['n_nodes']} nodes, {row['seconds']:.0f} s")
    print("| stage | best loss | steps | evaluations | s |")
    print("|---|---|---|---|---|")
    for s in row["stages"]:
        print(f"| {s['name']} | {s['best_loss']:.4g} | {s['steps']} | {s['n_evaluations']} | "
              f"{s['seconds']:.0f} |")
    for s in row["stages"]:
        print(f"fitted ({s['name']}): " + ", ".join(
            f"{k} = {_num(v['value'])} {v['unit'] or ''}".rstrip() for k, v in s["values"].items()))


def _num(v) -> str:
    if isinstance(v, list):
        return f"[{len(v)} values]"
    return f"{v:.4g}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (config [quick] settings)")
    ap.add_argument("--json", default=str(HERE / "results" / "fit_real.json"))
    ap.add_argument("--out", default=None, help="keep the fit outputs here (default: temp)")
    ap.add_argument("--cma-stage", type=int, default=0, help="stage of fit 1 for CMA-ES")
    ap.add_argument("--cma-factor", type=float, default=5.0,
                    help="CMA-ES budget as a multiple of the gradient fit's simulations")
    ap.add_argument("--skip", action="append", default=[], choices=list(FITS) + ["cma"])
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fit_real_"))
    results = Path(args.json).parent  # PNGs go next to the JSON, named after it
    results.mkdir(parents=True, exist_ok=True)
    stem = Path(args.json).stem
    rows = [{"case": "environment", "jax": jax.__version__, "python": platform.python_version(),
             "cpu_count": __import__("os").cpu_count(), "machine": platform.machine(),
             "date": time.strftime("%Y-%m-%d %H:%M"), "quick": args.quick}]
    t_all = time.perf_counter()
    for name, path in FITS.items():
        if name in args.skip:
            continue
        record = args.cma_stage if name == "C060114A5" and "cma" not in args.skip else None
        row, pipe, res = run_fit(name, path, out, quick=args.quick, record=record)
        rows.append(row)
        _print_fit(row)
        print(evaluation_table(res.evaluation))
        for png in sorted((out / name / "plots").glob("*.png")):
            shutil.copy(png, results / f"{stem}_{name}_{png.name}")
        if record is not None:
            print(f"\n=== CMA-ES vs gradient on {name} stage {args.cma_stage} ===", flush=True)
            factor = min(args.cma_factor, 2.0) if args.quick else args.cma_factor
            cmp_row = cma_comparison(pipe, res, args.cma_stage, factor)
            rows.append(cmp_row)
            plot_cma(cmp_row, results / f"{stem}_cma_vs_gradient.png")
            _print_cma(cmp_row)
    rows[0]["seconds"] = time.perf_counter() - t_all
    rows[0]["peak_rss_MB"] = peak_rss_mb()
    write_rows(rows, args.json)
    print(f"total {rows[0]['seconds']:.0f} s; fit outputs in {out}")
    return 0


def _print_cma(r: dict) -> None:
    def f(x, spec=".4g"):
        return "-" if x is None else format(x, spec)

    print("| method | simulations | best loss | wall s |")
    print("|---|---|---|---|")
    print(f"| gradient ({r['optimizer']}) | {r['grad_simulations']} | "
          f"{f(r['grad_final_loss'])} | {r['grad_compute_s']:.1f} (fit incl. compilation "
          f"{r['grad_seconds']:.1f}) |")
    n = r["grad_simulations"]
    print(f"| CMA-ES, same budget | {n} | {f(r['cma_loss_at_grad_budget'])} | - |")
    print(f"| CMA-ES, {r['cma_simulations']} sims | {r['cma_simulations']} | "
          f"{f(r['cma_final_loss'])} | {r['cma_seconds']:.1f} |")
    print(f"one forward simulation {r['forward_s']:.3f} s, one value-and-gradient "
          f"{r['value_and_grad_s']:.3f} s ({r['vg_over_forward']:.1f}x)")
    if r["cma_sims_to_grad_loss"] is None:
        print(f"CMA-ES did not reach the gradient fit's loss {r['grad_final_loss']:.4g} within "
              f"{r['cma_simulations']} simulations ({r['cma_simulations'] / n:.1f}x its budget)")
    else:
        print(f"CMA-ES reached the gradient fit's loss after {r['cma_sims_to_grad_loss']} "
              f"simulations: {r['sim_ratio']:.1f}x as many; {r['wall_ratio']:.1f}x the wall "
              "time (without compilation)")
    if r["grad_sims_to_cma_budget_loss"] is not None:
        print(f"the gradient fit reached CMA-ES's same-budget loss after "
              f"{r['grad_sims_to_cma_budget_loss']} simulations")
    if r.get("sim_ratio_at_cma_final") is not None:
        print(f"CMA-ES's best loss {r['cma_final_loss']:.4g} (after "
              f"{r['cma_sims_to_cma_final_loss']} simulations) the gradient fit reached after "
              f"{r['grad_sims_to_cma_final_loss']}: {r['sim_ratio_at_cma_final']:.1f}x fewer "
              f"simulations, {r['wall_ratio_at_cma_final']:.1f}x less wall time (without "
              "compilation)")


if __name__ == "__main__":
    sys.exit(main())
