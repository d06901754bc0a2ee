"""Fit configurations: the TOML schema, its validation and defaults.

A configuration says which recording to fit, which cell to build, and what to fit in which
order. `load_config` reads a TOML file (or takes a dict of the same shape), checks every key
and value, fills in the defaults and returns a `FitConfig`; `jaxdend.fit.run_config` runs it.
Every error is a `ConfigError` that names the key (e.g. ``stage[2].parameters."Leak.g".bounds``)
and says how to fix it. Commented examples: ``configs/*.toml`` in the repository.

Units: time ms, voltage mV, current nA, length um, conductance density S/cm^2, capacitance
uF/cm^2, axial resistivity Ohm cm, temperature degC, resistance MOhm. All times in the
configuration (windows, step times, loss windows) are on the recording's own time axis (ms
from the start of a sweep, before any cropping). Relative paths of input files are relative
to the folder of the configuration file (for a dict: to `base_dir`, default the current
folder); the output folder is relative to the current folder.

Schema (``key = default``; "required" keys have none)::

    name = "<file stem>"       # label of the fit (output names)
    seed = 0                   # PRNG seed of multi-start fits

    [recording]
    file = required            # recording file (not needed when recordings are passed in memory)
    format = "<from suffix>"   # "abf" | "nwb" | "npz" (jaxdend's) | "sscx" (SSCx npz layout)
    ljp = 0.0                  # mV, liquid-junction potential subtracted: V = V_file - ljp
    subtract_holding = true    # inject the current minus each sweep's pre-step holding current
    resample_dt = none         # ms; resample every sweep to this step first (none: keep)
    spike_threshold = -20.0    # mV; spikes are upward crossings (data and model)

    [recording.protocols.<key>]   # one table per protocol (sweeps with common timing)
    protocol = "<key>"         # protocol name in the file (abf: ignored, one protocol)
    window = [0, <end>]        # ms; part of each sweep that is simulated and compared
    step = "<detected>"        # [on, off] ms of the current step (default: detected)
    fit = []                   # sweeps fitted: a list of sweep ids, "all", or a table
                               #   {ids = [...]}, {positions = [...]} (0-based), or
                               #   {amplitude = [lo, hi]} (nA, step amplitude, inclusive)
    holdout = []               # sweeps held out for evaluation: as `fit`, or "rest" (every
                               #   sweep not in `fit`); never overlaps `fit`

    [morphology]               # `file` or `builder`, not both
    file = none                # .swc / .asc / .h5 reconstruction
    builder = none             # "ball_and_stick" | "y_cell" | "reduced_pyramidal" | "binary_tree"
    args = {}                  # builder arguments (um, degrees), e.g. {dend_length = 700.0}
    axon = "keep"              # "keep" | "stub" (first axon section only) | "remove"
    d_lambda = 0.1             # NEURON's d_lambda rule (fraction of the AC length constant),
    freq = 100.0               #   at this frequency (Hz); or instead of d_lambda:
    nseg = none                # segments per section (the soma keeps 1), or
    max_length = none          # um: per section the fewest odd nseg with segments <= this;
                               #   or by SWC region: {all = 100.0, axon = 20.0}

    [cell]
    cm = 1.0                   # uF/cm^2: a number, an expression of d, or a table by region
                               #   {all = 1.0, basal = 2.0, apical = 2.0} (applied in order)
    ra = 100.0                 # Ohm cm (same forms)
    celsius = 34.0             # degC
    v_init = "baseline"        # mV, or "baseline": each sweep starts at its own measured
                               #   pre-step potential (mean over the window before the step)
    balance_leak = true        # set Leak.e per node so that v_init is the resting state

    [[channels]]               # one table per insertion, applied in order
    type = required            # a class of jaxdend.channels: "Leak", "HH", "MainenNa", "Ih", ...
    where = "all"              # region: "soma", "axon", "basal", "apical", a subregion, a list
                               #   of them, or {region = "axon", distance = [0.0, 60.0]} (um)
    <param> = <value>          # any parameter of the channel (S/cm^2, mV, ...): a number or an
                               #   expression of the path distance d (um), e.g.
                               #   "0.025 * exp(-d / 200)"; allowed: numbers, d, + - * / **,
                               #   comparisons (true = 1), exp, log, sqrt, abs, minimum,
                               #   maximum, pi. Nothing else is evaluated.

    [[stage]]                  # one or more, run in order; each starts from the fitted
                               #   values of the previous one
    name = "stage<k>"
    protocols = required       # protocol keys whose `fit` sweeps this stage fits
    sweeps = {}                # optional subsets per protocol key: {IV = [265, 267]} or
                               #   {IV = {amplitude = [-0.3, 0.0]}}; only `fit` sweeps
    dt = 0.025                 # ms, simulation step
    rate_table = false         # jaxdend.RateTable for channels that support it (faster)
    grad_memory = "step"       # "step" (recompute each step), "nested" (sqrt memory, long
                               #   sweeps) or "store" (keep everything)
    optimizer = "adam"         # "adam" | "lbfgs"
    learning_rate = 0.05       # Adam step in the unconstrained parameters (lbfgs: line search)
    steps = 100                # optimiser steps
    starts = 1                 # random starts run together (the first: the initial values)
    patience = none            # stop after this many steps without improvement
    target_loss = none         # stop once the loss is <= this
    checkpoint_every = 10      # steps between checkpoints

    [stage.parameters]         # what to fit: name -> table (or a list of tables, one per
                               #   region); names as in Cell.set: "cm", "ra", "celsius",
                               #   "Channel.param" ("Leak.g", "MainenNa.vshift", ...)
    "<name>" = {bounds = [lo, hi], log = false, where = <region>, per_node = false,
                scale = false, init = none, label = none}
        # bounds: open interval in the parameter's unit (or of the factor, with scale);
        # log: interpolate in log space (lo > 0); where: nodes fitted (default: where the
        # channel is inserted; "all" for cm/ra), one tied value unless per_node = true;
        # scale = true: fit one dimensionless factor multiplying the current per-node values
        # in `where` (keeps a distance profile or a region ratio); init: starting value
        # (factor for scale, default 1); label: name in reports. {positive = true} instead
        # of bounds: unbounded above, > 0 (exp transform).

    [stage.loss]               # weighted sum, averaged over the stage's sweeps
    voltage = {weight = 1.0, window = <protocol window>, exclude_spikes = false}
        # mean squared voltage error (mV^2) in the window (ms); exclude_spikes masks the
        # [spike - spike_pre, spike + spike_post] intervals of the data's spikes
    spikes = {weight = 1.0, tau = 5.0, window = <protocol window>}
        # van Rossum distance of spike times (dimensionless), kernel tau (ms)
    features = {weight = 1.0, scales = {<feature> = <scale>, ...}}
        # squared z-scores of features in the step window; scales in the feature's unit:
        # spike_count (1), first_spike_latency (ms), ap_amplitude (mV), ap_half_width (ms),
        # ahp_depth (mV), input_resistance (MOhm), membrane_time_constant (ms), sag_ratio (1)

    [evaluation]               # on the held-out sweeps after every stage and at the end
    spike_pre = 2.0            # ms before a spike left out of the subthreshold RMSE
    spike_post = 10.0          # ms after a spike left out of the subthreshold RMSE
    dt = none                  # ms, simulation step (default: the last stage's dt)
    after_each_stage = true

    [output]
    folder = "<name>_fit"      # relative to the current folder (CLI: --out)
    format = "npz"             # predictions: "npz" | "nwb"
    plots = true               # PNG plots (needs matplotlib)
    save_cell = true           # fitted cell (save_cell: .eqx + .json)

    [quick]                    # what `--quick` changes (a smoke run)
    steps = 3                  # at most this many steps per stage, one start
    max_sweeps = 2             # at most this many fit and held-out sweeps per protocol
    morphology = {}            # keys merged into [morphology], e.g. {max_length = 200.0}

    [stimulus]                 # `jaxdend simulate` without a recording
    t1 = required              # ms
    dt = 0.025                 # ms
    clamps = required          # list of {type = "step", amp, delay, dur} (nA, ms) or
                               #   {type = "ramp", amp0, amp1, delay, dur}, at the soma
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def toml_module():
    """The TOML reader: `tomllib` (Python >= 3.11) or `tomli` (Python 3.10)."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10
        import tomli
    except ModuleNotFoundError:  # pragma: no cover
        raise ConfigError("config", "reading TOML files on Python 3.10 needs the tomli "
                          "package.", "pip install tomli (or use Python >= 3.11).") from None
    return tomli  # pragma: no cover


