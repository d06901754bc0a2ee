"""Neurodata Without Borders (NWB) intracellular current-clamp files through pynwb.

`write_nwb` stores every sweep as a `CurrentClampSeries` (response; unit "volts", data in mV
with conversion 1e-3) and a `CurrentClampStimulusSeries` (stimulus; unit "amperes", data in nA
with conversion 1e-9), linked in the icephys tables: one IntracellularRecordings row and one
SimultaneousRecordings row per sweep, one SequentialRecordings row per protocol (its
`stimulus_type` is the protocol name) and one Repetitions row for the file. Standard NWB readers
see volts and amperes (data * conversion); jaxdend reads the stored values back bit for bit.

Units on return from `read_nwb`: time ms, membrane potential mV, injected current nA.
"""

from __future__ import annotations

import datetime
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._common import build_recording, check_name, check_nans_policy, metadata_json
from ._recording import Recording, as_recording_dict
from ._units import exact_scale, existing_file, unit_factor

META_COLUMN = "jaxdend_metadata"
LJP_COLUMN = "jaxdend_ljp_mv"


def _nwb_modules():
    import pynwb
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    return pynwb, CurrentClampSeries, CurrentClampStimulusSeries


def open_nwb_file(p: Path, mode: str = "r"):
    """An open `pynwb.NWBHDF5IO` for `p`; ValueError when it is not a readable NWB file."""
    pynwb = _nwb_modules()[0]
    try:
        io = pynwb.NWBHDF5IO(str(p), mode, load_namespaces=True)
    except Exception as err:  # h5py/hdmf raise OSError, ValueError, KeyError, ...
        raise ValueError(
            f"'{p}' is not a readable NWB (HDF5) file ({type(err).__name__}: {err})."
        ) from None
    return io


