"""Whole forward runs of HH cells as one native call on CPU (`native/hh_run.cc`).

The scan path of `simulate` takes each step of a small cell as two native calls (HH's gate
step and the tree solve) and a few XLA loops, and on CPU their launch costs more than their
arithmetic: the 46-segment reduced pyramidal cell alone (batch 1) spent ~1.5 us per step, a
third of it computing. For cells that hold only HH and leak channels, integrated by
`BackwardEuler` or `CrankNicolson` without rate tables, synapses, plasticity rules or gap
junctions, current clamps as the stimulus and membrane voltages as the recordings, `plan`
returns a function that runs every step in one native call (the same formulas, see
`native/hh_run.cc`; results agree with the scan path to round-off).

Only the values come from it: a custom JVP whose rule is the scan path's, so gradients,
JVPs and Hessians go through the scan path and its checkpointing exactly as before, and
GPU/TPU programs take the scan path too (`jax.lax.platform_dependent`). Under vmap the batch
elements run one after another in the call. ``JAXDEND_NATIVE=0`` turns it off with the
other native code.

Units: time ms, voltage mV, current nA, conductance uS.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._cell import AREA_TO_UNITS, Cell
from ..channels import HH, Leak
from ..channels._hh import _hh_q10
from . import _native
from ._solvers import BackwardEuler, CrankNicolson


def _applies(cell: Cell, solver, stimulus, y0, probes) -> bool:
    """True if the run fits `native/hh_run.cc` (see the module docstring)."""
    if type(solver) not in (BackwardEuler, CrankNicolson) or solver.rate_table is not None:
        return False
    if cell.synapses or cell.rules or cell.gap_junctions is not None or stimulus.inputs:
        return False
    if cell.plan.schedule != "sequential":
        return False
    kinds = [type(ch) for ch in cell.channels]
    if kinds.count(HH) != 1 or any(k not in (HH, Leak) for k in kinds):
        return False
    if set(y0) != {"v", "channels"} or any(p.state != "v" for p in probes.values()):
        return False
    junction = np.asarray(cell.comps.is_junction)
    if any(junction[np.asarray(p.index)].any() for p in probes.values()):
        return False
    v = y0["v"]
    hh = y0["channels"][kinds.index(HH)]
    arrays = [v, *(hh.get(k) for k in ("m", "h", "n"))]
    if any(a is None or jnp.shape(a) != (cell.n,) or jnp.result_type(a) != v.dtype
           for a in arrays):
        return False
    return _native.hh_gates_supported(v)


def _node_params(cell: Cell, solver, dt, dtype):
    """The ten per-node arrays of `native/hh_run.cc` (g_na, g_k, e_na, e_k, g_l, e_l in
    S/cm^2 and mV, area in cm^2 x 1e-2 ... so that their products are nA and uS, then C/h,
    axial g and diagonal in uS) and k = dt q10 (ms)."""
    n = cell.n
    i_hh = [type(ch) for ch in cell.channels].index(HH)
    hh, mask = cell.channels[i_hh], cell.masks[i_hh]

    def per_node(x, where=None):
        x = jnp.broadcast_to(jnp.asarray(x, dtype), (n,))
        return x if where is None else jnp.where(where, x, 0.0).astype(dtype)

    g_l, e_l = per_node(hh.g_l, mask), per_node(hh.e_l)
    leaks = [(ch, m) for ch, m in zip(cell.channels, cell.masks) if type(ch) is Leak]
    if leaks:  # every leak as one: g = sum of g, e = the g-weighted mean reversal
        ge = g_l * e_l
        for ch, m in leaks:
            g = per_node(ch.g, m)
            g_l, ge = g_l + g, ge + g * per_node(ch.e)
        e_l = jnp.where(g_l > 0, ge / jnp.where(g_l > 0, g_l, 1.0), 0.0)
    area = jnp.asarray(np.asarray(cell.comps.area) * AREA_TO_UNITS, dtype)
    matrix = solver.matrix(cell, dt)
    params = (per_node(hh.g_na, mask), per_node(hh.g_k, mask), per_node(hh.e_na),
              per_node(hh.e_k), g_l, e_l, area,
              *(jnp.asarray(x, dtype) for x in (matrix.cdt, matrix.g, matrix.diag)))
    k = jnp.asarray(jnp.asarray(dt, dtype) * _hh_q10(cell.celsius), dtype)
    return params, k


def plan(term, solver, y0, t0: float, dt: float, n_steps: int, every: int, probes, core):
    """A function ``(term, y0) -> (final state, recordings)`` doing what `core` (the scan
    path, same signature) does, its values from one native call on CPU, or None where the
    run does not fit it (see the module docstring). Recordings: name -> (n_steps / every,
    nodes), the initial state excluded."""
    cell = term.cell
    if not _applies(cell, solver, term.stimulus, y0, probes):
        return None
    names = list(probes)
    index = [np.asarray(probes[k].index, np.int64).reshape(-1) for k in names]
    split = np.cumsum([i.size for i in index])[:-1]
    parent, up, down = cell.plan.native_orders
    nodes = [c.node for c in term.stimulus.clamps]
    i_hh = [type(ch) for ch in cell.channels].index(HH)
    crank = isinstance(solver, CrankNicolson)

    def native(term, y0):
        cell, stim = term.cell, term.stimulus
        v = y0["v"]
        params, k = _node_params(cell, solver, dt, v.dtype)
        t_mid = t0 + jnp.arange(n_steps) * dt + 0.5 * dt  # as the scan's steps
        amps = (jnp.stack([jax.vmap(c.waveform)(t_mid) for c in stim.clamps], axis=1)
                if stim.clamps else jnp.zeros((n_steps, 0)))
        hh = y0["channels"][i_hh]
        rec, (v1, m1, h1, n1) = _native.hh_run(
            (v, hh["m"], hh["h"], hh["n"]), params, k, amps.astype(v.dtype), parent=parent,
            up=up, down=down, clamp_node=nodes,
            probe=np.concatenate(index) if index else np.zeros(0, np.int64), steps=n_steps,
            every=every, crank=crank, delta=v.dtype == jnp.float32)
        chans = list(y0["channels"])
        chans[i_hh] = dict(hh, m=m1, h=h1, n=n1)
        recs = dict(zip(names, jnp.split(rec, split, axis=1)))
        return dict(y0, v=v1, channels=tuple(chans)), recs

    def run(term, y0):
        dyn, static = eqx.partition((term, y0), lambda x: isinstance(x, jax.Array))

        def branch(fn):
            return lambda d: fn(*eqx.combine(d, static))

        @jax.custom_jvp
        def values(d):
            return jax.lax.platform_dependent(d, cpu=branch(native), default=branch(core))

        @values.defjvp
        def _values_jvp(primals, tangents):
            return jax.jvp(branch(core), primals, tangents)

        return values(dyn)

    return run
