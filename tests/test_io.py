"""jaxdend.io: Recording, readers (ABF, SSCx npz, jaxdend npz, NWB), models and predictions.

Units: time ms, voltage mV, current nA (the jaxdend units the readers convert to).
"""

from __future__ import annotations

import dataclasses
import datetime
import json

import jax
import numpy as np
import pytest
from _helpers import to_float32, tree_allclose

import jaxdend as jd
import jaxdend.io as jio

SSCX = "ephys/sscx_L5TPC_C060114A5-SR-C1_all_protocols.npz"
ABF18 = "ephys/pyabf_171116sh_0018.abf"
ABF16 = "ephys/pyabf_171116sh_0016.abf"
UTC = datetime.timezone.utc

# (sweeps, sampling rate in Hz) per SSCx protocol, from the data README and the file
SSCX_PROTOCOLS = {
    "IDrest": (32, 4000.0), "IDthresh": (18, 4000.0), "IV": (30, 4000.0),
    "APWaveform": (27, 100000.0), "APThreshold": (3, 10000.0), "IDhyperpol": (3, 4000.0),
    "sAHP": (6, 2000.0), "SpikeRec": (6, 20000.0),
}


@pytest.fixture(scope="module")
def sscx(shared_data):
    return jio.read_npz_protocols(
        shared_data / SSCX, metadata={"cell_id": "C060114A5", "species": "Rattus norvegicus"}
    )


@pytest.fixture(scope="module")
def abf18(shared_data):
    return jio.read_abf(shared_data / ABF18, metadata={"cell_id": "171116sh"})


@pytest.fixture(scope="module")
def abf16(shared_data):
    return jio.read_abf(shared_data / ABF16, metadata={"cell_id": "171116sh"})


def _synthetic(n_sweeps=3, n=200, dt=0.1, **kw) -> jio.Recording:
    """Steps of 0.1 k nA from 5 to 15 ms on a holding current of -0.05 nA; v in mV."""
    t = np.arange(n) * dt
    on = (t >= 5.0) & (t < 15.0)
    i = -0.05 + np.stack([0.1 * (k + 1) * on for k in range(n_sweeps)])
    v = -70.0 + 10.0 * i + np.sin(t)[None, :]
    return jio.Recording(t, i, v, **kw)


# ---------------------------------------------------------------------- Recording
def test_recording_fields_derived_and_immutable():
    rec = _synthetic(sweep_ids=[7, 8, 9], protocol="steps", metadata={"cell_id": "c1"})
    assert rec.dt == pytest.approx(0.1, rel=1e-12)
    assert rec.n_sweeps == 3 and rec.n_samples == 200
    assert rec.duration == pytest.approx(20.0, rel=1e-12)
    assert rec.rate_hz == pytest.approx(10000.0, rel=1e-12)
    assert rec.sweep_ids.tolist() == [7, 8, 9]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.protocol = "other"
    with pytest.raises(ValueError, match="read-only"):
        rec.v[0, 0] = 0.0
    with pytest.raises(TypeError):
        rec.metadata["cell_id"] = "c2"
    # default sweep ids, 1-D arrays as one sweep
    one = jio.Recording(rec.t, rec.i[0], rec.v[0])
    assert one.n_sweeps == 1 and one.sweep_ids.tolist() == [0]
    assert jio.Recording.from_dt(0.1, rec.i, rec.v).dt == pytest.approx(rec.dt, rel=1e-12)


def test_select_sweep_window():
    rec = _synthetic(sweep_ids=[7, 8, 9])
    sub = rec.select([2, 0])
    assert sub.sweep_ids.tolist() == [9, 7]
    np.testing.assert_array_equal(sub.v, rec.v[[2, 0]])
    assert rec.sweep(rec.index_of(8)).sweep_ids.tolist() == [8]
    assert rec.select(np.array([True, False, True])).n_sweeps == 2
    with pytest.raises(IndexError, match="out of range"):
        rec.select([3])
    win = rec.window(4.0, 10.0)  # samples 40..99; time restarts at 0, offset kept
    assert win.n_samples == 60 and win.t[0] == 0.0
    np.testing.assert_array_equal(win.v, rec.v[:, 40:100])
    assert win.metadata["t_offset_ms"] == pytest.approx(4.0, rel=1e-12)
    assert win.window(1.0, 3.0).metadata["t_offset_ms"] == pytest.approx(5.0, rel=1e-12)
    with pytest.raises(ValueError, match="t0 < t1"):
        rec.window(5.0, 5.0)


