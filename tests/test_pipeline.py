"""The config-driven fit pipeline: validation errors, an end-to-end recovery, held-out
metrics, resume after an interruption, the demo at a small size.

Everything runs on a tiny passive ball-and-stick cell whose "recording" is simulated in the
test (units: ms, mV, nA, S/cm^2, uF/cm^2).
"""

from __future__ import annotations

import json

import equinox as eqx
import jax
import numpy as np
import pytest

import jaxdend as jd
import jaxdend.fit as jf
from jaxdend.io import Recording, load_params, load_prediction
from jaxdend.stimulus import CurrentClamp, Sampled

TRUE = {"Leak.g": 1.5e-4, "cm": 1.3}  # S/cm^2, uF/cm^2 (the start is 1e-4 and 1.0)
AMPS = (-0.1, -0.05, 0.05, 0.1)  # nA


def _synthetic(leak_g=TRUE["Leak.g"], cm=TRUE["cm"], amps=AMPS, t1=60.0) -> Recording:
    """Steps from 10 to 50 ms of a passive ball-and-stick (200 um dendrite, nseg 3), rest
    -70 mV, sampled every 0.1 ms, no noise."""
    comps = jd.discretize(jd.ball_and_stick(dend_length=200.0), nseg=3)
    cell = jd.Cell(comps, cm=cm, ra=100.0, celsius=34.0, v_init=-70.0)
    cell = cell.insert(jd.channels.Leak(g=leak_g, e=-70.0))
    t = np.arange(int(round(t1 / 0.1)) + 1) * 0.1
    i = np.asarray(amps)[:, None] * ((t >= 10.0) & (t < 50.0))[None, :]
    template = Sampled(t, np.zeros_like(t))

    def one(i_k):
        wf = eqx.tree_at(lambda w: w.i, template, i_k)
        return jd.simulate(cell, CurrentClamp(0, wf), t1=float(t[-1]), dt=0.1)["v"][:, 0]

    v = np.asarray(jax.jit(jax.vmap(one))(i))
    return Recording(t, i, v, protocol="steps")


@pytest.fixture(scope="module")
def recording() -> Recording:
    return _synthetic()


def _config(**stage) -> dict:
    st = {"name": "passive", "protocols": ["steps"], "dt": 0.1, "optimizer": "lbfgs",
          "steps": 12, "parameters": {"Leak.g": {"bounds": [1e-5, 1e-3], "log": True},
                                     "cm": {"bounds": [0.3, 3.0], "log": True}},
          "loss": {"voltage": {"weight": 1.0}}}
    st.update(stage)
    return {
        "name": "tiny",
        "recording": {"protocols": {"steps": {"fit": [0, 3], "holdout": "rest"}}},
        "morphology": {"builder": "ball_and_stick", "args": {"dend_length": 200.0}, "nseg": 3},
        "cell": {"cm": 1.0, "ra": 100.0, "celsius": 34.0, "v_init": -70.0},
        "channels": [{"type": "Leak", "g": 1e-4, "e": -70.0}],
        "stage": [st],
        "evaluation": {"dt": 0.1},
        "output": {"plots": False},
    }


def _error(cfg, **kw) -> jf.ConfigError:
    with pytest.raises(jf.ConfigError) as info:
        if kw.pop("deep", False):
            jf.Pipeline(cfg, verbose=False, **kw)
        else:
            jf.load_config(cfg, **kw)
    return info.value


# ------------------------------------------------------------------------------ validation
def test_unknown_keys_are_named_with_a_suggestion():
    cfg = _config()
    cfg["stages"] = cfg.pop("stage")
    err = _error(cfg)
    assert err.key == "stages" and "did you mean 'stage'" in str(err)
    cfg = _config(parameters={"Leak.g": {"bound": [1e-5, 1e-3]}})
    err = _error(cfg)
    assert err.key == 'stage[1].parameters."Leak.g".bound' and "'bounds'" in str(err)
    cfg = _config(loss={"voltage": {"weight": 1.0}, "spike": {"weight": 1.0}})
    assert _error(cfg).key == "stage[1].loss.spike"


