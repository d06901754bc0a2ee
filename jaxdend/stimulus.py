"""Current-clamp stimuli: step, ramp and sampled waveforms injected at nodes.

Units: time ms, current nA (positive = depolarising, as NEURON's IClamp).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class AbstractWaveform(eqx.Module):
    """A current waveform i(t) in nA, t in ms."""

    def __call__(self, t):
        """Current (nA) at time `t` (ms)."""
        raise NotImplementedError


class Step(AbstractWaveform):
    """A current step of `amp` nA from `delay` ms for `dur` ms (NEURON's IClamp)."""

    amp: Float[Array, ""] | float
    delay: float = 0.0
    dur: float = 1e9

    def __call__(self, t):
        """Current (nA) at time `t` (ms)."""
        on = (t >= self.delay) & (t < self.delay + self.dur)
        return jnp.where(on, self.amp, 0.0)


class Ramp(AbstractWaveform):
    """A linear ramp from `amp0` to `amp1` nA between `delay` and `delay + dur` ms, 0 elsewhere."""

    amp0: Float[Array, ""] | float
    amp1: Float[Array, ""] | float
    delay: float = 0.0
    dur: float = 100.0

    def __call__(self, t):
        """Current (nA) at time `t` (ms)."""
        s = (t - self.delay) / self.dur
        on = (s >= 0) & (s < 1)
        return jnp.where(on, self.amp0 + (self.amp1 - self.amp0) * s, 0.0)


class Sampled(AbstractWaveform):
    """Any sampled waveform (e.g. a recorded current), linearly interpolated, 0 outside.

    Attributes:
        t: sample times in ms, strictly increasing.
        i: currents in nA at those times.
    """

    t: Float[Array, " samples"]
    i: Float[Array, " samples"]

    def __init__(self, t, i):
        """Build from sample times (ms, strictly increasing) and currents (nA)."""
        t_np, i_np = np.asarray(t, float), np.asarray(i, float)
        if t_np.ndim != 1 or t_np.shape != i_np.shape or t_np.size < 2:
            raise ValueError(
                f"Sampled needs 1-D times and currents of equal length >= 2, got shapes "
                f"{t_np.shape} and {i_np.shape}."
            )
        if np.any(np.diff(t_np) <= 0):
            raise ValueError("Sampled times must be strictly increasing (ms).")
        if not (np.all(np.isfinite(t_np)) and np.all(np.isfinite(i_np))):
            raise ValueError("Sampled times and currents must be finite (no NaN/inf).")
        self.t, self.i = jnp.asarray(t_np), jnp.asarray(i)

    def __call__(self, t):
        """Current (nA) at time `t` (ms)."""
        inside = (t >= self.t[0]) & (t <= self.t[-1])
        return jnp.where(inside, jnp.interp(t, self.t, self.i), 0.0)


class CurrentClamp(eqx.Module):
    """A waveform injected at one node (index into the cell's compartments)."""

    node: int = eqx.field(static=True)
    waveform: AbstractWaveform


class Stimulus(eqx.Module):
    """A set of current clamps; evaluates the injected current at every node."""

    clamps: tuple[CurrentClamp, ...] = ()

    def current(self, t, n: int) -> Float[Array, " comp"]:
        """Injected current (nA) at every one of `n` nodes at time `t` (ms)."""
        out = jnp.zeros((n,))
        for c in self.clamps:
            out = out.at[c.node].add(c.waveform(t))
        return out


def as_stimulus(stim) -> Stimulus:
    """Accept None, a CurrentClamp, a list of them, or a Stimulus."""
    if stim is None:
        return Stimulus(())
    if isinstance(stim, Stimulus):
        return stim
    if isinstance(stim, CurrentClamp):
        return Stimulus((stim,))
    if isinstance(stim, Sequence):
        for s in stim:
            if not isinstance(s, CurrentClamp):
                raise TypeError(f"Expected CurrentClamp objects, got {type(s).__name__}.")
        return Stimulus(tuple(stim))
    raise TypeError(f"Cannot use {type(stim).__name__} as a stimulus.")


def step(node: int, amp, delay: float = 0.0, dur: float = 1e9) -> CurrentClamp:
    """Step current of `amp` nA at `node` from `delay` ms for `dur` ms."""
    return CurrentClamp(int(node), Step(amp, delay, dur))


def ramp(node: int, amp0, amp1, delay: float = 0.0, dur: float = 100.0) -> CurrentClamp:
    """Ramp from `amp0` to `amp1` nA at `node` between `delay` and `delay + dur` ms."""
    return CurrentClamp(int(node), Ramp(amp0, amp1, delay, dur))


def sampled(node: int, t, i) -> CurrentClamp:
    """Sampled current (times in ms, currents in nA) injected at `node`."""
    return CurrentClamp(int(node), Sampled(t, i))
