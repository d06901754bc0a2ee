"""Batched and multi-device simulation: parameter sweeps, many cells/stimuli, sharded fits.

Thousands of variants of one cell run as one vmapped, compiled program; the batch axis is
split across devices (``jax.shard_map`` over a one-axis mesh named "batch"), so the same call
runs unchanged on 1, 4 or 8 devices (the batch is padded to a multiple of the device count
and the padding dropped)::

    import numpy as np
    import jaxdend as jd
    from jaxdend import batch

    res = batch.sweep(
        cell,
        {"HH.g_na": np.linspace(0.08, 0.16, 10), "stim.amp": np.linspace(0.0, 1.0, 8)},
        lambda p: jd.stimulus.step(0, p["stim.amp"], 10.0, 200.0),   # nA, ms
        t1=220.0, dt=0.025, where={"HH.g_na": "soma"}, grid=True,
        features={"rate": batch.firing_rate((10.0, 210.0))})         # Hz
    res["rate"].shape        # (10, 8): an f-I curve per g_na
    res["v"].shape           # (10, 8, n_save, 1), mV

- `sweep`: grids or zipped lists of cell parameters (`Cell.set` names) and stimulus values
  ("stim.*": amplitudes, ramp ends, spike trains); `batch_size` chunks bound memory.
- `simulate_batch`: lists of cells of one morphology and/or lists of stimuli (any waveform,
  e.g. recorded currents as `jaxdend.stimulus.sampled`).
- `SweepResult`: recordings and features with batch dimensions first, coordinates, units,
  ``to_xarray()`` (if xarray is installed).
- `sharded_vmap`: the primitive (vmap + shard across devices), differentiable, for your
  own jitted losses over many variants; `fit_starts`: `jaxdend.fit.fit`'s multi-start fit
  with the starts sharded.
- `batch_mesh`, `shard_batch`, `pad_batch`, `to_host`; `use_cpu_cores` for every core of a
  CPU; `init_distributed` for several hosts.

Every core of a CPU: call ``batch.use_cpu_cores()`` right after ``import jaxdend`` (one JAX
device per core; 1.6-2.5x the throughput of one device on 2 cores at batch 100,
benchmarks/README.md).

Units: time ms, voltage mV, current nA, parameters in the units of `Cell.set` (S/cm^2,
uF/cm^2, Ohm cm, mV, degC, nS), firing rates Hz.
"""

from ._fit import fit_starts as fit_starts
from ._shard import batch_mesh as batch_mesh
from ._shard import init_distributed as init_distributed
from ._shard import pad_batch as pad_batch
from ._shard import shard_batch as shard_batch
from ._shard import sharded_vmap as sharded_vmap
from ._shard import to_host as to_host
from ._shard import use_cpu_cores as use_cpu_cores
from ._sweep import SweepResult as SweepResult
from ._sweep import cast as cast
from ._sweep import count_spikes as count_spikes
from ._sweep import firing_rate as firing_rate
from ._sweep import simulate_batch as simulate_batch
from ._sweep import stack as stack
from ._sweep import sweep as sweep
