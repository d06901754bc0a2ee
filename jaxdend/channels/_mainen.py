"""Mainen & Sejnowski (1996) sodium (``na.mod``) and potassium (``kv.mod``) channels.

Mainen ZF, Sejnowski TJ (1996) "Influence of dendritic structure on firing pattern in model
neocortical neurons", Nature 382:363-366. The semantics follow the widely used na.mod/kv.mod
(revised 2002 by Hines & Scorcioni for ``cnexp``, trap fix 2007):

- ``trap0(v, th, a, q) = a (v - th) / (1 - exp(-(v - th)/q))`` (1/ms), singularity at ``v = th``
  handled safely;
- ``tadj = q10**((celsius - temp_ref)/10)`` divides the time constants, and, as in those files,
  also multiplies the conductance (``gna = tadj*gbar*m^3*h``). Because `current` receives no
  temperature, the conductance factor is evaluated at the attribute ``g_celsius`` (degC,
  default 37, the temperature the model was designed for); set it equal to the simulation's
  ``celsius`` to reproduce NEURON;
- Na gates see ``v + vshift`` (``vshift = -10`` mV in na.mod); h uses its own steady state
  ``1/(1 + exp((v - thinf)/qinf))``, not ``a/(a+b)``.

Densities: the mod files use pS/um^2; here they are S/cm^2 (1 pS/um^2 = 1e-4 S/cm^2), so the
na.mod default ``gbar = 1000 pS/um2`` is ``g_na = 0.1`` and the kv.mod default
``gbar = 5 pS/um2`` is ``g_k = 5e-4``.

Units: voltage mV, time ms, conductance density S/cm^2, current density mA/cm^2 (outward
positive), temperature degC.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractChannel, State, q10_factor
from ._hh import check_positive, vtrap


def trap0(v, th, a, q) -> Array:
    """``a (v - th) / (1 - exp(-(v - th)/q))`` (1/ms), finite with finite gradients at ``v = th``.

    Args:
        v: voltage (mV).
        th: half-activation voltage (mV).
        a: rate coefficient (1/(ms mV)).
        q: slope factor (mV), nonzero.

    Returns:
        The rate; ``a q`` at ``v = th``.
    """
    return a * vtrap(-(jnp.asarray(v) - th), q)



class MainenNa(AbstractChannel):
    """Fast sodium current ``tadj g_na m^3 h (v - e_na)`` of Mainen & Sejnowski 1996 (na.mod).

    With ``vm = v + vshift``: ``am = trap0(vm, tha, ra, qa)``, ``bm = trap0(-vm, -tha, rb, qa)``,
    ``ah = trap0(vm, thi1, rd, qi)``, ``bh = trap0(-vm, -thi2, rg, qi)``,
    ``m_inf = am/(am + bm)``, ``h_inf = 1/(1 + exp((vm - thinf)/qinf))``,
    ``tau = 1/(tadj (a + b))`` with ``tadj = q10**((celsius - temp_ref)/10)``.

    Attributes:
        g_na: conductance density at ``temp_ref`` (S/cm^2); default 0.1 (= 1000 pS/um^2).
        e_na: reversal potential (mV); default 50.
        vshift: shift added to ``v`` before every rate (mV); default -10.
        tha: m half-activation voltage (mV); default -35.
        qa: m slope (mV); default 9.
        ra: m opening rate coefficient (1/(ms mV)); default 0.182.
        rb: m closing rate coefficient (1/(ms mV)); default 0.124.
        thi1: h recovery rate half voltage (mV); default -50.
        thi2: h inactivation rate half voltage (mV); default -75.
        qi: h rate slope (mV); default 5.
        thinf: h steady-state half voltage (mV); default -65.
        qinf: h steady-state slope (mV); default 6.2.
        rg: h inactivation rate coefficient (1/(ms mV)); default 0.0091.
        rd: h recovery rate coefficient (1/(ms mV)); default 0.024.
        temp_ref: temperature of the kinetic data (degC); default 23.
        q10: temperature coefficient (dimensionless); default 2.3.
        g_celsius: temperature (degC) at which the ``tadj`` factor on the conductance is
            evaluated; default 37.
    """

    g_na: float | Array = 0.1
    e_na: float | Array = 50.0
    vshift: float | Array = -10.0
    tha: float | Array = -35.0
    qa: float | Array = 9.0
    ra: float | Array = 0.182
    rb: float | Array = 0.124
    thi1: float | Array = -50.0
    thi2: float | Array = -75.0
    qi: float | Array = 5.0
    thinf: float | Array = -65.0
    qinf: float | Array = 6.2
    rg: float | Array = 0.0091
    rd: float | Array = 0.024
    temp_ref: float | Array = 23.0
    q10: float | Array = 2.3
    g_celsius: float | Array = 37.0

    state_names: ClassVar[tuple[str, ...]] = ("m", "h")
    conductance_names: ClassVar[tuple[str, ...]] = ("g_na",)

    def __check_init__(self):
        check_positive(self, "q10", "qa", "qi", "qinf")

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady states (dimensionless) and time constants (ms) of m, h at `v` (mV).

        Args:
            v: membrane voltage (mV).
            celsius: temperature (degC).

        Returns:
            ``(inf, tau)``: dicts keyed by "m", "h"; ``tau`` in ms.
        """
        vm = jnp.asarray(v) + self.vshift
        tadj = q10_factor(self.q10, celsius, self.temp_ref)
        am = trap0(vm, self.tha, self.ra, self.qa)
        bm = trap0(-vm, -self.tha, self.rb, self.qa)
        ah = trap0(vm, self.thi1, self.rd, self.qi)
        bh = trap0(-vm, -self.thi2, self.rg, self.qi)
        inf = {"m": am / (am + bm), "h": 1.0 / (1.0 + jnp.exp((vm - self.thinf) / self.qinf))}
        tau = {"m": 1.0 / (tadj * (am + bm)), "h": 1.0 / (tadj * (ah + bh))}
        return inf, tau

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """Sodium current density (mA/cm^2, outward positive) at `v` (mV).

        Args:
            state: gates "m", "h" (dimensionless).
            v: membrane voltage (mV).

        Returns:
            ``tadj(g_celsius) g_na m^3 h (v - e_na)`` in mA/cm^2.
        """
        tadj = q10_factor(self.q10, self.g_celsius, self.temp_ref)
        g = tadj * self.g_na * state["m"] ** 3 * state["h"]
        return g * (jnp.asarray(v) - self.e_na)


