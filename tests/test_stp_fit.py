"""Fitting Tsodyks–Markram STP: synthetic recovery, the real recordings, bad input."""

import csv

import numpy as np
import pytest

import jaxdend as jd
from jaxdend.synapses import (
    AMPA,
    Input,
    TsodyksMarkram,
    fit_stp_amplitudes,
    fit_stp_trace,
    tm_release,
)

TRUE_AMP = {"U": 0.25, "tau_rec": 350.0, "tau_fac": 80.0, "amplitude": 1.5}
TRUE_TRACE = {"U": 0.4, "tau_rec": 250.0, "tau_fac": 30.0, "gmax": 0.5, "tau_rise": 0.5,
              "tau_decay": 3.0, "tau_m": 25.0, "e_leak": -70.0, "delay": 2.0}
SPIKES = np.array([10.0, 35.0, 60.0, 85.0, 110.0, 200.0])  # ms: 40 Hz train + recovery


def _trains():
    """Regular trains at 10, 20, 40 Hz (8 spikes) plus a recovery spike 500 ms later (ms)."""
    return [np.r_[np.arange(8) * 1000.0 / f, 8 * 1000.0 / f + 500.0] for f in (10, 20, 40)]


def _synthetic_amplitudes():
    stp = TsodyksMarkram(TRUE_AMP["U"], TRUE_AMP["tau_rec"], TRUE_AMP["tau_fac"])
    scale = TRUE_AMP["amplitude"] / TRUE_AMP["U"]
    return [scale * np.asarray(tm_release(stp, t)) for t in _trains()]


def _synthetic_trace():
    """Soma voltage (mV) of a passive compartment with a TM synapse, built independently of
    the fitter; the delay is applied to the spike times (on the 0.2 ms grid)."""
    p = TRUE_TRACE
    comps = jd.discretize(jd.ball_and_stick(soma_diam=20.0, dend_length=1.0, dend_diam=0.01),
                          nseg=1)
    cell = jd.Cell(comps, v_init=p["e_leak"]).insert(
        jd.channels.Leak(g=1e-3 / p["tau_m"], e=p["e_leak"]))
    cell = cell.add_synapses("s", AMPA(tau_rise=p["tau_rise"], tau_decay=p["tau_decay"]), [0],
                             p["gmax"], stp=TsodyksMarkram(p["U"], p["tau_rec"], p["tau_fac"]))
    sol = jd.simulate(cell, Input("s", [list(SPIKES + p["delay"])]), t1=260.0, dt=0.2,
                      record=cell.probe("v", index=0))
    return np.asarray(sol.ts), np.asarray(sol["v"][:, 0])


# ----------------------------------------------------------------------------- synthetic
def test_amplitude_fit_recovers_parameters():
    """Noise-free amplitudes of three trains: refit from a start 2-4x off recovers all four
    parameters to 1e-3 relative and R^2 to 1 - 1e-8."""
    start = {"U": 0.5, "tau_rec": 150.0, "tau_fac": 20.0, "amplitude": 1.0}
    fit = fit_stp_amplitudes(_trains(), _synthetic_amplitudes(), steps=1500, n_starts=1,
                             init=start)
    for k, v in TRUE_AMP.items():
        assert fit.params[k] == pytest.approx(v, rel=1e-3), k
    assert fit.params["scale"] == pytest.approx(TRUE_AMP["amplitude"] / TRUE_AMP["U"], rel=1e-3)
    assert fit.r2 > 1 - 1e-8
    assert [p.shape for p in fit.prediction] == [t.shape for t in _trains()]
    assert fit.units["tau_rec"] == "ms" and fit.units["U"] == "1"