def read_nwb_container(io, p: Path):
    """`io.read()` with foreign-format errors turned into ValueError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # namespace/version chatter on foreign files
            return io.read()
    except Exception as err:
        raise ValueError(
            f"'{p}' could not be read as NWB ({type(err).__name__}: {err})."
        ) from None


def write_nwb(
    path: str | os.PathLike,
    recordings: Recording | Mapping[str, Recording],
    *,
    session_description: str,
    identifier: str,
    session_start_time: datetime.datetime | None = None,
    experimenter: str | list[str] | None = None,
    lab: str | None = None,
    institution: str | None = None,
    subject: Mapping | None = None,
    device_name: str = "amplifier",
    device_description: str = "patch-clamp amplifier",
    device_manufacturer: str | None = None,
    electrode_description: str = "whole-cell patch pipette, current clamp",
    electrode_location: str | None = None,
) -> Path:
    """Write recordings as an NWB icephys current-clamp file.

    Every sweep becomes a `CurrentClampSeries` in /acquisition (response: data in mV,
    unit "volts", conversion 1e-3) and a `CurrentClampStimulusSeries` in /stimulus/presentation
    (data in nA, unit "amperes", conversion 1e-9), both at the recording's rate (Hz), with the
    sweep id as `sweep_number` and the protocol as `stimulus_description`. Sweeps follow each
    other on the file's time axis (`starting_time`, s). The icephys tables link them: one
    IntracellularRecordings row per sweep, a SimultaneousRecordings row per sweep, one
    SequentialRecordings row per protocol (stimulus_type = protocol, plus the columns
    "jaxdend_metadata" (JSON of `Recording.metadata`) and "jaxdend_ljp_mv" (mV)), and one
    Repetitions row. One device and one IntracellularElectrode per distinct
    ``metadata["cell_id"]`` (its `cell_id`).

    Args:
        path: output file (overwritten).
        recordings: a Recording, or a dict protocol -> Recording (the key names the protocol).
        session_description: NWB session description.
        identifier: unique identifier of the file.
        session_start_time: timezone-aware start of the session (default: now, UTC).
        experimenter, lab, institution: optional NWB file metadata.
        subject: optional dict of `pynwb.file.Subject` fields (subject_id, species, age, sex).
        device_name, device_description, device_manufacturer: the amplifier.
        electrode_description, electrode_location: the pipette.

    Returns:
        The path written.
    """
    pynwb, CurrentClampSeries, CurrentClampStimulusSeries = _nwb_modules()
    recs = as_recording_dict(recordings, "write_nwb")
    if session_start_time is None:
        session_start_time = datetime.datetime.now(datetime.timezone.utc)
    if session_start_time.tzinfo is None:
        raise ValueError(
            "session_start_time must be timezone-aware, e.g. "
            "datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)."
        )
    metas = {}
    for name, rec in recs.items():
        check_name(name, "write_nwb")
        metas[name] = metadata_json(rec.metadata, f"write_nwb, protocol {name!r}")
        if np.any(rec.sweep_ids < 0) or np.any(rec.sweep_ids > np.iinfo(np.uint32).max):
            raise ValueError(
                f"write_nwb, protocol {name!r}: NWB sweep numbers are unsigned 32-bit integers, "
                f"got sweep_ids {rec.sweep_ids.tolist()}; renumber them with "
                "rec.replace(sweep_ids=...)."
            )
    nwb_subject = None
    if subject is not None:
        from pynwb.file import Subject

        nwb_subject = Subject(**dict(subject))
    nwb = pynwb.NWBFile(
        session_description=session_description,
        identifier=identifier,
        session_start_time=session_start_time,
        experimenter=experimenter,
        lab=lab,
        institution=institution,
        subject=nwb_subject,
    )
    device_kw = {}
    if device_manufacturer is not None:
        if hasattr(nwb, "create_device_model"):  # pynwb >= 3.1: the maker sits on a model
            device_kw["model"] = nwb.create_device_model(
                name=f"{device_name}_model", manufacturer=device_manufacturer
            )
        else:
            device_kw["manufacturer"] = device_manufacturer
    device = nwb.create_device(name=device_name, description=device_description, **device_kw)
    electrodes: dict = {}
    seq_table = nwb.get_icephys_sequential_recordings()
    seq_table.add_column(name=META_COLUMN, description="JSON of jaxdend Recording.metadata")
    seq_table.add_column(
        name=LJP_COLUMN, description="liquid-junction potential subtracted from the data, mV"
    )
    start_s = 0.0
    sequentials = []
    for name, rec in recs.items():
        cell_id = rec.metadata.get("cell_id")
        key = None if cell_id is None else str(cell_id)
        if key not in electrodes:
            electrodes[key] = nwb.create_icephys_electrode(
                name=f"electrode_{len(electrodes)}",
                device=device,
                description=electrode_description,
                location=electrode_location,
                cell_id=key,
            )
        electrode = electrodes[key]
        sims = []
        for k in range(rec.n_sweeps):
            sid = int(rec.sweep_ids[k])
            base = f"{name}_sweep{sid}"
            common = dict(
                electrode=electrode,
                rate=float(rec.rate_hz),
                starting_time=float(start_s),
                sweep_number=np.uint32(sid),
                stimulus_description=name,
            )
            stim = CurrentClampStimulusSeries(
                name=f"{base}_stimulus",
                data=np.asarray(rec.i[k], dtype=np.float64),
                conversion=1e-9,
                description=f"injected current, protocol {name}, sweep {sid}; data in nA",
                **common,
            )
            resp = CurrentClampSeries(
                name=f"{base}_response",
                data=np.asarray(rec.v[k], dtype=np.float64),
                conversion=1e-3,
                description=(
                    f"membrane potential, protocol {name}, sweep {sid}; data in mV "
                    f"(liquid-junction correction applied: {rec.ljp_mv:g} mV)"
                ),
                **common,
            )
            nwb.add_stimulus(stim)
            nwb.add_acquisition(resp)
            row = nwb.add_intracellular_recording(
                electrode=electrode, stimulus=stim, response=resp
            )
            sims.append(nwb.add_icephys_simultaneous_recording(recordings=[row]))
            start_s += rec.duration * 1e-3
        sequentials.append(
            nwb.add_icephys_sequential_recording(
                simultaneous_recordings=sims,
                stimulus_type=name,
                **{META_COLUMN: metas[name], LJP_COLUMN: float(rec.ljp_mv)},
            )
        )
    nwb.add_icephys_repetition(sequential_recordings=sequentials)
    p = Path(path)
    with pynwb.NWBHDF5IO(str(p), "w") as io:
        io.write(nwb)
    return p


# ---------------------------------------------------------------------- reading
def _raw_attr(series, attr: str):
    """An attribute of the series' data as stored in the file (None when absent)."""
    attrs = getattr(series.data, "attrs", None)
    if attrs is None:  # in-memory data: pynwb's value is authoritative
        return getattr(series, attr, None)
    val = attrs.get(attr)
    if isinstance(val, bytes):
        val = val.decode()
    return val


