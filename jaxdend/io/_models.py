"""Fitted models on disk: a `jaxdend.Cell` (equinox leaves + readable JSON) and flat parameters.

Units of the named parameters are those of `Cell.set`: cm uF/cm^2, ra Ohm cm, celsius degC,
v_init mV, channel conductance densities S/cm^2, reversal potentials mV, synaptic gmax nS,
time constants ms.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from ._units import existing_file

CELL_FORMAT = "jaxdend.cell"
PARAMS_FORMAT = "jaxdend.params"
FORMAT_VERSION = 1

_KNOWN_UNITS = (
    "S/cm^2", "mV", "ms", "degC", "dimensionless", "1/(ms mV)", "1/mV", "mM", "nS", "uS",
    "um", "1/ms", "uF/cm^2", "Ohm cm", "nA", "Hz",
)
_PAREN = re.compile(r"\(([^()]*(?:\([^()]*\)[^()]*)*)\)")


def _doc_units(cls) -> dict[str, str]:
    """Units stated in a class docstring's attribute lines: ``name: ... (unit) ...``."""
    out = {}
    for line in (cls.__doc__ or "").splitlines():
        m = re.match(r"\s*([A-Za-z_][A-Za-z_0-9]*):\s*(.*)", line)
        if not m:
            continue
        for group in _PAREN.findall(m.group(2)):
            if group.strip() in _KNOWN_UNITS:
                out[m.group(1)] = group.strip()
                break
    return out


def _unit_for(obj, field: str) -> str | None:
    """Best-known unit of parameter `field` of a channel/receptor/STP module, else None."""
    doc = _doc_units(type(obj)).get(field)
    if doc is not None:
        return doc
    if field in getattr(type(obj), "conductance_names", ()):
        return "S/cm^2"
    if field == "e" or field.startswith("e_"):
        return "mV"
    if field.startswith("tau"):
        return "ms"
    if field in ("temp_ref", "g_celsius"):
        return "degC"
    if field in ("q10", "U"):
        return "dimensionless"
    return None


def _is_numeric(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, float, int, np.generic)) and not isinstance(
        x, bool
    )


def _json_value(x):
    """A scalar when all values are equal, else a nested list; non-finite as strings."""
    arr = np.asarray(x)

    def conv(v):
        v = float(v)
        return v if np.isfinite(v) else str(v)

    if arr.size and np.all(arr == arr.ravel()[0]):
        return conv(arr.ravel()[0])
    if arr.ndim == 0:
        return conv(arr)
    return [conv(v) for v in arr.ravel()] if arr.ndim == 1 else np.vectorize(conv)(arr).tolist()


def cell_parameters(cell) -> dict[str, tuple[object, str | None]]:
    """Named parameters of a Cell (names as in `Cell.get`) -> (value, unit or None)."""
    out: dict[str, tuple[object, str | None]] = {
        "cm": (cell.cm, "uF/cm^2"),
        "ra": (cell.ra, "Ohm cm"),
        "celsius": (cell.celsius, "degC"),
        "v_init": (cell.v_init, "mV"),
    }
    for ch in cell.channels:
        kind = type(ch).__name__
        for f in dataclasses.fields(ch):
            val = getattr(ch, f.name)
            if _is_numeric(val):
                out[f"{kind}.{f.name}"] = (val, _unit_for(ch, f.name))
    for grp in cell.synapses:
        out[f"{grp.name}.gmax"] = (grp.gmax, "nS")
        for part in (grp.receptor, grp.stp):
            if part is None:
                continue
            for f in dataclasses.fields(part):
                val = getattr(part, f.name)
                if _is_numeric(val):
                    out[f"{grp.name}.{f.name}"] = (val, _unit_for(part, f.name))
    return out


def _leaf_table(tree) -> list[dict]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    rows = []
    for path, leaf in leaves:
        if _is_numeric(leaf) or isinstance(leaf, (bool, np.bool_)) or hasattr(leaf, "dtype"):
            arr = np.asarray(leaf)
            rows.append({"path": jax.tree_util.keystr(path), "shape": list(arr.shape),
                         "dtype": str(arr.dtype)})
    return rows


def _cell_summary(cell) -> dict:
    params = cell_parameters(cell)
    return {
        "n_nodes": int(cell.n),
        "channels": [
            {"name": type(ch).__name__,
             "parameters": [f"{type(ch).__name__}.{f.name}" for f in dataclasses.fields(ch)
                            if _is_numeric(getattr(ch, f.name))],
             "inserted_nodes": np.nonzero(np.asarray(m))[0].tolist()}
            for ch, m in zip(cell.channels, cell.masks)
        ],
        "synapse_groups": [
            {"name": g.name, "receptor": type(g.receptor).__name__, "n": int(g.n),
             "stp": g.stp is not None, "nodes": list(g.node)}
            for g in cell.synapses
        ],
        "rules": [
            {"rule": type(b.rule).__name__, "groups": list(b.groups), "n": len(b.index),
             "parameters": {f.name: _json_value(getattr(b.rule, f.name))
                            for f in dataclasses.fields(b.rule)
                            if _is_numeric(getattr(b.rule, f.name))}}
            for b in cell.rules
        ],
        "gap_junctions": 0 if cell.gap_junctions is None else len(cell.gap_junctions.a),
        "parameters": {
            name: {"value": _json_value(val), "unit": unit, "shape": list(np.shape(val))}
            for name, (val, unit) in params.items()
        },
    }


