"""NumPy .npz recordings: the SSCx protocol layout (read) and jaxdend's own format (read/write).

jaxdend's format stores the unit of every array next to it and refuses files without them.
Units on return: time ms, membrane potential mV, injected current nA.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._common import build_recording, check_name, check_nans_policy, metadata_json
from ._recording import Recording, as_recording_dict
from ._units import existing_file, unit_factor

FORMAT = "jaxdend.recordings"
FORMAT_VERSION = 1


def open_npz(p: Path, what: str):
    """np.load(p) without pickles; ValueError when it is not an .npz archive."""
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if not magic.startswith(b"PK"):
        kind = "an NWB/HDF5 file" if magic == b"\x89HDF" else "not a zip archive"
        raise ValueError(f"'{p}' is not an .npz archive ({kind}); {what}.")
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(
            f"'{p}' is not a readable .npz archive ({type(err).__name__}: {err}); {what}."
        ) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"'{p}' holds a single .npy array, not an .npz archive; {what}.")
    return z


def _str(z, key: str, p: Path) -> str:
    arr = z[key]
    if arr.ndim != 0 or arr.dtype.kind not in "US":
        raise ValueError(f"'{p}': key {key!r} must hold a string, got {arr.dtype} {arr.shape}.")
    return str(arr)


def read_npz_protocols(
    path: str | os.PathLike,
    *,
    protocols: list[str] | None = None,
    current_unit: str = "A",
    voltage_unit: str = "V",
    time_unit: str = "s",
    nans: str = "raise",
    metadata: dict | None = None,
) -> dict[str, Recording]:
    """Read an SSCx-style npz of protocols: for each protocol P, P_i, P_v, P_dt, P_sweep_ids.

    Layout of the SSCx export (BlueBrain SSCxEModelExamples): ``P_i`` (sweeps x samples)
    injected current in A, holding current included; ``P_v`` membrane potential in V; ``P_dt``
    the sampling step in s; ``P_sweep_ids`` integer sweep ids. The file stores no units, so
    they are given here (defaults: A, V, s). The SSCx data's 14 mV liquid-junction potential
    is not corrected in the file: apply ``rec.correct_ljp(14.0)`` (mV) if needed.

    Args:
        path: the .npz file.
        protocols: names to read (default: every protocol in the file, in file order).
        current_unit: unit of ``P_i`` ("A", "nA", "pA", ...).
        voltage_unit: unit of ``P_v`` ("V", "mV").
        time_unit: unit of ``P_dt`` ("s", "ms").
        nans: "raise" (default) or "interpolate" for NaN/inf samples.
        metadata: extra entries (cell id, species, ...) merged into every Recording's metadata.

    Returns:
        dict protocol -> Recording (t in ms, i in nA, v in mV).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not an npz of this layout (names the missing key), or bad samples.
    """
    p = existing_file(path)
    check_nans_policy(nans)
    fi = unit_factor(current_unit, "current", "current_unit")
    fv = unit_factor(voltage_unit, "voltage", "voltage_unit")
    ft = unit_factor(time_unit, "time", "time_unit")
    hint = "read_npz_protocols reads npz files with P_i, P_v, P_dt, P_sweep_ids per protocol P"
    with open_npz(p, hint) as z:
        keys = list(z.files)
        found = [k[: -len("_dt")] for k in keys if k.endswith("_dt")]
        if not found:
            raise ValueError(
                f"'{p}' has no '<protocol>_dt' key (keys: {keys[:8]}...); {hint}."
                + (" It looks like a jaxdend npz: use read_npz." if "format" in keys else "")
            )
        names = found if protocols is None else list(protocols)
        out: dict[str, Recording] = {}
        for name in names:
            if name not in found:
                raise ValueError(f"'{p}' has no protocol {name!r}; protocols: {found}.")
            for suffix in ("_i", "_v", "_sweep_ids"):
                if name + suffix not in keys:
                    raise ValueError(
                        f"'{p}': protocol {name!r} lacks key {name + suffix!r}; {hint}."
                    )
            dt = np.asarray(z[name + "_dt"], dtype=np.float64)
            if dt.size != 1 or not np.isfinite(dt).all() or not float(dt.ravel()[0]) > 0:
                raise ValueError(
                    f"'{p}': {name + '_dt'!r} must be one positive sampling step, got {dt}."
                )
            i = np.asarray(z[name + "_i"], dtype=np.float64) * fi
            v = np.asarray(z[name + "_v"], dtype=np.float64) * fv
            n = v.shape[-1] if v.ndim else 0
            meta = {"source_file": p.name, "format": "SSCx npz", "protocol_key": name}
            meta.update(metadata or {})
            out[name] = build_recording(
                np.arange(n) * (float(dt.ravel()[0]) * ft),
                i,
                v,
                nans=nans,
                source=f"'{p}'",
                sweep_ids=np.asarray(z[name + "_sweep_ids"]).astype(np.int64),
                protocol=name,
                metadata=meta,
            )
    return out


def write_npz(
    path: str | os.PathLike,
    recordings: Recording | Mapping[str, Recording],
    *,
    compress: bool = False,
) -> Path:
    """Write recordings to jaxdend's npz format, every array with its unit.

    Keys per protocol P: ``P.t`` (+ ``P.t_unit`` = "ms"), ``P.i`` ("nA"), ``P.v`` ("mV"),
    ``P.sweep_ids``, ``P.ljp`` (+ ``P.ljp_unit`` = "mV"), ``P.metadata`` (JSON); plus
    ``format``, ``format_version``, ``protocols`` and ``container`` (so `read_npz` returns a
    Recording for a Recording and a dict for a dict). float64, bit-exact on reading.

    Args:
        path: output file (written exactly there; overwritten).
        recordings: a Recording, or a dict protocol -> Recording (the key becomes the
            protocol name).
        compress: zip-compress the arrays (smaller, slower).

    Returns:
        The path written.
    """
    single = isinstance(recordings, Recording)
    recs = as_recording_dict(recordings, "write_npz")
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "container": np.array("recording" if single else "dict"),
        "protocols": np.array(list(recs), dtype=str),
    }
    for name, rec in recs.items():
        check_name(name, "write_npz")
        arrays.update({
            f"{name}.t": np.asarray(rec.t), f"{name}.t_unit": np.array("ms"),
            f"{name}.i": np.asarray(rec.i), f"{name}.i_unit": np.array("nA"),
            f"{name}.v": np.asarray(rec.v), f"{name}.v_unit": np.array("mV"),
            f"{name}.sweep_ids": np.asarray(rec.sweep_ids),
            f"{name}.ljp": np.array(rec.ljp_mv), f"{name}.ljp_unit": np.array("mV"),
            f"{name}.metadata": np.array(metadata_json(rec.metadata, f"protocol {name!r}")),
        })
    p = Path(path)
    save = np.savez_compressed if compress else np.savez
    with open(p, "wb") as fh:  # a file object: numpy would otherwise append ".npz"
        save(fh, **arrays)
    return p


def read_npz(
    path: str | os.PathLike, *, nans: str = "raise"
) -> Recording | dict[str, Recording]:
    """Read a file written by `write_npz`; refuses arrays whose unit key is missing.

    Units found in the file are converted to jaxdend's (t: s/ms/us -> ms; i: A/uA/nA/pA ->
    nA; v: V/mV/uV -> mV); values already in jaxdend units are returned bit for bit.

    Args:
        path: the .npz file.
        nans: "raise" (default) or "interpolate" for NaN/inf samples.

    Returns:
        A Recording if a single Recording was written, else dict protocol -> Recording.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not an npz, not jaxdend's format, or a unit key is missing or unknown.
    """
    p = existing_file(path)
    check_nans_policy(nans)
    with open_npz(p, "read_npz reads files written by jaxdend.io.write_npz") as z:
        keys = set(z.files)
        if "format" not in keys:
            sscx = any(k.endswith("_dt") for k in keys)
            raise ValueError(
                f"'{p}' is not a jaxdend npz file: key 'format' is missing, so the units of its "
                "arrays are unknown. "
                + ("It has the SSCx layout (P_i, P_v, P_dt): read it with "
                   "jaxdend.io.read_npz_protocols (units A, V, s)." if sscx else
                   "Write recordings with jaxdend.io.write_npz.")
            )
        fmt = _str(z, "format", p)
        if fmt != FORMAT:
            raise ValueError(
                f"'{p}' holds {fmt!r}, not {FORMAT!r}"
                + ("; read predictions with jaxdend.io.load_prediction." if
                   fmt.startswith("jaxdend.prediction") else ".")
            )
        for key in ("protocols", "container"):
            if key not in keys:
                raise ValueError(f"'{p}': key {key!r} is missing; rewrite it with write_npz.")
        names = [str(x) for x in np.atleast_1d(z["protocols"])]
        out: dict[str, Recording] = {}
        for name in names:
            def get(suffix, name=name):
                key = f"{name}.{suffix}"
                if key not in keys:
                    unit = suffix.endswith("_unit")
                    raise ValueError(
                        f"'{p}': key {key!r} is missing"
                        + (f": jaxdend npz files store the unit of every array, and without it "
                           f"the values of {key[:-5]!r} cannot be interpreted. Add the unit "
                           f"(e.g. np.savez(..., **{{{key!r}: "
                           f"{_DEFAULT_UNITS[suffix]!r}}})) or rewrite the file with "
                           "jaxdend.io.write_npz." if unit else "; rewrite it with write_npz.")
                    )
                return z[key]

            ft = unit_factor(str(get("t_unit")), "time", f"key '{name}.t'")
            fi = unit_factor(str(get("i_unit")), "current", f"key '{name}.i'")
            fv = unit_factor(str(get("v_unit")), "voltage", f"key '{name}.v'")
            fl = unit_factor(str(get("ljp_unit")), "voltage", f"key '{name}.ljp'")
            t, i, v = get("t"), get("i"), get("v")
            meta = json.loads(str(get("metadata")))
            out[name] = build_recording(
                _scaled(t, ft), _scaled(i, fi), _scaled(v, fv),
                nans=nans, source=f"'{p}'", sweep_ids=get("sweep_ids"), protocol=name,
                metadata=meta, ljp_mv=float(get("ljp")) * fl,
            )
        container = str(z["container"])
    if container == "recording" and len(out) == 1:
        return next(iter(out.values()))
    return out


_DEFAULT_UNITS = {"t_unit": "ms", "i_unit": "nA", "v_unit": "mV", "ljp_unit": "mV"}


def _scaled(x, factor: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x if factor == 1.0 else x * factor
