"""Differentiable losses: voltage MSE, spike timing (van Rossum), feature loss.

Units: time ms, voltage mV; `voltage_mse` is in mV^2, the spike and feature losses are
dimensionless.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ..features import crossing_times


def voltage_mse(v, target, mask=None):
    """Mean squared difference between two voltage traces, mV^2.

    Args:
        v: model membrane potential, mV (any shape, e.g. (n_samples,) or (n_samples, n_probes)).
        target: recorded or target potential, mV, same shape (NaN allowed where masked out).
        mask: optional boolean mask or non-negative weights of the same shape; the mean is
            taken over the selected samples (weighted mean for weights).

    Returns:
        Scalar, mV^2.
    """
    v = jnp.asarray(v)
    target = jnp.asarray(target)
    if v.shape != target.shape:
        raise ValueError(
            f"v has shape {v.shape} but target has shape {target.shape}; compare traces of "
            "equal shape (e.g. sol['v'][:, 0] with a 1-D target sampled at sol.ts)."
        )
    if mask is None:
        return jnp.mean((v - target) ** 2)
    w = jnp.asarray(mask)
    if w.shape != v.shape:
        raise ValueError(f"mask has shape {w.shape}; it must have the traces' shape {v.shape}.")
    w = w.astype(v.dtype)
    d = jnp.where(w > 0, v - target, 0.0)
    return jnp.sum(w * d**2) / jnp.maximum(jnp.sum(w), jnp.finfo(v.dtype).tiny)


def van_rossum(times_a, times_b, tau: float, valid_a=None, valid_b=None):
    """Squared van Rossum distance between two spike trains (exponential kernel), dimensionless.

    Each spike is filtered by ``exp(-t / tau)`` (t >= 0); the distance is the integral of the
    squared difference of the filtered trains divided by tau, in closed form
    ``(1/2) sum_ij [k(a_i, a_j) + k(b_i, b_j) - 2 k(a_i, b_j)]`` with
    ``k(x, y) = exp(-|x - y| / tau)``. An unmatched spike adds 1/2; two spikes offset by d
    give ``1 - exp(-|d| / tau)``. Differentiable in the spike times.

    Args:
        times_a, times_b: spike times, ms, 1-D (padded entries allowed).
        tau: kernel time constant, ms (> 0).
        valid_a, valid_b: boolean masks of the real spikes (default: all finite entries).

    Returns:
        Scalar, dimensionless.
    """
    if isinstance(tau, (int, float)) and not tau > 0:
        raise ValueError(f"tau must be > 0 ms, got {tau!r}.")
    a = jnp.ravel(jnp.asarray(times_a, dtype=float))
    b = jnp.ravel(jnp.asarray(times_b, dtype=float))
    va = jnp.isfinite(a) if valid_a is None else jnp.ravel(jnp.asarray(valid_a, bool))
    vb = jnp.isfinite(b) if valid_b is None else jnp.ravel(jnp.asarray(valid_b, bool))
    return _van_rossum(a, b, va, vb, tau)


@jax.jit
def _van_rossum(a, b, va, vb, tau):
    a = jnp.where(va, a, 0.0)
    b = jnp.where(vb, b, 0.0)
    wa, wb = va.astype(a.dtype), vb.astype(b.dtype)

    def k(x, wx, y, wy):
        return jnp.sum(wx[:, None] * wy[None, :] * jnp.exp(-jnp.abs(x[:, None] - y[None, :]) / tau))

    return 0.5 * (k(a, wa, a, wa) + k(b, wb, b, wb) - 2.0 * k(a, wa, b, wb))


def spike_time_loss(t, v, target_times, *, threshold: float = 0.0, tau: float = 5.0,
                    max_spikes: int | None = None, window=None):
    """Spike-timing loss: squared van Rossum distance between model and target spikes.

    Model spikes are the upward crossings of `threshold`, located by linear interpolation
    between samples (`jaxdend.features.crossing_times`), so the loss is differentiable in the
    trace: a gradient moves every spike toward the target spikes; missing or extra spikes
    add 1/2 each (see `van_rossum`).

    Args:
        t: sample times, ms. v: model membrane potential, mV (1-D).
        target_times: target spike times, ms (1-D; NaN entries are padding).
        threshold: spike detection level, mV.
        tau: van Rossum time constant, ms (about the precision asked for).
        max_spikes: number of model spike slots (static); default ``2 * len(target) + 4``;
            later model spikes are ignored.
        window: optional (start, end) in ms for the model spikes.

    Returns:
        Scalar, dimensionless.
    """
    target = jnp.ravel(jnp.asarray(target_times, dtype=float))
    k = 2 * target.size + 4 if max_spikes is None else max_spikes
    times, valid = crossing_times(t, v, threshold, max_spikes=k, window=window)
    return van_rossum(times, target, tau, valid_a=valid)


def feature_loss(pred, target, scale):
    """Sum of squared standardised feature errors, ``sum(((pred - target) / scale) ** 2)``.

    As in eFEL/BluePyOpt, `scale` is usually the experimental standard deviation of each
    feature, so every term is a squared z-score.

    Args:
        pred: model features: a dict name -> scalar/array (e.g. ``{"rin": ...}`` MOhm) or
            an array.
        target: target features with the same keys (or shape), same units.
        scale: dict name -> scale (> 0, same units), or one number/array for all.

    Returns:
        Scalar, dimensionless.
    """
    if isinstance(pred, Mapping) or isinstance(target, Mapping):
        if not (isinstance(pred, Mapping) and isinstance(target, Mapping)):
            raise TypeError("pred and target must both be dicts (or both arrays).")
        missing = sorted(set(target) - set(pred))
        extra = sorted(set(pred) - set(target))
        if missing or extra:
            raise ValueError(
                f"pred and target have different features (missing in pred: {missing}, "
                f"not in target: {extra}); give the same names."
            )
        if isinstance(scale, Mapping):
            absent = sorted(set(target) - set(scale))
            if absent:
                raise ValueError(f"scale has no entry for {absent}; give a scale per feature.")
        total = 0.0
        for name in target:
            s = scale[name] if isinstance(scale, Mapping) else scale
            total = total + _term(pred[name], target[name], s, name)
        return jnp.asarray(total)
    return _term(pred, target, scale, "features")


def _term(pred, target, scale, name):
    s = jnp.asarray(scale, dtype=float)
    if not isinstance(s, jax.core.Tracer):
        arr = np.asarray(s)
        if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(
                f"scale of {name!r} must be finite and > 0 (e.g. the experimental SD), got "
                f"{scale!r}."
            )
    tg = jnp.asarray(target, dtype=float)
    if not isinstance(tg, jax.core.Tracer) and np.any(~np.isfinite(np.asarray(tg))):
        raise ValueError(f"target of {name!r} is NaN or inf; drop the feature or fix the value.")
    return jnp.sum(((jnp.asarray(pred) - tg) / s) ** 2)
