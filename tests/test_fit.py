"""jaxdend.fit: parameter wrappers, losses, the fit loop (checkpoints, NaN, multi-start) and
fits of real simulations."""

import json
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import hh_cell, tree_allclose

import jaxdend as jd
import jaxdend.fit as jf
from jaxdend import features as F
from jaxdend.solve import _checks
from jaxdend.synapses import AMPA

DT = 0.025  # ms


@pytest.fixture(scope="module")
def ycell():
    return hh_cell(jd.y_cell(), nseg=2)


# ----------------------------------------------------------------------------- wrappers
def test_transforms_round_trip_and_stay_in_bounds():
    for w, x in ((jf.Bounded(0.01, 0.5, init=0.12), 0.12),
                 (jf.Bounded(1e-5, 1e-1, log=True, init=3e-4), 3e-4),
                 (jf.Bounded(-80.0, -60.0, init=-77.0), -77.0),
                 (jf.Positive(init=2.5e-4), 2.5e-4)):
        np.testing.assert_allclose(float(w.unwrap()), x, rtol=1e-12)
        for raw in (-40.0, 40.0):
            val = float(jf.unwrap(eqx.tree_at(lambda p: p.raw, w, jnp.asarray(raw))))
            if isinstance(w, jf.Bounded):
                assert w.lower <= val <= w.upper
            else:
                assert val > 0
    # log=True: equal raw steps are equal factors
    w = jf.Bounded(1e-4, 1.0, log=True, init=1e-2)
    vals = [float(eqx.tree_at(lambda p: p.raw, w, jnp.asarray(r)).unwrap())
            for r in (0.0, 1.0, 2.0)]
    assert vals[1] / vals[0] > 1.5 and vals[2] > vals[1]


def test_initial_values_outside_bounds_are_errors(ycell):
    with pytest.raises(ValueError, match=r"HH\.g_na.*0\.12 S/cm\^2.*\(0\.2, 0\.5\)"):
        jf.parametrize(ycell, {"HH.g_na": jf.Bounded(0.2, 0.5)})
    with pytest.raises(ValueError, match=r"HH\.e_k.*-77 mV.*Positive"):
        jf.parametrize(ycell, {"HH.e_k": jf.Positive()})
    with pytest.raises(ValueError, match="NaN"):
        jf.wrap({"x": jnp.nan}, lambda d: d["x"], jf.Bounded(0.0, 1.0))
    with pytest.raises(ValueError, match="strictly inside"):
        jf.Bounded(0.0, 1.0, init=1.0)
    with pytest.raises(ValueError, match="lower < upper"):
        jf.Bounded(1.0, 0.5)
    with pytest.raises(ValueError, match="log=True"):
        jf.Bounded(0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="No channel 'Kv'"):
        jf.parametrize(ycell, {"Kv.g": jf.Positive()})
    with pytest.raises(ValueError, match="Unknown region 'tuft'"):
        jf.parametrize(ycell, {"HH.g_na": jf.Bounded(0.01, 0.5, where="tuft")})
    with pytest.raises(TypeError, match="instance"):
        jf.parametrize(ycell, {"cm": jf.Positive})


def test_parametrize_ties_per_region(ycell):
    model = jf.parametrize(ycell, {
        "HH.g_na": [jf.Bounded(0.01, 0.5, where="soma"),
                    jf.Bounded(0.001, 0.5, log=True, where="basal", group="dend")],
        "HH.g_l": jf.Positive(per_node=True, where="soma"),
        "cm": jf.Bounded(0.5, 3.0),
        "v_init": jf.Bounded(-80.0, -50.0),
    })
    assert tree_allclose(jf.unwrap(model), ycell, rtol=1e-12, atol=0.0)
    params, _ = eqx.partition(model, jf.trainable(model))
    n_soma = int(ycell.comps.mask("soma").sum())
    assert sorted(x.size for x in jax.tree_util.tree_leaves(params)) == sorted(
        [1, 1, n_soma, 1, 1])
    vals = jf.values(model)
    assert set(vals) == {"HH.g_na[soma]", "HH.g_na[basal]", "HH.g_l[soma]", "cm", "v_init"}
    assert vals["v_init"]["unit"] == "mV" and vals["v_init"]["value"] == pytest.approx(-65.0)
    assert vals["HH.g_na[soma]"]["unit"] == "S/cm^2" and vals["cm"]["unit"] == "uF/cm^2"
    assert vals["HH.g_na[basal]"]["group"] == "dend"
    json.dumps(vals)  # JSON-serialisable
    # a new value of the somatic g_na lands on the soma only, the basal one on basal nodes
    outer = model.channels[0].g_na
    new = eqx.tree_at(lambda w: w.base.raw, outer, jnp.asarray(2.0))
    g = np.asarray(jf.unwrap(new))
    soma = ycell.comps.mask("soma")
    assert np.all(g[soma] > 0.12 + 0.1) and np.allclose(g[~soma], 0.12)


