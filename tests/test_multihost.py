"""Two processes ("hosts", 2 CPU devices each) joined by jax.distributed against one device.

`tests/_multihost_worker.py` runs as two processes on this machine that join through
`jaxdend.batch.init_distributed` (coordinator on a free localhost port, CPU collectives by
gloo) and shard a sweep, a sharded vmap, a multi-start fit and a batch of cells over all 4
devices; a third process computes the same on one device. Every process must receive the
full results, equal to the one-device results bit for bit.
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from _helpers import worker_env

WORKER = Path(__file__).with_name("_multihost_worker.py")
TIMEOUT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(args):
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], env=worker_env(),
                            cwd=str(WORKER.parents[1]), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc) -> str:
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert proc.returncode == 0, f"worker failed (rc {proc.returncode}):\n{out[-4000:]}"
    return out


def test_two_processes_match_one_device(tmp_path):
    """One test starts all three processes (so pytest-xdist never duplicates them)."""
    port = _free_port()
    hosts = [_start([tmp_path / f"host{p}.json", p, 2, port]) for p in range(2)]
    ref_proc = _start([tmp_path / "ref.json"])
    for proc in hosts + [ref_proc]:
        _finish(proc)
    ref = json.loads((tmp_path / "ref.json").read_text())
    assert ref["info"] == {"process_index": 0, "process_count": 1, "local_devices": 1,
                           "global_devices": 1}
    for p in range(2):
        got = json.loads((tmp_path / f"host{p}.json").read_text())
        assert got["info"] == {"process_index": p, "process_count": 2, "local_devices": 2,
                               "global_devices": 4}
        # each process holds 2 of the 4 blocks of 2 variants; to_host gathered all 8
        assert got["vmap_local_shards"] == [[2, 801]] * 2
        for key in ("sweep_v", "sweep_n", "vmap_v", "fit_history", "cells_v"):
            a, b = np.asarray(got[key]), np.asarray(ref[key])
            assert a.shape == b.shape, (key, a.shape, b.shape)
            np.testing.assert_array_equal(a, b, err_msg=f"process {p}: {key}")
        assert got["fit_best_start"] == ref["fit_best_start"]
    assert np.asarray(ref["sweep_v"]).shape == (5, 2, 801, 1)
    assert min(min(row) for row in ref["sweep_n"]) >= 1  # the runs did something
    assert np.asarray(ref["fit_history"]).shape == (4, 6)