def test_correct_ljp_once_unless_cumulative():
    rec = _synthetic()
    fixed = rec.correct_ljp(14.0)  # V_true = V - LJP
    np.testing.assert_allclose(fixed.v, rec.v - 14.0, rtol=0, atol=1e-12)
    assert fixed.ljp_mv == 14.0 and rec.ljp_mv == 0.0
    with pytest.raises(ValueError, match="already applied"):
        fixed.correct_ljp(14.0)
    twice = fixed.correct_ljp(1.0, cumulative=True)
    assert twice.ljp_mv == 15.0
    np.testing.assert_allclose(twice.v, rec.v - 15.0, rtol=0, atol=1e-12)


def test_step_detection_and_amplitudes_synthetic():
    rec = _synthetic()
    t_on, t_off = rec.step_window()
    assert t_on == pytest.approx(5.0, abs=1e-9) and t_off == pytest.approx(15.0, abs=1e-9)
    np.testing.assert_allclose(rec.baseline_current(), -0.05, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rec.stimulus_amplitudes(), [0.1, 0.2, 0.3], rtol=0, atol=1e-12)


def test_resample_hold_and_linear():
    rec = _synthetic(n=201)
    fine = rec.resample(0.025)  # 4x finer, up to the last sample (20 ms)
    assert fine.n_samples == 801 and fine.dt == pytest.approx(0.025, rel=1e-12)
    # sample-and-hold: every group of 4 new samples repeats the original sample
    np.testing.assert_array_equal(fine.i[:, ::4], rec.i)
    np.testing.assert_array_equal(fine.i[:, 1::4], rec.i[:, :-1])
    # voltage linear: halfway values are the mean of neighbours
    np.testing.assert_allclose(fine.v[:, 2::4], 0.5 * (rec.v[:, :-1] + rec.v[:, 1:]),
                               rtol=0, atol=1e-12)
    lin = rec.resample(0.05, current="linear")
    np.testing.assert_allclose(lin.i[:, 1::2], 0.5 * (rec.i[:, :-1] + rec.i[:, 1:]),
                               rtol=0, atol=1e-12)
    coarse = rec.resample(0.2)
    np.testing.assert_allclose(coarse.v, rec.v[:, ::2], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="'hold' or 'linear'"):
        rec.resample(0.05, current="cubic")


def test_interpolate_nans_helper():
    x = np.array([[1.0, np.nan, 3.0, np.nan], [np.nan, 2.0, 2.0, 4.0]])
    out = jio.Recording.interpolate_nans(x)
    np.testing.assert_array_equal(out, [[1.0, 2.0, 3.0, 3.0], [2.0, 2.0, 2.0, 4.0]])
    with pytest.raises(ValueError, match="no finite sample"):
        jio.Recording.interpolate_nans([[np.nan, np.nan]])


def test_stimulus_drives_simulate(sscx):
    """A recorded IV sweep (hyperpolarising step from 20.5 ms) drives jaxdend.simulate."""
    rec = sscx["IV"].window(0.0, 40.0).resample(0.025)
    k = int(np.argmin(sscx["IV"].stimulus_amplitudes()))  # the most negative step
    clamp = rec.stimulus(k, node=0, subtract_holding=True, until_ms=20.0)
    t = np.asarray(clamp.waveform.t)
    np.testing.assert_array_equal(t, rec.t)
    i = np.asarray(clamp.waveform.i)
    assert abs(i[rec.t < 20.0].mean()) < 1e-12  # holding removed (nA)
    assert i[rec.t > 22.0].mean() < -0.25  # the -283 pA step
    cell = jd.Cell(jd.discretize(jd.ball_and_stick(), nseg=3)).insert(jd.channels.Leak(e=-70.0))
    cell = cell.set("v_init", -70.0)
    sol = jd.simulate(cell, clamp, t1=39.0, dt=0.025)
    v = np.asarray(sol["v"])[:, 0]
    ts = np.asarray(sol.ts)
    assert np.all(np.abs(v[ts < 20.0] + 70.0) < 1.0)  # near rest until the step (mV)
    assert v[-1] < -75.0  # hyperpolarised by the negative step


