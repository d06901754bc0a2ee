"""Differentiable electrophysiology features: agreement with plain NumPy, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import hh_cell

import jaxdend as jd
from jaxdend import features as F

DT = 0.025  # ms


# ----------------------------------------------------------------------------- NumPy
def np_crossings(v, thr):
    return np.nonzero((v[:-1] < thr) & (v[1:] >= thr))[0]


def np_spike_shapes(t, v, thr=0.0, k=20.0):
    """Per-spike peak, onset, amplitude, half-width, trough (loops, as in the docstring)."""
    n = v.size
    cross = np_crossings(v, thr)
    slope = np.diff(v) / np.diff(t)
    peaks = []
    for s, c in enumerate(cross):
        end = cross[s + 1] if s + 1 < cross.size else n - 1
        seg = np.arange(c + 1, end + 1)
        peaks.append(seg[np.argmax(v[seg])])
    rows = []
    for s, (c, p) in enumerate(zip(cross, peaks)):
        lo = peaks[s - 1] if s else 0
        onset = None
        for i in range(p - 1, lo - 1, -1):  # last upward slope crossing before the peak
            if i >= 1 and slope[i - 1] < k <= slope[i]:
                onset = i
                # the slope (linear between pair midpoints) reaches k at tau samples from i
                tau = (k - slope[i - 1]) / (slope[i] - slope[i - 1]) - 0.5
                v_on = v[i] + (tau * (v[i] - v[i - 1]) if tau < 0 else tau * (v[i + 1] - v[i]))
                break
        if onset is None:  # trough before the spike
            region = np.arange(lo, c + 1)
            onset = region[np.argmin(v[region])]
            v_on = v[onset]
        peak = v[p]
        half = 0.5 * (peak + v_on)
        rise = [i for i in range(onset, p) if v[i] < half <= v[i + 1]][-1]
        t_rise = t[rise] + (half - v[rise]) / (v[rise + 1] - v[rise]) * (t[rise + 1] - t[rise])
        nxt = cross[s + 1] if s + 1 < cross.size else n - 1
        falls = [i for i in range(p, min(nxt + 1, n - 1)) if v[i] >= half > v[i + 1]]
        width = None
        if falls:
            i = falls[0]
            t_fall = t[i] + (v[i] - half) / (v[i] - v[i + 1]) * (t[i + 1] - t[i])
            width = t_fall - t_rise
        region = np.arange(p, nxt + 1)
        trough = v[region[np.argmin(v[region])]]
        rows.append({"peak": peak, "onset": v_on, "amplitude": peak - v_on,
                     "half_width": width, "trough": trough, "ahp_depth": v_on - trough})
    return rows


def np_step_features(t, v, start, end, amp, fit_range=(0.1, 0.9)):
    base = v[t < start].mean()
    late = (t >= end - 0.1 * (end - start)) & (t < end)
    ss = v[late].mean()
    step = (t >= start) & (t < end)
    sign = 1.0 if ss >= base else -1.0
    ext = np.max(sign * (v[step] - base))
    f = (v - base) / (sign * ext)
    reach = step & (f >= fit_range[1])
    t_hi = t[reach].min() if reach.any() else np.inf
    use = step & (f >= fit_range[0]) & (f <= fit_range[1]) & (t < t_hi)
    slope = np.polyfit(t[use], np.log(1.0 - f[use]), 1)[0]
    return {"rin": (ss - base) / amp, "tau": -1.0 / slope,
            "sag": (ext - sign * (ss - base)) / ext}


# ----------------------------------------------------------------------------- traces
@pytest.fixture(scope="module")
def cell():
    return hh_cell(jd.ball_and_stick(dend_length=200.0), nseg=2)


@pytest.fixture(scope="module")
def spiking(cell):
    sol = jd.simulate(cell, jd.stimulus.step(0, 0.2, 5.0, 40.0), t1=50.0, dt=DT)
    return np.asarray(sol.ts), np.asarray(sol["v"][:, 0])


@pytest.fixture(scope="module")
def hyper(cell):
    sol = jd.simulate(cell, jd.stimulus.step(0, -0.05, 5.0, 40.0), t1=50.0, dt=DT)
    return np.asarray(sol.ts), np.asarray(sol["v"][:, 0])


def check_spike_features(t, v, rtol):
    ref = np_spike_shapes(t, v)
    assert len(ref) >= 2
    s = F.spike_shapes(t, v)  # 32 slots, as the means below (one compilation)
    assert int(np.sum(s["valid"])) == len(ref)
    for key in ("peak", "onset", "amplitude", "trough", "ahp_depth"):
        np.testing.assert_allclose(np.asarray(s[key])[: len(ref)], [r[key] for r in ref],
                                   rtol=rtol, atol=1e-9, err_msg=key)
    widths = [r["half_width"] for r in ref]
    ok = np.asarray(s["half_width_valid"])[: len(ref)]
    np.testing.assert_array_equal(ok, [w is not None for w in widths])
    np.testing.assert_allclose(np.asarray(s["half_width"])[: len(ref)][ok],
                               [w for w in widths if w is not None], rtol=rtol)
    mean = {k: np.mean([r[k] for r in ref]) for k in ("amplitude", "ahp_depth")}
    np.testing.assert_allclose(float(F.ap_amplitude(t, v)), mean["amplitude"], rtol=rtol)
    np.testing.assert_allclose(float(F.ahp_depth(t, v)), mean["ahp_depth"], rtol=rtol)
    np.testing.assert_allclose(float(F.ap_half_width(t, v)),
                               np.mean([w for w in widths if w is not None]), rtol=rtol)
    times = F.spike_times(t, v)
    np.testing.assert_allclose(float(F.spike_count(t, v)), times.size, atol=1e-3)
    got, valid = F.crossing_times(t, v, max_spikes=times.size + 2)
    np.testing.assert_allclose(np.asarray(got)[np.asarray(valid)], times, rtol=1e-12)
    return ref


def test_spike_features_match_numpy_on_simulated_trace(spiking):
    t, v = spiking
    ref = check_spike_features(t, v, rtol=1e-10)
    assert 60 < ref[0]["amplitude"] < 120 and 0.5 < ref[0]["half_width"] < 3.0  # HH, 6.3 degC
    lat = float(F.first_spike_latency(t, v, 5.0))
    np.testing.assert_allclose(lat, F.spike_times(t, v)[0] - 5.0, rtol=1e-12)


def test_step_features_match_numpy_on_simulated_trace(hyper):
    t, v = hyper
    ref = np_step_features(t, v, 5.0, 45.0, -0.05)
    np.testing.assert_allclose(float(F.input_resistance(t, v, 5.0, 45.0, -0.05)), ref["rin"],
                               rtol=1e-12)
    np.testing.assert_allclose(float(F.membrane_time_constant(t, v, 5.0, 45.0)), ref["tau"],
                               rtol=1e-9)
    np.testing.assert_allclose(float(F.sag_ratio(t, v, 5.0, 45.0)), ref["sag"], rtol=1e-12)


def test_time_constant_and_sag_of_analytic_curves():
    t = np.arange(0.0, 200.0, 0.1)
    on = (t >= 20.0) & (t < 170.0)
    v = -70.0 - 5.0 * np.where(on, 1.0 - np.exp(-(t - 20.0) / 12.5), 0.0)
    np.testing.assert_allclose(float(F.membrane_time_constant(t, v, 20.0, 170.0)), 12.5,
                               rtol=1e-4)
    np.testing.assert_allclose(float(F.input_resistance(t, v, 20.0, 170.0, -0.1)), 50.0,
                               rtol=1e-4)
    assert abs(float(F.sag_ratio(t, v, 20.0, 170.0))) < 1e-4
    # a sag: peak deflection 10 mV relaxing to 7.5 mV -> ratio 0.25
    sag = -70.0 + np.where(on, -7.5 - 2.5 * np.exp(-np.maximum(t - 20.0, 0.0) / 5.0), 0.0)
    np.testing.assert_allclose(float(F.sag_ratio(t, sag, 20.0, 170.0)), 0.25, rtol=1e-6)


def _load_real(shared_data):
    d = np.load(shared_data / "ephys" / "sscx_L5TPC_C060114A5-SR-C1_all_protocols.npz")
    return d


# stimulus windows (ms) of the protocols, from ../shared/data/README.md
WINDOWS = {"IV": (20.0, 1020.0), "IDrest": (700.0, 2700.0)}


def _sweep(d, protocol, k):
    """t (ms), v (mV), step start and end (ms) and amplitude (nA) of one sweep."""
    dt = float(d[f"{protocol}_dt"]) * 1e3  # s -> ms
    v = d[f"{protocol}_v"][k].astype(float) * 1e3  # V -> mV
    i = d[f"{protocol}_i"][k].astype(float) * 1e9  # A -> nA
    t = np.arange(v.size) * dt
    start, end = WINDOWS[protocol]
    amp = float(np.median(i[(t >= start) & (t < end)]) - np.median(i[t < start]))
    return t, v, start, end, amp


def test_features_match_numpy_on_real_recordings(shared_data):
    d = _load_real(shared_data)
    # most hyperpolarising IV sweep: input resistance, time constant, sag
    k = int(np.argmin(np.median(d["IV_i"][:, 1000:4000].astype(float), axis=1)))
    t, v, start, end, amp = _sweep(d, "IV", k)
    assert amp < -0.1  # nA
    ref = np_step_features(t, v, start, end, amp)
    np.testing.assert_allclose(float(F.input_resistance(t, v, start, end, amp)), ref["rin"],
                               rtol=1e-10)
    np.testing.assert_allclose(float(F.membrane_time_constant(t, v, start, end)), ref["tau"],
                               rtol=1e-8)
    np.testing.assert_allclose(float(F.sag_ratio(t, v, start, end)), ref["sag"], rtol=1e-10)
    assert 10 < ref["rin"] < 200 and 2 < ref["tau"] < 100 and 0 < ref["sag"] < 0.5
    # an IDrest sweep with a few spikes: AP shape, count, latency
    counts = [F.spike_times(np.arange(d["IDrest_v"].shape[1]), d["IDrest_v"][j] * 1e3).size
              for j in range(d["IDrest_v"].shape[0])]
    j = int(np.argmax([c if c <= 12 else -1 for c in counts]))
    t, v, start, end, amp = _sweep(d, "IDrest", j)
    check_spike_features(t, v, rtol=1e-9)
    lat = float(F.first_spike_latency(t, v, start))
    np.testing.assert_allclose(lat, F.spike_times(t, v)[0] - start, rtol=1e-12)


def test_onset_is_continuous_across_the_sample_grid(cell):
    """A spike sampled at 0.1 ms with 20 sub-sample phases: the interpolated onset voltage
    moves by well under the onset sample's own jump (about dvdt_threshold x dt = 2 mV)."""
    sol = jd.simulate(cell, jd.stimulus.step(0, 0.2, 5.0, 40.0), t1=20.0, dt=0.005)
    t, v = np.asarray(sol.ts), np.asarray(sol["v"][:, 0])
    interp, sample = [], []
    for k in range(20):
        tk, vk = t[k::20], v[k::20]
        interp.append(float(F.spike_shapes(tk, vk)["onset"][0]))
        slope = np.diff(vk) / np.diff(tk)
        up = np.nonzero((slope[:-1] < 20.0) & (slope[1:] >= 20.0))[0]
        sample.append(vk[up[up + 1 < np.argmax(vk)][-1] + 1])  # the onset sample
    fine = float(F.spike_shapes(t, v)["onset"][0])
    assert np.ptp(sample) > 1.0  # the sample grid alone moves the raw onset by > 1 mV
    assert np.ptp(interp) < 0.25 * np.ptp(sample)
    np.testing.assert_allclose(np.mean(interp), fine, atol=0.2)


