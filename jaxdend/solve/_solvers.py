"""diffrax term and solvers for the cable equation that exploit the tree structure.

`CableTerm` wraps a `Cell` and a `Stimulus`; its vector field is the full ODE, so any diffrax
solver can integrate it. `BackwardEuler` and `CrankNicolson` are diffrax solvers made for it:
the membrane current is linearised about the current voltage (as NEURON does), the voltage
update is an implicit step solved in O(N) by Hines elimination, and gates are advanced by
exponential Euler with the new voltage (NEURON's staggered ``cnexp`` scheme).

Units: time ms, voltage mV, currents nA, conductances uS, capacitances nF.
"""

from __future__ import annotations

from typing import ClassVar

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from .._cell import Cell
from ..channels import AbstractChannel, exp_euler_gates
from ..plasticity._binding import plasticity_step
from ..stimulus import Stimulus
from . import _checks
from ._tables import RateTable
from ._tree import tree_solve


class CableTerm(dfx.AbstractTerm):
    """The cable equation of `cell` driven by `stimulus`, as a diffrax term.

    The state is ``{"v": (n,) mV, "channels": tuple of per-channel state dicts,
    "synapses": tuple of per-group state dicts}``. Zero-area junction nodes are algebraic:
    their voltage is the conductance-weighted mean of their neighbours, and their derivative
    the weighted mean of the neighbours' derivatives. Presynaptic spikes are jumps of the
    synaptic state; the cable solvers deliver them at the start of each step, the vector
    field describes the dynamics between spikes.
    """

    cell: Cell
    stimulus: Stimulus

    def vf(self, t, y, args):
        """Time derivative of the state (mV/ms and 1/ms) at time `t` (ms)."""
        cell = self.cell
        v = cell.junction_average(y["v"])
        i_ion, _ = cell.membrane_current(y["channels"], v)
        i_syn, _ = cell.synaptic_current(y.get("synapses", ()), v)
        c = cell.capacitance()
        c = jnp.where(jnp.asarray(cell.comps.is_junction), 1.0, c)
        i_ext = self.stimulus.current(t, cell.n)
        dv = cell.junction_average((i_ext - i_ion - i_syn - cell.axial_current(v)) / c)
        dstates = tuple(
            ch.derivatives(st, v, cell.celsius) for ch, st in zip(cell.channels, y["channels"])
        )
        out = {"v": dv, "channels": dstates}
        if cell.synapses:
            out["synapses"] = tuple(g.derivatives(st) for g, st in zip(cell.synapses,
                                                                        y["synapses"]))
        if cell.rules:  # rules act at step ends (cable solvers), not through the vector field
            out["plasticity"] = jax.tree_util.tree_map(jnp.zeros_like, y["plasticity"])
        return out

    def contr(self, t0, t1, **kwargs):
        """The control over [t0, t1] is the time increment (ms)."""
        return t1 - t0

    def prod(self, vf, control):
        """Derivative times time increment."""
        return jax.tree_util.tree_map(lambda x: x * control, vf)


def _unwrap(term):
    """The CableTerm inside diffrax's wrappers (diffeqsolve wraps terms for adaptive steps)."""
    while not isinstance(term, CableTerm):
        if not hasattr(term, "term"):
            raise TypeError(
                f"The jaxdend cable solvers integrate a CableTerm, got {type(term).__name__}."
            )
        term = term.term
    return term


def _uses_gates(channel: AbstractChannel) -> bool:
    return type(channel).gates is not AbstractChannel.gates