def test_missing_file_is_named(tmp_path):
    cfg = _config()
    cfg["recording"]["file"] = "no_such_recording.abf"
    err = _error(cfg, base_dir=tmp_path)
    assert err.key == "recording.file" and "file not found" in err.problem
    assert str(tmp_path) in err.problem and "relative" in err.fix
    with pytest.raises(jf.ConfigError) as info:
        jf.load_config(tmp_path / "missing.toml")
    assert info.value.key == "config"


def test_bad_units_and_values():
    assert "must be > 0 ms" in str(_error(_config(dt=-0.025)))
    assert _error(_config(dt=-0.025)).key == "stage[1].dt"
    assert _error(_config(dt=5.0)).key == "stage[1].dt"  # too coarse for a cable
    cfg = _config()
    cfg["recording"]["protocols"]["steps"]["window"] = [50.0, 10.0]
    assert _error(cfg).key == "recording.protocols.steps.window"
    cfg = _config()
    cfg["cell"]["ra"] = -100.0
    assert _error(cfg).key == "cell.ra"
    err = _error(_config(parameters={"Leak.g": {"bounds": [0.0, 1e-3], "log": True}}))
    assert "lower > 0" in str(err)
    cfg = _config(loss={"features": {"scales": {"spike_count": -1.0}}})
    assert _error(cfg).key == "stage[1].loss.features.scales.spike_count"


def test_bounds_must_contain_the_initial_value(recording):
    # given explicitly: caught by load_config
    err = _error(_config(parameters={"cm": {"bounds": [1.5, 3.0], "init": 1.0}}))
    assert err.key == 'stage[1].parameters.cm.bounds' and "not strictly inside" in err.problem
    # read from the cell (Leak.g = 1e-4 S/cm^2): caught before any compute by Pipeline
    cfg = _config(parameters={"Leak.g": {"bounds": [2e-4, 1e-3], "log": True}})
    err = _error(cfg, deep=True, recordings={"steps": recording})
    assert err.key == 'stage[1].parameters."Leak.g"' and "bounds" in str(err)
    assert "widen the bounds" in err.fix


def test_data_level_checks(recording):
    cfg = _config()
    cfg["recording"]["protocols"]["steps"]["fit"] = [0, 9]
    err = _error(cfg, deep=True, recordings={"steps": recording})
    assert err.key == "recording.protocols.steps.fit" and "9" in err.problem
    cfg = _config()
    cfg["recording"]["protocols"]["steps"]["holdout"] = [1, 3]
    assert _error(cfg).key == "recording.protocols.steps.holdout"  # fitted and held out
    cfg = _config(parameters={"Kv.g_k": {"bounds": [0.01, 0.1]}})
    err = _error(cfg, deep=True, recordings={"steps": recording})
    assert "No channel 'Kv'" in err.problem
    cfg = _config(sweeps={"steps": [1]})  # sweep 1 is held out: a stage may not fit it
    err = _error(cfg, deep=True, recordings={"steps": recording})
    assert err.key == "stage[1].sweeps.steps" and "held-out" in err.fix


def test_channel_values_and_expressions():
    cfg = _config()
    cfg["channels"].append({"type": "Leak", "where": "basal", "g": "1e-4 * (1 + d / 100)"})
    c = jf.load_config(cfg)
    expr = c.channels[1].params["g"]
    np.testing.assert_allclose(expr(np.array([0.0, 50.0, 100.0])), [1e-4, 1.5e-4, 2e-4],
                               rtol=1e-12)
    for bad in ("__import__('os').system('true')", "d.real", "open('x')", "[d]"):
        cfg["channels"][1]["g"] = bad
        assert _error(cfg).key == "channels[2].g"
    cfg["channels"][1] = {"type": "Leak", "gbar": 1e-4}
    err = _error(cfg)
    assert err.key == "channels[2].gbar" and "'g'" in err.fix
    cfg["channels"][1] = {"type": "Lek"}
    assert "did you mean 'Leak'" in str(_error(cfg))