class ConfigError(ValueError):
    """A bad configuration: names the key, the problem and the fix.

    Attributes:
        key: dotted key path, e.g. ``stage[1].parameters."Leak.g".bounds``.
        problem: what is wrong.
        fix: what to do about it.
    """

    def __init__(self, key: str, problem: str, fix: str = ""):
        self.key, self.problem, self.fix = key, problem, fix
        msg = f"{key}: {problem}" + (f" Fix: {fix}" if fix else "")
        super().__init__(msg)


# ------------------------------------------------------------------------------ constants
FORMATS = ("abf", "nwb", "npz", "sscx")
BUILDERS = ("ball_and_stick", "y_cell", "reduced_pyramidal", "binary_tree")
AXON_MODES = ("keep", "stub", "remove")
OPTIMIZERS = ("adam", "lbfgs")
GRAD_MEMORY = {"step": True, "nested": "nested", "store": False}
#: Features usable in ``[stage.loss] features`` and their units.
FEATURE_UNITS = {
    "spike_count": "1", "first_spike_latency": "ms", "ap_amplitude": "mV",
    "ap_half_width": "ms", "ahp_depth": "mV", "input_resistance": "MOhm",
    "membrane_time_constant": "ms", "sag_ratio": "1",
}
_FUNCTIONS = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
              "minimum": np.minimum, "maximum": np.maximum}
_CONSTANTS = {"pi": math.pi}


# ------------------------------------------------------------------------------ expressions
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
           ast.Div: np.divide, ast.Pow: np.power}
_CMPOPS = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater,
           ast.GtE: np.greater_equal}


class Expression:
    """A parameter value as a safe arithmetic expression of the path distance ``d`` (um).

    Parsed with `ast` and evaluated by walking the tree: only numbers, the name ``d``, the
    constant ``pi``, ``+ - * / **``, comparisons ``< <= > >=`` (true = 1), and the functions
    exp, log, sqrt, abs, minimum, maximum are accepted; anything else (attributes, other
    names, subscripts, lambdas ...) is refused when the configuration is read. No ``eval``.

    Attributes:
        text: the expression as written.
    """

    def __init__(self, text: str, key: str):
        """Parse `text`; ConfigError at `key` if it is not a safe expression of d."""
        self.text = text
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as err:
            raise ConfigError(key, f"{text!r} is not a valid expression ({err.msg}).",
                              "write an arithmetic expression of d (um), e.g. "
                              "\"0.02 * exp(-d / 200)\".") from None
        self._tree = tree.body
        self._check(self._tree, key)

    def _check(self, node, key):
        ok = (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
              and not isinstance(node.value, bool))
        if ok:
            return
        if isinstance(node, ast.Name):
            if node.id == "d" or node.id in _CONSTANTS:
                return
            raise ConfigError(key, f"unknown name {node.id!r} in {self.text!r}.",
                              "use d (path distance from the soma, um), pi, and the functions "
                              f"{', '.join(_FUNCTIONS)}.")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            self._check(node.left, key)
            self._check(node.right, key)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            self._check(node.operand, key)
            return
        if (isinstance(node, ast.Compare) and len(node.ops) == 1
                and type(node.ops[0]) in _CMPOPS):
            self._check(node.left, key)
            self._check(node.comparators[0], key)
            return
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in _FUNCTIONS and not node.keywords):
            for a in node.args:
                self._check(a, key)
            return
        raise ConfigError(key, f"{self.text!r} contains {type(node).__name__}, which is not "
                          "allowed in a parameter expression.",
                          "use numbers, d, + - * / **, comparisons and "
                          f"{', '.join(_FUNCTIONS)}.")

    def __call__(self, d) -> np.ndarray:
        """Value at path distances `d` (um), one per node."""
        d = np.asarray(d, dtype=float)
        with np.errstate(all="ignore"):
            out = np.broadcast_to(np.asarray(self._eval(self._tree, d), dtype=float), d.shape)
        return np.array(out)

    def _eval(self, node, d):
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return d if node.id == "d" else _CONSTANTS[node.id]
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self._eval(node.left, d), self._eval(node.right, d))
        if isinstance(node, ast.UnaryOp):
            x = self._eval(node.operand, d)
            return -x if isinstance(node.op, ast.USub) else x
        if isinstance(node, ast.Compare):
            return _CMPOPS[type(node.ops[0])](self._eval(node.left, d),
                                             self._eval(node.comparators[0], d)).astype(float)
        return _FUNCTIONS[node.func.id](*(self._eval(a, d) for a in node.args))

    def __repr__(self):
        return f"Expression({self.text!r})"


