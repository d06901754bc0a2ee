"""`fit`: gradient-based optimisation of wrapped models with optax.

One jitted step evaluates ``loss_fn(unwrap(model))`` and its gradient with respect to the
trainable leaves only (``eqx.partition`` with `trainable`) and applies the optax update.
Around it: progress bar, loss history, best model, early stopping, checkpoints with resume,
a stop with a clear message on NaN/inf, and multi-start by vmap.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import struct
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..solve._checks import is_run_time_error
from ._params import (
    Fixed,
    Positive,
    _AbstractTransformed,
    _map_raw,
    parameters,
    trainable,
    unwrap,
    values,
)

_MAGIC = b"JAXDEND-FIT-CHECKPOINT\n"
_VERSION = 1


class FitError(RuntimeError):
    """A fit stopped by an error; ``.result`` holds the `FitResult` up to the last good step."""

    def __init__(self, message: str, result: FitResult | None = None):
        super().__init__(message)
        self.result = result


class NonFiniteLossError(FitError):
    """The loss or its gradient became NaN/inf.

    ``.result`` holds the best model and the history up to the last finite loss; its
    ``last_model`` is the model at which the loss became non-finite (to inspect).
    """


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Outcome of `fit`.

    Attributes:
        model: best model (lowest loss evaluated), wrapped; ``unwrap(result.model)`` or
            ``result.concrete()`` gives the concrete model, ``result.values()`` the values.
        last_model: model after the last step, wrapped (with ``starts > 1``: every start,
            stacked along a leading axis of the trainable leaves).
        best_loss: lowest loss evaluated (units of `loss_fn`).
        best_step: step at which it was evaluated (0 = the initial parameters).
        best_start: start that reached it (0 = the given initial values).
        history: loss at every step, evaluated before that step's update, shape (steps,) or
            (steps, starts) (NaN where a start was stopped).
        losses: best loss of every start, shape (starts,).
        n_evaluations: loss-and-gradient evaluations (steps x starts, plus the line-search
            evaluations an optimiser such as ``optax.lbfgs`` reports): compare with the number
            of simulations of gradient-free methods.
        steps: steps done (including those before a resume).
        stop_reason: "steps", "patience" or "target_loss" ("nonfinite" or "error" in the
            result attached to a `FitError`).
        checkpoint: path of the checkpoint file, or None.
    """

    model: Any
    last_model: Any
    best_loss: float
    best_step: int
    best_start: int
    history: np.ndarray
    losses: np.ndarray
    n_evaluations: int
    steps: int
    stop_reason: str
    checkpoint: str | None = None

    def concrete(self):
        """The best model with the wrappers replaced by their values (`unwrap`)."""
        return unwrap(self.model)

    def values(self) -> dict[str, dict]:
        """Values of the best model's parameters with units (see `jaxdend.fit.values`)."""
        return values(self.model)

    def start(self, i: int):
        """Last iterate of start `i` (wrapped, unbatched); for one start, `last_model`.

        Args:
            i: start index, 0 <= i < number of starts.
        """
        n = int(self.losses.shape[0])
        if not 0 <= i < n:
            raise ValueError(f"start index {i} out of range: the fit ran {n} start(s).")
        if n == 1:
            return self.last_model
        params, static = eqx.partition(self.last_model, trainable(self.last_model))
        return eqx.combine(_index(params, i), static)


# ----------------------------------------------------------------------------- checks
def _check_int(name, x, lo=1):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {x!r}.")
    return int(x)


def _check_model(model):
    unbound = [n for n, p in parameters(model)
               if (isinstance(p, _AbstractTransformed) and p.raw is None)
               or (isinstance(p, Fixed) and p.value is None)]
    if unbound:
        raise ValueError(
            f"Wrapper(s) {unbound} hold no value: put wrappers into the model with "
            "parametrize(cell, ...) or wrap(tree, selector, wrapper) (or give init=)."
        )
    spec = trainable(model)
    params, static = eqx.partition(model, spec)
    if not jax.tree_util.tree_leaves(params):
        raise ValueError(
            "The model has no trainable parameter: wrap the parameters to fit with "
            "parametrize(cell, {'HH.g_na': Bounded(0.01, 0.5), ...}) or "
            "wrap(tree, selector, Bounded(...)/Positive()); Fixed() ones are not trained."
        )
    return params, static


