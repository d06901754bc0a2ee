"""simulate(): analytic passive cable, solver orders, diffrax pass-through, recordings."""

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import hh_cell, to_float32, tree_allclose

import jaxdend as jd

RM = 10_000.0  # Ohm cm^2
RA = 100.0  # Ohm cm


def _passive_ball_and_stick(nseg=101, length=500.0, diam=2.0):
    morph = jd.ball_and_stick(soma_diam=20.0, dend_length=length, dend_diam=diam)
    cell = jd.Cell(jd.discretize(morph, nseg=nseg), ra=RA, cm=1.0)
    return cell.insert(jd.channels.Leak(g=1.0 / RM, e=-65.0))


def test_input_resistance_matches_cable_theory():
    length, diam = 500.0, 2.0
    cell = _passive_ball_and_stick(length=length, diam=diam)
    amp = 0.01  # nA
    sol = jd.simulate(cell, jd.stimulus.step(0, amp, 0.0, 1e9), t1=300.0)
    r_sim = (float(sol["v"][-1, 0]) + 65.0) / amp  # MOhm
    d_cm, l_cm = diam * 1e-4, length * 1e-4
    lam = np.sqrt(RM * d_cm / (4 * RA))
    g_inf = np.pi * d_cm**1.5 / (2 * np.sqrt(RM * RA))  # S, semi-infinite cable
    g_soma = np.pi * (20e-4) ** 2 / RM  # cylinder soma, length = diameter = 20 um
    r_theory = 1e-6 / (g_inf * np.tanh(l_cm / lam) + g_soma)
    assert abs(r_sim / r_theory - 1) < 1e-4


@pytest.mark.parametrize("dt", [0.025, 0.005])
def test_membrane_time_constant(dt):
    """Slowest decay is tau = Rm Cm; backward Euler's discrete rate is dt / log(1 + dt/tau)."""
    cell = _passive_ball_and_stick(nseg=21)
    sol = jd.simulate(cell, jd.stimulus.step(0, 0.01, 0.0, 300.0), t1=400.0, dt=dt)
    t, v = np.asarray(sol.ts), np.asarray(sol["v"])[:, 0]
    sel = (t > 330) & (t < 380)
    tau_fit = -1.0 / np.polyfit(t[sel], np.log(v[sel] + 65.0), 1)[0]
    tau = RM * 1.0 * 1e-3  # ms
    assert abs(tau_fit - dt / np.log1p(dt / tau)) < 1e-5


def _hh_reference():
    cell = hh_cell(jd.y_cell(), nseg=5)
    stim = jd.stimulus.step(0, 0.3, 5.0, 30.0)
    ref = jd.simulate(cell, stim, t1=40.0, dt=0.025 / 16, solver=jd.CrankNicolson(),
                      record_every=16)
    return cell, stim, np.asarray(ref["v"])[:, 0]


def test_convergence_orders():
    """BackwardEuler is first order, CrankNicolson second order (HH, branched cell)."""
    cell, stim, ref = _hh_reference()
    errs = {}
    for solver in (jd.BackwardEuler(), jd.CrankNicolson()):
        errs[type(solver).__name__] = [
            np.abs(np.asarray(jd.simulate(cell, stim, t1=40.0, dt=dt, solver=solver,
                                          record_every=k)["v"])[:, 0] - ref).mean()
            for dt, k in ((0.025, 1), (0.0125, 2))
        ]
    be, cn = errs["BackwardEuler"], errs["CrankNicolson"]
    assert 1.7 < be[0] / be[1] < 2.3
    assert 3.4 < cn[0] / cn[1] < 4.6
    assert cn[0] < be[0] / 10


def test_any_diffrax_solver_with_adaptive_steps():
    """Kvaerno5 + PIDController through CableTerm agrees with a fine CN reference."""
    cell, stim, ref = _hh_reference()
    sol = jd.simulate(cell, stim, t1=40.0, dt=0.025, solver=dfx.Kvaerno5(),
                      stepsize_controller=dfx.PIDController(rtol=1e-7, atol=1e-7,
                                                            jump_ts=[5.0, 35.0]),
                      max_steps=20_000)
    assert np.abs(np.asarray(sol["v"])[:, 0] - ref).max() < 0.05
    assert sol.stats["num_steps"] < 20_000