# ------------------------------------------------------------------------------ specs
@dataclasses.dataclass(frozen=True)
class Where:
    """A node selection: region names (None = every node) and an optional distance range.

    Attributes:
        regions: tuple of region/subregion names, or None for all nodes.
        distance: (lo, hi) path distance from the soma in um (inclusive), or None.
    """

    regions: tuple[str, ...] | None = None
    distance: tuple[float, float] | None = None

    def label(self) -> str:
        """Short text for reports, e.g. "axon 0-60um"."""
        txt = "all" if self.regions is None else "+".join(self.regions)
        if self.distance is not None:
            txt += f" {self.distance[0]:g}-{self.distance[1]:g}um"
        return txt

    def mask(self, comps) -> np.ndarray:
        """Boolean mask of the selected nodes of `comps` (ValueError for unknown regions)."""
        m = comps.mask("all" if self.regions is None else list(self.regions))
        if self.distance is not None:
            lo, hi = self.distance
            m = m & (np.asarray(comps.distance) >= lo) & (np.asarray(comps.distance) <= hi)
        return np.asarray(m, bool)


@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
    """``[recording.protocols.<key>]``: one protocol and its fit / held-out sweeps.

    Attributes:
        key: the table name (used by stages and in outputs).
        protocol: protocol name in the file.
        window: (t0, t1) ms on the file's time axis, or None (whole sweep).
        step: (on, off) ms of the current step, or None (detected).
        fit, holdout: sweep selections: ("ids", ids), ("positions", ...), ("amplitude",
            (lo, hi) nA), ("all",) or ("rest",); ("ids", ()) selects nothing.
    """

    key: str
    protocol: str
    window: tuple[float, float] | None
    step: tuple[float, float] | None
    fit: tuple
    holdout: tuple


@dataclasses.dataclass(frozen=True)
class RecordingSpec:
    """``[recording]`` (units: ljp mV, resample_dt ms, spike_threshold mV)."""

    file: Path | None
    format: str | None
    ljp: float
    subtract_holding: bool
    resample_dt: float | None
    spike_threshold: float
    protocols: dict[str, ProtocolSpec]


@dataclasses.dataclass(frozen=True)
class MorphologySpec:
    """``[morphology]`` (lengths um, freq Hz)."""

    file: Path | None
    builder: str | None
    args: dict
    axon: str
    d_lambda: float | None
    freq: float
    nseg: int | None
    max_length: float | dict | None


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """``[cell]``: cm uF/cm^2, ra Ohm cm (number, Expression or region dict), celsius degC,
    v_init mV or "baseline", balance_leak."""

    cm: Any
    ra: Any
    celsius: float
    v_init: float | str
    balance_leak: bool


