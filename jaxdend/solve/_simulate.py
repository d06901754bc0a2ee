"""`simulate`: integrate a cell under a stimulus and return named recordings.

Units: time ms, voltage mV, current nA.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._cell import Cell, Probe
from ..stimulus import as_stimulus
from . import _checks, _native_run
from ._solvers import BackwardEuler, CableTerm, is_cable_solver
from ._tree import SOLVE_NAME


class Solution(eqx.Module):
    """Result of `simulate`.

    Attributes:
        ts: save times in ms, shape (n_save,).
        recordings: name -> array of shape (n_save, n_nodes_probed), units of the state
            (mV for "v", dimensionless for gates).
        final_state: the full state at the end of the run.
        stats: solver statistics (number of steps).
    """

    ts: Float[Array, " save"]
    recordings: dict[str, Array]
    final_state: dict
    stats: dict

    def __getitem__(self, name: str) -> Array:
        """Recording `name` (n_save, n_nodes)."""
        try:
            return self.recordings[name]
        except KeyError:
            raise KeyError(
                f"No recording {name!r}; recorded: {sorted(self.recordings)}."
            ) from None


def _probes(cell: Cell, record) -> dict[str, Probe]:
    if record is None:
        return {"v": cell.probe("v", "soma")}
    if isinstance(record, Probe):
        return {record.state: record}
    if isinstance(record, str):
        return {record: cell.probe(record, "all")}
    if isinstance(record, Mapping):
        out = {}
        for k, p in record.items():
            if not isinstance(p, Probe):
                raise TypeError(f"record[{k!r}] must be a Probe (use cell.probe(...)).")
            out[str(k)] = p
        return out
    if isinstance(record, Sequence):
        out = {}
        for p in record:
            if not isinstance(p, Probe):
                raise TypeError("record entries must be Probes (use cell.probe(...)).")
            key = p.state if p.state not in out else f"{p.state}_{len(out)}"
            out[key] = p
        return out
    raise TypeError(f"Cannot record {record!r}; give Probes from cell.probe(...).")


def _extract(cell: Cell, probes: dict[str, Probe], y) -> dict[str, Array]:
    names = [type(c).__name__ for c in cell.channels]
    groups = [g.name for g in cell.synapses]
    out = {}
    for key, p in probes.items():
        idx = np.asarray(p.index)
        kind, _, var = p.state.partition(".")
        if p.state == "v":
            out[key] = cell.junction_average(y["v"])[idx]
        elif kind in groups:
            k = groups.index(kind)
            st = y["synapses"][k]
            val = cell.synapses[k].conductance(st) if var == "g" else st[var]
            out[key] = val[idx]
        else:
            out[key] = y["channels"][names.index(kind)][var][idx]
    return out


def _check_inputs(cell: Cell, stim, t0: float, t1: float, cable_solver: bool):
    """Validate synaptic inputs against the cell's groups and the simulated interval."""
    groups = {g.name: g for g in cell.synapses}
    for inp in stim.inputs:
        if inp.group not in groups:
            raise ValueError(
                f"Input drives synapse group {inp.group!r}, but the cell has groups "
                f"{sorted(groups)}; add it with cell.add_synapses({inp.group!r}, ...)."
            )
        n_syn = groups[inp.group].n
        if inp.trains.n != n_syn:
            raise ValueError(
                f"Input for {inp.group!r} has {inp.trains.n} spike trains but the group has "
                f"{n_syn} synapses; give one train per synapse."
            )
        inp.trains.check(t0, t1)
    if stim.inputs and not cable_solver:
        raise ValueError(
            "Synaptic spike inputs are delivered by the jaxdend cable solvers; use "
            "solver=jaxdend.BackwardEuler() or CrankNicolson() (fixed steps)."
        )


def _check_inputs_runtime(stim):
    """NaN or unordered spike times of traced inputs (known only at run time)."""
    for inp in stim.inputs:
        t = inp.trains.times
        bad = jnp.any(jnp.isnan(t)) | jnp.any(t[:, 1:] < t[:, :-1])  # as SpikeTrains.check
        stim = _checks.error_if(
            stim, bad, f"Spike times of input {inp.group!r} are NaN or not increasing."
        )
    return stim


_BAD_CLAMP = ("A current-clamp value (amplitude in nA, waveform sample or time in ms) is NaN; "
              "check the stimulus.")


