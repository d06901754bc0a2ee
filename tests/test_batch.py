"""jaxdend.batch on one device: sweeps, lists of cells/stimuli, chunking, features, dtypes.

Multi-device sharding is tested in tests/test_sharding.py (4 forced CPU devices, own process).
"""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _helpers import RUNTIME_ERROR, hh_cell, scan_path_record, tree_allclose

import jaxdend as jd
from jaxdend import batch
from jaxdend import fit as jf
from jaxdend.synapses import AMPA, Input, SpikeTrains

T1 = 20.0


@pytest.fixture(scope="module")
def cell():
    return hh_cell(jd.y_cell(), nseg=3)


def _stim(p):
    return jd.stimulus.step(0, p["stim.amp"], 2.0, 15.0)


def _direct(cell, t1=T1, **kw):
    return np.asarray(jd.simulate(cell, t1=t1, **kw)["v"])


# ----------------------------------------------------------------------------- sweep
def test_grid_sweep_matches_single_runs(cell):
    g_na = np.array([0.08, 0.12, 0.16])
    amps = np.array([0.0, 0.4, 0.9])
    res = batch.sweep(cell, {"HH.g_na": g_na, "stim.amp": amps}, _stim, t1=T1,
                      where={"HH.g_na": "soma"}, grid=True,
                      features={"n": batch.count_spikes(), "rate": batch.firing_rate((2.0, 17.0))})
    assert res.dims == ("HH.g_na", "stim.amp") and res.shape == (3, 3)
    assert res["v"].shape == (3, 3, round(T1 / 0.025) + 1, 1)
    np.testing.assert_allclose(res.ts, np.arange(801) * 0.025, atol=1e-12)
    assert res.units["HH.g_na"] == "S/cm^2"
    assert res.params["HH.g_na"].shape == (3, 3)
    assert np.all(res.params["stim.amp"][1] == amps)
    for i, j in [(0, 0), (1, 2), (2, 1)]:
        c = cell.set("HH.g_na", g_na[i], where="soma")
        v = _direct(c, stimulus=jd.stimulus.step(0, amps[j], 2.0, 15.0))
        np.testing.assert_allclose(res["v"][i, j], v, atol=1e-9)  # mV
        n_ref = jd.features.spike_times(res.ts, v[:, 0]).size
        assert res["n"][i, j] == n_ref
        assert res["rate"][i, j] == pytest.approx(n_ref / 0.015)  # Hz over 15 ms
    assert res["n"][:, 0].max() == 0 and res["n"][:, 2].min() >= 1
    assert "HH.g_na=3" in repr(res)


def test_zipped_sweep_per_node_values_and_errors(cell):
    n = cell.n
    cm = np.stack([np.full(n, 1.0), np.full(n, 2.0)])  # (variants, nodes) uF/cm^2
    res = batch.sweep(cell, {"cm": cm, "stim.amp": np.array([0.5, 0.5])}, _stim, t1=T1,
                      record={"v": cell.probe("v", index=[0, 5])})
    assert res.dims == ("variant",) and res["v"].shape == (2, 801, 2)
    v = _direct(cell.set("cm", 2.0), stimulus=jd.stimulus.step(0, 0.5, 2.0, 15.0),
                record={"v": cell.probe("v", index=[0, 5])})
    np.testing.assert_allclose(res["v"][1], v, atol=1e-9)
    with pytest.raises(ValueError, match="equal lengths"):
        batch.sweep(cell, {"HH.g_na": [0.1, 0.2], "stim.amp": [0.1, 0.2, 0.3]}, _stim)
    with pytest.raises(ValueError, match="not a cell parameter.*'stim.'"):
        batch.sweep(cell, {"HH.gna": [0.1, 0.2]}, _stim)
    with pytest.raises(ValueError, match="stimulus is not a function"):
        batch.sweep(cell, {"stim.amp": [0.1]}, jd.stimulus.step(0, 0.1))
    with pytest.raises(ValueError, match="single value"):
        batch.sweep(cell, {"HH.g_na": 0.1})
    with pytest.raises(ValueError, match="NaN"):
        batch.sweep(cell, {"HH.g_na": [0.1, np.nan]})
    with pytest.raises(ValueError, match=r"params\['cm'\].*shape"):
        batch.sweep(cell, {"cm": np.ones((2, 3))})
    with pytest.raises(ValueError, match="batch_size"):
        batch.sweep(cell, {"HH.g_na": [0.1]}, batch_size=0)
    with pytest.raises(ValueError, match="where names"):
        batch.sweep(cell, {"HH.g_na": [0.1]}, where={"HH.g_k": "soma"})