def test_toml_file_with_relative_paths(tmp_path, recording):
    from jaxdend.io import write_npz

    (tmp_path / "data").mkdir()
    write_npz(tmp_path / "data" / "rec.npz", {"steps": recording})
    (tmp_path / "fit.toml").write_text(
        'name = "from_toml"\n[recording]\nfile = "data/rec.npz"\n'
        '[recording.protocols.steps]\nfit = [0, 3]\nholdout = "rest"\n'
        '[morphology]\nbuilder = "ball_and_stick"\nnseg = 3\n'
        '[[channels]]\ntype = "Leak"\n'
        '[[stage]]\nprotocols = ["steps"]\n[stage.parameters]\n'
        '"Leak.g" = {bounds = [1e-5, 1e-3], log = true}\n[stage.loss]\nvoltage = {}\n')
    cfg = jf.load_config(tmp_path / "fit.toml")
    assert cfg.recording.file == (tmp_path / "data" / "rec.npz").resolve()
    assert cfg.recording.format == "npz" and cfg.name == "from_toml"
    assert cfg.stages[0].dt == 0.025 and cfg.cell.v_init == "baseline"  # defaults
    (tmp_path / "bad.toml").write_text("[recording\n")
    with pytest.raises(jf.ConfigError, match="not valid TOML"):
        jf.load_config(tmp_path / "bad.toml")


# ------------------------------------------------------------------------------ metrics
def test_sweep_metrics_hand_made():
    t = np.arange(1000) * 0.1  # ms

    def train(indices, offset=0.0):
        """-70 mV (+ offset) with 0.5 ms spikes to +30 mV (- offset) after samples `indices`:
        each crosses -20 mV half-way between sample k and k + 1 (at t[k] + 0.05 ms)."""
        v = np.full(t.size, -70.0 + offset)
        for k in indices:
            v[k + 1:k + 6] = 30.0 - offset
        return v

    data = train([300, 600])  # spikes at 30.05 and 60.05 ms
    model = train([320, 620, 800], offset=1.0)  # 32.05, 62.05, 80.05 ms; 1 mV above
    m = jf.sweep_metrics(t, data, model, stim_start=20.0, threshold=-20.0, spike_pre=2.0,
                         spike_post=10.0)
    assert m["spikes_data"] == 2 and m["spikes_model"] == 3 and m["spike_count_error"] == 1
    np.testing.assert_allclose(m["latency_data_ms"], 10.05, atol=1e-9)
    np.testing.assert_allclose(m["latency_model_ms"], 12.05, atol=1e-9)
    np.testing.assert_allclose(m["latency_error_ms"], 2.0, atol=1e-9)
    # outside the excluded windows the model is 1 mV above the data everywhere
    np.testing.assert_allclose(m["subthreshold_rmse_mV"], 1.0, rtol=1e-12)
    excluded = np.zeros(t.size, bool)
    for s in (30.05, 32.05, 60.05, 62.05, 80.05):
        excluded |= (t >= s - 2.0) & (t <= s + 10.0)
    assert m["n_subthreshold"] == int((~excluded).sum())
    base = train([])
    # no spikes after the onset in the model: no latency error, counted as missing
    flat = jf.sweep_metrics(t, data, base + 1.0, stim_start=20.0)
    assert flat["latency_model_ms"] is None and flat["latency_error_ms"] is None
    s = jf.summarize_metrics([m, flat])
    assert s["n_sweeps"] == 2 and s["latency_missing"] == 1
    np.testing.assert_allclose(s["abs_spike_count_error"], 1.5)
    np.testing.assert_allclose(s["abs_latency_error_ms"], 2.0, atol=1e-9)


