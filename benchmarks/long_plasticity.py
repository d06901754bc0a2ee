"""Minutes of simulated time with plasticity: forward speed and value-and-gradient memory.

Plasticity unfolds over minutes while the membrane needs 0.025 ms steps (24 million steps
for 10 minutes). This benchmark runs the reduced pyramidal cell (`jaxdend._demo.demo_cell`,
Pospischil channels at 36 degC, 106 nodes) with 50 basal and 50 apical synapses
(AMPA + NMDA, one shared weight per synapse, 5 Hz Poisson input), `BasalHebbian` on the
basal and `ApicalCooperative` on the apical synapses, and reports:

(a) a forward run of the full 10 minutes (600 s) of simulated time: compile and run wall
    time, steps per second, final weight statistics (weights recorded once per simulated
    second with ``record_every=40000``);
(b) value and gradient of a loss on the final weights (mean squared error to a target
    weight) with respect to four rule parameters (a_plus, a_minus of the basal rule,
    a_coop, a_dep of the apical rule), with ``checkpoint="nested"`` at increasing simulated
    durations, and with ``checkpoint=True`` at short ones for comparison: wall time,
    peak resident memory of the process (``ru_maxrss``) and XLA's temporary buffer size
    (``compiled.memory_analysis()``).

Every configuration runs in a fresh child process, so that peak memory is per
configuration. The 600 s gradient is run only if its time, extrapolated linearly from the
longest shorter gradient, stays under ``--max-grad-s`` (default 900 s).

Usage:
    python benchmarks/long_plasticity.py [--quick] [--json PATH] [--max-grad-s S]

Units: time ms (durations in the table in s of simulated time), rates Hz, conductances
nS, memory MiB, weights dimensionless (w_max = 2).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DT = 0.025  # ms
RATE = 5.0  # Hz, presynaptic rate of every synapse
GMAX = 0.8  # nS, AMPA and NMDA peak conductance per synapse (near somatic threshold at w = 1)
TARGET_W = 1.2  # target weight of the loss
GRAD_RECORD_EVERY = 400  # steps (10 ms) between recordings in gradient runs
#: Rule parameters the gradient is taken with respect to: name -> (rule index, attribute).
PARAMS = {"a_plus": (0, "a_plus"), "a_minus": (0, "a_minus"),
          "a_coop": (1, "a_coop"), "a_dep": (1, "a_dep")}

FULL = {
    "forward_s": 600.0,
    "grad": [(1.0, "nested"), (10.0, "nested"), (60.0, "nested"), (1.0, True), (10.0, True)],
    "grad_long_s": 600.0,
}
QUICK = {
    "forward_s": 5.0,
    "grad": [(0.5, "nested"), (2.0, "nested"), (2.0, True)],
    "grad_long_s": None,
}


def build(t1_ms: float, seed: int = 0):
    """The plastic cell and its synaptic inputs for `t1_ms` ms of simulated time."""
    import jax
    import numpy as np

    from jaxdend._demo import demo_cell
    from jaxdend.plasticity import ApicalCooperative, BasalHebbian
    from jaxdend.synapses import AMPA, NMDA, Input, place, poisson

    cell = demo_cell()
    k = jax.random.split(jax.random.key(seed), 4)
    nodes = np.concatenate([place(cell, 50, "basal", key=k[0]),
                            place(cell, 50, "apical", key=k[1], clusters=5)])
    cell = cell.add_synapses("ampa", AMPA(), nodes, GMAX).add_synapses("nmda", NMDA(), nodes, GMAX)
    cell = cell.add_rule(BasalHebbian(), ("ampa", "nmda"), "basal")
    # 1/40 of the default cooperative amplitudes: apical weights drift over minutes
    cell = cell.add_rule(ApicalCooperative(a_coop=0.0005, a_dep=0.000025), ("ampa", "nmda"),
                         "apical")
    trains = poisson(k[2], RATE, 100, t1_ms)
    return cell, trains, lambda tr: [Input("ampa", tr), Input("nmda", tr)]


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _memory(compiled) -> dict:
    try:
        m = compiled.memory_analysis()
        return {"xla_temp_mib": m.temp_size_in_bytes / 2**20,
                "xla_args_mib": m.argument_size_in_bytes / 2**20,
                "xla_out_mib": m.output_size_in_bytes / 2**20}
    except Exception:  # noqa: BLE001 - not all backends report it
        return {"xla_temp_mib": float("nan")}


def worker_forward(seconds: float) -> dict:
    """Forward run of `seconds` s of simulated time (in a child process)."""
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import jaxdend as jd

    t1 = seconds * 1000.0
    cell, trains, inputs = build(t1)
    every = 40000 if seconds >= 1.0 else round(t1 / DT)
    rec = {"w": cell.probe("ampa.w"), "v": cell.probe("v", "soma")}

    def run(tr):
        sol = jd.simulate(cell, inputs(tr), t1=t1, dt=DT, record=rec, record_every=every,
                          checkpoint="nested")
        return sol["w"], sol.final_state["synapses"][0]["w"]

    rss0 = _rss_mib()
    t = time.perf_counter()
    compiled = jax.jit(run).lower(trains).compile()
    t_compile = time.perf_counter() - t
    t = time.perf_counter()
    w_rec, w = jax.block_until_ready(compiled(trains))
    t_run = time.perf_counter() - t
    w = np.asarray(w)
    n_steps = round(t1 / DT)
    # somatic firing rate over the first 2 s (voltage every 0.1 ms)
    t_rate = min(t1, 2000.0)
    tr_short = type(trains)(np.where(np.asarray(trains.times) < t_rate, trains.times, np.inf))
    v = np.asarray(jd.simulate(cell, inputs(tr_short), t1=t_rate, dt=DT, record_every=4)["v"])[:, 0]
    n_spk = int(np.sum((v[1:] > -20.0) & (v[:-1] <= -20.0)))
    return {
        "kind": "forward", "seconds": seconds, "n_steps": n_steps, "compile_s": t_compile,
        "run_s": t_run, "steps_per_s": n_steps / t_run, "us_per_step": 1e6 * t_run / n_steps,
        "soma_rate_hz_first_2s": n_spk / (t_rate / 1000.0),
        "w_basal": _stats(w[:50]), "w_apical": _stats(w[50:]),
        "w_mean_per_s": np.asarray(w_rec).mean(axis=1).tolist(),
        "rss_before_mib": rss0, "peak_rss_mib": _peak_mib(), **_memory(compiled),
    }


def _stats(w) -> dict:
    import numpy as np

    w = np.asarray(w)
    return {"mean": float(w.mean()), "std": float(w.std()), "min": float(w.min()),
            "max": float(w.max()), "frac_at_bounds": float(np.mean((w <= 0.0) | (w >= 2.0)))}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker_grad(seconds: float, checkpoint) -> dict:
    """Value and gradient of the final-weight loss over `seconds` s (in a child process)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import jaxdend as jd

    t1 = seconds * 1000.0
    cell, trains, inputs = build(t1)
    params = {k: jnp.asarray(float(getattr(cell.rules[i].rule, a))) for k, (i, a) in PARAMS.items()}

    def loss(p, tr):
        c = eqx.tree_at(lambda c: [getattr(c.rules[i].rule, a) for i, a in PARAMS.values()],
                        cell, [p[k] for k in PARAMS])
        sol = jd.simulate(c, inputs(tr), t1=t1, dt=DT, record=c.probe("v", "soma"),
                          record_every=GRAD_RECORD_EVERY, checkpoint=checkpoint)
        w = sol.final_state["synapses"][0]["w"]
        return jnp.mean((w - TARGET_W) ** 2)

    rss0 = _rss_mib()
    t = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss)).lower(params, trains).compile()
    t_compile = time.perf_counter() - t
    t = time.perf_counter()
    val, g = jax.block_until_ready(compiled(params, trains))
    t_run = time.perf_counter() - t
    return {
        "kind": "grad", "seconds": seconds, "checkpoint": checkpoint,
        "n_steps": round(t1 / DT), "compile_s": t_compile, "run_s": t_run,
        "loss": float(val), "grad": {k: float(v) for k, v in g.items()},
        "grad_finite": bool(all(np.isfinite(float(v)) for v in g.values())),
        "rss_before_mib": rss0, "peak_rss_mib": _peak_mib(), **_memory(compiled),
    }


