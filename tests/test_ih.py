"""Ih (Kole et al. 2006 kinetics): rates and current clamps against NEURON's jd_ih.mod.

The mod file (jaxdend/nmodl/jd_ih.mod) is compiled once per session by the `nrn_mods` fixture
and simulated in NEURON in the test, with the same backward-Euler fixed step as jaxdend.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdend as jd
from jaxdend.channels import Ih, Leak
from jaxdend.morphology import Morphology, Section
from jaxdend.neuron_bridge import NeuronModel


def test_ih_rates_match_neuron(nrn_mods):
    h = nrn_mods
    sec = h.Section(name="rates_jd_ih")
    sec.insert("jd_ih")
    seg = sec(0.5)
    h.setdata_jd_ih(seg)
    voltages = [-160.0, -154.9, -154.9 + 1e-7, -120.0, -90.0, -80.0, -70.0, -45.0, 0.0, 40.0]
    inf, tau = jax.jit(Ih().gates)(jnp.asarray(voltages), 34.0)
    for i, v in enumerate(voltages):
        h.rates_jd_ih(v)
        np.testing.assert_allclose(inf["m"][i], seg.minf_jd_ih, rtol=1e-12, err_msg=str(v))
        np.testing.assert_allclose(tau["m"][i], seg.mtau_jd_ih, rtol=1e-12, err_msg=str(v))


def test_ih_kinetics_values():
    """The gate against the published formulas in plain NumPy, and its textbook shape."""
    v = np.array([-120.0, -90.0, -70.0, -50.0])
    alpha = 6.43e-3 * (v + 154.9) / (np.exp((v + 154.9) / 11.9) - 1.0)
    beta = 0.193 * np.exp(v / 33.1)
    inf, tau = Ih().gates(jnp.asarray(v), 34.0)
    np.testing.assert_allclose(inf["m"], alpha / (alpha + beta), rtol=1e-12)
    np.testing.assert_allclose(tau["m"], 1.0 / (alpha + beta), rtol=1e-12)
    m = np.asarray(inf["m"])
    assert np.all(np.diff(m) < 0) and m[0] > 0.5 and m[2] < 0.05  # opens on hyperpolarisation
    assert 30.0 < float(tau["m"][2]) < 60.0  # ms at -70 mV: slow


def _one_compartment(channels) -> jd.Cell:
    """A 20 um x 20 um cylinder (one node), cm 1 uF/cm^2, with `channels` everywhere."""
    sec = Section(points=np.array([[0.0, -10.0, 0.0], [0.0, 10.0, 0.0]]),
                  radii=np.array([10.0, 10.0]), swc_type=1, parent=-1)
    comps = jd.discretize(Morphology((sec,), name="one_compartment"))
    cell = jd.Cell(comps, cm=1.0, ra=100.0, celsius=34.0, v_init=-70.0)
    for ch in channels:
        cell = cell.insert(ch)
    return cell


@pytest.mark.parametrize("amp", [-0.1, 0.05], ids=["hyperpolarising", "depolarising"])
def test_ih_current_clamp_matches_neuron(nrn_mods, amp):
    """Sag and rebound of a passive compartment with Ih: jaxdend vs NEURON, < 1e-6 mV."""
    cell = _one_compartment([Leak(g=5e-5, e=-75.0), Ih(g_h=2e-4, e_h=-45.0)])
    stim = jd.stimulus.step(0, amp, 20.0, 300.0)
    t1, dt = 500.0, 0.025
    _, v_nrn, _ = NeuronModel(cell).run(stim, t1, dt, [0])
    v_jd = np.asarray(jd.simulate(cell, stim, t1=t1, dt=dt)["v"][:, 0])
    assert v_jd.shape == v_nrn[:, 0].shape
    np.testing.assert_allclose(v_jd, v_nrn[:, 0], rtol=0, atol=1e-6)
    # Ih does what it is for: a sag back towards rest during a hyperpolarising step
    if amp < 0:
        step = (np.arange(v_jd.size) * dt >= 20.0) & (np.arange(v_jd.size) * dt < 320.0)
        trough, end = v_jd[step].min(), v_jd[step][-1]
        assert end - trough > 1.0  # mV of sag


def test_ih_gradient_matches_finite_difference():
    """d (mean v) / d g_h through a simulation, against central differences (rel. 1e-5)."""
    stim = jd.stimulus.step(0, -0.1, 5.0, 100.0)

    def loss(g_h):
        cell = _one_compartment([Leak(g=5e-5, e=-75.0), Ih(g_h=g_h)])
        return jnp.mean(jd.simulate(cell, stim, t1=120.0, dt=0.1)["v"][:, 0])

    g0, eps = 2e-4, 1e-8
    grad = float(jax.grad(loss)(jnp.asarray(g0)))
    fd = (float(loss(g0 + eps)) - float(loss(g0 - eps))) / (2 * eps)
    assert abs(grad) > 1.0  # mV per S/cm^2: the current matters
    np.testing.assert_allclose(grad, fd, rtol=1e-5)
