"""Jaxley peer benchmark: the same HH current-clamp experiment as jaxdend/NEURON,
run in Jaxley (https://github.com/jaxleyverse/jaxley), for timing and trace comparison.

Model set-up (all through Jaxley's public API):

* Morphology: ``jx.read_swc(path, ncomp=ncomp)`` with its defaults (graph backend,
  ``assign_groups=True``).  The 3-point soma of the SWC files (centre point plus two
  points at +-r along y, all with radius r) is read by Jaxley as **two soma
  branches** (centre -> -y and centre -> +y), each a cylinder of length r and radius
  r, so the soma is a cylinder of length 2r and diameter 2r -- the same lateral area
  (4 pi r^2) that NEURON's 3-point-soma import gives.  The soma branches get
  ``ncomp`` compartments each like every other branch.  Stimulus and recording are
  at the soma compartment whose node is nearest the SWC root point (soma centre),
  found from ``cell.nodes`` and addressed as ``cell.branch(b).comp(c)``; its node is
  r/(2*ncomp) from the centre (NEURON's soma(0.5)).  Note: plain
  ``cell.branch(0).comp(0)`` would be the *far* (-y) end of the first soma branch
  (Jaxley orders branch 0 tip -> centre), 5r/6 from the centre for ncomp=3; at
  ncomp=1 both choices coincide.
* Discretisation vs NEURON: Jaxley uses a **fixed number of compartments per
  branch** (``ncomp``), independent of branch length and electrotonic length, so
  total compartments = ncomp * n_branches (377 branches for C060114A5_derived.swc).
  NEURON's d_lambda rule instead picks an odd ``nseg`` per section from
  L / (d_lambda * lambda_AC(f)), so long thin dendrites get many segments and short
  thick ones get 1.  Jaxley's compartments within a branch are equal-length,
  with radius/length averaged from the traced points.  Also, Jaxley's branch points are
  not separate zero-area nodes in the same way as NEURON's section ends (Jaxley
  couples branch-end compartments through branch-point nodes with its own
  conductance formula), so even at matched compartment counts the traces differ
  slightly.
* Channels: ``jx.channels.HH`` everywhere, parameters set explicitly to NEURON's hh
  defaults (gNa 0.12, gK 0.036, gLeak 0.0003 S/cm2; eNa 50, eK -77, eLeak -54.3 mV).
  Temperature: Jaxley 0.14's ``HH`` has **no temperature dependence** (no q10 factor
  in ``m_gate``/``h_gate``/``n_gate``); its rate functions are the classic
  Hodgkin-Huxley rates identical to NEURON's ``hh.mod`` with
  q10 = 3**((celsius - 6.3)/10) = 1, i.e. they equal NEURON hh at celsius = 6.3 degC.
  Nothing needs setting.
* cm = 1 uF/cm2, Ra = 100 Ohm cm, v_init = -65 mV, gating states initialised at
  their steady state for v = -65 (``cell.init_states()``, like NEURON's finitialize).
* Solver: ``jx.integrate`` default (``solver="bwd_euler"``, ``voltage_solver=
  "jaxley.dhs"``), fixed step ``dt``.  Jaxley updates the gates with an exponential
  (Rush-Larsen type) step using the *old* voltage, then solves voltage implicitly; this
  is similar but not identical to NEURON's staggered (half-step offset) scheme.
* Stimulus: ``jx.step_current(delay, dur, amp, dt, t1)`` (``int(delay/dt)`` to
  ``int((delay+dur)/dt)`` samples set to amp), trimmed to exactly
  ``n_steps = round(t1/dt)`` samples.  Sample k is the current applied during step
  k (t_k -> t_{k+1}).

Output alignment: ``jx.integrate`` returns the initial state plus one sample per
entry of the stimulus array.  ``jx.step_current`` returns ``int(t1//dt) + 2``
samples (and ``t1//dt`` is subject to float floor, e.g. 100.0 // 0.025 == 3999.0),
so we trim the stimulus to ``n_steps`` samples and do **not** pass ``t_max``; the
recorded trace then has exactly ``n_steps + 1`` samples at t = 0, dt, ..., t1.
"""

from __future__ import annotations