def test_amplitude_fit_fixed_tau_fac_pure_depression():
    """With tau_fac fixed to 0 a depressing synapse (generated with tau_fac = 0) is recovered."""
    trains = _trains()
    stp = TsodyksMarkram(0.6, 500.0, 0.0)
    amps = [2.0 * np.asarray(tm_release(stp, t)) for t in trains]
    fit = fit_stp_amplitudes(trains, amps, steps=1000, n_starts=1, fixed={"tau_fac": 0.0})
    assert fit.params["tau_fac"] == 0.0 and fit.fixed == ("tau_fac",)
    assert fit.params["U"] == pytest.approx(0.6, rel=1e-3)
    assert fit.params["tau_rec"] == pytest.approx(500.0, rel=1e-3)
    assert fit.params["scale"] == pytest.approx(2.0, rel=1e-3)


def test_trace_fit_recovers_parameters():
    """A synthetic PSP train (jaxdend's own model): from the default start (U, tau_rec,
    tau_fac off by 25-67 %), with tau_m fixed (it trades off with tau_decay in the PSP
    shape), 600 Adam steps reach R^2 > 1 - 1e-4 and recover U, tau_rec and tau_fac within
    2 %, the resting potential within 0.05 mV, tau_decay within 10 %, gmax within 20 % and
    the delay within 0.25 ms. tau_rise (0.5 ms, below three samples of the 0.2 ms grid)
    trades off with the delay and is only checked to stay below tau_decay."""
    t, v = _synthetic_trace()
    fit = fit_stp_trace(t, v, SPIKES, steps=600, learning_rate=0.1,
                        fixed={"tau_m": TRUE_TRACE["tau_m"]})
    p = fit.params
    assert fit.r2 > 1 - 1e-4
    for k in ("U", "tau_rec", "tau_fac"):
        assert p[k] == pytest.approx(TRUE_TRACE[k], rel=0.02), k
    assert p["e_leak"] == pytest.approx(TRUE_TRACE["e_leak"], abs=0.05)
    assert p["tau_decay"] == pytest.approx(TRUE_TRACE["tau_decay"], rel=0.10)
    assert p["gmax"] == pytest.approx(TRUE_TRACE["gmax"], rel=0.20)
    assert p["delay"] == pytest.approx(TRUE_TRACE["delay"], abs=0.25)
    assert 0 < p["tau_rise"] < p["tau_decay"]
    assert p["tau_m"] == TRUE_TRACE["tau_m"]
    assert fit.prediction.shape == v.shape
    assert fit.loss_history.shape == (600,)


# ----------------------------------------------------------------------------- real data
def _load_trace(shared_data):
    path = shared_data / "plasticity" / "bluepyopt_stp_L5TTPC_trace.csv"
    with open(path) as fh:
        spikes = 1e3 * np.array(fh.readline().split(":", 1)[1].split(), dtype=float)
    d = np.loadtxt(path, delimiter=",", skiprows=2)
    return 1e3 * d[:, 0], 1e3 * d[:, 1], spikes


def test_real_trace_fit(shared_data):
    """L5TTPC trace: the full benchmark (400 steps, 2 starts) reaches R^2 = 0.991; 60 steps
    from the default start reach 0.989 (0.980 after 40), so the test asserts R^2 > 0.98 and a
    depressing connection (first PSP > 1 mV, the model's 8th PSP smaller than the 1st)."""
    t, v, spikes = _load_trace(shared_data)
    assert spikes.size == 9
    fit = fit_stp_trace(t, v, spikes, steps=60)
    assert fit.r2 > 0.98
    assert fit.params["psp1_mV"] > 1.0
    rel = np.asarray(tm_release(
        TsodyksMarkram(fit.params["U"], fit.params["tau_rec"], fit.params["tau_fac"]), spikes))
    assert rel[7] < 0.6 * rel[0]
    assert abs(fit.params["e_leak"] - np.median(v[t < spikes[0]])) < 0.2
    assert 0 < fit.params["delay"] < 10


