"""Fitting learning rules to data with the replay driver (`jaxdend.plasticity.replay`).

Part A, both local rules from synthetic data (ground truth known). The cell and input of
`benchmarks/two_rules.py` (reduced pyramidal cell, AMPA + NMDA sites, clusters in both
regions, shared somatic-drive events) with `BasalHebbian` on basal and `ApicalCooperative`
on apical synapses at known parameters. `jaxdend.simulate` produces the "recording":
presynaptic trains, the somatic voltage sampled at 20 kHz, and the weights every 100 ms with
multiplicative noise (``w_obs = w (1 + NOISE * N(0, 1))``, spine-volume-like). The rule
parameters are refitted by Adam on log parameters from a start 30 % off, with the replay
driven by the trains and the somatic spikes detected in the recorded voltage (loss: mean
squared error of the weight trajectories). Identifiability: the Fisher information
``F = J^T J / sigma^2`` (J: sensitivities of the sampled weights to the log parameters,
sigma = NOISE x w) and the Hessian of the loss at the optimum; a parameter counts as
identifiable when its Cramer-Rao standard deviation (sqrt of diag F^-1, relative) is below
CR_IDENTIFIABLE. Model comparison: the swapped assignment (Hebbian on apical, cooperative on
basal) is fitted the same way; both fits are evaluated on held-out data (new input trains,
new simulation).

Part B, `GraupnerBrunel` fitted to 42 pairing protocols of slice experiments
(../shared/data/plasticity/plastyfire_paired_recordings.csv; dt_train = t_post - t_pre):
each protocol is replayed (vmapped over protocols) for a synapse starting DOWN and one UP,
the EPSP ratio follows from the two-state reading of Graupner & Brunel 2012
(`jaxdend.plasticity.two_state_ratio`), and chi^2 (errors in SEM units) is minimised by Adam
on bounded parameters from several starts (vmapped). The "cortical slices" set of Graupner &
Brunel (REFERENCES.md; beta = 0.5 and b = 5.40988 of their Table S2, not in REFERENCES.md)
is evaluated on the same protocols without refitting the rule.

Usage:
    python benchmarks/fit_rules.py [--quick] [--json PATH] [--png PATH] [--seed N]

Units: time ms, rates Hz, distances um, conductances nS, voltages mV; weights, efficacies and
EPSP ratios dimensionless.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

jax.config.update("jax_enable_x64", True)

import jaxdend as jd  # noqa: E402
from jaxdend.plasticity import (  # noqa: E402
    ApicalCooperative,
    BasalHebbian,
    GraupnerBrunel,
    neighbour_pairs,
    pairing_drive,
    pairing_ratio,
    read_pairing_protocols,
    replay,
    replay_drive,
    stack_drives,
)
from jaxdend.synapses import Input, SpikeTrains  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import best, first_and_best, write_rows, xla_temp_mb  # noqa: E402


def _load_two_rules():
    spec = importlib.util.spec_from_file_location("two_rules_for_fit", HERE / "two_rules.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


tr = _load_two_rules()

DATA = HERE.parents[1] / "shared" / "data" / "plasticity"  # ../shared next to the repository
PROTOCOLS_CSV = DATA / "plastyfire_paired_recordings.csv"

DT = tr.DT  # 0.025 ms, the simulation step
V_EVERY = 2  # somatic voltage sampled every 2 steps (20 kHz)
SAMPLE_MS = 100.0  # weights sampled every 100 ms
NOISE = 0.002  # multiplicative noise of the sampled weights (s.d., fraction of w)
START = 0.3  # relative perturbation of the start of the fit
CR_IDENTIFIABLE = 0.05 / 3  # Cramer-Rao relative s.d. below which a parameter is identifiable
CUTOFF = 40.0  # um, neighbour cutoff of ApicalCooperative (4 x its kernel length)

#: Part A, full size: the two-rules experiment (48 synapses per region, 4 s).
A_FULL = dict(tr.FULL)
#: Part A, small (tests, --quick): 24 synapses per region (twice the AMPA conductance, so
#: that the soma fires about as often), 4 clusters of 4, 2 s.
A_QUICK = dict(tr.FULL, t1=2000.0, n_per_region=24, n_clusters=4, p_clust=(0.0, 0.3, 0.6, 0.9),
               gmax_ampa=1.6)

#: True parameters (benchmarks/two_rules.py); fitted ones are perturbed, the rest fixed.
TRUE = {
    "hebbian": {"a_plus": 0.01, "a_minus": 0.0105, "tau_plus": 20.0, "tau_minus": 20.0},
    "coop": {"a_coop": 0.005, "a_dep": 0.00025, "tau_coop": 20.0, "length": 10.0},
}
#: Signs of the start perturbation (start = true x (1 + sign x START)).
SIGNS = {"hebbian": (1, -1, 1, -1), "coop": (-1, 1, 1, -1)}
UNITS = {"a_plus": "1", "a_minus": "1", "tau_plus": "ms", "tau_minus": "ms", "a_coop": "1",
         "a_dep": "1", "tau_coop": "ms", "length": "um"}
#: Parameters held at their true values (not fitted): reported with their Fisher diagonal.
FIXED = {"hebbian": {"a3_plus": 0.0, "a3_minus": 0.0, "tau_x": 101.0, "tau_y": 125.0,
                     "w_min": 0.0, "w_max": 2.0},
         "coop": {"nmda_half": 0.5, "nmda_slope": 0.1, "w_min": 0.0, "w_max": 2.0}}


def make_rule(kind: str, params: dict):
    """A rule from a parameter dict (values may be traced): kind "hebbian" or "coop"."""
    if kind == "hebbian":
        return BasalHebbian(**params)
    return ApicalCooperative(cutoff=CUTOFF, **params)


# ----------------------------------------------------------------------------- part A: data
def setup(p: dict, seed: int) -> dict:
    """The cell (with the true rules) and the synapse layout of `benchmarks/two_rules.py`."""
    cell = tr.build_cell(p["seg_um"])
    lay = tr.layout(cell, p, jax.random.key(seed))
    cell = cell.add_synapses("ampa", jd.synapses.AMPA(), lay["nodes"], p["gmax_ampa"])
    cell = cell.add_synapses("nmda", jd.synapses.NMDA(), lay["nodes"], p["gmax_nmda"])
    cell = cell.add_rule(make_rule("hebbian", TRUE["hebbian"]), ("ampa", "nmda"), "basal")
    cell = cell.add_rule(make_rule("coop", TRUE["coop"]), ("ampa", "nmda"), "apical")
    idx = {"basal": np.nonzero(lay["region"] == 0)[0], "apical": np.nonzero(lay["region"] == 1)[0]}
    return {"cell": cell, "lay": lay, "idx": idx, "p": p, "seed": seed}


def _pad(times: np.ndarray, width: int) -> np.ndarray:
    out = np.full((times.shape[0], width), np.inf)
    out[:, : times.shape[1]] = times
    return out


def record(exp: dict, seeds, noise: float = NOISE) -> list[dict]:
    """Simulate one "recording" per input seed: trains, somatic voltage, noisy weights.

    Returns one dict per seed: times (n, k) ms, post (somatic spike times detected in the
    20 kHz voltage, ms), w_true and w_obs (n_samples, n) at SAMPLE_MS, ts_w (ms).
    """
    cell, p = exp["cell"], exp["p"]
    t1 = p["t1"]
    trains = [tr.make_inputs(exp["lay"], p, s)[0] for s in seeds]
    width = max(t.shape[1] for t in trains)

    @eqx.filter_jit
    def run(c, times):
        t = SpikeTrains(times)
        sol = jd.simulate(c, [Input("ampa", t), Input("nmda", t)], t1=t1, dt=DT,
                          record_every=V_EVERY, checkpoint=False,
                          record={"v": c.probe("v", "soma"), "w": c.probe("ampa.w")})
        return sol.ts, sol["v"][:, 0], sol["w"]

    out = []
    for s, times in zip(seeds, trains):
        times = _pad(times, width)
        ts, v, w = (np.asarray(x) for x in run(cell, jnp.asarray(times)))
        post = jd.features.spike_times(ts, v, tr.SPIKE_THRESHOLD)
        k = round(SAMPLE_MS / (DT * V_EVERY))
        w_true = w[k::k]
        rng = np.random.default_rng(10_000 + s)
        w_obs = w_true * (1.0 + noise * rng.standard_normal(w_true.shape))
        out.append({"times": times, "post": post, "w_true": w_true, "w_obs": w_obs,
                    "ts_w": ts[k::k], "seed": s})
    return out


def drives_for(exp: dict, rec: dict) -> dict:
    """Merged replay drives of both regions for one recording (pairs within CUTOFF um)."""
    cell, t1 = exp["cell"], exp["p"]["t1"]
    every = round(SAMPLE_MS / DT)
    out = {}
    for region, idx in exp["idx"].items():
        pairs = neighbour_pairs(cell.comps, exp["lay"]["nodes"][idx], CUTOFF)
        out[region] = replay_drive(rec["times"][idx], t1, DT, post_times=rec["post"],
                                   pairs=pairs, record_every=every, merge_silence=True)
    return out


# ----------------------------------------------------------------------------- part A: fit
#: rule kind per region of each assignment
ASSIGNMENTS = {"correct": {"basal": "hebbian", "apical": "coop"},
               "swapped": {"basal": "coop", "apical": "hebbian"}}


def predict(z: dict, assign: dict, drives: dict) -> dict:
    """Weights at the samples (n_samples, n) per region for log parameters `z`."""
    out = {}
    for region, kind in assign.items():
        params = {k: jnp.exp(v) for k, v in z[kind].items()}
        res = replay(make_rule(kind, {**FIXED[kind], **params}), 1.0, drives[region])
        out[region] = res.w[1:]
    return out


def mse(z, assign, drives, rec, idx) -> jax.Array:
    """Mean squared error of the sampled weights over both regions (weight units^2)."""
    pred = predict(z, assign, drives)
    err = [jnp.ravel(pred[r] - rec["w_obs"][:, idx[r]]) for r in assign]
    return jnp.mean(jnp.concatenate(err) ** 2)


def adam(loss, z0, steps: int, lr: float, mode: str = "reverse"):
    """Local Adam loop (jitted scan): returns (best z, best loss, loss history).

    mode "reverse": gradient by ``jax.value_and_grad``; "forward": by ``jax.jacfwd`` (one
    forward pass carrying a tangent per parameter: no stored trajectory, cheaper for a few
    parameters and long replays).
    """
    sched = optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.02)
    opt = optax.adam(sched)
    if mode == "forward":
        jac = jax.jacfwd(lambda z: (loss(z), loss(z)), has_aux=True)

        def vg(z):
            g, val = jac(z)
            return val, g
    else:
        vg = jax.value_and_grad(loss)

    def step(carry, _):
        z, st, zb, lb = carry
        val, g = vg(z)
        better = jnp.isfinite(val) & (val < lb)
        zb = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), z, zb)
        lb = jnp.where(better, val, lb)
        g = jax.tree_util.tree_map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), g)
        upd, st = opt.update(g, st, z)
        return (optax.apply_updates(z, upd), st, zb, lb), val

    @jax.jit
    def run(z0):
        init = (z0, opt.init(z0), z0, jnp.asarray(jnp.inf))
        (z, _, zb, lb), hist = jax.lax.scan(step, init, None, length=steps)
        last = loss(z)
        better = last < lb
        zb = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), z, zb)
        return zb, jnp.minimum(lb, last), hist

    return run(z0)


def start_z(assign: dict) -> dict:
    """Log parameters of the perturbed start (true x (1 +- START))."""
    return {kind: {k: jnp.log(v * (1.0 + s * START))
                   for (k, v), s in zip(TRUE[kind].items(), SIGNS[kind])}
            for kind in set(assign.values())}


def fit_assignment(name: str, drives: dict, rec: dict, idx: dict, steps: int, lr: float):
    """Fit one assignment by Adam on log parameters; returns (z, loss, history, seconds)."""
    assign = ASSIGNMENTS[name]
    z0 = start_z(assign)
    t0 = time.perf_counter()
    z, val, hist = adam(lambda z: mse(z, assign, drives, rec, idx), z0, steps, lr)
    jax.block_until_ready(z)
    return z, float(val), np.asarray(hist), time.perf_counter() - t0


def fisher(z: dict, drives: dict, rec: dict, idx: dict, noise: float = NOISE):
    """Fisher information of the log parameters (correct assignment) and the loss Hessian.

    F = sum_i J_i J_i^T / (noise w_i)^2 over every sampled weight i (J: d w_i / d log p).
    Returns (names, F, H) with H the Hessian of the MSE loss w.r.t. the log parameters.
    """
    assign = ASSIGNMENTS["correct"]
    names = [(kind, k) for kind in ("hebbian", "coop") for k in TRUE[kind]]
    flat0 = jnp.stack([z[kind][k] for kind, k in names])

    def unflat(f):
        out = {"hebbian": {}, "coop": {}}
        for (kind, k), v in zip(names, f):
            out[kind][k] = v
        return out

    def outputs(f):
        pred = predict(unflat(f), assign, drives)
        return jnp.concatenate([jnp.ravel(pred[r]) for r in assign])

    jac = jax.jacfwd(outputs)(flat0)
    w = np.concatenate([np.ravel(rec["w_true"][:, idx[r]]) for r in assign])
    jw = np.asarray(jac) / (noise * w)[:, None]
    fim = jw.T @ jw
    hess = np.asarray(jax.hessian(lambda f: mse(unflat(f), assign, drives, rec, idx))(flat0))
    return names, fim, hess


def fixed_fisher(drives: dict, rec: dict, idx: dict, noise: float = NOISE) -> dict:
    """Fisher diagonal of the held-fixed parameters at the truth (absolute units^-2)."""
    out = {}
    for region, kind in ASSIGNMENTS["correct"].items():
        names = list(FIXED[kind])
        w_sd = noise * np.ravel(rec["w_true"][:, idx[region]])

        def outputs(vals, kind=kind, names=names, region=region):
            params = {**TRUE[kind], **dict(zip(names, vals))}
            return jnp.ravel(replay(make_rule(kind, params), 1.0, drives[region]).w[1:])

        vals = jnp.asarray([FIXED[kind][k] for k in names], float)
        jac = np.asarray(jax.jacfwd(outputs)(vals)) / w_sd[:, None]
        for k, col in zip(names, jac.T):
            out[(kind, k)] = float(col @ col)
    return out


def e2e_gradient(exp: dict, rec: dict, t1: float = 500.0) -> dict:
    """Gradient of the weight MSE through `jaxdend.simulate` (weights act on the voltage)
    vs the replay's, at the start of the fit, over the first `t1` ms of a recording.

    Through the simulation the somatic spikes are those of the perturbed cell (spike
    detection is not differentiated), so the replay is run with (a) those spikes: the two
    gradients must agree to rounding; (b) the recorded spikes, as in the fit: the fit
    direction, compared by the cosine of the angle.
    """
    cell, idx = exp["cell"], exp["idx"]
    assign = ASSIGNMENTS["correct"]
    z0 = start_z(assign)
    times = np.where(rec["times"] < t1, rec["times"], np.inf)
    n_s = round(t1 / SAMPLE_MS)
    w_obs = rec["w_obs"][:n_s]
    every = round(SAMPLE_MS / DT)
    trains = SpikeTrains(jnp.asarray(times))
    k_rule = {"basal": 0, "apical": 1}

    def with_rules(z):
        c = cell
        for region, kind in assign.items():
            params = {k: jnp.exp(v) for k, v in z[kind].items()}
            rule = make_rule(kind, {**FIXED[kind], **params})
            c = eqx.tree_at(lambda cc, i=k_rule[region]: cc.rules[i].rule, c, rule)
        return c

    def sim(z):
        c = with_rules(z)
        sol = jd.simulate(c, [Input("ampa", trains), Input("nmda", trains)], t1=t1, dt=DT,
                          record_every=every, record={"w": c.probe("ampa.w"),
                                                      "v": c.probe("v", "soma")})
        return sol["w"][1:], sol["v"][:, 0]

    def loss_sim(z):
        w, _ = sim(z)
        err = [jnp.ravel(w[:, idx[r]] - w_obs[:, idx[r]]) for r in assign]
        return jnp.mean(jnp.concatenate(err) ** 2)

    t0 = time.perf_counter()
    g_sim = jax.jit(jax.grad(loss_sim))(z0)
    t_sim = time.perf_counter() - t0
    # the somatic spikes of the perturbed cell (record the voltage at every step)
    c0 = with_rules(z0)
    sol = jd.simulate(c0, [Input("ampa", trains), Input("nmda", trains)], t1=t1, dt=DT,
                      record={"v": c0.probe("v", "soma")})
    own = jd.features.spike_times(np.asarray(sol.ts), np.asarray(sol["v"][:, 0]),
                                  tr.SPIKE_THRESHOLD)
    rec_cut = dict(rec, w_obs=w_obs)

    def replay_grad(post):
        r = dict(rec_cut, times=times, post=post[post < t1])
        drives = {}
        for region, ix in idx.items():
            pairs = neighbour_pairs(cell.comps, exp["lay"]["nodes"][ix], CUTOFF)
            drives[region] = replay_drive(times[ix], t1, DT, post_times=r["post"], pairs=pairs,
                                          record_every=every, merge_silence=True)
        return jax.grad(lambda z: mse(z, assign, drives, r, idx))(z0)

    def flat(g):
        return np.array([float(g[kind][k]) for kind in ("hebbian", "coop") for k in TRUE[kind]])

    gs, ga, gb = flat(g_sim), flat(replay_grad(own)), flat(replay_grad(rec["post"]))
    return {"t1_ms": t1, "grad_simulate_s": t_sim,
            "max_rel_diff_own_spikes": float(np.max(np.abs(ga - gs)) / np.max(np.abs(gs))),
            "cosine_recorded_spikes": float(gs @ gb / np.linalg.norm(gs) / np.linalg.norm(gb)),
            "somatic_spikes_perturbed": int(own.size),
            "somatic_spikes_recorded": int(np.sum(rec["post"] < t1))}


def replay_costs(exp: dict, rec: dict, repeats: int = 3) -> list[dict]:
    """Forward and value-and-gradient cost of replaying the whole recording (both rules),
    with ordinary steps (every dt) and with merged silent stretches, per checkpoint policy:
    best wall time of `repeats` jitted calls and XLA's temporary memory (MB)."""
    cell, t1, idx = exp["cell"], exp["p"]["t1"], exp["idx"]
    every = round(SAMPLE_MS / DT)
    assign = ASSIGNMENTS["correct"]
    z_true = {k: {n: jnp.asarray(math.log(v)) for n, v in TRUE[k].items()} for k in TRUE}
    out = []
    for merged in (False, True):
        drives = {}
        for region, ix in idx.items():
            pairs = neighbour_pairs(cell.comps, exp["lay"]["nodes"][ix], CUTOFF)
            drives[region] = replay_drive(rec["times"][ix], t1, DT, post_times=rec["post"],
                                          pairs=pairs, record_every=every,
                                          merge_silence=merged)
        n_sched = sum(int(d.n_blocks * d.block_size) for d in drives.values())
        for ckpt in (True, "nested"):
            def loss(z, drives=drives, ckpt=ckpt):
                err = []
                for region, kind in assign.items():
                    params = {k: jnp.exp(v) for k, v in z[kind].items()}
                    res = replay(make_rule(kind, {**FIXED[kind], **params}), 1.0,
                                 drives[region], checkpoint=ckpt)
                    err.append(jnp.ravel(res.w[1:] - rec["w_obs"][:, idx[region]]))
                return jnp.mean(jnp.concatenate(err) ** 2)

            fwd = jax.jit(loss)
            vg = jax.jit(jax.value_and_grad(loss)).lower(z_true).compile()
            first, f_s, _ = first_and_best(lambda f=fwd: f(z_true), repeats)
            g_s, _ = best(lambda g=vg: g(z_true), repeats)
            out.append({"steps": "merged" if merged else "every dt",
                        "scan_steps": n_sched, "checkpoint": str(ckpt),
                        "compile_and_run_s": first, "forward_s": f_s, "grad_s": g_s,
                        "xla_temp_MB_grad": xla_temp_mb(vg)})
    return out