class CableMatrix(eqx.Module):
    """The parts of a voltage step's tree matrix that do not change from step to step, for
    steps of `h` ms: ``cdt = C / h`` (uS), the axial conductances ``g`` to the parents (uS)
    and the axial part of the diagonal ``g + sum of the children's g`` (uS).

    Fixed-step loops build it once per run (`AbstractCableSolver.matrix`), so neither the time
    loop nor its adjoint recomputes it: the cotangents of cm and ra then gather in three
    vectors over the run instead of being pushed through the scatter of the diagonal every
    step."""

    cdt: Array
    g: Array
    diag: Array

    @classmethod
    def build(cls, cell: Cell, h) -> CableMatrix:
        """The matrix parts of `cell` for steps of `h` ms."""
        g = cell.axial_conductance()
        par = np.maximum(cell.comps.parent, 0)
        diag = g + jax.ops.segment_sum(g, par, num_segments=cell.n)
        return cls(cell.capacitance() / h, g, diag)


def _implicit_voltage(cell: Cell, stimulus: Stimulus, t_mid, h, v, y, matrix=None, given=None):
    """One linearised implicit voltage step of length h (ms) from state `y` (whose voltage
    is `v`, mV); returns v(t + h) in mV and the channel states for the gate update (the values
    of y's, through the channels' `linearize`). `matrix`: the step's `CableMatrix` for this h
    (built here when None). `given`: channel currents already linearised at y and v (see
    `Cell.linearized_current`)."""
    i_ion, g_ion, channels = cell.linearized_current(y["channels"], v, given)
    if cell.synapses or cell.gap_junctions is not None:
        i_syn, g_syn = cell.synaptic_current(y.get("synapses", ()), v)
        i_ion, g_ion = i_ion + i_syn, g_ion + g_syn
    if matrix is None:
        matrix = CableMatrix.build(cell, h)
        # The barrier keeps XLA from folding this loop-invariant scatter into the per-step
        # diagonal below, so a time loop computes it once instead of every step (tabulated
        # HH step on the 1,080-node tree ~8 % faster).
        matrix = jax.lax.optimization_barrier(matrix)
    cdt, g = matrix.cdt, matrix.g
    d = cdt + g_ion + matrix.diag
    i_ext = stimulus.current(t_mid, cell.n)
    if v.dtype == jnp.float32:
        # NEURON's form: solve for the change of v, so the solve does not carry the rounding
        # of v itself (~-65 mV in 24 bits); float32 traces stay within 0.5 mV of float64
        # where the direct form drifts by several mV at spike upstrokes. One more scatter
        # per step, so float64 keeps the direct form (the two agree to 1e-9 mV there).
        rhs = i_ext - i_ion - cell.axial_current(v)
        return v + tree_solve(cell.plan, d, g, rhs), channels
    b = (cdt + g_ion) * v - i_ion + i_ext
    return tree_solve(cell.plan, d, g, b), channels


def _deliver_spikes(cell: Cell, stimulus: Stimulus, y, t0, dt):
    """Deliver presynaptic spikes due by ``t0 + dt / 2`` (NEURON's fixed-step rule)."""
    if not cell.synapses:
        return y
    syn = tuple(
        g.deliver(st, stimulus.spike_times(g.name), t0 + 0.5 * dt)
        for g, st in zip(cell.synapses, y["synapses"])
    )
    return dict(y, synapses=syn)


def _new_state(cell: Cell, y_prev, y0, v1, dt, tables=None, relinearize=False):
    """State at the end of a step: voltage `v1`, gates and synapses advanced over `dt` ms
    from `y0` (the state after spike delivery), then the plasticity rules applied.
    `tables`: per channel a `GateTable` (tabulated gates) or None (exact update).
    `relinearize`: also return, per channel, its current linearised at the new state (or
    None), for the next step's `_implicit_voltage` (cells without synapses or rules)."""
    states, given = _advance_states(cell, y0["channels"], v1, dt, tables, relinearize)
    out = {"v": v1, "channels": states}
    if cell.synapses:
        out["synapses"] = tuple(g.relax(st, dt) for g, st in zip(cell.synapses, y0["synapses"]))
    if cell.rules:
        out["plasticity"] = y0["plasticity"]
        out = plasticity_step(cell, y_prev, y0, out, dt)
    return (out, given) if relinearize else out


