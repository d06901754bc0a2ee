"""`sweep` and `simulate_batch`: many variants of one cell simulated in one compiled call.

Variants are parameter sets (any `Cell.set` name), stimulus parameters (amplitudes, spike
trains), or whole cells and stimuli (any waveform) given as lists. They are vmapped
(``eqx.filter_vmap``-style: the cell is a PyTree, edits go through `Cell.set`), split into
chunks of `batch_size` variants (memory stays bounded, every chunk has the same shape so
one compilation serves all of them and later calls) and every chunk is sharded across the
devices (`jaxdend.batch.sharded_vmap`).

Units: time ms, voltage mV, current nA; parameters in the units of `Cell.set`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._cell import Cell
from ..solve import _native, _native_run, simulate
from ..stimulus import CurrentClamp, Stimulus, as_stimulus
from ..synapses import Input, SpikeTrains
from ._shard import batch_mesh, chunk_size, n_devices, pad_batch, shard_batch, sharded_vmap
from ._shard import to_host as _to_host

STIM_PREFIX = "stim."
_CELL_UNITS = {"cm": "uF/cm^2", "ra": "Ohm cm", "v_init": "mV", "celsius": "degC"}


# ----------------------------------------------------------------------------- result
@dataclasses.dataclass(frozen=True)
class SweepResult:
    """Labelled results of a `sweep` or `simulate_batch`.

    Every array has the batch dimensions ``shape`` first (one per swept parameter for a grid,
    one "variant" dimension for zipped values, "cell"/"stimulus" for `simulate_batch`).

    Attributes:
        ts: save times in ms, (n_save,) (or (*shape, n_save) if they differ per variant,
            e.g. adaptive steps with events).
        recordings: name -> (*shape, n_save, n_nodes) arrays, units of the state (mV for v).
        features: name -> (*shape, ...) per-variant features (e.g. spike counts).
        coords: name -> values: for a grid, the values along the dimension of that name
            ((n_k,) or (n_k, ...) per-node); for zipped values, one per variant ((n, ...)).
        dims: names of the batch dimensions.
        shape: sizes of the batch dimensions.
        units: name -> unit of the swept values where known (S/cm^2, mV, nA, ...).
    """

    ts: np.ndarray
    recordings: dict[str, np.ndarray]
    features: dict[str, np.ndarray]
    coords: dict[str, np.ndarray]
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    units: dict[str, str | None]
    grid: bool = False

    def __getitem__(self, name: str) -> np.ndarray:
        """Recording or feature `name` (recordings first), batch dimensions first."""
        if name in self.recordings:
            return self.recordings[name]
        if name in self.features:
            return self.features[name]
        raise KeyError(
            f"No recording or feature {name!r}; recordings: {sorted(self.recordings)}, "
            f"features: {sorted(self.features)}."
        )

    @property
    def n(self) -> int:
        """Number of variants."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def params(self) -> dict[str, np.ndarray]:
        """name -> the value of every variant, shape (*shape, ...) (grids broadcast)."""
        if not self.grid:
            return dict(self.coords)
        out = {}
        idx = np.indices(self.shape)
        for k, name in enumerate(self.dims):
            if name in self.coords:
                out[name] = np.asarray(self.coords[name])[idx[k]]
        return out

    def to_xarray(self):
        """The results as an ``xarray.Dataset`` (needs xarray, not a jaxdend dependency).

        Dimensions: the batch dimensions, "time" (ms) and one node dimension per recording
        ("<name>_node"); swept values are coordinates (units in their attrs).
        """
        try:
            import xarray as xr
        except ImportError:
            raise ImportError(
                "SweepResult.to_xarray needs xarray (pip install xarray); the arrays are in "
                "result.recordings, result.features and result.coords."
            ) from None
        coords: dict[str, Any] = {}
        for d, size in zip(self.dims, self.shape):
            vals = self.coords.get(d)
            if self.grid and vals is not None and np.ndim(vals) == 1:
                coords[d] = (d, np.asarray(vals), {"units": self.units.get(d) or ""})
            else:
                coords[d] = (d, np.arange(size))
        for name, vals in self.coords.items():
            if name in self.dims and self.grid and np.ndim(vals) == 1:
                continue
            dim = name if self.grid else self.dims[0]
            extra = tuple(f"{name}_{i}" for i in range(1, np.ndim(vals)))
            key = name if name not in self.dims else f"{name}_values"
            coords[key] = ((dim,) + extra, np.asarray(vals), {"units": self.units.get(name) or ""})
        time_dims = ("time",) if np.ndim(self.ts) == 1 else self.dims + ("time",)
        coords["time"] = ("time", np.asarray(self.ts if np.ndim(self.ts) == 1 else
                                             np.arange(np.shape(self.ts)[-1])),
                          {"units": "ms" if np.ndim(self.ts) == 1 else "sample"})
        data: dict[str, Any] = {}
        if np.ndim(self.ts) != 1:
            data["ts"] = (time_dims, np.asarray(self.ts), {"units": "ms"})
        for name, arr in self.recordings.items():
            data[name] = (self.dims + ("time", f"{name}_node"), np.asarray(arr))
        for name, arr in self.features.items():
            extra = tuple(f"{name}_{i}" for i in range(np.ndim(arr) - len(self.dims)))
            data[name] = (self.dims + extra, np.asarray(arr))
        return xr.Dataset(data, coords=coords)

    def __repr__(self) -> str:
        """Short summary: dimensions, recordings and features."""
        dims = ", ".join(f"{d}={s}" for d, s in zip(self.dims, self.shape))
        return (f"SweepResult({dims}; recordings {sorted(self.recordings)}, features "
                f"{sorted(self.features)}, {np.shape(self.ts)[-1]} samples)")


