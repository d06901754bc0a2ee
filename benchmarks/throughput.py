"""Throughput of batched simulation: compartment-steps per second against batch and cell size.

Measured in one run, each configuration group in a fresh child process (float32 runs need
64-bit JAX off for the whole process):

* jaxdend (`jaxdend.batch.sharded_vmap` of `simulate`, jitted), forward and value-and-
  gradient, float64 and float32, on the CPU and, when ``jax.devices("gpu")`` finds one, on
  the GPU (``device_kind`` recorded). Batch = variants of the soma-to-tips HH g_na density
  (scaled 0.9..1.1); batch sizes 1, 10, 100, 1000, 10000 for the reduced pyramidal cell
  (46 segments) and 1, 10, 100 for the larger cells (binary tree 127 x 8 = 1,017 segments,
  the real cell C060114A5 at nseg 2 = 751 and d_lambda 0.1 = 1,774 segments); gradients up
  to batch 1,000 on CPU (per-step checkpointing stores ~batch x nodes x steps x 40 B).
  HH everywhere, 10 ms (400 steps of 0.025 ms), 1 nA (2 nA real cell) step at the soma
  from 1 ms, soma voltage recorded every step. grad = value and gradient of
  sum_variants mean(v_soma^2) with respect to the batched g_na scales.
* Jaxley 0.14 (`benchmarks/_jaxley_peer.py` cells, float64): the same sweep as
  ``jax.vmap`` over its HH_gNa parameter, forward and value-and-gradient.
* Every core of the CPU (when it has more than one): one JAX device per core
  (`jaxdend.batch.use_cpu_cores`), the jaxdend sweep sharded over them, and Jaxley's vmap
  sharded over the same devices with plain ``jax.jit(..., in_shardings=NamedSharding)``;
  float64, batch 100 (and 1,000 for the reduced cell), forward and value-and-gradient. The
  other jaxdend and Jaxley rows use one JAX device (``n_devices`` 1 in the JSON).
* Compile time (lower + compile, batch 1) against morphology size (binary trees of depth 3-7
  with 4 segments per section, the reduced pyramidal cell, the real cell).
* float32 accuracy: 100 ms runs (200 ms for the Pospischil demo cell) in float32 against
  float64, max and mean |dV| at the soma, spike counts.
* Roofline: flops and bytes per compartment-step (XLA's cost analysis of a one-step
  program, and a hand count), the device's bandwidth (a large array update x + 1) and flop
  rate (a fused loop of 256 multiply-adds per element in 8 independent chains; a matmul
  for reference), and the
  fraction of both that the runs reach.

Usage:
    python benchmarks/throughput.py [--quick] [--json PATH] [--no-jaxley] [--no-gpu]

Writes ``benchmarks/results/throughput.json`` (rows with simulator, device, batch, n_comp,
dtype, mode, comp_steps_per_s, compile_s, wall_s) and ``throughput.png``.
Units: s, compartment-steps/s, bytes, flop/s, mV.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SWC = HERE.parent.parent / "shared" / "data" / "morphology" / "C060114A5_derived.swc"
DT = 0.025  # ms
STEPS = 400  # 10 ms per throughput run
GRAD_MAX_BATCH_CPU = 1000
#: case -> (batches full, batches quick, jaxley batches full, jaxley batches quick)
BATCHES = {
    "reduced_pyramidal": ([1, 10, 100, 1000, 10000], [1, 10, 100], [1, 10, 100, 1000], [1, 10]),
    "binary_tree_127x8": ([1, 10, 100], [], [1, 10, 100], []),
    "C060114A5_nseg2": ([1, 10, 100], [1, 10], [1, 10, 100], []),
    "C060114A5_dlambda": ([1, 10, 100], [], [], []),
}
#: every-core section: case -> (jaxdend batches full, quick, Jaxley batches full, quick)
CORES_BATCHES = {
    "reduced_pyramidal": ([100, 1000], [10], [100, 1000], [10]),
    "binary_tree_127x8": ([100], [], [100], []),
    "C060114A5_nseg2": ([100], [], [100], []),
    "C060114A5_dlambda": ([100], [], [], []),
}
#: --gpu-only (the accelerator run, float32, jaxdend and Jaxley alike): case -> (forward
#: batches, value-and-gradient batches, a subset). Sized to finish in ~6 min on one H100:
#: every batch size is a program of its own, and the "levels" schedule's unrolled loops
#: compile in 4-18 s per forward program on the CPU (46-1,774 segments; the gradient ~3x),
#: so few sizes, and the 1,774-segment cell left out.
ACCEL_BATCHES = {
    "reduced_pyramidal": ([100, 10000, 100000], [100]),
    "binary_tree_127x8": ([100, 10000], [100]),
    "C060114A5_nseg2": ([1000], []),
}
ACCEL_BATCHES_QUICK = {"reduced_pyramidal": ([1, 100], [100])}
#: --gpu-only, forward only: float64 rows, and rows with the tree schedule not picked by default
ACCEL_F64 = {"reduced_pyramidal": [10000], "binary_tree_127x8": [10000]}
ACCEL_OTHER_SCHEDULE = {"reduced_pyramidal": [10000], "binary_tree_127x8": [10000]}
#: issue 6's accelerator targets (float32 forward, one GPU)
GPU_TARGET_RATE, GPU_TARGET_JAXLEY = 1e10, 5.0
#: hand count per compartment-step (HH + cable), see `hand_count`
HAND = {"state_values": 4, "typical_values": 22, "flops": 140, "transcendentals": 7}


# ----------------------------------------------------------------------------- models
def morphology(case: str):
    """(Morphology, discretize kwargs, soma step amplitude nA, Jaxley ncomp) of a case."""
    import jaxdend as jd

    if case == "reduced_pyramidal":
        return jd.reduced_pyramidal(), {"nseg": 3}, 1.0, 3
    if case == "binary_tree_127x8":
        return (jd.binary_tree(depth=7), {"nseg": lambda i, sec: 1 if i == 0 else 8}, 0.5,
                None)
    if case.startswith("binary_tree_d"):
        depth = int(case[len("binary_tree_d"):].split("x")[0])
        return jd.binary_tree(depth=depth), {"nseg": lambda i, sec: 1 if i == 0 else 4}, 0.5, None
    real = jd.load_morphology(SWC)
    if case == "C060114A5_nseg2":
        return real, {"nseg": 2}, 2.0, 2
    if case == "C060114A5_dlambda":
        return real, {"d_lambda": 0.1}, 2.0, None
    raise ValueError(case)


def hh_cell(case: str, schedule: str = "sequential"):
    """HH everywhere (cm 1 uF/cm^2, Ra 100 Ohm cm) on the case's compartments."""
    import jaxdend as jd

    morph, disc, amp, _ = morphology(case)
    comps = jd.discretize(morph, **disc)
    cell = jd.Cell(comps, cm=1.0, ra=100.0, schedule=schedule).insert(jd.channels.HH())
    return cell, amp, int((~comps.is_junction).sum())


