"""Receptor kinetics of conductance synapses: double-exponential AMPA, NMDA, GABA_A, GABA_B.

Units: time constants ms, reversal potentials mV, [Mg2+] mM, Mg-block slope 1/mV.
A receptor describes one synapse's conductance time course after a release of size 1:
``g(t) = gmax * (exp(-t/tau_decay) - exp(-t/tau_rise)) * factor`` with `factor` chosen so
that the peak equals gmax (as NEURON's Exp2Syn).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

Scalar = Float[ArrayLike, ""] | Float[ArrayLike, " syn"]


def peak_factor(tau_rise, tau_decay) -> Array:
    """Normalisation of the double exponential so that its peak is 1 (time constants in ms)."""
    tau_rise, tau_decay = jnp.asarray(tau_rise), jnp.asarray(tau_decay)
    t_peak = tau_rise * tau_decay / (tau_decay - tau_rise) * jnp.log(tau_decay / tau_rise)
    return 1.0 / (jnp.exp(-t_peak / tau_decay) - jnp.exp(-t_peak / tau_rise))


class AbstractReceptor(eqx.Module):
    """A double-exponential conductance with a reversal potential.

    Attributes (in every concrete receptor):
        tau_rise: rise time constant, ms (< tau_decay).
        tau_decay: decay time constant, ms.
        e_rev: reversal potential, mV.
    """

    tau_rise: eqx.AbstractVar[Scalar]
    tau_decay: eqx.AbstractVar[Scalar]
    e_rev: eqx.AbstractVar[Scalar]

    def __check_init__(self):
        rise, decay = self.tau_rise, self.tau_decay
        if isinstance(rise, (int, float, np.ndarray)) and isinstance(
            decay, (int, float, np.ndarray)
        ):
            r, d = np.asarray(rise, float), np.asarray(decay, float)
            if np.any(~np.isfinite(r)) or np.any(~np.isfinite(d)):
                raise ValueError(f"{type(self).__name__}: time constants must be finite (ms).")
            if np.any(r <= 0) or np.any(d <= r):
                raise ValueError(
                    f"{type(self).__name__}: need 0 < tau_rise < tau_decay (ms), got "
                    f"tau_rise={rise}, tau_decay={decay}."
                )

    def block(self, v: Float[ArrayLike, " syn"]) -> Float[Array, " syn"]:
        """Fraction of the conductance available at voltage `v` (mV); 1 without a block."""
        return jnp.ones_like(jnp.asarray(v, dtype=float))

    def current(self, g: Float[ArrayLike, " syn"], v: Float[ArrayLike, " syn"]):
        """Synaptic current in nA (outward positive) for conductance `g` (nS) at `v` (mV)."""
        return 1e-3 * g * self.block(v) * (v - self.e_rev)


class AMPA(AbstractReceptor):
    """AMPA receptor: rise 0.2 ms, decay 1.7 ms, reversal 0 mV (defaults; REFERENCES.md)."""

    tau_rise: Scalar = 0.2
    tau_decay: Scalar = 1.7
    e_rev: Scalar = 0.0


class NMDA(AbstractReceptor):
    """NMDA receptor with the Jahr–Stevens (1990) Mg2+ block.

    ``B(v) = 1 / (1 + exp(-mg_slope * v) * mg / mg_k)``, v in mV, [Mg2+] in mM.

    Attributes:
        tau_rise: 0.29 ms. tau_decay: 43 ms. e_rev: 0 mV.
        mg: extracellular [Mg2+], mM (default 1).
        mg_slope: voltage sensitivity of the block, 1/mV (Jahr–Stevens 0.062; Blue Brain 0.08).
        mg_k: dissociation constant scale, mM (3.57).
    """

    tau_rise: Scalar = 0.29
    tau_decay: Scalar = 43.0
    e_rev: Scalar = 0.0
    mg: Scalar = 1.0
    mg_slope: Scalar = 0.062
    mg_k: Scalar = 3.57

    def block(self, v):
        """Unblocked fraction at `v` (mV)."""
        return 1.0 / (1.0 + jnp.exp(-self.mg_slope * v) * self.mg / self.mg_k)


class GABAA(AbstractReceptor):
    """GABA_A receptor: rise 0.5 ms, decay 5 ms, reversal -75 mV (typical cortical values)."""

    tau_rise: Scalar = 0.5
    tau_decay: Scalar = 5.0
    e_rev: Scalar = -75.0


class GABAB(AbstractReceptor):
    """GABA_B receptor as a slow double exponential: rise 30 ms, decay 150 ms, reversal -95 mV.

    A phenomenological stand-in for the G-protein cascade (typical cortical values).
    """

    tau_rise: Scalar = 30.0
    tau_decay: Scalar = 150.0
    e_rev: Scalar = -95.0
