"""The loss landscape of the `make demo` active stage: why its loss looks at 40 ms of spikes.

The demo (`jaxdend/_demo.py`) fits the somatic Na and K densities of the reduced pyramidal
cell to its own simulated +0.3 and +0.4 nA steps (30 and 37 spikes in 150 ms). This script
evaluates the stage's loss, through the same pipeline (`jaxdend.fit.Pipeline`), on lines
through the true values (g_na x f, g_k x f, both x f, and g_na x f with g_k / f) for two
losses:

- "whole train": the van Rossum spike-time distance (tau 2 ms), smooth spike count and
  first-spike latency over the whole step, plus the whole trace (weight 0.02);
- "demo": spike times and trace over the first 40 ms of the step, plus the latency (the
  configuration of `jaxdend demo` and configs/demo.toml).

It also compares the gradient (autodiff) at the demo's start (g_na 0.07, g_k 0.03 S/cm^2)
with central finite differences of 1 % in the log parameters: the sign tells whether a
gradient step goes downhill.

Usage:
    python benchmarks/demo_landscape.py [--quick] [--json PATH]

Units: conductance densities S/cm^2; the losses are dimensionless (z-scores) plus mV^2.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from jaxdend import _demo  # noqa: E402
from jaxdend.fit import Pipeline  # noqa: E402
from jaxdend.fit._params import unwrap  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write_rows  # noqa: E402

WHOLE_TRAIN = {"spikes": {"weight": 1.0, "tau": 2.0},
               "features": {"weight": 1.0, "scales": {"spike_count": 0.5,
                                                      "first_spike_latency": 1.0}},
               "voltage": {"weight": 0.02}}
FACTORS = {"full": (0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 1.0, 1.01, 1.02, 1.05, 1.1, 1.2, 1.4),
           "quick": (0.8, 0.95, 1.0, 1.05, 1.2)}
LINES = {"g_na": lambda f: (f, 1.0), "g_k": lambda f: (1.0, f), "both": lambda f: (f, f),
         "ratio": lambda f: (f, 1.0 / f)}
WHERE = ["soma", "axon"]


def stage_loss(loss: dict, recording):
    """jit-compiled (log g_na, log g_k) -> loss of the demo's active stage with `loss`, on
    the demo's `recording`."""
    cfg = _demo.demo_config()
    cfg["stage"][1]["loss"] = copy.deepcopy(loss)
    pipe = Pipeline(cfg, recordings={"steps": recording}, verbose=False)
    problem = pipe.stage_problem(1)
    cell = unwrap(problem.model)["cell"]

    def fn(x):
        c = (cell.set("PospischilNa.g_na", jnp.exp(x[0]), where=WHERE)
             .set("PospischilKd.g_k", jnp.exp(x[1]), where=WHERE))
        return problem.loss_fn({"cell": c, "scale": {}})

    return jax.jit(fn), jax.jit(jax.grad(fn))


def main(argv=None):
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer points (< 2 min)")
    ap.add_argument("--json", default=str(HERE / "results" / "demo_landscape.json"))
    args = ap.parse_args(argv)
    t_all = time.perf_counter()
    d = _demo.DEMO_DENSITIES
    truth = np.log([d["soma_g_na"], d["soma_g_k"]])
    start = np.log([_demo.DEMO_FITTED["PospischilNa.g_na"][1],
                    _demo.DEMO_FITTED["PospischilKd.g_k"][1]])
    demo_loss = _demo.demo_config()["stage"][1]["loss"]
    factors = FACTORS["quick" if args.quick else "full"]
    recording = _demo.demo_recording()  # simulated once, fitted with both losses
    rows = []
    for name, loss in (("whole train", WHOLE_TRAIN), ("demo", demo_loss)):
        value, grad = stage_loss(loss, recording)
        print(f"\nloss {name!r} on lines through the truth (g_na {d['soma_g_na']}, "
              f"g_k {d['soma_g_k']} S/cm^2), factor f:")
        print("| line | " + " | ".join(f"{f:g}" for f in factors) + " |")
        print("|---|" + "---|" * len(factors))
        for line, fac in LINES.items():
            vals = []
            for f in factors:
                x = truth + np.log(fac(f))
                vals.append(float(value(jnp.asarray(x))))
                rows.append({"loss": name, "line": line, "factor": f, "value": vals[-1]})
            print(f"| {line} | " + " | ".join(f"{v:.3g}" for v in vals) + " |")
        g = np.asarray(grad(jnp.asarray(start)))
        h = 0.01
        fd = np.array([(float(value(jnp.asarray(start + h * e)))
                        - float(value(jnp.asarray(start - h * e)))) / (2 * h)
                       for e in np.eye(2)])
        cos = float(g @ fd / (np.linalg.norm(g) * np.linalg.norm(fd)))
        print(f"gradient at the start (d loss / d log g): autodiff {np.round(g, 3)}, "
              f"central differences (1 %) {np.round(fd, 3)}, cosine {cos:.3f}")
        rows.append({"loss": name, "line": "start_gradient", "autodiff": g.tolist(),
                     "finite_difference": fd.tolist(), "cosine": cos})
    rows.append({"loss": "timing", "wall_s": time.perf_counter() - t_all,
                 "mode": "quick" if args.quick else "full"})
    write_rows(rows, args.json)
    print(f"total {time.perf_counter() - t_all:.0f} s")


if __name__ == "__main__":
    main()