# ---------------------------------------------------------------------- readers
def test_read_abf_steps(abf18, shared_data):
    rec = abf18
    assert rec.n_sweeps == 17 and rec.n_samples == 60000
    assert rec.dt == pytest.approx(0.05, rel=1e-12) and rec.duration == pytest.approx(3000.0)
    assert rec.metadata["source_file"] == "pyabf_171116sh_0018.abf"
    assert rec.metadata["cell_id"] == "171116sh"
    assert -90.0 < rec.v.min() and rec.v.max() < 70.0  # mV
    # step epoch 0.147-0.647 s (README), amplitudes -100..+300 pA in 25 pA steps
    t_on, t_off = rec.step_window()
    assert abs(t_on - 147.0) < 0.5 and abs(t_off - 647.0) < 0.5
    np.testing.assert_allclose(rec.stimulus_amplitudes(), np.arange(17) * 0.025 - 0.1,
                               rtol=0, atol=1e-12)
    # raw values: pyabf's sweepY (mV) unchanged, sweepC (pA) / 1000
    import pyabf

    abf = pyabf.ABF(str(shared_data / ABF18))
    abf.setSweep(16)
    np.testing.assert_array_equal(rec.v[16], abf.sweepY.astype(np.float64))
    np.testing.assert_array_equal(rec.i[16], abf.sweepC * 1e-3)


def test_read_abf_ramp(abf16):
    rec = abf16
    assert rec.n_sweeps == 11 and rec.n_samples == 20000 and rec.dt == pytest.approx(0.05)
    # one continuous ramp 0 -> 100 pA over the sweeps: sweep k ends at 10 k pA
    np.testing.assert_allclose(rec.i[:, -1], 0.01 * np.arange(11), rtol=0, atol=1e-4)
    np.testing.assert_allclose(rec.i[1:, 0], rec.i[:-1, -1], rtol=0, atol=1e-4)


def test_read_sscx_protocols(sscx, shared_data):
    assert set(sscx) == set(SSCX_PROTOCOLS)
    raw = np.load(shared_data / SSCX)
    for name, (n_sweeps, rate) in SSCX_PROTOCOLS.items():
        rec = sscx[name]
        assert rec.protocol == name and rec.n_sweeps == n_sweeps
        assert rec.rate_hz == pytest.approx(rate, rel=1e-9)
        np.testing.assert_array_equal(rec.v, raw[name + "_v"].astype(np.float64) * 1e3)
        np.testing.assert_array_equal(rec.i, raw[name + "_i"].astype(np.float64) * 1e9)
        np.testing.assert_array_equal(rec.sweep_ids, raw[name + "_sweep_ids"])
        assert rec.metadata["species"] == "Rattus norvegicus"
    iv = sscx["IV"].stimulus_amplitudes()  # README: -283..+140 pA, step 20-1020 ms
    assert abs(iv.min() + 0.283) < 0.005 and abs(iv.max() - 0.140) < 0.005
    t_on, t_off = sscx["IDrest"].step_window()  # README: step 700-2700 ms
    assert abs(t_on - 700.0) < 1.0 and abs(t_off - 2700.0) < 1.0


# ---------------------------------------------------------------------- round trips
def _assert_same(a: jio.Recording, b: jio.Recording, *, t_rtol: float):
    np.testing.assert_array_equal(b.v, a.v)
    np.testing.assert_array_equal(b.i, a.i)
    np.testing.assert_array_equal(b.sweep_ids, a.sweep_ids)
    np.testing.assert_allclose(b.t, a.t, rtol=t_rtol, atol=0)
    assert b.protocol == a.protocol and b.ljp_mv == a.ljp_mv
    assert dict(b.metadata) == dict(a.metadata)


