"""Whole runs in one native call (`jaxdend.solve._native_run`, `native/hh_run.cc`): the same
values as the scan path, reverse-mode gradients from the native reverse run equal to the
scan path's forward mode, and the scan path wherever the run does not fit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import RUNTIME_ERROR, hh_cell, scan_path_record, to_float32

import jaxdend as jd
from jaxdend.solve import _native

pytestmark = pytest.mark.skipif(not _native.available() or jax.default_backend() != "cpu",
                                reason="native CPU code not built, or not the default backend")


def _native_in(fn, *args) -> bool:
    return "jaxdend_hh_run" in jax.jit(fn).lower(*args).as_text()


def _with_gate(cell, record: dict) -> dict:
    """`record` plus the soma's HH m gate, which keeps the scan path: the reference the
    native run is compared with."""
    return {**record, "m_soma": scan_path_record(cell)["m"]}


def _mixed_cell():
    """Reduced pyramidal cell: HH on the soma and basal dendrites only, two leaks elsewhere
    (overlapping on the soma), per-node g_na."""
    cell = jd.Cell(jd.discretize(jd.reduced_pyramidal(), nseg=3), cm=1.0, ra=150.0)
    cell = cell.insert(jd.channels.HH(), where="soma").insert(jd.channels.HH(), where="basal")
    cell = cell.insert(jd.channels.Leak(g=5e-5, e=-65.0), where="apical")
    cell = cell.insert(jd.channels.Leak(g=2e-5, e=-80.0))
    g_na = 0.12 * (1.0 + 0.1 * np.sin(np.arange(cell.n)))
    return cell.set("HH.g_na", g_na, where="soma").set("celsius", 16.3)


STIM = [jd.stimulus.step(0, 0.8, 2.0, 30.0), jd.stimulus.ramp(5, 0.0, 0.4, 1.0, 20.0),
        jd.stimulus.step(0, 0.2, 10.0, 5.0)]


@pytest.mark.parametrize("solver", [jd.BackwardEuler(), jd.CrankNicolson()])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_values_equal_the_scan_path(solver, dtype):
    cell = _mixed_cell()
    if dtype == "float32":
        cell = to_float32(cell)
    record = {"soma": cell.probe("v", "soma"), "tips": cell.probe("v", index=[7, 20, 33])}

    def run(amp, record=record):
        stim = [*STIM, jd.stimulus.step(20, amp, 0.0, 1e9)]
        sol = jd.simulate(cell, stim, t1=40.0, dt=0.025, t0=0.0, record=record, record_every=4,
                          solver=solver)
        return {k: sol.recordings[k] for k in ("soma", "tips")}, sol.final_state

    def scan(amp):
        return run(amp, _with_gate(cell, record))

    with jax.enable_x64(dtype == "float64"):  # float32 runs as on a GPU: 64-bit JAX off
        amp = jnp.asarray(0.1, dtype)
        assert _native_in(run, amp) and not _native_in(scan, amp)
        rec, final = jax.jit(run)(amp)
        rec0, final0 = jax.jit(scan)(amp)
    assert rec["soma"].shape == (401, 1) and rec["tips"].shape == (401, 3)
    assert rec["soma"].dtype == np.dtype(dtype)
    assert np.max(rec["soma"]) > 0.0  # it spikes
    tol = 1e-9 if dtype == "float64" else 2e-3  # mV: round-off (a few additions reordered)
    for a, b in zip(jax.tree_util.tree_leaves((rec, final)),
                    jax.tree_util.tree_leaves((rec0, final0))):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=tol)


def test_batch_elements_equal_lone_runs_bit_for_bit():
    """Whole groups of eight cells run side by side, the rest one at a time: either way a
    cell's trace does not depend on the batch it runs in."""
    cell = hh_cell(jd.reduced_pyramidal(), nseg=3)

    def run(scale, amp, record=None):
        c = cell.set("HH.g_na", 0.12 * scale)
        record = record or {"v": c.probe("v", "soma")}
        return jd.simulate(c, jd.stimulus.step(0, amp, 1.0, 1e9), t1=15.0,
                           record=record)["v"][:, 0]

    scale, amp = jnp.linspace(0.8, 1.2, 13), jnp.linspace(0.5, 1.5, 13)
    batch = np.asarray(jax.jit(jax.vmap(run))(scale, amp))
    lone = jax.jit(run)
    for i in (0, 7, 8, 12):  # first group, its last lane, the remainder
        np.testing.assert_array_equal(batch[i], np.asarray(lone(scale[i], amp[i])))
    scan_record = _with_gate(cell, {"v": cell.probe("v", "soma")})
    assert not _native_in(jax.vmap(lambda s, a: run(s, a, scan_record)), scale, amp)
    ref = np.asarray(jax.jit(jax.vmap(lambda s, a: run(s, a, scan_record)))(scale, amp))
    np.testing.assert_allclose(batch, ref, rtol=0, atol=1e-9)
    assert len({int(np.sum(np.diff((b > 0).astype(int)) == 1)) for b in batch}) > 1