def run_part_a(p: dict, seed: int, steps: int, lr: float, say=print, e2e: bool = False) -> dict:
    """Generate data, fit both assignments, identifiability and held-out comparison."""
    t_start = time.perf_counter()
    exp = setup(p, seed)
    t0 = time.perf_counter()
    train, test = record(exp, [seed, seed + 1])
    t_sim = time.perf_counter() - t0
    say(f"  simulated 2 x {p['t1'] / 1000:g} s ({exp['cell'].n} nodes, "
        f"{len(exp['lay']['nodes'])} synapses): {t_sim:.1f} s; somatic spikes "
        f"{train['post'].size} (train), {test['post'].size} (held out)")
    idx = exp["idx"]
    d_train, d_test = drives_for(exp, train), drives_for(exp, test)
    noise_floor = {n: float(np.mean((r["w_obs"] - r["w_true"]) ** 2))
                   for n, r in (("train", train), ("test", test))}
    fits = {}
    for name in ASSIGNMENTS:
        z, val, hist, sec = fit_assignment(name, d_train, train, idx, steps, lr)
        held = float(mse(z, ASSIGNMENTS[name], d_test, test, idx))
        fits[name] = {"z": z, "train_mse": val, "test_mse": held, "history": hist, "fit_s": sec}
        say(f"  {name:8s} fit {sec:5.1f} s: train MSE {val:.3e}, held-out MSE {held:.3e}")
    names, fim, hess = fisher(fits["correct"]["z"], d_train, train, idx)
    cov = np.linalg.inv(fim)
    cr = np.sqrt(np.diag(cov))
    evals, evecs = np.linalg.eigh(fim)
    h_evals = np.linalg.eigvalsh(hess)
    e2e_res, costs = None, None
    if e2e:
        costs = replay_costs(exp, train)
        for c in costs:
            say(f"  replay of the recording, {c['steps']:8s} ({c['scan_steps']:6d} scan steps), "
                f"checkpoint={c['checkpoint']:6s}: forward {c['forward_s']:.3f} s, value+grad "
                f"{c['grad_s']:.3f} s, XLA temp {c['xla_temp_MB_grad'] or 0:.1f} MB")
        e2e_res = e2e_gradient(exp, train, t1=min(1000.0, p["t1"] / 2))
        say(f"  gradient through simulate ({e2e_res['t1_ms']:g} ms, "
            f"{e2e_res['grad_simulate_s']:.1f} s) vs replay: max rel. diff "
            f"{e2e_res['max_rel_diff_own_spikes']:.1e} (same spikes), cosine "
            f"{e2e_res['cosine_recorded_spikes']:.4f} (recorded spikes)")
    zf = fits["correct"]["z"]
    rows = []
    for i, (kind, k) in enumerate(names):
        true = TRUE[kind][k]
        start = float(np.exp(start_z(ASSIGNMENTS["correct"])[kind][k]))
        fitted = float(np.exp(zf[kind][k]))
        rows.append({"rule": "BasalHebbian" if kind == "hebbian" else "ApicalCooperative",
                     "param": k, "unit": UNITS[k], "true": true, "start": start,
                     "fitted": fitted, "rel_err": fitted / true - 1.0, "fitted_": True,
                     "fisher_diag": float(fim[i, i]), "hessian_diag": float(hess[i, i]),
                     "cr_rel_sd": float(cr[i]), "identifiable": bool(cr[i] < CR_IDENTIFIABLE)})
    for (kind, k), f in fixed_fisher(d_train, train, idx).items():
        rows.append({"rule": "BasalHebbian" if kind == "hebbian" else "ApicalCooperative",
                     "param": k, "unit": "", "true": FIXED[kind][k], "start": None,
                     "fitted": None, "rel_err": None, "fitted_": False, "fisher_diag": f,
                     "hessian_diag": None, "cr_rel_sd": None, "identifiable": bool(f > 0)})
    corr = cov / np.outer(cr, cr)
    return {
        "params": rows, "names": [f"{a}.{b}" for a, b in names],
        "fisher_eigenvalues": evals.tolist(), "fisher_eigenvectors": evecs.T.tolist(),
        "hessian_eigenvalues": h_evals.tolist(), "cr_correlation": corr.tolist(),
        "fits": {n: {k: v for k, v in f.items() if k != "z"} for n, f in fits.items()},
        "z": {n: f["z"] for n, f in fits.items()},
        "noise_floor": noise_floor,
        "ratio_heldout": fits["swapped"]["test_mse"] / fits["correct"]["test_mse"],
        "somatic_spikes": {"train": int(train["post"].size), "test": int(test["post"].size)},
        "sim_s": t_sim, "wall_s": time.perf_counter() - t_start, "e2e": e2e_res,
        "replay_costs": costs,
        "_data": {"train": train, "test": test, "exp": exp, "d_test": d_test},
    }


