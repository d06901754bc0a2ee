"""Multi-device batching on 4 CPU devices (in a child process) against one device.

The worker splits the CPU with `jaxdend.batch.use_cpu_cores(4)`, which only takes effect
before JAX starts, so the checks
run in `tests/_sharding_worker.py` as a subprocess (robust under pytest-xdist: nothing in this
process changes) and report their measurements as JSON; the assertions are here.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _helpers import worker_env

WORKER = Path(__file__).with_name("_sharding_worker.py")


def _run_worker() -> dict:
    proc = subprocess.run([sys.executable, str(WORKER)], capture_output=True, text=True,
                          timeout=600, env=worker_env(), cwd=str(WORKER.parents[1]))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"worker failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def test_four_devices_match_one_device():
    """One child process (one test, so pytest-xdist never starts it twice)."""
    r = _run_worker()
    assert r["n_devices"] == 4 and r["use_cpu_cores"] == 4 and r["platform"] == "cpu"
    # sweep: 10 variants padded to 12 slots (chunks of 8), results equal bit for bit
    assert r["sweep_shape"] == [5, 2, 801, 1]
    assert r["sweep_identical"], r["sweep_maxdiff"]
    assert r["sweep_maxdiff"] <= 1e-12
    assert min(min(row) for row in r["sweep_spikes"]) >= 1  # the runs did something
    # sharded_vmap output: 8 variants on devices 0..3, 2 each, no cross-device traffic
    assert r["vmap_devices"] == [0, 1, 2, 3]
    assert r["vmap_shard_devices"] == [0, 1, 2, 3]
    assert r["vmap_shard_shapes"] == [[2, 801]] * 4
    assert r["vmap_identical"] and r["vmap_maxdiff"] <= 1e-12
    assert r["collectives"] == []
    assert r["pad_maxdiff"] <= 1e-12  # 6 variants on 4 devices: padded, padding dropped
    # gradients through shard_map equal the one-device vmap
    assert r["grad_maxdiff"] <= 1e-12 and r["grad_rel"] <= 1e-12
    # sharded multi-start fit equals jaxdend.fit.fit(starts=6) on one device
    assert r["fit_history_shape"] == [4, 6]
    assert r["fit_history_maxdiff"] <= 1e-12
    assert r["fit_losses_maxdiff"] <= 1e-12
    assert r["fit_best_start"][0] == r["fit_best_start"][1]
    # a list of cells with different densities
    assert r["cells_maxdiff"] <= 1e-12
    # a NaN in the variant on the last device raises simulate's error, naming the chunk
    err = r["error"]
    assert err is not None, "a NaN variant on device 3 came back without an error"
    assert "current-clamp value" in err and "is NaN" in err
    assert "variants 0..7" in err


def test_use_cpu_cores_after_jax_started_names_the_fix():
    import jax

    from jaxdend import batch

    have = len(jax.devices("cpu"))  # this process has started JAX
    assert batch.use_cpu_cores(have) == have  # asking for what is there is fine
    with pytest.raises(RuntimeError, match="came too late.*right after `import jaxdend`"):
        batch.use_cpu_cores(have + 1)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="whole number of devices"):
            batch.use_cpu_cores(bad)
