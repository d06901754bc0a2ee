"""The `jaxdend` command line: help texts, exit codes, fit/simulate/demo on tiny inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from test_pipeline import _synthetic

from jaxdend.__main__ import main
from jaxdend.io import write_npz

TOML = """\
name = "cli"
[recording]
file = "rec.npz"
[recording.protocols.steps]
fit = [0, 3]
holdout = "rest"
[morphology]
builder = "ball_and_stick"
args = {dend_length = 200.0}
nseg = 3
[cell]
v_init = -70.0
[[channels]]
type = "Leak"
g = 1e-4
[[stage]]
protocols = ["steps"]
dt = 0.1
steps = 4
optimizer = "lbfgs"
[stage.parameters]
"Leak.g" = {bounds = [1e-5, 1e-3], log = true}
[stage.loss]
voltage = {weight = 1.0}
[evaluation]
dt = 0.1
[output]
plots = false
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    write_npz(folder / "rec.npz", {"steps": _synthetic()})
    path = folder / "fit.toml"
    path.write_text(TOML)
    return path


def test_help_texts(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for word in ("fit", "simulate", "demo", "examples:", "jaxdend fit", "ms, mV, nA"):
        assert word in text
    with pytest.raises(SystemExit) as info:
        main(["fit", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for word in ("CONFIG.toml", "--out", "--resume", "--steps", "--quick", "example:",
                 "held-out"):
        assert word in text


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["fit", "x.toml", "--steps", "many"])
    assert info.value.code == 2


def test_bad_config_exits_2_with_one_paragraph(config, tmp_path, capsys):
    bad = config.parent / "bad.toml"  # next to rec.npz
    bad.write_text(TOML.replace("dt = 0.1\nsteps", "dt = -0.1\nsteps"))
    assert main(["fit", str(bad)]) == 2
    raw = capsys.readouterr().err
    err = " ".join(raw.split())  # the paragraph is wrapped at 100 characters
    assert "stage[1].dt" in err and "must be > 0 ms" in err and "Fix:" in err
    assert "Traceback" not in raw and "\n\n" not in raw.strip()
    assert main(["fit", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in " ".join(capsys.readouterr().err.split())  # wrapped paragraph
    bad.write_text(TOML.replace("[[stage]]", "[[stage]]\nlearning_rat = 0.1"))
    assert main(["fit", str(bad)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "learning_rat" in err and "did you mean 'learning_rate'" in err
    bad.write_text(TOML.replace('file = "rec.npz"', 'file = "nothere.npz"'))
    assert main(["simulate", str(bad)]) == 2
    assert "recording.file" in " ".join(capsys.readouterr().err.split())


def test_fit_quick_then_resume_and_simulate(config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", str(config), "--out", str(out), "--quick", "--no-progress"]) == 0
    first = json.loads((out / "result.json").read_text())
    assert first["quick"] and first["stages"][0]["steps"] <= 3
    assert main(["fit", str(config), "--out", str(out), "--resume", "--steps", "4",
                 "--no-progress"]) == 0
    again = json.loads((out / "result.json").read_text())
    assert again["stages"][0]["steps"] == 4
    assert again["stages"][0]["history"][:len(first["stages"][0]["history"])] == \
        pytest.approx(first["stages"][0]["history"], rel=1e-12)
    text = capsys.readouterr().out
    assert "held-out" in text and "subthreshold RMSE mV" in text
    sim = tmp_path / "sim"
    assert main(["simulate", str(config), "--out", str(sim), "--cell",
                 str(out / "fitted_cell.eqx")]) == 0
    summary = json.loads((sim / "simulation.json").read_text())
    rmse = summary["evaluation"]["steps"]["holdout"]["summary"]["subthreshold_rmse_mV"]
    assert np.isfinite(rmse) and rmse < 1.0  # the fitted cell, not the initial one


def test_python_m_jaxdend_runs():
    proc = subprocess.run([sys.executable, "-m", "jaxdend", "fit", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--resume" in proc.stdout


def test_demo_command_small(tmp_path, capsys):
    """`jaxdend demo` at a small size: the embedded fit runs through the pipeline."""
    from jaxdend._demo import DEMO_FITTED

    assert main(["demo", "--small", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "recovered vs true parameters" in text and "| Leak.g |" in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "result.json").is_file() and summary["small"]
    assert set(summary["fit"]) == set(DEMO_FITTED)
    for name, row in summary["fit"].items():
        assert row["true"] == DEMO_FITTED[name][0] and np.isfinite(row["fitted"])
    # three L-BFGS steps already move the leak and the capacitance towards the truth
    for name in ("Leak.g", "cm"):
        start_err = abs(DEMO_FITTED[name][1] / DEMO_FITTED[name][0] - 1)
        assert abs(summary["fit"][name]["error_percent"]) / 100 < start_err


@pytest.mark.slow
def test_demo_full_size_recovers_parameters(tmp_path):
    """`make demo` at full size (about 75 s): every fitted parameter within 5 % of the truth
    from a start 30-60 % off, and the held-out spiking step reproduced."""
    from jaxdend._demo import run_demo

    summary = run_demo(out=tmp_path, verbose=False)
    for name, row in summary["fit"].items():
        assert abs(row["error_percent"]) < 5.0, (name, row)
    held = summary["evaluation"]["holdout_summary"]
    assert held["subthreshold_rmse_mV"] < 0.3  # the 0.2 mV noise
    assert held["abs_spike_count_error"] == 0
