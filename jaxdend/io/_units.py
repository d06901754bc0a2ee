"""Unit names accepted by the readers and their factors to jaxdend units (ms, mV, nA)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# factor that turns a value in the named unit into the jaxdend unit of its kind
_TABLES: dict[str, tuple[str, dict[str, float]]] = {
    "time": ("ms", {"s": 1e3, "ms": 1.0, "us": 1e-3}),
    "voltage": ("mV", {"V": 1e3, "mV": 1.0, "uV": 1e-3}),
    "current": ("nA", {"A": 1e9, "uA": 1e3, "nA": 1.0, "pA": 1e-3}),
}

_ALIASES = {
    "s": "s", "sec": "s", "second": "s", "seconds": "s",
    "ms": "ms", "msec": "ms", "millisecond": "ms", "milliseconds": "ms",
    "us": "us", "µs": "us", "microsecond": "us", "microseconds": "us",
    "v": "V", "volt": "V", "volts": "V",
    "mv": "mV", "millivolt": "mV", "millivolts": "mV",
    "uv": "uV", "µv": "uV", "microvolt": "uV", "microvolts": "uV",
    "a": "A", "amp": "A", "amps": "A", "ampere": "A", "amperes": "A",
    "ua": "uA", "µa": "uA", "microampere": "uA", "microamperes": "uA",
    "na": "nA", "nanoampere": "nA", "nanoamperes": "nA",
    "pa": "pA", "picoampere": "pA", "picoamperes": "pA",
}


def unit_factor(unit, kind: str, what: str) -> float:
    """Factor turning values in `unit` into jaxdend units of `kind` (ms, mV or nA).

    Args:
        unit: unit name as found in a file ("V", "volts", "pA", "amperes", "s", ...).
        kind: "time", "voltage" or "current".
        what: description of the quantity for the error message (e.g. "key 'IV_v'").

    Returns:
        The multiplicative factor (e.g. 1e3 for V -> mV).
    """
    target, table = _TABLES[kind]
    if isinstance(unit, bytes):
        unit = unit.decode()
    name = _ALIASES.get(str(unit).strip().lower()) if unit is not None else None
    if name is None or name not in table:
        raise ValueError(
            f"Unknown or missing {kind} unit {unit!r} for {what}; accepted: "
            f"{', '.join(table)} (jaxdend stores {kind} in {target}). Fix the unit stored with "
            "the data, or convert the data to one of these units."
        )
    return table[name]


def canonical_unit(unit: str, kind: str) -> str:
    """The canonical spelling of `unit` ("volts" -> "V"); ValueError if unknown."""
    unit_factor(unit, kind, "unit")
    return _ALIASES[str(unit).strip().lower()]


def exact_scale(factor: float) -> float:
    """`factor`, snapped to exactly 1.0 when it is 1 up to float64 rounding.

    Files that store data in mV with conversion 1e-3 (to volts) give ``1e-3 * 1e3``, which
    should leave the stored values bit for bit unchanged.
    """
    return 1.0 if abs(factor - 1.0) < 8 * np.finfo(float).eps else float(factor)


def existing_file(path: str | os.PathLike) -> Path:
    """`path` as a Path; FileNotFoundError naming it when it is not an existing file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"No such file: '{p}' (resolved: '{p.resolve()}').")
    if not p.is_file():
        raise ValueError(f"'{p}' is a directory, not a file; give the path of a file.")
    return p
