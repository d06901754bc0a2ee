"""Electrophysiology features of recorded or simulated traces (NumPy, not differentiable).

Units: time ms, voltage mV, current nA, resistance MOhm.
"""

from __future__ import annotations

import numpy as np


def spike_times(t, v, threshold: float = 0.0) -> np.ndarray:
    """Times (ms) of upward crossings of `threshold` (mV), linearly interpolated.

    Args:
        t: sample times in ms, shape (n,).
        v: membrane potential in mV, shape (n,).
        threshold: crossing level in mV.

    Returns:
        1-D array of crossing times in ms.
    """
    t, v = np.asarray(t, float), np.asarray(v, float)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"t and v must be 1-D of equal length, got {t.shape} and {v.shape}.")
    up = np.nonzero((v[:-1] < threshold) & (v[1:] >= threshold))[0]
    return t[up] + (threshold - v[up]) / (v[up + 1] - v[up]) * (t[up + 1] - t[up])