# ----------------------------------------------------------------------------- features
@dataclasses.dataclass(frozen=True)
class _SpikeCount:
    """Upward crossings of `threshold` (mV) in column `node` of recording `name`, counted
    between samples inside [lo, hi] ms, divided by `per` (1, or the window length in s)."""

    name: str
    node: int
    threshold: float
    lo: float
    hi: float
    per: float = 1.0

    def __call__(self, ts, recordings):
        """Count (int32) or rate (Hz) of one variant."""
        v = recordings[self.name][:, self.node]
        inside = (ts >= self.lo) & (ts <= self.hi)
        up = (v[:-1] < self.threshold) & (v[1:] >= self.threshold) & inside[:-1] & inside[1:]
        count = jnp.sum(up, dtype=jnp.int32)
        return count if self.per == 1.0 else count / self.per


def _window(window) -> tuple[float, float]:
    if window is None:
        return -math.inf, math.inf
    try:
        lo, hi = (float(w) for w in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be (start, end) in ms, got {window!r}.") from None
    if not lo < hi:
        raise ValueError(f"window must be (start, end) with start < end in ms, got {window!r}.")
    return lo, hi


def count_spikes(name: str = "v", node: int = 0, threshold: float = 0.0, window=None):
    """A per-variant feature: number of upward crossings of `threshold` (mV) in a recording.

    Use as ``sweep(..., features={"spikes": count_spikes()})``. Features built with the same
    arguments compare equal, so repeated sweeps reuse the compiled program.

    Args:
        name: recording key (default "v", the soma potential of the default record).
        node: column of the recording (0: its first node).
        threshold: crossing level, mV.
        window: optional (start, end) in ms; crossings between samples inside it count.

    Returns:
        Function ``(ts, recordings) -> int32 count``.
    """
    lo, hi = _window(window)
    return _SpikeCount(str(name), int(node), float(threshold), lo, hi)


def firing_rate(window, name: str = "v", node: int = 0, threshold: float = 0.0):
    """A per-variant feature: spikes per second (Hz) within `window` = (start, end) ms.

    The crossing count of `count_spikes` divided by the window length in s; with a current
    step from `delay` for `dur` ms, ``window=(delay, delay + dur)`` gives an f-I curve.

    Args:
        window: (start, end) in ms.
        name: recording key (default "v").
        node: column of the recording.
        threshold: crossing level, mV.

    Returns:
        Function ``(ts, recordings) -> rate in Hz``.
    """
    if window is None:
        raise ValueError("firing_rate needs window=(start, end) in ms.")
    lo, hi = _window(window)
    return _SpikeCount(str(name), int(node), float(threshold), lo, hi, (hi - lo) / 1000.0)


# ----------------------------------------------------------------------------- stacking
def _is_numeric(x) -> bool:
    return eqx.is_array(x) or isinstance(x, (np.ndarray, float, int, np.number)) and \
        not isinstance(x, bool)


def stack(trees: Sequence, what: str = "variants"):
    """Stack PyTrees of the same structure (cells, stimuli) along a new leading batch axis.

    Cells must share their structure: build the variants from one base cell with
    `Cell.set` / ``eqx.tree_at`` (same `Compartments`, same channels and synapse groups),
    e.g. ``[cell.set("HH.g_na", g) for g in values]``. Numbers that are leaves (e.g. the
    delay of a `Step`) are stacked too.

    Args:
        trees: sequence of PyTrees.
        what: name used in error messages.

    Returns:
        One PyTree whose array leaves have a leading axis of ``len(trees)``.
    """
    trees = list(trees)
    if not trees:
        raise ValueError(f"No {what} to stack; give at least one.")
    leaves0, treedef = jax.tree_util.tree_flatten(trees[0])
    rows = [leaves0]
    for i, t in enumerate(trees[1:], start=1):
        leaves, td = jax.tree_util.tree_flatten(t)
        if td != treedef:
            raise ValueError(
                f"{what} {i} has a different structure from {what} 0 (different channels, "
                "synapse groups, stimulus kinds or a different Compartments object). Build "
                "the variants from one base cell with cell.set(...) or eqx.tree_at(...), and "
                "stimuli of the same kind at the same nodes."
            )
        rows.append(leaves)
    out = []
    for k, first in enumerate(leaves0):
        col = [r[k] for r in rows]
        if _is_numeric(first):
            shapes = {np.shape(c) for c in col}
            if len(shapes) > 1:
                raise ValueError(
                    f"A leaf of the {what} has different shapes {sorted(shapes)}; variants "
                    "must have equal shapes (same number of samples, synapses, nodes)."
                )
            if any(isinstance(c, jax.core.Tracer) for c in col):
                out.append(jnp.stack([jnp.asarray(c) for c in col]))
            else:
                out.append(jnp.asarray(np.stack([np.asarray(c) for c in col])))
        else:
            if any(c is not first and c != first for c in col):
                raise ValueError(f"A non-numeric leaf differs between {what}: {first!r}.")
            out.append(first)
    return jax.tree_util.tree_unflatten(treedef, out)


def _pad_trains(stims: list[Stimulus]) -> list[Stimulus]:
    """Pad the spike trains of every group to the widest variant (+inf = no spike)."""
    width: dict[str, int] = {}
    for s in stims:
        for inp in s.inputs:
            width[inp.group] = max(width.get(inp.group, 0), int(inp.trains.times.shape[1]))

    def pad(inp: Input) -> Input:
        t = inp.trains.times
        extra = width[inp.group] - t.shape[1]
        if extra == 0:
            return inp
        t = jnp.concatenate([t, jnp.full((t.shape[0], extra), jnp.inf, t.dtype)], axis=1)
        return Input(inp.group, SpikeTrains(t))

    return [Stimulus(s.clamps, tuple(pad(i) for i in s.inputs)) for s in stims]


def _stack_stimuli(stimuli) -> Stimulus:
    if isinstance(stimuli, (Stimulus, CurrentClamp, Input)) or not isinstance(stimuli, Sequence):
        raise TypeError(
            "stimuli must be a list with one stimulus per variant (each a CurrentClamp, an "
            "Input, a list of them or a Stimulus); pass a stimulus shared by all variants as "
            "stimulus=... instead."
        )
    return stack(_pad_trains([as_stimulus(s) for s in stimuli]), "stimulus")


# ----------------------------------------------------------------------------- dtype
def _float_dtype(dtype):
    x64 = bool(jax.config.read("jax_enable_x64"))
    if dtype is None:
        return np.dtype(np.float64 if x64 else np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be None, 'float32' or 'float64', got {dtype!r}.")
    if dt == np.float64 and not x64:
        raise ValueError(
            "dtype='float64' needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            "at start-up (before creating arrays)."
        )
    return dt


def cast(tree, dtype):
    """`tree` with every floating-point array leaf cast to `dtype` (e.g. a Cell to float32).

    Run the float32 result with 64-bit JAX switched off (``with jax.enable_x64(False):``),
    as `sweep(..., dtype="float32")` does, or constants inside the step promote it back.
    """
    dt = np.dtype(dtype)

    def one(x):
        if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
            return x.astype(dt)
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dt)
        return x

    return jax.tree_util.tree_map(one, tree)


class _Precision:
    """Context of a float32 run: 64-bit JAX off (no-op when it is off already).

    jax 0.10 reuses constants converted from NumPy arrays (node indices, areas) across
    ``jax.enable_x64`` switches, so a float32 trace after a float64 one (or the reverse)
    can mix precisions; JAX's caches are cleared on entering and leaving (the next float64
    call compiles again). For speed, run float32 work in a process with x64 off.
    """

    def __init__(self, dtype):
        self.switch = dtype == np.float32 and bool(jax.config.read("jax_enable_x64"))
        self.ctx = jax.enable_x64(False) if self.switch else None

    def __enter__(self):
        if self.switch:
            jax.clear_caches()
            self.warn = warnings.catch_warnings()
            self.warn.__enter__()
            # float64 requests inside the model (dtype=float) become float32, as intended
            warnings.filterwarnings("ignore", message="Explicitly requested dtype")
            self.ctx.__enter__()

    def __exit__(self, *exc):
        if self.switch:
            out = self.ctx.__exit__(*exc)
            self.warn.__exit__(*exc)
            jax.clear_caches()
            return out
        return False


# ----------------------------------------------------------------------------- engine
def _one(shared: dict, item: dict):
    """Simulate one variant (traced inside vmap)."""
    cell = item["cell"] if "cell" in item else shared["cell"]
    p = dict(item.get("values", {}))
    for name, where in zip(shared["names"], shared["wheres"]):
        cell = cell.set(name, p[name], where=where)
    if shared["apply"] is not None:
        cell = shared["apply"](cell, p)
        if not isinstance(cell, Cell):
            raise TypeError(f"apply must return a jaxdend.Cell, got {type(cell).__name__}.")
    if shared["stimulus_fn"] is not None:
        stim = shared["stimulus_fn"](p)
    elif "stimulus" in item:
        stim = item["stimulus"]
    else:
        stim = shared["stimulus"]
    sol = simulate(cell, stim, shared["t1"], shared["dt"], record=shared["record"],
                   **shared["kwargs"])
    # consuming the final state and the recordings keeps simulate's non-finite check
    # (attached to one of them) alive in the compiled program; otherwise XLA drops it when
    # only features are returned, and NaN would come back silently
    state = [x for x in jax.tree_util.tree_leaves(sol.final_state) if eqx.is_inexact_array(x)]
    recs = [x for x in jax.tree_util.tree_leaves(sol.recordings) if eqx.is_inexact_array(x)]
    finite = jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(x)) for x in state]
        # +inf fills the saves after a terminating event on the diffrax path (as simulate)
        + [jnp.all(jnp.isfinite(jnp.where(jnp.isposinf(x), 0.0, x))) for x in recs]))
    out = {"ts": sol.ts, "finite": finite}
    if shared["keep_traces"]:
        out["recordings"] = sol.recordings
    feats = {}
    for fname, fn in shared["features"]:
        feats[fname] = jnp.asarray(fn(sol.ts, sol.recordings))
    out["features"] = feats
    return out


