"""Hodgkin-Huxley squid-axon channels (NEURON's built-in ``hh``) and a passive leak.

Also holds the numerically safe rate helpers (`vtrap`, `check_positive`) shared by the other
channel modules.

Units: voltage mV, time ms, conductance density S/cm^2, current density mA/cm^2 (outward
positive), temperature degC.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._linear import linear_map, native_cpu
from ._base import AbstractChannel, State

# Below this |x/y| the Taylor branch replaces x/(exp(x/y) - 1) (the cut used by NEURON's hh.mod).
_TAYLOR_CUT = 1e-6
_E_HALF = float(np.exp(0.5))


def vtrap(x: Float[ArrayLike, " comp"], y: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
    """``x / (exp(x/y) - 1)`` with its removable singularity at ``x = 0`` handled safely.

    Same function as NEURON's ``vtrap`` in hh.mod: for ``|x/y| < 1e-6`` it returns the Taylor
    expansion ``y (1 - x/y/2)``. Both branches of every `jnp.where` are kept finite (the "double
    where" trick), and for ``x/y > 700`` (where the value is below 1e-300) it returns 0 without
    evaluating the overflowing exponential, so values and gradients (w.r.t. ``x`` and ``y``) are
    finite for all finite inputs. One ``expm1`` per element.

    Args:
        x: numerator, usually a voltage difference (mV).
        y: slope factor (mV), nonzero.

    Returns:
        The value in the units of ``x`` (mV); rates are this times a constant in 1/(ms mV).
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    ratio, _ = _trap_ratio(x / y)
    return y * ratio


# Above this z, z/(exp(z) - 1) < 1e-300: returned as 0 (exp(z) would overflow near 709.8).
_TRAP_MAX = 700.0


@jax.custom_jvp
def _trap_ratio(z):
    """``(z / (exp(z) - 1), expm1(min(z, 700)))`` with finite values and gradients everywhere.

    The second output is the exponential minus one that the ratio used (clipped at z = 700), so
    callers can reuse it for other rates of the same exponent. Derivatives are given in closed
    form (`_trap_ratio_jvp`), which keeps gradients of the rate functions short.
    """
    small = jnp.abs(z) < _TAYLOR_CUT
    big = z > _TRAP_MAX
    z_c = jnp.minimum(z, _TRAP_MAX)
    em = jnp.expm1(z_c)
    z_safe = jnp.where(small, 1.0, z_c)
    em_safe = jnp.where(small, 1.0, em)
    ratio = jnp.where(small, 1.0 - z / 2.0, jnp.where(big, 0.0, z_safe / em_safe))
    return ratio, em


# Below this |z| the slope of z/(e^z - 1) is taken from its Taylor series
# -1/2 + z/6 - z^3/180 (truncation error < 1e-16 here; the closed form would cancel).
_SLOPE_CUT = 1e-3


def _trap_slope(z, ratio, em):
    """d/dz of z/(e^z - 1), given the ratio and ``em = expm1(min(z, 700))`` at z."""
    small = jnp.abs(z) < _SLOPE_CUT
    em_safe = jnp.where(small, 1.0, em)
    return jnp.where(
        small,
        -0.5 + z / 6.0 - z**3 / 180.0,
        jnp.where(z > _TRAP_MAX, 0.0, (1.0 - ratio * (em + 1.0)) / em_safe),
    )


@_trap_ratio.defjvp
def _trap_ratio_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    ratio, em = _trap_ratio(z)
    d_em = jnp.where(z > _TRAP_MAX, 0.0, em + 1.0)
    return (ratio, em), (_trap_slope(z, ratio, em) * dz, d_em * dz)


def check_positive(module: object, *names: str) -> None:
    """Raise `ValueError` if a concrete (non-traced) parameter of `module` is not positive.

    Args:
        module: the channel being constructed.
        names: attribute names to check.
    """
    for name in names:
        value = getattr(module, name)
        if isinstance(value, jax.core.Tracer):
            continue
        try:
            bad = not bool(np.all(np.asarray(value) > 0))
        except (TypeError, jax.errors.ConcretizationTypeError):
            continue
        if bad:
            raise ValueError(f"{type(module).__name__}.{name} must be positive, got {value!r}")


def _hh_q10(celsius) -> Array:
    """hh.mod's temperature factor ``3**((celsius - 6.3)/10)``."""
    return 3.0 ** ((jnp.asarray(celsius) - 6.3) / 10.0)


_E_M15 = float(np.exp(-1.5))


# Below this |z| the HH fast path takes z/(e^z - 1) and its slope from their Taylor series
# (Bernoulli numbers; truncation error < 1e-19 here), so the subtraction e^z - 1 never cancels
# more than two digits and no expm1 is needed.
_SERIES_CUT = 1e-2


def _ratio_from_exp(z, e):
    """``z / (e - 1)`` for ``e = exp(min(z, 700))`` (hh.mod's vtrap in units of its slope):
    the series ``1 - z/2 + z^2/12 - z^4/720 + z^6/30240`` for ``|z| < 1e-2``, 0 above
    z = 700; both branches of every where stay finite."""
    small = jnp.abs(z) < _SERIES_CUT
    z2 = z * z
    series = 1.0 - 0.5 * z + z2 * (1.0 / 12.0 + z2 * (-1.0 / 720.0 + z2 * (1.0 / 30240.0)))
    den = jnp.where(small, 1.0, e - 1.0)
    return jnp.where(small, series,
                     jnp.where(z > _TRAP_MAX, 0.0, jnp.where(small, 1.0, z) / den))


def _slope_from_exp(z, ratio, e):
    """d/dz of z/(e^z - 1) from the ratio and ``e = exp(min(z, 700))`` (series below 1e-2)."""
    small = jnp.abs(z) < _SERIES_CUT
    z2 = z * z
    series = -0.5 + z * (1.0 / 6.0 + z2 * (-1.0 / 180.0 + z2 * (1.0 / 5040.0)))
    den = jnp.where(small, 1.0, e - 1.0)
    return jnp.where(small, series, jnp.where(z > _TRAP_MAX, 0.0, (1.0 - ratio * e) / den))


def _hh_exponentials(v):
    """The three exponentials all hh.mod rates are made of, at `v` (mV).

    ``e_m = exp(z_m)`` with ``z_m = -(v+40)/10`` (am, bh; and ``e_n = e_m exp(-1.5)`` for an,
    since ``z_n = -(v+55)/10 = z_m - 1.5``), ``w = exp(-(v+65)/80)`` (ah = 0.07 w^4,
    bn = 0.125 w) and ``e_b = exp(-(v+65)/18)`` (bm = 4 e_b). Exponents are clipped so that
    nothing overflows. As hh.mod, ``exp(z) - 1`` (not expm1) enters vtrap.
    """
    u = v + 65.0
    z_m = (v + 40.0) * -0.1  # divisions by constant slopes are multiplications (round-off)
    x_w = u * -0.0125
    x_b = u * (-1.0 / 18.0)
    e_m = jnp.exp(jnp.minimum(z_m, _TRAP_MAX))
    w = jnp.exp(jnp.minimum(x_w, 170.0))  # w^4 stays finite
    e_b = jnp.exp(jnp.minimum(x_b, _TRAP_MAX))
    return z_m, e_m, x_w, w, x_b, e_b


def _hh_rates(v) -> dict[str, tuple[Array, Array]]:
    """hh.mod's opening and closing rates (1/ms) of m, h, n at `v` (mV), 3 exponentials per node.

    ``am = 0.1 vtrap(-(v+40), 10) = z_m/(e^z_m - 1)`` with ``z_m = -(v+40)/10``;
    ``bh = 1/(exp(-(v+35)/10) + 1) = 1/(e^z_m e^0.5 + 1)`` reuses ``e^z_m``;
    ``an = 0.01 vtrap(-(v+55), 10) = 0.1 z_n/(e^z_n - 1)`` with ``z_n = z_m - 1.5``, so
    ``e^z_n = e^z_m e^-1.5``; ``ah = 0.07 exp(-(v+65)/20) = 0.07 w^4`` and ``bn = 0.125 w``
    with ``w = exp(-(v+65)/80)``; ``bm = 4 exp(-(v+65)/18)``.
    """
    z_m, e_m, _, w, _, e_b = _hh_exponentials(v)
    w2 = w * w
    return {
        "m": (_ratio_from_exp(z_m, e_m), 4.0 * e_b),
        "h": (0.07 * (w2 * w2), 1.0 / (e_m * _E_HALF + 1.0)),
        "n": (0.1 * _ratio_from_exp(z_m - 1.5, e_m * _E_M15), 0.125 * w),
    }


def _hh_rates_slopes(v):
    """`_hh_rates` and the derivatives of every rate w.r.t. v (1/(ms mV)), from the same
    exponentials (no autodiff). Returns ``{gate: (a, b, da/dv, db/dv)}``."""
    z_m, e_m, x_w, w, x_b, e_b = _hh_exponentials(v)
    z_n, e_n = z_m - 1.5, e_m * _E_M15
    ratio_m = _ratio_from_exp(z_m, e_m)
    ratio_n = _ratio_from_exp(z_n, e_n)
    w2 = w * w
    bm = 4.0 * e_b
    ah = 0.07 * (w2 * w2)
    e_h = e_m * _E_HALF
    bh = 1.0 / (e_h + 1.0)
    an = 0.1 * ratio_n
    bn = 0.125 * w
    return {
        "m": (ratio_m, bm, -0.1 * _slope_from_exp(z_m, ratio_m, e_m),
              jnp.where(x_b < _TRAP_MAX, bm * (-1.0 / 18.0), 0.0)),
        "h": (ah, bh, jnp.where(x_w < 170.0, ah * -0.05, 0.0),
              jnp.where(z_m < _TRAP_MAX, 0.1 * bh * bh * e_h, 0.0)),
        "n": (an, bn, -0.01 * _slope_from_exp(z_n, ratio_n, e_n),
              jnp.where(x_w < 170.0, bn * -0.0125, 0.0)),
    }


def _hh_exp_euler_parts(m, h, n, v, q10, dt):
    """The exponential-Euler step of m, h, n and its partial derivatives: per gate the new value,
    d x'/d x (the decay factor), d x'/d v, and d x'/d(dt q10)."""
    out, decay, dx_dv, dx_drate = [], [], [], []
    for x, (a, b, da, db) in zip((m, h, n), _hh_rates_slopes(v).values()):
        s = a + b
        inf = a / s
        e = jnp.exp(-dt * q10 * s)
        gap = (x - inf) * e  # x' = inf + gap
        # d inf/dv = (da - inf (da + db)) / s ; d e/dv = -dt q10 e (da + db)
        ds = da + db
        out.append(inf + gap)
        decay.append(e)
        dx_dv.append((1.0 - e) * (da - inf * ds) / s - gap * (dt * q10) * ds)
        dx_drate.append(-gap * s)
    return tuple(out), decay, dx_dv, dx_drate


def _per_node(k, v):
    """`k` (shape a prefix of v's: one value per batch element) broadcast against `v`."""
    return jnp.reshape(k, jnp.shape(k) + (1,) * (jnp.ndim(v) - jnp.ndim(k)))


def _tangent_xla(m, h, n, v, k, dm, dh, dn, dv, dk):
    """The step's tangent map (linear in dm, dh, dn, dv, dk) from its partial derivatives;
    ``k = dt q10`` has a prefix of v's shape."""
    _, decay, dx_dv, dx_drate = _hh_exp_euler_parts(m, h, n, v, _per_node(k, v), 1.0)
    dk = _per_node(dk, v)
    return tuple(e * dx + g * dv + r * dk
                 for e, dx, g, r in zip(decay, (dm, dh, dn), dx_dv, dx_drate))


def _vjp_xla(m, h, n, v, k, cm, ch, cn):
    """The transpose of `_tangent_xla` for the cotangents `cm`, `ch`, `cn` of the new gates:
    cotangents of m, h, n, v and k (summed over the nodes of each batch element)."""
    _, decay, dx_dv, dx_drate = _hh_exp_euler_parts(m, h, n, v, _per_node(k, v), 1.0)
    cts = (cm, ch, cn)
    c_v = sum(g * c for g, c in zip(dx_dv, cts))
    c_k = sum(r * c for r, c in zip(dx_drate, cts))
    c_k = jnp.sum(c_k, axis=tuple(range(jnp.ndim(k), jnp.ndim(v))))
    return (*(e * c for e, c in zip(decay, cts)), c_v, c_k)


def _native():
    from ..solve import _native  # here, not at import: jaxdend.solve imports the channels

    return _native


def _native_ok(*arrays) -> bool:
    """True if the native CPU code is built and handles the arrays' one dtype."""
    dtypes = {np.dtype(a.dtype) for a in arrays}
    return len(dtypes) == 1 and _native().hh_gates_supported(arrays[0])


# The derivatives of the gate step and of the current, as linear maps whose transposes
# (reverse mode) are one native loop each on CPU, where transposing their XLA formulas takes
# a few dozen small kernels per step (1,016-compartment HH tree, value-and-gradient: 345 ->
# 272 ms for the gate step's, a further -3 to -7 % for the current's; session 10, see
# benchmarks/README.md); forward mode and batching use the XLA formulas.
_gates_vjp = native_cpu(_vjp_xla, lambda *a: _native().hh_gates_vjp(*a), _native_ok)
_gates_tangent = linear_map("jaxdend_hh_gates_tangent", _tangent_xla, _gates_vjp, 5)


def _current_xla(m, h, n, v, g_na, g_k, g_l, e_na, e_k, e_l):
    """HH's current density (mA/cm^2) and its slope d i/d v (S/cm^2) at `v` (mV), and m, h,
    n passed through (for the gate step: see `HH.linearize`)."""
    m3h = m * m * m * h
    n2 = n * n
    p_na, p_k = g_na * m3h, g_k * (n2 * n2)
    return (p_na * (v - e_na) + p_k * (v - e_k) + g_l * (v - e_l), p_na + p_k + g_l, m, h, n)


def _current_tangent_xla(*args):
    return jax.jvp(_current_xla, args[:10], args[10:])[1]


def _current_vjp_xla(*args):
    return jax.vjp(_current_xla, *args[:10])[1](args[10:])


_current_vjp = native_cpu(_current_vjp_xla, lambda *a: _native().hh_current_vjp(*a),
                          _native_ok)
_current_tangent = linear_map("jaxdend_hh_current_tangent", _current_tangent_xla,
                              _current_vjp, 10)


@jax.custom_jvp
def _hh_current(*args):
    """`_current_xla` (args: m, h, n, v, g_na, g_k, g_l, e_na, e_k, e_l), its derivative
    the linear map `_current_tangent` (reverse mode: one native loop on CPU)."""
    return _current_xla(*args)


@_hh_current.defjvp
def _hh_current_jvp(primals, tangents):
    shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in primals))
    primals = [jnp.broadcast_to(x, shape) for x in primals]
    tangents = [jnp.broadcast_to(t, shape) for t in tangents]
    return _current_xla(*primals), tuple(_current_tangent(*primals, *tangents))