def _values(series, start: int, count: int, kind: str, p: Path) -> np.ndarray:
    """Samples [start, start+count) of a series in jaxdend units (mV or nA)."""
    unit = _raw_attr(series, "unit")
    conversion = _raw_attr(series, "conversion")
    what = f"'{p}': series {series.name!r}"
    if unit is None or str(unit).strip() == "":
        raise ValueError(
            f"{what} has no unit: NWB stores the unit of every series (volts for a "
            "CurrentClampSeries, amperes for a CurrentClampStimulusSeries); without it the "
            "values cannot be interpreted. Rewrite the file with its unit set."
        )
    if conversion is None:
        raise ValueError(
            f"{what} has no conversion factor (data * conversion = value in {unit}); rewrite "
            "the file with conversion set (1.0 if the data are already in that unit)."
        )
    conversion = float(np.asarray(conversion))
    if not np.isfinite(conversion) or conversion == 0:
        raise ValueError(f"{what}: conversion {conversion!r} is not a finite nonzero factor.")
    factor = unit_factor(unit, kind, what)
    offset = float(np.asarray(_raw_attr(series, "offset") or 0.0))
    data = np.asarray(series.data[start : start + count], dtype=np.float64)
    scale = exact_scale(conversion * factor)
    out = data if scale == 1.0 else data * scale
    if offset != 0.0:
        out = out + offset * factor
    return out


def _sampling(series, p: Path) -> tuple[float, float]:
    """(rate Hz, starting time s) of a series; uniform timestamps are accepted too."""
    if series.rate is not None:
        return float(series.rate), float(series.starting_time or 0.0)
    ts = np.asarray(series.timestamps[:], dtype=np.float64)
    if ts.size < 2:
        raise ValueError(f"'{p}': series {series.name!r} has fewer than 2 timestamps.")
    steps = np.diff(ts)
    dt = float(np.median(steps))
    bad = np.abs(steps - dt) > 1e-2 * dt
    if not dt > 0 or bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"'{p}': series {series.name!r} is not uniformly sampled (timestamps step "
            f"{steps[k]:g} s at sample {k}, typical {dt:g} s); split it at the gap."
        )
    return 1.0 / dt, float(ts[0])


def _ref_slice(ref, series) -> tuple[int, int]:
    if ref is None:
        return 0, int(len(series.data))
    start, count = int(ref.idx_start), int(ref.count)
    return (0, int(len(series.data))) if count < 0 else (start, count)


def _is_valid(ref) -> bool:
    if ref is None:
        return False
    try:
        return bool(ref.isvalid())
    except (IndexError, TypeError):
        return False