@dataclasses.dataclass(frozen=True)
class ChannelSpec:
    """``[[channels]]``: a channel class name, where, parameter values (number or Expression)."""

    type: str
    where: Where
    params: dict


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One fitted parameter of a stage.

    Attributes:
        name: Cell parameter name ("cm", "Leak.g", ...).
        key: config key for messages.
        bounds: (lo, hi) in the parameter's unit (or of the factor with `scale`), or None
            for `positive`.
        log: log-space interpolation.
        positive: exp transform (no bounds).
        where: selection, or None (the parameter's default nodes).
        per_node: one value per selected node.
        scale: fit a dimensionless factor on the current values.
        init: starting value (the factor for `scale`), or None (the current value; 1).
        label: report name, or None (derived).
    """

    name: str
    key: str
    bounds: tuple[float, float] | None
    log: bool
    positive: bool
    where: Where | None
    per_node: bool
    scale: bool
    init: float | None
    label: str | None

    def report_name(self) -> str:
        """Name in reports, e.g. "MainenNa.g_na[soma]" or "Leak.g[all] (scale)"."""
        if self.label:
            return self.label
        where = "" if self.where is None else f"[{self.where.label()}]"
        return f"{self.name}{where}" + (" (scale)" if self.scale else "")


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """``[stage.loss]``: each term a dict of its options (weight, window ms, ...) or None."""

    voltage: dict | None
    spikes: dict | None
    features: dict | None


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """``[[stage]]`` (dt ms; see the module docstring for every key)."""

    index: int
    name: str
    protocols: tuple[str, ...]
    sweeps: dict
    dt: float
    rate_table: bool
    grad_memory: str
    optimizer: str
    learning_rate: float | None
    steps: int
    starts: int
    patience: int | None
    target_loss: float | None
    checkpoint_every: int
    parameters: tuple[ParamSpec, ...]
    loss: LossSpec

    @property
    def key(self) -> str:
        """Config key of this stage, e.g. "stage[2]"."""
        return f"stage[{self.index + 1}]"


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """``[evaluation]`` (spike_pre, spike_post, dt in ms)."""

    spike_pre: float
    spike_post: float
    dt: float | None
    after_each_stage: bool


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """``[output]``."""

    folder: Path
    format: str
    plots: bool
    save_cell: bool


@dataclasses.dataclass(frozen=True)
class QuickSpec:
    """``[quick]``: what a quick (smoke) run changes."""

    steps: int
    max_sweeps: int
    morphology: dict


@dataclasses.dataclass(frozen=True)
class StimulusSpec:
    """``[stimulus]`` for `jaxdend simulate` (t1, dt ms; clamps: dicts, nA and ms)."""

    t1: float
    dt: float
    clamps: tuple[dict, ...]


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """A validated fit configuration (see the module docstring for the schema and units).

    Build with `load_config`. ``with_quick()`` and ``with_steps(n)`` return modified copies
    (what the command line's ``--quick`` and ``--steps`` do).

    Attributes:
        name: label of the fit.
        seed: PRNG seed.
        base_dir: folder that relative input paths were resolved against.
        recording, morphology, cell, channels, stages, evaluation, output, quick, stimulus:
            the sections (`stimulus` may be None; `recording` is None and `stages` empty
            only for a simulation-only configuration with a [stimulus] section).
        raw: the configuration as a plain dict (after defaults), for the result JSON.
    """

    name: str
    seed: int
    base_dir: Path
    recording: RecordingSpec | None
    morphology: MorphologySpec
    cell: CellSpec
    channels: tuple[ChannelSpec, ...]
    stages: tuple[StageSpec, ...]
    evaluation: EvaluationSpec
    output: OutputSpec
    quick: QuickSpec
    stimulus: StimulusSpec | None
    raw: dict

    def with_steps(self, steps: int) -> FitConfig:
        """A copy with every stage running `steps` optimiser steps (>= 1)."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError("--steps", f"must be an integer >= 1, got {steps!r}.",
                              "pass e.g. --steps 20.")
        stages = tuple(dataclasses.replace(s, steps=steps) for s in self.stages)
        return dataclasses.replace(self, stages=stages)

    def with_quick(self) -> FitConfig:
        """A copy for a smoke run: at most ``quick.steps`` steps and one start per stage,
        ``[quick] morphology`` merged into [morphology] (sweep limits are applied when the
        recording is read: ``quick.max_sweeps``)."""
        q = self.quick
        stages = tuple(dataclasses.replace(s, steps=min(s.steps, q.steps), starts=1,
                                           patience=None) for s in self.stages)
        morph = self.morphology
        if q.morphology:
            raw = dict(self.raw["morphology"])
            if any(k in q.morphology for k in ("d_lambda", "nseg", "max_length")):
                for k in ("d_lambda", "nseg", "max_length"):
                    raw.pop(k, None)
            raw.update(q.morphology)
            morph = _morphology(raw, self.base_dir, "quick.morphology")
        return dataclasses.replace(self, stages=stages, morphology=morph)


# ------------------------------------------------------------------------------ reading
class _Table:
    """Reads the keys of one table, remembering which were used (for unknown-key errors)."""

    def __init__(self, data, key: str):
        if not isinstance(data, Mapping):
            raise ConfigError(key, f"must be a table, got {type(data).__name__} {data!r}.",
                              f"write it as [{key}] or {key} = {{...}}.")
        self.data, self.key, self.used = data, key, set()

    def k(self, name: str) -> str:
        """Full key of entry `name`."""
        quoted = name if name.replace("_", "").isalnum() else f'"{name}"'
        return f"{self.key}.{quoted}" if self.key else quoted

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, default=None, *, required: bool = False, hint: str = ""):
        self.used.add(name)
        if name not in self.data:
            if required:
                self.missing(name, hint or f"add {name} = ... to [{self.key or 'top level'}].")
            return default
        return self.data[name]

    def missing(self, name: str, hint: str, problem: str = "is required but missing."):
        """Raise for a missing key, or for the misspelt key that was meant instead."""
        others = [k for k in self.data if isinstance(k, str) and k not in self.used]
        close = difflib.get_close_matches(name, others, n=1, cutoff=0.75)
        if close:
            raise ConfigError(self.k(close[0]), "is not a known key.",
                              f"did you mean {name!r}? ({self.k(name)} {problem.rstrip('.')})")
        raise ConfigError(self.k(name), problem, hint)

    def number(self, name, default=None, *, required=False, positive=False, nonneg=False,
               unit="", hint=""):
        val = self.get(name, default, required=required, hint=hint)
        if val is None:
            return None
        return _number(val, self.k(name), positive=positive, nonneg=nonneg, unit=unit)

    def integer(self, name, default=None, *, lo=1):
        val = self.get(name, default)
        if val is None:
            return None
        if isinstance(val, bool) or not isinstance(val, int) or val < lo:
            raise ConfigError(self.k(name), f"must be an integer >= {lo}, got {val!r}.",
                              f"write e.g. {name} = {max(lo, 10)}.")
        return int(val)

    def boolean(self, name, default):
        val = self.get(name, default)
        if not isinstance(val, bool):
            raise ConfigError(self.k(name), f"must be true or false, got {val!r}.",
                              f"write {name} = true or {name} = false.")
        return val

    def string(self, name, default=None, *, choices=None, required=False):
        val = self.get(name, default, required=required)
        if val is None:
            return None
        if not isinstance(val, str):
            raise ConfigError(self.k(name), f"must be a string, got {val!r}.",
                              f'write {name} = "..." (quoted).')
        if choices is not None and val not in choices:
            raise ConfigError(self.k(name), f"is {val!r}, not one of {list(choices)}.",
                              f"use one of {', '.join(map(repr, choices))}"
                              + _suggest(val, choices) + ".")
        return val

    def done(self, extra: str = "") -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            k = unknown[0]
            known = sorted(self.used)
            raise ConfigError(self.k(k), "is not a known key" + (f" ({extra})" if extra else "")
                              + ".", "remove it or use one of: " + ", ".join(known)
                              + _suggest(k, known) + ".")