# ------------------------------------------------------------------------------ end to end
def test_run_config_recovers_parameters(tmp_path, recording):
    res = jf.run_config(_config(), out=tmp_path, recordings={"steps": recording},
                        progress=False, verbose=False)
    vals = res.stages[0].values
    np.testing.assert_allclose(vals["Leak.g"]["value"], TRUE["Leak.g"], rtol=1e-3)
    np.testing.assert_allclose(vals["cm"]["value"], TRUE["cm"], rtol=1e-3)
    assert vals["Leak.g"]["unit"] == "S/cm^2" and vals["cm"]["unit"] == "uF/cm^2"
    # held-out sweeps (1, 2) are evaluated and fit well (noise-free data)
    ev = res.evaluation["steps"]
    assert ev["holdout"]["ids"] == [1, 2] and ev["fit"]["ids"] == [0, 3]
    assert ev["holdout"]["summary"]["subthreshold_rmse_mV"] < 0.01
    # files: parameters with units, the fitted cell, predictions with data, the summary
    assert load_params(tmp_path / "params.json")["cm"] == pytest.approx(TRUE["cm"], rel=1e-3)
    pred = load_prediction(tmp_path / "predictions" / "steps.npz")
    np.testing.assert_allclose(pred["data_1"][:, 0], recording.v[1], atol=1e-12)
    row = ev["holdout"]["sweeps"][0]
    again = jf.sweep_metrics(pred.ts, pred["data_1"][:, 0], pred["model_1"][:, 0],
                             stim_start=10.0)
    np.testing.assert_allclose(again["subthreshold_rmse_mV"], row["subthreshold_rmse_mV"])
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["stages"][0]["n_evaluations"] == res.stages[0].fit.n_evaluations
    assert (tmp_path / "fitted_cell.eqx").is_file() and (tmp_path / "fitted_cell.json").is_file()


def test_scale_parameters_keep_profiles(recording):
    """A scale factor multiplies the configured per-node values (a distance profile)."""
    cfg = _config(parameters={"Leak.g": {"scale": True, "bounds": [0.1, 10.0], "log": True}})
    cfg["channels"].append({"type": "Leak", "where": "basal", "g": "1e-4 * (1 + d / 100)"})
    pipe = jf.Pipeline(cfg, recordings={"steps": recording}, verbose=False)
    prob = pipe.stage_problem(0)
    base = np.asarray(pipe.cell.get("Leak.g"))
    model = jf.unwrap(prob.model)
    model = dict(model, scale={k: 2.5 for k in model["scale"]})
    np.testing.assert_allclose(prob.cell(model).get("Leak.g"), 2.5 * base, rtol=1e-12)


def test_balance_leak_makes_v_init_the_rest():
    comps = jd.discretize(jd.ball_and_stick(), nseg=3)
    cell = jd.Cell(comps, celsius=34.0).insert(jd.channels.Leak(g=5e-5, e=-90.0))
    cell = cell.insert(jd.channels.Ih(g_h=3e-4)).insert(jd.channels.MainenKv(g_k=0.01))
    cell = jf.balance_leak(cell, -75.0)
    v = np.asarray(jd.simulate(cell, None, t1=100.0, dt=0.1)["v"][:, 0])
    np.testing.assert_allclose(v, -75.0, atol=1e-9)


def _fake_interrupt(monkeypatch, at_stage: int, after: int):
    """Make the pipeline's `fit` stop stage `at_stage` after `after` steps, then raise."""
    from jaxdend.fit import _pipeline

    real = _pipeline.fit
    calls = {"n": 0}

    def interrupted(loss_fn, model, **kw):
        calls["n"] += 1
        if calls["n"] == at_stage + 1:
            real(loss_fn, model, **dict(kw, steps=after))
            raise KeyboardInterrupt
        return real(loss_fn, model, **kw)

    monkeypatch.setattr(_pipeline, "fit", interrupted)