def _sweeps_from_tables(nwb, CurrentClampSeries):
    """[(protocol, seq_row or None, response, resp_slice, stimulus or None, stim_slice)]."""
    ir = nwb.intracellular_recordings
    if ir is None or len(ir) == 0:
        return None
    responses = ir.category_tables["responses"].get("response")
    stimuli = ir.category_tables["stimuli"].get("stimulus")
    rows = []
    for r in range(len(ir)):
        rref = responses[r]
        if not _is_valid(rref) or not isinstance(rref.timeseries, CurrentClampSeries):
            continue  # voltage clamp or an empty response
        sref = stimuli[r]
        stim = sref.timeseries if _is_valid(sref) else None
        rows.append([r, rref.timeseries, _ref_slice(rref, rref.timeseries), stim,
                     _ref_slice(sref, stim) if stim is not None else None])
    # protocol of every row: through the sequential and simultaneous tables when present
    protocol_of: dict[int, tuple[str, int]] = {}
    seq, sim = nwb.icephys_sequential_recordings, nwb.icephys_simultaneous_recordings
    if seq is not None and sim is not None and len(seq) > 0:
        seq_col, sim_col = seq["simultaneous_recordings"], sim["recordings"]
        seq_ends, seq_tgt = np.asarray(seq_col.data[:]), np.asarray(seq_col.target.data[:])
        sim_ends, sim_tgt = np.asarray(sim_col.data[:]), np.asarray(sim_col.target.data[:])
        types = seq["stimulus_type"].data[:]
        for s in range(len(seq)):
            lo = 0 if s == 0 else int(seq_ends[s - 1])
            for srow in seq_tgt[lo : int(seq_ends[s])]:
                a = 0 if srow == 0 else int(sim_ends[srow - 1])
                for irow in sim_tgt[a : int(sim_ends[srow])]:
                    name = types[s].decode() if isinstance(types[s], bytes) else str(types[s])
                    protocol_of[int(irow)] = (name, s)
    out = []
    for r, resp, rs, stim, ss in rows:
        name, srow = protocol_of.get(r, (None, None))
        if name is None:
            name = str(resp.stimulus_description or "unknown")
        out.append((name, srow, resp, rs, stim, ss))
    return out


def _sweeps_without_tables(nwb, CurrentClampSeries, CurrentClampStimulusSeries):
    stims = [s for s in nwb.stimulus.values() if isinstance(s, CurrentClampStimulusSeries)]
    out = []
    for resp in nwb.acquisition.values():
        if not isinstance(resp, CurrentClampSeries):
            continue
        match = [s for s in stims if s.sweep_number is not None
                 and s.sweep_number == resp.sweep_number and s.electrode is resp.electrode]
        stim = match[0] if len(match) == 1 else None
        name = str(resp.stimulus_description or "unknown")
        n = int(len(resp.data))
        out.append((name, None, resp, (0, n), stim,
                    (0, int(len(stim.data))) if stim is not None else None))
    return out