def hand_count() -> dict:
    """Hand count of one compartment-step of HH + cable (backward Euler, staggered gates).

    Assumptions. State: 4 values per compartment (v, m, h, n). HH: 6 rate functions with 7
    exponentials (expm1/exp; the vtrap forms share their exponent) and ~35 arithmetic ops
    (~15 more for the safe-branch selects); gate update 3 x ~6; channel currents and their
    slope d I / d v (one jvp) ~35; cable matrix assembly (capacitance / dt, axial terms)
    ~15; Hines elimination 5 and back substitution 3 per node; stimulus, masks and the
    junction nodes ~15: ~140 ops + 7 transcendentals, a transcendental counted as 20 flops
    (a vectorised exp/expm1 is a polynomial after range reduction). Memory: at least the
    state is read and written once per step (8 values); a typical pass also reads 6 HH
    parameters, capacitance, axial conductance and the parent index, and writes and reads
    the diagonal and right-hand side of the tree solve (22 values) when they leave the cache.
    """
    return dict(HAND, flops_equiv=HAND["flops"] + 20 * HAND["transcendentals"])


_TRANSCENDENTAL = {"exp", "expm1", "log", "log1p", "tanh", "logistic", "sin", "cos", "pow",
                   "sqrt", "rsqrt", "exp2", "erf", "erf_inv"}
_ARITHMETIC = {"add", "sub", "mul", "div", "neg", "max", "min", "abs", "select_n",
               "integer_pow", "square", "sign", "rem", "reduce_sum", "reduce_max",
               "reduce_min", "add_any", "fma", "clamp"}


def _count_jaxpr(jaxpr, mult: float, acc: dict) -> dict:
    """Add elementwise arithmetic and transcendental counts of `jaxpr` to `acc` (recursive:
    scan bodies times their length, the costlier branch of a cond, other sub-jaxprs once)."""
    import numpy as np
    from jax.extend import core as jcore

    for e in jaxpr.eqns:
        name = e.primitive.name
        if name == "scan":
            _count_jaxpr(e.params["jaxpr"].jaxpr, mult * e.params["length"], acc)
            continue
        if name == "cond":
            branches = [_count_jaxpr(b.jaxpr, mult, {}) for b in e.params["branches"]]
            best = max(branches, key=lambda a: a.get("flops", 0.0))
            for k, v in best.items():
                acc[k] = acc.get(k, 0.0) + v
            continue
        subs = []
        for v in e.params.values():
            for x in (v if isinstance(v, (tuple, list)) else (v,)):
                if isinstance(x, jcore.ClosedJaxpr):
                    subs.append(x.jaxpr)
                elif isinstance(x, jcore.Jaxpr):
                    subs.append(x)
        if subs:
            for sub in subs:
                _count_jaxpr(sub, mult, acc)
            continue
        size = max([int(np.prod(v.aval.shape)) for v in e.outvars if hasattr(v.aval, "shape")]
                   + [1])
        if name.startswith("reduce_"):
            size = int(np.prod(e.invars[0].aval.shape))
        if name in _TRANSCENDENTAL:
            acc["transcendentals"] = acc.get("transcendentals", 0.0) + mult * size
        elif name in _ARITHMETIC:
            acc["flops"] = acc.get("flops", 0.0) + mult * size
    return acc


def jaxpr_count(cell, amp: float) -> dict:
    """Arithmetic ops and transcendentals per compartment-step, counted in the jaxpr of
    `simulate` (3 steps minus 1 step, halved: set-up excluded). Every elementwise primitive
    counts its output size (selects and min/max included, as vector instructions);
    gathers, scatters and conversions are not counted."""
    import jax

    import jaxdend as jd

    n_comp = int((~cell.comps.is_junction).sum())
    out = {}
    for steps in (1, 3):
        def run(c, steps=steps):
            return jd.simulate(c, jd.stimulus.step(0, amp), t1=steps * DT, dt=DT,
                               record=c.probe("v", index=0)).final_state

        out[steps] = _count_jaxpr(jax.make_jaxpr(run)(cell).jaxpr, 1.0, {})
    return {k: (out[3].get(k, 0.0) - out[1].get(k, 0.0)) / 2 / n_comp
            for k in ("flops", "transcendentals")} | {"n_comp": n_comp}


# ----------------------------------------------------------------------------- children
def _device(kind: str):
    import jax

    if kind == "gpu":
        return jax.devices("gpu")[0]
    return jax.devices("cpu")[0]


# Timed runs of one row (jaxdend and Jaxley alike): 3 for programs under 5e7 compartment-steps,
# then more while they take under TIME_BUDGET_S in total; 1 for larger ones.
TIME_BUDGET_S = 1.0


def _row_repeats(batch: int, n_comp: int) -> tuple[int, float]:
    """(repeats, time budget s) of `_common.best` for one row."""
    return (3, TIME_BUDGET_S) if batch * n_comp * STEPS < 5e7 else (1, 0.0)


def _compile_and_time(jitted, args, repeats: int, budget_s: float = 0.0):
    """(compile s, best run s, output, compiled) of an eqx.filter_jit function at `args`
    (timed by `_common.best`)."""
    sys.path.insert(0, str(HERE))
    import jax
    from _common import best

    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))  # warm-up
    best_s, out = best(lambda: compiled(*args), repeats, budget_s)
    return compile_s, best_s, out, compiled


