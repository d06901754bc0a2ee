"""Long-term plasticity: STDP windows, cooperative rule, gradients, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdend as jd
from jaxdend.features import spike_times
from jaxdend.plasticity import ApicalCooperative, BasalHebbian
from jaxdend.synapses import AMPA, Input, SpikeTrains

DT = 0.025


def _hh_point_cell():
    comps = jd.discretize(jd.ball_and_stick(soma_diam=20.0, dend_length=1.0, dend_diam=0.01),
                          nseg=1)
    return jd.Cell(comps).insert(jd.channels.HH())


POST = jd.stimulus.step(0, 1.0, 100.0, 1.0)  # one somatic spike near 100.6 ms


@pytest.fixture(scope="module")
def stdp_cell():
    # gmax = 0: presynaptic spikes are pure signals, so every pairing sees the same post spike
    cell = _hh_point_cell().add_synapses("s", AMPA(), [0], 0.0)
    return cell.add_rule(BasalHebbian(tau_plus=10.0, tau_minus=29.0), "s")


def test_pair_stdp_window_time_constants_recovered(stdp_cell):
    """Simulated pairings give back the window of Bi & Poo (1998) as fitted by Abarbanel et
    al. (potentiation ~10 ms, depression ~29 ms), set as the rule's time constants."""
    sol = jd.simulate(stdp_cell, POST, t1=200.0, dt=DT)
    t_post = float(spike_times(sol.ts, sol["v"][:, 0])[0])

    def dw(t_pre):
        s = jd.simulate(stdp_cell, [POST, Input("s", SpikeTrains(jnp.array([[t_pre]])))],
                        t1=200.0, dt=DT, record={"w": stdp_cell.probe("s.w")})
        return s["w"][-1, 0] - 1.0

    lags = np.linspace(3.0, 60.0, 12)
    t_pre = np.concatenate([t_post - lags, t_post + lags]) + 0.0113  # off the step grid
    d = np.asarray(jax.jit(jax.vmap(dw))(jnp.asarray(t_pre)))
    delta = t_post - t_pre  # > 0: pre before post
    pot, dep = delta > 0, delta < 0
    assert np.all(d[pot] > 0) and np.all(d[dep] < 0)
    tau_plus = -1.0 / np.polyfit(delta[pot], np.log(d[pot]), 1)[0]
    tau_minus = -1.0 / np.polyfit(-delta[dep], np.log(-d[dep]), 1)[0]
    assert abs(tau_plus - 10.0) < 0.2 and abs(tau_minus - 29.0) < 0.5  # ms
    # amplitudes: a_plus e^{-lag/tau+}, a_minus e^{-lag/tau-} within one time step of lag
    np.testing.assert_allclose(d[pot], 0.01 * np.exp(-delta[pot] / 10.0), rtol=0.01)
    np.testing.assert_allclose(-d[dep], 0.0105 * np.exp(delta[dep] / 29.0), rtol=0.01)


def test_hard_bounds_and_weights_scale_conductance():
    cell = _hh_point_cell().add_synapses("s", AMPA(), [0], 0.01)  # too weak to fire the cell
    rule = BasalHebbian(a_plus=0.5, w_max=1.2)
    plastic = cell.add_rule(rule, "s", w0=1.0)
    trains = [POST, Input("s", [[95.0, 99.0]])]  # both before the post spike at ~100.6 ms
    sol = jd.simulate(plastic, trains, t1=150.0, dt=DT, record={"w": plastic.probe("s.w")})
    assert abs(float(sol["w"][-1, 0]) - 1.2) < 1e-12  # clipped at w_max, not beyond
    # weight 2 doubles the conductance of the same synapse
    g1 = jd.simulate(cell.add_rule(rule, "s", w0=1.0), Input("s", [[5.0]]), t1=10.0,
                     record={"g": cell.probe("s.g")})["g"]
    g2 = jd.simulate(cell.add_rule(BasalHebbian(w_max=3.0), "s", w0=2.0), Input("s", [[5.0]]),
                     t1=10.0, record={"g": cell.probe("s.g")})["g"]
    np.testing.assert_allclose(np.asarray(g2), 2.0 * np.asarray(g1), rtol=1e-12)


