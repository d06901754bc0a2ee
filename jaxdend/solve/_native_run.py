"""Whole runs of HH cells as one native call on CPU (`native/hh_run.cc`), forward and reverse.

The scan path of `simulate` takes each step of a small cell as two native calls (HH's gate
step and the tree solve) and a few XLA loops, and on CPU their launch costs more than their
arithmetic: the 46-segment reduced pyramidal cell alone (batch 1) spent ~1.5 us per step, a
third of it computing. For cells that hold only HH and leak channels, integrated by
`BackwardEuler` or `CrankNicolson` without rate tables, synapses, plasticity rules or gap
junctions, current clamps as the stimulus and membrane voltages as the recordings, `plan`
returns a function that runs every step in one native call (the same formulas, see
`native/hh_run.cc`; results agree with the scan path to round-off). Under vmap, groups of
eight cells run side by side.

Derivatives: a custom JVP whose tangent is the scan path's JVP (forward mode: `jax.jvp`,
`jax.jacfwd`, Hessian-vector products) and whose transpose (reverse mode: `jax.grad`) is the
native reverse run: the forward run keeps the state every ~sqrt(n_steps) steps, and the
reverse recomputes each such unit from its start and reverses its steps by hand-written
adjoints (O(sqrt(n_steps)) memory whatever `simulate`'s `checkpoint`). Programs for other
platforms take the scan path (`jax.lax.platform_dependent`; gradients on a machine whose
default backend is not the CPU skip the native run altogether). ``JAXDEND_NATIVE=0`` turns
it off with the other native code.

Units: time ms, voltage mV, current nA, conductance uS.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._cell import AREA_TO_UNITS, Cell
from .._linear import linear_map
from ..channels import HH, Leak
from ..channels._hh import _hh_q10
from . import _native
from ._solvers import BackwardEuler, CrankNicolson


def cell_fits(cell: Cell) -> bool:
    """True if runs of `cell` can take the native path (one HH channel and leaks, no
    synapses, plasticity rules or gap junctions, the "sequential" tree schedule) when the
    solver, stimulus and recordings fit too (see the module docstring)."""
    if cell.synapses or cell.rules or cell.gap_junctions is not None:
        return False
    kinds = [type(ch) for ch in cell.channels]
    return (cell.plan.schedule == "sequential" and kinds.count(HH) == 1
            and all(k in (HH, Leak) for k in kinds))


def _applies(cell: Cell, solver, stimulus, y0, probes) -> bool:
    """True if the run fits `native/hh_run.cc` (see the module docstring)."""
    if type(solver) not in (BackwardEuler, CrankNicolson) or solver.rate_table is not None:
        return False
    if stimulus.inputs or not cell_fits(cell):
        return False
    kinds = [type(ch) for ch in cell.channels]
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
    """The ten per-node arrays of `native/hh_run.cc`: g_na, g_k (S/cm^2, zero where HH is
    not inserted), e_na, e_k (mV), g_l (S/cm^2) and e_l (mV) of HH's leak and every Leak as
    one, the membrane area (um^2 x 1e-2, so that S/cm^2 times it is uS), C/h, the axial
    conductance and the axial part of the diagonal (uS); and k = dt q10 (ms)."""
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


def _unit(n_steps: int) -> int:
    """Steps per checkpointed unit of the native reverse run: about sqrt(n_steps), so that
    the unit starts (n_steps / unit states) and one unit's kept states (unit states) balance."""
    return max(1, round(math.sqrt(n_steps)))


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
    i_hh = [type(ch) for ch in cell.channels].index(HH)
    attrs = dict(parent=parent, up=up, down=down,
                 clamp_node=[c.node for c in term.stimulus.clamps],
                 probe=np.concatenate(index) if index else np.zeros(0, np.int64),
                 steps=n_steps, every=every, crank=isinstance(solver, CrankNicolson),
                 delta=y0["v"].dtype == jnp.float32)
    unit = _unit(n_steps)

    def prep(term, y0):
        """The native run's inputs: state (v, m, h, n), node parameters, k, clamp currents."""
        cell, stim = term.cell, term.stimulus
        v = jnp.asarray(y0["v"])
        params, k = _node_params(cell, solver, dt, v.dtype)
        t_mid = t0 + jnp.arange(n_steps) * dt + 0.5 * dt  # as the scan's steps
        amps = (jnp.stack([jax.vmap(c.waveform)(t_mid) for c in stim.clamps], axis=1)
                if stim.clamps else jnp.zeros((n_steps, 0)))
        hh = y0["channels"][i_hh]
        state = (v, *(jnp.asarray(hh[g], v.dtype) for g in ("m", "h", "n")))
        return state, params, k, amps.astype(v.dtype)

    def assemble(y0, rec, final):
        """(final state, recordings) in `core`'s structure."""
        chans = list(y0["channels"])
        chans[i_hh] = dict(chans[i_hh], m=final[1], h=final[2], n=final[3])
        recs = dict(zip(names, jnp.split(rec, split, axis=1)))
        return dict(y0, v=final[0], channels=tuple(chans)), recs

    def native(term, y0, with_starts=False):
        state, params, k, amps = prep(term, y0)
        out = _native.hh_run(state, params, k, amps, unit=unit if with_starts else 0, **attrs)
        values = assemble(y0, out[0], out[1])
        return (values, out[2]) if with_starts else values

    def reverse(prep_d, d, starts, cts):
        """Cotangents of the array leaves `d` (that `prep_d` maps to `prep`'s outputs) from
        those of (final state, recordings), by the native reverse run."""
        y1_ct, recs_ct = cts
        (state, params, k, amps), pull = jax.vjp(prep_d, d)
        hh_ct = y1_ct["channels"][i_hh]
        final_ct = (y1_ct["v"], hh_ct["m"], hh_ct["h"], hh_ct["n"])
        rec_ct = (jnp.concatenate([recs_ct[k] for k in names], axis=1) if names
                  else jnp.zeros((n_steps // every, 0), state[0].dtype))
        st_ct, p_ct, k_ct, a_ct = _native.hh_run_vjp(params, k, amps, starts, rec_ct,
                                                     final_ct, unit=unit, **attrs)
        return pull((st_ct, p_ct, k_ct, a_ct))[0]

    def run(term, y0):
        leaves, tree = jax.tree_util.tree_flatten((term, y0))
        dyn = [i for i, x in enumerate(leaves) if isinstance(x, jax.Array)]
        flt = [i for i in dyn if jnp.issubdtype(leaves[i].dtype, jnp.inexact)]

        def combine(d):
            full = list(leaves)
            for i, x in zip(dyn, d):
                full[i] = x
            return jax.tree_util.tree_unflatten(tree, full)

        def branch(fn, **kw):
            return lambda d: fn(*combine(d), **kw)

        @jax.custom_jvp
        def values(d):
            return jax.lax.platform_dependent(d, cpu=branch(native), default=branch(core))

        @values.defjvp
        def _values_jvp(primals, tangents):
            if jax.default_backend() != "cpu":  # forward and reverse through the scan path
                return jax.jvp(branch(core), primals, tangents)
            (d,), (t,) = primals, tangents
            units = (-(-n_steps // unit), 4, cell.n)

            def core_starts(d):  # other platforms: no starts (their reverse is the scan's)
                return core(*combine(d)), jnp.zeros(units, jnp.result_type(y0["v"]))

            @jax.custom_jvp
            def with_starts(d):
                return jax.lax.platform_dependent(
                    d, cpu=branch(native, with_starts=True), default=core_starts)

            @with_starts.defjvp
            def _with_starts_jvp(primals, tangents):  # for derivatives of this rule (HVPs)
                out, starts = with_starts(*primals)
                return (out, starts), (jax.jvp(branch(core), primals, tangents)[1],
                                       jnp.zeros_like(starts))

            out, starts = with_starts(d)
            lin = [t[dyn.index(i)] for i in flt]
            out_leaves, out_tree = jax.tree_util.tree_flatten(out)
            base = [np.ndim(x) for x in (*d, starts)]
            spec = _Tangent(d, flt, dyn, combine, core, reverse, prep, out_tree, base,
                            [jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in out_leaves])
            t_out = _run_tangent(*d, starts, *lin, n_res=len(d) + 1, spec=spec)
            return out, jax.tree_util.tree_unflatten(out_tree, t_out)

        return values([leaves[i] for i in dyn])

    return run


class _Tangent:
    """The settings of one `_run_tangent` (hashable by identity): the tangent of the run is
    the scan path's JVP; its transpose the native reverse run on CPU, the scan path's VJP
    elsewhere."""

    def __init__(self, d, flt, dyn, combine, core, reverse, prep, out_tree, base, out_shapes):
        self.n_d, self.flt, self.dyn = len(d), flt, dyn
        self.combine, self.core, self.reverse, self.prep = combine, core, reverse, prep
        self.out_tree, self.base, self.out_shapes = out_tree, base, out_shapes

    def shapes(self, *args):
        """The tangents' shapes: the outputs' with `args`' leading batch axes."""
        lead = args[0].shape[:len(args[0].shape) - self.base[0]]
        return [jax.ShapeDtypeStruct(lead + o.shape, o.dtype) for o in self.out_shapes]

    def _vmapped(self, fn, args):
        """fn over the leading batch axes that `linear_map`'s batching put on every arg."""
        for _ in range(np.ndim(args[0]) - self.base[0]):
            fn = jax.vmap(fn)
        return fn(*args)

    def _full_tangent(self, d, lin):
        t = [jnp.zeros(np.shape(x), jax.dtypes.float0) for x in d]
        for i, x in zip(self.flt, lin):
            t[self.dyn.index(i)] = x
        return t

    def forward(self, *args):
        def one(*a):
            dd, ll = list(a[:self.n_d]), list(a[self.n_d + 1:])
            out = jax.jvp(lambda x: self.core(*self.combine(x)), (dd,),
                          (self._full_tangent(dd, ll),))[1]
            return tuple(jax.tree_util.tree_leaves(out))

        return self._vmapped(one, args)

    def transpose(self, *args):
        def one(*a):
            d, starts = list(a[:self.n_d]), a[self.n_d]
            cts = jax.tree_util.tree_unflatten(self.out_tree, list(a[self.n_d + 1:]))
            pos = [self.dyn.index(i) for i in self.flt]

            def native_t(d, starts, cts):
                d_ct = self.reverse(lambda x: self.prep(*self.combine(x)), d, starts, cts)
                return tuple(d_ct[p] for p in pos)

            def scan_t(d, starts, cts):
                _, pull = jax.vjp(lambda x: self.core(*self.combine(x)), d)
                (d_ct,) = pull(cts)
                return tuple(d_ct[p] for p in pos)

            return jax.lax.platform_dependent(d, starts, cts, cpu=native_t, default=scan_t)

        return self._vmapped(one, args)


def _tangent_forward(*args, n_res, spec):
    return spec.forward(*args)


def _tangent_transpose(*args, n_res, spec):
    return spec.transpose(*args)


_run_tangent = linear_map("jaxdend_hh_run_tangent", _tangent_forward, _tangent_transpose, None,
                          shapes=lambda *args, n_res, spec: spec.shapes(*args))