@pytest.mark.parametrize("solver", [jd.BackwardEuler(), jd.CrankNicolson()])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_native_reverse_equals_forward_mode(solver, dtype):
    """Reverse mode runs the native reverse run (`jaxdend_hh_run_vjp`); forward mode the scan
    path's JVP. Both give the same gradient with respect to every kind of parameter: channel
    densities and reversals, cm, ra, temperature, v_init, a leak, clamp amplitudes."""
    cell = _mixed_cell()

    def loss(p):
        c = cell.set("HH.g_na", 0.12 * p[0]).set("HH.g_k", 0.036 * p[1]).set("cm", p[2])
        c = c.set("ra", 150.0 * p[3]).set("HH.e_k", -77.0 * p[4]).set("Leak.g", 5e-5 * p[5])
        c = c.set("celsius", 16.3 * p[6]).set("v_init", -65.0 * p[7])
        if dtype == "float32":
            c = to_float32(c)
        stim = [jd.stimulus.step(0, 0.8 * p[8], 2.0, 30.0), *STIM[1:]]
        sol = jd.simulate(c, stim, t1=25.0, dt=0.025, solver=solver, record_every=2,
                          record={"s": c.probe("v", "soma"), "t": c.probe("v", index=[7, 33])})
        m = sol.final_state["channels"][0]["m"]
        return jnp.mean(sol["s"] ** 2) + jnp.mean(sol["t"]) + jnp.sum(m)

    with jax.enable_x64(dtype == "float64"):
        p = jnp.ones(9, dtype)
        assert "jaxdend_hh_run_vjp" in jax.jit(jax.grad(loss)).lower(p).as_text()
        rev = np.asarray(jax.jit(jax.grad(loss))(p))
        fwd = np.asarray(jax.jit(jax.jacfwd(loss))(p))
    assert np.all(np.abs(fwd) > 1e-3)
    # measured: 8e-13 / 4e-13 (float64), 1e-5 / 5e-5 (float32)
    np.testing.assert_allclose(rev, fwd, rtol=1e-10 if dtype == "float64" else 5e-4)


def test_native_reverse_batched_and_value_and_grad():
    """Under vmap (value and gradient per variant, and a gradient of the batch's sum) the
    native reverse gives the forward-mode gradients, and the value equals the forward run."""
    cell = hh_cell(jd.reduced_pyramidal(), nseg=3)

    def loss(g, amp):
        c = cell.set("HH.g_na", g)
        v = jd.simulate(c, jd.stimulus.step(0, amp, 1.0, 1e9), t1=12.0)["v"]
        return jnp.mean(v ** 2)

    g, amp = jnp.linspace(0.1, 0.14, 11), jnp.linspace(0.6, 1.4, 11)
    val, grad = jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=(0, 1))))(g, amp)
    fwd = jax.jit(jax.vmap(jax.jacfwd(loss, argnums=(0, 1))))(g, amp)
    np.testing.assert_allclose(np.asarray(val), np.asarray(jax.jit(jax.vmap(loss))(g, amp)),
                               rtol=1e-14)
    for a, b in zip(grad, fwd):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9)
    total = jax.jit(jax.grad(lambda g: jnp.sum(jax.vmap(loss)(g, amp))))(g)
    np.testing.assert_allclose(np.asarray(total), np.asarray(fwd[0]), rtol=1e-9)
    eps = 1e-6
    fd = (jax.jit(loss)(g[3] + eps, amp[3]) - jax.jit(loss)(g[3] - eps, amp[3])) / (2 * eps)
    np.testing.assert_allclose(float(grad[0][3]), float(fd), rtol=1e-5)


@pytest.mark.parametrize("case", ["rate_table", "gate_probe", "junction_probe", "levels",
                                  "synapses", "ih"])
def test_other_runs_take_the_scan_path(case):
    cell = hh_cell(jd.reduced_pyramidal(), nseg=3)
    kwargs = {}
    if case == "rate_table":
        kwargs["solver"] = jd.BackwardEuler(rate_table=jd.RateTable())
    elif case == "gate_probe":
        kwargs["record"] = cell.probe("HH.m", "soma")
    elif case == "junction_probe":  # zero-area node 16: its voltage is a neighbour average
        kwargs["record"] = cell.probe("v", index=[16])
    elif case == "levels":
        cell = jd.Cell(cell.comps, cm=1.0, ra=100.0, schedule="levels").insert(jd.channels.HH())
    elif case == "synapses":
        cell = cell.add_synapses("ampa", jd.synapses.AMPA(), [3])
    else:
        cell = cell.insert(jd.channels.Ih())
    stim = jd.stimulus.step(0, 1.0, 1.0, 1e9)

    def run(amp):
        return jd.simulate(cell, [stim, jd.stimulus.step(0, amp, 0.0, 1.0)], t1=2.0, **kwargs)

    assert not _native_in(lambda a: run(a).recordings, 0.1)


def test_native_run_reports_nan():
    """A NaN made inside the native run still raises simulate's error."""
    cell = hh_cell(jd.reduced_pyramidal(), nseg=3)
    run = jax.jit(lambda amp: jd.simulate(cell, jd.stimulus.step(0, amp, 1.0, 1e9), t1=2.0)["v"])
    assert _native_in(run, 1.0)
    with pytest.raises(RUNTIME_ERROR, match="NaN or inf"):
        jax.block_until_ready(run(jnp.inf))
