"""Binding a rule to synapses of a cell, and the per-step update the solvers call.

Units: path distances um, time ms, voltages mV, NMDA signal nS.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..morphology import path_distance
from ._base import SPIKE_THRESHOLD, AbstractRule, Signals


class Plasticity(eqx.Module):
    """A rule acting on a subset of the synapses of one or more groups with equal sites.

    Attributes:
        rule: the learning rule (its parameters are differentiable).
        groups: names of the synapse groups whose weights the rule sets (e.g. AMPA and
            NMDA at the same sites share one weight per synapse); presynaptic spikes are
            read from the first.
        index: indices (within the groups) of the synapses governed by the rule (static).
        pair_i, pair_j: neighbour pairs within `rule.neighbour_cutoff()` um (positions in
            `index`).
        pair_d: their path distance along the dendrite, um.
        spike_threshold: a somatic spike is an upward crossing of this potential, mV.
    """

    rule: AbstractRule
    groups: tuple[str, ...] = eqx.field(static=True)
    index: tuple[int, ...] = eqx.field(static=True)
    pair_i: Int[Array, " pair"]
    pair_j: Int[Array, " pair"]
    pair_d: Float[Array, " pair"]
    spike_threshold: float = eqx.field(static=True, default=SPIKE_THRESHOLD)


def neighbour_pairs(comps, nodes: np.ndarray, cutoff: float):
    """Pairs (i, j), i != j, of synapses at compartments `nodes` within `cutoff` um.

    Returns:
        (pair_i, pair_j, pair_d) numpy arrays; distances in um between compartment centres
        (synapses on the same compartment are at distance 0).
    """
    if cutoff <= 0 or nodes.size < 2:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros(0)
    uniq, inv = np.unique(nodes, return_inverse=True)
    dist = np.stack([path_distance(comps, int(u))[uniq] for u in uniq])  # (u, u)
    d = dist[inv][:, inv]
    i, j = np.nonzero((d <= cutoff) & ~np.eye(nodes.size, dtype=bool))
    return i.astype(np.int64), j.astype(np.int64), d[i, j]


def _nmda_signal(cell, syn_states, groups, idx, v):
    from ..synapses import NMDA

    total = jnp.zeros(idx.size)
    for name in groups:
        k = cell.synapse_group(name)
        grp = cell.synapses[k]
        if isinstance(grp.receptor, NMDA):
            g = grp.conductance(syn_states[k])[idx]
            total = total + g * grp.receptor.block(v)
    return total


def plasticity_step(cell, y_prev, y_delivered, y_new, dt):
    """Apply every rule of `cell` for one step of `dt` ms; returns the updated state.

    Args:
        cell: the `Cell`.
        y_prev: state at the start of the step.
        y_delivered: state after this step's presynaptic spikes were delivered.
        y_new: state at the end of the step (voltage advanced).
    """
    if not cell.rules:
        return y_new
    soma_prev, soma = y_prev["v"][0], y_new["v"][0]
    syn = [dict(s) for s in y_new["synapses"]]
    new_rule_states = []
    for b, st in zip(cell.rules, y_new["plasticity"]):
        theta = b.spike_threshold
        post = jax.lax.stop_gradient(((soma_prev < theta) & (soma >= theta)).astype(soma.dtype))
        idx = np.asarray(b.index, dtype=np.int64)
        k0 = cell.synapse_group(b.groups[0])
        pre = (y_delivered["synapses"][k0]["next"] - y_prev["synapses"][k0]["next"])[idx]
        nodes = np.asarray(cell.synapses[k0].node, dtype=np.int64)[idx]
        v = y_new["v"][nodes]
        sig = Signals(
            pre=jax.lax.stop_gradient(pre), post=post, v=v, v_soma=soma,
            nmda=_nmda_signal(cell, y_new["synapses"], b.groups, idx, v),
            pair_i=b.pair_i, pair_j=b.pair_j, pair_d=b.pair_d,
        )
        st, w = b.rule.update(st, syn[k0]["w"][idx], sig, dt)
        new_rule_states.append(st)
        for name in b.groups:
            k = cell.synapse_group(name)
            syn[k]["w"] = syn[k]["w"].at[idx].set(w)
    return dict(y_new, synapses=tuple(syn), plasticity=tuple(new_rule_states))


def bind(cell, rule: AbstractRule, groups, where, w0, spike_threshold=SPIKE_THRESHOLD):
    """Check a rule assignment and build its `Plasticity` binding and initial weights."""
    if not isinstance(rule, AbstractRule):
        raise TypeError(f"rule must be a plasticity rule (e.g. BasalHebbian()), got {rule!r}.")
    groups = (groups,) if isinstance(groups, str) else tuple(groups)
    if not groups:
        raise ValueError("Give at least one synapse group for the rule.")
    ks = [cell.synapse_group(g) for g in groups]
    nodes = np.asarray(cell.synapses[ks[0]].node, dtype=np.int64)
    for k in ks[1:]:
        if cell.synapses[k].node != cell.synapses[ks[0]].node:
            raise ValueError(
                f"Groups {groups} share a rule, so they need synapses at the same sites in the "
                "same order (e.g. AMPA and NMDA added with the same nodes)."
            )
    region = cell.comps.mask(where)
    idx = np.nonzero(region[nodes])[0]
    if idx.size == 0:
        raise ValueError(
            f"No synapse of group {groups[0]!r} lies in where={where!r}; a rule needs synapses "
            "there (add them with cell.add_synapses, or choose another region)."
        )
    for other in cell.rules:
        if set(other.groups) & set(groups) and set(other.index) & set(idx.tolist()):
            raise ValueError(
                f"Some synapses of {groups} already have a rule ({type(other.rule).__name__}); "
                "each synapse follows one rule."
            )
    rule.check_weights(w0)
    i, j, d = neighbour_pairs(cell.comps, nodes[idx], rule.neighbour_cutoff())
    binding = Plasticity(rule, groups, tuple(int(x) for x in idx), jnp.asarray(i),
                         jnp.asarray(j), jnp.asarray(d, dtype=float), float(spike_threshold))
    return binding, ks, idx
