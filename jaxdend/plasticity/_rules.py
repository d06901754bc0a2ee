"""Long-term plasticity rules: basal Hebbian (STDP) and apical cooperative.

Units: time constants ms, distances um, amplitudes per event (dimensionless weight change),
voltages mV.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._base import AbstractRule, Scalar, Signals, decay


def _check_positive(rule, *names):
    for name in names:
        val = getattr(rule, name)
        try:
            arr = np.asarray(val, float)
        except Exception:
            continue
        if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{type(rule).__name__}: {name} must be > 0, got {val}.")


class BasalHebbian(AbstractRule):
    """Spike-timing-dependent Hebbian rule gated by the cell's own spikes (basal synapses).

    Pair form (Song, Miller & Abbott 2000) with all-to-all traces, plus optional triplet
    terms (Pfister & Gerstner 2006) when ``a3_plus`` or ``a3_minus`` are non-zero:
    at a somatic spike ``w += (a_plus + a3_plus * y2) * x1`` and at a presynaptic spike
    ``w -= (a_minus + a3_minus * x2) * y1``; x1, x2 are presynaptic traces (tau_plus, tau_x),
    y1, y2 postsynaptic traces (tau_minus, tau_y); traces jump by 1 after their own spike.
    Potentiation needs somatic spikes (or bAPs that cross threshold at the soma), so blocking
    them removes it — the basal finding of Wright, Hedrick & Komiyama (2025).

    Attributes:
        a_plus: pair potentiation per post spike, weight units (0.01: 1 % of w_max).
        a_minus: pair depression per pre spike (0.0105 = 1.05 a_plus).
        tau_plus, tau_minus: pair trace time constants, ms (20, 20).
        a3_plus, a3_minus: triplet amplitudes (0: pair rule).
        tau_x, tau_y: slow pre and post trace time constants, ms (101, 125).
        w_min, w_max: weight bounds. bound: "hard" or "soft" (class variable of the form).
    """

    a_plus: Scalar = 0.01
    a_minus: Scalar = 0.0105
    tau_plus: Scalar = 20.0
    tau_minus: Scalar = 20.0
    a3_plus: Scalar = 0.0
    a3_minus: Scalar = 0.0
    tau_x: Scalar = 101.0
    tau_y: Scalar = 125.0
    w_min: Scalar = 0.0
    w_max: Scalar = 2.0
    bound: ClassVar[str] = "hard"

    def __check_init__(self):
        _check_positive(self, "tau_plus", "tau_minus", "tau_x", "tau_y")

    def init_state(self, n):
        """Pre traces x1, x2 (per synapse) and post traces y1, y2 (per cell) at 0."""
        z = jnp.zeros((n,))
        return {"x1": z, "x2": z, "y1": jnp.zeros(()), "y2": jnp.zeros(())}

    def update(self, state, w, sig: Signals, dt):
        """Traces decay over dt, then pre and post spikes of this step act (pre first)."""
        x1 = decay(state["x1"], dt, self.tau_plus)
        x2 = decay(state["x2"], dt, self.tau_x)
        y1 = decay(state["y1"], dt, self.tau_minus)
        y2 = decay(state["y2"], dt, self.tau_y)
        dep = sig.pre * (self.a_minus + self.a3_minus * x2) * y1
        x1, x2 = x1 + sig.pre, x2 + sig.pre
        pot = sig.post * (self.a_plus + self.a3_plus * y2) * x1
        y1, y2 = y1 + sig.post, y2 + sig.post
        return {"x1": x1, "x2": x2, "y1": y1, "y2": y2}, self.apply_bounds(w, pot, dep)


class SoftBasalHebbian(BasalHebbian):
    """`BasalHebbian` with soft bounds (multiplicative: changes scale with the distance to
    the bound)."""

    bound: ClassVar[str] = "soft"


class ApicalCooperative(AbstractRule):
    """Cooperative rule of apical synapses: potentiation from co-activity with neighbours.

    Each synapse keeps a presynaptic trace x (jumps by 1 at its spikes, decays with
    `tau_coop`). Neighbour input of synapse i is ``c_i = sum_j K(d_ij) x_j`` over the other
    synapses j of the rule within `cutoff` um of path distance, with
    ``K(d) = exp(-d / length)``. At a presynaptic spike of i,
    ``w_i += a_coop * gate_i * c_i`` and ``w_i -= a_dep`` (activity without neighbours
    depresses slightly); at a neighbour's spike the same potentiation reaches i through its
    own trace (``a_coop * gate_i * x_i * sum_j K(d_ij) pre_j``). The optional NMDA gate
    ``gate_i = sigmoid((nmda_i - nmda_half) / nmda_slope)`` is 1 when ``nmda_gate`` is off.
    No somatic signal enters: somatic spikes do not matter (Wright, Hedrick & Komiyama 2025;
    Harvey & Svoboda 2007: neighbourhood ~10 um).

    Attributes:
        a_coop: potentiation per unit co-activity, weight units (0.02).
        a_dep: depression per presynaptic spike, weight units (0.001).
        tau_coop: co-activity window, ms (20).
        length: kernel length along the dendrite, um (10).
        cutoff: largest coupled distance, um (static; default 4 x the initial length).
        nmda_gate: use the local NMDA signal as a gate (static).
        nmda_half: NMDA signal at half gate, nS. nmda_slope: its width, nS.
        w_min, w_max: weight bounds; hard bounds.
    """

    a_coop: Scalar = 0.02
    a_dep: Scalar = 0.001
    tau_coop: Scalar = 20.0
    length: Scalar = 10.0
    cutoff: float = eqx.field(static=True, default=None)
    nmda_gate: bool = eqx.field(static=True, default=False)
    nmda_half: Scalar = 0.5
    nmda_slope: Scalar = 0.1
    w_min: Scalar = 0.0
    w_max: Scalar = 2.0
    bound: ClassVar[str] = "hard"

    def __post_init__(self):
        if self.cutoff is None:
            try:
                self.cutoff = 4.0 * float(self.length)
            except Exception:
                self.cutoff = 40.0

    def __check_init__(self):
        _check_positive(self, "length", "tau_coop", "nmda_slope")
        if not self.cutoff > 0:
            raise ValueError(f"ApicalCooperative: cutoff must be > 0 um, got {self.cutoff}.")

    def neighbour_cutoff(self) -> float:
        """Path-distance cutoff of the co-activity kernel, um."""
        return float(self.cutoff)

    def init_state(self, n):
        """Presynaptic traces at 0."""
        return {"x": jnp.zeros((n,))}

    def kernel(self, d):
        """Co-activity kernel at path distance `d` um (dimensionless, 1 at d = 0)."""
        return jnp.exp(-d / self.length)

    def update(self, state, w, sig: Signals, dt):
        """Trace decay, then potentiation from co-active neighbours and spike depression."""
        n = w.shape[0]
        x = decay(state["x"], dt, self.tau_coop)
        k = self.kernel(sig.pair_d)
        c = jax.ops.segment_sum(k * x[sig.pair_j], sig.pair_i, num_segments=n)
        c_now = jax.ops.segment_sum(k * sig.pre[sig.pair_j], sig.pair_i, num_segments=n)
        gate = 1.0
        if self.nmda_gate:
            gate = jax.nn.sigmoid((sig.nmda - self.nmda_half) / self.nmda_slope)
        pot = self.a_coop * gate * (sig.pre * c + x * c_now)
        dep = self.a_dep * sig.pre
        return {"x": x + sig.pre}, self.apply_bounds(w, pot, dep)
