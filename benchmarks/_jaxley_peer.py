"""Jaxley peer benchmark: the same HH current-clamp experiment as jaxdend/NEURON,
run in Jaxley (https://github.com/jaxleyverse/jaxley), for timing and trace comparison.

What had to match for Jaxley to agree with NEURON (the earlier version of this peer
differed by ~7 mV mean at the soma, 2 spikes instead of 5):

* **Soma membrane area (the cause).** Jaxley 0.14's ``read_swc`` reads the 3-point soma
  (centre plus two points at +-r along y, radius r) as two soma branches, centre -> -y
  and centre -> +y, of length r each.  For the second branch it drops the centre point
  (the centre is a somatic branch point, which the reader strips from the branches
  leaving it), so that branch is traced by a single point, which Jaxley treats as a
  sphere: each of its compartments gets area 4 pi r^2 / ncomp instead of
  2 pi r (r / ncomp).  Its soma was therefore 6 pi r^2 = 2,569 um^2 instead of NEURON's
  4 pi r^2 = 1,713 um^2 (1.5x; C060114A5_derived.swc, r = 11.67 um), with 1.5x the soma
  capacitance and HH conductance.  At 2 nA this cell fires near its repetitive-firing
  threshold, and the extra soma load stopped it after 2 spikes.  `_fix_point_branches`
  sets the radius of the compartments of single-point branches to its own value, which
  makes Jaxley recompute area, volume and resistive loads as cylinders; the total
  membrane area is then NEURON's to 2e-9 relative (82,777.42 um^2).  All other
  branches' lengths equal NEURON's section lengths to 1e-4 um.
* **Compartments.** NEURON's nseg per section can be reproduced: `run_jaxley` takes
  ``ncomp`` as one int (Jaxley's ``read_swc(ncomp=...)``) or one int per Jaxley branch
  (applied with ``branch(b).set_ncomp``; the two soma branches come first, then the
  sections in SWC order).  With ``ncomp=2`` against NEURON nseg = 2 (soma nseg = 1) the
  mean |dV| at the soma is 0.035 mV; with NEURON's d_lambda = 0.1 nseg per branch
  against NEURON d_lambda = 0.1 it is 0.07 mV, same 5 spikes (a uniform ncomp = 5
  gives 0.24 mV there).  The rest is Jaxley's cylinder compartments (radius averaged
  over the compartment, axial resistance of that cylinder: ~1% below NEURON's frusta
  integral per branch at ncomp = 2), the soma split into 2 * ncomp compartments
  instead of NEURON's one, and the solvers' different gate staggering.
* Stimulus location, units and timing, HH parameters, initial states, cm, Ra and
  temperature already matched (resting traces agree exactly before the step; see
  below).

Model set-up (all through Jaxley's public API):

* Morphology: ``jx.read_swc(path, ncomp=ncomp)`` with its defaults (graph backend,
  ``assign_groups=True``), then the soma area fix above.  The soma is a cylinder of
  length 2r and diameter 2r (lateral area 4 pi r^2, as NEURON's 3-point-soma import).
  Stimulus and recording are
  at the soma compartment whose node is nearest the SWC root point (soma centre),
  found from ``cell.nodes`` and addressed as ``cell.branch(b).comp(c)``; its node is
  r/(2*ncomp) from the centre (NEURON's soma(0.5)).  Note: plain
  ``cell.branch(0).comp(0)`` would be the *far* (-y) end of the first soma branch
  (Jaxley orders branch 0 tip -> centre), 5r/6 from the centre for ncomp=3; at
  ncomp=1 both choices coincide.
* Discretisation vs NEURON: ``read_swc`` uses a **fixed number of compartments per
  branch** (``ncomp``), so total compartments = ncomp * n_branches (377 branches for
  C060114A5_derived.swc).  NEURON's d_lambda rule instead picks an odd ``nseg`` per
  section from L / (d_lambda * lambda_AC(f)); pass that per branch (see above) to get
  NEURON's layout.  Jaxley's compartments within a branch are equal-length,
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

import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import jaxley as jx  # noqa: E402
import numpy as np  # noqa: E402
from _common import first_and_best  # noqa: E402  (benchmarks/ is on sys.path)
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


def _fix_point_branches(cell):
    """Give compartments of zero-length traced branches the cylinder area 2 pi r l.

    Jaxley 0.14's SWC reader drops the soma centre from the second soma branch
    (centre -> +y) because the centre is a somatic branch point, which leaves that branch
    a single traced point; a single point is taken as a sphere, so each of its
    compartments gets area 4 pi r^2 / ncomp instead of 2 pi r (r / ncomp), and the
    soma's total area becomes 6 pi r^2 instead of the 4 pi r^2 of NEURON's cylinder.
    (``cell.xyzr`` of that branch holds the +y point twice, so it is found as a branch
    whose traced points all coincide.)  Setting the radius (to its own value) makes
    Jaxley recompute area, volume and resistive loads of those compartments as cylinders
    of their length and radius (in place).  Returns the number of compartments changed."""
    nodes = cell.nodes
    bad = [b for b, xyzr in enumerate(cell.xyzr) if np.ptp(xyzr[:, :3], axis=0).max() == 0.0]
    idx = nodes.index[nodes["global_branch_index"].isin(bad)].to_numpy()
    if idx.size:
        with warnings.catch_warnings():  # "Jaxley recomputes the membrane surface area"
            warnings.simplefilter("ignore")
            cell.select(nodes=idx).set("radius", nodes.loc[idx, "radius"].to_numpy())
    return int(idx.size)


def _read_cell(swc_path, ncomp):
    """``jx.read_swc`` with `ncomp` per branch (an int, or one int per Jaxley branch)."""
    per_branch = np.atleast_1d(np.asarray(ncomp, dtype=int))
    cell = jx.read_swc(swc_path, ncomp=int(per_branch[0]))
    if per_branch.size > 1:
        n_branches = len(cell.xyzr)
        if per_branch.size != n_branches:
            raise ValueError(f"ncomp has {per_branch.size} entries, the cell {n_branches} "
                             "branches")
        for b, n in enumerate(per_branch):
            if n != per_branch[0]:
                cell.branch(b).set_ncomp(int(n), initialize=False)
        cell.initialize()
    _fix_point_branches(cell)
    return cell


def hh_cell(swc_path, ncomp):
    """The SWC cell in Jaxley with HH everywhere, cm 1 uF/cm^2, Ra 100 Ohm cm, v -65 mV
    (the soma area corrected as NEURON's; see `_fix_point_branches`)."""
    cell = _read_cell(swc_path, ncomp)
    cell.insert(HH())
    for k, v in HH_PARAMS.items():
        cell.set(k, v)
    cell.set("capacitance", 1.0)
    cell.set("axial_resistivity", 100.0)
    cell.set("v", -65.0)
    return cell


def _build_cell(swc_path, ncomp, t1, dt, amp, delay, dur):
    cell = hh_cell(swc_path, ncomp)
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


def run_jaxley(swc_path: str, ncomp, t1: float, dt: float, amp: float,
               delay: float, dur: float, repeats: int = 3) -> dict:
    """Run the HH step-current experiment in Jaxley; see module docstring.

    ncomp: compartments per branch, an int or a sequence with one int per Jaxley branch
    (soma branches first; see the module docstring).
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

    first_s, forward_s, v = first_and_best(lambda: fwd(params), repeats)
    compile_s = max(first_s - forward_s, 0.0)

    def loss(p):
        return jnp.mean(simulate(p)[0] ** 2)

    vg = jax.jit(jax.value_and_grad(loss))
    _, grad_s, _ = first_and_best(lambda: vg(params), repeats)

    v_soma = np.asarray(v[0], dtype=float)
    assert v_soma.shape[0] == n_steps + 1, (v_soma.shape, n_steps)
    t = np.arange(n_steps + 1) * dt
    return dict(n_comp=n_comp, compile_s=compile_s, forward_s=forward_s,
                grad_s=grad_s, t=t, v_soma=v_soma, version=jx.__version__)
