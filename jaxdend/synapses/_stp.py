"""Tsodyks–Markram short-term plasticity (depression and facilitation).

Units: time constants and intervals in ms; U, u, x and release are dimensionless.

Event update at each presynaptic spike (Tsodyks, Pawelzik & Markram 1998):
``u <- u + U (1 - u)`` (u has decayed to 0 with tau_fac since the last spike),
``release = u x``, ``x <- x - release``; between spikes x recovers to 1 with tau_rec.
With ``tau_fac = 0`` the synapse only depresses (u = U at every spike).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

Scalar = Float[ArrayLike, ""] | Float[ArrayLike, " syn"]


class TsodyksMarkram(eqx.Module):
    """Tsodyks–Markram dynamics of a synapse's release.

    Attributes:
        U: utilisation of resources at the first spike (0 < U <= 1).
        tau_rec: recovery time constant of resources, ms (> 0).
        tau_fac: facilitation time constant, ms (>= 0; 0 = no facilitation).
    """

    U: Scalar = 0.5
    tau_rec: Scalar = 800.0
    tau_fac: Scalar = 0.0

    def __check_init__(self):
        vals = [self.U, self.tau_rec, self.tau_fac]
        if not all(isinstance(x, (int, float, np.ndarray)) for x in vals):
            return
        u, rec, fac = (np.asarray(x, float) for x in vals)
        if np.any(~np.isfinite(u)) or np.any(u <= 0) or np.any(u > 1):
            raise ValueError(f"TsodyksMarkram: need 0 < U <= 1, got U={self.U}.")
        if np.any(~np.isfinite(rec)) or np.any(rec <= 0):
            raise ValueError(f"TsodyksMarkram: need tau_rec > 0 ms, got {self.tau_rec}.")
        if np.any(~np.isfinite(fac)) or np.any(fac < 0):
            raise ValueError(f"TsodyksMarkram: need tau_fac >= 0 ms, got {self.tau_fac}.")

    def spike(self, u, x):
        """State update at a spike: returns (u after facilitation, x after release, release)."""
        u1 = u + self.U * (1.0 - u)
        r = u1 * x
        return u1, x - r, r

    def facilitation_decay(self, dt):
        """Factor by which u decays over `dt` ms: exp(-dt/tau_fac), 0 when tau_fac = 0."""
        fac = jnp.asarray(self.tau_fac)
        return jnp.where(fac > 0, jnp.exp(-dt / jnp.where(fac > 0, fac, 1.0)), 0.0)

    def relax(self, u, x, dt):
        """Exact relaxation over `dt` ms without spikes: u -> 0 (tau_fac), x -> 1 (tau_rec)."""
        return u * self.facilitation_decay(dt), 1.0 - (1.0 - x) * jnp.exp(-dt / self.tau_rec)

    def derivatives(self, u, x):
        """Time derivatives (1/ms) between spikes (tau_fac = 0 is treated as very fast)."""
        fac = jnp.asarray(self.tau_fac)
        du = jnp.where(fac > 0, -u / jnp.where(fac > 0, fac, 1.0), -u / 1e-3)
        return du, (1.0 - x) / self.tau_rec


def tm_release(stp: TsodyksMarkram, spike_times: Float[ArrayLike, " spk"]) -> Float[Array, " spk"]:
    """Release (u x, dimensionless) at every spike of one train, exactly (event by event).

    Args:
        stp: the Tsodyks–Markram parameters (scalars).
        spike_times: increasing spike times in ms.

    Returns:
        Release per spike; multiply by the synaptic weight for the PSC amplitude.
    """
    t = jnp.asarray(spike_times, dtype=float)
    gaps = jnp.concatenate([jnp.zeros(1), jnp.diff(t)])

    def body(carry, gap):
        u, x = carry
        u, x = stp.relax(u, x, gap)
        u, x, r = stp.spike(u, x)
        return (u, x), r

    zero = jnp.zeros(jnp.broadcast_shapes(*(jnp.shape(p) for p in (stp.U, stp.tau_rec))))
    _, r = jax.lax.scan(body, (zero, zero + 1.0), gaps)
    return r


def tm_steady_state(stp: TsodyksMarkram, interval: float) -> tuple[Array, Array, Array]:
    """Closed-form steady state of a regular train with spike interval `interval` (ms).

    Returns:
        ``(u_ss, x_ss, ratio)``: u just after the facilitation jump, x just before release,
        and the steady-state release relative to the first spike's (``u_ss x_ss / U``).
    """
    e_f = stp.facilitation_decay(interval)
    e_r = jnp.exp(-interval / jnp.asarray(stp.tau_rec))
    u_ss = stp.U / (1.0 - (1.0 - stp.U) * e_f)
    x_ss = (1.0 - e_r) / (1.0 - (1.0 - u_ss) * e_r)
    return u_ss, x_ss, u_ss * x_ss / stp.U