# ----------------------------------------------------------------------------- part B
#: "cortical slices" set of Graupner & Brunel 2012 (REFERENCES.md; theta_d, theta_p, rho*
#: as in their Table S2; beta and b from Table S2, not listed in REFERENCES.md).
GB_CORTICAL = {"tau_ca": 22.6936, "c_pre": 0.5617539, "c_post": 1.23964, "delay": 4.6098,
               "theta_d": 1.0, "theta_p": 1.3, "gamma_d": 331.909, "gamma_p": 725.085,
               "tau": 346.3615e3, "rho_star": 0.5}
GB_READOUT = {"beta": 0.5, "b": 5.40988}
#: free GB parameters: (lower, upper, log scale) bounds, units in GB_UNITS
GB_BOUNDS = {"tau_ca": (5.0, 40.0, True), "c_pre": (0.05, 5.0, True),
             "c_post": (0.05, 5.0, True), "delay": (0.5, 25.0, True),
             "gamma_d": (10.0, 5000.0, True), "gamma_p": (10.0, 5000.0, True),
             "tau": (10e3, 2000e3, True), "beta": (0.05, 0.95, False), "b": (1.2, 20.0, True)}
GB_UNITS = {"tau_ca": "ms", "c_pre": "1", "c_post": "1", "delay": "ms", "gamma_d": "1",
            "gamma_p": "1", "tau": "ms", "beta": "1", "b": "1", "theta_d": "1",
            "theta_p": "1", "rho_star": "1"}
