"""Lookup tables for the gate update: NEURON's ``TABLE`` / ``usetable`` as an opt-in speed-up.

One exponential-Euler step of a gate over a fixed ``dt`` at a fixed voltage is affine in the
gate, ``x' = c(v) + e(v) x`` (``e = exp(-dt/tau)``, ``c = x_inf (1 - e)``). A `RateTable` samples
``c`` and ``e`` of every gate on a voltage grid once per run (from the channel's own
``exp_euler``, so tabulated and exact steps share one definition) and interpolates them
linearly at every step: one gathered table row per node instead of the channel's rate
functions (for ``HH``: six exponentials and six divisions per node). On CPU, where HH's exact
update and its reverse step are native loops (`jaxdend.solve._native`), tables are about as fast
in the forward direction and slower in gradients (benchmarks/README.md, session 10). Against
the exact update as XLA code they were 1.5-2.2x faster forward on CPU (session 8), and XLA code
is what GPUs/TPUs and machines without a C++ compiler run (not measured there).

Which channels: those whose gates depend on no per-node parameter, only on voltage and
temperature (``AbstractChannel.rate_params == ()``, e.g. ``HH``); the others are integrated
exactly as without a table. Voltages outside ``[v_min, v_max]`` use the end values of the table
(as NEURON's tables do). The interpolation error is second order in ``dv`` (about 1e-5 of the
gate range at ``dv = 0.1`` mV for HH; measured against the exact update in
``tests/test_tables.py`` and on the benchmark cell in ``benchmarks/simulate.py``).

Gradients: with respect to the voltage, the derivative of the interpolant (the table slope);
with respect to the temperature, from a second table of d(c, e)/d(celsius) built with the first
(forward-mode), so a backward pass gathers instead of scattering into the table.

Units: voltages mV, time ms, temperature degC.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from ..channels import AbstractChannel


class RateTable(eqx.Module):
    """Tabulate gate updates on a voltage grid and interpolate them linearly (opt-in).

    Pass it to a cable solver: ``jaxdend.BackwardEuler(rate_table=RateTable())``. Faster for
    channels with expensive rate functions; results differ from the exact update by the
    interpolation error (second order in `dv`).

    Attributes:
        v_min: lowest tabulated voltage, mV (NEURON's hh table: -100).
        v_max: highest tabulated voltage, mV (100).
        dv: grid spacing, mV (0.1; NEURON's hh table uses 1 mV).
    """

    v_min: float = eqx.field(static=True, default=-100.0)
    v_max: float = eqx.field(static=True, default=100.0)
    dv: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        lo, hi, dv = float(self.v_min), float(self.v_max), float(self.dv)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"RateTable needs finite v_min < v_max (mV), got {lo}, {hi}.")
        if not (math.isfinite(dv) and dv > 0):
            raise ValueError(f"RateTable.dv must be a positive spacing in mV, got {dv}.")
        if (hi - lo) / dv > 1e6:
            raise ValueError(
                f"RateTable with dv={dv} mV over [{lo}, {hi}] mV has more than 1e6 points; "
                "use a coarser dv (0.1 mV is ample)."
            )

    @property
    def size(self) -> int:
        """Number of grid points."""
        return int(round((float(self.v_max) - float(self.v_min)) / float(self.dv))) + 1

    def grid(self, dtype=None) -> jax.Array:
        """The tabulated voltages, mV."""
        return float(self.v_min) + float(self.dv) * jnp.arange(self.size, dtype=dtype)

    def build(self, channel: AbstractChannel, celsius, dt) -> GateTable | None:
        """The table of `channel` at `celsius` degC for steps of `dt` ms, or None when the
        channel cannot be tabulated (it has no gates, or its rates depend on per-node
        parameters)."""
        if not tabulable(channel):
            return None
        names = type(channel).state_names
        celsius = jnp.asarray(celsius)
        grid = self.grid(dtype=celsius.dtype)

        def sample(cels):
            # x' = c + e x: c from x = 0, e from x = 1 (exp_euler is affine in the state)
            zero = {k: jnp.zeros_like(grid) for k in names}
            one = {k: jnp.ones_like(grid) for k in names}
            x0 = channel.exp_euler(zero, grid, cels, dt)
            x1 = channel.exp_euler(one, grid, cels, dt)
            c = jnp.stack([jnp.broadcast_to(x0[k], grid.shape) for k in names], axis=1)
            e = jnp.stack([jnp.broadcast_to(x1[k], grid.shape) for k in names], axis=1) - c
            return jnp.concatenate([c, e], axis=1)  # (G, 2S)

        vals, d_vals = jax.jvp(sample, (celsius,), (jnp.ones_like(celsius),))

        def with_slopes(t):  # value and slope per interval (the last row repeats)
            slope = jnp.concatenate([t[1:] - t[:-1], jnp.zeros_like(t[:1])], axis=0)
            return jnp.concatenate([t, slope], axis=1)  # (G, 4S)

        return GateTable(with_slopes(vals), with_slopes(d_vals), float(self.v_min),
                         1.0 / float(self.dv), self.size, len(names))


def tabulable(channel: AbstractChannel) -> bool:
    """True if `channel` has gates whose rates depend on nothing but voltage and temperature."""
    return (type(channel).gates is not AbstractChannel.gates
            and type(channel).rate_params == ()
            and len(type(channel).state_names) > 0)


class GateTable(eqx.Module):
    """The sampled update of one channel's gates (built by `RateTable.build`).

    Attributes:
        rows: (G, 4S) per grid voltage: c of the S gates, e of the S gates, then their slopes
            to the next grid point (dimensionless).
        d_rows: the same, differentiated w.r.t. the temperature (1/degC).
        v_min: voltage of the first row, mV. inv_dv: 1 / grid spacing, 1/mV.
        size: number of rows G. n_states: S.
    """

    rows: jax.Array
    d_rows: jax.Array
    v_min: float = eqx.field(static=True)
    inv_dv: float = eqx.field(static=True)
    size: int = eqx.field(static=True)
    n_states: int = eqx.field(static=True)

    def step(self, names, state, v, celsius):
        """Gates after one tabulated step at voltage `v` (mV, per node); `celsius` (degC) is
        the temperature the table was built at (it carries the temperature gradient)."""
        meta = (self.v_min, self.inv_dv, self.size, self.n_states)
        ce = _interpolate(meta, jax.lax.stop_gradient(self.rows),
                          jax.lax.stop_gradient(self.d_rows), jnp.asarray(celsius), v)
        s = self.n_states
        return {k: ce[:, i] + ce[:, s + i] * state[k] for i, k in enumerate(names)}


def _locate(meta, v):
    """Row index (int32), fraction in [0, 1] and in-range mask of every voltage (mV)."""
    v_min, inv_dv, size, _ = meta
    u = (v - v_min) * inv_dv
    inside = (u >= 0.0) & (u <= size - 1)
    u = jnp.clip(u, 0.0, size - 1)
    k = jnp.minimum(jnp.floor(u), size - 2).astype(jnp.int32)
    return k, u - k, inside


def _gather(meta, rows, v):
    """(c, e) of the S gates interpolated at `v` as one (n, 2S) array, and the gathered rows
    (n, 4S) with the locations."""
    s = meta[3]
    k, f, inside = _locate(meta, v)
    # one gathered row per node; `_locate` keeps k within [0, size - 2], so the gather needs
    # no bounds handling (about 15 % of a tabulated HH step on CPU, measured on the benchmark
    # cells in benchmarks/simulate.py)
    r = rows.at[k].get(mode="promise_in_bounds")
    return r[:, : 2 * s] + f[:, None] * r[:, 2 * s:], (k, f, inside, r)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _interpolate(meta, rows, d_rows, celsius, v):
    """Linear interpolation of the table rows at `v` (mV): (c, e) as one (n, 2S) array.

    Derivatives: w.r.t. `v` the slope of the interpolant (0 outside the table, where the end
    values are used), w.r.t. `celsius` the interpolated `d_rows`; `rows` and `d_rows` are
    functions of `celsius` only and get no tangent of their own (callers stop their gradient).
    """
    return _gather(meta, rows, v)[0]


@_interpolate.defjvp
def _interpolate_jvp(meta, primals, tangents):
    rows, d_rows, celsius, v = primals
    _, _, dcels, dv = tangents
    s = meta[3]
    ce, (k, f, inside, r) = _gather(meta, rows, v)
    slope = jnp.where(inside[:, None], r[:, 2 * s:] * meta[1], 0.0)  # (n, 2S), per mV
    dr = d_rows.at[k].get(mode="promise_in_bounds")
    d_cels = dr[:, : 2 * s] + f[:, None] * dr[:, 2 * s:]  # (n, 2S), per degC
    return ce, slope * dv[:, None] + d_cels * dcels