def _check_loss(loss_fn, params, static):
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function model -> scalar loss, got {loss_fn!r}.")
    out = eqx.filter_eval_shape(lambda p: loss_fn(unwrap(eqx.combine(p, static))), params)
    shape = getattr(out, "shape", None)
    dtype = getattr(out, "dtype", None)
    if shape is None and isinstance(out, (int, float)):
        shape, dtype = (), np.dtype(float)
    if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"loss_fn must return a scalar float (shape ()), got {out!r}; reduce it with "
            "jnp.mean/jnp.sum (and return only the loss, not a tuple)."
        )


def _labels(params):
    return _map_raw(params, lambda p, r: p.group or "default", lambda x: None)


def _optimizer(optimizer, params):
    if optimizer is None:
        optimizer = optax.adam(1e-2)
    if isinstance(optimizer, Mapping):
        labels = _labels(params)
        used = set(jax.tree_util.tree_leaves(labels))
        given = set(optimizer)
        unknown, missing = sorted(given - used), sorted(used - given)
        if unknown:
            raise ValueError(
                f"optimizer has group(s) {unknown} that no trainable parameter uses (groups in "
                f"use: {sorted(used)}); check the group= names of the wrappers."
            )
        if missing:
            raise ValueError(
                f"Parameters of group(s) {missing} have no optimiser in the optimizer dict "
                "(wrappers without group= are in 'default'); add them."
            )
        for k, o in optimizer.items():
            if not (hasattr(o, "init") and hasattr(o, "update")):
                raise TypeError(f"optimizer[{k!r}] is not an optax optimiser: {o!r}.")
        return optax.multi_transform(dict(optimizer), labels)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            f"optimizer must be an optax optimiser (e.g. optax.adam(1e-2)) or a dict "
            f"group -> optimiser, got {optimizer!r}."
        )
    return optimizer


# ----------------------------------------------------------------------------- starts
def _draw_starts(params, key, k, spread):
    """Stack the given start and k - 1 random ones along a new leading axis."""
    counter = [0]

    def draw(p, raw):
        sub = jax.random.fold_in(key, counter[0])
        counter[0] += 1
        if k == 1:
            return raw[None]
        extra = p._draw(sub, raw, k - 1, spread) if isinstance(p, Positive) else \
            p._draw(sub, raw, k - 1)
        return jnp.concatenate([raw[None], extra], axis=0)

    return _map_raw(params, draw, lambda x: x)


def _strong(tree):
    """The tree with weak-typed array leaves made strongly typed (same dtype)."""
    return jax.tree_util.tree_map(
        lambda x: jax.lax.convert_element_type(x, x.dtype)
        if isinstance(x, jax.Array) and x.weak_type else x, tree)


def _index(tree, i):
    return jax.tree_util.tree_map(lambda x: x[i], tree)


# ----------------------------------------------------------------------------- checkpoints
def _key_data(key):
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _leaf_specs(tree):
    return [[list(np.shape(x)), str(np.asarray(x).dtype)]
            for x in jax.tree_util.tree_leaves(tree)]


def _write_checkpoint(path: Path, header: dict, tree) -> None:
    """Write header + leaves to a temporary file, then atomically replace `path`."""
    header = dict(header, format="jaxdend.fit checkpoint", version=_VERSION,
                  leaves=_leaf_specs(tree))
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    blob = json.dumps(header).encode()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(_MAGIC)
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_checkpoint(path: Path, like):
    with open(path, "rb") as f:
        magic = f.read(len(_MAGIC))
        if magic != _MAGIC:
            raise ValueError(
                f"{path} is not a jaxdend.fit checkpoint; pass another checkpoint= path or "
                "delete the file."
            )
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode())
        if header.get("leaves") != _leaf_specs(like):
            raise ValueError(
                f"The checkpoint {path} was written for a different model, optimiser or "
                "number of starts (its arrays do not match); use resume=False (it will be "
                "overwritten) or another checkpoint= path."
            )
        tree = eqx.tree_deserialise_leaves(io.BytesIO(f.read()), like)
    return header, tree