def _json_path(path: Path) -> Path:
    if path.suffix == ".json":
        raise ValueError(
            f"save_cell/load_cell take the path of the equinox leaves file (e.g. 'cell.eqx'); "
            f"the JSON description goes next to it. Got '{path}'."
        )
    return path.with_suffix(".json")


def save_cell(path: str | os.PathLike, cell) -> tuple[Path, Path]:
    """Save a `jaxdend.Cell`: its leaves with `eqx.tree_serialise_leaves` plus a JSON summary.

    The JSON (same name, suffix ".json") is for people and for structure checks: node count,
    channels with their inserted nodes, synapse groups, rules, gap junctions, every named
    parameter (names as in `Cell.get`: "cm", "ra", "celsius", "v_init", "HH.g_na",
    "<group>.gmax", ...) with its value (a scalar when uniform over the nodes, else one value
    per node), unit and shape, and the list of saved leaves (path, shape, dtype).

    Args:
        path: the leaves file, e.g. "fit.eqx" (the JSON is "fit.json").
        cell: the cell (parameters in cm uF/cm^2, ra Ohm cm, S/cm^2, mV, nS, ms).

    Returns:
        (leaves path, JSON path).
    """
    from .._cell import Cell

    if not isinstance(cell, Cell):
        raise TypeError(f"save_cell needs a jaxdend.Cell, got {type(cell).__name__}.")
    p = Path(path)
    jp = _json_path(p)
    summary = {"format": CELL_FORMAT, "format_version": FORMAT_VERSION,
               "leaves_file": p.name, **_cell_summary(cell), "leaves": _leaf_table(cell)}
    eqx.tree_serialise_leaves(p, cell)
    jp.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    return p, jp


def _structure_mismatch(saved: dict, like) -> str | None:
    """First structural difference between a saved JSON summary and the cell `like`."""
    now = _cell_summary(like)
    if saved.get("n_nodes") != now["n_nodes"]:
        return (f"the saved cell has {saved.get('n_nodes')} nodes, `like` has {now['n_nodes']} "
                "(a different morphology or discretisation)")
    s_ch = [c["name"] for c in saved.get("channels", [])]
    l_ch = [c["name"] for c in now["channels"]]
    if s_ch != l_ch:
        missing = [c for c in s_ch if c not in l_ch]
        extra = [c for c in l_ch if c not in s_ch]
        detail = "; ".join(
            x for x in (f"missing in `like`: {missing}" if missing else "",
                        f"not in the file: {extra}" if extra else "",
                        "same channels in another order" if not (missing or extra) else "")
            if x
        )
        return f"channels differ: the file has {s_ch}, `like` has {l_ch} ({detail})"
    for sc, lc in zip(saved.get("channels", []), now["channels"]):
        if sc["parameters"] != lc["parameters"]:
            diff = sorted(set(sc["parameters"]) ^ set(lc["parameters"]))
            return f"channel {sc['name']!r} has other parameters: {diff}"
    s_g = [(g["name"], g["receptor"], g["n"], g["stp"]) for g in saved.get("synapse_groups", [])]
    l_g = [(g["name"], g["receptor"], g["n"], g["stp"]) for g in now["synapse_groups"]]
    if s_g != l_g:
        return (f"synapse groups differ (name, receptor, count, stp): the file has {s_g}, "
                f"`like` has {l_g}")
    s_r = [(r["rule"], r["groups"], r["n"]) for r in saved.get("rules", [])]
    l_r = [(r["rule"], r["groups"], r["n"]) for r in now["rules"]]
    if s_r != l_r:
        return f"plasticity rules differ: the file has {s_r}, `like` has {l_r}"
    for name, info in saved.get("parameters", {}).items():
        cur = now["parameters"].get(name)
        if cur is None:
            return f"parameter {name!r} is in the file but not in `like`"
        if info.get("shape") != cur["shape"]:
            return (f"parameter {name!r} has shape {info.get('shape')} in the file, "
                    f"{cur['shape']} in `like`")
    s_leaves = saved.get("leaves", [])
    l_leaves = _leaf_table(like)
    if len(s_leaves) != len(l_leaves):
        return f"the file has {len(s_leaves)} array leaves, `like` has {len(l_leaves)}"
    for a, b in zip(s_leaves, l_leaves):
        if a["path"] != b["path"] or a["shape"] != b["shape"]:
            return (f"leaf {a['path']} {a['shape']} in the file vs {b['path']} {b['shape']} "
                    "in `like`")
        if a["dtype"] != b["dtype"]:
            return (f"leaf {a['path']} is {a['dtype']} in the file but {b['dtype']} in `like` "
                    "(enable float64 with jax.config.update('jax_enable_x64', True) before "
                    "building `like`, or build it with the saved dtype)")
    return None


