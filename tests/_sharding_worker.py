"""Child process of tests/test_sharding.py: runs the batch machinery on 4 CPU devices.

Run as ``python tests/_sharding_worker.py`` (`jaxdend.batch.use_cpu_cores(4)` must run before
JAX starts, so this runs in its own process). Prints one JSON object with the measured
differences between 4 devices and 1 device and where the outputs live.
"""

from __future__ import annotations

import json
import sys

import equinox as eqx
import jax

import jaxdend as jd
from jaxdend import batch

N_CPU = batch.use_cpu_cores(4)  # before anything starts JAX
jax.config.update("jax_enable_x64", True)

import _batch_cases as cases  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxdend import fit as jf  # noqa: E402


def maxdiff(a, b) -> float:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return max(float(np.max(np.abs(np.asarray(x, float) - np.asarray(y, float))))
               for x, y in zip(la, lb))


def identical(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in
               zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def main() -> int:
    out: dict = {"n_devices": jax.device_count(), "use_cpu_cores": N_CPU,
                 "platform": jax.devices()[0].platform}
    cell = cases.y_cell()

    # 1. a grid sweep of 10 variants (not a multiple of 4: padded), 4 devices vs 1
    r4 = cases.grid_sweep(cell, 4)
    r1 = cases.grid_sweep(cell, 1)
    out["sweep_shape"] = list(r4["v"].shape)
    out["sweep_maxdiff"] = maxdiff((r4.recordings, r4.features), (r1.recordings, r1.features))
    out["sweep_identical"] = identical((r4.recordings, r4.features), (r1.recordings, r1.features))
    out["sweep_spikes"] = r4["n"].tolist()

    # 2. the output of sharded_vmap lives on the 4 devices, 2 variants each
    run = cases.run_variant
    g = cases.g_na_values()
    v4 = eqx.filter_jit(batch.sharded_vmap(run, 4, in_axes=(None, 0)))(cell, g)
    v1 = eqx.filter_jit(batch.sharded_vmap(run, 1, in_axes=(None, 0)))(cell, g)
    out["vmap_devices"] = sorted(d.id for d in v4.sharding.device_set)
    out["vmap_shard_shapes"] = [list(s.data.shape) for s in v4.addressable_shards]
    out["vmap_shard_devices"] = [s.device.id for s in v4.addressable_shards]
    out["vmap_maxdiff"] = maxdiff(v4, v1)
    out["vmap_identical"] = identical(v4, v1)
    compiled = eqx.filter_jit(batch.sharded_vmap(run, 4, in_axes=(None, 0))).lower(
        cell, g).compile()
    hlo = getattr(compiled, "compiled", compiled).as_text()
    out["collectives"] = [op for op in ("all-gather", "all-to-all", "collective-permute")
                          if op in hlo]
    # a sharded batch that is not a multiple of the devices (6 of 8 slots used)
    v6 = eqx.filter_jit(batch.sharded_vmap(run, 4, in_axes=(None, 0)))(cell, g[:6])
    out["pad_maxdiff"] = maxdiff(v6, v1[:6])

    # 3. gradients through the sharded vmap
    def loss(c, g):
        return jnp.sum(jnp.mean(batch.sharded_vmap(run, c_dev, in_axes=(None, 0))(c, g) ** 2,
                                axis=1))

    grads = {}
    for c_dev in (4, 1):
        grads[c_dev] = eqx.filter_jit(jax.grad(lambda gg: loss(cell, gg)))(g)
    out["grad_maxdiff"] = maxdiff(grads[4], grads[1])
    out["grad_rel"] = float(jnp.max(jnp.abs(grads[4] - grads[1]) / jnp.abs(grads[1])))

    # 4. multi-start fit: 6 starts on 4 devices vs jaxdend.fit.fit(starts=6) on one
    fit_loss, model = cases.fit_problem(cell)
    ref = jf.fit(fit_loss, model, optimizer=optax.adam(0.05), steps=4, starts=6,
                 progress=False)
    sharded = batch.fit_starts(fit_loss, model, optimizer=optax.adam(0.05), steps=4, starts=6,
                               devices=4)
    out["fit_history_maxdiff"] = float(np.max(np.abs(ref.history - sharded.history)))
    out["fit_losses_maxdiff"] = float(np.max(np.abs(ref.losses - sharded.losses)))
    out["fit_best_start"] = [ref.best_start, sharded.best_start]
    out["fit_history_shape"] = list(sharded.history.shape)

    # 5. a list of cells (same morphology, different densities), 4 devices vs 1
    b4 = cases.batch_of_cells(cell, 4)
    b1 = cases.batch_of_cells(cell, 1)
    out["cells_maxdiff"] = maxdiff(b4.recordings, b1.recordings)

    # 6. a run-time error in a variant on the last device is raised, not returned as NaN
    try:
        batch.sweep(cell, {"HH.g_na": np.linspace(0.1, 0.2, 8), "stim.amp": np.full(8, 0.2)},
                    lambda p: jd.stimulus.step(0, jnp.where(p["HH.g_na"] > 0.19, jnp.nan,
                                                            p["stim.amp"]), 2.0, 20.0),
                    t1=20.0, devices=4)
        out["error"] = None
    except Exception as err:  # noqa: BLE001
        out["error"] = f"{type(err).__name__}: {err} {getattr(err, '__notes__', '')}"
    print("RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
