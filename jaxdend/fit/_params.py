"""Parameter wrappers: bounded, positive and fixed parameters inside any PyTree.

A wrapper replaces one leaf of a PyTree (a `jaxdend.Cell`, a plasticity rule, a dict ...).
It holds an *unconstrained* value ``raw`` (what the optimiser changes) and maps it to the
concrete value with a transform that keeps it inside its bounds at every step:

- `Bounded(lower, upper)`: ``lower + (upper - lower) * sigmoid(raw)``; with ``log=True``
  the same in log space, ``exp(log lower + (log upper - log lower) * sigmoid(raw))``, for
  positive ranges spanning decades (conductances, time constants).
- `Positive()`: ``exp(raw)`` (steps of Adam are then relative changes, whatever the scale).
- `Fixed()`: the value (or another wrapper) held constant: never trained, gradients stopped.

Differentiate with respect to the wrapped tree, then call `unwrap(tree)` inside the loss (after
the gradient boundary) to get the concrete tree. `trainable(tree)` is the filter spec for
``eqx.partition`` (True only on the ``raw`` leaves of non-fixed wrappers).

Tying: a per-node array (shape (n_nodes,)) is usually fitted with one value per region:
``Bounded(0.01, 0.5, where="soma")`` trains one scalar and unwraps to
``jnp.where(mask, value, base)``; ``per_node=True`` trains one value per selected node.

Units are those of the wrapped parameter (S/cm^2, uF/cm^2, Ohm cm, mV, ms, nS, ...).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._cell import Cell

# relative spread of the values under a tied selection above which `wrap` warns
_TIE_RTOL = 1e-9
# multi-start draws of Bounded parameters stay this far (in sigmoid units) from the bounds
_EDGE = 1e-6


def _is_none(x) -> bool:
    return x is None


def _replace(module, **changes):
    """Copy of an equinox module with some fields replaced (static ones included)."""
    new = object.__new__(type(module))
    for f in dataclasses.fields(module):
        object.__setattr__(new, f.name, changes.get(f.name, getattr(module, f.name)))
    return new


def _fmt(x) -> str:
    return f"{float(x):.6g}"


def _concrete(value, name: str) -> np.ndarray:
    """A concrete float array of `value` (an unwrapped leaf) or a clear error."""
    value = unwrap(value)
    if isinstance(value, jax.core.Tracer):
        raise ValueError(
            f"Cannot wrap {name}: its value is traced (inside jit/grad/vmap). Wrap parameters "
            "outside transformed functions, before calling fit."
        )
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(
            f"Cannot wrap {name}: its value {value!r} is not a number or a float array."
        ) from None
    return arr


def _where_label(where) -> str | None:
    if where is None:
        return None
    if isinstance(where, str):
        return where
    if isinstance(where, tuple) and all(isinstance(w, str) for w in where):
        return "+".join(where)
    return "selection"


def _normalise_where(where):
    """A hashable form of `where` (kept static in the unbound wrapper)."""
    if where is None or isinstance(where, str):
        return where
    if isinstance(where, (list, tuple)) and all(isinstance(w, str) for w in where):
        if not where:
            raise ValueError("where=[] selects nothing; give region names, a mask or indices.")
        return tuple(where)
    arr = np.asarray(where)
    if arr.dtype == bool or arr.dtype.kind in "iu":
        return ("__array__", arr.dtype.kind, arr.shape, tuple(arr.ravel().tolist()))
    raise ValueError(
        f"where={where!r} is not a region name, a list of names, a boolean mask or an array "
        "of indices."
    )


def _where_array(where) -> np.ndarray | None:
    if isinstance(where, tuple) and where and where[0] == "__array__":
        _, kind, shape, flat = where
        return np.asarray(flat, dtype=bool if kind == "b" else np.int64).reshape(shape)
    return None


def _mask_from_where(where, shape: tuple, name: str, regions: Callable | None) -> np.ndarray:
    """Boolean mask of `shape` selected by a normalised `where`.

    Args:
        where: normalised selection (see `_normalise_where`), not None.
        shape: shape of the parameter.
        name: parameter name for messages.
        regions: function region name(s) -> mask of `shape`, or None when names cannot be
            resolved (the tree is not a Cell).
    """
    if shape == ():
        raise ValueError(
            f"{name} is a scalar; where= selects entries of a per-node array. Drop where=."
        )
    arr = _where_array(where)
    if arr is None:  # region name(s)
        if regions is None:
            raise ValueError(
                f"where={where!r} names regions, but {name} is not a per-node array of a "
                "jaxdend.Cell; give a boolean mask or integer indices instead."
            )
        mask = np.asarray(regions(where if isinstance(where, str) else list(where)), bool)
    elif arr.dtype == bool:
        if arr.shape != shape:
            raise ValueError(
                f"where= mask for {name} has shape {arr.shape}; it must have the parameter's "
                f"shape {shape}."
            )
        mask = arr
    else:
        size = int(np.prod(shape))
        if arr.size and (arr.min() < -size or arr.max() >= size):
            raise ValueError(
                f"where= indices for {name} out of range: the parameter has {size} entries."
            )
        mask = np.zeros(size, bool)
        mask[arr.ravel()] = True
        mask = mask.reshape(shape)
    if not mask.any():
        raise ValueError(
            f"where={_where_label(where)!r} selects no entry of {name}; check the region name "
            "(or, for a channel parameter, that the channel is inserted there)."
        )
    return mask


# ----------------------------------------------------------------------------- wrappers
class AbstractParameter(eqx.Module):
    """Base of the parameter wrappers (`Bounded`, `Positive`, `Fixed`).

    A wrapper sits in a PyTree in place of a leaf; `unwrap` replaces it by its concrete value.
    """

    def unwrap(self) -> Any:
        """The concrete value of this wrapper (units of the wrapped parameter)."""
        raise NotImplementedError

    def _bind(self, current, name: str, unit: str | None, regions, default_mask):
        raise NotImplementedError

    def _map_raw(self, fn, other):
        raise NotImplementedError

    def _entries(self, name: str) -> list[tuple[str, dict]]:
        raise NotImplementedError


def is_parameter(x) -> bool:
    """True if `x` is a parameter wrapper (`Bounded`, `Positive` or `Fixed`)."""
    return isinstance(x, AbstractParameter)


def unwrap(tree):
    """Replace every parameter wrapper in `tree` by its concrete value.

    Call it inside the loss, after the gradient boundary: ``loss(unwrap(wrapped))``.

    Args:
        tree: any PyTree, possibly holding `Bounded`, `Positive` and `Fixed` wrappers.

    Returns:
        The same tree with concrete arrays in place of the wrappers (units of the
        wrapped parameters).
    """
    return jax.tree_util.tree_map(
        lambda x: x.unwrap() if is_parameter(x) else x, tree, is_leaf=is_parameter
    )


def _map_raw(tree, fn, other):
    """Map the ``raw`` leaves of trainable wrappers with ``fn(wrapper, raw)``, other leaves
    (array bases, masks, fixed values, everything outside wrappers) with ``other(leaf)``."""
    return jax.tree_util.tree_map(
        lambda x: x._map_raw(fn, other) if is_parameter(x) else other(x), tree,
        is_leaf=is_parameter,
    )


class _AbstractTransformed(AbstractParameter):
    """Shared machinery of `Bounded` and `Positive`: tying, masks, binding."""

    raw: Any
    base: Any
    mask: Any
    where: Any = eqx.field(static=True)
    per_node: bool = eqx.field(static=True)
    group: str | None = eqx.field(static=True)
    name: str | None = eqx.field(static=True)
    unit: str | None = eqx.field(static=True)

    # --- subclass hooks
    def _constrain(self, raw):
        raise NotImplementedError

    def _unconstrain(self, value: np.ndarray, name: str, unit: str | None) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, key, raw, k: int):
        raise NotImplementedError

    def _bounds(self) -> list[float]:
        raise NotImplementedError

    # --- common
    def _init_common(self, where, per_node, group, name, unit):
        if group is not None and not isinstance(group, str):
            raise TypeError(f"group must be a string (an optimiser group name), got {group!r}.")
        self.where = _normalise_where(where)
        self.per_node = bool(per_node)
        self.group = group
        self.name = name
        self.unit = unit
        self.raw = None
        self.base = None
        self.mask = None

    def _bind_init(self, init):
        """Bind to an initial value given at construction (``init=``)."""
        if init is None:
            return
        if self.where is not None and _where_array(self.where) is None:
            raise ValueError(
                "where= region names need a Cell: use parametrize(cell, ...) or "
                "wrap(cell, ...) instead of init=, or give where= as a boolean mask."
            )
        bound = self._bind(init, self.name or type(self).__name__, self.unit, None, None)
        for f in ("raw", "base", "mask", "where"):
            object.__setattr__(self, f, getattr(bound, f))

    def _bind(self, current, name, unit, regions, default_mask):
        if self.raw is not None:
            raise ValueError(
                f"This {type(self).__name__} already holds a value (init= or wrapped before); "
                "put it into a tree with eqx.tree_at, or wrap with a wrapper without init=."
            )
        unit = self.unit if self.unit is not None else unit
        arr = _concrete(current, name)
        shape = arr.shape
        if self.where is not None:
            mask = _mask_from_where(self.where, shape, name, regions)
            if default_mask is not None:
                mask = mask & default_mask
                if not mask.any():
                    raise ValueError(
                        f"where={_where_label(self.where)!r} selects no node where {name} "
                        "is defined (the channel is not inserted there)."
                    )
        elif shape == ():
            mask = None
        else:
            mask = np.ones(shape, bool) if default_mask is None else np.asarray(default_mask)
        if np.any(np.isnan(arr if mask is None else arr[mask])):
            raise ValueError(
                f"Initial value of {name} is NaN; set a finite value first (e.g. cell.set)."
            )
        if mask is None:
            if self.per_node:
                raise ValueError(f"{name} is a scalar; per_node=True needs an array parameter.")
            raw = self._unconstrain(arr, name, unit)
            base = None
        else:
            sel = arr[mask]
            if self.per_node:
                raw = self._unconstrain(sel, name, unit)
            else:
                lo, hi = float(sel.min()), float(sel.max())
                if hi - lo > _TIE_RTOL * max(abs(lo), abs(hi), 1e-300):
                    warnings.warn(
                        f"{name}: the values under where={_where_label(self.where) or 'all'!r} "
                        f"differ ({_fmt(lo)} to {_fmt(hi)} {unit or ''}); one tied value starts "
                        f"at their mean {_fmt(sel.mean())} and replaces all of them. Use "
                        "per_node=True to keep one value per node, or a narrower where=.",
                        UserWarning, stacklevel=4,
                    )
                raw = self._unconstrain(np.asarray(sel.mean()), name, unit)
            base = current if is_parameter(current) else jnp.asarray(arr)
            if mask.all() and self.per_node:
                raw = self._unconstrain(arr, name, unit)
                base, mask = None, None
        return _replace(
            self, raw=jnp.asarray(raw, dtype=float), base=base,
            mask=None if mask is None else jnp.asarray(mask),
            where=_where_label(self.where), name=name, unit=unit,
        )

    def unwrap(self):
        """Concrete value: the transformed ``raw`` written into the base where selected."""
        if self.raw is None:
            raise ValueError(
                f"{type(self).__name__} has no value yet; put it into a tree with "
                "parametrize(cell, ...) or wrap(tree, selector, wrapper), or give init=."
            )
        value = self._constrain(self.raw)
        if self.mask is None:
            return value
        base = jnp.asarray(unwrap(self.base), dtype=value.dtype)
        if self.per_node:
            idx = jnp.nonzero(jnp.ravel(self.mask), size=self.raw.size)[0]
            return base.ravel().at[idx].set(jnp.ravel(value)).reshape(base.shape)
        return jnp.where(self.mask, value, base)

    def _map_raw(self, fn, other):
        raw = None if self.raw is None else fn(self, self.raw)
        base = _map_raw(self.base, fn, other)
        mask = None if self.mask is None else other(self.mask)
        return _replace(self, raw=raw, base=base, mask=mask)

    def _entries(self, name):
        name = self.name or name
        value = np.asarray(self._constrain(self.raw))
        out = [(name, {
            "value": value.tolist(), "unit": self.unit, "kind": type(self).__name__,
            "bounds": self._bounds(), "where": self.where, "group": self.group,
            "trainable": True,
        })]
        if is_parameter(self.base):
            out += self.base._entries(name + ".base")
        return out


class Bounded(_AbstractTransformed):
    """A parameter kept inside (lower, upper) by a sigmoid of an unconstrained value.

    ``value = lower + (upper - lower) * sigmoid(raw)``; with ``log=True`` the interpolation
    is in log space (needs lower > 0), so equal steps of ``raw`` are equal *factors* of the
    value, for ranges spanning decades. The bounds are open: the initial value must lie
    strictly inside them.

    Args:
        lower, upper: bounds, in the units of the parameter (e.g. S/cm^2 for ``HH.g_na``).
        log: interpolate in log space (lower must be > 0).
        where: region name(s) as in `Cell.set` ("soma", ["basal", "apical"], ...), a boolean
            mask or node indices: the entries of a per-node array that are trained (the others
            keep their values). Default: the whole array (for a channel parameter through
            `parametrize`: the nodes where the channel is inserted).
        per_node: train one value per selected entry instead of one tied scalar (a tied
            scalar starts at the mean of the selected values, with a warning when they
            differ).
        group: optimiser group (see `fit(optimizer={group: optax...})`); None = "default".
        name: name used by `values` and in messages (default: the parameter's name/path).
        unit: unit string for reports (default: known for Cell parameters).
        init: initial value, to use the wrapper on its own (e.g. ``{"x": Bounded(0, 1,
            init=0.5)}``); otherwise `wrap`/`parametrize` take the value in the tree.
    """

    lower: float = eqx.field(static=True)
    upper: float = eqx.field(static=True)
    log: bool = eqx.field(static=True)

    def __init__(self, lower, upper, *, log: bool = False, where=None, per_node: bool = False,
                 group: str | None = None, name: str | None = None, unit: str | None = None,
                 init=None):
        """Create a bounded parameter (see the class docstring for the arguments)."""
        try:
            lo, hi = float(lower), float(upper)
        except (TypeError, ValueError):
            raise TypeError(
                f"Bounded needs numbers lower, upper, got {lower!r}, {upper!r}."
            ) from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            raise ValueError(
                f"Bounded({lower!r}, {upper!r}): need finite bounds with lower < upper."
            )
        if log and lo <= 0:
            raise ValueError(
                f"Bounded({lower!r}, {upper!r}, log=True): log-scaled bounds need lower > 0; "
                "use log=False for ranges including 0 or negative values."
            )
        self.lower, self.upper, self.log = lo, hi, bool(log)
        self._init_common(where, per_node, group, name, unit)
        self._bind_init(init)

    def _ends(self):
        if self.log:
            return math.log(self.lower), math.log(self.upper)
        return self.lower, self.upper

    def _constrain(self, raw):
        a, b = self._ends()
        y = a + (b - a) * jax.nn.sigmoid(jnp.asarray(raw, dtype=float))
        # the clip only removes rounding at the ends (exp(log lower) can be 1 ulp below lower)
        return jnp.clip(jnp.exp(y) if self.log else y, self.lower, self.upper)

    def _unconstrain(self, value, name, unit):
        value = np.asarray(value, dtype=float)
        bad = (value <= self.lower) | (value >= self.upper)
        if np.any(bad):
            first = float(value[bad].ravel()[0]) if value.ndim else float(value)
            where = "" if value.ndim == 0 else f" ({int(bad.sum())} of {value.size} entries)"
            u = f" {unit}" if unit else ""
            raise ValueError(
                f"Initial value of {name} is {_fmt(first)}{u}{where}, not strictly inside the "
                f"bounds ({_fmt(self.lower)}, {_fmt(self.upper)}) of Bounded; change the "
                "initial value (e.g. cell.set) or the bounds."
            )
        a, b = self._ends()
        y = np.log(value) if self.log else value
        f = (y - a) / (b - a)
        return np.log(f) - np.log1p(-f)

    def _draw(self, key, raw, k):
        u = jax.random.uniform(key, (k,) + jnp.shape(raw), dtype=jnp.result_type(raw),
                               minval=_EDGE, maxval=1.0 - _EDGE)
        return jnp.log(u) - jnp.log1p(-u)

    def _bounds(self):
        return [self.lower, self.upper]


class Positive(_AbstractTransformed):
    """A parameter kept > 0 by ``value = exp(raw)``.

    Adam steps in ``raw`` are relative changes of the value, whatever its scale (1e-4 S/cm^2
    or 100 ms). For multi-start fits, starts are drawn log-uniformly within a factor
    ``spread`` of the initial value (default 10, see `fit`).

    Args:
        where, per_node, group, name, unit, init: as for `Bounded`.
    """

    def __init__(self, *, where=None, per_node: bool = False, group: str | None = None,
                 name: str | None = None, unit: str | None = None, init=None):
        """Create a positive parameter (see the class docstring for the arguments)."""
        self._init_common(where, per_node, group, name, unit)
        self._bind_init(init)

    def _constrain(self, raw):
        return jnp.exp(jnp.asarray(raw, dtype=float))

    def _unconstrain(self, value, name, unit):
        value = np.asarray(value, dtype=float)
        bad = ~(value > 0) | ~np.isfinite(value)
        if np.any(bad):
            first = float(value[bad].ravel()[0]) if value.ndim else float(value)
            u = f" {unit}" if unit else ""
            raise ValueError(
                f"Initial value of {name} is {_fmt(first)}{u}, but Positive needs a finite "
                "value > 0; set a positive initial value (e.g. cell.set) or use "
                "Bounded(lower, upper) for a parameter that can be <= 0."
            )
        return np.log(value)

    def _draw(self, key, raw, k, spread: float = 10.0):
        d = jax.random.uniform(key, (k,) + jnp.shape(raw), dtype=jnp.result_type(raw),
                               minval=-math.log(spread), maxval=math.log(spread))
        return raw + d

    def _bounds(self):
        return [0.0, None]


class Fixed(AbstractParameter):
    """A value held constant: excluded from training, gradients stopped.

    Use it to mark a parameter as fixed in reports (`values`), or to freeze a parameter that is
    already wrapped (e.g. fit passive properties first, then ``wrap(model, lambda c: c.cm,
    Fixed())`` before fitting the channels).

    Args:
        value: the value (any PyTree of arrays, or a wrapper to freeze); default: the value in
            the tree, taken by `wrap`/`parametrize`.
        name, unit: as for `Bounded`.
    """

    value: Any
    name: str | None = eqx.field(static=True)
    unit: str | None = eqx.field(static=True)

    def __init__(self, value=None, *, name: str | None = None, unit: str | None = None):
        """Create a fixed parameter (see the class docstring for the arguments)."""
        if value is not None and not is_parameter(value):
            arr = _concrete(value, name or "Fixed")
            if np.any(np.isnan(arr)):
                raise ValueError(f"Fixed value of {name or 'a parameter'} is NaN.")
            value = jnp.asarray(arr)
        self.value = value
        self.name = name
        self.unit = unit

    def _bind(self, current, name, unit, regions, default_mask):
        if self.value is not None:
            raise ValueError("This Fixed already holds a value; use Fixed() with wrap.")
        if not is_parameter(current):
            arr = _concrete(current, name)
            if np.any(np.isnan(arr)):
                raise ValueError(
                    f"Initial value of {name} is NaN; set a finite value first (e.g. cell.set)."
                )
            current = jnp.asarray(arr)
        return _replace(self, value=current, name=self.name or name,
                        unit=self.unit if self.unit is not None else unit)

    def unwrap(self):
        """The held value (a frozen wrapper is unwrapped), with gradients stopped."""
        if self.value is None:
            raise ValueError("Fixed() has no value yet; put it into a tree with wrap/parametrize.")
        return jax.tree_util.tree_map(jax.lax.stop_gradient, unwrap(self.value))

    def _map_raw(self, fn, other):
        return _replace(self, value=_map_raw(self.value, lambda p, r: other(r), other))

    def _entries(self, name):
        name = self.name or name
        if is_parameter(self.value):
            out = self.value._entries(name)
            return [(n, dict(e, trainable=False)) for n, e in out]
        value = np.asarray(self.value)
        if value.size and np.all(value == value.ravel()[0]):
            value = value.ravel()[0]
        return [(name, {"value": value.tolist(), "unit": self.unit, "kind": "Fixed",
                        "bounds": None, "where": None, "group": None, "trainable": False})]


# ----------------------------------------------------------------------------- tree tools
def trainable(tree):
    """Filter spec for ``eqx.partition``: True on the ``raw`` leaves of non-fixed wrappers.

    Everything else (unwrapped leaves, array bases and masks of tied wrappers, `Fixed` values)
    is False, so ``params, static = eqx.partition(tree, trainable(tree))`` splits off exactly
    the values an optimiser should change.

    Args:
        tree: a PyTree holding parameter wrappers.

    Returns:
        A PyTree of bools with the structure of `tree`.
    """
    return _map_raw(tree, lambda p, r: True, lambda x: False)


def _path_name(path) -> str:
    """Readable key path: "rules[0].rule.a_plus", "x" for a dict key "x"."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(f".{k.name}")
        elif isinstance(k, jax.tree_util.DictKey):
            parts.append(f".{k.key}" if isinstance(k.key, str) else f"[{k.key!r}]")
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(f"[{k.idx}]")
        else:
            parts.append(str(k))
    name = "".join(parts)
    return name[1:] if name.startswith(".") else name


class _Marker:
    """A unique leaf used to find the key path a selector points to."""


def _find(tree, node):
    """Key path of `node` (by identity) in `tree`, or None."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: x is node)
    for path, leaf in flat:
        if leaf is node:
            return path
    return None


def _wrap(tree, selector, wrapper, *, name, unit, regions, default_mask):
    if not is_parameter(wrapper):
        if isinstance(wrapper, type) and issubclass(wrapper, AbstractParameter):
            raise TypeError(
                f"Give a wrapper instance, e.g. {wrapper.__name__}(...), not the class."
            )
        raise TypeError(f"wrapper must be Bounded(...), Positive() or Fixed(), got {wrapper!r}.")
    try:
        current = selector(tree)
    except Exception as e:
        raise ValueError(f"The selector failed on this tree: {e}") from e
    if current is None:
        raise ValueError("The selector points to None; select an array or a number.")
    if name is None:
        name = getattr(wrapper, "name", None)
    if name is None:
        marker = _Marker()
        path = _find(eqx.tree_at(selector, tree, marker, is_leaf=_is_none), marker)
        label = _where_label(getattr(wrapper, "where", None))
        base = _path_name(path) if path is not None else type(wrapper).__name__
        name = base + (f"[{label}]" if label else "")
    bound = wrapper._bind(current, name, unit, regions, default_mask)
    return eqx.tree_at(selector, tree, bound, is_leaf=_is_none)


def wrap(tree, selector: Callable, wrapper: AbstractParameter, *, name: str | None = None,
         unit: str | None = None):
    """Wrap the leaf of `tree` picked by `selector` (as in ``eqx.tree_at``) with `wrapper`.

    The initial value is the current value of the leaf (for a tied ``where=`` selection: the
    mean of the selected entries, with a warning when they differ). Works on any PyTree, e.g.
    a plasticity rule parameter ``wrap(cell, lambda c: c.rules[0].rule.a_plus,
    Bounded(0.0, 0.1))``. Wrapping an already wrapped leaf nests the wrappers (two regions
    of one array) or, with `Fixed()`, freezes it.

    Args:
        tree: any PyTree (a `Cell`, a rule, a dict ...).
        selector: function tree -> the leaf to wrap.
        wrapper: an unbound `Bounded(...)`, `Positive()` or `Fixed()`.
        name: name for `values` and messages (default: the key path, e.g.
            "rules[0].rule.a_plus", plus "[where]" when tied).
        unit: unit string for reports.

    Returns:
        A new tree with the wrapper in place of the leaf.
    """
    regions = None
    if isinstance(tree, Cell):
        cell = tree

        def regions(where):
            return cell.comps.mask(where)

    return _wrap(tree, selector, wrapper, name=name, unit=unit, regions=regions,
                 default_mask=None)


_CHANNEL_UNITS = {"temp_ref": "degC", "q10": "1", "tau_max": "ms", "vt": "mV", "vshift": "mV",
                  "tha": "mV", "thi1": "mV", "thi2": "mV", "thinf": "mV", "qa": "mV",
                  "qi": "mV", "qinf": "mV", "ra": "1/ms", "rb": "1/ms", "rg": "1/ms",
                  "rd": "1/ms", "g_celsius": "degC"}
_SYNAPSE_UNITS = {"gmax": "nS", "tau_rise": "ms", "tau_decay": "ms", "e_rev": "mV",
                  "mg": "mM", "mg_slope": "1/mV", "mg_k": "mM", "U": "1", "tau_rec": "ms",
                  "tau_fac": "ms"}


def _cell_unit(cell: Cell, name: str) -> str | None:
    fixed = {"cm": "uF/cm^2", "ra": "Ohm cm", "v_init": "mV", "celsius": "degC"}
    if name in fixed:
        return fixed[name]
    kind, _, param = name.partition(".")
    if kind in [g.name for g in cell.synapses]:
        return _SYNAPSE_UNITS.get(param)
    if param in _CHANNEL_UNITS:
        return _CHANNEL_UNITS[param]
    if param == "g" or param.startswith("g_") or param.startswith("gbar"):
        return "S/cm^2"
    if param == "e" or param.startswith("e_"):
        return "mV"
    if param.startswith("tau"):
        return "ms"
    return None


def _cell_target(cell: Cell, name: str):
    """(selector, region-mask function, default mask) of the Cell parameter `name`."""
    if not isinstance(name, str):
        raise TypeError(f"Parameter names must be strings such as 'HH.g_na', got {name!r}.")
    if name in ("celsius", "v_init"):
        return (lambda c: getattr(c, name)), None, None
    selector = cell.selector(name)  # ValueError naming the known channels/parameters
    kind, _, _ = name.partition(".")
    groups = [g.name for g in cell.synapses]
    if kind in groups:
        nodes = np.asarray(cell.synapses[cell.synapse_group(kind)].node)
        shape = np.shape(unwrap(selector(cell)))

        def regions(where):
            if shape != (nodes.size,):
                raise ValueError(f"{name} is one value for the group; drop where=.")
            return cell.comps.mask(where)[nodes]

        return selector, regions, None
    default = None
    if name not in ("cm", "ra"):
        kinds = [type(c).__name__ for c in cell.channels]
        default = np.asarray(cell.masks[kinds.index(kind)], bool)
    return selector, (lambda where: cell.comps.mask(where)), default


def parametrize(cell: Cell, spec: Mapping[str, AbstractParameter | Sequence[AbstractParameter]]
                ) -> Cell:
    """Wrap parameters of a Cell by name (the names of `Cell.get`/`Cell.set`).

    Example::

        model = parametrize(cell, {"HH.g_na": Bounded(0.01, 0.5, where="soma"),
                                   "Leak.g": Positive(), "cm": Bounded(0.5, 3.0)})

    Channel parameters default to the nodes where the channel is inserted; ``where=``
    narrows that down (one tied value per wrapper unless ``per_node=True``). A list of
    wrappers fits several regions of one parameter separately, e.g. ``"HH.g_na":
    [Bounded(0.05, 0.5, where="soma"), Bounded(1e-3, 0.05, log=True, where="basal")]``
    (names "HH.g_na[soma]", "HH.g_na[basal]"). Synapse parameters ("group.gmax" nS,
    "group.tau_decay" ms, ...) accept ``where=`` regions of the synapses' compartments.

    Args:
        cell: the `Cell`.
        spec: parameter name -> wrapper (or list of wrappers): "cm" (uF/cm^2), "ra" (Ohm cm),
            "v_init" (mV), "celsius" (degC), "Channel.param" (S/cm^2 for conductances, mV
            for reversal potentials), "group.param" for synapses.

    Returns:
        The cell with wrappers in place of the selected parameters.
    """
    if not isinstance(cell, Cell):
        raise TypeError(
            f"parametrize needs a jaxdend.Cell, got {type(cell).__name__}; for other PyTrees "
            "use wrap(tree, selector, wrapper)."
        )
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(
            "spec must be a non-empty dict name -> wrapper, e.g. {'HH.g_na': Bounded(0.01, 0.5)}."
        )
    for name, wrappers in spec.items():
        ws = list(wrappers) if isinstance(wrappers, (list, tuple)) else [wrappers]
        if not ws:
            raise ValueError(f"spec[{name!r}] is an empty list; give at least one wrapper.")
        if len(ws) > 1 and any(getattr(w, "where", None) is None for w in ws):
            raise ValueError(
                f"spec[{name!r}] lists {len(ws)} wrappers; give each a where= (distinct regions)."
            )
        selector, regions, default = _cell_target(cell, name)
        unit = _cell_unit(cell, name)
        for w in ws:
            label = _where_label(getattr(w, "where", None))
            full = name + (f"[{label}]" if label else "")
            cell = _wrap(cell, selector, w, name=w.name if getattr(w, "name", None) else full,
                         unit=unit, regions=regions, default_mask=default)
    return cell


def parameters(tree) -> list[tuple[str, AbstractParameter]]:
    """All wrappers in `tree` (nested ones included) with their names, in tree order.

    Args:
        tree: a PyTree holding parameter wrappers.

    Returns:
        List of (name, wrapper).
    """
    out = []
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_parameter)
    for path, leaf in flat:
        if is_parameter(leaf):
            out.append((leaf.name or _path_name(path), leaf))
    return out


def values(tree) -> dict[str, dict]:
    """Concrete values of every wrapped parameter, for reports and JSON.

    Args:
        tree: a PyTree holding parameter wrappers (e.g. ``result.model`` of `fit`).

    Returns:
        dict name -> {"value": float or list (per_node), "unit": str or None (S/cm^2,
        uF/cm^2, Ohm cm, mV, ms, nS ... where known), "kind": "Bounded" | "Positive" |
        "Fixed", "bounds": [lower, upper] ([0, None] for Positive; None for Fixed),
        "where": region label or None, "group": optimiser group or None, "trainable": bool}.
        Only JSON-serialisable Python types.
    """
    out: dict[str, dict] = {}
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_parameter)
    for path, leaf in flat:
        if not is_parameter(leaf):
            continue
        for name, entry in leaf._entries(_path_name(path)):
            key, k = name, 2
            while key in out:
                key, k = f"{name}#{k}", k + 1
            out[key] = entry
    return out
