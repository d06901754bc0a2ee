"""Two plasticity rules in one cell: basal Hebbian vs apical cooperative, in silico.

The experiment of Wright, Hedrick & Komiyama (2025, Science 388:322), in a reduced
pyramidal cell: basal spines potentiate with their coincidence with the cell's own action
potentials, apical spines with the co-activity of their neighbours (within ~10 um), and
blocking somatic spikes removes basal but not apical potentiation.

Design (the same input statistics in both regions; only the rule differs):

* 48 basal and 48 apical synapses (AMPA 0.8 nS + NMDA 0.1 nS at each site, one weight per
  synapse), per region 24 dispersed and 24 in 6 clusters of 4 within a 5 um radius along
  the dendrite; 8 um segments so that 10 um neighbourhoods are resolved.
* Every presynaptic train mixes three independent sources at the same mean rate (8 Hz):
  shared "somatic-drive" events (4 Hz; synapse i joins each with probability
  ``p_soma[i]`` in [0, 0.8], balanced against cluster membership; the basal ones together
  make the soma fire), private cluster events (3 Hz per cluster; each member of cluster c
  joins with probability ``p_clust[c]``, from 0 = close but asynchronous to 0.9; 2 ms
  jitter) and Poisson background making up the rest of the rate.
* Basal synapses follow `BasalHebbian` (default amplitudes), apical ones `ApicalCooperative`
  (a_coop and a_dep a quarter of their defaults, so that the most co-active synapses stay
  below w_max = 2 within the run; kernel length 10 um, default cutoff 40 um);
  conditions: control, all Na channels off (as intracellular QX-314), Na off in soma and
  axon only, and a hyperpolarising somatic current.

Measured per synapse: coincidence with somatic spikes (fraction of its presynaptic spikes
followed within 20 ms by a somatic spike), co-activity with neighbours within 10 um (sum
over those neighbours of the event co-occurrence rate, |dt| <= 20 ms, normalised by the
geometric mean of the two rates, in the spirit of the paper's analysis), and the weight
change dw. Reported:
Pearson and Spearman correlations of dw with both measures per region, and the ratio of mean
potentiation (blocked / control) per region.

Usage:
    python benchmarks/two_rules.py [--quick] [--json PATH] [--png PATH] [--seed N]

Units: time ms, rates Hz, distances um, conductances nS, currents nA, voltages mV.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxdend as jd  # noqa: E402
from jaxdend.morphology import path_distance  # noqa: E402
from jaxdend.plasticity import ApicalCooperative, BasalHebbian  # noqa: E402
from jaxdend.synapses import AMPA, NMDA, Input, SpikeTrains, place  # noqa: E402

HERE = Path(__file__).resolve().parent
DT = 0.025  # ms
RECORD_EVERY = 4  # somatic voltage every 0.1 ms
SPIKE_THRESHOLD = -20.0  # mV, as the rules' somatic spike detector
WINDOW = 20.0  # ms, coincidence / co-occurrence window
NEIGHBOUR_UM = 10.0  # um, neighbourhood of the co-activity measure

#: Default parameters of the experiment (full run).
FULL = {
    "t1": 4000.0,  # ms of simulated time
    "n_per_region": 48,  # synapses per region (basal, apical)
    "n_clusters": 6,  # clusters per region
    "cluster_size": 4,  # synapses per cluster
    "cluster_radius": 5.0,  # um
    "rate": 8.0,  # Hz, mean presynaptic rate of every synapse
    "f_soma": 4.0,  # Hz, rate of the shared somatic-drive events
    "f_clust": 3.0,  # Hz, rate of the private events of each cluster
    "jitter": 2.0,  # ms, s.d. of spike times around an event
    "p_soma_max": 0.8,  # largest probability to join a somatic-drive event
    "p_clust": (0.0, 0.2, 0.4, 0.6, 0.8, 0.9),  # per cluster
    "gmax_ampa": 0.8,  # nS
    "gmax_nmda": 0.1,  # nS
    "i_bias": 0.0,  # nA, tonic somatic current (control)
    "i_hyper": -0.3,  # nA, tonic somatic current of the hyperpolarised condition
    "seg_um": 8.0,  # um, target segment length of the dendrites
    "a_plus": 0.01,  # BasalHebbian potentiation per pairing (its default; a_minus = 1.05 x)
    "a_coop": 0.005,  # ApicalCooperative (a quarter of its default 0.02; a_dep = a_coop / 20)
}
#: Smaller run (tests, notebook under JAXDEND_SMALL=1).
QUICK = dict(FULL, t1=2000.0)


# ----------------------------------------------------------------------------- the cell
def build_cell(seg_um: float = 8.0) -> jd.Cell:
    """Reduced pyramidal cell with the demo's Pospischil channels (36 degC), ~`seg_um` um
    segments in the dendrites (so that 10 um neighbourhoods are resolved)."""
    from jaxdend._demo import DEMO_DENSITIES as d

    def nseg(i, sec):
        return 1 if i == 0 else max(1, math.ceil(sec.length / seg_um)) | 1

    comps = jd.discretize(jd.reduced_pyramidal(), nseg=nseg)
    cell = jd.Cell(comps, cm=1.0, ra=150.0, celsius=36.0, v_init=-70.0)
    cell = cell.insert(jd.channels.Leak(g=d["g_l"], e=-70.0))
    cell = cell.insert(jd.channels.PospischilNa(g_na=d["dend_g_na"]))
    cell = cell.insert(jd.channels.PospischilKd(g_k=d["dend_g_k"]))
    axo = ["soma", "axon"]
    cell = cell.insert(jd.channels.PospischilNa(g_na=d["soma_g_na"]), where=axo)
    cell = cell.insert(jd.channels.PospischilKd(g_k=d["soma_g_k"]), where=axo)
    return cell.insert(jd.channels.PospischilM(g_k=d["soma_g_m"]), where=axo)


def layout(cell, p: dict, key) -> dict:
    """Synapse sites and labels: per region `n_clusters` clusters then dispersed synapses.

    Returns a dict with nodes (n,), region (n,) 0 basal / 1 apical, cluster (n,) global
    cluster id or -1, and dist (n, n) path distances between synapses in um.
    """
    n, k, m = p["n_per_region"], p["n_clusters"], p["cluster_size"]
    nodes, region, cluster = [], [], []
    keys = jax.random.split(key, 4)
    for r, name in enumerate(("basal", "apical")):
        cl = place(cell, k * m, name, key=keys[2 * r], clusters=k,
                   cluster_radius=p["cluster_radius"])
        disp = place(cell, n - k * m, name, key=keys[2 * r + 1])
        nodes += [cl, disp]
        region += [np.full(n, r)]
        # place() assigns cluster members round robin: synapse j is in cluster j % k
        cluster += [r * k + np.arange(k * m) % k, np.full(n - k * m, -1)]
    nodes = np.concatenate(nodes).astype(np.int64)
    uniq, inv = np.unique(nodes, return_inverse=True)
    dd = np.stack([path_distance(cell.comps, int(u))[uniq] for u in uniq])
    return {"nodes": nodes, "region": np.concatenate(region), "cluster": np.concatenate(cluster),
            "dist": dd[inv][:, inv]}


def add_synapses(cell, lay: dict, p: dict) -> jd.Cell:
    """AMPA + NMDA at every site; BasalHebbian on basal, ApicalCooperative on apical ones."""
    cell = cell.add_synapses("ampa", AMPA(), lay["nodes"], p["gmax_ampa"])
    cell = cell.add_synapses("nmda", NMDA(), lay["nodes"], p["gmax_nmda"])
    basal = BasalHebbian(a_plus=p["a_plus"], a_minus=1.05 * p["a_plus"])
    apical = ApicalCooperative(a_coop=p["a_coop"], a_dep=p["a_coop"] / 20.0, length=10.0)
    cell = cell.add_rule(basal, ("ampa", "nmda"), "basal")
    return cell.add_rule(apical, ("ampa", "nmda"), "apical")


# ----------------------------------------------------------------------------- the input
def _events(rng, rate_hz, t1, margin=10.0):
    n = rng.poisson(rate_hz * t1 / 1000.0)
    return np.sort(rng.uniform(margin, t1 - margin, n))


def _soma_coupling(rng, lay: dict, p: dict) -> np.ndarray:
    """Probabilities of joining the somatic-drive events for one region's synapses.

    Evenly spread levels in [0, p_soma_max], balanced against cluster membership: member m
    of every cluster draws from the m-th stratum of the clustered synapses' levels (so all
    clusters get the same spread of somatic coupling), dispersed synapses get a shuffled
    set of their own. Somatic coupling and local co-activity are thus independent by design.
    """
    n, k, m = p["n_per_region"], p["n_clusters"], p["cluster_size"]
    levels = np.linspace(0.0, p["p_soma_max"], k * m).reshape(m, k)  # strata x clusters
    clustered = np.stack([rng.permutation(row) for row in levels])  # [member, cluster]
    # synapse j of the clustered block is member j // k of cluster j % k (round robin)
    j = np.arange(k * m)
    disp = rng.permutation(np.linspace(0.0, p["p_soma_max"], n - k * m))
    return np.concatenate([clustered[j // k, j % k], disp])


def make_inputs(lay: dict, p: dict, seed: int):
    """Presynaptic trains of the structured input (numpy; reproducible from `seed`).

    Returns (times (n, max_spikes) ms +inf padded, p_soma (n,), p_clust (n,), soma events).
    """
    rng = np.random.default_rng(seed)
    n_syn, t1, jit = lay["nodes"].size, p["t1"], p["jitter"]
    p_soma = np.concatenate([_soma_coupling(rng, lay, p) for _ in range(2)])
    p_cl_levels = np.tile(np.asarray(p["p_clust"], float), 2)
    p_clust = np.where(lay["cluster"] >= 0, p_cl_levels[np.maximum(lay["cluster"], 0)], 0.0)
    soma_events = _events(rng, p["f_soma"], t1)
    clust_events = [_events(rng, p["f_clust"], t1) for _ in range(p_cl_levels.size)]
    trains = []
    for i in range(n_syn):
        join = soma_events[rng.random(soma_events.size) < p_soma[i]]
        parts = [join + rng.normal(0.0, jit, join.size)]
        if lay["cluster"][i] >= 0:
            ev = clust_events[lay["cluster"][i]]
            ev = ev[rng.random(ev.size) < p_clust[i]]
            parts.append(ev + rng.normal(0.0, jit, ev.size))
        bg = p["rate"] - p_soma[i] * p["f_soma"] - p_clust[i] * p["f_clust"]
        parts.append(_events(rng, max(bg, 0.0), t1, margin=0.0))
        trains.append(np.sort(np.clip(np.concatenate(parts), 0.0, t1 - DT)))
    width = max(len(t) for t in trains)
    times = np.full((n_syn, width), np.inf)
    for i, t in enumerate(trains):
        times[i, : t.size] = t
    return times, p_soma, p_clust, soma_events


# ----------------------------------------------------------------------------- simulation
def make_runner(cell, lay: dict, p: dict):
    """A jitted ``run(cell, times, i_soma) -> (w_final (n,), v_soma (n_save,))`` (compiled
    once; the cell's parameters and the somatic current are arguments)."""
    t1 = p["t1"]

    @eqx.filter_jit
    def run(c, times, i_soma):
        tr = SpikeTrains(times)
        stim = [Input("ampa", tr), Input("nmda", tr), jd.stimulus.step(0, i_soma, 0.0, t1)]
        sol = jd.simulate(c, stim, t1=t1, dt=DT, record_every=RECORD_EVERY,
                          record={"v": c.probe("v", "soma")}, checkpoint=False)
        w = sol.final_state["synapses"][c.synapse_group("ampa")]["w"]
        return w, sol["v"][:, 0], sol.ts

    return run


def conditions(cell, p: dict) -> dict:
    """(cell, somatic current nA) per condition.

    control; na_block: every Na channel off (as intracellular QX-314); soma_na_block: Na off
    in soma and axon only (dendritic Na spikes can still reach -20 mV at the soma);
    hyperpolarised: a tonic somatic current of ``i_hyper`` nA.
    """
    return {"control": (cell, p["i_bias"]),
            "na_block": (cell.set("PospischilNa.g_na", 0.0), p["i_bias"]),
            "soma_na_block": (cell.set("PospischilNa.g_na", 0.0, ["soma", "axon"]), p["i_bias"]),
            "hyperpolarised": (cell, p["i_hyper"])}


#: Conditions in which somatic spikes are blocked (compared with control).
BLOCKS = ("na_block", "soma_na_block", "hyperpolarised")


# ----------------------------------------------------------------------------- analysis
def soma_coincidence(times: np.ndarray, post: np.ndarray, window: float = WINDOW) -> np.ndarray:
    """Fraction of each synapse's presynaptic spikes followed within `window` ms (0, window]
    by a somatic spike (NaN for a synapse without spikes)."""
    out = np.full(times.shape[0], np.nan)
    post = np.sort(np.asarray(post, float))
    for i, row in enumerate(times):
        t = row[np.isfinite(row)]
        if t.size == 0:
            continue
        k = np.searchsorted(post, t, side="right")  # first post spike after t
        nxt = np.where(k < post.size, post[np.minimum(k, post.size - 1)], np.inf)
        out[i] = np.mean(nxt - t <= window)
    return out


def cooccurrence(a: np.ndarray, b: np.ndarray, t1: float, window: float = WINDOW) -> float:
    """Pairs of events |t_a - t_b| <= `window` ms per second, over the geometric mean of the
    two rates (Hz): the paper's normalised co-activity (dimensionless; 0 without events)."""
    if a.size == 0 or b.size == 0:
        return 0.0
    b = np.sort(b)
    n_pairs = np.sum(np.searchsorted(b, a + window, side="right")
                     - np.searchsorted(b, a - window, side="left"))
    t_s = t1 / 1000.0
    return float(n_pairs / t_s / math.sqrt(a.size / t_s * b.size / t_s))


def neighbour_coactivity(times: np.ndarray, lay: dict, t1: float, radius: float = NEIGHBOUR_UM,
                         window: float = WINDOW) -> np.ndarray:
    """Per synapse: summed normalised co-occurrence with the other synapses of its region
    within `radius` um of path distance (0 without such neighbours)."""
    n = times.shape[0]
    rows = [r[np.isfinite(r)] for r in times]
    out = np.zeros(n)
    for i in range(n):
        near = np.nonzero((lay["dist"][i] <= radius) & (lay["region"] == lay["region"][i]))[0]
        out[i] = sum(cooccurrence(rows[i], rows[j], t1, window) for j in near if j != i)
    return out


def _ranks(x):
    """Ranks 1..n with ties averaged (for Spearman's correlation)."""
    order = np.argsort(x, kind="stable")
    r = np.empty(x.size)
    r[order] = np.arange(1, x.size + 1)
    for v in np.unique(x):
        tie = x == v
        r[tie] = r[tie].mean()
    return r


def correlations(x, y) -> tuple[float, float]:
    """(Pearson, Spearman) correlation of x and y over the pairs where both are finite."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    return float(np.corrcoef(x, y)[0, 1]), float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def run_experiment(p: dict | None = None, seed: int = 0, verbose: bool = True) -> dict:
    """Run all conditions and analyse; returns a JSON-able summary plus per-synapse arrays."""
    p = dict(FULL if p is None else p)
    say = print if verbose else (lambda *a, **k: None)
    t_start = time.perf_counter()
    cell = build_cell(p["seg_um"])
    lay = layout(cell, p, jax.random.key(seed))
    cell = add_synapses(cell, lay, p)
    times, p_soma, p_clust, _ = make_inputs(lay, p, seed)
    run = make_runner(cell, lay, p)
    raw = {}
    for name, (c, i_soma) in conditions(cell, p).items():
        t0 = time.perf_counter()
        w, v, ts = jax.block_until_ready(run(c, jnp.asarray(times), jnp.asarray(i_soma)))
        post = jd.features.spike_times(np.asarray(ts), np.asarray(v), SPIKE_THRESHOLD)
        raw[name] = {"dw": np.asarray(w) - 1.0, "post": post}
        say(f"  {name:15s} {post.size:4d} somatic spikes ({post.size / p['t1'] * 1e3:.1f} Hz)"
            f"  [{time.perf_counter() - t0:.1f} s]")
    coinc = soma_coincidence(times, raw["control"]["post"])
    coact = neighbour_coactivity(times, lay, p["t1"])
    res = {"params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items()},
           "seed": seed, "n_nodes": int(cell.n)}
    for r, name in enumerate(("basal", "apical")):
        m = lay["region"] == r
        dw = raw["control"]["dw"][m]
        row = {}
        row["pearson_dw_soma"], row["spearman_dw_soma"] = correlations(dw, coinc[m])
        row["pearson_dw_neigh"], row["spearman_dw_neigh"] = correlations(dw, coact[m])
        row["mean_dw_control"] = float(dw.mean())
        row["mean_pot_control"] = float(np.maximum(dw, 0).mean())
        row["max_dw_control"] = float(dw.max())
        row["frac_at_w_max"] = float(np.mean(dw >= 1.0 - 1e-9))  # w_max = 2, w0 = 1
        for cond in BLOCKS:
            dwb = raw[cond]["dw"][m]
            row[f"mean_dw_{cond}"] = float(dwb.mean())
            row[f"mean_pot_{cond}"] = float(np.maximum(dwb, 0).mean())
            row[f"ratio_{cond}"] = row[f"mean_pot_{cond}"] / row["mean_pot_control"]
        res[name] = row
    res["somatic_spikes"] = {k: int(v["post"].size) for k, v in raw.items()}
    res["wall_s"] = time.perf_counter() - t_start
    res["_arrays"] = {"region": lay["region"], "cluster": lay["cluster"], "p_soma": p_soma,
                      "p_clust": p_clust, "coinc": coinc, "coact": coact,
                      **{f"dw_{k}": v["dw"] for k, v in raw.items()}}
    return res


def table(res: dict) -> str:
    """Markdown table of the correlations (Pearson / Spearman) and blocked/control ratios."""
    head = ("| region | r(dw, soma coinc.) P / S | r(dw, neighbour co-act.) P / S | mean pot. "
            "control | " + " | ".join(f"{c} / control" for c in BLOCKS) + " |")
    lines = [head, "|---" * (4 + len(BLOCKS)) + "|"]
    for name in ("basal", "apical"):
        r = res[name]
        lines.append(
            f"| {name} | {r['pearson_dw_soma']:+.2f} / {r['spearman_dw_soma']:+.2f} | "
            f"{r['pearson_dw_neigh']:+.2f} / {r['spearman_dw_neigh']:+.2f} | "
            f"{r['mean_pot_control']:.4f} | "
            + " | ".join(f"{r[f'ratio_{c}']:.3f}" for c in BLOCKS) + " |")
    spikes = ", ".join(f"{k} {v}" for k, v in res["somatic_spikes"].items())
    return "\n".join(lines) + f"\n\nsomatic spikes: {spikes}"


def plot(res: dict, path: Path) -> None:
    """dw vs somatic coincidence, dw vs neighbour co-activity, control vs blocked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = res["_arrays"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    colors = {0: "tab:blue", 1: "tab:red"}
    for r, name in enumerate(("basal", "apical")):
        m = a["region"] == r
        kw = {"color": colors[r], "s": 16, "alpha": 0.8}
        axes[0].scatter(a["coinc"][m], a["dw_control"][m], label=name, **kw)
        axes[1].scatter(a["coact"][m], a["dw_control"][m], label=name, **kw)
        axes[2].scatter(a["dw_control"][m], a["dw_na_block"][m], label=f"{name}, Na block", **kw)
        axes[2].scatter(a["dw_control"][m], a["dw_hyperpolarised"][m], marker="x",
                        color=colors[r], s=16, label=f"{name}, hyperpolarised")
    axes[0].set_xlabel("coincidence with somatic spikes (fraction, 20 ms)")
    axes[1].set_xlabel("co-activity with neighbours within 10 um (normalised)")
    for ax in axes[:2]:
        ax.set_ylabel("weight change dw (control)")
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.legend()
    lim = [min(a["dw_control"].min(), 0), a["dw_control"].max()]
    axes[2].plot(lim, lim, color="0.6", lw=0.8)
    axes[2].set_xlabel("dw control")
    axes[2].set_ylabel("dw with somatic spikes blocked")
    axes[2].legend(fontsize=8)
    b, ap = res["basal"], res["apical"]
    axes[0].set_title(f"basal r={b['pearson_dw_soma']:+.2f}, apical r={ap['pearson_dw_soma']:+.2f}")
    axes[1].set_title(f"basal r={b['pearson_dw_neigh']:+.2f}, "
                      f"apical r={ap['pearson_dw_neigh']:+.2f}")
    axes[2].set_title(f"blocked/control: basal {b['ratio_na_block']:.2f}, "
                      f"apical {ap['ratio_na_block']:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter run (2 s simulated)")
    ap.add_argument("--json", default=str(HERE / "results" / "two_rules.json"))
    ap.add_argument("--png", default=str(HERE / "results" / "two_rules.png"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    p = QUICK if args.quick else FULL
    print(f"Two rules, {p['t1'] / 1000:g} s simulated, seed {args.seed}")
    res = run_experiment(p, seed=args.seed)
    print(table(res))
    print(f"wall time {res['wall_s']:.1f} s ({res['n_nodes']} nodes)")
    out = {k: v for k, v in res.items() if not k.startswith("_")}
    out["synapses"] = {k: np.asarray(v).tolist() for k, v in res["_arrays"].items()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    plot(res, Path(args.png))
    print(f"wrote {args.json} and {args.png}")
    return res


if __name__ == "__main__":
    main()