def test_diffeqsolve_path_equals_scan_path():
    cell = hh_cell(jd.y_cell(), nseg=3)
    stim = jd.stimulus.step(0, 0.3, 2.0, 20.0)
    fast = jd.simulate(cell, stim, t1=25.0)
    ts = jnp.linspace(0.0, 25.0, 1001)
    slow = jd.simulate(cell, stim, t1=25.0, saveat=dfx.SaveAt(ts=ts))
    assert tree_allclose(fast.recordings, slow.recordings, rtol=0, atol=1e-8)


def test_event_stops_at_first_spike():
    cell = hh_cell(jd.ball_and_stick(), nseg=5)

    def crossed(t, y, args, **kwargs):
        return y["v"][0] > 0.0

    sol = jd.simulate(cell, jd.stimulus.step(0, 0.5, 2.0, 50.0), t1=50.0,
                      saveat=dfx.SaveAt(t1=True), event=dfx.Event(crossed))
    t_stop = float(sol.ts[-1])
    full = jd.simulate(cell, jd.stimulus.step(0, 0.5, 2.0, 50.0), t1=50.0)
    first = jd.features.spike_times(full.ts, full["v"][:, 0])[0]
    assert abs(t_stop - first) < 0.05


def test_record_states_anywhere():
    cell = hh_cell(jd.reduced_pyramidal())
    record = {
        "m_soma": cell.probe("HH.m", "soma"),
        "v_tuft": cell.probe("v", "tuft"),
        "v_far": cell.probe("v", "apical", distance=(500.0, 600.0)),
        "n_idx": cell.probe("HH.n", index=[0, 3]),
    }
    sol = jd.simulate(cell, jd.stimulus.step(0, 1.0, 1.0, 20.0), t1=20.0, record=record,
                      record_every=4)
    assert sol["m_soma"].shape == (201, 1)
    assert sol["v_tuft"].shape[1] == len(cell.select("tuft"))
    assert np.all(cell.comps.distance[cell.select("apical", distance=(500, 600))] >= 500)
    assert sol["n_idx"].shape == (201, 2)
    assert float(sol["m_soma"].max()) > 0.9  # spiked
    with pytest.raises(KeyError, match="recorded"):
        sol["nothing"]


def test_float32_close_to_float64():
    cell = hh_cell(jd.reduced_pyramidal())
    stim = jd.stimulus.step(0, 0.8, 2.0, 30.0)
    v64 = np.asarray(jd.simulate(cell, stim, t1=40.0)["v"])
    cell32 = to_float32(cell)
    with jax.enable_x64(False):
        v32 = np.asarray(jd.simulate(cell32, stim, t1=40.0)["v"])
    assert v32.dtype == np.float32
    dev = np.abs(v32 - v64).max()
    # mV: 0.0008 measured (every node, 40 ms); the bound was 0.5 before the scan passed dt
    # itself instead of (t + dt) - t, which rounds to ~1e-4 of dt in float32
    assert dev < 0.1, dev


def test_vmap_over_parameters():
    cell = hh_cell(jd.y_cell(), nseg=3)
    stim = jd.stimulus.step(0, 0.3, 2.0, 20.0)
    scales = jnp.array([0.8, 1.0, 1.2])

    def run(s):
        c = cell.set("HH.g_na", cell.get("HH.g_na") * s)
        return jd.simulate(c, stim, t1=20.0)["v"][:, 0]

    batched = jax.jit(jax.vmap(run))(scales)
    single = run(scales[2])
    np.testing.assert_allclose(batched[2], single, atol=1e-9)


def test_ramp_and_sampled_waveforms_agree():
    cell = hh_cell(jd.ball_and_stick(), nseg=3)
    ramp = jd.stimulus.ramp(0, 0.0, 0.4, 5.0, 20.0)
    t = np.linspace(0.0, 40.0, 40001)
    i = np.asarray(ramp.waveform(jnp.asarray(t)))
    a = jd.simulate(cell, ramp, t1=40.0)["v"]
    b = jd.simulate(cell, jd.stimulus.sampled(0, t, i), t1=40.0)["v"]
    assert np.abs(np.asarray(a) - np.asarray(b)).max() < 0.05


def test_distance_dependent_density():
    comps = jd.discretize(jd.reduced_pyramidal())
    cell = jd.Cell(comps).insert(
        jd.channels.HH(g_na=jd.by_distance(lambda d: 0.12 * np.exp(-d / 200.0))),
        where="apical")
    g = np.asarray(cell.get("HH.g_na"))
    apical = comps.mask("apical")
    np.testing.assert_allclose(g[apical], 0.12 * np.exp(-comps.distance[apical] / 200.0))
    assert np.all(g[~apical] == 0.0)
    assert np.all(np.asarray(cell.masks[0]) == apical)