def _advance_states(cell: Cell, states, v, dt, tables=None, relinearize=False):
    """The channels' new states after `dt` ms at `v` (mV), and per channel its current
    linearised at the new state (channels with `exp_euler_linearize` when `relinearize`:
    one step and current whose reverse step is one native loop) or None."""
    out, given = [], []
    tables = (None,) * len(cell.channels) if tables is None else tables
    for ch, st, table in zip(cell.channels, states, tables):
        given.append(None)
        if relinearize and table is None and hasattr(ch, "exp_euler_linearize"):
            new, i, g = ch.exp_euler_linearize(st, v, cell.celsius, dt)
            out.append(new)
            given[-1] = (i, g, new)
        elif table is not None:
            out.append(table.step(type(ch).state_names, st, v, cell.celsius))
        elif _uses_gates(ch):
            out.append(exp_euler_gates(ch, st, v, cell.celsius, dt))
        else:
            der = ch.derivatives(st, v, cell.celsius)
            out.append({k: st[k] + dt * der[k] for k in st})
    return tuple(out), tuple(given)


_DT_MISMATCH = (
    "A RateTable was built for the first step's dt, but a later step has another length: "
    "rate tables need constant steps (diffrax.ConstantStepSize and (t1 - t0) a whole number "
    "of dt); use rate_table=None for other step sizes."
)


class AbstractCableSolver(dfx.AbstractSolver):
    """Base of the tree-structured cable solvers (fixed steps).

    Solver state: the gate tables of `rate_table` (built once per run for the step length of
    the first step) or None.
    """

    term_structure: ClassVar = CableTerm
    interpolation_cls: ClassVar = dfx.LocalLinearInterpolation
    rate_table: eqx.AbstractVar[RateTable | None]

    def init(self, terms, t0, t1, y0, args):
        """The gate tables for steps of ``t1 - t0`` ms (None without `rate_table`)."""
        if self.rate_table is None:
            return None
        return (t1 - t0, self.tables(_unwrap(terms).cell, t1 - t0))

    def tables(self, cell: Cell, dt):
        """Per channel of `cell` its `GateTable` for steps of `dt` ms, or None where the
        channel is integrated exactly (or all None without `rate_table`)."""
        if self.rate_table is None:
            return (None,) * len(cell.channels)
        return tuple(self.rate_table.build(ch, cell.celsius, dt) for ch in cell.channels)

    def matrix(self, cell: Cell, dt) -> CableMatrix:
        """The loop-invariant parts of the voltage step's matrix for steps of `dt` ms."""
        return CableMatrix.build(cell, self._voltage_step(dt))

    def _voltage_step(self, dt):
        """Length (ms) of the implicit voltage step within a step of `dt` ms."""
        return dt

    def func(self, terms, t0, y0, args):
        """Vector field of the term."""
        return terms.vf(t0, y0, args)

    def advance(self, terms: CableTerm, t0, t1, y0, tables=None, dt=None, matrix=None,
                given=None, relinearize=False):
        """Advance the state from t0 to t1 (ms) without an error estimate.

        `tables`: the per-channel gate tables of `tables(cell, t1 - t0)`, built once per run
        (built here when None and the solver has a `rate_table`). `dt`: the step length (ms)
        when the caller knows it exactly (fixed-step loops: then C/dt and the gates' decay
        rates are loop invariants, and the step equals NEURON's fixed dt); default t1 - t0.
        `matrix`: `matrix(cell, dt)`, built once per run by fixed-step loops (built here
        when None). `relinearize` (cells without synapses): return ``(state, given)``, where
        `given` holds per channel its current linearised at the new state (or None), which
        the next step takes as its `given` instead of linearising again (the same values;
        HH's gate step and current then differentiate as one native loop on CPU).
        """
        raise NotImplementedError

    def _tables_for(self, terms, dt, tables):
        if tables is None and self.rate_table is not None:
            tables = self.tables(terms.cell, dt)
        return tables

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        """One diffrax step."""
        term = _unwrap(terms)
        tables = None
        if solver_state is not None:
            dt0, tables = solver_state
            bad = jnp.abs((t1 - t0) - dt0) > 1e-9 * jnp.abs(dt0)
            y0 = _checks.error_if(y0, bad, _DT_MISMATCH)
        y1 = self.advance(term, t0, t1, y0, tables)
        return y1, None, dict(y0=y0, y1=y1), solver_state, dfx.RESULTS.successful