def test_spike_times_numpy_unchanged():
    t = np.arange(0.0, 10.0, 1.0)
    v = np.array([-1.0, 1.0, -1.0, -1.0, 3.0, 3.0, -1.0, 0.0, 2.0, -5.0])
    np.testing.assert_allclose(F.spike_times(t, v), [0.5, 3.25, 7.0])
    with pytest.raises(ValueError, match="1-D of equal length"):
        F.spike_times(t, v[:-1])


# ----------------------------------------------------------------------------- gradients
def _jacobian(fn, n_out):
    """x -> (fn(x), Jacobian) with one compiled VJP called once per output (cheaper to
    compile than jax.jacrev's batched backward pass through a simulation)."""
    @jax.jit
    def value_and_vjp(x, ct):
        val, pull = jax.vjp(fn, x)
        return val, pull(ct)[0]

    def jac(x):
        rows = [value_and_vjp(x, jnp.eye(n_out)[i]) for i in range(n_out)]
        return np.asarray(rows[0][0]), np.stack([np.asarray(r[1]) for r in rows])

    return jac, value_and_vjp


def test_gradients_wrt_trace_are_finite(spiking, hyper):
    t, v = spiking

    def spike_feats(v):
        return jnp.stack([F.spike_count(t, v), F.first_spike_latency(t, v, 5.0),
                          F.ap_amplitude(t, v), F.ap_half_width(t, v), F.ahp_depth(t, v)])

    jac = _jacobian(spike_feats, 5)[0]
    g = jac(jnp.asarray(v))[1]
    assert np.all(np.isfinite(g)) and np.all(np.any(g != 0, axis=1))
    # a trace without spikes: AP features 0 with zero (finite) gradients
    val, g = jac(jnp.full_like(jnp.asarray(v), -65.0))
    np.testing.assert_array_equal(val[2:], 0.0)
    np.testing.assert_array_equal(g[2:], 0.0)
    t2, v2 = hyper

    def step_feats(v):
        return jnp.stack([F.input_resistance(t2, v, 5.0, 45.0, -0.05),
                          F.membrane_time_constant(t2, v, 5.0, 45.0),
                          F.sag_ratio(t2, v, 5.0, 45.0)])

    g = _jacobian(step_feats, 3)[0](jnp.asarray(v2))[1]
    assert np.all(np.isfinite(g)) and np.all(np.any(g != 0, axis=1))


