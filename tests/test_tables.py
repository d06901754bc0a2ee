"""Rate tables (`jaxdend.RateTable`): accuracy against the exact update, gradients, paths."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import hh_cell

import jaxdend as jd
from jaxdend.solve._tables import tabulable

DT = 0.025


def test_only_voltage_and_temperature_dependent_gates_are_tabulated():
    assert tabulable(jd.channels.HH())
    assert not tabulable(jd.channels.Leak())  # no gates
    assert not tabulable(jd.channels.PospischilNa())  # rates depend on vt (per node)
    assert jd.RateTable().build(jd.channels.PospischilKd(), 36.0, DT) is None


@pytest.mark.parametrize("dv, tol", [(1.0, 1e-4), (0.1, 1e-6)])
def test_table_step_matches_exact_update(dv, tol):
    """One tabulated step equals the exact exponential-Euler step up to the interpolation
    error, which is second order in dv (tol ~ dv^2); exact at the grid voltages."""
    ch = jd.channels.HH()
    table = jd.RateTable(dv=dv).build(ch, jnp.asarray(6.3), DT)
    v = jnp.linspace(-99.0, 99.0, 2001)
    key = jax.random.key(0)
    state = {k: jax.random.uniform(jax.random.fold_in(key, i), v.shape)
             for i, k in enumerate("mhn")}
    exact = ch.exp_euler(state, v, 6.3, DT)
    tab = table.step(("m", "h", "n"), state, v, 6.3)
    err = max(float(jnp.max(jnp.abs(exact[k] - tab[k]))) for k in "mhn")
    assert tol / 30 < err < tol  # the error is there and is small
    grid = jd.RateTable(dv=dv).grid()[5:-5]
    g_state = {k: jnp.full(grid.shape, 0.3) for k in "mhn"}
    on_grid = table.step(("m", "h", "n"), g_state, grid, 6.3)
    ref = ch.exp_euler(g_state, grid, 6.3, DT)
    for k in "mhn":
        np.testing.assert_allclose(on_grid[k], ref[k], rtol=0, atol=1e-13)


def test_out_of_range_uses_the_end_values():
    ch = jd.channels.HH()
    table = jd.RateTable().build(ch, jnp.asarray(6.3), DT)
    st = {k: jnp.full((2,), 0.5) for k in "mhn"}
    out = table.step(("m", "h", "n"), st, jnp.asarray([-150.0, 140.0]), 6.3)
    ends = ch.exp_euler(st, jnp.asarray([-100.0, 100.0]), 6.3, DT)
    for k in "mhn":
        np.testing.assert_allclose(out[k], ends[k], rtol=1e-12)


@pytest.fixture(scope="module")
def cell():
    return hh_cell(jd.y_cell(), nseg=5)


def _soma(cell, solver, **kw):
    stim = jd.stimulus.step(0, 0.3, 2.0, 25.0)
    return jd.simulate(cell, stim, t1=30.0, dt=DT, solver=solver, **kw)["v"][:, 0]


def test_simulation_with_table_close_to_exact(cell):
    """HH Y-cell firing: the tabulated run (dv = 0.1 mV) stays within 0.05 mV mean and keeps
    spike times within 0.01 ms; a 1 mV table (NEURON's hh default) is visibly coarser."""
    exact = np.asarray(_soma(cell, jd.BackwardEuler()))
    t = np.arange(exact.size) * DT
    sp_exact = jd.features.spike_times(t, exact)
    assert sp_exact.size >= 2
    errs = {}
    for dv in (0.1, 1.0):
        v = np.asarray(_soma(cell, jd.BackwardEuler(rate_table=jd.RateTable(dv=dv))))
        errs[dv] = np.mean(np.abs(v - exact))
        sp = jd.features.spike_times(t, v)
        assert sp.size == sp_exact.size
        if dv == 0.1:
            assert np.max(np.abs(sp - sp_exact)) < 0.01
    assert errs[0.1] < 0.05
    assert errs[1.0] > 10 * errs[0.1]  # second order: 100x in theory


def test_crank_nicolson_table_close_to_exact(cell):
    exact = np.asarray(_soma(cell, jd.CrankNicolson()))
    tab = np.asarray(_soma(cell, jd.CrankNicolson(rate_table=jd.RateTable())))
    assert np.mean(np.abs(tab - exact)) < 0.05


def test_table_gradients_match_finite_differences(cell):
    """Gradients of the tabulated model (w.r.t. g_na, g_k and the temperature, which enters
    through the table) equal central differences of the same model.

    The interpolant has kinks at the grid voltages, so central differences of the tabulated
    model scatter with the step (w.r.t. celsius: 34.936 ... 34.969 for eps 1e-2 ... 1e-5 around
    the analytic 34.953); the temperature gradient is checked against them at 2e-3 and
    against the exact model's gradient (34.933) at 1e-3."""
    solver = jd.BackwardEuler(rate_table=jd.RateTable())

    def loss(c):
        return jnp.mean((_soma(c, solver) + 20.0) ** 2)

    grads = eqx.filter_jit(eqx.filter_grad(loss))(cell)
    f = jax.jit(lambda c: loss(c))
    for name in ("HH.g_na", "HH.g_k"):
        base = cell.get(name)
        analytic = float(jnp.sum(jd.Cell.get(grads, name) * base))
        eps = 1e-5
        fd = float((f(cell.set(name, base * (1 + eps))) - f(cell.set(name, base * (1 - eps))))
                   / (2 * eps))
        assert abs(analytic) > 1e-3
        assert abs(analytic - fd) < 1e-4 * abs(fd), name
    analytic = float(grads.celsius)
    eps = 1e-3
    fd = float((f(cell.set("celsius", 6.3 + eps)) - f(cell.set("celsius", 6.3 - eps))) / (2 * eps))
    assert abs(fd) > 1e-2
    assert abs(analytic - fd) < 2e-3 * abs(fd)

    def exact_loss(c):
        return jnp.mean((_soma(c, jd.BackwardEuler()) + 20.0) ** 2)

    exact = float(eqx.filter_jit(eqx.filter_grad(exact_loss))(cell).celsius)
    assert abs(analytic - exact) < 1e-3 * abs(exact)


def test_diffeqsolve_path_equals_scan_path(cell):
    """The table is the diffrax solver state: diffeqsolve (SaveAt, DirectAdjoint) gives the
    scan path's trace; a step of another length is refused at run time."""
    solver = jd.BackwardEuler(rate_table=jd.RateTable())
    ts = jnp.linspace(0.0, 30.0, int(30.0 / DT) + 1)
    scan = _soma(cell, solver)
    dfx_v = _soma(cell, solver, saveat=dfx.SaveAt(ts=ts), adjoint=dfx.DirectAdjoint())
    np.testing.assert_allclose(np.asarray(dfx_v), np.asarray(scan), rtol=0, atol=1e-9)
    stim = jd.stimulus.step(0, 0.3, 2.0, 25.0)
    with pytest.raises(Exception, match="constant steps"):  # last step 0.01 ms, not dt
        jd.simulate(cell, stim, t1=30.01, dt=DT, solver=solver, saveat=dfx.SaveAt(t1=True),
                    adjoint=dfx.DirectAdjoint())


def test_untabulated_channels_are_exact():
    """A cell with Pospischil channels (rates depend on vt) runs identically with a table."""
    from jaxdend._demo import demo_cell

    c = demo_cell()
    stim = jd.stimulus.step(0, 0.3, 5.0, 20.0)
    a = jd.simulate(c, stim, t1=30.0, dt=DT)["v"]
    b = jd.simulate(c, stim, t1=30.0, dt=DT,
                    solver=jd.BackwardEuler(rate_table=jd.RateTable()))["v"]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bad_table_configuration():
    with pytest.raises(ValueError, match="v_min < v_max"):
        jd.RateTable(v_min=10.0, v_max=-10.0)
    with pytest.raises(ValueError, match="positive spacing"):
        jd.RateTable(dv=0.0)
    with pytest.raises(ValueError, match="coarser dv"):
        jd.RateTable(dv=1e-5)