def _check_finite_clamps(stim):
    """NaN in a current clamp (amplitude, waveform samples, times; inf is allowed, e.g. a step
    with dur=inf): ValueError when the value is known now, a run-time error when traced."""
    traced = []
    for x in jax.tree_util.tree_leaves(stim.clamps):
        if isinstance(x, jax.core.Tracer):
            traced.append(x)
        elif isinstance(x, (float, np.floating, np.ndarray, jax.Array)):
            arr = np.asarray(x)
            if arr.dtype.kind == "f" and np.any(np.isnan(arr)):
                raise ValueError(_BAD_CLAMP)
    if not traced:
        return stim
    bad = jnp.any(jnp.stack([jnp.any(jnp.isnan(x)) for x in traced]))
    return _checks.error_if(stim, bad, _BAD_CLAMP)


_BAD_PARAMS = ("A cell parameter is NaN or inf (cm, ra, a channel parameter, celsius or "
               "v_init). Check the values set with Cell.set/insert.")


def _any_nonfinite(tree):
    """True (traced) if a floating-point array of `tree` holds NaN or inf (e.g. a cell's
    parameters, a run's final state and recordings)."""
    leaves = [x for x in jax.tree_util.tree_leaves(tree) if eqx.is_inexact_array(x)]
    return jnp.any(jnp.stack([jnp.any(~jnp.isfinite(x)) for x in leaves]))


_NONFINITE = (
    "The simulation produced NaN or inf. The time step is too large for this solver/precision "
    "(explicit solvers and float32 are the usual cause): use a smaller dt, the implicit "
    "jaxdend.BackwardEuler/CrankNicolson solvers, or float64 (jax_enable_x64)."
)


