"""Replay: run a learning rule on given signals (spike times, voltages) without a cable model.

Units: time ms, voltage mV, path distance um, NMDA signal nS; weights dimensionless.

`replay` calls ``rule.update(state, w, Signals, dt)``, exactly the code the cable solvers
call at every step, but the signals come from data instead of a simulation: presynaptic
spike times per synapse, somatic spike times (e.g. ``jaxdend.features.spike_times`` of a
recorded somatic voltage), neighbour pairs with their path distances and, optionally,
sampled local voltage and NMDA signals. The step conventions are the simulator's:

* a presynaptic event at t_e acts in the first step k whose start t_k = t0 + k dt satisfies
  ``t_e <= t_k + dt / 2`` (NEURON's fixed-step rule; `Synapses.deliver`), at most one event
  per synapse and step (a second one waits for the next step);
* a somatic spike at t_s (an upward threshold crossing) acts in the step during which it
  happened, ``t_k < t_s <= t_k + dt``.

So a replay fed with the presynaptic trains of a `jaxdend.simulate` run and the somatic spike
times of that run gives the simulator's weights (to rounding; tests/test_fit_rules.py).

Silent stretches can be merged (``replay_drive(..., merge_silence=True)``): steps without a
presynaptic or somatic event become one long step. For rules whose weights change only at
spikes and whose traces decay exponentially (`BasalHebbian`, `ApicalCooperative`) this is
exact; for rules with a continuous drift (`GraupnerBrunel`) keep `settle` ms of ordinary steps
after every event (while calcium is high) and cap merged steps with `max_step`.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..solve import _checks
from ._base import AbstractRule, Signals
from ._rules import ApicalCooperative, Clopath

#: Step index of "no event" (padding of spike arrays): larger than any step of a replay.
NEVER = 2**30

_V_REST = -65.0  # mV: the voltage a rule sees when no voltage signal is given


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _concrete(x):
    """NumPy copy of `x`, or None if it is traced."""
    if x is None or _is_tracer(x):
        return None
    return np.asarray(x)


# ----------------------------------------------------------------------------- event steps
def _step_start(k, t0, dt):
    return t0 + k * dt


def _xp(*xs):
    """NumPy for concrete inputs (fast, outside jit), jax.numpy for traced ones."""
    return jnp if any(_is_tracer(x) for x in xs) else np


def _queue(k, xp):
    """At most one event per step: j_n = max(k_n, j_{n-1} + 1) = n + cummax(k - n)."""
    n = xp.arange(k.shape[-1], dtype=k.dtype)
    if xp is np:
        run = np.maximum.accumulate(k - n, axis=-1)
    else:
        run = jax.lax.cummax(k - n, axis=k.ndim - 1)
    return xp.minimum(run + n, NEVER)


def delivery_steps(times, t0, dt) -> Array:
    """Step index at which each presynaptic spike acts (the simulator's delivery rule).

    Spike k of a synapse acts in the first step j with ``t_k <= t0 + j dt + dt / 2``, and
    at most one spike per synapse and step (as `Synapses.deliver`): the j of successive
    spikes strictly increase. Works on concrete (NumPy) and traced arrays.

    Args:
        times: (n_syn, max_spikes) spike times, ms, increasing along rows, +inf padding.
        t0: start time of step 0, ms.
        dt: time step, ms.

    Returns:
        (n_syn, max_spikes) int32 step indices (`NEVER` for padding).
    """
    xp = _xp(times, t0, dt)
    t = xp.asarray(times, dtype=float)
    finite = xp.isfinite(t)
    ts = xp.where(finite, t, t0)
    k = xp.maximum(xp.ceil((ts - t0) / dt - 0.5), 0.0)

    def thr(j):  # delivery threshold of step j, computed as the solver does
        ta = _step_start(j, t0, dt)
        return ta + 0.5 * ((ta + dt) - ta)

    k = xp.where(ts > thr(k), k + 1.0, k)
    k = xp.where((k > 0) & (ts <= thr(k - 1.0)), k - 1.0, k)
    k = xp.where(finite, xp.minimum(k, float(NEVER)), float(NEVER)).astype(xp.int32)
    return _queue(k, xp)


def crossing_steps(times, t0, dt) -> Array:
    """Step index during which each somatic spike (threshold crossing) happened.

    Spike at t_s acts in step j with ``t0 + j dt < t_s <= t0 + (j + 1) dt``; two spikes in
    one step are not possible for a threshold crossing (the second waits a step).

    Args:
        times: (n_spikes,) somatic spike times, ms, increasing, +inf padding.
        t0: start time, ms.
        dt: time step, ms.

    Returns:
        (n_spikes,) int32 step indices (`NEVER` for padding).
    """
    xp = _xp(times, t0, dt)
    t = xp.asarray(times, dtype=float)
    finite = xp.isfinite(t)
    ts = xp.where(finite, t, t0 + dt)
    k = xp.maximum(xp.ceil((ts - t0) / dt) - 1.0, 0.0)
    k = xp.where(ts > _step_start(k + 1.0, t0, dt), k + 1.0, k)
    k = xp.where((k > 0) & (ts <= _step_start(k, t0, dt)), k - 1.0, k)
    k = xp.where(finite, xp.minimum(k, float(NEVER)), float(NEVER)).astype(xp.int32)
    return _queue(k, xp)


# ----------------------------------------------------------------------------- the drive
class ReplayDrive(eqx.Module):
    """Signals and step schedule of a replay (build with `replay_drive`).

    Attributes:
        pre_step: (n_syn, max_spikes) step at which each presynaptic spike acts (`NEVER`:
            padding).
        post_step: (n_post,) step during which each somatic spike happened.
        pair_i, pair_j: neighbour pairs (synapse indices), i != j.
        pair_d: their path distance, um.
        ts: (n_blocks + 1,) record times, ms (t0, then the end of every record block).
        t0: start time, ms. dt: time step, ms.
        step_k: (n_blocks, n_sched) first step of every scheduled (possibly merged) step, or
            None for ordinary steps (then step i of block b is b * block_size + i). -1:
            padding.
        step_h: (n_blocks, n_sched) length of every scheduled step, ms (0 for padding).
        step_row: (n_blocks, n_sched) row of the sampled signals the step sees.
        v: (n_rows, n_syn) local voltage at the synapses, mV, or None (constant -65 mV).
        v_soma: (n_rows,) somatic voltage, mV, or None (constant -65 mV).
        nmda: (n_rows, n_syn) NMDA signal (conductance times Mg block), nS, or None (0).
        block_size: steps per record block (static; merged schedule: scheduled steps).
        signal_every: steps per row of the sampled signals (static).
    """

    pre_step: Int[Array, "syn spike"]
    post_step: Int[Array, " post"]
    pair_i: Int[Array, " pair"]
    pair_j: Int[Array, " pair"]
    pair_d: Float[Array, " pair"]
    ts: Float[Array, " record"]
    t0: Float[Array, ""]
    dt: Float[Array, ""]
    step_k: Int[Array, "block sched"] | None
    step_h: Float[Array, "block sched"] | None
    step_row: Int[Array, "block sched"] | None
    v: Float[Array, "row syn"] | None
    v_soma: Float[Array, " row"] | None
    nmda: Float[Array, "row syn"] | None
    block_size: int = eqx.field(static=True)
    signal_every: int = eqx.field(static=True)

    @property
    def n_syn(self) -> int:
        """Number of synapses."""
        return int(self.pre_step.shape[-2])

    @property
    def n_blocks(self) -> int:
        """Number of record blocks (records after t0)."""
        return int(self.ts.shape[-1]) - 1

    @property
    def merged(self) -> bool:
        """True if silent stretches are merged into long steps."""
        return self.step_k is not None


def _as_pre_times(pre_times) -> np.ndarray | Array:
    from ..synapses import SpikeTrains

    if isinstance(pre_times, SpikeTrains):
        pre_times = pre_times.times
    if _is_tracer(pre_times):
        if pre_times.ndim != 2:
            raise ValueError("pre_times must be (n_syn, max_spikes) ms, +inf padded.")
        return pre_times
    if isinstance(pre_times, (list, tuple)) and pre_times and np.ndim(pre_times[0]) == 1:
        pre_times = SpikeTrains.from_list(pre_times).times
    arr = np.asarray(pre_times, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(
            f"pre_times must be a (n_syn, max_spikes) array of spike times in ms (+inf "
            f"padding), a SpikeTrains or a list of one train per synapse; got shape {arr.shape}."
        )
    return arr


def _check_pre(times: np.ndarray, t0: float, t1: float) -> None:
    if np.isnan(times).any():
        i, k = np.argwhere(np.isnan(times))[0]
        raise ValueError(f"Presynaptic spike {k} of synapse {i} is NaN; give times in ms "
                         "(+inf only as padding).")
    if (times == -np.inf).any():
        raise ValueError("Presynaptic spike times must not be -inf (use +inf as padding).")
    bad = times[:, 1:] < times[:, :-1]
    if bad.any():
        i = int(np.argwhere(bad)[0, 0])
        raise ValueError(f"Presynaptic spike times of synapse {i} are out of order; sort each "
                         "train (np.sort) and pad with +inf at the end.")
    fin = times[np.isfinite(times)]
    if fin.size and (fin.min() < t0 or fin.max() > t1):
        raise ValueError(
            f"Presynaptic spikes span [{fin.min():g}, {fin.max():g}] ms but the replay runs "
            f"from {t0:g} to {t1:g} ms; drop or shift the spikes outside it."
        )


def _check_post(post: np.ndarray, t0: float, t1: float) -> None:
    if post.ndim != 1:
        raise ValueError(f"post_times must be 1-D (somatic spike times, ms), got {post.shape}.")
    if np.isnan(post).any() or (post == -np.inf).any():
        raise ValueError("Somatic spike times contain NaN or -inf; give times in ms (+inf only "
                         "as padding).")
    if (post[1:] < post[:-1]).any():
        i = int(np.argwhere(post[1:] < post[:-1])[0, 0]) + 1
        raise ValueError(f"Somatic spike times are out of order at index {i}; sort them "
                         "(np.sort) and pad with +inf at the end.")
    fin = post[np.isfinite(post)]
    if fin.size and (fin.min() <= t0 or fin.max() > t1):
        raise ValueError(
            f"Somatic spikes span [{fin.min():g}, {fin.max():g}] ms but a crossing must lie in "
            f"({t0:g}, {t1:g}] ms (within a step of the replay); drop the others."
        )


def _as_pairs(pairs, n_syn):
    if pairs is None:
        e = np.zeros(0, np.int32)
        return e, e, np.zeros(0)
    try:
        pi, pj, pd = pairs
    except (TypeError, ValueError):
        raise ValueError("pairs must be (pair_i, pair_j, pair_d) as returned by "
                         "jaxdend.plasticity.neighbour_pairs(comps, nodes, cutoff).") from None
    if any(_is_tracer(x) for x in (pi, pj, pd)):
        return pi, pj, pd
    pi, pj = np.asarray(pi, np.int64).ravel(), np.asarray(pj, np.int64).ravel()
    pd = np.asarray(pd, float).ravel()
    if not pi.shape == pj.shape == pd.shape:
        raise ValueError(f"pair_i, pair_j, pair_d need equal lengths, got {pi.size}, {pj.size}, "
                         f"{pd.size}.")
    if pi.size and (pi.min() < 0 or pj.min() < 0 or max(pi.max(), pj.max()) >= n_syn):
        raise ValueError(f"Neighbour pairs index synapses 0..{n_syn - 1}; got indices outside "
                         "(build them from the same synapses as pre_times).")
    if np.any(pi == pj):
        raise ValueError("A neighbour pair joins a synapse with itself; pairs need i != j.")
    if np.any(~np.isfinite(pd)) or np.any(pd < 0):
        raise ValueError("Pair distances must be finite and >= 0 um.")
    return pi.astype(np.int32), pj.astype(np.int32), pd


def _as_signal(x, name, n_steps, n_syn):
    """(array, rows) of a sampled signal, checked against the number of steps."""
    if x is None:
        return None, None
    arr = x if _is_tracer(x) else np.asarray(x, dtype=float)
    want = 1 if name == "v_soma" else 2
    if arr.ndim != want or (want == 2 and arr.shape[1] != n_syn):
        shape = "(n_rows,)" if want == 1 else f"(n_rows, {n_syn})"
        raise ValueError(f"{name} must have shape {shape} (one row per step or per block of "
                         f"steps), got {arr.shape}.")
    rows = arr.shape[0]
    if rows == 0 or n_steps % rows:
        raise ValueError(
            f"{name} has {rows} rows but the replay has {n_steps} steps; give one row per step "
            "(the value at the end of each step, e.g. sol['v'][1:] of a simulate run with "
            "record_every=1) or per block of k steps (n_steps divisible by the rows)."
        )
    if not _is_tracer(arr) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf.")
    return arr, n_steps // rows


def _schedule(n_steps, block, events, settle, max_m, t0, dt, signal_every):
    """Merged step schedule (numpy): ordinary steps at events and `settle` steps after
    them, the silent stretches in between as long steps of at most `max_m` steps, never
    across record-block boundaries. Returns (k, h, row) of shape (n_blocks, n_sched)."""
    dense = np.zeros(n_steps + 1, bool)
    ev = events[(events >= 0) & (events < n_steps)]
    if ev.size:
        # mark [e, e + settle] with a difference array
        diff = np.zeros(n_steps + 2, np.int64)
        np.add.at(diff, ev, 1)
        np.add.at(diff, np.minimum(ev + settle + 1, n_steps + 1), -1)
        dense = np.cumsum(diff)[: n_steps + 1] > 0
    dense = dense[:n_steps]
    k = np.arange(n_steps)
    start = dense | np.r_[True, dense[:-1]] | (k % block == 0)
    starts = k[start]
    ends = np.r_[starts[1:], n_steps]
    lens = ends - starts
    # split long silent runs into pieces of at most max_m steps
    pieces = np.maximum(1, -(-lens // max_m))
    first = np.repeat(starts, pieces)
    offset = np.arange(first.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    ks = first + offset * max_m
    ms = np.minimum(np.repeat(ends, pieces) - ks, max_m)
    b = ks // block
    n_blocks = n_steps // block
    counts = np.bincount(b, minlength=n_blocks)
    width = int(counts.max())
    pos = np.arange(ks.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out_k = np.full((n_blocks, width), -1, np.int32)
    out_h = np.zeros((n_blocks, width))
    out_r = np.zeros((n_blocks, width), np.int32)
    ta = t0 + ks * dt
    h = np.where(ms == 1, (ta + dt) - ta, (t0 + (ks + ms) * dt) - ta)
    out_k[b, pos] = ks
    out_h[b, pos] = h
    out_r[b, pos] = (ks + ms - 1) // signal_every
    return out_k, out_h, out_r


def replay_drive(
    pre_times,
    t1: float,
    dt: float,
    *,
    t0: float = 0.0,
    post_times=None,
    pairs=None,
    v=None,
    v_soma=None,
    nmda=None,
    record_every: int | None = None,
    merge_silence: bool = False,
    settle: float = 0.0,
    max_step: float | None = None,
) -> ReplayDrive:
    """Prepare the signals of a replay: event steps, neighbour pairs, record schedule.

    Args:
        pre_times: presynaptic spike times, ms: (n_syn, max_spikes) array (+inf padding,
            increasing rows), `SpikeTrains`, or a list of one train per synapse.
        t1: end time, ms ((t1 - t0) / dt must be a whole number of steps).
        dt: time step, ms (the simulator's, for an exact match).
        t0: start time, ms.
        post_times: somatic spike times, ms (1-D, increasing, +inf padding allowed; e.g.
            ``jaxdend.features.spike_times(ts, v_soma, threshold)``); None: no spikes.
        pairs: neighbour pairs ``(pair_i, pair_j, pair_d)`` (indices into the synapses of
            pre_times, path distances um), e.g.
            ``neighbour_pairs(cell.comps, nodes, rule.neighbour_cutoff())``; None: none.
        v: local voltage at the synapses, mV, (n_rows, n_syn): one row per step (the value
            at the end of the step) or per block of n_steps / n_rows steps (held).
        v_soma: somatic voltage, mV, (n_rows,), sampled likewise.
        nmda: NMDA signal at the synapses, nS, (n_rows, n_syn), sampled likewise (needed by
            ``ApicalCooperative(nmda_gate=True)``): conductance times Mg block. The simulator's
            rule sees the conductance with the weights before the step's update (a probe of
            "nmda.g" records it after: scale by w_before / w_after to reproduce it exactly).
        record_every: steps between records of the weights (default: all steps, one record
            at t1); must divide the number of steps.
        merge_silence: merge steps without events into long steps (needs concrete spike
            times). Exact for `BasalHebbian` and `ApicalCooperative` with settle = 0.
        settle: ordinary steps are kept for this long after every event, ms.
        max_step: longest merged step, ms (default: up to the next event or record).

    Returns:
        A `ReplayDrive` for `replay` (vmap over protocols with `stack_drives`).
    """
    dt_f, t0_f, t1_f = float(dt), float(t0), float(t1)
    if not math.isfinite(dt_f) or dt_f <= 0:
        raise ValueError(f"dt must be a positive time step in ms (e.g. 0.025), got {dt!r}.")
    if not (math.isfinite(t0_f) and math.isfinite(t1_f)) or t1_f <= t0_f:
        raise ValueError(f"Need t1 > t0 (ms), got t0={t0!r}, t1={t1!r}.")
    n_float = (t1_f - t0_f) / dt_f
    n_steps = round(n_float)
    if abs(n_float - n_steps) > 1e-6 * max(1.0, n_float):
        raise ValueError(f"(t1 - t0) / dt = {n_float:g} is not a whole number of steps; choose "
                         "t1 and dt so that it is.")
    every = n_steps if record_every is None else int(record_every)
    if every < 1 or n_steps % every:
        raise ValueError(f"record_every={record_every} must be >= 1 and divide the {n_steps} "
                         "steps of the replay.")
    pre = _as_pre_times(pre_times)
    n_syn = int(pre.shape[0])
    if not _is_tracer(pre):
        _check_pre(pre, t0_f, t1_f)
    if post_times is None:
        post = np.full(1, np.inf)
    elif _is_tracer(post_times):
        post = post_times
    else:
        post = np.asarray(post_times, dtype=float)
        _check_post(post, t0_f, t1_f)
        if post.size == 0:
            post = np.full(1, np.inf)
    if _is_tracer(pre):
        bad = jnp.any(jnp.isnan(pre)) | jnp.any(pre[:, 1:] < pre[:, :-1])
        pre = _checks.error_if(pre, bad, "Presynaptic spike times are NaN or out of order.")
    if _is_tracer(post):
        bad = jnp.any(jnp.isnan(post)) | jnp.any(post[1:] < post[:-1])
        post = _checks.error_if(post, bad, "Somatic spike times are NaN or out of order.")
    pre_step = delivery_steps(pre, t0_f, dt_f)
    post_step = crossing_steps(post, t0_f, dt_f)
    pi, pj, pd = _as_pairs(pairs, n_syn)
    signals, rows_every = {}, set()
    for name, x in (("v", v), ("v_soma", v_soma), ("nmda", nmda)):
        arr, k = _as_signal(x, name, n_steps, n_syn)
        signals[name] = None if arr is None else jnp.asarray(arr, dtype=float)
        if k is not None:
            rows_every.add(k)
    if len(rows_every) > 1:
        raise ValueError("v, v_soma and nmda must be sampled at the same rate (equal rows).")
    signal_every = rows_every.pop() if rows_every else 1
    n_blocks = n_steps // every
    ts = t0_f + dt_f * every * np.arange(n_blocks + 1)
    sched = (None, None, None)
    block_size = every
    if merge_silence:
        pre_np, post_np = _concrete(pre_step), _concrete(post_step)
        if pre_np is None or post_np is None:
            raise ValueError("merge_silence=True needs concrete spike times (build the drive "
                             "outside jit, then vmap over stacked drives).")
        if not (math.isfinite(float(settle)) and settle >= 0):
            raise ValueError(f"settle must be >= 0 ms, got {settle!r}.")
        if max_step is not None and not max_step >= dt_f:
            raise ValueError(f"max_step must be >= dt ({dt_f:g} ms), got {max_step!r}.")
        events = np.unique(np.concatenate([pre_np.ravel(), post_np.ravel()]))
        n_settle = int(math.ceil(float(settle) / dt_f - 1e-9))
        max_m = n_steps if max_step is None else max(1, int(float(max_step) / dt_f + 1e-9))
        k, h, r = _schedule(n_steps, every, events.astype(np.int64), n_settle, max_m, t0_f,
                            dt_f, signal_every)
        sched = (jnp.asarray(k), jnp.asarray(h), jnp.asarray(r))
        block_size = int(k.shape[1])
    return ReplayDrive(
        pre_step=jnp.asarray(pre_step), post_step=jnp.asarray(post_step),
        pair_i=jnp.asarray(pi), pair_j=jnp.asarray(pj),
        pair_d=jnp.asarray(pd, dtype=float), ts=jnp.asarray(ts), t0=jnp.asarray(t0_f),
        dt=jnp.asarray(dt_f), step_k=sched[0], step_h=sched[1], step_row=sched[2],
        v=signals["v"], v_soma=signals["v_soma"], nmda=signals["nmda"], block_size=block_size,
        signal_every=signal_every,
    )


def _pad_to(x, shape, value):
    x = np.asarray(x)
    pad = [(0, s - d) for s, d in zip(shape, x.shape)]
    return np.pad(x, pad, constant_values=value)


def stack_drives(drives) -> ReplayDrive:
    """Stack drives of several protocols along a new leading axis, padded to equal shapes.

    Padding adds spike slots that never fire, scheduled steps that do nothing and repeated
    final records, so ``eqx.filter_vmap(lambda d: replay(rule, w0, d))(stacked)`` gives every
    protocol's own result. Drives with ordinary (unmerged) steps must have equal numbers of
    steps and records; all need the same synapses and neighbour pairs.

    Args:
        drives: a sequence of `ReplayDrive` (from `replay_drive`).

    Returns:
        One `ReplayDrive` whose array leaves have a leading protocol axis.
    """
    drives = list(drives)
    if not drives or not all(isinstance(d, ReplayDrive) for d in drives):
        raise TypeError("stack_drives needs a non-empty list of ReplayDrive (replay_drive).")
    d0 = drives[0]
    for d in drives[1:]:
        if d.n_syn != d0.n_syn or d.pair_i.shape != d0.pair_i.shape:
            raise ValueError("Stacked drives need the same number of synapses and neighbour "
                             "pairs.")
        if d.merged != d0.merged or (d.v is None) != (d0.v is None) or (
                d.nmda is None) != (d0.nmda is None) or (d.v_soma is None) != (d0.v_soma is None):
            raise ValueError("Stacked drives must all be merged or all not, and carry the same "
                             "sampled signals.")
        if not d0.merged and (d.block_size != d0.block_size or d.n_blocks != d0.n_blocks):
            raise ValueError("Drives with ordinary steps stack only with equal steps and "
                             "records; build them with merge_silence=True to pad them.")
        if d.signal_every != d0.signal_every or (
                d.v is not None and d.v.shape != d0.v.shape):
            raise ValueError("Stacked drives need signals of equal shapes.")
    nb = max(d.n_blocks for d in drives)
    width = max(int(d.pre_step.shape[1]) for d in drives)
    n_post = max(int(d.post_step.shape[0]) for d in drives)
    bs = max(d.block_size for d in drives)

    def one(d):
        ts = np.asarray(d.ts)
        ts = np.r_[ts, np.full(nb - d.n_blocks, ts[-1])]
        out = {"pre_step": _pad_to(d.pre_step, (d.n_syn, width), NEVER),
               "post_step": _pad_to(d.post_step, (n_post,), NEVER), "ts": ts}
        if d.merged:
            out["step_k"] = _pad_to(d.step_k, (nb, bs), -1)
            out["step_h"] = _pad_to(d.step_h, (nb, bs), 0.0)
            out["step_row"] = _pad_to(d.step_row, (nb, bs), 0)
        return out

    parts = [one(d) for d in drives]

    def stack(get):
        vals = [get(d) for d in drives]
        return None if vals[0] is None else jnp.stack([jnp.asarray(v) for v in vals])

    def stack_part(name):
        return jnp.stack([jnp.asarray(p[name]) for p in parts])

    return ReplayDrive(
        pre_step=stack_part("pre_step"), post_step=stack_part("post_step"),
        pair_i=stack(lambda d: d.pair_i), pair_j=stack(lambda d: d.pair_j),
        pair_d=stack(lambda d: d.pair_d), ts=stack_part("ts"), t0=stack(lambda d: d.t0),
        dt=stack(lambda d: d.dt),
        step_k=stack_part("step_k") if d0.merged else None,
        step_h=stack_part("step_h") if d0.merged else None,
        step_row=stack_part("step_row") if d0.merged else None,
        v=stack(lambda d: d.v), v_soma=stack(lambda d: d.v_soma), nmda=stack(lambda d: d.nmda),
        block_size=bs, signal_every=d0.signal_every,
    )


# ----------------------------------------------------------------------------- replay
class ReplayResult(eqx.Module):
    """Result of `replay`.

    Attributes:
        ts: (n_records,) record times, ms (t0 first).
        w: (n_records, n_syn) weights at the record times (dimensionless).
        state: the rule state at the end (traces etc.).
        w_final: (n_syn,) weights at the end.
    """

    ts: Float[Array, " record"]
    w: Float[Array, "record syn"]
    state: dict
    w_final: Float[Array, " syn"]


def _check_rule(rule, drive: ReplayDrive) -> None:
    if isinstance(rule, type):
        raise TypeError(f"replay needs a rule instance, got the class {rule.__name__}; write "
                        f"{rule.__name__}() (with its parameters).")
    if not isinstance(rule, AbstractRule):
        raise TypeError(
            f"replay needs a jaxdend.plasticity rule (BasalHebbian(), ApicalCooperative(), "
            f"GraupnerBrunel(), ...), got {rule!r} of type {type(rule).__name__}."
        )
    if not isinstance(drive, ReplayDrive):
        raise TypeError(f"replay needs a ReplayDrive (jaxdend.plasticity.replay_drive), got "
                        f"{type(drive).__name__}.")
    inner = getattr(rule, "rule", rule)
    if isinstance(inner, Clopath) and drive.v is None:
        raise ValueError("Clopath is driven by the local voltage: give v=(n_rows, n_syn) mV "
                         "to replay_drive.")
    if isinstance(inner, ApicalCooperative) and inner.nmda_gate and drive.nmda is None:
        raise ValueError("ApicalCooperative(nmda_gate=True) needs the NMDA signal: give "
                         "nmda=(n_rows, n_syn) nS to replay_drive (or turn the gate off).")


def _pairs_for(rule, drive):
    """The drive's pairs within the rule's cutoff (concrete distances are filtered)."""
    pi, pj, pd = drive.pair_i, drive.pair_j, drive.pair_d
    d = _concrete(pd)
    cut = rule.neighbour_cutoff()
    if d is None or d.ndim != 1:
        return pi, pj, pd
    keep = d <= cut * (1 + 1e-12)
    if keep.all():
        return pi, pj, pd
    return pi[keep], pj[keep], pd[keep]


def replay(rule: AbstractRule, w0, drive: ReplayDrive, *, state0=None,
           checkpoint: bool | str = True) -> ReplayResult:
    """Run `rule` on the signals of `drive` (``lax.scan`` over steps); jit/vmap/grad-able.

    Every step calls ``rule.update(state, w, Signals, dt)`` with the step's presynaptic
    spikes, somatic spike, sampled signals and neighbour pairs, as the cable solvers do.
    Gradients flow to every rule parameter and to `w0`.

    Args:
        rule: a plasticity rule (`BasalHebbian()`, `ApicalCooperative()`, ...).
        w0: initial weights, scalar or (n_syn,) (dimensionless, within the rule's bounds).
        drive: the signals, from `replay_drive`.
        state0: initial rule state (default: ``rule.init_state(n_syn)``, at rest).
        checkpoint: gradient memory policy. True: recompute every step in the backward pass
            (stores one carry per step); "nested": recompute chunks of ~sqrt(steps per
            block) steps (stores one carry per chunk; use for long runs); False: store all.

    Returns:
        `ReplayResult` (record times ms, weights at the records, final state and weights).
    """
    _check_rule(rule, drive)
    if checkpoint not in (True, False, "nested"):
        raise ValueError(f"checkpoint must be True, False or 'nested', got {checkpoint!r}.")
    n = drive.n_syn
    if jnp.shape(w0) not in ((), (n,)):
        raise ValueError(f"w0 must be a scalar or ({n},) (one weight per synapse of the drive), "
                         f"got shape {jnp.shape(w0)}.")
    w0 = jnp.broadcast_to(jnp.asarray(w0, dtype=float), (n,))
    rule.check_weights(w0)
    v0 = _V_REST if drive.v is None else drive.v[0]
    state = rule.init_state(n, v0) if state0 is None else state0
    pi, pj, pd = _pairs_for(rule, drive)
    width = drive.pre_step.shape[1]
    n_post = drive.post_step.shape[0]
    dtype = w0.dtype
    v_const = jnp.full((n,), _V_REST, dtype)
    zeros = jnp.zeros((n,), dtype)

    def sample(x, row, default):
        return default if x is None else x[row]

    def step(carry, k, h, row):
        st, w, p, q = carry
        nxt = jnp.take_along_axis(drive.pre_step, jnp.minimum(p, width - 1)[:, None], 1)[:, 0]
        fire = (p < width) & (nxt == k)
        post = (q < n_post) & (drive.post_step[jnp.minimum(q, n_post - 1)] == k)
        sig = Signals(
            pre=fire.astype(dtype), post=post.astype(dtype),
            v=sample(drive.v, row, v_const),
            v_soma=sample(drive.v_soma, row, jnp.asarray(_V_REST, dtype)),
            nmda=sample(drive.nmda, row, zeros), pair_i=pi, pair_j=pj, pair_d=pd,
        )
        st1, w1 = rule.update(st, w, sig, h)
        valid = k >= 0
        st1, w1 = jax.tree_util.tree_map(lambda a, b: jnp.where(valid, a, b), (st1, w1), (st, w))
        return st1, w1, p + fire, q + post

    dt = drive.dt
    t0 = drive.t0
    bs = drive.block_size

    def step_at(carry, b, i):
        if drive.merged:
            return step(carry, drive.step_k[b, i], drive.step_h[b, i], drive.step_row[b, i])
        k = b * bs + i
        ta = t0 + k * dt
        return step(carry, k, (ta + dt) - ta, k // drive.signal_every)

    if checkpoint is True:
        step_at = jax.checkpoint(step_at)

    def block(carry, b):
        if checkpoint == "nested" and bs > 4:
            c = math.isqrt(bs - 1) + 1
            n_chunks = -(-bs // c)

            @jax.checkpoint
            def chunk(carry, j):
                def inner(carry, i):
                    ii = j * c + i
                    new = step_at(carry, b, jnp.minimum(ii, bs - 1))
                    keep = ii < bs
                    return jax.tree_util.tree_map(lambda a, o: jnp.where(keep, a, o),
                                                  new, carry), None

                return jax.lax.scan(inner, carry, jnp.arange(c))[0], None

            carry, _ = jax.lax.scan(chunk, carry, jnp.arange(n_chunks))
        else:
            carry, _ = jax.lax.scan(lambda c, i: (step_at(c, b, i), None), carry,
                                    jnp.arange(bs))
        return carry, carry[1]

    p0 = jnp.zeros((n,), jnp.int32)
    carry0 = (state, w0, p0, jnp.zeros((), jnp.int32))
    (st, w, _, _), ws = jax.lax.scan(block, carry0, jnp.arange(drive.n_blocks))
    return ReplayResult(ts=drive.ts, w=jnp.concatenate([w0[None], ws], axis=0), state=st,
                        w_final=w)
