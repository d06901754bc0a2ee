"""Command line: ``jaxdend fit``, ``jaxdend simulate``, ``jaxdend demo`` (or ``python -m jaxdend``).

Exit codes: 0 success; 2 a bad command line or configuration (a one-paragraph message that
names the key, no traceback); 1 a fit that failed (e.g. the loss became NaN; the last good
checkpoint is kept and ``--resume`` continues from it).
"""

from __future__ import annotations

import argparse
import sys
import textwrap

_EXAMPLES = """\
examples:
  jaxdend demo                                    fit a built-in cell, no files needed
  jaxdend fit configs/pyabf_171116sh_0018.toml    fit a recording as configured
  jaxdend fit my_cell.toml --quick                a smoke run (3 steps, 2 sweeps)
  jaxdend fit my_cell.toml --out run1 --resume    continue an interrupted fit
  jaxdend simulate my_cell.toml --cell run1/fitted_cell.eqx
                                                  the fitted cell against every sweep

A configuration (TOML) names the recording, the morphology, the channels and the fitting
stages; every key, with its unit, is documented in `jaxdend.fit.load_config` and in the
commented examples in configs/. Units: ms, mV, nA, um, S/cm^2, uF/cm^2, Ohm cm, degC.
"""

_FIT_HELP = """\
Fit a cell to a recording as a TOML configuration describes it: read the recording
([recording]), build the cell ([morphology], [cell], [[channels]]), run every [[stage]] in
order (each from the previous stage's values), evaluate on the held-out sweeps after each
stage and at the end (subthreshold voltage RMSE in mV, spike-count error, first-spike
latency error in ms), and write to the output folder: params.json (fitted values with
units), fitted_cell.eqx/.json, predictions/ (model and data traces), plots/ and
result.json. Checkpoints are kept in DIR/checkpoints, so an interrupted fit continues with
--resume.
"""

_FIT_EXAMPLE = """\
example:
  jaxdend fit configs/pyabf_171116sh_0018.toml --out fit_0018
  jaxdend fit configs/pyabf_171116sh_0018.toml --out fit_0018 --resume --steps 200

a minimal configuration (fit the leak of a ball-and-stick to two sweeps, hold one out):
  [recording]
  file = "cell.abf"                       # relative to the .toml file
  [recording.protocols.steps]
  fit = [0, 2]                            # sweep ids
  holdout = [1]
  [morphology]
  builder = "ball_and_stick"
  [[channels]]
  type = "Leak"
  [[stage]]
  protocols = ["steps"]
  [stage.parameters]
  "Leak.g" = {bounds = [1e-5, 1e-3], log = true}   # S/cm^2
  [stage.loss]
  voltage = {weight = 1.0}                # mean squared error, mV^2
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxdend",
        description="jaxdend: differentiable biophysical neurons with dendrites (JAX). Fit a "
        "cell model to a current-clamp recording from a configuration file, simulate it, or "
        "run the built-in demo.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = sub.add_parser(
        "fit", help="fit a cell to a recording as configured in a TOML file",
        description=_FIT_HELP, epilog=_FIT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("config", metavar="CONFIG.toml", help="the fit configuration")
    fit.add_argument("--out", metavar="DIR", help="output folder (default: [output] folder "
                     "of the configuration, relative to the current folder)")
    fit.add_argument("--resume", action="store_true",
                     help="continue from the checkpoints in DIR/checkpoints (finished stages "
                     "are kept, an interrupted one continues)")
    fit.add_argument("--steps", type=int, metavar="N",
                     help="optimiser steps of every stage (overrides the configuration)")
    fit.add_argument("--quick", action="store_true",
                     help="a smoke run: the [quick] settings (default 3 steps per stage and at "
                     "most 2 fit and 2 held-out sweeps per protocol)")
    fit.add_argument("--no-progress", action="store_true", help="no progress bars")

    sim = sub.add_parser(
        "simulate", help="simulate the configured cell (under the recording's sweeps, or a "
        "[stimulus] section) and write traces and plots",
        description="Simulate the configured cell: with a [stimulus] section its current "
        "clamps at the soma; otherwise every fit and held-out sweep of the recording, compared "
        "with the data (same metrics as a fit's evaluation). Writes traces (npz/NWB), plots "
        "and simulation.json.",
        epilog="example:\n  jaxdend simulate configs/pyabf_171116sh_0018.toml --cell "
        "fit_0018/fitted_cell.eqx --out sim_0018\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("config", metavar="CONFIG.toml", help="the configuration")
    sim.add_argument("--out", metavar="DIR",
                     help="output folder (default: [output] folder + '_simulation')")
    sim.add_argument("--cell", metavar="FILE.eqx",
                     help="a fitted cell (fitted_cell.eqx of a fit of this configuration) "
                     "instead of the configured initial values")
    sim.add_argument("--dt", type=float, metavar="MS", help="simulation step in ms")

    demo = sub.add_parser(
        "demo", help="fit a built-in reduced pyramidal cell to its own simulated recording "
        "(no files needed; a few minutes on 2 cores)",
        description="A known cell (reduced pyramidal, Pospischil channels) generates a "
        "recording of current steps in memory; the fit pipeline recovers its leak, capacitance "
        "and somatic Na/K densities from a perturbed start, evaluates held-out steps, prints "
        "recovered vs true values and writes plots, predictions and JSON.",
    )
    demo.add_argument("--out", default="demo_output", metavar="DIR",
                      help="output folder (default demo_output)")
    demo.add_argument("--fit-steps", type=int, metavar="N",
                      help="optimiser steps of each stage (default 15 L-BFGS, 120 Adam)")
    demo.add_argument("--small", action="store_true", help="short sweeps and 3 steps (a test)")
    return parser


def _config_message(command: str, config: str | None, err) -> str:
    where = f" in {config}" if config else ""
    text = f"jaxdend {command}: configuration error{where}: {err}"
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def main(argv=None) -> int:
    """Entry point of the ``jaxdend`` command; returns the exit code (see the module doc)."""
    parser = _parser()
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    from .fit import ConfigError, FitError

    config = getattr(args, "config", None)
    try:
        if args.command == "demo":
            from ._demo import run_demo

            if args.fit_steps is not None and args.fit_steps < 1:
                raise ConfigError("--fit-steps", f"must be >= 1, got {args.fit_steps}.",
                                  "pass e.g. --fit-steps 30.")
            run_demo(args.out, fit_steps=args.fit_steps, small=args.small)
        elif args.command == "fit":
            from .fit import run_config

            run_config(args.config, out=args.out, resume=args.resume, steps=args.steps,
                       quick=args.quick, progress=not args.no_progress)
        else:
            from .fit import simulate_config

            simulate_config(args.config, out=args.out, cell=args.cell, dt=args.dt)
    except ConfigError as err:
        print(_config_message(args.command, config, err), file=sys.stderr)
        return 2
    except FitError as err:
        msg = str(err).split("\nOriginal error:")[0]
        print(textwrap.fill(f"jaxdend {args.command}: the fit failed: {msg}", width=100,
                            break_long_words=False), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