def test_nwb_round_trip_all_shared_files(sscx, abf18, abf16, tmp_path):
    """SSCx (every protocol) and both ABF files -> write_nwb -> read_nwb.

    v and i are EXACTLY equal: write_nwb stores float64 data in mV / nA with conversion 1e-3 /
    1e-9 (volts / amperes for other readers), and read_nwb snaps conversion * 1e3 (resp. 1e9)
    to exactly 1. t is rebuilt from the stored rate (Hz): 1000 / rate can differ from the
    original dt by float64 rounding, so t is compared within rtol 1e-12.
    """
    import pynwb

    recs = dict(sscx)
    recs["IV"] = recs["IV"].correct_ljp(14.0)  # an applied correction travels too
    cases = {"sscx.nwb": recs, "abf18.nwb": abf18, "abf16.nwb": abf16}
    for fname, data in cases.items():
        path = tmp_path / fname
        jio.write_nwb(path, data, session_description="round trip", identifier=fname,
                      session_start_time=datetime.datetime(2024, 1, 1, tzinfo=UTC),
                      subject={"subject_id": "s1", "species": "Rattus norvegicus"},
                      device_manufacturer="Molecular Devices")
        back = jio.read_nwb(path)
        want = data if isinstance(data, dict) else {data.protocol: data}
        assert list(back) == list(want)
        for name in want:
            _assert_same(want[name], back[name], t_rtol=1e-12)
        # a standard NWB reader sees a valid current-clamp file in SI units
        errors = pynwb.validate(path=str(path))
        assert not errors, errors
        with pynwb.NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            n = sum(r.n_sweeps for r in want.values())
            assert len(nwb.intracellular_recordings) == n
            assert len(nwb.icephys_simultaneous_recordings) == n
            seq = nwb.icephys_sequential_recordings
            assert list(seq["stimulus_type"].data[:]) == list(want)
            assert len(nwb.icephys_repetitions) == 1
            first = next(iter(want.values()))
            resp = nwb.acquisition[f"{first.protocol}_sweep{first.sweep_ids[0]}_response"]
            stim = nwb.stimulus[f"{first.protocol}_sweep{first.sweep_ids[0]}_stimulus"]
            assert isinstance(resp, pynwb.icephys.CurrentClampSeries)
            assert isinstance(stim, pynwb.icephys.CurrentClampStimulusSeries)
            assert resp.unit == "volts" and stim.unit == "amperes"
            np.testing.assert_allclose(resp.get_data_in_units(), first.v[0] * 1e-3, rtol=1e-15)
            np.testing.assert_allclose(stim.get_data_in_units(), first.i[0] * 1e-9, rtol=1e-15)
            assert resp.rate == pytest.approx(first.rate_hz, rel=1e-12)
            device = resp.electrode.device
            maker = getattr(getattr(device, "model", None), "manufacturer", None)
            assert (maker or device.manufacturer) == "Molecular Devices"
            assert resp.electrode.cell_id == first.metadata["cell_id"]
            assert nwb.subject.species == "Rattus norvegicus"


def test_npz_round_trip_all_shared_files(sscx, abf18, abf16, tmp_path):
    """write_npz/read_npz store float64 arrays with their units: everything bit-exact."""
    recs = dict(sscx)
    recs["IDrest"] = recs["IDrest"].correct_ljp(14.0)
    jio.write_npz(tmp_path / "sscx.npz", recs)
    back = jio.read_npz(tmp_path / "sscx.npz")
    assert list(back) == list(recs)
    for name in recs:
        _assert_same(recs[name], back[name], t_rtol=0)
    for rec in (abf18, abf16):
        path = jio.write_npz(tmp_path / "one.dat", rec)  # written exactly at this path
        assert path.name == "one.dat"
        got = jio.read_npz(path)
        assert isinstance(got, jio.Recording)
        _assert_same(rec, got, t_rtol=0)


# ---------------------------------------------------------------------- models
def _skeleton():
    comps = jd.discretize(jd.ball_and_stick(), nseg=4)
    cell = jd.Cell(comps).insert(jd.channels.HH()).insert(jd.channels.Leak(), where="soma")
    sites = np.asarray(cell.select("all")[:3])
    from jaxdend.synapses import AMPA, TsodyksMarkram

    return cell.add_synapses("ampa", AMPA(), sites, gmax=0.5, stp=TsodyksMarkram())


