"""Simulated traces (a `jaxdend.Solution`'s ts and recordings) saved for comparison with data.

Units: time ms; voltage traces mV; currents nA; other traces in the unit given when saving.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._common import metadata_json
from ._units import existing_file

PRED_FORMAT = "jaxdend.prediction"
FORMAT_VERSION = 1
DEFAULT_MODULE = "jaxdend_prediction"
_META_MARK = "\njaxdend_metadata="
_NWB_UNITS = {"mV": ("volts", 1e-3), "nA": ("amperes", 1e-9)}
_REFUSED = {"V", "volt", "volts", "A", "amp", "amperes", "s", "pA", "uV", "uA"}


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction:
    """Simulated traces read back by `load_prediction`.

    Attributes:
        ts: save times in ms, (n_save,).
        traces: name -> (n_save, n_nodes) array (as saved), in `units[name]`.
        units: name -> unit ("mV" for voltages, "nA" for currents, or as saved).
        stimulus: injected current in nA at `ts`, (n_save,), or None.
        metadata: free-form information saved with the traces (read-only).
    """

    ts: np.ndarray
    traces: Mapping[str, np.ndarray]
    units: Mapping[str, str]
    stimulus: np.ndarray | None = None
    metadata: Mapping = dataclasses.field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        """Trace `name` (n_save, n_nodes), like `Solution[name]`."""
        try:
            return self.traces[name]
        except KeyError:
            raise KeyError(f"No trace {name!r}; saved: {sorted(self.traces)}.") from None


def _prepare(ts_ms, traces, stimulus, units):
    ts = np.asarray(ts_ms, dtype=np.float64)
    if ts.ndim != 1 or ts.size < 1:
        raise ValueError(f"ts_ms must be 1-D save times in ms, got shape {ts.shape}.")
    if not np.all(np.isfinite(ts)):
        k = int(np.argmax(~np.isfinite(ts)))
        raise ValueError(
            f"ts_ms[{k}] is {ts[k]}: save times must be finite (unused SaveAt slots are inf; "
            "save only the filled part)."
        )
    if ts.size > 1 and np.any(np.diff(ts) <= 0):
        raise ValueError("ts_ms must be strictly increasing (ms).")
    if not isinstance(traces, Mapping) or not traces:
        raise TypeError("traces must be a non-empty dict name -> (n_save, n_nodes) array.")
    out, unit_of = {}, {}
    for name, arr in traces.items():
        if not isinstance(name, str) or not name or "/" in name or name.startswith("_"):
            raise ValueError(f"Trace name {name!r} must be a non-empty str without '/'.")
        a = np.asarray(arr)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"Trace {name!r} is not numeric (dtype {a.dtype}).")
        if a.ndim < 1 or a.shape[0] != ts.size:
            raise ValueError(
                f"Trace {name!r} has shape {a.shape}; its first axis must match ts_ms "
                f"({ts.size} save times): (n_save, n_nodes)."
            )
        unit = units.get(name, "mV") if isinstance(units, Mapping) else units
        if not isinstance(unit, str) or not unit:
            raise ValueError(f"Trace {name!r}: give its unit as a non-empty str, got {unit!r}.")
        if unit in _REFUSED:
            raise ValueError(
                f"Trace {name!r} is declared in {unit!r}; jaxdend traces are in ms/mV/nA: "
                "convert it (e.g. to 'mV' or 'nA') before saving."
            )
        out[name], unit_of[name] = a, unit
    stim = None
    if stimulus is not None:
        from ..stimulus import CurrentClamp

        if isinstance(stimulus, CurrentClamp):
            import jax

            stim = np.asarray(jax.vmap(stimulus.waveform)(ts), dtype=np.float64)
        else:
            stim = np.asarray(stimulus, dtype=np.float64)
        if stim.shape != ts.shape:
            raise ValueError(
                f"stimulus must give one current (nA) per save time, shape {ts.shape}, got "
                f"{stim.shape}; pass an array or a jaxdend.stimulus current clamp."
            )
    return ts, out, unit_of, stim


def save_prediction(
    path: str | os.PathLike,
    ts_ms,
    traces: Mapping,
    *,
    format: str = "npz",
    stimulus=None,
    units: str | Mapping[str, str] = "mV",
    metadata: Mapping | None = None,
    append: bool = False,
    name: str = DEFAULT_MODULE,
) -> Path:
    """Save simulated traces (`Solution.ts`, `Solution[name]`) to npz or NWB.

    npz: keys ``ts`` (+ ``ts_unit`` "ms"), ``trace.<name>`` (+ ``trace.<name>.unit``),
    optional ``stimulus`` (+ ``stimulus_unit`` "nA"), ``metadata`` (JSON), ``format``.

    NWB: the traces are simulated, not recorded, so they are written as plain `TimeSeries`
    (one per trace, data (n_save, n_nodes), timestamps in s) in a processing module `name`
    (default "jaxdend_prediction"), not as CurrentClampSeries in /acquisition: NWB readers do
    not mistake them for data, yet with ``append=True`` they sit in the same file as
    recordings written by `write_nwb`. Voltages (unit "mV") are stored as "volts" with
    conversion 1e-3, currents ("nA") as "amperes" with conversion 1e-9 (data kept in mV/nA);
    the stimulus is a TimeSeries "stimulus" in amperes.

    Args:
        path: output file (overwritten, unless NWB with `append`).
        ts_ms: save times in ms, (n_save,).
        traces: name -> (n_save, n_nodes) array, e.g. ``{"soma": sol["soma"]}``.
        format: "npz" or "nwb".
        stimulus: injected current in nA at `ts_ms` (array) or a jaxdend current clamp
            (e.g. from `Recording.stimulus`), evaluated at `ts_ms`.
        units: unit of every trace ("mV", default) or a dict name -> unit (e.g. "mV", "nA",
            "nS", "dimensionless" for gates).
        metadata: JSON-serialisable information stored with the traces.
        append: NWB only: add the module to an existing NWB file (e.g. one from `write_nwb`).
        name: NWB only: processing-module name.

    Returns:
        The path written.
    """
    ts, tr, unit_of, stim = _prepare(ts_ms, traces, stimulus, units)
    meta_json = metadata_json(dict(metadata or {}), "save_prediction")
    p = Path(path)
    if format == "npz":
        if append:
            raise ValueError("append=True is for format='nwb'; npz files are written whole.")
        arrays = {"format": np.array(PRED_FORMAT), "format_version": np.array(FORMAT_VERSION),
                  "ts": ts, "ts_unit": np.array("ms"), "traces": np.array(list(tr), dtype=str),
                  "metadata": np.array(meta_json)}
        for k, a in tr.items():
            arrays[f"trace.{k}"] = a
            arrays[f"trace.{k}.unit"] = np.array(unit_of[k])
        if stim is not None:
            arrays["stimulus"], arrays["stimulus_unit"] = stim, np.array("nA")
        with open(p, "wb") as fh:
            np.savez(fh, **arrays)
        return p
    if format != "nwb":
        raise ValueError(f"format must be 'npz' or 'nwb', got {format!r}.")
    if "stimulus" in tr and stim is not None:
        raise ValueError("A trace named 'stimulus' clashes with the stimulus series; rename it.")
    _write_nwb_prediction(p, ts, tr, unit_of, stim, meta_json, append, name)
    return p


def _write_nwb_prediction(p, ts, tr, unit_of, stim, meta_json, append, name):
    import datetime

    import pynwb

    from ._nwb import open_nwb_file, read_nwb_container

    first: list = []  # the first series holds the timestamps; the others link to it

    def series(key, data, unit):
        nwb_unit, conv = _NWB_UNITS.get(unit, (unit, 1.0))
        out = pynwb.TimeSeries(
            name=key, data=data, unit=nwb_unit, conversion=conv,
            timestamps=first[0] if first else ts * 1e-3,
            description=f"simulated by jaxdend; data in {unit}",
            comments=f"jaxdend_unit={unit}",
        )
        first.append(out)
        return out

    def fill(nwb):
        if name in nwb.processing:
            raise ValueError(
                f"'{p}' already has a processing module {name!r}; pass another name=... to "
                "append a further prediction."
            )
        mod = nwb.create_processing_module(
            name=name,
            description="Simulated traces written by jaxdend.io.save_prediction (model output, "
            "not recorded data)." + _META_MARK + meta_json,
        )
        for k, a in tr.items():
            mod.add(series(k, a, unit_of[k]))
        if stim is not None:
            mod.add(series("stimulus", stim, "nA"))

    if append:
        existing_file(p)
        io = open_nwb_file(p, "a")
        try:
            nwb = read_nwb_container(io, p)
            fill(nwb)
            io.write(nwb)
        finally:
            io.close()
        return
    nwb = pynwb.NWBFile(
        session_description="jaxdend simulation",
        identifier=f"jaxdend-prediction-{p.stem}",
        session_start_time=datetime.datetime.now(datetime.timezone.utc),
    )
    fill(nwb)
    with pynwb.NWBHDF5IO(str(p), "w") as io:
        io.write(nwb)


def load_prediction(path: str | os.PathLike, *, name: str = DEFAULT_MODULE) -> Prediction:
    """Read traces written by `save_prediction` (npz or NWB, detected from the content).

    Args:
        path: the file.
        name: NWB only: the processing module to read.

    Returns:
        A `Prediction` (ts in ms; traces in their saved units: mV, nA, ...; stimulus nA).
        npz values come back bit for bit; NWB stores times in s, so ts is within 1e-12
        relative of the saved times.
    """
    p = existing_file(path)
    with open(p, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"PK"):
        return _load_npz_prediction(p)
    if magic.startswith(b"\x89HDF"):
        return _load_nwb_prediction(p, name)
    raise ValueError(
        f"'{p}' is neither an npz nor an NWB (HDF5) file; load_prediction reads files written "
        "by save_prediction."
    )


def _freeze(ts, traces, units, stim, meta) -> Prediction:
    return Prediction(ts, types.MappingProxyType(traces), types.MappingProxyType(units), stim,
                      types.MappingProxyType(meta))


def _load_npz_prediction(p: Path) -> Prediction:
    from ._npz import open_npz

    with open_npz(p, "load_prediction reads files written by save_prediction") as z:
        keys = set(z.files)
        fmt = str(z["format"]) if "format" in keys else None
        if fmt != PRED_FORMAT:
            raise ValueError(
                f"'{p}' is not a jaxdend prediction (format {fmt!r}); "
                + ("read recordings with read_npz." if fmt else "save with save_prediction.")
            )

        def need(key):
            if key not in keys:
                raise ValueError(
                    f"'{p}': key {key!r} is missing"
                    + (": every array is stored with its unit; rewrite the file with "
                       "save_prediction." if key.endswith("unit") else ".")
                )
            return z[key]

        if str(need("ts_unit")) != "ms":
            raise ValueError(f"'{p}': ts_unit is {str(z['ts_unit'])!r}, expected 'ms'.")
        ts = np.asarray(need("ts"))
        traces, units = {}, {}
        for k in [str(x) for x in np.atleast_1d(need("traces"))]:
            traces[k] = np.asarray(need(f"trace.{k}"))
            units[k] = str(need(f"trace.{k}.unit"))
        stim = None
        if "stimulus" in keys:
            if str(need("stimulus_unit")) != "nA":
                raise ValueError(f"'{p}': stimulus_unit must be 'nA'.")
            stim = np.asarray(z["stimulus"])
        meta = json.loads(str(need("metadata")))
    return _freeze(ts, traces, units, stim, meta)


def _load_nwb_prediction(p: Path, name: str) -> Prediction:
    from ._nwb import open_nwb_file, read_nwb_container

    io = open_nwb_file(p)
    try:
        nwb = read_nwb_container(io, p)
        if name not in nwb.processing:
            raise ValueError(
                f"'{p}' has no processing module {name!r} (modules: {list(nwb.processing)}); "
                "pass name=... as given to save_prediction."
            )
        mod = nwb.processing[name]
        desc = str(mod.description)
        meta = json.loads(desc.split(_META_MARK, 1)[1]) if _META_MARK in desc else {}
        traces, units, stim, ts = {}, {}, None, None
        for key, series in mod.data_interfaces.items():
            comment = str(series.comments or "")
            unit = comment.split("jaxdend_unit=", 1)[1] if "jaxdend_unit=" in comment else None
            if unit is None:
                raise ValueError(
                    f"'{p}': series {key!r} in {name!r} lacks its jaxdend unit (comments "
                    "'jaxdend_unit=...'); it was not written by save_prediction."
                )
            nwb_unit, conv = _NWB_UNITS.get(unit, (unit, 1.0))
            if series.unit != nwb_unit or not np.isclose(series.conversion, conv, rtol=1e-12):
                raise ValueError(
                    f"'{p}': series {key!r} has unit {series.unit!r} and conversion "
                    f"{series.conversion}, expected {nwb_unit!r} and {conv} for {unit}."
                )
            data = np.asarray(series.data[:])
            t = np.asarray(series.timestamps[:], dtype=np.float64) * 1e3
            if ts is None:
                ts = t
            if key == "stimulus":
                stim = data
            else:
                traces[key], units[key] = data, unit
    finally:
        io.close()
    if ts is None:
        raise ValueError(f"'{p}': module {name!r} holds no series.")
    return _freeze(ts, traces, units, stim, meta)