def _suggest(word, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(val, key, *, positive=False, nonneg=False, unit="") -> float:
    u = f" {unit}" if unit else ""
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise ConfigError(key, f"must be a number{(' in ' + unit) if unit else ''}, got "
                          f"{val!r}.", "write a plain number without quotes or units.")
    x = float(val)
    if not math.isfinite(x):
        raise ConfigError(key, f"must be finite, got {val!r}.", "give a finite number.")
    if positive and not x > 0:
        raise ConfigError(key, f"must be > 0{u}, got {val!r}.",
                          "give a positive value" + (f" in {unit}" if unit else "")
                          + (" (e.g. 0.025 ms)" if unit == "ms" else "") + ".")
    if nonneg and x < 0:
        raise ConfigError(key, f"must be >= 0{u}, got {val!r}.",
                          "give a value >= 0" + (f" in {unit}" if unit else "") + ".")
    return x


def _interval(val, key, unit, *, positive=False):
    if (not isinstance(val, (list, tuple)) or len(val) != 2):
        raise ConfigError(key, f"must be [start, end] in {unit}, got {val!r}.",
                          f"write e.g. {key.rsplit('.', 1)[-1]} = [0.0, 100.0].")
    a = _number(val[0], key + "[0]", unit=unit)
    b = _number(val[1], key + "[1]", unit=unit)
    if not b > a:
        raise ConfigError(key, f"needs start < end, got {list(val)} {unit}.",
                          "swap or correct the two values.")
    if positive and a < 0:
        raise ConfigError(key, f"must not start before 0 {unit}, got {a:g}.",
                          "give times >= 0 ms on the recording's time axis.")
    return (a, b)


def _path(val, key, base: Path, *, must_exist=True) -> Path:
    if not isinstance(val, (str, os.PathLike)):
        raise ConfigError(key, f"must be a file path (a string), got {val!r}.",
                          'write e.g. file = "data/cell.abf".')
    p = Path(val).expanduser()
    if not p.is_absolute():
        p = (base / p).resolve()
    if must_exist and not p.is_file():
        raise ConfigError(key, f"file not found: '{p}' (from {str(val)!r}, relative to "
                          f"'{base}').", "correct the path; relative paths are relative to "
                          "the folder of the configuration file.")
    return p


def _where(val, key) -> Where:
    if val is None or val == "all":
        return Where()
    if isinstance(val, str):
        return Where((val,))
    if isinstance(val, (list, tuple)) and val and all(isinstance(v, str) for v in val):
        return Where(tuple(val))
    if isinstance(val, Mapping):
        t = _Table(val, key)
        reg = t.get("region", "all")
        regions = _where(reg, t.k("region")).regions
        dist = t.get("distance")
        dist = None if dist is None else _interval(dist, t.k("distance"), "um")
        t.done()
        return Where(regions, dist)
    raise ConfigError(key, f"{val!r} is not a region selection.",
                      'write "soma", ["basal", "apical"] or {region = "axon", '
                      "distance = [0.0, 60.0]} (um).")


def _value(val, key, *, positive=False, unit=""):
    """A parameter value: a number or an Expression of d."""
    if isinstance(val, str):
        return Expression(val, key)
    return _number(val, key, positive=positive, unit=unit)


def _regional(val, key, unit):
    """cm / ra: number, expression, or {region: value} table."""
    if isinstance(val, Mapping):
        if not val:
            raise ConfigError(key, "is an empty table.", f"give {key} = 1.0 or {{all = 1.0}}.")
        return {str(r): _value(v, f"{key}.{r}", positive=True, unit=unit)
                for r, v in val.items()}
    return _value(val, key, positive=True, unit=unit)


def _sweeps(val, key, *, allow_rest: bool):
    if val is None:
        return ("ids", ())
    if val == "all":
        return ("all",)
    if val == "rest":
        if not allow_rest:
            raise ConfigError(key, '"rest" is only for holdout.',
                              'list sweep ids, or use "all".')
        return ("rest",)
    if isinstance(val, (list, tuple)):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in val):
            raise ConfigError(key, f"must list integer sweep ids, got {val!r}.",
                              "write e.g. [265, 267] (ids as in the file).")
        if len(set(val)) != len(val):
            raise ConfigError(key, f"lists a sweep twice: {list(val)}.", "list each once.")
        return ("ids", tuple(int(v) for v in val))
    if isinstance(val, Mapping):
        t = _Table(val, key)
        kinds = [k for k in ("ids", "positions", "amplitude") if t.has(k)]
        if len(kinds) != 1:
            raise ConfigError(key, f"needs exactly one of ids, positions, amplitude; got "
                              f"{sorted(val)}.", "write e.g. {amplitude = [-0.3, 0.0]} (nA).")
        kind = kinds[0]
        raw = t.get(kind)
        t.done()
        if kind == "amplitude":
            return ("amplitude", _interval_closed(raw, t.k(kind), "nA"))
        sel = _sweeps(raw, t.k(kind), allow_rest=False)
        if sel[0] != "ids":
            raise ConfigError(t.k(kind), f"must be a list of integers, got {raw!r}.",
                              "write e.g. [0, 2, 4].")
        return (kind, sel[1])
    raise ConfigError(key, f"{val!r} is not a sweep selection.",
                      'give a list of sweep ids, "all", "rest" (holdout), or {amplitude = '
                      "[lo, hi]} (nA).")


def _interval_closed(val, key, unit):
    if not isinstance(val, (list, tuple)) or len(val) != 2:
        raise ConfigError(key, f"must be [lo, hi] in {unit}, got {val!r}.",
                          "write e.g. [-0.3, 0.0].")
    a, b = _number(val[0], key + "[0]", unit=unit), _number(val[1], key + "[1]", unit=unit)
    if b < a:
        raise ConfigError(key, f"needs lo <= hi, got {list(val)}.", "swap the two values.")
    return (a, b)


# ------------------------------------------------------------------------------ sections
def _recording(data, base: Path) -> RecordingSpec:
    t = _Table(data, "recording")
    file = t.get("file")
    path = None if file is None else _path(file, t.k("file"), base)
    fmt = t.string("format", None, choices=FORMATS)
    if fmt is None and path is not None:
        fmt = _format_from_suffix(path, t.k("format"))
    ljp = t.number("ljp", 0.0, unit="mV")
    sub = t.boolean("subtract_holding", True)
    rdt = t.number("resample_dt", None, positive=True, unit="ms")
    thr = t.number("spike_threshold", -20.0, unit="mV")
    prots = t.get("protocols", required=True,
                  hint="add a table [recording.protocols.<name>] with fit = [...] sweeps.")
    pt = _Table(prots, t.k("protocols"))
    if not prots:
        raise ConfigError(t.k("protocols"), "is empty.",
                          "add at least one [recording.protocols.<name>] table.")
    out = {}
    for key in prots:
        out[key] = _protocol(pt.get(key), key, pt.k(key))
    pt.done()
    if fmt == "abf" and len(out) != 1:
        raise ConfigError(t.k("protocols"), f"an ABF file holds one protocol, but {len(out)} "
                          "are configured.", "keep one [recording.protocols.<name>] table "
                          "(windows of other parts of the sweeps need their own config).")
    t.done()
    return RecordingSpec(path, fmt, ljp, sub, rdt, thr, out)


def _format_from_suffix(path: Path, key: str) -> str:
    suf = path.suffix.lower()
    if suf == ".abf":
        return "abf"
    if suf == ".nwb":
        return "nwb"
    if suf == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return "npz" if "format" in z.files else "sscx"
    raise ConfigError(key, f"cannot tell the format of '{path.name}' from its suffix.",
                      f"set format = one of {list(FORMATS)}.")


def _protocol(data, name: str, key: str) -> ProtocolSpec:
    t = _Table(data, key)
    prot = t.string("protocol", name)
    win = t.get("window")
    win = None if win is None else _interval(win, t.k("window"), "ms", positive=True)
    step = t.get("step")
    step = None if step is None else _interval(step, t.k("step"), "ms", positive=True)
    fit = _sweeps(t.get("fit"), t.k("fit"), allow_rest=False)
    hold = _sweeps(t.get("holdout"), t.k("holdout"), allow_rest=True)
    if fit[0] == "all" and hold not in (("ids", ()),):
        raise ConfigError(t.k("holdout"), 'fit = "all" leaves no sweep to hold out.',
                          "list the fit sweeps explicitly, or drop holdout.")
    if fit[0] == hold[0] and fit[0] in ("ids", "positions"):
        both = sorted(set(fit[1]) & set(hold[1]))
        if both:
            raise ConfigError(t.k("holdout"), f"sweep(s) {both} are both fitted and held out.",
                              "held-out sweeps must not be fitted: remove them from one list.")
    t.done()
    return ProtocolSpec(name, prot, win, step, fit, hold)