def auto_width(devices, cell, batch: int):
    """`jaxdend.batch.sweep`'s default vmap width for `batch` variants of `cell` over
    `devices`."""
    from jaxdend.batch import batch_mesh
    from jaxdend.batch._sweep import _auto_width  # the sweep's own rule, not a copy
    from jaxdend.solve._native_run import cell_fits

    return _auto_width("auto", batch_mesh(list(devices)), cell.n, -(-batch // len(devices)),
                       cell_fits(cell))


def _programs(cell, amp, steps, devices, n_batch, checkpoint=True, width="auto"):
    """(forward, value-and-gradient) of the g_na sweep of `n_batch` variants, sharded over the
    list `devices`."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import jaxdend as jd
    from jaxdend import batch

    g0 = cell.get("HH.g_na")
    stim = jd.stimulus.step(0, amp, 1.0, 1e9)
    rec = cell.probe("v", index=0)

    def one(c, s):
        c = c.set("HH.g_na", g0 * s)
        return jd.simulate(c, stim, t1=steps * DT, dt=DT, record=rec,
                           checkpoint=checkpoint)["v"][:, 0]

    width = auto_width(devices, cell, n_batch) if width == "auto" else width
    vf = batch.sharded_vmap(one, list(devices), in_axes=(None, 0), vmap_width=width)
    fwd = eqx.filter_jit(vf)

    @eqx.filter_jit
    def grad(c, s):
        return jax.value_and_grad(lambda s: jnp.sum(jnp.mean(vf(c, s) ** 2, axis=1)))(s)

    return fwd, grad


def _jaxdend_rows(case, cell, amp, n_comp, runs, devices, dtype, schedule,
                  grad_batches=None) -> list[dict]:
    """Time jaxdend's sweep programs for `runs` [(batch, vmap width or "auto")] sharded over
    `devices`: forward, and value-and-gradient at the default width (for the batches in
    `grad_batches`; None: up to GRAD_MAX_BATCH_CPU on CPU, all elsewhere); one row each."""
    import jax.numpy as jnp
    import numpy as np

    dev, dt_np = devices[0], np.dtype(dtype)
    rows = []
    for b, width in runs:
        s = jnp.linspace(0.9, 1.1, b, dtype=dt_np) if b > 1 else jnp.ones((1,), dt_np)
        w_used = auto_width(devices, cell, b) if width == "auto" else width
        fwd, grad = _programs(cell, amp, STEPS, devices, b, width=width)
        modes = ["forward"]
        if width == "auto" and (b in grad_batches if grad_batches is not None else
                                (dev.platform != "cpu" or b <= GRAD_MAX_BATCH_CPU)):
            modes.append("grad")
        for mode in modes:
            prog = fwd if mode == "forward" else grad
            try:
                c_s, w_s, out, _ = _compile_and_time(prog, (cell, s),
                                                     *_row_repeats(b, n_comp))
                if mode == "forward" and b > 1 and not float(jnp.ptp(out[:, -1])) > 0:
                    raise RuntimeError("the variants did not differ")
            except Exception as err:  # noqa: BLE001 - out of memory etc.: say so
                print(f"  {case} b={b} {mode}: skipped ({type(err).__name__}: "
                      f"{str(err)[:200]})", file=sys.stderr, flush=True)
                continue
            row = {"simulator": "jaxdend", "device": dev.platform,
                   "device_kind": dev.device_kind, "case": case, "batch": b,
                   "n_comp": n_comp, "n_nodes": int(cell.n), "dtype": dtype,
                   "mode": mode, "steps": STEPS, "compile_s": c_s, "wall_s": w_s,
                   "comp_steps_per_s": b * n_comp * STEPS / w_s, "schedule": schedule,
                   "vmap_width": "full" if w_used is None else min(w_used, b),
                   "default_width": width == "auto", "n_devices": len(devices)}
            rows.append(row)
            print("  " + json.dumps(row), file=sys.stderr, flush=True)
    return rows


def child_jaxdend(cfg: dict) -> dict:
    """Throughput rows, roofline and accuracy traces for one dtype on one device.

    cfg: dtype, device ("cpu" or "gpu"), cases [(case, batches) or (case, forward batches,
    gradient batches)], accuracy (cases whose 100 ms traces are recorded), widths (the vmap
    width study), optional schedule (the tree schedule; default "levels" on GPU, else
    "sequential"), other_schedule [(case, batches)] (forward rows with the other one),
    roofline (default True)."""
    import jax

    jax.config.update("jax_enable_x64", cfg["dtype"] == "float64")
    import equinox as eqx
    import numpy as np

    import jaxdend as jd
    from jaxdend._demo import demo_cell
    from jaxdend.batch import cast

    dev = _device(cfg["device"])
    dt_np = np.dtype(cfg["dtype"])
    schedule = cfg.get("schedule") or ("levels" if dev.platform == "gpu" else "sequential")
    rows, costs = [], {}
    with jax.default_device(dev):
        for case, batches, *grads in cfg["cases"]:
            cell, amp, n_comp = hh_cell(case, schedule)
            costs[case] = jaxpr_count(cell, amp)
            runs = [(b, "auto") for b in batches]
            if cfg.get("widths"):  # vmap width study at batch 100 (1,000, 10,000)
                for b, widths in ((100, (1, 4, 16, None)), (1000, (5, 16, None)),
                                  (10000, (1000, None))):
                    if b in batches:
                        runs += [(b, w) for w in widths if w != auto_width([dev], cell, b)]
            rows += _jaxdend_rows(case, cell, amp, n_comp, runs, [dev], cfg["dtype"],
                                  schedule, grads[0] if grads else None)
        other = "levels" if schedule == "sequential" else "sequential"
        for case, batches in cfg.get("other_schedule", []):
            cell, amp, n_comp = hh_cell(case, other)
            alt = _jaxdend_rows(case, cell, amp, n_comp, [(b, "auto") for b in batches],
                                [dev], cfg["dtype"], other, grad_batches=[])
            rows += [dict(r, default_schedule=False) for r in alt]
        roof = roofline(dev, dt_np) if cfg.get("roofline", True) else None
        # accuracy traces (batch 1): the parent compares float32 with float64
        traces = {}
        for case in cfg["accuracy"]:
            if case == "demo_cell_pospischil":
                cell = demo_cell()
                stim, t1 = jd.stimulus.step(0, 0.3, 20.0, 150.0), 200.0
            else:
                cell, amp, _ = hh_cell(case, schedule)
                stim, t1 = jd.stimulus.step(0, amp, 10.0, 80.0), 100.0
            cell = cast(cell, dt_np)
            run = eqx.filter_jit(lambda c, stim=stim, t1=t1: jd.simulate(
                c, stim, t1=t1, dt=DT, record=c.probe("v", index=0))["v"][:, 0])
            traces[case] = np.asarray(run(cell), dtype=np.float64).tolist()
    return {"rows": rows, "roofline": roof, "costs": costs, "traces": traces}


def roofline(dev, dtype) -> dict:
    """Measured bandwidth (x + 1 over a large array) and flop rate of `dev` in `dtype`."""
    import jax
    import jax.numpy as jnp

    gpu = dev.platform == "gpu"
    n_bw = (2**28 if gpu else 2**25) // (dtype.itemsize // 4)  # 1 GiB GPU, 128 MiB CPU
    x = jnp.ones((n_bw,), dtype)
    upd = jax.jit(lambda x: x + 1)
    _, bw_s, _, _ = _compile_and_time(_Plain(upd), (x,), 5)
    bandwidth = 2 * x.nbytes / bw_s
    del x
    n_f, k = (2**24 if gpu else 2**20), 256
    y = jnp.linspace(0.0, 1.0, n_f, dtype=dtype)
    a, b = jnp.asarray(0.999, dtype), jnp.asarray(0.001, dtype)

    def chain(y, a, b):
        # one fused loop, 256 multiply-adds per element in 8 independent chains of 32 (one
        # chain alone is latency-bound: 4-5x slower on the dev CPU)
        ys = [y + i for i in range(8)]
        for _ in range(k // 8):
            ys = [z * a + b for z in ys]
        return sum(ys)

    _, f_s, _, _ = _compile_and_time(_Plain(jax.jit(chain)), (y, a, b), 5)
    fma = 2 * k * n_f / f_s
    m = 4096 if gpu else 2048
    mat = jnp.ones((m, m), dtype) / m
    _, mm_s, _, _ = _compile_and_time(_Plain(jax.jit(lambda p, q: p @ q)), (mat, mat), 3)
    return {"device": dev.platform, "device_kind": dev.device_kind, "dtype": str(dtype),
            "bandwidth_B_per_s": bandwidth, "fma_flop_per_s": fma,
            "matmul_flop_per_s": 2 * m**3 / mm_s}


class _Plain:
    """Adapter: a jax.jit function with the lower().compile() interface of filter_jit."""

    def __init__(self, fn):
        self.fn = fn

    def lower(self, *args):
        return self.fn.lower(*args)


def child_compile(cfg: dict) -> dict:
    """Compile time (lower + compile) of forward and value-and-grad at batch 1."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    rows = []
    for case in cfg["cases"]:
        cell, amp, n_comp = hh_cell(case)
        fwd, grad = _programs(cell, amp, STEPS, jax.devices("cpu")[:1], 1)
        s = jnp.ones((1,))
        for mode, prog in (("forward", fwd), ("grad", grad)):
            t0 = time.perf_counter()
            prog.lower(cell, s).compile()
            rows.append({"case": case, "n_comp": n_comp, "n_nodes": int(cell.n), "mode": mode,
                         "compile_s": time.perf_counter() - t0, "dtype": "float64",
                         "device": "cpu"})
            print("  " + json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"compile": rows}


def child_jaxley(cfg: dict) -> dict:
    """The same sweep in Jaxley: vmap over HH_gNa on one device (cfg: cases, optional device
    "cpu" (default) or "gpu", dtype "float64" (default) or "float32")."""
    import jax

    with jax.default_device(_device(cfg.get("device", "cpu"))):
        return {"rows": _jaxley_rows(cfg["cases"], dtype=cfg.get("dtype", "float64"))}


def _jaxley_rows(cases, devices=None, dtype="float64") -> list[dict]:
    """Jaxley rows of `cases` [(case, batches) or (case, forward batches, gradient
    batches)] in `dtype`; with several `devices` the vmapped batch is sharded over them
    (jax.jit with a NamedSharding of the batch axis: plain JAX, no jaxdend)."""
    sys.path.insert(0, str(HERE))
    import jax
    import jax.numpy as jnp
    import jaxley as jx
    import numpy as np
    from _common import best
    from _jaxley_peer import _soma_centre_comp
    from _jaxley_peer import hh_cell as jx_hh_cell
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxdend as jd

    jax.config.update("jax_enable_x64", dtype == "float64")  # _jaxley_peer turns it on
    # the default device of the caller's context, or the first of `devices`
    dev = jnp.zeros(()).devices().pop() if devices is None else devices[0]
    n_dev = 1 if devices is None else len(devices)
    shard = {}
    if n_dev > 1:
        spec = NamedSharding(Mesh(np.asarray(devices, dtype=object), ("batch",)), P("batch"))
        shard = {"in_shardings": spec}
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for case, batches, *grads in cases:
        morph, disc, amp, ncomp = morphology(case)
        if case.startswith("C060114A5"):
            swc = SWC
        else:
            swc = jd.morphology.save_swc(morph, tmp / f"{case}.swc")
        if ncomp is None:  # NEURON's nseg per section (two soma branches first)
            nseg = [int(n) for n in jd.discretize(morph, **disc).nseg]
            ncomp = [nseg[0], nseg[0], *nseg[1:]]
        cell = jx_hh_cell(str(swc), ncomp)
        cell.init_states(delta_t=DT)
        cur = np.asarray(jx.step_current(1.0, 1e6, amp, DT, STEPS * DT))[:STEPS]
        b_, c_ = _soma_centre_comp(cell, str(swc))
        cell.branch(b_).comp(c_).stimulate(jnp.asarray(cur), verbose=False)
        cell.branch(b_).comp(c_).record("v", verbose=False)
        n_comp = int(len(cell.nodes))
        cell.make_trainable("HH_gNa", verbose=False)  # else params= is ignored

        def sim(g, cell=cell):
            return jx.integrate(cell, params=[{"HH_gNa": g}], delta_t=DT)[0]

        fwd = jax.jit(jax.vmap(sim), **shard)
        grad = jax.jit(jax.value_and_grad(
            lambda gs: jnp.sum(jnp.mean(jax.vmap(sim)(gs) ** 2, axis=1))), **shard)
        for b in batches:
            if b % n_dev:
                continue
            gs = (0.12 * jnp.linspace(0.9, 1.1, b) if b > 1 else jnp.full((1,), 0.12))[:, None]
            gs = gs.astype(dtype)
            if n_dev > 1:
                gs = jax.device_put(gs, shard["in_shardings"])
            for mode, prog in (("forward", fwd), ("grad", grad)):
                if mode == "grad" and (b not in grads[0] if grads else b > GRAD_MAX_BATCH_CPU):
                    continue
                try:
                    t0 = time.perf_counter()
                    res = jax.block_until_ready(prog(gs))
                    first = time.perf_counter() - t0
                    if mode == "forward" and b > 1 and not float(jnp.ptp(res[:, -1])) > 0:
                        raise RuntimeError("the variants did not differ (parameter ignored)")
                    best_s, _ = best(lambda p=prog, x=gs: p(x), *_row_repeats(b, n_comp))
                except Exception as err:  # noqa: BLE001
                    print(f"  Jaxley {case} b={b} {mode}: skipped ({type(err).__name__}: "
                          f"{str(err)[:200]})", file=sys.stderr, flush=True)
                    continue
                row = {"simulator": f"Jaxley {jx.__version__}", "device": dev.platform,
                       "device_kind": dev.device_kind, "case": case, "batch": b,
                       "n_comp": n_comp, "dtype": dtype, "mode": mode, "steps": STEPS,
                       "compile_s": max(first - best_s, 0.0), "wall_s": best_s,
                       "comp_steps_per_s": b * n_comp * STEPS / best_s, "n_devices": n_dev}
                rows.append(row)
                print("  " + json.dumps(row), file=sys.stderr, flush=True)
    return rows


def child_cores(cfg: dict) -> dict:
    """Every CPU core: one JAX device per core (`jaxdend.batch.use_cpu_cores`), jaxdend's
    sweep sharded over them with `sharded_vmap`, and Jaxley's vmap sharded over the same
    devices (float64, forward and value-and-gradient)."""
    import jaxdend as jd

    jd.batch.use_cpu_cores(cfg["n"])  # before JAX starts
    import jax

    jax.config.update("jax_enable_x64", True)
    devs = jax.devices("cpu")
    rows = []
    for case, batches in cfg["cases"]:
        cell, amp, n_comp = hh_cell(case)
        rows += _jaxdend_rows(case, cell, amp, n_comp, [(b, "auto") for b in batches], devs,
                              "float64", "sequential")
    if cfg["jaxley_cases"]:
        rows += _jaxley_rows(cfg["jaxley_cases"], devs)
    return {"rows": rows}


CHILDREN = {"jaxdend": child_jaxdend, "compile": child_compile, "jaxley": child_jaxley,
            "cores": child_cores}


# ----------------------------------------------------------------------------- parent
def _spawn(kind: str, cfg: dict) -> dict | None:
    env = dict(os.environ)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(cfg)],
                          stdout=subprocess.PIPE, stderr=None, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    print(f"[{kind} {cfg.get('dtype', '')} {cfg.get('device', '')}] "
          f"{time.perf_counter() - t0:.0f} s, rc {proc.returncode}", flush=True)
    if proc.returncode or not lines:
        return None
    return json.loads(lines[-1][len("RESULT "):])