@jax.custom_jvp
def _hh_exp_euler(m, h, n, v, q10, dt):
    """Exponential-Euler step of the three gates; see `HH.exp_euler`. Its derivative is
    written out from the rate slopes instead of differentiating through the rate functions:
    a short linear map (`_gates_tangent`) whose transpose, for reverse mode, is `_gates_vjp`.

    On CPU the value comes from native code when it can be built (`jaxdend.solve._native`,
    `native/hh_gates.cc`: the same formulas as one vectorised loop; agrees to round-off, and
    the tree HH benchmark's forward is ~35 % faster); elsewhere from the XLA formulas."""

    def xla(m, h, n, v, q10, dt):
        return _hh_exp_euler_parts(m, h, n, v, q10, dt)[0]

    if not _native().hh_gates_supported(v):
        return xla(m, h, n, v, q10, dt)
    k = jnp.asarray(dt * q10, dtype=v.dtype)
    return tuple(jax.lax.platform_dependent(
        m, h, n, v, k,
        cpu=_native().hh_gates,
        default=lambda m, h, n, v, k: xla(m, h, n, v, q10, dt)))


def _rate_scale(v, q10, dt, dq10, ddt):
    """``k = dt q10`` (ms) in v's dtype and its tangent, each a prefix of v's shape (one
    value per batch element), or v's shape where q10 varies otherwise (e.g. per node)."""
    k = jnp.asarray(dt * q10, dtype=v.dtype)
    dk = jnp.asarray(dt * dq10 + q10 * ddt, dtype=v.dtype)
    if jnp.shape(k) != jnp.shape(v)[: jnp.ndim(k)]:  # e.g. a temperature per node
        k, dk = jnp.broadcast_to(k, v.shape), jnp.broadcast_to(dk, v.shape)
    return k, dk