def _fitted(skeleton):
    cell = skeleton.set("HH.g_na", 0.2, where="soma").set("Leak.g", 3e-4, where="soma")
    cell = cell.set("ra", 150.0).set("celsius", 22.0).set("v_init", -68.0)
    cell = cell.set("ampa.gmax", np.array([0.1, 0.2, 0.3])).set("ampa.tau_decay", 2.5)
    return cell


def test_save_load_cell_exact_and_json(tmp_path):
    skeleton = _skeleton()
    cell = _fitted(skeleton)
    leaves, js = jio.save_cell(tmp_path / "fit.eqx", cell)
    assert leaves.is_file() and js == tmp_path / "fit.json"
    back = jio.load_cell(leaves, like=skeleton)
    assert tree_allclose(back, cell, rtol=0, atol=0)
    doc = json.loads(js.read_text())
    params = doc["parameters"]
    expected = {"cm", "ra", "celsius", "v_init", "ampa.gmax", "ampa.tau_rise",
                "ampa.tau_decay", "ampa.e_rev", "ampa.U", "ampa.tau_rec", "ampa.tau_fac"}
    for ch in cell.channels:
        expected |= {f"{type(ch).__name__}.{f.name}" for f in dataclasses.fields(ch)}
    assert set(params) == expected
    for name, entry in params.items():  # names are Cell.get names; scalar when uniform
        got = np.asarray(cell.get(name))
        np.testing.assert_array_equal(np.broadcast_to(np.asarray(entry["value"]), got.shape),
                                      got)
        assert list(got.shape) == entry["shape"]
    assert params["ra"]["value"] == 150.0 and params["ra"]["unit"] == "Ohm cm"
    assert isinstance(params["HH.g_na"]["value"], list)  # 0.2 on the soma only
    assert params["HH.g_na"]["unit"] == "S/cm^2" and params["HH.e_k"]["unit"] == "mV"
    assert params["ampa.gmax"]["unit"] == "nS" and params["ampa.tau_decay"]["unit"] == "ms"
    assert [c["name"] for c in doc["channels"]] == ["HH", "Leak"]
    assert doc["channels"][1]["inserted_nodes"] == [0]


def test_load_cell_structure_mismatch(tmp_path):
    cell = _fitted(_skeleton())
    path, _ = jio.save_cell(tmp_path / "fit.eqx", cell)
    comps = jd.discretize(jd.ball_and_stick(), nseg=4)
    no_leak = jd.Cell(comps).insert(jd.channels.HH())
    with pytest.raises(ValueError, match=r"channels differ.*missing in `like`: \['Leak'\]"):
        jio.load_cell(path, like=no_leak)
    other = jd.Cell(jd.discretize(jd.ball_and_stick(), nseg=2)).insert(jd.channels.HH())
    with pytest.raises(ValueError, match="nodes"):
        jio.load_cell(path, like=other)
    no_syn = jd.Cell(comps).insert(jd.channels.HH()).insert(jd.channels.Leak(), where="soma")
    with pytest.raises(ValueError, match="synapse groups differ"):
        jio.load_cell(path, like=no_syn)
    with pytest.raises(ValueError, match=r"float64 in the file but float32 in `like`"):
        jio.load_cell(path, like=to_float32(_skeleton()))
    with pytest.raises(FileNotFoundError, match="missing.eqx"):
        jio.load_cell(tmp_path / "missing.eqx", like=cell)


