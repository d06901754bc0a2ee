"""Bad input gets a clear error that names the problem and the fix."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import hh_cell, to_float32

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
    with pytest.raises(eqx.EquinoxRuntimeError, match="NaN or inf"):
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
        with pytest.raises(eqx.EquinoxRuntimeError, match="time step is too large"):
            jd.simulate(cell32, jd.stimulus.step(0, 0.5), t1=20.0, dt=0.5, solver=dfx.Euler())


def test_tree_not_in_hines_order():
    with pytest.raises(ValueError, match="Hines order"):
        jd.solve.TreePlan.from_parent(np.array([-1, 2, 0]))


def test_nan_stimulus_is_reported(cell):
    """A NaN current amplitude: ValueError when given as a number, a run-time error when
    traced; dur=inf (a step to the end of the run) stays allowed."""
    with pytest.raises(ValueError, match="current-clamp value"):
        jd.simulate(cell, jd.stimulus.step(0, float("nan"), 2.0, 5.0), t1=5.0)
    with pytest.raises(Exception, match="current-clamp value"):
        jax.jit(lambda a: jd.simulate(cell, jd.stimulus.step(0, a, 2.0, 5.0), t1=5.0)["v"])(
            jnp.nan)
    v = jd.simulate(cell, jd.stimulus.step(0, 0.1, 1.0, float("inf")), t1=5.0)["v"]
    assert np.all(np.isfinite(np.asarray(v)))


def test_nonfinite_run_reported_when_only_recordings_are_kept(cell):
    """The NaN check guards the recordings too: a jitted caller that keeps only them (so the
    final state is dead code) still gets the error instead of silent NaN."""
    bad = cell.set("ra", 1e-12)  # absurd coupling: the explicit solver explodes

    def only_trace(c):
        return jd.simulate(c, jd.stimulus.step(0, 0.5), t1=2.0, dt=0.5, solver=dfx.Euler())["v"]

    with pytest.raises(Exception, match="NaN or inf"):
        jax.block_until_ready(eqx.filter_jit(only_trace)(bad))
