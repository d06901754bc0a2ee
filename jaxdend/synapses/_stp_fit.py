"""Fit Tsodyks–Markram short-term plasticity to PSC amplitudes or to a PSP voltage trace.

Units: times and time constants ms, voltages mV, conductances nS; U and release are
dimensionless; amplitudes keep the units of the data given.

Both fits run Adam (optax) on unconstrained variables: every free parameter p with bounds
(lo, hi) is ``lo + (hi - lo) * sigmoid(z)`` (or the same in log space for time constants and
scales), so the bounds hold at every step. The loss is the residual sum of squares divided by
the total sum of squares of the data, i.e. ``1 - R^2``; the best iterate over all steps and
starts is returned.

`fit_stp_amplitudes` uses the exact event-by-event release `tm_release` (amplitude of spike
k = ``scale * u_k x_k``). `fit_stp_trace` simulates jaxdend's own model with `simulate`: one
isopotential passive compartment (20 um soma, cm = 1 uF/cm^2, so C = 12.57 pF; leak with
time constant tau_m and reversal e_leak) receiving one conductance synapse with
double-exponential kinetics (tau_rise, tau_decay, peak gmax) and Tsodyks–Markram release;
the synaptic plus dendritic delay is a shift of the simulated trace (exact for a cell at
rest before the first spike).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._receptors import AMPA, AbstractReceptor
from ._stp import TsodyksMarkram, tm_release

_SOMA_DIAM = 20.0  # um: the isopotential compartment of the trace model
_CM = 1.0  # uF/cm^2


@dataclasses.dataclass(frozen=True)
class STPFit:
    """Result of a short-term plasticity fit.

    Attributes:
        params: fitted (and fixed) parameter values by name.
        units: unit of every parameter ("1" = dimensionless).
        r2: coefficient of determination of the fitted model on the data (1 = perfect).
        loss_history: ``1 - R^2`` at every Adam step of the best start.
        prediction: model output at the data points (amplitudes: one array per train;
            trace: membrane potential in mV at the sample times).
        start_losses: best ``1 - R^2`` reached from every start.
        fixed: names of the parameters that were held fixed.
    """

    params: dict[str, float]
    units: dict[str, str]
    r2: float
    loss_history: np.ndarray
    prediction: np.ndarray | list[np.ndarray]
    start_losses: tuple[float, ...]
    fixed: tuple[str, ...] = ()

    def table(self) -> list[tuple[str, float, str]]:
        """Rows ``(name, value, unit)`` of every parameter, in fitting order.

        Returns:
            List of (parameter name, value, unit string).
        """
        return [(k, v, self.units[k]) for k, v in self.params.items()]


# ----------------------------------------------------------------------------- transforms
@dataclasses.dataclass(frozen=True)
class _Spec:
    unit: str
    lo: float
    hi: float
    log: bool


def _fwd(x, log):
    return jnp.log(x) if log else x


def _bounded(z, lo, hi, log):
    """Map an unconstrained z to (lo, hi) (in log space when `log`)."""
    a, b = _fwd(lo, log), _fwd(hi, log)
    y = a + (b - a) * jax.nn.sigmoid(z)
    return jnp.exp(y) if log else y


def _unbounded(x, lo, hi, log, name):
    """Inverse of `_bounded` for a concrete value x (clipped just inside the bounds)."""
    if not lo <= x <= hi:
        raise ValueError(
            f"Initial value {name}={x:g} lies outside its bounds ({lo:g}, {hi:g}); change "
            f"init[{name!r}] or bounds[{name!r}]."
        )
    a, b = float(_fwd(lo, log)), float(_fwd(hi, log))
    f = (float(_fwd(x, log)) - a) / (b - a)
    f = min(max(f, 1e-6), 1.0 - 1e-6)
    return math.log(f / (1.0 - f))


def _merge_specs(defaults: dict[str, _Spec], bounds, fixed, init) -> dict[str, _Spec]:
    """Apply user bounds; check names of bounds, fixed and init."""
    names = list(defaults)
    for arg, dct in (("bounds", bounds), ("fixed", fixed), ("init", init)):
        if not isinstance(dct, Mapping):
            raise ValueError(f"{arg} must be a dict name -> value (or None), got {dct!r}.")
        unknown = [k for k in dct if k not in defaults]
        if unknown:
            raise ValueError(f"Unknown parameter(s) {unknown} in {arg}; parameters are {names}.")
        for k, v in dct.items():
            vals = np.atleast_1d(np.asarray(v, dtype=float))
            if not np.all(np.isfinite(vals)):
                raise ValueError(f"{arg}[{k!r}] = {v!r} is not finite; give finite numbers.")
    specs = dict(defaults)
    for k, b in bounds.items():
        lo, hi = (float(x) for x in np.asarray(b, dtype=float).reshape(2))
        if not lo < hi or (specs[k].log and lo <= 0):
            raise ValueError(
                f"bounds[{k!r}] = ({lo:g}, {hi:g}) is invalid: need lo < hi"
                + (" and lo > 0 (log-scaled parameter)." if specs[k].log else ".")
            )
        specs[k] = dataclasses.replace(specs[k], lo=lo, hi=hi)
    return specs


# ----------------------------------------------------------------------------- optimiser
def _make_adam(loss: Callable, steps: int, learning_rate: float) -> Callable:
    """Jitted Adam run (cosine-decayed step): z0 -> (best z, best loss, loss history)."""
    sched = optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.05)
    opt = optax.chain(optax.clip_by_global_norm(10.0), optax.adam(sched))
    value_and_grad = jax.value_and_grad(loss)

    def step(carry, _):
        z, state, z_best, l_best = carry
        val, g = value_and_grad(z)
        better = jnp.isfinite(val) & (val < l_best)
        z_best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), z, z_best)
        l_best = jnp.where(better, val, l_best)
        g = jax.tree_util.tree_map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), g)
        upd, state = opt.update(g, state, z)
        return (optax.apply_updates(z, upd), state, z_best, l_best), val

    @jax.jit
    def run(z0):
        init = (z0, opt.init(z0), z0, jnp.asarray(jnp.inf))
        (z, _, z_best, l_best), hist = jax.lax.scan(step, init, None, length=steps)
        val = loss(z)
        better = jnp.isfinite(val) & (val < l_best)
        z_best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), z, z_best)
        return z_best, jnp.where(better, val, l_best), hist

    return run


def _check_opt_args(steps, learning_rate, n_starts):
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer (Adam iterations), got {steps!r}.")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate)
            and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}.")
    if not isinstance(n_starts, (int, np.integer)) or n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer, got {n_starts!r}.")


def _multistart(loss, z_init: dict, steps, learning_rate, n_starts, seed, spread):
    """Run Adam from z_init and n_starts - 1 random perturbations of it; keep the best."""
    rng = np.random.default_rng(seed)
    run = _make_adam(loss, steps, learning_rate)
    best = None
    start_losses = []
    for s in range(n_starts):
        z0 = {k: jnp.asarray(v + (spread * rng.standard_normal() if s else 0.0))
              for k, v in z_init.items()}
        z, val, hist = run(z0)
        val = float(val)
        start_losses.append(val)
        if best is None or (math.isfinite(val) and not val >= best[1]):
            best = (z, val, np.asarray(hist))
    return best, tuple(start_losses)


# ----------------------------------------------------------------------------- amplitudes
_AMP_NAMES = ("U", "tau_rec", "tau_fac", "amplitude")


def _as_trains(spike_times, amplitudes):
    """Validate and split into lists of 1-D float arrays (one per train)."""
    def split(x, what):
        if isinstance(x, np.ndarray) and x.ndim == 1:
            return [x]
        if isinstance(x, Sequence) and x and all(np.ndim(e) == 0 for e in x):
            return [x]
        if isinstance(x, np.ndarray) and x.ndim == 2:
            return list(x)
        if isinstance(x, Sequence) and x:
            return list(x)
        raise ValueError(
            f"{what} must be one sequence of numbers or a list of sequences (one per train), "
            f"got {x!r}."
        )

    ts = [np.asarray(t, dtype=float) for t in split(spike_times, "spike_times")]
    amps = [np.asarray(a, dtype=float) for a in split(amplitudes, "amplitudes")]
    if len(ts) != len(amps):
        raise ValueError(
            f"spike_times has {len(ts)} train(s) but amplitudes has {len(amps)}; give one "
            "amplitude sequence per spike train."
        )
    for i, (t, a) in enumerate(zip(ts, amps)):
        if t.ndim != 1 or a.ndim != 1 or t.size != a.size or t.size == 0:
            raise ValueError(
                f"Train {i}: spike_times has shape {t.shape} and amplitudes {a.shape}; need "
                "two non-empty 1-D sequences of equal length (one amplitude per spike)."
            )
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(a))):
            raise ValueError(f"Train {i} contains NaN or inf; remove or fill those spikes.")
        if np.any(np.diff(t) <= 0):
            raise ValueError(f"Train {i}: spike times (ms) must be strictly increasing.")
        if np.any(a < 0):
            raise ValueError(
                f"Train {i} has negative amplitudes; pass magnitudes (e.g. np.abs of inward "
                "PSCs) so that the amplitude is scale * release with scale > 0."
            )
    flat = np.concatenate(amps)
    if flat.size < 2 or np.ptp(flat) == 0:
        raise ValueError(
            "The amplitudes are all equal (or fewer than 2): R^2 is undefined and nothing "
            "constrains the plasticity; give a train with changing amplitudes."
        )
    return ts, amps


def fit_stp_amplitudes(
    spike_times,
    amplitudes,
    *,
    steps: int = 1500,
    learning_rate: float = 0.05,
    n_starts: int = 8,
    seed: int = 0,
    init: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    fixed: Mapping[str, float] | None = None,
) -> STPFit:
    """Fit U, tau_rec, tau_fac and the first-spike amplitude to PSC amplitude sequences.

    The model amplitude of spike k of a train is ``amplitude / U * u_k x_k`` (`tm_release`,
    synapse at rest before the first spike), fitted jointly to all trains by least squares.

    Args:
        spike_times: spike times in ms of one train, or a list of trains.
        amplitudes: amplitude at every spike (>= 0, any unit, e.g. normalised or pA), with
            the same structure as `spike_times`.
        steps: Adam iterations per start.
        learning_rate: Adam step size in the unconstrained variables.
        n_starts: number of starts (the first from `init`, the others random perturbations).
        seed: seed of the random starts.
        init: initial values by name ("U", "tau_rec" ms, "tau_fac" ms, "amplitude").
        bounds: (lo, hi) by name; defaults U (0.001, 1), tau_rec (1, 10000) ms, tau_fac
            (0.01, 10000) ms, amplitude (1e-3, 1e3) x the largest amplitude.
        fixed: values held fixed by name (e.g. ``{"tau_fac": 0.0}`` for pure depression).

    Returns:
        `STPFit` with params U (1), tau_rec (ms), tau_fac (ms), amplitude (data units:
        amplitude at the first spike) and scale (data units: amplitude of a release of all
        resources, amplitude / U), R^2 over all amplitudes and one predicted array per train.
    """
    _check_opt_args(steps, learning_rate, n_starts)
    ts, amps = _as_trains(spike_times, amplitudes)
    bounds, fixed, init = dict(bounds or {}), dict(fixed or {}), dict(init or {})
    a_max = float(max(np.max(a) for a in amps))
    defaults = {
        "U": _Spec("1", 1e-3, 1.0, False),
        "tau_rec": _Spec("ms", 1.0, 1e4, True),
        "tau_fac": _Spec("ms", 1e-2, 1e4, True),
        "amplitude": _Spec("data units", 1e-3 * a_max, 1e3 * a_max, True),
    }
    specs = _merge_specs(defaults, bounds, fixed, init)
    _check_fixed_tm(fixed)
    first = float(np.mean([a[0] for a in amps]))
    start = {"U": 0.5, "tau_rec": 300.0, "tau_fac": 30.0,
             "amplitude": first if first > 0 else a_max}
    start.update(init)
    free = [k for k in _AMP_NAMES if k not in fixed]
    if not free:
        raise ValueError("Every parameter is fixed; leave at least one out of `fixed`.")
    z_init = {k: _unbounded(float(start[k]), specs[k].lo, specs[k].hi, specs[k].log, k)
              for k in free}
    t_pad, a_pad, mask = _pad(ts), _pad(amps), _pad([np.ones_like(a) for a in amps])
    mask = mask > 0
    mean = float(np.mean(np.concatenate(amps)))
    ss_tot = float(np.sum((np.concatenate(amps) - mean) ** 2))

    def values(z):
        out = {k: jnp.asarray(float(v)) for k, v in fixed.items()}
        out.update({k: _bounded(z[k], specs[k].lo, specs[k].hi, specs[k].log) for k in free})
        return out

    def predict(p):
        stp = TsodyksMarkram(p["U"], p["tau_rec"], p["tau_fac"])
        rel = jax.vmap(lambda t: tm_release(stp, t))(t_pad)
        return p["amplitude"] / p["U"] * rel

    def loss(z):
        res = jnp.where(mask, predict(values(z)) - a_pad, 0.0)
        return jnp.sum(res**2) / ss_tot

    (z, val, hist), start_losses = _multistart(loss, z_init, int(steps), float(learning_rate),
                                                int(n_starts), seed, spread=1.0)
    p = values(z)
    pred = np.asarray(predict(p))
    params = {k: float(p[k]) for k in _AMP_NAMES}
    params["scale"] = params["amplitude"] / params["U"]
    units = {k: specs[k].unit for k in _AMP_NAMES}
    units["scale"] = "data units"
    return STPFit(
        params=params, units=units, r2=1.0 - val, loss_history=hist,
        prediction=[pred[i, : a.size] for i, a in enumerate(amps)],
        start_losses=start_losses, fixed=tuple(fixed),
    )


def _pad(rows):
    """Stack 1-D arrays into a 2-D array, padding at the end with increasing times."""
    width = max(r.size for r in rows)
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : r.size] = r
        if r.size < width:  # padding spikes after the last (their amplitudes are masked)
            out[i, r.size:] = r[-1] + 1.0 + np.arange(width - r.size)
    return out


def _check_fixed_tm(fixed):
    """Fixed STP values must be valid Tsodyks–Markram parameters."""
    if "U" in fixed and not 0 < float(fixed["U"]) <= 1:
        raise ValueError(f"fixed['U'] = {fixed['U']} must lie in (0, 1].")
    if "tau_rec" in fixed and not float(fixed["tau_rec"]) > 0:
        raise ValueError(f"fixed['tau_rec'] = {fixed['tau_rec']} must be > 0 ms.")
    if "tau_fac" in fixed and not float(fixed["tau_fac"]) >= 0:
        raise ValueError(f"fixed['tau_fac'] = {fixed['tau_fac']} must be >= 0 ms.")


# ----------------------------------------------------------------------------- trace
_TRACE_NAMES = ("U", "tau_rec", "tau_fac", "gmax", "tau_rise", "tau_decay", "tau_m", "e_leak",
                "delay")


def _check_trace(t, v, spike_times):
    t = np.asarray(t, dtype=float)
    v = np.asarray(v, dtype=float)
    s = np.asarray(spike_times, dtype=float)
    if t.ndim != 1 or v.ndim != 1 or t.shape != v.shape:
        raise ValueError(
            f"t has shape {t.shape} and v has shape {v.shape}; need two 1-D arrays of equal "
            "length (sample times in ms, membrane potential in mV)."
        )
    if t.size < 10:
        raise ValueError(f"The trace has only {t.size} samples; give at least 10.")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
        raise ValueError("t or v contains NaN or inf; remove or interpolate those samples.")
    dts = np.diff(t)
    dt = (t[-1] - t[0]) / (t.size - 1)
    if np.any(dts <= 0) or np.max(np.abs(dts - dt)) > 1e-3 * dt:
        raise ValueError(
            "Sample times must be increasing and uniformly spaced (the model is simulated at "
            "the sampling step); resample the trace to a uniform grid first."
        )
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError("spike_times must be a non-empty 1-D sequence of finite times (ms).")
    if np.any(np.diff(s) <= 0):
        raise ValueError("spike_times (ms) must be strictly increasing.")
    if s[0] < t[0] or s[-1] >= t[-1]:
        raise ValueError(
            f"Spike times span [{s[0]:g}, {s[-1]:g}] ms but the trace covers [{t[0]:g}, "
            f"{t[-1]:g}) ms; give spike times in ms inside the recording (convert from s?)."
        )
    if np.ptp(v) == 0:
        raise ValueError("The voltage trace is constant; there is no PSP to fit.")
    return t, v, s, dt


def _trace_model(t, spike_times, dt, receptor):
    """Build the simulator of the trace model: params dict -> v (mV) at the times t."""
    from .. import channels as _channels
    from .._cell import Cell
    from ..morphology import ball_and_stick, discretize
    from ..solve import simulate
    from ._inputs import Input

    comps = discretize(ball_and_stick(soma_diam=_SOMA_DIAM, dend_length=1.0, dend_diam=0.01),
                       nseg=1)
    base = Cell(comps, cm=_CM).insert(_channels.Leak())
    base = base.add_synapses("stp", receptor, [0], 1.0, stp=TsodyksMarkram())
    stim = [Input("stp", [list(spike_times)])]
    record = base.probe("v", index=0)
    t0, t1 = float(t[0]), float(t[-1])
    tj = jnp.asarray(t)

    def run(p):
        cell = base.set("Leak.g", 1e-3 * _CM / p["tau_m"]).set("Leak.e", p["e_leak"])
        cell = cell.set("v_init", p["e_leak"]).set("stp.gmax", p["gmax"])
        cell = cell.set("stp.U", p["U"]).set("stp.tau_rec", p["tau_rec"])
        cell = cell.set("stp.tau_fac", p["tau_fac"]).set("stp.tau_rise", p["tau_rise"])
        cell = cell.set("stp.tau_decay", p["tau_decay"])
        sol = simulate(cell, stim, t0=t0, t1=t1, dt=dt, record=record)
        vs = sol["v"][:, 0]
        # synaptic + dendritic delay: the cell rests until the first spike, so delaying the
        # spikes equals delaying the response (linear interpolation between samples)
        return jnp.interp(tj - p["delay"], sol.ts, vs, left=vs[0])

    return run


def fit_stp_trace(
    t,
    v,
    spike_times,
    *,
    steps: int = 300,
    learning_rate: float = 0.05,
    n_starts: int = 1,
    seed: int = 0,
    receptor: AbstractReceptor | None = None,
    init: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    fixed: Mapping[str, float] | None = None,
) -> STPFit:
    """Fit Tsodyks–Markram STP, synaptic amplitude and PSP kinetics to a voltage trace.

    The model (simulated with `jaxdend.simulate`, backward Euler at the sampling step) is one
    passive isopotential compartment (C = 12.57 pF: 20 um soma, 1 uF/cm^2) with membrane
    time constant tau_m and resting potential e_leak, and one double-exponential
    conductance synapse (reversal from `receptor`) whose spikes release ``u x`` (TM). The
    response is delayed by `delay`. Only the shape of the PSP constrains tau_rise, tau_decay
    and tau_m, and their roles can trade off; U, tau_rec and tau_fac are set by the relative
    PSP amplitudes. Start values not given in `init` are estimated from the first PSP.

    Args:
        t: sample times, ms (uniformly spaced).
        v: membrane potential, mV.
        spike_times: presynaptic spike times, ms (inside the trace).
        steps: Adam iterations per start.
        learning_rate: Adam step size in the unconstrained variables.
        n_starts: number of starts (the first from `init`, the others random perturbations).
        seed: seed of the random starts.
        receptor: receptor giving the reversal potential and default kinetics (AMPA()).
        init: initial values by name: U (1), tau_rec, tau_fac, tau_rise, tau_decay, tau_m,
            delay (ms), gmax (nS), e_leak (mV).
        bounds: (lo, hi) by name; defaults U (0.001, 1), tau_rec (1, 10000) ms, tau_fac
            (0.01, 10000) ms, gmax (1e-4, 1e3) nS, tau_rise (0.02, 20) ms (and below 0.99
            tau_decay), tau_decay (0.1, 300) ms, tau_m (1, 1000) ms, e_leak (min(v) - 20,
            max(v) + 20) mV, delay (0, 20) ms.
        fixed: values held fixed by name (e.g. ``{"tau_fac": 0.0}`` for pure depression).

    Returns:
        `STPFit` with the parameters above (and psp1_mV: model peak of the first PSP above
        e_leak, mV), R^2 of the trace and the model trace (mV) at the sample times.
    """
    _check_opt_args(steps, learning_rate, n_starts)
    t, v, s, dt = _check_trace(t, v, spike_times)
    receptor = AMPA() if receptor is None else receptor
    if not isinstance(receptor, AbstractReceptor):
        raise ValueError(f"receptor must be e.g. jaxdend.synapses.AMPA(), got {receptor!r}.")
    bounds, fixed, init = dict(bounds or {}), dict(fixed or {}), dict(init or {})
    defaults = {
        "U": _Spec("1", 1e-3, 1.0, False),
        "tau_rec": _Spec("ms", 1.0, 1e4, True),
        "tau_fac": _Spec("ms", 1e-2, 1e4, True),
        "gmax": _Spec("nS", 1e-4, 1e3, True),
        "tau_rise": _Spec("ms", 0.02, 20.0, True),
        "tau_decay": _Spec("ms", 0.1, 300.0, True),
        "tau_m": _Spec("ms", 1.0, 1000.0, True),
        "e_leak": _Spec("mV", float(v.min()) - 20.0, float(v.max()) + 20.0, False),
        "delay": _Spec("ms", 0.0, 20.0, False),
    }
    specs = _merge_specs(defaults, bounds, fixed, init)
    _check_fixed_tm(fixed)
    for k in ("gmax", "tau_rise", "tau_decay", "tau_m"):
        if k in fixed and not float(fixed[k]) > 0:
            raise ValueError(f"fixed[{k!r}] = {fixed[k]} must be > 0.")
    if "delay" in fixed and not float(fixed["delay"]) >= 0:
        raise ValueError(f"fixed['delay'] = {fixed['delay']} must be >= 0 ms.")
    free = [k for k in _TRACE_NAMES if k not in fixed]
    if not free:
        raise ValueError("Every parameter is fixed; leave at least one out of `fixed`.")
    rise_hi = specs["tau_rise"].hi
    if "tau_rise" in fixed:  # keep tau_decay above a fixed tau_rise
        lo_d = max(specs["tau_decay"].lo, float(fixed["tau_rise"]) / 0.99)
        if lo_d >= specs["tau_decay"].hi:
            raise ValueError("fixed tau_rise is not below the upper bound of tau_decay.")
        specs["tau_decay"] = dataclasses.replace(specs["tau_decay"], lo=lo_d)
    elif specs["tau_rise"].lo >= 0.99 * specs["tau_decay"].lo and "tau_decay" not in fixed:
        raise ValueError("The lower bound of tau_rise must lie below 0.99 x that of tau_decay.")

    def values(z):
        out = {k: jnp.asarray(float(val)) for k, val in fixed.items()}
        for k in free:
            if k != "tau_rise":
                out[k] = _bounded(z[k], specs[k].lo, specs[k].hi, specs[k].log)
        if "tau_rise" in free:  # upper bound min(hi, 0.99 tau_decay) keeps rise < decay
            hi = jnp.minimum(rise_hi, 0.99 * out["tau_decay"])
            a, b = jnp.log(specs["tau_rise"].lo), jnp.log(hi)
            out["tau_rise"] = jnp.exp(a + (b - a) * jax.nn.sigmoid(z["tau_rise"]))
        return out

    run = _trace_model(t, s, dt, receptor)
    ss_tot = float(np.sum((v - v.mean()) ** 2))
    vj = jnp.asarray(v)

    def loss(z):
        return jnp.sum((run(values(z)) - vj) ** 2) / ss_tot

    start = _trace_start(t, v, s, receptor, specs, fixed, init, run)
    for k in free:
        if k == "tau_rise":
            hi = min(rise_hi, 0.99 * start["tau_decay"])
            if not specs["tau_rise"].lo <= start["tau_rise"] <= hi:
                raise ValueError(
                    f"Initial tau_rise={start['tau_rise']:g} ms must lie in "
                    f"({specs['tau_rise'].lo:g}, {hi:g}) (below 0.99 x tau_decay)."
                )
    z_init = {}
    for k in free:
        hi = min(rise_hi, 0.99 * start["tau_decay"]) if k == "tau_rise" else specs[k].hi
        z_init[k] = _unbounded(float(start[k]), specs[k].lo, hi, specs[k].log, k)

    (z, val, hist), start_losses = _multistart(loss, z_init, int(steps), float(learning_rate),
                                                int(n_starts), seed, spread=0.5)
    p = values(z)
    pred = np.asarray(run(p))
    params = {k: float(p[k]) for k in _TRACE_NAMES}
    units = {k: specs[k].unit for k in _TRACE_NAMES}
    params["psp1_mV"] = _first_psp(t, pred - params["e_leak"], s)
    units["psp1_mV"] = "mV"
    return STPFit(params=params, units=units, r2=1.0 - val, loss_history=hist,
                  prediction=pred, start_losses=start_losses, fixed=tuple(fixed))


def _first_psp(t, dv, s):
    """Largest |deviation| (same sign as the extreme) between the first two spikes."""
    end = s[1] if s.size > 1 else t[-1]
    w = dv[(t >= s[0]) & (t < end)]
    return float(w[np.argmax(np.abs(w))]) if w.size else 0.0


def _trace_start(t, v, s, receptor, specs, fixed, init, run):
    """Start values: defaults, rest from the baseline, gmax and delay from the first PSP."""
    pre = v[t < s[0]]
    e0 = float(np.median(pre)) if pre.size >= 10 else float(np.median(v))
    lo, hi = specs["e_leak"].lo, specs["e_leak"].hi
    start = {"U": 0.5, "tau_rec": 200.0, "tau_fac": 10.0, "gmax": 1.0,
             "tau_rise": float(receptor.tau_rise), "tau_decay": float(receptor.tau_decay),
             "tau_m": 30.0, "e_leak": min(max(e0, lo), hi), "delay": 0.0}
    for k in ("tau_rise", "tau_decay", "tau_m", "tau_rec", "tau_fac", "gmax"):
        sp = specs[k]
        start[k] = float(np.clip(start[k], sp.lo * 1.01, sp.hi / 1.01))
    start["tau_rise"] = min(start["tau_rise"], 0.5 * start["tau_decay"])
    start.update({k: float(x) for k, x in fixed.items()})
    start.update({k: float(x) for k, x in init.items()})
    if "gmax" in init or "gmax" in fixed:
        if "delay" in init or "delay" in fixed:
            return start
    # one simulation at the start values without delay: scale gmax and align the onset
    trial = dict(start, delay=0.0)
    if "gmax" not in init and "gmax" not in fixed:
        trial["gmax"] = 1.0
    model = np.asarray(jax.jit(run)({k: jnp.asarray(x) for k, x in trial.items()}))
    end = s[1] if s.size > 1 else t[-1]
    win = (t >= s[0]) & (t < end)
    dm = model[win] - trial["e_leak"]
    dd = v[win] - start["e_leak"]
    am, ad = dm[np.argmax(np.abs(dm))], dd[np.argmax(np.abs(dd))]
    if "gmax" not in init and "gmax" not in fixed and am != 0 and ad * am > 0:
        sp = specs["gmax"]
        start["gmax"] = float(np.clip(ad / am, sp.lo * 1.01, sp.hi / 1.01))
    if "delay" not in init and "delay" not in fixed and am != 0 and ad * am > 0:
        tw = t[win]
        t_m = tw[np.argmax(dm / am >= 0.5)]
        t_d = tw[np.argmax(dd / ad >= 0.5)]
        sp = specs["delay"]
        start["delay"] = float(np.clip(t_d - t_m, sp.lo + 1e-3 * (sp.hi - sp.lo),
                                       sp.hi - 1e-3 * (sp.hi - sp.lo)))
    return start