def load_cell(path: str | os.PathLike, like):
    """Load a cell saved by `save_cell` into the structure of `like`.

    `like` is a skeleton built the same way as the saved cell (same morphology and
    discretisation, same channels inserted in the same order, same synapse groups and rules);
    its parameter values are replaced by the saved ones.

    Args:
        path: the leaves file written by `save_cell` (its JSON must sit next to it).
        like: a `jaxdend.Cell` with the saved structure.

    Returns:
        The cell with the saved values (units as in `Cell.set`).

    Raises:
        FileNotFoundError: the leaves file or its JSON is missing.
        ValueError: the structure differs (names the channel/parameter/leaf that differs).
    """
    from .._cell import Cell

    p = existing_file(path)
    jp = _json_path(p)
    if not jp.is_file():
        raise FileNotFoundError(
            f"No such file: '{jp}' (the JSON that save_cell writes next to '{p}'); load_cell "
            "needs it to check the structure."
        )
    if not isinstance(like, Cell):
        raise TypeError(f"load_cell needs like=<a jaxdend.Cell skeleton>, got {type(like)}.")
    try:
        saved = json.loads(jp.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"'{jp}' is not valid JSON ({err}).") from None
    if not isinstance(saved, dict) or saved.get("format") != CELL_FORMAT:
        raise ValueError(f"'{jp}' is not a jaxdend cell description (format {CELL_FORMAT!r}).")
    problem = _structure_mismatch(saved, like)
    if problem is not None:
        raise ValueError(
            f"Cannot load '{p}' into `like`: {problem}. Build `like` with the same "
            "morphology, discretisation, insert/add_synapses/add_rule calls as the saved cell."
        )
    try:
        return eqx.tree_deserialise_leaves(p, like)
    except Exception as err:  # equinox raises RuntimeError/ValueError on mismatches
        raise ValueError(f"Cannot load '{p}' into `like`: {err}") from None


# ---------------------------------------------------------------------- flat parameters
def save_params(
    path: str | os.PathLike,
    params: Mapping,
    *,
    units: Mapping[str, str | None] | None = None,
) -> Path:
    """Save a flat dict name -> value (float or array) as JSON, with a unit per entry.

    Entries may be plain values or ``{"value": ..., "unit": "S/cm^2"}``; `units` gives units
    for plain values. Values are stored exactly (float64 repr), with their shape and dtype.

    Args:
        path: output JSON file.
        params: name -> float | array | {"value": ..., "unit": ...}.
        units: optional name -> unit (e.g. "S/cm^2", "mV", "ms", "nS").

    Returns:
        The path written.
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"save_params needs a dict name -> value, got {type(params).__name__}.")
    units = dict(units or {})
    entries = {}
    for name, item in params.items():
        if not isinstance(name, str):
            raise TypeError(f"Parameter names must be str, got {name!r}.")
        unit = units.get(name)
        value = item
        if isinstance(item, Mapping):
            if "value" not in item:
                raise ValueError(f"Parameter {name!r}: a dict entry needs a 'value' key.")
            value, unit = item["value"], item.get("unit", unit)
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"Parameter {name!r} is not numeric (dtype {arr.dtype}).")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(
                f"Parameter {name!r} contains NaN or inf; JSON cannot store them: fix the fit "
                "(or replace them) before saving."
            )
        entries[name] = {"value": arr.tolist(), "unit": None if unit is None else str(unit),
                         "shape": list(arr.shape), "dtype": str(arr.dtype)}
    p = Path(path)
    doc = {"format": PARAMS_FORMAT, "format_version": FORMAT_VERSION, "parameters": entries}
    p.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return p


def load_params(path: str | os.PathLike, *, with_units: bool = False) -> dict:
    """Load a dict written by `save_params`.

    Args:
        path: the JSON file.
        with_units: return name -> {"value": ..., "unit": ...} instead of name -> value.

    Returns:
        name -> value (a Python float/int/bool for scalars, a NumPy array of the saved dtype
        otherwise), or with units.
    """
    p = existing_file(path)
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"'{p}' is not valid JSON ({err}); save parameters with save_params."
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != PARAMS_FORMAT:
        raise ValueError(f"'{p}' is not a jaxdend parameter file (format {PARAMS_FORMAT!r}).")
    out = {}
    for name, e in doc["parameters"].items():
        for key in ("value", "shape", "dtype"):
            if key not in e:
                raise ValueError(f"'{p}': parameter {name!r} lacks {key!r}; rewrite it.")
        arr = np.asarray(e["value"], dtype=np.dtype(e["dtype"])).reshape(e["shape"])
        value = arr.item() if arr.ndim == 0 else arr
        out[name] = {"value": value, "unit": e.get("unit")} if with_units else value
    return out
