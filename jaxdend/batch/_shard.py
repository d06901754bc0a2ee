"""Devices, meshes and the sharded vmap that spreads a batch axis over them.

One axis of variants (parameter sets, stimuli, cells, fit starts) is split into equal blocks,
one per device, with ``jax.shard_map`` over a one-dimensional `jax.sharding.Mesh` whose axis
is called ``"batch"``; every device vmaps its block. Variants never talk to each other, so the
compiled program has no communication and the results equal a one-device vmap (the same
per-variant program runs on every device).

Multi-host: call `init_distributed` on every process first (a thin wrapper of
``jax.distributed.initialize``); ``jax.devices()`` then lists the devices of all hosts and
the same calls shard over all of them (tests/test_multihost.py: two processes with two CPU
devices each, joined over localhost, give the one-device results bit for bit).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "batch"


def batch_mesh(devices=None) -> Mesh:
    """A one-dimensional `Mesh` with axis ``"batch"`` over `devices`.

    Args:
        devices: None (every device of the default backend, ``jax.devices()``: all hosts
            after `init_distributed`), an int k (the first k of them), a sequence of
            ``jax.Device``, or a `Mesh` (returned as it is; it must have a "batch" axis).

    Returns:
        The mesh.
    """
    if isinstance(devices, Mesh):
        if AXIS not in devices.axis_names:
            raise ValueError(
                f"The mesh has axes {devices.axis_names}; the batch is sharded along an axis "
                f"named {AXIS!r}. Build it with jaxdend.batch.batch_mesh(devices)."
            )
        return devices
    available = jax.devices()
    if devices is None:
        chosen = list(available)
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        k = int(devices)
        if not 1 <= k <= len(available):
            raise ValueError(
                f"devices={k}, but {len(available)} device(s) are available "
                f"({available[0].platform}); give 1..{len(available)} or None for all."
            )
        chosen = list(available[:k])
    elif isinstance(devices, Sequence) and devices and all(
            isinstance(d, jax.Device) for d in devices):
        chosen = list(devices)
        if len({d.id for d in chosen}) != len(chosen):
            raise ValueError("devices lists a device twice; give each device once.")
    else:
        raise TypeError(
            f"devices must be None, a number of devices, a list of jax.Device or a Mesh, got "
            f"{devices!r}."
        )
    return Mesh(np.asarray(chosen, dtype=object), (AXIS,))


def n_devices(mesh: Mesh) -> int:
    """Number of devices along the batch axis of `mesh`."""
    return int(mesh.shape[AXIS])


def _batched_size(trees, what: str) -> int:
    sizes = {int(x.shape[0]) for t in trees for x in jax.tree_util.tree_leaves(t)
             if eqx.is_array(x) or isinstance(x, np.ndarray)}
    if any(np.ndim(x) == 0 for t in trees for x in jax.tree_util.tree_leaves(t)
           if eqx.is_array(x) or isinstance(x, np.ndarray)):
        raise ValueError(f"A batched argument of {what} has a scalar leaf; every array of a "
                         "batched argument needs the batch as its leading axis.")
    if not sizes:
        raise ValueError(f"{what} got no batched array: give at least one argument with "
                         "in_axes=0 holding arrays with a leading batch axis.")
    if len(sizes) > 1:
        raise ValueError(
            f"The batched arrays of {what} have different leading sizes {sorted(sizes)}; "
            "every batched array needs the same number of variants along axis 0."
        )
    return sizes.pop()


def pad_batch(tree, multiple: int):
    """Pad the leading axis of every array leaf to a multiple of `multiple`.

    The padding repeats the last variant (valid values, so padded variants run like real
    ones and raise no NaN errors); drop it from the results with ``x[:n]``.

    Args:
        tree: PyTree whose array leaves share the leading (batch) size n.
        multiple: e.g. the number of devices, >= 1.

    Returns:
        ``(padded_tree, n)``.
    """
    n = _batched_size([tree], "pad_batch")
    pad = (-n) % int(multiple)
    if pad == 0:
        return tree, n

    def one(x):
        if isinstance(x, np.ndarray):
            return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)], axis=0)
        if eqx.is_array(x):
            return jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)
        return x

    return jax.tree_util.tree_map(one, tree), n


def shard_batch(tree, devices=None):
    """Place the leading axis of every array leaf of `tree` across devices (``"batch"``).

    The leading size must be a multiple of the number of devices (see `pad_batch`).
    Works across hosts too: each process gives the full array and keeps its own blocks.

    Args:
        tree: PyTree of arrays with a common leading batch axis.
        devices: as for `batch_mesh`.

    Returns:
        The tree with `jax.Array` leaves sharded as ``NamedSharding(mesh, P("batch"))``.
    """
    mesh = batch_mesh(devices)
    k = n_devices(mesh)
    n = _batched_size([tree], "shard_batch")
    if n % k:
        raise ValueError(
            f"The batch has {n} variants, not a multiple of the {k} devices; pad it first "
            "with jaxdend.batch.pad_batch(tree, n_devices)."
        )
    sharding = NamedSharding(mesh, P(AXIS))

    def put(x):
        if not (eqx.is_array(x) or isinstance(x, np.ndarray)):
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree_util.tree_map(put, tree)


def to_host(tree):
    """Every array leaf of `tree` as a NumPy array on this host (gathered across hosts).

    A leaf spread over several processes (not fully addressable here) is gathered from all
    of them (``multihost_utils.process_allgather``); a leaf this process holds entirely (a
    host array, or a jax.Array on its own devices) is converted as it is.
    """
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x) if eqx.is_array(x) else x

    return jax.tree_util.tree_map(one, tree)


def sharded_vmap(fn: Callable, devices=None, *, in_axes=0,
                 vmap_width: int | None = None) -> Callable:
    """``jax.vmap(fn)`` with the batch axis split across devices.

    Example (4 devices, 1,000 variants: 250 per device)::

        run = jaxdend.batch.sharded_vmap(
            lambda c, g: jd.simulate(c.set("HH.g_na", g), stim, t1=50.0)["v"],
            in_axes=(None, 0))
        v = eqx.filter_jit(run)(cell, g_values)   # (1000, n_save, 1), sharded

    `fn` must return a PyTree of arrays. `simulate`'s run-time NaN/inf check is attached to
    ``Solution.final_state``: a `fn` returning only recordings lets XLA drop it (NaN then
    comes back silently), so return or reduce the final state too (`sweep` does).
    Batched arguments (in_axes 0) carry the batch on
    axis 0 of every array leaf; other leaves (ints, strings, static fields) pass unchanged.
    A batch that is not a multiple of the device count is padded by repeating its last
    variant and the padding is dropped from the outputs. With one device this is a plain
    vmap. The wrapper can be jitted and differentiated (``jax.shard_map`` is both).

    Args:
        fn: the per-variant function.
        devices: as for `batch_mesh` (None: all devices).
        in_axes: 0 (every positional argument batched), or a tuple with 0 (batched) or None
            (shared by all variants) per positional argument.
        vmap_width: variants vectorised together on a device; the device's block is run as
            ``lax.map(..., batch_size=vmap_width)`` (groups one after another). None: the
            whole block in one vmap (best on GPUs). On CPUs a narrow vmap is often faster
            for large cells (measured: 1-2 for ~1,000 nodes, ~4 for ~50 nodes).

    Returns:
        The batched, sharded function (positional arguments only).
    """
    mesh = batch_mesh(devices)
    k = n_devices(mesh)

    def wrapped(*args):
        axes = (in_axes,) * len(args) if not isinstance(in_axes, (tuple, list)) else \
            tuple(in_axes)
        if len(axes) != len(args) or any(a not in (0, None) for a in axes):
            raise ValueError(
                f"in_axes must be 0, None, or a tuple of 0/None with one entry per argument "
                f"({len(args)} given), got {in_axes!r}."
            )
        if vmap_width is not None and (isinstance(vmap_width, bool) or not isinstance(
                vmap_width, (int, np.integer)) or vmap_width < 1):
            raise ValueError(f"vmap_width must be an integer >= 1 or None, got {vmap_width!r}.")
        batched = [a for a, ax in zip(args, axes) if ax == 0]
        n = _batched_size(batched, "sharded_vmap")
        pad = (-n) % k
        args = [pad_batch(a, k)[0] if ax == 0 and pad else a for a, ax in zip(args, axes)]
        dyn, static = eqx.partition(list(args), eqx.is_array)

        local_n = (n + pad) // k
        width = None if vmap_width is None or vmap_width >= local_n else int(vmap_width)
        batched_idx = [i for i, ax in enumerate(axes) if ax == 0]

        def local(*dyn_args):
            if width is None:
                return jax.vmap(fn, in_axes=axes)(*eqx.combine(list(dyn_args), static))

            def call(xs):  # one variant (lax.map vmaps groups of `width` of these)
                dyn = list(dyn_args)
                for j, i in enumerate(batched_idx):
                    dyn[i] = xs[j]
                return fn(*eqx.combine(dyn, static))

            return jax.lax.map(call, tuple(dyn_args[i] for i in batched_idx), batch_size=width)

        if k == 1:
            out = local(*dyn)
        else:
            specs = tuple(P(AXIS) if ax == 0 else P() for ax in axes)
            # check_vma=False: per-variant runtime checks (eqx.error_if) use lax.cond, whose
            # branches would otherwise disagree on which values vary across devices
            out = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P(AXIS),
                                check_vma=False)(*dyn)
        if pad:
            out = jax.tree_util.tree_map(lambda x: x[:n], out)
        return out

    return wrapped


def use_cpu_cores(n: int | None = None) -> int:
    """Split the host CPU into `n` JAX devices, so that sweeps and fits use every core.

    On a CPU, JAX has one device, and one cell's simulation runs on one core (its kernels are
    too small for XLA to spread over threads). With one device per core, `sweep`,
    `simulate_batch`, `sharded_vmap` and `fit_starts` (``devices=None``) give each core its
    own block of variants. Measured on 2 cores (``benchmarks/throughput.py``, batch 100):
    1.6-2.5x the compartment-steps per second of one device, forward and gradient (1.2-1.4x
    for 1,000 small cells, which one device already runs as one wide vmap), with results
    identical to one device. Single simulations are unaffected.

    Call it right after ``import jaxdend``, before JAX runs anything (JAX fixes its devices
    when it starts); this sets ``jax.config.update("jax_num_cpu_devices", n)``.

    Args:
        n: number of CPU devices; None: the cores this process may run on
            (``os.sched_getaffinity``, else ``os.cpu_count()``).

    Returns:
        The number of CPU devices.
    """
    if n is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"use_cpu_cores(n) needs a whole number of devices >= 1, got {n!r}.")
    try:
        jax.config.update("jax_num_cpu_devices", int(n))
    except AttributeError as err:  # older JAX without the option
        raise RuntimeError(
            f"This JAX ({jax.__version__}) has no jax_num_cpu_devices option; upgrade JAX, "
            f"or set XLA_FLAGS=--xla_force_host_platform_device_count={n} before starting "
            "Python."
        ) from err
    except RuntimeError as err:
        have = len(jax.devices("cpu"))
        if have == int(n):
            return have
        raise RuntimeError(
            f"jaxdend.batch.use_cpu_cores({n}) came too late: JAX has already started with "
            f"{have} CPU device(s), and the count is fixed at start-up. Call it right after "
            "`import jaxdend`, before any simulation or array operation (in a notebook: "
            "restart the kernel and make it the first cell)."
        ) from err
    return int(n)


def init_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, **kwargs) -> dict:
    """Join a multi-host run (``jax.distributed.initialize``) and describe the devices.

    Call it once per process, before any other JAX call, with the same coordinator on every
    host (on SLURM, Cloud TPU and other detected clusters all arguments may be omitted).
    Afterwards ``jax.devices()`` holds every host's devices and `sweep`, `sharded_vmap` and
    `fit_starts` (``devices=None``) shard over all of them; every process passes the same
    inputs and receives the full results (tested with two processes on one machine,
    `tests/test_multihost.py`; on CPUs pass the gloo collectives first:
    ``jax.config.update("jax_cpu_collectives_implementation", "gloo")``).

    Args:
        coordinator_address: "host:port" of process 0, e.g. "10.0.0.1:1234".
        num_processes: number of processes (usually one per host).
        process_id: index of this process, 0..num_processes-1.
        **kwargs: passed on (e.g. ``local_device_ids``, ``initialization_timeout`` s).

    Returns:
        dict with process_index, process_count, local_devices, global_devices (counts).
    """
    if num_processes is not None and (isinstance(num_processes, bool) or num_processes < 1):
        raise ValueError(f"num_processes must be an integer >= 1, got {num_processes!r}.")
    # jax.process_count() would start the backend, after which initialize() fails: ask
    # jax.distributed itself whether this process has joined already
    if not jax.distributed.is_initialized() and num_processes != 1:
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id,
                                   **kwargs)
    return {"process_index": jax.process_index(), "process_count": jax.process_count(),
            "local_devices": jax.local_device_count(), "global_devices": jax.device_count()}


def chunk_size(n: int, batch_size: int | None, k: int) -> int:
    """Variants per chunk: `batch_size` (or n) rounded up to a multiple of k devices."""
    size = n if batch_size is None else min(int(batch_size), n)
    return max(k, int(math.ceil(size / k)) * k)
