"""Long runs with plasticity: chunked continuation and nested checkpointing (issue 4).

Units: time ms, rates Hz, conductances nS.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import tree_allclose

import jaxdend as jd
from jaxdend.plasticity import ApicalCooperative, BasalHebbian
from jaxdend.synapses import AMPA, NMDA, Input, SpikeTrains, poisson

DT = 0.025
T1 = 50.0  # ms


@pytest.fixture(scope="module")
def plastic():
    """Ball-and-stick (HH soma, passive dendrite) with two plastic groups and their inputs."""
    comps = jd.discretize(jd.ball_and_stick(dend_length=200.0, dend_diam=1.0), nseg=10)
    cell = jd.Cell(comps).insert(jd.channels.HH(), "soma").insert(
        jd.channels.Leak(g=1e-4, e=-65.0), "basal")
    nodes = np.asarray([cell.nearest("basal", d) for d in (20.0, 40.0, 60.0, 80.0, 82.0, 84.0)])
    cell = (cell.add_synapses("b", AMPA(), nodes[:3], 3.0)
            .add_synapses("a", NMDA(), nodes[3:], 2.0))
    cell = cell.add_rule(BasalHebbian(a_plus=0.05, a_minus=0.04), "b", "basal").add_rule(
        ApicalCooperative(), "a", "basal")
    k = jax.random.split(jax.random.key(1), 2)
    tb, ta = poisson(k[0], 80.0, 3, T1), poisson(k[1], 80.0, 3, T1)
    return cell, tb, ta


def _inputs(tb, ta, lo=-np.inf, hi=np.inf):
    """Inputs keeping the spikes in [lo, hi) ms, each train re-packed from column 0."""
    def cut(tr):
        t = np.asarray(tr.times)
        return SpikeTrains(np.sort(np.where((t >= lo) & (t < hi), t, np.inf), axis=1))
    return [Input("b", cut(tb)), Input("a", cut(ta))]


def test_chunked_run_equals_one_run(plastic):
    """Two halves chained with t0 and y0=final_state = one run (simulate restarts the spike
    pointers, since each call's trains hold only its own interval)."""
    cell, tb, ta = plastic
    rec = {"v": cell.probe("v", "soma"), "w": cell.probe("b.w"), "wa": cell.probe("a.w")}
    kw = {"dt": DT, "record": rec, "record_every": 20}
    whole = jd.simulate(cell, _inputs(tb, ta), t1=T1, **kw)
    mid = T1 / 2
    first = jd.simulate(cell, _inputs(tb, ta, hi=mid), t1=mid, **kw)
    second = jd.simulate(cell, _inputs(tb, ta, lo=mid), t0=mid, t1=T1, y0=first.final_state,
                         **kw)
    ts = np.concatenate([first.ts, second.ts[1:]])
    np.testing.assert_allclose(ts, whole.ts, rtol=0, atol=1e-9)
    for k in rec:
        joined = np.concatenate([first[k], second[k][1:]])
        np.testing.assert_allclose(joined, whole[k], rtol=0, atol=1e-8)
    # the run is not trivial: the soma spikes and both rules move the weights
    assert whole["v"].max() > 0.0
    assert np.abs(whole["w"][-1] - 1.0).max() > 1e-3
    assert np.abs(whole["wa"][-1] - 1.0).max() > 1e-3
    # final states agree, except the spike pointers (indices into different train arrays)
    def no_ptr(y):
        return dict(y, synapses=[{k: v for k, v in s.items() if k != "next"}
                                 for s in y["synapses"]])
    assert tree_allclose(no_ptr(second.final_state), no_ptr(whole.final_state),
                         rtol=0, atol=1e-8)


def test_nested_checkpoint_gradients_on_plastic_cell(plastic):
    """checkpoint="nested" gives the per-step checkpointed loss and rule-parameter gradients."""
    cell, tb, ta = plastic
    stim = _inputs(tb, ta)
    names = [(0, "a_plus"), (0, "a_minus"), (1, "a_coop"), (1, "a_dep")]
    p0 = [jnp.asarray(float(getattr(cell.rules[i].rule, a))) for i, a in names]

    def loss(p, mode):
        c = eqx.tree_at(lambda c: [getattr(c.rules[i].rule, a) for i, a in names], cell, p)
        sol = jd.simulate(c, stim, t1=T1, dt=DT, record_every=10, checkpoint=mode)
        w = jnp.concatenate([s["w"] for s in sol.final_state["synapses"]])
        return jnp.mean((w - 1.2) ** 2)

    l1, g1 = jax.value_and_grad(loss)(p0, True)
    l2, g2 = jax.value_and_grad(loss)(p0, "nested")
    np.testing.assert_allclose(float(l2), float(l1), rtol=1e-12)
    assert all(float(abs(g)) > 0 for g in g1)  # every parameter matters
    assert tree_allclose(g1, g2, rtol=1e-9, atol=1e-14)