def _coop_cell(rule, gap_um):
    """Two synapses on a long passive dendrite `gap_um` apart (plus the soma spiking)."""
    morph = jd.ball_and_stick(dend_length=400.0, dend_diam=1.0)
    comps = jd.discretize(morph, nseg=100)  # 4 um compartments
    cell = jd.Cell(comps).insert(jd.channels.HH(), "soma").insert(
        jd.channels.Leak(g=1e-4, e=-65.0), "basal")
    a = cell.nearest("basal", 100.0)
    b = cell.nearest("basal", 100.0 + gap_um)
    cell = cell.add_synapses("s", AMPA(), [a, b], 0.0)
    return cell.add_rule(rule, "s", "basal")


@pytest.mark.parametrize("gap_um", [4.0, 60.0])
def test_apical_cooperative_needs_close_neighbours_not_soma(gap_um):
    rule = ApicalCooperative(length=10.0)
    cell = _coop_cell(rule, gap_um)
    inp = Input("s", [[20.0, 60.0], [25.0, 65.0]])  # b fires 5 ms after a, twice

    def final_w(with_soma_spikes):
        stim = [inp] + ([jd.stimulus.step(0, 1.0, 22.0, 1.0)] if with_soma_spikes else [])
        return np.asarray(jd.simulate(cell, stim, t1=100.0, dt=DT,
                                      record={"w": cell.probe("s.w")})["w"][-1])

    w_spk, w_nospk = final_w(True), final_w(False)
    np.testing.assert_allclose(w_spk, w_nospk, rtol=0, atol=1e-15)  # no somatic dependence
    if gap_um <= rule.cutoff:
        k = float(np.exp(-jd.morphology.path_distance(cell.comps, cell.synapses[0].node[0])[
            cell.synapses[0].node[1]] / 10.0))
        # all-to-all: every pair of a-spike and b-spike adds a_coop K e^{-|dt|/tau_coop} to both
        lags = np.abs(np.subtract.outer([20.0, 60.0], [25.0, 65.0]))
        expected = 0.02 * k * np.exp(-lags / 20.0).sum() - 2 * 0.001
        np.testing.assert_allclose(w_nospk - 1.0, [expected, expected], rtol=1e-3)
        assert np.all(w_nospk > 1.0)
    else:
        np.testing.assert_allclose(w_nospk - 1.0, [-0.002, -0.002], rtol=1e-9)


def test_rule_parameter_gradients_match_finite_differences():
    """d(loss on final weights)/d(rule parameters) vs central differences (float64)."""
    morph = jd.ball_and_stick(dend_length=200.0, dend_diam=1.0)
    cell = jd.Cell(jd.discretize(morph, nseg=20)).insert(jd.channels.HH())
    nodes = [cell.nearest("basal", d) for d in (30.0, 36.0, 42.0, 120.0)]
    cell = cell.add_synapses("b", AMPA(), nodes[:2], 4.0).add_synapses("a", AMPA(), nodes[2:], 4.0)
    cell = cell.add_rule(BasalHebbian(a_plus=0.05, a_minus=0.04, a3_plus=0.01), "b")
    cell = cell.add_rule(ApicalCooperative(length=10.0, cutoff=100.0), "a")
    stim = [jd.stimulus.step(0, 0.4, 10.0, 60.0),
            Input("b", [[12.0, 30.0, 51.0], [20.0, 44.0, 60.5]]),
            Input("a", [[15.0, 33.0], [18.0, 35.0]])]
    params = {"rules[0].rule.a_plus": 0.05, "rules[0].rule.a_minus": 0.04,
              "rules[0].rule.tau_plus": 20.0, "rules[0].rule.tau_minus": 20.0,
              "rules[0].rule.a3_plus": 0.01, "rules[1].rule.a_coop": 0.02,
              "rules[1].rule.a_dep": 0.001, "rules[1].rule.tau_coop": 20.0,
              "rules[1].rule.length": 10.0}
    getters = {k: (lambda c, k=k: eval("c." + k, {"c": c})) for k in params}

    def loss(p):
        c = cell
        for k, val in p.items():
            c = jax.tree_util.tree_map(lambda x: x, c)
            import equinox as eqx
            c = eqx.tree_at(getters[k], c, jnp.asarray(val, float))
        sol = jd.simulate(c, stim, t1=80.0, dt=DT,
                          record={"wb": c.probe("b.w"), "wa": c.probe("a.w")})
        return jnp.sum((sol["wb"][-1] - 0.9) ** 2) + jnp.sum((sol["wa"][-1] - 1.3) ** 2)

    grads = jax.grad(loss)(params)
    for k, val in params.items():
        h = 1e-5 * abs(val)
        fd = (loss({**params, k: val + h}) - loss({**params, k: val - h})) / (2 * h)
        assert abs(float(grads[k]) - float(fd)) <= 1e-4 * abs(float(fd)) + 1e-12, k
        assert abs(float(fd)) > 0, k