def _morphology(data, base: Path, key: str = "morphology") -> MorphologySpec:
    t = _Table(data, key)
    file = t.get("file")
    builder = t.string("builder", None, choices=BUILDERS)
    if (file is None) == (builder is None):
        raise ConfigError(key, "needs exactly one of file and builder.",
                          'give file = "cell.swc" or builder = "ball_and_stick".')
    path = None if file is None else _path(file, t.k("file"), base)
    if path is not None and path.suffix.lower() not in (".swc", ".asc", ".h5"):
        raise ConfigError(t.k("file"), f"'{path.name}' is not a .swc, .asc or .h5 file.",
                          "give a reconstruction MorphIO reads (SWC, Neurolucida ASC, H5).")
    args = t.get("args", {})
    if not isinstance(args, Mapping):
        raise ConfigError(t.k("args"), f"must be a table of builder arguments, got {args!r}.",
                          "write args = {dend_length = 500.0}.")
    if builder is None and args:
        raise ConfigError(t.k("args"), "is only for builder = ...", "remove args.")
    args = {str(k): (tuple(v) if isinstance(v, list) else v) for k, v in args.items()}
    axon = t.string("axon", "keep", choices=AXON_MODES)
    given = [k for k in ("d_lambda", "nseg", "max_length") if t.has(k)]
    if len(given) > 1:
        raise ConfigError(t.k(given[1]), f"conflicts with {given[0]}: give one discretisation.",
                          "keep one of d_lambda, nseg, max_length.")
    d_lambda = t.number("d_lambda", None if given else 0.1, positive=True)
    freq = t.number("freq", 100.0, positive=True, unit="Hz")
    nseg = t.integer("nseg", None, lo=1)
    max_length = t.get("max_length")
    if isinstance(max_length, Mapping):
        mt = _Table(max_length, t.k("max_length"))
        regions = ("all", "soma", "axon", "basal", "apical")
        for r in max_length:
            if r not in regions:
                raise ConfigError(mt.k(r), f"{r!r} is not an SWC region.",
                                  f"use {', '.join(regions)}" + _suggest(r, regions) + ".")
        max_length = {r: mt.number(r, positive=True, unit="um") for r in max_length}
        mt.done()
        if "all" not in max_length:
            raise ConfigError(t.k("max_length"), "needs an 'all' entry (the default).",
                              "write max_length = {all = 100.0, axon = 20.0}.")
    elif max_length is not None:
        max_length = _number(max_length, t.k("max_length"), positive=True, unit="um")
    t.done()
    return MorphologySpec(path, builder, args, axon, d_lambda, freq, nseg, max_length)


def _cell(data) -> CellSpec:
    t = _Table(data, "cell")
    cm = _regional(t.get("cm", 1.0), t.k("cm"), "uF/cm^2")
    ra = _regional(t.get("ra", 100.0), t.k("ra"), "Ohm cm")
    celsius = t.number("celsius", 34.0, unit="degC")
    if not -20.0 <= celsius <= 60.0:
        raise ConfigError(t.k("celsius"), f"{celsius:g} degC is implausible.",
                          "give the recording temperature in degC (e.g. 34.0).")
    v_init = t.get("v_init", "baseline")
    if v_init != "baseline":
        v_init = _number(v_init, t.k("v_init"), unit="mV")
        if not -150.0 <= v_init <= 50.0:
            raise ConfigError(t.k("v_init"), f"{v_init:g} mV is implausible for a resting "
                              "potential.", 'give mV (e.g. -70.0) or "baseline".')
    bal = t.boolean("balance_leak", True)
    t.done()
    return CellSpec(cm, ra, celsius, v_init, bal)


def _channels(data) -> tuple[ChannelSpec, ...]:
    from .. import channels as chmod

    if data is None:
        return ()
    if not isinstance(data, list):
        raise ConfigError("channels", "must be an array of tables ([[channels]]).",
                          "write each insertion as a [[channels]] table.")
    known = {c.__name__: c for c in chmod.ALL_CHANNELS}
    out = []
    for i, entry in enumerate(data):
        key = f"channels[{i + 1}]"
        t = _Table(entry, key)
        kind = t.string("type", required=True, choices=sorted(known))
        cls = known[kind]
        where = _where(t.get("where", "all"), t.k("where"))
        fields = [f.name for f in dataclasses.fields(cls)]
        params = {}
        for name in list(entry):
            if name in ("type", "where"):
                continue
            if name not in fields:
                raise ConfigError(t.k(name), f"{kind} has no parameter {name!r}.",
                                  f"use one of {fields}" + _suggest(name, fields) + ".")
            t.get(name)
            params[name] = _value(entry[name], t.k(name))
        t.done()
        out.append(ChannelSpec(kind, where, params))
    return tuple(out)


def _param_specs(name: str, val, key: str) -> list[ParamSpec]:
    if isinstance(val, list):
        if not val:
            raise ConfigError(key, "is an empty list.", "give at least one table.")
        specs = [_param_spec(name, v, f"{key}[{j + 1}]") for j, v in enumerate(val)]
        if len(specs) > 1 and any(s.where is None for s in specs):
            raise ConfigError(key, "lists several tables; each needs its own where.",
                              'add where = "soma", where = "apical", ... to each.')
        return specs
    return [_param_spec(name, val, key)]


def _param_spec(name: str, val, key: str) -> ParamSpec:
    t = _Table(val, key)
    scale = t.boolean("scale", False)
    positive = t.boolean("positive", False)
    log = t.boolean("log", False)
    bounds = t.get("bounds")
    if positive and bounds is not None:
        raise ConfigError(t.k("bounds"), "positive = true has no bounds.",
                          "remove bounds, or remove positive = true.")
    if not positive:
        if bounds is None:
            t.missing("bounds", "give bounds = [lower, upper] in the parameter's unit"
                      + (" (factor bounds with scale = true)" if scale else "") + ".",
                      "is required (or positive = true).")
        bounds = _interval(bounds, t.k("bounds"), "the parameter's unit")
        if log and bounds[0] <= 0:
            raise ConfigError(t.k("bounds"), f"log = true needs lower > 0, got {bounds[0]:g}.",
                              "use log = false, or a positive lower bound.")
    elif log:
        raise ConfigError(t.k("log"), "is for bounded parameters.", "remove log.")
    where = t.get("where")
    where = None if where is None else _where(where, t.k("where"))
    per_node = t.boolean("per_node", False)
    if per_node and scale:
        raise ConfigError(t.k("per_node"), "a scale factor is one value.",
                          "remove per_node or scale.")
    init = t.number("init", None)
    if init is None and scale:
        init = 1.0
    if init is not None and bounds is not None and not bounds[0] < init < bounds[1]:
        what = "factor" if scale and t.get("init") is None else "initial value"
        raise ConfigError(t.k("bounds"), f"the {what} {init:g} is not strictly inside the "
                          f"bounds ({bounds[0]:g}, {bounds[1]:g}).",
                          "widen the bounds or set init inside them.")
    if init is not None and positive and not init > 0:
        raise ConfigError(t.k("init"), f"positive = true needs init > 0, got {init:g}.",
                          "give a positive init.")
    label = t.string("label", None)
    t.done()
    return ParamSpec(name, key, bounds, log, positive, where, per_node, scale, init, label)