def _gpu_available() -> bool:
    code = "import jax,sys; sys.exit(0 if jax.devices('gpu') else 1)"
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True,
                              timeout=120).returncode == 0
    except Exception:  # noqa: BLE001
        return False


def _spike_times(v, dt=DT):
    import numpy as np

    v = np.asarray(v)
    i = np.nonzero((v[:-1] < 0.0) & (v[1:] >= 0.0))[0]
    return (i + (0.0 - v[i]) / (v[i + 1] - v[i])) * dt


def accuracy(traces64: dict, traces32: dict) -> list[dict]:
    """Max / mean |V32 - V64| (mV) at the soma per model, spike counts and time shifts."""
    import numpy as np

    out = []
    for case, v64 in traces64.items():
        if case not in traces32:
            continue
        a, b = np.asarray(v64), np.asarray(traces32[case])
        d = np.abs(a - b)
        ta, tb = _spike_times(a), _spike_times(b)
        shift = float(np.max(np.abs(ta - tb))) if ta.size == tb.size and ta.size else None
        out.append({"case": case, "max_abs_dV_mV": float(d.max()),
                    "mean_abs_dV_mV": float(d.mean()),
                    "median_abs_dV_mV": float(np.median(d)),
                    "spikes_float64": int(ta.size), "spikes_float32": int(tb.size),
                    "max_spike_shift_ms": shift, "samples": int(a.size)})
    return out


