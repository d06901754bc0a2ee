"""Pairing (STDP) protocols of slice experiments as spike times, and their predicted outcome.

Units: times ms (periods between trains in the data: s), frequencies Hz; EPSP ratios and
efficacies dimensionless.

A protocol (one row of a table such as the plastyfire paired recordings, Chindemi et al.
2022) pairs a presynaptic spike with a postsynaptic spike `delay` ms later
(``delay = t_post - t_pre``: > 0 pre before post, the causal order of Markram et al. 1997
and Sjöström et al. 2001), `n_pairings` times at `frequency` Hz per train, in `n_trains`
trains started every `period` s. The measured outcome is the ratio of the EPSP amplitude
after to before the protocol (mean +- SEM over `n` cells).

The predicted ratio uses the two-state reading of Graupner & Brunel (2012): a fraction
`beta` of synapses start in the UP state (efficacy rho = 1), the others DOWN (rho = 0); the
weights of the states are w0 (DOWN) and w1 = b w0 (UP). Each state is replayed (one synapse
each, same spikes) to the end of the protocol, and
``ratio = (1 + (b - 1) <rho_end>) / (1 + (b - 1) beta)`` with
``<rho_end> = beta rho_end(UP) + (1 - beta) rho_end(DOWN)``: the deterministic counterpart
of their transition-probability formula (rho is read at the end of the protocol, not after
relaxation to the attractors, which keeps it differentiable).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._base import AbstractRule
from ._replay import ReplayDrive, replay, replay_drive, stack_drives

#: Columns a protocol row needs (units: Hz, ms, count, count, s).
PROTOCOL_COLUMNS = ("protocol_id", "frequency_train", "dt_train", "n_stimuli_train",
                    "n_sweep", "period_sweep")


@dataclasses.dataclass(frozen=True)
class PairingProtocol:
    """One pre/post pairing protocol and its measured outcome.

    Attributes:
        protocol_id: name of the protocol.
        frequency: pairing frequency within a train, Hz.
        delay: postsynaptic minus presynaptic spike time of each pairing, ms.
        n_pairings: pairings per train.
        n_trains: number of trains.
        period: time from the start of one train to the next, s.
        ratio: mean EPSP ratio after/before (None if not measured).
        sem: its standard error of the mean (None if not measured).
        n: number of cells (None if unknown).
        reference: source of the data.
    """

    protocol_id: str
    frequency: float
    delay: float
    n_pairings: int
    n_trains: int
    period: float
    ratio: float | None = None
    sem: float | None = None
    n: int | None = None
    reference: str = ""

    def __post_init__(self):
        name = self.protocol_id
        for field, val in (("frequency", self.frequency), ("period", self.period)):
            if not (math.isfinite(val) and val > 0):
                raise ValueError(f"Protocol {name!r}: {field} must be > 0, got {val!r}; fix "
                                 "the row.")
        if not math.isfinite(self.delay):
            raise ValueError(f"Protocol {name!r}: delay must be finite (ms), got {self.delay}.")
        for field, val in (("n_pairings", self.n_pairings), ("n_trains", self.n_trains)):
            if int(val) != val or val < 1:
                raise ValueError(f"Protocol {name!r}: {field} must be a whole number >= 1, got "
                                 f"{val!r}; fix the row.")
        if self.n_pairings > 1 and (self.n_pairings - 1) * 1000.0 / self.frequency + abs(
                self.delay) >= 1000.0 * self.period:
            raise ValueError(
                f"Protocol {name!r}: a train of {self.n_pairings} pairings at "
                f"{self.frequency:g} Hz does not fit in the period of {self.period:g} s; check "
                "frequency_train, n_stimuli_train and period_sweep."
            )
        if self.ratio is not None and not (math.isfinite(self.ratio) and self.ratio > 0):
            raise ValueError(f"Protocol {name!r}: EPSP ratio must be > 0, got {self.ratio}.")
        if self.sem is not None and not (math.isfinite(self.sem) and self.sem > 0):
            raise ValueError(f"Protocol {name!r}: SEM must be > 0, got {self.sem}; a zero or "
                             "negative error cannot weight a fit.")

    @property
    def duration(self) -> float:
        """Time from the first to the last spike of the protocol, ms."""
        span = (self.n_trains - 1) * 1000.0 * self.period
        return span + (self.n_pairings - 1) * 1000.0 / self.frequency + abs(self.delay)


def _number(row, col, name, kind=float, required=True):
    raw = row.get(col)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if not required:
            return None
        raise ValueError(f"Protocol {name!r}: column {col!r} is missing or empty; every "
                         f"protocol needs {', '.join(PROTOCOL_COLUMNS)}.")
    try:
        val = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"Protocol {name!r}: column {col!r} = {raw!r} is not a number.") from None
    if math.isnan(val):
        if not required:
            return None
        raise ValueError(f"Protocol {name!r}: column {col!r} is NaN; fill it in.")
    if kind is int:
        if val != int(val):
            raise ValueError(f"Protocol {name!r}: column {col!r} = {raw!r} must be a whole "
                             "number.")
        return int(val)
    return val


def pairing_protocol(row: Mapping) -> PairingProtocol:
    """A `PairingProtocol` from one table row (plastyfire column names), checked.

    Args:
        row: mapping with protocol_id, frequency_train (Hz), dt_train (ms, t_post - t_pre),
            n_stimuli_train, n_sweep, period_sweep (s) and optionally mean_epsp_ratio,
            sem_epsp_ratio, sample_size, reference.

    Returns:
        The protocol. Raises ValueError naming the column for missing, non-numeric or
        out-of-range values.
    """
    if not isinstance(row, Mapping):
        raise TypeError(f"A protocol row must be a mapping column -> value, got {type(row)}.")
    name = str(row.get("protocol_id") or "?")
    if name == "?":
        raise ValueError("Protocol row without protocol_id; give every row a name.")
    return PairingProtocol(
        protocol_id=name,
        frequency=_number(row, "frequency_train", name),
        delay=_number(row, "dt_train", name),
        n_pairings=_number(row, "n_stimuli_train", name, int),
        n_trains=_number(row, "n_sweep", name, int),
        period=_number(row, "period_sweep", name),
        ratio=_number(row, "mean_epsp_ratio", name, required=False),
        sem=_number(row, "sem_epsp_ratio", name, required=False),
        n=_number(row, "sample_size", name, int, required=False),
        reference=str(row.get("reference") or ""),
    )


def read_pairing_protocols(path) -> list[PairingProtocol]:
    """All protocols of a CSV file with the plastyfire columns (see `pairing_protocol`).

    Args:
        path: CSV file (e.g. shared/data/plasticity/plastyfire_paired_recordings.csv).

    Returns:
        List of `PairingProtocol`, in file order.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No protocol table at {p}; give the path of the CSV file.")
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in PROTOCOL_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{p.name} lacks the column(s) {missing}; a protocol table needs "
                             f"{list(PROTOCOL_COLUMNS)}.")
        return [pairing_protocol(row) for row in reader]


