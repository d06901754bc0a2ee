"""Electrophysiology features of recorded or simulated traces.

All features live here. `spike_times` is plain NumPy (for analysis and plots); every other
function is written in `jax.numpy`, works under jit/vmap and is differentiable with respect to
the trace (and so, through `jaxdend.simulate`, with respect to any cell parameter), for use in
feature losses (`jaxdend.fit.feature_loss`).

Units: time ms, voltage mV, current nA, resistance MOhm (mV / nA), dV/dt mV/ms.
Arguments `t` (ms) and `v` (mV) are 1-D arrays of equal length (one sweep: pass
``sol["v"][:, 0]``); `window=(start, end)` (ms) restricts a feature to ``start <= t <= end``.

Definitions (spikes are upward crossings of `threshold`; the discrete choices, i.e. which
samples are crossings, peaks or troughs, are piecewise constant in the trace, and the values
are differentiable functions of the samples they pick, or linear interpolations between
two samples):

- spike count (smooth): total upward variation of ``sigmoid((v - threshold) / width)``, the
  number of crossings for sharp spikes; a subthreshold bump counts partially.
- first-spike latency: first crossing time after `stim_start` (linear interpolation between
  samples) minus `stim_start`.
- per spike (`spike_shapes`): peak (max of v between its crossing and the next), onset (the
  last upward crossing of `dvdt_threshold` by the sample slope dV/dt before the peak; if
  none, the trough before the spike), amplitude = peak - onset voltage, half-width = time
  between the upward and downward crossings of (peak + onset) / 2 (interpolated), AHP depth
  = onset voltage - trough (minimum of v between the peak and the next crossing, or the end
  of the window). `ap_amplitude`, `ap_half_width`, `ahp_depth` average over the spikes (0
  when there is none). The onset voltage is v (linear between samples) where the slope,
  linear between the midpoints of the sample pairs, reaches `dvdt_threshold`: it is
  continuous as a spike moves across the sample grid (the onset sample itself jumps by
  about dvdt_threshold x dt, 2 mV at 20 mV/ms and 0.1 ms). Peak and trough are samples: at
  0.1 ms sampling a fast AP's peak sample moves by ~1 mV with the sub-sample phase of the
  spike (the vertex of a parabola through three samples moves twice as much), so
  amplitude, half-width and AHP gradients of long spike trains on coarse grids are noisy.
- input resistance: (steady-state voltage - baseline) / step amplitude (MOhm).
- membrane time constant: -1 / slope of ``log(1 - f(t))`` fitted by least squares over the
  samples of the charging curve ``f = (v - baseline) / (v_extreme - baseline)`` between
  ``fit_range`` (default 10 % and 90 %), up to the first sample reaching the upper level
  (v_extreme: the most deflected voltage of the step, the steady state when there is no sag).
- sag ratio: (v_extreme - v_steady) / (v_extreme - baseline), v_extreme the most deflected
  voltage during the step (most negative for a hyperpolarising step); 0 = no sag.

Baseline = mean of v over `baseline` ms before `stim_start` (default: every sample before it);
steady state = mean over the last `steady` ms of the step (default: 10 % of the step).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def spike_times(t, v, threshold: float = 0.0) -> np.ndarray:
    """Times (ms) of upward crossings of `threshold` (mV), linearly interpolated.

    Args:
        t: sample times in ms, shape (n,).
        v: membrane potential in mV, shape (n,).
        threshold: crossing level in mV.

    Returns:
        1-D array of crossing times in ms.
    """
    t, v = np.asarray(t, float), np.asarray(v, float)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"t and v must be 1-D of equal length, got {t.shape} and {v.shape}.")
    up = np.nonzero((v[:-1] < threshold) & (v[1:] >= threshold))[0]
    return t[up] + (threshold - v[up]) / (v[up + 1] - v[up]) * (t[up + 1] - t[up])


# ----------------------------------------------------------------------------- helpers
def _check_tv(t, v):
    t = jnp.asarray(t, dtype=float)
    v = jnp.asarray(v, dtype=float)
    if t.ndim != 1 or v.ndim != 1 or t.shape != v.shape:
        raise ValueError(
            f"t and v must be 1-D arrays of equal length (one sweep), got shapes {t.shape} "
            f"and {v.shape}; for a simulation pass sol.ts and sol['v'][:, 0]."
        )
    if t.shape[0] < 2:
        raise ValueError("The trace needs at least 2 samples.")
    return t, v


def _window(window):
    """(start, end) in ms of an optional window ((-inf, inf) for None)."""
    if window is None:
        return -jnp.inf, jnp.inf
    try:
        start, end = window
    except (TypeError, ValueError):
        raise ValueError(f"window must be (start, end) in ms, got {window!r}.") from None
    _check_times(start, end, "window")
    return start, end


def _in(t, start, end):
    return (t >= start) & (t <= end)


def _check_times(start, end, what):
    if isinstance(start, (int, float)) and isinstance(end, (int, float)):
        if not (math.isfinite(start) and math.isfinite(end)) or not end > start:
            raise ValueError(f"{what}: need finite start < end (ms), got {start!r}, {end!r}.")


def _check_max_spikes(max_spikes):
    if not isinstance(max_spikes, (int, np.integer)) or max_spikes < 1:
        raise ValueError(f"max_spikes must be a positive integer, got {max_spikes!r}.")
    return int(max_spikes)


def _interp_cross(t, v, i, level, ok):
    """Time (ms) where the segment between samples i and i+1 crosses `level`."""
    n = v.shape[0]
    i = jnp.clip(i, 0, n - 2)
    v0, v1 = v[i], v[i + 1]
    den = jnp.where(ok, v1 - v0, 1.0)
    den = jnp.where(den == 0, 1.0, den)
    frac = jnp.where(ok, (level - v0) / den, 0.0)
    return t[i] + frac * (t[i + 1] - t[i])


def _masked_mean(x, m):
    return jnp.sum(jnp.where(m, x, 0.0)) / jnp.maximum(jnp.sum(m), 1)


# ----------------------------------------------------------------------------- spikes
def crossing_times(t, v, threshold: float = 0.0, *, max_spikes: int = 32, window=None):
    """Differentiable upward threshold-crossing times (ms), padded to `max_spikes`.

    A crossing between samples i and i+1 (``v_i < threshold <= v_{i+1}``) is located by linear
    interpolation, ``t_i + (threshold - v_i) / (v_{i+1} - v_i) * (t_{i+1} - t_i)``, which is
    differentiable in both samples. Crossings beyond the first `max_spikes` are ignored.

    Args:
        t: sample times, ms.
        v: membrane potential, mV.
        threshold: crossing level, mV.
        max_spikes: fixed number of slots (static).
        window: optional (start, end) in ms.

    Returns:
        ``(times, valid)``: times in ms, shape (max_spikes,), padded with t[-1]; valid (bool,
        same shape) marks the real crossings.
    """
    t, v = _check_tv(t, v)
    return _crossing_times(t, v, threshold, *_window(window), _check_max_spikes(max_spikes))


@partial(jax.jit, static_argnums=5)
def _crossing_times(t, v, threshold, start, end, k):
    w = _in(t, start, end)
    up = w[:-1] & w[1:] & (v[:-1] < threshold) & (v[1:] >= threshold)
    idx = jnp.nonzero(up, size=k, fill_value=0)[0]
    valid = jnp.arange(k) < jnp.sum(up)
    times = _interp_cross(t, v, idx, threshold, valid)
    return jnp.where(valid, times, t[-1]), valid


def spike_count(t, v, *, threshold: float = 0.0, width: float = 1.0, window=None):
    """Smooth spike count: total upward variation of ``sigmoid((v - threshold) / width)``.

    For spikes that rise well above and fall well below `threshold` (by several `width`) it
    equals the number of upward crossings; a bump reaching ``threshold - x`` adds about
    ``sigmoid(-x / width)``, so the count has a gradient that can create or remove spikes.

    Args:
        t: sample times, ms.
        v: membrane potential, mV.
        threshold: spike threshold, mV.
        width: smoothing width, mV (> 0).
        window: optional (start, end) in ms.

    Returns:
        Scalar count (dimensionless).
    """
    t, v = _check_tv(t, v)
    if isinstance(width, (int, float)) and not width > 0:
        raise ValueError(f"width must be > 0 mV, got {width!r}.")
    return _spike_count(t, v, threshold, width, *_window(window))


@jax.jit
def _spike_count(t, v, threshold, width, start, end):
    w = _in(t, start, end)
    z = jax.nn.sigmoid((v - threshold) / width)
    inc = jax.nn.relu(z[1:] - z[:-1])
    return jnp.sum(jnp.where(w[:-1] & w[1:], inc, 0.0))


def first_spike_latency(t, v, stim_start: float, *, threshold: float = 0.0,
                        stim_end: float | None = None):
    """Time from `stim_start` to the first upward crossing of `threshold`, ms.

    Args:
        t: sample times, ms.
        v: membrane potential, mV.
        stim_start: stimulus onset, ms.
        threshold: spike threshold, mV.
        stim_end: optional end of the search window, ms (default: end of the trace).

    Returns:
        Latency in ms; ``t[-1] - stim_start`` (the longest possible) when there is no spike.
    """
    t, v = _check_tv(t, v)
    if stim_end is not None:
        _check_times(stim_start, stim_end, "(stim_start, stim_end)")
    return _latency(t, v, stim_start, threshold, t[-1] if stim_end is None else stim_end)


@jax.jit
def _latency(t, v, stim_start, threshold, end):
    w = (t >= stim_start) & (t <= end)
    up = w[:-1] & w[1:] & (v[:-1] < threshold) & (v[1:] >= threshold)
    found = jnp.any(up)
    tc = _interp_cross(t, v, jnp.argmax(up), threshold, found)
    return jnp.where(found, tc - stim_start, end - stim_start)


def spike_shapes(t, v, *, threshold: float = 0.0, dvdt_threshold: float = 20.0, window=None,
                 max_spikes: int = 32) -> dict:
    """Per-spike action-potential measures (see the module docstring for the definitions).

    Args:
        t: sample times, ms.
        v: membrane potential, mV.
        threshold: spike detection level, mV.
        dvdt_threshold: slope defining the AP onset, mV/ms.
        window: optional (start, end) in ms.
        max_spikes: number of spike slots (static); later spikes are ignored.

    Returns:
        dict of arrays of shape (max_spikes,): "valid" (bool), "peak_time" (ms), "peak" (mV),
        "onset" (mV), "amplitude" (mV), "half_width" (ms) with "half_width_valid" (both
        half-level crossings found), "trough" (mV), "ahp_depth" (mV) with "ahp_valid".
    """
    t, v = _check_tv(t, v)
    return _spike_shapes(t, v, threshold, dvdt_threshold, *_window(window),
                         _check_max_spikes(max_spikes))


@partial(jax.jit, static_argnums=6)
def _spike_shapes(t, v, threshold, dvdt_threshold, start, end, m):
    n = v.shape[0]
    j = jnp.arange(n)
    w = _in(t, start, end)
    pair = w[:-1] & w[1:]
    up = pair & (v[:-1] < threshold) & (v[1:] >= threshold)
    n_cross = jnp.sum(up)
    # lab[j]: crossings before sample j (clipped; m + 1 collects the ignored spikes)
    lab = jnp.minimum(jnp.concatenate([jnp.zeros(1, int), jnp.cumsum(up)]), m + 1)
    nseg = m + 2
    vw = jnp.where(w, v, -jnp.inf)
    pmax = jax.ops.segment_max(vw, lab, num_segments=nseg)
    is_max = w & (v == pmax[lab])
    pidx = jax.ops.segment_min(jnp.where(is_max, j, n), lab, num_segments=nseg)[1:m + 1]
    valid = (jnp.arange(1, m + 1) <= n_cross) & (pidx < n)
    pidx = jnp.where(valid, pidx, n)
    # q[j]: peaks at or before sample j (0..m); q == r and lab == r: after peak r, before
    # crossing r + 1 (the trough of spike r; for r = 0 the part before the first spike)
    isp = jnp.zeros(n, bool).at[pidx].set(True, mode="drop")
    q = jnp.cumsum(isp)
    region = w & (q == lab) & (lab <= m)
    rmin = jax.ops.segment_min(jnp.where(region, v, jnp.inf), q, num_segments=m + 1)
    is_min = region & (v == rmin[q])
    tidx = jax.ops.segment_min(jnp.where(is_min, j, n), q, num_segments=m + 1)  # (m + 1,)
    # onset: last upward crossing of dvdt_threshold by the slope before the peak
    dt = t[1:] - t[:-1]
    slope = (v[1:] - v[:-1]) / jnp.where(dt > 0, dt, 1.0)
    cand = jnp.concatenate([jnp.zeros(1, bool),
                            pair[1:] & pair[:-1] & (slope[:-1] < dvdt_threshold)
                            & (slope[1:] >= dvdt_threshold)])  # pair index i (sample i)
    qp = q[:-1]
    onset_seg = jax.ops.segment_max(jnp.where(cand, jnp.arange(n - 1), -1), qp,
                                    num_segments=m + 1)
    by_slope = onset_seg[:m] >= 0
    onset_idx = jnp.clip(jnp.where(by_slope, onset_seg[:m], tidx[:m]), 0, n - 1)
    safe_p = jnp.clip(pidx, 0, n - 1)
    peak = v[safe_p]
    # onset by slope: the slope is linear between the pair midpoints i - 1/2 and i + 1/2 and
    # reaches dvdt_threshold at tau (samples from i); v is linear between samples there
    i0, i1 = jnp.clip(onset_idx - 1, 0, n - 1), jnp.clip(onset_idx, 0, n - 2)
    s0, s1 = slope[i0], slope[i1]
    ds = jnp.where(by_slope & (s1 > s0), s1 - s0, 1.0)
    tau = jnp.clip(jnp.where(by_slope, (dvdt_threshold - s0) / ds, 0.5), 0.0, 1.0) - 0.5
    vb = v[onset_idx]
    v_slope = vb + jnp.where(tau < 0, tau * (vb - v[i0]), tau * (v[i1 + 1] - vb))
    onset = jnp.where(by_slope, v_slope, vb)
    half = 0.5 * (peak + onset)
    nan = jnp.full((1,), jnp.nan)
    # rising half-level crossing: pairs before peak s (q == s - 1), at/after the onset
    h_rise = jnp.concatenate([jnp.where(valid, half, jnp.nan), nan])[qp]
    o_rise = jnp.concatenate([onset_idx, jnp.full((1,), n)])[qp]
    i_pairs = jnp.arange(n - 1)
    c_rise = pair & (v[:-1] < h_rise) & (v[1:] >= h_rise) & (i_pairs >= o_rise)
    rise = jax.ops.segment_max(jnp.where(c_rise, i_pairs, -1), qp, num_segments=m + 1)[:m]
    # falling half-level crossing: pairs after peak s (q == s), before crossing s + 1
    h_fall = jnp.concatenate([nan, jnp.where(valid, half, jnp.nan)])[qp]
    c_fall = pair & (v[:-1] >= h_fall) & (v[1:] < h_fall) & (lab[:-1] == qp)
    fall = jax.ops.segment_min(jnp.where(c_fall, i_pairs, n), qp, num_segments=m + 1)[1:]
    hw_ok = valid & (rise >= 0) & (fall < n)
    t_rise = _interp_cross(t, v, rise, half, hw_ok)
    t_fall = _interp_cross(t, v, fall, half, hw_ok)
    half_width = jnp.where(hw_ok, t_fall - t_rise, 0.0)
    ahp_ok = valid & (tidx[1:] < n)
    trough = v[jnp.clip(tidx[1:], 0, n - 1)]
    return {
        "valid": valid,
        "peak_time": jnp.where(valid, t[safe_p], 0.0),
        "peak": jnp.where(valid, peak, 0.0),
        "onset": jnp.where(valid, onset, 0.0),
        "amplitude": jnp.where(valid, peak - onset, 0.0),
        "half_width": half_width,
        "half_width_valid": hw_ok,
        "trough": jnp.where(ahp_ok, trough, 0.0),
        "ahp_depth": jnp.where(ahp_ok, onset - trough, 0.0),
        "ahp_valid": ahp_ok,
    }


def ap_amplitude(t, v, *, threshold: float = 0.0, dvdt_threshold: float = 20.0, window=None,
                 max_spikes: int = 32):
    """Mean action-potential amplitude (peak - onset voltage), mV; 0 without spikes.

    Args:
        t: sample times, ms. v: membrane potential, mV.
        threshold: spike detection level, mV. dvdt_threshold: onset slope, mV/ms.
        window: optional (start, end), ms. max_spikes: spikes averaged at most (static).

    Returns:
        Scalar, mV.
    """
    s = spike_shapes(t, v, threshold=threshold, dvdt_threshold=dvdt_threshold, window=window,
                     max_spikes=max_spikes)
    return _masked_mean(s["amplitude"], s["valid"])


def ap_half_width(t, v, *, threshold: float = 0.0, dvdt_threshold: float = 20.0, window=None,
                  max_spikes: int = 32):
    """Mean action-potential width at half amplitude (between onset and peak), ms.

    Args:
        t: sample times, ms. v: membrane potential, mV.
        threshold: spike detection level, mV. dvdt_threshold: onset slope, mV/ms.
        window: optional (start, end), ms. max_spikes: spikes averaged at most (static).

    Returns:
        Scalar, ms; 0 without spikes (spikes cut off by the window end are left out).
    """
    s = spike_shapes(t, v, threshold=threshold, dvdt_threshold=dvdt_threshold, window=window,
                     max_spikes=max_spikes)
    return _masked_mean(s["half_width"], s["half_width_valid"])


def ahp_depth(t, v, *, threshold: float = 0.0, dvdt_threshold: float = 20.0, window=None,
              max_spikes: int = 32):
    """Mean after-hyperpolarisation depth (onset voltage - trough after the spike), mV.

    Args:
        t: sample times, ms. v: membrane potential, mV.
        threshold: spike detection level, mV. dvdt_threshold: onset slope, mV/ms.
        window: optional (start, end), ms. max_spikes: spikes averaged at most (static).

    Returns:
        Scalar, mV (positive when the trough lies below the onset voltage); 0 without spikes.
    """
    s = spike_shapes(t, v, threshold=threshold, dvdt_threshold=dvdt_threshold, window=window,
                     max_spikes=max_spikes)
    return _masked_mean(s["ahp_depth"], s["ahp_valid"])


# ----------------------------------------------------------------------------- steps
def _level_windows(t, stim_start, stim_end, baseline, steady):
    """Validated (baseline start, steady start) in ms of a step response."""
    _check_times(stim_start, stim_end, "stimulus window (stim_start, stim_end)")
    for name, val in (("baseline", baseline), ("steady", steady)):
        if isinstance(val, (int, float)) and not val > 0:
            raise ValueError(f"{name} must be a duration > 0 ms, got {val!r}.")
    b0 = -jnp.inf if baseline is None else stim_start - baseline
    s0 = stim_end - (0.1 * (stim_end - stim_start) if steady is None else steady)
    if not isinstance(t, jax.core.Tracer) and all(
            not isinstance(x, jax.core.Tracer) for x in (stim_start, stim_end, b0, s0)):
        tn = np.asarray(t)
        if not np.any((tn >= b0) & (tn < stim_start)):
            raise ValueError(
                f"No sample before stim_start={stim_start} ms for the baseline; the trace "
                f"starts at {float(tn[0]):g} ms."
            )
        if not np.any((tn >= s0) & (tn < stim_end)):
            raise ValueError("No sample in the steady-state window at the end of the step.")
    return b0, s0


def _levels(t, v, stim_start, stim_end, b0, s0):
    """Baseline and steady-state voltage (mV) of a step response."""
    base = (t >= b0) & (t < stim_start)
    late = (t >= s0) & (t < stim_end)
    return _masked_mean(v, base), _masked_mean(v, late)


def input_resistance(t, v, stim_start: float, stim_end: float, amplitude, *, baseline=None,
                     steady=None):
    """Input resistance from a (subthreshold) current step: deflection / amplitude, MOhm.

    Args:
        t: sample times, ms. v: membrane potential, mV.
        stim_start, stim_end: step window, ms.
        amplitude: step current, nA (nonzero; negative for a hyperpolarising step).
        baseline: duration before the step averaged for the baseline, ms (default: all).
        steady: duration at the end of the step averaged for the steady state, ms (default:
            10 % of the step).

    Returns:
        Scalar, MOhm (mV / nA).
    """
    t, v = _check_tv(t, v)
    if isinstance(amplitude, (int, float)) and amplitude == 0:
        raise ValueError("amplitude is 0 nA; give the step current in nA (nonzero).")
    b0, s0 = _level_windows(t, stim_start, stim_end, baseline, steady)
    return _input_resistance(t, v, stim_start, stim_end, b0, s0, amplitude)


@jax.jit
def _input_resistance(t, v, stim_start, stim_end, b0, s0, amplitude):
    v_base, v_ss = _levels(t, v, stim_start, stim_end, b0, s0)
    return (v_ss - v_base) / amplitude


def membrane_time_constant(t, v, stim_start: float, stim_end: float, *, fit_range=(0.1, 0.9),
                           baseline=None, steady=None):
    """Membrane time constant from the charging curve of a subthreshold step, ms.

    Least-squares slope b of ``log(1 - f)`` against t over the samples with ``fit_range[0]
    <= f <= fit_range[1]`` up to the first reaching the upper level, where ``f = (v -
    baseline) / (v_extreme - baseline)`` and v_extreme is the most deflected voltage of the
    step (the steady state without sag; the sag peak with it); tau = -1 / b (exact for a
    single exponential). Use a small step, as for `input_resistance`.

    Args:
        t: sample times, ms. v: membrane potential, mV.
        stim_start, stim_end: step window, ms.
        fit_range: (low, high) fractions of the extreme deflection, 0 < low < high < 1.
        baseline, steady: as for `input_resistance`, ms.

    Returns:
        Scalar, ms; 0 when fewer than 3 samples lie in the fit range.
    """
    t, v = _check_tv(t, v)
    lo, hi = (float(x) for x in fit_range)
    if not 0 < lo < hi < 1:
        raise ValueError(f"fit_range must satisfy 0 < low < high < 1, got {fit_range!r}.")
    b0, s0 = _level_windows(t, stim_start, stim_end, baseline, steady)
    return _time_constant(t, v, stim_start, stim_end, b0, s0, lo, hi)


@jax.jit
def _time_constant(t, v, stim_start, stim_end, b0, s0, lo, hi):
    v_base, v_ss = _levels(t, v, stim_start, stim_end, b0, s0)
    step = (t >= stim_start) & (t < stim_end)
    s = jnp.where(v_ss >= v_base, 1.0, -1.0)
    dv = s * jnp.max(jnp.where(step, s * (v - v_base), -jnp.inf))  # extreme deflection
    f = (v - v_base) / jnp.where(dv == 0, 1.0, dv)
    t_hi = jnp.min(jnp.where(step & (f >= hi), t, jnp.inf))
    use = step & (f >= lo) & (f <= hi) & (t < t_hi)
    y = jnp.log1p(-jnp.where(use, f, 0.5))
    nw = jnp.sum(use)
    tm = _masked_mean(t, use)
    ym = _masked_mean(y, use)
    sxx = jnp.sum(jnp.where(use, (t - tm) ** 2, 0.0))
    sxy = jnp.sum(jnp.where(use, (t - tm) * (y - ym), 0.0))
    b = sxy / jnp.where(sxx > 0, sxx, 1.0)
    ok = (nw >= 3) & (b < 0)
    return jnp.where(ok, -1.0 / jnp.where(ok, b, -1.0), 0.0)


def sag_ratio(t, v, stim_start: float, stim_end: float, *, baseline=None, steady=None):
    """Sag ratio of a step response: (v_extreme - v_steady) / (v_extreme - baseline).

    v_extreme is the most deflected voltage during the step (the minimum for a
    hyperpolarising step). 0 = no sag; Ih-rich cells reach 0.1-0.4.

    Args:
        t: sample times, ms. v: membrane potential, mV.
        stim_start, stim_end: step window, ms.
        baseline, steady: as for `input_resistance`, ms.

    Returns:
        Scalar, dimensionless (0 when the step causes no deflection).
    """
    t, v = _check_tv(t, v)
    b0, s0 = _level_windows(t, stim_start, stim_end, baseline, steady)
    return _sag_ratio(t, v, stim_start, stim_end, b0, s0)


@jax.jit
def _sag_ratio(t, v, stim_start, stim_end, b0, s0):
    v_base, v_ss = _levels(t, v, stim_start, stim_end, b0, s0)
    s = jnp.where(v_ss >= v_base, 1.0, -1.0)
    step = (t >= stim_start) & (t < stim_end)
    ext = jnp.max(jnp.where(step, s * (v - v_base), -jnp.inf))
    ok = ext > 0
    return jnp.where(ok, (ext - s * (v_ss - v_base)) / jnp.where(ok, ext, 1.0), 0.0)