class MainenKv(AbstractChannel):
    """Delayed-rectifier potassium current ``tadj g_k n (v - e_k)`` of Mainen 1996 (kv.mod).

    ``an = trap0(v, tha, ra, qa)``, ``bn = trap0(-v, -tha, rb, qa)``, ``n_inf = an/(an + bn)``,
    ``tau_n = 1/(tadj (an + bn))``; no voltage shift (kv.mod has none).

    Attributes:
        g_k: conductance density at ``temp_ref`` (S/cm^2); default 5e-4 (= 5 pS/um^2).
        e_k: reversal potential (mV); default -90.
        tha: half-activation voltage (mV); default 25.
        qa: slope (mV); default 9.
        ra: opening rate coefficient (1/(ms mV)); default 0.02.
        rb: closing rate coefficient (1/(ms mV)); default 0.002.
        temp_ref: temperature of the kinetic data (degC); default 23.
        q10: temperature coefficient (dimensionless); default 2.3.
        g_celsius: temperature (degC) at which the ``tadj`` factor on the conductance is
            evaluated; default 37.
    """

    g_k: float | Array = 5e-4
    e_k: float | Array = -90.0
    tha: float | Array = 25.0
    qa: float | Array = 9.0
    ra: float | Array = 0.02
    rb: float | Array = 0.002
    temp_ref: float | Array = 23.0
    q10: float | Array = 2.3
    g_celsius: float | Array = 37.0

    state_names: ClassVar[tuple[str, ...]] = ("n",)
    conductance_names: ClassVar[tuple[str, ...]] = ("g_k",)

    def __check_init__(self):
        check_positive(self, "q10", "qa")

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady state (dimensionless) and time constant (ms) of n at `v` (mV).

        Args:
            v: membrane voltage (mV).
            celsius: temperature (degC).

        Returns:
            ``(inf, tau)``: dicts keyed by "n"; ``tau`` in ms.
        """
        v = jnp.asarray(v)
        tadj = q10_factor(self.q10, celsius, self.temp_ref)
        a = trap0(v, self.tha, self.ra, self.qa)
        b = trap0(-v, -self.tha, self.rb, self.qa)
        return {"n": a / (a + b)}, {"n": 1.0 / (tadj * (a + b))}

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """Potassium current density (mA/cm^2, outward positive) at `v` (mV).

        Args:
            state: gate "n" (dimensionless).
            v: membrane voltage (mV).

        Returns:
            ``tadj(g_celsius) g_k n (v - e_k)`` in mA/cm^2.
        """
        tadj = q10_factor(self.q10, self.g_celsius, self.temp_ref)
        return tadj * self.g_k * state["n"] * (jnp.asarray(v) - self.e_k)
