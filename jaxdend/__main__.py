"""Command line: ``python -m jaxdend demo`` (or the ``jaxdend`` script)."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    """Entry point of the ``jaxdend`` command."""
    parser = argparse.ArgumentParser(
        prog="jaxdend",
        description="Differentiable biophysical neurons with dendrites (JAX).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="build a reduced pyramidal cell, simulate a current step, fit soma Na/K and "
        "leak conductances from a perturbed start, print a summary and write a plot",
    )
    demo.add_argument("--out", default="demo_output", help="folder for demo.png and summary.json")
    demo.add_argument("--fit-steps", type=int, default=200, help="number of Adam steps")
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    if args.command == "demo":
        from ._demo import run_demo

        summary = run_demo(args.out, fit_steps=args.fit_steps)
        with open(f"{args.out}/summary.json", "w") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
