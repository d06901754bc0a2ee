"""Stimuli: current clamps (step, ramp, sampled waveforms) and synaptic spike inputs.

Units: time ms, current nA (positive = depolarising, as NEURON's IClamp).
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .synapses import Input


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
        """Build from sample times (ms, strictly increasing) and currents (nA).

        The currents may be traced (e.g. swept or fitted inside jit/vmap); concrete values
        are checked here (shapes, order, NaN), traced currents at run time by `simulate`.
        """
        t_np = np.asarray(t, float)
        i_shape = i.shape if isinstance(i, jax.core.Tracer) else np.shape(i)
        if t_np.ndim != 1 or i_shape != t_np.shape or t_np.size < 2:
            raise ValueError(
                f"Sampled needs 1-D times and currents of equal length >= 2, got shapes "
                f"{t_np.shape} and {i_shape}."
            )
        if np.any(np.diff(t_np) <= 0):
            raise ValueError("Sampled times must be strictly increasing (ms).")
        traced = isinstance(i, jax.core.Tracer)
        if not np.all(np.isfinite(t_np)) or (
                not traced and not np.all(np.isfinite(np.asarray(i, float)))):
            raise ValueError("Sampled times and currents must be finite (no NaN/inf).")
        self.t = jnp.asarray(t_np)
        self.i = i if traced else jnp.asarray(i, dtype=float)

    def __call__(self, t):
        """Current (nA) at time `t` (ms)."""
        inside = (t >= self.t[0]) & (t <= self.t[-1])
        return jnp.where(inside, jnp.interp(t, self.t, self.i), 0.0)


class CurrentClamp(eqx.Module):
    """A waveform injected at one node (index into the cell's compartments)."""

    node: int = eqx.field(static=True)
    waveform: AbstractWaveform


class Stimulus(eqx.Module):
    """Current clamps and synaptic inputs; evaluates the injected current at every node.

    Attributes:
        clamps: current clamps.
        inputs: spike-train inputs (`jaxdend.synapses.Input`), one per synapse group.
    """

    clamps: tuple[CurrentClamp, ...] = ()
    inputs: tuple[Input, ...] = ()

    def spike_times(self, group: str):
        """(n_syn, max_spikes) spike times (ms) driving synapse group `group`, or None."""
        for inp in self.inputs:
            if inp.group == group:
                return inp.trains.times
        return None

    def current(self, t, n: int) -> Float[Array, " comp"]:
        """Injected current (nA) at every one of `n` nodes at time `t` (ms)."""
        out = jnp.zeros((n,))
        for c in self.clamps:
            out = out.at[c.node].add(c.waveform(t))
        return out


def as_stimulus(stim) -> Stimulus:
    """Accept None, a CurrentClamp or synaptic Input, a list mixing them, or a Stimulus."""
    if stim is None:
        return Stimulus(())
    if isinstance(stim, Stimulus):
        return stim
    if isinstance(stim, (CurrentClamp, Input)):
        stim = [stim]
    if isinstance(stim, Sequence):
        for s in stim:
            if not isinstance(s, (CurrentClamp, Input)):
                raise TypeError(
                    f"Expected CurrentClamp or jaxdend.synapses.Input objects, got "
                    f"{type(s).__name__}."
                )
        groups = [s.group for s in stim if isinstance(s, Input)]
        if len(set(groups)) != len(groups):
            raise ValueError(f"Two inputs drive the same synapse group: {groups}.")
        return Stimulus(
            tuple(s for s in stim if isinstance(s, CurrentClamp)),
            tuple(s for s in stim if isinstance(s, Input)),
        )
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