def test_save_load_params(tmp_path):
    params = {"HH.g_na": 0.123456789012345678, "gmax": np.array([0.1, 0.2, 1e-17]),
              "e_k": {"value": -77.0, "unit": "mV"}, "n_syn": 3}
    path = jio.save_params(tmp_path / "p.json", params, units={"HH.g_na": "S/cm^2"})
    back = jio.load_params(path)
    assert back["HH.g_na"] == params["HH.g_na"] and isinstance(back["HH.g_na"], float)
    np.testing.assert_array_equal(back["gmax"], params["gmax"])
    assert back["e_k"] == -77.0 and back["n_syn"] == 3
    with_units = jio.load_params(path, with_units=True)
    assert with_units["HH.g_na"]["unit"] == "S/cm^2" and with_units["e_k"]["unit"] == "mV"
    assert with_units["gmax"]["unit"] is None
    assert json.loads(path.read_text())["parameters"]["e_k"]["unit"] == "mV"
    with pytest.raises(ValueError, match="NaN or inf"):
        jio.save_params(tmp_path / "bad.json", {"g": np.nan})


def test_prediction_round_trip_npz_and_nwb(abf18, tmp_path):
    cell = _skeleton()
    clamp = jd.stimulus.step(0, 0.2, delay=2.0, dur=5.0)
    sol = jd.simulate(cell, clamp, t1=10.0, dt=0.025,
                      record={"soma": cell.probe("v", "soma"), "m": cell.probe("HH.m", "all")})
    traces = {"soma": sol["soma"], "m": sol["m"]}
    units = {"soma": "mV", "m": "dimensionless"}
    for fmt in ("npz", "nwb"):
        path = tmp_path / f"pred.{fmt}"
        jio.save_prediction(path, sol.ts, traces, format=fmt, stimulus=clamp, units=units,
                            metadata={"model": "ball-and-stick"})
        pred = jio.load_prediction(path)
        for name in traces:  # traces exact in both formats (float64, mV kept as data)
            np.testing.assert_array_equal(pred[name], np.asarray(traces[name]))
        assert dict(pred.units) == units
        assert dict(pred.metadata) == {"model": "ball-and-stick"}
        # npz keeps ms exactly; NWB stores timestamps in s (one rounding each way)
        np.testing.assert_allclose(pred.ts, np.asarray(sol.ts), rtol=1e-12 if fmt == "nwb"
                                   else 0, atol=0)
        expected_stim = np.where((pred.ts >= 2.0) & (pred.ts < 7.0), 0.2, 0.0)
        np.testing.assert_array_equal(pred.stimulus, expected_stim)
    # NWB: the prediction sits next to recorded data in the same file
    data = tmp_path / "data.nwb"
    jio.write_nwb(data, abf18.select([0]), session_description="d", identifier="d")
    jio.save_prediction(data, sol.ts, {"soma": sol["soma"]}, format="nwb", append=True)
    assert jio.read_nwb(data)[abf18.protocol].n_sweeps == 1
    np.testing.assert_array_equal(jio.load_prediction(data)["soma"], np.asarray(sol["soma"]))
    with pytest.raises(ValueError, match="already has a processing module"):
        jio.save_prediction(data, sol.ts, {"soma": sol["soma"]}, format="nwb", append=True)
    with pytest.raises(ValueError, match="first axis must match ts_ms"):
        jio.save_prediction(tmp_path / "x.npz", sol.ts[:-1], {"soma": sol["soma"]})


# ---------------------------------------------------------------------- bad input
def test_nan_sample_names_sweep_and_fix():
    rec = _synthetic()
    v = np.array(rec.v)
    v[1, 57] = np.nan
    with pytest.raises(ValueError, match=r"v\[1, 57\] is NaN.*interpolate_nans"):
        jio.Recording(rec.t, rec.i, v)
    i = np.array(rec.i)
    i[2, 3] = np.inf
    with pytest.raises(ValueError, match=r"i\[2, 3\] is inf"):
        jio.Recording(rec.t, i, rec.v)
    fixed = jio.Recording(rec.t, rec.i, jio.Recording.interpolate_nans(v))
    assert fixed.v[1, 57] == pytest.approx(0.5 * (v[1, 56] + v[1, 58]), rel=1e-12)


def test_nan_in_file_reader_suggests_interpolate(tmp_path):
    rec = _synthetic()
    jio.write_npz(tmp_path / "r.npz", rec)
    z = dict(np.load(tmp_path / "r.npz"))
    z["protocol.v"] = z["protocol.v"].copy()
    z["protocol.v"][0, 10] = np.nan
    np.savez(tmp_path / "nan.npz", **z)
    with pytest.raises(ValueError, match=r"v\[0, 10\] is NaN.*nans='interpolate'"):
        jio.read_npz(tmp_path / "nan.npz")
    back = jio.read_npz(tmp_path / "nan.npz", nans="interpolate")
    assert np.isfinite(back.v).all()