@_hh_exp_euler.defjvp
def _hh_exp_euler_jvp(primals, tangents):
    m, h, n, v, q10, dt = primals
    dm, dh, dn, dv, dq10, ddt = tangents
    k, dk = _rate_scale(v, q10, dt, dq10, ddt)
    out = _hh_exp_euler(m, h, n, v, q10, dt)
    return out, tuple(_gates_tangent(m, h, n, v, k, dm, dh, dn, dv, dk))


def _step_current_tangent_xla(*args):
    """The tangent map of `_hh_step_current` (residuals m, h, n, v, k = dt q10 (a prefix of
    v's shape) and the six parameters, then their 11 tangents) from those of the gate step
    and the current: the tangents of m', h', n', i, g."""
    m, h, n, v, k, *params = args[:11]
    dm, dh, dn, dv, dk, *dparams = args[11:]
    m1, h1, n1 = _hh_exp_euler_parts(m, h, n, v, _per_node(k, v), 1.0)[0]
    dm1, dh1, dn1 = _tangent_xla(m, h, n, v, k, dm, dh, dn, dv, dk)
    di, dg = _current_tangent_xla(m1, h1, n1, v, *params, dm1, dh1, dn1, dv, *dparams)[:2]
    return dm1, dh1, dn1, di, dg


