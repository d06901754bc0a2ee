"""Benchmark: fit Tsodyks–Markram short-term plasticity to two real recordings.

1. `bluepyopt_stp_L5TTPC_trace.csv`: somatic voltage of a depressing L5TTPC->L5TTPC
   connection (8 spikes at 20 Hz + a recovery spike); `fit_stp_trace` fits U, tau_rec,
   tau_fac, gmax, synaptic rise/decay, membrane tau_m, resting potential and delay of a
   passive compartment simulated with `jaxdend.simulate`.
2. `bluepyopt_stp_PVBC_amps.csv`: normalised PSC amplitudes of a PV basket cell connection
   at 10, 20 and 40 Hz; `fit_stp_amplitudes` fits U, tau_rec, tau_fac and the first-spike
   amplitude to the three trains jointly (and, for comparison, with tau_fac = 0).

Usage:
    python benchmarks/fit_stp.py [--quick] [--json PATH] [--png PATH]

Prints a table (parameter, value, unit) and R^2 of every fit, writes JSON (default
benchmarks/results/fit_stp.json) and a figure of data vs fit (benchmarks/results/fit_stp.png).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from jaxdend.synapses import fit_stp_amplitudes, fit_stp_trace  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "plasticity"
TRACE = DATA / "bluepyopt_stp_L5TTPC_trace.csv"
AMPS = DATA / "bluepyopt_stp_PVBC_amps.csv"


def load_trace(path: Path = TRACE):
    """Read the L5TTPC trace.

    Args:
        path: the CSV (first line a comment with spike times in s; columns t_s, v_soma_V).

    Returns:
        ``(t, v, spikes)``: sample times (ms), somatic voltage (mV), presynaptic spikes (ms).
    """
    with open(path) as fh:
        first = fh.readline()
    if not first.startswith("#") or ":" not in first:
        raise ValueError(f"{path}: expected a first line '# ... (s): t1 t2 ...', got {first!r}.")
    spikes = 1e3 * np.array(first.split(":", 1)[1].split(), dtype=float)
    d = np.loadtxt(path, delimiter=",", skiprows=2)
    return 1e3 * d[:, 0], 1e3 * d[:, 1], spikes


def load_amplitudes(path: Path = AMPS):
    """Read the PVBC amplitude table.

    Args:
        path: the CSV (columns train_frequency, t_spike_ms, normalized_psc_amplitude).

    Returns:
        Dict train label -> (spike times in ms, normalised amplitudes), in file order.
    """
    trains: dict[str, tuple[list[float], list[float]]] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            t, a = trains.setdefault(row["train_frequency"], ([], []))
            t.append(float(row["t_spike_ms"]))
            a.append(float(row["normalized_psc_amplitude"]))
    return {k: (np.array(t), np.array(a)) for k, (t, a) in trains.items()}


def _print_fit(title, fit, seconds):
    print(f"\n{title}  (R^2 = {fit.r2:.4f}, {seconds:.1f} s, fixed: {list(fit.fixed) or '-'})")
    print(f"| {'parameter':<10} | {'value':>12} | unit |")
    print("|---|---:|---|")
    for name, value, unit in fit.table():
        print(f"| {name:<10} | {value:>12.5g} | {unit} |")


def _row(name, fit, seconds, steps, n_starts):
    return {
        "fit": name, "r2": fit.r2, "params": fit.params, "units": fit.units,
        "fixed": list(fit.fixed), "steps": steps, "n_starts": n_starts,
        "start_losses": list(fit.start_losses), "seconds": seconds,
        "final_loss": float(fit.loss_history[-1]),
    }


def _plot(path, t, v, spikes, trace_fit, trains, amp_fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 7))
    ax = fig.add_subplot(2, 1, 1)
    ax.plot(t, v, color="0.5", lw=1, label="L5TTPC data")
    ax.plot(t, trace_fit.prediction, color="C3", lw=1.2,
            label=f"jaxdend TM fit (R$^2$ = {trace_fit.r2:.3f})")
    ax.plot(spikes, np.full(spikes.shape, v.max() + 0.1), "|k", ms=8, label="presynaptic spikes")
    ax.set(xlabel="time (ms)", ylabel="soma voltage (mV)")
    ax.legend(loc="upper right", fontsize=8)
    for i, (label, (ts, amps)) in enumerate(trains.items()):
        ax = fig.add_subplot(2, len(trains), len(trains) + i + 1)
        ax.plot(ts, amps, "o", color="0.4", label="PVBC data")
        ax.plot(ts, amp_fit.prediction[i], "x", color="C0", ms=8, label="TM fit")
        ax.set(title=f"{label} (R$^2$ all trains = {amp_fit.r2:.3f})", xlabel="spike time (ms)",
               ylabel="normalised PSC" if i == 0 else None, ylim=(0, 1.15))
        if i == 0:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    """Run both fits, print tables, write JSON and the PNG.

    Args:
        argv: command-line arguments (default sys.argv).

    Returns:
        Process exit code (0 on success).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer Adam steps (< 1 min)")
    parser.add_argument("--json", default=str(HERE / "results" / "fit_stp.json"))
    parser.add_argument("--png", default=str(HERE / "results" / "fit_stp.png"))
    args = parser.parse_args(argv)
    for path in (TRACE, AMPS):
        if not path.exists():
            print(f"error: {path} not found (expected ../shared/data)", file=sys.stderr)
            return 1
    trace_steps, trace_starts = (60, 1) if args.quick else (400, 2)
    amp_steps, amp_starts = (300, 2) if args.quick else (2000, 8)
    rows = []

    t, v, spikes = load_trace()
    t0 = time.perf_counter()
    trace_fit = fit_stp_trace(t, v, spikes, steps=trace_steps, n_starts=trace_starts)
    sec = time.perf_counter() - t0
    _print_fit("L5TTPC trace (fit_stp_trace)", trace_fit, sec)
    rows.append(_row("L5TTPC_trace", trace_fit, sec, trace_steps, trace_starts))

    trains = load_amplitudes()
    ts = [x[0] for x in trains.values()]
    amps = [x[1] for x in trains.values()]
    t0 = time.perf_counter()
    amp_fit = fit_stp_amplitudes(ts, amps, steps=amp_steps, n_starts=amp_starts)
    sec = time.perf_counter() - t0
    _print_fit(f"PVBC amplitudes {list(trains)} (fit_stp_amplitudes)", amp_fit, sec)
    rows.append(_row("PVBC_amplitudes", amp_fit, sec, amp_steps, amp_starts))
    t0 = time.perf_counter()
    dep_fit = fit_stp_amplitudes(ts, amps, steps=amp_steps, n_starts=amp_starts,
                                 fixed={"tau_fac": 0.0})
    sec = time.perf_counter() - t0
    _print_fit("PVBC amplitudes, depression only (tau_fac = 0)", dep_fit, sec)
    rows.append(_row("PVBC_amplitudes_depression_only", dep_fit, sec, amp_steps, amp_starts))

    print(f"\nR^2 (trace) = {trace_fit.r2:.4f}   R^2 (amplitudes) = {amp_fit.r2:.4f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")
    _plot(Path(args.png), t, v, spikes, trace_fit, trains, amp_fit)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