def test_gap_in_time_says_where():
    rec = _synthetic()
    t = np.delete(rec.t, 120)  # one missing sample: step of 0.2 ms between 11.9 and 12.1
    with pytest.raises(ValueError, match=r"Non-uniform sampling: t\[120\] - t\[119\] = 0.2 ms"):
        jio.Recording(t, rec.i[:, 1:], rec.v[:, 1:])
    with pytest.raises(ValueError, match="must start at 0 ms"):
        jio.Recording(rec.t + 1.0, rec.i, rec.v)


def test_wrong_units_are_refused():
    rec = _synthetic()
    with pytest.raises(ValueError, match="v looks like volts.*v \\* 1e3"):
        jio.Recording(rec.t, rec.i, rec.v * 1e-3)
    with pytest.raises(ValueError, match="i looks like amperes.*i \\* 1e9"):
        jio.Recording(rec.t, rec.i * 1e-9, rec.v)
    with pytest.raises(ValueError, match="looks like pA"):
        jio.Recording(rec.t, rec.i * 1e3, rec.v)
    with pytest.raises(ValueError, match="t looks like seconds"):
        jio.Recording(rec.t * 1e-3, rec.i, rec.v)


def test_wrong_shapes_and_empty():
    rec = _synthetic()
    with pytest.raises(ValueError, match="Mismatched shapes of i"):
        jio.Recording(rec.t, rec.i[:2], rec.v)
    with pytest.raises(ValueError, match="t has 199 samples"):
        jio.Recording(rec.t[:-1], rec.i, rec.v)
    with pytest.raises(ValueError, match="Empty recording"):
        jio.Recording(np.zeros(0), np.zeros((0, 0)), np.zeros((0, 0)))
    with pytest.raises(ValueError, match="sweep_ids has shape"):
        jio.Recording(rec.t, rec.i, rec.v, sweep_ids=[1, 2])
    with pytest.raises(ValueError, match="unique"):
        jio.Recording(rec.t, rec.i, rec.v, sweep_ids=[1, 1, 2])


def test_npz_without_units_is_refused(tmp_path, shared_data):
    rec = _synthetic(protocol="IV")
    jio.write_npz(tmp_path / "ok.npz", rec)
    z = dict(np.load(tmp_path / "ok.npz"))
    del z["IV.v_unit"]
    np.savez(tmp_path / "nounit.npz", **z)
    with pytest.raises(ValueError, match="key 'IV.v_unit' is missing.*unit of every array"):
        jio.read_npz(tmp_path / "nounit.npz")
    z = dict(np.load(tmp_path / "ok.npz"))
    z["IV.i_unit"] = np.array("furlongs")
    np.savez(tmp_path / "badunit.npz", **z)
    with pytest.raises(ValueError, match="Unknown or missing current unit 'furlongs'"):
        jio.read_npz(tmp_path / "badunit.npz")
    with pytest.raises(ValueError, match="key 'format' is missing.*read_npz_protocols"):
        jio.read_npz(shared_data / SSCX)