def test_chunks_compile_once_and_equal_one_chunk(cell):
    traces = []

    def stim(p):
        traces.append(1)  # runs only while JAX traces (compiles) the chunk
        return jd.stimulus.step(0, p["stim.amp"], 2.0, 15.0)

    amps = np.linspace(0.0, 1.0, 7)
    kw = dict(t1=T1, features={"n": batch.count_spikes()})
    chunked = batch.sweep(cell, {"stim.amp": amps}, stim, batch_size=3, **kw)  # 3 chunks
    assert len(traces) == 1
    again = batch.sweep(cell, {"stim.amp": amps[::-1]}, stim, batch_size=3, **kw)
    assert len(traces) == 1  # same shapes: the compiled chunk is reused
    np.testing.assert_array_equal(again["n"], chunked["n"][::-1])
    whole = batch.sweep(cell, {"stim.amp": amps}, stim, **kw)
    assert tree_allclose(whole.recordings, chunked.recordings, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(whole["n"], chunked["n"])
    lean = batch.sweep(cell, {"stim.amp": amps}, stim, batch_size=3, keep_traces=False, **kw)
    assert lean.recordings == {} and np.array_equal(lean["n"], chunked["n"])
    # groups of 2 variants mapped one after another (lax.map) instead of one wide vmap
    narrow = batch.sweep(cell, {"stim.amp": amps}, stim, vmap_width=2, **kw)
    assert tree_allclose(narrow.recordings, whole.recordings, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="vmap_width"):
        batch.sweep(cell, {"stim.amp": amps}, stim, vmap_width=0)


def test_auto_vmap_width_rule_on_cpu(monkeypatch):
    """With the native CPU tree solve: one vmap over a device's block in groups of at most
    6,000 nodes (cells of one native run: whole multiples of eight variants). With the XLA
    solve: groups of ~256 nodes' worth, one vmap once the block holds >= 20,000 nodes of
    cells of up to 512 nodes (measured faster, batch/_sweep.py)."""
    from jaxdend.batch import _sweep
    from jaxdend.batch._sweep import _auto_width

    mesh = batch.batch_mesh(1)
    monkeypatch.setattr(_sweep._native, "available", lambda: True)
    assert _auto_width("auto", mesh, 50, 10) is None
    assert _auto_width("auto", mesh, 50, 120) is None  # 6,000 nodes
    assert _auto_width("auto", mesh, 50, 121) == 120  # groups of <= 6,000 nodes
    assert _auto_width("auto", mesh, 50, 10_000) == 120
    assert _auto_width("auto", mesh, 1080, 5) is None
    assert _auto_width("auto", mesh, 1080, 100) == 5
    assert _auto_width("auto", mesh, 1953, 100) == 3
    assert _auto_width("auto", mesh, 600_000, 3) == 1
    # cells of one native run (HH and leaks): whole multiples of eight, at least eight
    assert _auto_width("auto", mesh, 50, 10_000, native_run=True) == 120
    assert _auto_width("auto", mesh, 50, 100, native_run=True) is None
    assert _auto_width("auto", mesh, 1080, 100, native_run=True) == 8
    assert _auto_width("auto", mesh, 1080, 8, native_run=True) is None
    assert _auto_width("auto", mesh, 700, 100, native_run=True) == 8
    assert _auto_width("auto", mesh, 40, 10_000, native_run=True) == 144
    monkeypatch.setattr(_sweep._native, "available", lambda: False)
    assert _auto_width("auto", mesh, 1080, 100, native_run=True) == 1  # no native code
    assert _auto_width("auto", mesh, 50, 10) == 5
    assert _auto_width("auto", mesh, 50, 399) == 5
    assert _auto_width("auto", mesh, 50, 400) is None  # 20,000 nodes
    assert _auto_width("auto", mesh, 50, 2000) is None
    assert _auto_width("auto", mesh, 50, 10_000) == 2000  # groups of <= 100,000 nodes
    assert _auto_width("auto", mesh, 284, 100) is None
    assert _auto_width("auto", mesh, 284, 50) == 1
    assert _auto_width("auto", mesh, 1080, 100) == 1  # large cells: one at a time
    assert _auto_width("auto", mesh, 1080, 10_000) == 1
    assert _auto_width(7, mesh, 50, 1000) == 7 and _auto_width(None, mesh, 50, 4) is None


def test_spike_train_inputs_and_apply(cell):
    nodes = cell.select("all")[:4]
    syn = cell.add_synapses("ampa", AMPA(), nodes, gmax=3.0)  # nS
    key = jax.random.key(1)
    trains = np.stack([np.asarray(jd.synapses.poisson(k, 40.0, 4, T1, max_spikes=6).times)
                       for k in jax.random.split(key, 3)])  # (variants, syn, spikes) ms
    res = batch.sweep(syn, {"stim.trains": trains, "ampa.gmax": np.array([1.0, 2.0, 3.0])},
                      lambda p: Input("ampa", SpikeTrains(p["stim.trains"])), t1=T1)
    assert res.units["ampa.gmax"] == "nS"
    for i in range(3):
        v = _direct(syn.set("ampa.gmax", float(i + 1)),
                    stimulus=Input("ampa", SpikeTrains(trains[i])))
        np.testing.assert_allclose(res["v"][i], v, atol=1e-9)
    # apply: an edit by eqx.tree_at under a name that is not a cell parameter
    res2 = batch.sweep(cell, {"scale": np.array([0.5, 1.0])},
                       apply=lambda c, p: eqx.tree_at(lambda c: c.ra, c, c.ra * p["scale"]),
                       stimulus=jd.stimulus.step(0, 0.5, 2.0, 15.0), t1=T1)
    v = _direct(cell.set("ra", cell.get("ra") * 0.5),
                stimulus=jd.stimulus.step(0, 0.5, 2.0, 15.0))
    np.testing.assert_allclose(res2["v"][0], v, atol=1e-9)


def test_simulate_batch_cells_and_stimuli(cell):
    cells = [cell.set("HH.g_k", g) for g in (0.03, 0.036, 0.045)]  # S/cm^2
    t = np.linspace(0.0, T1, 41)
    stims = [jd.stimulus.sampled(0, t, a * np.sin(t / 3.0) ** 2) for a in (0.3, 0.6, 0.9)]
    zipped = batch.simulate_batch(cells, stims, t1=T1)
    grid = batch.simulate_batch(cells, stims, t1=T1, grid=True)
    assert zipped.dims == ("variant",) and grid.dims == ("cell", "stimulus")
    assert grid["v"].shape == (3, 3, 801, 1)
    for i, j in [(0, 0), (2, 1)]:
        v = _direct(cells[i], stimulus=stims[j])
        np.testing.assert_allclose(grid["v"][i, j], v, atol=1e-9)
    np.testing.assert_allclose(zipped["v"][2], grid["v"][2, 2], atol=1e-12)
    only_cells = batch.simulate_batch(cells, stimulus=stims[0], t1=T1)
    np.testing.assert_allclose(only_cells["v"][1], grid["v"][1, 0], atol=1e-12)
    other = hh_cell(jd.y_cell(), nseg=3)  # equal geometry, but another Compartments object
    with pytest.raises(ValueError, match="different structure"):
        batch.simulate_batch([cell, other], t1=T1)
    with pytest.raises(ValueError, match="3 cells but 2 stimuli"):
        batch.simulate_batch(cells, stims[:2], t1=T1)
    with pytest.raises(TypeError, match="one stimulus per variant"):
        batch.simulate_batch(cell, jd.stimulus.step(0, 0.1), t1=T1)


def test_spike_trains_of_different_lengths_are_padded(cell):
    syn = cell.add_synapses("ampa", AMPA(), cell.select("all")[:2], gmax=2.0)
    a = Input("ampa", [[2.0, 5.0, 9.0], [4.0]])
    b = Input("ampa", [[3.0], [6.0]])
    res = batch.simulate_batch(syn, [a, b], t1=T1)
    np.testing.assert_allclose(res["v"][1], _direct(syn, stimulus=b), atol=1e-9)
    np.testing.assert_allclose(res["v"][0], _direct(syn, stimulus=a), atol=1e-9)


def test_to_xarray(cell):
    xr = pytest.importorskip("xarray")
    res = batch.sweep(cell, {"HH.g_na": [0.1, 0.12], "stim.amp": [0.2, 0.5, 0.8]}, _stim,
                      t1=5.0, grid=True, features={"n": batch.count_spikes()})
    ds = res.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds["v"].dims == ("HH.g_na", "stim.amp", "time", "v_node")
    assert float(ds["HH.g_na"][1]) == 0.12


# ----------------------------------------------------------------------------- primitives
def test_sharded_vmap_gradients_equal_per_variant(cell):
    def run(c, g):
        return jd.simulate(c.set("HH.g_na", g), jd.stimulus.step(0, 0.5, 2.0, 10.0),
                           t1=12.0)["v"][:, 0]

    g = jnp.array([0.1, 0.12, 0.14])
    vf = batch.sharded_vmap(run, in_axes=(None, 0))

    @eqx.filter_jit
    def total(g):
        return jnp.sum(jnp.mean(vf(cell, g) ** 2, axis=1))

    grads = jax.grad(total)(g)
    single = [jax.grad(lambda x: jnp.mean(run(cell, x) ** 2))(x) for x in g]
    np.testing.assert_allclose(grads, np.asarray(single), rtol=1e-10)
    with pytest.raises(ValueError, match="different leading sizes"):
        batch.sharded_vmap(lambda a, b: a + b)(jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match="devices=9"):
        batch.batch_mesh(9)
    padded, n = batch.pad_batch({"a": np.arange(5.0)}, 4)
    assert n == 5 and padded["a"].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    info = batch.init_distributed(num_processes=1)
    assert info["process_count"] == 1 and info["global_devices"] >= 1


def test_fit_starts_equals_fit(cell):
    stim = jd.stimulus.step(0, 0.5, 2.0, 10.0)
    target = jd.simulate(cell, stim, t1=12.0)["v"][:, 0]
    model = jf.parametrize(cell, {"HH.g_na": jf.Bounded(0.05, 0.3, log=True, where="soma"),
                                  "HH.g_l": jf.Positive()})

    def loss(c):
        return jf.voltage_mse(jd.simulate(c, stim, t1=12.0)["v"][:, 0], target)

    ref = jf.fit(loss, model, optimizer=optax.adam(0.05), steps=3, starts=3, progress=False)
    got = batch.fit_starts(loss, model, optimizer=optax.adam(0.05), steps=3, starts=3)
    np.testing.assert_allclose(got.history, ref.history, rtol=1e-12)
    np.testing.assert_allclose(got.losses, ref.losses, rtol=1e-12)
    assert got.best_start == ref.best_start and got.best_step == ref.best_step
    assert tree_allclose(got.concrete(), ref.concrete(), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="starts must be"):
        batch.fit_starts(loss, model, starts=0)


# ----------------------------------------------------------------------------- precision
def test_float32_sweep_close_to_float64():
    """float32 stays within 0.1 mV of float64 (reduced pyramidal cell, HH, spiking)."""
    cell = hh_cell(jd.reduced_pyramidal())
    kw = dict(t1=40.0, grid=True)
    params = {"HH.g_na": [0.1, 0.12], "stim.amp": [0.3, 0.8]}
    stim = lambda p: jd.stimulus.step(0, p["stim.amp"], 2.0, 30.0)  # noqa: E731
    r64 = batch.sweep(cell, params, stim, **kw)
    r32 = batch.sweep(cell, params, stim, dtype="float32", **kw)
    assert r32["v"].dtype == np.float32 and r64["v"].dtype == np.float64
    dev = np.abs(r32["v"].astype(float) - r64["v"])
    assert dev.max() < 0.1, dev.max()  # mV
    assert r64["v"].max() > 0  # it spiked
    again = batch.sweep(cell, params, stim, **kw)  # float64 after float32 stays float64
    np.testing.assert_array_equal(again["v"], r64["v"])


def test_float32_unstable_variant_raises(cell):
    """An explicit solver with far too large steps in float32: a clear error, never NaN."""
    with pytest.raises(RUNTIME_ERROR, match="time step is too large"):
        batch.sweep(cell, {"stim.amp": [0.1, 0.5]},
                    lambda p: jd.stimulus.step(0, p["stim.amp"]), t1=20.0, dt=0.5,
                    solver=dfx.Euler(), dtype="float32")
    nan_stim = lambda p: jd.stimulus.step(0, jnp.where(p["stim.amp"] > 0.4, jnp.nan,  # noqa
                                                       p["stim.amp"]), 2.0, 15.0)
    with pytest.raises(RUNTIME_ERROR, match="current-clamp value .* is NaN"):
        batch.sweep(cell, {"stim.amp": [0.1, 0.5]}, nan_stim, t1=T1, keep_traces=False)


# ----------------------------------------------------------------------------- memory
def test_nested_checkpoint_memory_grows_sublinearly(cell):
    """XLA working memory of value-and-grad: per-step ~ n, nested ~ sqrt(n)."""

    def temp(t1, checkpoint):
        def loss(g):
            # the scan path (HH cells recording only voltages take their gradients from the
            # native reverse run, O(sqrt(n)) whatever `checkpoint`)
            sol = jd.simulate(cell.set("HH.g_na", g), jd.stimulus.step(0, 0.5, 2.0, 1e9),
                              t1=t1, checkpoint=checkpoint, record_every=10,
                              record=scan_path_record(cell))
            return jnp.mean(sol["v"] ** 2)

        compiled = jax.jit(jax.value_and_grad(loss)).lower(0.12).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    short, long = temp(40.0, "nested"), temp(640.0, "nested")  # 1,600 vs 25,600 steps
    per_short, per_long = temp(40.0, True), temp(640.0, True)
    assert long / short < 6.0, (short, long)  # sqrt(16) = 4; linear would be 16
    assert per_long / per_short > 12.0, (per_short, per_long)  # linear: 16
    assert per_long > 10 * long, (per_long, long)