def _chunk(shared, items, mesh, width):
    return sharded_vmap(_one, mesh, in_axes=(None, 0), vmap_width=width)(shared, items)


#: one compiled program per (cell structure, chunk shape, settings): later calls reuse it
_run_chunk = eqx.filter_jit(_chunk)


def _take(tree, idx):
    return jax.tree_util.tree_map(
        lambda x: x[idx] if (eqx.is_array(x) or isinstance(x, np.ndarray)) else x, tree)


# The CPU rule of vmap_width="auto" (one CPU device, HH, float64; numbers from
# benchmarks/throughput.py and its width study, see benchmarks/README.md).
# With the native tree solve (jaxdend/solve/_native.py, the default on CPU): one vmap over a
# device's block, in groups of at most 6,000 nodes (a step's arrays, ~20 per node, then stay
# in a core's level-2 cache). Session 11, by hand with benchmarks/throughput.py's programs
# (forward, float64, best of 3 alternating, after the batched native kernels): groups of
# 3,900-5,900 nodes against one vmap: reduced cell x1,000 73.7 / 74.0 vs 65.0 / 63.4 Mcs/s
# (x10,000: 73.4 vs 60.4), 1,080-node tree x100 72.7-75.4 vs 64.3 / 68.8, real cell x100
# 61.1 vs 56.0 (930 nodes) and 70.1-70.8 vs 64.3 (1,953 nodes); groups of 9,300-10,800 nodes
# were no better than one vmap (57.8-62.3), gradients the same either way (14.3 vs 14.4, 13.9
# vs 13.3). Before those kernels (sessions 8-10) one vmap in groups of at most 500,000 nodes
# was the rule: session 8 (throughput.py, 400 steps,
# results/throughput.json), batch 100, full width against one at a time: 74.7 vs 47.6 Mcs/s
# (1,080-node tree), 59.4 vs 39.7 (930-node real cell), 45.7 vs 36.5 (1,953 nodes), 37.9 vs
# 22.6 (50-node reduced cell); widths 4 and 16 in between; 10,000 variants of the reduced
# cell (500,000 nodes): full width 48.6 against 45.6 in groups of 1,000. An earlier run with
# groups capped at 100,000 nodes ran 100 tree variants as 92 + 8 at 43.8 against 58.1 at
# full width.
# With the XLA solve (no compiler, JAXDEND_NATIVE=0): groups of ~256 nodes' worth (5 variants
# of the 50-node cell), unless a device's block holds >= 20,000 nodes of cells of up to 512
# nodes: then one vmap in groups of at most 100,000 nodes (reduced cell, 1,000 variants:
# 68-75 vs 45-46 Mcs/s forward; 10,000: 65.6 in groups of 2,000, 48.0 as one vmap). Widths
# in between are 2-3x slower there: XLA compiles the sequential tree solve's loop into one
# kernel only while its state is a few kB, and above that dispatches every iteration, which
# only a very wide vmap amortises; cells of 750-2,000 nodes run one at a time (the whole
# block of 100 was between -16 % and +21 % across session 6's runs).
_CPU_GROUP_NODES = 256
_CPU_WIDE_MAX_NODES = 512
_CPU_WIDE_NODES = 20_000
_CPU_WIDE_GROUP_NODES = 100_000
_CPU_NATIVE_GROUP_NODES = 6_000
# Cells whose runs are one native call (`jaxdend.solve._native_run`: HH and leaks) run eight
# variants side by side in it, so their groups are whole multiples of eight (at least eight;
# benchmarks/throughput.py, session 14, 12:25, forward float64 at batch 100: the 1,017-segment
# tree in groups of 8 114.6 Mcs/s, one vmap 115.9, 16 111.7, 1 / 4 92.6 / 94.1 (groups of 5,
# the rule above, ran them one at a time); C060114A5 nseg 2 97.8 against 96.5 / 95.3 / 81.1 /
# 79.7).
_NATIVE_RUN_LANES = 8