def test_levels_schedule_equals_sequential():
    morph = jd.reduced_pyramidal()
    a = hh_cell(morph)
    b = jd.Cell(a.comps, schedule="levels").insert(jd.channels.HH())
    stim = jd.stimulus.step(0, 0.5, 1.0, 10.0)
    np.testing.assert_allclose(jd.simulate(a, stim, t1=10.0)["v"],
                               jd.simulate(b, stim, t1=10.0)["v"], atol=1e-9)


def test_float32_real_cell_close_to_float64(shared_data):
    """C060114A5 (930 nodes, HH, 2 nA): float32 stays within 0.1 mV of float64 through the
    spikes (the float32 step solves for the voltage change, NEURON's form; the direct form
    was 8 mV off at spike upstrokes) and fires the same spikes."""
    morph = jd.load_morphology(shared_data / "morphology" / "C060114A5_derived.swc")
    cell = hh_cell(morph, nseg=2)
    stim = jd.stimulus.step(0, 2.0, 5.0, 60.0)
    v64 = np.asarray(jd.simulate(cell, stim, t1=60.0)["v"][:, 0])
    with jax.enable_x64(False):
        v32 = np.asarray(jd.simulate(to_float32(cell), stim, t1=60.0)["v"][:, 0])
    assert v32.dtype == np.float32
    t = np.arange(v64.size) * 0.025
    assert jd.features.spike_times(t, v64).size >= 2
    assert jd.features.spike_times(t, v32).size == jd.features.spike_times(t, v64).size
    dev = np.abs(v32 - v64).max()
    # mV: 0.0065 measured (soma, 60 ms); the bound was 0.5 before the scan passed dt itself
    # instead of (t + dt) - t, which rounds to ~1e-4 of dt in float32
    assert dev < 0.1, dev


_XLA_FLOAT32_SCRIPT = """
import json, sys
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxdend as jd
from jaxdend.batch import cast
from jaxdend.solve import _native

out = {"native": _native.available()}
cases = [("reduced", jd.reduced_pyramidal(), 3, 1.0, ("levels", "sequential"))]
if len(sys.argv) > 1:  # the GPU's default schedule
    cases.append(("C060114A5", jd.load_morphology(sys.argv[1]), 2, 2.0, ("levels",)))
for name, morph, nseg, amp, schedules in cases:
    for schedule in schedules:
        cell = jd.Cell(jd.discretize(morph, nseg=nseg), cm=1.0, ra=100.0,
                       schedule=schedule).insert(jd.channels.HH())
        stim = jd.stimulus.step(0, amp, 5.0, 55.0)
        v64 = np.asarray(jd.simulate(cell, stim, t1=60.0)["v"][:, 0])
        with jax.enable_x64(False):
            v32 = jd.simulate(cast(cell, np.float32), stim, t1=60.0)["v"][:, 0]
        t = np.arange(v64.size) * 0.025
        out[name + "/" + schedule] = [str(v32.dtype), float(np.abs(np.asarray(v32) - v64).max()),
                                      int(jd.features.spike_times(t, v64).size),
                                      int(jd.features.spike_times(t, np.asarray(v32)).size)]
print("RESULT " + json.dumps(out))
"""


def test_float32_of_the_gpu_code_path_close_to_float64(tmp_path, request):
    """GPUs run the XLA formulas of the gates and the tree solve (no native CPU code) and
    the "levels" schedule; CI has no GPU, so this runs that code on the CPU
    (JAXDEND_NATIVE=0), float32 against float64 through 60 ms of spiking (the reduced cell
    in both schedules, C060114A5 in "levels"): within 0.1 mV (issue 6 asks 0.5) with the
    same spikes."""
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "xla_f32.py"
    script.write_text(_XLA_FLOAT32_SCRIPT)
    args = [sys.executable, str(script)]
    swc = request.config.rootpath.parent / "shared" / "data" / "morphology" / \
        "C060114A5_derived.swc"
    if swc.exists():
        args.append(str(swc))
    run = subprocess.run(args, env=dict(os.environ, JAXDEND_NATIVE="0"), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.split("RESULT ", 1)[1])
    assert out.pop("native") is False
    assert len(out) == (3 if swc.exists() else 2)
    for key, (dtype, dev, n64, n32) in out.items():
        # mV, measured: reduced 0.0029 (100 ms), C060114A5 0.026 (100 ms)
        assert dtype == "float32" and n64 >= 2 and n32 == n64 and dev < 0.1, (key, dev)