def child(spec: dict) -> dict:
    """Run one configuration in a fresh Python process; return its result dict."""
    p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                       capture_output=True, text=True)
    if p.returncode:
        return {**spec, "error": (p.stderr or p.stdout)[-2000:]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _ck(c) -> str:
    return "nested" if c == "nested" else ("per-step" if c else "none")


def table(results: list[dict]) -> str:
    rows = ["| run | simulated | steps | checkpoint | compile s | run s | us/step | "
            "peak RSS MiB | XLA temp MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r or r.get("skipped"):
            why = r.get("skipped") or "error"
            rows.append(f"| {r['kind']} | {r['seconds']:g} s | | {_ck(r.get('checkpoint'))} | "
                        f"| {why} | | | |")
            continue
        ck = _ck(r["checkpoint"]) if r["kind"] == "grad" else "nested"
        rows.append(
            f"| {'value+grad' if r['kind'] == 'grad' else 'forward'} | {r['seconds']:g} s | "
            f"{r['n_steps']:,} | {ck} | {r['compile_s']:.1f} | {r['run_s']:.1f} | "
            f"{1e6 * r['run_s'] / r['n_steps']:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['xla_temp_mib']:.1f} |")
    return "\n".join(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short durations (< 2 min)")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "long_plasticity.json")
    ap.add_argument("--max-grad-s", type=float, default=900.0,
                    help="skip the longest gradient if its estimated time exceeds this (s)")
    ap.add_argument("--skip-forward", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        out = (worker_forward(spec["seconds"]) if spec["kind"] == "forward"
               else worker_grad(spec["seconds"], spec["checkpoint"]))
        print(json.dumps(out))
        return

    cfg = QUICK if args.quick else FULL
    results = []
    t_all = time.perf_counter()
    for seconds, ck in cfg["grad"]:
        r = child({"kind": "grad", "seconds": seconds, "checkpoint": ck})
        print(json.dumps({k: v for k, v in r.items() if k != "error"}), r.get("error", ""),
              flush=True)
        results.append(r)
    long_s = cfg["grad_long_s"]
    if long_s:
        done = [r for r in results if r.get("checkpoint") == "nested" and "run_s" in r]
        ref = max(done, key=lambda r: r["seconds"])
        est = (ref["run_s"] + ref["compile_s"]) * long_s / ref["seconds"]
        if est > args.max_grad_s:
            r = {"kind": "grad", "seconds": long_s, "checkpoint": "nested",
                 "skipped": f"skipped: est. {est / 60:.0f} min", "estimated_s": est}
        else:
            r = child({"kind": "grad", "seconds": long_s, "checkpoint": "nested"})
        print(json.dumps(r), flush=True)
        results.append(r)
    if not args.skip_forward:
        r = child({"kind": "forward", "seconds": cfg["forward_s"]})
        print(json.dumps({k: v for k, v in r.items() if k != "w_mean_per_s"}), flush=True)
        results.insert(0, r)
    print(table(results))
    fw = [r for r in results if r["kind"] == "forward" and "run_s" in r]
    for r in fw:
        print(f"forward {r['seconds']:g} s: {r['steps_per_s']:,.0f} steps/s, soma "
              f"{r['soma_rate_hz_first_2s']:.1f} Hz (first 2 s); final w basal "
              f"{r['w_basal']['mean']:.3f} +- {r['w_basal']['std']:.3f}, apical "
              f"{r['w_apical']['mean']:.3f} +- {r['w_apical']['std']:.3f}")
    out = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
           "cpus": __import__("os").cpu_count(), "dt_ms": DT, "rate_hz": RATE, "gmax_ns": GMAX,
           "target_w": TARGET_W, "grad_record_every": GRAD_RECORD_EVERY, "quick": args.quick,
           "total_s": time.perf_counter() - t_all, "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