# ----------------------------------------------------------------------------- progress
class _Progress:
    def __init__(self, enabled, total, initial):
        self.bar = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            warnings.warn("tqdm is not installed: no progress bar (pip install tqdm).",
                          stacklevel=3)
            return
        self.bar = tqdm(total=total, initial=initial, desc="fit", unit="step",
                        dynamic_ncols=True)

    def update(self, loss, best):
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss={loss:.5g} best={best:.5g}", refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- fit
def _step_core(loss_fn, opt, optimizer):
    """One optimisation step of the trainable leaves `p` (optimiser state `s`):
    ``core(p, s, static) -> (loss, finite?, new p, new s, line-search evaluations)``; a
    non-finite loss or gradient gives a zero update (the caller keeps the old values)."""
    extra = isinstance(opt, optax.GradientTransformationExtraArgs)
    # value_fn/grad let line-search optimisers (optax.lbfgs) work; others ignore them
    with_fn = extra and not isinstance(optimizer, Mapping)

    def core(p, s, static):
        def loss_of(p):
            return loss_fn(unwrap(eqx.combine(p, static)))

        val, g = eqx.filter_value_and_grad(loss_of)(p)
        leaves = jax.tree_util.tree_leaves(g)
        ok = jnp.isfinite(val) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
        g = jax.tree_util.tree_map(lambda x: jnp.where(ok, x, 0.0), g)
        if with_fn:
            upd, s2 = opt.update(g, s, p, value=val, grad=g, value_fn=loss_of)
        elif extra:
            upd, s2 = opt.update(g, s, p, value=val)
        else:
            upd, s2 = opt.update(g, s, p)
        n_ls = jnp.zeros((), int)
        if with_fn:  # evaluations made by a line search (optax.lbfgs reports them)
            try:
                found = optax.tree_utils.tree_get(s2, "num_linesearch_steps", None)
            except KeyError:
                found = None
            if found is not None:
                n_ls = jnp.asarray(found, int)
        return val, ok, eqx.apply_updates(p, upd), s2, n_ls

    return core


def _jit_with_static(fn, static):
    """``fn(*arrays, static)`` jitted as ``jitted(*arrays)``: the arrays of the model part
    `static` are passed as arguments on every call and its other values closed over, so each
    call is JAX's C++ dispatch of arrays (equinox's filter_jit partitions the whole model on
    every call: Adam on g_na of the 46-segment reduced cell, 10 ms runs, 1.57-1.67 -> 1.26-1.43
    ms per step, by hand over 2,000 steps in alternating processes, 2026-12-06)."""
    arrays, rest = eqx.partition(static, eqx.is_array)
    jitted = jax.jit(lambda args, arrays: fn(*args, eqx.combine(arrays, rest)))
    return lambda *args: jitted(args, arrays)


def _pick(ok, new, old):
    """Leaves of `new` where `ok` (per start: leading axis), else of `old`."""
    def sel(a, b):
        if not eqx.is_array(a):
            return a
        c = ok.reshape(ok.shape + (1,) * (a.ndim - ok.ndim))
        return jnp.where(c, a, b)

    return jax.tree_util.tree_map(sel, new, old)


