"""Config-driven fits of recordings: read the data, build the cell, fit stage by stage,
evaluate on held-out sweeps, write parameters, predictions, plots and a JSON summary.

``run_config("fit.toml")`` (or the command line ``jaxdend fit fit.toml``) does everything;
`Pipeline` exposes the steps (the prepared data, the cell, each stage's model and loss) for
notebooks and benchmarks. The configuration schema is documented in `jaxdend.fit.load_config`.

How a sweep is simulated: the recorded current of the sweep (minus its pre-step holding
current, by default) is injected at the soma as a sampled waveform (linear interpolation);
the cell starts at rest at ``v_init`` (by default each sweep's own pre-step potential, with
the leak reversal of every node set so that this is the resting state); the somatic
potential is compared with the recording on the recording's samples (or, when the sampling
step is not a multiple of the simulation step, on a grid of a multiple of it, to which the
data are linearly interpolated). Sweeps of one protocol are simulated together (vmap).

Held-out evaluation (`sweep_metrics`): subthreshold voltage RMSE (mV) over the samples
outside ``[spike - spike_pre, spike + spike_post]`` of every spike of either trace;
spike-count error (model - data); first-spike latency error (ms, model - data, when both
spike after the step onset).

Units: time ms, voltage mV, current nA, conductance densities S/cm^2, capacitance uF/cm^2,
axial resistivity Ohm cm, lengths um, temperature degC.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import channels as chmod
from .. import features as feat
from .._cell import Cell
from ..features import spike_times
from ..io import Recording, read_abf, read_npz, read_npz_protocols, read_nwb
from ..morphology import (
    Morphology,
    ball_and_stick,
    binary_tree,
    discretize,
    load_morphology,
    reduced_pyramidal,
    y_cell,
)
from ..solve import BackwardEuler, RateTable, simulate
from ..stimulus import CurrentClamp, Sampled
from ._config import (  # ConfigError, FitConfig, load_config: re-exported by jaxdend.fit
    GRAD_MEMORY,
    ConfigError,
    Expression,
    FitConfig,
    ProtocolSpec,
    StageSpec,
    load_config,
)

__all__ = ["ConfigError", "FitConfig", "Pipeline", "PipelineResult", "StageProblem",
           "StageResult", "balance_leak", "load_config", "run_config", "simulate_config",
           "summarize_metrics", "sweep_metrics"]
from ._fit import FitError, FitResult, fit
from ._params import Bounded, Positive, parametrize, unwrap, values

_BUILDERS = {"ball_and_stick": ball_and_stick, "y_cell": y_cell,
             "reduced_pyramidal": reduced_pyramidal, "binary_tree": binary_tree}
_SOMA = 0  # node of the soma (electrode and recorded potential)


# ============================================================================== metrics
def sweep_metrics(t, v_data, v_model, *, stim_start: float, threshold: float = -20.0,
                  spike_pre: float = 2.0, spike_post: float = 10.0) -> dict:
    """Held-out metrics of one sweep: subthreshold RMSE, spike-count and latency errors.

    Spikes are upward crossings of `threshold` (linearly interpolated,
    `jaxdend.features.spike_times`), counted over the whole trace. The subthreshold RMSE
    uses the samples outside ``[s - spike_pre, s + spike_post]`` for every spike s of either
    trace. The first-spike latency is the first crossing at or after `stim_start`, minus it.

    Args:
        t: sample times, ms (1-D).
        v_data: recorded potential, mV (same shape).
        v_model: simulated potential, mV (same shape).
        stim_start: step onset, ms (on the same time axis as `t`).
        threshold: spike threshold, mV.
        spike_pre, spike_post: ms before/after a spike left out of the RMSE (>= 0).

    Returns:
        dict with "subthreshold_rmse_mV" (None when no sample is left), "n_subthreshold"
        (samples used), "spikes_data", "spikes_model", "spike_count_error" (model - data),
        "latency_data_ms", "latency_model_ms" (None without a spike after the onset) and
        "latency_error_ms" (model - data; None unless both spike).
    """
    t = np.asarray(t, dtype=float)
    vd = np.asarray(v_data, dtype=float)
    vm = np.asarray(v_model, dtype=float)
    if t.ndim != 1 or vd.shape != t.shape or vm.shape != t.shape:
        raise ValueError(f"t, v_data and v_model must be 1-D of equal length, got {t.shape}, "
                         f"{vd.shape}, {vm.shape}.")
    if spike_pre < 0 or spike_post < 0:
        raise ValueError(f"spike_pre and spike_post must be >= 0 ms, got {spike_pre}, "
                         f"{spike_post}.")
    sd = spike_times(t, vd, threshold)
    sm = spike_times(t, vm, threshold)
    keep = np.ones(t.shape, bool)
    for s in np.concatenate([sd, sm]):
        keep &= ~((t >= s - spike_pre) & (t <= s + spike_post))
    n_sub = int(keep.sum())
    rmse = float(np.sqrt(np.mean((vm[keep] - vd[keep]) ** 2))) if n_sub else None

    def first(s):
        after = s[s >= stim_start]
        return float(after[0] - stim_start) if after.size else None

    ld, lm = first(sd), first(sm)
    return {
        "subthreshold_rmse_mV": rmse,
        "n_subthreshold": n_sub,
        "spikes_data": int(sd.size),
        "spikes_model": int(sm.size),
        "spike_count_error": int(sm.size) - int(sd.size),
        "latency_data_ms": ld,
        "latency_model_ms": lm,
        "latency_error_ms": None if ld is None or lm is None else lm - ld,
    }


def summarize_metrics(rows: list[dict]) -> dict:
    """Mean metrics of several sweeps (rows from `sweep_metrics`).

    Returns:
        dict with "n_sweeps", "subthreshold_rmse_mV" (mean over sweeps that have one),
        "abs_spike_count_error" (mean |model - data|), "spike_count_error" (mean signed),
        "abs_latency_error_ms" (mean over sweeps where both spike), "latency_missing"
        (sweeps where only one of data and model spikes after the onset); None where empty.
    """
    def mean(xs):
        xs = [x for x in xs if x is not None]
        return float(np.mean(xs)) if xs else None

    return {
        "n_sweeps": len(rows),
        "subthreshold_rmse_mV": mean([r["subthreshold_rmse_mV"] for r in rows]),
        "abs_spike_count_error": mean([abs(r["spike_count_error"]) for r in rows]),
        "spike_count_error": mean([r["spike_count_error"] for r in rows]),
        "abs_latency_error_ms": mean([None if r["latency_error_ms"] is None
                                      else abs(r["latency_error_ms"]) for r in rows]),
        "latency_missing": sum((r["latency_data_ms"] is None) != (r["latency_model_ms"] is None)
                               for r in rows),
    }


# ============================================================================== data
@dataclasses.dataclass(frozen=True, eq=False)
class ProtocolData:
    """One configured protocol, ready to simulate.

    Attributes:
        key: the protocol's key in the configuration.
        rec: the recording after LJP correction, resampling and cropping to the window
            (t from 0 ms, i nA, v mV; every sweep of the file's protocol).
        offset: ms between the file's time axis and `rec.t` (the window start).
        step: (on, off) of the current step in ms on `rec.t`, or None.
        amplitudes: step amplitude of every sweep, nA (holding subtracted), or None.
        holding: holding current of every sweep, nA (zeros without a step).
        baseline: mean pre-step potential of every sweep, mV (NaN without pre-step samples).
        fit, holdout: sweep positions (into `rec`) fitted and held out.
    """

    key: str
    rec: Recording
    offset: float
    step: tuple[float, float] | None
    amplitudes: np.ndarray | None
    holding: np.ndarray
    baseline: np.ndarray
    fit: np.ndarray
    holdout: np.ndarray

    def ids(self, positions) -> list[int]:
        """Sweep ids at `positions`."""
        return [int(self.rec.sweep_ids[p]) for p in np.atleast_1d(positions)]

    def grid(self, dt: float):
        """Compare grid for simulation step `dt` (ms): (record_every, t ms, v mV (all sweeps)).

        The recording's samples when its step is a multiple of `dt`; else the data linearly
        interpolated to the nearest multiple of `dt`.
        """
        ratio = self.rec.dt / dt
        m = max(1, int(round(ratio)))
        if abs(ratio - m) <= 1e-6 * max(1.0, ratio):
            return m, np.asarray(self.rec.t), np.asarray(self.rec.v)
        rr = self.rec.resample(m * dt, current="linear")
        return m, np.asarray(rr.t), np.asarray(rr.v)


def _cfg_err(key: str, err: Exception, fix: str) -> ConfigError:
    return ConfigError(key, str(err).rstrip(".") + ".", fix)


def read_recordings(cfg: FitConfig, recordings=None) -> dict[str, Recording]:
    """The recordings the configuration needs: file protocol name -> `Recording`.

    Args:
        cfg: the configuration.
        recordings: optional in-memory data instead of ``[recording] file``: a `Recording`
            (for a single protocol) or a dict protocol name -> Recording.

    Returns:
        dict protocol name (as in the file) -> Recording (t ms, i nA, v mV).
    """
    spec = cfg.recording
    wanted = sorted({p.protocol for p in spec.protocols.values()})
    if recordings is not None:
        if isinstance(recordings, Recording):
            if len(wanted) != 1:
                raise ConfigError("recording.protocols", "one Recording was given but "
                                  f"{len(wanted)} protocols are configured.",
                                  "pass a dict protocol name -> Recording.")
            return {wanted[0]: recordings}
        if not isinstance(recordings, Mapping):
            raise TypeError("recordings must be a Recording or a dict name -> Recording, got "
                            f"{type(recordings).__name__}.")
        return dict(recordings)
    if spec.file is None:
        raise ConfigError("recording.file", "is missing.",
                          'give file = "path/to/recording" (or pass recordings in memory).')
    try:
        if spec.format == "abf":
            (key,) = spec.protocols
            return {spec.protocols[key].protocol: read_abf(spec.file, protocol=spec.protocols[
                key].protocol)}
        if spec.format == "nwb":
            return read_nwb(spec.file)
        if spec.format == "npz":
            out = read_npz(spec.file)
            if isinstance(out, Recording):
                return {wanted[0] if len(wanted) == 1 else (out.protocol or "protocol"): out}
            return out
        return read_npz_protocols(spec.file, protocols=wanted)
    except (ValueError, TypeError, OSError) as err:
        raise _cfg_err("recording.file", err, f"check the file and format = "
                       f"{spec.format!r}.") from None


def _select(sel: tuple, rec: Recording, amps, key: str, exclude=()) -> np.ndarray:
    kind = sel[0]
    n = rec.n_sweeps
    if kind == "all":
        return np.arange(n)
    if kind == "rest":
        return np.array([k for k in range(n) if k not in set(exclude)], dtype=np.int64)
    if kind == "ids":
        out = []
        for sid in sel[1]:
            hits = np.nonzero(rec.sweep_ids == sid)[0]
            if hits.size == 0:
                raise ConfigError(key, f"sweep id {sid} is not in protocol {rec.protocol!r}.",
                                  f"use ids from {rec.sweep_ids.tolist()}.")
            out.append(int(hits[0]))
        return np.asarray(out, dtype=np.int64)
    if kind == "positions":
        bad = [p for p in sel[1] if not 0 <= p < n]
        if bad:
            raise ConfigError(key, f"positions {bad} are out of range for {n} sweeps.",
                              f"use positions 0..{n - 1}.")
        return np.asarray(sel[1], dtype=np.int64)
    lo, hi = sel[1]
    if amps is None:
        raise ConfigError(key, "selects by amplitude, but no current step was found.",
                          "give step = [on, off] (ms) for the protocol, or list sweep ids.")
    out = np.nonzero((amps >= lo - 1e-9) & (amps <= hi + 1e-9))[0]
    if out.size == 0:
        raise ConfigError(key, f"no sweep has a step amplitude in [{lo:g}, {hi:g}] nA.",
                          f"amplitudes are {np.round(amps, 4).tolist()} nA.")
    return out.astype(np.int64)


def _thin(idx: np.ndarray, k: int) -> np.ndarray:
    if idx.size <= k:
        return idx
    return idx[np.unique(np.round(np.linspace(0, idx.size - 1, k)).astype(int))]


def prepare_protocol(cfg: FitConfig, pspec: ProtocolSpec, rec: Recording, *,
                     max_sweeps: int | None = None) -> ProtocolData:
    """Correct, resample, select and crop one protocol (see `ProtocolData`).

    Args:
        cfg: the configuration ([recording] options).
        pspec: the protocol's section.
        rec: the file's recording of this protocol.
        max_sweeps: keep at most this many held-out sweeps (quick runs; the fit sweeps are
            thinned per stage, see `Pipeline.stage_sweeps`).
    """
    key = f"recording.protocols.{pspec.key}"
    r = cfg.recording
    try:
        if r.ljp:
            rec = rec.correct_ljp(r.ljp)
        if r.resample_dt is not None:
            rec = rec.resample(r.resample_dt)
    except ValueError as err:
        raise _cfg_err("recording.ljp" if "junction" in str(err) else "recording.resample_dt",
                       err, "set ljp = 0.0 if the file is corrected already.") from None
    step = pspec.step
    if step is None:
        try:
            step = rec.step_window()
        except ValueError:
            step = None
    if step is not None and not step[0] < rec.duration:
        raise ConfigError(f"{key}.step", f"the step onset {step[0]:g} ms is after the end of "
                          f"the sweep ({rec.duration:g} ms).", "give step times in ms.")
    amps = None if step is None else rec.stimulus_amplitudes(*step)
    holding = np.zeros(rec.n_sweeps) if step is None else rec.baseline_current(step[0])
    fit_idx = _select(pspec.fit, rec, amps, f"{key}.fit")
    hold_idx = _select(pspec.holdout, rec, amps, f"{key}.holdout", exclude=fit_idx)
    both = sorted(set(fit_idx.tolist()) & set(hold_idx.tolist()))
    if both:
        raise ConfigError(f"{key}.holdout", f"sweep(s) {[int(rec.sweep_ids[b]) for b in both]}"
                          " are both fitted and held out.",
                          "held-out sweeps must not be fitted: narrow one selection.")
    if max_sweeps is not None:  # quick runs: fewer held-out sweeps (fit sweeps: per stage)
        hold_idx = _thin(hold_idx, max_sweeps)
    offset = 0.0
    if pspec.window is not None:
        t0, t1 = pspec.window
        if t1 > rec.duration + 1e-9:
            raise ConfigError(f"{key}.window", f"ends at {t1:g} ms, after the end of the "
                              f"sweep ({rec.duration:g} ms).",
                              f"end the window at most at {rec.duration:g} ms.")
        before = float(rec.metadata.get("t_offset_ms", 0.0))
        rec = rec.window(t0, t1)
        offset = float(rec.metadata["t_offset_ms"]) - before  # the first kept sample, ms
    step_c = None if step is None else (step[0] - offset, step[1] - offset)
    pre = rec.t < (step_c[0] if step_c is not None else -1.0)
    baseline = rec.v[:, pre].mean(axis=1) if pre.any() else np.full(rec.n_sweeps, np.nan)
    return ProtocolData(pspec.key, rec, offset, step_c, amps, np.asarray(holding, float),
                        baseline, fit_idx, hold_idx)


# ============================================================================== cell
def _cut_axon(morph: Morphology, mode: str) -> Morphology:
    """The morphology with its axon kept, cut to its first section ("stub") or removed."""
    if mode == "keep":
        return morph
    secs = morph.sections
    stub = [i for i, s in enumerate(secs) if s.swc_type == 2 and s.parent == 0][:1]
    kept: dict[int, bool] = {}

    def keep(i):
        if i not in kept:
            s = secs[i]
            own = s.swc_type != 2 or (mode == "stub" and i in stub)
            kept[i] = own and (s.parent < 0 or keep(s.parent))
        return kept[i]

    idx = [i for i in range(len(secs)) if keep(i)]
    new = {old: k for k, old in enumerate(idx)}
    out = tuple(dataclasses.replace(secs[i], parent=new[secs[i].parent] if secs[i].parent >= 0
                                    else -1) for i in idx)
    return Morphology(out, name=f"{morph.name}_axon_{mode}")


def build_morphology(cfg: FitConfig) -> Morphology:
    """The configured morphology (file or builder), with the axon option applied."""
    m = cfg.morphology
    if m.file is not None:
        try:
            morph = load_morphology(m.file)
        except (ValueError, OSError, RuntimeError) as err:
            raise _cfg_err("morphology.file", err, "give a readable SWC/ASC/H5 file.") from None
    else:
        try:
            morph = _BUILDERS[m.builder](**m.args)
        except (TypeError, ValueError) as err:
            raise _cfg_err("morphology.args", err,
                           f"see the arguments of jaxdend.{m.builder} (um).") from None
    return _cut_axon(morph, m.axon)


def _nseg_rule(max_length):
    """nseg per section: the fewest odd count with segments <= max_length um (a number or
    {"all": um, "axon": um, ...} by SWC region); the soma gets 1."""
    from ..morphology import SWC_NAMES

    def rule(i, sec):
        if i == 0:
            return 1
        lim = max_length
        if isinstance(lim, Mapping):
            lim = lim.get(SWC_NAMES.get(sec.swc_type, ""), lim["all"])
        n = max(1, math.ceil(sec.length / lim - 1e-9))
        return n if n % 2 else n + 1
    return rule


def _node_values(val, comps, key: str, default: float) -> np.ndarray:
    """Per-node values of a number, Expression or {region: value} table."""
    out = np.full(comps.n, default, dtype=float)
    items = val.items() if isinstance(val, Mapping) else [("all", val)]
    d = np.asarray(comps.distance)
    for region, v in items:
        try:
            mask = comps.mask(region)
        except ValueError as err:
            raise _cfg_err(f"{key}.{region}", err, "use a region of this cell.") from None
        arr = v(d) if isinstance(v, Expression) else np.full(comps.n, float(v))
        out[mask] = arr[mask]
    return out


def build_cell(cfg: FitConfig, morph: Morphology | None = None) -> Cell:
    """The configured cell at its initial parameter values ([morphology], [cell], [[channels]]).

    ``v_init`` is the configured value (-70 mV as a placeholder for "baseline": each sweep
    then sets its own). Units: cm uF/cm^2, ra Ohm cm, densities S/cm^2, mV, degC.
    """
    morph = build_morphology(cfg) if morph is None else morph
    m = cfg.morphology
    c = cfg.cell
    scalar_ra = c.ra if isinstance(c.ra, float) else 100.0
    scalar_cm = c.cm if isinstance(c.cm, float) else 1.0
    try:
        if m.max_length is not None:
            comps = discretize(morph, nseg=_nseg_rule(m.max_length))
        elif m.nseg is not None:
            comps = discretize(morph, nseg=m.nseg)
        else:
            comps = discretize(morph, d_lambda=m.d_lambda, freq=m.freq, ra=scalar_ra,
                               cm=scalar_cm)
    except ValueError as err:
        raise _cfg_err("morphology", err, "check the morphology and its discretisation.") \
            from None
    cm = _node_values(c.cm, comps, "cell.cm", 1.0)
    ra = _node_values(c.ra, comps, "cell.ra", 100.0)
    for name, arr, unit in (("cm", cm, "uF/cm^2"), ("ra", ra, "Ohm cm")):
        if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ConfigError(f"cell.{name}", f"evaluates to values <= 0 or non-finite "
                              f"(min {np.nanmin(arr):g} {unit}).", "give positive values.")
    v_init = -70.0 if c.v_init == "baseline" else c.v_init
    cell = Cell(comps, cm=cm, ra=ra, celsius=c.celsius, v_init=v_init)
    known = {k.__name__: k for k in chmod.ALL_CHANNELS}
    for j, ch in enumerate(cfg.channels):
        key = f"channels[{j + 1}]"
        try:
            mask = ch.where.mask(comps)
        except ValueError as err:
            raise _cfg_err(f"{key}.where", err, "use a region of this cell.") from None
        if not mask.any():
            raise ConfigError(f"{key}.where", f"{ch.where.label()!r} selects no compartment.",
                              "widen the selection (region names, distance range in um).")
        params = {}
        for name, v in ch.params.items():
            params[name] = v(np.asarray(comps.distance)) if isinstance(v, Expression) else v
            if isinstance(v, Expression) and not np.all(np.isfinite(params[name][mask])):
                raise ConfigError(f"{key}.{name}", f"{v.text!r} is not finite on every node.",
                                  "check the expression (e.g. log of 0 at d = 0).")
        try:
            cell = cell.insert(known[ch.type](**params), where=mask)
        except (ValueError, TypeError) as err:
            raise _cfg_err(key, err, f"check the parameters of {ch.type}.") from None
    if c.balance_leak and cell.channels:
        kinds = [type(x).__name__ for x in cell.channels]
        if "Leak" not in kinds:
            raise ConfigError("cell.balance_leak", "needs a Leak channel (its reversal is "
                              "set so that v_init is the resting state).",
                              'insert [[channels]] type = "Leak" everywhere, or set '
                              "balance_leak = false.")
        leak = np.asarray(cell.masks[kinds.index("Leak")])
        other = np.zeros(comps.n, bool)
        for kind, mk in zip(kinds, cell.masks):
            if kind != "Leak":
                other |= np.asarray(mk)
        bad = other & ~leak & ~np.asarray(comps.is_junction)
        if bad.any():
            raise ConfigError("cell.balance_leak", f"{int(bad.sum())} compartment(s) have "
                              "channels but no Leak to balance them.",
                              'insert Leak with where = "all", or set balance_leak = false.')
    return cell


def balance_leak(cell: Cell, v_rest) -> Cell:
    """Set the Leak reversal of every node so that `v_rest` (mV) is the resting state.

    With every gate at its steady state at `v_rest`, the other channels carry a current
    ``i`` (mA/cm^2) per node; ``Leak.e = v_rest + i / Leak.g`` cancels it, so the cell stays
    at `v_rest` without input. Also sets ``v_init = v_rest``. Differentiable (under jit).

    Args:
        cell: a cell with a `Leak` channel (g > 0 where other channels are inserted).
        v_rest: resting potential, mV (scalar, may be traced).

    Returns:
        The cell with the balanced Leak.e (mV) and v_init.
    """
    kinds = [type(x).__name__ for x in cell.channels]
    v0 = jnp.asarray(v_rest, dtype=float)
    cell = eqx.tree_at(lambda c: c.v_init, cell, v0)
    if "Leak" not in kinds:
        return cell
    k = kinds.index("Leak")
    v = jnp.full((cell.n,), v0)
    total = jnp.zeros((cell.n,))
    for j, (ch, mask) in enumerate(zip(cell.channels, cell.masks)):
        if j == k:
            continue
        total = total + jnp.where(mask, ch.current(ch.init_state(v, cell.celsius), v), 0.0)
    leak = cell.channels[k]
    g = jnp.asarray(leak.g)
    ok = cell.masks[k] & (g > 0)
    e = jnp.where(ok, v + total / jnp.where(ok, g, 1.0), leak.e)
    return eqx.tree_at(lambda c: c.channels[k].e, cell, e)


# ============================================================================== stages
class _Batch:
    """The fit (or evaluation) sweeps of one protocol at one simulation step."""

    def __init__(self, pd: ProtocolData, positions, dt: float, cfg: FitConfig, *,
                 solver, grad_memory, loss=None, key: str = ""):
        self.pd = pd
        self.positions = np.asarray(positions, dtype=np.int64)
        self.dt = float(dt)
        self.m, self.t, v_all = pd.grid(dt)
        self.v = v_all[self.positions]
        self.n = int(self.positions.size)
        r = cfg.recording
        i = np.asarray(pd.rec.i[self.positions])
        if r.subtract_holding:
            i = i - pd.holding[self.positions][:, None]
        self.i = i
        self.t_stim = np.asarray(pd.rec.t)
        if cfg.cell.v_init == "baseline":
            v0 = pd.baseline[self.positions]
            if np.any(~np.isfinite(v0)):
                raise ConfigError(f"recording.protocols.{pd.key}.window", "has no sample before "
                                  "the step, so the baseline potential (v_init = \"baseline\") "
                                  "is unknown.", "start the window before the step onset, or "
                                  "give cell.v_init in mV.")
        else:
            v0 = np.full(self.n, cfg.cell.v_init)
        self.v0 = v0
        self.balance = cfg.cell.balance_leak
        self.solver = solver
        self.grad_memory = grad_memory
        self.threshold = r.spike_threshold
        self.t1 = (self.t.size - 1) * self.m * self.dt
        self.loss_spec = loss
        if loss is not None:
            self._prepare_loss(cfg, key)

    # ------------------------------------------------------------ simulation
    def simulate(self, cell: Cell):
        """Somatic potential of the batch's sweeps, mV, (n_sweeps, n_samples)."""
        template = Sampled(self.t_stim, np.zeros_like(self.t_stim))
        probe = cell.probe("v", index=_SOMA)

        def one(i_k, v0_k):
            wf = eqx.tree_at(lambda w: w.i, template, i_k)
            c = balance_leak(cell, v0_k) if self.balance else eqx.tree_at(
                lambda c: c.v_init, cell, v0_k)
            sol = simulate(c, CurrentClamp(_SOMA, wf), t1=self.t1, dt=self.dt, record=probe,
                           record_every=self.m, solver=self.solver,
                           checkpoint=self.grad_memory)
            return sol["v"][:, 0]

        return jax.vmap(one)(jnp.asarray(self.i), jnp.asarray(self.v0))

    # ------------------------------------------------------------ loss
    def _window_mask(self, window, key):
        if window is None:
            return np.ones(self.t.size, bool)
        t0, t1 = window[0] - self.pd.offset, window[1] - self.pd.offset
        m = (self.t >= t0) & (self.t <= t1)
        if m.sum() < 2:
            raise ConfigError(key, f"the window {list(window)} ms has fewer than 2 samples in "
                              f"protocol {self.pd.key!r} (its samples span "
                              f"{self.pd.offset:g}-{self.pd.offset + self.t[-1]:g} ms).",
                              "give a window inside the protocol window, in file time (ms).")
        return m

    def _prepare_loss(self, cfg: FitConfig, key: str):
        spec = self.loss_spec
        ev = cfg.evaluation
        self.terms = {}
        if spec.voltage is not None and spec.voltage["weight"] > 0:
            w = self._window_mask(spec.voltage["window"], f"{key}.voltage.window")
            mask = np.broadcast_to(w, self.v.shape).copy()
            if spec.voltage["exclude_spikes"]:
                for k in range(self.n):
                    for s in spike_times(self.t, self.v[k], self.threshold):
                        mask[k] &= ~((self.t >= s - ev.spike_pre) & (self.t <= s + ev.spike_post))
            if np.any(mask.sum(axis=1) == 0):
                raise ConfigError(f"{key}.voltage", "leaves no sample in a sweep of protocol "
                                  f"{self.pd.key!r}.", "widen the window or set "
                                  "exclude_spikes = false.")
            self.terms["voltage"] = (spec.voltage["weight"], mask.astype(float))
        if spec.spikes is not None and spec.spikes["weight"] > 0:
            win = spec.spikes["window"]
            w = None if win is None else (win[0] - self.pd.offset, win[1] - self.pd.offset)
            self._window_mask(win, f"{key}.spikes.window")
            times = [spike_times(self.t, self.v[k], self.threshold) for k in range(self.n)]
            if w is not None:
                times = [s[(s >= w[0]) & (s <= w[1])] for s in times]
            kmax = max([1] + [s.size for s in times])
            pad = np.full((self.n, kmax), np.nan)
            for k, s in enumerate(times):
                pad[k, :s.size] = s
            self.terms["spikes"] = (spec.spikes["weight"], pad, spec.spikes["tau"], w,
                                    2 * kmax + 4)
        if spec.features is not None and spec.features["weight"] > 0:
            if self.pd.step is None:
                raise ConfigError(f"{key}.features", f"protocol {self.pd.key!r} has no "
                                  "detected current step for the feature windows.",
                                  f"give recording.protocols.{self.pd.key}.step = [on, off] ms.")
            on, off = self.pd.step
            off = min(off, float(self.t[-1]))
            if not on > self.t[0] or not off > on:
                raise ConfigError(f"{key}.features", f"protocol {self.pd.key!r}: the step "
                                  "must start inside the window (features need a baseline "
                                  "before it).", "start the window before the step onset.")
            names = list(spec.features["scales"])
            amps = (np.zeros(self.n) if self.pd.amplitudes is None
                    else self.pd.amplitudes[self.positions])
            if "input_resistance" in names and np.any(np.abs(amps) < 1e-6):
                raise ConfigError(f"{key}.features.scales.input_resistance", "a fitted sweep "
                                  f"of protocol {self.pd.key!r} has a 0 nA step.",
                                  "fit input resistance on sweeps with a nonzero step.")
            self.feature_args = (on, off, jnp.asarray(amps))
            target = np.asarray(self.features(jnp.asarray(self.v), names))
            scales = np.array([spec.features["scales"][n] for n in names])
            self.terms["features"] = (spec.features["weight"], names, target, scales)

    def features(self, v, names):
        """Features (n_sweeps, n_features) of traces `v` (n_sweeps, n_samples), each in
        its unit (see ``FEATURE_UNITS``)."""
        t = jnp.asarray(self.t)
        on, off, amps = self.feature_args
        thr = self.threshold

        def one(vk, amp):
            out = []
            for name in names:
                if name == "spike_count":
                    x = feat.spike_count(t, vk, threshold=thr, window=(on, off))
                elif name == "first_spike_latency":
                    x = feat.first_spike_latency(t, vk, on, threshold=thr, stim_end=off)
                elif name == "ap_amplitude":
                    x = feat.ap_amplitude(t, vk, threshold=thr, window=(on, off))
                elif name == "ap_half_width":
                    x = feat.ap_half_width(t, vk, threshold=thr, window=(on, off))
                elif name == "ahp_depth":
                    x = feat.ahp_depth(t, vk, threshold=thr, window=(on, off))
                elif name == "input_resistance":
                    x = feat.input_resistance(t, vk, on, off, amp)
                elif name == "membrane_time_constant":
                    x = feat.membrane_time_constant(t, vk, on, off)
                else:
                    x = feat.sag_ratio(t, vk, on, off)
                out.append(x)
            return jnp.stack(out)

        return jax.vmap(one)(v, amps)

    def loss(self, v):
        """Weighted loss terms summed over the batch's sweeps (dimensionless / mV^2)."""
        from ._losses import spike_time_loss

        total = jnp.zeros(())
        if "voltage" in self.terms:
            w, mask = self.terms["voltage"]
            d = jnp.asarray(self.v)
            per = jnp.sum(mask * (v - d) ** 2, axis=1) / jnp.sum(mask, axis=1)
            total = total + w * jnp.sum(per)
        if "spikes" in self.terms:
            w, pad, tau, win, k = self.terms["spikes"]
            t = jnp.asarray(self.t)
            per = jax.vmap(lambda vk, tk: spike_time_loss(
                t, vk, tk, threshold=self.threshold, tau=tau, max_spikes=k, window=win))(
                v, jnp.asarray(pad))
            total = total + w * jnp.sum(per)
        if "features" in self.terms:
            w, names, target, scales = self.terms["features"]
            pred = self.features(v, names)
            total = total + w * jnp.sum(((pred - target) / scales) ** 2)
        return total


@dataclasses.dataclass(frozen=True, eq=False)
class StageProblem:
    """One stage's fitting problem: the wrapped model and its loss.

    Attributes:
        spec: the stage's configuration.
        model: the wrapped model, ``{"cell": Cell with wrappers, "scale": {name: wrapper}}``.
        loss_fn: concrete model -> scalar loss (the weighted terms averaged over sweeps;
            mV^2 for the voltage term, dimensionless otherwise).
        batches: the protocols' sweep batches.
        scales: (name, parameter, node mask) of every scale factor.
    """

    spec: StageSpec
    model: Any
    loss_fn: Any
    batches: tuple
    scales: tuple

    def cell(self, concrete_model) -> Cell:
        """The concrete Cell of a concrete (unwrapped) model: scale factors applied."""
        return apply_scales(concrete_model, self.scales)

    def fitted_cell(self, result: FitResult) -> Cell:
        """The best cell of a `fit` result of this problem."""
        return self.cell(unwrap(result.model))

    def n_sweeps(self) -> int:
        """Number of sweeps in the loss."""
        return sum(b.n for b in self.batches)


def apply_scales(concrete_model, scales) -> Cell:
    """``model["cell"]`` with every fitted factor applied (``value * factor`` on its nodes)."""
    cell = concrete_model["cell"]
    for name, param, mask in scales:
        s = concrete_model["scale"][name]
        if param in ("celsius", "v_init"):
            cell = cell.set(param, cell.get(param) * s)
        else:
            cell = cell.set(param, cell.get(param) * s, where=mask)
    return cell


def _default_mask(cell: Cell, name: str) -> np.ndarray | None:
    if name in ("celsius", "v_init"):
        return None
    if name in ("cm", "ra"):
        return np.ones(cell.n, bool)
    kind = name.partition(".")[0]
    kinds = [type(c).__name__ for c in cell.channels]
    if kind in kinds:
        return np.asarray(cell.masks[kinds.index(kind)], bool)
    return None


def wrap_parameters(cell: Cell, specs, cfg: FitConfig, stage_key: str):
    """Wrap the parameters of a stage: (model, scales) (see `StageProblem`).

    Raises:
        ConfigError: an unknown parameter, an empty selection, or an initial value outside
            the bounds (naming the parameter's key).
    """
    comps = cell.comps
    spec_dict: dict[str, list] = {}
    scale_wrappers, scales = {}, []
    for p in specs:
        if p.name == "Leak.e" and cfg.cell.balance_leak:
            raise ConfigError(p.key, "Leak.e is set by cell.balance_leak (so that v_init is the "
                              "resting state).", "fit v_init instead, or set balance_leak = "
                              "false.")
        if p.name == "v_init" and cfg.cell.v_init == "baseline":
            raise ConfigError(p.key, "v_init is each sweep's baseline (cell.v_init = "
                              "\"baseline\").", "give cell.v_init in mV to fit it.")
        try:
            cell.selector(p.name)
        except ValueError as err:
            raise _cfg_err(p.key, err, "name a parameter as in Cell.set (\"cm\", \"ra\", "
                           "\"Leak.g\", \"MainenNa.g_na\", ...).") from None
        scalar = p.name in ("celsius", "v_init")
        mask = None
        if p.where is not None:
            if scalar:
                raise ConfigError(f"{p.key}.where", f"{p.name} is one value per cell.",
                                  "remove where.")
            try:
                mask = p.where.mask(comps)
            except ValueError as err:
                raise _cfg_err(f"{p.key}.where", err, "use a region of this cell.") from None
            default = _default_mask(cell, p.name)
            if default is not None:
                mask = mask & default
            if not mask.any():
                raise ConfigError(f"{p.key}.where", f"{p.where.label()!r} selects no node "
                                  f"where {p.name} is defined.", "check the region (and that "
                                  "the channel is inserted there).")
        label = p.report_name()
        if p.scale:
            m = _default_mask(cell, p.name) if mask is None else mask
            kw = {"init": p.init, "name": label, "unit": "1"}
            scale_wrappers[label] = (Positive(**kw) if p.positive else
                                     Bounded(*p.bounds, log=p.log, **kw))
            scales.append((label, p.name, m))
            continue
        if p.init is not None:
            if scalar:
                cell = cell.set(p.name, p.init)
            else:
                cell = cell.set(p.name, p.init, where=mask if mask is not None else
                                _default_mask(cell, p.name))
        kw = {"where": mask, "per_node": p.per_node, "name": label}
        w = Positive(**kw) if p.positive else Bounded(*p.bounds, log=p.log, **kw)
        spec_dict.setdefault(p.name, []).append((p, w))
    wrapped = cell
    if spec_dict:
        for name, items in spec_dict.items():
            try:
                wrapped = parametrize(wrapped, {name: [w for _, w in items]})
            except ValueError as err:
                key = items[0][0].key
                raise _cfg_err(key if len(items) == 1 else key.rsplit("[", 1)[0], err,
                               "set init inside the bounds, or widen the bounds (they are "
                               "open: the value must lie strictly inside)." if "bounds" in
                               str(err) else "check the parameter and its where.") from None
    return {"cell": wrapped, "scale": scale_wrappers}, tuple(scales)


# ============================================================================== results
@dataclasses.dataclass(frozen=True, eq=False)
class StageResult:
    """One stage's outcome.

    Attributes:
        name: the stage name.
        fit: the `FitResult` (history, evaluations, best model, ...).
        values: fitted values with units (`jaxdend.fit.values` of the best model).
        cell: the concrete cell after the stage.
        seconds: wall time of the stage's fit, s.
        evaluation: held-out evaluation after the stage (see `Pipeline.evaluate`), or None.
    """

    name: str
    fit: FitResult
    values: dict
    cell: Cell
    seconds: float
    evaluation: dict | None


@dataclasses.dataclass(frozen=True, eq=False)
class PipelineResult:
    """Outcome of `run_config` / `Pipeline.run`.

    Attributes:
        cell: the fitted concrete cell (units as in `Cell.set`).
        stages: one `StageResult` per stage.
        evaluation: final evaluation: protocol -> role ("fit"/"holdout") -> {"sweeps":
            per-sweep metrics, "summary": means}, plus "holdout_summary" over protocols.
        summary: the JSON written to ``result.json``.
        out: the output folder, or None.
    """

    cell: Cell
    stages: tuple[StageResult, ...]
    evaluation: dict
    summary: dict
    out: Path | None

    def values(self) -> dict:
        """Fitted values of every stage: "stage/parameter" -> {"value", "unit", ...}."""
        out = {}
        for s in self.stages:
            for k, v in s.values.items():
                out[f"{s.name}/{k}"] = v
        return out


def _json_safe(x):
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_safe(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x


def _fmt(x, spec=".3g") -> str:
    return "-" if x is None else format(x, spec)


def evaluation_table(evaluation: dict) -> str:
    """The evaluation as a Markdown table (protocol, role, sweeps, subthreshold RMSE mV,
    |spike-count error|, |first-spike latency error| ms, sweeps where only one spikes)."""
    lines = ["| protocol | sweeps | n | subthreshold RMSE mV | abs spike-count error | "
             "abs latency error ms | latency missing |", "|---|---|---|---|---|---|---|"]
    for key, roles in evaluation.items():
        if key == "holdout_summary":
            continue
        for role, entry in roles.items():
            s = entry["summary"]
            lines.append(f"| {key} | {role} | {s['n_sweeps']} | "
                         f"{_fmt(s['subthreshold_rmse_mV'], '.2f')} | "
                         f"{_fmt(s['abs_spike_count_error'], '.2f')} | "
                         f"{_fmt(s['abs_latency_error_ms'], '.2f')} | {s['latency_missing']} |")
    return "\n".join(lines)


# ============================================================================== pipeline
class Pipeline:
    """A prepared fit: recordings read and cropped, cell built, every stage checked.

    Example::

        pipe = Pipeline(load_config("fit.toml"))
        problem = pipe.stage_problem(0)            # the first stage's model and loss
        result = pipe.run(out="fit_output")        # all stages, evaluation, files

    Args:
        config: a `FitConfig`, a TOML path or a dict (see `load_config`).
        recordings: optional in-memory recordings (a `Recording` or dict protocol ->
            Recording) instead of ``[recording] file``.
        quick: apply ``[quick]`` (few steps, few sweeps): a smoke run.
        steps: optimiser steps of every stage (overrides the configuration).
        verbose: print progress messages.
        base_dir: folder for relative paths of a dict configuration.
        check_stages: check every stage's data and parameters now (False: for simulations).

    Attributes:
        config: the configuration used.
        protocols: key -> `ProtocolData`.
        cell: the initial cell.

    Raises:
        ConfigError: a problem with the data or the cell (sweep ids, regions, bounds ...).
    """

    def __init__(self, config, *, recordings=None, quick: bool = False,
                 steps: int | None = None, verbose: bool = True, base_dir=None,
                 check_stages: bool = True):
        cfg = load_config(config, base_dir=base_dir)
        if cfg.recording is None:
            raise ConfigError("recording", "is required for fitting but missing.",
                              "add a [recording] section with file and protocols.")
        if check_stages and not cfg.stages:
            raise ConfigError("stage", "no [[stage]] is configured.",
                              "add at least one [[stage]] with protocols, parameters, loss.")
        if quick:
            cfg = cfg.with_quick()
        if steps is not None:
            cfg = cfg.with_steps(steps)
        self.config = cfg
        self.quick = quick
        self.verbose = verbose
        self._say = print if verbose else (lambda *a, **k: None)
        recs = read_recordings(cfg, recordings)
        self.protocols: dict[str, ProtocolData] = {}
        for key, pspec in cfg.recording.protocols.items():
            if pspec.protocol not in recs:
                raise ConfigError(f"recording.protocols.{key}.protocol", f"protocol "
                                  f"{pspec.protocol!r} is not in the recording.",
                                  f"use one of {sorted(recs)}.")
            self.protocols[key] = prepare_protocol(
                cfg, pspec, recs[pspec.protocol],
                max_sweeps=cfg.quick.max_sweeps if quick else None)
        self.cell = build_cell(cfg)
        # check every stage now (data windows, features, parameter names and bounds), before
        # any compute is spent
        fitted: set[str] = set()
        for st in cfg.stages if check_stages else ():
            self._batches(st)
            fresh = [p for p in st.parameters if p.name not in fitted]
            if fresh:
                wrap_parameters(self.cell, fresh, cfg, st.key)
            fitted |= {p.name for p in st.parameters}

    # ------------------------------------------------------------ building blocks
    def _solver(self, rate_table: bool):
        return BackwardEuler(rate_table=RateTable()) if rate_table else BackwardEuler()

    def stage_sweeps(self, st: StageSpec, key: str) -> np.ndarray:
        """Sweep positions of protocol `key` fitted by stage `st` (``sweeps`` or every fit
        sweep; at most ``[quick] max_sweeps`` in a quick run)."""
        pd = self.protocols[key]
        if pd.fit.size == 0:
            raise ConfigError(f"recording.protocols.{key}.fit", "selects no sweep.",
                              "list the sweeps to fit.")
        pos = pd.fit
        if key in st.sweeps:
            skey = f"{st.key}.sweeps.{key}"
            pos = _select(st.sweeps[key], pd.rec, pd.amplitudes, skey)
            extra = sorted(set(pos.tolist()) - set(pd.fit.tolist()))
            if extra:
                raise ConfigError(skey, f"sweep(s) {pd.ids(extra)} are not fit sweeps of "
                                  f"protocol {key!r} (fit: {pd.ids(pd.fit)}).",
                                  "stages fit only sweeps listed in the protocol's fit; "
                                  "held-out sweeps stay unseen.")
        if self.quick:
            pos = _thin(pos, self.config.quick.max_sweeps)
        return pos

    def _batches(self, st: StageSpec) -> tuple[_Batch, ...]:
        out = []
        for key in st.protocols:
            pd = self.protocols[key]
            out.append(_Batch(pd, self.stage_sweeps(st, key), st.dt, self.config,
                              solver=self._solver(
                st.rate_table), grad_memory=GRAD_MEMORY[st.grad_memory], loss=st.loss,
                key=f"{st.key}.loss"))
        return tuple(out)

    def stage_problem(self, index: int, cell: Cell | None = None) -> StageProblem:
        """The model and loss of stage `index` (0-based), starting from `cell`.

        Args:
            index: stage position.
            cell: the concrete cell to start from (default: the initial cell).
        """
        st = self.config.stages[index]
        cell = self.cell if cell is None else cell
        batches = self._batches(st)
        model, scales = wrap_parameters(cell, st.parameters, self.config, st.key)
        n = sum(b.n for b in batches)

        def loss_fn(concrete):
            c = apply_scales(concrete, scales)
            total = jnp.zeros(())
            for b in batches:
                total = total + b.loss(b.simulate(c))
            return total / n

        return StageProblem(st, model, loss_fn, batches, scales)

    def simulate_sweeps(self, cell: Cell, key: str, positions, dt: float):
        """Simulate sweeps of protocol `key`: (t ms, model mV, data mV) on the compare grid.

        Args:
            cell: concrete cell.
            key: protocol key.
            positions: sweep positions.
            dt: simulation step, ms.
        """
        pd = self.protocols[key]
        b = _Batch(pd, positions, dt, self.config, solver=BackwardEuler(), grad_memory=True)
        v = eqx.filter_jit(b.simulate)(cell)
        return b.t, np.asarray(v), b.v

    def evaluate(self, cell: Cell, *, dt: float | None = None, roles=("fit", "holdout")
                 ) -> dict:
        """Metrics of `cell` on the configured sweeps (`sweep_metrics` per sweep).

        Args:
            cell: concrete cell.
            dt: simulation step, ms (default ``[evaluation] dt`` or the last stage's).
            roles: which sweeps: "fit" and/or "holdout".

        Returns:
            protocol key -> role -> {"ids", "sweeps" (per-sweep dicts), "summary"}, plus
            "holdout_summary": the means over every protocol's held-out sweeps.
        """
        cfg = self.config
        dt = dt or cfg.evaluation.dt or cfg.stages[-1].dt
        out: dict = {}
        pooled = []
        self._traces = {}
        for key, pd in self.protocols.items():
            parts = {r: getattr(pd, r) for r in roles if getattr(pd, r).size}
            if self.quick and "fit" in parts:
                parts["fit"] = _thin(parts["fit"], cfg.quick.max_sweeps)
            if not parts:
                continue
            pos = np.concatenate(list(parts.values()))
            t, vm, vd = self.simulate_sweeps(cell, key, pos, dt)
            self._traces[key] = (t, vm, vd, pos)
            start = pd.step[0] if pd.step is not None else 0.0
            out[key] = {}
            j = 0
            for role, idx in parts.items():
                rows = []
                for k in range(idx.size):
                    row = sweep_metrics(t, vd[j + k], vm[j + k], stim_start=start,
                                        threshold=cfg.recording.spike_threshold,
                                        spike_pre=cfg.evaluation.spike_pre,
                                        spike_post=cfg.evaluation.spike_post)
                    row["id"] = pd.ids(idx[k])[0]
                    row["amplitude_nA"] = (None if pd.amplitudes is None
                                           else float(pd.amplitudes[idx[k]]))
                    rows.append(row)
                j += idx.size
                out[key][role] = {"ids": pd.ids(idx), "sweeps": rows,
                                  "summary": summarize_metrics(rows)}
                if role == "holdout":
                    pooled += rows
        out["holdout_summary"] = summarize_metrics(pooled)
        return out

    # ------------------------------------------------------------ run
    def run(self, out: str | os.PathLike | None = None, *, resume: bool = False,
            progress: bool = True) -> PipelineResult:
        """Fit every stage in order, evaluate, and write the outputs.

        Args:
            out: output folder (default ``[output] folder``); None in the configuration and
                here is not possible: every run writes its checkpoints and results.
            resume: continue from the checkpoints in ``out/checkpoints`` (finished stages
                are not repeated; an interrupted stage continues where it stopped).
            progress: show a progress bar per stage.

        Returns:
            A `PipelineResult`.
        """
        cfg = self.config
        say = self._say
        out = Path(out) if out is not None else cfg.output.folder
        out.mkdir(parents=True, exist_ok=True)
        (out / "checkpoints").mkdir(exist_ok=True)
        cell = self.cell
        t_start = time.perf_counter()
        say(f"jaxdend fit {cfg.name!r}: {cell.n} nodes, {len(cfg.stages)} stage(s), "
            f"protocols {', '.join(f'{k} ({p.fit.size} fit / {p.holdout.size} held out)' for k, p in self.protocols.items())}")  # noqa: E501
        stages = []
        for k, st in enumerate(cfg.stages):
            problem = self.stage_problem(k, cell)
            names = [n for n, _ in _param_names(problem.model)]
            say(f"\nstage {k + 1}/{len(cfg.stages)} {st.name!r}: {len(names)} parameter(s) "
                f"({', '.join(names)}) on {problem.n_sweeps()} sweep(s), dt {st.dt:g} ms, "
                f"{st.optimizer} x {st.steps} steps" + (f", {st.starts} starts"
                                                       if st.starts > 1 else ""))
            ckpt = out / "checkpoints" / f"{k + 1:02d}_{st.name}.ckpt"
            # the checkpoint continues a stage only if the stage starts from the same values
            # (an earlier stage that ran further since then makes it stale)
            start = out / "checkpoints" / f"{k + 1:02d}_{st.name}.start"
            mark = _fingerprint(cell)
            if resume and ckpt.exists() and (not start.exists() or start.read_text() != mark):
                say("  its checkpoint was written from other starting values (an earlier stage "
                    "changed): the stage starts afresh")
                ckpt.unlink()
            start.write_text(mark)
            opt = (optax.adam(st.learning_rate) if st.optimizer == "adam"
                   else optax.lbfgs(learning_rate=st.learning_rate))
            t0 = time.perf_counter()
            try:
                res = fit(problem.loss_fn, problem.model, optimizer=opt, steps=st.steps,
                          progress=progress, patience=st.patience, target_loss=st.target_loss,
                          checkpoint=ckpt, checkpoint_every=st.checkpoint_every,
                          resume=resume, starts=st.starts,
                          key=jax.random.PRNGKey(cfg.seed + k))
            except FitError as err:
                raise FitError(f"stage {st.name!r}: {err}", err.result) from err
            seconds = time.perf_counter() - t0
            cell = problem.fitted_cell(res)
            vals = values(res.model)
            say(f"  best loss {res.best_loss:.5g} (step {res.best_step}, start "
                f"{res.best_start}), {res.n_evaluations} evaluations, {seconds:.1f} s")
            for name, e in vals.items():
                if e["trainable"]:
                    say(f"    {name:40s} {_value_text(e['value'])} {e['unit'] or ''}")
            _save_params(out / f"params_{k + 1:02d}_{st.name}.json", vals)
            ev = None
            if cfg.evaluation.after_each_stage and k < len(cfg.stages) - 1:
                ev = self.evaluate(cell, roles=("holdout",))
                say("  held-out evaluation:\n" + _indent(evaluation_table(ev)))
            stages.append(StageResult(st.name, res, vals, cell, seconds, ev))
        say("\nfinal evaluation (fit and held-out sweeps):")
        final = self.evaluate(cell)
        say(evaluation_table(final))
        files = self._write_outputs(out, cell, stages, final)
        summary = {
            "name": cfg.name,
            "n_nodes": cell.n,
            "quick": self.quick,
            "seconds": time.perf_counter() - t_start,
            "stages": [{
                "name": s.name, "best_loss": s.fit.best_loss, "best_step": s.fit.best_step,
                "steps": s.fit.steps, "n_evaluations": s.fit.n_evaluations,
                "stop_reason": s.fit.stop_reason, "seconds": s.seconds, "values": s.values,
                "history": np.asarray(s.fit.history).tolist(), "evaluation": s.evaluation,
            } for s in stages],
            "evaluation": final,
            "files": files,
            "config": cfg.raw,
        }
        summary = _json_safe(summary)
        (out / "result.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
        say(f"\nwrote {out / 'result.json'} ({summary['seconds']:.0f} s in all)")
        return PipelineResult(cell, tuple(stages), final, summary, out)

    def _write_outputs(self, out: Path, cell: Cell, stages, final) -> list[str]:
        from ..io import save_cell, save_prediction

        cfg = self.config
        files = []
        merged = {}
        for s in stages:
            merged.update({k: v for k, v in s.values.items() if v["trainable"]})
        files.append(str(_save_params(out / "params.json", merged)))
        if cfg.output.save_cell:
            files += [str(p) for p in save_cell(out / "fitted_cell.eqx", cell)]
        pred = out / "predictions"
        pred.mkdir(exist_ok=True)
        ext = "nwb" if cfg.output.format == "nwb" else "npz"
        for key, (t, vm, vd, pos) in self._traces.items():
            pd = self.protocols[key]
            ids = pd.ids(pos)
            traces = {}
            for j, sid in enumerate(ids):
                traces[f"model_{sid}"] = vm[j][:, None]
                traces[f"data_{sid}"] = vd[j][:, None]
            meta = {"protocol": key, "window_start_ms": pd.offset, "fit_ids": pd.ids(pd.fit),
                    "holdout_ids": pd.ids(pd.holdout), "traces": "model_<id>: simulated "
                    "somatic potential; data_<id>: the recording (mV)", "fit": cfg.name}
            path = save_prediction(pred / f"{key}.{ext}", t, traces, format=cfg.output.format,
                                   metadata=meta)
            files.append(str(path))
        if cfg.output.plots:
            files += plot_results(out / "plots", self, stages, final)
        return files


def _fingerprint(tree) -> str:
    """SHA-256 of the array leaves of `tree` (values, shapes, dtypes)."""
    import hashlib

    h = hashlib.sha256()
    for x in jax.tree_util.tree_leaves(tree):
        if eqx.is_array(x):
            a = np.asarray(x)
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _param_names(model):
    from ._params import parameters

    return [(n, p) for n, p in parameters(model)]


def _value_text(v) -> str:
    if isinstance(v, list):
        arr = np.asarray(v, float)
        return f"[{arr.size} values, {arr.min():.4g}..{arr.max():.4g}]"
    return f"{float(v):.5g}"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _save_params(path: Path, vals: dict) -> Path:
    from ..io import save_params

    entries = {k: {"value": v["value"], "unit": v["unit"]} for k, v in vals.items()}
    return save_params(path, entries)


# ============================================================================== plots
def plot_results(folder: Path, pipe: Pipeline, stages, evaluation, *,
                 max_sweeps: int = 12) -> list[str]:
    """Write data-vs-model traces per protocol and the loss histories as PNG (Agg).

    Args:
        folder: output folder (created).
        pipe: the pipeline (its last evaluation's traces are plotted).
        stages: the `StageResult`s.
        evaluation: the evaluation dict (for the titles).
        max_sweeps: sweeps plotted per protocol at most.

    Returns:
        The paths written (empty without matplotlib).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        pipe._say("matplotlib is not installed: no plots (pip install 'jaxdend[plot]').")
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for key, (t, vm, vd, pos) in pipe._traces.items():
        pd = pipe.protocols[key]
        fit_set = set(pd.fit.tolist())
        order = list(range(len(pos)))[:max_sweeps]
        ncol = min(3, len(order))
        nrow = math.ceil(len(order) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.6 * nrow), squeeze=False,
                                 sharex=True)
        for a, j in zip(axes.ravel(), order):
            p = int(pos[j])
            role = "fit" if p in fit_set else "held out"
            amp = "" if pd.amplitudes is None else f", {pd.amplitudes[p]:+.3f} nA"
            a.plot(t + pd.offset, vd[j], "k", lw=0.8, label="data")
            a.plot(t + pd.offset, vm[j], "r", lw=0.8, label="model")
            a.set_title(f"{key} sweep {pd.ids(p)[0]}{amp} ({role})", fontsize=8)
            a.tick_params(labelsize=7)
        for a in axes.ravel()[len(order):]:
            a.axis("off")
        axes[0, 0].legend(fontsize=7)
        for a in axes[-1]:
            a.set_xlabel("t (ms)", fontsize=8)
        for a in axes[:, 0]:
            a.set_ylabel("V soma (mV)", fontsize=8)
        fig.suptitle(f"{pipe.config.name}: {key}", fontsize=10)
        fig.tight_layout()
        path = folder / f"traces_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))
    if stages:
        fig, axes = plt.subplots(1, len(stages), figsize=(4.0 * len(stages), 3.0),
                                 squeeze=False)
        for a, s in zip(axes[0], stages):
            h = np.asarray(s.fit.history, float)
            a.plot(np.arange(h.shape[0]), h, lw=1)
            if np.all(h[np.isfinite(h)] > 0):
                a.set_yscale("log")
            a.set_title(f"stage {s.name}", fontsize=9)
            a.set_xlabel("step", fontsize=8)
            a.set_ylabel("loss", fontsize=8)
            a.tick_params(labelsize=7)
        fig.tight_layout()
        path = folder / "loss_history.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written


# ============================================================================== entry point
def run_config(config, *, out: str | os.PathLike | None = None, resume: bool = False,
               steps: int | None = None, quick: bool = False, recordings=None,
               progress: bool = True, verbose: bool = True, base_dir=None) -> PipelineResult:
    """Run a fit configuration end to end (see `load_config` for the schema).

    Reads the recording, builds the cell, runs every ``[[stage]]`` in order (each from the
    previous stage's fitted values, with checkpoints in ``out/checkpoints``), evaluates on
    the held-out sweeps after each stage and at the end (subthreshold RMSE mV, spike-count
    error, first-spike latency error ms), and writes to `out`: ``params.json`` and
    ``params_<k>_<stage>.json`` (fitted values with units), ``fitted_cell.eqx/.json``,
    ``predictions/<protocol>.npz`` (or .nwb: model and data traces per sweep),
    ``plots/*.png`` and ``result.json`` (losses, histories, evaluations, timing).

    Example::

        result = run_config("configs/pyabf_171116sh_0018.toml", out="fit_out")
        result.evaluation["holdout_summary"]["subthreshold_rmse_mV"]

    Args:
        config: TOML path, dict or `FitConfig`.
        out: output folder (default ``[output] folder``).
        resume: continue from the checkpoints of an interrupted run in `out`.
        steps: optimiser steps of every stage (overrides the configuration).
        quick: smoke run (``[quick]``: few steps and sweeps).
        recordings: in-memory recordings instead of ``[recording] file``.
        progress: progress bars.
        verbose: print progress and tables.
        base_dir: folder for relative paths of a dict configuration.

    Returns:
        A `PipelineResult`.

    Raises:
        ConfigError: a bad configuration (names the key and the fix).
        FitError: a fit failed (e.g. `NonFiniteLossError`); the checkpoint is kept.
    """
    pipe = Pipeline(config, recordings=recordings, quick=quick, steps=steps, verbose=verbose,
                    base_dir=base_dir)
    return pipe.run(out, resume=resume, progress=progress)


def simulate_config(config, *, out: str | os.PathLike | None = None, cell=None,
                    recordings=None, dt: float | None = None, verbose: bool = True,
                    base_dir=None) -> dict:
    """Simulate the configured cell and write traces, a plot and a JSON summary.

    With a ``[stimulus]`` section: its clamps at the soma for ``t1`` ms (``v_init`` must be
    a number of mV); otherwise every fit and held-out sweep of the recording (as in the
    evaluation of a fit, with the same metrics against the data).

    Args:
        config: TOML path, dict or `FitConfig`.
        out: output folder (default ``[output] folder`` + "_simulation").
        cell: a concrete `Cell` or the path of a cell saved by `save_cell` (e.g. a fit's
            ``fitted_cell.eqx``, loaded into the configured structure); default: the
            configured initial values.
        recordings: in-memory recordings instead of ``[recording] file``.
        dt: simulation step, ms (default ``[stimulus] dt``, ``[evaluation] dt`` or the last
            stage's dt, else 0.025).
        verbose: print a summary.
        base_dir: folder for relative paths of a dict configuration.

    Returns:
        The summary written to ``simulation.json`` (files, spike counts, metrics).
    """
    from ..io import load_cell, save_prediction
    from ..stimulus import ramp, step

    cfg = load_config(config, base_dir=base_dir)
    say = print if verbose else (lambda *a, **k: None)
    out = Path(out) if out is not None else Path(f"{cfg.output.folder}_simulation")
    out.mkdir(parents=True, exist_ok=True)
    base = build_cell(cfg)
    if cell is None:
        cell = base
    elif isinstance(cell, (str, os.PathLike)):
        try:
            cell = load_cell(cell, base)
        except (ValueError, FileNotFoundError) as err:
            raise _cfg_err("--cell", err, "give a cell saved by a fit of this configuration "
                           "(fitted_cell.eqx).") from None
    summary: dict = {"name": cfg.name, "n_nodes": cell.n, "files": []}
    if cfg.stimulus is not None:
        st = cfg.stimulus
        if cfg.cell.v_init == "baseline":
            raise ConfigError("cell.v_init", "is \"baseline\", but a [stimulus] run has no "
                              "recorded baseline.", "give v_init in mV (e.g. -70.0).")
        dt = dt or st.dt
        clamps = [step(_SOMA, c["amp"], c["delay"], c["dur"]) if c["type"] == "step" else
                  ramp(_SOMA, c["amp0"], c["amp1"], c["delay"], c["dur"]) for c in st.clamps]
        c = balance_leak(cell, cell.v_init) if cfg.cell.balance_leak else cell
        n = round(st.t1 / dt)
        if abs(n * dt - st.t1) > 1e-6 * st.t1:
            raise ConfigError("stimulus.t1", f"{st.t1:g} ms is not a whole number of steps of "
                              f"{dt:g} ms.", "choose t1 and dt so that t1 / dt is an integer.")
        sol = eqx.filter_jit(lambda c: simulate(c, clamps, t1=st.t1, dt=dt,
                                                record=c.probe("v", index=_SOMA)))(c)
        ts, v = np.asarray(sol.ts), np.asarray(sol["v"])
        from ..stimulus import as_stimulus

        i_inj = np.asarray(jax.vmap(lambda t: as_stimulus(clamps).current(t, cell.n)[_SOMA])(
            jnp.asarray(ts)))
        path = save_prediction(out / f"simulation.{cfg.output.format}", ts, {"soma": v},
                               format=cfg.output.format, stimulus=i_inj,
                               metadata={"config": cfg.name, "dt_ms": dt})
        spikes = spike_times(ts, v[:, 0], cfg.recording.spike_threshold if cfg.recording
                             else -20.0)
        summary.update({"dt_ms": dt, "t1_ms": st.t1, "spike_count": int(spikes.size),
                        "spike_times_ms": spikes.tolist(), "files": [str(path)]})
        say(f"simulated {st.t1:g} ms at dt {dt:g} ms: {spikes.size} spike(s); wrote {path}")
        if cfg.output.plots:
            try:
                import matplotlib

                matplotlib.use("Agg")
                import matplotlib.pyplot as plt
            except ImportError:
                say("matplotlib is not installed: no plot.")
            else:
                fig, ax = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True,
                                       gridspec_kw={"height_ratios": [3, 1]})
                ax[0].plot(ts, v[:, 0], "r", lw=0.8)
                ax[0].set_ylabel("V soma (mV)")
                ax[1].plot(ts, i_inj, "k", lw=0.8)
                ax[1].set_ylabel("I (nA)")
                ax[1].set_xlabel("t (ms)")
                ax[0].set_title(f"{cfg.name}: simulation")
                fig.tight_layout()
                png = out / "simulation.png"
                fig.savefig(png, dpi=110)
                plt.close(fig)
                summary["files"].append(str(png))
    else:
        pipe = Pipeline(cfg, recordings=recordings, verbose=verbose, check_stages=False)
        dt = dt or cfg.evaluation.dt or (cfg.stages[-1].dt if cfg.stages else 0.025)
        ev = pipe.evaluate(cell, dt=dt)
        say(evaluation_table(ev))
        summary.update({"dt_ms": dt, "evaluation": ev})
        pred = out / "predictions"
        pred.mkdir(exist_ok=True)
        for key, (t, vm, vd, pos) in pipe._traces.items():
            pd = pipe.protocols[key]
            traces = {}
            for j, sid in enumerate(pd.ids(pos)):
                traces[f"model_{sid}"] = vm[j][:, None]
                traces[f"data_{sid}"] = vd[j][:, None]
            path = save_prediction(pred / f"{key}.{cfg.output.format}", t, traces,
                                   format=cfg.output.format,
                                   metadata={"protocol": key, "window_start_ms": pd.offset})
            summary["files"].append(str(path))
        if cfg.output.plots:
            summary["files"] += plot_results(out / "plots", pipe, [], ev)
    summary = _json_safe(summary)
    (out / "simulation.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    say(f"wrote {out / 'simulation.json'}")
    return summary
