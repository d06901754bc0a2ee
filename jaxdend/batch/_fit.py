"""`fit_starts`: the multi-start fit of `jaxdend.fit.fit` with its starts sharded over devices.

The starts are drawn exactly as ``jaxdend.fit.fit(..., starts=K)`` draws them (start 0 the
given values, the others uniform within the bounds), every step evaluates the loss and
gradient of every start (``sharded_vmap``: K / n_devices starts per device) and applies the
optax update per start; the result is the same `FitResult`. Kept deliberately small: fixed
number of steps, no checkpoint/resume or patience (use `jaxdend.fit.fit` for those).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..fit import FitResult, NonFiniteLossError
from ..fit._fit import (
    _check_loss,
    _check_model,
    _draw_starts,
    _jit_with_static,
    _optimizer,
    _pick,
    _Progress,
    _step_core,
    _strong,
)
from ._shard import batch_mesh, n_devices, pad_batch, shard_batch, sharded_vmap, to_host


def fit_starts(
    loss_fn: Callable[[Any], Any],
    model,
    *,
    starts: int,
    steps: int = 100,
    optimizer=None,
    key=None,
    spread: float = 10.0,
    devices=None,
    progress: bool = False,
) -> FitResult:
    """Multi-start fit with the starts sharded across devices (same draws as `fit`).

    Example (8 starts on 4 devices: 2 per device)::

        model = jf.parametrize(cell, {"HH.g_na": jf.Bounded(0.05, 0.5, log=True)})
        res = jaxdend.batch.fit_starts(loss_fn, model, starts=8, steps=200,
                                       optimizer=optax.adam(0.05))
        res.losses          # best loss of every start (units of loss_fn)

    Args:
        loss_fn: function concrete model -> scalar loss (as for `jaxdend.fit.fit`).
        model: the wrapped PyTree (from `jaxdend.fit.parametrize` or `wrap`).
        starts: number of starts K (start 0 = the given values); padded to a multiple of the
            device count with copies of the last start, which are dropped.
        steps: optimisation steps.
        optimizer: an optax optimiser or a dict group -> optimiser (as for `fit`; default
            ``optax.adam(1e-2)``).
        key: PRNG key of the random starts (default ``jax.random.PRNGKey(0)``, as `fit`).
        spread: factor range of the random starts of `Positive` parameters (> 1).
        devices: devices to shard the starts over (see `batch_mesh`; default all).
        progress: show a tqdm progress bar.

    Returns:
        A `FitResult` (history (steps, K), losses (K,), best model, last iterate of every
        start stacked in ``last_model``).

    Raises:
        NonFiniteLossError: every start gave a NaN/inf loss or gradient (single diverging
            starts are frozen at their last values with a warning, as in `fit`).
    """
    if isinstance(starts, bool) or not isinstance(starts, (int, np.integer)) or starts < 1:
        raise ValueError(f"starts must be an integer >= 1, got {starts!r}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}.")
    if not (isinstance(spread, (int, float)) and spread > 1):
        raise ValueError(f"spread must be a number > 1 (a factor), got {spread!r}.")
    k = int(starts)
    params, static = _check_model(model)
    _check_loss(loss_fn, params, static)
    opt = _optimizer(optimizer, params)
    key = jax.random.PRNGKey(0) if key is None else key
    mesh = batch_mesh(devices)
    nd = n_devices(mesh)
    params = _draw_starts(params, key, k, spread)  # leading axis k, as fit draws them
    params, _ = pad_batch(params, nd)
    opt_state = _strong(eqx.filter_vmap(opt.init)(params))
    if nd > 1:
        params, opt_state = shard_batch((params, opt_state), mesh)
    k_pad = int(jax.tree_util.tree_leaves(params)[0].shape[0])
    best_params = params
    best_losses = jnp.full((k_pad,), jnp.inf, dtype=float)
    step_core = _step_core(loss_fn, opt, optimizer)

    def core(p, s, static):
        return step_core(p, s, static)[:4]  # line-search counts are not reported here

    run = sharded_vmap(core, mesh, in_axes=(0, 0, None))

    def one_step(p, s, bp, bl, static):
        val, ok, p2, s2 = run(p, s, static)
        val = jnp.asarray(val, dtype=bl.dtype)
        better = ok & (val < bl)
        bp = _pick(better, p, bp)
        bl = jnp.where(better, val, bl)
        return val, ok, _pick(ok, p2, p), _pick(ok, s2, s), bp, bl

    step = _jit_with_static(one_step, static)

    history = []
    best_steps = np.zeros(k_pad, dtype=np.int64)
    dead = np.zeros(k_pad, bool)
    bar = _Progress(progress, steps, 0)
    try:
        for it in range(steps):
            val, ok, p2, s2, bp2, bl2 = step(params, opt_state, best_params, best_losses)
            val_np, ok_np = to_host((val, ok))
            newly = ~ok_np & ~dead
            if newly[:k].any():
                warnings.warn(
                    f"Start(s) {np.nonzero(newly[:k])[0].tolist()} gave a NaN/inf loss or "
                    f"gradient at step {it}; they are frozen at their last values.",
                    RuntimeWarning, stacklevel=2,
                )
            dead |= newly
            if dead[:k].all():
                raise NonFiniteLossError(
                    f"Every start gave a NaN/inf loss or gradient (the last at step {it}); "
                    "try a smaller learning rate or tighter bounds."
                )
            prev = np.asarray(to_host(best_losses), dtype=float)
            best_steps = np.where(ok_np & (val_np < prev), it, best_steps)
            params, opt_state, best_params, best_losses = p2, s2, bp2, bl2
            history.append(np.where(dead, np.nan, val_np)[:k])
            bar.update(float(np.min(np.where(ok_np, val_np, np.inf))),
                       float(np.min(to_host(best_losses))))
    finally:
        bar.close()
    bl = np.asarray(to_host(best_losses), dtype=float)[:k]
    finite = np.isfinite(bl)
    i = int(np.argmin(np.where(finite, bl, np.inf))) if finite.any() else 0
    bp_host = to_host(best_params)
    last_host = jax.tree_util.tree_map(lambda x: x[:k], to_host(params))
    best = jax.tree_util.tree_map(lambda x: jnp.asarray(x[i]), bp_host)
    last = jax.tree_util.tree_map(jnp.asarray, last_host)
    if k == 1:
        last = jax.tree_util.tree_map(lambda x: x[0], last)
    return FitResult(
        model=eqx.combine(best, static), last_model=eqx.combine(last, static),
        best_loss=float(bl[i]), best_step=int(best_steps[i]), best_start=i,
        history=np.asarray(history, dtype=float).reshape((steps, k) if k > 1 else (steps,)),
        losses=bl, n_evaluations=steps * k, steps=steps, stop_reason="steps", checkpoint=None,
    )