def _loss(data, key: str) -> LossSpec:
    t = _Table(data, key)
    terms = {}
    v = t.get("voltage")
    if v is not None:
        vt = _Table(v, t.k("voltage"))
        terms["voltage"] = {
            "weight": vt.number("weight", 1.0, nonneg=True),
            "window": None if vt.get("window") is None else
            _interval(vt.get("window"), vt.k("window"), "ms", positive=True),
            "exclude_spikes": vt.boolean("exclude_spikes", False),
        }
        vt.done()
    s = t.get("spikes")
    if s is not None:
        st = _Table(s, t.k("spikes"))
        terms["spikes"] = {
            "weight": st.number("weight", 1.0, nonneg=True),
            "tau": st.number("tau", 5.0, positive=True, unit="ms"),
            "window": None if st.get("window") is None else
            _interval(st.get("window"), st.k("window"), "ms", positive=True),
        }
        st.done()
    f = t.get("features")
    if f is not None:
        ft = _Table(f, t.k("features"))
        weight = ft.number("weight", 1.0, nonneg=True)
        scales = ft.get("scales", required=True,
                        hint="give scales = {spike_count = 1.0, ...} (one per feature, "
                        "in its unit).")
        sc = _Table(scales, ft.k("scales"))
        if not scales:
            raise ConfigError(ft.k("scales"), "is empty.", "name at least one feature.")
        out = {}
        for name in scales:
            if name not in FEATURE_UNITS:
                raise ConfigError(sc.k(name), f"{name!r} is not a feature.",
                                  f"use {', '.join(FEATURE_UNITS)}" + _suggest(name,
                                                                              FEATURE_UNITS)
                                  + ".")
            out[name] = sc.number(name, positive=True, unit=FEATURE_UNITS[name])
        sc.done()
        ft.done()
        terms["features"] = {"weight": weight, "scales": out}
    t.done("loss terms are voltage, spikes, features")
    if not any(term["weight"] > 0 for term in terms.values()):
        raise ConfigError(key, "has no term with a weight > 0.",
                          "add e.g. voltage = {weight = 1.0}.")
    return LossSpec(terms.get("voltage"), terms.get("spikes"), terms.get("features"))


def _stages(data, protocols: Mapping[str, ProtocolSpec]) -> tuple[StageSpec, ...]:
    if data is None or (isinstance(data, list) and not data):
        raise ConfigError("stage", "no [[stage]] is configured.",
                          "add at least one [[stage]] with protocols, parameters and loss.")
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        raise ConfigError("stage", "must be an array of tables ([[stage]]).",
                          "write each stage as a [[stage]] table.")
    out = []
    for i, entry in enumerate(data):
        key = f"stage[{i + 1}]"
        t = _Table(entry, key)
        name = t.string("name", f"stage{i + 1}")
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ConfigError(t.k("name"), f"{name!r} must be letters, digits, - or _.",
                              'use e.g. name = "passive".')
        if name in [s.name for s in out]:
            raise ConfigError(t.k("name"), f"two stages are named {name!r}.",
                              "give every stage its own name.")
        prots = t.get("protocols", required=True,
                      hint=f"add protocols = [\"{next(iter(protocols))}\"] (keys of "
                      "[recording.protocols]).")
        if isinstance(prots, str):
            prots = [prots]
        if not isinstance(prots, list) or not prots or not all(isinstance(p, str)
                                                               for p in prots):
            raise ConfigError(t.k("protocols"), f"must be a list of protocol keys, got "
                              f"{prots!r}.", 'write protocols = ["IV"].')
        for p in prots:
            if p not in protocols:
                raise ConfigError(t.k("protocols"), f"{p!r} is not a configured protocol.",
                                  f"use one of {list(protocols)}" + _suggest(p, protocols)
                                  + " or add [recording.protocols." + p + "].")
            if protocols[p].fit == ("ids", ()):
                raise ConfigError(f"recording.protocols.{p}.fit", f"stage {name!r} fits "
                                  f"protocol {p!r}, but it selects no fit sweeps.",
                                  "list the sweeps to fit in fit = [...].")
        sweeps = t.get("sweeps", {})
        swt = _Table(sweeps, t.k("sweeps"))
        sel = {}
        for p in sweeps:
            if p not in prots:
                raise ConfigError(swt.k(p), f"{p!r} is not one of this stage's protocols "
                                  f"{prots}.", "add it to protocols, or remove it here.")
            sel[p] = _sweeps(swt.get(p), swt.k(p), allow_rest=False)
        swt.done()
        dt = t.number("dt", 0.025, positive=True, unit="ms")
        if dt > 1.0:
            raise ConfigError(t.k("dt"), f"{dt:g} ms is too large for a cable simulation.",
                              "use dt <= 0.25 ms (0.025 ms for spikes).")
        rate_table = t.boolean("rate_table", False)
        mem = t.string("grad_memory", "step", choices=tuple(GRAD_MEMORY))
        opt = t.string("optimizer", "adam", choices=OPTIMIZERS)
        lr = t.number("learning_rate", 0.05 if opt == "adam" else None, positive=True)
        steps = t.integer("steps", 100)
        starts = t.integer("starts", 1)
        patience = t.integer("patience", None)
        target = t.number("target_loss", None)
        every = t.integer("checkpoint_every", 10)
        params = t.get("parameters", required=True,
                       hint='add [stage.parameters] with e.g. "Leak.g" = {bounds = [1e-5, '
                       "1e-3], log = true}.")
        pt = _Table(params, t.k("parameters"))
        if not params:
            raise ConfigError(t.k("parameters"), "is empty.", "name at least one parameter.")
        specs = []
        for pname in params:
            if not isinstance(pname, str) or not pname:
                raise ConfigError(pt.k(str(pname)), "parameter names must be strings.",
                                  'quote it: "Leak.g" = {...}.')
            specs += _param_specs(pname, pt.get(pname), pt.k(pname))
        pt.done()
        loss = _loss(t.get("loss", required=True, hint="add [stage.loss] with e.g. voltage "
                           "= {weight = 1.0}."), t.k("loss"))
        t.done()
        out.append(StageSpec(i, name, tuple(prots), sel, dt, rate_table, mem, opt, lr, steps,
                             starts, patience, target, every, tuple(specs), loss))
    return tuple(out)