def simulate(
    cell: Cell,
    stimulus=None,
    t1: float = 100.0,
    dt: float = 0.025,
    *,
    t0: float = 0.0,
    record=None,
    record_every: int = 1,
    solver: dfx.AbstractSolver | None = None,
    stepsize_controller: dfx.AbstractStepSizeController | None = None,
    saveat: dfx.SaveAt | None = None,
    adjoint: dfx.AbstractAdjoint | None = None,
    event: dfx.Event | None = None,
    max_steps: int | None = None,
    y0: dict | None = None,
    checkpoint: bool | str = True,
) -> Solution:
    """Integrate `cell` from t0 to t1 under `stimulus` and record probes.

    With a tree solver (default `BackwardEuler`), fixed steps and no `saveat`, `event` or
    `adjoint`, the steps are driven by ``lax.scan`` (fastest); otherwise the run goes
    through ``diffrax.diffeqsolve`` with everything passed on (any diffrax solver, adaptive
    controllers, events, adjoints).

    Args:
        cell: the `Cell`.
        stimulus: a `CurrentClamp`, list of them, a `Stimulus`, or None.
        t1: end time, ms.
        dt: time step (fixed) or initial step (adaptive), ms.
        t0: start time, ms.
        record: a Probe, list of Probes, dict name -> Probe, or a state name recorded at
            every node; default: membrane potential at the soma (key "v").
        record_every: save every k-th step (fixed steps); t0 is always saved.
        solver: any diffrax solver; default `BackwardEuler()`.
        stepsize_controller: diffrax controller; default constant steps of `dt`.
        saveat: diffrax SaveAt (its times in ms); probes are extracted at its times.
        adjoint: diffrax adjoint (diffeqsolve path only).
        event: diffrax Event (diffeqsolve path only).
        max_steps: diffeqsolve step limit (default: enough for fixed steps of dt).
        y0: initial state (default: `cell.init_state()`), e.g. ``previous.final_state`` to
            continue a run (pass t0 = the previous t1 and the spike trains of the new
            interval only).
        checkpoint: memory policy of gradients on the scan path. True: recompute the steps
            in the backward pass, a few at a time (on CPU for cells of HH and passive
            channels five at a time, storing a fifth of a state per step: for HH 4/5 of a
            vector of n_nodes floats; otherwise three at a time, storing the tree solve's
            output and a third of a state per step: with three gates 7/3 vectors; see
            ``jaxdend.solve._simulate._checkpoint_plan``); "nested": also
            recompute segments of about sqrt(n_steps) steps (stores one state per segment
            plus one segment's steps: O(sqrt(n_steps)) memory for about one extra forward
            pass; use it for long runs); False: store everything. Cells of HH and leak
            channels on CPU (see ``jaxdend.solve._native_run``) take their gradients from a
            native reverse run instead, which keeps a state every ~sqrt(n_steps) steps
            whatever this setting.

    Returns:
        `Solution` with `ts` (ms) and `recordings` (name -> (n_save, n_nodes)).

    Raises:
        ValueError / TypeError: bad arguments known when called (shapes, dt, t1, a NaN
            given as a number).
        A run-time error when the values are known only as the program runs (a traced NaN
            parameter or clamp value, a run that produced NaN or inf): raised by JAX as
            ``jax.errors.JaxRuntimeError`` (or ``ValueError`` on some of its dispatch
            paths; ``equinox.EquinoxRuntimeError`` where the checks are equinox's, see
            ``jaxdend.solve._checks``) with the message, when the result is read.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"simulate needs a jaxdend.Cell, got {type(cell).__name__}.")
    dt_f, t0_f, t1_f = float(dt), float(t0), float(t1)
    if not math.isfinite(dt_f) or dt_f <= 0:
        raise ValueError(f"dt must be a positive time step in ms (e.g. 0.025), got {dt!r}.")
    if not (math.isfinite(t0_f) and math.isfinite(t1_f)) or t1_f <= t0_f:
        raise ValueError(f"Need t1 > t0 (ms), got t0={t0!r}, t1={t1!r}.")
    if checkpoint not in (True, False, "nested"):
        raise ValueError(f"checkpoint must be True, False or 'nested', got {checkpoint!r}.")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}.")
    solver = BackwardEuler() if solver is None else solver
    stim = as_stimulus(stimulus)
    for c in stim.clamps:
        if not 0 <= c.node < cell.n:
            raise ValueError(
                f"Stimulus at node {c.node}, but the cell has nodes 0..{cell.n - 1}; "
                "pick a node with cell.nearest(...) or cell.select(...)."
            )
    probes = _probes(cell, record)
    _check_inputs(cell, stim, t0_f, t1_f, is_cable_solver(solver))
    if stim.inputs:
        stim = _check_inputs_runtime(stim)
    stim = _check_finite_clamps(stim)
    params_bad = _any_nonfinite(cell)
    y0 = cell.init_state() if y0 is None else y0
    if cell.synapses and "synapses" not in y0:
        y0 = dict(y0, synapses=cell.init_state()["synapses"])
    elif cell.synapses:
        # every call's spike trains lie within [t0, t1], so delivery starts at their first
        # spike: continuing from a previous final_state needs no manual reset
        y0 = dict(y0, synapses=tuple(dict(st, next=jnp.zeros_like(st["next"]))
                                     for st in y0["synapses"]))
    term = CableTerm(cell, stim)

    n_float = (t1_f - t0_f) / dt_f
    n_steps = round(n_float)
    fast = (
        is_cable_solver(solver)
        and (stepsize_controller is None or isinstance(stepsize_controller, dfx.ConstantStepSize))
        and saveat is None
        and adjoint is None
        and event is None
    )
    if fast:
        if abs(n_float - n_steps) > 1e-6 * max(1.0, n_float):
            raise ValueError(
                f"(t1 - t0) / dt = {n_float:g} is not a whole number of steps; choose t1 and dt "
                "so that it is (e.g. t1=100, dt=0.025)."
            )
        if n_steps % record_every:
            raise ValueError(
                f"{n_steps} steps is not a multiple of record_every={record_every}."
            )
        return _simulate_scan(term, solver, y0, t0_f, dt_f, n_steps, record_every, probes,
                              checkpoint, params_bad)
    # before the solve here: NaN parameters could stall an adaptive controller first
    term = _checks.error_if(term, params_bad, _BAD_PARAMS)
    return _simulate_diffrax(term, solver, y0, t0_f, t1_f, dt_f, n_steps, record_every, probes,
                             stepsize_controller, saveat, adjoint, event, max_steps)


def _simulate_scan(term, solver, y0, t0, dt, n_steps, every, probes, checkpoint, params_bad):
    core = functools.partial(_scan_core, solver=solver, t0=t0, dt=dt, n_steps=n_steps,
                             every=every, probes=probes, checkpoint=checkpoint)
    # on CPU, cells of HH and leaks take their values from one native call
    native = _native_run.plan(term, solver, y0, t0, dt, n_steps, every, probes, core)
    y1, recs = (native or core)(term, y0)
    first = _extractor(term.cell, probes)(y0)
    recs = {k: jnp.concatenate([first[k][None], recs[k]], axis=0) for k in recs}
    bad = _any_nonfinite((y1, recs))
    # on both outputs: a caller keeping only the recordings must still get the error; one
    # check for bad parameters and a non-finite result
    y1, recs = _checks.branched_error_if((y1, recs), params_bad | bad,
                                         jnp.where(params_bad, 0, 1), (_BAD_PARAMS, _NONFINITE))
    ts = t0 + dt * every * jnp.arange(n_steps // every + 1)
    return Solution(ts, recs, y1, {"num_steps": n_steps})


def _extractor(cell: Cell, probes: dict[str, Probe]):
    """The function state -> recordings (name -> values at the probed nodes)."""
    # Voltage probes on membrane nodes read the state directly: junction_average leaves
    # those nodes unchanged, and skipping it keeps it (and its adjoint) out of every step.
    junction = np.asarray(cell.comps.is_junction)
    direct = {k: np.asarray(p.index) for k, p in probes.items()
              if p.state == "v" and not junction[np.asarray(p.index)].any()}
    rest = {k: p for k, p in probes.items() if k not in direct}

    def take(x, idx):
        # a run of consecutive nodes (e.g. the soma) as a slice: its transpose in the
        # gradient is a pad that fuses into the adjoint, where a gather's is a scatter kernel
        if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
            return x[int(idx[0]):int(idx[0]) + idx.size]
        return x[idx]

    def extract(y):
        out = {k: take(y["v"], idx) for k, idx in direct.items()}
        if rest:
            out.update(_extract(cell, rest, y))
        return {k: out[k] for k in probes}

    return extract


def _scan_core(term, y0, *, solver, t0, dt, n_steps, every, probes, checkpoint):
    """The steps of `_simulate_scan` as a ``lax.scan``: (final state, recordings after every
    `every`-th step, name -> (n_steps / every, nodes))."""
    cell = term.cell
    extract = _extractor(cell, probes)
    tables = solver.tables(cell, dt)  # gate tables (if any) once per run, not per step
    matrix = solver.matrix(cell, dt)  # and the loop-invariant parts of the cable matrix
    pack, unpack = _gate_packing(cell, tables)

    def advance(y, k, given=None, relinearize=False):
        """Step k from y: the state, and with `relinearize` the channel currents linearised at
        it for the next step (see `AbstractCableSolver.advance`)."""
        ta = t0 + k * dt
        out = solver.advance(term, ta, ta + dt, unpack(y), tables, dt=dt, matrix=matrix,
                             given=given, relinearize=relinearize)
        return (pack(out[0]), out[1]) if relinearize else (pack(out), None)

    unit, policy, relinearize = (_checkpoint_plan(cell, tables, y0["v"]) if checkpoint
                                 else (1, None, False))

    @functools.cache
    def stepper(count, record):
        """`count` steps from step index k0: (y, k0) -> the state, and the recordings after
        every step (record="each", stacked), after the last one ("last", stacked as one) or
        none (None)."""

        def steps(y, k0):
            recs = []
            given = None
            for i in range(count):
                y, given = advance(y, k0 + i, given, relinearize and i < count - 1)
                if record == "each" or (record == "last" and i == count - 1):
                    recs.append(extract(unpack(y)))
            if not recs:
                return y, None
            return y, {k: jnp.stack([r[k] for r in recs]) for k in recs[0]}

        # The backward pass recomputes each unit of steps from its first state (except what
        # `policy` keeps; see `_checkpoint_plan`). (prevent_cse is not needed inside a scan,
        # JAX's docs say.)
        return jax.checkpoint(steps, policy=policy, prevent_cse=False) if checkpoint else steps

    def run(y, k0, count, each):
        """`count` (static) steps from step index k0 in checkpointed units of `unit` steps,
        recording after every step (`each`) or after the last one."""
        n_units, rest = divmod(count, unit)
        if not each and rest == 0:  # the last unit records
            n_units, rest = n_units - 1, unit
        recs = None
        if n_units:
            y, recs = jax.lax.scan(
                lambda y, u: stepper(unit, "each" if each else None)(y, k0 + u * unit), y,
                jnp.arange(n_units))
            if each:
                recs = {k: r.reshape((-1,) + r.shape[2:]) for k, r in recs.items()}
        if rest:
            y, last = stepper(rest, "each" if each else "last")(y, k0 + n_units * unit)
            recs = last if recs is None else {
                k: jnp.concatenate([recs[k], last[k]]) for k in recs}
        return y, recs

    def blocks(y, j0, count):
        """`count` (static) recorded blocks of `every` steps from block j0: the state and
        the recordings stacked over blocks."""
        if every == 1:
            return run(y, j0, count, True)

        def block(y, j):
            y, rec = run(y, (j0 + j) * every, every, False)
            return y, {k: r[0] for k, r in rec.items()}

        return jax.lax.scan(block, y, jnp.arange(count))

    n_blocks = n_steps // every
    if checkpoint == "nested":
        m = _segment_blocks(n_blocks, every)

        @jax.checkpoint
        def segment(y, s):
            return blocks(y, s * m, m)

        y1, recs = jax.lax.scan(segment, pack(y0), jnp.arange(n_blocks // m))
        recs = {k: r.reshape((n_blocks,) + r.shape[2:]) for k, r in recs.items()}
    else:
        y1, recs = blocks(pack(y0), 0, n_blocks)
    return unpack(y1), recs


def _checkpoint_plan(cell: Cell, tables, v):
    """(steps per checkpointed unit, checkpoint policy, relinearize) of the scan path's time
    loop for `cell` with gate `tables` (one per channel, or None) and voltage `v` (mV; its
    dtype). relinearize: the steps of a unit hand their channel currents on to the next
    (`AbstractCableSolver.advance`), so that HH's gate step and the following current
    differentiate as one native reverse loop.

    The backward pass recomputes each unit of steps from the state stored at its start.
    Several steps per unit store less (1/unit of a state per step) and take fewer trips
    through the backward loop, whose every kernel has a fixed launch cost on CPU; all but
    the unit's last step are recomputed, and the unrolled unit compiles longer.

    - Cells whose every step is native code on CPU (HH and stateless channels such as Leak,
      no rate tables, no synapses): units of `_UNIT_NATIVE` steps that store nothing else,
      relinearized. Recomputing a unit, tree solves included, is cheaper there than storing
      and reading back one solve output per step.
    - Other cells (channels integrated by XLA formulas, GPU): units of `_UNIT` steps that
      keep the tree solves' outputs (one vector per step; each costs a solve to recompute).
      Storing nothing there made gradients slower, as the recomputed XLA gate formulas grow.
    - Synaptic spike input: one step per unit, solve outputs kept.
    """
    if cell.synapses:
        return 1, KEEP_SOLVES, False
    from . import _native

    native = (jax.default_backend() == "cpu" and _native.hh_gates_supported(v)
              and all(t is None for t in tables)
              and all(ch.native_cpu or not ch.state_names for ch in cell.channels))
    if native and not cell.rules:
        return _UNIT_NATIVE, jax.checkpoint_policies.nothing_saveable, True
    return _UNIT, KEEP_SOLVES, False


# The checkpoint policy that keeps every tree solve's output (see `_tree.SOLVE_NAME`).
KEEP_SOLVES = jax.checkpoint_policies.save_only_these_names(SOLVE_NAME)


# Steps per unit with the tree solves' outputs kept (`_checkpoint_plan`). Session 5, against
# one step per unit (same process, alternating, best of 10): two steps -15 % value-and-
# gradient on the 1,016-compartment HH tree, -19 % on C060114A5 (nseg 2) and the reduced
# pyramidal cell. Session 10, after the hand-written reverse steps of the HH gates, current
# and tree solve (best of 5, two rounds): three steps against two -7 % (tree, 224-228 vs
# 238-248 ms), -5 % (C060114A5 nseg 2, 202 vs 212 ms) and -5 % (reduced cell); four steps
# were slower than two, eight about as fast as three. With synaptic spike input (1,000
# AMPA+NMDA sites on C060114A5, benchmarks/synapses.py) two-step units made both the forward
# (+20 %) and the gradient (+15 %) slower (session 5), so cells with synapses keep one step.
_UNIT = 3
# Steps per unit storing nothing but the unit's first state, for cells stepped by native
# code. Session 12 (value-and-gradient, same process, alternating, best of 4-6), against
# three-step units keeping the solves: HH tree 1,080 nodes 196 vs 214 ms (4 steps 207, 6
# steps 196 but grad compile 6.9 vs 3.5 s), C060114A5 nseg 2 187 vs 200 ms (4: 191, 6: 183),
# d_lambda 0.1 (1,953 nodes) 426 vs 440 ms, the passive (Leak) tree 58.5 vs 66.3 ms, the
# 46-segment reduced cell 22.0 vs 21.2 ms (noise level); batched gradients (throughput.py
# programs, batch 100): reduced cell 84 vs 100 ms, tree 2.11 vs 2.45 s. Forward unchanged,
# gradient compile +20 %. Storing nothing was slower wherever XLA formulas step the gates:
# Pospischil RS on C060114A5 806 vs 620 ms, HH with JAXDEND_NATIVE=0 537 vs 422 ms.
# Relinearizing (HH's gate step and the next current reversed by one native loop,
# `StepCurrentVjp`: 10.3-10.6 vs 11.4-11.7 us per call on 1,080 nodes) took a further 1-2 %:
# tree 188.4 vs 189.8 ms, nseg 2 168.3 vs 171.0, d_lambda 357.7 vs 361.3
# (`benchmarks/checkpoint_plan.py --repeats 5`).
_UNIT_NATIVE = 5


def _gate_packing(cell: Cell, tables):
    """(pack, unpack) of the scan carry: the gates of tabulated channels travel as one
    (n_states, n) array instead of a dict of (n,) arrays, which lets XLA compute the whole
    tabulated update in one fused loop (about 2x faster on CPU); identity without tables."""
    which = [k for k, t in enumerate(tables) if t is not None]
    if not which:
        return (lambda y: y), (lambda y: y)
    names = [type(ch).state_names for ch in cell.channels]

    def pack(y):
        chans = list(y["channels"])
        for k in which:
            chans[k] = jnp.stack([chans[k][s] for s in names[k]])
        return dict(y, channels=tuple(chans))

    def unpack(y):
        chans = list(y["channels"])
        for k in which:
            chans[k] = {s: chans[k][i] for i, s in enumerate(names[k])}
        return dict(y, channels=tuple(chans))

    return pack, unpack


def _segment_blocks(n_blocks: int, every: int) -> int:
    """Blocks per checkpointed segment: the divisor m of n_blocks minimising the number of
    stored states, n_blocks / m (segment boundaries) + m * every (steps of one segment)."""
    small = [m for m in range(1, math.isqrt(n_blocks) + 1) if n_blocks % m == 0]
    divisors = small + [n_blocks // m for m in small]
    return min(divisors, key=lambda m: n_blocks / m + m * every)


def _simulate_diffrax(term, solver, y0, t0, t1, dt, n_steps, every, probes, controller,
                      saveat, adjoint, event, max_steps):
    cell = term.cell
    controller = dfx.ConstantStepSize() if controller is None else controller

    def fn(t, y, args):
        return _extract(cell, probes, y)

    constant = isinstance(controller, dfx.ConstantStepSize)
    pick = None
    if saveat is None and constant:
        # Fixed steps: save the state at every step end (no interpolation) and keep every
        # `every`-th. (SaveAt(ts=...) with save times on the step ends gives wrong gradients
        # under diffrax 0.7's RecursiveCheckpointAdjoint, the default adjoint; see
        # tests/test_gradients.py::test_upstream_recursive_checkpoint_dense_ts.)
        n_taken = max(1, math.ceil((t1 - t0) / dt - 1e-9))
        saveat = dfx.SaveAt(t0=True, steps=True, fn=fn)
        pick = list(range(0, n_taken + 1, every))
        if pick[-1] != n_taken:
            pick.append(n_taken)
        if max_steps is None:
            max_steps = n_taken
    elif saveat is None:
        n_save = max(1, math.ceil(n_steps / every))
        ts = jnp.linspace(t0, t1, n_save + 1)
        saveat = dfx.SaveAt(ts=ts, fn=fn)
    else:
        saveat = eqx.tree_at(lambda s: s.subs.fn, saveat, fn)
    kwargs = {}
    if adjoint is not None:
        kwargs["adjoint"] = adjoint
    if event is not None:
        kwargs["event"] = event
    if max_steps is None:
        max_steps = max(16, int(1.5 * n_steps) + 16)
    sol = dfx.diffeqsolve(
        term, solver, t0, t1, dt, y0, saveat=saveat, stepsize_controller=controller,
        max_steps=max_steps, **kwargs,
    )
    ts_out, recs = sol.ts, sol.ys
    if pick is not None and event is None:
        idx = np.asarray(pick)
        ts_out = ts_out[idx]
        recs = jax.tree_util.tree_map(lambda r: r[idx], recs)
    leaves = jax.tree_util.tree_leaves(recs)
    bad = jnp.any(jnp.stack([jnp.any(~jnp.isfinite(jnp.where(jnp.isinf(x) & (x > 0), 0.0, x)))
                             for x in leaves]))
    recs = _checks.error_if(recs, bad, _NONFINITE)
    return Solution(ts_out, recs, {}, dict(sol.stats))
