"""Child process of tests/test_multihost.py: one "host" of a multi-process run on this machine.

    python tests/_multihost_worker.py OUT.json                    # reference: 1 process, 1 device
    python tests/_multihost_worker.py OUT.json PID N_PROC PORT    # process PID of N_PROC

In the multi-process form every process has 2 forced CPU devices, joins the others through
`jaxdend.batch.init_distributed` (coordinator localhost:PORT; CPU collectives by gloo) and
runs the same calls with ``devices=None``: every device of every process. Each process writes
what it received (the full results, gathered) to OUT.json; the test compares them with the
reference.
"""

from __future__ import annotations

import os
import sys


def main(argv) -> int:
    out_path = argv[0]
    multi = len(argv) == 4
    if multi:
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import json

    import jax

    jax.config.update("jax_enable_x64", True)
    if multi:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import _batch_cases as cases
    import numpy as np
    import optax

    from jaxdend import batch

    if multi:
        pid, n_proc, port = int(argv[1]), int(argv[2]), int(argv[3])
        info = batch.init_distributed(f"localhost:{port}", n_proc, pid,
                                      initialization_timeout=120)
        devices = None
    else:
        info = batch.init_distributed(num_processes=1)
        devices = 1
    out: dict = {"info": info}
    cell = cases.y_cell()

    # 1. a grid sweep of 10 variants (padded to the device count), spike counts as a feature
    r = cases.grid_sweep(cell, devices)
    out["sweep_v"] = np.asarray(r["v"]).tolist()
    out["sweep_n"] = np.asarray(r["n"]).tolist()

    # 2. sharded_vmap: each process holds its own blocks; to_host gathers all of them
    v = jax.jit(batch.sharded_vmap(cases.run_variant, devices, in_axes=(None, 0)))(
        cell, cases.g_na_values())
    out["vmap_local_shards"] = [list(s.data.shape) for s in v.addressable_shards]
    out["vmap_v"] = batch.to_host(v).tolist()

    # 3. a multi-start fit, the starts spread over every device
    fit_loss, model = cases.fit_problem(cell)
    res = batch.fit_starts(fit_loss, model, optimizer=optax.adam(0.05), steps=4, starts=6,
                           devices=devices)
    out["fit_history"] = np.asarray(res.history).tolist()
    out["fit_best_start"] = int(res.best_start)

    # 4. a list of cells of the same morphology with different densities
    b = cases.batch_of_cells(cell, devices)
    out["cells_v"] = np.asarray(b.recordings["v"]).tolist()
    with open(out_path, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
