"""`Cell`: compartments (static structure) + passive properties + channels per region.

Units: cm uF/cm^2, ra Ohm cm, conductance densities S/cm^2, voltages mV, temperature degC.
Per node: capacitance nF, conductances uS, currents nA (``area[um^2] * 1e-2`` turns S/cm^2
into uS and mA/cm^2 into nA; ``area * 1e-5`` turns uF/cm^2 into nF).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .channels import AbstractChannel
from .morphology import Compartments
from .synapses import AbstractReceptor, GapJunctions, Synapses, TsodyksMarkram

AREA_TO_UNITS = 1e-2  # S/cm^2 * um^2 -> uS ; mA/cm^2 * um^2 -> nA
CAP_TO_NF = 1e-5  # uF/cm^2 * um^2 -> nF
GEOM_TO_MOHM = 1e-2  # Ohm cm * 1/um -> MOhm

ParamValue = float | np.ndarray | Array | Callable[[Compartments], np.ndarray]


def _is_tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _resolve(value: ParamValue, comps: Compartments, name: str) -> np.ndarray | Array:
    """Turn a parameter value (scalar, per-node array or function of the compartments) into (n,)."""
    if callable(value):
        value = value(comps)
    if _is_tracer(value) or isinstance(value, jax.Array):
        arr = jnp.asarray(value, dtype=float)
    else:
        arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return jnp.full((comps.n,), arr, dtype=float)
    if arr.shape != (comps.n,):
        raise ValueError(
            f"Parameter {name!r} has shape {arr.shape}; give a scalar, an array of shape "
            f"({comps.n},) (one value per node), or a function of the Compartments returning one."
        )
    return jnp.asarray(arr)


def by_distance(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Compartments], np.ndarray]:
    """Parameter value from a function of path distance from the soma (um) -> value per node.

    Example: ``HH(g_na=by_distance(lambda d: 0.12 * np.exp(-d / 300)))``.
    """
    return lambda comps: fn(np.asarray(comps.distance))


class Probe(eqx.Module):
    """What to record: one state variable at a set of nodes.

    Attributes:
        state: "v" (membrane potential, mV) or "Channel.state" such as "HH.m".
        index: node indices (static).
    """

    state: str = eqx.field(static=True)
    index: tuple[int, ...] = eqx.field(static=True)


class Cell(eqx.Module):
    """A neuron: compartments, passive cable properties and channels.

    Build with `Cell(comps)` then add channels with `insert`; change parameters with `set`.
    Every floating-point leaf (cm, ra, channel parameters, temperature, v_init) is differentiable.

    Attributes:
        comps: the discretised morphology (static).
        cm: specific membrane capacitance per node, uF/cm^2.
        ra: axial resistivity per node, Ohm cm (the edge from a node to its parent lies in the
            node's section and uses the node's value).
        channels: inserted channels with per-node parameters.
        masks: per-channel boolean masks of the nodes where the channel is inserted.
        celsius: temperature in degC.
        v_init: initial membrane potential in mV.
    """

    comps: Compartments = eqx.field(static=True)
    plan: object = eqx.field(static=True)  # solve._tree.TreePlan
    cm: Float[Array, " comp"]
    ra: Float[Array, " comp"]
    channels: tuple[AbstractChannel, ...]
    masks: tuple[Bool[Array, " comp"], ...]
    celsius: Float[Array, ""]
    v_init: Float[Array, ""]
    synapses: tuple[Synapses, ...]
    gap_junctions: GapJunctions | None
    rules: tuple  # of jaxdend.plasticity.Plasticity

    def __init__(
        self,
        comps: Compartments,
        *,
        cm: ParamValue = 1.0,
        ra: ParamValue = 100.0,
        celsius: float = 6.3,
        v_init: float = -65.0,
        channels: tuple[AbstractChannel, ...] = (),
        masks: tuple = (),
        schedule: str = "sequential",
        plan=None,
        synapses: tuple[Synapses, ...] = (),
        gap_junctions: GapJunctions | None = None,
        rules: tuple = (),
    ):
        """Create a passive cell.

        Args:
            comps: `Compartments` from `jaxdend.discretize` (or a builder).
            cm: membrane capacitance, uF/cm^2 (scalar, per node, or function of comps).
            ra: axial resistivity, Ohm cm.
            celsius: temperature, degC (NEURON's default is 6.3).
            v_init: initial membrane potential, mV.
            schedule: tree-solve schedule, "sequential" (fast on CPU) or "levels" (GPU).
        """
        if not isinstance(comps, Compartments):
            raise TypeError(
                f"Cell needs Compartments (from jaxdend.discretize), got {type(comps).__name__}."
            )
        from .solve._tree import TreePlan  # the solve package imports this module

        self.comps = comps
        self.plan = plan if plan is not None else TreePlan.from_parent(comps.parent, schedule)
        self.cm = _resolve(cm, comps, "cm")
        self.ra = _resolve(ra, comps, "ra")
        self.channels = tuple(channels)
        self.masks = tuple(jnp.asarray(m, dtype=bool) for m in masks)
        self.celsius = jnp.asarray(celsius, dtype=float)
        self.v_init = jnp.asarray(v_init, dtype=float)
        self.synapses = tuple(synapses)
        self.gap_junctions = gap_junctions
        self.rules = tuple(rules)

    def __check_init__(self):
        for name in ("cm", "ra"):
            val = getattr(self, name)
            if _is_tracer(val):
                continue
            arr = np.asarray(val)
            if np.any(~np.isfinite(arr)):
                raise ValueError(f"{name} contains NaN or inf; give finite values.")
            if np.any(arr <= 0):
                unit = "uF/cm^2" if name == "cm" else "Ohm cm"
                raise ValueError(
                    f"{name} must be > 0 {unit} everywhere (got min {arr.min():g}); typical "
                    f"values are cm ~ 1 uF/cm^2, ra ~ 100-200 Ohm cm."
                )

    # ------------------------------------------------------------------ building
    def insert(self, channel: AbstractChannel, where="all") -> Cell:
        """Insert a channel on the nodes selected by `where`; returns a new cell.

        Parameter attributes of `channel` may be scalars, per-node arrays, or functions of the
        `Compartments` (see `by_distance`). Inserting a channel type already present overwrites
        its parameters on the selected nodes and extends its mask.

        Args:
            channel: a channel instance, e.g. ``HH()`` or ``HH(g_na=0.2)`` (S/cm^2, mV).
            where: region name ("soma", "axon", "basal", "apical" or a subregion), list of
                names, boolean mask or node indices (see `Compartments.mask`).
        """
        if isinstance(channel, type):
            channel = channel()
        if not isinstance(channel, AbstractChannel):
            raise TypeError(f"insert needs a channel instance, got {channel!r}.")
        mask = np.asarray(self.comps.mask(where))
        if not mask.any():
            raise ValueError(f"No compartment matches where={where!r}; nothing to insert.")
        names = [type(c).__name__ for c in self.channels]
        kind = type(channel).__name__
        fields = [f.name for f in dataclasses.fields(channel)]
        new_values = {f: _resolve(getattr(channel, f), self.comps, f"{kind}.{f}") for f in fields}
        channels, masks = list(self.channels), list(self.masks)
        if kind in names:
            k = names.index(kind)
            old = channels[k]
            merged = {f: jnp.where(mask, new_values[f], getattr(old, f)) for f in fields}
            channels[k] = dataclasses.replace(old, **merged)
            masks[k] = jnp.logical_or(masks[k], mask)
        else:
            for f in type(channel).conductance_names:
                new_values[f] = jnp.where(mask, new_values[f], 0.0)
            channels.append(dataclasses.replace(channel, **new_values))
            masks.append(jnp.asarray(mask))
        return eqx.tree_at(
            lambda c: (c.channels, c.masks), self, (tuple(channels), tuple(masks))
        )

    def set(self, name: str, value: ParamValue, where="all") -> Cell:
        """Set a parameter on selected nodes; returns a new cell.

        Args:
            name: "cm" (uF/cm^2), "ra" (Ohm cm), "celsius" (degC), "v_init" (mV), or
                "Channel.param" such as "HH.g_na" (S/cm^2) or "HH.e_k" (mV).
            value: scalar, per-node array, or function of the Compartments.
            where: node selection (see `Compartments.mask`).
        """
        if name in ("celsius", "v_init"):
            return eqx.tree_at(lambda c: getattr(c, name), self, jnp.asarray(value, float))
        getter = self._getter(name)
        if name.partition(".")[0] in [g.name for g in self.synapses]:
            old = getter(self)
            return eqx.tree_at(getter, self, jnp.broadcast_to(jnp.asarray(value, float),
                                                              jnp.shape(old)))
        mask = self.comps.mask(where)
        new = _resolve(value, self.comps, name)
        return eqx.tree_at(getter, self, jnp.where(mask, new, getter(self)))

    def add_synapses(
        self,
        name: str,
        receptor: AbstractReceptor,
        nodes,
        gmax: float | np.ndarray | Array = 1.0,
        *,
        stp: TsodyksMarkram | None = None,
    ) -> Cell:
        """Add a group of synapses of one receptor type; returns a new cell.

        Drive the group with ``jaxdend.synapses.Input(name, trains)`` in the stimulus, record
        its states with ``cell.probe(f"{name}.g")`` (conductance, nS), and set its parameters
        with ``cell.set(f"{name}.gmax", ...)`` or ``f"{name}.tau_decay"`` etc.

        Args:
            name: group name (must differ from the channel names and other groups).
            receptor: ``AMPA()``, ``NMDA()``, ``GABAA()``, ``GABAB()`` (time constants ms,
                reversal mV).
            nodes: compartment index of every synapse (see `jaxdend.synapses.place`,
                `Cell.select`, `Cell.nearest`).
            gmax: peak conductance per release, nS (scalar or one per synapse).
            stp: optional Tsodyks–Markram short-term plasticity.
        """
        taken = [type(c).__name__ for c in self.channels] + [g.name for g in self.synapses]
        if not name or "." in name or name in taken or name in ("v", "cm", "ra"):
            raise ValueError(
                f"Synapse group name {name!r} is empty, contains '.', or is already used "
                f"(channels and groups: {taken}); choose another name."
            )
        if not isinstance(receptor, AbstractReceptor):
            raise TypeError(f"receptor must be e.g. jaxdend.synapses.AMPA(), got {receptor!r}.")
        nodes = np.atleast_1d(np.asarray(nodes))
        if nodes.dtype.kind not in "iu" or nodes.ndim != 1:
            raise ValueError("nodes must be a 1-D array of integer compartment indices.")
        bad = nodes[(nodes < 0) | (nodes >= self.n)]
        if bad.size:
            raise ValueError(
                f"Synapse {name!r} on compartment {int(bad[0])}, but the cell has compartments "
                f"0..{self.n - 1}; pick nodes with jaxdend.synapses.place or cell.select."
            )
        junction = nodes[self.comps.is_junction[nodes]]
        if junction.size:
            raise ValueError(
                f"Compartment {int(junction[0])} is a zero-area branch-point node; put synapses "
                "on membrane compartments (cell.select(...) excludes branch points)."
            )
        g = gmax if _is_tracer(gmax) else np.asarray(gmax, dtype=float)
        g = jnp.broadcast_to(jnp.asarray(g, dtype=float), (nodes.size,))
        group = Synapses(name, receptor, tuple(int(i) for i in nodes), g, stp)
        return eqx.tree_at(lambda c: c.synapses, self, self.synapses + (group,))

    def add_gap_junctions(self, a, b, g) -> Cell:
        """Connect compartments `a[k]` and `b[k]` by gap junctions of conductance `g` nS.

        For two cells, build them into one `Compartments` with
        `jaxdend.morphology.combine` and use the returned offsets for the indices.
        """
        a = np.atleast_1d(np.asarray(a, dtype=np.int64))
        b = np.atleast_1d(np.asarray(b, dtype=np.int64))
        self.comps.mask(np.concatenate([a, b]))  # range check with a clear message
        gj = GapJunctions(tuple(int(i) for i in a), tuple(int(i) for i in b),
                          jnp.broadcast_to(jnp.asarray(g, dtype=float), (a.size,)))
        if self.gap_junctions is not None:
            old = self.gap_junctions
            gj = GapJunctions(old.a + gj.a, old.b + gj.b, jnp.concatenate([old.g, gj.g]))
        return eqx.tree_at(lambda c: c.gap_junctions, self, gj,
                           is_leaf=lambda x: x is None)

    def add_rule(self, rule, groups, where="all", *, w0=1.0, spike_threshold=-20.0) -> Cell:
        """Let a long-term plasticity rule set the weights of synapses in a region.

        Weights (dimensionless, ``g = w * gmax * ...``) and the rule's traces become state,
        integrated with the membrane. Assign different rules to different regions, e.g.
        ``cell.add_rule(BasalHebbian(), ("ampa", "nmda"), "basal")`` and
        ``cell.add_rule(ApicalCooperative(), ("ampa", "nmda"), "apical")``.

        Args:
            rule: a rule from `jaxdend.plasticity`.
            groups: name(s) of synapse groups at the same sites sharing one weight per synapse.
            where: region of the synapses the rule governs (see `Compartments.mask`).
            w0: initial weight(s), within the rule's [w_min, w_max].
            spike_threshold: somatic potential (mV) whose upward crossing counts as a
                somatic spike for the rule (node 0, the soma).
        """
        from .plasticity._binding import bind

        binding, ks, idx = bind(self, rule, groups, where, w0, spike_threshold)
        synapses = list(self.synapses)
        for k in ks:
            grp = synapses[k]
            w = jnp.ones((grp.n,)) if grp.w_init is None else grp.w_init
            w = w.at[idx].set(jnp.broadcast_to(jnp.asarray(w0, float), (idx.size,)))
            synapses[k] = eqx.tree_at(lambda g: g.w_init, grp, w, is_leaf=lambda x: x is None)
        return eqx.tree_at(lambda c: (c.synapses, c.rules), self,
                           (tuple(synapses), self.rules + (binding,)))

    def synapse_group(self, name: str) -> int:
        """Position of synapse group `name` in `self.synapses` (ValueError if absent)."""
        names = [g.name for g in self.synapses]
        if name not in names:
            raise ValueError(f"No synapse group {name!r}; groups: {names}.")
        return names.index(name)

    def selector(self, name: str):
        """A function ``cell -> array`` picking parameter `name` (named as in `set`: "cm",
        "ra", "Channel.param", "group.param"), for ``eqx.tree_at`` and `jaxdend.fit`.

        Raises:
            ValueError: no such channel, synapse group or parameter (the message lists them).
        """
        if name in ("celsius", "v_init"):
            return lambda c: getattr(c, name)
        return self._getter(name)

    def _getter(self, name: str):
        if name in ("cm", "ra"):
            return lambda c: getattr(c, name)
        kind, _, param = name.partition(".")
        if kind in [g.name for g in self.synapses]:
            k = self.synapse_group(kind)
            grp = self.synapses[k]
            if param == "gmax":
                return lambda c: c.synapses[k].gmax
            for part in ("receptor", "stp"):
                obj = getattr(grp, part)
                if obj is not None and param in [f.name for f in dataclasses.fields(obj)]:
                    return lambda c, part=part: getattr(getattr(c.synapses[k], part), param)
            raise ValueError(f"Synapse group {kind!r} has no parameter {param!r}.")
        names = [type(c).__name__ for c in self.channels]
        if kind not in names:
            raise ValueError(
                f"No channel {kind!r} in this cell (inserted: {names}); insert it first."
            )
        k = names.index(kind)
        if param not in [f.name for f in dataclasses.fields(self.channels[k])]:
            params = [f.name for f in dataclasses.fields(self.channels[k])]
            raise ValueError(f"{kind} has no parameter {param!r}; it has {params}.")
        return lambda c: getattr(c.channels[k], param)

    def get(self, name: str) -> Array:
        """Per-node values of a parameter named as in `set` (units as in `set`)."""
        if name in ("celsius", "v_init"):
            return getattr(self, name)
        return self._getter(name)(self)

    # ------------------------------------------------------------------ selection
    def select(self, where="all", *, distance: tuple[float, float] | None = None) -> np.ndarray:
        """Indices of membrane nodes (junctions excluded) in `where` within a distance range.

        Args:
            where: region name(s), mask or indices (see `Compartments.mask`).
            distance: optional (min, max) path distance from the soma in um, inclusive.

        Returns:
            Sorted int array of node indices.
        """
        mask = self.comps.mask(where) & ~self.comps.is_junction
        if distance is not None:
            lo, hi = distance
            mask &= (self.comps.distance >= lo) & (self.comps.distance <= hi)
        return np.nonzero(mask)[0]

    def nearest(self, where="all", distance: float = 0.0) -> int:
        """Index of the membrane node in `where` closest to path distance `distance` (um)."""
        idx = self.select(where)
        if idx.size == 0:
            raise ValueError(f"No membrane node matches where={where!r}.")
        return int(idx[np.argmin(np.abs(self.comps.distance[idx] - distance))])

    def probe(self, state: str = "v", where="soma", *, distance=None, index=None) -> Probe:
        """A `Probe` recording `state` ("v" in mV, or "Channel.state") at selected nodes.

        Args:
            state: "v" or a channel state such as "HH.m".
            where: region name(s), mask or indices; ignored when `index` is given.
            distance: optional (min, max) path-distance range in um.
            index: explicit node index or indices.
        """
        kind, _, var = state.partition(".")
        if kind in [g.name for g in self.synapses]:
            grp = self.synapses[self.synapse_group(kind)]
            if var not in grp.recordable:
                raise ValueError(f"Cannot record {state!r}; recordable states of group "
                                 f"{kind!r}: {', '.join(grp.recordable)} (g in nS).")
            idx = np.arange(grp.n) if index is None else np.atleast_1d(np.asarray(index))
            if idx.size == 0 or idx.min() < 0 or idx.max() >= grp.n:
                raise ValueError(f"Synapse index out of range 0..{grp.n - 1} for {kind!r}.")
            return Probe(state, tuple(int(i) for i in idx))
        if state != "v":
            names = [type(c).__name__ for c in self.channels]
            if kind not in names or var not in type(self.channels[names.index(kind)]).state_names:
                avail = ["v"] + [
                    f"{type(c).__name__}.{s}" for c in self.channels for s in type(c).state_names
                ]
                raise ValueError(f"Cannot record {state!r}; recordable states: {avail}.")
        if index is not None:
            idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
            self.comps.mask(idx)  # range check
        else:
            idx = self.select(where, distance=distance)
            if idx.size == 0:
                raise ValueError(f"No membrane node matches where={where!r}, distance={distance}.")
        return Probe(state, tuple(int(i) for i in idx))

    # ------------------------------------------------------------------ physics
    @property
    def n(self) -> int:
        """Number of nodes."""
        return self.comps.n

    def capacitance(self) -> Float[Array, " comp"]:
        """Capacitance of every node in nF (0 at junction nodes)."""
        return self.cm * jnp.asarray(self.comps.area) * CAP_TO_NF

    def axial_conductance(self) -> Float[Array, " comp"]:
        """Conductance between every node and its parent in uS (0 for the root)."""
        geom = jnp.asarray(self.comps.axial_geom)
        safe = jnp.where(geom > 0, geom, 1.0)
        return jnp.where(geom > 0, 1.0 / (self.ra * safe * GEOM_TO_MOHM), 0.0)

    def init_state(self, v_init=None) -> dict:
        """Initial state: all nodes at `v_init` (mV, default `self.v_init`), gates at rest."""
        v0 = self.v_init if v_init is None else jnp.asarray(v_init, float)
        v = jnp.full((self.n,), v0)
        state = {"v": v, "channels": tuple(c.init_state(v, self.celsius) for c in self.channels)}
        if self.synapses:  # only when present: diffrax rejects empty subtrees in adaptive solves
            state["synapses"] = tuple(g.init_state() for g in self.synapses)
        if self.rules:
            state["plasticity"] = tuple(b.rule.init_state(len(b.index), v0) for b in self.rules)
        return state

    def membrane_current(self, channel_states, v):
        """Total ionic current (nA) and its slope d I/d v (uS) at every node."""
        return self.linearized_current(channel_states, v)[:2]

    def linearized_current(self, channel_states, v, given=None):
        """`membrane_current` (nA, uS) and the channel states as the channels' `linearize`
        returns them (same values; the implicit step advances its gates from these) at `v`
        (mV). `given`: per channel None or its ``(i, g, state)`` already computed at these
        states and `v` (as `linearize` returns them; mA/cm^2, S/cm^2), used as they are."""
        area = jnp.asarray(self.comps.area) * AREA_TO_UNITS
        i_tot = jnp.zeros_like(v)
        g_tot = jnp.zeros_like(v)
        states = []
        given = (None,) * len(self.channels) if given is None else given
        for ch, mask, st, pre in zip(self.channels, self.masks, channel_states, given):
            i, g, st = ch.linearize(st, v) if pre is None else pre
            i_tot = i_tot + jnp.where(mask, i, 0.0)
            g_tot = g_tot + jnp.where(mask, g, 0.0)
            states.append(st)
        return i_tot * area, g_tot * area, tuple(states)

    def synaptic_current(self, syn_states, v):
        """Total synaptic and gap-junction current (nA) and its slope d I/d v (uS) per node."""
        i_tot = jnp.zeros_like(v)
        g_tot = jnp.zeros_like(v)
        for grp, st in zip(self.synapses, syn_states):
            idx = np.asarray(grp.node, dtype=np.int64)
            vs = v[idx]
            i, g = jax.jvp(lambda vv, grp=grp, st=st: grp.current(st, vv), (vs,),
                           (jnp.ones_like(vs),))
            i_tot = i_tot + jax.ops.segment_sum(i, idx, num_segments=self.n)
            g_tot = g_tot + jax.ops.segment_sum(g, idx, num_segments=self.n)
        if self.gap_junctions is not None:
            i, g = self.gap_junctions.current(v)
            i_tot, g_tot = i_tot + i, g_tot + g
        return i_tot, g_tot

    def axial_current(self, v) -> Float[Array, " comp"]:
        """Net current flowing out of every node into its neighbours through the cytoplasm, nA."""
        g = self.axial_conductance()
        par = np.maximum(self.comps.parent, 0)
        edge = g * (v - v[par])  # current from node i to its parent
        return edge - jax.ops.segment_sum(edge, par, num_segments=self.n)

    def junction_average(self, x):
        """Replace values at zero-area junction nodes by the conductance-weighted mean of their
        neighbours (the exact algebraic solution for a node without capacitance)."""
        junction = self.comps.is_junction
        if not junction.any():
            return x
        g = self.axial_conductance()
        nbr, own, pos = _junction_neighbours(self.comps)
        # each junction's neighbours: its parent (through its own edge) and its children
        w = g[own]  # (n_junction, k): the conductance of the edge to each neighbour
        w = jnp.where(nbr >= 0, w, 0.0)
        num = jnp.sum(w * x[jnp.maximum(nbr, 0)], axis=1)
        den = jnp.sum(w, axis=1)
        val = num / jnp.where(den > 0, den, 1.0)
        # gather instead of scatter: pos[i] is node i's row in `val` (junctions only)
        return jnp.where(junction, val[pos], x)


def _junction_neighbours(comps: Compartments):
    """Static neighbour table of the junction nodes (cached on the Compartments object).

    Returns ``(nbr, own, pos)``: ``nbr[j, k]`` is the k-th neighbour of the j-th junction (its
    parent first, then its children; -1 pads), ``own[j, k]`` the node whose axial edge joins
    them (the junction itself for its parent, the child otherwise), and ``pos[i]`` the row of
    node ``i`` among the junctions (0 for other nodes).
    """
    cached = comps.__dict__.get("_jd_junction_neighbours")
    if cached is not None:
        return cached
    parent = np.asarray(comps.parent)
    junc = np.nonzero(np.asarray(comps.is_junction))[0]
    children = [[] for _ in range(parent.shape[0])]
    for i in range(1, parent.shape[0]):
        children[parent[i]].append(i)
    rows = [([int(parent[j])] if parent[j] >= 0 else []) + children[j] for j in junc]
    owns = [([int(j)] if parent[j] >= 0 else []) + children[j] for j in junc]
    k = max(1, max((len(r) for r in rows), default=1))
    nbr = np.full((junc.size, k), -1, np.int64)
    own = np.zeros((junc.size, k), np.int64)
    for r, (row, ow) in enumerate(zip(rows, owns)):
        nbr[r, : len(row)] = row
        own[r, : len(ow)] = ow
    pos = np.zeros(parent.shape[0], np.int64)
    pos[junc] = np.arange(junc.size)
    out = (nbr, own, pos)
    try:
        object.__setattr__(comps, "_jd_junction_neighbours", out)
    except (AttributeError, TypeError):  # objects without a __dict__: recompute next time
        pass
    return out