def _plain_row(r) -> bool:
    """A row of the default set-up: default vmap width and tree schedule, one JAX device."""
    return (r.get("default_width", True) and r.get("default_schedule", True)
            and r.get("n_devices", 1) == 1)


def roofline_rows(rows, roofs, costs, hand) -> list[dict]:
    """Fraction of the measured flop rate and bandwidth reached by the best jaxdend runs."""
    out = []
    for r in rows:
        if r["simulator"] != "jaxdend" or r["mode"] != "forward" or not _plain_row(r):
            continue
        roof = next((x for x in roofs if x["device"] == r["device"] and x["dtype"] == r["dtype"]),
                    None)
        cost = costs.get(f"{r['device']}/{r['dtype']}", {}).get(r["case"])
        if roof is None or cost is None:
            continue
        size = 8 if r["dtype"] == "float64" else 4
        cs = r["comp_steps_per_s"]
        model = cost["flops"] + 20 * cost["transcendentals"]
        out.append({
            "device": r["device"], "dtype": r["dtype"], "case": r["case"], "batch": r["batch"],
            "vmap_width": r.get("vmap_width"), "comp_steps_per_s": cs,
            "jaxpr_flops_per_comp_step": cost["flops"],
            "jaxpr_transcendentals_per_comp_step": cost["transcendentals"],
            "achieved_flop_per_s_jaxpr": cs * model,
            "achieved_flop_per_s_hand": cs * hand["flops_equiv"],
            "fraction_fma_peak_jaxpr": cs * model / roof["fma_flop_per_s"],
            "fraction_fma_peak_hand": cs * hand["flops_equiv"] / roof["fma_flop_per_s"],
            "bytes_per_comp_step_min": 2 * hand["state_values"] * size,
            "bytes_per_comp_step_typical": hand["typical_values"] * size,
            "fraction_bandwidth_min": cs * 2 * hand["state_values"] * size
            / roof["bandwidth_B_per_s"],
            "fraction_bandwidth_typical": cs * hand["typical_values"] * size
            / roof["bandwidth_B_per_s"],
        })
    return out