def _step_current_vjp_xla(*args):
    """The transpose of `_step_current_tangent_xla` for the cotangents of m', h', n', i, g:
    cotangents of m, h, n, v, k (summed over each batch element's nodes) and the six
    parameters, through `_current_vjp_xla` and `_vjp_xla`."""
    m, h, n, v, k, *params = args[:11]
    cm1, ch1, cn1, ci, cg = args[11:]
    m1, h1, n1 = _hh_exp_euler_parts(m, h, n, v, _per_node(k, v), 1.0)[0]
    c = _current_vjp_xla(m1, h1, n1, v, *params, ci, cg, cm1, ch1, cn1)
    cm, ch, cn, cv, ck = _vjp_xla(m, h, n, v, k, *c[:3])
    return (cm, ch, cn, cv + c[3], ck, *c[4:])


# The gate step and the next current as one linear map, whose transpose is one native loop
# on CPU (`StepCurrentVjp` in hh_gates.cc) where `_gates_vjp` and `_current_vjp` are two;
# used between the steps of a checkpointed unit (`HH.exp_euler_linearize`).
_step_current_vjp = native_cpu(_step_current_vjp_xla,
                               lambda *a: _native().hh_step_current_vjp(*a), _native_ok)
_step_current_tangent = linear_map("jaxdend_hh_step_current_tangent",
                                   _step_current_tangent_xla, _step_current_vjp, 11)


