"""Pospischil et al. (2008) regular-spiking cortical channels: Na, delayed rectifier K, M-type K.

Pospischil M, Toledo-Rodriguez M, Monier C, Piwkowska Z, Bal T, Fregnac Y, Markram H,
Destexhe A (2008) "Minimal Hodgkin-Huxley type models for different classes of cortical and
thalamic neurons", Biol Cybern 99:427-441. Na and Kd follow Traub & Miles (1991) kinetics in
the shifted voltage ``v2 = v - vt``.

Temperature: the published model is specified at 36 degC. Every channel here has ``temp_ref``
(degC, default 36) and ``q10`` and multiplies its rates by ``q10**((celsius - temp_ref)/10)``;
with the defaults the rates are exactly the published ones at ``celsius = 36``. The q10 defaults
(3 for Na and Kd, 2.3 for M) are those of the authors' NEURON files.

Units: voltage mV, time ms, conductance density S/cm^2, current density mA/cm^2 (outward
positive), temperature degC.
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._base import AbstractChannel, State, q10_factor
from ._hh import check_positive, vtrap


class PospischilNa(AbstractChannel):
    """Fast sodium current ``g_na m^3 h (v - e_na)`` with Traub kinetics (Pospischil 2008).

    With ``v2 = v - vt`` (mV) the rates (1/ms) are
    ``am = 0.32 (13 - v2)/(exp((13 - v2)/4) - 1)``, ``bm = 0.28 (v2 - 40)/(exp((v2 - 40)/5) - 1)``,
    ``ah = 0.128 exp((17 - v2)/18)``, ``bh = 4/(1 + exp((40 - v2)/5))``.

    Attributes:
        g_na: conductance density (S/cm^2); default 0.05.
        e_na: reversal potential (mV); default 50.
        vt: threshold shift VT of the Traub kinetics (mV); default -55.
        temp_ref: temperature (degC) at which the rates are unscaled; default 36.
        q10: rate temperature coefficient (dimensionless); default 3.
    """

    g_na: float | Array = 0.05
    e_na: float | Array = 50.0
    vt: float | Array = -55.0
    temp_ref: float | Array = 36.0
    q10: float | Array = 3.0

    state_names: ClassVar[tuple[str, ...]] = ("m", "h")
    conductance_names: ClassVar[tuple[str, ...]] = ("g_na",)

    def __check_init__(self):
        check_positive(self, "q10")

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady states (dimensionless) and time constants (ms) of m, h at `v` (mV).

        Args:
            v: membrane voltage (mV).
            celsius: temperature (degC).

        Returns:
            ``(inf, tau)``: dicts keyed by "m", "h"; ``tau`` in ms.
        """
        v2 = jnp.asarray(v) - self.vt
        tadj = q10_factor(self.q10, celsius, self.temp_ref)
        rates = {
            "m": (0.32 * vtrap(13.0 - v2, 4.0), 0.28 * vtrap(v2 - 40.0, 5.0)),
            "h": (0.128 * jnp.exp((17.0 - v2) / 18.0), 4.0 / (1.0 + jnp.exp((40.0 - v2) / 5.0))),
        }
        inf = {k: a / (a + b) for k, (a, b) in rates.items()}
        tau = {k: 1.0 / (tadj * (a + b)) for k, (a, b) in rates.items()}
        return inf, tau

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """Sodium current density (mA/cm^2, outward positive) at `v` (mV).

        Args:
            state: gates "m", "h" (dimensionless).
            v: membrane voltage (mV).

        Returns:
            ``g_na m^3 h (v - e_na)`` in mA/cm^2.
        """
        return self.g_na * state["m"] ** 3 * state["h"] * (jnp.asarray(v) - self.e_na)


