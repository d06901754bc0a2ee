"""The channel interface: small final equinox modules with named parameters.

Units: voltage mV, time ms, conductance densities S/cm^2, current densities mA/cm^2
(outward positive), temperature degC.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

State = dict[str, Float[Array, " comp"]]


class AbstractChannel(eqx.Module):
    """A membrane mechanism.

    Parameters are attributes (floats, or arrays of shape (n_comp,) once inserted in a cell).
    Gating variables are described by their steady state and time constant, which the solvers
    integrate with exponential Euler (as NEURON's ``cnexp``); mechanisms whose states are not
    gates override `derivatives`.

    Class variables:
        state_names: names of the state variables, e.g. ("m", "h").
        conductance_names: names of the conductance-density parameters (S/cm^2), zeroed where
            the channel is not inserted.
        rate_params: names of the parameters the gate rates depend on besides voltage and
            temperature; ``()`` for none (then `jaxdend.solve.RateTable` can tabulate the
            gates), None when not declared (never tabulated).
        native_cpu: True if the state update and its reverse step are native code on CPU
            (`jaxdend.solve._native`), so recomputing a step is cheap there; it lets the
            gradient of a time loop recompute steps instead of storing them (see
            ``jaxdend.solve._simulate``).
    """

    state_names: ClassVar[tuple[str, ...]] = ()
    conductance_names: ClassVar[tuple[str, ...]] = ()
    rate_params: ClassVar[tuple[str, ...] | None] = None
    native_cpu: ClassVar[bool] = False

    def init_state(self, v: Float[ArrayLike, " comp"], celsius: float) -> State:
        """Steady state of every state variable at voltage `v` (mV) and temperature (degC)."""
        inf, _ = self.gates(v, celsius)
        return {k: inf[k] for k in self.state_names}

    def gates(self, v: Float[ArrayLike, " comp"], celsius: float) -> tuple[State, State]:
        """Steady states (dimensionless) and time constants (ms) of the gates at `v` (mV)."""
        raise NotImplementedError

    def derivatives(self, state: State, v: Float[ArrayLike, " comp"], celsius: float) -> State:
        """Time derivatives (1/ms) of the states at voltage `v` (mV)."""
        inf, tau = self.gates(v, celsius)
        return {k: (inf[k] - state[k]) / tau[k] for k in self.state_names}

    def exp_euler(self, state: State, v: Float[ArrayLike, " comp"], celsius: float, dt) -> State:
        """Gating states after one exponential-Euler step of `dt` ms at fixed voltage `v` (mV).

        ``x + (x_inf - x)(1 - exp(-dt/tau))`` from `gates` (NEURON's ``cnexp``). Channels may
        override it with an equivalent fused form; only meaningful for gate-type channels.
        """
        inf, tau = self.gates(v, celsius)
        return {k: inf[k] + (state[k] - inf[k]) * jnp.exp(-dt / tau[k]) for k in self.state_names}

    def current(self, state: State, v: Float[ArrayLike, " comp"]) -> Float[Array, " comp"]:
        """Membrane current density in mA/cm^2 (outward positive) at voltage `v` (mV)."""
        raise NotImplementedError

    def linearize(self, state: State, v: Float[ArrayLike, " comp"]):
        """`current` (mA/cm^2), its derivative with respect to `v` (S/cm^2) at `v` (mV) and
        the state, for the implicit voltage step, whose gate update reads the state returned
        here (the same values). By default one forward-mode derivative of `current`;
        channels may give it in closed form with derivatives of their own (`HH`)."""
        i, g = jax.jvp(lambda vv: self.current(state, vv), (v,), (jnp.ones_like(v),))
        return i, g, state


def exp_euler_gates(channel: AbstractChannel, state: State, v, celsius: float, dt) -> State:
    """Advance gating states by one exponential-Euler step of `dt` ms at fixed voltage `v` (mV)."""
    return channel.exp_euler(state, v, celsius, dt)


def q10_factor(q10, celsius, temp_ref) -> Array:
    """Rate factor ``q10**((celsius - temp_ref)/10)`` (dimensionless); temperatures in degC."""
    return jnp.asarray(q10) ** ((jnp.asarray(celsius) - temp_ref) / 10.0)