def test_rules_driven_hard_stay_finite():
    cell = _hh_point_cell().add_synapses("s", AMPA(), [0] * 20, 5.0)
    cell = cell.add_rule(BasalHebbian(a_plus=5.0, a_minus=5.0), "s")
    trains = jd.synapses.poisson(jax.random.key(0), 200.0, 20, 200.0)
    sol = jd.simulate(cell, [jd.stimulus.step(0, 2.0, 0.0, 200.0), Input("s", trains)],
                      t1=200.0, dt=DT, record={"w": cell.probe("s.w")})
    w = np.asarray(sol["w"])
    assert np.all(np.isfinite(w)) and w.min() >= 0.0 and w.max() <= 2.0


# ----------------------------------------------------------------------------- bad input
def test_rule_on_region_without_synapses():
    cell = _coop_cell(ApicalCooperative(), 10.0)
    fresh = cell.add_synapses("t", AMPA(), [cell.nearest("basal", 50.0)], 1.0)
    with pytest.raises(ValueError, match="No synapse of group 't' lies in where='soma'"):
        fresh.add_rule(BasalHebbian(), "t", "soma")


def test_kernel_length_must_be_positive():
    with pytest.raises(ValueError, match="length must be > 0"):
        ApicalCooperative(length=0.0)
    with pytest.raises(ValueError, match="length must be > 0"):
        ApicalCooperative(length=-5.0)


def test_initial_weights_outside_bounds():
    cell = _hh_point_cell().add_synapses("s", AMPA(), [0], 1.0)
    with pytest.raises(ValueError, match=r"within the rule's bounds \[0, 2\]"):
        cell.add_rule(BasalHebbian(), "s", w0=2.5)


def test_one_rule_per_synapse_and_matching_sites():
    cell = _hh_point_cell().add_synapses("s", AMPA(), [0], 1.0).add_rule(BasalHebbian(), "s")
    with pytest.raises(ValueError, match="already have a rule"):
        cell.add_rule(ApicalCooperative(), "s")
    two = _hh_point_cell().add_synapses("a", AMPA(), [0], 1.0).add_synapses(
        "n", jd.synapses.NMDA(), [0, 0], 1.0)
    with pytest.raises(ValueError, match="same sites"):
        two.add_rule(BasalHebbian(), ("a", "n"))


# ----------------------------------------------------------------------------- more rules
from jaxdend.plasticity import (  # noqa: E402
    BCM,
    Clopath,
    GraupnerBrunel,
    HeterosynapticNormalization,
    Signals,
    Volterra,
)


