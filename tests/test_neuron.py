"""jaxdend against NEURON, building the same model in the same test.

NEURON runs its default fixed-step scheme (backward Euler, ``secondorder = 0``) with exact hh
rate functions (``usetable_hh = 0``); jaxdend runs `BackwardEuler`, the same scheme.
"""

import numpy as np
import pytest
from _helpers import hh_cell

import jaxdend as jd
from jaxdend.features import spike_times

pytest.importorskip("neuron")
from jaxdend.neuron_bridge import NeuronModel  # noqa: E402

DT = 0.025


def _compare(cell, morph, stim, t1, nodes):
    sol = jd.simulate(cell, stim, t1=t1, dt=DT, record=cell.probe("v", index=nodes))
    v_jd = np.asarray(sol["v"])
    t_nrn, v_nrn, _ = NeuronModel(cell, morph).run(stim, t1, DT, nodes)
    assert v_jd.shape == v_nrn.shape
    np.testing.assert_allclose(np.asarray(sol.ts), t_nrn, atol=1e-9)
    return np.asarray(sol.ts), v_jd, v_nrn


def test_passive_ball_and_stick_matches_neuron():
    morph = jd.ball_and_stick()
    cell = jd.Cell(jd.discretize(morph, nseg=21), ra=150.0, cm=1.0)
    cell = cell.insert(jd.channels.Leak(g=1e-4, e=-65.0))
    nodes = [0, 5, cell.n - 1]
    _, v_jd, v_nrn = _compare(cell, morph, jd.stimulus.step(0, 0.1, 5.0, 50.0), 80.0, nodes)
    assert np.abs(v_jd - v_nrn).max() < 1e-6  # mV
    assert v_jd[:, 0].max() > -60.0  # the stimulus did something


def test_hh_branched_cell_matches_neuron():
    morph = jd.y_cell()
    cell = hh_cell(morph, nseg=9)
    nodes = list(cell.select("all"))
    t, v_jd, v_nrn = _compare(cell, morph, jd.stimulus.step(0, 0.3, 10.0, 80.0), 100.0, nodes)
    assert np.abs(v_jd - v_nrn).mean() < 1e-6  # mV
    s_jd, s_nrn = spike_times(t, v_jd[:, 0]), spike_times(t, v_nrn[:, 0])
    assert len(s_jd) == len(s_nrn) >= 3
    assert np.abs(s_jd - s_nrn).max() < 1e-6  # ms


def test_real_cell_hh_matches_neuron(shared_data):
    """C060114A5 (1,953 nodes at d_lambda 0.1), HH everywhere, 2 nA step for 200 ms."""
    morph = jd.load_morphology(shared_data / "morphology" / "C060114A5_derived.swc")
    cell = hh_cell(morph)
    idx = cell.select("all")
    nodes = [0, cell.nearest("apical", 600.0), cell.nearest("basal", 150.0), int(idx[-1])]
    t, v_jd, v_nrn = _compare(cell, morph, jd.stimulus.step(0, 2.0, 10.0, 200.0), 200.0, nodes)
    err = np.abs(v_jd - v_nrn)
    assert err.mean() < 0.05  # mV, the acceptance bound; measured ~1e-10
    assert err.mean() < 1e-6  # the schemes are identical, so agreement is to round-off
    s_jd, s_nrn = spike_times(t, v_jd[:, 0]), spike_times(t, v_nrn[:, 0])
    assert len(s_jd) == len(s_nrn) >= 5
    assert np.abs(s_jd - s_nrn).max() < 0.1  # ms


def test_real_cell_pospischil_matches_neuron(shared_data, nrn_mods):
    """C060114A5 with the Pospischil RS set (mod files of jaxdend/nmodl) at 36 degC."""
    morph = jd.load_morphology(shared_data / "morphology" / "C060114A5_derived.swc")
    comps = jd.discretize(morph)
    ch = jd.channels
    cell = jd.Cell(comps, ra=100.0, cm=1.0, celsius=36.0, v_init=-70.0)
    cell = cell.insert(ch.Leak(g=1e-4, e=-70.0))
    cell = cell.insert(ch.PospischilNa(g_na=0.005)).insert(ch.PospischilKd(g_k=0.001))
    cell = cell.insert(ch.PospischilNa(g_na=0.1), where=["soma", "axon"])
    cell = cell.insert(ch.PospischilKd(g_k=0.02), where=["soma", "axon"])
    cell = cell.insert(ch.PospischilM(), where=["soma", "axon"])
    nodes = [0, cell.nearest("apical", 300.0)]
    t, v_jd, v_nrn = _compare(cell, morph, jd.stimulus.step(0, 1.0, 10.0, 200.0), 200.0, nodes)
    err = np.abs(v_jd - v_nrn)
    assert err.mean() < 0.05
    s_jd, s_nrn = spike_times(t, v_jd[:, 0]), spike_times(t, v_nrn[:, 0])
    assert len(s_jd) == len(s_nrn) >= 3
    assert np.abs(s_jd - s_nrn).max() < 0.1


def test_sampled_current_matches_neuron():
    """A recorded-like waveform (played vector in NEURON) on a passive cell."""
    morph = jd.ball_and_stick()
    cell = jd.Cell(jd.discretize(morph, nseg=5)).insert(jd.channels.Leak(g=1e-4, e=-65.0))
    t = np.arange(0.0, 50.0 + 1e-9, 0.5)
    i = 0.05 * np.sin(t / 5.0) ** 2
    _, v_jd, v_nrn = _compare(cell, morph, jd.stimulus.sampled(0, t, i), 50.0, [0])
    # NEURON plays the vector at step ends, jaxdend samples it at step midpoints
    assert np.abs(v_jd - v_nrn).max() < 0.01
