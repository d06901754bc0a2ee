"""Presynaptic spike trains: recorded times, Poisson and inhomogeneous-Poisson generators.

Units: times ms, rates Hz (spikes per second).
Trains are stored as a padded array ``times[synapse, k]`` (increasing along k, padded with
+inf), so a batch of trains has a fixed shape and can be vmapped or generated inside jit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class SpikeTrains(eqx.Module):
    """Spike times of `n` presynaptic inputs, one row per synapse, padded with +inf.

    Attributes:
        times: (n_syn, max_spikes) spike times in ms, increasing along each row, +inf padding.
    """

    times: Float[Array, "syn spk"]

    def __init__(self, times):
        """Wrap a (n_syn, max_spikes) array of spike times in ms (+inf = no spike)."""
        arr = times if isinstance(times, jax.core.Tracer) else jnp.asarray(times, dtype=float)
        if arr.ndim != 2:
            raise ValueError(
                f"SpikeTrains needs a 2-D array (synapse x spike), got shape {arr.shape}; use "
                "SpikeTrains.from_list([...]) for one list of times per synapse."
            )
        self.times = arr

    @classmethod
    def from_list(cls, trains: Sequence[Sequence[float]]) -> SpikeTrains:
        """Trains from one sequence of spike times (ms) per synapse (e.g. recorded times)."""
        rows = [np.asarray(t, dtype=float).ravel() for t in trains]
        if not rows:
            raise ValueError("from_list needs at least one train (one per synapse).")
        width = max(1, max(r.size for r in rows))
        out = np.full((len(rows), width), np.inf)
        for i, r in enumerate(rows):
            out[i, : r.size] = r
        return cls(out)

    @property
    def n(self) -> int:
        """Number of synapses (rows)."""
        return int(self.times.shape[0])

    def count(self) -> Array:
        """Number of spikes of every train."""
        return jnp.sum(jnp.isfinite(self.times), axis=1)

    def check(self, t0: float = -np.inf, t1: float = np.inf) -> None:
        """Raise ValueError for NaN times, trains out of order, or spikes outside [t0, t1] ms.

        Only concrete arrays are checked (inside jit, `simulate` checks at run time).
        """
        if isinstance(self.times, jax.core.Tracer):
            return
        t = np.asarray(self.times)
        if np.isnan(t).any():
            i, k = np.argwhere(np.isnan(t))[0]
            raise ValueError(f"Spike time of synapse {i}, spike {k} is NaN; give times in ms.")
        if (t == -np.inf).any():
            raise ValueError("Spike times must not be -inf (use +inf only as padding).")
        unordered = t[:, 1:] < t[:, :-1]
        if unordered.any():
            i = int(np.argwhere(unordered)[0, 0])
            raise ValueError(
                f"Spike times of synapse {i} are not in increasing order; sort each train "
                "(np.sort) before building SpikeTrains."
            )
        finite = t[np.isfinite(t)]
        if finite.size and (finite.min() < t0 or finite.max() > t1):
            raise ValueError(
                f"Spike times span [{finite.min():g}, {finite.max():g}] ms but the simulation "
                f"runs from {t0:g} to {t1:g} ms; drop or shift the spikes outside it."
            )


def _max_spikes(mean: float) -> int:
    """Room for a Poisson count with the given mean (fails with probability < 1e-12)."""
    return int(math.ceil(mean + 8.0 * math.sqrt(mean) + 10.0))


def poisson(key, rate, n: int, t1: float, *, t0: float = 0.0, max_spikes: int | None = None):
    """Homogeneous Poisson spike trains.

    Args:
        key: a JAX PRNG key.
        rate: firing rate in Hz, scalar or (n,) (concrete unless `max_spikes` is given).
        n: number of trains (synapses).
        t1: end time, ms (spikes lie in [t0, t1)).
        t0: start time, ms.
        max_spikes: columns of the padded array (default: enough for the largest rate).

    Returns:
        `SpikeTrains` of shape (n, max_spikes).
    """
    rate_ms = jnp.broadcast_to(jnp.asarray(rate, dtype=float) / 1000.0, (n,))
    if max_spikes is None:
        max_spikes = _max_spikes(float(np.max(np.asarray(rate_ms))) * (t1 - t0))
    isi = jax.random.exponential(key, (n, max_spikes)) / rate_ms[:, None]
    times = t0 + jnp.cumsum(isi, axis=1)
    times = jnp.where(times < t1, times, jnp.inf)
    if not isinstance(times, jax.core.Tracer) and np.isfinite(np.asarray(times[:, -1])).any():
        raise ValueError(f"max_spikes={max_spikes} is too small for these rates; raise it.")
    return SpikeTrains(times)


def inhomogeneous_poisson(
    key,
    rate_fn: Callable[[Array], Array],
    n: int,
    t1: float,
    rate_max: float,
    *,
    t0: float = 0.0,
    max_spikes: int | None = None,
) -> SpikeTrains:
    """Inhomogeneous Poisson trains by thinning (Lewis & Shedler).

    Args:
        key: a JAX PRNG key.
        rate_fn: rate in Hz as a function of time in ms; takes an (n, k) array of times and
            returns rates of the same shape (or broadcastable, e.g. per-synapse rates).
        n: number of trains.
        t1: end time, ms.
        rate_max: an upper bound of rate_fn on [t0, t1], Hz.
        t0: start time, ms.
        max_spikes: columns of the padded array (default from `rate_max`).

    Returns:
        `SpikeTrains` of shape (n, max_spikes).
    """
    k_times, k_keep = jax.random.split(key)
    base = poisson(k_times, rate_max, n, t1, t0=t0, max_spikes=max_spikes)
    t = base.times
    rate = jnp.broadcast_to(rate_fn(jnp.where(jnp.isfinite(t), t, t0)), t.shape)
    if not isinstance(rate, jax.core.Tracer):
        r = np.asarray(rate)[np.isfinite(np.asarray(t))]
        if r.size and (r.max() > rate_max * (1 + 1e-9) or r.min() < 0):
            raise ValueError(
                f"rate_fn must lie in [0, rate_max={rate_max}] Hz on [t0, t1]; got "
                f"[{r.min():g}, {r.max():g}]."
            )
    keep = jax.random.uniform(k_keep, t.shape) * rate_max < rate
    return SpikeTrains(jnp.sort(jnp.where(keep, t, jnp.inf), axis=1))


class Input(eqx.Module):
    """Spike trains driving the synapse group `group` (one train per synapse of the group)."""

    group: str = eqx.field(static=True)
    trains: SpikeTrains

    def __init__(self, group: str, trains):
        """Drive synapse group `group` with `trains` (SpikeTrains or a list of times in ms)."""
        if not isinstance(trains, SpikeTrains):
            trains = SpikeTrains.from_list(trains)
        self.group = str(group)
        self.trains = trains