GB_DT = 0.5  # ms
GB_DRIVE = {"settle": 100.0, "max_step": 500.0, "tail": 500.0, "start": 100.0}
GB_BUCKETS = 4  # protocols are replayed in groups of similar length (less padding)


def to_bounded(z: dict) -> dict:
    """Unconstrained z -> parameters within GB_BOUNDS (sigmoid, in log space where set)."""
    out = {}
    for k, v in z.items():
        lo, hi, log = GB_BOUNDS[k]
        a, b = (math.log(lo), math.log(hi)) if log else (lo, hi)
        y = a + (b - a) * jax.nn.sigmoid(v)
        out[k] = jnp.exp(y) if log else y
    return out


def from_bounded(params: dict) -> dict:
    """Inverse of `to_bounded` for concrete values inside the bounds."""
    out = {}
    for k, x in params.items():
        lo, hi, log = GB_BOUNDS[k]
        a, b = (math.log(lo), math.log(hi)) if log else (lo, hi)
        f = ((math.log(x) if log else x) - a) / (b - a)
        f = min(max(f, 1e-6), 1 - 1e-6)
        out[k] = jnp.asarray(math.log(f / (1 - f)))
    return out


def gb_rule(params: dict) -> GraupnerBrunel:
    """GraupnerBrunel with efficacy in [0, 1] from free (maybe traced) + fixed parameters."""
    rule_p = {k: v for k, v in params.items() if k not in ("beta", "b")}
    full = {**GB_CORTICAL, **rule_p}
    return GraupnerBrunel(**{k: jnp.asarray(v, float) for k, v in full.items()},
                          w_min=0.0, w_max=1.0)