def test_resume_after_interruption(tmp_path, recording, monkeypatch):
    cfg = _config(optimizer="adam", learning_rate=0.05, steps=4, checkpoint_every=1)
    cfg["stage"].append({"name": "axial", "protocols": ["steps"], "dt": 0.1, "steps": 4,
                         "checkpoint_every": 1, "learning_rate": 0.05,
                         "parameters": {"ra": {"bounds": [30.0, 400.0], "log": True}},
                         "loss": {"voltage": {"weight": 1.0}}})
    cfg["evaluation"]["after_each_stage"] = False  # (fewer compilations: a faster test)
    kw = {"recordings": {"steps": recording}, "progress": False, "verbose": False}
    fresh = jf.run_config(cfg, out=tmp_path / "fresh", **kw)
    with monkeypatch.context() as m:
        _fake_interrupt(m, at_stage=1, after=2)
        with pytest.raises(KeyboardInterrupt):
            jf.run_config(cfg, out=tmp_path / "cut", **kw)
    assert (tmp_path / "cut" / "checkpoints" / "02_axial.ckpt").is_file()
    resumed = jf.run_config(cfg, out=tmp_path / "cut", resume=True, **kw)
    for a, b in zip(fresh.stages, resumed.stages):
        np.testing.assert_allclose(b.fit.history, a.fit.history, rtol=1e-12)
        assert b.fit.n_evaluations == a.fit.n_evaluations
    np.testing.assert_allclose(resumed.cell.get("ra"), fresh.cell.get("ra"), rtol=1e-12)
    # stage 1 ran longer after the fact (--steps): stage 2's checkpoint is stale and restarts
    longer = jf.run_config(cfg, out=tmp_path / "cut", resume=True, steps=6, **kw)
    assert longer.stages[0].fit.steps == 6 and longer.stages[1].fit.steps == 6
    np.testing.assert_allclose(longer.stages[0].fit.history[:4], fresh.stages[0].fit.history,
                               rtol=1e-12)


def test_quick_run_limits_steps_and_sweeps(tmp_path, recording):
    res = jf.run_config(_config(steps=50), out=tmp_path, quick=True,
                        recordings={"steps": recording}, progress=False, verbose=False)
    assert res.stages[0].fit.steps <= 3
    assert res.evaluation["steps"]["holdout"]["summary"]["n_sweeps"] <= 2


def test_simulate_config_writes_traces(tmp_path, recording):
    cfg = _config()
    cfg["output"]["format"] = "nwb"
    out = jf.simulate_config(cfg, out=tmp_path / "rec", recordings={"steps": recording},
                             verbose=False)
    assert out["evaluation"]["steps"]["fit"]["summary"]["n_sweeps"] == 2
    pred = load_prediction(tmp_path / "rec" / "predictions" / "steps.nwb")
    np.testing.assert_allclose(pred["data_3"][:, 0], recording.v[3], rtol=1e-12)
    cfg["output"]["format"] = "npz"
    cfg["stimulus"] = {"t1": 30.0, "dt": 0.1, "clamps": [{"amp": -0.1, "delay": 5.0,
                                                           "dur": 20.0}]}
    out = jf.simulate_config(cfg, out=tmp_path / "stim", verbose=False)
    pred = load_prediction(tmp_path / "stim" / "simulation.npz")
    assert pred["soma"].shape == (301, 1) and pred["soma"][:, 0].min() < -72.0
    np.testing.assert_allclose(pred.stimulus[100], -0.1)


def test_demo_toml_is_the_embedded_demo_config():
    """configs/demo.toml (the commented reference) and `jaxdend demo`'s dict agree."""
    from pathlib import Path

    from jaxdend._demo import demo_config
    from jaxdend.fit._config import toml_module  # tomllib, or tomli on Python 3.10

    tomllib = toml_module()

    path = Path(__file__).parents[1] / "configs" / "demo.toml"
    data = tomllib.loads(path.read_text())
    assert data["recording"].pop("file") == "../demo_output/demo_recording.npz"
    toml = jf.load_config(data)
    embedded = jf.load_config(demo_config())
    for section in ("morphology", "cell", "channels", "stages", "evaluation", "quick"):
        assert getattr(toml, section) == getattr(embedded, section), section
    assert toml.recording.protocols == embedded.recording.protocols
    assert toml.output == embedded.output