def plot(result: dict, path: Path) -> None:
    """Three panels: throughput vs batch, vs cell size (batch 1 and 100), compile time."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", flush=True)
        return
    rows = [r for r in result["rows"] if _plain_row(r)]
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.8))
    keys = sorted({(r["simulator"], r["device"], r["dtype"], r["mode"]) for r in rows})
    for sim, dev, dt, mode in keys:
        sel = sorted((r for r in rows if (r["simulator"], r["device"], r["dtype"], r["mode"])
                      == (sim, dev, dt, mode) and r["case"] == "reduced_pyramidal"),
                     key=lambda r: r["batch"])
        if sel:
            ax[0].plot([r["batch"] for r in sel], [r["comp_steps_per_s"] for r in sel],
                       "o-" if sim == "jaxdend" else "s--",
                       label=f"{sim} {dev} {dt} {mode}")
    ax[0].set_xscale("log")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("batch (variants)")
    ax[0].set_ylabel("compartment-steps / s")
    ax[0].set_title("reduced pyramidal cell (46 segments), HH, 400 steps")
    ax[0].legend(fontsize=7)
    for sim, dev, dt, mode in keys:
        for b, mk in ((1, "o"), (100, "^")):
            sel = sorted((r for r in rows if (r["simulator"], r["device"], r["dtype"], r["mode"])
                          == (sim, dev, dt, mode) and r["batch"] == b), key=lambda r: r["n_comp"])
            if len(sel) > 1 and mode == "forward":
                ax[1].plot([r["n_comp"] for r in sel], [r["comp_steps_per_s"] for r in sel],
                           mk + ("-" if sim == "jaxdend" else "--"),
                           label=f"{sim} {dev} {dt} batch {b}")
    ax[1].set_xscale("log")
    ax[1].set_yscale("log")
    ax[1].set_xlabel("compartments")
    ax[1].set_ylabel("compartment-steps / s (forward)")
    ax[1].set_title("against cell size")
    if ax[1].get_legend_handles_labels()[0]:
        ax[1].legend(fontsize=7)
    for mode in ("forward", "grad"):
        sel = sorted((r for r in result["compile"] if r["mode"] == mode),
                     key=lambda r: r["n_comp"])
        ax[2].plot([r["n_comp"] for r in sel], [r["compile_s"] for r in sel], "o-", label=mode)
    ax[2].set_xscale("log")
    ax[2].set_xlabel("compartments")
    ax[2].set_ylabel("compile s (batch 1, float64, CPU)")
    ax[2].set_title("compile time")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:.1f}"


def print_tables(result: dict) -> None:
    """Markdown tables of throughput, compile time, float32 accuracy and roofline."""
    rows = sorted(result["rows"], key=lambda r: (r["case"], r["simulator"], r["device"],
                                                 r["dtype"], r["mode"], r["batch"]))
    print("\n| case | n_comp | simulator | device | JAX devices | dtype | mode | batch "
          "| vmap width | compile s | wall s | Mcomp-steps/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['n_comp']} | {r['simulator']} | {r['device']} "
              f"| {r.get('n_devices', 1)} | {r['dtype']} | {r['mode']} | {r['batch']} "
              f"| {r.get('vmap_width', '-')} | {r['compile_s']:.2f} | {r['wall_s']:.3f} "
              f"| {_fmt_rate(r['comp_steps_per_s'])} |")
    print_cores_table(result["rows"])
    comp = result["compile"]
    if comp:
        print("\n| case | n_comp | compile forward s | compile grad s |")
        print("|---|---|---|---|")
    for case in sorted({r["case"] for r in comp}, key=lambda c: next(
            r["n_comp"] for r in comp if r["case"] == c)):
        f = next(r for r in comp if r["case"] == case and r["mode"] == "forward")
        g = next(r for r in comp if r["case"] == case and r["mode"] == "grad")
        print(f"| {case} | {f['n_comp']} | {f['compile_s']:.2f} | {g['compile_s']:.2f} |")
    print("\n| model | float32 on | max abs dV mV (float32 vs float64) | mean abs dV mV "
          "| spikes f64 / f32 | max spike shift ms |")
    print("|---|---|---|---|---|---|")
    for a in result["float32_accuracy"]:
        shift = "-" if a["max_spike_shift_ms"] is None else f"{a['max_spike_shift_ms']:.2g}"
        print(f"| {a['case']} | {a.get('device', 'cpu')} | {a['max_abs_dV_mV']:.3g} "
              f"| {a['mean_abs_dV_mV']:.3g} | "
              f"{a['spikes_float64']} / {a['spikes_float32']} | {shift} |")
    print("\n| device | dtype | bandwidth GB/s | fused FMA GFLOP/s | matmul GFLOP/s |")
    print("|---|---|---|---|---|")
    for r in result["roofline"]["device_peaks"]:
        print(f"| {r['device']} ({r['device_kind']}) | {r['dtype']} | "
              f"{r['bandwidth_B_per_s'] / 1e9:.1f} | {r['fma_flop_per_s'] / 1e9:.1f} | "
              f"{r['matmul_flop_per_s'] / 1e9:.1f} |")
    print("\n| device | dtype | case | batch | Mcs/s | ops + 20 x transc. per cs (jaxpr) | "
          "% fused-FMA peak (jaxpr / hand) | % bandwidth (8 / 22 values per cs) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["roofline"]["fractions"]:
        fl = r["jaxpr_flops_per_comp_step"] + 20 * r["jaxpr_transcendentals_per_comp_step"]
        print(f"| {r['device']} | {r['dtype']} | {r['case']} | {r['batch']} | "
              f"{_fmt_rate(r['comp_steps_per_s'])} | {fl:.0f} | "
              f"{100 * r['fraction_fma_peak_jaxpr']:.0f} / {100 * r['fraction_fma_peak_hand']:.0f}"
              f" | {100 * r['fraction_bandwidth_min']:.1f} / "
              f"{100 * r['fraction_bandwidth_typical']:.1f} |")


def print_cores_table(rows) -> None:
    """Every-core rows against one device, and jaxdend against Jaxley's faster layout."""
    multi = [r for r in rows if r.get("n_devices", 1) > 1 and r["simulator"] == "jaxdend"]
    if not multi:
        return

    def rate(sim, case, mode, b, n_dev):
        return next((r["comp_steps_per_s"] for r in rows if r["simulator"].startswith(sim)
                     and r["case"] == case and r["mode"] == mode and r["batch"] == b
                     and r["device"] == "cpu" and r["dtype"] == "float64"
                     and r.get("default_width", True) and r.get("n_devices", 1) == n_dev), None)

    def fmt(x, f=_fmt_rate):
        return "-" if x is None else f(x)

    print("\n| case | mode | batch | jaxdend 1 device | jaxdend all cores | x | Jaxley 1 device "
          "| Jaxley all cores | jaxdend all cores / Jaxley's faster |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(multi, key=lambda r: (r["n_comp"], r["mode"], r["batch"])):
        k = (r["case"], r["mode"], r["batch"])
        one, all_ = rate("jaxdend", *k, 1), r["comp_steps_per_s"]
        j1, jn = rate("Jaxley", *k, 1), rate("Jaxley", *k, r["n_devices"])
        best = max((x for x in (j1, jn) if x is not None), default=None)
        print(f"| {r['case']} | {r['mode']} | {r['batch']} | {fmt(one)} | {_fmt_rate(all_)} "
              f"| {fmt(one and all_ / one, lambda x: f'{x:.2f}')} | {fmt(j1)} | {fmt(jn)} "
              f"| {fmt(best and all_ / best, lambda x: f'{x:.2f}')} |")


def main(argv=None) -> int:
    """Run the children, combine, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subset (< 3 min)")
    parser.add_argument("--json", default=str(HERE / "results" / "throughput.json"))
    parser.add_argument("--no-jaxley", action="store_true", help="skip the Jaxley peer")
    parser.add_argument("--no-gpu", action="store_true", help="CPU only")
    parser.add_argument("--gpu-only", action="store_true",
                        help="only the GPU section, float32 jaxdend and Jaxley (~7 min on one "
                        "H100; benchmarks/gpu_check.sh runs it), written to "
                        "results/throughput_gpu.json unless --json says otherwise")
    parser.add_argument("--accel-platform", default="gpu", help=argparse.SUPPRESS)  # dry runs
    parser.add_argument("--merge", metavar="GPU_JSON",
                        help="copy the GPU rows of a --gpu-only result into --json and stop")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, cfg = args.child
        print("RESULT " + json.dumps(CHILDREN[kind](json.loads(cfg))), flush=True)
        return 0
    if args.merge:
        return merge_gpu(Path(args.merge), Path(args.json))
    t_start = time.perf_counter()
    if args.gpu_only:
        if args.json == parser.get_default("json"):
            args.json = str(HERE / "results" / "throughput_gpu.json")
        result = accelerator_run(args.accel_platform, args.quick, not args.no_jaxley,
                                 Path(args.json))
        result["meta"]["wall_s"] = time.perf_counter() - t_start
        return finish(result, Path(args.json), t_start)
    pick = 1 if args.quick else 0
    have_real = SWC.exists()
    if not have_real:
        print(f"warning: {SWC} not found; real-cell cases skipped", file=sys.stderr)
    cases = [(c, b[pick]) for c, b in BATCHES.items()
             if b[pick] and (have_real or not c.startswith("C060114A5"))]
    jx_cases = [(c, b[2 + pick]) for c, b in BATCHES.items()
                if b[2 + pick] and (have_real or not c.startswith("C060114A5"))]
    acc = ["reduced_pyramidal", "demo_cell_pospischil"] + (
        ["C060114A5_nseg2", "C060114A5_dlambda"] if have_real else [])
    if args.quick:
        acc = acc[:3]
    devices = ["cpu"] + (["gpu"] if not args.no_gpu and _gpu_available() else [])
    result = _empty_result()
    traces = {}
    for dev in devices:
        for dtype in ("float64", "float32"):
            out = _spawn("jaxdend", {"dtype": dtype, "device": dev, "cases": cases,
                                     "accuracy": acc if dev == "cpu" else [],
                                     "widths": not args.quick})
            if out is not None:
                traces[(dev, dtype)] = _add_jaxdend(result, dev, dtype, out)
    sizes = ["binary_tree_d3x4", "reduced_pyramidal", "binary_tree_d5x4", "binary_tree_d7x4"]
    if not args.quick:
        sizes = ["binary_tree_d3x4", "reduced_pyramidal", "binary_tree_d4x4",
                 "binary_tree_d5x4", "binary_tree_d6x4", "binary_tree_d7x4"] + (
            ["C060114A5_nseg2", "C060114A5_dlambda"] if have_real else [])
    out = _spawn("compile", {"cases": sizes})
    if out is not None:
        result["compile"] = out["compile"]
    if not args.no_jaxley and jx_cases:
        out = _spawn("jaxley", {"cases": jx_cases})
        if out is not None:
            result["rows"] += out["rows"]
    n_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    if n_cores > 1:
        pick_c = [(c, b[pick]) for c, b in CORES_BATCHES.items()
                  if b[pick] and (have_real or not c.startswith("C060114A5"))]
        jx_c = [] if args.no_jaxley else [
            (c, b[2 + pick]) for c, b in CORES_BATCHES.items()
            if b[2 + pick] and (have_real or not c.startswith("C060114A5"))]
        out = _spawn("cores", {"n": n_cores, "cases": pick_c, "jaxley_cases": jx_c})
        if out is not None:
            result["rows"] += out["rows"]
    if ("cpu", "float64") in traces and ("cpu", "float32") in traces:
        result["float32_accuracy"] = accuracy(traces[("cpu", "float64")],
                                              traces[("cpu", "float32")])
    result["meta"] = _meta(args.quick, devices, wall_s=time.perf_counter() - t_start,
                           cpu_cores=n_cores, grad_max_batch_cpu=GRAD_MAX_BATCH_CPU)
    return finish(result, Path(args.json), t_start)


def _empty_result() -> dict:
    return {"rows": [], "compile": [], "float32_accuracy": [],
            "roofline": {"hand_count": hand_count(), "device_peaks": [], "costs": {},
                         "fractions": []}}


def _add_jaxdend(result: dict, dev: str, dtype: str, out: dict) -> dict:
    """Put a jaxdend child's rows, roofline and costs into `result`; returns its accuracy
    traces."""
    result["rows"] += out["rows"]
    if out["roofline"] is not None:
        result["roofline"]["device_peaks"].append(out["roofline"])
    result["roofline"]["costs"][f"{dev}/{dtype}"] = out["costs"]
    return out["traces"]


def _meta(quick: bool, devices, **extra) -> dict:
    """The run's description for the JSON."""
    import jax

    return {"machine": platform.machine(), "cpus": os.cpu_count(), "jax": jax.__version__,
            "steps": STEPS, "dt_ms": DT, "quick": quick, "devices": devices, **extra}


def finish(result: dict, out_path: Path, t_start: float) -> int:
    """Derive the roofline fractions, print the tables, write the JSON and the plot."""
    roof = result["roofline"]
    roof["fractions"] = roofline_rows(result["rows"], roof["device_peaks"], roof["costs"],
                                      roof["hand_count"])
    print_tables(result)
    print_gpu_targets(result["rows"], result["meta"].get("accel_platform", "gpu"))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1))
    print(f"wrote {out_path}")
    plot(result, out_path.with_suffix(".png"))
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


