"""The plasticity interface: rules see local signals and update weights and traces.

Units: time ms, voltage mV, path distance um, NMDA signal nS; weights are dimensionless
multipliers of the synaptic peak conductance (``g = w * gmax * ...``).

A rule is a small equinox module whose parameters are attributes (all differentiable). Its
state (eligibility traces, filtered voltages, calcium, ...) and the weights are ODE state,
integrated with the membrane: at every time step the solver delivers presynaptic spikes,
advances the voltage, then calls ``rule.update`` once with the step's `Signals`.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

#: Default somatic spike threshold: an upward crossing of this potential at the soma (mV);
#: set per rule with ``Cell.add_rule(..., spike_threshold=...)``.
SPIKE_THRESHOLD = -20.0

Scalar = Float[ArrayLike, ""]


class Signals(eqx.Module):
    """What a rule sees during one time step of length `dt` ms, per synapse it governs.

    Attributes:
        pre: 1 where a presynaptic spike arrived this step, else 0.
        post: 1 if the soma fired this step (upward crossing of the rule's spike threshold,
            default `SPIKE_THRESHOLD`), else 0.
        v: local membrane potential at each synapse's compartment after the step, mV.
        v_soma: somatic membrane potential after the step, mV.
        nmda: NMDA conductance times its Mg block at each synapse, nS (0 without NMDA).
        pair_i, pair_j: neighbour pairs (indices into this rule's synapses), i != j.
        pair_d: path distance along the dendrite between the synapses of each pair, um.
    """

    pre: Float[Array, " syn"]
    post: Float[Array, ""]
    v: Float[Array, " syn"]
    v_soma: Float[Array, ""]
    nmda: Float[Array, " syn"]
    pair_i: Array
    pair_j: Array
    pair_d: Float[Array, " pair"]


class AbstractRule(eqx.Module):
    """A long-term plasticity rule with weight bounds.

    Every rule has ``w_min`` and ``w_max`` (dimensionless) and ``bound``: "hard" (updates
    are clipped to [w_min, w_max], as in Song & Abbott 2000) or "soft" (potentiation scales
    with ``w_max - w`` and depression with ``w - w_min``, which never leaves the bounds).
    """

    w_min: eqx.AbstractVar[Scalar]
    w_max: eqx.AbstractVar[Scalar]
    bound: eqx.AbstractClassVar[str]

    #: path-distance cutoff (um) of the neighbour pairs the rule needs; 0 = none.
    def neighbour_cutoff(self) -> float:
        """Largest path distance (um) between synapses that the rule couples (0: none)."""
        return 0.0

    def init_state(self, n: int, v0=-65.0) -> dict[str, Array]:
        """Rule state (traces) of `n` synapses at rest, membrane potential `v0` mV."""
        return {}

    def update(self, state, w, sig: Signals, dt):
        """One step of `dt` ms: returns (new state, new weights)."""
        raise NotImplementedError

    def apply_bounds(self, w, dw_plus, dw_minus):
        """New weights from potentiation `dw_plus` >= 0 and depression `dw_minus` >= 0."""
        if self.bound == "soft":
            return w + dw_plus * (self.w_max - w) - dw_minus * (w - self.w_min)
        return jnp.clip(w + dw_plus - dw_minus, self.w_min, self.w_max)

    def check_weights(self, w0) -> None:
        """ValueError if concrete initial weights lie outside [w_min, w_max]."""
        try:
            w = np.asarray(w0, float)
            lo, hi = float(self.w_min), float(self.w_max)
        except Exception:  # traced values: nothing to check before run time
            return
        if lo >= hi:
            raise ValueError(f"{type(self).__name__}: need w_min < w_max, got {lo}, {hi}.")
        if np.any(~np.isfinite(w)) or np.any(w < lo) or np.any(w > hi):
            raise ValueError(
                f"Initial weights must lie within the rule's bounds [{lo:g}, {hi:g}] "
                f"(got [{np.nanmin(w):g}, {np.nanmax(w):g}]); change w0 or the bounds."
            )


def relax(x, target, dt, tau):
    """Exact relaxation of `x` towards a constant `target` over `dt` ms (time constant ms)."""
    return target + (x - target) * jnp.exp(-dt / tau)


def decay(x, dt, tau):
    """Exact exponential decay of a trace over `dt` ms with time constant `tau` ms."""
    return x * jnp.exp(-dt / tau)