def buckets(protocols, dt: float = GB_DT, n_buckets: int = GB_BUCKETS, *, merge=True,
            **kwargs):
    """Protocol drives stacked in groups of similar schedule length.

    The replay cost is set by the longest schedule of a stack, so protocols are sorted by
    length and split into `n_buckets` contiguous groups minimising the padded total.

    Returns:
        list of (protocol indices, stacked drive).
    """
    kw = {**GB_DRIVE, **kwargs}
    if not merge:  # ordinary steps everywhere (checks the merged schedule)
        kw["settle"] = 1e9
    drives = [pairing_drive(p, dt, **kw) for p in protocols]
    length = np.array([int(np.sum(np.asarray(d.step_k) >= 0)) for d in drives])
    order = np.argsort(length, kind="stable")
    ls = length[order]
    n, k_max = len(ls), max(1, min(n_buckets, len(ls)))
    cost = np.full((k_max + 1, n + 1), np.inf)
    cost[0, 0] = 0.0
    arg = np.zeros((k_max + 1, n + 1), int)
    for k in range(1, k_max + 1):
        for j in range(1, n + 1):
            c = cost[k - 1, :j] + (j - np.arange(j)) * ls[j - 1]
            arg[k, j] = int(np.argmin(c))
            cost[k, j] = c[arg[k, j]]
    cuts, j = [], n
    for k in range(k_max, 0, -1):
        i = arg[k, j]
        if j > i:
            cuts.append((i, j))
        j = i
    return [(order[i:j], stack_drives([drives[g] for g in order[i:j]])) for i, j in cuts[::-1]]


