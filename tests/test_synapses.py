"""Synapses: receptor kinetics, spike inputs, placement, STP, gap junctions, NEURON match."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import RUNTIME_ERROR

import jaxdend as jd
from jaxdend.synapses import (
    AMPA,
    GABAA,
    GABAB,
    NMDA,
    Input,
    SpikeTrains,
    TsodyksMarkram,
    inhomogeneous_poisson,
    place,
    poisson,
    tm_release,
    tm_steady_state,
)

DT = 0.025


def _point_cell(e_leak=-70.0):
    """A single isopotential compartment (20 um sphere-like cylinder) with a leak."""
    comps = jd.discretize(jd.ball_and_stick(soma_diam=20.0, dend_length=1.0, dend_diam=0.01),
                          nseg=1)
    return jd.Cell(comps, v_init=e_leak).insert(jd.channels.Leak(g=1e-4, e=e_leak))


# ----------------------------------------------------------------------------- receptors
def test_double_exponential_peak_and_time_course():
    """After one spike g(t) = gmax f (e^{-t/td} - e^{-t/tr}) with peak gmax (nS)."""
    cell = _point_cell().add_synapses("s", AMPA(tau_rise=0.5, tau_decay=4.0), [0], 3.0)
    sol = jd.simulate(cell, Input("s", [[2.0]]), t1=30.0, dt=DT,
                      record={"g": cell.probe("s.g")})
    t = np.asarray(sol.ts)
    g = np.asarray(sol["g"][:, 0])
    # delivered at the step starting at t = 2.0 (NEURON's rule: te <= t + dt/2)
    s = t - 2.0 - DT
    f = float(jd.synapses.peak_factor(0.5, 4.0))
    expected = np.where(s >= -1e-12, 3.0 * f * (np.exp(-(s + DT) / 4.0)
                                                - np.exp(-(s + DT) / 0.5)), 0.0)
    np.testing.assert_allclose(g, expected, atol=1e-10)
    assert abs(g.max() - 3.0) < 0.01  # peak ~ gmax (sampled on the grid)


def test_nmda_mg_block_jahr_stevens():
    v = jnp.array([-80.0, -65.0, -40.0, 0.0, 20.0])
    b = NMDA().block(v)
    np.testing.assert_allclose(b, 1.0 / (1.0 + np.exp(-0.062 * v) * 1.0 / 3.57), rtol=1e-12)
    assert float(NMDA(mg=0.0).block(-80.0)) == 1.0
    assert float(NMDA(mg_slope=0.08).block(-65.0)) < float(b[1])
    np.testing.assert_allclose(AMPA().block(v), 1.0)


@pytest.mark.parametrize("receptor", [AMPA(), NMDA(), GABAA(), GABAB()])
def test_receptor_sign_of_psp(receptor):
    cell = _point_cell().add_synapses("s", receptor, [0], 1.0)
    sol = jd.simulate(cell, Input("s", [[5.0]]), t1=60.0, dt=DT)
    dv = np.asarray(sol["v"][:, 0]) + 70.0
    peak = dv[np.argmax(np.abs(dv))]
    if float(receptor.e_rev) > -70.0:
        assert peak > 0.01  # depolarising (mV)
    else:
        assert peak < -0.01


# ----------------------------------------------------------------------------- inputs
def test_poisson_rate_and_range():
    tr = poisson(jax.random.key(1), 20.0, 2000, 1000.0)
    counts = np.asarray(tr.count())
    assert abs(counts.mean() - 20.0) < 0.5  # 20 Hz for 1 s, sd of the mean 0.1
    assert abs(counts.var() - 20.0) < 2.5  # Poisson: variance = mean
    t = np.asarray(tr.times)
    assert np.all(t[np.isfinite(t)] < 1000.0) and np.all(t[np.isfinite(t)] >= 0.0)
    tr.check(0.0, 1000.0)


def test_inhomogeneous_poisson_follows_rate():
    def rate(t):  # 40 Hz in the first half second, 10 Hz in the second
        return jnp.where(t < 500.0, 40.0, 10.0)

    tr = inhomogeneous_poisson(jax.random.key(2), rate, 2000, 1000.0, 40.0)
    t = np.asarray(tr.times)
    first = np.sum(t < 500.0, axis=1).mean()
    second = np.sum((t >= 500.0) & np.isfinite(t), axis=1).mean()
    assert abs(first - 20.0) < 0.6 and abs(second - 5.0) < 0.3
    with pytest.raises(ValueError, match="rate_fn must lie"):
        inhomogeneous_poisson(jax.random.key(2), rate, 3, 1000.0, 20.0)


def test_poisson_inside_jit_and_vmap():
    def count(key):
        return poisson(key, 50.0, 10, 200.0, max_spikes=60).count().sum()

    keys = jax.random.split(jax.random.key(3), 4)
    out = jax.jit(jax.vmap(count))(keys)
    assert out.shape == (4,) and np.all(np.asarray(out) > 0)


# ----------------------------------------------------------------------------- placement
def test_placement_region_distance_and_clusters():
    comps = jd.discretize(jd.reduced_pyramidal())
    cell = jd.Cell(comps)
    nodes = place(cell, 200, "basal")
    assert np.all(comps.swc_type[nodes] == jd.morphology.SWC_TYPES["basal"])
    far = place(cell, 100, "apical", distance=(300.0, 600.0), key=jax.random.key(0))
    assert np.all((comps.distance[far] >= 300.0) & (comps.distance[far] <= 600.0))
    clustered = place(cell, 40, "apical", key=jax.random.key(1), clusters=4,
                      cluster_radius=20.0)
    for c in range(4):
        members = clustered[c::4]
        d = jd.morphology.path_distance(comps, int(members[0]))[members]
        assert d.max() <= 40.0 + 1e-9  # every pair within two radii along the dendrite
    assert not np.any(comps.is_junction[np.concatenate([nodes, far, clustered])])
    again, labels = place(cell, 40, "apical", key=jax.random.key(1), clusters=4,
                          cluster_radius=20.0, return_clusters=True)
    np.testing.assert_array_equal(again, clustered)
    np.testing.assert_array_equal(labels, np.arange(40) % 4)


def test_path_distance_is_a_tree_metric():
    comps = jd.discretize(jd.y_cell(), nseg=5)
    n = comps.n
    dist = np.stack([jd.morphology.path_distance(comps, i) for i in range(n)])
    np.testing.assert_allclose(dist, dist.T, atol=1e-9)
    np.testing.assert_allclose(dist[0], comps.distance, atol=1e-9)
    assert np.all(dist + dist.T[:, :1] >= dist[:1] - 1e-9)  # triangle inequality via node 0


# ----------------------------------------------------------------------------- STP
TM_DEPRESSING = TsodyksMarkram(U=0.5, tau_rec=800.0, tau_fac=0.0)
TM_FACILITATING = TsodyksMarkram(U=0.03, tau_rec=130.0, tau_fac=530.0)


@pytest.mark.parametrize("stp", [TM_DEPRESSING, TM_FACILITATING], ids=["dep", "fac"])
def test_tsodyks_markram_closed_form_steady_state(stp):
    """A 20 Hz train (Tsodyks, Pawelzik & Markram 1998 sets) converges to the closed form."""
    interval = 50.0
    r = np.asarray(tm_release(stp, interval * np.arange(200)))
    u_ss, x_ss, ratio = (float(a) for a in tm_steady_state(stp, interval))
    assert abs(r[0] - float(stp.U)) < 1e-12
    assert abs(r[-1] - u_ss * x_ss) < 1e-10
    assert abs(r[-1] / r[0] - ratio) < 1e-9
    # successive ratios approach 1 at steady state; depression < 1 < facilitation overall
    assert abs(r[-1] / r[-2] - 1.0) < 1e-9
    if float(stp.tau_fac) == 0.0:
        # depressing set: x_ss = (1 - e)/(1 - (1 - U) e), e = exp(-interval/tau_rec)
        e = np.exp(-interval / 800.0)
        assert abs(ratio - (1 - e) / (1 - 0.5 * e)) < 1e-12
        assert ratio < 0.2  # 0.114: strong depression at 20 Hz
    else:
        assert ratio > 3.0


@pytest.mark.parametrize("stp", [TM_DEPRESSING, TM_FACILITATING], ids=["dep", "fac"])
def test_simulated_release_matches_event_recursion(stp):
    """The ODE-state implementation in simulate releases exactly what tm_release predicts."""
    tau_d = 5.0
    cell = _point_cell().add_synapses("s", AMPA(tau_rise=0.5, tau_decay=tau_d), [0], 1.0,
                                      stp=stp)
    spikes = 10.0 + 50.0 * np.arange(10) + 0.01  # off the half-step grid
    sol = jd.simulate(cell, Input("s", [spikes]), t1=520.0, dt=DT,
                      record={"B": cell.probe("s.B")})
    b = np.asarray(sol["B"][:, 0])
    jumps = b[1:] * np.exp(DT / tau_d) - b[:-1]
    released = jumps[jumps > 1e-9]
    np.testing.assert_allclose(released, np.asarray(tm_release(stp, spikes)), rtol=1e-9)


def test_stp_gradients_match_finite_differences():
    cell = _point_cell().add_synapses("s", AMPA(), [0], 2.0,
                                      stp=TsodyksMarkram(U=0.3, tau_rec=200.0, tau_fac=100.0))
    inp = Input("s", [10.0 + 20.0 * np.arange(6)])

    def loss(params):
        c = cell
        for name, val in params.items():
            c = c.set(name, val)
        sol = jd.simulate(c, inp, t1=150.0, dt=DT)
        return jnp.sum((sol["v"][:, 0] + 70.0) ** 2) * DT

    params = {"s.U": 0.3, "s.tau_rec": 200.0, "s.tau_fac": 100.0, "s.gmax": 2.0,
              "s.tau_decay": 1.7}
    grads = jax.grad(loss)(params)
    for name, val in params.items():
        h = 1e-5 * abs(val)
        fd = (loss({**params, name: val + h}) - loss({**params, name: val - h})) / (2 * h)
        assert abs(float(grads[name]) - float(fd)) <= 1e-4 * abs(float(fd)), name


# ----------------------------------------------------------------------------- gap junctions
def test_gap_junction_between_two_cells_steady_state():
    """Two isopotential cells joined by g: the DC voltage divider of cable theory."""
    a, b = _point_cell().comps, _point_cell().comps
    comps, off = jd.morphology.combine([a, b])
    g_gap = 5.0  # nS
    cell = jd.Cell(comps, v_init=-70.0).insert(jd.channels.Leak(g=1e-4, e=-70.0))
    cell = cell.add_gap_junctions(off[0], off[1], g_gap)
    amp = 0.05  # nA into cell A
    sol = jd.simulate(cell, jd.stimulus.step(int(off[0]), amp), t1=400.0, dt=DT,
                      record={"v": cell.probe("v", index=[off[0], off[1]])})
    g_leak = 1e-4 * a.area.sum() * 1e-2  # uS (soma + its tiny neurite)
    gg = g_gap * 1e-3
    # [gl + gg, -gg; -gg, gl + gg] dv = [amp, 0]
    dv = np.linalg.solve([[g_leak + gg, -gg], [-gg, g_leak + gg]], [amp, 0.0])
    np.testing.assert_allclose(np.asarray(sol["v"][-1]) + 70.0, dv, rtol=1e-5)
    # without the junction the second cell stays at rest
    alone = jd.Cell(comps, v_init=-70.0).insert(jd.channels.Leak(g=1e-4, e=-70.0))
    sol0 = jd.simulate(alone, jd.stimulus.step(int(off[0]), amp), t1=50.0, dt=DT,
                       record={"v": alone.probe("v", index=[off[1]])})
    assert np.abs(np.asarray(sol0["v"]) + 70.0).max() < 1e-12


# ----------------------------------------------------------------------------- NEURON
def test_synapses_match_neuron(nrn_mods):
    """AMPA + NMDA (Mg block) + GABA_A under Poisson input on an HH Y-cell vs NEURON."""
    from jaxdend.neuron_bridge import NeuronModel

    morph = jd.y_cell()
    cell = jd.Cell(jd.discretize(morph, d_lambda=0.1)).insert(jd.channels.HH())
    k = jax.random.split(jax.random.key(0), 4)
    nodes = place(cell, 30, "all", key=k[0])
    cell = cell.add_synapses("ampa", AMPA(), nodes, 1.5).add_synapses("nmda", NMDA(), nodes, 1.0)
    cell = cell.add_synapses("gaba", GABAA(), place(cell, 5, "soma"), 2.0)
    tr = poisson(k[1], 20.0, 30, 100.0)
    stim = [Input("ampa", tr), Input("nmda", tr), Input("gaba", poisson(k[2], 30.0, 5, 100.0))]
    rec = cell.select("all")
    sol = jd.simulate(cell, stim, t1=100.0, dt=DT, record=cell.probe("v", index=rec))
    _, v_nrn, _ = NeuronModel(cell, morph).run(stim, 100.0, DT, rec)
    err = np.abs(np.asarray(sol["v"]) - v_nrn)
    assert v_nrn.max() > 0.0  # the input makes the cell spike
    assert err.mean() < 1e-4 and err.max() < 1e-3  # mV (NEURON's dI/dv is a finite difference)


# ----------------------------------------------------------------------------- scale
def test_thousands_of_synapses_cost_one_segment_sum():
    comps = jd.discretize(jd.reduced_pyramidal())
    cell = jd.Cell(comps).insert(jd.channels.Leak(g=1e-4, e=-70.0))
    nodes = place(cell, 3000, ["basal", "apical"], key=jax.random.key(4))
    cell = cell.add_synapses("exc", AMPA(), nodes, 0.1)
    tr = poisson(jax.random.key(5), 5.0, 3000, 50.0)
    sol = jd.simulate(cell, Input("exc", tr), t1=50.0, dt=DT)
    assert np.all(np.isfinite(np.asarray(sol["v"])))
    assert float(sol["v"].max()) > -69.0  # the input depolarises the soma
    jaxpr = str(jax.make_jaxpr(lambda c: c.synaptic_current(c.init_state()["synapses"],
                                                            jnp.zeros(c.n)))(cell))
    assert jaxpr.count("scatter-add") <= 4  # accumulation, not a loop over synapses


# ----------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def syn_cell():
    return _point_cell().add_synapses("s", AMPA(), [0, 0], 1.0)


def test_synapse_on_missing_compartment():
    with pytest.raises(ValueError, match="on compartment 7, but the cell has compartments 0..1"):
        _point_cell().add_synapses("s", AMPA(), [7], 1.0)


def test_negative_conductance():
    with pytest.raises(ValueError, match=">= 0 nS"):
        _point_cell().add_synapses("s", AMPA(), [0], -1.0)
    with pytest.raises(ValueError, match="tau_rise < tau_decay"):
        AMPA(tau_rise=2.0, tau_decay=1.0)
    with pytest.raises(ValueError, match="0 < U <= 1"):
        TsodyksMarkram(U=1.5)


def test_spike_times_out_of_order(syn_cell):
    with pytest.raises(ValueError, match="not in increasing order"):
        jd.simulate(syn_cell, Input("s", [[5.0, 3.0], [1.0]]), t1=10.0)


def test_spike_times_outside_simulation(syn_cell):
    with pytest.raises(ValueError, match="simulation runs from 0 to 10 ms"):
        jd.simulate(syn_cell, Input("s", [[5.0, 30.0], [1.0]]), t1=10.0)


def test_nan_spike_times(syn_cell):
    with pytest.raises(ValueError, match="is NaN"):
        jd.simulate(syn_cell, Input("s", [[5.0, np.nan], [1.0]]), t1=10.0)


def test_nan_spike_times_inside_jit(syn_cell):
    @jax.jit
    def run(times):
        return jd.simulate(syn_cell, Input("s", SpikeTrains(times)), t1=10.0)["v"]

    with pytest.raises(RUNTIME_ERROR, match="NaN or not increasing"):  # when the result is read
        np.asarray(run(jnp.array([[5.0, jnp.nan], [1.0, jnp.inf]])))


def test_input_for_unknown_group_or_wrong_count(syn_cell):
    with pytest.raises(ValueError, match="add_synapses"):
        jd.simulate(syn_cell, Input("nope", [[1.0]]), t1=10.0)
    with pytest.raises(ValueError, match="one train per synapse"):
        jd.simulate(syn_cell, Input("s", [[1.0]]), t1=10.0)


def test_synapse_on_branch_point():
    comps = jd.discretize(jd.y_cell(), nseg=3)
    junction = int(np.nonzero(comps.is_junction)[0][0])
    with pytest.raises(ValueError, match="branch-point"):
        jd.Cell(comps).add_synapses("s", AMPA(), [junction], 1.0)