def pairing_spikes(protocol: PairingProtocol, start: float = 100.0):
    """Presynaptic and postsynaptic spike times of a protocol, ms.

    Pairing j of train k has its presynaptic spike at
    ``start + max(0, -delay) + 1000 (k period + j / frequency)`` and its postsynaptic spike
    `delay` ms later, so the earliest spike is at `start`.

    Args:
        protocol: a `PairingProtocol`.
        start: time of the first spike, ms (>= 0).

    Returns:
        (pre, post): two increasing 1-D arrays of n_trains x n_pairings times, ms.
    """
    if not isinstance(protocol, PairingProtocol):
        raise TypeError("pairing_spikes needs a PairingProtocol (pairing_protocol(row)).")
    if not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be >= 0 ms, got {start!r}.")
    k = np.arange(protocol.n_trains)[:, None]
    j = np.arange(protocol.n_pairings)[None, :]
    pre = (start + max(0.0, -protocol.delay)
           + 1000.0 * (k * protocol.period + j / protocol.frequency)).ravel()
    return pre, pre + protocol.delay


def pairing_drive(protocol: PairingProtocol, dt: float = 0.5, *, start: float = 100.0,
                  tail: float = 500.0, settle: float = 150.0, max_step: float = 500.0,
                  n_syn: int = 2) -> ReplayDrive:
    """A merged `ReplayDrive` of one protocol: `n_syn` synapses with the same spikes.

    Ordinary steps of `dt` ms run from every spike until `settle` ms after it (cover the
    calcium transient: several tau_ca); silent stretches are steps of at most `max_step` ms.
    The replay ends `tail` ms after the last spike (one record, at the end).

    Args:
        protocol: a `PairingProtocol`.
        dt: time step, ms.
        start: first spike time, ms. tail: time after the last spike, ms.
        settle: ordinary steps after each spike, ms. max_step: longest merged step, ms.
        n_syn: synapses (e.g. 2: one starting DOWN, one UP).

    Returns:
        `ReplayDrive` (stack several with `pairing_drives`).
    """
    pre, post = pairing_spikes(protocol, start)
    t_last = float(max(pre[-1], post[-1]))
    n_steps = math.ceil((t_last + tail) / dt)
    pre_times = np.repeat(pre[None, :], n_syn, axis=0)
    return replay_drive(pre_times, n_steps * dt, dt, post_times=post, merge_silence=True,
                        settle=settle, max_step=max_step)


