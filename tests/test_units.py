"""The unit system, pinned: ms, mV, um, uF/cm^2, Ohm cm, S/cm^2, mA/cm^2, nA."""

import numpy as np

import jaxdend as jd


def test_isopotential_compartment_units():
    """A 20 um x 20 um cylinder soma: area 1256.6 um^2; g 1e-4 S/cm^2 -> R = 1/(g A) MOhm."""
    morph = jd.ball_and_stick(soma_diam=20.0, dend_length=1.0, dend_diam=0.01)
    comps = jd.discretize(morph, nseg=1)
    area = np.pi * 20.0 * 20.0  # um^2
    assert abs(comps.area[0] - area) / area < 1e-9
    cell = jd.Cell(comps, cm=1.0).insert(jd.channels.Leak(g=1e-4, e=-70.0), where="all")
    amp = 0.01  # nA
    sol = jd.simulate(cell, jd.stimulus.step(0, amp), t1=200.0, dt=0.025)
    r_mohm = 1.0 / (1e-4 * area * 1e-8) / 1e6  # 1/(S/cm^2 * cm^2) Ohm -> MOhm
    dv = float(sol["v"][-1, 0]) + 70.0  # mV
    assert abs(dv - amp * r_mohm) / (amp * r_mohm) < 2e-3  # nA * MOhm = mV (tiny neurite)
    assert abs(float(cell.capacitance()[0]) - 1.0 * area * 1e-5) < 1e-12  # nF