class PospischilKd(AbstractChannel):
    """Delayed-rectifier potassium current ``g_k n^4 (v - e_k)`` (Traub kinetics, Pospischil 2008).

    With ``v2 = v - vt`` (mV): ``an = 0.032 (15 - v2)/(exp((15 - v2)/5) - 1)``,
    ``bn = 0.5 exp((10 - v2)/40)`` (1/ms).

    Attributes:
        g_k: conductance density (S/cm^2); default 0.005.
        e_k: reversal potential (mV); default -100.
        vt: threshold shift VT of the Traub kinetics (mV); default -55.
        temp_ref: temperature (degC) at which the rates are unscaled; default 36.
        q10: rate temperature coefficient (dimensionless); default 3.
    """

    g_k: float | Array = 0.005
    e_k: float | Array = -100.0
    vt: float | Array = -55.0
    temp_ref: float | Array = 36.0
    q10: float | Array = 3.0

    state_names: ClassVar[tuple[str, ...]] = ("n",)
    conductance_names: ClassVar[tuple[str, ...]] = ("g_k",)

    def __check_init__(self):
        check_positive(self, "q10")

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady state (dimensionless) and time constant (ms) of n at `v` (mV).

        Args:
            v: membrane voltage (mV).
            celsius: temperature (degC).

        Returns:
            ``(inf, tau)``: dicts keyed by "n"; ``tau`` in ms.
        """
        v2 = jnp.asarray(v) - self.vt
        tadj = q10_factor(self.q10, celsius, self.temp_ref)
        a = 0.032 * vtrap(15.0 - v2, 5.0)
        b = 0.5 * jnp.exp((10.0 - v2) / 40.0)
        return {"n": a / (a + b)}, {"n": 1.0 / (tadj * (a + b))}

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """Potassium current density (mA/cm^2, outward positive) at `v` (mV).

        Args:
            state: gate "n" (dimensionless).
            v: membrane voltage (mV).

        Returns:
            ``g_k n^4 (v - e_k)`` in mA/cm^2.
        """
        return self.g_k * state["n"] ** 4 * (jnp.asarray(v) - self.e_k)


class PospischilM(AbstractChannel):
    """Slow non-inactivating (M-type) potassium current ``g_k p (v - e_k)`` (Pospischil 2008).

    ``p_inf = 1/(1 + exp(-(v + 35)/10))`` and
    ``tau_p = tau_max / (3.3 exp((v + 35)/20) + exp(-(v + 35)/20))`` (ms), divided by the
    temperature factor.

    Attributes:
        g_k: conductance density (S/cm^2); default 7e-5.
        e_k: reversal potential (mV); default -100.
        tau_max: time-constant scale (ms); default 1000.
        temp_ref: temperature (degC) at which the rates are unscaled; default 36.
        q10: rate temperature coefficient (dimensionless); default 2.3.
    """

    g_k: float | Array = 7e-5
    e_k: float | Array = -100.0
    tau_max: float | Array = 1000.0
    temp_ref: float | Array = 36.0
    q10: float | Array = 2.3

    state_names: ClassVar[tuple[str, ...]] = ("p",)
    conductance_names: ClassVar[tuple[str, ...]] = ("g_k",)

    def __check_init__(self):
        check_positive(self, "q10", "tau_max")

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady state (dimensionless) and time constant (ms) of p at `v` (mV).

        Args:
            v: membrane voltage (mV).
            celsius: temperature (degC).

        Returns:
            ``(inf, tau)``: dicts keyed by "p"; ``tau`` in ms.
        """
        x = jnp.asarray(v) + 35.0
        tadj = q10_factor(self.q10, celsius, self.temp_ref)
        p_inf = 1.0 / (1.0 + jnp.exp(-x / 10.0))
        tau_p = self.tau_max / (3.3 * jnp.exp(x / 20.0) + jnp.exp(-x / 20.0)) / tadj
        return {"p": p_inf}, {"p": tau_p}

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """M-current density (mA/cm^2, outward positive) at `v` (mV).

        Args:
            state: gate "p" (dimensionless).
            v: membrane voltage (mV).

        Returns:
            ``g_k p (v - e_k)`` in mA/cm^2.
        """
        return self.g_k * state["p"] * (jnp.asarray(v) - self.e_k)
