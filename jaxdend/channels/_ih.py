"""Hyperpolarisation-activated cation current Ih (HCN channels) of layer-5 pyramidal cells.

Kinetics of Kole MHP, Hallermann S, Stuart GJ (2006) "Single Ih channels in pyramidal neuron
dendrites: properties, distribution, and impact on action potential output", J Neurosci
26:1677-1687, in the form used by the L5 pyramidal-cell model of Hay E, Hill S, Schürmann F,
Markram H, Segev I (2011) "Models of neocortical layer 5b pyramidal cells capturing a wide
range of dendritic and perisomatic active properties", PLoS Comput Biol 7:e1002107
(ModelDB 139653, ``Ih.mod``): one activation gate, no inactivation, reversal -45 mV, no
temperature factor.

Units: voltage mV, time ms, conductance density S/cm^2, current density mA/cm^2 (outward
positive).
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractChannel, State
from ._hh import vtrap

# rate constants of the gate (Kole et al. 2006 via Hay et al. 2011)
_A_RATE = 6.43e-3  # 1/(ms mV)
_A_HALF = -154.9  # mV: alpha's removable singularity (v + 154.9 = 0)
_A_SLOPE = 11.9  # mV
_B_RATE = 0.193  # 1/ms
_B_SLOPE = 33.1  # mV


class Ih(AbstractChannel):
    """Ih, ``g_h m (v - e_h)``, one gate with Kole et al. (2006) kinetics (Hay et al. 2011).

    Rates (1/ms, v in mV): ``alpha = 6.43e-3 (v + 154.9) / (exp((v + 154.9)/11.9) - 1)``
    (its 0/0 point at v = -154.9 mV handled by `vtrap`), ``beta = 0.193 exp(v / 33.1)``;
    ``m_inf = alpha / (alpha + beta)``, ``tau_m = 1 / (alpha + beta)`` (about 40-70 ms between
    -90 and -70 mV). The rates do not depend on temperature (as in the original model), so
    `jaxdend.solve.RateTable` can tabulate the gate.

    Attributes:
        g_h: maximal conductance density (S/cm^2); default 1e-4 (Hay et al.: ~8e-5 at the
            soma, rising along the apical dendrite).
        e_h: reversal potential (mV); default -45.
    """

    g_h: float | Array = 1e-4
    e_h: float | Array = -45.0

    state_names: ClassVar[tuple[str, ...]] = ("m",)
    conductance_names: ClassVar[tuple[str, ...]] = ("g_h",)
    rate_params: ClassVar[tuple[str, ...]] = ()  # rates depend on v only

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady state (dimensionless) and time constant (ms) of m at `v` (mV).

        Args:
            v: membrane voltage (mV).
            celsius: temperature (degC), unused (the kinetics have no temperature factor).

        Returns:
            ``(inf, tau)``: dicts keyed by "m"; ``tau`` in ms.
        """
        v = jnp.asarray(v)
        alpha = _A_RATE * vtrap(v - _A_HALF, _A_SLOPE)
        beta = _B_RATE * jnp.exp(v / _B_SLOPE)
        total = alpha + beta
        return {"m": alpha / total}, {"m": 1.0 / total}

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """Ih current density (mA/cm^2, outward positive) at `v` (mV).

        Args:
            state: gate "m" (dimensionless).
            v: membrane voltage (mV).

        Returns:
            ``g_h m (v - e_h)`` in mA/cm^2.
        """
        return self.g_h * state["m"] * (jnp.asarray(v) - self.e_h)
