"""Helpers shared by the readers and writers (not public)."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from ._recording import Recording, nonfinite_message

NAN_POLICIES = ("raise", "interpolate")


def check_nans_policy(nans: str) -> None:
    """ValueError unless `nans` is "raise" or "interpolate"."""
    if nans not in NAN_POLICIES:
        raise ValueError(f"nans must be one of {NAN_POLICIES}, got {nans!r}.")


def build_recording(t, i, v, *, nans: str, source: str, **fields) -> Recording:
    """A Recording from reader arrays (jaxdend units), handling NaN samples per `nans`.

    With nans="raise" a non-finite sample gives a ValueError naming the file, the array, the
    sweep and the sample, and the fix (nans="interpolate").
    """
    t = np.asarray(t, dtype=np.float64)
    i = np.asarray(i, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if nans == "interpolate":
        if not np.all(np.isfinite(i)):
            i = Recording.interpolate_nans(i)
        if not np.all(np.isfinite(v)):
            v = Recording.interpolate_nans(v)
    elif i.ndim == 2 and v.ndim == 2 and t.ndim == 1:
        for name, arr in (("i", i), ("v", v)):
            msg = nonfinite_message(name, arr, t, fields.get("sweep_ids"))
            if msg is not None:
                raise ValueError(
                    f"{source}, protocol {fields.get('protocol', '')!r}: {msg}. Fix: read with "
                    "nans='interpolate' (linear in time) or crop/drop those sweeps after reading."
                )
    return Recording(t, i, v, **fields)


def metadata_json(meta: Mapping, what: str) -> str:
    """`meta` as a JSON string; ValueError naming the key that JSON cannot store."""
    for key, value in meta.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{what}: metadata[{key!r}] = {value!r} cannot be stored as JSON ({err}); use "
                "str, int, float (finite), bool, None, or lists/dicts of them."
            ) from None
    return json.dumps(dict(meta), allow_nan=False, sort_keys=True)


def check_name(name: str, what: str) -> None:
    """ValueError for protocol names that cannot name HDF5/npz entries."""
    if not isinstance(name, str) or not name or "/" in name or name.strip() != name:
        raise ValueError(
            f"{what}: protocol name {name!r} cannot be stored: use a non-empty name without "
            "'/' or surrounding spaces."
        )
