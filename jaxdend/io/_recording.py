"""`Recording`: the sweeps of one whole-cell current-clamp protocol, in jaxdend units.

Units: time ms, membrane potential mV, injected current nA (positive = depolarising).
NumPy-based (never traced by JAX) and immutable: every method returns a new `Recording`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence

import numpy as np

# relative deviation of one sampling step from the typical step that counts as a gap
_GAP_RTOL = 1e-2
# plausibility limits that catch wrong units (values in jaxdend units)
_V_MIN_ABS_MAX = 1.0  # mV: a trace with |v| < 1 mV everywhere is in volts
_V_MAX_ABS = 1000.0  # mV
_I_MIN_ABS_MAX = 1e-6  # nA: a current whose peak is below 1 fA is in amperes
_I_MAX_ABS = 100.0  # nA: 100 nA is beyond any whole-cell current clamp (pA given as nA)
_DT_MIN = 1e-3  # ms: faster than 1 MHz sampling means t was given in seconds


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        arr = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"Recording.{name} must be a numeric array, got {type(x).__name__} ({err})."
        ) from None
    return arr


def nonfinite_message(name: str, arr: np.ndarray, t: np.ndarray, sweep_ids) -> str | None:
    """Description of the first NaN/inf in a (sweeps, samples) array, or None if all finite."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    s, j = (int(x) for x in np.argwhere(bad)[0])
    kind = "NaN" if np.isnan(arr[s, j]) else "inf"
    sid = f" (sweep id {int(sweep_ids[s])})" if sweep_ids is not None else ""
    when = f", t = {t[j]:g} ms" if j < t.size and np.isfinite(t[j]) else ""
    return (
        f"{name} has non-finite samples: {name}[{s}, {j}] is {kind} (sweep {s}{sid}, sample "
        f"{j}{when}); {int(bad.sum())} non-finite sample(s) in all, in "
        f"{int(bad.any(axis=1).sum())} sweep(s)"
    )