def _signals(pre, post, v=None, n=None):
    n = pre.shape[0] if n is None else n
    v = jnp.full((n,), -65.0) if v is None else v
    e = jnp.zeros(0, jnp.int64)
    return Signals(pre=pre, post=post, v=v, v_soma=v[0], nmda=jnp.zeros(n), pair_i=e, pair_j=e,
                   pair_d=jnp.zeros(0))


def _run_rule(rule, pre, post, w0, dt=DT, v=None):
    """Drive a rule with per-step presynaptic (steps, n) and somatic (steps,) spikes."""
    n = pre.shape[1]

    def body(carry, inp):
        st, w = carry
        p, q = inp
        st, w = rule.update(st, w, _signals(p, q, v, n), dt)
        return (st, w), w

    (st, w), ws = jax.lax.scan(body, (rule.init_state(n), jnp.full((n,), w0)), (pre, post))
    return st, ws


def test_graupner_brunel_dp_thresholds():
    """DP set: no drift below theta_d = 1, depression between 1 and theta_p = 1.3,
    potentiation above 1.3 (at rho = rho* = 0.5), as published (Graupner & Brunel 2012)."""
    rule = GraupnerBrunel(smooth=1e-4)
    c = jnp.linspace(0.5, 2.0, 1501)
    drift = np.asarray(rule.drift(0.5, c))
    c = np.asarray(c)
    assert np.all(np.abs(drift[c < 0.99]) < 1e-12)
    assert np.all(drift[(c > 1.01) & (c < 1.29)] < 0)
    assert np.all(drift[c > 1.31] > 0)
    down = c[np.argmax(drift < -1e-9)]
    up = c[np.argmax(drift > 1e-9)]
    assert abs(down - 1.0) < 0.005 and abs(up - 1.3) < 0.005
    # rates: depression gamma_d rho / tau, potentiation (gamma_p (1-rho) - gamma_d rho) / tau
    np.testing.assert_allclose(drift[c > 1.5], (321.808 * 0.5 - 200 * 0.5) / 150e3, rtol=1e-6)


def test_graupner_brunel_pairing_in_a_cell():
    """Pre 10 ms before post, 5 pairings: calcium crosses theta_p, the weight grows;
    with the post spikes alone at 1 Hz less happens (within bounds, finite)."""
    cell = _hh_point_cell().add_synapses("s", AMPA(), [0], 0.0)
    cell = cell.add_rule(GraupnerBrunel(), "s", w0=1.0)
    post = [jd.stimulus.step(0, 1.0, 100.0 + 100.0 * k, 1.0) for k in range(5)]
    pre_times = [[90.6 + 100.0 * k + 0.0113 for k in range(5)]]
    sol = jd.simulate(cell, post + [Input("s", pre_times)], t1=600.0, dt=DT,
                      record={"w": cell.probe("s.w")})
    w = np.asarray(sol["w"][:, 0])
    assert np.all(np.isfinite(w)) and w[-1] > 1.0 + 1e-3
    only_post = jd.simulate(cell, post, t1=600.0, dt=DT, record={"w": cell.probe("s.w")})
    assert float(only_post["w"][-1, 0]) < w[-1]


