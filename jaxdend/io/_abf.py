"""Axon Binary Format (ABF) current-clamp files through pyabf.

Units on return: time ms, membrane potential mV, injected current nA.
"""

from __future__ import annotations

import os

import numpy as np

from ._common import build_recording, check_nans_policy
from ._recording import Recording
from ._units import existing_file, unit_factor


def read_abf(
    path: str | os.PathLike,
    protocol: str | None = None,
    *,
    channel: int = 0,
    nans: str = "raise",
    metadata: dict | None = None,
) -> Recording:
    """Read every sweep of an ABF current-clamp file (pyabf) as one `Recording`.

    The response is ADC channel `channel` (`abf.sweepY`, converted from its unit, usually mV,
    to mV); the injected current is the command waveform that pyabf rebuilds from the
    protocol (`abf.sweepC`, usually pA, converted to nA); time is `abf.sweepX` (s -> ms).

    Args:
        path: the .abf file.
        protocol: protocol name for the Recording (default: the protocol name stored in the
            file, else its ABF id).
        channel: ADC channel of the membrane potential (0 = first).
        nans: "raise" (default) or "interpolate" for NaN/inf samples.
        metadata: extra entries (cell id, species, ...) merged into the Recording's metadata.

    Returns:
        A Recording (t in ms, i in nA, v in mV); metadata holds the source file, ABF id,
        ABF protocol name, version, recording date and channel.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not a readable ABF file, not current clamp, or bad samples.
    """
    p = existing_file(path)
    check_nans_policy(nans)
    import pyabf

    try:
        abf = pyabf.ABF(str(p))
    except Exception as err:  # pyabf raises many kinds on foreign files
        raise ValueError(
            f"'{p}' is not a readable ABF file ({type(err).__name__}: {err}); read_abf reads "
            "Axon .abf files (ABF1/ABF2)."
        ) from None
    if channel not in abf.channelList:
        raise ValueError(
            f"'{p}' has ADC channels {list(abf.channelList)}; channel={channel} does not exist."
        )
    if abf.sweepCount < 1 or abf.sweepPointCount < 2:
        raise ValueError(f"'{p}' holds no sweep of at least 2 samples (empty recording).")
    abf.setSweep(0, channel=channel)
    where = f"'{p}' channel {channel}"
    try:
        fv = unit_factor(abf.sweepUnitsY, "voltage", f"the response of {where}")
    except ValueError:
        raise ValueError(
            f"{where} records {abf.sweepLabelY!r} (unit {abf.sweepUnitsY!r}), not a membrane "
            "potential: read_abf reads current-clamp files (voltage response, current "
            "command); pick the voltage channel with channel=..."
        ) from None
    fi = unit_factor(abf.sweepUnitsC, "current", f"the command of {where}")
    ft = unit_factor(abf.sweepUnitsX, "time", f"the time axis of {where}")
    n = int(abf.sweepPointCount)
    dt_ms = 1e3 / float(abf.sampleRate)
    t = np.arange(n) * dt_ms
    t_file = (np.asarray(abf.sweepX, dtype=np.float64) - abf.sweepX[0]) * ft
    if t_file.shape != t.shape or np.max(np.abs(t_file - t)) > 1e-3 * dt_ms:
        raise ValueError(
            f"{where}: the time axis (sweepX) does not match the sampling rate "
            f"{abf.sampleRate} Hz; the file is not uniformly sampled."
        )
    vs, cs = [], []
    for k in abf.sweepList:
        abf.setSweep(k, channel=channel)
        if abf.sweepY.size != n or abf.sweepC.size != n:
            raise ValueError(
                f"{where}: sweep {k} has {abf.sweepY.size} samples (command {abf.sweepC.size}), "
                f"sweep 0 has {n}; read_abf needs sweeps of equal length."
            )
        vs.append(np.asarray(abf.sweepY, dtype=np.float64) * fv)
        cs.append(np.asarray(abf.sweepC, dtype=np.float64) * fi)
    meta = {
        "source_file": p.name,
        "format": "ABF",
        "abf_id": str(abf.abfID),
        "abf_protocol": str(abf.protocol),
        "abf_version": str(abf.abfVersionString),
        "recorded": str(abf.abfDateTimeString),
        "channel": int(channel),
        "adc_name": str(abf.adcNames[channel]),
        "current_source": "command waveform rebuilt by pyabf from the protocol (sweepC)",
    }
    meta.update(metadata or {})
    name = protocol if protocol is not None else (str(abf.protocol) or str(abf.abfID))
    return build_recording(
        t,
        np.stack(cs),
        np.stack(vs),
        nans=nans,
        source=f"'{p}'",
        sweep_ids=np.asarray(abf.sweepList, dtype=np.int64),
        protocol=name,
        metadata=meta,
    )
