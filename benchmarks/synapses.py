"""Benchmark: 1,000 AMPA+NMDA synapses under Poisson input, jaxdend vs NEURON vs Jaxley.

Model: the real L5 cell C060114A5 at 2 segments per section (751 segments; the
discretisation of simulate.py's ``C060114A5_nseg2`` case), HH everywhere (NEURON's hh
parameters, 6.3 degC), cm 1 uF/cm2, Ra 100 Ohm cm. ``N_SYN`` synaptic sites drawn at random
on the basal and apical dendrites (uniform per um); every site has an AMPA and an NMDA
receptor (jaxdend `AMPA`, `NMDA` defaults: 0.2/1.7 ms, 0.29/43 ms, 0 mV, Jahr-Stevens Mg2+
block at 1 mM) driven by the same 5 Hz Poisson train, so 1,000 sites are 2,000 receptor point
processes. Peak conductances per site: AMPA 200 nS / N_SYN, NMDA 100 nS / N_SYN (0.2 and
0.1 nS at 1,000 sites), which makes the soma fire ~14 Hz. 1 s at dt = 0.025 ms (40,000
steps); ``--quick``: 200 sites (same total conductance) for 100 ms.

Simulators:
* jaxdend: `simulate` with its default `BackwardEuler` (NEURON's fixed-step scheme).
  Value-and-gradient of the mean squared soma voltage w.r.t. every parameter of the cell
  (`eqx.filter_value_and_grad` on the cell: per-node HH parameters, cm, Ra, and the per-synapse
  gmax of both receptor groups), with the default per-step checkpointing.
* NEURON: `jaxdend.neuron_bridge.NeuronModel` (Exp2Syn for AMPA, the ``jd_nmda`` point process
  for NMDA, the spike times queued with NetCon.event), fixed-step backward Euler.
* Jaxley (if installed): the same SWC at 2 compartments per branch. Jaxley 0.14 has no
  spike-train input for synapses (its synapses are driven by the voltage of a presynaptic
  compartment), so the inputs are emulated: one custom Jaxley `Synapse` per site carrying both
  receptors (exact exponential decay of the two double exponentials and the same Mg2+ block),
  whose state ``spk`` is clamped (``clamp`` on an edge state) to 1 on the step where jaxdend
  and NEURON deliver a presynaptic spike and 0 otherwise; the synapse adds ``spk`` to its
  rise/decay states. Pre- and postsynaptic compartment of the edge are both the target
  compartment (the presynaptic voltage is unused). Sites are mapped to the Jaxley compartment
  nearest in space within the same region. Value-and-gradient w.r.t. the 6 HH parameters and
  the two peak conductances as shared scalars, with nested checkpointing (``checkpoint_lengths``
  near sqrt(steps) x sqrt(steps)).

Reported per simulator (keys as simulate.json plus ``n_syn``, the number of sites): compile
time, forward time (best of N), value-and-gradient time, compartment-steps per second, peak
resident memory of the process so far (simulators run in the order NEURON, jaxdend, Jaxley),
somatic spikes, and the mean |V - V_NEURON| at the soma in mV.

Usage:
    python benchmarks/synapses.py [--quick] [--json PATH] [--no-jaxley] [--repeats N]

Writes the rows as JSON (default benchmarks/results/synapses.json) and prints a table.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import first_and_best, peak_rss_mb, print_table, print_xla_temp, write_rows  # noqa: E402

from jaxdend.synapses import AMPA, NMDA, Input, peak_factor, place, poisson  # noqa: E402

HERE = Path(__file__).resolve().parent
SWC = HERE.parent.parent / "shared" / "data" / "morphology" / "C060114A5_derived.swc"
DT = 0.025  # ms
RATE = 5.0  # Hz, per site
G_AMPA_TOTAL, G_NMDA_TOTAL = 200.0, 100.0  # nS, summed over all sites
CASES = {False: (1000, 1000.0), True: (200, 100.0)}  # quick -> (sites, t1 in ms)


def build(n_syn: int, t1: float):
    """The morphology, the cell with its two synapse groups, the sites and the spike trains."""
    morph = jd.load_morphology(SWC)
    comps = jd.discretize(morph, nseg=2)
    cell = jd.Cell(comps, ra=100.0, cm=1.0).insert(jd.channels.HH())
    sites = place(cell, n_syn, ["basal", "apical"], key=jax.random.key(0))
    cell = (cell.add_synapses("ampa", AMPA(), sites, G_AMPA_TOTAL / n_syn)
            .add_synapses("nmda", NMDA(), sites, G_NMDA_TOTAL / n_syn))
    trains = poisson(jax.random.key(1), RATE, n_syn, t1)
    stim = [Input("ampa", trains), Input("nmda", trains)]
    return morph, cell, sites, trains, stim


def bench_neuron(cell, morph, stim, t1, repeats):
    """NEURON fixed-step backward Euler on the same model; soma trace (mV)."""
    from jaxdend.neuron_bridge import NeuronModel, load_mechanisms

    load_mechanisms()
    t0 = time.perf_counter()
    model = NeuronModel(cell, morph)
    build_s = time.perf_counter() - t0
    times, v = [], None
    for _ in range(max(1, repeats)):
        _, v, seconds = model.run(stim, t1, DT, [0])
        times.append(seconds)
    return {"compile_s": build_s, "forward_s": min(times), "grad_s": None}, v[:, 0]


def bench_jaxdend(cell, stim, t1, repeats):
    """Compile, forward and value-and-grad timings of jaxdend; soma trace (mV)."""
    record = cell.probe("v", index=0)

    @eqx.filter_jit
    def forward(c):
        return jd.simulate(c, stim, t1=t1, dt=DT, record=record)["v"][:, 0]

    @eqx.filter_jit
    def value_and_grad(c):
        return eqx.filter_value_and_grad(lambda c: jnp.mean(forward.__wrapped__(c) ** 2))(c)

    first, fwd_s, v = first_and_best(lambda: forward(cell), repeats)
    rss_fwd = peak_rss_mb()
    grad_first, grad_s, (_, grads) = first_and_best(lambda: value_and_grad(cell), repeats)
    rss_grad = peak_rss_mb()
    g_syn = [float(jnp.abs(g.gmax).sum()) for g in grads.synapses]
    print(f"  jaxdend: grad compile {grad_first - grad_s:.2f} s; peak RSS after forward "
          f"{rss_fwd:.0f} MB, after value-and-grad {rss_grad:.0f} MB; "
          f"sum |dL/dgmax| per group {g_syn}", flush=True)
    print_xla_temp("jaxdend", value_and_grad.lower(cell).compile())
    return {"compile_s": first - fwd_s, "forward_s": fwd_s, "grad_s": grad_s}, np.asarray(v)


# --------------------------------------------------------------------------- Jaxley peer
def _delivery_steps(times: np.ndarray, n_steps: int) -> list[np.ndarray]:
    """Per train, the step index at which jaxdend/NEURON deliver each spike (ms -> step).

    A spike at t is delivered at the start of the first step k with t <= (k + 1/2) dt, at
    most one per step and train (later ones wait for the next step)."""
    out = []
    for row in times:
        row = row[np.isfinite(row)]
        steps, last = [], -1
        for t in row:
            k = max(int(np.ceil((t - 0.5 * DT) / DT - 1e-9)), 0, last + 1)
            if k < n_steps:
                steps.append(k)
            last = k
        out.append(np.asarray(steps, dtype=np.int64))
    return out


def _checkpoint_lengths(n: int) -> list[int]:
    """Two nested scan lengths with product n, the inner one the largest divisor <= sqrt n."""
    inner = max(d for d in range(1, int(np.sqrt(n)) + 1) if n % d == 0)
    return [n // inner, inner]


def bench_jaxley(cell, sites, trains, t1, repeats):
    """The same experiment in Jaxley with clamped spike-trigger states; see module docstring."""
    import jaxley as jx
    from _jaxley_peer import HH_PARAMS, _soma_centre_comp, hh_cell
    from jaxley.connect import connect
    from jaxley.synapses.synapse import Synapse

    ampa, nmda = cell.synapses[0].receptor, cell.synapses[1].receptor

    class AmpaNmda(Synapse):
        """One site with an AMPA and an NMDA double exponential (conductances in uS).

        The state ``spk`` (clamped from outside) is the release added at this step."""

        def __init__(self, name=None):
            super().__init__(name)
            p = self._name
            self.f_a = float(peak_factor(ampa.tau_rise, ampa.tau_decay))
            self.f_n = float(peak_factor(nmda.tau_rise, nmda.tau_decay))
            self.synapse_params = {f"{p}_gA": 1e-4, f"{p}_gN": 1e-4}
            self.synapse_states = {f"{p}_{k}": 0.0 for k in ("Aa", "Ba", "An", "Bn", "spk")}

        def update_states(self, states, delta_t, pre_voltage, post_voltage, params):
            p, s = self._name, states[f"{self._name}_spk"]

            def decay(k, tau):
                return states[f"{p}_{k}"] * jnp.exp(-delta_t / tau) + s

            return {f"{p}_Aa": decay("Aa", ampa.tau_rise), f"{p}_Ba": decay("Ba", ampa.tau_decay),
                    f"{p}_An": decay("An", nmda.tau_rise), f"{p}_Bn": decay("Bn", nmda.tau_decay),
                    f"{p}_spk": s}

        def compute_current(self, states, pre_voltage, post_voltage, params):
            p, v = self._name, post_voltage
            g_a = params[f"{p}_gA"] * self.f_a * (states[f"{p}_Ba"] - states[f"{p}_Aa"])
            g_n = params[f"{p}_gN"] * self.f_n * (states[f"{p}_Bn"] - states[f"{p}_An"])
            block = 1.0 / (1.0 + jnp.exp(-nmda.mg_slope * v) * nmda.mg / nmda.mg_k)
            return g_a * (v - ampa.e_rev) + g_n * block * (v - nmda.e_rev)

    n_syn, n_steps = len(sites), round(t1 / DT)
    t0 = time.perf_counter()
    jc = hh_cell(str(SWC), 2)  # soma area as NEURON's (Jaxley reads 1.5x; see _jaxley_peer)
    b, c = _soma_centre_comp(jc, str(SWC))
    nodes = jc.nodes
    soma = int(nodes.index[nodes["global_branch_index"] == b][c])
    xyz = nodes[["x", "y", "z"]].to_numpy(float)
    comps = cell.comps
    post = np.empty(n_syn, np.int64)
    for i, node in enumerate(sites):
        region = "apical" if comps.swc_type[node] == 4 else "basal"
        d = np.linalg.norm(xyz - comps.xyz[node], axis=1)
        d[~nodes[region].to_numpy(bool)] = np.inf
        post[i] = int(np.argmin(d))
    net = jx.Network([jc])
    connect(net.select(nodes=post), net.select(nodes=post), AmpaNmda("AN"))
    edges = net.select(edges="all")
    edges.set("AN_gA", 1e-3 * float(cell.synapses[0].gmax[0]))  # nS -> uS
    edges.set("AN_gN", 1e-3 * float(cell.synapses[1].gmax[0]))
    spk = np.zeros((n_syn, n_steps))
    first = []
    for i, steps in enumerate(_delivery_steps(np.asarray(trains.times), n_steps)):
        spk[i, steps[steps > 0] - 1] = 1.0  # clamped at the end of step k-1, used in step k
        if steps.size and steps[0] == 0:
            first.append(i)
    edges.clamp("AN_spk", jnp.asarray(spk), verbose=False)
    if first:
        net.select(edges=np.asarray(first)).set("AN_spk", 1.0)
    net.init_states(delta_t=DT)
    net.select(nodes=[soma]).record("v", verbose=False)
    n_comp = len(nodes)

    # Views and parameters are made before any jit: Jaxley caches arrays on the module
    # while tracing (``to_jax``), and views made afterwards would pick up those tracers.
    for k in HH_PARAMS:
        net.cell(0).make_trainable(k, verbose=False)
    edges = net.select(edges="all")
    edges.make_trainable("AN_gA", verbose=False)
    edges.make_trainable("AN_gN", verbose=False)
    net.to_jax()
    params = net.get_parameters()
    lengths = _checkpoint_lengths(n_steps)
    build_s = time.perf_counter() - t0

    fwd = jax.jit(lambda p: jx.integrate(net, params=p, delta_t=DT))
    first_s, fwd_s, v = first_and_best(lambda: fwd(params), repeats)
    rss_fwd = peak_rss_mb()

    def loss(p):
        return jnp.mean(jx.integrate(net, params=p, delta_t=DT,
                                     checkpoint_lengths=lengths)[0] ** 2)

    vg = jax.jit(jax.value_and_grad(loss))
    grad_first, grad_s, _ = first_and_best(lambda: vg(params), repeats)
    rss_grad = peak_rss_mb()
    print(f"  Jaxley: model build {build_s:.1f} s, grad compile {grad_first - grad_s:.2f} s, "
          f"checkpoint_lengths {lengths}; peak RSS after forward {rss_fwd:.0f} MB, after "
          f"value-and-grad {rss_grad:.0f} MB", flush=True)
    print_xla_temp("Jaxley", vg.lower(params).compile())
    timing = {"compile_s": max(first_s - fwd_s, 0.0), "forward_s": fwd_s, "grad_s": grad_s}
    return timing, np.asarray(v[0], dtype=float), n_comp, jx.__version__


# --------------------------------------------------------------------------- driver
def main(argv=None) -> int:
    """Run the benchmark and write the JSON rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 sites for 100 ms, one repeat")
    parser.add_argument("--json", default=str(HERE / "results" / "synapses.json"),
                        help="where to write the rows")
    parser.add_argument("--no-jaxley", action="store_true", help="skip the Jaxley peer")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per measurement (best is kept; default 3, quick 1)")
    args = parser.parse_args(argv)
    if not SWC.exists():
        print(f"error: {SWC} not found (shared data)", file=sys.stderr)
        return 1
    repeats = args.repeats or (1 if args.quick else 3)
    n_syn, t1 = CASES[args.quick]
    name = f"C060114A5_nseg2_{n_syn}syn_{t1:g}ms"
    morph, cell, sites, trains, stim = build(n_syn, t1)
    comps = cell.comps
    n_seg = int((~comps.is_junction).sum())
    steps = round(t1 / DT)
    n_spk = int(np.isfinite(np.asarray(trains.times)).sum())
    print(f"[{name}] {comps.n} nodes ({n_seg} segments), {n_syn} sites x (AMPA + NMDA), "
          f"{n_spk} presynaptic spikes, {steps} steps", flush=True)

    results = {}
    nrn, v_ref = bench_neuron(cell, morph, stim, t1, repeats)
    results["NEURON"] = (nrn, v_ref, n_seg, peak_rss_mb())
    jdx, v = bench_jaxdend(cell, stim, t1, repeats)
    results["jaxdend"] = (jdx, v, n_seg, peak_rss_mb())
    if not args.no_jaxley:
        try:
            timing, v_jx, n_comp, version = bench_jaxley(cell, sites, trains, t1, repeats)
            results[f"Jaxley {version}"] = (timing, v_jx, n_comp, peak_rss_mb())
        except Exception as err:  # noqa: BLE001 - report and continue
            print(f"  Jaxley skipped: {type(err).__name__}: {err}", flush=True)

    rows = []
    for sim, (timing, trace, n_comp, rss) in results.items():
        err = float(np.mean(np.abs(trace - v_ref))) if len(trace) == len(v_ref) else None
        row = {
            "case": name, "n_comp": int(n_comp), "n_syn": n_syn, "simulator": sim,
            "compile_s": timing["compile_s"], "forward_s": timing["forward_s"],
            "grad_s": timing["grad_s"], "mean_abs_err_mV": err,
            "comp_steps_per_s": n_comp * steps / timing["forward_s"],
            "peak_rss_MB": rss,
            "spikes": int(len(jd.features.spike_times(np.arange(len(trace)) * DT, trace))),
        }
        rows.append(row)
        print("  " + json.dumps(row), flush=True)
    print_table(rows, skip=())
    write_rows(rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