def accelerator_run(plat: str, quick: bool, with_jaxley: bool, out_path: Path) -> dict:
    """The GPU section alone (`--gpu-only`): jaxdend float32 forward and value-and-gradient
    at ACCEL_BATCHES on the first `plat` device (tree schedule "levels" on GPU), forward rows
    with the other schedule and in float64, Jaxley float32 on the same device and batches,
    the device's roofline, and float32 accuracy of 100 ms runs there against float64 on the
    CPU of the same machine. What is done so far is written to `out_path` after each child
    process (a run stopped by a time limit keeps it)."""
    have_real = SWC.exists()
    if not have_real:
        print(f"warning: {SWC} not found; real-cell cases skipped", file=sys.stderr)

    def pick(table):
        return [[c, *v] if isinstance(v, tuple) else [c, v] for c, v in table.items()
                if have_real or not c.startswith("C060114A5")]

    cases = pick(ACCEL_BATCHES_QUICK if quick else ACCEL_BATCHES)
    acc = ["reduced_pyramidal", "demo_cell_pospischil"] + (
        ["C060114A5_nseg2"] if have_real and not quick else [])
    result = _empty_result()
    traces = {}
    runs = [("float32", {"cases": cases, "accuracy": acc,
                         "other_schedule": [] if quick else pick(ACCEL_OTHER_SCHEDULE)}),
            ("float64", {"cases": [] if quick else pick(ACCEL_F64), "accuracy": []})]
    ref = None

    def save():  # after each child process: a run stopped by a time limit keeps the rest
        if ref is not None and "float32" in traces:
            result["float32_accuracy"] = [dict(a, device=plat) for a in
                                          accuracy(ref["traces"], traces["float32"])]
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(dict(result, meta={"partial": True}), indent=1))

    for dtype, cfg in runs:
        if dtype == "float64":  # the float32 accuracy reference before the float64 rows
            ref = _spawn("jaxdend", {"dtype": "float64", "device": "cpu", "cases": [],
                                     "accuracy": acc, "roofline": False})
            save()
        out = _spawn("jaxdend", dict(cfg, dtype=dtype, device=plat, widths=False))
        if out is None:
            continue
        traces[dtype] = _add_jaxdend(result, plat, dtype, out)
        save()
        if dtype == "float32" and with_jaxley:
            jx = _spawn("jaxley", {"cases": cases, "device": plat, "dtype": "float32"})
            result["rows"] += jx["rows"] if jx else []
            save()
    result["meta"] = _meta(quick, [plat], gpu_only=True, accel_platform=plat,
                           float32_reference="float64 on this machine's CPU")
    return result