def gb_predict(params: dict, groups, n: int) -> jax.Array:
    """Predicted EPSP ratios (n,) of the protocols in `groups` (from `buckets`)."""
    rule = gb_rule(params)
    out = jnp.zeros(n)
    for idx, d in groups:
        out = out.at[idx].set(pairing_ratio(rule, d, params["beta"], params["b"]))
    return out


def chi2(pred, y, sem) -> jax.Array:
    """Sum of squared errors in SEM units."""
    return jnp.sum(((pred - y) / sem) ** 2)


def gb_summary(pred, y, sem) -> dict:
    """chi^2/N, fractions within 1 and 2 SEM, RMSE of the ratio."""
    pred, y, sem = (np.asarray(a, float) for a in (pred, y, sem))
    z = np.abs(pred - y) / sem
    return {"chi2_per_n": float(np.mean(z**2)), "within_1sem": float(np.mean(z <= 1)),
            "within_2sem": float(np.mean(z <= 2)),
            "rmse": float(np.sqrt(np.mean((pred - y) ** 2)))}


def gb_reference() -> dict:
    """The cortical set as free-parameter values (beta, b included)."""
    return {**{k: GB_CORTICAL[k] for k in GB_BOUNDS if k in GB_CORTICAL}, **GB_READOUT}


def gb_starts(n_starts: int, seed: int) -> list[dict]:
    """Start points: the cortical set, the DP set, then the cortical set with every
    parameter scaled by exp(N(0, 0.5^2)) (clipped into the bounds)."""
    starts = [gb_reference(),
              {"tau_ca": 20.0, "c_pre": 1.0, "c_post": 2.0, "delay": 13.7, "gamma_d": 200.0,
               "gamma_p": 321.808, "tau": 150e3, "beta": 0.5, "b": 5.0}]
    rng = np.random.default_rng(seed)
    while len(starts) < n_starts:
        s = {}
        for k, v in gb_reference().items():
            lo, hi, _ = GB_BOUNDS[k]
            s[k] = float(np.clip(v * np.exp(0.5 * rng.standard_normal()), lo * 1.01, hi * 0.99))
        starts.append(s)
    return starts[:n_starts]


def fit_gb(protocols, steps: tuple[int, int], lr: float, n_starts: int, seed: int = 0,
           dt: float = GB_DT):
    """Two-stage Adam fit of GB to the protocols: `steps[0]` steps from every start (vmapped),
    then `steps[1]` more from the best. Gradients in forward mode. Returns a dict."""
    y = jnp.asarray([p.ratio for p in protocols])
    sem = jnp.asarray([p.sem for p in protocols])
    groups = buckets(protocols, dt)
    n = len(protocols)
    starts = gb_starts(n_starts, seed)
    z0 = {k: jnp.stack([from_bounded(s)[k] for s in starts]) for k in GB_BOUNDS}

    def loss(z):
        return chi2(gb_predict(to_bounded(z), groups, n), y, sem)

    t0 = time.perf_counter()
    zb, lb, hist1 = jax.vmap(lambda z: adam(loss, z, steps[0], lr, "forward"))(z0)
    jax.block_until_ready(zb)
    best = int(np.nanargmin(np.asarray(lb)))
    z1 = {k: v[best] for k, v in zb.items()}
    if steps[1] > 0:
        z_best, l_best, hist2 = adam(loss, z1, steps[1], lr / 2, "forward")
    else:
        z_best, l_best, hist2 = z1, lb[best], jnp.zeros(0)
    jax.block_until_ready(z_best)
    sec = time.perf_counter() - t0
    params = {k: float(v) for k, v in to_bounded(z_best).items()}
    pred = np.asarray(gb_predict(to_bounded(z_best), groups, n))
    return {"params": params, "pred": pred, "chi2_starts": np.asarray(lb).tolist(),
            "chi2": float(l_best), "best_start": best,
            "history": np.concatenate([np.asarray(hist1[best]), np.asarray(hist2)]),
            "fit_s": sec, "starts": starts, "groups": groups, "z": z_best}


def run_part_b(steps: tuple[int, int], lr: float, n_starts: int, protocols=None, seed: int = 0,
               say=print) -> dict:
    """Fit GB to the pairing protocols and evaluate the cortical reference set."""
    if protocols is None:
        protocols = read_pairing_protocols(PROTOCOLS_CSV)
    n = len(protocols)
    y = np.asarray([p.ratio for p in protocols])
    sem = np.asarray([p.sem for p in protocols])
    fit = fit_gb(protocols, steps, lr, n_starts, seed)
    ref_params = gb_reference()
    t0 = time.perf_counter()
    ref = np.asarray(gb_predict(ref_params, fit["groups"], n))
    t_fwd = time.perf_counter() - t0
    # checks of the replay schedule at the fitted and reference parameters: a 4x smaller
    # step, and ordinary steps everywhere instead of merged silent stretches
    checks = {}
    for name, kw in (("dt_over_4", {"dt": GB_DT / 4}), ("unmerged", {"merge": False})):
        g = buckets(protocols, **kw)
        checks[name] = {"fit": float(np.max(np.abs(np.asarray(gb_predict(fit["params"], g, n))
                                                   - fit["pred"]))),
                        "reference": float(np.max(np.abs(np.asarray(gb_predict(ref_params, g, n))
                                                         - ref)))}
    return {
        "fit": gb_summary(fit["pred"], y, sem), "reference": gb_summary(ref, y, sem),
        "params": fit["params"], "chi2_starts": fit["chi2_starts"],
        "best_start": fit["best_start"], "fit_s": fit["fit_s"], "forward_s": t_fwd,
        "n_protocols": n, "n_starts": n_starts, "steps": list(steps), "checks": checks,
        "protocols": [{"protocol_id": p.protocol_id, "frequency_Hz": p.frequency,
                       "delay_ms": p.delay, "n_pairings": p.n_pairings, "n_trains": p.n_trains,
                       "period_s": p.period, "mean": p.ratio, "sem": p.sem,
                       "fit": float(a), "reference": float(r), "source": p.reference}
                      for p, a, r in zip(protocols, fit["pred"], ref)],
        "_history": fit["history"],
    }