def test_gradients_through_simulate(cell):
    """d feature / d conductance through jaxdend.simulate: finite, and equal to central finite
    differences for the features that are smooth functions of the samples."""
    spike_stim = jd.stimulus.step(0, 0.2, 5.0, 25.0)
    hyper_stim = jd.stimulus.step(0, -0.05, 5.0, 25.0)

    def spike_feats(g_na):
        sol = jd.simulate(cell.set("HH.g_na", g_na), spike_stim, t1=30.0, dt=DT)
        t, v = sol.ts, sol["v"][:, 0]
        return jnp.stack([F.spike_count(t, v), F.first_spike_latency(t, v, 5.0),
                          F.ap_amplitude(t, v), F.ap_half_width(t, v), F.ahp_depth(t, v)])

    def step_feats(g_l):
        sol = jd.simulate(cell.set("HH.g_l", g_l), hyper_stim, t1=30.0, dt=DT)
        t, v = sol.ts, sol["v"][:, 0]
        return jnp.stack([F.input_resistance(t, v, 5.0, 30.0, -0.05),
                          F.membrane_time_constant(t, v, 5.0, 30.0),
                          F.sag_ratio(t, v, 5.0, 30.0)])

    for fn, n_out, g0, smooth in ((spike_feats, 5, 0.12, [1, 2]), (step_feats, 3, 3e-4, [0, 2])):
        jac, value_and_vjp = _jacobian(fn, n_out)
        g0 = jnp.asarray(g0)
        jac = jac(g0)[1]
        assert np.all(np.isfinite(jac)) and np.all(jac[1:] != 0)
        h = 1e-6 * float(g0)
        ct = jnp.zeros(n_out)
        fd = (np.asarray(value_and_vjp(g0 + h, ct)[0])
              - np.asarray(value_and_vjp(g0 - h, ct)[0])) / (2 * h)
        np.testing.assert_allclose(jac[smooth], fd[smooth], rtol=1e-4)


def test_feature_argument_errors(spiking):
    t, v = spiking
    with pytest.raises(ValueError, match="1-D arrays of equal length"):
        F.ap_amplitude(t, v[:, None])
    with pytest.raises(ValueError, match="amplitude is 0"):
        F.input_resistance(t, v, 5.0, 45.0, 0.0)
    with pytest.raises(ValueError, match="start < end"):
        F.sag_ratio(t, v, 45.0, 5.0)
    with pytest.raises(ValueError, match="max_spikes"):
        F.spike_shapes(t, v, max_spikes=0)
    with pytest.raises(ValueError, match="No sample before"):
        F.input_resistance(t, v, 0.0, 45.0, 0.1)
    with pytest.raises(ValueError, match="fit_range"):
        F.membrane_time_constant(t, v, 5.0, 45.0, fit_range=(0.9, 0.1))