class BackwardEuler(AbstractCableSolver):
    """NEURON's default fixed-step scheme (``secondorder = 0``), first order.

    Linearised backward-Euler voltage step with an O(N) tree solve, current-clamp stimuli
    evaluated at the step midpoint, then exponential-Euler gates at the new voltage.

    Attributes:
        rate_table: optional `jaxdend.solve.RateTable`: gates of channels whose rates depend
            only on voltage and temperature (e.g. HH) are updated from tables interpolated
            linearly (NEURON's ``usetable``; faster, second-order interpolation error).
    """

    rate_table: RateTable | None = None

    def order(self, terms):
        """Order 1."""
        return 1

    def advance(self, terms, t0, t1, y0, tables=None, dt=None, matrix=None, given=None,
                relinearize=False):
        """Advance the state from t0 to t1 (ms); the other arguments as in
        `AbstractCableSolver.advance`."""
        cell = terms.cell
        dt = t1 - t0 if dt is None else dt
        tables = self._tables_for(terms, dt, tables)
        y_d = _deliver_spikes(cell, terms.stimulus, y0, t0, dt)
        v1, channels = _implicit_voltage(cell, terms.stimulus, t0 + 0.5 * dt, dt, y_d["v"], y_d,
                                         matrix, given)
        return _new_state(cell, y0, dict(y_d, channels=channels), v1, dt, tables, relinearize)


class CrankNicolson(AbstractCableSolver):
    """Crank–Nicolson voltage step (second order in the voltage), O(N) tree solve.

    A backward-Euler half step to the midpoint, then linear extrapolation to the end of the
    step (NEURON's ``secondorder = 2`` idea); gates advance by exponential Euler with the
    end-of-step voltage (gates are staggered half a step, as in NEURON), which makes the
    whole scheme second order. Fixed steps only: the staggering assumes equal steps, so for
    adaptive stepping use a diffrax implicit solver such as ``diffrax.Kvaerno5`` with
    `CableTerm` (``simulate(..., solver=diffrax.Kvaerno5(), stepsize_controller=...)``).

    Attributes:
        rate_table: optional `jaxdend.solve.RateTable` (see `BackwardEuler`).
    """

    rate_table: RateTable | None = None

    def order(self, terms):
        """Order 2 (voltage)."""
        return 2

    def _voltage_step(self, dt):
        return 0.5 * dt

    def advance(self, terms, t0, t1, y0, tables=None, dt=None, matrix=None, given=None,
                relinearize=False):
        """Advance the state from t0 to t1 (ms); the other arguments as in
        `AbstractCableSolver.advance`."""
        cell, v0 = terms.cell, y0["v"]
        dt = t1 - t0 if dt is None else dt
        tables = self._tables_for(terms, dt, tables)
        t_mid = t0 + 0.5 * dt
        y_d = _deliver_spikes(cell, terms.stimulus, y0, t0, dt)
        v_half, channels = _implicit_voltage(cell, terms.stimulus, t_mid, 0.5 * dt, v0, y_d,
                                             matrix, given)
        v1 = 2.0 * v_half - v0
        # staggered: gates live at half steps, so they advance with the end-of-step voltage
        return _new_state(cell, y0, dict(y_d, channels=channels), v1, dt, tables, relinearize)


def is_cable_solver(solver) -> bool:
    """True for the tree-structured solvers of this module."""
    return isinstance(solver, AbstractCableSolver)