def test_bcm_threshold_tracks_mean_squared_rate():
    rule = BCM(tau_theta=500.0, tau_y=50.0, eta=0.0)
    steps = int(5000 / DT)
    post = jnp.zeros(steps).at[:: int(50 / DT)].set(1.0)  # 20 Hz regular
    pre = jnp.zeros((steps, 1))

    def body(carry, q):
        st = carry
        st, _ = rule.update(st, jnp.ones(1), _signals(jnp.zeros(1), q), DT)
        return st, (st["y"] ** 2, st["theta"])

    _, (y2, theta) = jax.lax.scan(body, rule.init_state(1), post)
    del pre
    tail = slice(steps // 2, None)
    mean_y2 = float(jnp.mean(y2[tail]))
    assert abs(float(theta[-1]) - mean_y2) / mean_y2 < 0.05
    assert mean_y2 > 20.0**2 * 0.9  # the trace estimates ~20 Hz


def test_clopath_ltd_and_voltage_gated_ltp():
    rule = Clopath()
    one = jnp.ones((1,))
    st = rule.init_state(1, -65.0)
    st1, w1 = rule.update(st, one, _signals(one, 0.0, jnp.full((1,), -65.0)), DT)
    np.testing.assert_allclose(1.0 - w1, 14e-5 * (-65.0 + 70.6), rtol=1e-12)  # LTD at pre
    st2, w2 = rule.update(st1, one, _signals(0 * one, 0.0, jnp.full((1,), -40.0)), DT)
    expected = 8e-5 * DT * st1["x_bar"] * (-40.0 + 45.3) * (st1["u_plus"] + 70.6)
    np.testing.assert_allclose(w2 - 1.0, expected, rtol=1e-9)  # (w ~ 1: rounding 1e-16 abs)
    _, w3 = rule.update(st1, one, _signals(0 * one, 0.0, jnp.full((1,), -50.0)), DT)
    assert float(w3[0]) == 1.0


def test_volterra_expresses_pair_stdp_exactly():
    a_plus, a_minus = 0.01, 0.0105
    vol = Volterra(on_pre=jnp.zeros((3, 3)).at[1, 0].set(-a_minus),
                   on_post=jnp.zeros((3, 3)).at[1, 0].set(a_plus))
    stdp = BasalHebbian(a_plus=a_plus, a_minus=a_minus)
    key = jax.random.key(7)
    pre = (jax.random.uniform(key, (8000, 5)) < 0.004).astype(float)
    post = (jax.random.uniform(jax.random.key(8), (8000,)) < 0.003).astype(float)
    _, w_vol = _run_rule(vol, pre, post, 1.0)
    _, w_stdp = _run_rule(stdp, pre, post, 1.0)
    np.testing.assert_allclose(w_vol, w_stdp, atol=1e-12)
    assert float(jnp.abs(w_stdp[-1] - 1.0).max()) > 1e-3


def test_heterosynaptic_normalization_keeps_total():
    rule = HeterosynapticNormalization(BasalHebbian(a_plus=0.05))
    pre = (jax.random.uniform(jax.random.key(1), (4000, 6)) < 0.005).astype(float)
    post = (jax.random.uniform(jax.random.key(2), (4000,)) < 0.004).astype(float)
    _, ws = _run_rule(rule, pre, post, 1.0)
    np.testing.assert_allclose(np.asarray(ws).sum(axis=1), 6.0, rtol=1e-12)
    assert float(jnp.std(ws[-1])) > 1e-3  # weights changed relative to each other


def test_spike_threshold_is_set_per_rule():
    """A subthreshold somatic bump counts as a spike only for a rule with a low threshold."""
    cell = _hh_point_cell().add_synapses("s", AMPA(), [0], 0.0)
    bump = jd.stimulus.step(0, 0.02, 20.0, 30.0)  # a few mV, no spike
    inp = Input("s", [[15.0]])
    w = {}
    for theta in (-20.0, -64.0):
        c = cell.add_rule(BasalHebbian(), "s", spike_threshold=theta)
        w[theta] = float(jd.simulate(c, [bump, inp], t1=60.0, dt=DT,
                                     record={"w": c.probe("s.w")})["w"][-1, 0])
    assert w[-20.0] == 1.0 and w[-64.0] > 1.0


def _drive(n=4, steps=4000, seed=0):
    """Random pre/post spikes and a local voltage with bAP-like bumps (per step)."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    pre = (jax.random.uniform(k1, (steps, n)) < 0.01).astype(float)
    post = (jax.random.uniform(k2, (steps,)) < 0.006).astype(float)
    t = jnp.arange(steps) * DT
    bumps = jnp.convolve(post, jnp.exp(-jnp.arange(200) * DT / 2.0))[:steps]
    v = -65.0 + 30.0 * bumps[:, None] + 2.0 * jnp.sin(t / 7.0)[:, None] + jnp.zeros((1, n))
    return pre, post, v


def _final_weights(rule, pre, post, v, w0=1.0):
    n = pre.shape[1]
    pair_i, pair_j = jnp.array([0, 1, 2, 3]), jnp.array([1, 0, 3, 2])
    d = jnp.array([3.0, 3.0, 8.0, 8.0])

    def body(carry, inp):
        st, w = carry
        p, q, vv = inp
        sig = Signals(pre=p, post=q, v=vv, v_soma=vv[0], nmda=0.5 + 0.0 * vv, pair_i=pair_i,
                      pair_j=pair_j, pair_d=d)
        return rule.update(st, w, sig, DT), None

    (st, w), _ = jax.lax.scan(body, (rule.init_state(n, -65.0), jnp.full((n,), w0)),
                              (pre, post, v))
    return w


RULES_FOR_GRADIENTS = {
    "BasalHebbian": BasalHebbian(a_plus=0.02, a_minus=0.015, a3_plus=0.005, a3_minus=0.002),
    "ApicalCooperative": ApicalCooperative(a_coop=0.002, nmda_gate=True, cutoff=20.0),
    "Clopath": Clopath(a_ltd=1e-3, a_ltp=2e-4),
    "GraupnerBrunel": GraupnerBrunel(tau=2e4, smooth=0.05, delay=2.01, c_pre=1.2),
    # the drive has high rates (pre ~400 Hz, post ~240 Hz), hence the small eta
    "BCM": BCM(eta=1e-12, tau_theta=200.0, theta0=1e4),
    "Volterra": Volterra(coef=jnp.zeros((3, 3, 3)).at[0, 0, 1].set(-1e-3).at[1, 1, 0].set(2e-4),
                         on_pre=jnp.zeros((3, 3)).at[1, 0].set(-0.004).at[0, 1].set(0.001),
                         on_post=jnp.zeros((3, 3)).at[1, 0].set(0.002).at[2, 1].set(-1e-4)),
}


@pytest.mark.parametrize("name", list(RULES_FOR_GRADIENTS))
def test_every_rule_parameter_gradient_matches_finite_differences(name):
    """d(loss on final weights)/d(every float parameter of the rule), float64, rel 1e-4."""
    import equinox as eqx

    rule = RULES_FOR_GRADIENTS[name]
    pre, post, v = _drive()
    target = jnp.array([0.8, 1.1, 1.3, 0.9])

    def loss(r):
        w = _final_weights(r, pre, post, v)
        return jnp.sum((w - target) ** 2)

    params, static = eqx.partition(rule, eqx.is_inexact_array_like)
    grads = jax.grad(lambda p: loss(eqx.combine(p, static)))(params)
    w_final = _final_weights(rule, pre, post, v)
    assert np.all(np.asarray(w_final) > float(rule.w_min) + 1e-6)  # no clipping:
    assert np.all(np.asarray(w_final) < float(rule.w_max) - 1e-6)  # smooth in parameters
    leaves, treedef = jax.tree_util.tree_flatten(params)
    g_leaves = jax.tree_util.tree_leaves(grads)
    # components ~1e-8 of the largest are checked against round-off of the difference quotient
    floor = 1e-6 * max(float(jnp.max(jnp.abs(g))) for g in g_leaves)
    checked = 0
    for k, (x, g) in enumerate(zip(leaves, g_leaves)):
        x = jnp.asarray(x, float)
        for j in range(min(x.size, 3)):  # array-valued parameters: first entries
            xj = abs(float(x.ravel()[j]))
            h = 1e-6 * xj if xj > 0 else 1e-7

            def shifted(s, k=k, j=j, x=x):
                new = list(leaves)
                new[k] = x.ravel().at[j].add(s).reshape(x.shape)
                return loss(eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static))

            fd = float((shifted(h) - shifted(-h)) / (2 * h))
            gj = float(jnp.ravel(g)[j])
            assert abs(gj - fd) <= 1e-4 * abs(fd) + floor, (name, k, j, gj, fd)
            checked += 1
    assert checked >= 4