def _auto_width(vmap_width, mesh, n_nodes: int, per_device: int, native_run: bool = False):
    """Variants per vmap group for a block of `per_device` variants per device: "auto" ->
    the rule above on CPU, everything elsewhere. `native_run`: the cell's runs take the
    native path of `jaxdend.solve._native_run` (groups in whole multiples of eight)."""
    if vmap_width == "auto":
        cpu = all(d.platform == "cpu" for d in mesh.devices.flat)
        if not cpu:
            return None
        n_nodes = max(1, int(n_nodes))
        if _native.available() and native_run:
            lanes = _NATIVE_RUN_LANES
            width = max(lanes, _CPU_NATIVE_GROUP_NODES // n_nodes // lanes * lanes)
            return None if per_device <= width else width
        if _native.available():
            group = _CPU_NATIVE_GROUP_NODES
        elif n_nodes <= _CPU_WIDE_MAX_NODES and per_device * n_nodes >= _CPU_WIDE_NODES:
            group = _CPU_WIDE_GROUP_NODES
        else:
            return max(1, _CPU_GROUP_NODES // n_nodes)
        return None if per_device * n_nodes <= group else max(1, group // n_nodes)
    if vmap_width is not None and (isinstance(vmap_width, bool) or not isinstance(
            vmap_width, (int, np.integer)) or vmap_width < 1):
        raise ValueError(f"vmap_width must be 'auto', None or an integer >= 1, got "
                         f"{vmap_width!r}.")
    return vmap_width


def _execute(shared: dict, items: dict, n: int, batch_size, devices, dtype, label: str,
             vmap_width, n_nodes: int):
    """Run `n` variants in equal chunks; returns host arrays with leading axis n."""
    mesh = batch_mesh(devices)
    k = n_devices(mesh)
    size = chunk_size(n, batch_size, k)
    cell = shared.get("cell")
    native_run = isinstance(cell, Cell) and _native_run.cell_fits(cell)
    width = _auto_width(vmap_width, mesh, n_nodes, size // k, native_run)
    n_chunks = int(math.ceil(n / size))
    items, _ = pad_batch(items, size) if items else (items, n)
    if dtype == np.float32:
        shared, items = cast(shared, dtype), cast(items, dtype)
    outs = []
    with _Precision(dtype):
        pending = None
        for c in range(n_chunks + 1):
            launched = None
            if c < n_chunks:
                part = _take(items, slice(c * size, (c + 1) * size))
                part = shard_batch(part, mesh) if k > 1 else part
                with _where_failed(c, size, n, n_chunks, label):
                    launched = (c, _run_chunk(shared, part, mesh, width))
            if pending is not None:  # fetch chunk c - 1 while chunk c runs
                with _where_failed(pending[0], size, n, n_chunks, label):
                    outs.append(_to_host(pending[1]))
            pending = launched
    out = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0)[:n], *outs)
    bad = np.nonzero(~out.pop("finite"))[0]
    if bad.size:
        raise FloatingPointError(
            f"{label}: the simulation of variant(s) {bad[:10].tolist()} (flat index) produced "
            "NaN or inf. Use a smaller dt, the implicit jaxdend.BackwardEuler/CrankNicolson "
            "solvers, float64, or check those parameter values."
        )
    return out


class _where_failed:  # noqa: N801 - used as a context manager
    """Add the failing chunk's variant range to an error raised inside."""

    def __init__(self, c, size, n, n_chunks, label):
        self.c, self.size, self.n, self.n_chunks, self.label = c, size, n, n_chunks, label

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is not None and hasattr(err, "add_note"):
            lo, hi = self.c * self.size, min((self.c + 1) * self.size, self.n) - 1
            err.add_note(f"(raised in {self.label} variants {lo}..{hi} (flat index), chunk "
                         f"{self.c + 1} of {self.n_chunks})")
        return False


def _check_common(t1, dt, features, batch_size):
    if isinstance(features, Mapping):
        feats = tuple((str(k), f) for k, f in features.items())
    elif features is None:
        feats = ()
    else:
        raise TypeError("features must be a dict name -> function(ts, recordings) -> array.")
    for name, f in feats:
        if not callable(f):
            raise TypeError(f"features[{name!r}] must be a function (ts, recordings) -> array.")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
            batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be an integer >= 1 or None, got {batch_size!r}.")
    return feats, float(t1), float(dt)


def _probes_of(cell, record):
    if record is None:
        return {"v": cell.probe("v", "soma")}
    return record


def _assemble(out, shape, dims, coords, units, grid):
    ts = out["ts"]
    ts = ts[0] if np.all(ts == ts[:1]) else ts.reshape(shape + ts.shape[1:])
    recs = {k: v.reshape(shape + v.shape[1:]) for k, v in out.get("recordings", {}).items()}
    feats = {k: v.reshape(shape + v.shape[1:]) for k, v in out["features"].items()}
    return SweepResult(ts=ts, recordings=recs, features=feats, coords=coords, dims=dims,
                       shape=shape, units=units, grid=grid)


# ----------------------------------------------------------------------------- sweep
def _values(name, v, dtype):
    if isinstance(v, jax.core.Tracer):
        raise TypeError(
            f"params[{name!r}] is traced: sweep runs outside jit/grad. For gradients through "
            "many variants use jaxdend.batch.sharded_vmap inside your own jitted function."
        )
    arr = np.asarray(v)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"params[{name!r}] must hold numbers, got dtype {arr.dtype}.")
    arr = arr.astype(dtype)
    if arr.ndim == 0:
        raise ValueError(
            f"params[{name!r}] is a single value; give one value per variant (a 1-D array, or "
            "(n_variants, ...) for per-node values or spike trains). To fix a parameter for all "
            "variants, set it on the cell (cell.set) before the sweep."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"params[{name!r}] is empty; give at least one value.")
    if np.isnan(arr).any() or (not name.startswith(STIM_PREFIX) and np.isinf(arr).any()):
        raise ValueError(
            f"params[{name!r}] contains NaN{'' if name.startswith(STIM_PREFIX) else ' or inf'}; "
            "give finite values (+inf is allowed only as spike-train padding in 'stim.' values)."
        )
    return arr


def sweep(
    cell: Cell,
    params: Mapping[str, Any] | None = None,
    stimulus=None,
    t1: float = 100.0,
    dt: float = 0.025,
    *,
    where: Mapping[str, Any] | None = None,
    grid: bool = False,
    record=None,
    features: Mapping[str, Callable] | None = None,
    keep_traces: bool = True,
    apply: Callable[[Cell, dict], Cell] | None = None,
    batch_size: int | None = None,
    devices=None,
    dtype=None,
    vmap_width: int | str | None = "auto",
    units: Mapping[str, str] | None = None,
    **simulate_kwargs,
) -> SweepResult:
    """Simulate many variants of `cell` at once: parameter sets, stimulus parameters, or both.

    Example, an f-I curve for 5 soma Na densities x 8 current steps (40 variants)::

        res = jaxdend.batch.sweep(
            cell, {"HH.g_na": np.linspace(0.08, 0.16, 5), "stim.amp": np.linspace(0, 1, 8)},
            lambda p: jd.stimulus.step(0, p["stim.amp"], 10.0, 200.0), t1=220.0,
            where={"HH.g_na": "soma"}, grid=True,
            features={"rate": jaxdend.batch.firing_rate((10.0, 210.0))})
        res["rate"]           # (5, 8) Hz
        res["v"]              # (5, 8, n_save, 1) mV
        res.coords["HH.g_na"] # (5,) S/cm^2

    Args:
        cell: the base `Cell`.
        params: name -> values, one entry per variant (zipped, ``grid=False``: all of the
            same length n) or per grid point of that dimension (``grid=True``: the outer
            product, dimensions in the order given). Names: any name of `Cell.set` ("cm"
            uF/cm^2, "ra" Ohm cm, "celsius" degC, "v_init" mV, "HH.g_na" S/cm^2, "HH.e_k" mV,
            "ampa.gmax" nS, ...), set with ``where[name]``; names starting with "stim." (e.g.
            "stim.amp" nA, "stim.trains" spike times ms (n, n_syn, n_spikes)) only reach
            `stimulus` and `apply`. Values: (n,) scalars or (n, ...) arrays (per-node values
            of shape (n, n_nodes), spike trains). Sampled waveforms cannot be built from
            traced values (`jaxdend.stimulus.Sampled` checks them with NumPy): give a list of
            stimuli to `simulate_batch` instead.
        stimulus: a stimulus shared by all variants (anything `simulate` accepts), or a
            function ``p -> stimulus`` of the variant's values ``p`` (dict name -> traced
            value), e.g. ``lambda p: jd.stimulus.step(0, p["stim.amp"], 10.0, 100.0)``.
        t1: end time, ms.
        dt: time step, ms.
        where: name -> node selection for `Cell.set` (region name(s), mask or indices;
            default "all").
        grid: outer product of the values (True) or zipped values (False).
        record: probes as in `simulate` (default: soma potential, key "v").
        features: name -> function ``(ts, recordings) -> array`` evaluated per variant inside
            the compiled run (e.g. `count_spikes`, `firing_rate`, `jaxdend.features`).
        keep_traces: return the recordings (False: features only, far less memory).
        apply: optional ``(cell, p) -> cell`` for edits `Cell.set` cannot express (e.g.
            ``eqx.tree_at`` into a plasticity rule); names it uses need no cell parameter.
        batch_size: variants per compiled chunk (default: all at once); rounded up to a
            multiple of the device count. Chunks run one after another and their results
            move to host memory, so device memory is bounded by one chunk.
        devices: devices to shard every chunk over (see `batch_mesh`; default all devices).
        dtype: None (float64 when jax_enable_x64 is on), "float32" (the cell and values are
            cast and run with 64-bit JAX off: ~1.2-1.8x faster on CPU; against float64, 100 ms
            of spiking: 0.004 mV max on the reduced pyramidal HH cell, 0.04 mV on C060114A5
            at nseg 2, spikes shifted by < 1 us, same spike counts; benchmarks/throughput.py)
            or "float64".
        vmap_width: variants vectorised together per device (see `sharded_vmap`); "auto":
            on CPUs a device's whole share of the chunk in groups of at most 6,000 nodes
            (cache-sized; faster than one variant at a time; without the native CPU tree solve,
            ~256 nodes' worth unless the share holds >= 20,000 nodes of cells of up to 512
            nodes, see jaxdend/batch/_sweep.py); the whole chunk on GPUs; None: the whole
            chunk.
        units: name -> unit for "stim." values (cell parameter units are filled in).
        **simulate_kwargs: passed to `simulate` (solver, record_every, checkpoint, t0, ...).

    Returns:
        A `SweepResult`.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"sweep needs a jaxdend.Cell, got {type(cell).__name__}.")
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise TypeError("params must be a dict name -> values, e.g. {'HH.g_na': [0.1, 0.2]}.")
    if not params:
        raise ValueError("params is empty: give at least one swept value, e.g. "
                         "{'HH.g_na': np.linspace(0.08, 0.16, 5)}.")
    feats, t1, dt = _check_common(t1, dt, features, batch_size)
    dtype = _float_dtype(dtype)
    where = {} if where is None else dict(where)
    unknown_where = sorted(set(where) - set(params))
    if unknown_where:
        raise ValueError(f"where names {unknown_where}, which are not in params.")
    values = {str(k): _values(str(k), v, dtype) for k, v in params.items()}
    names, wheres = [], []
    for name in values:
        if name.startswith(STIM_PREFIX):
            if name in where:
                raise ValueError(f"where[{name!r}]: stimulus values have no node selection.")
            continue
        try:
            cell.selector(name)
        except ValueError as err:
            if apply is None:
                raise ValueError(
                    f"params[{name!r}] is not a cell parameter ({err}) Prefix stimulus values "
                    f"with 'stim.' (e.g. 'stim.amp') or handle the name in apply=."
                ) from None
            continue
        names.append(name)
        wheres.append(_hashable_where(where.get(name, "all")))
        try:  # validate the selection and the value shape now, with concrete values
            first = values[name][0]
            cell.set(name, first, where=where.get(name, "all"))
        except (ValueError, TypeError) as err:
            raise ValueError(f"params[{name!r}]: {err}") from None
    stim_keys = [n for n in values if n.startswith(STIM_PREFIX)]
    if stim_keys and not callable(stimulus):
        raise ValueError(
            f"params has stimulus values {stim_keys}, but stimulus is not a function; give "
            "stimulus=lambda p: jd.stimulus.step(0, p['stim.amp'], ...)."
        )
    if grid:
        shape = tuple(int(v.shape[0]) for v in values.values())
        idx = np.indices(shape).reshape(len(shape), -1)
        flat = {k: v[idx[i]] for i, (k, v) in enumerate(values.items())}
        dims = tuple(values)
    else:
        lengths = {k: int(v.shape[0]) for k, v in values.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"Zipped params need equal lengths, got {lengths}; use grid=True for the "
                "outer product."
            )
        shape = (next(iter(lengths.values())),)
        flat = values
        dims = ("variant",)
    n = int(np.prod(shape, dtype=np.int64))
    unit_map = {k: _unit(cell, k) for k in values}
    unit_map.update(dict(units or {}))
    shared = _shared(cell, None if callable(stimulus) else stimulus,
                     stimulus if callable(stimulus) else None, apply, names, wheres, t1, dt,
                     record, feats, keep_traces, simulate_kwargs)
    out = _execute(shared, {"values": flat}, n, batch_size, devices, dtype, "sweep",
                   vmap_width, cell.n)
    return _assemble(out, shape, dims, values, unit_map, grid)


def _hashable_where(w):
    if isinstance(w, (str, type(None))):
        return w
    if isinstance(w, (list, tuple)) and all(isinstance(x, str) for x in w):
        return tuple(w)
    arr = np.asarray(w)
    if arr.dtype == bool:
        return tuple(np.nonzero(arr)[0].tolist())
    return tuple(np.atleast_1d(arr).astype(int).tolist())


def _unit(cell, name):
    if name in _CELL_UNITS:
        return _CELL_UNITS[name]
    if name.startswith(STIM_PREFIX):
        return None
    try:
        from ..fit._params import _cell_unit

        return _cell_unit(cell, name)
    except Exception:  # noqa: BLE001 - units are informative only
        return None


def _shared(cell, stimulus, stimulus_fn, apply, names, wheres, t1, dt, record, feats,
            keep_traces, kwargs):
    if stimulus is not None:
        stimulus = as_stimulus(stimulus)
    bad = sorted(set(kwargs) & {"stimulus", "t1", "dt", "record"})
    if bad:
        raise TypeError(f"{bad} given twice.")
    return {"cell": cell, "stimulus": stimulus, "stimulus_fn": stimulus_fn, "apply": apply,
            "names": tuple(names), "wheres": tuple(wheres), "t1": t1, "dt": dt,
            "record": _probes_of(cell, record), "features": feats,
            "keep_traces": bool(keep_traces), "kwargs": dict(kwargs)}


# ----------------------------------------------------------------------------- lists
def simulate_batch(
    cells,
    stimuli=None,
    t1: float = 100.0,
    dt: float = 0.025,
    *,
    stimulus=None,
    grid: bool = False,
    record=None,
    features: Mapping[str, Callable] | None = None,
    keep_traces: bool = True,
    batch_size: int | None = None,
    devices=None,
    dtype=None,
    vmap_width: int | str | None = "auto",
    **simulate_kwargs,
) -> SweepResult:
    """Simulate a list of cells (same morphology, different parameters) and/or stimuli.

    Example: 100 cells with random channel densities, each under its own waveform::

        cells = [cell.set("HH.g_na", g).set("HH.g_k", k) for g, k in zip(gs, ks)]
        stims = [jd.stimulus.sampled(0, t, i) for i in waveforms]     # ms, nA
        res = jaxdend.batch.simulate_batch(cells, stims, t1=200.0)    # zipped: 100 runs
        res["v"].shape                                                # (100, n_save, 1)

    Args:
        cells: a `Cell` (shared) or a sequence of cells with the same structure (build them
            from one base cell with `Cell.set` / ``eqx.tree_at``).
        stimuli: None, or a sequence with one stimulus per variant (each a CurrentClamp,
            an Input, a list of them or a Stimulus; the same kinds at the same nodes; spike
            trains of different lengths are padded with +inf).
        t1: end time, ms.
        dt: time step, ms.
        stimulus: a stimulus shared by all variants (when `stimuli` is None).
        grid: with lists of both, every cell under every stimulus (dims "cell",
            "stimulus"); otherwise zipped (equal lengths, dim "variant").
        record, features, keep_traces, batch_size, devices, dtype, vmap_width,
            **simulate_kwargs: as for `sweep`.

    Returns:
        A `SweepResult` (coords "cell" and/or "stimulus": the indices into the lists).
    """
    feats, t1, dt = _check_common(t1, dt, features, batch_size)
    dtype = _float_dtype(dtype)
    if stimuli is not None and stimulus is not None:
        raise ValueError("Give either stimuli (one per variant) or stimulus (shared), not both.")
    many_cells = not isinstance(cells, Cell)
    if many_cells:
        if not isinstance(cells, Sequence) or not cells:
            raise TypeError("cells must be a Cell or a non-empty list of Cells.")
        for c in cells:
            if not isinstance(c, Cell):
                raise TypeError(f"cells must hold jaxdend.Cell objects, got {type(c).__name__}.")
        base = cells[0]
        stacked_cells = stack(cells, "cell")
    else:
        base, stacked_cells = cells, None
    stacked_stims = None if stimuli is None else _stack_stimuli(stimuli)
    n_c = len(cells) if many_cells else 1
    n_s = len(stimuli) if stimuli is not None else 1
    items: dict = {}
    if many_cells and stimuli is not None and grid:
        shape, dims = (n_c, n_s), ("cell", "stimulus")
        ic, is_ = np.indices(shape).reshape(2, -1)
        items["cell"] = _take(stacked_cells, ic)
        items["stimulus"] = _take(stacked_stims, is_)
        coords = {"cell": np.arange(n_c), "stimulus": np.arange(n_s)}
    elif many_cells and stimuli is not None:
        if n_c != n_s:
            raise ValueError(f"{n_c} cells but {n_s} stimuli: zipped lists need equal lengths "
                             "(or grid=True for every cell under every stimulus).")
        shape, dims = (n_c,), ("variant",)
        items = {"cell": stacked_cells, "stimulus": stacked_stims}
        coords = {"cell": np.arange(n_c), "stimulus": np.arange(n_s)}
    elif many_cells:
        shape, dims = (n_c,), ("cell",)
        items = {"cell": stacked_cells}
        coords = {"cell": np.arange(n_c)}
    elif stimuli is not None:
        shape, dims = (n_s,), ("stimulus",)
        items = {"stimulus": stacked_stims}
        coords = {"stimulus": np.arange(n_s)}
    else:
        raise ValueError("Nothing to batch: give a list of cells and/or stimuli= (one per "
                         "variant), or use jaxdend.simulate for one run.")
    n = int(np.prod(shape))
    shared = _shared(base, stimulus, None, None, (), (), t1, dt, record, feats, keep_traces,
                     simulate_kwargs)
    shared["cell"] = None if many_cells else base
    out = _execute(shared, items, n, batch_size, devices, dtype, "simulate_batch",
                   vmap_width, base.n)
    return _assemble(out, shape, dims, coords, {"cell": None, "stimulus": None}, grid)