def pairing_drives(protocols: Sequence[PairingProtocol], dt: float = 0.5, **kwargs) -> ReplayDrive:
    """Stacked drives of several protocols (leading protocol axis), for `pairing_ratio`.

    Args:
        protocols: the protocols.
        dt: time step, ms.
        **kwargs: start, tail, settle, max_step, n_syn of `pairing_drive`.

    Returns:
        A stacked `ReplayDrive`.
    """
    return stack_drives([pairing_drive(p, dt, **kwargs) for p in protocols])


def two_state_ratio(rho_down, rho_up, beta, b):
    """EPSP ratio after/before of a population of two-state synapses.

    Args:
        rho_down, rho_up: efficacy at the end of the protocol of synapses that started
            DOWN (rho 0) and UP (rho 1).
        beta: fraction of synapses initially UP (0..1).
        b: weight ratio UP / DOWN (> 1).

    Returns:
        ``(1 + (b - 1) <rho_end>) / (1 + (b - 1) beta)`` with
        ``<rho_end> = beta rho_up + (1 - beta) rho_down``.
    """
    mean = beta * rho_up + (1.0 - beta) * rho_down
    return (1.0 + (b - 1.0) * mean) / (1.0 + (b - 1.0) * beta)


def pairing_ratio(rule: AbstractRule, drives: ReplayDrive, beta, b, *,
                  checkpoint: bool | str = "nested"):
    """Predicted EPSP ratio of every protocol of stacked `drives` (vmapped replay).

    Each protocol is replayed for two synapses, one starting at the rule's ``w_min`` (DOWN,
    rho = 0) and one at ``w_max`` (UP, rho = 1); their end efficacies give the ratio by
    `two_state_ratio`. Differentiable in the rule's parameters, beta and b.

    Args:
        rule: a rule whose weight maps to an efficacy (e.g. `GraupnerBrunel`).
        drives: stacked drives with 2 synapses (`pairing_drives`).
        beta: fraction initially UP. b: UP / DOWN weight ratio.
        checkpoint: memory policy of `replay`.

    Returns:
        (n_protocols,) predicted ratios.
    """
    if not isinstance(drives, ReplayDrive) or drives.pre_step.ndim != 3:
        raise ValueError("pairing_ratio needs stacked drives (pairing_drives(protocols)).")
    if drives.n_syn != 2:
        raise ValueError("pairing_ratio needs drives with n_syn=2 (one DOWN, one UP synapse).")
    lo, hi = rule.w_min, rule.w_max
    w0 = jnp.stack([jnp.asarray(lo, float), jnp.asarray(hi, float)])

    def one(d):
        return replay(rule, w0, d, checkpoint=checkpoint).w_final

    w = eqx.filter_vmap(one)(drives)
    rho = (w - lo) / (hi - lo)
    return two_state_ratio(rho[:, 0], rho[:, 1], beta, b)
