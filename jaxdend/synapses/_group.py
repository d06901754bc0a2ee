"""Groups of point synapses on a cell and gap junctions between compartments.

Units: conductances nS, currents nA (outward positive), voltages mV, times ms.
A group holds synapses of one receptor type; its state is one entry per synapse, and its
currents are accumulated onto compartments with a segment sum (thousands are cheap).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._receptors import AbstractReceptor, peak_factor
from ._stp import TsodyksMarkram

SynState = dict[str, Float[Array, " syn"]]


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


class Synapses(eqx.Module):
    """`n` synapses of one receptor type at given compartments, with optional STP.

    The conductance of synapse k is ``gmax[k] * (B - A) * factor`` where A and B jump by the
    release (1 without STP) at every presynaptic spike and decay with tau_rise and tau_decay.

    Attributes:
        name: group name used for inputs and recordings (e.g. "exc").
        receptor: kinetics (`AMPA`, `NMDA`, `GABAA`, `GABAB`).
        node: compartment index of every synapse (static).
        gmax: peak conductance per synapse for a release of 1, nS.
        stp: `TsodyksMarkram` parameters or None (every spike releases 1).
        w_init: initial weights (dimensionless) when a plasticity rule sets the weights of
            this group, else None (weight 1, not state).
    """

    name: str = eqx.field(static=True)
    receptor: AbstractReceptor
    node: tuple[int, ...] = eqx.field(static=True)
    gmax: Float[Array, " syn"]
    stp: TsodyksMarkram | None = None
    w_init: Float[Array, " syn"] | None = None

    def __check_init__(self):
        if _is_concrete(self.gmax):
            g = np.asarray(self.gmax)
            if g.shape != (len(self.node),):
                raise ValueError(
                    f"Synapses {self.name!r}: gmax has shape {g.shape}, expected "
                    f"({len(self.node)},) (one value in nS per synapse) or a scalar."
                )
            if np.any(~np.isfinite(g)) or np.any(g < 0):
                raise ValueError(
                    f"Synapses {self.name!r}: gmax must be finite and >= 0 nS (got min "
                    f"{np.nanmin(g) if g.size else 0:g}); for inhibition use an inhibitory "
                    "receptor (GABAA/GABAB), not a negative conductance."
                )

    @property
    def n(self) -> int:
        """Number of synapses."""
        return len(self.node)

    @property
    def recordable(self) -> tuple[str, ...]:
        """States a probe can record: "g" (conductance, nS) and every state but "next"."""
        return ("g",) + tuple(s for s in self.state_names if s != "next")

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the per-synapse state variables."""
        return (("A", "B", "next") + (("u", "x") if self.stp is not None else ())
                + (("w",) if self.w_init is not None else ()))

    def init_state(self) -> SynState:
        """Resting state: no conductance, full resources, next spike = the first."""
        z = jnp.zeros((self.n,))
        state = {"A": z, "B": z, "next": z}
        if self.stp is not None:
            state.update(u=z, x=z + 1.0)
        if self.w_init is not None:
            state["w"] = jnp.asarray(self.w_init, dtype=z.dtype)
        return state

    def conductance(self, state: SynState) -> Float[Array, " syn"]:
        """Conductance of every synapse, nS (times its weight when plastic)."""
        r = self.receptor
        g = self.gmax * peak_factor(r.tau_rise, r.tau_decay) * (state["B"] - state["A"])
        return g * state["w"] if "w" in state else g

    def current(self, state: SynState, v_syn) -> Float[Array, " syn"]:
        """Current of every synapse in nA (outward positive) at its compartment's `v_syn` (mV)."""
        return self.receptor.current(self.conductance(state), v_syn)

    def deliver(self, state: SynState, times, t_deliver) -> SynState:
        """Deliver the next spike of every synapse whose time is <= `t_deliver` (ms).

        At most one spike per synapse per call (per time step); `times` is the group's
        (n, max_spikes) spike-time array or None.
        """
        if times is None:
            return state
        width = times.shape[1]
        nxt = jax.lax.stop_gradient(state["next"])
        k = jnp.clip(nxt.astype(jnp.int32), 0, width - 1)
        t_next = jnp.take_along_axis(times, k[:, None], axis=1)[:, 0]
        fire = (nxt < width) & (t_next <= t_deliver)
        out = dict(state, next=nxt + fire)
        if self.stp is not None:
            u1, x1, rel = self.stp.spike(state["u"], state["x"])
            out["u"] = jnp.where(fire, u1, state["u"])
            out["x"] = jnp.where(fire, x1, state["x"])
            jump = jnp.where(fire, rel, 0.0)
        else:
            jump = fire.astype(state["A"].dtype)
        out["A"] = state["A"] + jump
        out["B"] = state["B"] + jump
        return out

    def relax(self, state: SynState, dt) -> SynState:
        """Exact decay of the kinetics (and STP recovery) over `dt` ms without spikes."""
        r = self.receptor
        out = dict(state, A=state["A"] * jnp.exp(-dt / r.tau_rise),
                   B=state["B"] * jnp.exp(-dt / r.tau_decay))
        if self.stp is not None:
            out["u"], out["x"] = self.stp.relax(state["u"], state["x"], dt)
        return out

    def derivatives(self, state: SynState) -> SynState:
        """Time derivatives between spikes (1/ms)."""
        r = self.receptor
        out = {"A": -state["A"] / r.tau_rise, "B": -state["B"] / r.tau_decay,
               "next": jnp.zeros_like(state["next"])}
        if self.stp is not None:
            out["u"], out["x"] = self.stp.derivatives(state["u"], state["x"])
        if "w" in state:
            out["w"] = jnp.zeros_like(state["w"])  # weights change at step ends (rules)
        return out


class GapJunctions(eqx.Module):
    """Ohmic gap junctions between pairs of compartments (possibly of two combined cells).

    Current into compartment a: ``g (v_b - v_a)``; the solvers treat the partner's voltage
    explicitly and the own voltage implicitly (as NEURON's gap junctions with a POINTER).

    Attributes:
        a, b: compartment indices of the two ends of every junction (static).
        g: conductance of every junction, nS.
    """

    a: tuple[int, ...] = eqx.field(static=True)
    b: tuple[int, ...] = eqx.field(static=True)
    g: Float[Array, " gap"]

    def __check_init__(self):
        if len(self.a) != len(self.b):
            raise ValueError("GapJunctions: a and b need the same number of compartments.")
        if _is_concrete(self.g):
            g = np.asarray(self.g)
            if g.shape != (len(self.a),):
                raise ValueError(f"GapJunctions: g has shape {g.shape}, expected ({len(self.a)},).")
            if np.any(~np.isfinite(g)) or np.any(g < 0):
                raise ValueError("GapJunctions: conductances must be finite and >= 0 nS.")

    def current(self, v) -> tuple[Array, Array]:
        """Outward current (nA) and its slope (uS) at every node of `v` (mV, all nodes)."""
        a, b = np.asarray(self.a, dtype=np.int64), np.asarray(self.b, dtype=np.int64)
        ends = np.concatenate([a, b])  # each junction acts on both of its ends
        g_us = jnp.concatenate([self.g, self.g]) * 1e-3
        n = v.shape[0]
        i = jax.ops.segment_sum(g_us * (v[ends] - v[np.concatenate([b, a])]), ends,
                                num_segments=n)
        slope = jax.ops.segment_sum(g_us, ends, num_segments=n)
        return i, slope