@jax.custom_jvp
def _hh_step_current(m, h, n, v, q10, dt, g_na, g_k, g_l, e_na, e_k, e_l):
    """`_hh_exp_euler` then `_current_xla` at the new gates: (m', h', n', i, g); its
    derivative the linear map `_step_current_tangent`."""
    m1, h1, n1 = _hh_exp_euler(m, h, n, v, q10, dt)
    return (m1, h1, n1, *_current_xla(m1, h1, n1, v, g_na, g_k, g_l, e_na, e_k, e_l)[:2])


@_hh_step_current.defjvp
def _hh_step_current_jvp(primals, tangents):
    m, h, n, v, q10, dt, *params = primals
    dm, dh, dn, dv, dq10, ddt, *dparams = tangents
    shape = jnp.shape(v)
    params = [jnp.broadcast_to(x, shape) for x in params]
    dparams = [jnp.broadcast_to(t, shape) for t in dparams]
    k, dk = _rate_scale(v, q10, dt, dq10, ddt)
    out = _hh_step_current(m, h, n, v, q10, dt, *params)
    return out, tuple(_step_current_tangent(m, h, n, v, k, *params, dm, dh, dn, dv, dk,
                                            *dparams))


class HH(AbstractChannel):
    """Hodgkin-Huxley Na, K and leak currents, identical to NEURON's built-in ``hh``.

    ``i = g_na m^3 h (v - e_na) + g_k n^4 (v - e_k) + g_l (v - e_l)``. The rates are those of
    hh.mod (squid axon, shifted to rest near -65 mV) and are multiplied by
    ``q10 = 3**((celsius - 6.3)/10)``.

    Attributes:
        g_na: sodium conductance density (S/cm^2), NEURON ``gnabar_hh``; default 0.12.
        g_k: potassium conductance density (S/cm^2), ``gkbar_hh``; default 0.036.
        g_l: leak conductance density (S/cm^2), ``gl_hh``; default 0.0003.
        e_na: sodium reversal potential (mV), NEURON's default ``ena``; default 50.
        e_k: potassium reversal potential (mV), NEURON's default ``ek``; default -77.
        e_l: leak reversal potential (mV), ``el_hh``; default -54.3.
    """

    g_na: float | Array = 0.12
    g_k: float | Array = 0.036
    g_l: float | Array = 0.0003
    e_na: float | Array = 50.0
    e_k: float | Array = -77.0
    e_l: float | Array = -54.3

    state_names: ClassVar[tuple[str, ...]] = ("m", "h", "n")
    conductance_names: ClassVar[tuple[str, ...]] = ("g_na", "g_k", "g_l")
    rate_params: ClassVar[tuple[str, ...]] = ()  # rates depend on v and celsius only
    native_cpu: ClassVar[bool] = True  # `_hh_exp_euler`, `_hh_current`

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady states (dimensionless) and time constants (ms) of m, h, n at `v` (mV).

        Args:
            v: membrane voltage (mV).
            celsius: temperature (degC); rates scale by ``3**((celsius - 6.3)/10)``.

        Returns:
            ``(inf, tau)``: dicts keyed by "m", "h", "n"; ``tau`` in ms.
        """
        q10 = _hh_q10(celsius)
        rates = _hh_rates(jnp.asarray(v))
        inf = {k: a / (a + b) for k, (a, b) in rates.items()}
        tau = {k: 1.0 / (q10 * (a + b)) for k, (a, b) in rates.items()}
        return inf, tau

    def exp_euler(self, state: State, v, celsius, dt) -> State:
        """One exponential-Euler step of m, h, n over `dt` ms at fixed `v` (mV).

        Same update as `jaxdend.channels.exp_euler_gates` with ``exp(-dt q10 (a + b))`` in place
        of ``exp(-dt / tau)`` (equal up to round-off, two divisions fewer per gate).
        """
        v = jnp.asarray(v)
        m, h, n = jnp.broadcast_arrays(state["m"], state["h"], state["n"], v)[:3]
        v = jnp.broadcast_to(v, m.shape)
        dt = jnp.asarray(dt, dtype=v.dtype)
        out = dict(zip(("m", "h", "n"), _hh_exp_euler(m, h, n, v, _hh_q10(celsius), dt)))
        return out

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """Total Na + K + leak current density (mA/cm^2, outward positive) at `v` (mV).

        Args:
            state: gates "m", "h", "n" (dimensionless).
            v: membrane voltage (mV).

        Returns:
            Current density in mA/cm^2.
        """
        v = jnp.asarray(v)
        m, h, n = state["m"], state["h"], state["n"]
        i_na = self.g_na * m**3 * h * (v - self.e_na)
        i_k = self.g_k * n**4 * (v - self.e_k)
        i_l = self.g_l * (v - self.e_l)
        return i_na + i_k + i_l

    def linearize(self, state: State, v: Float[ArrayLike, " comp"]):
        """`current` (mA/cm^2), its slope d i/d v (S/cm^2) at `v` (mV) and the gates, in
        closed form with a hand-written reverse-mode derivative (one native loop on CPU;
        the gates come back through it so that their cotangents from the current and from
        the gate step add up in that loop)."""
        v = jnp.asarray(v)
        i, g, m, h, n = _hh_current(state["m"], state["h"], state["n"], v, self.g_na, self.g_k,
                                    self.g_l, self.e_na, self.e_k, self.e_l)
        return i, g, {"m": m, "h": h, "n": n}

    def exp_euler_linearize(self, state: State, v, celsius, dt):
        """`exp_euler` over `dt` ms at `v` (mV), then `linearize` at the new gates and the same
        `v`: (new gates, current density mA/cm^2, slope S/cm^2). Same values as the
        two calls; its reverse-mode derivative is one native loop on CPU instead of two (the
        cable solvers use it between the steps of a checkpointed unit)."""
        v = jnp.asarray(v)
        m, h, n = jnp.broadcast_arrays(state["m"], state["h"], state["n"], v)[:3]
        v = jnp.broadcast_to(v, m.shape)
        dt = jnp.asarray(dt, dtype=v.dtype)
        m1, h1, n1, i, g = _hh_step_current(m, h, n, v, _hh_q10(celsius), dt, self.g_na,
                                            self.g_k, self.g_l, self.e_na, self.e_k, self.e_l)
        return {"m": m1, "h": h1, "n": n1}, i, g


class Leak(AbstractChannel):
    """Passive leak current ``g (v - e)``, no state variables (NEURON's ``pas``).

    Attributes:
        g: conductance density (S/cm^2); default 1e-4 (the Pospischil et al. 2008 RS cell).
        e: reversal potential (mV); default -70.
    """

    g: float | Array = 1e-4
    e: float | Array = -70.0

    state_names: ClassVar[tuple[str, ...]] = ()
    conductance_names: ClassVar[tuple[str, ...]] = ("g",)

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """No gates: two empty dicts.

        Args:
            v: membrane voltage (mV), unused.
            celsius: temperature (degC), unused.

        Returns:
            ``({}, {})``.
        """
        return {}, {}

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """Leak current density (mA/cm^2, outward positive) at `v` (mV).

        Args:
            state: empty dict.
            v: membrane voltage (mV).

        Returns:
            ``g (v - e)`` in mA/cm^2.
        """
        return self.g * (jnp.asarray(v) - self.e)