# ----------------------------------------------------------------------------- output
def table_a(res: dict) -> str:
    """Markdown table of part A's parameters, then the model comparison."""
    lines = ["| rule | parameter | true | start | fitted | rel. error | CR s.d. | Fisher diag |"
             " identifiable |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["params"]:
        if r["fitted_"]:
            lines.append(f"| {r['rule']} | {r['param']} ({r['unit']}) | {r['true']:.5g} | "
                         f"{r['start']:.5g} | {r['fitted']:.5g} | {100 * r['rel_err']:+.2f} % | "
                         f"{100 * r['cr_rel_sd']:.2f} % | {r['fisher_diag']:.3g} | "
                         f"{'yes' if r['identifiable'] else 'no'} |")
        else:
            lines.append(f"| {r['rule']} | {r['param']} (fixed) | {r['true']:.5g} | - | - | - | - "
                         f"| {r['fisher_diag']:.3g} | {'yes' if r['identifiable'] else 'no'} |")
    f = res["fits"]
    lines += ["", "| assignment | train MSE | held-out MSE | fit s |", "|---|---|---|---|"]
    for n in ASSIGNMENTS:
        lines.append(f"| {n} | {f[n]['train_mse']:.3e} | {f[n]['test_mse']:.3e} | "
                     f"{f[n]['fit_s']:.1f} |")
    lines.append(f"\nheld-out MSE swapped / correct: {res['ratio_heldout']:.1f}; noise floor "
                 f"(MSE of the noise) train {res['noise_floor']['train']:.3e}, held out "
                 f"{res['noise_floor']['test']:.3e}")
    lines.append("Fisher eigenvalues (log parameters): "
                 + ", ".join(f"{v:.3g}" for v in res["fisher_eigenvalues"]))
    lines.append("loss Hessian eigenvalues (log parameters): "
                 + ", ".join(f"{v:.3g}" for v in res["hessian_eigenvalues"]))
    return "\n".join(lines)


def table_b(res: dict) -> str:
    """Markdown tables of part B: per protocol, summary, parameters."""
    lines = ["| protocol | f Hz | delay ms | pairings x trains | data | fit | cortical set |",
             "|---|---|---|---|---|---|---|"]
    for r in res["protocols"]:
        lines.append(f"| {r['protocol_id']} | {r['frequency_Hz']:g} | {r['delay_ms']:+g} | "
                     f"{r['n_pairings']} x {r['n_trains']} | {r['mean']:.3f} +- {r['sem']:.3f} | "
                     f"{r['fit']:.3f} | {r['reference']:.3f} |")
    lines += ["", "| model | chi2/N | within 1 SEM | within 2 SEM | RMSE |",
              "|---|---|---|---|---|"]
    for name, key in (("GB fitted", "fit"), ("GB cortical set (no refit)", "reference")):
        s = res[key]
        lines.append(f"| {name} | {s['chi2_per_n']:.2f} | {100 * s['within_1sem']:.0f} % | "
                     f"{100 * s['within_2sem']:.0f} % | {s['rmse']:.3f} |")
    lines.append("")
    lines.append("fitted: " + ", ".join(
        f"{k} {v:.4g}" + ("" if GB_UNITS[k] == "1" else f" {GB_UNITS[k]}")
        for k, v in res["params"].items()))
    c = res["checks"]
    lines.append(f"chi2 per start (stage 1): {', '.join(f'{x:.1f}' for x in res['chi2_starts'])}"
                 f"; fit {res['fit_s']:.1f} s; largest change of a ratio with dt/4: fit "
                 f"{c['dt_over_4']['fit']:.4f}, reference {c['dt_over_4']['reference']:.4f}; "
                 f"without merged steps: fit {c['unmerged']['fit']:.2e}, reference "
                 f"{c['unmerged']['reference']:.2e}")
    return "\n".join(lines)


def plot(res_a: dict, res_b: dict, path: Path) -> None:
    """Weight trajectories (data vs fit, held out), held-out losses, GB per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 8.5))
    gs = fig.add_gridspec(2, 3)
    ax0 = fig.add_subplot(gs[0, 0])
    ax1 = fig.add_subplot(gs[0, 1])
    ax2 = fig.add_subplot(gs[0, 2])
    ax3 = fig.add_subplot(gs[1, :])
    data = res_a["_data"]
    test, exp = data["test"], data["exp"]
    pred = {n: predict(res_a["z"][n], ASSIGNMENTS[n], data["d_test"]) for n in ASSIGNMENTS}
    t_s = test["ts_w"] / 1000.0
    for ax, region in ((ax0, "basal"), (ax1, "apical")):
        idx = exp["idx"][region]
        dw = test["w_true"][-1, idx] - 1.0
        pick = idx[np.argsort(dw)[[-1, -2, -3, 0]]]
        for j, i in enumerate(pick):
            col = f"C{j}"
            ax.plot(t_s, test["w_obs"][:, i], ".", color=col, ms=4)
            k = int(np.nonzero(idx == i)[0][0])
            ax.plot(t_s, np.asarray(pred["correct"][region])[:, k], "-", color=col, lw=1.5)
            ax.plot(t_s, np.asarray(pred["swapped"][region])[:, k], ":", color=col, lw=1.5)
        ax.set_title(f"{region}, held-out trains: data (dots),\ncorrect fit (solid), swapped "
                     "fit (dotted)", fontsize=10)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("weight")
    f = res_a["fits"]
    names = list(ASSIGNMENTS)
    ax2.bar(names, [f[n]["test_mse"] for n in names], color=["tab:green", "tab:red"])
    ax2.axhline(res_a["noise_floor"]["test"], color="0.4", ls="--", label="noise floor")
    ax2.set_yscale("log")
    ax2.set_ylabel("held-out MSE of weights")
    ax2.set_title(f"swapped / correct = {res_a['ratio_heldout']:.1f}")
    ax2.legend()
    prot = res_b["protocols"]
    x = np.arange(len(prot))
    ax3.errorbar(x, [r["mean"] for r in prot], yerr=[r["sem"] for r in prot], fmt="o",
                 color="k", capsize=2, label="data (mean +- SEM)")
    ax3.plot(x, [r["fit"] for r in prot], "s", color="tab:blue",
             label=f"GB fitted (chi2/N {res_b['fit']['chi2_per_n']:.2f})")
    ax3.plot(x, [r["reference"] for r in prot], "^", color="tab:orange", mfc="none",
             label=f"GB cortical set (chi2/N {res_b['reference']['chi2_per_n']:.2f})")
    ax3.axhline(1.0, color="0.6", lw=0.8)
    ax3.set_xticks(x, [f"{r['protocol_id']}\n{r['frequency_Hz']:g}Hz {r['delay_ms']:+g}"
                       for r in prot], rotation=90, fontsize=7)
    ax3.set_ylabel("EPSP ratio after / before")
    ax3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rows_of(res_a: dict, res_b: dict, quick: bool) -> list[dict]:
    """JSON rows: part A parameters and model comparison, part B protocols and summary."""
    rows = []
    for r in res_a["params"]:
        rows.append({"part": "A_parameter", **{k: v for k, v in r.items() if k != "fitted_"},
                     "fitted_free": r["fitted_"]})
    for n, f in res_a["fits"].items():
        rows.append({"part": "A_model", "assignment": n, "train_mse": f["train_mse"],
                     "heldout_mse": f["test_mse"], "fit_s": f["fit_s"]})
    for c in res_a["replay_costs"] or []:
        rows.append({"part": "A_replay_cost", **c})
    rows.append({"part": "A_summary", "ratio_heldout_swapped_over_correct": res_a["ratio_heldout"],
                 "noise_floor_train": res_a["noise_floor"]["train"],
                 "noise_floor_heldout": res_a["noise_floor"]["test"], "noise": NOISE,
                 "somatic_spikes": res_a["somatic_spikes"], "sim_s": res_a["sim_s"],
                 "wall_s": res_a["wall_s"], "names": res_a["names"],
                 "fisher_eigenvalues": res_a["fisher_eigenvalues"],
                 "fisher_eigenvectors": res_a["fisher_eigenvectors"],
                 "hessian_eigenvalues": res_a["hessian_eigenvalues"],
                 "cr_correlation": res_a["cr_correlation"], "e2e_gradient": res_a["e2e"],
                 "quick": quick})
    for r in res_b["protocols"]:
        rows.append({"part": "B_protocol", **r})
    for key in ("fit", "reference"):
        rows.append({"part": "B_summary", "model": key, **res_b[key]})
    rows.append({"part": "B_params", **res_b["params"], "chi2_starts": res_b["chi2_starts"],
                 "fit_s": res_b["fit_s"], "forward_s": res_b["forward_s"],
                 "checks": res_b["checks"], "steps": res_b["steps"],
                 "n_starts": res_b["n_starts"], "dt_ms": GB_DT, **GB_DRIVE})
    return rows


#: Fit settings: (part A Adam steps, lr), (part B steps, lr, starts).
SETTINGS = {"full": {"a": (800, 0.05), "b": ((100, 300), 0.1, 8)},
            "quick": {"a": (400, 0.05), "b": ((30, 30), 0.1, 2)}}


def main(argv=None):
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (< 2 min)")
    ap.add_argument("--json", default=str(HERE / "results" / "fit_rules.json"))
    ap.add_argument("--png", default=str(HERE / "results" / "fit_rules.png"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t_all = time.perf_counter()
    mode = "quick" if args.quick else "full"
    p = A_QUICK if args.quick else A_FULL
    print(f"Part A: both rules from synthetic data ({p['n_per_region']} synapses per region, "
          f"{p['t1'] / 1000:g} s, noise {100 * NOISE:g} %)")
    steps, lr = SETTINGS[mode]["a"]
    res_a = run_part_a(p, args.seed, steps, lr, e2e=True)
    print(table_a(res_a))
    print("\nPart B: Graupner-Brunel fitted to the pairing protocols")
    steps, lr, starts = SETTINGS[mode]["b"]
    protocols = read_pairing_protocols(PROTOCOLS_CSV)
    res_b = run_part_b(steps, lr, starts, protocols, args.seed)
    print(table_b(res_b))
    rows = rows_of(res_a, res_b, args.quick)
    rows.append({"part": "timing", "wall_s": time.perf_counter() - t_all, "mode": mode})
    write_rows(rows, args.json)
    Path(args.png).parent.mkdir(parents=True, exist_ok=True)
    plot(res_a, res_b, Path(args.png))
    print(f"wrote {args.png}; total {time.perf_counter() - t_all:.1f} s")


if __name__ == "__main__":
    main()