def _interpolate_nans_1d(x: np.ndarray, k: int) -> np.ndarray:
    good = np.isfinite(x)
    if good.all():
        return x
    if not good.any():
        raise ValueError(
            f"Sweep {k} has no finite sample at all; drop it (Recording.select) instead of "
            "interpolating."
        )
    idx = np.arange(x.size)
    out = x.copy()
    out[~good] = np.interp(idx[~good], idx[good], x[good])
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class Recording:
    """One protocol of a whole-cell current-clamp experiment: several sweeps, common sampling.

    Immutable (frozen; arrays are read-only copies) and validated at construction: shapes,
    finite samples, uniform sampling starting at 0 ms, and plausible units (a voltage that is
    below 1 in magnitude everywhere is in volts, not mV; a current whose peak is below 1e-6 is
    in amperes, above 100 in pA, not nA; a sampling step below 1e-3 means t is in seconds).

    Attributes:
        t: sample times in ms, shape (n_samples,), uniform, t[0] = 0.
        i: injected current in nA, shape (n_sweeps, n_samples) (holding current included).
        v: membrane potential in mV, shape (n_sweeps, n_samples).
        sweep_ids: integer id of every sweep, shape (n_sweeps,), unique (default 0..n-1).
        protocol: protocol name (e.g. "IDrest").
        metadata: free-form information (source file, cell id, species, ...); read-only.
        ljp_mv: liquid-junction potential already subtracted from `v`, in mV (0 = not
            corrected); see `correct_ljp`.

    1-D `i` and `v` of equal length are taken as one sweep.
    """

    t: np.ndarray
    i: np.ndarray
    v: np.ndarray
    sweep_ids: np.ndarray | None = None
    protocol: str = ""
    metadata: Mapping = dataclasses.field(default_factory=dict)
    ljp_mv: float = 0.0

    def __post_init__(self):
        t = _as_float_array(self.t, "t")
        i = _as_float_array(self.i, "i")
        v = _as_float_array(self.v, "v")
        if t.ndim != 1:
            raise ValueError(f"t must be 1-D (n_samples,) in ms, got shape {t.shape}.")
        if i.ndim == 1 and v.ndim == 1:
            i, v = i[None, :], v[None, :]
        if i.ndim != 2 or v.ndim != 2:
            raise ValueError(
                f"i and v must be (n_sweeps, n_samples) arrays (or both 1-D for one sweep), got "
                f"shapes {i.shape} and {v.shape}."
            )
        if i.shape != v.shape:
            raise ValueError(
                f"Mismatched shapes of i {i.shape} and v {v.shape}: stimulus and response "
                "need one sample of each per time point and sweep (n_sweeps, n_samples)."
            )
        if i.shape[0] == 0 or t.size == 0 or i.shape[1] == 0:
            raise ValueError(
                f"Empty recording (i/v shape {i.shape}, {t.size} time samples): a Recording "
                "needs at least one sweep of at least 2 samples."
            )
        if i.shape[1] != t.size:
            raise ValueError(
                f"Mismatched shapes: t has {t.size} samples but i and v have {i.shape[1]} per "
                f"sweep (shape {i.shape}); give t of shape ({i.shape[1]},) in ms."
            )
        if t.size < 2:
            raise ValueError(
                "A Recording needs at least 2 samples per sweep (the sampling step dt is "
                "t[1] - t[0])."
            )
        n_sweeps = i.shape[0]
        ids = self.sweep_ids
        if ids is None:
            ids = np.arange(n_sweeps, dtype=np.int64)
        else:
            ids_arr = np.asarray(ids)
            if ids_arr.ndim == 0:
                ids_arr = ids_arr[None]
            if ids_arr.dtype.kind not in "iu" and not (
                ids_arr.dtype.kind == "f" and np.all(ids_arr == np.round(ids_arr))
            ):
                raise TypeError(f"sweep_ids must be integers, got dtype {ids_arr.dtype}.")
            ids = ids_arr.astype(np.int64)
            if ids.shape != (n_sweeps,):
                raise ValueError(
                    f"sweep_ids has shape {ids.shape}, expected ({n_sweeps},): one id per sweep."
                )
            if np.unique(ids).size != ids.size:
                raise ValueError(f"sweep_ids must be unique, got {ids.tolist()}.")
        if not np.all(np.isfinite(t)):
            k = int(np.argmax(~np.isfinite(t)))
            raise ValueError(f"t[{k}] is {t[k]}; sample times must be finite (ms).")
        for name, arr in (("i", i), ("v", v)):
            msg = nonfinite_message(name, arr, t, ids)
            if msg is not None:
                raise ValueError(
                    msg + ". Fix: fill short gaps with "
                    f"{name} = Recording.interpolate_nans({name}) (linear in time), or crop the "
                    "arrays to a stretch without them (e.g. t[:k], i[:, :k], v[:, :k]) or drop "
                    "the sweep; a file reader takes nans='interpolate'."
                )
        steps = np.diff(t)
        dt = float(np.median(steps))
        if not dt > 0:
            raise ValueError(
                f"t must increase (typical step {dt:g} ms); give sample times in ms, ascending."
            )
        bad = np.abs(steps - dt) > _GAP_RTOL * dt
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(
                f"Non-uniform sampling: t[{k + 1}] - t[{k}] = {steps[k]:g} ms (between "
                f"t = {t[k]:g} and {t[k + 1]:g} ms), but the sampling step is {dt:g} ms "
                f"({int(bad.sum())} irregular step(s) in all): a gap or a joined trace. Split "
                f"the data at the gap (e.g. t[:{k + 1}], i[:, :{k + 1}], v[:, :{k + 1}]) or "
                "interpolate it onto a uniform grid (np.interp) before building the Recording."
            )
        if abs(t[0]) > 1e-6 * dt:
            raise ValueError(
                f"t must start at 0 ms, got t[0] = {t[0]:g} ms; pass t - t[0] and keep the "
                "offset in metadata (e.g. metadata={'t_offset_ms': t[0]})."
            )
        if dt < _DT_MIN:
            raise ValueError(
                f"The sampling step is {dt:g} ms (above 1 MHz): t looks like seconds, but "
                "jaxdend wants ms; pass t * 1e3."
            )
        v_max = float(np.max(np.abs(v)))
        if v_max < _V_MIN_ABS_MAX:
            raise ValueError(
                f"v looks like volts: |v| < 1 everywhere (max |v| = {v_max:g}), implausible for "
                "a membrane potential in mV; jaxdend wants mV: pass v * 1e3."
            )
        if v_max > _V_MAX_ABS:
            raise ValueError(
                f"v reaches {v_max:g} mV in magnitude, implausible for a membrane potential: "
                "it looks like uV (pass v * 1e-3) or a wrong gain."
            )
        i_max = float(np.max(np.abs(i)))
        if 0 < i_max < _I_MIN_ABS_MAX:
            raise ValueError(
                f"i looks like amperes: max |i| = {i_max:g}, far below any whole-cell current "
                "in nA; jaxdend wants nA: pass i * 1e9."
            )
        if i_max > _I_MAX_ABS:
            raise ValueError(
                f"i reaches {i_max:g} nA in magnitude, implausible for a whole-cell current "
                "clamp: it looks like pA; jaxdend wants nA: pass i * 1e-3."
            )
        if not isinstance(self.protocol, str):
            raise TypeError(f"protocol must be a str, got {type(self.protocol).__name__}.")
        if not isinstance(self.metadata, Mapping):
            raise TypeError(
                f"metadata must be a dict (str -> value), got {type(self.metadata).__name__}."
            )
        meta = dict(self.metadata)
        for key in meta:
            if not isinstance(key, str):
                raise TypeError(f"metadata keys must be str, got {key!r}.")
        ljp = float(self.ljp_mv)
        if not np.isfinite(ljp):
            raise ValueError(f"ljp_mv must be a finite number of mV, got {self.ljp_mv!r}.")
        for arr in (t, i, v, ids):
            arr.flags.writeable = False
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "i", i)
        object.__setattr__(self, "v", v)
        object.__setattr__(self, "sweep_ids", ids)
        object.__setattr__(self, "metadata", types.MappingProxyType(meta))
        object.__setattr__(self, "ljp_mv", ljp)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dt(cls, dt_ms: float, i, v, **kwargs) -> Recording:
        """Build from a sampling step instead of sample times.

        Args:
            dt_ms: sampling step in ms.
            i: injected current in nA, (n_sweeps, n_samples).
            v: membrane potential in mV, (n_sweeps, n_samples).
            **kwargs: the other fields (sweep_ids, protocol, metadata, ljp_mv).

        Returns:
            A Recording with t = arange(n_samples) * dt_ms (ms).
        """
        n = np.shape(v)[-1] if np.ndim(v) else 0
        return cls(np.arange(n) * float(dt_ms), i, v, **kwargs)

    @staticmethod
    def interpolate_nans(x) -> np.ndarray:
        """Fill NaN/inf samples of every sweep by linear interpolation in time.

        Leading and trailing runs take the nearest finite value. Use it on the arrays before
        building a Recording, e.g. ``Recording(t, i, Recording.interpolate_nans(v))``.

        Args:
            x: (n_sweeps, n_samples) or (n_samples,) array, any unit (returned in the same).

        Returns:
            A float64 copy without NaN/inf (ValueError if a sweep has no finite sample).
        """
        arr = np.array(x, dtype=np.float64)
        two_d = arr.reshape(-1, arr.shape[-1]) if arr.ndim > 1 else arr[None, :]
        out = np.stack([_interpolate_nans_1d(row, k) for k, row in enumerate(two_d)])
        return out.reshape(arr.shape)

    def replace(self, **changes) -> Recording:
        """A copy with some fields replaced (validated again); units as in the class doc."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return (
            f"Recording(protocol={self.protocol!r}, n_sweeps={self.n_sweeps}, "
            f"n_samples={self.n_samples}, dt={self.dt:g} ms, duration={self.duration:g} ms, "
            f"ljp_mv={self.ljp_mv:g})"
        )

    # ------------------------------------------------------------------ derived
    @property
    def dt(self) -> float:
        """Sampling step in ms (mean step, (t[-1] - t[0]) / (n_samples - 1))."""
        return float((self.t[-1] - self.t[0]) / (self.t.size - 1))

    @property
    def rate_hz(self) -> float:
        """Sampling rate in Hz (1000 / dt)."""
        return 1e3 / self.dt

    @property
    def n_sweeps(self) -> int:
        """Number of sweeps."""
        return int(self.v.shape[0])

    @property
    def n_samples(self) -> int:
        """Number of samples per sweep."""
        return int(self.t.size)

    @property
    def duration(self) -> float:
        """Duration of a sweep in ms: n_samples * dt (each sample covers one step)."""
        return self.n_samples * self.dt

    # ------------------------------------------------------------------ selection
    def index_of(self, sweep_id: int) -> int:
        """Position (0..n_sweeps-1) of the sweep with id `sweep_id`."""
        hits = np.nonzero(self.sweep_ids == int(sweep_id))[0]
        if hits.size == 0:
            raise ValueError(
                f"No sweep with id {sweep_id} in protocol {self.protocol!r}; ids: "
                f"{self.sweep_ids.tolist()}."
            )
        return int(hits[0])

    def select(self, indices) -> Recording:
        """The sweeps at positions `indices` (ints, negative allowed, or a boolean mask).

        Args:
            indices: sweep positions 0..n_sweeps-1 (not sweep ids: see `index_of`).

        Returns:
            A Recording of those sweeps (t in ms, i in nA, v in mV, unchanged).
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (self.n_sweeps,):
                raise ValueError(
                    f"A boolean sweep mask needs shape ({self.n_sweeps},), got {idx.shape}."
                )
            idx = np.nonzero(idx)[0]
        idx = np.atleast_1d(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Sweep indices must be integers, got dtype {idx.dtype}.")
        if idx.size and (idx.min() < -self.n_sweeps or idx.max() >= self.n_sweeps):
            raise IndexError(
                f"Sweep index out of range: {idx.tolist()} for {self.n_sweeps} sweeps "
                f"(positions 0..{self.n_sweeps - 1}; sweep ids are {self.sweep_ids.tolist()})."
            )
        return dataclasses.replace(
            self, i=self.i[idx], v=self.v[idx], sweep_ids=self.sweep_ids[idx]
        )

    def sweep(self, k: int) -> Recording:
        """The single sweep at position `k` as a Recording (units unchanged: ms, nA, mV)."""
        return self.select([int(k)])

    def window(self, t0: float, t1: float) -> Recording:
        """The samples with t0 <= t < t1 (ms); time restarts at 0 in the result.

        The offset of the new first sample is added to ``metadata["t_offset_ms"]`` (ms,
        cumulative over successive windows), so absolute times stay known.

        Args:
            t0: start in ms (inclusive).
            t1: end in ms (exclusive).

        Returns:
            The cropped Recording (t in ms from 0, i in nA, v in mV).
        """
        t0, t1 = float(t0), float(t1)
        if not t1 > t0:
            raise ValueError(f"window needs t0 < t1 (ms), got t0={t0:g}, t1={t1:g}.")
        tol = 1e-9 * self.dt
        keep = (self.t >= t0 - tol) & (self.t < t1 - tol)
        if keep.sum() < 2:
            raise ValueError(
                f"window({t0:g}, {t1:g}) keeps {int(keep.sum())} sample(s); the recording spans "
                f"0..{self.t[-1]:g} ms at dt {self.dt:g} ms: choose a window with >= 2 samples."
            )
        start = float(self.t[keep][0])
        meta = dict(self.metadata)
        meta["t_offset_ms"] = float(meta.get("t_offset_ms", 0.0)) + start
        return dataclasses.replace(
            self, t=self.t[keep] - start, i=self.i[:, keep], v=self.v[:, keep], metadata=meta
        )

    # ------------------------------------------------------------------ corrections
    def correct_ljp(self, ljp_mv: float, *, cumulative: bool = False) -> Recording:
        """Subtract a liquid-junction potential: V_true = V_recorded - LJP (mV).

        The applied correction is recorded in `ljp_mv`, so it cannot be applied twice by
        accident: calling this on a recording that already has a correction raises unless
        `cumulative=True` (then the corrections add up). For the SSCx data (LJP of 14 mV not
        corrected), ``rec.correct_ljp(14.0)`` gives V_true ~ V - 14 mV.

        Args:
            ljp_mv: liquid-junction potential in mV.
            cumulative: allow a further correction on top of an earlier one.

        Returns:
            A Recording with v - ljp_mv (mV) and ljp_mv increased by `ljp_mv`.
        """
        ljp = float(ljp_mv)
        if not np.isfinite(ljp):
            raise ValueError(f"ljp_mv must be a finite number of mV, got {ljp_mv!r}.")
        if self.ljp_mv != 0.0 and not cumulative:
            raise ValueError(
                f"A liquid-junction correction of {self.ljp_mv:g} mV was already applied to "
                f"protocol {self.protocol!r}; applying {ljp:g} mV again would double it. Pass "
                "cumulative=True to add a further correction on purpose."
            )
        return dataclasses.replace(self, v=self.v - ljp, ljp_mv=self.ljp_mv + ljp)

    # ------------------------------------------------------------------ step protocols
    def step_window(self, threshold: float = 0.5) -> tuple[float, float]:
        """Onset and end (ms) of the first current step, detected from the current.

        Uses the sweep whose current deviates most (on average) from its pre-stimulus level
        (median of the first 1 % of samples). Its deviation is median-filtered over 4 ms,
        which removes the brief artifacts that action potentials leave on a measured current
        and keeps the edges of steps longer than 2 ms;
        the step is the first run of samples whose filtered deviation exceeds `threshold`
        times its largest value, with dips shorter than 2 ms bridged. Meant for step
        protocols; check the result on ramps or multi-step protocols, or pass the times
        explicitly to `stimulus_amplitudes`.

        Args:
            threshold: fraction (0..1) of the step size that counts as "on".

        Returns:
            (t_on, t_off) in ms: first sample of the step and the first sample after it.
        """
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
        n0 = max(1, self.n_samples // 100)
        base = np.median(self.i[:, :n0], axis=1, keepdims=True)
        dev = np.abs(self.i - base)
        k = int(np.argmax(dev.mean(axis=1)))
        half = max(1, int(round(2.0 / self.dt)))
        half = min(half, (self.n_samples - 1) // 2) if self.n_samples > 2 else 0
        d = dev[k]
        if half > 0:
            padded = np.pad(d, half, mode="edge")
            d = np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)
        size = float(d.max())
        if not size > 0:
            raise ValueError(
                f"No current step in protocol {self.protocol!r}: the current is constant in "
                "every sweep; give t_on/t_off (ms) explicitly."
            )
        on = d > threshold * size
        j0 = int(np.argmax(on))
        bridge = max(1, int(round(2.0 / self.dt)))
        j1 = j0
        while j1 < self.n_samples:
            off = np.nonzero(~on[j1:])[0]
            if off.size == 0:
                j1 = self.n_samples
                break
            j1 += int(off[0])
            nxt = np.nonzero(on[j1 : j1 + bridge])[0]
            if nxt.size == 0:
                break
            j1 += int(nxt[0])
        t_off = float(self.t[j1]) if j1 < self.n_samples else self.duration
        return float(self.t[j0]), t_off

    def baseline_current(self, until_ms: float | None = None) -> np.ndarray:
        """Holding current of every sweep: the mean current (nA) before `until_ms`.

        Args:
            until_ms: end of the baseline in ms (exclusive); None uses the onset of the first
                step (`step_window`).

        Returns:
            (n_sweeps,) holding currents in nA.
        """
        if until_ms is None:
            until_ms = self.step_window()[0]
        keep = self.t < float(until_ms) - 1e-9 * self.dt
        if not keep.any():
            raise ValueError(
                f"No sample before until_ms = {until_ms:g} ms (the first is at 0 ms); give "
                "until_ms > 0."
            )
        return self.i[:, keep].mean(axis=1)

    def stimulus_amplitudes(
        self, t_on: float | None = None, t_off: float | None = None
    ) -> np.ndarray:
        """Step amplitude of every sweep: mean current in [t_on, t_off) minus holding (nA).

        Args:
            t_on: step onset in ms (None: detected with `step_window`); the holding current
                is the mean before it (`baseline_current(t_on)`).
            t_off: step end in ms (None: detected).

        Returns:
            (n_sweeps,) amplitudes in nA (holding current subtracted).
        """
        if t_on is None or t_off is None:
            on, off = self.step_window()
            t_on = on if t_on is None else t_on
            t_off = off if t_off is None else t_off
        tol = 1e-9 * self.dt
        keep = (self.t >= t_on - tol) & (self.t < t_off - tol)
        if not keep.any():
            raise ValueError(f"No sample in the step window [{t_on:g}, {t_off:g}) ms.")
        return self.i[:, keep].mean(axis=1) - self.baseline_current(t_on)

    # ------------------------------------------------------------------ resampling
    def resample(self, dt_ms: float, *, current: str = "hold") -> Recording:
        """The recording on a new sampling step (e.g. the simulation dt).

        New samples at t = 0, dt_ms, ... up to the last original sample time. The voltage is
        linearly interpolated. The current is sample-and-hold by default (`current="hold"`:
        the value of the last original sample at or before each new time, the way a
        digital-to-analog converter injects a command), or linearly interpolated
        (`current="linear"`). No anti-aliasing filter is applied when down-sampling.

        Args:
            dt_ms: new sampling step in ms.
            current: "hold" or "linear".

        Returns:
            The resampled Recording (t in ms, i in nA, v in mV).
        """
        dt_new = float(dt_ms)
        if not dt_new > 0 or not np.isfinite(dt_new):
            raise ValueError(f"dt_ms must be a positive number of ms, got {dt_ms!r}.")
        if current not in ("hold", "linear"):
            raise ValueError(f"current must be 'hold' or 'linear', got {current!r}.")
        t_end = float(self.t[-1])
        n = int(np.floor(t_end / dt_new * (1 + 1e-12))) + 1
        if n < 2:
            raise ValueError(
                f"dt_ms = {dt_new:g} ms leaves fewer than 2 samples in {t_end:g} ms."
            )
        t_new = np.arange(n) * dt_new
        v = np.stack([np.interp(t_new, self.t, row) for row in self.v])
        if current == "linear":
            i = np.stack([np.interp(t_new, self.t, row) for row in self.i])
        else:
            j = np.floor(t_new / self.dt + 1e-9).astype(np.int64)
            i = self.i[:, np.clip(j, 0, self.n_samples - 1)]
        return dataclasses.replace(self, t=t_new, i=i, v=v)

    # ------------------------------------------------------------------ to jaxdend
    def stimulus(
        self,
        k: int,
        node: int = 0,
        *,
        subtract_holding: bool = True,
        until_ms: float | None = None,
    ):
        """Sweep `k`'s injected current as a jaxdend current clamp, for `jaxdend.simulate`.

        Returns ``jaxdend.stimulus.sampled(node, t, i)`` (linear interpolation between the
        samples, 0 outside the sweep). With `subtract_holding=True` (default) the holding
        current (mean before `until_ms`, see `baseline_current`) is subtracted, so a model
        resting at its own v_init gets only the stimulus (the SSCx convention: stimulus =
        current minus pre-stimulus baseline); pass False to inject the raw current.

        Args:
            k: sweep position (0..n_sweeps-1).
            node: compartment index that receives the current (0 = soma).
            subtract_holding: subtract the holding current (nA).
            until_ms: end of the baseline in ms (None: onset of the detected step).

        Returns:
            A `jaxdend.stimulus.CurrentClamp` (times ms, currents nA).
        """
        from ..stimulus import sampled

        rec = self.sweep(k)
        i = rec.i[0]
        if subtract_holding:
            i = i - rec.baseline_current(until_ms)[0]
        return sampled(int(node), np.asarray(rec.t), np.asarray(i))


def as_recording_dict(recordings, what: str) -> dict[str, Recording]:
    """Normalise a Recording, a sequence of them, or a dict protocol -> Recording."""
    if isinstance(recordings, Recording):
        items = [(recordings.protocol or "protocol", recordings)]
    elif isinstance(recordings, Mapping):
        items = list(recordings.items())
    elif isinstance(recordings, Sequence) and not isinstance(recordings, str):
        items = [(r.protocol if isinstance(r, Recording) else "", r) for r in recordings]
    else:
        raise TypeError(
            f"{what} needs a Recording, a list of them or a dict protocol -> Recording, got "
            f"{type(recordings).__name__}."
        )
    out: dict[str, Recording] = {}
    for name, rec in items:
        if not isinstance(rec, Recording):
            raise TypeError(f"{what}: entry {name!r} is a {type(rec).__name__}, not a Recording.")
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"{what}: every recording needs a protocol name (got {name!r}); set "
                "Recording.protocol or pass a dict protocol -> Recording."
            )
        if name in out:
            raise ValueError(
                f"{what}: two recordings share the protocol name {name!r}; pass a dict with "
                "distinct names."
            )
        out[name] = rec
    if not out:
        raise ValueError(f"{what}: no recordings given.")
    return out