import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jaxley as jx  # noqa: E402
import numpy as np  # noqa: E402
from jaxley.channels import HH  # noqa: E402

HH_PARAMS = {
    "HH_gNa": 0.12,
    "HH_gK": 0.036,
    "HH_gLeak": 0.0003,
    "HH_eNa": 50.0,
    "HH_eK": -77.0,
    "HH_eLeak": -54.3,
}


def _soma_centre_comp(cell, swc_path):
    """(branch, local comp) of the soma compartment nearest the SWC root point.

    Falls back to branch(0).comp(0) if the cell has no soma group."""
    nodes = cell.nodes
    if "soma" not in nodes or not nodes["soma"].any():
        return 0, 0
    root = np.loadtxt(swc_path, comments="#", ndmin=2)[0, 2:5]
    soma = nodes[nodes["soma"]]
    d = np.linalg.norm(soma[["x", "y", "z"]].to_numpy(float) - root, axis=1)
    row = soma.iloc[int(np.argmin(d))]
    b = int(row["global_branch_index"])
    first = int(nodes.loc[nodes["global_branch_index"] == b, "global_comp_index"].min())
    return b, int(row["global_comp_index"]) - first


def _build_cell(swc_path, ncomp, t1, dt, amp, delay, dur):
    cell = jx.read_swc(swc_path, ncomp=ncomp)
    cell.insert(HH())
    for k, v in HH_PARAMS.items():
        cell.set(k, v)
    cell.set("capacitance", 1.0)
    cell.set("axial_resistivity", 100.0)
    cell.set("v", -65.0)
    cell.init_states(delta_t=dt)

    n_steps = int(round(t1 / dt))
    cur = jx.step_current(delay, dur, amp, dt, t1)
    cur = np.asarray(cur)[:n_steps]
    if cur.shape[0] < n_steps:  # defensive; step_current gives >= n_steps + 1
        cur = np.concatenate([cur, np.zeros(n_steps - cur.shape[0])])
    b, c = _soma_centre_comp(cell, swc_path)
    soma = cell.branch(b).comp(c)
    soma.stimulate(jnp.asarray(cur), verbose=False)
    soma.record("v", verbose=False)
    return cell, n_steps


def _best_time(fn, arg, repeats):
    best = np.inf
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(arg))
        best = min(best, time.perf_counter() - t0)
    return best


def run_jaxley(swc_path: str, ncomp: int, t1: float, dt: float, amp: float,
               delay: float, dur: float, repeats: int = 3) -> dict:
    """Run the HH step-current experiment in Jaxley; see module docstring.

    Returns dict(n_comp, compile_s, forward_s, grad_s, t, v_soma, version).
    compile_s = (first jitted forward call) - (best steady forward run).
    grad_s = best of `repeats` jitted value_and_grad of mean(v_soma**2) w.r.t. the
    six HH parameters (one shared scalar each, via make_trainable).
    """
    cell, n_steps = _build_cell(swc_path, ncomp, t1, dt, amp, delay, dur)
    n_comp = int(len(cell.nodes))

    for k in HH_PARAMS:
        cell.make_trainable(k, verbose=False)
    params = cell.get_parameters()

    def simulate(p):
        return jx.integrate(cell, params=p, delta_t=dt)

    fwd = jax.jit(simulate)

    t0 = time.perf_counter()
    v = jax.block_until_ready(fwd(params))
    first_s = time.perf_counter() - t0
    forward_s = _best_time(fwd, params, repeats)
    compile_s = max(first_s - forward_s, 0.0)

    def loss(p):
        return jnp.mean(simulate(p)[0] ** 2)

    vg = jax.jit(jax.value_and_grad(loss))
    jax.block_until_ready(vg(params))  # compile
    grad_s = _best_time(vg, params, repeats)

    v_soma = np.asarray(v[0], dtype=float)
    assert v_soma.shape[0] == n_steps + 1, (v_soma.shape, n_steps)
    t = np.arange(n_steps + 1) * dt
    return dict(n_comp=n_comp, compile_s=compile_s, forward_s=forward_s,
                grad_s=grad_s, t=t, v_soma=v_soma, version=jx.__version__)