def test_real_amplitude_fit(shared_data):
    """PVBC amplitudes at 10/20/40 Hz: the full benchmark (2000 steps, 8 starts, all ending
    within 1e-5 of each other) gives R^2 = 0.871; 300 steps and 2 starts must exceed 0.86,
    with a depressing synapse (U < 0.5, tau_rec > 100 ms)."""
    trains: dict[str, tuple[list, list]] = {}
    with open(shared_data / "plasticity" / "bluepyopt_stp_PVBC_amps.csv") as fh:
        for row in csv.DictReader(fh):
            ts, amps = trains.setdefault(row["train_frequency"], ([], []))
            ts.append(float(row["t_spike_ms"]))
            amps.append(float(row["normalized_psc_amplitude"]))
    assert sorted(trains) == ["10Hz", "20Hz", "40Hz"]
    fit = fit_stp_amplitudes([x[0] for x in trains.values()], [x[1] for x in trains.values()],
                             steps=300, n_starts=2)
    assert fit.r2 > 0.86
    assert fit.params["U"] < 0.5 and fit.params["tau_rec"] > 100.0


# ----------------------------------------------------------------------------- bad input
def _trace():
    t = np.arange(0.0, 100.0, 0.1)
    return t, -70.0 + np.exp(-np.maximum(t - 20.0, 0.0) / 10.0) * (t > 20.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amplitudes": [[1.0, 0.5]]}, "equal length"),
        ({"amplitudes": [[1.0, np.nan, 0.5]]}, "NaN"),
        ({"spike_times": [[0.0, 20.0, 10.0]]}, "strictly increasing"),
        ({"amplitudes": [[-1.0, -0.5, -0.4]]}, "magnitudes"),
        ({"amplitudes": [[1.0, 1.0, 1.0]]}, "all equal"),
        ({"amplitudes": [[1.0, 0.5, 0.4], [1.0, 0.5, 0.4]]}, "1 train"),
        ({"fixed": {"tau_recovery": 10.0}}, "Unknown parameter"),
        ({"init": {"U": 1.5}}, "outside its bounds"),
        ({"bounds": {"tau_rec": (100.0, 10.0)}}, "need lo < hi"),
        ({"fixed": {"U": 0.0}}, r"\(0, 1\]"),
        ({"steps": 0}, "steps"),
    ],
)
def test_amplitude_fit_bad_input(kwargs, match):
    args = {"spike_times": [[0.0, 20.0, 40.0]], "amplitudes": [[1.0, 0.5, 0.4]]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_stp_amplitudes(args.pop("spike_times"), args.pop("amplitudes"), **args)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t, v, s: (t, v[:-1], s), "equal"),
        (lambda t, v, s: (t, np.where(t > 50, np.nan, v), s), "NaN"),
        (lambda t, v, s: (t, v, np.array([20.0, 150.0])), "inside the recording"),
        (lambda t, v, s: (t, v, s / 1e3 - 1.0), "inside the recording"),
        (lambda t, v, s: (t**1.01, v, s), "uniformly spaced"),
        (lambda t, v, s: (t, v, np.array([40.0, 20.0])), "increasing"),
        (lambda t, v, s: (t, np.full_like(v, -70.0), s), "constant"),
    ],
)
def test_trace_fit_bad_input(change, match):
    t, v = _trace()
    t, v, s = change(t, v, np.array([20.0, 60.0]))
    with pytest.raises(ValueError, match=match):
        fit_stp_trace(t, v, s, steps=1)


def test_trace_fit_bad_options():
    t, v = _trace()
    s = np.array([20.0, 60.0])
    with pytest.raises(ValueError, match="Unknown parameter"):
        fit_stp_trace(t, v, s, fixed={"tau_membrane": 20.0})
    with pytest.raises(ValueError, match="must be > 0"):
        fit_stp_trace(t, v, s, fixed={"tau_m": -5.0})
    with pytest.raises(ValueError, match="receptor"):
        fit_stp_trace(t, v, s, receptor="AMPA")
    with pytest.raises(ValueError, match="n_starts"):
        fit_stp_trace(t, v, s, n_starts=0)