def test_tying_unequal_values_warns(ycell):
    cell = ycell.set("HH.g_k", 0.05, where="soma")
    with pytest.warns(UserWarning, match="differ"):
        model = jf.parametrize(cell, {"HH.g_k": jf.Positive()})
    g = np.asarray(jf.unwrap(model).get("HH.g_k"))
    np.testing.assert_allclose(g, np.mean(np.asarray(cell.get("HH.g_k"))), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jf.parametrize(cell, {"HH.g_k": jf.Positive(per_node=True)})


def test_wrap_any_pytree_synapses_and_rules():
    cell = hh_cell(jd.ball_and_stick(), nseg=5)
    nodes = cell.select("basal")
    cell = cell.add_synapses("exc", AMPA(), nodes, gmax=0.5)
    cell = cell.add_rule(jd.plasticity.BasalHebbian(), "exc", "basal")
    model = jf.wrap(cell, lambda c: c.rules[0].rule.a_plus, jf.Bounded(0.0, 0.1))
    model = jf.parametrize(model, {"exc.gmax": jf.Positive(where="basal"),
                                   "exc.tau_decay": jf.Bounded(0.5, 10.0)})
    vals = jf.values(model)
    assert set(vals) == {"rules[0].rule.a_plus", "exc.gmax[basal]", "exc.tau_decay"}
    assert vals["exc.gmax[basal]"]["unit"] == "nS" and vals["exc.tau_decay"]["unit"] == "ms"
    concrete = jf.unwrap(model)
    np.testing.assert_allclose(float(concrete.rules[0].rule.a_plus), 0.01, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(concrete.synapses[0].gmax), 0.5, rtol=1e-12)
    # gradient w.r.t. the wrapped tree reaches the unconstrained value of the rule parameter
    params, static = eqx.partition(model, jf.trainable(model))
    grads = jax.grad(lambda p: jf.unwrap(eqx.combine(p, static)).rules[0].rule.a_plus)(params)
    assert float(grads.rules[0].rule.a_plus.raw) > 0


def test_fixed_excludes_and_stops_gradients(ycell):
    model = jf.parametrize(ycell, {"cm": jf.Bounded(0.5, 3.0), "HH.e_k": jf.Fixed()})
    frozen = jf.wrap(model, lambda c: c.cm, jf.Fixed())
    spec = jf.trainable(frozen)
    assert not any(jax.tree_util.tree_leaves(spec))
    assert tree_allclose(jf.unwrap(frozen), ycell, rtol=1e-12, atol=0.0)
    vals = jf.values(frozen)
    assert vals["cm"]["trainable"] is False and vals["HH.e_k"]["kind"] == "Fixed"
    assert vals["HH.e_k"]["value"] == -77.0
    g = eqx.filter_grad(lambda m: jnp.sum(jf.unwrap(m).cm))(frozen)
    assert float(jnp.abs(g.cm.value.raw)) == 0.0
    with pytest.raises(ValueError, match="no trainable parameter"):
        jf.fit(lambda c: jnp.sum(c.cm), frozen, steps=1, progress=False)


# ----------------------------------------------------------------------------- losses
def test_voltage_mse():
    v = jnp.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(float(jf.voltage_mse(v, v + 2.0)), 4.0)
    target = jnp.array([1.0, jnp.nan, 5.0])
    mask = jnp.array([True, False, True])
    np.testing.assert_allclose(float(jf.voltage_mse(v, target, mask)), 2.0)
    g = jax.grad(lambda v: jf.voltage_mse(v, target, mask))(v)
    assert np.all(np.isfinite(g)) and float(g[1]) == 0.0
    with pytest.raises(ValueError, match="equal shape"):
        jf.voltage_mse(v, v[:2])


def _bumps(t, centres, width=0.5, height=60.0):
    """Smooth spikes (Gaussian bumps, mV) from -65 mV at the given times (ms)."""
    v = -65.0 + jnp.zeros_like(t)
    for c in centres:
        v = v + (height + 10.0) * jnp.exp(-0.5 * ((t - c) / width) ** 2)
    return v


def test_spike_time_loss_gradient_and_direction():
    t = jnp.arange(0.0, 50.0, DT)
    target = jnp.array([10.0, 30.0, jnp.nan])  # NaN: padding
    v = _bumps(t, [11.0, 28.5])

    @jax.jit
    def loss(v):
        return jf.spike_time_loss(t, v, target, tau=5.0)

    g = jax.jit(jax.grad(loss))(v)
    assert np.all(np.isfinite(g)) and np.any(g != 0)
    d = jax.random.normal(jax.random.PRNGKey(0), v.shape)
    h = 1e-5
    fd = (float(loss(v + h * d)) - float(loss(v - h * d))) / (2 * h)
    np.testing.assert_allclose(float(jnp.vdot(g, d)), fd, rtol=1e-6)
    # moving a spike toward its target lowers the loss, monotonically; zero when matched
    losses = [float(loss(_bumps(t, [c, 28.5]))) for c in (14.0, 12.0, 11.0, 10.5)]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    matched = _bumps(t, [10.0, 30.0])
    times = F.spike_times(np.asarray(t), np.asarray(matched))
    assert float(jf.van_rossum(times, np.array([10.0, 30.0]) + (times - [10.0, 30.0]),
                               5.0)) < 1e-12
    # a missing spike adds 1/2
    one = float(jf.van_rossum(jnp.array([10.0]), jnp.array([10.0, 30.0]), 5.0))
    np.testing.assert_allclose(one, 0.5, rtol=1e-6)


def test_feature_loss():
    pred = {"rin": jnp.asarray(110.0), "tau": jnp.asarray(21.0)}
    target = {"rin": 100.0, "tau": 20.0}
    scale = {"rin": 5.0, "tau": 2.0}
    np.testing.assert_allclose(float(jf.feature_loss(pred, target, scale)), 4.0 + 0.25)
    np.testing.assert_allclose(float(jf.feature_loss(jnp.array([1.0, 3.0]),
                                                     jnp.array([0.0, 0.0]), 2.0)), 2.5)
    with pytest.raises(ValueError, match="different features"):
        jf.feature_loss({"rin": 1.0}, target, scale)
    with pytest.raises(ValueError, match="> 0"):
        jf.feature_loss(pred, target, {"rin": 0.0, "tau": 1.0})


# ----------------------------------------------------------------------------- fit loop
def _toy():
    model = {"a": jnp.asarray(0.5), "b": jnp.asarray([1.0, 2.0]), "c": jnp.asarray([1.0, 2.0, 3.0])}
    model = jf.wrap(model, lambda m: m["a"], jf.Bounded(-1.0, 1.0))
    model = jf.wrap(model, lambda m: m["c"],
                    jf.Bounded(0.0, 5.0, where=np.array([True, False, True]), per_node=True))
    return jf.wrap(model, lambda m: m["b"], jf.Positive(per_node=True, group="pos"))


def _toy_loss(m):
    return ((m["a"] - 0.2) ** 2 + jnp.sum((jnp.log(m["b"]) - jnp.array([0.3, -0.4])) ** 2)
            + jnp.sum((m["c"] - jnp.array([2.5, 2.0, 1.5])) ** 2))


def test_fit_recovers_toy_minimum_and_counts_evaluations():
    r = jf.fit(_toy_loss, _toy(), optimizer=optax.adam(0.05), steps=400, progress=False)
    vals = r.values()
    np.testing.assert_allclose(vals["a"]["value"], 0.2, atol=1e-4)
    np.testing.assert_allclose(np.log(vals["b"]["value"]), [0.3, -0.4], atol=1e-4)
    np.testing.assert_allclose(np.asarray(r.concrete()["c"]), [2.5, 2.0, 1.5], atol=1e-4)
    assert vals["c[selection]"]["value"] == pytest.approx([2.5, 1.5], abs=1e-4)
    assert r.n_evaluations == 400 and r.history.shape == (400,) and r.steps == 400
    assert r.best_loss == pytest.approx(float(np.min(r.history)), rel=0, abs=0)
    assert r.best_loss == float(r.history[r.best_step])
    np.testing.assert_allclose(float(_toy_loss(r.concrete())), r.best_loss, rtol=0, atol=1e-15)


def test_group_learning_rates():
    model = _toy()
    r = jf.fit(_toy_loss, model, optimizer={"default": optax.adam(0.05),
                                            "pos": optax.set_to_zero()},
               steps=50, progress=False)
    np.testing.assert_allclose(r.values()["b"]["value"], [1.0, 2.0], rtol=1e-12)
    assert abs(r.values()["a"]["value"] - 0.5) > 0.1
    with pytest.raises(ValueError, match=r"group\(s\) \['passive'\] that no trainable"):
        jf.fit(_toy_loss, model, optimizer={"default": optax.adam(0.1),
                                            "pos": optax.adam(0.1),
                                            "passive": optax.adam(0.1)}, steps=1)
    with pytest.raises(ValueError, match=r"group\(s\) \['pos'\] have no optimiser"):
        jf.fit(_toy_loss, model, optimizer={"default": optax.adam(0.1)}, steps=1)


def test_fit_argument_errors():
    model = _toy()
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        jf.fit(_toy_loss, model, steps=0)
    with pytest.raises(ValueError, match="scalar"):
        jf.fit(lambda m: m["b"], model, steps=1)
    with pytest.raises(ValueError, match="no trainable parameter"):
        jf.fit(_toy_loss, {"a": jnp.asarray(1.0)}, steps=1)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        jf.fit(_toy_loss, model, steps=1, resume=True)
    with pytest.raises(TypeError, match="optax"):
        jf.fit(_toy_loss, model, steps=1, optimizer="adam")
    with pytest.raises(ValueError, match="hold no value"):
        jf.fit(_toy_loss, {"a": jf.Bounded(0.0, 1.0)}, steps=1)


def test_early_stopping_and_progress(capsys):
    r = jf.fit(_toy_loss, _toy(), optimizer=optax.adam(0.05), steps=1000, target_loss=1e-3,
               progress=True)
    assert r.stop_reason == "target_loss" and r.steps < 1000 and r.best_loss <= 1e-3
    err = capsys.readouterr().err
    assert "best=" in err and "loss=" in err
    r = jf.fit(_toy_loss, _toy(), optimizer=optax.sgd(0.0), steps=100, patience=5,
               progress=False)
    assert r.stop_reason == "patience" and r.steps == 6


@pytest.mark.parametrize("starts", [1, 3])
def test_resume_gives_the_uninterrupted_run(tmp_path, starts):
    kw = dict(optimizer=optax.adam(0.05), progress=False, starts=starts,
              key=jax.random.PRNGKey(3), checkpoint_every=3)
    full = jf.fit(_toy_loss, _toy(), steps=12, **kw)
    path = tmp_path / "fit.ckpt"
    part = jf.fit(_toy_loss, _toy(), steps=5, checkpoint=path, **kw)
    assert part.steps == 5 and path.exists()
    assert not list(tmp_path.glob(".*tmp*"))  # temporary file replaced atomically
    resumed = jf.fit(_toy_loss, _toy(), steps=12, checkpoint=path, resume=True, **kw)
    np.testing.assert_array_equal(resumed.history, full.history)
    for a, b in ((resumed.last_model, full.last_model), (resumed.model, full.model)):
        la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))
    assert resumed.n_evaluations == full.n_evaluations == 12 * starts
    assert resumed.best_step == full.best_step and resumed.best_start == full.best_start
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a jaxdend.fit checkpoint"):
        jf.fit(_toy_loss, _toy(), steps=12, checkpoint=bad, resume=True, **kw)
    # a checkpoint of another model is refused with a clear message
    with pytest.raises(ValueError, match="different model"):
        jf.fit(lambda m: m["a"] ** 2, jf.wrap({"a": jnp.asarray(0.5)}, lambda m: m["a"],
                                              jf.Bounded(-1.0, 1.0)),
               steps=12, checkpoint=path, resume=True, **kw)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    model = jf.wrap({"x": jnp.asarray(1.0)}, lambda m: m["x"], jf.Positive())

    def loss(m):  # finite below x = 2, NaN above: Adam walks x up from 1
        return jnp.where(m["x"] > 2.0, jnp.nan, (m["x"] - 5.0) ** 2)

    path = tmp_path / "nan.ckpt"
    with pytest.raises(jf.NonFiniteLossError) as info:
        jf.fit(loss, model, optimizer=optax.adam(0.1), steps=50, checkpoint=path,
               checkpoint_every=2, progress=False)
    msg = str(info.value)
    step = len(info.value.result.history)
    assert f"at step {step}" in msg and "last finite loss" in msg
    assert str(path) in msg and "learning rate" in msg and "bounds" in msg
    good = 2 * (step // 2)
    assert f"step {good}" in msg
    assert np.all(np.isfinite(info.value.result.history))
    assert info.value.result.values()["x"]["value"] <= 2.0
    # the checkpoint holds the last good state: resuming to that step returns it unchanged
    back = jf.fit(loss, model, optimizer=optax.adam(0.1), steps=good, checkpoint=path,
                  resume=True, progress=False)
    assert back.steps == good and np.all(np.isfinite(back.history))
    np.testing.assert_array_equal(back.history, info.value.result.history[:good])


@pytest.mark.parametrize("error_if", [eqx.error_if, _checks.error_if],
                         ids=["equinox", "jaxdend"])
def test_runtime_error_in_the_simulation_is_reported_with_the_step(error_if):
    """A run-time check that fails mid-fit (as jaxdend.simulate's on a NaN state) stops the
    fit with the step, whichever exception JAX raised it as (JaxRuntimeError, or ValueError on
    its C++ dispatch path of a loss that closes over arrays, as a loss of data does)."""
    model = jf.wrap({"x": jnp.asarray(1.0)}, lambda m: m["x"], jf.Positive())
    target = jnp.asarray([5.0, 5.0])

    def loss(m):
        x = error_if(m["x"], m["x"] > 2.0, "The simulation produced NaN or inf.")
        return jnp.mean((x - target) ** 2)

    with pytest.raises(jf.NonFiniteLossError, match=r"failed at step \d+.*No checkpoint"):
        jf.fit(loss, model, optimizer=optax.adam(0.1), steps=50, progress=False)


def test_multistart_finds_global_minimum_of_double_well():
    def loss(m):  # wells at x ~ -1.04 (global) and x ~ +0.96
        return (m["x"] ** 2 - 1.0) ** 2 + 0.3 * m["x"]

    model = jf.wrap({"x": jnp.asarray(0.9)}, lambda m: m["x"], jf.Bounded(-2.0, 2.0))
    kw = dict(optimizer=optax.adam(0.05), steps=200, progress=False)
    single = jf.fit(loss, model, **kw)
    assert single.values()["x"]["value"] > 0.5  # stuck in the wrong well
    multi = jf.fit(loss, model, starts=8, key=jax.random.PRNGKey(0), **kw)
    x = multi.values()["x"]["value"]
    np.testing.assert_allclose(x, -1.0355, atol=1e-3)
    assert multi.best_loss < single.best_loss - 0.5
    assert multi.losses.shape == (8,) and multi.history.shape == (200, 8)
    assert multi.n_evaluations == 8 * 200
    np.testing.assert_allclose(multi.losses[0], single.best_loss, rtol=1e-10)  # start 0
    np.testing.assert_allclose(jf.values(multi.start(0))["x"]["value"],
                               jf.values(single.last_model)["x"]["value"], rtol=1e-8)


def test_multistart_freezes_a_diverging_start():
    def loss(m):
        return jnp.where(m["x"] > 1.5, jnp.nan, (m["x"] - 1.0) ** 2)

    # start 0 lies in the NaN region: it is frozen at once, the random starts go on
    model = jf.wrap({"x": jnp.asarray(1.8)}, lambda m: m["x"], jf.Bounded(-2.0, 2.0))
    with pytest.warns(RuntimeWarning, match=r"Start\(s\) \[0\].*step 0.*frozen"):
        r = jf.fit(loss, model, optimizer=optax.adam(0.05), steps=60, starts=6,
                   key=jax.random.PRNGKey(1), progress=False)
    assert np.all(np.isnan(r.history[:, 0])) and np.isfinite(r.best_loss) and r.best_start > 0
    np.testing.assert_allclose(r.values()["x"]["value"], 1.0, atol=0.05)


# ----------------------------------------------------------------------------- real fits
TRUE = {"HH.g_na": 0.12, "HH.g_k": 0.036, "HH.g_l": 0.0003}  # S/cm^2


@pytest.fixture(scope="module")
def stick():
    return hh_cell(jd.ball_and_stick(dend_length=200.0), nseg=2)


def test_fit_hh_conductances_to_a_voltage_trace(stick):
    """Target from known g_na, g_k, g_l; start 20-25 % off; recover them within 1 %."""
    # a pulse evoking a spike, a small depolarising and a hyperpolarising step (nA, ms)
    stim = [jd.stimulus.step(0, 0.5, 2.0, 1.0), jd.stimulus.step(0, 0.05, 8.0, 10.0),
            jd.stimulus.step(0, -0.1, 19.0, 10.0)]
    target = jd.simulate(stick, stim, t1=30.0, dt=DT)["v"][:, 0]
    start = stick
    for (name, value), factor in zip(TRUE.items(), (1.2, 0.8, 1.25)):
        start = start.set(name, value * factor)
    model = jf.parametrize(start, {"HH.g_na": jf.Bounded(0.01, 1.0, log=True),
                                   "HH.g_k": jf.Bounded(3e-3, 0.3, log=True),
                                   "HH.g_l": jf.Bounded(3e-5, 3e-3, log=True)})

    def loss_fn(cell):
        return jf.voltage_mse(jd.simulate(cell, stim, t1=30.0, dt=DT)["v"][:, 0], target)

    r = jf.fit(loss_fn, model, optimizer=optax.lbfgs(), steps=40, target_loss=1e-12,
               progress=False)
    assert r.stop_reason == "target_loss"
    for name, entry in r.values().items():
        np.testing.assert_allclose(entry["value"], TRUE[name], rtol=0.01, err_msg=name)
    assert r.n_evaluations > r.steps  # line-search evaluations are counted


def test_fit_leak_and_capacitance_to_features(stick):
    """Feature loss (input resistance, time constant, sag of a hyperpolarising step): start
    25 % / 20 % off, recover g_l and cm within 1 % with Adam."""
    stim = jd.stimulus.step(0, -0.02, 5.0, 35.0)

    def features(cell):
        sol = jd.simulate(cell, stim, t1=40.0, dt=DT)
        t, v = sol.ts, sol["v"][:, 0]
        return {"rin": F.input_resistance(t, v, 5.0, 40.0, -0.02),
                "tau": F.membrane_time_constant(t, v, 5.0, 40.0),
                "sag": F.sag_ratio(t, v, 5.0, 40.0)}

    target = {k: float(x) for k, x in features(stick).items()}
    scale = {k: 0.01 * abs(x) for k, x in target.items()}
    start = stick.set("HH.g_l", TRUE["HH.g_l"] * 1.25).set("cm", 0.8)
    model = jf.parametrize(start, {"HH.g_l": jf.Bounded(3e-5, 3e-3, log=True),
                                   "cm": jf.Bounded(0.3, 3.0, log=True)})
    r = jf.fit(lambda c: jf.feature_loss(features(c), target, scale), model,
               optimizer=optax.adam(0.02), steps=150, progress=False)
    vals = r.values()
    np.testing.assert_allclose(vals["HH.g_l"]["value"], TRUE["HH.g_l"], rtol=0.01)
    np.testing.assert_allclose(vals["cm"]["value"], 1.0, rtol=0.01)
    assert r.best_loss < 1e-2 * r.history[0]
