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

from ._base import AbstractChannel, State

# Below this |x/y| the Taylor branch replaces x/(exp(x/y) - 1) (the cut used by NEURON's hh.mod).
_TAYLOR_CUT = 1e-6


def vtrap(x: Float[ArrayLike, " comp"], y: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
    """``x / (exp(x/y) - 1)`` with its removable singularity at ``x = 0`` handled safely.

    Same function as NEURON's ``vtrap`` in hh.mod: for ``|x/y| < 1e-6`` it returns the Taylor
    expansion ``y (1 - x/y/2)``. Both branches of every `jnp.where` are kept finite (the "double
    where" trick), and for large positive ``x/y`` the form ``z e^-z / (1 - e^-z)`` avoids
    overflow, so values and gradients (w.r.t. ``x`` and ``y``) are finite for all finite inputs.

    Args:
        x: numerator, usually a voltage difference (mV).
        y: slope factor (mV), nonzero.

    Returns:
        The value in the units of ``x`` (mV); rates are this times a constant in 1/(ms mV).
    """
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    z = x / y
    small = jnp.abs(z) < _TAYLOR_CUT
    z_safe = jnp.where(small, 1.0, z)
    positive = z_safe > 0
    z_pos = jnp.where(positive, z_safe, 1.0)
    z_neg = jnp.where(positive, -1.0, z_safe)
    ratio_pos = z_pos * jnp.exp(-z_pos) / (-jnp.expm1(-z_pos))
    ratio_neg = z_neg / jnp.expm1(z_neg)
    ratio = jnp.where(positive, ratio_pos, ratio_neg)
    return y * jnp.where(small, 1.0 - z / 2.0, ratio)


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

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady states (dimensionless) and time constants (ms) of m, h, n at `v` (mV).

        Args:
            v: membrane voltage (mV).
            celsius: temperature (degC); rates scale by ``3**((celsius - 6.3)/10)``.

        Returns:
            ``(inf, tau)``: dicts keyed by "m", "h", "n"; ``tau`` in ms.
        """
        v = jnp.asarray(v)
        q10 = 3.0 ** ((jnp.asarray(celsius) - 6.3) / 10.0)
        rates = {
            "m": (0.1 * vtrap(-(v + 40.0), 10.0), 4.0 * jnp.exp(-(v + 65.0) / 18.0)),
            "h": (0.07 * jnp.exp(-(v + 65.0) / 20.0), 1.0 / (jnp.exp(-(v + 35.0) / 10.0) + 1.0)),
            "n": (0.01 * vtrap(-(v + 55.0), 10.0), 0.125 * jnp.exp(-(v + 65.0) / 80.0)),
        }
        inf = {k: a / (a + b) for k, (a, b) in rates.items()}
        tau = {k: 1.0 / (q10 * (a + b)) for k, (a, b) in rates.items()}
        return inf, tau

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