def print_gpu_targets(rows, device: str = "gpu") -> None:
    """Issue 6's GPU targets: the best float32 forward rate on `device` and its ratio to
    Jaxley's on the same device, case and batch (`device` "cpu" only in dry runs)."""
    mine = [r for r in rows if r["device"] == device and r["dtype"] == "float32"
            and r["simulator"] == "jaxdend" and _plain_row(r)]
    if not any(r["mode"] == "forward" for r in mine):
        return
    top = max((r for r in mine if r["mode"] == "forward"), key=lambda r: r["comp_steps_per_s"])
    print(f"\nGPU float32 forward, best: {top['comp_steps_per_s']:.3g} compartment-steps/s "
          f"({top['case']}, batch {top['batch']}; target {GPU_TARGET_RATE:.0e}: "
          f"{'met' if top['comp_steps_per_s'] >= GPU_TARGET_RATE else 'NOT met'})")
    print(f"\n| case | mode | batch | jaxdend Mcs/s | Jaxley Mcs/s | ratio (target "
          f"{GPU_TARGET_JAXLEY:g}x forward) |")
    print("|---|---|---|---|---|---|")
    for r in sorted(mine, key=lambda r: (r["n_comp"], r["mode"], r["batch"])):
        jx = next((x for x in rows if x["simulator"].startswith("Jaxley")
                   and x["device"] == device and x["dtype"] == "float32"
                   and (x["case"], x["mode"], x["batch"]) == (r["case"], r["mode"], r["batch"])),
                  None)
        ratio = "-" if jx is None else f"{r['comp_steps_per_s'] / jx['comp_steps_per_s']:.2f}"
        if jx is not None and r["mode"] == "forward":
            met = r["comp_steps_per_s"] >= GPU_TARGET_JAXLEY * jx["comp_steps_per_s"]
            ratio += " met" if met else " NOT met"
        print(f"| {r['case']} | {r['mode']} | {r['batch']} | {_fmt_rate(r['comp_steps_per_s'])}"
              f" | {'-' if jx is None else _fmt_rate(jx['comp_steps_per_s'])} | {ratio} |")


def merge_gpu(gpu_path: Path, out_path: Path) -> int:
    """Replace the GPU rows, GPU roofline and GPU float32 accuracy of `out_path` (a full run's
    JSON) with those of `gpu_path` (a --gpu-only run's JSON)."""
    gpu, full = json.loads(gpu_path.read_text()), json.loads(out_path.read_text())

    def swap(old, new):  # old's entries but the GPU ones, then new's GPU ones
        def on_gpu(x):
            return x.get("device", "cpu") == "gpu"

        return [x for x in old if not on_gpu(x)] + [x for x in new if on_gpu(x)]

    roof, g_roof = full["roofline"], gpu["roofline"]
    full["rows"] = swap(full["rows"], gpu["rows"])
    full["float32_accuracy"] = swap(full["float32_accuracy"], gpu["float32_accuracy"])
    for key in ("device_peaks", "fractions"):
        roof[key] = swap(roof[key], g_roof[key])
    roof["costs"] = {k: v for k, v in roof["costs"].items() if not k.startswith("gpu/")} | {
        k: v for k, v in g_roof["costs"].items() if k.startswith("gpu/")}
    full["meta"]["gpu_run"] = gpu["meta"]
    out_path.write_text(json.dumps(full, indent=1))
    print(f"merged the GPU results of {gpu_path} into {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