def _crafted_nwb(path, *, stim_rate=10000.0, stim_len=100, with_stim=True):
    """One current-clamp sweep at 10 kHz (100 samples), its stimulus as asked."""
    import pynwb
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    nwb = pynwb.NWBFile(session_description="crafted", identifier="crafted",
                        session_start_time=datetime.datetime(2024, 1, 1, tzinfo=UTC))
    dev = nwb.create_device(name="amp")
    el = nwb.create_icephys_electrode(name="e", device=dev, description="pipette")
    resp = CurrentClampSeries(name="resp", data=np.full(100, -0.065), electrode=el, gain=1.0,
                              rate=10000.0, starting_time=0.0, sweep_number=np.uint32(0))
    nwb.add_acquisition(resp)
    stim = None
    if with_stim:
        stim = CurrentClampStimulusSeries(name="stim", data=np.full(stim_len, 1e-10),
                                          electrode=el, gain=1.0, rate=stim_rate,
                                          starting_time=0.0, sweep_number=np.uint32(0))
        nwb.add_stimulus(stim)
    nwb.add_intracellular_recording(electrode=el, stimulus=stim, response=resp)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_nwb_written_by_others_and_its_errors(tmp_path):
    import h5py

    good = jio.read_nwb(_crafted_nwb(tmp_path / "ok.nwb"))
    (rec,) = good.values()
    np.testing.assert_allclose(rec.v, -65.0, rtol=1e-12)  # volts -> mV
    np.testing.assert_allclose(rec.i, 0.1, rtol=1e-12)  # amperes -> nA
    assert rec.dt == pytest.approx(0.1, rel=1e-12)
    with pytest.raises(ValueError, match="mismatched sampling rates.*20000 Hz.*10000 Hz"):
        jio.read_nwb(_crafted_nwb(tmp_path / "rate.nwb", stim_rate=20000.0))
    with pytest.raises(ValueError, match="mismatched lengths.*90 samples.*100"):
        jio.read_nwb(_crafted_nwb(tmp_path / "len.nwb", stim_len=90))
    nostim = _crafted_nwb(tmp_path / "nostim.nwb", with_stim=False)
    with pytest.raises(ValueError, match="has no stimulus series.*missing_stimulus='zero'"):
        jio.read_nwb(nostim)
    (zero,) = jio.read_nwb(nostim, missing_stimulus="zero").values()
    assert np.all(zero.i == 0.0)
    path = _crafted_nwb(tmp_path / "nounit.nwb")
    with h5py.File(path, "a") as f:
        del f["acquisition/resp/data"].attrs["unit"]
    with pytest.raises(ValueError, match="series 'resp' has no unit"):
        jio.read_nwb(path)
    path = _crafted_nwb(tmp_path / "noconv.nwb")
    with h5py.File(path, "a") as f:
        del f["stimulus/presentation/stim/data"].attrs["conversion"]
    with pytest.raises(ValueError, match="series 'stim' has no conversion factor"):
        jio.read_nwb(path)


def test_missing_files_and_foreign_formats(tmp_path, shared_data):
    missing = tmp_path / "absent.file"
    for reader in (jio.read_abf, jio.read_npz, jio.read_npz_protocols, jio.read_nwb,
                   jio.load_params, jio.load_prediction):
        with pytest.raises(FileNotFoundError, match="absent.file"):
            reader(missing)
    with pytest.raises(ValueError, match="not a readable ABF file"):
        jio.read_abf(shared_data / SSCX)
    with pytest.raises(ValueError, match="not a readable NWB"):
        jio.read_nwb(shared_data / SSCX)
    with pytest.raises(ValueError, match="not an .npz archive"):
        jio.read_npz(shared_data / ABF16)
    with pytest.raises(ValueError, match="neither an npz nor an NWB"):
        jio.load_prediction(shared_data / ABF16)


def test_writers_refuse_bad_metadata_and_names(tmp_path):
    rec = _synthetic(protocol="p", metadata={"when": datetime.date(2024, 1, 1)})
    with pytest.raises(ValueError, match=r"metadata\['when'\].*cannot be stored as JSON"):
        jio.write_npz(tmp_path / "m.npz", rec)
    with pytest.raises(ValueError, match="without '/'"):
        jio.write_npz(tmp_path / "n.npz", {"a/b": _synthetic()})
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        jio.write_nwb(tmp_path / "s.nwb", _synthetic(protocol="p", sweep_ids=[-1, 0, 1]),
                      session_description="d", identifier="i")
    with pytest.raises(ValueError, match="timezone-aware"):
        jio.write_nwb(tmp_path / "s.nwb", _synthetic(protocol="p"), session_description="d",
                      identifier="i", session_start_time=datetime.datetime(2024, 1, 1))


def test_public_api_documented():
    import jaxdend.io as mod

    assert "ms" in mod.__doc__ and "mV" in mod.__doc__ and "nA" in mod.__doc__
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
    assert jax.config.jax_enable_x64  # the exact comparisons above rely on float64