def _evaluation(data) -> EvaluationSpec:
    t = _Table(data or {}, "evaluation")
    spec = EvaluationSpec(
        t.number("spike_pre", 2.0, nonneg=True, unit="ms"),
        t.number("spike_post", 10.0, nonneg=True, unit="ms"),
        t.number("dt", None, positive=True, unit="ms"),
        t.boolean("after_each_stage", True),
    )
    t.done()
    return spec


def _output(data, name: str) -> OutputSpec:
    t = _Table(data or {}, "output")
    folder = t.get("folder", f"{name}_fit")
    if not isinstance(folder, (str, os.PathLike)):
        raise ConfigError(t.k("folder"), f"must be a path, got {folder!r}.",
                          'write folder = "fit_output".')
    spec = OutputSpec(Path(folder), t.string("format", "npz", choices=("npz", "nwb")),
                      t.boolean("plots", True), t.boolean("save_cell", True))
    t.done()
    return spec


def _quick(data) -> QuickSpec:
    t = _Table(data or {}, "quick")
    morph = t.get("morphology", {})
    if not isinstance(morph, Mapping):
        raise ConfigError(t.k("morphology"), "must be a table of [morphology] keys.",
                          "write morphology = {max_length = 200.0}.")
    spec = QuickSpec(t.integer("steps", 3), t.integer("max_sweeps", 2), dict(morph))
    t.done()
    return spec


def _stimulus(data) -> StimulusSpec | None:
    if data is None:
        return None
    t = _Table(data, "stimulus")
    t1 = t.number("t1", required=True, positive=True, unit="ms")
    dt = t.number("dt", 0.025, positive=True, unit="ms")
    clamps = t.get("clamps", required=True, hint='add clamps = [{type = "step", amp = 0.3, '
                   "delay = 20.0, dur = 100.0}] (nA, ms).")
    if not isinstance(clamps, list) or not clamps:
        raise ConfigError(t.k("clamps"), "must be a non-empty list of tables.",
                          'write clamps = [{type = "step", amp = 0.3, delay = 20.0, '
                          "dur = 100.0}].")
    out = []
    for j, c in enumerate(clamps):
        key = f"{t.k('clamps')}[{j + 1}]"
        ct = _Table(c, key)
        kind = ct.string("type", "step", choices=("step", "ramp"))
        if kind == "step":
            entry = {"type": "step", "amp": ct.number("amp", required=True, unit="nA")}
        else:
            entry = {"type": "ramp", "amp0": ct.number("amp0", required=True, unit="nA"),
                     "amp1": ct.number("amp1", required=True, unit="nA")}
        entry["delay"] = ct.number("delay", 0.0, nonneg=True, unit="ms")
        entry["dur"] = ct.number("dur", required=True, positive=True, unit="ms")
        ct.done()
        out.append(entry)
    t.done()
    return StimulusSpec(t1, dt, tuple(out))


# ------------------------------------------------------------------------------ entry point
_TOP = ("name", "seed", "recording", "morphology", "cell", "channels", "stage", "evaluation",
        "output", "quick", "stimulus")


def load_config(source, *, base_dir: str | os.PathLike | None = None) -> FitConfig:
    """Read and validate a fit configuration (see the module docstring for every key).

    Checks the structure (unknown keys, with a suggestion), types, units and ranges (e.g.
    dt > 0 ms, windows with start < end, bounds with lower < upper and the initial value
    inside them), that input files exist, that stages name configured protocols and that
    no sweep is both fitted and held out. Checks that need the data or the cell (sweep ids,
    region names, initial values read from the cell) are made by `Pipeline`.

    Args:
        source: path of a TOML file, a dict of the same structure, or a `FitConfig`
            (returned unchanged).
        base_dir: folder for relative input paths of a dict (default: the current folder);
            for a file, its folder.

    Returns:
        A `FitConfig`.

    Raises:
        ConfigError: names the key, the problem and the fix.
    """
    if isinstance(source, FitConfig):
        return source
    if isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        default_name = "fit"
    elif isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise ConfigError("config", f"file not found: '{p}'.",
                              "give the path of a .toml configuration file.")
        tomllib = toml_module()
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError("config", f"'{p}' is not valid TOML ({err}).",
                              "fix the syntax at the line named.") from None
        except UnicodeDecodeError:
            raise ConfigError("config", f"'{p}' is not a text file.",
                              "give a .toml configuration file.") from None
        base = Path(base_dir) if base_dir is not None else p.resolve().parent
        default_name = p.stem
    else:
        raise ConfigError("config", f"expected a path or a dict, got {type(source).__name__}.",
                          "pass the path of a .toml file or a dict.")
    top = _Table(data, "")
    for key in data:  # unknown sections first: a misspelt [[stage]] is not a missing one
        if key not in _TOP:
            raise ConfigError(str(key), "is not a known section or key.",
                              "use " + ", ".join(_TOP) + _suggest(key, _TOP) + ".")
    name = top.string("name", default_name)
    seed = top.integer("seed", 0, lo=0)
    rec = top.get("recording")
    recording = None if rec is None else _recording(rec, base)
    morphology = _morphology(top.get("morphology", required=True,
                                     hint="add a [morphology] section with file or builder."),
                             base)
    cell = _cell(top.get("cell", {}))
    channels = _channels(top.get("channels"))
    if recording is None and (top.has("stage") or top.get("stimulus") is None):
        raise ConfigError("recording", "is required but missing.",
                          "add a [recording] section (only `jaxdend simulate` with a "
                          "[stimulus] section works without one).")
    stages = () if not top.has("stage") and recording is None else _stages(
        top.get("stage"), recording.protocols)
    evaluation = _evaluation(top.get("evaluation"))
    output = _output(top.get("output"), name)
    quick = _quick(top.get("quick"))
    stimulus = _stimulus(top.get("stimulus"))
    top.done()
    if quick.morphology:  # validate the quick overrides now
        raw = dict(data["morphology"])
        raw.update(quick.morphology)
        if sum(k in raw for k in ("d_lambda", "nseg", "max_length")) > 1:
            for k in ("d_lambda", "nseg", "max_length"):
                if k not in quick.morphology:
                    raw.pop(k, None)
        _morphology(raw, base, "quick.morphology")
    return FitConfig(name, seed, base, recording, morphology, cell, channels, stages,
                     evaluation, output, quick, stimulus, _plain(data))


def _plain(x):
    """The configuration as JSON-safe plain data (for the result file)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)