def fit(
    loss_fn: Callable[[Any], Any],
    model,
    *,
    optimizer=None,
    steps: int = 100,
    progress: bool = True,
    patience: int | None = None,
    min_delta: float = 0.0,
    target_loss: float | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    starts: int = 1,
    key=None,
    spread: float = 10.0,
) -> FitResult:
    """Minimise ``loss_fn(unwrap(model))`` over the trainable parameters of `model`.

    Each step is one jitted evaluation of the loss and its gradient with respect to the
    unconstrained values of the `Bounded`/`Positive` wrappers (everything else in the model
    is held fixed), followed by the optax update. Example::

        model = parametrize(cell, {"HH.g_na": Bounded(0.05, 0.5, log=True)})
        def loss_fn(c):
            return voltage_mse(simulate(c, stim, t1=30.0)["v"][:, 0], target)
        result = fit(loss_fn, model, optimizer=optax.adam(0.02), steps=200)
        result.values()["HH.g_na"]["value"]   # S/cm^2

    Args:
        loss_fn: function concrete model -> scalar loss (the user's simulation and loss).
        model: the wrapped PyTree (from `parametrize` or `wrap`).
        optimizer: an optax optimiser (default ``optax.adam(1e-2)``, steps in the
            unconstrained values), or a dict group -> optimiser for wrappers with
            ``group=`` (wrappers without one are in "default"), combined with
            ``optax.multi_transform``. Line-search optimisers (``optax.lbfgs()``, often the
            fastest for a few smooth parameters) get ``value``, ``grad`` and ``value_fn``
            (not inside a group dict).
        steps: total number of steps (with `resume`: including those already done).
        progress: show a tqdm progress bar with the loss and the best loss.
        patience: stop after this many steps without a relative improvement of the best loss
            by more than `min_delta` (None: never).
        min_delta: relative improvement that resets the patience counter (>= 0).
        target_loss: stop as soon as the loss is <= this value.
        checkpoint: file to save the state to (step, trainable parameters, optimiser state,
            history, best parameters, PRNG key); written through a temporary file and
            ``os.replace``, so a crash never leaves a broken file. Without `resume` an existing
            file is overwritten.
        checkpoint_every: write the checkpoint every this many steps (and at the end).
        resume: continue from `checkpoint` if the file exists (else start afresh); the
            model, optimiser and `starts` must be those of the interrupted run.
        starts: number of starts run at once with ``eqx.filter_vmap``: start 0 is the given
            model, the others draw every trainable value uniformly within its bounds
            (`Bounded`, uniform in log space when ``log=True``) or log-uniformly within a
            factor `spread` of its initial value (`Positive`).
        key: PRNG key of the random starts (default ``jax.random.PRNGKey(0)``).
        spread: factor range of the random starts of `Positive` parameters (> 1).

    Returns:
        A `FitResult` (best and last model, losses, history, number of evaluations).

    Raises:
        NonFiniteLossError: the loss or its gradient became NaN/inf (with ``starts > 1``: in
            every start; a single diverging start is frozen at its last good values and
            skipped with a warning). The last good checkpoint is never overwritten.
    """
    steps = _check_int("steps", steps)
    checkpoint_every = _check_int("checkpoint_every", checkpoint_every)
    k = _check_int("starts", starts)
    if patience is not None:
        patience = _check_int("patience", patience)
    if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta) and min_delta >= 0):
        raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}.")
    if target_loss is not None and not (isinstance(target_loss, (int, float))
                                        and math.isfinite(target_loss)):
        raise ValueError(f"target_loss must be a finite number or None, got {target_loss!r}.")
    if not (isinstance(spread, (int, float)) and spread > 1):
        raise ValueError(f"spread must be a number > 1 (a factor), got {spread!r}.")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=path (the file to continue from).")
    path = None if checkpoint is None else Path(checkpoint)

    params, static = _check_model(model)
    _check_loss(loss_fn, params, static)
    opt = _optimizer(optimizer, params)
    key = jax.random.PRNGKey(0) if key is None else key
    key_data = _key_data(key)
    multi = k > 1
    if multi:
        params = _draw_starts(params, key, k, spread)
        opt_state = eqx.filter_vmap(opt.init)(params)
    else:
        opt_state = opt.init(params)
    # strong types, as the step returns them (weak-typed optimiser state would recompile)
    opt_state = _strong(opt_state)
    best_params = params
    best_losses = jnp.full((k,) if multi else (), jnp.inf, dtype=float)
    core = _step_core(loss_fn, opt, optimizer)
    run = eqx.filter_vmap(core, in_axes=(0, 0, None)) if multi else core

    def one_step(p, s, bp, bl, static):
        val, ok, p2, s2, n_ls = run(p, s, static)
        val = jnp.asarray(val, dtype=bl.dtype)
        better = ok & (val < bl)
        bp = _pick(better, p, bp)
        bl = jnp.where(better, val, bl)
        if multi:  # freeze diverged starts at their last values
            p2 = _pick(ok, p2, p)
            s2 = _pick(ok, s2, s)
        return val, ok, p2, s2, bp, bl, jnp.sum(n_ls)

    step = _jit_with_static(one_step, static)

    # --------------------------------------------------------------- state / resume
    history: list = []
    done = 0
    n_eval = 0
    best_steps = np.zeros(k, dtype=np.int64)
    ref, since = math.inf, 0
    last_ckpt = None
    dead = np.zeros(k, bool)

    def bundle():
        return {"params": params, "opt_state": opt_state, "best_params": best_params,
                "best_losses": best_losses, "key": key_data}

    if resume and path is not None and path.exists():
        header, tree = _read_checkpoint(path, bundle())
        params, opt_state = tree["params"], tree["opt_state"]
        best_params, best_losses = tree["best_params"], tree["best_losses"]
        key_data = tree["key"]
        done = int(header["step"])
        history = [np.asarray(h, dtype=float) for h in header["history"]]
        n_eval = int(header["n_evaluations"])
        best_steps = np.asarray(header["best_steps"], dtype=np.int64)
        ref = float(header["ref"]) if header["ref"] is not None else math.inf
        since = int(header["since"])
        dead = np.asarray(header["dead"], bool)
        last_ckpt = done

    def save(at):
        nonlocal last_ckpt
        hist = [h.tolist() for h in history]
        header = {"step": at, "history": hist, "n_evaluations": n_eval,
                  "best_steps": best_steps.tolist(), "ref": ref if math.isfinite(ref) else None,
                  "since": since, "dead": dead.tolist(), "starts": k}
        _write_checkpoint(path, header, bundle())
        last_ckpt = at

    def result(reason, last):
        bl = np.atleast_1d(np.asarray(best_losses, dtype=float))
        if multi:
            finite = np.isfinite(bl)
            i = int(np.argmin(np.where(finite, bl, np.inf))) if finite.any() else 0
            best = _index(best_params, i)
        else:
            i, best = 0, best_params
        hist = np.asarray(history, dtype=float).reshape((len(history),) + ((k,) if multi else ()))
        return FitResult(
            model=eqx.combine(best, static), last_model=eqx.combine(last, static),
            best_loss=float(bl[i]), best_step=int(best_steps[i]), best_start=i, history=hist,
            losses=bl, n_evaluations=n_eval, steps=len(history), stop_reason=reason,
            checkpoint=None if path is None else str(path),
        )

    def where_ckpt():
        if path is None:
            return "No checkpoint was written (pass checkpoint=path to keep one)."
        if last_ckpt is None:
            return f"No checkpoint was written yet to {path}."
        return f"The last good checkpoint is {path} (step {last_ckpt}; resume=True continues)."

    # --------------------------------------------------------------- loop
    reason = "steps"
    bar = _Progress(progress, steps, done)
    try:
        for it in range(done, steps):
            try:
                val, ok, p2, s2, bp2, bl2, n_ls = step(params, opt_state, best_params,
                                                       best_losses)
                val_np = np.atleast_1d(np.asarray(val, dtype=float))
                ok_np = np.atleast_1d(np.asarray(ok))
            except (jax.errors.JaxRuntimeError, eqx.EquinoxRuntimeError, ValueError) as e:
                if not is_run_time_error(e):  # a ValueError raised while tracing
                    raise
                last = history[-1] if history else None
                msg = (f"The loss evaluation failed at step {it} (last finite loss "
                       f"{_fmt_loss(last)}). {where_ckpt()} Try a smaller learning rate, "
                       f"tighter bounds or a smaller dt.\nOriginal error: {e}")
                cls = NonFiniteLossError if "nan" in str(e).lower() else FitError
                raise cls(msg, result("nonfinite" if cls is NonFiniteLossError else "error",
                                      params)) from e
            newly = ~ok_np & ~dead
            if not multi and newly.any():
                what = "loss" if not np.isfinite(val_np[0]) else "gradient"
                last = history[-1] if history else None
                first = "at the initial parameters" if it == 0 else f"at step {it}"
                raise NonFiniteLossError(
                    f"The {what} became {val_np[0] if what == 'loss' else 'NaN/inf'} {first} "
                    f"(last finite loss {_fmt_loss(last)} at step {it - 1 if it else '-'}); "
                    f"fit stopped. {where_ckpt()} Try a smaller learning rate, tighter "
                    "bounds on the parameters, or check the simulation (dt, stimulus).",
                    result("nonfinite", params),
                )
            if newly.any():
                warnings.warn(
                    f"Start(s) {np.nonzero(newly)[0].tolist()} gave a NaN/inf loss or "
                    f"gradient at step {it}; they are frozen at their last values.",
                    RuntimeWarning, stacklevel=2,
                )
                dead |= newly
            if multi and dead.all():
                raise NonFiniteLossError(
                    f"Every start gave a NaN/inf loss or gradient (the last at step {it}). "
                    f"{where_ckpt()} Try a smaller learning rate or tighter bounds.",
                    result("nonfinite", params),
                )
            prev_bl = np.atleast_1d(np.asarray(best_losses, dtype=float))
            better = ok_np & (val_np < prev_bl)
            best_steps = np.where(better, it, best_steps)
            params, opt_state, best_params, best_losses = p2, s2, bp2, bl2
            hist_val = np.where(dead, np.nan, val_np)
            history.append(hist_val if multi else np.asarray(val_np[0]))
            n_eval += k + int(n_ls)
            cur = float(np.min(np.where(ok_np, val_np, np.inf)))
            best_now = float(np.min(np.asarray(best_losses)))
            if not math.isfinite(ref) or cur < ref - min_delta * abs(ref):
                ref, since = cur, 0
            else:
                since += 1
            bar.update(cur, best_now)
            if path is not None and (it + 1) % checkpoint_every == 0:
                save(it + 1)
            if target_loss is not None and best_now <= target_loss:
                reason = "target_loss"
                break
            if patience is not None and since >= patience:
                reason = "patience"
                break
    finally:
        bar.close()
    if path is not None and last_ckpt != len(history):
        save(len(history))
    return result(reason, params)


def _fmt_loss(x) -> str:
    if x is None:
        return "none"
    x = np.asarray(x, dtype=float)
    return f"{float(np.nanmin(x)):.6g}" if x.ndim else f"{float(x):.6g}"
