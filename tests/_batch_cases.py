"""The small batch problems that the multi-device workers run and compare with one device.

Used by tests/_sharding_worker.py (4 forced CPU devices) and tests/_multihost_worker.py (two
processes): import it after XLA_FLAGS are set (it imports JAX). Units: ms, mV, nA, S/cm^2.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxdend as jd
from jaxdend import batch
from jaxdend import fit as jf

#: g_k values (S/cm^2) of the batch of cells: 5 cells (not a multiple of 2 or 4 devices).
G_K = (0.03, 0.036, 0.04, 0.045, 0.05)


def y_cell() -> jd.Cell:
    """HH everywhere on the Y-cell, 3 segments per section."""
    return jd.Cell(jd.discretize(jd.y_cell(), nseg=3)).insert(jd.channels.HH())


def grid_sweep(cell: jd.Cell, devices):
    """A 5 x 2 grid sweep (soma g_na x step amplitude, 10 variants in chunks of 8) with the
    spike count as a feature, on `devices`."""
    return batch.sweep(cell, {"HH.g_na": np.linspace(0.08, 0.16, 5),
                              "stim.amp": np.array([0.3, 0.8])},
                       lambda p: jd.stimulus.step(0, p["stim.amp"], 2.0, 20.0), t1=20.0,
                       where={"HH.g_na": "soma"}, grid=True, batch_size=8,
                       features={"n": batch.count_spikes()}, devices=devices)


def run_variant(c: jd.Cell, g_na):
    """Soma voltage (mV) of `c` with g_na = `g_na` everywhere under a 0.5 nA step, 20 ms."""
    return jd.simulate(c.set("HH.g_na", g_na), jd.stimulus.step(0, 0.5, 2.0, 20.0),
                       t1=20.0)["v"][:, 0]


def fit_problem(cell: jd.Cell):
    """(loss, model) of a small fit: soma g_na (bounded, log) to the cell's own 15 ms trace."""
    stim = jd.stimulus.step(0, 0.5, 2.0, 10.0)
    target = jd.simulate(cell, stim, t1=15.0)["v"][:, 0]
    model = jf.parametrize(cell, {"HH.g_na": jf.Bounded(0.05, 0.3, log=True, where="soma")})

    def loss(c):
        return jf.voltage_mse(jd.simulate(c, stim, t1=15.0)["v"][:, 0], target)

    return loss, model


def batch_of_cells(cell: jd.Cell, devices):
    """`simulate_batch` of the cell at every `G_K` under a 0.5 nA step, 20 ms, on `devices`."""
    cells = [cell.set("HH.g_k", gk) for gk in G_K]
    return batch.simulate_batch(cells, stimulus=jd.stimulus.step(0, 0.5, 2.0, 20.0), t1=20.0,
                                devices=devices)


def g_na_values():
    """The 8 g_na values (S/cm^2) of the sharded-vmap case."""
    return jnp.linspace(0.08, 0.16, 8)
