"""Validation: back-propagating APs and EPSP attenuation in the real L5 cell C060114A5 vs data.

The model is the reconstructed layer-5 thick-tufted pyramidal cell C060114A5
(``../shared/data/morphology/C060114A5_derived.swc``) with its dendrites as reconstructed and
the axon replaced by its first section (a 166 um stub whose proximal 60 um is the axon
initial segment), with one channel set (`PARAMS`, below):

- passive everywhere: leak to -70 mV, Ra 100 Ohm cm, cm 1 uF/cm^2 (soma, axon) and
  1.5 uF/cm^2 with 1.5x the leak in the dendrites (spines folded into the membrane);
- Mainen & Sejnowski (1996) Na and Kv (`MainenNa`, `MainenKv`): dense Na in the AIS, Na/Kv
  at the soma, apical Na decaying with path distance (length 200 um) and a little Kv;
  basal dendrites without Na (Kv only); 34 degC.

Two protocols, both started from the resting state:

1. bAP: a 2 ms, 5 nA current step at the soma fires one AP; its amplitude (peak minus rest,
   mV) at every node against the path distance from the soma (um), along the apical trunk
   (the path from the soma through the thickest child at every branch point) and in the
   basal dendrites. Data: Stuart & Sakmann 1994 and Larkum et al. 2001 (apical, mV);
   Nevian et al. 2007 Fig. 1 (basal, mV).
2. EPSP attenuation: one small synapse at a time (0.5 nS, rise 0.5 ms, decay 5 ms,
   reversal 0 mV, i.e. an EPSC-shaped input in the near-linear range) on the apical trunk
   or a basal dendrite; the ratio of the local EPSP peak to the somatic EPSP peak against
   the distance of the site. Data: Berger et al. 2001 Fig. 3 (apical; the file stores ln of
   the ratio) and Nevian et al. 2007 Fig. 2 (basal; ratio).

The comparison per data set: the model curve (bin means of the model's nodes, 20 um bins,
linearly interpolated) evaluated at every data distance; the RMSE and Pearson r of model
vs data at those distances; and the slope of a straight-line fit over the data's distances
of model and data (bAP: mV per 100 um; EPSP: ln ratio per 100 um).

Usage:
    python benchmarks/dendritic_validation.py [--quick] [--json PATH] [--png PATH]

``--quick`` uses about 60 um segments (~400 nodes) and fewer EPSP sites; the default uses
NEURON's d_lambda = 0.1 rule. Writes JSON (default
benchmarks/results/dendritic_validation.json), a PNG (default
benchmarks/results/dendritic_validation.png) and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

import jaxdend as jd  # noqa: E402
from jaxdend.synapses import AMPA, Input, SpikeTrains  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
SWC = "morphology/C060114A5_derived.swc"

#: Channel set of the validation model. Densities in S/cm^2 (Mainen channels scale them by
#: their q10 factor at 37 degC, as the original mod files), cm in uF/cm^2, ra in Ohm cm,
#: voltages in mV, lengths in um, temperature in degC.
PARAMS = {
    "celsius": 34.0,
    "ra": 100.0,
    "cm": 1.0,
    "cm_dend": 1.5,
    "g_leak": 3e-5,
    "g_leak_dend": 4.5e-5,
    "e_leak": -70.0,
    "ais_length": 60.0,
    "na_ais": 1.0,
    "na_axon": 0.01,
    "kv_axon": 0.1,
    "na_soma": 0.03,
    "kv_soma": 0.03,
    "na_apical": 0.025,
    "na_apical_length": 200.0,
    "kv_apical": 0.002,
    "kv_basal": 0.003,
}

#: Data sets: file stem -> (quantity, region); quantity "bap" (mV) or "epsp" (dendrite/soma).
DATASETS = {
    "StuartSakmann1994_Fig1_2": ("bap", "apical"),
    "Larkum2001_Fig8_2": ("bap", "apical"),
    "Nevian2007_Fig1_2": ("bap", "basal"),
    "Berger2001_Fig3_2": ("epsp", "apical"),
    "Nevian2007_Fig2_email": ("epsp", "basal"),
}


# ---------------------------------------------------------------------------------- model
def stub_axon(morph: jd.Morphology) -> jd.Morphology:
    """The morphology with the axon reduced to its first section (lengths in um)."""
    secs = morph.sections
    first = [i for i, s in enumerate(secs) if s.swc_type == 2 and s.parent == 0][:1]
    keep = [i for i, s in enumerate(secs) if s.swc_type != 2 or i in first]
    new = {old: k for k, old in enumerate(keep)}
    out = [dataclasses.replace(secs[i], parent=new[secs[i].parent] if secs[i].parent >= 0
                               else -1) for i in keep]
    return jd.Morphology(tuple(out), name=f"{morph.name}_axon_stub")


def trunk_sections(morph: jd.Morphology) -> list[int]:
    """Sections of the apical trunk: from the apical stem with the most dendrite beyond it,
    through the thickest child (mean radius, um) at every branch point to a tip."""
    secs = morph.sections
    children: dict[int, list[int]] = {i: [] for i in range(len(secs))}
    for i, s in enumerate(secs):
        if s.parent >= 0:
            children[s.parent].append(i)
    beyond = np.array([s.length for s in secs])
    for i in range(len(secs) - 1, 0, -1):  # parents come before children
        beyond[secs[i].parent] += beyond[i]
    stems = [c for c in children[0] if secs[c].swc_type == 4]
    cur = max(stems, key=lambda c: beyond[c])
    out = [cur]
    while children[cur]:
        cur = max(children[cur], key=lambda c: float(np.mean(secs[c].radii)))
        out.append(cur)
    return out


def _nseg(seg_len: float | None):
    """nseg rule: odd counts with segments <= seg_len um (None: d_lambda = 0.1); the axon stub
    gets segments of ~10 um so that the AIS is resolved."""
    def rule(i, sec):
        if i == 0:
            return 1
        if sec.swc_type == 2:
            return 2 * int(sec.length / 20.0) + 1
        if seg_len is None:
            return None
        return 2 * int(sec.length / (2.0 * seg_len)) + 1
    return rule


@dataclasses.dataclass(frozen=True)
class Model:
    """The validation cell and its landmarks.

    Attributes:
        cell: the `jaxdend.Cell` (channels of `PARAMS`).
        trunk: bool per node, True on the apical trunk.
        y_rest: resting state (from 300 ms without input).
    """

    cell: jd.Cell
    trunk: np.ndarray
    y_rest: dict

    @property
    def comps(self) -> jd.Compartments:
        """The compartments."""
        return self.cell.comps


def build_cell(comps: jd.Compartments, params: dict | None = None) -> jd.Cell:
    """The cell of `PARAMS` (or `params`) on compartments of the axon-stub morphology."""
    p = dict(PARAMS, **(params or {}))
    dend = comps.mask(["apical", "basal"])
    ais = comps.mask("axon") & (comps.distance <= p["ais_length"])
    cell = jd.Cell(comps, cm=np.where(dend, p["cm_dend"], p["cm"]), ra=p["ra"],
                   celsius=p["celsius"], v_init=p["e_leak"])
    cell = cell.insert(jd.channels.Leak(g=np.where(dend, p["g_leak_dend"], p["g_leak"]),
                                        e=p["e_leak"]))
    na_apical = jd.by_distance(lambda d: p["na_apical"] * np.exp(-d / p["na_apical_length"]))
    cell = (cell.insert(jd.channels.MainenNa(g_na=p["na_soma"]), "soma")
            .insert(jd.channels.MainenNa(g_na=p["na_axon"]), "axon")
            .insert(jd.channels.MainenNa(g_na=p["na_ais"]), ais)
            .insert(jd.channels.MainenNa(g_na=na_apical), "apical"))
    return (cell.insert(jd.channels.MainenKv(g_k=p["kv_soma"]), "soma")
            .insert(jd.channels.MainenKv(g_k=p["kv_axon"]), "axon")
            .insert(jd.channels.MainenKv(g_k=p["kv_apical"]), "apical")
            .insert(jd.channels.MainenKv(g_k=p["kv_basal"]), "basal"))


def load_model(data_dir: Path = DATA, *, quick: bool = False,
               params: dict | None = None) -> Model:
    """Load C060114A5, stub the axon, discretise (quick: ~60 um segments; else d_lambda 0.1),
    insert the channels and find the resting state."""
    morph = stub_axon(jd.load_morphology(Path(data_dir) / SWC))
    comps = jd.discretize(morph, nseg=_nseg(60.0 if quick else None))
    cell = build_cell(comps, params)
    trunk = np.isin(comps.section, trunk_sections(morph)) & ~comps.is_junction
    y_rest = jax.block_until_ready(rest_state(cell))
    return Model(cell, trunk, y_rest)


@eqx.filter_jit
def rest_state(cell: jd.Cell, t_rest: float = 300.0) -> dict:
    """State after `t_rest` ms without input (dt 0.1 ms), the resting state."""
    return jd.simulate(cell, None, t1=t_rest, dt=0.1).final_state


@eqx.filter_jit
def _bap_traces(cell, y0, nodes, amp, dur, t1, dt):
    probe = jd.Probe("v", nodes)
    return jd.simulate(cell, jd.stimulus.step(0, amp, 2.0, dur), t1=t1, dt=dt, y0=y0,
                       record={"v": probe})["v"]


def bap(model: Model, *, amp: float = 5.0, dur: float = 2.0, t1: float = 20.0,
        dt: float = 0.025) -> dict:
    """Back-propagating AP after a soma current step of `amp` nA for `dur` ms (at 2 ms).

    Returns:
        dict with "node" (membrane nodes), "distance" (um), "amplitude" (peak minus the
        pre-stimulus potential, mV) and "n_spikes" (somatic APs crossing 0 mV).
    """
    comps = model.comps
    nodes = tuple(int(i) for i in np.nonzero(~comps.is_junction)[0])
    v = np.asarray(_bap_traces(model.cell, model.y_rest, nodes, amp, dur, t1, dt))
    n_spikes = len(jd.features.spike_times(np.arange(v.shape[0]) * dt, v[:, 0]))
    idx = np.asarray(nodes)
    return {"node": idx, "distance": comps.distance[idx], "amplitude": v.max(0) - v[0],
            "n_spikes": n_spikes}


def epsp_sites(model: Model, max_sites: int, *, max_distance: float = 700.0) -> np.ndarray:
    """Up to `max_sites` membrane nodes on the apical trunk (<= max_distance um) and in the
    basal dendrites, evenly spread over each set's distance order (half each at most)."""
    comps = model.comps
    mem = ~comps.is_junction & (comps.distance <= max_distance)
    out = []
    for sel in (model.trunk & mem, comps.mask("basal") & mem):
        idx = np.nonzero(sel)[0]
        idx = idx[np.argsort(comps.distance[idx], kind="stable")]
        k = min(idx.size, max_sites // 2)
        out.append(idx[np.round(np.linspace(0, idx.size - 1, k)).astype(int)])
    return np.unique(np.concatenate(out))


def epsp_attenuation(model: Model, sites, *, gmax: float = 0.5, tau_rise: float = 0.5,
                     tau_decay: float = 5.0, t1: float = 30.0, dt: float = 0.05) -> dict:
    """Dendrite/soma ratio of the EPSP of one synapse at each site (one run per site).

    All sites carry a synapse (one compiled structure); in run j only synapse j receives a
    spike (at 2 ms). The EPSP is the peak of the difference from a run without input.

    Args:
        model: the validation `Model`.
        sites: membrane node indices.
        gmax: peak conductance, nS. tau_rise, tau_decay: ms. t1, dt: ms.

    Returns:
        dict with "node", "distance" (um), "local" and "soma" EPSP peaks (mV), "ratio".
    """
    sites = np.asarray(sites)
    n = sites.size
    cell = model.cell.add_synapses("epsp", AMPA(tau_rise=tau_rise, tau_decay=tau_decay),
                                   sites, gmax)
    probe = jd.Probe("v", (0,) + tuple(int(i) for i in sites))
    times = np.full((n + 1, n, 1), np.inf)
    times[np.arange(1, n + 1), np.arange(n), 0] = 2.0

    @eqx.filter_jit
    def run(c, y0, tt):
        def one(t):
            return jd.simulate(c, [Input("epsp", SpikeTrains(t))], t1=t1, dt=dt, y0=y0,
                               record={"v": probe})["v"]
        return jax.vmap(one)(tt)

    v = np.asarray(run(cell, model.y_rest, jnp.asarray(times)))
    dv = (v[1:] - v[:1]).max(axis=1)  # (run, probe)
    local = dv[np.arange(n), 1 + np.arange(n)]
    soma = dv[:, 0]
    return {"node": sites, "distance": model.comps.distance[sites], "local": local,
            "soma": soma, "ratio": local / soma}


# ---------------------------------------------------------------------------- data, metrics
def load_data(data_dir: Path = DATA) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The validation data: stem -> (distance um, value) sorted by distance; bAP amplitudes
    in mV, EPSP attenuation as the dendrite/soma ratio (Berger 2001's ln converted)."""
    out = {}
    for stem in DATASETS:
        arr = np.loadtxt(Path(data_dir) / "dendritic_validation" / f"{stem}.csv", delimiter=",")
        d, y = arr[:, 0], arr[:, 1]
        if stem.startswith("Berger2001"):
            y = np.exp(y)
        order = np.argsort(d, kind="stable")
        out[stem] = (d[order], y[order])
    return out


def model_curve(d, y, width: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """Bin means of `y` over distance bins of `width` um: (bin mean distance um, mean y)."""
    d, y = np.asarray(d, float), np.asarray(y, float)
    b = np.floor(d / width).astype(int)
    keys = np.unique(b)
    return (np.array([d[b == k].mean() for k in keys]),
            np.array([y[b == k].mean() for k in keys]))


def spearman(x, y) -> float:
    """Spearman rank correlation of x and y (ties broken by order)."""
    rx = np.argsort(np.argsort(x, kind="stable"), kind="stable")
    ry = np.argsort(np.argsort(y, kind="stable"), kind="stable")
    return float(np.corrcoef(rx, ry)[0, 1])


def compare(model_d, model_y, data_d, data_y, *, log: bool = False) -> dict:
    """Model vs data at the data's distances.

    With ``log=True`` (EPSP ratios) everything is compared as ln(value).

    Returns:
        dict: n, distance range (um), rmse, pearson_r, spearman of the model curve,
        slopes per 100 um of straight-line fits (data, model at the data distances) and their
        ratio, means of data and model.
    """
    f = np.log if log else (lambda a: np.asarray(a, float))
    cd, cy = model_curve(model_d, f(model_y))
    x, yd = np.asarray(data_d, float), f(data_y)
    ym = np.interp(x, cd, cy)
    s_data = 100.0 * np.polyfit(x, yd, 1)[0]
    s_model = 100.0 * np.polyfit(x, ym, 1)[0]
    inside = (cd >= x.min()) & (cd <= x.max())
    return {
        "n": int(x.size), "d_min_um": float(x.min()), "d_max_um": float(x.max()),
        "rmse": float(np.sqrt(np.mean((ym - yd) ** 2))),
        "pearson_r": float(np.corrcoef(ym, yd)[0, 1]),
        "model_spearman": spearman(cd[inside], cy[inside]) if inside.sum() > 2 else float("nan"),
        "slope_data_per_100um": float(s_data), "slope_model_per_100um": float(s_model),
        "slope_ratio": float(s_model / s_data),
        "mean_data": float(np.mean(yd)), "mean_model": float(np.mean(ym)),
    }


def validate(model: Model, data: dict, *, max_sites: int = 120) -> dict:
    """Run both protocols and compare with every data set.

    Returns:
        dict with "bap" and "epsp" (protocol outputs), "rows" (one comparison per data set)
        and "seconds".
    """
    t0 = time.perf_counter()
    b = bap(model)
    t_bap = time.perf_counter() - t0
    e = epsp_attenuation(model, epsp_sites(model, max_sites))
    t_epsp = time.perf_counter() - t0 - t_bap
    trunk_b = model.trunk[b["node"]]
    basal_b = model.comps.mask("basal")[b["node"]]
    trunk_e = model.trunk[e["node"]]
    basal_e = model.comps.mask("basal")[e["node"]]
    rows = []
    for stem, (quantity, region) in DATASETS.items():
        d, y = data[stem]
        if quantity == "bap":
            sel = trunk_b if region == "apical" else basal_b
            res = compare(b["distance"][sel], b["amplitude"][sel], d, y)
            unit = "mV"
        else:
            sel = trunk_e if region == "apical" else basal_e
            res = compare(e["distance"][sel], e["ratio"][sel], d, y, log=True)
            unit = "ln(dend/soma)"
        rows.append({"dataset": stem, "quantity": quantity, "region": region, "unit": unit,
                     **res})
    return {"bap": b, "epsp": e, "rows": rows,
            "seconds": {"bap": t_bap, "epsp": t_epsp}}


# ---------------------------------------------------------------------------------- output
def plot(model: Model, result: dict, data: dict, path=None):
    """Model vs data: bAP amplitude (apical, basal) and EPSP attenuation vs distance.

    Returns the matplotlib figure (saved to `path` when given).
    """
    import matplotlib.pyplot as plt

    b, e = result["bap"], result["epsp"]
    basal = model.comps.mask("basal")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    ap = model.comps.mask("apical")[b["node"]]
    tr = model.trunk[b["node"]]
    ax.plot(b["distance"][ap], b["amplitude"][ap], ".", color="0.8", ms=3,
            label="model, all apical nodes")
    o = np.argsort(b["distance"][tr])
    ax.plot(b["distance"][tr][o], b["amplitude"][tr][o], "-", color="C3", lw=2,
            label="model, apical trunk")
    for stem, c in (("StuartSakmann1994_Fig1_2", "C0"), ("Larkum2001_Fig8_2", "C2")):
        ax.plot(*data[stem], "o", color=c, ms=4, mfc="none", label=stem.split("_")[0])
    ax.set(xlabel="distance from soma (um)", ylabel="bAP amplitude (mV)",
           title="bAP, apical dendrite", xlim=(-20, 1000), ylim=(0, 115))
    ax.legend(fontsize=7)
    ax = axes[1]
    bs = basal[b["node"]]
    ax.plot(b["distance"][bs], b["amplitude"][bs], ".", color="C3", ms=4,
            label="model, basal nodes")
    ax.plot(*model_curve(b["distance"][bs], b["amplitude"][bs]), "-", color="C3", lw=2)
    ax.plot(*data["Nevian2007_Fig1_2"], "o", color="C0", ms=4, mfc="none", label="Nevian2007")
    ax.set(xlabel="distance from soma (um)", ylabel="bAP amplitude (mV)",
           title="bAP, basal dendrites", ylim=(0, 115))
    ax.legend(fontsize=7)
    ax = axes[2]
    tr = model.trunk[e["node"]]
    bs = basal[e["node"]]
    o = np.argsort(e["distance"][tr])
    ax.plot(e["distance"][tr][o], e["ratio"][tr][o], "-", color="C3", lw=2,
            label="model, apical trunk")
    ax.plot(e["distance"][bs], e["ratio"][bs], "^", color="C1", ms=4, label="model, basal")
    ax.plot(*data["Berger2001_Fig3_2"], "o", color="C0", ms=4, mfc="none",
            label="Berger2001 (apical)")
    ax.plot(*data["Nevian2007_Fig2_email"], "s", color="C2", ms=4, mfc="none",
            label="Nevian2007 (basal)")
    ax.set(xlabel="distance of input from soma (um)", ylabel="EPSP dendrite / soma",
           yscale="log", title="EPSP attenuation")
    ax.legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def print_table(rows) -> None:
    """Markdown table of the comparison rows."""
    print("\n| data set | quantity | region | n | distances um | RMSE | Pearson r | "
          "slope data /100um | slope model /100um | model/data slope |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['quantity']} ({r['unit']}) | {r['region']} | {r['n']} | "
              f"{r['d_min_um']:.0f} to {r['d_max_um']:.0f} | {r['rmse']:.2f} | "
              f"{r['pearson_r']:.2f} | {r['slope_data_per_100um']:.2f} | "
              f"{r['slope_model_per_100um']:.2f} | {r['slope_ratio']:.2f} |")


def main(argv=None) -> int:
    """Run the validation, print the table, write JSON and PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarse model (~60 um segments)")
    parser.add_argument("--json", default=str(HERE / "results" / "dendritic_validation.json"))
    parser.add_argument("--png", default=str(HERE / "results" / "dendritic_validation.png"))
    parser.add_argument("--data", default=str(DATA), help="shared data folder")
    args = parser.parse_args(argv)
    data_dir = Path(args.data)
    if not (data_dir / SWC).exists():
        print(f"error: {data_dir / SWC} not found (needs ../shared/data)", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    model = load_model(data_dir, quick=args.quick)
    t_build = time.perf_counter() - t0
    n_seg = int((~model.comps.is_junction).sum())
    print(f"C060114A5 (axon stub), {model.comps.n} nodes ({n_seg} segments), "
          f"{int(model.trunk.sum())} trunk segments; built in {t_build:.1f} s", flush=True)
    data = load_data(data_dir)
    result = validate(model, data, max_sites=40 if args.quick else 240)
    b, e = result["bap"], result["epsp"]
    print(f"bAP: {b['n_spikes']} somatic AP(s), soma amplitude {b['amplitude'][0]:.1f} mV; "
          f"EPSP: {e['node'].size} sites, soma EPSP {e['soma'].min():.3f}-"
          f"{e['soma'].max():.3f} mV, local {e['local'].min():.2f}-{e['local'].max():.2f} mV; "
          f"{result['seconds']['bap']:.1f} s + {result['seconds']['epsp']:.1f} s")
    print_table(result["rows"])
    out = {
        "case": "C060114A5_quick" if args.quick else "C060114A5_dlambda",
        "n_nodes": model.comps.n, "n_segments": n_seg, "params": PARAMS,
        "soma_ap_amplitude_mV": float(b["amplitude"][0]), "n_spikes": b["n_spikes"],
        "seconds": result["seconds"], "rows": result["rows"],
        "curves": {
            "bap_trunk": [list(map(float, a)) for a in model_curve(
                b["distance"][model.trunk[b["node"]]], b["amplitude"][model.trunk[b["node"]]])],
            "epsp_ratio": {"distance_um": e["distance"].tolist(), "ratio": e["ratio"].tolist(),
                           "trunk": model.trunk[e["node"]].tolist()},
        },
    }
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")
    import matplotlib

    matplotlib.use("Agg")
    plot(model, result, data, args.png)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
