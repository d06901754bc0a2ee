"""Bad input gets a clear error that names the problem and the fix."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import RUNTIME_ERROR, hh_cell, to_float32

import jaxdend as jd


@pytest.fixture(scope="module")
def cell():
    return hh_cell(jd.ball_and_stick(), nseg=3)


@pytest.mark.parametrize("dt", [0.0, -0.025, float("nan")])
def test_bad_dt(cell, dt):
    with pytest.raises(ValueError, match="dt must be a positive time step"):
        jd.simulate(cell, None, t1=10.0, dt=dt)


def test_t1_before_t0(cell):
    with pytest.raises(ValueError, match="t1 > t0"):
        jd.simulate(cell, None, t1=-1.0)


def test_dt_not_dividing_duration(cell):
    with pytest.raises(ValueError, match="whole number of steps"):
        jd.simulate(cell, None, t1=10.0, dt=0.3)


def test_nan_parameter(cell):
    bad = cell.set("HH.g_na", jnp.nan, where="soma")
    with pytest.raises(RUNTIME_ERROR, match="NaN or inf"):
        jd.simulate(bad, None, t1=1.0)


@pytest.mark.parametrize("name,value", [("cm", -1.0), ("ra", 0.0), ("cm", np.nan)])
def test_bad_passive_values(cell, name, value):
    with pytest.raises(ValueError, match=name):
        jd.Cell(cell.comps, **{name: value})


def test_wrong_parameter_shape(cell):
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        cell.set("HH.g_na", np.ones(7))


def test_unknown_region_and_parameter(cell):
    with pytest.raises(ValueError, match="Known regions"):
        cell.insert(jd.channels.Leak(), where="tuftt")
    with pytest.raises(ValueError, match="no parameter"):
        cell.set("HH.gna", 0.1)
    with pytest.raises(ValueError, match="insert it first"):
        cell.set("Leak.g", 0.1)
    with pytest.raises(ValueError, match="recordable states"):
        cell.probe("HH.q")


def test_stimulus_on_missing_node(cell):
    with pytest.raises(ValueError, match="Stimulus at node 99"):
        jd.simulate(cell, jd.stimulus.step(99, 0.1), t1=1.0)


def test_bad_sampled_waveform():
    with pytest.raises(ValueError, match="strictly increasing"):
        jd.stimulus.sampled(0, [0.0, 2.0, 1.0], [0.0, 0.1, 0.2])
    with pytest.raises(ValueError, match="equal length"):
        jd.stimulus.sampled(0, [0.0, 1.0], [0.0])


def test_unstable_step_in_float32_is_reported(cell):
    """An explicit solver with a far too large step in float32 blows up: clear error, no NaN."""
    cell32 = to_float32(cell)
    with jax.enable_x64(False):
        with pytest.raises(RUNTIME_ERROR, match="time step is too large"):
            jd.simulate(cell32, jd.stimulus.step(0, 0.5), t1=20.0, dt=0.5, solver=dfx.Euler())


def test_tree_not_in_hines_order():
    with pytest.raises(ValueError, match="Hines order"):
        jd.solve.TreePlan.from_parent(np.array([-1, 2, 0]))


def test_nan_stimulus_is_reported(cell):
    """A NaN current amplitude: ValueError when given as a number, a run-time error when
    traced; dur=inf (a step to the end of the run) stays allowed."""
    with pytest.raises(ValueError, match="current-clamp value"):
        jd.simulate(cell, jd.stimulus.step(0, float("nan"), 2.0, 5.0), t1=5.0)
    with pytest.raises(RUNTIME_ERROR, match="current-clamp value"):  # when the result is read
        np.asarray(jax.jit(
            lambda a: jd.simulate(cell, jd.stimulus.step(0, a, 2.0, 5.0), t1=5.0)["v"])(jnp.nan))
    v = jd.simulate(cell, jd.stimulus.step(0, 0.1, 1.0, float("inf")), t1=5.0)["v"]
    assert np.all(np.isfinite(np.asarray(v)))


def test_nonfinite_run_reported_when_only_recordings_are_kept(cell):
    """The NaN check guards the recordings too: a jitted caller that keeps only them (so the
    final state is dead code) still gets the error instead of silent NaN."""
    bad = cell.set("ra", 1e-12)  # absurd coupling: the explicit solver explodes

    def only_trace(c):
        return jd.simulate(c, jd.stimulus.step(0, 0.5), t1=2.0, dt=0.5, solver=dfx.Euler())["v"]

    with pytest.raises(RUNTIME_ERROR, match="NaN or inf"):
        jax.block_until_ready(eqx.filter_jit(only_trace)(bad))


def test_runtime_checks_are_native_on_cpu_not_host_callbacks(cell):
    """On CPU the run-time checks (bad parameters, non-finite result, NaN clamp values) are a
    native custom call: a host callback (equinox's) would keep JAX from its C++ dispatch path
    (~0.1 ms per call, see `jaxdend.solve._checks`). The lowered program holds the check and no
    Python callback, and still raises with the message when traced values are bad, batched or
    not, under jit and grad."""
    from jaxdend.solve import _checks, _native

    if not _checks._native_checks():
        pytest.skip(f"native checks off: {_native._status.get('error', 'EQX_ON_ERROR set')}")

    def run(c, amp):
        return jd.simulate(c, jd.stimulus.step(0, amp, 0.5, 1.0), t1=2.0)["v"][:, 0]

    text = jax.jit(run).lower(cell, 0.1).as_text()
    assert "jaxdend_raise_if" in text and "callback" not in text
    ok = jax.jit(run)(cell, 0.1)
    assert np.all(np.isfinite(np.asarray(ok)))
    bad = cell.set("HH.g_na", jnp.nan, where="soma")
    with pytest.raises(RUNTIME_ERROR, match="A cell parameter is NaN or inf"):
        jax.block_until_ready(jax.jit(run)(bad, 0.1))
    with pytest.raises(RUNTIME_ERROR, match="current-clamp value .* is NaN"):
        jax.block_until_ready(jax.jit(jax.vmap(run, (None, 0)))(cell, jnp.array([0.1, jnp.nan])))
    g = cell.get("HH.g_na")
    grad = jax.jit(jax.grad(lambda g: jnp.sum(run(cell.set("HH.g_na", g), 0.1) ** 2)))
    assert np.all(np.isfinite(np.asarray(grad(g))))
    with pytest.raises(RUNTIME_ERROR, match="A cell parameter is NaN or inf"):
        jax.block_until_ready(grad(g.at[0].set(jnp.nan)))