def read_nwb(
    path: str | os.PathLike,
    *,
    nans: str = "raise",
    missing_stimulus: str = "raise",
) -> dict[str, Recording]:
    """Read the current-clamp sweeps of an NWB file, grouped by protocol.

    Sweeps come from the IntracellularRecordings table when the file has one (the response
    must be a CurrentClampSeries; voltage-clamp rows are skipped), grouped into protocols by
    the SequentialRecordings `stimulus_type` (else by the series' `stimulus_description`).
    Without icephys tables, every CurrentClampSeries in /acquisition is paired with the
    CurrentClampStimulusSeries of the same sweep_number and electrode. Values are converted
    with each series' unit and conversion (and offset) to mV and nA; files written by
    `write_nwb` come back bit for bit, with their metadata and liquid-junction correction.
    Sweeps of one protocol with different lengths or rates form separate protocols
    "<name>#1", "<name>#2", ...

    Args:
        path: the .nwb file.
        nans: "raise" (default) or "interpolate" for NaN/inf samples.
        missing_stimulus: "raise" (default) when a response has no stimulus series, or
            "zero" to read it with zero injected current (IZeroClampSeries always read so).

    Returns:
        dict protocol -> Recording (t in ms from 0, i in nA, v in mV).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not NWB, no current-clamp sweeps, missing stimulus, mismatched rates or
            lengths of stimulus and response, missing unit or conversion, bad samples.
    """
    p = existing_file(path)
    check_nans_policy(nans)
    if missing_stimulus not in ("raise", "zero"):
        raise ValueError(f"missing_stimulus must be 'raise' or 'zero', got {missing_stimulus!r}.")
    pynwb, CurrentClampSeries, CurrentClampStimulusSeries = _nwb_modules()
    from pynwb.icephys import IZeroClampSeries

    io = open_nwb_file(p)
    try:
        nwb = read_nwb_container(io, p)
        sweeps = _sweeps_from_tables(nwb, CurrentClampSeries)
        if sweeps is None:
            sweeps = _sweeps_without_tables(nwb, CurrentClampSeries, CurrentClampStimulusSeries)
        if not sweeps:
            raise ValueError(
                f"'{p}' holds no CurrentClampSeries (whole-cell current-clamp sweeps); "
                "read_nwb reads current-clamp recordings."
            )
        seq = nwb.icephys_sequential_recordings
        seq_cols = seq.colnames if seq is not None else ()
        groups: dict[tuple, list] = {}
        for name, srow, resp, (r0, rn), stim, ss in sweeps:
            rate, start = _sampling(resp, p)
            v = _values(resp, r0, rn, "voltage", p)
            if stim is None:
                if missing_stimulus == "raise" and not isinstance(resp, IZeroClampSeries):
                    raise ValueError(
                        f"'{p}': response {resp.name!r} (protocol {name!r}, sweep "
                        f"{resp.sweep_number}) has no stimulus series: no CurrentClampStimulus"
                        "Series is linked to it in the IntracellularRecordings table or shares "
                        "its sweep_number. Add the stimulus to the file, or read with "
                        "missing_stimulus='zero' to assume no injected current."
                    )
                i = np.zeros_like(v)
            else:
                s_rate, s_start = _sampling(stim, p)
                if abs(s_rate - rate) > 1e-9 * rate:
                    raise ValueError(
                        f"'{p}': mismatched sampling rates: stimulus {stim.name!r} at "
                        f"{s_rate:g} Hz, response {resp.name!r} at {rate:g} Hz; a Recording "
                        "needs one sample of each per time point. Resample one series onto "
                        "the other's time points (np.interp) and rewrite the file."
                    )
                if ss[1] != rn:
                    raise ValueError(
                        f"'{p}': mismatched lengths: stimulus {stim.name!r} has {ss[1]} "
                        f"samples, response {resp.name!r} has {rn}; crop both to a common "
                        "span and rewrite the file."
                    )
                s_t0 = s_start + ss[0] / s_rate
                r_t0 = start + r0 / rate
                if abs(s_t0 - r_t0) > 0.5 / rate:
                    raise ValueError(
                        f"'{p}': stimulus {stim.name!r} starts at {s_t0:g} s but response "
                        f"{resp.name!r} at {r_t0:g} s; align them (same starting_time)."
                    )
                i = _values(stim, ss[0], ss[1], "current", p)
            key = (name, srow)
            groups.setdefault(key, []).append((resp, rate, v, i))
        out: dict[str, Recording] = {}
        for (name, srow), items in groups.items():
            shapes: dict[tuple, list] = {}
            for item in items:
                shapes.setdefault((item[2].size, round(item[1], 6)), []).append(item)
            for group in shapes.values():
                label, g = name, 0
                while label in out:
                    g += 1
                    label = f"{name}#{g}"
                out[label] = _recording(p, nwb, label, srow, seq, seq_cols, group, nans)
    finally:
        io.close()
    return out


def _recording(p, nwb, label, srow, seq, seq_cols, group, nans) -> Recording:
    resp0, rate = group[0][0], group[0][1]
    numbers = [x[0].sweep_number for x in group]
    if all(n is not None for n in numbers) and len(set(int(n) for n in numbers)) == len(numbers):
        ids = np.asarray([int(n) for n in numbers], dtype=np.int64)
    else:
        ids = np.arange(len(group), dtype=np.int64)
    ljp = 0.0
    if srow is not None and META_COLUMN in seq_cols:
        meta = json.loads(seq[META_COLUMN].data[srow])
        if LJP_COLUMN in seq_cols:
            ljp = float(seq[LJP_COLUMN].data[srow])
    else:
        el = resp0.electrode
        meta = {
            "source_file": p.name,
            "format": "NWB",
            "identifier": str(nwb.identifier),
            "session_description": str(nwb.session_description),
            "electrode": str(el.name) if el is not None else None,
            "series": [str(x[0].name) for x in group],
        }
        cell_id = getattr(el, "cell_id", None) if el is not None else None
        if cell_id is not None:
            meta["cell_id"] = str(cell_id)
        if nwb.subject is not None and nwb.subject.species is not None:
            meta["species"] = str(nwb.subject.species)
    n = group[0][2].size
    return build_recording(
        np.arange(n) * (1e3 / rate),
        np.stack([x[3] for x in group]),
        np.stack([x[2] for x in group]),
        nans=nans,
        source=f"'{p}'",
        sweep_ids=ids,
        protocol=label,
        metadata=meta,
        ljp_mv=ljp,
    )
